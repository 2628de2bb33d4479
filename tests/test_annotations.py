"""The annotations tell the truth: key public functions run under a runtime type checker
(``jaxtyping.jaxtyped(typechecker=beartype)``), and a Module's ``__init__`` arguments and
fields are checked against their annotations, for the values the library itself passes
and returns. beartype is in the test extra (a test-time tool only, never a dependency of the
package).

The whole suite can be run the same way (slow):
``pytest --jaxtyping-packages=brainmass_eqx,beartype.beartype tests/...``; failures that
remain there are tests passing wrong types on purpose to see the library's own message.
"""

from __future__ import annotations

import dataclasses
import typing

# beartype is in the test extra: these checks run wherever the tests do.
import beartype  # noqa: E402
import jax.numpy as jnp
import numpy as np
import pytest
import unxt
from beartype.door import die_if_unbearable  # noqa: E402
from jaxtyping import jaxtyped

import brainmass_eqx as bx
from brainmass_eqx import metrics as M, network as _network
from brainmass_eqx.coupling import AbstractCoupling, Diffusive
from brainmass_eqx.datasets import Connectome, Signal
from brainmass_eqx.models._base import AbstractModel
from brainmass_eqx.noise import Noisy


def checked(fn):
    """``fn`` with its arguments and return value checked against its annotations."""
    return jaxtyped(fn, typechecker=beartype.beartype)


def check_init_arguments(cls, **kwargs):
    """Each argument against ``cls.__init__``'s annotation (equinox puts a converter's
    argument annotation there), without wrapping the class itself for the session."""
    hints = typing.get_type_hints(cls.__init__)
    for name, value in kwargs.items():
        die_if_unbearable(value, hints[name])


def check_fields(module):
    """Each field of a Module against its annotation."""
    hints = typing.get_type_hints(type(module))
    for field in dataclasses.fields(module):
        die_if_unbearable(getattr(module, field.name), hints[field.name])


@pytest.fixture(scope="module")
def signal():
    t = np.arange(400) * 1.0  # ms
    x = np.stack([np.sin(2 * np.pi * 0.01 * t), np.cos(2 * np.pi * 0.02 * t), np.sin(0.05 * t) ** 2], axis=1)
    return Signal(x, 1.0)


def test_simulate_returns_what_trajectory_declares():
    model = bx.Hopf(n_regions=2)
    traj = checked(bx.simulate)(model, 1.0, dt=0.1)
    check_fields(traj)  # ts is a float64 NumPy array on the step grid
    die_if_unbearable(traj["x"], typing.get_type_hints(type(traj).__getitem__)["return"])
    # A run continued from a Trajectory: y0 takes one.
    checked(bx.simulate)(model, 1.0, dt=0.1, y0=traj)


def test_model_input_is_a_number_when_absent():
    model = bx.Hopf(n_regions=2)
    assert checked(AbstractModel.input)(model, {}, "x") == 0.0
    assert checked(AbstractModel.input)(model, {"x": 0.5}, "x") == 0.5


def test_network_host_values_and_coupling_weights_are_numpy_on_the_host():
    assert isinstance(checked(_network._host)(10.0, "mm/ms"), np.ndarray)
    w = np.ones((3, 3))
    assert isinstance(checked(AbstractCoupling.effective_weights)(Diffusive(), w), np.ndarray)


def test_noisy_takes_the_mapping_with_noise_gives_it():
    noisy = bx.with_noise(bx.Hopf(n_regions=2), {"x": bx.WhiteNoise(sigma=0.1)})
    check_init_arguments(Noisy, enters={"x": "input"})
    check_fields(noisy)


def test_metrics_take_quantities_and_signals(signal):
    fc = checked(M.functional_connectivity)
    np.testing.assert_allclose(fc(unxt.Quantity(signal.signal, "mV")), fc(signal), atol=1e-6)
    checked(M.kuramoto_order_parameter)(unxt.Quantity(signal.signal, "rad"))
    f = checked(M.dominant_frequency)(signal.signal[:, 0], 1.0)  # 1-D: a scalar
    assert jnp.shape(f) == ()
    checked(M.power_spectral_density)(signal)


def test_observation_models_take_quantities_and_signals(signal):
    q = unxt.Quantity(signal.signal, "mV")
    out = checked(bx.observation.TemporalAverage.__call__)(bx.observation.TemporalAverage(10.0), q, 1.0)
    assert bx._units.is_quantity(out)
    avg = bx.observation.SpatialAverage(np.array([0, 0, 1]))
    assert bx._units.is_quantity(checked(bx.observation.SpatialAverage.__call__)(avg, q))
    checked(bx.observation.HRFBold.__call__)(bx.observation.HRFBold(period=100.0), signal)
    checked(bx.observation.bold_from_signal)(signal, tr=100.0)
    bw = bx.observation.BalloonWindkessel()
    checked(bx.observation.BalloonWindkessel.bold)(bw, {"s": 0.0, "f": 1.0, "v": 1.0, "q": 1.0})
    normals, parcel = np.eye(3)[[0, 1, 2, 0]], np.eye(2)[[0, 0, 1, 1]]
    w = checked(bx.observation.LeadFieldModel.build_fixed_orientation_weights)(normals, parcel)
    assert w.shape == (12, 2)


def test_connectome_takes_numpy_labels():
    labels = np.asarray(["A", "B"])
    check_init_arguments(Connectome, labels=labels)
    check_fields(Connectome(np.ones((2, 2)), np.ones((2, 2)), labels))


def test_fit_result_and_flatness_are_what_they_say():
    from brainmass_eqx.fit import FitResult
    from brainmass_eqx.fit._fitter import loss_is_flat

    kwargs = dict(backend="nevergrad", best_loss=0.5, best_params={"a": np.asarray(0.3)}, model=None,
                  prediction=None, history=np.array([0.7, 0.5]), n_steps=2, best_step=1, stop_reason="n_steps")  # fmt: skip
    check_init_arguments(FitResult, **kwargs)  # host backends give NumPy values
    assert checked(loss_is_flat)(FitResult(**kwargs)) is False  # a bool, not np.False_
