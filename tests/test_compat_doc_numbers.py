"""Deterministic numbers printed by brainmass 0.1.1's documentation, reproduced by the facade.

Each test is a documentation example, run as written on the facade; the expected values are
the ones brainmass printed (to the printed precision).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainstate as bs, braintools as bt, brainunit as u

DT = 0.1 * u.ms


pytestmark = pytest.mark.usefixtures("compat_env")


def test_why_differentiable_gradient():
    # concepts/why_differentiable: loss(0.4) = 0.1332, d(loss)/da = -0.5733 (jax.grad through the run).
    def settled_amplitude(a_value):
        node = bm.HopfStep(in_size=1, a=a_value, w=0.3, init_x=bt.init.Constant(0.5))
        res = bm.Simulator(node, dt=DT).run(400 * u.ms, monitors=["x"], transient=200 * u.ms)
        x = u.get_magnitude(res["x"])
        return jnp.sqrt(jnp.mean(x**2)) * jnp.sqrt(2.0)

    def loss(a_value):
        return (settled_amplitude(a_value) - 1.0) ** 2

    assert f"{loss(0.4):.4f}" == "0.1332"
    assert f"{jax.grad(loss)(0.4):.4f}" == "-0.5733"


def test_hopf_bifurcation_sweep_from_a_kicked_state():
    # gallery/model_zoo/hopf: settled amplitudes 0.000 / 0.069 / 0.502 / 1.001 after a 0.1 kick.
    out = []
    for a in (-0.2, 0.0, 0.25, 1.0):
        m = bm.HopfStep(in_size=1, a=a, w=0.3)
        bs.nn.init_all_states(m)
        m.x.value = m.x.value + 0.1
        r = bm.Simulator(m, dt=DT).run(300.0 * u.ms, monitors=["x"], transient=150.0 * u.ms, init_states=False)
        out.append(f"{float(np.sqrt(np.mean(u.get_magnitude(r['x']) ** 2)) * np.sqrt(2)):.3f}")
    assert out == ["0.000", "0.069", "0.502", "1.001"]


def test_jansen_rit_eeg_amplitude():
    # gallery/case_studies/eeg_fitting: target RMS amplitude (C* = 150) 4.3312 mV.
    col = bm.JansenRitStep(in_size=1, C=150.0)
    res = bm.Simulator(col, dt=DT).run(
        600.0 * u.ms,
        inputs=lambda i, t: (0.0 * u.mV, 220.0 * u.Hz, 0.0 * u.mV),
        monitors=lambda m: m.eeg(),
        transient=200.0 * u.ms,
    )
    x = u.get_magnitude(res["output"])
    x = x - jnp.mean(x)
    assert f"{float(jnp.sqrt(jnp.mean(x**2))):.4f}" == "4.3312"


def test_healthy_epileptor():
    # gallery/model_zoo/epileptor: x0 = -2.4 -> max(x1) = -1.514 (healthy).
    m = bm.EpileptorStep(in_size=1, x0=-2.4)
    r = bm.Simulator(m, dt=DT).run(3000.0 * u.ms, monitors={"x1": "x1"})
    assert f"{float(np.max(u.get_magnitude(r['x1']))):+.3f}" == "-1.514"


def test_custom_objective_values():
    # howto/custom_objective (values of brainmass 0.1.1 with braintools 0.3.0).
    rng = np.random.default_rng(0)
    pred = jnp.asarray(rng.standard_normal((200, 6)))
    target = jnp.asarray(rng.standard_normal((200, 6)))
    o = bm.objectives
    assert float(o.timeseries_rmse()(pred, target)) == pytest.approx(1.433825135231018, rel=1e-6)
    assert float(o.fc_corr()(pred, target)) == pytest.approx(-0.19663743674755096, abs=1e-6)
    assert float(o.cosine_sim()(pred, target)) == pytest.approx(-0.025183098390698433, rel=1e-5)
    assert float(o.fcd(as_loss=True)(pred, target)) == pytest.approx(0.5260788798332214, abs=1e-6)
    combined = o.combine((1.0, o.timeseries_rmse()), (0.5, o.fc_corr(as_loss=True)))
    assert float(combined(pred, target)) == pytest.approx(2.0321438312530518, abs=1e-5)
