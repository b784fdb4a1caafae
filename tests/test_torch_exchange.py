"""Exchange with PyTorch through files: torch.save → deepnum.io.load_torch(_checkpoint) and
deepnum.io.save_torch → torch.load(weights_only=True), with torchvision models, an LSTM and a transformer
encoder layer (equal outputs), strided and shared storages, every dtype, nested checkpoints, the legacy
format, safetensors files written by either side, and key/shape errors that leave the model unchanged.
The refusal of code-carrying and damaged files is in test_torch_exchange_safety.py."""
import os
import struct
import sys
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.torch
import torch

import deepnum as dn
import deepnum.io as dio
from deepnum.models import create_model
from tests.zoo_helpers import import_torchvision


def torchvision_model(name, seed, **kwargs):
    tv = import_torchvision()
    torch.manual_seed(seed)
    model = getattr(tv.models, name)(**kwargs)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))  # BatchNorm statistics and num_batches_tracked move
    return model.eval()


def perturbed_deepnum_model(name, seed, **kwargs):
    dn.manual_seed(seed)
    model = create_model(name, **kwargs)
    model.train()
    with dn.no_grad():
        model(dn.randn(4, 3, 32, 32))
    return model.eval()


def assert_same_outputs(ours, theirs, shape, seed=0, atol=1e-5):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))
    with dn.no_grad():
        actual = ours(dn.tensor(x))
    expected, actual = (e[0] if isinstance(e, tuple) else e for e in (expected, actual))
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-4, atol=atol)


def snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_unchanged(model, before):
    after = snapshot(model)
    assert list(after) == list(before)
    for k in before:
        assert after[k].tobytes() == before[k].tobytes(), k


# ----------------------------------------------------------------- torchvision models both ways
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_torchvision_checkpoint_loads_into_the_deepnum_twin(tmp_path, name):
    theirs = torchvision_model(name, seed=1, num_classes=10)
    torch.save(theirs.state_dict(), tmp_path / "model.pth")
    ours = create_model(name, num_classes=10)
    result = dio.load_torch_checkpoint(ours.eval(), tmp_path / "model.pth")
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    tracked = ours.state_dict()[next(k for k in ours.state_dict() if k.endswith("num_batches_tracked"))]
    assert tracked.dtype == np.int64 and int(tracked.item()) == 1
    assert_same_outputs(ours, theirs, (2, 3, 32, 32))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_deepnum_model_saved_as_pt_loads_in_torch(tmp_path, name):
    ours = perturbed_deepnum_model(name, seed=2, num_classes=10)
    dio.save_torch(ours, tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert isinstance(state, OrderedDict) and list(state) == list(ours.state_dict())
    for key, value in ours.state_dict().items():
        assert state[key].numpy().dtype == value.dtype and state[key].numpy().tobytes() == value.numpy().tobytes()
    theirs = import_torchvision().models.__dict__[name](num_classes=10)
    theirs.load_state_dict(state)
    assert_same_outputs(ours, theirs.eval(), (2, 3, 32, 32))


def test_safetensors_files_are_exchanged_with_torch(tmp_path):
    theirs = torchvision_model("resnet18", seed=3, num_classes=10)
    safetensors.torch.save_file(theirs.state_dict(), tmp_path / "theirs.safetensors")
    ours = create_model("resnet18", num_classes=10).eval()
    dio.load_torch_checkpoint(ours, tmp_path / "theirs.safetensors")
    assert_same_outputs(ours, theirs, (2, 3, 32, 32))

    ours = perturbed_deepnum_model("resnet18", seed=4, num_classes=10)
    dio.save(ours.state_dict(), tmp_path / "ours.safetensors")
    back = import_torchvision().models.resnet18(num_classes=10)
    back.load_state_dict(safetensors.torch.load_file(tmp_path / "ours.safetensors"))
    assert_same_outputs(ours, back.eval(), (2, 3, 32, 32))


# ----------------------------------------------------------------- sequence models
def sequence_pairs():
    torch.manual_seed(5)
    return [
        (torch.nn.LSTM(4, 6, num_layers=2, batch_first=True, bidirectional=True),
         dn.nn.LSTM(4, 6, num_layers=2, batch_first=True, bidirectional=True), (3, 7, 4)),
        (torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
         dn.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), (3, 5, 8)),
    ]


