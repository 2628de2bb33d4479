"""Time handling shared by the observation models, and `TemporalAverage`.

Conventions (the project's canonical units): a plain number given for a time is read in
milliseconds; a `unxt.Quantity` of dimension time is converted. Window lengths and sample
counts fix array shapes, so the times that define them (``dt``, ``period``, ``tr``,
``duration``) must be concrete numbers, not traced values.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import checked_as_run_starts, is_traced, sampling_step, series_of, whole_steps
from .._units import (
    AnyQuantity,
    TracedTimeError,
    UnitError,
    as_float_array,
    check_real,
    is_quantity as _is_quantity,
    quantity,
    to_ms,
    unxt_module,
)
from ..datasets._types import Signal

__all__ = ["TemporalAverage"]


def _series_and_step(signal, dt, name: str = "signal"):
    """``(series, dt)`` for the functions that take a sampled signal and its step (see
    `_checks.sampling_step`)."""
    return series_of(signal, name), sampling_step(signal, dt, name)


def _magnitude(x) -> Array:
    """The numbers of `x` in its own unit (a plain array is returned as an array)."""
    if _is_quantity(x):
        return jnp.asarray(x.value)
    return jnp.asarray(x)


def _convert(value, unit, name: str, plain_unit: str):
    """Strip `value` to the numbers it has in `unit` (a unit string or object).

    A Quantity is converted (a wrong dimension raises, naming `name`); a plain number or
    array is taken to be in `unit` already, which the caller documents as `plain_unit`.
    """
    if _is_quantity(value):
        try:
            return unxt_module().ustrip(unit, value)
        except Exception as err:
            # A UnitError, as everywhere else a dimension is wrong (it is a ValueError too).
            raise UnitError(
                f"`{name}` has unit {value.unit}, which cannot be converted to {unit}; "
                f"pass a quantity of that dimension or a plain number in {plain_unit}."
            ) from err
    return value


def _check_finite(name: str, value) -> None:
    """Raise if a concrete `value` holds NaN or infinity (traced values are not checked)."""
    if value is None or is_traced(value):
        return
    if not bool(np.all(np.isfinite(np.asarray(value)))):
        raise ValueError(f"`{name}` must be finite, got {np.asarray(value)!r}.")


def _param(value, name: str, unit=None, plain_unit: str = "", *, positive=False) -> Array:
    """A model parameter as a float array (a trainable leaf), finite (and > 0 where
    `positive`): checked eagerly where its value is known, when a run reads it where it is
    traced (built inside ``jax.jit`` / ``vmap`` / ``grad`` from a traced value).

    `unit` is the unit a Quantity is converted to (None: the parameter is dimensionless).
    """
    # Converted under ensure_compile_time_eval (`as_float_array`): under jax.jit even
    # jnp.asarray(-1.0) is traced, and BalloonWindkessel(tau=-1.0) built there was not refused.
    with jax.ensure_compile_time_eval():
        if unit is not None:
            value = _convert(value, unit, name, plain_unit)
        elif _is_quantity(value):
            value = _convert(value, "", name, "dimensionless numbers")
    check_real(value, name)
    arr = as_float_array(value)
    if is_traced(arr):
        bad = ~jnp.isfinite(arr) | ((arr <= 0) if positive else False)
        return checked_as_run_starts(arr, bad, f"`{name}` must be finite" + (" and > 0" if positive else ""))
    _check_finite(name, arr)
    if positive and not bool(np.all(np.asarray(arr) > 0)):
        raise ValueError(f"`{name}` must be > 0, got {np.asarray(arr)!r}.")
    return arr


def _time_ms(value, name: str) -> float:
    """A concrete, finite, strictly positive time as a Python float in ms.

    Times that set array shapes (steps per window, kernel lengths) pass through here.
    """
    try:
        # On the host, so that a Quantity closed over by a traced function stays concrete.
        out = to_ms(value, name, role="an array shape")
    except TracedTimeError as err:
        raise ValueError(str(err)) from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"`{name}` must be a finite time > 0 (ms or a Quantity), got {out} ms.")
    return out


def _steps_per(period_ms: float, dt_ms: float, period_name: str, dt_name: str) -> int:
    """``round(period / dt)``, at least 1; rounding that changes the period is said (TVB and
    brainmass round silently)."""
    return whole_steps(
        period_ms, dt_ms, f"`{period_name}`", "nearest", dt_name=f"`{dt_name}`", action="as TVB and brainmass do, using", at_least_one=True
    )


def _block_mean(x: Array, w: int, name: str = "signal") -> Array:
    """Means over non-overlapping blocks of `w` samples along axis 0; a short tail is dropped."""
    if x.ndim < 1:
        raise ValueError(f"`{name}` must have a time axis (axis 0), got a scalar.")
    n = x.shape[0] // w
    if n < 1:
        raise ValueError(
            f"`{name}` has {x.shape[0]} time samples, fewer than one averaging window of "
            f"{w} samples; pass a longer signal or a shorter period."
        )
    return jnp.mean(x[: n * w].reshape((n, w) + x.shape[1:]), axis=1)


class TemporalAverage(eqx.Module):
    r"""Downsample a trajectory by averaging over non-overlapping windows.

    With ``w = round(period / dt)`` samples per window,

    .. math:: y_k = \frac{1}{w} \sum_{j=0}^{w-1} x[k w + j], \qquad k = 0, \dots, \lfloor T/w \rfloor - 1,

    along axis 0; samples that do not fill a last window are dropped (brainmass's rule).

    **Arguments:**

    - `period`: window length; a plain number is read in ms, or a time Quantity.
      Default 4 ms.

    **Call** ``(signal, dt)``: `signal` has time on axis 0, shape ``(T, *rest)`` (array or
    Quantity; a Quantity keeps its unit); `dt` is its sampling step (ms or Quantity).
    Returns shape ``(T // w, *rest)``.
    """

    period: float = eqx.field(static=True)

    def __init__(self, period=4.0):
        self.period = _time_ms(period, "period")

    def __call__(
        self, signal: Float[ArrayLike, "T ..."] | AnyQuantity | Signal, dt=None
    ) -> Float[Array, "T2 ..."] | AnyQuantity:
        signal, dt = _series_and_step(signal, dt)
        w = _steps_per(self.period, _time_ms(dt, "dt"), "period", "dt")
        out = _block_mean(_magnitude(signal), w)
        if _is_quantity(signal):
            return quantity(out, signal.unit)
        return out
