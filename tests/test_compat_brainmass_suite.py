"""Behaviours that brainmass 0.1.1's own test files (``brainmass/*_test.py``) check and the
compat facade got wrong: each test states brainmass's number or message, probed on brainmass."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainstate as bs, braintools as bt, brainunit as u

DT = 0.1 * u.ms
pytestmark = pytest.mark.usefixtures("compat_env")


# -- noise (noise_test.py) ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [bm.OUProcess, bm.GaussianNoise, bm.WhiteNoise, bm.BrownianNoise, bm.PinkNoise])
def test_noise_default_mean_is_a_zero_in_sigmas_unit(cls):
    # brainmass: mean=None becomes Const(0 * unit(sigma)); the facade kept None
    noise = cls(3)
    assert noise.mean.value() == 0.0 * u.nA
    assert cls(3, sigma=0.5).mean.value() == 0.0


def test_ouprocess_update_stand_alone():
    # the default sigma (1 nA) made update() raise "Only dimensionless quantities can be
    # converted to NumPy arrays"; brainmass returns a (2, 3) sample in nA
    noise = bm.OUProcess((2, 3), mean=0.5 * u.nA, sigma=0.1 * u.nA, tau=5.0 * u.ms)
    noise.init_state()
    x = noise.update()
    assert x.shape == (2, 3) and u.get_unit(x) == u.nA
    # one exponential-Euler step from x = 0: mean (1 - e^{-dt/tau}) + sigma/sqrt(tau) sqrt(dt) z
    drift = 0.5 * (1.0 - np.exp(-0.1 / 5.0))
    z = (np.asarray(x.to_decimal(u.nA)) - drift) / (0.1 / np.sqrt(5.0) * np.sqrt(0.1))
    assert np.all(np.abs(z) < 6.0) and np.std(z) > 0.1
    noise.mean = bs.nn.Param.init(2.0)  # a plain mean against the nA state is a unit error
    with pytest.raises(u.UnitMismatchError):
        noise.update()


# -- brainunit (coupling_test.py, observation_test.py) ------------------------------------------
def test_plain_zero_adds_to_a_quantity():
    q = jnp.array([1.0, 2.0]) * u.nA
    assert u.math.allclose(q + 0.0, q) and u.math.allclose(0 - q, -q) and u.math.allclose(q - jnp.zeros(2), q)
    with pytest.raises(u.UnitMismatchError):
        q + 1.0  # noqa: B018 (only zero is unit-free, as in brainunit)
    with pytest.raises(u.UnitMismatchError):
        q + 0.0 * u.ms  # noqa: B018
    # brainmass's additive_coupling adds its default bias b=0.0 to a unit-carrying sum
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]]) * u.nA
    out = bm.additive_coupling(x, jnp.ones((2, 2)), k=1.0)
    assert u.get_unit(out) == u.nA and u.math.allclose(out, jnp.array([3.0, 7.0]) * u.nA)


def test_quantity_unit_equals_brainunit_unit():
    q = jnp.ones(3) * u.mV
    assert q.unit == u.mV and u.mV == q.unit and q.unit != u.ms
    avg = bm.observation.TemporalAverage(period=5.0 * u.ms)(jnp.ones((20, 2)) * u.mV, dt=1.0 * u.ms)
    assert avg.unit == u.mV


# -- models (linear_test.py, lorenz_test.py, generic_2d_oscillator_test.py) -----------------------
@pytest.mark.parametrize(
    "cls, kw", [(bm.LinearStep, "init_x"), (bm.LorenzStep, "init_x"), (bm.Generic2dOscillatorStep, "init_V"),
                (bm.HopfStep, "init_y"), (bm.JansenRitStep, "M_init")],
)
def test_initializer_must_be_callable(cls, kw):
    # the facade accepted init_x=None and left model.x.value None after init_all_states
    with pytest.raises(AssertionError, match=f"{kw} must be a callable initializer"):
        cls(2, **{kw: None})
    with pytest.raises(AssertionError, match=kw):
        cls(2, **{kw: 0.3})


def test_kuramoto_initializer_may_be_an_array():
    model = bm.KuramotoNetwork(3, init_theta=jnp.array([0.1, 0.2, 0.3]))
    model.init_all_states()
    assert np.allclose(model.theta.value, [0.1, 0.2, 0.3])
    with pytest.raises(AssertionError, match="init_theta"):
        bm.KuramotoNetwork(3, init_theta=None)


# -- coupling (coupling_test.py) -----------------------------------------------------------------
class _Holder(bs.nn.Module):
    def __init__(self, x):
        super().__init__()
        self.x = x


@pytest.mark.parametrize(
    "make, conn",
    [(lambda x, c: bm.AdditiveCoupling(x, conn=c), jnp.ones(4)),
     (lambda x, c: bm.SigmoidalCoupling(x, conn=c), jnp.ones((2, 2, 2))),
     (lambda x, c: bm.HyperbolicTangentCoupling(x, conn=c), jnp.ones((2, 2, 2))),
     (lambda x, c: bm.SigmoidalJansenRitCoupling(x, conn=c), jnp.ones((2, 2, 2))),
     (lambda x, c: bm.DiffusiveCoupling(x, x, conn=c), jnp.ones((2, 2, 2)))],
)
def test_coupling_refuses_a_bad_conn_rank_at_construction(make, conn):
    x = bs.nn.Prefetch(_Holder(jnp.ones((2, 2))), "x")
    with pytest.raises(ValueError, match=f"conn must be .*got a {conn.ndim}-D array"):
        make(x, conn)


# -- network (network_test.py) --------------------------------------------------------------------
def _hopf(n):
    return bm.HopfStep(n, a=0.1, w=0.2, init_x=bt.init.Constant(0.2), init_y=bt.init.Constant(0.1))


W = np.array([[0.5, 0.2, 0.1], [0.3, 0.5, 0.2], [0.1, 0.4, 0.5]], dtype=np.float32)


def _run_additive(conn, self_connection):
    net = bm.Network(_hopf(3), conn=conn, coupled_var="x", coupling="additive", self_connection=self_connection,
                     k=0.5, delay_init=bt.init.Constant(0.2))
    out = bm.Simulator(net, dt=DT).run(20 * DT, monitors=lambda m: m.node.x.value)
    return net, np.asarray(out["output"][-1])


def test_network_self_connection_and_conn_diagonal():
    # brainmass zeroes a plain conn's diagonal (net.coupling.conn shows it) and keeps a Param's;
    # last x after 2 ms, brainmass 0.1.1 (float32):
    keep = [0.36218944, 0.41325212, 0.4173553]
    drop = [0.2258643, 0.26287195, 0.26604795]
    net, x = _run_additive(W, False)
    assert np.allclose(np.diag(np.asarray(net.coupling.conn.value())), 0.0)
    assert np.allclose(x, drop, atol=2e-6)
    net, x = _run_additive(W, True)
    assert np.allclose(np.diag(np.asarray(net.coupling.conn.value())), 0.5)
    assert np.allclose(x, keep, atol=2e-6)
    # a Param owns its structure: its diagonal stays, whatever self_connection says
    _, x = _run_additive(bs.nn.Param(W, fit=False), False)
    assert np.allclose(x, keep, atol=2e-6)


# -- observation, datasets (leadfield_test.py, datasets_test.py) ---------------------------------
def test_leadfield_readout_lm_is_a_constant_holding_the_normalised_matrix():
    lm = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    readout = bm.LeadfieldReadout(lm, bs.nn.Param.init(0.0), bs.nn.Param.init(1.0), normalize="l2", demean=False)
    assert not readout.lm.fit  # brainmass: Param.init(lm) is a Const (not fitted)
    lm_hat = np.asarray(readout.lm.value())
    assert np.allclose(np.sqrt((lm_hat**2).sum(axis=1)), 1.0, atol=1e-5)
    x = jnp.arange(5.0)
    assert np.allclose(np.asarray(readout.update(x)), lm_hat @ np.asarray(x), atol=1e-5)  # normalised once
    readout = bm.LeadfieldReadout(lm, 0.0, 1.0, normalize=False, demean=True)
    assert np.allclose(np.asarray(readout.lm.value()).mean(axis=0), 0.0, atol=1e-6)
    assert bm.LeadfieldReadout(bs.nn.Param(lm), 0.0, 1.0).lm.fit  # a Param is kept and trains


def test_register_dataset_default_description_is_empty():
    bm.datasets.register_dataset("tmp_no_description", lambda: 1)
    try:
        assert dict(bm.datasets.list_datasets())["tmp_no_description"] == ""
    finally:
        bm.datasets._REGISTRY.pop("tmp_no_description")


# -- model.derivative(state_tuple, t, *inputs) (9 of brainmass's model test files) ----------------
def _per_ms(q):
    return np.asarray(u.get_magnitude(q * u.ms))


_STATE2 = (jnp.array([0.5, -1.0]), jnp.array([1.0, -0.5]))
# brainmass 0.1.1's numbers for these states and inputs (probed): derivative * ms
_DERIVATIVE_CASES = {
    "epileptor": (
        lambda: bm.EpileptorStep(2, Kvf=0.3, Ks=0.2),
        ([-1.2, 0.3], [-10.0, -9.0], [3.5, 3.8], [-0.8, -0.2], [0.1, 0.4], [0.05, -0.05]),
        ([0.2, -0.4], [0.1, 0.0], [0.05, -0.05], [0.02, 0.03]),  # x1_inp, x2_inp, add1, add2
        [[-4.2419987, -9.8028011], [3.8, 9.55], [-0.000651, 0.001302], [0.182, -0.302], [-0.01, -0.01],
         [-0.0017, 0.0008]],
    ),
    "generic2d": (
        bm.Generic2dOscillatorStep,
        ([0.5, -1.0], [1.0, -0.5]),
        ([0.3, 0.1], [0.05, 0.0], [0.0, -0.02]),  # V_inp, add_V, add_W
        [[0.0885, 0.072], [-0.16, 0.15]],
    ),
    "wong_wang_exc_inh": (
        bm.WongWangExcInhStep,
        ([0.2, 0.6], [0.1, 0.3]),
        ([0.1, 0.3], 0.01, -0.02),  # coupling, add_e, add_i
        [[0.00874588, 0.00404551], [-0.02955558, -0.04999937]],
    ),
    "linear": (lambda: bm.LinearStep(2, gamma=-7.0), ([0.5, -1.0],), ([0.2, 0.3],), [[-3.3, 7.3]]),
}


@pytest.mark.parametrize("case", sorted(_DERIVATIVE_CASES))
def test_derivative_takes_brainmass_state_tuple(case):
    # brainmass: derivative((s1, s2, ...), t, *inputs) -> tuple per ms; the facade's
    # derivative(state: dict, ...) raised "dictionary update sequence element #0 has length 4"
    make, state, inputs, expected = _DERIVATIVE_CASES[case]
    model = make() if not isinstance(make, type) else make(2)
    model.init_all_states()
    state = tuple(jnp.asarray(s) for s in state)
    inputs = tuple(jnp.asarray(i) if isinstance(i, list) else i for i in inputs)
    out = model.derivative(state, 0.0 * u.ms, *inputs)
    assert isinstance(out, tuple) and len(out) == len(expected)
    for d, e in zip(out, expected):
        assert u.get_unit(d * u.ms).is_unitless
        np.testing.assert_allclose(_per_ms(d), e, rtol=2e-6, atol=1e-7)


def test_derivative_units_keywords_and_noise():
    # Jansen-Rit in brainmass's units (mV, mV/s; brainmass's numbers in mV/s and mV/s^2)
    jr = bm.JansenRitStep(1)
    jr.init_all_states()
    v = lambda x, unit: jnp.array([x]) * unit
    mvs = u.mV / u.second
    d = jr.derivative((v(0.1, u.mV), v(15.0, u.mV), v(8.0, u.mV), v(20.0, mvs), v(-30.0, mvs), v(5.0, mvs)),
                      0.0 * u.ms, 0.0 * u.mV, 150.0 * u.Hz, 0.0 * u.mV)
    got = [float(x.to_decimal(mvs if i < 3 else mvs / u.second)[0]) for i, x in enumerate(d)]
    np.testing.assert_allclose(got, [20.0, -30.0, 5.0, -3965.7646, 77657.16, 14201.227], rtol=2e-6)
    # brainmass's keyword names of the additive terms; the noise is not part of the derivative
    noisy = bm.Generic2dOscillatorStep(2, noise_V=bm.OUProcess(2, sigma=0.3), noise_W=None)
    noisy.init_all_states()
    d = noisy.derivative(_STATE2, 0.0, jnp.array([0.3, 0.1]), add_V=jnp.array([0.05, 0.0]))
    np.testing.assert_allclose(_per_ms(d[0]), [0.0885, 0.072], rtol=2e-6)
    with pytest.raises(TypeError, match=r"state must be a tuple of 2 arrays \('V', 'W'\)"):
        noisy.derivative((_STATE2[0],), 0.0, 0.0)
    with pytest.raises(TypeError, match="takes 3 inputs, got 4"):
        noisy.derivative(_STATE2, 0.0, 0.0, 0.0, 0.0, 0.0)


def test_bold_derivative():
    # brainmass: BOLDSignal.derivative((x, f, v, q), t, z), plain numbers per second
    bold = bm.BOLDSignal(2)
    y = (jnp.array([0.2, -0.1]), jnp.array([1.1, 0.9]), jnp.array([1.05, 0.95]), jnp.array([0.9, 1.1]))
    d = bold.derivative(y, 0.0, jnp.array([0.5, 0.0]))
    # The float64 values (brainmass's float32 run printed -0.06602699, 0.04908637, 0.0198759,
    # -0.0077348 for v' and q'). v' and q' are differences of O(1) terms (over tau = 0.98 s),
    # so float32 leaves a few 1e-7 absolute in them: jax 0.10 gave q' = -0.00773474, jax
    # 0.12 -0.00773461 (the old relative tolerance of 1e-5 held for one jax release only).
    expected = [
        [0.329, 0.106],
        [0.2, -0.1],
        [-0.06602720611233062, 0.049086339846584774],
        [0.019875867140993514, -0.007734615293023619],
    ]
    for got, e in zip(d, expected):
        np.testing.assert_allclose(np.asarray(got), e, rtol=1e-6, atol=5e-7)


# -- Param.val / Const.val (156 uses in brainmass's tests) ---------------------------------------
def test_param_val_is_brainstates_storage():
    # brainstate: a Const's val is its raw value, unit included; the facade gave the magnitude
    assert bm.FitzHughNagumoStep(1).tau.val == 20.0 * u.ms
    assert bm.ThresholdLinearStep(1).tau_E.val == 2e-2 * u.second
    assert bm.WongWangStep(1).tau_S.val == 0.1 * u.second
    assert bm.HopfStep(1).a.val == 0.25
    # raw = unconstrained: SigmoidT(0, 1).inverse(0.5) = 0 (brainstate: Array(-0.))
    const = bs.nn.Param(0.5, t=bs.nn.SigmoidT(0.0, 1.0), fit=False)
    assert float(const.val) == 0.0 and float(const.value()) == pytest.approx(0.5)
    # a trainable Param's val is its ParamState; value() is unchanged
    p = bs.nn.Param(20.0 * u.ms)
    assert isinstance(p.val, bs.ParamState) and p.value() == 20.0 * u.ms
    p.set_value(30.0 * u.ms)
    assert float(p.val.value) == 30.0 and p.value() == 30.0 * u.ms


# -- MEGLeadFieldModel defaults (forward_model_test.py::test_meg_defaults) -----------------------
def test_meg_lead_field_takes_brainmass_tesla_input():
    # brainmass: scale = 1 nA m / T, so an observable in T comes out in T; the facade raised
    # "S has unit T, which cannot be converted to the input unit mV set by scale"
    L = jnp.arange(6.0).reshape(2, 3) * (u.tesla / (u.nA * u.meter))
    meg = bm.MEGLeadFieldModel(in_size=(2,), out_size=(3,), L=L)
    for unit in (u.tesla, u.mV):  # an mV potential maps one-to-one too (compat.md item 34)
        y = meg.update(jnp.ones((5, 2)) * (4.0 * unit))
        assert y.shape == (5, 3) and u.get_unit(y) == u.tesla
        np.testing.assert_allclose(np.asarray(y[0].to_decimal(u.tesla)), [12.0, 20.0, 28.0])


# -- per-equation right-hand sides: model.dx(x, y, inp), drE, dMv, ... (11 of brainmass's test files) --
_X, _Y, _I, _Z = [0.3, -0.2], [0.1, 0.5], [0.05, -0.1], [1.0, 2.0]
_MVS = u.mV / u.second
# brainmass 0.1.1's numbers for these calls (probed), times 1 ms (JR: in mV/s; MPR: in Hz)
_RHS_CASES = [
    ("hopf.dx", lambda: bm.HopfStep(2, a=0.3, w=0.7, beta=1.2), "dx", (_X, _Y, _I), {}, [0.03400001, -0.4404]),
    ("hopf.dy", lambda: bm.HopfStep(2, a=0.3, w=0.7, beta=1.2), "dy", (_Y, _X, _I), {}, [0.278, -0.264]),
    ("sl.dx", lambda: bm.StuartLandauStep(2, a=0.3, w=0.7), "dx", (_X, _Y), {"x_ext": _I}, [0.04000001, -0.452]),
    ("vdp.dy, default inp", lambda: bm.VanDerPolStep(2, mu=1.5), "dy", (_Y, _X), {}, [0.2, -0.1333333]),
    ("fhn.dw", lambda: bm.FitzHughNagumoStep(2), "dw", (_Y, _X, _I), {}, [0.0625, -0.1225]),
    ("fhn.dw, default inp", lambda: bm.FitzHughNagumoStep(2), "dw", (_Y,), {"x": _X}, [0.0125, -0.0225]),
    ("lorenz.dy", lambda: bm.LorenzStep(2), "dy", (_Y, _X, _Z), {}, [8.0, -5.7]),
    ("g2d.dW, add", lambda: bm.Generic2dOscillatorStep(2), "dW", (_Y, _X), {"add": 0.1}, [-0.001999997, 0.09]),
    ("coombes_byrne.dv", lambda: bm.CoombesByrneStep(2), "dv", (_Y, [0.3, 0.2], _I), {}, [-2.692424, -1.072218]),
    ("montbrio.dr", lambda: bm.MontbrioPazoRoxinStep(2), "dr", ([0.02, 0.04] * u.Hz, _Y, _I * u.Hz), {},
     [0.3723099, 0.2583099]),
    ("wc.drE", lambda: bm.WilsonCowanStep(2), "drE", ([0.3, 0.2], [0.1, 0.5], 1.0), {}, [0.2665347, -0.101179]),
    ("wc_divisive.drE", lambda: bm.WilsonCowanDivisiveStep(2), "drE", ([0.3, 0.2], [0.1, 0.5], 1.0), {},
     [-0.1021203, -0.144692]),
    ("wc_adaptive.daE", lambda: bm.WilsonCowanAdaptiveStep(2), "daE", (0.1, [0.3, 0.2]), {}, [-0.0007, -0.0008]),
    ("wc_three.drM", lambda: bm.WilsonCowanThreePopulationStep(2), "drM", (0.1, [0.3, 0.2], [0.1, 0.5], 0.3), {},
     [0.04097334, -0.05773271]),
    ("jr.dMv", lambda: bm.JansenRitStep(2), "dMv", (2.0 * _MVS, 5.0 * u.mV, 3.0 * u.mV, 2.0 * u.mV, 1.0 * u.mV), {},
     [-50.24365]),
    ("jr.dEv, default inp", lambda: bm.JansenRitStep(2), "dEv", (1.0 * _MVS, 5.0 * u.mV, 3.0 * u.mV), {}, [145.3]),
    ("jr.dEv", lambda: bm.JansenRitStep(2), "dEv", (1.0 * _MVS, 5.0 * u.mV, 3.0 * u.mV, 20.0 * u.Hz), {}, [151.8]),
    ("wong_wang_exc_inh.dS_e", lambda: bm.WongWangExcInhStep(2), "dS_e", ([0.3, 0.2], [0.1, 0.5], 0.1, 0.01), {},
     [0.008285062, 0.007999999]),
    ("larter_breakspear.dV", lambda: bm.LarterBreakspearStep(2), "dV", (_X, _Y, [0.1, 0.2], _I), {},
     [1.2186, -0.4103519]),
    ("epileptor.dx1", lambda: bm.EpileptorStep(2), "dx1", ([-1.5, 0.2], _Y, [3.0, 4.0], [-1.0, 0.3], _I, 0.1), {},
     [10.425, -0.3600001]),
    ("epileptor.dz", lambda: bm.EpileptorStep(2), "dz", ([3.0, 4.0], [-1.5, 0.2], _I), {}, [-0.0009099999, 0.00112]),
]


def _arg(a):
    return jnp.asarray(a) if isinstance(a, list) else a


@pytest.mark.parametrize("case", _RHS_CASES, ids=[c[0] for c in _RHS_CASES])
def test_per_equation_rhs_methods_match_brainmass(case):
    # brainmass's models have public per-equation right-hand sides (HopfStep.dx(x, y, inp),
    # WilsonCowanStep.drE(rE, rI, ext), JansenRitStep.dMv(Mv, M, E, I, inp), ...) that its
    # tests call; the facade had none ("'HopfStep' object has no attribute 'dx'")
    _, make, name, args, kwargs, expected = case
    model = make()
    out = getattr(model, name)(*map(_arg, args), **{k: _arg(v) for k, v in kwargs.items()})
    unit = {"dMv": _MVS, "dEv": _MVS, "dr": u.Hz}.get(name) if name != "dr" or "montbrio" in case[0] else None
    value = out * u.ms
    value = value.to_decimal(unit) if unit is not None else u.get_magnitude(u.maybe_decimal(value))
    np.testing.assert_allclose(np.asarray(value), expected, rtol=2e-6, atol=1e-8)


def test_per_equation_rhs_signatures_and_errors():
    hopf = bm.HopfStep(1)
    assert str(inspect.signature(hopf.dx)) == "(x, y, inp)"
    assert str(inspect.signature(bm.VanDerPolStep(1).dy)) == "(y, x, inp=None)"
    assert str(inspect.signature(bm.EpileptorStep(1).dx2)) == "(x2, y2, z, g, x2_inp, add=None)"
    with pytest.raises(TypeError, match=r"HopfStep.dx\(self, x, y, inp\): missing a required argument: 'inp'"):
        hopf.dx(0.1, 0.2)
    # the delayed model's brainmass drE reads its delay buffers: refused rather than undelayed numbers
    with pytest.raises(NotImplementedError, match="WilsonCowanDelayedStep.drE: brainmass's drE reads the delayed"):
        bm.WilsonCowanDelayedStep(1).drE(0.1, 0.2, 0.0)


def test_transfer_functions_match_brainmass():
    # brainmass 0.1.1 (probed): JansenRitStep.S, WilsonCowanStep.F, WongWangStep.phi and
    # compute_inputs, LarterBreakspearStep.QV
    jr = bm.JansenRitStep(2)
    s = jr.S(jnp.array([0.0, 6.0, 20.0]) * u.mV)
    np.testing.assert_allclose(s.to_decimal(u.Hz), [0.1678461, 2.5, 4.998033], rtol=2e-6)
    assert s[1] == jr.s_max.val / 2.0  # exactly half at v0, as brainmass's test asserts
    f = bm.WilsonCowanStep(2).F(jnp.array([0.0, 1.0, 3.0]), 1.2, 2.8)
    np.testing.assert_allclose(f, [0.0, 0.06983121, 0.5261444], rtol=2e-6, atol=1e-7)
    ww = bm.WongWangStep(2)
    np.testing.assert_allclose(ww.phi(jnp.array([0.3, 0.4]) * u.nA).to_decimal(u.Hz), [0.0, 24.3], rtol=2e-6)
    ww.init_all_states()
    ww.S1.value, ww.S2.value = jnp.array([0.1, 0.2]), jnp.array([0.3, 0.05])
    I1, I2 = ww.compute_inputs(coherence=0.5, noise_1_val=0.01 * u.nA)
    np.testing.assert_allclose(I1.to_decimal(u.nA), [0.3567735, 0.3952885], rtol=2e-6)
    np.testing.assert_allclose(I2.to_decimal(u.nA), [0.4021645, 0.3319695], rtol=2e-6)
    qv = bm.LarterBreakspearStep(2).QV(jnp.array(_X))
    np.testing.assert_allclose(qv, [0.7156687, 0.3508319], rtol=2e-6)


# -- brainunit features (forward_model_test.py, coombes_byrne_test.py, ...) -----------------------
def test_brainunit_has_same_dim_and_quantity_is_unitless():
    # brainunit's Unit.has_same_dim and Quantity.is_unitless: the facade had neither
    assert u.ms.has_same_dim(u.second) and not u.ms.has_same_dim(u.mV)
    assert u.get_unit(3.0 * u.mV).has_same_dim(u.volt) and u.Unit("").has_same_dim(2.0)
    assert not (2.0 * u.ms).is_unitless and not (2.0 * u.mV).is_unitless
    assert u.Quantity(jnp.ones(2), "").is_unitless


# -- names brainmass keeps only in a public submodule ----------------------------------------------
def test_submodule_only_names():
    # from brainmass.utils import set_module_as failed (utils_test.py did not import)
    from brainmass_eqx.compat.jansen_rit import Identity
    from brainmass_eqx.compat.utils import set_module_as

    @set_module_as("brainmass.somewhere")
    def fn():
        return 1

    assert fn.__module__ == "brainmass.somewhere"
    assert bm.JansenRitStep(1, fr_scale=Identity()).fr_scale(2.0) == 2.0
    assert not hasattr(bm, "set_module_as") and not hasattr(bm, "Identity")  # not top level, as in brainmass
