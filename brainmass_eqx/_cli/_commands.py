"""The subcommands: ``models``, ``datasets``, ``simulate``, ``fit`` and ``demo``."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from typing import Any

import numpy as np

from .._checks import closest_name, whole_steps
from .._text import table, value_text
from . import _build
from ._errors import CLIError

# -- models / datasets ----------------------------------------------------------------------


def cmd_models(args) -> int:
    from ..models import model_registry

    if args.name:
        print(_build.resolve_model(args.name, "models NAME"))
        return 0
    rows = [
        (d.name, d.brainmass_name or "-", d.category, ",".join(d.states), d.cls.coupling_input, d.use_case)
        for d in model_registry().values()
    ]
    print(table(("model", "brainmass", "category", "states", "coupled", "use case"), rows))
    print(f"\n{len(rows)} models. Details of one: brainmass-eqx models NAME")
    return 0


def cmd_datasets(args) -> int:
    from ..datasets import list_datasets

    print(table(("data set", "description"), list_datasets(), max_width=90))
    return 0


# -- shared pieces of simulate / fit / demo -------------------------------------------------


class Setup:
    """A model on a connectome, as the options describe it."""

    def __init__(self, args, fit: dict[str, tuple[float, float]] | None = None):
        _check_args(args)
        fit = dict(fit or {})
        self.desc = _build.resolve_model(args.model)
        _build.check_coupling(args.coupling)
        self.conn = _build.load_connectome(args.connectome, args.tract_lengths)
        # After the loading, which says first when --tract-lengths has no place at all.
        _check_used(args, _MODEL_OPTIONS, {"noise_tau": args.noise > 0, "tract_lengths": args.speed is not None})
        if args.normalise != "none":
            self.conn = self.conn.normalised(args.normalise)
        self.var = _build.coupled_var(self.desc, args.coupled_var)
        self.n = self.conn.n_regions
        k_box = fit.pop("k", None)
        node = _build.make_node(self.desc, self.n, args.param or [], fit)
        self.inputs = _build.constant_inputs(self.desc, args.input or [])
        if args.noise > 0:
            node = _with_noise(node, self.desc, args.noise, args.noise_tau)
        k: Any = args.k
        if k_box is not None:
            from .._param import Param

            k = Param(_build.start_inside(args.k, k_box), fit=True, bounds=k_box)
        self.model = _build.build_network(
            node, self.conn, coupling=args.coupling, k=k, speed=args.speed, var=self.var,
            self_connections=args.self_connections, source=args.connectome,
        )
        self.args = args
        samples = _recorded_samples(args)
        if samples < self.n:
            # Said here in the command's words; the FC's own warning would suggest a transpose.
            sys.stderr.write(
                f"warning: the run records {samples} samples of {self.n} regions ({_what_is_sampled(args)}): "
                "an FC from fewer samples than regions is poorly determined; make --duration longer.\n"
            )
        #: The recorded variable, whose FC is computed and fitted.
        self.recorded = "bold" if args.bold is not None else self.var
        # As Quantities, so that simulate checks them against the step grid; built here,
        # not in `run`, which `fit` calls inside jax.jit (where a new Quantity is traced).
        from .._units import quantity

        self.transient = quantity(args.transient, "ms")
        self.sample_every = None if args.sample_every is None else quantity(args.sample_every, "ms")
        self.tr = None if args.bold is None else quantity(args.bold, "ms")

    def run(self, model=None, *, key=None, progress=False, check_finite=True):
        """The `Trajectory` of the recorded variable (of ``model``, default the setup's):
        the coupled variable, or with ``--bold`` the BOLD it drives, every TR."""
        import jax

        from .._simulate import simulate
        from ..observation import simulate_bold

        a = self.args
        common = dict(
            dt=a.dt,
            key=jax.random.key(a.seed) if key is None else key,
            transient=self.transient,
            inputs=self.inputs or None,
            progress=progress,
            check_finite=check_finite,
        )
        model = self.model if model is None else model
        if self.tr is not None:
            return simulate_bold(model, a.duration, tr=self.tr, driver=self.var, **common)
        return simulate(model, a.duration, sample_every=self.sample_every, monitors=[self.var], **common)



def _recorded_samples(a) -> int:
    """The number of samples the run records: every TR with ``--bold``, else every
    ``--sample-every`` after the transient."""
    period = a.bold if a.bold is not None else a.sample_every
    return int((a.duration - a.transient) / period + 1e-9)


def _what_is_sampled(a) -> str:
    """The recorded span and its sampling in the options' words (``--duration 2`` reads
    ``2 ms sampled every 1 ms (--sample-every)``)."""
    after = f"{a.duration - a.transient:g} ms" + (f" after --transient {a.transient:g} ms" if a.transient else "")
    if a.bold is not None:
        return f"{after} sampled every {a.bold:g} ms (--bold)"
    return f"{after} sampled every {a.sample_every:g} ms (--sample-every)"


# Options that only one setting uses: (option, what it is, the setting that uses it, the fix
# that adds it, its default). Given without that setting they had no effect, unsaid
# (`--backend grad --popsize 16`); they are None until checked, then their default.
_MODEL_OPTIONS = {
    "noise_tau": ("--noise-tau", "the noise's correlation time", "--noise SIGMA (> 0)", "add --noise SIGMA", 10.0),
    "tract_lengths": ("--tract-lengths", "the tract lengths, which set delays", "--speed", "add --speed SPEED", None),
}
_FIT_OPTIONS = {
    "popsize": ("--popsize", "the population per generation", "--backend nevergrad", "add --backend nevergrad", 8),
    "lr": ("--lr", "the learning rate (Adam)", "--backend grad", "add --backend grad", 0.05),
}


def _check_used(a, options: dict, used: dict[str, bool]) -> None:
    """Refuse an option whose setting is not chosen (``used[attr]`` false), naming the
    setting that uses it; fill in the defaults of those not given."""
    for attr, (option, what, user, fix, default) in options.items():
        if getattr(a, attr) is None:
            setattr(a, attr, default)
        elif not used[attr]:
            raise CLIError(f"{option}: {what}, used only with {user}, which is not given here: {fix} or drop {option}.")


def _check_once(pairs, option: str) -> None:
    """Refuse a name given twice to a repeatable ``NAME=...`` option (the last one won, unsaid)."""
    names = [name for name, _ in pairs or ()]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise CLIError(f"{option}: {twice} is given {names.count(twice)} times; give it once.")


def _check_args(a) -> None:
    """The options against each other (each alone is checked by argparse), and the output
    files, before any work is done."""
    _check_once(a.param, "--param")
    _check_once(a.input, "--input")
    if a.transient >= a.duration:
        raise CLIError(f"--transient ({a.transient} ms) must be shorter than --duration ({a.duration} ms).")
    if a.dt > a.duration:
        raise CLIError(f"--dt ({a.dt} ms) must not exceed --duration ({a.duration} ms).")
    if a.bold is not None:
        if a.sample_every is not None:
            raise CLIError("--sample-every and --bold: with --bold the BOLD is recorded every TR; drop --sample-every.")
        _check_whole_steps(a.bold, a.dt, "--bold")
        samples = _recorded_samples(a)
        if samples < 3:
            raise CLIError(
                f"--bold: {a.duration - a.transient:g} ms after the transient hold {samples} BOLD sample(s) of "
                f"TR {a.bold:g} ms; an FC needs many (BOLD FC is usually taken over minutes): make --duration longer."
            )
    else:
        given = a.sample_every is not None
        if not given:
            a.sample_every = 1.0
        _check_whole_steps(a.sample_every, a.dt, "--sample-every", "" if given else " (--sample-every defaults to 1 ms)")
        samples = _recorded_samples(a)
        if samples < 3:
            # A plain `--duration 2` is 2 ms; the library's warnings about it (a sample_every
            # keyword, a transpose, a missing noise) would each miss the cause.
            raise CLIError(
                f"--duration: {_what_is_sampled(a)} give {samples} sample(s); an FC needs many: make --duration "
                f"longer (plain numbers are ms: --duration {a.duration:g}s means seconds)."
            )
    a.out = _check_output(a.out, "--out", {"npz"})
    if a.plot is not None:
        a.plot = _check_output(a.plot, "--plot", _figure_formats())


def _still_improving(result) -> bool:
    """Whether a fit's best loss came at its last step, more than 1 % below the best of its
    first three quarters (a search stopped while it was still finding better values)."""
    history = np.asarray(result.history, dtype=float)
    head = history[: max(1, 3 * history.size // 4)]
    return (
        history.size > 3
        and result.best_step == history.size - 1
        and np.isfinite(head).any()
        and result.best_loss < np.nanmin(np.where(np.isfinite(head), head, np.nan)) - 0.01 * abs(result.best_loss)
    )


def _check_whole_steps(period: float, dt: float, option: str, note: str = "") -> None:
    try:
        whole_steps(period, dt, option, dt_name="--dt", at_least_one=True)
    except ValueError as err:
        raise CLIError(f"{err}{note}") from None


def _with_noise(node, desc, sigma: float, tau: float):
    from ..noise import OUProcess, with_noise

    target = desc.cls.coupling_input
    return with_noise(node, {target: OUProcess(sigma, tau=tau)})


def _check_folder(path: str, option: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{option}: folder does not exist: {folder}")


def _figure_formats() -> set[str]:
    """The file types matplotlib writes (none without matplotlib: no figure is drawn then)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return set()
    return set(FigureCanvasBase.get_supported_filetypes())


