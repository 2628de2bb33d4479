"""The native CPU kernels (`brainmass_eqx._native`: the delayed reads, `exprel`) against the
XLA operations they replace.

With integer-valued samples and weights every partial sum is exact, so the two must agree
bit for bit whatever order they add in; on real data they differ by rounding only.
"""

import contextlib
import os
import shutil
import subprocess
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx as bm
from brainmass_eqx import _history as hist, _native
from brainmass_eqx.network import Network

HAS_COMPILER = any(shutil.which(c) for c in ("c++", "g++", "clang++"))


@contextlib.contextmanager
def xla_reads():
    bm.set_native_kernels(False)
    try:
        yield
    finally:
        bm.set_native_kernels(True)


def _both(fn, *args):
    """``fn(*args)`` compiled with the native kernels, then with XLA's reads (checking that
    the first program calls a kernel and the second does not)."""
    native = jax.block_until_ready(jax.jit(fn)(*args))
    assert ("custom_call @Bmx" in jax.jit(fn).lower(*args).as_text()) == HAS_COMPILER
    with xla_reads():
        xla = jax.block_until_ready(jax.jit(fn)(*args))
        assert "Bmx" not in jax.jit(fn).lower(*args).as_text()
    return native, xla


def _integers(rng, shape, dtype):
    x = rng.integers(-8, 9, shape).astype(np.float64)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.integers(-8, 9, shape)
    return jnp.asarray(x.astype(dtype))


def test_kernels_build_where_a_compiler_exists():
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler on this machine: the XLA reads are used")
    assert bm.native_kernels_available()


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
@pytest.mark.parametrize("shape", [(5, 45), (80, 80), (3, 7)])
def test_read_sum_and_its_transpose_equal_the_xla_reads(dtype, shape):
    rng = np.random.default_rng(0)
    T, J = shape
    M = 300
    buf = _integers(rng, (M,), dtype)
    w = _integers(rng, (T, J), dtype)
    idx = jnp.asarray(rng.integers(0, M, (T, J)), jnp.int32)  # repeats: scatter conflicts
    ct = _integers(rng, (T,), np.float32)

    def read(buf, ct):
        sums, out = hist.read_sum(hist.ring_fill(buf), idx, w)
        return sums, jax.vjp(lambda b: hist.read_sum(hist.ring_fill(b), idx, w)[0], buf)[1](ct)[0]

    (s_native, g_native), (s_xla, g_xla) = _both(read, buf, ct)
    np.testing.assert_array_equal(np.asarray(s_native), np.asarray(s_xla))
    np.testing.assert_array_equal(np.asarray(g_native), np.asarray(g_xla))
    # The reference itself: Re sum_j w b[idx].
    np.testing.assert_array_equal(np.asarray(s_native), np.real(np.asarray(w) * np.asarray(buf)[np.asarray(idx)]).sum(-1))


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_ensemble_read_and_its_derivatives_equal_the_xla_reads(dtype):
    """A vmapped buffer with shared indices and weights: the batch-last read."""
    rng = np.random.default_rng(4)
    B, M, T, J = 5, 120, 6, 21
    bufs = _integers(rng, (B, M), dtype)
    w = _integers(rng, (T, J), dtype)
    idx = jnp.asarray(rng.integers(0, M, (T, J)), jnp.int32)
    ct = _integers(rng, (B, T), np.float32)

    def read(b):
        return hist.read_sum(hist.ring_fill(b), idx, w)[0]

    def run(bufs, ct):
        sums, vjp = jax.vjp(jax.vmap(read), bufs)
        tangent = jax.jvp(jax.vmap(read), (bufs,), (bufs,))[1]
        return sums, vjp(ct)[0], tangent

    native, xla = _both(run, bufs, ct)
    for a, b in zip(native, xla):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    expect = np.real(np.asarray(w) * np.asarray(bufs)[:, np.asarray(idx)]).sum(-1)
    np.testing.assert_array_equal(np.asarray(native[0]), expect)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_nested_ensemble_read_is_not_a_ynnpack_reduce(dtype):
    """A vmap of vmaps (a Fitter population of a key-vmapped loss) reads through XLA, not
    the kernels. Its weighted sum is a product with ones, not a reduce, which XLA:CPU hands
    to YNNPACK: such a fusion in a step loop, run from two threads at once (the
    population's slices), held ~2.3 KB per step per call until the call returned (+93 MB
    for 20,000 steps of 2 x 8 runs of 76 regions)."""
    rng = np.random.default_rng(5)
    A, B, M, T, J = 3, 4, 64, 40, 40
    bufs = _integers(rng, (A, B, M), dtype)
    w = _integers(rng, (T, J), dtype)
    idx = jnp.asarray(rng.integers(0, M, (T, J)), jnp.int32)

    def steps(b):
        def body(i, carry):
            ring, total = carry
            sums, ring = hist.read_sum(ring, idx, w)
            return ring, total + sums

        return jax.lax.fori_loop(0, 3, body, (hist.ring_fill(b), jnp.zeros(T)))[1]

    fn = jax.jit(jax.vmap(jax.vmap(steps)))
    assert "__ynn_fusion" not in fn.lower(bufs).compile().as_text()
    expect = 3 * np.real(np.asarray(w) * np.asarray(bufs)[:, :, np.asarray(idx)]).sum(-1)
    np.testing.assert_array_equal(np.asarray(fn(bufs)), expect)


