"""Solvers: brainmass's exponential-Euler scheme and a classic RK4, as diffrax solvers.

Every diffrax solver works with `simulate`; these add the two schemes brainmass users know.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from typing import Any, ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import PyTree

from ._checks import check_int, divergence_raises, error_if_member, python_number
from ._history import (
    read_gather_p,
    read_members_blocked_p,
    read_rows_blocked_p,
    read_sum_blocked_p,
    read_sum_p,
)
from ._wrapping import AbstractSolverWrapper, innermost_solver
from .models._math import exprel

__all__ = ["ModelTerm", "ExponentialEuler", "RK4", "Substeps", "StochasticExponentialEuler"]


class ModelTerm(dfx.AbstractTerm):
    """A diffrax term for a model: ``dy/dt = model.vector_field(t, y, inputs(t))``.

    ``args`` passed to the solve must be an input source (anything with
    ``evaluate(t) -> dict``); see `brainmass_eqx._simulate`.

    **Arguments:**

    - `model`: a node model or wrapper (anything with ``vector_field(t, state, inputs)``; a
      `Network`, a noisy model).
    """

    model: Any

    def vf(self, t, y, args):
        return self.model.vector_field(*_named(t, y, args))

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return jax.tree_util.tree_map(lambda v: v * control, vf)

    def vf_and_diagonal(self, t, y, args):
        return self.model.vector_field_and_diagonal(*_named(t, y, args))


# Names for `jax.checkpoint` policies (see `_step_policy`).
STATE_NAME, INPUTS_NAME = "bmx_state", "bmx_inputs"


def _named(t, y, args):
    """``(t, y, inputs)`` with the state and the inputs (external and coupling currents)
    named: they are what a reverse pass needs to recompute a vector field. ``t`` is the
    absolute time where the step runs in local time (`absolute_time`)."""
    y = jax.tree_util.tree_map(lambda v: checkpoint_name(v, STATE_NAME), y)
    inputs = jax.tree_util.tree_map(lambda v: checkpoint_name(v, INPUTS_NAME), args.evaluate(t))
    return absolute_time(args, t), y, inputs


# -- reverse mode through long loops of steps ----------------------------------------------


def _tree_bytes(tree) -> int:
    return sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(tree))


def _chunk_length(n: int, per_item: int = 1, ratio: float = 1.0) -> int:
    r"""Items per checkpointed chunk of an ``n``-item scan whose items take ``per_item``
    steps each, preferring a divisor of ``n`` (a remainder compiles the loop body a second
    time).

    A chunk of $c$ items keeps $c \cdot$ ``per_item`` steps' values while it is
    recomputed, and the scan keeps one carry per chunk: $n/c$ carries. With ``ratio`` the
    size of a carry over that of one step's values, the sum
    $(n/c)\,\mathrm{ratio} + c\,\mathrm{per\_item}$ is least at
    $c = \sqrt{n\,\mathrm{ratio} / \mathrm{per\_item}}$ (at least 1). Sizing chunks by
    items alone ($\sqrt n$) made them $\sqrt{n}\cdot$ ``per_item`` steps long: a gradient
    through 128 s of in-loop BOLD at TR 2 s (64 items of 20,000 steps, kept unchunked)
    needed 2.7 GB of XLA buffers. A run of at most 64 steps is one chunk.
    """
    if n * per_item <= 64:
        return n
    root = max(1, math.isqrt(int(n * max(ratio, 1e-9) / per_item)))
    if root >= n:
        return n
    # The divisor nearest the root within [root / 2, 2 root] (the smaller of two as near),
    # found among n's divisors by trial division up to sqrt(n): sorting the candidates
    # themselves was O(root) Python objects, up to O(n) (a record carried in the loop makes
    # the ratio large): 43 s and 905 MB at trace time for 10^7 items.
    low, high = max(1, root // 2), 2 * root
    best = None
    for a in range(1, math.isqrt(n) + 1):
        if n % a:
            continue
        for d in (a, n // a):
            if low <= d <= high and (best is None or (abs(d - root), d) < (abs(best - root), best)):
                best = d
    return root if best is None else best


# checkpoint_name's primitive, found through the public API.
_NAME_P = jax.make_jaxpr(lambda x: checkpoint_name(x, "_"))(0.0).eqns[0].primitive


def _step_policy(prim, *avals, **params) -> bool:
    """What a reverse pass keeps of one step (a ``jax.checkpoint`` policy): the state and
    inputs each vector-field evaluation saw (named in `ModelTerm`) and the delayed reads'
    outputs; everything else (the vector field's elementwise maths, the read indices) is
    recomputed from those. Without it every intermediate of the step is stacked per step:
    W4 measured 29 fewer kernels to compile and about 25% less time per gradient step.

    Samples gathered from a packed (complex) history are not kept: jax 0.10's
    ``jax.checkpoint`` cannot save complex values under a policy (it applies
    ``reduce_precision``, which takes real dtypes only), so they are read again."""
    if prim is _NAME_P:
        return params["name"] in (STATE_NAME, INPUTS_NAME)
    if prim is read_gather_p:
        return not jnp.issubdtype(avals[0].dtype, jnp.complexfloating)
    return prim in (read_sum_p, read_sum_blocked_p, read_rows_blocked_p, read_members_blocked_p)


# `_checkpointed_scan`'s ``item`` default: the shapes of the body's outputs, found by tracing it.
_TRACE_BODY = object()


def _checkpointed_scan(body, carry, xs, plain: bool = False, per_item: int = 1, first=None, item=_TRACE_BODY):
    r"""``jax.lax.scan(body, carry, xs)`` whose reverse mode keeps $O(\sqrt n)$ memory.

    The scan runs as chunks of items, each under ``jax.checkpoint``: the backward pass
    stores the carry at the chunk boundaries only and recomputes one chunk at a time (one
    extra forward pass in all), keeping per step what `_step_policy` says. The chunk
    length balances the two (`_chunk_length`): ``carry[0]`` is the state, and one step
    keeps about two states (state and inputs, or the delayed reads). An item of
    ``per_item`` steps (a `Substeps` with ``remat``) counts as that many steps. The forward
    pass and forward mode are a plain scan. Unlike diffrax's default adjoint for fixed
    steps (a checkpointed while loop), this is an exact derivative of what runs, compiles
    small, and also differentiates in forward mode. With ``plain`` (see
    `_simulate._plain_reverse`) it is one scan whose reverse pass keeps every item's values.

    The chunks write the items' outputs into one carried array, sized by ``item`` (their
    shapes, a tree of ``jax.ShapeDtypeStruct``; None where the body outputs None; by
    default found by tracing the body once more) or by ``first`` (an item's worth of
    outputs, put before them; then a plain scan writes so too). Stacked by the scan
    instead, they were ``(chunks, members, ...)`` under ``jax.vmap``, copied members-first
    afterwards (temporaries as large as the outputs), and ``first`` prepended was one more
    copy (a 60 s W1 run recording 19 MB peaked 19 MB higher). Writing is linear in the
    array, so reverse mode keeps none of it per item.
    """
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    body = jax.checkpoint(body, prevent_cse=False, policy=_step_policy)
    ratio = _tree_bytes(carry) / max(1, 2 * _tree_bytes(carry[0]))
    chunk = n if plain else _chunk_length(n, per_item, ratio)
    if chunk >= n and first is None:
        return jax.lax.scan(body, carry, xs)
    lead = int(first is not None)
    if first is None:
        if item is _TRACE_BODY:
            item = jax.eval_shape(body, carry, jax.tree_util.tree_map(lambda a: a[0], xs))[1]
        ys = jax.tree_util.tree_map(lambda s: jnp.zeros((n,) + s.shape, s.dtype), item)
    else:
        ys = jax.tree_util.tree_map(lambda a: jnp.zeros((n + 1,) + a.shape, a.dtype).at[0].set(a), first)

    def write(ys, part, start):
        return jax.tree_util.tree_map(lambda o, p: jax.lax.dynamic_update_slice_in_dim(o, p, start, 0), ys, part)

    if chunk >= n:  # one loop, each item written after the first

        def item_of(state, x):
            (c, ys), (i, xi) = state, x
            c, y = body(c, xi)
            return (c, write(ys, jax.tree_util.tree_map(lambda a: a[None], y), lead + i)), None

        (carry, ys), _ = jax.lax.scan(item_of, (carry, ys), (jnp.arange(n, dtype=jnp.int32), xs))
        return carry, ys
    run = jax.checkpoint(lambda c, x: jax.lax.scan(body, c, x), prevent_cse=False)
    q, r = divmod(n, chunk)
    head = jax.tree_util.tree_map(lambda a: a[: q * chunk].reshape((q, chunk) + a.shape[1:]), xs)

    def chunk_of(state, x):
        (c, ys), (i, xc) = state, x
        c, part = run(c, xc)
        return (c, write(ys, part, lead + i * chunk)), None

    (carry, ys), _ = jax.lax.scan(chunk_of, (carry, ys), (jnp.arange(q, dtype=jnp.int32), head))
    if r:
        carry, tail = run(carry, jax.tree_util.tree_map(lambda a: a[q * chunk :], xs))
        ys = write(ys, tail, lead + q * chunk)
    return carry, ys


class _Clock(eqx.Module):
    r"""An input source for a step solved in local time.

    `Substeps` with a ``dt`` solves each step over $[0, \Delta t]$ and gives the step's
    absolute start ``origin`` here: the inputs are read at ``origin + t``, and so is the
    model's own time (`absolute_time`). Why: far into a float32 run the absolute step ends
    cannot be $\Delta t$ apart (at $t = 6\cdot10^5$ ms float32 times are $0.0625$ ms apart,
    so steps of $0.1$ ms came out as $0.0625$ or $0.125$ ms, and past $2\cdot10^6$ ms some as
    $0$), whereas local times make every step exactly ``dt``.
    """

    source: Any
    origin: Any
    #: The step the local time 0 starts (an int), for a piece of a run solved in local time
    #: (`simulate` with ``saveat`` or adaptive steps): inputs given per step are then read at
    #: ``first_step`` + the step counted in local time (``source.at_local``), exact however
    #: long the run, rather than at ``floor((origin + t) / dt)`` of a float32 time.
    first_step: Any = None

    def evaluate(self, t):
        if self.first_step is not None and hasattr(self.source, "at_local"):
            return self.source.at_local(t, self.first_step)
        return self.source.evaluate(self.origin + t)

    @property
    def per_step(self):
        """The source's inputs given per step (see `_inputs_jump`)."""
        return getattr(self.source, "per_step", ())

    def at_step(self, t0):
        """The source's inputs held over the input step that holds local time ``t0`` (`_HeldStepInputs`),
        on this clock: the model still reads the absolute time."""
        if self.first_step is not None and hasattr(self.source, "at_local_step"):
            held = self.source.at_local_step(t0, self.first_step)
        elif hasattr(self.source, "at_step"):
            held = self.source.at_step(self.origin + t0)
        else:
            return self
        return _Clock(held, self.origin)


