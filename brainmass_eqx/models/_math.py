"""Maths shared by several models (one definition each)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


def exprel(z: ArrayLike) -> Array:
    """``(exp(z) - 1) / z`` with ``exprel(0) = 1``; finite value and gradient everywhere."""
    z = jnp.asarray(z)
    small = jnp.abs(z) < 1e-3
    safe = jnp.where(small, 1.0, z)
    series = 1.0 + z / 2.0 + z * z / 6.0
    return jnp.where(small, series, jnp.expm1(safe) / safe)


def logistic(x: ArrayLike) -> Array:
    """``1 / (1 + exp(-x))``."""
    return jax.nn.sigmoid(x)


def rate_sigmoid(v: ArrayLike, v_max: ArrayLike, v0: ArrayLike, r: ArrayLike) -> Array:
    """Population firing-rate sigmoid ``v_max / (1 + exp(r (v0 - v)))`` (Jansen-Rit ``S``)."""
    return v_max * jax.nn.sigmoid(r * (v - v0))


def shifted_sigmoid(x: ArrayLike, gain: ArrayLike, threshold: ArrayLike) -> Array:
    """Wilson-Cowan transfer ``F(x) = s(a (x - theta)) - s(-a theta)``, so that ``F(0) = 0``."""
    return jax.nn.sigmoid(gain * (x - threshold)) - jax.nn.sigmoid(-gain * threshold)


def second_order_synapse(
    amplitude: ArrayLike, rate: ArrayLike, drive: ArrayLike, psp: ArrayLike, velocity: ArrayLike
) -> Array:
    """Acceleration of a second-order synaptic kernel ``h(t) = A a t exp(-a t)``:

    ``y'' = A a u - 2 a y' - a^2 y``.
    """
    return amplitude * rate * drive - 2.0 * rate * velocity - rate * rate * psp


def relu(x: ArrayLike) -> Array:
    """``max(x, 0)``: the threshold-linear transfer ``[x]_+``."""
    return jnp.maximum(x, 0.0)


def tanh_gate(x: ArrayLike, threshold: ArrayLike, width: ArrayLike) -> Array:
    """Voltage-dependent gating ``(1 + tanh((x - T)/delta)) / 2`` (Larter-Breakspear)."""
    return 0.5 * (1.0 + jnp.tanh((x - threshold) / width))


def abbott_chance(x: ArrayLike, a: ArrayLike, b: ArrayLike, d: ArrayLike) -> Array:
    r"""Abbott-Chance population transfer (reduced Wong-Wang, Deco et al. 2014):

    $$H(x) = \frac{a x - b}{1 - e^{-d (a x - b)}} = \frac{1}{d\,\mathrm{exprel}(-d (a x - b))},$$

    written through `exprel` so that value and gradient are finite at the removable
    singularity $a x = b$ (where $H = 1/d$).
    """
    return 1.0 / (d * exprel(-d * (a * x - b)))
