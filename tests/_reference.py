"""Loader of the brainmass 0.1.1 reference data in ``tests/data/reference``.

The files are written by ``tools/make_references.py`` (format: the README next to them).
Import from a test module as ``from _reference import load_reference`` (pytest puts
``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"


def load_reference(relpath: str | Path) -> dict[str, Any]:
    """Load one reference file.

    Args:
        relpath: path relative to ``tests/data/reference``, for example
            ``"models/HopfStep__default__exp_euler.npz"``.

    Returns:
        ``{name: numpy array}`` for every stored array (``state__<var>``, ``init__<var>``,
        ``input__<name>``, ``gap64__<var>``, ``dt_ms``, ...), with ``"meta"`` (where the
        file has one) decoded from its JSON string into a dict.

    Raises:
        FileNotFoundError: ``relpath`` names no reference file (the message says how to
            regenerate them).
    """
    path = REFERENCE_DIR / relpath
    if not path.is_file():
        raise FileNotFoundError(
            f"relpath {str(relpath)!r}: no reference file {path}; regenerate the data with "
            "`python tools/make_references.py`"
        )
    with np.load(path, allow_pickle=False) as data:
        out: dict[str, Any] = {name: data[name] for name in data.files}
    if "meta" in out:
        out["meta"] = json.loads(str(out["meta"]))
    return out


def reference_files(group: str | None = None) -> list[str]:
    """Relative paths of all reference ``.npz`` files (of one ``group``, e.g. ``"models"``)."""
    root = REFERENCE_DIR if group is None else REFERENCE_DIR / group
    return sorted(str(p.relative_to(REFERENCE_DIR)) for p in root.rglob("*.npz"))


def states(ref: dict[str, Any]) -> dict[str, np.ndarray]:
    """The stored trajectories of ``ref`` as ``{state name: (T_stored, N) array}``.

    Sample ``j`` is the state after step ``record_every * (j + 1)``.
    """
    return {name: ref[f"state__{name}"] for name in ref["meta"]["state_names"]}


def stored_steps(ref: dict[str, Any]) -> np.ndarray:
    """Step counts (1-based) after which the stored samples were taken."""
    every, n = int(ref["record_every"]), int(ref["n_steps"])
    return np.arange(every, n + 1, every)
