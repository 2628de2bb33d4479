"""``brainunit.math``: NumPy-like functions that know about units.

Each function follows one of brainunit's unit rules, and each rule is one table entry
applied to the ``jax.numpy`` function by `_unit_rule` (no hand-written function per name):

- **keep**: the result has the unit of the first argument (``sum``, ``mean``, ``reshape``,
  ``diff``, ``percentile``, ``round``, ...). Arguments compared or combined with it
  (``clip``'s bounds, ``diff``'s ``prepend``, ``maximum``'s second argument) must have the
  same dimension and are converted to its unit first: ``clip(x_ms, 0.0015 * u.second,
  2.5 * u.ms)`` clips at 1.5 ms. ``unique`` and ``histogram`` keep it for the values (edges)
  only: their indices and counts are plain arrays.
- **creation**: ``linspace``, ``arange``, ``full``, ``full_like`` take the unit of their
  Quantity arguments (``linspace(0 * u.ms, 10 * u.ms, 5)`` is ``[0. 2.5 5. 7.5 10.] ms``).
- **power** / **product** / **quotient**: ``var``, ``sqrt``, ``square`` raise the unit to a
  power (``var`` of ms is ms²); ``dot``, ``matmul``, ``outer``, ``einsum``, ``multiply``
  multiply the units of their operands; ``divide`` divides them.
- **unitless**: the arguments are compared in a common unit and the result is a plain
  array: ``allclose``, ``isclose``, ``equal``, ``searchsorted`` (after converting to the
  first argument's unit, so ``allclose(1 * u.second, 1000 * u.ms)`` is True), ``argmax``,
  ``argsort``, ``sign``, ``isnan``, ...
- **dimensionless**: ``exp``, ``log``, ``sin``, ... need a dimensionless argument.

A plain number next to a Quantity of another dimension raises `UnitMismatchError` naming the
function and both arguments, as brainunit does; a plain ``0`` is accepted (zero is zero in
every unit). Dimensionless quantities are treated as plain numbers, and dimensionless
results are plain arrays (brainunit's convention).

Plain arrays go straight to ``jax.numpy`` (every wrapper's first check), so unit-free code
gets exactly ``jax.numpy``'s results and errors. Every other ``jax.numpy`` function is
available here too, for plain arrays; given a dimensionful Quantity it raises a `TypeError`
naming the function, instead of JAX's ``requires ndarray or scalar arguments``: strip the
unit first with ``q.to_decimal(unit)`` (or ``q.mantissa``).
"""

from __future__ import annotations

import builtins
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import unxt

from ...models._math import exprel as _exprel
from . import (
    Quantity,
    Unit,
    UnitMismatchError,
    _brief,
    _decimal_hint,
    _in,
    _is_dimensionless,
    _is_zero,
    _unit_name,
    maybe_decimal,
)

# -- the mechanism -----------------------------------------------------------------------------


def _is_quantity(x: Any) -> bool:
    return isinstance(x, unxt.AbstractQuantity)


def _has_quantity(tree: Any) -> bool:
    # builtins.any: this module's own ``any`` is jax.numpy's
    return builtins.any(_is_quantity(leaf) for leaf in jax.tree_util.tree_leaves(tree, is_leaf=_is_quantity))


def _first_quantity(tree: Any) -> Any:
    return next(leaf for leaf in jax.tree_util.tree_leaves(tree, is_leaf=_is_quantity) if _is_quantity(leaf))


def _drop_dimensionless(tree: Any) -> Any:
    """Dimensionless quantities as plain arrays (brainunit accepts them wherever a number goes)."""

    def drop(x):
        return maybe_decimal(x) if _is_quantity(x) and _is_dimensionless(x.unit) else x

    return jax.tree_util.tree_map(drop, tree, is_leaf=_is_quantity)




def _wrap(value: Any, unit: Any) -> Any:
    return value if unit is None else maybe_decimal(Quantity(value, unit))


def _unsupported(name: str, what: str, q: Any) -> TypeError:
    return TypeError(
        f"brainunit.math.{name}: {what} is a Quantity ({_brief(q)}), and the compat facade's {name} "
        f"does not support Quantities (brainunit's unit rule for it is not reproduced). Strip the unit "
        f"first, e.g. {_decimal_hint(q.unit)} or q.mantissa, and attach the result's unit yourself."
    )


