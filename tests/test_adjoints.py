"""Gradients through `simulate` under each diffrax adjoint, on a small delayed Network.

Each combination that must work is checked against central finite differences in float64
(w.r.t. the coupling ``k`` and the conduction ``speed``, which sets the delays); each that
cannot work is refused with a message naming the adjoint and what to use instead.
"""

from __future__ import annotations

import functools

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx as bx

N = 4
_RNG = np.random.default_rng(0)
CONN = _RNG.uniform(0.0, 1.0, (N, N)) * (1.0 - np.eye(N))
DIST = _RNG.uniform(10.0, 50.0, (N, N)) * (1.0 - np.eye(N))  # delays 0.8 to 4.2 ms at P0's speed
DUR, DT = 5.0, 0.1
SAVEAT = np.linspace(0.0, DUR, 6)
P0 = (0.3, 12.0)  # k, speed (mm/ms)
KEY = jax.random.key(3)
SOLVERS = {"expeuler": lambda: None, "heun": dfx.Heun, "rk4": bx.RK4, "tsit5": dfx.Tsit5, "shark": dfx.ShARK}


def _network(k, speed, noisy=False):
    noise = bx.OUProcess(0.05, tau=5.0) if noisy else None
    return bx.Network(bx.Hopf(N, init_x=0.5), CONN, distance=DIST, speed=speed, k=k, max_delay=10.0, noise=noise)


def _loss(params, solver, saveat, adjoint, noisy=False):
    k, speed = params
    traj = bx.simulate(
        _network(k, speed, noisy),
        DUR,
        dt=DT,
        solver=SOLVERS[solver](),
        saveat=SAVEAT if saveat else None,
        adjoint=adjoint,
        key=KEY if noisy else None,
    )
    return jnp.sum(jnp.sin(3.0 * traj["x"]))


@functools.cache
def _finite_differences(solver, saveat, noisy):
    """Central differences of `_loss` w.r.t. (k, speed), one compiled loss for all adjoints
    (they change how the run is differentiated, not its values)."""
    loss = jax.jit(lambda p: _loss(p, solver, saveat, None, noisy))
    p0 = jnp.asarray(P0, jnp.float64)
    out = []
    for i in range(2):
        step = jnp.zeros(2).at[i].set(1e-5 * P0[i])
        out.append((float(loss(p0 + step)) - float(loss(p0 - step))) / (2e-5 * P0[i]))
    return np.array(out)


# (solver, saveat, adjoint, AD mode, noisy). ForwardMode and DirectAdjoint with an RK solver
# and saveat failed to trace: "'_DelayedCoupling' object has no attribute 'scan_kind'".
_WORKING = [
    ("heun", True, dfx.ForwardMode, "forward", False),
    ("rk4", True, dfx.ForwardMode, "forward", False),
    ("tsit5", True, dfx.ForwardMode, "forward", False),
    ("heun", True, dfx.DirectAdjoint, "reverse", False),
    ("tsit5", True, dfx.DirectAdjoint, "forward", False),
    ("heun", True, lambda: None, "reverse", False),
    ("expeuler", False, lambda: None, "forward", False),
    ("heun", True, dfx.ForwardMode, "forward", True),
    # A stochastic Runge-Kutta solver's stage loop (diffrax's AbstractSRK) is a checkpointed
    # scan unless told otherwise; inside the Network's two wrappers (noise increments, delay
    # history) diffrax's adjoints did not see it and jacfwd failed ("can't apply
    # forward-mode autodiff (jvp) to a custom_vjp function"), with DirectAdjoint also on a
    # node alone (it asks for a "bounded" loop, which that scan does not know).
    ("shark", True, dfx.ForwardMode, "forward", True),
    ("shark", True, dfx.DirectAdjoint, "forward", True),
]


@pytest.mark.parametrize(
    "solver, saveat, adjoint, mode, noisy",
    _WORKING,
    ids=[
        f"{s}-{'saveat' if sv else 'grid'}-{'default' if a.__name__ == '<lambda>' else a.__name__}-{m}"
        + ("-noisy" if nz else "")
        for s, sv, a, m, nz in _WORKING
    ],
)
def test_gradient_through_adjoint_matches_finite_differences(x64, solver, saveat, adjoint, mode, noisy):
    loss = functools.partial(_loss, solver=solver, saveat=saveat, adjoint=adjoint(), noisy=noisy)
    differentiate = jax.jacfwd if mode == "forward" else jax.grad
    grad = np.asarray(differentiate(loss)(jnp.asarray(P0, jnp.float64)))
    fd = _finite_differences(solver, saveat, noisy)
    assert np.all(np.abs(fd) > 1e-3)  # gradients that could be wrong
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


