"""Time-dependent inputs: when each solver's stages read them, on the step grid and in a
diffrax solve (``saveat``, adaptive steps), in continued runs, and the errors that name
the fix (a path or a per-step array shorter than the run)."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx as bx
from brainmass_eqx._wrapping import AbstractSolverWrapper
from brainmass_eqx.solvers import RK4

GAMMA, DT, N_STEPS = -0.5, 0.1, 200
# A pulse, then a step up: the input jumps at four step boundaries.
PULSE = np.zeros((N_STEPS, 1))
PULSE[50:60] = 3.0
PULSE[100:] = 1.0


def _linear():
    return bx.Linear(n_regions=1, gamma=GAMMA)


def _held_reference(solver):
    """Step ``i`` taken by ``solver`` alone with ``PULSE[i]`` held over all its stages (a
    fresh first stage each step): what "value i is held during step i" means."""
    term = dfx.ODETerm(lambda t, y, u: GAMMA * y + u)

    def step(y, x):
        i, u = x
        t0, t1 = i * DT, (i + 1) * DT
        y = solver.step(term, t0, t1, y, u, solver.init(term, t0, t1, y, u), True)[0]
        return y, y

    steps = (jnp.arange(N_STEPS, dtype=float), jnp.asarray(PULSE))
    return np.asarray(jax.lax.scan(step, jnp.zeros(1), steps)[1])


@pytest.mark.parametrize("solver", [dfx.Heun(), RK4(), dfx.Tsit5()], ids=["heun", "rk4", "tsit5"])
def test_per_step_inputs_are_held_over_every_stage(solver, x64):
    # Before: in a diffrax solve (saveat) the stage at a step's end read the next step's
    # value (Heun 0.15, RK4 0.014, Tsit5 0.70 off), and on the step grid a first-same-as-
    # last solver (Tsit5) reused a first stage that had seen the previous step's (0.028).
    ref = _held_reference(solver)
    y0, inputs = {"x": jnp.zeros(1)}, {"x": PULSE}
    grid = bx.simulate(_linear(), N_STEPS * DT, dt=DT, solver=solver, y0=y0, inputs=inputs)
    saved = bx.simulate(_linear(), N_STEPS * DT, dt=DT, solver=solver, y0=y0, inputs=inputs,
                        saveat=np.arange(1, N_STEPS + 1) * DT)
    np.testing.assert_allclose(np.asarray(grid.ys["x"]), ref, atol=1e-10)
    np.testing.assert_allclose(np.asarray(saved.ys["x"]), ref, atol=1e-10)


def _in_pieces(monkeypatch, steps):
    """Solve ``saveat`` and adaptive runs in pieces of ``steps`` (as a float32 run longer
    than 8192 ms is), each over its local time from 0 (`simulate`'s ``_piece_steps``)."""
    from brainmass_eqx import _simulate

    monkeypatch.setattr(_simulate, "_piece_steps", lambda n_steps, dt_ms: steps if n_steps > steps else None)


@pytest.fixture
def pieces_of_ten_steps(monkeypatch):
    _in_pieces(monkeypatch, 10)


@pytest.mark.parametrize("solver", [dfx.Heun(), dfx.Tsit5()], ids=["heun", "tsit5"])
def test_per_step_inputs_are_held_in_a_run_in_pieces(solver, x64, pieces_of_ten_steps):
    # Each piece reads a step's input by the step counted from its first, held over the
    # step's stages, with a fresh first stage for Tsit5, as the run in one piece does.
    saved = bx.simulate(_linear(), N_STEPS * DT, dt=DT, solver=solver, y0={"x": jnp.zeros(1)}, inputs={"x": PULSE},
                        saveat=np.arange(1, N_STEPS + 1) * DT)
    np.testing.assert_allclose(np.asarray(saved.ys["x"]), _held_reference(solver), atol=1e-10)


def test_per_step_inputs_held_in_a_delayed_network_with_saveat(x64):
    # The same through a Network's solver wrapper (its history, the held coupling).
    conn = np.array([[0.0, 1.0], [0.5, 0.0]])
    net = bx.Network(bx.Linear(n_regions=2, gamma=GAMMA), conn, delays=np.array([[0.0, 1.0], [2.0, 0.0]]), k=0.3)
    u = np.zeros((N_STEPS, 2))
    u[50:80, 0] = 2.0
    kwargs = dict(dt=DT, solver=dfx.Heun(), y0={"x": jnp.zeros(2)}, inputs={"x": u})
    grid = bx.simulate(net, N_STEPS * DT, **kwargs)
    saved = bx.simulate(net, N_STEPS * DT, saveat=np.arange(1, N_STEPS + 1) * DT, **kwargs)
    # Before: 0.1 apart.
    np.testing.assert_allclose(np.asarray(saved.ys["x"]), np.asarray(grid.ys["x"]), atol=1e-12)


ON, OFF, AMPLITUDE = 50.0, 51.0, 10.0


def _pulse(t):
    return {"x": jnp.where((t >= ON) & (t < OFF), AMPLITUDE, 0.0) * jnp.ones(1)}


def _exact(t):
    """The linear node's response to the 1 ms pulse, from rest."""
    peak = AMPLITUDE / -GAMMA * (1 - np.exp(GAMMA * (OFF - ON)))
    return np.where(t < OFF, AMPLITUDE / -GAMMA * (1 - np.exp(GAMMA * (t - ON))), peak * np.exp(GAMMA * (t - OFF)))


def test_continued_adaptive_run_reads_jump_ts_in_the_continued_time(x64):
    # Adaptive steps see a pulse only through jump_ts (documented); a continued run solves
    # from 0, and took the user's jump_ts (in the continued time, like saveat) unshifted:
    # the pulse at 50 ms was stepped over (0 where 7.87 was due).
    pid = dfx.PIDController(rtol=1e-6, atol=1e-8)
    y0 = {"x": jnp.zeros(1)}
    first = bx.simulate(_linear(), 40.0, dt=DT, solver=dfx.Tsit5(), y0=y0, inputs=_pulse, stepsize_controller=pid)
    ts = np.array([50.5, 51.0, 55.0])
    clip = dfx.ClipStepSizeController(pid, jump_ts=jnp.array([ON, OFF]))
    later = bx.simulate(_linear(), 60.0, dt=DT, solver=dfx.Tsit5(), y0=first, inputs=_pulse,
                        stepsize_controller=clip, saveat=ts)
    np.testing.assert_allclose(np.asarray(later.ys["x"])[:, 0], _exact(ts), rtol=1e-5)


def test_jump_ts_in_a_run_in_pieces_are_read_in_each_piece_s_time(x64, monkeypatch):
    # Each piece solves from its local 0: the user's jump_ts (in the run's time) are
    # shifted by the piece's start, else the pulse at 50 ms (20 ms into the second piece of
    # 30 ms) is stepped over.
    _in_pieces(monkeypatch, 300)
    clip = dfx.ClipStepSizeController(dfx.PIDController(rtol=1e-6, atol=1e-8), jump_ts=jnp.array([ON, OFF]))
    ts = np.array([50.5, 51.0, 55.0])
    traj = bx.simulate(_linear(), 60.0, dt=DT, solver=dfx.Tsit5(), y0={"x": jnp.zeros(1)}, inputs=_pulse,
                       stepsize_controller=clip, saveat=ts)
    np.testing.assert_allclose(np.asarray(traj.ys["x"])[:, 0], _exact(ts), rtol=1e-5)


def test_a_path_must_cover_the_run():
    # diffrax extrapolates a path past its ends: a ramp over 0-20 ms went on rising to 8
    # at 40 ms (the run integrated 159.6 where holding the end would give 120).
    ramp = dfx.LinearInterpolation(ts=jnp.linspace(0.0, 20.0, 5), ys={"x": jnp.linspace(0.0, 4.0, 5)[:, None]})
    with pytest.raises(ValueError, match=r"path covers t = \[0, 20\] ms and the run \[0, 40\] ms; diffrax extrapolates"):
        bx.simulate(_linear(), 40.0, dt=DT, y0={"x": jnp.zeros(1)}, inputs=ramp)
    # A continued run's path is read in the continued time.
    first = bx.simulate(_linear(), 10.0, dt=DT, y0={"x": jnp.zeros(1)}, inputs=ramp)
    with pytest.raises(ValueError, match=r"the run \[10, 30\] ms \(this run continues one that ended at 10 ms\)"):
        bx.simulate(_linear(), 20.0, dt=DT, y0=first, inputs=ramp)
    bx.simulate(_linear(), 10.0, dt=DT, y0=first, inputs=ramp)  # 10-20 ms: covered


def test_a_per_step_array_of_another_length_names_the_fix():
    with pytest.raises(ValueError, match=r"Its 300 values are one per step of a shorter run: give one per step "
                       r"of this run's 400 \(duration / dt\), e.g. np.pad\(value, \(\(0, extra\), \(0, 0\)\)\) with "
                       r"extra = 100 for zero input after it, or run for 300 steps\."):
        bx.simulate(_linear(), 40.0, dt=DT, y0={"x": jnp.zeros(1)}, inputs={"x": np.zeros((300, 1))})


def test_gradient_and_vmap_over_a_stimulus(x64):
    # A smooth (Gaussian) pulse: d/d amplitude and d/d onset of the response at 20 ms
    # agree with central differences, and a vmap over both equals a loop.
    def response(amplitude, onset):
        inputs = lambda t: {"x": amplitude * jnp.exp(-0.5 * ((t - onset) / 2.0) ** 2) * jnp.ones(1)}  # noqa: E731
        traj = bx.simulate(_linear(), 30.0, dt=DT, solver=RK4(), y0={"x": jnp.zeros(1)}, inputs=inputs)
        return traj.ys["x"][199, 0]  # t = 20 ms

    fn = jax.jit(response)
    grads = jax.grad(fn, argnums=(0, 1))(2.0, 15.0)
    h = 1e-4
    fd = ((fn(2.0 + h, 15.0) - fn(2.0 - h, 15.0)) / (2 * h), (fn(2.0, 15.0 + h) - fn(2.0, 15.0 - h)) / (2 * h))
    np.testing.assert_allclose(np.array(grads), np.array(fd), rtol=1e-6)
    assert abs(float(grads[1])) > 0.1  # the onset matters at 20 ms
    amplitudes, onsets = jnp.array([1.0, 2.0]), jnp.array([12.0, 15.0])
    batched = jax.vmap(fn)(amplitudes, onsets)
    np.testing.assert_allclose(np.asarray(batched), [float(fn(a, o)) for a, o in zip(amplitudes, onsets)], rtol=1e-12)



class _FreshFirstStage(AbstractSolverWrapper):
    """``solver`` told at every step that its input jumped: its first stage is evaluated
    anew, never reused from the step before."""

    solver: dfx.AbstractSolver

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        return self.solver.step(terms, t0, t1, y0, args, solver_state, True)


def test_fsal_solver_in_a_delayed_network_holds_each_steps_coupling(x64):
    # The held coupling of a delayed Network changes every step, as a per-step input does:
    # Tsit5's reused first stage had seen the previous step's (2.2e-3 off at an amplitude
    # of 0.84).
    conn = np.array([[0, 1.0, 0.5], [0.2, 0, 1.0], [1.0, 0.3, 0]])
    delays = np.array([[0, 2.0, 3.0], [1.0, 0, 0.5], [4.0, 1.5, 0]])
    net = bx.Network(bx.Hopf(n_regions=3, a=-0.05, w=0.0628), conn, delays=delays, k=0.5)
    y0 = {"x": jnp.array([1.0, 0.0, 0.0]), "y": jnp.zeros(3)}
    plain = bx.simulate(net, 50.0, dt=DT, solver=dfx.Tsit5(), y0=y0)
    fresh = bx.simulate(net, 50.0, dt=DT, solver=_FreshFirstStage(dfx.Tsit5()), y0=y0)
    np.testing.assert_allclose(np.asarray(plain.ys["x"]), np.asarray(fresh.ys["x"]), atol=1e-12)


def test_fsal_solver_in_a_model_with_its_own_delays_holds_each_steps_delayed_values(x64):
    # WilsonCowanDelayed reads its delayed states once per step and holds them over the
    # step (SelfDelaySolver), a per-step input to the inner solver as a Network's coupling is.
    model = bx.WilsonCowanDelayed(n_regions=2)
    y0 = {"rE": jnp.array([0.3, 0.1]), "rI": jnp.array([0.05, 0.2])}
    plain = bx.simulate(model, 50.0, dt=DT, solver=dfx.Tsit5(), y0=y0)
    fresh = bx.simulate(model, 50.0, dt=DT, solver=_FreshFirstStage(dfx.Tsit5()), y0=y0)
    np.testing.assert_allclose(np.asarray(plain.ys["rE"]), np.asarray(fresh.ys["rE"]), atol=1e-12)


PID = dfx.PIDController(rtol=1e-8, atol=1e-10)
PULSE_TS = np.array([50.5, 51.0, 55.0, 60.0])


def _per_step_pulse(n_steps, on_step, amplitude=AMPLITUDE):
    """The 1 ms pulse of `_exact` as one value per step, from step ``on_step``."""
    return jnp.zeros((n_steps, 1)).at[on_step : on_step + round((OFF - ON) / DT)].set(amplitude)


@pytest.mark.parametrize("case", ["pid", "user clip", "pieces", "pieces from the onset", "continued"])
def test_adaptive_steps_are_clipped_where_a_per_step_input_changes(case, x64, monkeypatch):
    # Before: the PID controller grew its step over the rest before the pulse and stepped
    # over it (0 where 7.87 was due); clipped at the pulse's edges by the user, the stage
    # at the end of the step just before each edge read the next step's value (7.8e-4 off).
    # Now simulate clips at the array's changes (merged with the user's jump_ts; in pieces
    # in each piece's time, also where a piece starts at the onset) and holds each value.
    y0, duration, on_step, controller = {"x": jnp.zeros(1)}, 60.0, 500, PID
    if case == "user clip":
        controller = dfx.ClipStepSizeController(PID, jump_ts=jnp.array([ON, OFF]))
    elif case == "pieces":
        _in_pieces(monkeypatch, 300)  # the pulse 20 ms into the second piece
    elif case == "pieces from the onset":
        _in_pieces(monkeypatch, 250)  # the third piece starts with the pulse
    elif case == "continued":
        y0, duration, on_step = bx.simulate(_linear(), 20.0, dt=DT, y0=y0), 40.0, 300  # per-step: this run's steps
    traj = bx.simulate(_linear(), duration, dt=DT, solver=dfx.Tsit5(), y0=y0, inputs={"x": _per_step_pulse(round(duration / DT), on_step)},
                       stepsize_controller=controller, saveat=PULSE_TS)
    np.testing.assert_allclose(np.asarray(traj.ys["x"])[:, 0], _exact(PULSE_TS), rtol=1e-6)


def test_adaptive_per_step_pulse_traced_under_jit_vmap_and_grad(x64):
    # A traced array's changes are not known on the host: the controller is clipped at
    # every step where its value changes, found on the device. The response is linear in
    # the amplitude: its derivative is the response to a unit pulse.
    def response(amplitude):
        traj = bx.simulate(_linear(), 60.0, dt=DT, solver=dfx.Tsit5(), y0={"x": jnp.zeros(1)},
                           inputs={"x": _per_step_pulse(600, 500, amplitude)}, stepsize_controller=PID, saveat=PULSE_TS)
        return traj.ys["x"][1, 0], traj.ys["x"][:, 0]  # at OFF, and all

    h = 1e-3
    amplitudes = jnp.array([AMPLITUDE - h, AMPLITUDE, AMPLITUDE + h, 2.0])
    (at_off, ys), grads = jax.jit(jax.vmap(jax.value_and_grad(response, has_aux=True)))(amplitudes)
    exact = _exact(PULSE_TS)
    np.testing.assert_allclose(np.asarray(ys), np.asarray(amplitudes)[:, None] / AMPLITUDE * exact, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grads), exact[1] / AMPLITUDE, rtol=1e-6)
    np.testing.assert_allclose(float(grads[1]), float((at_off[2] - at_off[0]) / (2 * h)), rtol=1e-6)