@pytest.mark.parametrize("repeat", [0, -2, 2.0, "3", True])
def test_ring_fill_refuses_a_repeat_that_is_not_a_positive_int(repeat):
    with pytest.raises(ValueError, match=rf"ring_fill: repeat must be a positive int \(the number of slots\), got {repeat!r}"):
        hist.ring_fill(jnp.ones(3), repeat=repeat)


def test_ring_fill_repeat_equals_the_broadcast_slots():
    row = jnp.arange(3.0)
    np.testing.assert_array_equal(hist.ring_fill(row, repeat=np.int32(4)), hist.ring_fill(jnp.broadcast_to(row, (4, 3))))


def test_scatter_add_with_and_without_repeated_indices(x64):
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        base = _integers(rng, (64,), dtype)
        values = _integers(rng, (4, 40), dtype)
        for idx in (rng.integers(0, 64, 160), np.tile(np.arange(40), 4)):  # repeats; none within a row
            idx = jnp.asarray(np.asarray(idx).reshape(4, 40), jnp.int32)
            native, xla = _both(lambda b, v, i: hist.scatter_add_p.bind(b, v, i), base, values, idx)
            np.testing.assert_array_equal(np.asarray(native), np.asarray(xla))
            expect = np.asarray(base).copy()
            np.add.at(expect, np.asarray(idx), np.asarray(values))
            np.testing.assert_array_equal(np.asarray(native), expect)


def _weighted(b, c, w, idx):
    return hist.scatter_weighted_p.bind(b, c, w, idx)


def _scatter_of_products(b, c, w, idx):
    return hist.scatter_add_p.bind(b, (c[:, None] * w).astype(b.dtype), idx)


def _scatter_rules(scatter, base, ct, cts, w, idx):
    """A scatter's value, its transpose, JVP and vmap over ``cts``, and its derivatives in
    the weights (forward, and reverse through that forward)."""
    f = lambda b, c: scatter(b, c, w, idx)
    out, vjp = jax.vjp(f, base, ct)
    in_w = lambda ww: jax.jvp(lambda v: scatter(base, ct, v, idx), (w,), (ww,))[1]
    return (
        out, *vjp(out), jax.jvp(f, (base, ct), (base, ct))[1], jax.vmap(f, (None, 0))(base, cts),
        in_w(w), jax.vjp(in_w, w)[1](out)[0],
    )  # fmt: skip


def test_weighted_scatter_equals_the_scatter_of_the_products(x64):
    """`scatter_weighted_p` (read_sum's transpose: base + scatter(ct[:, None] * w)) against
    the scatter of the products it replaces: values, its own transpose, JVP and vmap."""
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        real = np.empty((), dtype).real.dtype
        base, w = _integers(rng, (64,), dtype), _integers(rng, (4, 21), dtype)
        ct, cts = _integers(rng, (4,), real), _integers(rng, (3, 4), real)
        for idx in (rng.integers(0, 64, 84), np.tile(np.arange(21), 4)):  # repeats; none within a row
            args = (base, ct, cts, w, jnp.asarray(np.asarray(idx).reshape(4, 21), jnp.int32))
            native, xla = _both(partial(_scatter_rules, _weighted), *args)
            expect = jax.jit(partial(_scatter_rules, _scatter_of_products))(*args)
            for a, b, e in zip(native, xla, expect):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(e))
                np.testing.assert_array_equal(np.asarray(b), np.asarray(e))


def test_ring_take_and_the_ring_write_transpose_equal_the_xla_update(x64):
    # ring_take (the transpose of ring_write) reads a slot and zeroes it in place.
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        buf = _integers(rng, (7 * 5,), dtype)
        for slot in (0, 3, 6):
            native, xla = _both(lambda b, s: tuple(hist.ring_take_p.bind(b, s, width=5)), buf, jnp.int32(slot))
            for a, b in zip(native, xla):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            expect = np.asarray(buf).copy()
            np.testing.assert_array_equal(np.asarray(native[0]), expect[slot * 5 : slot * 5 + 5])
            expect[slot * 5 : slot * 5 + 5] = 0
            np.testing.assert_array_equal(np.asarray(native[1]), expect)

    # Its use: the VJP of a ring write w.r.t. buffer and value, alone and under vmap.
    buf, value, ct = (_integers(rng, shape, np.float32) for shape in ((7 * 5,), (5,), (7 * 5,)))

    def vjp(b, v, c):
        _, pullback = jax.vjp(lambda b, v: hist.ring_unfill(hist.ring_write(hist.ring_fill(b), v, jnp.int32(4))), b, v)
        return pullback(c)

    native, xla = _both(vjp, buf, value, ct)
    expect_buf = np.asarray(ct).copy()
    expect_buf[20:25] = 0
    for got in (native, xla):
        np.testing.assert_array_equal(np.asarray(got[0]), expect_buf)
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(ct)[20:25])
    batched = jax.jit(jax.vmap(vjp))(*(jnp.stack([x, 2 * x]) for x in (buf, value, ct)))
    np.testing.assert_array_equal(np.asarray(batched[0][1]), 2 * expect_buf)
    np.testing.assert_array_equal(np.asarray(batched[1][1]), 2 * np.asarray(ct)[20:25])


