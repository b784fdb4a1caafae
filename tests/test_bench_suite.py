"""The benchmark suite (bench/suite.py) in its smoke mode: one round of one or two steps on a few small
workloads, through the module API and the command line. Checks the table and JSON structure, that
deepnum and torch give the same first-step output where the workload is deterministic (same weights),
and the memory measurement in a fresh process. Never asserts a timing."""
import json
import os

import numpy as np
import pytest
import torch

from bench import suite
from bench.harness import THREAD_VARS
from bench.memory import measure
from bench.vit import build_vit_step
from bench.zoo import build_resnet20_inference, build_resnet20_train

RESULT_KEYS = {"key", "name", "kind", "target", "rounds", "iterations", "warmup", "deepnum_ms", "torch_ms", "ratio",
               "ratio_min", "ratio_max", "ratio_iqr", "meets_target", "rounds_ms", "first_step", "memory"}


def test_quick_run_gives_the_table_and_json(tmp_path):
    path = tmp_path / "results.json"
    lines = []
    report = suite.run(["W1", "maxpool", "attention"], threads=1, quick=True, json_path=path, echo=lines.append)
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert [r["key"] for r in report["results"]] == ["W1", "maxpool", "attention"]
    assert len(lines) == 3 and lines[0].startswith("W1: deepnum ")
    for r in report["results"]:
        assert set(r) == RESULT_KEYS
        assert r["rounds"] == 1 and 1 <= r["iterations"] <= 2 and r["memory"] is None
        assert len(r["rounds_ms"]["deepnum"]) == len(r["rounds_ms"]["torch"]) == 1
        assert r["deepnum_ms"] > 0 and r["torch_ms"] > 0 and r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
        assert r["first_step"]["deterministic"] and r["first_step"]["match"], r["first_step"]
    w1 = report["results"][0]
    assert w1["target"] == 1.2 and isinstance(w1["meets_target"], bool)
    assert w1["first_step"]["deepnum"] == pytest.approx(w1["first_step"]["torch"], rel=1e-5)
    assert report["results"][1]["kind"] == "micro" and report["results"][1]["target"] is None
    env = report["environment"]
    assert env["threads"] == 1 and env["settings"]["threads"]["OPENBLAS_NUM_THREADS"] == "1"
    assert env["settings"]["torch_threads"] == 1
    assert any(pool.get("user_api") == "blas" for pool in env["settings"]["blas"])
    assert report["mode"] == "quick" and report["memory_method"] is None

    table = suite.format_table(report).splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("key"))
    assert all(name in table[header] for name in ("deepnum ms", "torch ms", "ratio", "spread", "peak RSS MB torch"))
    assert [line.split()[0] for line in table[header + 2:]] == ["W1", "maxpool", "attention"]
    markdown = suite.format_markdown(report).splitlines()
    rows = [line for line in markdown if line.startswith("|")]
    assert len(rows) == 2 + 3 and all(row.count("|") == len(suite.HEADER) + 1 for row in rows)
    assert any("OPENBLAS_CORETYPE" in line for line in markdown)


def test_threads_are_restored_after_the_run():
    before = torch.get_num_threads(), {var: os.environ.get(var) for var in THREAD_VARS}
    suite.run(["W1"], threads=1, quick=True, json_path=None, echo=None)
    assert (torch.get_num_threads(), {var: os.environ.get(var) for var in THREAD_VARS}) == before


def test_command_line_quick_markdown(tmp_path, capsys, monkeypatch):
    for var in THREAD_VARS:  # main() pins them for the process (before numpy loads); restore them after
        if var in os.environ:
            monkeypatch.setenv(var, os.environ[var])
        else:
            monkeypatch.delenv(var, raising=False)
    path = tmp_path / "r.json"
    suite.main(["--quick", "--threads", "1", "--only", "conv16", "--json", str(path), "--markdown"])
    out = capsys.readouterr().out
    assert "| key | workload | deepnum ms |" in out and "| conv16 | conv3x3 16ch 32x32" in out
    assert f"results written to {path}" in out
    assert json.loads(path.read_text())["results"][0]["key"] == "conv16"
    with pytest.raises(SystemExit):
        suite.main(["--quick", "--only", "W9"])
    assert "unknown workload(s) w9; known: W1, W2" in capsys.readouterr().err


def test_selection():
    items = suite.workloads()
    assert [w.key for w in items][:7] == [f"W{i}" for i in range(1, 8)]
    assert {w.key for w in items if w.kind == "micro"} == {"conv16", "conv32", "conv64", "maxpool", "batchnorm",
                                                          "attention"}
    targets = {w.key: w.target for w in items if w.target is not None}
    assert targets == {"W1": 1.2, "W2": 1.2, "W3": 2.0, "W4": 1.3, "W5": 1.3, "W6": 1.5, "W7": 1.5}
    assert [w.key for w in suite.select(items, ["w3", " W6"])] == ["W3", "W6"]
    assert len(suite.select(items, ["micro"])) == 6 and suite.select(items, None) == items
    with pytest.raises(suite.UnknownWorkloadError, match="unknown workload"):
        suite.select(items, ["W3", "resnet"])


def _losses(step, n):
    return [float(step().item()) for _ in range(n)]


def test_resnet20_builders_start_from_the_same_weights():
    torch.manual_seed(0)
    torch_step, reference = build_resnet20_train("torch", batch=4)
    ours_step, _ = build_resnet20_train("deepnum", reference, batch=4)
    np.testing.assert_allclose(_losses(ours_step, 2), _losses(torch_step, 2), rtol=1e-4)
    torch_step, reference = build_resnet20_inference("torch", batch=4)
    ours_step, _ = build_resnet20_inference("deepnum", reference, batch=4)
    theirs, ours = torch_step(), ours_step()
    assert ours.grad_fn is None and not ours.requires_grad
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_vit_torch_twin_trains_like_deepnum():
    """W7's torch network (torchvision's layout without torchvision) equals deepnum's ViT step for step."""
    torch.manual_seed(0)
    small = dict(image_size=16, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=24)
    torch_step, reference = build_vit_step("torch", batch=4, config=small)
    ours_step, ours = build_vit_step("deepnum", reference, batch=4, config=small)
    assert list(ours.state_dict()) == list(reference.state_dict())
    theirs, mine = _losses(torch_step, 3), _losses(ours_step, 3)
    np.testing.assert_allclose(mine, theirs, rtol=1e-4)
    assert mine[-1] < mine[0]


@pytest.mark.parametrize("lib", ["deepnum", "torch"])
def test_memory_is_measured_in_a_fresh_process_of_one_library(lib):
    result = measure("W1", lib, threads=1, steps=2)
    assert "error" not in result, result
    assert result["steps"] == 2
    # W1's step: activations, gradients and the loss of a 784-256-256-10 MLP on 128 rows, well under 20 MB
    assert 0 <= result["peak_mb"] < 20
    if result["method"] != "VmHWM":  # a kernel without /proc/self/clear_refs: the ru_maxrss lower bound only
        assert result["method"].startswith("ru_maxrss")
        return
    assert not result["other_library_loaded"] and result["imported_during_steps"] == 0
    assert result["retained_mb"] <= result["peak_mb"] and result["base_mb"] > 10 and result["warmup_mb"] >= 0
