"""In-loop Balloon-Windkessel BOLD: `WithBOLD`, `BOLDSolver`, `simulate_bold`.

The in-loop BOLD is checked against the offline `bold_from_signal` of the recorded neural
signal, against the analytic steady state and an independent SciPy integration (float32
at dt = 0.1 ms, where uncompensated steps drift by 3e-4), with noise and a delayed
Network, under jit/grad/vmap, and for bad input.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt as u
from scipy.integrate import solve_ivp

from brainmass_eqx import simulate
from brainmass_eqx.models import Hopf, JansenRit
from brainmass_eqx.observation import BalloonWindkessel, WithBOLD, bold_from_signal, simulate_bold

DT = 0.1  # ms
BW = BalloonWindkessel()


def envelope(model, state):
    """A positive, slowly varying drive: the oscillators' squared amplitude."""
    return state["x"] ** 2 + state["y"] ** 2


# Three slow oscillators (0.3 Hz) with different amplitudes and decay.
SLOW = Hopf(n_regions=3, a=jnp.array([-0.001, 0.001, 0.004]), w=0.002, init_x=jnp.array([0.05, 0.03, 0.06]))


def _maxabs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.fixture(scope="module")
def every_step():
    """10 s of the slow oscillators with in-loop BOLD, everything recorded every step."""
    model = WithBOLD(SLOW, envelope, scale=100.0)
    traj = simulate(model, 10_000.0, dt=DT, monitors=["x", "y", "bold"])
    return model, traj


def test_inloop_equals_offline(every_step):
    model, traj = every_step
    drive = 100.0 * (np.asarray(traj["x"]) ** 2 + np.asarray(traj["y"]) ** 2)
    offline, final = bold_from_signal(drive, DT, return_state=True)
    assert float(np.max(np.abs(traj["bold"]))) > 5e-3  # a real signal, not rest
    assert _maxabs(traj["bold"], offline) < 5e-8
    assert _maxabs(traj.final_state["bold_q"], final["q"]) < 2e-7
    assert _maxabs(traj.final_state["bold_v"], final["v"]) < 2e-7


def test_simulate_bold_samples_at_tr_and_chunks(every_step):
    """Samples at TR, 2 TR, ...: the every-step run subsampled; chunked = unchunked."""
    model, traj = every_step
    out = simulate_bold(model, u.Quantity(10, "s"), dt=u.Quantity(0.1, "ms"), tr=u.Quantity(1, "s"), chunk=30_000)
    np.testing.assert_allclose(out.ts, np.arange(1, 11) * 1000.0)
    assert list(out.keys()) == ["bold"]
    k = 10_000
    np.testing.assert_allclose(np.asarray(out["bold"]), np.asarray(traj["bold"])[k - 1 :: k], rtol=0, atol=5e-8)


GAMMA, KAPPA, ALPHA, TAU, RHO, V0 = 0.41, 0.65, 0.32, 0.98, 0.34, 0.02


def _bold(v, q):
    return V0 * (7 * RHO * (1 - q) + 2 * (1 - q / v) + (2 * RHO - 0.2) * (1 - v))


def _scipy_bw(z, t_eval_s):
    """Friston et al. (2003) from rest, constant drive z, float64 RK45; rows s, f, v, q."""

    def rhs(t, y):
        s, f, v, q = y
        return [
            z - KAPPA * s - GAMMA * (f - 1),
            s,
            (f - v ** (1 / ALPHA)) / TAU,
            (f * (1 - (1 - RHO) ** (1 / f)) / RHO - v ** (1 / ALPHA) * q / v) / TAU,
        ]

    return solve_ivp(rhs, (0.0, t_eval_s[-1]), [0.0, 1.0, 1.0, 1.0], rtol=1e-10, atol=1e-12, t_eval=t_eval_s).y


