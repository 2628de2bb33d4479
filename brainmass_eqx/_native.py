"""Native CPU kernels, called through XLA's FFI: a delayed Network's history reads, and
`exprel` of an ensemble's state.

A delayed network step is dominated by its history read: 6,400 delayed samples per step
for an 80-region connectome. XLA's CPU gather costs about 1 ns per element and its
scatter (the read's transpose in reverse mode) more; the loops in
``_kernels/delay.cc`` do the same arithmetic with the CPU's vector gathers (measured on 2
cores: 4.7 us instead of 12.8 us per step for the packed 80 x 80 read), or, where every
delay is a few steps long, for several steps at once from a time-major copy of the
history, one vector load per pair and block of steps (about 1.4 us per step, ring write
included, for blocks of 8 steps). `exprel` (``_kernels/exprel.cc``, bit for bit XLA's) is
a kernel for what XLA would split across its intra-op threads at every step of a batched
exponential-Euler run (see `_math.exprel`).

The library is compiled from its sources on first use with the system's C++ compiler
(``$CXX``, else ``c++``) against the XLA FFI headers that ship with jaxlib, for the host
CPU (``-march=native``), and cached (``$BRAINMASS_EQX_CACHE``, else
``~/.cache/brainmass_eqx``) under a key of the sources, jaxlib's version and the CPU, next to
the SHA-256 of the built file: a cached library that does not match it (truncated or
overwritten: loading a truncated one killed the process with SIGBUS) or that fails to load
is built again. Processes that start at once on an empty cache build it once: the others
wait on a lock file next to it (`_build_lock`). Where no compiler works, the reads stay
XLA operations (same results up to the order of floating-point additions) and one warning
says why. ``BRAINMASS_EQX_NATIVE=0`` or
`set_native_kernels(False)` turn the kernels off.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import jax
import numpy as np
from jax.interpreters import mlir

from ._checks import user_stacklevel

__all__ = ["set_native_kernels", "native_kernels_available"]

_SOURCES = tuple(Path(__file__).parent / "_kernels" / name for name in ("delay.cc", "exprel.cc"))
_HEADERS = (Path(__file__).parent / "_kernels" / "share_work.h",)
_TARGETS = {
    "read_sum": "BmxReadSum",
    "scatter_add": "BmxScatterAdd",
    "scatter_weighted": "BmxScatterWeighted",
    "blocked_read_sum": "BmxBlockedReadSum",
    "blocked_members_sum": "BmxBlockedMembersSum",
    "write_run": "BmxWriteRun",
    "ring_take": "BmxRingTake",
    "exprel": "BmxExprel",
}
_DTYPES = frozenset(np.dtype(d) for d in ("float32", "float64", "complex64", "complex128"))

_lock = threading.Lock()
_state: dict = {"enabled": os.environ.get("BRAINMASS_EQX_NATIVE", "1").strip().lower() not in ("0", "false", "off", "no")}


def set_native_kernels(enabled: bool) -> None:
    """Use (``True``, the default) or not (``False``) the native CPU kernels for the
    delayed reads of a `Network` and for `exprel` of an ensemble's state.

    **Arguments:**

    - `enabled`: ``True`` or ``False`` (a bool; anything else raises ``TypeError``). At
      import the choice is on unless the environment variable ``BRAINMASS_EQX_NATIVE`` is
      ``0``, ``false``, ``off`` or ``no``.

    Both give the same results up to the order of floating-point additions in the reads
    (`exprel`'s are the same bit for bit). Compiled
    functions are cleared (``jax.clear_caches()``), so the next call compiles again with
    the choice made here.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"set_native_kernels(enabled=...) takes True or False, got {enabled!r}.")
    if _state["enabled"] != enabled:
        _state["enabled"] = enabled
        jax.clear_caches()


def native_kernels_available() -> bool:
    """Whether the native kernels are on and built (builds them on the first call)."""
    return _state["enabled"] and _library() is not None


def usable(dtype, index_dtype) -> bool:
    """Whether a read of a ``dtype`` buffer with ``index_dtype`` indices runs natively."""
    return np.dtype(dtype) in _DTYPES and np.dtype(index_dtype) == np.int32 and native_kernels_available()


def target(name: str) -> str:
    return _TARGETS[name]


def register_cpu_lowering(prim, impl, native_impl, native_when, multiple_results: bool) -> None:
    """A CPU lowering of ``prim``: ``native_impl`` (a kernel call) where
    ``native_when(avals_in, **params)``, else the XLA operations of ``impl``."""
    default = mlir.lower_fun(impl, multiple_results=multiple_results)
    native = mlir.lower_fun(native_impl, multiple_results=multiple_results)

    def lowering(ctx, *args, **params):
        if native_when(ctx.avals_in, **params):
            return native(ctx, *args, **params)
        return default(ctx, *args, **params)

    mlir.register_lowering(prim, lowering, platform="cpu")


