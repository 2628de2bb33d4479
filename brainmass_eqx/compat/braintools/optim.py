"""``braintools.optim``: optax-backed optimizers that update registered `ParamState` weights.

``opt = Adam(lr=0.1); opt.register_trainable_weights(model.states(ParamState));
opt.step(grads)`` applies one update in place. The optimizer state lives in a `State`, so
``step`` works inside ``brainstate.transform.jit``. The ``tx`` attribute is the
``optax.GradientTransformation`` (what the compat ``Fitter`` hands to the core).
"""

from __future__ import annotations

import warnings
from typing import Any

import optax

from ..brainstate._state import State

__all__ = ["OptaxOptimizer", "Adam", "AdamW", "Adamax", "RAdam", "SGD", "Momentum", "MomentumNesterov", "RMSprop", "Adagrad"]


class OptaxOptimizer:
    """Base class, braintools' ``OptaxOptimizer(tx=None, lr=1e-3, weight_decay=0.0,
    grad_clip_norm=None, grad_clip_value=None)``: ``tx`` (an
    ``optax.GradientTransformation``), else the chain braintools builds, gradient clipping
    (by global norm, then by value), L2 weight decay added to the gradient, the optimizer's
    scaling (`scaling`: Adam's here) and the learning rate (a number or a schedule
    ``step -> rate``)."""

    __module__ = "braintools.optim"
    #: Whether the weight decay is decoupled (applied after the scaling, AdamW's) rather than
    #: added to the gradient before it.
    decoupled_weight_decay = False

    def __init__(self, tx: optax.GradientTransformation | None = None, lr: Any = 1e-3, weight_decay: float = 0.0,
                 grad_clip_norm: float | None = None, grad_clip_value: float | None = None):  # fmt: skip
        if not callable(lr) and lr < 0:
            raise ValueError(f"Invalid learning rate: {lr} (must be >= 0).")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay: {weight_decay} (must be >= 0).")
        for name, clip in (("grad_clip_norm", grad_clip_norm), ("grad_clip_value", grad_clip_value)):
            if clip is not None and clip <= 0:
                raise ValueError(f"Invalid {name}: {clip} (must be > 0).")
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip_norm = grad_clip_norm
        self.grad_clip_value = grad_clip_value
        self.tx = self.default_tx() if tx is None else tx
        if not isinstance(self.tx, optax.GradientTransformation):
            raise TypeError(f"tx must be an instance of optax.GradientTransformation, got {self.tx}")
        self.param_states: dict = {}
        self.opt_state = State(None)
        self.step_count = State(0)

    def scaling(self) -> optax.GradientTransformation:
        """The optimizer's own rescaling of the gradient (before the learning rate)."""
        return optax.scale_by_adam()

    def default_tx(self) -> optax.GradientTransformation:
        """braintools' chain: clipping, weight decay, `scaling`, learning rate."""
        parts = []
        if self.grad_clip_norm is not None:
            parts.append(optax.clip_by_global_norm(self.grad_clip_norm))
        if self.grad_clip_value is not None:
            parts.append(optax.clip(self.grad_clip_value))
        decay = [optax.add_decayed_weights(self.weight_decay)] if self.weight_decay > 0 else []
        parts += [self.scaling(), *decay] if self.decoupled_weight_decay else [*decay, self.scaling()]
        return optax.chain(*parts, optax.scale_by_learning_rate(self.lr))

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


def _betas(betas: Any, beta1: float | None, beta2: float | None) -> tuple[float, float]:
    """braintools' ``betas``, with its deprecated ``beta1`` / ``beta2`` overriding them."""
    b1, b2 = betas
    for name, given in (("beta1", beta1), ("beta2", beta2)):
        if given is not None:
            warnings.warn(f"The `{name}` parameter is deprecated, please use `betas=(beta1, beta2)` instead.",
                          DeprecationWarning, stacklevel=3)  # fmt: skip
    return (b1 if beta1 is None else beta1, b2 if beta2 is None else beta2)


class _Moments(OptaxOptimizer):
    """Optimizers scaled by moment estimates with ``betas`` and ``eps`` (`moments`: Adam's,
    Adamax's, RAdam's); these defaults are RAdam's, as braintools'."""

    moments = staticmethod(optax.scale_by_adam)

    def __init__(self, lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, grad_clip_norm: float | None = None,
                 grad_clip_value: float | None = None):  # fmt: skip
        self.betas, self.eps = tuple(betas), eps
        super().__init__(None, lr, weight_decay, grad_clip_norm, grad_clip_value)

    def scaling(self):
        return self.moments(b1=self.betas[0], b2=self.betas[1], eps=self.eps)


