"""brainmass's ``Fitter`` / ``FitResult`` on `brainmass_eqx.fit.Fitter`.

``Fitter(model, optimizer, *, loss_fn | predict (+ objective, transient), backend,
callbacks, search_space).fit(target, n_steps, verbose=False)`` keeps brainmass's
arguments, checks and messages. The trainable parameters are the model's
``Param(..., fit=True)`` objects, named by attribute path (``'a'``, ``'coupling.k'``,
``'node.a'``); the core fits their raw values with the same transforms.

Deliberate differences (``docs/compat.md``):

- ``best_params`` (and the model after ``fit``) are the parameters that produced
  ``best_loss``; brainmass stored the parameters one optimizer step later (its seed
  notebook prints gain 2.200 next to a loss reached at 2.000);
- the loss is compiled once per ``Fitter`` and the target is an argument, not a constant;
- random draws inside the loss (noise, random initial states) use one fixed key per
  ``fit`` (brainmass drew new ones at every step, so even noise-free losses moved);
- ``'scipy'``: start 0 is the model's own values, the others uniform in the bounds;
  ``'nevergrad'``: a population is evaluated in one ``vmap``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from .. import _param as core_param
from .._checks import check_int, check_objective
from ..fit import Fitter as CoreFitter
from . import brainunit as u, objectives as _objectives
from .brainstate._state import install
from .brainstate.nn import Param, _walk
from .braintools.optim import Adam, OptaxOptimizer

__all__ = ["Fitter", "FitResult"]

_BACKENDS = ("grad", "nevergrad", "scipy")


class FitResult:
    """The outcome of `Fitter.fit` (brainmass's attributes): ``backend``, ``best_loss``,
    ``best_params``, ``history``, ``n_steps``, ``prediction`` (at the best parameters; None for
    a ``'scipy'``/``'nevergrad'`` fit with ``loss_fn``), ``optimizer``, ``raw`` (the best
    start's SciPy ``OptimizeResult`` for ``'scipy'``, the best parameters for
    ``'nevergrad'``, None for ``'grad'``) and ``model``."""

    __module__ = "brainmass"

    def __init__(self, *, backend, best_loss, best_params, history, n_steps, prediction=None, optimizer=None, raw=None,
                 model=None):
        self.backend = backend
        self.best_loss = best_loss
        self.best_params = best_params
        self.history = history
        self.n_steps = n_steps
        self.prediction = prediction
        self.optimizer = optimizer
        self.raw = raw
        self.model = model

    def __repr__(self):
        names = ", ".join(self.best_params)
        return f"FitResult(backend={self.backend!r}, best_loss={self.best_loss:.6g}, n_steps={self.n_steps}, params=[{names}])"


def trainable_params(model: Any) -> dict[str, Param]:
    """``{dotted path: Param}`` of every ``Param(fit=True)`` reachable from ``model``."""
    out = {}
    for path, obj in _walk(model):
        if isinstance(obj, Param) and obj.fit:
            out[".".join(str(p) for p in path)] = obj
    return out


#: brainmass's private name, which its own tests import (``from brainmass.fitter import
#: _trainable_params``); ``brainmass.fitter`` provides it.
_trainable_params = trainable_params


def _finite_box(transform) -> tuple[float, float] | None:
    """``(lower, upper)`` of a transform's constrained interval if both ends are finite
    (``SigmoidT``, ``TanhT``, ``SoftsignT``, ``ScaledSigmoidT``, ``ClipT``), else None
    (``ReluT``, ``SoftplusT``, ``IdentityT``, ...: they need a ``search_space`` entry).
    brainmass's private helper, as in ``brainmass.fitter``."""
    lo, hi = transform.bounds
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _build_search_space(params: Mapping[str, Param], user_search_space: Mapping | None) -> dict:
    """``{name: (low, high)}`` bounds of the derivative-free backends: ``user_search_space``'s
    entry where given, else the parameter's `_finite_box`, broadcast to the parameter's shape.

    Raises ``ValueError`` for a ``user_search_space`` name that is not a trainable parameter,
    and for a parameter with neither a finite interval nor an entry (brainmass's checks and
    messages; brainmass's private helper, as in ``brainmass.fitter``)."""
    user = dict(user_search_space or {})
    for name in user:
        if name not in params:
            raise ValueError(
                f"search_space names unknown parameter {name!r}; trainable parameters are {sorted(params)}."
            )
    bounds = {}
    for name, p in params.items():
        box = user[name] if name in user else _finite_box(p.t)
        if box is None:
            raise ValueError(
                f"cannot derive search bounds for trainable parameter {name!r}: its transform "
                f"{type(p.t).__name__} defines no finite interval. Pass search_space={{{name!r}: (low, high)}}."
            )
        lo, hi = box
        shape = jnp.shape(p.value())
        bounds[name] = (lo, hi) if shape == () else (jnp.full(shape, lo), jnp.full(shape, hi))
    return bounds


class Fitter:
    r"""Fit a model's ``Param(fit=True)`` parameters (brainmass's API).

    **Arguments:** as brainmass 0.1.1: ``model``; ``optimizer`` (``'grad'``: a
    ``braintools.optim`` optimizer, default ``Adam(lr=1e-2)``; ``'nevergrad'``/``'scipy'``:
    a method name or an options dict); ``loss_fn(model) -> (loss, aux)`` or
    ``predict(model) -> prediction`` with ``objective(prediction[transient:], target)``
    (default ``objectives.timeseries_rmse()``); ``backend``; ``callbacks`` (``cb(info)``,
    return True to stop); ``transient``; ``search_space={name: (low, high)}``.
    """

    __module__ = "brainmass"

    def __init__(self, model, optimizer=None, *, loss_fn=None, objective=None, predict=None, backend="grad",
                 callbacks=None, transient=None, search_space=None):
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}.")
        if loss_fn is None and predict is None:
            raise ValueError(
                "provide either loss_fn=callable(model)->(loss, aux) or predict=callable(model)->prediction."
            )
        if loss_fn is not None and predict is not None:
            raise ValueError("pass loss_fn or predict, not both.")
        if objective is not None:
            check_objective(objective, "objective", _objectives, _objectives.BUILDERS)
        self.model = model
        self.loss_fn = loss_fn
        self.predict = predict
        self.objective = objective if objective is not None else (_objectives.timeseries_rmse() if loss_fn is None else None)
        self.backend = backend
        self.callbacks = list(callbacks) if isinstance(callbacks, Sequence) else ([callbacks] if callbacks else [])
        self.transient = transient
        self.search_space = dict(search_space) if search_space else None
        self._optimizer_arg = optimizer
        self._optimizer = optimizer if backend == "grad" else None
        self._core = None

    @property
    def optimizer(self):
        """The optimizer used (built inside `fit` for the derivative-free backends)."""
        return self._optimizer

    # -- the problem -------------------------------------------------------------------------------------
    def _eval(self, target):
        if self.loss_fn is not None:
            out = self.loss_fn(self.model)
            return out if isinstance(out, tuple) else (out, None)
        prediction = self.predict(self.model)
        trimmed = prediction if self.transient is None else prediction[int(self.transient):]
        loss = self.objective(trimmed, target)
        if hasattr(self.model, "reg_loss"):
            loss = loss + self.model.reg_loss()
        return loss, prediction

    def _core_fitter(self, params: dict[str, Param]):
        names = list(params)
        units = {n: params[n].unit for n in names}
        states = [params[n].val for n in names]

        def raw_of(n, leaf):
            # The core hands Params with their own transform (gradient backends) or with an
            # identity transform holding the constrained value (box searches).
            if type(leaf.transform) is type(params[n].t) and leaf.transform == params[n].t:
                return leaf.raw
            return params[n].t.inverse(leaf.value)

        def loss(tree, target):
            raws = [raw_of(n, tree[n]) for n in names]
            with install(states, raws):
                value, aux = self._eval(target)
            return jnp.asarray(u.get_magnitude(value)), aux

        loss.keeps_params = True  # raw_of reads the Params' raw values and transforms

        tree = {}
        for n in names:
            value = u.get_magnitude(params[n].value()) if units[n] is None else params[n].value().value
            value = params[n].t.forward(params[n].raw) if params[n].precompute is not None else value
            tree[n] = core_param.Param(value, fit=True, transform=params[n].t)
        callbacks = [self._callback_adapter(params)] if self.callbacks else None
        return tree, loss, callbacks

    def _callback_adapter(self, params):
        def cb(info):
            values = info.get("params", {})
            for n, p in params.items():
                if n in values:
                    p.set_value(jnp.asarray(values[n]) if p.unit is None else u.Quantity(values[n], p.unit))
            brainmass_info = {"step": info["step"], "loss": float(info["loss"]), "best_loss": float(info["best_loss"]),
                              "model": self.model}
            stop = False
            for c in self.callbacks:
                if c(brainmass_info) is True:
                    stop = True
            return stop

        return cb

    # -- fit -----------------------------------------------------------------------------------------------
    def fit(self, target=None, n_steps=100, *, verbose=False) -> FitResult:
        """Run the optimisation: ``n_steps`` optimizer steps (``'grad'``), generations
        (``'nevergrad'``) or random restarts (``'scipy'``)."""
        if isinstance(n_steps, (int, np.integer)) and not isinstance(n_steps, bool) and n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps!r}.")  # brainmass's message
        n_steps = check_int(n_steps, "n_steps", 1)
        params = trainable_params(self.model)
        if self.backend == "grad":
            if not params:
                raise ValueError(
                    "model has no trainable parameters (brainstate.ParamState); set fit=True on at least one Param "
                    "to fit with backend='grad'."
                )
            optimizer = self._optimizer_arg
            if optimizer is None:
                optimizer = Adam(lr=1e-2)
            elif not isinstance(optimizer, OptaxOptimizer):
                raise TypeError(
                    "backend='grad' requires a braintools.optim optimizer (e.g. Adam(lr=...)) or None; "
                    f"got {type(optimizer).__name__}."
                )
            self._optimizer = optimizer
            core_opt, kwargs = optimizer.tx, {}
        else:
            if not params and not self.search_space:
                raise ValueError(
                    "model has no trainable parameters and no search_space was given; "
                    f"backend={self.backend!r} needs at least one parameter to search."
                )
            opts = self._derivfree_opts()
            _build_search_space(params, self.search_space)  # its checks; the core derives the same bounds
            if self.backend == "nevergrad":
                core_opt = opts.pop("method", "DE")
                kwargs = {"popsize": int(opts.pop("n_sample", 8))}
            else:
                core_opt = {k: v for k, v in opts.items() if k in ("method", "tol", "options", "constraints")}
                kwargs = {}
        tree, loss, callbacks = self._core_fitter(params)
        core = CoreFitter(tree, core_opt, loss_fn=loss, backend=self.backend, callbacks=callbacks,
                          search_space=self.search_space)
        if self.backend == "scipy":
            maxiter = int((core_opt.get("options") or {}).get("maxiter", 200))
            result = core.fit(target, maxiter, n_starts=n_steps, **kwargs)
        else:
            result = core.fit(target, n_steps, **kwargs)
        if self.backend != "grad":
            self._optimizer = result.optimizer
        best = {n: result.best_params[n] for n in params}
        for n, p in params.items():
            value = best[n]
            p.set_value(value if p.unit is None else u.Quantity(value, p.unit))
        best_params = {n: (params[n].value() if params[n].precompute is None else best[n]) for n in params}
        history = [float(h) for h in np.ravel(np.asarray(result.history))]
        if self.backend == "nevergrad" and isinstance(result.raw, Mapping) and "losses" in result.raw:
            history = [float(h) for h in np.ravel(np.asarray(result.raw["losses"]))]
        if self.backend == "scipy":
            history = [float(result.best_loss)]
        if verbose:
            for i, h in enumerate(history):
                print(f"[{self.backend}] step {i}: loss={h:.6g} best={min(history[: i + 1]):.6g}")
        n_done = n_steps if self.backend == "scipy" else int(result.n_steps)
        # brainmass's FitResult: prediction is None for a derivative-free loss_fn fit (its
        # 'grad' keeps loss_fn's aux); raw is the best start's OptimizeResult ('scipy'), the
        # best parameters ('nevergrad') or None ('grad'). The core's details stay in
        # result.raw of brainmass_eqx.fit.
        prediction = None if self.loss_fn is not None and self.backend != "grad" else result.prediction
        raw = None
        if self.backend == "scipy":
            done = [r for r in result.raw["results"] if r is not None]  # None: a start that raised
            raw = min(done, key=lambda r: float(r.fun), default=None)
        elif self.backend == "nevergrad":
            raw = best
        return FitResult(
            backend=self.backend, best_loss=float(result.best_loss), best_params=best_params, history=history,
            n_steps=n_done, prediction=prediction, optimizer=self._optimizer, raw=raw, model=self.model,
        )  # fmt: skip

    def _derivfree_opts(self) -> dict:
        arg = self._optimizer_arg
        if arg is None:
            return {}
        if isinstance(arg, str):
            return {"method": arg}
        if isinstance(arg, dict):
            return dict(arg)
        raise TypeError(
            f"for backend={self.backend!r}, optimizer must be a method name (str), an options dict, or None; "
            f"got {type(arg).__name__}."
        )

