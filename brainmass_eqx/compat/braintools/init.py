"""``braintools.init``: initializers ``init(shape) -> array`` (the subset brainmass uses).

Random initializers draw from the global ``brainstate.random`` key.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import brainunit as u

__all__ = ["Initialization", "Constant", "ZeroInit", "Uniform", "Normal", "KaimingNormal", "param"]


def _size(size) -> tuple[int, ...]:
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(int(s) for s in size)


def _split(value):
    value = u.from_core(value)
    if isinstance(value, u.Quantity):
        return value.value, value.unit
    return value, None


def _attach(value, unit):
    return value if unit is None else u.maybe_decimal(u.Quantity(value, unit))


def _arithmetic(op: Callable, symbol: str, reflected: bool = False) -> Callable:
    """An initializer's ``op`` with another operand (on its left when ``reflected``)."""

    def method(self, other):
        return _Combined(op, (other, self) if reflected else (self, other), symbol)

    return method


class Initialization:
    """Base class: ``init(shape)`` returns an array (or Quantity) of that shape."""

    __module__ = "braintools.init"

    #: braintools' deprecated ``unit=`` keyword: multiplies the drawn values.
    unit: Any = None

    def __call__(self, size, **kwargs):
        raise NotImplementedError

    def _attach(self, value, unit):
        """The drawn ``value`` with the deprecated ``unit=`` and the ``unit`` of the
        arguments it was drawn from."""
        return _attach(value if self.unit is None else value * self.unit, unit)

    # braintools' composition: arithmetic with numbers, arrays or other initializers, a clip,
    # a function of the values. Each initializer operand draws its own values.
    __add__ = _arithmetic(operator.add, "+")
    __radd__ = _arithmetic(operator.add, "+", reflected=True)
    __sub__ = _arithmetic(operator.sub, "-")
    __rsub__ = _arithmetic(operator.sub, "-", reflected=True)
    __mul__ = _arithmetic(operator.mul, "*")
    __rmul__ = _arithmetic(operator.mul, "*", reflected=True)
    __truediv__ = _arithmetic(operator.truediv, "/")
    __rtruediv__ = _arithmetic(operator.truediv, "/", reflected=True)

    def add(self, value):
        """``self + value``."""
        return self + value

    def multiply(self, value):
        """``self * value``."""
        return self * value

    def clip(self, min_val: Any = None, max_val: Any = None):
        """The values clipped to ``[min_val, max_val]`` (either may be None)."""
        return _Combined(lambda v: u.math.clip(v, a_min=min_val, a_max=max_val), (self,), f".clip({min_val}, {max_val})")

    def apply(self, func: Callable):
        """``func`` of the values."""
        return self | func

    def __or__(self, func):
        if isinstance(func, Initialization) or not callable(func):
            raise TypeError(
                f"init | func: func must be a function of the drawn values, got {type(func).__name__} (an "
                f"initializer takes a size, not values: wrap the transform in a function)."
            )
        return _Combined(func, (self,), f".apply({func!r})")


class _Combined(Initialization):
    """Initializers combined by ``op`` (braintools' ``AddInit``, ``ClipInit``, ...): the
    initializer operands are called with the size (each with its own key), the others
    (numbers, arrays, Quantities) used as they are."""

    def __init__(self, op: Callable, operands: tuple, text: str):
        operands = tuple(u.from_core(o) for o in operands)
        for operand in operands:
            if not isinstance(operand, (Initialization, int, float, np.ndarray, jax.Array, u.Quantity)):
                raise TypeError(
                    f"an initializer combines with another initializer, a number, an array or a Quantity; "
                    f"got {type(operand).__name__}."
                )
        self.op, self.operands, self.text = op, operands, text

    def __call__(self, size, key=None, **kwargs):
        draws = [o for o in self.operands if isinstance(o, Initialization)]
        keys = iter(jr.split(key, len(draws)) if key is not None else [])

        def value(operand):
            if not isinstance(operand, Initialization):
                return operand
            return operand(size, **kwargs) if key is None else operand(size, key=next(keys), **kwargs)

        return self.op(*[value(o) for o in self.operands])

    def __repr__(self):
        if len(self.operands) == 1:
            return f"{self.operands[0]!r}{self.text}"
        return f"({self.operands[0]!r} {self.text} {self.operands[1]!r})"


