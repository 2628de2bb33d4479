"""Tests for brainmass_eqx.observation: Balloon-Windkessel BOLD, HRF kernels and HRFBold,
TemporalAverage, EEG/MEG lead fields and LeadfieldReadout.

brainmass 0.1.1 reference values come from ``tests/data/reference/observation/``
(written by ``tools/reference_cases/observation.py`` inside the brainmass environment);
the Balloon-Windkessel ODE is also checked against an independent SciPy integration.
"""

from __future__ import annotations

import json
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt as u
from _jax_versions import enable_x64
from scipy.integrate import solve_ivp

import brainmass_eqx as bm
import brainmass_eqx.observation as obs

REF = pathlib.Path(__file__).parent / "data" / "reference" / "observation"


def _load(name):
    with np.load(REF / name) as data:
        out = dict(data.items())
    if "meta" in out:
        out["meta"] = json.loads(str(out["meta"]))
    return out


def _maxabs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


KERNELS = {
    "FirstOrderVolterra": obs.FirstOrderVolterraHRF,
    "Gamma": obs.GammaHRF,
    "DoubleExponential": obs.DoubleExponentialHRF,
    "MixtureOfGammas": obs.MixtureOfGammasHRF,
}


# --------------------------------------------------------------------------------------
# Balloon-Windkessel against SciPy
# --------------------------------------------------------------------------------------

BW = dict(gamma=0.41, kappa=0.65, alpha=0.32, tau=0.98, rho=0.34, V0=0.02)


def _bw_rhs(t, y, z):
    s, f, v, q = y
    g, k, a, tau, rho = BW["gamma"], BW["kappa"], BW["alpha"], BW["tau"], BW["rho"]
    return [
        z - k * s - g * (f - 1.0),
        s,
        (f - v ** (1.0 / a)) / tau,
        (f * (1.0 - (1.0 - rho) ** (1.0 / f)) / rho - v ** (1.0 / a) * q / v) / tau,
    ]


def _bw_bold(y):
    _, _, v, q = y
    rho = BW["rho"]
    return BW["V0"] * (7 * rho * (1 - q) + 2 * (1 - q / v) + (2 * rho - 0.2) * (1 - v))


def _scipy(z, t_span, y0, t_eval=None):
    return solve_ivp(
        _bw_rhs, t_span, y0, args=(z,), method="RK45", rtol=1e-10, atol=1e-12, t_eval=t_eval
    )


@pytest.fixture(scope="module")
def impulse_reference():
    """z = 1 for 0.2 s from rest, then 0; SciPy states every 0.5 s up to 20 s."""
    on = _scipy(1.0, (0.0, 0.2), [0.0, 1.0, 1.0, 1.0])
    ts = np.arange(1, 41) * 0.5
    off = _scipy(0.0, (0.2, 20.0), on.y[:, -1], t_eval=ts)
    return off.y


def _impulse_signal(dt_ms):
    z = np.zeros((int(round(20_000 / dt_ms)), 1), np.float32)
    z[: int(round(200 / dt_ms))] = 1.0
    return z


def test_balloon_impulse_response_matches_scipy(impulse_reference):
    bold, final = obs.bold_from_signal(_impulse_signal(1.0), 1.0, tr=500.0, return_state=True)
    assert bold.shape == (40, 1)
    assert _maxabs(bold[:, 0], _bw_bold(impulse_reference)) < 1e-4
    for i, name in enumerate(obs.BalloonWindkessel.state_names):
        assert abs(float(final[name][0]) - impulse_reference[i, -1]) < 1e-4
    # the response is not trivially small: its peak is about 7e-3
    assert float(jnp.max(bold)) > 5e-3


def test_balloon_plain_step_matches_scipy(impulse_reference):
    """`step` (brainmass's plain Heun, no compensation) at dt = 1 ms, as run in a loop."""
    model = obs.BalloonWindkessel()
    z = jnp.asarray(_impulse_signal(1.0)).reshape(40, 500, 1)

    def block(state, zb):
        state = jax.lax.fori_loop(0, 500, lambda i, s: model.step(s, zb[i], 1.0), state)
        return state, model.bold(state)

    _, bold = jax.lax.scan(block, model.init_state(1), z)
    assert _maxabs(bold[:, 0], _bw_bold(impulse_reference)) < 1e-4


def test_balloon_steady_state_matches_scipy_and_analytic():
    z0 = 0.5
    bold, final = obs.bold_from_signal(
        np.full((60_000, 1), z0, np.float32), 1.0, tr=1000.0, return_state=True
    )
    sol = _scipy(z0, (0.0, 60.0), [0.0, 1.0, 1.0, 1.0], t_eval=np.arange(1, 61) * 1.0)
    assert _maxabs(bold[:, 0], _bw_bold(sol.y)) < 1e-4
    f = 1.0 + z0 / BW["gamma"]
    v = f ** BW["alpha"]
    q = v * (1.0 - (1.0 - BW["rho"]) ** (1.0 / f)) / BW["rho"]
    got = [float(final[n][0]) for n in "sfvq"]
    np.testing.assert_allclose(got, [0.0, f, v, q], atol=1e-4)
    np.testing.assert_allclose(got, sol.y[:, -1], atol=1e-4)


