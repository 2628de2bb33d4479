"""brainmass's submodules (``brainmass.noise``, ``brainmass.hopf``, ...) as views of the facade.

brainmass 0.1.1 defines each class in a submodule and re-exports it at the top level, so
documented code writes both ``brainmass.OUProcess`` and ``from brainmass.noise import
OUProcess``. The facade keeps everything at the top level; `build` makes one small module per
brainmass submodule holding the same objects, registered as ``brainmass_eqx.compat.<sub>``
(and, after `install`, as ``brainmass.<sub>``).

`SUBMODULES` was generated once from brainmass 0.1.1 (each public submodule's ``__all__``)::

    import brainmass, importlib, pkgutil
    for m in pkgutil.iter_modules(brainmass.__path__):
        if not m.name.startswith("_") and not m.name.endswith("_test"):
            print(m.name, importlib.import_module(f"brainmass.{m.name}").__all__)

Every name in it that brainmass also exports at the top level is the same object there, so
each maps to the facade's top-level name. The names brainmass keeps only in a submodule
(``utils.set_module_as``, ``horn.HORN_TR`` and its connections, the ``jansen_rit`` layers,
``wilson_cowan.WilsonCowanSeqLayer``, ``coupling.AdditiveConn``, ...) are provided there only
(``build``'s ``only_in``), some of them outside the submodule's ``__all__``, as in brainmass
(among them the private helpers brainmass's own tests import: ``fitter._trainable_params``,
``_finite_box``, ``_build_search_space``, ``list_models._MODEL_REGISTRY``). The private
module ``_xy_model`` (``XY_Oscillator``) is in the table too;
a listed name the facade lacks raises an error that says so. ``datasets``, ``objectives`` and ``viz`` are real facade
modules and are not built here.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["SUBMODULES", "build"]

#: brainmass 0.1.1: submodule -> the names in its ``__all__``.
SUBMODULES: dict[str, tuple[str, ...]] = {
    "coombes_byrne": ("CoombesByrneStep",),
    "coupling": (
        "DiffusiveCoupling", "AdditiveCoupling", "SigmoidalCoupling", "HyperbolicTangentCoupling",
        "SigmoidalJansenRitCoupling", "diffusive_coupling", "additive_coupling", "sigmoidal_coupling",
        "hyperbolic_tangent_coupling", "sigmoidal_jansen_rit_coupling", "laplacian_connectivity", "LaplacianConnParam",
    ),
    "epileptor": ("EpileptorStep",),
    "fhn": ("FitzHughNagumoStep",),
    "fitter": ("Fitter", "FitResult"),
    "forward_model": ("BOLDSignal", "LeadFieldModel", "EEGLeadFieldModel", "MEGLeadFieldModel"),
    "generic_2d_oscillator": ("Generic2dOscillatorStep",),
    "hopf": ("HopfStep",),
    "horn": (
        "HORNStep", "HORNSeqLayer", "HORNSeqNetwork", "HORN_TR", "DelayedAdditiveConnTR", "DelayedLaplacianConn",
        "DelayedLaplacianConnTR", "AdditiveConn", "AdditiveCoupling", "DelayedAdditiveConn", "LaplacianConnParam",
        "additive_coupling",
    ),
    "jansen_rit": (
        "JansenRitStep", "JansenRitTR", "Identity", "LaplacianConnectivity", "LaplacianConnV2", "JansenRitLayer",
        "JansenRit2Layer", "JansenRitNetwork",
    ),
    "kuramoto": ("KuramotoNetwork",),
    "larter_breakspear": ("LarterBreakspearStep",),
    "leadfield": ("LeadfieldReadout",),
    "linear": ("ThresholdLinearStep", "LinearStep"),
    "list_models": ("ModelInfo", "list_models"),
    "lorenz": ("LorenzStep",),
    "network": ("Network",),
    "noise": (
        "Noise", "OUProcess", "GaussianNoise", "WhiteNoise", "ColoredNoise", "BrownianNoise", "PinkNoise",
        "BlueNoise", "VioletNoise",
    ),
    "observation": (
        "HRFKernel", "FirstOrderVolterraHRFKernel", "GammaHRFKernel", "DoubleExponentialHRFKernel",
        "MixtureOfGammasHRFKernel", "TemporalAverage", "HRFBold",
    ),
    "qif": ("MontbrioPazoRoxinStep",),
    "simulator": ("Simulator",),
    "sl": ("StuartLandauStep",),
    "typing": ("Initializer", "Array", "Parameter"),
    "utils": ("sys2nd", "sigmoid", "bounded_input", "process_sequence", "set_module_as", "delay_index"),
    "vdp": ("VanDerPolStep",),
    "wilson_cowan": (
        "WilsonCowanBase", "WilsonCowanStep", "WilsonCowanNoSaturationStep", "WilsonCowanSymmetricStep",
        "WilsonCowanSimplifiedStep", "WilsonCowanLinearStep", "WilsonCowanDivisiveStep",
        "WilsonCowanDivisiveInputStep", "WilsonCowanDelayedStep", "WilsonCowanAdaptiveStep",
        "WilsonCowanThreePopBase", "WilsonCowanThreePopulationStep",
    ),
    "wong_wang": ("WongWangStep",),
    "wong_wang_exc_inh": ("WongWangExcInhStep",),
    # brainmass's one private module its users import: brainmass's own models (hopf.py,
    # sl.py, vdp.py), which custom oscillators are written after, take the base from it.
    "_xy_model": ("XY_Oscillator",),
}  # fmt: skip


class NameNotInFacadeError(ImportError):
    """A brainmass name the facade does not provide at that path.

    An ``ImportError`` rather than an ``AttributeError``: ``from brainmass.horn import
    HORN_TR`` replaces an ``AttributeError`` by its own ``cannot import name ... (unknown
    location)``, which would hide the explanation. Only names brainmass itself defines (or
    the facade exports at the top level) raise it; any other missing attribute is an
    ordinary ``AttributeError``.
    """


class _Submodule(types.ModuleType):
    """One brainmass submodule: its names that the facade exports, and a message for the rest."""

    def __init__(self, name: str, sub: str, present: dict[str, Any], absent: tuple[str, ...], top: dict[str, Any]):
        super().__init__(name, f"brainmass.{sub} (brainmass 0.1.1's submodule) on the compat facade.")
        self.__dict__.update(present)
        self.__all__ = list(present)
        self._sub = sub
        self._absent = absent
        self._top = top

    def __getattr__(self, name: str):
        sub = self._sub
        if name in self._absent:
            raise NameNotInFacadeError(
                f"brainmass.{sub}.{name} is not provided by the compat facade: brainmass 0.1.1 keeps it in "
                f"brainmass.{sub} only (not in its top-level API). The facade's brainmass.{sub} holds "
                f"{', '.join(self.__all__)}."
            )
        if not name.startswith("_") and name in self._top:
            raise NameNotInFacadeError(
                f"brainmass.{sub} has no {name!r} (brainmass 0.1.1 does not define it there either); "
                f"use brainmass.{name}."
            )
        raise AttributeError(f"module 'brainmass.{sub}' has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.__all__))


def build(
    package: str, namespace: dict[str, Any], only_in: dict[str, dict[str, Any]] | None = None
) -> dict[str, types.ModuleType]:
    """Make the submodules from the facade's top-level ``namespace`` and register each as
    ``<package>.<sub>`` in ``sys.modules`` and as an attribute of the package (unless the
    package already has that name: ``brainmass.list_models`` is the function, as in brainmass,
    while ``from brainmass.list_models import ModelInfo`` still works).

    ``only_in``: ``{sub: {name: object}}``, names brainmass keeps only in that submodule (not
    at its top level) that the facade provides there too (``utils.set_module_as``); they
    stay out of the top level, as in brainmass."""
    top = {name: namespace[name] for name in namespace.get("__all__", ()) if name in namespace}
    modules = {}
    for sub, names in SUBMODULES.items():
        extra = (only_in or {}).get(sub, {})
        here = {**namespace, **extra}
        present = {name: here[name] for name in names if name in here}
        absent = tuple(name for name in names if name not in here)
        module = _Submodule(f"{package}.{sub}", sub, present, absent, top)
        # brainmass also defines a few public names outside a submodule's __all__
        # (wilson_cowan.WilsonCowanSeqLayer, coupling.AdditiveConn): attributes, not in __all__.
        module.__dict__.update({name: obj for name, obj in extra.items() if name not in present})
        sys.modules[f"{package}.{sub}"] = module
        namespace.setdefault(sub, module)
        modules[sub] = module
    return modules
