"""The sequence classes brainmass 0.1.1 keeps only in a submodule (``horn.HORN_TR`` and its
connections, the ``jansen_rit`` layers and network, ``wilson_cowan.WilsonCowanSeqLayer`` /
``WilsonCowanSeqNetwork``, ``coupling.AdditiveConn`` / ``DelayedAdditiveConn``), against real
brainmass.

Reference: brainmass 0.1.1 (``~/.cache/bmx/venv-bm``), the script below with ``import
brainmass``; each entry is (first call's output at step 5, second call's last output): the
second call continues the states and delay buffers. Weights are fixed arrays (the random
initializers draw from different streams)::

    rng = np.random.default_rng(1); n, n_in, T = 4, 3, 12
    W = rng.normal(0, 0.5, (n, n)); Wi = rng.normal(0, 1.0, (n_in, n)); Wo = rng.normal(0, 1.0, (n, 2))
    D = rng.integers(1, 4, (n, n)).astype(float) * u.ms
    X = rng.normal(0, 1.0, (T, n_in)); Xh = rng.normal(0, 1.0, (T, n)); W2 = rng.normal(0, 1.0, (n, n))
    dt = 0.1 ms: HORN_TR(n, rec_w_init=W, tr=0.5 ms) on Xh; HORN_TR(n, delay=0.3 D, rec_type=rt, rec_w_init=W,
      tr=0.5 ms) on 5 Xh; WilsonCowanSeqLayer(n_in, n, [delay=0.3 D,] rec_w_init=W, inp_w_init=Wi) on X;
      WilsonCowanSeqNetwork(n, [n, n], n, rec_w_init=W, inp_w_init=W2) on Xh
    dt = 1e-4 s: JansenRitLayer(n_in, n, [delay=0.3 D,] rec_w_init=W, inp_w_init=50 Wi) on X;
      JansenRit2Layer(n_in, n, delay=0.3 D, rec_w_init=W, inp_w_init=50 Wi) on X;
      JansenRitNetwork(n, [n, n], n, delay=0.3 D, rec_w_init=W, inp_w_init=50 W2) on Xh
"""

import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainstate, brainunit as u

REFERENCE = {
    "horn_none": ([0.00318416161, 0.00234180642, -0.00202666642, -0.0022839501],
                    [0.0362012312, 0.0214205198, -0.0406719968, -0.00758103887]),
    "horn_additive": ([0.0045163068, 0.00482984399, -0.00259469333, -0.00107997062],
                        [0.0337225683, 0.0445870496, -0.0543011092, 0.0204416681]),
    "horn_additive_tr": ([0.0045163068, 0.00482932432, -0.00259466213, -0.0010799435],
                           [0.0337034874, 0.0444923155, -0.0543158054, 0.0204137228]),
    "horn_laplacian": ([0.0045163068, 0.00482723955, -0.00259300857, -0.00107996853],
                         [0.0337308459, 0.0443725288, -0.0541663878, 0.0204408672]),
    "horn_laplacian_tr": ([0.0045163068, 0.00482932432, -0.00259466213, -0.0010799435],
                            [0.033684127, 0.0443886667, -0.0542998351, 0.0204089172]),
    "wc_none": ([0.118592471, 0.0498170704, 0.0224415176, 0.0134485289],
                  [0.264868706, 0.125585318, 0.151396945, 0.0234265197]),
    "wc_delay": ([0.118078068, 0.0487371162, 0.0224066563, 0.0137293106],
                   [0.250852048, 0.115002528, 0.159872696, 0.0246753544]),
    "wc_net": ([0.00264258264, 0.00293153943, 0.000542815542, -0.00575382588],
                 [-0.0178188477, 0.0293623786, -0.0113282595, -0.0867418945]),
    "jr_none": ([-0.00112481567, -0.000816684566, 0.000497108966, 0.000172269705],
                  [-0.0173238032, -0.00893013459, 0.00778784417, -0.000291526318]),
    "jr_delay": ([-0.00112481567, -0.000816684566, 0.000497108966, 0.000172269705],
                   [-0.0173238106, -0.00893014204, 0.00778785162, -0.000291530043]),
    "jr2": ([-6.56777411e-05, -6.56773336e-05, -6.50416478e-05, -6.52784365e-05],
              [-0.00185974222, -0.00183144771, -0.00167363137, -0.00173290819]),
    "jr_net": ([0.0470618159, -0.00492409337, 0.0101132104, 0.0263865981],
                 [0.260947287, -0.0272171926, 0.0560839921, 0.14640817]),
}


def _data():
    rng = np.random.default_rng(1)
    n, n_in, T = 4, 3, 12
    W = rng.normal(0, 0.5, (n, n))
    Wi = rng.normal(0, 1.0, (n_in, n))
    rng.normal(0, 1.0, (n, 2))
    D = rng.integers(1, 4, (n, n)).astype(float) * u.ms
    X = rng.normal(0, 1.0, (T, n_in))
    Xh = rng.normal(0, 1.0, (T, n))
    W2 = rng.normal(0, 1.0, (n, n))
    return n, n_in, W, Wi, W2, D, X, Xh