def _held_inputs(k, adjoint):
    # `_HeldStepInputs(_DelayedCoupling(Heun))`: two wrappers deep.
    pulse = np.zeros((round(DUR / DT), N))
    pulse[10:30] = 0.3
    traj = bx.simulate(
        _network(k, P0[1]), DUR, dt=DT, solver=dfx.Heun(), saveat=SAVEAT, adjoint=adjoint, inputs={"x": pulse}
    )
    return jnp.sum(jnp.sin(3.0 * traj["x"]))


def _self_delay(k, adjoint):
    # `SelfDelaySolver(Heun)`, a wrapper that diffrax's isinstance does not see through.
    traj = bx.simulate(
        bx.WilsonCowanDelayed(2, wEE=120.0 * k), DUR, dt=DT, solver=dfx.Heun(), saveat=SAVEAT, adjoint=adjoint,
        inputs={"rE": 1.5},
    )
    return jnp.sum(traj["rE"])


def _adaptive_updated(k, adjoint):
    # Adaptive steps, which a delayed Network refuses: a Network without delays whose
    # coupling is evaluated at every stage.
    net = bx.Network(bx.Hopf(N, init_x=0.5, a=np.linspace(-0.2, 0.2, N)), CONN, k=k, stage_coupling="updated")
    traj = bx.simulate(
        net, DUR, dt=DT, solver=dfx.Tsit5(), saveat=SAVEAT, adjoint=adjoint,
        stepsize_controller=dfx.PIDController(rtol=1e-8, atol=1e-10),
    )
    return jnp.sum(jnp.sin(3.0 * traj["x"]))


@pytest.mark.parametrize("loss", [_held_inputs, _self_delay, _adaptive_updated], ids=lambda f: f.__name__[1:])
def test_forward_mode_matches_reverse_mode(x64, loss):
    # diffrax's ForwardMode swaps a Runge-Kutta solver's checkpointed stage loop (which
    # jax.jacfwd cannot enter) only in a solver it sees as Runge-Kutta, one wrapper deep:
    # two wrappers deep (held inputs) or under one it cannot see through (a node's own
    # delays), jax.jacfwd failed with "can't apply forward-mode autodiff (jvp) to a
    # custom_vjp function".
    forward = float(jax.jacfwd(lambda k: loss(k, dfx.ForwardMode()))(0.3))
    reverse = float(jax.grad(lambda k: loss(k, None))(0.3))
    assert abs(reverse) > 1e-2
    np.testing.assert_allclose(forward, reverse, rtol=1e-8)


# -- refusals -------------------------------------------------------------------------------


def test_backsolve_adjoint_is_refused():
    with pytest.raises(ValueError, match=r"adjoint=BacksolveAdjoint\(\) cannot differentiate simulate.*ForwardMode"):
        _loss(P0, "heun", True, dfx.BacksolveAdjoint())


@pytest.mark.parametrize("adjoint", [None, dfx.RecursiveCheckpointAdjoint()], ids=["default-saveat", "rca-grid"])
def test_forward_mode_through_recursive_checkpoint_adjoint_is_refused(adjoint):
    # JAX said only "can't apply forward-mode autodiff (jvp) to a custom_vjp function".
    saveat = adjoint is None  # the default adjoint is diffrax's only with saveat
    with pytest.raises(TypeError, match=r"RecursiveCheckpointAdjoint\(\).*adjoint=diffrax\.ForwardMode\(\)"):
        jax.jacfwd(lambda p: _loss(p, "heun", saveat, adjoint))(jnp.asarray(P0))


@pytest.mark.parametrize("saveat", [False, True], ids=["grid", "saveat"])
def test_reverse_mode_through_forward_mode_is_refused(saveat):
    # JAX said only "Reverse-mode differentiation does not work for lax.while_loop ...".
    with pytest.raises(RuntimeError, match=r"cannot go through diffrax\.ForwardMode\(\).*leave adjoint unset"):
        jax.grad(lambda p: _loss(p, "heun", saveat, dfx.ForwardMode()))(jnp.asarray(P0))


@pytest.mark.parametrize(
    "solver, match",
    [("tsit5", r"cannot be integrated with adaptive steps.*drop stepsize_controller"), ("rk4", r"no error estimate")],
)
def test_adaptive_steps_on_a_delayed_network_are_refused(solver, match):
    with pytest.raises(ValueError, match=match):
        bx.simulate(
            _network(*P0), DUR, dt=DT, solver=SOLVERS[solver](), adjoint=dfx.ForwardMode(),
            stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8),
        )
