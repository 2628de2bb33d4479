"""A ring buffer of past states on the step grid, and a solver wrapper that carries one.

Used by node models whose own equations read their past (`WilsonCowanDelayed`) and by the
delayed recurrences of the sequence blocks. The buffer holds ``S`` slots; the state after
step ``m`` lives in slot ``m mod S`` and ``count`` is the index of the newest entry, so a
read ``lag`` steps back returns $y_{count - lag}$ (``lag = 0`` is the current state).
Slots never written hold the initial history (a constant past).
"""

from __future__ import annotations

from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._checks import error_if_member
from .._history import ceil_steps
from .._wrapping import AbstractSolverWrapper

__all__ = ["history_init", "history_push", "history_read", "SelfDelaySolver", "INTERPOLATIONS", "recorded_past"]

#: Ways to read between grid points: linear interpolation (differentiable w.r.t. the
#: delay), the nearest step, or brainmass's ``ceil(delay / dt)`` whole steps.
INTERPOLATIONS = ("linear", "nearest", "ceil")


def history_init(value: ArrayLike, n_slots: int) -> tuple[Array, Array]:
    """A buffer of ``n_slots`` copies of ``value`` and the index 0 of its newest entry."""
    value = jnp.asarray(value)
    return jnp.broadcast_to(value, (n_slots,) + value.shape), jnp.zeros((), jnp.int32)


def history_push(buffer: Array, count: Array, value: Array) -> tuple[Array, Array]:
    """Append ``value`` as the newest entry."""
    count = count + 1
    return buffer.at[count % buffer.shape[0]].set(value), count


def history_read(
    buffer: Array, count: Array, lag: ArrayLike, interpolation: str = "linear", column: Array | None = None
) -> Array:
    """The entry ``lag`` steps before the newest (``lag`` may be fractional).

    **Arguments:**

    - `buffer`, `count`: the ring buffer and the index of its newest entry.
    - `lag`: steps back, broadcastable to one entry's shape, or (with ``column``) any
      shape: then entry ``[..]`` reads element ``column[..]`` of the past state.
    - `interpolation`: one of `INTERPOLATIONS`.
    - `column`: integer indices into the last axis of an entry (per-connection reads).

    Lags beyond the buffer are clipped to its oldest entry; callers size the buffer.
    """
    n_slots = buffer.shape[0]
    lag = jnp.asarray(lag, dtype=buffer.dtype)
    if interpolation == "linear":
        i0 = jnp.floor(lag)
        frac = lag - i0
    elif interpolation == "nearest":
        i0, frac = jnp.round(lag), None
    elif interpolation == "ceil":
        i0, frac = ceil_steps(lag), None
    else:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
    i0 = jnp.clip(i0.astype(jnp.int32), 0, n_slots - 1)

    def gather(steps_back):
        slot = (count - steps_back) % n_slots
        if column is not None:
            return buffer[slot, column]
        slot = jnp.broadcast_to(slot, buffer.shape[1:])
        return jnp.take_along_axis(buffer, slot[None], axis=0)[0]

    a = gather(i0)
    if frac is None:
        return a
    b = gather(jnp.minimum(i0 + 1, n_slots - 1))
    return a + frac * (b - a)


