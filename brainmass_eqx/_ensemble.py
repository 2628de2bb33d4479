r"""Ensembles and parameter sweeps: one ``vmap``, sharded across devices.

`ensemble` maps a function over a batch of parameter sets (any pytree whose array leaves
share a leading batch axis), with ``jax.vmap`` on each device and the batch split across
``jax.devices()`` with ``jax.sharding`` (a 1-D ``Mesh`` and ``NamedSharding``). On several
hosts, call ``jax.distributed.initialize()`` first (one process per host): ``jax.devices()``
then lists every host's devices and the same code shards over all of them.

`sweep` builds a grid of parameter values, evaluates a simulation for each point through
`ensemble` in chunks (with a progress bar), reduces each result to a few scalar summaries,
and returns a tidy table. With ``checkpoint=path`` finished chunks are saved as they
complete, and an interrupted sweep resumes without recomputing them.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

__all__ = ["ensemble", "sweep", "batch_size_of"]


def batch_size_of(batch: PyTree) -> int:
    """The common leading-axis length of the array leaves of ``batch``."""
    leaves = [x for x in jax.tree_util.tree_leaves(batch) if eqx.is_array(x) or isinstance(x, np.ndarray)]
    if not leaves:
        raise ValueError("ensemble: the batch has no array leaves to map over.")
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        shapes = [tuple(np.shape(x)) for x in leaves]
        raise ValueError(
            f"ensemble: every array leaf of the batch needs the same leading (batch) axis; got shapes {shapes}."
        )
    return sizes.pop()


def _pad(batch: PyTree, size: int, target: int) -> PyTree:
    if target == size:
        return batch

    def pad(x):
        if not (eqx.is_array(x) or isinstance(x, np.ndarray)):
            return x
        reps = jnp.repeat(jnp.asarray(x)[-1:], target - size, axis=0)  # repeat a real member: no NaNs
        return jnp.concatenate([jnp.asarray(x), reps])

    return jax.tree_util.tree_map(pad, batch)


def ensemble(
    fn: Callable[[PyTree], PyTree],
    batch: PyTree,
    *,
    devices: Sequence[jax.Device] | None = None,
) -> PyTree:
    """Evaluate ``fn`` on every member of ``batch``: ``vmap`` per device, sharded across devices.

    **Arguments:**

    - `fn`: a function of one member (e.g. a model, a dict of parameters, a key) returning a
      pytree of arrays. It must be traceable (``jax.jit`` / ``jax.vmap``-safe).
    - `batch`: a pytree whose array leaves share a leading batch axis ``B`` (for a batch of
      models: ``eqx.filter_vmap(make_model)(values)``).
    - `devices`: the devices to shard over; default ``jax.devices()``. ``B`` need not be a
      multiple of their number: the batch is padded and the padding dropped.

    **Returns:** ``fn``'s outputs stacked along a leading axis of length ``B``; identical to
    ``jax.vmap(fn)(batch)``.
    """
    size = batch_size_of(batch)
    devices = list(jax.devices() if devices is None else devices)
    n_dev = len(devices)
    mapped = eqx.filter_jit(eqx.filter_vmap(fn))
    if n_dev == 1:
        return mapped(batch)
    padded_size = -(-size // n_dev) * n_dev
    batch = _pad(batch, size, padded_size)
    mesh = Mesh(np.asarray(devices), ("batch",))
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    batch = jax.tree_util.tree_map(
        lambda x: jax.device_put(x, sharding) if eqx.is_array(x) or isinstance(x, np.ndarray) else x, batch
    )
    out = mapped(batch)
    return jax.tree_util.tree_map(lambda x: x[:size], out)


def _grid_table(grid: Mapping[str, Any], product: bool) -> dict[str, np.ndarray]:
    if not grid:
        raise ValueError("sweep: grid is empty; give {parameter name: values}.")
    values = {}
    for name, v in grid.items():
        arr = np.asarray(v)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"sweep: grid[{name!r}] must be a non-empty 1-D sequence of values, got shape {arr.shape}.")
        values[name] = arr
    if product:
        combos = list(itertools.product(*values.values()))
        return {name: np.asarray([c[i] for c in combos]) for i, name in enumerate(values)}
    lengths = {name: v.size for name, v in values.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"sweep(product=False) needs equally long value lists, got lengths {lengths}.")
    return values


def _fingerprint(table: Mapping[str, np.ndarray], summaries: Sequence[str], chunk_size: int) -> str:
    h = hashlib.sha256()
    for name in sorted(table):
        h.update(name.encode())
        h.update(np.ascontiguousarray(table[name]).tobytes())
    h.update(",".join(summaries).encode())
    h.update(str(chunk_size).encode())
    return h.hexdigest()


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
):
    """Evaluate ``simulate_fn(**point)`` over a parameter grid and summarise each run.

    **Arguments:**

    - `simulate_fn`: called with one keyword per grid name (scalars) and returning anything
      the summaries read (e.g. a `Trajectory`). Traceable.
    - `grid`: ``{name: 1-D values}``.
    - `summaries`: ``{column: fn(result) -> scalar}``, e.g. the FC correlation with a target,
      a mean rate, a dominant frequency (see `brainmass_eqx.metrics`).
    - `product`: the Cartesian product of the value lists (default) or, with ``False``,
      equally long lists zipped point by point.
    - `chunk_size`: points evaluated per `ensemble` call (bounds memory).
    - `devices`: passed to `ensemble`.
    - `progress`: a progress bar over chunks.
    - `checkpoint`: a ``.npz`` path. Finished chunks are written to it; rerunning the same
      sweep resumes after the last finished chunk (a different grid, summary set or chunk
      size is an error, not a silent mix).
    - `as_dataframe`: return a ``pandas.DataFrame`` (pandas must be installed).

    **Returns:** a dict of 1-D NumPy arrays: the grid columns, then one column per summary.
    """
    if chunk_size < 1:
        raise ValueError(f"sweep: chunk_size must be >= 1, got {chunk_size}.")
    if not summaries:
        raise ValueError("sweep: summaries is empty; give {column: fn(result) -> scalar}.")
    clash = set(summaries) & set(grid)
    if clash:
        raise ValueError(f"sweep: summary names {sorted(clash)} clash with grid names.")
    table = _grid_table(grid, product)
    n = len(next(iter(table.values())))
    names = list(summaries)
    fingerprint = _fingerprint(table, names, chunk_size)
    results = {name: np.full(n, np.nan) for name in names}
    done = 0
    if checkpoint is not None and os.path.exists(checkpoint):
        saved = np.load(checkpoint, allow_pickle=False)
        if str(saved["fingerprint"]) != fingerprint:
            raise ValueError(
                f"sweep: checkpoint {os.fspath(checkpoint)!r} belongs to a different sweep (grid, summaries "
                "or chunk_size changed); delete it or pass another path."
            )
        done = int(saved["done"])
        for name in names:
            results[name][:done] = saved[name][:done]

    def point_summaries(point):
        out = simulate_fn(**point)
        return {name: jnp.asarray(fn(out)) for name, fn in summaries.items()}

    starts = range(done, n, chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="sweep", unit="chunk", total=len(starts))
    for start in starts:
        stop = min(start + chunk_size, n)
        batch = {name: jnp.asarray(v[start:stop]) for name, v in table.items()}
        if stop - start < chunk_size:  # keep one compiled shape: pad the last chunk
            batch = _pad(batch, stop - start, chunk_size)
        out = ensemble(point_summaries, batch, devices=devices)
        for name in names:
            value = np.asarray(out[name])
            if value.ndim != 1:
                raise ValueError(f"sweep: summary {name!r} must return a scalar per run, got shape {value.shape[1:]}.")
            results[name][start:stop] = value[: stop - start]
        if checkpoint is not None:
            tmp = os.fspath(checkpoint) + ".tmp.npz"
            np.savez(tmp, fingerprint=fingerprint, done=stop, **results)
            os.replace(tmp, checkpoint)
    columns = {**table, **results}
    if as_dataframe:
        import pandas as pd

        return pd.DataFrame(columns)
    return columns
