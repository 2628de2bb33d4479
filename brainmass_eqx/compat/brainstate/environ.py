"""``brainstate.environ``: global settings (``dt``, ``t``, ``i``, ...) and scoped overrides.

``set(dt=0.1 * u.ms)`` sets a global value; ``with context(dt=...):`` overrides it inside
the block; ``get('dt')`` / ``get_dt()`` read the innermost value.

Values belong to the thread that sets them, as brainstate's do (its environment state is
a ``threading.local``): a value given to `set` is seen by every ``asyncio`` task of that
thread, not by other threads, and a new thread starts with none (``get('dt')`` there raises
``KeyError``, as in brainstate, naming the thread that set it; a worker thread sets its own
or is given ``dt=`` explicitly). Shared by all threads, two threads running at once with
``set(dt=0.1 * u.ms)`` and ``set(dt=0.05 * u.ms)`` ran each other's step. The library's own
worker threads (an ensemble's or a nevergrad fit's slices) run in the calling thread's
environment. `reset` forgets every thread's values, as brainstate's replaces its state.

Scoped values (`context`) belong to the thread and ``asyncio`` task that opened the
``context``: a ``Simulator.run`` in one thread runs inside ``context(dt=...)`` and its
``context(i=..., t=...)`` per step, and a shared stack let another thread read that ``dt``,
and pop the other thread's layer on leaving. (brainstate keeps one stack per thread, so two
``asyncio`` tasks interleaving contexts in one thread read each other's layers there; here
each task has its own.)

``precision`` is brainstate's switch of JAX's float width: ``set(precision=64)`` (or
``set_precision(64)``, ``context(precision=64)``) turns on ``jax_enable_x64``, so that
models, runs and fits compute in float64, and 32 turns it off, as brainstate does. As in
brainstate, set it before anything is computed (arrays made earlier keep their dtype).
The facade computes in float32 or float64 only: 8, 16 and ``'bf16'`` are refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
from typing import Any

__all__ = [
    "set", "get", "get_dt", "context", "all", "pop", "reset", "dftype", "ditype",
    "set_precision", "get_precision", "set_platform", "set_host_device_count", "SUPPORTED_PRECISIONS",
]

# The values given to `set`, one dict per thread: a context variable that new threads do
# not inherit, holding a dict that the thread's asyncio tasks share (a task's context is a
# copy of its thread's, holding the same dict). ``(generation, dict)``: `reset` starts a new
# generation, which every thread's older dict belongs to no more.
_SETTINGS: contextvars.ContextVar[tuple[int, dict[str, Any]]] = contextvars.ContextVar("bmx_compat_environ_settings")
_GENERATION = [0]
# Which thread last set each key (its name), for the KeyError of a thread that did not.
_SET_IN: dict[str, str] = {}
# The open contexts' layers, innermost last: a context variable holding a tuple (never
# mutated, so a copied context, e.g. an asyncio task's, cannot change its parent's stack).
_STACK: contextvars.ContextVar[tuple[dict[str, Any], ...]] = contextvars.ContextVar("bmx_compat_environ", default=())
_MISSING = object()


# brainstate's precisions; the facade's models compute in float32 or float64 (`_x64_for`).
SUPPORTED_PRECISIONS = (8, 16, 32, 64, "bf16")
_PRECISION = "precision"
_PLATFORMS = ("cpu", "gpu", "tpu")
# jax_enable_x64 as it was before the facade first set a precision (restored by `reset`).
_X64_BEFORE: list[bool] = []


def _x64_for(precision: Any) -> bool:
    """Whether ``precision`` means float64 (True) or float32 (False); refuses the rest.

    Stored without effect, ``set(precision=64)`` had left runs in float32 silently."""
    if precision in (64, "64"):
        return True
    if precision in (32, "32"):
        return False
    if precision in SUPPORTED_PRECISIONS or precision in ("8", "16"):
        raise ValueError(
            f"precision={precision!r} is not supported by brainmass_eqx.compat: its models compute in "
            "float32 (precision=32, the default) or float64 (precision=64); float16, bfloat16 and "
            "float8 states lose the small per-step increments of a neural-mass run."
        )
    raise ValueError(f"precision must be one of {SUPPORTED_PRECISIONS}, got {precision!r}.")


def _set_x64(on: bool) -> None:
    import jax

    jax.config.update("jax_enable_x64", on)


def _x64() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


def _check_dt(kwargs: dict) -> None:
    """brainstate's rule: ``dt`` is one number (an array of them failed only at the run,
    with NumPy's "only 0-dimensional arrays can be converted to Python scalars")."""
    if "dt" in kwargs:
        dt = kwargs["dt"]
        shape = getattr(dt, "shape", None)
        if shape is None:
            import numpy as np

            shape = np.shape(dt)
        if tuple(shape) != ():
            raise TypeError(f"'dt' must be a scalar time (e.g. 0.1 * u.ms), got shape {tuple(shape)}.")


def _settings(create: bool = False) -> dict[str, Any]:
    """This thread's values given to `set` (a new dict, registered only if ``create``)."""
    held = _SETTINGS.get(None)
    if held is not None and held[0] == _GENERATION[0]:
        return held[1]
    values: dict[str, Any] = {}
    if create:
        _SETTINGS.set((_GENERATION[0], values))
    return values


def _thread_name() -> str:
    return threading.current_thread().name


def _no_custom_env(env: Any, name: str) -> None:
    if env is not None:
        raise TypeError(
            f"{name}(env=...): the facade keeps brainstate's default environment only (one per thread); "
            f"drop env=, or keep a separate dict of values yourself."
        )


