"""``brainstate.transform``: ``jit``, ``grad``, ``vmap``, ``for_loop``, ``scan`` for stateful code.

Each transformation discovers the states its function touches (see `_state`), runs a
pure version of it under the corresponding JAX transformation with the states' values as
explicit arguments, and writes the new values back. Compiled functions are cached: a
second call with arguments of the same shapes (and no new states created since) reuses
the compiled program.
"""

from __future__ import annotations

import collections
import functools
import itertools
import types
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _progress, _state, environ
from ._progress import ProgressBar
from ._state import (
    State,
    discover,
    install,
    rebuild as _rebuild,
    split_static as _split_static,
    values_of,
    write_values,
)

__all__ = ["jit", "grad", "value_and_grad", "vmap", "for_loop", "scan", "checkpoint", "remat", "cond", "while_loop",
           "ProgressBar"]

# Bumped whenever a State is created outside any trace: cached discoveries made before may
# miss states that replaced old ones (``self.x = HiddenState(...)`` in ``init_state``).
_GENERATION = itertools.count()
_current_generation = [0]
_original_state_init = State.__init__


def _counting_init(self, *args, **kwargs):
    _original_state_init(self, *args, **kwargs)
    if not _state._FRAMES:
        _current_generation[0] = next(_GENERATION)


State.__init__ = _counting_init


class _Holder:
    """The states a compiled pure function installs (read only when it is traced)."""

    touched: list = []
    written: list = []


def _pattern(touched: list[State], written: list[State]) -> tuple:
    """The abstract signature of the states: a compiled program serves any states with it."""
    avals = []
    for s in touched:
        leaves, treedef = jax.tree_util.tree_flatten(s._value)
        avals.append((treedef, tuple((jnp.shape(x), str(jnp.result_type(x))) for x in leaves)))
    mask = tuple(any(s is w for w in written) for s in touched)
    return tuple(avals), mask


class _Cache:
    """Discovered states (per argument signature) and compiled programs (per signature and
    state pattern) of one transformed function.

    Discovery is redone when states have been created since (``init_state`` replacing
    ``self.x``); the compiled program is reused when the new states have the same shapes,
    in the same roles.
    """

    def __init__(self):
        self.entries: dict[Any, tuple[int, list[State], list[State]]] = {}
        self.compiled: dict[Any, tuple[Any, _Holder]] = {}

    def lookup(self, key, discover_fn):
        entry = self.entries.get(key)
        gen = _current_generation[0]
        if entry is None or entry[0] != gen:
            touched, written, _ = discover_fn()
            entry = (gen, touched, written)
            self.entries[key] = entry
        return entry[1], entry[2]


# -- jit ---------------------------------------------------------------------------------------


def jit(fun: Callable | None = None, *, static_argnums: Any = (), static_argnames: Any = (), **jit_kwargs: Any):
    """``jax.jit`` for functions that read and write states.

    The first call traces ``fun`` twice (once to find the states it touches, once to
    compile); later calls with arguments of the same shapes run the cached program.
    ``keep_unused``, ``device``, ``backend``, ``inline`` and ``compiler_options`` are
    ``jax.jit``'s, ``name`` is accepted; shardings and donated arguments are refused (the
    compiled function's arguments are the states' values and yours, not yours alone).
    """
    refused = [k for k in ("in_shardings", "out_shardings", "donate_argnums", "donate_argnames")
               if jit_kwargs.get(k) not in (None, (), [])]  # fmt: skip
    if refused:
        raise NotImplementedError(
            f"jit({refused[0]}=...) is not reproduced by the facade: its compiled function takes the states' "
            f"values besides your arguments. Drop {refused[0]}, or jit a pure function with jax.jit."
        )
    unknown = set(jit_kwargs) - {"keep_unused", "device", "backend", "inline", "compiler_options", "name",
                                 "in_shardings", "out_shardings", "donate_argnums", "donate_argnames"}  # fmt: skip
    if unknown:
        raise TypeError(f"jit() got an unexpected keyword argument {sorted(unknown)[0]!r}.")
    jit_kwargs = {k: v for k, v in jit_kwargs.items()
                  if k in ("keep_unused", "device", "backend", "inline", "compiler_options")}  # fmt: skip
    fn = fun
    if fn is None:
        return functools.partial(jit, static_argnums=static_argnums, static_argnames=static_argnames, **jit_kwargs)
    cache = _Cache()

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        dynamic, signature, static = _split_static((args, kwargs))
        key = signature

        def call(a, k):
            return fn(*a, **k)

        def discover_fn():
            return discover(lambda *d: call(*_rebuild(signature, d, static)), *dynamic)

        touched, written = cache.lookup(key, discover_fn)
        ckey = (key, _pattern(touched, written))
        if ckey not in cache.compiled:
            holder = _Holder()

            def pure(state_vals, dyn, holder=holder):
                with install(holder.touched, state_vals):
                    out = call(*_rebuild(signature, dyn, static))
                    new_vals = [s.value for s in holder.written]
                return out, new_vals

            cache.compiled[ckey] = (jax.jit(pure, **jit_kwargs), holder)
        compiled, holder = cache.compiled[ckey]
        holder.touched, holder.written = touched, written
        out, new_vals = compiled(values_of(touched), dynamic)
        write_values(written, new_vals)
        return out

    wrapped.__wrapped_fn__ = fn
    return wrapped


