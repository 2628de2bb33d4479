"""brainmass 0.1.1's documented API on brainmass_eqx: ``import brainmass_eqx.compat as brainmass``.

A thin stateful facade. Models (``HopfStep(in_size, ...)``), ``init_all_states``,
``update``, ``model.x.value``, ``Simulator``, ``Network``, ``Fitter``/``FitResult``,
noise classes, coupling kernels, observation models, ``objectives``, ``datasets``,
``viz`` and ``list_models`` keep brainmass's names, signatures, defaults and error
messages; every computation is done by the functional core (``brainmass_eqx.models``,
``noise``, ``simulate``, ``fit``, ``metrics``, ``observation``).

brainmass's submodules are there too (``brainmass_eqx.compat.noise.OUProcess``,
``from brainmass_eqx.compat.hopf import HopfStep``), holding the same objects.

``brainmass_eqx.compat.brainstate``, ``.braintools`` and ``.brainunit`` hold the parts of
those libraries that brainmass's documentation uses; `install` registers all four under
their own names, so an unchanged brainmass script runs after
``import brainmass_eqx.compat; brainmass_eqx.compat.install()``.

The deliberate differences from brainmass (fixed defects) are listed in
``docs/compat.md``.
"""

from __future__ import annotations

import warnings as _warnings
from collections.abc import Callable as _Callable
from typing import Any as _Any

from ..models import ModelInfo, list_models
from . import (
    brainstate as brainstate,
    braintools as braintools,
    brainunit as brainunit,
    datasets,
    objectives,
    viz,
)
from ._coupling import (
    AdditiveCoupling,
    DiffusiveCoupling,
    HyperbolicTangentCoupling,
    LaplacianConnParam,
    SigmoidalCoupling,
    SigmoidalJansenRitCoupling,
    additive_coupling,
    bounded_input,
    delay_index,
    diffusive_coupling,
    hyperbolic_tangent_coupling,
    laplacian_connectivity,
    process_sequence,
    sigmoid,
    sigmoidal_coupling,
    sigmoidal_jansen_rit_coupling,
    sys2nd,
)
from ._fitter import FitResult, Fitter
from ._install import install as install, uninstall as uninstall
from ._models import (
    CoombesByrneStep,
    EpileptorStep,
    FitzHughNagumoStep,
    Generic2dOscillatorStep,
    HopfStep,
    HORNStep,
    JansenRitStep,
    KuramotoNetwork,
    LarterBreakspearStep,
    LinearStep,
    LorenzStep,
    MontbrioPazoRoxinStep,
    StuartLandauStep,
    ThresholdLinearStep,
    VanDerPolStep,
    WilsonCowanAdaptiveStep,
    WilsonCowanDelayedStep,
    WilsonCowanDivisiveInputStep,
    WilsonCowanDivisiveStep,
    WilsonCowanLinearStep,
    WilsonCowanNoSaturationStep,
    WilsonCowanSimplifiedStep,
    WilsonCowanStep,
    WilsonCowanSymmetricStep,
    WilsonCowanThreePopBase,
    WilsonCowanThreePopulationStep,
    WongWangExcInhStep,
    WongWangStep,
    XY_Oscillator,
)
from ._network import Network
from ._noise import (
    BlueNoise,
    BrownianNoise,
    ColoredNoise,
    GaussianNoise,
    Noise,
    OUProcess,
    PinkNoise,
    VioletNoise,
    WhiteNoise,
)
from ._observation import (
    BOLDSignal,
    DoubleExponentialHRFKernel,
    EEGLeadFieldModel,
    FirstOrderVolterraHRFKernel,
    GammaHRFKernel,
    HRFBold,
    HRFKernel,
    LeadFieldModel,
    LeadfieldReadout,
    MEGLeadFieldModel,
    MixtureOfGammasHRFKernel,
    TemporalAverage,
)
from ._sequence import HORNSeqLayer, HORNSeqNetwork, JansenRitTR
from ._simulator import Simulator

__version__ = "0.1.1"
__version_info__ = (0, 1, 1)

#: brainmass's type aliases (``brainmass.typing``).
Initializer = _Callable | _Any
Array = _Any
Parameter = _Callable | _Any

