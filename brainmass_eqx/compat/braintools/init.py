"""``braintools.init``: initializers ``init(shape) -> array`` (the subset brainmass uses).

Random initializers draw from the global ``brainstate.random`` key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    if isinstance(value, u.Quantity):
        return value.value, value.unit
    return value, None


def _attach(value, unit):
    return value if unit is None else u.maybe_decimal(u.Quantity(value, unit))


class Initialization:
    """Base class: ``init(shape)`` returns an array (or Quantity) of that shape."""

    __module__ = "braintools.init"

    def __call__(self, size, **kwargs):
        raise NotImplementedError


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
        if self.unit is not None:
            out = out * self.unit
        return _attach(out, unit)

    def __repr__(self):
        return f"Constant(value={self.value})"


class ZeroInit(Constant):
    def __init__(self, unit: Any = None):
        super().__init__(0.0, unit)

    def __repr__(self):
        return "ZeroInit()"


class Uniform(Initialization):
    """Uniform draws in ``[low, high)`` from the global ``brainstate.random`` key."""

    def __init__(self, low: Any = 0.0, high: Any = 1.0, unit: Any = None):
        self.low = low
        self.high = high
        self.unit = unit

    def __call__(self, size, key=None, **kwargs):
        from ..brainstate import random

        lo, unit = _split(self.low)
        hi = self.high.to(unit).value if (unit is not None and isinstance(self.high, u.Quantity)) else _split(self.high)[0]
        key = random.split_key() if key is None else key
        out = jr.uniform(key, _size(size), jnp.result_type(float), jnp.asarray(lo), jnp.asarray(hi))
        if self.unit is not None:
            out = out * self.unit
        return _attach(out, unit)

    def __repr__(self):
        return f"Uniform(low={self.low}, high={self.high})"


class Normal(Initialization):
    """Normal draws with ``mean`` and ``scale`` from the global key."""

    def __init__(self, mean: Any = 0.0, scale: Any = 1.0, unit: Any = None):
        self.mean = mean
        self.scale = scale
        self.unit = unit

    def __call__(self, size, key=None, **kwargs):
        from ..brainstate import random

        mean, unit = _split(self.mean)
        scale = _split(self.scale)[0]
        key = random.split_key() if key is None else key
        out = mean + scale * jr.normal(key, _size(size), jnp.result_type(float))
        return _attach(out, unit)

    def __repr__(self):
        return f"Normal(mean={self.mean}, scale={self.scale})"


class KaimingNormal(Initialization):
    """He-normal weights: ``N(0, 2 / fan_in)`` with fan_in the first dimension."""

    def __init__(self, scale: float = 2.0, mode: str = "fan_in", unit: Any = None):
        self.scale = scale
        self.mode = mode
        self.unit = unit

    def __call__(self, size, key=None, **kwargs):
        from ..brainstate import random

        shape = _size(size)
        fan = shape[0] if self.mode == "fan_in" or len(shape) < 2 else shape[-1]
        key = random.split_key() if key is None else key
        out = jr.normal(key, shape, jnp.result_type(float)) * jnp.sqrt(self.scale / max(fan, 1))
        return out if self.unit is None else out * self.unit

    def __repr__(self):
        return f"KaimingNormal(mode={self.mode}, nonlinearity=relu, unit=1)"


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
