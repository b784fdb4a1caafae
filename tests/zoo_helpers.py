"""Shared by the model-zoo tests: importing torchvision 0.28 against the CPU build of torch, copying
a torchvision model's weights into a deepnum model, and comparing eval-mode outputs."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import deepnum as dn


def import_torchvision():
    """torchvision's compiled ops do not load against torch's CPU wheel; registering an empty
    ``torchvision._meta_registrations`` first lets the pure-Python model definitions import."""
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    try:
        import torchvision
    except ImportError:  # pragma: no cover - the dev extras install it
        pytest.fail("torchvision is needed for the zoo tests: pip install --no-deps torchvision==0.28.0")
    return torchvision


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def copy_weights(torch_model, dn_model) -> None:
    """Load the torch model's state_dict into the deepnum model (same keys and shapes required)."""
    state = {k: dn.tensor(v.detach().numpy()) for k, v in torch_model.state_dict().items()}
    dn_model.load_state_dict(state)


def assert_same_eval_output(dn_model, torch_model, input_shape, seed=0, rtol=1e-4, atol=1e-4) -> None:
    """Copy weights, switch both to eval mode, and compare the outputs on one random input."""
    copy_weights(torch_model, dn_model)
    dn_model.eval()
    torch_model.eval()
    x = np.random.default_rng(seed).standard_normal(input_shape).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.tensor(x))
    with dn.no_grad():
        actual = dn_model(dn.tensor(x))
    expected = expected.logits if hasattr(expected, "logits") else expected
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=rtol, atol=atol)


def assert_same_state_dict_layout(dn_model, torch_model) -> None:
    ours = {k: tuple(v.shape) for k, v in dn_model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in torch_model.state_dict().items()}
    assert list(ours) == list(theirs), f"keys differ: {set(ours) ^ set(theirs)}"
    assert ours == theirs
