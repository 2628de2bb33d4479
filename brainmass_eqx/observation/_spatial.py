"""Spatial averaging of regional signals: TVB's ``SpatialAverage`` monitor."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import series_of
from .._precision import matmul
from .._text import Readable
from .._units import AnyQuantity, is_quantity, quantity
from ..datasets._types import Signal
from ._temporal import _magnitude

__all__ = ["SpatialAverage"]


class SpatialAverage(Readable):
    r"""Means of groups of regions (TVB's ``monitors.SpatialAverage``).

    With ``mask[i]`` the group of region $i$ and $n_g$ the number of regions in group $g$,

    .. math:: y_{t, g} = \frac{1}{n_g} \sum_{i:\ \mathrm{mask}_i = g} x_{t, i},

    over the last axis, as one matrix product (differentiable, `jit` / `vmap`-safe).

    **Arguments:**

    - `mask`: ``(N,)`` integers: region $i$'s group, ``0 .. G - 1``, each group holding at
      least one region (e.g. ``conn.cortical.astype(int)`` for subcortical / cortical, or
      a hemisphere index).
    - `names`: optional ``G`` group names (kept for plots and tables).

    **Call** ``(signal)``: `signal` of shape ``(..., N)`` (array or Quantity; a Quantity
    keeps its unit). Returns shape ``(..., G)``.
    """

    #: ``(N, G)``: ``1 / n_g`` where region ``i`` is in group ``g``, else 0.
    weights: Float[ArrayLike, "N G"]
    names: tuple[str, ...] | None = eqx.field(static=True)

    def __init__(self, mask: ArrayLike, names: Sequence[str] | None = None):
        mask = np.asarray(mask)
        if mask.ndim != 1 or mask.size == 0:
            raise ValueError(f"SpatialAverage: `mask` must be a non-empty 1-D array (one group per region), got shape {mask.shape}.")
        if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.bool_)):
            if not np.all(np.isfinite(mask)) or np.any(mask != np.round(mask)):
                raise ValueError(f"SpatialAverage: `mask` must hold integer group indices, got {mask}.")
        mask = mask.astype(np.int64)
        if mask.min() < 0:
            raise ValueError(f"SpatialAverage: `mask` holds a negative group index ({mask.min()}); groups are 0 .. G - 1.")
        counts = np.bincount(mask)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            raise ValueError(
                f"SpatialAverage: group(s) {empty.tolist()} of 0 .. {counts.size - 1} hold no region; "
                "number the groups 0 .. G - 1 without gaps."
            )
        if names is not None:
            names = tuple(str(n) for n in names)
            if len(names) != counts.size:
                raise ValueError(f"SpatialAverage: {len(names)} names for {counts.size} groups.")
        # Kept in float64 and cast to the signal's dtype per call: stored as float32, 1/3
        # was rounded to 0.33333334 and a float64 signal's group means were float32-accurate.
        self.weights = np.eye(counts.size)[mask] / counts
        self.names = names

    @property
    def n_groups(self) -> int:
        return self.weights.shape[1]

    def __call__(self, signal: Float[ArrayLike, "... N"] | AnyQuantity | Signal) -> Float[Array, "... G"] | AnyQuantity:
        x = _magnitude(series_of(signal, "signal"))
        n = self.weights.shape[0]
        if x.ndim < 1 or x.shape[-1] != n:
            raise ValueError(
                f"SpatialAverage: `signal` has shape {tuple(x.shape)}, but the mask covers {n} "
                f"regions; its last axis must be the {n} regions."
            )
        out = matmul(x, jnp.asarray(self.weights, x.dtype))
        return quantity(out, signal.unit) if is_quantity(signal) else out
