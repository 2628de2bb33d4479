"""Two-variable (x, y) oscillators: Hopf / Stuart-Landau normal form and Van der Pol."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ._base import AbstractModel, Uniform, _is_concrete, initial, parameter

__all__ = ["AbstractXYOscillator", "Hopf", "StuartLandau", "VanDerPol"]


class AbstractXYOscillator(AbstractModel):
    """A planar oscillator with states ``x``, ``y`` and additive inputs ``x``, ``y``.

    Subclasses implement `drift`, the input-free right-hand side; the inputs are added to it.
    """

    state_names: ClassVar = ("x", "y")
    input_names: ClassVar = ("x", "y")
    coupling_input: ClassVar = "x"

    def drift(self, x, y):
        raise NotImplementedError

    def vector_field(self, t, state, inputs):
        dx, dy = self.drift(state["x"], state["y"])
        return {"x": dx + self.input(inputs, "x"), "y": dy + self.input(inputs, "y")}

    def step_warning(self, dt_ms: float) -> str | None:
        # w in rad/ms is easily given in Hz or rad/s: then a step turns the oscillator by a
        # radian or more and the run aliases to a frequency nobody asked for.
        w = getattr(self, "w", None)
        if w is None or not _is_concrete(w):
            return None
        w_max = float(np.max(np.abs(np.asarray(w))))
        if w_max * dt_ms <= 0.5:  # 12 or more steps per cycle
            return None
        return (
            f"{type(self).__name__}: w * dt = {w_max * dt_ms:.3g} rad per step, over 0.5 (w = {w_max:g} rad/ms, "
            f"{w_max * 1000 / (2 * math.pi):.4g} Hz, at dt = {dt_ms:g} ms: {2 * math.pi / (w_max * dt_ms):.2g} steps "
            f"per cycle), so the run cannot follow the oscillation. w is an angular frequency in rad/ms: "
            f"10 Hz is w = 2*pi*10/1000 = 0.0628, or pass unxt.Quantity(2 * math.pi * 10, 'rad/s') (a Quantity in "
            f"Hz is refused: 2 pi is not a unit conversion). If you mean it, take a "
            f"smaller dt."
        )


class Hopf(AbstractXYOscillator):
    r"""Supercritical Hopf normal form (the whole-brain "Hopf" node).

    With $r = x^2 + y^2$ and time in ms:

    $$\dot x = (a - \beta r) x - \omega y + I_x, \qquad \dot y = (a - \beta r) y + \omega x + I_y.$$

    For $a > 0$ the node settles on a limit cycle of amplitude $\sqrt{a/\beta}$ and angular
    frequency $\omega$ (rad/ms); for $a < 0$ it decays to the fixed point 0.

    The defaults are brainmass's (``a`` 0.25, ``w`` 0.2); TVB's ``SupHopf`` defaults are
    ``a=-0.5, w=1.0``.
    """

    # TVB's SupHopf names.
    keyword_aliases: ClassVar = {"omega": "w (TVB's SupHopf omega, rad/ms)"}

    a: object = parameter(0.25, "rate", doc="bifurcation parameter (distance from the Hopf bifurcation)")
    w: object = parameter(0.2, "angular_frequency", doc="angular frequency")
    beta: object = parameter(1.0, "rate", doc="cubic saturation strength", domain="nonnegative")
    init_x: object = initial(0.0)
    init_y: object = initial(0.0)

    def drift(self, x, y):
        g = self.a - self.beta * (x * x + y * y)
        return g * x - self.w * y, g * y + self.w * x


class StuartLandau(AbstractXYOscillator):
    r"""Stuart-Landau oscillator: the Hopf normal form with $\beta = 1$.

    $$\dot x = (a - r) x - \omega y + I_x, \qquad \dot y = (a - r) y + \omega x + I_y.$$

    The default initial state is random, ``U(0, 0.05)`` (pass a key to `init_state`).
    """

    a: object = parameter(0.25, "rate", doc="bifurcation parameter")
    w: object = parameter(0.2, "angular_frequency", doc="angular frequency")
    init_x: object = initial(Uniform(0.0, 0.05))
    init_y: object = initial(Uniform(0.0, 0.05))

    def drift(self, x, y):
        g = self.a - (x * x + y * y)
        return g * x - self.w * y, g * y + self.w * x


class VanDerPol(AbstractXYOscillator):
    r"""Van der Pol oscillator in Liénard form (van der Pol 1926).

    $$\dot x = \mu (x - x^3/3 - y) + I_x, \qquad \dot y = x / \mu + I_y.$$
    """

    mu: object = parameter(1.0, doc="nonlinearity / damping strength", domain="positive")
    init_x: object = initial(Uniform(0.0, 0.05))
    init_y: object = initial(Uniform(0.0, 0.05))

    def drift(self, x, y):
        return self.mu * (x - x**3 / 3.0 - y), x / self.mu
