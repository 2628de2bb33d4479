"""Tests for brainmass_eqx.noise: noise specs, attachment, the Brownian path, SDE solvers.

Statistical tests use fixed keys. Their tolerances come from the sample size: for a
stationary process with autocorrelation $e^{-|s|/\\tau}$ observed for $T$ ms in $R$
independent regions, the sample variance has relative standard error
$\\sqrt{2/N_{eff}}$ with $N_{eff} = R T/\\tau$; checks allow ``Z`` standard errors plus,
where a scheme has a known discretisation bias, that bias (computed, not tuned).
"""

from __future__ import annotations

import math

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import unxt

import brainmass_eqx as bm
from brainmass_eqx._param import Param, partition_trainable
from brainmass_eqx.noise import (
    BlockBrownianPath,
    BlueNoise,
    BrownianNoise,
    ColoredNoise,
    GaussianNoise,
    MultiplicativeNoise,
    OUProcess,
    PinkNoise,
    VioletNoise,
    WhiteNoise,
    split_noise_kwargs,
    with_coupling_noise,
    with_noise,
)

Z = 5.0  # standard errors allowed: a false alarm about once in 3.5 million runs
KEY = jr.key(20260401)


def _rel_se_var(duration, tau, n_series):
    """Relative standard error of the sample variance of an exponentially correlated
    process (correlation time ``tau``) observed for ``duration`` in ``n_series`` series."""
    return math.sqrt(2.0 * tau / (duration * n_series))


def _run(model, duration, dt, **kw):
    kw.setdefault("key", KEY)
    return bm.simulate(model, duration, dt=dt, **kw)


# -- the Brownian path ---------------------------------------------------------------------


@pytest.mark.parametrize("levy", [dfx.BrownianIncrement, dfx.SpaceTimeLevyArea])
def test_block_path_rows_are_jax_random_block_draws(levy):
    shape = {"a": jax.ShapeDtypeStruct((3,), jnp.float32), "b": jax.ShapeDtypeStruct((2, 4), jnp.float32)}
    block, m = 16, 2 if levy is dfx.SpaceTimeLevyArea else 1

    @jax.jit
    def normals(key, i):
        return BlockBrownianPath(shape, key, 0.1, block=block, levy_area=levy).step_normals(i)

    for i in (0, 5, 15, 16, 37):
        b, j = divmod(i, block)
        expected = jr.normal(jr.fold_in(KEY, b), (block, m, 11))[j]
        np.testing.assert_array_equal(normals(KEY, i), expected)