def absolute_time(args, t):
    """The absolute time of local time ``t``: ``t`` shifted by the `_Clock` that ``args``
    is or wraps (input wrappers keep their inner source as ``.source``), else ``t``."""
    while args is not None:
        if isinstance(args, _Clock):
            return args.origin + t
        args = getattr(args, "source", None)
    return t


def _find_model_term(terms) -> ModelTerm | None:
    if isinstance(terms, ModelTerm):
        return terms
    if isinstance(terms, dfx.MultiTerm):
        for term in terms.terms:
            found = _find_model_term(term)
            if found is not None:
                return found
    inner = getattr(terms, "term", None)  # diffrax wraps terms (direction, adjoint)
    if inner is not None:
        return _find_model_term(inner)
    return None


class ExponentialEuler(dfx.AbstractSolver):
    r"""brainmass's default scheme, per state variable:

    $$y_k \leftarrow y_k + \Delta t\, \varphi(\Delta t\, J_k)\, f_k(t, y), \qquad
      \varphi(z) = \frac{e^z - 1}{z},$$

    where $J_k$ is the diagonal of $\partial f_k / \partial y_k$ with every other variable
    frozen at its pre-step value (all variables read the pre-step state). Linear decay is
    integrated exactly; where $f_k$ does not depend on $y_k$ this is forward Euler. First
    order, fixed steps only.
    """

    term_structure: ClassVar = ModelTerm
    interpolation_cls: ClassVar[Callable[..., dfx.LocalLinearInterpolation]] = dfx.LocalLinearInterpolation

    def order(self, terms):
        return 1

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        dt = t1 - t0
        f, diag = _find_model_term(terms).vf_and_diagonal(t0, y0, args)
        y1 = jax.tree_util.tree_map(lambda y, fk, jk: y + dt * exprel(dt * jk) * fk, y0, f, diag)
        dense_info = dict(y0=y0, y1=y1)
        return y1, None, dense_info, None, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


