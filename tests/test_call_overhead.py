"""What an eager `simulate` does on the host once its program is compiled (a loop of small
runs: a parameter scan, a fit's loss, the compat facade). Counts, not times: how often an
expensive step runs, and that new parameter values compile nothing."""

from __future__ import annotations

import functools
import gc
import inspect
import weakref

import equinox as eqx
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


def _count_bound_methods(monkeypatch):
    """The qualified names of the eqx.BoundMethods built from now on (a list that grows)."""
    built = []
    bound = type(bx.Hopf(1)._label)
    original = bound.__post_init__

    def counting(self):
        built.append(self.__func__.__qualname__)
        original(self)

    monkeypatch.setattr(bound, "__post_init__", counting)
    return built


def test_an_eager_run_builds_no_bound_method_modules(monkeypatch):
    # Reading a Module's method builds an eqx.BoundMethod (a Module, about 25 us): an eager
    # Hopf run built 7 (2 _label, 2 wrap_solver, step_warning, init_state, terms).
    model = bx.with_noise(bx.Hopf(2, init_x=0.1), noise_x=bx.noise.OUProcess(0.01, tau=5.0))
    hopf = bx.Hopf(2, init_x=0.2)  # (building a model reads its methods: not timed here)
    _run(hopf)
    _run(model, key=jax.random.key(1))
    built = _count_bound_methods(monkeypatch)
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


# -- the compat facade and the scipy backend ----------------------------------------------------------


def test_a_delayed_network_run_builds_no_bound_method_modules(monkeypatch):
    # Its wrap_solver read _plan, _delay_matrix, _coupling_weights, _sources, ... and the
    # node's init_state, terms and wrap_solver (twice): 14 eqx.BoundMethods per eager run.
    net = MODELS["delayed network"](0.2)
    want = np.asarray(_run(net)["x"])
    built = _count_bound_methods(monkeypatch)
    np.testing.assert_array_equal(np.asarray(_run(net)["x"]), want)
    assert built == []


@pytest.fixture
def facade():
    import brainmass_eqx.compat as bm
    from brainmass_eqx.compat import brainstate, brainunit as u

    with brainstate.environ.context(dt=0.1 * u.ms):
        yield bm, brainstate, u


def test_a_facade_run_and_step_build_the_functional_model_once(facade, monkeypatch):
    # Building the functional model converts and checks every parameter (0.4 ms for Hopf):
    # Simulator.run built it twice (the state initialisation, then the run), each update once.
    from brainmass_eqx.compat import _models

    bm, brainstate, u = facade
    node = bm.HopfStep(2, init_x=bm.braintools.init.Constant(0.1))
    sim = bm.Simulator(node)
    first = np.asarray(sim.run(2 * u.ms)["output"][0])
    brainstate.nn.init_all_states(node)
    steps = [np.asarray(node.update(0.1)[0]) for _ in range(3)]
    builds = []
    core_call = _models.core_call
    monkeypatch.setattr(_models, "core_call", lambda fn, *a, **k: builds.append(fn) or core_call(fn, *a, **k))
    np.testing.assert_array_equal(np.asarray(sim.run(2 * u.ms)["output"][0]), first)
    brainstate.nn.init_all_states(node)
    np.testing.assert_array_equal([np.asarray(node.update(0.1)[0]) for _ in range(3)], steps)
    assert builds == []
    # A new value builds anew, and is the model that runs.
    node.a.set_value(0.5)
    again = np.asarray(sim.run(2 * u.ms)["output"][0])
    assert builds == [bx.Hopf]
    fresh = bm.Simulator(bm.HopfStep(2, a=0.5, init_x=bm.braintools.init.Constant(0.1))).run(2 * u.ms)
    np.testing.assert_array_equal(again, np.asarray(fresh["output"][0]))
    assert not np.array_equal(again, first)


def test_same_value_is_identity_of_immutable_values():
    from brainmass_eqx.compat import _models, brainunit as u

    a = jnp.ones(2)
    assert _models._same_value(a, a) and not _models._same_value(a, jnp.ones(2))
    assert _models._same_value(u.Quantity(a, "ms"), u.Quantity(a, "ms"))
    assert not _models._same_value(u.Quantity(a, "ms"), u.Quantity(a, "s"))
    host = np.ones(2)  # changed in place, it would be the same object with new values
    assert not _models._same_value(host, host)
    assert _models._same_value(0.5, 0.5) and not _models._same_value(0.0, -0.0)
    assert not _models._same_value(1, True) and not _models._same_value(1, 1.0)
    jax.jit(lambda x: _models._same_value(x, x) and pytest.fail("a tracer is never the same"))(a)


