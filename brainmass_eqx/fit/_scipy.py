"""Backend ``'scipy'``: ``scipy.optimize.minimize`` with JAX gradients and random restarts.

Methods that accept bounds (L-BFGS-B, Nelder-Mead, Powell, TNC, SLSQP, trust-constr, COBYLA,
COBYQA) search the constrained values inside the parameters' bounds (from the transforms or
``search_space``; unbounded parameters stay unbounded). The others (BFGS, CG, Newton-CG)
search the raw, unconstrained values, so the transforms keep every value in its bounds.
Losses and gradients are computed by one jitted function in the model's precision and
handed to SciPy as float64. ``n_steps`` is each start's ``maxiter``; start 0 is the model's
current values, the others are drawn uniformly in the box from ``seed``.
"""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import user_stacklevel
from ._loop import BackendOutput, Monitor
from ._problem import NonFiniteLossError, ParamSpace, Problem

__all__ = ["check_optimizer", "make_function", "run", "uses_bounds", "uses_gradient"]

_BOUNDED = {"l-bfgs-b", "nelder-mead", "powell", "tnc", "slsqp", "trust-constr", "cobyla", "cobyqa"}
_GRADIENT_FREE = {"nelder-mead", "powell", "cobyla", "cobyqa"}
_METHODS = _BOUNDED | {"bfgs", "cg", "newton-cg"}
_MINIMIZE_KEYS = {"method", "tol", "options", "constraints"}


def _readable_message(message: Any) -> str:
    """scipy's termination message, made readable: L-BFGS-B's bare "ABNORMAL: " says
    neither what happened nor whether it matters."""
    text = str(message).strip().rstrip(":").strip()
    if text.upper().startswith("ABNORMAL"):
        text += (" (the line search found no decrease: usually the loss is at its floor, "
                 "or its gradient is inexact)")
    return text


def check_optimizer(optimizer: Any) -> dict:
    """``{'method': ..., 'tol': ..., 'options': {...}, ...}`` from None, a method name or a dict."""
    if optimizer is None:
        spec = {"method": "L-BFGS-B"}
    elif isinstance(optimizer, str):
        spec = {"method": optimizer}
    elif isinstance(optimizer, dict):
        unknown = sorted(set(optimizer) - _MINIMIZE_KEYS)
        if unknown:
            raise ValueError(
                f"optimizer dict for backend='scipy' has unknown keys {unknown}; allowed: {sorted(_MINIMIZE_KEYS)} "
                "(method-specific settings go under 'options')."
            )
        spec = {"method": "L-BFGS-B", **optimizer}
    else:
        raise TypeError(
            "for backend='scipy', optimizer must be a method name (str), an options dict, or None; "
            f"got {type(optimizer).__name__}."
        )
    method = str(spec["method"]).lower()
    if method not in _METHODS:
        raise ValueError(
            f"optimizer method {spec['method']!r} is not supported by backend='scipy'; choose one of "
            f"{sorted(_METHODS)} (methods needing a Hessian are not offered)."
        )
    spec["method"] = method
    return spec


def uses_bounds(method: str) -> bool:
    return method in _BOUNDED


def uses_gradient(method: str) -> bool:
    return method not in _GRADIENT_FREE


def make_function(problem: Problem, space: ParamSpace, method: str):
    """One jitted ``f(x, data, key) -> ((loss, aux), grad or None)`` of the flat search vector."""
    loss = problem.loss_values if uses_bounds(method) else problem.loss

    def f(x, data, key):
        return loss(space.unravel(x), data, key)

    if uses_gradient(method):
        return eqx.filter_jit(jax.value_and_grad(f, has_aux=True))
    return eqx.filter_jit(lambda x, data, key: (f(x, data, key), None))


class _StartFailed(Exception):
    def __init__(self, x, loss):
        self.x, self.loss = x, loss


