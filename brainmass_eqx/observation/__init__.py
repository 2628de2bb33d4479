"""Observation and forward models: BOLD (Balloon-Windkessel ODE, HRF convolution),
temporal and spatial averaging, EEG/MEG lead fields."""

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
