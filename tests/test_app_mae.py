"""`deepnum mae`: the masked autoencoder's pieces (patches, masking, position embeddings, the loss on
removed patches) checked against torch / direct computation, and the app end to end."""
import json

import numpy as np
import pytest
import torch

import deepnum as dn
from deepnum.apps._mae_model import MaskedAutoencoder, patchify, sincos_pos_embed_2d, unpatchify
from deepnum.cli import main


def _images(n=4, seed=0):
    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)


def test_patchify_matches_the_reference_einsum_and_inverts():
    x = _images()
    got = patchify(dn.tensor(x), 4).numpy()
    t = torch.from_numpy(x).reshape(4, 1, 7, 4, 7, 4)
    want = torch.einsum("nchpwq->nhwpqc", t).reshape(4, 49, 16).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(unpatchify(dn.tensor(got), 4, 1).numpy(), x)


def test_sincos_position_embedding():
    emb = sincos_pos_embed_2d(16, 3)
    assert emb.shape == (1, 10, 16) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb[0, 0], 0)
    grid = emb[0, 1:].reshape(3, 3, 16)                       # (row, col, channel)
    np.testing.assert_allclose(grid[0, :, :8], grid[2, :, :8])  # first half: the column only
    np.testing.assert_allclose(grid[:, 0, 8:], grid[:, 2, 8:])  # second half: the row only
    omega = 1.0 / 10000 ** (np.arange(4) / 4)
    np.testing.assert_allclose(grid[1, 2, :8], np.concatenate([np.sin(2 * omega), np.cos(2 * omega)]), rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_pos_embed_2d(10, 3)


def test_random_masking_keeps_a_quarter_and_restores_the_order():
    model = MaskedAutoencoder()
    keep, restore, mask = model.random_masking(5, np.random.default_rng(0), 0.75)
    assert keep.shape == (5, 12) and restore.shape == (5, 49) and mask.shape == (5, 49)
    np.testing.assert_array_equal(mask.sum(1), 37)
    for i in range(5):
        np.testing.assert_array_equal(mask[i, keep[i]], 0)
        shuffle = np.argsort(restore[i])
        np.testing.assert_array_equal(shuffle[:12], keep[i])
    assert len({tuple(sorted(k)) for k in keep}) == 5           # each image its own mask


def test_encoder_sees_only_visible_patches_and_loss_is_on_removed_ones():
    dn.manual_seed(0)
    model = MaskedAutoencoder()
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    x = dn.tensor(_images(3))
    loss, pred, mask = model(x, np.random.default_rng(1))
    assert seen == [(3, 13, 64)]                                 # class token + 12 of 49 patches
    assert tuple(pred.shape) == (3, 49, 16) and tuple(mask.shape) == (3, 49)
    err = ((pred.detach().numpy() - patchify(x, 4).numpy()) ** 2).mean(-1)
    m = mask.numpy()
    np.testing.assert_allclose(loss.item(), (err * m).sum() / m.sum(), rtol=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert np.abs(model.mask_token.grad.numpy()).sum() > 0 and np.abs(model.patch_embed.weight.grad.numpy()).sum() > 0


def test_norm_pix_target_and_features():
    dn.manual_seed(0)
    model = MaskedAutoencoder(norm_pix_loss=True)
    target = model.target(dn.tensor(_images(2))).numpy()
    np.testing.assert_allclose(target.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(target.var(-1, ddof=1), 1, rtol=1e-3)
    with dn.no_grad():
        feats = model.features(dn.tensor(_images(2)))
    assert tuple(feats.shape) == (2, 64)
    with pytest.raises(ValueError, match=r"expected images \(N, 1, 28, 28\), got \(2, 28, 28\)"):
        model.features(dn.tensor(_images(2)[:, 0]))
    with pytest.raises(ValueError, match="mask_ratio"):
        MaskedAutoencoder(mask_ratio=1.0)


def test_app_mae_tiny_run_is_reproducible(tmp_path, capsys):
    args = ["mae", "--epochs", "1", "--train-size", "96", "--test-size", "50", "--probe-steps", "20",
            "--batch-size", "32"]
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main([*args, "--output", str(out)]) == 0
        res = json.loads((out / "results.json").read_text())
        results.append((res["pretrain_loss"], res["probe_accuracy_mae"], res["probe_accuracy_random"]))
        for png in ("reconstructions.png", "loss.png"):
            assert (out / png).stat().st_size > 0
        assert (out / "mae.safetensors").is_file()
    assert results[0] == results[1]
    assert 0.0 <= results[0][1] <= 1.0 and len(results[0][0]) == 1
    assert "linear probe test accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_app_mae_pretraining_beats_a_random_encoder(tmp_path):
    assert main(["mae", "--output", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["probe_accuracy_mae"] > res["probe_accuracy_random"] + 0.03
    assert res["pretrain_loss"][-1] < 0.7 * res["pretrain_loss"][0]
