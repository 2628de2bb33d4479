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

unxt is imported only when a unit is actually handled: ``import brainmass_eqx`` stays free
of unxt, astropy and matplotlib (unxt's plotting hook), which would add about 60 MB and
a second to every process. Unit *names* are plain strings; a value can only be a unxt
Quantity once the user (or a helper here) has imported unxt, so `is_quantity` asks
``sys.modules`` before anything else.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "CANONICAL_UNITS",
    "UnitError",
    "as_float_array",
    "check_real",
    "is_quantity",
    "magnitude",
    "per_ms",
    "to_canonical",
    "to_ms",
    "quantity",
    "unit_factor",
    "unxt_module",
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
    # Rates of a dynamical system written in ms (a relaxation rate, a time-scale factor).
    "rate": "1/ms",
    "angular_frequency": "rad/ms",
    "angle": "rad",
    "inverse_voltage": "1/mV",
    # TVB's Wong-Wang transfer curvature is in seconds; keeping its unit keeps TVB's plain
    # numbers (d_e = 0.16) meaning what they mean there.
    "time_s": "s",
    "dimensionless": "",
}


class UnitError(ValueError):
    """A value was given with a unit of the wrong dimension."""


_NOT_A_NUMBER = "must be a number, an array, a unxt Quantity or a Param"


def check_real(value: Any, name: str, *, allow_bool: bool = False) -> None:
    """Refuse a value that is not real numbers, where a float is needed.

    ``jnp.asarray(x, dtype=float)`` reads all of these without an error, so each became a
    silently different number: a complex value loses its imaginary part (numpy only warns,
    a Python ``1j`` raised float()'s message, which names no argument), a string is parsed
    (``'0.2'``), and a bool becomes 1.0 or 0.0 (most likely an argument in the wrong slot).

    **Arguments:**

    - `value`: what the user passed (a number, a sequence, an array or a tracer; a
      unxt Quantity is checked by its numbers).
    - `name`: the argument's name, used in the message.
    - `allow_bool`: accept booleans (a binary connectivity matrix is meaningful).

    **Raises:** `TypeError` naming ``name``, the value and the fix.
    """
    # A label such as y0['x'] reads better without repr's quotes around it.
    label = name if any(c in name for c in "[( ") else repr(name)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{label} {_NOT_A_NUMBER}; got the string {value!r}: give a number, not text.")
    value = magnitude(value)
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(value).dtype
        except Exception:  # noqa: BLE001 (the caller's conversion names what it is)
            return
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{label} holds complex numbers (dtype {dtype}); it must be real: pass the part you "
            f"mean explicitly (x.real or abs(x)), since converting would silently drop the imaginary part."
        )
    if dtype == np.bool_ and not allow_bool:
        raise TypeError(
            f"{label} is a bool ({value!r}), but it must be a number; pass 1.0 or 0.0 if that is what you mean."
        )
    if dtype.kind in "USO":
        raise TypeError(f"{label} {_NOT_A_NUMBER}; got {type(value).__name__} {value!r}.")


def as_float_array(value: Any, name: str | None = None) -> Any:
    """``jnp.asarray(value)`` in the default float dtype, concrete wherever ``value`` is.
    With ``name``, a value that is not real numbers is refused first (`check_real`).

    Under ``jax.jit`` jax stages even ``jnp.asarray(0.5)``, so a model or `Param` built
    inside a jitted function would hold its plain-number values as tracers: the checks
    made at construction on concrete values (domain, finiteness, bounds, a delay model's
    history length) would be skipped or fail. Converting under
    ``jax.ensure_compile_time_eval`` keeps constants concrete; a traced ``value`` stays
    traced.
    """
    if name is not None:
        check_real(value, name)
    with jax.ensure_compile_time_eval():
        return jnp.asarray(value, dtype=jnp.result_type(float))


def unxt_module():
    """The ``unxt`` module, imported on first use (for code that handles a Quantity)."""
    import unxt

    return unxt


def is_quantity(x: Any) -> bool:
    """Whether ``x`` is a unxt Quantity; never imports unxt (without it, nothing can be one)."""
    unxt = sys.modules.get("unxt")
    cls = getattr(unxt, "AbstractQuantity", None)  # None while unxt is still importing
    return cls is not None and isinstance(x, cls)


class _QuantityMeta(type):
    def __instancecheck__(cls, x: Any) -> bool:
        return is_quantity(x)


