r"""Fitting objectives: builders of pure `fn(prediction, target)` scores and losses.

Every builder takes its configuration and returns a small pure function of a prediction
and a target, both `(time, regions)` arrays (or unxt Quantities), that composes with
`jax.jit`, `jax.grad` and `jax.vmap` and has finite gradients everywhere, including at a
perfect fit (where a plain $\sqrt{\cdot}$ of a zero mean square has a NaN gradient) and on
constant signals. Objectives that compare samples (`timeseries_rmse`, `cosine_sim`, `fcd`)
need a prediction and a target of the same shape; those that summarise each signal over
time first (`fc_corr`, `fc_rmse`, `fcd_ks`, `fcd_wasserstein`, `psd_rmse`) need the same
regions only, so a simulation can be compared with a recording of another length, though
not with one sampled at another rate: FCD windows count samples of each signal and
`psd_rmse` reads both at its one `dt` (built without one, at the step their Signals
carry). A `Signal` (``bx.load_signal(...)``, ``traj.signal('x')``) may stand for either
array and carries its sampling step: two Signals
at different steps are refused by the objectives that compare or count samples
(`timeseries_rmse`, `cosine_sim`, `fcd`, `fcd_ks`, `fcd_wasserstein`), and a Signal whose
step is not `psd_rmse`'s `dt` by `psd_rmse`, each error naming both steps (FC is a
correlation over time and takes any). A plain array carries no step: it is compared as
given, so a prediction recorded every 1 ms against a plain target sampled every 2 ms is
compared sample for sample without a word.
`fc_corr` and `fc_rmse` built with `target_is_fc=True` take an FC matrix as the target.
`group_mean` averages an objective over a group of subjects stacked along a first axis.
Other shapes raise `ValueError`, and so does a symmetric square target where a signal is
expected (an FC matrix given by mistake).

The definitions are brainmass 0.1.1's (`brainmass.objectives`); the maths lives in
`brainmass_eqx.metrics`. Scores (`fc_corr`, `cosine_sim`, `fcd`) are to be maximised
unless built with `as_loss=True` (then $1 - $ score); the rest are losses. `psd_rmse` is an
addition (brainmass has no spectral objective).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._checks import check_int, check_objective, is_signal, is_traced, series_of, suggests_keywords
from ._names import module_getattr
from ._units import check_real, is_quantity, unxt_module
from .metrics import (
    _NEUROLIB_TS_KS_DIFFERS,
    DEFAULT_FCD_MIDPOINTS,
    _band_indices,
    _check_band,
    _check_grid,
    _check_signal,
    _kde_factor,
    _magnitude,
    _safe_sqrt,
    _spectrum,
    _time_ms,
    _welch_setup,
    cosine_similarity,
    fcd_distribution,
    functional_connectivity,
    functional_connectivity_dynamics,
    ks_distance,
    matrix_correlation,
    one_layout_warning,
    wasserstein_1d,
)

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
    "psd_rmse",
    "combine",
    "group_mean",
]

Objective = Callable[..., Array]

# The functions above that build an objective (the rest of `__all__` are plain metrics).
BUILDERS = ("timeseries_rmse", "fc_corr", "fc_rmse", "cosine_sim", "fcd", "fcd_ks",
            "fcd_wasserstein", "psd_rmse", "combine", "group_mean")

_NEUROLIB_TS_KS = f"fcd_ks (the KS distance of two signals' FCD distributions, as neurolib's ts_kolmogorov; {_NEUROLIB_TS_KS_DIFFERS})"

# Short or metric names a user may reach for, and the objective that compares by them.
_OTHER_NAMES = {
    "rmse": "timeseries_rmse",
    "mse": "timeseries_rmse",
    "fc": "fc_corr (or fc_rmse)",
    "functional_connectivity": "fc_corr (or fc_rmse); the FC itself is brainmass_eqx.metrics.functional_connectivity",
    "psd": "psd_rmse",
    "power_spectral_density": "psd_rmse; the spectrum itself is brainmass_eqx.metrics.power_spectral_density",
    "cosine_similarity": "cosine_sim",
    # neurolib's FCD comparison of two signals (0.6.2: ts_kolmogorov; older: kolmogorov).
    "ts_kolmogorov": _NEUROLIB_TS_KS,
    "kolmogorov": _NEUROLIB_TS_KS,
}

__getattr__ = module_getattr(__name__, __all__, _OTHER_NAMES)


def _shape(x: Any, name: str) -> tuple:
    """The shape an objective compares: a `Signal`'s time series' (``jnp.shape`` of the
    Signal itself, a pytree, is ``()``), a plain array's own; a `Trajectory` is refused,
    naming the variables to pick."""
    return jnp.shape(series_of(x, name))


def _same_rate(prediction: Any, target: Any) -> None:
    """Two `Signal`s must be sampled at one step for the objectives that compare samples
    or count them (sample-by-sample errors, FCD windows): a model recorded every 1 ms
    against a recording every 2 ms compares the first against twice as long a stretch of
    the second. Plain arrays carry no step and are compared as given."""
    if not (is_signal(prediction) and is_signal(target)):
        return
    p, t = prediction.dt, target.dt
    if math.isclose(p, t, rel_tol=1e-6):
        return
    fast, slow = ("prediction", "target") if p < t else ("target", "prediction")
    ratio = max(p, t) / min(p, t)
    k = round(ratio)
    by = (
        f"observation.TemporalAverage({max(p, t):g})({fast}) averages the {fast} down to the "
        f"{slow}'s step (or {fast}.signal[::{k}] keeps one sample in {k})"
        if abs(ratio - k) < 1e-6 * ratio
        else f"resample one onto the other's step ({max(p, t):g} ms is not a whole multiple of {min(p, t):g} ms)"
    )
    raise ValueError(
        f"prediction is sampled every {p:g} ms and target every {t:g} ms; this objective compares "
        "or counts samples, so both must have one step. Record the prediction at the target's step "
        f"(simulate(..., sample_every=k) with dt * k = {t:g} ms; simulate_bold(..., tr={t:g}) for BOLD), "
        f"or {by}."
    )


def _same_shape(prediction: Any, target: Any) -> None:
    _same_rate(prediction, target)
    ps, ts = _shape(prediction, "prediction"), _shape(target, "target")
    if ps != ts:
        raise ValueError(
            f"prediction has shape {ps} but target has shape {ts}; an objective compares "
            "arrays of the same shape (time, regions)."
        )


def _compares_regions(fn: Objective) -> Objective:
    """Mark ``fn`` as an objective that needs the same regions only (see `_same_regions`):
    the `Fitter`'s eager check of a target against the prediction reads the mark."""
    fn.same_regions_only = True
    return fn


