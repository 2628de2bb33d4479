"""viz: every plot renders to PNG (Agg), labels its axes with units, and rejects bad input
with a message naming the argument."""

import sys

import matplotlib  # the test extra installs matplotlib
import numpy as np
import pytest
import unxt

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import brainmass_eqx as bx  # noqa: E402
from brainmass_eqx import viz  # noqa: E402
from brainmass_eqx.datasets import load_dataset  # noqa: E402

DT = 1.0  # ms
T = np.arange(2000) * DT
# Region r oscillates at 10 (r + 1) Hz: t is in ms, so the phase is 2 pi f t / 1000.
SIGNAL = np.stack([np.sin(2 * np.pi * 10 * (r + 1) * T / 1000.0) for r in range(3)], axis=1)


@pytest.fixture(scope="module")
def traj():
    node = bx.Hopf(3, a=0.2, w=0.0628, init_x=np.array([0.1, 0.5, 1.0]))
    return bx.simulate(node, 400.0, dt=0.1, sample_every=10)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _render(ax, tmp_path, name):
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000
    # A PNG file starts with its signature.
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timeseries_trajectory_units_and_time_axis(traj, tmp_path):
    ax = viz.plot_timeseries(traj, var="x", labels=["a", "b", "c"])
    _render(ax, tmp_path, "ts")
    assert ax.get_xlabel() == "time (ms)"
    assert ax.get_ylabel() == "x"
    assert len(ax.get_lines()) == 3
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), np.asarray(traj.ts))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]


def test_timeseries_quantity_seconds_and_regions(tmp_path):
    ax = viz.plot_timeseries(unxt.Quantity(SIGNAL, "mV"), dt=unxt.Quantity(1.0, "ms"), regions=[1])
    _render(ax, tmp_path, "ts_q")
    assert ax.get_ylabel() == "signal (mV)"
    assert ax.get_xlabel() == "time (s)"  # 2 s of data: 'auto' switches to seconds
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata()[:2], [0.001, 0.002])
    np.testing.assert_allclose(line.get_ydata(), SIGNAL[:, 1])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["region 1"]
    # All regions, no labels: no legend to name them.
    assert viz.plot_timeseries(SIGNAL).get_legend() is None


def test_trajectory_units_label_axes(tmp_path):
    node = bx.JansenRit(2)
    traj = bx.simulate(node, 5.0, dt=0.1, monitors=["M", "Mv"])
    ax = viz.plot_timeseries(traj)
    _render(ax, tmp_path, "jr")
    assert ax.get_ylabel() == "M (mV)"
    ax = viz.plot_phase_portrait(traj)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("M (mV)", "Mv (mV/ms)")


def test_phase_portrait(traj, tmp_path):
    ax = viz.plot_phase_portrait(traj)
    _render(ax, tmp_path, "phase")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    # One curve and one start marker per region.
    assert len(ax.get_lines()) == 6
    ax = viz.plot_phase_portrait(unxt.Quantity(SIGNAL[:, 0], "mV"), unxt.Quantity(SIGNAL[:, 1], "nA"))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (mV)", "y (nA)")


def test_connectivity_from_connectome(tmp_path):
    conn = load_dataset("example_connectome")
    ax = viz.plot_connectivity(conn)
    _render(ax, tmp_path, "sc")
    assert ax.get_xlabel() == "source region j" and ax.get_ylabel() == "target region i"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(conn.labels)
    np.testing.assert_allclose(ax.get_images()[0].get_array(), np.asarray(conn.weights))
    ax = viz.plot_connectivity(conn, kind="distances")
    assert ax.figure.axes[-1].get_ylabel() == "distances (mm)"
    ax = viz.plot_connectivity(np.asarray(conn.weights), log=True)
    img = np.asarray(ax.get_images()[0].get_array(), dtype=float)
    assert np.isnan(np.diag(img)).all()  # zeros (no self-connections) are blank in log scale


