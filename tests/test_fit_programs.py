"""A new `Fitter` of the same problem reuses an earlier Fitter's compiled programs
(`brainmass_eqx.fit._programs`), and one of another problem never does."""

import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest

import brainmass_eqx as bx
from brainmass_eqx import objectives
from brainmass_eqx.fit import Fitter
from brainmass_eqx.fit._programs import value_key
from brainmass_eqx.network import Network

STEPS = {"grad": {"n_steps": 3}, "optimistix": {"n_steps": 3}, "nevergrad": {"n_steps": 2, "popsize": 4},
         "scipy": {"n_steps": 3}}  # fmt: skip


def predict(m):
    return bx.simulate(m, 5.0, dt=0.1)["x"]


def hopf(a, n=2):
    return bx.Hopf(n, a=bx.Param(a, fit=True, bounds=(0.01, 1.0)), w=0.3, init_x=0.5)


def same(r1, r2):
    """Bit-identical results."""
    assert r1.best_loss == r2.best_loss
    np.testing.assert_array_equal(r1.history, r2.history)
    for name in r1.best_params:
        np.testing.assert_array_equal(r1.best_params[name], r2.best_params[name])


@pytest.mark.parametrize("backend", ["grad", "optimistix", "nevergrad", "scipy"])
def test_a_new_fitter_of_the_same_problem_does_not_compile(backend, compiles):
    Fitter.clear_compiled()
    target1, target2 = predict(bx.Hopf(2, a=0.4, w=0.3, init_x=0.5)), predict(bx.Hopf(2, a=0.6, w=0.3, init_x=0.5))
    Fitter(hopf(0.1), backend=backend, predict=predict).fit(target1, **STEPS[backend])
    n = len(compiles)
    assert n > 0
    # Other starting values, another target, a default optimizer built again.
    reused = Fitter(hopf(0.2), backend=backend, predict=predict).fit(target2, **STEPS[backend])
    assert len(compiles) == n
    Fitter.clear_compiled()
    fresh = Fitter(hopf(0.2), backend=backend, predict=predict).fit(target2, **STEPS[backend])
    assert len(compiles) > n
    same(reused, fresh)


def test_an_equal_optimizer_is_shared_and_another_is_not(compiles):
    Fitter.clear_compiled()
    target = predict(bx.Hopf(2, a=0.4, w=0.3, init_x=0.5))
    Fitter(hopf(0.1), optax.adam(0.05), predict=predict).fit(target, n_steps=2)
    n = len(compiles)
    Fitter(hopf(0.2), optax.adam(0.05), predict=predict).fit(target, n_steps=2)  # two calls of optax.adam
    assert len(compiles) == n
    fast = Fitter(hopf(0.2), optax.adam(0.1), predict=predict).fit(target, n_steps=2)
    assert len(compiles) > n
    Fitter.clear_compiled()
    same(fast, Fitter(hopf(0.2), optax.adam(0.1), predict=predict).fit(target, n_steps=2))


def network(weights, k=0.2):
    return Network(bx.Hopf(2, a=-0.02, w=0.3, init_x=jnp.array([0.5, -0.3])), weights, coupled_var="x",
                   k=bx.Param(k, fit=True, bounds=(0.0, 1.0)))  # fmt: skip


def test_other_numpy_connectome_values_of_the_same_shape_compile_their_own_program(compiles):
    # A Network keeps NumPy weights as constants of the compiled loss: a program compiled
    # for one connectome must not run another's.
    Fitter.clear_compiled()
    w1 = np.array([[0.0, 1.0], [0.2, 0.0]])
    w2 = np.array([[0.0, 0.3], [0.9, 0.0]])
    target = predict(network(w1, k=0.6))
    first = Fitter(network(w1), predict=predict).fit(target, n_steps=2)
    n = len(compiles)
    second = Fitter(network(w2), predict=predict).fit(target, n_steps=2)
    assert len(compiles) > n
    assert not np.array_equal(first.history, second.history)
    Fitter.clear_compiled()
    same(second, Fitter(network(w2), predict=predict).fit(target, n_steps=2))
    # Edited in place between two Fitters: seen too.
    n = len(compiles)
    w2[0, 1] = 0.5
    edited = Fitter(network(w2), predict=predict).fit(target, n_steps=2)
    assert len(compiles) > n
    Fitter.clear_compiled()
    same(edited, Fitter(network(w2.copy()), predict=predict).fit(target, n_steps=2))


