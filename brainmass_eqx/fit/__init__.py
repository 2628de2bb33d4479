"""Fitting: `Fitter` (optax, optimistix, nevergrad and SciPy backends) and `FitResult`."""

from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import save_checkpoint as save_checkpoint
from ._fitter import BACKENDS as BACKENDS
from ._fitter import FitResult as FitResult
from ._fitter import Fitter as Fitter
from ._problem import GaussianPrior as GaussianPrior
from ._problem import L1Penalty as L1Penalty
from ._problem import L2Penalty as L2Penalty
from ._problem import NonFiniteLossError as NonFiniteLossError
from ._problem import ParamSpace as ParamSpace