_rk4_tableau = dfx.ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
)


class RK4(dfx.AbstractERK):
    """The classic fourth-order Runge-Kutta method (fixed steps; no error estimate).

    **Arguments:**

    - `scan_kind`: diffrax's choice of loop over the four stages (``None``, ``'lax'``,
      ``'checkpointed'`` or ``'bounded'``; see ``diffrax.AbstractERK``). Default None,
      diffrax's; on fixed-step runs `simulate` uses ``'bounded'`` instead (the same
      arithmetic, and ``jax.jacfwd`` can enter the loop; see `bounded_stages`).
    """

    tableau: ClassVar[dfx.ButcherTableau] = _rk4_tableau
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        return 4


class _FrozenInputs(eqx.Module):
    values: dict

    def evaluate(self, t):
        return self.values


def bounded_stages(solver: dfx.AbstractSolver) -> dfx.AbstractSolver:
    """``solver`` ready for a fixed-step loop that both AD modes enter, where it is a
    Runge-Kutta solver with diffrax's default stage loop (a checkpointed while loop, which
    forward-mode AD, ``jax.jacfwd``, cannot enter):

    - an explicit one whose stages can simply be written out (a plain Butcher tableau, not
      first-same-as-last nor solution-same-as-last: ``diffrax.Heun``, ``Midpoint``,
      ``Ralston``, `RK4`) becomes `UnrolledStages`, the same arithmetic without a loop;
    - any other gets ``scan_kind='bounded'`` (the same arithmetic in a bounded loop);
    - a stochastic Runge-Kutta solver (``diffrax.ShARK``, ``SRA1``, ...: a
      ``diffrax.AbstractSRK``, whose stage loop has no bounded form) gets
      ``scan_kind='lax'``, the same arithmetic in a ``lax.scan``.

    Any other solver, or one whose ``scan_kind`` is already set, is returned unchanged. A
    written-out stage loop matters for speed: the bounded loop over two stages, with its
    buffers and a conditional per stage, took three quarters of a Heun step of a 76-region delayed Jansen-Rit network (21 us per
    step; 5.9 us written out, 5.2 us for Euler's one stage).

    `simulate` applies it to the solver it is given before a model's solver hook wraps it
    (a delayed `Network`'s history, noise increments, in-loop BOLD), for every run:
    `Substeps` sees only the outermost wrapper, and diffrax's ``ForwardMode`` and
    ``DirectAdjoint``, which pick a stage loop their AD mode enters, see a Runge-Kutta
    solver only one wrapper deep; the one inside kept the while loop. A wrapper is
    returned unchanged (apply it to the solver before wrapping).
    """
    # The class, not isinstance: a wrapper passes diffrax's isinstance for the solver it
    # wraps (and forwards its scan_kind), but is no dataclass with that field to replace.
    if getattr(solver, "scan_kind", "lax") is not None:
        return solver
    if issubclass(type(solver), dfx.AbstractRungeKutta):
        if UnrolledStages.handles(solver):
            return UnrolledStages(solver)
        return _with_scan_kind(solver, "bounded")
    if issubclass(type(solver), dfx.AbstractSRK):
        # Its stage loop knows no "bounded" (diffrax's DirectAdjoint asks for it: jacfwd of
        # ShARK failed), and "lax" is the one both AD modes enter.
        return _with_scan_kind(solver, "lax")
    return solver


# diffrax's marker for a root-finder tolerance "taken from the step-size controller" (not
# public): the default root finder of an implicit solver holds it as rtol, atol and norm.
_STEPSIZE_TOL = dfx.ImplicitEuler().root_finder.rtol