def test_constant_drive_matches_scipy_and_steady_state():
    """float32, dt = 0.1 ms, 60 s: q within 1e-6 of SciPy (plain float32 steps drift 3e-4);
    the analytic steady state; adaptive steps."""
    z = 0.4
    model = WithBOLD(Hopf(n_regions=1, a=-0.1), lambda m, s: jnp.full_like(s["x"], z))
    out = simulate_bold(model, 60_000.0, dt=DT, tr=2_000.0, monitors=["bold_q", "bold_v"])
    # BOLD is always recorded: monitors= adds to it (given alone, it had replaced it).
    assert list(out.ys) == ["bold", "bold_q", "bold_v"]
    t_s = np.asarray(out.ts) / 1000.0
    ref = _scipy_bw(z, t_s)
    assert _maxabs(out["bold_q"][:, 0], ref[3]) < 1e-6
    assert _maxabs(out["bold_v"][:, 0], ref[2]) < 1e-6
    assert _maxabs(out["bold"][:, 0], _bold(ref[2], ref[3])) < 2e-7
    # Analytic fixed point: s = 0, f = 1 + z/gamma, v = f^alpha, q = v E(f) / rho.
    f = 1 + z / GAMMA
    v = f**ALPHA
    steady = _bold(v, v * (1 - (1 - RHO) ** (1 / f)) / RHO)
    assert abs(float(out["bold"][-1, 0]) - steady) < 1e-6 * abs(steady) + 2e-7
    # Adaptive steps: the neural state sits still, so only the haemodynamic error estimate
    # of BOLDSolver keeps the steps short (without it this run diverges).
    controller = dfx.PIDController(rtol=1e-6, atol=1e-8)
    adaptive = simulate(model, 60_000.0, dt=DT, solver=dfx.Tsit5(), stepsize_controller=controller, saveat=out.ts, monitors=["bold_q"])
    assert _maxabs(adaptive["bold_q"][:, 0], ref[3]) < 2e-6


def test_noisy_model_runs_and_matches_offline():
    from brainmass_eqx.noise import OUProcess, with_noise

    noisy = with_noise(Hopf(n_regions=2, a=-0.05, w=0.002), {"x": OUProcess(0.5, tau=20.0)})
    key = jax.random.key(3)
    bare = simulate(noisy, 1_000.0, dt=DT, key=key, monitors=["x"])
    traj = simulate(WithBOLD(noisy, "x", scale=2.0), 1_000.0, dt=DT, key=key, monitors=["x", "bold"])
    assert _maxabs(bare["x"], traj["x"]) < 1e-6
    assert _maxabs(traj["bold"], bold_from_signal(2.0 * traj["x"], DT)) < 2e-8
    assert float(np.max(np.abs(traj["bold"]))) > 1e-5


def test_noise_or_a_network_outside_withbold_is_refused_when_built():
    from brainmass_eqx.network import Network
    from brainmass_eqx.noise import OUProcess, with_noise

    with pytest.raises(ValueError, match=r"with_noise: the model is a WithBOLD, which must be the outermost wrapper; build WithBOLD\(with_noise"):
        with_noise(WithBOLD(Hopf(n_regions=2)), {"x": OUProcess(0.1)})
    with pytest.raises(ValueError, match=r"Network: the model is a WithBOLD, .* instead of Network\(WithBOLD\(model\), ...\)"):
        Network(WithBOLD(Hopf(n_regions=2)), np.ones((2, 2)))


@pytest.mark.skipif(importlib.util.find_spec("brainmass_eqx.network") is None, reason="brainmass_eqx.network not built yet")
def test_delayed_network_example_connectome():
    from brainmass_eqx.datasets import load_example_connectome
    from brainmass_eqx.network import Network

    conn = load_example_connectome()
    net = Network(
        Hopf(n_regions=8, a=-0.02, w=0.002, init_x=0.3),
        np.asarray(conn.weights),
        distance=np.asarray(conn.distances),
        speed=10.0,
        coupled_var="x",
        k=0.05,
    )
    bare = simulate(net, 2_000.0, dt=DT, monitors=["x"])
    traj = simulate(WithBOLD(net, envelope), 2_000.0, dt=DT, monitors=["x", "y", "bold"])
    assert _maxabs(bare["x"], traj["x"]) < 1e-6
    drive = np.asarray(traj["x"]) ** 2 + np.asarray(traj["y"]) ** 2
    assert _maxabs(traj["bold"], bold_from_signal(drive, DT)) < 2e-8
    assert traj["bold"].shape == (20_000, 8)


# -- jit / grad / vmap -------------------------------------------------------------------------


def _bold_run(model):
    return simulate(model, 2_000.0, dt=1.0, sample_every=500, monitors=["bold"])["bold"]


class Gain(eqx.Module):
    """A trainable driver: a per-region gain on the squared amplitude."""

    w: jax.Array

    def __call__(self, model, state):
        return self.w * (state["x"] ** 2 + state["y"] ** 2)


def _loss(w, a):
    model = WithBOLD(Hopf(n_regions=2, a=a, w=0.002, init_x=0.5), Gain(w))
    return jnp.sum(_bold_run(model) ** 2) * 1e4


