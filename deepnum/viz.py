"""Looking inside a network: first-layer filters, feature maps of any layer, and ViT attention
rollout, each drawn into a PNG file.

- ``plot_filters(model_or_conv, path)``: the kernels of the first ``Conv2d`` (or of the one given) as
  a grid of small images, each normalised to its own [min, max];
- ``plot_feature_maps(model, layer_name, input, path)``: what one named layer outputs for one input,
  captured with a forward hook, one tile per channel;
- ``attention_rollout(attentions)``: the class token's attention to each patch after all the layers
  (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"), and
  ``plot_attention_rollout(model, image, path)`` that overlays it on the image for a ViT.

Every figure has an exact, documented size in pixels: a grid of ``rows × cols`` tiles of ``tile``
pixels plus a title band of ``TITLE_PX`` pixels, i.e. ``(cols·tile) × (rows·tile + TITLE_PX)``
(width × height); ``grid_shape(n)`` gives the rows and columns used for ``n`` tiles. Figures are
drawn with matplotlib's Agg canvas (no display, and the global pyplot backend is left alone) at
``DPI`` = 128 dots per inch, a power of two, so that pixels / DPI is exact in floating point and the
PNG has exactly the computed size. Files are written atomically (a temporary file, then a rename).
matplotlib is optional: ``pip install matplotlib`` (``deepnum[plot]``).

Each ``plot_*`` function returns the array it drew (filters, activations or the rollout map), so
the numbers behind a picture can be checked.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepnum.autograd.grad_mode import no_grad
from deepnum.backend import get_array_module, to_device
from deepnum.nn.modules.conv import Conv2d
from deepnum.nn.modules.module import Module
from deepnum.tensor import Tensor

__all__ = ["DPI", "TITLE_PX", "attention_rollout", "figure_size", "grid_shape", "plot_attention_rollout",
           "plot_feature_maps", "plot_filters"]

DPI = 128
TITLE_PX = 40
_HEAD_FUSIONS = ("mean", "max", "min")


# ----------------------------------------------------------------- figures
def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of the tile grid for ``n`` tiles: ``cols = ceil(√n)``, ``rows = ceil(n / cols)``."""
    if n < 1:
        raise ValueError(f"grid_shape: need at least one tile, got {n}")
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def figure_size(rows: int, cols: int, tile: int) -> tuple[int, int]:
    """(width, height) in pixels of a figure of ``rows × cols`` tiles of ``tile`` pixels plus the title band."""
    return cols * tile, rows * tile + TITLE_PX


def _new_figure(width_px: int, height_px: int) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("deepnum.viz needs matplotlib: pip install matplotlib (or pip install 'deepnum[plot]')") \
            from error
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike) -> str:
    """Write ``fig`` as a PNG at ``path`` atomically (temporary file + rename)."""
    from deepnum.io.safetensors import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return os.fspath(path)


def _fit_title(text: str, width_px: float) -> tuple[str, float]:
    """(wrapped text, font size) that fits the title band: the largest of 7, 6, 5 pt at which the
    text wraps into the lines the band holds (about 0.56 em per character); cut with "…" otherwise."""
    import textwrap

    for size in (7.0, 6.0, 5.0):
        px = size * DPI / 72
        per_line = max(8, int(width_px / (0.56 * px)))
        max_lines = max(1, int(TITLE_PX / (1.25 * px)))
        lines = textwrap.wrap(text, per_line)
        if len(lines) <= max_lines:
            return "\n".join(lines), size
    kept = lines[:max_lines]
    kept[-1] = kept[-1][:per_line - 1] + "…"
    return "\n".join(kept), size


def _suptitle(fig: Any, text: str) -> None:
    width, height = fig.get_size_inches() * DPI
    wrapped, size = _fit_title(text, width)
    fig.suptitle(wrapped, y=1 - 0.5 * TITLE_PX / height, va="center", fontsize=size, linespacing=1.1)


def _check_tile(tile: int) -> int:
    if int(tile) != tile or tile < 8:
        raise ValueError(f"tile must be an integer number of pixels >= 8, got {tile!r}")
    return int(tile)