# -- grad ----------------------------------------------------------------------------------------


def _flatten_states(grad_states):
    if grad_states is None:
        return [], lambda leaves: None
    if isinstance(grad_states, State):
        return [grad_states], lambda leaves: leaves[0]
    if isinstance(grad_states, dict):
        keys = list(grad_states)
        return [grad_states[k] for k in keys], lambda leaves: dict(zip(keys, leaves))
    seq = list(grad_states)
    return seq, lambda leaves: type(grad_states)(leaves) if isinstance(grad_states, tuple) else list(leaves)


def grad(
    fun: Callable | None = None,
    grad_states: Any = None,
    argnums: int | Sequence[int] | None = None,
    holomorphic: bool = False,
    allow_int: bool = False,
    has_aux: bool = False,
    return_value: bool = False,
    unit_aware: bool = False,
    check_states: bool = True,
):
    """Gradient of ``fun`` with respect to the values of ``grad_states`` (and/or ``argnums``).

    The returned function gives ``grads``, then the value if ``return_value``, then the
    auxiliary output if ``has_aux`` (as brainstate does). ``grads`` has the structure of
    ``grad_states`` (a dict gives a dict with the same keys); with ``argnums`` as well,
    it is ``(state_grads, arg_grads)``. ``holomorphic`` and ``allow_int`` are
    ``jax.grad``'s; with ``check_states`` (the default) a state of ``grad_states`` that
    ``fun`` never reads is an error, without it its gradient is zero.
    """
    options = dict(grad_states=grad_states, argnums=argnums, holomorphic=holomorphic, allow_int=allow_int,
                   has_aux=has_aux, return_value=return_value, unit_aware=unit_aware, check_states=check_states)
    if fun is None:
        return functools.partial(grad, **options)
    if unit_aware:
        raise NotImplementedError(
            "grad(unit_aware=True): the compat facade's gradients are plain numbers (brainunit's unit-aware "
            "autograd is not reproduced). Use unit_aware=False and attach the units yourself."
        )
    fn = fun
    gstates, rebuild = _flatten_states(grad_states)
    if not gstates and argnums is None:
        argnums = 0

    @functools.wraps(fn)
    def wrapped(*args):
        touched, _, _ = discover(fn, *args)
        unread = [g for g in gstates if not any(s is g for s in touched)]
        if check_states and unread:
            raise ValueError(
                f"grad: {len(unread)} of grad_states (a {type(unread[0]).__name__} of shape "
                f"{jnp.shape(unread[0].value)}{', ...' if len(unread) > 1 else ''}) is not read by {_fn_name(fn)}, so "
                f"its gradient would be zero. Pass check_states=False to get that zero gradient."
            )
        others = [s for s in touched if not any(s is g for g in gstates)]
        arg_nums = () if argnums is None else ((argnums,) if isinstance(argnums, int) else tuple(argnums))

        def pure(gvals, diff_args, other_vals, rest):
            all_args = list(rest)
            for i, v in zip(arg_nums, diff_args):
                all_args[i] = v
            with install(list(gstates) + others, list(gvals) + list(other_vals)):
                out = fn(*all_args)
                new_other = [s.value for s in others]
            value, aux = out if has_aux else (out, None)
            return value, (value, aux, new_other)

        diff_args = [args[i] for i in arg_nums]
        which = (0, 1) if arg_nums else 0
        g, (value, aux, new_other) = jax.grad(
            pure, argnums=which, has_aux=True, holomorphic=holomorphic, allow_int=allow_int
        )(
            values_of(gstates), diff_args, values_of(others), list(args)
        )
        write_values(others, new_other)
        if arg_nums:
            sg, ag = g
            ag = ag[0] if isinstance(argnums, int) else tuple(ag)
            grads = (rebuild(sg), ag) if gstates else ag
        else:
            grads = rebuild(g)
        out = (grads,)
        if return_value:
            out += (value,)
        if has_aux:
            out += (aux,)
        return out[0] if len(out) == 1 else out

    return wrapped


