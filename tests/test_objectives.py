"""brainmass_eqx.objectives against brainmass 0.1.1's numbers, NumPy/SciPy, and JAX transforms."""

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
from _jax_versions import enable_x64

from brainmass_eqx import metrics as M, objectives as O

REF = pathlib.Path(__file__).parent / "data" / "reference" / "objectives" / "example_signal.npz"

# Every objective, with the configuration the random-data tests use (150 samples).
OBJECTIVES = {
    "timeseries_rmse": O.timeseries_rmse(),
    "fc_corr": O.fc_corr(),
    "fc_corr_loss": O.fc_corr(as_loss=True),
    "fc_rmse": O.fc_rmse(),
    "cosine_sim": O.cosine_sim(),
    "cosine_sim_loss": O.cosine_sim(as_loss=True, epsilon=1e-8),
    "fcd": O.fcd(30, 5),
    "fcd_loss": O.fcd(20, 10, as_loss=True),
    "fcd_ks": O.fcd_ks(30, 5),
    "fcd_wasserstein": O.fcd_wasserstein(30, 5),
    "psd_rmse": O.psd_rmse(1.0, freq_range=(5.0, 300.0)),
    "psd_rmse_lin": O.psd_rmse(unxt.Quantity(1.0, "ms"), log=False),
    "combine": O.combine((2.0, O.fc_corr(as_loss=True)), (0.5, O.timeseries_rmse())),
}


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(REF))


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((150, 5)).astype(np.float32)
    mix = np.eye(5) + 0.5 * rng.uniform(size=(5, 5))
    p = (t @ mix + 0.3 * rng.standard_normal((150, 5))).astype(np.float32)
    return p, t


# --------------------------------------------------------------------------- brainmass parity


def test_values_match_brainmass(ref):
    a = jnp.asarray(ref["signal_a"], jnp.float32)
    b = jnp.asarray(ref["signal_b"], jnp.float32)
    grid = ref["grid_coarse"]
    cases = {
        "timeseries_rmse": O.timeseries_rmse(),
        "fc_corr": O.fc_corr(),
        "fc_corr_loss": O.fc_corr(as_loss=True),
        "fc_rmse": O.fc_rmse(),
        "cosine_sim": O.cosine_sim(),
        "cosine_sim_loss": O.cosine_sim(as_loss=True, epsilon=1e-8),
        "fcd_corr_w30_s5": O.fcd(),
        "fcd_corr_loss_w30_s5": O.fcd(as_loss=True),
        "fcd_corr_w50_s10": O.fcd(50, 10),
        "fcd_corr_loss_w50_s10": O.fcd(50, 10, as_loss=True),
        "fcd_ks_w30_s5": O.fcd_ks(),
        "fcd_wasserstein_w30_s5": O.fcd_wasserstein(),
        "fcd_ks_w50_s10": O.fcd_ks(window_size=50, step_size=10),
        "fcd_wasserstein_w50_s10": O.fcd_wasserstein(window_size=50, step_size=10),
        "fcd_ks_coarse_bw0.3": O.fcd_ks(midpoints=grid, bw_method=0.3),
        "fcd_wasserstein_coarse_bw0.3": O.fcd_wasserstein(midpoints=grid, bw_method=0.3),
        "combined": O.combine((2.0, O.fc_corr(as_loss=True)), (0.5, O.timeseries_rmse())),
    }
    worst = 0.0
    for key, fn in cases.items():
        got, want = float(fn(a, b)), float(ref[key])
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), key
        worst = max(worst, abs(got - want))
    assert worst < 1e-6
    np.testing.assert_allclose(O.fcd(50, 10)(a), ref["fcd_a_w50_s10"], rtol=1e-5, atol=1e-6)
    dens = O.fcd_distribution(ref["fcd_b_w30_s5"])
    np.testing.assert_allclose(dens, ref["fcd_density_b_w30_s5"], rtol=1e-5, atol=1e-5)
    assert float(O.ks_distance(ref["fcd_density_a_w30_s5"], dens)) == pytest.approx(
        float(ref["ks_distance_w30_s5"]), rel=1e-5
    )


def test_plain_functions_are_the_metrics():
    assert O.fcd_distribution is M.fcd_distribution
    assert O.ks_distance is M.ks_distance
    assert O.wasserstein_1d is M.wasserstein_1d


# --------------------------------------------------------------------------- NumPy definitions


