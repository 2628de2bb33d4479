"""Units, Param and the model contract's construction-time validation."""

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt as u

import brainmass_eqx as bx
from brainmass_eqx._units import per_ms, to_canonical


def test_quantities_are_converted_once_to_canonical_units():
    wc = bx.WilsonCowan(2, tau_E=u.Quantity(0.002, "s"), tau_I=u.Quantity(1500.0, "us"))
    assert float(wc.tau_E) == pytest.approx(2.0)
    assert float(wc.tau_I) == pytest.approx(1.5)
    jr = bx.JansenRit(1, be=u.Quantity(0.1, "kHz"), Ae=u.Quantity(0.00325, "V"))
    assert float(jr.be) == pytest.approx(100.0) and float(jr.Ae) == pytest.approx(3.25)
    assert isinstance(bx.Hopf(1, a=0.3).a, jax.Array)  # plain numbers become arrays (no recompiles)


def test_parameters_with_physical_units_take_quantities_in_them():
    # These were declared dimensionless though their docs gave units, so a Quantity in
    # the documented unit (w in rad/ms, r in 1/mV, I_o in nA) was refused.
    assert float(bx.Hopf(1, w=u.Quantity(200.0, "rad/s")).w) == pytest.approx(0.2)
    assert float(bx.StuartLandau(1, w=u.Quantity(0.2, "rad/ms")).w) == pytest.approx(0.2)
    assert float(bx.JansenRit(1, r=u.Quantity(560.0, "1/V")).r) == pytest.approx(0.56)
    assert float(bx.Kuramoto(1, alpha=u.Quantity(90.0, "deg")).alpha) == pytest.approx(np.pi / 2)
    assert float(bx.models.Linear(1, gamma=u.Quantity(-10.0, "kHz")).gamma) == pytest.approx(-10.0)
    ww = bx.WongWangExcInh(
        1, a_e=u.Quantity(310.0, "1/nC"), b_e=u.Quantity(0.125, "kHz"), d_e=u.Quantity(160.0, "ms"),
        I_o=u.Quantity(382.0, "pA"), J_N=u.Quantity(0.15, "nA"),
    )
    plain = bx.WongWangExcInh(1)  # TVB's plain numbers keep their meaning (d_e in s)
    for name in ("a_e", "b_e", "d_e", "I_o", "J_N"):
        assert float(getattr(ww, name)) == pytest.approx(float(getattr(plain, name)), rel=1e-6), name
    # A frequency in Hz is not an angular frequency: the 2 pi is named, not guessed.
    with pytest.raises(bx.UnitError, match=r"'w' has unit 'Hz' \(frequency\), but it must be an angular frequency quantity \(canonical unit 'rad/ms'\).*2 \* math.pi \* f"):
        bx.Hopf(1, w=u.Quantity(40.0, "Hz"))
    with pytest.raises(bx.UnitError, match=r"'r' has unit '1 / ms' \(frequency\), but it must be a 1/mV-dimensioned quantity"):
        bx.JansenRit(1, r=u.Quantity(0.56, "1/ms"))


def test_a_misspelt_parameter_lists_the_valid_ones():
    with pytest.raises(TypeError, match=r"WilsonCowan\(\) got an unexpected keyword argument 'tau_e' \(did you mean 'tau_E'\?\)\. WilsonCowan takes: n_regions, tau_E, a_E"):
        bx.WilsonCowan(1, tau_e=10.0)
    with pytest.raises(TypeError, match=r"Hopf\(\) got an unexpected keyword argument 'alpha'\. Hopf takes: n_regions, a, w, beta, init_x, init_y\.$"):
        bx.Hopf(1, alpha=1.0)
    assert bx.Hopf(1, a=0.3).a == 0.3  # and valid keywords pass


def test_wrong_dimension_names_argument_and_expected_dimension():
    with pytest.raises(bx.UnitError, match=r"'tau_E' has unit 'mV' .* must be a time quantity \(canonical unit 'ms'\)"):
        bx.WilsonCowan(1, tau_E=u.Quantity(1.0, "mV"))
    with pytest.raises(bx.UnitError, match="'be' .* must be a frequency quantity"):
        bx.JansenRit(1, be=u.Quantity(1.0, "ms"))
    with pytest.raises(bx.UnitError, match="'x' .* must be a dimensionless quantity"):
        to_canonical(u.Quantity(1.0, "ms"), "x", "")


