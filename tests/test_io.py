"""deepnum.io: safetensors save/load (bit-exact, non-contiguous, metadata, atomic writes, checked loads),
training checkpoints (exact resume, refusal without side effects) and weights to and from PyTorch."""
import os
import pickle
import random
import re
import struct

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import deepnum as dn
import deepnum.io as dio
import deepnum.nn as nn
import deepnum.nn.functional as F
from deepnum import optim


def conv_net(lib, seed=0):
    """Conv2d → BatchNorm2d → ReLU → Flatten → Linear → BatchNorm1d → Linear, in deepnum or torch."""
    (dn if lib is nn else torch).manual_seed(seed)
    return lib.Sequential(lib.Conv2d(3, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.Flatten(),
                          lib.Linear(4 * 5 * 5, 6), lib.BatchNorm1d(6), lib.Linear(6, 3))


def trained_net(seed=0):
    """A deepnum conv_net whose BatchNorm buffers moved away from their initial values."""
    model = conv_net(nn, seed)
    for _ in range(2):
        model(dn.randn(4, 3, 5, 5))
    return model


def assert_bitwise_equal(a, b):
    a = a.numpy() if isinstance(a, dn.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, dn.Tensor) else np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def assert_states_equal(sa, sb):
    assert list(sa) == list(sb)
    for k in sa:
        assert_bitwise_equal(sa[k], sb[k])


# ----------------------------------------------------------------- save / load
def test_model_round_trip_is_bitwise(tmp_path):
    model = trained_net(0)
    state = model.state_dict()
    assert state["1.num_batches_tracked"].dtype == np.int64 and int(state["1.num_batches_tracked"].item()) == 2
    path = tmp_path / "model.safetensors"
    dn.save(state, path)
    loaded = dn.load(path)
    assert sorted(loaded) == sorted(state)
    for k in state:
        assert_bitwise_equal(loaded[k], state[k])
        assert not loaded[k].requires_grad and loaded[k].numpy().flags.writeable
    fresh = conv_net(nn, seed=1)
    fresh.load_state_dict(dio.load(str(path), device="cpu"))
    assert_states_equal(fresh.state_dict(), state)


def test_dtypes_zero_d_and_empty_tensors(tmp_path):
    rng = np.random.default_rng(0)
    state = {"f64": dn.tensor(rng.standard_normal((2, 3))), "f16": dn.tensor(rng.standard_normal(4), dtype="float16"),
             "i32": dn.tensor(rng.integers(-9, 9, 5), dtype="int32"), "u8": dn.tensor([0, 255], dtype="uint8"),
             "b": dn.tensor([True, False, True]), "scalar": dn.tensor(3.5), "empty": dn.zeros(0, 3),
             "np": rng.standard_normal((2, 2)).astype(np.float32)}
    dio.save(state, tmp_path / "d.safetensors")
    loaded = dio.load(tmp_path / "d.safetensors")
    for k, v in state.items():
        assert_bitwise_equal(loaded[k], v)
    assert loaded["scalar"].shape == ()


def test_non_contiguous_tensors_are_saved_by_value(tmp_path):
    base = dn.arange(24, dtype="float32").reshape(4, 6)
    views = {"transposed": base.T, "strided": base[::2, 1::3], "permuted": dn.randn(2, 3, 4).permute(2, 0, 1)}
    assert not any(v.data.flags.c_contiguous for v in views.values())
    dio.save(views, tmp_path / "v.safetensors")
    loaded = dio.load(tmp_path / "v.safetensors")
    for k, v in views.items():
        assert_bitwise_equal(loaded[k], np.ascontiguousarray(v.numpy()))
    # what the file holds is what torch reads too
    theirs = safetensors.torch.load_file(tmp_path / "v.safetensors")
    np.testing.assert_array_equal(theirs["transposed"].numpy(), base.numpy().T)


def test_metadata_round_trip_and_checks(tmp_path):
    path = tmp_path / "m.safetensors"
    dio.save({"w": dn.ones(2)}, path, metadata={"epoch": "3", "note": "größe ✓"})
    assert dio.read_metadata(path) == {"epoch": "3", "note": "größe ✓"}
    dio.save({"w": dn.ones(2)}, tmp_path / "n.safetensors")
    assert dio.read_metadata(tmp_path / "n.safetensors") == {}
    with pytest.raises(TypeError, match="metadata must map str to str.*'epoch': 3"):
        dio.save({"w": dn.ones(2)}, tmp_path / "bad.safetensors", metadata={"epoch": 3})
    assert not (tmp_path / "bad.safetensors").exists()


def test_save_refuses_bad_state_before_writing(tmp_path):
    path = tmp_path / "s.safetensors"
    with pytest.raises(TypeError, match="'lr' is a float; only Tensors and arrays"):
        dio.save({"w": dn.ones(2), "lr": 0.1}, path)
    with pytest.raises(TypeError, match="keys must be strings, got 0"):
        dio.save({0: dn.ones(2)}, path)
    with pytest.raises(TypeError, match="'c' has dtype complex128, which safetensors cannot store"):
        dio.save({"c": np.zeros(2, np.complex128)}, path)
    with pytest.raises(TypeError, match="expected a dict of name -> Tensor, got list"):
        dio.save([dn.ones(2)], path)
    assert os.listdir(tmp_path) == []


def test_files_are_interchangeable_with_torch(tmp_path):
    model = trained_net(0)
    dio.save(model.state_dict(), tmp_path / "ours.safetensors")
    theirs = conv_net(torch.nn, seed=3)
    theirs.load_state_dict(safetensors.torch.load_file(tmp_path / "ours.safetensors"))
    for k, v in theirs.state_dict().items():
        assert_bitwise_equal(v.numpy(), model.state_dict()[k])
    safetensors.torch.save_file(conv_net(torch.nn, seed=4).state_dict(), tmp_path / "theirs.safetensors")
    ours = conv_net(nn, seed=5)
    ours.load_state_dict(dio.load(tmp_path / "theirs.safetensors"))
    assert_bitwise_equal(ours[0].weight.detach(), conv_net(torch.nn, seed=4)[0].weight.detach().numpy())


def test_missing_safetensors_names_the_install_command(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install safetensors .*deepnum\[io\]"):
        dio.save({"w": dn.ones(2)}, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------- atomic writes
def _crashing_writer(arrays, path, metadata):
    with open(path, "wb") as fh:
        fh.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"half-writ")
    raise OSError("simulated crash: disk full")


def test_failed_write_keeps_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    dio.save({"w": dn.arange(5)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(dio.safetensors, "_write_file", _crashing_writer)
    with pytest.raises(OSError, match="simulated crash"):
        dio.save({"w": dn.arange(7)}, path)
    model = conv_net(nn)
    with pytest.raises(OSError, match="simulated crash"):
        dio.save_checkpoint(path, model=model)
    with pytest.raises(OSError, match="simulated crash"):
        dio.save({"w": dn.ones(1)}, tmp_path / "new.safetensors")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.safetensors"]
    monkeypatch.undo()
    dio.save({"w": dn.arange(7)}, path)  # the next save replaces it
    assert dio.load(path)["w"].shape == (7,)
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_interrupt_during_rename_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "a.safetensors"

    def interrupted_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        dio.save({"w": dn.ones(3)}, path)
    assert os.listdir(tmp_path) == []


def test_save_to_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dio.save({"w": dn.ones(1)}, tmp_path / "no" / "x.safetensors")


# ----------------------------------------------------------------- checked loads
def _good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    dio.save({"a": dn.ones(4, 4), "b": dn.arange(3)}, path)
    return path, path.read_bytes()


def _header(payload: bytes, size: int | None = None) -> bytes:
    return struct.pack("<Q", len(payload) if size is None else size) + payload


@pytest.mark.parametrize("case, problem", [
    ("missing", "no such file"),
    ("empty", r"the file is empty \(0 bytes\)"),
    ("tiny", "only 5 bytes"),
    ("truncated_data", "the data section has .* bytes but the tensors cover|truncated"),
    ("truncated_header", "truncated, or not a safetensors file: the first 8 bytes give a header of"),
    ("text", "not a safetensors file"),
    ("pickle", "not a safetensors file"),
    ("broken_json", "its header is not valid JSON"),
    ("json_list", "the header is a JSON list"),
    ("bad_dtype", "dtype 'BF16', which NumPy cannot hold"),
    ("bad_offsets", "needs 64 bytes, the header gives it 8"),
    ("trailing", "extra bytes appended"),
    ("bad_metadata", "__metadata__ is not a map of strings"),
])
def test_bad_files_raise_checkpoint_error_naming_the_file(tmp_path, case, problem):
    path, good = _good_file(tmp_path)
    bad = tmp_path / f"{case}.safetensors"
    n = struct.unpack("<Q", good[:8])[0]
    content = {
        "empty": b"", "tiny": b"\x01\x02\x03\x04\x05", "truncated_data": good[:-5],
        "truncated_header": good[: 8 + n // 2],
        "text": b"weights = [0.1, 0.2, 0.3]\nthis is a text file\n",
        "pickle": pickle.dumps({"a": np.ones(3)}),
        "broken_json": _header(b'{"a": {"dtype": "F32", "shape": [2]'),
        "json_list": _header(b"[1, 2, 3]"),
        "bad_dtype": _header(b'{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}') + bytes(4),
        "bad_offsets": _header(b'{"a":{"dtype":"F32","shape":[4,4],"data_offsets":[0,8]}}') + bytes(8),
        "trailing": good + b"junk",
        "bad_metadata": _header(b'{"__metadata__":{"epoch":3},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')
        + bytes(4),
    }.get(case)
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(dio.CheckpointError, match=f"cannot load {re.escape(str(bad))}: .*(?:{problem})") as info:
        dio.load(bad)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(dio.CheckpointError, match="cannot load"):
        dio.load_checkpoint(bad, model=conv_net(nn))
    assert path.read_bytes() == good


# ----------------------------------------------------------------- checkpoints
X_DATA = np.random.default_rng(0).standard_normal((24, 4)).astype(np.float32)
Y_DATA = np.random.default_rng(1).integers(0, 3, 24)


def make_run(seed):
    dn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.25), nn.Linear(8, 3))
    opt = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3, amsgrad=True)
    sched = optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3], gamma=0.5)
    loader_gen = dn.Generator().manual_seed(seed + 100)
    return model, opt, sched, loader_gen