def _check_output(path: str, option: str, formats: set[str]) -> str:
    """The file an output option writes, checked before the run: its folder exists, and its
    type is one that is written (np.savez and matplotlib add an extension to a bare name:
    ``--out run`` wrote ``run.npz``, announced as ``run``)."""
    _check_folder(path, option)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    default = "npz" if "npz" in formats else "png"
    if not ext:
        return f"{path}.{default}"
    if formats and ext not in formats:
        raise CLIError(f"{option} {path}: cannot write a .{ext} file; use one of: {', '.join('.' + f for f in sorted(formats))}.")
    return path


def _save(path: str, **arrays) -> str:
    _check_folder(path, "--out")
    np.savez(path, **arrays)
    return path


def _save_figure(fig, path: str) -> str:
    _check_folder(path, "--plot")
    fig.savefig(path, dpi=110)
    return path


def _meta(setup: Setup, **extra) -> str:
    a = setup.args
    return json.dumps(
        dict(
            model=setup.desc.name, connectome=a.connectome, normalise=a.normalise, coupling=a.coupling, coupled_var=setup.var,
            self_connections=a.self_connections,
            k=a.k, speed=a.speed, duration_ms=a.duration, dt_ms=a.dt, transient_ms=a.transient,
            sample_every_ms=a.sample_every, bold_tr_ms=a.bold, noise_sigma=a.noise, noise_tau_ms=a.noise_tau, seed=a.seed,
            params={name: value_text(v) for name, v in (a.param or [])},
            inputs=setup.inputs, **extra,
        )
    )  # fmt: skip


