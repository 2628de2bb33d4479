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
