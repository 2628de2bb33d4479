"""Give the memory XLA's compiler frees back to the operating system.

Compiling a solve allocates tens of megabytes that are freed when the compilation ends,
but glibc's allocator keeps freed memory in the process: the run's buffers then come on
top, and the peak resident memory of a first call is compile + run instead of the larger
of the two. After every XLA compilation of at least 50 ms, brainmass_eqx asks glibc to
return its free memory (``malloc_trim(0)``, about a millisecond). Measured on a 60 s run
of the 80-region delayed network (W1, recording every 1 ms): peak RSS 290-298 MB without,
270-279 MB with, in three fresh processes each.

Linux with glibc only (elsewhere nothing is installed). ``BRAINMASS_EQX_TRIM=0`` in the
environment before import switches it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import jax

__all__ = ["install_trim_after_compile"]

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