def test_a_quantity_parameter_is_stored_as_the_plain_number_would_be():
    """Quantity(20, 'ms') holds an int: the field was stored as a weakly typed int32, so
    eqx.filter_grad skipped it (no gradient, no error) and a jitted run compiled again for
    it, and again for a float Quantity (weakly typed), though the values were the same."""
    plain = bx.FitzHughNagumo(2, tau=20.0, init_V=0.5, init_w=0.1)
    runs = []

    @eqx.filter_jit
    def mean_v(model):
        runs.append(None)
        return bx.simulate(model, 2.0, dt=0.1)["V"].mean()

    grad = eqx.filter_grad(lambda m: bx.simulate(m, 2.0, dt=0.1)["V"].mean())
    expected = float(grad(plain).tau)
    assert expected != 0.0
    mean_v(plain)
    for tau in (u.Quantity(20, "ms"), u.Quantity(20.0, "ms"), u.Quantity(0.02, "s"), bx.Param(u.Quantity(20, "ms"))):
        model = bx.FitzHughNagumo(2, tau=tau, init_V=0.5, init_w=0.1)
        value = model.tau.value if isinstance(model.tau, bx.Param) else model.tau
        assert value.dtype == jnp.result_type(float) and not value.weak_type, tau
        if not isinstance(tau, bx.Param):
            assert grad(model).tau is not None and float(grad(model).tau) == pytest.approx(expected, rel=1e-5), tau
            mean_v(model)
    assert len(runs) == 1  # one compiled run for the plain number and every Quantity


def test_a_model_built_inside_jit_keeps_its_constants_concrete():
    """jax stages even ``jnp.asarray(2.0)`` under ``jax.jit``: a model built inside a jitted
    function held its plain-number parameters as tracers, so WilsonCowanDelayed could not
    size its history (it blamed 'delay_EE', which nobody traced) and the domain,
    finiteness and Param-bound checks were skipped without a word."""

    @jax.jit
    def delayed(wEE):
        return bx.simulate(bx.WilsonCowanDelayed(2, wEE=wEE), 3.0, dt=0.1, y0={"rE": 0.2, "rI": 0.1})["rE"]

    eager = bx.simulate(bx.WilsonCowanDelayed(2, wEE=12.0), 3.0, dt=0.1, y0={"rE": 0.2, "rI": 0.1})["rE"]
    np.testing.assert_allclose(delayed(12.0), eager, rtol=1e-6)
    # The checks eager construction makes, made inside jit too (the traced `a` is not checked).
    with pytest.raises(ValueError, match="Hopf: 'beta' must be nonnegative"):
        jax.jit(lambda a: bx.Hopf(2, a=a, beta=-1.0).a)(0.25)
    with pytest.raises(ValueError, match="Hopf: 'w' must be finite"):
        jax.jit(lambda a: bx.Hopf(2, a=a, w=float("nan")).a)(0.25)
    # A Quantity built outside (one built inside jit holds a tracer: nothing to check).
    tau = u.Quantity(-0.01, "s")
    with pytest.raises(ValueError, match="FitzHughNagumo: 'tau' must be positive"):
        jax.jit(lambda a: bx.FitzHughNagumo(2, alpha=a, tau=tau).alpha)(3.0)
    with pytest.raises(ValueError, match="lies outside the open interval"):
        jax.jit(lambda x: bx.Param(2.0, bounds=(0.0, 1.0)).value + x)(1.0)
    # A traced value is still traced (and differentiable).
    grad = jax.grad(lambda a: bx.simulate(bx.Hopf(1, a=a, init_x=0.5), 2.0, dt=0.1)["x"][-1, 0])
    assert float(jax.jit(grad)(0.25)) != 0.0


def test_shapes_must_broadcast_to_regions():
    bx.Hopf(3, a=jnp.array([0.1, 0.2, 0.3]))
    bx.Hopf(3, a=jnp.array([0.1]))
    with pytest.raises(ValueError, match=r"Hopf: 'a' has shape \(2,\), which does not broadcast to the 3 regions"):
        bx.Hopf(3, a=jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"n_regions must be an int >= 1 \(Hopf\(n_regions, ...\)\), got 0"):
        bx.Hopf(0)


