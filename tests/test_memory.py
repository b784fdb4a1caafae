"""The graph and its saved arrays are freed after every backward: 1,000 training iterations of the
benchmark MLP keep traced memory flat, without help from the cycle collector."""
import gc
import tracemalloc

import deepnum as dn
from bench.mlp import make_weights, mlp_step


def test_mlp_training_memory_is_flat_over_1000_iterations():
    layers, x, y = make_weights(seed=0)
    params = []
    for w, b in layers:
        params += [dn.tensor(w, requires_grad=True), dn.tensor(b, requires_grad=True)]
    xt, yt = dn.tensor(x), dn.tensor(y)
    gc.collect()
    gc.disable()  # refcounting alone must free every graph: no reference cycles
    try:
        tracemalloc.start()
        for _ in range(20):
            mlp_step(dn, params, xt, yt)
        baseline, _ = tracemalloc.get_traced_memory()
        losses = [mlp_step(dn, params, xt, yt).item() for _ in range(1000)]
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        unreachable = gc.collect()
    finally:
        gc.enable()
    growth = current - baseline
    assert growth < 256 * 1024, f"memory grew by {growth / 1e6:.2f} MB over 1000 iterations"
    # one step's activations and gradients are ~2 MB; a leaked graph would hold hundreds of MB
    assert peak - baseline < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB above baseline"
    assert unreachable == 0, f"{unreachable} objects were only collectable as reference cycles"
    assert losses[-1] < losses[0], "the loss should fall while training on a fixed batch"


def test_graph_is_released_when_the_output_dies():
    x = dn.randn(64, 64, requires_grad=True)
    y = (x @ x).tanh().sum()
    fn = y.grad_fn
    import weakref

    ref = weakref.ref(fn)
    del y, fn
    assert ref() is None, "a graph with no live output must be freed immediately"


def test_backward_frees_saved_state():
    x = dn.randn(8, 8, requires_grad=True)
    h = x.exp()
    y = h.sum()
    y.backward()
    assert getattr(h.grad_fn, "inputs", None) is None, "saved inputs must be dropped after backward"


# ----------------------------------------------------------------------------- inference and conv/LSTM steps
def _live_functions() -> int:
    from deepnum.autograd import Function

    return sum(issubclass(type(o), Function) for o in gc.get_objects())  # type(): no __class__ lookups


def _forward_with_weak_outputs(model, x):
    """Run ``model(x)`` with a forward hook on every submodule that keeps only a weak reference to its
    output; returns (output, weak references to every submodule's output)."""
    import weakref

    refs = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: refs.append(weakref.ref(out)))
             for _, m in model.named_modules() if m is not model]
    try:
        out = model(x)
    finally:
        for remove in hooks:
            remove()
    return out, refs


def test_inference_under_no_grad_builds_no_graph():
    """ResNet-20 in eval mode under no_grad: the output has no grad_fn and nothing from the forward
    survives it (no Function object, no intermediate activation), freed by reference counting alone.
    With grad enabled, the same forward keeps its graph: the check is not vacuous."""
    from deepnum.models.resnet import resnet20

    dn.manual_seed(0)
    model = resnet20().eval()
    x = dn.randn(2, 3, 32, 32)
    gc.collect()
    gc.disable()
    try:
        functions_before = _live_functions()
        with dn.no_grad():
            out, refs = _forward_with_weak_outputs(model, x)
        assert out.grad_fn is None and not out.requires_grad
        alive = [r() for r in refs if r() is not None and r() is not out]
        assert not alive, f"{len(alive)} intermediate outputs survive a no_grad forward"
        assert _live_functions() == functions_before, "a no_grad forward left Function objects alive"
        del out
        out, refs = _forward_with_weak_outputs(model, x)  # grad mode: parameters require grad
        assert out.grad_fn is not None
        assert sum(r() is not None for r in refs) > 10 and _live_functions() > functions_before + 10
        del out
        assert all(r() is None for r in refs), "the graph must die with its output"
    finally:
        gc.enable()


def _flat_memory(step, warmup: int, steps: int) -> dict:
    """Growth of traced memory and of the number of live (GC-tracked) objects, peak above the
    baseline, objects only collectable as cycles, and the losses, over ``steps`` steps after
    ``warmup`` steps, traced by tracemalloc with the cycle collector off."""
    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        for _ in range(warmup):
            step()
        baseline, _ = tracemalloc.get_traced_memory()
        objects = len(gc.get_objects())
        tracemalloc.reset_peak()
        losses = [step().item() for _ in range(steps)]
        current, peak = tracemalloc.get_traced_memory()
        objects = len(gc.get_objects()) - objects
        tracemalloc.stop()
        unreachable = gc.collect()
    finally:
        gc.enable()
    return dict(growth=current - baseline, peak=peak - baseline, objects=objects, unreachable=unreachable,
                losses=losses)


def test_lenet5_training_memory_is_flat_over_200_steps():
    from bench.layers import build_lenet_step

    dn.manual_seed(0)
    step, _ = build_lenet_step("deepnum")
    run = _flat_memory(step, warmup=5, steps=200)
    # one leaked step would keep ~10 MB; allocator and interpreter caches settle within ~0.3 MB
    assert run["growth"] < 1024 * 1024, f"memory grew by {run['growth'] / 1e6:.2f} MB over 200 LeNet-5 steps"
    assert run["objects"] <= 10, f"{run['objects']} more live objects after 200 steps"
    # one step's activations, im2col columns and gradients: ~10-15 MB; a leaked graph would add that per step
    assert run["peak"] < 48 * 1024 * 1024, f"peak {run['peak'] / 1e6:.1f} MB above baseline"
    assert run["unreachable"] == 0, f"{run['unreachable']} objects were only collectable as reference cycles"
    assert run["losses"][-1] < run["losses"][0]


def test_lstm_lm_training_memory_is_flat_over_100_steps():
    """The LSTM step frees tens of thousands of small objects at once; CPython keeps some of them on its
    free lists (tuples, floats), which tracemalloc still counts: ~0.3 MB over the first 100 steps, levelling
    off (~0.45 MB after 400). One leaked step would keep ~8 MB of gates alone, and the number of live
    objects stays the same."""
    from bench.sequences import build_lstm_step

    dn.manual_seed(0)
    step, _ = build_lstm_step("deepnum")
    run = _flat_memory(step, warmup=3, steps=100)
    assert run["growth"] < 1024 * 1024, f"memory grew by {run['growth'] / 1e6:.2f} MB over 100 LSTM LM steps"
    assert run["objects"] <= 10, f"{run['objects']} more live objects after 100 steps"
    assert run["peak"] < 96 * 1024 * 1024, f"peak {run['peak'] / 1e6:.1f} MB above baseline"
    assert run["unreachable"] == 0, f"{run['unreachable']} objects were only collectable as reference cycles"
    assert run["losses"][-1] < run["losses"][0]
