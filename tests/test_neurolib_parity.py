"""neurolib 0.6.2's Hopf and FitzHugh-Nagumo networks, reproduced (`docs/howto/migrating.md`).

The reference runs (``tests/data/reference/neurolib``, written by
``tools/make_neurolib_references.py`` in a venv of its own) are neurolib's numba models on
the bundled 8-region connectome (``Cmat``, ``Dmat``), with conduction delays rounded to
whole steps (our ``interpolation='nearest'``), Euler steps, float64, a constant past and
no noise. neurolib couples ``x`` only, into the ``x`` equation; it zeroes the diagonal
of ``Cmat``, as our default does. Both run in float64: they agree to rounding.
"""

from __future__ import annotations

import diffrax as dfx
import numpy as np
import pytest
from _reference import load_reference

import brainmass_eqx as bx


def _load(case: str) -> dict:
    return load_reference(f"neurolib/{case}.npz")


def _network(ref, n):
    p = ref["meta"]["params"]
    if ref["meta"]["model"] == "HopfModel":
        node, states = bx.Hopf(n, a=p["a"], w=p["w"]), ("x", "y")
    else:
        node, states = bx.FitzHughNagumo(n), ("V", "w")
    conn = bx.load_dataset("example_connectome")
    net = bx.Network(
        node, conn.weights, distance=conn.distances, speed=p["signalV"], k=p["K_gl"],  # signalV: m/s = mm/ms
        coupling=p.get("coupling", "diffusive"), coupled_var=states[0], interpolation="nearest",
    )
    inputs = {states[0]: p["x_ext"]} if "x_ext" in p else None
    return net, inputs, dict(zip(("x", "y"), states))


@pytest.mark.parametrize("case", ["hopf_diffusive", "hopf_additive", "fhn_diffusive"])
def test_reproduces_neurolib_network(case, x64):
    ref = _load(case)
    net, inputs, names = _network(ref, 8)
    y0 = {names["x"]: ref["init__xs_init"], names["y"]: ref["init__ys_init"]}
    traj = bx.simulate(
        net, float(ref["dt"]) * int(ref["n_steps"]), dt=float(ref["dt"]), solver=dfx.Euler(), y0=y0,
        inputs=inputs, sample_every=int(ref["record_every"]), monitors=list(names.values()),
    )
    for theirs, ours in names.items():
        expected, got = ref[f"state__{theirs}"], np.asarray(traj[ours])
        assert got.shape == expected.shape
        # Measured: 3e-16 to 2.4e-15 of each variable's largest magnitude.
        assert np.abs(got - expected).max() <= 1e-11 * np.abs(expected).max(), (theirs, np.abs(got - expected).max())
    assert np.ptp(ref["state__x"]) > 0.1  # the reference moves