class _Call:
    """One call's arguments bound to the ``jax.numpy`` signature, addressed by reference.

    A reference is a parameter name (``"prepend"``), a position (``1``: the second
    positional parameter, or an element of ``*args`` for ``jnp.add``-style ufuncs), ``"*"``
    (every element of ``*args``: ``einsum``'s operands) or a name or position followed by
    ``[]`` (every element of a sequence argument: ``concatenate``'s arrays).
    """

    def __init__(self, fname: str, sig: inspect.Signature, args: tuple, kwargs: dict):
        self.fname = fname
        self.bound = sig.bind(*args, **kwargs)
        params = list(sig.parameters.values())
        self.positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self.var = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
        if self.var in self.bound.arguments:
            self.bound.arguments[self.var] = list(self.bound.arguments[self.var])

    def _name(self, ref: int | str) -> Any:
        if isinstance(ref, str) and ref.isdigit():
            ref = int(ref)
        if not isinstance(ref, int):
            return ref
        if ref < len(self.positional):
            return self.positional[ref]
        return (self.var, ref - len(self.positional)) if self.var is not None else None

    def keys(self, ref: Any) -> list:
        if isinstance(ref, tuple):
            return [ref]
        if ref == "*":
            return [(self.var, i) for i in range(len(self.bound.arguments.get(self.var, ())))]
        if isinstance(ref, str) and ref.endswith("[]"):
            name = self._name(ref[:-2])
            seq = self.get(name)
            if not isinstance(seq, (list, tuple)):
                return [name]
            self.set(name, list(seq))
            return [(name, i) for i in range(len(seq))]
        name = self._name(ref)
        return [] if name is None else [name]

    def get(self, key: Any) -> Any:
        args = self.bound.arguments
        if isinstance(key, tuple):
            name, i = key
            seq = args.get(name, ())
            return seq[i] if i < len(seq) else None
        return args.get(key)

    def set(self, key: Any, value: Any) -> None:
        if isinstance(key, tuple):
            self.bound.arguments[key[0]][key[1]] = value
        else:
            self.bound.arguments[key] = value

    def label(self, key: Any) -> str:
        if isinstance(key, tuple):
            name, i = key
            if name == self.var:
                return f"argument {len(self.positional) + i + 1}"
            return f"{name}[{i}]"
        return key

    def unify(self, group: Sequence) -> Any:
        """Convert the group's quantities to the unit of its first one; that unit (None if
        the group holds no Quantity)."""
        members = [(k, self.get(k)) for ref in group for k in self.keys(ref)]
        members = [(k, v) for k, v in members if v is not None and not isinstance(v, str)]
        first = next(((k, v) for k, v in members if _is_quantity(v)), None)
        if first is None:
            return None
        first_key, first_value = first
        unit = first_value.unit
        for k, v in members:
            if _is_quantity(v):
                if v.unit.physical_type != unit.physical_type:
                    raise UnitMismatchError(
                        f"brainunit.math.{self.fname}: {self.label(k)} is {_brief(v)} but {self.label(first_key)} is "
                        f"{_brief(first_value)}; their units must have the same dimension "
                        f"({_unit_name(v.unit)} != {_unit_name(unit)})."
                    )
                self.set(k, _in(v, unit))
            elif not _is_zero(v):
                raise UnitMismatchError(
                    f"brainunit.math.{self.fname}: {self.label(k)} is a plain number ({_brief(v)}) but "
                    f"{self.label(first_key)} is {_brief(first_value)}; give it a unit "
                    f"(e.g. `{self.label(k)} * u.{_unit_name(unit)}`) or strip the unit from both."
                )
        return unit

    def check_plain(self) -> None:
        """The arguments no rule converted must be plain: name the first that is not."""
        for name, value in self.bound.arguments.items():
            if _has_quantity(value):
                raise _unsupported(self.fname, f"argument {name!r}", _first_quantity(value))

    def __call__(self, fn: Callable) -> Any:
        return fn(*self.bound.args, **self.bound.kwargs)


