"""brainmass's HRF kernel classes on the compat facade: ``duration`` is a time Quantity and
the base ``HRFKernel`` is abstract the way brainmass's is (observation_test.py)."""

import inspect

import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx import observation as core_obs
from brainmass_eqx.compat import brainunit as u

KERNELS = [
    (bm.FirstOrderVolterraHRFKernel, core_obs.FirstOrderVolterraHRF),
    (bm.GammaHRFKernel, core_obs.GammaHRF),
    (bm.DoubleExponentialHRFKernel, core_obs.DoubleExponentialHRF),
    (bm.MixtureOfGammasHRFKernel, core_obs.MixtureOfGammasHRF),
]


@pytest.mark.parametrize("cls, core_cls", KERNELS)
def test_duration_is_a_time_quantity(cls, core_cls):
    # Before: kernel.duration was a float (ms): "'float' object has no attribute 'to_decimal'".
    kernel = cls(duration=400.0 * u.ms)
    assert isinstance(kernel.duration, u.Quantity)
    assert float(kernel.duration.to_decimal(u.second)) == pytest.approx(0.4)
    assert float(cls().duration.to_decimal(u.ms)) == float(core_cls().duration)  # brainmass's default
    t = np.linspace(0.0, 400.0, 11)
    np.testing.assert_allclose(np.asarray(kernel(t * u.ms)), np.asarray(core_cls(duration=400.0 * u.ms)(t)), rtol=1e-6)
    assert inspect.signature(cls) == inspect.signature(core_cls)


def test_parameters_read_through():
    kernel = bm.GammaHRFKernel(tau=1.5)
    assert float(kernel.tau) == 1.5 and isinstance(kernel.core(), core_obs.GammaHRF)


def test_base_kernel_is_abstract():
    # brainmass: HRFKernel() builds, calling it raises NotImplementedError (before: TypeError
    # "Can't instantiate abstract class" at construction).
    base = bm.HRFKernel()
    assert float(base.duration.to_decimal(u.second)) == 20.0
    with pytest.raises(NotImplementedError, match="HRFKernel is abstract; use one of its subclasses"):
        base(np.linspace(0.0, 10.0, 3) * u.ms)
    with pytest.raises(TypeError, match=r"HRFBold\(kernel=...\): HRFKernel has no functional kernel"):
        bm.HRFBold(kernel=base)


def test_hrfbold_with_a_facade_kernel_equals_the_core():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(2000, 3))
    kernel = bm.GammaHRFKernel(duration=400.0 * u.ms)
    facade = bm.HRFBold(period=100.0 * u.ms, kernel=kernel)
    core = core_obs.HRFBold(period=100.0 * u.ms, kernel=core_obs.GammaHRF(duration=400.0 * u.ms))
    assert facade.kernel is kernel
    np.testing.assert_array_equal(np.asarray(u.get_magnitude(facade(signal, 0.1 * u.ms))),
                                  np.asarray(core(signal, 0.1)))
