"""A sparse connectome's instantaneous coupling (no delays): the per-target lists are read
with an in-bounds gather and a matrix-vector product (`_history.take_sum`). It equals the
formulation it replaced and the dense connectome's coupling, differentiates and batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse as jsparse

import brainmass_eqx as bm
from brainmass_eqx import coupling as C
from brainmass_eqx.network import Network

N = 7
DT = 0.1
DUR = 5.0
_RNG = np.random.default_rng(11)
# About three sources per target, off the diagonal, one row without any (padding only).
CONN = np.where(_RNG.uniform(size=(N, N)) < 0.45, _RNG.uniform(0.2, 1.0, (N, N)), 0.0) * (1.0 - np.eye(N))
CONN[2] = 0.0
CONN = CONN.astype(np.float32)
X0 = np.linspace(-0.3, 0.4, N).astype(np.float32)


class _Pairwise(C.AbstractCoupling):
    """A kernel that is not a weighted sum: the network hands it the gathered sources."""

    def __call__(self, delayed, current, weights, k):
        return k * jnp.sum(weights * jnp.sin(delayed - current[:, None]), axis=-1)


KERNELS = {"diffusive": C.Diffusive(), "kuramoto (2 features)": C.Kuramoto(), "pairwise": _Pairwise()}


def hopf(a=0.2):
    return bm.Hopf(N, a=a, w=0.3, init_x=X0, init_y=0.05)


def net(conn, coupling="diffusive", a=0.2, k=0.5, **kw):
    return Network(hopf(a), conn, k=k, coupling=KERNELS[coupling], **kw)


def state():
    return {"x": jnp.asarray(np.sin(np.arange(N) * 1.3), jnp.float32), "y": jnp.asarray(np.cos(np.arange(N)), jnp.float32)}


def previous_formulation(network, y):
    """The sparse coupling as it was written before: ``jnp.sum(w * feats[:, src], -1)``
    (and ``x[src]`` for a kernel that is not a weighted sum)."""
    w, src, k = network.coupling_weights(), network._sources(), network.k
    x = network.coupled_values(y)["x"]
    if isinstance(network.coupling, C.AbstractSummedCoupling):
        summed = jnp.sum(w * network.coupling.features(x)[:, src], axis=-1)
        return network.coupling.post(summed, x, jnp.sum(w, axis=-1), k)
    return network.coupling(x[src], x, w, k)


@pytest.mark.parametrize("coupling", list(KERNELS))
def test_sparse_instantaneous_coupling_equals_the_previous_formulation_and_the_dense_one(coupling):
    sparse, dense = net(jsparse.BCOO.fromdense(CONN), coupling), net(CONN, coupling)
    y = state()
    got = jax.jit(lambda y: sparse.instantaneous_coupling(y))(y)["x"]
    np.testing.assert_allclose(np.asarray(got), np.asarray(previous_formulation(sparse, y)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(got), np.asarray(dense.instantaneous_coupling(y)["x"]), rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(got))) > 0.1


@pytest.mark.parametrize("coupling", list(KERNELS))
def test_sparse_read_is_an_in_bounds_gather_without_index_fix_ups(coupling):
    """``feats[:, src]`` (jnp indexing) wraps negative indices (compare and select per
    index) and its gather was followed by XLA's row reduction: a 3,000-region Hopf step
    took 330 us, with `take_sum` 38 us. The lists are in bounds by construction."""
    sparse = net(jsparse.BCOO.fromdense(CONN), coupling)
    jaxpr = jax.make_jaxpr(sparse.instantaneous_coupling)(state()).jaxpr
    eqns = list(jaxpr.eqns)
    names = [e.primitive.name for e in eqns]
    gathers = [e for e in eqns if e.primitive.name == "gather"]
    features = sparse.coupling.n_features if isinstance(sparse.coupling, C.AbstractSummedCoupling) else 1
    assert len(gathers) == features, names
    assert all(e.params["mode"] == jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS for e in gathers), names
    assert "select_n" not in names, names
    if isinstance(sparse.coupling, C.AbstractSummedCoupling):
        # One matrix-vector product per feature; the only row reduction left is the row sums.
        assert names.count("dot_general") == features and names.count("reduce_sum") == 1, names


@pytest.fixture(scope="module")
def runs():
    """One compiled run per (conn kind, solver, stage coupling), shared by the tests."""

    r, c = np.nonzero(CONN)
    pattern = jnp.asarray(np.stack([r, c], 1), jnp.int32)  # concrete: closed over, not traced

    def run(values, a, k, sparse, solver, stage):
        if sparse:
            conn = jsparse.BCOO((values, pattern), shape=(N, N))
        else:
            conn = jnp.zeros((N, N), values.dtype).at[r, c].set(values)
        network = Network(hopf(a), conn, k=k, stage_coupling=stage)
        return bm.simulate(network, DUR, dt=DT, solver=solver)["x"]

    run = jax.jit(run, static_argnames=("sparse", "solver", "stage"))
    values = jnp.asarray(CONN[np.nonzero(CONN)])
    return run, values


@pytest.mark.parametrize("solver, stage", [(bm.ExponentialEuler(), None), (bm.RK4(), None), (bm.RK4(), "held")])
def test_sparse_network_without_delays_runs_as_the_dense_one(runs, solver, stage):
    run, values = runs
    a = jnp.float32(0.2)
    k = jnp.float32(0.5)
    sparse = run(values, a, k, sparse=True, solver=solver, stage=stage)
    dense = run(values, a, k, sparse=False, solver=solver, stage=stage)
    np.testing.assert_allclose(np.asarray(sparse), np.asarray(dense), rtol=1e-5, atol=1e-6)
    assert np.ptp(np.asarray(sparse)) > 0.1


def test_sparse_network_without_delays_differentiates_as_the_dense_one(runs):
    """Reverse mode w.r.t. the conn's values, a node parameter and k, and forward mode
    (jvp), against the dense connectome's (which sums with ``w @ x``)."""
    run, values = runs

    def loss(values, a, k, sparse):
        return jnp.sum(run(values, a, k, sparse=sparse, solver=bm.ExponentialEuler(), stage=None) ** 2)

    args = (values, jnp.float32(0.2), jnp.float32(0.5))
    grad = jax.grad(loss, argnums=(0, 1, 2))
    for s, d in zip(grad(*args, True), grad(*args, False)):
        np.testing.assert_allclose(np.asarray(s), np.asarray(d), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(grad(*args, True)[0])).max() > 1e-3
    direction = (jnp.asarray(np.linspace(-1.0, 1.0, values.size), jnp.float32), jnp.float32(0.3), jnp.float32(-0.2))
    tangents = [jax.jvp(lambda *p, s=s: loss(*p, s), args, direction)[1] for s in (True, False)]
    np.testing.assert_allclose(float(tangents[0]), float(tangents[1]), rtol=1e-5)
    assert abs(float(tangents[0])) > 1e-3