def _attach(out: Any, unit: Any) -> Any:
    """``out`` with ``unit`` (one per output when ``unit`` is a tuple: ``histogram``)."""
    if unit is None:
        return out
    if isinstance(unit, tuple):
        return tuple(_attach(o, un) for o, un in zip(out, unit))
    if isinstance(out, (tuple, list)):
        return type(out)(_attach(o, unit) for o in out)
    return _wrap(out, unit)


#: brainunit's keyword names where they differ from ``jax.numpy``'s: function -> {brainunit's
#: name: jax.numpy's name, or the position of an argument jax.numpy takes positionally only}.
_BRAINUNIT_KEYWORDS: dict[str, dict[str, str | int]] = {
    **{name: {"x": "a"} for name in (
        "all", "any", "around", "average", "cumsum", "diff", "histogram", "mean", "median", "nancumsum",
        "nanmax", "nanmean", "nanmedian", "nanmin", "nanstd", "nansum", "nanvar", "ptp", "round", "std", "sum")},
    **{name: {"x": "a", "y": "b"} for name in ("allclose", "isclose")},
    **{name: {"x": "x1", "y": "x2"} for name in ("divide", "floor_divide", "power", "remainder", "true_divide")},
    **{name: {"x": 0, "y": 1} for name in ("add", "subtract", "multiply")},
    **{name: {"x1": 0, "x2": 1} for name in ("maximum", "minimum")},
    **{name: {"a": "ary"} for name in ("dsplit", "hsplit", "split", "vsplit")},
    **{name: {"arrays": "tup"} for name in ("dstack", "hstack")},
    **{name: {"x": "val"} for name in ("imag", "real")},
    **{name: {"a": "x"} for name in ("isfinite", "isinf", "isnan")},
    "array_equal": {"x": "a1", "y": "a2"},
    "clip": {"a": "arr", "a_min": "min", "a_max": "max"},
    "ediff1d": {"x": "ary"},
    "negative": {"x": 0},
    "unique": {"a": "ar"},
}  # fmt: skip


def _positional_only_as_positions() -> None:
    # jax.numpy takes some of these positionally only (``isnan(x, /)``): pass them so.
    for name, renames in _BRAINUNIT_KEYWORDS.items():
        fn = getattr(jnp, name, None)
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):  # a ufunc object: its table entries are positions already
            continue
        for theirs, ours in renames.items():
            index = next((i for i, p in enumerate(params) if p.name == ours), None)
            if index is not None and params[index].kind is inspect.Parameter.POSITIONAL_ONLY:
                renames[theirs] = index


_positional_only_as_positions()