def test_balloon_compensated_float32_at_neural_dt():
    """At dt = 0.1 ms the compensated sum keeps float32 at the SciPy answer; the plain
    float32 sum stalls visibly short of it (the reason for the compensation)."""
    z0, n = 0.5, 200_000  # 20 s
    model = obs.BalloonWindkessel()
    ref = _scipy(z0, (0.0, 20.0), [0.0, 1.0, 1.0, 1.0]).y[:, -1]

    @jax.jit(static_argnums=0)
    def run(compensated):
        def body(i, carry):
            state, comp = carry
            if compensated:
                return model.step_compensated(state, comp, z0, 0.1)
            return model.step(state, z0, 0.1), comp

        s0 = model.init_state(1)
        return jax.lax.fori_loop(0, n, body, (s0, jax.tree.map(jnp.zeros_like, s0)))[0]

    comp = run(True)
    plain = run(False)
    err_comp = max(abs(float(comp[k][0]) - ref[i]) for i, k in enumerate("sfvq"))
    err_plain = max(abs(float(plain[k][0]) - ref[i]) for i, k in enumerate("sfvq"))
    assert err_comp < 1e-6
    if jnp.result_type(float) == jnp.float32:
        assert err_plain > 10 * err_comp


def test_balloon_step_matches_brainmass_heun():
    """brainmass's BOLDSignal ODE and Heun step (x reset to 0 after its init at 1)."""
    ref = _load("balloon.npz")
    params = dict(ref["meta"]["custom"])
    params["kappa"] = params.pop("k")
    every = int(ref["record_every"])
    z = jnp.asarray(ref["z"])
    for tag, model in (
        ("default", obs.BalloonWindkessel()),
        ("custom", obs.BalloonWindkessel(**params)),
    ):

        def body(s, zi, model=model):
            s = model.step(s, zi, 1.0)  # brainmass's unitless dt 1e-3 is 1e-3 s = 1 ms
            return s, s

        _, traj = jax.lax.scan(body, model.init_state(3), z)
        for name in "sfvq":
            assert _maxabs(traj[name][every - 1 :: every], ref[f"{tag}__{name}"]) < 1e-6, (
                tag,
                name,
            )
        # brainmass's bold() has q/rho where the literature (and we) have q/v
        q, v, rho = ref[f"{tag}__q"], ref[f"{tag}__v"], float(model.rho)
        bm = model.V0 * (model.k1 * (1 - q) + 2 * (1 - q / rho) + model.k3 * (1 - v))
        assert _maxabs(bm, ref[f"{tag}__bold_brainmass"]) < 1e-6
        ours = model.bold({"s": 0.0, "f": 1.0, "v": v, "q": q})
        assert (
            _maxabs(ours, model.V0 * (model.k1 * (1 - q) + 2 * (1 - q / v) + model.k3 * (1 - v)))
            < 1e-7
        )


def test_balloon_rest_state_is_fixed_point_and_bold_zero():
    model = obs.BalloonWindkessel()
    rest = model.init_state(4)
    d = model.vector_field(0.0, rest, 0.0)
    for name in model.state_names:
        assert float(jnp.max(jnp.abs(d[name]))) < 1e-6
    assert float(jnp.max(jnp.abs(model.bold(rest)))) < 1e-7
    assert model.init_state((2, 3))["q"].shape == (2, 3)


def test_a_wrong_dimension_in_the_observation_models_is_a_unit_error():
    # These raised a plain ValueError, which `except bm.UnitError` (what the models,
    # simulate and Network raise for a wrong dimension) let through.
    with pytest.raises(bm.UnitError, match=r"`gamma` has unit s, which cannot be converted to Hz"):
        obs.BalloonWindkessel(gamma=u.Quantity(0.41, "s"))
    with pytest.raises(bm.UnitError, match=r"`tau` has unit Hz"):
        obs.GammaHRF(tau=u.Quantity(1.0, "Hz"))
    with pytest.raises(bm.UnitError, match=r"`L` has unit"):
        obs.EEGLeadField(u.Quantity(np.ones((2, 3)), "s"))
    with pytest.raises(bm.UnitError, match=r"`S` has unit s"):
        obs.EEGLeadField(np.ones((2, 3)))(u.Quantity(np.ones((4, 2)), "s"))


def test_balloon_units_dt_and_parameters():
    model = obs.BalloonWindkessel(tau=u.Quantity(980.0, "ms"), gamma=u.Quantity(0.41, "Hz"))
    np.testing.assert_allclose(float(model.tau), 0.98, rtol=1e-6)
    s0 = model.init_state(2)
    a = model.step(s0, 1.0, 0.5)
    b = model.step(s0, 1.0, u.Quantity(0.5, "ms"))
    c = model.step(s0, 1.0, u.Quantity(5e-4, "s"))
    for name in "sfvq":
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6)
        np.testing.assert_allclose(a[name], c[name], rtol=1e-6)
    # 0.5 ms of drive z = 1 moves s by about 5e-4 (per-second dynamics)
    np.testing.assert_allclose(a["s"], 5e-4, rtol=1e-3)
    # TR given as a Quantity; trailing steps shorter than one TR are dropped
    z = np.full((2_050, 2), 0.2, np.float32)
    b1 = obs.bold_from_signal(z, u.Quantity(1.0, "ms"), tr=u.Quantity(0.5, "s"))
    b2 = obs.bold_from_signal(z, 1.0, tr=500.0)
    assert b1.shape == (4, 2)
    np.testing.assert_allclose(b1, b2)
    # The model applied to a signal is bold_from_signal with its parameters (was "not callable").
    slow = obs.BalloonWindkessel(tau=1.5)
    np.testing.assert_array_equal(slow(z, 1.0, tr=500.0), obs.bold_from_signal(z, 1.0, tr=500.0, model=slow))
    assert not np.allclose(slow(z, 1.0, tr=500.0), b2)
    # without tr, every step is sampled and equals a per-step TR
    np.testing.assert_allclose(
        obs.bold_from_signal(z[:20], 1.0), obs.bold_from_signal(z[:20], 1.0, tr=u.Quantity(1.0, "ms")), rtol=1e-6
    )