def _fc_corr(a, b) -> float:
    from ..metrics import matrix_correlation

    return float(matrix_correlation(np.asarray(a), np.asarray(b)))


# A network without noise whose every region sits at a fixed point records constant signals,
# whose correlations are undefined (taken as 0): the FC is the identity matrix.
_NO_ACTIVITY_FIX = (
    "Without noise the model sits at a fixed point: add --noise SIGMA (e.g. --noise 0.02), or "
    "--param values (or a JansenRit drive such as --input E=220Hz) that make it oscillate."
)


def _constant_regions(x: np.ndarray, labels) -> list[str]:
    """The labels of the regions whose recorded signal never changes."""
    return [str(labels[i]) for i in np.flatnonzero(np.ptp(x, axis=0) == 0)]


def _together_text(who: str, n: int, recorded: str, seen: str = "record the same") -> str:
    """Why every FC entry is 1, and the fix; ``who`` the regions' owner (``'all'``, ``"the
    fitted model's"``), ``seen`` what shows it: their signals (``'record the same'``), or
    only their FC (`_FROM_FC`)."""
    return (
        f"{who} {n} regions {seen} {recorded} (identical nodes started alike, so the coupling between "
        "them cancels); every FC entry is 1, which says nothing about the connectome. Noise drives each region "
        "on its own: add --noise SIGMA (e.g. --noise 0.02)."
    )


