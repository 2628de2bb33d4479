"""brainmass's ``JansenRitTR`` on the facade (computed by ``brainmass_eqx.models.JansenRitTR``).

The expected EEG proxies are brainmass 0.1.1's on the same script (with
``symmetrize_lateral=False``, brainmass's unsymmetrised lateral weights); the ``std_in``
noise is compared with brainmass's in distribution (its random streams differ).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx.compat as bm
import brainmass_eqx.models as M
from brainmass_eqx import Param
from brainmass_eqx.compat import brainstate as bs, braintools as bt, brainunit as u

SC = np.array([[0.0, 1.0, 0.5], [0.2, 0.0, 1.0], [0.7, 0.3, 0.0]])
DELAY = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]])


pytestmark = pytest.mark.usefixtures("compat_env")


def _model(**kw):
    return bm.JansenRitTR(
        3, DELAY, SC, k=2.0, w_ll=np.zeros((3, 3)), w_ff=np.full((3, 3), 0.1), w_bb=np.zeros((3, 3)),
        g_l=50.0, g_f=30.0, g_b=20.0, delay_init=bt.init.Constant(0.5), tr=1 * u.ms, **kw,
    )  # fmt: skip


def test_tr_steps_match_brainmass():
    m = _model(symmetrize_lateral=False)
    bs.nn.init_all_states(m)
    drive = np.array([100.0, 150.0, 200.0])
    out = np.array([np.asarray(m.update(drive)) for _ in range(6)])
    expected = [  # brainmass 0.1.1
        [0.004306, 0.003908, 0.003615],
        [0.017242, 0.01567, 0.014507],
        [0.035978, 0.029772, 0.031436],
        [0.054048, 0.040555, 0.049555],
        [0.066866, 0.049163, 0.064495],
        [0.076059, 0.05787, 0.078168],
    ]
    np.testing.assert_allclose(out, expected, atol=2e-6)
    eeg, states = m.update(np.full((10, 3), 120.0), record_state=True, iter_input=True)
    np.testing.assert_allclose(np.asarray(eeg), [0.084976, 0.07026, 0.093829], atol=2e-6)
    np.testing.assert_allclose(u.get_magnitude(states["M"]), [0.02508] * 3, atol=2e-6)
    assert u.get_unit(m.step.M.value) == u.get_unit(1.0 * u.mV)


def test_symmetrised_lateral_weights_are_the_default():
    runs = []
    for kw in ({}, {"symmetrize_lateral": False}):
        m = bm.JansenRitTR(3, DELAY, SC, k=1.0, w_ll=np.zeros((3, 3)), w_ff=np.zeros((3, 3)), w_bb=np.zeros((3, 3)),
                           g_l=200.0, g_f=0.0, g_b=0.0, **kw)
        bs.nn.init_all_states(m)
        # Unequal drives make the regions' M differ, so the lateral weights (which drive M) matter.
        runs.append(np.array([u.get_magnitude(m.update(np.array([1.0, 4.0, 8.0]), record_state=True)[1]["M"])
                              for _ in range(8)]))
    assert not np.allclose(runs[0], runs[1])


def test_trainable_weights_get_gradients():
    m = _model(symmetrize_lateral=False)
    m.w_ff = bs.nn.Param(np.full((3, 3), 0.1))
    bs.nn.init_all_states(m)
    weights = m.states(bs.ParamState)

    def loss():
        return np.float32(0.0) + (m.update(np.array([100.0, 150.0, 200.0])) ** 2).sum()

    grads = bs.transform.grad(loss, grad_states=weights)()
    g = np.asarray(next(iter(grads.values())))
    assert g.shape == (3, 3) and np.all(np.isfinite(g)) and np.any(g != 0)


def test_errors():
    m = _model()
    with pytest.raises(ValueError, match="init_all_states"):
        m.update(np.ones(3))
    bs.nn.init_all_states(m)
    with pytest.raises(AssertionError, match="does not match number of steps 10"):
        m.update(np.ones((4, 3)), iter_input=True)
    with pytest.raises(ValueError, match="batch_size"):
        bs.nn.init_all_states(m, batch_size=2)
    with pytest.raises(ValueError, match="std_in.*plain number"):
        _model(std_in=0.1 * u.mV)
    with pytest.raises(ValueError, match="std_in must be >= 0"):
        _model(std_in=-1.0)
    with pytest.raises(ValueError, match="sc must have shape"):
        bm.JansenRitTR(3, DELAY, np.ones((2, 2)), 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)


# brainmass 0.1.1's JansenRitTR(std_in=s) raises a unit error for every s (a plain number
# meets the mV input of M; a Quantity in mV meets the Hz input of E). The reference below
# is brainmass's own run with what std_in builds, GaussianNoise(sigma=s) on M, E and I, in
# each input's unit: `_model` without the initialiser keywords, then
#   m.step.noise_M = brainmass.GaussianNoise(3, sigma=s * u.mV); (noise_E: u.Hz; noise_I: u.mV)
# 300 updates of the drive below from brainstate.random.seed(0..31), minus the noiseless run,
# TRs 50..299 of all regions pooled: the RMS, mean and std of that deviation of E - I (mV).
BRAINMASS_STD_IN = {5.0: (0.18813, -0.15427, 0.10767), 1.0: (0.031244, -0.011030, 0.029232)}
DRIVE = np.array([100.0, 150.0, 200.0])
TR_ARGS = (3, SC, DELAY, 2.0, np.zeros((3, 3)), np.full((3, 3), 0.1), np.zeros((3, 3)), 50.0, 30.0, 20.0)


def _deviation_stats(noisy, det):
    d = (np.asarray(noisy) - np.asarray(det))[..., 50:, :]
    return np.sqrt(np.mean(d**2)), d.mean(), d.std()


@pytest.mark.parametrize("std_in", sorted(BRAINMASS_STD_IN))
def test_core_std_in_matches_brainmass_in_distribution(std_in):
    inputs = jnp.tile(jnp.asarray(DRIVE), (300, 1))
    det = M.JansenRitTR(*TR_ARGS, symmetrize_lateral=False, delay_init=0.5)(inputs)[0]
    model = M.JansenRitTR(*TR_ARGS, symmetrize_lateral=False, delay_init=0.5, std_in=std_in)
    runs = jax.jit(jax.vmap(lambda key: model(inputs, key=key)[0]))(jax.random.split(jax.random.key(3), 32))
    np.testing.assert_allclose(_deviation_stats(runs, det), BRAINMASS_STD_IN[std_in], rtol=0.1)


def test_core_std_in_keys_and_errors():
    inputs = jnp.tile(jnp.asarray(DRIVE), (60, 1))
    plain = M.JansenRitTR(*TR_ARGS, delay_init=0.5)
    det = plain(inputs)[0]
    # Without std_in the key is ignored and nothing changes, bit for bit.
    assert np.array_equal(np.asarray(plain(inputs, key=jax.random.key(1))[0]), np.asarray(det))
    model = M.JansenRitTR(*TR_ARGS, delay_init=0.5, std_in=2.0)
    a, b, c = (np.asarray(model(inputs, key=jax.random.key(k))[0]) for k in (1, 1, 2))
    assert np.array_equal(a, b) and np.max(np.abs(a - c)) > 1e-2
    # More noise moves the trajectory further from the noiseless one (same key).
    spread = [np.std(np.asarray(M.JansenRitTR(*TR_ARGS, delay_init=0.5, std_in=s)(inputs, key=jax.random.key(1))[0])
                     - np.asarray(det)) for s in (0.5, 2.0, 8.0)]
    assert 0 < spread[0] < spread[1] < spread[2]
    # A per-region std: only the noisy region's output moves visibly. (The noiseless ones
    # move through the coupling too, but within 60 samples by about 1e-6: rounding's size.)
    per_region = M.JansenRitTR(*TR_ARGS, delay_init=0.5, std_in=Param(jnp.array([4.0, 0.0, 0.0])))
    dev = np.std(np.asarray(per_region(inputs, key=jax.random.key(1))[0]) - np.asarray(det), axis=0)
    assert dev[0] > 1e-2 and dev[1] < 1e-3 * dev[0] and dev[2] < 1e-3 * dev[0]
    with pytest.raises(ValueError, match="key"):
        model(inputs)
    with pytest.raises(ValueError, match="key"):
        model.step_tr(model.init_state(), DRIVE)
    with pytest.raises(ValueError, match="std_in must be >= 0"):
        M.JansenRitTR(*TR_ARGS, std_in=jnp.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="std_in must be a scalar or have shape"):
        M.JansenRitTR(*TR_ARGS, std_in=np.ones(2))


def test_core_std_in_gradient_matches_finite_differences(x64):
    # With the key fixed the noise is std_in * z, so the loss is smooth in std_in.
    inputs = jnp.tile(jnp.asarray(DRIVE), (30, 1))

    def loss(std):
        model = M.JansenRitTR(*TR_ARGS, delay_init=0.5, std_in=std)
        return jnp.mean(model(inputs, key=jax.random.key(0))[0] ** 2)

    g = float(jax.grad(loss)(2.0))
    h = 1e-4
    fd = (float(loss(2.0 + h)) - float(loss(2.0 - h))) / (2 * h)
    assert g != 0
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def _facade_run(std_in, seed, n_tr=300):
    bs.random.seed(seed)
    m = _model(symmetrize_lateral=False, std_in=std_in)
    bs.nn.init_all_states(m)
    return np.asarray(bs.transform.for_loop(lambda i: m.update(DRIVE), np.arange(n_tr)))


def test_facade_std_in_draws_from_brainstate_random():
    det = _facade_run(None, 0)
    a, b, c = _facade_run(5.0, 0), _facade_run(5.0, 0), _facade_run(5.0, 1)
    assert np.array_equal(a, b) and np.max(np.abs(a - c)) > 1e-2
    np.testing.assert_allclose(_deviation_stats(np.stack([a, c]), det), BRAINMASS_STD_IN[5.0], rtol=0.15)
    # Without std_in the run does not touch the random state.
    key = bs.random.get_key()
    m = _model(symmetrize_lateral=False)
    bs.nn.init_all_states(m)
    m.update(DRIVE)
    assert np.array_equal(jax.random.key_data(bs.random.get_key()), jax.random.key_data(key))


def test_horn_layer_with_delays_matches_brainmass_and_carries_its_past():
    bs.environ.set(dt=1.0 * u.ms)
    w_in = np.array([[0.5, -0.2, 0.3], [0.1, 0.4, -0.6]])
    w_rec = np.array([[0.0, 0.8, -0.5], [0.3, 0.0, 0.9], [-0.7, 0.2, 0.0]])
    delay = np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 2.5], [4.0, 1.0, 0.0]]) * u.ms
    layer = bm.HORNSeqLayer(2, 3, delay=delay, delay_init=bt.init.Constant(0.2),
                            rec_w_init=lambda shape: w_rec, inp_w_init=lambda shape: w_in)
    bs.nn.init_all_states(layer)
    t = np.arange(12.0)
    x = np.stack([np.sin(t / 2), np.cos(t / 3)], axis=1)
    first, second = np.asarray(layer(x)), np.asarray(layer(x))
    # brainmass 0.1.1 on the same script: rows 0, 5, 11 of the first call, then the second
    # call's first rows (the states and the delay buffer carry over between calls).
    np.testing.assert_allclose(first[[0, 5, 11]], [[0.006346, 0.022596, -0.024175], [0.252186, 0.218525, -0.228541],
                                                   [0.125477, -0.03772, 0.067061]], atol=2e-6)
    np.testing.assert_allclose(second[:3], [[0.019788, -0.093149, 0.124127], [-0.074987, -0.130865, 0.157341],
                                            [-0.148825, -0.154033, 0.173963]], atol=2e-6)
    assert isinstance(layer.h2h.weights.val, bs.ParamState)  # the recurrent weights are trainable
    states, out = layer(x, record_state=True)
    assert states["x"].shape == (12, 3) and out.shape == (12, 3)