def _check_against_central_difference(loss, model, get, grad, rel_step=1e-2, rtol=2e-3):
    """A reverse-mode gradient against a central difference of the (jitted) loss in the
    leaf `get(model)`."""
    x0 = get(model)
    h = rel_step * float(jnp.abs(x0))
    up = loss(eqx.tree_at(get, model, x0 + h))
    down = loss(eqx.tree_at(get, model, x0 - h))
    fd = (float(up) - float(down)) / (2 * h)
    assert abs(fd) > 0
    np.testing.assert_allclose(float(grad), fd, rtol=rtol)


def test_bold_from_signal_jit_vmap_grad():
    z = 0.3 * (1.0 + jnp.sin(jnp.arange(3_000.0) / 300.0))[:, None] * jnp.ones((1, 2))

    @eqx.filter_jit
    def loss(model):
        return jnp.sum(obs.bold_from_signal(z, 2.0, tr=200.0, model=model) ** 2)

    model = obs.BalloonWindkessel()
    grad = eqx.filter_grad(loss)(model)
    for name in ("tau", "kappa", "rho"):
        get = lambda m, name=name: getattr(m, name)
        _check_against_central_difference(loss, model, get, get(grad))

    taus = jnp.array([0.8, 0.98, 1.2])
    batched = jax.vmap(
        lambda t: obs.bold_from_signal(
            z, 2.0, tr=200.0, model=eqx.tree_at(lambda m: m.tau, model, t)
        )
    )(taus)
    assert batched.shape == (3, 30, 2)
    # per-region parameters broadcast against the regions
    per_region = obs.BalloonWindkessel(tau=jnp.array([0.8, 1.2]))
    out = obs.bold_from_signal(z, 2.0, tr=200.0, model=per_region)
    np.testing.assert_allclose(out[:, 0], batched[0, :, 0], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(out[:, 1], batched[2, :, 1], rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------------------
# HRF kernels and HRFBold against brainmass
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("tag", ["default", "custom"])
def test_kernels_match_brainmass(name, tag):
    ref = _load("hrf_kernels.npz")
    kw = ref["meta"]["custom"][name] if tag == "custom" else {}
    kernel = KERNELS[name](**kw)
    t = u.Quantity(jnp.asarray(ref["t_ms"]), "ms")
    expected = ref[f"{name}__{tag}"]
    assert _maxabs(kernel(t), expected) <= 1e-6 * max(1.0, float(np.max(np.abs(expected))))


def test_kernel_time_conventions():
    ref = _load("hrf_kernels.npz")
    k = obs.FirstOrderVolterraHRF()
    # plain numbers are ms (brainmass's rule)
    assert _maxabs(k(jnp.asarray(ref["t_ms"])), ref["FirstOrderVolterra__plain_ms"]) < 1e-7
    t_s = jnp.asarray(ref["t_ms"]) / 1000.0
    assert _maxabs(k(u.Quantity(t_s, "s")), ref["FirstOrderVolterra__default"]) < 1e-7
    # parameters given as Quantities are converted to seconds / Hz
    a = obs.DoubleExponentialHRF(tau_1=u.Quantity(7220.0, "ms"), f_1=u.Quantity(30.0, "mHz"))
    assert _maxabs(a(jnp.asarray(ref["t_ms"])), ref["DoubleExponential__default"]) < 1e-6
    assert obs.GammaHRF(duration=u.Quantity(30.0, "s")).duration == 30_000.0


def test_kernels_are_differentiable():
    t = jnp.linspace(0.0, 20_000.0, 101)
    grad = eqx.filter_jit(eqx.filter_grad(lambda k: jnp.sum(k(t) ** 2)))
    for cls in KERNELS.values():
        leaves = jax.tree.leaves(grad(cls()))
        assert leaves and all(bool(jnp.isfinite(g)) for g in leaves), cls.__name__


@pytest.fixture(scope="module")
def hrf_ref():
    return _load("hrf_bold.npz")


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_hrfbold_matches_brainmass_and_fft_equals_direct(hrf_ref, mode):
    out = {}
    for method in ("fft", "direct"):
        out[method] = obs.HRFBold(convolution_mode=mode, method=method)(
            hrf_ref["signal"], float(hrf_ref["dt_ms"])
        )
        expected = hrf_ref[f"bold__{mode}__{method}"]
        assert out[method].shape == expected.shape
        assert _maxabs(out[method], expected) < 1e-6 * float(np.max(np.abs(expected)))
    assert float(jnp.max(jnp.abs(out["fft"]))) > 1.0
    assert _maxabs(out["fft"], out["direct"]) < 1e-5


def test_hrfbold_kernels_history_custom_match_brainmass(hrf_ref):
    x, dt = hrf_ref["signal"], u.Quantity(float(hrf_ref["dt_ms"]), "ms")
    for name in ("Gamma", "DoubleExponential", "MixtureOfGammas"):
        expected = hrf_ref[f"bold__kernel_{name}"]
        y = obs.HRFBold(kernel=KERNELS[name]())(x, dt)
        assert _maxabs(y, expected) < 1e-6 * float(np.max(np.abs(expected))), name
    y = obs.HRFBold(history=hrf_ref["history"])(x, dt)
    assert _maxabs(y, hrf_ref["bold__history"]) < 1e-6 * float(np.max(np.abs(y)))
    c = hrf_ref["meta"]["custom"]
    model = obs.HRFBold(
        k_1=c["k_1"],
        V_0=c["V_0"],
        period=c["period_ms"],
        downsample_period=u.Quantity(c["downsample_period_ms"], "ms"),
        kernel=obs.FirstOrderVolterraHRF(duration=u.Quantity(c["duration_ms"] / 1000.0, "s")),
        convolution_mode=c["convolution_mode"],
    )
    y = model(u.Quantity(jnp.asarray(x), "Hz"), dt)  # only the numbers of a Quantity are used
    assert y.shape == hrf_ref["bold__custom"].shape
    assert _maxabs(y, hrf_ref["bold__custom"]) < 1e-6 * float(np.max(np.abs(y)))


def test_hrfbold_grad_jit():
    # The mixture of gammas has no peak normalisation (a max over the grid, whose kinks
    # would spoil a float32 central difference); its t = 0 sample, (l t)^(a - 1) at 0,
    # is where a NaN gradient would come from.
    x = 1.0 + 0.3 * jnp.sin(jnp.arange(4_000.0) / 200.0)[:, None] * jnp.ones((1, 2))
    model = obs.HRFBold(kernel=obs.MixtureOfGammasHRF(duration=4_000.0), period=500.0)

    @eqx.filter_jit
    def loss(m):
        return jnp.sum(m(x, 1.0) ** 2)

    g = eqx.filter_grad(loss)(model)
    for leaf in jax.tree.leaves(g):
        assert bool(jnp.isfinite(leaf)) and float(jnp.abs(leaf)) > 0
    for get in (lambda m: m.kernel.a_1, lambda m: m.kernel.l, lambda m: m.k_1):
        _check_against_central_difference(loss, model, get, get(g), rel_step=1e-3)


def test_hrf_convolution_correlates_with_balloon_windkessel():
    """A slow drive: the HRF-convolution BOLD and the ODE BOLD correlate > 0.95."""
    dt, n = 10.0, 18_000  # 180 s at 10 ms
    t = np.arange(n) * dt / 1000.0
    z = 0.1 * (1.0 + np.sin(2 * np.pi * 0.03 * t) + 0.6 * np.sin(2 * np.pi * 0.07 * t + 1.0))
    z = z[:, None].astype(np.float32)
    ode = np.asarray(obs.bold_from_signal(z, dt, tr=1000.0))[:, 0]
    conv = np.asarray(obs.HRFBold(period=1000.0, downsample_period=10.0)(z, dt))[:, 0]
    skip = 30  # the first 30 s: both start from rest
    best = max(
        np.corrcoef(ode[skip + lag : skip + lag + 120], conv[skip : skip + 120])[0, 1]
        for lag in range(-5, 6)
    )
    assert best > 0.95


def test_temporal_average_matches_brainmass():
    ref = _load("temporal_average.npz")
    x = jnp.asarray(ref["signal"])
    assert _maxabs(obs.TemporalAverage(period=4.0)(x, 0.1), ref["avg_4ms_dt01"]) < 1e-6
    yq = obs.TemporalAverage(period=u.Quantity(4.0, "ms"))(
        u.Quantity(x, "mV"), u.Quantity(0.1, "ms")
    )
    assert isinstance(yq, u.Quantity) and yq.unit == u.unit(str(ref["avg_4ms_dt01_quantity_unit"]))
    assert _maxabs(yq.value, ref["avg_4ms_dt01_quantity"]) < 1e-6
    # brainmass rounds a period off the step grid (1 ms at dt 0.3: 3 steps); so do we, saying so.
    with pytest.warns(UserWarning, match=r"`period` = 1 ms is not a whole number of steps of `dt` = 0.3 ms \(3.33333 steps\); "
                      r"as TVB and brainmass do, using 3 steps \(0.9 ms\)\.") as caught:
        assert _maxabs(obs.TemporalAverage(period=1.0)(x, 0.3), ref["avg_1ms_dt03"]) < 1e-6
    assert caught[0].filename == __file__
    assert obs.TemporalAverage(period=5.0)(jnp.arange(20.0)[:, None], 1.0)[:, 0].tolist() == [
        2.0,
        7.0,
        12.0,
        17.0,
    ]


# --------------------------------------------------------------------------------------
# Lead fields
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lf_ref():
    return _load("leadfield.npz")


def test_leadfield_models_match_brainmass(lf_ref):
    L, S, Sb = lf_ref["L"], lf_ref["S"], lf_ref["S_batched"]
    Sq = u.Quantity(jnp.asarray(S), "mV")

    base = obs.LeadFieldModel(u.Quantity(jnp.asarray(L), "mV / (nA m)"))
    assert (base.R, base.M) == L.shape
    y = base(Sq)
    assert isinstance(y, u.Quantity) and y.unit == u.unit("mV") and y.shape == (10, 6)
    assert _maxabs(y.value, lf_ref["base__mV"]) < 1e-5
    y = base(S)
    assert not isinstance(y, u.Quantity)
    assert _maxabs(y, lf_ref["base__plain"]) < 1e-5
    assert base(S, return_quantity=True).unit == u.unit("mV")
    yb = base(u.Quantity(jnp.asarray(Sb), "mV"))
    assert yb.shape == (2, 10, 6) and _maxabs(yb.value, lf_ref["base__batched_mV"]) < 1e-5
    # a Quantity in another unit of the same dimension is converted
    assert _maxabs(base(u.Quantity(jnp.asarray(S) / 1000.0, "V")).value, lf_ref["base__mV"]) < 1e-5

    scaled = obs.LeadFieldModel(L, scale=u.Quantity(0.1, "nA m / mV"))
    assert _maxabs(scaled(Sq).value, lf_ref["scaled__mV"]) < 1e-5
    assert _maxabs(scaled(S), lf_ref["scaled__plain"]) < 1e-5

    eeg = obs.EEGLeadField(L)
    y = eeg(Sq)
    assert y.unit == u.unit("mV") and _maxabs(y.value, lf_ref["eeg__mV"]) < 1e-5
    assert _maxabs(eeg(S), lf_ref["eeg__plain"]) < 1e-5

    # MEG: the same numbers as brainmass, but in tesla (brainmass labels them mV)
    meg = obs.MEGLeadField(u.Quantity(jnp.asarray(L), "T / (nA m)"))
    y = meg(Sq)
    assert str(lf_ref["meg__mV__unit"]) == "mV"
    assert y.unit == u.unit("T") and _maxabs(y.value, lf_ref["meg__mV"]) < 1e-5
    assert _maxabs(meg(S), lf_ref["meg__plain"]) < 1e-5
    yb = meg(u.Quantity(jnp.asarray(Sb), "mV"))
    assert yb.shape == (2, 10, 6) and yb.unit == u.unit("T")
    # an L given in fT/(nA m) is converted to the sensor unit
    meg_f = obs.MEGLeadField(u.Quantity(jnp.asarray(L) * 1e9, "T / (A m)"))
    np.testing.assert_allclose(meg_f.L, L, rtol=1e-6)


def test_leadfield_helpers_match_brainmass(lf_ref):
    W = obs.LeadFieldModel.build_fixed_orientation_weights(
        lf_ref["normals"], lf_ref["parcel"], lf_ref["area"]
    )
    assert W.shape == (15, 4) and _maxabs(W, lf_ref["W_area"]) < 1e-7
    W1 = obs.EEGLeadField.build_fixed_orientation_weights(lf_ref["normals"], lf_ref["parcel"])
    assert _maxabs(W1, lf_ref["W_ones"]) < 1e-7
    Lr = obs.LeadFieldModel.compress_vertex_leadfield(jnp.asarray(lf_ref["L_vertex"]), W)
    assert Lr.shape == (6, 4) and _maxabs(Lr, lf_ref["compressed"]) < 1e-5
    Lq = obs.LeadFieldModel.compress_vertex_leadfield(
        u.Quantity(jnp.asarray(lf_ref["L_vertex"]), "mV / (nA m)"), W
    )
    assert Lq.unit == u.unit("mV / (nA m)")
    assert obs.LeadFieldModel(Lq.T)(lf_ref["S"]).shape == (10, 6)
    # Both factors with units: the product's unit is theirs multiplied.
    Lqq = obs.LeadFieldModel.compress_vertex_leadfield(
        u.Quantity(jnp.asarray(lf_ref["L_vertex"]), "mV / (nA m)"), u.Quantity(W, "m")
    )
    assert Lqq.unit == u.unit("mV / nA") and _maxabs(Lqq.value, lf_ref["compressed"]) < 1e-5


def test_leadfield_sensor_noise_covariance_and_key():
    L = jnp.eye(3)
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 2.0, -0.5], [0.0, -0.5, 0.5]])
    model = obs.LeadFieldModel(L, noise_cov=u.Quantity(cov * 1e6, "uV2"))
    np.testing.assert_allclose(model.noise_cov, cov, rtol=1e-5, atol=1e-6)
    S = jnp.zeros((40_000, 3))
    y = model(S, jax.random.key(0))
    np.testing.assert_allclose(np.cov(np.asarray(y).T), cov, atol=0.05)
    np.testing.assert_array_equal(y, model(S, jax.random.key(0)))
    assert not np.array_equal(y, model(S, jax.random.key(1)))
    assert model(jnp.zeros((2, 5, 3)), jax.random.key(2)).shape == (2, 5, 3)
    with pytest.raises(ValueError, match="`key`"):
        model(S)