def test_non_finite_and_out_of_domain_parameters():
    with pytest.raises(ValueError, match="Hopf: 'w' must be finite"):
        bx.Hopf(2, w=jnp.nan)
    with pytest.raises(ValueError, match="Hopf: 'init_x' must be finite"):
        bx.Hopf(2, init_x=jnp.inf)
    with pytest.raises(ValueError, match="WilsonCowan: 'tau_E' must be positive"):
        bx.WilsonCowan(1, tau_E=-1.0)
    with pytest.raises(TypeError, match="'a' must be a number, an array, a unxt Quantity or a Param"):
        bx.Hopf(1, a="big")


def test_models_are_immutable_pytrees():
    m = bx.Hopf(2, a=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.a = 1.0
    m2 = eqx.tree_at(lambda m: m.a, m, jnp.asarray(0.5))
    assert float(m2.a) == 0.5 and float(m.a) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "kwargs,lo,hi",
    [({}, -np.inf, np.inf), ({"bounds": (0.0, 2.0)}, 0.0, 2.0), ({"bounds": (1.0, None)}, 1.0, np.inf),
     ({"transform": "exp"}, 0.0, np.inf), ({"transform": "softplus"}, 0.0, np.inf)],
)
def test_param_transforms_round_trip(kwargs, lo, hi):
    p = bx.Param(1.5, **kwargs)
    np.testing.assert_allclose(p.value, 1.5, rtol=1e-5)
    assert p.bounds == (lo, hi)
    # Any raw value maps inside the bounds.
    for raw in [-30.0, 0.0, 30.0]:
        v = float(eqx.tree_at(lambda q: q.raw, p, jnp.asarray(raw)).value)
        assert lo <= v <= hi


def test_param_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"outside the open interval \(0.0, 1.0\) of its Sigmoid transform; widen"):
        bx.Param(2.0, bounds=(0.0, 1.0))
    # A start on a bound (k = 0 in (0, 1)) is the common case: said why it cannot be.
    with pytest.raises(ValueError, match=r"\(it is on a bound, which the Sigmoid transform reaches only at infinity"):
        bx.Param(0.0, bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match="transform='foo'.* unknown"):
        bx.Param(1.0, transform="foo")
    with pytest.raises(ValueError, match="needs bounds"):
        bx.Param(1.0, transform="sigmoid")
    with pytest.raises(ValueError, match=r"the lower bound has shape \(2,\); bounds are one interval for every element"):
        bx.Param(jnp.array([0.2, 0.3]), bounds=(jnp.array([0.0, 0.25]), jnp.array([1.0, 0.5])))
    # Bounds that reach out of the parameter's domain would let a fit take it there.
    with pytest.raises(ValueError, match=r"WilsonCowan: 'tau_E' must be positive, but its Param bounds \(-1, 20\) let a "
                       r"fit take it to -1; give bounds within \[0, inf\]"):
        bx.WilsonCowan(1, tau_E=bx.Param(10.0, bounds=(-1.0, 20.0)))
    with pytest.raises(ValueError, match=r"'lamda' must be in \[0.0, 1.0\], but its Param bounds \(0, 2\)"):
        bx.WongWangExcInh(1, lamda=bx.Param(0.5, bounds=(0.0, 2.0)))
    assert float(bx.WilsonCowan(1, tau_E=bx.Param(10.0, bounds=(0.0, 20.0))).tau_E.value) == pytest.approx(10.0)
    with pytest.raises(ValueError, match=r"Param\(bounds=\(1, 0\)\): the lower bound must be below the upper one"):
        bx.Param(0.5, bounds=(1.0, 0.0))  # was "Sigmoid transform needs finite lower < upper"
    with pytest.raises(ValueError, match="must be finite"):
        bx.Param(jnp.nan)
    # Bounds with units beside a plain-number value: the value needs its unit too.
    with pytest.raises(bx.UnitError, match=r"Param\(bounds=...\) holds Quantities with units but the value 0.1 is a "
                       r"plain number: give the value as a Quantity too"):
        bx.Param(0.1, bounds=(u.Quantity(0, "ms"), 1.0))
    # A misspelt unit is refused where it is given (it failed later, in the model, with
    # astropy's parser message naming no argument).
    with pytest.raises(bx.UnitError, match=r"Param\(unit='sec'\) is not a unit unxt can read"):
        bx.Param(0.01, unit="sec")
    assert float(bx.WilsonCowan(1, tau_E=bx.Param(0.01, unit="s")).tau_E.value) == pytest.approx(10.0)


