"""brainmass_eqx.metrics against NumPy/SciPy, brainmass 0.1.1's numbers, and JAX transforms."""

from __future__ import annotations

import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
import scipy.stats
import unxt

from brainmass_eqx import UnitError, metrics as M, objectives

REF = pathlib.Path(__file__).parent / "data" / "reference" / "objectives" / "example_signal.npz"
F32 = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(REF))


@pytest.fixture(scope="module")
def rand():
    return np.random.default_rng(0).standard_normal((120, 6)).astype(np.float32)


def _fcd_numpy(x, w, s):
    """brainmass/braintools's FCD written out in NumPy (float64)."""
    x = np.asarray(x, np.float64)
    iu = np.triu_indices(x.shape[1], k=1)
    vecs = np.stack([np.corrcoef(x[t : t + w].T)[iu] for t in range(0, len(x) - w + 1, s)])
    c = vecs - vecs.mean(1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = c @ c.T
    np.fill_diagonal(out, 1.0)
    return out


# --------------------------------------------------------------------------- FC


def test_fc_matches_corrcoef_and_batches(rand):
    fc = M.functional_connectivity(rand)
    np.testing.assert_allclose(fc, np.corrcoef(rand.T.astype(np.float64)), **F32)
    batch = np.stack([rand, rand[::-1] ** 2])
    np.testing.assert_allclose(
        M.functional_connectivity(batch)[1], np.corrcoef((rand[::-1] ** 2).T), **F32
    )
    np.testing.assert_allclose(
        jax.vmap(M.functional_connectivity)(batch), M.functional_connectivity(batch), **F32
    )


def test_fc_constant_signal_zero_rows_unit_diagonal_finite_grad(rand):
    x = rand.copy()
    x[:, 2] = 0.0
    fc = M.functional_connectivity(x)
    assert np.all(np.isfinite(fc))
    np.testing.assert_array_equal(np.diag(fc), 1.0)
    np.testing.assert_array_equal(np.delete(fc[2], 2), 0.0)
    g = jax.jit(jax.grad(lambda y: jnp.sum(M.functional_connectivity(y) ** 2)))(jnp.zeros((20, 3)))
    assert np.all(np.isfinite(g))


def test_a_signal_holding_nan_gives_nan_not_a_plausible_value():
    """A diverged region (NaN samples) must not look constant (FC 0) or oscillating
    (argmax of a NaN spectrum picked a frequency)."""
    x = jnp.asarray(np.random.default_rng(3).normal(size=(200, 4))).at[10, 2].set(jnp.nan)
    fc = np.asarray(M.functional_connectivity(x))
    assert np.all(np.isnan(fc[2, [0, 1, 3]])) and np.all(np.isfinite(fc[np.ix_([0, 1, 3], [0, 1, 3])]))
    assert np.isnan(float(M.matrix_correlation(fc, np.asarray(M.functional_connectivity(x.at[10, 2].set(0.0))))))
    freqs = np.asarray(M.dominant_frequency(x, dt=1.0))
    assert np.isnan(freqs[2]) and np.all(np.isfinite(freqs[[0, 1, 3]]))
    assert np.all(np.isnan(np.asarray(M.fcd_distribution(M.functional_connectivity_dynamics(x, 30, 10)))))


def test_fc_strips_quantity_units(rand):
    q = unxt.Quantity(jnp.asarray(rand), "mV")
    np.testing.assert_allclose(M.functional_connectivity(q), M.functional_connectivity(rand), **F32)


def test_fc_rejects_1d():
    with pytest.raises(ValueError, match=r"`x` must have shape \(time, regions\)"):
        M.functional_connectivity(np.ones(10))


def test_fc_matches_braintools(ref):
    for key in ("a", "b"):
        x = jnp.asarray(ref[f"signal_{key}"], jnp.float32)
        np.testing.assert_allclose(M.functional_connectivity(x), ref[f"bt_fc_{key}"], **F32)


# --------------------------------------------------------------------------- FCD


def test_fcd_matches_numpy_definition_and_shapes():
    x = np.random.default_rng(1).standard_normal((200, 5)).astype(np.float32)
    batched = M.functional_connectivity_dynamics(np.stack([x, -x[::-1]]), 30, 5)
    assert batched.shape == (2, 35, 35)
    np.testing.assert_allclose(batched[0], _fcd_numpy(x, 30, 5), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(batched[1], _fcd_numpy(-x[::-1], 30, 5), rtol=1e-5, atol=2e-6)
    fcd = M.functional_connectivity_dynamics(x, 50, 10)
    assert fcd.shape == (16, 16)
    np.testing.assert_allclose(fcd, _fcd_numpy(x, 50, 10), rtol=1e-5, atol=2e-6)
    assert M.functional_connectivity_dynamics(x[:20], 30, 5).shape == (0, 0)


def test_fcd_matches_brainmass(ref):
    x = jnp.asarray(ref["signal_a"], jnp.float32)
    for w, s in ((30, 5), (50, 10)):
        got = M.functional_connectivity_dynamics(x, w, s)
        np.testing.assert_allclose(got, ref[f"bt_fcd_a_w{w}_s{s}"], **F32)
        np.testing.assert_allclose(got, ref[f"fcd_a_w{w}_s{s}"], **F32)


def test_fcd_gradient_finite_on_constant_input():
    fcd_sum = jax.jit(jax.grad(lambda y: jnp.sum(M.functional_connectivity_dynamics(y, 10, 5))))
    g = fcd_sum(jnp.ones((40, 3)))
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(window_size=1), ValueError, "window_size must be an int >= 2"),
        (dict(window_size=10.0), TypeError, "window_size must be an int >= 2, got"),
        (
            dict(window_size=unxt.Quantity(30, "s")),
            TypeError,
            r"window_size must be an int >= 2: a count \(of samples or steps\), not a Quantity; got 30 s",
        ),
        (dict(step_size=0), ValueError, "step_size must be an int >= 1"),
    ],
)
def test_fcd_bad_window_arguments(rand, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        M.functional_connectivity_dynamics(rand, **kwargs)


def test_fcd_needs_two_signals(rand):
    with pytest.raises(ValueError, match="`x` needs at least 2 signals"):
        M.functional_connectivity_dynamics(rand[:, :1])


# --------------------------------------------------------------------------- FCD KDE, KS, W1


@pytest.mark.parametrize("bw", [None, "silverman", 0.3])
def test_fcd_distribution_matches_scipy_kde(bw):
    fcd = _fcd_numpy(np.random.default_rng(2).standard_normal((150, 5)), 20, 4)
    grid = M.DEFAULT_FCD_MIDPOINTS
    vals = fcd[np.triu_indices(len(fcd), 1)]
    want = scipy.stats.gaussian_kde(vals, bw_method=bw)(grid)
    want = want / (want.sum() * (grid[1] - grid[0]))
    got = M.fcd_distribution(jnp.asarray(fcd, jnp.float32), bw_method=bw)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * want.max())
    raw = M.fcd_distribution(jnp.asarray(fcd, jnp.float32), n_diag=0, normalize=False)
    all_vals = fcd[np.triu_indices(len(fcd), 0)]
    want_raw = scipy.stats.gaussian_kde(all_vals)(grid)
    np.testing.assert_allclose(raw, want_raw, rtol=2e-5, atol=2e-5 * want_raw.max())