class Constant(Initialization):
    """Every element equal to ``value`` (which may carry a unit)."""

    def __init__(self, value: Any, unit: Any = None):
        if value is None:
            raise ValueError("`value` must not be None for Constant initialization.")
        self.value = value
        self.unit = unit

    def __call__(self, size, **kwargs):
        mag, unit = _split(self.value)
        out = jnp.full(_size(size), mag, dtype=jnp.result_type(float))
        return self._attach(out, unit)

    def __repr__(self):
        return f"Constant(value={self.value})"


class ZeroInit(Constant):
    def __init__(self, unit: Any = None):
        super().__init__(0.0, unit)

    def __repr__(self):
        return "ZeroInit()"


def _draw_key(key: Any, kwargs: dict) -> Any:
    """A draw's key: ``key``, else one split off braintools's ``rng=`` (a
    ``brainstate.random.RandomState``), else off the global key."""
    from ..brainstate import random

    if key is not None:
        return key
    rng = kwargs.get("rng")
    return random.split_key() if rng is None else rng.split_key()


def _check_unit(unit: Any, *values: Any) -> Any:
    """braintools's deprecated ``unit=``: refused next to values that carry a unit of their
    own (their product, e.g. mV * mV, is never what was meant)."""
    if unit is not None and any(isinstance(u.from_core(v), u.Quantity) for v in values):
        raise ValueError(
            f"unit={unit!r} next to values that carry a unit: give the unit on the values only "
            f"(braintools deprecates unit=, and refuses the two together)."
        )
    return unit


def _in_unit_of(value: Any, unit: Any, name: str) -> Any:
    """``value``'s magnitude in ``unit``, the first argument's unit (None: plain numbers).
    braintools converts it there too, so that a unit on one argument only is refused."""
    value = u.from_core(value)
    if (unit is None) != (not isinstance(value, u.Quantity)):
        raise u.UnitMismatchError(
            f"`{name}` = {value!r} and the first argument must both have a unit or both be plain numbers."
        )
    return value if unit is None else value.to(unit).value


class Uniform(Initialization):
    """Uniform draws in ``[low, high)`` from the global ``brainstate.random`` key; ``high``
    is taken in ``low``'s unit."""

    def __init__(self, low: Any = 0.0, high: Any = 1.0, unit: Any = None):
        self.low = low
        self.high = high
        self.unit = _check_unit(unit, low, high)
        lo, lo_unit = _split(low)
        if np.any(np.asarray(lo) >= np.asarray(_in_unit_of(high, lo_unit, "high"))):
            raise ValueError(f"`low` must be strictly less than `high`, got low={low!r}, high={high!r}.")

    def __call__(self, size, key=None, **kwargs):
        lo, unit = _split(self.low)
        hi = _in_unit_of(self.high, unit, "high")
        key = _draw_key(key, kwargs)
        out = jr.uniform(key, _size(size), jnp.result_type(float), jnp.asarray(lo), jnp.asarray(hi))
        return self._attach(out, unit)

    def __repr__(self):
        return f"Uniform(low={self.low}, high={self.high})"


class Normal(Initialization):
    """Normal draws with ``mean`` and standard deviation ``std`` (in ``mean``'s unit) from
    the global key."""

    def __init__(self, mean: Any = 0.0, std: Any = 1.0, unit: Any = None):
        if np.any(np.asarray(_split(std)[0]) < 0):
            raise ValueError(f"`std` must be non-negative, got {std!r}.")
        self.mean = mean
        self.std = std
        self.unit = _check_unit(unit, mean, std)

    def __call__(self, size, key=None, **kwargs):
        mean, unit = _split(self.mean)
        std = _in_unit_of(self.std, unit, "std")
        key = _draw_key(key, kwargs)
        out = mean + std * jr.normal(key, _size(size), jnp.result_type(float))
        return self._attach(out, unit)

    def __repr__(self):
        return f"Normal(mean={self.mean}, std={self.std})"


