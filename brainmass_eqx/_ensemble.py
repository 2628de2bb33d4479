r"""Ensembles and parameter sweeps: one ``vmap``, sharded across devices.

`ensemble` maps a function over a batch of parameter sets (any pytree whose array leaves
share a leading batch axis), with ``jax.vmap`` on each device and the batch split across
``jax.devices()`` by ``jax.shard_map`` over a 1-D ``Mesh`` (`shard_vmap`): each device runs
the program of its own members, with no communication between devices. On several
hosts, call ``jax.distributed.initialize()`` first (one process per host): ``jax.devices()``
then lists every host's devices and the same code shards over all of them. On a single
CPU device the batch is cut into slices of at most 16 members, whose vmaps one thread per
core takes in turn (`cpu_plan`).

`sweep` builds a grid of parameter values, evaluates a simulation for each point through
`ensemble` in chunks (with a progress bar), reduces each result to a few scalar summaries,
and returns a tidy table. With ``checkpoint=path`` finished chunks are saved as they
complete, and an interrupted sweep resumes without recomputing them.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import itertools
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

from ._checks import check_int, did_you_mean, is_traced, keyword_names, suggests_keywords
from ._files import PRECISION_WORDS, atomic_write, check_writable
from ._memory import (
    FITTING_SHARE,
    available_bytes,
    format_bytes,
    members_that_fit,
    program_bytes,
    recordings_checked_elsewhere,
    release_free_memory,
)
from ._units import is_quantity, quantity, unxt_module

__all__ = ["ensemble", "sweep", "batch_size_of", "cpu_plan", "cpu_slices", "place", "run_slices", "shard_vmap", "split_batch"]


def batch_size_of(batch: PyTree) -> int:
    """The common leading-axis length of the array leaves of ``batch``."""
    leaves = [x for x in jax.tree_util.tree_leaves(batch) if eqx.is_array(x) or isinstance(x, np.ndarray)]
    if not leaves:
        numbers = jax.tree_util.tree_leaves(batch)
        hint = (" Python numbers are not mapped over: give the values as an array, e.g. "
                "jnp.asarray([...]) (or a dict of arrays)." if numbers else "")
        raise ValueError(f"ensemble: the batch has no array leaves to map over.{hint}")
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        shapes = [tuple(np.shape(x)) for x in leaves]
        raise ValueError(
            f"ensemble: every array leaf of the batch needs the same leading (batch) axis; got shapes {shapes}."
        )
    return sizes.pop()


def pad_batch(batch: PyTree, size: int, target: int) -> PyTree:
    """``batch`` (``size`` members) padded to ``target`` members by repeating its last."""
    if target == size:
        return batch

    def pad(x):
        if not (eqx.is_array(x) or isinstance(x, np.ndarray)):
            return x
        reps = jnp.repeat(jnp.asarray(x)[-1:], target - size, axis=0)  # repeat a real member: no NaNs
        return jnp.concatenate([jnp.asarray(x), reps])

    return jax.tree_util.tree_map(pad, batch)


def _shard_map(fn: Callable, mesh: Mesh, in_specs: Any, out_specs: PartitionSpec) -> Callable:
    """``jax.shard_map(fn)`` over ``mesh``, its inputs split by ``in_specs`` and its outputs
    by ``out_specs``, without JAX's replication check (``check_vma``): equinox's run-time checks (``simulate``'s
    finiteness check, `error_if_member`) are a ``lax.cond`` whose error branch returns a
    value that JAX's check calls unvarying and whose other branch the member's varying value,
    so with the check a shard_map of ``simulate`` fails to trace ("cond branches must have
    equal output types"). Nothing here relies on the check: the members are independent."""
    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:  # older jax: the experimental spelling, whose check is check_rep
        from jax.experimental.shard_map import shard_map
    check = "check_vma" if "check_vma" in inspect.signature(shard_map).parameters else "check_rep"
    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, **{check: False})


class _ShardVmap(eqx.Module):
    """`shard_vmap`'s function: a Module, so that two of the same ``fn`` and mesh compare
    equal and reuse one compiled program (``eqx.filter_jit`` keys its cache on it)."""

    fn: Callable
    mesh: Mesh = eqx.field(static=True)

    def __call__(self, batch, *shared):
        arrays, static = eqx.partition(batch, eqx.is_array)
        shared_arrays, shared_static = eqx.partition(shared, eqx.is_array)
        out_static = []

        def local(arrays, shared_arrays):
            args = eqx.combine(shared_arrays, shared_static)
            # Without shared arguments, fn itself: a wrapper changed the program's metadata.
            fn = (lambda member: self.fn(member, *args)) if shared else self.fn
            out = eqx.filter_vmap(fn)(eqx.combine(arrays, static))
            out_arrays, kept = eqx.partition(out, eqx.is_array)
            out_static.append(kept)  # leaves that are not arrays cannot cross shard_map
            return out_arrays

        split = PartitionSpec(*self.mesh.axis_names)
        # The shared arguments whole on every device (PartitionSpec()): no communication.
        out = _shard_map(local, self.mesh, (split, PartitionSpec()), split)(arrays, shared_arrays)
        return eqx.combine(out, out_static[0])


