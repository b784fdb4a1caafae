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