def _without_time(shape: tuple) -> tuple:
    """A ``(..., time, regions)`` shape without its time axis."""
    return tuple(shape[:-2]) + tuple(shape[-1:])


def fc_shape(prediction_shape: tuple) -> tuple:
    """The shape of the FC matrix of a ``(..., time, regions)`` signal."""
    return tuple(prediction_shape[:-2]) + (prediction_shape[-1],) * 2


def _takes_fc_target(fn: Objective) -> Objective:
    """Mark ``fn`` as an objective whose target is an FC matrix (``target_is_fc=True``)."""
    fn.target_is_fc = True
    return fn


def target_fits(objective: Objective, prediction_shape: tuple, target_shape: tuple) -> bool:
    """Whether a target of ``target_shape`` can be compared with a prediction of
    ``prediction_shape`` by ``objective``: the same shape, or for an objective that
    summarises each signal over time first, the same shape but for the time axis, or for
    one built with ``target_is_fc=True``, the shape of the prediction's FC matrix."""
    ps, ts = tuple(prediction_shape), tuple(target_shape)
    if getattr(objective, "target_is_fc", False):
        return len(ps) >= 2 and ts == fc_shape(ps)
    if getattr(objective, "same_regions_only", False) and len(ps) >= 2 and len(ts) >= 2:
        return _without_time(ps) == _without_time(ts)
    return ps == ts