def test_fcd_distribution_matches_brainmass(ref):
    mids = ref["midpoints"]
    cases = {
        "fcd_density_a_w30_s5": ("fcd_a_w30_s5", {}),
        "fcd_density_a_bw0.3": ("fcd_a_w30_s5", dict(bw_method=0.3)),
        "fcd_density_a_silverman": ("fcd_a_w30_s5", dict(bw_method="silverman")),
        "fcd_density_a_ndiag0_raw": ("fcd_a_w30_s5", dict(n_diag=0, normalize=False)),
        "fcd_density_a_coarse": ("fcd_a_w30_s5", dict(midpoints=ref["grid_coarse"])),
    }
    for key, (mat, kw) in cases.items():
        got = M.fcd_distribution(ref[mat], **kw)
        want = ref[key]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * want.max(), err_msg=key)
        if key == "fcd_density_a_w30_s5":
            dx = mids[1] - mids[0]
            assert abs(float(jnp.sum(got)) * dx - 1.0) < 1e-5


def test_fcd_distribution_degenerate_values_finite():
    # Identical signals in every window: all FCD values 1, zero variance (brainmass: NaN).
    dens = M.fcd_distribution(jnp.ones((6, 6)))
    assert np.all(np.isfinite(dens)) and float(dens.argmax()) == 99
    g = jax.jit(jax.grad(lambda m: M.fcd_distribution(m)[50]))(jnp.eye(6))
    assert np.all(np.isfinite(g))


def test_fcd_distribution_bad_inputs():
    with pytest.raises(ValueError, match="`bw_method` must be None, 'scott', 'silverman'"):
        M.fcd_distribution(jnp.eye(4), bw_method="scot")
    with pytest.raises(ValueError, match="`bw_method`"):
        M.fcd_distribution(jnp.eye(4), bw_method=-1.0)
    with pytest.raises(ValueError, match="`midpoints` must be a 1-D uniform grid"):
        M.fcd_distribution(jnp.eye(4), midpoints=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="`fcd_matrix` must be square"):
        M.fcd_distribution(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="no entries above diagonal offset n_diag=1"):
        M.fcd_distribution(jnp.ones((1, 1)))