@pytest.mark.parametrize("index", [0, 1], ids=["lstm", "transformer_encoder_layer"])
def test_sequence_models_both_ways(tmp_path, index):
    theirs, ours, shape = sequence_pairs()[index]
    theirs.eval(), ours.eval()
    torch.save(theirs.state_dict(), tmp_path / "theirs.pt")
    dio.load_torch_checkpoint(ours, tmp_path / "theirs.pt")
    assert_same_outputs(ours, theirs, shape)

    dn.manual_seed(6)
    fresh = type(ours)(*([4, 6] if index == 0 else [8, 2, 16]), **(
        {"num_layers": 2, "batch_first": True, "bidirectional": True} if index == 0
        else {"dropout": 0.0, "batch_first": True})).eval()
    dio.save_torch(fresh, tmp_path / "ours.pt")
    theirs.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True))
    assert_same_outputs(fresh, theirs, shape, seed=1)


# ----------------------------------------------------------------- storages, dtypes, structure
def test_strided_views_and_shared_storages(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    views = {"base": base, "t": base.t(), "slice": base[1:, ::2], "row": base[2], "flat_tail": base.view(-1)[7:],
             "expanded": torch.arange(3.0).unsqueeze(1).expand(3, 5), "scalar": base[1, 1]}
    torch.save(views, tmp_path / "views.pt")
    with zipfile.ZipFile(tmp_path / "views.pt") as archive:
        records = [n for n in archive.namelist() if "/data/" in n]
    assert len(records) == 2  # all views of `base` share one storage; `expanded` has its own
    loaded = dio.load_torch(tmp_path / "views.pt")
    for key, value in views.items():
        assert loaded[key].shape == tuple(value.shape)
        np.testing.assert_array_equal(loaded[key].numpy(), value.numpy())
        assert loaded[key].numpy().flags.c_contiguous
    loaded["t"].data[0, 0] = -1  # copies: one view's data is not another's
    assert loaded["base"].numpy()[0, 0] == 0


DTYPES = [torch.float16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32, torch.int64,
          torch.uint8, torch.bool]


def test_every_dtype_both_ways(tmp_path):
    gen = torch.Generator().manual_seed(7)
    tensors = {str(d): (torch.randn(3, 4, generator=gen) * 50).to(d) for d in DTYPES}
    tensors["zero_d"] = torch.tensor(5, dtype=torch.int64)
    tensors["empty"] = torch.zeros(0, 3, dtype=torch.float64)
    torch.save(tensors, tmp_path / "theirs.pt")
    loaded = dio.load_torch(tmp_path / "theirs.pt")
    for key, value in tensors.items():
        assert loaded[key].dtype == value.numpy().dtype and loaded[key].shape == tuple(value.shape)
        assert loaded[key].numpy().tobytes() == value.numpy().tobytes()
    dio.save_torch(loaded, tmp_path / "ours.pt")
    back = torch.load(tmp_path / "ours.pt", weights_only=True)
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key


def test_bfloat16_becomes_float32_exactly_with_a_warning(tmp_path):
    value = torch.randn(5, 3, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    torch.save({"w": value}, tmp_path / "bf16.pt")
    with pytest.warns(UserWarning, match="1 bfloat16 tensor.*float32"):
        loaded = dio.load_torch(tmp_path / "bf16.pt")
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"].numpy(), value.float().numpy())


def test_parameters_and_tied_weights(tmp_path):
    torch.manual_seed(9)
    param = torch.nn.Parameter(torch.randn(2, 3))
    torch.save({"p": param, "size": torch.Size([2, 3]), "dtype": torch.float16}, tmp_path / "param.pt")
    loaded = dio.load_torch(tmp_path / "param.pt")
    np.testing.assert_array_equal(loaded["p"].numpy(), param.detach().numpy())
    assert loaded["size"] == (2, 3) and repr(loaded["dtype"]) == "torch.float16"

    shared = dn.randn(4, 2)
    dio.save_torch({"encoder.weight": shared, "decoder.weight": shared}, tmp_path / "tied.pt")
    back = torch.load(tmp_path / "tied.pt", weights_only=True)
    assert back["encoder.weight"].data_ptr() == back["decoder.weight"].data_ptr()
    np.testing.assert_array_equal(back["decoder.weight"].numpy(), shared.numpy())


def test_nested_checkpoints_and_key_selection(tmp_path):
    torch.manual_seed(10)
    theirs = torch.nn.Linear(3, 2)
    ema = torch.nn.Linear(3, 2)
    torch.save({"state_dict": theirs.state_dict(), "epoch": 3, "optimizer": {"lr": 0.1, "betas": (0.9, 0.99)}},
               tmp_path / "train.pth")
    raw = dio.load_torch(tmp_path / "train.pth")
    assert raw["epoch"] == 3 and raw["optimizer"] == {"lr": 0.1, "betas": (0.9, 0.99)}
    ours = dn.nn.Linear(3, 2)
    dio.load_torch_checkpoint(ours, tmp_path / "train.pth")  # the one dict of tensors is found
    np.testing.assert_array_equal(ours.weight.detach().numpy(), theirs.weight.detach().numpy())

    torch.save({"model": theirs.state_dict(), "ema": {"model": ema.state_dict()}, "step": 9}, tmp_path / "two.pth")
    dio.load_torch_checkpoint(ours, tmp_path / "two.pth", key=["ema", "model"])
    np.testing.assert_array_equal(ours.bias.detach().numpy(), ema.bias.detach().numpy())
    torch.save({"model": theirs.state_dict(), "ema": ema.state_dict()}, tmp_path / "ambiguous.pth")
    with pytest.raises(dio.CheckpointError, match=r"several hold tensors \(\['model', 'ema'\]\).*key="):
        dio.load_torch_checkpoint(ours, tmp_path / "ambiguous.pth")
    with pytest.raises(dio.CheckpointError, match=r"no entry 'net'.*\['ema', 'model'\]"):
        dio.load_torch_checkpoint(ours, tmp_path / "ambiguous.pth", key="net")


def test_legacy_format_loads(tmp_path):
    torch.manual_seed(11)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3)).eval()
    torch.save({"model": theirs.state_dict(), "t": torch.arange(6.0).reshape(2, 3).t()}, tmp_path / "old.pt",
               _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(tmp_path / "old.pt")
    loaded = dio.load_torch(tmp_path / "old.pt")
    np.testing.assert_array_equal(loaded["t"].numpy(), np.arange(6.0, dtype=np.float32).reshape(2, 3).T)
    ours = dn.nn.Sequential(dn.nn.Conv2d(2, 3, 3), dn.nn.BatchNorm2d(3)).eval()
    dio.load_torch_checkpoint(ours, tmp_path / "old.pt", key="model")
    assert_same_outputs(ours, theirs, (2, 2, 5, 5))


# ----------------------------------------------------------------- mismatches leave the model unchanged
def test_every_key_and_shape_problem_is_listed_and_nothing_changes(tmp_path):
    torch.manual_seed(12)
    state = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 5)).state_dict()
    state["extra.weight"] = state.pop("0.bias")
    state["0.weight"] = torch.zeros(4, 2)
    state["2.bias"] = state["2.bias"].to(torch.int64)
    torch.save(state, tmp_path / "bad.pt")
    dn.manual_seed(12)
    ours = dn.nn.Sequential(dn.nn.Linear(3, 4), dn.nn.ReLU(), dn.nn.Linear(4, 5))
    before = snapshot(ours)
    with pytest.raises(dio.CheckpointError) as info:
        dio.load_torch_checkpoint(ours, tmp_path / "bad.pt")
    message = str(info.value)
    for part in ("bad.pt", "Sequential", "size mismatch for 0.weight", "(4, 2)", "(4, 3)", "dtype mismatch for 2.bias",
                 'Missing key(s) in state_dict: "0.bias"', 'Unexpected key(s) in state_dict: "extra.weight"'):
        assert part in message, part
    assert_unchanged(ours, before)


