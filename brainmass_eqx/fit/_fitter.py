"""`Fitter` and `FitResult`."""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from .._checks import (
    check_int,
    check_objective,
    did_you_mean,
    is_traced,
    refuse_non_finite,
    suggests_keywords,
    user_stacklevel,
)
from .._ensemble import check_devices
from .._files import check_writable
from .._text import value_text
from .._units import check_real
from ..objectives import check_target
from . import _grad, _nevergrad, _optimistix, _programs, _scipy
from ._checkpoint import digest
from ._loop import BackendOutput, Monitor, pick_best
from ._problem import NonFiniteLossError, ParamSpace, Problem, refuse_containers

__all__ = ["Fitter", "FitResult"]

BACKENDS = ("grad", "optimistix", "nevergrad", "scipy")

# The settings split between Fitter(...) (what is fitted, and how it is judged) and
# Fitter.fit(...) (one run): the commonest slip is giving one to the other
# (fit(..., callbacks=cb) was refused with the list of fit's keywords only).
_BUILD_KEYWORDS = ("optimizer", "loss_fn", "predict", "objective", "backend", "where", "search_space",
                   "transient", "callbacks", "with_key")  # fmt: skip
_RUN_KEYWORDS = ("target", "n_steps", "key", "n_starts", "popsize", "population", "population_threads", "devices",
                 "patience", "min_delta", "progress", "checkpoint", "checkpoint_every", "resume")  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class FitResult:
    """The outcome of `Fitter.fit`.

    **Attributes:**

    - `backend`: the backend that ran.
    - `best_loss`: the lowest loss seen (for an optimistix least-squares solver
      ``0.5 * sum(r**2)`` of the residuals ``r``, penalties included: what it minimises, and what
      `Fitter.loss` returns for it).
    - `best_params`: ``{name: constrained value}``: the parameters that produced
      `best_loss` (not the ones after the following update).
    - `model`: the model with `best_params` set (its `Param`s keep their transforms).
    - `prediction`: what the loss returned as auxiliary output at `best_params` (with
      ``predict=``: the full prediction, before the transient is cut).
    - `history`: one loss per step (``'grad'``, ``'optimistix'``), the best loss of each
      generation (``'nevergrad'``) or the loss of every evaluation (``'scipy'``); a
      multi-start ``'grad'``/``'optimistix'`` fit gives shape ``(steps, n_starts)``.
    - `n_steps`: steps (generations, iterations) actually run.
    - `best_step`: the step at which `best_loss` was reached (an evaluation index for scipy).
    - `stop_reason`: ``'n_steps'``, ``'converged'``, ``'early_stopping'``, ``'callback'``,
      or a solver's message (``'optimistix: ...'``, ``'scipy: ...'``: a start that did
      not report success, e.g. one that ran out of iterations).
    - `optimizer`: the optimizer actually used.
    - `raw`: backend details (per-start results, every candidate's loss, SciPy's
      ``OptimizeResult`` per start, ...).
    - `units`: ``{name: unit}`` of `best_params` (``''`` for dimensionless), as shown by
      the repr.

    A result pickles (``pickle.dump(result, f)``, ``cloudpickle.dump``). An `optimizer` or
    `raw` entry that plain pickle refuses (an optax chain holds local functions) is stored
    with ``cloudpickle`` when that package is installed, and comes back working on
    ``pickle.load`` (which then needs ``cloudpickle`` installed too); without it the entry
    is replaced by a note saying what it was, and loading warns which entries are missing
    and how to get them back (pass the same optimizer to a new `Fitter`).
    """

    backend: str
    best_loss: float
    best_params: dict[str, Array | np.ndarray]
    model: PyTree
    prediction: Any
    history: np.ndarray
    n_steps: int
    best_step: int
    stop_reason: str
    optimizer: Any = None
    raw: Any = None
    units: dict[str, str] = dataclasses.field(default_factory=dict)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in _PICKLED_BY_VALUE:
            state[name] = _picklable(name, state[name])
        return state

    def __setstate__(self, state: dict) -> None:
        missing = []
        for name, value in state.items():
            if isinstance(value, _Cloudpickled):
                value = value.restore(name)
            if isinstance(value, _LeftOut):
                missing.append(value)
            object.__setattr__(self, name, value)  # a frozen dataclass
        if missing:
            # A note in place of an optimizer used to surface only as an AttributeError on
            # a string, far from the load that lost it.
            warnings.warn(
                "this FitResult was loaded without " + "; ".join(missing) + ". The fitted parameters "
                "(best_params, model) are complete; to continue the fit, pass the same optimizer to a new "
                "Fitter (Fitter(result.model, optax.adam(...), ...)).",
                stacklevel=2,
            )

    def __repr__(self) -> str:
        # The fitted values are what a reader looks for first; they used to be missing
        # ('params=[a]').
        values = ", ".join(
            f"{name}={value_text(value)}" + (f" {self.units[name]}" if self.units.get(name) else "")
            for name, value in self.best_params.items()
        )
        # scipy counts iterations in n_steps but evaluations in best_step.
        when = (
            f"at evaluation {self.best_step} ({self.n_steps} iterations)"
            if self.backend == "scipy"
            else f"at step {self.best_step} of {self.n_steps}"
        )
        return (
            f"FitResult(backend={self.backend!r}, best_loss={self.best_loss:.6g} {when}, "
            f"stop_reason={self.stop_reason!r}, {values})"
        )


