"""Regenerate the neurolib reference data under ``tests/data/reference/neurolib``.

Usage (any python3, from anywhere)::

    python tools/make_neurolib_references.py [--venv PATH]

* Ensures a throwaway venv holding ``neurolib==0.6.2`` (default
  ``~/.cache/bmx/venv-neurolib``, the one ``benchmarks/bench_network.py`` uses; ``--venv``
  or ``$BMX_NEUROLIB_VENV`` overrides). neurolib is never a dependency of
  ``brainmass_eqx``.
* Runs this file's cases inside that venv (``--child``): neurolib's numba models on the
  bundled 8-region example connectome (``Cmat`` = weights, ``Dmat`` = tract lengths, so
  conduction delays), Euler steps, float64, a constant initial state, no noise
  (``sigma_ou = 0``).
* Writes one ``<case>.npz`` per case: ``state__<neurolib output>`` ``(T, N)`` float64 (time
  first), the output after every ``record_every``-th step from the first (sample ``j``
  after step ``1 + record_every*j``, as ``simulate(..., sample_every=record_every)``
  records), ``init__<state>`` ``(N,)``, ``dt``, ``n_steps``, ``record_every`` and ``meta``
  (JSON: the model, its parameters, the neurolib version).

``tests/test_neurolib_parity.py`` builds the same networks with brainmass_eqx and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _external  # noqa: E402 (a script run by path)

NEUROLIB_VERSION = "0.6.2"

# name: (model class, its parameters, {state: initial value}, outputs, dt, steps, record every)
CASES = {
    "hopf_diffusive": dict(
        model="HopfModel",
        params={"K_gl": 0.2, "signalV": 4.0, "a": 0.25, "w": 0.3},
        init={"xs_init": [-0.4, -0.3, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4], "ys_init": 0.1},
        outputs=("x", "y"), dt=0.1, n_steps=3000, record_every=15,
    ),
    "hopf_additive": dict(
        model="HopfModel",
        params={"K_gl": 0.3, "signalV": 2.0, "a": -0.05, "w": 0.25, "coupling": "additive", "x_ext": 0.05},
        init={"xs_init": [0.5, -0.3, 0.2, 0.1, -0.4, 0.3, 0.0, 0.6], "ys_init": 0.0},
        outputs=("x", "y"), dt=0.1, n_steps=3000, record_every=15,
    ),
    "fhn_diffusive": dict(
        model="FHNModel",
        params={"K_gl": 0.4, "signalV": 5.0, "x_ext": 1.0},
        init={"xs_init": [-1.0, -0.5, 0.0, 0.5, 1.0, -0.2, 0.3, 0.8], "ys_init": 0.2},
        outputs=("x", "y"), dt=0.1, n_steps=4000, record_every=20,
    ),
    "wc_additive": dict(
        model="WCModel",
        params={"K_gl": 0.6, "signalV": 4.0, "exc_ext": 0.8},
        init={"exc_init": [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.02, 0.15], "inh_init": 0.05},
        outputs=("exc", "inh"), dt=0.1, n_steps=3000, record_every=15,
    ),
    "ww_additive": dict(
        model="WWModel",
        params={"K_gl": 0.6, "signalV": 4.0},
        init={"ses_init": [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.02, 0.15], "sis_init": 0.05},
        outputs=("se", "si"), dt=0.1, n_steps=3000, record_every=15,
    ),
}


def run_case(outdir: Path, name: str, spec: dict) -> None:
    """Simulate one case with neurolib (inside its venv) and write ``outdir/<name>.npz``."""
    import importlib
    import importlib.metadata

    import numpy as np

    data = np.load(_external.CONNECTOME)
    cmat, dmat = data["weights"].astype(np.float64), data["distances"].astype(np.float64)
    n = cmat.shape[0]
    package = {"HopfModel": "hopf", "FHNModel": "fhn", "WCModel": "wc", "WWModel": "ww"}[spec["model"]]
    model = getattr(importlib.import_module(f"neurolib.models.{package}"), spec["model"])(Cmat=cmat, Dmat=dmat)
    p = model.params
    p["duration"], p["dt"], p["sampling_dt"] = spec["n_steps"] * spec["dt"], spec["dt"], spec["dt"]
    p["sigma_ou"] = 0.0
    for key, value in spec["params"].items():
        p[key] = np.asarray(value, np.float64) if isinstance(value, list) else value
    if "x_ext" in spec["params"]:
        p["x_ext"] = np.full(n, spec["params"]["x_ext"], np.float64)
    init = {}
    for key, value in spec["init"].items():
        init[key] = np.broadcast_to(np.asarray(value, np.float64), (n,)).copy()
        p[key] = init[key][:, None]  # one column: a constant past
    model.run()
    out = {}
    for var in spec["outputs"]:
        ys = np.asarray(getattr(model, var)).T  # (T, N)
        if ys.shape[0] != spec["n_steps"]:
            raise SystemExit(f"{name}: neurolib returned {ys.shape[0]} samples of {var}, expected {spec['n_steps']}")
        out[f"state__{var}"] = ys[:: spec["record_every"]]
    out.update({f"init__{key}": value for key, value in init.items()})
    meta = dict(
        neurolib_version=importlib.metadata.version("neurolib"), model=spec["model"], params=spec["params"],
        outputs=list(spec["outputs"]), integrator="euler", connectome="example_connectome",
    )
    np.savez_compressed(
        outdir / f"{name}.npz", dt=spec["dt"], n_steps=spec["n_steps"], record_every=spec["record_every"],
        meta=json.dumps(meta), **out,
    )


def write(outdir: Path) -> None:
    for name, spec in CASES.items():
        run_case(outdir, name, spec)


def main(argv: list[str] | None = None) -> None:
    _external.main(
        argv, doc=__doc__, script=__file__, dist="neurolib", version=NEUROLIB_VERSION, venv_env="BMX_NEUROLIB_VENV", write=write
    )


if __name__ == "__main__":
    sys.exit(main())