def test_functional_connectivity_and_matrix(tmp_path):
    ax = viz.plot_functional_connectivity(SIGNAL)
    _render(ax, tmp_path, "fc")
    img = np.asarray(ax.get_images()[0].get_array())
    np.testing.assert_allclose(img, np.corrcoef(SIGNAL.T), atol=1e-5)
    assert ax.get_images()[0].get_clim() == (-1.0, 1.0)
    ax = viz.plot_functional_connectivity(np.eye(3), is_matrix=True, labels=["a", "b", "c"])
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), np.eye(3))
    # An FC matrix given without is_matrix=True was taken for a signal of N samples: the
    # panel showed the correlation of the matrix's rows, without a word.
    fc = np.corrcoef(SIGNAL.T)
    with pytest.raises(ValueError, match=r"data is a \(3, 3\) correlation matrix .* pass is_matrix=True"):
        viz.plot_functional_connectivity(fc)
    with pytest.raises(ValueError, match=r"or the signals to compute the FCD from"):
        viz.plot_fcd(np.corrcoef(np.random.default_rng(1).normal(size=(40, 40))), window_size=10)


def test_fcd_time_axes(tmp_path):
    ax = viz.plot_fcd(SIGNAL, window_size=100, step_size=50, dt=unxt.Quantity(1.0, "ms"), time_unit="ms")
    _render(ax, tmp_path, "fcd")
    n_win = (2000 - 100) // 50 + 1
    assert ax.get_images()[0].get_array().shape == (n_win, n_win)
    assert ax.get_xlabel() == "window start (ms)"
    left, right, bottom, top = ax.get_images()[0].get_extent()
    # Pixel centres sit at the window start times 0, 50, ..., (n_win - 1) * 50 ms.
    assert (left, right) == (-25.0, (n_win - 0.5) * 50)
    ax = viz.plot_fcd(SIGNAL, window_size=100, step_size=50)
    assert ax.get_xlabel() == "window"


def test_power_spectrum_in_hz(tmp_path):
    # dt given in seconds: the peaks must still be at 10, 20, 30 Hz.
    ax = viz.plot_power_spectrum(unxt.Quantity(SIGNAL, "mV"), unxt.Quantity(0.001, "s"), nperseg=1000)
    _render(ax, tmp_path, "psd")
    assert ax.get_xlabel() == "frequency (Hz)"
    assert ax.get_ylabel() == "PSD (mV²/Hz)"
    assert ax.get_xscale() == "log"
    for r, line in enumerate(ax.get_lines()):
        f, p = line.get_xdata(), line.get_ydata()
        assert f.min() > 0  # DC dropped on log axes
        assert f[np.argmax(p)] == pytest.approx(10.0 * (r + 1))


