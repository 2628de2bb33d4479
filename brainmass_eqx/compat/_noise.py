"""brainmass's noise classes (``OUProcess``, ``GaussianNoise``, ...) on `brainmass_eqx.noise`.

A facade noise object does two jobs:

- attached to a model (``HopfStep(..., noise_x=OUProcess(...))``), it is translated by
  `Noise.to_core` into a core noise spec, and the model becomes a core ``Noisy`` model
  (an SDE solved with the right scaling);
- used on its own (``noise()`` or ``Simulator(noise).run(...)``), ``update()`` draws one
  sample per step from the global ``brainstate.random`` key with the core spec's drift
  and diffusion.

Deliberate differences from brainmass 0.1.1 (see ``docs/compat.md``): white (Gaussian)
noise on a model is scaled by $\\sqrt{dt}$ (brainmass: by $dt$, so its effect vanished as
$dt \\to 0$); coloured noise is coloured in *time* (brainmass coloured each sample across
regions and was white in time).
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import noise as core_noise
from ..models._math import exprel
from . import brainunit as u
from .brainstate import random
from .brainstate._state import HiddenState
from .brainstate.nn import Dynamics, Param
from .braintools import init as binit

__all__ = [
    "check_noise_size",
    "Noise",
    "OUProcess",
    "GaussianNoise",
    "WhiteNoise",
    "ColoredNoise",
    "BrownianNoise",
    "PinkNoise",
    "BlueNoise",
    "VioletNoise",
]

_SQRT_MS = u.ms**0.5


def _value(p: Any) -> Any:
    if p is None:
        return None
    return p.value() if isinstance(p, Param) else p


def _dt_ms() -> float:
    from ._models import dt_ms  # (_models imports this module)

    return dt_ms()


def _times(x: Any, unit: u.Unit) -> Any:
    """``x`` with its unit multiplied by ``unit`` (a plain number stays plain)."""
    if isinstance(x, Param):
        x = x.value()
    if isinstance(x, u.Quantity):
        return u.Quantity(x.value, x.unit * unit.astropy)
    return x


def _magnitude_in(x: Any, unit: Any) -> Any:
    """The numbers of ``x`` in ``unit`` (the OU state's unit); ``x``'s own numbers when the
    state carries no unit. A plain ``x`` next to a unit-carrying state raises the unit error."""
    if unit is None:
        return u.get_magnitude(x)
    # u.Quantity(q) of a Quantity would try to turn q into a plain array: convert it directly
    return (x if isinstance(x, u.Quantity) else u.Quantity(x)).to(unit).value


def _size_text(shape: tuple) -> str:
    return str(shape[0]) if len(shape) == 1 else str(shape)


def check_noise_size(argument: str, noise: Noise, model: Any) -> None:
    """Refuse a noise process whose ``in_size`` does not fit the model it is attached to.

    The sample is added to the model's input, so its shape must broadcast to the model's
    ``in_size`` without changing it (``in_size=1`` drives every region alike). Checked at
    construction so that the message names the argument the user wrote; otherwise the core
    reports a mismatch of its internal noise state (``y0['x_noise'] has shape (3,)``) at run time.
    """
    shape, target = tuple(noise.varshape or ()), tuple(model.varshape or ())
    try:
        fits = np.broadcast_shapes(shape, target) == target
    except ValueError:
        fits = False
    if not fits:
        kind, owner = type(noise).__name__, type(model).__name__
        raise ValueError(
            f"{argument}: {kind} has in_size {_size_text(shape)} but {owner} has in_size {_size_text(target)}; "
            f"give the noise the model's size: {argument}={kind}(in_size={_size_text(target)}, ...)."
        )


class Noise(Dynamics):
    """Base class of brainmass's noise processes (``noise()`` returns one sample)."""

    __module__ = "brainmass"

    def __init__(self, in_size: Any, name: str | None = None):
        super().__init__(in_size, name=name)

    def to_core(self) -> core_noise.AbstractNoise:
        """The `brainmass_eqx.noise` spec this process stands for."""
        raise NotImplementedError(f"{type(self).__name__} cannot be attached to a model.")

    def __call__(self, *args, **kwargs):
        return self.update(*args, **kwargs)


class _ParamNoise(Noise):
    def __init__(self, in_size, mean=None, sigma=1.0 * u.nA):
        super().__init__(in_size)
        self.sigma = Param.init(sigma, self.varshape)
        if mean is None:
            # brainmass's default: a constant zero in sigma's unit, so that ``noise.mean.value()``
            # reads ``0. nA`` (not None) and the sample ``mean + sigma * z`` keeps sigma's unit
            sigma_value = self.sigma.value()
            mean = u.Quantity(0.0, sigma_value.unit) if isinstance(sigma_value, u.Quantity) else 0.0
        self.mean = Param.init(mean, self.varshape)

    def _mean(self):
        return _value(self.mean)

    def _shape(self, batch):
        return self.varshape if batch is None else (batch,) + self.varshape


class OUProcess(_ParamNoise):
    r"""Ornstein-Uhlenbeck noise, $dx = (\mu - x)/\tau\,dt + \sigma/\sqrt{\tau}\,dW$.

    ``OUProcess(in_size, mean=None, sigma=1 nA, tau=10 ms, init=None)``: brainmass's
    signature and exponential-Euler update (identical numbers in distribution); ``mean=None``
    is a zero in sigma's unit, as in brainmass.
    """

    __module__ = "brainmass"

    def __init__(self, in_size, mean=None, sigma=1.0 * u.nA, tau=10.0 * u.ms, init=None):
        super().__init__(in_size, mean=mean, sigma=sigma)
        self.tau = Param.init(tau, self.varshape)
        self.init = init

    def to_core(self):
        return core_noise.OUProcess(sigma=_value(self.sigma), tau=_value(self.tau), mean=_value(self.mean))

    def init_state(self, batch_size=None, **kwargs):
        init = self.init
        if init is None:
            sigma = _value(self.sigma)
            init = binit.Constant(u.Quantity(0.0, sigma.unit) if isinstance(sigma, u.Quantity) else 0.0)
        value = binit.param(init, self.varshape, batch_size, allow_scalar=False)
        if hasattr(self, "x") and isinstance(self.x, HiddenState):
            self.x.value = value
        else:
            self.x = HiddenState(value)

    def update(self):
        x = self.x.value
        unit = x.unit if isinstance(x, u.Quantity) else None
        eta = u.get_magnitude(x)
        sigma = _magnitude_in(_value(self.sigma), unit)
        mean = _magnitude_in(self._mean(), unit)
        tau = _value(self.tau)
        tau = tau.to(u.ms).value if isinstance(tau, u.Quantity) else tau
        spec = core_noise.OUProcess(sigma=sigma, tau=tau, mean=mean)
        dt = _dt_ms()
        f, diag = spec.drift_and_diagonal(eta)
        z = jr.normal(random.split_key(), jnp.shape(eta))
        new = eta + dt * exprel(dt * diag) * f + spec.diffusion(eta) * math.sqrt(dt) * z
        self.x.value = new if unit is None else u.Quantity(new, unit)
        return self.x.value


class GaussianNoise(_ParamNoise):
    r"""Gaussian white noise: a sample is ``mean + sigma * N(0, 1)``.

    Attached to a model input it is white noise of intensity ``sigma``: each step adds
    $\sigma\sqrt{dt/\mathrm{ms}}\,z$ to the state (brainmass added $\sigma z\,dt$, which
    depends on $dt$; a listed difference).
    """

    __module__ = "brainmass"

    def to_core(self):
        mean = _value(self.mean)
        return core_noise.WhiteNoise(sigma=_times(self.sigma, _SQRT_MS), mean=mean)

    def update(self):
        sigma = _value(self.sigma)
        z = jr.normal(random.split_key(), self.varshape)
        return self._mean() + sigma * z


class WhiteNoise(GaussianNoise):
    """Alias of `GaussianNoise` (brainmass's name)."""

    __module__ = "brainmass"


class BrownianNoise(_ParamNoise):
    r"""Brownian noise: $x \leftarrow x + \sigma\sqrt{dt/\mathrm{ms}}\,z$, sample ``mean + x``."""

    __module__ = "brainmass"

    def __init__(self, in_size, mean=None, sigma=1.0 * u.nA, init=binit.Constant(0.0 * u.nA)):
        super().__init__(in_size, mean=mean, sigma=sigma)
        self.init = init

    def to_core(self):
        return core_noise.BrownianNoise(sigma=_times(self.sigma, _SQRT_MS**-1), mean=_value(self.mean))

    def init_state(self, batch_size=None, **kwargs):
        value = binit.param(self.init, self.varshape, batch_size, allow_scalar=False)
        if hasattr(self, "x") and isinstance(self.x, HiddenState):
            self.x.value = value
        else:
            self.x = HiddenState(value)

    def update(self):
        sigma = _value(self.sigma)
        z = jr.normal(random.split_key(), jnp.shape(u.get_magnitude(self.x.value)))
        self.x.value = self.x.value + sigma * math.sqrt(_dt_ms()) * z
        return self._mean() + self.x.value


class ColoredNoise(_ParamNoise):
    r"""Noise with power spectrum $\propto 1/f^\beta$.

    Attached to a model it is the core's `ColoredNoise`: coloured in **time** (an SDE
    with a few OU / band-pass components), stationary std ``sigma``. brainmass coloured
    each sample across *regions* (white in time); a listed difference. On its own,
    ``update()`` draws brainmass's per-step sample (coloured across the last axis).
    """

    __module__ = "brainmass"

    def __init__(self, in_size, beta=1.0, mean=None, sigma=1.0 * u.nA):
        super().__init__(in_size, mean=mean, sigma=sigma)
        self.beta = float(beta)

    def to_core(self):
        if not -2.0 <= self.beta <= 2.0:
            # It was clamped into the range, silently giving another spectrum.
            raise ValueError(
                f"ColoredNoise(beta={self.beta:g}) driving a model: the core's noise coloured in time takes "
                f"beta in [-2, 2] (VioletNoise is its own process, beta = -4). Use a beta in that range."
            )
        return core_noise.ColoredNoise(sigma=_value(self.sigma), beta=self.beta, mean=_value(self.mean))

    def update(self):
        shape = self.varshape
        z = jr.normal(random.split_key(), shape)
        if len(shape) == 0 or shape[-1] < 2:
            y = z
        else:
            n = shape[-1]
            spec = jnp.fft.rfft(z, axis=-1)
            f = jnp.fft.rfftfreq(n)
            scale = jnp.where(f > 0, jnp.where(f > 0, f, 1.0) ** (-self.beta / 2.0), 0.0)
            y = jnp.fft.irfft(spec * scale, n=n, axis=-1)
            std = jnp.std(y, axis=-1, keepdims=True)
            y = (y - jnp.mean(y, axis=-1, keepdims=True)) / jnp.where(std > 0, std, 1.0)
        return self._mean() + _value(self.sigma) * y


def _colour(name: str, beta: float, core_cls):
    def __init__(self, in_size, mean=None, sigma=1.0 * u.nA):
        ColoredNoise.__init__(self, in_size, beta=beta, mean=mean, sigma=sigma)

    def to_core(self):
        return core_cls(sigma=_value(self.sigma), mean=_value(self.mean))

    doc = (
        f"brainmass's ``{name}`` (spectral exponent {beta:g}); attached to a model it is the core's "
        f"``{core_cls.__name__}`` (coloured in time)."
    )
    return type(name, (ColoredNoise,), {"__init__": __init__, "to_core": to_core, "__doc__": doc, "__module__": "brainmass"})


PinkNoise = _colour("PinkNoise", 1.0, core_noise.PinkNoise)
BlueNoise = _colour("BlueNoise", -2.0, core_noise.BlueNoise)
VioletNoise = _colour("VioletNoise", -4.0, core_noise.VioletNoise)