def root_finder_tolerances(
    solver: dfx.AbstractSolver, controller: dfx.AbstractStepSizeController | None, adaptive_hint: str = ""
) -> dfx.AbstractSolver:
    """``solver`` with its root finder's tolerances set, where it is an implicit solver
    (``diffrax.ImplicitEuler``, ``Kvaerno3/4/5``, ...) whose root finder leaves them to the
    step-size controller (diffrax's default).

    diffrax fills them in from an adaptive ``controller`` (its ``rtol``, ``atol`` and
    ``norm``) inside ``diffeqsolve``, which sees only the outermost solver: a solver wrapped
    by `simulate` (inputs held per step, a delay history) was not filled in. Here they are
    filled in before any wrapping. Without an adaptive controller there are none to take:
    diffrax refuses that in ``diffeqsolve``, but the fixed-step loop on the step grid calls
    the solver's step itself, where the unset tolerance failed deep inside the root finder
    ("Type of `other` not understood."). It is refused here, eagerly, with what to give.
    The tolerances advised are loose on purpose: at rtol = atol = 1e-8 diffrax 0.7.2's
    ``VeryChord`` reported "Nonlinear solve diverged" at the first step of a 3-region
    delayed Hopf network (float64, dt = 0.1 ms, with ``saveat``) whose result equals that
    at 1e-4 and 1e-6 (1.35e-10 from Tsit5): its rate estimate is noise once the iterates
    agree to rounding (diffrax PR #754 fixes that report), and a fixed step cannot retry.

    **Arguments:**

    - `solver`: the solver given to `simulate` (not yet wrapped).
    - `controller`: the step-size controller, or None for fixed steps.
    - `adaptive_hint`: how to pass an adaptive controller in this run ("" where the model
      cannot adapt its step: then only explicit tolerances are suggested).
    """
    if isinstance(solver, dfx.HalfSolver) and isinstance(solver.solver, dfx.AbstractImplicitSolver):
        # diffrax's way to make a solver adaptive, but diffeqsolve (0.7) reads the
        # HalfSolver's own root_finder, which it does not have ("'HalfSolver' object has no
        # attribute 'root_finder'", in plain diffrax too).
        raise ValueError(
            f"solver HalfSolver({type(solver.solver).__name__}()) cannot run: diffrax 0.7 does not make an implicit "
            "solver adaptive through HalfSolver (diffeqsolve reads a root_finder the HalfSolver lacks). Use an "
            "implicit solver with its own error estimate, diffrax.Kvaerno3/4/5(), with the stepsize_controller."
        )
    if not issubclass(type(solver), dfx.AbstractImplicitSolver):
        return solver  # the class: a wrapper passes diffrax's isinstance for its inner solver
    finder = solver.root_finder
    unset = tuple(name for name in ("rtol", "atol", "norm") if getattr(finder, name, None) is _STEPSIZE_TOL)
    if not unset:
        return solver
    if isinstance(controller, dfx.AbstractAdaptiveStepSizeController):
        return eqx.tree_at(
            lambda s: tuple(getattr(s.root_finder, name) for name in unset),
            solver,
            tuple(getattr(controller, name) for name in unset),
            is_leaf=lambda x: x is _STEPSIZE_TOL,
        )
    name = type(solver).__name__
    adaptive = f"either {adaptive_hint}, whose rtol/atol the root finder then uses, or " if adaptive_hint else ""
    raise ValueError(
        f"solver {name} is implicit and its root finder has no tolerances (diffrax's default takes them from "
        f"an adaptive stepsize_controller), so it cannot take fixed steps as given. Pass {adaptive}the "
        f"tolerances yourself: solver=diffrax.{name}(root_finder=diffrax.VeryChord(rtol=1e-6, atol=1e-6, "
        "norm=optimistix.max_norm)) (a fixed step cannot be retried where the root find fails, and diffrax "
        "0.7's VeryChord reports tolerances near rounding as a divergence); or use an explicit solver (RK4, "
        "diffrax.Tsit5)."
    )


def _with_scan_kind(solver, kind):
    """``solver`` with ``scan_kind = kind``, as diffrax replaces it (``eqx.tree_at``), or
    ``solver`` itself where its instance holds no such field.

    ``dataclasses.replace`` called the class's ``__init__`` with every field, which a
    user's subclass with an ``__init__`` of its own refused ("unexpected keyword argument
    'scan_kind'"). An ``__init__`` that leaves the field to the class default keeps
    diffrax's stage loop: the run works, forward-mode AD through it does not (as for
    diffrax's own adjoints, which replace the field so too)."""
    try:
        return eqx.tree_at(lambda s: s.scan_kind, solver, kind, is_leaf=lambda x: x is None)
    except ValueError:
        return solver