def test_power_spectrum_ticks_are_plain_numbers(tmp_path):
    # A BOLD-rate spectrum spans under a decade (about 0.09-0.7 Hz): matplotlib's own minor
    # labels (2x10^-1, 3x10^-1, ...) overlapped there.
    bold_like = np.cumsum(np.random.default_rng(0).normal(size=(150, 3)), axis=0)
    ax = viz.plot_power_spectrum(bold_like, dt=720.0)
    _render(ax, tmp_path, "psd_bold")
    shown = [t.get_text() for t in ax.get_xticklabels(minor=True) if ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    assert shown == ["0.2", "0.5"]


def test_power_spectrum_trajectory_dt_and_average(traj, tmp_path):
    ax = viz.plot_power_spectrum(traj, average=True, loglog=False, nperseg=200)
    _render(ax, tmp_path, "psd_traj")
    (line,) = ax.get_lines()
    # Hopf with w = 0.0628 rad/ms oscillates at w / (2 pi) * 1000 = 10 Hz; dt = 1 ms from traj.ts.
    assert line.get_xdata()[np.argmax(line.get_ydata())] == pytest.approx(10.0, abs=3.0)
    assert ax.get_ylabel() == "PSD (1/Hz)"


def test_fit_history(tmp_path):
    losses = np.array([1.0, 0.5, 0.1, 0.2, 0.01])
    ax = viz.plot_fit_history(losses)
    _render(ax, tmp_path, "hist")
    assert ax.get_yscale() == "log"  # spans a factor of 100
    best = ax.get_lines()[-1]
    assert (best.get_xdata()[0], best.get_ydata()[0]) == (4, 0.01)
    ax = viz.plot_fit_history(np.stack([losses, losses * 2], axis=1), log=False)
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "step"


def test_fit_history_from_fitresult(tmp_path):
    from brainmass_eqx.fit import FitResult

    # scipy's history has one loss per evaluation; the best is the one FitResult names.
    history = np.array([3.0, 1.0, 0.5, 0.5, 0.7])
    result = FitResult(
        backend="scipy", best_loss=0.5, best_params={"a": np.asarray(0.3)}, model=None, prediction=None,
        history=history, n_steps=5, best_step=3, stop_reason="n_steps",
    )  # fmt: skip
    ax = viz.plot_fit_history(result)
    _render(ax, tmp_path, "hist_fit")
    assert ax.get_xlabel() == "evaluation"
    best = ax.get_lines()[-1]
    assert (best.get_xdata()[0], best.get_ydata()[0]) == (3, 0.5)


def test_draws_into_given_axes():
    fig, axs = plt.subplots(1, 2)
    assert viz.plot_timeseries(SIGNAL, ax=axs[1]) is axs[1]
    assert axs[1].get_xlabel() == "sample"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: viz.plot_timeseries(np.zeros((2, 3, 4))), "signal must be"),
        (lambda: viz.plot_timeseries(SIGNAL, ts=np.arange(5)), "ts must have one time per sample"),
        (lambda: viz.plot_timeseries(SIGNAL, labels=["a"]), "labels has 1 entries for 3 regions"),
        (lambda: viz.plot_timeseries(SIGNAL, regions=[7]), r"regions \[7\] are out of range"),
        (lambda: viz.plot_timeseries(SIGNAL, dt=unxt.Quantity(1.0, "mm")), "'dt'"),
        (lambda: viz.plot_timeseries(SIGNAL, var="x"), "var='x' selects a Trajectory variable"),
        (lambda: viz.plot_timeseries(SIGNAL, time_unit="h", dt=1.0), "time_unit must be"),
        (lambda: viz.plot_phase_portrait(SIGNAL), "y is missing"),
        (lambda: viz.plot_phase_portrait(SIGNAL, SIGNAL[:, :2]), "x and y must have the same shape"),
        (lambda: viz.plot_connectivity(np.zeros((2, 3))), r"matrix must be a square \(N, N\) matrix"),
        (lambda: viz.plot_connectivity(np.zeros((2, 2)), log=True), "log=True needs positive entries"),
        (lambda: viz.plot_connectivity(load_dataset("example_connectome"), kind="delays"), "kind must be"),
        (lambda: viz.plot_functional_connectivity(np.zeros((2, 3)), is_matrix=True), "data .is_matrix=True. must be"),
        (lambda: viz.plot_fcd(SIGNAL[:10], window_size=30), "fewer than window_size=30"),
        (lambda: viz.plot_power_spectrum(SIGNAL), "dt is missing"),
        (lambda: viz.plot_fit_history(np.zeros((0,))), "history must be"),
        (lambda: viz.plot_timeseries("abc"), "signal must hold real numbers"),
        (lambda: viz.plot_fcd(SIGNAL, window_size=10, step=2), r"plot_fcd\(\) got an unexpected keyword argument 'step'; did you mean 'step_size'\?"),
        (lambda: viz.plot_power_spectrum(SIGNAL, dt=1.0, freqrange=(1, 10)), r"did you mean 'freq_range'\?"),
    ],
)
def test_bad_input_names_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_matplotlib_keywords_still_pass_and_its_own_errors_stay_its_own():
    ax = viz.plot_timeseries(SIGNAL, dt=1.0, color="k", linestyle="--")
    assert ax.lines[0].get_linestyle() == "--"
    with pytest.raises(AttributeError, match="unexpected keyword argument 'bogus'"):
        viz.plot_timeseries(SIGNAL, dt=1.0, bogus=1)
    plt.close("all")


