"""The command line (``python -m brainmass_eqx``, ``brainmass-eqx``).

Bad input prints one line, ``brainmass-eqx <command>: error: <what and how to fix it>``,
to stderr and exits with status 2; a failure while running (a diverging simulation, ...)
prints one line and exits with status 1. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from . import _build
from ._errors import PROG, CLIError, OneLineParser, first_line

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  brainmass-eqx demo                                   # simulate, fit, report, demo.png
  brainmass-eqx models                                 # the model catalogue
  brainmass-eqx models WilsonCowan                     # one model: equations, parameters
  brainmass-eqx simulate --model Hopf --param a=-0.05 --k 0.4 --noise 0.02 --duration 2s
  brainmass-eqx fit --target example_signal --fit k --bounds k=0:2
"""


def _add_model_options(p: argparse.ArgumentParser) -> None:
    time = _build.time_arg
    g = p.add_argument_group("model and network")
    g.add_argument("--model", default="Hopf", help="node model, e.g. Hopf, WilsonCowan, JansenRit (default Hopf)")
    g.add_argument(
        "--param", action="append", type=_build.param_arg, metavar="NAME=VALUE",
        help="a node parameter, with an optional unit (a=-0.05, tau_E=10ms); repeatable",
    )  # fmt: skip
    g.add_argument(
        "--input", action="append", type=_build.param_arg, metavar="NAME=VALUE",
        help="a constant external input of every node, with an optional unit (JansenRit: E=220Hz); repeatable",
    )  # fmt: skip
    g.add_argument(
        "--connectome", default="example_connectome",
        help="a data set (example_connectome, tvb_connectivity_76, ...; see `datasets`) or a file "
        "(TVB .zip, .mat, .npz, .npy, .csv, .tsv, .txt; FILE.mat:NAME or FILE.npz:NAME reads the weights "
        "from the variable NAME); default example_connectome",
    )  # fmt: skip
    g.add_argument(
        "--tract-lengths", default=None, metavar="FILE",
        help="tract lengths in mm (.npy, .csv, .tsv, .txt, .mat; FILE.mat:NAME for one variable) for a --connectome "
        "file that holds the weights alone (.npy, .csv, .tsv, .txt, or a .mat without lengths), with --speed",
    )  # fmt: skip
    g.add_argument(
        "--normalise", choices=("none", "max", "row_sum", "rows"), default="none",
        help="rescale the weights: max (strongest 1), row_sum (largest total input 1, as the demo), "
        "rows (every total input 1); default none, the file's weights as they are",
    )  # fmt: skip
    g.add_argument("--coupling", default="diffusive", help="coupling function (default diffusive)")
    g.add_argument("--coupled-var", default=None, help="the coupled state, or an observable such as JansenRit's eeg (default: the model's coupling variable)")
    g.add_argument("--k", type=_build.finite_float, default=0.5, help="global coupling strength (default 0.5)")
    g.add_argument(
        "--speed", type=_build.speed_arg, default=None,
        help="conduction speed in mm/ms (= m/s), or with a unit; delays = tract lengths / speed (default: no delays)",
    )  # fmt: skip
    g.add_argument(
        "--self-connections", action="store_true",
        help="keep the connectome's diagonal (TVB's rule; default: dropped, as brainmass, with a warning "
        "where the coupling would sum it)",
    )  # fmt: skip
    g.add_argument("--noise", type=_build.nonnegative_float, default=0.0, help="OU noise amplitude on the coupling input (default 0)")
    # None until checked: given without --noise it would have no effect (see _commands.DEFAULTS).
    g.add_argument("--noise-tau", type=time("positive"), default=None, help="OU noise correlation time, with --noise (default 10 ms)")
    s = p.add_argument_group("simulation")
    s.add_argument("--duration", type=time("positive"), default=1000.0, help="simulated time: ms, or with a unit (2s) (default 1000 ms)")
    s.add_argument("--dt", type=time("positive"), default=0.1, help="integration step (default 0.1 ms)")
    s.add_argument("--transient", type=time("nonnegative"), default=0.0, help="initial time discarded (default 0)")
    s.add_argument("--sample-every", type=time("positive"), default=None, help="recording interval (default 1 ms)")
    s.add_argument(
        "--bold", type=time("positive", plain_below=(10.0, "an fMRI repetition time (0.4-3 s)")), default=None, metavar="TR",
        help="record BOLD (Balloon-Windkessel, driven by the coupled variable) every TR, e.g. 2s, instead of "
        "the coupled variable; the FC is then BOLD FC",
    )  # fmt: skip
    s.add_argument("--seed", type=int, default=0, help="random seed (initial states, noise; default 0)")
    _progress_flags(s)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Whole-brain neural-mass modelling on JAX: simulate and fit models on connectomes.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser("models", help="list the models (or describe one)")
    p.add_argument("name", nargs="?", help="a model to describe: equations, states, parameters, reference")

    sub.add_parser("datasets", help="list the data sets")

    p = sub.add_parser("simulate", help="simulate a network of one model on a connectome")
    _add_model_options(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", default="simulation.npz", help="results file (default simulation.npz)")
    o.add_argument("--plot", default="simulation.png", help="figure file (default simulation.png)")
    o.add_argument("--no-plot", dest="plot", action="store_const", const=None, help="no figure")

    p = sub.add_parser("fit", help="fit the coupling (and node parameters) to a target FC")
    _add_model_options(p)
    f = p.add_argument_group("fit")
    f.add_argument(
        "--target", default="example_signal",
        help="target FC: a data set with an fc (example_signal), an .npz with an 'fc' array (e.g. from "
        "`simulate`), or .npy/.csv/.tsv/.txt/.mat (FILE.mat:NAME for one variable) holding an FC matrix (N, N) "
        "or a time series (T, N), region names in a header row allowed",
    )  # fmt: skip
    f.add_argument("--fit", action="append", metavar="NAME", help="parameters to fit: k or node parameters, comma-separated or repeated (--fit k,a) (default k)")
    f.add_argument("--bounds", action="append", type=_build.bounds_arg, metavar="NAME=LOW:HIGH", help="search box of a fitted parameter")
    f.add_argument("--backend", choices=("nevergrad", "grad", "scipy", "optimistix"), default="nevergrad", help="optimiser (default nevergrad)")
    f.add_argument(
        "--loss", choices=("rmse", "corr"), default="rmse",
        help="rmse: RMSE between the FC upper triangles (default); corr: 1 - their correlation (pattern only)",
    )  # fmt: skip
    f.add_argument("--steps", type=_build.positive_int, default=12, help="steps / generations (default 12)")
    f.add_argument("--popsize", type=_build.population_int, default=None, help="population of --backend nevergrad (default 8)")
    f.add_argument("--lr", type=_build.positive_float, default=None, help="learning rate of --backend grad (Adam; default 0.05)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default="fit.npz", help="results file (default fit.npz)")
    o.add_argument("--plot", default="fit.png", help="figure file (default fit.png)")
    o.add_argument("--no-plot", dest="plot", action="store_const", const=None, help="no figure")

    p = sub.add_parser("demo", help="simulate, fit the coupling to a target FC, report and plot (about a minute)")
    p.add_argument(
        "--connectome", default="example_connectome",
        help="example_connectome (8 regions, default) or tvb_connectivity_76 (needs tvb-data)",
    )  # fmt: skip
    p.add_argument("--plot", default="demo.png", help="figure file (default demo.png)")
    p.add_argument("--no-plot", dest="plot", action="store_const", const=None, help="no figure")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _progress_flags(p)
    return parser


def _progress_flags(group) -> None:
    flags = group.add_mutually_exclusive_group()
    # Off by default in a log or pipe, where a bar's redraws become thousands of lines.
    flags.add_argument(
        "--progress", dest="progress", action="store_true", default=None,
        help="show progress bars (default: only when stderr is a terminal)",
    )  # fmt: skip
    flags.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """Show a library warning as the command's own warnings are shown: one line, without
    Python's file name and source line (``traj = simulate(``), which mean nothing here."""
    from ..network import DroppedSelfConnectionsWarning

    if isinstance(message, DroppedSelfConnectionsWarning):
        # The library's fix is a keyword argument; here it is a flag.
        message = (
            f"the connectome has {message.count} self-connections (largest {message.largest:.4g}), which "
            f"{message.coupling} coupling would sum; they are dropped (brainmass's rule; TVB keeps them): "
            "add --self-connections to keep them"
        )
    sys.stderr.write(f"warning: {first_line(message)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty()
    from ._commands import COMMANDS

    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _one_line_warning
            # simulate and fit warn in their own words when a run records fewer samples than
            # regions; this one would suggest transposing an array the user never handled.
            warnings.filterwarnings("ignore", message=r"`\w+` has shape .* time samples of", category=UserWarning)
            return COMMANDS[args.command](args)
    except CLIError as err:
        if args.debug:
            raise
        sys.stderr.write(f"{PROG} {args.command}: error: {first_line(err)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG} {args.command}: interrupted\n")
        return 130
    except Exception as err:  # a failure while running: one line, the traceback with --debug
        if args.debug:
            raise
        sys.stderr.write(f"{PROG} {args.command}: error: {type(err).__name__}: {first_line(err)} (rerun with --debug for the traceback)\n")
        return 1
