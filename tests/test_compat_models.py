"""The compat facade's models and Simulator: brainmass's API, semantics, messages and numbers."""

from __future__ import annotations

import inspect
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx as bx
import brainmass_eqx.compat as bm
from brainmass_eqx.compat import _simulator, brainstate as bs, braintools as bt, brainunit as u

DT = 0.1 * u.ms


pytestmark = pytest.mark.usefixtures("compat_env")


def test_public_names_and_signatures():
    assert len(bm.__all__) == 84
    for name in bm.__all__:
        assert hasattr(bm, name), name
    assert str(inspect.signature(bm.HopfStep)) == (
        "(in_size, a=0.25, w=0.2, beta=1.0, noise_x=None, noise_y=None, init_x=Constant(value=0.0), "
        "init_y=Constant(value=0.0), method='exp_euler')"
    )
    sig = inspect.signature(bm.WilsonCowanStep)
    assert list(sig.parameters)[-3:] == ["rE_init", "rI_init", "method"]
    assert str(sig.parameters["tau_E"].default) == "1. ms"
    assert bm.list_models()[0].name == "HopfStep" and len(bm.list_models()) == 20


def test_deprecation_shim_and_unknown_names():
    with pytest.warns(DeprecationWarning, match="brainmass.HopfModel is deprecated, use brainmass.HopfStep instead"):
        assert bm.HopfModel is bm.HopfStep
    with pytest.raises(AttributeError, match="module 'brainmass' has no attribute 'Nope'"):
        bm.Nope  # noqa: B018


def test_update_is_one_core_step():
    node = bm.HopfStep(2, a=0.3, w=0.4, init_x=bt.init.Constant(0.5))
    node.init_all_states()
    for _ in range(3):
        node.update(0.1)
    traj = bx.simulate(bx.models.Hopf(2, a=0.3, w=0.4, init_x=0.5), 0.3, dt=0.1, inputs=lambda t: {"x": 0.1})
    np.testing.assert_allclose(node.x.value, traj["x"][-1], rtol=1e-6)
    assert node.update().__class__ is tuple  # Hopf's update returns (x, y)


def test_units_of_states_and_outputs():
    jr = bm.JansenRitStep(1)
    res = bm.Simulator(jr, dt=DT).run(2.0 * u.ms, inputs=lambda i, t: (0.0 * u.mV, 220.0 * u.Hz, 0.0 * u.mV))
    assert str(res["output"].unit) == "mV"  # update returns eeg() in mV
    assert str(jr.Mv.value.unit) == "mV / s"  # brainmass's velocity unit
    mpr = bm.MontbrioPazoRoxinStep(1)
    r = bm.Simulator(mpr, dt=0.01 * u.ms).run(1.0 * u.ms, monitors=["r"])
    assert str(u.get_unit(r["r"])) == "Hz" and str(u.get_unit(r["ts"])) == "ms"


def test_simulator_layout_transient_sampling_and_ts():
    node = bm.HopfStep(3, a=0.25, w=0.3)
    res = bm.Simulator(node, dt=DT).run(1.0 * u.ms, monitors=["x", "y"], transient=2, sample_every=3)
    assert list(res) == ["x", "y", "ts"]
    assert res["x"].shape == (3, 3)  # ceil((10 - 2) / 3)
    np.testing.assert_allclose(u.get_magnitude(res["ts"]), [0.3, 0.6, 0.9], rtol=1e-6)
    res = bm.Simulator(node, dt=DT).run(1.0 * u.ms, batch_size=2, monitors=lambda m: m.x.value)
    assert res["output"].shape == (10, 2, 3)


def test_simulator_messages():
    node = bm.HopfStep(2)
    bs.environ.reset()
    with pytest.raises(ValueError, match=r"dt is not set: pass Simulator\(model, dt=...\)"):
        bm.Simulator(node).run(1.0 * u.ms)
    sim = bm.Simulator(node, dt=DT)
    with pytest.warns(UserWarning, match="duration 1.05 ms is not an integer multiple of dt 0.1 ms; truncating to 10 steps."):
        assert sim.run(1.05 * u.ms, monitors=["x"])["x"].shape == (10, 2)
    with pytest.raises(ValueError, match="duration 0.05 ms yields 0 steps; must be >= 1 dt."):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sim.run(0.05 * u.ms)
    with pytest.raises(ValueError, match="transient must be >= 0, got -1."):
        sim.run(1.0 * u.ms, transient=-1)
    with pytest.raises(ValueError, match=r"transient \(20 steps\) must be shorter than the run \(10 steps\)"):
        sim.run(1.0 * u.ms, transient=20)
    with pytest.raises(ValueError, match="sample_every must be >= 1, got 0."):
        sim.run(1.0 * u.ms, sample_every=0)
    with pytest.raises(ValueError, match="inputs has length 5 but the run has 10 steps."):
        sim.run(1.0 * u.ms, inputs=jnp.zeros(5))
    with pytest.raises(ValueError, match="monitor 'z' is not an attribute of HopfStep"):
        sim.run(1.0 * u.ms, monitors=["z"])
    with pytest.raises(ValueError, match="monitor 'zz' -> 'z' is not an attribute of"):
        sim.run(1.0 * u.ms, monitors={"zz": "z"})


