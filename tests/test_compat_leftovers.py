"""The compat facade where brainmass 0.1.1's own tests used to fail without a deliberate
difference behind it: brainmass's messages, its FitResult fields, the private names its tests
(and code written after its source) import, and braintools.file's names."""

import importlib

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainstate
from brainmass_eqx.compat.brainstate.nn import IdentityT, Param, SigmoidT


class ScalarToy(brainstate.nn.Module):
    """One bounded scalar ``k`` (brainmass's fitter_test toy)."""

    def __init__(self, t=None):
        super().__init__()
        self.k = Param(1.0, t=SigmoidT(0.5, 3.0) if t is None else t)


def _predict(model):
    return model.k.value()


def _loss_fn(model):
    prediction = _predict(model)
    return (prediction - 2.0) ** 2, prediction


@pytest.mark.parametrize(
    "conn, n, match",
    [
        (np.ones(5), 4, "not divisible"),
        (np.ones(8), 4, "square"),
        (np.ones((3, 4)), 4, "square"),
        (np.ones((2, 2, 2)), 2, "1D flattened or 2D"),
    ],
)
def test_kuramoto_conn_errors_use_brainmass_words(conn, n, match):
    # Raised at construction (brainmass: at the first update); the words are brainmass's.
    with pytest.raises(ValueError, match=match):
        bm.KuramotoNetwork(n, K=1.0, conn=conn.astype(np.float32))


def test_private_names_brainmass_code_imports():
    xy = importlib.import_module("brainmass_eqx.compat._xy_model")
    assert xy.XY_Oscillator is bm.XY_Oscillator
    from brainmass_eqx.compat.list_models import _MODEL_REGISTRY

    assert [m.name for m in _MODEL_REGISTRY] == [m.name for m in bm.list_models()]
    from brainmass_eqx.compat.fitter import _build_search_space, _finite_box, _trainable_params

    params = _trainable_params(ScalarToy())
    assert list(params) == ["k"]
    assert _finite_box(SigmoidT(0.5, 3.0)) == (0.5, 3.0) and _finite_box(IdentityT()) is None
    assert _build_search_space(params, None) == {"k": (0.5, 3.0)}
    assert _build_search_space(params, {"k": (1.0, 2.0)}) == {"k": (1.0, 2.0)}
    with pytest.raises(ValueError, match="search_space names unknown parameter 'nope'"):
        _build_search_space(params, {"nope": (0.0, 1.0)})
    with pytest.raises(
        ValueError, match=r"transform IdentityT defines no finite interval. Pass search_space"
    ):
        _build_search_space(_trainable_params(ScalarToy(IdentityT())), None)


def test_fitter_n_steps_message_is_brainmass():
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        bm.Fitter(ScalarToy(), predict=_predict).fit(target=jnp.asarray(2.0), n_steps=0)


def test_scipy_fit_result_fields_are_brainmass():
    brainstate.random.seed(0)
    result = bm.Fitter(ScalarToy(), "Nelder-Mead", predict=_predict, backend="scipy").fit(
        target=jnp.asarray(2.0), n_steps=1
    )
    assert isinstance(result.raw, scipy.optimize.OptimizeResult)  # brainmass: SciPy's result
    assert abs(float(result.raw.x[0]) - 2.0) < 0.1 and result.prediction is not None
    with_loss_fn = bm.Fitter(ScalarToy(), "Nelder-Mead", loss_fn=_loss_fn, backend="scipy").fit(
        n_steps=1
    )
    assert with_loss_fn.prediction is None  # brainmass: no prediction on the loss_fn path
    grad = bm.Fitter(ScalarToy(), loss_fn=_loss_fn).fit(n_steps=2)
    assert (
        grad.raw is None and grad.prediction is not None
    )  # brainmass's 'grad' keeps loss_fn's aux


@pytest.mark.parametrize("name", ["msgpack_save", "msgpack_load", "AsyncManager", "load_matfile"])
def test_braintools_file_names_say_the_alternative(name):
    with pytest.raises(ImportError, match=rf"braintools.file.{name} is not provided .* Instead, "):
        exec(f"from brainmass_eqx.compat.braintools.file import {name}")
    with pytest.raises(AttributeError):
        _ = bm.braintools.file.not_a_braintools_name


# -- brainmass's small utilities (no test ran them; checked against brainmass 0.1.1 on the same inputs)

