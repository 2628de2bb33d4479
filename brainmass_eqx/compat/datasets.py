"""``brainmass.datasets``: the bundled example data as brainmass's NamedTuples.

`load_dataset` ('example_connectome', 'example_signal', 'delayed_match_task') returns
exactly brainmass 0.1.1's values: a `Connectome` NamedTuple (weights float64 ndarray,
distances a Quantity in mm, labels a ``'<U8'`` array), a `Signal` NamedTuple (signal,
dt = 1 ms Quantity, labels, fc) and ``(inputs, targets)``. The data come from
`brainmass_eqx.datasets`; the registry and its error messages are brainmass's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .. import datasets as _core
from . import brainunit as u

__all__ = [
    "Connectome",
    "Signal",
    "register_dataset",
    "list_datasets",
    "load_dataset",
    "delayed_match_task",
]


class Connectome(NamedTuple):
    """A structural connectome: ``weights`` (N, N), ``distances`` (N, N) in mm, ``labels`` (N,)."""

    weights: Any
    distances: Any
    labels: Any


class Signal(NamedTuple):
    """A regional time series ``signal`` (T, N) sampled every ``dt``, its ``labels`` and ``fc``."""

    signal: Any
    dt: Any
    labels: Any
    fc: Any


def _example_connectome() -> Connectome:
    c = _core.load_example_connectome()
    return Connectome(
        np.asarray(c.weights, dtype=np.float64),
        u.Quantity(np.asarray(u.get_magnitude(c.distances), dtype=np.float64), "mm"),
        np.asarray(c.labels, dtype="<U8"),
    )


def _example_signal() -> Signal:
    s = _core.load_example_signal()
    return Signal(
        np.asarray(s.signal, dtype=np.float64),
        u.Quantity(float(s.dt), "ms"),
        np.asarray(s.labels, dtype="<U8"),
        np.asarray(s.fc, dtype=np.float64),
    )


def delayed_match_task(n_samples: int = 128, *, seq_len: int = 10, n_symbols: int = 4, seed: int = 0):
    """brainmass's delayed-match-to-sample task: ``(inputs (n, seq_len, n_symbols), targets (n,))``."""
    return _core.delayed_match_task(n_samples, seq_len=seq_len, n_symbols=n_symbols, seed=seed)


_REGISTRY: dict[str, tuple[Callable[..., Any], str | None]] = {}


def register_dataset(name: str, loader: Callable[..., Any], *, description: str | None = None) -> None:
    """Register ``loader`` (called on every `load_dataset`) under ``name``; ``description``
    (default: empty) is what `list_datasets` shows."""
    if name in _REGISTRY:
        raise ValueError(f"dataset {name!r} is already registered; choose a different name.")
    if not callable(loader):
        raise TypeError(f"loader for dataset {name!r} must be callable, got {type(loader).__name__}.")
    # brainmass lists a data set registered without a description with "" (not None)
    _REGISTRY[name] = (loader, "" if description is None else description)


def list_datasets() -> list[tuple[str, str]]:
    """``[(name, description)]`` of the registered data sets, sorted by name."""
    return [(name, desc) for name, (_, desc) in sorted(_REGISTRY.items())]


def load_dataset(name: str, **kwargs: Any) -> Any:
    """Call the loader registered under ``name`` (a fresh result every call)."""
    if name not in _REGISTRY:
        available = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown dataset {name!r}. Available datasets: {available}.")
    loader, _ = _REGISTRY[name]
    if kwargs:
        inspect.signature(loader).bind(**kwargs)
    return loader(**kwargs)


register_dataset(
    "example_connectome",
    _example_connectome,
    description="Small (N=8) synthetic structural connectome (weights + mm distances).",
)
register_dataset(
    "example_signal",
    _example_signal,
    description="Short multi-region target time series (+ FC) for fitting tutorials.",
)
register_dataset(
    "delayed_match_task",
    delayed_match_task,
    description="Synthetic delayed-match-to-sample task (inputs, targets) for HORN training.",
)