def test_constructor_messages():
    with pytest.raises(AssertionError, match="noise_x must be a Noise instance or None."):
        bm.HopfStep(2, noise_x=0.1)
    with pytest.raises(AttributeError, match="ode_nope_step"):
        bm.HopfStep(2, method="nope")
    with pytest.raises(ValueError, match=r"The shape of the parameter \(3,\) does not match with the given size \(2,\)"):
        bm.HopfStep(2, a=jnp.ones(3))
    with pytest.raises(u.UnitMismatchError, match="tau_E"):
        bm.WilsonCowanStep(2, tau_E=1.0 * u.mV)


def test_a_second_run_does_not_recompile():
    node = bm.HopfStep(4, a=0.2, w=0.3)
    sim = bm.Simulator(node, dt=DT)
    sim.run(2.0 * u.ms, monitors=["x"])
    before = _simulator.TRACE_COUNTS["core"]
    sim.run(2.0 * u.ms, monitors=["x"])
    bm.Simulator(bm.HopfStep(4, a=0.9, w=0.1), dt=DT).run(2.0 * u.ms, monitors=["x"])  # new values, same shapes
    assert _simulator.TRACE_COUNTS["core"] == before


def test_generic_modules_run_brainmass_loop_and_cache():
    class Leak(bs.nn.Dynamics):
        def __init__(self, n):
            super().__init__(n)

        def init_state(self, batch_size=None):
            self.r = bs.HiddenState(bt.init.param(bt.init.Constant(0.0), self.varshape, batch_size))

        def update(self, inp=0.0):
            self.r.value = self.r.value + (-self.r.value + inp) / (10.0 * u.ms) * bs.environ.get_dt()
            return self.r.value

    m = Leak(2)
    sim = bm.Simulator(m, dt=DT)
    res = sim.run(1.0 * u.ms, inputs=lambda i, t: 1.0, monitors=["r"])
    assert res["r"].shape == (10, 2)
    np.testing.assert_allclose(res["r"][-1], 1 - 0.99**10, rtol=1e-5)
    before = _simulator.TRACE_COUNTS["generic"]
    sim.run(1.0 * u.ms, monitors=["r"])
    sim.run(1.0 * u.ms, monitors=["r"])  # init_state made new states: same program reused
    assert _simulator.TRACE_COUNTS["generic"] == before + 1


def test_noise_on_models_and_alone():
    noisy = bm.HopfStep(3, a=-0.05, w=0.3, noise_x=bm.OUProcess(3, sigma=0.1, tau=20.0 * u.ms))
    bs.random.seed(7)
    a = bm.Simulator(noisy, dt=DT).run(5.0 * u.ms, monitors=["x"])["x"]
    bs.random.seed(7)
    b = bm.Simulator(noisy, dt=DT).run(5.0 * u.ms, monitors=["x"])["x"]
    np.testing.assert_array_equal(a, b)
    assert float(jnp.std(a)) > 0
    ou = bm.Simulator(bm.OUProcess(2, sigma=1.0, tau=5.0 * u.ms), dt=DT).run(2.0 * u.ms)
    assert ou["output"].shape == (20, 2)
    with pytest.raises(u.UnitMismatchError):  # the default sigma is 1 nA; Hopf's input has no unit
        bm.Simulator(bm.HopfStep(2, noise_x=bm.GaussianNoise(2)), dt=DT).run(1.0 * u.ms)


@pytest.mark.parametrize("a, amplitude", [(0.25, "0.502"), (1.0, "1.001"), (2.0, "1.430")])
def test_documented_hopf_amplitudes(a, amplitude):
    # Tutorial 06 ("fitting with gradients"), cell 3: brainmass prints 0.502 / 1.001 / 1.430.
    node = bm.HopfStep(in_size=1, a=a, w=0.3, init_x=bt.init.Constant(0.5), init_y=bt.init.Constant(0.0))
    res = bm.Simulator(node, dt=DT).run(300.0 * u.ms, monitors=["x"], transient=150.0 * u.ms)
    x = u.get_magnitude(res["x"])
    assert f"{float(jnp.sqrt(jnp.mean(x**2)) * jnp.sqrt(2.0)):.3f}" == amplitude


def test_documented_wong_wang_exc_inh_rate():
    # Model-zoo page: brainmass prints 3.0771968364715576 Hz after 3000 ms (J_i = 1, G = 2).
    m = bm.WongWangExcInhStep(in_size=1, J_i=1.0, G=2.0)
    r = bm.Simulator(m, dt=DT).run(3000.0 * u.ms, monitors={"S_e": "S_e", "rate_e": lambda m: m.H_e()})
    # brainmass 0.1.1's H_e is a plain array of Hz values (its wong_wang_exc_inh_test applies
    # jnp.isfinite to it); the page prints the unit itself.
    assert not isinstance(r["rate_e"], u.Quantity) and not isinstance(m.H_e(), u.Quantity)
    assert float(u.get_magnitude(r["rate_e"])[-1, 0]) == pytest.approx(3.0771968364715576, rel=1e-5)
