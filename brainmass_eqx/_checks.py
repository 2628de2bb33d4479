"""Argument checks shared across the package: eager ones, and the run-time ones of traced values."""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import inspect
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._units import is_quantity, to_ms

__all__ = ["broadcasts_to_regions", "is_traced", "checked_as_run_starts", "checked_finite", "all_finite", "traced_message", "divergence_gives_nan", "divergence_raises", "error_if_member", "unjitted", "check_int", "positive_ms", "check_keywords", "check_objective", "keyword_names", "plain_method", "plainly_bound", "python_number", "suggests_keywords", "user_stacklevel", "whole_steps"]


def broadcasts_to_regions(shape: tuple[int, ...], n_regions: int) -> bool:
    """Whether an array of ``shape`` broadcasts to ``(n_regions,)`` without growing it: a
    scalar, ``(1,)`` or ``(n_regions,)`` (a parameter, an input or a noise amplitude per
    region)."""
    try:
        return np.broadcast_shapes(tuple(shape), (n_regions,)) == (n_regions,)
    except ValueError:
        return False


def is_traced(tree: Any) -> bool:
    """Whether any leaf of ``tree`` (an array, a model, a batch) is a JAX tracer: its
    values are unknown, so eager checks of them are skipped (or deferred to run time)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


def plain_method(obj: Any, name: str) -> Callable:
    """``obj.name`` as a plain Python bound method. Reading a method of an ``eqx.Module``
    builds an ``eqx.BoundMethod`` (itself a Module: about 25 us, as long as the rest of a
    small compiled run) so that ``jax.jit(model.method)`` works; an eager `simulate` read
    a model's methods 7 times (a delayed `Network`: 24), the only ones that cost. Calling
    the result is calling ``obj.name``; an attribute a wrapper forwards (its
    ``__getattr__``) is read as usual."""
    try:
        return object.__getattribute__(obj, name)
    except AttributeError:
        return getattr(obj, name)


class plainly_bound:
    """A decorator for a method of an ``eqx.Module`` called often on the host (a plan built
    at every eager run): reading it gives ``functools.partial(method, instance)``, not the
    ``eqx.BoundMethod`` equinox builds for every method read (about 30 us, a Module of its
    own, so that ``jax.jit(module.method)`` works; 0.8 us here). For private helpers only,
    which nobody passes to ``jax.jit``; a subclass may override the method as usual. Read
    on the class, it is the function itself."""

    def __init__(self, method: Callable):
        self.method = method
        functools.update_wrapper(self, method)

    def __get__(self, instance: Any, owner: type | None = None) -> Callable:
        return self.method if instance is None else functools.partial(self.method, instance)


def _check_scalar(pred: Any, message: str | tuple[str, ...], index: Any = None) -> Any:
    """A float32 zero through ``eqx.error_if(..., pred, message)``, ``pred`` reduced over any
    ``jax.vmap`` batch (True if it is True for any member), as equinox reduces it itself
    under ``EQX_ON_ERROR=raise`` / ``nan``. With ``index`` (an int scalar), ``message`` is a
    tuple and the error raised is ``message[index]`` (``eqx.branched_error_if``), ``index``
    reduced over the batch by its largest value, as equinox reduces it.

    Reduced here, in a function whose only traced locals are the reduced ``pred`` and
    ``index``, the check also works under ``vmap`` with ``EQX_ON_ERROR=breakpoint``: the
    debugger captures the traced locals of the first frame outside JAX and equinox, and one
    that was batched (the checked value) made the callback unbatchable: every vmapped
    `simulate` failed to trace, diverging or not, with a NotImplementedError about
    ``pure_callback``'s ``vmap_method`` (as a plain ``eqx.error_if`` under ``vmap`` does)."""
    from equinox.internal import unvmap_any, unvmap_max

    pred = unvmap_any(pred)
    zero = jnp.zeros((), jnp.float32)
    if index is None:
        return eqx.error_if(zero, pred, message)
    return eqx.branched_error_if(zero, pred, unvmap_max(index), tuple(message))


