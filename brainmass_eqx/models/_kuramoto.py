"""(Sakaguchi-)Kuramoto phase oscillators (Kuramoto 1975; Sakaguchi & Kuramoto 1986)."""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._param import Param, read
from .._precision import matmul
from ._base import AbstractModel, Uniform, initial, parameter

__all__ = ["Kuramoto"]


class Kuramoto(AbstractModel):
    r"""$N$ = ``n_regions`` coupled phase oscillators, per ms:

    $$\dot\theta_i = \omega_i + \frac{K_i}{N} \sum_j w_{ij} \sin(\theta_j - \theta_i - \alpha) + I_i.$$

    $\alpha$ is the Sakaguchi phase lag. The $1/N$ applies when ``normalize_by_n``; the
    $j = i$ term is dropped when ``exclude_self``; $w \equiv 1$ when ``conn`` is None.
    Phases are not wrapped. Observable ``order_parameter``: $R = |\langle e^{i\theta}\rangle|$.

    Because the coupling depends on phase differences only, the exponential-Euler
    linearisation vanishes and `ExponentialEuler` is forward Euler (as in brainmass).

    **Arguments:**

    - `omega`: natural frequencies (rad/ms), scalar or per oscillator.
    - `K`: coupling strength, scalar or per oscillator.
    - `alpha`: phase lag (rad).
    - `conn`: optional weights, shape ``(N, N)`` or flattened ``(N*N,)`` (trainable when
      given as a `Param`).
    - `normalize_by_n`, `exclude_self`: see above (defaults True).
    - `init_theta`: default ``U(0, 2π)`` (needs a key).
    """

    state_names: ClassVar = ("theta",)
    input_names: ClassVar = ("theta",)
    coupling_input: ClassVar = "theta"
    observables: ClassVar = ("order_parameter",)

    omega: object = parameter(0.0, "angular_frequency", doc="natural frequency")
    K: object = parameter(0.0, "rate", doc="coupling strength (per ms, like omega)")
    alpha: object = parameter(0.0, "angle", doc="Sakaguchi phase lag")
    conn: object = None
    normalize_by_n: bool = eqx.field(default=True, static=True)
    exclude_self: bool = eqx.field(default=True, static=True)
    init_theta: object = initial(Uniform(0.0, 2.0 * math.pi))

    def __post_init__(self):
        super().__post_init__()
        if self.conn is None:
            return
        n = self.n_regions
        conn = self.conn
        if not isinstance(conn, Param):
            conn = jnp.asarray(conn, dtype=jnp.result_type(float))
        shape = jnp.shape(read(conn))
        if shape == (n * n,):
            conn = jnp.reshape(conn, (n, n)) if not isinstance(conn, Param) else conn
        elif shape != (n, n):
            raise ValueError(
                f"Kuramoto: 'conn' must have shape ({n}, {n}) or ({n * n},) for n_regions={n}, got {shape}."
            )
        self.conn = conn

    def __check_init__(self):
        conn = read(self.conn)
        if conn is not None and not isinstance(conn, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(conn))):
            raise ValueError(f"Kuramoto: 'conn' must be finite, got {np.asarray(conn)}.")

    def coupling(self, theta):
        r"""$\frac{K_i}{N}\sum_j w_{ij}\sin(\theta_j - \theta_i - \alpha)$ (per ms).

        A per-oscillator ``alpha`` is indexed by the source $j$, as in brainmass.

        Computed from sums over the sources, with $\phi_j = \theta_j - \alpha_j$:
        $\sum_j w_{ij}\sin(\phi_j - \theta_i) = \cos\theta_i \sum_j w_{ij}\sin\phi_j
        - \sin\theta_i \sum_j w_{ij}\cos\phi_j$: $4N$ sines and cosines per evaluation
        instead of $N^2$ (at 68 oscillators the pairwise sines took 90 % of a step, and
        this model was slower than brainmass's).
        """
        n = theta.shape[-1]
        phi = theta - self.alpha
        sin_phi, cos_phi = jnp.sin(phi), jnp.cos(phi)
        if self.conn is None:
            # w = 1: the sums over all sources, less the own term when it is excluded.
            sum_sin = jnp.sum(sin_phi, axis=-1, keepdims=True)
            sum_cos = jnp.sum(cos_phi, axis=-1, keepdims=True)
            if self.exclude_self:
                sum_sin, sum_cos = sum_sin - sin_phi, sum_cos - cos_phi
        else:
            w = jnp.reshape(self.conn, (n, n))
            if self.exclude_self:
                w = w * (1.0 - jnp.eye(n, dtype=w.dtype))
            # w @ f (a batch as a stack of columns): f @ w.T made XLA transpose w per step.
            sum_sin = matmul(w, sin_phi[..., None])[..., 0]
            sum_cos = matmul(w, cos_phi[..., None])[..., 0]
        total = sum_sin * jnp.cos(theta) - sum_cos * jnp.sin(theta)
        if self.normalize_by_n:
            total = total / n
        return self.K * total

    def vector_field(self, t, state, inputs):
        theta = state["theta"]
        return {"theta": self.omega + self.coupling(theta) + self.input(inputs, "theta")}

    def vector_field_and_diagonal(self, t, state, inputs):
        r"""The vector field and the exponential-Euler rate $J\,\mathbf{1}$, which is exactly
        zero: the coupling depends on phase differences only, so shifting every phase by
        the same amount changes nothing. Given in closed form: the default (a JVP) made a
        second pass over the coupling and, through the sums above, rounding errors in
        place of the zero."""
        return self.vector_field(t, state, inputs), {"theta": jnp.zeros_like(state["theta"])}

    def order_parameter(self, state):
        r"""Kuramoto order parameter $R = |\frac1N\sum_j e^{i\theta_j}|$ (last axis)."""
        theta = state["theta"]
        return jnp.hypot(jnp.mean(jnp.cos(theta), axis=-1), jnp.mean(jnp.sin(theta), axis=-1))
