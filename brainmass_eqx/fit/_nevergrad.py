"""Backend ``'nevergrad'``: any nevergrad optimiser, one whole population per ``jax.vmap``.

Each generation asks the optimiser for ``popsize`` candidates, evaluates all of them with
a jitted ``jax.vmap`` of the loss (or ``jax.lax.map``, ``population='map'``; or whichever
of the two ran the first generation faster, ``population='auto'``), and tells it the
losses. On a CPU the population is cut into slices of at most 16 candidates, one thread per core
taking them in turn (``_ensemble.cpu_plan``): the cores then work on separate members instead
of sharing each small batched operation.
With several devices (``Fitter.fit``'s ``devices=``, default ``jax.devices()``) the
population is split over them instead, each device evaluating its own candidates
(`_ensemble.shard_vmap`, no communication), padded to a multiple of their number. The
search runs in the unit cube of the parameters' box (constrained values; bounds from the transforms or
``search_space``), so one mutation scale suits parameters of any magnitude. Non-finite
losses are told as a loss of 1e20, under nevergrad's clip (that candidate is simply bad); a generation in which every
candidate is non-finite stops the fit with `NonFiniteLossError`.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import close_names
from .._ensemble import cpu_plan, pad_batch, place, run_slices, shard_vmap, split_batch
from ._loop import BackendOutput, Monitor
from ._problem import NonFiniteLossError, ParamSpace, Problem

__all__ = ["POPULATION_MODES", "check_optimizer", "make_batched_loss", "run"]

# nevergrad clips a loss of 5e20 or more (+inf included), with a LossTooLargeWarning each
# time: a value under the clip keeps diverging candidates from filling the output.
_WORST_LOSS = 1.0e20


def _ng():
    try:
        import nevergrad
    except ImportError as err:  # pragma: no cover - nevergrad is a dependency
        raise ImportError("backend='nevergrad' needs nevergrad: pip install nevergrad") from err
    return nevergrad


def check_optimizer(optimizer: Any):
    """The nevergrad optimiser family (a registry entry, a ConfiguredOptimizer or an
    Optimizer class) named by ``optimizer`` (default ``'DE'``)."""
    ng = _ng()
    registry = ng.optimizers.registry
    if optimizer is None:
        return registry["DE"]
    if isinstance(optimizer, str):
        if optimizer not in registry:
            close = close_names(optimizer, registry, n=5)  # ignoring case: 'cma' finds 'CMA'
            raise ValueError(
                f"optimizer={optimizer!r} is not a nevergrad optimizer name; close names: {close} "
                "(see nevergrad.optimizers.registry for all of them)."
            )
        return registry[optimizer]
    base = ng.optimizers.base
    if isinstance(optimizer, base.ConfiguredOptimizer) or (
        isinstance(optimizer, type) and issubclass(optimizer, base.Optimizer)
    ):
        return optimizer
    raise TypeError(
        "backend='nevergrad' needs optimizer=None, a nevergrad optimizer name ('DE', 'CMA', 'TwoPointsDE', "
        "...) or an optimizer family such as nevergrad.optimizers.DifferentialEvolution(popsize=32); "
        f"got {type(optimizer).__name__}. (Pass the family, not a constructed optimizer: the "
        "Fitter builds it for the parameters' box.)"
    )


POPULATION_MODES = ("vmap", "map", "auto")


def make_batched_loss(problem: Problem, space: ParamSpace, mode: str = "vmap", devices=None):
    """``f(u, lo, hi, data, key) -> (losses, best, (aux, values))`` (``best``: the index of
    the lowest finite loss; ``aux`` and ``values``: that candidate's aux output and the
    constrained values it was evaluated at) for a population ``u`` of shape
    ``(popsize, n)`` in the unit cube, as one jitted call: ``mode='vmap'`` evaluates the
    candidates side by side (``jax.vmap``), ``'map'`` one after the other in a compiled
    loop (``jax.lax.map``: for models whose batched step is slower than a loop). With two
    or more ``devices``, one such call per device on its share of the population (`_Shards`)."""

    def one(u, lo, hi, data, key):
        # The values travel out with the aux: the fit reports exactly the values this
        # evaluated (recomputing lo + (hi - lo) * u outside, in float64, gave values an ulp
        # or two away from those behind best_loss).
        values = space.unravel(lo + (hi - lo) * u)
        loss, aux = problem.loss_values(values, data, key)
        return loss, (aux, values)

    if mode == "vmap":
        batched = jax.vmap(one, in_axes=(0, None, None, None, None))
    else:

        def batched(u, lo, hi, data, key):
            return jax.lax.map(lambda ui: one(ui, lo, hi, data, key), u)

    def population(u, lo, hi, data, key):
        """``(losses, best, (aux, values) of the best)``, ``best`` the lowest finite loss's index."""
        losses, aux = batched(u, lo, hi, data, key)
        # Only the best candidate's aux leaves the call: the whole population's predictions
        # (32 candidates of 1 s of 80 regions at dt 0.1 ms: 100 MB) were copied out at
        # every generation for one of them.
        best = jnp.argmin(jnp.where(jnp.isfinite(losses), losses, jnp.inf))
        return losses, best, jax.tree_util.tree_map(lambda a: a[best], aux)

    if devices is not None and len(devices) > 1:
        return _Shards(population, devices)
    return eqx.filter_jit(population)


