"""Learning-rate schedulers against ``torch.optim.lr_scheduler``: the rate (and momentum / β₁) sequence
over 100 steps for every scheduler and several option sets, one and two parameter groups, the deprecated
``step(epoch)``, resuming with ``last_epoch``, state_dict round trips, ReduceLROnPlateau on scripted
metrics, the warnings, and the errors for bad arguments."""
import copy
import gc
import math
import pickle
import warnings
import weakref

import numpy as np
import pytest
import torch
import torch.optim.lr_scheduler as tsched

import deepnum as dn
import deepnum.optim.lr_scheduler as dsched

LIBS = ((dn, dsched), (torch, tsched))
TOL = dict(rel=1e-12, abs=1e-15)


class NoMomentum(dn.optim.Optimizer):
    """An optimizer with only a learning rate (no momentum, no betas)."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))

    def update_group(self, group, params):
        pass


class BetaOpt(dn.optim.Optimizer):
    """Adam-like hyper-parameters (``betas``), to check that 1cycle/CLR cycle β₁ like torch does with Adam."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999)):
        super().__init__(params, dict(lr=lr, betas=betas))

    def update_group(self, group, params):
        pass


def make_opt(lib, lrs=(0.1,), kind="sgd", extra=None):
    """One 2-element parameter per group, group i with lr ``lrs[i]`` (and ``extra`` keys, e.g. initial_lr)."""
    groups = [{"params": [lib.zeros(2, requires_grad=True)], "lr": lr, **(extra or {})} for lr in lrs]
    if kind == "sgd":
        return lib.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0]) if lib is torch else BetaOpt(groups, lr=lrs[0])
    return torch.optim.Adagrad(groups, lr=lrs[0]) if lib is torch else NoMomentum(groups, lr=lrs[0])


def assert_groups_equal(dn_opt, t_opt, keys=("lr", "initial_lr", "momentum", "betas"), what=""):
    for i, (dg, tg) in enumerate(zip(dn_opt.param_groups, t_opt.param_groups, strict=True)):
        for key in keys:
            assert (key in dg) == (key in tg), f"{what} group {i}: key {key!r}"
            if key in tg:
                expected = tg[key].item() if isinstance(tg[key], torch.Tensor) else tg[key]
                actual = dg[key].item() if isinstance(dg[key], dn.Tensor) else dg[key]
                assert actual == pytest.approx(expected, **TOL), f"{what} group {i}: {key}"


def run_both(build, steps=100, lrs=(0.1,), kind="sgd", metrics=None, epochs=None, keys=None):
    """Build the same scheduler on twin optimizers, step both ``steps`` times (optimizer first), and compare
    ``get_last_lr()``, the groups and the warnings after every step. Returns the two schedulers."""
    (dn_opt, dn_s), (t_opt, t_s) = pairs = [(opt, build(mod, opt)) for (lib, mod) in LIBS
                                            for opt in [make_opt(lib, lrs, kind)]]
    keys = keys or ("lr", "initial_lr", "momentum", "betas")
    assert dn_s.get_last_lr() == pytest.approx(t_s.get_last_lr(), **TOL)
    assert_groups_equal(dn_opt, t_opt, keys, "after construction")
    for t in range(steps):
        caught = []
        for opt, sched in pairs:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                opt.step()
                args = () if metrics is None else (metrics[t],)
                if epochs is None:
                    sched.step(*args)
                else:
                    sched.step(epochs[t])
            caught.append(sorted(str(x.category.__name__) for x in w))
        assert caught[0] == caught[1], f"step {t}: warnings {caught}"
        assert getattr(dn_s, "last_epoch", None) == getattr(t_s, "last_epoch", None)
        assert dn_s.get_last_lr() == pytest.approx(t_s.get_last_lr(), **TOL), f"step {t}"
        assert_groups_equal(dn_opt, t_opt, keys, f"step {t}")
    return dn_s, t_s