def test_ks_and_wasserstein_equal_scipy_on_grid_samples():
    # Samples that sit on the grid: their histograms' normalised cumsums are the empirical
    # CDFs, so the brainmass definitions coincide with ks_2samp and wasserstein_distance.
    rng = np.random.default_rng(3)
    grid = np.linspace(-1.0, 1.0, 41)
    xs = grid[rng.integers(5, 30, 300)]
    ys = grid[np.clip(rng.integers(10, 41, 250), 0, 40)]
    p = np.array([(xs == g).sum() for g in grid], np.float64)
    q = np.array([(ys == g).sum() for g in grid], np.float64)
    ks = float(M.ks_distance(jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)))
    assert abs(ks - scipy.stats.ks_2samp(xs, ys).statistic) < 1e-6
    w1 = float(M.wasserstein_1d(jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32), grid))
    assert abs(w1 - scipy.stats.wasserstein_distance(xs, ys)) < 1e-6


def test_ks_wasserstein_match_brainmass_and_batch(ref):
    for tag in ("w30_s5", "w50_s10"):
        p, q = ref[f"fcd_density_a_{tag}"], ref[f"fcd_density_b_{tag}"]
        np.testing.assert_allclose(M.ks_distance(p, q), ref[f"ks_distance_{tag}"], rtol=1e-5)
        np.testing.assert_allclose(
            M.wasserstein_1d(p, q, ref["midpoints"]), ref[f"wasserstein_1d_{tag}"], rtol=1e-5
        )
    pq = np.stack([ref["fcd_density_a_w30_s5"], ref["fcd_density_b_w30_s5"]])
    np.testing.assert_allclose(
        M.ks_distance(pq, pq[::-1]), [ref["ks_distance_w30_s5"]] * 2, rtol=1e-5
    )


def test_ks_wasserstein_exactly_zero_for_identical_densities():
    # Compiled cumulative sums of two identical arguments used to end ~1e-8 apart.
    rng = np.random.default_rng(3)
    grid = M.DEFAULT_FCD_MIDPOINTS
    p = jnp.asarray(rng.random((3, grid.shape[0])), jnp.float32)
    fcd = M.functional_connectivity_dynamics(jnp.asarray(rng.normal(size=(200, 5)), jnp.float32), 20, 5)
    density = M.fcd_distribution(fcd)
    for a in (p, density):
        b = jnp.array(a, copy=True)  # a distinct buffer with equal values
        assert np.all(np.asarray(M.wasserstein_1d(a, b, grid)) == 0.0)
        assert np.all(np.asarray(M.ks_distance(a, b)) == 0.0)
    assert np.all(np.asarray(jax.vmap(lambda a: M.wasserstein_1d(a, a, grid))(p)) == 0.0)
    # Only equal rows are zeroed: a perturbed row keeps its distance, the others stay 0.
    w = np.asarray(M.wasserstein_1d(p, p.at[1, 3].add(0.1), grid))
    assert w[0] == w[2] == 0.0 and w[1] > 1e-4
    grad = jax.grad(lambda a: M.wasserstein_1d(a, density, grid))(density)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_ks_wasserstein_bad_inputs():
    with pytest.raises(ValueError, match="`p` and `q` must be densities on the same grid"):
        M.ks_distance(jnp.ones(5), jnp.ones(6))
    with pytest.raises(ValueError, match="`x` has 4 points but `p` and `q` have 5"):
        M.wasserstein_1d(jnp.ones(5), jnp.ones(5), jnp.linspace(0, 1, 4))