def _refuse_fc_matrix(objective: Objective, target: Any) -> None:
    """An FC matrix passed where a signal is expected is the easiest mistake to make with
    an empirical FC, and nothing else would catch it: a symmetric ``(n, n)`` matrix is read
    as ``n`` samples of ``n`` regions, and the loss is the correlation with the FC of the
    matrix's rows. A recorded signal is never exactly symmetric, so a symmetric square
    target is refused (when its values are known, i.e. not inside a trace)."""
    if not getattr(objective, "same_regions_only", False) or getattr(objective, "target_is_fc", False):
        return
    if isinstance(target, jax.core.Tracer) or not eqx.is_array_like(target):
        return
    t = np.asarray(target)
    if t.ndim < 2 or t.shape[-1] < 2 or t.shape[-1] != t.shape[-2] or not np.issubdtype(t.dtype, np.floating):
        return
    if np.all(np.isfinite(t)) and np.allclose(t, np.swapaxes(t, -1, -2), rtol=1e-5, atol=1e-8):
        n = t.shape[-1]
        fix = (
            "or build the objective with target_is_fc=True to compare the prediction's FC with "
            "this matrix"
            if getattr(objective, "fc_target_option", False)
            else "or compare FC matrices with objectives.fc_corr(target_is_fc=True) / "
            "fc_rmse(target_is_fc=True)"
        )
        raise ValueError(
            f"target is a symmetric {n} x {n} matrix, an FC matrix by the look of it, but this "
            f"objective takes a (time, regions) signal and would read it as {n} samples of {n} "
            f"regions. Pass the recorded signal (e.g. a Signal's .signal), {fix}."
        )


def check_target(objective: Objective, target: Any) -> None:
    """The checks of a target's values that an objective cannot make under a trace (the
    `Fitter` calls this once, eagerly, before compiling the loss)."""
    _refuse_fc_matrix(objective, target)


def _same_regions(objective: Objective, prediction: Any, target: Any) -> None:
    """For objectives that summarise each signal over time first (FC, FCD distributions,
    spectra): the shapes must agree except in the number of time samples, so that a model
    run can be compared with a recording of another length."""
    _refuse_fc_matrix(objective, target)
    ps, ts = _shape(prediction, "prediction"), _shape(target, "target")
    if len(ps) < 2 or len(ts) < 2:
        return  # `_check_signal` says what a signal's shape must be
    if _without_time(ps) != _without_time(ts):
        raise ValueError(
            f"prediction has shape {ps} but target has shape {ts}; this objective compares "
            "(time, regions) signals with the same regions (their lengths may differ)."
        )


def _fc_of_target(prediction: Any, target: Any) -> Array:
    """The target of an objective built with ``target_is_fc=True``: an FC matrix of the
    prediction's regions, used as it is."""
    ps, ts = _shape(prediction, "prediction"), jnp.shape(target)
    if len(ps) < 2 or ts != fc_shape(ps):
        want = f"{fc_shape(ps)} (the FC matrix of its regions)" if len(ps) >= 2 else "(n, n)"
        raise ValueError(
            f"prediction has shape {ps} and target has shape {ts}; with target_is_fc=True the "
            f"target is an FC matrix of shape {want}. For a recorded (time, regions) signal "
            "leave target_is_fc=False."
        )
    return _magnitude(target, "target")


def _rmse(diff: Array) -> Array:
    return _safe_sqrt(jnp.mean(diff * diff))


def _difference(prediction: Any, target: Any) -> Array:
    """prediction - target as a plain array, converting target to prediction's unit first."""
    p_q, t_q = is_quantity(prediction), is_quantity(target)
    if p_q and t_q:
        unxt = unxt_module()
        try:
            t = unxt.ustrip(prediction.unit, target)
        except Exception as err:
            raise ValueError(
                f"target's unit '{target.unit}' cannot be converted to prediction's unit "
                f"'{prediction.unit}'; give both in compatible units."
            ) from err
        return unxt.ustrip(prediction.unit, prediction) - t
    if p_q != t_q:
        q, name = (prediction, "prediction") if p_q else (target, "target")
        unxt = unxt_module()
        if unxt.dimension_of(q) != unxt.dimension("dimensionless"):
            other = "target" if p_q else "prediction"
            raise ValueError(
                f"{name} is a Quantity in '{q.unit}' but {other} is a plain array; give both "
                "with units or neither."
            )
    return _magnitude(prediction, "prediction") - _magnitude(target, "target")


