"""brainmass's ``*Step`` node models as stateful objects over the functional core.

A facade model (``HopfStep(3, a=0.25)``) keeps brainmass's constructor signature and
defaults; its parameters are `Param`/`Const` objects and its states `HiddenState` s, as
in brainmass. Every computation is delegated to the functional model it builds from the
current parameter values (`_NodeModel.core_model`):

- ``update(*inputs)`` takes one step with the core solver (``ExponentialEuler`` for
  ``method='exp_euler'``, diffrax solvers for the others), noise included, and writes
  the new state back;
- ``Simulator.run`` hands the whole run to `brainmass_eqx.simulate` (see
  ``_simulator.py``).

States keep brainmass's units (Jansen-Rit velocities in mV/s, Montbrió rates in Hz);
conversion to the core's canonical units happens at the boundary (`to_core_state`,
`from_core_state`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import models as core_models, noise as core_noise
from .._checks import plain_method
from .._simulate import _wrap_solver as _simulate_wrap_solver
from .._units import CANONICAL_UNITS, UnitError
from ..models._math import rate_sigmoid, shifted_sigmoid
from ..solvers import RK4, ExponentialEuler, checked_step, fixed_step_solver
from . import brainunit as u
from ._noise import Noise, check_noise_size
from .brainstate import environ, random
from .brainstate._state import HiddenState, State
from .brainstate.nn import Dynamics, Param
from .braintools import init as binit

__all__ = ["NodeModel", "method_solver", "dt_ms", "core_call"]


# -- helpers ---------------------------------------------------------------------------------------


def dt_ms(dt: Any = None, name: str = "dt") -> float:
    """The step (environment ``dt`` if None) in ms, as a Python float.

    A plain number is refused, as brainmass's models refuse it: the facade could not read it
    one way throughout (the Simulator would count steps in the duration's unit, BOLD and
    ``braintools.metric`` read plain numbers as seconds), so it asks for the unit instead.
    """
    if dt is None:
        dt = environ.get_dt()
    if isinstance(dt, u.Quantity):
        if dt.unit.physical_type != u.ms.astropy.physical_type:
            raise u.UnitMismatchError(f"{name} must be a time, got {dt}.")
        return float(np.asarray(u._value_in(dt, u.ms)[0]))
    raise TypeError(
        f"{name}={dt!r} is a plain number; brainmass's models need a time with a unit: "
        f"pass {name}={dt!r} * u.ms (e.g. Simulator(model, dt={dt!r} * u.ms) or "
        f"brainstate.environ.set(dt={dt!r} * u.ms))."
    )


def core_call(fn, *args, **kwargs):
    """Call into the core, turning its unit errors into brainunit's `UnitMismatchError`."""
    try:
        return fn(*args, **kwargs)
    except u.UnitMismatchError:
        raise
    except UnitError as err:
        raise u.UnitMismatchError(str(err)) from err


_METHODS: dict[str, Any] = {
    "exp_euler": ExponentialEuler,
    "expeuler": ExponentialEuler,
    "euler": dfx.Euler,
    "rk2": dfx.Heun,
    "heun": dfx.Heun,
    "midpoint": dfx.Midpoint,
    "ralston2": dfx.Ralston,
    "rk3": dfx.Bosh3,
    "bs32": dfx.Bosh3,
    "rk4": RK4,
    "dopri5": dfx.Dopri5,
    "rk45": dfx.Dopri5,
    "tsit5": dfx.Tsit5,
    "dopri8": dfx.Dopri8,
}


def method_solver(method: str):
    """The diffrax solver for brainmass's ``method`` name."""
    if method not in _METHODS:
        raise AttributeError(
            f"module 'braintools.quad' has no attribute 'ode_{method}_step' (method={method!r}); "
            f"the compat facade supports {sorted(_METHODS)}."
        )
    return _METHODS[method]()


def _unit_of(text: str):
    return u.Unit(text) if text else None


def _canonical_unit(kind_or_unit: str) -> str:
    return CANONICAL_UNITS.get(kind_or_unit, kind_or_unit)


def to_magnitude(value: Any, unit: str, name: str) -> Any:
    """``value`` (Quantity or plain, plain = already in ``unit``) as a plain array in ``unit``."""
    if isinstance(value, Param):
        value = value.value()
    if isinstance(value, u.Quantity):
        if not unit:
            if not u._is_dimensionless(value.unit):
                raise u.UnitMismatchError(f"{name} must be dimensionless, got {value}.")
            return jnp.asarray(u.maybe_decimal(value))
        try:
            return value.to(unit).value
        except Exception as err:  # noqa: BLE001 (unxt raises several types)
            raise u.UnitMismatchError(f"{name} has unit {value.unit}, which is not convertible to {unit}.") from err
    return value


def _same_value(a: Any, b: Any) -> bool:
    """Whether ``a`` is certainly the same value as ``b``: the same concrete JAX array
    (immutable), equal units around such arrays, or equal plain scalars. Anything else
    (a NumPy array, which can be changed in place; a tracer) is never the same."""
    if isinstance(a, u.Quantity):
        return isinstance(b, u.Quantity) and (a.unit is b.unit or a.unit == b.unit) and _same_value(a.value, b.value)
    if isinstance(a, jax.Array):
        return a is b and not isinstance(a, jax.core.Tracer)
    if a is None or isinstance(a, (bool, int, float, str)):
        # repr tells -0.0 from 0.0 and True from 1, which == does not
        return type(a) is type(b) and repr(a) == repr(b)
    return False


def _built_core(owner: Any, cls: type, n_regions: int, kwargs: dict) -> Any:
    """``cls(n_regions=n_regions, **kwargs)`` (through `core_call`), reused while the values are
    the same objects: building a functional model converts and checks every parameter (about
    0.4 ms for Hopf), which a loop of ``update`` calls or ``Simulator.run`` (twice: the state
    initialisation and the run) paid again for unchanged parameters. Values compare by
    `_same_value`, so a new parameter value, a NumPy array or a traced value builds anew; the
    model is kept in ``owner.__dict__`` with the values it was built from (one entry)."""
    x64 = jax.config.jax_enable_x64  # the dtype the values were converted to
    cached = owner.__dict__.get("_built_core")
    if cached is not None:
        c_cls, c_n, c_x64, c_kwargs, core = cached
        if (
            c_cls is cls and c_n == n_regions and c_x64 == x64 and c_kwargs.keys() == kwargs.keys()
            and all(_same_value(c_kwargs[k], v) for k, v in kwargs.items())
        ):
            return core
    core = core_call(cls, n_regions=n_regions, **kwargs)
    if all(_same_value(v, v) for v in kwargs.values()):
        owner.__dict__["_built_core"] = (cls, n_regions, x64, kwargs, core)
    return core


class _Held(eqx.Module):
    """Inputs held constant over a step (an input source for the core solvers)."""

    values: dict

    def evaluate(self, t):
        return self.values

    def at_step(self, t):
        return self


def wrap_solver(core, solver, dt: float):
    """``core.wrap_solver(solver, dt=dt)`` (models whose hook takes no ``dt`` get the solver
    only), as `simulate` calls it: the hook's signature is read once per function. An
    implicit ``solver`` needs its root finder's tolerances: ``update`` takes fixed steps
    (`solvers.fixed_step_solver`)."""
    # (plain_method: core._label would build an eqx.BoundMethod at every eager call.)
    return _simulate_wrap_solver(core, fixed_step_solver(solver, f"{plain_method(core, '_label')()}.update"), dt)


def _init_solver_state(core, y, solver, dt, key, batch):
    """The solver state at t = 0 (per batch member when ``batch`` is set).

    Eager on purpose, although it costs about 0.15 ms of every ``init_all_states``: a delayed
    network's plan computed on concrete values (NumPy) carries its blocked-read state, which
    a compiled call (its values traced) would leave out, and ``update`` keeps this structure."""

    def init(y_, k_):
        stochastic = getattr(core, "is_stochastic", False)
        # Methods read plainly: each eqx.BoundMethod costs about 25 us, eagerly.
        terms = plain_method(core, "terms")
        terms = terms(k_, dt=dt, t1=dt, solver=solver) if stochastic else terms(k_)
        wrapped = wrap_solver(core, solver, dt)
        zero = jnp.zeros((), jnp.result_type(float))
        return plain_method(wrapped, "init")(terms, zero, zero + dt, y_, _Held({}))

    if batch is None:
        return init(y, key)
    return jax.vmap(init, in_axes=(0, 0 if key is not None else None))(y, key)


