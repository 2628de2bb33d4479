"""Run-time checks of traced values (`eqx.error_if`) and diverging runs inside transforms:
a Fitter's loss, ``jax.vmap`` under ``EQX_ON_ERROR=nan``, and where the checks sit in the
step loop."""

import json
import os
import subprocess
import sys
import textwrap

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _jax_versions import enable_x64

import brainmass_eqx as bx
from brainmass_eqx._checks import all_finite
from brainmass_eqx.fit import Fitter, NonFiniteLossError

# A Hopf node at dt = 1 ms: its step map stays finite for a <= 30 and overflows to NaN/inf
# within 20 ms for a >= 35.
STABLE_A, DIVERGING_A = 0.5, 50.0


def predict(model):
    # simulate's default check_finite=True: a diverging run is reported.
    return bx.simulate(model, 20.0, dt=1.0)["x"]


TARGET = predict(bx.Hopf(1, a=STABLE_A, w=0.3, init_x=0.5))


def test_a_diverging_run_in_a_gradient_fit_names_the_step_and_parameters():
    # Gradient ascent from a = 30 steps a past 35 at once. simulate's divergence check
    # raised EquinoxRuntimeError from the compiled step: no step, no parameters, no result
    # so far, as if check_finite=False were required in every predict.
    model = bx.Hopf(1, a=bx.Param(30.0), w=0.3, init_x=0.5)
    with pytest.raises(NonFiniteLossError, match=r"non-finite \(nan\) at step 1, evaluated at a=") as info:
        Fitter(model, optax.sgd(-1.0), predict=predict).fit(TARGET, n_steps=5)
    assert info.value.step == 1 and float(info.value.params["a"]) > 35.0
    assert info.value.result is not None and info.value.result.best_step == 0


def test_a_diverging_candidate_does_not_end_a_nevergrad_fit():
    # Candidates over a in (0, 70) at dt = 1 ms: those above ~35 diverge. Any one of them
    # ended the fit with a RuntimeError asking for check_finite=False in predict.
    model = bx.Hopf(1, a=bx.Param(30.0, bounds=(0.0, 70.0)), w=0.3, init_x=0.5)
    result = Fitter(model, "DE", backend="nevergrad", predict=predict).fit(
        TARGET, n_steps=3, popsize=8, key=jax.random.key(0)
    )
    losses = result.raw["losses"]
    assert (~np.isfinite(losses)).any() and np.isfinite(losses).any()  # diverging ones, and the search went on
    assert np.isfinite(result.best_loss) and result.best_loss == np.nanmin(np.where(np.isfinite(losses), losses, np.nan))
    assert float(result.best_params["a"]) < 35.0


def test_an_adaptive_solve_stopped_under_jit_names_the_model_and_the_divergence():
    # The traced check gave diffrax's "The maximum number of solver steps was reached. Try
    # increasing `max_steps`" alone, for a model that blows up (the eager one names it).
    unstable = bx.Linear(2, gamma=5.0, init_x=jnp.array([1.0, 0.0]))
    run = jax.jit(lambda g: bx.simulate(bx.Linear(2, gamma=g, init_x=jnp.array([1.0, 0.0])), 40.0, dt=0.1,
                                        solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-7))["x"])
    with pytest.raises(Exception, match=r"Linear: the solve stopped before t = 40 ms .*the model diverges"):
        jax.block_until_ready(run(unstable.gamma))