# --------------------------------------------------------------------------- spectra


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((400, 3), {}),
        ((400,), dict(nperseg=64, noverlap=0)),
        ((403, 2), dict(nperseg=65, noverlap=20)),
    ],
)
def test_psd_equals_scipy_welch(shape, kwargs):
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32) + 0.7
    dt_ms = 0.5
    f, p = M.power_spectral_density(x, dt_ms, **kwargs)
    nper = kwargs.get("nperseg", shape[0] // 8)
    f2, p2 = scipy.signal.welch(
        x.astype(np.float64),
        fs=1000.0 / dt_ms,
        nperseg=nper,
        noverlap=kwargs.get("noverlap"),
        axis=0,
    )
    np.testing.assert_allclose(f, f2, rtol=1e-6)
    np.testing.assert_allclose(p, p2, rtol=1e-4, atol=1e-6 * p2.max())


def test_psd_quantity_dt_batch_and_freq_range():
    x = np.random.default_rng(5).standard_normal((2, 320, 3)).astype(np.float32)
    f_ms, p_ms = M.power_spectral_density(x, 2.0)
    f_q, p_q = M.power_spectral_density(
        unxt.Quantity(jnp.asarray(x), "mV"), unxt.Quantity(0.002, "s")
    )
    np.testing.assert_allclose(f_q, f_ms, rtol=1e-6)
    np.testing.assert_allclose(p_q, p_ms, rtol=1e-5)
    assert p_ms.shape == (2, 21, 3) and float(f_ms[-1]) == pytest.approx(250.0)
    p_scipy = scipy.signal.welch(x.astype(np.float64), fs=500.0, nperseg=40, axis=-2)[1]
    np.testing.assert_allclose(p_ms, p_scipy, rtol=1e-4, atol=1e-6 * p_scipy.max())
    fb, pb = M.power_spectral_density(x, 2.0, freq_range=(30.0, 100.0))
    keep = (np.asarray(f_ms) >= 30) & (np.asarray(f_ms) <= 100)
    np.testing.assert_allclose(fb, f_ms[keep])
    np.testing.assert_allclose(pb, p_ms[:, keep])
    # The band's ends may be frequency Quantities (astropy's "'Hz' and '' are not
    # convertible" named no argument); another dimension is refused by name.
    fq, _ = M.power_spectral_density(x, 2.0, freq_range=(unxt.Quantity(30.0, "Hz"), unxt.Quantity(0.1, "kHz")))
    np.testing.assert_allclose(fq, fb)
    with pytest.raises(UnitError, match=r"'freq_range\[0\]' has unit 'ms' \(time\), but it must be a frequency"):
        M.power_spectral_density(x, 2.0, freq_range=(unxt.Quantity(30.0, "ms"), None))
    # A dt Quantity closed over by a jitted function still sets the bins of the band;
    # a dt passed as an argument is traced and cannot.
    dt = unxt.Quantity(0.002, "s")
    fj, pj = jax.jit(lambda y: M.power_spectral_density(y, dt, freq_range=(30.0, 100.0)))(x)
    np.testing.assert_allclose(fj, fb, rtol=1e-6)
    np.testing.assert_allclose(pj, pb, rtol=1e-5)
    with pytest.raises(ValueError, match="'dt' must be a concrete number .* it was passed as an argument"):
        jax.jit(lambda y, d: M.power_spectral_density(y, d, freq_range=(30.0, 100.0)))(x, 2.0)


def test_metrics_read_a_signal_and_its_step():
    # A data set's Signal (time series, step, labels, FC) is what its metrics are taken of.
    from brainmass_eqx.datasets import Signal

    x = np.random.default_rng(6).standard_normal((320, 3)).astype(np.float32)
    signal = Signal(x, dt=unxt.Quantity(2, "ms"))
    np.testing.assert_array_equal(M.functional_connectivity(signal), M.functional_connectivity(x))
    np.testing.assert_array_equal(M.functional_connectivity_dynamics(signal, 40, 10), M.functional_connectivity_dynamics(x, 40, 10))
    for a, b in zip(M.power_spectral_density(signal), M.power_spectral_density(x, 2.0)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(M.dominant_frequency(signal), M.dominant_frequency(x, 2.0))
    with pytest.raises(TypeError, match=r"`dt` \(the step of `x`: ms or a time Quantity\) is required, unless `x` is a Signal"):
        M.power_spectral_density(x)
    with pytest.raises(ValueError, match=r"dt = 1 ms differs from the Signal's own step \(2 ms\)"):
        M.dominant_frequency(signal, 1.0)
    # A whole Trajectory holds several variables: the message names them.
    import brainmass_eqx as bx

    traj = bx.simulate(bx.Hopf(2, a=0.1, init_x=0.5), 20.0, dt=1.0)
    with pytest.raises(TypeError, match=r"`x` is a Trajectory; pass one recorded variable, e.g. traj\['x'\] \(recorded: \['x', 'y'\]\), or traj.signal\('x'\)"):
        M.functional_connectivity(traj)
    # traj.signal carries the samples' step (dt * sample_every): a 10 Hz Hopf recorded every
    # 10 steps reads 10 Hz, where the solver's dt would have read it as 100 Hz.
    traj = bx.simulate(bx.Hopf(2, a=0.1, w=2 * np.pi * 10 / 1000, init_x=0.5), 2000.0, dt=0.1, sample_every=10)
    signal = traj.signal("x", labels=["a", "b"])
    assert signal.dt == traj.sample_step() == 1.0 and signal.labels == ("a", "b")
    np.testing.assert_allclose(np.asarray(M.dominant_frequency(signal)), 10.0, atol=0.6)
    with pytest.raises(ValueError, match=r"the sample step needs at least 2 samples"):
        bx.simulate(bx.Hopf(2), 1.0, dt=1.0).sample_step()


def test_psd_braintools_variant_matches_reference(ref):
    x = jnp.asarray(ref["signal_a"], jnp.float32)
    for suffix, kw in (("", {}), ("_n100_o25", dict(nperseg=100, noverlap=25))):
        f, p = M.power_spectral_density(
            x, float(ref["dt_ms"]), window="hann_symmetric", detrend=False, **kw
        )
        np.testing.assert_allclose(f, ref[f"bt_psd_freqs{suffix}"], rtol=1e-6)
        want = ref[f"bt_psd_a{suffix}"]
        np.testing.assert_allclose(p, want, rtol=1e-4, atol=1e-6 * want.max())


def test_dominant_frequency_resolves_between_bins():
    # 500 ms at 1 ms: bins 2 Hz apart over the whole signal (a Welch default of time // 8
    # samples gave 16 Hz bins, so an 8 Hz rhythm read as 16 Hz in a sweep's table).
    t = np.arange(500) * 1.0
    f0 = np.array([7.96, 21.2, 47.7])
    x = np.sin(2 * np.pi * f0 * t[:, None] / 1000.0 + 0.3).astype(np.float32)
    np.testing.assert_allclose(M.dominant_frequency(x, 1.0), f0, atol=0.1)
    np.testing.assert_allclose(M.dominant_frequency(x, 1.0, refine=False), [8.0, 22.0, 48.0])
    np.testing.assert_allclose(jax.jit(lambda y: M.dominant_frequency(y, 1.0))(x), f0, atol=0.1)
    # A region at a fixed point has no frequency (its rounding leaked into the first bin: 2 Hz).
    settled = x.copy()
    settled[:, 1] = 0.6776763
    f = np.asarray(M.dominant_frequency(settled, 1.0))
    np.testing.assert_allclose(f[[0, 2]], f0[[0, 2]], atol=0.1)
    assert np.isnan(f[1]) and np.isnan(M.dominant_frequency(settled[:, 1], 1.0))
    grad = jax.grad(lambda y: jnp.nansum(M.dominant_frequency(y, 1.0)))(settled)
    assert np.all(np.isfinite(grad))


def test_dominant_frequency_compiles_a_few_programs_not_one_per_operation(compiles):
    # The peak search ran op by op: a first call compiled 41 small programs (2.6 s), and
    # each new signal length 14 more; now the spectrum and the peak are one program each.
    t = np.arange(173) * 0.5  # a length no other test uses
    x = np.stack([np.sin(2 * np.pi * 0.04 * t), np.cos(2 * np.pi * 0.06 * t)], axis=1)
    f = M.dominant_frequency(x, dt=0.5)
    np.testing.assert_allclose(f, [40.0, 60.0], atol=1.5)
    assert len(compiles) <= 6
    n = len(compiles)
    M.dominant_frequency(2.0 * x + 0.3, dt=0.5)  # new values, same shape
    M.dominant_frequency(x, dt=0.5, refine=False)  # the bin alone: another (small) program
    assert len(compiles) <= n + 1


def test_psd_jit_grad_and_dominant_frequency():
    t = np.arange(400) * 1.0  # ms
    x = np.stack([np.sin(2 * np.pi * 0.04 * t), np.sin(2 * np.pi * 0.1 * t + 1)], 1).astype(
        np.float32
    )
    fdom = M.dominant_frequency(x, unxt.Quantity(1.0, "ms"), nperseg=100)
    np.testing.assert_allclose(fdom, [40.0, 100.0])
    grad_psd = jax.jit(jax.grad(lambda y: jnp.sum(M.power_spectral_density(y, 1.0)[1])))
    assert np.all(np.isfinite(grad_psd(x))) and np.any(grad_psd(x) != 0)
    assert np.all(np.isfinite(grad_psd(jnp.ones_like(x))))


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (
            lambda x: M.power_spectral_density(x[:10], 1.0),
            ValueError,
            "too few for the default nperseg",
        ),
        (
            lambda x: M.power_spectral_density(x, 1.0, nperseg=500),
            ValueError,
            r"`nperseg` \(500\) must not exceed",
        ),
        (
            lambda x: M.power_spectral_density(x, 1.0, nperseg=40, noverlap=40),
            ValueError,
            "`noverlap`",
        ),
        (
            lambda x: M.power_spectral_density(x, 1.0, window="hamming"),
            ValueError,
            "`window` must be 'hann'",
        ),
        (
            lambda x: M.power_spectral_density(x, 1.0, nperseg=20, window=np.ones(5)),
            ValueError,
            "`window` must have shape",
        ),
        (lambda x: M.power_spectral_density(x, 1.0, detrend="linear"), ValueError, "`detrend`"),
        (lambda x: M.power_spectral_density(x, -1.0), ValueError, "`dt` must be a positive"),
        (
            lambda x: M.power_spectral_density(x, unxt.Quantity(1.0, "mV")),
            ValueError,
            r"'dt' has unit 'mV'.*must be a time",
        ),
        (
            lambda x: M.power_spectral_density(x, 1.0, freq_range=(600.0, 700.0)),
            ValueError,
            "`freq_range`",
        ),
        # A reversed band used to say only that it held no frequencies.
        (
            lambda x: M.power_spectral_density(x, 1.0, freq_range=(40.0, 8.0)),
            ValueError,
            r"`freq_range` = \(40.0, 8.0\) Hz: f_min must not exceed f_max",
        ),
        (lambda x: M.dominant_frequency(x, 1.0, freq_range=8.0), ValueError, r"`freq_range` must be a pair"),
        (lambda x: M.power_spectral_density(x, 1.0, freq_range=(1.0, 2.0, 3.0)), ValueError,
         r"`freq_range` must be a pair \(f_min, f_max\) in Hz"),
        (lambda x: M.power_spectral_density(x[0, 0], 1.0), ValueError,
         r"`x` must be a signal \(time,\) or \(..., time, regions\), got a scalar"),
    ],
)
def test_psd_bad_inputs(rand, call, exc, match):
    with pytest.raises(exc, match=match):
        call(rand)


