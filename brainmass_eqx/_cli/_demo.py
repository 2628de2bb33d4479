"""``brainmass-eqx demo``: a whole-brain model simulated and fitted in about a minute.

1. Load a structural connectome (the bundled 8-region example, or TVB's 76 regions).
2. Build a delayed network of noisy Hopf oscillators (10 Hz, just below their bifurcation)
   and simulate it at a known global coupling: its FC is the target.
3. Fit the global coupling k from a wrong start to that FC, with a different noise
   realisation (the target is data, not a copy of the model's own run).
4. Print a report and write a six-panel figure.
"""

from __future__ import annotations

import time

import numpy as np

from .._text import table
from ._errors import CLIError, first_line

# The demo's model: Hopf nodes at 10 Hz slightly below their bifurcation (a < 0), driven by
# noise and coupled diffusively with short delays. Their FC is shaped by the connectome
# and by the coupling k. The settings were calibrated per connectome so that 4 s of
# activity pin k down (FC from much shorter runs is dominated by sampling noise): on 76
# regions the same k correlates regions less, white noise's uncorrelated fast variance
# flattens the loss, and OU noise (slower, like the coupled signal) keeps it identifiable.
SETTINGS = {
    "example_connectome": dict(k_true=0.15, k_start=0.02, box=(0.0, 0.5), speed=20.0, noise="white"),
    "tvb_connectivity_76": dict(k_true=2.0, k_start=0.3, box=(0.0, 6.0), speed=10.0, noise="ou"),
}
HOPF = dict(a=-0.02, w=2 * np.pi * 10.0 / 1000.0)  # w in rad/ms: 10 Hz
NOISE_SIGMA = 0.02  # white: per sqrt(ms); OU: stationary amplitude
NOISE_TAU = 5.0  # ms, OU correlation time
DT = 0.2  # ms
DURATION = 4000.0  # ms
TRANSIENT = 200.0  # ms
SAMPLE_EVERY = 1.0  # ms
GENERATIONS = 8
POPSIZE = 8
LANDSCAPE = 12  # couplings on the loss-landscape panel


def _say(text: str = "") -> None:
    print(text, flush=True)


def _connectome(name: str):
    from ..datasets import load_dataset

    aliases = {"tvb76": "tvb_connectivity_76", "tvb": "tvb_connectivity_76"}
    name = aliases.get(name, name)
    if name not in ("example_connectome", "tvb_connectivity_76"):
        raise CLIError(f"--connectome: the demo runs on example_connectome or tvb_connectivity_76, got {name!r}.")
    try:
        conn = load_dataset(name)
    except Exception as err:
        raise CLIError(f"--connectome {name}: {first_line(err)}") from None
    # Normalise so that one k means the same on both connectomes.
    return name, conn.normalised("row_sum")


def _model(conn, k, settings):
    from ..models import Hopf
    from ..noise import OUProcess, WhiteNoise, with_noise
    from ._build import build_network

    noise = WhiteNoise(NOISE_SIGMA) if settings["noise"] == "white" else OUProcess(NOISE_SIGMA, tau=NOISE_TAU)
    node = with_noise(Hopf(conn.n_regions, **HOPF), {"x": noise})
    return build_network(node, conn, coupling="diffusive", k=k, speed=settings["speed"], var="x")


