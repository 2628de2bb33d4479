"""The built-in data sets, registered at import.

| name                   | content                                                        |
|------------------------|----------------------------------------------------------------|
| `example_connectome`   | brainmass's bundled synthetic 8-region `Connectome`            |
| `example_signal`       | brainmass's bundled synthetic 8-region `Signal` (dt = 1 ms)    |
| `delayed_match_task`   | `delayed_match_task()` (kwargs accepted)                       |
| `tvb_connectivity_<N>` | TVB's N-region connectomes, N in 66, 68, 76, 96, 192, read from |
|                        | the optional `tvb-data` package (GPL-3.0, never bundled)       |
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np
from jaxtyping import Float, Int

from .._checks import check_int
from ._loaders import load_tvb_connectivity
from ._registry import register_dataset
from ._types import Connectome, Signal

__all__ = ["delayed_match_task", "TVB_CONNECTIVITY_SIZES"]

#: The region counts of the connectomes shipped by tvb-data.
TVB_CONNECTIVITY_SIZES: tuple[int, ...] = (66, 68, 76, 96, 192)


def _bundled_npz(name: str) -> dict[str, np.ndarray]:
    resource = importlib.resources.files(__package__) / "_data" / name
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as data:
        return {k: np.array(v) for k, v in data.items()}


def load_example_connectome() -> Connectome:
    """brainmass's bundled `example_connectome`: 8 synthetic regions on a 40 mm ring.

    Euclidean distances in mm (max 80), symmetric zero-diagonal weights in [0, 1).
    The values are bit-identical to brainmass 0.1.1's.
    """
    data = _bundled_npz("example_connectome.npz")
    return Connectome(data["weights"], data["distances"], data["labels"])


def load_example_signal() -> Signal:
    """brainmass's bundled `example_signal`: 500 samples x 8 regions at dt = 1 ms, with its FC."""
    data = _bundled_npz("example_signal.npz")
    return Signal(data["signal"], float(data["dt"]), data["labels"], data["fc"])


def delayed_match_task(
    n_samples: int = 128,
    *,
    seq_len: int = 10,
    n_symbols: int = 4,
    seed: int = 0,
) -> tuple[Float[np.ndarray, "n_samples seq_len n_symbols"], Int[np.ndarray, " n_samples"]]:
    """A synthetic delayed-match-to-sample task (brainmass's generator, same numbers).

    Each trial shows a one-hot *cue* symbol at `t = 0`, an empty delay, and a one-hot
    *probe* at `t = seq_len - 1`; the target is 1 when the probe equals the cue. Exactly
    `n_samples // 2` trials match; a non-matching probe is the cue shifted by a random
    non-zero offset modulo `n_symbols`.

    **Arguments:**

    - `n_samples`: the number of trials (>= 0).
    - `seq_len`: the sequence length (>= 2).
    - `n_symbols`: the alphabet size, the one-hot depth (>= 2).
    - `seed`: the NumPy `default_rng` seed; the draws (cues, match permutation, offsets)
      are made in brainmass's order, so its outputs are reproduced exactly.

    **Returns:** `(inputs, targets)`: float64 `(n_samples, seq_len, n_symbols)` one-hot
    sequences and int64 `(n_samples,)` labels in {0, 1}.
    """
    n_samples = check_int(n_samples, "n_samples", 0)
    seq_len = check_int(seq_len, "seq_len", 2)
    n_symbols = check_int(n_symbols, "n_symbols", 2)
    rng = np.random.default_rng(seed)
    cues = rng.integers(0, n_symbols, size=n_samples)
    targets = rng.permutation((np.arange(n_samples) < n_samples // 2).astype(np.int64))
    offsets = rng.integers(1, n_symbols, size=n_samples)
    probes = np.where(targets == 1, cues, (cues + offsets) % n_symbols)
    one_hot = np.eye(n_symbols, dtype=np.float64)
    inputs = np.zeros((n_samples, seq_len, n_symbols), dtype=np.float64)
    inputs[:, 0] = one_hot[cues]
    inputs[:, -1] = one_hot[probes]
    return inputs, targets


def tvb_connectivity_path(n_regions: int):
    """A context manager yielding the path of tvb-data's `connectivity_<n_regions>.zip`.

    **Raises:** `ImportError` with install instructions if `tvb-data` is missing;
    `ValueError` if tvb-data has no connectome of that size.
    """
    if n_regions not in TVB_CONNECTIVITY_SIZES:
        raise ValueError(
            f"n_regions must be one of {TVB_CONNECTIVITY_SIZES} (the tvb-data connectomes), "
            f"got {n_regions!r}."
        )
    try:
        import tvb_data  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"dataset 'tvb_connectivity_{n_regions}' reads the optional tvb-data package "
            f"(GPL-3.0, not bundled): install it with `pip install brainmass_eqx[tvb]` or "
            f"`pip install tvb-data`."
        ) from err
    resource = importlib.resources.files("tvb_data") / "connectivity" / (
        f"connectivity_{n_regions}.zip"
    )
    return importlib.resources.as_file(resource)


def load_tvb_dataset(n_regions: int) -> Connectome:
    """TVB's `n_regions`-region connectome from the installed tvb-data package.

    Distances are the tract lengths (mm); labels, centres and (where shipped) cortical
    flags and areas come along. The 76-region (CoCoMac) weights are directed, not
    symmetric, and have a non-zero diagonal: the data is returned as shipped.
    """
    with tvb_connectivity_path(n_regions) as path:
        return load_tvb_connectivity(path)


def _register_builtins() -> None:
    register_dataset(
        "example_connectome",
        load_example_connectome,
        description="Small (N=8) synthetic structural connectome (weights + mm distances).",
    )
    register_dataset(
        "example_signal",
        load_example_signal,
        description="Short multi-region target time series (+ FC) for fitting tutorials.",
    )
    register_dataset(
        "delayed_match_task",
        delayed_match_task,
        description="Synthetic delayed-match-to-sample task (inputs, targets) for HORN training.",
    )
    for n in TVB_CONNECTIVITY_SIZES:
        register_dataset(
            f"tvb_connectivity_{n}",
            functools.partial(load_tvb_dataset, n),
            description=f"TVB's {n}-region connectome (weights, tract lengths in mm); "
            f"needs the optional tvb-data package (pip install brainmass_eqx[tvb]).",
        )


_register_builtins()