def _as_loss(value: Array, as_loss: bool) -> Array:
    return 1.0 - value if as_loss else value


def _scores(fn: Objective, builder: str, as_loss: bool) -> Objective:
    """Mark ``fn`` as a score to maximise (built without ``as_loss``): a `Fitter`, which
    minimises, refuses it by the builder's name instead of driving the match away."""
    fn.score_of = None if as_loss else builder
    return fn


@suggests_keywords
def timeseries_rmse() -> Objective:
    r"""Root-mean-square error between two time series.

    $\sqrt{\frac{1}{TN}\sum_{t,i}(p_{ti} - y_{ti})^2}$ over all elements. Unit-checked:
    Quantities are compared after converting the target to the prediction's unit
    (incompatible units raise `ValueError`).

    **Returns:** `loss(prediction, target) -> scalar`.
    """

    def loss(prediction, target):
        _same_shape(prediction, target)
        return _rmse(_difference(prediction, target))

    return loss


def _fc_objective(compare: Callable[[Array, Array], Array], target_is_fc: bool, min_regions: int) -> Objective:
    """``fn(prediction, target) = compare(FC(prediction), FC(target))``, or with
    ``target_is_fc`` ``compare(FC(prediction), target)``."""

    @one_layout_warning
    def fn(prediction, target):
        if not target_is_fc:
            _same_regions(fn, prediction, target)
        fc_p = functional_connectivity(_check_signal(prediction, "prediction", min_regions))
        if target_is_fc:
            fc_t = _fc_of_target(prediction, target)
        else:
            fc_t = functional_connectivity(_check_signal(target, "target", min_regions))
        return compare(fc_p, fc_t)

    fn.fc_target_option = True
    return _takes_fc_target(fn) if target_is_fc else _compares_regions(fn)


@suggests_keywords
def fc_corr(as_loss: bool = False, target_is_fc: bool = False) -> Objective:
    r"""Correlation between functional-connectivity matrices.

    $r = \mathrm{corr}\big(\mathrm{triu}_1 \mathrm{FC}(p),\, \mathrm{triu}_1 \mathrm{FC}(y)\big)$
    (`metrics.functional_connectivity`, `metrics.matrix_correlation`); 0 when either
    triangle is constant.

    **Arguments:**

    - `as_loss`: return $1 - r$ (to minimise) instead of $r$ (to maximise).
    - `target_is_fc`: the target is an FC matrix $\mathrm{FC}(y)$ itself, shape
      `(regions, regions)` (an empirical FC), instead of a `(time, regions)` signal. A
      symmetric square target is refused without it: it would be read as a signal.

    **Returns:** `fn(prediction, target) -> scalar`.
    """
    return _scores(_fc_objective(lambda p, t: _as_loss(matrix_correlation(p, t), as_loss), target_is_fc, 3),
                   "fc_corr", as_loss)


@suggests_keywords
def fc_rmse(target_is_fc: bool = False) -> Objective:
    r"""RMSE between the full FC matrices (diagonal included: it always contributes 0).

    **Arguments:**

    - `target_is_fc`: the target is an FC matrix itself, as in `fc_corr`. Its diagonal
      then counts as it is (an FC matrix with a zeroed diagonal adds a constant).

    **Returns:** `loss(prediction, target) -> scalar`.
    """
    return _fc_objective(lambda p, t: _rmse(p - t), target_is_fc, 1)


@suggests_keywords
def cosine_sim(as_loss: bool = False, epsilon: float = 0.0) -> Objective:
    r"""Cosine similarity of the flattened prediction and target, $p\cdot y/(\|p\|\|y\|)$.

    **Arguments:**

    - `as_loss`: return $1 - \cos$ instead of $\cos$.
    - `epsilon`: floor on each norm (`metrics.cosine_similarity`); a zero signal gives 0.

    **Returns:** `fn(prediction, target) -> scalar`.
    """
    if not float(epsilon) >= 0:
        raise ValueError(f"`epsilon` must be >= 0, got {epsilon!r}.")

    def score(prediction, target):
        _same_shape(prediction, target)
        p = _magnitude(prediction, "prediction").reshape(-1)
        t = _magnitude(target, "target").reshape(-1)
        return _as_loss(cosine_similarity(p, t, epsilon=epsilon), as_loss)

    return _scores(score, "cosine_sim", as_loss)