def test_fixed_step_delay_reads_are_checked_once_not_in_every_step():
    # The lags of a fixed-step run are the same at every step: their capacity check sat in
    # the step (two host callbacks per delay, 8 in each step of WilsonCowanDelayed's loop).
    model = bx.models.WilsonCowanDelayed(2, max_delay=3.0)
    solver = model.wrap_solver(dfx.Euler(), dt=0.1)
    terms = dfx.ODETerm(lambda t, y, args: y)
    y0 = model.init_state()
    state = solver.init(terms, 0.0, 0.1, y0, None)
    step = jax.make_jaxpr(lambda s: solver.step(terms, 0.0, 0.1, y0, None, s, False))(state)
    assert "pure_callback" not in str(step)
    init = jax.make_jaxpr(
        lambda d: eqx.tree_at(lambda s: s.delays["delay_EE"], solver, d).init(terms, 0.0, 0.1, y0, None)
    )(jnp.asarray(2.0))
    assert "pure_callback" in str(init)  # the check moved to the run's start, not away
    # And it still refuses a traced delay longer than the history.
    run = jax.jit(lambda d: bx.simulate(bx.models.WilsonCowanDelayed(2, delay_EE=d, max_delay=2.0), 2.0, dt=0.1)["rE"])
    with pytest.raises(Exception, match=r"WilsonCowanDelayed: a delay \(delay_EE\) is longer than the history"):
        jax.block_until_ready(run(jnp.asarray(5.0)))
    np.testing.assert_allclose(
        run(jnp.asarray(1.5)), bx.simulate(bx.models.WilsonCowanDelayed(2, delay_EE=1.5, max_delay=2.0), 2.0, dt=0.1)["rE"],
        rtol=1e-6,
    )


_NAN_MODE = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    import brainmass_eqx as bx
    tau = jax.vmap(lambda t: bx.simulate(bx.models.WilsonCowan(2, tau_E=t), 2.0, dt=0.1)["rE"][-1, 0])
    a = jax.vmap(lambda a: bx.simulate(bx.Hopf(1, a=a, w=0.3, init_x=0.5), 20.0, dt=1.0)["x"][-1, 0])
    print(json.dumps([np.asarray(tau(jnp.array([1.0, -1.0, 1.0]))).tolist(), np.asarray(a(jnp.array([0.5, 50.0, 0.5]))).tolist()]))
    """
)


def test_eqx_on_error_nan_makes_the_bad_member_alone_nan_under_vmap():
    # equinox reduces the predicate over the batch: with EQX_ON_ERROR=nan one member with a
    # negative tau_E (or one diverging run) made every member of the vmap NaN.
    env = dict(os.environ, EQX_ON_ERROR="nan")
    out = subprocess.run([sys.executable, "-c", _NAN_MODE], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    tau, a = (np.asarray(v, dtype=float) for v in json.loads(out.stdout.strip().splitlines()[-1]))
    assert np.isfinite(tau[[0, 2]]).all() and np.isnan(tau[1]), tau
    assert np.isfinite(a[[0, 2]]).all() and np.isnan(a[1]), a


@pytest.mark.parametrize("rows", [(1000, 1), (50, 20)], ids=["narrow", "rows-summed"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.complex64])
def test_all_finite_finds_every_kind_of_non_finite_value_under_jit_and_vmap(dtype, rows):
    values = jnp.asarray(np.linspace(-3e4, 3e4, 4 * 1000).reshape((4,) + rows), dtype)
    values = values.at[0, 0, 0].set(jnp.finfo(dtype).max)  # x - x is 0 at the largest values too
    bad = [jnp.nan, jnp.inf, -jnp.inf] + ([complex(0, jnp.inf), complex(jnp.nan, 0)] if dtype == jnp.complex64 else [])
    check = jax.jit(jax.vmap(all_finite))
    assert check(values).tolist() == [True] * 4
    for value in bad:
        marked = values.at[1, 37, -1].set(value).at[3, 5, 0].set(value)
        assert check(marked).tolist() == [True, False, True, False], value
        # A tree: one non-finite leaf among finite ones; integers and empty arrays count as finite.
        tree = {"a": values, "b": marked, "i": jnp.zeros((4, 3), jnp.int32), "e": jnp.zeros((4, 0), dtype)}
        assert check(tree).tolist() == [True, False, True, False], value
    assert bool(all_finite({"i": jnp.arange(3)})) and bool(all_finite({}))


def test_the_divergence_check_of_a_jitted_run_does_not_copy_its_recording():
    # The check reached the recording through a select over all of it: a jitted run
    # recording 6.4 MB held 12.8 MB of temporaries for it (0.27 MB without the check).
    # Then jnp.all(jnp.isfinite(...)) held a byte per recorded value (160 kB here).
    def run(a, check):
        return bx.simulate(bx.Hopf(80, a=a, w=0.3, init_x=0.2), 200.0, dt=0.1, monitors="x", check_finite=check)["x"]

    sizes = {}
    for check in (True, False):
        memory = jax.jit(lambda a, check=check: run(a, check)).lower(jnp.float32(0.1)).compile().memory_analysis()
        if memory is None:
            pytest.skip("this backend gives no memory figures")
        sizes[check] = (memory.temp_size_in_bytes, memory.output_size_in_bytes)
    (temp_checked, out), (temp_plain, _) = sizes[True], sizes[False]
    assert out == 2000 * 80 * 4
    assert temp_checked - temp_plain < out / 32, sizes
    # And it still raises, naming the model.
    with pytest.raises(Exception, match="Hopf diverged"):
        jax.block_until_ready(jax.jit(lambda a: bx.simulate(bx.Hopf(1, a=a, w=0.3, init_x=0.5), 20.0, dt=1.0)["x"])(50.0))


# Linear with gamma = 5 at dt = 0.1 ms, sampled every ms: samples 0-17 finite (huge), inf
# from sample 18 of 40; gamma = -1 relaxes.
_GROWING = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import brainmass_eqx as bx
    def run(g):
        return bx.simulate(bx.Linear(2, gamma=g, init_x=jnp.array([1.0, 0.0])), 40.0, dt=0.1, sample_every=10)["x"]
    gammas = jnp.array([-1.0, 5.0, -1.0, -1.0])
    out = {"vmap": np.asarray(jax.jit(jax.vmap(run))(gammas[:3])), "ensemble": np.asarray(bx.ensemble(run, gammas, threads=1))}
    print(json.dumps({k: [[int(np.isnan(m).sum()), int(np.isfinite(m).sum())] for m in v] for k, v in out.items()}))
    """
)


