"""``brainunit.fft``: ``jax.numpy.fft`` with brainunit's units (also ``brainunit.math.fft``).

brainunit treats the transformed axes as time: a transform multiplies the unit by a second
per axis (``rfft`` of a signal in mV is in mV·s), an inverse transform divides by it, the
shifts keep the unit, and ``fftfreq``/``rfftfreq`` with a time step return frequencies in
the matching unit (``rfftfreq(n, 0.1 * u.ms)`` is in kHz). Every other name is
``jax.numpy.fft``'s for plain arrays (a Quantity is refused with a message).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import unxt

from . import UnitMismatchError, _brief, _unit_name
from .math import _plain_only, _unit_rule

_SECOND = unxt.unit("s")
#: Frequency units named as brainunit names them (``1 / ms`` is ``kHz``).
_FREQUENCIES = ("Hz", "kHz", "MHz", "GHz", "mHz")


def _n_axes(call) -> int:
    for name in ("axes", "s"):
        value = call.get(name)
        if value is not None:
            return len(value)
    return int(np.ndim(call.get(call.keys(0)[0])))


def _times_seconds(power: int | None):
    def rule(units, call):
        if units[0] is None:
            return None
        return units[0] * _SECOND ** (power if power is not None else _n_axes(call))

    rule.__doc__ = "the unit times a second per transformed axis"
    return rule


def _per_seconds(power: int | None):
    def rule(units, call):
        if units[0] is None:
            return None
        return units[0] / _SECOND ** (power if power is not None else _n_axes(call))

    rule.__doc__ = "the unit over a second per transformed axis"
    return rule


def _frequency(units, call):
    """the reciprocal of the sample spacing ``d``, a frequency"""
    unit = units[0]
    if unit is None:
        return None
    if unit.physical_type != _SECOND.physical_type:
        raise UnitMismatchError(
            f"brainunit.math.{call.fname}: the sample spacing d must be a time, got {_brief(call.get('d'))} "
            f"({_unit_name(unit)})."
        )
    inverse = unit**-1
    for name in _FREQUENCIES:
        if np.isclose(inverse.to(unxt.unit(name)), 1.0):
            return unxt.unit(name)
    return inverse


def _keep(units, call):
    """the input's unit"""
    return units[0]


_RULES = {
    "fft": _times_seconds(1), "rfft": _times_seconds(1), "ifft": _per_seconds(1), "irfft": _per_seconds(1),
    "fft2": _times_seconds(2), "rfft2": _times_seconds(2), "ifft2": _per_seconds(2), "irfft2": _per_seconds(2),
    "fftn": _times_seconds(None), "rfftn": _times_seconds(None), "ifftn": _per_seconds(None),
    "irfftn": _per_seconds(None), "fftshift": _keep, "ifftshift": _keep,
}  # fmt: skip

for _name, _rule in _RULES.items():
    globals()[_name] = _unit_rule(f"fft.{_name}", getattr(jnp.fft, _name), ((0,),), _rule)
fftfreq = _unit_rule("fft.fftfreq", jnp.fft.fftfreq, (("d",),), _frequency)
rfftfreq = _unit_rule("fft.rfftfreq", jnp.fft.rfftfreq, (("d",),), _frequency)

__all__ = [*_RULES, "fftfreq", "rfftfreq"]


def __getattr__(name: str) -> Any:
    try:
        obj = getattr(jnp.fft, name)
    except AttributeError:
        raise AttributeError(f"module 'brainunit.fft' has no attribute {name!r}") from None
    return _plain_only(f"fft.{name}", obj) if callable(obj) and not isinstance(obj, type) else obj
