"""brainmass's ``Simulator`` on the functional core.

``Simulator(model, dt).run(duration, inputs=, monitors=, transient=, sample_every=,
batch_size=, init_states=, jit=)`` keeps brainmass's semantics (step counting and its
warning, ``ts`` at step ends, ``(T, B, ...)`` batches, the error messages) and
dispatches:

- a facade node model or `Network` runs as one call of `brainmass_eqx.simulate` on the
  functional model (noise, delays and the exponential-Euler scheme included). The call is
  compiled once per model structure, shapes and run configuration and cached: a second
  ``run`` (even on a new model object with the same structure) does not recompile
  (`TRACE_COUNTS` counts the traces);
- any other ``brainstate.nn.Module`` (user-defined dynamics, stand-alone noise) runs
  brainmass's loop, ``model.update`` once per step inside ``for_loop``, compiled with
  the compat ``jit`` and cached per model and configuration.
"""

from __future__ import annotations

import collections
import math
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import user_stacklevel
from .._simulate import simulate
from . import brainunit as u
from ._models import NodeModel, dt_ms
from .brainstate import environ, random, transform as bst
from .brainstate._state import DISCOVERING, State, frame
from .brainstate.nn import Param, init_all_states

__all__ = ["Simulator", "TRACE_COUNTS"]

#: Number of times each compiled runner was traced (tests check that a second run does not
#: recompile): ``'core'`` for facade models on `simulate`, ``'generic'`` for other modules.
TRACE_COUNTS: collections.Counter = collections.Counter()


def is_core_model(model: Any) -> bool:
    """Whether ``model`` runs on `brainmass_eqx.simulate` (a facade node or network)."""
    if isinstance(model, NodeModel):
        return model.core is not None
    return bool(getattr(model, "_is_core_network", False))


# -- monitors --------------------------------------------------------------------------------------

_MONITOR_UNITS: dict[tuple[int, int], Any] = {}


class _FacadeMonitor:
    """A brainmass monitor callable ``fn(model)`` evaluated inside the core's solve.

    The facade model's states are bound to the solver's state for the call (and restored
    afterwards); a Quantity result is recorded as its magnitude, its unit kept aside.
    """

    def __init__(self, model: Any, fn: Callable, core: Any = None):
        self.model = model
        self.fn = fn
        self.core = core
        self.key = (id(model), id(fn))

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _FacadeMonitor) and other.key == self.key

    def __call__(self, core_model, state):
        with frame() as fr, self.model.using_core(self.core):
            try:
                self.model.from_core_state(state, self.core)
                value = self.fn(self.model)
            finally:
                fr.undo()
        if isinstance(value, u.Quantity):
            _MONITOR_UNITS[self.key] = value.unit
            return value.value
        _MONITOR_UNITS[self.key] = None
        return jnp.asarray(value)

    @property
    def unit(self):
        return _MONITOR_UNITS.get(self.key)


class _AttributeMonitor(_FacadeMonitor):
    """A monitored attribute that is not a state (a `Param`, a method)."""

    def __init__(self, model, name, core=None):
        super().__init__(model, _read_attribute(name), core)
        self.key = (id(model), ("attr", name))


def _read_attribute(name):
    def read(m):
        attr = getattr(m, name)
        if isinstance(attr, State):
            return attr.value
        if isinstance(attr, Param):
            return attr.value()
        return attr() if callable(attr) else attr

    return read


# -- the compiled core runner ---------------------------------------------------------------------------


def _core_run_impl(core, y0, key, inputs, solver, dt, n_steps, transient, sample_every, spec, batched, input_axes):
    TRACE_COUNTS["core"] += 1

    def one(y, k, inp):
        with warnings.catch_warnings():
            # brainstate's dt carries its unit: a step of 1e-3 ms or less is meant, not one
            # in seconds written as a plain number (what `simulate` warns about).
            warnings.filterwarnings("ignore", message=r"dt = .* ms: plain numbers are ms", category=UserWarning)
            traj = simulate(
                core, n_steps * dt, dt=dt, solver=solver, key=k, y0=y, inputs=inp if inp else None,
                monitors=dict(spec), transient=transient, sample_every=sample_every, check_finite=False,
            )  # fmt: skip
        return traj.ys, traj.final_state

    if not batched:
        return one(y0, key, inputs)
    ys, final = jax.vmap(one, in_axes=(0, 0 if key is not None else None, dict(input_axes)))(y0, key, inputs)
    return jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), ys), final


_core_run = eqx.filter_jit(_core_run_impl)


# -- the Simulator ------------------------------------------------------------------------------------

_GENERIC_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _ratio(duration: Any, dt: Any) -> float:
    """``duration / dt`` as brainmass computes it: in the default float precision, a plain
    duration read in dt's unit (so 100 ms / 0.1 ms is exactly 1000 steps in float32)."""
    if isinstance(duration, u.Quantity) and isinstance(dt, u.Quantity):
        duration = u._value_in(duration, dt.unit)[0]
    dtype = np.dtype(jnp.result_type(float))
    return float(np.asarray(u.get_magnitude(duration), dtype) / np.asarray(u.get_magnitude(dt), dtype))


