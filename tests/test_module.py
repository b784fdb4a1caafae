"""The Module system against torch.nn: registration, traversal, state_dict keys, loading with
errors and no half-loads, modes, freezing, dtype moves, repr, containers, Linear parity."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn as nn


def to_dn_state(torch_module):
    return {k: dn.tensor(v.detach().numpy()) for k, v in torch_module.state_dict().items()}


class Block(nn.Module):
    def __init__(self, lib):
        super().__init__()
        self.layers = lib.ModuleList([lib.Linear(4, 4), lib.Linear(4, 4, bias=False)])
        self.heads = lib.ModuleDict({"a": lib.Linear(4, 2), "b": lib.Identity()})
        self.register_buffer("count", (dn if lib is nn else torch).zeros(3))
        self.register_buffer("scratch", (dn if lib is nn else torch).zeros(2), persistent=False)
        self.scale = 2.0

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).relu()
        return self.heads["a"](x) * self.scale


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 4, bias=False)])
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 2), "b": torch.nn.Identity()})
        self.register_buffer("count", torch.zeros(3))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.scale = 2.0

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).relu()
        return self.heads["a"](x) * self.scale


def models():
    dn.manual_seed(0)
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Flatten(), Block(nn), nn.Linear(2, 3))
    theirs = torch.nn.Sequential(torch.nn.Flatten(), TorchBlock(), torch.nn.Linear(2, 3))
    ours.load_state_dict(to_dn_state(theirs))
    return ours, theirs


def test_state_dict_keys_and_parameter_names_equal_torch():
    ours, theirs = models()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert len(list(ours.children())) == len(list(theirs.children())) == 3
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == 55


def test_forward_backward_equal_torch_after_loading():
    ours, theirs = models()
    x = np.random.default_rng(0).standard_normal((5, 2, 2)).astype(np.float32)
    y, yt = ours(dn.tensor(x)), theirs(torch.tensor(x))
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    yt.sum().backward()
    for (name, p), (_, pt) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_repr_equals_torch():
    ours, theirs = models()
    assert repr(ours) == repr(theirs).replace("TorchBlock", "Block")
    assert repr(nn.Unflatten(1, (2, 3))) == repr(torch.nn.Unflatten(1, (2, 3)))
    assert repr(nn.Linear(3, 2, bias=False)) == repr(torch.nn.Linear(3, 2, bias=False))


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_load_state_dict_errors_name_every_problem_and_load_nothing():
    ours, theirs = models()
    before = {k: v.numpy().copy() for k, v in ours.state_dict().items()}
    state = {k: dn.zeros(*v.shape) for k, v in ours.state_dict().items()}
    del state["1.layers.0.bias"]
    state["1.extra"] = dn.zeros(1)
    state["2.weight"] = dn.zeros(4, 4)
    with pytest.raises(RuntimeError) as err:
        ours.load_state_dict(state)
    message = str(err.value)
    assert "1.layers.0.bias" in message and "Missing" in message
    assert "1.extra" in message and "Unexpected" in message
    assert "size mismatch for 2.weight" in message and "(4, 4)" in message and "(3, 2)" in message
    for k, v in ours.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=f"{k} was changed by a failed load")


def test_load_state_dict_non_strict_reports_keys():
    model = nn.Linear(2, 2)
    result = model.load_state_dict({"weight": dn.ones(2, 2), "other": dn.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(model.weight.detach().numpy(), np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        model.load_state_dict({"weight": dn.ones(3, 2)}, strict=False)


def test_load_keeps_parameter_identity_and_dtype():
    model = nn.Linear(2, 2)
    weight = model.weight
    model.load_state_dict({"weight": dn.ones(2, 2, dtype=dn.float64), "bias": dn.zeros(2)})
    assert model.weight is weight and model.weight.dtype == dn.float32
    with pytest.raises(RuntimeError, match="dtype mismatch for bias"):
        model.load_state_dict({"weight": dn.ones(2, 2), "bias": dn.zeros(2, dtype=dn.int64)})


def test_train_eval_propagate():
    ours, _ = models()
    assert all(m.training for m in ours.modules())
    ours.eval()
    assert not any(m.training for m in ours.modules())
    ours.train()
    assert all(m.training for m in ours.modules())
    with pytest.raises(ValueError):
        ours.train("yes")


def test_requires_grad_freezes_a_submodule():
    ours, _ = models()
    ours[1].requires_grad_(False)
    ours(dn.randn(2, 2, 2)).sum().backward()
    assert all(p.grad is None for p in ours[1].parameters())
    assert all(p.grad is not None for p in ours[2].parameters())


def test_zero_grad_both_ways():
    model = nn.Linear(2, 2)
    model(dn.ones(1, 2)).sum().backward()
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not np.any(p.grad.numpy()) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_dtype_converts_floating_parameters_and_buffers():
    ours, _ = models()
    ours.double()
    assert all(p.dtype == dn.float64 and isinstance(p, nn.Parameter) for p in ours.parameters())
    assert all(b.dtype == dn.float64 for b in ours.buffers())
    assert ours(dn.randn(2, 2, 2, dtype=dn.float64)).dtype == dn.float64
    ours.float()
    assert all(p.dtype == dn.float32 for p in ours.parameters())


def test_apply_visits_every_module_children_first():
    ours, _ = models()
    seen = []
    ours.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Sequential" and seen.count("Linear") == 4


def test_attribute_rules_match_torch():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        model.weight = dn.ones(2, 2)
    model.bias = None
    assert "bias" not in model.state_dict() and model.bias is None
    model.scale = 3
    assert model.scale == 3 and "scale" not in model.state_dict()
    model.extra = nn.Parameter(dn.ones(1))
    assert "extra" in dict(model.named_parameters())
    del model.extra
    assert "extra" not in dict(model.named_parameters())
    with pytest.raises(AttributeError):
        _ = model.missing
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Broken(nn.Module):
            def __init__(self):
                self.weight = nn.Parameter(dn.ones(1))

        Broken()


def test_buffers_follow_assignment_and_buffer_marker():
    module = nn.Module()
    module.register_buffer("running", dn.zeros(2))
    module.running = dn.ones(2)
    assert "running" in module.state_dict() and module.running.numpy().sum() == 2
    module.marked = nn.Buffer(dn.ones(3))
    assert "marked" in module.state_dict()


def test_forward_hooks_see_inputs_and_outputs_and_can_be_removed():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    captured = []
    remove = model[0].register_forward_hook(lambda m, inputs, out: captured.append(out.shape))
    model(dn.ones(4, 2))
    remove()
    model(dn.ones(4, 2))
    assert captured == [(4, 3)]
    model[0].register_forward_pre_hook(lambda m, inputs: (inputs[0] * 0,))
    assert np.allclose(model[0](dn.ones(1, 2)).detach().numpy(), model[0].bias.detach().numpy())


def test_sequential_container_operations():
    model = nn.Sequential(nn.Linear(2, 2), nn.Identity(), nn.Linear(2, 1))
    assert len(model) == 3 and isinstance(model[-1], nn.Linear)
    assert isinstance(model[:2], nn.Sequential) and len(model[:2]) == 2
    del model[1]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]  # renumbered, as torch
    model.append(nn.Identity())
    assert len(model) == 3 and [type(m).__name__ for m in model] == ["Linear", "Linear", "Identity"]
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2)))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]


def test_module_list_and_dict_operations():
    layers = nn.ModuleList([nn.Linear(1, 1)])
    layers.extend([nn.Linear(1, 1)])
    layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "Linear"]
    assert isinstance(layers[-1], nn.Linear) and len(layers[1:]) == 2
    with pytest.raises(IndexError):
        layers[3]
    heads = nn.ModuleDict({"x": nn.Linear(1, 1)})
    heads["y"] = nn.Identity()
    assert list(heads.keys()) == ["x", "y"] and "y" in heads and len(heads) == 2
    del heads["x"]
    assert list(heads) == ["y"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (3,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(dtype, shape, bias):
    torch_layer = torch.nn.Linear(3, 4, bias=bias).to(getattr(torch, np.dtype(dtype).name))
    layer = nn.Linear(3, 4, bias=bias, dtype=dtype)
    layer.load_state_dict(to_dn_state(torch_layer))
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    xd, xt = dn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = layer(xd), torch_layer(xt)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
    g = np.random.default_rng(2).standard_normal(yt.shape).astype(dtype)
    (y * dn.tensor(g)).sum().backward()
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(xd.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)
    for (name, p), pt in zip(layer.named_parameters(), torch_layer.parameters(), strict=True):
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy(), rtol=tol, atol=tol, err_msg=name)
        assert p.grad.dtype == dtype


def test_linear_default_init_matches_torch_bounds():
    dn.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    w = layer.weight.detach().numpy()
    assert w.dtype == np.float32 and w.shape == (300, 400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert np.abs(layer.bias.detach().numpy()).max() <= bound


def test_linear_rejects_wrong_input_before_computing():
    with pytest.raises(ValueError, match=r"Linear\(3→4\): expected input \(\*, 3\), got \(8, 5\)"):
        nn.Linear(3, 4)(dn.ones(8, 5))


def test_flatten_unflatten_match_torch():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for ours, theirs in [(nn.Flatten(), torch.nn.Flatten()), (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
                         (nn.Unflatten(2, (2, 2)), torch.nn.Unflatten(2, (2, 2)))]:
        np.testing.assert_array_equal(ours(dn.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy())
        assert repr(ours) == repr(theirs)


def test_parameter_wraps_and_requires_grad():
    data = dn.ones(2)
    p = nn.Parameter(data)
    assert p.requires_grad and p.is_leaf and isinstance(p, dn.Tensor)
    assert p.data is data.data
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(dn.ones(1), requires_grad=False).requires_grad
