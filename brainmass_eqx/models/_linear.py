"""Linear node (TVB ``Linear``)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, initial, parameter

__all__ = ["Linear"]


class Linear(AbstractModel):
    r"""Linear relaxation node: $\dot x = \gamma x + I_x$ (per ms).

    With $\gamma < 0$ the node relaxes to $-I_x/\gamma$; driven by white noise of intensity
    $\sigma$ its stationary variance is $\sigma^2 / (2|\gamma|)$.
    """

    state_names: ClassVar = ("x",)
    input_names: ClassVar = ("x",)
    coupling_input: ClassVar = "x"

    gamma: object = parameter(-10.0, "rate", doc="rate of the linear relaxation (negative: stable)")
    init_x: object = initial(0.01)

    def vector_field(self, t, state, inputs):
        return {"x": self.gamma * state["x"] + self.input(inputs, "x")}
