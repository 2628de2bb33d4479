"""``braintools.optim``: optax-backed optimizers that update registered `ParamState` weights.

``opt = Adam(lr=0.1); opt.register_trainable_weights(model.states(ParamState));
opt.step(grads)`` applies one update in place. The optimizer state lives in a `State`, so
``step`` works inside ``brainstate.transform.jit``. The ``tx`` attribute is the
``optax.GradientTransformation`` (what the compat ``Fitter`` hands to the core).
"""

from __future__ import annotations

from typing import Any

import optax

from ..brainstate._state import State

__all__ = ["OptaxOptimizer", "Adam", "AdamW", "SGD", "RMSProp", "Momentum", "Adagrad"]


class OptaxOptimizer:
    """Base class: wraps an ``optax.GradientTransformation`` (``self.tx``)."""

    __module__ = "braintools.optim"

    def __init__(self, tx: optax.GradientTransformation, lr: Any = None):
        self.tx = tx
        self.lr = lr
        self.param_states: dict = {}
        self.opt_state = State(None)

    def register_trainable_weights(self, weights: Any) -> None:
        """Register ``{key: ParamState}`` (or a list of states) as the weights to update."""
        if isinstance(weights, State):
            weights = {0: weights}
        elif not isinstance(weights, dict):
            weights = dict(enumerate(weights))
        self.param_states = dict(weights)
        self.opt_state.value = self.tx.init({k: s.value for k, s in self.param_states.items()})

    def step(self, grads: dict) -> None:
        """Apply one update with ``grads`` (a dict with the registered weights' keys)."""
        if not self.param_states:
            raise ValueError("register_trainable_weights(...) must be called before step(grads).")
        params = {k: s.value for k, s in self.param_states.items()}
        grads = {k: grads[k] for k in params}
        updates, new_state = self.tx.update(grads, self.opt_state.value, params)
        new_params = optax.apply_updates(params, updates)
        self.opt_state.value = new_state
        for k, s in self.param_states.items():
            s.value = new_params[k]

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr})"


def _lr(lr):
    """A learning rate: a number or an optax schedule (callable step -> rate)."""
    return lr


class Adam(OptaxOptimizer):
    def __init__(self, lr: Any = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0):
        tx = optax.adam(_lr(lr), b1=beta1, b2=beta2, eps=eps)
        if weight_decay:
            tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
        super().__init__(tx, lr)


class AdamW(OptaxOptimizer):
    def __init__(self, lr: Any = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(optax.adamw(_lr(lr), b1=beta1, b2=beta2, eps=eps, weight_decay=weight_decay), lr)


class SGD(OptaxOptimizer):
    def __init__(self, lr: Any = 1e-3, momentum: float | None = None, nesterov: bool = False):
        super().__init__(optax.sgd(_lr(lr), momentum=momentum or None, nesterov=nesterov), lr)


class Momentum(SGD):
    def __init__(self, lr: Any = 1e-3, momentum: float = 0.9):
        super().__init__(lr, momentum=momentum)


class RMSProp(OptaxOptimizer):
    def __init__(self, lr: Any = 1e-3, decay: float = 0.9, eps: float = 1e-8):
        super().__init__(optax.rmsprop(_lr(lr), decay=decay, eps=eps), lr)


class Adagrad(OptaxOptimizer):
    def __init__(self, lr: Any = 1e-3, eps: float = 1e-7):
        super().__init__(optax.adagrad(_lr(lr), eps=eps), lr)

