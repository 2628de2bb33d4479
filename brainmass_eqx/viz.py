r"""Plots: time series, phase portraits, connectivity, FC, FCD, spectra and fit histories.

matplotlib is an optional dependency (``pip install 'brainmass_eqx[viz]'``); it is imported
on the first call, so ``import brainmass_eqx.viz`` always works.

Every function draws into ``ax`` (a new figure's axes when ``ax=None``) and returns that
``matplotlib.axes.Axes``. Signals may be

- a `Trajectory` (pick the variable with ``var=``; its sample times and units are used),
- a unxt ``Quantity`` (its unit labels the axis),
- or any array (JAX, NumPy), read as ``(time,)`` or ``(time, regions)``.

Axes are labelled with units: times in ms (or s with ``time_unit='auto'``, for runs
ending at 2 s or later), frequencies in Hz (brainmass 0.1.1's ``plot_power_spectrum``
labels cycles per ms as if they were Hz; here ``dt`` is converted properly).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._checks import did_you_mean, is_signal, sampling_step
from ._units import is_quantity, to_ms

__all__ = [
    "plot_timeseries",
    "plot_phase_portrait",
    "plot_connectivity",
    "plot_functional_connectivity",
    "plot_fcd",
    "plot_power_spectrum",
    "plot_fit_history",
]

_TIME_UNITS = {"ms": 1.0, "s": 1e-3}
# Above this many regions, a legend is unreadable and tick labels overlap.
_MAX_LEGEND = 10
_MAX_TICK_LABELS = 40


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "brainmass_eqx.viz needs matplotlib, an optional dependency: install it with "
            "pip install 'brainmass_eqx[viz]' (or pip install matplotlib)."
        ) from err
    return plt


def _axes(ax):
    if ax is None:
        # Constrained layout keeps long tick labels from pushing the axis label off the
        # figure (a settled signal's ticks read 0.67765, and its label was cut).
        _, ax = _pyplot().subplots(layout="constrained")
    else:
        _pyplot()
    return ax


def _is_trajectory(x: Any) -> bool:
    from ._simulate import Trajectory

    return isinstance(x, Trajectory)


def _unit_text(unit: Any) -> str:
    text = str(unit).strip()
    return "" if text in ("", "dimensionless") else text


def _signal_labels(x: Any, labels: Sequence[str] | None) -> Sequence[str] | None:
    """``labels``, else a `Signal`'s own region names."""
    return list(x.labels) if labels is None and is_signal(x) else labels


def _data(
    x: Any, name: str, var: str | None = None, dt: Any = None
) -> tuple[np.ndarray, str, np.ndarray | None, str | None]:
    """``(values, unit, ts_ms or None, variable name or None)`` from a Trajectory, a
    `Signal` (sample ``i`` at ``t_first + i dt``, its `ts`; a `dt` given
    beside it must be its own), a Quantity or an array."""
    if is_signal(x) and var is None:
        sampling_step(x, dt, name)
        return np.asarray(x.signal), "", x.ts, None
    if _is_trajectory(x):
        keys = list(x.keys())
        if var is None:
            var = keys[0]
        if var not in keys:
            raise ValueError(f"{name}: the Trajectory has no variable var={var!r}{did_you_mean(var, keys)}; recorded: {keys}.")
        ts = np.asarray(x.ts)
        if ts.ndim != 1:
            # ``traj[0]`` looks up a variable named 0, so say how to take one run.
            raise ValueError(
                f"{name}: this Trajectory holds an ensemble of {ts.shape[0]} runs (ts has shape {ts.shape}); "
                "plot one run: jax.tree.map(lambda a: a[i], traj)."
            )
        _check_trajectory_step(x, dt, name)
        return np.asarray(x[var]), x.units.get(var, ""), ts, var
    if var is not None:
        raise ValueError(f"var={var!r} selects a Trajectory variable, but {name} is a {type(x).__name__}.")
    if is_quantity(x):
        return np.asarray(x.value), _unit_text(x.unit), None, None
    try:
        arr = np.asarray(x)
    except Exception as err:
        raise TypeError(f"{name} must be a Trajectory, a unxt Quantity or an array, got {type(x).__name__}.") from err
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    return arr, "", None, None