class UnrolledStages(AbstractSolverWrapper, dfx.AbstractWrappedSolver):
    r"""An explicit Runge-Kutta ``solver``'s step with its stages written out (no loop):
    with $h = t_1 - t_0$, the control $\Delta = $ ``terms.contr(t0, t1)`` (one per step, for
    every stage, as diffrax does) and the tableau $(a, b, c)$,

    $$k_i = f\big(t_0 + c_i h,\; y_0 + \textstyle\sum_{j<i} a_{ij} k_j\big)\,\Delta,
    \qquad y_1 = y_0 + \sum_i b_i k_i, \qquad e = \sum_i b^{err}_i k_i,$$

    with $c_0 = 0$ (and $t_0 + c_i h$ exactly $t_1$ where $c_i = 1$); the dense output is the solver's own interpolation of
    ``(y0, y1, k)``. Everything else (orders, ``isinstance`` checks, Lévy area) is the
    inner solver's. Only tableaux that `handles` accepts (diffrax's stage loop is otherwise
    kept); `bounded_stages` picks it.

    **Arguments:** `solver`, a ``diffrax.AbstractERK`` with a plain ``ButcherTableau`` that
    is neither first-same-as-last nor solution-same-as-last.
    """

    solver: dfx.AbstractERK

    def __init__(self, solver: dfx.AbstractERK):
        if not self.handles(solver):
            raise ValueError(
                f"solver: UnrolledStages writes out the stages of an explicit Runge-Kutta solver with a "
                f"plain Butcher tableau (not first-same-as-last), got {type(solver).__name__}; pass it to "
                "bounded_stages instead, which keeps diffrax's stage loop for it."
            )
        self.solver = solver

    @staticmethod
    def handles(solver) -> bool:
        """Whether `solver`'s stages can be written out here."""
        tableau = getattr(solver, "tableau", None)
        return (
            isinstance(solver, dfx.AbstractERK)
            and type(tableau) is dfx.ButcherTableau
            and not tableau.fsal
            and not tableau.ssal
        )

    @property
    def reverse_keeps_little(self) -> bool:
        return True  # a step keeps its few stage values, like the solver it replaces

    @property
    def minimal_levy_area(self):
        return getattr(self.solver, "minimal_levy_area", dfx.BrownianIncrement)

    def init(self, terms, t0, t1, y0, args):
        return None  # no first-same-as-last value to carry

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        tableau = self.solver.tableau
        h = t1 - t0
        control = terms.contr(t0, t1)
        ks = []
        for i in range(len(tableau.c) + 1):
            if i == 0:
                t_i, y_i = t0, y0
            else:
                c = float(tableau.c[i - 1])
                t_i = t1 if c == 1.0 else t0 + c * h  # diffrax's: exactly t1 at c = 1
                y_i = _combine(y0, tableau.a_lower[i - 1], ks)
            ks.append(terms.vf_prod(t_i, y_i, args, control))
        y1 = _combine(y0, tableau.b_sol, ks)
        y_error = None if tableau.b_error is None else _combine(None, tableau.b_error, ks)
        dense_info = dict(y0=y0, y1=y1, k=jax.tree_util.tree_map(lambda *k: jnp.stack(k), *ks))
        return y1, y_error, dense_info, None, dfx.RESULTS.successful


def _combine(base, coefficients, ks):
    """``base + sum_j coefficients[j] * ks[j]`` leaf by leaf (``base`` None: the sum alone),
    with the zero coefficients left out (a tableau is mostly zeros)."""
    terms = [(float(a), k) for a, k in zip(np.asarray(coefficients), ks) if float(a) != 0.0]
    if not terms:
        return jax.tree_util.tree_map(jnp.zeros_like, ks[0]) if base is None else base
    total = jax.tree_util.tree_map(
        lambda *k: functools.reduce(operator.add, (a * x for (a, _), x in zip(terms, k))), *(k for _, k in terms)
    )
    return total if base is None else jax.tree_util.tree_map(operator.add, base, total)


def _inputs_jump(args) -> bool:
    """Whether the input source ``args`` holds inputs given per step (`simulate`'s
    ``_StepInputs``, marked by ``per_step``), whose value jumps at every step boundary.

    A solver that reuses its last stage as the next step's first (first-same-as-last:
    Tsit5, Dopri5, ...) must then be told so (``made_jump=True``) and evaluate the first
    stage again: the reused stage saw step $i$'s input, step $i + 1$ holds another (Tsit5
    on a per-step pulse was 0.028 off a step-by-step reference at dt = 0.1 ms)."""
    return bool(getattr(args, "per_step", ()))


class _HeldStepInputs(AbstractSolverWrapper, dfx.AbstractWrappedSolver):
    r"""``solver`` with inputs given per step held over each step it takes: every stage of
    the step over $[t_0, t_1]$ reads the inputs of the input step that holds its midpoint
    (``args.at_step((t0 + t1) / 2)``).

    For a diffrax solve (`simulate` with ``saveat`` or adaptive steps), as `Substeps` does
    on the recorded grid. Read at each stage's own time instead, a stage at the step's end
    ($c = 1$: Heun's second, RK4's last) took the *next* step's value: Heun was 0.15 and
    RK4 0.014 off the held-input run on a per-step pulse at dt = 0.1 ms. On the step grid
    the midpoint is that of the input step; adaptive steps are clipped where the input
    changes (`simulate`'s ``_clip_at_changes``), so that each lies inside one input step,
    and the midpoint is inside it however the clipped ends round (diffrax ends a step just
    before a jump and starts the next just after it). A first-same-as-last solver
    evaluates its first stage again at each step (`_inputs_jump`). Any other source (no
    ``at_step``) is passed on unchanged.

    **Arguments:** `solver`, the solver taking each step.
    """

    solver: dfx.AbstractSolver

    @property
    def reverse_keeps_little(self) -> bool:
        return True  # nothing of its own: the inner solver's step

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        jump = _inputs_jump(args)
        step_args = args.at_step(0.5 * (t0 + t1)) if hasattr(args, "at_step") else args
        return self.solver.step(terms, t0, t1, y0, step_args, solver_state, jump or made_jump)


def step_can_fail(solver: dfx.AbstractSolver) -> bool:
    """Whether a step of ``solver`` can return a result other than success, decided
    statically by the class of the solver at the bottom of its wrappers
    (`innermost_solver`): an implicit solver (``diffrax.ImplicitEuler``, ``Kvaerno3/4/5``,
    ``KenCarp3/4/5``: a ``diffrax.AbstractImplicitSolver``), whose root find can fail
    ("Nonlinear solve diverged", its iteration budget spent). Every other solver diffrax
    and this library ship returns success from every step (the wrappers pass the inner
    result on), so `Substeps` carries no failure record for them and their loops compile
    exactly as before."""
    return isinstance(innermost_solver(solver), dfx.AbstractImplicitSolver)


def fixed_step_solver(solver: dfx.AbstractSolver, owner: str) -> dfx.AbstractSolver:
    """``solver``, checked for the fixed steps a helper takes itself (``solver.step`` called
    outside `simulate`: a sequence layer's step, a compat model's ``update``): an implicit
    solver whose root finder leaves its tolerances to an adaptive step-size controller
    (diffrax's default: ``diffrax.Kvaerno3()``, ``ImplicitEuler()``) has none to take there,
    and is refused eagerly, naming ``owner`` and the fix, as `simulate` refuses it on fixed
    steps (`root_finder_tolerances` without a controller). It failed deep inside the root
    finder, as the first step ran ("Type of `other` not understood.")."""
    try:
        return root_finder_tolerances(solver, None)
    except ValueError as err:
        raise ValueError(f"{owner}: {err}") from None


