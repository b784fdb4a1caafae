"""Swin Transformer (deepnum.models.swin) against torchvision: parameter counts, state_dict layout,
eval outputs (padded, shifted and unshifted windows), training-mode gradients of a small config, the
shifted-window attention mask, the relative position index, shapes, init and a slow MNIST run."""
import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum import nn
from deepnum.models import create_model, model_info
from deepnum.models.swin import (
    ShiftedWindowAttention,
    SwinTransformer,
    relative_position_index,
    shifted_window_mask,
    swin_b,
    swin_micro,
    swin_s,
    swin_t,
    window_partition,
    window_reverse,
)
from tests.zoo_helpers import (
    assert_same_eval_output,
    assert_same_state_dict_layout,
    copy_weights,
    count_parameters,
    import_torchvision,
)

tv = import_torchvision()


def build_without_init(builder):
    """Build a large model with the random initialisers turned into no-ops: layout and counts do
    not depend on the values, and the eval tests overwrite every tensor with torchvision's (random
    init of 28-88 M parameters would take most of this file's time)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("trunc_normal_", "kaiming_uniform_", "uniform_", "xavier_uniform_", "normal_"):
            mp.setattr(dn.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        return builder()


@pytest.fixture(scope="module")
def swin_t_pair():
    """deepnum's swin_t (values to be copied in) and torchvision's, freshly initialised (seeded)."""
    torch.manual_seed(0)
    return build_without_init(swin_t), tv.models.swin_t()


def tv_micro(**kwargs):
    """torchvision's SwinTransformer in swin_micro's configuration (3 input channels)."""
    return tv.models.SwinTransformer([2, 2], 32, [2, 2, 2], [2, 4, 8], [4, 4], num_classes=10, **kwargs)


# ----------------------------------------------------------------------------- counts and layout
def test_swin_t_count_layout_buffers_and_index(swin_t_pair):
    ours, theirs = swin_t_pair
    assert count_parameters(ours) == count_parameters(theirs) == 28_288_354
    assert_same_state_dict_layout(ours, theirs)
    buffers = {k for k, _ in ours.named_buffers()}
    params = {k for k, _ in ours.named_parameters()}
    assert buffers == {k for k, _ in theirs.named_buffers()} == {k for k in ours.state_dict() if k.endswith("_index")}
    assert len(buffers) == 12 and not buffers & params
    assert "features.1.0.attn.relative_position_bias_table" in params
    index = ours.features[1][0].attn.relative_position_index
    assert index.dtype == np.int64 and not index.requires_grad
    np.testing.assert_array_equal(index.numpy(), theirs.features[1][0].attn.relative_position_index.numpy())


@pytest.mark.parametrize("builder, name, expected", [(swin_s, "swin_s", 49_606_258), (swin_b, "swin_b", 87_768_224)])
def test_larger_variants_count_and_layout(builder, name, expected):
    with torch.device("meta"):  # torchvision's layout without spending time on its initialisation
        theirs = getattr(tv.models, name)()
    ours = build_without_init(builder)
    assert count_parameters(ours) == count_parameters(theirs) == expected
    assert_same_state_dict_layout(ours, theirs)
    probs = [m.p for m in ours.modules() if isinstance(m, nn.StochasticDepth)]
    assert probs[0] == 0.0 and probs[-1] == pytest.approx({"swin_s": 0.3, "swin_b": 0.5}[name])


def test_swin_micro_count_layout_and_repr():
    dn.manual_seed(0)
    torch.manual_seed(0)
    ours, theirs = swin_micro(in_chans=3), tv_micro(stochastic_depth_prob=0.1)
    assert count_parameters(swin_micro()) == 566_790  # 1 input channel, 10 classes
    assert count_parameters(ours) == count_parameters(theirs) == 567_046
    assert_same_state_dict_layout(ours, theirs)
    assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------------- equality with torchvision
@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (1, 3, 56, 72)])
def test_swin_t_eval_output_equals_torchvision(swin_t_pair, shape):
    """64×64: 16×16 tokens padded to 21×21 (shifted, masked), 8×8 → 14×14 (shifted), 4×4 and 2×2 →
    one 7×7 window (no shift). 56×72: 14×18 tokens, height a multiple of the window, width padded."""
    ours, theirs = swin_t_pair
    assert_same_eval_output(ours, theirs, shape, seed=shape[-1])


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 28, 28), (1, 3, 20, 36)])
def test_swin_micro_eval_output_equals_torchvision(shape):
    dn.manual_seed(1)
    torch.manual_seed(1)
    assert_same_eval_output(swin_micro(in_chans=3), tv_micro(), shape, seed=shape[-1])


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_swin_micro_training_gradients_equal_torchvision(dtype, tol):
    """Training mode without dropout/stochastic depth is deterministic: the input gradient and every
    parameter gradient (bias table, LayerNorms, merging, head...) agree on a 28×28 (padded) input."""
    torch.manual_seed(2)
    dn.manual_seed(2)
    theirs = tv_micro(stochastic_depth_prob=0.0).to(dtype)
    ours = swin_micro(in_chans=3, stochastic_depth_prob=0.0)
    ours = ours.double() if dtype == torch.float64 else ours
    copy_weights(theirs, ours)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 28, 28))
    g = rng.standard_normal((2, 10))
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    theirs(xt).backward(torch.tensor(g, dtype=dtype))
    xd = dn.tensor(x.astype(xt.detach().numpy().dtype), requires_grad=True)
    out = ours(xd)
    out.backward(dn.tensor(g.astype(out.dtype)))
    assert out.dtype == xd.dtype and xd.grad.dtype == xd.dtype
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad.dtype == p.dtype, name
        scale = max(1.0, float(grads[name].grad.abs().max()))
        np.testing.assert_allclose(p.grad.numpy(), grads[name].grad.numpy(), rtol=tol, atol=tol * scale, err_msg=name)


# ----------------------------------------------------------------------------- mask and index
def brute_force_mask(h, w, m, s):
    """For every window of the rolled map and every token pair: may they attend? A rolled position
    (i, j) holds the original ((i + s) mod h, (j + s) mod w); the pair may attend only when both
    tokens wrapped around (or both did not) along each axis."""
    n_windows = (h // m) * (w // m)
    allowed = np.zeros((n_windows, m * m, m * m), bool)
    for wi in range(n_windows):
        r0, c0 = (wi // (w // m)) * m, (wi % (w // m)) * m
        cells = [(r0 + a, c0 + b) for a in range(m) for b in range(m)]
        for p, (i1, j1) in enumerate(cells):
            for q, (i2, j2) in enumerate(cells):
                allowed[wi, p, q] = ((i1 + s >= h) == (i2 + s >= h)) and ((j1 + s >= w) == (j2 + s >= w))
    return allowed


def test_shifted_window_mask_on_a_small_map():
    mask = shifted_window_mask(8, 8, (4, 4), (2, 2))
    assert mask.shape == (4, 16, 16) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, -100.0}
    np.testing.assert_array_equal(mask == 0, brute_force_mask(8, 8, 4, 2))
    assert (mask[0] == 0).all()  # the top-left window holds one region
    # the bottom-right window: four 2×2 regions; token 0 (rolled (4, 4)) meets only tokens 0, 1, 4, 5
    np.testing.assert_array_equal(np.flatnonzero(mask[3, 0] == 0), [0, 1, 4, 5])
    np.testing.assert_array_equal(np.flatnonzero(mask[3, 15] == 0), [10, 11, 14, 15])
    # a map of 12 rows, 8 columns (3×2 windows): only the last window row / column is split
    np.testing.assert_array_equal(shifted_window_mask(12, 8, (4, 4), (2, 2)) == 0, brute_force_mask(12, 8, 4, 2))
    assert not shifted_window_mask(8, 8, (4, 4), (2, 2)).flags.writeable


def test_masked_tokens_do_not_see_each_other():
    """Shifted attention on an 8×8 map (window 4, shift 2): changing the original token (0, 0) (it
    wraps to the bottom-right window) changes its same-region neighbour (1, 1) but not (7, 7), which
    shares the window but comes from the other side of the map."""
    dn.manual_seed(4)
    attn = ShiftedWindowAttention(6, 4, 2, num_heads=2).double()
    x = np.random.default_rng(5).standard_normal((1, 8, 8, 6))
    y0 = attn(dn.tensor(x)).detach().numpy()
    x[0, 0, 0] += 3.0
    y1 = attn(dn.tensor(x)).detach().numpy()
    changed = np.abs(y1 - y0).max(axis=-1)[0]
    assert changed[1, 1] > 1e-3 and changed[0, 0] > 1e-3
    for i, j in [(7, 7), (6, 6), (0, 7), (7, 0), (5, 5), (2, 2)]:
        assert changed[i, j] < 1e-12, (i, j)


def test_relative_position_index_2x2_by_hand():
    """Tokens (0,0), (0,1), (1,0), (1,1); index = (Δy + 1)·3 + (Δx + 1) into a 3×3 table."""
    expected = [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    np.testing.assert_array_equal(relative_position_index((2, 2)).reshape(4, 4), expected)
    dn.manual_seed(6)
    attn = ShiftedWindowAttention(4, 2, 0, num_heads=2)
    assert tuple(attn.relative_position_bias_table.shape) == (9, 2)
    table, bias = attn.relative_position_bias_table.detach().numpy(), attn.relative_position_bias().detach().numpy()
    assert bias.shape == (1, 2, 4, 4)
    np.testing.assert_array_equal(bias[0], table[np.array(expected)].transpose(2, 0, 1))
    assert relative_position_index((3, 2)).max() == 5 * 3 - 1  # rectangular windows: (2·3−1)(2·2−1) rows


def test_window_partition_and_reverse():
    x = dn.tensor(np.arange(2 * 8 * 12 * 3, dtype=np.float32).reshape(2, 8, 12, 3))
    windows = window_partition(x, (4, 4))
    assert tuple(windows.shape) == (2 * 6, 16, 3)
    np.testing.assert_array_equal(windows.numpy()[6 + 4], x.numpy()[1, 4:8, 4:8].reshape(16, 3))
    np.testing.assert_array_equal(window_reverse(windows, (4, 4), 2, 8, 12).numpy(), x.numpy())


# ----------------------------------------------------------------------------- shapes, errors, init
def test_forward_shapes_and_registry():
    dn.manual_seed(7)
    model = create_model("swin_micro", num_classes=5)
    assert model_info("swin_micro").small_input and model_info("swin_t").family == "swin"
    assert not model_info("swin_s").small_input
    model.eval()
    with dn.no_grad():
        x = dn.randn(2, 1, 28, 28)
        shapes = [tuple(x.shape)]
        for layer in model.features:
            x = layer(x)
            shapes.append(tuple(x.shape))
        assert shapes == [(2, 1, 28, 28), (2, 14, 14, 32), (2, 14, 14, 32), (2, 7, 7, 64), (2, 7, 7, 64),
                          (2, 4, 4, 128), (2, 4, 4, 128)]
        assert tuple(model(dn.randn(3, 1, 32, 32)).shape) == (3, 5)
        assert tuple(model(dn.randn(1, 1, 2, 2)).shape) == (1, 5)  # one token


def test_bad_input_raises_clear_errors():
    model = swin_micro()
    with pytest.raises(ValueError, match=r"SwinTransformer\(patch=\[2, 2\], embed_dim=32, window=\[4, 4\]\): "
                                         r"expected input \(N, 1, H, W\).*got \(2, 3, 28, 28\)"):
        model(dn.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got \(1, 28, 28\)"):
        model(dn.zeros(1, 28, 28))
    with pytest.raises(ValueError, match=r"H >= 2, W >= 2, got \(1, 1, 1, 8\)"):
        model(dn.zeros(1, 1, 1, 8))
    with pytest.raises(ValueError, match=r"ShiftedWindowAttention\(dim=6, window=\[4, 4\]\): expected input "
                                         r"\(B, H, W, 6\), got \(1, 6, 8, 8\)"):
        ShiftedWindowAttention(6, 4, 2, 2)(dn.zeros(1, 6, 8, 8))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        ShiftedWindowAttention(6, 4, 2, 4)
    with pytest.raises(ValueError, match="shift_size < window_size"):
        ShiftedWindowAttention(6, 4, 4, 2)
    with pytest.raises(ValueError, match="one positive depth per stage"):
        SwinTransformer([4, 4], 96, [2, 2], [3], [7, 7])


def test_default_initialisation_follows_torchvision():
    dn.manual_seed(8)
    model = swin_micro(in_chans=3)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    weights = np.concatenate([m.weight.detach().numpy().ravel() for m in linears])
    assert abs(weights.std() - 0.02) < 0.0005 and abs(weights.mean()) < 0.0005
    assert all((m.bias.detach().numpy() == 0).all() for m in linears if m.bias is not None)
    tables = np.concatenate([m.relative_position_bias_table.detach().numpy().ravel() for m in model.modules()
                             if isinstance(m, ShiftedWindowAttention)])
    assert abs(tables.std() - 0.02) < 0.002
    conv = model.features[0][0]  # PyTorch's default: U(-1/√fan_in, 1/√fan_in), fan_in = 3·2·2
    assert np.abs(conv.weight.detach().numpy()).max() <= 1 / np.sqrt(12) and conv.weight.detach().numpy().std() > 0.1
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert all((m.weight.detach().numpy() == 1).all() and (m.bias.detach().numpy() == 0).all() for m in norms)


def test_blocks_use_row_stochastic_depth_rising_with_depth():
    """torchvision's schedule: p = stochastic_depth_prob · block / (blocks − 1), per-sample ("row")."""
    model = swin_micro()
    drops = [m for m in model.modules() if isinstance(m, nn.StochasticDepth)]
    assert len(drops) == 6 and {m.mode for m in drops} == {"row"}
    np.testing.assert_allclose([m.p for m in drops], 0.1 * np.arange(6) / 5)
    model.train()
    dn.manual_seed(10)
    x = dn.randn(8, 1, 28, 28)
    assert not np.allclose(model(x).detach().numpy(), model(x).detach().numpy())  # random in training
    model.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), model(x).detach().numpy())