class _Shards:
    """A population function (`make_batched_loss`'s, before jit) evaluated on several
    devices, each on an equal share of the candidates (the last repeated to fill the
    shares): a `shard_vmap` over the shares, one share per device, the parameter box, target
    and key a copy on each. Each device returns its share's losses and its best
    candidate's aux, so only one candidate's aux per device leaves them, as with one
    device. Returns what the function returns for the whole population: ``(losses,
    best, (aux, values) of the best)``."""

    def __init__(self, population, devices):
        self.devices = tuple(devices)
        self.mapped = shard_vmap(population, self.devices)

    def __call__(self, u, *rest):
        n, size = len(self.devices), u.shape[0]
        per = -(-size // n)
        shares = place(pad_batch(u, size, per * n).reshape(n, per, *u.shape[1:]), self.devices, split=True)
        losses, _, aux = self.mapped(shares, *place(rest, self.devices, split=False))
        losses = np.asarray(losses).reshape(-1)[:size]
        best = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
        # The overall best is its share's best (the first of equal losses in both cases).
        return losses, best, jax.tree_util.tree_map(lambda a: a[best // per], aux)


class _Slices:
    """A `make_batched_loss` function applied to slices of ``per`` candidates of the
    population (as many as cover it, the last padded), taken in turn by the threads of
    ``pool`` (`run_slices`); one call where one slice covers it. Returns what the
    function returns for the whole population: ``(losses, best, (aux, values) of the
    best)``."""

    def __init__(self, fn, per: int, pool: ThreadPoolExecutor | None):
        self.fn, self.per, self.pool = fn, per, pool

    def __call__(self, u, *rest):
        n = -(-u.shape[0] // self.per)
        if n == 1:
            return self.fn(u, *rest)
        # Padding: a repeated candidate, dropped below.
        slices, size = split_batch(u, u.shape[0], n, self.per)
        outs = run_slices(self.fn, [(part, *rest) for part in slices], self.pool)
        losses = np.concatenate([np.asarray(out[0]) for out in outs])[: u.shape[0]]
        best = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
        # The overall best is its slice's best (the first of equal losses in both cases).
        return losses, best, outs[best // size][2]


def _choose(batched: dict, args) -> tuple[Any, str, dict]:
    """``population='auto'``: evaluate the first generation with each mode twice (the first
    compiles), time the second, and keep the faster: ``(function, mode, {mode: seconds})``.
    Costs one extra compilation and two extra evaluations of a population."""
    timings = {}
    for mode, fn in batched.items():
        jax.block_until_ready(fn(*args))
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        timings[mode] = time.perf_counter() - start
    mode = min(timings, key=timings.get)
    return batched[mode], mode, timings


@contextlib.contextmanager
def _inside_nevergrad(family, gen: int):
    """Name nevergrad as the source of an error raised by its own ``ask`` / ``tell`` (not by
    the loss), with the optimizers to use instead. nevergrad 1.0.12's 'NGOpt' picks, for a
    small budget, a metamodel optimizer that calls ``float()`` of a one-element array, which
    NumPy 2.4 refuses: "TypeError: only 0-dimensional arrays can be converted to
    Python scalars", from deep inside nevergrad."""
    try:
        yield
    except Exception as err:  # whatever nevergrad raises: named and passed on
        name = getattr(family, "name", None) or getattr(family, "__name__", None) or type(family).__name__
        raise RuntimeError(
            f"nevergrad's optimizer {name!r} failed inside nevergrad itself at generation {gen} "
            f"({type(err).__name__}: {err}), not in the loss. Choose another optimizer: 'DE' or "
            "'CMA' (the Fitter's tests run these), 'TwoPointsDE', 'PSO' or 'OnePlusOne'. 'NGOpt' and its "
            "'NGOpt*' / metamodel variants fail so with NumPy 2.4 (nevergrad 1.0.12)."
        ) from err


def run(
    *, problem, space, family, batched, data, key, seed, n_steps, popsize, monitor: Monitor, threads: int | None,
    devices: int = 1, chosen: dict | None = None,
) -> BackendOutput:
    """``batched``: a `make_batched_loss` function, or ``{mode: function}`` to choose from
    on the first generation (``population='auto'``); ``chosen``: with the latter, a dict
    that holds an earlier fit's choice (then used, not timed again) or receives this one's;
    ``threads``: equal slices of the population evaluated at once, None for
    ``_ensemble.cpu_plan``'s default (on a CPU one thread per core, slices of at most 16
    candidates each thread takes in turn: on 2 cores, P32n's 32 candidates as two slices of
    16 at once took 0.44-0.48 s against 0.68 s for one vmap of 32; elsewhere one vmap);
    ``devices``: how many devices ``batched`` splits the population over (`_Shards`; then
    no threads)."""
    ng = _ng()
    threads, slices, per = (1, 1, popsize) if devices > 1 else cpu_plan(popsize, threads)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bmx-population") if slices > 1 else None
    choice = None
    if isinstance(batched, dict) and chosen:
        # Timing both modes again costs a compilation and two evaluations of a population.
        choice = {**chosen, "population_reused": True}
        batched = batched[chosen["population"]]
    if isinstance(batched, dict):
        batched = {mode: _Slices(fn, per, pool) for mode, fn in batched.items()}
    else:
        batched = _Slices(batched, per, pool)
    box = space.box("backend='nevergrad'")
    lo = space.ravel({n: box[n][0] for n in space.names})
    hi = space.ravel({n: box[n][1] for n in space.names})
    x0 = np.clip(space.ravel(space.to_values(space.initial_raw())), lo, hi)
    parametrization = ng.p.Array(init=(x0 - lo) / (hi - lo), lower=0.0, upper=1.0)
    parametrization.random_state = np.random.RandomState(seed)
    optimizer = family(parametrization=parametrization, budget=n_steps * popsize, num_workers=popsize)
    dtype = jnp.result_type(float)
    lo_j, hi_j = jnp.asarray(lo, dtype), jnp.asarray(hi, dtype)

    best_loss, best_values, best_aux, best_step = np.inf, None, None, -1
    history, all_losses = [], []
    stop_reason, n_done = "n_steps", 0

    def output(stop_reason):
        return BackendOutput(
            best_raw=space.to_raw(best_values),
            best_loss=best_loss,
            best_step=best_step,
            history=np.asarray(history),
            n_steps=n_done,
            prediction=best_aux,
            stop_reason=stop_reason,
            optimizer=optimizer,
            raw={"losses": np.asarray(all_losses), "population_threads": threads, **(choice or {}),
                 **({"population_devices": devices} if devices > 1 else {})},
            best_values=best_values,
        )

    try:
        for gen in range(n_steps):
            with _inside_nevergrad(family, gen):
                candidates = [optimizer.ask() for _ in range(popsize)]
            u = np.stack([np.asarray(c.value, dtype=float) for c in candidates])
            try:
                args = (jnp.asarray(u, dtype), lo_j, hi_j, data, key)
                if isinstance(batched, dict):
                    batched, mode, timings = _choose(batched, args)
                    choice = {"population": mode, "population_seconds": timings}
                    if chosen is not None:
                        chosen.update(choice)
                losses, best, (aux, values) = batched(*args)
                losses = np.asarray(losses, dtype=float)
            except eqx.EquinoxRuntimeError as err:
                # A diverging run does not raise here (its loss is non-finite: `Problem._call`);
                # what does is a check of a candidate's values (a search box holding invalid
                # points, e.g. a fitted speed whose delays outgrow the Network's max_delay).
                # equinox's text is a stack, then "equinox.EquinoxRuntimeError: <message>", then advice.
                check = str(err).rsplit("EquinoxRuntimeError: ", 1)[-1].split("\n-----", 1)[0].strip()
                raise RuntimeError(
                    f"a run-time check failed for a candidate of generation {gen}: {check} The population is "
                    "evaluated as one compiled call, so one such candidate stops it. Make every point of "
                    "the search box valid: narrow the box "
                    "(search_space= or Param bounds), or e.g. give the Network a max_delay that holds "
                    "the longest delay the box allows."
                ) from err
            finite = np.isfinite(losses)
            if not finite.any():
                first = space.unravel(lo + (hi - lo) * u[0])
                err = NonFiniteLossError(
                    f"every candidate's loss was non-finite at generation {gen}, e.g. at "
                    f"{space.describe(first)}. Narrow the search box (search_space= or Param bounds).",
                    step=gen,
                    params=first,
                )
                if best_values is not None:  # the generations before: `Fitter.fit` makes err.result of it
                    err.output = output("nonfinite")
                raise err
            with _inside_nevergrad(family, gen):
                for cand, loss in zip(candidates, losses):
                    optimizer.tell(cand, float(loss) if np.isfinite(loss) else _WORST_LOSS)
            j = int(best)
            if losses[j] < best_loss:
                best_loss, best_values, best_step = float(losses[j]), values, gen
                best_aux = aux
            history.append(losses[j])
            all_losses.append(losses)
            n_done = gen + 1
            reason = monitor.update(gen, losses, best_loss, lambda values=values: space.to_raw(values))
            if reason is not None:
                stop_reason = reason
                break
    finally:
        monitor.close()
        if pool is not None:
            pool.shutdown()
    return output(stop_reason)