def value_and_grad(fun: Callable | None = None, grad_states: Any = None, argnums=None, has_aux: bool = False, **kwargs):
    """``(value, grads)`` (``((value, aux), grads)`` with ``has_aux``), as ``jax.value_and_grad``;
    other keywords are `grad`'s."""
    if fun is None:
        return functools.partial(value_and_grad, grad_states=grad_states, argnums=argnums, has_aux=has_aux, **kwargs)
    g = grad(fun, grad_states, argnums, has_aux=has_aux, return_value=True, **kwargs)

    def wrapped(*args):
        out = g(*args)
        if has_aux:
            grads, value, aux = out
            return (value, aux), grads
        grads, value = out
        return value, grads

    return wrapped


# -- vmap ----------------------------------------------------------------------------------------


def vmap(
    fn: Callable | None = None,
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_name: Any = None,
    axis_size: int | None = None,
    spmd_axis_name: Any = None,
    in_states: Any = None,
    out_states: Any = None,
):
    """``jax.vmap`` for functions that may touch states.

    States are passed unbatched. The global random key is split per batch element, so
    random draws differ across the batch. A written state receives the value of the first
    batch element. ``axis_name`` and ``spmd_axis_name`` are ``jax.vmap``'s; brainstate's
    batched states (``in_states``, ``out_states``) are refused.
    """
    if in_states is not None or out_states is not None:
        raise NotImplementedError(
            "vmap(in_states=..., out_states=...): the facade's vmap passes states unbatched and does not "
            "reproduce brainstate's batched states. Pass the batched values as arguments (in_axes), or run "
            "the ensemble on the functional core (brainmass_eqx.ensemble)."
        )
    if fn is None:
        return functools.partial(vmap, in_axes=in_axes, out_axes=out_axes, axis_name=axis_name,
                                 axis_size=axis_size, spmd_axis_name=spmd_axis_name)  # fmt: skip
    from . import random

    @functools.wraps(fn)
    def wrapped(*args):
        axes = tuple(in_axes) if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        n = axis_size
        for a, ax in zip(args, axes):
            if n is None and ax is not None:
                n = jnp.shape(jax.tree_util.tree_leaves(a)[0])[ax]
        if axis_name is None:
            first = [a if ax is None else jax.tree_util.tree_map(functools.partial(jnp.take, indices=0, axis=ax), a)
                     for a, ax in zip(args, axes)]  # fmt: skip
            touched, written, _ = discover(fn, *first)
        else:  # collectives over axis_name need the batch axis while the states are found
            touched, written, _ = discover(jax.vmap(fn, in_axes=axes, axis_name=axis_name, axis_size=n), *args)
        rng = [s for s in touched if s is random.DEFAULT]
        others = [s for s in touched if s is not random.DEFAULT]
        written_others = [s for s in others if any(s is w for w in written)]

        def pure(rng_keys, other_vals, *a):
            vals = ([rng_keys] if rng else []) + list(other_vals)
            with install(rng + others, vals):
                out = fn(*a)
                new_vals = [s.value for s in written_others]
            return out, new_vals

        keys = random.split_key(n) if rng else None
        out, new_vals = jax.vmap(
            pure, in_axes=(0 if rng else None, None) + axes, out_axes=(out_axes, 0), axis_size=n,
            axis_name=axis_name, spmd_axis_name=spmd_axis_name,
        )(keys, values_of(others), *args)  # fmt: skip
        write_values(written_others, [jax.tree_util.tree_map(lambda x: x[0], v) for v in new_vals])
        return out

    return wrapped


# -- loops ---------------------------------------------------------------------------------------


def _first(xs):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[0], xs)


def _to_arrays(xs):
    return jax.tree_util.tree_map(jnp.asarray, xs)


