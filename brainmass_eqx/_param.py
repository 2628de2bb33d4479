"""Trainable parameters.

A ``Param`` marks a leaf as something a fitter may change. It stores an *unconstrained*
raw value; its ``value`` is ``transform.forward(raw)``, so a gradient-based optimiser can
move ``raw`` freely while the model always sees a value inside its bounds.

Models never read ``Param`` objects inside traced code: `unwrap` replaces every Param by
its value once, at the solve boundary (the same idea as ``paramax.unwrap``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PyTree

from ._checks import checked_as_run_starts
from ._units import (
    AnyQuantity,
    UnitError,
    as_float_array,
    is_quantity,
    to_canonical,
    unit_factor,
    unxt_module,
)

__all__ = [
    "AbstractTransform",
    "Identity",
    "Softplus",
    "Sigmoid",
    "Exp",
    "Param",
    "is_param",
    "unwrap",
    "trainable_spec",
    "partition_trainable",
    "read",
]


class AbstractTransform(eqx.Module):
    """A bijection from the unconstrained real line to the parameter's domain."""

    def forward(self, raw: Array) -> Array:
        raise NotImplementedError

    def inverse(self, value: Array) -> Array:
        raise NotImplementedError

    @property
    def bounds(self) -> tuple[float, float]:
        """The closed interval the transform maps into (``±inf`` where unbounded)."""
        return (-math.inf, math.inf)

    def scaled(self, factor: float) -> AbstractTransform:
        """The same transform for values multiplied by ``factor > 0`` (a unit change)."""
        return self


class Identity(AbstractTransform):
    """``value = raw``."""

    def forward(self, raw):
        return raw

    def inverse(self, value):
        return value


class Softplus(AbstractTransform):
    """``value = lower + softplus(raw)``: a lower bound.

    **Arguments:**

    - `lower`: the bound, in the parameter's unit (default 0); values lie in
      ``(lower, inf)``.
    """

    lower: float = eqx.field(default=0.0, static=True)

    def forward(self, raw):
        return self.lower + jax.nn.softplus(raw)

    def inverse(self, value):
        y = jnp.asarray(value) - self.lower
        # log(expm1(y)) written to stay finite for large y.
        return y + jnp.log(-jnp.expm1(-y))

    @property
    def bounds(self):
        return (self.lower, math.inf)

    def scaled(self, factor):
        return Softplus(self.lower * factor)


class Sigmoid(AbstractTransform):
    """``value = lower + (upper - lower) * sigmoid(raw)``: a box.

    **Arguments:**

    - `lower`, `upper`: the finite bounds, ``lower < upper``, in the parameter's unit;
      values lie in the open interval ``(lower, upper)``.
    """

    lower: float = eqx.field(static=True)
    upper: float = eqx.field(static=True)

    def __check_init__(self):
        if not (math.isfinite(self.lower) and math.isfinite(self.upper) and self.upper > self.lower):
            raise ValueError(
                f"Sigmoid transform needs finite lower < upper, got ({self.lower}, {self.upper})."
            )

    def forward(self, raw):
        return self.lower + (self.upper - self.lower) * jax.nn.sigmoid(raw)

    def inverse(self, value):
        p = (jnp.asarray(value) - self.lower) / (self.upper - self.lower)
        return jnp.log(p) - jnp.log1p(-p)

    @property
    def bounds(self):
        return (self.lower, self.upper)

    def scaled(self, factor):
        return Sigmoid(self.lower * factor, self.upper * factor)


class Exp(AbstractTransform):
    """``value = exp(raw)``: positive values, optimised in log space."""

    def forward(self, raw):
        return jnp.exp(raw)

    def inverse(self, value):
        return jnp.log(value)

    @property
    def bounds(self):
        return (0.0, math.inf)


_TRANSFORMS = {"identity": Identity, "softplus": Softplus, "sigmoid": Sigmoid, "exp": Exp, "log": Exp}