def test_leadfield_grad_and_vmap():
    L = jnp.arange(12.0).reshape(3, 4) / 10.0
    model = obs.EEGLeadField(L)
    S = jnp.ones((5, 3))
    g = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(m(S))))(model)
    np.testing.assert_allclose(g.L, 5.0 * jnp.ones((3, 4)))
    out = jax.jit(jax.vmap(model))(jnp.ones((7, 5, 3)))
    assert out.shape == (7, 5, 4)


@pytest.mark.parametrize("norm", ["True", "l1", "l2", "False"])
@pytest.mark.parametrize("demean", [True, False])
def test_leadfield_readout_matches_brainmass(norm, demean):
    ref = _load("leadfield_readout.npz")
    normalize = {"True": True, "False": False}.get(norm, norm)
    ro = obs.LeadfieldReadout(ref["lm"], float(ref["y0"]), float(ref["cy0"]), normalize, demean)
    tag = f"{norm}__{demean}"
    assert _maxabs(ro.leadfield(), ref[f"lm_hat__{tag}"]) < 1e-6
    for k in ("x1", "x2", "x3"):
        y = ro(ref[k])
        expected = ref[f"y__{tag}__{k}"]
        assert y.shape == expected.shape and _maxabs(y, expected) < 1e-5


def test_leadfield_readout_is_trainable():
    ro = obs.LeadfieldReadout(jnp.ones((5, 3)) + jnp.eye(5, 3), 0.0, 1.0, normalize="l2")
    x = jnp.arange(3.0)
    g = eqx.filter_jit(eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2)))(ro)
    assert g.lm.shape == (5, 3) and bool(jnp.all(jnp.isfinite(g.lm)))
    assert float(jnp.abs(g.cy0)) > 0 and bool(jnp.isfinite(g.y0))
    assert ro.normalize == "l2" and obs.LeadfieldReadout(jnp.ones((2, 2)), 0, 1).normalize == "l1"