# --------------------------------------------------------------------------- similarity


def test_matrix_correlation_matches_numpy_and_constant_is_zero(rand):
    a = np.corrcoef(rand.T)
    b = np.corrcoef(rand[::-1].T ** 3)
    iu = np.triu_indices(6, 1)
    want = np.corrcoef(a[iu], b[iu])[0, 1]
    assert float(M.matrix_correlation(a, b)) == pytest.approx(want, abs=1e-6)
    assert float(M.matrix_correlation(np.eye(4), a[:4, :4])) == 0.0
    g = jax.jit(jax.grad(M.matrix_correlation))(jnp.eye(4), jnp.asarray(a[:4, :4], jnp.float32))
    assert np.all(np.isfinite(g))
    # A matrix against itself is exactly 1 at any scale (the sum of products of unit vectors
    # was 1 - 1.2e-7 on a Zen 3 CPU, where brainmass's fc_corr(x, x) example prints 1.0),
    # and a scale of 1e10 does not overflow float32's sums.
    for scale in (1.0, 1e10, 1e-20):
        m = jnp.asarray(rand[:, :6].T @ rand[:, :6] * scale, jnp.float32)
        assert float(M.matrix_correlation(m, m)) == 1.0
        assert float(M.matrix_correlation(m, jnp.asarray(b * scale, jnp.float32))) == pytest.approx(
            np.corrcoef(np.asarray(m, np.float64)[iu], b[iu])[0, 1], abs=1e-6
        )
    with pytest.raises(ValueError, match=r"`a` and `b` must have the same shape"):
        M.matrix_correlation(np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="`a` must be a square matrix"):
        M.matrix_correlation(np.ones((3, 4)), np.ones((3, 4)))


