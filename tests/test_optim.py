"""Optimizers against torch.optim: 50 training steps of the same 2-layer MLP from the same weights on
the same batch give the same losses, final weights and optimizer state, for every optimizer and option,
in float64 (rtol 1e-10) and float32; plus param groups, frozen layers, state_dict layout, save/load
continuation, zero_grad and the errors for bad configurations."""
import copy

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.nn
import deepnum.optim  # noqa: F401

IN, HID, OUT, N = 5, 7, 3, 16
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


class DnMLP(dn.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.fc1 = dn.nn.Linear(IN, HID, dtype=dtype)
        self.fc2 = dn.nn.Linear(HID, OUT, dtype=dtype)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


class TorchMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(IN, HID)
        self.fc2 = torch.nn.Linear(HID, OUT)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


def make_nets(dtype=np.float64, seed=0):
    """Twin networks with torch's initial weights copied into deepnum's."""
    torch.manual_seed(seed)
    t_net = TorchMLP().to(torch.float64 if dtype == np.float64 else torch.float32)
    d_net = DnMLP(dtype)
    d_net.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in t_net.state_dict().items()})
    return d_net, t_net


def batch(dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, IN)).astype(dtype)
    return x, rng.standard_normal((N, OUT)).astype(dtype), rng.integers(0, OUT, size=N)


def mse(out, y, _):
    return ((out - y) ** 2).mean()


def cross_entropy(out, _, labels):
    return -out.log_softmax(1).gather(1, labels[:, None]).mean()


def train(net, opt, lib, dtype, steps=50, loss_fn=mse):
    """``steps`` steps on one fixed batch; returns the losses."""
    x, y, labels = (lib.tensor(a) for a in batch(dtype))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(x), y, labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses)


def assert_same_params(d_net, t_net, dtype, what=""):
    for (name, p), (t_name, q) in zip(d_net.named_parameters(), t_net.named_parameters(), strict=True):
        assert name == t_name
        assert p.dtype == dtype, f"{what} {name}: dtype {p.dtype}"
        np.testing.assert_allclose(p.data, q.detach().numpy(), **TOL[dtype], err_msg=f"{what} {name}")


def assert_same_state(d_opt, t_opt, dtype):
    """state_dict()s with the same structure, hyper-parameters and state values (step's dtype too)."""
    ds, ts = d_opt.state_dict(), t_opt.state_dict()
    assert ds["param_groups"] == ts["param_groups"]
    assert ds["state"].keys() == ts["state"].keys()
    for i, t_entry in ts["state"].items():
        d_entry = ds["state"][i]
        assert list(d_entry) == list(t_entry), f"state keys of parameter {i}"
        for key, tv in t_entry.items():
            dv = d_entry[key]
            assert isinstance(dv, dn.Tensor) and dv.shape == tuple(tv.shape), key
            assert str(dv.dtype) == str(tv.dtype).removeprefix("torch."), f"{key}: {dv.dtype} vs {tv.dtype}"
            np.testing.assert_allclose(dv.data, tv.numpy(), **TOL[dtype], err_msg=f"state {i} {key}")


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.05)),
    ("SGD", dict(lr=0.01, maximize=True)),
    ("SGD", dict(lr=0.005, momentum=0.5, weight_decay=0.01, nesterov=True, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, eps=1e-3, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=1e-3, alpha=0.9)),
    ("RMSprop", dict(lr=1e-3, momentum=0.9)),
    ("RMSprop", dict(lr=1e-3, centered=True)),
    ("RMSprop", dict(lr=1e-3, weight_decay=0.1)),
    ("RMSprop", dict(lr=1e-3, alpha=0.95, momentum=0.5, centered=True, weight_decay=0.01, eps=1e-4)),
    ("RMSprop", dict(lr=1e-3, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("Adam", dict(lr=1e-2, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, betas=(0.3, 0.9), eps=1e-6)),
    ("Adam", dict(lr=1e-2, decoupled_weight_decay=True, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.3)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True, betas=(0.8, 0.95), maximize=True)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}-{'-'.join(k) or 'defaults'}" for n, k in CONFIGS])
def test_training_matches_torch(name, kwargs, dtype):
    d_net, t_net = make_nets(dtype)
    d_opt = getattr(dn.optim, name)(d_net.parameters(), **kwargs)
    t_opt = getattr(torch.optim, name)(t_net.parameters(), **kwargs)
    d_losses, t_losses = train(d_net, d_opt, dn, dtype), train(t_net, t_opt, torch, dtype)
    np.testing.assert_allclose(d_losses, t_losses, **TOL[dtype])
    if not kwargs.get("maximize"):
        assert d_losses[-1] < d_losses[0]
    assert_same_params(d_net, t_net, dtype)
    assert_same_state(d_opt, t_opt, dtype)


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.5, momentum=0.9)), ("Adagrad", dict(lr=0.1)),
                                          ("RMSprop", dict(centered=True)), ("Adam", dict(lr=1e-2)),
                                          ("AdamW", dict(lr=1e-2, amsgrad=True))])