def test_a_signal_plots_with_its_times_step_and_names():
    signal = bx.Signal(SIGNAL, dt=unxt.Quantity(2, "ms"), labels=["V1", "V2", "MT"])
    ax = viz.plot_timeseries(signal)
    assert ax.get_xlabel() == "time (s)"  # 2000 samples of 2 ms
    np.testing.assert_allclose(ax.lines[0].get_xdata(), (np.arange(SIGNAL.shape[0]) + 1) * 2.0 / 1000.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["V1", "V2", "MT"]
    ax = viz.plot_functional_connectivity(signal)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["V1", "V2", "MT"]
    ax = viz.plot_power_spectrum(signal)
    freqs = np.asarray(ax.lines[0].get_xdata())
    assert freqs.max() == pytest.approx(250.0)  # Nyquist of its 2 ms step
    viz.plot_fcd(signal, window_size=20, step_size=5)
    with pytest.raises(ValueError, match=r"dt = 1 ms differs from the Signal's own step \(2 ms\)"):
        viz.plot_power_spectrum(signal, dt=1.0)
    plt.close("all")


def test_trajectory_var_errors(traj):
    with pytest.raises(ValueError, match="var='z'"):
        viz.plot_timeseries(traj, var="z")
    with pytest.raises(ValueError, match="not with y"):
        viz.plot_phase_portrait(traj, SIGNAL)
    # A variable's name where the times (or y) go: the keyword that takes it.
    with pytest.raises(TypeError, match=r"ts='x' is a name, not sample times; to plot that variable pass var='x'"):
        viz.plot_timeseries(traj, "x")
    with pytest.raises(TypeError, match=r"vars=\(x_name, y_name\), e.g. vars=\('y', ...\), not y='y'"):
        viz.plot_phase_portrait(traj, "y")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    # A None entry in sys.modules makes `import matplotlib.pyplot` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"brainmass_eqx\[viz\]"):
        viz.plot_timeseries(SIGNAL)


def test_nan_correlations_are_grey_not_the_white_of_zero():
    # A diverged region's correlations are NaN; imshow drew them transparent (white), the
    # colour RdBu_r gives a correlation of 0, so the run looked uncorrelated.
    diverged = SIGNAL.copy()
    diverged[1000:, 1] = np.nan
    grey = matplotlib.colors.to_rgba(viz._NAN_COLOUR)
    ax = viz.plot_functional_connectivity(diverged)
    (image,) = ax.get_images()
    assert np.ma.getmaskarray(image.get_array())[0, 1] and image.cmap.get_bad().tolist() == list(grey)
    assert "NaN" in image.colorbar.ax.get_ylabel()
    ax = viz.plot_fcd(diverged, window_size=200, step_size=100)
    (image,) = ax.get_images()
    assert image.cmap.get_bad().tolist() == list(grey)
    # Without NaN the label stays as it was.
    assert viz.plot_functional_connectivity(SIGNAL).get_images()[0].colorbar.ax.get_ylabel() == "correlation"


def test_matrix_ticks_fall_on_whole_regions():
    # Matplotlib's default ticks on a 2-region FC read -0.5, -0.25, 0.0, 0.25, ...
    for ax in (viz.plot_functional_connectivity(SIGNAL[:, :2]), viz.plot_connectivity(np.ones((3, 3)))):
        for ticks in (ax.get_xticks(), ax.get_yticks()):
            inside = ticks[(ticks >= -0.5) & (ticks <= 2.5)]
            assert inside.size and np.all(inside == np.round(inside))


def test_dt_beside_a_trajectory_must_be_its_sample_spacing():
    # Sampled every 10 steps of 0.1 ms after a 100 ms transient: samples 1 ms apart from 100.1 ms.
    node = bx.Hopf(3, a=0.2, w=0.0628, init_x=np.array([0.1, 0.5, 1.0]))
    traj = bx.simulate(node, 400.0, dt=0.1, sample_every=10, transient=unxt.Quantity(100, "ms"))
    t0 = float(traj.ts[0])
    assert t0 == pytest.approx(100.1)
    # The solver's dt was taken as the sample spacing: frequencies 10x too high, FCD
    # window times 10x too short.
    for call in (lambda: viz.plot_power_spectrum(traj, 0.1), lambda: viz.plot_fcd(traj, dt=0.1),
                 lambda: viz.plot_timeseries(traj, dt=unxt.Quantity(1e-4, "s"))):
        with pytest.raises(ValueError, match=r"dt = 0.1 ms differs from the Trajectory's sample spacing \(1 ms"):
            call()
    # Its own spacing, given or not, draws the same axes; window times start at the
    # Trajectory's first sample (the transient was ignored when dt was given).
    for kwargs in ({}, {"dt": 1.0}, {"dt": unxt.Quantity(1.0, "ms")}):
        ax = viz.plot_fcd(traj, window_size=50, step_size=10, time_unit="ms", **kwargs)
        assert ax.get_xlim() == pytest.approx((t0 - 5.0, t0 + (ax.get_images()[0].get_array().shape[0] - 0.5) * 10.0))


def test_power_spectrum_of_a_diverged_or_constant_signal_says_why():
    diverged = SIGNAL.copy()
    diverged[1500:, 2] = np.nan
    # Before: matplotlib's "Data cannot be log-scaled because all values are <= 0".
    with pytest.raises(ValueError, match=r"NaN or inf in regions \[2\] \(a diverged run\?\)"):
        viz.plot_power_spectrum(diverged, DT)
    ax = viz.plot_power_spectrum(diverged, DT, regions=[0, 1])  # the finite regions still plot
    assert len(ax.lines) == 2
    # Before: an empty frame, log axes having nothing positive to show (a constant signal
    # has no power above 0 Hz). Now its zeros on a linear power axis, and a warning.
    with pytest.warns(UserWarning, match="constant signal"):
        ax = viz.plot_power_spectrum(np.full((1000, 2), 0.5), DT)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
    assert np.all(ax.lines[0].get_ydata() == 0)


def test_regions_picked_by_index_are_named_in_every_line_plot(traj):
    # "labels, regions: as in plot_timeseries": there the legend says "region <index>".
    for ax in (viz.plot_timeseries(SIGNAL, dt=DT, regions=[0, 2]),
               viz.plot_phase_portrait(traj, regions=[0, 2]),
               viz.plot_power_spectrum(SIGNAL, DT, regions=[0, 2])):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["region 0", "region 2"]


def test_an_ensemble_trajectory_says_how_to_take_one_run():
    import jax
    import jax.numpy as jnp

    runs = bx.ensemble(lambda a: bx.simulate(bx.Hopf(2, a=a), 20.0, dt=0.1, sample_every=10), jnp.array([0.1, 0.2]))
    # Before: "select one run of an ensemble first (e.g. signal[0])", and traj[0] is a KeyError.
    with pytest.raises(ValueError, match=r"ensemble of 2 runs.*jax.tree.map\(lambda a: a\[i\], traj\)"):
        viz.plot_timeseries(runs)
    ax = viz.plot_timeseries(jax.tree.map(lambda a: a[1], runs))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.asarray(runs["x"][1, :, 0]))


