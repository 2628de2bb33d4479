"""The contract of a user's own model, gotten wrong the ways users get it wrong: each slip
must be named where it is made (at construction or the first trace), with the fix, not
surface deep in the solver or, worse, run with silently wrong numbers."""

import warnings
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt as u

import brainmass_eqx as bx
from brainmass_eqx.models import AbstractModel, parameter


class _Leak(AbstractModel):
    # A user's model (defined outside the package): dv/dt = -v / tau + I.
    state_names: ClassVar = ("v",)
    input_names: ClassVar = ("I",)
    coupling_input: ClassVar = "I"
    tau: object = parameter(10.0, "time", domain="positive")

    def vector_field(self, t, state, inputs):
        return {"v": -state["v"] / self.tau + self.input(inputs, "I")}


def _run(model, **kw):
    return bx.simulate(model, 1.0, dt=0.1, y0={"v": jnp.array([1.0, 3.0])}, **kw)


def test_a_scalar_derivative_is_refused_not_broadcast_to_every_region():
    # A mean over the regions by mistake: every region was driven by the same value, and
    # the run went on without a word (the two regions ended equal-sloped).
    class _Mean(_Leak):
        def vector_field(self, t, state, inputs):
            return {"v": jnp.mean(-state["v"] / self.tau)}

    with pytest.raises(ValueError, match=r"returned 'v' of shape \(\); the state 'v' has shape \(2,\).*"
                                         r"jnp.broadcast_to\(value, state\['v'\].shape\)"):
        _run(_Mean(2))
    traj = _run(_Leak(2))
    np.testing.assert_allclose(np.asarray(traj["v"][-1]), np.array([1.0, 3.0]) * np.exp(-0.1), rtol=1e-4)


def test_a_quantity_derivative_is_named():
    class _Quantity(_Leak):
        def vector_field(self, t, state, inputs):
            return {"v": u.Quantity(-state["v"] / self.tau, "1/ms")}

    with pytest.raises(TypeError, match=r"returned 'v' as a unxt Quantity; it must return plain numbers.*"
                                        r"ustrip\('1 / ms'\)"):
        _run(_Quantity(2))


def test_a_python_if_on_a_state_names_the_model_and_jnp_where():
    class _Branch(_Leak):
        def vector_field(self, t, state, inputs):
            if state["v"][0] > 0:
                return {"v": -state["v"]}
            return {"v": state["v"]}

    with pytest.raises(TypeError, match=r"_Branch.vector_field used a traced value as a Python bool.*jnp.where"):
        _run(_Branch(2))


def test_reading_an_undeclared_input_is_refused_not_zero():
    # A typo in the input's name read 0 for ever: the drive given to simulate never arrived.
    class _Typo(_Leak):
        def vector_field(self, t, state, inputs):
            return {"v": -state["v"] / self.tau + self.input(inputs, "Iext")}

    with pytest.raises(ValueError, match=r"_Typo.input\(inputs, 'Iext'\): 'Iext' is not in input_names, \['I'\]"):
        _run(_Typo(2), inputs={"I": 1.0})


@pytest.mark.parametrize(
    "attrs, error, message",
    [
        ({"coupling_input": "J"}, ValueError, r"_Slip.coupling_input is 'J' .*not in input_names, \['I'\]"),
        ({"coupled_state": "w"}, ValueError, r"_Slip.coupled_state is 'w' .*not in state_names, \['v'\]"),
        ({"observables": ("rate",)}, TypeError, r"_Slip.observables lists \['rate'\], but the class has no such method"),
        ({"state_units": {"V": "mV"}}, ValueError, r"_Slip.state_units has units for \['V'\], which are not in \['v'\] "
                                                   r"\(did you mean 'v'\?\)"),
    ],
)
def test_contradictory_declarations_are_refused_at_construction(attrs, error, message):
    slip = type("_Slip", (_Leak,), {"__annotations__": {k: ClassVar for k in attrs}, **attrs})
    with pytest.raises(error, match=message):
        slip(2)