def test_jit_and_vmap():
    gains = jnp.array([[0.5, 1.0], [1.0, 2.0], [2.0, 4.0]])
    batched = jax.jit(jax.vmap(lambda w: _loss(w, -0.001)))(gains)
    loop = np.array([float(_loss(w, -0.001)) for w in gains])
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-5)
    assert loop[2] > loop[1] > loop[0] > 0


def test_grad_matches_finite_differences(x64):
    """Reverse mode through the in-loop BOLD, w.r.t. a trainable driver (an eqx.Module)
    and a parameter of the neural model, against central differences (float64)."""
    w, a = jnp.array([1.0, 2.0]), -0.001
    g_w, g_a = jax.jit(jax.grad(_loss, argnums=(0, 1)))(w, a)
    loss = jax.jit(_loss)
    h = 1e-6
    e0 = jnp.array([1.0, 0.0])
    fd_w0 = (loss(w + h * e0, a) - loss(w - h * e0, a)) / (2 * h)
    fd_a = (loss(w, a + h) - loss(w, a - h)) / (2 * h)
    np.testing.assert_allclose(float(g_w[0]), float(fd_w0), rtol=1e-6)
    np.testing.assert_allclose(float(g_a), float(fd_a), rtol=1e-6)
    assert float(g_w[0]) > 0 and abs(float(g_a)) > 0


def test_contract_and_delegation():
    jr = JansenRit(n_regions=2)
    model = WithBOLD(jr, "eeg")
    assert model.state_names == jr.state_names + ("bold_s", "bold_f", "bold_v", "bold_q")
    assert model.observables == ("eeg", "bold")
    assert model.input_names == jr.input_names and model.coupling_input == jr.coupling_input
    assert model.n_regions == 2 and model.Ae is jr.Ae  # attributes fall through
    state = model.init_state()
    np.testing.assert_array_equal(model.observe("eeg", state), jr.observe("eeg", jr.init_state()))
    np.testing.assert_array_equal(model.observe("bold", state), np.zeros(2))
    f = model.vector_field(0.0, state, {})
    f_inner = jr.vector_field(0.0, jr.init_state(), {})
    for name in jr.state_names:
        np.testing.assert_array_equal(f[name], f_inner[name])
    # The haemodynamic field is BalloonWindkessel's per second, here per ms.
    z = model.drive({k: state[k] for k in jr.state_names})
    g = BW.vector_field(0.0, BW.init_state(2), z)
    for k in "sfvq":
        np.testing.assert_allclose(f[f"bold_{k}"], g[k] * 1e-3, rtol=1e-6)
    _, diag = model.vector_field_and_diagonal(0.0, state, {})
    np.testing.assert_allclose(diag["bold_s"], -BW.kappa * 1e-3 * np.ones(2), rtol=1e-6)


# -- bad input ----------------------------------------------------------------------------------


def test_bad_driver_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"`driver` 'v' is not a state or observable of Hopf; pass driver= one of \['x', 'y'\]"):
        WithBOLD(Hopf(n_regions=2), "v")


def test_default_driver_missing_names_the_wrapped_model():
    import brainmass_eqx as bx

    net = bx.Network(bx.WongWangExcInh(2), np.ones((2, 2)), coupled_var="S_e")
    noisy = bx.with_noise(net, {"S_e": bx.OUProcess(0.01)})
    with pytest.raises(ValueError, match=r"`driver` 'x' \(the default\) is not a state or observable of "
                       r"Noisy\(Network\(WongWangExcInh\)\); pass driver= one of \['S_e', 'S_i'"):
        WithBOLD(noisy)


def test_bad_driver_shape_and_type():
    with pytest.raises(ValueError, match=r"`driver`.*shape \(\).*shape \(2,\)"):
        WithBOLD(Hopf(n_regions=2), lambda m, s: jnp.sum(s["x"]))
    with pytest.raises(TypeError, match="`driver` must be"):
        WithBOLD(Hopf(n_regions=2), 3)


def test_bad_scale_balloon_model():
    with pytest.raises(ValueError, match="`scale` has shape"):
        WithBOLD(Hopf(n_regions=2), scale=jnp.ones(3))
    with pytest.raises(ValueError, match="`balloon.tau` has shape"):
        WithBOLD(Hopf(n_regions=2), balloon=BalloonWindkessel(tau=jnp.ones(3)))
    with pytest.raises(TypeError, match="`balloon` must be"):
        WithBOLD(Hopf(n_regions=2), balloon=0.5)
    with pytest.raises(TypeError, match="`model` must be"):
        WithBOLD("Hopf")
    with pytest.raises(ValueError, match="already computes BOLD"):
        WithBOLD(WithBOLD(Hopf(n_regions=2)))