def sequential(mod, opt):
    warm = mod.LinearLR(opt, start_factor=0.01, total_iters=10)
    return mod.SequentialLR(opt, [warm, mod.CosineAnnealingLR(opt, T_max=60, eta_min=1e-4)], milestones=[10])


def sequential3(mod, opt):
    parts = [mod.ConstantLR(opt, factor=0.2, total_iters=8), mod.ExponentialLR(opt, 0.9),
             mod.StepLR(opt, step_size=7, gamma=0.5)]
    return mod.SequentialLR(opt, parts, milestones=[5, 30])


def nested(mod, opt):
    """A ChainedScheduler inside a SequentialLR (first: after a milestone torch restarts the next
    schedule with its closed form, which a ChainedScheduler does not have)."""
    chained = mod.ChainedScheduler([mod.ConstantLR(opt, 0.5, total_iters=3), mod.StepLR(opt, 4, 0.5)])
    with warnings.catch_warnings():  # the children step again before any optimizer.step(): torch warns too
        warnings.simplefilter("ignore")
        return mod.SequentialLR(opt, [chained, mod.LinearLR(opt, 0.2, total_iters=5)], milestones=[12])


SCHEDULES = {
    "lambda": lambda m, o: m.LambdaLR(o, lambda e: 0.95 ** e),
    "lambda-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (1 + e)] * len(o.param_groups)),
    "multiplicative": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.97 if e % 2 else 0.99),
    "step": lambda m, o: m.StepLR(o, step_size=7),
    "step-0.5": lambda m, o: m.StepLR(o, 3, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[10, 30, 30, 60], gamma=0.3),
    "constant": lambda m, o: m.ConstantLR(o),
    "constant-20": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=20),
    "linear": lambda m, o: m.LinearLR(o),
    "linear-warmup": lambda m, o: m.LinearLR(o, start_factor=0.1, total_iters=30),
    "linear-decay": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.05, total_iters=50),
    "exponential": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "polynomial": lambda m, o: m.PolynomialLR(o, total_iters=40, power=2.0),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=30),
    "cosine-eta_min": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "warm-restarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10),
    "warm-restarts-mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=1e-3),
    "onecycle": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=100),
    "onecycle-linear-3phase": lambda m, o: m.OneCycleLR(o, max_lr=0.5, epochs=10, steps_per_epoch=10, pct_start=0.25,
                                                        anneal_strategy="linear", three_phase=True),
    "onecycle-options": lambda m, o: m.OneCycleLR(o, max_lr=[0.3] * len(o.param_groups), total_steps=120,
                                                  base_momentum=0.8, max_momentum=[0.97] * len(o.param_groups),
                                                  div_factor=10.0, final_div_factor=100.0),
    "onecycle-no-momentum": lambda m, o: m.OneCycleLR(o, max_lr=0.2, total_steps=100, cycle_momentum=False),
    "cyclic": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=7),
    "cyclic-triangular2": lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=5, step_size_down=9, mode="triangular2"),
    "cyclic-exp_range": lambda m, o: m.CyclicLR(o, 0.001, [0.1] * len(o.param_groups), step_size_up=6,
                                                mode="exp_range", gamma=0.99),
    "cyclic-scale_fn": lambda m, o: m.CyclicLR(o, 0.01, 0.05, step_size_up=4, scale_fn=lambda x: 1 / (1 + x),
                                               scale_mode="iterations", cycle_momentum=False),
    "sequential-warmup-cosine": sequential,
    "sequential-3": sequential3,
    "sequential-nested": nested,
    "chained": lambda m, o: m.ChainedScheduler([m.ConstantLR(o, factor=0.5, total_iters=10), m.ExponentialLR(o, 0.95)]),
}