def train_epoch(model, opt, sched, loader_gen):
    """One epoch: batches from a shuffling generator (a DataLoader's), dropout from deepnum's default
    generator, input noise from NumPy's global RNG and a random sign flip from Python's ``random``."""
    perm = dn.randperm(len(X_DATA), generator=loader_gen).numpy()
    for i in range(0, len(perm), 8):
        idx = perm[i:i + 8]
        x = X_DATA[idx] + 0.01 * np.random.standard_normal(X_DATA[idx].shape).astype(np.float32)
        if random.random() < 0.5:
            x = -x
        loss = F.cross_entropy(model(dn.tensor(x)), dn.tensor(Y_DATA[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    sched.step()


def test_checkpoint_resume_is_bit_identical(tmp_path):
    np.random.seed(7)
    random.seed(7)
    reference = make_run(0)
    for _ in range(4):
        train_epoch(*reference)
    reference_rngs = global_rng_states()

    np.random.seed(7)
    random.seed(7)
    run = make_run(0)
    for _ in range(2):
        train_epoch(*run)
    path = tmp_path / "ckpt.safetensors"
    dio.save_checkpoint(path, model=run[0], optimizer=run[1], scheduler=run[2], epoch=2, step=6,
                        generators={"loader": run[3]}, extra={"best": 0.25, "history": [1.5, 1.25]})
    del run
    resumed = make_run(5)  # a new process: other weights and seeds
    np.random.seed(123)
    random.seed(123)
    info = dio.load_checkpoint(path, model=resumed[0], optimizer=resumed[1], scheduler=resumed[2],
                               generators={"loader": resumed[3]})
    assert info == {"epoch": 2, "step": 6, "extra": {"best": 0.25, "history": [1.5, 1.25]}}
    for _ in range(2):
        train_epoch(*resumed)

    assert_states_equal(resumed[0].state_dict(), reference[0].state_dict())
    ours, theirs = resumed[1].state_dict(), reference[1].state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    for i in theirs["state"]:
        assert_states_equal(ours["state"][i], theirs["state"][i])
    assert resumed[2].state_dict() == reference[2].state_dict()
    assert resumed[3].get_state() == reference[3].get_state()
    assert global_rng_states() == reference_rngs  # dropout, NumPy and Python drew the same numbers


def global_rng_states():
    numpy_state = np.random.get_state(legacy=False)
    return (dn.default_generator.get_state(), numpy_state["state"]["key"].tobytes(), numpy_state["state"]["pos"],
            random.getstate())


def _snapshot(model, opt, sched, gen):
    """Every state load_checkpoint could touch, in exactly comparable form (array bytes, not reprs)."""
    opt_state = opt.state_dict()
    numpy_state = np.random.get_state(legacy=False)
    return {"model": {k: v.numpy().copy() for k, v in model.state_dict().items()},
            "opt_state": {i: {k: v.numpy().tobytes() for k, v in s.items()} for i, s in opt_state["state"].items()},
            "opt_groups": opt_state["param_groups"], "sched": sched.state_dict(), "gen": gen.get_state(),
            "default": dn.default_generator.get_state(), "numpy_key": numpy_state["state"]["key"].tobytes(),
            "numpy_rest": (numpy_state["state"]["pos"], numpy_state["has_gauss"], numpy_state["gauss"]),
            "python": random.getstate()}


def _assert_unchanged(snapshot, run):
    now = _snapshot(*run)
    assert now.keys() == snapshot.keys()
    for k in snapshot["model"]:
        assert_bitwise_equal(now["model"][k], snapshot["model"][k])
    for k in snapshot:
        if k != "model":
            assert now[k] == snapshot[k], k


def _saved_run(tmp_path):
    run = make_run(0)
    train_epoch(*run)
    path = tmp_path / "ckpt.safetensors"
    dio.save_checkpoint(path, model=run[0], optimizer=run[1], scheduler=run[2], epoch=1, step=3,
                        generators={"loader": run[3]})
    return path


def _other_run():
    run = make_run(9)
    train_epoch(*run)
    return run


def test_checkpoint_read_back_with_safetensors(tmp_path):
    """The checkpoint is a plain safetensors file: documented keys, readable without deepnum."""
    path = _saved_run(tmp_path)
    arrays = safetensors.numpy.load_file(path)
    meta = dio.read_metadata(path)
    assert {"model.0.weight", "model.1.num_batches_tracked", "optimizer.state.0.exp_avg",
            "optimizer.state.0.max_exp_avg_sq", "optimizer.state.0.step", "rng.numpy.state.key"} <= set(arrays)
    assert arrays["optimizer.state.0.step"].shape == () and arrays["rng.numpy.state.key"].dtype == np.uint32
    assert meta["deepnum.checkpoint"] == "1" and meta["epoch"] == "1" and meta["step"] == "3"
    assert {"model", "optimizer", "scheduler", "extra", "rng"} <= set(meta)


def test_plain_weights_are_not_a_checkpoint(tmp_path):
    run = _other_run()
    dio.save(run[0].state_dict(), tmp_path / "w.safetensors")
    snapshot = _snapshot(*run)
    with pytest.raises(dio.CheckpointError, match="w.safetensors: it is a safetensors file but not a deepnum"):
        dio.load_checkpoint(tmp_path / "w.safetensors", model=run[0], optimizer=run[1])
    _assert_unchanged(snapshot, run)


@pytest.mark.parametrize("problem", ["truncated", "model_shape", "optimizer_params", "optimizer_class",
                                     "scheduler_class", "generator_name", "no_optimizer", "broken_json"])
def test_refused_checkpoint_changes_nothing(tmp_path, problem):
    path = _saved_run(tmp_path)
    run = _other_run()
    model, opt, sched, gen = run
    gens = {"loader": gen}
    message = {"truncated": "truncated|data section",
               "model_shape": '(?s)does not fit the model Sequential.*Missing key.*"4.mask"',
               "optimizer_params": "parameter group 0 of the saved optimizer has 6 parameters, Adam's has 2",
               "optimizer_class": "holds a Adam state, the optimizer given is a SGD",
               "scheduler_class": "holds a MultiStepLR state, the scheduler given is a StepLR",
               "generator_name": r"no state for the generator\(s\) \['augment'\]; it has \['loader'\]",
               "no_optimizer": "holds no optimizer state", "broken_json": "'optimizer' metadata is damaged"}[problem]
    if problem == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif problem == "model_shape":
        model[4].register_buffer("mask", dn.ones(3))  # the model changed since the checkpoint was written
    elif problem == "optimizer_params":
        opt = optim.Adam(model[4].parameters())  # another parameter list than the saved one
    elif problem == "optimizer_class":
        opt = optim.SGD(model.parameters(), lr=0.1)
    elif problem == "scheduler_class":
        sched = optim.lr_scheduler.StepLR(opt, step_size=2)
    elif problem == "generator_name":
        gens["augment"] = dn.Generator()
    elif problem == "no_optimizer":
        dio.save_checkpoint(path, model=model)
    elif problem == "broken_json":
        arrays = safetensors.numpy.load_file(path)
        meta = dio.read_metadata(path)
        meta["optimizer"] = meta["optimizer"][:-10]
        safetensors.numpy.save_file(arrays, path, metadata=meta)
    run = (model, opt, sched, gen)
    snapshot = _snapshot(*run)
    with pytest.raises(dio.CheckpointError, match=f"cannot load (checkpoint )?{re.escape(str(path))}: "):
        dio.load_checkpoint(path, model=model, optimizer=opt, scheduler=sched, generators=gens)
    with pytest.raises(dio.CheckpointError, match=message):
        dio.load_checkpoint(path, model=model, optimizer=opt, scheduler=sched, generators=gens)
    _assert_unchanged(snapshot, run)


def test_scheduler_state_with_a_function_is_refused(tmp_path):
    class Warmup(optim.lr_scheduler.LRScheduler):
        def __init__(self, optimizer):
            self.factor = lambda epoch: min(1.0, (epoch + 1) / 5)  # a lambda in the state: not JSON
            super().__init__(optimizer)

        def get_lr(self):
            return [base * self.factor(self.last_epoch) for base in self.base_lrs]

    model, opt, _, _ = make_run(0)
    path = tmp_path / "ckpt.safetensors"
    dio.save_checkpoint(path, model=model)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="scheduler state.*'scheduler.factor' holds a function"):
        dio.save_checkpoint(path, model=model, optimizer=opt, scheduler=Warmup(opt))
    with pytest.raises(TypeError, match="extra.*'extra.callback' holds a function"):
        dio.save_checkpoint(path, model=model, extra={"callback": print})
    with pytest.raises(TypeError, match="'extra.0' holds a object object"):
        dio.save_checkpoint(path, model=model, extra=[object()])
    with pytest.raises(TypeError, match="epoch must be an int"):
        dio.save_checkpoint(path, model=model, epoch=1.5)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]
    # LambdaLR keeps plain functions out of its state (None), so it is saved
    lam = optim.lr_scheduler.LambdaLR(opt, lambda e: 0.9 ** e)
    dio.save_checkpoint(path, model=model, optimizer=opt, scheduler=lam)
    dio.load_checkpoint(path, model=model, optimizer=opt, scheduler=lam)


def test_extra_keeps_python_types(tmp_path):
    model = conv_net(nn)
    extra = {"tuple": (1, 2.5, "x"), "inf": float("inf"), "nan": float("nan"), 3: "int key", "none": None,
             "np32": np.float32(0.1), "np_int": np.int64(7), "tensor": dn.arange(4), "array": np.eye(2),
             "nested": {"__deepnum__": "not a tag", "list": [True, {"a.b": 1}]}}
    dio.save_checkpoint(tmp_path / "c.safetensors", model=model, extra=extra)
    got = dio.load_checkpoint(tmp_path / "c.safetensors", model=model)["extra"]
    assert got["tuple"] == (1, 2.5, "x") and got["inf"] == float("inf") and np.isnan(got["nan"])
    assert got[3] == "int key" and got["none"] is None and got["nested"] == extra["nested"]
    assert type(got["np32"]) is np.float32 and got["np32"] == np.float32(0.1) and type(got["np_int"]) is np.int64
    assert isinstance(got["tensor"], dn.Tensor) and got["tensor"].tolist() == [0, 1, 2, 3]
    assert isinstance(got["array"], np.ndarray) and (got["array"] == np.eye(2)).all()


# ----------------------------------------------------------------- weights to and from torch
def test_weights_to_torch_give_the_same_outputs():
    ours = trained_net(0).eval()
    theirs = conv_net(torch.nn, seed=7).eval()
    exported = dio.torch_state_dict(ours)
    assert list(exported) == list(theirs.state_dict())
    assert all(isinstance(v, np.ndarray) for v in exported.values())
    assert exported["1.num_batches_tracked"].dtype == np.int64
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()})
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(theirs(torch.from_numpy(x)).detach().numpy(), ours(dn.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    exported["0.weight"][...] = 0  # a copy: the model's weights are not shared with torch
    assert ours[0].weight.detach().numpy().any()


def test_weights_from_torch_give_the_same_outputs():
    theirs = conv_net(torch.nn, seed=2).double()
    theirs(torch.randn(4, 3, 5, 5, dtype=torch.float64))  # move the BatchNorm statistics
    theirs.eval()
    ours = conv_net(nn, seed=8).double().eval()
    result = dio.load_torch_state_dict(ours, theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = np.random.default_rng(4).standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours(dn.tensor(x)).detach().numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    # parameters that require grad, NumPy arrays and deepnum Tensors are accepted as well
    params = dict(theirs.named_parameters())
    mixed = {k: (params[k] if k in params else v.numpy()) for k, v in theirs.state_dict().items()}
    mixed["0.bias"] = dn.tensor(mixed["0.bias"].detach().numpy())
    dio.load_torch_state_dict(ours, mixed)
    assert_bitwise_equal(ours[4].weight.detach(), theirs[4].weight.detach().numpy())


def test_load_torch_state_dict_errors():
    ours = conv_net(nn)
    bad = conv_net(torch.nn).state_dict()
    bad["6.weight"] = torch.zeros(2, 6)
    before = ours[6].weight.detach().numpy().copy()
    with pytest.raises(RuntimeError, match="size mismatch for 6.weight"):
        dio.load_torch_state_dict(ours, bad)
    assert_bitwise_equal(ours[6].weight.detach(), before)
    bad["6.weight"] = torch.zeros(3, 6, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="cannot convert '6.weight' .*bfloat16"):
        dio.load_torch_state_dict(ours, bad)
    with pytest.raises(TypeError, match="'0.weight' is a str"):
        dio.load_torch_state_dict(ours, {"0.weight": "w"})


def test_saved_files_get_ordinary_permissions(tmp_path):
    """Weights are meant to be shared: the file gets 0o666 minus the umask, like open() would give,
    even though the safetensors writer creates its file privately."""
    import os

    mask = os.umask(0o022)
    try:
        path = tmp_path / "w.safetensors"
        dn.save({"w": dn.ones(2)}, path)
        assert os.stat(path).st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)