def test_a_drive_that_empties_the_blood_flow_is_named_not_blamed_on_dt():
    # A sustained drive below -gamma takes the flow f to zero and BOLD to NaN: offline it
    # came back as NaN without a word, in the loop as a divergence blamed on dt.
    z = np.full((6_000, 2), 0.3, np.float32)
    z[:, 1] = -1.5
    with pytest.raises(ValueError, match=r"BOLD became NaN at sample \d+ \(t = \d+ ms\), region 1, where the drive's "
                       r"minimum so far is -1.5: the blood flow f fell to zero .* below -gamma \(-0.41\)"):
        bold_from_signal(z, 1.0, tr=1_000.0)
    assert np.all(np.isfinite(bold_from_signal(np.abs(z), 1.0, tr=1_000.0)))
    z[7, 0] = np.nan
    with pytest.raises(ValueError, match=r"`signal` holds NaN or inf \(1 of \d+ values, first at index \[7, 0\]\)"):
        bold_from_signal(z, 1.0, tr=1_000.0)
    from brainmass_eqx import SimulationDivergedError
    from brainmass_eqx.models import Linear

    with pytest.raises(SimulationDivergedError, match=r"'bold' first became nan .* the cause is the haemodynamics, "
                       r"not dt: the blood flow f fell to zero"):
        simulate_bold(Linear(1), 6_000.0, dt=1.0, tr=1_000.0, inputs={"x": -15.0})
    # When the neural model itself diverged (only BOLD is recorded), the report blamed the
    # haemodynamics too; its final state tells the two apart.
    with pytest.raises(SimulationDivergedError, match=r"'bold' first became nan .* The neural model diverged "
                       r"first: its 'x', 'y' are NaN/inf at the end"):
        simulate_bold(Hopf(n_regions=2, a=50.0, init_x=0.5), 2_000.0, dt=1.0, tr=500.0)


def test_bad_tr_and_duration():
    model = Hopf(n_regions=2)
    with pytest.raises(ValueError, match="`tr` = 0.05 ms is shorter than `dt` = 0.1 ms"):
        simulate_bold(model, 100.0, dt=0.1, tr=u.Quantity(0.05, "ms"))
    with pytest.raises(ValueError, match="`tr` = 0.25 ms is not a whole number"):
        simulate_bold(model, 100.0, dt=0.1, tr=u.Quantity(0.25, "ms"))
    # A plain-number TR of a few ms is most likely seconds: said, with both readings' fixes.
    with pytest.warns(UserWarning, match=r"`tr` = 2 ms: plain numbers are ms .* For 2 s pass unxt.Quantity\(2, 's'\) "
                      r"or 2000; to sample the BOLD signal every 2 ms on purpose, pass unxt.Quantity\(2, 'ms'\)"):
        simulate_bold(model, 100.0, dt=0.1, tr=2.0)
    with pytest.raises(ValueError, match="`duration`.*shorter than the transient plus one `tr`"):
        simulate_bold(model, 100.0, dt=0.1, tr=200.0)
    with pytest.raises(ValueError, match=r"already a WithBOLD model; \['driver'\]"):
        simulate_bold(WithBOLD(model), 100.0, dt=0.1, tr=10.0, driver="y")
    with pytest.raises(TypeError, match="`sample_every` is fixed by `tr`"):
        simulate_bold(model, 100.0, dt=0.1, tr=10.0, sample_every=3)


def _bitwise_equal(a, b):
    return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in b)


