"""The model zoo: catalogue, gradients and batching of every model, behaviour known from
the literature, the sequence blocks (against brainmass 0.1.1), and bad input."""

from __future__ import annotations

import math
import warnings

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt
from _jax_versions import enable_x64
from _reference import REFERENCE_DIR, load_reference

import brainmass_eqx.models as M
from brainmass_eqx._simulate import simulate
from brainmass_eqx._units import UnitError
from brainmass_eqx.noise import WhiteNoise, with_noise
from brainmass_eqx.solvers import RK4

REGISTRY = M.model_registry()

# -- catalogue -----------------------------------------------------------------------------

# brainmass 0.1.1's `repr(list_models())`, verbatim (spec section 2.1).
BRAINMASS_LIST_MODELS = (
    "[ModelInfo(name='HopfStep', category='phenomenological', n_state_vars=2, use_case='Oscillation onset, rhythm generation'), "
    "ModelInfo(name='VanDerPolStep', category='phenomenological', n_state_vars=2, use_case='Nonlinear relaxation oscillations'), "
    "ModelInfo(name='StuartLandauStep', category='phenomenological', n_state_vars=2, use_case='Amplitude-controlled oscillations'), "
    "ModelInfo(name='FitzHughNagumoStep', category='phenomenological', n_state_vars=2, use_case='Excitability, spike generation'), "
    "ModelInfo(name='ThresholdLinearStep', category='phenomenological', n_state_vars=2, use_case='Fast linear E-I responses'), "
    "ModelInfo(name='Generic2dOscillatorStep', category='phenomenological', n_state_vars=2, use_case='Flexible planar dynamics (TVB)'), "
    "ModelInfo(name='LorenzStep', category='phenomenological', n_state_vars=3, use_case='Chaos, coupling test fixture'), "
    "ModelInfo(name='LinearStep', category='phenomenological', n_state_vars=1, use_case='Baseline node, coupling sanity checks'), "
    "ModelInfo(name='WilsonCowanStep', category='physiological', n_state_vars=2, use_case='E-I population firing-rate dynamics'), "
    "ModelInfo(name='JansenRitStep', category='physiological', n_state_vars=6, use_case='EEG generation, alpha rhythms'), "
    "ModelInfo(name='WongWangStep', category='physiological', n_state_vars=2, use_case='Decision making (perceptual choice)'), "
    "ModelInfo(name='WongWangExcInhStep', category='physiological', n_state_vars=2, use_case='Resting-state BOLD/FC, E-I balance'), "
    "ModelInfo(name='MontbrioPazoRoxinStep', category='physiological', n_state_vars=2, use_case='Exact QIF mean-field (theta neurons)'), "
    "ModelInfo(name='CoombesByrneStep', category='physiological', n_state_vars=2, use_case='Next-gen mean-field, conductance synapses'), "
    "ModelInfo(name='LarterBreakspearStep', category='physiological', n_state_vars=3, use_case='Conductance-based limit cycles / chaos'), "
    "ModelInfo(name='EpileptorStep', category='physiological', n_state_vars=6, use_case='Seizure onset/offset, epilepsy'), "
    "ModelInfo(name='KuramotoNetwork', category='network', n_state_vars=1, use_case='Phase synchronization'), "
    "ModelInfo(name='HORNStep', category='network', n_state_vars=2, use_case='Single coupled-oscillator step'), "
    "ModelInfo(name='HORNSeqLayer', category='network', n_state_vars=2, use_case='Sequential HORN layer'), "
    "ModelInfo(name='HORNSeqNetwork', category='network', n_state_vars=2, use_case='Multi-layer HORN sequence network')]"
)


def test_list_models_equals_brainmass():
    models = M.list_models()
    assert repr(models) == BRAINMASS_LIST_MODELS
    assert len(models) == 20 and models[0] == ("HopfStep", "phenomenological", 2, "Oscillation onset, rhythm generation")
    models.clear()  # a fresh list each call
    assert len(M.list_models()) == 20
    table = M.list_models.to_table().splitlines()
    assert table[0].split() == ["name", "category", "#states", "use_case"] and len(table) == 22


def test_every_catalogue_entry_is_described_with_its_state_count():
    for info in M.list_models():
        desc = M.describe_model(info.name)
        assert len(desc.states) == info.n_state_vars and desc.category == info.category, info.name
    blocks = M.model_registry(include_blocks=True)
    assert len(blocks) == 36 and blocks["JansenRitTR"].parameters["Ae"]["unit"] == "mV"