#: FitResult fields stored by value when pickled (`_picklable`).
_PICKLED_BY_VALUE = ("optimizer", "raw")


class _LeftOut(str):
    """The note a pickled `FitResult` holds in place of an entry it could not store (a str,
    so that it prints and compares as the note it is)."""


class _Cloudpickled:
    """An entry plain pickle refuses, serialised by cloudpickle: its bytes load with plain
    ``pickle.loads`` wherever ``cloudpickle`` is importable."""

    def __init__(self, data: bytes, kind: str):
        self.data = data
        self.kind = kind

    def restore(self, name: str) -> Any:
        try:
            return pickle.loads(self.data)
        except Exception as error:  # cloudpickle missing here, or a changed optax
            return _LeftOut(
                f"its {name} (a {self.kind} stored by cloudpickle, which could not be loaded here: "
                f"{type(error).__name__}: {error})"
            )


def _picklable(name: str, value: Any) -> Any:
    """``value`` if plain pickle stores it, else its cloudpickle bytes, else a `_LeftOut` note."""
    try:
        pickle.dumps(value)
        return value
    except Exception:  # whatever pickle refuses: local functions, open handles, ...
        pass
    kind = type(value).__name__
    try:
        import cloudpickle  # not a dependency: used when installed
    except ImportError:
        return _LeftOut(f"its {name} (a {kind}, which plain pickle cannot store; install cloudpickle to keep it)")
    try:
        return _Cloudpickled(cloudpickle.dumps(value), kind)
    except Exception as error:
        return _LeftOut(f"its {name} (a {kind}, which neither pickle nor cloudpickle can store: {error})")


_UNKEYED = object()  # `Fitter._shared_key` not computed yet (None: computed, not shared)


def _as_callbacks(callbacks) -> tuple[Callable, ...]:
    if callbacks is None:
        return ()
    if callable(callbacks):
        return (callbacks,)
    if isinstance(callbacks, Sequence) and all(callable(c) for c in callbacks):
        return tuple(callbacks)
    raise TypeError(f"callbacks must be a callable or a list of callables cb(info) -> bool | None; got {callbacks!r}.")


def _optimizer_digest(optimizer: Any, raw: Any) -> str:
    """A digest of what an optimizer does: for an optax transformation (functions, whose
    settings live in closures) its first update of ``raw`` for a fixed gradient, which
    differs with the learning rate, the schedule's start, the moments' decay, ...; for an
    optimistix solver (an equinox Module) its numeric settings (rtol, atol, ...)."""
    optax = sys.modules.get("optax")  # imported by the 'grad' backend, not by brainmass_eqx
    if optax is not None and isinstance(optimizer, optax.GradientTransformation):
        def first_update(raw):
            gradient = jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.37), raw)
            return optimizer.update(gradient, optimizer.init(raw), raw)[0]

        # One compiled call: run eagerly, Adam's update compiled a dozen single operations
        # (0.5 s of every fit's first step, when this ran whether or not it checkpointed).
        return digest(jax.jit(first_update)(raw))
    return digest([leaf for leaf in jax.tree_util.tree_leaves(optimizer) if eqx.is_array_like(leaf)])


def _refuse_non_finite_target(target: Any) -> None:
    """A NaN in the target makes every loss NaN, which the fit then blamed on the parameters."""
    for leaf in jax.tree_util.tree_leaves(target):
        if eqx.is_array_like(leaf):
            # A complex target failed deep inside jax.grad ("grad requires real-valued outputs").
            check_real(leaf, "target", allow_bool=True)
        if eqx.is_array_like(leaf) and not is_traced(leaf) and np.issubdtype(np.asarray(leaf).dtype, np.number):
            refuse_non_finite("target", leaf, _missing_regions_hint(np.asarray(leaf)) or (
                "every loss would be NaN: drop or interpolate the missing samples (or regions) "
                "of the recording before fitting"
            ))  # fmt: skip


def _missing_regions_hint(target: np.ndarray) -> str | None:
    """How to fit without the regions a recording lacks, when its non-finite values are
    exactly whole regions: columns of a ``(time, regions)`` signal, rows and columns of an
    FC matrix (a region missing from an empirical FC). Dropping them from the target alone
    only moved the user on to a shape error: the prediction must drop them too."""
    if target.ndim != 2 or target.shape[-1] < 2:
        return None
    bad = ~np.isfinite(target)
    missing = np.flatnonzero(bad.all(axis=0))
    square = target.shape[0] == target.shape[1]
    covered = np.zeros_like(bad)
    covered[:, missing] = True
    if square:
        covered[missing, :] = True
    if missing.size == 0 or missing.size == target.shape[-1] or np.any(bad & ~covered):
        return None
    keep = [int(i) for i in np.setdiff1d(np.arange(target.shape[-1]), missing)]
    selection = "target[np.ix_(keep, keep)] for an FC matrix, target[:, keep] for a signal" if square else "target[:, keep]"
    return (
        f"regions {missing.tolist()} have no finite value (missing from the recording), and every loss would be "
        f"NaN. Fit without them: drop them from the target and from the prediction, with keep = {keep} "
        f"(the other regions): {selection}, and a predict that returns its (time, regions) array's "
        "[:, keep] (the model still simulates every region)"
    )