def test_cross_entropy_training_matches_torch(name, kwargs):
    for dtype in (np.float64, np.float32):
        d_net, t_net = make_nets(dtype, seed=1)
        d_opt = getattr(dn.optim, name)(d_net.parameters(), **kwargs)
        t_opt = getattr(torch.optim, name)(t_net.parameters(), **kwargs)
        np.testing.assert_allclose(train(d_net, d_opt, dn, dtype, loss_fn=cross_entropy),
                                   train(t_net, t_opt, torch, dtype, loss_fn=cross_entropy), **TOL[dtype])
        assert_same_params(d_net, t_net, dtype)


def test_defaults_and_hyperparameter_names_match_torch():
    d_net, t_net = make_nets()
    for name in ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW"):
        d_opt = getattr(dn.optim, name)(d_net.parameters())
        t_opt = getattr(torch.optim, name)(t_net.parameters())
        assert d_opt.defaults == t_opt.defaults, name
        assert repr(d_opt) == repr(t_opt)


# ----------------------------------------------------------------- param groups, frozen layers
def groups(net):
    """Two groups: the body with a smaller lr, the head with its own momentum."""
    return [{"params": net.fc1.parameters(), "lr": 1e-3}, {"params": net.fc2.parameters(), "momentum": 0.5}]


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=1e-2)),
                                          ("Adagrad", dict(lr=0.1)), ("RMSprop", dict(lr=1e-2)),
                                          ("AdamW", dict(lr=1e-2))])
def test_param_groups_with_their_own_lr(name, kwargs):
    """Fine-tuning: a smaller learning rate for the pre-trained body than for the head."""
    d_net, t_net = make_nets()
    d_opt = getattr(dn.optim, name)([{"params": d_net.fc1.parameters(), "lr": 1e-3},
                                     {"params": d_net.fc2.parameters()}], **kwargs)
    t_opt = getattr(torch.optim, name)([{"params": t_net.fc1.parameters(), "lr": 1e-3},
                                        {"params": t_net.fc2.parameters()}], **kwargs)
    assert [g["lr"] for g in d_opt.param_groups] == [1e-3, kwargs["lr"]]
    assert repr(d_opt) == repr(t_opt)
    np.testing.assert_allclose(train(d_net, d_opt, dn, np.float64, steps=25),
                               train(t_net, t_opt, torch, np.float64, steps=25), **TOL[np.float64])
    for opt in (d_opt, t_opt):  # what a learning-rate scheduler does between steps
        for group in opt.param_groups:
            group["lr"] *= 0.1
    np.testing.assert_allclose(train(d_net, d_opt, dn, np.float64, steps=25),
                               train(t_net, t_opt, torch, np.float64, steps=25), **TOL[np.float64])
    assert_same_params(d_net, t_net, np.float64)
    assert_same_state(d_opt, t_opt, np.float64)


def test_add_param_group_during_training():
    """Unfreeze the body after some steps, with its own lr: same as torch."""
    d_net, t_net = make_nets()
    d_opt = dn.optim.Adam(d_net.fc2.parameters(), lr=1e-2)
    t_opt = torch.optim.Adam(t_net.fc2.parameters(), lr=1e-2)
    train(d_net, d_opt, dn, np.float64, steps=10)
    train(t_net, t_opt, torch, np.float64, steps=10)
    d_opt.add_param_group({"params": d_net.fc1.parameters(), "lr": 1e-3, "amsgrad": True})
    t_opt.add_param_group({"params": t_net.fc1.parameters(), "lr": 1e-3, "amsgrad": True})
    assert d_opt.param_groups[1]["betas"] == (0.9, 0.999)
    np.testing.assert_allclose(train(d_net, d_opt, dn, np.float64, steps=20),
                               train(t_net, t_opt, torch, np.float64, steps=20), **TOL[np.float64])
    assert_same_params(d_net, t_net, np.float64)
    assert_same_state(d_opt, t_opt, np.float64)


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
def test_frozen_submodule_stays_unchanged(name):
    d_net, t_net = make_nets()
    d_net.fc1.requires_grad_(False)
    t_net.fc1.requires_grad_(False)
    before = {k: v.data.copy() for k, v in d_net.state_dict().items()}
    kwargs = dict(lr=0.05, momentum=0.9, weight_decay=0.1) if name == "SGD" else dict(weight_decay=0.1)
    d_opt = getattr(dn.optim, name)(d_net.parameters(), **kwargs)
    t_opt = getattr(torch.optim, name)(t_net.parameters(), **kwargs)
    np.testing.assert_allclose(train(d_net, d_opt, dn, np.float64), train(t_net, t_opt, torch, np.float64),
                               **TOL[np.float64])
    for key in ("fc1.weight", "fc1.bias"):
        np.testing.assert_array_equal(d_net.state_dict()[key].data, before[key])
    assert not np.array_equal(d_net.fc2.weight.data, before["fc2.weight"])
    assert_same_params(d_net, t_net, np.float64)
    assert_same_state(d_opt, t_opt, np.float64)  # no state for the frozen layer (Adagrad: its initial state)