def test_ring_write_derivatives_equal_an_array_update_for_every_argument_and_order(x64):
    # The write's transposes with only the buffer or only the value differentiated, and
    # the derivatives of its transpose (forward over reverse: ring_slot's and ring_take's
    # JVPs), ran in no other test (coverage of the default suite). Each is compared with
    # the same update of an ordinary array, with the native kernels and with XLA's, alone
    # and under vmap (the buffer per member or shared).
    rng = np.random.default_rng(5)
    b0, v0, db, dv = (jnp.asarray(rng.normal(size=shape)) for shape in ((35,), (5,), (35,), (5,)))

    def ours(b, v):
        return jnp.sum(jnp.sin(hist.ring_unfill(hist.ring_write(hist.ring_fill(b), v, jnp.int32(4)))) ** 2)

    def reference(b, v):
        return jnp.sum(jnp.sin(b.at[20:25].set(v)) ** 2)

    def derivatives(f):
        grads = [jax.grad(f, argnums=a)(b0, v0) for a in (0, 1)]
        _, hvp = jax.jvp(jax.grad(f, argnums=(0, 1)), (b0, v0), (db, dv))
        members = jax.vmap(jax.grad(f, argnums=(0, 1)))(jnp.stack([b0, db]), jnp.stack([v0, dv]))
        shared = jax.vmap(jax.grad(f, argnums=1), in_axes=(None, 0))(b0, jnp.stack([v0, dv]))
        return jax.tree_util.tree_leaves((grads, hvp, members, shared))

    want = jax.jit(lambda: derivatives(reference))()
    for reads in (contextlib.nullcontext, xla_reads):
        with reads():
            got = jax.jit(lambda: derivatives(ours))()
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


def test_exprel_kernel_equals_xla_bit_for_bit(x64):
    """`exprel` of an array of `NATIVE_EXPREL_MIN_SIZE` elements or more (on one thread,
    and in chunks shared with XLA's pool from 2,048) has the bits of XLA's operations: on
    magnitudes from 1e-6 to 800, the range reduction's boundaries, the overflow threshold,
    signed zeros, extremes, inf and NaN. Under vmap the batched size counts; a smaller
    array stays XLA operations (fused with its neighbours)."""
    from brainmass_eqx.models import _math

    rng = np.random.default_rng(4)
    half_ln2 = np.log(2.0) / 2
    for dtype in (np.float32, np.float64):
        info = np.finfo(dtype)
        edges = [half_ln2, -half_ln2, 1.5 * np.log(2.0), 87.0, 88.0, 88.5, -87.0, -88.0, -100.0, 707.0, 709.0, 710.0]
        edges = np.asarray(edges, dtype)
        special = np.concatenate([
            [0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, -info.tiny, info.max, -info.max],
            edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
        ]).astype(dtype)  # fmt: skip
        spread = np.concatenate([rng.standard_normal(512) * s for s in (1e-6, 1e-3, 0.1, 0.35, 1, 5, 50, 300, 800)])
        z = np.concatenate([special, spread.astype(dtype)])
        bits = np.uint32 if dtype == np.float32 else np.uint64
        for size in (_math.NATIVE_EXPREL_MIN_SIZE, z.size):
            native, xla = _both(_math.exprel, jnp.asarray(z[:size]))
            np.testing.assert_array_equal(np.asarray(native).view(bits), np.asarray(xla).view(bits))
        small = jnp.asarray(z[: _math.NATIVE_EXPREL_MIN_SIZE - 1])
        assert "Bmx" not in jax.jit(_math.exprel).lower(small).as_text()
        members = jnp.asarray(z[: 2 * _math.NATIVE_EXPREL_MIN_SIZE].reshape(16, -1))
        native, xla = _both(jax.vmap(_math.exprel), members)
        np.testing.assert_array_equal(np.asarray(native).view(bits), np.asarray(xla).view(bits))
        # Runs of 128 whose every |z| < 1/3 take the series of z alone: signed zeros,
        # subnormals and the values next to 1/3 there too.
        third = dtype(1) / dtype(3)
        small_edges = np.asarray(
            [0.0, -0.0, info.tiny, -info.tiny, info.smallest_subnormal, -info.smallest_subnormal,
             np.nextafter(third, dtype(0)), -np.nextafter(third, dtype(0)), 1e-30, -1e-30], dtype
        )  # fmt: skip
        below_third = rng.uniform(-0.33, 0.33, _math.NATIVE_EXPREL_MIN_SIZE).astype(dtype)
        below_third[::97][: small_edges.size] = small_edges
        native, xla = _both(_math.exprel, jnp.asarray(below_third))
        np.testing.assert_array_equal(np.asarray(native).view(bits), np.asarray(xla).view(bits))


def test_double_precision_reads(x64):
    rng = np.random.default_rng(2)
    for dtype in (np.float64, np.complex128):
        buf, w = _integers(rng, (200,), dtype), _integers(rng, (6, 33), dtype)
        idx = jnp.asarray(rng.integers(0, 200, (6, 33)), jnp.int32)
        native, xla = _both(lambda b, i, w: hist.read_sum(hist.ring_fill(b), i, w)[0], buf, idx, w)
        assert native.dtype == np.float64
        np.testing.assert_array_equal(np.asarray(native), np.asarray(xla))