def test_values_match_numpy_definitions(pair):
    p, t = pair
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    iu = np.triu_indices(5, 1)
    fp, ft = np.corrcoef(p64.T), np.corrcoef(t64.T)
    want = {
        "timeseries_rmse": np.sqrt(np.mean((p64 - t64) ** 2)),
        "fc_corr": np.corrcoef(fp[iu], ft[iu])[0, 1],
        "fc_rmse": np.sqrt(np.mean((fp - ft) ** 2)),
        "cosine_sim": p64.ravel() @ t64.ravel() / np.linalg.norm(p64) / np.linalg.norm(t64),
    }
    want["fc_corr_loss"] = 1 - want["fc_corr"]
    want["cosine_sim_loss"] = 1 - want["cosine_sim"]
    want["combine"] = 2 * want["fc_corr_loss"] + 0.5 * want["timeseries_rmse"]
    # The FCD densities with SciPy's KDE (the FCD itself is checked in test_metrics.py).
    grid = M.DEFAULT_FCD_MIDPOINTS
    cdfs = []
    for x in (p, t):
        fcd = np.asarray(M.functional_connectivity_dynamics(x, 30, 5), np.float64)
        dens = scipy.stats.gaussian_kde(fcd[np.triu_indices(len(fcd), 1)])(grid)
        cdfs.append(np.cumsum(dens) / dens.sum())
    want["fcd_ks"] = np.abs(cdfs[0] - cdfs[1]).max()
    want["fcd_wasserstein"] = np.abs(cdfs[0] - cdfs[1]).sum() * (grid[1] - grid[0])
    # The spectral losses with scipy.signal.welch.
    f, sp = scipy.signal.welch(p64, fs=1000.0, nperseg=18, axis=0)
    _, st = scipy.signal.welch(t64, fs=1000.0, nperseg=18, axis=0)
    want["psd_rmse_lin"] = np.sqrt(np.mean((sp - st) ** 2))
    band = (f >= 5) & (f <= 300)
    eps = 1e-6 * st[band].mean()
    want["psd_rmse"] = np.sqrt(np.mean((np.log10(sp[band] + eps) - np.log10(st[band] + eps)) ** 2))
    for key, value in want.items():
        assert float(OBJECTIVES[key](p, t)) == pytest.approx(value, rel=2e-5, abs=1e-6), key


# --------------------------------------------------------------------------- transforms


def test_jit_vmap_grad_all_objectives_finite(pair):
    """One compiled program: every objective's value and gradient, vmapped over predictions
    that are random, constant (FC/FCD degenerate) and equal to the target (a perfect fit)."""
    p, t = pair
    preds = jnp.stack([jnp.asarray(p), jnp.full_like(p, 0.25), jnp.asarray(t)])

    # One of each kind (the as_loss variants are 1 - the same maths), to keep compiling short.
    names = [k for k in OBJECTIVES if not k.endswith(("_loss", "_lin"))]

    def values_and_grads(pred, target):
        return {k: jax.value_and_grad(OBJECTIVES[k])(pred, target) for k in names}

    out = jax.jit(jax.vmap(values_and_grads, in_axes=(0, None)))(preds, t)
    for key, (val, grad) in out.items():
        assert val.shape == (3,) and grad.shape == preds.shape, key
        assert np.all(np.isfinite(val)) and np.all(np.isfinite(grad)), key
        assert float(val[0]) == pytest.approx(float(OBJECTIVES[key](p, t)), rel=1e-4, abs=1e-6), key
    perfect = {k: float(v[2]) for k, (v, _) in out.items()}
    for key in (
        "timeseries_rmse",
        "fc_rmse",
        "combine",
        "fcd_ks",
        "fcd_wasserstein",
        "psd_rmse",
    ):
        assert abs(perfect[key]) < 1e-5, key
    for key in ("fc_corr", "cosine_sim", "fcd"):
        assert perfect[key] == pytest.approx(1.0, abs=1e-5), key
    assert float(out["fc_corr"][0][1]) == 0.0  # a constant prediction has no FC structure


