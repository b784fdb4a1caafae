"""Model-zoo benchmarks, deepnum vs PyTorch in the same process (see bench/harness.py):

- ResNet-20 (CIFAR, He et al. 2016 §4.2, option-A shortcuts, 0.27M parameters) training step: batch 128
  of 3×32×32, cross-entropy, backward, SGD with momentum 0.9;
- ResNet-20 inference: batch 128, eval mode, no_grad.

deepnum runs ``deepnum.models.resnet20``; torch runs the same network written with torch.nn
(``torch_cifar_resnet``, also used by the tests as the oracle) with the weights copied from it.

Run: ``.venv/bin/python -m bench.zoo [--threads N]``
"""
from __future__ import annotations

import sys

import numpy as np

from bench.harness import classification_step, compare, start


def torch_cifar_resnet(n: int = 3, num_classes: int = 10, in_chans: int = 3):
    """The CIFAR ResNet of depth 6n + 2 in torch.nn, with deepnum's state_dict keys: conv3×3(16)-BN-ReLU,
    three stages of n basic blocks (16/32/64 channels, strides 1/2/2) whose first block in stages 2-3
    has the parameter-free option-A shortcut (every second pixel, zero channels appended), global
    average pooling, fc."""
    import torch
    from torch import nn

    class ShortcutA(nn.Module):
        def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
            super().__init__()
            self.extra, self.stride = out_planes - in_planes, stride

        def forward(self, x):
            return nn.functional.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))

    class Block(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = ShortcutA(inplanes, planes, stride) if stride != 1 or inplanes != planes else None

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            widths, inplanes = (16, 32, 64), 16
            for i, width in enumerate(widths):
                stride = 1 if i == 0 else 2
                blocks = [Block(inplanes, width, stride)] + [Block(width, width, 1) for _ in range(n - 1)]
                self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
                inplanes = width
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


def _libs(name: str):
    if name == "torch":
        import torch

        return torch, torch.nn.functional, torch.optim
    import deepnum
    import deepnum.nn.functional
    import deepnum.optim

    return deepnum, deepnum.nn.functional, deepnum.optim


def build_train_step(lib_name: str, model, batch: int = 128):
    lib, functional, optim = _libs(lib_name)
    model.train()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, batch))

    return classification_step(functional, model, opt, x, y)


def build_inference_step(lib_name: str, model, batch: int = 128):
    lib, _, _ = _libs(lib_name)
    model.eval()
    x = lib.tensor(np.random.default_rng(1).standard_normal((batch, 3, 32, 32)).astype(np.float32))

    def step():
        with lib.no_grad():
            return model(x)

    return step


def _resnet20(lib_name: str, reference=None):
    """deepnum's ``resnet20`` or its torch twin; with ``reference`` (the other library's model) it
    starts from the reference's weights."""
    if lib_name == "torch":
        import torch

        model = torch_cifar_resnet(3)
        if reference is not None:
            model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in reference.state_dict().items()})
        return model
    import deepnum as dn
    from deepnum.models.resnet import resnet20

    model = resnet20()
    if reference is not None:
        model.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in reference.state_dict().items()})
    return model


def build_resnet20_train(lib_name: str, reference=None, batch: int = 128):
    """``(step, model)``: the ResNet-20 training step of ``lib_name``, same weights as ``reference``."""
    model = _resnet20(lib_name, reference)
    return build_train_step(lib_name, model, batch), model


def build_resnet20_inference(lib_name: str, reference=None, batch: int = 128):
    """``(step, model)``: ResNet-20 inference (eval, no_grad) of ``lib_name``, same weights as ``reference``."""
    model = _resnet20(lib_name, reference)
    return build_inference_step(lib_name, model, batch), model


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = start(__doc__.splitlines()[0], argv, rounds=9)
    import torch

    torch.manual_seed(0)
    ratios = {}
    for key, name, build in (
            ("resnet20_train", "ResNet-20 train step, batch 128, 3x32x32, SGD momentum", build_resnet20_train),
            ("resnet20_infer", "ResNet-20 inference, batch 128, eval, no_grad", build_resnet20_inference)):
        torch_step, reference = build("torch")
        ours_step, _ = build("deepnum", reference)
        ratios[key] = compare(name, ours_step, torch_step, rounds=args.rounds, iterations=3, warmup=3)
    return ratios


if __name__ == "__main__":
    main(sys.argv[1:])