def test_block_path_evaluate_is_additive_on_the_grid():
    path = BlockBrownianPath((5,), KEY, 0.25, block=4)
    t = jnp.arange(12) * 0.25  # arrays: one compilation for every interval
    steps = jnp.stack([path.evaluate(t[i], t[i + 1]) for i in range(11)])
    np.testing.assert_allclose(path.evaluate(t[2], t[11]), steps[2:11].sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(path.evaluate(t[11]), steps.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(steps[3], math.sqrt(0.25) * jax.jit(lambda i: path.step_normals(i))(3)[0], rtol=1e-6)
    area = BlockBrownianPath((5,), KEY, 0.25, levy_area=dfx.SpaceTimeLevyArea).evaluate(0.0, 0.25, use_levy=True)
    assert isinstance(area, dfx.SpaceTimeLevyArea) and area.H.shape == (5,)


# -- statistics ----------------------------------------------------------------------------


def test_ou_stationary_std_and_autocorrelation_and_brownian_increments():
    sigma, tau, dt, R, T = 0.1, 20.0, 0.1, 256, 1200.0
    model = with_noise(bm.Hopf(n_regions=R, a=-1.0), {"x": OUProcess(sigma, tau=tau), "y": BrownianNoise(0.02)})
    tr = _run(model, T, dt, sample_every=10, monitors=["x_noise", "y_noise"])  # 1 ms samples
    # Brownian noise: independent increments of variance sigma^2 per ms.
    steps = np.diff(np.asarray(tr["y_noise"]), axis=0)
    assert abs(np.mean(steps**2) / 0.02**2 - 1.0) < Z * math.sqrt(2.0 / steps.size)
    eta = np.asarray(tr["x_noise"])[200:]
    observed = eta.shape[0]
    # ExponentialEuler on the OU state: exact decay, noise sigma sqrt(dt / tau) z (brainmass's
    # update), whose stationary variance exceeds sigma^2 / 2 by the known factor below.
    var_theory = sigma**2 / 2.0
    bias = (2 * dt / tau) / (-math.expm1(-2 * dt / tau)) - 1.0
    var = np.mean(eta**2)
    assert abs(var / var_theory - 1.0) < Z * _rel_se_var(observed, tau, R) + bias, (var, var_theory)
    # Autocorrelation at lag tau = e^-1; Bartlett's variance for an AR(1) of coefficient phi.
    lag = int(tau)
    rho_hat = np.mean(eta[lag:] * eta[:-lag]) / var
    phi, k, m = math.exp(-1.0 / tau), lag, np.arange(-2000, 2001)
    rho = phi ** np.abs(m)
    bartlett = np.sum(rho**2 + phi ** np.abs(m + k) * phi ** np.abs(m - k) - 4 * phi**k * rho * phi ** np.abs(m - k) + 2 * rho**2 * phi ** (2 * k))
    se = math.sqrt(bartlett / (observed * R))
    assert abs(rho_hat - math.exp(-1.0)) < Z * se, (rho_hat, se)


@pytest.mark.parametrize(
    "solver, a_b",
    [
        (None, lambda gh: (math.exp(gh), 1.0)),  # ExponentialEuler: exact decay
        # ShARK (additive noise, order 1.5, needs each step's space-time Lévy area): its
        # stationary variance is within the ExponentialEuler bound below.
        (dfx.ShARK(), lambda gh: (math.exp(gh), 1.0)),
    ],
    ids=["exp_euler", "shark"],
)
def test_white_noise_into_linear_gives_the_analytic_variance(solver, a_b):
    gamma, sigma, dt, R, T = -0.2, 0.1, 0.05, 256, 600.0
    model = with_noise(bm.Linear(n_regions=R, gamma=gamma, init_x=0.0), {"x": WhiteNoise(sigma)})
    x = np.asarray(_run(model, T, dt, solver=solver, sample_every=20, transient=1000)["x"])
    var_theory = sigma**2 / (2 * abs(gamma))
    # A linear one-step scheme y' = a y + b sigma dW has stationary variance b^2 sigma^2 dt / (1 - a^2).
    a, b = a_b(gamma * dt)
    bias = abs(b**2 * sigma**2 * dt / (1 - a**2) / var_theory - 1.0)
    assert bias < 0.011  # the discretisation error is O(|gamma| dt) = 1%
    var = np.mean(x**2)
    assert abs(var / var_theory - 1.0) < Z * _rel_se_var(T - 50.0, 1 / abs(gamma), R) + bias, (var, var_theory)


def test_hopf_noise_std_does_not_depend_on_dt():
    # brainmass adds sigma * z * dt per step: its std shrank from 0.211 to 0.070 going from
    # dt = 0.1 to 0.01 ms. With sigma * sqrt(dt) * z the std must agree within 5%.
    R, T, a = 256, 500.0, -0.1
    stds = []
    for dt in (0.1, 0.01):
        model = with_noise(bm.Hopf(n_regions=R, a=a, w=0.2), {"x": GaussianNoise(0.05)})
        x = np.asarray(_run(model, T, dt, sample_every=round(1.0 / dt), monitors=["x"])["x"])[100:]
        stds.append(np.sqrt(np.mean(x**2)))
    ratio = stds[0] / stds[1]
    se_ratio = math.sqrt(2) * 0.5 * _rel_se_var(T - 100.0, 1 / abs(a), R)
    assert 0.05 > 4 * se_ratio  # the sample is large enough for the 5% criterion to mean something
    assert abs(ratio - 1.0) < 0.05, stds
    # The linearised node (Lyapunov equation) gives the std; the cubic term only lowers it.
    A = np.array([[a, -0.2], [0.2, a]])
    cov = scipy.linalg.solve_continuous_lyapunov(A, -np.diag([0.05**2, 0.0]))
    assert 0.9 * math.sqrt(cov[0, 0]) < stds[1] < math.sqrt(cov[0, 0]) * (1 + Z * se_ratio)


def _loglog_slope(x, fs, fmin, fmax):
    """Slope of log PSD against log f over [fmin, fmax], every decade weighted equally
    (Welch estimate averaged over regions, then in 10 log-spaced bins per decade)."""
    f, p = scipy.signal.welch(x, fs=fs, nperseg=int(2 * fs), axis=0)
    p = p.mean(axis=1)
    edges = np.logspace(np.log10(fmin), np.log10(fmax), int(round(10 * np.log10(fmax / fmin))) + 1)
    idx = np.digitize(f, edges) - 1
    keep = [i for i in range(len(edges) - 1) if np.any(idx == i)]
    fc = np.array([np.exp(np.mean(np.log(f[idx == i]))) for i in keep])
    pc = np.array([np.mean(p[idx == i]) for i in keep])
    return np.polyfit(np.log10(fc), np.log10(pc), 1)[0]


def test_coloured_noise_spectra_in_time():
    dt, R, T = 0.1, 32, 4000.0
    # Lorenz: x is an input, y and z take their noise on the derivative. rho < 1 keeps it
    # near its stable origin (at the chaotic defaults this driven run reached NaN unseen).
    # Rising spectra keep their power in the fastest components: their band stays where
    # dt = 0.1 ms resolves them (the top component sits a decade above f_max).
    noise = {"x": PinkNoise(1.0), "y": BlueNoise(1.0, f_max=30.0), "z": VioletNoise(1.0, f_max=20.0)}
    model = with_noise(bm.Lorenz(n_regions=R, rho=0.5), noise)
    # Their variance is another matter (a step of dt * f_max = 3 ms * Hz): simulate says so.
    with pytest.warns(UserWarning, match=r"BlueNoise\(beta=-1, f_max=30 Hz\) on 'y' at dt = 0.1 ms: its band-pass "
                      r"components \(beta < 1\) are stepped too coarsely \(dt \* f_max = 3, ms times Hz\).*Take dt <= 0.0333333 ms"):
        tr = _run(model, T, dt, monitors=["x", "noise_x", "noise_y", "noise_z"])
    assert np.all(np.isfinite(np.asarray(tr["x"])))
    fs = 1000.0 / dt
    assert abs(_loglog_slope(np.asarray(tr["noise_x"]), fs, 1.0, 100.0) + 1.0) < 0.15  # two decades
    assert abs(_loglog_slope(np.asarray(tr["noise_y"]), fs, 1.0, 30.0) - 1.0) < 0.15
    assert abs(_loglog_slope(np.asarray(tr["noise_z"]), fs, 2.0, 20.0) - 2.0) < 0.2
    # The stationary std is sigma (the fast components add their O(dt / tau) excess).
    assert abs(np.std(np.asarray(tr["noise_x"])) - 1.0) < 0.15


@pytest.mark.parametrize(
    "solver, mean_growth",
    [(None, lambda s2h: 1.0), (dfx.Heun(), lambda s2h: 1.0 + s2h / 2.0)],
    ids=["exp_euler_ito", "heun_stratonovich"],
)
def test_multiplicative_noise_ito_and_stratonovich(solver, mean_growth):
    # dx = sigma x dW: Itô keeps E[x] = x0; Stratonovich (Heun) gives x0 exp(sigma^2 t / 2),
    # per step the factor 1 + sigma^2 dt / 2 exactly.
    sigma, dt, R, steps = 0.5, 0.1, 4096, 20
    model = with_noise(bm.Linear(n_regions=R, gamma=0.0, init_x=1.0), {"x": MultiplicativeNoise(lambda t, s: s["x"], sigma=sigma)})
    x = np.asarray(_run(model, steps * dt, dt, solver=solver, monitors=["x"])["x"])[-1]
    expected = mean_growth(sigma**2 * dt) ** steps
    var_x = np.var(x)
    assert abs(np.mean(x) - expected) < Z * math.sqrt(var_x / R), (np.mean(x), expected)


# -- keys, chunks, vmap, gradients -------------------------------------------------------------


def test_keys_reproducible_chunks_exact_vmap_independent():
    model = with_noise(bm.Linear(n_regions=3, gamma=-0.1), {"x": OUProcess(0.2, tau=5.0)})
    # 2101 steps span three 1024-step blocks of the Brownian path; the chunks split them.
    run = lambda key, **kw: bm.simulate(model, 210.1, dt=0.1, key=key, **kw)
    a = run(KEY)
    b = run(KEY)
    c = run(KEY, chunk=700)
    for name in model.state_names:
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(a[name], c[name])
    keys = jr.split(KEY, 3)
    batched = jax.vmap(lambda k: run(k).ys["x"])(keys)
    np.testing.assert_allclose(batched[1], run(keys[1])["x"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(batched[0], batched[1])
    np.testing.assert_array_equal(a.final_state["x_noise"], a["x_noise"][-1])


@pytest.mark.parametrize("solver", [None, dfx.Heun()], ids=["exp_euler", "heun"])
def test_sigma_is_trainable_and_differentiable(solver):
    base = bm.Linear(n_regions=4, gamma=-0.5)

    def loss(sigma):
        model = with_noise(base, {"x": OUProcess(sigma, tau=5.0)})
        tr = bm.simulate(model, 5.0, dt=0.1, key=KEY, solver=solver, monitors=["x_noise"], adjoint=dfx.ForwardMode())
        return jnp.mean(tr["x_noise"] ** 2)

    sigma = 0.3
    # Forward mode compiles faster; reverse mode (jax.grad) gives the same number.
    value, grad = jax.jvp(loss, (sigma,), (1.0,))
    # The OU state starts at 0 and is linear in sigma: loss = c sigma^2.
    np.testing.assert_allclose(grad, 2 * value / sigma, rtol=1e-4)
    model = with_noise(base, {"x": OUProcess(Param(sigma, bounds=(0.0, None)), tau=5.0)})
    trainable, _ = partition_trainable(model)
    assert len(jax.tree_util.tree_leaves(trainable)) == 1


def test_network_coupling_noise():
    network = pytest.importorskip("brainmass_eqx.network")
    node = bm.Hopf(n_regions=3, a=-0.1)
    conn, delays = (1.0 - np.eye(3)) / 3, np.full((3, 3), 0.5)
    # brainmass's Network(noise=...): the noise joins the coupling current at the node's
    # coupling input, the same as attaching it to the network's coupling input.
    noisy = network.Network(node, conn, delays=delays, noise=OUProcess(0.1, tau=5.0))
    outside = with_coupling_noise(network.Network(node, conn, delays=delays), OUProcess(0.1, tau=5.0))
    assert noisy.is_stochastic and noisy.state_names == outside.state_names == ("x", "y", "x_noise")
    assert dict(noisy.node.enters) == dict(outside.enters) == {"x": "input"}
    tr = bm.simulate(noisy, 5.0, dt=0.1, key=KEY)
    assert np.all(np.asarray(tr["x_noise"][-1]) != 0) and np.all(np.isfinite(tr["x"]))


# -- attachment, units, structure ----------------------------------------------------------------


def test_attachment_names_units_and_keywords():
    hopf = bm.Hopf(n_regions=2)
    model = with_noise(hopf, noise_x=OUProcess(0.1), noise_y=None)
    assert model.state_names == ("x", "y", "x_noise") and model.observables == ("noise_x",)
    assert model.a is hopf.a  # attributes fall through to the model
    assert with_noise(hopf) is hopf
    noise, rest = split_noise_kwargs({"a": 0.1, "noise_x": OUProcess(0.1), "noise_y": None})
    assert set(noise) == {"x"} and rest == {"a": 0.1}
    assert set(with_coupling_noise(hopf, WhiteNoise(0.1)).noise) == {"x"}
    # A state that is not an input takes the noise on its derivative (TVB style).
    lorenz = with_noise(bm.Lorenz(), {"y": WhiteNoise(0.1), "x": OUProcess(0.1)})
    assert dict(lorenz.enters) == {"x": "input", "y": "derivative"}
    # Units: the target input's unit (JR's E input is a rate in Hz).
    jr_model = with_noise(
        bm.JansenRit(),
        {
            "E": OUProcess(unxt.Quantity(0.2, "kHz"), tau=unxt.Quantity(0.01, "s")),
            "M": WhiteNoise(unxt.Quantity(2.0, "mV s(1/2)")),
        },
    )
    np.testing.assert_allclose(jr_model.noise["E"].sigma, 200.0)
    np.testing.assert_allclose(jr_model.noise["E"].tau, 10.0)
    np.testing.assert_allclose(jr_model.noise["M"].sigma, 2.0 * math.sqrt(1000.0), rtol=1e-6)
    assert jr_model.state_units["E_noise"] == "Hz" and jr_model.observable_units["noise_E"] == "Hz"
    # A dimensionless rate input accepts sigma per sqrt(ms) as well.
    per = with_noise(hopf, {"x": WhiteNoise(unxt.Quantity(1.0, "1/s(1/2)"))})
    np.testing.assert_allclose(per.noise["x"].sigma, 1 / math.sqrt(1000.0), rtol=1e-6)
    # Adding noise to a noisy model merges.
    both = with_noise(model, {"y": BrownianNoise(0.1)})
    assert set(both.noise) == {"x", "y"} and both.state_names[-2:] == ("x_noise", "y_noise")


def test_white_noise_enters_through_the_input_jacobian():
    # JR's E input (Hz) enters Ev linearly; its M input sits inside the sigmoid.
    model = with_noise(bm.JansenRit(n_regions=2), {"E": WhiteNoise(3.0), "M": WhiteNoise(0.5)})
    state = {**model.init_state(), "M": jnp.array([0.1, 0.4]), "E": jnp.array([1.0, 2.0])}
    g = model.diffusion(0.0, state, {})["white"]
    inner = {k: state[k] for k in model.model.state_names}

    def response(name, h):
        return model.model.vector_field(0.0, inner, {name: jnp.full(2, h)})

    for name, sigma in (("E", 3.0), ("M", 0.5)):
        eps = 1e-2
        fd = {k: (response(name, eps)[k] - response(name, -eps)[k]) / (2 * eps) * sigma for k in inner}
        for k in inner:
            np.testing.assert_allclose(g[name][k], fd[k], rtol=2e-3, atol=1e-7)
    assert np.all(np.asarray(g["E"]["Ev"]) != 0) and np.all(np.asarray(g["E"]["Mv"]) == 0)


def test_epileptor_noise_on_x1_and_x2_enters_their_derivatives_as_brainmass():
    """brainmass's EpileptorStep(noise_x1=..., noise_x2=...) adds the noise to dx1/dt and
    dx2/dt, whatever the coupling gains. x1 and x2 are also Epileptor's inputs, scaled by
    Kvf, Ks and Kf (default 0), and the noise went there: it changed nothing, silently
    (max |x1(key 0) - x1(key 1)| was 0.0 over 5 ms)."""
    node = bm.Epileptor(n_regions=2)
    noisy = with_noise(node, noise_x1=WhiteNoise(0.05), noise_x2=OUProcess(0.05, tau=5.0))
    assert dict(noisy.enters) == {"x1": "derivative", "x2": "derivative"}
    runs = [bm.simulate(noisy, 5.0, dt=0.1, key=k) for k in jr.split(KEY)]
    for name in ("x1", "x2"):
        assert float(jnp.max(jnp.abs(runs[0][name] - runs[1][name]))) > 1e-3, name
    # Asked for, the input still takes it; the coupling current's noise stays on the input.
    assert dict(with_noise(node, {"x1": WhiteNoise(0.05)}, enters="input").enters) == {"x1": "input"}
    assert dict(with_coupling_noise(node, WhiteNoise(0.05)).enters) == {"x1": "input"}
    network = pytest.importorskip("brainmass_eqx.network")
    net = network.Network(node, 1.0 - np.eye(2), noise=WhiteNoise(0.05))
    assert dict(net.node.enters) == {"x1": "input"}


def test_double_precision(x64):
    path = BlockBrownianPath((4,), KEY, 0.1, block=8)
    np.testing.assert_array_equal(
        jax.jit(lambda k: BlockBrownianPath((4,), k, 0.1, block=8).step_normals(11))(KEY)[0],
        jr.normal(jr.fold_in(KEY, 1), (8, 1, 4), jnp.float64)[3, 0],
    )
    assert path.step_normals(11).dtype == jnp.float64
    model = with_noise(bm.Linear(n_regions=2), {"x": WhiteNoise(0.1)})
    tr = bm.simulate(model, 2.0, dt=0.1, key=KEY)
    assert tr["x"].dtype == jnp.float64 and np.all(np.isfinite(tr["x"]))


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: OUProcess(-0.1), "'sigma' must be non-negative, got -0.1"),
        (lambda: OUProcess(np.nan), "'sigma' must be finite, got nan"),
        (lambda: OUProcess(0.1, tau=0.0), "'tau' must be positive, got 0.0"),
        (lambda: OUProcess(0.1, tau=-np.inf), "'tau' must be finite, got -inf"),
        (lambda: OUProcess(0.1, tau=unxt.Quantity(-2.0, "ms")), "'tau' must be positive"),
        (lambda: WhiteNoise(-1.0), "WhiteNoise: 'sigma'"),
        (lambda: BrownianNoise(np.array([0.1, -0.1])), "BrownianNoise: 'sigma'"),
        (lambda: PinkNoise(-1.0), "PinkNoise: 'sigma'"),
        (lambda: MultiplicativeNoise(lambda t, s: s["x"], sigma=-1.0), "MultiplicativeNoise: 'sigma'"),
        (lambda: ColoredNoise(1.0, beta=3.0), "'beta' must be a number in \\[-2, 2\\]"),
        (lambda: ColoredNoise(1.0, f_min=10.0, f_max=1.0), "need 0 < f_min < f_max"),
        (lambda: ColoredNoise(1.0, f_min="1"), r"'f_min' and 'f_max' must be numbers in Hz, got '1', 100.0\."),
        (lambda: ColoredNoise(1.0, per_decade=np.int64(0)), r"'per_decade' must be an int >= 1, got 0\."),
        (lambda: ColoredNoise(1.0, per_decade=2.0), r"'per_decade' must be an int >= 1, got 2.0\."),
        (lambda: BlockBrownianPath((2,), KEY, 0.1, levy_area=dfx.SpaceTimeTimeLevyArea),
         "'levy_area' must be diffrax.BrownianIncrement or diffrax.SpaceTimeLevyArea"),
        (lambda: BlockBrownianPath((2,), KEY, 0.1, block=0), r"'block' must be an int >= 1 with block \* size < 2\*\*32, got 0\."),
        (lambda: MultiplicativeNoise(0.3), "'diffusion' must be a callable"),
    ],
)
def test_bad_noise_specs(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_numpy_scalars_are_numbers_for_the_static_settings():
    # np.float32 / np.int64 (a beta from a float32 array, a per_decade from np.arange) were
    # refused as "must be a number in [-2, 2], got np.float32(0.5)".
    given = ColoredNoise(1.0, beta=np.float32(0.5), f_min=np.int64(2), f_max=np.float32(50.0), per_decade=np.int64(3))
    plain = ColoredNoise(1.0, beta=0.5, f_min=2.0, f_max=50.0, per_decade=3)
    assert (given.beta, given.f_min, given.f_max, given.per_decade) == (0.5, 2, 50.0, 3)
    assert type(given.per_decade) is int and type(given.beta) is float
    np.testing.assert_array_equal(given._taus_and_weights(), plain._taus_and_weights())
    path = BlockBrownianPath((2,), KEY, np.float32(0.5), block=np.int64(8))
    assert (path.dt, path.block) == (0.5, 8)


def test_bad_attachment():
    hopf = bm.Hopf(n_regions=2)
    with pytest.raises(ValueError, match=r"noise target 'q'.*valid targets are \['x', 'y'\]"):
        with_noise(hopf, {"q": OUProcess(0.1)})
    with pytest.raises(ValueError, match=r"noise target 'w'.*valid targets are \['x', 'y', 'z'\]"):
        with_noise(bm.Lorenz(), noise_w=WhiteNoise(0.1))
    with pytest.raises(TypeError, match=r"noise\['x'\] must be a noise spec"):
        with_noise(hopf, {"x": 0.1})
    # Most models' coupling input is 'coupling'; Jansen-Rit's is 'M': the message says so.
    with pytest.raises(ValueError, match=r"noise target 'coupling': JansenRit has no input or state of that name "
                       r"\(its coupling enters input 'M': noise_M=... adds to it\)"):
        with_noise(bm.JansenRit(), noise_coupling=WhiteNoise(0.1))
    with pytest.raises(TypeError, match=r"got OUProcess: write with_noise\(model, \{'x': OUProcess\(...\)\}\) or "
                       r"with_noise\(model, noise_x=OUProcess\(...\)\); valid targets are \['x', 'y'\]"):
        with_noise(hopf, OUProcess(0.1))
    with pytest.raises(bm.UnitError, match=r"noise\['E'\] \(OUProcess\)\.sigma.*'Hz' \(the unit of its target\)"):
        with_noise(bm.JansenRit(), {"E": OUProcess(unxt.Quantity(1.0, "mV"))})
    # A time is known to be one without the target: refused as the spec is built.
    with pytest.raises(bm.UnitError, match=r"OUProcess\.tau has unit 'mV', but it must be in 'ms' \(a time\)"):
        with_noise(hopf, {"x": OUProcess(0.1, tau=unxt.Quantity(1.0, "mV"))})
    with pytest.raises(ValueError, match=r"noise\['x'\] \(OUProcess\)\.sigma has shape \(3,\)"):
        with_noise(hopf, {"x": OUProcess(np.ones(3))})
    with pytest.raises(ValueError, match="enters\\['y'\\] = 'input', but Lorenz has no input 'y'"):
        with_noise(bm.Lorenz(), {"y": OUProcess(0.1)}, enters="input")
    with pytest.raises(ValueError, match="enters\\['x'\\] must be 'input' or 'derivative'"):
        with_noise(hopf, {"x": OUProcess(0.1)}, enters={"x": "state"})
    with pytest.raises(ValueError, match=r"\['x'\] already carry noise"):
        with_noise(with_noise(hopf, noise_x=OUProcess(0.1)), noise_x=WhiteNoise(0.1))
    with pytest.raises(TypeError, match="unexpected keyword 'sigma'"):
        with_noise(hopf, sigma=0.1)


def test_missing_key_is_a_clear_error():
    model = with_noise(bm.Hopf(n_regions=2), {"x": OUProcess(0.1)})
    with pytest.raises(ValueError, match=r"key: Hopf with noise on \['x'\] is stochastic; pass a PRNG key"):
        bm.simulate(model, 1.0, dt=0.1)
    with pytest.raises(ValueError, match="dt: Noisy.terms needs the step"):
        model.terms(KEY)


def test_a_noisy_run_continued_with_the_same_key_goes_on_with_new_noise():
    """y0=trajectory with the same key continues the noise (the steps after the first run's),
    as one uninterrupted run; it used to replay the first run's increments."""
    model = with_noise(bm.Hopf(n_regions=4, a=-0.1), {"x": WhiteNoise(0.1), "y": OUProcess(0.1, tau=5.0)})
    key = jr.key(0)
    whole = bm.simulate(model, 20.0, dt=0.1, key=key)
    first = bm.simulate(model, 10.0, dt=0.1, key=key)
    second = bm.simulate(model, 10.0, dt=0.1, key=key, y0=first)
    np.testing.assert_allclose(np.asarray(second["x"]), np.asarray(whole["x"][100:]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(second["y_noise"]), np.asarray(whole["y_noise"][100:]), atol=1e-6)


def test_white_noise_on_a_nonlinear_coupling_input_sees_the_coupling_current():
    """The noise coefficient of white noise on an input inside a nonlinearity (Wilson-Cowan's
    rE) is df/dI * sigma at the input the node receives, coupling current included."""
    W = np.ones((3, 3)) - np.eye(3)
    net = bm.Network(bm.WilsonCowan(3), W, k=1.5, coupling="additive", noise=WhiteNoise(0.01))
    state = {"rE": jnp.full(3, 0.45), "rI": jnp.full(3, 0.2)}
    coupling = net.instantaneous_coupling(state)
    drive = {"rE": jnp.full(3, 0.5)}
    noise_term = net.terms(jr.key(0), dt=0.1).terms[1]
    got = noise_term.model.diffusion(0.0, state, {**drive, net._key: coupling})["white"]["rE"]["rE"]
    want = net.node.diffusion(0.0, state, {"rE": drive["rE"] + coupling["rE"]})["white"]["rE"]["rE"]
    without = net.node.diffusion(0.0, state, drive)["white"]["rE"]["rE"]
    assert np.abs(np.asarray(want) - np.asarray(without)).max() > 0.1 * np.abs(np.asarray(want)).max()
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)


def test_exponential_euler_keeps_the_ou_variance_at_a_coarse_step():
    # sigma^2 / 2 exactly at any dt: the noise of a step is scaled to the spread of the
    # linearised increment (the plain increment, brainmass's, gives 0.79 at dt = tau / 2).
    model = with_noise(bm.Linear(n_regions=512, gamma=-1.0), {"x": OUProcess(1.0, tau=2.0)})
    eta = np.asarray(_run(model, 2000.0, 1.0, transient=100, monitors=["noise_x"])["noise_x"], np.float64)
    assert abs(np.mean(eta**2) - 0.5) < 0.02, np.mean(eta**2)


def test_adaptive_noisy_run_with_an_ode_solver_is_refused_naming_the_sde_solvers():
    # An adaptive controller scales the step by the solver's strong order, which an ODE
    # solver lacks: diffrax's refusal named neither the solver nor what to use instead.
    noisy = bm.with_noise(bm.Hopf(1), noise_x=bm.WhiteNoise(0.01))
    pid = dfx.PIDController(rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match=r"solver Tsit5 has no strong order .*diffrax\.Heun\(\)"):
        _run(noisy, 1.0, 0.1, solver=dfx.Tsit5(), stepsize_controller=pid)
    with pytest.raises(ValueError, match=r"solver Dopri5 has no strong order"):
        _run(noisy, 1.0, 0.1, solver=dfx.Dopri5(), stepsize_controller=dfx.ClipStepSizeController(pid))
    # The SDE solvers the message names run, and so does an ODE solver given the order.
    assert np.isfinite(_run(noisy, 1.0, 0.1, solver=dfx.Heun(), stepsize_controller=pid)["x"]).all()
    given = dfx.PIDController(rtol=1e-3, atol=1e-3, error_order=1.0)
    assert np.isfinite(_run(noisy, 1.0, 0.1, solver=dfx.Tsit5(), stepsize_controller=given)["x"]).all()


def test_a_quantity_noise_field_is_stored_as_the_plain_number_would_be():
    """Quantity(1, '') holds an int: a noise field given so was stored as a weakly typed
    int32, and eqx.filter_grad returned None for it (no gradient, no error)."""
    import equinox as eqx

    hopf = bm.Hopf(2, a=0.2, init_x=0.5)
    key = jr.key(0)
    grad = eqx.filter_grad(lambda m: bm.simulate(m, 3.0, dt=0.1, key=key)["x"].sum())
    plain = grad(with_noise(hopf, {"x": OUProcess(sigma=1.0, tau=10.0)})).noise["x"]
    noisy = with_noise(hopf, {"x": OUProcess(sigma=unxt.Quantity(1, ""), tau=unxt.Quantity(10, "ms"))})
    for name in ("sigma", "tau"):
        value = getattr(noisy.noise["x"], name)
        assert value.dtype == jnp.result_type(float) and not value.weak_type, name
    got = grad(noisy).noise["x"]
    for name in ("sigma", "tau"):
        assert getattr(got, name) is not None, name
        np.testing.assert_allclose(getattr(got, name), getattr(plain, name), rtol=1e-5)


# -- Itô / Stratonovich -----------------------------------------------------------------------


def _sde_warnings(model, solver, **kwargs):
    """The "not marked as converging" warnings of a short run (diffrax's or ours)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bm.simulate(model, 1.0, dt=0.1, solver=solver, key=jr.key(0), **kwargs)
    return [str(w.message) for w in caught if "not marked as converging" in str(w.message)]


def _two_regions():
    return 1.0 - np.eye(2)


def test_additive_noise_on_a_delayed_network_does_not_warn_about_ito_or_stratonovich():
    # diffrax looks one wrapper deep: `_DelayedCoupling(BlockIncrements(UnrolledStages(Heun)))`
    # warned "`_DelayedCoupling` is not marked as converging to either the Itô or the
    # Stratonovich solution" under saveat, though Heun is Stratonovich. For additive noise
    # (white noise on Hopf's x) the two solutions are one, so no solver needs a warning.
    w = _two_regions()
    net = bm.Network(bm.Hopf(2, a=-0.05), w, delays=0.7 * w, k=0.5, noise=WhiteNoise(0.05))
    saveat = np.arange(1, 11) * 0.1
    assert _sde_warnings(net, dfx.Heun(), saveat=saveat) == []
    assert _sde_warnings(net, bm.RK4(), saveat=saveat) == []
    from brainmass_eqx._wrapping import sde_convention

    assert sde_convention(net.wrap_solver(dfx.Heun(), dt=0.1)) == "stratonovich"
    assert sde_convention(net.wrap_solver(bm.ExponentialEuler(), dt=0.1)) == "ito"


def test_multiplicative_noise_warns_only_for_a_solver_marked_neither_ito_nor_stratonovich():
    # White noise on Wilson-Cowan's rE enters inside the sigmoid: its coefficient is the
    # slope at the current state, so the Itô and Stratonovich solutions differ.
    noisy = with_noise(bm.WilsonCowan(2), noise_rE=WhiteNoise(0.05))
    assert _sde_warnings(noisy, dfx.Heun()) == []
    assert _sde_warnings(noisy, None) == []  # ExponentialEuler: Itô
    (message,) = _sde_warnings(noisy, bm.RK4())
    assert message.startswith("solver RK4 is not marked") and "multiplicative" in message


def test_multiplicative_noise_is_read_from_the_diffusion_data_flow():
    from brainmass_eqx._simulate import _make_source
    from brainmass_eqx.noise import multiplicative_noise

    cases = {
        "hopf_white": (with_noise(bm.Hopf(2), noise_x=WhiteNoise(0.05)), False),
        "hopf_ou": (with_noise(bm.Hopf(2), noise_x=OUProcess(0.05, tau=5.0)), False),
        "hopf_derivative": (with_noise(bm.Hopf(2), {"y": WhiteNoise(0.05)}), False),
        "wc_white": (with_noise(bm.WilsonCowan(2), noise_rE=WhiteNoise(0.05)), True),
        "wc_ou": (with_noise(bm.WilsonCowan(2), noise_rE=OUProcess(0.05, tau=5.0)), False),
        # sigma * x**2 has a zero slope at x = 0: the data flow, not the values, decides.
        "hopf_x2": (with_noise(bm.Hopf(2), {"x": MultiplicativeNoise(lambda t, s: s["x"] ** 2, 0.1)}), True),
    }
    for name, (model, expected) in cases.items():
        terms = model.terms(jr.key(0), dt=0.1, t1=1.0, solver=dfx.Heun())
        y0 = {k: jnp.zeros_like(v) for k, v in model.init_state(jr.key(1)).items()}
        assert multiplicative_noise(terms, 0.0, y0, _make_source(model, None, 10, 0.1)) is expected, name


# Found by coverage of the default suite; all raised before anything is traced.
@pytest.mark.parametrize(
    "error,message,build",
    [
        (ValueError, r"noise on 'x' given twice \(in `noise` and as noise_x=\)",
         lambda: with_noise(bm.Hopf(2), {"x": WhiteNoise(0.1)}, noise_x=WhiteNoise(0.1))),
        (TypeError, r"with_noise: `model` must be a brainmass_eqx model, got object",
         lambda: with_noise(object(), noise_x=WhiteNoise(0.1))),
        (ValueError, r"enters\['coupling'\] = 'derivative', but ReducedWongWang has no state 'coupling'; "
                     r"its states are \['S'\]",
         lambda: with_noise(bm.ReducedWongWang(2), {"coupling": WhiteNoise(0.1)}, enters="derivative")),
        (ValueError, r"enters\['y'\] = 'input', but Lorenz has no input 'y'; its inputs are \['x'\]",
         lambda: with_noise(bm.Lorenz(2), {"y": WhiteNoise(0.1)}, enters="input")),
    ],
    ids=["given-twice", "not-a-model", "derivative-not-a-state", "input-not-an-input"],
)  # fmt: skip
def test_with_noise_refusals_that_no_other_test_reaches(error, message, build):
    with pytest.raises(error, match=message):
        build()


def test_noise_specs_check_their_fields_at_construction():
    # A string tau or sigma, or complex numbers, were kept until the run (a tau in mV until
    # the spec was attached: test_bad_attachment). Both are known to be wrong when the spec is built.
    import unxt

    with pytest.raises(TypeError, match=r"'OUProcess.tau' must be a number, .* got the string 'x'"):
        bm.noise.OUProcess(sigma=0.1, tau="x")
    with pytest.raises(TypeError, match=r"'WhiteNoise.sigma' holds complex numbers"):
        bm.noise.WhiteNoise(sigma=1j)
    assert bm.noise.OUProcess(sigma=0.1, tau=unxt.Quantity(0.01, "s")).tau is not None  # a time in s is fine
