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