def failed_step_advice(solver: dfx.AbstractSolver, adaptive_hint: bool) -> tuple[str, str, str]:
    """``(name, given, fix)`` for the message of a failed fixed step of ``solver`` (an
    implicit one: `step_can_fail`): its innermost solver's class name, its root finder's
    tolerances as ``" (its root finder's rtol = ..., atol = ...)"`` (``""`` where they are
    not plain numbers), and what to do. ``adaptive_hint``: whether the run may take an
    adaptive ``stepsize_controller`` instead (which retries a failed step)."""
    inner = innermost_solver(solver)
    name = type(inner).__name__
    finder = getattr(inner, "root_finder", None)
    tols = [getattr(finder, tol, None) for tol in ("rtol", "atol")]
    given = ""
    if all(isinstance(t, (int, float)) for t in tols):
        given = f" (its root finder's rtol = {tols[0]:g}, atol = {tols[1]:g})"
    fix = (
        "A fixed step cannot be retried: loosen the root finder's tolerances (solver=diffrax."
        f"{name}(root_finder=diffrax.VeryChord(rtol=1e-4, atol=1e-4, norm=optimistix.max_norm)); diffrax 0.7's "
        "VeryChord reports tolerances near rounding as a divergence), take a smaller dt"
        + (", or pass stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8), which retries a failed "
           "step with a smaller one" if adaptive_hint else "")
        + "."
    )
    return name, given, fix


def checked_step(y1: PyTree, result: Any, solver: dfx.AbstractSolver, owner: str) -> PyTree:
    """``y1``, the state after one step of ``solver`` that a one-step helper took itself
    (``solver.step`` called outside `simulate`'s loops: a compat model's ``update``, a
    sequence layer's step), checked against the ``result`` that step returned.

    Where the step can fail (an implicit solver's root find, `step_can_fail`), a failed
    step raises when it runs (`error_if_member`, per member under ``jax.vmap``), naming
    ``owner``, the solver and the fix, as `simulate` reports one: it was dropped, and the
    run went on from the failed step's value (x = 1.58 after a kicked Hopf step whose root
    find diverged). Inside a `Fitter`'s loss (`divergence_gives_nan`) ``y1`` is inf instead,
    so that the candidate's loss is non-finite. For every other solver ``y1`` is returned
    as it is: nothing is added to the program.

    **Arguments:** ``y1`` (the new state), ``result`` (the step's ``diffrax.RESULTS``),
    ``solver`` (the solver that took it), ``owner`` (how the message names the caller).
    """
    if not step_can_fail(solver):
        return y1
    failed = result != dfx.RESULTS.successful
    if not divergence_raises():
        return jax.tree_util.tree_map(
            lambda a: jnp.where(failed, jnp.inf, a) if jnp.issubdtype(a.dtype, jnp.inexact) else a, y1
        )
    name, given, fix = failed_step_advice(solver, adaptive_hint=False)
    return error_if_member(
        y1, failed,
        f"{owner}: a step of {name}{given} failed (its root find did not converge), and the run would go on from "
        f"the failed step's value. {fix}",
    )


def _first_failure(failure, result, i=None):
    """``failure`` (the first failed ``(result, step)`` so far) after a step that returned
    ``result`` as step ``i``: the first one is kept."""
    first, at = failure
    fresh = (first == dfx.RESULTS.successful) & (result != dfx.RESULTS.successful)
    return dfx.RESULTS.where(fresh, result, first), at if i is None else jnp.where(fresh, i, at)