def test_cosine_similarity(rand):
    a, b = rand[:, 0], rand[:, 1]
    want = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert float(M.cosine_similarity(a, b)) == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(
        M.cosine_similarity(rand.T, rand.T[::-1]),
        [M.cosine_similarity(u, v) for u, v in zip(rand.T, rand.T[::-1])],
        atol=1e-6,
    )
    # safe_norm: a norm at or below epsilon counts as epsilon.
    assert float(
        M.cosine_similarity(jnp.array([0.1, 0.0]), jnp.array([1.0, 0.0]), epsilon=1.0)
    ) == pytest.approx(0.1)
    z = jnp.zeros(5)
    assert float(M.cosine_similarity(z, jnp.ones(5))) == 0.0
    assert np.all(np.isfinite(jax.jit(jax.grad(M.cosine_similarity))(z, jnp.ones(5))))
    with pytest.raises(ValueError, match="`epsilon` must be >= 0"):
        M.cosine_similarity(a, b, epsilon=-1.0)
    with pytest.raises(ValueError, match=r"`a` and `b` must have the same shape, got \(3,\) and \(4,\)"):
        M.cosine_similarity(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"`a` and `b` must have at least one axis, got shape \(\)"):
        M.cosine_similarity(1.0, 2.0)


# --------------------------------------------------------------------------- synchrony