_KAIMING_SCALE = {"relu": lambda slope: 2.0, "leaky_relu": lambda slope: 2.0 / (1.0 + slope**2)}
_FAN_MODES = ("fan_in", "fan_out", "fan_avg")


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """(fan_in, fan_out): ``(n,)`` both n; a dense ``(in, out)`` weight; a convolution
    kernel ``(out, in, *spatial)`` (braintools's and PyTorch's conventions)."""
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    field = float(np.prod(shape[2:]))
    return shape[1] * field, shape[0] * field


class KaimingNormal(Initialization):
    """He-normal weights: ``N(0, scale / fan)``, with ``fan`` the fan-in, fan-out or their
    mean (``mode``) and ``scale`` 2 for ``nonlinearity='relu'``, ``2 / (1 + negative_slope^2)``
    for ``'leaky_relu'`` unless given."""

    def __init__(self, scale: Any = None, mode: str = "fan_in", nonlinearity: str = "relu",
                 negative_slope: float = 0.01, unit: Any = None):  # fmt: skip
        if nonlinearity not in _KAIMING_SCALE:
            raise ValueError(f"Unsupported nonlinearity: {nonlinearity!r}; use one of {sorted(_KAIMING_SCALE)}.")
        if mode not in _FAN_MODES:
            raise ValueError(f"Invalid mode: {mode!r}; use one of {list(_FAN_MODES)}.")
        self.scale = _KAIMING_SCALE[nonlinearity](negative_slope) if scale is None else scale
        self.mode = mode
        self.nonlinearity = nonlinearity
        self.negative_slope = negative_slope
        self.unit = unit

    def __call__(self, size, key=None, **kwargs):
        shape = _size(size)
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale, unit = _split(self.scale)
        key = _draw_key(key, kwargs)
        out = jr.normal(key, shape, jnp.result_type(float)) * jnp.sqrt(scale / max(fan, 1.0))
        return self._attach(out, unit)

    def __repr__(self):
        return f"KaimingNormal(mode={self.mode}, nonlinearity={self.nonlinearity}, unit={self.unit or 1})"


def param(
    init: Any,
    sizes: int | Sequence[int],
    batch_size: int | None = None,
    allow_none: bool = True,
    allow_scalar: bool = True,
    **kwargs: Any,
):
    """Materialise ``init`` for ``sizes`` (with a leading ``batch_size`` axis if given).

    A callable is called with the shape; an array or Quantity is broadcast to it; a
    scalar is returned as is (``allow_scalar``); ``None`` stays ``None`` (``allow_none``).
    """
    from ..brainstate import State
    from ..brainstate.nn import Param

    if init is None:
        if allow_none:
            return None
        raise ValueError(
            "Expect a parameter with type of float, ArrayType, Initializer, or Callable function, but we got None. "
        )
    shape = _size(sizes)
    full = shape if batch_size is None else (int(batch_size),) + shape
    if isinstance(init, Param):
        return init
    if isinstance(init, State):
        return init
    if callable(init) and not isinstance(init, u.Quantity):
        return init(full, **kwargs)
    mag, unit = _split(init)
    if allow_scalar and jnp.ndim(mag) == 0:
        return init
    mag = jnp.asarray(mag)
    if batch_size is not None and mag.ndim == len(full) and mag.shape[0] == batch_size:
        out = mag
    else:
        try:
            out = jnp.broadcast_to(mag, full)
        except ValueError:
            raise ValueError(f"The shape of the parameter {mag.shape} does not match the expected shape {full}.") from None
    return _attach(out, unit)
