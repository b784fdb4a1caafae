"""deepnum.profiler: exact call counts and bytes per op, backward rows, record_function regions,
the hooks are off (and do no timing) outside a profile, table sorting, JSON round trip."""
import threading
import time

import numpy as np
import pytest

import deepnum as dn
from deepnum import profiler
from deepnum.autograd import engine, function


def _rows(prof, **kwargs):
    return {(r.kind, r.name): r for r in prof.key_averages(**kwargs)}


def _ops(prof):
    return {name: r for (kind, name), r in _rows(prof).items() if kind == "op"}


def _hooks_off():
    return function._PROFILER is None and engine._PROFILER is None


def test_known_ops_give_exact_counts_and_no_backward_rows():
    x, y = dn.randn(8, 16), dn.randn(8, 16)
    with profiler.profile() as prof:
        for _ in range(3):
            ((x + y) * y).exp().sum()
    ops = _ops(prof)
    assert set(ops) == {"Add", "Mul", "Exp", "Sum"}
    assert all(r.count == 3 and r.backward_count == 0 and r.backward_ns == 0 for r in ops.values())
    assert all(r.kind == "op" for r in prof.key_averages())
    table = prof.key_averages().table()
    exp_line = next(line for line in table.splitlines() if line.startswith("Exp "))
    assert exp_line.split()[1:7] == ["3", exp_line.split()[2], exp_line.split()[3], "-", "-", "-"]


def test_bytes_equal_the_outputs_nbytes():
    x = dn.randn(8, 16)
    w = dn.randn(16, 4, dtype=dn.float64)
    with profiler.profile() as prof:
        out = x.double() @ w
        values, indices = dn.max(x, dim=1)  # one Function, two outputs
    ops = _ops(prof)
    assert ops["MatMul"].forward_bytes == out.data.nbytes == 8 * 4 * 8
    assert ops["Cast"].forward_bytes == 8 * 16 * 8
    assert ops["ExtremeAlong"].count == 1
    assert ops["ExtremeAlong"].forward_bytes == values.data.nbytes + indices.data.nbytes
    assert sum(r.bytes for r in ops.values()) == sum(r.forward_bytes for r in ops.values())


def test_views_of_the_inputs_allocate_no_bytes():
    x = dn.randn(8, 16)
    with profiler.profile(record_shapes=True) as prof:
        view = x.reshape(16, 8)  # contiguous: a view
        copy = x.T.reshape(128)  # transposed: the reshape has to copy
    rows = {r.input_shapes: r for r in prof.key_averages(group_by_input_shape=True) if r.name == "Reshape"}
    assert rows[((8, 16),)].count == rows[((16, 8),)].count == 1
    assert rows[((8, 16),)].forward_bytes == 0
    reshape = _ops(prof)["Reshape"]
    assert reshape.count == 2 and reshape.forward_bytes == copy.data.nbytes == 8 * 16 * 4
    assert np.shares_memory(view.data, x.data) and not np.shares_memory(copy.data, x.data)
    assert _ops(prof)["Permute"].forward_bytes == 0


def test_backward_rows_appear_when_backward_runs():
    x = dn.randn(8, 16, requires_grad=True)
    with profiler.profile() as prof:
        loss = x.exp().sum()
    assert all(r.backward_count == 0 for r in prof.key_averages())
    with profiler.profile() as prof:
        loss = x.exp().sum()
        loss.backward()
    ops = _ops(prof)
    assert ops["Exp"].count >= 1 and ops["Exp"].backward_count == 1
    assert ops["Sum"].backward_count == 1
    # Exp's backward allocates the gradient of x (8x16 float32); Sum's returns the incoming scalar
    # gradient broadcast to 8x16, a view of it that allocates nothing
    assert ops["Exp"].backward_bytes == x.grad.data.nbytes == 8 * 16 * 4
    assert ops["Sum"].backward_bytes == 0
    assert ops["Exp"].backward_ns >= ops["Exp"].backward_self_ns > 0


def test_backward_time_includes_the_ops_its_formula_runs():
    x = dn.randn(32, 32, requires_grad=True)
    with profiler.profile() as prof:
        x.tanh().sum().backward()  # tanh's backward is g * (1 - y²), written with Tensor ops
    tanh = _ops(prof)["Tanh"]
    assert tanh.backward_count == 1
    assert tanh.backward_self_ns < tanh.backward_ns
    rows = prof.key_averages()
    assert sum(r.self_ns for r in rows) == rows.top_ns  # self times add up, nothing counted twice