def test_kuramoto_and_metastability_match_numpy():
    th = np.random.default_rng(6).uniform(-np.pi, np.pi, (50, 7))
    th[:, 3:] = th[:, :1] + 0.1 * np.arange(4)  # partial locking, varying in time
    r = np.abs(np.exp(1j * th).mean(1))
    np.testing.assert_allclose(M.kuramoto_order_parameter(th.astype(np.float32)), r, atol=1e-6)
    assert float(M.metastability(th.astype(np.float32))) == pytest.approx(np.std(r), abs=1e-6)
    batch = np.stack([th, th[::-1] * 0.5]).astype(np.float32)
    np.testing.assert_allclose(jax.vmap(M.metastability)(batch), M.metastability(batch), atol=1e-7)
    np.testing.assert_allclose(M.kuramoto_order_parameter(np.zeros((4, 3))), 1.0)


def test_synchrony_gradients_finite_when_degenerate():
    # Constant phases: R == 1 everywhere, so the std is 0; antiphase pairs: R == 0.
    assert np.all(np.isfinite(jax.jit(jax.grad(M.metastability))(jnp.zeros((10, 4)))))
    anti = jnp.tile(jnp.array([0.0, jnp.pi]), (10, 1))
    grad_r = jax.jit(jax.grad(lambda p: jnp.sum(M.kuramoto_order_parameter(p))))
    assert np.all(np.isfinite(grad_r(anti)))
    with pytest.raises(ValueError, match="`phases` must have shape"):
        M.kuramoto_order_parameter(jnp.zeros(5))


def test_spectral_keywords_from_other_libraries_say_what_they_are_here():
    x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    with pytest.raises(TypeError, match=r"dominant_frequency\(\) got an unexpected keyword argument 'band' \(it is "
                       r"freq_range \(Hz, a \(low, high\) pair\) here\)\. dominant_frequency takes: x, dt, refine, nperseg"):
        M.dominant_frequency(x, dt=1.0, band=(5, 50))
    with pytest.raises(TypeError, match=r"'fs' \(it is dt \(the sampling step: 1 / fs, in ms or a time Quantity\) here\)"):
        M.power_spectral_density(x, dt=1.0, fs=1000.0)
    with pytest.raises(TypeError, match=r"'npersg' \(did you mean 'nperseg'\?\)"):
        M.dominant_frequency(x, dt=1.0, npersg=100)


def test_constant_signals_whose_float_mean_is_inexact_correlate_to_zero():
    # float32 averages 0.1 to 0.1 + 3e-8: centred plainly, two constant regions correlated to +-1.
    x = np.random.default_rng(1).standard_normal((1000, 4)).astype(np.float32)
    x[:, 2], x[:, 3] = np.float32(0.1), np.float32(-0.07)
    fc = np.asarray(M.functional_connectivity(x))
    assert fc[2, 3] == 0.0 and np.all(fc[2, [0, 1]] == 0.0)
    density = np.asarray(M.fcd_distribution(np.full((12, 12), np.float32(0.3))))
    assert abs(density.sum() * (M.DEFAULT_FCD_MIDPOINTS[1] - M.DEFAULT_FCD_MIDPOINTS[0]) - 1) < 1e-5


def test_fc_float32_with_a_large_offset():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((20000, 1))
    x = (1e3 + 1e-3 * (0.8 * base + 0.6 * rng.standard_normal((20000, 4)))).astype(np.float32)
    want = np.corrcoef(x.astype(np.float64).T)
    assert np.abs(np.asarray(M.functional_connectivity(x)) - want).max() < 1e-6


