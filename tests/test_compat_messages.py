"""Errors the compat facade raises at the user's own line, naming the argument and the fix."""

import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainunit as u


def test_noise_size_is_checked_at_construction():
    # Before: construction passed, and the run failed in the core with
    # "ValueError: y0['x_noise'] has shape (3,); Noisy(Hopf) takes (2,) (one value per region)."
    with pytest.raises(ValueError, match=r"^noise_x: OUProcess has in_size 3 but HopfStep has in_size 2; give the "
                       r"noise the model's size: noise_x=OUProcess\(in_size=2, ...\)\.$"):  # fmt: skip
        bm.HopfStep(in_size=2, noise_x=bm.OUProcess(in_size=3))
    with pytest.raises(ValueError, match=r"^noise_E: GaussianNoise has in_size \(1, 4\) but WilsonCowanStep has in_size 4"):
        bm.WilsonCowanStep(4, noise_E=bm.GaussianNoise(in_size=(1, 4)))
    with pytest.raises(ValueError, match=r"^noise: OUProcess has in_size 3 but HopfStep has in_size 2"):
        bm.Network(bm.HopfStep(2), conn=np.ones((2, 2)), coupled_var="y", noise=bm.OUProcess(3))
    bm.HopfStep(in_size=2, noise_x=bm.OUProcess(in_size=1, sigma=0.1))  # one process for every region: fine
    bm.HopfStep(in_size=2, noise_x=bm.OUProcess(in_size=2, sigma=0.1))


def test_plain_dt_is_refused(compat_env):
    # Before: it ran, reading dt=0.1 in the duration's unit for the step count and in ms for
    # the step itself (0.001 * u.second gave "yields 0 steps"); brainmass raised inside JAX.
    for duration in (1.0 * u.ms, 0.001 * u.second):
        with pytest.raises(TypeError, match=r"^dt=0.1 is a plain number; .* pass dt=0.1 \* u.ms"):
            bm.Simulator(bm.HopfStep(2), dt=0.1).run(duration)
    r = bm.Simulator(bm.HopfStep(2), dt=0.1 * u.ms).run(1.0 * u.ms, monitors=["x"])
    assert r["x"].shape == (10, 2)


def test_a_user_xy_oscillator_subclass_is_refused_with_what_to_write_instead(compat_env):
    # brainmass ran a subclass's own dx/dy; the facade said only "XY_Oscillator is
    # abstract: use HopfStep, StuartLandauStep or VanDerPolStep", which the user did not use.
    class MyOsc(bm.XY_Oscillator):
        def dx(self, x, y, inp):
            return (-x - y + inp) / u.ms

        def dy(self, y, x, inp):
            return (x - y + inp) / u.ms

    m = MyOsc(2)
    m.init_all_states()
    with pytest.raises(NotImplementedError, match=r"^MyOsc subclasses XY_Oscillator with its own dx and dy: the facade "
                                                  r"does not run such a subclass.*AbstractXYOscillator"):
        m.update()
