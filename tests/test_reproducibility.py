"""What is reproducible, bit for bit (docs/concepts.md, "Reproducibility"): one key, one
precision, one machine. Small sizes: 3-4 regions, tens of ms."""

import random

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import optimistix as optx
import pytest

import brainmass_eqx as bx
from brainmass_eqx.fit import Fitter
from brainmass_eqx.noise import OUProcess, WhiteNoise


def _noisy_node():
    return bx.with_noise(bx.Hopf(n_regions=3, a=-0.05), {"x": WhiteNoise(0.05), "y": OUProcess(0.05, tau=5.0)})


def _noisy_network():
    no_self = 1.0 - np.eye(4)
    return bx.Network(bx.Hopf(n_regions=4, a=-0.05), no_self / 3, delays=1.3 * no_self, k=0.5, noise=OUProcess(0.05, tau=5.0))


def _assert_same_run(a, b, names):
    for name in names:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
        np.testing.assert_array_equal(np.asarray(a.final_state[name]), np.asarray(b.final_state[name]), err_msg=name)


# A state met 9.3 ms into a run of `_noisy_node` with key 1: from it, the first step of
# key 1042 rounds differently (1 ulp) where the step is compiled alone, outside a loop.
_Y0 = {
    "x": [-0.16916842758655548, -0.09235652536153793, 0.14900529384613037],
    "y": [0.15330518782138824, -0.20035432279109955, 0.11898204684257507],
    "y_noise": [0.01910509169101715, 0.009640906006097794, -0.011156771332025528],
}


@pytest.mark.parametrize(
    "duration, chunk, seed, y0",
    [
        (30.0, 1, 1, None),  # chunks of one step each: 157 of 300 samples were 1 ulp off
        (5.7, 55, 0, None),  # a last chunk of one step (sample 56 was 1 ulp off)
        (0.3, 2, 1042, _Y0),  # the first sample, stepped alone before the chunks
        (30.0, 7, 1, None),
    ],
)
def test_a_chunked_noisy_run_is_the_run_in_one_piece_bit_for_bit(duration, chunk, seed, y0):
    # XLA compiles a loop of one iteration as code without a loop, which can round a step
    # differently from the loop of the run in one piece: no chunk is a single step.
    model = _noisy_node()
    y0 = None if y0 is None else {name: np.asarray(v, np.float32) for name, v in y0.items()}
    whole = bx.simulate(model, duration, dt=0.1, key=jr.key(seed), y0=y0)
    chunked = bx.simulate(model, duration, dt=0.1, key=jr.key(seed), y0=y0, chunk=chunk)
    assert isinstance(chunked["x"], np.ndarray)
    _assert_same_run(whole, chunked, model.state_names)


def test_a_chunk_of_at_most_two_samples_stays_in_host_memory():
    # A run of two samples is not cut (one chunk would be one step) but is returned as a
    # chunked run is: NumPy arrays.
    tr = bx.simulate(_noisy_node(), 0.2, dt=0.1, key=jr.key(0), chunk=1)
    assert isinstance(tr["x"], np.ndarray) and tr["x"].shape == (2, 3)


@pytest.mark.parametrize("model", [_noisy_node(), _noisy_network()], ids=["node", "delayed_network"])
def test_the_noise_belongs_to_the_step_not_to_what_is_recorded(model):
    # transient, sample_every, monitors and a continuation (y0=trajectory, same key) change
    # what is recorded, not a bit of the run (2103 steps: three blocks of the Brownian path).
    names = model.state_names
    whole = bx.simulate(model, 210.3, dt=0.1, key=jr.key(7))
    late = bx.simulate(model, 210.3, dt=0.1, key=jr.key(7), transient=1030)
    sparse = bx.simulate(model, 210.3, dt=0.1, key=jr.key(7), sample_every=5, transient=9)
    only_x = bx.simulate(model, 210.3, dt=0.1, key=jr.key(7), monitors=["x"])
    first = bx.simulate(model, 100.0, dt=0.1, key=jr.key(7))
    second = bx.simulate(model, 110.3, dt=0.1, key=jr.key(7), y0=first)
    for name in names:
        np.testing.assert_array_equal(np.asarray(late[name]), np.asarray(whole[name])[1030:])
        np.testing.assert_array_equal(np.asarray(sparse[name]), np.asarray(whole[name])[9::5])
        np.testing.assert_array_equal(np.asarray(second[name]), np.asarray(whole[name])[1000:])
        for run in (late, sparse, only_x, second):
            np.testing.assert_array_equal(np.asarray(run.final_state[name]), np.asarray(whole.final_state[name]))
    np.testing.assert_array_equal(np.asarray(only_x["x"]), np.asarray(whole["x"]))