def _brainunit_keywords(name: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``args, kwargs`` with brainunit's keyword names (``sum(x=...)``, ``clip(a_min=...)``)
    as ``jax.numpy``'s."""
    renames = _BRAINUNIT_KEYWORDS.get(name)
    if not renames or not kwargs.keys() & renames.keys():
        return args, kwargs
    kwargs = dict(kwargs)
    positional = {}
    for theirs, ours in renames.items():
        if theirs not in kwargs:
            continue
        if isinstance(ours, int):
            positional[ours] = kwargs.pop(theirs)
        elif ours in kwargs:
            raise TypeError(f"brainunit.math.{name}() got both {theirs!r} and {ours!r}: they are one argument.")
        else:
            kwargs[ours] = kwargs.pop(theirs)
    args = list(args)
    for position in sorted(positional):
        if position != len(args):
            raise TypeError(f"brainunit.math.{name}() got argument {position + 1} both by position and by keyword.")
        args.append(positional[position])
    return tuple(args), kwargs


def _unit_rule(name: str, fn: Callable, groups: Any = ((0,),), result: Callable = None) -> Callable:
    """``fn`` with a unit rule: the arguments in each group of ``groups`` must agree in
    dimension and are converted to the group's first unit; ``result(units, call)`` gives the
    result's unit from the groups' units (None: plain). ``groups`` may also be a callable of
    the `_Call` (``einsum``: one group per operand). Without any Quantity, ``fn`` is called
    as it is."""
    result = _keep if result is None else result
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args, kwargs = _brainunit_keywords(name, args, kwargs)
        if not _has_quantity((args, kwargs)):
            return fn(*args, **kwargs)
        args, kwargs = _drop_dimensionless((args, kwargs))
        try:
            call = _Call(name, sig, args, kwargs)
        except TypeError:  # a wrong call: let jax.numpy say so
            return fn(*args, **kwargs)
        units = [call.unify(group) for group in (groups(call) if callable(groups) else groups)]
        call.check_plain()
        unit = result(units, call)
        return _attach(call(fn), unit)

    module = getattr(fn, "__module__", None) or ""
    public = "jax.nn" if module.startswith("jax._src.nn") else module
    source = f"``{public}.{name}``" if public.startswith("jax") else f"``{name}``"
    wrapped.__doc__ = f"{source} with brainunit's unit rule ({result.__doc__}).\n\n{fn.__doc__ or ''}"
    return _with_ufunc_methods(wrapped, name, fn)


def _plain_only(name: str, fn: Callable) -> Callable:
    """A ``jax.numpy`` function the facade gives no unit rule: plain arrays pass, a
    dimensionful Quantity is refused with a message naming the function."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args, kwargs = _brainunit_keywords(name, args, kwargs)
        if _has_quantity((args, kwargs)):
            args, kwargs = _drop_dimensionless((args, kwargs))
            if _has_quantity((args, kwargs)):
                raise _unsupported(name, "an argument", _first_quantity((args, kwargs)))
        return fn(*args, **kwargs)

    return _with_ufunc_methods(wrapped, name, fn)


def _with_ufunc_methods(wrapped: Callable, name: str, fn: Callable) -> Callable:
    """Keep a ufunc's ``reduce``/``outer``/... (``u.math.add.reduce``), for plain arrays."""
    if isinstance(fn, jnp.ufunc):
        for attr in ("reduce", "accumulate", "reduceat", "outer", "at"):
            setattr(wrapped, attr, _plain_only(f"{name}.{attr}", getattr(fn, attr)))
        for attr in ("nin", "nout", "nargs", "identity"):
            setattr(wrapped, attr, getattr(fn, attr))
    return wrapped


# -- result rules --------------------------------------------------------------------------------


def _keep(units, call):
    """the first argument's unit"""
    return units[0]


def _unitless(units, call):
    """a plain array"""
    return None


def _dimensionless_only(units, call):
    """a dimensionless argument, a plain result"""
    if units[0] is not None:
        name = call.positional[0] if call.positional else "argument 1"
        raise UnitMismatchError(
            f"{call.fname} requires a dimensionless argument, got unit {_unit_name(units[0])} ({name}); "
            f"divide by a unit first (e.g. {call.fname}(x / u.{_unit_name(units[0])}))."
        )
    return None


def _power(p: float) -> Callable:
    def rule(units, call):
        return None if units[0] is None else units[0] ** p

    rule.__doc__ = f"the first argument's unit to the power {p:g}"
    return rule


def _power_of_exponent(units, call):
    """the first argument's unit to the power of the second"""
    if units[0] is None:
        return None
    p = call.get(call.keys(1)[0])
    if isinstance(p, jax.core.Tracer) or np.ndim(p) != 0:
        raise TypeError(f"brainunit.math.power: the exponent of a Quantity must be a concrete number, got {_brief(p)}.")
    return units[0] ** float(p)


def _product(units, call):
    """the product of the operands' units"""
    out = None
    for unit in units:
        if unit is not None:
            out = unit if out is None else out * unit
    return out


def _quotient(units, call):
    """the first argument's unit over the second's"""
    num, den = units[0], units[1]
    if num is None and den is None:
        return None
    return (num if num is not None else unxt.unit("")) / (den if den is not None else unxt.unit(""))


def _second(units, call):
    """the unit of the values (``fp``)"""
    return units[1]


def _counts_and_edges(units, call):
    """plain counts, edges in the data's unit"""
    return None if units[0] is None else (None, units[0])


def _unique(units, call):
    """the values in the data's unit; indices, inverse and counts plain"""
    if units[0] is None:
        return None
    # (len, not sum: this module's sum is the unit-aware one)
    extra = len([k for k in ("return_index", "return_inverse", "return_counts") if call.bound.arguments.get(k)])
    return (units[0],) + (None,) * extra if extra else units[0]


def _each_operand(call):
    return [(key,) for key in call.keys("*")]


# -- the table -----------------------------------------------------------------------------------

#: name -> (groups, result rule). Checked against brainunit 0.1 (saiunit) on the same inputs.
_RULES: dict[str, tuple[Any, Callable]] = {}

_KEEP = (
    "expand_dims", "squeeze", "reshape", "transpose", "ravel", "flip", "fliplr", "flipud", "roll", "rot90",
    "tile", "repeat", "sum", "nansum", "mean", "nanmean", "median", "nanmedian", "max", "min", "amax", "amin",
    "nanmax", "nanmin", "ptp", "std", "nanstd", "abs", "absolute", "fabs", "negative", "positive", "cumsum",
    "nancumsum", "sort", "diag", "diagonal", "diagflat", "trace", "take", "real", "imag", "conj", "conjugate",
    "moveaxis", "swapaxes", "atleast_1d", "atleast_2d", "atleast_3d", "triu", "tril", "broadcast_to",
    "zeros_like", "ones_like", "empty_like", "round", "around", "rint", "floor", "ceil", "trunc",
    "percentile", "nanpercentile", "quantile", "nanquantile", "average", "split", "array_split", "hsplit",
    "vsplit", "dsplit", "ediff1d",
)  # fmt: skip
_RULES.update({name: (((0,),), _keep) for name in _KEEP})
_RULES.update({
    # the first argument's unit; the others listed are converted to it
    "clip": (((0, 1, 2),), _keep),
    "diff": (((0, "prepend", "append"),), _keep),
    "append": (((0, 1),), _keep),
    "nan_to_num": (((0, "nan", "posinf", "neginf"),), _keep),
    "maximum": (((0, 1),), _keep),
    "minimum": (((0, 1),), _keep),
    "fmax": (((0, 1),), _keep),
    "fmin": (((0, 1),), _keep),
    "add": (((0, 1),), _keep),
    "subtract": (((0, 1),), _keep),
    "remainder": (((0, 1),), _keep),
    "mod": (((0, 1),), _keep),
    "fmod": (((0, 1),), _keep),
    "where": (((1, 2),), _keep),
    "concatenate": ((("0[]",),), _keep),
    "stack": ((("0[]",),), _keep),
    "vstack": ((("0[]",),), _keep),
    "hstack": ((("0[]",),), _keep),
    "dstack": ((("0[]",),), _keep),
    "column_stack": ((("0[]",),), _keep),
    # creation: the unit of the Quantity arguments
    "linspace": (((0, 1),), _keep),
    "arange": (((0, 1, 2),), _keep),
    "full": ((("fill_value",),), _keep),
    "full_like": (((0, "fill_value"),), _keep),
    # x and xp agree; the result is in fp's unit
    "interp": (((0, 1, "period"), (2, "left", "right")), _second),
    "histogram": (((0,),), _counts_and_edges),
    "unique": (((0,),), _unique),
    # powers, products, quotients
    "var": (((0,),), _power(2)),
    "nanvar": (((0,),), _power(2)),
    "square": (((0,),), _power(2)),
    "sqrt": (((0,),), _power(0.5)),
    "cbrt": (((0,),), _power(1 / 3)),
    "reciprocal": (((0,),), _power(-1)),
    "power": (((0,),), _power_of_exponent),
    "multiply": (((0,), (1,)), _product),
    "dot": (((0,), (1,)), _product),
    "vdot": (((0,), (1,)), _product),
    "inner": (((0,), (1,)), _product),
    "outer": (((0,), (1,)), _product),
    "matmul": (((0,), (1,)), _product),
    "kron": (((0,), (1,)), _product),
    "tensordot": (((0,), (1,)), _product),
    "cross": (((0,), (1,)), _product),
    "convolve": (((0,), (1,)), _product),
    "trapezoid": (((0,), (1, "dx")), _product),
    "einsum": (_each_operand, _product),
    "divide": (((0,), (1,)), _quotient),
    "true_divide": (((0,), (1,)), _quotient),
    "floor_divide": (((0,), (1,)), _quotient),
})  # fmt: skip
# plain results: compared in the first argument's unit, or unit-free by nature
for _name in ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "array_equal",
              "array_equiv", "searchsorted"):  # fmt: skip
    _RULES[_name] = (((0, 1),), _unitless)
