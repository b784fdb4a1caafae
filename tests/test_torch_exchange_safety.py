"""deepnum.io.load_torch refuses what is not a tensor checkpoint: pickles that would run code (os.system,
builtins.exec, custom classes; GLOBAL and STACK_GLOBAL) are refused with every global listed, before any
of them runs (a marker file the payload would create stays absent) and with the model unchanged; damaged,
foreign and legacy-tar files, storages of the wrong size and views outside their storage get a clear
error naming the file."""
import builtins
import io
import os
import pickle
import tarfile
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

import deepnum as dn
import deepnum.io as dio


def write_torch_zip(path, payload, records=None):
    """A zip laid out as torch.save writes it, with the given pickle and storage records."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        for key, data in (records or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")


class SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class ExecCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


class Config:
    """An ordinary user class, as training scripts put into checkpoints."""

    def __init__(self):
        self.lr = 0.1


def small_model():
    dn.manual_seed(0)
    return dn.nn.Linear(3, 2)


def snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------- code in the pickle
def test_the_payload_is_live_when_unpickled_normally(tmp_path):
    """The check that makes the refusal tests meaningful: plain pickle.loads runs the payload."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(ExecCall(marker), protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_code_in_the_pickle_is_refused_and_never_runs(tmp_path, protocol):
    exec_marker, system_marker = tmp_path / "exec_ran", tmp_path / "system_ran"
    state = {"weight": ExecCall(exec_marker), "bias": SystemCall(f"touch {system_marker}")}
    write_torch_zip(tmp_path / "evil.pt", pickle.dumps(state, protocol=protocol))
    model = small_model()
    before = snapshot(model)
    with pytest.raises(dio.UnsafeCheckpointError) as info:
        dio.load_torch_checkpoint(model, tmp_path / "evil.pt")
    assert info.value.refused == ["builtins.exec", f"{os.system.__module__}.system"]
    message = str(info.value)
    assert "evil.pt" in message and "builtins.exec" in message and "system" in message and "nothing" in message
    assert not exec_marker.exists() and not system_marker.exists()
    after = snapshot(model)
    assert all(after[k].tobytes() == before[k].tobytes() for k in before)
    with pytest.raises(dio.UnsafeCheckpointError):
        dio.load_torch(tmp_path / "evil.pt")
    assert not exec_marker.exists()


