"""brainunit's argument checks: ``@check_units(x=u.mV, result=u.mV)`` and
``@check_dims(x=u.mV.dim)``.

Each keyword names an argument of the decorated function (``result``: its return value)
and what it must be: a unit (`check_units`: that unit exactly, ``3 V`` is not ``mV``) or a
dimension (`check_dims`: any unit of it), ``bool`` (a boolean), ``None`` (no check), or the
name of another argument whose unit (dimension) it must share.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["check_units", "check_dims"]


def _brief(value: Any) -> str:
    from . import Quantity

    return str(value) if isinstance(value, Quantity) else f"{np.asarray(value)}"


def _checked(kind: str, specs: dict[str, Any]) -> Callable[[Callable], Callable]:
    """The decorator of `check_units` (``kind='unit'``) or `check_dims` (``'dimension'``)."""
    from . import DimensionMismatchError, UnitMismatchError, from_core, get_unit

    error = UnitMismatchError if kind == "unit" else DimensionMismatchError

    def of(value: Any):
        unit = get_unit(from_core(value))
        return unit if kind == "unit" else unit.dim

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        unknown = [name for name in specs if name != "result" and name not in signature.parameters]
        if unknown:
            raise TypeError(
                f"check_{kind}s: {fn.__name__} has no argument(s) {unknown}; its arguments are "
                f"{list(signature.parameters)} (and 'result' for the return value)."
            )

        def check(name: str, value: Any, spec: Any, bound: dict[str, Any]) -> None:
            if spec is None:
                return
            if spec is bool:
                if not isinstance(value, (bool, np.bool_)):
                    raise TypeError(f"Function '{fn.__name__}' expected a boolean value for argument '{name}' but got '{_brief(value)}'")
                return
            if isinstance(spec, str):
                if spec not in bound:
                    raise TypeError(f"check_{kind}s: argument '{name}' refers to '{spec}', which is not an argument of '{fn.__name__}'.")
                if of(value) != of(bound[spec]):
                    raise error(
                        f"Function '{fn.__name__}' expected the argument '{name}' to have the same {kind}s as argument "
                        f"'{spec}', but argument '{name}' has {kind} {of(value)}, while argument '{spec}' has {kind} "
                        f"{of(bound[spec])}."
                    )
                return
            if of(value) == spec:
                return
            if name == "result":
                raise error(
                    f"The return value of function '{fn.__name__}' was expected to have {kind} {spec} but got "
                    f"{kind} {of(value)} (value: {_brief(value)})."
                )
            raise error(
                f"Function '{fn.__name__}' expected a value with {kind} {spec} for argument '{name}' but got "
                f"'{_brief(value)}' ({kind} is {of(value)})."
            )

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, spec in specs.items():
                if name != "result":
                    check(name, bound.arguments[name], spec, bound.arguments)
            out = fn(*args, **kwargs)
            if "result" in specs:
                check("result", out, specs["result"], bound.arguments)
            return out

        return wrapped

    return decorate


def check_units(**units: Any) -> Callable[[Callable], Callable]:
    """A decorator checking the units of the named arguments (and ``result``) at each call;
    `UnitMismatchError` names the function, the argument and both units."""
    return _checked("unit", units)


def check_dims(**dims: Any) -> Callable[[Callable], Callable]:
    """A decorator checking the dimensions of the named arguments (and ``result``) at each
    call; `DimensionMismatchError` names the function, the argument and both dimensions."""
    return _checked("dimension", dims)