def _largest_array_in_a_loop(jaxpr, in_loop=False):
    """The most elements of any array made by an operation inside a while loop of ``jaxpr``
    (diffrax's step loop), looking into every nested jaxpr."""
    largest = 0
    for eqn in jaxpr.eqns:
        if in_loop:
            largest = max([largest, *(int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape"))])
        for name, param in eqn.params.items():
            for sub in param if isinstance(param, (tuple, list)) else [param]:
                sub = getattr(sub, "jaxpr", sub)
                if isinstance(sub, jax.extend.core.Jaxpr):
                    inner = in_loop or (eqn.primitive.name == "while" and name == "body_jaxpr")
                    largest = max(largest, _largest_array_in_a_loop(sub, inner))
    return largest


def test_a_traced_per_step_array_costs_an_adaptive_step_the_same_however_long_the_run():
    # Before: clipped at each of the step boundaries where a traced array may change,
    # diffrax compared each step's start with all of them (an array as long as the run,
    # made at every step: 10 s at dt 0.1 ms in float64 took 2.3 s against 30 ms with the
    # array known, and simulate warned above 16,384 steps). Now each look-up is a binary
    # search: nothing in the step loop is as long as the run. Tracing is enough to see it.
    n = 20_000

    def run(amplitude):
        return bx.simulate(_linear(), n * DT, dt=DT, solver=dfx.Tsit5(), y0={"x": jnp.zeros(1)},
                           inputs={"x": _per_step_pulse(n, 500, amplitude)}, stepsize_controller=PID,
                           saveat=np.array([1.0])).ys["x"]

    assert _largest_array_in_a_loop(jax.make_jaxpr(run)(1.0).jaxpr) < 100


@pytest.mark.parametrize("user_jumps", [None, [2.0, 4.4]], ids=["pid", "around the user's clip"])
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
def test_clipped_at_changes_as_diffrax_clips_at_jump_ts(backwards, user_jumps, x64):
    # `_ClipAtChanges` takes non-decreasing times with repeats and infinities (one per step
    # boundary, no sort); it places every step on the same float as diffrax's own, also
    # around a user's clip (as diffrax's clipped at both sets of times merged).
    from brainmass_eqx._simulate import _ClipAtChanges

    jumps = np.array([0.7, 2.0, 2.1, 5.0, 7.3])
    times = jnp.array([-np.inf, -np.inf, 0.7, 2.0, 2.0, 2.1, 5.0, 5.0, 5.0, 7.3, np.inf, np.inf])
    term = dfx.ODETerm(lambda t, y, args: -y + jnp.where(jnp.sum(t >= jumps) % 2 == 1, 3.0, 0.0))
    t0, t1 = (10.0, 0.0) if backwards else (0.0, 10.0)

    def solve(controller):
        sol = dfx.diffeqsolve(term, dfx.Tsit5(), t0, t1, None, jnp.array(1.0), stepsize_controller=controller,
                              saveat=dfx.SaveAt(steps=True))
        return np.asarray(sol.ts), np.asarray(sol.ys)

    pid = dfx.PIDController(rtol=1e-6, atol=1e-8)
    if user_jumps is None:
        ours, theirs = _ClipAtChanges(pid, times), dfx.ClipStepSizeController(pid, jump_ts=jumps)
    else:
        ours = _ClipAtChanges(dfx.ClipStepSizeController(pid, jump_ts=user_jumps), times)
        theirs = dfx.ClipStepSizeController(pid, jump_ts=np.union1d(jumps, user_jumps))
    ours, theirs = solve(ours), solve(theirs)
    assert np.isfinite(ours[0]).sum() > 20
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])