def _fcd_builder_checks(window_size: int, step_size: int) -> None:
    check_int(window_size, "window_size", 2)
    check_int(step_size, "step_size", 1)


@suggests_keywords
def fcd(window_size: int = 30, step_size: int = 5, as_loss: bool = False) -> Objective:
    r"""FCD matrix, or the correlation of two FCD matrices.

    See `metrics.functional_connectivity_dynamics` for the FCD.

    **Arguments:**

    - `window_size`, `step_size`: sliding windows, in samples (of both signals, which
      must therefore have one sampling step: two `Signal`s at different steps are refused).
    - `as_loss`: with a target, return $1 - r$ instead of $r$.

    **Returns:** `fn(prediction, target=None)`: with no target, the prediction's FCD
    matrix; with one, $r = $ `matrix_correlation(FCD(p), FCD(y))` (or $1 - r$).
    """
    _fcd_builder_checks(window_size, step_size)

    @one_layout_warning
    def fn(prediction, target=None):
        if target is not None:
            _same_shape(prediction, target)
        fcd_p = functional_connectivity_dynamics(_check_signal(prediction, "prediction"), window_size, step_size)
        if target is None:
            return fcd_p
        fcd_t = functional_connectivity_dynamics(_check_signal(target, "target"), window_size, step_size)
        if fcd_p.shape[-1] < 3:
            raise ValueError(
                f"the signals ({_shape(prediction, 'prediction')[-2]} samples) give {fcd_p.shape[-1]} FCD "
                f"window(s) for window_size={window_size}, step_size={step_size}; at least 3 are "
                "needed to correlate FCD matrices (2 windows give a single FCD value, whose "
                "correlation is undefined). Use a longer signal or smaller windows."
            )
        return _as_loss(matrix_correlation(fcd_p, fcd_t), as_loss)

    return _scores(fn, "fcd", as_loss)


def _check_fcd_windows(signal: Any, name: str, window_size: int, step_size: int, needed: int) -> None:
    """Name the signal that is too short for its FCD, in the objective's terms (the
    metric's own message would name an FCD matrix the user never passed)."""
    shape = _shape(signal, name)
    if len(shape) < 2:
        return  # `_check_signal` says what a signal's shape must be
    n_time = shape[-2]
    n_windows = (n_time - window_size) // step_size + 1 if n_time >= window_size else 0
    if n_windows < needed:
        raise ValueError(
            f"{name} has {n_time} samples: {n_windows} FCD window(s) of window_size={window_size}, "
            f"step_size={step_size}, and this objective needs at least {needed} (n_diag + 1). Use "
            f"a longer {name} (at least {window_size + (needed - 1) * step_size} samples) or "
            "smaller windows."
        )


def _fcd_density_builder(distance: Callable[[Array, Array, Array], Array], doc_name: str):
    def builder(
        window_size: int = 30,
        step_size: int = 5,
        midpoints: Float[ArrayLike, " m"] | None = None,
        bw_method: str | float | None = None,
        n_diag: int = 1,
    ) -> Objective:
        _fcd_builder_checks(window_size, step_size)
        grid = DEFAULT_FCD_MIDPOINTS if midpoints is None else midpoints
        # Fail at build time, not at the first call inside a fit.
        _check_grid(grid, "midpoints")
        _kde_factor(bw_method, 2)
        check_int(n_diag, "n_diag", 0)

        @one_layout_warning
        def loss(prediction, target):
            _same_regions(loss, prediction, target)
            # Windows count samples: 30 samples are 60 ms at 2 ms but 30 ms at 1 ms.
            _same_rate(prediction, target)
            for signal, name in ((prediction, "prediction"), (target, "target")):
                _check_fcd_windows(signal, name, window_size, step_size, n_diag + 1)
            dens = [
                fcd_distribution(
                    functional_connectivity_dynamics(_check_signal(s, name), window_size, step_size),
                    midpoints=grid,
                    n_diag=n_diag,
                    bw_method=bw_method,
                )
                for s, name in ((prediction, "prediction"), (target, "target"))
            ]
            return distance(dens[0], dens[1], jnp.asarray(grid, dens[0].dtype))

        return _compares_regions(loss)

    builder.__name__ = builder.__qualname__ = doc_name
    return suggests_keywords(builder)