# fit sees the prediction, an FC: regions perfectly correlated, not necessarily equal.
_FROM_FC = "move together, perfectly correlated in"


def _fc_all_ones(fc: np.ndarray) -> bool:
    """Whether every off-diagonal entry of the FC ``fc`` is 1 (to float32's precision): the
    regions move together, as `_regions_move_together` tells from the signals."""
    off = fc[~np.eye(fc.shape[0], dtype=bool)]
    return fc.shape[0] > 1 and bool(np.all(np.abs(off - 1.0) <= 1e-5))


def _regions_move_together(x: np.ndarray) -> bool:
    """Whether every region records the same changing signal (identical nodes started alike,
    whose diffusive coupling then cancels): an FC of ones that says nothing about the
    connectome."""
    if x.shape[1] < 2 or np.ptp(x[:, 0]) == 0:
        return False
    return bool(np.max(np.abs(x - x[:, :1])) <= 1e-6 * np.max(np.abs(x)))


def _wants_plot(args) -> bool:
    if args.plot is None:
        return False
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("(no figure: matplotlib is not installed; pip install 'brainmass_eqx[viz]')")
        return False
    return True


# -- simulate -------------------------------------------------------------------------------


def cmd_simulate(args) -> int:
    setup = Setup(args)
    print(
        f"simulating {setup.desc.name} x {setup.n} regions on {args.connectome} "
        f"({args.coupling} coupling, k={args.k:g}, "
        + (f"speed {args.speed:g} mm/ms" if args.speed else "no delays")
        + f"), {args.duration:g} ms at dt={args.dt:g} ms"
        + (f", BOLD driven by {setup.var} every {args.bold:g} ms" if args.bold is not None else "")
    )
    t0 = time.perf_counter()
    traj = setup.run(progress=args.progress)
    x = np.asarray(traj[setup.recorded])
    elapsed = time.perf_counter() - t0
    fc = _build.fc_of(x)
    out = _save(
        args.out, ts=np.asarray(traj.ts), fc=fc, weights=np.asarray(setup.conn.weights),
        labels=np.asarray(setup.conn.labels), meta=_meta(setup), **{setup.recorded: x},
    )  # fmt: skip
    print(f"done in {elapsed:.1f} s: {setup.recorded} {x.shape} (time x regions), unit {traj.units.get(setup.recorded) or '1'}")
    constant = _constant_regions(x, setup.conn.labels)
    if constant:
        shown = ", ".join(constant[:5]) + (", ..." if len(constant) > 5 else "")
        sys.stdout.flush()  # the warning after the line above, also in a log of both streams
        sys.stderr.write(
            f"warning: {setup.recorded} is constant in {len(constant)} of {setup.n} regions ({shown}); their FC "
            f"entries are 0. {_NO_ACTIVITY_FIX}\n"
        )
    elif _regions_move_together(x):
        sys.stdout.flush()
        sys.stderr.write(f"warning: {_together_text('all', setup.n, setup.recorded)}\n")
    print(f"wrote {out} (ts [ms], {setup.recorded}, fc, weights, labels, meta)")
    if _wants_plot(args):
        from ._figures import simulation_figure

        fig = simulation_figure(traj, setup.recorded, setup.conn, title=f"{setup.desc.name} on {args.connectome}")
        print(f"wrote {_save_figure(fig, args.plot)}")
    return 0