for _name in ("allclose", "isclose"):
    _RULES[_name] = (((0, 1, "atol"),), _unitless)
for _name in ("argmax", "argmin", "nanargmax", "nanargmin", "argsort", "argwhere", "nonzero", "flatnonzero",
              "count_nonzero", "sign", "signbit", "isnan", "isinf", "isfinite", "shape", "ndim", "size", "all",
              "any"):  # fmt: skip
    _RULES[_name] = (((0,),), _unitless)
for _name in ("exp", "exp2", "log", "log2", "log10", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sinh", "cosh",
              "arctan", "arcsin", "arccos", "arcsinh", "arccosh", "arctanh", "sinc", "deg2rad", "rad2deg"):  # fmt: skip
    _RULES[_name] = (((0,),), _dimensionless_only)


for _name, (_groups, _result) in _RULES.items():
    if hasattr(jnp, _name):  # a name a later JAX removed stays absent here too
        globals()[_name] = _unit_rule(_name, getattr(jnp, _name), _groups, _result)


# -- functions with more than a unit rule ---------------------------------------------------------


def _creation(fn: Callable) -> Callable:
    """``fn`` with a ``unit=`` keyword (``u.math.zeros(3, unit=u.mV)``)."""

    @functools.wraps(fn)
    def wrapped(*args, unit: Any = None, **kwargs):
        out = fn(*args, **kwargs)
        if unit is None:
            return out
        return Quantity(out, unit.astropy if isinstance(unit, Unit) else unit)

    return wrapped


