"""``brainunit.math``: NumPy-like functions that keep units (the subset documented code uses).

Functions that only rearrange or reduce values (``expand_dims``, ``concatenate``, ``sum``,
``max``, ...) keep the unit of their (first) argument; ``exp``, ``log``, ``sin``, ...
require a dimensionless argument; anything else falls through to ``jax.numpy`` on plain
arrays.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from . import Quantity, Unit, UnitMismatchError, _is_dimensionless, maybe_decimal


def _split(x):
    if isinstance(x, Quantity):
        return x.value, x.unit
    return x, None


def _wrap(value, unit):
    return value if unit is None else maybe_decimal(Quantity(value, unit))


def _keeps_unit(fn):
    def wrapped(x, *args, **kwargs):
        value, unit = _split(x)
        return _wrap(fn(value, *args, **kwargs), unit)

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = f"``jax.numpy.{fn.__name__}`` keeping the unit of the argument."
    return wrapped


def _sequence_keeps_unit(fn):
    def wrapped(xs, *args, **kwargs):
        xs = list(xs)
        unit = next((x.unit for x in xs if isinstance(x, Quantity)), None)
        if unit is None:
            return fn(xs, *args, **kwargs)
        values = []
        for x in xs:
            if not isinstance(x, Quantity) or x.unit.physical_type != unit.physical_type:
                raise UnitMismatchError(f"{fn.__name__}: every array must have the unit {unit}, got {x}.")
            values.append(x.to(unit).value)
        return _wrap(fn(values, *args, **kwargs), unit)

    wrapped.__name__ = fn.__name__
    return wrapped


def _needs_dimensionless(fn):
    def wrapped(x, *args, **kwargs):
        if isinstance(x, Quantity):
            if not _is_dimensionless(x.unit):
                raise UnitMismatchError(f"{fn.__name__} requires a dimensionless argument, got unit {x.unit}.")
            x = maybe_decimal(x)
        return fn(x, *args, **kwargs)

    wrapped.__name__ = fn.__name__
    return wrapped


def _creation(fn):
    def wrapped(*args, unit: Any = None, **kwargs):
        out = fn(*args, **kwargs)
        if unit is None:
            return out
        return Quantity(out, unit.astropy if isinstance(unit, Unit) else unit)

    wrapped.__name__ = fn.__name__
    return wrapped


for _name in (
    "expand_dims", "squeeze", "reshape", "transpose", "ravel", "flip", "roll", "tile", "repeat",
    "sum", "mean", "max", "min", "amax", "amin", "abs", "cumsum", "sort", "diag", "diagonal",
    "take", "clip", "real", "imag", "moveaxis", "swapaxes", "atleast_1d", "atleast_2d", "triu", "tril",
    "median", "std", "ptp", "nanmax", "nanmin", "nanmean", "broadcast_to", "zeros_like", "ones_like",
):
    globals()[_name] = _keeps_unit(getattr(jnp, _name))

for _name in ("concatenate", "stack", "vstack", "hstack"):
    globals()[_name] = _sequence_keeps_unit(getattr(jnp, _name))

for _name in ("exp", "log", "log10", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sinh", "cosh", "arctan", "arcsin", "arccos"):
    globals()[_name] = _needs_dimensionless(getattr(jnp, _name))

for _name in ("zeros", "ones", "full", "arange", "linspace", "eye", "empty"):
    globals()[_name] = _creation(getattr(jnp, _name))


def sqrt(x):
    value, unit = _split(x)
    return _wrap(jnp.sqrt(value), None if unit is None else unit**0.5)


def square(x):
    value, unit = _split(x)
    return _wrap(jnp.square(value), None if unit is None else unit**2)


def where(condition, x=None, y=None):
    if x is None and y is None:
        return jnp.where(condition)
    if isinstance(x, Quantity) or isinstance(y, Quantity):
        unit = x.unit if isinstance(x, Quantity) else y.unit
        xv = x.to(unit).value if isinstance(x, Quantity) else x
        yv = y.to(unit).value if isinstance(y, Quantity) else y
        return _wrap(jnp.where(condition, xv, yv), unit)
    return jnp.where(condition, x, y)


def maximum(x, y):
    if isinstance(x, Quantity):
        return _wrap(jnp.maximum(x.value, y.to(x.unit).value if isinstance(y, Quantity) else y), x.unit)
    return jnp.maximum(x, y)


def minimum(x, y):
    if isinstance(x, Quantity):
        return _wrap(jnp.minimum(x.value, y.to(x.unit).value if isinstance(y, Quantity) else y), x.unit)
    return jnp.minimum(x, y)


def asarray(x, dtype=None, unit: Any = None):
    if isinstance(x, Quantity):
        return Quantity(jnp.asarray(x.value, dtype=dtype), x.unit)
    out = jnp.asarray(x, dtype=dtype)
    return out if unit is None else Quantity(out, unit.astropy if isinstance(unit, Unit) else unit)


array = asarray


def relu(x):
    value, unit = _split(x)
    return _wrap(jnp.maximum(value, 0.0), unit)


def __getattr__(name: str):
    try:
        return getattr(jnp, name)
    except AttributeError:
        raise AttributeError(f"module 'brainunit.math' has no attribute {name!r}") from None