# ----------------------------------------------------------------- in place, dtypes, closure
def test_update_in_place_float32_and_version_counter():
    d_net, _ = make_nets(np.float32)
    opt = dn.optim.Adam(d_net.parameters(), lr=1e-2, amsgrad=True)
    arrays = [p.data for p in d_net.parameters()]
    versions = [p._version for p in d_net.parameters()]
    train(d_net, opt, dn, np.float32, steps=3)
    for p, a, v in zip(d_net.parameters(), arrays, versions):
        assert p.data is a and p.dtype == np.float32 and p._version > v
        for key, value in opt.state[p].items():
            assert value.dtype == np.float32, key
    exp_avg = opt.state[d_net.fc1.weight]["exp_avg"].data
    train(d_net, opt, dn, np.float32, steps=1)
    assert opt.state[d_net.fc1.weight]["exp_avg"].data is exp_avg


def test_numpy_float64_hyperparameters_do_not_upcast():
    d_net, _ = make_nets(np.float32)
    opt = dn.optim.SGD(d_net.parameters(), lr=np.float64(0.1), momentum=np.float64(0.9))
    train(d_net, opt, dn, np.float32, steps=2)
    assert all(opt.state[p]["momentum_buffer"].dtype == np.float32 for p in d_net.parameters())


def test_step_is_float64_under_float64_default_dtype():
    d_net, t_net = make_nets()
    old = dn.get_default_dtype()
    dn.set_default_dtype(dn.float64)
    try:
        opt = dn.optim.Adam(d_net.parameters())
        train(d_net, opt, dn, np.float64, steps=2)
    finally:
        dn.set_default_dtype(old)
    assert opt.state[d_net.fc1.weight]["step"].dtype == np.float64
    assert float(opt.state[d_net.fc1.weight]["step"]) == 2.0


def test_closure_and_parameters_without_grad_are_skipped():
    d_net, _ = make_nets()
    extra = dn.nn.Parameter(dn.ones(3, dtype=dn.float64))
    opt = dn.optim.SGD([*d_net.parameters(), extra], lr=0.1, momentum=0.9)
    x, y, labels = (dn.tensor(a) for a in batch(np.float64))

    def closure():
        opt.zero_grad()
        loss = mse(d_net(x), y, labels)
        loss.backward()
        return loss

    first = opt.step(closure)
    assert isinstance(first, dn.Tensor) and opt.step(closure).item() < first.item()
    np.testing.assert_array_equal(extra.data, np.ones(3))
    assert extra not in opt.state


def test_zero_grad_set_to_none_and_zeros():
    d_net, t_net = make_nets()
    opt = dn.optim.SGD(d_net.parameters(), lr=0.1)
    train(d_net, opt, dn, np.float64, steps=1)
    grad = d_net.fc1.weight.grad
    opt.zero_grad(set_to_none=False)
    assert d_net.fc1.weight.grad is grad and not grad.data.any()
    opt.zero_grad()
    assert all(p.grad is None for p in d_net.parameters())


# ----------------------------------------------------------------- state_dict
def test_state_dict_structure_matches_torch():
    d_net, t_net = make_nets()
    d_opt = dn.optim.RMSprop(groups(d_net), lr=1e-2, momentum=0.9, centered=True)
    t_opt = torch.optim.RMSprop(groups(t_net), lr=1e-2, momentum=0.9, centered=True)
    train(d_net, d_opt, dn, np.float64, steps=3)
    train(t_net, t_opt, torch, np.float64, steps=3)
    ds, ts = d_opt.state_dict(), t_opt.state_dict()
    assert list(ds) == list(ts) == ["state", "param_groups"]
    assert [g["params"] for g in ds["param_groups"]] == [[0, 1], [2, 3]]
    assert list(ds["state"][0]) == ["step", "square_avg", "momentum_buffer", "grad_avg"]
    assert ds["state"][0]["step"].shape == () and ds["state"][0]["step"].dtype == np.float32
    assert_same_state(d_opt, t_opt, np.float64)


