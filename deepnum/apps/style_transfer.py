"""``deepnum style``: neural style transfer (L. A. Gatys, A. S. Ecker, M. Bethge, "Image style transfer
using convolutional neural networks", CVPR 2016).

The pixels of an image are the parameters: starting from the content photo (or noise), Adam changes
them so that the image's CNN features at ``relu2_1`` match the content photo's (content loss) and
the Gram matrices ``G = F Fᵀ / (H·W)`` of its features at ``relu1_1 ... relu4_1`` match the style
photo's (style loss: the Gram matrix keeps which features occur together, and forgets where). Each
layer's squared error is divided by the target's squared norm, so the losses are relative errors
(1.0 = as far as the zero image) and the weights do not depend on the scale of the network's
activations; a small total-variation term (Mahendran & Vedaldi 2015) removes pixel noise. Gatys et
al. take content from the deeper ``conv4_2``; with random weights the deeper features keep too little
of the layout (the temple dissolves), so ``relu2_1`` is the default here.
The feature network (``_style_features.py``) has random weights unless ``--weights`` gives
torchvision VGG-19 ones: see docs/apps/style_transfer.md for what that means for the result.
Gatys et al. optimise with L-BFGS; deepnum has no L-BFGS, so Adam on the pixels, which are clamped
to [0, 1] after every step (projected gradient), is used here.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import deepnum as dn
from deepnum.apps._style_features import VGGFeatures, load_image, sample_image
from deepnum.tensor import Tensor

__all__ = ["CONTENT_LAYERS", "STYLE_LAYERS", "StyleResult", "gram_matrix", "measure", "run", "stylize",
           "total_variation"]

HELP = "neural style transfer (Gatys et al. 2016) on scikit-learn's sample photos or your images"
DESCRIPTION = """\
Optimise an image so that its CNN features match a content photo and its Gram matrices match a
style photo (Gatys, Ecker & Bethge 2016). Defaults: scikit-learn's china.jpg as content and
flower.jpg as style, 128 px high, 200 Adam steps on the pixels. The CNN is VGG-19's front (up to
relu4_1) with RANDOM weights, since no ImageNet weights can be downloaded here; pass --weights with a
torchvision VGG-19 state_dict (.pth or .safetensors) and --width 1 for the original method.
Writes content.png, style.png, result.png, snapshots, panel.png, losses.png and metrics.json."""

CONTENT_LAYERS = ("relu2_1",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def gram_matrix(features: Tensor) -> Tensor:
    """The Gram matrix of feature maps (N, C, H, W): ``G[n, i, j] = Σ_p F[n, i, p] F[n, j, p] / (H·W)``,
    the feature correlations of Gatys et al. eq. 3 averaged over positions (so images of different
    sizes compare)."""
    if features.ndim != 4:
        raise ValueError(f"gram_matrix: expected feature maps (N, C, H, W), got {tuple(features.shape)}")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return (flat @ flat.transpose(1, 2)) / float(h * w)


def total_variation(image: Tensor) -> Tensor:
    """Mean squared difference of neighbouring pixels (anisotropic total variation, squared) of (N, C, H, W)."""
    dh = image[:, :, 1:, :] - image[:, :, :-1, :]
    dw = image[:, :, :, 1:] - image[:, :, :, :-1]
    return (dh * dh).mean() + (dw * dw).mean()


def _relative(value: Tensor, target: tuple[Tensor, float]) -> Tensor:
    """``‖value − target‖² / ‖target‖²``; ``target`` carries its squared norm, computed once."""
    diff = value - target[0]
    return (diff * diff).sum() / target[1]


def _with_norm(t: Tensor) -> tuple[Tensor, float]:
    return t, float((t.numpy().astype(np.float64) ** 2).sum() + 1e-12)


def _batch(image: np.ndarray) -> Tensor:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"style transfer: expected an RGB image (3, H, W), got shape {image.shape}")
    return dn.tensor(np.ascontiguousarray(image[None], dtype=np.float32))


@dataclass
class StyleResult:
    """The stylised image (3, H, W) in [0, 1], the losses per step (``content``, ``style``, ``tv``,
    ``total``) and snapshots of the image at chosen steps."""
    image: np.ndarray
    history: dict[str, list[float]]
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)


def _targets(net: VGGFeatures, content: Tensor, style: Tensor, content_layers: tuple[str, ...],
             style_layers: tuple[str, ...]) -> tuple[dict[str, tuple[Tensor, float]], dict[str, tuple[Tensor, float]]]:
    with dn.no_grad():
        c = net(content, list(content_layers))
        s = net(style, list(style_layers))
        return {k: _with_norm(v) for k, v in c.items()}, {k: _with_norm(gram_matrix(v)) for k, v in s.items()}


def _losses(net: VGGFeatures, x: Tensor, content_t: dict[str, tuple[Tensor, float]],
            style_t: dict[str, tuple[Tensor, float]]) -> tuple[Tensor, Tensor]:
    """The content and style losses of ``x``, each the mean of its layers' relative squared errors."""
    feats = net(x, sorted(set(content_t) | set(style_t), key=net.names.index))
    content = sum((_relative(feats[k], t) for k, t in content_t.items()), start=dn.tensor(0.0))
    style = sum((_relative(gram_matrix(feats[k]), t) for k, t in style_t.items()), start=dn.tensor(0.0))
    return content / len(content_t), style / len(style_t)


