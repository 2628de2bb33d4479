"""``brainmass.viz``: brainmass's plotting helpers, drawn by `brainmass_eqx.viz`.

Each function takes brainmass's arguments, strips units, returns the ``Axes`` and keeps
brainmass's axis labels. One deliberate difference: `plot_power_spectrum` converts
``dt`` properly, so its frequency axis is in Hz (brainmass's was in cycles per ms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import viz as _core
from . import brainunit as u

__all__ = [
    "plot_timeseries",
    "plot_phase_portrait",
    "plot_connectivity",
    "plot_functional_connectivity",
    "plot_power_spectrum",
]


def _mag(x: Any) -> np.ndarray:
    return np.asarray(u.get_magnitude(x))


def plot_timeseries(signal, ts=None, *, labels=None, ax=None, **kwargs):
    """Plot region time series (``(time,)`` or ``(time, regions)``) against ``ts``."""
    data = _mag(signal)
    if data.ndim == 1:
        data = data[:, None]
    ts = None if ts is None else _mag(ts)
    ax = _core.plot_timeseries(data, ts=ts, labels=labels, time_unit="ms", ax=ax, **kwargs)
    ax.set_xlabel("time")
    ax.set_ylabel("signal")
    return ax


def plot_phase_portrait(x, y, *, ax=None, **kwargs):
    """Plot ``y`` against ``x``."""
    ax = _core.plot_phase_portrait(_mag(x), _mag(y), mark_start=False, ax=ax, **kwargs)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return ax


def plot_connectivity(matrix, *, labels=None, ax=None, cmap="viridis", colorbar=True, **kwargs):
    """Heat map of a matrix (any 2-D array, as brainmass's ``imshow``)."""
    data = _mag(matrix)
    if data.ndim == 2 and data.shape[0] == data.shape[1]:
        return _core.plot_connectivity(data, labels=labels, cmap=cmap, colorbar=colorbar, ax=ax, **kwargs)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    image = ax.imshow(data, cmap=cmap, **kwargs)
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=90)
        ax.set_yticks(range(len(labels)), labels)
    if colorbar:
        ax.figure.colorbar(image, ax=ax)
    return ax


def plot_functional_connectivity(data, *, is_matrix=False, labels=None, ax=None, **kwargs):
    """Heat map of the FC of a ``(time, regions)`` signal (or of an FC matrix with ``is_matrix``)."""
    kwargs.setdefault("cmap", "viridis")
    return _core.plot_functional_connectivity(_mag(data), is_matrix=is_matrix, labels=labels, ax=ax, **kwargs)


def plot_power_spectrum(signal, dt, *, ax=None, loglog=True, **kwargs):
    """Welch power spectrum of ``signal`` sampled every ``dt`` (a Quantity, or ms)."""
    label = kwargs.pop("label", None)
    labels = None if label is None else [label]
    ax = _core.plot_power_spectrum(_mag(signal), dt=dt, loglog=loglog, labels=labels, ax=ax, **kwargs)
    ax.set_xlabel("frequency")
    ax.set_ylabel("power")
    return ax