@pytest.mark.parametrize("interpolation", ["linear", "nearest"])
def test_network_runs_agree_to_rounding(interpolation):
    rng = np.random.default_rng(3)
    n = 12
    conn = (rng.random((n, n)) * (1.0 - np.eye(n))).astype(np.float32)  # no self-connections
    dist = rng.uniform(5.0, 60.0, (n, n)).astype(np.float32)
    net = Network(bm.Hopf(n, a=0.1, w=0.3, init_x=np.linspace(0.0, 0.2, n), init_y=0.05), conn, distance=dist,
                  speed=10.0, k=0.3, interpolation=interpolation)  # fmt: skip
    native, xla = _both(lambda net: bm.simulate(net, 30.0, dt=0.1).ys["x"], net)
    assert np.max(np.abs(np.asarray(xla))) > 0.05
    np.testing.assert_allclose(np.asarray(native), np.asarray(xla), rtol=1e-5, atol=1e-6)


def test_a_failed_build_falls_back_to_xla_with_a_warning(tmp_path, monkeypatch):
    saved = dict(_native._state)
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    monkeypatch.setenv("BRAINMASS_EQX_CACHE", str(tmp_path))
    _native._state.pop("lib", None)
    try:
        with pytest.warns(RuntimeWarning, match="native delay-read kernels are unavailable"):
            assert _native._library() is None
        assert not bm.native_kernels_available()
        assert not list(tmp_path.glob("*.so"))  # no partial library left behind
    finally:
        _native._state.clear()
        _native._state.update(saved)


def test_set_native_kernels_takes_a_bool():
    with pytest.raises(TypeError, match="True or False"):
        bm.set_native_kernels("no")


def _blocked_scan(ring0, writes, lag, src, w, block, blocked, carry=None, stamp=7):
    """Steps of a delayed read and a ring write of ``writes`` (as a Network makes them), read
    ``block`` steps at a time or step by step: the sums of every step and the final carry
    (from which another scan may go on)."""
    n = src.shape[0]
    C = ring0.shape[-1] // n
    row = 2 * C + 16
    base = jnp.asarray(src - lag * n, jnp.int32)
    offsets = jnp.asarray(src * row - lag, jnp.int32)
    lag = jnp.asarray(lag)

    def body(carry, new):
        ring, count, state = carry
        r = count % C
        idx = base + r * n + jnp.where(lag > r, C * n, 0)
        if blocked:
            sums, ring, state = hist.read_sum_blocked(
                ring, idx, w, state, count, offsets, n_slots=C, first_channel=0, n_sources=n, block=block, stamp=stamp
            )
        else:
            sums, ring = hist.read_sum(ring, idx, w)
        ring = hist.ring_write(ring, new, (count + 1) % C)
        return (ring, count + 1, state), sums

    if carry is None:
        state = tuple(hist.ring_fill(a, [ring0]) for a in hist.blocked_state(n, C, n, block, ring0.dtype))
        carry = (hist.ring_fill(ring0), jnp.int32(0), state)
    carry, sums = jax.lax.scan(body, carry, writes)
    return sums, carry


def _packed_history(rng, dtype, n, C, steps):
    """A ring of C slots holding steps 1-C .. 0 (step m in slot m mod C) and ``steps``
    writes after them, of integer samples; a packed slot holds x_m + i x_(m-1)."""
    x = np.asarray(_integers(rng, (C + steps + 1, n), np.float32))
    packed = x[1:] if dtype == np.float32 else x[1:] + 1j * x[:-1]
    return jnp.asarray(np.roll(packed[:C], 1, axis=0).reshape(-1), dtype), jnp.asarray(packed[C:], dtype)


def _pairs(rng, n, C, block, dtype):
    """Lags of at least block - 1 steps, and weights with a zero-weight diagonal of lag 0
    (a Network's masked self-connections), as the blocked and the per-step read take them."""
    lag = rng.integers(block - 1, C - 2, (n, n)).astype(np.int32)
    w = np.array(_integers(rng, (n, n), dtype))
    w[np.diag_indices(n)] = 0
    lag[np.diag_indices(n)] = 0
    return lag, np.where(w != 0, lag, block - 1).astype(np.int32), w


@pytest.mark.parametrize("dtype, block", [(np.complex64, 8), (np.float32, 16), (np.complex64, 4), (np.float32, 5)])
def test_blocked_read_equals_the_step_by_step_read(dtype, block):
    """Several blocks, across the ring's wrap-around: every step's sums equal the per-step
    read's exactly (integer samples)."""
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: the blocked read is read_sum's")
    rng = np.random.default_rng(4)
    n, C = 9, 23
    lag, lag_safe, w = _pairs(rng, n, C, block, dtype)
    src = np.broadcast_to(np.arange(n, dtype=np.int32), (n, n))
    ring0, writes = _packed_history(rng, dtype, n, C, 3 * C + 5)
    run = jax.jit(lambda r, blocked: _blocked_scan(r, writes, lag_safe if blocked else lag, src, w, block, blocked)[0],
                  static_argnums=1)  # fmt: skip
    assert "BmxBlockedReadSum" in run.lower(ring0, True).as_text()
    blocked, stepwise = run(ring0, True), run(ring0, False)
    assert np.abs(np.asarray(stepwise)).max() > 10
    np.testing.assert_array_equal(np.asarray(blocked), np.asarray(stepwise))


