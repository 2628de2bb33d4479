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
with no word of why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import jax

__all__ = ["install_trim_after_compile", "release_free_memory", "available_bytes", "program_bytes", "format_bytes"]

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


def _host_available() -> int | None:
    """The host memory this process may still take: Linux's ``MemAvailable`` (free memory
    plus the caches it can drop), or less where a cgroup (a container, a batch job) caps
    the process; None off Linux."""
    meminfo = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                name, _, rest = line.partition(":")
                meminfo[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    available = meminfo.get("MemAvailable")
    if available is None:
        return None
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 2**60:  # v1 writes a huge number for no limit
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