# --------------------------------------------------------------------------------------
# Bad input: clear errors naming the argument
# --------------------------------------------------------------------------------------


def test_observation_models_take_a_signal_and_refuse_a_trajectory():
    # A recorded Signal carries its step; a whole Trajectory holds several variables.
    z = np.abs(np.sin(np.arange(4000.0)[:, None] / 300.0 + np.arange(3))).astype(np.float32)
    signal = bm.Signal(z, dt=1.0)
    np.testing.assert_array_equal(obs.bold_from_signal(signal, tr=500.0), obs.bold_from_signal(z, 1.0, tr=500.0))
    np.testing.assert_array_equal(obs.TemporalAverage(period=10.0)(signal), obs.TemporalAverage(period=10.0)(z, 1.0))
    np.testing.assert_array_equal(obs.HRFBold(period=2000.0, kernel=obs.GammaHRF())(signal),
                                  obs.HRFBold(period=2000.0, kernel=obs.GammaHRF())(z, 1.0))
    np.testing.assert_array_equal(obs.SpatialAverage(np.array([0, 0, 1]))(signal), obs.SpatialAverage(np.array([0, 0, 1]))(z))
    with pytest.raises(ValueError, match=r"dt = 2 ms differs from the Signal's own step \(1 ms\); drop dt="):
        obs.bold_from_signal(signal, 2.0)
    with pytest.raises(TypeError, match=r"`dt` \(the step of `signal`: ms or a time Quantity\) is required, unless"):
        obs.TemporalAverage(period=10.0)(z)
    traj = bm.simulate(bm.Hopf(3, a=0.1, init_x=0.5), 100.0, dt=1.0)
    for call in (lambda: obs.bold_from_signal(traj, 1.0), lambda: obs.SpatialAverage(np.array([0, 0, 1]))(traj),
                 lambda: obs.EEGLeadField(np.ones((3, 2)))(traj)):
        with pytest.raises(TypeError, match=r"is a Trajectory; pass one recorded variable, e.g. traj\['x'\] \(recorded: \['x', 'y'\]\)"):
            call()