@pytest.mark.parametrize(
    "n, members, dtype, block",
    [
        (9, 20, np.complex64, 8),
        (9, 10, np.complex64, 8),
        (64, 130, np.complex64, 8),
        (24, 32, np.complex64, 8),
        (9, 20, np.complex128, 8),
        (9, 36, np.complex64, 16),
        (9, 20, np.float32, 5),
        (9, 16, np.complex64, 12),
    ],
)
def test_blocked_ensemble_read_equals_the_step_by_step_read(n, members, dtype, block, request):
    """Under vmap (shared indices and weights) the ensemble kernel: members in chunks of one
    cache line (16 float32, 8 float64; summed in halves without AVX-512), full chunks written
    straight into the block cache (20 and 36 members: at rows that are not line-aligned),
    with a narrower last one (summed with the same vectors, the lanes past its members
    discarded; 10 members: only that one, in two halves); blocks of 8 and 16 steps (compiled
    for their length) and of 5 and 12; the larger case is split among threads. Full chunks
    of blocks of 8 sum 16 sources at a time: 24 regions are a whole group and part of one."""
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: the blocked read is read_sum's")
    if dtype == np.complex128:
        request.getfixturevalue("x64")
    rng = np.random.default_rng(6)
    C = 23
    lag, lag_safe, w = _pairs(rng, n, C, block, dtype)
    src = np.broadcast_to(np.arange(n, dtype=np.int32), (n, n))
    rings, writes = zip(*(_packed_history(np.random.default_rng(i), dtype, n, C, 2 * C + 3) for i in range(members)))
    rings, writes = jnp.stack(rings), jnp.stack(writes)

    def run(blocked):
        one = lambda r, x: _blocked_scan(r, x, lag_safe if blocked else lag, src, w, block, blocked)[0]  # noqa: E731
        return jax.jit(jax.vmap(one))

    assert "BmxBlockedReadSum" in run(True).lower(rings, writes).as_text()
    blocked, stepwise = run(True)(rings, writes), run(False)(rings, writes)
    assert blocked.shape == (members, 2 * C + 3, n)
    np.testing.assert_array_equal(np.asarray(blocked), np.asarray(stepwise))


@pytest.mark.parametrize("dtype", [np.complex64, np.float32, np.complex128])
def test_blocked_read_of_members_with_delays_of_their_own(dtype, request):
    """Under vmap with per-member lags, weights and blocks (a vmap over speeds): each member
    reads as a single run (`read_members_blocked`), with blocks of 1-3 steps (a zero lag
    reads blocks of one), 5, and 16 (float64: read as blocks of 8, its vector's most).
    Every step's sums equal the per-step read's, across several blocks and the ring's
    wrap-around; one member shares the offsets of another with weights of its own."""
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: the blocked read is read_sum's")
    if dtype == np.complex128:
        request.getfixturevalue("x64")
    n, C = 9, 23
    blocks = [1, 2, 3, 5, 16, 16]
    pairs = [_pairs(np.random.default_rng(10 + i), n, C, b, dtype) for i, b in enumerate(blocks)]
    own = np.array(_integers(np.random.default_rng(30), (n, n), dtype))
    own[np.diag_indices(n)] = 0  # the diagonal's lag 0 (see _pairs)
    pairs[-1] = pairs[-2][:2] + (own,)
    lag, lag_safe, w = (jnp.stack([p[i] for p in pairs]) for i in range(3))
    src = np.broadcast_to(np.arange(n, dtype=np.int32), (n, n))
    rings, writes = zip(*(_packed_history(np.random.default_rng(i), dtype, n, C, 3 * C + 5) for i in blocks))
    rings, writes = jnp.stack(rings), jnp.stack(writes)
    block = jnp.asarray(blocks, jnp.int32)

    def run(blocked):
        one = lambda r, x, lag, w, b: _blocked_scan(r, x, lag, src, w, b, blocked)[0]  # noqa: E731
        return jax.jit(jax.vmap(one))

    assert "BmxBlockedMembersSum" in run(True).lower(rings, writes, lag_safe, w, block).as_text()
    blocked, stepwise = run(True)(rings, writes, lag_safe, w, block), run(False)(rings, writes, lag, w, block)
    assert blocked.shape == (len(blocks), 3 * C + 5, n)
    assert np.abs(np.asarray(stepwise)).max() > 10
    np.testing.assert_array_equal(np.asarray(blocked), np.asarray(stepwise))


def test_a_blocked_state_made_for_other_reads_is_rebuilt():
    """A run that goes on with other weights and lags mid-block (a new stamp): the state is
    rebuilt from the buffer, and every sum is the per-step read's."""
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: the blocked read is read_sum's")
    rng = np.random.default_rng(7)
    n, C, block, dtype = 7, 19, 6, np.complex64
    src = np.broadcast_to(np.arange(n, dtype=np.int32), (n, n))
    first, second = _pairs(rng, n, C, block, dtype), _pairs(rng, n, C, block, dtype)
    ring0, writes = _packed_history(rng, dtype, n, C, 40)
    head, tail = writes[:15], writes[15:]  # 15: in the middle of the third block

    def run(blocked):
        pick = 1 if blocked else 0
        s1, carry = _blocked_scan(ring0, head, first[pick], src, first[2], block, blocked, stamp=11)
        s2, _ = _blocked_scan(ring0, tail, second[pick], src, second[2], block, blocked, carry=carry, stamp=12)
        return jnp.concatenate([s1, s2])

    np.testing.assert_array_equal(np.asarray(jax.jit(lambda: run(True))()), np.asarray(jax.jit(lambda: run(False))()))


