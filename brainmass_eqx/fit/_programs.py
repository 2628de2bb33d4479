"""Compiled programs shared between `Fitter`s of the same problem.

A `Fitter` compiles its loss (inside a ``'grad'``/``'optimistix'`` step, a nevergrad
population or a SciPy value-and-gradient) as a jitted closure over everything of the fit
that is not an argument: ``predict``/``objective``/``loss_fn``, the optimiser, the model's
structure, its transforms and priors, and its fixed host (NumPy) arrays, which a `Network`
keeps as constants on purpose (see `ParamSpace`). The arguments are the parameters, the
target, the model's fixed JAX arrays and the key. Two Fitters whose closed-over parts are
equal run the same program on other arguments, so the second reuses the first's
compiled functions instead of compiling them again (the natural loop over subjects, one
Fitter each, had compiled once per subject).

"Equal" is decided by `value_key`, a hashable key of the closed-over parts *by value*:

- numbers, strings, NumPy and JAX arrays (their bytes, shape and dtype), containers,
  dataclasses and pytrees (equinox Modules: optimistix solvers, transforms, models) by
  their contents;
- a Python function by its code, defaults, the contents of its closure cells and of the
  module globals its code names (two calls of ``optax.adam(1e-2)``, or of
  ``objectives.fc_corr(as_loss=True)``, give equal keys; ``optax.adam(2e-2)`` does
  not; a ``predict`` that reads a global connectome sees it by value, so rebinding
  or editing it in place between two Fitters is seen);
- any other object with attributes by their values (a callable class as ``predict``, a
  facade model whose states a compat loss reads, a configuration object a global names);
- modules, classes, functions of other modules named by a global, and ``jax.jit``-ed
  functions by identity (held alive by the cache, so an id is never reused), as
  ``jax.jit`` itself does.

What a function reaches only through another module's function (a global that a library
helper reads) is not looked at: those are the library's own, fixed. A part that cannot
be keyed (a tracer, an object array, a lock, a structure too large to walk) makes the
Fitter keep its programs to itself, as before. The compat facade's ``brainstate.environ``
settings, which its models read while tracing, are part of every key.

The cache holds at most `MAX_PROGRAMS` programs (least recently used dropped first);
`clear` empties it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import hashlib
import sys
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

__all__ = ["MAX_PROGRAMS", "clear", "shared", "value_key"]

MAX_PROGRAMS = 32
# Walking a closure's globals can reach large structures (a logger, a DataFrame): past this
# many nodes the key is abandoned and the Fitter compiles its own programs.
_MAX_NODES = 20_000

_programs: OrderedDict[Hashable, Any] = OrderedDict()
_lock = threading.Lock()


class Unkeyable(Exception):
    """A closed-over part has no key (its reuse cannot be judged safe)."""


class _Same:
    """A key part equal only to the same object (holds it, so that its id stays unique)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def _array_key(kind: str, arr: np.ndarray, *extra) -> tuple:
    if arr.dtype.hasobject:
        raise Unkeyable("an object array")
    data = np.ascontiguousarray(arr)
    return (kind, arr.shape, arr.dtype.str, *extra, hashlib.blake2b(data.view(np.uint8).reshape(-1), digest_size=16).digest())


def _names(code: types.CodeType) -> set[str]:
    """The global (and attribute) names ``code`` and the functions nested in it use."""
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _names(const)
    return out


