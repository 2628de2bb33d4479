"""Calls from several threads and processes at once: each gets what it gets alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import pytest

from brainmass_eqx.compat import brainstate as bs, brainunit as u


@pytest.fixture(autouse=True)
def _clean_env():
    bs.environ.reset()
    yield
    bs.environ.reset()


def _in_thread(body, entered: threading.Event, leave: threading.Event) -> threading.Thread:
    def run():
        with bs.environ.context(dt=0.5 * u.ms):
            entered.set()
            leave.wait(30)
        body()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert entered.wait(30)
    return t


def test_a_context_belongs_to_its_thread():
    # brainstate keeps contexts per thread. A shared stack let a Simulator.run in one thread
    # (inside context(dt=...)) change another thread's dt: the main thread read 0.5 ms here,
    # and when the other thread left its context it popped the main thread's layer (0.02 ms
    # read as 0.5 ms).
    bs.environ.set(dt=0.1 * u.ms)
    entered, leave = threading.Event(), threading.Event()
    seen = {}
    def body():
        try:
            seen.update(after=bs.environ.get_dt())
        except KeyError as err:
            seen.update(error=err)

    t = _in_thread(body, entered, leave)
    assert bs.environ.get_dt() == 0.1 * u.ms
    with bs.environ.context(dt=0.02 * u.ms):
        leave.set()
        t.join(30)
        assert not t.is_alive()
        assert bs.environ.get_dt() == 0.02 * u.ms
        assert bs.environ.all()["dt"] == 0.02 * u.ms
    assert bs.environ.get_dt() == 0.1 * u.ms
    # set()'s values belong to the thread too (brainstate's raise KeyError in a new thread).
    assert "after" not in seen and isinstance(seen["error"], KeyError)
    assert "set in thread 'MainThread'" in str(seen["error"])


def test_set_values_belong_to_their_thread():
    # brainstate's environment state is a threading.local. Shared by all threads, two
    # threads each running with its own set(dt=...) read whichever was set last: here each
    # thread saw the other's dt after the barrier.
    barrier, seen = threading.Barrier(2), {}

    def worker(dt):
        bs.environ.set(dt=dt * u.ms, tag=dt)
        barrier.wait(30)
        seen[dt] = (bs.environ.get_dt(), bs.environ.all()["tag"])

    threads = [threading.Thread(target=worker, args=(dt,)) for dt in (0.1, 0.05)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {0.1: (0.1 * u.ms, 0.1), 0.05: (0.05 * u.ms, 0.05)}
    with pytest.raises(KeyError, match="set in thread 'Thread-"):
        bs.environ.get("tag")  # neither was set in this thread
    # A thread's asyncio tasks share its values (as brainstate's, one state per thread).
    import asyncio

    async def task(value):
        bs.environ.set(shared=value)
        await asyncio.sleep(0.01)
        return bs.environ.get("shared")

    async def both():
        return await asyncio.gather(task(1), task(2))

    assert asyncio.run(both()) == [2, 2]
    # reset() forgets every thread's values, as brainstate's does.
    other = threading.Thread(target=lambda: bs.environ.set(kept=1))
    other.start()
    other.join(30)
    bs.environ.reset()
    out = {}
    again = threading.Thread(target=lambda: out.update(kept=bs.environ.get("kept", None)))
    again.start()
    again.join(30)
    assert out == {"kept": None}


def test_the_library_worker_threads_run_in_the_callers_environment():
    # An ensemble's or a nevergrad fit's slices run in threads of a pool: they see what the
    # calling thread set and the contexts it has open (they saw neither context before).
    import jax.numpy as jnp

    from brainmass_eqx._ensemble import run_slices

    def fn(i):
        return jnp.asarray([float(bs.environ.get_dt().to_decimal(u.ms)), float(bs.environ.get("k"))])

    bs.environ.set(dt=0.1 * u.ms)
    with bs.environ.context(k=3.0):
        out = run_slices(fn, [(i,) for i in range(3)])
    for o in out:
        assert float(o[0]) == pytest.approx(0.1) and float(o[1]) == 3.0


HAS_COMPILER = any(shutil.which(c) for c in ("c++", "g++", "clang++"))

# A child that waits for its siblings (so that all look at the empty cache at once), then
# loads the kernels.
_CHILD = """
import os, sys, time
from brainmass_eqx import _native
ready = os.path.join(sys.argv[1], "ready")
with open(ready, "a") as f:
    f.write("x")
deadline = time.time() + 60
while os.path.getsize(ready) < int(sys.argv[2]) and time.time() < deadline:
    time.sleep(0.01)
assert _native._library() is not None
"""


def test_processes_started_at_once_build_the_native_library_once(tmp_path):
    # Without a lock each process ran its own compiler: six at once on 2 cores built six
    # times, 57 s each. The "compiler" here copies the library built for this machine,
    # slowly, and counts its runs.
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: nothing is built")
    from brainmass_eqx import _native

    if _native._library() is None:
        pytest.skip("the native kernels do not build here")
    built = _native._library_path()
    cache, log = tmp_path / "cache", tmp_path / "builds"
    cache.mkdir()
    cxx = tmp_path / "cxx"
    cxx.write_text(
        "#!/bin/sh\n"
        f"echo run >> '{log}'\n"
        "sleep 2\n"
        'while [ $# -gt 0 ]; do if [ "$1" = -o ]; then cp '
        f"'{built}'"
        ' "$2"; fi; shift; done\n'
    )
    cxx.chmod(0o755)
    env = {**os.environ, "BRAINMASS_EQX_CACHE": str(cache), "CXX": str(cxx)}
    n = 3
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), str(n)], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    for p in procs:
        try:
            _, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a process loading the native kernels did not finish in 240 s")
        assert p.returncode == 0, err[-2000:]
    assert log.read_text().count("run") == 1
    assert _native._intact(cache / built.name)