@pytest.mark.parametrize("lrs", [(0.1,), (0.1, 0.01)], ids=["1group", "2groups"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name, lrs):
    dn_s, t_s = run_both(SCHEDULES[name], lrs=lrs)
    assert set(dn_s.state_dict()) == set(t_s.state_dict())
    if hasattr(t_s, "base_lrs"):
        assert dn_s.base_lrs == pytest.approx(t_s.base_lrs, **TOL)


@pytest.mark.parametrize("name", ["onecycle", "onecycle-linear-3phase", "onecycle-options", "cyclic",
                                  "cyclic-exp_range"])
def test_cycled_beta1_matches_torch_adam(name):
    """Optimizers with ``betas`` get β₁ cycled instead of a momentum (torch.optim.Adam on torch's side)."""
    run_both(SCHEDULES[name], lrs=(0.1, 0.02), kind="adam", keys=("lr", "initial_lr", "betas", "max_momentum"))


def test_two_independent_schedulers_compose():
    """Two chainable schedulers on one optimizer multiply their effects; the recursive cosine follows the
    step decay instead of the closed form."""
    def build(mod, opt):
        first = mod.StepLR(opt, step_size=15, gamma=0.5)
        second = mod.CosineAnnealingLR(opt, T_max=25, eta_min=0.001)

        class Both:
            def step(self):
                first.step()
                second.step()

            def get_last_lr(self):
                return second.get_last_lr()

        both = Both()
        both.last_epoch = 0
        return both
    (dn_opt, dn_a), (t_opt, t_a) = [(opt, build(mod, opt)) for lib, mod in LIBS for opt in [make_opt(lib, (0.1,))]]
    deviation = 0.0
    for t in range(1, 81):
        for o in (dn_opt, t_opt, dn_a, t_a):
            o.step()
        assert dn_a.get_last_lr() == pytest.approx(t_a.get_last_lr(), **TOL)
        closed = 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 25)) / 2
        deviation = max(deviation, abs(dn_a.get_last_lr()[0] / closed - 1))
    assert deviation > 0.3


def test_cosine_recursive_form_after_t_max():
    """Past T_max the recursive form keeps following the cosine (period 2·T_max) within rounding."""
    dn_s, _ = run_both(lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.01), steps=45)
    closed = 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * 45 / 10)) / 2
    assert dn_s.get_last_lr()[0] == pytest.approx(closed, rel=1e-9)


EPOCH_SCHEDULES = ["step", "multistep", "constant-20", "linear-warmup", "exponential", "polynomial", "cosine",
                   "lambda", "warm-restarts", "warm-restarts-mult"]


@pytest.mark.parametrize("name", EPOCH_SCHEDULES)
def test_deprecated_step_with_epoch(name):
    """``step(epoch)`` jumps with the closed form (and warns, except for SGDR which accepts fractional epochs)."""
    epochs = [0, 5, 3, 20, 21, 7, 40, 39, 60, 2, 13, 27, 50]
    if name.startswith("warm-restarts"):
        epochs = [0.5, 1.25, 7, 4.5, 12.0, 33.3, 5, 16, 70.1, 3]
    run_both(SCHEDULES[name], steps=len(epochs), lrs=(0.1, 0.03), epochs=epochs)


@pytest.mark.parametrize("name", ["step", "multistep", "linear-warmup", "exponential", "polynomial", "cosine",
                                  "cosine-eta_min", "lambda", "multiplicative", "warm-restarts-mult"])