class AnyQuantity(metaclass=_QuantityMeta):
    """A unxt Quantity of any unit, for annotations (``x: Float[ArrayLike, "T N"] |
    AnyQuantity``): ``isinstance(x, AnyQuantity)`` is `is_quantity`, so an annotation can
    name Quantities without importing unxt (~1 s), and a runtime type checker accepts them.
    Never instantiated."""

    def __new__(cls, *args: Any, **kwargs: Any):
        raise TypeError("AnyQuantity is an annotation; build a Quantity with unxt.Quantity(value, unit).")


def magnitude(x: Any) -> Any:
    """The numbers of a Quantity in its own unit; anything else is returned unchanged."""
    return x.value if is_quantity(x) else x


def per_ms(unit: str) -> str:
    """The unit string of ``unit`` per ms (a rate of change), e.g. ``'mV'`` -> ``'mV/ms'``."""
    if unit == "":
        return "1/ms"
    num, sep, den = unit.partition("/")
    if not sep:
        return f"{unit}/ms"
    return f"{num}/ms2" if den.strip() == "ms" else f"{num}/({den} ms)"


def _dimension_label(unit: str) -> str:
    if unit == "":
        return "dimensionless"
    kind = str(unxt_module().unit(unit).physical_type)
    # astropy names some dimensions by a list of synonyms ('angular frequency/angular
    # speed/...') and the rest 'unknown'; the first synonym, or the unit itself, reads better.
    return f"{unit}-dimensioned" if kind == "unknown" else kind.split("/")[0]


