"""Units at the boundary.

Every user-facing quantity may be a [unxt](https://unxt.readthedocs.io) ``Quantity`` or a
plain number in the documented default unit. Quantities are checked and converted to the
canonical unit *once* (at model construction or at the ``simulate`` boundary); traced code
only ever sees plain floats.

Canonical units:

| dimension            | unit    |
|----------------------|---------|
| time                 | ms      |
| frequency / rate     | Hz      |
| voltage              | mV      |
| voltage rate         | mV/ms   |
| current              | nA      |
| length               | mm      |
| speed                | mm/ms   |
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import unxt

__all__ = [
    "CANONICAL_UNITS",
    "UnitError",
    "is_quantity",
    "to_canonical",
    "to_ms",
    "quantity",
]

#: Canonical unit of each dimension name used in parameter specs.
CANONICAL_UNITS: dict[str, str] = {
    "time": "ms",
    "frequency": "Hz",
    "voltage": "mV",
    "voltage_rate": "mV/ms",
    "current": "nA",
    "length": "mm",
    "speed": "mm/ms",
    "rate_per_current": "Hz/nA",
    "current_per_rate": "nA/Hz",
    "dimensionless": "",
}


class UnitError(ValueError):
    """A value was given with a unit of the wrong dimension."""


def is_quantity(x: Any) -> bool:
    return isinstance(x, unxt.AbstractQuantity)


def _dimension_label(unit: str) -> str:
    if unit == "":
        return "dimensionless"
    return str(unxt.unit(unit).physical_type)


def to_canonical(value: Any, name: str, unit: str) -> Any:
    """Convert ``value`` to the canonical ``unit`` and strip it.

    **Arguments:**

    - `value`: a unxt ``Quantity``, or anything array-like (taken to be in ``unit`` already).
    - `name`: the argument's name, used in error messages.
    - `unit`: the canonical unit string (``""`` for dimensionless).

    **Returns:** the magnitude in ``unit`` (a JAX array for Quantities, ``value`` unchanged
    otherwise).

    **Raises:** `UnitError` if a Quantity's dimension does not match ``unit``.
    """
    if not is_quantity(value):
        return value
    target = unxt.unit(unit) if unit else unxt.unit("")
    if unxt.dimension_of(value) != target.physical_type:
        got = unxt.unit_of(value)
        raise UnitError(
            f"{name!r} has unit {str(got)!r} ({unxt.dimension_of(value)}), but it must be a "
            f"{_dimension_label(unit)} quantity (canonical unit {unit or '1'!r}); "
            f"pass e.g. unxt.Quantity(value, {unit or ''!r}) or a plain number in {unit or 'no unit'}."
        )
    return jnp.asarray(unxt.ustrip(target, value))


def to_ms(value: Any, name: str) -> float:
    """Convert a time given as a Quantity or a plain number in ms to a Python float in ms.

    Converted in float64 on the host: these values set the step grid, and a float32
    conversion (100 us -> 0.10000000149 ms) would shift it.
    """
    out = to_canonical(value, name, "ms")  # checks the dimension
    if is_quantity(value) and not isinstance(value.value, jax.core.Tracer):
        factor = float(unxt.unit_of(value).to(unxt.unit("ms")))
        out = np.asarray(value.value, dtype=np.float64) * factor
    try:
        arr = np.asarray(out)
    except Exception as err:  # a tracer: times that set the step grid must be concrete
        raise TypeError(
            f"{name!r} must be a concrete number (it sets the time grid), not a traced value."
        ) from err
    if arr.shape != ():
        raise ValueError(f"{name!r} must be a scalar time, got shape {arr.shape}.")
    return float(arr)


def quantity(value: Any, unit: str):
    """Attach ``unit`` to a plain magnitude (``''``: a dimensionless Quantity)."""
    return unxt.Quantity(value, unit)
