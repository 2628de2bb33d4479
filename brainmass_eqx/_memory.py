"""Memory: give what XLA's compiler frees back to the operating system, and tell up front
whether a compiled call fits in the memory left.

Compiling a solve allocates tens of megabytes that are freed when the compilation ends,
but glibc's allocator keeps freed memory in the process: the run's buffers then come on
top, and the peak resident memory of a first call is compile + run instead of the larger
of the two. After every XLA compilation of at least 50 ms, brainmass_eqx asks glibc to
return its free memory (``malloc_trim(0)``, about a millisecond). Measured on a 60 s run
of the 80-region delayed network (W1, recording every 1 ms): peak RSS 290-298 MB without,
270-279 MB with, in three fresh processes each.

Linux with glibc only (elsewhere nothing is installed). ``BRAINMASS_EQX_TRIM=0`` in the
environment before import switches it off.

`program_bytes` and `available_bytes` let `ensemble` refuse a call that cannot fit before
it runs: on a CPU, an allocation larger than the memory left is not refused by Linux
(which overcommits), so a too-large vmap was killed by the OOM killer mid-run or swapped,
with no word of why. `check_recording` does the same for `simulate`'s recording and the
delay history its solver state carries, in a single run and under a user's own
``jax.vmap`` (which ``ensemble`` does not see): 1,000 members recording one variable of 80
regions every 1 ms for 60 s are 19 GB (float32); 1,000 regions with delays up to 2 s at
dt 0.1 ms carry 320 MB of history per run (a packed ring buffer and the blocked reads'
copy), which a recording of 0.8 MB hid (the peak rose 766 MB), 20 GB under a vmap of 64.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

import jax
from jax.custom_batching import custom_vmap

__all__ = [
    "install_trim_after_compile", "release_free_memory", "available_bytes", "program_bytes", "format_bytes",
    "check_recording", "recordings_checked_elsewhere", "members_that_fit",
]

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
# Small compilations free little; skipping them keeps op-by-op (eager) code untouched.
_MIN_COMPILE_SECONDS = 0.05
_installed: dict = {}


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # no glibc (e.g. musl): nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Hand the memory glibc holds freed back to the operating system (``malloc_trim(0)``,
    every arena: a millisecond or so), where glibc is the allocator.

    Called between the chunks of an ensemble or a sweep: each chunk's slices run in new
    threads, glibc gives threads arenas of their own, and what a chunk's run freed in them
    stayed in the process, so the peak resident memory grew with the number of chunks
    instead of staying that of one (measured: 1,000 members of the delayed 80-region
    network in calls of 64, 200 ms each, recording every 1 ms: a peak of 590 MB against
    365 MB for 250 members, 355 MB with one arena, ``MALLOC_ARENA_MAX=1``; trimmed after
    each call, 405 MB against 337 MB. A sweep of 1,000 such points in chunks of 64: 520 MB,
    trimmed 356 MB, 324 MB for 250 points)."""
    if "trim" not in _installed:
        _installed["trim"] = _malloc_trim()
    if _installed["trim"] is not None:
        _installed["trim"](0)


def install_trim_after_compile() -> bool:
    """Install the listener once per process; whether it is installed."""
    if "listener" in _installed:
        return True
    if os.environ.get("BRAINMASS_EQX_TRIM", "1").strip().lower() in ("0", "false", "off", "no"):
        return False
    trim = _malloc_trim()
    if trim is None:
        return False

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == _COMPILE_EVENT and duration >= _MIN_COMPILE_SECONDS:
            trim(0)

    jax.monitoring.register_event_duration_secs_listener(listener)
    _installed["listener"] = listener
    return True