def _run_growing(mode, stdin=None):
    env = dict(os.environ, EQX_ON_ERROR=mode)
    out = subprocess.run([sys.executable, "-c", _GROWING], env=env, input=stdin, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-2000:])
    last = out.stdout.strip().splitlines()[-1]
    return json.loads(last[last.index("{"):]), out.stdout  # after the debugger's prompt, if any


def test_eqx_on_error_nan_makes_a_diverged_members_whole_recording_nan():
    # Only the first sample of the diverged member was marked: its 34 finite values before
    # the divergence (and its inf after it) came back as if it had run, beside the members
    # that did.
    counts, _ = _run_growing("nan")
    assert counts["vmap"] == [[0, 80], [80, 0], [0, 80]], counts
    assert counts["ensemble"] == [[0, 80], [80, 0], [0, 80], [0, 80]], counts


def test_eqx_on_error_breakpoint_works_under_vmap():
    # The debugger captured the check's batched locals: every vmapped simulate failed to
    # trace (NotImplementedError: pure_callback's vmap_method), diverging or not; and
    # ensemble's memory check failed on eqx.filter_jit(...).lower, which equinox's jit
    # replacement in this mode lacks. Continued ("c"), the diverged member is NaN alone.
    counts, stdout = _run_growing("breakpoint", stdin="c\n" * 8)
    assert "Linear diverged" in stdout
    assert counts["vmap"] == [[0, 80], [80, 0], [0, 80]], counts
    assert counts["ensemble"] == [[0, 80], [80, 0], [0, 80], [0, 80]], counts