class _Walk:
    def __init__(self):
        self.nodes = 0
        # Functions and objects being keyed, by id: a reference back to one of them (a
        # recursive function, a child holding its parent) is keyed by its depth.
        self.active: dict[int, int] = {}
        # Above 0 while keying the marks a function carries on itself (``fn.__dict__``: a
        # signature, a wrapped function's bookkeeping): there an opaque object is taken by
        # identity instead of refusing the key.
        self.lenient = 0

    def key(self, obj: Any) -> Hashable:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise Unkeyable(f"more than {_MAX_NODES} parts")
        if obj is None or obj is Ellipsis or isinstance(obj, (bool, int, str, bytes)):
            return (type(obj).__name__, obj)
        if isinstance(obj, (float, complex)):
            return (type(obj).__name__, repr(obj))  # repr: -0.0 differs from 0.0, and nan equals nan
        if isinstance(obj, jax.tree_util.PyTreeDef):
            return ("treedef", obj)  # compares node types and static fields
        if isinstance(obj, np.dtype):
            return ("dtype", obj.str)
        if isinstance(obj, (np.ndarray, np.generic)):
            return _array_key("numpy", np.asarray(obj))
        if isinstance(obj, jax.core.Tracer):
            raise Unkeyable("a traced value")
        if isinstance(obj, jax.Array):
            if jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
                return ("key", str(obj.dtype), self.key(jax.random.key_data(obj)))
            return _array_key("jax", np.asarray(obj), bool(getattr(obj, "weak_type", False)))
        # A ContextVar is a module's fixed object (metrics' per-call warning record, read by
        # the objectives' wrapper): by identity, else every objective was unkeyable.
        if isinstance(obj, (types.ModuleType, type, types.BuiltinFunctionType, types.BuiltinMethodType, contextvars.ContextVar)):
            return _Same(obj)
        if isinstance(obj, (types.FunctionType, tuple, list, dict, set, frozenset, functools.partial, types.MethodType)):
            return self.nested(obj, self.parts)
        if callable(obj) and hasattr(obj, "__wrapped__") and type(obj).__module__.startswith("jax"):
            return _Same(obj)  # a jax.jit-ed function: jax itself reuses its trace by identity
        leaves, treedef = jax.tree_util.tree_flatten(obj)
        if not (len(leaves) == 1 and leaves[0] is obj):
            # A pytree node (an equinox Module): its static fields are in the treedef,
            # compared by their own equality; an unhashable one leaves it unkeyed.
            try:
                hash(treedef)
            except TypeError as err:
                raise Unkeyable(f"an unhashable static field ({err})") from None
            return ("tree", treedef, self.nested(leaves, self.parts))
        if dataclasses.is_dataclass(obj):
            return self.nested(obj, lambda o: (_Same(type(o)), tuple(self.key(getattr(o, f.name)) for f in dataclasses.fields(o))))
        if isinstance(getattr(obj, "__dict__", None), dict) and not hasattr(type(obj), "__slots__"):
            # Any other object by its attributes, which a trace may read (and which may
            # change between two Fitters: identity would miss that).
            if self.lenient:
                return _Same(obj)
            return self.nested(obj, lambda o: (_Same(type(o)), self.key(dict(vars(o)))))
        if self.lenient:
            return _Same(obj)
        raise Unkeyable(f"a {type(obj).__name__}, which has no value to compare")

    def nested(self, obj: Any, parts: Callable[[Any], Hashable]) -> Hashable:
        if id(obj) in self.active:
            return ("back", self.active[id(obj)])
        self.active[id(obj)] = len(self.active)
        try:
            return parts(obj)
        finally:
            del self.active[id(obj)]

    def parts(self, obj: Any) -> Hashable:
        if isinstance(obj, types.FunctionType):
            return self.function(obj)
        if isinstance(obj, types.MethodType):
            return ("method", self.key(obj.__func__), self.key(obj.__self__))
        if isinstance(obj, functools.partial):
            return ("partial", self.key(obj.func), self.key(obj.args), self.key(obj.keywords))
        if isinstance(obj, (tuple, list)):
            return (_Same(type(obj)), tuple(self.key(x) for x in obj))
        if isinstance(obj, dict):
            return (_Same(type(obj)), tuple((self.key(k), self.key(v)) for k, v in obj.items()))
        return (_Same(type(obj)), frozenset(self.key(x) for x in obj))  # a set

    def function(self, fn: types.FunctionType) -> Hashable:
        cells = []
        for cell in fn.__closure__ or ():
            try:
                cells.append(self.key(cell.cell_contents))
            except ValueError:  # an empty cell (a name bound later)
                cells.append(("empty",))
        glob = fn.__globals__
        used = []
        for name in sorted(_names(fn.__code__)):
            if name not in glob:
                continue
            value = glob[name]
            if isinstance(value, types.FunctionType) and value.__globals__ is not glob:
                used.append((name, _Same(value)))  # another module's function: the library's, fixed
            else:
                # By value, as closure cells: a config object whose attribute a script sets
                # between two Fitters (cfg.duration = ...) is read when tracing, and keyed
                # by identity the second Fitter would rerun the first's program.
                used.append((name, self.key(value)))
        return (
            "function",
            fn.__code__,
            _Same(glob),
            self.key(fn.__defaults__),
            self.key(fn.__kwdefaults__),
            tuple(cells),
            tuple(used),
            self.leniently(dict(fn.__dict__)),  # marks read when tracing (an objective's target_is_fc)
        )

    def leniently(self, obj: Any) -> Hashable:
        self.lenient += 1
        try:
            return self.key(obj)
        finally:
            self.lenient -= 1


def _context() -> Hashable:
    """What a trace reads besides its closure: the compat facade's ``brainstate.environ``
    settings (its models read ``dt`` there while tracing), where the facade is in use."""
    environ = sys.modules.get("brainmass_eqx.compat.brainstate.environ")
    return None if environ is None else _Walk().key(environ.all())


def value_key(*parts: Any) -> Hashable | None:
    """A hashable key equal for two tuples of ``parts`` that would compile to the same
    program (see the module docstring), or None where some part cannot be keyed."""
    try:
        key = (_Walk().key(parts), _context())
        hash(key)
    except (Unkeyable, TypeError, RecursionError):
        return None
    return key


def shared(key: Hashable, build: Callable[[], Any]) -> Any:
    """The program cached under ``key``, built by ``build()`` the first time."""
    with _lock:
        if key in _programs:
            _programs.move_to_end(key)
            return _programs[key]
    program = build()  # outside the lock: building may trace for seconds
    with _lock:
        program = _programs.setdefault(key, program)  # another thread's, if it was first
        _programs.move_to_end(key)
        while len(_programs) > MAX_PROGRAMS:
            _programs.popitem(last=False)
    return program


def clear() -> None:
    """Forget every shared program (their memory is freed once no Fitter uses them)."""
    with _lock:
        _programs.clear()