def test_param_repr_shows_unit_and_bounds():
    # What a reader checks before a fit: the value with its unit, and the search box.
    box = bx.Param(u.Quantity(10, "ms"), bounds=(u.Quantity(5, "ms"), u.Quantity(0.02, "s")))
    assert repr(box) == "Param(10 ms, fit=True, transform=Sigmoid(lower=5, upper=20))"
    assert repr(bx.Param(0.3, fit=False)) == "Param(0.3, fit=False, transform=Identity)"
    # A plain number inside a model is in the field's canonical unit, and says so.
    jr = bx.JansenRit(1, be=bx.Param(110.0, bounds=(60.0, 140.0)))
    assert repr(jr.be) == "Param(110 Hz, fit=True, transform=Sigmoid(lower=60, upper=140))"


def test_filter_specs_and_partition_halves_print():
    # trainable_spec's Params hold True/False and eqx.partition's other half None: printing
    # either ran the transform on them ("logistic does not accept dtype bool").
    net = bx.Network(bx.Hopf(2, a=bx.Param(0.2, bounds=(0.0, 1.0))), jnp.ones((2, 2)), k=bx.Param(0.3, fit=False))
    spec = bx.trainable_spec(net)
    text = repr(spec)
    assert "a=Param(raw=True, fit=True, transform=Sigmoid(lower=0, upper=1))" in text
    assert "k=Param(raw=False, fit=False, transform=Identity)" in text
    trainable, _ = eqx.partition(net, spec)
    assert "k=Param(raw=None, fit=False" in repr(trainable)


def test_printed_models_show_parameter_values():
    # equinox's default repr shows `a=f32[]`, which tells a reader nothing about the model.
    hopf = bx.Hopf(2, a=bx.Param(0.2, bounds=(-1.0, 1.0)), w=jnp.array([0.1, 0.3]))
    assert repr(hopf) == ("Hopf(\n  n_regions=2,\n  a=Param(0.2 1/ms, fit=True, transform=Sigmoid(lower=-1, upper=1)),"
                          "\n  w=[0.1, 0.3],\n  beta=1,\n  init_x=0,\n  init_y=0\n)")
    net = bx.Network(bx.Hopf(8), jnp.ones((8, 8)) - jnp.eye(8), k=0.25, delays=2.0)
    text = repr(net)
    assert "conn=f32[8,8]" in text and "k=0.25" in text and "node=Hopf(n_regions=8, a=0.25, w=0.2" in text
    assert repr(bx.OUProcess(sigma=0.01, tau=u.Quantity(5, "ms"))) == "OUProcess(sigma=0.01, tau=5 ms)"
    assert repr(bx.coupling.Sigmoidal()).startswith("Sigmoidal(")
    # Under a trace the values are unknown: shapes only, and no error.
    seen = []
    jax.jit(lambda a: seen.append(repr(bx.Hopf(1, a=a))) or a)(0.3)
    assert seen[0].startswith("Hopf(a=f32[]")


def test_param_with_units_inside_models():
    wc = bx.WilsonCowan(1, tau_E=bx.Param(u.Quantity(0.002, "s"), bounds=(u.Quantity(0.001, "s"), u.Quantity(0.01, "s"))))
    assert isinstance(wc.tau_E, bx.Param)
    np.testing.assert_allclose(wc.tau_E.value, 2.0, rtol=1e-5)
    assert wc.tau_E.bounds == pytest.approx((1.0, 10.0))
    with pytest.raises(bx.UnitError, match="'tau_E'"):
        bx.WilsonCowan(1, tau_E=bx.Param(u.Quantity(2.0, "mV")))


def test_partition_selects_only_fit_params():
    m = bx.Hopf(2, a=bx.Param(0.2), w=bx.Param(0.3, fit=False))
    trainable, static = bx.partition_trainable(m)
    leaves = jax.tree_util.tree_leaves(trainable)
    assert len(leaves) == 1
    back = eqx.combine(trainable, static)
    assert float(bx.unwrap(back).a) == pytest.approx(0.2)
    assert float(bx.unwrap(back).w) == pytest.approx(0.3)