def _with_article(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def to_canonical(value: Any, name: str, unit: str, *, plain: str | None = None) -> Any:
    """Convert ``value`` to the canonical ``unit`` and strip it.

    **Arguments:**

    - `value`: a unxt ``Quantity``, or anything array-like (taken to be in ``unit`` already).
    - `name`: the argument's name, used in error messages.
    - `unit`: the canonical unit string (``""`` for dimensionless).
    - `plain`: what the error message offers besides a Quantity (default: "a plain
      number in ``unit``"; a step count such as ``transient`` reads an int as steps).

    **Returns:** the magnitude in ``unit`` (a JAX array for Quantities, ``value`` unchanged
    otherwise).

    **Raises:** `UnitError` if a Quantity's dimension does not match ``unit``.
    """
    if not is_quantity(value):
        return value
    unxt = unxt_module()
    target = unxt.unit(unit) if unit else unxt.unit("")
    if unxt.dimension_of(value) != target.physical_type:
        got = unxt.unit_of(value)
        hint = ""
        if str(target.physical_type).startswith("angular frequency") and str(unxt.dimension_of(value)) == "frequency":
            # Hz -> rad/s is a factor 2 pi that a unit system cannot know (cycles are not
            # radians), so say it rather than convert with the wrong factor.
            hint = " For a frequency f in Hz, pass the angular frequency 2 pi f: unxt.Quantity(2 * math.pi * f, 'rad/s')."
        if plain is None:
            plain = f"a plain number in {unit or 'no unit'}"
        raise UnitError(
            f"{name!r} has unit {str(got)!r} ({_dimension_label(str(got))}), but it must be "
            f"{_with_article(_dimension_label(unit))} quantity (canonical unit {unit or '1'!r}); "
            f"pass e.g. unxt.Quantity(value, {unit or ''!r}) or {plain}.{hint}"
        )
    # Concrete stays concrete under jit (see `as_float_array`); the dtype is the Quantity's.
    with jax.ensure_compile_time_eval():
        return jnp.asarray(unxt.ustrip(target, value))


def traced_time_message(name: str, value: Any, role: str, plain: str | None = None) -> str:
    """The message for a time that must be concrete (it sets ``role``: the time grid, an
    array's shape) but is a tracer. Under ``jax.jit`` jax stages even ``jnp.asarray(0.5)``,
    so a unxt Quantity built inside the traced function is traced too: the message names
    that cause, the one a user does not expect. ``plain`` is what the fix offers besides a
    Quantity (default "a plain number in ms"; a step count offers an int, since it refuses
    a plain float)."""
    if plain is None:
        plain, static = "a plain number in ms", "plain-number times"
    else:
        plain, static = f"{plain} (not a float, which is refused)", f"an int {name}"
    if is_quantity(value):
        # A Quantity's number is a JAX array, so eqx.filter_jit traces it too (it keeps only
        # Python numbers static): the advice to use filter_jit did not help there.
        cause = (
            "a unxt Quantity built inside jax.jit / jax.vmap / bx.sweep holds a traced value, and so does "
            "one passed as an argument of jax.jit or eqx.filter_jit (its number is a JAX array, which "
            "both trace)"
        )
        fix = (
            f"Build it outside the traced function and close over it rather than pass it in, or pass "
            f"{plain}; to jit simulate itself, use eqx.filter_jit(bx.simulate) with {static}, which it "
            "keeps static."
        )
    else:
        cause = "it was passed as an argument of jax.jit / jax.vmap, or computed inside one"
        fix = (
            f"Build it outside the traced function (or close over it), or pass {plain}; "
            "to jit simulate itself, use eqx.filter_jit(bx.simulate), which keeps Python numbers static."
        )
    return f"{name!r} must be a concrete number (it sets {role}), but it is traced: {cause}. {fix}"


class TracedTimeError(TypeError):
    """A time that must be concrete (it sets a grid or a shape) is a tracer."""


def to_ms(value: Any, name: str, role: str = "the time grid", *, plain: str | None = None) -> float:
    """Convert a time given as a Quantity or a plain number in ms to a Python float in ms.

    Converted in float64 on the host: these values set the step grid, and a float32
    conversion (100 us -> 0.10000000149 ms) would shift it. A Quantity holds its number in
    JAX's default dtype, float32 unless x64 is enabled, before it gets here:
    ``Quantity(0.1, 'ms')`` holds 0.10000000149 and ``Quantity(1e-4, 's')`` 9.99999975e-5.
    Such a scalar is read as the shortest decimal that rounds to it (0.1, 1e-4), the number
    that was typed, so that a time in s, in ms or as a plain number gives the same grid
    (the float32 value ran a 2 s Hopf run 1e-5 away from the plain-number run).

    **Raises:** `TracedTimeError` (a `TypeError`) if ``value`` is traced; its message says
    that the time sets ``role``. `UnitError` for another dimension (``plain`` as for
    `to_canonical`).
    """
    out = to_canonical(value, name, "ms", plain=plain)  # checks the dimension
    if is_quantity(value) and not isinstance(value.value, jax.core.Tracer):
        unxt = unxt_module()
        factor = float(unxt.unit_of(value).to(unxt.unit("ms")))
        number = np.asarray(value.value)
        if number.shape == () and number.dtype in (np.float16, np.float32):
            # str gives the shortest decimal that rounds back to this float32 (see above).
            number = float(str(number))
        out = np.asarray(number, dtype=np.float64) * factor
    try:
        arr = np.asarray(out)
    except Exception as err:  # a tracer: times that set the step grid must be concrete
        raise TracedTimeError(traced_time_message(name, value, role, plain)) from err
    if arr.shape != ():
        raise ValueError(f"{name!r} must be a scalar time, got shape {arr.shape}.")
    # A bool (True: 1 ms) or a complex number is never a time; float() would take the one
    # silently and fail on the other with a message that names no argument.
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(
            f"{name!r} must be a time: a number in ms or a unxt time Quantity, got {type(value).__name__} {value!r}."
            + _spelled_quantity(value)
        )
    return float(arr)


def _spelled_quantity(value: Any) -> str:
    """For a time typed as a string (``'2s'``, ``'0.1 ms'``): the Quantity that says it."""
    match = re.fullmatch(r"\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµ]+)\s*", value) if isinstance(value, str) else None
    if match is None:
        return ""
    return f" Write unxt.Quantity({match.group(1)}, {match.group(2)!r})."


def quantity(value: Any, unit: Any):
    """Attach ``unit`` (a unit string or object) to a plain magnitude (``''``: a
    dimensionless Quantity). Imports unxt."""
    return unxt_module().Quantity(value, unit)


def unit_factor(unit: str, target: str, name: str) -> float:
    """The factor that converts a magnitude in ``unit`` to one in ``target`` (float64,
    on the host; e.g. ``unit_factor('s', 'ms', ...) == 1000.0``).

    **Raises:** `UnitError` naming ``name`` if the two units differ in dimension.
    """
    if unit == target:
        return 1.0
    unxt = unxt_module()
    # Checks the dimension and words the error as for any other argument.
    to_canonical(unxt.Quantity(1.0, unit or ""), name, target)
    return float(unxt.unit(unit or "").to(unxt.unit(target or "")))
