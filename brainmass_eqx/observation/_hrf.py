"""Haemodynamic response function (HRF) kernels and the convolution BOLD model `HRFBold`.

Kernel parameters are in seconds (and Hz), as in brainmass and TVB; a Quantity of the
right dimension is converted. A kernel is evaluated on a time grid given as a Quantity
or as plain numbers read in **ms** (brainmass's convention).
"""

from __future__ import annotations

import abc
import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy as jsp
from jaxtyping import Array, ArrayLike, Float

from .._precision import convolve
from .._text import Readable, value_text
from .._units import AnyQuantity, UnitError, unxt_module
from ..datasets._types import Signal
from ._temporal import (
    _block_mean,
    _check_finite,
    _is_quantity,
    _magnitude,
    _param,
    _series_and_step,
    _steps_per,
    _time_ms,
)

__all__ = [
    "AbstractHRFKernel",
    "FirstOrderVolterraHRF",
    "GammaHRF",
    "DoubleExponentialHRF",
    "MixtureOfGammasHRF",
    "HRFBold",
]

def _seconds(t) -> Array:
    """A kernel time grid in seconds: a Quantity is converted, plain numbers are ms."""
    if _is_quantity(t):
        try:
            return jnp.asarray(unxt_module().ustrip("s", t))
        except Exception as err:
            raise UnitError(f"`t` must be a time, got unit {t.unit}.") from err
    return jnp.asarray(t, dtype=jnp.result_type(float)) / 1000.0


def _peak_normalise(h: Array, a: Array) -> Array:
    # brainmass divides by the maximum over the grid the kernel is evaluated on, and
    # leaves the kernel unscaled if that maximum is not positive.
    peak = jnp.max(h)
    return h / jnp.where(peak > 0, peak, 1.0) * a


def _seconds_param(value, name):
    return _param(value, name, "s", "seconds", positive=True)


class AbstractHRFKernel(Readable):
    """Base of the HRF kernels: ``kernel(t)`` evaluates h(t) (dimensionless).

    `duration` (ms, a static float) is the support sampled by `HRFBold`.
    """

    duration: eqx.AbstractVar[float]

    @abc.abstractmethod
    def evaluate(self, t_s: Float[Array, " n"]) -> Float[Array, " n"]:
        """h on a grid of times given in seconds."""

    def __call__(self, t) -> Float[Array, " n"]:
        """h(t); `t` is a time Quantity or plain numbers read in ms."""
        t_s = _seconds(t)
        h = self.evaluate(t_s)
        # One value per time: a kernel of your own that reduced over the grid (or returned
        # a column) failed later inside the convolution, as a scipy/jax dimensionality error.
        if jnp.shape(h) != jnp.shape(t_s):
            raise ValueError(
                f"{type(self).__name__}.evaluate returned shape {jnp.shape(h)} for times of shape "
                f"{jnp.shape(t_s)}; it must return h(t) at each time, elementwise."
            )
        return h


def _duration(duration) -> float:
    return _time_ms(duration, "duration")


class FirstOrderVolterraHRF(AbstractHRFKernel):
    r"""First-order Volterra kernel of the haemodynamics (Friston et al. 2000; TVB's canonical HRF).

    .. math:: h(t) = s\, e^{-t/(2\tau_s)} \frac{\sin(\omega t)}{\omega}, \qquad
              \omega = \sqrt{1/\tau_f - 1/(4\tau_s^2)},

    with t in seconds. Only the underdamped case (:math:`4\tau_s^2 > \tau_f`) is defined.

    **Arguments:**

    - `tau_s`: signal decay time constant, s (default 0.8).
    - `tau_f`: feedback time constant, s (default 0.4).
    - `scaling`: amplitude s (default 1/3).
    - `duration`: kernel support (plain number in ms, or a Quantity); default 20 s.
    """

    tau_s: Array
    tau_f: Array
    scaling: Array
    duration: float = eqx.field(static=True)

    def __init__(self, tau_s=0.8, tau_f=0.4, scaling=1.0 / 3.0, duration=20_000.0):
        self.tau_s = _seconds_param(tau_s, "tau_s")
        self.tau_f = _seconds_param(tau_f, "tau_f")
        self.scaling = _param(scaling, "scaling")
        self.duration = _duration(duration)
        omega_sq = self._omega_sq()
        if not isinstance(omega_sq, jax.core.Tracer) and not bool(jnp.all(omega_sq > 0)):
            raise ValueError(
                "`tau_s` and `tau_f` must satisfy 4 tau_s^2 > tau_f (the underdamped kernel, "
                f"real omega, times in s); got tau_s={value_text(self.tau_s)} s, tau_f={value_text(self.tau_f)} s."
            )

    def _omega_sq(self):
        return 1.0 / self.tau_f - 1.0 / (4.0 * self.tau_s**2)

    def evaluate(self, t_s):
        omega = jnp.sqrt(self._omega_sq())
        return self.scaling * jnp.exp(-0.5 * t_s / self.tau_s) * jnp.sin(omega * t_s) / omega


