"""brainmass's observation and forward models on `brainmass_eqx.observation`.

- `BOLDSignal(in_size, ...)`: stateful Balloon-Windkessel (``init_all_states``,
  ``update(z)``, ``bold()``), one core Heun step per ``update``. Deliberate differences:
  the textbook BOLD equation (``q/v``, brainmass had ``q/rho``), the resting initial state
  (``x = 0``; brainmass started every state at 1), and ``dt`` may carry a unit (a plain
  ``dt`` is read in seconds, as brainmass does).
- HRF kernels, `HRFBold`, `TemporalAverage`: brainmass's names for the core modules.
- `LeadFieldModel` / `EEGLeadFieldModel` / `MEGLeadFieldModel`: ``update(S)`` projects
  sources to sensors; `LeadfieldReadout` accepts plain numbers for ``y0``/``cy0``
  (brainmass required `Param` objects).
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import unxt

from .. import observation as core_obs
from . import brainunit as u
from .brainstate import environ
from .brainstate._state import HiddenState, State
from .brainstate.nn import Dynamics, Module, Param
from .braintools import init as binit

__all__ = [
    "BOLDSignal",
    "HRFKernel",
    "FirstOrderVolterraHRFKernel",
    "GammaHRFKernel",
    "DoubleExponentialHRFKernel",
    "MixtureOfGammasHRFKernel",
    "TemporalAverage",
    "HRFBold",
    "LeadFieldModel",
    "EEGLeadFieldModel",
    "MEGLeadFieldModel",
    "LeadfieldReadout",
]


def _to_bu(x: Any) -> Any:
    """A core (unxt) Quantity as a brainunit-facade Quantity."""
    if isinstance(x, unxt.AbstractQuantity) and not isinstance(x, u.Quantity):
        return u.maybe_decimal(u.Quantity(x.value, x.unit))
    return x


def _unit(x: Any) -> Any:
    if isinstance(x, u.Unit):
        return x.astropy
    if isinstance(x, u.Quantity):
        return x
    return x


def _value(p):
    return p.value() if isinstance(p, Param) else p


_BOLD_STATES = {"x": "s", "f": "f", "v": "v", "q": "q"}


def _activity(z):
    """The neural activity driving the balloon model: a plain (dimensionless) number. Its
    unit was dropped, so a rate in kHz and the same numbers in Hz gave one BOLD signal."""
    if isinstance(z, u.Quantity) and not u.get_unit(z).is_unitless:
        raise u.UnitMismatchError(
            f"BOLDSignal: z, the neural activity, must be a plain number (dimensionless); got one in "
            f"{u.get_unit(z)}. Pass the numbers you mean, e.g. z.to_decimal(u.Hz) for a rate in Hz."
        )
    return u.get_magnitude(z)


class BOLDSignal(Dynamics):
    r"""Balloon-Windkessel haemodynamics (Friston et al. 2003): states ``x, f, v, q``.

    ``update(z)`` advances one step of the environment ``dt`` (a plain number is in
    seconds, as in brainmass; a time Quantity is converted); ``bold()`` returns the BOLD
    signal. ``init=None`` starts at rest (x = 0, f = v = q = 1); an initializer sets all
    four states (brainmass's behaviour, whose default was 1 for all).
    """

    __module__ = "brainmass"

    def __init__(self, in_size, gamma=0.41, k=0.65, alpha=0.32, tau=0.98, rho=0.34, V0=0.02, init=None):
        super().__init__(in_size)
        self.gamma, self.k, self.alpha, self.tau, self.rho, self.V0 = gamma, k, alpha, tau, rho, V0
        self.init = init

    def core_model(self):
        return core_obs.BalloonWindkessel(
            gamma=_value(self.gamma), kappa=_value(self.k), alpha=_value(self.alpha), tau=_value(self.tau),
            rho=_value(self.rho), V0=_value(self.V0),
        )  # fmt: skip

    def init_state(self, batch_size=None, **kwargs):
        shape = self.varshape if batch_size is None else (batch_size,) + self.varshape
        rest = self.core_model().init_state(shape)
        for name, core_name in _BOLD_STATES.items():
            value = rest[core_name] if self.init is None else binit.param(self.init, self.varshape, batch_size, allow_scalar=False)
            if isinstance(vars(self).get(name), HiddenState):
                getattr(self, name).value = value
            else:
                setattr(self, name, HiddenState(value))
        self._comp = State({k: jnp.zeros_like(v) for k, v in rest.items()})

    def _state(self):
        return {core: getattr(self, name).value for name, core in _BOLD_STATES.items()}

    def update(self, z):
        dt = environ.get_dt()
        dt = dt if isinstance(dt, u.Quantity) else u.Quantity(dt, "s")
        new, comp = self.core_model().step_compensated(self._state(), self._comp.value, _activity(z), dt)
        self._comp.value = comp
        for name, core_name in _BOLD_STATES.items():
            getattr(self, name).value = new[core_name]

    def derivative(self, y, t, z):
        r"""brainmass's vector field: ``derivative((x, f, v, q), t, z) -> (dx, df, dv, dq)``.

        `BalloonWindkessel.vector_field` (per **second**, brainmass's BOLD clock; plain numbers,
        as brainmass's): $\dot x = z - k x - \gamma (f - 1)$, $\dot f = x$,
        $\tau \dot v = f - v^{1/\alpha}$, $\tau \dot q = f E(f)/\rho - v^{1/\alpha} q / v$ with
        $E(f) = 1 - (1 - \rho)^{1/f}$. `t` is unused (autonomous model).
        """
        if not isinstance(y, (tuple, list)) or len(y) != len(_BOLD_STATES):
            raise TypeError(f"BOLDSignal.derivative: y must be the tuple (x, f, v, q), got {type(y).__name__}.")
        state = {core: u.get_magnitude(v) for core, v in zip(_BOLD_STATES.values(), y)}
        d = self.core_model().vector_field(t, state, _activity(z))
        return tuple(d[core] for core in _BOLD_STATES.values())

    def bold(self):
        """The BOLD signal of the current state."""
        return self.core_model().bold(self._state())


# -- HRF kernels and convolution BOLD ----------------------------------------------------------------------


class HRFKernel:
    """brainmass's HRF kernel base: ``kernel(t)`` gives the dimensionless $h(t)$ on a grid of
    times ``t`` (a time Quantity, or plain numbers in ms); ``duration`` is the support
    `HRFBold` samples, a time Quantity (ms).

    The base is abstract as in brainmass: it can be built, and calling it raises
    ``NotImplementedError``. The subclasses hold the functional kernel (``core()``, e.g.
    `brainmass_eqx.observation.GammaHRF`) and read its parameters through (``kernel.tau``).
    """

    __module__ = "brainmass"
    _core_cls: Any = None

    def __init__(self, duration=20.0 * u.second):
        self._core = None
        self._duration = duration

    def core(self):
        """The functional kernel (None for the abstract base)."""
        return self._core

    @property
    def duration(self):
        """The kernel's support, a time Quantity (brainmass returns the Quantity it was given;
        here it is expressed in ms)."""
        if self._core is None:
            return self._duration
        return u.Quantity(self._core.duration, u.ms)

    def __call__(self, t):
        if self._core is None:
            raise NotImplementedError(
                f"{type(self).__name__}.__call__: HRFKernel is abstract; use one of its subclasses "
                "(FirstOrderVolterraHRFKernel, GammaHRFKernel, DoubleExponentialHRFKernel, MixtureOfGammasHRFKernel)."
            )
        return self._core(t)

    def __getattr__(self, name):
        # Only called for names not found normally: the functional kernel's parameters.
        core = self.__dict__.get("_core")
        if core is None or name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(core, name)

    def __repr__(self):
        return repr(self._core) if self._core is not None else f"HRFKernel(duration={self._duration})"


def _kernel_class(name, core_cls):
    def __init__(self, *args, **kwargs):
        self._core = core_cls(*args, **kwargs)

    cls = type(name, (HRFKernel,), {"__init__": __init__, "__module__": "brainmass", "_core_cls": core_cls,
                                     "__doc__": f"brainmass's ``{name}``: `{core_cls.__name__}` " + "(see `HRFKernel`)."})
    cls.__signature__ = inspect.signature(core_cls)
    return cls


FirstOrderVolterraHRFKernel = _kernel_class("FirstOrderVolterraHRFKernel", core_obs.FirstOrderVolterraHRF)
GammaHRFKernel = _kernel_class("GammaHRFKernel", core_obs.GammaHRF)
DoubleExponentialHRFKernel = _kernel_class("DoubleExponentialHRFKernel", core_obs.DoubleExponentialHRF)
MixtureOfGammasHRFKernel = _kernel_class("MixtureOfGammasHRFKernel", core_obs.MixtureOfGammasHRF)


def _core_kernel(kernel):
    """The functional kernel behind a facade kernel (a functional one passes through)."""
    if isinstance(kernel, HRFKernel):
        if kernel.core() is None:
            raise TypeError(
                f"HRFBold(kernel=...): {type(kernel).__name__} has no functional kernel; pass one of "
                "FirstOrderVolterraHRFKernel, GammaHRFKernel, DoubleExponentialHRFKernel, MixtureOfGammasHRFKernel "
                "(or a brainmass_eqx.observation kernel)."
            )
        return kernel.core()
    return kernel


class TemporalAverage:
    """Mean over non-overlapping windows of ``period`` along axis 0: ``avg(signal, dt)``."""

    __module__ = "brainmass"

    def __init__(self, period=4.0 * u.ms):
        self._core = core_obs.TemporalAverage(period)
        self.period = period

    def __call__(self, signal, dt):
        return _to_bu(self._core(signal, dt))


class HRFBold:
    """Convolution BOLD: average to ``downsample_period``, convolve with the HRF kernel,
    scale ``k_1 V_0 (conv - 1)``, decimate to ``period``: ``hrf(signal, dt)``."""

    __module__ = "brainmass"

    def __init__(self, k_1=5.6, V_0=0.02, period=1000.0 * u.ms, downsample_period=4.0 * u.ms, kernel=None,
                 convolution_mode="valid", method="fft", history=None):
        self._core = core_obs.HRFBold(k_1, V_0, period, downsample_period, _core_kernel(kernel), convolution_mode,
                                      method, history)
        self.kernel = FirstOrderVolterraHRFKernel() if kernel is None else kernel

    def __call__(self, signal, dt):
        return _to_bu(self._core(signal, dt))


# -- lead fields ---------------------------------------------------------------------------------------------


class LeadFieldModel(Module):
    """Linear lead-field forward model: ``update(S) = (scale * S) @ L`` (+ sensor noise)."""

    __module__ = "brainmass"

    def __init__(self, in_size, out_size, L, sensor_unit=u.mV, dipole_unit=u.nA * u.meter, scale=None, noise_cov=None):
        super().__init__()
        self.in_size, self.out_size = in_size, out_size
        if callable(L) and not isinstance(L, (jax.Array, u.Quantity)):
            L = L((in_size, out_size) if isinstance(in_size, int) else tuple(in_size) + tuple(out_size))
        self._core = self._make(L, sensor_unit, dipole_unit, scale, noise_cov)

    def _make(self, L, sensor_unit, dipole_unit, scale, noise_cov):
        if isinstance(scale, u.Unit):  # brainmass accepts a unit as the scale (``u.nA * u.meter / u.mV``)
            scale = u.Quantity(1.0, scale)
        return core_obs.LeadFieldModel(_unit(L), _unit(sensor_unit), _unit(dipole_unit), scale, _unit(noise_cov))

    @property
    def L(self):
        return u.Quantity(self._core.L, self._core.sensor_unit / self._core.dipole_unit)

    @property
    def R(self):
        return self._core.R

    @property
    def M(self):
        return self._core.M

    def update(self, nmm_obs_or_dipoles, key=None):
        from .brainstate import random

        core = self._core_for(nmm_obs_or_dipoles)
        if core.noise_chol is not None and key is None:
            key = random.split_key()
        return _to_bu(core(nmm_obs_or_dipoles, key))

    def _core_for(self, S):
        """The core model that projects ``S`` (one, except for `MEGLeadFieldModel`)."""
        return self._core

    @staticmethod
    def compress_vertex_leadfield(L_vertex_3V, W_vertex_to_region_3VxR):
        """`brainmass_eqx.observation.LeadFieldModel.compress_vertex_leadfield` under
        brainmass's argument names: ``L_vertex_3V @ W_vertex_to_region_3VxR``, (M, R)."""
        return core_obs.LeadFieldModel.compress_vertex_leadfield(L_vertex_3V, W_vertex_to_region_3VxR)

    @staticmethod
    def build_fixed_orientation_weights(normals_V3, parcel_VxR, area_weights_V=None):
        """`brainmass_eqx.observation.LeadFieldModel.build_fixed_orientation_weights` under
        brainmass's argument names: the (3V, R) vertex-to-region weights."""
        return core_obs.LeadFieldModel.build_fixed_orientation_weights(normals_V3, parcel_VxR, area_weights_V)


class EEGLeadFieldModel(LeadFieldModel):
    """EEG lead field (dipoles in nA·m, sensors in ``sensor_unit``, default mV)."""

    def __init__(self, in_size, out_size, L, sensor_unit=u.mV, noise_cov=None):
        super().__init__(in_size, out_size, L, sensor_unit=sensor_unit, noise_cov=noise_cov)

    def _make(self, L, sensor_unit, dipole_unit, scale, noise_cov):
        return core_obs.EEGLeadField(_unit(L), _unit(sensor_unit), _unit(noise_cov))


class MEGLeadFieldModel(LeadFieldModel):
    """MEG lead field (dipoles in nA·m, sensors in ``sensor_unit``, default T).

    brainmass fixes ``scale = 1 nA·m / T``, so its observable ``S`` is in tesla (its own test
    feeds ``4 T``): ``update(S) = (scale S) @ L``, in T. That is the default here too. An
    observable in a voltage (a neural mass's mV potential) is mapped one-to-one instead,
    ``1 nA·m / mV`` (the core's `MEGLeadField`), and also comes out in T; brainmass labelled
    that output mV (same numbers), see ``docs/compat.md``.
    """

    def __init__(self, in_size, out_size, L, sensor_unit=u.tesla, noise_cov=None):
        super().__init__(in_size, out_size, L, sensor_unit=sensor_unit, noise_cov=noise_cov)

    def _make(self, L, sensor_unit, dipole_unit, scale, noise_cov):
        self._core_mV = core_obs.MEGLeadField(_unit(L), _unit(sensor_unit), _unit(noise_cov))
        brainmass_scale = u.Quantity(1.0, u.nA * u.meter / u.tesla)
        return core_obs.LeadFieldModel(_unit(L), _unit(sensor_unit), "nA m", brainmass_scale, _unit(noise_cov))

    def _core_for(self, S):
        voltage = u.mV.astropy.physical_type
        if isinstance(S, u.Quantity) and S.unit.physical_type == voltage:
            return self._core_mV
        return self._core


class LeadfieldReadout(Module):
    """Trainable EEG readout ``cy0 * (L_hat @ x) - y0``; ``lm``, ``y0``, ``cy0`` may be `Param` s."""

    __module__ = "brainmass"

    def __init__(self, lm, y0, cy0, normalize=True, demean=True):
        super().__init__()
        # brainmass: a plain matrix is a constant (Const, not fitted), a Param is kept (and trains);
        # its precompute hook makes ``lm.value()`` the normalised, demeaned lead field
        self.lm = Param.init(lm)
        self.y0 = y0 if isinstance(y0, Param) else Param.init(y0)
        self.cy0 = cy0 if isinstance(cy0, Param) else Param.init(cy0)
        self.normalize, self.demean = normalize, demean
        self.lm.precompute = self.normalize_leadfield
        self.update_core()  # normalize and the shapes are checked now

    def normalize_leadfield(self, lm):
        r"""$\hat L$: ``lm`` with its rows scaled to unit L1 (``normalize=True``/``'l1'``) or L2
        (``'l2'``) norm, then each column's mean over sensors removed (``demean``)."""
        return core_obs.LeadfieldReadout(lm, 0.0, 1.0, self.normalize, self.demean).leadfield()

    def update_core(self):
        """The functional readout with the current parameter values."""
        # lm.value() is already L_hat (the precompute hook): the core must not normalise it again
        return core_obs.LeadfieldReadout(self.lm.value(), self.y0.value(), self.cy0.value(), None, False)

    def update(self, x):
        return self.update_core()(u.get_magnitude(x))
