"""The allocator trim after XLA compilations (brainmass_eqx._memory)."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import pytest
from _jax_versions import unregister_event_duration_listener

import brainmass_eqx  # noqa: F401  (installs the listener)
from brainmass_eqx import _memory

GLIBC = sys.platform.startswith("linux") and _memory._malloc_trim() is not None


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_the_listener_is_installed_once_and_trims_after_long_compilations_only():
    assert _memory.install_trim_after_compile()
    assert _memory.install_trim_after_compile()  # idempotent
    listener = _memory._installed["listener"]
    from jax._src import monitoring

    registered = [callback for callback, *_ in map(_as_tuple, monitoring.get_event_duration_listeners())]
    assert registered.count(listener) == 1
    calls = []
    real = _memory._malloc_trim()

    def counting(pad):
        calls.append(pad)
        return real(pad)

    # The same listener logic with a counting trim around glibc's own.
    _memory._installed.pop("listener")
    try:
        original, _memory._malloc_trim = _memory._malloc_trim, lambda: counting
        assert _memory.install_trim_after_compile()
        fresh = _memory._installed["listener"]
        fresh("/jax/core/compile/backend_compile_duration", 0.2)
        fresh("/jax/core/compile/backend_compile_duration", 0.001)
        fresh("/jax/core/compile/jaxpr_trace_duration", 0.5)
        assert calls == [0]
    finally:
        _memory._malloc_trim = original
        _memory._installed["listener"] = listener
        unregister_event_duration_listener(fresh)


def _as_tuple(entry):
    return entry if isinstance(entry, tuple) else (entry,)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_the_environment_switches_it_off():
    code = "import brainmass_eqx, brainmass_eqx._memory as m; print('listener' in m._installed)"
    for value, expected in (("0", "False"), ("1", "True")):
        env = dict(os.environ, BRAINMASS_EQX_TRIM=value, JAX_PLATFORMS="cpu")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected
    assert jax.devices()  # this process is untouched
