"""The compat facade's brainunit, brainstate and braintools subsets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brainmass_eqx.compat import brainstate as bs, braintools as bt, brainunit as u


@pytest.fixture(autouse=True)
def _clean_env():
    bs.environ.reset()
    yield
    bs.environ.reset()


# -- brainunit -----------------------------------------------------------------------------------


def test_quantities_print_and_simplify_like_brainunit():
    assert str((30.0 * u.mm) / (10.0 * u.mm / u.ms)) == "3. ms"
    assert repr(200.0 * u.ms) == 'Quantity(200., "ms")'
    n = (200.0 * u.ms) / (0.1 * u.ms)
    assert not isinstance(n, u.Quantity) and float(n) == 2000.0
    assert float((10 * u.ms) * (0.5 * u.Hz)) == pytest.approx(0.005)
    ts = (np.arange(3) + 1) * (0.1 * u.ms)
    assert str(ts) == "[0.1 0.2 0.3] ms"
    assert str((10 * u.ms).to(u.second)) == "0.01 s"
    assert str(u.get_unit(jnp.ones(2))) == "1" and repr(u.get_unit(3 * u.Hz)) == 'Unit("Hz")'
    assert str((200 * u.ms).dim) == "s"


def test_unit_mismatch_raises_brainunits_error():
    with pytest.raises(u.UnitMismatchError, match=r"Cannot calculate \n10 ms \+ 5 Hz, because units do not match: ms != Hz"):
        10 * u.ms + 5 * u.Hz
    with pytest.raises(u.UnitMismatchError, match="ms != mV"):
        (10 * u.ms).to(u.mV)


def test_quantities_stay_concrete_inside_traces_and_batch_under_vmap():
    def f(x):
        q = 1.0 * u.ms  # a host value even inside jit: its number of steps is known
        assert not isinstance(q.value, jax.core.Tracer)
        return x * q

    assert str(jax.jit(f)(2.0)) == "2. ms"
    assert jax.vmap(lambda a: (a * u.ms).value)(jnp.ones(3)).shape == (3,)
    assert u.math.expand_dims(jnp.ones(2) * u.mV, -1).shape == (2, 1)


# -- brainstate: states through transformations ----------------------------------------------------


class _Gain(bs.nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = bs.nn.Param(0.5, fit=True)
        self.acc = bs.HiddenState(jnp.zeros(2))

    def update(self, x=1.0):
        self.acc.value = self.acc.value + self.gain.value() * x
        return self.acc.value


def test_states_and_paths():
    m = _Gain()
    assert list(m.states(bs.ParamState)) == [("gain", "val")]
    assert list(m.states()) == [("gain", "val"), ("acc",)]


def test_jit_threads_states_and_reuses_the_compiled_program():
    m = _Gain()
    traces = []

    def step(x):
        traces.append(1)
        return m.update(x)

    f = bs.transform.jit(step)
    f(1.0)
    f(2.0)
    np.testing.assert_allclose(m.acc.value, [1.5, 1.5])
    n = len(traces)
    f(3.0)
    assert len(traces) == n  # no retrace for the same shapes
    np.testing.assert_allclose(m.acc.value, [3.0, 3.0])


def test_for_loop_and_scan_carry_states():
    m = _Gain()
    ys = bs.transform.for_loop(lambda i: m.update(i), jnp.arange(4.0))
    np.testing.assert_allclose(ys[:, 0], [0.0, 0.5, 1.5, 3.0])
    np.testing.assert_allclose(m.acc.value, [3.0, 3.0])
    total, ys = bs.transform.scan(lambda c, x: (c + m.update(x)[0], x), 0.0, jnp.ones(2))
    assert float(total) == pytest.approx(3.5 + 4.0)


def test_grad_wrt_param_states_matches_the_formula():
    m = _Gain()
    weights = m.states(bs.ParamState)
    g = bs.transform.grad(lambda: jnp.sum(m.update(2.0) ** 2), weights, return_value=True)
    grads, value = g()
    # sum((g * 2)^2) over 2 elements: d/dg = 2 * 2 * (2 g) * 2 = 16 g.
    assert float(grads[("gain", "val")]) == pytest.approx(16 * 0.5)
    assert float(value) == pytest.approx(2.0)
    # the forward pass's write to acc is kept, without leaking tracers
    np.testing.assert_allclose(m.acc.value, [1.0, 1.0])


def test_optimizer_step_updates_registered_weights():
    m = _Gain()
    opt = bt.optim.SGD(lr=0.1)
    opt.register_trainable_weights(m.states(bs.ParamState))
    opt.step({("gain", "val"): jnp.asarray(1.0)})
    assert float(m.gain.value()) == pytest.approx(0.4)


def test_vmap_splits_the_random_key_per_element():
    bs.random.seed(0)
    draws = bs.transform.vmap(lambda a: a + bs.random.normal(size=()))(jnp.zeros(4))
    assert len(set(np.asarray(draws).round(6).tolist())) == 4


def test_param_transforms_and_bounds():
    p = bs.nn.Param(1.0, t=bs.nn.SigmoidT(0.5, 3.0))
    assert float(p.value()) == pytest.approx(1.0)
    assert p.t.bounds == (0.5, 3.0)
    p.set_value(2.5)
    assert float(p.value()) == pytest.approx(2.5)
    assert float(bs.nn.Param(2.0, t=bs.nn.SoftplusT(1.0)).value()) == pytest.approx(2.0)
    c = bs.nn.Param.init(3.0)
    assert isinstance(c, bs.nn.Const) and not c.fit
    with pytest.raises(ValueError, match=r"The shape of the parameter \(3,\) does not match with the given size \(2,\)"):
        bs.nn.Param.init(jnp.ones(3), (2,))


def test_environ_and_missing_dt():
    with pytest.raises(KeyError, match="Key 'dt' not found"):
        bs.environ.get_dt()
    bs.environ.set(dt=0.1 * u.ms)
    with bs.environ.context(dt=1.0 * u.ms):
        assert str(bs.environ.get_dt()) == "1. ms"
    assert str(bs.environ.get_dt()) == "0.1 ms"
    # brainstate refuses an array dt here; it failed at the run with NumPy's scalar message.
    steps = np.array([1.0, 2.0]) * u.ms
    with pytest.raises(TypeError, match="'dt' must be a scalar time"):
        bs.environ.set(dt=steps)
    with pytest.raises(TypeError, match="'dt' must be a scalar time"), bs.environ.context(dt=steps):
        pass
    assert str(bs.environ.get_dt()) == "0.1 ms"


_PRECISION_SCRIPT = """
import jax
import numpy as np
from brainmass_eqx.compat import brainstate as bs, brainunit as u
import brainmass_eqx.compat as bm