def test_a_read_differentiated_in_its_weights_leaves_the_block_state_out():
    """A run whose middle stretch is differentiated with respect to the weights (its sums
    and their tangent read from one gather, step by step): the state from before it must
    not serve the stretch after it (both mid-block, the same stamp), and every sum and
    tangent equals the per-step read's."""
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: the blocked read is read_sum's")
    rng = np.random.default_rng(13)
    n, C, block, dtype = 7, 19, 6, np.complex64
    src = np.broadcast_to(np.arange(n, dtype=np.int32), (n, n))
    lag, lag_safe, w = _pairs(rng, n, C, block, dtype)
    tw = np.array(_integers(rng, (n, n), dtype))
    tw[np.diag_indices(n)] = 0  # here the indices are made from the safe lags too (see _pairs)
    ring0, writes = _packed_history(rng, dtype, n, C, 40)
    parts = writes[:10], writes[10:15], writes[15:]  # each boundary in the middle of a block

    def run(blocked):
        lags = lag_safe if blocked else lag
        s1, carry = _blocked_scan(ring0, parts[0], lags, src, w, block, blocked)
        (s2, carry), (t2, _) = jax.jvp(lambda w: _blocked_scan(ring0, parts[1], lags, src, w, block, blocked, carry),
                                       (w,), (tw,))  # fmt: skip
        s3, _ = _blocked_scan(ring0, parts[2], lags, src, w, block, blocked, carry)
        return jnp.concatenate([s1, s2, s3]), t2

    (blocked, t_blocked), (stepwise, t_stepwise) = (jax.jit(lambda b=b: run(b))() for b in (True, False))
    np.testing.assert_array_equal(np.asarray(blocked), np.asarray(stepwise))
    np.testing.assert_array_equal(np.asarray(t_blocked), np.asarray(t_stepwise))
    assert np.abs(np.asarray(t_stepwise)).max() > 10


def test_a_network_blocks_its_reads_only_where_every_delay_allows(monkeypatch):
    n = 6
    conn = (1.0 - np.eye(n)).astype(np.float32)  # no self-connections
    dist = np.full((n, n), 40.0, np.float32)  # 40 steps
    node = bm.Hopf(n, a=0.1, w=0.3, init_x=0.1, init_y=0.0)
    plan = Network(node, conn, distance=dist, speed=10.0)._plan(0.1)
    assert plan.block == (16 if HAS_COMPILER else 0)  # a 64-byte vector of float32 steps
    dist[0, 1] = 5.5  # one pair lags 5 steps (0.55 ms): blocks of 6
    assert Network(node, conn, distance=dist, speed=10.0)._plan(0.1).block == (6 if HAS_COMPILER else 0)
    dist[0, 1] = 2.5  # 2 steps: too short a block to pay
    assert Network(node, conn, distance=dist, speed=10.0)._plan(0.1).block == 0
    conn[0, 1] = 0.0  # ... unless that pair has no weight
    assert Network(node, conn, distance=dist, speed=10.0)._plan(0.1).block == (16 if HAS_COMPILER else 0)
    with xla_reads():
        assert Network(node, conn, distance=dist, speed=10.0)._plan(0.1).block == 0


def test_blocked_network_gradients_and_ensembles_agree_with_the_xla_reads():
    """Reverse mode and vmap read step by step (the read's rules); the forward pass blocks."""
    rng = np.random.default_rng(5)
    n = 8
    conn = (rng.random((n, n)) * (1.0 - np.eye(n))).astype(np.float32)  # no self-connections
    dist = rng.uniform(8.0, 40.0, (n, n)).astype(np.float32)

    def loss(k, a):
        net = Network(bm.Hopf(n, a=a, w=0.3, init_x=np.linspace(0.0, 0.2, n), init_y=0.05), conn, distance=dist,
                      speed=10.0, k=k)  # fmt: skip
        return jnp.mean(bm.simulate(net, 20.0, dt=0.1).ys["x"] ** 2)

    grad = jax.grad(loss, argnums=(0, 1))
    ks = jnp.asarray([0.1, 0.3, 0.5])
    g_native, g_xla = _both(grad, 0.3, 0.1)
    e_native, e_xla = _both(jax.vmap(loss, in_axes=(0, None)), ks, 0.1)
    # Reverse mode through an ensemble: the batched ring write (in place natively) and read.
    ge_native, ge_xla = _both(jax.grad(lambda k: jnp.sum(jax.vmap(loss, in_axes=(0, None))(k, 0.1))), ks)
    np.testing.assert_allclose(np.asarray(ge_native), np.asarray(ge_xla), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(ge_native), [float(grad(k, 0.1)[0]) for k in ks], rtol=1e-4)
    if HAS_COMPILER:
        assert "BmxBlockedReadSum" in jax.jit(loss).lower(0.3, 0.1).as_text()
    for a, b in zip(g_native, g_xla):
        np.testing.assert_allclose(float(a), float(b), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(e_native), np.asarray(e_xla), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(e_native), [float(loss(k, 0.1)) for k in ks], rtol=1e-5)