@pytest.mark.parametrize("wrap", [jax.jit, eqx.filter_jit], ids=["jax.jit", "eqx.filter_jit"])
def test_a_predict_jitted_by_the_user_is_traced_apart_inside_and_outside_a_fit(wrap):
    # JAX reused the first trace of a user-jitted predict. Run before the fit, it kept
    # simulate's divergence check, and the diverging step ended the fit with a bare
    # EquinoxRuntimeError (no step, no parameters, no result). Traced first by the fit, it
    # kept no check afterwards: predict of a diverging model returned NaN without a word.
    jitted = wrap(predict)
    model = bx.Hopf(1, a=bx.Param(30.0), w=0.3, init_x=0.5)
    jitted(bx.Hopf(1, a=STABLE_A, w=0.3, init_x=0.5))  # traced outside the fit first
    with pytest.raises(NonFiniteLossError, match=r"non-finite \(nan\) at step 1"):
        Fitter(model, optax.sgd(-1.0), predict=jitted).fit(TARGET, n_steps=3)
    fresh = wrap(predict)
    with pytest.raises(NonFiniteLossError, match=r"non-finite \(nan\) at step 1"):
        Fitter(model, optax.sgd(-1.0), predict=fresh).fit(TARGET, n_steps=3)  # traced inside the fit first
    with pytest.raises(Exception, match="Hopf diverged"):
        jax.block_until_ready(fresh(bx.Hopf(1, a=DIVERGING_A, w=0.3, init_x=0.5)))


def test_a_fixed_step_saveat_gradient_does_not_depend_on_max_steps():
    # diffrax's checkpointed recompute of constant steps, save times on the step grid, with
    # its default checkpoints (from max_steps) gave gradients 2.3% (max_steps = 200 steps),
    # 0.46% (400) and 0.97% (default) off forward mode.
    n, dt = 200, 0.1
    with enable_x64():
        saveat = jnp.arange(1, n + 1) * dt

        def loss(a, max_steps=None, adjoint=None):
            model = bx.Hopf(2, a=a, w=0.3, init_x=jnp.array([0.5, 0.2]))
            run = bx.simulate(model, n * dt, dt=dt, saveat=saveat, solver=dfx.Heun(), max_steps=max_steps, adjoint=adjoint)
            return jnp.sum(run["x"] ** 2)

        exact = float(jax.jacfwd(lambda a: loss(a, adjoint=dfx.ForwardMode()))(jnp.float64(0.3)))
        # (max_steps = 2 * n, 0.46% off, took the same path as n at the cost of a compilation.)
        for max_steps in (n, None):
            np.testing.assert_allclose(float(jax.grad(loss)(jnp.float64(0.3), max_steps)), exact, rtol=1e-9, err_msg=str(max_steps))
        # The user's own checkpoints too: with a checkpoint per step forced by simulate,
        # RecursiveCheckpointAdjoint(checkpoints=5) given by hand was 2.1% off.
        adjoint = dfx.RecursiveCheckpointAdjoint(checkpoints=5)
        np.testing.assert_allclose(float(jax.grad(loss)(jnp.float64(0.3), None, adjoint)), exact, rtol=1e-9)


def test_a_fixed_step_saveat_gradient_does_not_keep_every_steps_history():
    # A checkpoint per step (the fix for the gradient above) kept every step's state, a
    # delayed network's history with it: the reverse pass of 80 regions over 20,000 steps
    # held 8.0 GB (0.32 GB before). Four times the steps (10 saves either way) then took four
    # times the memory (5.6 -> 22.4 MB here); stepping with diffrax's StepTo it is about x2.
    rng = np.random.default_rng(0)
    conn = rng.uniform(0.0, 0.2, (6, 6))
    np.fill_diagonal(conn, 0.0)
    dist = rng.uniform(5.0, 30.0, (6, 6))

    def temporaries(duration):
        def loss(k):
            net = bx.Network(bx.Hopf(6, a=0.2, w=0.3, init_x=0.3), conn, distance=dist, speed=10.0, k=k)
            saveat = np.linspace(duration / 10, duration, 10)
            return jnp.sum(bx.simulate(net, duration, dt=0.1, saveat=saveat, monitors="x")["x"] ** 2)

        memory = jax.jit(jax.grad(loss)).lower(0.3).compile().memory_analysis()
        if memory is None:
            pytest.skip("this backend gives no memory figures")
        return memory.temp_size_in_bytes

    short, long = temporaries(100.0), temporaries(400.0)
    assert long < 3 * short, (short, long)