def run():
    node = bm.HopfStep(2, a=0.25, w=0.2)
    return bm.Simulator(node, dt=0.1 * u.ms).run(1.0 * u.ms, monitors=["x"])["x"]

bs.environ.set(precision=64)
x = run()
assert jax.config.jax_enable_x64 and x.dtype == np.float64, x.dtype
assert bs.environ.dftype() == np.float64 and bs.environ.get_precision() == 64
with bs.environ.context(precision=32):
    assert run().dtype == np.float32
assert jax.config.jax_enable_x64
bs.environ.reset()
assert not jax.config.jax_enable_x64 and run().dtype == np.float32
for bad in (16, "bf16", 65):
    try:
        bs.environ.set(precision=bad)
    except ValueError as err:
        assert "precision" in str(err), err
    else:
        raise AssertionError(f"precision={bad!r} was accepted")
print("ok")
"""


def test_environ_precision_switches_double_precision():
    # brainstate's environ.set(precision=64) enables jax_enable_x64; the facade stored the
    # value without effect, so runs stayed float32 silently. A fresh process: x64 is global.
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _PRECISION_SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_initializers():
    bs.random.seed(1)
    assert bt.init.Constant(0.5)((2, 3)).shape == (2, 3)
    v = bt.init.Uniform(0.0 * u.Hz, 0.05 * u.Hz)((4,))
    assert isinstance(v, u.Quantity) and str(v.unit) == "Hz"
    assert bt.init.param(bt.init.Constant(1.0), (3,), batch_size=2).shape == (2, 3)
