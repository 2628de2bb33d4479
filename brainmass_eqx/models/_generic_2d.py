"""TVB's generic planar oscillator (Sanz-Leon et al. 2015)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, initial, parameter

__all__ = ["Generic2dOscillator"]


class Generic2dOscillator(AbstractModel):
    r"""The Generic 2D oscillator of The Virtual Brain (Sanz-Leon et al. 2015; FitzHugh
    1961; Stefanescu & Jirsa 2008), per ms:

    $$\dot V = d\,\tau\,(-f V^3 + e V^2 + g V + \alpha W + \gamma I + \gamma I_V),$$
    $$\dot W = \frac{d}{\tau}\,(a + b V + c V^2 - \beta W).$$

    $\tau$ is the (dimensionless) ratio of the two time scales. The single input ``V``
    (the coupling) is scaled by $\gamma$ like the constant drive $I$.
    """

    state_names: ClassVar = ("V", "W")
    input_names: ClassVar = ("V",)
    coupling_input: ClassVar = "V"

    a: object = parameter(-2.0, doc="constant term of the W nullcline")
    b: object = parameter(-10.0, doc="linear V term of the W nullcline")
    c: object = parameter(0.0, doc="quadratic V term of the W nullcline")
    d: object = parameter(0.02, "rate", doc="overall rate (temporal scale)", domain="positive")
    e: object = parameter(3.0, doc="quadratic V term of the V equation")
    f: object = parameter(1.0, doc="cubic V term of the V equation")
    g: object = parameter(0.0, doc="linear V term of the V equation")
    alpha: object = parameter(1.0, doc="W feedback on V")
    beta: object = parameter(1.0, doc="W self-decay")
    gamma: object = parameter(1.0, doc="gain of the drive I and of the input")
    I: object = parameter(0.0, doc="constant external drive")
    tau: object = parameter(1.0, doc="ratio of the V and W time scales", domain="positive")
    init_V: object = initial(0.0)
    init_W: object = initial(0.0)

    def vector_field(self, t, state, inputs):
        V, W = state["V"], state["W"]
        drive = self.gamma * (self.I + self.input(inputs, "V"))
        dV = self.d * self.tau * (-self.f * V**3 + self.e * V**2 + self.g * V + self.alpha * W + drive)
        dW = (self.d / self.tau) * (self.a + self.b * V + self.c * V**2 - self.beta * W)
        return {"V": dV, "W": dW}
