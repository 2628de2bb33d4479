"""Larter-Breakspear conductance-based neural mass (TVB ``LarterBreakspear``)."""

from __future__ import annotations

from typing import ClassVar

from ._base import AbstractModel, initial, parameter
from ._math import tanh_gate

__all__ = ["LarterBreakspear"]


def _p(default, doc, **kw):
    return parameter(default, doc=doc, **kw)


class LarterBreakspear(AbstractModel):
    r"""Larter et al. (1999) / Breakspear et al. (2003) neural mass, dimensionless, per ms.

    With gates $m_X = \tfrac12(1 + \tanh((V - T_X)/\delta_X))$, rates
    $Q_V = Q_{V,max}\, \tfrac12(1 + \tanh((V - V_T)/\delta_V))$,
    $Q_Z = Q_{Z,max}\, \tfrac12(1 + \tanh((Z - Z_T)/\delta_Z))$ and the coupling input $c$:

    $$\dot V = t_s[-(g_{Ca} + (1-C) r_{NMDA} a_{ee} Q_V + C r_{NMDA} a_{ee} c)\, m_{Ca} (V - V_{Ca})
      - g_K W (V - V_K) - g_L (V - V_L)$$
    $$\qquad - (g_{Na} m_{Na} + (1-C) a_{ee} Q_V + C a_{ee} c)(V - V_{Na}) - a_{ie} Z Q_Z + a_{ne} I_{ext}]$$
    $$\dot W = t_s\, \phi\, (m_K - W)/\tau_K, \qquad \dot Z = t_s\, b\, (a_{ni} I_{ext} + a_{ei} V Q_V).$$

    Observables ``QV`` and ``QZ``: the firing rates $Q_V$, $Q_Z$. In the papers (and TVB,
    with its ``HyperbolicTangent`` coupling) the regions exchange $Q_V$:
    ``Network(..., coupled_var='QV', coupling='additive')`` makes $c = k \sum_j W_{ij} Q_{V,j}$.

    A single node (measured, the other parameters at their defaults): a fixed point at
    $\delta_V$ = 0.5, a limit cycle for $\delta_V$ = 0.55-0.7 (the default 0.65
    included). TVB's documentation (after Breakspear et al. 2003) promises chaos for
    $\delta_V > 0.59$, e.g. ``d_V=0.6, aee=0.5, aie=0.5, gNa=0, Iext=0.165``; that case
    is periodic here and in TVB 2.10 (trajectories 1e-10 apart stay within 1e-9 over
    4000 ms). $\dot Z$ has no decay term, so where $a_{ni} I_{ext} + a_{ei} V Q_V$ cannot
    vanish there is no rest state: at $\delta_V$ = 0.4 ($-V Q_V \le 0.056 < 0.06$) $Z$
    grows without bound and $V$ falls below -100 (TVB alike).
    """

    state_names: ClassVar = ("V", "W", "Z")
    input_names: ClassVar = ("V",)
    coupling_input: ClassVar = "V"
    observables: ClassVar = ("QV", "QZ")

    gCa: object = _p(1.1, "Ca conductance", domain="nonnegative")
    gK: object = _p(2.0, "K conductance", domain="nonnegative")
    gL: object = _p(0.5, "leak conductance", domain="nonnegative")
    gNa: object = _p(6.7, "Na conductance", domain="nonnegative")
    TCa: object = _p(-0.01, "Ca gate threshold")
    TK: object = _p(0.0, "K gate threshold")
    TNa: object = _p(0.3, "Na gate threshold")
    d_Ca: object = _p(0.15, "Ca gate width", domain="positive")
    d_K: object = _p(0.3, "K gate width", domain="positive")
    d_Na: object = _p(0.15, "Na gate width", domain="positive")
    VCa: object = _p(1.0, "Ca reversal potential")
    VK: object = _p(-0.7, "K reversal potential")
    VL: object = _p(-0.5, "leak reversal potential")
    VNa: object = _p(0.53, "Na reversal potential")
    phi: object = _p(0.7, "K relaxation rate scale", domain="nonnegative")
    tau_K: object = parameter(1.0, "time", doc="K relaxation time constant", domain="positive")
    aee: object = _p(0.4, "excitatory-to-excitatory synaptic strength")
    aei: object = _p(2.0, "excitatory-to-inhibitory synaptic strength")
    aie: object = _p(2.0, "inhibitory-to-excitatory synaptic strength")
    ane: object = _p(1.0, "non-specific-to-excitatory strength")
    ani: object = _p(0.4, "non-specific-to-inhibitory strength")
    b: object = _p(0.1, "inhibitory time-scale factor", domain="nonnegative")
    C: object = _p(0.1, "fraction of excitation from the coupling", domain=(0.0, 1.0))
    Iext: object = _p(0.3, "non-specific external drive")
    rNMDA: object = _p(0.25, "NMDA/AMPA receptor ratio", domain="nonnegative")
    VT: object = _p(0.0, "excitatory firing threshold")
    d_V: object = _p(0.65, "excitatory firing-threshold spread", domain="positive")
    ZT: object = _p(0.0, "inhibitory firing threshold")
    d_Z: object = _p(0.7, "inhibitory firing-threshold spread", domain="positive")
    QV_max: object = _p(1.0, "maximum excitatory firing rate", domain="nonnegative")
    QZ_max: object = _p(1.0, "maximum inhibitory firing rate", domain="nonnegative")
    t_scale: object = _p(1.0, "time-scale factor (per ms)", domain="positive")
    init_V: object = initial(0.0)
    init_W: object = initial(0.0)
    init_Z: object = initial(0.0)

    def QV(self, state):
        """The excitatory firing rate $Q_V$."""
        return self.QV_max * tanh_gate(state["V"], self.VT, self.d_V)

    def QZ(self, state):
        """The inhibitory firing rate $Q_Z$."""
        return self.QZ_max * tanh_gate(state["Z"], self.ZT, self.d_Z)

    def vector_field(self, t, state, inputs):
        V, W, Z = state["V"], state["W"], state["Z"]
        c = self.input(inputs, "V")
        QV, QZ = self.QV(state), self.QZ(state)
        m_Ca = tanh_gate(V, self.TCa, self.d_Ca)
        m_Na = tanh_gate(V, self.TNa, self.d_Na)
        m_K = tanh_gate(V, self.TK, self.d_K)
        # Same operation order as brainmass: the model can be chaotic, so rounding matters.
        I_Ca = (self.gCa + (1.0 - self.C) * self.rNMDA * self.aee * QV + self.C * self.rNMDA * self.aee * c) * m_Ca * (
            V - self.VCa
        )
        I_K = self.gK * W * (V - self.VK)
        I_L = self.gL * (V - self.VL)
        I_Na = (self.gNa * m_Na + (1.0 - self.C) * self.aee * QV + self.C * self.aee * c) * (V - self.VNa)
        dV = self.t_scale * (-I_Ca - I_K - I_L - I_Na - self.aie * Z * QZ + self.ane * self.Iext)
        dW = self.t_scale * self.phi * (m_K - W) / self.tau_K
        dZ = self.t_scale * self.b * (self.ani * self.Iext + self.aei * V * QV)
        return {"V": dV, "W": dW, "Z": dZ}