def _check(name, model, x):
    brainstate.nn.init_all_states(model)
    first = np.asarray(u.get_magnitude(model.update(jnp.asarray(x))))
    second = np.asarray(u.get_magnitude(model.update(jnp.asarray(x))))
    want_first, want_second = (np.asarray(v) for v in REFERENCE[name])
    got_first = first[5] if first.ndim == 2 else first
    got_second = second[-1] if second.ndim == 2 else second
    scale = max(np.max(np.abs(want_first)), np.max(np.abs(want_second)))
    np.testing.assert_allclose(got_first, want_first, rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(got_second, want_second, rtol=0, atol=2e-5 * scale)


@pytest.mark.parametrize("rec_type", [None, "additive", "additive_tr", "laplacian", "laplacian_tr"])
def test_horn_tr_matches_brainmass(rec_type):
    # Before: ImportError "brainmass.horn.HORN_TR is not provided by the compat facade".
    from brainmass_eqx.compat.horn import HORN_TR

    n, _, W, _, _, D, _, Xh = _data()
    with brainstate.environ.context(dt=0.1 * u.ms):
        if rec_type is None:
            _check("horn_none", HORN_TR(n, rec_w_init=W, tr=0.5 * u.ms), Xh)
        else:
            model = HORN_TR(n, delay=D * 0.3, rec_type=rec_type, rec_w_init=W, tr=0.5 * u.ms)
            _check("horn_" + rec_type, model, Xh * 5)


def test_tr_buffer_is_written_once_per_tr():
    # The *_tr connections read a buffer written every tr (brainstate's update_every), not every
    # step: with every-step writes the second call's output moves by ~1e-5 (> the tolerance).
    from brainmass_eqx.compat.horn import HORN_TR

    n, _, W, _, _, D, _, Xh = _data()
    with brainstate.environ.context(dt=0.1 * u.ms):
        model = HORN_TR(n, delay=D * 0.3, rec_type="additive_tr", rec_w_init=W, tr=0.5 * u.ms)
        brainstate.nn.init_all_states(model)
        assert model.h2h.prefetch.delay._every == 5
        with pytest.raises(ValueError, match=r"update_every=0.05 ms\) must be >= the step dt \(0.1 ms\)"):
            bad = HORN_TR(n, delay=D * 0.3, rec_type="additive_tr", rec_w_init=W, tr=0.05 * u.ms)
            brainstate.nn.init_all_states(bad)


def test_horn_tr_refuses_an_unknown_rec_type():
    from brainmass_eqx.compat.horn import HORN_TR

    with brainstate.environ.context(dt=0.1 * u.ms), pytest.raises(ValueError, match="rec_type='nope'"):
        HORN_TR(4, delay=1.0 * u.ms, rec_type="nope")


@pytest.mark.parametrize("name", ["wc_none", "wc_delay", "wc_net"])
def test_wilson_cowan_sequence_classes_match_brainmass(name):
    # Before: AttributeError: module 'brainmass.wilson_cowan' has no attribute 'WilsonCowanSeqLayer'.
    n, n_in, W, Wi, W2, D, X, Xh = _data()
    wc = bm.wilson_cowan
    with brainstate.environ.context(dt=0.1 * u.ms):
        if name == "wc_net":
            _check(name, wc.WilsonCowanSeqNetwork(n, [n, n], n, rec_w_init=W, inp_w_init=W2), Xh)
        else:
            delay = {"delay": D * 0.3} if name == "wc_delay" else {}
            _check(name, wc.WilsonCowanSeqLayer(n_in, n, rec_w_init=W, inp_w_init=Wi, **delay), X)


@pytest.mark.parametrize("name", ["jr_none", "jr_delay", "jr2", "jr_net"])
def test_jansen_rit_layers_match_brainmass(name):
    # Before: ImportError "brainmass.jansen_rit.JansenRitLayer is not provided by the compat facade".
    from brainmass_eqx.compat.jansen_rit import JansenRit2Layer, JansenRitLayer, JansenRitNetwork

    n, n_in, W, Wi, W2, D, X, Xh = _data()
    with brainstate.environ.context(dt=1e-4 * u.second):
        if name == "jr_net":
            _check(name, JansenRitNetwork(n, [n, n], n, delay=D * 0.3, rec_w_init=W, inp_w_init=W2 * 50), Xh)
        elif name == "jr2":
            _check(name, JansenRit2Layer(n_in, n, delay=D * 0.3, rec_w_init=W, inp_w_init=Wi * 50), X)
        else:
            delay = {"delay": D * 0.3} if name == "jr_delay" else {}
            _check(name, JansenRitLayer(n_in, n, rec_w_init=W, inp_w_init=Wi * 50, **delay), X)


def test_jansen_rit_layer_refuses_positional_step_parameters():
    # brainmass takes Ae, Ai, ... by position after n_hidden; the facade's layer takes them by
    # keyword, so a positional one is refused instead of landing in delay=.
    from brainmass_eqx.compat.jansen_rit import JansenRitLayer

    with pytest.raises(TypeError):
        JansenRitLayer(3, 4, 3.25 * u.mV)


def test_submodule_only_names():
    assert bm.coupling.AdditiveConn is bm.horn.AdditiveConn
    assert bm.wilson_cowan.AdditiveConn is not bm.coupling.AdditiveConn  # brainmass's rE-only variant
    assert "WilsonCowanSeqLayer" not in bm.wilson_cowan.__all__  # outside brainmass's __all__ too
    assert not hasattr(bm, "HORN_TR") and not hasattr(bm, "JansenRitLayer")  # not top-level, as in brainmass
