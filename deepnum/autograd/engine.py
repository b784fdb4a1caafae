"""The backward pass: reverse-mode differentiation over the recorded graph.

Functions are visited in reverse topological order, so a Tensor used twice has both gradient
contributions summed before its own ``grad_fn`` runs (the chain rule over a DAG). Leaf gradients are
summed per pass, passed through the leaf's hooks and then accumulated into ``.grad``.
"""
from __future__ import annotations

from collections.abc import Sequence

from deepnum.autograd.function import Function
from deepnum.autograd.grad_mode import set_grad_enabled
from deepnum.backend import get_array_module
from deepnum.tensor import Tensor

# The active profiler (``deepnum.profiler.profile`` sets it; None when off).
_PROFILER = None

_FREED = (
    "Trying to backward through the graph a second time (or to use saved values after they were "
    "freed): {fn} was already used by an earlier backward. Pass retain_graph=True to the first "
    "backward if you need to go through the graph again."
)


def _topological_order(roots: Sequence[Tensor]) -> list[Function]:
    """Functions reachable from the roots, each after every Function that consumes its outputs."""
    order: list[Function] = []
    seen: set[int] = set()
    stack = [(t.grad_fn, False) for t in roots if t.grad_fn is not None]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if getattr(fn, "_freed", False):
            raise RuntimeError(_FREED.format(fn=repr(fn)))
        stack.append((fn, True))
        # The first input is explored first, so it finishes first and comes last in the reversed
        # order: a side branch such as ``weight.mT`` in ``linear`` runs right after its consumer, and
        # the weight's gradient is complete early (DistributedDataParallel sends it during backward).
        for t in reversed(fn.inputs):
            if t.grad_fn is not None and id(t.grad_fn) not in seen:
                stack.append((t.grad_fn, False))
    order.reverse()
    return order


def _root_grads(tensors: Sequence[Tensor], grad_tensors: Sequence[Tensor | None] | None) -> list[Tensor]:
    grads = []
    for i, t in enumerate(tensors):
        g = None if grad_tensors is None else grad_tensors[i]
        if not t._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
        if g is None:
            if t.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs: backward() on a tensor "
                    f"of shape {tuple(t.shape)} needs a gradient argument of that shape")
            g = Tensor._make(_filled(t.data, t.data.shape, t.data.dtype, 1))
        else:
            g = g if isinstance(g, Tensor) else Tensor(g, dtype=t.dtype)
            if tuple(g.shape) != tuple(t.shape):
                raise RuntimeError(f"backward: gradient of shape {tuple(g.shape)} does not match "
                                   f"the tensor's shape {tuple(t.shape)}")
            if g.dtype != t.dtype:
                g = g.to(t.dtype)  # a float64 seed must not turn a float32 graph's gradients into float64
        grads.append(g)
    return grads


def _apply_hooks(t: Tensor, g: Tensor) -> Tensor:
    for hook in t._hooks or ():
        out = hook(g)
        if out is not None:
            g = out
    return g


def run_backward(tensors: Sequence[Tensor], grad_tensors: Sequence[Tensor | None] | None,
                 retain_graph: bool, create_graph: bool,
                 inputs: Sequence[Tensor] | None = None) -> list[Tensor | None] | None:
    """Propagate gradients from ``tensors``. With ``inputs`` given (``autograd.grad``), return the
    gradients of those tensors and leave every ``.grad`` untouched; otherwise accumulate into leaves."""
    root_grads = _root_grads(tensors, grad_tensors)
    order = _topological_order(tensors)
    wanted = {id(t): t for t in inputs} if inputs is not None else None
    captured: dict[int, Tensor] = {}
    pending: dict[int, list] = {}  # id(tensor) -> [tensor, summed gradient]

    def deliver(t: Tensor, g: Tensor) -> None:
        entry = pending.get(id(t))
        if entry is None:
            pending[id(t)] = [t, g]
        else:
            entry[1] = entry[1] + g

    uses = _hooked_leaf_uses(order) if wanted is None and Tensor._any_post_accumulate_hooks else {}
    with set_grad_enabled(create_graph):
        for t, g in zip(tensors, root_grads, strict=True):
            deliver(t, g)
        for fn in order:
            leaves = [t for t in fn.inputs if id(t) in uses] if uses else ()
            _run_function(fn, pending, deliver, wanted, captured, retain_graph)
            for t in leaves:  # a hooked leaf whose last consumer has run: its gradient is complete now
                uses[id(t)] -= 1
                if uses[id(t)] == 0 and id(t) in pending:
                    _accumulate(t, pending.pop(id(t))[1], create_graph)
        for entry in pending.values():
            t, g = entry
            if t.grad_fn is not None:
                continue
            if wanted is not None:
                if id(t) in wanted:
                    captured[id(t)] = _apply_hooks(t, g)
                continue
            _accumulate(t, g, create_graph)
    if inputs is None:
        return None
    return [captured.get(id(t)) for t in inputs]


