"""``brainstate.environ``: global settings (``dt``, ``t``, ``i``, ...) and scoped overrides.

``set(dt=0.1 * u.ms)`` sets a global value; ``with context(dt=...):`` overrides it inside
the block; ``get('dt')`` / ``get_dt()`` read the innermost value.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["set", "get", "get_dt", "context", "all", "pop", "reset", "dftype", "ditype"]

_GLOBAL: dict[str, Any] = {}
_STACK: list[dict[str, Any]] = []
_MISSING = object()


def set(**kwargs: Any) -> None:  # noqa: A001 (brainstate's name)
    """Set global environment values, e.g. ``set(dt=0.1 * u.ms)``."""
    _GLOBAL.update(kwargs)


def get(key: str, default: Any = _MISSING, desc: str | None = None) -> Any:
    """The innermost value of ``key``; ``default`` if given, else ``KeyError``."""
    for layer in reversed(_STACK):
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
    for layer in _STACK:
        out.update(layer)
    return out


def pop(key: str, default: Any = _MISSING) -> Any:
    if default is _MISSING:
        return _GLOBAL.pop(key)
    return _GLOBAL.pop(key, default)


def reset() -> None:
    """Forget every global value (used by tests)."""
    _GLOBAL.clear()
    _STACK.clear()


def dftype():
    import jax.numpy as jnp

    return jnp.result_type(float)


def ditype():
    import jax.numpy as jnp

    return jnp.result_type(int)


@contextlib.contextmanager
def context(**kwargs: Any):
    """Override environment values inside the ``with`` block."""
    _STACK.append(dict(kwargs))
    try:
        yield all()
    finally:
        _STACK.pop()