def _normalise(maps: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Scale each map to [0, 1] over ``axes`` (its own min and max); a constant map becomes 0.5."""
    low = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - low
    flat = span == 0
    return np.where(flat, np.float32(0.5), (maps - low) / np.where(flat, 1, span)).astype(np.float32)


def _tile_grid(fig: Any, images: np.ndarray, title: str, labels: Sequence[str], cmap: str | None) -> None:
    """Place ``images`` (n, h, w) or (n, h, w, 3) in [0, 1] on a grid of axes filling ``fig`` below the title."""
    n = images.shape[0]
    rows, cols = grid_shape(n)
    width, height = fig.get_size_inches() * DPI
    top = 1 - TITLE_PX / height
    _suptitle(fig, title)
    cell_w, cell_h = 1 / cols, top / rows
    tile_px = width / cols
    for i in range(n):
        r, c = divmod(i, cols)
        pad_x, pad_y = 0.04 * cell_w, 0.04 * cell_h
        ax = fig.add_axes((c * cell_w + pad_x, top - (r + 1) * cell_h + pad_y, cell_w - 2 * pad_x,
                           cell_h - 2 * pad_y - (0.16 * cell_h if tile_px >= 48 else 0)))
        ax.imshow(images[i], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
        if tile_px >= 48:
            ax.set_title(labels[i], fontsize=5, pad=1.5)


def _to_numpy(value: Any) -> np.ndarray:
    """A Tensor's (or array's) values as a host NumPy array (CuPy arrays are copied to the host)."""
    data = value.data if isinstance(value, Tensor) else value
    return np.asarray(to_device(data, "cpu"))


# ----------------------------------------------------------------- filters
def first_conv(model: Module) -> tuple[str, Conv2d]:
    """(name, layer) of the first ``Conv2d`` of ``model`` in registration order."""
    for name, module in model.named_modules():
        if isinstance(module, Conv2d):
            return name, module
    raise ValueError(f"{type(model).__name__} has no Conv2d layer to show filters of")


def plot_filters(model_or_conv: Module, path: str | os.PathLike, *, max_filters: int = 64, channel: int | None = None,
                 tile: int = 64, title: str | None = None) -> np.ndarray:
    """Draw the kernels of the first ``Conv2d`` of a model (or of the ``Conv2d`` given) as a grid.

    Weight ``(out, in, kh, kw)``: each of the first ``max_filters`` output filters is one tile,
    normalised to its own [min, max] (white = its largest weight). With 3 input channels a tile is
    the RGB image of the kernel; otherwise it is the kernel of input channel ``channel``, or, when
    ``channel`` is None, the mean over the input channels (exactly the kernel itself when there is one
    input channel), in grey. The PNG is ``figure_size(*grid_shape(n), tile)`` pixels for n tiles.
    Returns the weights drawn, ``(n, in, kh, kw)`` float32."""
    tile = _check_tile(tile)
    if isinstance(model_or_conv, Conv2d):
        name, conv = type(model_or_conv).__name__, model_or_conv
    elif isinstance(model_or_conv, Module):
        name, conv = first_conv(model_or_conv)
    else:
        raise TypeError(f"plot_filters: expected a Module or a Conv2d, got {type(model_or_conv).__name__}")
    weight = _to_numpy(conv.weight).astype(np.float32, copy=False)[:max(1, int(max_filters))]
    n, c_in = weight.shape[:2]
    if channel is not None and not 0 <= channel < c_in:
        raise ValueError(f"plot_filters: channel {channel} is out of range for {name} with {c_in} input channels")
    if c_in == 3 and channel is None:
        images, cmap = _normalise(weight, (1, 2, 3)).transpose(0, 2, 3, 1), None
    else:
        kernels = weight[:, channel] if channel is not None else weight.mean(axis=1)
        images, cmap = _normalise(kernels, (1, 2)), "gray"
    rows, cols = grid_shape(n)
    fig = _new_figure(*figure_size(rows, cols, tile))
    what = "RGB" if cmap is None else (f"input channel {channel}" if channel is not None else
                                       "mean over input channels" if c_in > 1 else "")
    text = title or f"{name} {conv.in_channels}→{conv.out_channels}, {weight.shape[2]}×{weight.shape[3]} filters"
    _tile_grid(fig, images, text + (f" ({what})" if what else ""), [f"#{i}" for i in range(n)], cmap)
    _save(fig, path)
    return weight


# ----------------------------------------------------------------- feature maps
def capture_activation(model: Module, layer_name: str, input: Any) -> np.ndarray:  # noqa: A002
    """The output of ``model``'s layer ``layer_name`` for one input (C, ...) or a batch of one
    (1, C, ...), computed in eval mode without gradients (the model's modes are restored after);
    returned as a float32 NumPy array without the batch dim. Whether the input is batched is read
    from ``model.input_shape`` when the model declares it, else a 3-dim input is one (C, H, W)
    image. Unknown layer names list the valid ones."""
    modules = dict(model.named_modules())
    modules.pop("", None)
    if layer_name not in modules:
        raise ValueError(f"{type(model).__name__} has no layer named {layer_name!r}; layers: {', '.join(modules)}")
    x = input if isinstance(input, Tensor) else Tensor._make(np.ascontiguousarray(input, dtype=np.float32))
    expected = getattr(model, "input_shape", None)
    if x.ndim == (len(expected) if expected is not None else 3):   # unbatched: (C, ...) or, by default, (C, H, W)
        x = x.unsqueeze(0)
    if x.ndim < 2 or x.shape[0] != 1:
        raise ValueError(f"plot_feature_maps: expected one input (C, ...) or a batch of one, got {tuple(x.shape)}")
    captured: list[Any] = []
    remove = modules[layer_name].register_forward_hook(lambda module, args, output: captured.append(output))
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        remove()
        for m, mode in modes.items():
            object.__setattr__(m, "training", mode)
    output = captured[0] if captured else None
    if not isinstance(output, Tensor):
        raise ValueError(f"layer {layer_name!r} ({type(modules[layer_name]).__name__}) did not return one Tensor")
    return _to_numpy(output).astype(np.float32, copy=False)[0]


def plot_feature_maps(model: Module, layer_name: str, input: Any, path: str | os.PathLike, *,  # noqa: A002
                      max_maps: int = 64, tile: int = 64, cmap: str = "viridis",
                      title: str | None = None) -> np.ndarray:
    """Draw the activations of layer ``layer_name`` (any name of ``model.named_modules()``) for one
    input: one tile per channel for the first ``max_maps`` channels, each normalised to its own
    [min, max]. Layer outputs (C, H, W) are shown as they are; volumes (C, D, H, W) of a 3-D CNN as
    their maximum over depth (a maximum-intensity projection). Returns all the activations (C, H, W)
    or (C, D, H, W) float32; the PNG is ``figure_size(*grid_shape(min(C, max_maps)), tile)`` pixels."""
    tile = _check_tile(tile)
    act = capture_activation(model, layer_name, input)
    if act.ndim == 3:
        maps, note = act, ""
    elif act.ndim == 4:
        maps, note = act.max(axis=1), ", max over depth"
    else:
        raise ValueError(f"plot_feature_maps: layer {layer_name!r} outputs {(1, *act.shape)}; feature maps need "
                         "(1, C, H, W) or (1, C, D, H, W)")
    maps = maps[:max(1, int(max_maps))]
    rows, cols = grid_shape(maps.shape[0])
    fig = _new_figure(*figure_size(rows, cols, tile))
    shown = f"{maps.shape[0]} of {act.shape[0]}" if maps.shape[0] < act.shape[0] else f"{act.shape[0]}"
    text = title or f"{layer_name}: {shown} channels, {'×'.join(map(str, act.shape[1:]))}{note}"
    _tile_grid(fig, _normalise(maps, (1, 2)), text, [f"ch {i}" for i in range(maps.shape[0])], cmap)
    _save(fig, path)
    return act


# ----------------------------------------------------------------- attention rollout
def _fuse_heads(attention: Any, head_fusion: str) -> Any:
    if head_fusion == "mean":
        return attention.mean(axis=1)
    return attention.max(axis=1) if head_fusion == "max" else attention.min(axis=1)


def _discard_lowest(fused: Any, ratio: float) -> Any:
    """Zero the lowest ``ratio`` fraction of each (T, T) matrix, never entry (0, 0) (class → class)."""
    xp = get_array_module(fused)
    n, t = fused.shape[0], fused.shape[1]
    k = int(t * t * ratio)
    if k == 0:
        return fused
    flat = fused.reshape(n, t * t).copy()
    keyed = flat.copy()
    keyed[:, 0] = xp.inf  # the class token's attention to itself is never the one discarded
    lowest = xp.argpartition(keyed, k - 1, axis=1)[:, :k]
    flat[xp.arange(n)[:, None], lowest] = 0
    return flat.reshape(n, t, t)


def attention_rollout(attentions: Sequence[Any], head_fusion: str = "mean", discard_ratio: float = 0.0,
                      num_prefix_tokens: int = 1, grid_size: tuple[int, int] | None = None) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): how much the class token draws on each patch
    through all the layers, counting the residual connections.

    ``attentions``: one (N, heads, T, T) array or Tensor per block, first block first (rows: the
    attending token, each row summing to 1). Per block the heads are fused (``mean``, ``max`` or
    ``min`` over heads); optionally the lowest ``discard_ratio`` of each fused matrix is set to 0
    (J. Gildenblat's noise filter; never the class token's attention to itself); the identity is
    added for the residual path, ``Â = A + I``, and the rows renormalised to sum to 1; the rollout
    multiplies through the layers, ``R = Â_L ··· Â_2 Â_1``. Row 0 of R without its first
    ``num_prefix_tokens`` columns is the class token → patch map, returned as (N, rows, cols)
    (``grid_size``, default the square root of the number of patches) in the attentions' dtype and
    array module (NumPy, or CuPy for CuPy attentions)."""
    if head_fusion not in _HEAD_FUSIONS:
        raise ValueError(f"attention_rollout: head_fusion must be one of {', '.join(_HEAD_FUSIONS)}, got "
                         f"{head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"attention_rollout: discard_ratio must be in [0, 1), got {discard_ratio}")
    arrays = [a.data if isinstance(a, Tensor) else a for a in attentions]
    if not arrays:
        raise ValueError("attention_rollout: expected one attention array per block, got none")
    first = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.ndim != 4 or a.shape[2] != a.shape[3] or tuple(a.shape) != tuple(first):
            raise ValueError(f"attention_rollout: expected every block's attention as (N, heads, T, T) of one shape; "
                             f"block 0 has {tuple(first)}, block {i} has {tuple(a.shape)}")
    n, t = first[0], first[2]
    patches = t - num_prefix_tokens
    rows, cols = grid_size if grid_size is not None else (math.isqrt(patches), math.isqrt(patches))
    if patches < 1 or rows * cols != patches:
        raise ValueError(f"attention_rollout: {t} tokens minus {num_prefix_tokens} prefix token(s) = {patches} "
                         f"patches do not fill a {rows}×{cols} grid; pass grid_size=(rows, cols)")
    xp = get_array_module(arrays[0])
    eye = xp.eye(t, dtype=arrays[0].dtype)
    rollout = xp.broadcast_to(eye, (n, t, t))
    for attention in arrays:
        fused = _discard_lowest(_fuse_heads(attention, head_fusion), discard_ratio)
        a_hat = fused + eye
        a_hat = a_hat / a_hat.sum(axis=-1, keepdims=True)
        rollout = a_hat @ rollout
    return rollout[:, 0, num_prefix_tokens:].reshape(n, rows, cols)


def _vit_attentions(model: Module, image: Tensor) -> list[Any]:
    """The per-block attention weights of a ViT for ``image`` (1, C, H, W), through the interface of
    ``deepnum.models.vit`` (``record_attention(flag)``, ``attention_maps()``)."""
    if not (callable(getattr(model, "record_attention", None)) and callable(getattr(model, "attention_maps", None))):
        raise ValueError(f"attention rollout needs a Vision Transformer (a model with record_attention() and "
                         f"attention_maps(), e.g. deepnum.models.vit_mini_patch7_28); {type(model).__name__} has none")
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        model.record_attention(True)
        with no_grad():
            model(image)
        return list(model.attention_maps())
    finally:
        model.record_attention(False)
        for m, mode in modes.items():
            object.__setattr__(m, "training", mode)


def _display_image(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(C, H, W) → an (H, W) grey or (H, W, 3) RGB image in [0, 1] (min-max scaled over the whole image)."""
    shown = image[0] if image.shape[0] == 1 else image[:3].transpose(1, 2, 0)
    low, high = float(shown.min()), float(shown.max())
    shown = (shown - low) / (high - low) if high > low else np.zeros_like(shown)
    return shown.astype(np.float32), ("gray" if shown.ndim == 2 else None)


def plot_attention_rollout(model: Module, image: Any, path: str | os.PathLike, *, head_fusion: str = "mean",
                           discard_ratio: float = 0.0, tile: int = 256, title: str | None = None) -> np.ndarray:
    """Attention rollout of a ViT for one image (C, H, W) or (1, C, H, W): the image and, beside it,
    the image overlaid with the class token's rolled-out attention to each patch (scaled to its
    maximum, bilinearly smoothed over the patch grid, "jet" colours at 50% opacity). The PNG is
    ``figure_size(1, 2, tile)`` pixels. Returns the rollout map (rows, cols) of ``attention_rollout``."""
    tile = _check_tile(tile)
    x = image if isinstance(image, Tensor) else Tensor._make(np.ascontiguousarray(image, dtype=np.float32))
    x = x.unsqueeze(0) if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"plot_attention_rollout: expected one image (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    attentions = _vit_attentions(model, x)
    grid = tuple(getattr(model, "grid_size", ())) or None
    rollout = _to_numpy(attention_rollout(attentions, head_fusion, discard_ratio, grid_size=grid))[0]
    shown, cmap = _display_image(_to_numpy(x)[0])
    height, width = shown.shape[:2]
    fig = _new_figure(*figure_size(1, 2, tile))
    top = 1 - TITLE_PX / (fig.get_size_inches()[1] * DPI)
    _suptitle(fig, title or f"attention rollout ({head_fusion} over heads, discard {discard_ratio:g}), "
                            f"{rollout.shape[0]}×{rollout.shape[1]} patches")
    peak = float(rollout.max())
    for i in range(2):
        ax = fig.add_axes((i / 2 + 0.01, 0.01, 0.48, top - 0.02))
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if i == 1:
            ax.imshow(rollout / peak if peak > 0 else rollout, cmap="jet", alpha=0.5, vmin=0, vmax=1,
                      interpolation="bilinear", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        ax.set_axis_off()
    _save(fig, path)
    return rollout