def run_demo(args) -> int:
    import jax

    from .._param import Param
    from .._simulate import simulate
    from ..fit import Fitter
    from ..metrics import functional_connectivity, matrix_correlation
    from ._commands import _check_output, _figure_formats, fc_loss

    t_start = time.perf_counter()
    name, conn = _connectome(args.connectome)
    if args.plot is not None:  # a bad path stops the demo now, not after a minute's work
        args.plot = _check_output(args.plot, "--plot", _figure_formats())
    cfg = SETTINGS[name]
    k_true, k_start, speed = cfg["k_true"], cfg["k_start"], cfg["speed"]
    n = conn.n_regions
    delays = np.asarray(conn.distances)[np.asarray(conn.weights) > 0] / speed
    _say("brainmass_eqx demo")
    _say(f"  connectome   {name}: {n} regions, tract lengths up to {np.max(conn.distances):.0f} mm")
    noise = "white noise" if cfg["noise"] == "white" else f"OU noise (tau {NOISE_TAU:g} ms)"
    _say(f"  model        Hopf oscillators at 10 Hz (a = {HOPF['a']}), {noise} sigma = {NOISE_SIGMA}")
    _say(f"  network      diffusive coupling, conduction speed {speed:g} mm/ms -> delays up to {delays.max():.1f} ms")
    _say(f"  simulation   {DURATION / 1000:g} s at dt = {DT} ms, first {TRANSIENT:g} ms discarded")
    _say()

    def run(model, seed, progress=False):
        return simulate(
            model, DURATION, dt=DT, key=jax.random.key(seed), transient=int(TRANSIENT / DT),
            sample_every=int(SAMPLE_EVERY / DT), monitors=["x"], progress=progress,
        )  # fmt: skip

    _say(f"[1/4] simulating the target network (true k = {k_true:g})")
    t0 = time.perf_counter()
    target_traj = run(_model(conn, k_true, cfg), args.seed, progress=args.progress)
    target_fc = np.asarray(functional_connectivity(target_traj["x"]))
    _say(f"      {target_traj['x'].shape[0]} samples x {n} regions in {time.perf_counter() - t0:.1f} s")

    _say(f"[2/4] fitting k from k = {k_start:g} to the target FC (nevergrad DE, {POPSIZE} candidates per generation, batched with vmap)")
    fit_key = jax.random.key(args.seed + 2)  # seeds nevergrad

    def predict(model):  # the model's FC, from another noise realisation than the target's
        return functional_connectivity(run(model, args.seed + 1)["x"])

    model0 = _model(conn, Param(k_start, fit=True, bounds=cfg["box"]), cfg)
    fitter = Fitter(model0, "DE", predict=predict, objective=fc_loss("rmse"), backend="nevergrad")
    t0 = time.perf_counter()
    result = fitter.fit(target_fc, n_steps=GENERATIONS, key=fit_key, popsize=POPSIZE, progress=args.progress)
    fit_seconds = time.perf_counter() - t0
    (k_fit,) = [float(np.asarray(v)) for v in result.best_params.values()]
    _say(f"      {result.n_steps} generations in {fit_seconds:.1f} s")
    # The loss at the start value, exactly as the fit computes it (its aux is the prediction).
    loss_start, start_prediction = fitter.loss(None, target_fc)
    fitted_fc, start_fc = np.asarray(result.prediction), np.asarray(start_prediction)

    _say(f"[3/4] the loss landscape: {LANDSCAPE} couplings in one vmap")
    t0 = time.perf_counter()
    (name_k,) = fitter.names
    ks = np.linspace(*cfg["box"], LANDSCAPE)
    landscape = np.asarray(jax.vmap(lambda k: fitter.loss({name_k: k}, target_fc)[0])(ks))
    _say(f"      in {time.perf_counter() - t0:.1f} s; lowest loss on the grid at k = {ks[np.argmin(landscape)]:.3f}")

    _say("[4/4] report")
    rows = [
        ("global coupling k", f"{k_start:.3f}", f"{k_fit:.3f}", f"{k_true:.3f}"),
        ("FC RMSE (the loss)", f"{float(loss_start):.4f}", f"{result.best_loss:.4f}", "-"),
        ("FC correlation with the target", f"{float(matrix_correlation(start_fc, target_fc)):.3f}",
         f"{float(matrix_correlation(fitted_fc, target_fc)):.3f}", "-"),
    ]  # fmt: skip
    _say(table(("", "start", "fitted", "true"), rows))
    error = abs(k_fit - k_true) / k_true
    _say(f"      recovered k within {100 * error:.1f} % of the true value")

    figure = None
    if args.plot is not None:
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            _say("(no figure: matplotlib is not installed; pip install 'brainmass_eqx[viz]')")
        else:
            from ._commands import _save_figure
            from ._figures import demo_figure

            fig = demo_figure(
                conn=conn, traj=target_traj, var="x", target_fc=target_fc, result=result,
                fitted_fc=fitted_fc, k_true=k_true, k_fit=k_fit, landscape=(ks, landscape),
            )  # fmt: skip
            figure = _save_figure(fig, args.plot)
    _say()
    _say(f"done in {time.perf_counter() - t_start:.0f} s" + (f"; figure: {figure}" if figure else ""))
    return 0
