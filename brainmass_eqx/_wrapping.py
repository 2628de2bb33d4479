"""A base class for solvers that wrap another solver.

The library's solver wrappers (the delayed-coupling history of a `Network`, the in-loop
BOLD integrator, block noise increments, sub-stepping, a node's own delay history) each add
some state to an inner solver's step and otherwise behave as that solver. What they share,
the delegation of diffrax's solver interface to the inner solver, lives here once.
"""

import diffrax as dfx
import jax
import numpy as np
from equinox import AbstractVar

from ._checks import plain_method

__all__ = ["AbstractSolverWrapper", "innermost_solver", "sde_convention", "history_bytes", "float_dtype"]


class AbstractSolverWrapper(dfx.AbstractSolver):
    """A solver that behaves as its inner ``solver`` except where a subclass says otherwise.

    Subclasses implement ``init`` and ``step`` (adding their own solver state around the
    inner solver's) and declare the field ``solver``. A wrapper that should also pass
    diffrax's ``isinstance`` checks (adaptive, SDE-capable, ...) on to the inner solver
    inherits ``diffrax.AbstractWrappedSolver`` as well; one that changes what the solver
    can do (fixed sub-steps are never adaptive) does not. Term structure, orders, the
    terms' contr kwargs and the vector field (used by diffrax to pick an initial step size)
    and the dense interpolation are the inner solver's; a wrapper whose step is not the
    inner solver's step (sub-steps, extra state variables) overrides ``interpolation_cls``
    (linear between steps is what such wrappers use).
    """

    solver: AbstractVar[dfx.AbstractSolver]

    @property
    def reverse_keeps_little(self) -> bool:
        """Whether reverse mode through a step of this wrapper keeps only state-sized values
        per step (its own state is then not kept per step). `simulate` skips its
        checkpointed chunks (one extra forward pass) only when every wrapper says so. The
        default is the safe answer, False."""
        return False

    def carried(self, solver_state) -> dict | None:
        """What of ``solver_state`` at the end of a run a continued run (``y0=traj``) needs
        and the model state does not hold: ``{state name: array}``, which `simulate` keeps
        as `Trajectory.carried`, or None (the default: nothing, and nothing is returned).
        The model (`AbstractModel`) that gave the wrapper reads it back when continued
        (`network.past_from`). In-loop BOLD's Kahan compensation is such a value: dropped,
        a continued run's haemodynamics were one float32 ulp off the run in one go."""
        return None

    def history_bytes(self, y0) -> int:
        """The bytes of the history this wrapper's own solver state carries, for a run
        from the state ``y0`` (its arrays or their shapes): what grows with the run's
        size (regions times the longest delay in steps) rather than with the state's.
        `simulate`'s memory check (``check_memory``) adds it to the recording's bytes, per
        run (times a user's ``jax.vmap``). Computed from shapes, never by tracing
        ``init``: it is asked at every call. The default, 0, is right for state-sized
        additions (a step counter, in-loop BOLD's haemodynamics, noise counters), which
        are small beside the recording; a wrapper that keeps a history overrides it.
        The inner solver's are not included (`history_bytes`, the function, sums a
        stack of wrappers)."""
        return 0

    @property
    def scan_kind(self):
        """The inner solver's stage loop (``diffrax.AbstractRungeKutta.scan_kind``).

        A wrapper that is also a ``diffrax.AbstractWrappedSolver`` passes diffrax's
        ``isinstance(solver, AbstractRungeKutta)`` when its inner solver is one, and
        diffrax's ``ForwardMode`` and ``DirectAdjoint`` then read this field and replace it
        (``eqx.tree_at(lambda s: s.scan_kind, ...)``) to pick a stage loop their AD mode can
        enter. Read through this property, the replacement reaches the inner solver's
        field; without it a delayed `Network` with Heun and ``saveat`` failed to trace
        (``AttributeError: '_DelayedCoupling' object has no attribute 'scan_kind'``).
        An inner solver without a stage loop has no such attribute, and neither has the
        wrapper."""
        return self.solver.scan_kind

    @property
    def root_finder(self):
        """The inner implicit solver's root finder (``diffrax.AbstractImplicitSolver``).

        A wrapper that is also a ``diffrax.AbstractWrappedSolver`` passes diffrax's
        ``isinstance(solver, AbstractImplicitSolver)`` when its inner solver is one, and
        ``diffeqsolve`` then reads this field to fill in its tolerances (`simulate` has
        filled them in already, `solvers.root_finder_tolerances`): without it an adaptive
        Kvaerno5 run holding inputs per step failed to trace (``AttributeError:
        '_HeldStepInputs' object has no attribute 'root_finder'``). An inner solver that is
        not implicit has no such attribute, and neither has the wrapper."""
        return self.solver.root_finder

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)


def innermost_solver(solver: dfx.AbstractSolver) -> dfx.AbstractSolver:
    """The solver at the bottom of a stack of wrappers (`AbstractSolverWrapper`s and
    ``diffrax.AbstractWrappedSolver``s), the one whose step actually integrates."""
    # The class, not isinstance: diffrax's isinstance answers for the wrapped solver too.
    while issubclass(type(solver), (AbstractSolverWrapper, dfx.AbstractWrappedSolver)):
        solver = solver.solver
    return solver


def history_bytes(solver: dfx.AbstractSolver, y0) -> int:
    """The bytes of the histories that the wrappers in the stack ``solver`` carry in its
    solver state (each `AbstractSolverWrapper.history_bytes`), for a run from ``y0``."""
    total = 0
    while issubclass(type(solver), (AbstractSolverWrapper, dfx.AbstractWrappedSolver)):
        if issubclass(type(solver), AbstractSolverWrapper):
            total += int(plain_method(solver, "history_bytes")(y0))
        solver = solver.solver
    return total


def float_dtype(tree) -> np.dtype:
    """The floating dtype the arrays of ``tree`` (concrete or traced) promote to, that of
    a history of its values; JAX's default float where it holds none."""
    dtypes = {x.dtype for x in jax.tree_util.tree_leaves(tree) if hasattr(x, "dtype")}
    if len(dtypes) == 1 and next(iter(dtypes)).kind == "f":  # the rule, and asked at every call: 1 us, not 8
        return np.dtype(next(iter(dtypes)))
    dtypes = [d for d in dtypes if jax.numpy.issubdtype(d, jax.numpy.floating)]
    return np.dtype(jax.numpy.result_type(*dtypes) if dtypes else jax.numpy.result_type(float))


def sde_convention(solver: dfx.AbstractSolver) -> str | None:
    """``'ito'`` or ``'stratonovich'``: the solution ``solver`` converges to on an SDE, as
    its innermost solver is marked (``diffrax.AbstractItoSolver`` /
    ``AbstractStratonovichSolver``); None if it is marked neither.

    The library's wrappers follow the convention of the solver they wrap: they add state
    around its step (delay histories, noise step counters, sub-steps, BOLD) and evaluate
    the diffusion where it does. diffrax cannot see that through more than one wrapper
    (its ``isinstance`` forwarding looks one ``.solver`` deep), so it warned about
    ``_DelayedCoupling(BlockIncrements(UnrolledStages(Heun())))`` although Heun is
    Stratonovich.
    """
    inner = innermost_solver(solver)
    if isinstance(inner, dfx.AbstractItoSolver):
        return "ito"
    if isinstance(inner, dfx.AbstractStratonovichSolver):
        return "stratonovich"
    return None