def _own_step(x: Any, ts: np.ndarray | None) -> float | None:
    """The sample step (ms) of data without a given ``dt``: a `Signal`'s own, a
    Trajectory's `sample_step` (its times far into a run are too coarse for ``ts[1] -
    ts[0]``), None for plain data."""
    if is_signal(x):
        return x.dt
    if ts is None or ts.shape[0] < 2:
        return None
    return x.sample_step() if _is_trajectory(x) else float(ts[1] - ts[0])


def _check_trajectory_step(traj: Any, dt: Any, name: str) -> None:
    """A `dt` given beside a Trajectory must be its sample spacing, ``dt * sample_every``.

    The solver's step is the natural thing to pass, and it was used as the sample spacing:
    a spectrum's frequencies came out ``sample_every`` times too high and an FCD's window
    times ``sample_every`` times too short, with nothing said (a `Signal` is checked the same
    way by `sampling_step`)."""
    if dt is None or np.asarray(traj.ts).shape[0] < 2:
        return
    given, own = to_ms(dt, "dt"), traj.sample_step()
    if not math.isclose(given, own, rel_tol=1e-5):
        raise ValueError(
            f"{name}: dt = {given:g} ms differs from the Trajectory's sample spacing ({own:g} ms, the solver's "
            "dt times sample_every); drop dt= to use the Trajectory's own times."
        )


def _as_2d(values: np.ndarray, name: str) -> np.ndarray:
    if values.ndim == 1:
        return values[:, None]
    if values.ndim != 2:
        raise ValueError(
            f"{name} must be (time,) or (time, regions), got shape {values.shape}; "
            "select one run of an ensemble first (e.g. signal[0])."
        )
    return values


def _signals(values: np.ndarray, name: str, what: str) -> np.ndarray:
    """``values`` as signals ``(time, regions)``, refused when they are a correlation
    matrix (square, symmetric, unit diagonal: no signal looks like that), which was
    taken for a signal of N samples and showed the ``what`` of the matrix's rows."""
    values = _as_2d(values, name)
    n = values.shape[0]
    if n == values.shape[1] and n > 1 and np.all(np.isfinite(values)):
        if np.allclose(np.diag(values), 1.0) and np.allclose(values, values.T) and np.all(np.abs(values) <= 1.0 + 1e-6):
            raise ValueError(
                f"{name} is a ({n}, {n}) correlation matrix (symmetric, unit diagonal), not signals (time, "
                f"regions): pass is_matrix=True to show it, or the signals to compute the {what} from."
            )
    return values


def _square(values: np.ndarray, name: str) -> np.ndarray:
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {values.shape}.")
    return values


def _times_ms(ts: Any, n: int, name: str = "ts") -> np.ndarray:
    if is_quantity(ts):
        from ._units import to_canonical

        ts = to_canonical(ts, name, "ms")
    ts = np.asarray(ts, dtype=float)
    if ts.shape != (n,):
        raise ValueError(f"{name} must have one time per sample, shape ({n},), got {ts.shape}.")
    return ts


def _time_scale(time_unit: str, span_ms: float) -> tuple[float, str]:
    if time_unit == "auto":
        time_unit = "s" if span_ms >= 2000.0 else "ms"
    if time_unit not in _TIME_UNITS:
        raise ValueError(f"time_unit must be 'auto', 'ms' or 's', got {time_unit!r}.")
    return _TIME_UNITS[time_unit], time_unit


def _label(text: str, unit: str) -> str:
    return f"{text} ({unit})" if unit else text


def _squared_per_hz(unit: str) -> str:
    if not unit:
        return "1/Hz"
    return f"({unit})²/Hz" if any(c in unit for c in " /*^") else f"{unit}²/Hz"