def test_bad_times():
    z = np.zeros((100, 2), np.float32)
    with pytest.raises(ValueError, match="`tr`.*shorter than `dt`"):
        obs.bold_from_signal(z, 1.0, tr=u.Quantity(0.4, "ms"))
    with pytest.raises(ValueError, match="`tr`.*whole number"):
        obs.bold_from_signal(z, 0.3, tr=10.0)
    with pytest.raises(ValueError, match=r"`signal` covers 500 ms, less than one `period` \(2000 ms\): there is no BOLD sample"):
        obs.HRFBold(period=2000.0)(np.zeros((5000, 2), np.float32), 0.1)
    with pytest.raises(ValueError, match="`signal` has 100 steps, fewer than the 500 steps of one TR.$"):
        obs.bold_from_signal(z, 1.0, tr=500.0)
    with pytest.raises(ValueError, match=r"`signal` has 2 steps, .* It looks transposed \(regions, time\), shape "
                       r"\(2, 100\): pass signal.T, time first."):
        obs.bold_from_signal(z.T, 1.0, tr=50.0)
    with pytest.raises(ValueError, match="`dt` must be a finite time > 0"):
        obs.bold_from_signal(z, -1.0)
    with pytest.raises(ValueError, match="'dt' has unit 'mV' .* must be a time quantity"):
        obs.TemporalAverage()(z, u.Quantity(0.1, "mV"))
    with pytest.raises(ValueError, match="`period`.*shorter than `dt`"):
        obs.TemporalAverage(period=0.01)(z, 0.1)
    with pytest.raises(ValueError, match="`period` must be a finite time"):
        obs.TemporalAverage(period=float("nan"))
    with pytest.raises(ValueError, match="`period`.*shorter than `downsample_period`"):
        obs.HRFBold(period=1.0, downsample_period=4.0)
    with pytest.raises(TypeError, match=r"HRFBold: `k_1` got the kernel GammaHRF; pass it by name: HRFBold\(kernel=GammaHRF\(...\)\)"):
        obs.HRFBold(obs.GammaHRF())  # brainmass's order: k_1 first
    with pytest.raises(ValueError, match="`downsample_period`.*shorter than `dt`"):
        obs.HRFBold(downsample_period=0.05)(z, 0.1)
    with pytest.raises(ValueError, match="`signal` has 100 time samples"):
        obs.TemporalAverage(period=200.0)(z, 1.0)
    with pytest.raises(ValueError, match="'dt' must be a concrete number .* but it is traced"):
        jax.jit(lambda d: obs.TemporalAverage()(z, d))(0.1)


def test_a_time_that_is_not_a_number_is_named():
    with pytest.raises(TypeError, match=r"'period' must be a time: a number in ms or a unxt time Quantity, got NoneType None"):
        obs.TemporalAverage(period=None)


