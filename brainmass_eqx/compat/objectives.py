"""``brainmass.objectives``: brainmass's objective builders on `brainmass_eqx.metrics`.

Same names, signatures and numbers as brainmass 0.1.1. Two details follow brainmass
rather than `brainmass_eqx.objectives`: predictions and targets are not required to have
the same shape where brainmass does not require it (FC-based objectives compare matrices,
`timeseries_rmse` broadcasts), and a unit mismatch raises brainunit's
`UnitMismatchError`. The square roots have finite gradients at a perfect fit (brainmass's
gave NaN there).
"""

from __future__ import annotations

import sys
from typing import Any

import jax.numpy as jnp

from .. import metrics as _m
from .._checks import check_objective
from ..metrics import DEFAULT_FCD_MIDPOINTS, _normalised_cdf, _safe_sqrt
from . import brainunit as u

__all__ = [
    "timeseries_rmse",
    "fc_corr",
    "fc_rmse",
    "cosine_sim",
    "fcd",
    "fcd_distribution",
    "ks_distance",
    "wasserstein_1d",
    "fcd_ks",
    "fcd_wasserstein",
    "combine",
]


# The functions below that build an objective (the rest of `__all__` are plain metrics).
BUILDERS = ("timeseries_rmse", "fc_corr", "fc_rmse", "cosine_sim", "fcd", "fcd_ks", "fcd_wasserstein", "combine")


def _mag(x: Any):
    return jnp.asarray(u.get_magnitude(x))


def timeseries_rmse():
    """``loss(prediction, target) = sqrt(mean((prediction - target)**2))`` (unit-checked)."""

    def loss(prediction, target):
        diff = _mag(prediction - target)
        return _safe_sqrt(jnp.mean(diff**2))

    return loss


def fc_corr(as_loss: bool = False):
    """Correlation of the upper triangles of the FC matrices (``1 - corr`` with ``as_loss``)."""

    def score(prediction, target):
        fc_p = _m.functional_connectivity(_mag(prediction))
        fc_t = _m.functional_connectivity(_mag(target))
        corr = _corr(fc_p, fc_t)
        return 1.0 - corr if as_loss else corr

    return score


def _corr(a, b):
    # braintools correlates through jnp.corrcoef, which clips to [-1, 1]: identical
    # matrices give exactly 1.
    return jnp.clip(_m.matrix_correlation(a, b), -1.0, 1.0)


def fc_rmse():
    """RMSE between the full FC matrices."""

    def loss(prediction, target):
        diff = _m.functional_connectivity(_mag(prediction)) - _m.functional_connectivity(_mag(target))
        return _safe_sqrt(jnp.mean(diff**2))

    return loss


def cosine_sim(as_loss: bool = False, epsilon: float = 0.0):
    """Cosine similarity of the flattened prediction and target."""

    def score(prediction, target):
        cos = _m.cosine_similarity(_mag(prediction).reshape(-1), _mag(target).reshape(-1), epsilon)
        return 1.0 - cos if as_loss else cos

    return score


def fcd(window_size: int = 30, step_size: int = 5, as_loss: bool = False):
    """``fn(prediction, target=None)``: the FCD matrix, or the correlation of two FCD matrices."""

    def fn(prediction, target=None):
        fcd_p = _m.functional_connectivity_dynamics(_mag(prediction), window_size, step_size)
        if target is None:
            return fcd_p
        fcd_t = _m.functional_connectivity_dynamics(_mag(target), window_size, step_size)
        corr = _corr(fcd_p, fcd_t)
        return 1.0 - corr if as_loss else corr

    return fn


def fcd_distribution(fcd_matrix, midpoints=None, n_diag: int = 1, bw_method=None, normalize: bool = True):
    """Gaussian KDE of the FCD's upper triangle on ``midpoints`` (default 100 points on [-0.99, 0.99])."""
    grid = DEFAULT_FCD_MIDPOINTS if midpoints is None else midpoints
    return _m.fcd_distribution(_mag(fcd_matrix), midpoints=grid, n_diag=n_diag, bw_method=bw_method, normalize=normalize)


def _cdfs(p, q):
    # One cumulative sum over both rows: identical densities give bitwise identical CDFs
    # (and distance exactly 0, as brainmass).
    cdf = _normalised_cdf(jnp.stack([_mag(p), _mag(q)]))
    return cdf[0], cdf[1]


def ks_distance(p, q):
    """Max absolute difference of the normalised cumulative sums of two densities."""
    cp, cq = _cdfs(p, q)
    return jnp.max(jnp.abs(cp - cq), axis=-1)


def wasserstein_1d(p, q, x):
    """Wasserstein-1 distance of two densities on the uniform grid ``x``."""
    cp, cq = _cdfs(p, q)
    x = _mag(x)
    return jnp.sum(jnp.abs(cp - cq), axis=-1) * (x[1] - x[0])


def _fcd_density(distance):
    def builder(window_size: int = 30, step_size: int = 5, midpoints=None, bw_method=None, n_diag: int = 1):
        grid = DEFAULT_FCD_MIDPOINTS if midpoints is None else midpoints

        def loss(prediction, target):
            dens = [
                fcd_distribution(fcd(window_size, step_size)(s), grid, n_diag, bw_method)
                for s in (prediction, target)
            ]
            return distance(dens[0], dens[1], jnp.asarray(grid))

        return loss

    return builder


fcd_ks = _fcd_density(lambda p, q, x: ks_distance(p, q))
fcd_ks.__name__ = "fcd_ks"
fcd_ks.__doc__ = "KS distance between the FCD-value densities of prediction and target."
fcd_wasserstein = _fcd_density(wasserstein_1d)
fcd_wasserstein.__name__ = "fcd_wasserstein"
fcd_wasserstein.__doc__ = "Wasserstein-1 distance between the FCD-value densities of prediction and target."


def combine(*weighted):
    """``fn(prediction, target=None) = sum(w * objective(prediction, target))`` over ``(w, objective)`` pairs."""
    pairs = [(float(w), obj) for w, obj in weighted]
    for k, (_, obj) in enumerate(pairs):
        check_objective(obj, f"weighted[{k}][1]", sys.modules[__name__], BUILDERS)

    def fn(prediction, target=None):
        return sum(w * obj(prediction, target) for w, obj in pairs)

    return fn