# ----------------------------------------------------------------------------- training
@pytest.mark.slow
def test_swin_micro_learns_mnist():
    """2,000 MNIST training images, 3 epochs, AdamW with a one-cycle schedule (peak 2e-3), batch 32:
    the epoch loss falls from about 2.2 to 1.25 and test accuracy reaches about 0.62 (measured;
    chance is 0.1). About 40 s on 2 busy cores."""
    from deepnum.data import DataLoader, TensorDataset
    from deepnum.data.datasets.mnist import mnist_arrays
    from deepnum.train import evaluate, fit

    xs, ys = mnist_arrays("train")
    xt, yt = mnist_arrays("test")
    idx = np.random.default_rng(0).permutation(len(xs))[:2000]
    dn.manual_seed(0)
    model = swin_micro()
    loader = DataLoader(TensorDataset(dn.tensor(xs[idx]), dn.tensor(ys[idx])), batch_size=32, shuffle=True,
                        generator=dn.Generator().manual_seed(0))
    optimizer = dn.optim.AdamW(model.parameters(), lr=2e-3)
    scheduler = dn.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=3 * len(loader), pct_start=0.2)
    history = fit(model, loader, epochs=3, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(), scheduler=scheduler,
                  scheduler_interval="step", progress=False)
    loss = history.history["loss"]
    assert loss[0] > loss[1] > loss[2] and loss[2] < 1.6, loss
    result = evaluate(model, DataLoader(TensorDataset(dn.tensor(xt), dn.tensor(yt)), batch_size=250),
                      nn.CrossEntropyLoss())
    assert result["accuracy"] > 0.45, result