def test_init_state_and_random_defaults():
    s = bx.Hopf(3, init_x=jnp.array([1.0, 2.0, 3.0])).init_state()
    assert s["x"].shape == (3,) and s["y"].shape == (3,)
    r1 = bx.StuartLandau(4).init_state(jax.random.key(1))
    r2 = bx.StuartLandau(4).init_state(jax.random.key(1))
    np.testing.assert_array_equal(r1["x"], r2["x"])
    assert np.all((r1["x"] >= 0) & (r1["x"] <= 0.05))


def test_parameter_specs_describe_models():
    specs = bx.JansenRit.parameter_specs()
    assert specs["be"]["unit"] == "Hz" and specs["be"]["default"] == 100.0
    assert "excitatory" in specs["Ae"]["doc"]


# -- unxt is imported only when a unit is handled -------------------------------------------

_LIGHT_SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, numpy as np
import brainmass_eqx as bx

HEAVY = ("unxt", "astropy", "matplotlib", "plum", "quax", "scipy", "optax", "jax.experimental.sparse")
after_import = sorted(m for m in HEAVY if m in sys.modules)

# Plain-number use of the unit-aware paths: model, noise on an input and on a derivative
# (unit strings composed), simulate, in-loop BOLD, metrics, objectives, a Param.
noisy = bx.with_noise(
    bx.JansenRit(2), {"E": bx.OUProcess(sigma=0.1, tau=5.0), "M": bx.WhiteNoise(sigma=0.01)}
)
traj = bx.simulate(noisy, 2.0, dt=0.1, key=jax.random.key(0), monitors=["M", "noise_E"])
bold = bx.simulate_bold(bx.Hopf(2), 20.0, dt=0.1, tr=10.0)
net = bx.Network(bx.Hopf(3), np.full((3, 3), 0.1), delays=np.full((3, 3), 1.0))
bx.simulate(net, 2.0, dt=0.1)
x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
bx.metrics.power_spectral_density(x, dt=1.0)
bx.objectives.timeseries_rmse()(x, x)
bx.WilsonCowan(1, tau_E=bx.Param(2.0, bounds=(1.0, 10.0)))
after_use = sorted(m for m in HEAVY if m in sys.modules)
print("RESULT " + json.dumps({
    "after_import": after_import,
    "after_use": after_use,
    "noisy_state_units": noisy.state_units,
    "noisy_observable_units": noisy.observable_units,
    "units": dict(traj.units),
}))
"""


@pytest.fixture(scope="module")
def light_import():
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _LIGHT_SCRIPT], capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    return json.loads(lines[0][len("RESULT ") :])


@pytest.mark.parametrize(
    "module", ["unxt", "astropy", "matplotlib", "plum", "quax", "scipy", "optax", "jax.experimental.sparse"]
)
def test_import_and_plain_use_leave_heavy_modules_out(light_import, module):
    assert module not in light_import["after_import"]
    assert module not in light_import["after_use"]


def test_unit_names_without_unxt_parse_as_units(light_import):
    # Composed without unxt (a state's derivative: per ms); they must still be unit strings
    # that unxt reads, in the dimension of their target.
    states, observables = light_import["noisy_state_units"], light_import["noisy_observable_units"]
    assert states["E_noise"] == observables["noise_E"] == "Hz"
    assert light_import["units"] == {"M": "mV", "noise_E": "Hz"}
    for unit, expected in [("", "1/ms"), ("mV", "mV/ms"), ("mV/ms", "mV/ms2"), ("nA/Hz", "nA/(Hz ms)")]:
        assert per_ms(unit) == expected
        assert u.unit(expected) == (u.unit(unit) if unit else u.unit("")) / u.unit("ms")


_QUANTITY_SCRIPT = r"""
import json, sys
import brainmass_eqx as bx
assert "unxt" not in sys.modules
import jax, numpy as np
import unxt as u  # the user imports unxt after brainmass_eqx

out = {}
wc = bx.WilsonCowan(1, tau_E=u.Quantity(0.002, "s"), tau_I=bx.Param(u.Quantity(1500.0, "us")))
out["tau_E"], out["tau_I"] = float(wc.tau_E), float(wc.tau_I.value)
try:
    bx.WilsonCowan(1, tau_E=u.Quantity(1.0, "mV"))
except bx.UnitError as err:
    out["model_error"] = str(err)