def test_registry_describes_every_model():
    assert len(REGISTRY) == 28
    for name, desc in REGISTRY.items():
        assert desc.cls.__name__ == name and desc.reference and desc.summary
        assert list(desc.states) == list(desc.cls.state_names)
        for pname, spec in desc.parameters.items():
            assert spec["doc"], f"{name}.{pname} has no meaning"
            assert "default" in spec and "unit" in spec
    jr = M.describe_model("JansenRitStep")
    assert jr.name == "JansenRit" and jr.parameters["Ae"]["unit"] == "mV" and jr.parameters["be"]["unit"] == "Hz"
    assert jr.states["Mv"] == "mV/ms" and jr.inputs["E"] == "Hz" and jr.observables == ("eeg",)
    assert jr.observable_units == {"eeg": "mV"} and "observables: eeg [mV]" in str(jr)
    assert M.describe_model(M.WongWang).parameters["a"]["unit"] == "Hz/nA"
    assert M.describe_model(M.Hopf(2)).brainmass_name == "HopfStep"
    assert isinstance(M.describe_model("StuartLandau").initial["x"], M.Uniform)
    # print() gives the model's page; the repr stays one short line.
    page = str(M.describe_model("Hopf"))
    assert page.startswith("Hopf  (brainmass: HopfStep)") and "parameter  default  unit" in page
    assert "bifurcation parameter" in page and "Deco, G." in page
    assert repr(M.describe_model("Hopf")) == "ModelDescription('Hopf', category='phenomenological'; print() it for the full page)"
    with pytest.raises(ValueError, match=r"unknown model name 'wilsoncowan' \(did you mean 'WilsonCowan'\?\)"):
        M.describe_model("wilsoncowan")
    with pytest.raises(ValueError, match="unknown model name 'Hopff'"):
        M.describe_model("Hopff")


# -- gradients and vmap of every model -----------------------------------------------------

GRAD_STEPS = 200
# The summary is the final state (the last step recorded alone), except for these models,
# where it is the mean over samples every 10 steps: that also exercises the recording path
# whose reverse-mode gradient the design notes warn about.
RECORDED = ("Hopf",)


# Models with no brainmass counterpart (TVB's): their non-default case, written here.
ALT_CASES = {
    "ReducedWongWang": (
        {"w": np.array(0.9), "I_o": np.array([0.3, 0.33, 0.35]), "J_N": np.array(0.27)},
        {"S": np.array([0.1, 0.5, 0.8])},
        {"coupling": np.array([0.0, 0.2, 0.5])},
    ),
}


def _alt_case(name):
    """Parameters, initial state and inputs of the model's non-default reference case."""
    desc = REGISTRY[name]
    if name in ALT_CASES:
        params, y0, inputs = ALT_CASES[name]
        return desc.cls, params, {}, y0, inputs, 0.1
    method = "symplectic" if name == "HORN" else "exp_euler"
    ref = load_reference(f"models/{desc.brainmass_name}__alt__{method}.npz")
    meta = ref["meta"]
    specs = desc.cls.parameter_specs()
    params = {k: np.asarray(v[0], np.float64) for k, v in meta["params"].items() if k in specs}
    extra = {k: v[0] for k, v in meta["params"].items() if k in ("normalize_by_n", "exclude_self")}
    if meta["params"].get("conn", [None])[0] is not None:
        extra["conn"] = np.asarray(meta["params"]["conn"][0])
    if name == "WilsonCowanDelayed":
        # Off the step grid: linear interpolation is differentiable there.
        params = {k: v + 0.033 if k.startswith("delay") else v for k, v in params.items()}
        extra["max_delay"] = 4.0
    factor = {"Mv": 1e-3, "Ev": 1e-3, "Iv": 1e-3} if name == "JansenRit" else {}
    y0 = {v: ref[f"init__{v}"].astype(np.float64) * factor.get(v, 1.0) for v in meta["state_names"]}
    inputs = {
        ("input" if a == "inputs" else a.removesuffix("_inp")): ref[key].astype(np.float64)
        for a, key in meta["update_inputs"].items()
    }
    return desc.cls, params, extra, y0, inputs, float(meta["dt_ms"])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_grad_matches_finite_differences_and_vmap_batches(name):
    cls, params, extra, y0, inputs, dt = _alt_case(name)
    names = sorted(params)
    with enable_x64(True):
        base = cls(3, **params, **extra)
        flat0 = jnp.concatenate([jnp.ravel(jnp.asarray(params[n], jnp.float64)) for n in names])
        sizes = [int(np.size(params[n])) for n in names]
        y0 = {k: jnp.asarray(v) for k, v in y0.items()}
        inputs = {k: jnp.asarray(v) for k, v in inputs.items()}

        def loss(flat):
            pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
            values = [p.reshape(np.shape(params[n])) for p, n in zip(pieces, names)]
            model = eqx.tree_at(lambda m: [getattr(m, n) for n in names], base, values)
            traj = simulate(
                model, GRAD_STEPS * dt, dt=dt, y0=y0, inputs=(lambda t: inputs) if inputs else None,
                sample_every=10 if name in RECORDED else 1, transient=0 if name in RECORDED else GRAD_STEPS - 1,
                check_finite=False,
            )
            return sum(jnp.mean(v) for v in traj.ys.values())

        # One compiled vmap over the nominal set and every +-h perturbation: the vmap
        # test and the finite differences in one go.
        h = 1e-6 * jnp.maximum(jnp.abs(flat0), 1.0)
        eye = jnp.eye(flat0.size) * h
        batch = jnp.concatenate([flat0[None], flat0 + eye, flat0 - eye])
        values, grads = jax.jit(jax.vmap(jax.value_and_grad(loss)))(batch)
        n = flat0.size
        fd = (values[1 : n + 1] - values[n + 1 :]) / (2 * h)
        assert np.all(np.isfinite(np.asarray(grads)))
        scale = float(jnp.max(jnp.abs(fd)))
        np.testing.assert_allclose(np.asarray(grads[0]), np.asarray(fd), rtol=1e-4, atol=1e-6 * scale + 1e-9,
                                   err_msg=f"{name}: d loss / d {names}")
        # The perturbed runs really differ (the batch is not collapsed to one run).
        assert scale > 0