def test_a_model_without_states_or_vector_field_says_what_is_missing():
    # Before: a bare KeyError 'v' inside the user's vector_field, and an empty
    # NotImplementedError. Built, such a class is fine: a Fitter may fit a carrier of
    # parameters with a loss_fn and no solve.
    class _NoStates(AbstractModel):
        def vector_field(self, t, state, inputs):
            return {"v": -state["v"]}

    class _NoField(AbstractModel):
        state_names: ClassVar = ("v",)

    with pytest.raises(TypeError, match=r"_NoStates declares no state variables, so it cannot be run: give the "
                                        r"class `state_names: ClassVar"):
        bx.simulate(_NoStates(2), 1.0, dt=0.1)
    with pytest.raises(NotImplementedError, match=r"_NoField does not implement vector_field\(self, t, state, inputs\)"):
        bx.simulate(_NoField(2), 1.0, dt=0.1)


def test_an_init_that_forgets_super_is_refused():
    # Without super().__init__ the model kept n_regions = 1 (a 2-region request ran 1
    # region) and a Quantity unconverted.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # equinox's note on __post_init__

        class _NoSuper(_Leak):
            gain: float

            def __init__(self, n_regions, gain=1.0):
                self.gain = gain

        class _WithSuper(_Leak):
            gain: float

            def __init__(self, n_regions, gain=1.0, **params):
                self.gain = gain
                super().__init__(n_regions, **params)

    with pytest.raises(TypeError, match=r"_NoSuper: 'tau' was not converted .*did not call super\(\).__init__"):
        _NoSuper(2)
    ok = _WithSuper(2, gain=3.0, tau=u.Quantity(0.02, "s"))
    assert ok.n_regions == 2 and float(ok.tau) == pytest.approx(20.0)


# -- couplings, noise processes and HRF kernels of one's own ----------------------------------

_W = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.2], [0.3, 0.7, 0.0]])


class _MeanPost(bx.coupling.AbstractSummedCoupling):
    # A mean over the targets by mistake: every region got the same current.
    def post(self, summed, current, rowsum, k):
        return k * jnp.mean(summed[0])


class _ColumnPost(bx.coupling.AbstractSummedCoupling):
    def post(self, summed, current, rowsum, k):
        return (k * summed[0])[:, None]


class _ScalarCall(bx.coupling.AbstractCoupling):
    def __call__(self, delayed, current, weights, k):
        return k * jnp.sum(weights * delayed)


class _GoodCall(bx.coupling.AbstractCoupling):
    def __call__(self, delayed, current, weights, k):
        return k * jnp.sum(weights * jnp.sin(delayed - current[:, None]), axis=-1)


@pytest.mark.parametrize(
    "coupling, message",
    [
        (_MeanPost(), r"_MeanPost.post returned shape \(\); it must return one current per target region, the "
                      r"shape of `current`, \(3,\)"),
        (_ColumnPost(), r"_ColumnPost.post returned shape \(3, 1\)"),
        (_ScalarCall(), r"_ScalarCall.__call__ returned shape \(\)"),
    ],
)
def test_a_coupling_current_must_be_one_value_per_region(coupling, message):
    # Into a bundled node (whose vector_field is not checked): the scalar ran silently with
    # every region driven alike, the column broadcast the Hopf derivative to (3, 3).
    for delays in (None, 2.0 * (1 - np.eye(3))):
        net = bx.Network(bx.Hopf(3, a=0.1, w=0.3, init_x=0.5), _W, delays=delays, k=0.2, coupling=coupling)
        with pytest.raises(ValueError, match=message):
            bx.simulate(net, 1.0, dt=0.1)
    good = bx.Network(bx.Hopf(3, a=0.1, w=0.3, init_x=0.5), _W, k=0.2, coupling=_GoodCall())
    assert bx.simulate(good, 1.0, dt=0.1)["x"].shape == (10, 3)


class _ScaledNoise(bx.noise.AbstractWhiteNoise):
    field_units: ClassVar = {"sigma": "target*sqrt(ms)"}
    sigma: object = 0.1

    def coefficient(self, t, state):
        return self.sigma * (1.0 + jnp.abs(state["x"]))