def test_data_parallel_prefix(tmp_path):
    torch.manual_seed(13)
    theirs = torch.nn.Linear(3, 2)
    torch.save({f"module.{k}": v for k, v in theirs.state_dict().items()}, tmp_path / "dp.pt")
    ours = dn.nn.Linear(3, 2)
    before = snapshot(ours)
    with pytest.raises(dio.CheckpointError, match="strip_prefix='module.'"):
        dio.load_torch_checkpoint(ours, tmp_path / "dp.pt")
    assert_unchanged(ours, before)
    dio.load_torch_checkpoint(ours, tmp_path / "dp.pt", strip_prefix="module.")
    np.testing.assert_array_equal(ours.weight.detach().numpy(), theirs.weight.detach().numpy())


def test_non_strict_reports_missing_and_unexpected(tmp_path):
    torch.manual_seed(14)
    state = torch.nn.Linear(3, 2).state_dict()
    state["running_mean"] = torch.zeros(2)
    del state["bias"]
    torch.save(state, tmp_path / "partial.pt")
    ours = dn.nn.Linear(3, 2)
    bias = ours.bias.detach().numpy().copy()
    result = dio.load_torch_checkpoint(ours, tmp_path / "partial.pt", strict=False)
    assert (result.missing_keys, result.unexpected_keys) == (["bias"], ["running_mean"])
    np.testing.assert_array_equal(ours.weight.detach().numpy(), state["weight"].numpy())
    np.testing.assert_array_equal(ours.bias.detach().numpy(), bias)