fcd_ks = _fcd_density_builder(lambda p, q, x: ks_distance(p, q), "fcd_ks")
fcd_ks.__doc__ = r"""Kolmogorov-Smirnov distance between the FCD-value densities (brainmass).

`ks_distance(fcd_distribution(FCD(p)), fcd_distribution(FCD(y)))`. Non-smooth (a max):
for gradient-based fitting prefer `fcd_wasserstein`.

**Arguments:**

- `window_size`, `step_size`: FCD sliding windows, in samples of each signal (so both
  must be sampled at the same rate: a window of 30 samples is 60 s of a BOLD recording at
  TR = 2 s but 21.6 s of a model's BOLD at TR = 0.72 s). Two `Signal`s at different steps
  are refused; plain arrays carry no step and are not checked.
- `midpoints`: the KDE grid (default 100 points on [-0.99, 0.99]).
- `bw_method`: KDE bandwidth (`None`/'scott', 'silverman' or a factor).
- `n_diag`: diagonal offset of the FCD triangle.

**Returns:** `loss(prediction, target) -> scalar` in [0, 1]; 0 for identical inputs.
"""

fcd_wasserstein = _fcd_density_builder(wasserstein_1d, "fcd_wasserstein")
fcd_wasserstein.__doc__ = r"""Wasserstein-1 distance between the FCD-value densities (brainmass).

`wasserstein_1d(fcd_distribution(FCD(p)), fcd_distribution(FCD(y)), midpoints)`: smooth,
the FCD objective to use with gradients.

**Arguments:** as `fcd_ks`.

**Returns:** `loss(prediction, target) -> scalar`; 0 for identical inputs.
"""


def _read_at(signal: Any, name: str, dt_ms: Any) -> None:
    """`psd_rmse` reads both signals at its one ``dt``; a `Signal` sampled at another step
    would have its frequencies scaled by the ratio (a 10 Hz rhythm read as 20 Hz)."""
    if not is_signal(signal) or is_traced(dt_ms) or math.isclose(signal.dt, float(dt_ms), rel_tol=1e-6):
        return
    raise ValueError(
        f"{name} is a Signal sampled every {signal.dt:g} ms, but this psd_rmse reads both signals at "
        f"dt={float(dt_ms):g} ms; build it with the signals' step (psd_rmse(dt={signal.dt:g}, ...)) and "
        "record the prediction at that step too (simulate(..., sample_every=k) with dt * k equal to it)."
    )


def _signals_step(prediction: Any, target: Any) -> float:
    """The step (ms) `psd_rmse` built without ``dt`` reads both signals at: the one their
    `Signal`s carry (a plain array is taken to have it, as it is a given ``dt``)."""
    steps = [(name, s.dt) for s, name in ((prediction, "prediction"), (target, "target")) if is_signal(s)]
    if not steps:
        raise ValueError(
            "psd_rmse was built without dt, so it reads the sampling step from Signals, but prediction "
            "and target are plain arrays, which carry none; build it with the step, psd_rmse(dt=...) "
            "(a time Quantity or ms), or pass Signals (traj.signal('x'), bx.load_signal(...))."
        )
    if len(steps) == 2 and not math.isclose(steps[0][1], steps[1][1], rel_tol=1e-6):
        raise ValueError(
            f"prediction is a Signal sampled every {steps[0][1]:g} ms and target one sampled every "
            f"{steps[1][1]:g} ms; psd_rmse reads both at one step (the frequencies of the other would be "
            "scaled by the ratio). Record the prediction at the target's step (simulate(..., "
            "sample_every=k) with dt * k equal to it) or resample one onto the other's."
        )
    return steps[0][1]


