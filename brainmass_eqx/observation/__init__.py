"""Observation and forward models: BOLD (Balloon-Windkessel ODE, HRF convolution),
temporal and spatial averaging, EEG/MEG lead fields."""

from .._names import module_getattr
from ._balloon import BalloonWindkessel, bold_from_signal
from ._hrf import (
    AbstractHRFKernel,
    DoubleExponentialHRF,
    FirstOrderVolterraHRF,
    GammaHRF,
    HRFBold,
    MixtureOfGammasHRF,
)
from ._inloop import BOLDSolver, WithBOLD, simulate_bold
from ._leadfield import EEGLeadField, LeadFieldModel, LeadfieldReadout, MEGLeadField
from ._spatial import SpatialAverage
from ._temporal import TemporalAverage

__all__ = [
    "AbstractHRFKernel",
    "BOLDSolver",
    "BalloonWindkessel",
    "DoubleExponentialHRF",
    "EEGLeadField",
    "FirstOrderVolterraHRF",
    "GammaHRF",
    "HRFBold",
    "LeadFieldModel",
    "LeadfieldReadout",
    "MEGLeadField",
    "MixtureOfGammasHRF",
    "SpatialAverage",
    "TemporalAverage",
    "WithBOLD",
    "bold_from_signal",
    "simulate_bold",
]

# TVB's monitors (tvb.simulator.monitors): each is a function of the recording here.
_TVB_MONITORS = {
    "Raw": "brainmass_eqx.simulate(model, duration, dt=dt, monitors=[names]) (TVB's Raw: every step is recorded)",
    "SubSample": "brainmass_eqx.simulate(..., sample_every=n, transient=n - 1) (TVB's SubSample(period=p), n = p / dt: "
                 "its samples follow steps n, 2n, ...; sample_every alone records after steps 1, 1 + n, ...)",
    "GlobalAverage": "SpatialAverage (TVB's GlobalAverage is traj[var].mean(axis=-1))",
    **dict.fromkeys(
        ("Bold", "BoldRegionROI"),
        "HRFBold (TVB's Bold(period=p) is HRFBold(period=p)(traj[var], dt=dt) of a run recorded at every step)",
    ),
    "EEG": "EEGLeadField (TVB's EEG monitor is the TemporalAverage of the source times its region gain, minus the "
           "sensors' mean for reference='average': docs/howto/migrating.md, Coming from TVB)",
    "MEG": "MEGLeadField (TVB's MEG monitor is the TemporalAverage of the source times its region gain)",
}

__getattr__ = module_getattr(__name__, __all__, _TVB_MONITORS)