noisy = bx.with_noise(bx.Hopf(1), {"x": bx.WhiteNoise(sigma=u.Quantity(0.1, "s(-1/2)"))})
out["sigma"] = float(noisy.noise["x"].sigma)
try:
    bx.with_noise(bx.Hopf(1), {"x": bx.WhiteNoise(sigma=u.Quantity(0.1, "mV"))})
except bx.UnitError as err:
    out["noise_error"] = str(err)
traj = bx.simulate(bx.Hopf(1), u.Quantity(2.0, "ms"), dt=u.Quantity(100.0, "us"))
out["n_samples"] = int(traj.ts.shape[0])
out["quantity_unit"] = str(traj.quantity("x").unit)
try:
    bx.simulate(bx.Hopf(1), 2.0, dt=u.Quantity(0.1, "mV"))
except bx.UnitError as err:
    out["simulate_error"] = str(err)
x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
f1, _ = bx.metrics.power_spectral_density(x, dt=u.Quantity(1.0, "ms"))
f2, _ = bx.metrics.power_spectral_density(x, dt=1.0)
out["psd_same"] = bool(np.array_equal(np.asarray(f1), np.asarray(f2)))
rmse = bx.objectives.timeseries_rmse()
out["rmse_mixed_units"] = float(rmse(u.Quantity(x, "mV"), u.Quantity(x / 1000.0, "V")))
print("RESULT " + json.dumps(out))
"""


def test_quantities_work_when_unxt_is_imported_after_brainmass_eqx():
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _QUANTITY_SCRIPT], capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT ") :])
    assert out["tau_E"] == pytest.approx(2.0) and out["tau_I"] == pytest.approx(1.5)
    assert "'tau_E' has unit 'mV'" in out["model_error"] and "time quantity" in out["model_error"]
    # 0.1 / sqrt(s) = 0.1 / sqrt(1000 ms) per sqrt(ms) on a dimensionless target.
    assert out["sigma"] == pytest.approx(0.1 / np.sqrt(1000.0), rel=1e-5)
    assert "noise['x'] (WhiteNoise).sigma has unit 'mV'" in out["noise_error"]
    assert out["n_samples"] == 20 and out["quantity_unit"] == ""
    assert "'dt'" in out["simulate_error"]
    assert out["psd_same"]
    assert out["rmse_mixed_units"] == pytest.approx(0.0, abs=1e-6)


class _Decay(bx.models.AbstractModel):
    # A user's model: defined outside the package, so its vector_field's result is checked.
    state_names: ClassVar = ("v",)
    rate: object = bx.models.parameter(0.1, "rate")

    def vector_field(self, t, state, inputs):
        return {"v": -self.rate * state["v"]}


@pytest.mark.parametrize(
    "result, error, message",
    [
        (lambda state: (state["v"],), TypeError, r"_Bad.vector_field returned a tuple; it must return a dict \{state name: "
         r"time derivative\} with one entry per state, \['v'\]"),
        (lambda state: {"V": state["v"]}, ValueError, r"returned the keys \['V'\]; it must return one derivative per state "
         r"in state_names, \['v'\]: missing \['v'\], unknown \['V'\] \(did you mean 'v'\?\)"),
        (lambda state: {"v": jnp.zeros(5)}, ValueError, r"returned 'v' of shape \(5,\); the state 'v' has shape \(2,\)"),
        (lambda state: {"v": state["v"], "w": 0.0}, ValueError, r"missing \[\], unknown \['w'\]"),
    ],
)
def test_a_user_models_vector_field_must_return_one_derivative_per_state(result, error, message):
    class _Bad(_Decay):
        def vector_field(self, t, state, inputs):
            return result(state)

    with pytest.raises(error, match=message):
        bx.simulate(_Bad(2), 1.0, dt=0.1)
    traj = bx.simulate(_Decay(2), 1.0, dt=0.1, y0={"v": jnp.ones(2)})
    np.testing.assert_allclose(np.asarray(traj["v"][-1]), np.exp(-0.1), rtol=1e-4)


def test_describe_model_documents_a_users_model():
    page = str(bx.describe_model(_Decay))
    assert page.startswith("_Decay\n") and "states:      v [1]" in page
    assert "rate       0.1      1/ms" in page and "reference" not in page
    assert bx.describe_model(_Decay(3)).category == "user-defined"
    with pytest.raises(ValueError, match="describe_model: Network is neither a registered node model nor one of your own"):
        bx.describe_model(bx.Network)


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: bx.Hopf(2, a=v), "'a'"),
        (lambda v: bx.Param(v), "Param value"),
        (lambda v: bx.Network(bx.Hopf(2), jnp.ones((2, 2)), k=v), "k"),
        (lambda v: bx.coupling.Sigmoidal(a=v), "'a'"),
        (lambda v: bx.observation.BalloonWindkessel(kappa=v), "'kappa'"),
    ],
)
@pytest.mark.parametrize(
    "value, what",
    [(1j, "complex"), (jnp.array([0.5 + 1j, 0.5]), "complex"), ("0.2", "string"), (True, "bool")],
)
def test_values_that_are_not_real_numbers_are_refused_by_name(make, name, value, what):
    # Each was read silently (the imaginary part dropped, '0.2' parsed, True taken as 1.0)
    # or failed in float() with a message that named no argument.
    with pytest.raises(TypeError, match=f"{name}.*{what}"):
        make(value)


def test_not_real_where_an_array_is_needed_is_refused_by_name():
    hopf = bx.Hopf(2)
    with pytest.raises(TypeError, match=r"y0\['x'\] holds complex"):
        bx.simulate(hopf, 5.0, dt=0.1, y0={"x": jnp.array([1 + 1j, 0]), "y": jnp.zeros(2)})
    with pytest.raises(TypeError, match="'conn' holds complex"):
        bx.Network(hopf, jnp.ones((2, 2), jnp.complex64))
    with pytest.raises(TypeError, match="'delays' holds complex"):
        bx.Network(hopf, jnp.ones((2, 2)), delays=jnp.ones((2, 2), jnp.complex64))
    with pytest.raises(TypeError, match=r"'WhiteNoise.sigma' must be a number.*string"):
        bx.simulate(bx.with_noise(hopf, noise_x=bx.WhiteNoise("0.1")), 5.0, dt=0.1, key=jax.random.key(0))
    # A binary connectivity matrix stays valid.
    assert bx.Network(hopf, jnp.ones((2, 2), bool)).n_regions == 2


@pytest.mark.parametrize("value", [True, 10 + 0j])
def test_a_time_that_is_a_bool_or_complex_is_refused(value):
    # dt=True ran with dt = 1 ms; a complex duration failed in float().
    with pytest.raises(TypeError, match="'dt' must be a time"):
        bx.simulate(bx.Hopf(1), 10.0, dt=value)


def test_traced_parameters_outside_their_domain_are_checked_when_the_run_starts():
    # Built inside jax.vmap, tau_E is traced and the construction check cannot read it: a
    # negative time constant ran without a word. Now eqx.error_if names it.
    run = lambda tau: bx.simulate(bx.WilsonCowan(1, tau_E=tau), 5.0, dt=0.1)["rE"]
    assert jax.vmap(run)(jnp.array([1.0, 2.0])).shape == (2, 50, 1)
    with pytest.raises(Exception, match="'tau_E' must be positive; it was traced"):
        jax.vmap(run)(jnp.array([1.0, -1.0]))
    with pytest.raises(Exception, match="'init_x' must be finite; it was traced"):
        eqx.filter_jit(lambda x0: bx.simulate(bx.Hopf(1, init_x=x0), 5.0, dt=0.1, check_finite=False)["x"])(
            jnp.asarray(jnp.nan)
        )
    # Gradients still go through a traced parameter.
    grad = jax.grad(lambda a: bx.simulate(bx.Hopf(1, a=a, init_x=0.5), 20.0, dt=0.1)["x"][-1, 0])(0.25)
    assert np.isfinite(grad)


@pytest.mark.parametrize("declare", ["parameter", "initial"])
def test_unknown_unit_kind_is_refused_where_the_field_is_declared(declare):
    # initial() accepted any unit, and every construction of the model then raised a bare
    # KeyError: 'mV'; both declarations now refuse it, naming the kind the unit belongs to.
    from brainmass_eqx.models import initial, parameter

    make = {"parameter": parameter, "initial": initial}[declare]
    with pytest.raises(ValueError, match=rf"{declare}\(unit=...\): unknown unit kind 'mV' \('mV' is the unit of "
                                          r"kind 'voltage'\); choose one of \["):
        make(0.0, "mV")
    with pytest.raises(ValueError, match="unknown unit kind"):
        make(0.0, ["voltage"])
    assert make(0.0, "voltage").metadata["unit"] == "voltage"