@suggests_keywords
def psd_rmse(
    dt: Any = None,
    freq_range: tuple[float | None, float | None] | None = None,
    log: bool = True,
    nperseg: int | None = None,
    noverlap: int | None = None,
    floor: float = 1e-6,
) -> Objective:
    r"""RMSE between Welch power spectra (an addition; brainmass has no spectral objective).

    With $P$ and $Q$ the PSDs (`metrics.power_spectral_density`, SciPy conventions) of
    prediction and target per region, restricted to the bins in `freq_range`
    $= [f_{min}, f_{max}]$ Hz,
    $$L = \sqrt{\operatorname{mean}_{f,i}\big(g(P_{fi}) - g(Q_{fi})\big)^2},\qquad
    g(P) = \log_{10}(P + \epsilon) \text{ if `log` else } P,$$
    with $\epsilon = $ `floor` $\times$ the mean of $Q$ over the band and regions (so the
    log compares spectral shapes over several decades but ignores bins more than
    $1/$`floor` below the typical target power, and stays finite for a zero spectrum).

    **Arguments:**

    - `dt`: the sampling step of both signals: a unxt time Quantity or a number in ms. A
      `Signal` passed as either must have this step (it is refused otherwise: its
      frequencies would be read scaled by the ratio); a plain array is taken to have it.
      None (default): the step the `Signal`s carry (two must carry one step; a plain
      array passed with a Signal is taken to have its step; two plain arrays are refused).
    - `freq_range`: the band `(f_min, f_max)` in Hz or frequency Quantities (either may be None for an open end), as
      in `metrics.power_spectral_density`; default all frequencies.
    - `log`: compare $\log_{10}$ spectra (default) or the raw PSDs.
    - `nperseg`, `noverlap`: Welch segments (defaults `time // 8`, half overlap).
    - `floor`: relative floor $\epsilon$ for the log, > 0.

    **Returns:** `loss(prediction, target) -> scalar`.
    """
    given_ms = None if dt is None else _time_ms(dt, "dt")
    band = _check_band(freq_range, "freq_range") or (None, None)
    if not float(floor) > 0:
        raise ValueError(f"`floor` must be > 0, got {floor!r}.")

    @one_layout_warning
    def loss(prediction, target):
        _same_regions(loss, prediction, target)
        if given_ms is None:
            dt_ms = _signals_step(prediction, target)
        else:
            dt_ms = given_ms
            for signal, name in ((prediction, "prediction"), (target, "target")):
                _read_at(signal, name, dt_ms)
        p = _check_signal(prediction, "prediction")
        t = _check_signal(target, "target")
        # One segment length for both (the shorter signal's default), so the bins match.
        n, _ = _welch_setup(min(p.shape[-2], t.shape[-2]), nperseg, noverlap)
        idx = _band_indices(n, dt_ms, band, "freq_range")
        _, pp = _spectrum(p, dt_ms, nperseg=n, noverlap=noverlap)
        _, pt = _spectrum(t, dt_ms, nperseg=n, noverlap=noverlap)
        pp, pt = pp[..., idx, :], pt[..., idx, :]
        if log:
            eps = floor * jnp.mean(pt) + jnp.finfo(pt.dtype).tiny
            pp, pt = jnp.log10(pp + eps), jnp.log10(pt + eps)
        return _rmse(pp - pt)

    return _compares_regions(loss)


