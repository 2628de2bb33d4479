"""Wilson-Cowan excitatory-inhibitory rate model (Wilson & Cowan 1972)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, initial, parameter
from ._math import shifted_sigmoid

__all__ = ["AbstractWilsonCowan", "WilsonCowan"]


class AbstractWilsonCowan(AbstractModel):
    r"""Two populations with refractory saturation:

    $$\tau_E \dot r_E = -r_E + (1 - r\, r_E)\, F_E(x_E), \qquad
      \tau_I \dot r_I = -r_I + (1 - r\, r_I)\, F_I(x_I),$$

    where the drives $x_E, x_I$ (which include the external inputs ``rE``, ``rI``) and the
    transfer functions are what variants change. Subclasses implement `rates`, returning
    $(F_E(x_E), F_I(x_I))$; the refractory factor uses the field ``r``.
    """

    state_names: ClassVar = ("rE", "rI")
    input_names: ClassVar = ("rE", "rI")
    coupling_input: ClassVar = "rE"

    def rates(self, rE, rI, inp_E, inp_I):
        raise NotImplementedError

    def vector_field(self, t, state, inputs):
        rE, rI = state["rE"], state["rI"]
        FE, FI = self.rates(rE, rI, self.input(inputs, "rE"), self.input(inputs, "rI"))
        return {
            "rE": (-rE + (1.0 - self.r * rE) * FE) / self.tau_E,
            "rI": (-rI + (1.0 - self.r * rI) * FI) / self.tau_I,
        }


class WilsonCowan(AbstractWilsonCowan):
    r"""Wilson-Cowan model with sigmoidal transfer $F(x; a, \theta) = s(a(x-\theta)) - s(-a\theta)$:

    $$x_E = w_{EE} r_E - w_{IE} r_I + I_E, \qquad x_I = w_{EI} r_E - w_{II} r_I + I_I.$$

    ``wIE`` is the I→E weight and ``wEI`` the E→I weight (brainmass's naming).
    """

    tau_E: object = parameter(1.0, "time", doc="excitatory time constant", domain="positive")
    a_E: object = parameter(1.2, doc="excitatory sigmoid gain", domain="positive")
    theta_E: object = parameter(2.8, doc="excitatory sigmoid threshold")
    tau_I: object = parameter(1.0, "time", doc="inhibitory time constant", domain="positive")
    a_I: object = parameter(1.0, doc="inhibitory sigmoid gain", domain="positive")
    theta_I: object = parameter(4.0, doc="inhibitory sigmoid threshold")
    wEE: object = parameter(12.0, doc="E→E weight", domain="nonnegative")
    wIE: object = parameter(4.0, doc="I→E weight", domain="nonnegative")
    wEI: object = parameter(13.0, doc="E→I weight", domain="nonnegative")
    wII: object = parameter(11.0, doc="I→I weight", domain="nonnegative")
    r: object = parameter(1.0, doc="refractoriness", domain="nonnegative")
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)

    def rates(self, rE, rI, inp_E, inp_I):
        xE = self.wEE * rE - self.wIE * rI + inp_E
        xI = self.wEI * rE - self.wII * rI + inp_I
        return shifted_sigmoid(xE, self.a_E, self.theta_E), shifted_sigmoid(xI, self.a_I, self.theta_I)
