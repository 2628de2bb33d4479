"""neurolib 0.6.2's Hopf, FitzHugh-Nagumo, Wilson-Cowan and Wong-Wang networks, reproduced (`docs/howto/migrating.md`).

The reference runs (``tests/data/reference/neurolib``, written by
``tools/make_neurolib_references.py`` in a venv of its own) are neurolib's numba models on
the bundled 8-region connectome (``Cmat``, ``Dmat``), with conduction delays rounded to
whole steps (our ``interpolation='nearest'``), Euler steps, float64, a constant past and
no noise. neurolib couples its first state only, into its own equation; it zeroes the
diagonal of ``Cmat``, as our default does. Both run in float64: they agree to rounding.
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
    """The network, its inputs, {neurolib output: our state} and {our state: neurolib's
    initial-state parameter}."""
    p = ref["meta"]["params"]
    model = ref["meta"]["model"]
    if model == "HopfModel":
        node, outputs, coupling = bx.Hopf(n, a=p["a"], w=p["w"]), ("x", "y"), "diffusive"
    elif model == "FHNModel":
        node, outputs, coupling = bx.FitzHughNagumo(n), ("x", "y"), "diffusive"
    elif model == "WCModel":
        # neurolib's WCModel: the plain logistic, its defaults (c_excexc 16, c_inhexc 12,
        # c_excinh 15, c_inhinh 3, a 1.5, mu 3, tau_exc 2.5, tau_inh 3.75), additive coupling.
        node = bx.WilsonCowan(
            n, shift_sigmoid=False, wEE=16.0, wIE=12.0, wEI=15.0, wII=3.0, a_E=1.5, a_I=1.5,
            theta_E=3.0, theta_I=3.0, tau_E=2.5, tau_I=3.75,
        )
        outputs, coupling = ("exc", "inh"), "additive"
    else:
        # neurolib's WWModel. neurolib 0.6.2 integrates S_i with tau_exc (it never reads tau_inh); its K_gl
        # scales the J_NMDA-weighted coupling: our G, with a unit network gain.
        node = bx.WongWangExcInh(n, G=p["K_gl"], tau_i=100.0)
        outputs, coupling = ("se", "si"), "additive"
    names = dict(zip(outputs, node.state_names))
    conn = bx.load_dataset("example_connectome")
    net = bx.Network(
        node, conn.weights, distance=conn.distances, speed=p["signalV"],  # signalV: m/s = mm/ms
        k=1.0 if model == "WWModel" else p["K_gl"],
        coupling=p.get("coupling", coupling), interpolation="nearest",
    )
    external = p.get("x_ext", p.get("exc_ext"))
    inputs = None if external is None else {node.coupling_input: external}
    inits = {"x": "xs_init", "y": "ys_init", "exc": "exc_init", "inh": "inh_init", "se": "ses_init", "si": "sis_init"}
    return net, inputs, names, {ours: inits[theirs] for theirs, ours in names.items()}


@pytest.mark.parametrize("case", ["hopf_diffusive", "hopf_additive", "fhn_diffusive", "wc_additive", "ww_additive"])
def test_reproduces_neurolib_network(case, x64):
    ref = _load(case)
    net, inputs, names, inits = _network(ref, 8)
    y0 = {ours: ref[f"init__{theirs}"] for ours, theirs in inits.items()}
    traj = bx.simulate(
        net, float(ref["dt"]) * int(ref["n_steps"]), dt=float(ref["dt"]), solver=dfx.Euler(), y0=y0,
        inputs=inputs, sample_every=int(ref["record_every"]), monitors=list(names.values()),
    )
    for theirs, ours in names.items():
        expected, got = ref[f"state__{theirs}"], np.asarray(traj[ours])
        assert got.shape == expected.shape
        # Measured: 3e-16 to 2.4e-15 of each variable's largest magnitude.
        assert np.abs(got - expected).max() <= 1e-11 * np.abs(expected).max(), (theirs, np.abs(got - expected).max())
    assert np.ptp(ref[f"state__{next(iter(names))}"]) > 0.1  # the reference moves
