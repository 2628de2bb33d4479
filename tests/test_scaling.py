"""What a run costs on the host as it gets longer, pinned by counting (calls, bytes), not
by timing: host work and memory must not grow with the number of steps beyond what the
run records."""

from __future__ import annotations

import math
import tracemalloc

import jax.numpy as jnp
import numpy as np

import brainmass_eqx as bx
from brainmass_eqx import solvers


def _nearest_divisor(n, per_item, ratio):
    """`_chunk_length`'s rule, spelt out: the divisor of ``n`` nearest the root within
    [root / 2, 2 root] (the smaller of two as near), else the root; all ``n`` when short."""
    if n * per_item <= 64:
        return n
    root = max(1, math.isqrt(int(n * max(ratio, 1e-9) / per_item)))
    if root >= n:
        return n
    near = [d for d in range(max(1, root // 2), 2 * root + 1) if n % d == 0]
    return min(near, key=lambda d: (abs(d - root), d)) if near else root


def test_the_chunk_length_is_the_divisor_nearest_the_root():
    for n in range(1, 700):
        for per_item, ratio in ((1, 1.0), (7, 1.0), (1, 3.5), (1, (n + 1) / 2), (500, 0.01)):
            assert solvers._chunk_length(n, per_item, ratio) == _nearest_divisor(n, per_item, ratio), (n, per_item, ratio)


def test_the_chunk_length_search_allocates_nothing_that_grows_with_the_run():
    # A record carried in the loop makes the carry/state ratio about n / 2, and the root
    # near n: the candidates were sorted as a list of ~1.5 root Python ints (90 MB and
    # ~3 s for 10^6 items; 905 MB and 43 s for 10^7).
    n = 10**6
    tracemalloc.start()
    try:
        chunk = solvers._chunk_length(n, 1, (n + 1) / 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chunk == n // 2
    assert peak < 100_000, peak


def test_a_plain_loop_looks_for_no_chunk_length(monkeypatch):
    # A run not differentiated is one plain scan: the chunk length it never uses was
    # searched anyway, with the whole record in the carry (above), at every first call.
    calls = []
    real = solvers._chunk_length
    monkeypatch.setattr(solvers, "_chunk_length", lambda *a: calls.append(a) or real(*a))
    traj = bx.simulate(bx.Hopf(2, init_x=0.5), 20.0, dt=0.1, sample_every=4)
    assert traj["x"].shape == (50, 2)
    assert calls == []
    body = lambda c, x: ((c[0] + x,), c[0])  # noqa: E731  (the carry: (state, ...))
    carry, ys = solvers._checkpointed_scan(body, (jnp.zeros(()),), jnp.ones(1000), plain=True)
    assert calls == [] and float(carry[0]) == 1000.0 and ys.shape == (1000,)
    # A loop that reverse mode checkpoints still chunks it.
    carry, ys = solvers._checkpointed_scan(body, (jnp.zeros(()),), jnp.ones(1000))
    assert len(calls) == 1 and float(carry[0]) == 1000.0 and ys.shape == (1000,)


def test_all_zero_delays_carry_no_history():
    # delays=zeros read each step's start: the instantaneous coupling held over the step.
    # Through a two-row history it took 8.3 us per step on an 80-region Hopf network, 1.4 us
    # without.
    n = 4
    w = np.random.default_rng(0).random((n, n))

    def net(**kw):
        return bx.Network(bx.Hopf(n, init_x=0.5), w, k=0.3, self_connection=False, **kw)

    zero = net(delays=np.zeros((n, n)))
    assert not zero._plan(0.1).buffered
    held = net(stage_coupling="held")
    for solver in (None, bx.RK4()):
        a, b = (bx.simulate(m, 20.0, dt=0.1, solver=solver)["x"] for m in (zero, held))
        np.testing.assert_array_equal(a, b)
    # A past of its own, or each stage's coupling extrapolated from the last step, need the history.
    assert net(delays=np.zeros((n, n)), history={"x": np.ones(n)})._plan(0.1).buffered
    assert net(delays=np.zeros((n, n)), stage_coupling="updated")._plan(0.1).buffered
    assert net(delays=np.full((n, n), 0.05))._plan(0.1).buffered  # between two steps