def _make_transform(transform, bounds) -> AbstractTransform:
    lower, upper = (None, None) if bounds is None else bounds
    lower = None if lower is None or lower == -math.inf else float(lower)
    upper = None if upper is None or upper == math.inf else float(upper)
    if isinstance(transform, AbstractTransform):
        return transform
    if lower is not None and upper is not None and not lower < upper:
        raise ValueError(f"Param(bounds=({lower:g}, {upper:g})): the lower bound must be below the upper one.")
    if transform is None:
        if lower is not None and upper is not None:
            return Sigmoid(lower, upper)
        if lower is not None:
            return Softplus(lower)
        if upper is not None:
            raise ValueError(
                "Param(bounds=(None, upper)) with only an upper bound is not supported; "
                "give both bounds (sigmoid) or a lower bound (softplus)."
            )
        return Identity()
    if isinstance(transform, str):
        key = transform.lower()
        if key not in _TRANSFORMS:
            raise ValueError(
                f"Param(transform={transform!r}) is unknown; choose one of {sorted(_TRANSFORMS)} "
                "or pass an AbstractTransform instance."
            )
        if key == "sigmoid":
            if lower is None or upper is None:
                raise ValueError("Param(transform='sigmoid') needs bounds=(lower, upper).")
            return Sigmoid(lower, upper)
        if key == "softplus":
            return Softplus(0.0 if lower is None else lower)
        return _TRANSFORMS[key]()
    raise TypeError(
        f"Param(transform=...) must be a name or an AbstractTransform, got {type(transform).__name__}."
    )


@dataclasses.dataclass(frozen=True)
class PriorInUnit:
    """A `Param`'s prior stated in the unit its value was given in, evaluated on a value in
    another: ``prior(value / factor)``, with ``factor`` the conversion from that unit to
    the value's (e.g. 0.001 from mm/s to mm/ms).

    A model converts a Quantity-valued `Param` to its canonical unit (`Param.in_unit`); the
    prior, a function of numbers, was kept as it was, so ``Param(Quantity(5000, 'mm/s'),
    prior=GaussianPrior(5000, 1000))`` as a Network's speed (5 mm/ms) was penalised
    0.5 ((5 - 5000) / 1000)^2 = 12.5 at the prior's own mean.
    """

    prior: Any
    factor: float
    unit: str

    def __call__(self, value: Array) -> Array:
        return self.prior(value / jnp.asarray(self.factor, jnp.result_type(value)))

    def __repr__(self) -> str:
        return f"{self.prior!r} in {self.unit}"