def _regions(n: int, regions: Sequence[int] | None) -> list[int]:
    if regions is None:
        return list(range(n))
    out = [int(r) for r in np.atleast_1d(np.asarray(regions))]
    bad = [r for r in out if not -n <= r < n]
    if bad:
        raise ValueError(f"regions {bad} are out of range for {n} regions.")
    return [r % n for r in out]


def _region_labels(labels: Sequence[str] | None, n: int, name: str = "labels") -> list[str] | None:
    if labels is None:
        return None
    labels = [str(lab) for lab in labels]
    if len(labels) != n:
        raise ValueError(f"{name} has {len(labels)} entries for {n} regions; give one label per region.")
    return labels


def _line_labels(labels: list[str] | None, n: int, regions: Sequence[int] | None) -> list[str] | None:
    """One legend entry per region: `labels`, else ``region <index>`` when `regions` picks
    regions by index (their lines can coincide, so the index tells them apart), else none."""
    if labels is None and regions is not None:
        return [f"region {r}" for r in range(n)]
    return labels


def _legend(ax, handles_labels: list[str] | None) -> None:
    if handles_labels and len(handles_labels) <= _MAX_LEGEND:
        ax.legend(fontsize="small", loc="upper right")


def _matrix_ticks(ax, labels: list[str] | None) -> None:
    if labels is not None and len(labels) <= _MAX_TICK_LABELS:
        n = len(labels)
        ax.set_xticks(range(n), labels, rotation=90, fontsize="small")
        ax.set_yticks(range(n), labels, fontsize="small")
    else:
        # Rows and columns are regions (or windows): matplotlib's default put ticks at
        # -0.5, 0.25, ... on a 2- or 3-region matrix, naming regions that do not exist.
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


_NAN_COLOUR = "0.35"


def _nan_shown(cmap: Any, values: np.ndarray, label: str) -> tuple[Any, str]:
    """``(cmap, colorbar label)`` drawing NaN entries dark grey, named in the label when present.

    imshow leaves NaN transparent, i.e. white, which is also RdBu_r's colour for 0: the
    NaN correlations of a diverged region read as "uncorrelated"."""
    from matplotlib import colormaps

    cmap = (colormaps[cmap] if isinstance(cmap, str) else cmap).with_extremes(bad=_NAN_COLOUR)
    return cmap, f"{label} (grey: NaN)" if np.isnan(values).any() else label


def _colorbar(ax, image, label: str) -> None:
    cbar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(label)