def _scan_eager(fn: Callable, init: Any, xs: Any, length, reverse, unroll, progress: tuple | None = None):
    """The loop; ``progress``: ``(freq, n, ProgressBar)`` to tick a progress bar."""
    x0 = None if xs is None else _first(xs)
    touched, _, _ = discover(fn, init, x0)
    if not _state.DISCOVERING[0]:
        LOOP_TRACES[_fn_name(fn)] += 1

    def body(carry, x):
        user, state_vals = carry
        with install(touched, state_vals):
            user, y = fn(user, x)
            new_vals = [s.value for s in touched]
        return (user, new_vals), y

    carry = (init, values_of(touched))
    if progress is not None:
        body, carry = _progress.with_progress(body, *progress), (jnp.zeros((), jnp.int32), carry)
    carry, ys = jax.lax.scan(body, carry, xs, length=length, reverse=reverse, unroll=unroll)
    user, state_vals = carry if progress is None else carry[1]
    write_values(touched, state_vals)
    return user, ys


def _n_iterations(xs: Any, length: int | None) -> int:
    if length is not None:
        return int(length)
    leaves = jax.tree_util.tree_leaves(xs)
    if not leaves:
        raise ValueError("scan/for_loop: give xs or length (the number of iterations).")
    return int(jnp.shape(leaves[0])[0])


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None, reverse: bool = False, unroll: int = 1,
         pbar: Any = None):  # fmt: skip
    """``lax.scan`` of ``f(carry, x) -> (carry, y)``; states touched by ``f`` are carried too.

    Called outside any transformation, the loop is compiled once and cached (see
    `_loop_key`): a second call with the same function, shapes and constants runs the
    cached program without tracing ``fn`` again (brainstate re-traced and recompiled every
    call). Inside a transformation it is traced inline. ``pbar``: a `ProgressBar` (or an
    int, its ``freq``) drawn while the loop runs.
    """
    fn = f
    xs = _to_arrays(xs)
    with _progress.running(pbar, _n_iterations(xs, length) if pbar is not None else 0) as runner:
        progress = None if runner is None else (runner.freq, runner.n, runner.pbar)
        if _state._FRAMES:
            return _scan_eager(fn, init, xs, length, reverse, unroll, progress)
        keep: list = []
        # The environment (dt, ...) is read when the body is traced: part of the key.
        env = tuple(sorted((k, _value_key(v, keep, 1)) for k, v in environ.all().items()))
        # A bar's label function is traced into the program; its text and bar are drawn on the host.
        label = None if runner is None or not isinstance(runner.pbar.desc, (tuple, list)) else _loop_key(runner.pbar.desc[1], keep)
        ticks = None if progress is None else (progress[0], progress[1], label)
        key = (_loop_key(fn, keep), env, length, reverse, unroll, ticks)
        entry = _LOOP_CACHE.get(key)
        if entry is None:
            compiled = jit(functools.partial(_scan_eager, fn, length=length, reverse=reverse, unroll=unroll, progress=progress))
            entry = _LOOP_CACHE[key] = (compiled, keep)
            while len(_LOOP_CACHE) > _LOOP_CACHE_SIZE:
                _LOOP_CACHE.popitem(last=False)
        _LOOP_CACHE.move_to_end(key)
        return entry[0](init, xs)


def for_loop(f: Callable, *xs: Any, length: int | None = None, reverse: bool = False, unroll: int = 1, pbar: Any = None):
    """Call ``f(*x)`` for every slice ``x`` of ``xs`` along axis 0; stack the outputs.

    Compiled once per function and shapes, like `scan`; ``pbar`` as there."""
    xs = tuple(_to_arrays(x) for x in xs)
    return scan(_ForLoopBody(f), None, xs, length=length, reverse=reverse, unroll=unroll, pbar=pbar)[1]


