"""Harmonic-oscillator recurrent unit (HORN step)."""

from __future__ import annotations

import math
from typing import ClassVar

import jax.numpy as jnp

from ._base import AbstractModel, initial, parameter

__all__ = ["HORN"]


class HORN(AbstractModel):
    r"""Damped, driven harmonic oscillators (the HORN / coRNN unit; Rusch & Mishra 2021),
    per ms:

    $$\dot x = y, \qquad \dot y = \alpha \tanh(I + v x) - \omega^2 x - 2 \gamma y.$$

    brainmass integrates it with the semi-implicit (symplectic) Euler scheme, velocity
    first: run it with ``solver=SymplecticEuler()`` for the same numbers (any other solver
    integrates the same ODE). Input ``input`` is the drive $I$.
    """

    state_names: ClassVar = ("x", "y")
    input_names: ClassVar = ("input",)
    coupling_input: ClassVar = "input"
    symplectic_pairs: ClassVar = (("x", "y"),)

    alpha: object = parameter(0.04, doc="excitability (input gain)")
    omega: object = parameter(2.0 * math.pi / 28.0, "angular_frequency", doc="natural angular frequency")
    gamma: object = parameter(0.01, "rate", doc="damping", domain="nonnegative")
    v: object = parameter(0.0, doc="amplitude feedback of x into the drive")
    init_x: object = initial(0.0)
    init_y: object = initial(0.0)

    def vector_field(self, t, state, inputs):
        x, y = state["x"], state["y"]
        force = self.alpha * jnp.tanh(self.input(inputs, "input") + self.v * x)
        return {"x": y, "y": force - self.omega**2 * x - 2.0 * self.gamma * y}
