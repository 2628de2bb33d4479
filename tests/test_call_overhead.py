"""What an eager `simulate` does on the host once its program is compiled (a loop of small
runs: a parameter scan, a fit's loss, the compat facade). Counts, not times: how often an
expensive step runs, and that new parameter values compile nothing."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx as bx
from brainmass_eqx import _memory, _simulate
from brainmass_eqx.models import _base
from brainmass_eqx.network import Network

CONN = np.array([[0.0, 0.5, 0.2], [0.5, 0.0, 0.1], [0.2, 0.1, 0.0]], np.float32)
DIST = np.array([[0.0, 12.0, 7.0], [12.0, 0.0, 9.0], [7.0, 9.0, 0.0]], np.float32)


def _run(model, **kw):
    return bx.simulate(model, 2.0, dt=0.1, **kw)


MODELS = {
    "hopf": lambda a: bx.Hopf(2, a=a, init_x=0.1),
    "noisy": lambda a: bx.with_noise(bx.Hopf(2, a=a, init_x=0.1), noise_x=bx.noise.OUProcess(0.01, tau=5.0)),
    "delayed network": lambda a: Network(bx.Hopf(3, a=a, init_x=0.1), CONN, distance=DIST, speed=10.0, k=0.5),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_new_parameter_values_compile_nothing(name, compiles):
    key = jax.random.key(0)
    first = _run(MODELS[name](0.2), key=key)
    n = len(compiles)
    second = _run(MODELS[name](0.3), key=key)
    assert len(compiles) == n
    assert not np.array_equal(np.asarray(first["x"]), np.asarray(second["x"]))


def test_an_eager_run_builds_no_bound_method_modules(monkeypatch):
    # Reading a Module's method builds an eqx.BoundMethod (a Module, about 25 us): an eager
    # Hopf run built 7 (2 _label, 2 wrap_solver, step_warning, init_state, terms).
    built = []
    bound = type(bx.Hopf(1)._label)
    original = bound.__post_init__

    def counting(self):
        built.append(self.__func__.__qualname__)
        original(self)

    model = bx.with_noise(bx.Hopf(2, init_x=0.1), noise_x=bx.noise.OUProcess(0.01, tau=5.0))
    hopf = bx.Hopf(2, init_x=0.2)  # (building a model reads its methods: not timed here)
    _run(hopf)
    _run(model, key=jax.random.key(1))
    monkeypatch.setattr(bound, "__post_init__", counting)
    _run(hopf)
    assert built == []
    # What simulate reads of a wrapper (its label, hooks, state, terms): none either (what
    # the wrapper's own methods read of the model inside it is theirs).
    _run(model, key=jax.random.key(1))
    simulate_reads = {"Noisy.wrap_solver", "Noisy.step_warning", "Noisy.init_state", "Noisy.terms"}
    assert not [q for q in built if q in simulate_reads or q.endswith("._label")]


def test_plain_method_is_the_method():
    from brainmass_eqx._checks import plain_method

    model = bx.with_noise(bx.Hopf(2), noise_x=bx.noise.OUProcess(0.01, tau=5.0))
    assert plain_method(model, "_label")() == model._label() == "Noisy(Hopf)"
    # A name the wrapper forwards to the model it wraps (its __getattr__).
    assert plain_method(model, "n_regions") == model.n_regions == 2
    with pytest.raises(AttributeError):
        plain_method(model, "no_such_name")


def test_the_wrap_solver_hook_signature_is_read_once_per_function(monkeypatch):
    class OldHook(bx.Hopf):
        def wrap_solver(self, solver):  # written without dt: gets the solver alone
            return solver

    _run(bx.Hopf(2, init_x=0.1))
    _run(OldHook(2, init_x=0.1))
    reads = []
    signature = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda fn, *a, **k: reads.append(fn) or signature(fn, *a, **k))
    want = np.asarray(_run(bx.Hopf(2, init_x=0.1))["x"])
    np.testing.assert_array_equal(np.asarray(_run(OldHook(2, init_x=0.1))["x"]), want)
    assert reads == []


def test_initial_states_compile_once_and_equal_the_eager_broadcast():
    def eager(spec, n):  # what init_state computed op by op
        return jnp.asarray(jnp.broadcast_to(jnp.asarray(spec), (n,)), dtype=jnp.result_type(float))

    bx.Hopf(2, init_x=0.1).init_state()
    size = _base._broadcast_initial._cache_size()
    for init_x in (0.3, -1.5, bx.Param(0.25)):
        got = bx.Hopf(2, init_x=init_x, init_y=np.array([1.0, 2.0], np.float32)).init_state()
        value = init_x.value if isinstance(init_x, bx.Param) else init_x
        for name, spec in (("x", value), ("y", np.array([1.0, 2.0], np.float32))):
            want = eager(spec, 2)
            np.testing.assert_array_equal(got[name], want)
            assert got[name].dtype == want.dtype and got[name].weak_type == want.weak_type
        assert list(got) == ["x", "y"]
    assert _base._broadcast_initial._cache_size() == size + 1  # the array init_y: one more shape
    # Under jit and vmap the values are traced through the same function.
    traced = jax.vmap(lambda a: bx.Hopf(2, init_x=a).init_state())(jnp.arange(3.0))
    np.testing.assert_array_equal(traced["x"], np.repeat(np.arange(3.0, dtype=np.float32)[:, None], 2, axis=1))
    # A random initial state is drawn as before, the others broadcast beside it.
    drawn = bx.Hopf(2, init_x=bx.models.Uniform(0.0, 0.05), init_y=0.5).init_state(jax.random.key(0))
    assert list(drawn) == ["x", "y"] and drawn["x"].shape == (2,)
    np.testing.assert_array_equal(drawn["y"], [0.5, 0.5])


class _Counting:
    """A module stand-in whose ``device_put`` / ``asarray`` calls are counted."""

    def __init__(self, module, name, calls):
        self._module, self._name, self._calls = module, name, calls

    def __getattr__(self, attr):
        value = getattr(self._module, attr)
        if attr == self._name:
            def counted(*args, **kwargs):
                if isinstance(args[0], np.ndarray):
                    self._calls.append(attr)
                return value(*args, **kwargs)

            return counted
        return value


def test_an_eager_run_copies_one_time_grid_to_the_device(monkeypatch):
    # The samples' times were copied to the device and left unused where the run steps on
    # the macro-step grid (a transient of whole samples, the default), which was converted
    # a second time with jnp.asarray.
    model = bx.Hopf(2, init_x=0.1)
    for kw in ({}, {"transient": 4, "sample_every": 2}, {"transient": 3, "sample_every": 2}):
        want = _run(model, **kw)
        calls = []
        with monkeypatch.context() as m:
            m.setattr(_simulate, "jax", _Counting(jax, "device_put", calls))
            m.setattr(_simulate, "jnp", _Counting(jnp, "asarray", calls))
            got = _run(model, **kw)
        assert len(calls) == 1, (kw, calls)
        np.testing.assert_array_equal(np.asarray(got["x"]), np.asarray(want["x"]))
        np.testing.assert_array_equal(got.ts, want.ts)
    chunked = _run(model, chunk=5)
    np.testing.assert_array_equal(np.asarray(chunked["x"]), np.asarray(_run(model)["x"]))


def test_host_memory_reads_the_usage_only_under_a_limit(monkeypatch):
    reads = []
    limits = {}

    def read_int(path):
        reads.append(path)
        return limits.get(path)

    monkeypatch.setattr(_memory, "_read_int", read_int)
    monkeypatch.setattr(_memory, "_read_stat", lambda path, name: reads.append(path) or 0)
    unlimited = _memory._host_available()
    assert reads == ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    reads.clear()
    limits["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = 2**63 - 4096  # v1's "no limit"
    assert _memory._host_available() is not None and len(reads) == 2
    reads.clear()
    limits.update({"/sys/fs/cgroup/memory.max": 4_000_000_000, "/sys/fs/cgroup/memory.current": 3_000_000_000})
    if unlimited is not None:
        assert _memory._host_available() == min(unlimited, 1_000_000_000)
        assert "/sys/fs/cgroup/memory.current" in reads and "/sys/fs/cgroup/memory.stat" in reads