def test_named_parameters_give_param_names_as_torch():
    d_net, t_net = make_nets()
    d_opt, t_opt = dn.optim.SGD(d_net.named_parameters()), torch.optim.SGD(t_net.named_parameters())
    assert d_opt.state_dict()["param_groups"] == t_opt.state_dict()["param_groups"]
    assert d_opt.param_groups[0]["param_names"] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


@pytest.mark.parametrize("name, kwargs", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                                          ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
                                          ("RMSprop", dict(momentum=0.5, centered=True)),
                                          ("Adam", dict(lr=1e-2, amsgrad=True)), ("AdamW", dict(lr=1e-2))])
def test_save_and_load_continues_exactly(name, kwargs):
    """A fresh optimizer loaded from a saved state continues exactly like the original."""
    d_net, _ = make_nets()
    opt = getattr(dn.optim, name)(d_net.parameters(), **kwargs)
    train(d_net, opt, dn, np.float64, steps=10)
    saved_net = {k: v.clone() for k, v in d_net.state_dict().items()}
    saved = opt.state_dict()
    reference = train(d_net, opt, dn, np.float64, steps=10)

    net2 = DnMLP(np.float64)
    net2.load_state_dict(saved_net)
    opt2 = getattr(dn.optim, name)(net2.parameters(), lr=123.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == saved["param_groups"][0]["lr"] != 123.0
    np.testing.assert_array_equal(train(net2, opt2, dn, np.float64, steps=10), reference)
    for p, q in zip(net2.parameters(), d_net.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_state_dict_is_a_snapshot_and_loading_copies():
    d_net, _ = make_nets()
    opt = dn.optim.Adam(d_net.parameters(), lr=1e-2)
    train(d_net, opt, dn, np.float64, steps=2)
    saved = opt.state_dict()
    snapshot = copy.deepcopy({i: {k: v.data.copy() for k, v in s.items()} for i, s in saved["state"].items()})
    train(d_net, opt, dn, np.float64, steps=2)
    for i, s in saved["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(v.data, snapshot[i][k])
    opt.load_state_dict(saved)
    train(d_net, opt, dn, np.float64, steps=1)
    np.testing.assert_array_equal(saved["state"][0]["step"].data, 2.0)


def test_loading_a_torch_state_dict_continues_like_torch():
    """torch's optimizer state (converted tensor by tensor) loads into deepnum, float32 step kept."""
    d_net, t_net = make_nets()
    t_opt = torch.optim.Adam(t_net.parameters(), lr=1e-2, amsgrad=True)
    train(t_net, t_opt, torch, np.float64, steps=5)
    d_net.load_state_dict({k: dn.tensor(v.detach().numpy()) for k, v in t_net.state_dict().items()})
    ts = t_opt.state_dict()
    converted = {"param_groups": ts["param_groups"],
                 "state": {i: {k: dn.tensor(v.numpy()) for k, v in s.items()} for i, s in ts["state"].items()}}
    d_opt = dn.optim.Adam(d_net.parameters())
    d_opt.load_state_dict(converted)
    assert d_opt.state[d_net.fc1.weight]["step"].dtype == np.float32
    np.testing.assert_allclose(train(d_net, d_opt, dn, np.float64, steps=10),
                               train(t_net, t_opt, torch, np.float64, steps=10), **TOL[np.float64])
    assert_same_state(d_opt, t_opt, np.float64)


def test_loading_a_python_number_step():
    """Old PyTorch checkpoints store ``step`` as a number; it becomes a float32 0-d tensor again."""
    d_net, _ = make_nets()
    opt = dn.optim.Adam(d_net.parameters(), lr=1e-2)
    train(d_net, opt, dn, np.float64, steps=3)
    saved = opt.state_dict()
    for entry in saved["state"].values():
        entry["step"] = 3
    opt2 = dn.optim.Adam(d_net.parameters())
    opt2.load_state_dict(saved)
    train(d_net, opt2, dn, np.float64, steps=1)
    step = opt2.state[d_net.fc2.bias]["step"]
    assert isinstance(step, dn.Tensor) and step.dtype == np.float32 and step.item() == 4.0


def test_adagrad_group_initial_accumulator_value():
    d_net, _ = make_nets()
    opt = dn.optim.Adagrad([{"params": d_net.fc1.parameters(), "initial_accumulator_value": 0.5},
                            {"params": d_net.fc2.parameters()}])
    assert opt.state[d_net.fc1.weight]["sum"].data.min() == 0.5 and not opt.state[d_net.fc2.bias]["sum"].data.any()
    assert opt.state[d_net.fc1.weight]["sum"].dtype == np.float64


def test_load_state_dict_errors_change_nothing():
    d_net, _ = make_nets()
    opt = dn.optim.Adam(d_net.parameters())
    train(d_net, opt, dn, np.float64, steps=1)
    good = opt.state_dict()
    other = dn.optim.Adam([{"params": d_net.fc1.parameters()}, {"params": d_net.fc2.parameters()}])
    with pytest.raises(ValueError, match="parameter groups"):
        other.load_state_dict(good)
    two = dn.optim.Adam(d_net.fc1.parameters())
    with pytest.raises(ValueError, match="doesn't match the size"):
        two.load_state_dict(good)
    bad = copy.deepcopy(good)
    bad["state"][0]["exp_avg"] = dn.zeros(2, 2, dtype=dn.float64)
    before = opt.state[d_net.fc1.weight]["exp_avg"]
    with pytest.raises(ValueError, match=r"state 'exp_avg' of parameter 0 has shape \(2, 2\)"):
        opt.load_state_dict(bad)
    assert opt.state[d_net.fc1.weight]["exp_avg"] is before


# ----------------------------------------------------------------- bad configurations
def test_errors_for_bad_groups_and_hyperparameters():
    d_net, _ = make_nets()
    w = d_net.fc1.weight
    with pytest.raises(ValueError, match="empty parameter list"):
        dn.optim.SGD([])
    with pytest.raises(TypeError, match="single Tensor"):
        dn.optim.SGD(w)
    with pytest.raises(TypeError, match="can only optimize Tensors, but one of the params is ndarray"):
        dn.optim.SGD([np.ones(3)])
    with pytest.raises(ValueError, match="non-leaf"):
        dn.optim.SGD([w * 2])
    with pytest.raises(TypeError, match="ordered collections"):
        dn.optim.Adam([{"params": {w}}])
    with pytest.raises(ValueError, match="more than one parameter group"):
        dn.optim.Adam([{"params": [w]}, {"params": [w, d_net.fc1.bias]}])
    opt = dn.optim.SGD([w])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": w})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="'params' entry"):
        opt.add_param_group({"lr": 0.1})
    with pytest.warns(UserWarning, match="duplicate parameters"):
        dn.optim.SGD([w, w])
    for make, message in [
        (lambda: dn.optim.SGD([w], lr=-1), "invalid lr value: -1"),
        (lambda: dn.optim.SGD([w], momentum=0.9, nesterov=True, dampening=0.1), "Nesterov"),
        (lambda: dn.optim.SGD([w], nesterov=True), "Nesterov"),
        (lambda: dn.optim.Adagrad([w], lr_decay=-0.1), "invalid lr_decay"),
        (lambda: dn.optim.Adagrad([w], initial_accumulator_value=-1), "initial_accumulator_value"),
        (lambda: dn.optim.RMSprop([w], alpha=-0.5), "invalid alpha"),
        (lambda: dn.optim.RMSprop([w], momentum=-0.5), "invalid momentum"),
        (lambda: dn.optim.Adam([w], betas=(1.0, 0.999)), "beta parameter at index 0: 1.0"),
        (lambda: dn.optim.AdamW([w], betas=(0.9, -0.1)), "AdamW: invalid beta parameter at index 1"),
        (lambda: dn.optim.Adam([w], eps=-1e-8), "invalid eps"),
        (lambda: dn.optim.AdamW([w], weight_decay=-1e-2), "invalid weight_decay"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()
    with pytest.raises(NotImplementedError, match="differentiable"):
        dn.optim.Adam([w], differentiable=True)
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        dn.optim.SGD([w], foreach=True, fused=True)


def test_required_hyperparameter_and_grad_shape():
    class Plain(dn.optim.Optimizer):
        def __init__(self, params, lr=dn.optim.optimizer.required):
            super().__init__(params, dict(lr=lr))

    w = dn.nn.Parameter(dn.zeros(2, 3))
    with pytest.raises(ValueError, match="required optimization parameter lr"):
        Plain([w])
    assert Plain([{"params": [w], "lr": 0.1}]).param_groups[0]["lr"] == 0.1
    opt = dn.optim.SGD([w], lr=0.1)
    w.grad = dn.ones(3)
    with pytest.raises(RuntimeError, match=r"gradient of shape \(3,\) for a parameter of shape \(2, 3\)"):
        opt.step()
    np.testing.assert_array_equal(w.data, 0)