def test_resume_with_last_epoch(name):
    """A scheduler created with ``last_epoch=k`` on groups that hold ``initial_lr`` continues like torch."""
    pairs = []
    for lib, mod in LIBS:
        opt = make_opt(lib, (0.05, 0.02), extra={"initial_lr": 0.1})
        builder = SCHEDULES[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sched = builder(_WithLastEpoch(mod, 20), opt)
        pairs.append((opt, sched))
    (dn_opt, dn_s), (t_opt, t_s) = pairs
    assert dn_s.last_epoch == t_s.last_epoch == 21
    for t in range(30):
        for opt, sched in pairs:
            opt.step()
            sched.step()
        assert dn_s.get_last_lr() == pytest.approx(t_s.get_last_lr(), **TOL), f"step {t}"
        assert_groups_equal(dn_opt, t_opt, what=f"step {t}")


class _WithLastEpoch:
    """A scheduler module whose classes get ``last_epoch=k`` added to their arguments."""

    def __init__(self, mod, last_epoch):
        self.mod, self.last_epoch = mod, last_epoch

    def __getattr__(self, name):
        cls = getattr(self.mod, name)
        return lambda *a, **k: cls(*a, **k, last_epoch=self.last_epoch)


def test_resume_without_initial_lr_raises():
    for lib, mod in LIBS:
        with pytest.raises(KeyError, match="initial_lr"):
            mod.StepLR(make_opt(lib), 5, last_epoch=3)


def test_initial_lr_is_kept_by_a_second_scheduler():
    for lib, mod in LIBS:
        opt = make_opt(lib, (0.1,))
        mod.ExponentialLR(opt, 0.5)
        opt.param_groups[0]["lr"] = 0.3
        second = mod.StepLR(opt, 2)
        assert opt.param_groups[0]["initial_lr"] == 0.1 and second.base_lrs == [0.1]


@pytest.mark.parametrize("name", ["step", "multistep", "linear-warmup", "cosine", "warm-restarts-mult", "onecycle",
                                  "cyclic-triangular2", "sequential-warmup-cosine", "sequential-nested", "chained",
                                  "lambda", "multiplicative", "polynomial", "constant-20"])
def test_state_dict_round_trip(name):
    """A scheduler restored from a state dict (after 37 steps) continues exactly like the original, and torch."""
    build = SCHEDULES[name]
    runs = {}
    for lib, mod in LIBS:
        opt = make_opt(lib, (0.1, 0.04))
        sched = build(mod, opt)
        for _ in range(37):
            opt.step()
            sched.step()
        saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
        keys = set(saved_sched)  # (torch's CyclicLR.load_state_dict pops a key from the dict it is given)
        new_opt = make_opt(lib, (0.5, 0.5))
        new_sched = build(mod, new_opt)  # build first: construction rewrites the group lrs
        new_opt.load_state_dict(saved_opt)
        new_sched.load_state_dict(saved_sched)
        assert new_sched.get_last_lr() == pytest.approx(sched.get_last_lr(), **TOL)
        runs[lib] = (opt, sched, new_opt, new_sched, keys)
    assert runs[dn][4] == runs[torch][4]
    for t in range(40):
        for opt, sched, new_opt, new_sched, _ in runs.values():
            for o, s in ((opt, sched), (new_opt, new_sched)):
                o.step()
                s.step()
            assert new_sched.get_last_lr() == sched.get_last_lr()
            assert [g["lr"] for g in new_opt.param_groups] == [g["lr"] for g in opt.param_groups]
        assert runs[dn][3].get_last_lr() == pytest.approx(runs[torch][3].get_last_lr(), **TOL), f"step {t}"


def test_lambda_state_dict_saves_callable_objects_only():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = make_opt(dn, (0.1, 0.1))
    sched = dsched.LambdaLR(opt, [Decay(0.9), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.9}, None]
    other = dsched.LambdaLR(make_opt(dn, (0.1, 0.1)), [Decay(0.5), lambda e: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].rate == 0.9 and "lr_lambdas" in state


# ----------------------------------------------------------------- ReduceLROnPlateau
PLATEAU_METRICS = {
    "down-then-flat": [1.0 - 0.05 * min(t, 10) for t in range(60)],
    "noisy": list(np.random.default_rng(0).uniform(0.5, 1.0, size=60) + np.linspace(0.2, 0.0, 60)),
    "up-then-flat": [0.1 * min(t, 15) + 1.0 for t in range(60)],
    "tiny-improvements": [1.0 - 1e-5 * t for t in range(60)],
}
PLATEAU_OPTIONS = {
    "default": {},
    "patience-2": dict(patience=2),
    "cooldown": dict(patience=1, cooldown=3, factor=0.5),
    "min_lr": dict(patience=0, factor=0.3, min_lr=0.004),
    "min_lr-per-group": dict(patience=1, factor=0.5, min_lr=[0.01, 0.001]),
    "max": dict(mode="max", patience=2, factor=0.5),
    "abs": dict(threshold_mode="abs", threshold=0.02, patience=1, factor=0.5),
    "max-abs": dict(mode="max", threshold_mode="abs", threshold=0.05, patience=0, factor=0.7, cooldown=2),
    "eps": dict(patience=0, factor=0.9, eps=0.005),
}


@pytest.mark.parametrize("metrics", list(PLATEAU_METRICS))
@pytest.mark.parametrize("options", list(PLATEAU_OPTIONS))
def test_reduce_lr_on_plateau(options, metrics):
    seq = PLATEAU_METRICS[metrics]
    dn_s, t_s = run_both(lambda m, o: m.ReduceLROnPlateau(o, **PLATEAU_OPTIONS[options]), steps=len(seq),
                         lrs=(0.1, 0.05), metrics=seq)
    for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
        assert getattr(dn_s, key) == getattr(t_s, key), key
    assert set(dn_s.state_dict()) == set(t_s.state_dict())


def test_reduce_lr_on_plateau_scripted():
    """Hand-checked: patience 2, cooldown 1: reduce after the 3rd bad epoch, skip one, count again."""
    opt = make_opt(dn, (1.0,))
    sched = dsched.ReduceLROnPlateau(opt, patience=2, cooldown=1, factor=0.5)
    lrs = []
    for metric in [5, 4, 4, 4, 4, 4, 4, 4, 4, 3, 3, dn.tensor(3.0)]:
        opt.step()
        sched.step(metric)
        lrs.append(sched.get_last_lr()[0])
    assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    state = copy.deepcopy(sched.state_dict())
    other = dsched.ReduceLROnPlateau(make_opt(dn, (1.0,)), mode="max")
    other.load_state_dict(state)
    assert other.mode == "min" and other.best == 3 and other._is_better(2.0, 3.0)


# ----------------------------------------------------------------- warnings and types
def test_scheduler_step_before_optimizer_step_warns():
    for lib, mod in LIBS:
        opt = make_opt(lib)
        sched = mod.StepLR(opt, 3)
        with pytest.warns(UserWarning, match="before `optimizer.step"):
            sched.step()
        opt2 = make_opt(lib)
        sched2 = mod.StepLR(opt2, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opt2.step()
            sched2.step()
            sched2.step()


def test_get_lr_outside_step_warns():
    for lib, mod in LIBS:
        sched = mod.ExponentialLR(make_opt(lib), 0.5)
        with pytest.warns(UserWarning, match="get_last_lr"):
            sched.get_lr()


def test_optimizer_step_still_works_and_is_marked_once():
    """The wrapper around ``optimizer.step`` keeps the update (SGD with momentum, real gradients) and a
    second scheduler does not wrap it again; parameters follow torch's through a StepLR schedule."""
    rng = np.random.default_rng(0)
    target = rng.normal(size=3)
    params = {}
    for lib, mod in LIBS:
        w = lib.tensor(np.zeros(3), requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.2, momentum=0.5)
        sched = mod.StepLR(opt, step_size=4, gamma=0.5)
        step = opt.step
        mod.ExponentialLR(opt, 1.0)
        assert opt.step is step
        for _ in range(20):
            opt.zero_grad()
            loss = ((w - lib.tensor(target)) ** 2).sum()
            loss.backward()
            opt.step()
            sched.step()
        params[lib] = w.detach().numpy() if lib is torch else np.asarray(w.data)
    np.testing.assert_allclose(params[dn], params[torch], rtol=1e-12, atol=1e-15)


def test_tensor_learning_rates_are_updated_in_place():
    lrs = {}
    for lib, mod in LIBS:
        lr = lib.tensor(0.1, dtype=lib.float64)
        opt = NoMomentum([dn.zeros(2, requires_grad=True)], lr=lr) if lib is dn else \
            torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
        sched = mod.ExponentialLR(opt, 0.5)
        for _ in range(3):
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] is lr and isinstance(sched.get_last_lr()[0], lib.Tensor)
        assert sched.get_last_lr()[0] is not lr
        lrs[lib] = (lr.item(), opt.param_groups[0]["initial_lr"].item())
    assert lrs[dn] == pytest.approx(lrs[torch], **TOL) and lrs[dn][0] == pytest.approx(0.0125)


def test_exports():
    assert set(tsched.__all__) <= set(dsched.__all__)
    assert issubclass(dsched._LRScheduler, dsched.LRScheduler) and dsched._LRScheduler.__name__ == "_LRScheduler"
    for name in tsched.__all__:
        assert getattr(dsched, name).__name__ == name


# ----------------------------------------------------------------- errors
ERRORS = {
    "onecycle-no-total": (lambda m, o: m.OneCycleLR(o, max_lr=0.1), ValueError, "total_steps"),
    "onecycle-epochs-only": (lambda m, o: m.OneCycleLR(o, max_lr=0.1, epochs=3), ValueError, "steps_per_epoch"),
    "onecycle-total-0": (lambda m, o: m.OneCycleLR(o, 0.1, total_steps=0), ValueError, "total_steps"),
    "onecycle-epochs-float": (lambda m, o: m.OneCycleLR(o, 0.1, epochs=2.5, steps_per_epoch=4), ValueError, "epochs"),
    "onecycle-pct": (lambda m, o: m.OneCycleLR(o, 0.1, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    "onecycle-anneal": (lambda m, o: m.OneCycleLR(o, 0.1, total_steps=10, anneal_strategy="exp"), ValueError,
                        "anneal_strategy"),
    "onecycle-max_lr-list": (lambda m, o: m.OneCycleLR(o, [0.1, 0.2, 0.3], total_steps=10), ValueError, "max_lr"),
    "onecycle-momentum-list": (lambda m, o: m.OneCycleLR(o, 0.1, total_steps=10, base_momentum=[0.8] * 3),
                               ValueError, "base_momentum"),
    "lambda-list": (lambda m, o: m.LambdaLR(o, [lambda e: 1.0] * 3), ValueError, "lr_lambdas"),
    "multiplicative-not-callable": (lambda m, o: m.MultiplicativeLR(o, 0.9), TypeError, "function"),
    "constant-factor": (lambda m, o: m.ConstantLR(o, factor=2.0), ValueError, "factor"),
    "linear-start": (lambda m, o: m.LinearLR(o, start_factor=0.0), ValueError, "factor"),
    "linear-end": (lambda m, o: m.LinearLR(o, end_factor=1.5), ValueError, "factor"),
    "warm-restarts-T_0": (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, "T_0"),
    "warm-restarts-T_mult": (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=0.5), ValueError, "T_mult"),
    "plateau-factor": (lambda m, o: m.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor"),
    "plateau-mode": (lambda m, o: m.ReduceLROnPlateau(o, mode="avg"), ValueError, "mode"),
    "plateau-threshold_mode": (lambda m, o: m.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "threshold"),
    "plateau-min_lr": (lambda m, o: m.ReduceLROnPlateau(o, min_lr=[0.1, 0.2, 0.3]), ValueError, "min_lr"),
    "cyclic-mode": (lambda m, o: m.CyclicLR(o, 0.01, 0.1, mode="sine"), ValueError, "mode"),
    "sequential-milestones": (lambda m, o: m.SequentialLR(o, [m.StepLR(o, 2), m.StepLR(o, 3)], milestones=[1, 2]),
                              ValueError, "milestone"),
    "sequential-empty": (lambda m, o: m.SequentialLR(o, [], milestones=[]), ValueError, "at least one"),
    "sequential-plateau": (lambda m, o: m.SequentialLR(o, [m.ReduceLROnPlateau(o)], milestones=[]), ValueError,
                           "ReduceLROnPlateau"),
    "chained-empty": (lambda m, o: m.ChainedScheduler([]), ValueError, "at least one"),
    "chained-other-optimizer": (lambda m, o: m.ChainedScheduler([m.StepLR(o, 2)], optimizer=copy.copy(o)),
                                ValueError, "same optimizer"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_arguments_raise_like_torch(name):
    build, error, match = ERRORS[name]
    for lib, mod in LIBS:
        opt = make_opt(lib, (0.1, 0.2))
        before = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
        with pytest.raises(error, match=match if lib is dn else None):
            build(mod, opt)
        if lib is dn and not name.startswith(("sequential", "chained")):
            after = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
            assert after == before, "the groups changed before the error"


def test_cycle_momentum_needs_momentum():
    for lib, mod in LIBS:
        opt = make_opt(lib, kind="none")
        with pytest.raises(ValueError, match="momentum"):
            mod.OneCycleLR(opt, 0.1, total_steps=10)
        with pytest.raises(ValueError, match="momentum"):
            mod.CyclicLR(opt, 0.01, 0.1)
        if lib is dn:
            assert "initial_lr" not in opt.param_groups[0] and opt.param_groups[0]["lr"] == 0.1
        mod.OneCycleLR(opt, 0.1, total_steps=10, cycle_momentum=False)


def test_onecycle_past_total_steps_raises():
    for lib, mod in LIBS:
        opt = make_opt(lib)
        sched = mod.OneCycleLR(opt, 0.1, total_steps=5)
        for _ in range(5):
            opt.step()
            sched.step()
        with pytest.raises(ValueError, match="total steps is 5"):
            sched.step()


@pytest.mark.parametrize("build", [lambda m, o: m.StepLR(o, step_size=0), lambda m, o: m.CosineAnnealingLR(o, 0)],
                         ids=["step_size-0", "T_max-0"])
def test_zero_periods_raise_at_construction(build):
    """torch fails later with ZeroDivisionError; deepnum names the argument up front."""
    with pytest.raises(ValueError, match="step_size|T_max"):
        build(dsched, make_opt(dn))


def test_not_an_optimizer():
    for cls in (dsched.StepLR, dsched.OneCycleLR, dsched.ReduceLROnPlateau):
        args = {dsched.StepLR: (3,), dsched.OneCycleLR: (0.1, 10), dsched.ReduceLROnPlateau: ()}[cls]
        with pytest.raises(TypeError, match="Optimizer"):
            cls([dn.zeros(2)], *args)


def test_marked_optimizer_survives_copies_and_frees_without_gc():
    """The wrapper put on ``optimizer.step`` follows deepcopy/pickle of the optimizer (the copy steps its
    own parameters) and creates no reference cycle."""
    w = dn.zeros(2, requires_grad=True)
    opt = dn.optim.SGD([w], lr=0.5)
    sched = dsched.StepLR(opt, 2)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        p = clone.param_groups[0]["params"][0]
        p.grad = dn.ones(2)
        clone.step()
        np.testing.assert_array_equal(np.asarray(p.data), [-0.5, -0.5])
        np.testing.assert_array_equal(np.asarray(w.data), [0.0, 0.0])
        assert clone._opt_called and not getattr(opt, "_opt_called", False)
        assert clone.step.__name__ == "step"
    ref = weakref.ref(opt)
    gc.disable()
    try:
        del opt, sched, clone
        assert ref() is None
    finally:
        gc.enable()