def test_facade_runs_and_steps_build_no_bound_method_modules(facade, monkeypatch):
    # 20 per Simulator.run (Param.value's transform.forward 6, Quantity.to 4 for dt, the
    # functional model's checks, the solver-state hooks), 7 per update.
    bm, brainstate, u = facade
    node = bm.HopfStep(2)
    sim = bm.Simulator(node)
    sim.run(2 * u.ms)
    node.update(0.1)
    built = _count_bound_methods(monkeypatch)
    sim.run(2 * u.ms)
    node.update(0.1)
    assert built == []


def test_the_facade_reads_a_hook_signature_once_per_function(facade, monkeypatch):
    # The facade's initial solver state read core.wrap_solver's signature at every
    # init_all_states (and Simulator.run): now simulate's rule, once per hook function.
    bm, brainstate, u = facade
    node = bm.HopfStep(3, noise_x=bm.OUProcess(3, sigma=0.1))
    net = bm.Network(bm.HopfStep(3), conn=CONN, distance=DIST, speed=10.0, coupled_var="x")
    for model in (node, net):
        brainstate.nn.init_all_states(model)
    bm.Simulator(node).run(1 * u.ms)
    reads = []
    signature = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda fn, *a, **k: reads.append(fn) or signature(fn, *a, **k))
    brainstate.nn.init_all_states(net)
    brainstate.nn.init_all_states(node)
    bm.Simulator(node).run(1 * u.ms)
    assert [fn for fn in reads if "wrap_solver" in getattr(fn, "__qualname__", "")] == []


def test_a_scipy_evaluation_converts_nothing_eagerly(monkeypatch, compiles):
    # The search vector was converted with jnp.asarray at every evaluation (an eager op);
    # a NumPy array of the model's dtype runs the same compiled program.
    from brainmass_eqx.fit import Fitter, _scipy

    model = bx.Hopf(2, a=bx.Param(0.1, bounds=(0.01, 1.0)), init_x=0.1)
    fitter = Fitter(model, "L-BFGS-B", backend="scipy", loss_fn=lambda m, t: (bx.unwrap(m.a) - t) ** 2)
    first = fitter.fit(jnp.asarray(0.3), 5)
    n = len(compiles)
    calls = []
    monkeypatch.setattr(_scipy, "jnp", _Counting(jnp, "asarray", calls))
    again = fitter.fit(jnp.asarray(0.3), 5)
    assert calls == [] and len(compiles) == n
    np.testing.assert_array_equal(again.history, first.history)
    assert abs(float(again.best_params["a"]) - 0.3) < 1e-3


class _JittedHook(bx.Hopf):
    @eqx.filter_jit  # as equinox's docs jit a method: reading it builds a Partial of the model
    def wrap_solver(self, solver, dt=None):
        return solver


class _PartialHook(bx.Hopf):
    # A new functools.partial (holding the model) at each read.
    wrap_solver = functools.partialmethod(lambda self, solver, dt=None: solver)


def test_a_wrap_solver_hook_that_is_no_plain_method_runs_and_is_not_kept():
    want = np.asarray(_run(bx.Hopf(2, init_x=0.1))["x"])
    # The hook's signature was cached by the hook object: the jitted one (an eqx Partial of
    # the model's arrays) is unhashable, a TypeError from simulate.
    np.testing.assert_array_equal(np.asarray(_run(_JittedHook(2, init_x=0.1))["x"]), want)
    # A partial is hashable but new at each read: the cache kept every run's model (the
    # copy simulate runs, sharing the model's arrays).
    model = _PartialHook(2, init_x=0.1, a=jnp.asarray([-0.5, -0.5]))
    np.testing.assert_array_equal(np.asarray(_run(model)["x"]), np.asarray(_run(bx.Hopf(2, init_x=0.1, a=-0.5))["x"]))
    gone = weakref.ref(model.a)
    del model
    gc.collect()
    assert gone() is None


def test_closures_of_one_function_share_one_signature_entry():
    def hook_for(extra):
        def wrap_solver(self, solver, dt=None):
            return solver

        return wrap_solver

    _simulate._takes_dt(hook_for(0))
    size = _simulate._code_takes_dt.cache_info().currsize
    hooks = [hook_for(i) for i in range(5)]
    assert all(_simulate._takes_dt(h) for h in hooks)
    assert not _simulate._takes_dt(lambda self, solver: solver)
    assert _simulate._code_takes_dt.cache_info().currsize == size + 1  # the lambda's code alone
