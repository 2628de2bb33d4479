"""Maths shared by several models (one definition each)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import batching, mlir
from jaxtyping import Array, ArrayLike

from .. import _native

# ln 2 = _LN2_HI + _LN2_LO, _LN2_HI with few enough bits that n * _LN2_HI is exact.
_LN2_HI, _LN2_LO, _INV_LN2 = 0.693145751953125, 1.4286068203094172e-06, 1.4426950408889634
# Per dtype: (mantissa bits, exponent bias, integer type, Taylor degree, |z| handled, overflow)
_EXPREL_FORMATS = {
    jnp.dtype(jnp.float32): (23, 127, jnp.int32, 7, 87.0, 88.0),
    jnp.dtype(jnp.float64): (52, 1023, jnp.int64, 13, 707.0, 709.0),
}


def exprel(z: ArrayLike) -> Array:
    r"""$\mathrm{exprel}(z) = (e^z - 1)/z$, with $\mathrm{exprel}(0) = 1$; finite value and
    gradient wherever $e^z$ is finite.

    With $z = n \ln 2 + r$, $n$ an integer and $|r| \le \ln 2 / 2$,
    $e^z - 1 = 2^n\, r\, \mathrm{exprel}(r) + (2^n - 1)$, and $\mathrm{exprel}(r)$ is its
    Taylor series $\sum_k r^k / (k+1)!$ (degree 7 in float32, 13 in float64: error below
    3 ulp). Where $n = 0$ that series is the result, with no division. Only multiply-adds,
    one division and selects: on a CPU about 1.5x faster than XLA's ``expm1`` and division,
    which dominated a batched exponential-Euler step. The derivative is
    $(e^z - \mathrm{exprel}(z))/z$, or the series' derivative where $n = 0$ (a rule of its
    own: differentiating through the selects made XLA split a reverse step into many small
    kernels). Beyond the overflow of $e^z$ the result is ``inf``; below $-87$ (float32) it
    is $-1/z$ to rounding. float16 and bfloat16 are computed in float32.

    On a CPU an array of at least `NATIVE_EXPREL_MIN_SIZE` elements (an ensemble's state:
    16 members of 80 regions) is evaluated by a native kernel (``_kernels/exprel.cc``),
    with the same results bit for bit (the same operations, less a range reduction that
    cannot change a bit where every |z| < 1/3): XLA split the fused update
    of such a state across its threads at every step, which cost more than it saved.
    """
    z = jnp.asarray(z)
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = z.astype(jnp.result_type(float))
    if z.dtype not in _EXPREL_FORMATS:
        return exprel(z.astype(jnp.float32)).astype(z.dtype)
    return _exprel(z)


def _exprel_parts(z: Array) -> tuple[Array, Array]:
    """``(exprel(z), d exprel / dz)``."""
    bits, bias, int_type, degree, low, high = _EXPREL_FORMATS[z.dtype]
    clipped = jnp.clip(z, -low, high)
    n = jnp.round(clipped * _INV_LN2)
    r = (clipped - n * _LN2_HI) - n * _LN2_LO
    # Horner's scheme for the series and its derivative together.
    series = jnp.full_like(r, 1.0 / math.factorial(degree + 1))
    slope = jnp.zeros_like(r)
    for k in range(degree - 1, -1, -1):
        slope = slope * r + series
        series = series * r + 1.0 / math.factorial(k + 1)
    two_n = jax.lax.bitcast_convert_type((n.astype(int_type) + bias) << bits, z.dtype)
    whole = n == 0
    safe = jnp.where(whole, 1.0, z)
    expm1_r = r * series
    exp_z = two_n * (expm1_r + 1.0)
    reduced = (two_n * expm1_r + (two_n - 1.0)) / safe
    value = jnp.where(whole, series, reduced)
    derivative = jnp.where(whole, slope, (exp_z - value) / safe)
    overflow = z > high
    return jnp.where(overflow, jnp.inf, value), jnp.where(overflow, jnp.inf, derivative)


def _exprel_value(z: Array) -> Array:
    return _exprel_parts(z)[0]


# From this many elements a CPU evaluates exprel with the native kernel. Measured on 2
# cores (exponential-Euler Hopf, 80 regions): XLA fused and on one thread up to 8
# members; from 16 members it split the update across threads, 2x slower per step.
NATIVE_EXPREL_MIN_SIZE = 1024

# The value only: its derivative is `_exprel`'s rule, so the primitive needs no JVP.
_exprel_p = Primitive("bmx_exprel")
_exprel_p.def_impl(_exprel_value)
_exprel_p.def_abstract_eval(lambda z: jax.core.ShapedArray(z.shape, z.dtype))
mlir.register_lowering(_exprel_p, mlir.lower_fun(_exprel_value, multiple_results=False))
batching.primitive_batchers[_exprel_p] = lambda args, dims: (_exprel_p.bind(*args), dims[0])


def _native_exprel(z: Array) -> Array:
    return jax.ffi.ffi_call(_native.target("exprel"), jax.ShapeDtypeStruct(z.shape, z.dtype))(z)


_native.register_cpu_lowering(
    _exprel_p,
    _exprel_value,
    _native_exprel,
    lambda avals: avals[0].size >= NATIVE_EXPREL_MIN_SIZE
    and avals[0].dtype in _EXPREL_FORMATS  # the kernel's formats are exprel's
    and _native.native_kernels_available(),
    False,
)


@jax.custom_jvp
def _exprel(z: Array) -> Array:
    return _exprel_p.bind(z)


@_exprel.defjvp
def _exprel_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    value, derivative = _exprel_parts(z)
    return value, derivative * dz


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
