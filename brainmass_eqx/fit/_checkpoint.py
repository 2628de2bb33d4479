"""Checkpoints of a long fit: a JSON header (bookkeeping) followed by the fit's state, written
with ``eqx.tree_serialise_leaves``. Writes are atomic (a temporary file, then a rename), so a
fit killed while saving leaves the previous checkpoint intact."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import equinox as eqx
import jax
import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "digest"]

_MAGIC = b"brainmass_eqx fit checkpoint v1\n"


def _structure(state: Any) -> dict[str, Any]:
    """The pytree structure, shapes and dtypes of ``state``: what deserialising needs to
    match (an optimizer's state differs between optimizers whose class names are the same,
    e.g. optax's adam and sgd)."""
    leaves, treedef = jax.tree_util.tree_flatten(state)
    return {
        "tree": str(treedef),
        "leaves": [[list(np.shape(x)), str(x.dtype if hasattr(x, "dtype") else np.result_type(x))] for x in leaves],
    }


def digest(tree: Any) -> str:
    """A short hash of the values, shapes and dtypes of ``tree``'s array leaves: what a
    checkpoint records of the fit's target, the model's fixed arrays and the key, so that
    resuming against other data is refused instead of continuing another fit's optimiser
    state."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def save_checkpoint(path: str | os.PathLike, header: dict[str, Any], state: Any) -> None:
    """Write ``header`` (JSON-serialisable) and the pytree ``state`` to ``path``."""
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(_MAGIC)
        f.write(json.dumps(dict(header, structure=_structure(state))).encode() + b"\n")
        eqx.tree_serialise_leaves(f, state)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, like: Any, expect: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Read a checkpoint written by `save_checkpoint`.

    **Arguments:**

    - `path`: the file.
    - `like`: a pytree of the state's structure, shapes and dtypes (a fresh initial state).
    - `expect`: header entries that must match (the fit's backend, parameter names and
      shapes, ...); a mismatch raises `ValueError` naming the entry.

    **Returns:** ``(header, state)``.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        if f.readline() != _MAGIC:
            raise ValueError(f"checkpoint={path!r} is not a brainmass_eqx fit checkpoint.")
        header = json.loads(f.readline())
        fix = "Resume with the same Fitter settings, or pass resume=False (or another checkpoint path) to start afresh."
        for name, value in expect.items():
            if header.get(name) != value:
                raise ValueError(
                    f"checkpoint={path!r} was written by a different fit: its {name} {header.get(name)!r}, "
                    f"this fit's {value!r}. {fix}"
                )
        if header.get("structure", _structure(like)) != _structure(like):
            raise ValueError(
                f"checkpoint={path!r} was written by a different fit: its state (parameters, "
                "optimizer state) has another structure than this fit's, e.g. another optimizer "
                f"or other optimizer settings. {fix}"
            )
        state = eqx.tree_deserialise_leaves(f, like)
    return header, state