def test_times_closed_over_by_a_traced_function_stay_concrete():
    # Converting a Quantity with unxt inside jax.jit stages the multiplication, so a
    # Quantity the user built outside (as the traced-time message advises) came out traced.
    z = jnp.ones((100, 2))
    dt, tr = u.Quantity(1.0, "ms"), u.Quantity(0.01, "s")
    avg = jax.jit(lambda x: obs.TemporalAverage(period=tr)(x, dt))(z)
    assert avg.shape == (10, 2)
    bold = jax.jit(lambda x: obs.bold_from_signal(x, dt, tr=tr))(z)
    assert bold.shape == (10, 2)
    np.testing.assert_allclose(bold, obs.bold_from_signal(z, 1.0, tr=10.0), rtol=1e-6)


@pytest.mark.parametrize("cls", list(KERNELS.values()))
@pytest.mark.parametrize("duration", [0.0, -5.0, float("inf")])
def test_bad_kernel_duration(cls, duration):
    with pytest.raises(ValueError, match="`duration` must be a finite time > 0"):
        cls(duration=duration)


def test_bad_modes_methods_kernels_history():
    with pytest.raises(ValueError, match="`convolution_mode`"):
        obs.HRFBold(convolution_mode="causal")
    with pytest.raises(ValueError, match="`method`"):
        obs.HRFBold(method="fast")
    with pytest.raises(TypeError, match="`kernel`"):
        obs.HRFBold(kernel=lambda t: t)
    with pytest.raises(ValueError, match="`history` must have shape"):
        obs.HRFBold(history=jnp.zeros((10, 2)))(jnp.ones((8_000, 2)), 1.0)
    with pytest.raises(ValueError, match="`normalize`"):
        obs.LeadfieldReadout(jnp.ones((2, 2)), 0.0, 1.0, normalize="max")
    with pytest.raises(ValueError, match="`normalize`"):
        obs.LeadfieldReadout(jnp.ones((2, 2)), 0.0, 1.0, normalize=2)


def test_bad_parameters():
    nan, inf = float("nan"), float("inf")
    with pytest.raises(ValueError, match="`tau` must be finite"):
        obs.BalloonWindkessel(tau=nan)
    with pytest.raises(ValueError, match="`tau` must be > 0"):
        obs.BalloonWindkessel(tau=-1.0)
    with pytest.raises(ValueError, match="`gamma` must be finite"):
        obs.BalloonWindkessel(gamma=jnp.array([0.4, inf]))
    with pytest.raises(ValueError, match="`rho` must lie in"):
        obs.BalloonWindkessel(rho=1.2)
    with pytest.raises(ValueError, match="`tau` has unit mV"):
        obs.BalloonWindkessel(tau=u.Quantity(1.0, "mV"))
    with pytest.raises(ValueError, match="`tau` must be finite"):
        obs.GammaHRF(tau=inf)
    # The values as given (in s), not float32's digits ("tau_s=0.20000000298023224").
    with pytest.raises(ValueError, match=r"`tau_s` and `tau_f` must satisfy 4 tau_s\^2 > tau_f \(the underdamped kernel, "
                       r"real omega, times in s\); got tau_s=0.2 s, tau_f=0.4 s\.$"):
        obs.FirstOrderVolterraHRF(tau_s=0.2, tau_f=0.4)
    with pytest.raises(ValueError, match=r"got tau_s=\[0.8, 0.2\] s, tau_f=0.4 s\.$"):
        obs.FirstOrderVolterraHRF(tau_s=np.array([0.8, 0.2]), tau_f=0.4)
    with pytest.raises(ValueError, match="`c` must be finite"):
        obs.MixtureOfGammasHRF(c=nan)
    with pytest.raises(ValueError, match="`k_1` must be finite"):
        obs.HRFBold(k_1=nan)
    with pytest.raises(ValueError, match="`history` must be finite"):
        obs.HRFBold(history=jnp.full((5_000, 1), nan))
    with pytest.raises(ValueError, match="`L` must be finite"):
        obs.LeadFieldModel(jnp.array([[1.0, nan]]))
    with pytest.raises(ValueError, match="`L` must be a 2-D matrix"):
        obs.EEGLeadField(jnp.ones(3))
    with pytest.raises(ValueError, match="`L` has unit mV"):
        obs.EEGLeadField(u.Quantity(jnp.ones((2, 3)), "mV"))
    with pytest.raises(ValueError, match="`noise_cov` must be a symmetric positive definite"):
        obs.LeadFieldModel(jnp.eye(2), noise_cov=jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"`noise_cov` must be \(2, 2\)"):
        obs.LeadFieldModel(jnp.eye(2), noise_cov=jnp.eye(3))
    with pytest.raises(ValueError, match="`sensor_unit` must be a unit"):
        obs.LeadFieldModel(jnp.eye(2), sensor_unit="volts-ish")
    with pytest.raises(ValueError, match="`cy0` must be finite"):
        obs.LeadfieldReadout(jnp.ones((2, 2)), 0.0, nan)