def shard_vmap(fn: Callable, devices: Sequence[jax.Device]) -> Callable:
    """``eqx.filter_jit(eqx.filter_vmap(fn))`` with the batch split evenly over ``devices``:
    ``jax.shard_map`` over a 1-D ``Mesh`` of them, each device mapping ``fn`` over its own
    members in a program of its own, with no communication between devices.

    Why not ``jax.jit`` of the vmap on inputs placed with a ``NamedSharding`` (XLA's automatic
    partitioning)? Its result is the same, but XLA cannot split what it does not see inside:
    the delay history's native CPU kernels (`_native.py`) were run on every member on every
    device, their inputs gathered from all devices at every step, and the XLA lowering of the
    same reads gathered the written values at every step too (measured: 8 members of a
    delayed 4-region network on 2 devices, each device's history ``c64[8, 204]``, 4
    all-gathers in the loops; under shard_map ``c64[4, 204]`` and none).

    **Arguments:**

    - `fn`: ``fn(member, *shared)``, a function of one member (and of the arguments shared by
      all members, if any) returning a pytree (leaves that are not arrays come back as they
      are, as ``eqx.filter_vmap`` gives them).
    - `devices`: the devices; the batch's leading axis must be a multiple of their number
      (`ensemble` pads it).

    **Returns:** a function ``f(batch, *shared)``: ``fn`` mapped over ``batch``'s leading
    axis, each of ``shared`` passed whole to every member (``jax.vmap``'s ``in_axes=None``),
    a copy of it on every device (the Fitter's target, parameter box and key). Place the
    inputs with `place` first: arrays committed to one device cannot enter a program of
    several.
    """
    return eqx.filter_jit(_ShardVmap(fn, _mesh(devices)))


def check_devices(devices: Any) -> list:
    """``devices`` as a list (default ``jax.devices()``), refused eagerly when it is not a
    non-empty sequence of distinct ``jax.Device``s (`ensemble`'s and the Fitter's)."""
    if devices is None:
        return list(jax.devices())
    if isinstance(devices, jax.Device):
        raise TypeError(f"devices must be a list of devices, got one device {devices}: pass devices=[{devices}].")
    if not isinstance(devices, Sequence) or isinstance(devices, str):
        raise TypeError(f"devices must be a list of jax devices (e.g. jax.devices()[:2]), got {type(devices).__name__}.")
    devices = list(devices)
    wrong = [d for d in devices if not isinstance(d, jax.Device)]
    if wrong or not devices:
        raise ValueError(
            "devices must be a non-empty list of jax devices (e.g. jax.devices()[:2], or None for all of them); "
            + (f"got {wrong[0]!r}." if wrong else "got an empty list.")
        )
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices lists a device twice ({devices}); give each device once.")
    return devices


def _mesh(devices: Sequence[jax.Device]) -> Mesh:
    return Mesh(np.asarray(list(devices)), ("batch",))


def place(tree: PyTree, devices: Sequence[jax.Device], *, split: bool) -> PyTree:
    """The array leaves of ``tree`` put on ``devices`` as `shard_vmap` takes them: split
    along their leading axis (``split=True``, a batch whose length is a multiple of the
    devices') or a whole copy on each (``split=False``, its shared arguments)."""
    sharding = NamedSharding(_mesh(devices), PartitionSpec("batch") if split else PartitionSpec())
    return jax.tree_util.tree_map(
        lambda x: jax.device_put(x, sharding) if eqx.is_array(x) or isinstance(x, np.ndarray) else x, tree
    )


def cpu_slices(size: int, min_slice: int = 4) -> int:
    """Threads to evaluate a batch of ``size`` members with at once: on a CPU, one per
    core this process may use, each with at least ``min_slice`` members; elsewhere (a GPU
    runs one vmap best) 1.

    Within one call XLA splits each small batched operation across the cores, and the
    handover costs more than it saves; separate calls at once keep each core on its own
    members. Measured on 2 cores: 32 candidates of a delayed 80-region network (the
    nevergrad Fitter's population) 0.39-0.48 s as two 16-member vmaps at once against
    0.57-0.68 s as one vmap. Four threads on 2 cores were 2-3x slower than two: threads
    beyond the cores only compete.
    """
    if jax.default_backend() != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, size // min_slice))


# Members per call where a CPU batch is larger than one such slice per thread (`cpu_plan`).
# One 64-byte vector of float32 members: the delayed read's kernel works in such chunks
# (a narrower one costs as much as a full one), and a 16-member slice of an
# 80-region network with 20 ms delays keeps its history (about 1 MB) in a core's share of
# the caches while the slice runs to its end. Measured on 2 cores (W3: 256 members of that
# network for 1 s, medians of 5-7 in alternation): 1.49-1.63 s as 16 slices of 16 taken in
# turn by two threads, 1.66-1.82 s as slices of 32, 1.76-1.85 s of 64, 1.96-2.17 s as two
# slices of 128 at once; the node model alone (no coupling) within the noise of each other.
CPU_SLICE_MEMBERS = 16


