"""Each model against its published, quantitative behaviour: closed-form fixed points,
bifurcation points, stationary statistics and the Kuramoto order parameter, with the
models' default parameters (and the parameter changes the papers use).

`test_models_zoo.py` has the qualitative checks (Hopf amplitude sqrt(a), Kuramoto
synchronising above K_c, Wong-Wang E-I near 3 Hz, the Epileptor's seizures, Jansen-Rit's
alpha peak); these compare numbers with theory."""

from __future__ import annotations

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq

import brainmass_eqx.models as M
from brainmass_eqx._simulate import simulate
from brainmass_eqx.network import Network
from brainmass_eqx.noise import WhiteNoise, with_noise
from brainmass_eqx.observation import BalloonWindkessel, bold_from_signal
from brainmass_eqx.solvers import RK4


@eqx.filter_jit
def _field_and_jacobian(model, y, inputs):
    def f(y):
        state = {k: y[i : i + 1] for i, k in enumerate(model.state_names)}
        out = model.vector_field(0.0, state, inputs)
        return jnp.concatenate([out[k] for k in model.state_names])

    return f(y), jax.jacfwd(f)(y)


def _jacobian_eigenvalues(model, point, inputs):
    """Eigenvalues of the model's Jacobian at the fixed point ``point`` (one region, float64)."""
    y = jnp.asarray([point[k] for k in model.state_names], jnp.float64)
    field, jac = _field_and_jacobian(model, y, inputs)
    assert np.abs(np.asarray(field)).max() < 1e-9, "not a fixed point"
    return np.linalg.eigvals(np.asarray(jac))


def _max_real_eig(model, point, inputs):
    return float(np.max(_jacobian_eigenvalues(model, point, inputs).real))


# -- Hopf / Stuart-Landau ----------------------------------------------------------------------


def test_hopf_noise_gives_the_exact_stationary_variance():
    # Below the bifurcation with isotropic additive noise sigma dW on x and y, the rotation
    # is divergence-free and the stationary density is exact:
    # p(r) ~ r exp(2 (a r^2/2 - beta r^4/4) / sigma^2), so <x^2> = <r^2>/2 (linear theory
    # sigma^2 / (2|a|) = 0.01 here; the cubic term lowers it to 0.00933).
    a, sigma = -0.5, 0.1
    weight = lambda r, k: r**k * np.exp((a * r * r / 2 - r**4 / 4) * 2 / sigma**2)  # noqa: E731
    exact = quad(lambda r: weight(r, 3), 0, 5)[0] / quad(lambda r: weight(r, 1), 0, 5)[0] / 2
    model = with_noise(M.Hopf(200, a=a, w=0.2), noise_x=WhiteNoise(sigma), noise_y=WhiteNoise(sigma))
    traj = simulate(model, 600.0, dt=0.05, key=jax.random.key(1), transient=2000, sample_every=40)
    var = float(np.var(np.asarray(traj["x"])))
    # 200 regions x 150 samples, correlation time 2 ms: ~1.5 % standard error of the variance.
    assert var == pytest.approx(exact, rel=0.06), (var, exact)


def test_two_coupled_hopf_oscillators_follow_adler():
    # Phase reduction of two Hopf oscillators (a = 1 >> k, equal amplitudes) with the
    # diffusive coupling k (x_j - x_i) on x only: theta_i' = w_i + (k/2) sin(theta_j - theta_i),
    # so phi = theta_2 - theta_1 obeys Adler's equation phi' = dw - k sin(phi): they lock
    # for k > |dw|, else they slip at the beat frequency sqrt(dw^2 - k^2).
    dw = 0.02
    node = M.Hopf(2, a=1.0, w=jnp.array([0.2, 0.2 + dw]), init_x=jnp.array([1.0, 0.0]), init_y=jnp.array([0.0, 1.0]))

    def slip_rate(k):
        traj = simulate(Network(node, np.array([[0.0, 1.0], [1.0, 0.0]]), k=k), 2000.0, dt=0.1, solver=RK4(),
                        transient=10000, sample_every=10)
        phase = np.unwrap(np.arctan2(np.asarray(traj["y"]), np.asarray(traj["x"])), axis=0)
        phi = phase[:, 1] - phase[:, 0]
        return (phi[-1] - phi[0]) / (float(traj.ts[-1]) - float(traj.ts[0]))

    assert slip_rate(0.8 * dw) == pytest.approx(math.sqrt(dw**2 - (0.8 * dw) ** 2), rel=0.05)
    assert abs(slip_rate(1.2 * dw)) < 1e-4