def _cache_dir() -> Path:
    root = os.environ.get("BRAINMASS_EQX_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "brainmass_eqx"


def _cpu_signature(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The instruction set the library is built for: ``-march=native`` code is only valid
    on a CPU that has it. Linux's ``/proc/cpuinfo`` flags; elsewhere (macOS) what the
    compiler expands ``-march=native`` to, since ``platform.processor()`` alone ('arm',
    'i386') would let two CPU generations sharing a cache load each other's library."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    try:
        # `-###` prints the compiler's internal command lines without running them: gcc's
        # cc1 line spells out -march=<cpu> and every -m<feature>, clang's -cc1 line its
        # -target-cpu and -target-feature list.
        proc = subprocess.run(
            [*_compiler_command(), "-march=native", "-###", "-x", "c++", "-c", os.devnull, "-o", os.devnull],
            capture_output=True, text=True, timeout=60,
        )
        words = [w for line in proc.stderr.splitlines() if "cc1" in line for w in shlex.split(line)]
        # Only the target's words: the rest names temporary files, different every run.
        target = [
            word for previous, word in zip(["", *words], words)
            if word.startswith("-m") or previous in ("-target-cpu", "-target-feature")
        ]
        if proc.returncode == 0 and target:
            return " ".join(target)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError):
        pass
    return platform.processor()


def _library_path() -> Path:
    """Where the library of these sources, jaxlib version and CPU is cached."""
    import jaxlib

    parts = (*(source.read_text() for source in _SOURCES + _HEADERS), jaxlib.__version__, platform.machine(), _cpu_signature())
    key = hashlib.sha256(b"\0".join(s.encode() for s in parts)).hexdigest()[:16]
    return _cache_dir() / f"libbmx_kernels-{key}.so"


def _digest_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _intact(library: Path) -> bool:
    """Whether ``library`` is the file its build recorded (`_compile`). ``dlopen`` of a
    truncated shared object maps pages past the file's end and the process dies of SIGBUS
    on touching them, an error no ``except`` can catch: check before loading."""
    try:
        return library.is_file() and _digest_path(library).read_text().strip() == _file_digest(library)
    except OSError:
        return False


def _write_atomically(data: bytes, dst: Path) -> None:
    # Whole or not at all, as the library itself (os.replace within a directory is atomic).
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from the other users of a shared cache
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _compiler_command() -> list[str]:
    """The C++ compiler as an argument list: ``$CXX`` split as a shell splits it (a
    ``CXX="ccache g++"`` or ``CXX="g++ -m64"`` is a command with arguments, not one file
    name), else the first of ``c++``, ``g++``, ``clang++`` on ``$PATH``."""
    cxx = os.environ.get("CXX", "").strip()
    if cxx:
        return shlex.split(cxx)
    found = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if found is None:
        raise RuntimeError("no C++ compiler found (set $CXX, or install g++ / clang++)")
    return [found]


def _compile_flags(include: str, optimize: str = "-O3") -> list[str]:
    """The compiler's arguments for the library's sources, but for the instruction set
    (``-march=native``, else the compiler's default) and the output."""
    # -fno-trapping-math lets the compiler turn exprel's selects into vector blends (it
    # changes no result: floating-point exceptions are not observed).
    flags = [optimize, "-std=c++17", "-fno-trapping-math", "-shared", "-fPIC", "-w", f"-I{include}"]
    return flags + [*map(str, _SOURCES)]


# Tried in turn: the machine's instruction set, then the compiler's default (a compiler or
# CPU that -march=native does not suit).
_ARCHES = (["-march=native"], [])


def _compile(include: str, out: Path) -> None:
    """Builds the library at ``out`` and records its SHA-256 next to it (`_intact`)."""
    cxx = _compiler_command()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    flags = _compile_flags(include) + ["-o", tmp]
    try:
        for arch in _ARCHES:
            proc = subprocess.run(cxx + arch + flags, capture_output=True, text=True)
            if proc.returncode == 0:
                # The digest first: a loader that finds the new digest with the old library
                # (or none) rebuilds, one that finds the new library finds its digest.
                _write_atomically(_file_digest(Path(tmp)).encode(), _digest_path(out))
                os.chmod(tmp, 0o755)
                os.replace(tmp, out)  # atomic: concurrent builders never load a partial file
                return
        raise RuntimeError(f"{shlex.join(cxx)} failed:\n{proc.stderr[-2000:]}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _build_lock(library: Path):
    """Holds an exclusive lock on ``<library>.lock`` (``flock``) while the library is checked
    and built, so that processes started at once on an empty cache (a ``multiprocessing`` /
    joblib pool, cluster jobs sharing ``$HOME``) build it once: the others wait, then find it
    built. Without it every process ran its own compiler (6 processes on 2 cores: six
    builds of 57 s each, for one of 6 s). Where locks are unavailable (no ``fcntl``,
    a file system that refuses them), each process builds for itself, as before: the
    library is replaced atomically either way."""
    try:
        import fcntl

        library.parent.mkdir(parents=True, exist_ok=True)
        # Read-only: flock needs no write access, so the other users of a shared cache
        # (the file is created 0644 under the usual umask) can take the lock too.
        fd = os.open(library.with_name(library.name + ".lock"), os.O_RDONLY | os.O_CREAT, 0o666)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def _load(include: str, path: Path):
    """The library at ``path``, built first where it is missing or not intact, and built
    again once where it does not load (e.g. a file of another machine's format)."""
    if not _intact(path):
        with _build_lock(path):
            if not _intact(path):  # another process may have built it while this one waited
                _compile(include, path)
    try:
        return ctypes.cdll.LoadLibrary(str(path))
    except OSError:
        _compile(include, path)
        return ctypes.cdll.LoadLibrary(str(path))


def _library():
    if "lib" in _state:
        return _state["lib"]
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        lib = None
        try:
            lib = _load(jax.ffi.include_dir(), _library_path())
            for name in _TARGETS.values():
                jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
        except Exception as e:  # any failure: the XLA reads are correct, only slower
            warnings.warn(
                f"brainmass_eqx: the native delay-read kernels are unavailable ({e}); delayed "
                "networks use XLA's gather instead, and exprel XLA's operations (same results, "
                "slower on CPU). Set "
                "BRAINMASS_EQX_NATIVE=0 to silence this.",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
            lib = None
        _state["lib"] = lib
        return lib