def test_a_nan_prediction_gives_a_nan_value(pair):
    """A diverged prediction (NaN samples, as ``simulate(check_finite=False)`` records them)
    must not score well: the guards that keep gradients finite at 0 used to send NaN to 0,
    so such a prediction had an RMSE of exactly 0 and an FC correlation of 0.76."""
    p, t = pair
    broken = jnp.asarray(p).at[10, 2].set(jnp.nan)
    for key, objective in OBJECTIVES.items():
        assert np.isnan(float(objective(broken, t))), key
    fc = M.functional_connectivity(broken)
    assert np.all(np.isnan(np.asarray(fc)[2, [0, 1, 3]])) and float(fc[2, 2]) == 1.0


@pytest.mark.parametrize(
    "name, make",
    [
        ("fc_corr", lambda: O.fc_corr()),
        ("fcd_wasserstein", lambda: O.fcd_wasserstein(20, 5)),
        ("psd_rmse", lambda: O.psd_rmse(0.5, freq_range=(10.0, None))),
    ],
)
def test_gradient_matches_central_differences_float64(name, make):
    with enable_x64(True):
        rng = np.random.default_rng(7)
        t = rng.standard_normal((80, 4))
        p = t + 0.5 * rng.standard_normal((80, 4))
        fn = make()
        value_and_grad = jax.jit(jax.value_and_grad(fn))
        g = np.asarray(value_and_grad(p, t)[1])
        assert g.dtype == np.float64
        h = 1e-5
        for _ in range(3):
            v = rng.standard_normal(p.shape)
            up, down = value_and_grad(p + h * v, t)[0], value_and_grad(p - h * v, t)[0]
            fd = (float(up) - float(down)) / (2 * h)
            assert float(np.sum(g * v)) == pytest.approx(fd, rel=1e-5, abs=1e-9), name


# --------------------------------------------------------------------------- behaviour


def test_units(pair):
    p, t = pair
    rmse = O.timeseries_rmse()
    mv = unxt.Quantity(jnp.asarray(p), "mV")
    volts = unxt.Quantity(jnp.asarray(t) / 1000.0, "V")
    assert float(rmse(mv, volts)) == pytest.approx(float(rmse(p, t)), rel=1e-5)
    assert float(O.fc_corr()(mv, volts)) == pytest.approx(float(O.fc_corr()(p, t)), rel=1e-6)
    with pytest.raises(
        ValueError, match="target's unit 'ms' cannot be converted to prediction's unit 'mV'"
    ):
        rmse(mv, unxt.Quantity(jnp.asarray(t), "ms"))
    with pytest.raises(
        ValueError, match="prediction is a Quantity in 'mV' but target is a plain array"
    ):
        rmse(mv, t)


def test_fcd_without_target_returns_matrix_and_combine_forwards(pair):
    p, _ = pair
    mat = O.fcd(30, 5)(p)
    assert mat.shape == (25, 25)
    np.testing.assert_allclose(O.combine((2.0, O.fcd(30, 5)))(p), 2 * mat, rtol=1e-6)


def test_psd_rmse_sees_frequency():
    t = np.arange(800) * 0.5  # ms
    rng = np.random.default_rng(8)
    target = np.sin(2 * np.pi * 0.04 * t)[:, None] + 0.1 * rng.standard_normal((800, 2))
    near = np.sin(2 * np.pi * 0.04 * t + 1.0)[:, None] + 0.1 * rng.standard_normal((800, 2))
    far = np.sin(2 * np.pi * 0.1 * t)[:, None] + 0.1 * rng.standard_normal((800, 2))
    loss = O.psd_rmse(unxt.Quantity(0.5, "ms"), freq_range=(1.0, 200.0))
    assert 3 * float(loss(near, target)) < float(loss(far, target))


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_shape_mismatch_names_both_shapes(pair, name):
    p, t = pair
    with pytest.raises(
        ValueError, match=r"prediction has shape \(150, 5\) but target has shape \(150, 4\)"
    ):
        OBJECTIVES[name](p, t[:, :4])


# Those that summarise each signal over time before comparing.
SUMMARISING = ("fc_corr", "fc_corr_loss", "fc_rmse", "fcd_ks", "fcd_wasserstein", "psd_rmse", "psd_rmse_lin")


