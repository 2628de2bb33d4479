"""The 6-D Epileptor (Jirsa et al. 2014; TVB ``Epileptor``)."""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp

from ._base import AbstractModel, initial, parameter

__all__ = ["Epileptor"]


class Epileptor(AbstractModel):
    r"""The Epileptor (Jirsa et al. 2014; Proix et al. 2014), per ms with time scale $t_t$:

    $$\dot x_1 = t_t(y_1 - z + I_{ext} + K_{vf} c_1 + f_1 x_1),\qquad \dot y_1 = t_t(c - d x_1^2 - y_1),$$
    $$\dot z = t_t\, r\,(h - z + K_s c_1),$$
    $$\dot x_2 = t_t(-y_2 + x_2 - x_2^3 + I_{ext2} + b_b g - 0.3 (z - 3.5) + K_f c_2),\qquad
      \dot y_2 = t_t(-y_2 + f_2)/\tau,\qquad \dot g = -0.01\, t_t (g - 0.1 x_1),$$

    with $f_1 = -a x_1^2 + b x_1$ if $x_1 < 0$ else $\mathrm{slope} - x_2 + 0.6 (z - 4)^2$,
    $f_2 = 0$ if $x_2 < -0.25$ else $a_a (x_2 + 0.25)$, and
    $h = m\,(x_0 + 3/(1 + e^{-(x_1 + 0.5)/0.1})) + (1 - m)(4 (x_1 - x_0) + z_{nl})$,
    $z_{nl} = -0.1 z^7$ for $z < 0$ else 0 ($m$ = ``modification``). Inputs $c_1$ = ``x1``
    (through ``Kvf`` and ``Ks``) and $c_2$ = ``x2`` (through ``Kf``); the coupling gains
    default to 0. Noise attached to ``x1`` or ``x2`` (``with_noise(model, noise_x1=...)``)
    adds to that state's derivative, as brainmass's ``noise_x1`` / ``noise_x2``
    (``enters='input'`` routes it through the gains instead). Observable ``lfp`` $= x_2 - x_1$.

    $x_0$ sets the excitability: below about $-2.05$ the node rests, above it seizures
    start and stop, driven by the slow permittivity variable $z$.
    """

    state_names: ClassVar = ("x1", "y1", "z", "x2", "y2", "g")
    input_names: ClassVar = ("x1", "x2")
    coupling_input: ClassVar = "x1"
    # brainmass's noise_x1 / noise_x2 add to the derivatives of x1 and x2, whatever the gains;
    # through the inputs the noise would be scaled by Kvf, Ks and Kf, which default to 0.
    noise_enters: ClassVar = {"x1": "derivative", "x2": "derivative"}
    # TVB's Epileptor declares s, which none of its equations use.
    keyword_aliases: ClassVar = {"s": "not read by any equation (TVB's Epileptor declares s but never uses it: drop the keyword)"}
    observables: ClassVar = ("lfp",)

    a: object = parameter(1.0, doc="cubic coefficient of population 1")
    b: object = parameter(3.0, doc="quadratic coefficient of population 1")
    c: object = parameter(1.0, doc="additive coefficient of y1")
    d: object = parameter(5.0, doc="quadratic coefficient of y1")
    r: object = parameter(0.00035, doc="time-scale separation of the slow variable z", domain="nonnegative")
    x0: object = parameter(-1.6, doc="epileptogenicity (excitability threshold)")
    Iext: object = parameter(3.1, doc="external input to population 1")
    slope: object = parameter(0.0, doc="linear coefficient of f1 for x1 >= 0")
    Iext2: object = parameter(0.45, doc="external input to population 2")
    tau: object = parameter(10.0, "time", doc="time constant of y2", domain="positive")
    aa: object = parameter(6.0, doc="slope of f2")
    bb: object = parameter(2.0, doc="coupling of g into x2")
    Kvf: object = parameter(0.0, doc="coupling gain of input x1 on x1 (fast)")
    Kf: object = parameter(0.0, doc="coupling gain of input x2 on x2")
    Ks: object = parameter(0.0, doc="coupling gain of input x1 on z (slow)")
    tt: object = parameter(1.0, "rate", doc="time-scale factor", domain="positive")
    modification: object = parameter(0.0, doc="weight of the nonlinear form of h (0 linear, 1 nonlinear)")
    init_x1: object = initial(-1.5)
    init_y1: object = initial(-10.0)
    init_z: object = initial(3.5)
    init_x2: object = initial(-1.0)
    init_y2: object = initial(0.0)
    init_g: object = initial(0.0)

    def vector_field(self, t, state, inputs):
        x1, y1, z, x2, y2, g = (state[n] for n in self.state_names)
        c1, c2 = self.input(inputs, "x1"), self.input(inputs, "x2")
        tt = self.tt
        f1 = jnp.where(x1 < 0.0, -self.a * x1**2 + self.b * x1, self.slope - x2 + 0.6 * (z - 4.0) ** 2)
        f2 = jnp.where(x2 < -0.25, jnp.zeros_like(x2), self.aa * (x2 + 0.25))
        z_nl = jnp.where(z < 0.0, -0.1 * z**7, jnp.zeros_like(z))
        h_nonlinear = self.x0 + 3.0 / (1.0 + jnp.exp(-(x1 + 0.5) / 0.1))
        h_linear = 4.0 * (x1 - self.x0) + z_nl
        h = self.modification * h_nonlinear + (1.0 - self.modification) * h_linear
        return {
            "x1": tt * (y1 - z + self.Iext + self.Kvf * c1 + f1 * x1),
            "y1": tt * (self.c - self.d * x1**2 - y1),
            "z": tt * self.r * (h - z + self.Ks * c1),
            "x2": tt * (-y2 + x2 - x2**3 + self.Iext2 + self.bb * g - 0.3 * (z - 3.5) + self.Kf * c2),
            "y2": tt * (-y2 + f2) / self.tau,
            "g": tt * (-0.01 * (g - 0.1 * x1)),
        }

    def lfp(self, state):
        """The LFP proxy $x_2 - x_1$."""
        return state["x2"] - state["x1"]
