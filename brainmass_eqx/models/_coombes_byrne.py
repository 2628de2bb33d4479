"""Coombes-Byrne next-generation neural mass with conductance-based synapses."""

from __future__ import annotations

import math
from typing import ClassVar

from ._base import AbstractModel, initial, parameter

__all__ = ["CoombesByrne"]


class CoombesByrne(AbstractModel):
    r"""Next-generation neural mass (Coombes & Byrne 2019), dimensionless, per ms:

    $$\dot r = \frac{\Delta}{\pi} + 2 r v - g r + I_r, \qquad
      \dot v = v^2 - (\pi r)^2 + \eta + (v_{syn} - v)\, g + I_v, \qquad g = k \pi r.$$
    """

    state_names: ClassVar = ("r", "v")
    input_names: ClassVar = ("r", "v")
    coupling_input: ClassVar = "r"

    Delta: object = parameter(1.0, doc="half-width of the excitability distribution", domain="nonnegative")
    eta: object = parameter(2.0, doc="mean excitability")
    k: object = parameter(1.0, doc="synaptic conductance per unit rate", domain="nonnegative")
    v_syn: object = parameter(-4.0, doc="synaptic reversal potential")
    init_r: object = initial(0.1)
    init_v: object = initial(0.0)

    def vector_field(self, t, state, inputs):
        r, v = state["r"], state["v"]
        g = self.k * math.pi * r
        return {
            "r": self.Delta / math.pi + 2.0 * v * r - g * r + self.input(inputs, "r"),
            "v": v**2 - (math.pi * r) ** 2 + self.eta + (self.v_syn - v) * g + self.input(inputs, "v"),
        }
