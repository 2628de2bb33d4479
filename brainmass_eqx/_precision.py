"""Matrix products at the inputs' full precision on every backend.

With JAX's default precision a GPU computes float32 products in TF32 (a 10-bit mantissa).
Measured on an H200 (`benchmarks/bench_gpu.py`, 1 s of the 80-region Hopf network): eight
members of one ``vmap`` without delays (the coupling ``W @ x`` a matrix product there) moved
2.8e-4 of their amplitude from the CPU's run, against 9.8e-7 at full precision; 4,096
members with delays (the delay read's weighted sum a product over the members) left the
full-precision trajectories by up to 0.65 (x of order sqrt(a) <= 0.55). At 256 members full
precision costs nothing there; from 4,096 members on it is 2.8-4.5x slower than TF32, a
price for results that are right. A CPU computes float32 products in float32 either way.
Every product and direct convolution of the simulation, observation and metrics paths goes
through here (`tests/test_precision.py` checks the lowered programs' products).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

_FULL = jax.lax.Precision.HIGHEST


def matmul(a: ArrayLike, b: ArrayLike) -> Array:
    """``a @ b`` at full precision."""
    return jnp.matmul(a, b, precision=_FULL)


def tensordot(a: ArrayLike, b: ArrayLike, axes) -> Array:
    """``jnp.tensordot(a, b, axes)`` at full precision."""
    return jnp.tensordot(a, b, axes=axes, precision=_FULL)


def convolve(a: ArrayLike, v: ArrayLike, mode: str) -> Array:
    """``jnp.convolve(a, v, mode)`` at full precision (a GPU lowers it to a product too)."""
    return jnp.convolve(a, v, mode=mode, precision=_FULL)


def einsum(subscripts: str, *operands: ArrayLike, xp: Any = jnp) -> Array:
    """``xp.einsum(subscripts, *operands)``, at full precision where ``xp`` is ``jax.numpy``
    (NumPy computes in the operands' precision)."""
    if xp is np:
        return np.einsum(subscripts, *operands)
    return jnp.einsum(subscripts, *operands, precision=_FULL)