def test_record_function_regions_nest_and_show_up():
    @profiler.record_function("decorated")
    def work():
        time.sleep(0.005)
        return dn.ones(4, 4).neg()

    with profiler.profile() as prof, profiler.record_function("outer"):
        time.sleep(0.01)
        with profiler.record_function("inner"):
            time.sleep(0.02)
            dn.ones(4, 4).exp()
        work()
    rows = _rows(prof)
    outer, inner, decorated = rows["region", "outer"], rows["region", "inner"], rows["region", "decorated"]
    assert outer.count == inner.count == decorated.count == 1
    assert inner.total_ns >= 20e6 and decorated.total_ns >= 5e6
    assert outer.total_ns >= inner.total_ns + decorated.total_ns + 10e6
    assert outer.self_ns == outer.total_ns - inner.total_ns - decorated.total_ns
    assert inner.self_ns == inner.total_ns - rows["op", "Exp"].total_ns
    assert decorated.self_ns == decorated.total_ns - rows["op", "Neg"].total_ns
    assert rows["op", "Exp"].count == rows["op", "Neg"].count == 1
    assert inner.bytes == 4 * 4 * 4 and outer.bytes == 2 * 4 * 4 * 4
    table = prof.key_averages().table()
    assert "[outer]" in table and "[inner]" in table and "[decorated]" in table
    lines = [line.split()[0] for line in table.splitlines()[3:-2]]
    assert lines.index("[outer]") < lines.index("[inner]") < lines.index("[decorated]")


def test_optimizer_step_is_a_region_named_as_torch():
    w = dn.randn(4, 3, requires_grad=True)
    opt = dn.optim.SGD([w], lr=0.1)
    with profiler.profile() as prof:
        for _ in range(2):
            opt.zero_grad()
            (w * w).sum().backward()
            opt.step()
    assert _rows(prof)["region", "Optimizer.step#SGD.step"].count == 2
    assert dn.optim.SGD.step.__name__ == "step"


def test_profiler_is_off_after_the_context():
    x = dn.randn(8, 8, requires_grad=True)
    with profiler.profile() as prof:
        x.exp().sum().backward()
        assert function._PROFILER is not None and engine._PROFILER is function._PROFILER
        assert prof.active
    assert _hooks_off() and not prof.active
    before = prof.to_dict()
    with profiler.record_function("late"):
        x.exp().sum().backward()
    assert prof.to_dict() == before


def test_exception_inside_the_context_leaves_it_off():
    with pytest.raises(ZeroDivisionError), profiler.profile():
        dn.ones(3).exp()
        1 / 0  # noqa: B018
    assert _hooks_off()
    with profiler.profile() as prof:  # a new profile starts cleanly
        dn.ones(3).exp()
    assert _ops(prof)["Exp"].count == 1


class Boom(function.Function):
    def forward(self, x):
        raise KeyError("boom")


def test_an_op_that_raises_inside_the_profile_does_not_break_the_accounting():
    x = dn.ones(3, 3)
    with profiler.profile() as prof:
        with pytest.raises(KeyError):
            Boom()(x)
        for _ in range(2):
            x.exp()
        with profiler.record_function("region"):
            with pytest.raises(KeyError):
                Boom()(x)
            x.exp()
        x.neg()
    rows = prof.key_averages()
    ops = _ops(prof)
    assert ops["Exp"].count == 3 and ops["Neg"].count == 1 and "Boom" not in ops
    assert _rows(prof)["region", "region"].count == 1
    assert sum(r.self_ns for r in rows) == rows.top_ns > 0


def test_nested_profiles_raise_and_a_profile_is_used_once():
    with profiler.profile() as outer:
        with pytest.raises(RuntimeError, match="profiles do not nest"), profiler.profile():
            pass
        dn.ones(2).exp()
    assert _hooks_off()
    assert _ops(outer)["Exp"].count == 1
    with pytest.raises(RuntimeError, match="already used"), outer:
        pass


def test_disabled_profile_records_nothing():
    with profiler.profile(enabled=False) as prof:
        assert _hooks_off()
        dn.ones(2).exp()
    assert list(prof.key_averages()) == []


def test_hooks_off_do_no_timing(monkeypatch):
    calls = []
    real = time.perf_counter_ns

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(time, "perf_counter_ns", counting)
    x = dn.randn(16, 16, requires_grad=True)
    assert _hooks_off()
    (x @ x).relu().sum().backward()
    assert calls == [], "Function.__call__ or the engine timed something with no profile active"
    with profiler.profile():
        (x @ x).relu().sum().backward()
    assert len(calls) >= 2 * 7  # start and end of 3 forward calls, 3 backward calls and more


