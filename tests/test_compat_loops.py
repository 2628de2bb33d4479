"""``brainstate.transform.for_loop`` / ``scan`` on the facade are compiled once and cached.

brainstate re-traced and recompiled a loop on every call. Here a second call with the same
body, shapes and constants runs the cached program without tracing the body again (the
tests count the body's Python executions, i.e. its traces), while anything the body bakes
in at trace time (a constant parameter, a closed-over number, a global, ``dt``) is part of
the cache key, so changing it gives a new program and the new numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainstate as bs, brainunit as u
from brainmass_eqx.compat.brainstate import transform as T

TRACES: list[int] = []
DRIVE = 0.1


pytestmark = pytest.mark.usefixtures("compat_env")


@pytest.fixture(autouse=True)
def _fresh_trace_counts():
    TRACES.clear()


def _stepwise(node, n, drive):
    """The same run, one eager ``update`` at a time (no loop, no cache)."""
    out = []
    for _ in range(n):
        node.update(drive)
        out.append(np.asarray(node.x.value))
    return np.stack(out)


def test_second_call_with_same_shapes_does_not_retrace():
    node = bm.HopfStep(3, a=0.2, w=0.3)
    bs.nn.init_all_states(node)

    def step(i):
        TRACES.append(1)
        node.update(DRIVE)
        return node.x.value

    first = T.for_loop(step, np.arange(20))
    n_traces = len(TRACES)
    assert n_traces >= 1
    second = T.for_loop(step, np.arange(20))
    assert len(TRACES) == n_traces  # cached: the body did not run in Python again
    # The states carried over: the second call continues the trajectory.
    ref = bm.HopfStep(3, a=0.2, w=0.3)
    bs.nn.init_all_states(ref)
    expected = _stepwise(ref, 40, DRIVE)
    np.testing.assert_allclose(np.asarray(first), expected[:20], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(second), expected[20:], rtol=1e-5, atol=1e-6)
    # Re-initialising the states (new values, same shapes) reuses the program too.
    bs.nn.init_all_states(node)
    again = T.for_loop(step, np.arange(20))
    np.testing.assert_allclose(np.asarray(again), np.asarray(first), rtol=1e-6)
    traces_before = T.LOOP_TRACES["test_second_call_with_same_shapes_does_not_retrace.<locals>.step"]
    T.for_loop(step, np.arange(20))
    assert T.LOOP_TRACES["test_second_call_with_same_shapes_does_not_retrace.<locals>.step"] == traces_before


def test_a_fresh_closure_of_the_same_code_is_reused():
    node = bm.HopfStep(2, a=0.2, w=0.3)
    bs.nn.init_all_states(node)

    def run():
        def inner(i):
            TRACES.append(1)
            node.update(DRIVE)
            return node.x.value

        return T.for_loop(inner, np.arange(10))

    run()
    n = len(TRACES)
    run()
    assert len(TRACES) == n


def test_what_the_body_bakes_in_is_part_of_the_key():
    node = bm.HopfStep(2, a=0.2, w=0.3)
    bs.nn.init_all_states(node)

    def loop(drive):
        def body(i):
            node.update(drive)
            return node.x.value

        bs.nn.init_all_states(node)
        return np.asarray(T.for_loop(body, np.arange(15)))

    base = loop(0.1)
    np.testing.assert_array_equal(loop(0.1), base)
    # A different closed-over number, a different constant parameter, another dt: new numbers.
    other_drive = loop(0.5)
    assert not np.allclose(other_drive, base)
    node.a = bs.nn.Param.init(0.9, node.varshape)
    other_a = loop(0.1)
    ref = bm.HopfStep(2, a=0.9, w=0.3)
    bs.nn.init_all_states(ref)
    np.testing.assert_allclose(other_a, _stepwise(ref, 15, 0.1), rtol=1e-5, atol=1e-6)
    bs.environ.set(dt=0.05 * u.ms)
    other_dt = loop(0.1)
    ref = bm.HopfStep(2, a=0.9, w=0.3)
    bs.nn.init_all_states(ref)
    np.testing.assert_allclose(other_dt, _stepwise(ref, 15, 0.1), rtol=1e-5, atol=1e-6)


def test_a_global_read_by_the_body_is_part_of_the_key():
    global DRIVE
    node = bm.HopfStep(2, a=0.2, w=0.3)

    def body(i):
        node.update(DRIVE)
        return node.x.value

    bs.nn.init_all_states(node)
    low = np.asarray(T.for_loop(body, np.arange(10)))
    try:
        DRIVE = 0.8
        bs.nn.init_all_states(node)
        high = np.asarray(T.for_loop(body, np.arange(10)))
    finally:
        DRIVE = 0.1
    assert high[-1, 0] > low[-1, 0]


def test_scan_is_cached_and_loops_work_inside_jit():
    counter = bs.State(np.zeros(()))

    def body(carry, x):
        TRACES.append(1)
        counter.value = counter.value + x
        return carry + x, carry * x

    carry, ys = T.scan(body, 0.0, np.arange(5.0))
    n = len(TRACES)
    carry2, _ = T.scan(body, 1.0, np.arange(5.0))
    assert len(TRACES) == n
    assert float(carry) == 10.0 and float(carry2) == 11.0
    np.testing.assert_allclose(ys, [0.0, 0.0, 2.0, 9.0, 24.0])
    assert float(counter.value) == 20.0

    @bs.transform.jit
    def twice(xs):
        return T.for_loop(lambda x: x * 2.0, xs)

    np.testing.assert_allclose(twice(np.arange(3.0)), [0.0, 2.0, 4.0])
