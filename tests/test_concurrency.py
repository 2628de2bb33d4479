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
    t = _in_thread(lambda: seen.update(after=bs.environ.get_dt()), entered, leave)
    assert bs.environ.get_dt() == 0.1 * u.ms
    with bs.environ.context(dt=0.02 * u.ms):
        leave.set()
        t.join(30)
        assert not t.is_alive()
        assert bs.environ.get_dt() == 0.02 * u.ms
        assert bs.environ.all()["dt"] == 0.02 * u.ms
    assert bs.environ.get_dt() == 0.1 * u.ms
    # Global values are shared by the threads (brainstate's raise KeyError in a new thread).
    assert seen["after"] == 0.1 * u.ms


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