def program_bytes(compiled) -> tuple[int, int] | None:
    """``(temporaries, outputs)``: the bytes a compiled XLA program allocates while it runs
    (from ``memory_analysis()``; its arguments exist before it starts), outputs that alias
    an argument not counted; None where the backend does not say. ``compiled``: a
    ``jax.stages.Compiled`` (or equinox's wrapper of one)."""
    compiled = getattr(compiled, "compiled", compiled)  # equinox's Compiled wraps jax's
    try:
        stats = compiled.memory_analysis()
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    if stats is None:
        return None
    outputs = max(0, int(stats.output_size_in_bytes) - int(stats.alias_size_in_bytes))
    return int(stats.temp_size_in_bytes), outputs


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _read_stat(path: str, name: str) -> int:
    """Field ``name`` of a cgroup ``memory.stat`` file (bytes), 0 where absent."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == name and value.strip().isdigit():
                    return int(value)
    except OSError:
        pass
    return 0


def _host_available() -> int | None:
    """The host memory this process may still take: Linux's ``MemAvailable`` (free memory
    plus the caches it can drop), or less where a cgroup (a container, a batch job) caps
    the process. A cgroup's usage counts its page cache, which the kernel drops before it
    kills anything: its inactive files are taken off (as ``docker stats`` and Kubernetes'
    working set do), else a container that had read a few GB of files was "full" and
    every run refused. None off Linux."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            # Its third line: stop there (simulate asks at every call; parsing all fifty
            # lines was most of the check's cost on a small run).
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        return None
    if available is None:
        return None
    for limit, usage, stat, cache in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"),
        (  # cgroup v1
            "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
            "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file",
        ),
    ):
        # The usage only where there is a limit: the files of the other cgroup version, or
        # no limit (v2's "max", v1's huge number), are the rule, and simulate asks at every call.
        cap = _read_int(limit)
        if cap is None or cap >= 2**60:
            continue
        used = _read_int(usage)
        if used is not None:
            used = max(0, used - _read_stat(stat, cache))
            available = min(available, max(0, cap - used))
    return available


def available_bytes(device=None) -> int | None:
    """The memory left to a program on ``device`` (default: JAX's first device): the host's
    (`_host_available`) for a CPU, else the device's own limit less what is in use
    (``device.memory_stats()``); None where neither is known."""
    device = jax.devices()[0] if device is None else device
    if device.platform == "cpu":
        return _host_available()
    try:
        stats = device.memory_stats() or {}
    except (NotImplementedError, RuntimeError):
        return None
    if "bytes_limit" not in stats:
        return None
    return max(0, int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))