# -- fit ------------------------------------------------------------------------------------


def _default_box(setup_args, desc, name: str) -> tuple[float, float]:
    if name == "k":
        return (0.0, max(1.0, 2.0 * abs(setup_args.k)))
    domain = desc.parameters[name]["domain"]
    if not isinstance(domain, str):
        return tuple(float(v) for v in domain)
    raise CLIError(
        f"--fit {name}: give its search box with --bounds {name}=LOW:HIGH "
        "(only the coupling k and parameters with a bounded domain have a default box)."
    )


def fc_loss(kind: str):
    """The loss between the model's FC and the target FC, both ``(N, N)``: ``'rmse'``, the
    RMSE between the upper triangles (sensitive to the level of correlation, which the
    coupling sets), or ``'corr'``, $1 - $ the correlation between them (the pattern only)."""
    import jax.numpy as jnp

    from ..metrics import matrix_correlation

    def rmse(fc_model, fc):
        iu = jnp.triu_indices(fc.shape[0], 1)
        return jnp.sqrt(jnp.mean((fc_model[iu] - fc[iu]) ** 2))

    def corr(fc_model, fc):
        return 1.0 - matrix_correlation(fc_model, fc)

    return {"rmse": rmse, "corr": corr}[kind]


def _make_fitter(setup: Setup, args):
    import jax

    from ..fit import Fitter
    from ..metrics import functional_connectivity

    key = jax.random.key(args.seed)

    def predict(model):  # the model's FC: the target is an FC matrix
        # A candidate that diverges (too strong a coupling for dt) scores a non-finite loss,
        # which the search avoids, rather than ending the fit.
        return functional_connectivity(setup.run(model, key=key, check_finite=False)[setup.recorded])

    optimizer = None
    if args.backend == "grad":
        import optax

        optimizer = optax.adam(args.lr)
    return Fitter(setup.model, optimizer, predict=predict, objective=fc_loss(args.loss), backend=args.backend)