def test_another_objective_or_shape_compiles_its_own_program(compiles):
    Fitter.clear_compiled()
    target = predict(bx.Hopf(2, a=0.4, w=0.3, init_x=0.5))
    Fitter(hopf(0.1), predict=predict).fit(target, n_steps=2)
    n = len(compiles)
    psd = Fitter(hopf(0.1), predict=predict, objective=objectives.psd_rmse(dt=0.1)).fit(target, n_steps=2)
    assert len(compiles) > n
    n = len(compiles)
    Fitter(hopf(0.1, n=3), predict=predict).fit(predict(bx.Hopf(3, a=0.4, w=0.3, init_x=0.5)), n_steps=2)
    assert len(compiles) > n
    Fitter.clear_compiled()
    same(psd, Fitter(hopf(0.1), predict=predict, objective=objectives.psd_rmse(dt=0.1)).fit(target, n_steps=2))


def scaled(factor):
    def predict_scaled(m):
        return factor * predict(m)

    return predict_scaled


GAIN = np.array([1.0, 2.0])


def predict_gain(m):
    return predict(m) * GAIN


def test_keys_compare_what_a_trace_reads_by_value():
    assert value_key(optax.adam(1e-2)) == value_key(optax.adam(1e-2))
    assert value_key(optax.adam(1e-2)) != value_key(optax.adam(2e-2))
    assert value_key(optax.adam(1e-2)) != value_key(optax.sgd(1e-2))
    assert value_key(optx.BFGS(rtol=1e-6, atol=1e-8)) == value_key(optx.BFGS(rtol=1e-6, atol=1e-8))
    assert value_key(optx.BFGS(rtol=1e-6, atol=1e-8)) != value_key(optx.BFGS(rtol=1e-5, atol=1e-8))
    assert value_key(objectives.fc_corr(as_loss=True)) == value_key(objectives.fc_corr(as_loss=True))
    assert value_key(objectives.fc_corr(as_loss=True)) != value_key(objectives.fc_corr(as_loss=True, target_is_fc=True))
    # Closed-over values: NumPy and JAX arrays by their bytes, numbers by value.
    assert value_key(scaled(2.0)) == value_key(scaled(2.0)) != value_key(scaled(3.0))
    assert value_key(scaled(np.ones(2))) != value_key(scaled(np.full(2, 2.0)))
    assert value_key(scaled(jnp.ones(2))) != value_key(scaled(jnp.full(2, 2.0)))
    assert value_key(0.0) != value_key(-0.0)
    # A global the function reads: rebound or edited in place, the key changes.
    global GAIN
    before = value_key(predict_gain)
    GAIN[1] = 3.0
    assert value_key(predict_gain) != before
    GAIN = np.array([1.0, 2.0])
    assert value_key(predict_gain) == before
    # What has no value to compare is not shared.
    assert value_key(scaled(np.array([object()]))) is None


def test_the_compat_environ_is_part_of_the_key(compat_env):
    # The facade's models read dt from brainstate.environ while tracing.
    from brainmass_eqx.compat import brainstate as bs, brainunit as u

    before = value_key(predict)
    with bs.environ.context(dt=0.05 * u.ms):
        assert value_key(predict) != before
    assert value_key(predict) == before


class _Config:
    gain = 1.0


CFG = _Config()


def predict_from_config(m):
    return CFG.gain * bx.simulate(m, 5.0, dt=0.1)["x"]


def test_a_config_attribute_set_between_fitters_compiles_again(compiles):
    # The natural script: one config object, an attribute set before each fit. Keyed by
    # identity, the second Fitter reran the first's program, with the first's gain.
    Fitter.clear_compiled()
    target = predict(bx.Hopf(2, a=0.4, w=0.3, init_x=0.5))
    try:
        CFG.gain = 1.0
        first = Fitter(hopf(0.1), predict=predict_from_config).fit(target, n_steps=2)
        n = len(compiles)
        CFG.gain = 2.0
        second = Fitter(hopf(0.1), predict=predict_from_config).fit(target, n_steps=2)
        assert len(compiles) > n
        assert second.history[0] != first.history[0]
        Fitter.clear_compiled()
        same(second, Fitter(hopf(0.1), predict=predict_from_config).fit(target, n_steps=2))
    finally:
        CFG.gain = 1.0
