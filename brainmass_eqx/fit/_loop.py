"""The host side of a fit, shared by every backend: progress bar, callbacks, early stopping,
best-so-far tracking on the device, non-finite losses, checkpoints.

Step-based backends (``'grad'``, ``'optimistix'``) describe one step as a pure function
``advance(inner, step, data, key) -> (inner, params, loss, aux, done, grad_ok)``, where
``loss`` and ``aux`` belong to ``params`` (the parameters *evaluated* at this step, not the
ones after the update: that is how the best parameters are the ones that produced the best
loss). `StepRunner` wraps it into one jitted step that also keeps the best-so-far on the
device, ``jax.vmap``-ed over the starts of a multi-start fit, and on several devices split
over them by ``jax.shard_map`` (`shard_vmap`): each device steps its own starts.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int, PyTree, Scalar

from .._checks import user_stacklevel
from .._ensemble import pad_batch, place, shard_vmap
from ._checkpoint import load_checkpoint, save_checkpoint
from ._problem import NonFiniteLossError, ParamSpace

__all__ = ["Monitor", "StepRunner", "BackendOutput", "tree_where"]


class BackendOutput(NamedTuple):
    """What a backend hands back to `Fitter.fit` (which turns it into a `FitResult`)."""

    best_raw: dict  # raw (unconstrained) parameters that produced best_loss
    best_loss: float
    best_step: int
    history: np.ndarray
    n_steps: int
    prediction: Any
    stop_reason: str
    optimizer: Any
    raw: Any = None
    # Value-space backends evaluated these exact constrained values (best_raw is their
    # inverse transform, equal up to rounding).
    best_values: dict | None = None


def tree_where(pred: Bool[Array, ""], new: PyTree, old: PyTree) -> PyTree:
    """``where(pred, new, old)`` on the array leaves; other leaves (a solver state's
    jaxprs, for one) are taken from ``new``, which keeps them identical from step to step."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b) if eqx.is_array(a) else a, new, old)


class Monitor:
    """Progress bar, callbacks and early stopping for one fit.

    **Arguments:**

    - `callbacks`: callables ``cb(info) -> bool | None``; ``info`` is a dict with ``step``,
      ``loss`` (this step's loss, an array over starts for a multi-start fit, every
      candidate's loss for ``'nevergrad'``), ``best_loss``, ``params`` (constrained values
      evaluated this step; for ``'nevergrad'`` the generation's best candidate) and
      ``model`` (the model with ``params``; None when `batched`). Returning ``True`` stops
      the fit.
    - `patience`, `min_delta`: stop when the best loss has not improved by more than
      ``min_delta`` for ``patience`` consecutive steps.
    - `progress`: show a tqdm progress bar.
    - `batched`: ``params`` hold one set per start (a multi-start ``'grad'`` /
      ``'optimistix'`` fit), which no single model holds.
    """

    def __init__(
        self, *, backend, space: ParamSpace, callbacks: Sequence[Callable], patience, min_delta, progress, n_steps,
        batched: bool = False,
    ):  # fmt: skip
        self.space = space
        self.batched = batched
        self.callbacks = tuple(callbacks)
        self.patience = patience
        self.min_delta = float(min_delta)
        self.reference = math.inf
        self.since = 0
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_steps, desc=f"fit[{backend}]", unit="step")

    def state(self) -> dict:
        return {"reference": self.reference, "since": self.since}

    def restore(self, state: dict, steps_done: int) -> None:
        """Continue from a checkpoint: early-stopping counters and the progress bar."""
        self.reference, self.since = float(state["reference"]), int(state["since"])
        if self.bar is not None:
            self.bar.update(steps_done)

    def update(self, step: int, loss: Any, best_loss: float, raw_params: Callable[[], dict]) -> str | None:
        """Report one step; return a stop reason (``'callback'``, ``'early_stopping'``) or None.

        ``raw_params`` builds the evaluated raw parameters (called only if a callback needs them).
        """
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{np.nanmin(loss):.4g}", best=f"{best_loss:.4g}", refresh=False)
        stop = None
        if self.callbacks:
            raw = raw_params()
            info = {
                "step": step,
                "loss": loss,
                "best_loss": best_loss,
                "params": self.space.to_values(raw),
                # Not decided by the loss's shape: a nevergrad generation's losses are an
                # array, its params one candidate's (whose model callbacks got as None).
                "model": None if self.batched else self.space.model(raw),
            }
            for cb in self.callbacks:
                if cb(info) is True:
                    stop = "callback"
        if self.patience is not None:
            if best_loss < self.reference - self.min_delta:
                self.reference, self.since = best_loss, 0
            else:
                self.since += 1
                if self.since >= self.patience and stop is None:
                    stop = "early_stopping"
        return stop

    def exhausted(self) -> bool:
        """Whether early stopping has already run out of patience (a fit resumed from the
        checkpoint of one that stopped early: it stops again at once, instead of running
        one more step at every resume)."""
        return self.patience is not None and self.since >= self.patience

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Carry(eqx.Module):
    inner: Any
    best_loss: Scalar
    best_params: dict
    best_aux: Any
    best_step: Int[Array, ""]
    active: Bool[Array, ""]