_Y = np.array([-0.5, 0.2, 1.5])


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: bm.sys2nd(3.25, 0.1, _Y, _Y**2, -_Y), 3.25 * 0.1 * _Y + 2 * 0.1 * _Y - 0.01 * _Y**2),
        (lambda: bm.sigmoid(_Y, 5.0, 6.0, 0.56), 5.0 / (1.0 + np.exp(0.56 * (6.0 - _Y)))),
        (lambda: bm.bounded_input(_Y * 1000.0), 500.0 * np.tanh(_Y * 2.0)),
        (lambda: bm.bounded_input(_Y, 0.5), 0.5 * np.tanh(_Y / 0.5)),
        (lambda: bm.process_sequence(np.outer(_Y, _Y), "last"), _Y[-1] * _Y),
        (lambda: bm.process_sequence(np.outer(_Y, _Y), "first"), _Y[0] * _Y),
        (lambda: bm.process_sequence(np.outer(_Y, _Y), "avg"), _Y.mean() * _Y),
        (lambda: bm.process_sequence(np.outer(_Y, _Y), "mean"), _Y.mean() * _Y),
        (lambda: bm.process_sequence(np.outer(_Y, _Y), "max"), np.outer(_Y, _Y).max(axis=0)),
        (lambda: bm.process_sequence(np.outer(_Y, _Y), "min"), np.outer(_Y, _Y).min(axis=0)),
        (lambda: bm.process_sequence(np.outer(_Y, _Y), "stack"), np.outer(_Y, _Y)),
        (lambda: bm.process_sequence({"a": np.outer(_Y, _Y)}, lambda x: x.sum(0))["a"], _Y.sum() * _Y),
        (lambda: bm.delay_index(3), np.array([[0, 1, 2]] * 3)),
    ],
)
def test_utilities_follow_their_formulas(call, expected):
    np.testing.assert_allclose(np.asarray(call()), expected, rtol=1e-5, atol=1e-6)


def test_process_sequence_names_the_modes_it_knows():
    with pytest.raises(ValueError, match=r"Unknown mode: median. Supported modes: 'stack', 'last'"):
        bm.process_sequence(np.ones((2, 2)), "median")


def test_a_coloured_noise_beyond_the_cores_exponents_is_refused_not_clamped(compat_env):
    # ColoredNoise(beta=3) driving a model ran the core's beta = 2 noise (clamped silently).
    with pytest.raises(ValueError, match=r"ColoredNoise\(beta=3\) driving a model: .* beta in \[-2, 2\]"):
        bm.HopfStep(2, noise_x=bm.ColoredNoise(2, beta=3.0, sigma=0.1))
    assert bm.ColoredNoise(2, beta=3.0, sigma=0.1).update().shape == (2,)  # on its own: brainmass's sample
    model = bm.HopfStep(2, noise_x=bm.ColoredNoise(2, beta=-1.5, sigma=0.1)).core_model()
    assert "beta=-1.5" in repr(model)


def test_a_bold_signal_stepped_alone_rests_at_zero_and_refuses_activity_with_a_unit(compat_env):
    from brainmass_eqx.compat import brainunit as u

    bs = brainstate
    bs.environ.set(dt=1.0 * u.ms)
    bold = bm.BOLDSignal(2)
    bs.nn.init_all_states(bold)
    for _ in range(400):
        bold.update(np.array([0.0, 0.5]))
    signal = np.asarray(bold.bold())
    assert signal[0] == 0.0 and signal[1] > 5e-5  # no drive: the resting state; a drive: a positive response
    # The unit was dropped: 0.5 kHz and 0.5 Hz drove the same response.
    with pytest.raises(u.UnitMismatchError, match=r"z, the neural activity, must be a plain number .* 1 / ms"):
        bold.update(np.array([0.0, 0.5]) / u.ms)


def test_brainmass_methods_the_facade_lacked(compat_env):
    # WongWangStep.dS1_dt / dS2_dt and KuramotoNetwork.dtheta were missing (a method
    # signature audit against brainmass 0.1.1); the numbers are brainmass's on the same inputs.
    from brainmass_eqx.compat import brainunit as u

    ww = bm.WongWangStep(2)
    d1 = ww.dS1_dt(np.array([0.1, 0.5]), np.array([10.0, 40.0]) * u.Hz)
    assert u.get_unit(d1) == u.Hz
    np.testing.assert_allclose(np.asarray(d1.mantissa), [4.769, 7.82], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ww.dS2_dt(0.2, 5 * u.Hz).mantissa), 0.564, rtol=1e-5)
    theta_dot = bm.KuramotoNetwork(3, omega=0.5).dtheta(np.zeros(3), np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(np.asarray(theta_dot.to(u.kHz).mantissa), [0.6, 0.7, 0.8], rtol=1e-6)


def test_lead_field_helpers_take_brainmass_argument_names():
    normals = np.eye(3)[[0, 1, 2, 0]]
    parcel = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    W = bm.LeadFieldModel.build_fixed_orientation_weights(normals_V3=normals, parcel_VxR=parcel, area_weights_V=None)
    L = bm.LeadFieldModel.compress_vertex_leadfield(L_vertex_3V=np.ones((2, 12)), W_vertex_to_region_3VxR=W)
    assert np.asarray(W).shape == (12, 2) and np.asarray(L).shape == (2, 2)
    np.testing.assert_allclose(np.asarray(L), np.ones((2, 12)) @ np.asarray(W))