def loss_is_flat(result: FitResult) -> bool:
    """Whether nothing guided the search: every recorded loss of a fit of two or more steps
    (for scipy: evaluations) is the same finite number, or a scipy gradient method stopped
    at once on a gradient that was exactly zero."""
    history = np.asarray(result.history, dtype=float)
    same = history.size > 1 and bool(np.all(np.isfinite(history))) and bool(np.ptp(history) == 0)
    if result.backend == "scipy":
        return same or bool(isinstance(result.raw, dict) and result.raw.get("zero_gradient_at_start"))
    return result.n_steps >= 2 and same


def _warn_if_flat(result: FitResult) -> None:
    if loss_is_flat(result):
        if result.backend == "scipy":
            seen = (f"at every one of the {np.size(result.history)} evaluations" if np.size(result.history) > 1
                    else "where the search began, with a gradient of exactly zero")
        else:
            seen = f"at every one of the {result.n_steps} steps"
        warnings.warn(
            f"Fitter: the loss was {result.best_loss:.6g} {seen}: it does "
            "not change with the fitted parameters, so best_params is just where the search began or stopped. "
            "Check that the model is active (a network without noise at a fixed point records constant "
            "signals, whose FC is the identity), that the loss uses the prediction, and that no parameter "
            "sits where its transform saturates.",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )


def _data_signature(data) -> tuple:
    """The structure, shapes and dtypes of a fit's data: what its programs depend on."""
    leaves = jax.tree_util.tree_leaves(data)
    return jax.tree_util.tree_structure(data), tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves)


def _seed(key: PRNGKeyArray | None) -> int:
    """A NumPy seed drawn from ``key`` (0 without one), for nevergrad / SciPy."""
    if key is None:
        return 0
    return int(jr.randint(jr.fold_in(key, 1), (), 0, 2**31 - 1))


