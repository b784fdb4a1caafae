"""bench/sequences.py builds the same model in both libraries: with the copied weights, the first
training step's loss is equal, and a few steps lower it in both (a smoke run, no timing)."""
import numpy as np

from bench.sequences import build_lstm_step, build_transformer_step


def _losses(step, n):
    return [float(step().item()) for _ in range(n)]


def test_lstm_lm_step_equals_torch():
    torch_step, reference = build_lstm_step("torch")
    ours_step, _ = build_lstm_step("deepnum", reference)
    theirs, ours = _losses(torch_step, 3), _losses(ours_step, 3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert ours[-1] < ours[0]
    assert abs(ours[0] - np.log(65)) < 0.1  # a fresh model is close to uniform over 65 characters


def test_transformer_classifier_step_equals_torch_without_dropout():
    torch_step, reference = build_transformer_step("torch")
    ours_step, ours_model = build_transformer_step("deepnum", reference)
    reference.eval()  # dropout draws different masks in the two libraries; eval turns it off
    ours_model.eval()
    theirs, ours = _losses(torch_step, 3), _losses(ours_step, 3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert ours[-1] < ours[0]
