"""``brainstate.environ``: global settings (``dt``, ``t``, ``i``, ...) and scoped overrides.

``set(dt=0.1 * u.ms)`` sets a global value; ``with context(dt=...):`` overrides it inside
the block; ``get('dt')`` / ``get_dt()`` read the innermost value.

Scoped values belong to the thread (and ``asyncio`` task) that opened the ``context``,
as brainstate's do: a ``Simulator.run`` in one thread runs inside ``context(dt=...)`` and
its ``context(i=..., t=...)`` per step, and a shared stack let another thread read that
``dt``, and pop the other thread's layer on leaving. Global values (`set`) are shared by
all threads (brainstate keeps those per thread too, so that a worker thread there does not
see the main thread's ``set(dt=...)`` and fails with ``KeyError``).

``precision`` is brainstate's switch of JAX's float width: ``set(precision=64)`` (or
``set_precision(64)``, ``context(precision=64)``) turns on ``jax_enable_x64``, so that
models, runs and fits compute in float64, and 32 turns it off, as brainstate does. As in
brainstate, set it before anything is computed (arrays made earlier keep their dtype).
The facade computes in float32 or float64 only: 8, 16 and ``'bf16'`` are refused.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

__all__ = [
    "set", "get", "get_dt", "context", "all", "pop", "reset", "dftype", "ditype",
    "set_precision", "get_precision", "SUPPORTED_PRECISIONS",
]

_GLOBAL: dict[str, Any] = {}
# The open contexts' layers, innermost last: a context variable holding a tuple (never
# mutated, so a copied context, e.g. an asyncio task's, cannot change its parent's stack).
_STACK: contextvars.ContextVar[tuple[dict[str, Any], ...]] = contextvars.ContextVar("bmx_compat_environ", default=())
_MISSING = object()


# brainstate's precisions; the facade's models compute in float32 or float64 (`_x64_for`).
SUPPORTED_PRECISIONS = (8, 16, 32, 64, "bf16")
_PRECISION = "precision"
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


def set(**kwargs: Any) -> None:  # noqa: A001 (brainstate's name)
    """Set global environment values, e.g. ``set(dt=0.1 * u.ms)``; ``precision=64`` or
    ``32`` also switches JAX's ``jax_enable_x64`` (see the module docs)."""
    _check_dt(kwargs)
    if _PRECISION in kwargs:
        x64 = _x64_for(kwargs[_PRECISION])
        if not _X64_BEFORE:
            _X64_BEFORE.append(_x64())
        _set_x64(x64)
    _GLOBAL.update(kwargs)


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
    if key in _GLOBAL:
        return _GLOBAL[key]
    if default is not _MISSING:
        return default
    hint = f" {desc}" if desc else ""
    raise KeyError(f"Key '{key}' not found in environment.{hint}")


def get_dt() -> Any:
    """The integration step ``dt`` (``KeyError`` if it was never set)."""
    return get("dt")


def all() -> dict[str, Any]:  # noqa: A001 (brainstate's name)
    out = dict(_GLOBAL)
    for layer in _STACK.get():
        out.update(layer)
    return out


def pop(key: str, default: Any = _MISSING) -> Any:
    if default is _MISSING:
        return _GLOBAL.pop(key)
    return _GLOBAL.pop(key, default)


def reset() -> None:
    """Forget every global value (used by tests); a precision set here is undone too."""
    _GLOBAL.clear()
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
def context(**kwargs: Any):
    """Override environment values inside the ``with`` block (``precision`` switches
    ``jax_enable_x64`` for the block, as `set` does)."""
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
