"""Vision Transformer against torchvision: ViT-B/32 and ViT-B/16 parameter counts, state_dict layout
and eval outputs at 224×224 with the same weights; a small configuration's train-mode outputs,
input and parameter gradients in float64 and float32 (and the representation head); the small-input
variants (shapes, counts by hand, registry); initialisation; input checks; recorded attention maps
against torch's MultiheadAttention weights; and (slow) training on MNIST."""
import math

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import nn
from deepnum.models import create_model, list_models, model_info
from deepnum.models.vit import VisionTransformer
from tests.helpers import TOLERANCES, assert_close
from tests.zoo_helpers import (
    assert_same_eval_output,
    assert_same_state_dict_layout,
    count_parameters,
    import_torchvision,
)

TINY = dict(image_size=16, patch_size=4, num_layers=2, num_heads=2, hidden_dim=8, mlp_dim=12)


def randomise(torch_model, seed=0, scale=0.3):
    """Random values for every parameter (the zero head and class token would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in torch_model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)


# ----------------------------------------------------------------------------- ImageNet models
@pytest.mark.parametrize("name, count", [("vit_b_32", 88_224_232), ("vit_b_16", 86_567_656)])
def test_vit_b_matches_torchvision(name, count):
    torch.manual_seed(0)
    theirs = getattr(import_torchvision().models, name)()
    with torch.no_grad():  # torchvision starts the head at zero: give it weights so the logits differ
        torch.nn.init.normal_(theirs.heads.head.weight, std=0.05)
        torch.nn.init.normal_(theirs.heads.head.bias, std=0.05)
    ours = create_model(name)
    assert count_parameters(ours) == count_parameters(theirs) == count
    assert_same_state_dict_layout(ours, theirs)
    assert repr(ours) == repr(theirs)
    assert_same_eval_output(ours, theirs, (1, 3, 224, 224), rtol=1e-4, atol=2e-4)


# ----------------------------------------------------------------------------- small configurations
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("representation_size", [None, 6])
def test_small_vit_train_mode_gradients_match_torchvision(dtype, representation_size):
    tv = import_torchvision()
    theirs = tv.models.VisionTransformer(**TINY, num_classes=5, representation_size=representation_size)
    randomise(theirs)
    theirs.to(torch.float64 if dtype == np.float64 else torch.float32).train()
    ours = VisionTransformer(**TINY, num_classes=5, representation_size=representation_size)
    assert_same_state_dict_layout(ours, theirs)
    assert repr(ours) == repr(theirs)
    ours.to(np.dtype(dtype))
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 16, 16)).astype(dtype)
    xd, xt = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yd, yt = ours(xd), theirs(xt)
    tol = TOLERANCES[np.dtype(dtype)] if dtype == np.float64 else (1e-4, 1e-4)
    assert yd.dtype == np.dtype(dtype)
    assert_close(yd, yt, *tol, what="output")
    g = rng.standard_normal(yt.shape).astype(dtype)
    (yd * dn.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    assert_close(xd.grad, xt.grad, *tol, what="input gradient")
    params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        assert params[name].grad.dtype == np.dtype(dtype)
        assert_close(params[name].grad, p.grad, *tol, what=f"gradient of {name}")


def test_mlp_block_fused_path_equals_the_layers_and_respects_hooks():
    """The MLP block runs Linear → GELU as one fused op in float32; the result and every gradient
    equal the layer-by-layer Sequential, and a hook on a layer makes the block run unfused (so it
    fires); a wrong width raises Linear's error."""
    from deepnum.models.vit import MLPBlock
    from deepnum.nn.modules._transformer_ops import FusedLinear

    block = MLPBlock(8, 12, 0.0)
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    results = []
    for fused in (True, False):
        xd = dn.tensor(x, requires_grad=True)
        y = block(xd) if fused else nn.Sequential.forward(block, xd)
        assert isinstance(y.grad_fn, FusedLinear) == fused  # the second Linear is fused too
        block.zero_grad()
        (y * y).sum().backward()
        results.append([y.data, xd.grad.data] + [p.grad.data.copy() for p in block.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    calls = []
    block[1].register_forward_hook(lambda module, args, out: calls.append(tuple(out.shape)))
    np.testing.assert_allclose(block(dn.tensor(x)).data, results[0][0], rtol=1e-5, atol=1e-6)
    assert calls == [(2, 5, 12)]
    with pytest.raises(ValueError, match=r"Linear\(8→12\): expected input \(\*, 8\), got \(2, 5\)"):
        block(dn.zeros(2, 5))


@pytest.mark.parametrize("name, shape, count", [
    ("vit_tiny_patch4_32", (3, 32, 32), 5_362_762),
    ("vit_mini_patch7_28", (1, 28, 28), 205_962),
])
def test_small_input_variants(name, shape, count):
    model = create_model(name)
    assert count_parameters(model) == count
    assert model.input_shape == shape and model.grid_size == (shape[1] // model.patch_size,) * 2
    with dn.no_grad():
        assert model(dn.randn(2, *shape)).shape == (2, 10)
    info = model_info(name)
    assert info.family == "vit" and info.small_input and info.paper.startswith("Dosovitskiy et al. 2021")
    other = create_model(name, num_classes=4, in_chans=2)
    with dn.no_grad():
        assert other(dn.randn(1, 2, *shape[1:])).shape == (1, 4)


def test_parameter_counts_by_hand():
    """Per block: attention 4D² + 4D, MLP 2·D·M + M + D, two LayerNorms 4D; plus the patch
    embedding C·P²·D + D, class token D, positions T·D, final LayerNorm 2D, head D·K + K."""
    def count(image, patch, depth, width, mlp, channels, classes):
        block = 4 * width * width + 4 * width + 2 * width * mlp + mlp + width + 4 * width
        tokens = (image // patch) ** 2 + 1
        return (depth * block + channels * patch * patch * width + width + width + tokens * width + 2 * width
                + width * classes + classes)

    assert count(224, 16, 12, 768, 3072, 3, 1000) == 86_567_656
    assert count(224, 32, 12, 768, 3072, 3, 1000) == 88_224_232
    assert count(32, 4, 12, 192, 768, 3, 10) == 5_362_762
    assert count(28, 7, 6, 64, 128, 1, 10) == 205_962
    assert {"vit_b_16", "vit_b_32", "vit_tiny_patch4_32", "vit_mini_patch7_28"} <= set(list_models("vit_*"))
    assert not model_info("vit_b_16").small_input


def test_initialisation():
    dn.manual_seed(0)
    model = create_model("vit_tiny_patch4_32")
    assert np.all(model.class_token.detach().numpy() == 0)
    assert np.all(model.heads.head.weight.detach().numpy() == 0) and np.all(model.heads.head.bias.detach().numpy() == 0)
    pos = model.encoder.pos_embedding.detach().numpy()
    assert abs(pos.std() - 0.02) < 0.001
    conv = model.conv_proj.weight.detach().numpy()  # truncated normal, std √(1/fan_in), fan_in = 3·4·4
    assert abs(conv.std() - math.sqrt(1 / 48)) < 0.01 and np.all(model.conv_proj.bias.detach().numpy() == 0)
    block = model.encoder.layers.encoder_layer_0
    w = block.mlp[0].weight.detach().numpy()
    bound = math.sqrt(6 / (192 + 768))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    bias = block.mlp[3].bias.detach().numpy()
    assert 0 < np.abs(bias).max() < 1e-5
    attn = block.self_attention.in_proj_weight.detach().numpy()
    assert np.abs(attn).max() <= math.sqrt(6 / (192 + 576))
    assert model.conv_proj.weight.dtype == np.float32


def test_input_checks():
    model = create_model("vit_mini_patch7_28")
    with pytest.raises(ValueError, match=r"VisionTransformer\(image_size=28, patch_size=7\): expected input "
                                         r"\(N, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        model(dn.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(2, 3, 28, 28\)"):
        model(dn.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got \(1, 28, 28\)"):
        model(dn.randn(1, 28, 28))
    with pytest.raises(ValueError, match="image_size 30 is not divisible by patch_size 7"):
        VisionTransformer(30, 7, 1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"EncoderBlock\(hidden_dim=64, num_heads=4\): expected input \(N, T, 64\)"):
        model.encoder.layers.encoder_layer_0(dn.randn(2, 17, 32))


# ----------------------------------------------------------------------------- attention maps
def test_recorded_attention_maps_match_torch():
    """record_attention keeps each block's (N, heads, T, T) weights; they equal torch's
    MultiheadAttention weights on the same LayerNorm output, and recording leaves the logits unchanged."""
    tv = import_torchvision()
    theirs = tv.models.VisionTransformer(**TINY, num_classes=5)
    randomise(theirs)
    theirs.double().eval()
    ours = VisionTransformer(**TINY, num_classes=5)
    ours.to(np.dtype(np.float64))
    ours.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    ours.eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16))
    with pytest.raises(RuntimeError, match="no attention recorded"):
        ours.attention_maps()
    with dn.no_grad():
        plain = ours(dn.tensor(x)).numpy()
        assert ours.record_attention(True) is ours
        recorded = ours(dn.tensor(x)).numpy()
    np.testing.assert_array_equal(plain, recorded)
    maps = ours.attention_maps()
    assert len(maps) == 2 and all(m.shape == (2, 2, 17, 17) and not m.requires_grad for m in maps)
    expected = []
    hooks = [block.ln_1.register_forward_hook(
        lambda module, inp, out, block=block: expected.append(
            block.self_attention(out, out, out, need_weights=True, average_attn_weights=False)[1]))
        for block in theirs.encoder.layers]
    with torch.no_grad():
        theirs(torch.tensor(x))
    for h in hooks:
        h.remove()
    for ours_map, their_map in zip(maps, expected, strict=True):
        assert_close(ours_map, their_map, 1e-10, 1e-8, what="attention map")
        np.testing.assert_allclose(ours_map.numpy().sum(-1), 1.0, rtol=1e-12)
    ours.record_attention(False)
    assert all(block.attention_weights is None for block in ours.encoder.layers)
    # recording during training keeps the graph of the logits intact
    ours.train().record_attention(True)
    xd = dn.tensor(x, requires_grad=True)
    ours(xd).sum().backward()
    assert xd.grad is not None and ours.attention_maps()[0].shape == (2, 2, 17, 17)


# ----------------------------------------------------------------------------- training
@pytest.mark.slow
def test_vit_mini_learns_mnist():
    """vit_mini_patch7_28 on 2,000 MNIST digits, 8 epochs of AdamW with a one-cycle schedule: the loss
    falls from ~2.2 to ~0.4 and test accuracy reaches about 0.8 (0.815 measured; chance is 0.1)."""
    from deepnum.data import DataLoader, Subset
    from deepnum.data.datasets import load_dataset
    from deepnum.train import evaluate, fit

    dn.manual_seed(0)
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    train = Subset(train, np.random.default_rng(0).permutation(len(train))[:2000].tolist())
    model = create_model("vit_mini_patch7_28")
    epochs, lr = 8, 3e-3
    loader = DataLoader(train, batch_size=64, shuffle=True, generator=dn.Generator().manual_seed(0))
    optimizer = dn.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    scheduler = dn.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader))
    history = fit(model, loader, epochs=epochs, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(),
                  scheduler=scheduler, scheduler_interval="step", progress=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.6 * losses[0]
    result = evaluate(model, DataLoader(test, batch_size=250))
    assert result["accuracy"] > 0.7