@eqx.filter_jit
def _one_step(core, y, inputs, solver, t0, dt, key, solver_state):
    """One step of ``solver`` on ``core`` (the core's step, projection included); a failed
    step (an implicit solver's root find) raises when it runs (`checked_step`)."""
    stochastic = getattr(core, "is_stochastic", False)
    terms = core.terms(key, dt=dt, t1=t0 + dt, solver=solver) if stochastic else core.terms(key)
    wrapped = wrap_solver(core, solver, dt)
    source = _Held(inputs)
    if solver_state is None:
        solver_state = wrapped.init(terms, t0, t0 + dt, y, source)
    y1, _, _, solver_state, result = wrapped.step(terms, t0, t0 + dt, y, source, solver_state, False)
    return core.post_step(checked_step(y1, result, solver, f"{core._label()}.update")), solver_state


# -- the facade base class --------------------------------------------------------------------------


def _param_default(name, default):
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)


class _UsingCore:
    """Within the block, ``model.core_model()`` returns ``core`` (no rebuild inside traces)."""

    def __init__(self, model, core):
        self.model, self.core = model, core

    def __enter__(self):
        self.previous = self.model.__dict__.get("_core_override")
        self.model.__dict__["_core_override"] = self.core
        node = getattr(self.model, "node", None)
        self.inner = _UsingCore(node, self.core.node) if node is not None and hasattr(self.core, "node") else None
        if self.inner is not None:
            self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        if self.inner is not None:
            self.inner.__exit__(*exc)
        self.model.__dict__["_core_override"] = self.previous


class CoreStepper:
    """One-step stateful stepping on a core model, shared by node models and `Network`.

    Needs ``core_model()``, ``to_core_state(core)``, ``from_core_state(state, core)``,
    ``core_inputs(args, kwargs, core)``, ``solver()`` and ``_output(core)``. Carries the
    solver state (delay history, noise block), the noise key and the step count in states,
    so repeated ``update`` calls continue one trajectory (inside loops as well).
    """

    def using_core(self, core):
        """Context: ``core_model()`` returns ``core`` (built once, outside any trace)."""
        return _UsingCore(self, core)

    def _init_stepper(self, batch_size) -> None:
        self._batch = batch_size
        for attr in ("_solver_state", "_key", "_step"):
            if isinstance(getattr(self, attr, None), State):
                getattr(self, attr).value = None if attr != "_step" else 0
            else:
                setattr(self, attr, State(None if attr != "_step" else 0))
        if environ.get("dt", None) is not None:
            self._prepare(dt_ms())

    def _prepare(self, dt: float) -> None:
        """Draw the noise key and build the solver state, so that ``update`` keeps one
        pytree structure from the first step on (required inside loops)."""
        core = self.core_model()
        key = None
        if getattr(core, "is_stochastic", False):
            key = random.split_key() if self._batch is None else random.split_key(self._batch)
            self._key.value = key
        y = self.to_core_state(core)
        self._solver_state.value = _init_solver_state(core, y, self.solver(), dt, key, self._batch)

    def _core_step(self, args: tuple, kwargs: dict):
        core = self.core_model()
        y = self.to_core_state(core)
        inputs = self.core_inputs(args, kwargs, core)
        dt = dt_ms()
        step = self._step.value
        t0 = jnp.asarray((0 if step is None else step) * dt, dtype=jnp.result_type(float))
        batch = getattr(self, "_batch", None)
        if getattr(core, "is_stochastic", False) and self._key.value is None:
            self._prepare(dt)
        key = self._key.value
        solver = self.solver()
        solver_state = self._solver_state.value
        if batch is None:
            y1, solver_state = _one_step(core, y, inputs, solver, t0, dt, key, solver_state)
        else:
            in_inputs = {k: 0 if jnp.ndim(v) >= 2 else None for k, v in inputs.items()}
            y1, solver_state = jax.vmap(
                lambda y_, i_, k_, s_: _one_step(core, y_, i_, solver, t0, dt, k_, s_),
                in_axes=(0, in_inputs, 0 if key is not None else None, 0 if solver_state is not None else None),
            )(y, inputs, key, solver_state)
        self._solver_state.value = solver_state
        self._step.value = (0 if step is None else step) + 1
        self.from_core_state(y1, core)
        return self._output(core)