@pytest.mark.parametrize("history", [None, {"x": 1.0}])
def test_a_network_vmapped_over_speeds_reads_each_member_blocked(history):
    """A vmap over conduction speeds: every member lags differently, and reads blocks of its
    own (speed 40 gives a lag of 0 steps somewhere: blocks of one; 2 and 10 give longer
    ones); with `history=`, across the seam between h(0) and the initial state. The
    members equal single runs at those speeds (concrete: host plans), a traced single run
    its concrete one, and both kernels the XLA reads."""
    rng = np.random.default_rng(11)
    n = 8
    conn = (rng.random((n, n)) * (1.0 - np.eye(n))).astype(np.float32)
    dist = rng.uniform(3.0, 40.0, (n, n)).astype(np.float32)
    speeds = jnp.asarray([2.0, 10.0, 40.0])

    def run(speed):
        node = bm.Hopf(n, a=0.1, w=0.3, init_x=np.linspace(-0.2, 0.2, n), init_y=0.05)
        net = Network(node, conn, distance=dist, speed=speed, k=0.4, max_delay=20.5, history=history)
        return bm.simulate(net, 30.0, dt=0.1).ys["x"]

    native, xla = _both(jax.vmap(run), speeds)
    if HAS_COMPILER:
        assert "BmxBlockedMembersSum" in jax.jit(jax.vmap(run)).lower(speeds).as_text()
        # Each member's block: its shortest lag + 1, at most 16 (as a concrete plan's, here
        # also below 4 steps).
        lag = lambda v: np.floor(dist[conn > 0] / v / 0.1).min()  # noqa: E731
        expected = [min(int(lag(float(v))) + 1, 16) for v in speeds]
        plan = lambda v: Network(bm.Hopf(n), conn, distance=dist, speed=v, max_delay=20.5)._plan(0.1)  # noqa: E731
        assert jax.vmap(lambda v: plan(v).steps)(speeds).tolist() == expected
        assert expected[0] == 16 and expected[2] == 1
        assert "BmxBlockedReadSum" in jax.jit(run).lower(10.0).as_text()
    assert np.abs(np.asarray(xla)).max() > 0.1
    np.testing.assert_allclose(np.asarray(native), np.asarray(xla), rtol=1e-5, atol=1e-6)
    singles = np.stack([np.asarray(run(float(v))) for v in speeds])
    np.testing.assert_allclose(np.asarray(native), singles, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.jit(run)(10.0)), singles[1], rtol=1e-5, atol=1e-6)


def test_a_vmap_of_a_vmap_over_speeds_reads_as_single_runs():
    """An outer vmap (over k) of the members' blocked read: read per member by XLA's rules
    (`_members_blocked_batch`), every member as its single run."""
    rng = np.random.default_rng(14)
    n = 6
    conn = (rng.random((n, n)) * (1.0 - np.eye(n))).astype(np.float32)
    dist = rng.uniform(5.0, 40.0, (n, n)).astype(np.float32)

    def run(speed, k):
        node = bm.Hopf(n, a=0.1, w=0.3, init_x=np.linspace(0.0, 0.2, n), init_y=0.05)
        net = Network(node, conn, distance=dist, speed=speed, k=k, max_delay=20.0)
        return bm.simulate(net, 20.0, dt=0.1).ys["x"]

    speeds, ks = jnp.asarray([[4.0, 8.0, 12.0], [5.0, 9.0, 20.0]]), jnp.asarray([0.2, 0.5])
    out = jax.jit(jax.vmap(jax.vmap(run, in_axes=(0, None))))(speeds, ks)
    singles = [[np.asarray(run(float(v), float(k))) for v in row] for row, k in zip(speeds, ks)]
    np.testing.assert_allclose(np.asarray(out), np.asarray(singles), rtol=1e-5, atol=1e-6)


def test_gradients_of_a_network_vmapped_over_speeds_agree_with_the_xla_reads():
    """Reverse mode inside and outside the vmap over speeds (the members' blocked read
    serves the primal only; cotangents read step by step)."""
    rng = np.random.default_rng(12)
    n = 6
    conn = (rng.random((n, n)) * (1.0 - np.eye(n))).astype(np.float32)
    dist = rng.uniform(5.0, 40.0, (n, n)).astype(np.float32)

    def loss(speed):
        node = bm.Hopf(n, a=0.1, w=0.3, init_x=np.linspace(-0.2, 0.2, n), init_y=0.05)
        net = Network(node, conn, distance=dist, speed=speed, k=0.4, max_delay=20.5)
        return jnp.mean(bm.simulate(net, 20.0, dt=0.1).ys["x"] ** 2)

    speeds = jnp.asarray([3.0, 8.0, 20.0])
    inside, inside_xla = _both(jax.vmap(jax.grad(loss)), speeds)
    outside, outside_xla = _both(jax.grad(lambda v: jnp.sum(jax.vmap(loss)(v))), speeds)
    assert np.abs(np.asarray(inside_xla)).min() > 0
    for got in (inside, outside, outside_xla):
        np.testing.assert_allclose(np.asarray(got), np.asarray(inside_xla), rtol=1e-4)


def test_blocked_network_in_double_precision(x64):
    """float64: blocks of at most 8 steps (a 64-byte vector), results as the XLA reads'."""
    rng = np.random.default_rng(8)
    n = 10
    conn, dist = rng.random((n, n)), rng.uniform(20.0, 60.0, (n, n))  # 20-60 steps
    np.fill_diagonal(conn, 0.0)  # no self-connections
    net = Network(bm.Hopf(n, a=0.1, w=0.3, init_x=np.linspace(0.0, 0.2, n), init_y=0.05), conn, distance=dist,
                  speed=10.0, k=0.3)  # fmt: skip
    assert net._plan(0.1).block == (8 if HAS_COMPILER else 0)
    native, xla = _both(lambda net: bm.simulate(net, 30.0, dt=0.1).ys["x"], net)
    assert native.dtype == np.float64
    np.testing.assert_allclose(np.asarray(native), np.asarray(xla), rtol=1e-12, atol=1e-14)