@pytest.mark.parametrize("case", ["noisy Hopf, Heun", "Wilson-Cowan, RK4, chunked"])
def test_a_continued_bold_run_is_the_run_in_one_go_bit_for_bit(case, tmp_path):
    """The haemodynamics' Kahan compensation goes on in a continued run (`Trajectory.carried`,
    kept by save / load): it was solver state the Trajectory did not hold and restarted at
    zero, and the continued BOLD was 1.0e-8 off the run in one go (bold_s 2.3e-9, bold_f and
    bold_q one ulp). A Trajectory without it (saved before it was kept) still continues."""
    from brainmass_eqx import Trajectory
    from brainmass_eqx.models import WilsonCowan
    from brainmass_eqx.noise import WhiteNoise, with_noise
    from brainmass_eqx.solvers import RK4

    if case == "noisy Hopf, Heun":
        model = with_noise(Hopf(n_regions=2, a=-0.5, w=0.3), noise_x=WhiteNoise(0.5))
        kwargs, y0, chunk = dict(dt=0.1, tr=10.0, solver=dfx.Heun(), key=jax.random.key(0)), None, None
    else:
        model = WilsonCowan(n_regions=2)
        kwargs = dict(dt=0.1, tr=10.0, solver=RK4(), driver="rE", inputs={"rE": np.array([1.0, 0.5], np.float32)})
        y0, chunk = {"rE": np.array([0.3, 0.1], np.float32), "rI": np.array([0.05, 0.2], np.float32)}, 500
    first = simulate_bold(model, 200.0, y0=y0, chunk=chunk, **kwargs)
    whole = simulate_bold(model, 400.0, y0=y0, **kwargs)
    second = simulate_bold(model, 200.0, y0=first, **kwargs)
    assert _bitwise_equal(second.ys, {"bold": whole["bold"][20:]})
    assert _bitwise_equal(second.final_state, whole.final_state)
    assert sorted(first.carried) == ["bold_f", "bold_q", "bold_s", "bold_v"]
    assert _bitwise_equal(second.carried, whole.carried)
    loaded = Trajectory.load(first.save(tmp_path / "first"))
    assert _bitwise_equal(loaded.carried, first.carried)
    assert _bitwise_equal(simulate_bold(model, 200.0, y0=loaded, **kwargs).ys, second.ys)
    # A file written before the compensation was kept (the same arrays, none under
    # 'carried/'): it starts at zero, the BOLD a float32 rounding off.
    old_file = Trajectory.load(dataclasses.replace(first, carried=None).save(tmp_path / "old"))
    assert old_file.carried is None
    old = simulate_bold(model, 200.0, y0=old_file, **kwargs)
    np.testing.assert_allclose(old["bold"], second["bold"], rtol=0, atol=1e-7)
    # Other runs carry nothing (and their compiled run returns nothing more).
    assert simulate(Hopf(n_regions=2), 1.0, dt=0.1).carried is None


def test_a_bold_run_continues_from_its_trajectory():
    """y0=traj continues a BOLD run as simulate does: time and (same key) noise go on, so the
    two runs equal one. It was refused, and the advice (y0=traj.final_state) restarted the
    time at 0 and, with the same key, replayed the first run's noise (correlation 1.0)."""
    from brainmass_eqx.network import Network
    from brainmass_eqx.noise import WhiteNoise, with_noise

    model = with_noise(Hopf(n_regions=2, a=-0.5, w=0.3), noise_x=WhiteNoise(0.5))
    kwargs = dict(dt=1.0, tr=100.0, key=jax.random.key(0))
    first = simulate_bold(model, 2_000.0, **kwargs)
    second = simulate_bold(model, 2_000.0, y0=first, **kwargs)
    whole = simulate_bold(model, 4_000.0, **kwargs)
    np.testing.assert_allclose(np.asarray(second.ts), np.asarray(whole.ts[20:]))
    np.testing.assert_allclose(np.asarray(second["bold"]), np.asarray(whole["bold"][20:]), atol=1e-5 * np.abs(whole["bold"]).max())
    # The final state restarts at t = 0 (same key: the first run's noise again).
    restarted = simulate_bold(model, 2_000.0, y0=first.final_state, **kwargs)
    assert float(restarted.ts[0]) == 100.0
    assert np.abs(np.asarray(restarted["bold"]) - np.asarray(whole["bold"][20:])).max() > 0.1 * np.abs(whole["bold"]).max()
    # A neural Trajectory without haemodynamic states: they start at rest, time goes on.
    plain = Hopf(n_regions=2, a=0.1, w=0.06, init_x=0.2)
    assert float(simulate_bold(plain, 200.0, dt=1.0, tr=100.0, y0=simulate(plain, 50.0, dt=1.0)).ts[0]) == 150.0
    # A delayed network needs its past at every step, which a BOLD run does not record.
    net = Network(Hopf(n_regions=2, a=-0.1), np.ones((2, 2)) - np.eye(2), delays=np.full((2, 2), 3.0), k=0.5)
    delayed = simulate_bold(net, 20.0, dt=0.1, tr=u.Quantity(1.0, "ms"))
    with pytest.raises(ValueError, match=r"simulate_bold: `y0` is a Trajectory, but Network\(Hopf\) has delays .* use chunk="):
        simulate_bold(net, 20.0, dt=0.1, tr=u.Quantity(1.0, "ms"), y0=delayed)
