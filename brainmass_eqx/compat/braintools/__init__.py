"""The subset of ``braintools`` that brainmass's documentation uses: ``init`` (initializers),
``optim`` (optax-backed optimizers) and ``metric`` (FC, FCD, PSD)."""

from . import init, metric, optim

__all__ = ["init", "metric", "optim", "__version__"]

__version__ = "0.3.0"