for _name in ("zeros", "ones", "eye", "identity", "empty"):
    globals()[_name] = _creation(_plain_only(_name, getattr(jnp, _name)))
for _name in ("full", "arange", "linspace"):
    globals()[_name] = _creation(globals()[_name])


def _check_unit_keyword(fn: Callable, keyword: str, unit: Any) -> None:
    if not isinstance(unit, Unit):
        raise TypeError(f"{fn.__name__}: {keyword} must be a brainunit Unit (e.g. u.mV), got {unit!r}.")


def _in_unit(fn: Callable) -> Callable:
    """``fn`` (a keep-the-unit rule) with brainunit's ``unit=`` keyword: a Quantity
    argument is converted to ``unit`` first, a plain one gets it (``u.math.diag(v,
    unit=u.mV)``)."""

    @functools.wraps(fn)
    def wrapped(first, *args, unit: Any = None, **kwargs):
        if unit is None:
            return fn(first, *args, **kwargs)
        _check_unit_keyword(fn, "unit", unit)
        if _is_quantity(first):
            return Quantity(fn(first, *args, **kwargs).to(unit.astropy).value, unit.astropy)
        return Quantity(fn(first, *args, **kwargs), unit.astropy)

    return wrapped


for _name in ("zeros_like", "ones_like", "empty_like", "diag", "tril", "triu"):
    globals()[_name] = _in_unit(globals()[_name])


def _scaled_by_unit(fn: Callable) -> Callable:
    """``fn`` (of a dimensionless argument) with brainunit's ``unit_to_scale=``: a Quantity
    argument is taken as its numbers in that unit (``u.math.exp(v, unit_to_scale=u.mV)``
    is ``exp(v / mV)``)."""

    @functools.wraps(fn)
    def wrapped(x, *args, unit_to_scale: Any = None, **kwargs):
        if unit_to_scale is None:
            return fn(x, *args, **kwargs)
        _check_unit_keyword(fn, "unit_to_scale", unit_to_scale)
        if not _is_quantity(x):
            raise TypeError(
                f"{fn.__name__}: unit_to_scale={unit_to_scale!r} is for a Quantity argument, got {_brief(x)}; "
                f"drop unit_to_scale for plain numbers."
            )
        return fn(x.to(unit_to_scale.astropy).value, *args, **kwargs)

    return wrapped


for _name in _RULES:
    if _RULES[_name][1] is _dimensionless_only and _name in globals():
        globals()[_name] = _scaled_by_unit(globals()[_name])

