"""Reference values for ``brainmass_eqx.datasets``.

Run this module INSIDE the brainmass 0.1.1 environment (it imports brainmass, which the
package itself never does)::

    cd /work/main && ~/.cache/bmx/venv-bm/bin/python -c \
        "import tools.reference_cases.datasets as m; m.main('tests/data/reference')"

It writes ``<outdir>/datasets/brainmass_datasets.npz`` holding what brainmass 0.1.1's
``load_dataset`` returns for ``example_connectome`` and ``example_signal`` (magnitudes in
mm and ms), ``delayed_match_task`` for the default and a few other arguments (the one-hot
inputs stored as uint8 to keep the file small: they are exactly 0 or 1), and the registry's
unknown-name error message.
"""

from __future__ import annotations

import os

import numpy as np

#: (n_samples, seq_len, n_symbols, seed) cases for ``delayed_match_task``; None = defaults.
TASK_CASES = (None, (7, 2, 2, 3), (33, 5, 7, 11), (0, 3, 3, 0), (1, 4, 3, 5))


def main(outdir):
    """Write ``<outdir>/datasets/brainmass_datasets.npz``; return its path."""
    import brainmass
    import brainunit as u

    ds = brainmass.datasets
    conn = ds.load_dataset("example_connectome")
    sig = ds.load_dataset("example_signal")
    out = {
        "brainmass_version": np.asarray(brainmass.__version__),
        "connectome_weights": np.asarray(conn.weights),
        "connectome_distances_mm": np.asarray(conn.distances.to_decimal(u.mm)),
        "connectome_labels": np.asarray(conn.labels),
        "signal_signal": np.asarray(sig.signal),
        "signal_dt_ms": np.asarray(sig.dt.to_decimal(u.ms)),
        "signal_labels": np.asarray(sig.labels),
        "signal_fc": np.asarray(sig.fc),
        "list_datasets": np.asarray([f"{n}\t{d}" for n, d in ds.list_datasets()]),
    }
    try:
        ds.load_dataset("hcp")
    except KeyError as err:
        out["unknown_error"] = np.asarray(str(err))
    for i, case in enumerate(TASK_CASES):
        if case is None:
            inputs, targets = ds.load_dataset("delayed_match_task")
            case = (-1, -1, -1, -1)
        else:
            n, seq_len, n_symbols, seed = case
            inputs, targets = ds.delayed_match_task(
                n, seq_len=seq_len, n_symbols=n_symbols, seed=seed
            )
        assert inputs.dtype == np.float64 and targets.dtype == np.int64
        assert set(np.unique(inputs)) <= {0.0, 1.0}
        out[f"task{i}_args"] = np.asarray(case, dtype=np.int64)
        out[f"task{i}_inputs"] = inputs.astype(np.uint8)
        out[f"task{i}_targets"] = targets
    path = os.path.join(outdir, "datasets", "brainmass_datasets.npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path, **out)
    return path