def stylize(content: np.ndarray, style: np.ndarray, net: VGGFeatures, *, steps: int = 200, lr: float = 0.02,
            content_weight: float = 1.0, style_weight: float = 3.0, tv_weight: float = 1.0,
            content_layers: tuple[str, ...] = CONTENT_LAYERS, style_layers: tuple[str, ...] = STYLE_LAYERS,
            init: str = "content", snapshot_steps: tuple[int, ...] = (), seed: int = 0) -> StyleResult:
    """Gatys et al.'s optimisation: minimise ``content_weight·L_content + style_weight·L_style +
    tv_weight·TV`` over the pixels of an image, starting from ``content`` (``init="content"``) or
    uniform noise (``"noise"``, the paper's choice), with Adam and clamping to [0, 1] after each step."""
    if init not in ("content", "noise"):
        raise ValueError(f"stylize: init must be 'content' or 'noise', got {init!r}")
    if steps < 1 or lr <= 0:
        raise ValueError(f"stylize: steps must be >= 1 and lr > 0, got steps={steps}, lr={lr}")
    c, s = _batch(content), _batch(style)
    content_t, style_t = _targets(net, c, s, tuple(content_layers), tuple(style_layers))
    start = content[None] if init == "content" else np.random.default_rng(seed).random(c.shape, dtype=np.float32)
    x = dn.nn.Parameter(dn.tensor(np.array(start, dtype=np.float32)))
    opt = dn.optim.Adam([x], lr=lr)
    history: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}
    snapshots: dict[int, np.ndarray] = {0: x.detach().numpy()[0].copy()} if 0 in snapshot_steps else {}
    for step in range(1, steps + 1):
        opt.zero_grad()
        lc, ls = _losses(net, x, content_t, style_t)
        tv = total_variation(x)
        total = content_weight * lc + style_weight * ls + tv_weight * tv
        total.backward()
        opt.step()
        with dn.no_grad():
            x.clamp_(0.0, 1.0)
        for key, value in (("content", lc), ("style", ls), ("tv", tv), ("total", total)):
            history[key].append(float(value.item()))
        if step in snapshot_steps:
            snapshots[step] = x.detach().numpy()[0].copy()
    return StyleResult(x.detach().numpy()[0].copy(), history, snapshots)


def measure(net: VGGFeatures, content: np.ndarray, style: np.ndarray, result: np.ndarray,
            style_layers: tuple[str, ...] = STYLE_LAYERS, content_layers: tuple[str, ...] = CONTENT_LAYERS
            ) -> dict[str, float]:
    """Relative Gram distance to the style photo and relative feature distance to the content photo,
    of the content photo itself and of the result, under ``net``; and the mean colours."""
    c, s, r = _batch(content), _batch(style), _batch(result)
    content_t, style_t = _targets(net, c, s, tuple(content_layers), tuple(style_layers))
    with dn.no_grad():
        c_content, c_style = _losses(net, c, content_t, style_t)
        r_content, r_style = _losses(net, r, content_t, style_t)
    return {"style_distance_content": float(c_style.item()), "style_distance_result": float(r_style.item()),
            "content_distance_result": float(r_content.item()),
            "mean_rgb_content": [round(float(v), 4) for v in content.mean(axis=(1, 2))],
            "mean_rgb_style": [round(float(v), 4) for v in style.mean(axis=(1, 2))],
            "mean_rgb_result": [round(float(v), 4) for v in result.mean(axis=(1, 2))]}