def test_a_white_noise_coefficient_must_be_a_scalar_or_per_region():
    class _Column(_ScaledNoise):
        def coefficient(self, t, state):
            return (self.sigma * jnp.abs(state["x"]))[:, None]

    node = bx.Hopf(3, a=0.1, w=0.3, init_x=0.5)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"_Column.coefficient returned shape \(3, 1\); it must return a scalar"):
        bx.simulate(bx.noise.with_noise(node, noise_x=_Column(0.1)), 1.0, dt=0.1, key=key)
    traj = bx.simulate(bx.noise.with_noise(node, noise_x=_ScaledNoise(u.Quantity(0.1, "ms(1/2)"))), 1.0, dt=0.1, key=key)
    assert traj["x"].shape == (10, 3)


def test_a_quantity_in_a_noise_field_without_a_unit_kind_is_named():
    class _Undeclared(bx.noise.AbstractWhiteNoise):
        sigma: object = 0.1

        def coefficient(self, t, state):
            return self.sigma * jnp.ones_like(state["x"])

    with pytest.raises(TypeError, match=r"\(_Undeclared\).sigma is a unxt Quantity, but _Undeclared.field_units "
                                        r"does not say its unit kind"):
        bx.noise.with_noise(bx.Hopf(2), noise_x=_Undeclared(u.Quantity(0.1, "")))


def test_unimplemented_extension_methods_say_what_to_write():
    class _NoCoefficient(bx.noise.AbstractWhiteNoise):
        pass

    class _NoPost(bx.coupling.AbstractSummedCoupling):
        pass

    with pytest.raises(NotImplementedError, match=r"_NoCoefficient does not implement coefficient\(self, t, state\)"):
        bx.simulate(bx.noise.with_noise(bx.Hopf(2), noise_x=_NoCoefficient()), 1.0, dt=0.1, key=jax.random.key(0))
    with pytest.raises(NotImplementedError, match=r"_NoPost does not implement post\(summed, current, rowsum, k\)"):
        bx.simulate(bx.Network(bx.Hopf(3), _W, k=0.1, coupling=_NoPost()), 1.0, dt=0.1)


def test_an_hrf_kernel_must_be_elementwise():
    class _Total(bx.observation.AbstractHRFKernel):
        duration: float = 10000.0

        def evaluate(self, t_s):
            return jnp.sum(t_s * jnp.exp(-t_s))

    with pytest.raises(ValueError, match=r"_Total.evaluate returned shape \(\) for times of shape \(\d+,\); it must "
                                         r"return h\(t\) at each time"):
        bx.observation.HRFBold(period=1000.0, kernel=_Total())(jnp.ones((4000, 2)), dt=1.0)


class _SinCos(bx.coupling.AbstractSummedCoupling):
    # Kuramoto through two sums: sin(X_j - y_i) = sin X_j cos y_i - cos X_j sin y_i.
    n_features: ClassVar = 2

    def pre(self, x):
        return jnp.stack([jnp.sin(x), jnp.cos(x)])

    def post(self, summed, current, rowsum, k):
        return k * (jnp.cos(current) * summed[0] - jnp.sin(current) * summed[1])


def test_a_pre_with_more_features_than_declared_is_refused():
    # n_features left at 1: the history held one channel per region, the second feature
    # was read as other regions' values, and the run gave other phases without a word
    # ([0.889, 1.081, 1.307] against [2.553, 2.625, 2.872] at 20 ms).
    class _Undeclared(_SinCos):
        n_features: ClassVar = 1

    def run(coupling):
        net = bx.Network(bx.Kuramoto(3, omega=jnp.array([0.1, 0.2, 0.3]), init_theta=jnp.array([0.0, 1.0, 2.0])),
                         _W, delays=2.0 * (1 - np.eye(3)), k=0.5, coupling=coupling)
        return np.asarray(bx.simulate(net, 20.0, dt=0.1)["theta"][-1])

    with pytest.raises(ValueError, match=r"_Undeclared.pre returned shape \(2, 3\) for sources of shape \(3,\); it "
                                         r"must return \(1, 3\).*n_features: ClassVar = 2"):
        run(_Undeclared())
    np.testing.assert_allclose(run(_SinCos()), run(_GoodCall()), atol=2e-5)