class _ForLoopBody:
    """``fn(*x)`` as a scan body; equal (for the loop cache) when ``fn`` is the same."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, carry, x):
        return carry, self.fn(*x)


# -- the loop cache ---------------------------------------------------------------------------

#: Traces of loop bodies by function name (a test counts these: a cached loop adds none).
LOOP_TRACES: collections.Counter = collections.Counter()
_LOOP_CACHE: collections.OrderedDict = collections.OrderedDict()
_LOOP_CACHE_SIZE = 128
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def _fn_name(fn) -> str:
    fn = fn.fn if isinstance(fn, _ForLoopBody) else fn
    return getattr(fn, "__qualname__", type(fn).__name__)


def _value_key(value: Any, keep: list, depth: int = 0) -> Any:
    """A key for a value a loop body closes over: scalars by value; modules by identity and
    their constant attributes (see `_module_key`); anything else by identity (kept alive in
    the cache entry, so the id cannot be reused by another object)."""
    from .. import brainunit as u
    from .nn import Module

    if isinstance(value, _SCALARS):
        return ("v", type(value).__name__, value)
    if isinstance(value, u.Quantity):
        return ("q", str(value.unit), _value_key(value.value, keep, depth))
    if isinstance(value, (np.ndarray, np.generic, jax.Array)) and np.size(value) <= 16:
        # Small arrays (dt, a gain) by value: equal numbers give the same program.
        arr = np.asarray(value)
        return ("a", arr.shape, str(arr.dtype), arr.tobytes())
    keep.append(value)
    if isinstance(value, Module) and depth == 0:
        return ("m", id(value), _module_key(value, keep))
    if isinstance(value, tuple) and depth == 0 and len(value) <= 16:
        return ("t", tuple(_value_key(v, keep, depth + 1) for v in value))
    return ("id", id(value))


def _module_key(module: Any, keep: list) -> tuple:
    """The non-state attributes of every module under ``module`` (numbers by value, arrays by
    identity): changing a constant parameter or a plain attribute invalidates the loop;
    states are arguments of the compiled loop and may change freely."""
    from .nn import Module, _walk

    parts = []
    for path, obj in _walk(module):
        if not isinstance(obj, Module):
            continue
        for name, value in vars(obj).items():
            if isinstance(value, (State, Module)):
                continue
            if isinstance(value, _SCALARS):
                parts.append((path, name, value))
            elif _state._is_array_leaf(value) or isinstance(value, jax.Array):
                keep.append(value)
                parts.append((path, name, id(value)))
    return tuple(parts)


def _code_key(code, fn_globals: dict, keep: list) -> tuple:
    """The globals a body (and the functions defined in it) reads, keyed by `_value_key`."""
    parts = []
    for name in code.co_names:
        if name in fn_globals and not isinstance(fn_globals[name], types.ModuleType):
            parts.append((name, _value_key(fn_globals[name], keep)))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_key(const, fn_globals, keep))
    return tuple(parts)


def _loop_key(fn: Any, keep: list) -> Any:
    """What a compiled loop body depends on besides its arguments and states: the function
    (its code, the values it closes over, the globals it reads), the bound object of a
    method. Two calls with equal keys (and equal shapes) share one compiled program."""
    if isinstance(fn, _ForLoopBody):
        return ("for", _loop_key(fn.fn, keep))
    if isinstance(fn, functools.partial):
        return ("partial", _loop_key(fn.func, keep), _value_key(fn.args, keep),
                tuple((k, _value_key(v, keep)) for k, v in fn.keywords.items()))
    if isinstance(fn, types.MethodType):
        return ("method", _loop_key(fn.__func__, keep), _value_key(fn.__self__, keep))
    if isinstance(fn, types.FunctionType):
        closure = tuple(_value_key(c.cell_contents, keep) for c in fn.__closure__ or ())
        defaults = _value_key(fn.__defaults__, keep) if fn.__defaults__ else None
        return ("fn", fn.__code__, closure, defaults, _code_key(fn.__code__, fn.__globals__, keep))
    keep.append(fn)
    return ("obj", id(fn), _value_key(fn, keep) if hasattr(fn, "__dict__") else None)


def checkpoint(fun: Callable, *args, **kwargs):
    """brainstate's ``checkpoint``/``remat``: returned unchanged (a memory hint only)."""
    return fun


remat = checkpoint


def cond(pred, true_fun: Callable, false_fun: Callable, *operands):
    """``lax.cond`` for functions that may touch states (both branches are traced)."""
    touched_t, _, _ = discover(true_fun, *operands)
    touched_f, _, _ = discover(false_fun, *operands)
    touched = list({id(s): s for s in touched_t + touched_f}.values())

    def branch(f):
        def run(state_vals, ops):
            with install(touched, state_vals):
                out = f(*ops)
                new_vals = [s.value for s in touched]
            return out, new_vals

        return run

    out, new_vals = jax.lax.cond(pred, branch(true_fun), branch(false_fun), values_of(touched), operands)
    write_values(touched, new_vals)
    return out


def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any):
    """``lax.while_loop`` for functions that may touch states."""
    touched, _, _ = discover(body_fun, init_val)

    def c(carry):
        val, state_vals = carry
        with install(touched, state_vals):
            return cond_fun(val)

    def b(carry):
        val, state_vals = carry
        with install(touched, state_vals):
            val = body_fun(val)
            new_vals = [s.value for s in touched]
        return val, new_vals

    val, state_vals = jax.lax.while_loop(c, b, (init_val, values_of(touched)))
    write_values(touched, state_vals)
    return val
