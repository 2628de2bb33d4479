"""The model catalogue: brainmass's `list_models` and a richer, introspectable registry."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from typing import Any, NamedTuple

from .._checks import did_you_mean
from .._text import table, value_text
from .._units import CANONICAL_UNITS
from ._base import AbstractModel, default_coupled_state
from ._coombes_byrne import CoombesByrne
from ._epileptor import Epileptor
from ._fitzhugh_nagumo import FitzHughNagumo
from ._generic_2d import Generic2dOscillator
from ._horn import HORN
from ._jansen_rit import JansenRit
from ._kuramoto import Kuramoto
from ._larter_breakspear import LarterBreakspear
from ._linear import Linear
from ._lorenz import Lorenz
from ._montbrio import MontbrioPazoRoxin
from ._oscillators import Hopf, StuartLandau, VanDerPol
from ._sequence import (
    HORNSeqLayer,
    HORNSeqNetwork,
    JansenRit2Layer,
    JansenRitLayer,
    JansenRitNetwork,
    JansenRitTR,
    WilsonCowanSeqLayer,
    WilsonCowanSeqNetwork,
)
from ._threshold_linear import ThresholdLinear
from ._wilson_cowan import (
    WilsonCowan,
    WilsonCowanAdaptive,
    WilsonCowanDelayed,
    WilsonCowanDivisive,
    WilsonCowanDivisiveInput,
    WilsonCowanLinear,
    WilsonCowanNoSaturation,
    WilsonCowanSimplified,
    WilsonCowanSymmetric,
    WilsonCowanThreePopulation,
)
from ._wong_wang import ReducedWongWang, WongWang, WongWangExcInh

__all__ = ["ModelInfo", "ModelDescription", "list_models", "model_registry", "describe_model"]


class ModelInfo(NamedTuple):
    """One row of `list_models` (brainmass's record, brainmass's names).

    **Fields:**

    - `name`: brainmass's class name (``'HopfStep'``).
    - `category`: ``'phenomenological'``, ``'physiological'``, ...
    - `n_state_vars`: the number of state variables per region.
    - `use_case`: what the model is typically used for, in a few words.
    """

    name: str
    category: str
    n_state_vars: int
    use_case: str

    def __repr__(self) -> str:
        return (
            f"ModelInfo(name={self.name!r}, category={self.category!r}, "
            f"n_state_vars={self.n_state_vars}, use_case={self.use_case!r})"
        )


# brainmass 0.1.1's catalogue, verbatim (spec section 2.1).
_BRAINMASS_CATALOGUE = (
    ModelInfo("HopfStep", "phenomenological", 2, "Oscillation onset, rhythm generation"),
    ModelInfo("VanDerPolStep", "phenomenological", 2, "Nonlinear relaxation oscillations"),
    ModelInfo("StuartLandauStep", "phenomenological", 2, "Amplitude-controlled oscillations"),
    ModelInfo("FitzHughNagumoStep", "phenomenological", 2, "Excitability, spike generation"),
    ModelInfo("ThresholdLinearStep", "phenomenological", 2, "Fast linear E-I responses"),
    ModelInfo("Generic2dOscillatorStep", "phenomenological", 2, "Flexible planar dynamics (TVB)"),
    ModelInfo("LorenzStep", "phenomenological", 3, "Chaos, coupling test fixture"),
    ModelInfo("LinearStep", "phenomenological", 1, "Baseline node, coupling sanity checks"),
    ModelInfo("WilsonCowanStep", "physiological", 2, "E-I population firing-rate dynamics"),
    ModelInfo("JansenRitStep", "physiological", 6, "EEG generation, alpha rhythms"),
    ModelInfo("WongWangStep", "physiological", 2, "Decision making (perceptual choice)"),
    ModelInfo("WongWangExcInhStep", "physiological", 2, "Resting-state BOLD/FC, E-I balance"),
    ModelInfo("MontbrioPazoRoxinStep", "physiological", 2, "Exact QIF mean-field (theta neurons)"),
    ModelInfo("CoombesByrneStep", "physiological", 2, "Next-gen mean-field, conductance synapses"),
    ModelInfo("LarterBreakspearStep", "physiological", 3, "Conductance-based limit cycles / chaos"),
    ModelInfo("EpileptorStep", "physiological", 6, "Seizure onset/offset, epilepsy"),
    ModelInfo("KuramotoNetwork", "network", 1, "Phase synchronization"),
    ModelInfo("HORNStep", "network", 2, "Single coupled-oscillator step"),
    ModelInfo("HORNSeqLayer", "network", 2, "Sequential HORN layer"),
    ModelInfo("HORNSeqNetwork", "network", 2, "Multi-layer HORN sequence network"),
)


def _to_table() -> str:
    header = ("name", "category", "#states", "use_case")
    rows = [(m.name, m.category, str(m.n_state_vars), m.use_case) for m in _BRAINMASS_CATALOGUE]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    fmt = "  ".join("{:<" + str(w) + "}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*r) for r in rows])


def list_models() -> list[ModelInfo]:
    """brainmass 0.1.1's model catalogue: 20 `ModelInfo` records under brainmass's names
    (a fresh list). ``list_models.to_table()`` renders it as an aligned text table.

    `model_registry` describes every functional model of this package.
    """
    return list(_BRAINMASS_CATALOGUE)


list_models.to_table = _to_table


@dataclasses.dataclass(frozen=True)
class ModelDescription:
    """What the registry knows about one model.

    **Fields:**

    - `name`: the functional class name (``Hopf``); `cls`: the class.
    - `brainmass_name`: brainmass's class (``HopfStep``), or None.
    - `category`, `use_case`: as in brainmass's catalogue (filled in for the variants).
    - `reference`: the paper(s) the equations come from.
    - `states`: ``{name: unit}``; `inputs`: ``{name: unit}``; `observables`: names.
    - `parameters`: ``{name: {'default', 'unit', 'doc', 'domain'}}``.
    - `initial`: ``{state: default initial value}`` (a `Uniform` for random ones).
    - `summary`: the first line of the class docstring.
    """

    name: str
    cls: type
    brainmass_name: str | None
    category: str
    use_case: str
    reference: str
    states: dict[str, str]
    inputs: dict[str, str]
    observables: tuple[str, ...]
    parameters: dict[str, dict[str, Any]]
    initial: dict[str, Any]
    summary: str

    @property
    def observable_units(self) -> dict[str, str]:
        """``{observable: unit}`` (``''``: dimensionless)."""
        units = getattr(self.cls, "observable_units", {})
        return {o: units.get(o, "") for o in self.observables}

    def __str__(self) -> str:
        """The model's page as plain text (what ``brainmass-eqx models NAME`` prints):
        the docstring's equations, states, inputs, observables, a table of parameters
        (default, unit, domain, meaning) and the reference."""
        unit = lambda u: u if u else "1"  # noqa: E731
        title = self.name + (f"  (brainmass: {self.brainmass_name})" if self.brainmass_name else "")
        lines = [title, "", inspect.cleandoc(self.cls.__doc__ or "").strip(), ""]
        lines.append("states:      " + ", ".join(f"{s} [{unit(u)}]" for s, u in self.states.items()))
        lines.append("inputs:      " + ", ".join(f"{s} [{unit(u)}]" for s, u in self.inputs.items()))
        reads = default_coupled_state(self.cls)
        reads = f", a Network reads state {reads!r}" if reads else ""
        lines.append(f"coupling:    input {self.cls.coupling_input!r}{reads}")
        if self.observables:
            lines.append("observables: " + ", ".join(f"{o} [{unit(u)}]" for o, u in self.observable_units.items()))
        rows = []
        for name, spec in self.parameters.items():
            domain = spec["domain"]
            domain = domain if isinstance(domain, str) else f"[{domain[0]}, {domain[1]}]"
            rows.append((name, value_text(spec["default"]), unit(spec["unit"]), domain, spec["doc"]))
        lines += ["", table(("parameter", "default", "unit", "domain", "meaning"), rows)]
        if self.reference:
            lines += ["", "reference:", textwrap.fill(self.reference, 92, initial_indent="  ", subsequent_indent="  ")]
        return "\n".join(lines)

    def __repr__(self) -> str:
        # The dataclass repr printed every field on one line (a page of text); print() or
        # str() gives the readable page.
        return f"ModelDescription({self.name!r}, category={self.category!r}; print() it for the full page)"

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython / Jupyter display
        printer.text(str(self))


_WC1972 = (
    "Wilson, H. R., & Cowan, J. D. (1972). Excitatory and inhibitory interactions in localized "
    "populations of model neurons. Biophysical Journal, 12(1), 1-24."
)
_TVB = (
    "Sanz-Leon, P., Knock, S. A., Spiegler, A., & Jirsa, V. K. (2015). Mathematical framework for "
    "large-scale brain network modeling in The Virtual Brain. NeuroImage, 111, 385-430."
)

# name -> (class, brainmass name, category, use case, reference)
_ENTRIES: dict[str, tuple] = {
    "Hopf": (Hopf, "HopfStep", "phenomenological", "Oscillation onset, rhythm generation",
             "Deco, G., Kringelbach, M. L., Jirsa, V. K., & Ritter, P. (2017). The dynamics of resting "
             "fluctuations in the brain: metastability and its dynamical cortical core. Scientific "
             "Reports, 7, 3095."),
    "StuartLandau": (StuartLandau, "StuartLandauStep", "phenomenological", "Amplitude-controlled oscillations",
                     "Kuramoto, Y. (1984). Chemical Oscillations, Waves, and Turbulence. Springer."),
    "VanDerPol": (VanDerPol, "VanDerPolStep", "phenomenological", "Nonlinear relaxation oscillations",
                  "van der Pol, B. (1926). On relaxation-oscillations. Philosophical Magazine, 2(11), 978-992."),
    "FitzHughNagumo": (FitzHughNagumo, "FitzHughNagumoStep", "phenomenological", "Excitability, spike generation",
                       "Kostova, T., Ravindran, R., & Schonbek, M. (2004). FitzHugh-Nagumo revisited: types of "
                       "bifurcations, periodical forcing and stability regions by a Lyapunov functional. "
                       "International Journal of Bifurcation and Chaos, 14(3), 913-925."),
    "ThresholdLinear": (ThresholdLinear, "ThresholdLinearStep", "phenomenological", "Fast linear E-I responses",
                        "Chaudhuri, R., Knoblauch, K., Gariel, M.-A., Kennedy, H., & Wang, X.-J. (2015). A "
                        "large-scale circuit mechanism for hierarchical dynamical processing in the primate "
                        "cortex. Neuron, 88(2), 419-431."),
    "Generic2dOscillator": (Generic2dOscillator, "Generic2dOscillatorStep", "phenomenological",
                            "Flexible planar dynamics (TVB)", _TVB),
    "Lorenz": (Lorenz, "LorenzStep", "phenomenological", "Chaos, coupling test fixture",
               "Lorenz, E. N. (1963). Deterministic nonperiodic flow. Journal of the Atmospheric Sciences, "
               "20(2), 130-141."),
    "Linear": (Linear, "LinearStep", "phenomenological", "Baseline node, coupling sanity checks", _TVB),
    "WilsonCowan": (WilsonCowan, "WilsonCowanStep", "physiological", "E-I population firing-rate dynamics", _WC1972),
    "WilsonCowanNoSaturation": (WilsonCowanNoSaturation, "WilsonCowanNoSaturationStep", "physiological",
                                "E-I rates without refractory saturation", _WC1972),
    "WilsonCowanSymmetric": (WilsonCowanSymmetric, "WilsonCowanSymmetricStep", "physiological",
                             "E-I rates with shared time constant and sigmoid", _WC1972),
    "WilsonCowanSimplified": (WilsonCowanSimplified, "WilsonCowanSimplifiedStep", "physiological",
                              "E-I rates with one shared drive", _WC1972),
    "WilsonCowanLinear": (WilsonCowanLinear, "WilsonCowanLinearStep", "physiological",
                          "E-I rates with threshold-linear transfer", _WC1972),
    "WilsonCowanDivisive": (WilsonCowanDivisive, "WilsonCowanDivisiveStep", "physiological",
                            "E-I rates with divisive output normalisation",
                            _WC1972 + " Carandini, M., & Heeger, D. J. (2012). Normalization as a canonical "
                            "neural computation. Nature Reviews Neuroscience, 13(1), 51-62."),
    "WilsonCowanDivisiveInput": (WilsonCowanDivisiveInput, "WilsonCowanDivisiveInputStep", "physiological",
                                 "E-I rates with divisive input normalisation",
                                 _WC1972 + " Carandini, M., & Heeger, D. J. (2012). Normalization as a "
                                 "canonical neural computation. Nature Reviews Neuroscience, 13(1), 51-62."),
    "WilsonCowanDelayed": (WilsonCowanDelayed, "WilsonCowanDelayedStep", "physiological",
                           "E-I rates with synaptic delays", _WC1972),
    "WilsonCowanAdaptive": (WilsonCowanAdaptive, "WilsonCowanAdaptiveStep", "physiological",
                            "E-I rates with spike-frequency adaptation",
                            _WC1972 + " Benda, J., & Herz, A. V. M. (2003). A universal model for "
                            "spike-frequency adaptation. Neural Computation, 15(11), 2523-2564."),
    "WilsonCowanThreePopulation": (WilsonCowanThreePopulation, "WilsonCowanThreePopulationStep", "physiological",
                                   "E-I rates with a modulatory population", _WC1972),
    "JansenRit": (JansenRit, "JansenRitStep", "physiological", "EEG generation, alpha rhythms",
                  "Jansen, B. H., & Rit, V. G. (1995). Electroencephalogram and visual evoked potential "
                  "generation in a mathematical model of coupled cortical columns. Biological Cybernetics, "
                  "73(4), 357-366."),
    "WongWang": (WongWang, "WongWangStep", "physiological", "Decision making (perceptual choice)",
                 "Wong, K.-F., & Wang, X.-J. (2006). A recurrent network mechanism of time integration in "
                 "perceptual decisions. Journal of Neuroscience, 26(4), 1314-1328."),
    "ReducedWongWang": (ReducedWongWang, None, "physiological", "Resting-state BOLD/FC, one excitatory pool (TVB)",
                        "Deco, G., Ponce-Alvarez, A., Mantini, D., Romani, G. L., Hagmann, P., & Corbetta, M. "
                        "(2013). Resting-state functional connectivity emerges from structurally and dynamically "
                        "shaped slow linear fluctuations. Journal of Neuroscience, 33(27), 11239-11252."),
    "WongWangExcInh": (WongWangExcInh, "WongWangExcInhStep", "physiological", "Resting-state BOLD/FC, E-I balance",
                       "Deco, G., Ponce-Alvarez, A., Hagmann, P., Romani, G. L., Mantini, D., & Corbetta, M. "
                       "(2014). How local excitation-inhibition ratio impacts the whole brain dynamics. "
                       "Journal of Neuroscience, 34(23), 7886-7898."),
    "MontbrioPazoRoxin": (MontbrioPazoRoxin, "MontbrioPazoRoxinStep", "physiological",
                          "Exact QIF mean-field (theta neurons)",
                          "Montbrió, E., Pazó, D., & Roxin, A. (2015). Macroscopic description for networks "
                          "of spiking neurons. Physical Review X, 5(2), 021028."),
    "CoombesByrne": (CoombesByrne, "CoombesByrneStep", "physiological", "Next-gen mean-field, conductance synapses",
                     "Coombes, S., & Byrne, Á. (2019). Next generation neural mass models. In Nonlinear "
                     "Dynamics in Computational Neuroscience (pp. 1-16). Springer."),
    "LarterBreakspear": (LarterBreakspear, "LarterBreakspearStep", "physiological",
                         "Conductance-based limit cycles / chaos",
                         "Breakspear, M., Terry, J. R., & Friston, K. J. (2003). Modulation of excitatory "
                         "synaptic coupling facilitates synchronization and complex dynamics in a biophysical "
                         "model of neuronal dynamics. Network: Computation in Neural Systems, 14(4), 703-732. "
                         "Larter, R., Speelman, B., & Worth, R. M. (1999). A coupled ordinary differential "
                         "equation lattice model for the simulation of epileptic seizures. Chaos, 9(3), 795-804."),
    "Epileptor": (Epileptor, "EpileptorStep", "physiological", "Seizure onset/offset, epilepsy",
                  "Jirsa, V. K., Stacey, W. C., Quilichini, P. P., Ivanov, A. I., & Bernard, C. (2014). On the "
                  "nature of seizure dynamics. Brain, 137(8), 2210-2230."),
    "Kuramoto": (Kuramoto, "KuramotoNetwork", "network", "Phase synchronization",
                 "Kuramoto, Y. (1975). Self-entrainment of a population of coupled non-linear oscillators. "
                 "Lecture Notes in Physics, 39, 420-422. Sakaguchi, H., & Kuramoto, Y. (1986). A soluble "
                 "active rotator model showing phase transitions via mutual entrainment. Progress of "
                 "Theoretical Physics, 76(3), 576-581."),
    "HORN": (HORN, "HORNStep", "network", "Single coupled-oscillator step",
             "Rusch, T. K., & Mishra, S. (2021). Coupled oscillatory recurrent neural network (coRNN): an "
             "accurate and (gradient) stable architecture for learning long time dependencies. ICLR. "
             "Effenberger, F., Carvalho, P., Dubinin, I., & Singer, W. (2025). The functional role of "
             "oscillatory dynamics in neocortical circuits: a computational perspective. PNAS, 122(4), "
             "e2412830122."),
}


_HORN_REF = _ENTRIES["HORN"][4]
_JR_REF = _ENTRIES["JansenRit"][4]
# Sequence blocks (layers over input sequences): name -> (class, cell class, brainmass name,
# use case, reference). Their parameters are those of the cell, plus weights drawn from a key.
_BLOCKS: dict[str, tuple] = {
    "HORNSeqLayer": (HORNSeqLayer, HORN, "HORNSeqLayer", "Sequential HORN layer", _HORN_REF),
    "HORNSeqNetwork": (HORNSeqNetwork, HORN, "HORNSeqNetwork", "Multi-layer HORN sequence network", _HORN_REF),
    "WilsonCowanSeqLayer": (WilsonCowanSeqLayer, WilsonCowanNoSaturation, "WilsonCowanSeqLayer",
                            "Sequential Wilson-Cowan layer", _WC1972),
    "WilsonCowanSeqNetwork": (WilsonCowanSeqNetwork, WilsonCowanNoSaturation, "WilsonCowanSeqNetwork",
                              "Multi-layer Wilson-Cowan sequence network", _WC1972),
    "JansenRitLayer": (JansenRitLayer, JansenRit, "JansenRitLayer", "Sequential Jansen-Rit layer", _JR_REF),
    "JansenRit2Layer": (JansenRit2Layer, JansenRit, "JansenRit2Layer",
                        "Jansen-Rit layer with three recurrent pathways", _JR_REF),
    "JansenRitNetwork": (JansenRitNetwork, JansenRit, "JansenRitNetwork", "Multi-layer Jansen-Rit network", _JR_REF),
    "JansenRitTR": (JansenRitTR, JansenRit, "JansenRitTR", "Connectome-coupled Jansen-Rit, one TR per call", _JR_REF),
}


def _unit_of(kind: str) -> str:
    return CANONICAL_UNITS.get(kind, kind)


def _summary(cls) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _initial(cls) -> dict:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    return {s: (fields[f"init_{s}"].default if f"init_{s}" in fields else None) for s in cls.state_names}


def _describe(name: str) -> ModelDescription:
    if name in _BLOCKS:
        cls, cell, bm_name, use_case, reference = _BLOCKS[name]
        return ModelDescription(
            name=name, cls=cls, brainmass_name=bm_name, category="network", use_case=use_case,
            reference=reference, states={s: cell.state_units.get(s, "") for s in cell.state_names},
            inputs={"inputs": "(T, n_input) sequence"}, observables=tuple(cell.observables),
            parameters=cell.parameter_specs(), initial=_initial(cell), summary=_summary(cls),
        )
    cls, bm_name, category, use_case, reference = _ENTRIES[name]
    return _description(cls, name, bm_name, category, use_case, reference)


def _description(cls, name, bm_name, category, use_case, reference) -> ModelDescription:
    return ModelDescription(
        name=name,
        cls=cls,
        brainmass_name=bm_name,
        category=category,
        use_case=use_case,
        reference=reference,
        states={s: cls.state_units.get(s, "") for s in cls.state_names},
        inputs={i: _unit_of(cls.input_units.get(i, "dimensionless")) for i in cls.input_names},
        observables=tuple(cls.observables),
        parameters=cls.parameter_specs(),
        initial=_initial(cls),
        summary=_summary(cls),
    )


def model_registry(include_blocks: bool = False) -> dict[str, ModelDescription]:
    """``{functional name: ModelDescription}`` for every node model of the package, and
    with ``include_blocks`` also the sequence blocks (whose parameters are their cell's)."""
    names = list(_ENTRIES) + (list(_BLOCKS) if include_blocks else [])
    return {name: _describe(name) for name in names}


def describe_model(name: Any) -> ModelDescription:
    """The `ModelDescription` of a model or sequence block given by functional name
    (``'Hopf'``), brainmass name (``'HopfStep'``), class or instance; also of a model class
    of your own (an `AbstractModel` subclass), from its declarations.

    **Arguments:**

    - `name`: a functional name (``'Hopf'``), a brainmass name (``'HopfStep'``), a model
      class or a model instance.

    **Raises:** ``ValueError`` for an unknown name or a class that is not a node model.

    ``print(describe_model('Hopf'))`` shows its page: equations, states, inputs and a
    table of parameters with their defaults, units, domains and meanings."""
    everything = {**{k: v[0] for k, v in _ENTRIES.items()}, **{k: v[0] for k, v in _BLOCKS.items()}}
    if not isinstance(name, str):
        cls = name if isinstance(name, type) else type(name)
        for key, entry in everything.items():
            if entry is cls:
                return _describe(key)
        if (isinstance(cls, type) and issubclass(cls, AbstractModel) and isinstance(cls.state_names, tuple)
                and cls.vector_field is not AbstractModel.vector_field):
            # A user's own model: its declarations say all but a catalogue entry's prose.
            return _description(cls, cls.__name__, None, "user-defined", "", "")
        raise ValueError(
            f"describe_model: {cls.__name__} is neither a registered node model nor one of your own (an "
            "AbstractModel subclass with state_names and a vector_field); see model_registry()."
        )
    if name in everything:
        return _describe(name)
    for key, entry in {**_ENTRIES, **{k: (v[0], v[2]) for k, v in _BLOCKS.items()}}.items():
        if entry[1] == name:
            return _describe(key)
    raise ValueError(
        f"describe_model: unknown model name {name!r}{did_you_mean(name, everything)}; valid names are {sorted(everything)} "
        "(or their brainmass names, e.g. 'HopfStep')."
    )