class Fitter:
    r"""Fit a model's trainable parameters.

    ``Fitter(model, optimizer=None, *, predict=..., objective=None, backend='grad', ...)``
    minimises

    $$L(\theta) = \text{objective}(\text{predict}(m_\theta)[\text{transient}:],\ \text{target})
      + \sum_{\text{Params}} \text{prior}(\text{value}),$$

    or ``loss_fn(model, target) + priors``. The trainable leaves are every
    ``Param(fit=True)`` of the model (or those chosen with ``where=``); the gradient
    backends move their *raw* values, so the transforms keep each value in its bounds.

    **Arguments:**

    - `model`: the model (any pytree, e.g. a node model or a `Network`).
    - `optimizer`: per backend:
        - ``'grad'``: an ``optax.GradientTransformation`` (default ``optax.adam(1e-2)``);
        - ``'optimistix'``: an optimistix minimiser (``optx.BFGS``, ``optx.LBFGS``,
          ``optx.NonlinearCG``, ...; default ``optx.BFGS(rtol=1e-6, atol=1e-8)``) or
          least-squares solver (``optx.LevenbergMarquardt``, ``optx.GaussNewton``,
          ``optx.Dogleg``): these fit the residuals ``prediction[transient:] - target``
          (or ``loss_fn``'s output, which must then be the residuals);
        - ``'nevergrad'``: a nevergrad optimizer name (``'DE'`` (default), ``'CMA'``,
          ``'TwoPointsDE'``, ...; not ``'NGOpt'``, which fails inside nevergrad 1.0.12 with
          NumPy 2.4) or family (``ng.optimizers.DifferentialEvolution(...)``);
        - ``'scipy'``: a ``scipy.optimize.minimize`` method name (default
          ``'L-BFGS-B'``) or a dict ``{'method', 'tol', 'options', 'constraints'}``.
    - `predict`: ``predict(model) -> prediction`` (``predict(model, key)`` with
      ``with_key=True``): e.g. a `simulate` call returning a ``(time, regions)`` array.
    - `objective`: ``objective(prediction, target) -> loss`` to minimise (default
      ``objectives.timeseries_rmse()``; build scores with ``as_loss=True``).
    - `loss_fn`: instead of `predict`/`objective`: ``loss_fn(model, target) -> loss`` or
      ``(loss, aux)`` (``loss_fn(model, target, key)`` with ``with_key=True``).
    - `backend`: ``'grad'``, ``'optimistix'``, ``'nevergrad'`` or ``'scipy'``.
    - `where`: select the trainable leaves as ``eqx.tree_at`` does, e.g.
      ``where=lambda m: (m.a, m.w)`` (default: every ``Param(fit=True)``).
    - `search_space`: ``{name: (low, high)}`` boxes for the gradient-free backends and
      random starts; they override the Params' bounds (and must lie inside them). Plain
      numbers are in the parameter's unit in the model (`FitResult.units`); Quantities are
      converted to it.
    - `transient`: samples cut from the start of the prediction before the objective.
    - `callbacks`: ``cb(info)`` called after every step with a dict holding ``step``,
      ``loss``, ``best_loss``, ``params`` and ``model``; returning ``True`` stops the fit.
      For ``'nevergrad'``, ``loss`` holds every candidate's loss and ``params``/``model``
      the generation's best; a multi-start ``'grad'``/``'optimistix'`` fit gives every
      start's ``loss`` and ``params`` and ``model=None``.
    - `with_key`: pass a PRNG key to ``predict``/``loss_fn`` (a new one each step for
      ``'grad'``, ``jax.random.fold_in(key, step)``; the fixed ``key`` for the others).
      With a new key each step, `FitResult.best_loss` is the lowest of the steps' noise
      draws (biased low); ``fitter.loss(result.best_params, target,
      key=jax.random.fold_in(key, result.best_step))`` reproduces it.

    The loss is compiled once per problem and configuration; the target is an argument
    of the compiled function (never a constant folded into it), so fitting a new target of
    the same shape does not recompile. A new `Fitter` of the same problem (the same
    functions, an equal optimizer, a model of the same structure, transforms, priors and
    fixed NumPy arrays, compared by value; other starting values, fixed JAX arrays and
    targets) runs the programs an earlier one compiled (`Fitter.clear_compiled` forgets
    them).
    """

    @suggests_keywords(elsewhere={n: f"Fitter.fit(..., {n}=...)" for n in _RUN_KEYWORDS})
    def __init__(
        self,
        model: PyTree,
        optimizer: Any = None,
        *,
        loss_fn: Callable | None = None,
        predict: Callable | None = None,
        objective: Callable | None = None,
        backend: str = "grad",
        where: Callable | None = None,
        search_space: Mapping[str, tuple[Any, Any]] | None = None,
        transient: int | None = None,
        callbacks: Callable | Sequence[Callable] | None = None,
        with_key: bool = False,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}{did_you_mean(backend, BACKENDS)}.")
        if loss_fn is None and predict is None:
            raise ValueError(
                "provide either loss_fn=callable(model, target) -> loss or (loss, aux), or "
                "predict=callable(model) -> prediction."
            )
        if loss_fn is not None and predict is not None:
            raise ValueError("pass loss_fn or predict, not both.")
        for name, fn in (("loss_fn", loss_fn), ("predict", predict)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}.")
        if objective is not None:
            from .. import objectives

            check_objective(objective, "objective", objectives, objectives.BUILDERS)
            score = getattr(objective, "score_of", None)
            if score is not None:
                raise ValueError(
                    f"objective is a score to maximise: {score} returns a correlation or cosine (1 for a "
                    "perfect match) unless built with as_loss=True, and a Fitter minimises its objective, "
                    f"which would drive the match away. Build it with objectives.{score.split()[0]}"
                    "(as_loss=True) (1 - score)" + (", or give it a negative weight." if "combine" in score else ".")
                )
        if loss_fn is not None and (objective is not None or transient):
            raise ValueError(
                "objective= and transient= apply to predict=; with loss_fn= the function computes the "
                "whole loss (drop them, or use predict=)."
            )
        self._least_squares = backend == "optimistix" and _optimistix.is_least_squares(optimizer)
        if self._least_squares and objective is not None:
            # It was silently ignored: an objective=psd_rmse(...) fit the time series instead.
            raise ValueError(
                f"objective= is not used by a least-squares solver ({type(optimizer).__name__}): it fits the "
                "residuals prediction[transient:] - target, minimising 0.5 * sum(residual**2) (the problem "
                "timeseries_rmse poses too). Drop objective=, or fit this objective with a minimiser "
                "(e.g. optx.BFGS(rtol=1e-6, atol=1e-8)) or another backend."
            )
        transient = 0 if transient is None else check_int(transient, "transient", 0)
        if objective is None and predict is not None:
            from ..objectives import timeseries_rmse

            objective = timeseries_rmse()
        self.backend = backend
        self.optimizer = {
            "grad": _grad.check_optimizer,
            "optimistix": _optimistix.check_optimizer,
            "nevergrad": _nevergrad.check_optimizer,
            "scipy": _scipy.check_optimizer,
        }[backend](optimizer)
        self.model = model
        self.space = ParamSpace(model, where, search_space)
        self.problem = Problem(
            self.space, loss_fn=loss_fn, predict=predict, objective=objective, transient=transient, with_key=with_key
        )
        self.callbacks = _as_callbacks(callbacks)
        self.with_key = bool(with_key)
        if backend == "nevergrad":
            self.space.box("backend='nevergrad'")
        self._compiled: dict[Any, Any] = {}
        self._program_key: Any = _UNKEYED

    # -- helpers -----------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """The trainable parameters' names."""
        return self.space.names

    @property
    def params(self) -> dict[str, Array]:
        """The initial constrained values ``{name: value}``."""
        return self.space.to_values(self.space.initial_raw())

    def loss(self, params: Mapping[str, Any] | None = None, target: Any = None, key: PRNGKeyArray | None = None):
        """``(loss, aux)`` at constrained values ``params`` (default: the model's own),
        exactly as the fit computes it (jit/grad/vmap-safe): for an optimistix
        least-squares solver ``0.5 * sum(r**2)`` of the residuals ``r`` (penalties included), on
        the scale of its `FitResult.best_loss`."""
        values = self.params if params is None else {n: jnp.asarray(params[n]) for n in self.names}
        if self.problem.predict is not None:
            if target is None:
                # The loss's own message ("pass fit(target, ...)") named the wrong call here.
                raise ValueError(
                    "Fitter.loss needs the target that predict's output is compared with: "
                    "fitter.loss(params, target) (params=None for the model's own values)."
                )
            # As fit: a Signal target was compared as it is here (its step unseen: predict's
            # array has none) while fit refused it.
            refuse_containers(target, "target is")
            check_target(self.problem.objective, target)
        data = self.problem.data(_as_target(target, self.problem.loss_fn is not None))
        if self._least_squares:
            residuals, aux = self.problem.residual_values(values, data, key)
            return _optimistix.sum_squares(residuals), aux
        return self.problem.loss_values(values, data, key)

    def _cached(self, key, build):
        """This Fitter's ``build()`` under ``key``: another Fitter's, if it built it for a
        problem of equal closed-over parts (`_programs`), else built now."""
        if key not in self._compiled:
            shared_key = self._shared_key()
            self._compiled[key] = build() if shared_key is None else _programs.shared((shared_key, key), build)
        return self._compiled[key]

    def _shared_key(self):
        """The key under which this Fitter's programs are shared with equal Fitters' (None:
        not shared). The optimiser is part of it where it is compiled in (``'grad'``:
        an optax transformation, keyed by its functions' code and closed-over settings;
        ``'optimistix'``: the solver Module, by its values); nevergrad and SciPy run on the
        host, around the compiled loss."""
        if self._program_key is _UNKEYED:
            optimizer = self.optimizer if self.backend in ("grad", "optimistix") else None
            self._program_key = _programs.value_key(self.backend, optimizer, self.problem.program_parts())
        return self._program_key

    @staticmethod
    def clear_compiled() -> None:
        """Forget the compiled programs kept for reuse by later Fitters of the same problem
        (the most recent `_programs.MAX_PROGRAMS`); a Fitter keeps its own as long as it lives."""
        _programs.clear()

    # -- fit -----------------------------------------------------------------------------------

    @suggests_keywords(elsewhere={n: f"Fitter(model, ..., {n}=...)" for n in _BUILD_KEYWORDS})
    def fit(
        self,
        target: Any = None,
        n_steps: int = 100,
        *,
        key: PRNGKeyArray | None = None,
        n_starts: int = 1,
        popsize: int | None = None,
        population: str | None = None,
        population_threads: int | None = None,
        devices: Sequence[jax.Device] | None = None,
        patience: int | None = None,
        min_delta: float = 0.0,
        progress: bool = False,
        checkpoint: str | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> FitResult:
        """Run the fit.

        **Arguments:**

        - `target`: what the prediction is compared with (passed to ``loss_fn`` as is; a list or
          tuple of arrays of one shape is stacked into one array, of several shapes kept as a list).
        - `n_steps`: optimiser steps (``'grad'``), solver steps (``'optimistix'``),
          generations (``'nevergrad'``) or iterations per start (``'scipy'``).
        - `key`: PRNG key for random starts, nevergrad / SciPy seeds, and (with
          ``with_key=True``) the predictions' noise. Default: a fixed seed 0.
        - `n_starts`: independent starts (``'grad'``/``'optimistix'``: run side by side in
          one ``jax.vmap``, split over `devices`; ``'scipy'``: restarts). Start 0 is the model's own values, the
          others are uniform in the parameters' box.
        - `popsize`: candidates per nevergrad generation (default 16), evaluated by one
          compiled function (see `population_threads`).
        - `population`: how: ``'vmap'`` (the default: side by side, ``jax.vmap``), ``'map'`` (one
          after the other in a compiled loop, ``jax.lax.map``: for models whose batched
          step is slower than single runs), or ``'auto'``: both are compiled for the first
          generation, each evaluates it twice (the second timed), and the faster one runs
          the fit (one extra compilation and two extra evaluations; the choice and its timings are in
          ``FitResult.raw``). Later fits with the same `popsize`, `population_threads` and
          target shapes, by this Fitter or an equal one, use that choice without timing again
          (``raw['population_reused']``). ``benchmarks/bench_fit.py`` (case P32n) measures both
          against a Python loop.
          A ``loss_fn`` with its own ``jax.vmap`` (over noise keys) makes ``'vmap'`` a
          nested ``vmap``, which the native delay kernels do not cover: on 2 cores it was
          still the faster (6.5 against 9.7 s per generation of 8 candidates x 2 keys, 10 s
          runs of 76 regions; docs/howto/ensembles.md).
        - `population_threads`: ``'nevergrad'``: the population is cut into this many
          equal slices, evaluated at once, each in its own thread (a ``vmap`` or
          ``lax.map`` per slice). Default: on a CPU, one thread per core the process may
          use (each with at least 4 candidates), and a population of more than 16
          candidates per thread cut into slices of 16 that the threads take in turn
          (as `brainmass_eqx.ensemble` does); elsewhere 1 (one call for the whole
          population). On 2 cores, 32 candidates of a delayed 80-region network: two
          slices of 16 at once took 0.44-0.48 s, one vmap of 32 0.68 s. The number of
          threads used is in ``FitResult.raw["population_threads"]``.
        - `devices`: the devices to evaluate on; default ``jax.devices()``. With two or
          more, a nevergrad population and the starts of a multi-start ``'grad'`` /
          ``'optimistix'`` fit are split over them, each device evaluating its own
          candidates or stepping its own starts with no communication between devices
          (`brainmass_eqx.ensemble`'s `shard_vmap`; a number that does not divide evenly
          is padded by repeating the last candidate or start, and the padding dropped);
          `population_threads` then does not apply. The fit is the one a single device
          runs, to rounding (each device compiles its own share's size). A single-start
          or ``'scipy'`` fit (whose restarts run one after another) runs on the first
          device; so does everything with one device.
        - `patience`, `min_delta`: stop when the best loss has not improved by more than
          ``min_delta`` for ``patience`` steps.
        - `progress`: show a tqdm progress bar.
        - `checkpoint`: a file to save the fit's state to (``'grad'``, ``'optimistix'``):
          every ``checkpoint_every`` steps and at the end. With ``resume=True`` an existing
          checkpoint is loaded and the fit continues to ``n_steps`` in total; a fit
          stopped and resumed gives the same result as one run straight through (one that
          had converged, or run out of ``patience``, resumes as finished). A
          checkpoint of another fit (other parameters or optimizer state, another target,
          other values of the model's fixed JAX arrays, or with ``with_key=True`` another
          key) is refused, naming what differs; so are one written with ``jax_enable_x64``
          set otherwise and a damaged file. The path is checked when the fit starts
          (its folder must exist and be writable). Each save replaces the file whole, so
          a fit killed while saving, or two fits saving to the same path, leave a whole
          checkpoint (the last one saved).

        **Returns:** a `FitResult`.

        **Raises:** `NonFiniteLossError` (with the step and the parameters that produced
        it, and the result so far as ``.result``) if the loss or its gradient becomes
        NaN/inf (in every start).
        """
        n_steps = check_int(n_steps, "n_steps", 1)
        n_starts = check_int(n_starts, "n_starts", 1)
        if self.backend != "nevergrad":
            # Silently ignored, a population size reads as if the fit had used one.
            given = [name for name, v in (("popsize", popsize), ("population", population), ("population_threads", population_threads)) if v is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} applies to backend='nevergrad' (its population), not {self.backend!r}; drop it."
                )
        popsize = check_int(16 if popsize is None else popsize, "popsize", 2)
        population = "vmap" if population is None else population
        if patience is not None:
            patience = check_int(patience, "patience", 1)
        check_real(min_delta, "min_delta")
        if not (np.ndim(min_delta) == 0 and float(min_delta) >= 0):
            # A negative one counted a worse loss as an improvement (early stopping never
            # stopped); NaN counted none (it stopped after `patience` steps, however good).
            raise ValueError(f"min_delta must be a number >= 0 (the least drop in loss that counts), got {min_delta!r}.")
        min_delta = float(min_delta)
        if checkpoint_every is not None:
            checkpoint_every = check_int(checkpoint_every, "checkpoint_every", 1)
        if (checkpoint is not None or resume) and self.backend not in ("grad", "optimistix"):
            raise ValueError(
                f"checkpoint= / resume= are supported by backend='grad' and 'optimistix', not {self.backend!r}."
            )
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path> to resume from.")
        if checkpoint is not None:
            # Now, not at the first save: without checkpoint_every that is the fit's end.
            checkpoint = check_writable(checkpoint, "checkpoint")
        if self.problem.predict is not None:
            refuse_containers(target, "target is")
            check_target(self.problem.objective, target)
        _refuse_non_finite_target(target)
        if population not in _nevergrad.POPULATION_MODES:
            raise ValueError(f"population must be one of {_nevergrad.POPULATION_MODES}, got {population!r}.")
        if population_threads is not None:
            population_threads = check_int(population_threads, "population_threads", 1)
        devices = check_devices(devices)
        if population_threads is not None and population_threads > 1 and len(devices) > 1:
            raise ValueError(
                f"population_threads={population_threads} cuts the population into threads on one device; with "
                f"{len(devices)} devices it is split over them instead, one share each. Drop population_threads, "
                "or pass devices=jax.devices()[:1] to use threads on one device."
            )
        if n_starts > 1 and self.backend == "nevergrad":
            raise ValueError("n_starts does not apply to backend='nevergrad' (its population is popsize=).")
        if self.with_key and key is None:
            raise ValueError("this Fitter has with_key=True: pass fit(..., key=jax.random.key(...)).")
        data = self.problem.data(_as_target(target, self.problem.loss_fn is not None))
        monitor = Monitor(
            backend=self.backend,
            space=self.space,
            callbacks=self.callbacks,
            patience=patience,
            min_delta=min_delta,
            progress=progress,
            n_steps=n_steps * (n_starts if self.backend == "scipy" else 1),
            batched=n_starts > 1 and self.backend in ("grad", "optimistix"),
        )
        model_key = key if self.with_key else None
        # With one device given that is not the default one, the fit's calls run on it.
        on = jax.default_device(devices[0]) if devices[0] != jax.devices()[0] else contextlib.nullcontext()
        try:
            with on:
                out = self._run_backend(data, n_steps, key, model_key, n_starts, popsize, population,
                                        population_threads, devices, monitor, checkpoint, checkpoint_every,
                                        resume)  # fmt: skip
        except NonFiniteLossError as err:
            # Every backend attaches what it had found before the non-finite loss (if anything).
            output = getattr(err, "output", None)
            if output is not None:
                err.result = self._result(output)
            raise
        result = self._result(out)
        _warn_if_flat(result)
        return result

    def _run_backend(self, data, n_steps, key, model_key, n_starts, popsize, population, population_threads,
                     devices, monitor, checkpoint, checkpoint_every, resume) -> BackendOutput:  # fmt: skip
        # Several devices: part of the cache keys (a program per set of devices); one: the
        # keys, programs and calls of a one-device fit.
        split = (tuple(devices),) if len(devices) > 1 else ()
        if self.backend in ("grad", "optimistix"):
            return self._run_steps(data, n_steps, key, model_key, n_starts, monitor, checkpoint, checkpoint_every, resume,
                                   split)  # fmt: skip
        if self.backend == "nevergrad":
            modes = ("vmap", "map") if population == "auto" else (population,)
            batched = {
                mode: self._cached(
                    ("nevergrad", mode, *split),
                    lambda mode=mode: _nevergrad.make_batched_loss(self.problem, self.space, mode, *split),
                )
                for mode in modes
            }
            batched = batched if population == "auto" else batched[population]
            chosen = None
            if population == "auto":
                # The choice holds for later fits of the same population, slices and data shapes.
                chosen = self._cached(
                    ("nevergrad-choice", popsize, population_threads, _data_signature(data), *split), dict
                )
            return _nevergrad.run(
                problem=self.problem, space=self.space, family=self.optimizer, batched=batched, data=data,
                key=model_key, seed=_seed(key), n_steps=n_steps, popsize=popsize, monitor=monitor,
                threads=population_threads, devices=len(devices), chosen=chosen,
            )  # fmt: skip
        method = self.optimizer["method"]
        function = self._cached(("scipy", method), lambda: _scipy.make_function(self.problem, self.space, method))
        return _scipy.run(
            problem=self.problem, space=self.space, spec=self.optimizer, function=function, data=data,
            key=model_key, seed=_seed(key), n_steps=n_steps, n_starts=n_starts, monitor=monitor,
        )  # fmt: skip

    def _fingerprint(self, data, n_starts: int, model_key) -> dict:
        """What a checkpoint must match to be resumed: the fit's structure, and digests of
        the target, the model's fixed arrays, the optimizer's settings and the key."""
        fingerprint = {
            "backend": self.backend,
            "optimizer": type(self.optimizer).__name__,
            "names": list(self.names),
            "shapes": [list(lf.shape) for lf in self.space.leaves],
            "n_starts": n_starts,
            # Resuming against another target (or, with with_key=True, whose key draws each
            # step's noise, another key) would continue one fit's optimiser state on another
            # problem, silently. (Multi-start draws are in the checkpoint's state.)
            "target (a digest of its values)": digest(data.target),
            "model's fixed arrays (a digest)": digest(data.frozen),
            # Its class name alone let adam(0.3) resume adam(0.1)'s fit.
            "optimizer's settings (a digest)": _optimizer_digest(self.optimizer, self.space.initial_raw()),
        }
        if model_key is not None:
            fingerprint["key (a digest)"] = digest(model_key)
        return fingerprint

    def _run_steps(self, data, n_steps, key, model_key, n_starts, monitor, checkpoint, checkpoint_every, resume, split=()):
        raw0 = self.space.initial_raw()
        least_squares = self.backend == "optimistix" and _optimistix.is_least_squares(self.optimizer)
        evaluate = self.problem.residuals if least_squares else self.problem.loss
        # Tracing (not compiling) the loss once per target shape gives the aux output's
        # shape; a target that does not fit the prediction fails here, eagerly.
        step_key = None if model_key is None else jr.fold_in(model_key, 0)
        signature = _data_signature(data)
        _, aux_like = self._cached(("aux", signature), lambda: jax.eval_shape(evaluate, raw0, data, step_key))
        split = split if n_starts > 1 else ()  # one start: nothing to split
        if self.backend == "grad":
            runner = self._cached(
                ("grad", n_starts, *split), lambda: _grad.make_runner(self.problem, self.optimizer, n_starts, *split)
            )
        else:
            jac = "bwd"
            if least_squares:
                first = ("jac", signature) not in self._compiled
                jac, why = self._cached(("jac", signature), lambda: _optimistix.choose_jacobian(self.problem, raw0, data, model_key))
                if why is not None and first:  # once per Fitter, also when another Fitter chose
                    warnings.warn(why, UserWarning, stacklevel=user_stacklevel())
            runner = self._cached(
                ("optimistix", n_starts, jac, *split),
                lambda: _optimistix.make_runner(self.problem, self.optimizer, n_starts, jac, *split),
            )
        if n_starts > 1:
            raw0 = self._draw_starts(raw0, n_starts, key)
        # Only a fit that checkpoints needs one (its optimizer digest compiles an update).
        fingerprint = None if checkpoint is None else self._fingerprint(data, n_starts, model_key)
        try:
            carry, history, n_done, stop_reason = runner.run(
                space=self.space, raw0=raw0, aux_like=aux_like, data=data, key=model_key, n_steps=n_steps,
                monitor=monitor, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                fingerprint=fingerprint,
            )  # fmt: skip
        except NonFiniteLossError as err:
            if getattr(err, "carry", None) is not None and err.n_done > 0:
                err.output = self._from_carry(err.carry, np.asarray(err.history), err.n_done, "nonfinite", n_starts)
            raise
        if self.backend == "optimistix" and stop_reason == "converged":
            stop_reason = _optimistix.result_message(carry, n_starts)
        return self._from_carry(carry, history, n_done, stop_reason, n_starts)

    def _from_carry(self, carry, history, n_done, stop_reason, n_starts) -> BackendOutput:
        best_raw, best_loss, best_step, best_aux, per_start = pick_best(carry, n_starts)
        raw = None
        if per_start is not None:
            raw = dict(per_start, best_params=self.space.to_values(per_start["best_params"]))
        return BackendOutput(
            best_raw=best_raw, best_loss=best_loss, best_step=best_step, history=history, n_steps=n_done,
            prediction=best_aux, stop_reason=stop_reason, optimizer=self.optimizer, raw=raw,
        )  # fmt: skip

    def _draw_starts(self, raw0, n_starts, key):
        """Start 0: the model's values; starts 1..: uniform in the box, from ``key``."""
        box = self.space.box(f"a multi-start fit (n_starts={n_starts})")
        values0 = self.space.to_values(raw0)
        draw_key = jr.fold_in(jr.key(0) if key is None else key, 2)
        values = {}
        for k, lf in zip(jr.split(draw_key, len(self.names)), self.space.leaves):
            lo, hi = box[lf.name]
            draws = jr.uniform(k, (n_starts - 1, *lf.shape), lf.dtype, jnp.asarray(lo, lf.dtype), jnp.asarray(hi, lf.dtype))
            values[lf.name] = jnp.concatenate([values0[lf.name][None], draws])
        return self.space.to_raw(values)

    def _result(self, out: BackendOutput) -> FitResult:
        best_values = out.best_values if out.best_values is not None else self.space.to_values(out.best_raw)
        return FitResult(
            backend=self.backend,
            best_loss=float(out.best_loss),
            best_params=best_values,
            model=self.space.model(out.best_raw),
            prediction=out.prediction,
            history=out.history,
            n_steps=out.n_steps,
            best_step=out.best_step,
            stop_reason=out.stop_reason,
            optimizer=out.optimizer,
            raw=out.raw,
            units={lf.name: lf.unit or "" for lf in self.space.leaves},
        )


