r"""Balloon-Windkessel BOLD computed *inside* a simulation (`WithBOLD`, `simulate_bold`).

`WithBOLD(model)` is a model whose state is the model's plus the four haemodynamic states
of `BalloonWindkessel`, driven at every step by a chosen neural variable. Recording only
``'bold'`` every TR then keeps one small sample per TR: a 10-minute whole-brain run never
materialises the neural trajectory.

**How the haemodynamics are stepped.** The haemodynamic states move by about 1e-5 per
0.1 ms step while sitting near 1, below half the float32 spacing there (6e-8 relative),
so a float32 solver that adds its increments plainly loses them. The solver wrapper `BOLDSolver` (installed by
`WithBOLD.wrap_solver`) therefore advances the neural model with the user's solver and
the haemodynamics with `BalloonWindkessel.step_compensated` (Heun, increments added by
Kahan summation); the compensation is carried in the solver state, so it survives
chunked runs and never appears in the model state; a run's `Trajectory` keeps it
(`Trajectory.carried`), so that a run continued from it (``y0=traj``) goes on with it, bit
for bit. Step ``i`` is driven by the neural value at its end, so the in-loop BOLD is the
offline `bold_from_signal` of the recorded neural trajectory.

Measured (``benchmarks/bench_bold.py``, float32, dt = 0.1 ms, 60 s, constant drive,
against SciPy): q within 1.2e-7 and BOLD within 1.1e-8 with `BOLDSolver`; 3.4e-4 and
2.8e-5 when the same field is stepped by the model's solver (exponential Euler or Heun).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._checks import broadcasts_to_regions, checked_as_run_starts, is_traced, suggests_keywords
from .._param import Param
from .._simulate import Trajectory, _as_steps, _wrap_solver, simulate
from .._units import to_ms
from .._wrapping import AbstractSolverWrapper
from ..models._base import AbstractModel, AbstractModelWrapper, State
from ..solvers import ModelTerm, _find_model_term
from ._balloon import BalloonWindkessel, flow_collapse_hint, steps_per_tr

__all__ = ["WithBOLD", "BOLDSolver", "simulate_bold"]

#: ``{WithBOLD state name: BalloonWindkessel state name}``.
_BOLD_STATES = {f"bold_{name}": name for name in BalloonWindkessel.state_names}
# The haemodynamic model's clock is in seconds, ours in ms.
_PER_MS = 1e-3


class WithBOLD(AbstractModelWrapper):
    r"""A model with Balloon-Windkessel haemodynamics attached (BOLD computed in the loop).

    With the neural state $y$, the drive $z = \text{scale} \cdot d(y)$ (per region) and the
    haemodynamic state $h = (s, f, v, q)$,

    $$\dot y = F(t, y, I(t)), \qquad \dot h = 10^{-3}\, G(h, z),$$

    where $F$ is the wrapped model's vector field (per ms) and $G$ the
    `BalloonWindkessel` field (per second, hence the factor: time here is in ms). The
    observable ``'bold'`` is `BalloonWindkessel.bold` of $h$ (dimensionless, 0 at rest).

    It has the model contract: states are the model's followed by ``bold_s``,
    ``bold_f``, ``bold_v``, ``bold_q`` (rest 0, 1, 1, 1); inputs, coupling input,
    observables, `terms`, `wrap_solver` and `post_step` are the model's, so a `Network`,
    a noisy model (`with_noise`) or any node model can be wrapped. Attribute access falls
    through to the wrapped model. Put `WithBOLD` outermost (``WithBOLD(with_noise(net,
    ...))``).

    In `simulate`, `BOLDSolver` steps $h$ with the compensated Heun step of
    `BalloonWindkessel.step_compensated`, driven by the neural value at the *end* of each
    step (exactly what `bold_from_signal` does with the recorded signal); ``vector_field``
    gives the same dynamics for any other use.

    **Arguments:**

    - `model`: the neural model (any `AbstractModel`, e.g. a `Network`).
    - `driver`: the neural variable that drives the haemodynamics: the name of a state or
      observable of `model`, or a callable ``(model, state) -> array (n_regions,)`` (a
      function or an ``eqx.Module``, whose arrays are then trainable). Default ``'x'``; a
      name is stored as the callable ``Observe(name)``.
    - `balloon`: the `BalloonWindkessel` parameters (default: Friston et al. 2003).
      Parameters may be per region (shape ``(n_regions,)``).
    - `scale`: multiplies the driver before it enters $\dot s$ (scalar or per region,
      a number, array or `Param`; default 1).
    """

    # Fixed by `model`; redeclared so that the model is the first positional argument.
    n_regions: int = eqx.field(default=1, static=True, init=False)
    model: AbstractModel
    driver: str | Callable = "x"
    balloon: BalloonWindkessel | None = None
    scale: Any = 1.0
    # The Kahan compensation a continued run starts from (`continued_from`), keyed like
    # `split`'s haemodynamic state; None: zeros.
    compensation: dict[str, Array] | None = eqx.field(default=None, init=False, repr=False)

    def __post_init__(self):
        model, driver, balloon, scale = self.model, self.driver, self.balloon, self.scale
        if not isinstance(model, AbstractModel):
            raise TypeError(f"WithBOLD: `model` must be a brainmass_eqx model, got {type(model).__name__}.")
        if isinstance(model, WithBOLD):
            raise ValueError("WithBOLD: `model` already computes BOLD; wrap the neural model once.")
        names = list(model.state_names)
        clash = sorted(set(_BOLD_STATES) & set(names)) + (["bold"] if "bold" in model.observables else [])
        if clash:
            raise ValueError(
                f"WithBOLD: `model` ({model._label()}) already has {clash}, names WithBOLD "
                "needs for its haemodynamic states and the 'bold' observable."
            )
        self.n_regions = n = model.n_regions
        # Set here: equinox leaves an init=False default off the instance (eqx.tree_at then
        # could not find the field to set, `continued_from`).
        self.compensation = None

        if balloon is None:
            balloon = BalloonWindkessel()
        if not isinstance(balloon, BalloonWindkessel):
            raise TypeError(f"WithBOLD: `balloon` must be a BalloonWindkessel, got {type(balloon).__name__}.")
        for field in ("gamma", "kappa", "alpha", "tau", "rho", "V0"):
            _check_regions(f"balloon.{field}", jnp.shape(getattr(balloon, field)), n)
        self.balloon = balloon

        raw = scale.value if isinstance(scale, Param) else scale
        if not isinstance(scale, Param):
            scale = jnp.asarray(scale, dtype=jnp.result_type(float))
        _check_regions("scale", jnp.shape(raw), n)
        rule = "WithBOLD: `scale` must be finite"
        if not is_traced(raw):
            if not np.all(np.isfinite(np.asarray(raw, dtype=float))):
                raise ValueError(f"{rule}, got {np.asarray(raw)}.")
        elif not isinstance(scale, Param):  # (a Param's own construction checks its value)
            # Checked as the run starts: a NaN scale was reported as a divergence, blaming dt.
            scale = checked_as_run_starts(scale, ~jnp.isfinite(scale), rule)
        self.scale = scale

        if isinstance(driver, str):
            valid = names + list(model.observables)
            if driver not in valid:
                default = " (the default)" if driver == "x" else ""
                raise ValueError(
                    f"WithBOLD: `driver` {driver!r}{default} is not a state or observable of "
                    f"{model._label()}; pass driver= one of {valid} (or a callable "
                    "(model, state) -> array (n_regions,))."
                )
            self.driver = Observe(driver)
        elif not callable(driver):
            raise TypeError(
                "WithBOLD: `driver` must be a state or observable name or a callable "
                f"(model, state) -> array (n_regions,), got {type(driver).__name__}."
            )
        if not is_traced(model):
            # A wrong drive shape would otherwise surface as a broadcasting error deep in a solve.
            shape = jax.eval_shape(lambda k: self.driver(model, model.init_state(k)), jr.key(0)).shape
            if shape != (n,):
                raise ValueError(
                    f"WithBOLD: `driver` {driver!r} gives shape {shape}; the haemodynamics "
                    f"need one value per region, shape ({n},)."
                )

    # -- names --------------------------------------------------------------------------------

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(self.model.state_names) + tuple(_BOLD_STATES)

    @property
    def state_units(self) -> dict[str, str]:
        # s is a rate (1/s); f, v, q are normalised to their resting values.
        return {**self.model.state_units, "bold_s": "1/s", "bold_f": "", "bold_v": "", "bold_q": ""}

    @property
    def observables(self) -> tuple[str, ...]:
        return tuple(self.model.observables) + ("bold",)

    @property
    def observable_units(self) -> dict[str, str]:
        return {**getattr(self.model, "observable_units", {}), "bold": ""}

    @property
    def is_stochastic(self) -> bool:
        return getattr(self.model, "is_stochastic", False)

    # -- state ----------------------------------------------------------------------------------

    def split(self, state: State) -> tuple[State, State]:
        """``(neural state, haemodynamic state)``; the latter keyed ``s, f, v, q``."""
        neural = {k: state[k] for k in self.model.state_names}
        return neural, {short: state[long] for long, short in _BOLD_STATES.items()}

    @staticmethod
    def join(neural: State, haemo: State) -> State:
        """The inverse of `split`."""
        return {**neural, **{long: haemo[short] for long, short in _BOLD_STATES.items()}}

    def init_state(self, key: PRNGKeyArray | None = None) -> State:
        """The model's initial state and the haemodynamic rest state (s = 0, f = v = q = 1)."""
        return self.join(self.model.init_state(key), self.balloon.init_state(self.n_regions))

    def continued_from(self, traj: Trajectory) -> WithBOLD:
        """This model continuing the run of ``traj``: its haemodynamics' Kahan compensation
        starts from the one the run ended with (``traj.carried``, from `BOLDSolver.carried`),
        so that the two runs are one run bit for bit. A trajectory without it (of the neural
        model alone, of a ``saveat`` or adaptive run, or saved before it was kept) starts it
        at zero, which is under one float32 ulp of each state. `network.past_from` calls it."""
        carried = getattr(traj, "carried", None) or {}
        if not all(name in carried for name in _BOLD_STATES):
            return self
        compensation = {short: carried[long] for long, short in _BOLD_STATES.items()}
        return eqx.tree_at(lambda m: m.compensation, self, compensation, is_leaf=lambda x: x is None)

    def drive(self, neural: State) -> Array:
        """The haemodynamic drive $z$ = scale x driver, shape ``(n_regions,)``."""
        return self.scale * self.driver(self.model, neural)

    def bold(self, state: State) -> Array:
        """The BOLD signal of a (full) state, shape ``(n_regions,)``."""
        return self.balloon.bold(self.split(state)[1])

    def divergence_hint(self, name: str, final_state: State | None = None) -> str | None:
        """Why a recorded haemodynamic variable turns NaN (`simulate`'s divergence report):
        the neural model, where its own state at the end (`final_state`) is NaN/inf (only
        the BOLD is recorded, so the report could not tell, and blamed the haemodynamics),
        else the haemodynamics."""
        if name != "bold" and name not in _BOLD_STATES:
            return None
        if final_state is not None:
            neural = {k: final_state[k] for k in self.model.state_names if k in final_state}
            diverged = [k for k, v in neural.items() if not np.all(np.isfinite(np.asarray(v)))]
            if diverged:
                return (
                    f"The neural model diverged first: its {', '.join(map(repr, diverged))} "
                    f"{'is' if len(diverged) == 1 else 'are'} NaN/inf at the end, and the BOLD it drives followed. "
                    "Reduce dt, use a higher-order solver, or check the neural parameters and inputs."
                )
        return (
            "If the neural variables stayed finite, the cause is the haemodynamics, not dt: "
            + flow_collapse_hint(self.balloon.gamma)
            + "."
        )

    def observe(self, name: str, state: State) -> Array:
        if name in self.state_names:
            return state[name]
        if name == "bold":
            return self.bold(state)
        return self.model.observe(name, self.split(state)[0])

    def post_step(self, state: State) -> State:
        neural, _ = self.split(state)
        return {**state, **self.model.post_step(neural)}

    # -- dynamics --------------------------------------------------------------------------------

    def _haemo_field(self, t, haemo: State, neural: State) -> State:
        g = self.balloon.vector_field(t * _PER_MS, haemo, self.drive(neural))
        return {k: v * _PER_MS for k, v in g.items()}

    def vector_field(self, t, state, inputs):
        neural, haemo = self.split(state)
        f = self.model.vector_field(t, neural, inputs)
        return self.join(f, self._haemo_field(t, haemo, neural))

    def vector_field_and_diagonal(self, t, state, inputs):
        neural, haemo = self.split(state)
        f, diag = self.model.vector_field_and_diagonal(t, neural, inputs)
        g = self._haemo_field(t, haemo, neural)
        g_diag = {}
        for name in haemo:
            def g_k(h_k, name=name):
                return self._haemo_field(t, {**haemo, name: h_k}, neural)[name]

            _, g_diag[name] = jax.jvp(g_k, (haemo[name],), (jnp.ones_like(haemo[name]),))
        return self.join(f, g), self.join(diag, g_diag)

    # -- solving ---------------------------------------------------------------------------------

    def terms(self, key: PRNGKeyArray | None = None, **kwargs):
        """The wrapped model's terms (``kwargs`` are passed on, e.g. a noisy model's ``dt``)
        with its `ModelTerm` pointing at this model, so that `BOLDSolver` finds it."""
        inner = self.model.terms(key, **kwargs)
        found = []

        def swap(x):
            if isinstance(x, ModelTerm) and x.model is self.model:
                found.append(x)
                return eqx.tree_at(lambda term: term.model, x, self)
            return x

        out = jax.tree_util.tree_map(swap, inner, is_leaf=lambda x: isinstance(x, ModelTerm))
        if not found:
            raise TypeError(
                f"WithBOLD: {type(self.model).__name__}.terms() holds no ModelTerm of the model; "
                "WithBOLD needs one to step the neural model and the haemodynamics together."
            )
        return out

    def wrap_solver(self, solver, dt=None):
        """`BOLDSolver` around the wrapped model's solver (`dt`, ms, is passed on to hooks
        that take it, e.g. a `Network` sizing its delay history)."""
        inner = self.model.wrap_solver(solver) if dt is None else _wrap_solver(self.model, solver, dt)
        return BOLDSolver(inner)