class Simulator:
    r"""Drive a model for a duration and collect the monitored trajectories (brainmass's API).

    ``Simulator(model, dt=None)``: ``dt`` wins over ``brainstate.environ``'s.
    ``run(duration, *, inputs=None, monitors=None, transient=None, sample_every=None,
    batch_size=None, init_states=True, jit=True) -> dict`` returns
    ``{monitor name: (T, ...) array, 'ts': Quantity}``; batches are ``(T, B, ...)``.
    """

    __module__ = "brainmass"

    def __init__(self, model: Any, dt: Any = None):
        self.model = model
        self.dt = dt

    # -- brainmass's argument handling (same checks and messages) --------------------------------------
    def _resolve_dt(self):
        dt = self.dt
        if dt is None:
            dt = environ.get("dt", None)
        if dt is None:
            raise ValueError(
                "dt is not set: pass Simulator(model, dt=...) or call brainstate.environ.set(dt=...) before run()."
                + environ.not_set_here("dt")
            )
        return dt

    @staticmethod
    def _resolve_steps(duration, dt):
        ratio = _ratio(duration, dt)
        nearest = round(ratio)
        if abs(ratio - nearest) < 1e-6:
            n_steps = int(nearest)
        else:
            n_steps = int(math.floor(ratio))
            warnings.warn(
                f"duration {duration} is not an integer multiple of dt {dt}; truncating to {n_steps} steps.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        if n_steps <= 0:
            raise ValueError(f"duration {duration} yields {n_steps} steps; must be >= 1 dt.")
        return n_steps

    @staticmethod
    def _resolve_transient(transient, dt, n_steps):
        if transient is None:
            return 0
        if isinstance(transient, u.Quantity):
            n_tr = int(round(_ratio(transient, dt)))
        else:
            n_tr = int(transient)
        if n_tr < 0:
            raise ValueError(f"transient must be >= 0, got {transient!r}.")
        if n_tr >= n_steps:
            raise ValueError(
                f"transient ({n_tr} steps) must be shorter than the run ({n_steps} steps); nothing would be recorded."
            )
        return n_tr

    @staticmethod
    def _resolve_sample_every(sample_every):
        if sample_every is None:
            return 1
        k = int(sample_every)
        if k < 1:
            raise ValueError(f"sample_every must be >= 1, got {sample_every!r}.")
        return k

    @staticmethod
    def _check_inputs(inputs, n_steps):
        if inputs is None or callable(inputs):
            return inputs
        arr = inputs if isinstance(inputs, u.Quantity) else jnp.asarray(inputs)
        length = arr.shape[0] if hasattr(arr, "shape") else len(arr)
        if length != n_steps:
            raise ValueError(f"inputs has length {length} but the run has {n_steps} steps.")
        return arr

    def _check_monitor_names(self, monitors):
        model = self.model
        if monitors is None or callable(monitors):
            return
        if isinstance(monitors, Mapping):
            for name, spec in monitors.items():
                if isinstance(spec, str) and not hasattr(model, spec):
                    raise ValueError(f"monitor {name!r} -> {spec!r} is not an attribute of {model}.")
            return
        for name in monitors:
            if not hasattr(model, name):
                raise ValueError(f"monitor {name!r} is not an attribute of {model}.")

    # -- run ------------------------------------------------------------------------------------------
    def run(self, duration, *, inputs=None, monitors=None, transient=None, sample_every=None, batch_size=None,
            init_states=True, jit=True):
        """Simulate ``duration`` and return ``{name: trajectory, 'ts': times}`` (see the class)."""
        dt = self._resolve_dt()
        if is_core_model(self.model):
            dt_ms(dt)  # a plain-number dt is refused before it is used to count steps
        n_steps = self._resolve_steps(duration, dt)
        k = self._resolve_sample_every(sample_every)
        n_tr = self._resolve_transient(transient, dt, n_steps)
        inputs = self._check_inputs(inputs, n_steps)
        with environ.context(dt=dt):
            if init_states:
                if batch_size is None:
                    init_all_states(self.model)
                else:
                    init_all_states(self.model, batch_size)
            self._check_monitor_names(monitors)
            if is_core_model(self.model):
                out = self._run_core(n_steps, dt, k, n_tr, inputs, monitors, jit)
            else:
                out = self._run_generic(n_steps, dt, k, n_tr, inputs, monitors, jit)
        times = (np.arange(n_steps) + 1)[n_tr::k]
        out["ts"] = times * dt if isinstance(dt, u.Quantity) else jnp.asarray(times * dt)
        return out

    # -- facade models on the functional core ---------------------------------------------------------------
    def _core_inputs(self, inputs, n_steps, dt):
        model = self.model
        if inputs is None:
            return {}
        if callable(inputs):

            def per_step(i):
                r = inputs(i, i * dt)
                return model.core_inputs(r if isinstance(r, tuple) else (r,))

            return jax.vmap(per_step)(jnp.arange(n_steps))
        return model.core_inputs((inputs,))

    def _core_monitors(self, monitors, core):
        """``[(out name, core spec)]`` and how to assemble brainmass's output dict."""
        model = self.model
        observables = set(getattr(core, "observables", ()))
        entries: list[tuple[str, Any]] = []

        def spec_of(what):
            if isinstance(what, str):
                if what in model.state_names():
                    return what
                return _AttributeMonitor(model, what, core)
            return _FacadeMonitor(model, what, core)

        if monitors is None:
            out = model.output
            parts = out if isinstance(out, tuple) else (out,)
            for i, p in enumerate(parts):
                known = p in model.state_names() or p in observables
                entries.append((f"__output{i}", p if known else _AttributeMonitor(model, p, core)))
            layout = ("tuple" if isinstance(out, tuple) else "single", len(parts))
        elif callable(monitors) and not isinstance(monitors, (list, tuple, Mapping)):
            entries.append(("output", _FacadeMonitor(model, monitors, core)))
            layout = ("dict", None)
        elif isinstance(monitors, Mapping):
            for name, what in monitors.items():
                entries.append((name, spec_of(what)))
            layout = ("dict", None)
        else:
            for name in monitors:
                entries.append((name, spec_of(name)))
            layout = ("dict", None)
        return entries, layout

    def _unit_of(self, spec, core):
        if isinstance(spec, _FacadeMonitor):
            return spec.unit
        return self.model.observable_unit(spec, core) or None

    def _run_core(self, n_steps, dt, k, n_tr, inputs, monitors, jit):
        model = self.model
        core = model.core_model()
        y0 = model.to_core_state(core)
        batch = getattr(model, "_batch", None)
        input_arrays = self._core_inputs(inputs, n_steps, dt)
        key = None
        if getattr(core, "is_stochastic", False):
            key = random.split_key() if batch is None else random.split_key(batch)
        entries, layout = self._core_monitors(monitors, core)
        spec = tuple(entries)
        input_axes = tuple((name, 1 if jnp.ndim(v) >= 3 else None) for name, v in input_arrays.items())
        run = _core_run if jit else _core_run_impl
        ys, final = run(core, y0, key, input_arrays, model.solver(), dt_ms(dt), n_steps, n_tr, k, spec,
                        batch is not None, input_axes)
        model.from_core_state(final, core)
        recorded = {}
        for name, s in entries:
            value = ys[name]
            if isinstance(s, str) and s in model.state_names():
                value = model._to_facade(core, s, value)
                recorded[name] = value
                continue
            unit = self._unit_of(s, core)
            value = model._unflat(value) if jnp.ndim(value) else value
            recorded[name] = u.Quantity(value, unit) if unit is not None else value
        if layout[0] == "dict":
            return recorded
        parts = [recorded[f"__output{i}"] for i in range(layout[1])]
        return {"output": tuple(parts) if layout[0] == "tuple" else parts[0]}

    # -- any other module: brainmass's own loop -----------------------------------------------------------
    def _build_measure(self, monitors):
        model = self.model
        if monitors is None:
            return lambda r: {"output": r}
        if callable(monitors) and not isinstance(monitors, (list, tuple, Mapping)):
            return lambda r: {"output": monitors(model)}
        if isinstance(monitors, Mapping):

            def measure(r):
                return {name: _read_attribute(spec)(model) if isinstance(spec, str) else spec(model)
                        for name, spec in monitors.items()}

            return measure
        names = list(monitors)
        return lambda r: {name: _read_attribute(name)(model) for name in names}

    def _run_generic(self, n_steps, dt, k, n_tr, inputs, monitors, jit):
        model = self.model
        measure = self._build_measure(monitors)
        array_inputs = inputs is not None and not callable(inputs)

        def loop(arr):
            def step_run(i):
                t = i * dt
                with environ.context(i=i, t=t):
                    if inputs is None:
                        r = model.update()
                    elif array_inputs:
                        r = model.update(arr[i])
                    else:
                        r = inputs(i, t)
                        r = model.update(*(r if isinstance(r, tuple) else (r,)))
                return measure(r)

            if not DISCOVERING[0]:
                TRACE_COUNTS["generic"] += 1
            return bst.for_loop(step_run, np.arange(n_steps))

        if not jit:
            rec = loop(inputs if array_inputs else None)
        else:
            key = (n_steps, _hash_key(dt), _hash_key(monitors), _hash_key(inputs) if not array_inputs else "array")
            try:
                per_model = _GENERIC_CACHE.setdefault(model, {})
            except TypeError:
                per_model = {}
            compiled = per_model.get(key)
            if compiled is None:
                compiled = bst.jit(loop)
                per_model[key] = compiled
            rec = compiled(inputs if array_inputs else None)
        return jax.tree_util.tree_map(lambda a: a[n_tr::k], rec, is_leaf=lambda x: isinstance(x, u.Quantity))


def _hash_key(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, u.Quantity):
        return ("q", float(np.asarray(x.value)), str(x.unit))
    if isinstance(x, (list, tuple)):
        return tuple(_hash_key(v) for v in x)
    if isinstance(x, Mapping):
        return tuple((k, _hash_key(v)) for k, v in x.items())
    if isinstance(x, (str, int, float)):
        return x
    return id(x)