def test_only_the_profiling_thread_is_recorded():
    def other():
        for _ in range(5):
            dn.ones(3).exp()

    with profiler.profile() as prof:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        dn.ones(3).exp()
    assert _ops(prof)["Exp"].count == 1


def test_group_by_input_shape():
    a, b = dn.randn(4, 5), dn.randn(6, 7)
    with profiler.profile(record_shapes=True) as prof:
        a.exp(), a.exp(), b.exp()
    rows = [r for r in prof.key_averages(group_by_input_shape=True) if r.name == "Exp"]
    assert sorted((r.input_shapes, r.count) for r in rows) == [(((4, 5),), 2), (((6, 7),), 1)]
    assert _ops(prof)["Exp"].count == 3  # merged without grouping
    assert "[(4, 5)]" in prof.key_averages(group_by_input_shape=True).table()
    with profiler.profile() as plain:
        a.exp()
    with pytest.raises(ValueError, match="record_shapes=True"):
        plain.key_averages(group_by_input_shape=True)


def _names(table: str) -> list[str]:
    return [line.split()[0] for line in table.splitlines()[3:-2]]


def test_table_sort_order_and_row_limit():
    x = dn.randn(64, 64, requires_grad=True)
    with profiler.profile() as prof:
        for _ in range(3):
            (x @ x).tanh().sum().backward()
        for _ in range(5):
            dn.ones(2).neg()
    rows = prof.key_averages()
    by_total = [r.name for r in sorted(rows, key=lambda r: (-r.total_ns, r.name))]
    assert _names(rows.table(sort_by="total", row_limit=-1)) == by_total
    assert _names(rows.table(row_limit=3)) == by_total[:3]
    by_self = [r.name for r in sorted(rows, key=lambda r: (-r.self_ns, r.name))]
    assert _names(rows.table(sort_by="self_cpu_time_total", row_limit=-1)) == by_self
    assert _names(rows.table(sort_by="self", row_limit=-1)) == by_self
    calls = [r.count for r in rows.sorted("count")]
    assert calls == sorted(calls, reverse=True) and calls[0] >= 5
    assert _names(rows.table(sort_by="calls"))[0] == rows.sorted("calls")[0].name
    assert _names(rows.table(sort_by="name", row_limit=-1)) == sorted(r.name for r in rows)
    assert rows.sorted("cpu_time_total") == rows.sorted("total")
    with pytest.raises(ValueError, match="unknown sort_by"):
        rows.table(sort_by="gpu_time")
    first = rows.sorted("total")[0]
    assert first.cpu_time_total == first.total_ns / 1000 and first.total_ms == first.total_ns / 1e6
    assert first.percent == pytest.approx(100 * first.self_ns / rows.wall_ns)
    assert 0 < sum(r.percent for r in rows) <= 100


def test_json_export_round_trips(tmp_path):
    x = dn.randn(16, 16, requires_grad=True)
    with profiler.profile(record_shapes=True) as prof, profiler.record_function("step"):
        (x @ x).relu().sum().backward()
    path = tmp_path / "profile.json"
    prof.export_json(path)
    loaded = profiler.load_json(path)
    assert loaded.to_dict() == prof.to_dict()
    assert loaded.table(row_limit=-1) == prof.table(row_limit=-1)
    grouped = loaded.key_averages(group_by_input_shape=True).table(row_limit=-1)
    assert grouped == prof.key_averages(group_by_input_shape=True).table(row_limit=-1)
    with pytest.raises(ValueError, match="not a deepnum profile"):
        profiler.profile.from_dict({"rows": []})


def test_profiled_step_gives_the_same_numbers():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 8)).astype(np.float32)
    results = []
    for enabled in (False, True):
        p = dn.tensor(w, requires_grad=True)
        with profiler.profile(enabled=enabled):
            (p @ p).tanh().sum().backward()
        results.append(p.grad.numpy())
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize(("model", "optimizer"), [("resnet20", "SGD"), ("lstm", "Adam")])
def test_profile_example_runs(tmp_path, model, optimizer):
    from examples.profile_step import main

    path = tmp_path / "profile.json"
    table = main(["--model", model, "--batch", "2", "--steps", "1", "--warmup", "0", "--rows", "-1",
                  "--json", str(path)])
    for name in ("[forward]", "[loss]", "[backward]", f"[Optimizer.step#{optimizer}.step]"):
        assert name in table
    loaded = profiler.load_json(path)
    assert loaded.table(row_limit=-1) == table
    ops = [r for r in loaded.key_averages() if r.kind == "op"]
    assert any(r.backward_count == 1 for r in ops) and all(r.name in table for r in ops)
    assert _hooks_off()
