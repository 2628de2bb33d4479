"""The subset of ``braintools`` that brainmass's documentation uses: ``init`` (initializers),
``optim`` (optax-backed optimizers) and ``metric`` (FC, FCD, PSD). ``file`` holds
braintools.file's names, which raise an error naming the alternative (`file`)."""

from . import file, init, metric, optim

__all__ = ["file", "init", "metric", "optim", "__version__"]

__version__ = "0.3.0"