# ----------------------------------------------------------------- the writer
def test_written_archive_is_aligned_deterministic_and_mmap_loadable(tmp_path):
    model = perturbed_deepnum_model("mobilenet_v2_cifar", seed=15)
    dio.save_torch(model, tmp_path / "a.pt")
    dio.save_torch(model, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    raw = (tmp_path / "a.pt").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.pt") as archive:
        infos = archive.infolist()
    assert infos[0].filename == "archive/data.pkl" and "archive/version" in [i.filename for i in infos]
    for info in infos:  # local header: 30 bytes, then name and extra field, then the data
        at = info.header_offset
        name_length, extra_length = struct.unpack("<HH", raw[at + 26:at + 30])
        start = at + 30 + name_length + extra_length
        assert start % 64 == 0, info.filename
    state = torch.load(tmp_path / "a.pt", weights_only=True, mmap=True)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key].numpy(), value.numpy())


def test_save_is_atomic_and_checks_before_writing(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    dio.save_torch({"a": dn.ones(2)}, path)
    old = path.read_bytes()
    with pytest.raises(TypeError, match="save_torch: cannot write a object"):
        dio.save_torch({"a": dn.zeros(2), "b": object()}, path)
    with pytest.raises(TypeError, match="save_torch: dtype uint16"):
        dio.save_torch({"a": np.zeros(2, np.uint16)}, path)

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr("deepnum.io.pytorch.write_archive", crash)
    with pytest.raises(OSError, match="disk full"):
        dio.save_torch({"a": dn.zeros(2)}, path)
    assert path.read_bytes() == old and sorted(os.listdir(tmp_path)) == ["w.pt"]


def test_reading_and_writing_need_no_torch(tmp_path, monkeypatch):
    torch.manual_seed(16)
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "t.pt")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` would now raise ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = dio.load_torch(tmp_path / "t.pt")
        dio.save_torch(state, tmp_path / "back.pt")
    assert set(dio.load_torch(tmp_path / "back.pt")) == {"weight", "bias"}


def test_other_pickle_protocols_and_big_endian_archives(tmp_path):
    value = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7
    torch.save({"w": value, "n": torch.tensor([1, -2], dtype=torch.int64)}, tmp_path / "p4.pt", pickle_protocol=4)
    loaded = dio.load_torch(tmp_path / "p4.pt")
    np.testing.assert_array_equal(loaded["w"].numpy(), value.numpy())
    assert loaded["n"].numpy().tolist() == [1, -2]

    torch.save({"w": value}, tmp_path / "little.pt")
    with zipfile.ZipFile(tmp_path / "little.pt") as src, zipfile.ZipFile(tmp_path / "big.pt", "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in name:
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            dst.writestr(name, data)
    loaded = dio.load_torch(tmp_path / "big.pt")
    assert loaded["w"].dtype == np.float32 and loaded["w"].numpy().dtype.isnative
    np.testing.assert_array_equal(loaded["w"].numpy(), value.numpy())


def test_top_level_names():
    assert dn.load_torch is dio.load_torch and dn.save_torch is dio.save_torch
    assert dn.load_torch_checkpoint is dio.load_torch_checkpoint