def run(*, problem, space: ParamSpace, spec: dict, function, data, key, seed, n_steps, n_starts, monitor: Monitor) -> BackendOutput:
    # Imported here: `import brainmass_eqx` must not pay for SciPy (issue 6's memory floor).
    import scipy.optimize

    method = spec["method"]
    bounded = uses_bounds(method)
    with_grad = uses_gradient(method)
    dtype = np.dtype(jnp.result_type(float))
    values0 = space.to_values(space.initial_raw())
    bounds = space.bounds()
    lo = space.ravel({n: bounds[n][0] for n in space.names})
    hi = space.ravel({n: bounds[n][1] for n in space.names})
    starts = [np.clip(space.ravel(values0), lo, hi)]
    if n_starts > 1:
        space.box(f"backend='scipy' with n_starts={n_starts} (random restarts)")
        rng = np.random.default_rng(seed)
        starts += [rng.uniform(lo, hi) for _ in range(n_starts - 1)]
    options = dict(spec.get("options") or {})
    options.setdefault("maxfun" if method == "tnc" else "maxiter", n_steps)
    kwargs = {k: v for k, v in spec.items() if k in ("tol", "constraints")}

    def to_search(values_vec):
        # Bounded methods search values; the others search raw values.
        return values_vec if bounded else space.ravel(space.to_raw(space.unravel(values_vec)))

    def to_values(x):
        return space.unravel(x) if bounded else space.to_values(space.unravel(x))

    best = {"loss": np.inf, "x": None, "aux": None, "step": -1}
    history: list[float] = []
    iterations = 0
    results, failures = [], []
    stop_reason = "n_steps"
    # A gradient that is exactly zero at a start ends a gradient method at once, with one
    # evaluation: too few for a flat history to show (`loss_is_flat`).
    zero_gradient = []

    def output(stop_reason):
        best_values = to_values(best["x"])
        return BackendOutput(
            best_raw=space.to_raw(best_values) if bounded else space.unravel(best["x"]),
            best_loss=best["loss"],
            best_step=best["step"],
            history=np.asarray(history),
            n_steps=iterations,
            prediction=best["aux"],
            stop_reason=stop_reason,
            optimizer=spec,
            raw={"results": results, "failed_starts": failures, "zero_gradient_at_start": bool(zero_gradient and zero_gradient[0])},
            best_values=best_values if bounded else None,
        )

    def fun(x):
        # A NumPy array in the model's precision: the compiled function takes it as it would
        # the JAX array (the same program), without an eager conversion per evaluation.
        (loss, aux), grad = function(np.asarray(x, dtype), data, key)
        loss = float(loss)
        ok = np.isfinite(loss)
        if with_grad:
            grad = np.asarray(grad, dtype=np.float64)
            ok = ok and np.all(np.isfinite(grad))
        if not ok:
            raise _StartFailed(np.array(x), loss)
        if with_grad and not zero_gradient:
            zero_gradient.append(not np.any(grad))
        history.append(loss)
        if loss < best["loss"]:
            best.update(loss=loss, x=np.array(x, dtype=np.float64), aux=aux, step=len(history) - 1)
        return (loss, grad) if with_grad else loss

    def callback(intermediate_result):
        x = getattr(intermediate_result, "x", intermediate_result)
        loss = getattr(intermediate_result, "fun", history[-1] if history else np.nan)
        nonlocal iterations, stop_reason
        reason = monitor.update(iterations, loss, best["loss"], lambda: space.to_raw(to_values(np.asarray(x))))
        iterations += 1
        if reason is not None:
            stop_reason = reason
            raise StopIteration

    try:
        for i, start in enumerate(starts):
            x0 = to_search(start)
            try:
                res = scipy.optimize.minimize(
                    fun,
                    x0,
                    jac=with_grad,
                    method=method,
                    bounds=list(zip(np.where(np.isfinite(lo), lo, None), np.where(np.isfinite(hi), hi, None))) if bounded else None,
                    callback=callback,
                    options=options,
                    **kwargs,
                )
                results.append(res)
            except _StartFailed as fail:
                values = to_values(fail.x)
                msg = (
                    f"the loss or its gradient became non-finite ({fail.loss}) in start {i} after "
                    f"{len(history)} evaluations, at {space.describe(values)}"
                )
                failures.append(i)
                if len(failures) == len(starts):
                    err = NonFiniteLossError(
                        msg + ". Bound the parameters (Param(bounds=...) or search_space=) or check predict.",
                        step=len(history),
                        params=values,
                    )
                    if best["x"] is not None:  # the evaluations before: `Fitter.fit` makes err.result of it
                        err.output = output("nonfinite")
                    raise err from None
                warnings.warn(msg + "; that start stops here.", RuntimeWarning, stacklevel=user_stacklevel())
                results.append(None)
            if stop_reason != "n_steps":
                break
    finally:
        monitor.close()
    if stop_reason == "n_steps":
        unsuccessful = [r for r in results if r is not None and not r.success]
        stop_reason = f"scipy: {_readable_message(unsuccessful[0].message)}" if unsuccessful else "converged"
    return output(stop_reason)