def combine(*weighted_objectives: tuple[float, Objective]) -> Objective:
    r"""Weighted sum of objectives: $\sum_k w_k\, \mathrm{obj}_k(p, y)$.

    **Arguments:**

    - `*weighted_objectives`: `(weight, objective)` pairs; each objective is a function
      `(prediction, target) -> scalar` such as those built in this module.

    **Returns:** `loss(prediction, target=None) -> scalar`.
    """
    if not weighted_objectives:
        raise ValueError("combine needs at least one (weight, objective) pair.")
    for k, item in enumerate(weighted_objectives):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"weighted_objectives[{k}] must be a (weight, objective) pair, got {item!r}.")
        check_objective(item[1], f"weighted_objectives[{k}][1]", sys.modules[__name__], BUILDERS)
        # A NaN weight made every loss NaN, and a string one failed inside the first call
        # with numpy's "Only integer scalar arrays can be converted to a scalar index".
        label = f"weighted_objectives[{k}][0] (the weight)"
        check_real(item[0], label)
        if np.shape(item[0]) != ():
            raise ValueError(f"{label} must be a scalar, got shape {np.shape(item[0])}.")
        if not is_traced(item[0]) and not np.isfinite(np.asarray(item[0])):
            raise ValueError(f"{label} must be finite, got {item[0]!r}; every combined loss would be NaN.")

    @one_layout_warning
    def loss(prediction, target=None):
        total = 0.0
        for weight, objective in weighted_objectives:
            total = total + weight * objective(prediction, target)
        return total

    fc_targets = [bool(getattr(objective, "target_is_fc", False)) for _, objective in weighted_objectives]
    if any(fc_targets) and not all(fc_targets):
        raise ValueError(
            "combine: objectives "
            f"{[k for k, fc in enumerate(fc_targets) if fc]} take an FC-matrix target "
            f"(target_is_fc=True) and {[k for k, fc in enumerate(fc_targets) if not fc]} a signal; "
            "one target cannot be both. Give them all the recorded signal, or write a "
            "loss_fn(model, target) that takes both."
        )
    # A score added with a positive weight is minimised along with the losses.
    added_scores = [
        f"{objective.score_of} (weight {weight:g} in combine)"
        for weight, objective in weighted_objectives
        if getattr(objective, "score_of", None) and isinstance(weight, (int, float, np.number)) and weight > 0
    ]
    loss.score_of = added_scores[0] if added_scores else None
    if all(fc_targets):
        _takes_fc_target(loss)
    elif all(getattr(objective, "same_regions_only", False) for _, objective in weighted_objectives):
        _compares_regions(loss)
    return loss


# The marks a Fitter reads to check a target against the prediction (and to refuse a score).
_MARKS = ("target_is_fc", "same_regions_only", "fc_target_option")


@suggests_keywords
def group_mean(objective: Objective) -> Objective:
    r"""The mean of an objective over a group of subjects: $\frac1S \sum_s \mathrm{obj}(p_s, y_s)$.

    For a prediction that runs `S` subjects at once (a `predict` that maps over their
    connectomes with one `jax.vmap`): the prediction's first axis is the subject,
    ``(S, time, regions)``, and so is the target's, ``(S, ...)``: each subject's recording
    or, for an objective built with ``target_is_fc=True``, its FC matrix
    ``(S, regions, regions)``. Each subject is compared with its own target by `objective`
    (mapped with `jax.vmap`, so an RMSE is each subject's RMSE, not one over the whole
    group), and the `S` losses averaged. Subjects of different sizes cannot be stacked:
    write a ``loss_fn(model, target)`` that runs each and averages (see the fitting guide).

    **Arguments:**

    - `objective`: what compares one subject's prediction with its target, e.g.
      ``fc_corr(as_loss=True, target_is_fc=True)``. The result is a score (refused by a
      `Fitter`) when `objective` is one.

    **Returns:** `loss(prediction, target) -> scalar`.
    """
    check_objective(objective, "objective", sys.modules[__name__], BUILDERS)

    @one_layout_warning
    def loss(prediction, target):
        ps, ts = jnp.shape(prediction), jnp.shape(target)
        if len(ps) < 1 or len(ts) < 1 or ps[0] != ts[0]:
            raise ValueError(
                f"group_mean compares subjects along the first axis, but prediction has shape {ps} and "
                f"target has shape {ts}; give both one entry per subject first, e.g. (S, time, regions) "
                "and (S, regions, regions) for S subjects' FC matrices."
            )
        return jnp.mean(jax.vmap(objective)(prediction, target))

    for mark in _MARKS:
        if getattr(objective, mark, False):
            setattr(loss, mark, True)
    score = getattr(objective, "score_of", None)
    loss.score_of = None if score is None else f"{score} (in group_mean)"
    return loss