class GammaHRF(AbstractHRFKernel):
    r"""Gamma HRF (Boynton et al. 1996), peak-normalised to amplitude `a`.

    .. math:: h(t) \propto \frac{(t/\tau)^{n-1} e^{-t/\tau}}{\tau\,\Gamma(n)},

    divided by its maximum over the evaluation grid and multiplied by `a` (t in seconds).

    **Arguments:**

    - `tau`: time constant, s (default 1.08).
    - `n`: shape / phase delay (default 3).
    - `a`: peak amplitude (default 0.1).
    - `duration`: kernel support (plain number in ms, or a Quantity); default 20 s.
    """

    tau: Array
    n: Array
    a: Array
    duration: float = eqx.field(static=True)

    def __init__(self, tau=1.08, n=3.0, a=0.1, duration=20_000.0):
        self.tau = _seconds_param(tau, "tau")
        self.n = _param(n, "n", positive=True)
        self.a = _param(a, "a")
        self.duration = _duration(duration)

    def evaluate(self, t_s):
        # Gamma(n) is brainmass's (n-1)! for whole n; the peak normalisation cancels it.
        x = t_s / self.tau
        h = x ** (self.n - 1) * jnp.exp(-x) / (self.tau * jnp.exp(jsp.special.gammaln(self.n)))
        return _peak_normalise(h, self.a)


class DoubleExponentialHRF(AbstractHRFKernel):
    r"""Difference of two damped sinusoids (Polonsky et al. 2000), peak-normalised to `a`.

    .. math:: h(t) \propto a_1 e^{-t/\tau_1} \sin(2\pi f_1 t) - a_2 e^{-t/\tau_2} \sin(2\pi f_2 t)

    (t in seconds, f in Hz), divided by its maximum over the grid and multiplied by `a`.

    **Arguments:**

    - `tau_1`, `tau_2`: time constants, s (defaults 7.22, 7.4).
    - `f_1`, `f_2`: frequencies, Hz (defaults 0.03, 0.12).
    - `amp_1`, `amp_2`: amplitudes (defaults 0.1, 0.1).
    - `a`: peak amplitude (default 0.1).
    - `duration`: kernel support (plain number in ms, or a Quantity); default 40 s.
    """

    tau_1: Array
    tau_2: Array
    f_1: Array
    f_2: Array
    amp_1: Array
    amp_2: Array
    a: Array
    duration: float = eqx.field(static=True)

    def __init__(
        self,
        tau_1=7.22,
        tau_2=7.4,
        f_1=0.03,
        f_2=0.12,
        amp_1=0.1,
        amp_2=0.1,
        a=0.1,
        duration=40_000.0,
    ):
        self.tau_1 = _seconds_param(tau_1, "tau_1")
        self.tau_2 = _seconds_param(tau_2, "tau_2")
        self.f_1 = _param(f_1, "f_1", "Hz", "Hz")
        self.f_2 = _param(f_2, "f_2", "Hz", "Hz")
        self.amp_1 = _param(amp_1, "amp_1")
        self.amp_2 = _param(amp_2, "amp_2")
        self.a = _param(a, "a")
        self.duration = _duration(duration)

    def evaluate(self, t_s):
        h = self.amp_1 * jnp.exp(-t_s / self.tau_1) * jnp.sin(
            2 * math.pi * self.f_1 * t_s
        ) - self.amp_2 * jnp.exp(-t_s / self.tau_2) * jnp.sin(2 * math.pi * self.f_2 * t_s)
        return _peak_normalise(h, self.a)