def refuse_inner_bold(model: Any, outer: str) -> None:
    """Raise if ``model`` (about to be wrapped by ``outer``) is a `WithBOLD`: its solver
    wrapper must see the whole model, so WithBOLD goes outermost."""
    if isinstance(model, WithBOLD):
        raise ValueError(
            f"{outer}: the model is a WithBOLD, which must be the outermost wrapper; build "
            f"WithBOLD({outer}(model, ...), ...) (or use simulate_bold) instead of {outer}(WithBOLD(model), ...)."
        )


class Observe(eqx.Module):
    """The driver ``(model, state) -> model.observe(name, state)`` for a state or
    observable name."""

    name: str = eqx.field(static=True)

    def __call__(self, model: AbstractModel, state: State) -> Array:
        return model.observe(self.name, state)


def _check_regions(name: str, shape: tuple[int, ...], n: int) -> None:
    if not broadcasts_to_regions(shape, n):
        raise ValueError(
            f"WithBOLD: `{name}` has shape {tuple(shape)}, which does not broadcast to the {n} "
            f"regions of the model; give a scalar or an array of shape ({n},)."
        )


def _bold_model(terms) -> WithBOLD:
    term = _find_model_term(terms)
    model = None if term is None else term.model
    if not isinstance(model, WithBOLD):
        raise TypeError(
            "BOLDSolver: the terms are not those of a WithBOLD model (found "
            f"{type(model).__name__}). WithBOLD must be the outermost wrapper: use "
            "WithBOLD(with_noise(model, ...)), not with_noise(WithBOLD(model), ...)."
        )
    return model


