"""Units, Param and the model contract's construction-time validation."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt as u

import brainmass_eqx as bx
from brainmass_eqx._units import to_canonical


def test_quantities_are_converted_once_to_canonical_units():
    wc = bx.WilsonCowan(2, tau_E=u.Quantity(0.002, "s"), tau_I=u.Quantity(1500.0, "us"))
    assert float(wc.tau_E) == pytest.approx(2.0)
    assert float(wc.tau_I) == pytest.approx(1.5)
    jr = bx.JansenRit(1, be=u.Quantity(0.1, "kHz"), Ae=u.Quantity(0.00325, "V"))
    assert float(jr.be) == pytest.approx(100.0) and float(jr.Ae) == pytest.approx(3.25)
    assert isinstance(bx.Hopf(1, a=0.3).a, jax.Array)  # plain numbers become arrays (no recompiles)


def test_wrong_dimension_names_argument_and_expected_dimension():
    with pytest.raises(bx.UnitError, match=r"'tau_E' has unit 'mV' .* must be a time quantity \(canonical unit 'ms'\)"):
        bx.WilsonCowan(1, tau_E=u.Quantity(1.0, "mV"))
    with pytest.raises(bx.UnitError, match="'be' .* must be a frequency quantity"):
        bx.JansenRit(1, be=u.Quantity(1.0, "ms"))
    with pytest.raises(bx.UnitError, match="'x' .* must be a dimensionless quantity"):
        to_canonical(u.Quantity(1.0, "ms"), "x", "")


def test_shapes_must_broadcast_to_regions():
    bx.Hopf(3, a=jnp.array([0.1, 0.2, 0.3]))
    bx.Hopf(3, a=jnp.array([0.1]))
    with pytest.raises(ValueError, match=r"Hopf: 'a' has shape \(2,\), which does not broadcast to the 3 regions"):
        bx.Hopf(3, a=jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="n_regions must be a positive int"):
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
    with pytest.raises(ValueError, match=r"outside the open interval \(0.0, 1.0\)"):
        bx.Param(2.0, bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match="transform='foo'.* unknown"):
        bx.Param(1.0, transform="foo")
    with pytest.raises(ValueError, match="needs bounds"):
        bx.Param(1.0, transform="sigmoid")
    with pytest.raises(ValueError, match="must be finite"):
        bx.Param(jnp.nan)


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
