"""brainstate's ``prefetch`` / ``prefetch_delay`` / ``init_maybe_prefetch`` on the facade.

Hand-built couplings (brainmass's "Creating a Coupling" and "Custom coupling" pages) read a
node's state through these. The expected trajectory is brainmass 0.1.1's (printed by
brainmass on the same script); the rest checks brainstate's buffer rules directly: reads
go ``ceil(delay / dt)`` steps back, only ``node(...)`` (not ``node.update``) writes, and
the ``init`` fill is read until a write reaches back that far.
"""

from __future__ import annotations

import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainstate as bs, braintools as bt, brainunit as u

DT = 0.1 * u.ms
N = 3
W = np.array([[0.0, 0.5, 0.2], [0.3, 0.0, 0.4], [0.1, 0.6, 0.0]])
DELAY_MS = np.array([[0.0, 0.25, 0.1], [0.3, 0.0, 0.05], [0.2, 0.12, 0.0]])


pytestmark = pytest.mark.usefixtures("compat_env")


class _Net(bs.nn.Module):
    def __init__(self, init=1.0):
        super().__init__()
        self.node = bm.HopfStep(N, a=0.2, w=0.3, init_x=bt.init.Constant(0.3))
        src = self.node.prefetch_delay("x", (DELAY_MS * u.ms, bm.delay_index(N)), init=bt.init.Constant(init))
        self.coupling = bm.DiffusiveCoupling(src, self.node.prefetch("x"), conn=W, k=0.5)

    def update(self):
        c = self.coupling()
        self.node(c)
        return c


def test_hand_built_delayed_network_matches_brainmass():
    res = bm.Simulator(_Net(), dt=DT).run(1.5 * u.ms, monitors={"x": lambda m: m.node.x.value})
    # brainmass 0.1.1, same script (tests/test_compat_prefetch.py's _Net), first 8 steps.
    expected = [
        [0.327703, 0.327703, 0.327703],
        [0.353834, 0.353834, 0.353834],
        [0.371633, 0.364969, 0.378298],
        [0.388357, 0.375676, 0.377757],
        [0.387361, 0.375924, 0.377779],
        [0.386671, 0.376154, 0.377833],
        [0.38589, 0.37624, 0.377888],
        [0.385003, 0.376164, 0.377533],
    ]
    np.testing.assert_allclose(np.asarray(res["x"])[:8], expected, atol=2e-6)


def test_reads_follow_brainstates_buffer_rules():
    net = _Net(init=-1.0)
    res = bm.Simulator(net, dt=DT).run(
        2.0 * u.ms, monitors={"x": lambda m: m.node.x.value, "src": lambda m: m.coupling.x()}
    )
    x, src = np.asarray(res["x"]), np.asarray(res["src"])
    steps = np.ceil(DELAY_MS / 0.1 - 1e-6).astype(int)  # 0.25 ms -> 3 steps, 0.05 ms -> 1
    # The monitor reads after step n's call, i.e. after n + 1 writes: d steps back is the
    # state after step n - d, or the init fill (-1) before the first write.
    for n in range(x.shape[0]):
        for i in range(N):
            for j in range(N):
                m = n - steps[i, j]
                want = x[m, j] if m >= 0 else -1.0
                assert src[n, i, j] == pytest.approx(want, abs=1e-7), (n, i, j)


def test_only_a_call_writes_the_buffer():
    node = bm.HopfStep(2, a=0.2, w=0.3, init_x=bt.init.Constant(0.3))
    src = node.prefetch_delay("x", np.zeros((2, 2)) * u.ms, bm.delay_index(2), init=bt.init.Constant(1.0))
    bs.nn.init_all_states(node)
    bs.nn.init_maybe_prefetch(src)
    np.testing.assert_array_equal(src(), np.ones((2, 2)))  # the initial state is not in the past
    node.update(0.0)
    np.testing.assert_array_equal(src(), np.ones((2, 2)))  # update() runs no after-update hook
    node(0.0)
    np.testing.assert_allclose(src(), np.broadcast_to(node.x.value, (2, 2)))
    assert node.prefetch("x")() is node.x.value


def test_a_plain_delay_reads_the_whole_state_and_units_are_kept():
    node = bm.JansenRitStep(2)
    src = node.prefetch_delay("M", 0.2 * u.ms, init=bt.init.Constant(0.0))
    bs.nn.init_all_states(node)
    bs.nn.init_maybe_prefetch(src)
    out = src()
    assert out.shape == (2,) and u.get_unit(out) == u.get_unit(node.M.value)
    node()
    first = node.M.value
    node()
    node()
    # Three writes, read 2 steps back: the state after the first call.
    np.testing.assert_allclose(u.get_magnitude(src()), u.get_magnitude(first))


def test_batched_states_give_batched_reads():
    # brainstate returned (N, B, N, N)-shaped nonsense here; each member reads its own past.
    node = bm.HopfStep(2, a=0.2, w=0.3, init_x=bt.init.Uniform(0.0, 1.0))
    src = node.prefetch_delay("x", (np.full((2, 2), 0.1) * u.ms, bm.delay_index(2)), init=bt.init.Constant(1.0))
    bs.nn.init_all_states(node, batch_size=3)
    bs.nn.init_maybe_prefetch(src)
    assert src().shape == (3, 2, 2)
    node(0.0)
    first = np.asarray(node.x.value)
    node(0.0)
    for i in range(2):
        np.testing.assert_allclose(src()[:, i, :], first)  # one step back: the first call's state


def test_errors_name_the_fix():
    node = bm.HopfStep(2)
    src = node.prefetch_delay("x", (np.ones((2, 2)) * u.ms, bm.delay_index(2)))
    with pytest.raises(ValueError, match="init_all_states"):
        src()
    with pytest.raises(ValueError, match="does not match index shape"):
        node.prefetch_delay("x", (np.ones((3, 3)) * u.ms, bm.delay_index(2)))
    with pytest.raises(u.UnitMismatchError, match="must be a time"):
        node.prefetch_delay("x", 1.0 * u.mV)
    with pytest.raises(TypeError, match="Prefetch or Callable"):
        bm.DiffusiveCoupling(np.ones((2, 2)), node.prefetch("x"), conn=np.ones((2, 2)))
