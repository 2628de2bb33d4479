"""Jansen-Rit cortical column (Jansen & Rit 1995)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, initial, parameter
from ._math import rate_sigmoid, second_order_synapse

__all__ = ["JansenRit"]

_HZ_TO_PER_MS = 1e-3


class JansenRit(AbstractModel):
    r"""Jansen-Rit model: pyramidal (M), excitatory (E) and inhibitory (I) interneuron PSPs.

    With $S(v) = s_{max} / (1 + e^{r (v_0 - v)})$ and the second-order kernel
    $y'' = A a u - 2 a y' - a^2 y$:

    $$M'' = A_e b_e\, S(E - I + I_M) - 2 b_e M' - b_e^2 M$$
    $$E'' = A_e b_e\, (I_E + C a_2 S(C a_1 M)) - 2 b_e E' - b_e^2 E$$
    $$I'' = A_i b_i\, C a_4 S(C a_3 M + I_I) - 2 b_i I' - b_i^2 I$$

    States ``M, E, I`` in mV and ``Mv, Ev, Iv`` in mV/ms. Inputs: ``M`` and ``I`` are voltages
    (mV) entering inside the sigmoid; ``E`` is a rate (Hz, the "p" drive). Observable ``eeg``
    is $E - I$ (mV).

    With the defaults and a constant drive $p$ the rest states and their bifurcations are
    those of Grimbert & Faugeras (2006): Hopf bifurcations of the upper branch at
    $p$ = -12.15, 89.83 and 315.70 Hz, saddle-nodes at -41.3 and 113.6 Hz. Started at rest,
    the column stays there up to p = 110 Hz, runs a slow, large "spike-like" cycle at
    120-130 Hz (2.5-3 Hz, about 10 mV peak to peak) and the alpha cycle (10-11 Hz) from
    150 Hz up to the 315.7 Hz Hopf point.

    The default solver, `ExponentialEuler` (brainmass's, first order), is coarse for this
    model at the usual dt = 0.1 ms: the alpha cycle's peak-to-peak EEG is 3.56 mV at
    p = 200 Hz and 2.50 mV at 300 Hz (brainmass 0.1.1 gives the same numbers) where the
    converged values are 2.97 and 1.54 mV (``RK4`` or ``diffrax.Heun`` at 0.1 ms), and the
    cycle survives past the 315.7 Hz Hopf point (1.78 mV at 320 Hz, where the column
    rests). The error shrinks as dt (3.04 and 1.66 mV at dt = 0.01 ms); take ``RK4`` when
    amplitudes or the bifurcation points matter.
    """

    state_names: ClassVar = ("M", "E", "I", "Mv", "Ev", "Iv")
    state_units: ClassVar = {"M": "mV", "E": "mV", "I": "mV", "Mv": "mV/ms", "Ev": "mV/ms", "Iv": "mV/ms"}
    input_names: ClassVar = ("M", "E", "I")
    input_units: ClassVar = {"M": "voltage", "E": "frequency", "I": "voltage"}
    coupling_input: ClassVar = "M"
    observables: ClassVar = ("eeg",)
    observable_units: ClassVar = {"eeg": "mV"}
    # TVB's JansenRit names: its rate constants are per ms where these are in Hz.
    keyword_aliases: ClassVar = {
        "A": "Ae (TVB's A, mV)",
        "B": "Ai (TVB's B, mV)",
        "a": "be (TVB's a, in Hz here: TVB's 0.1 /ms is 100)",
        "b": "bi (TVB's b, in Hz here: TVB's 0.05 /ms is 50)",
        "J": "C (TVB's J)",
        "a_1": "a1 (TVB's a_1)",
        "a_2": "a2 (TVB's a_2)",
        "a_3": "a3 (TVB's a_3)",
        "a_4": "a4 (TVB's a_4)",
        "nu_max": "s_max = 2 nu_max, in Hz (TVB's nu_max 0.0025 /ms is s_max 5)",
        "mu": "the input E, in Hz: simulate(..., inputs={'E': 220.0}) (TVB's mu 0.22 /ms)",
    }
    input_aliases: ClassVar = {
        "p": "E here (Jansen and Rit's external drive p, in Hz)",
        "mu": "E here (TVB's mean drive mu, 0.22 /ms = 220 Hz)",
    }

    Ae: object = parameter(3.25, "voltage", doc="excitatory synaptic gain A", domain="positive")
    Ai: object = parameter(22.0, "voltage", doc="inhibitory synaptic gain B", domain="positive")
    be: object = parameter(100.0, "frequency", doc="excitatory rate constant a", domain="positive")
    bi: object = parameter(50.0, "frequency", doc="inhibitory rate constant b", domain="positive")
    C: object = parameter(135.0, doc="connectivity constant", domain="nonnegative")
    a1: object = parameter(1.0, doc="pyramidal→excitatory fraction C1/C")
    a2: object = parameter(0.8, doc="excitatory→pyramidal fraction C2/C")
    a3: object = parameter(0.25, doc="pyramidal→inhibitory fraction C3/C")
    a4: object = parameter(0.25, doc="inhibitory→pyramidal fraction C4/C")
    s_max: object = parameter(5.0, "frequency", doc="maximum firing rate (2 e0)", domain="positive")
    v0: object = parameter(6.0, "voltage", doc="sigmoid midpoint")
    r: object = parameter(0.56, "inverse_voltage", doc="sigmoid steepness", domain="positive")
    init_M: object = initial(0.0, "voltage")
    init_E: object = initial(0.0, "voltage")
    init_I: object = initial(0.0, "voltage")
    init_Mv: object = initial(0.0, "voltage_rate")
    init_Ev: object = initial(0.0, "voltage_rate")
    init_Iv: object = initial(0.0, "voltage_rate")

    def _S(self, v):
        return rate_sigmoid(v, self.s_max * _HZ_TO_PER_MS, self.v0, self.r)

    def vector_field(self, t, state, inputs):
        M, E, I = state["M"], state["E"], state["I"]
        be, bi = self.be * _HZ_TO_PER_MS, self.bi * _HZ_TO_PER_MS
        inp_M, inp_I = self.input(inputs, "M"), self.input(inputs, "I")
        inp_E = self.input(inputs, "E") * _HZ_TO_PER_MS
        drive_M = self._S(E - I + inp_M)
        drive_E = inp_E + self.C * self.a2 * self._S(self.C * self.a1 * M)
        drive_I = self.C * self.a4 * self._S(self.C * self.a3 * M + inp_I)
        return {
            "M": state["Mv"],
            "E": state["Ev"],
            "I": state["Iv"],
            "Mv": second_order_synapse(self.Ae, be, drive_M, M, state["Mv"]),
            "Ev": second_order_synapse(self.Ae, be, drive_E, E, state["Ev"]),
            "Iv": second_order_synapse(self.Ai, bi, drive_I, I, state["Iv"]),
        }

    def eeg(self, state):
        """The EEG proxy $E - I$ (mV)."""
        return state["E"] - state["I"]