def test_an_fc_matrix_target(pair):
    # An empirical FC is what whole-brain users usually hold. target_is_fc=True compares the
    # prediction's FC with it, equal to giving the signal it came from; without the flag a
    # symmetric square target is refused (it used to be read as n samples of n regions).
    p, t = pair
    fc_t = np.asarray(M.functional_connectivity(t))
    for make in (lambda **kw: O.fc_corr(as_loss=True, **kw), O.fc_rmse):
        np.testing.assert_allclose(make(target_is_fc=True)(p, fc_t), make()(p, t), rtol=1e-5, atol=1e-7)
        grad = jax.grad(make(target_is_fc=True))(jnp.asarray(p), fc_t)
        assert np.all(np.isfinite(grad))
        with pytest.raises(ValueError, match=r"target is a symmetric 5 x 5 matrix, an FC matrix by the look of it, .* read it as 5 samples of 5 regions\. Pass the recorded signal .* or build the objective with target_is_fc=True"):
            make()(p, fc_t)
        with pytest.raises(ValueError, match=r"prediction has shape \(150, 5\) and target has shape \(150, 5\); with target_is_fc=True the target is an FC matrix of shape \(5, 5\)"):
            make(target_is_fc=True)(p, t)
    with pytest.raises(ValueError, match=r"symmetric 5 x 5 matrix.* compare FC matrices with objectives\.fc_corr\(target_is_fc=True\)"):
        O.fcd_ks(30, 5)(p, fc_t)
    assert np.isfinite(float(O.combine((1.0, O.fc_corr(target_is_fc=True)), (2.0, O.fc_rmse(target_is_fc=True)))(p, fc_t)))
    with pytest.raises(ValueError, match=r"combine: objectives \[1\] take an FC-matrix target \(target_is_fc=True\) and \[0\] a signal"):
        O.combine((1.0, O.fc_corr()), (1.0, O.fc_rmse(target_is_fc=True)))
    # A square signal that is not symmetric (5 samples of 5 regions) is a signal.
    assert np.isfinite(float(O.fc_corr()(p[:5], t[:5])))


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_a_recording_of_another_length(pair, name):
    # A model run against a longer recording of the same regions: FC, FCD distributions and
    # spectra compare; sample-by-sample objectives refuse, naming both shapes.
    p, t = pair
    longer = np.concatenate([t, t[::-1]])
    if name in SUMMARISING:
        assert np.isfinite(float(OBJECTIVES[name](p, longer)))
        if name.startswith("fc_"):
            np.testing.assert_allclose(OBJECTIVES[name](p, longer[:150]), OBJECTIVES[name](p, t), rtol=1e-6)
    else:
        with pytest.raises(ValueError, match=r"prediction has shape \(150, 5\) but target has shape \(300, 5\)"):
            OBJECTIVES[name](p, longer)