def test_bad_region_counts():
    model = obs.EEGLeadField(jnp.ones((4, 6)))
    with pytest.raises(ValueError, match="`S` has 3 regions.*`L` has 4 rows"):
        model(jnp.ones((10, 3)))
    with pytest.raises(ValueError, match="`S` has unit ms"):
        model(u.Quantity(jnp.ones((10, 4)), "ms"))
    with pytest.raises(ValueError, match="`x` must have 3 regions"):
        obs.LeadfieldReadout(jnp.ones((5, 3)), 0.0, 1.0)(jnp.ones((7, 4)))
    # A lead field given the other way round: the message says so.
    with pytest.raises(ValueError, match=r"`L` has 4 rows .* if yours is \(sensors, regions\), pass L.T"):
        model(jnp.ones((10, 6)))
    with pytest.raises(ValueError, match=r"if yours is \(regions, sensors\), pass lm.T"):
        obs.LeadfieldReadout(jnp.ones((5, 3)), 0.0, 1.0)(jnp.ones((7, 5)))
    with pytest.raises(ValueError, match="`W` must be"):
        obs.LeadFieldModel.compress_vertex_leadfield(jnp.ones((6, 9)), jnp.ones((8, 2)))
    with pytest.raises(ValueError, match="`normals` must be"):
        obs.LeadFieldModel.build_fixed_orientation_weights(jnp.ones((5, 2)), jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="`parcel` must be"):
        obs.LeadFieldModel.build_fixed_orientation_weights(jnp.ones((5, 3)), jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="`area_weights` must be"):
        obs.LeadFieldModel.build_fixed_orientation_weights(
            jnp.ones((5, 3)), jnp.ones((5, 3)), jnp.ones(4)
        )
    with pytest.raises(ValueError, match="`signal` regions"):
        obs.bold_from_signal(
            jnp.ones((10, 3)), 1.0, model=obs.BalloonWindkessel(tau=jnp.array([1.0, 1.1]))
        )


# --------------------------------------------------------------------------------------
# float64
# --------------------------------------------------------------------------------------


def test_float64_mode():
    with enable_x64(True):
        z = np.full((400, 2), 0.5)
        outs = (
            obs.bold_from_signal(z, 1.0, tr=100.0),
            obs.HRFBold(kernel=obs.GammaHRF(duration=200.0), period=100.0)(1.0 + z, 1.0),
            obs.EEGLeadField(np.ones((2, 3)), noise_cov=np.eye(3))(z, jax.random.key(0)),
            obs.LeadfieldReadout(np.ones((3, 2)), 0.0, 1.0)(z),
            obs.TemporalAverage()(z, 1.0),
        )
        assert [a.dtype for a in outs] == [jnp.dtype("float64")] * len(outs)


def test_spatial_average_is_the_mean_of_each_group():
    # TVB's SpatialAverage monitor: each group's mean over its regions, as one matrix product.
    mask = np.array([2, 0, 1, 0, 2, 2])
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    avg = obs.SpatialAverage(mask, names=("left", "right", "deep"))
    y = np.asarray(avg(x))
    assert y.shape == (50, 3) and avg.n_groups == 3 and avg.names == ("left", "right", "deep")
    for g in range(3):
        np.testing.assert_allclose(y[:, g], x[:, mask == g].mean(axis=1), rtol=1e-6, atol=1e-7)
    assert avg(u.Quantity(x, "mV")).unit == u.unit("mV")
    batched = jax.vmap(avg)(jnp.stack([x, 2 * x]))  # (2, 50, 3)
    np.testing.assert_allclose(batched[1], 2 * y, rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda z: avg(z)[:, 2].sum())(jnp.asarray(x))
    np.testing.assert_allclose(grad[0], (mask == 2) / 3.0, rtol=1e-6)
    for bad, match in (
        (np.array([0, 2, 2]), r"group\(s\) \[1\] of 0 \.\. 2 hold no region; number the groups 0 \.\. G - 1 without gaps"),
        (np.array([[0, 1]]), r"`mask` must be a non-empty 1-D array \(one group per region\), got shape \(1, 2\)"),
        (np.array([0.5, 1.0]), r"`mask` must hold integer group indices"),
        (np.array([-1, 0]), r"`mask` holds a negative group index \(-1\)"),
    ):
        with pytest.raises(ValueError, match=match):
            obs.SpatialAverage(bad)
    with pytest.raises(ValueError, match=r"2 names for 3 groups"):
        obs.SpatialAverage(mask, names=("a", "b"))
    with pytest.raises(ValueError, match=r"`signal` has shape \(50, 5\), but the mask covers 6 regions; its last axis must be the 6 regions"):
        avg(x[:, :5])


def test_observation_models_print_their_parameters():
    # equinox's default printed tau=f32[], n=f32[] for every kernel parameter.
    assert repr(obs.GammaHRF()) == "GammaHRF(duration=20000, tau=1.08, n=3, a=0.1)"
    assert repr(obs.BalloonWindkessel()) == "BalloonWindkessel(gamma=0.41, kappa=0.65, alpha=0.32, tau=0.98, rho=0.34, V0=0.02)"
    assert "kernel=FirstOrderVolterraHRF(duration=20000, tau_s=0.8" in repr(obs.HRFBold())


def test_spatial_average_is_float64_accurate_in_float64_mode():
    with enable_x64(True):
        x = np.random.default_rng(0).standard_normal((5, 6)) + 1000.0
        got = np.asarray(obs.SpatialAverage(np.array([0, 0, 0, 1, 1, 1]))(x))
    want = np.stack([x[:, :3].mean(1), x[:, 3:].mean(1)], 1)
    assert np.abs(got - want).max() < 1e-11


def test_hrf_bold_compiles_one_program_not_one_per_operation(compiles):
    # Run op by op, a first call compiled each primitive of the FFT convolution separately
    # (3.4 s against 1.0 s for 20000 x 8 samples); a new signal of the same shape compiles
    # nothing more.
    x = np.random.default_rng(3).normal(size=(1013, 3)).astype(np.float32)  # a length no other test uses
    bold = obs.HRFBold(period=500.0, downsample_period=2.0)
    n = len(compiles)
    y = bold(x, 0.5)
    assert len(compiles) <= n + 2
    assert y.shape == (1, 3) and np.all(np.isfinite(y))
    n = len(compiles)
    bold(x + 1.0, 0.5)
    assert len(compiles) == n
