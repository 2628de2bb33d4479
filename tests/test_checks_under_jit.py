"""Construction checks of concrete values inside ``jax.jit``.

Under jit even ``jnp.asarray`` of a NumPy constant (or of a Python float) is a tracer, so a
check that converted its value first and then asked whether it was traced was skipped for
constants: each test below ran without a word before (the bad value closed over, as a user
writes ``jax.jit(lambda: ...)``). A value that is truly traced is checked when it is read.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx as bx
from brainmass_eqx import observation as obs

NODE = bx.Hopf(2)


def _run(model, **kw):
    return bx.simulate(model, 1.0, dt=0.1, key=jax.random.key(0), **kw).ys


# -- Param: a transform's inverse of a constant was traced --------------------------------


def test_a_param_with_bounds_keeps_the_models_checks_under_jit():
    tau = np.array([-1.0, 1.0])
    with pytest.raises(ValueError, match="'tau_E' must be positive"):
        jax.jit(lambda: _run(bx.WilsonCowan(2, tau_E=bx.Param(tau, bounds=(-2.0, 2.0)))))()
    # Bounds that let a fit take a time constant below 0: also for a traced value, whose
    # bounds are known all the same.
    with pytest.raises(ValueError, match="Param bounds"):
        jax.jit(lambda: _run(bx.WilsonCowan(2, tau_E=bx.Param(1.0, bounds=(-2.0, 2.0)))))()
    with pytest.raises(ValueError, match="Param bounds"):
        jax.jit(lambda t: bx.WilsonCowan(2, tau_E=bx.Param(t, bounds=(-2.0, 2.0))).tau_E.raw)(1.0)


def test_a_constant_speed_param_under_jit_is_not_taken_for_a_traced_one():
    # It was refused ("max_delay: 'speed' is traced ... give max_delay"); now the run equals
    # the eager one.
    def build():
        speed = bx.Param(np.array(2.0), bounds=(0.5, 5.0))
        return bx.Network(NODE, np.ones((2, 2)), distance=np.full((2, 2), 3.0), speed=speed)

    eager, jitted = _run(build()), jax.jit(lambda: _run(build()))()
    np.testing.assert_allclose(jitted["x"], eager["x"], rtol=1e-6, atol=1e-7)


# -- simulate: y0 and inputs were converted with jnp before their check --------------------


@pytest.mark.parametrize("given", ["y0", "inputs"])
def test_a_nan_in_a_constant_y0_or_input_is_refused_under_jit(given):
    bad = np.array([np.nan, 0.0])
    kw = {"y0": {"x": bad, "y": np.zeros(2)}} if given == "y0" else {"inputs": {"x": bad}}
    # check_finite=False: the NaN run was returned without a word (with the check, it was
    # reported as a divergence of the model).
    with pytest.raises(ValueError, match=rf"{given}\['x'\] holds NaN or inf"):
        jax.jit(lambda: _run(NODE, check_finite=False, **kw))()


# -- observation models: every parameter went through jnp.asarray first ---------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: obs.BalloonWindkessel(tau=-1.0), "`tau` must be > 0"),
        (lambda: obs.BalloonWindkessel(gamma=np.nan), "`gamma` must be finite"),
        (lambda: obs.GammaHRF(tau=-1.0), "`tau` must be > 0"),
        (lambda: obs.LeadFieldModel(np.array([[np.nan, 1.0], [0.0, 1.0]])), "`L` must be finite"),
        (lambda: obs.LeadFieldModel(np.eye(2), noise_cov=np.array([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
    ],
)
def test_observation_parameters_are_checked_under_jit(build, match):
    with pytest.raises(ValueError, match=match):
        jax.jit(lambda: jax.tree_util.tree_leaves(build()))()


def test_a_traced_observation_parameter_is_checked_when_read():
    tau = jax.jit(lambda t: obs.BalloonWindkessel(tau=t).tau)
    assert float(tau(2.0)) == 2.0
    with pytest.raises(Exception, match="`tau` must be finite and > 0; it was traced"):
        jax.block_until_ready(tau(jnp.asarray(-1.0)))