class MixtureOfGammasHRF(AbstractHRFKernel):
    r"""Difference of two gamma densities (Glover 1999; the SPM-style canonical HRF).

    .. math:: h(t) = \frac{(l t)^{a_1-1} e^{-l t}}{\Gamma(a_1)}
                   - c\,\frac{(l t)^{a_2-1} e^{-l t}}{\Gamma(a_2)}

    with t in seconds; not normalised.

    **Arguments:**

    - `a_1`: shape of the peak gamma (default 6).
    - `a_2`: shape of the undershoot gamma (default 13).
    - `l`: rate, 1/s (default 1).
    - `c`: relative undershoot amplitude (default 0.4).
    - `duration`: kernel support (plain number in ms, or a Quantity); default 20 s.
    """

    a_1: Array
    a_2: Array
    l: Array
    c: Array
    duration: float = eqx.field(static=True)

    def __init__(self, a_1=6.0, a_2=13.0, l=1.0, c=0.4, duration=20_000.0):
        self.a_1 = _param(a_1, "a_1", positive=True)
        self.a_2 = _param(a_2, "a_2", positive=True)
        self.l = _param(l, "l", "Hz", "1/s", positive=True)
        self.c = _param(c, "c")
        self.duration = _duration(duration)

    def evaluate(self, t_s):
        lt = self.l * t_s
        g1 = jnp.exp(jsp.special.gammaln(self.a_1))
        g2 = jnp.exp(jsp.special.gammaln(self.a_2))
        return (
            lt ** (self.a_1 - 1) * jnp.exp(-lt) / g1
            - self.c * lt ** (self.a_2 - 1) * jnp.exp(-lt) / g2
        )


_MODES = ("valid", "same", "full")
_METHODS = ("fft", "direct")


def _convolve_columns(x: Array, h: Array, mode: str, method: str) -> Array:
    """Convolve every column of `x` (L, C) with the kernel `h`."""
    if method == "fft":
        conv = lambda col: jsp.signal.fftconvolve(col, h, mode=mode)
    else:
        conv = lambda col: convolve(col, h, mode)
    return jax.vmap(conv, in_axes=1, out_axes=1)(x)


