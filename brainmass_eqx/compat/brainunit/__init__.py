"""The subset of ``brainunit`` that brainmass's documentation uses, built on unxt.

``import brainmass_eqx.compat.brainunit as u`` gives ``u.ms``, ``u.second``, ``u.Hz``,
``u.mV``, ``u.nA``, ``u.mm``, ``u.volt``, ``u.tesla``, ... (`Unit` objects), ``200 * u.ms``
(a `Quantity`), `get_magnitude`, `get_unit`, `get_mantissa`, `maybe_decimal`,
`UnitMismatchError` and the `math` submodule.

A `Quantity` is a unxt ``BareQuantity`` (so the functional core accepts it wherever it
accepts a unxt Quantity) with brainunit's behaviour on top:

- arithmetic whose result is dimensionless returns a plain JAX array (``duration / dt``
  is a number of steps, ``(10 ms) * (0.5 Hz)`` is ``0.005``);
- adding or subtracting quantities of different dimensions raises `UnitMismatchError`
  with brainunit's message (``Cannot calculate \\n10 ms + 5 Hz, because units do not
  match: ms != Hz``);
- ``str(q)`` is ``"3. ms"`` and ``repr(q)`` is ``'Quantity(3., "ms")'``.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import unxt
from unxt.quantity import BareQuantity

from ..._units import UnitError

__all__ = [
    "Quantity",
    "Unit",
    "Dimension",
    "DimensionMismatchError",
    "UnitMismatchError",
    "get_magnitude",
    "get_mantissa",
    "get_unit",
    "get_dim",
    "maybe_decimal",
    "is_unitless",
    "math",
    "fft",
    "check_units",
    "check_dims",
]


class DimensionMismatchError(UnitError):
    """Quantities of incompatible dimensions were combined (brainunit's error)."""


class UnitMismatchError(DimensionMismatchError):
    """brainunit's error for an operation whose operands' units do not match."""


# -- units and dimensions -------------------------------------------------------------------

_AstropyUnit = type(unxt.unit("ms"))
_AstropyUnitBase = _AstropyUnit.__mro__[-2]  # astropy's UnitBase: every unit ``q.unit`` can be
_SI_ORDER = ("kg", "m", "s", "A", "K", "mol", "cd")


def _is_zero(x: Any) -> bool:
    """Whether ``x`` is a concrete plain number (or array) that is all zeros; a traced value
    is never taken for zero (brainunit too refuses ``q + 0.0`` under ``jit``)."""
    if isinstance(x, jax.core.Tracer):
        return False
    try:
        return bool(np.all(np.asarray(x) == 0))
    except Exception:  # noqa: BLE001 (not numeric)
        return False


def _as_astropy(unit: Any):
    if isinstance(unit, Unit):
        return unit._unit
    if isinstance(unit, str):
        return unxt.unit(unit)
    return unxt.unit(unit)


def _value_in(q: Quantity, unit: Any) -> tuple[Any, Any]:
    """``(q.to(unit).value, q.to(unit).unit)`` without building the Quantity (which costs
    about 40 us; the facade converts its step to ms on every ``update`` and run).

    Raises `UnitMismatchError` when ``q``'s unit does not convert to ``unit``."""
    target = _as_astropy(unit)
    value, own = q.value, q.unit
    try:
        factor = own.to(target)
    except Exception as err:  # noqa: BLE001 (astropy's UnitConversionError)
        raise UnitMismatchError(
            f"Cannot convert {_brief(q)} to {_unit_name(target)}: units do not match: "
            f"{_unit_name(own)} != {_unit_name(target)}"
        ) from err
    return (value if factor == 1.0 else value * factor), target


class Dimension:
    """A physical dimension, printed in SI base units (``s``, ``m``, ``m^2 kg s^-3 A^-1``)."""

    def __init__(self, unit):
        self._unit = _as_astropy(unit)

    def _powers(self) -> dict[str, float]:
        dec = self._unit.decompose()
        return {str(b): p for b, p in zip(dec.bases, dec.powers)}

    def __eq__(self, other):
        if not isinstance(other, Dimension):
            return NotImplemented
        return self._unit.physical_type == other._unit.physical_type

    def __hash__(self):
        return hash(str(self._unit.physical_type))

    @property
    def is_dimensionless(self) -> bool:
        return self._unit.physical_type == unxt.unit("").physical_type

    def __str__(self):
        powers = self._powers()
        if not powers:
            return "1"
        parts = []
        for base in sorted(powers, key=lambda b: _SI_ORDER.index(b) if b in _SI_ORDER else 99):
            p = powers[base]
            p = int(p) if float(p).is_integer() else p
            parts.append(base if p == 1 else f"{base}^{p}")
        return " ".join(parts)

    def __repr__(self):
        return str(self)


class Unit:
    """A physical unit (``u.ms``): ``x * u.ms`` makes a `Quantity`; units multiply,
    divide and raise to powers into new units."""

    # NumPy must hand ``ndarray * unit`` to ``Unit.__rmul__`` instead of broadcasting.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, unit: Any, name: str | None = None):
        self._unit = _as_astropy(unit)
        self._name = name

    # -- display ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        return _unit_name(self._unit)

    def __str__(self):
        return self.name

    def __repr__(self):
        return f'Unit("{self.name}")'

    @property
    def dim(self) -> Dimension:
        return Dimension(self._unit)

    @property
    def is_unitless(self) -> bool:
        return self.dim.is_dimensionless and self._unit.scale == 1.0

    def has_same_dim(self, other: Any) -> bool:
        """Whether ``other`` (a unit, a Quantity, or a plain number: dimensionless) has this
        unit's dimension, whatever the scale (``u.ms.has_same_dim(u.second)`` is True)."""
        return self.dim == get_dim(other)

    @property
    def astropy(self):
        return self._unit

    # -- algebra --------------------------------------------------------------------------
    def __mul__(self, other):
        if isinstance(other, Unit):
            return Unit(self._unit * other._unit)
        if isinstance(other, Quantity):
            return _simplify(Quantity(other.value, other.unit * self._unit))
        return Quantity(other, self._unit)

    def __rmul__(self, other):
        if isinstance(other, Unit):
            return Unit(other._unit * self._unit)
        return Quantity(other, self._unit)

    def __truediv__(self, other):
        if isinstance(other, Unit):
            return Unit(self._unit / other._unit)
        if isinstance(other, Quantity):
            return _simplify(Quantity(1.0 / other.value, self._unit / other.unit))
        return Quantity(1.0 / _plain(other), self._unit)

    def __rtruediv__(self, other):
        return _simplify(Quantity(other, self._unit**-1))

    def __pow__(self, power):
        return Unit(self._unit**power)

    def __eq__(self, other):
        if isinstance(other, Unit):
            return self._unit == other._unit
        # ``q.unit`` of a Quantity is the underlying astropy unit: ``q.unit == u.mV`` must hold
        if isinstance(other, _AstropyUnitBase):
            return self._unit == other
        return NotImplemented

    def __hash__(self):
        return hash(self._unit)


def _unit_name(unit) -> str:
    """brainunit's spelling of a unit: ``ms``, ``mV / ms``, ``ms^2``, ``Hz * mV``, ``1 / ms``
    (astropy writes ``ms2``, ``Hz mV``, ``ms(1/2)``)."""
    unit = _as_astropy(unit)
    text = unit.to_string()
    if text == "":
        return "1"
    bases, powers = getattr(unit, "bases", None), getattr(unit, "powers", None)
    if not bases or getattr(unit, "scale", 1.0) != 1.0 or len(bases) == 1 and powers[0] == 1:
        return text

    def part(base, power):
        power = abs(power)
        if power == 1:
            return base.to_string()
        return f"{base.to_string()}^{int(power) if float(power).is_integer() else float(power)!r}"

    terms = sorted(zip(bases, powers), key=lambda bp: bp[0].to_string())
    num = " * ".join(part(b, p) for b, p in terms if p > 0) or "1"
    den = [part(b, p) for b, p in terms if p < 0]
    if not den:
        return num
    return f"{num} / {den[0]}" if len(den) == 1 else f"{num} / ({' * '.join(den)})"


def _is_dimensionless(unit) -> bool:
    return _as_astropy(unit).physical_type == unxt.unit("").physical_type


def _simplify(q):
    """brainunit returns plain arrays for dimensionless results."""
    if isinstance(q, BareQuantity) and _is_dimensionless(q.unit):
        factor = q.unit.to(unxt.unit(""))
        return q.value if factor == 1.0 else q.value * factor
    return q


def _fmt(value) -> str:
    if isinstance(value, jax.core.Tracer):
        return str(value)
    return np.array2string(np.asarray(value))


#: Arrays larger than this are shown as ``float32[200]`` in error messages.
_BRIEF_SIZE = 10


def _brief(x: Any) -> str:
    """``x`` for an error message: its numbers if it is small, else its dtype and shape.

    brainunit's messages show a traced operand as ``JitTracer(~float32[200])``; a concrete
    200-element operand printed in full would bury the message (the unit names) under the
    numbers, so a large concrete array is abbreviated the same way (``float32[200] nA``).
    """
    if isinstance(x, BareQuantity):
        return f"{_brief(x.value)} {_unit_name(x.unit)}"
    if isinstance(x, jax.core.Tracer):
        return str(x)
    try:
        arr = np.asarray(x)
    except Exception:  # noqa: BLE001 (not array-like: show it as it is)
        return repr(x)
    if arr.size <= _BRIEF_SIZE:
        return np.array2string(arr)
    return f"{arr.dtype}[{','.join(str(n) for n in arr.shape)}]"


def _decimal_hint(unit) -> str:
    """``q.to_decimal(u.ms)`` for a unit with a ``u.`` name, a generic hint otherwise."""
    name = _unit_name(unit)
    return f"q.to_decimal(u.{name})" if name.isidentifier() else "q.to_decimal(unit)"


# -- quantities -------------------------------------------------------------------------------


def _as_value(x: Any) -> Any:
    """Keep concrete NumPy/Python values on the host (as brainunit does), so that numbers
    built inside a JAX trace (``1.0 * u.ms``) stay concrete; JAX arrays pass through."""
    if isinstance(x, (jax.Array, jax.core.Tracer)):
        return x
    if isinstance(x, (np.ndarray, np.generic, int, float, complex, bool, list, tuple)):
        return np.asarray(x)
    return jnp.asarray(x)


class Quantity(BareQuantity):
    """An array with a physical unit (brainunit semantics on a unxt ``BareQuantity``).

    ``Quantity(value, unit)``: ``unit`` may be a `Unit`, a unit string or an astropy unit.
    Concrete NumPy or Python values stay on the host (so they stay concrete inside traced
    code); JAX arrays stay JAX arrays.
    """

    value: Any = eqx.field(converter=_as_value)

    # NumPy hands ``ndarray * quantity`` to ``Quantity.__rmul__`` (host values stay NumPy).
    __array_ufunc__ = None

    def __init__(self, mantissa: Any = None, unit: Any = "", dtype: Any = None, *, value: Any = None):
        # brainunit's name is ``mantissa``; unxt (dataclasses.replace) passes ``value``.
        if (mantissa is None) == (value is None):
            raise TypeError("Quantity(mantissa, unit): give the numbers once, as mantissa (or value).")
        value = mantissa if value is None else value
        if dtype is not None:
            value = value.astype(dtype) if hasattr(value, "astype") else np.asarray(value, dtype)
        if isinstance(value, BareQuantity) or isinstance(value, unxt.AbstractQuantity):
            value = value.to(_as_astropy(unit)).value if unit not in ("", None) else value
        if isinstance(unit, Unit):
            unit = unit._unit
        if unit is None:
            unit = ""
        super().__init__(value, unit)

    # -- brainunit accessors ---------------------------------------------------------------
    @property
    def mantissa(self):
        return self.value

    @property
    def magnitude(self):
        return self.value

    @property
    def dim(self) -> Dimension:
        return Dimension(self.unit)

    @property
    def is_unitless(self) -> bool:
        """Whether the unit is the plain ``1`` (dimensionless with no scale), as `Unit.is_unitless`."""
        return Unit(self.unit).is_unitless

    @property
    def shape(self):
        return jnp.shape(self.value)

    @property
    def ndim(self):
        return jnp.ndim(self.value)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def dtype(self):
        return jnp.result_type(self.value)

    @property
    def T(self):
        return Quantity(self.value.T, self.unit)

    def to(self, new_unit=None, *, unit=None) -> Quantity:
        # brainunit names the argument new_unit; unxt's spelling is unit.
        value, target = _value_in(self, new_unit if unit is None else unit)
        return Quantity(value, target)

    def in_unit(self, unit, err_msg=None) -> Quantity:
        """``to(unit)``; ``err_msg`` replaces the message of a unit mismatch (brainunit's)."""
        try:
            return self.to(unit)
        except UnitMismatchError as error:
            if err_msg is None:
                raise
            raise UnitMismatchError(err_msg) from error

    def factorless(self) -> Quantity:
        """brainunit's: the quantity with its unit's extra factor folded into the numbers. The
        facade's units carry none (a unit is its scale and dimension), so the quantity itself."""
        return self

    def to_decimal(self, unit=None):
        if unit is None:
            return self.to(unxt.unit("")).value if _is_dimensionless(self.unit) else self.value
        return self.to(unit).value

    def __float__(self):
        if _is_dimensionless(self.unit):
            return float(self.to(unxt.unit("")).value)
        raise TypeError(
            f"only dimensionless quantities can be converted to float, got {_brief(self)}; use "
            "q.to_decimal(unit) or u.get_magnitude(q)."
        )

    # -- display ----------------------------------------------------------------------------
    def __str__(self):
        return f"{_fmt(self.value)} {_unit_name(self.unit)}"

    def __repr__(self):
        return f'Quantity({_fmt(self.value)}, "{_unit_name(self.unit)}")'

    def __format__(self, spec):
        if not spec:
            return str(self)
        v = np.asarray(self.value)
        return f"{format(v.item(), spec) if v.ndim == 0 else np.array2string(v)} {_unit_name(self.unit)}"

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(repr(self))

    def _repr_latex_(self):
        return None

    # -- arithmetic -------------------------------------------------------------------------
    def _check_same_dim(self, other, op):
        other_unit = other.unit if isinstance(other, BareQuantity) else unxt.unit("")
        if _as_astropy(other_unit).physical_type != self.unit.physical_type:
            raise UnitMismatchError(
                f"Cannot calculate \n{_brief(self)} {op} {_brief(other)}, because units do not match: "
                f"{_unit_name(self.unit)} != {_unit_name(other_unit)}"
            )

    def _binary_same_dim(self, other, op, reverse=False):
        if isinstance(other, Unit):
            return NotImplemented
        # brainunit's one exception to matching units: a concrete plain zero is zero in any unit
        # (``q + 0.0``; brainmass's ``additive_coupling`` adds its default bias ``b=0.0`` so)
        if isinstance(other, BareQuantity) or not _is_zero(other):
            self._check_same_dim(other, op)
        other_value = _in(other, self.unit) if isinstance(other, BareQuantity) else _plain(other)
        a, b = (other_value, self.value) if reverse else (self.value, other_value)
        out = a + b if op == "+" else a - b
        return Quantity(out, self.unit)

    def __add__(self, other):
        return self._binary_same_dim(other, "+")

    def __radd__(self, other):
        return self._binary_same_dim(other, "+", reverse=True)

    def __sub__(self, other):
        return self._binary_same_dim(other, "-")

    def __rsub__(self, other):
        return self._binary_same_dim(other, "-", reverse=True)

    def __mul__(self, other):
        if isinstance(other, Unit):
            return _simplify(Quantity(self.value, self.unit * other._unit))
        if isinstance(other, BareQuantity):
            return _simplify(Quantity(self.value * other.value, self.unit * other.unit))
        return Quantity(self.value * _plain(other), self.unit)

    def __rmul__(self, other):
        return Quantity(_plain(other) * self.value, self.unit)

    def __truediv__(self, other):
        if isinstance(other, Unit):
            return _simplify(Quantity(self.value, self.unit / other._unit))
        if isinstance(other, BareQuantity):
            return _simplify(Quantity(self.value / other.value, self.unit / other.unit))
        return Quantity(self.value / _plain(other), self.unit)

    def __rtruediv__(self, other):
        return _simplify(Quantity(_plain(other) / self.value, self.unit**-1))

    def __pow__(self, power):
        return _simplify(Quantity(self.value**power, self.unit**power))

    def __neg__(self):
        return Quantity(-self.value, self.unit)

    def __pos__(self):
        return self

    def __abs__(self):
        return Quantity(jnp.abs(self.value), self.unit)

    def _compare(self, other, fn, op):
        if not isinstance(other, BareQuantity):
            if _is_dimensionless(self.unit):
                return fn(_simplify(self), other)
            # brainunit lets a quantity be compared with 0 only.
            if np.all(np.asarray(other) == 0) if not isinstance(other, jax.core.Tracer) else False:
                return fn(self.value, other)
        self._check_same_dim(other, op)
        return fn(self.value, _in(other, self.unit))

    def __lt__(self, other):
        return self._compare(other, jnp.less, "<")

    def __le__(self, other):
        return self._compare(other, jnp.less_equal, "<=")

    def __gt__(self, other):
        return self._compare(other, jnp.greater, ">")

    def __ge__(self, other):
        return self._compare(other, jnp.greater_equal, ">=")

    def __eq__(self, other):
        try:
            return self._compare(other, jnp.equal, "==")
        except UnitMismatchError:
            return False

    def __ne__(self, other):
        try:
            return self._compare(other, jnp.not_equal, "!=")
        except UnitMismatchError:
            return True

    __hash__ = BareQuantity.__hash__

    # -- array methods -----------------------------------------------------------------------
    def __getitem__(self, index):
        return Quantity(self.value[index], self.unit)

    def __len__(self):
        return len(self.value)

    def __iter__(self):
        for v in self.value:
            yield Quantity(v, self.unit)

    def _keep(self, fn, *args, **kwargs):
        return Quantity(fn(self.value, *args, **kwargs), self.unit)

    def max(self, *a, **k):
        return self._keep(jnp.max, *a, **k)

    def min(self, *a, **k):
        return self._keep(jnp.min, *a, **k)

    def mean(self, *a, **k):
        return self._keep(jnp.mean, *a, **k)

    def sum(self, *a, **k):
        return self._keep(jnp.sum, *a, **k)

    def std(self, *a, **k):
        return self._keep(jnp.std, *a, **k)

    def reshape(self, *shape):
        return self._keep(jnp.reshape, shape[0] if len(shape) == 1 else shape)

    def flatten(self):
        return self._keep(jnp.ravel)

    def squeeze(self, *a, **k):
        return self._keep(jnp.squeeze, *a, **k)

    def transpose(self, *axes):
        return self._keep(jnp.transpose, axes or None)

    def astype(self, dtype):
        return self._keep(lambda v: jnp.asarray(v).astype(dtype))

    def item(self):
        return Quantity(np.asarray(self.value).item(), self.unit)

    def tolist(self):
        return np.asarray(self.value).tolist()

    # brainunit's copies and conversions (a quantity here is immutable: a copy is a new one)
    def copy(self):
        return self._keep(lambda v: v.copy() if hasattr(v, "copy") else v)

    clone = copy

    def to_numpy(self):
        return Quantity(np.asarray(self.value), self.unit)

    def to_jax(self):
        return Quantity(jnp.asarray(self.value), self.unit)

    def float(self):
        return self.astype(jnp.float32)

    def double(self):
        return self.astype(jnp.float64)

    def half(self):
        return self.astype(jnp.float16)

    def view(self, *shape):
        return self.reshape(*shape)

    def unsqueeze(self, axis):
        return math.expand_dims(self, axis)

    def pow(self, exponent):
        return self**exponent

    def has_same_unit(self, other) -> bool:
        """Whether ``other`` has this quantity's dimension (brainunit's test: ms and s do)."""
        return get_dim(self) == get_dim(other)

    def repr_in_unit(self, unit, precision=None) -> str:
        """The quantity written in ``unit`` (``precision`` decimals if given)."""
        q = self.to(unit)
        if precision is None:
            return str(q)
        return f"{np.array2string(np.asarray(q.value), precision=precision)} {_unit_name(q.unit)}"

    def __array__(self, dtype=None, copy=None):
        # brainunit refuses to turn a dimensionful quantity into a NumPy array: the array
        # would silently be in whatever unit the quantity happened to carry. Dimensionless
        # quantities convert to plain numbers (scale folded in). Matplotlib plots quantities
        # through the converter registered below, not through this method.
        if not _is_dimensionless(self.unit):
            raise TypeError(
                f"Only dimensionless quantities can be converted to NumPy arrays. But got {_brief(self)}; "
                f"take the numbers in a unit first: {_decimal_hint(self.unit)} (or q.mantissa)."
            )
        arr = np.asarray(_simplify(self))
        return arr.astype(dtype) if dtype is not None else arr


def _math_method(name: str):
    def method(self, *args, **kwargs):
        return getattr(math, name)(self, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``u.math.{name}(q, ...)``: brainunit's unit rule for it."
    return method


def _in_place(name: str, instead: str):
    def method(self, *args, **kwargs):
        raise TypeError(
            f"q.{name}(...) changes the quantity in place in brainunit; the facade's quantities are immutable "
            f"(JAX arrays). Use {instead}."
        )

    method.__name__ = method.__qualname__ = name
    return method


for _name in ("all", "any", "argsort", "clip", "conj", "conjugate", "cross", "cumprod", "cumsum", "diagonal", "dot",
              "expand_dims", "nancumprod", "nanprod", "nonzero", "outer", "prod", "ptp", "repeat", "searchsorted",
              "split", "swapaxes", "take", "tile", "trace", "var"):  # fmt: skip
    setattr(Quantity, _name, _math_method(_name))
for _name, _instead in (("sort", "q = u.math.sort(q)"), ("fill", "q = u.math.full_like(q, value)"),
                        ("update_mantissa", "q = u.Quantity(mantissa, q.unit)"), ("put", "q = q.at[...].set(...)"),
                        ("resize", "q = u.math.resize(q, shape)")):  # fmt: skip
    setattr(Quantity, _name, _in_place(_name, _instead))


def _in(q: Any, unit) -> Any:
    """The value of quantity ``q`` in ``unit`` (host values stay on the host)."""
    factor = q.unit.to(unit)
    return q.value if factor == 1.0 else q.value * factor


def _plain(x: Any) -> Any:
    """An operand as an array, NumPy for host values (see `_as_value`)."""
    if isinstance(x, (jax.Array, jax.core.Tracer)):
        return x
    return np.asarray(x)


# -- functions ------------------------------------------------------------------------------------


def from_core(x: Any) -> Any:
    """``x`` as the facade's `Quantity` when it is a unxt Quantity of another class (the
    functional core's ``unxt.Quantity(3.0, 'mV')``), else ``x`` unchanged: facade code that
    tests ``isinstance(x, Quantity)`` would take it for a plain number and drop its unit."""
    if isinstance(x, unxt.AbstractQuantity) and not isinstance(x, Quantity):
        return Quantity(x.value, x.unit)
    return x


def get_magnitude(obj: Any) -> Any:
    """The number part of ``obj`` (in its own unit); ``obj`` itself if it has no unit."""
    if isinstance(obj, BareQuantity) or isinstance(obj, unxt.AbstractQuantity):
        return obj.value
    return obj


get_mantissa = get_magnitude


def get_unit(obj: Any) -> Unit:
    """The `Unit` of ``obj`` (``Unit("1")`` for a plain number or array)."""
    if isinstance(obj, Unit):
        return obj
    if isinstance(obj, unxt.AbstractQuantity):
        return Unit(obj.unit)
    return Unit(unxt.unit(""))


def get_dim(obj: Any) -> Dimension:
    return get_unit(obj).dim


def is_unitless(obj: Any) -> bool:
    return not isinstance(obj, unxt.AbstractQuantity) or _is_dimensionless(obj.unit)


def maybe_decimal(val: Any, unit: Any = None) -> Any:
    """A dimensionless quantity as a plain array; a quantity with a unit as its numbers in
    ``unit`` where ``unit`` is given; anything else unchanged."""
    if isinstance(val, Quantity) and _is_dimensionless(val.unit):
        return _simplify(val)
    if isinstance(val, unxt.AbstractQuantity) and _is_dimensionless(val.unit):
        return jnp.asarray(unxt.ustrip("", val))
    if unit is not None and isinstance(val, unxt.AbstractQuantity):
        return Quantity(val.value, val.unit).to_decimal(unit)
    return val


def _register_units() -> dict[str, Unit]:
    table = {
        # time
        "second": "s", "ms": "ms", "msecond": "ms", "us": "us", "usecond": "us", "ns": "ns",
        "minute": "min", "hour": "h",
        # frequency
        "Hz": "Hz", "hertz": "Hz", "kHz": "kHz", "MHz": "MHz", "mHz": "mHz",
        # voltage
        "volt": "V", "V": "V", "mV": "mV", "mvolt": "mV", "uV": "uV", "uvolt": "uV", "kV": "kV",
        # current
        "amp": "A", "amper": "A", "ampere": "A", "mA": "mA", "uA": "uA", "nA": "nA", "namp": "nA",
        "pA": "pA", "pamp": "pA",
        # length
        "meter": "m", "metre": "m", "mm": "mm", "mmeter": "mm", "cm": "cm", "cmeter": "cm",
        "um": "um", "umeter": "um", "nm": "nm", "km": "km",
        # conductance, capacitance, resistance, charge
        "siemens": "S", "mS": "mS", "uS": "uS", "nS": "nS", "pS": "pS",
        "farad": "F", "uF": "uF", "nF": "nF", "pF": "pF",
        "ohm": "Ohm", "kohm": "kOhm", "Mohm": "MOhm",
        "coulomb": "C", "nC": "nC", "pC": "pC",
        # magnetism and others
        "tesla": "T", "T": "T", "mT": "mT", "nT": "nT", "fT": "fT", "pT": "pT",
        "kilogram": "kg", "kg": "kg", "gram": "g", "mole": "mol", "molar": "mol / L",
        "mM": "mmol / L", "uM": "umol / L", "liter": "L", "radian": "rad",
    }
    out = {name: Unit(unxt.unit(text)) for name, text in table.items()}
    out["ohm"] = Unit(unxt.unit("Ohm"), name="ohm")
    out["UNITLESS"] = Unit(unxt.unit(""))
    out["dimensionless"] = out["UNITLESS"]
    return out


globals().update(_register_units())
__all__ += sorted(_register_units())


# -- matplotlib ---------------------------------------------------------------------------------


def _register_matplotlib() -> None:
    """Let matplotlib plot quantities (``plt.plot(r['ts'], r['x'])``), as brainunit does.

    ``np.asarray(q)`` refuses dimensionful quantities, so matplotlib needs a unit converter:
    the first quantity on an axis fixes its unit, later ones are converted to it (a
    dimension mismatch is matplotlib's ``ConversionError``), plain numbers pass unchanged.
    """
    try:
        from matplotlib import units as mpl_units
    except ImportError:  # matplotlib is optional
        return

    class QuantityConverter(mpl_units.ConversionInterface):
        @staticmethod
        def default_units(x, axis):
            if isinstance(x, BareQuantity):
                return x.unit
            if isinstance(x, (list, tuple)):
                return next((i.unit for i in x if isinstance(i, BareQuantity)), None)
            return None

        @staticmethod
        def axisinfo(unit, axis):
            return None if unit is None else mpl_units.AxisInfo(label=_unit_name(unit))

        @staticmethod
        def convert(value, unit, axis):
            if isinstance(value, (list, tuple)):
                return [QuantityConverter.convert(v, unit, axis) for v in value]
            if not isinstance(value, BareQuantity):
                return value
            if unit is None:
                return np.asarray(value.value)
            try:
                return np.asarray(_in(value, unit))
            except Exception as err:  # noqa: BLE001 (astropy's UnitConversionError)
                raise mpl_units.ConversionError(
                    f"cannot plot {_brief(value)} on an axis in {_unit_name(unit)}."
                ) from err

    mpl_units.registry[Quantity] = QuantityConverter()


_register_matplotlib()

from . import fft, math  # noqa: E402
from ._decorators import check_dims, check_units  # noqa: E402