def set_platform(platform: str) -> None:
    """JAX's default platform (``'cpu'``, ``'gpu'`` or ``'tpu'``); as in brainstate, it
    takes effect only before JAX has started its backends."""
    import jax

    if platform not in _PLATFORMS:
        raise ValueError(f"Platform must be one of {_PLATFORMS}, got {platform!r}")
    jax.config.update("jax_platform_name", platform)


def set_host_device_count(n: int) -> None:
    """``n`` CPU devices (XLA's ``--xla_force_host_platform_device_count``); as in
    brainstate, it takes effect only before JAX has started its backends."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"Host device count must be a positive integer, got {n!r}")
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")).split()
    os.environ["XLA_FLAGS"] = " ".join([f"--xla_force_host_platform_device_count={n}", *flags])


def set(  # noqa: A001 (brainstate's name)
    platform: str | None = None,
    host_device_count: int | None = None,
    precision: Any = None,
    dt: Any = None,
    *,
    env: Any = None,
    **kwargs: Any,
) -> None:
    """Set this thread's environment values, e.g. ``set(dt=0.1 * u.ms)`` (other threads do
    not see them: see the module docs); ``precision=64`` or ``32`` also switches JAX's
    ``jax_enable_x64``, for the whole process (see the module docs); ``platform`` and
    ``host_device_count`` configure JAX as brainstate's `set_platform` and
    `set_host_device_count` do. brainstate's ``env=`` (a custom environment) is refused."""
    _no_custom_env(env, "set")
    if platform is not None:
        set_platform(platform)
    if host_device_count is not None:
        set_host_device_count(host_device_count)
    given = {"platform": platform, "host_device_count": host_device_count, _PRECISION: precision, "dt": dt}
    kwargs = {**{k: v for k, v in given.items() if v is not None}, **kwargs}
    _check_dt(kwargs)
    if _PRECISION in kwargs:
        x64 = _x64_for(kwargs[_PRECISION])
        if not _X64_BEFORE:
            _X64_BEFORE.append(_x64())
        _set_x64(x64)
    _settings(create=True).update(kwargs)
    name = _thread_name()
    _SET_IN.update(dict.fromkeys(kwargs, name))


# The importing thread's dict now, so that asyncio tasks it starts before its first `set`
# share it too.
_settings(create=True)


def not_set_here(key: str) -> str:
    """Why ``key`` is missing in this thread where another thread set it (else ``''``):
    the values of `set` belong to the thread that sets them."""
    elsewhere = _SET_IN.get(key)
    here = _thread_name()
    if elsewhere is None or elsewhere == here:
        return ""
    return (
        f" It was set in thread {elsewhere!r}, not in this one ({here!r}): brainstate.environ.set values "
        f"belong to the thread that sets them, as in brainstate; call environ.set({key}=...) in this thread "
        "or pass the value explicitly."
    )


def set_precision(precision: Any) -> None:
    """``set(precision=precision)``: 64 for float64, 32 for float32."""
    set(precision=precision)


def get_precision() -> int | str:
    """The innermost ``precision`` set here, else JAX's own: 64 with ``jax_enable_x64``, else 32."""
    return get(_PRECISION, 64 if _x64() else 32)


def get(key: str, default: Any = _MISSING, desc: str | None = None) -> Any:
    """The innermost value of ``key``; ``default`` if given, else ``KeyError``."""
    for layer in reversed(_STACK.get()):
        if key in layer:
            return layer[key]
    settings = _settings()
    if key in settings:
        return settings[key]
    if default is not _MISSING:
        return default
    hint = f" {desc}" if desc else ""
    raise KeyError(f"Key '{key}' not found in environment.{hint}{not_set_here(key)}")


def get_dt() -> Any:
    """The integration step ``dt`` (``KeyError`` if it was never set)."""
    return get("dt")


def all() -> dict[str, Any]:  # noqa: A001 (brainstate's name)
    out = dict(_settings())
    for layer in _STACK.get():
        out.update(layer)
    return out


def pop(key: str, default: Any = _MISSING) -> Any:
    """Remove ``key`` from this thread's `set` values and return it (``default`` if given
    and absent, else ``KeyError``)."""
    settings = _settings()
    if default is _MISSING:
        if key not in settings:
            raise KeyError(f"Key '{key}' not found in environment.{not_set_here(key)}")
        return settings.pop(key)
    return settings.pop(key, default)


def reset() -> None:
    """Forget every thread's `set` values, as brainstate's reset (which replaces its
    thread-local state) does, and this thread's open contexts (used by tests); a precision
    set here is undone too."""
    _GENERATION[0] += 1
    _SET_IN.clear()
    _settings(create=True)
    _STACK.set(())
    if _X64_BEFORE:
        _set_x64(_X64_BEFORE.pop())


def dftype():
    import jax.numpy as jnp

    return jnp.result_type(float)


def ditype():
    import jax.numpy as jnp

    return jnp.result_type(int)


@contextlib.contextmanager
def context(*, env: Any = None, **kwargs: Any):
    """Override environment values inside the ``with`` block (``precision`` switches
    ``jax_enable_x64`` for the block, as `set` does; ``platform`` and
    ``host_device_count`` are global, refused here as in brainstate)."""
    _no_custom_env(env, "context")
    for name in ("platform", "host_device_count"):
        if name in kwargs:
            raise ValueError(f"Cannot set '{name}' in context. Use set_{name}() or set() for global configuration.")
    _check_dt(kwargs)
    x64_outside = None
    if _PRECISION in kwargs:
        x64 = _x64_for(kwargs[_PRECISION])
        x64_outside = _x64()
        _set_x64(x64)
    token = _STACK.set((*_STACK.get(), dict(kwargs)))
    try:
        yield all()
    finally:
        _STACK.reset(token)
        if x64_outside is not None:
            _set_x64(x64_outside)
