"""Montbrió-Pazó-Roxin exact mean field of quadratic integrate-and-fire neurons."""

from __future__ import annotations

import math
from typing import ClassVar

from ._base import AbstractModel, Uniform, initial, parameter

__all__ = ["MontbrioPazoRoxin"]

_PER_MS_PER_HZ = 1e-3


class MontbrioPazoRoxin(AbstractModel):
    r"""Firing rate $r$ (Hz) and mean membrane potential $v$ of a population of QIF neurons
    with Lorentzian-distributed excitabilities (Montbrió, Pazó & Roxin 2015; Gast et al.
    2020), in brainmass's units (time in ms, $r$ and $\Delta$ in Hz):

    $$\tau \dot r = \frac{\Delta}{\pi} + 2 r v + I_r, \qquad
      \tau \dot v = v^2 + \eta + I_v + J \tau r - (\pi \tau r)^2,$$

    where $\tau r$ is dimensionless ($r$ in Hz times $\tau$ in ms, times $10^{-3}$). Inputs
    ``r`` (Hz) and ``v``.

    **Deliberate difference from brainmass 0.1.1:** brainmass divides $2 r v + I_r$ by a
    fixed 1 ms instead of $\tau$. The two agree at the default $\tau$ = 1 ms; this is the
    paper's equation for any $\tau$.

    The paper's dimensionless $\Delta$ is ``delta * tau / 1000``: its standard
    $\Delta = 1$ at $\tau$ = 10 ms is ``delta=100.0``. The default (brainmass's) 1 Hz at
    1 ms is $\Delta$ = 0.001, an almost homogeneous population: with $\eta = -5$,
    $J = 15$ its low state is $r^*$ = 0.0712 Hz (at $\Delta = 1$: 8.11 Hz at 10 ms,
    81.1 Hz at 1 ms, coexisting with a high state, 103.1 or 1030.6 Hz). The fixed points
    solve $-\pi^2 R^4 + J R^3 + \eta R^2 + \Delta^2/(4\pi^2) = 0$ with
    $R = \tau r / 1000$ and $v^* = -\Delta / (2\pi R)$.

    The default initial state is random: $r \sim U(0, 0.05)$ Hz, $v \sim U(0, 0.05)$.
    """

    state_names: ClassVar = ("r", "v")
    state_units: ClassVar = {"r": "Hz"}
    input_names: ClassVar = ("r", "v")
    input_units: ClassVar = {"r": "frequency"}
    coupling_input: ClassVar = "r"
    # TVB's MontbrioPazoRoxin names: its r and Delta are per ms, and its Delta per tau.
    keyword_aliases: ClassVar = {
        "Delta": "delta (in Hz: delta = 1000 * Delta / tau; TVB's Delta 1 at tau 1 is delta 1000)",
        "cr": "a Network's coupling gain (coupled_var='r', target='v', k = a * cr / 1000; "
              "docs/howto/migrating.md)",
        "V": "the state v (init_v, or the input 'v')",
    }

    tau: object = parameter(1.0, "time", doc="membrane time constant", domain="positive")
    eta: object = parameter(-5.0, doc="centre of the excitability distribution")
    delta: object = parameter(1.0, "frequency", doc="half-width of the excitability distribution", domain="nonnegative")
    J: object = parameter(15.0, doc="recurrent synaptic weight")
    init_r: object = initial(Uniform(0.0, 0.05), "frequency")
    init_v: object = initial(Uniform(0.0, 0.05))

    def vector_field(self, t, state, inputs):
        r, v = state["r"], state["v"]
        tau_r = self.tau * r * _PER_MS_PER_HZ  # dimensionless
        dr = (self.delta / math.pi + 2.0 * v * r + self.input(inputs, "r")) / self.tau
        dv = (v**2 + self.eta + self.input(inputs, "v") + self.J * tau_r - (math.pi * tau_r) ** 2) / self.tau
        return {"r": dr, "v": dv}