def test_a_global_the_scan_cannot_follow_is_refused_when_looked_up(tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()".encode()
    # protocol 4: push 'builtins', 'exec', 'x', POP, then STACK_GLOBAL (the scan only follows adjacent pushes)
    payload = (b"\x80\x04\x8c\x08builtins\x8c\x04exec\x8c\x01x0\x93" + b"\x8c" + bytes([len(code)]) + code
               + b"\x85R.")
    write_torch_zip(tmp_path / "evil.pt", payload)
    with pytest.raises(dio.UnsafeCheckpointError, match="builtins.exec"):
        dio.load_torch(tmp_path / "evil.pt")
    assert not marker.exists()


def test_a_real_checkpoint_with_a_custom_class_is_refused_like_torch_does(tmp_path):
    torch.manual_seed(1)
    torch.save({"state_dict": torch.nn.Linear(3, 2).state_dict(), "config": Config()}, tmp_path / "cfg.pt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "cfg.pt", weights_only=True)
    with pytest.raises(dio.UnsafeCheckpointError, match=rf"{__name__}\.Config") as info:
        dio.load_torch(tmp_path / "cfg.pt")
    assert info.value.refused == [f"{__name__}.Config"]


# ----------------------------------------------------------------- damaged and foreign files
def tensor_pickle(size, stride, offset=0, numel=4):
    """A pickle of {'w': <tensor>} written with torch's own rebuild function and storage class."""
    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (storage, offset, size, stride, False, OrderedDict())

    storage = Storage()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if obj is storage else None

    out = io.BytesIO()
    Pickler(out, protocol=2).dump({"w": Tensor()})
    return out.getvalue()


def test_tensor_pickle_helper_gives_a_loadable_file(tmp_path):
    data = np.arange(4, dtype=np.float32)
    write_torch_zip(tmp_path / "ok.pt", tensor_pickle((2, 2), (1, 2)), {"0": data.tobytes()})
    np.testing.assert_array_equal(dio.load_torch(tmp_path / "ok.pt")["w"].numpy(), data.reshape(2, 2).T)
    assert torch.equal(torch.load(tmp_path / "ok.pt", weights_only=True)["w"], torch.tensor([[0.0, 2], [1, 3]]))


@pytest.mark.parametrize("size, stride, offset, data, problem", [
    ((10,), (1,), 0, np.zeros(4, np.float32), "reaches element 10 of storage '0', which has 4"),
    ((2, 2), (2, 1), 1, np.zeros(4, np.float32), "reaches element 5"),
    ((2,), (-1,), 0, np.zeros(4, np.float32), "stride is -1"),
    ((2,), (1,), 0, np.zeros(3, np.float32), "should hold 16 bytes, its record archive/data/0 has 12"),
    ((2,), (1,), 0, None, "no record archive/data/0"),
    ((2**29,), (0,), 0, np.zeros(4, np.float32), "repeats the 4 elements of storage '0' .zero strides."),
])
def test_storages_and_views_are_checked(tmp_path, size, stride, offset, data, problem):
    records = {} if data is None else {"0": data.tobytes()}
    write_torch_zip(tmp_path / "bad.pt", tensor_pickle(size, stride, offset), records)
    with pytest.raises(dio.CheckpointError, match=f"bad.pt.*{problem}".replace("(", r"\(").replace(")", r"\)")):
        dio.load_torch(tmp_path / "bad.pt")


def make_file(tmp_path, case):
    path = tmp_path / f"{case}.pt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(300))
    elif case == "directory":
        path.mkdir()
    elif case == "plain_pickle":
        path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    elif case == "other_zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    elif case == "truncated":
        torch.save(torch.nn.Linear(30, 20).state_dict(), path)
        path.write_bytes(path.read_bytes()[:1500])
    elif case == "torchscript":
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    elif case == "tar":
        with tarfile.open(path, "w") as archive:
            info = tarfile.TarInfo("storages")
            info.size = 4
            archive.addfile(info, io.BytesIO(b"abcd"))
    elif case == "safetensors":
        dio.save({"w": dn.ones(2)}, path)
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("case, problem", [
    ("missing", "no such file"),
    ("empty", "empty"),
    ("garbage", "not a PyTorch checkpoint"),
    ("directory", "directory"),
    ("plain_pickle", "a pickle, but not a PyTorch checkpoint"),
    ("other_zip", "not one torch.save wrote"),
    ("truncated", "not a PyTorch checkpoint|damaged"),
    ("torchscript", "TorchScript archive"),
    ("tar", "tar archive"),
    ("safetensors", "safetensors file: use deepnum.load"),
])
def test_foreign_and_damaged_files_are_refused_clearly(tmp_path, case, problem):
    path = make_file(tmp_path, case)
    model = small_model()
    before = snapshot(model)
    with pytest.raises(dio.CheckpointError, match=f"{case}.pt.*({problem})"):
        dio.load_torch(path)
    if case != "safetensors":  # load_torch_checkpoint reads safetensors files too
        with pytest.raises(dio.CheckpointError):
            dio.load_torch_checkpoint(model, path)
    after = snapshot(model)
    assert all(after[k].tobytes() == before[k].tobytes() for k in before)


def test_non_tensor_entries_in_a_state_dict_are_named(tmp_path):
    torch.save({"weight": torch.zeros(2, 3), "bias": torch.zeros(2), "note": "hello"}, tmp_path / "mixed.pt")
    with pytest.raises(dio.CheckpointError, match=r"'note' \(str\)"):
        dio.load_torch_checkpoint(small_model(), tmp_path / "mixed.pt", key=[])


def test_deeply_nested_containers_are_refused(tmp_path):
    depth = 100_000
    write_torch_zip(tmp_path / "deep.pt", b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    with pytest.raises(dio.CheckpointError, match="deep.pt: its containers are nested too deeply"):
        dio.load_torch(tmp_path / "deep.pt")