def test_a_continued_runs_signal_plots_at_the_runs_own_times(traj):
    # A run continued from `traj` (which ended at 400 ms) records from 400.1 ms on; its
    # Signal was plotted at (i + 1) dt, i.e. from 1 ms, as if the run started at 0 (and a
    # run from 0 sampled every 10 steps, whose first sample is at 0.1 ms, from 1 ms).
    node = bx.Hopf(3, a=0.2, w=0.0628, init_x=np.array([0.1, 0.5, 1.0]))
    more = bx.simulate(node, 200.0, dt=0.1, sample_every=10, y0=traj)
    sig = more.signal("x")
    assert sig.t_first == pytest.approx(400.1) and traj.signal("x").t_first == pytest.approx(0.1)
    np.testing.assert_array_equal(sig.ts, np.asarray(more.ts))
    assert "first at 400.1 ms" in repr(sig)
    t0 = float(more.ts[0])
    for data in (more, sig):
        var = "x" if data is more else None
        line = viz.plot_timeseries(data, var=var, time_unit="ms").lines[0]
        np.testing.assert_allclose(line.get_xdata(), np.asarray(more.ts), rtol=0, atol=1e-9)
        ax = viz.plot_fcd(data, var=var, window_size=50, step_size=10, time_unit="ms")
        assert ax.get_xlim() == pytest.approx((t0 - 5.0, t0 + (ax.get_images()[0].get_array().shape[0] - 0.5) * 10.0))
        # The spectrum needs the step alone: the 1 ms samples' frequencies.
        freqs = viz.plot_power_spectrum(data, var=var).lines[0].get_xdata()
        np.testing.assert_allclose(freqs, viz.plot_power_spectrum(np.asarray(more["x"]), 1.0).lines[0].get_xdata())
    # A Signal made by hand: sample i at (i + 1) dt unless its first time is given.
    assert bx.Signal(SIGNAL, DT).ts[0] == DT and "first at" not in repr(bx.Signal(SIGNAL, DT))
    assert bx.Signal(SIGNAL, DT, t_first=unxt.Quantity(2, "s")).ts[1] == pytest.approx(2001.0)
    with pytest.raises(ValueError, match="'t_first' must be a finite scalar time"):
        bx.Signal(SIGNAL, DT, t_first=np.nan)
