r"""The delay history: a ring buffer of past source values, and the reads a `Network` makes.

The buffer holds ``C`` time slots (rows) of ``S`` source channels, stored flat (``C * S``). A
caller keeps, say, the sample of step ``m`` (the state after step ``m``; ``m <= 0``: the
initial history) in row ``m mod C``, and reads flat indices ``row * S + channel``. One
step's write is then one contiguous row, in the ensemble layout below too (a single
in-place update: two writes per step, or a strided one, made XLA copy a batched buffer at
every step). A *packed* buffer (complex dtype) stores in slot ``m`` the pair
$x_m + i\,x_{m-1}$, so the two samples a linear interpolation needs arrive in one read:
with the complex weight $w = a - i b$, $\mathrm{Re}\big(w\,(x_m + i x_{m-1})\big) = a x_m + b x_{m-1}$.
(Measured: XLA's CPU gather costs about 1 ns per element whatever its width, so one
complex element is about twice as fast as two real ones.)

Every operation on the buffer is a small JAX primitive with its own rules:

- **Batching** (a user's ``jax.vmap`` over parameters, keys, speeds, ...): a batched
  buffer is stored *batch-last*. Its logical shape stays ``(B, C * S)`` but its memory is
  that of a ``(C, S, B)`` array (a free reshape), so one read of a (source, lag) pair
  fetches the ``B`` ensemble members as one contiguous vector. Measured on 2 CPU cores: a
  naive ``vmap`` of the gather (batch-first) ran 256 parameter sets *slower* per set than
  single runs; batch-last is what makes an ensemble pay. Only these primitives interpret
  the buffer, so the layout stays private. Two rules keep it consistent: `ring_fill` takes
  *anchors* (every array the run depends on), so that a buffer is batched from its
  creation whenever anything is (``vmap`` never broadcasts a filled buffer itself); and
  each buffer value is consumed exactly once (`read_sum` and `read_gather` hand the
  buffer back), so cotangents of a buffer are only ever added inside these rules.
- **Differentiation**, forward and reverse mode: the reads are linear in the buffer
  (`read_sum` is bilinear in buffer and weights), and the transposes are these primitives
  again. Reverse mode keeps no gathered values: the residual of a read is the buffer the
  solver carries anyway.

On a CPU the summed reads and the scatter-add of their transposes run as native kernels
(`_native.py`) where one is built; elsewhere, and with them switched off, as the XLA
operations written here. `read_sum_blocked` is `read_sum` with a carried state: where its
kernel runs (a CPU: a single run, or an ensemble under ``vmap``), the forward read
happens ``K`` steps at a time from a time-major copy of the history; its derivatives and
every other lowering are `read_sum`'s.

Reads take flat integer indices into the ``(C, S)`` buffer (computed by the caller from the
step counter and the delays in whole steps), so gradients with respect to delays flow
through the interpolation weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jaxtyping import Array

from . import _native
from ._precision import tensordot

__all__ = [
    "ring_fill",
    "ring_unfill",
    "ring_write",
    "read_sum",
    "read_gather",
    "read_sum_blocked",
    "blocked_state",
    "blocked_state_bytes",
    "take",
    "take_sum",
]

_PIB = lax.GatherScatterMode.PROMISE_IN_BOUNDS

# How many ulps rounding may move a delay counted in steps, tau / dt: the distance, speed,
# dt and both divisions are each rounded once (2.5 ulps at most), with room to spare.
_ROUNDING_ULPS = 8


def rounding_slack(steps, dtype):
    """How far rounding may have moved ``steps`` (a delay in steps, ``tau / dt``, computed in
    ``dtype``): ``_ROUNDING_ULPS`` ulps of it, relative (float32 resolves 20 steps to 2e-6, but
    20,000 steps only to 2e-3). ``steps`` is a NumPy or JAX array or scalar."""
    eps = float(np.finfo(dtype).eps)
    xp = np if isinstance(steps, np.ndarray | np.generic) else jnp
    return _ROUNDING_ULPS * eps * xp.maximum(xp.abs(steps), xp.ones((), steps.dtype))


def ceil_steps(steps):
    r"""brainmass's whole-step delay $\lceil \tau / \Delta t \rceil$ of ``steps`` (a NumPy or
    JAX array of $\tau / \Delta t$), where a value within rounding above a whole number is
    that number: 0.7 / 0.1 is 7.000000000000001 steps, and 7 steps. A fixed tolerance (1e-3
    steps) instead read genuine delays such as 3.0005 steps one step short."""
    xp = np if isinstance(steps, np.ndarray | np.generic) else jnp
    return xp.ceil(steps - rounding_slack(steps, steps.dtype))


def _define(name: str, impl, abstract, batch, jvp, transpose, multiple_results: bool = False) -> Primitive:
    p = Primitive(name)
    p.multiple_results = multiple_results
    p.def_impl(impl)
    p.def_abstract_eval(abstract)
    mlir.register_lowering(p, mlir.lower_fun(impl, multiple_results=multiple_results))
    batching.primitive_batchers[p] = batch
    if jvp is not None:
        ad.primitive_jvps[p] = jvp
    if transpose is not None:
        ad.primitive_transposes[p] = transpose
    return p


def _aval(shape, dtype):
    return jax.core.ShapedArray(tuple(shape), dtype)


def _zero_like(aval):
    return ad.Zero(_aval(aval.shape, aval.dtype))


def _is_zero(t) -> bool:
    return type(t) is ad.Zero


def _zeros(aval):
    return jnp.zeros(aval.shape, aval.dtype)


def _real_dtype(dtype):
    return np.empty((), dtype).real.dtype  # NumPy: a jnp array here would compile an operation


def _axis_size(args, dims) -> int:
    for a, d in zip(args, dims):
        if d is not None:
            return a.shape[d]
    raise AssertionError("no batched argument")


def _front(x, d):
    """A normal-layout batched operand with its batch axis first."""
    return x if d == 0 else jnp.moveaxis(x, d, 0)


def _per_member(x, d, size):
    """A normal-layout operand as ``(B, ...)``, broadcasting an unbatched one."""
    return jnp.broadcast_to(x, (size,) + x.shape) if d is None else _front(x, d)


def _phys(buf, d, size):
    """The physical ``(C * S, B)`` view of a raw batched buffer (logical ``(B, C * S)``)."""
    if d is None:
        return jnp.broadcast_to(buf[..., None], buf.shape + (size,))
    if d != 0:
        raise ValueError(
            "a delay-history buffer was moved along its batch axis outside brainmass_eqx; the "
            "solver state of a delayed Network must be passed on unchanged."
        )
    return buf.reshape(buf.shape[1:] + (size,))


def _raw(phys):
    """The logical batched view ``(B, C * S)`` of a physical ``(C * S, B)`` array."""
    return phys.reshape((phys.shape[-1],) + phys.shape[:-1])


_ROW_GATHER = lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0,), start_index_map=(0,))


def _take(buf, idx):
    # lax.gather directly: jnp indexing would add a negative-index fix-up per element.
    return lax.gather(buf.reshape(-1), idx[..., None], _ROW_GATHER, slice_sizes=(1,), mode=_PIB)


def _real(x):
    return jnp.real(x) if jnp.iscomplexobj(x) else x


def _real_product(g, w):
    """``Re(g * w)``, written out in real arithmetic (XLA's complex product is slower)."""
    if not jnp.iscomplexobj(g):
        return g * w
    return jnp.real(g) * jnp.real(w) - jnp.imag(g) * jnp.imag(w)


def _take_phys(phys, idx, d, size):
    """Per pair the ``B`` members' samples: ``(T, J, B)`` for shared indices (one contiguous
    row per pair), ``(B, T, J)`` for per-member indices."""
    rows = phys.reshape(-1, size)
    if d is None:
        dnums = lax.GatherDimensionNumbers(offset_dims=(2,), collapsed_slice_dims=(0,), start_index_map=(0,))
        return lax.gather(rows, idx[..., None], dnums, slice_sizes=(1, size), mode=_PIB), True
    member = jnp.arange(size, dtype=idx.dtype)[:, None, None]
    return _take(rows, _front(idx, d) * size + member), False


# -- ring_fill / ring_unfill: ordinary array <-> buffer -------------------------------------


# A fill of ``repeat`` copies of one row (a constant past) is written row block by row
# block into a buffer made in its own flat shape. Left a broadcast reshaped to the buffer,
# XLA fused that reshape into the first step's one-slot write, which then could not
# update it in place: a copy of the whole buffer (and, with the native blocked read, the
# broadcast made again for it), all alive at once (N = 300, 2 s of delays at dt 0.1:
# temporaries 192 MB where the buffer and the blocked state are 96 MB).
_FILL_BLOCK_BYTES = 1 << 16


def _repeat_rows(row, repeat):
    """``(repeat * S,)``: ``row`` ``(S,)`` repeated, made in place in a flat buffer."""
    # A block of at most 64 kB and a 16th of the buffer: at most 16 more slots' worth of
    # memory; a 48 MB buffer is written in about 730 blocks.
    k = max(1, min(repeat // 16, _FILL_BLOCK_BYTES // max(1, row.size * row.dtype.itemsize)))
    block = jnp.tile(row, k)
    # The last block is moved back to end at the buffer's end: it overlaps the one before,
    # with the same values.
    write = lambda i, b: lax.dynamic_update_slice(b, block, (jnp.minimum(i * k, repeat - k) * row.size,))
    return lax.fori_loop(0, -(-repeat // k), write, jnp.zeros((repeat * row.size,), row.dtype))


def _fill_impl(v, *anchors, repeat=None):
    return v if repeat is None else _repeat_rows(v, repeat)


def _fill_abstract(v, *anchors, repeat=None):
    return _aval(v.shape if repeat is None else (repeat * v.shape[0],), v.dtype)


def _fill_batch(args, dims, *, repeat=None):
    size = _axis_size(args, dims)
    values, d = args[0], dims[0]
    phys = jnp.broadcast_to(values[..., None], values.shape + (size,)) if d is None else jnp.moveaxis(values, d, -1)
    if repeat is not None:
        phys = jnp.broadcast_to(phys, (repeat,) + phys.shape).reshape(-1, size)
    return _raw(phys), 0


def _fill_jvp(primals, tangents, *, repeat=None):
    out = ring_fill_p.bind(*primals, repeat=repeat)
    t = tangents[0]
    return out, (_zero_like(out) if _is_zero(t) else ring_fill_p.bind(t, *primals[1:], repeat=repeat))


def _fill_transpose(ct, values, *anchors, repeat=None):
    ct = ring_unfill_p.bind(ad.instantiate_zeros(ct))
    if repeat is not None:
        ct = ct.reshape(repeat, -1).sum(0)
    return [ct] + [None] * len(anchors)


def _unfill_batch(args, dims):
    (buf,), (d,) = args, dims
    return jnp.moveaxis(_phys(buf, d, buf.shape[0]), -1, 0), 0


def _unfill_jvp(primals, tangents):
    out = ring_unfill_p.bind(*primals)
    t = tangents[0]
    return out, (_zero_like(out) if _is_zero(t) else ring_unfill_p.bind(t))


def _unfill_transpose(ct, buf):
    return [ring_fill_p.bind(ad.instantiate_zeros(ct))]


ring_fill_p = _define("bmx_ring_fill", _fill_impl, _fill_abstract, _fill_batch, _fill_jvp, _fill_transpose)
ring_unfill_p = _define(
    "bmx_ring_unfill", lambda b: b, lambda b: _aval(b.shape, b.dtype), _unfill_batch, _unfill_jvp, _unfill_transpose
)


def _update_jvp(prim, primals, tangents):
    """JVP of an update of a buffer by values at integer positions (``prim(buf, values,
    where)``), linear in ``(buf, values)``: the same update of their tangents."""
    buf, values, where = primals
    out = prim.bind(buf, values, where)
    tb, tv = tangents[:2]
    if _is_zero(tb) and _is_zero(tv):
        return out, _zero_like(out)
    tb = _zeros(buf) if _is_zero(tb) else tb
    tv = _zeros(values) if _is_zero(tv) else tv
    return out, prim.bind(tb, tv, where)


# -- ring_write / ring_slot -----------------------------------------------------------------


def _write_impl(buf, value, slot):
    return lax.dynamic_update_slice(buf, value, (slot * value.shape[0],))


def _run_window(raw, n, start):
    """The few whole logical rows of ``raw`` (``(B, M)``) that hold the flat memory run
    ``[start, start + n)``: ``(window, r0)``, the rows flattened and the first row."""
    size, m = raw.shape
    rows = min(size, -(-n // m) + 1)
    r0 = jnp.minimum(start // m, size - rows)
    return lax.dynamic_slice(raw, (r0, jnp.zeros_like(r0)), (rows, m)).reshape(-1), r0


def _write_rows(raw, values, start):
    """``raw`` (logical ``(B, M)``) with the flat memory run ``[start, start + n)`` set to
    ``values.T`` (``values``: ``(B, W)``, the members' values, ``n = W B``), by an update of
    whole logical rows.

    The run is contiguous in memory but not a rectangle of the logical shape, and XLA
    updates a loop-carried buffer in place only through an update of its own shape (through
    a reshaped view it copied the whole buffer at every step). So the few logical rows the
    run touches are sliced out, updated, and written back.
    """
    values = values.T.reshape(-1)
    window, r0 = _run_window(raw, values.shape[0], start)
    window = lax.dynamic_update_slice(window, values, (start - r0 * raw.shape[1],))
    return lax.dynamic_update_slice(raw, window.reshape(-1, raw.shape[1]), (r0, jnp.zeros_like(r0)))


def _run_batch(args, dims):
    # A vmap of an ensemble's write: member by member, through the generic update.
    return jax.vmap(_write_rows, in_axes=dims)(*args), 0


def _run_transpose(ct, raw, values, start):
    ct = ad.instantiate_zeros(ct)
    shape = values.aval.shape
    out_raw = write_run_p.bind(ct, jnp.zeros(shape, ct.dtype), start) if ad.is_undefined_primal(raw) else None
    out_values = None
    if ad.is_undefined_primal(values):
        n = shape[0] * shape[1]
        window, r0 = _run_window(ct, n, start)  # the run read back
        out_values = lax.dynamic_slice(window, (start - r0 * ct.shape[1],), (n,)).reshape(shape[::-1]).T
    return [out_raw, out_values, None]


# ``raw`` (logical ``(B, M)``) with the flat memory run ``[start, start + W B)`` set to
# ``values.T`` (``values``: ``(B, W)``): `_write_rows`, and in place with the native kernel,
# which also transposes (XLA's transpose into the run cost more than the write itself).
write_run_p = _define(
    "bmx_write_run",
    _write_rows,
    lambda r, v, s: _aval(r.shape, r.dtype),
    _run_batch,
    lambda primals, tangents: _update_jvp(write_run_p, primals, tangents),
    _run_transpose,
)


def _write_batch(args, dims):
    size = _axis_size(args, dims)
    (buf, value, slot), (bd, vd, sd) = args, dims
    phys = _phys(buf, bd, size)  # (C * S, B)
    v = _per_member(value, vd, size)  # (B, S)
    if sd is None:
        # Slot ``slot`` of the (C, S, B) memory is one contiguous run of S * B values.
        return write_run_p.bind(_raw(phys), v, slot * v.size), 0
    phys = jax.vmap(_write_impl, in_axes=(-1, -1, 0), out_axes=-1)(phys, v.T, _front(slot, sd))
    return _raw(phys), 0


def _write_transpose(ct, buf, value, slot):
    ct = ad.instantiate_zeros(ct)
    out_buf = out_value = None
    if ad.is_undefined_primal(buf) and ad.is_undefined_primal(value):
        # One update in place: reading the slot and zeroing it as two operations made XLA
        # copy the whole buffer twice per reverse step (W4: 16 of about 50 us).
        out_value, out_buf = ring_take_p.bind(ct, slot, width=value.aval.shape[0])
        return [out_buf, out_value, None]
    if ad.is_undefined_primal(buf):
        out_buf = ring_write_p.bind(ct, jnp.zeros(value.aval.shape, ct.dtype), slot)
    if ad.is_undefined_primal(value):
        out_value = ring_slot_p.bind(ct, slot, width=value.aval.shape[0])
    return [out_buf, out_value, None]


def _slot_impl(buf, slot, *, width):
    return lax.dynamic_slice(buf, (slot * width,), (width,))


def _slot_batch(args, dims, *, width):
    size = _axis_size(args, dims)
    (buf, slot), (bd, sd) = args, dims
    phys = _phys(buf, bd, size)  # (C * S, B)
    if sd is None:
        out = lax.dynamic_slice_in_dim(phys, slot * width, width, axis=0)
    else:
        out = jax.vmap(partial(_slot_impl, width=width), in_axes=(-1, 0), out_axes=-1)(phys, _front(slot, sd))
    return out.T, 0  # (S, B) -> (B, S)


def _slot_jvp(primals, tangents, *, width):
    buf, slot = primals
    out = ring_slot_p.bind(buf, slot, width=width)
    tb = tangents[0]
    return out, (_zero_like(out) if _is_zero(tb) else ring_slot_p.bind(tb, slot, width=width))


def _slot_transpose(ct, buf, slot, *, width):
    return [ring_write_p.bind(_zeros(buf.aval), ad.instantiate_zeros(ct), slot), None]


ring_write_p = _define(
    "bmx_ring_write",
    _write_impl,
    lambda b, v, s: _aval(b.shape, b.dtype),
    _write_batch,
    lambda primals, tangents: _update_jvp(ring_write_p, primals, tangents),
    _write_transpose,
)
ring_slot_p = _define(
    "bmx_ring_slot",
    _slot_impl,
    lambda b, s, *, width: _aval((width,), b.dtype),
    _slot_batch,
    _slot_jvp,
    _slot_transpose,
)


def _take_impl(buf, slot, *, width):
    value = _slot_impl(buf, slot, width=width)
    return value, _write_impl(buf, jnp.zeros((width,), buf.dtype), slot)


def _take_batch(args, dims, *, width):
    (buf, slot), (bd, sd) = args, dims
    value, vd = _slot_batch(args, dims, width=width)
    zeros = jnp.zeros((width,), buf.dtype)
    out, od = _write_batch((buf, zeros, slot), (bd, None, sd))
    return (value, out), (vd, od)


def _take_jvp(primals, tangents, *, width):
    buf, slot = primals
    out = ring_take_p.bind(buf, slot, width=width)
    tb = tangents[0]
    if _is_zero(tb):
        return out, (_zero_like(out[0]), _zero_like(out[1]))
    return out, tuple(ring_take_p.bind(tb, slot, width=width))


def _take_transpose(cts, buf, slot, *, width):
    ct_value, ct_buf = (ad.instantiate_zeros(c) for c in cts)
    # The slot of the output is zero whatever the input held: only the value's cotangent
    # reaches it.
    return [ring_write_p.bind(ct_buf, ct_value, slot), None]


# ``(buf[slot], buf with the slot zeroed)``: the transpose of `ring_write` (the slot's
# cotangent is the written value's; the buffer's passes on without it), in place natively.
ring_take_p = _define(
    "bmx_ring_take",
    _take_impl,
    lambda b, s, *, width: (_aval((width,), b.dtype), _aval(b.shape, b.dtype)),
    _take_batch,
    _take_jvp,
    _take_transpose,
    multiple_results=True,
)


# -- gather / scatter_add (used by the reads and their transposes) ---------------------------


def _gather_batch(args, dims):
    size = _axis_size(args, dims)
    (buf, idx), (bd, d) = args, dims
    g, shared = _take_phys(_phys(buf, bd, size), idx, d, size)
    return (jnp.moveaxis(g, -1, 0) if shared else g), 0


def _gather_jvp(primals, tangents):
    buf, idx = primals
    out = gather_p.bind(buf, idx)
    tb = tangents[0]
    return out, (_zero_like(out) if _is_zero(tb) else gather_p.bind(tb, idx))


def _gather_transpose(ct, buf, idx):
    return [scatter_add_p.bind(_zeros(buf.aval), ad.instantiate_zeros(ct), idx), None]


def _scatter_impl(base, values, idx):
    return base.reshape(-1).at[idx].add(values, mode=_PIB).reshape(base.shape)


def _scatter_batch(args, dims):
    size = _axis_size(args, dims)
    (base, values, idx), (bd, vd, d) = args, dims
    phys = _phys(base, bd, size)
    values = _per_member(values, vd, size)  # (B, T, J)
    if d is None:
        rows = phys.reshape(-1, size).at[idx].add(jnp.moveaxis(values, 0, -1), mode=_PIB)
        return _raw(rows.reshape(phys.shape)), 0
    member = jnp.arange(size, dtype=idx.dtype)[:, None, None]
    flat = phys.reshape(-1).at[_front(idx, d) * size + member].add(values, mode=_PIB)
    return _raw(flat.reshape(phys.shape)), 0


def _scatter_transpose(ct, base, values, idx):
    ct = ad.instantiate_zeros(ct)
    out_values = gather_p.bind(ct, idx) if ad.is_undefined_primal(values) else None
    return [ct if ad.is_undefined_primal(base) else None, out_values, None]


gather_p = _define("bmx_delay_gather", _take, lambda b, i: _aval(i.shape, b.dtype), _gather_batch, _gather_jvp, _gather_transpose)
scatter_add_p = _define(
    "bmx_delay_scatter_add",
    _scatter_impl,
    lambda b, v, i: _aval(b.shape, b.dtype),
    _scatter_batch,
    lambda primals, tangents: _update_jvp(scatter_add_p, primals, tangents),
    _scatter_transpose,
)


# -- scatter_weighted: read_sum's transpose, ``base + scatter(ct[:, None] * w)`` ------------


def _products(ct, w, dtype):
    """The values ``ct[t] * w[t, j]`` that read_sum's transpose scatters."""
    return (ct[:, None] * w).astype(dtype)


def _scatter_weighted_impl(base, ct, w, idx):
    return _scatter_impl(base, _products(ct, w, base.dtype), idx)


def _scatter_weighted_batch(args, dims):
    size = _axis_size(args, dims)
    (base, ct, w, idx), (bd, cd, wd, d) = args, dims
    values = _per_member(ct, cd, size)[..., None] * (w if wd is None else _front(w, wd))  # (B, T, J)
    return _scatter_batch((base, values.astype(base.dtype), idx), (bd, 0, d))


def _scatter_weighted_jvp(primals, tangents):
    base, ct, w, idx = primals
    out = scatter_weighted_p.bind(base, ct, w, idx)
    tb, tc, tw = tangents[:3]
    t = None
    if not (_is_zero(tb) and _is_zero(tc)):
        tb = _zeros(base) if _is_zero(tb) else tb
        t = scatter_weighted_p.bind(tb, _zeros(ct) if _is_zero(tc) else tc, w, idx)
    if not _is_zero(tw):
        # Written with XLA's product, so that this term can be transposed in tw too.
        t = scatter_add_p.bind(_zeros(base) if t is None else t, _products(ct, tw, base.dtype), idx)
    return out, (_zero_like(out) if t is None else t)


def _scatter_weighted_transpose(ct_out, base, ct, w, idx):
    # Linear in (base, ct): base's cotangent passes through; ct's is read_sum's sums of it.
    assert not ad.is_undefined_primal(w)
    ct_out, ct_ct = ad.instantiate_zeros(ct_out), None
    if ad.is_undefined_primal(ct):
        ct_ct, ct_out = read_sum_p.bind(ct_out, idx, w)
    return [ct_out if ad.is_undefined_primal(base) else None, ct_ct, None, None]


scatter_weighted_p = _define(
    "bmx_delay_scatter_weighted",
    _scatter_weighted_impl,
    lambda b, c, w, i: _aval(b.shape, b.dtype),
    _scatter_weighted_batch,
    _scatter_weighted_jvp,
    _scatter_weighted_transpose,
)


# -- read_rows_sum: the ensemble read with shared indices -----------------------------------


def _rows_sum_impl(rows, idx, w):
    """``Re sum_j w[t, j] * rows[idx[t, j], :]``: ``(T, B)`` from batch-last rows ``(M, B)``."""
    g, _ = _take_phys(rows, idx, None, rows.shape[-1])  # (T, J, B)
    return _weighted_sum(g, w[..., None], axis=1)


def _rows_sum_batch(args, dims):
    return jax.vmap(_rows_sum_impl, in_axes=dims)(*args), 0


def _rows_sum_jvp(primals, tangents):
    rows, idx, w = primals
    out = read_rows_sum_p.bind(rows, idx, w)
    tr, _, tw = tangents
    t = None
    if not _is_zero(tr):
        t = read_rows_sum_p.bind(tr, idx, w)
    if not _is_zero(tw):
        part = _rows_sum_impl(rows, idx, tw)
        t = part if t is None else t + part
    return out, (_zero_like(out) if t is None else t)


def _rows_sum_transpose(ct, rows, idx, w):
    assert ad.is_undefined_primal(rows) and not ad.is_undefined_primal(w)
    if _is_zero(ct):
        return [None, None, None]
    values = (ct[:, None, :] * w[..., None]).astype(rows.aval.dtype)  # (T, J, B)
    out = jnp.zeros(rows.aval.shape, rows.aval.dtype).at[idx].add(values, mode=_PIB)
    return [out, None, None]


read_rows_sum_p = _define(
    "bmx_read_rows_sum",
    _rows_sum_impl,
    lambda r, i, w: _aval(i.shape[:1] + r.shape[1:], _real_dtype(r.dtype)),
    _rows_sum_batch,
    _rows_sum_jvp,
    _rows_sum_transpose,
)


# -- the reads ------------------------------------------------------------------------------


def _weighted_sum(g, w, axis=-1):
    """``Re sum_j g[..., j, ...] * w[..., j, ...]`` over ``axis``, as a product with ones."""
    contrib = _real_product(g, w)
    # A matrix-vector product reduces much faster than XLA's row reduction on CPU. It also
    # keeps the reduce away from XLA:CPU's YNNPACK fusion: in a step loop run from two
    # threads at once (a Fitter population's slices) that fusion held memory growing with
    # the steps (~2.3 KB per step per call: 4.7 KB/step for 2 slices of 4 x 2 runs of 76
    # regions, +93 MB for a 4 s run at dt 0.2 ms), until the call returned.
    ones = jnp.ones(contrib.shape[axis], contrib.dtype)
    return tensordot(contrib, ones, axes=(axis, 0))


def _sum_batch(args, dims):
    size = _axis_size(args, dims)
    (buf, idx, w), (bd, d, wd) = args, dims
    if bd is None and d is None:
        return _real_product(_take(buf, idx), _front(w, wd)).sum(-1), 0
    phys = _phys(buf, bd, size)
    if d is None and wd is None:
        return read_rows_sum_p.bind(phys.reshape(-1, size), idx, w).T, 0
    g, shared = _take_phys(phys, idx, d, size)
    if shared:  # g: (T, J, B)
        wb = jnp.moveaxis(w, wd, -1)
        # The complex product here: written out in real arithmetic, XLA gathered twice.
        return _real(g * wb).sum(1).T, 0
    return _real(g * _per_member(w, wd, size)).sum(-1), 0


def _read_sum_batch(args, dims):
    out, d = _sum_batch(args, dims)
    return (out, args[0]), (d, dims[0])


def _read_sum_jvp(primals, tangents):
    buf, idx, w = primals
    tb, _, tw = tangents
    t_sums, t_buf = None, _zero_like(buf)
    if _is_zero(tw):
        sums, buf_out = read_sum_p.bind(buf, idx, w)
    else:
        # The weights' share needs the samples read: gathered here, they are what reverse
        # mode keeps per step (T x J values), not the whole buffer (measured: keeping the
        # buffer made a gradient w.r.t. the speed 5x slower and its buffers 9x larger).
        g = gather_p.bind(buf, idx)
        sums, buf_out = _weighted_sum(g, w), buf
        t_sums = _weighted_sum(g, tw)
    if not _is_zero(tb):
        part, t_buf = read_sum_p.bind(tb, idx, w)
        t_sums = part if t_sums is None else t_sums + part
    return (sums, buf_out), (_zero_like(sums) if t_sums is None else t_sums, t_buf)


def _read_sum_transpose(cts, buf, idx, w):
    ct_sums, ct_buf = cts
    # Only the buffer is linear here: the weights' share is an ordinary product (see the JVP).
    assert ad.is_undefined_primal(buf) and not ad.is_undefined_primal(w)
    base = _zeros(buf.aval) if _is_zero(ct_buf) else ct_buf
    if _is_zero(ct_sums):
        return [base, None, None]
    return [scatter_weighted_p.bind(base, ct_sums, w, idx), None, None]


def _read_sum_impl(buf, idx, w):
    return _weighted_sum(_take(buf, idx), w), buf


read_sum_p = _define(
    "bmx_read_sum",
    _read_sum_impl,
    lambda b, i, w: (_aval(i.shape[:1], _real_dtype(b.dtype)), _aval(b.shape, b.dtype)),
    _read_sum_batch,
    _read_sum_jvp,
    _read_sum_transpose,
    multiple_results=True,
)


# -- read_sum_blocked: a single run's read, K steps at a time ---------------------------------
# The kernel reads one 64-byte vector of consecutive samples per (pair, tap): at most 16
# float32 (8 float64) steps per block, and a row of the time-major copy carries that much
# padding beyond its two copies of the ring.
BLOCK_BYTES = 64
_ROW_PAD = 16


def _blocked_impl(buf, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    # Without the kernel the cache is not used: the read is `read_sum`'s.
    sums, buf = _read_sum_impl(buf, idx, w)
    return sums, buf, hist, cache


def _blocked_abstract(buf, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    return (
        _aval(idx.shape[:1], _real_dtype(buf.dtype)),
        _aval(buf.shape, buf.dtype),
        _aval(hist.shape, hist.dtype),
        _aval(cache.shape, cache.dtype),
    )


def _blocked_batch(args, dims, **params):
    buf, idx, w, hist, cache, count, offsets, stamp, steps = args
    bd, d, wd, hd, cd, count_d, od, sd, kd = dims
    if bd is not None and count_d is None:
        # The state is batch-last like the buffer (logical (B, n), memory (n, B)), and
        # handed to the kernels in its logical shape: XLA updates a loop-carried array in
        # place only in its own shape (through a reshaped view it copied it every step).
        size = _axis_size(args, dims)
        rows = _phys(buf, bd, size).reshape(-1, size)
        hist, cache = (_raw(_phys(a, ad, size)) for a, ad in ((hist, hd), (cache, cd)))
        if d is None and wd is None and od is None and sd is None and kd is None:
            # An ensemble sharing indices, weights and steps: `read_rows_blocked`.
            out = read_rows_blocked_p.bind(rows, idx, w, hist, cache, count, offsets, stamp, steps, **params)
        else:
            # Members with reads of their own (a vmap over speeds): `read_members_blocked`.
            idx, w, offsets = (x if xd is None else _front(x, xd) for x, xd in ((idx, d), (w, wd), (offsets, od)))
            stamp, steps = (_per_member(x, xd, size) for x, xd in ((stamp, sd), (steps, kd)))
            out = read_members_blocked_p.bind(rows, idx, w, hist, cache, count, offsets, stamp, steps, **params)
        sums, hist, cache = out
        return (sums, buf, hist, cache), (0, bd, 0, 0)
    # Otherwise it reads as `read_sum` does (its batched rules); the cache stays as it is.
    out, d = _sum_batch(args[:3], dims[:3])
    return (out, args[0], hist, cache), (d, bd, hd, cd)


def _state_left_out(hist, cache):
    """The block state after a read that did not use it: a read whose weights are being
    differentiated needs every pair's samples for their tangent, and reads its sums from
    those, step by step (blocked, it would read everything twice). The cache is zeroed (a
    stamp of 0 is no plan's), so that a later blocked read (the next chunk of a run)
    rebuilds the state rather than trust sums it holds of earlier steps."""
    return hist, jnp.zeros_like(cache)


def _blocked_jvp(primals, tangents, **params):
    buf, idx, w = primals[:3]
    tb, _, tw = tangents[:3]
    t_sums, t_buf = None, _zero_like(buf)
    # The tangent is that of the same sums read step by step (the read is linear in the
    # buffer): the cache only serves the primal, so its tangent is zero.
    if _is_zero(tw):
        out = read_sum_blocked_p.bind(*primals, **params)
    else:
        g = gather_p.bind(buf, idx)
        out = (_weighted_sum(g, w), buf) + _state_left_out(*primals[3:5])
        t_sums = _weighted_sum(g, tw)
    if not _is_zero(tb):
        part, t_buf = read_sum_p.bind(tb, idx, w)
        t_sums = part if t_sums is None else t_sums + part
    t_sums = _zero_like(out[0]) if t_sums is None else t_sums
    return out, (t_sums, t_buf, _zero_like(primals[3]), _zero_like(primals[4]))


read_sum_blocked_p = _define(
    "bmx_read_sum_blocked", _blocked_impl, _blocked_abstract, _blocked_batch, _blocked_jvp, None, True
)


def _rows_blocked_impl(rows, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    return _rows_sum_impl(rows, idx, w).T, hist, cache


def _rows_blocked_abstract(rows, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    return (
        _aval(rows.shape[1:] + idx.shape[:1], _real_dtype(rows.dtype)),
        _aval(hist.shape, hist.dtype),
        _aval(cache.shape, cache.dtype),
    )


def _rows_blocked_batch(args, dims, **params):
    # A vmap of an ensemble: read as `read_rows_sum` does, the cache unused.
    out, d = _rows_sum_batch(args[:3], dims[:3])  # (B', T, B)
    return (jnp.swapaxes(out, 1, 2), args[3], args[4]), (d, dims[3], dims[4])


def _ensemble_blocked_jvp(prim, read_both, read_tangent):
    """The JVP rule of an ensemble's blocked read ``prim``: as `_blocked_jvp`, with
    ``read_both(rows, idx, w, tw)`` the sums of ``w`` and of ``tw`` from one gather of
    ``rows``, and ``read_tangent(tr, idx, w)`` the sums of a tangent of the rows."""

    def jvp(primals, tangents, **params):
        rows, idx, w = primals[:3]
        tr, _, tw = tangents[:3]
        t = None
        if _is_zero(tw):
            out = prim.bind(*primals, **params)
        else:
            sums, t = read_both(rows, idx, w, tw)
            out = (sums,) + _state_left_out(*primals[3:5])
        if not _is_zero(tr):
            part = read_tangent(tr, idx, w)
            t = part if t is None else t + part
        t = _zero_like(out[0]) if t is None else t
        return out, (t, _zero_like(primals[3]), _zero_like(primals[4]))

    return jvp


def _rows_read_both(rows, idx, w, tw):
    g, _ = _take_phys(rows, idx, None, rows.shape[-1])  # (T, J, B), gathered once for both
    return tuple(_weighted_sum(g, x[..., None], axis=1).T for x in (w, tw))


# The blocked read of an ensemble's rows ``(M, B)`` (shared indices, weights and step):
# what `read_sum_blocked` becomes under ``jax.vmap``. Sums ``(B, T)``, in the layout of
# the members' states (a ``(T, B)`` result made XLA transpose it at every step); the state arrays
# have the logical shape ``(B, n)`` of batched buffers, and the memory of ``(n, B)``.
read_rows_blocked_p = _define(
    "bmx_read_rows_blocked", _rows_blocked_impl, _rows_blocked_abstract, _rows_blocked_batch, None, None, True
)
ad.primitive_jvps[read_rows_blocked_p] = _ensemble_blocked_jvp(
    read_rows_blocked_p, _rows_read_both, lambda tr, idx, w: read_rows_sum_p.bind(tr, idx, w).T
)


def _members_sums(rows, idx, w):
    """``(B, T)``: each member's read of the rows ``(M, B)`` with its own indices and/or
    weights (``(B, T, J)``; ``(T, J)`` where shared), as `read_sum`'s batching rule reads."""
    return _sum_batch((_raw(rows), idx, w), (0, 0 if idx.ndim == 3 else None, 0 if w.ndim == 3 else None))[0]


def _members_blocked_impl(rows, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    return _members_sums(rows, idx, w), hist, cache


def _members_blocked_abstract(rows, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    return (
        _aval(rows.shape[1:] + idx.shape[-2:-1], _real_dtype(rows.dtype)),
        _aval(hist.shape, hist.dtype),
        _aval(cache.shape, cache.dtype),
    )


def _members_blocked_batch(args, dims, **params):
    # A vmap of such an ensemble: every level read as `read_sum`'s rules read, the cache unused.
    in_axes = dims[:3]
    sums = jax.vmap(_members_sums, in_axes=in_axes)(*args[:3])
    return (sums, args[3], args[4]), (0, dims[3], dims[4])


# The blocked read of an ensemble's rows ``(M, B)`` whose members read with offsets, weights,
# steps per block and stamps of their own (what `read_sum_blocked` becomes under a
# ``jax.vmap`` over conduction speeds): each member runs a single run's blocked read of its
# column of the rows. ``idx``, ``w`` and ``offsets`` are ``(B, T, J)``, or ``(T, J)`` where
# shared; ``stamp`` and ``steps`` ``(B,)``. Sums ``(B, T)``; the state arrays as
# `read_rows_blocked`'s (the kernel keeps each member's state contiguous in them).
read_members_blocked_p = _define(
    "bmx_read_members_blocked",
    _members_blocked_impl,
    _members_blocked_abstract,
    _members_blocked_batch,
    None,
    None,
    True,
)
# (Where the weights carry a tangent, the two reads' identical gathers are one after XLA's
# common-subexpression pass.)
ad.primitive_jvps[read_members_blocked_p] = _ensemble_blocked_jvp(
    read_members_blocked_p,
    lambda rows, idx, w, tw: (_members_sums(rows, idx, w), _members_sums(rows, idx, tw)),
    _members_sums,
)


def _read_gather_batch(args, dims):
    out, d = _gather_batch(args, dims)
    return (out, args[0]), (d, dims[0])


def _read_gather_jvp(primals, tangents):
    buf, idx = primals
    out = read_gather_p.bind(buf, idx)
    tb = tangents[0]
    if _is_zero(tb):
        return out, (_zero_like(out[0]), _zero_like(buf))
    return out, read_gather_p.bind(tb, idx)


def _read_gather_transpose(cts, buf, idx):
    ct_g, ct_buf = cts
    base = _zeros(buf.aval) if _is_zero(ct_buf) else ct_buf
    if _is_zero(ct_g):
        return [base, None]
    return [scatter_add_p.bind(base, ct_g, idx), None]


read_gather_p = _define(
    "bmx_read_gather",
    lambda b, i: (_take(b, i), b),
    lambda b, i: (_aval(i.shape, b.dtype), _aval(b.shape, b.dtype)),
    _read_gather_batch,
    _read_gather_jvp,
    _read_gather_transpose,
    multiple_results=True,
)


# -- native CPU lowerings (see _native.py) --------------------------------------------------
# Same primitives, same rules: only how a CPU runs a single run's read, its transpose and
# an ensemble's shared-index read changes.


def _native_rows_sum(rows, idx, w):
    """The kernel's read: ``(T,)`` from a single run's ``(M,)`` buffer, ``(T, B)`` from rows ``(M, B)``."""
    out = jax.ffi.ffi_call(
        _native.target("read_sum"), jax.ShapeDtypeStruct(idx.shape[:1] + rows.shape[1:], _real_dtype(rows.dtype))
    )
    return out(rows, idx, w)


def _native_read_sum(buf, idx, w):
    return _native_rows_sum(buf, idx, w), buf


def _native_scatter_add(base, values, idx):
    # Aliased: the cotangent buffer is updated in place, as XLA's own scatter would be.
    out = jax.ffi.ffi_call(
        _native.target("scatter_add"), jax.ShapeDtypeStruct(base.shape, base.dtype), input_output_aliases={0: 0}
    )
    return out(base, values, idx)


def _single_run(idx_arg: int):
    """A single run's buffer (1-D), every operand of its dtype but the indices."""

    def when(avals, **params):
        same = all(a.dtype == avals[0].dtype for i, a in enumerate(avals) if i != idx_arg)
        return same and avals[0].ndim == 1 and _native.usable(avals[0].dtype, avals[idx_arg].dtype)

    return when


def _blocked_fits(ndim: int):
    """A buffer of ``ndim`` dimensions (1: a single run, 2: an ensemble's rows) whose
    weights match it."""

    def when(avals, **params):
        b, i, wa = avals[:3]
        return b.ndim == ndim and wa.dtype == b.dtype and _native.usable(b.dtype, i.dtype)

    return when


_native.register_cpu_lowering(read_sum_p, _read_sum_impl, _native_read_sum, _single_run(1), True)
_native.register_cpu_lowering(scatter_add_p, _scatter_impl, _native_scatter_add, _single_run(2), False)


def _native_scatter_weighted(base, ct, w, idx):
    out = jax.ffi.ffi_call(
        _native.target("scatter_weighted"), jax.ShapeDtypeStruct(base.shape, base.dtype), input_output_aliases={0: 0}
    )
    return out(base, ct, w, idx)


_native.register_cpu_lowering(
    scatter_weighted_p,
    _scatter_weighted_impl,
    _native_scatter_weighted,
    lambda avals: avals[0].ndim == 1
    and avals[2].dtype == avals[0].dtype
    and avals[1].dtype == _real_dtype(avals[0].dtype)
    and _native.usable(avals[0].dtype, avals[3].dtype),
    False,
)


def _native_blocked_call(name, rows, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    """A blocked-read kernel's call: sums ``(T,)`` from a single run's ``(M,)`` buffer,
    ``(B, T)`` from an ensemble's rows ``(M, B)`` (its state then batch-last, see
    `read_rows_blocked_p`)."""
    call = jax.ffi.ffi_call(
        _native.target(name),
        (
            jax.ShapeDtypeStruct(rows.shape[1:] + idx.shape[-2:-1], _real_dtype(rows.dtype)),
            jax.ShapeDtypeStruct(hist.shape, hist.dtype),
            jax.ShapeDtypeStruct(cache.shape, cache.dtype),
        ),
        input_output_aliases={2: 1, 3: 2},  # the state is updated in place
    )
    operands = (rows, count, hist, cache, offsets, w, stamp, steps)
    return call(*operands, **{k: np.int64(v) for k, v in params.items()})


_native_rows_blocked = partial(_native_blocked_call, "blocked_read_sum")
_native_members_blocked = partial(_native_blocked_call, "blocked_members_sum")


def _native_blocked(buf, idx, w, hist, cache, count, offsets, stamp, steps, **params):
    sums, hist, cache = _native_rows_blocked(buf, idx, w, hist, cache, count, offsets, stamp, steps, **params)
    return sums, buf, hist, cache


def _native_ring_take(buf, slot, *, width):
    call = jax.ffi.ffi_call(
        _native.target("ring_take"),
        (jax.ShapeDtypeStruct((width,), buf.dtype), jax.ShapeDtypeStruct(buf.shape, buf.dtype)),
        input_output_aliases={0: 1},
    )
    return call(buf, jnp.asarray(slot, jnp.int32), width=np.int64(width))


def _native_write_run(raw, values, start):
    out = jax.ffi.ffi_call(
        _native.target("write_run"), jax.ShapeDtypeStruct(raw.shape, raw.dtype), input_output_aliases={0: 0}
    )
    return out(raw, values, start.astype(jnp.int32))


_native.register_cpu_lowering(
    write_run_p,
    _write_rows,
    _native_write_run,
    lambda avals: avals[1].dtype == avals[0].dtype and _native.usable(avals[0].dtype, np.int32),
    False,
)
_native.register_cpu_lowering(
    ring_take_p,
    _take_impl,
    _native_ring_take,
    lambda avals, **params: avals[0].ndim == 1 and _native.usable(avals[0].dtype, np.int32),
    True,
)
_native.register_cpu_lowering(read_sum_blocked_p, _blocked_impl, _native_blocked, _blocked_fits(1), True)
_native.register_cpu_lowering(read_rows_blocked_p, _rows_blocked_impl, _native_rows_blocked, _blocked_fits(2), True)
_native.register_cpu_lowering(
    read_members_blocked_p, _members_blocked_impl, _native_members_blocked, _blocked_fits(2), True
)


# Measured (80 x 80 packed read, 2 cores): the kernel is 1.5-2x faster than XLA's gather up
# to 32 members; beyond, both are bound by memory bandwidth and XLA's is the faster.
_NATIVE_MAX_MEMBERS = 32
_native.register_cpu_lowering(
    read_rows_sum_p,
    _rows_sum_impl,
    _native_rows_sum,
    lambda avals: avals[0].ndim == 2
    and avals[0].shape[1] <= _NATIVE_MAX_MEMBERS
    and avals[2].dtype == avals[0].dtype
    and _native.usable(avals[0].dtype, avals[1].dtype),
    False,
)


# -- public functions -----------------------------------------------------------------------


def ring_fill(values: Array, anchors: Sequence = (), repeat: int | None = None) -> Array:
    """A buffer holding ``values`` (shape ``(C, S)``: slot ``c`` of channel ``s``).

    **Arguments:**

    - `values`: the initial slots (a complex dtype makes a packed buffer); with `repeat`,
      the one slot ``(S,)`` every slot holds.
    - `anchors`: any pytree of the arrays the run depends on (model, initial state,
      inputs, keys). Under ``jax.vmap`` the buffer is batched as soon as one of them is.
    - `repeat`: the number of slots ``C`` when they are all ``values`` (a constant past):
      the same buffer as ``ring_fill(jnp.broadcast_to(values, (repeat, S)))``, which
      in a compiled run costs a second copy of the buffer (see `_repeat_rows`).
    """
    leaves = [a for a in jax.tree_util.tree_leaves(anchors) if isinstance(a, jax.Array | np.ndarray)]
    leaves = [a for a in leaves if jnp.issubdtype(a.dtype, jnp.number) or jnp.issubdtype(a.dtype, jnp.bool_)]
    # Stored flat: a 1-D per-member buffer makes the batched one 2-D, whose one-slot update
    # XLA does in place (with a 3-D one it copied the whole buffer at every step).
    values = jnp.asarray(values).reshape(-1)
    if repeat is None:
        return ring_fill_p.bind(values, *leaves)
    # (A bool is an int to isinstance: repeat=True made a one-slot buffer.)
    if isinstance(repeat, bool) or not isinstance(repeat, int | np.integer) or repeat < 1:
        raise ValueError(f"ring_fill: repeat must be a positive int (the number of slots), got {repeat!r}.")
    return ring_fill_p.bind(values, *leaves, repeat=int(repeat))


def ring_unfill(buf: Array) -> Array:
    """The contents of ``buf`` as an ordinary flat ``(C * S,)`` array (consumes ``buf``)."""
    return ring_unfill_p.bind(buf)


def after_read(value: Array, reads: Array | tuple[Array, ...]) -> Array:
    """``value`` (to be written with `ring_write`) made to depend on ``reads`` (this
    step's results read from the same buffer: an array or a tuple of them), with its
    numbers unchanged.

    The read primitives hand their buffer back unchanged, and lowered, that hand-back is
    the operand itself: where the written value does not depend on the reads (a coupled
    variable whose derivative lacks the coupling, e.g. Jansen-Rit's ``M' = Mv``), nothing
    orders the write after them, and XLA, unable to update the buffer in place, copied
    all of it twice per step (a 68-region Jansen-Rit network with delays up to 63 ms:
    63 us per step, 9 us without the copies). Neither ``lax.optimization_barrier`` nor a
    control dependency survives XLA:CPU's copy insertion; a data dependence does. The
    added term is an exact zero: ``0 * r``, ``r`` a sum of one entry of every read (of
    every row of a stack of reads), replaced by 0 where not finite (so that a NaN or an
    overflow does not reach the history through it). It has no derivative: differentiated,
    every reverse step summed the written value's cotangent only to multiply the sum by 0
    (three of W4's two dozen reverse-step operations).
    """
    r = sum(jnp.sum(jnp.asarray(x)[..., 0]) for x in jax.tree_util.tree_leaves(reads))
    r = lax.stop_gradient(jnp.asarray(r).astype(value.dtype))
    return value + 0.0 * jnp.where(jnp.isfinite(r), r, 0.0)


def ring_write(buf: Array, value: Array, slot: Array) -> Array:
    """``buf`` with slot (row) ``slot`` of every channel set to ``value`` (shape ``(S,)``)."""
    return ring_write_p.bind(buf, jnp.asarray(value).astype(buf.dtype), jnp.asarray(slot, jnp.int32))


def read_sum(buf: Array, idx: Array, weights: Array) -> tuple[Array, Array]:
    r"""Weighted sums of delayed samples, $o_t = \mathrm{Re}\sum_j w_{tj}\, h_{i_{tj}}$
    ($h$ the flattened buffer).

    **Arguments:**

    - `buf`: the buffer ``(C, S)`` (consumed: use the returned one afterwards).
    - `idx`: ``(T, J)`` int, the flat index (``slot * S + channel``) each
      (target, entry) pair reads.
    - `weights`: ``(T, J)``, cast to the buffer's dtype (complex weights interpolate a
      packed buffer).

    **Returns:** ``(o, buf)``: the real sums ``(T,)`` and the buffer.
    """
    return tuple(read_sum_p.bind(buf, idx, jnp.asarray(weights).astype(buf.dtype)))


def take(values: Array, idx: Array) -> Array:
    """``values[idx]`` for indices known to lie in ``[0, values.size)`` (a sparse
    connectome's per-target source lists): an ordinary array, not a buffer.

    **Arguments:**

    - `values`: ``(S,)``, e.g. a coupled variable of every region (read flat).
    - `idx`: ``(T, J)`` int, each in bounds (not checked: an index out of bounds reads an
      unspecified value).

    **Returns:** ``(T, J)`` of ``values``' dtype.
    """
    return _take(values, idx)


def take_sum(values: Array, idx: Array, weights: Array) -> Array:
    r"""The lag-zero read of an ordinary array: $o_t = \sum_j w_{tj}\, v_{i_{tj}}$, the
    weighted sums a sparse connectome's per-target lists make of the current values.

    XLA's operations (an in-bounds gather and a matrix-vector product; differentiated and
    batched as such) beat, for a step of a 3,000-region Hopf network with 10 sources per
    target on 2 CPU cores (38 us), both the native `read_sum` of a buffer filled with
    ``values`` (51 us) and ``jnp.sum(weights * values[idx], -1)`` (330 us: jnp indexing
    adds a negative-index fix-up per index, and XLA's row reduction is slow).

    **Arguments:**

    - `values`: ``(S,)`` real.
    - `idx`: ``(T, J)`` int, in ``[0, S)`` (see `take`).
    - `weights`: ``(T, J)`` real.

    **Returns:** ``(T,)``.
    """
    return _weighted_sum(_take(values, idx), weights)


def read_gather(buf: Array, idx: Array) -> tuple[Array, Array]:
    """The samples at the flat indices ``idx`` (``(T, J)``, buffer dtype) and the buffer."""
    return tuple(read_gather_p.bind(buf, idx))


def blocked_state(n_sources: int, n_slots: int, n_targets: int, block: int, dtype) -> tuple[Array, Array]:
    """The carried state of a `read_sum_blocked`: a time-major copy of the history
    (``n_sources`` rows of ``2 n_slots`` samples and padding) and the sums of one block
    of steps (``n_targets`` rows of 64 bytes, one lane per step, and a stamp of the
    reads they were made for), both of the buffer's real dtype."""
    real = np.dtype(_real_dtype(dtype))
    return tuple(jnp.zeros(size, real) for size in _blocked_sizes(n_sources, n_slots, n_targets, real))


def _blocked_sizes(n_sources: int, n_slots: int, n_targets: int, real) -> tuple[int, int]:
    """The lengths of `blocked_state`'s two arrays of real dtype ``real``."""
    return n_sources * (2 * n_slots + _ROW_PAD), n_targets * (BLOCK_BYTES // real.itemsize) + 1  # + the stamp


def blocked_state_bytes(n_sources: int, n_slots: int, n_targets: int, dtype) -> int:
    """The bytes of `blocked_state` (for a buffer of ``dtype``), without allocating it:
    about twice a real buffer's (``n_sources`` rows of ``2 n_slots`` samples), as much as
    a packed (complex) one's."""
    real = np.dtype(_real_dtype(dtype))
    return sum(_blocked_sizes(n_sources, n_slots, n_targets, real)) * real.itemsize


def read_sum_blocked(
    buf: Array,
    idx: Array,
    weights: Array,
    state: tuple[Array, Array],
    count: Array,
    offsets: Array,
    *,
    n_slots: int,
    first_channel: int,
    n_sources: int,
    block: int | Array,
    stamp: Array,
) -> tuple[Array, Array, tuple[Array, Array]]:
    r"""`read_sum` of step ``count``, computed ``block`` steps at a time where a kernel runs.

    The sums are those of ``read_sum(buf, idx, weights)``, to rounding. On a CPU with the
    native kernels, a single run's read of steps ``count .. count + block - 1`` happens at
    once when ``count % block == 0``: that requires every pair with a non-zero weight to
    lag at least ``block - 1`` steps, so that the samples it reads are in the buffer
    already, and the buffer to hold step ``m`` in slot ``m mod n_slots`` as `Network`
    writes it. Everywhere else (no kernel, a vmap of an ensemble, a step counter that
    differs between members, tangents and cotangents, and the forward read too where the
    weights are differentiated) the read is `read_sum`'s, step by step.

    **Arguments:**

    - `buf`, `idx`, `weights`: as for `read_sum` (the buffer's ``n_slots`` slots of
      ``n_channels`` channels).
    - `state`: the carried state from `blocked_state`, or as returned by the previous step.
    - `count`: the step number (int32 scalar, from 0).
    - `offsets`: ``(T, J)`` int32, ``source * (2 * n_slots + 16) - lag`` per pair, with
      ``source`` the channel minus ``first_channel`` (``< n_sources``) and ``lag`` at
      least ``block - 1`` (any such lag for a pair of zero weight).
    - `block`: steps per block, an int or an int32 scalar (traced where the delays are: it
      is an operand, not a compile-time constant). The kernel takes at most one 64-byte
      vector of steps (16 for float32, 8 for float64) and at least 1: a larger block is
      read as that many, which is always right (fewer steps need no longer lags).
    - `stamp`: an int32 scalar in ``[1, 2**24)`` identifying ``(offsets, weights, block)``,
      e.g. a hash. A state made for other reads (or a new one) is rebuilt from the buffer
      at its first use, whatever the step. An operand, not a compile-time constant: new
      weights or delays of the same shape (another connectome) reuse the compiled program.

    Under ``jax.vmap`` with the buffer batched, members that share indices, weights and
    block read together (`read_rows_blocked_p`); members with delays of their own (a vmap
    over speeds or distances) each read as a single run does (`read_members_blocked_p`).

    **Returns:** ``(sums, buf, state)``.
    """
    hist, cache = state
    w = jnp.asarray(weights).astype(buf.dtype)
    sums, buf, hist, cache = read_sum_blocked_p.bind(
        buf,
        idx,
        w,
        hist,
        cache,
        jnp.asarray(count, jnp.int32),
        jnp.asarray(offsets, jnp.int32),
        jnp.asarray(stamp, jnp.int32),
        jnp.asarray(block, jnp.int32),
        n_slots=int(n_slots),
        n_channels=int(buf.shape[-1] // n_slots),
        first_channel=int(first_channel),
        n_sources=int(n_sources),
        row_length=int(2 * n_slots + _ROW_PAD),
    )
    return sums, buf, (hist, cache)