class Adam(_Moments):
    """Adam (AMSGrad with ``amsgrad=True``), as braintools' ``Adam``."""

    def __init__(self, lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999), beta1: float | None = None,
                 beta2: float | None = None, eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 grad_clip_norm: float | None = None, grad_clip_value: float | None = None):  # fmt: skip
        self.amsgrad = amsgrad
        super().__init__(lr, _betas(betas, beta1, beta2), eps, weight_decay, grad_clip_norm, grad_clip_value)

    def moments(self, **kwargs):
        return (optax.scale_by_amsgrad if self.amsgrad else optax.scale_by_adam)(**kwargs)


class AdamW(_Moments):
    """Adam with decoupled weight decay (applied after the scaling)."""

    decoupled_weight_decay = True

    def __init__(self, lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, grad_clip_norm: float | None = None,
                 grad_clip_value: float | None = None):  # fmt: skip
        super().__init__(lr, betas, eps, weight_decay, grad_clip_norm, grad_clip_value)


class Adamax(_Moments):
    """Adamax (Adam with the infinity norm), braintools' defaults."""

    moments = staticmethod(optax.scale_by_adamax)

    def __init__(self, lr: Any = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, grad_clip_norm: float | None = None,
                 grad_clip_value: float | None = None):  # fmt: skip
        super().__init__(lr, betas, eps, weight_decay, grad_clip_norm, grad_clip_value)


class RAdam(_Moments):
    """Rectified Adam, braintools' defaults."""

    moments = staticmethod(optax.scale_by_radam)


class SGD(OptaxOptimizer):
    """Stochastic gradient descent, with (Nesterov) momentum when ``momentum > 0``."""

    def __init__(self, lr: Any = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 grad_clip_norm: float | None = None, grad_clip_value: float | None = None):  # fmt: skip
        self.momentum, self.nesterov = momentum, nesterov
        super().__init__(None, lr, weight_decay, grad_clip_norm, grad_clip_value)

    def scaling(self):
        if not self.momentum:
            return optax.identity()
        return optax.trace(decay=self.momentum, nesterov=self.nesterov)


class Momentum(SGD):
    """SGD with momentum (default 0.9)."""

    def __init__(self, lr: Any = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
                 grad_clip_norm: float | None = None, grad_clip_value: float | None = None):  # fmt: skip
        super().__init__(lr, momentum, weight_decay, False, grad_clip_norm, grad_clip_value)


class MomentumNesterov(SGD):
    """SGD with Nesterov momentum (default 0.9)."""

    def __init__(self, lr: Any = 1e-3, momentum: float = 0.9, weight_decay: float = 0.0,
                 grad_clip_norm: float | None = None, grad_clip_value: float | None = None):  # fmt: skip
        super().__init__(lr, momentum, weight_decay, True, grad_clip_norm, grad_clip_value)


class RMSprop(OptaxOptimizer):
    """RMSprop (smoothing ``alpha``; centred with ``centered=True``; momentum if > 0)."""

    def __init__(self, lr: Any = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, grad_clip_norm: float | None = None,
                 grad_clip_value: float | None = None):  # fmt: skip
        self.alpha, self.eps, self.momentum, self.centered = alpha, eps, momentum, centered
        super().__init__(None, lr, weight_decay, grad_clip_norm, grad_clip_value)

    def scaling(self):
        scale = optax.scale_by_stddev if self.centered else optax.scale_by_rms
        rms = scale(decay=self.alpha, eps=self.eps)
        return optax.chain(rms, optax.trace(decay=self.momentum)) if self.momentum > 0 else rms


class Adagrad(OptaxOptimizer):
    """Adagrad (``lr_decay``: the rate divided by ``1 + lr_decay * step``)."""

    def __init__(self, lr: Any = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, grad_clip_norm: float | None = None,
                 grad_clip_value: float | None = None):  # fmt: skip
        self.lr_decay, self.initial_accumulator_value, self.eps = lr_decay, initial_accumulator_value, eps
        super().__init__(None, lr, weight_decay, grad_clip_norm, grad_clip_value)

    def scaling(self):
        rss = optax.scale_by_rss(initial_accumulator_value=self.initial_accumulator_value, eps=self.eps)
        if not self.lr_decay:
            return rss
        decay = self.lr_decay
        return optax.chain(rss, optax.scale_by_schedule(lambda count: 1.0 / (1.0 + count * decay)))
