import os

import jax
import pytest
from _jax_versions import enable_x64, unregister_event_duration_listener


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker process per CPU this process may run on,
    at most 4, or ``$PYTEST_XDIST_AUTO_NUM_WORKERS``. Each worker is a JAX process that holds
    1-2 GB while it compiles; ``-n0`` runs the tests in this process."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, 4)


@pytest.fixture
def x64():
    """Run a test in double precision (jax_enable_x64), restoring the default afterwards."""
    with enable_x64(True):
        yield


@pytest.fixture
def compat_env():
    """The compat facade's global environment as brainmass's documentation sets it up
    (dt = 0.1 ms, random seed 0), reset before and after the test."""
    from brainmass_eqx.compat import brainstate as bs, brainunit as u

    bs.environ.reset()
    bs.environ.set(dt=0.1 * u.ms)
    bs.random.seed(0)
    yield
    bs.environ.reset()


@pytest.fixture
def xla_reads():
    """Run a test with a delayed Network's reads as XLA operations (the native CPU kernels
    off), restoring them afterwards. Both clear JAX's compiled functions."""
    from brainmass_eqx import set_native_kernels

    set_native_kernels(False)
    yield
    set_native_kernels(True)


@pytest.fixture
def counting_hopf():
    """``(Hopf subclass, traces)``: every trace of the subclass's vector field appends to
    ``traces``, so that a test sees whether a second run retraced (and so recompiled)."""
    import brainmass_eqx as bx

    traces = []

    class CountingHopf(bx.Hopf):
        def vector_field(self, t, state, inputs):
            traces.append(1)
            return super().vector_field(t, state, inputs)

    return CountingHopf, traces


@pytest.fixture
def compiles():
    """A list that gets one entry per XLA compilation while the test runs (JAX's
    ``backend_compile_duration`` event), so that a test sees whether a call compiled."""
    events = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield events
    unregister_event_duration_listener(listener)