def test_members_of_an_ensemble_draw_their_own_noise_and_one_key_shares_it():
    net = _noisy_network()

    def member(key):
        return bx.simulate(net, 20.0, dt=0.1, key=key, monitors=["x_noise"])["x_noise"]

    keys = jr.split(jr.key(3), 6)
    reference = jax.jit(jax.vmap(member))(keys)
    # One vmap call on one device is the jitted vmap, bit for bit.
    np.testing.assert_array_equal(np.asarray(bx.ensemble(member, keys, threads=1)), np.asarray(reference))
    increments = np.diff(np.asarray(reference, np.float64)[:, :, 0], axis=1)
    corr = np.corrcoef(increments)
    assert np.abs(corr - np.eye(6)).max() < 0.25  # independent: about 1/sqrt(199) = 0.07 each

    # A vmap over parameters with one key gives every member the same noise (common
    # random numbers): the noise path depends on the key and the step alone.
    def by_coupling(k):
        model = bx.Network(bx.Hopf(n_regions=4, a=-0.05), (1.0 - np.eye(4)) / 3, k=k, noise=OUProcess(0.05, tau=5.0))
        return bx.simulate(model, 20.0, dt=0.1, key=jr.key(0), monitors=["x_noise"])["x_noise"]

    shared = jax.vmap(by_coupling)(jnp.array([0.1, 0.9]))
    np.testing.assert_array_equal(np.asarray(shared[0]), np.asarray(shared[1]))


# -- the Fitter: one key, one result, whatever NumPy's global generator holds ------------------


class _Pair(bx.AbstractModel):
    a: object = bx.models.parameter(0.0)
    b: object = bx.models.parameter(0.0)


def _loss(model, target, key=None):
    a, b = bx.unwrap(model.a), bx.unwrap(model.b)
    noise = 0.0 if key is None else 0.01 * jr.normal(key)
    return (a - target[0]) ** 2 + (b - target[1]) ** 2 + jnp.sin(3 * a) ** 2 + noise


_TARGET = jnp.array([0.7, -0.4])
_START = _Pair(a=bx.Param(0.1, bounds=(-2.0, 2.0)), b=bx.Param(0.0, bounds=(-2.0, 2.0)))

_BACKENDS = {
    "grad": (lambda: Fitter(_START, optax.adam(0.05), loss_fn=_loss, with_key=True), dict(n_starts=2)),
    "optimistix": (lambda: Fitter(_START, optx.BFGS(rtol=1e-6, atol=1e-8), loss_fn=_loss, backend="optimistix"), dict(n_starts=2)),
    "nevergrad_DE": (lambda: Fitter(_START, "DE", loss_fn=_loss, backend="nevergrad"), dict(popsize=8)),
    "nevergrad_CMA": (lambda: Fitter(_START, "CMA", loss_fn=_loss, backend="nevergrad"), dict(popsize=8)),
    "scipy_restarts": (lambda: Fitter(_START, "Nelder-Mead", loss_fn=_loss, backend="scipy"), dict(n_starts=3)),
}


@pytest.mark.parametrize("backend", list(_BACKENDS))
def test_the_same_key_gives_the_same_fit(backend):
    make, options = _BACKENDS[backend]
    fitter = make()
    results = []
    for seed in (1, 2):
        np.random.seed(seed)  # the global generators play no part
        random.seed(seed)
        results.append(fitter.fit(_TARGET, 6, key=jr.key(5), **options))
    a, b = results
    assert a.best_loss == b.best_loss and a.best_step == b.best_step and a.n_steps == b.n_steps
    np.testing.assert_array_equal(np.asarray(a.history), np.asarray(b.history))
    for name in a.best_params:
        np.testing.assert_array_equal(np.asarray(a.best_params[name]), np.asarray(b.best_params[name]))
    other = fitter.fit(_TARGET, 6, key=jr.key(6), **options)  # the key draws starts, seeds, noise
    assert not np.array_equal(np.asarray(other.history), np.asarray(a.history))


@pytest.mark.parametrize("backend", ["grad", "optimistix"])
def test_a_resumed_fit_with_several_starts_and_noise_is_the_fit_run_straight_through(tmp_path, backend):
    # The random starts and, with with_key=True, each step's noise key come back with the
    # checkpoint; a FitResult pickles unchanged.
    import pickle

    make, options = _BACKENDS[backend]
    straight = make().fit(_TARGET, 8, key=jr.key(5), **options)
    path = str(tmp_path / "fit.ckpt")
    make().fit(_TARGET, 3, key=jr.key(5), checkpoint=path, **options)
    resumed = make().fit(_TARGET, 8, key=jr.key(5), checkpoint=path, resume=True, **options)
    assert resumed.n_steps == straight.n_steps and resumed.best_step == straight.best_step
    np.testing.assert_array_equal(np.asarray(resumed.history), np.asarray(straight.history))
    loaded = pickle.loads(pickle.dumps(resumed))
    for result in (resumed, loaded):
        assert result.best_loss == straight.best_loss
        for name in straight.best_params:
            np.testing.assert_array_equal(np.asarray(result.best_params[name]), np.asarray(straight.best_params[name]))