class NodeModel(CoreStepper, Dynamics):
    """Base class of the facade node models.

    Subclasses declare, as class attributes:

    - ``core``: the functional model class;
    - ``params``: ``(name, default)`` of every parameter, in brainmass's order;
    - ``inits``: ``{keyword: state}`` for the initializer keywords (``init_x``,
      ``rE_init``), with their defaults in ``init_defaults``;
    - ``noises``: ``{keyword: (core target, 'input' | 'derivative')}``;
    - ``inputs``: the core input names that ``update``'s positional arguments feed;
      ``update_args``: their names and defaults;
    - ``output``: a state or observable name (or a tuple of them) that ``update`` returns;
    - ``state_units``: brainmass's unit of each state (``''`` for dimensionless);
    - ``has_method``: whether the constructor takes ``method=``.
    """

    __module__ = "brainmass"

    core: ClassVar[type] = None
    params: ClassVar[tuple] = ()
    inits: ClassVar[dict] = {}
    init_defaults: ClassVar[dict] = {}
    noises: ClassVar[dict] = {}
    inputs: ClassVar[tuple] = ()
    update_args: ClassVar[tuple] = ()
    output: ClassVar[Any] = None
    state_units: ClassVar[dict] = {}
    observable_units: ClassVar[dict] = {}
    has_method: ClassVar[bool] = True
    fixed_solver: ClassVar[Any] = None
    core_extra: ClassVar[dict] = {}
    rename: ClassVar[dict] = {}
    #: brainmass lists the initializers before the noise arguments for some models.
    inits_first: ClassVar[bool] = False
    #: brainmass asserts ``callable(init_x)``; KuramotoNetwork alone also takes an array.
    inits_must_be_callable: ClassVar[bool] = True
    #: brainmass's names of ``derivative``'s additive terms, where they are not ``add_<suffix>``.
    derivative_adds: ClassVar[tuple | None] = None
    #: brainmass's per-equation right-hand sides (``HopfStep.dx(x, y, inp)``, ...):
    #: ``{method: (state, arguments)}``. Each argument is a state name, or
    #: ``(brainmass's argument name, source)`` / ``(name, source, default)`` with ``source`` a
    #: state, an ``update`` argument or a `derivative_add_names` entry. One method per entry is
    #: made by `rhs_method`; all of them evaluate `derivative` (the core's `vector_field`).
    rhs: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ps = [inspect.Parameter("in_size", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        order = list(cls.signature_order()) if hasattr(cls, "signature_order") else None
        noises = [(k, None) for k in cls.noises]
        inits = [(k, cls.init_defaults[k]) for k in cls.inits]
        entries = order or (
            list(cls.params)
            + (inits + noises if cls.inits_first else noises + inits)
            + ([("method", "exp_euler")] if cls.has_method else [])
        )
        ps += [_param_default(n, d) for n, d in entries]
        cls.__signature__ = inspect.Signature(ps)
        ups = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        ups += [_param_default(n, d) for n, d in cls.update_args]
        cls._update_signature = inspect.Signature(ups)
        for name, (state, arguments) in cls.__dict__.get("rhs", {}).items():
            setattr(cls, name, rhs_method(name, state, arguments))

    def __init__(self, *args: Any, **kwargs: Any):
        try:
            bound = self.__signature__.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{type(self).__name__}{self.__signature__}: {err}") from None
        bound.apply_defaults()
        a = bound.arguments
        super().__init__(a["in_size"])
        for name, _ in self.params:
            setattr(self, name, self._make_param(name, a[name]))
        for kw in self.noises:
            noise = a[kw]
            if noise is not None and not isinstance(noise, Noise):
                raise AssertionError(f"{kw} must be a Noise instance or None.")
            if noise is not None:
                check_noise_size(kw, noise, self)
            setattr(self, kw, noise)
        for kw in self.inits:
            init = a[kw]
            # brainmass asserts this too; without it a None initializer left the state None
            if init is None or (self.inits_must_be_callable and not callable(init)):
                raise AssertionError(
                    f"{kw} must be a callable initializer such as braintools.init.Constant(0.1); got {init!r}."
                )
            setattr(self, kw, init)
        self.method = a.get("method", "exp_euler")
        if self.has_method:
            method_solver(self.method)  # unknown names fail here, naming the method
        self._extra_init(a)
        if self.core is not None:
            self.core_model()  # units, shapes and domains are checked now, naming the argument

    def _make_param(self, name, value):
        return Param.init(value, self.varshape)

    def _extra_init(self, arguments: dict) -> None:
        """Hook for subclasses with extra constructor arguments."""

    # -- sizes ------------------------------------------------------------------------------------
    @property
    def n_regions(self) -> int:
        return int(np.prod(self.varshape))

    def _flat(self, x: Any) -> Any:
        """Region axes of ``x`` flattened to one (the core's (N,) layout)."""
        if jnp.ndim(x) == 0 or len(self.varshape) == 1:
            return x
        k = len(self.varshape)
        if tuple(jnp.shape(x)[-k:]) == tuple(self.varshape):
            return jnp.reshape(x, jnp.shape(x)[:-k] + (self.n_regions,))
        return x

    def _unflat(self, x: Any) -> Any:
        if len(self.varshape) == 1 or jnp.ndim(x) == 0:
            return x
        return jnp.reshape(x, jnp.shape(x)[:-1] + tuple(self.varshape))

    # -- the core model ---------------------------------------------------------------------------
    def core_kwargs(self) -> dict:
        out = {}
        for name, _ in self.params:
            value = getattr(self, name)
            value = value.value() if isinstance(value, Param) else value
            if isinstance(value, u.Quantity):
                value = u.Quantity(self._flat(value.value), value.unit)
            else:
                value = self._flat(value)
            out[self.rename.get(name, name)] = value
        out.update(self.core_extra)
        return out

    def noise_specs(self) -> dict:
        specs, enters = {}, {}
        for kw, (target, mode) in self.noises.items():
            noise = getattr(self, kw)
            if noise is not None:
                specs[target] = noise.to_core()
                enters[target] = mode
        return specs, enters

    def core_model(self):
        """The functional model with the current parameter values (and noise attached)."""
        override = self.__dict__.get("_core_override")
        if override is not None:
            return override
        core = _built_core(self, self.core, self.n_regions, self.core_kwargs())
        specs, enters = self.noise_specs()
        if specs:
            core = core_call(core_noise.with_noise, core, specs, enters=enters)
        return core

    def solver(self):
        if self.fixed_solver is not None:
            return self.fixed_solver()
        return method_solver(self.method)

    @property
    def stochastic(self) -> bool:
        return any(getattr(self, kw) is not None for kw in self.noises)

    # -- states -----------------------------------------------------------------------------------
    def state_names(self) -> tuple[str, ...]:
        return tuple(self.core.state_names)

    def _initializer(self, state: str):
        for kw, s in self.inits.items():
            if s == state:
                return getattr(self, kw)
        return binit.Constant(0.0 if not self.state_units.get(state) else u.Quantity(0.0, self.state_units[state]))

    def init_state(self, batch_size: int | None = None, **kwargs: Any) -> None:
        for name in self.state_names():
            value = binit.param(self._initializer(name), self.varshape, batch_size, allow_scalar=False)
            unit = self.state_units.get(name, "")
            if unit and not isinstance(value, u.Quantity):
                value = u.Quantity(value, unit)
            self._set_state(name, value)
        if self.core is None:
            self._batch = batch_size
            return
        self._init_stepper(batch_size)

    def _set_state(self, name: str, value: Any) -> None:
        existing = vars(self).get(name)
        if isinstance(existing, HiddenState):
            existing.value = value
        else:
            setattr(self, name, HiddenState(value))

    def _require_states(self):
        missing = [n for n in self.state_names() if not isinstance(vars(self).get(n), State)]
        if missing:
            raise ValueError(
                f"{type(self).__name__} has no state yet: call init_all_states() (or run it with a "
                "Simulator) before update()."
            )

    def _core_unit(self, core, name: str) -> str:
        units = dict(getattr(core, "state_units", {}))
        return units.get(name, "")

    def to_core_state(self, core=None) -> dict:
        """``{core state: canonical magnitude}`` from the facade's states (noise states included)."""
        core = self.core_model() if core is None else core
        out = {}
        for name in self.state_names():
            out[name] = self._flat(to_magnitude(getattr(self, name).value, self._core_unit(core, name), name))
        for target, noise in self._noise_objects().items():
            value = getattr(noise, "x", None)
            key = f"{target}_noise"
            if key in core.state_names:
                if isinstance(value, State):
                    out[key] = self._flat(to_magnitude(value.value, self._core_unit(core, key), key))
                else:
                    out[key] = self._noise_init(core, key)
        return out

    def _noise_init(self, core, key):
        spec = core.noise[key[: -len("_noise")]]
        value = spec.init(self.n_regions)
        batch = getattr(self, "_batch", None)
        return value if batch is None else jnp.broadcast_to(value, (batch,) + value.shape)

    def _noise_objects(self) -> dict:
        out = {}
        for kw, (target, _) in self.noises.items():
            noise = getattr(self, kw)
            if noise is not None:
                out[target] = noise
        return out

    def from_core_state(self, state: Mapping, core=None) -> None:
        """Write a core state dict (canonical magnitudes) into the facade's states."""
        core = self.core_model() if core is None else core
        for name in self.state_names():
            self._set_state(name, self._to_facade(core, name, state[name]))
        for target, noise in self._noise_objects().items():
            key = f"{target}_noise"
            if key in state:
                unit = self._core_unit(core, key)
                value = self._unflat(state[key]) if jnp.ndim(state[key]) else state[key]
                value = u.Quantity(value, unit) if unit else value
                if isinstance(getattr(noise, "x", None), State):
                    noise.x.value = value
                else:
                    noise.x = HiddenState(value)

    def _to_facade(self, core, name, value):
        value = self._unflat(value)
        cu = self._core_unit(core, name)
        fu = self.state_units.get(name, "")
        if cu:
            q = u.Quantity(value, cu)
            return q.to(fu) if fu else q
        return u.Quantity(value, fu) if fu else value

    # -- stepping ---------------------------------------------------------------------------------
    def core_inputs(self, args: tuple, kwargs: dict | None = None, core=None) -> dict:
        """``update``'s arguments as the core's named inputs (canonical units)."""
        try:
            bound = self._update_signature.bind(self, *args, **(kwargs or {}))
        except TypeError as err:
            raise TypeError(f"{type(self).__name__}.update{self._update_signature}: {err}") from None
        bound.apply_defaults()
        core = self.core if core is None else core
        units = dict(getattr(core, "input_units", {}) or {})
        out = {}
        for (arg, _), name in zip(self.update_args, self.inputs):
            value = bound.arguments[arg]
            if value is None or name is None:
                continue
            value = to_magnitude(value, _canonical_unit(units.get(name, "dimensionless")), arg)
            out[name] = self._flat(jnp.asarray(value, dtype=jnp.result_type(float)))
        return out

    def update(self, *args: Any, **kwargs: Any) -> Any:
        self._require_states()
        return self._core_step(args, kwargs)

    def _output(self, core):
        spec = self.output
        if isinstance(spec, tuple):
            return tuple(self._read(core, s) for s in spec)
        return self._read(core, spec)

    def _read(self, core, name):
        if name in self.state_names():
            return getattr(self, name).value
        return self.observe(name, core)

    def observe(self, name: str, core=None, **inputs: Any):
        """A core observable (``eeg``, ``lfp``, ``H_e``, ...) of the current state."""
        core = self.core_model() if core is None else core
        state = self.to_core_state(core)
        inner = getattr(core, "model", core)
        inner_state = {k: state[k] for k in inner.state_names}
        fn = getattr(inner, name)
        value = fn(inner_state, **inputs) if inputs else fn(inner_state)
        value = self._unflat(value)
        unit = self.observable_unit(name, core)
        return u.Quantity(value, unit) if unit else value

    def observable_unit(self, name: str, core=None) -> str:
        """brainmass's unit of an observable (``''``: dimensionless)."""
        if name in self.observable_units:
            return self.observable_units[name]
        core = self.core if core is None else core
        inner = getattr(core, "model", core)
        return dict(getattr(inner, "observable_units", {}) or {}).get(name, "")

    def derivative_add_names(self) -> tuple[str, ...]:
        """brainmass's names of ``derivative``'s trailing arguments: one per noise keyword that
        enters a derivative (``noise_V`` -> ``add_V``), in the constructor's order."""
        if self.derivative_adds is not None:
            return self.derivative_adds
        return tuple("add_" + kw[len("noise_"):] for kw, (_, mode) in self.noises.items() if mode == "derivative")

    def derivative(self, state: Any, t: Any = 0.0, *inputs: Any, **kwargs: Any):
        r"""brainmass's per-model vector field: ``derivative((x, y), t, *inputs) -> (dx/dt, dy/dt)``.

        The maths is the functional model's `vector_field` (the current parameter values, no
        noise: brainmass adds its noise in ``update``, not here).

        **Arguments:**

        - `state`: one array or Quantity per state, in `state_names` order (brainmass's order,
          e.g. ``(x1, y1, z, x2, y2, g)`` for Epileptor). A plain array is read in brainmass's
          unit of that state (mV for Jansen-Rit's ``M``, mV/s for ``Mv``, Hz for Montbrió's ``r``).
          A dict of the core's canonical magnitudes ``{name: array}`` is also accepted; it
          returns the core's dict of per-ms derivatives.
        - `t`: the time (a time Quantity, or a plain number in ms). The models are autonomous.
        - `inputs`: ``update``'s inputs in ``update``'s order (``None``: zero), then, for the
          models whose noise goes on the derivative (Generic2dOscillator, Epileptor,
          WongWangExcInh), the additive terms of brainmass's ``derivative``
          (`derivative_add_names`: ``add_V, add_W``; ``add1, add2``; ``add_e, add_i``), in the
          state's unit: $\dot s = f(s) + \mathrm{add}/\mathrm{ms}$. Keywords work as well.

        **Returns:** a tuple, one derivative per state in the state's unit per ms (``1/ms`` for a
        dimensionless state), as brainmass's.
        """
        core = self.core_model()
        if isinstance(state, Mapping):
            return core.vector_field(t, dict(state), self.core_inputs(inputs, kwargs, core))
        names = self.state_names()
        if not isinstance(state, (tuple, list)) or len(state) != len(names):
            got = f"a {type(state).__name__} of {len(state)}" if isinstance(state, (tuple, list)) else repr(type(state).__name__)
            raise TypeError(
                f"{type(self).__name__}.derivative: state must be a tuple of {len(names)} arrays "
                f"{names} (brainmass's order), got {got}."
            )
        # brainmass's derivative has no noise (update adds it): use the bare model
        inner = getattr(core, "model", core)
        n_inputs = len(self.update_args)
        adds = self.derivative_add_names()
        if len(inputs) > n_inputs + len(adds):
            expected = [a for a, _ in self.update_args] + list(adds)
            raise TypeError(
                f"{type(self).__name__}.derivative(state, t, {', '.join(expected)}) takes "
                f"{len(expected)} inputs, got {len(inputs)}."
            )
        added = dict(zip(adds, inputs[n_inputs:]))
        for name in adds:
            if name in kwargs:
                if name in added:
                    raise TypeError(f"{type(self).__name__}.derivative got {name} twice (by position and keyword).")
                added[name] = kwargs.pop(name)
        y = self._core_state_of(inner, dict(zip(names, state)))
        t_ms = to_magnitude(t, "ms", "t")
        f = dict(core_call(inner.vector_field, t_ms, y, self.core_inputs(inputs[:n_inputs], kwargs, inner)))
        targets = [target for _, (target, mode) in self.noises.items() if mode == "derivative"]
        for name, target in zip(adds, targets):
            if added.get(name) is not None:
                f[target] = f[target] + self._flat(to_magnitude(added[name], self._core_unit(inner, target), name))
        return tuple(self._per_ms(inner, name, f[name]) for name in names)

    def _core_state_of(self, inner, values: Mapping[str, Any]) -> dict:
        """``{state: canonical magnitude}`` of brainmass-unit state values (plain = brainmass's
        unit of that state, as `init_state` reads it)."""
        y = {}
        for name, value in values.items():
            unit = self.state_units.get(name, "")
            if unit and not isinstance(value, u.Quantity):
                value = u.Quantity(value, unit)
            y[name] = self._flat(to_magnitude(value, self._core_unit(inner, name), name))
        return y

    def observe_at(self, name: str, **states: Any):
        """The core observable ``name`` (e.g. Larter-Breakspear's ``QV``) at the given state
        values instead of the current state; states it does not read may be left out (0)."""
        core = self.core_model()
        inner = getattr(core, "model", core)
        values = {n: states.get(n, 0.0) for n in self.state_names()}
        value = self._unflat(core_call(getattr(inner, name), self._core_state_of(inner, values)))
        unit = self.observable_unit(name, core)
        return u.Quantity(value, unit) if unit else value

    def rhs_of(self, state: str, values: Mapping[str, Any]):
        r"""$\dot s$ of one state ``state`` at partial values, in brainmass's unit of ``state``
        per ms: the engine of the per-equation methods (`rhs`).

        **Arguments:**

        - `state`: the state whose derivative is returned.
        - `values`: ``{source: value}``, sources being states (in brainmass's units, plain =
          that unit), ``update`` arguments and `derivative_add_names`. A state left out is
          taken as 0: the entries of `rhs` list every state the equation reads (brainmass's
          own arguments), so the others cannot change the result. Inputs left out are 0.
        """
        names = self.state_names()
        states = tuple(0.0 if values.get(name) is None else values[name] for name in names)
        inputs = [values.get(arg) for arg, _ in self.update_args]
        inputs += [values.get(add) for add in self.derivative_add_names()]
        return self.derivative(states, 0.0, *inputs)[names.index(state)]

    def _per_ms(self, core, name: str, value: Any):
        """A core derivative (canonical unit per ms) in brainmass's unit of ``name`` per ms."""
        value = self._unflat(value)
        cu, fu = self._core_unit(core, name), self.state_units.get(name, "")
        q = (u.Quantity(value, cu) if cu else value) / u.ms
        return q.to(u.Unit(fu) / u.ms) if fu else q

    def __repr__(self):
        fields = [f"  in_size={self.varshape}", f"  out_size={self.varshape}"]
        for kw in self.inits:
            fields.append(f"  {kw}={getattr(self, kw)!r}")
        if self.has_method:
            fields.append(f"  method={self.method}")
        for name, _ in self.params:
            fields.append(f"  {name}=" + repr(getattr(self, name)).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n" + ",\n".join(fields) + "\n)"


def rhs_method(name: str, state: str, arguments: tuple):
    """brainmass's per-equation method ``name`` (e.g. ``dx(self, x, y, inp)``): the derivative
    of ``state`` from the arguments, through `NodeModel.rhs_of` (see `NodeModel.rhs`)."""
    specs = [(a, a, inspect.Parameter.empty) if isinstance(a, str) else (a + (inspect.Parameter.empty,))[:3]
             for a in arguments]
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        # an optional argument defaults to None, which rhs_of reads as zero in the right unit
        + [_param_default(arg, None if default is not inspect.Parameter.empty else default)
           for arg, _, default in specs]
    )

    def method(self, *args: Any, **kwargs: Any):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{type(self).__name__}.{name}{signature}: {err}") from None
        values = {source: bound.arguments.get(arg) for arg, source, _ in specs}
        return self.rhs_of(state, values)

    method.__name__ = method.__qualname__ = name
    method.__signature__ = signature
    method.__doc__ = (
        f"d{state}/dt (brainmass's ``{name}``), in {state}'s unit per ms, from the core model's "
        "vector field at the given values (omitted inputs: zero)."
    )
    return method


def _observable_method(name: str, doc: str):
    def method(self, *args, **kwargs):
        return self.observe(name, **kwargs)

    method.__name__ = name
    method.__doc__ = doc
    return method


# -- the models ------------------------------------------------------------------------------------------

_C0 = binit.Constant(0.0)
_U = binit.Uniform(0, 0.05)


def _xy(noise_x=True):
    return {"noise_x": ("x", "input"), "noise_y": ("y", "input")}


class XY_Oscillator(NodeModel):
    """Abstract base of the planar oscillators (``x``, ``y``); running it raises NotImplementedError."""

    params = ()
    inits = {"init_x": "x", "init_y": "y"}
    init_defaults = {"init_x": _U, "init_y": _U}
    noises = _xy()
    inputs = ("x", "y")
    update_args = (("x_inp", None), ("y_inp", None))
    output = ("x", "y")
    rhs = {"dx": ("x", ("x", "y", ("x_ext", "x_inp"))), "dy": ("y", ("y", "x", ("y_ext", "y_inp")))}


    def core_model(self):
        if self.core is None:
            own = [m for m in ("dx", "dy") if getattr(type(self), m) is not getattr(XY_Oscillator, m)]
            if own:
                # brainmass ran a subclass's own dx/dy through its exponential-Euler step; the
                # facade steps functional models only, and said just "abstract" of such a model.
                raise NotImplementedError(
                    f"{type(self).__name__} subclasses XY_Oscillator with its own {' and '.join(own)}: the "
                    f"facade does not run such a subclass (it steps the functional models). Write it as "
                    f"brainmass_eqx.AbstractXYOscillator with drift(self, x, y) -> (dx, dy) (see "
                    f"docs/howto/custom-models.md), or as a brainstate.nn.Dynamics with its own update(), "
                    f"which the facade runs as brainmass does."
                )
            raise NotImplementedError("XY_Oscillator is abstract: use HopfStep, StuartLandauStep or VanDerPolStep.")
        return super().core_model()

    def state_names(self):
        return ("x", "y")


class HopfStep(XY_Oscillator):
    r"""Supercritical Hopf normal form: $\dot x = (a - \beta r)x - w y + I_x$,
    $\dot y = (a - \beta r) y + w x + I_y$, $r = x^2 + y^2$ (brainmass's ``HopfStep``)."""

    core = core_models.Hopf
    params = (("a", 0.25), ("w", 0.2), ("beta", 1.0))
    init_defaults = {"init_x": binit.Constant(0.0), "init_y": binit.Constant(0.0)}
    rhs = {"dx": ("x", ("x", "y", ("inp", "x_inp"))), "dy": ("y", ("y", "x", ("inp", "y_inp")))}



class StuartLandauStep(XY_Oscillator):
    r"""Stuart-Landau oscillator (Hopf with $\beta = 1$; random initial state)."""

    core = core_models.StuartLandau
    params = (("a", 0.25), ("w", 0.2))



class VanDerPolStep(XY_Oscillator):
    r"""Van der Pol oscillator: $\dot x = \mu(x - x^3/3 - y) + I_x$, $\dot y = x/\mu + I_y$."""

    core = core_models.VanDerPol
    params = (("mu", 1.0),)
    rhs = {"dx": ("x", ("x", "y", ("inp", "x_inp"))), "dy": ("y", ("y", "x", ("inp", "y_inp", 0.0)))}



class FitzHughNagumoStep(NodeModel):
    """FitzHugh-Nagumo (Kostova et al. 2004 form); ``update(V_inp, w_inp) -> V``."""

    core = core_models.FitzHughNagumo
    params = (("alpha", 3.0), ("beta", 4.0), ("gamma", -1.5), ("delta", 0.0), ("epsilon", 0.5), ("tau", 20.0 * u.ms))
    noises = {"noise_V": ("V", "input"), "noise_w": ("w", "input")}
    inits = {"init_V": "V", "init_w": "w"}
    init_defaults = {"init_V": _U, "init_w": _U}
    inputs = ("V", "w")
    update_args = (("V_inp", None), ("w_inp", None))
    output = "V"
    rhs = {"dV": ("V", ("V", "w", ("inp", "V_inp"))), "dw": ("w", ("w", ("x", "V"), ("inp", "w_inp", 0.0)))}


class ThresholdLinearStep(NodeModel):
    """Threshold-linear E-I rates (Chaudhuri et al. 2015); ``update(E_inp, I_inp) -> E``.

    Deliberate difference: the I equation has the paper's sign ($-I$), see ``docs/compat.md``.
    """

    core = core_models.ThresholdLinear
    params = (("tau_E", 0.02 * u.second), ("tau_I", 0.01 * u.second), ("beta_E", 0.066), ("beta_I", 0.351))
    inits = {"init_E": "E", "init_I": "I"}
    init_defaults = {"init_E": binit.Constant(0.0), "init_I": binit.Constant(0.0)}
    noises = {"noise_E": ("E", "input"), "noise_I": ("I", "input")}
    inputs = ("E", "I")
    update_args = (("E_inp", None), ("I_inp", None))
    output = "E"
    has_method = False

    inits_first = True


class LinearStep(NodeModel):
    """TVB's linear node $\\dot x = (\\gamma x + I)/\\mathrm{ms}$; ``update(x_inp) -> x``."""

    core = core_models.Linear
    params = (("gamma", -10.0),)
    inits = {"init_x": "x"}
    init_defaults = {"init_x": binit.Constant(0.01)}
    noises = {"noise_x": ("x", "input")}
    inputs = ("x",)
    update_args = (("x_inp", None),)
    output = "x"
    rhs = {"dx": ("x", ("x", "x_inp"))}

    inits_first = True


class Generic2dOscillatorStep(NodeModel):
    """TVB's generic planar oscillator; noise goes on the derivatives (TVB style)."""

    core = core_models.Generic2dOscillator
    params = (("a", -2.0), ("b", -10.0), ("c", 0.0), ("d", 0.02), ("e", 3.0), ("f", 1.0), ("g", 0.0),
              ("alpha", 1.0), ("beta", 1.0), ("gamma", 1.0), ("I", 0.0), ("tau", 1.0))
    inits = {"init_V": "V", "init_W": "W"}
    init_defaults = {"init_V": binit.Constant(0.0), "init_W": binit.Constant(0.0)}
    noises = {"noise_V": ("V", "derivative"), "noise_W": ("W", "derivative")}
    inputs = ("V",)
    update_args = (("V_inp", None),)
    output = "V"
    rhs = {"dV": ("V", ("V", "W", "V_inp", ("add", "add_V", 0.0))), "dW": ("W", ("W", "V", ("add", "add_W", 0.0)))}

    inits_first = True


class LorenzStep(NodeModel):
    """Lorenz 1963 system; ``update(x_inp) -> x``."""

    core = core_models.Lorenz
    params = (("sigma", 10.0), ("rho", 28.0), ("beta", 8.0 / 3.0))
    inits = {"init_x": "x", "init_y": "y", "init_z": "z"}
    init_defaults = {k: binit.Constant(1.0) for k in inits}
    noises = {"noise_x": ("x", "input")}
    inputs = ("x",)
    update_args = (("x_inp", None),)
    output = "x"
    rhs = {"dx": ("x", ("x", "y", "x_inp")), "dy": ("y", ("y", "x", "z")), "dz": ("z", ("z", "x", "y"))}

    inits_first = True


# -- Wilson-Cowan ------------------------------------------------------------------------------------

_WC_EI = (("tau_E", 1.0 * u.ms), ("a_E", 1.2), ("theta_E", 2.8), ("tau_I", 1.0 * u.ms), ("a_I", 1.0), ("theta_I", 4.0))


class _WilsonCowanBase(NodeModel):
    inits = {"rE_init": "rE", "rI_init": "rI"}
    init_defaults = {"rE_init": binit.Constant(0.0), "rI_init": binit.Constant(0.0)}
    noises = {"noise_E": ("rE", "input"), "noise_I": ("rI", "input")}
    inputs = ("rE", "rI")
    update_args = (("rE_inp", None), ("rI_inp", None))
    output = "rE"
    rename = {}
    rhs = {"drE": ("rE", ("rE", "rI", ("ext", "rE_inp"))), "drI": ("rI", ("rI", "rE", ("ext", "rI_inp")))}

    def F(self, x, a, theta):
        r"""brainmass's sigmoid $F(x; a, \theta) = s(a(x - \theta)) - s(-a\theta)$ ($s$ the
        logistic function, so $F(0) = 0$), with the gain ``a`` and threshold ``theta`` given."""
        return shifted_sigmoid(x, a, theta)



def _wc(name, core, params, doc, **extra):
    attrs = {"core": core, "params": params, "__doc__": doc, "__module__": "brainmass"}
    attrs.update(extra)
    return type(name, (_WilsonCowanBase,), attrs)


_W4 = (("wEE", 12.0), ("wIE", 4.0), ("wEI", 13.0), ("wII", 11.0))

WilsonCowanStep = _wc("WilsonCowanStep", core_models.WilsonCowan, _WC_EI + _W4 + (("r", 1.0),),
                      "Wilson-Cowan E-I rates; ``update(rE_inp, rI_inp) -> rE`` (initializers ``rE_init``, ``rI_init``).")
WilsonCowanNoSaturationStep = _wc("WilsonCowanNoSaturationStep", core_models.WilsonCowanNoSaturation, _WC_EI + _W4,
                                  "Wilson-Cowan without refractory saturation.")
WilsonCowanSymmetricStep = _wc("WilsonCowanSymmetricStep", core_models.WilsonCowanSymmetric,
                               (("tau", 1.0 * u.ms), ("a", 1.1), ("theta", 3.4)) + _W4 + (("r", 1.0),),
                               "Wilson-Cowan with shared time constant, gain and threshold.")
WilsonCowanSimplifiedStep = _wc("WilsonCowanSimplifiedStep", core_models.WilsonCowanSimplified,
                                _WC_EI + (("w_exc", 8.0), ("w_inh", 12.0), ("r", 1.0)),
                                "Wilson-Cowan where both populations receive the same drive.")
WilsonCowanLinearStep = _wc("WilsonCowanLinearStep", core_models.WilsonCowanLinear,
                            (("tau_E", 1.0 * u.ms), ("tau_I", 1.0 * u.ms), ("wEE", 0.8), ("wIE", 0.3), ("wEI", 1.0),
                             ("wII", 0.85), ("r", 1.0)),
                            "Wilson-Cowan with threshold-linear transfer.")
_DIV = _WC_EI + (("wEE", 6.0), ("wIE", 2.0), ("wEI", 6.5), ("wII", 5.5), ("r", 1.0), ("sigma_E", 1.0), ("sigma_I", 1.0))
WilsonCowanDivisiveStep = _wc("WilsonCowanDivisiveStep", core_models.WilsonCowanDivisive, _DIV,
                              "Wilson-Cowan with divisive output normalisation.")
WilsonCowanDivisiveInputStep = _wc("WilsonCowanDivisiveInputStep", core_models.WilsonCowanDivisiveInput, _DIV,
                                   "Wilson-Cowan with divisive input normalisation.")
def _delayed_rhs(name: str):
    def method(self, *args, **kwargs):
        raise NotImplementedError(
            f"WilsonCowanDelayedStep.{name}: brainmass's {name} reads the delayed rates from its delay "
            "buffers, which the facade keeps inside the solver's history (read during a step only); "
            "per-equation values at given rates would silently drop the delays. Run the model "
            "(update or a Simulator) for the delayed dynamics."
        )

    method.__name__ = name
    return method


WilsonCowanDelayedStep = _wc(
    "WilsonCowanDelayedStep", core_models.WilsonCowanDelayed,
    _WC_EI + _W4 + (("r", 1.0), ("delay_EE", 2.0 * u.ms), ("delay_IE", 2.0 * u.ms), ("delay_EI", 1.5 * u.ms),
                    ("delay_II", 1.5 * u.ms)),
    "Wilson-Cowan with synaptic delays. Deliberate difference: the delay history is updated "
    "every step (brainmass's Simulator never wrote its buffers, so its delayed terms stayed at "
    "their initial value); see docs/compat.md.",
    drE=_delayed_rhs("drE"), drI=_delayed_rhs("drI"),
)


class WilsonCowanAdaptiveStep(_WilsonCowanBase):
    """Wilson-Cowan with spike-frequency adaptation (states rE, rI, aE, aI)."""

    core = core_models.WilsonCowanAdaptive
    params = _WC_EI + _W4 + (("r", 1.0), ("tau_aE", 100.0 * u.ms), ("tau_aI", 80.0 * u.ms), ("b_E", 0.1), ("b_I", 0.08))
    inits = {"rE_init": "rE", "rI_init": "rI", "aE_init": "aE", "aI_init": "aI"}
    init_defaults = {k: binit.Constant(0.0) for k in inits}
    rhs = {"drE": ("rE", ("rE", "rI", "aE", ("ext", "rE_inp"))), "drI": ("rI", ("rI", "rE", "aI", ("ext", "rI_inp"))),
           "daE": ("aE", ("aE", "rE")), "daI": ("aI", ("aI", "rI"))}


class WilsonCowanThreePopBase(_WilsonCowanBase):
    """Abstract base of the three-population Wilson-Cowan models (E, I, M)."""

    inits = {"rE_init": "rE", "rI_init": "rI", "rM_init": "rM"}
    init_defaults = {k: binit.Constant(0.0) for k in inits}
    noises = {"noise_E": ("rE", "input"), "noise_I": ("rI", "input"), "noise_M": ("rM", "input")}
    inputs = ("rE", "rI", "rM")
    update_args = (("rE_inp", None), ("rI_inp", None), ("rM_inp", None))
    rhs = {"drE": ("rE", ("rE", "rI", "rM", ("ext", "rE_inp"))), "drI": ("rI", ("rI", "rE", "rM", ("ext", "rI_inp"))),
           "drM": ("rM", ("rM", "rE", "rI", ("ext", "rM_inp")))}

    def core_model(self):
        if self.core is None:
            raise NotImplementedError("WilsonCowanThreePopBase is abstract: use WilsonCowanThreePopulationStep.")
        return super().core_model()

    def state_names(self):
        return ("rE", "rI", "rM")


class WilsonCowanThreePopulationStep(WilsonCowanThreePopBase):
    """Wilson-Cowan with a third (modulatory) population M."""

    core = core_models.WilsonCowanThreePopulation
    params = _WC_EI + (("tau_M", 2.0 * u.ms), ("a_M", 1.0), ("theta_M", 3.5)) + _W4 + (
        ("wME", 8.0), ("wMI", 6.0), ("wEM", 4.0), ("wIM", 2.0), ("wMM", 2.0), ("r", 1.0))


# -- physiological models ------------------------------------------------------------------------------------


class _Identity:
    """brainmass's ``jansen_rit.Identity`` firing-rate scale."""

    def __call__(self, x):
        return x

    def __repr__(self):
        return "Identity()"


class JansenRitStep(NodeModel):
    """Jansen-Rit cortical column; ``update(M_inp=0 mV, E_inp=0 Hz, I_inp=0 mV) -> eeg()`` (mV).

    States ``M, E, I`` in mV and ``Mv, Ev, Iv`` in mV/s, as in brainmass.
    """

    core = core_models.JansenRit
    params = (("Ae", 3.25 * u.mV), ("Ai", 22.0 * u.mV), ("be", 100.0 * u.Hz), ("bi", 50.0 * u.Hz), ("C", 135.0),
              ("a1", 1.0), ("a2", 0.8), ("a3", 0.25), ("a4", 0.25), ("s_max", 5.0 * u.Hz), ("v0", 6.0 * u.mV), ("r", 0.56))
    inits = {"M_init": "M", "E_init": "E", "I_init": "I", "Mv_init": "Mv", "Ev_init": "Ev", "Iv_init": "Iv"}
    init_defaults = {
        "M_init": binit.Constant(0.0 * u.mV), "E_init": binit.Constant(0.0 * u.mV), "I_init": binit.Constant(0.0 * u.mV),
        "Mv_init": binit.Constant(0.0 * u.mV / u.second), "Ev_init": binit.Constant(0.0 * u.mV / u.second),
        "Iv_init": binit.Constant(0.0 * u.mV / u.second),
    }
    noises = {"noise_E": ("E", "input"), "noise_I": ("I", "input"), "noise_M": ("M", "input")}
    inputs = ("M", "E", "I")
    update_args = (("M_inp", 0.0 * u.mV), ("E_inp", 0.0 * u.Hz), ("I_inp", 0.0 * u.mV))
    rhs = {"dMv": ("Mv", ("Mv", "M", "E", "I", ("inp", "M_inp"))), "dEv": ("Ev", ("Ev", "M", "E", ("inp", "E_inp", 0.0))),
           "dIv": ("Iv", ("Iv", "M", "I", ("inp", "I_inp")))}
    output = "eeg"
    state_units = {"M": "mV", "E": "mV", "I": "mV", "Mv": "mV / s", "Ev": "mV / s", "Iv": "mV / s"}
    observable_units = {"eeg": "mV"}

    @classmethod
    def signature_order(cls):
        return (list(cls.params) + [(k, cls.init_defaults[k]) for k in cls.inits] + [("fr_scale", _Identity())]
                + [(k, None) for k in cls.noises] + [("method", "exp_euler")])

    def _extra_init(self, a):
        if not isinstance(a["fr_scale"], _Identity):
            raise NotImplementedError(
                "JansenRitStep(fr_scale=...): only the identity firing-rate scale is supported by the compat facade."
            )
        self.fr_scale = a["fr_scale"]

    def S(self, v):
        r"""The firing-rate sigmoid $S(v) = s_{max} / (1 + e^{r (v_0 - v)})$ in Hz, of a
        membrane potential ``v`` (a voltage; plain = mV), with the current parameters."""
        core = self.core_model()
        inner = getattr(core, "model", core)
        v = to_magnitude(v, "mV", "v")
        # the parameters in Hz (s_max), mV (v0) and 1/mV (r): the core's canonical units
        return u.Quantity(self._unflat(rate_sigmoid(self._flat(v), inner.s_max, inner.v0, inner.r)), "Hz")

    def eeg(self):
        """The EEG proxy ``E - I`` (mV)."""
        return self.observe("eeg")


class WongWangStep(NodeModel):
    """Reduced Wong-Wang decision model; ``update(coherence=0.) -> (r1, r2)`` in Hz."""

    core = core_models.WongWang
    params = (("tau_S", 0.1 * u.second), ("gamma", 0.641), ("a", 270.0 * u.Hz / u.nA), ("theta", 0.31 * u.nA),
              ("J_N11", 0.2609 * u.nA), ("J_N22", 0.2609 * u.nA), ("J_N12", 0.0497 * u.nA), ("J_N21", 0.0497 * u.nA),
              ("J_A_ext", 0.0002243 * u.nC), ("mu_0", 30.0 * u.Hz), ("I_0", 0.3255 * u.nA))
    noises = {"noise_s1": ("I1", "input"), "noise_s2": ("I2", "input")}
    inputs = ("coherence",)
    update_args = (("coherence", 0.0),)
    output = ("r1", "r2")
    has_method = False


    def phi(self, I):
        """The f-I curve: the firing rate (Hz) of a current ``I`` (nA; plain = nA)."""
        core = self.core_model()
        inner = getattr(core, "model", core)
        return u.Quantity(self._unflat(inner.phi(self._flat(to_magnitude(I, "nA", "I")))), "Hz")

    def compute_inputs(self, coherence: Any = 0.0, noise_1_val: Any = 0.0 * u.nA, noise_2_val: Any = 0.0 * u.nA):
        """The total currents ``(I1, I2)`` (nA) at the current state: recurrent, stimulus
        (``coherence``), background and the noise currents ``noise_1_val``, ``noise_2_val``."""
        self._require_states()
        core = self.core_model()
        inner = getattr(core, "model", core)
        state = self.to_core_state(core)
        inputs = {"coherence": self._flat(to_magnitude(coherence, "", "coherence")),
                  "I1": self._flat(to_magnitude(noise_1_val, "nA", "noise_1_val")),
                  "I2": self._flat(to_magnitude(noise_2_val, "nA", "noise_2_val"))}
        currents = inner.currents({k: state[k] for k in inner.state_names}, inputs)
        return tuple(u.Quantity(self._unflat(current), "nA") for current in currents)

    def _gating_derivative(self, gating: Any, rate: Any, names: tuple[str, str]):
        core = self.core_model()
        inner = getattr(core, "model", core)
        per_ms = inner.gating_derivative(to_magnitude(gating, "", names[0]), to_magnitude(rate, "Hz", names[1]))
        return u.Quantity(per_ms * 1000.0, "Hz")

    def dS1_dt(self, S1: Any, r1: Any):
        """brainmass's ``dS1/dt = -S1/tau_S + (1 - S1) gamma r1`` in Hz (``r1`` in Hz; plain = Hz)."""
        return self._gating_derivative(S1, r1, ("S1", "r1"))

    def dS2_dt(self, S2: Any, r2: Any):
        """brainmass's ``dS2/dt = -S2/tau_S + (1 - S2) gamma r2`` in Hz (``r2`` in Hz; plain = Hz)."""
        return self._gating_derivative(S2, r2, ("S2", "r2"))

    def get_decision(self, threshold: Any = 15.0 * u.Hz):
        """+1 if r1 > threshold and r1 > r2, -1 if r2 wins, else 0 (zero coherence, no noise)."""
        core = self.core_model()
        inner = getattr(core, "model", core)
        state = self.to_core_state(core)
        thr = to_magnitude(threshold, "Hz", "threshold")
        return inner.get_decision({k: state[k] for k in inner.state_names}, thr)


class WongWangExcInhStep(NodeModel):
    """Reduced Wong-Wang E-I model (Deco et al. 2014); ``update(coupling=None) -> S_e``."""

    core = core_models.WongWangExcInh
    params = (("a_e", 310.0), ("b_e", 125.0), ("d_e", 0.160), ("gamma_e", 0.641 / 1000), ("tau_e", 100.0), ("w_p", 1.4),
              ("W_e", 1.0), ("a_i", 615.0), ("b_i", 177.0), ("d_i", 0.087), ("gamma_i", 1.0 / 1000), ("tau_i", 10.0),
              ("W_i", 0.7), ("J_N", 0.15), ("J_i", 1.0), ("I_o", 0.382), ("I_ext", 0.0), ("G", 2.0), ("lamda", 0.0))
    inits = {"init_S_e": "S_e", "init_S_i": "S_i"}
    init_defaults = {"init_S_e": binit.Constant(0.001), "init_S_i": binit.Constant(0.001)}
    noises = {"noise_e": ("S_e", "derivative"), "noise_i": ("S_i", "derivative")}
    inputs = ("coupling",)
    update_args = (("coupling", None),)
    rhs = {"dS_e": ("S_e", ("S_e", "S_i", "coupling", ("add", "add_e", 0.0))),
           "dS_i": ("S_i", ("S_i", "S_e", "coupling", ("add", "add_i", 0.0)))}
    output = "S_e"
    # brainmass 0.1.1 returns the rates as plain arrays (numbers in Hz), not Quantities; its own
    # tests apply jnp.isfinite / np.asarray to them.
    observable_units = {"H_e": "", "H_i": ""}

    inits_first = True

    def H_e(self, coupling: Any = 0.0):
        """Excitatory firing rate at the current state: a plain array of Hz values (as brainmass)."""
        return self.observe("H_e", coupling=coupling) if coupling is not None else self.observe("H_e")

    def H_i(self, coupling: Any = 0.0):
        """Inhibitory firing rate at the current state: a plain array of Hz values (as brainmass)."""
        return self.observe("H_i", coupling=coupling) if coupling is not None else self.observe("H_i")


class MontbrioPazoRoxinStep(NodeModel):
    """QIF exact mean field (Montbrió, Pazó & Roxin 2015); ``r`` in Hz.

    Deliberate difference: $2 v r + I_r$ is divided by ``tau`` (brainmass: by 1 ms); the
    two agree at the default ``tau = 1 ms``.
    """

    core = core_models.MontbrioPazoRoxin
    params = (("tau", 1.0 * u.ms), ("eta", -5.0), ("delta", 1.0 * u.Hz), ("J", 15.0))
    inits = {"init_r": "r", "init_v": "v"}
    init_defaults = {"init_r": binit.Uniform(0 * u.Hz, 0.05 * u.Hz), "init_v": _U}
    noises = {"noise_r": ("r", "input"), "noise_v": ("v", "input")}
    inputs = ("r", "v")
    update_args = (("r_inp", None), ("v_inp", None))
    output = "r"
    rhs = {"dr": ("r", ("r", "v", ("r_ext", "r_inp"))), "dv": ("v", ("v", "r", ("v_ext", "v_inp")))}
    state_units = {"r": "Hz"}

    inits_first = True


class CoombesByrneStep(NodeModel):
    """Next-generation neural mass with conductance synapses (Coombes & Byrne 2019)."""

    core = core_models.CoombesByrne
    params = (("Delta", 1.0), ("eta", 2.0), ("k", 1.0), ("v_syn", -4.0))
    inits = {"init_r": "r", "init_v": "v"}
    init_defaults = {"init_r": binit.Constant(0.1), "init_v": binit.Constant(0.0)}
    noises = {"noise_r": ("r", "input"), "noise_v": ("v", "input")}
    inputs = ("r", "v")
    update_args = (("r_inp", None), ("v_inp", None))
    output = "r"
    rhs = {"dr": ("r", ("r", "v", ("r_ext", "r_inp"))), "dv": ("v", ("v", "r", ("v_ext", "v_inp")))}

    inits_first = True


class LarterBreakspearStep(NodeModel):
    """Larter-Breakspear conductance-based mean field (TVB); ``update(V_inp) -> V``."""

    core = core_models.LarterBreakspear
    params = (("gCa", 1.1), ("gK", 2.0), ("gL", 0.5), ("gNa", 6.7), ("TCa", -0.01), ("TK", 0.0), ("TNa", 0.3),
              ("d_Ca", 0.15), ("d_K", 0.3), ("d_Na", 0.15), ("VCa", 1.0), ("VK", -0.7), ("VL", -0.5), ("VNa", 0.53),
              ("phi", 0.7), ("tau_K", 1.0), ("aee", 0.4), ("aei", 2.0), ("aie", 2.0), ("ane", 1.0), ("ani", 0.4),
              ("b", 0.1), ("C", 0.1), ("Iext", 0.3), ("rNMDA", 0.25), ("VT", 0.0), ("d_V", 0.65), ("ZT", 0.0),
              ("d_Z", 0.7), ("QV_max", 1.0), ("QZ_max", 1.0), ("t_scale", 1.0))
    inits = {"init_V": "V", "init_W": "W", "init_Z": "Z"}
    init_defaults = {k: binit.Constant(0.0) for k in inits}
    noises = {"noise_V": ("V", "input")}
    inputs = ("V",)
    update_args = (("V_inp", None),)
    output = "V"
    rhs = {"dV": ("V", ("V", "W", "Z", "V_inp")), "dW": ("W", ("W", "V")), "dZ": ("Z", ("Z", "V"))}

    def QV(self, V):
        """The excitatory firing rate $Q_V$ at membrane potential ``V``."""
        return self.observe_at("QV", V=V)

    def QZ(self, Z):
        """The inhibitory firing rate $Q_Z$ at inhibitory potential ``Z``."""
        return self.observe_at("QZ", Z=Z)

    inits_first = True


class EpileptorStep(NodeModel):
    """The 6-D Epileptor (Jirsa et al. 2014); ``update(x1_inp, x2_inp) -> lfp()`` (x2 - x1).

    Noise goes on the derivatives of x1 and x2 (TVB style), as in brainmass.
    """

    core = core_models.Epileptor
    params = (("a", 1.0), ("b", 3.0), ("c", 1.0), ("d", 5.0), ("r", 0.00035), ("x0", -1.6), ("Iext", 3.1),
              ("slope", 0.0), ("Iext2", 0.45), ("tau", 10.0), ("aa", 6.0), ("bb", 2.0), ("Kvf", 0.0), ("Kf", 0.0),
              ("Ks", 0.0), ("tt", 1.0), ("modification", 0.0))
    inits = {"init_x1": "x1", "init_y1": "y1", "init_z": "z", "init_x2": "x2", "init_y2": "y2", "init_g": "g"}
    init_defaults = {"init_x1": binit.Constant(-1.5), "init_y1": binit.Constant(-10.0), "init_z": binit.Constant(3.5),
                     "init_x2": binit.Constant(-1.0), "init_y2": binit.Constant(0.0), "init_g": binit.Constant(0.0)}
    noises = {"noise_x1": ("x1", "derivative"), "noise_x2": ("x2", "derivative")}
    derivative_adds = ("add1", "add2")  # brainmass's names in EpileptorStep.derivative
    inputs = ("x1", "x2")
    update_args = (("x1_inp", None), ("x2_inp", None))
    output = "lfp"
    rhs = {"dx1": ("x1", ("x1", "y1", "z", "x2", "x1_inp", ("add", "add1", 0.0))), "dy1": ("y1", ("y1", "x1")),
           "dz": ("z", ("z", "x1", "x1_inp")), "dx2": ("x2", ("x2", "y2", "z", "g", "x2_inp", ("add", "add2", 0.0))),
           "dy2": ("y2", ("y2", "x2")), "dg": ("g", ("g", "x1"))}

    inits_first = True

    def lfp(self):
        """The LFP proxy ``x2 - x1``."""
        return self.observe("lfp")


class KuramotoNetwork(NodeModel):
    """(Sakaguchi-)Kuramoto phase oscillators with built-in all-to-all / ``conn`` coupling."""

    core = core_models.Kuramoto
    params = (("omega", 0.0), ("K", 0.0), ("alpha", 0.0))
    inits = {"init_theta": "theta"}
    init_defaults = {"init_theta": binit.Uniform(0.0, 2 * math.pi)}
    inits_must_be_callable = False
    noises = {"noise_theta": ("theta", "input")}
    inputs = ("theta",)
    update_args = (("theta_inp", None),)
    output = "theta"
    has_method = False
    fixed_solver = ExponentialEuler

    @classmethod
    def signature_order(cls):
        return list(cls.params) + [("conn", None), ("normalize_by_n", True), ("exclude_self", True),
                                   ("noise_theta", None), ("init_theta", cls.init_defaults["init_theta"])]

    def _extra_init(self, a):
        conn = a["conn"]
        if conn is not None:
            conn = np.asarray(u.get_magnitude(conn))
            n = self.n_regions
            # Raised here, not at the first update as brainmass did, in brainmass's words
            # (code written against brainmass matches them).
            if conn.ndim == 1 and conn.size % n:
                raise ValueError(
                    f"Flattened connection length {conn.size} is not divisible by N={n}: conn must have shape "
                    f"({n}, {n}) or ({n * n},)."
                )
            if conn.ndim == 1 and conn.size != n * n:
                raise ValueError(
                    f"For Kuramoto, expected square connectivity (N={n}); got N_in={conn.size // n}: conn must "
                    f"have shape ({n}, {n}) or ({n * n},)."
                )
            if conn.ndim not in (1, 2):
                raise ValueError(
                    f"Connectivity must be 1D flattened or 2D matrix; got shape {conn.shape}: conn must have shape "
                    f"({n}, {n}) or ({n * n},)."
                )
            if conn.ndim == 2 and conn.shape != (n, n):
                raise ValueError(f"Connectivity must be square (N,N)={(n, n)}; got {conn.shape}.")
            conn = conn.reshape(n, n)
        self.conn = conn
        self.normalize_by_n = bool(a["normalize_by_n"])
        self.exclude_self = bool(a["exclude_self"])

    def core_kwargs(self):
        kw = super().core_kwargs()
        kw.update(conn=self.conn, normalize_by_n=self.normalize_by_n, exclude_self=self.exclude_self)
        return kw

    def dtheta(self, theta: Any, drive: Any):
        """brainmass's ``dtheta/dt = omega + drive`` (per ms; ``drive`` holds the coupling and
        the input, so ``theta`` is unused, as there)."""
        omega = jnp.asarray(to_magnitude(self.omega.value(), "rad/ms", "omega"))
        return u.Quantity(omega + to_magnitude(drive, "", "drive"), "1/ms")


class HORNStep(NodeModel):
    """Harmonic-oscillator recurrent unit, symplectic Euler; ``update(inputs) -> x``."""

    core = core_models.HORN
    params = (("alpha", 0.04), ("omega", 2 * math.pi / 28), ("gamma", 0.01), ("v", 0.0))
    inits = {"x_init": "x", "y_init": "y"}
    init_defaults = {"x_init": binit.Constant(0.0), "y_init": binit.Constant(0.0)}
    noises = {}
    inputs = ("input",)
    update_args = (("inputs", inspect.Parameter.empty),)
    output = "x"
    has_method = False
    fixed_solver = core_models.SymplecticEuler

    inits_first = True

    def solver(self):
        return core_models.SymplecticEuler()

    def update(self, inputs):
        return super().update(inputs)


# brainmass ignores a time unit on dt for HORN (it divides dt by 1 ms); the core does the same.

STEP_MODELS = {
    cls.__name__: cls
    for cls in (
        XY_Oscillator, HopfStep, StuartLandauStep, VanDerPolStep, FitzHughNagumoStep, ThresholdLinearStep, LinearStep,
        Generic2dOscillatorStep, LorenzStep, WilsonCowanStep, WilsonCowanNoSaturationStep, WilsonCowanSymmetricStep,
        WilsonCowanSimplifiedStep, WilsonCowanLinearStep, WilsonCowanDivisiveStep, WilsonCowanDivisiveInputStep,
        WilsonCowanDelayedStep, WilsonCowanAdaptiveStep, WilsonCowanThreePopBase, WilsonCowanThreePopulationStep,
        JansenRitStep, WongWangStep, WongWangExcInhStep, MontbrioPazoRoxinStep, CoombesByrneStep,
        LarterBreakspearStep, EpileptorStep, KuramotoNetwork, HORNStep,
    )
}

for _cls in STEP_MODELS.values():
    _cls.__module__ = "brainmass"
