"""Mutable state for the compat facade, and how it crosses JAX transformations.

A `State` holds one value (any pytree). The facade's objects keep their variables in
states; the functional core never sees them. To run stateful code under ``jax.jit``,
``jax.grad``, ``jax.vmap`` or ``lax.scan``, a transformation

1. *discovers* which pre-existing states a function reads or writes, by tracing it once
   abstractly inside a `Frame` (writes are undone afterwards);
2. runs a *pure* version of the function that takes those states' values as arguments,
   installs them, calls the function, collects the new values and restores the old ones;
3. writes the new values back outside the transformation.

States created while a frame is active are local to that frame (they are neither inputs
nor outputs of the pure function). Frames nest: a transformation inside another one reads
its inputs and writes its outputs in the outer frame, which therefore sees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "State",
    "ShortTermState",
    "LongTermState",
    "HiddenState",
    "ParamState",
    "TreefyState",
    "Frame",
    "frame",
    "discover",
    "split_static",
    "rebuild",
    "install",
    "values_of",
    "write_values",
    "is_traced",
]

_FRAMES: list[Frame] = []
#: Depth of abstract discovery traces in progress (see `discover`); code that counts its
#: own compilations can skip these.
DISCOVERING = [0]


class State:
    """A mutable container for one value (array or pytree).

    Reading or writing ``.value`` inside an active `Frame` is recorded, which is how the
    compat transformations (``brainstate.transform.jit``, ``grad``, ``for_loop``, ...)
    thread state through JAX's functional transformations.
    """

    __module__ = "brainstate"

    def __init__(self, value: Any = None, name: str | None = None, **metadata: Any):
        if callable(value) and not isinstance(value, State) and not hasattr(value, "shape"):
            # brainstate accepts an initializer (brainstate.init.Constant(0.)) as value; its
            # shape is only known at init_state, so it stays None until then.
            value = None
        if isinstance(value, State):
            value = value.value
        self._value = value
        self.name = name
        self.metadata = metadata
        for fr in _FRAMES:
            fr.created.add(id(self))

    @property
    def value(self) -> Any:
        for fr in _FRAMES:
            fr.on_read(self)
        return self._value

    @value.setter
    def value(self, new: Any) -> None:
        if isinstance(new, State):
            new = new.value
        for fr in _FRAMES:
            fr.on_write(self)
        self._value = new

    def restore_value(self, v: Any) -> None:
        """Set the value without recording a write (used when undoing a trace)."""
        self._value = v

    @property
    def shape(self):
        return jax.tree_util.tree_map(lambda x: getattr(x, "shape", ()), self._value)

    def __repr__(self) -> str:
        v = self._value
        shown = f"ShapeDtypeStruct(shape={v.shape}, dtype={v.dtype})" if isinstance(v, jax.core.Tracer) else repr(v)
        return f"{type(self).__name__}(\n  value={shown}\n)"


class ShortTermState(State):
    """State reset at every run (hidden variables, buffers)."""

    __module__ = "brainstate"


class LongTermState(State):
    """State that persists across runs."""

    __module__ = "brainstate"


class HiddenState(ShortTermState):
    """A model's dynamical variable (``model.x``)."""

    __module__ = "brainstate"


class ParamState(LongTermState):
    """A trainable parameter's (raw, unconstrained) value."""

    __module__ = "brainstate"


TreefyState = State


class Frame:
    """Records the pre-existing states a piece of code reads and writes.

    ``touched`` keeps first-access order; ``old`` holds each written state's value from
    before its first write in this frame (so the writes can be undone).
    """

    def __init__(self):
        self.created: set[int] = set()
        self.touched: dict[int, State] = {}
        self.written: dict[int, State] = {}
        self.old: dict[int, Any] = {}

    def on_read(self, s: State) -> None:
        k = id(s)
        if k not in self.created and k not in self.touched:
            self.touched[k] = s

    def on_write(self, s: State) -> None:
        k = id(s)
        if k in self.created:
            return
        if k not in self.touched:
            self.touched[k] = s
        if k not in self.written:
            self.written[k] = s
            self.old[k] = s._value

    def undo(self) -> None:
        """Put every written state back to its value at the first write."""
        for k, s in self.written.items():
            s.restore_value(self.old[k])


@contextlib.contextmanager
def frame():
    """Activate a new `Frame` for the duration of the ``with`` block."""
    fr = Frame()
    _FRAMES.append(fr)
    try:
        yield fr
    finally:
        _FRAMES.remove(fr)


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def is_traced(tree: Any) -> bool:
    return any(_is_tracer(x) for x in jax.tree_util.tree_leaves(tree))


def _is_array_leaf(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, float, int, complex, bool))


def _hashable(x: Any) -> Any:
    try:
        hash(x)
        return x
    except TypeError:
        return id(x)


def split_static(tree: Any):
    """(array leaves, a hashable signature of the rest, the non-array leaves) of a pytree.

    Array-like leaves (arrays and Python numbers) become traced arguments; anything else
    (models, callables, strings) is kept as is.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    dynamic, static, kinds = [], [], []
    for leaf in leaves:
        if _is_array_leaf(leaf):
            arr = jnp.asarray(leaf)
            dynamic.append(arr)
            kinds.append(("a", arr.shape, str(arr.dtype), bool(getattr(arr, "weak_type", False))))
        else:
            static.append(leaf)
            kinds.append(("s", _hashable(leaf)))
    return dynamic, (treedef, tuple(kinds)), static


def rebuild(signature, dynamic, static):
    """Inverse of `split_static`."""
    treedef, kinds = signature
    dyn, sta = iter(dynamic), iter(static)
    leaves = [next(dyn) if k[0] == "a" else next(sta) for k in kinds]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def discover(fn: Callable, *args: Any, **kwargs: Any) -> tuple[list[State], list[State], Any]:
    """Trace ``fn(*args, **kwargs)`` abstractly: (states touched, states written, out shape).

    Every write is undone afterwards; states created inside are not reported.
    """
    dynamic, signature, static = split_static((args, kwargs))

    def call(dyn):
        a, k = rebuild(signature, dyn, static)
        return fn(*a, **k)

    with frame() as fr:
        DISCOVERING[0] += 1
        try:
            out = jax.eval_shape(call, dynamic)
        finally:
            DISCOVERING[0] -= 1
            fr.undo()
    return list(fr.touched.values()), list(fr.written.values()), out


def values_of(states: Sequence[State]) -> list[Any]:
    return [s.value for s in states]


def write_values(states: Sequence[State], values: Iterable[Any]) -> None:
    for s, v in zip(states, values):
        s.value = v


@contextlib.contextmanager
def install(states: Sequence[State], values: Sequence[Any]):
    """Give ``states`` the (traced) ``values`` inside the block; restore the old values
    afterwards, together with any other state written inside (so no tracer escapes)."""
    with frame() as fr:
        for s, v in zip(states, values):
            s.value = v
        try:
            yield fr
        finally:
            fr.undo()