__all__ = [
    "__version__", "__version_info__", "XY_Oscillator", "sys2nd", "sigmoid", "bounded_input", "process_sequence",
    "delay_index", "Initializer", "Array", "Parameter", "Noise", "OUProcess", "GaussianNoise", "WhiteNoise",
    "ColoredNoise", "BrownianNoise", "PinkNoise", "BlueNoise", "VioletNoise", "FitzHughNagumoStep", "HopfStep",
    "WilsonCowanStep", "WilsonCowanNoSaturationStep", "WilsonCowanSymmetricStep", "WilsonCowanSimplifiedStep",
    "WilsonCowanLinearStep", "WilsonCowanDivisiveStep", "WilsonCowanDivisiveInputStep", "WilsonCowanDelayedStep",
    "WilsonCowanAdaptiveStep", "WilsonCowanThreePopBase", "WilsonCowanThreePopulationStep", "WongWangStep",
    "VanDerPolStep", "MontbrioPazoRoxinStep", "CoombesByrneStep", "LarterBreakspearStep", "EpileptorStep",
    "Generic2dOscillatorStep", "WongWangExcInhStep", "LorenzStep", "ThresholdLinearStep", "LinearStep",
    "LeadfieldReadout", "KuramotoNetwork", "StuartLandauStep", "JansenRitStep", "JansenRitTR", "BOLDSignal",
    "LeadFieldModel", "EEGLeadFieldModel", "MEGLeadFieldModel", "HRFKernel", "FirstOrderVolterraHRFKernel",
    "GammaHRFKernel", "DoubleExponentialHRFKernel", "MixtureOfGammasHRFKernel", "TemporalAverage", "HRFBold",
    "DiffusiveCoupling", "AdditiveCoupling", "SigmoidalCoupling", "HyperbolicTangentCoupling",
    "SigmoidalJansenRitCoupling", "diffusive_coupling", "additive_coupling", "sigmoidal_coupling",
    "hyperbolic_tangent_coupling", "sigmoidal_jansen_rit_coupling", "laplacian_connectivity", "LaplacianConnParam",
    "HORNStep", "HORNSeqLayer", "HORNSeqNetwork", "Network", "Simulator", "Fitter", "FitResult", "objectives",
    "datasets", "viz", "ModelInfo", "list_models",
]

#: The facade's own extras (not brainmass names).
_EXTRAS = ("brainstate", "braintools", "brainunit", "install", "uninstall")

# brainmass's submodules (``brainmass_eqx.compat.noise``, ``from brainmass.hopf import HopfStep``).
from . import _fitter as _fitter_module, _sequence as _seq  # noqa: E402
from ._coupling import set_module_as as _set_module_as  # noqa: E402
from ._models import _Identity  # noqa: E402
from ._submodules import build as _build_submodules  # noqa: E402

_HORN_CONNS = ("AdditiveConn", "DelayedAdditiveConn", "DelayedAdditiveConnTR", "DelayedLaplacianConn",
               "DelayedLaplacianConnTR", "HORN_TR")
_JR_LAYERS = ("LaplacianConnectivity", "LaplacianConnV2", "JansenRitLayer", "JansenRit2Layer", "JansenRitNetwork")
_SUBMODULES = _build_submodules(
    __name__, globals(), only_in={
        "utils": {"set_module_as": _set_module_as},
        "jansen_rit": {"Identity": _Identity, **{n: getattr(_seq, n) for n in _JR_LAYERS}},
        "horn": {n: getattr(_seq, n) for n in _HORN_CONNS},
        "coupling": {n: getattr(_seq, n) for n in ("AdditiveConn", "DelayedAdditiveConn")},
        "wilson_cowan": _seq.WC_SUBMODULE,
        "fitter": {n: getattr(_fitter_module, n) for n in ("_trainable_params", "_finite_box", "_build_search_space")},
        # A tuple (brainmass: a list): appending to it would not reach list_models().
        "list_models": {"_MODEL_REGISTRY": tuple(list_models())},
    },
)


def __getattr__(name: str):
    # brainmass's deprecation shim: XxxModel resolves to XxxStep. brainmass's warning text
    # has the two names the wrong way round; this one says what to use instead.
    if name.endswith("Model") and name[: -len("Model")] + "Step" in globals():
        new = name[: -len("Model")] + "Step"
        _warnings.warn(f"brainmass.{name} is deprecated, use brainmass.{new} instead.", DeprecationWarning, stacklevel=2)
        return globals()[new]
    raise AttributeError(f"module 'brainmass' has no attribute {name!r}")