# jax.nn's activations, which brainunit.math has too: of a dimensionless argument.
for _name in ("celu", "elu", "gelu", "glu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "log_sigmoid",
              "mish", "relu6", "selu", "sigmoid", "silu", "soft_sign", "softplus", "sparse_plus", "sparse_sigmoid",
              "squareplus", "swish"):  # fmt: skip
    if hasattr(jax.nn, _name):
        globals()[_name] = _scaled_by_unit(_unit_rule(_name, getattr(jax.nn, _name), ((0,),), _dimensionless_only))
leaky_relu = _unit_rule("leaky_relu", jax.nn.leaky_relu, ((0,),), _keep)
exprel = _scaled_by_unit(_unit_rule("exprel", _exprel, ((0,),), _dimensionless_only))


def _flatten(x, start_axis=None, end_axis=None):
    """Axes ``start_axis..end_axis`` (all by default) merged into one."""
    x = jnp.asarray(x)
    if x.ndim == 0:
        return x.reshape(1)
    start = 0 if start_axis is None else start_axis % x.ndim
    end = x.ndim - 1 if end_axis is None else end_axis % x.ndim
    return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1 :])


def _unflatten(x, axis, sizes):
    """Axis ``axis`` split into ``sizes``."""
    x = jnp.asarray(x)
    axis = axis % x.ndim
    return x.reshape(x.shape[:axis] + tuple(sizes) + x.shape[axis + 1 :])


def _remove_diag(x):
    """An ``(n, n)`` matrix without its diagonal, ``(n, n - 1)``."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"remove_diag needs a square 2-D matrix, got shape {x.shape}.")
    n = x.shape[0]
    return x[~np.eye(n, dtype=bool)].reshape(n, n - 1)


flatten = _unit_rule("flatten", _flatten)
unflatten = _unit_rule("unflatten", _unflatten)
remove_diag = _unit_rule("remove_diag", _remove_diag)
# NumPy's older names, which brainunit keeps
fix = globals()["trunc"]
row_stack = globals()["vstack"]
alltrue = globals()["all"]
sometrue = globals()["any"]


# brainunit.math has these too
from . import get_dim, get_magnitude, get_mantissa, get_unit, is_unitless  # noqa: E402, F401


def is_quantity(x: Any) -> bool:
    """Whether ``x`` carries a unit."""
    return _is_quantity(x)


def get_dtype(a: Any):
    return jnp.result_type(a.value if _is_quantity(a) else a)


def is_float(array: Any) -> bool:
    return bool(jnp.issubdtype(get_dtype(array), jnp.floating))


def is_int(array: Any) -> bool:
    return bool(jnp.issubdtype(get_dtype(array), jnp.integer))


def asarray(a, dtype=None, order=None, unit: Any = None):
    """``a`` as an array, keeping its unit; a list of quantities becomes one Quantity in the
    first one's unit (``asarray([1 * u.ms, 2 * u.ms])``); ``unit=`` attaches a unit.
    ``order`` is accepted for NumPy's signature (JAX arrays have one layout)."""
    x = a
    if isinstance(x, Quantity):
        return Quantity(jnp.asarray(x.value, dtype=dtype), x.unit)
    if isinstance(x, (list, tuple)) and _has_quantity(x):
        out = globals()["stack"](list(x))
        return out if dtype is None else out.astype(dtype)
    out = jnp.asarray(x, dtype=dtype)
    return out if unit is None else Quantity(out, unit.astropy if isinstance(unit, Unit) else unit)


array = asarray


def relu(x):
    """``max(x, 0)``, keeping the unit."""
    return _wrap(jnp.maximum(x.value, 0.0), x.unit) if isinstance(x, Quantity) else jnp.maximum(x, 0.0)


def __getattr__(name: str):
    if name == "fft":
        from . import fft

        return fft
    if name in ("product", "cumproduct"):  # NumPy's older names, which brainunit keeps
        return globals()[name[:-3]] if name[:-3] in globals() else __getattr__(name[:-3])
    linalg = name in ("matrix_power", "multi_dot")
    try:
        obj = getattr(jnp.linalg if linalg else jnp, name)
    except AttributeError:
        raise AttributeError(f"module 'brainunit.math' has no attribute {name!r}") from None
    if callable(obj) and not isinstance(obj, type):
        obj = _plain_only(name, obj)
        globals()[name] = obj  # one wrapper per name
    return obj
