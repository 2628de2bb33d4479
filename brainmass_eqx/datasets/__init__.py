"""Data sets: bundled examples, a registry, and loaders for real connectome formats.

Nothing is downloaded. `example_connectome` and `example_signal` are brainmass 0.1.1's
bundled synthetic files (Apache-2.0); the `tvb_connectivity_<N>` entries read the optional
`tvb-data` package (GPL-3.0, never bundled: `pip install brainmass_eqx[tvb]`).
"""

from ._builtin import (
    TVB_CONNECTIVITY_SIZES,
    delayed_match_task,
    load_example_connectome,
    load_example_signal,
    load_tvb_dataset,
)
from ._loaders import (
    SUPPORTED_EXTENSIONS,
    load_connectome,
    load_mat_connectome,
    load_matrix,
    load_signal,
    load_tvb_connectivity,
)
from ._registry import list_datasets, load_dataset, register_dataset
from ._types import Connectome, Signal

__all__ = [
    "Connectome",
    "SUPPORTED_EXTENSIONS",
    "Signal",
    "TVB_CONNECTIVITY_SIZES",
    "delayed_match_task",
    "list_datasets",
    "load_connectome",
    "load_dataset",
    "load_example_connectome",
    "load_example_signal",
    "load_mat_connectome",
    "load_matrix",
    "load_signal",
    "load_tvb_connectivity",
    "load_tvb_dataset",
    "register_dataset",
]
