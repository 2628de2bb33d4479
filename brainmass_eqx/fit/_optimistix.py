"""Backend ``'optimistix'``: ``optx.minimise``-style solvers (BFGS, LBFGS, NonlinearCG,
GradientDescent, ...) on the scalar loss, and least-squares solvers (Levenberg-Marquardt,
Gauss-Newton, Dogleg, ...) on residuals.

The solver is driven one step at a time (``solver.init`` / ``step`` / ``terminate``, the
interactive API of optimistix), so a fit gets history, callbacks, early stopping and
checkpoints like any other. Each step's reported loss is the one optimistix holds for the
last *accepted* iterate, which is the parameter set the step returns; solvers whose state
holds no such value (Nelder-Mead) pay one extra loss evaluation per step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optimistix as optx

from ._loop import StepRunner
from ._problem import Problem

__all__ = ["check_optimizer", "choose_jacobian", "is_least_squares", "make_runner", "result_message", "sum_squares"]


def check_optimizer(optimizer: Any):
    if optimizer is None:
        return optx.BFGS(rtol=1e-6, atol=1e-8)
    if not isinstance(optimizer, (optx.AbstractMinimiser, optx.AbstractLeastSquaresSolver)):
        raise TypeError(
            "backend='optimistix' needs an optimistix minimiser (e.g. optx.BFGS(rtol=1e-6, atol=1e-8)) "
            "or least-squares solver (e.g. optx.LevenbergMarquardt(rtol=1e-6, atol=1e-8)) as optimizer; "
            f"got {type(optimizer).__name__}."
        )
    return optimizer


def is_least_squares(solver) -> bool:
    return isinstance(solver, optx.AbstractLeastSquaresSolver)


def sum_squares(tree) -> Any:
    r"""$\frac12 \sum r^2$ over the residuals' leaves: the loss a least-squares solver minimises
    (and what a least-squares fit reports as its loss)."""
    return 0.5 * sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree))


def choose_jacobian(problem: Problem, raw0, data, key) -> tuple[str, str | None]:
    """``(jac, why)``: ``jac`` is ``'fwd'`` or ``'bwd'``, how a least-squares solver builds the
    residuals' Jacobian; ``why`` is the warning to give when reverse mode is forced (None
    otherwise), which the caller gives (the choice may be shared by several Fitters).

    Forward mode costs one pass per parameter, reverse mode one per residual: forward
    mode is chosen when there are fewer parameters than residuals *and* the residuals can
    be differentiated forwards (a `simulate` inside must then use
    ``adjoint=diffrax.ForwardMode()`` or ``DirectAdjoint()``: diffrax's default
    checkpointed adjoint is reverse-only). Decided by tracing, without compiling.
    """
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(raw0))
    residuals, _ = jax.eval_shape(problem.residuals, raw0, data, key)
    if n_params >= residuals.size:
        return "bwd", None
    try:
        # jacfwd, not a bare jvp: a custom_vjp (diffrax's checkpointed adjoint) only fails
        # once the forward derivative is batched, as lineax does to materialise it.
        jax.eval_shape(jax.jacfwd(lambda z: problem.residuals(z, data, key)[0]), raw0)
    except TypeError as err:
        if "custom_vjp" not in str(err):
            raise
        return "bwd", (
            f"the least-squares Jacobian ({residuals.size} residuals x {n_params} parameters) is built in "
            "reverse mode, one pass per residual, because the residuals cannot be differentiated "
            "forwards. Pass adjoint=diffrax.ForwardMode() to simulate in predict for one pass per parameter."
        )
    return "fwd", None


def make_runner(problem: Problem, solver, n_starts: int, jac: str = "bwd", devices=None) -> StepRunner:
    least_squares = is_least_squares(solver)
    raw_fn = problem.residuals if least_squares else problem.loss
    options: dict = {"jac": jac} if least_squares else {}
    tags: frozenset = frozenset()

    def fn(y, args):
        data, key = args
        return raw_fn(y, data, key)

    def as_loss(out):
        return sum_squares(out) if least_squares else out

    def init(raw0, data, key):
        f_struct, aux_struct = jax.eval_shape(fn, raw0, (data, key))
        return raw0, solver.init(fn, raw0, (data, key), options, f_struct, aux_struct, tags)

    def advance(inner, i, data, key):
        y, state = inner
        args = (data, key)
        y, state, _ = solver.step(fn, y, args, options, state, tags)
        done, _ = solver.terminate(fn, y, args, options, state, tags)
        f_info = getattr(state, "f_info", None)
        value = getattr(f_info, "f", getattr(f_info, "residual", None))
        if value is not None and hasattr(state, "aux"):
            loss, aux = as_loss(value), state.aux
        else:
            out, aux = fn(y, args)
            loss = as_loss(out)
        return (y, state), y, loss, aux, done, jnp.asarray(True)

    return StepRunner(advance, init, n_starts, devices)


def result_message(carry, n_starts: int) -> str:
    """``'converged'``, or optimistix's message for the first start that failed."""
    result = getattr(carry.inner[1], "result", None)
    if result is None:
        return "converged"
    ok = int(optx.RESULTS.successful._value)
    failed = [int(c) for c in jnp.atleast_1d(result._value) if int(c) != ok]
    if not failed:
        return "converged"
    return "optimistix: " + optx.RESULTS._index_to_message[failed[0]]