def all_finite(tree: Any) -> jax.Array:
    r"""Whether every inexact value in ``tree`` is finite (a boolean scalar, per member under
    ``vmap``; True for a tree with no inexact arrays).

    ``jnp.all(jnp.isfinite(x))`` has XLA:CPU write ``isfinite(x)`` out as a boolean array of
    ``x``'s size before reducing it: at the end of a run, a byte per recorded value (763 MB
    of the 1,017 MB of temporaries of a vmap of 1,000 80-region networks recording every
    1 ms for 10 s). Here an array whose last (contiguous) axis holds at least 16 values is
    first summed along it as $x - x$, which is $0$ where $x$ is finite and NaN where it is
    not ($\infty - \infty$, NaN $-$ NaN), so that a row's sum is NaN exactly when the row
    holds a non-finite value: a float per row instead of a byte per value (that vmap's
    temporaries 347 MB), and a pass as fast as the boolean one or up to 3.7x faster (rows of
    16 to 1,000 values, measured). Narrower arrays keep the boolean reduction: summed along a
    short axis they would hold more, and a whole-array sum is one serial chain of additions
    (3-11x slower than the boolean pass, measured)."""

    def finite(a):
        rows = jnp.sum(a - a, axis=-1) if a.ndim and a.shape[-1] >= 16 else a
        return jnp.all(jnp.isfinite(rows))

    checks = [finite(a) for a in jax.tree_util.tree_leaves(tree) if eqx.is_array(a) and jnp.issubdtype(a.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.asarray(True)


def error_if_member(x: Any, pred: Any, message: str | tuple[str, ...], index: Any = None) -> Any:
    """``eqx.error_if(x, pred, message)``, acting under ``jax.vmap`` on the members whose own
    ``pred`` is True alone, where equinox lets it.

    Equinox reduces ``pred`` over a vmapped batch (``unvmap_any``) before acting. With the
    default ``EQX_ON_ERROR=raise`` the whole batch raises, as it must (a compiled call cannot
    raise for one member); but with ``EQX_ON_ERROR=nan`` every member came back NaN, the
    good ones too (a vmap over ``tau_E = [1, -1, 1]``: three NaN runs). Here a scalar
    carries the check, and each inexact array of ``x`` is ``where(pred, a + check, a)`` per
    member: where the check acts without raising (``EQX_ON_ERROR=nan``, or ``breakpoint``
    continued), the failing member's arrays are NaN throughout, the others' bit-identical
    (``a + 0.0`` alone would turn a -0.0 into +0.0). The select keeps the check in use, so
    it is never optimised away, and it is elementwise: XLA writes it in place, with no copy
    of ``x`` (an ``error_if`` on ``x`` itself kept two: a jitted run recording 6.4 MB held
    12.8 MB of temporaries for the check, against 0.27 MB without it). Integer and boolean
    arrays are marked as equinox marks them (their largest value, True).

    **Arguments:**

    - `x`: the pytree to return (the check is threaded through its arrays).
    - `pred`: a boolean scalar (per member under ``vmap``): True where the check fails.
    - `message`: the error's text; it should name the argument and the fix. With `index`,
      a tuple of texts, of which ``message[index]`` is raised.
    - `index`: None, or an int scalar (per member under ``vmap``) choosing the text: under
      ``vmap`` the largest member's is raised, so a member whose check passes should give 0.
    """
    pred = jnp.asarray(pred)
    if pred.ndim:
        raise ValueError(f"error_if_member: pred must be a scalar per member (reduce it with jnp.any), got shape {pred.shape}.")
    gate = _check_scalar(pred, message, index)

    def mark(a):
        if not (eqx.is_array(a) and a.size):
            return a
        if jnp.issubdtype(a.dtype, jnp.inexact):
            return jnp.where(pred, a + gate.astype(a.dtype), a)
        # As equinox marks them: the largest integer, True.
        fill = True if a.dtype == jnp.bool_ else jnp.iinfo(a.dtype).max
        return jnp.where(pred & jnp.isnan(gate), jnp.asarray(fill, a.dtype), a)

    return jax.tree_util.tree_map(mark, x)


def traced_message(rule: str, fix: str | None = None) -> str:
    """The run-time form of an eager check's message ``rule`` (its text before ``", got
    <value>"``), and the eager message's ``fix`` if it has one: the value is unknown, and
    under ``jax.vmap`` one failing member fails the check for the batch."""
    return (
        f"{rule}; it was traced (under jax.jit / vmap / grad), so this is checked as the run starts "
        f"(under jax.vmap: in at least one member)" + (f"; {fix}." if fix else ".")
    )


def checked_as_run_starts(
    value: Any, bad: Any, rule: str | tuple[str, ...], fix: str | tuple[str | None, ...] | None = None
) -> Any:
    """``value``, checked when the run reads it (`error_if_member`): the construction check of
    a value it cannot read, one traced because it was built inside ``jax.jit`` /
    ``jax.vmap`` / ``jax.grad``. ``bad``: a mask of the entries that break ``rule``, the
    message (``"Network: k must be finite"``), which is raised if any is True, with the
    eager message's ``fix`` (`traced_message`). ``value`` may be a pytree (a `Param`: the
    check is threaded through its raw array).

    Where the eager check has one message per condition (``"'tau' must be finite"``, and
    ``"'tau' must be positive"``), ``bad`` and ``rule`` are tuples of as many masks and
    rules, in the order the eager check tries them: the message raised is the rule of the
    first condition that fails (under ``jax.vmap``, the first that fails in some member),
    as eagerly. ``fix`` is then one text for every rule, or a tuple of one per rule (None
    where a rule has none), where the eager messages name different fixes. It costs one
    reduction per condition where the run starts, not in its loop."""
    if isinstance(rule, str):
        return error_if_member(value, jnp.any(bad), traced_message(rule, fix))
    if len(bad) != len(rule):
        raise ValueError(f"checked_as_run_starts: give one mask per rule, got {len(bad)} masks for {len(rule)} rules.")
    fixes = fix if isinstance(fix, tuple) else (fix,) * len(rule)
    if len(fixes) != len(rule):
        raise ValueError(f"checked_as_run_starts: give one fix per rule, got {len(fixes)} fixes for {len(rule)} rules.")
    fails = [jnp.any(mask) for mask in bad]
    # Rule i as index n - 1 - i: a member that fails none gives 0 (see `error_if_member`), and
    # the largest index over a vmapped batch is then the first rule that fails in any member.
    n = len(rule)
    index = functools.reduce(jnp.maximum, [jnp.where(f, n - 1 - i, 0) for i, f in enumerate(fails)])
    messages = tuple(traced_message(r, f) for r, f in reversed(tuple(zip(rule, fixes))))
    return error_if_member(value, functools.reduce(jnp.logical_or, fails), messages, index)


# Set while a `Fitter` builds its loss (see `divergence_gives_nan`). A context variable, set
# inside the traced loss itself, so that it holds on whichever thread traces it (nevergrad's
# population slices are traced in worker threads).
_DIVERGENCE_GIVES_NAN: contextvars.ContextVar[bool] = contextvars.ContextVar("bmx_divergence_gives_nan", default=False)

@contextlib.contextmanager
def divergence_gives_nan():
    """Within this block, `simulate` records a run that diverges instead of raising, as
    ``check_finite=False`` does: recorded values that are NaN/inf stay so, and an adaptive
    solve that stops short keeps diffrax's inf-filled samples.

    A `Fitter` builds its loss inside one, so that a candidate whose run diverges gets a
    non-finite loss and the fit's own handling applies (the step and the parameters named
    in a `NonFiniteLossError`; one start of several stopping alone; a huge loss told to
    nevergrad; a failed scipy start), rather than a run-time error that ended the whole fit
    (every start, the whole population) without either. It acts where ``simulate`` is
    traced: a function the user compiled with ``jax.jit`` keeps the trace it made first,
    so the Fitter calls the function inside a ``jax.jit`` / ``eqx.filter_jit`` it is
    given (`unjitted`), and a ``predict`` that calls a jitted function of its own keeps
    that function's check (a divergence then ends the fit with simulate's error).
    """
    token = _DIVERGENCE_GIVES_NAN.set(True)
    try:
        yield
    finally:
        _DIVERGENCE_GIVES_NAN.reset(token)


def unjitted(fn: Callable) -> Callable:
    """The function inside ``jax.jit`` / ``eqx.filter_jit`` wrappers of ``fn`` (``fn``
    itself if it is not one). The Fitter compiles its whole loss, so a user's jit around
    ``predict`` adds nothing there, and JAX would reuse the wrapper's first trace: traced
    before the fit, it kept simulate's divergence check, and a diverging step ended the fit
    with a bare EquinoxRuntimeError (no step, no parameters, no result); traced first by
    the fit, it kept no check afterwards, and ``predict`` of a diverging model returned NaN
    without a word. (A context in JAX's trace cache key, ``jax.make_user_context``, did the
    same but compiled every eager operation of a fit again: W4's compile 2.1 -> 2.6 s.)"""
    while hasattr(fn, "lower") and callable(getattr(fn, "__wrapped__", None)):
        fn = fn.__wrapped__
    return fn


def divergence_raises() -> bool:
    """False within `divergence_gives_nan`: whether `simulate` reports a diverged run."""
    return not _DIVERGENCE_GIVES_NAN.get()


def positive_ms(value: Any, name: str) -> float:
    """A time (a Quantity, or a number in ms) as a float in ms, refused unless it is
    positive and finite: a step ``dt`` of 0 never advances and a negative one runs time
    backwards, both without any other error."""
    ms = to_ms(value, name)
    if not (math.isfinite(ms) and ms > 0):
        raise ValueError(f"{name} must be positive and finite, got {ms} ms.")
    return ms


def python_number(value: Any) -> Any:
    """A NumPy scalar (``np.float32(1.0)``, ``np.int64(2)``) as the Python number it holds,
    anything else unchanged, for a static setting that its check reads with
    ``isinstance(value, int | float)``: a value taken from a NumPy array, or from
    ``np.arange``, was refused as "not a number". A NumPy bool stays as it is (a bool is
    no count)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def refuse_non_finite(label: str, value: Any, fix: str) -> None:
    """Raise ``ValueError`` if a concrete numeric ``value`` holds NaN or inf, naming ``label``,
    how many values are bad and the first bad index (traced values are not checked, see
    `checked_finite`): ``"<label> holds NaN or inf (2 of 16 values, first at index [i, j]);
    <fix>."``."""
    if value is None or is_traced(value):
        return
    # NumPy, not jnp: under a trace jnp stages even a check of concrete values.
    bad = ~np.isfinite(np.asarray(value))
    if bad.any():
        where = f" ({int(bad.sum())} of {bad.size} values, first at index {np.argwhere(bad)[0].tolist()})" if bad.ndim else ""
        raise ValueError(f"{label} holds NaN or inf{where}; {fix}.")


def checked_finite(label: str, value: Any, fix: str) -> Any:
    """``value``, refused if it holds NaN or inf: eagerly (`refuse_non_finite`) where it is
    known, when the run reads it (`checked_as_run_starts`, the same message) where it is
    traced; a NaN initial state or input was otherwise reported as a divergence at the
    first step, blaming ``dt``. A constant ``value`` is returned as it is (no operation
    added to a compiled run)."""
    if is_traced(value):
        return checked_as_run_starts(value, ~jnp.isfinite(value), f"{label} holds NaN or inf", fix)
    refuse_non_finite(label, value, fix)
    return value


def whole_steps(
    ms: float,
    dt_ms: float,
    name: str,
    inexact: str = "error",
    *,
    dt_name: str = "dt",
    fix: str | None = None,
    action: str = "using",
    at_least_one: bool = False,
) -> int:
    """A time of ``ms`` as a number of steps of ``dt_ms`` (``name`` / ``dt_name`` label them
    in messages). A time that is not a whole number of steps (to 1e-6) is:

    - ``'error'``: refused, with ``fix`` (default: give a multiple of ``dt_name``); a
      sampling period of 0.25 ms at dt = 0.1 ms silently became 0.2 or 0.3 ms;
    - ``'floor'``: floored, with a warning (a duration or a transient: the run ends early);
    - ``'nearest'``: rounded to the nearest count, with a warning (a monitor's period, which
      TVB and brainmass round silently);
    - ``'round'``: rounded silently, where the count changes nothing computed.

    With ``at_least_one``, a time shorter than one step is refused.
    """
    ratio = ms / dt_ms
    if at_least_one and ratio < 1 - 1e-6:
        raise ValueError(
            f"{name} = {ms:g} ms is shorter than {dt_name} = {dt_ms:g} ms; make {name} at least one {dt_name} long."
        )
    n = round(ratio)
    if abs(ratio - n) <= 1e-6 * max(1.0, abs(ratio)) or inexact == "round":
        return int(n)
    inexact_text = f"{name} = {ms:g} ms is not a whole number of steps of {dt_name} = {dt_ms:g} ms ({ratio:.6g} steps)"
    if inexact == "error":
        raise ValueError(f"{inexact_text}; {fix or f'give a multiple of {dt_name}'}.")
    if inexact == "floor":
        n = math.floor(ratio)
    elif inexact != "nearest":
        raise ValueError(f"inexact must be 'error', 'floor', 'nearest' or 'round', got {inexact!r}.")
    warnings.warn(
        f"{inexact_text}; {action} {n} steps ({n * dt_ms:.6g} ms).", UserWarning, stacklevel=user_stacklevel()
    )
    return int(n)


def is_signal(x: Any) -> bool:
    """Whether ``x`` is a data set's `Signal` (imported here, late: the data types import
    the modules that ask)."""
    from .datasets import Signal

    return isinstance(x, Signal)


def pick_variable_hint(trajectory: Any) -> str:
    """How to take one array from a `Trajectory`: ``"e.g. traj['x'] (recorded: ['x', 'y'])"``."""
    names = list(trajectory.keys())
    return f"e.g. traj[{names[0]!r}] (recorded: {names})"


def series_of(value: Any, name: str) -> Any:
    """A `Signal`'s time series, anything else as it is; a `Trajectory` is refused, naming
    the variables to pick (its states and observables are separate arrays)."""
    from ._simulate import Trajectory

    if isinstance(value, Trajectory):
        raise TypeError(
            f"`{name}` is a Trajectory; pass one recorded variable, {pick_variable_hint(value)}, or "
            f"traj.signal({next(iter(value.keys()), 'x')!r}), which also carries its sample step."
        )
    return value.signal if is_signal(value) else value


def sampling_step(signal: Any, dt: Any, name: str = "signal") -> Any:
    """The sampling step of ``signal``: ``dt``, or a `Signal`'s own when ``dt`` is None;
    a concrete ``dt`` that differs from a Signal's own is refused (one of them is wrong),
    and one is required for anything else."""
    if is_signal(signal):
        if dt is None or is_traced(dt):
            return signal.dt if dt is None else dt
        given = to_ms(dt, "dt")
        if not math.isclose(given, signal.dt, rel_tol=1e-6):
            raise ValueError(
                f"dt = {given:g} ms differs from the Signal's own step ({signal.dt:g} ms); drop dt= to use the Signal's."
            )
        return dt
    if dt is None:
        raise TypeError(
            f"`dt` (the step of `{name}`: ms or a time Quantity) is required, unless `{name}` is a "
            "Signal, which carries its own (traj.signal('x') for a simulated variable: its step is "
            "dt * sample_every, not the solver's dt)."
        )
    return dt


def check_int(value: Any, name: str, minimum: int, *, hint: str = "") -> int:
    """``value`` as a Python ``int``, after checking that it is an integer >= ``minimum``.

    A ``bool`` is refused although Python counts it as an int: ``n_steps=True`` is a
    mistake, not a request for one step. NumPy integers are accepted.

    **Arguments:**

    - `value`: the user's argument.
    - `name`: how the message names it (the argument's name, optionally with a prefix such
      as ``"ensemble: threads"``).
    - `minimum`: the smallest value allowed.
    - `hint`: text after the requirement, e.g. ``" (or None for one per CPU core)"``.

    **Raises:** `TypeError` when `value` is not an integer, `ValueError` when it is below
    `minimum`; both say ``"<name> must be an int >= <minimum><hint>, got <value>."``.
    """
    message = f"{name} must be an int >= {minimum}{hint}, got {value!r}."
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if is_quantity(value):
            # A window or a period given as a time where a count of samples is expected.
            message = (
                f"{name} must be an int >= {minimum}{hint}: a count (of samples or steps), not "
                f"a Quantity; got {np.asarray(value.value)} {value.unit}. For a time, divide it by the "
                "sampling step and round."
            )
        raise TypeError(message)
    if value < minimum:
        raise ValueError(message)
    return int(value)


def check_objective(value: Any, name: str, module: ModuleType, builders: Iterable[str]) -> Callable:
    """``value`` after checking that it is an objective ``fn(prediction, target)``.

    The builders of ``module`` (``fc_corr``, ``timeseries_rmse``, ...) are callables too, so
    passing ``objectives.fc_corr`` instead of ``objectives.fc_corr()`` would only fail deep
    inside the first loss evaluation, with an error about the builder's own arguments
    (``window_size must be an int``, or too many positional arguments). It is refused here,
    and so is a builder's name given as a string.

    **Arguments:**

    - `value`: the user's argument.
    - `name`: how the message names it (``"objective"``, ``"weighted_objectives[1]"``).
    - `module`: the module of objective builders the user is expected to call.
    - `builders`: the names in `module` that build an objective.

    **Raises:** `TypeError` naming the argument and the call to write instead.
    """
    builders = tuple(builders)
    where = module.__name__
    for builder in builders:
        if value is getattr(module, builder):
            raise TypeError(
                f"{name} is the builder {where}.{builder}, not an objective: call it, "
                f"{where}.{builder}() (with its options, if any)."
            )
    if isinstance(value, str):
        hint = f" Did you mean {where}.{value}()?" if value in builders else ""
        raise TypeError(
            f"{name} must be an objective function fn(prediction, target), got the string "
            f"{value!r}.{hint} The builders are {where}.{', '.join(builders)}."
        )
    if not callable(value):
        raise TypeError(
            f"{name} must be an objective function fn(prediction, target), got "
            f"{type(value).__name__}; build one with {where}, e.g. {where}.{builders[0]}()."
        )
    return value


def keyword_names(fn: Callable) -> tuple[str, ...] | None:
    """The names ``fn`` accepts as keyword arguments, in order (``self`` excluded); None if
    it takes any (``**kwargs``) or has no signature to read, so that the call decides."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self")


def close_names(name: str, names: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` valid names close to a misspelt ``name``, closest first. Matching
    ignores case (``tau_e`` finds ``tau_E`` before ``tau_I``) and returns the valid names'
    own spelling."""
    by_lower = {valid.lower(): valid for valid in names}
    return [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)]


def closest_name(name: str, names: Iterable[str]) -> str | None:
    """The valid name closest to a misspelt ``name`` (see `close_names`), or None."""
    close = close_names(name, names)
    return close[0] if close else None


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for a misspelt ``name`` with a close valid one (see
    `closest_name`), else ``""``: the hint to put after the name in an error message."""
    close = closest_name(name, names) if isinstance(name, str) else None
    return f" (did you mean {close!r}?)" if close else ""


def key_mismatch(given: Iterable[str], expected: Iterable[str]) -> str | None:
    """``"missing [...], unknown [...]"`` (with the closest expected name for the first
    unknown one) when the names ``given`` are not exactly those ``expected``, else None:
    the end of the message for a dict that must hold one entry per state."""
    given, expected = list(given), list(expected)
    missing = [n for n in expected if n not in given]
    unknown = [n for n in given if n not in expected]
    if not (missing or unknown):
        return None
    hint = did_you_mean(unknown[0], missing) if unknown and missing else ""
    return f"missing {missing}, unknown {unknown}{hint}"


def check_keywords(
    name: str,
    kwargs: Mapping[str, Any],
    names: tuple[str, ...] | None,
    aliases: Mapping[str, str] | None = None,
    elsewhere: Mapping[str, str] | None = None,
) -> None:
    """Refuse a keyword ``name(...)`` does not take, naming the closest valid one and all
    of them (Python's own message names only the unexpected one). Matching ignores case
    (``TR`` is ``tr``) but the suggestion keeps the right case (``tau_e`` is ``tau_E``).

    **Arguments:**

    - `name`: how the message names the callable (``"simulate"``, a class's name).
    - `kwargs`: the keywords of the call.
    - `names`: the keywords it takes (`keyword_names`); None accepts any.
    - `aliases`: other libraries' names for them, ``{name: "speed (TVB's conduction_speed)"}``:
      what the message suggests for such a name.
    - `elsewhere`: keywords that belong to a companion call, ``{name: "Fitter(model, ...,
      callbacks=...)"}``: the message says where such a keyword goes (a `Fitter`'s
      ``callbacks`` given to ``fit``, its ``patience`` given to ``Fitter``).

    **Raises:** `TypeError` ``"<name>() got an unexpected keyword argument 'x' (did you
    mean 'y'?). <name> takes: ..."``.
    """
    if names is None:
        return
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        alias = (aliases or {}).get(unknown[0])
        home = (elsewhere or {}).get(unknown[0])
        if home:
            hint = f" (it belongs to {home}, not to {name}())"
        else:
            hint = f" (it is {alias} here)" if alias else did_you_mean(unknown[0], names)
        raise TypeError(
            f"{name}() got an unexpected keyword argument {unknown[0]!r}{hint}. {name} takes: {', '.join(names)}."
        )


def suggests_keywords(
    fn: Callable | None = None,
    *,
    forwards_to: Callable | None = None,
    aliases: Mapping[str, str] | None = None,
    elsewhere: Mapping[str, str] | None = None,
) -> Callable:
    """Decorate ``fn`` so that a misspelt keyword is refused by `check_keywords` (with the
    closest valid name) before the call. ``forwards_to``: the function that ``fn``'s
    ``**kwargs`` are passed to, whose keywords are valid too; ``aliases``: other
    libraries' names for its keywords; ``elsewhere``: keywords of a companion call, and
    where they go (see `check_keywords`)."""
    if fn is None:
        return functools.partial(suggests_keywords, forwards_to=forwards_to, aliases=aliases, elsewhere=elsewhere)
    if forwards_to is None:
        names = keyword_names(fn)
    else:
        params = inspect.signature(fn).parameters.values()
        own = tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        forwarded = keyword_names(forwards_to)
        names = None if forwarded is None else own + tuple(n for n in forwarded if n not in own)
    label = fn.__qualname__.replace(".__init__", "")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        check_keywords(label, kwargs, names, aliases, elsewhere)
        return fn(*args, **kwargs)

    return wrapper


def user_stacklevel() -> int:
    """The ``stacklevel`` for `warnings.warn` that points at the user's line: the first
    caller outside this package, equinox (whose module machinery sits between a user's
    ``Network(...)`` and its ``__init__``) and jax, counted from the function that warns."""
    import equinox

    # jax too: an objective that maps another with jax.vmap (group_mean) warned from
    # jax/_src/interpreters/batching.py instead of the user's line.
    # (os.sep ends each folder, or jax's would cover jaxtyping's and jaxlib's.)
    ours = tuple(
        os.path.join(os.path.dirname(os.path.abspath(path)), "") for path in (__file__, equinox.__file__, jax.__file__)
    )
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(ours):
        frame, level = frame.f_back, level + 1
    return level