def test_sparse_network_in_double_precision_calls_the_kernels(x64):
    """A sparse conn's source lists are int32 under x64 too: they were int64 there (NumPy's
    default int from the padding), which the kernels do not take, so every sparse network
    in float64 read its history with XLA's gather without a word."""
    import scipy.sparse as sp
    from jax.experimental import sparse as jsparse

    rng = np.random.default_rng(9)
    n = 6
    conn = rng.random((n, n)) * (rng.random((n, n)) < 0.5)
    np.fill_diagonal(conn, 0.0)
    dist = rng.uniform(5.0, 30.0, (n, n)) * (conn > 0)
    node = bm.Hopf(n, a=0.1, w=0.3, init_x=np.linspace(0.0, 0.2, n), init_y=0.05)
    dense = bm.simulate(Network(node, conn, distance=dist, speed=10.0, k=0.3), 20.0, dt=0.1).ys["x"]
    for c, d in ((jsparse.BCOO.fromdense(conn), jsparse.BCOO.fromdense(dist)), (sp.csr_matrix(conn), sp.csr_matrix(dist))):
        net = Network(node, c, distance=d, speed=10.0, k=0.3)
        assert net.sources.dtype == np.int32
        native, xla = _both(lambda net: bm.simulate(net, 20.0, dt=0.1).ys["x"], net)
        assert native.dtype == np.float64
        np.testing.assert_allclose(np.asarray(native), np.asarray(dense), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(xla), np.asarray(dense), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("history", [{"x": 1.0}, lambda t: jnp.full(3, 1.0) + 0.01 * t])
def test_blocked_linear_reads_of_a_history_that_is_not_the_initial_state(history):
    """With `history=`, h(0) (slot 0) and the initial state y0 (the x_{m-1} the first step
    writes into slot 1) differ: a delayed time in (0, dt) interpolates between y0 and x_1.
    The blocked kernel, which keeps real parts only, read h(0) there (0.028 off in x)."""
    conn = np.array([[0.0, 1.0, 0.5], [0.8, 0.0, 0.0], [0.0, 0.6, 0.0]], np.float32)
    delays = np.array([[0.0, 2.05, 3.0], [1.55, 0.0, 0.0], [0.0, 2.5, 0.0]], np.float32)  # 15-30 steps

    def run(k):
        node = bm.Hopf(3, a=0.1, w=0.3, init_x=np.array([0.1, -0.2, 0.3]), init_y=0.05)
        return bm.simulate(Network(node, conn, delays=delays, k=k, history=history), 8.0, dt=0.1).ys["x"]

    assert Network(bm.Hopf(3), conn, delays=delays)._plan(0.1).block == (16 if HAS_COMPILER else 0)
    for fn, arg in ((run, 0.5), (jax.vmap(run), jnp.asarray([0.2, 0.5, 0.9]))):  # single run, ensemble
        native, xla = _both(fn, arg)
        np.testing.assert_allclose(np.asarray(native), np.asarray(xla), rtol=1e-5, atol=1e-6)


def test_a_damaged_cached_library_is_built_again(tmp_path):
    """A truncated library in the cache (a copy cut short, a full disk): loading it killed
    the process (SIGBUS, which no except catches); its digest no longer matches, so it is
    rebuilt. Run in a child process, which a failure must not take the test run down with."""
    if not HAS_COMPILER or not bm.native_kernels_available():
        pytest.skip("no C++ compiler: nothing is cached")
    good = _native._library_path()
    (tmp_path / good.name).write_bytes(good.read_bytes()[:5000])
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "from brainmass_eqx import _native\n"
        "assert _native._library() is not None\n"
        "assert _native._intact(_native._library_path())\n"
    )
    env = {**os.environ, "BRAINMASS_EQX_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler")
def test_the_kernels_compile_for_the_compilers_default_instruction_set(tmp_path):
    """The second build tried (no -march=native: a compiler or CPU it does not suit) must
    compile too: an asm that pins a 32-byte vector in one register compiled only with AVX,
    so without -march every kernel fell back to XLA. (-O0: the same error, in seconds.)"""
    assert _native._ARCHES[-1] == []
    command = [*_native._compiler_command(), *_native._compile_flags(jax.ffi.include_dir(), "-O0")]
    proc = subprocess.run([*command, "-o", str(tmp_path / "baseline.so")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler")
def test_a_compiler_given_with_arguments_in_cxx_is_run_as_a_command(monkeypatch):
    """``CXX="ccache g++"`` (or ``"g++ -m64"``) names a command with arguments. It was run as
    one file name, which does not exist, so the kernels fell back to the slower XLA reads."""
    monkeypatch.setenv("CXX", f"env {shutil.which('c++') or shutil.which('g++')}")
    command = _native._compiler_command()
    assert command[0] == "env" and len(command) == 2
    assert subprocess.run([*command, "--version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler")
def test_the_cache_key_names_the_instruction_set_without_proc_cpuinfo(tmp_path):
    """Without ``/proc/cpuinfo`` (macOS) the key was ``platform.processor()`` ('arm',
    'i386'), so two CPU generations sharing a cache could load each other's -march=native
    library. The compiler's expansion of -march=native names the instruction set."""
    signature = _native._cpu_signature(cpuinfo=tmp_path / "absent")
    assert "-march=" in signature or "-target-cpu" in signature, signature
    assert signature == _native._cpu_signature(cpuinfo=tmp_path / "absent")