def format_bytes(n: float) -> str:
    """``n`` bytes in words: '3.2 GB', '64 MB', '512 kB' (powers of 1000, as memory is sold)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


# False inside `ensemble` (and so `sweep`): it checks its compiled program itself, with
# its own ``check_memory``, so `check_recording` stays silent there.
_CHECK_RECORDINGS = contextvars.ContextVar("brainmass_eqx_check_recordings", default=True)


@contextlib.contextmanager
def recordings_checked_elsewhere() -> Iterator[None]:
    """Within it (this thread's context, and the threads `run_slices` starts from it),
    `check_recording` checks nothing: for callers that check the memory of their whole
    compiled program themselves (`ensemble`'s ``check_memory``)."""
    token = _CHECK_RECORDINGS.set(False)
    try:
        yield
    finally:
        _CHECK_RECORDINGS.reset(token)


#: The share of the memory left that a suggested chunk may take: room for what the
#: estimates leave out (the compiler's own memory, the arguments, a run's state).
FITTING_SHARE = 0.7


def members_that_fit(available: float, per_member: float) -> int:
    """How many members of ``per_member`` bytes each to run at once in ``available``
    bytes, leaving room for what the estimates leave out (`FITTING_SHARE`)."""
    return int(FITTING_SHARE * available // per_member)


class _PerRun(NamedTuple):
    """What one run holds to its end: its recording, ``n_samples`` samples of ``sample``
    bytes on ``device``, and the delay history its solver state carries (``history``
    bytes, `_wrapping.history_bytes`) on ``state_device``."""

    n_samples: int
    sample: int
    history: int
    device: Any
    state_device: Any

    @property
    def recording(self) -> int:
        return self.n_samples * self.sample

    def needs(self) -> list[tuple[Any, int, int]]:
        """``(device, recording bytes, history bytes)`` per device, one run's."""
        if self.device == self.state_device:
            return [(self.device, self.recording, self.history)]
        return [(self.device, self.recording, 0), (self.state_device, 0, self.history)]


def _recording_message(members: int, recording: int, history: int, run: _PerRun, available: int, device) -> str:
    """The text of `_refuse_recording`'s MemoryError: what one run (or each of a vmap's
    ``members``) holds on ``device`` (``recording`` and ``history`` bytes, either may be 0)
    against the ``available`` bytes, and what makes it smaller, one clause per part held.
    One text composed of its parts: the four texts it replaced (one run or a vmap, with or
    without a delay history) repeated each other's sentences with small differences."""
    batch = members > 1
    per_run = recording + history
    where = "this machine" if device.platform == "cpu" else str(device)
    what = f"{run.n_samples} samples of {format_bytes(run.sample)}"
    if history:
        counted = " + ".join(
            ([f"recording {format_bytes(recording)} ({what})"] if recording else []) + [f"delay history {format_bytes(history)}"]
        ) + " (the ring buffer of the coupled variables' past, carried in the solver state)"
    else:
        counted = what
    if batch:
        head = f"a jax.vmap of {members} runs {'needs' if history else 'records'} about {format_bytes(members * per_run)} " \
               f"({format_bytes(per_run)} per run: {counted})"
    else:
        head = f"the run {'needs' if history else 'records'} about {format_bytes(per_run)} ({counted})"
    # A reduction inside the vmapped function does shrink what it returns, not the recording.
    note = (
        "A reduction after simulate inside the vmapped function does not help (every run's recording exists before "
        "it). " if batch and recording else ""
    )
    smaller = []
    if history:
        smaller.append("carry less history: a shorter max_delay (the longest delay sizes every region's history) or fewer regions")
    if recording:
        smaller.append(
            "record less: a larger sample_every (every k-th step) or fewer monitors"
            + ("" if batch else ", or a shorter run (continue it with y0=the previous Trajectory, keeping what you need of each)")
        )
    if batch:
        fits = members_that_fit(available, per_run)
        at_once = (
            f"bx.ensemble(fn, batch, chunk={min(fits, members - 1)}) evaluates that many at a time, one call after "
            "another (what fn returns then gathers in host memory: reduce inside fn, e.g. "
            "bx.metrics.functional_connectivity or a mean, to keep it small); jax.lax.map runs them one at a time"
            if fits >= 1 else "even one run does not fit, so fewer at a time does not help"
        )
        smaller.append(f"or run fewer at once: {at_once} (a Fitter: population='map', or a smaller popsize)")
    advice = "; ".join(smaller)
    return (
        f"simulate: {head}, and {format_bytes(available)} is left on {where}: {'the batch' if batch else 'it'} would be "
        f"killed for memory (or swap) midway. {note}{advice[0].upper()}{advice[1:]}. "
        "simulate(..., check_memory=False) runs it anyway."
    )


def _refuse_recording(members: int, run: _PerRun) -> None:
    for device, recording, history in run.needs():
        if not recording + history:
            continue
        available = available_bytes(device)
        if available is not None and members * (recording + history) > available:
            raise MemoryError(_recording_message(members, recording, history, run, available, device))


def _batch_probe(members: int, run: _PerRun):
    """An identity whose ``jax.vmap`` rule sees the batch size at trace time: it checks
    ``members`` times that size and passes the product on to the next vmap out (nested
    vmaps multiply). Its output is unused, so nothing of it reaches the compiled program."""

    @custom_vmap
    def probe(arrays):
        return arrays

    @probe.def_vmap
    def rule(axis_size, in_batched, arrays):
        total = members * axis_size
        # Read again here, where the vmap is traced: a jitted run traced (probe and all)
        # outside `ensemble` was refused inside it, check_memory=False too, from the cache.
        if _CHECK_RECORDINGS.get():
            _refuse_recording(total, run)
        return _batch_probe(total, run)(arrays), in_batched[0]

    return probe


def check_recording(arrays: Any, n_samples: int, sample: int, *, host: bool = False, history: int = 0) -> None:
    """Raise `MemoryError` before a run whose recording and delay history cannot fit in
    the memory left (`available_bytes`): ``n_samples`` samples of ``sample`` bytes each,
    plus ``history`` bytes of history carried in the solver state (`_wrapping.history_bytes`;
    a delayed `Network`'s ring buffer), times every ``jax.vmap`` the run is traced under
    (their batch sizes multiplied; found by a probe on ``arrays``, every array the run
    depends on, since a vmap over any one of them batches the run). ``host``: the
    recording gathers in host memory (``simulate``'s ``chunk``), else on JAX's first
    device, where the history always is (on a CPU the two add up). Under ``jax.jit`` the
    vmaps are checked when traced (a cached program is not checked again); a vmap of a
    run differentiated in forward mode (``jax.jacfwd``) is not counted. Nothing is
    checked inside `recordings_checked_elsewhere`, or where the system does not say what
    is left."""
    if not _CHECK_RECORDINGS.get():
        return
    state_device = jax.devices()[0]
    run = _PerRun(n_samples, sample, history, jax.devices("cpu")[0] if host else state_device, state_device)
    _refuse_recording(1, run)
    leaves = [x for x in jax.tree_util.tree_leaves(arrays) if isinstance(x, jax.core.Tracer)]
    if leaves:  # concrete arrays are never batched
        # stop_gradient: the probe is outside differentiation (custom_vmap has no transpose).
        _batch_probe(1, run)(jax.lax.stop_gradient(leaves))