class HRFBold(Readable):
    r"""Convolution BOLD: neural activity convolved with an HRF kernel, sampled at the TR.

    Called as ``(signal, dt)`` it follows brainmass's six steps:

    1. average `signal` over windows of `downsample_period` (`TemporalAverage`), giving
       y of length ``T_ds``;
    2. sample the kernel on ``linspace(0, duration, K)``, ``K = ceil(duration /
       downsample_period)`` (brainmass's grid: its spacing is ``duration/(K-1)``);
    3. prepend a history: K zeros, or `history`;
    4. convolve each region's series with the kernel (`method`, `convolution_mode`);
    5. :math:`\mathrm{BOLD} = k_1 V_0 (c - 1)` with c the convolution;
    6. keep every ``step = round(period / downsample_period)``-th sample, starting at
       index ``step`` (not 0).

    **Arguments:**

    - `k_1`: BOLD scaling (default 5.6).
    - `V_0`: resting blood volume fraction (default 0.02).
    - `period`: the TR, plain number in ms or a Quantity (default 1000 ms).
    - `downsample_period`: grid on which the convolution runs (default 4 ms).
    - `kernel`: an `AbstractHRFKernel` (default `FirstOrderVolterraHRF()`).
    - `convolution_mode`: ``'valid'`` (default), ``'same'`` or ``'full'``.
    - `method`: ``'fft'`` (default) or ``'direct'``; they agree to float rounding.
    - `history`: optional warm-up of shape ``(K, *regions)`` prepended instead of zeros.

    **Call:** `signal` ``(T, *regions)`` (array or Quantity: only its numbers are used);
    `dt` its step (ms or Quantity, concrete). Returns the dimensionless BOLD,
    ``(T_bold, *regions)``. Differentiable in `k_1`, `V_0`, the kernel's parameters and
    `signal`; `dt` and the periods are static.
    """

    k_1: Array
    V_0: Array
    kernel: AbstractHRFKernel
    history: Array | None
    period: float = eqx.field(static=True)
    downsample_period: float = eqx.field(static=True)
    convolution_mode: str = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def __init__(
        self,
        k_1=5.6,
        V_0=0.02,
        period=1000.0,
        downsample_period=4.0,
        kernel: AbstractHRFKernel | None = None,
        convolution_mode: Literal["valid", "same", "full"] = "valid",
        method: Literal["fft", "direct"] = "fft",
        history: ArrayLike | None = None,
    ):
        for name, value in (("k_1", k_1), ("V_0", V_0), ("period", period), ("downsample_period", downsample_period)):
            if isinstance(value, AbstractHRFKernel):
                # brainmass's argument order puts k_1 first: HRFBold(GammaHRF()) lands there.
                raise TypeError(
                    f"HRFBold: `{name}` got the kernel {type(value).__name__}; pass it by name: "
                    f"HRFBold(kernel={type(value).__name__}(...))."
                )
        if convolution_mode not in _MODES:
            raise ValueError(
                f"`convolution_mode` must be one of {_MODES}, got {convolution_mode!r}."
            )
        if method not in _METHODS:
            raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
        if kernel is None:
            kernel = FirstOrderVolterraHRF()
        if not isinstance(kernel, AbstractHRFKernel):
            raise TypeError(
                f"`kernel` must be an HRF kernel (e.g. GammaHRF()), got {type(kernel).__name__}."
            )
        self.k_1 = _param(k_1, "k_1")
        self.V_0 = _param(V_0, "V_0")
        self.period = _time_ms(period, "period")
        self.downsample_period = _time_ms(downsample_period, "downsample_period")
        _steps_per(self.period, self.downsample_period, "period", "downsample_period")
        self.kernel = kernel
        self.convolution_mode = convolution_mode
        self.method = method
        if history is not None:
            history = _magnitude(history)
            _check_finite("history", history)
        self.history = history

    @property
    def kernel_length(self) -> int:
        """K, the number of kernel samples (and of history rows)."""
        return math.ceil(self.kernel.duration / self.downsample_period)

    def __call__(self, signal: Float[ArrayLike, "T ..."] | AnyQuantity | Signal, dt=None) -> Float[Array, "T_bold ..."]:
        signal, dt = _series_and_step(signal, dt)
        dt_ms = _time_ms(dt, "dt")
        w = _steps_per(self.downsample_period, dt_ms, "downsample_period", "dt")
        x = _magnitude(signal)
        rest = x.shape[1:]
        k = self.kernel_length
        if self.history is not None and self.history.shape != (k,) + rest:
            raise ValueError(
                f"`history` must have shape {(k,) + rest} (kernel samples, *regions), "
                f"got {self.history.shape}."
            )
        step = _steps_per(self.period, self.downsample_period, "period", "downsample_period")
        return _hrf_bold(self, x, w, k, step)


# Compiled as one program: run op by op, the first call compiled each of the FFT
# convolution's primitives separately (3.4 s against 1.0 s for 20000 x 8 samples).
@eqx.filter_jit
def _hrf_bold(model: HRFBold, x: Array, w: int, k: int, step: int) -> Array:
    """The six steps of `HRFBold`; `w`, `k` and `step` are static."""
    ys = _block_mean(x, w)
    rest = ys.shape[1:]
    hrf = model.kernel(jnp.linspace(0.0, model.kernel.duration, k, dtype=ys.dtype))
    if model.history is None:
        pad = jnp.zeros((k,) + rest, dtype=ys.dtype)
    else:
        pad = model.history.astype(ys.dtype)
    ys = jnp.concatenate([pad, ys], axis=0)
    conv = _convolve_columns(ys.reshape(ys.shape[0], -1), hrf, model.convolution_mode, model.method)
    bold = model.k_1 * model.V_0 * (conv - 1.0)
    bold = bold[step::step]
    if bold.shape[0] == 0:
        covered = x.shape[0] * model.downsample_period / w
        raise ValueError(
            f"`signal` covers {covered:g} ms, less than one `period` ({model.period:g} ms): there is no BOLD "
            "sample to return. Simulate longer (BOLD is sampled once per period), or give a shorter period."
        )
    return bold.reshape((bold.shape[0],) + rest)
