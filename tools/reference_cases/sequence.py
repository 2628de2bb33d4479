"""Reference outputs of brainmass 0.1.1's sequence blocks (HORN / Wilson-Cowan / Jansen-Rit
layers and ``JansenRitTR``) with their weights, for ``tests/test_models_zoo.py``.

Output: ``<outdir>/sequence/brainmass_sequence.npz`` holding the input ``X``, the delay
matrix, every layer's weights (``<tag>/<path>[:weight|bias]``) and outputs
(``<tag>/out``), and the ``JansenRitTR`` inputs, connectome, log-weights and outputs
(``tr_*``, ``tr/out``). Run through ``python tools/make_references.py --only sequence``.
"""

from __future__ import annotations

from pathlib import Path

import brainstate
import braintools
import brainunit as u
import numpy as np
from brainmass.horn import HORNSeqLayer
from brainmass.jansen_rit import JansenRit2Layer, JansenRitLayer, JansenRitTR
from brainmass.wilson_cowan import WilsonCowanSeqLayer


def _weights(module) -> dict:
    return {
        key: {k: np.asarray(v) for k, v in state.value.items()}
        if isinstance(state.value, dict)
        else np.asarray(u.get_magnitude(state.value))
        for key, state in module.states(brainstate.ParamState).items()
    }


def _flatten(out: dict, prefix: str, weights: dict) -> None:
    for key, value in weights.items():
        name = prefix + "/" + ".".join(map(str, key))
        if isinstance(value, dict):
            for k, v in value.items():
                out[f"{name}:{k}"] = v
        else:
            out[name] = value


def main(outdir: str) -> None:
    """Write ``<outdir>/sequence/brainmass_sequence.npz``."""
    brainstate.environ.set(dt=0.1 * u.ms)
    brainstate.random.seed(0)
    rng = np.random.default_rng(0)
    T, n_in, n_h = 60, 3, 4
    X = rng.normal(size=(T, n_in)).astype(np.float32)
    delay = rng.integers(0, 8, size=(n_h, n_h)).astype(np.float64) * 0.1
    out: dict = {"X": X, "delay": delay}
    horn = dict(alpha=0.5, omega=0.3, gamma=0.05, v=0.2)
    const_delay = braintools.init.Constant(delay * u.ms)
    builders = {
        "horn": lambda: HORNSeqLayer(n_in, n_h, **horn),
        "horn_d": lambda: HORNSeqLayer(n_in, n_h, delay=const_delay, **horn),
        "wc": lambda: WilsonCowanSeqLayer(n_in, n_h),
        "wc_d": lambda: WilsonCowanSeqLayer(n_in, n_h, delay=const_delay),
        "jr": lambda: JansenRitLayer(n_in, n_h),
        "jr2": lambda: JansenRit2Layer(n_in, n_h, delay=const_delay),
    }
    for tag, build in builders.items():
        layer = build()
        brainstate.nn.init_all_states(layer)
        _flatten(out, tag, _weights(layer))
        # The Jansen-Rit layers read the input as a rate in Hz: scale it to a useful drive.
        result = layer(X * (50.0 if tag.startswith("jr") else 1.0))
        out[f"{tag}/out"] = np.asarray(u.get_magnitude(result))
    n = 3
    sc = np.abs(rng.normal(size=(n, n)))
    np.fill_diagonal(sc, 0.0)
    tr_delay = rng.integers(0, 3, size=(n, n)).astype(np.float64)
    w_ll, w_ff, w_bb = (rng.normal(size=(n, n)) * 0.1 for _ in range(3))
    model = JansenRitTR(n, tr_delay, sc, k=2.0, w_ll=w_ll, w_ff=w_ff, w_bb=w_bb, g_l=0.5, g_f=1.5, g_b=0.7,
                        tr=2.0 * u.ms)
    brainstate.nn.init_all_states(model)
    U = (rng.normal(size=(8, n)) + 3.0).astype(np.float32)
    out.update(tr_sc=sc, tr_delay=tr_delay, tr_wl=w_ll, tr_wf=w_ff, tr_wb=w_bb, tr_U=U)
    out["tr/out"] = np.stack([np.asarray(model(U[t])) for t in range(U.shape[0])])
    path = Path(outdir) / "sequence" / "brainmass_sequence.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    print(f"[sequence] wrote {path}")