def _inner_terms(terms, model: WithBOLD):
    """``terms`` with the `WithBOLD` model term pointing back at the wrapped model."""

    def swap(x):
        if isinstance(x, ModelTerm) and isinstance(x.model, WithBOLD):
            return eqx.tree_at(lambda term: term.model, x, model.model)
        return x

    return jax.tree_util.tree_map(swap, terms, is_leaf=lambda x: isinstance(x, ModelTerm))


class BOLDSolver(AbstractSolverWrapper, dfx.AbstractWrappedSolver):
    """Step a `WithBOLD` model: the neural part with ``solver``, the haemodynamics with
    `BalloonWindkessel.step_compensated`.

    Each step first advances the neural state with ``solver`` (which sees exactly the
    wrapped model, its terms and its solver state: delay histories, noise blocks), applies
    the model's `post_step`, then advances the haemodynamic state over the same step with
    the drive of the new neural state (held over the step). The Kahan compensation of
    the haemodynamic increments is carried in the solver state (`carried` hands it to the
    run's `Trajectory`, `WithBOLD.continued_from` back to a continued run). Error
    estimates (adaptive steps) are the neural solver's plus, for the haemodynamics, Heun
    minus Euler and the error of holding the drive; dense output is linear between steps.

    **Arguments:**

    - `solver`: the solver of the neural model (already wrapped by its `wrap_solver`).
    """

    solver: dfx.AbstractSolver

    # The state gains the haemodynamic variables: the inner dense output does not cover it.
    interpolation_cls = dfx.LocalLinearInterpolation

    def init(self, terms, t0, t1, y0, args):
        model = _bold_model(terms)
        neural, haemo = model.split(y0)
        inner = self.solver.init(_inner_terms(terms, model), t0, t1, neural, args)
        if model.compensation is None:
            return inner, jax.tree_util.tree_map(jnp.zeros_like, haemo)
        start = {k: jnp.broadcast_to(jnp.asarray(model.compensation[k], h.dtype), h.shape) for k, h in haemo.items()}
        return inner, start

    def carried(self, solver_state) -> dict[str, Array]:
        """The Kahan compensation at the end of a run, keyed by the `WithBOLD` state names
        (``bold_s``, ...): `Trajectory.carried`, from which `WithBOLD.continued_from`
        starts a continued run."""
        return {long: solver_state[1][short] for long, short in _BOLD_STATES.items()}

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        model = _bold_model(terms)
        inner, compensation = solver_state
        neural0, haemo0 = model.split(y0)
        neural, err, _, inner, result = self.solver.step(
            _inner_terms(terms, model), t0, t1, neural0, args, inner, made_jump
        )
        neural = model.model.post_step(neural)
        z = model.drive(neural)
        haemo, compensation = model.balloon.step_compensated(haemo0, compensation, z, t1 - t0)
        y1 = model.join(neural, haemo)
        if err is not None:
            # For adaptive step-size control: Heun minus Euler (the drive held), plus the
            # first-order error of holding the end-of-step drive over the step.
            h = (t1 - t0) * _PER_MS
            euler = model.balloon.vector_field(0.0, haemo0, z)
            haemo_err = {k: (haemo[k] - haemo0[k]) - h * euler[k] for k in haemo}
            haemo_err["s"] = haemo_err["s"] + 0.5 * h * (z - model.drive(neural0))
            err = model.join(err, haemo_err)
        return y1, err, dict(y0=y0, y1=y1), (inner, compensation), result

    def func(self, terms, t0, y0, args):
        model = _bold_model(terms)
        neural, haemo = model.split(y0)
        f = self.solver.func(_inner_terms(terms, model), t0, neural, args)
        return model.join(f, model._haemo_field(t0, haemo, neural))


