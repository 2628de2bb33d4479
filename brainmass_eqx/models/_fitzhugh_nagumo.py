"""FitzHugh-Nagumo neural mass (Kostova et al. 2004 form)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, Uniform, initial, parameter

__all__ = ["FitzHughNagumo"]


class FitzHughNagumo(AbstractModel):
    r"""FitzHugh-Nagumo model in the form of Kostova et al. (2004).

    $$\dot V = -\alpha V^3 + \beta V^2 + \gamma V - w + I_V, \qquad
      \dot w = (V - \delta - \epsilon w)/\tau + I_w$$

    (per ms; $\tau$ in ms).
    """

    state_names: ClassVar = ("V", "w")
    input_names: ClassVar = ("V", "w")
    coupling_input: ClassVar = "V"

    alpha: object = parameter(3.0, doc="cubic coefficient")
    beta: object = parameter(4.0, doc="quadratic coefficient")
    gamma: object = parameter(-1.5, doc="linear coefficient")
    delta: object = parameter(0.0, doc="recovery offset")
    epsilon: object = parameter(0.5, doc="recovery self-decay")
    tau: object = parameter(20.0, "time", doc="recovery time constant", domain="positive")
    init_V: object = initial(Uniform(0.0, 0.05))
    init_w: object = initial(Uniform(0.0, 0.05))

    def vector_field(self, t, state, inputs):
        V, w = state["V"], state["w"]
        dV = -self.alpha * V**3 + self.beta * V**2 + self.gamma * V - w + self.input(inputs, "V")
        dw = (V - self.delta - self.epsilon * w) / self.tau + self.input(inputs, "w")
        return {"V": dV, "w": dw}