def test_kuramoto_order_parameter_follows_the_lorentzian_self_consistency():
    # Lorentzian natural frequencies of half-width g (deterministic quantiles), coupling
    # (K/N) sum_j sin(theta_j - theta_i): r = sqrt(1 - 2 g / K) above K_c = 2 g
    # (Kuramoto 1975; Strogatz 2000, eq. 5.6).
    n, g = 128, 0.05
    omega = g * np.tan(np.pi * ((np.arange(n) + 0.5) / n - 0.5))

    def order(K):
        traj = simulate(M.Kuramoto(n, omega=jnp.asarray(omega), K=K), 200.0, dt=0.1, key=jax.random.key(0),
                        monitors="order_parameter", sample_every=10)
        return jnp.mean(traj["order_parameter"][-100:])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the Lorentzian's far tail spins fast
        r = np.asarray(jax.vmap(order)(jnp.array([0.2, 0.5])))
    np.testing.assert_allclose(r, [math.sqrt(1 - 2 * g / 0.2), math.sqrt(1 - 2 * g / 0.5)], atol=0.02)


# -- firing-rate models with closed forms ----------------------------------------------------


def _montbrio_fixed_points(Delta, eta, J):
    """Montbrió et al. 2015, eqs. (12)-(13) at rest, dimensionless: r = -Delta / (2 pi v)
    and v^2 + eta + J r - pi^2 r^2 = 0, i.e. -pi^2 r^4 + J r^3 + eta r^2 + Delta^2/(4 pi^2) = 0."""
    roots = np.roots([-(math.pi**2), J, eta, 0.0, Delta**2 / (4 * math.pi**2)])
    r = np.sort([z.real for z in roots if abs(z.imag) < 1e-9 and z.real > 0])
    return r, -Delta / (2 * math.pi * r)


@pytest.mark.parametrize("tau", [1.0, 10.0])
def test_montbrio_rests_on_the_closed_form_fixed_points(x64, tau):
    # The paper's bistable case (Fig. 2): Delta = 1, eta = -5, J = 15. Here r is in Hz and
    # time in ms, so Delta = delta * tau / 1000 and r = 1000 R / tau.
    R, V = _montbrio_fixed_points(1.0, -5.0, 15.0)
    assert R.size == 3  # low focus, saddle, high focus
    model = M.MontbrioPazoRoxin(1, tau=tau, delta=1000.0 / tau, eta=-5.0, J=15.0)
    for i in (0, 2):  # the two stable foci (slowest decay 2 v* = -0.31 / tau), from 5 % off
        y0 = {"r": jnp.array([1.05e3 * R[i] / tau]), "v": jnp.array([0.95 * V[i]])}
        final = simulate(model, 100.0 * tau, dt=0.01 * tau, solver=RK4(), y0=y0, transient=9999).final_state
        np.testing.assert_allclose([float(final["r"][0]), float(final["v"][0])], [1e3 * R[i] / tau, V[i]], rtol=1e-8)
    saddle = {"r": 1e3 * R[1] / tau, "v": V[1]}
    assert _max_real_eig(model, saddle, {}) > 0


def test_wilson_cowan_default_parameters_are_bistable_with_hysteresis_in_P():
    # The defaults are Wilson & Cowan's (1972) hysteresis set (c1..c4 = 12, 4, 13, 11,
    # a_e 1.2, theta_e 2.8, a_i 1, theta_i 4): at P = 0 a low and a high stable state
    # coexist; at P = 0.5 only the high one is left (the lower branch ends at P ~ 0.3).
    model = M.WilsonCowan(2)
    y0 = {"rE": jnp.array([0.0, 0.5]), "rI": jnp.array([0.0, 0.25])}
    low_high = simulate(model, 300.0, dt=0.1, y0=y0, inputs={"rE": 0.0}, transient=2999).final_state["rE"]
    np.testing.assert_allclose(np.asarray(low_high), [0.0, 0.4625], atol=2e-4)
    only_high = simulate(model, 300.0, dt=0.1, y0=y0, inputs={"rE": 0.5}, transient=2999).final_state["rE"]
    np.testing.assert_allclose(np.asarray(only_high), [0.4776, 0.4776], atol=2e-4)