def _as_target(target: Any, for_loss_fn: bool) -> Any:
    """The target as the compiled loss reads it. Host arrays and numbers become JAX arrays,
    and so does a list or tuple of arrays of one shape (stacked). A list or tuple whose items
    differ in shape or are containers (the FCs of subjects of different sizes) goes to
    ``loss_fn`` as given (it was stacked too, and failed in ``jnp.asarray`` with "Cannot
    concatenate arrays with shapes that differ"); ``predict=`` compares one array, so
    there it is refused, saying what to use."""
    if isinstance(target, (np.ndarray, float, int, np.generic)):
        return jnp.asarray(target)
    if isinstance(target, (list, tuple)):
        try:
            return jnp.asarray(target)
        except (TypeError, ValueError) as err:
            if for_loss_fn:
                return target
            error = err
        what = ", ".join(str(np.shape(item)) if eqx.is_array_like(item) else "a " + type(item).__name__ for item in target)
        raise ValueError(
            f"target is a {type(target).__name__} of items that cannot be stacked into one array ({what}); "
            "predict= is compared with one array. For several subjects of different sizes, fit with "
            "loss_fn=lambda model, target: ... that runs each subject and averages their losses over the "
            "list (it gets the list as given); subjects of one size can be stacked, target (S, ...), and "
            "compared with objectives.group_mean(objective)."
        ) from error
    return target
