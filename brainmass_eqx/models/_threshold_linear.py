"""Two-population threshold-linear rate node (Chaudhuri et al. 2015)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, initial, parameter
from ._math import relu

__all__ = ["ThresholdLinear"]


class ThresholdLinear(AbstractModel):
    r"""Threshold-linear excitatory/inhibitory rates (Chaudhuri et al. 2015):

    $$\tau_E \dot E = -E + \beta_E [I_E]_+, \qquad \tau_I \dot I = -I + \beta_I [I_I]_+,$$

    with $[x]_+ = \max(x, 0)$ and both rates projected onto $E, I \ge 0$ after every step
    (`post_step`), as brainmass does.

    **Deliberate difference from brainmass 0.1.1:** brainmass integrates
    $\tau_I \dot I = +I - \beta_I [I_I]_+$ (the sign of its own docstring and of the paper
    is $-I$), so that with any positive drive its $I$ is pushed below 0 and clipped to 0
    forever. This is the paper's equation.

    **Arguments:** `tau_E`, `tau_I` (time constants, default 20 ms and 10 ms), `beta_E`,
    `beta_I` (gains of the rectified inputs), `init_E`, `init_I`. Inputs ``E`` and ``I``
    are the drives $I_E$, $I_I$.
    """

    state_names: ClassVar = ("E", "I")
    input_names: ClassVar = ("E", "I")
    coupling_input: ClassVar = "E"
    # The rectifying projection is a discontinuity an adaptive controller cannot see.
    supports_adaptive: ClassVar = False

    tau_E: object = parameter(20.0, "time", doc="excitatory time constant", domain="positive")
    tau_I: object = parameter(10.0, "time", doc="inhibitory time constant", domain="positive")
    beta_E: object = parameter(0.066, doc="excitatory input gain", domain="nonnegative")
    beta_I: object = parameter(0.351, doc="inhibitory input gain", domain="nonnegative")
    init_E: object = initial(0.0)
    init_I: object = initial(0.0)

    def vector_field(self, t, state, inputs):
        return {
            "E": (-state["E"] + self.beta_E * relu(self.input(inputs, "E"))) / self.tau_E,
            "I": (-state["I"] + self.beta_I * relu(self.input(inputs, "I"))) / self.tau_I,
        }

    def post_step(self, state):
        return {name: relu(value) if name in ("E", "I") else value for name, value in state.items()}