def test_reduced_wong_wang_rests_on_its_closed_form_fixed_points_and_is_bistable():
    # Wong & Wang 2006 / Deco et al. 2013: S/tau_s = (1 - S) gamma H(w J_N S + I_o). At the
    # defaults one state, S* = 0.0980; at w = 1.3, I_o = 0.3 two stable states coexist.
    a, b, d, gamma, tau_s, J_N = (float(getattr(M.ReducedWongWang(1), k)) for k in ("a", "b", "d", "gamma", "tau_s", "J_N"))

    def balance(S, w, I_o):
        x = a * (w * J_N * S + I_o) - b
        return -S / tau_s + (1 - S) * gamma * x / -np.expm1(-d * x)

    grid = np.linspace(1e-6, 1 - 1e-6, 20001)
    stable = {}
    for w, I_o in ((0.6, 0.33), (1.3, 0.30)):
        f = balance(grid, w, I_o)
        roots = [brentq(balance, grid[k], grid[k + 1], args=(w, I_o)) for k in np.where(np.diff(np.sign(f)))[0]]
        stable[w] = [roots[0], roots[-1]]  # the outer ones are stable
    assert stable[0.6][0] == stable[0.6][1] == pytest.approx(0.09802, abs=1e-5)
    model = M.ReducedWongWang(4, w=jnp.array([0.6, 0.6, 1.3, 1.3]), I_o=jnp.array([0.33, 0.33, 0.30, 0.30]))
    final = simulate(model, 2000.0, dt=0.1, y0={"S": jnp.array([0.0, 1.0, 0.0, 1.0])}, transient=19999).final_state
    np.testing.assert_allclose(np.asarray(final["S"]), [*stable[0.6], *stable[1.3]], atol=2e-4)
    assert stable[1.3][1] - stable[1.3][0] > 0.5


# -- bifurcation points -----------------------------------------------------------------------


def _jansen_rit_fixed_points(model, p):
    """Rest states of Jansen & Rit (1995) for the drive p (Hz): with v = E - I,
    M = (Ae/be) S(v), v = (Ae/be)(p + C a2 S(C a1 M)) - (Ai/bi) C a4 S(C a3 M)
    (rates per ms, S in kHz)."""
    ms = 1e-3
    be, bi, Ae, Ai, C = model.be * ms, model.bi * ms, model.Ae, model.Ai, model.C
    S = lambda v: model.s_max * ms / (1 + np.exp(model.r * (model.v0 - v)))  # noqa: E731

    def g(v):
        Mv = Ae / be * S(v)
        return Ae / be * (p * ms + C * model.a2 * S(C * model.a1 * Mv)) - Ai / bi * C * model.a4 * S(C * model.a3 * Mv) - v

    vs = np.linspace(-20.0, 30.0, 5001)
    gv = g(vs)
    points = []
    for k in np.where(np.diff(np.sign(gv)))[0]:
        v = brentq(g, vs[k], vs[k + 1], xtol=1e-14)
        Mv = Ae / be * S(v)
        E = Ae / be * (p * ms + C * model.a2 * S(C * model.a1 * Mv))
        points.append({"M": Mv, "E": E, "I": E - v, "Mv": 0.0, "Ev": 0.0, "Iv": 0.0})
    return points


def test_jansen_rit_bifurcations_are_grimbert_faugeras(x64):
    # Grimbert & Faugeras (2006), Fig. 3: Hopf bifurcations of the upper rest branch at
    # p = -12.15, 89.83 and 315.70 Hz (the alpha cycle lives between the last two), and
    # saddle-nodes of the rest states at p = -41.3 and 113.6 Hz (three rest states between).
    model = M.JansenRit(1)

    def upper_branch_growth(p):
        upper = _jansen_rit_fixed_points(model, p)[-1]
        return _max_real_eig(model, upper, {"E": jnp.array([p])})

    assert len(_jansen_rit_fixed_points(model, -41.4)) == 1 and len(_jansen_rit_fixed_points(model, -41.2)) == 3
    assert len(_jansen_rit_fixed_points(model, 113.5)) == 3 and len(_jansen_rit_fixed_points(model, 113.7)) == 1
    assert upper_branch_growth(-12.25) > 0 > upper_branch_growth(-12.05)
    assert upper_branch_growth(89.73) < 0 < upper_branch_growth(89.93)
    assert upper_branch_growth(315.6) > 0 > upper_branch_growth(315.8)
    eig = _jacobian_eigenvalues(model, _jansen_rit_fixed_points(model, 315.7)[-1], {"E": jnp.array([315.7])})
    hopf_hz = abs(eig[np.argmax(eig.real)].imag) * 1000 / (2 * math.pi)
    assert 10.5 < hopf_hz < 12.0  # the alpha cycle is born at ~11 Hz