@pytest.mark.parametrize(
    "build, exc, match",
    [
        (lambda: O.fcd(window_size=1), ValueError, "window_size must be an int >= 2"),
        (lambda: O.fcd_ks(step_size=0), ValueError, "step_size must be an int >= 1"),
        (lambda: O.fcd_wasserstein(window_size=2.5), TypeError, "window_size must be an int >= 2, got"),
        (lambda: O.fcd_ks(bw_method="wide"), ValueError, "`bw_method` must be None"),
        (
            lambda: O.fcd_wasserstein(midpoints=np.zeros((3, 3))),
            ValueError,
            "`midpoints` must be a 1-D",
        ),
        (lambda: O.fcd_ks(n_diag=-1), ValueError, "n_diag must be an int >= 0"),
        (lambda: O.cosine_sim(epsilon=-1.0), ValueError, "`epsilon` must be >= 0"),
        (
            lambda: O.psd_rmse(unxt.Quantity(1.0, "mV")),
            ValueError,
            r"'dt' has unit 'mV'.*must be a time",
        ),
        (lambda: O.psd_rmse(0.0), ValueError, "`dt` must be a positive"),
        (
            lambda: O.psd_rmse(1.0, freq_range=(50.0, 10.0)),
            ValueError,
            r"`freq_range` = \(50.0, 10.0\) Hz: f_min must not exceed f_max",
        ),
        (lambda: O.psd_rmse(1.0, freq_range=(-1.0, None)), ValueError, "`freq_range`: f_min must be a frequency >= 0"),
        (lambda: O.psd_rmse(1.0, freq_range=5.0), ValueError, r"`freq_range` must be a pair \(f_min, f_max\)"),
        (lambda: O.psd_rmse(1.0, floor=0.0), ValueError, "`floor` must be > 0"),
        (lambda: O.combine(), ValueError, "at least one"),
        (
            lambda: O.combine((1.0, "fc")),
            TypeError,
            r"weighted_objectives\[0\]\[1\] must be an objective function .* got the string 'fc'",
        ),
        (lambda: O.combine(O.fc_corr()), TypeError, r"weighted_objectives\[0\]"),
        (
            lambda: O.combine((1.0, O.fc_corr()), (0.5, O.fcd)),
            TypeError,
            r"weighted_objectives\[1\]\[1\] is the builder brainmass_eqx\.objectives\.fcd, not an "
            r"objective: call it, brainmass_eqx\.objectives\.fcd\(\)",
        ),
    ],
)
def test_bad_builder_arguments(build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_bad_call_arguments(pair):
    p, t = pair
    with pytest.raises(ValueError, match="at least 3 are needed"):
        O.fcd(100, 60)(p, t)
    # The FCD-distribution objectives name the signal that is too short, and how long it must be.
    with pytest.raises(ValueError, match=r"target has 20 samples: 0 FCD window\(s\) of window_size=30, step_size=5, and this objective needs at least 2 \(n_diag \+ 1\)\. Use a longer target \(at least 35 samples\)"):
        O.fcd_ks(30, 5)(p, t[:20])
    with pytest.raises(ValueError, match=r"prediction has 34 samples: 1 FCD window\(s\) .* at least 3 .* \(at least 40 samples\)"):
        O.fcd_wasserstein(30, 5, n_diag=2)(p[:34], t)
    with pytest.raises(ValueError, match=r"`freq_range` = \(600.0, None\) Hz contains none of the Welch frequencies"):
        O.psd_rmse(1.0, freq_range=(600.0, None))(p, t)
    with pytest.raises(ValueError, match="`prediction` needs at least 3 signals"):
        O.fc_corr()(p[:, :1], t[:, :1])
    with pytest.raises(ValueError, match=r"`prediction` must have shape \(time, regions\)"):
        O.fc_rmse()(p[:, 0], t[:, 0])


def test_fc_corr_and_fcd_need_more_than_one_pair():
    x = np.random.default_rng(0).standard_normal((60, 2))
    with pytest.raises(ValueError, match="at least 3 signals"):
        O.fc_corr()(x, x)
    y = np.random.default_rng(1).standard_normal((40, 4))
    with pytest.raises(ValueError, match="at least 3 are needed"):
        O.fcd(30, 10)(y, y)  # 2 windows: a single FCD value


@pytest.mark.parametrize(
    "weight, error, match",
    [
        (jnp.nan, ValueError, "the weight\\) must be finite"),
        ("1", TypeError, "the weight\\) must be a number.*string"),
        (jnp.ones(2), ValueError, "the weight\\) must be a scalar"),
    ],
)
def test_combine_refuses_weights_that_are_not_finite_real_scalars(weight, error, match):
    # A NaN weight made every loss NaN; a string one failed at the first call inside numpy.
    with pytest.raises(error, match=match):
        O.combine((weight, O.fc_corr()))


def test_group_mean_compares_each_subject_with_its_own_target(pair):
    # A group of S subjects stacked on a first axis: one loss per subject, averaged. Before,
    # fc_corr on (S, time, regions) returned (S,), which a Fitter refuses, and the
    # jnp.mean wrapped around it by hand lost the target_is_fc mark (target refused).
    p, t = pair
    rng = np.random.default_rng(1)
    P = np.stack([p, p + 0.2 * rng.standard_normal(p.shape), p[::-1]]).astype(np.float32)
    T = np.stack([t, t, t + 0.1 * rng.standard_normal(t.shape)]).astype(np.float32)
    FC = np.stack([np.corrcoef(x.T) for x in T]).astype(np.float32)
    for one, target in [
        (O.fc_corr(as_loss=True, target_is_fc=True), FC),
        (O.fc_rmse(), T),
        (O.timeseries_rmse(), T),  # each subject's RMSE, not one over the group
        (O.combine((1.0, O.fc_corr(as_loss=True)), (0.5, O.psd_rmse(1.0))), T),
    ]:
        group = O.group_mean(one)
        want = np.mean([float(one(a, b)) for a, b in zip(P, target)])
        assert float(group(P, target)) == pytest.approx(want, rel=1e-5)
        assert float(jax.jit(group)(P, target)) == pytest.approx(want, rel=1e-5)
        assert np.isfinite(jax.grad(lambda s, g=group, y=target: g(s * P, y))(1.0))
        for mark in ("target_is_fc", "same_regions_only", "fc_target_option"):
            assert getattr(group, mark, False) == getattr(one, mark, False)
        assert group.score_of is None
    assert O.group_mean(O.fc_corr()).score_of == "fc_corr (in group_mean)"
    with pytest.raises(ValueError, match=r"first axis, but prediction has shape \(3, 150, 5\) and target has shape \(2, 5, 5\)"):
        O.group_mean(O.fc_rmse(target_is_fc=True))(P, FC[:2])
    with pytest.raises(TypeError, match="builder"):
        O.group_mean(O.fc_rmse)


# The objectives that compare or count samples (sample-by-sample errors, FCD windows).
_SAMPLE_COUNTING = {
    "timeseries_rmse": O.timeseries_rmse(),
    "cosine_sim": O.cosine_sim(as_loss=True),
    "fcd": O.fcd(10, 5, as_loss=True),
    "fcd_ks": O.fcd_ks(10, 5),
    "fcd_wasserstein": O.fcd_wasserstein(10, 5),
}


@pytest.fixture(scope="module")
def steps():
    """A (60, 3) prediction and target, as arrays and as Signals at 1 ms."""
    from brainmass_eqx.datasets import Signal

    rng = np.random.default_rng(3)
    p, t = rng.standard_normal((2, 60, 3)).astype(np.float32)
    return p, t, Signal(p, 1.0), Signal(t, 1.0), Signal


@pytest.mark.parametrize("name", list(_SAMPLE_COUNTING))
def test_signals_at_different_steps_are_refused(steps, name):
    # A Signal knows its step. Before, a prediction Signal every 1 ms against a target
    # Signal every 2 ms was compared sample for sample (timeseries_rmse 1.10, fcd_ks 0.47 for
    # what differed only in rate), and of another length failed in jnp ("sub got
    # incompatible shapes for broadcasting").
    p, t, sp, st, Signal = steps
    fn = _SAMPLE_COUNTING[name]
    want = float(fn(p, t))
    assert float(fn(sp, st)) == pytest.approx(want, rel=1e-6)
    assert float(jax.jit(fn)(sp, st)) == pytest.approx(want, rel=1e-5)
    for target in (Signal(t, 2.0), Signal(t[:30], 2.0)):
        with pytest.raises(ValueError, match=r"prediction is sampled every 1 ms and target every 2 ms; .* "
                           r"sample_every=k\) with dt \* k = 2 ms; .*observation\.TemporalAverage\(2\)\(prediction\) "
                           r"averages the prediction down to the target's step \(or prediction\.signal\[::2\]"):
            fn(sp, target)
    with pytest.raises(ValueError, match=r"every 1 ms and target every 1\.5 ms; .* resample one onto the other's step"):
        fn(sp, Signal(t, 1.5))
    # Plain arrays carry no step: compared as given (documented).
    assert float(fn(p, Signal(t, 2.0))) == pytest.approx(want, rel=1e-6)


def test_signal_shapes_are_their_time_series(steps):
    # jnp.shape of a Signal (a pytree) is (): the shape checks passed two Signals of other
    # regions (fcd_ks of 3 against 4 regions gave a number), named "shape ()" against an
    # array, and fc_corr(target_is_fc=True) refused a Signal prediction outright.
    p, t, sp, st, Signal = steps
    other = Signal(np.random.default_rng(4).standard_normal((60, 4)), 1.0)
    for fn in (O.fcd_ks(10, 5), O.fc_corr(), O.psd_rmse(1.0)):
        with pytest.raises(ValueError, match=r"prediction has shape \(60, 3\) but target has shape \(60, 4\)"):
            fn(sp, other)
    with pytest.raises(ValueError, match=r"prediction has shape \(60, 3\) but target has shape \(30, 3\)"):
        O.timeseries_rmse()(sp, t[:30])
    fc = np.corrcoef(t.T).astype(np.float32)
    assert float(O.fc_corr(target_is_fc=True)(sp, fc)) == pytest.approx(float(O.fc_corr(target_is_fc=True)(p, fc)), rel=1e-6)
    # FC is a correlation over time: any steps.
    assert float(O.fc_corr()(sp, Signal(t, 2.0))) == pytest.approx(float(O.fc_corr()(p, t)), rel=1e-6)
    with pytest.raises(TypeError, match=r"`prediction` is a Trajectory; pass one recorded variable"):
        from brainmass_eqx._simulate import Trajectory

        O.timeseries_rmse()(Trajectory(np.arange(60.0), {"x": p}, {}, {"x": ""}), t)


def test_psd_rmse_refuses_a_signal_at_another_step(steps):
    # psd_rmse reads both signals at its dt: a Signal at 2 ms had its frequencies read
    # at half their value, silently.
    p, t, sp, st, Signal = steps
    fn = O.psd_rmse(1.0, freq_range=(0.0, 200.0))
    assert float(fn(sp, st)) == pytest.approx(float(fn(p, t)), rel=1e-6)
    with pytest.raises(ValueError, match=r"target is a Signal sampled every 2 ms, but this psd_rmse reads both signals at "
                       r"dt=1 ms; build it with the signals' step \(psd_rmse\(dt=2, \.\.\.\)\)"):
        fn(p, Signal(t, 2.0))
    with pytest.raises(ValueError, match=r"prediction is a Signal sampled every 1 ms, but this psd_rmse reads both signals at dt=2 ms"):
        O.psd_rmse(unxt.Quantity(2.0, "ms"))(sp, t)
    assert float(O.psd_rmse(2.0)(Signal(p, 2.0), Signal(t, 2.0))) == pytest.approx(float(O.psd_rmse(2.0)(p, t)), rel=1e-6)


def test_psd_rmse_without_dt_reads_the_signals_step(steps):
    # psd_rmse(dt=...) was required even when both signals are Signals carrying their step.
    p, t, sp, st, Signal = steps
    fn = O.psd_rmse(freq_range=(0.0, 200.0))
    for dt in (1.0, 2.0):
        want = float(O.psd_rmse(dt, freq_range=(0.0, 200.0))(p, t))
        assert float(fn(Signal(p, dt), Signal(t, dt))) == pytest.approx(want, rel=1e-6)
        # A plain array beside a Signal is taken to have its step, as beside a given dt.
        assert float(fn(p, Signal(t, dt))) == pytest.approx(want, rel=1e-6)
    assert float(jax.jit(fn)(sp, st)) == pytest.approx(float(fn(sp, st)), rel=1e-6)
    with pytest.raises(ValueError, match=r"psd_rmse was built without dt, .* plain arrays, which carry none; "
                       r"build it with the step, psd_rmse\(dt=\.\.\.\)"):
        fn(p, t)
    with pytest.raises(ValueError, match=r"prediction is a Signal sampled every 1 ms and target one sampled every 2 ms"):
        fn(Signal(p, 1.0), Signal(t, 2.0))


def test_a_short_run_is_warned_about_once_per_signal_and_can_be_silenced():
    # 12 samples of 16 regions: a short BOLD run laid out right, or a (regions, time) array.
    # combine(fc_corr, fcd_ks) warned six times per call (prediction, target, and the `x`
    # of each metric each objective ran on them); once per signal is enough.
    x = np.random.default_rng(0).standard_normal((12, 16))
    loss = O.combine((1.0, O.fc_corr(as_loss=True)), (1.0, O.fcd_ks(window_size=4, step_size=2)))
    for objective in (loss, O.group_mean(loss)):
        args = (x, x) if objective is loss else (x[None], x[None])
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            objective(*args)
        assert [str(w.message).split(" has")[0] for w in record] == ["`prediction`", "`target`"]
        assert {w.category for w in record} == {M.SignalLayoutWarning}
        assert "filterwarnings('ignore', category=brainmass_eqx.metrics.SignalLayoutWarning)" in str(record[0].message)
        # Pointed at this line, not at jax's vmap inside group_mean.
        assert {w.filename for w in record} == {__file__}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=M.SignalLayoutWarning)
        loss(x, x)


def test_a_signal_is_not_warned_about_again():
    # A Signal is (time, regions) by construction, which warned or was told its layout
    # (layout='time_first'); metrics and objectives warned about it again on every call.
    from brainmass_eqx.datasets import Signal

    x = np.random.default_rng(0).standard_normal((12, 16))
    s = Signal(x, 2000.0, layout="time_first")
    loss = O.combine((1.0, O.fc_corr(as_loss=True)), (1.0, O.fcd_ks(window_size=4, step_size=2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(s, s)
        M.functional_connectivity(s)
        M.power_spectral_density(s, nperseg=4)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loss(s, x)  # the array alone is warned about
    assert [str(w.message).split(" has")[0] for w in record] == ["`target`"]