# -- behaviour known from the literature ---------------------------------------------------


def test_hopf_amplitude_is_sqrt_a_above_the_bifurcation():
    a = jnp.array([0.25, 0.64, -0.1])
    model = M.Hopf(3, a=a, w=0.3, init_x=0.1)
    traj = simulate(model, 100.0, dt=0.05, solver=RK4(), transient=1800, sample_every=20)
    radius = np.hypot(np.asarray(traj["x"]), np.asarray(traj["y"]))
    np.testing.assert_allclose(radius[:, :2], np.broadcast_to([0.5, 0.8], radius[:, :2].shape), rtol=1e-3)
    assert np.all(radius[:, 2] < 1e-3)


def test_an_oscillator_faster_than_the_step_warns():
    # w = 10 meant as 10 Hz is 1592 Hz in rad/ms: 6 steps per cycle at dt = 0.1 ms, and
    # the run aliased to a peak at 1245 Hz without a word.
    with pytest.warns(UserWarning, match=r"Hopf: w \* dt = 1 rad per step, over 0.5 \(w = 10 rad/ms, 1592 Hz, at dt = "
                      r"0.1 ms: 6.3 steps per cycle\).* 10 Hz is w = 2\*pi\*10/1000 = 0.0628"):
        simulate(M.Hopf(2, w=10.0), 1.0, dt=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        simulate(M.Hopf(2, w=0.3), 1.0, dt=0.1)


def test_kuramoto_synchronises_above_critical_coupling():
    # Gaussian frequencies of spread sigma: K_c = 2 / (pi g(0)) = 2 sigma sqrt(2 pi) / pi = 0.08.
    n, sigma = 64, 0.05
    omega = jnp.asarray(np.random.default_rng(1).normal(0.0, sigma, n))

    def order(K):
        model = M.Kuramoto(n, omega=omega, K=K)
        traj = simulate(model, 400.0, dt=0.1, key=jax.random.key(0), monitors="order_parameter", sample_every=10)
        return jnp.mean(traj["order_parameter"][-100:])

    below, above = jax.vmap(order)(jnp.array([0.02, 0.3]))
    assert above > 0.95 and below < 0.3


def test_wong_wang_exc_inh_rests_near_3_hz():
    traj = simulate(M.WongWangExcInh(1), 3000.0, dt=0.1, sample_every=1000, monitors=["H_e", "H_i"])
    assert 2.5 < float(traj["H_e"][-1, 0]) < 3.5
    assert float(traj["H_i"][-1, 0]) > float(traj["H_e"][-1, 0])


def test_reduced_wong_wang_rests_low_and_excites_with_recurrence():
    # Deco et al. 2013: at w = 0.6 (the default) one low-rate fixed point; a stronger
    # recurrence or drive raises the rate. H = 1/d at a x = b, finite (exprel).
    w = jnp.array([0.6, 1.0])
    traj = simulate(M.ReducedWongWang(2, w=w), 3000.0, dt=0.1, sample_every=1000, monitors=["S", "H"])
    S, H = np.asarray(traj["S"][-1]), np.asarray(traj["H"][-1])
    assert 0.0 < S[0] < S[1] < 1.0 and 0.5 < H[0] < 10.0 < H[1]
    # As in TVB, S is clamped to [0, 1] after each step: noise took it to -6 before.
    noisy = with_noise(M.ReducedWongWang(4), noise_S=WhiteNoise(0.2))
    S = np.asarray(simulate(noisy, 200.0, dt=0.1, key=jax.random.key(0), monitors=["S"])["S"])
    assert S.min() == 0.0 and S.max() == 1.0
    node = M.ReducedWongWang(1)
    at_threshold = {"S": jnp.array([(node.b / node.a - node.I_o) / (node.w * node.J_N)])}
    np.testing.assert_allclose(node.H(at_threshold), 1.0 / node.d, rtol=1e-5)


def test_epileptor_seizures_start_and_stop_only_above_the_threshold_x0():
    model = M.Epileptor(2, x0=jnp.array([-1.6, -2.4]))
    traj = simulate(model, 8000.0, dt=0.1, sample_every=10, monitors=["x1", "x2", "lfp"])
    x1 = np.asarray(traj["x1"])
    # In a seizure x1 keeps leaving its resting branch (x1 < -0.5): mark 200 ms windows.
    active = (x1 > -0.5).reshape(-1, 200, 2).any(axis=1)
    onsets = np.sum(np.diff(active.astype(int), axis=0) == 1, axis=0)
    offsets = np.sum(np.diff(active.astype(int), axis=0) == -1, axis=0)
    assert onsets[0] >= 1 and offsets[0] >= 1 and 0.1 < active[:, 0].mean() < 0.9
    assert not active[:, 1].any()
    np.testing.assert_allclose(np.asarray(traj["lfp"]), np.asarray(traj["x2"] - traj["x1"]))


def test_jansen_rit_alpha_peak():
    traj = simulate(M.JansenRit(1), 4000.0, dt=0.1, transient=10000, sample_every=10,
                    inputs=lambda t: {"E": jnp.array([220.0])}, monitors="eeg")
    eeg = np.asarray(traj["eeg"][:, 0])
    freqs = np.fft.rfftfreq(eeg.size, d=1e-3)  # samples every 1 ms
    power = np.abs(np.fft.rfft(eeg - eeg.mean())) ** 2
    assert 8.0 <= freqs[1 + np.argmax(power[1:])] <= 12.0


# -- model-specific behaviour ---------------------------------------------------------------


def test_threshold_linear_inhibition_relaxes_to_its_drive_and_rates_stay_nonnegative():
    model = M.ThresholdLinear(2)
    traj = simulate(model, 200.0, dt=0.1, inputs=lambda t: {"E": jnp.array([10.0, -3.0]), "I": jnp.array([1.0, 2.0])})
    np.testing.assert_allclose(np.asarray(traj["I"][-1]), 0.351 * np.array([1.0, 2.0]), rtol=2e-5)
    assert np.all(np.asarray(traj["E"]) >= 0) and float(traj["E"][-1, 1]) == 0.0
    assert not M.ThresholdLinear.supports_adaptive and not M.WongWang.supports_adaptive


def test_wong_wang_decision_and_clipping():
    model = M.WongWang(2)
    traj = simulate(model, 1000.0, dt=0.1, inputs=lambda t: {"coherence": jnp.array([0.5, -0.5])})
    final = traj.final_state
    assert np.all((np.asarray(final["S1"]) >= 0) & (np.asarray(final["S1"]) <= 1))
    np.testing.assert_array_equal(np.asarray(model.get_decision(final)), [1, -1])
    assert int(model.get_decision({"S1": jnp.zeros(1), "S2": jnp.zeros(1)})[0]) == 0
    assert np.asarray(model.get_decision(final, threshold=unxt.Quantity(1e6, "Hz"))).tolist() == [0, 0]


def test_wong_wang_abbott_chance_transfer_gives_winner_take_all():
    # Wong & Wang 2006: spontaneous rates near 2 Hz; at coherence 0.2 one population wins
    # (about 26 Hz with J_A_ext 0.2243e-3) and the other falls silent. brainmass's
    # threshold-linear default has neither: both populations near 49 Hz.
    rates = {}
    for transfer in ("threshold_linear", "abbott_chance"):
        model = M.WongWang(2, transfer=transfer, mu_0=jnp.array([30.0, 0.0]))
        traj = simulate(model, 3000.0, dt=0.1, inputs={"coherence": 0.2}, sample_every=1000, monitors=["r1", "r2"])
        rates[transfer] = np.stack([np.asarray(traj["r1"][-1]), np.asarray(traj["r2"][-1])])
    (r1, r2), (s1, s2) = rates["abbott_chance"][:, 0], rates["abbott_chance"][:, 1]
    assert 20.0 < r1 < 32.0 and r2 < 1.0 and 1.0 < s1 == s2 < 2.5
    assert np.all(rates["threshold_linear"][:, 0] > 45.0)
    with pytest.raises(ValueError, match=r"WongWang: transfer must be one of \['threshold_linear', 'abbott_chance'\]"):
        M.WongWang(1, transfer="abbot")


def test_montbrio_uses_tau_on_every_term():
    # Doubling tau and halving every rate-of-change term: the paper's scaling.
    state = {"r": jnp.array([2.0]), "v": jnp.array([-1.0])}
    f1 = M.MontbrioPazoRoxin(1, tau=1.0).vector_field(0.0, state, {"r": 0.5})
    f2 = M.MontbrioPazoRoxin(1, tau=2.0, delta=0.5).vector_field(0.0, state, {"r": 0.25})
    expected_r = (0.5 / math.pi + 2 * 2.0 * -1.0 + 0.25) / 2.0
    np.testing.assert_allclose(float(f2["r"][0]), expected_r, rtol=1e-6)
    np.testing.assert_allclose(float(f1["r"][0]), 1.0 / math.pi - 4.0 + 0.5, rtol=1e-6)


def test_wilson_cowan_delayed_reads_its_past():
    init = dict(init_rE=jnp.array([0.1, 0.4]), init_rI=0.05)
    # Forward Euler: the delayed values are held over a step (and frozen in the
    # exponential-Euler linearisation), so only with Euler do zero delays reproduce the
    # undelayed model exactly. The same max_delay lets both delayed runs share a compile.
    run = dict(dt=0.1, solver=dfx.Euler(), inputs=lambda t: {"rE": jnp.array([1.0, 2.0])})
    delayed = simulate(M.WilsonCowanDelayed(2, **init), 50.0, **run)
    zero = M.WilsonCowanDelayed(2, **init, delay_EE=0.0, delay_IE=0.0, delay_EI=0.0, delay_II=0.0, max_delay=2.0)
    instant = simulate(zero, 50.0, **run)
    assert float(jnp.max(jnp.abs(delayed["rE"] - instant["rE"]))) > 1e-2
    # brainmass naming: wEI is I->E in the delayed variant, wIE in WilsonCowan.
    plain = M.WilsonCowan(2, **init, wIE=13.0, wEI=4.0)
    np.testing.assert_allclose(np.asarray(instant["rE"]), np.asarray(simulate(plain, 50.0, **run)["rE"]), atol=1e-6)
    # The history simulate sizes from dt is the one wrap_solver(dt=...) gives.
    solver = M.WilsonCowanDelayed(2, **init).wrap_solver(dfx.Euler(), dt=0.1)
    assert solver.n_slots == 23
    sized = simulate(M.WilsonCowanDelayed(2, **init), 50.0, **{**run, "solver": solver})
    np.testing.assert_allclose(np.asarray(sized["rE"]), np.asarray(delayed["rE"]), atol=1e-7)


def test_wilson_cowan_delayed_continues_with_its_recorded_past():
    """simulate(..., y0=traj) gives WilsonCowanDelayed its recorded past, as a delayed
    Network: the two runs equal one. It restarted from a constant past (its own delays
    were not carried over), 0.1 off the one run (rates of 0.1-0.5)."""
    model = M.WilsonCowanDelayed(2, init_rE=jnp.array([0.1, 0.4]), init_rI=0.05, delay_EE=4.0, delay_IE=4.0)
    run = dict(dt=0.1, inputs={"rE": jnp.array([1.0, 2.0])})
    whole = simulate(model, 12.0, **run)
    first = simulate(model, 6.0, **run)
    second = simulate(model, 6.0, y0=first, **run)
    for name in ("rE", "rI"):
        np.testing.assert_allclose(np.asarray(second[name]), np.asarray(whole[name][60:]), atol=1e-6)
    restarted = simulate(model, 6.0, y0=first.final_state, **run)
    assert np.abs(np.asarray(restarted["rE"]) - np.asarray(whole["rE"][60:])).max() > 1e-3
    with pytest.raises(ValueError, match=r"WilsonCowanDelayed from a Trajectory, record its delayed variable\(s\) \['rI'\]"):
        simulate(model, 6.0, y0=simulate(model, 6.0, monitors=["rE"], **run), **run)


def test_wilson_cowan_delayed_ceil_rounds_up_like_brainmass():
    """'ceil' reads ceil(d / dt) whole steps back: 0.30005 ms at dt 0.1 is 4 steps (a fixed
    1e-2-step tolerance read it as 3), while 0.3 ms, 3.0000001 steps in float32, stays 3."""
    init = dict(init_rE=jnp.array([0.1, 0.4]), init_rI=0.05)
    run = dict(dt=0.1, solver=dfx.Euler(), inputs=lambda t: {"rE": jnp.array([1.0, 2.0])})

    def rates(delay):
        delays = dict(delay_EE=delay, delay_IE=delay, delay_EI=delay, delay_II=delay, max_delay=0.5)
        return np.asarray(simulate(M.WilsonCowanDelayed(2, **init, **delays, interpolation="ceil"), 20.0, **run)["rE"])

    above, four, three = rates(0.30005), rates(0.4), rates(0.3)
    np.testing.assert_array_equal(above, four)
    assert np.abs(three - four).max() > 1e-4


def test_kuramoto_options():
    theta = {"theta": jnp.array([0.0, 1.0, 2.5])}
    conn = np.array([[0.3, 1.0, 0.5], [1.0, 0.2, 2.0], [0.5, 2.0, 0.1]])
    full = M.Kuramoto(3, K=0.8, alpha=0.3, conn=conn, normalize_by_n=False, exclude_self=False)
    flat = M.Kuramoto(3, K=0.8, alpha=0.3, conn=conn.ravel(), normalize_by_n=False, exclude_self=False)
    t = np.asarray(theta["theta"])
    expected = 0.8 * np.sum(conn * np.sin(t[None, :] - t[:, None] - 0.3), axis=1)
    np.testing.assert_allclose(np.asarray(full.vector_field(0.0, theta, {})["theta"]), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(flat.coupling(theta["theta"])), expected, rtol=1e-5)
    plain = M.Kuramoto(3, K=1.0)
    expected = np.sum(np.sin(t[None, :] - t[:, None]), axis=1) / 3
    np.testing.assert_allclose(np.asarray(plain.coupling(theta["theta"])), expected, rtol=1e-5, atol=1e-7)
    assert float(plain.order_parameter({"theta": jnp.zeros(3)})) == pytest.approx(1.0)


@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("with_conn", [True, False])
def test_kuramoto_coupling_from_source_sums(exclude_self, with_conn):
    """The coupling is the pairwise sum, computed from sums over the sources: no (N, N)
    sine in the step (it took 90 % of a 68-oscillator step, slower than brainmass), the
    per-source alpha and a batch of phases included; the exponential-Euler rate is 0."""
    n = 6
    rng = np.random.default_rng(3)
    theta = jnp.asarray(rng.uniform(0.0, 40.0, (2, n)), jnp.float32)  # a batch of two
    alpha = rng.uniform(-0.5, 0.5, n)
    conn = rng.uniform(0.0, 1.0, (n, n)) if with_conn else None
    model = M.Kuramoto(n, K=0.7, alpha=alpha, conn=conn, exclude_self=exclude_self)
    t = np.asarray(theta, np.float64)
    pair = np.sin(t[:, None, :] - t[:, :, None] - alpha)  # [batch, i, j]
    w = np.ones((n, n)) if conn is None else conn
    if exclude_self:
        w = w * (1.0 - np.eye(n))
    expected = 0.7 * np.sum(w * pair, axis=-1) / n
    np.testing.assert_allclose(np.asarray(model.coupling(theta)), expected, atol=2e-5)

    state = {"theta": theta[0]}
    jaxpr = jax.make_jaxpr(lambda s: model.vector_field(0.0, s, {}))(state)
    sines = [e for e in jaxpr.jaxpr.eqns if e.primitive.name in ("sin", "cos")]
    assert sines and all(e.outvars[0].aval.shape == (n,) for e in sines), [e.outvars[0].aval.shape for e in sines]
    f, rate = model.vector_field_and_diagonal(0.0, state, {})
    np.testing.assert_array_equal(np.asarray(rate["theta"]), 0.0)
    np.testing.assert_array_equal(np.asarray(f["theta"]), np.asarray(model.vector_field(0.0, state, {})["theta"]))


def test_horn_symplectic_step_is_brainmass_scheme():
    model = M.HORN(2, alpha=0.5, omega=0.3, gamma=0.05, v=0.2, init_x=jnp.array([0.5, -0.3]))
    traj = simulate(model, 0.2, dt=0.1, solver=M.SymplecticEuler(), inputs=lambda t: {"input": jnp.array([1.0, 0.0])})
    x, y = np.array([0.5, -0.3]), np.zeros(2)
    for _ in range(2):
        y = y + 0.1 * (0.5 * np.tanh(np.array([1.0, 0.0]) + 0.2 * x) - 0.09 * x - 0.1 * y)
        x = x + 0.1 * y
    np.testing.assert_allclose(np.asarray(traj["x"][-1]), x, rtol=1e-6)
    with pytest.raises(ValueError, match="symplectic_pairs"):
        simulate(M.Hopf(1, init_x=0.1), 1.0, dt=0.1, solver=M.SymplecticEuler())


def test_units_are_accepted_and_checked():
    model = M.ThresholdLinear(1, tau_E=unxt.Quantity(0.02, "s"))
    assert float(model.tau_E) == pytest.approx(20.0)
    assert float(M.WongWang(1, a=unxt.Quantity(0.27, "Hz/pA")).a) == pytest.approx(270.0)
    with pytest.raises(UnitError, match="tau_S"):
        M.WongWang(1, tau_S=unxt.Quantity(1.0, "Hz"))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: M.WilsonCowanDivisive(2, tau_E=-1.0), "'tau_E' must be positive"),
        (lambda: M.WongWangExcInh(1, lamda=1.5), "'lamda' must be in"),
        (lambda: M.ReducedWongWang(1, tau_s=0.0), "'tau_s' must be positive"),
        (lambda: M.WilsonCowan(1, shift_sigmoid="no"), "'shift_sigmoid' must be True .* or False"),
        (lambda: M.LarterBreakspear(1, d_V=0.0), "'d_V' must be positive"),
        (lambda: M.Epileptor(2, x0=jnp.zeros(3)), "'x0' has shape"),
        (lambda: M.Kuramoto(3, conn=np.ones((2, 2))), "'conn' must have shape"),
        (lambda: M.Kuramoto(2, conn=np.array([[0.0, np.nan], [1.0, 0.0]])), "'conn' must be finite"),
        (lambda: M.WilsonCowanDelayed(1, delay_EE=5.0, max_delay=2.0), "'delay_EE'.*max_delay"),
        (lambda: M.WilsonCowanDelayed(1, interpolation="cubic"), "interpolation"),
        (lambda: M.HORNSeqLayer(3, 4, key=None), "key"),
        (lambda: M.JansenRit2Layer(3, 4, key=jax.random.key(0), delay=None), "delay"),
        (lambda: M.WilsonCowanSeqLayer(3, 4, key=jax.random.key(0), wc_cls=M.Hopf), "wc_cls"),
        (lambda: M.HORNSeqLayer(3, 0, key=jax.random.key(0)), "n_hidden"),
        (lambda: M.JansenRitTR(2, np.ones((3, 3)), 0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0), "sc must have shape"),
        (lambda: M.JansenRitTR(2, np.ones((2, 2)), 0.5, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0), "delay must hold whole"),
        (lambda: M.JansenRitTR(2, np.ones((2, 2)), 0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, tr=0.15), "tr"),
        # A step of 0 never advanced and a negative one ran time backwards, silently (and
        # JansenRitTR divided by zero).
        (lambda: M.HORNSeqLayer(3, 4, key=jax.random.key(0), dt=0.0), r"dt must be positive and finite, got 0.0 ms"),
        (lambda: M.WilsonCowanSeqLayer(3, 4, key=jax.random.key(0), dt=-0.1), r"dt must be positive and finite, got -0.1"),
        (lambda: M.JansenRitTR(2, np.ones((2, 2)), 0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, dt=0.0), r"dt must be positive"),
        # A float n_hidden read "'float' object is not iterable".
        (lambda: M.HORNSeqNetwork(3, 2.5, 2, key=jax.random.key(0)), r"n_hidden must be an int or a non-empty sequence of ints, got 2.5"),
        # A y0 without every state was a bare KeyError, one of the wrong size a broadcasting error.
        (lambda: M.HORNSeqLayer(3, 4, key=jax.random.key(0))(jnp.zeros((5, 3)), y0={"x": jnp.zeros(4)}),
         r"y0 must give exactly the states \['x', 'y'\] of HORN; missing \['y'\]"),
        (lambda: M.HORNSeqLayer(3, 4, key=jax.random.key(0))(jnp.zeros((5, 3)), y0={"x": jnp.zeros(5), "y": jnp.zeros(5)}),
         r"y0\['x'\] has shape \(5,\); HORN takes \(4,\)"),
    ],
)
def test_bad_input_names_the_argument(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


# -- sequence blocks ------------------------------------------------------------------------

with np.load(REFERENCE_DIR / "sequence" / "brainmass_sequence.npz") as _data:
    SEQ = {name: _data[name] for name in _data.files}


def _with_brainmass_weights(layer, tag):
    w = {k.split("/", 1)[1]: jnp.asarray(v) for k, v in SEQ.items() if k.startswith(tag + "/")}
    layer = eqx.tree_at(lambda l: (l.i2h.weight, l.i2h.bias), layer, (w["i2h.weight:weight"], w["i2h.weight:bias"]))
    if "conn.w_b" in w:
        return eqx.tree_at(lambda l: (l.h2h.weight, l.w_f, l.w_l), layer, (w["conn.w_b"], w["conn.w_f"], w["conn.w_l"]))
    if "h2h.weights.val" in w:
        return eqx.tree_at(lambda l: l.h2h.weight, layer, w["h2h.weights.val"])
    return eqx.tree_at(lambda l: (l.h2h.linear.weight, l.h2h.linear.bias), layer,
                       (w["h2h.linear.weight:weight"], w["h2h.linear.weight:bias"]))


HORN_KW = dict(alpha=0.5, omega=0.3, gamma=0.05, v=0.2)
LAYERS = {
    "horn": lambda key, d: M.HORNSeqLayer(3, 4, key=key, **HORN_KW),
    "horn_d": lambda key, d: M.HORNSeqLayer(3, 4, key=key, delay=d, interpolation="ceil", **HORN_KW),
    "wc": lambda key, d: M.WilsonCowanSeqLayer(3, 4, key=key),
    "wc_d": lambda key, d: M.WilsonCowanSeqLayer(3, 4, key=key, delay=d, interpolation="ceil"),
    "jr": lambda key, d: M.JansenRitLayer(3, 4, key=key),
    "jr2": lambda key, d: M.JansenRit2Layer(3, 4, key=key, delay=d, interpolation="ceil"),
}


@pytest.mark.parametrize("tag", sorted(LAYERS))
def test_sequence_layer_matches_brainmass(tag):
    layer = _with_brainmass_weights(LAYERS[tag](jax.random.key(0), SEQ["delay"]), tag)
    scale = 50.0 if tag.startswith("jr") else 1.0  # the JR layers read the input in Hz
    out = np.asarray(layer(jnp.asarray(SEQ["X"] * scale)))
    ref = SEQ[f"{tag}/out"]
    assert np.max(np.abs(out - ref)) <= 1e-4 * np.max(np.abs(ref))


def test_jansen_rit_tr_matches_brainmass():
    args = (3, SEQ["tr_sc"], SEQ["tr_delay"], 2.0, SEQ["tr_wl"], SEQ["tr_wf"], SEQ["tr_wb"], 0.5, 1.5, 0.7)
    ref = SEQ["tr/out"]
    u = jnp.asarray(SEQ["tr_U"])
    eeg, state = M.JansenRitTR(*args, tr=2.0, symmetrize_lateral=False)(u)
    assert eeg.shape == ref.shape and int(state[2]) == ref.shape[0]
    assert np.max(np.abs(np.asarray(eeg) - ref)) <= 1e-4 * np.max(np.abs(ref))
    # The deliberate difference: the lateral pathway really is symmetric by default.
    model = M.JansenRitTR(*args, tr=2.0)
    w_l, diag = model._normalise(model.w_ll, symmetric=True)
    np.testing.assert_allclose(np.asarray(w_l), np.asarray(w_l).T)
    np.testing.assert_allclose(np.asarray(diag), -np.asarray(w_l).sum(1), rtol=1e-6)
    assert np.max(np.abs(np.asarray(model(u)[0]) - ref)) > 1e-5 * np.max(np.abs(ref))


def test_jansen_rit_tr_takes_an_integer_state_as_its_float():
    # A hand-made integer state (zeros, counts) failed inside jax.jvp ("primal and tangent
    # arguments to jax.jvp do not match"), naming no argument; simulate's y0 casts it.
    model = M.JansenRitTR(2, np.ones((2, 2)), np.ones((2, 2), int), 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    y, buffer, count = model.init_state()
    u = jnp.ones((3, 2))
    as_int = ({k: np.zeros(2, int) for k in y}, np.zeros(buffer.shape, int), 0)
    as_float = ({k: jnp.zeros(2) for k in y}, jnp.zeros(buffer.shape), jnp.zeros((), jnp.int32))
    eeg, state = model(u, as_int)
    assert eeg.dtype == jnp.result_type(float)
    np.testing.assert_array_equal(eeg, model(u, as_float)[0])
    assert model.step_tr(as_int, u[0])[0][0]["M"].dtype == jnp.result_type(float)
    with pytest.raises(TypeError, match="init_state"):
        model(u, y)


def test_sequence_layers_batch_and_differentiate():
    layer = M.HORNSeqLayer(2, 3, key=jax.random.key(1), delay=0.35)
    xs = jax.random.normal(jax.random.key(2), (4, 25, 2))
    batched = jax.vmap(layer)(xs)
    np.testing.assert_allclose(np.asarray(batched[2]), np.asarray(layer(xs[2])), rtol=1e-5, atol=1e-7)
    states, out = layer(xs[0], record_state=True)
    assert out.shape == (25, 3) and set(states) == {"x", "y"}
    # A checked y0 (one per member under vmap) still runs.
    y0 = {"x": jnp.full(3, 0.1), "y": jnp.zeros(3)}
    per_member = jax.vmap(lambda x, a: layer(x, y0={"x": a, "y": jnp.zeros(3)}))(xs, jnp.full((4, 3), 0.1))
    np.testing.assert_allclose(np.asarray(per_member[1]), np.asarray(layer(xs[1], y0=y0)), rtol=1e-5, atol=1e-7)

    with enable_x64(True):
        layer64 = M.HORNSeqLayer(2, 3, key=jax.random.key(1), delay=0.35, dt=1.0)
        x64 = jnp.asarray(np.asarray(xs[0]), jnp.float64)

        def loss(p):
            m = eqx.tree_at(lambda l: (l.cell.alpha, l.h2h.delay), layer64, (p[0], p[1]))
            return jnp.sum(m(x64) ** 2)

        p0 = jnp.array([0.04, 2.3])
        g = jax.grad(loss)(p0)
        h = 1e-6
        fd = jnp.array([(loss(p0 + h * e) - loss(p0 - h * e)) / (2 * h) for e in jnp.eye(2)])
        np.testing.assert_allclose(np.asarray(g), np.asarray(fd), rtol=1e-5)

    net = M.HORNSeqNetwork(2, [3, 5], 4, key=jax.random.key(3))
    assert net(xs[0]).shape == (4,) and [h.shape for h in net.hidden_activation(xs[0])] == [(25, 3), (25, 5)]
    wc = M.WilsonCowanSeqNetwork(2, 3, 2, key=jax.random.key(4), wc_cls=M.WilsonCowan, r=0.5)
    assert jax.vmap(wc)(xs).shape == (4, 2)
    jr = M.JansenRitNetwork(2, 3, 2, key=jax.random.key(5), delay=0.2)
    assert jr(xs[0] * 50).shape == (2,)
    with pytest.raises(ValueError, match="inputs must have shape"):
        layer(xs)


def test_wilson_cowan_delayed_keeps_its_history_inside_a_network():
    from brainmass_eqx.network import Network

    node = M.WilsonCowanDelayed(3, init_rE=jnp.array([0.1, 0.3, 0.5]), init_rI=0.05)
    alone = simulate(node, 20.0, dt=0.1)
    in_network = simulate(Network(node, np.zeros((3, 3))), 20.0, dt=0.1)
    np.testing.assert_allclose(np.asarray(in_network["rE"]), np.asarray(alone["rE"]), atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exprel_matches_expm1_over_z_to_a_few_ulp_with_finite_gradients(dtype):
    from brainmass_eqx.models._math import exprel

    with enable_x64(dtype == "float64"):
        z = np.concatenate([np.linspace(-300, 85, 20001), np.linspace(-1, 1, 4001), [0.0, 1e-30, -1e-30]]).astype(dtype)
        got = np.asarray(jax.jit(exprel)(z), np.float64)
        wide = z.astype(np.float64)
        safe = np.where(wide == 0, 1.0, wide)
        expected = np.where(wide == 0, 1.0, np.expm1(wide) / safe)
        eps = np.finfo(dtype).eps
        assert np.max(np.abs(got - expected) / np.abs(expected)) < 4 * eps
        grads = np.asarray(jax.jit(jax.vmap(jax.grad(exprel)))(z))
        assert np.isfinite(grads).all()
        # d/dz exprel = (z e^z - e^z + 1) / z^2, checked away from 0 (cancellation there)
        away = np.abs(wide) > 0.5
        expected_grad = (wide * np.exp(wide) - np.expm1(wide)) / safe**2
        assert np.allclose(grads[away], expected_grad[away], rtol=50 * eps, atol=0)
        assert np.isinf(float(exprel(jnp.asarray(1000.0, dtype))))
        assert np.isnan(float(exprel(jnp.asarray(np.nan, dtype))))


def test_wilson_cowan_delayed_saveat_with_a_runge_kutta_solver():
    # SelfDelaySolver declares linear dense output: an RK solver's stages must not leak into
    # it (saveat with Heun or Tsit5 raised "LocalLinearInterpolation ... unexpected keyword 'k'").
    model = M.WilsonCowanDelayed(1)
    y0 = {"rE": jnp.array([0.2]), "rI": jnp.array([0.1])}
    on_grid = simulate(model, 10.0, dt=0.01, solver=dfx.Heun(), y0=y0, inputs={"rE": 1.25}, sample_every=100)
    saved = simulate(model, 10.0, dt=0.01, solver=dfx.Heun(), y0=y0, inputs={"rE": 1.25}, saveat=on_grid.ts)
    assert jnp.allclose(saved["rE"], on_grid["rE"], atol=1e-5)
