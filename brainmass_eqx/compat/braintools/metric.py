"""``braintools.metric``: FC, FCD, PSD and friends, computed by `brainmass_eqx.metrics`.

Argument conventions are braintools's: in `power_spectral_density` a plain ``dt`` is in
**seconds** (a Quantity is converted) and the window is the symmetric Hann window without
detrending, so the numbers equal braintools's.
"""

from __future__ import annotations

from typing import Any

from ... import metrics as _m
from .. import brainunit as u

__all__ = [
    "functional_connectivity",
    "functional_connectivity_dynamics",
    "matrix_correlation",
    "cosine_similarity",
    "power_spectral_density",
]


def functional_connectivity(activities: Any) -> Any:
    """Pearson correlation matrix across regions of a ``(time, regions)`` signal (diagonal 1,
    0 for a constant signal)."""
    return _m.functional_connectivity(u.get_magnitude(activities))


def functional_connectivity_dynamics(activities: Any, window_size: int = 30, step_size: int = 5) -> Any:
    """FCD matrix (correlation between the FC patterns of sliding windows)."""
    return _m.functional_connectivity_dynamics(u.get_magnitude(activities), window_size, step_size)


def matrix_correlation(x: Any, y: Any) -> Any:
    """Pearson correlation of the upper triangles (diagonal excluded) of two square
    matrices of the same shape."""
    x, y = u.get_magnitude(x), u.get_magnitude(y)
    for name, m in (("x", x), ("y", y)):
        shape = getattr(m, "shape", ())
        if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 3:
            raise ValueError(f"`{name}` must be a square 2-D matrix (n, n) with n >= 3, got shape {shape}.")
    if x.shape != y.shape:
        raise ValueError(f"`x` and `y` must have the same shape, but got {x.shape} and {y.shape}.")
    return _m.matrix_correlation(x, y)


def cosine_similarity(predictions: Any, targets: Any, epsilon: float = 1e-8) -> Any:
    """Cosine similarity along the last axis, each norm floored at ``epsilon``."""
    return _m.cosine_similarity(u.get_magnitude(predictions), u.get_magnitude(targets), epsilon)


def power_spectral_density(lfp: Any, dt: Any, nperseg: int | None = None, noverlap: int | None = None,
                           freq_range: tuple[float, float] | None = None):
    """Welch PSD ``(freqs, psd)``; a plain ``dt`` is in seconds (braintools's convention)."""
    if isinstance(dt, u.Quantity):
        dt_ms = dt.to(u.ms).value
    else:
        dt_ms = dt * 1000.0
    x = u.get_magnitude(lfp)
    n = x.shape[0]
    if nperseg is None:
        nperseg = max(2, n // 8)
    nperseg = int(min(nperseg, n))
    if noverlap is not None:
        noverlap = int(min(noverlap, nperseg - 1))
    return _m.power_spectral_density(
        x, dt_ms, nperseg=nperseg, noverlap=noverlap, window="hann_symmetric", detrend=False, freq_range=freq_range
    )