def test_fitzhugh_nagumo_oscillates_between_its_two_hopf_points(x64):
    # Defaults (Kostova et al. 2004 form): the fixed point w = V / epsilon,
    # I = alpha V^3 - beta V^2 - gamma V + V / epsilon is unique (I increases with V) and
    # loses stability where the trace vanishes, -3 alpha V^2 + 2 beta V + gamma = epsilon/tau:
    # V = 0.2769 and 0.6120, i.e. I = 0.7261 and 1.3316 (det = (1 - epsilon^2/tau)/tau > 0).
    model = M.FitzHughNagumo(1)
    a, b, c, eps, tau = (float(getattr(model, k)) for k in ("alpha", "beta", "gamma", "epsilon", "tau"))
    V_hopf = np.sort(np.roots([-3 * a, 2 * b, c - eps / tau]).real)
    I_hopf = a * V_hopf**3 - b * V_hopf**2 - c * V_hopf + V_hopf / eps
    np.testing.assert_allclose(I_hopf, [0.7261, 1.3316], atol=1e-4)

    def growth(I):
        V = brentq(lambda v: a * v**3 - b * v**2 - c * v + v / eps - I, -2.0, 2.0, xtol=1e-14)
        return _max_real_eig(model, {"V": V, "w": V / eps}, {"V": jnp.array([I])})

    assert growth(I_hopf[0] - 0.01) < 0 < growth(I_hopf[0] + 0.01)
    assert growth(I_hopf[1] - 0.01) > 0 > growth(I_hopf[1] + 0.01)
    Is = jnp.array([0.70, 1.0, 1.36])
    traj = simulate(M.FitzHughNagumo(3, init_V=0.0, init_w=0.0), 1500.0, dt=0.1, solver=RK4(), transient=10000,
                    inputs={"V": Is})
    span = np.ptp(np.asarray(traj["V"]), axis=0)
    assert span[1] > 0.5 and span[0] < 1e-3 and span[2] < 1e-3


def test_epileptor_rest_state_loses_stability_at_x0_near_minus_2_05(x64):
    # Jirsa et al. (2014): the node rests for x0 below about -2.05 and seizes above. The
    # rest state (x1 < 0, x2 < -0.25) solves -x1^3 - 2 x1^2 - 4 x1 + Iext + c + 4 x0 = 0 with
    # z = 4 (x1 - x0), y1 = c - d x1^2, g = 0.1 x1, y2 = 0 and x2 the lowest root of
    # -x2^3 + x2 + Iext2 + 2 g - 0.3 (z - 3.5) = 0 (default a = 1, b = 3, d = 5).
    def growth(x0):
        model = M.Epileptor(1, x0=x0)
        (x1,) = [z.real for z in np.roots([-1.0, -2.0, -4.0, 3.1 + 1.0 + 4 * x0]) if abs(z.imag) < 1e-12]
        z, g = 4 * (x1 - x0), 0.1 * x1
        x2 = min(w.real for w in np.roots([-1.0, 0.0, 1.0, 0.45 + 2 * g - 0.3 * (z - 3.5)]) if abs(w.imag) < 1e-9)
        return _max_real_eig(model, {"x1": x1, "y1": 1 - 5 * x1**2, "z": z, "x2": x2, "y2": 0.0, "g": g}, {})

    assert growth(-2.07) < 0 < growth(-2.05)


# -- haemodynamics ------------------------------------------------------------------------------


def test_balloon_bold_steady_state_and_impulse_response():
    # Friston et al. (2000, 2003): for a sustained drive z the balloon settles at s = 0,
    # f = 1 + z/gamma, v = f^alpha, q = v E(f)/rho with E(f) = 1 - (1 - rho)^(1/f).
    bw = BalloonWindkessel()
    z = np.array([0.1, 0.5, 1.0])
    f = 1 + z / float(bw.gamma)
    v = f ** float(bw.alpha)
    q = v * (1 - (1 - float(bw.rho)) ** (1 / f)) / float(bw.rho)
    steady = bw.bold({"q": q, "v": v})
    sustained = bold_from_signal(jnp.broadcast_to(jnp.asarray(z, jnp.float32), (6000, 3)), 10.0, tr=1000.0)
    np.testing.assert_allclose(np.asarray(sustained[-1]), np.asarray(steady), rtol=1e-4)
    # A 100 ms pulse: the response peaks ~3 s after it (these, Friston 2003's, haemodynamics
    # are faster than the canonical HRF's 5-6 s) and undershoots by ~15 % of its peak.
    pulse = np.zeros((3000, 1), np.float32)
    pulse[:10] = 1.0
    bold = np.asarray(bold_from_signal(jnp.asarray(pulse), 10.0, tr=100.0))[:, 0]
    peak = int(np.argmax(bold))
    assert 2.5 <= 0.1 * (peak + 1) <= 3.5
    assert -0.2 < bold[peak:].min() / bold[peak] < -0.1