def _hooked_leaf_uses(order: list[Function]) -> dict[int, int]:
    """For each leaf with a post-accumulate-grad hook: how many inputs of the Functions in ``order``
    it is. Such a leaf's gradient is complete (and accumulated at once, firing the hook) when the
    count reaches zero, instead of at the end of the pass; other leaves are accumulated at the end."""
    uses: dict[int, int] = {}
    for fn in order:
        for t in fn.inputs:
            if t.grad_fn is None and getattr(t, "_post_accumulate_hooks", None):
                uses[id(t)] = uses.get(id(t), 0) + 1
    return uses


def _accumulate(t: Tensor, g: Tensor, create_graph: bool) -> None:
    """A leaf's complete gradient of this pass: tensor hooks, accumulation into ``.grad``, then the
    post-accumulate-grad hooks."""
    g = _apply_hooks(t, g)
    if not create_graph:
        g = g.detach()
    t.grad = g if t.grad is None else t.grad + g
    for hook in getattr(t, "_post_accumulate_hooks", None) or ():
        hook(t)


def _run_function(fn: Function, pending: dict, deliver, wanted, captured, retain_graph: bool) -> None:
    outputs = [ref() for ref in fn._outputs]
    if not any(out is not None and id(out) in pending for out in outputs):
        if not retain_graph:  # no gradient reached fn (its consumers returned None): nothing to pass on
            fn.release()
        return
    grads_out = []
    for i, out in enumerate(outputs):
        entry = pending.pop(id(out), None) if out is not None else None
        if entry is None:
            shape, dtype = fn._out_meta[i] if hasattr(fn, "_out_meta") else (out.shape, out.dtype)
            grads_out.append(Tensor._make(_filled(fn.inputs[0].data, shape, dtype, 0)))
            continue
        g = _apply_hooks(out, entry[1])
        if out._retains_grad:
            out.grad = g.detach() if out.grad is None else out.grad + g.detach()
        if wanted is not None and id(out) in wanted:
            captured[id(out)] = g
        grads_out.append(g)
    for t, v in zip(fn.inputs, fn._versions or (), strict=False):
        if t._version != v:
            raise RuntimeError(
                f"{fn!r}: a tensor of shape {tuple(t.shape)} that it saved for backward was modified "
                f"in place (version {v} -> {t._version}) after it was used")
    profiler = _PROFILER
    token = profiler.enter() if profiler is not None else None
    grads_in = fn.backward(*grads_out)
    if profiler is not None:
        profiler.backward_done(fn, grads_out, grads_in, token)
    if not isinstance(grads_in, tuple):
        grads_in = (grads_in,)
    for i, (t, g) in enumerate(zip(fn.inputs, grads_in, strict=True)):
        if g is not None and t._requires_grad:
            if g.shape != t.shape:
                raise RuntimeError(f"{fn!r} returned a gradient of shape {tuple(g.shape)} for input {i}, "
                                   f"whose shape is {tuple(t.shape)}")
            deliver(t, g)
    if not retain_graph:
        fn.release()


def _filled(like, shape, dtype, value):
    return get_array_module(like).full(shape, value, dtype=dtype)