def recorded_past(
    traj: Any, names: Any, dt_ms: float, span_ms: float, label: str, what: str = "delayed variable(s)"
) -> dict[str, Array]:
    r"""The past that ``traj`` recorded of the variables ``names``, for a delayed model that
    continues the run (`simulate` with ``y0=traj``): ``{name: array (n, ...)}``, row
    ``n - 1 - m`` the value $m$ steps before the end of ``traj`` ($m = 0$: its final state).

    The rows are only that past if ``traj`` sampled every step of ``dt_ms`` up to its end
    (its last sample is ``traj.end_time``, where the continuation starts), so this is
    checked: a ``saveat`` that stopped short of the end, or samples off the step grid,
    would shift the whole past in time without a sign.

    ``what`` names the variables in the error (a Network's "coupled variable(s)").

    **Raises:** `ValueError` naming what is missing: a variable not recorded, samples not
    one step apart, a last sample before the run's end, or a recording shorter than
    ``span_ms`` (the longest delay).
    """
    missing = [v for v in names if v not in traj.ys]
    if missing:
        raise ValueError(
            f"y0: to continue {label} from a Trajectory, record its {what} {missing} in the "
            f"first run (monitors=...): the delays read them up to {span_ms:g} ms back. Recorded: "
            f"{list(traj.ys)}."
        )
    n = traj.ts.shape[0]
    if not isinstance(traj.ts, jax.core.Tracer):  # a Trajectory passed into jax.jit: not checkable
        ts = np.asarray(traj.ts, dtype=np.float64)
        steps = np.diff(ts)
        # float32 sample times (a Trajectory saved by an older version, or returned by
        # jax.jit) are each rounded by up to half an ulp, so their differences by up to an
        # ulp: 0.0078 ms at 100 s, 0.0625 ms at 10 minutes. A tolerance of 1e-2 dt alone
        # refused every delayed Network's continuation after 16 s at dt = 0.1 ms.
        slack = float(np.spacing(np.float32(np.max(np.abs(ts))))) if np.asarray(traj.ts).dtype == np.float32 and n else 0.0
        if n < 2 or not np.allclose(steps, dt_ms, rtol=1e-2, atol=slack):
            raise ValueError(
                f"y0: to continue {label} from a Trajectory, the first run must record every "
                f"step (sample_every=1 at dt = {dt_ms:g} ms): the delays read its past step by step. "
                + (f"This one is sampled every {steps[0]:g} ms." if steps.size else f"This one has {n} sample(s).")
            )
        end = traj.end_time
        if not isinstance(end, jax.core.Tracer) and abs(float(end) - ts[-1]) > 1e-2 * dt_ms + slack:
            raise ValueError(
                f"y0: to continue {label} from a Trajectory, its samples must run to its end "
                f"({float(end):g} ms, where the continuation starts); the last is at {ts[-1]:g} ms "
                "(a saveat that stops short of the run's end?). Record every step to the end "
                "(sample_every=1, no saveat)."
            )
    covered = (n - 1) * dt_ms
    if covered < span_ms - 1e-6 * dt_ms:
        raise ValueError(
            f"y0: the Trajectory covers {covered:g} ms, but the delays of {label} read "
            f"{span_ms:g} ms back; record a longer first run (or a shorter transient)."
        )
    return {v: jnp.asarray(traj.ys[v]) for v in names}


def history_from_past(past: Array, n_slots: int) -> Array:
    """A buffer of ``n_slots`` (newest entry at index 0, as `history_init` leaves it)
    holding the last rows of ``past`` (oldest first, newest last); slots beyond its
    length hold its oldest row."""
    back = np.arange(n_slots)  # slot s holds the value (-s mod n_slots) steps back
    rows = np.maximum(past.shape[0] - 1 - (-back % n_slots), 0)
    return jnp.asarray(past)[rows]


class _WithExtraInputs(eqx.Module):
    """An input source that adds fixed entries (the delayed values) to another source."""

    source: Any
    extra: dict

    def evaluate(self, t):
        return {**self.source.evaluate(t), **self.extra}


