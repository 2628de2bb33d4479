"""Fitting: `Fitter` (optax, optimistix, nevergrad and SciPy backends) and `FitResult`."""

from ._checkpoint import load_checkpoint as load_checkpoint, save_checkpoint as save_checkpoint
from ._fitter import BACKENDS as BACKENDS, FitResult as FitResult, Fitter as Fitter
from ._problem import (
    GaussianPrior as GaussianPrior,
    L1Penalty as L1Penalty,
    L2Penalty as L2Penalty,
    NonFiniteLossError as NonFiniteLossError,
    ParamSpace as ParamSpace,
)