class Param(eqx.Module):
    """A (possibly trainable) parameter value.

    ``Param(value, fit=True, transform=None, bounds=None, prior=None, *, unit='')``

    **Arguments:**

    - `value`: the initial value (a number, array, or unxt ``Quantity``).
    - `fit`: whether fitters may change it.
    - `transform`: ``'identity'``, ``'softplus'`` (``value > lower``), ``'sigmoid'``
      (``lower < value < upper``), ``'exp'``/``'log'`` (``value > 0``, optimised in log
      space), or an `AbstractTransform`. By default it is chosen from ``bounds``: both
      bounds give a sigmoid, only a lower bound a softplus, none the identity.
    - `bounds`: ``(lower, upper)``; either may be ``None``. Quantities are converted to the
      value's unit. Gradient-free fitters search inside these bounds.
    - `prior`: optional callable ``value -> penalty`` added to a fit's loss, of the value
      in the unit it is given in here (a model that converts the value to its canonical
      unit evaluates the prior on the value converted back, `PriorInUnit`).
    - `unit`: the unit of a plain-number `value` and `bounds`, as a unit string (e.g.
      ``'s'``); default ``''``: already in the canonical unit of the model field it is
      given to. A field converts the Param to its canonical unit (``Param(1.0, unit='s')``
      as a time constant is 1000 ms). A Quantity `value` brings its own unit, which
      replaces this one.

    The raw, unconstrained array is ``Param.raw``; the constrained value is ``Param.value``.
    """

    raw: Array
    transform: AbstractTransform
    fit: bool = eqx.field(static=True)
    unit: str = eqx.field(static=True)
    prior: Any = eqx.field(static=True)

    def __init__(
        self,
        value: ArrayLike | AnyQuantity,
        fit: bool = True,
        transform: str | AbstractTransform | None = None,
        bounds: tuple[Any, Any] | None = None,
        prior=None,
        *,
        unit: str = "",
    ):
        if is_quantity(value):
            unxt = unxt_module()
            unit = str(unxt.unit_of(value))
            value = unxt.ustrip(unit, value)
        elif isinstance(unit, str) and unit:
            # Checked here: a misspelt unit ('sec') was kept, and failed only when a model
            # converted the Param, with astropy's parser error, which names no argument.
            try:
                unxt_module().unit(unit)
            except Exception:  # noqa: BLE001 (astropy raises ValueError or TypeError)
                raise UnitError(
                    f"Param(unit={unit!r}) is not a unit unxt can read; give a unit string such as "
                    "'ms', 's', 'mV', 'Hz', 'mm/ms' (or the value as a unxt Quantity)."
                ) from None
        if bounds is not None:
            if len(bounds) != 2:
                raise ValueError(f"Param(bounds=...) must be (lower, upper), got {bounds!r}.")
            for which, b in zip(("lower", "upper"), bounds):
                if b is not None and np.ndim(b.value if is_quantity(b) else b) != 0:
                    raise ValueError(
                        f"Param(bounds=...): the {which} bound has shape {np.shape(b.value if is_quantity(b) else b)}; "
                        "bounds are one interval for every element of the value (scalars). For "
                        "per-element ranges, rescale the parameter so that one interval fits all, or "
                        "give each element its own Param."
                    )
            try:
                bounds = tuple(
                    None if b is None else float(to_canonical(b, "Param bounds", unit) if is_quantity(b) else b)
                    for b in bounds
                )
            except UnitError:
                if unit:
                    raise
                # The bounds are converted to the value's unit, which a plain number lacks.
                raise UnitError(
                    f"Param(bounds=...) holds Quantities with units but the value {value!r} is a plain "
                    "number: give the value as a Quantity too (e.g. Param(unxt.Quantity(10, 'ms'), "
                    "bounds=...)), or the bounds as plain numbers in the parameter's unit."
                ) from None
        tf = _make_transform(transform, bounds)
        value = as_float_array(value, "Param value")  # concrete under jit too: the checks below need it
        lo, hi = tf.bounds
        strict = isinstance(tf, (Sigmoid, Softplus, Exp))
        outside_text = f"lies outside the open interval ({lo}, {hi}) of its {type(tf).__name__} transform"
        fix = "widen bounds= or change the value"
        if isinstance(value, jax.core.Tracer):
            # Checked when the run reads it: its inverse is NaN (a divergence, blaming dt),
            # a NaN value the same.
            bad = ~jnp.isfinite(value)
            rule = "Param value must be finite"
            if math.isfinite(lo) or math.isfinite(hi):
                bad = bad | ((value <= lo) | (value >= hi) if strict else (value < lo) | (value > hi))
                rule = f"Param value is not finite or {outside_text}"
            value = checked_as_run_starts(value, bad, rule, fix)
        else:
            concrete = np.asarray(value)
            if not np.all(np.isfinite(concrete)):
                raise ValueError(f"Param value must be finite, got {concrete}.")
            bad = (concrete <= lo) | (concrete >= hi) if strict else (concrete < lo) | (concrete > hi)
            if np.any(bad):
                on_bound = strict and np.any(((concrete == lo) | (concrete == hi)) & bad) and not np.any(
                    (concrete < lo) | (concrete > hi)
                )
                detail = (
                    f" (it is on a bound, which the {type(tf).__name__} transform reaches only at "
                    "infinity: its unconstrained value would be infinite and its gradient zero)"
                    if on_bound else ""
                )
                raise ValueError(f"Param value {concrete} {outside_text}{detail}; {fix}.")
        # Concrete where the value is (a transform's inverse of a constant, even a NumPy one,
        # was traced under jax.jit): the checks of the model or Network holding this Param
        # read its value, and were skipped (tau_E = Param(-1.0, bounds=(-2, 2)) ran under jit).
        with jax.ensure_compile_time_eval():
            self.raw = tf.inverse(value)
        self.transform = tf
        self.fit = bool(fit)
        self.unit = unit
        self.prior = prior

    @property
    def value(self) -> Array:
        # Concrete where ``raw`` is (see `__init__`); a traced ``raw`` (a fit) stays traced.
        with jax.ensure_compile_time_eval():
            return self.transform.forward(self.raw)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.transform.bounds

    def in_unit(self, name: str, unit: str) -> Param:
        """This Param expressed in the canonical ``unit`` (checks the dimension)."""
        if self.unit == unit:
            return self
        if self.unit == "":
            # A plain number is already in the canonical unit; recording it lets the Param
            # and a fit's result show their unit.
            out = copy.copy(self)
            object.__setattr__(out, "unit", unit)
            return out
        factor = unit_factor(self.unit, unit, name)
        prior = self.prior
        if prior is not None and factor != 1.0:
            if isinstance(prior, PriorInUnit):  # converted before: compose the factors
                prior = PriorInUnit(prior.prior, prior.factor * factor, prior.unit)
            else:
                prior = PriorInUnit(prior, factor, self.unit)
        return Param(
            self.value * factor,
            fit=self.fit,
            transform=self.transform.scaled(factor),
            prior=prior,
            unit=unit,
        )

    def __repr__(self):
        # The unit and the transform's bounds are what a reader needs to check a fit's
        # set-up; they used to be missing ('Param(10.0, fit=True, transform=Sigmoid)').
        if isinstance(self.raw, jax.core.Tracer):
            value = f"<traced> {self.unit}" if self.unit else "<traced>"
        elif self.raw is None or np.asarray(self.raw).dtype.kind not in "fiu":
            # A filter spec's Param (raw True/False, `trainable_spec`) or the empty half of
            # an eqx.partition (raw None): no value to transform (printing one crashed).
            value = f"raw={self.raw!r}"
        else:
            arr = np.asarray(self.value, dtype=float)
            v = f"{float(arr):.6g}" if arr.ndim == 0 else np.array2string(arr, precision=6, threshold=8)
            value = f"{v} {self.unit}" if self.unit else v
        fields = [f for f in dataclasses.fields(self.transform) if f.init]
        settings = ", ".join(f"{f.name}={getattr(self.transform, f.name):g}" for f in fields)
        transform = f"{type(self.transform).__name__}({settings})" if settings else type(self.transform).__name__
        prior = "" if self.prior is None else f", prior={self.prior!r}"
        return f"Param({value}, fit={self.fit}, transform={transform}{prior})"


