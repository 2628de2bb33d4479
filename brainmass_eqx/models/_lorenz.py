"""Lorenz (1963) system, a chaotic test fixture."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, initial, parameter

__all__ = ["Lorenz"]


class Lorenz(AbstractModel):
    r"""Lorenz system (per ms):

    $$\dot x = \sigma (y - x) + I_x,\quad \dot y = x (\rho - z) - y,\quad \dot z = x y - \beta z.$$

    Chaotic at the defaults: trajectories from nearby states separate exponentially, so
    comparisons between integrators hold only over a finite horizon. Exponential Euler at
    dt = 0.1 ms diverges; use dt = 0.01 ms or a higher-order solver.
    """

    state_names: ClassVar = ("x", "y", "z")
    input_names: ClassVar = ("x",)
    coupling_input: ClassVar = "x"

    sigma: object = parameter(10.0, doc="Prandtl number")
    rho: object = parameter(28.0, doc="Rayleigh number")
    beta: object = parameter(8.0 / 3.0, doc="geometric factor")
    init_x: object = initial(1.0)
    init_y: object = initial(1.0)
    init_z: object = initial(1.0)

    def vector_field(self, t, state, inputs):
        x, y, z = state["x"], state["y"], state["z"]
        return {
            "x": self.sigma * (y - x) + self.input(inputs, "x"),
            "y": x * (self.rho - z) - y,
            "z": x * y - self.beta * z,
        }
