"""Matrix products at the inputs' full precision on every backend.

With JAX's default precision a GPU computes float32 products in TF32 (a 10-bit mantissa).
Measured on an H200 (`benchmarks/bench_gpu.py`): eight members of one ``vmap`` over the
80-region network without delays (its coupling ``W @ x`` a matrix product there) moved
2.8e-4 of their amplitude from the CPU's run in 1 s of simulation, against 9.8e-7 at full
precision, with the same run time. A CPU computes float32 products in float32 either way.
Every product of the simulation, observation and metrics paths goes through here.
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


def einsum(subscripts: str, *operands: ArrayLike, xp: Any = jnp) -> Array:
    """``xp.einsum(subscripts, *operands)``, at full precision where ``xp`` is ``jax.numpy``
    (NumPy computes in the operands' precision)."""
    if xp is np:
        return np.einsum(subscripts, *operands)
    return jnp.einsum(subscripts, *operands, precision=_FULL)
