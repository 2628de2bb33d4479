"""Checkpoints of a long fit: a JSON header (bookkeeping) followed by the fit's state, written
with ``eqx.tree_serialise_leaves``. Writes are atomic (`brainmass_eqx._files.atomic_write`), so a
fit killed while saving leaves the previous checkpoint intact. The header records the SHA-256
of the state's bytes and whether JAX's float64 mode was on: a damaged file (a partial copy)
and one written in the other precision are refused, each with its own message, instead of
failing inside the JSON or equinox readers or passing for "a different fit"."""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._files import PRECISION_WORDS, atomic_write

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
    payload = io.BytesIO()
    eqx.tree_serialise_leaves(payload, state)
    payload = payload.getvalue()
    header = dict(
        header,
        structure=_structure(state),
        x64=bool(jax.config.jax_enable_x64),
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    with atomic_write(path, "checkpoint") as f:
        f.write(_MAGIC)
        f.write(json.dumps(header).encode() + b"\n")
        f.write(payload)


def _damaged(path: str, err: Exception) -> ValueError:
    return ValueError(
        f"checkpoint={path!r} is damaged ({type(err).__name__}: {err}): a partial copy, or a file "
        "changed after it was written. Resume from an intact copy, or pass resume=False (or another "
        "checkpoint path) to start afresh."
    )


def load_checkpoint(
    path: str | os.PathLike, like: Any, expect: dict[str, Any], required: tuple[str, ...] = ()
) -> tuple[dict[str, Any], Any]:
    """Read a checkpoint written by `save_checkpoint`.

    **Arguments:**

    - `path`: the file.
    - `like`: a pytree of the state's structure, shapes and dtypes (a fresh initial state).
    - `expect`: header entries that must match (the fit's backend, parameter names and
      shapes, ...); a mismatch raises `ValueError` naming the entry.
    - `required`: further header entries the caller reads (the step reached, ...); a header
      without one is refused as damaged.

    **Returns:** ``(header, state)``.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        first = f.readline(len(_MAGIC))
        if first != _MAGIC:
            # An empty file, or one cut inside its first line, is a checkpoint's partial copy.
            if _MAGIC.startswith(first):
                raise _damaged(path, ValueError(f"it ends after {len(first)} bytes, inside its first line"))
            raise ValueError(
                f"checkpoint={path!r} is not a brainmass_eqx fit checkpoint (it begins {first[:16]!r}). "
                "Pass the path of a file written by Fitter.fit(checkpoint=...), or another path to start "
                "afresh (resume=False would write over this file)."
            )
        try:
            header = json.loads(f.readline())
        except ValueError as err:  # a cut-off header
            raise _damaged(path, err) from err
        payload = f.read()
    if not isinstance(header, dict):
        raise _damaged(path, ValueError("its header is not a JSON object"))
    # What the caller reads: a header without it failed later with KeyError: 'step'.
    missing = [name for name in required if name not in header]
    if missing:
        raise _damaged(path, ValueError(f"its header has no {', '.join(map(repr, missing))} entry"))
    if not isinstance(header.get("x64", False), bool):
        raise _damaged(path, ValueError(f"its header's x64 is {header['x64']!r}, not true or false"))
    x64 = bool(jax.config.jax_enable_x64)
    # Checked first: every array's dtype differs, so the target's digest did too, and the
    # checkpoint was refused as "a different fit: its target".
    if header.get("x64", x64) != x64:
        raise ValueError(
            f"checkpoint={path!r} was written with jax_enable_x64 {PRECISION_WORDS[header['x64']]}; it is "
            f"{PRECISION_WORDS[x64]} in this process. Resume with jax.config.update('jax_enable_x64', "
            f"{header['x64']}) at the start of the script, or pass resume=False (or another "
            "checkpoint path) to start afresh."
        )
    if "sha256" in header and hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise _damaged(path, ValueError(f"its {len(payload)} bytes of state do not match the SHA-256 recorded when it was written"))
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
    try:
        state = eqx.tree_deserialise_leaves(io.BytesIO(payload), like)
    except Exception as err:  # a checkpoint without a SHA-256, cut short: equinox's or NumPy's error
        raise _damaged(path, err) from err
    return header, state