def _with_bold(monitors: Any) -> Any:
    """``monitors`` with ``'bold'`` first (a run of `simulate_bold` always records it: a
    list of neural variables given alone had dropped it)."""
    if monitors is None or (isinstance(monitors, (str, Mapping)) and not monitors):
        return ("bold",)
    if isinstance(monitors, Mapping):
        return monitors if "bold" in monitors or "bold" in monitors.values() else {"bold": "bold", **monitors}
    entries = [monitors] if isinstance(monitors, str) or callable(monitors) else list(monitors)
    return entries if "bold" in entries else ["bold", *entries]


@suggests_keywords(forwards_to=simulate)
def simulate_bold(
    model: AbstractModel,
    duration: Any,
    *,
    dt: Any,
    tr: Any,
    driver: str | Callable | None = None,
    balloon: BalloonWindkessel | None = None,
    scale: Any = None,
    transient: Any = 0,
    monitors: Any = (),
    y0: Mapping[str, Any] | Trajectory | None = None,
    **kwargs: Any,
) -> Trajectory:
    """Simulate ``model`` with in-loop BOLD and keep only samples every TR.

    The samples are the states at ``transient + TR``, ``transient + 2 TR``, ... (a tail
    shorter than one TR is dropped). The haemodynamics run through the transient too (it
    warms them up): with ``x`` the neural signal recorded every step *from the start*
    (transient included), the result equals ``bold_from_signal(x, dt)[k + n - 1 :: n]``
    (``k`` transient steps, ``n`` steps per TR), which is ``bold_from_signal(x, dt,
    tr=tr)[k // n :]`` when the transient is a whole number of TRs, without that signal
    ever being stored. (``bold_from_signal`` of the signal recorded *after* the transient
    starts the haemodynamics from rest instead, and differs.) Memory does not grow with `duration` beyond the
    ``duration / tr`` samples (use ``chunk=`` for constant device memory).

    **Arguments:**

    - `model`: a neural model (wrapped here in `WithBOLD`) or a `WithBOLD` model (then
      `driver`, `balloon` and `scale` must be left unset).
    - `duration`, `dt`: as for `simulate` (a time Quantity or ms).
    - `tr`: the BOLD sampling period, a time Quantity or ms: at least `dt` and a whole
      number of steps.
    - `driver`, `balloon`, `scale`: as for `WithBOLD` (defaults ``'x'``, the standard
      haemodynamics, 1).
    - `transient`: time discarded before the first TR: steps (int) or a time Quantity,
      as for `simulate`.
    - `monitors`: what to record every TR besides ``'bold'``, which is always recorded:
      a name, a list of names or callables, or a dict ``{out_name: name | callable}`` as
      for `simulate` (any state or observable of the `WithBOLD` model).
    - `y0`: initial state; the haemodynamic states may be omitted (rest). Or the
      `Trajectory` of an earlier run, to continue it as `simulate` does: time, inputs
      given as functions of time and (with the same ``key``) the noise go on from its end,
      so that the two runs equal one bit for bit, the haemodynamics included: the
      Trajectory keeps the Kahan compensation of their increments (`Trajectory.carried`,
      saved by `Trajectory.save`). One without it (saved by an older version) starts it at
      zero, under one float32 ulp of each state (1e-8 of BOLD for 2 Wilson-Cowan regions).
      A delayed network also needs its past at every step, which a BOLD run does not
      record (raises: use ``chunk=`` for a long run in pieces). ``y0=traj.final_state``
      instead starts a new run at $t = 0$; give it a new ``key``, as the same key replays
      the first run's noise.
    - `kwargs`: passed to `simulate` (``solver``, ``key``, ``inputs``, ``chunk``,
      ``progress``, ``adjoint``, ``check_finite``, ...).

    **Returns:** a `Trajectory` with ``ts`` the sample times (ms).
    """
    for name in ("sample_every", "saveat", "stepsize_controller"):
        if name in kwargs:
            raise TypeError(f"simulate_bold: `{name}` is fixed by `tr`; use simulate() for other sampling.")
    dt_ms, per_tr = steps_per_tr(tr, dt)
    if isinstance(model, WithBOLD):
        given = [n for n, v in (("driver", driver), ("balloon", balloon), ("scale", scale)) if v is not None]
        if given:
            raise ValueError(
                f"simulate_bold: `model` is already a WithBOLD model; {given} would be ignored. "
                "Pass the neural model, or leave them unset."
            )
    else:
        model = WithBOLD(model, "x" if driver is None else driver, balloon, 1.0 if scale is None else scale)
    rest = model.balloon.init_state(model.n_regions)
    rest = {long: rest[short] for long, short in _BOLD_STATES.items()}
    if isinstance(y0, Trajectory):
        # A continuation, as for `simulate`: time and noise go on from the earlier run's end.
        # (Refused before, the advice was y0=traj.final_state: time restarted at 0 and the
        # same key replayed the first run's noise.) A delayed model also needs its past at
        # every step, which a BOLD run records only when tr == dt.
        from ..network import past_from

        try:
            past_from(model, y0, dt_ms)
        except ValueError as err:
            raise ValueError(
                f"simulate_bold: `y0` is a Trajectory, but {model.model._label()} has delays and a BOLD "
                f"run records every TR, not the past they read step by step ({err}). For a long BOLD "
                "run in pieces use chunk= (equal to one run, constant device memory). y0=traj.final_state "
                "starts a new run from its end state instead, from a constant past and at t = 0, with "
                "a new key (e.g. jax.random.fold_in(key, 1)): the same key would replay the first "
                "run's noise."
            ) from err
        # A Trajectory of the neural model alone: the haemodynamics start at rest.
        y0 = dataclasses.replace(y0, final_state={**rest, **y0.final_state})
    elif y0 is not None:
        if not isinstance(y0, Mapping):
            raise TypeError(f"simulate_bold: `y0` must be a dict {{state name: array}}, got {type(y0).__name__}.")
        y0 = {**rest, **y0}
    skip = _as_steps(transient, "transient", dt_ms, inexact="floor")
    if skip < 0:
        raise ValueError(f"simulate_bold: `transient` must be >= 0, got {skip} steps.")
    duration_ms = to_ms(duration, "duration")
    if duration_ms < (skip + per_tr) * dt_ms * (1 - 1e-9):
        raise ValueError(
            f"simulate_bold: `duration` ({duration_ms} ms) is shorter than the transient plus one "
            f"`tr` ({(skip + per_tr) * dt_ms} ms); no BOLD sample would be recorded."
        )
    return simulate(
        model,
        duration,
        dt=dt,
        transient=skip + per_tr - 1,
        sample_every=per_tr,
        monitors=_with_bold(monitors),
        y0=y0,
        **kwargs,
    )