def cpu_plan(size: int, threads: int | None = None) -> tuple[int, int, int]:
    """How a batch of ``size`` members is evaluated on a single device:
    ``(threads, slices, members per slice)``, the slices (the last padded) taken in turn
    by ``threads`` threads.

    ``threads`` given: that many equal slices, all at once, or fewer where that many
    would leave one all padding (7 members with ``threads=5``: 4 slices of 2, the last
    padded). Default: `cpu_slices` threads;
    where the batch has more than `CPU_SLICE_MEMBERS` members per thread, slices of that
    many members (so a thread evaluates several, one after another; with one thread too:
    W3's 256 members on one core took 2.83 s in 16-member slices against 3.43 s as one
    call), else one equal slice per thread. Off a CPU (the default backend): one slice.
    """
    if threads is not None:
        threads = max(1, min(size, int(threads)))
        per = -(-size // threads) if size else 0
        threads = -(-size // per) if size else threads
        return threads, threads, per
    if size == 0 or jax.default_backend() != "cpu":
        return 1, 1, size
    threads = max(1, min(size, cpu_slices(size)))
    per = min(-(-size // threads), CPU_SLICE_MEMBERS)
    return threads, -(-size // per), per


# Signatures (function, argument structure, shapes and static values) already run once:
# their compiled code is in JAX's cache, so their slices can all start at once.
_RUN_BEFORE: set = set()


def _signature(fn: Callable, args: tuple) -> tuple | None:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    key = (fn, treedef, tuple((x.shape, x.dtype) if eqx.is_array(x) else x for x in leaves))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def run_slices(
    fn: Callable,
    parts: Sequence[tuple],
    pool: ThreadPoolExecutor | None = None,
    threads: int | None = None,
    when_traced: Callable[[], Any] | None = None,
) -> list:
    """``[fn(*args) for args in parts]``, finished, the calls made in threads (``pool``,
    else a new one of ``threads`` threads, default one per part), each thread taking the
    next part when its call returns: a compiled JAX call releases the GIL while it runs.
    The first call of a signature runs alone first, so that it is compiled once, not once
    per thread.

    When that first call returns tracers, ``fn`` is being traced (it closes over a traced
    value: ``ensemble`` under ``jax.grad`` / ``jax.jit`` with a concrete batch), and JAX's
    trace is local to this thread: the other calls are made here too, one after another
    (in threads they raised ``UnexpectedTracerError``), or, given ``when_traced``, its
    result is returned instead (``[when_traced()]``: e.g. one call of the whole batch,
    rather than a traced program per part)."""
    done = {}
    key = _signature(fn, parts[0])
    if len(parts) == 1 or key is None or key not in _RUN_BEFORE:
        done[0] = jax.block_until_ready(fn(*parts[0]))
        if is_traced(done[0]):
            if when_traced is not None:
                return [when_traced()]
            return [done[0]] + [fn(*args) for args in parts[1:]]
        if key is not None:
            if len(_RUN_BEFORE) >= 1024:  # keys hold their functions: do not keep them all
                _RUN_BEFORE.clear()
            _RUN_BEFORE.add(key)
    rest = [i for i in range(len(parts)) if i not in done]
    if rest:
        workers = len(rest) if threads is None else max(1, min(threads, len(rest)))
        own = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bmx-slice") if pool is None else None
        # Each call in the caller's context variables (a copy each: a context is entered by
        # one thread at a time): what the caller set for its thread, e.g. the compat
        # brainstate.environ's values, holds in the slices too.
        caller = contextvars.copy_context()

        def call(i):
            return caller.copy().run(lambda: jax.block_until_ready(fn(*parts[i])))

        try:
            for i, out in zip(rest, (pool or own).map(call, rest)):
                done[i] = out
        finally:
            if own is not None:
                own.shutdown()
    return [done[i] for i in range(len(parts))]


def split_batch(batch: PyTree, size: int, slices: int, per: int | None = None) -> tuple[list, int]:
    """``batch`` (``size`` members) as ``slices`` slices of ``per`` members (default: equal
    slices, as few members each as cover the batch), the last padded by repeating the last
    member (`pad_batch`): ``(slices, members per slice)``."""
    per = -(-size // slices) if per is None else per
    batch = pad_batch(batch, size, per * slices)
    return [_members_of(batch, i * per, (i + 1) * per) for i in range(slices)], per


def _members_of(batch: PyTree, start: int, stop: int) -> PyTree:
    """Members ``[start, stop)`` of ``batch``: its array leaves sliced, the rest as they are."""
    return jax.tree_util.tree_map(
        lambda x: x[start:stop] if eqx.is_array(x) or isinstance(x, np.ndarray) else x, batch
    )


def _join(outs: Sequence[PyTree], size: int) -> PyTree:
    """The outputs of the slices (or shards) of a padded batch as one output of ``size``
    members: array leaves concatenated along the batch axis and the padding dropped;
    leaves that are not arrays (``eqx.filter_vmap`` returns them unbatched) taken from the
    first output."""
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs)[:size] if eqx.is_array(xs[0]) else xs[0], *outs)


# Per signature (`_signature`): what one call of it allocates, ``(temporaries, outputs)``
# in bytes, or None where the backend does not say.
_PROGRAM_BYTES: dict = {}


def _program_bytes(mapped: Callable, args: tuple) -> tuple[int, int] | None:
    """``(temporaries, outputs)`` of one call ``mapped(*args)``, from its compiled program
    (compiled here once per signature; the call that follows reuses it from JAX's cache)."""
    key = _signature(mapped, args)
    if key is not None and key in _PROGRAM_BYTES:
        return _PROGRAM_BYTES[key]
    try:
        compiled = mapped.lower(*args).compile()
    except jax.errors.UnexpectedTracerError:
        # ``fn`` closes over a value traced outside (``ensemble`` under ``jax.grad``): the
        # call is traced into that computation, not run here, so there is nothing to check.
        return None
    except AttributeError:
        # EQX_ON_ERROR=breakpoint: equinox replaces jax.jit with a wrapper that has no
        # .lower (JAX issue #16732), so eqx.filter_jit(fn).lower fails: the check cannot
        # read the program, and the run goes ahead unchecked (it ended with this error).
        if os.environ.get("EQX_ON_ERROR") == "breakpoint":
            return None
        raise
    found = program_bytes(compiled)
    if key is not None:
        if len(_PROGRAM_BYTES) >= 1024:  # keys hold their functions: do not keep them all
            _PROGRAM_BYTES.clear()
        _PROGRAM_BYTES[key] = found
    return found


def _does_not_fit_message(
    *, need, available, device, programs, members, temporaries, outputs, joined, chunked, all_outputs, per_member, size,
    caller="ensemble", option="chunk", calls=None,
) -> str:
    where = "this machine" if device.platform == "cpu" else str(device)
    in_all = f" ({calls} in all, their outputs kept until the last)" if calls and calls > programs else ""
    text = (
        f"{caller}: evaluating {size} members needs about {format_bytes(need)} of memory, "
        f"{format_bytes(available)} is left on {where}: {programs} call(s) of {members} members at once{in_all}, each "
        f"with {format_bytes(temporaries)} of XLA temporaries and {format_bytes(outputs)} of outputs"
        + (" (then joined: a copy of them all)" if joined else "")
        + (f", and {format_bytes(all_outputs)} of host memory for every member's outputs" if chunked else "")
        + ". "
    )
    # A sweep keeps a few numbers per point (its summaries), not its runs' outputs.
    host = 0 if caller == "sweep" else all_outputs
    fits = members_that_fit(available - host, per_member)
    if fits >= 1:
        text += (
            f"Evaluate fewer members per call, one call after another: {option}={min(fits, max(1, size - 1))}"
            + (f" (the outputs then gather in host memory, {format_bytes(all_outputs)} in all). " if host else ". ")
        )
    elif host > FITTING_SHARE * available:
        text += f"The outputs alone take {format_bytes(all_outputs)}, so chunking does not help. "
    else:
        text += f"Even one member takes about {format_bytes(per_member)}, so chunking does not help. "
    return text + (
        "Or return less per member: record less often (simulate's sample_every) or fewer "
        "monitors, or reduce inside the function (e.g. brainmass_eqx.metrics.functional_connectivity, a mean) so "
        "that only small outputs come back. check_memory=False runs it anyway (the estimate is XLA's "
        "own count of what the call allocates)."
    )


def _check_fits(
    mapped: Callable, args: tuple, *, members: int, programs: int, joined: bool, device: jax.Device,
    size: int, chunked: bool, calls: int | None = None,
) -> None:
    """Raise `MemoryError` before running where ``programs`` calls of ``mapped(*args)`` at
    once (each of ``members`` members; ``calls`` in all, default ``programs``, whose
    outputs are all kept), or the join of their outputs after them (``joined``: the
    outputs and their concatenation), need more memory than ``device`` has left; where the
    run is ``chunked``, the host arrays that gather the outputs of all ``size`` members
    count too. The error's ``details`` rebuild its message for `sweep`. Nothing is checked
    where XLA or the system does not say."""
    found = _program_bytes(mapped, args)
    available = available_bytes(device)
    if found is None or available is None:
        return
    temporaries, outputs = found
    members = max(members, 1)  # an empty batch is one call of no members
    all_outputs = outputs / members * size
    # The calls' temporaries are freed before their outputs are joined; the outputs of the
    # calls made before the last ones at once wait for the join.
    calls = programs if calls is None else max(calls, programs)
    per_call = max(temporaries + outputs, 2 * outputs if joined else 0)
    waiting = (calls - programs) * outputs * (2 if joined else 1)
    need = programs * per_call + waiting + (all_outputs if chunked else 0)
    if need > available:
        details = dict(
            need=need, available=available, device=device, programs=programs, members=members,
            temporaries=temporaries, outputs=outputs, joined=joined, chunked=chunked, all_outputs=all_outputs,
            per_member=per_call / members, size=size, calls=calls,
        )
        err = MemoryError(_does_not_fit_message(**details))
        err.details = details
        raise err


def _evaluate(
    fn: Callable, batch: PyTree, size: int, devices: list, threads: int | None, check_memory: bool,
    chunk_of: int | None = None,
) -> PyTree:
    """One `ensemble` call of ``fn`` over ``batch`` (``size`` members): a vmap per CPU slice,
    or on one device, or a `shard_vmap` over several; the memory it needs checked first
    (`_check_fits`) when ``check_memory``.
    ``chunk_of``: the call is one chunk of a run of that many members (`_chunked`)."""
    n_dev = len(devices)

    def check(mapped, args, members, programs, joined, device, calls=None):
        if check_memory:
            _check_fits(
                mapped, args, members=members, programs=programs, joined=joined, device=device,
                size=size if chunk_of is None else chunk_of, chunked=chunk_of is not None, calls=calls,
            )

    if n_dev == 1:
        mapped = eqx.filter_jit(eqx.filter_vmap(fn))
        if is_traced(batch):
            return mapped(batch)
        # Committed to the device asked for: uncommitted arrays run on the default device.
        batch = jax.tree_util.tree_map(
            lambda x: jax.device_put(x, devices[0]) if eqx.is_array(x) or isinstance(x, np.ndarray) else x, batch
        )
        # No empty slices; an empty batch (size 0) is one vmap, which takes it as jax.vmap does.
        at_once, slices, per = cpu_plan(size, threads) if devices[0].platform == "cpu" else (1, 1, size)
        if slices <= 1:
            check(mapped, (batch,), max(size, 1), 1, False, devices[0])
            return mapped(batch)
        parts, per = split_batch(batch, size, slices, per)
        check(mapped, (parts[0],), per, at_once, True, devices[0], calls=slices)
        outs = run_slices(mapped, [(part,) for part in parts], threads=at_once, when_traced=lambda: mapped(batch))
        return _join(outs, size)
    padded_size = -(-size // n_dev) * n_dev
    batch = pad_batch(batch, size, padded_size)
    sharded = shard_vmap(fn, devices)
    batch = place(batch, devices, split=True)
    # XLA's figures for a sharded program are per device; host devices share one memory.
    on_host = all(d.platform == "cpu" for d in devices)
    check(sharded, (batch,), padded_size // n_dev, n_dev if on_host else 1, True, devices[0])
    out = sharded(batch)
    return out if padded_size == size else _join([out], size)


def _chunked(
    fn: Callable, batch: PyTree, size: int, chunk: int, devices: list, threads: int | None, check_memory: bool,
) -> PyTree:
    """`_evaluate` over ``chunk`` members at a time, one call after another, each call's
    outputs copied into NumPy arrays of all ``size`` members as it finishes (the last chunk
    padded, so that every call has one compiled shape)."""
    out = None
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        part = pad_batch(_members_of(batch, start, stop), stop - start, chunk)
        got = _evaluate(fn, part, chunk, devices, threads, check_memory, chunk_of=size)
        if is_traced(got):
            raise ValueError(
                "ensemble: chunk cannot be used where ensemble is traced (under jax.jit / grad, or fn closing "
                "over a traced value): it copies each chunk's outputs to host memory. Leave chunk=None there."
            )
        if out is None:
            # Every member's outputs, allocated once (a concatenation of the chunks at the end
            # would hold them twice).
            out = jax.tree_util.tree_map(
                lambda x: np.empty((size,) + x.shape[1:], x.dtype) if eqx.is_array(x) else x, got
            )

        def put(dest, x, start=start, stop=stop):
            if isinstance(dest, np.ndarray):
                dest[start:stop] = np.asarray(x)[: stop - start]
            return dest

        out = jax.tree_util.tree_map(put, out, got)
        del got
        release_free_memory()
    return out


@suggests_keywords
def ensemble(
    fn: Callable[[PyTree], PyTree],
    batch: PyTree,
    *,
    devices: Sequence[jax.Device] | None = None,
    threads: int | None = None,
    chunk: int | None = None,
    check_memory: bool = True,
) -> PyTree:
    """Evaluate ``fn`` on every member of ``batch``: ``vmap`` per device, sharded across devices.

    **Arguments:**

    - `fn`: a function of one member (e.g. a model, a dict of parameters, a key) returning a
      pytree of arrays. It must be traceable (``jax.jit`` / ``jax.vmap``-safe).
    - `batch`: a pytree whose array leaves share a leading batch axis ``B`` (for a batch of
      models: ``eqx.filter_vmap(make_model)(values)``).
    - `devices`: the devices to shard over; default ``jax.devices()``. Each runs the vmap of
      its own members, with no communication between them (`shard_vmap`). ``B`` need not be
      a multiple of their number: the batch is padded and the padding dropped (the output
      then whole on every device). With one device, the batch is evaluated on that device.
    - `threads`: on a single CPU device, the batch is cut into this many equal slices
      (padded like the shards; fewer where one would hold padding only), whose vmaps run
      at once in threads; ``threads=1`` is one vmap call. Default None: one thread per
      core (`cpu_slices`), and a batch of more than `CPU_SLICE_MEMBERS` (16) members per
      thread cut into slices of 16 (the last padded), each thread taking the next slice
      when its call returns: small calls keep a core's members in its caches (256 members
      of a delayed 80-region network, 2 cores: 1.5-1.6 s against 2.0-2.2 s as two slices
      of 128; one core: 2.8 s against 3.4 s as one call). One vmap call off a CPU, and
      when ``ensemble`` is itself being traced.
    - `chunk`: members per call, the calls made one after another (the last padded), each
      call's outputs copied to host memory as it finishes: the memory of one call of
      ``chunk`` members plus the outputs of all ``B`` (a single vmap needs the outputs and
      XLA's temporaries besides: a third to two thirds more for a delayed 80-region network
      recording every 1 ms or every step). The result's
      array leaves are then NumPy arrays. Each chunk is evaluated as a call of ``chunk``
      members would be (its own slices or shards); not under ``jax.jit`` / ``jax.grad``.
      Default None: one call.
    - `check_memory`: before running, compare the memory the compiled call allocates
      (XLA's temporaries and outputs, times the slices or host devices at once, plus their
      join) with what is left (on a CPU: Linux's ``MemAvailable``, or a container's
      cgroup limit; on a GPU: its memory limit less what is in use), and raise
      `MemoryError` with a ``chunk`` that fits, instead of a run that Linux kills for
      memory (or that swaps) midway. Checked once per compiled shape (the compilation is
      the one the run uses); not where ``ensemble`` is traced. ``False`` skips it.

    **Returns:** ``fn``'s outputs stacked along a leading axis of length ``B`` (``B = 0``
    included); leaves of ``fn``'s output that are not arrays are returned as they are, as
    ``eqx.filter_vmap`` does. Equal to ``eqx.filter_jit(eqx.filter_vmap(fn))(batch)`` up to
    rounding: XLA compiles each slice, shard or chunk size separately, and its vectorised
    loops may round differently (measured: 1 ulp, 1.2e-7, on a 20 ms Hopf run, for 2-5
    slices or 4 devices; bitwise equal with ``threads=1`` on one device).

    **Raises:** `MemoryError` (with ``check_memory``) where the call cannot fit, naming
    the bytes needed and left and a ``chunk`` that fits.
    """
    # Its own check (check_memory) counts the whole compiled program: simulate's check of
    # its recording under this vmap would be a second, different refusal (and would refuse
    # check_memory=False).
    with recordings_checked_elsewhere():
        return _ensemble(fn, batch, devices, threads, chunk, check_memory)


def _ensemble(fn, batch, devices, threads, chunk, check_memory) -> PyTree:
    size = batch_size_of(batch)
    devices = check_devices(devices)
    if threads is not None:
        threads = check_int(threads, "ensemble: threads", 1, hint=" (or None for one per CPU core)")
    if chunk is not None:
        chunk = check_int(chunk, "ensemble: chunk", 1, hint=" (members per call; or None for one call)")
    if chunk is None or chunk >= size:
        return _evaluate(fn, batch, size, devices, threads, check_memory)
    if is_traced(batch):
        raise ValueError(
            "ensemble: chunk cannot be used on a traced batch (under jax.jit / vmap / grad): it copies each "
            "chunk's outputs to host memory. Leave chunk=None there."
        )
    return _chunked(fn, batch, size, chunk, devices, threads, check_memory)


def _grid_values(name: str, v: Any) -> tuple[np.ndarray, str | None]:
    """A grid's values as a NumPy array of numbers and their unit (None: plain numbers).

    ``np.asarray`` of a unxt Quantity is its magnitudes without the unit, so a grid of
    ``Quantity([0.01, 0.02], 's')`` reached ``simulate_fn`` as the plain numbers 0.01 and
    0.02, which a model reads in its canonical unit (ms): tau_E = 0.01 ms, silently. The
    unit is kept here and put back on each point (`_PointSummaries`). A list of Quantities
    is read in the unit of its first element."""
    if isinstance(v, (list, tuple)) and v and all(is_quantity(x) for x in v):
        unxt = unxt_module()
        unit = unxt.unit_of(v[0])
        try:
            v = quantity(np.asarray([np.asarray(unxt.ustrip(unit, x)) for x in v]), unit)
        except Exception as err:  # noqa: BLE001 (unxt raises several types on a mismatch)
            raise ValueError(
                f"sweep: grid[{name!r}] mixes Quantities of different dimensions ({[str(unxt.unit_of(x)) for x in v]}); "
                "give values of one dimension."
            ) from err
    elif isinstance(v, (list, tuple)) and any(is_quantity(x) for x in v):
        raise TypeError(
            f"sweep: grid[{name!r}] mixes Quantities and plain numbers; give all values as Quantities "
            "(e.g. unxt.Quantity([10, 20], 'ms')) or all as plain numbers in the parameter's unit."
        )
    if is_quantity(v):
        unit = str(unxt_module().unit_of(v))
        return np.asarray(v.value), unit
    return np.asarray(v), None


def _grid_table(grid: Mapping[str, Any], product: bool) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The grid's points as columns of numbers, and ``{name: unit}`` of the columns given
    as Quantities (their numbers are in that unit)."""
    if not grid:
        raise ValueError("sweep: grid is empty; give {parameter name: values}.")
    values, units = {}, {}
    for name, v in grid.items():
        arr, unit = _grid_values(name, v)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"sweep: grid[{name!r}] must be a non-empty 1-D sequence of values, got shape {arr.shape}.")
        values[name] = arr
        if unit is not None:
            units[name] = unit
    if product:
        combos = list(itertools.product(*values.values()))
        return {name: np.asarray([c[i] for c in combos]) for i, name in enumerate(values)}, units
    lengths = {name: v.size for name, v in values.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"sweep(product=False) needs equally long value lists, got lengths {lengths}.")
    return values, units


def _fingerprint(
    table: Mapping[str, np.ndarray], summaries: Sequence[str], chunk_size: int, computation: str, units: Mapping[str, str]
) -> str:
    """What a checkpoint's rows depend on: the grid, the summary names, the chunk size and
    ``computation`` (`_trace_point`'s digest of what ``simulate_fn`` and the summaries compute)."""
    h = hashlib.sha256()
    for name in sorted(table):
        h.update(name.encode())
        h.update(np.ascontiguousarray(table[name]).tobytes())
    h.update(",".join(summaries).encode())
    h.update(str(chunk_size).encode())
    h.update(computation.encode())
    if units:  # the same numbers in another unit are another grid (plain grids hash as before)
        h.update(repr(sorted(units.items())).encode())
    return h.hexdigest()


def _check_grid_names(simulate_fn: Callable, grid: Mapping[str, Any]) -> None:
    """Each grid name is passed as a keyword: refuse names ``simulate_fn`` cannot take
    before anything is traced (Python's own error named the lambda, not the grid)."""
    takes = keyword_names(simulate_fn)
    unknown = [] if takes is None else [name for name in grid if name not in takes]
    if unknown:
        raise ValueError(
            f"sweep: grid name(s) {unknown}{did_you_mean(unknown[0], takes)} are not parameters of simulate_fn, "
            f"which is called with one keyword per grid name; it takes {list(takes)}."
        )
    if not grid:
        return  # `_grid_table` says so
    try:
        params = inspect.signature(simulate_fn).parameters.values()
    except (TypeError, ValueError):
        return
    required = [
        p.name for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in grid
    ]  # fmt: skip
    if required:
        raise ValueError(
            f"sweep: simulate_fn requires {required}, which the grid does not give; add "
            f"{'it' if len(required) == 1 else 'them'} to the grid, or give a default "
            "(e.g. functools.partial(simulate_fn, name=value))."
        )


def _check_summaries(summaries: Any) -> None:
    if not isinstance(summaries, Mapping):
        raise TypeError(
            "sweep: summaries must be a dict {column name: fn(result) -> scalar}, got "
            f"{type(summaries).__name__}; e.g. summaries={{'std': lambda x: x.std()}}."
        )
    if not summaries:
        raise ValueError("sweep: summaries is empty; give {column: fn(result) -> scalar}.")
    for name, fn in summaries.items():
        if not callable(fn):
            raise TypeError(f"sweep: summaries[{name!r}] must be a function fn(result) -> scalar, got {type(fn).__name__}.")


def _trace_point(point_summaries: Callable, table: Mapping[str, np.ndarray]) -> str:
    """Trace one point (no compilation): a summary that is not a scalar is refused before a
    whole chunk of runs is spent on it. Returns a digest of the traced program (the jaxpr's
    text, in which JAX masks object addresses, and the arrays it closes over): a changed
    ``simulate_fn`` or summary body changes it, so a checkpoint of the old one is refused
    instead of being mixed with the new rows (the grid and the names alone let that through)."""
    point = {name: jnp.asarray(v[0]) for name, v in table.items()}
    closed, out_shapes = jax.make_jaxpr(point_summaries, return_shape=True)(point)
    h = hashlib.sha256(str(closed.jaxpr).encode())
    for const in closed.consts:
        if eqx.is_array(const) and jnp.issubdtype(const.dtype, jax.dtypes.prng_key):
            const = jax.random.key_data(const)
        h.update(np.asarray(const).tobytes() if eqx.is_array(const) else repr(const).encode())
    for name, out in out_shapes.items():
        if out.shape != ():
            raise ValueError(
                f"sweep: summary {name!r} must return a scalar per run, got shape {out.shape} (one column "
                f"holds one number per grid point). Reduce it in the summary, e.g. "
                f"lambda result: jnp.mean(...), or give one column per region: "
                f"{{f'{name}_{{i}}': lambda result, i=i: ...[i] for i in range(n)}}."
            )
    return h.hexdigest()


class _PointSummaries(eqx.Module):
    """``point -> {column: summary(simulate_fn(**point))}``: the function `sweep` maps over
    its grid.

    A Module rather than a closure made inside each `sweep` call: JAX caches a compiled
    function by the function's identity, and a fresh closure is a new function every call,
    so every sweep compiled its runs again (4 points of a 2-region Hopf over 10 ms: 0.9 s
    a sweep, 0.04 s once the program is reused). Two of these compare equal when they hold the same ``simulate_fn``
    and summaries (arrays inside them are arguments of the compiled program, not part of
    its key), so a second sweep of the same functions, on another grid of the same chunk
    size, reuses the program.
    """

    simulate_fn: Callable
    summaries: tuple[tuple[str, Callable], ...]
    # (name, unit) of the grid columns given as Quantities: their points are passed back
    # to simulate_fn as Quantities in that unit.
    units: tuple[tuple[str, str], ...] = eqx.field(static=True, default=())

    def __call__(self, point):
        if self.units:
            point = {**point, **{name: quantity(point[name], unit) for name, unit in self.units}}
        out = self.simulate_fn(**point)
        return {name: jnp.asarray(fn(out)) for name, fn in self.summaries}


def _point_function(simulate_fn: Callable, summaries: Mapping[str, Callable], units: Mapping[str, str]) -> Callable:
    """The `_PointSummaries` of ``simulate_fn`` and ``summaries``, or, where one of them
    cannot key JAX's cache (an unhashable callable, e.g. a dataclass with ``eq=True``), a
    closure over it: compiled again in every sweep, but it runs."""
    point = _PointSummaries(simulate_fn, tuple(summaries.items()), tuple(units.items()))
    try:
        hash(eqx.partition(point, eqx.is_array)[1])
    except TypeError:
        return lambda p: point(p)
    return point


def _load_sweep_checkpoint(path: str, names: list[str]) -> dict[str, Any]:
    """A sweep checkpoint's fingerprint, finished-point count and summary columns. A damaged
    file (a partial copy) or another ``.npz`` failed with zipfile's or NumPy's own words
    ("File is not a zip file", "'fingerprint is not a file in the archive'")."""
    fix = "delete it (the sweep then starts afresh) or pass another path."
    try:
        with np.load(path, allow_pickle=False) as data:
            files = sorted(data.files)
            saved = {name: data[name] for name in ("fingerprint", "done", *names) if name in files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"sweep: checkpoint {path!r} is damaged ({type(err).__name__}: {err}); {fix}") from err
    if "fingerprint" not in saved or "done" not in saved:
        raise ValueError(f"sweep: checkpoint {path!r} is not a sweep checkpoint (it holds {files[:8]}); {fix}")
    return dict(saved, fingerprint=str(saved["fingerprint"]), done=int(saved["done"]))


@suggests_keywords
def sweep(
    simulate_fn: Callable[..., PyTree],
    grid: Mapping[str, Any],
    summaries: Mapping[str, Callable[[PyTree], Any]],
    *,
    product: bool = True,
    chunk_size: int = 64,
    devices: Sequence[jax.Device] | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    as_dataframe: bool = False,
    check_memory: bool = True,
):
    """Evaluate ``simulate_fn(**point)`` over a parameter grid and summarise each run.

    **Arguments:**

    - `simulate_fn`: called with one keyword per grid name (scalars) and returning anything
      the summaries read (e.g. a `Trajectory`). Traceable.
    - `grid`: ``{name: 1-D values}``: plain numbers, or a unxt Quantity array (or a list of
      Quantities, read in the first one's unit), whose points reach ``simulate_fn`` as
      Quantities in that unit.
    - `summaries`: ``{column: fn(result) -> scalar}``, e.g. the FC correlation with a target,
      a mean rate, a dominant frequency (see `brainmass_eqx.metrics`).
    - `product`: the Cartesian product of the value lists (default) or, with ``False``,
      equally long lists zipped point by point.
    - `chunk_size`: points evaluated per `ensemble` call (bounds memory: a chunk's runs are
      held whole while its summaries are computed).
    - `devices`: passed to `ensemble`.
    - `progress`: a progress bar over chunks.
    - `checkpoint`: a ``.npz`` path. Finished chunks are written to it; rerunning the same
      sweep resumes after the last finished chunk. A different grid, summary set, chunk
      size, or a change to what ``simulate_fn`` or a summary computes (the traced program
      or the arrays it closes over) is an error, not a silent mix; so is a damaged file.
      The path is checked before the first chunk runs (its folder must exist and be
      writable); each save replaces the file whole (a sweep killed while saving keeps the
      previous one).
    - `as_dataframe`: return a ``pandas.DataFrame`` (pandas must be installed).
    - `check_memory`: as `ensemble`'s: a chunk that cannot fit in the memory left raises
      `MemoryError` (naming a ``chunk_size`` that fits) before it runs.

    **Returns:** a dict of 1-D NumPy arrays: the grid columns, then one column per summary.
    A grid given as Quantities gives its column as a Quantity in the same unit (in a
    DataFrame: its numbers in that unit).
    """
    chunk_size = check_int(chunk_size, "sweep: chunk_size", 1)
    _check_summaries(summaries)
    clash = set(summaries) & set(grid)
    if clash:
        raise ValueError(f"sweep: summary names {sorted(clash)} clash with grid names.")
    if as_dataframe:
        # Checked now, not after the whole grid has run.
        try:
            import pandas  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "sweep(as_dataframe=True) needs pandas, which is not installed: pip install pandas, "
                "or leave as_dataframe False for a dict of columns (pandas.DataFrame(table) later)."
            ) from err
    _check_grid_names(simulate_fn, grid)
    table, units = _grid_table(grid, product)
    n = len(next(iter(table.values())))
    names = list(summaries)

    point_summaries = _point_function(simulate_fn, summaries, units)
    with recordings_checked_elsewhere():  # the chunks' ensemble checks the memory (check_memory)
        traced = _trace_point(point_summaries, table)
    fingerprint = _fingerprint(table, names, chunk_size, traced, units)
    # JAX's float (float32 unless x64 is on), as the runs compute them; NaN until computed.
    results = {name: np.full(n, np.nan, dtype=jnp.result_type(float)) for name in names}
    done = 0
    if checkpoint is not None:
        # Now, not after the first chunk has run.
        checkpoint = check_writable(checkpoint, "sweep: checkpoint")
    if checkpoint is not None and os.path.exists(checkpoint):
        saved = _load_sweep_checkpoint(checkpoint, names)
        # Checked first: in the other precision the traced computation differs too, and the
        # checkpoint was refused as "a different sweep", which named neither cause nor fix.
        written = [saved[name].dtype for name in names if name in saved and np.issubdtype(saved[name].dtype, np.floating)]
        x64 = bool(jax.config.jax_enable_x64)
        if written and (np.dtype(written[0]) == np.float64) != x64:
            was = not x64
            raise ValueError(
                f"sweep: checkpoint {checkpoint!r} was written with jax_enable_x64 {PRECISION_WORDS[was]}; it is "
                f"{PRECISION_WORDS[x64]} in this process. Resume with jax.config.update('jax_enable_x64', {was}) "
                "at the start of the script, or delete it (or pass another path) to start afresh."
            )
        if saved["fingerprint"] != fingerprint:
            raise ValueError(
                f"sweep: checkpoint {checkpoint!r} belongs to a different sweep (the grid, the "
                "summaries, what simulate_fn or a summary computes, or chunk_size changed); delete it or "
                "pass another path."
            )
        done = saved["done"]
        for name in names:
            results[name][:done] = saved[name][:done]

    starts = range(done, n, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="sweep", unit="chunk", total=len(starts))
    for start in starts:
        stop = min(start + chunk_size, n)
        batch = {name: jnp.asarray(v[start:stop]) for name, v in table.items()}
        if stop - start < chunk_size:  # keep one compiled shape: pad the last chunk
            batch = pad_batch(batch, stop - start, chunk_size)
        try:
            out = ensemble(point_summaries, batch, devices=devices, check_memory=check_memory)
        except MemoryError as err:
            if not hasattr(err, "details"):
                raise
            raise MemoryError(_does_not_fit_message(**err.details, caller="sweep", option="chunk_size")) from None
        for name in names:
            results[name][start:stop] = np.asarray(out[name])[: stop - start]
        del out
        release_free_memory()  # else each chunk's threads kept what its runs freed (see there)
        if checkpoint is not None:
            with atomic_write(checkpoint, "checkpoint") as f:
                np.savez(f, fingerprint=fingerprint, done=stop, **results)
    if as_dataframe:
        # A DataFrame column holds numbers: a Quantity grid's, in the unit it was given in.
        columns = {**table, **results}
        import pandas as pd

        return pd.DataFrame(columns)
    return {**{name: quantity(v, units[name]) if name in units else v for name, v in table.items()}, **results}