def cmd_fit(args) -> int:
    import jax

    from ..fit._fitter import loss_is_flat

    _check_used(args, _FIT_OPTIONS, {"popsize": args.backend == "nevergrad", "lr": args.backend == "grad"})
    # `--fit k,a` reads as two names, as `--fit k --fit a` does.
    names = [n.strip() for given in (args.fit or ["k"]) for n in given.split(",") if n.strip()]
    desc = _build.resolve_model(args.model)
    fittable = ["k", *desc.parameters]
    for name in names:
        if name not in fittable:
            close = closest_name(name, fittable)
            raise CLIError(
                f"--fit {name}: {desc.name} has no parameter {name!r}"
                + (f" (did you mean {close!r}?)" if close else "")
                + f"; fittable: the coupling k and {desc.name}'s {', '.join(desc.parameters)}."
            )
    _check_once(args.bounds, "--bounds")
    boxes = dict(args.bounds or [])
    unknown = [n for n in boxes if n not in names]
    if unknown:
        raise CLIError(f"--bounds: {unknown} are not fitted; add --fit {unknown[0]} or drop the bound.")
    fit = {name: boxes.get(name) or _default_box(args, desc, name) for name in names}
    setup = Setup(args, fit=fit)
    target_fc, what = _build.load_target_fc(args.target, setup.n)
    print(
        f"fitting {', '.join(names)} of {setup.desc.name} x {setup.n} regions on {args.connectome} "
        f"to the FC of {what} (loss: FC {args.loss}, backend {args.backend}, {args.steps} steps)"
    )
    fitter = _make_fitter(setup, args)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # A flat loss is reported below in one line, with the cause the command can tell.
        warnings.filterwarnings("ignore", message="Fitter: the loss was", category=RuntimeWarning)
        result = fitter.fit(
            target_fc, n_steps=args.steps, key=jax.random.key(args.seed), progress=args.progress,
            **({"popsize": args.popsize} if args.backend == "nevergrad" else {}),
        )
    elapsed = time.perf_counter() - t0
    fc = np.asarray(result.prediction)
    flat = loss_is_flat(result)
    if flat and fc.shape[0] > 1 and not np.any(fc[~np.eye(fc.shape[0], dtype=bool)]):
        raise CLIError(
            f"the model's FC is the identity at every tried value (loss {result.best_loss:.4g} throughout "
            f"{result.n_steps} steps): every region's {setup.recorded} is constant, so nothing guides the fit. "
            + _NO_ACTIVITY_FIX
        )
    together = _fc_all_ones(fc)
    if flat and together:
        # As the identity above: at every tried value, nothing guides the fit.
        raise CLIError(
            f"the model's FC is all ones at every tried value (loss {result.best_loss:.4g} throughout "
            f"{result.n_steps} steps): {_together_text('its', setup.n, setup.recorded, _FROM_FC)}"
        )
    r = _fc_corr(fc, target_fc)
    print(f"done in {elapsed:.1f} s: best loss {result.best_loss:.4g} (FC correlation {r:.3f}) at step {result.best_step}")
    if together:
        sys.stdout.flush()
        sys.stderr.write("warning: " + _together_text("the fitted model's", setup.n, setup.recorded, _FROM_FC) + "\n")
    elif flat:
        sys.stdout.flush()
        sys.stderr.write(
            f"warning: the loss was {result.best_loss:.4g} at every one of the {result.n_steps} steps: the fitted "
            "parameters do not change it, so the table below is where the search stopped, not a fit.\n"
        )
    elif _still_improving(result):
        sys.stdout.flush()
        sys.stderr.write(
            f"warning: the best loss came at the last of {result.n_steps} steps, more than 1 % below the best of "
            "the first three quarters: the search was still improving; more --steps"
            + (" (and --popsize)" if args.backend == "nevergrad" else "") + " may find a better fit.\n"
        )
    # The names the user gave (--fit w), not the model's paths to them (node.model.w).
    fitted = {_short(n, fit): v for n, v in result.best_params.items()}
    print(table(("parameter", "fitted", "box"), [(n, value_text(v), f"{fit[n]}") for n, v in fitted.items()]))
    out = _save(
        args.out, fc=fc, target_fc=target_fc, history=np.asarray(result.history),
        best_loss=result.best_loss, meta=_meta(setup, fitted={n: value_text(v) for n, v in fitted.items()}),
        **{f"param_{n}": np.asarray(v) for n, v in fitted.items()},
    )  # fmt: skip
    print(f"wrote {out}")
    if _wants_plot(args):
        from ._figures import fit_figure

        fig = fit_figure(
            result, target_fc, fc, setup.conn, loss=args.loss, fitted={n: value_text(v) for n, v in fitted.items()}
        )
        print(f"wrote {_save_figure(fig, args.plot)}")
    return 0


def _short(name: str, fit: dict) -> str:
    """The ``--fit`` name behind a Fitter parameter name (``node.a`` -> ``a``)."""
    for candidate in fit:
        if name == candidate or name.endswith("." + candidate):
            return candidate
    return name


# -- demo -----------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    from ._demo import run_demo

    return run_demo(args)


COMMANDS = {
    "models": cmd_models,
    "datasets": cmd_datasets,
    "simulate": cmd_simulate,
    "fit": cmd_fit,
    "demo": cmd_demo,
}

__all__ = ["COMMANDS"]