def test_a_long_signals_fc_summed_over_chunks_of_time_equals_the_whole_product(monkeypatch):
    # Beyond 2 x _FC_CHUNK samples the product is summed over chunks (and a tail): same FC,
    # constant and NaN regions as in one product, under vmap, and the same gradient.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3 * M._FC_CHUNK + 77, 5)).astype(np.float32)
    x[0, :, 1] = 2.0  # constant
    x[1, 40, 3] = np.nan
    fc = np.asarray(M.functional_connectivity(x))
    with np.errstate(invalid="ignore"):  # NumPy's 0/0 for the constant region
        want = np.corrcoef(x[0].astype(np.float64).T)
    want[1, :] = want[:, 1] = 0.0
    np.fill_diagonal(want, 1.0)
    np.testing.assert_allclose(fc[0], want, rtol=0, atol=2e-6)
    assert np.all(np.isnan(fc[1, 3, [0, 1, 2, 4]])) and np.isfinite(np.delete(np.delete(fc[1], 3, 0), 3, 1)).all()
    np.testing.assert_allclose(np.asarray(jax.vmap(M.functional_connectivity)(x)), fc, rtol=0, atol=1e-7)

    def loss(y):
        return jnp.sum(M.functional_connectivity(y) ** 3)

    grad = np.asarray(jax.grad(loss)(x[0]))
    # Forward mode through the chunked loop: the directional derivative equals the
    # gradient's projection on that direction.
    direction = rng.standard_normal(x[0].shape).astype(np.float32)
    _, tangent = jax.jvp(loss, (jnp.asarray(x[0]),), (jnp.asarray(direction),))
    np.testing.assert_allclose(float(tangent), float(np.sum(grad.astype(np.float64) * direction)), rtol=1e-3)
    monkeypatch.setattr(M, "_FC_CHUNK", x.shape[1])  # one product of the whole signal
    whole = jax.jit(jax.grad(lambda y: jnp.sum(M._pearson_fc(y) ** 3)))
    np.testing.assert_allclose(np.asarray(M._pearson_fc(jnp.asarray(x))), fc, rtol=0, atol=1e-6)
    np.testing.assert_allclose(grad, np.asarray(whole(x[0])), rtol=1e-4, atol=1e-7)
    assert np.isfinite(grad).all()


def test_a_signal_given_regions_first_is_warned_about():
    x = np.random.default_rng(0).standard_normal((6, 400))  # (regions, time)
    with pytest.warns(UserWarning, match="pass its transpose"):
        M.functional_connectivity(x)


@pytest.mark.parametrize("spectral", ["power_spectral_density", "dominant_frequency"])
def test_a_spectrum_of_a_signal_given_regions_first_is_warned_about(spectral):
    # dominant_frequency(x.T) of 80 regions x 500 samples silently returned 500
    # "frequencies", one per time sample, each from an 80-sample series.
    x = np.random.default_rng(0).standard_normal((500, 80))
    with pytest.warns(UserWarning, match="pass its transpose"):
        getattr(M, spectral)(x.T, dt=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(M, spectral)(x, dt=1.0)
        getattr(M, spectral)(x[:, 0], dt=1.0)


def test_psd_rmse_warns_once_per_regions_first_signal():
    x = np.random.default_rng(0).standard_normal((500, 80))
    with pytest.warns(UserWarning, match="pass its transpose") as record:
        objectives.psd_rmse(dt=1.0)(x.T, x.T)
    assert [str(w.message).split(" has")[0] for w in record] == ["`prediction`", "`target`"]


def test_matrix_correlation_refuses_two_by_two():
    # One entry above the diagonal: its correlation is undefined (was silently 0, flat as a loss).
    with pytest.raises(ValueError, match="single entry above the diagonal"):
        M.matrix_correlation(np.eye(2), np.eye(2))


def test_a_complex_signal_is_refused():
    # FC of a complex signal came back complex, with zero rows: numbers that are no correlation.
    x = jax.random.normal(jax.random.key(1), (50, 3)) + 1j * jax.random.normal(jax.random.key(2), (50, 3))
    with pytest.raises(TypeError, match="`x` holds complex numbers"):
        M.functional_connectivity(x)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_signals_are_computed_in_float32(dtype):
    # In float16 the FC of this signal was 0.44 off (its sums of squares overflow), the FC
    # correlation of a signal with itself was 0, and the spectra failed inside jnp.fft.
    rng = np.random.default_rng(0)
    x = 10 * rng.standard_normal((4000, 3)) + 50
    x[:, 1] += 0.5 * x[:, 0]
    xh = jnp.asarray(x, dtype)
    rounded = np.asarray(xh, np.float64)
    fc = M.functional_connectivity(xh)
    assert fc.dtype == jnp.float32
    np.testing.assert_allclose(fc, np.corrcoef(rounded.T), atol=1e-5)
    np.testing.assert_allclose(M.matrix_correlation(fc, fc), 1.0, atol=1e-5)
    freqs, psd = M.power_spectral_density(xh, 1.0)
    ref = scipy.signal.welch(rounded, fs=1000.0, nperseg=500, axis=0)[1]
    np.testing.assert_allclose(psd, ref, rtol=1e-3)
    assert M.dominant_frequency(xh, 1.0).dtype == jnp.float32