def _hint_misspelt_keywords(fn: Callable) -> Callable:
    """Extra keywords go on to matplotlib; when matplotlib rejects one that is close to one
    of ``fn``'s own (``step`` for ``step_size``), say so instead of passing on
    matplotlib's "AxesImage.set() got an unexpected keyword argument"."""
    own = [name for name, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY]

    @functools.wraps(fn)
    def plot(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (AttributeError, TypeError) as err:
            match = re.search(r"unexpected keyword argument '(\w+)'", str(err))
            key = match.group(1) if match else None
            close = [] if key not in kwargs else (
                [n for n in own if len(key) >= 3 and (n.startswith(key) or key.startswith(n))]
                or difflib.get_close_matches(key, own, n=1, cutoff=0.6)
            )
            if close:
                raise TypeError(
                    f"{fn.__name__}() got an unexpected keyword argument {key!r}; did you mean "
                    f"{close[0]!r}? (Keywords that are not its own go to matplotlib, which refused it.)"
                ) from err
            raise

    return plot


# ----------------------------------------------------------------------------------- plots


@_hint_misspelt_keywords
def plot_timeseries(
    signal: Any,
    ts: Any = None,
    *,
    var: str | None = None,
    dt: Any = None,
    labels: Sequence[str] | None = None,
    regions: Sequence[int] | None = None,
    time_unit: str = "auto",
    ax: Any = None,
    **kwargs: Any,
):
    r"""Plot one line per region against time.

    **Arguments:**

    - `signal`: a `Trajectory`, a `Signal` (its step and region names are used), a
      Quantity or an array of shape ``(time,)`` or
      ``(time, regions)``.
    - `ts`: sample times (ms, or a time Quantity). Default: the Trajectory's or Signal's times, else
      ``(i + 1) * dt`` from `dt`, else the sample index.
    - `var`: the Trajectory variable to plot (default: the first recorded one).
    - `dt`: the sampling step (ms or a time Quantity), used when there are no `ts` (beside
      a Trajectory, whose own times are used, it must be its sample spacing).
    - `labels`: one name per region (a legend is drawn for up to 10 plotted regions).
    - `regions`: indices of the regions to plot (default: all); without `labels` the
      legend names them ``region <index>``.
    - `time_unit`: ``'ms'``, ``'s'`` or ``'auto'`` (s when the last time is 2 s or more).
    - `ax`: the Axes to draw into; `**kwargs` go to ``Axes.plot``.

    **Returns:** the Axes.
    """
    if isinstance(ts, str):
        # plot_timeseries(traj, 'x') reads naturally, but the second argument is the times.
        raise TypeError(f"plot_timeseries: ts={ts!r} is a name, not sample times; to plot that variable pass var={ts!r}.")
    values, unit, traj_ts, var = _data(signal, "signal", var, dt)
    values = _as_2d(values, "signal")
    labels = _signal_labels(signal, labels)
    n_time, n = values.shape
    if ts is not None:
        t_ms = _times_ms(ts, n_time)
    elif traj_ts is not None:
        t_ms = traj_ts
    elif dt is not None:
        t_ms = (np.arange(n_time) + 1) * to_ms(dt, "dt")
    else:
        t_ms = None
    labels = _region_labels(labels, n)
    ax = _axes(ax)
    chosen = _regions(n, regions)
    if t_ms is None:
        x, xlabel = np.arange(n_time), "sample"
    else:
        scale, tu = _time_scale(time_unit, float(np.max(np.abs(t_ms))))
        x, xlabel = t_ms * scale, f"time ({tu})"
    labels = _line_labels(labels, n, regions)
    kwargs.setdefault("linewidth", 1.0)
    for r in chosen:
        ax.plot(x, values[:, r], label=None if labels is None else labels[r], **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_label(var if var is not None else "signal", unit))
    _legend(ax, None if labels is None else [labels[r] for r in chosen])
    ax.margins(x=0)
    return ax


@_hint_misspelt_keywords
def plot_phase_portrait(
    x: Any,
    y: Any = None,
    *,
    vars: tuple[str, str] | None = None,
    regions: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    mark_start: bool = True,
    ax: Any = None,
    **kwargs: Any,
):
    r"""Plot trajectories in the plane of two variables, one curve per region.

    **Arguments:**

    - `x`: a `Trajectory` (then `y` is omitted and `vars` names the two variables,
      default its first two), or the horizontal variable: a Quantity or array
      ``(time,)`` / ``(time, regions)``.
    - `y`: the vertical variable, same shape as `x`.
    - `vars`: ``(x_name, y_name)`` for a Trajectory.
    - `regions`, `labels`: as in `plot_timeseries`.
    - `mark_start`: mark each curve's first point with a dot.
    - `ax`; `**kwargs` go to ``Axes.plot``.

    **Returns:** the Axes.
    """
    if _is_trajectory(x):
        if isinstance(y, str):
            raise TypeError(f"plot_phase_portrait: name a Trajectory's two variables with vars=(x_name, y_name), e.g. vars=({y!r}, ...), not y={y!r}.")
        if y is not None:
            raise ValueError("pass a Trajectory alone (choose its variables with vars=), not with y.")
        keys = list(x.keys())
        if vars is None:
            if len(keys) < 2:
                raise ValueError(f"the Trajectory records only {keys}; a phase portrait needs two variables.")
            vars = (keys[0], keys[1])
        xs, xu, _, _ = _data(x, "x", vars[0])
        ys, yu, _, _ = _data(x, "y", vars[1])
        xname, yname = vars
    else:
        if y is None:
            raise ValueError("y is missing: pass plot_phase_portrait(x, y) or a Trajectory.")
        if vars is not None:
            raise ValueError("vars= names Trajectory variables; with arrays pass x and y directly.")
        xs, xu, _, _ = _data(x, "x")
        ys, yu, _, _ = _data(y, "y")
        xname, yname = "x", "y"
    xs, ys = _as_2d(xs, "x"), _as_2d(ys, "y")
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same shape, got {xs.shape} and {ys.shape}.")
    labels = _line_labels(_region_labels(labels, xs.shape[1]), xs.shape[1], regions)
    ax = _axes(ax)
    kwargs.setdefault("linewidth", 1.0)
    chosen = _regions(xs.shape[1], regions)
    for r in chosen:
        (line,) = ax.plot(xs[:, r], ys[:, r], label=None if labels is None else labels[r], **kwargs)
        if mark_start:
            ax.plot(xs[0, r], ys[0, r], "o", color=line.get_color(), markersize=4)
    ax.set_xlabel(_label(xname, xu))
    ax.set_ylabel(_label(yname, yu))
    _legend(ax, None if labels is None else [labels[r] for r in chosen])
    return ax


def _connectome_matrix(matrix: Any, kind: str, labels):
    from .datasets import Connectome

    if isinstance(matrix, Connectome):
        if kind not in ("weights", "distances"):
            raise ValueError(f"kind must be 'weights' or 'distances', got {kind!r}.")
        value = np.asarray(getattr(matrix, kind))
        unit = "mm" if kind == "distances" else ""
        return value, unit, list(matrix.labels) if labels is None else labels, kind
    values, unit, _, _ = _data(matrix, "matrix")
    return values, unit, labels, "weight"


@_hint_misspelt_keywords
def plot_connectivity(
    matrix: Any,
    *,
    kind: str = "weights",
    labels: Sequence[str] | None = None,
    log: bool = False,
    cmap: str = "viridis",
    colorbar: bool = True,
    ax: Any = None,
    **kwargs: Any,
):
    r"""Show a structural connectivity matrix as an image.

    Entry $W_{ij}$ (row $i$, column $j$) is the connection from region $j$ onto region
    $i$, so rows are targets and columns sources.

    **Arguments:**

    - `matrix`: a `Connectome` (see `kind`), or an ``(N, N)`` array / Quantity.
    - `kind`: for a `Connectome`: ``'weights'`` or ``'distances'`` (tract lengths, mm).
    - `labels`: region names for the ticks (shown for up to 40 regions; a Connectome's
      own labels by default).
    - `log`: colour by $\log_{10}$ of the positive entries (zeros left blank): real
      connectomes span orders of magnitude.
    - `cmap`, `colorbar`, `ax`; `**kwargs` go to ``Axes.imshow``.

    **Returns:** the Axes.
    """
    values, unit, labels, what = _connectome_matrix(matrix, kind, labels)
    values = _square(values, "matrix")
    labels = _region_labels(labels, values.shape[0])
    ax = _axes(ax)
    shown = values
    cbar_label = _label(what, unit)
    if log:
        positive = values > 0
        if not positive.any():
            raise ValueError("log=True needs positive entries; this matrix has none.")
        shown = np.where(positive, np.log10(np.where(positive, values, 1.0)), np.nan)
        cbar_label = f"log10 {cbar_label}"
    kwargs.setdefault("interpolation", "nearest")
    image = ax.imshow(shown, cmap=cmap, **kwargs)
    ax.set_xlabel("source region j")
    ax.set_ylabel("target region i")
    _matrix_ticks(ax, labels)
    if colorbar:
        _colorbar(ax, image, cbar_label)
    return ax


@_hint_misspelt_keywords
def plot_functional_connectivity(
    data: Any,
    *,
    var: str | None = None,
    is_matrix: bool = False,
    labels: Sequence[str] | None = None,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
    ax: Any = None,
    **kwargs: Any,
):
    r"""Show functional connectivity: the Pearson correlation between regions' signals.

    **Arguments:**

    - `data`: signals ``(time, regions)`` (a `Trajectory`, `Signal`, Quantity or array; the FC is
      computed with `brainmass_eqx.metrics.functional_connectivity`), or an FC matrix
      with ``is_matrix=True``.
    - `var`: the Trajectory variable.
    - `labels`: region names for the ticks (up to 40 regions).
    - `cmap`, `colorbar`, `ax`; `**kwargs` go to ``Axes.imshow`` (the colour range is
      fixed to [-1, 1] so that panels compare; NaN entries, from a diverged region, are
      dark grey, not the white of 0).

    **Returns:** the Axes.
    """
    values, _, _, _ = _data(data, "data", var)
    labels = _signal_labels(data, labels)
    if is_matrix:
        fc = _square(values, "data (is_matrix=True)")
    else:
        from .metrics import functional_connectivity

        fc = np.asarray(functional_connectivity(_signals(values, "data", "FC")))
    labels = _region_labels(labels, fc.shape[0])
    ax = _axes(ax)
    kwargs.setdefault("vmin", -1.0)
    kwargs.setdefault("vmax", 1.0)
    kwargs.setdefault("interpolation", "nearest")
    cmap, cbar_label = _nan_shown(cmap, fc, "correlation")
    image = ax.imshow(fc, cmap=cmap, **kwargs)
    ax.set_xlabel("region j")
    ax.set_ylabel("region i")
    _matrix_ticks(ax, labels)
    if colorbar:
        _colorbar(ax, image, cbar_label)
    return ax


@_hint_misspelt_keywords
def plot_fcd(
    data: Any,
    *,
    var: str | None = None,
    window_size: int = 30,
    step_size: int = 5,
    dt: Any = None,
    is_matrix: bool = False,
    time_unit: str = "auto",
    cmap: str = "RdBu_r",
    colorbar: bool = True,
    ax: Any = None,
    **kwargs: Any,
):
    r"""Show functional connectivity dynamics: the correlation between the FC patterns of
    sliding windows (`brainmass_eqx.metrics.functional_connectivity_dynamics`).

    **Arguments:**

    - `data`: signals ``(time, regions)`` (a `Trajectory`, `Signal`, Quantity or array), or an FCD
      matrix with ``is_matrix=True``.
    - `var`: the Trajectory variable.
    - `window_size`, `step_size`: window length and stride, in samples.
    - `dt`: the sampling step (ms or a time Quantity): the axes then show each window's
      start time; a Trajectory's own times are used by default (a `dt` that is not its
      sample spacing is refused). Without either, the axes count windows.
    - `time_unit`: ``'ms'``, ``'s'`` or ``'auto'``.
    - `cmap`, `colorbar`, `ax`; `**kwargs` go to ``Axes.imshow`` (colour range [-1, 1];
      NaN entries are dark grey).

    **Returns:** the Axes.
    """
    values, _, traj_ts, _ = _data(data, "data", var, dt)
    if is_matrix:
        fcd = _square(values, "data (is_matrix=True)")
    else:
        from .metrics import functional_connectivity_dynamics

        values = _signals(values, "data", "FCD")
        if values.shape[0] < window_size:
            raise ValueError(
                f"data has {values.shape[0]} samples, fewer than window_size={window_size}; "
                "use a longer signal or a smaller window."
            )
        fcd = np.asarray(functional_connectivity_dynamics(values, window_size, step_size))
    dt_ms = to_ms(dt, "dt") if dt is not None else _own_step(data, traj_ts)
    ax = _axes(ax)
    kwargs.setdefault("vmin", -1.0)
    kwargs.setdefault("vmax", 1.0)
    kwargs.setdefault("interpolation", "nearest")
    n_win = fcd.shape[0]
    cmap, cbar_label = _nan_shown(cmap, fcd, "FC correlation")
    if dt_ms is None:
        image = ax.imshow(fcd, cmap=cmap, **kwargs)
        ax.set_xlabel("window")
        ax.set_ylabel("window")
        _matrix_ticks(ax, None)
    else:
        stride = step_size * dt_ms
        # A Trajectory's or Signal's windows start at its own first sample time (after a
        # transient, or where a continued run took over), also when `dt=` is given: it is
        # checked to be the data's spacing, and the start was dropped to 0 before.
        t0 = float(traj_ts[0]) if traj_ts is not None else 0.0
        scale, tu = _time_scale(time_unit, t0 + n_win * stride)
        # Pixel k is the window starting at t0 + k * stride; row 0 at the top.
        lo, hi = (t0 - 0.5 * stride) * scale, (t0 + (n_win - 0.5) * stride) * scale
        extent = (lo, hi, hi, lo)
        image = ax.imshow(fcd, cmap=cmap, extent=extent, **kwargs)
        ax.set_xlabel(f"window start ({tu})")
        ax.set_ylabel(f"window start ({tu})")
    if colorbar:
        _colorbar(ax, image, cbar_label)
    return ax


def _plain_log_ticks(axis, lo: float, hi: float) -> None:
    """Label a logarithmic frequency axis with plain numbers (0.2, 5, 100). Matplotlib's
    default writes minor ticks as 2x10^-1 when the axis spans under a decade, and on a
    BOLD spectrum (0.08-0.7 Hz) those labels ran into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    if hi / lo <= 10**2.5:
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_formatter(NullFormatter())


@_hint_misspelt_keywords
def plot_power_spectrum(
    signal: Any,
    dt: Any = None,
    *,
    var: str | None = None,
    labels: Sequence[str] | None = None,
    regions: Sequence[int] | None = None,
    average: bool = False,
    loglog: bool = True,
    freq_range: tuple[float, float] | None = None,
    ax: Any = None,
    nperseg: int | None = None,
    **kwargs: Any,
):
    r"""Plot the Welch power spectral density of each region (or their mean).

    The spectrum is `brainmass_eqx.metrics.power_spectral_density`: frequencies in **Hz**
    (brainmass 0.1.1 plotted cycles per ms), density in (signal unit)²/Hz.

    **Arguments:**

    - `signal`: a `Trajectory`, a `Signal` (its step and region names are used), a
      Quantity or an array ``(time,)`` / ``(time, regions)``.
    - `dt`: the sampling step, ms or a time Quantity (default: a Trajectory's spacing; a
      `dt` that differs from it, e.g. the solver's step, is refused).
    - `var`: the Trajectory variable.
    - `labels`, `regions`: as in `plot_timeseries`.
    - `average`: plot the mean spectrum over the chosen regions instead of one line each.
    - `loglog`: logarithmic axes (the DC bin is dropped); the power axis stays linear,
      with a warning, when the spectrum is 0 everywhere (a constant signal).
    - `freq_range`: ``(f_min, f_max)`` in Hz (or frequency Quantities) to show.
    - `nperseg`: Welch segment length in samples (default ``time // 8``).
    - `ax`; `**kwargs` go to ``Axes.plot``.

    **Returns:** the Axes.
    """
    from .metrics import power_spectral_density

    values, unit, traj_ts, _ = _data(signal, "signal", var, dt)
    labels = _signal_labels(signal, labels)
    values = _as_2d(values, "signal")
    if dt is None:
        dt = _own_step(signal, traj_ts)
        if dt is None:
            raise ValueError("dt is missing: pass the sampling step (ms or a time Quantity).")
    labels = _line_labels(_region_labels(labels, values.shape[1]), values.shape[1], regions)
    chosen = _regions(values.shape[1], regions)
    diverged = [r for r in chosen if not np.isfinite(values[:, r]).all()]
    if diverged:
        # Welch's spectrum of a series holding NaN is NaN at every frequency: the lines
        # vanished, and with none left matplotlib failed with "Data cannot be log-scaled".
        raise ValueError(
            f"signal holds NaN or inf in regions {diverged} (a diverged run?), so their spectrum is "
            "undefined; plot the samples before the divergence, or the other regions (regions=)."
        )
    freqs, psd = power_spectral_density(values, dt, nperseg=nperseg, freq_range=freq_range)
    freqs, psd = np.asarray(freqs), np.asarray(psd)
    keep = freqs > 0 if loglog else np.ones_like(freqs, bool)
    # A constant signal (a model resting on its fixed point) has no power above 0 Hz: on a
    # log power axis the figure was an empty frame. Draw the zeros on a linear power axis.
    all_zero = bool(loglog and psd[keep].size and not (psd[keep][:, chosen] > 0).any())
    if all_zero:
        warnings.warn(
            "plot_power_spectrum: the power spectrum is 0 at every frequency above 0 Hz (a constant "
            "signal, e.g. a model resting on its fixed point); its power axis is linear, not log.",
            stacklevel=3,
        )
    ax = _axes(ax)
    kwargs.setdefault("linewidth", 1.0)
    if average:
        ax.plot(freqs[keep], psd[keep][:, chosen].mean(axis=1), label="mean", **kwargs)
        shown = None
    else:
        for r in chosen:
            ax.plot(freqs[keep], psd[keep, r], label=None if labels is None else labels[r], **kwargs)
        shown = None if labels is None else [labels[r] for r in chosen]
    if loglog:
        ax.set_xscale("log")
        if not all_zero:
            ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis, *ax.get_xlim())
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"PSD ({_squared_per_hz(unit)})")
    _legend(ax, shown)
    return ax


_STEP_NAMES = {"grad": "step", "optimistix": "step", "nevergrad": "generation", "scipy": "evaluation"}


@_hint_misspelt_keywords
def plot_fit_history(
    history: Any,
    *,
    log: bool | None = None,
    mark_best: bool = True,
    ax: Any = None,
    **kwargs: Any,
):
    r"""Plot the loss of a fit against its steps.

    **Arguments:**

    - `history`: a `FitResult` (its ``history``, backend and best step are used) or an
      array of losses ``(steps,)`` / ``(steps, starts)``.
    - `log`: logarithmic loss axis; default: when every loss is positive and they span
      a factor of 100 or more.
    - `mark_best`: mark the best loss.
    - `ax`; `**kwargs` go to ``Axes.plot``.

    **Returns:** the Axes.
    """
    backend = getattr(history, "backend", None)
    best_step = getattr(history, "best_step", None)
    losses = np.asarray(getattr(history, "history", history), dtype=float)
    if losses.ndim not in (1, 2) or losses.shape[0] == 0:
        raise ValueError(f"history must be a FitResult or losses of shape (steps,) or (steps, starts), got {losses.shape}.")
    losses2 = losses[:, None] if losses.ndim == 1 else losses
    ax = _axes(ax)
    steps = np.arange(losses2.shape[0])
    kwargs.setdefault("linewidth", 1.2)
    for s in range(losses2.shape[1]):
        ax.plot(steps, losses2[:, s], label=f"start {s}" if losses2.shape[1] > 1 else None, **kwargs)
    finite = losses2[np.isfinite(losses2)]
    if log is None:
        log = finite.size > 0 and finite.min() > 0 and finite.max() >= 100 * finite.min()
    if log:
        ax.set_yscale("log")
    if mark_best and finite.size:
        flat = np.where(np.isfinite(losses2), losses2, np.inf)
        i, s = np.unravel_index(np.argmin(flat), flat.shape)
        if best_step is not None and losses2.shape[1] == 1 and 0 <= best_step < losses2.shape[0]:
            i = best_step
        ax.plot(i, losses2[i, s], "*", color="tab:red", markersize=10, label=f"best {losses2[i, s]:.3g}")
        ax.legend(fontsize="small")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(_STEP_NAMES.get(backend, "step"))
    ax.set_ylabel("loss")
    return ax
