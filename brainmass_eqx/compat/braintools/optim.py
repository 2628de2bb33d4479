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
        self.step_count = State(0)

    def register_trainable_weights(self, param_states: Any):
        """Register ``{key: ParamState}`` (or a list of states) as the weights to update;
        returns the optimizer (as braintools)."""
        weights = param_states
        if isinstance(weights, State):
            weights = {0: weights}
        elif not isinstance(weights, dict):
            weights = dict(enumerate(weights))
        self.param_states = dict(weights)
        self.opt_state.value = self.tx.init({k: s.value for k, s in self.param_states.items()})
        return self

    def step(self, grads: dict, **extra_args: Any) -> None:
        """Apply one update with ``grads`` (a dict with the registered weights' keys);
        ``extra_args`` go to the optax transformation's ``update`` (e.g. L-BFGS's ``value``,
        ``grad``, ``value_fn``)."""
        if not self.param_states:
            raise ValueError("register_trainable_weights(...) must be called before step(grads).")
        params = {k: s.value for k, s in self.param_states.items()}
        grads = {k: grads[k] for k in params}
        updates, new_state = self.tx.update(grads, self.opt_state.value, params, **extra_args)
        new_params = optax.apply_updates(params, updates)
        self.opt_state.value = new_state
        for k, s in self.param_states.items():
            s.value = new_params[k]
        self.step_count.value = self.step_count.value + 1

    def update(self, grads: dict, **extra_args: Any) -> None:
        """braintools's older name for `step`."""
        return self.step(grads, **extra_args)

    def get_last_lr(self) -> list:
        """The learning rate of the last step (a schedule evaluated at the step count)."""
        return [self.lr(self.step_count.value) if callable(self.lr) else self.lr]

    def state_dict(self) -> dict:
        """The optimizer's state: step count, learning rate and optax state."""
        return {"step_count": self.step_count.value, "lr": self.lr, "base_lr": self.lr,
                "opt_state": self.opt_state.value}  # fmt: skip

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what `state_dict` returned (the weights themselves live in their states)."""
        self.step_count.value = state_dict["step_count"]
        if "opt_state" in state_dict:
            self.opt_state.value = state_dict["opt_state"]

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