def test_sparse_network_without_delays_batches_under_vmap(runs):
    run, values = runs
    ks = jnp.asarray([0.1, 0.5, 0.9], jnp.float32)
    a = jnp.float32(0.2)
    batched = jax.vmap(lambda k: run(values, a, k, sparse=True, solver=bm.ExponentialEuler(), stage=None))(ks)
    for i, k in enumerate(ks):
        single = run(values, a, k, sparse=True, solver=bm.ExponentialEuler(), stage=None)
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), rtol=1e-6, atol=1e-7)
    # And over the connectome's values (batched weights, shared lists).
    scaled = jnp.stack([values, 0.5 * values])
    batched = jax.vmap(lambda v: run(v, a, ks[1], sparse=True, solver=bm.ExponentialEuler(), stage=None))(scaled)
    single = run(0.5 * values, a, ks[1], sparse=True, solver=bm.ExponentialEuler(), stage=None)
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(single), rtol=1e-6, atol=1e-7)


def _in_loops(jaxpr, primitive: str, inside: bool = False) -> int:
    """How many ``primitive`` equations ``jaxpr`` runs inside a ``scan`` / ``while`` body."""
    from jax.extend import core as jcore

    n = 0
    for eqn in jaxpr.eqns:
        n += inside and eqn.primitive.name == primitive
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, (jcore.ClosedJaxpr, jcore.Jaxpr)):
                    sub = sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub
                    n += _in_loops(sub, primitive, inside or eqn.primitive.name in ("scan", "while"))
    return n


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("solver, stage", [(bm.ExponentialEuler(), None), (bm.RK4(), "held")])
def test_the_row_sums_of_traced_weights_are_computed_once_per_run(runs, sparse, solver, stage):
    # The coupling's row sums (Diffusive's sum_j w_ij y_i) of differentiated weights were
    # summed again at every step (a reduce_sum in the loop body); the run's plan has them.
    run, values = runs
    args = (values, jnp.float32(0.2), jnp.float32(0.5))
    jaxpr = jax.make_jaxpr(lambda *a: run(*a, sparse=sparse, solver=solver, stage=stage))(*args).jaxpr
    assert _in_loops(jaxpr, "reduce_sum") == 0
    assert _in_loops(jaxpr, "dot_general") >= 1  # the coupling's weighted sum: the loop body was searched