class StepRunner:
    """Run ``n_steps`` of a step-based backend; see the module docstring.

    **Arguments:**

    - `advance`: the backend's pure step (see module docstring).
    - `init`: ``init(raw0, data, key) -> inner`` the backend's initial state.
    - `n_starts`: starts run side by side in one ``jax.vmap`` (1: no vmap).
    - `devices`: with two or more (and ``n_starts > 1``), the starts are split over them
      (`shard_vmap`), padded to a multiple of their number by repeating the last start;
      the padding never leaves `run` (not in the history, the checkpoint or the result).
      None or one device: one ``jax.vmap`` on the default device.
    """

    def __init__(self, advance: Callable, init: Callable, n_starts: int, devices: Sequence[jax.Device] | None = None):
        self.n_starts = n_starts
        self.devices = tuple(devices) if n_starts > 1 and devices is not None and len(devices) > 1 else None
        # Starts the compiled step holds: n_starts, padded on several devices.
        self.padded = n_starts if self.devices is None else -(-n_starts // len(self.devices)) * len(self.devices)

        def step(carry: _Carry, i, data, key):
            inner, params, loss, aux, done, grad_ok = advance(carry.inner, i, data, key)
            finite = jnp.isfinite(loss) & grad_ok
            ok = carry.active & finite
            better = ok & (loss < carry.best_loss)
            new = _Carry(
                inner=tree_where(ok, inner, carry.inner),  # a failed / finished start stays put
                best_loss=jnp.where(better, loss, carry.best_loss),
                best_params=tree_where(better, params, carry.best_params),
                best_aux=tree_where(better, aux, carry.best_aux),
                best_step=jnp.where(better, i, carry.best_step),
                active=ok & ~done,
            )
            return new, loss, finite, params

        def start(raw0, aux_like, data, key):
            inner = init(raw0, data, key)
            return _Carry(
                inner=inner,
                best_loss=jnp.asarray(jnp.inf, dtype=jnp.result_type(float)),
                best_params=raw0,
                best_aux=jax.tree_util.tree_map(jnp.zeros_like, aux_like),
                best_step=jnp.asarray(-1, jnp.int32),
                active=jnp.asarray(True),
            )

        self._of_one = (step, start)
        # Why the starts run on one device although several were given (see `_unsplit`).
        self.unsplit: str | None = None
        if self.devices is not None:
            # The carry split over the devices; the step, data and key a copy on each.
            self.step = shard_vmap(step, self.devices)
            self.start = shard_vmap(start, self.devices)
        else:
            self._on_one_device()

    def _on_one_device(self) -> None:
        step, start = self._of_one
        if self.n_starts > 1:
            # filter_vmap: some optimistix states (LBFGS, the least-squares solvers) hold
            # jaxprs, which jax.vmap refused as outputs ("not a valid JAX type"), so their
            # multi-start fits failed; the arrays are batched as before.
            step = eqx.filter_vmap(step, in_axes=(eqx.if_array(0), None, None, None))
            start = eqx.filter_vmap(start, in_axes=(eqx.if_array(0), None, None, None))
        self.step = eqx.filter_jit(step)
        self.start = eqx.filter_jit(start)

    def _unsplit(self, err: ValueError) -> None:
        """Go back to one device when the step cannot be traced under ``jax.shard_map``:
        there every traced value's ``jax.eval_shape`` carries the device mesh, and lineax
        compares such shapes with its own, which do not (lineax issue #185): optimistix's
        BFGS ("Symmetric/Hermitian matrices must have matching input and output
        structures") and its least-squares solvers ("pytree does not match out_structure")
        fail to trace. A genuine error of the loss is raised again by the one-device trace."""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        self.unsplit = (
            f"the {self.n_starts} starts run side by side on one device, not split over the {len(self.devices)} "
            f"devices: their step cannot be traced under jax.shard_map ({type(err).__name__}: {first[:160]}). "
            "lineax compares shapes that carry the device mesh there with its own (lineax issue #185), which "
            "fails for optimistix's BFGS and least-squares solvers; optimistix's LBFGS, NonlinearCG, "
            "GradientDescent and NelderMead, and backend='grad', are split."
        )
        self.devices, self.padded = None, self.n_starts
        self._on_one_device()

    def _real(self, tree: PyTree) -> PyTree:
        """The first `n_starts` starts of a padded batch (``tree`` itself when unpadded)."""
        if self.padded == self.n_starts:
            return tree
        return jax.tree_util.tree_map(lambda a: a[: self.n_starts] if eqx.is_array(a) else a, tree)

    def _padded(self, carry: _Carry) -> _Carry:
        """A carry of `n_starts` starts (a checkpoint's) as the sharded step takes it."""
        if self.devices is None:
            return carry
        return place(pad_batch(carry, self.n_starts, self.padded), self.devices, split=True)

    def run(
        self,
        *,
        space: ParamSpace,
        raw0: dict,
        aux_like: Any,
        data: Any,
        key: Any,
        n_steps: int,
        monitor: Monitor,
        checkpoint: str | None,
        checkpoint_every: int | None,
        resume: bool,
        fingerprint: dict | None,
    ) -> tuple[_Carry, np.ndarray, int, str]:
        """Returns ``(carry, history, steps_run, stop_reason)``."""
        carry = None
        if self.devices is not None:
            padded = place(pad_batch(raw0, self.n_starts, self.padded), self.devices, split=True)
            shared = place((data, key), self.devices, split=False)
            try:
                carry = self.start(padded, aux_like, *shared)
                eqx.filter_eval_shape(self.step, carry, jnp.asarray(0, jnp.int32), *shared)  # traced, not compiled
                data, key = shared
            except ValueError as err:
                self._unsplit(err)
        if self.unsplit is not None:
            warnings.warn(self.unsplit, UserWarning, stacklevel=user_stacklevel())
        if self.devices is None:
            carry = self.start(raw0, aux_like, data, key)
        history: list[np.ndarray] = []
        first = 0
        if checkpoint is not None and resume and os.path.exists(checkpoint):
            header, carry = load_checkpoint(checkpoint, self._real(carry), fingerprint, ("step", "history", "monitor"))
            carry = self._padded(carry)
            history = [np.asarray(h, dtype=float) for h in header["history"]]
            first = int(header["step"])
            monitor.restore(header["monitor"], first)
            if first > n_steps:
                raise ValueError(
                    f"checkpoint={checkpoint!r} holds {first} steps, more than n_steps={n_steps}; "
                    "ask for at least as many steps as were already run."
                )

        def save(n_done):
            header = dict(fingerprint, step=n_done, history=[np.asarray(h).tolist() for h in history], monitor=monitor.state())
            save_checkpoint(checkpoint, header, self._real(carry))

        n_done = first
        # A checkpoint of a fit whose every start had converged resumes as converged; one
        # whose early stopping ran out of patience (with this fit's patience) as stopped.
        stop_reason = "n_steps"
        if first > 0 and not np.any(np.asarray(self._real(carry.active))):
            stop_reason = "converged"
        elif first > 0 and monitor.exhausted():
            stop_reason = "early_stopping"
        try:
            for i in range(first, n_steps if stop_reason == "n_steps" else first):
                new, loss, finite, params = self.step(carry, jnp.asarray(i, jnp.int32), data, key)
                loss, finite, params = self._real((loss, finite, params))
                loss_h, finite_h, active_h = np.asarray(loss), np.asarray(finite), np.asarray(self._real(carry.active))
                bad = active_h & ~finite_h
                if np.any(bad):
                    alive = active_h & finite_h
                    j = int(np.flatnonzero(np.atleast_1d(bad))[0])
                    bad_raw = params if self.n_starts == 1 else jax.tree_util.tree_map(lambda a, j=j: a[j], params)
                    where = f" (start {j})" if self.n_starts > 1 else ""
                    msg = (
                        f"the loss or its gradient became non-finite ({np.atleast_1d(loss_h)[j]}) at step "
                        f"{i}{where}, evaluated at {space.describe(space.to_values(bad_raw))}."
                    )
                    if not np.any(alive):
                        err = NonFiniteLossError(
                            msg + " Bound the parameters (Param(bounds=...)), lower the learning rate, "
                            "or check predict / the model for divergence.",
                            step=i,
                            params=space.to_values(bad_raw),
                        )
                        err.carry, err.history, err.n_done = self._real(carry), history, i
                        raise err
                    warnings.warn(msg + " That start stops here; the others go on.", RuntimeWarning, stacklevel=user_stacklevel())
                history.append(loss_h)
                carry = new
                n_done = i + 1
                best = float(np.min(np.asarray(self._real(carry.best_loss))))
                reason = monitor.update(i, loss_h, best, lambda params=params: params)
                if checkpoint is not None and checkpoint_every and n_done % checkpoint_every == 0:
                    save(n_done)
                if reason is not None:
                    stop_reason = reason
                    break
                if not np.any(np.asarray(self._real(carry.active))):
                    stop_reason = "converged"
                    break
        finally:
            monitor.close()
        if checkpoint is not None:
            save(n_done)
        return self._real(carry), np.asarray(history, dtype=float), n_done, stop_reason


def pick_best(carry: _Carry, n_starts: int) -> tuple[dict, float, int, Any, dict | None]:
    """``(best_raw, best_loss, best_step, best_aux, per_start)`` of a finished carry."""
    if n_starts == 1:
        return carry.best_params, float(carry.best_loss), int(carry.best_step), carry.best_aux, None
    losses = np.asarray(carry.best_loss)
    j = int(np.argmin(losses))
    take = lambda t: jax.tree_util.tree_map(lambda a: a[j], t)  # noqa: E731
    per_start = {"best_loss": losses, "best_params": carry.best_params, "best_start": j}
    return take(carry.best_params), float(losses[j]), int(np.asarray(carry.best_step)[j]), take(carry.best_aux), per_start