class SelfDelaySolver(AbstractSolverWrapper):
    """Wrap ``solver`` so that the model can read its own past states.

    The solver state carries one ring buffer per delayed state variable. Before each
    step, every read ``key -> (state, delay parameter)`` of ``reads`` is evaluated at
    ``t - delay`` and handed to the model as the input ``key``; it is held over the step
    (also over the stages of a multi-stage solver, as brainmass holds its prefetched
    delays). After the step the new state is appended. The past before ``t = 0`` is the
    initial state, or ``past``.

    **Arguments:**

    - `solver`: the wrapped diffrax solver.
    - `reads`: ``((key, state name, delay name), ...)``.
    - `delays`: ``{delay name: delay in ms}`` (arrays; traced and differentiable).
    - `n_slots`: buffer length in steps (at least the longest delay in steps + 2; see
      `slots_for`).
    - `interpolation`: one of `INTERPOLATIONS`.
    - `owner`: the name error messages give the delayed model by (default ``'model'``).
    - `dt`: the step (ms) the lags are counted in; None: each step's ``t1 - t0`` (which on a
      float32 time grid jitters by an ulp of ``t``, enough to move a ``'ceil'`` read).
    - `past`: None (a constant past, the initial state), or ``{state name: array (P, ...)}``,
      the values at the last ``P`` steps, oldest first, the last row at ``t = 0`` (a
      continued run's recorded past, `recorded_past`).

    The delays are held here rather than read from the solved model, which may be a
    wrapper around the delayed node (a `Network`, a noisy model).
    """

    solver: dfx.AbstractSolver
    reads: tuple = eqx.field(static=True)
    delays: dict
    n_slots: int = eqx.field(static=True)
    interpolation: str = eqx.field(static=True, default="linear")
    owner: str = eqx.field(static=True, default="model")
    dt: float | None = eqx.field(static=True, default=None)
    past: dict | None = None

    # The dense output of the inner solver is for the inner state only: keep it linear.
    interpolation_cls = dfx.LocalLinearInterpolation

    def _variables(self):
        return tuple(dict.fromkeys(var for _, var, _ in self.reads))

    def history_bytes(self, y0) -> int:
        """One buffer of ``n_slots`` steps per delayed state variable, in its dtype."""
        return sum(
            self.n_slots * int(np.prod(np.shape(y0[var]))) * np.dtype(jnp.result_type(y0[var])).itemsize
            for var in self._variables()
        )

    def init(self, terms, t0, t1, y0, args):
        if self.past is None:
            buffers = {var: history_init(y0[var], self.n_slots)[0] for var in self._variables()}
        else:
            buffers = {
                var: history_from_past(self.past[var], self.n_slots).astype(jnp.result_type(y0[var]))
                for var in self._variables()
            }
        if self.dt is not None:
            # Fixed steps: every step reads the same lags, so they are checked once, here,
            # rather than in the step loop's body (a conditional per delay per step).
            for _, _, delay_name in self.reads:
                buffers = self._guard(buffers, self._lag(delay_name, self.dt), delay_name)
        inner = self.solver.init(terms, t0, t1, y0, args)
        return inner, buffers, jnp.zeros((), jnp.int32)

    def _lag(self, delay_name, dt):
        """The delay ``delay_name`` in steps of ``dt``."""
        return jnp.asarray(self.delays[delay_name]) / dt

    def _guard(self, tree, lag, delay_name):
        """``tree``, with a run-time check that ``lag`` fits the history kept."""
        return error_if_member(
            tree,
            jnp.any(lag > self.n_slots - 2),
            f"{self.owner}: a delay ({delay_name}) is longer than the history the "
            "solver keeps; raise the model's max_delay.",
        )

    def _delayed(self, buffers, count, dt):
        out = {}
        for key, var, delay_name in self.reads:
            lag = self._lag(delay_name, dt)
            if self.dt is None:  # a lag in steps that vary: checked at each step
                lag = self._guard(lag, lag, delay_name)
            out[key] = jnp.broadcast_to(
                history_read(buffers[var], count, lag, self.interpolation), jnp.shape(buffers[var])[1:]
            )
        return out

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        inner, buffers, count = solver_state
        extra = self._delayed(buffers, count, t1 - t0 if self.dt is None else self.dt)
        # The delayed values are held over the step and change from step to step: a
        # first-same-as-last solver (Tsit5) must evaluate its first stage anew, not reuse
        # the last stage of the step before (WilsonCowanDelayed under Tsit5 was 4.5e-4 off).
        y1, err, _, inner, result = self.solver.step(terms, t0, t1, y0, _WithExtraInputs(args, extra), inner, True)
        new_count = count + 1
        buffers = {var: buf.at[new_count % self.n_slots].set(y1[var]) for var, buf in buffers.items()}
        # interpolation_cls is LocalLinearInterpolation whatever the inner solver: its dense
        # output (an RK solver's stages 'k') would not fit it (saveat raised a TypeError).
        return y1, err, dict(y0=y0, y1=y1), (inner, buffers, new_count), result

    def func(self, terms, t0, y0, args):
        # Only used to pick an initial step size; the current state stands in for the past.
        extra = {key: y0[var] for key, var, _ in self.reads}
        return self.solver.func(terms, t0, y0, _WithExtraInputs(args, extra))


def slots_for(max_delay_ms: float, dt_ms: float) -> int:
    """Buffer length for delays up to ``max_delay_ms`` at steps of ``dt_ms``: the longest
    lag, one slot to interpolate into, and one of slack for float32 steps that come out a
    little shorter than ``dt`` (``t1 - t0`` on a float32 time grid)."""
    return int(ceil_steps(np.float64(max_delay_ms / dt_ms))) + 3