def is_param(x: Any) -> bool:
    """Whether ``x`` is a `Param`: the ``is_leaf`` to pass to ``jax.tree_util`` functions
    that should stop at a Param rather than enter it.

    **Arguments:**

    - `x`: any object (a pytree node or leaf).
    """
    return isinstance(x, Param)


def lands_in(x: Any, lower: float, upper: float = math.inf) -> bool:
    """Whether ``x`` is a `Param` whose transform gives only values in ``[lower, upper]``
    (its bounds inside them; the bounds of a Sigmoid, Softplus or Exp are open, so they may
    be a strict domain's). A traced value of such a Param needs no run-time check of its
    domain: its own construction checked it finite and inside the transform's interval,
    and a fit's values come from the transform."""
    if not isinstance(x, Param):
        return False
    t_lo, t_hi = x.transform.bounds
    return t_lo >= lower and t_hi <= upper


def read(x: Any) -> Any:
    """The value of a field that may be a plain value or a `Param`."""
    return x.value if isinstance(x, Param) else x


def unwrap(tree: PyTree) -> PyTree:
    """Replace every `Param` in ``tree`` by its constrained value.

    **Arguments:**

    - `tree`: any pytree (a model, a `Network`, a dict of parameters).

    **Returns:** ``tree`` with each `Param` replaced by its ``value`` (an array).
    """
    return jax.tree_util.tree_map(read, tree, is_leaf=is_param)


def trainable_spec(tree: PyTree) -> PyTree:
    """A filter spec for ``eqx.partition``: True on the raw values of ``Param(fit=True)``.

    The spec keeps each Param's structure (``Param(raw=True, ...)``), so both halves of the
    partition have the same tree structure and ``eqx.combine`` puts them back together.

    **Arguments:**

    - `tree`: any pytree holding `Param`s (a model, a `Network`, ...).

    **Returns:** a pytree of booleans of the same structure: True on the ``raw`` leaf of each
    ``Param(fit=True)``, False everywhere else.
    """

    def mark(x):
        if isinstance(x, Param):
            return jax.tree_util.tree_map(lambda _: x.fit, x)
        return False

    return jax.tree_util.tree_map(mark, tree, is_leaf=is_param)


def partition_trainable(tree: PyTree) -> tuple[PyTree, PyTree]:
    """``eqx.partition(tree, trainable_spec(tree))``: (trainable, static).

    **Arguments:**

    - `tree`: any pytree holding `Param`s (a model, a `Network`, ...).

    **Returns:** ``(trainable, static)``: the raw values of the ``Param(fit=True)`` leaves
    (None elsewhere), and the rest; ``eqx.combine(trainable, static)`` is ``tree``.
    """
    return eqx.partition(tree, trainable_spec(tree))
