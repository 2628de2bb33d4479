"""Backend ``'grad'``: any optax ``GradientTransformation``, gradients through the solve.

One step evaluates ``(loss, aux)`` and the gradient at the current raw parameters and
applies the optimiser's update; the loss belongs to the parameters *before* the update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import jax.random as jr

from .._checks import all_finite
from ._loop import StepRunner
from ._problem import Problem

if TYPE_CHECKING:
    import optax

__all__ = ["check_optimizer", "make_runner"]


def check_optimizer(optimizer: Any) -> optax.GradientTransformation:
    # optax is imported by the backend that uses it, not by `import brainmass_eqx`.
    import optax

    if optimizer is None:
        return optax.adam(1e-2)
    if not isinstance(optimizer, optax.GradientTransformation):
        hint = ""
        if isinstance(optimizer, str) and hasattr(optax, optimizer.lower()):
            hint = f" For optax's {optimizer.lower()}, pass optax.{optimizer.lower()}(learning_rate)."
        elif isinstance(optimizer, str):
            hint = " A name selects a gradient-free optimiser: pass backend='nevergrad' (e.g. 'DE', 'CMA') or backend='scipy' (e.g. 'L-BFGS-B')."
        elif callable(optimizer) and getattr(optimizer, "__module__", "").startswith("optax"):
            hint = f" {optimizer.__name__} is optax's constructor: call it, e.g. optax.{optimizer.__name__}(1e-2)."
        raise TypeError(
            "backend='grad' needs an optax.GradientTransformation as optimizer (e.g. optax.adam(1e-2), "
            f"optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1e-3))) or None; got {type(optimizer).__name__}.{hint}"
        )
    return optimizer


def make_runner(problem: Problem, optimizer: optax.GradientTransformation, n_starts: int, devices=None) -> StepRunner:
    import optax

    value_and_grad = jax.value_and_grad(problem.loss, has_aux=True)

    def init(raw0, data, key):
        return raw0, optimizer.init(raw0)

    def advance(inner, i, data, key):
        params, opt_state = inner
        step_key = None if key is None else jr.fold_in(key, i)
        (loss, aux), grads = value_and_grad(params, data, step_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        grad_ok = all_finite(grads)
        return (new_params, opt_state), params, loss, aux, jnp.asarray(False), grad_ok

    return StepRunner(advance, init, n_starts, devices)