class Substeps(AbstractSolverWrapper):
    r"""Take ``n`` steps of ``solver`` as one diffrax step.

    Recording every ``n``-th step this way saves exactly the samples that are kept (no
    interpolation, nothing materialised in between) and runs the inner loop as a
    ``fori_loop`` with less per-step bookkeeping than diffrax's outer loop. After each inner
    step the model's ``post_step`` projection is applied. Inputs given per step are held
    constant over each inner step, as brainmass does.

    With ``dt`` (what `simulate` uses) the steps are counted: the solver state carries the
    number $i$ of steps taken since the origin $t_0$ given to ``init``, step $i$ reads the
    inputs given per step at index $i$ (``args.at_index(i)``), and it is solved over the
    local times $[0, \Delta t]$ with the inputs and the model reading the absolute time
    $t_0 + i\,\Delta t$ (see `_Clock`). Every step is then exactly ``dt`` long and reads the
    right input however long the run: on absolute float32 times, past $t \approx 2\cdot10^6$
    ms ($2\cdot10^7$ steps of 0.1 ms) a fifth of the steps had size 0 and half of them read
    the input of a neighbouring step. The ``(t0, t1)`` given to ``step`` are then ignored
    (each call takes ``n`` steps of ``dt``). Without ``dt`` the steps are
    ``(t1 - t0) / n`` on absolute times.

    Where the inner solver's step can fail (an implicit solver's root find,
    `step_can_fail`), the result returned is the first failure since ``init`` (else
    success): a fixed step cannot be retried, so diffrax stops the solve there. With
    ``dt`` the solver state also keeps that failure and the number of the step that
    failed (`failure`), which `simulate` reports; for any other solver nothing is carried.

    With ``remat`` (and ``dt``) the ``n`` steps run as a checkpointed loop
    (`_checkpointed_scan`): reverse mode keeps $O(\sqrt n)$ steps' values instead of all
    ``n``. `simulate` sets it where one recorded step spans many steps (``sample_every``,
    in-loop BOLD's TR): a gradient through 128 s of the 80-region delayed Hopf network
    with BOLD at TR 2 s needed 2.7 GB of XLA buffers without it (every one of the
    1.28 million steps kept), against 0.3 MB for the run alone.

    **Arguments:**

    - `solver`: the solver taking each step.
    - `n`: the number of steps per call (an int >= 1; a NumPy integer is accepted).
    - `dt`: the step (ms), or None for ``(t1 - t0) / n``.
    - `remat`: checkpoint the loop of ``n`` steps for reverse mode (default False; it
      changes no number, only what reverse mode stores and recomputes).
    """

    solver: dfx.AbstractSolver
    n: int = eqx.field(static=True)
    dt: float | None = eqx.field(static=True, default=None)
    remat: bool = eqx.field(static=True, default=False)

    def __init__(self, solver: dfx.AbstractSolver, n: int, dt: float | None = None, remat: bool = False):
        self.solver = bounded_stages(solver)
        # n = 0 (or < 0) took no step at all: the run stood still at y0 without a word.
        self.n = check_int(n, "Substeps: n (steps per call)", 1)
        dt = python_number(dt)
        if dt is not None and not (isinstance(dt, (int, float)) and dt > 0):
            raise ValueError(f"Substeps: 'dt' must be a positive number (the step, ms) or None, got {dt!r}.")
        self.dt = None if dt is None else float(dt)
        self.remat = bool(remat)

    # One diffrax step is n inner steps: the inner solver's dense output does not cover it.
    interpolation_cls = dfx.LocalLinearInterpolation

    @property
    def reverse_keeps_little(self) -> bool:
        return True  # only the loop counter and the step ends of its own

    @property
    def can_fail(self) -> bool:
        """Whether the inner solver's step can fail (`step_can_fail`): only then is a
        failure carried through the loop."""
        return step_can_fail(self.solver)

    def carried(self, solver_state) -> dict | None:
        """The inner solver's `AbstractSolverWrapper.carried`, from its part of the state."""
        inner = solver_state if self.dt is None else solver_state[2]
        return self.solver.carried(inner) if isinstance(self.solver, AbstractSolverWrapper) else None

    def failure(self, solver_state) -> tuple | None:
        """``(result, step)``: the first failed step's result (``diffrax.RESULTS``; success
        where none failed) and its number, counted from 0 at the origin given to ``init``;
        None where the inner solver cannot fail (`step_can_fail`) or without ``dt``."""
        return solver_state[3] if self.dt is not None and self.can_fail else None

    def init(self, terms, t0, t1, y0, args):
        if self.dt is None:
            return self.solver.init(terms, t0, t0 + (t1 - t0) / self.n, y0, args)
        origin = jnp.asarray(t0, jnp.result_type(t0, float))
        h = jnp.asarray(self.dt, origin.dtype)
        inner = self.solver.init(terms, jnp.zeros_like(h), h, y0, _Clock(args, origin))
        count = jnp.zeros((), jnp.int32)
        if self.can_fail:
            return count, origin, inner, (dfx.RESULTS.successful, count)
        return count, origin, inner

    def _start(self, origin, i):
        r"""$t_0 + i\,\Delta t$ from the int ``i``: float32 holds integers exactly only to
        $2^{24}$, so ``i`` is split into ``4096 q + r`` (two exact products, one rounding each)."""
        block = 4096
        q, r = (i // block).astype(origin.dtype), (i % block).astype(origin.dtype)
        return origin + (q * jnp.asarray(block * self.dt, origin.dtype) + r * jnp.asarray(self.dt, origin.dtype))

    def _counted_step(self, terms, y0, args, solver_state, model):
        count, origin, inner, *failure = solver_state
        h = jnp.asarray(self.dt, origin.dtype)
        zero = jnp.zeros_like(h)

        jump = _inputs_jump(args)

        # carry: (y, inner solver state), and the failure record where the step can fail.
        def one(j, carry):
            y, inner, *failed = carry
            i = count + j
            if hasattr(args, "at_index"):
                step_args = args.at_index(i)
            elif hasattr(args, "at_step"):
                step_args = args.at_step(self._start(origin, i))
            else:
                step_args = args
            y, _, _, inner, result = self.solver.step(terms, zero, h, y, _Clock(step_args, self._start(origin, i)), inner, jump)
            return (model.post_step(y), inner, *(_first_failure(f, result, i) for f in failed))

        carry = (y0, inner, *failure)
        if self.n == 1:  # no loop of one iteration: a smaller program to compile
            carry = one(jnp.zeros((), jnp.int32), carry)
        elif self.remat:
            carry, _ = _checkpointed_scan(
                lambda c, j: (one(j, c), None), carry, jnp.arange(self.n, dtype=jnp.int32), item=None
            )
        else:
            # A static trip count (count is traced): a while loop would stop reverse mode.
            carry = jax.lax.fori_loop(0, self.n, one, carry)
        y1, inner, *failure = carry
        result = failure[0][0] if failure else dfx.RESULTS.successful
        return y1, None, dict(y0=y0, y1=y1), (count + self.n, origin, inner, *failure), result

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        model = _find_model_term(terms).model
        if self.dt is not None:
            return self._counted_step(terms, y0, args, solver_state, model)
        t0, t1 = jnp.asarray(t0), jnp.asarray(t1)
        t0, t1 = t0.astype(jnp.result_type(t0, t1)), t1.astype(jnp.result_type(t0, t1))
        jump = _inputs_jump(args)
        if self.n == 1:  # no loop of one iteration: a smaller program to compile
            step_args = args.at_step(t0) if hasattr(args, "at_step") else args
            y1, _, _, solver_state, result = self.solver.step(terms, t0, t1, y0, step_args, solver_state, jump)
            y1 = model.post_step(y1)
            return y1, None, dict(y0=y0, y1=y1), solver_state, result if self.can_fail else dfx.RESULTS.successful
        h = (t1 - t0) / self.n

        def end_of(i):
            return jnp.where(i >= self.n - 1, t1, t0 + (i + 1) * h)

        def body(i, carry):
            # Step i starts exactly where step i - 1 ended: both ends come from the loop
            # carry, so the float32 step sizes telescope to t1 - t0. Recomputing them here
            # is not enough: with tb = ta + h every step rounded the same way at large t
            # (a float32 run at dt = 0.1 ms ran 1.4% fast by t = 200 s), and with
            # tb = t0 + (i+1) h XLA contracts tb - ta into an FMA when t0 and h are
            # constants (a 2 s run lost 0.024 ms).
            y, state, ta, tb, *failed = carry
            step_args = args.at_step(ta) if hasattr(args, "at_step") else args
            y, _, _, state, result = self.solver.step(terms, ta, tb, y, step_args, state, jump)
            return (model.post_step(y), state, tb, end_of(i + 1), *(_first_failure(f, result) for f in failed))

        failure = ((dfx.RESULTS.successful, None),) if self.can_fail else ()
        y1, solver_state, _, _, *failure = jax.lax.fori_loop(0, self.n, body, (y0, solver_state, t0, end_of(0), *failure))
        result = failure[0][0] if failure else dfx.RESULTS.successful
        return y1, None, dict(y0=y0, y1=y1), solver_state, result


def is_fixed_step_only(solver: dfx.AbstractSolver) -> bool:
    """Whether ``solver`` has no error estimate (so cannot adapt its step).

    diffrax's stochastic Runge-Kutta solvers (``ShARK``, ``SRA1``, ``SPaRK``, ...) are
    not all `AbstractAdaptiveSolver` subclasses (``SPaRK`` is), but every one whose tableau
    has an embedded error (``b_error``) returns an error estimate a ``PIDController`` uses.
    """
    if isinstance(solver, (ExponentialEuler, RK4, Substeps)):
        return True
    if isinstance(solver, dfx.AbstractSRK):
        return solver.tableau.b_error is None
    return not isinstance(solver, dfx.AbstractAdaptiveSolver)


# ------------------------------------------------------------------------------------------
# Stochastic differential equations (noise, see `brainmass_eqx.noise`)
# ------------------------------------------------------------------------------------------


class StochasticExponentialEuler(dfx.AbstractItoSolver):
    r"""`ExponentialEuler` for SDEs $\mathrm{d}y = f(t, y)\,\mathrm{d}t + g(t, y)\,\mathrm{d}W$:

    $$y_k \leftarrow y_k + \Delta t\, \varphi(\Delta t\, J_k)\, f_k(t, y) + \sqrt{\varphi(2\Delta t\, J_k)}\,\big(g(t, y)\,\Delta W\big)_k,$$

    the drift by brainmass's exponential-Euler rule (per variable, Jacobi splitting, see
    `ExponentialEuler`) and the diffusion by Euler-Maruyama scaled by
    $\sqrt{\varphi(2\Delta t\,J_k)}$, the standard deviation of
    $\int_0^{\Delta t} e^{J_k(\Delta t - s)}\,\mathrm{d}W_s$ per unit of $\sqrt{\Delta t}$:
    Itô, strong order 0.5 (1 for additive noise). An OU process (a noise state, or a
    linear model driven by white noise) then has its exact stationary variance at every
    step size. brainmass adds the plain $g\,\Delta W$, which inflates that variance by
    $2\Delta t|J| / (1 - e^{-2\Delta t |J|})$: 10 % for an OU process of $\tau$ = 1 ms at
    dt = 0.1 ms, 2.3x for `Linear`'s default $\gamma = -10$ at dt = 0.1 ms.

    Terms: ``MultiTerm(ModelTerm(model), diffusion_term)``, as a noisy model's ``terms``
    gives (`simulate` picks this solver when a noisy model is run with `ExponentialEuler`).
    """

    term_structure: ClassVar = dfx.MultiTerm[tuple[ModelTerm, dfx.AbstractTerm]]
    interpolation_cls: ClassVar[Callable[..., dfx.LocalLinearInterpolation]] = dfx.LocalLinearInterpolation

    def order(self, terms):
        return 1

    def strong_order(self, terms):
        return 0.5

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        _, diffusion = terms.terms
        dt = t1 - t0
        f, diag = _find_model_term(terms).vf_and_diagonal(t0, y0, args)
        noise = diffusion.vf_prod(t0, y0, args, diffusion.contr(t0, t1))
        # The noise is scaled by sqrt(exprel(2 dt J)): the exact variance of the increment
        # of the linearised (per variable) OU process, int_0^dt e^{J (dt - s)} dW. With J = 0
        # it is 1 (Euler-Maruyama); for an OU noise state (or a linear state driven by white
        # noise) the stationary variance is then exact for every dt, where the plain
        # increment inflated it by 2 dt|J| / (1 - exp(-2 dt|J|)) (10 % at dt = tau / 10).
        # exprel(2z) = exprel(z) (1 + e^z) / 2 with e^z = 1 + z exprel(z): the drift's exprel
        # serves both (a second exprel made a noisy 80-region network 15 % slower).
        def step(y, fk, jk, gk):
            z = dt * jk
            phi = exprel(z)
            return y + dt * phi * fk + jnp.sqrt(phi * (1.0 + 0.5 * z * phi)) * gk

        y1 = jax.tree_util.tree_map(step, y0, f, diag, noise)
        dense_info = dict(y0=y0, y1=y1)
        return y1, None, dense_info, None, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