# ----------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepnum._cli_common import _nonnegative_float, _positive_float, _positive_int

    parser.add_argument("--content", metavar="FILE", help="content image file (default: scikit-learn's china.jpg)")
    parser.add_argument("--style", metavar="FILE", help="style image file (default: scikit-learn's flower.jpg)")
    parser.add_argument("--size", type=_positive_int, default=128, help="image height in pixels (default 128)")
    parser.add_argument("--steps", type=_positive_int, default=200, help="Adam steps on the pixels (default 200)")
    parser.add_argument("--lr", type=_positive_float, default=0.02, help="Adam learning rate (default 0.02)")
    parser.add_argument("--content-weight", type=_nonnegative_float, default=1.0, help="default 1")
    parser.add_argument("--style-weight", type=_nonnegative_float, default=3.0, help="default 3")
    parser.add_argument("--tv-weight", type=_nonnegative_float, default=1.0, help="total variation (default 1)")
    parser.add_argument("--init", choices=("content", "noise"), default="content",
                        help="start from the content image or from noise (default content)")
    parser.add_argument("--width", type=_positive_int, default=2,
                        help="divide VGG-19's filter counts by this (default 2; 1 with --weights)")
    parser.add_argument("--weights", metavar="FILE", help="torchvision VGG-19 state_dict (.pth/.safetensors)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random network (default 0)")
    parser.add_argument("--output", metavar="DIR", default="runs/style", help="output folder (default runs/style)")


def _save_png(image: np.ndarray, path: str) -> None:
    from PIL import Image

    tmp = path + ".tmp.png"
    Image.fromarray((np.clip(image, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)).save(tmp)
    os.replace(tmp, path)


def _images(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    content = load_image(args.content, args.size) if args.content else sample_image("china.jpg", args.size)
    style = load_image(args.style, args.size) if args.style else sample_image("flower.jpg", args.size)
    return content, style


def run(args: argparse.Namespace) -> int:
    from deepnum._cli_common import CLIError
    from deepnum.apps._style_plots import plot_losses, plot_panel

    dn.manual_seed(args.seed)
    try:
        content, style = _images(args)
        net = VGGFeatures(width=args.width)
        if args.weights:
            net.load_vgg19(args.weights)
    except (OSError, ValueError, KeyError) as exc:
        raise CLIError(str(exc)) from None
    os.makedirs(args.output, exist_ok=True)
    marks = tuple(sorted({0, args.steps // 10, args.steps // 3, args.steps} - {-1}))
    began = time.perf_counter()
    result = stylize(content, style, net, steps=args.steps, lr=args.lr, content_weight=args.content_weight,
                     style_weight=args.style_weight, tv_weight=args.tv_weight, init=args.init,
                     snapshot_steps=marks, seed=args.seed)
    seconds = time.perf_counter() - began
    metrics = measure(net, content, style, result.image)
    dn.manual_seed(args.seed + 1000)
    metrics.update({f"independent_{k}": v for k, v in measure(VGGFeatures(width=args.width), content, style,
                                                                 result.image).items() if "distance" in k})
    h = result.history
    metrics.update({"steps": args.steps, "seconds": round(seconds, 1), "seed": args.seed,
                    "pretrained": bool(args.weights)})
    for key in ("content", "style", "total"):
        metrics[f"{key}_loss_first"], metrics[f"{key}_loss_last"] = h[key][0], h[key][-1]
    for name, image in (("content", content), ("style", style), ("result", result.image)):
        _save_png(image, os.path.join(args.output, f"{name}.png"))
    for step, image in result.snapshots.items():
        _save_png(image, os.path.join(args.output, f"result_step{step:04d}.png"))
    plot_losses(h, os.path.join(args.output, "losses.png"))
    plot_panel(content, style, result.snapshots, os.path.join(args.output, "panel.png"))
    tmp = os.path.join(args.output, "metrics.json.tmp")
    with open(tmp, "w") as f:
        json.dump(metrics, f, indent=1)
    os.replace(tmp, os.path.join(args.output, "metrics.json"))
    _report(metrics, args.output)
    return 0


def _report(m: dict[str, Any], output: str) -> None:
    print(f"style transfer: {m['steps']} steps in {m['seconds']} s; total loss {m['total_loss_first']:.4f} -> "
          f"{m['total_loss_last']:.4f} (content {m['content_loss_first']:.4f} -> {m['content_loss_last']:.4f}, "
          f"style {m['style_loss_first']:.4f} -> {m['style_loss_last']:.4f})")
    print(f"relative Gram distance to the style photo: content photo {m['style_distance_content']:.4f}, result "
          f"{m['style_distance_result']:.4f}; under an independent random network "
          f"{m['independent_style_distance_content']:.4f} -> {m['independent_style_distance_result']:.4f}")
    print(f"mean RGB: content {m['mean_rgb_content']}, style {m['mean_rgb_style']}, result {m['mean_rgb_result']}")
    print(f"images, losses.png, panel.png and metrics.json in {output}")
