"""`install`: make ``import brainmass`` (and brainstate, braintools, brainunit) load the facade."""

from __future__ import annotations

import sys
import types

__all__ = ["install", "uninstall"]

_SUBMODULES = {
    # brainmass's other submodules (noise, hopf, coupling, ...) come from compat._submodules
    "brainmass": ("datasets", "objectives", "viz"),
    "brainstate": ("environ", "random", "nn", "transform", "init"),
    "braintools": ("init", "optim", "metric", "file"),
    "brainunit": ("math", "fft"),
}
_SAVED: dict[str, types.ModuleType | None] = {}


def _modules() -> dict[str, types.ModuleType]:
    from .. import compat

    roots = {"brainmass": compat, "brainstate": compat.brainstate, "braintools": compat.braintools, "brainunit": compat.brainunit}
    subs = dict(_SUBMODULES, brainmass=_SUBMODULES["brainmass"] + tuple(compat._SUBMODULES))
    out = {}
    for name, module in roots.items():
        out[name] = module
        for sub in subs[name]:
            # sys.modules, not getattr: brainmass.list_models is both a function and a module
            out[f"{name}.{sub}"] = sys.modules[f"{module.__name__}.{sub}"]
    return out


def install() -> None:
    """Register the facade in ``sys.modules`` as ``brainmass``, ``brainstate``, ``braintools``
    and ``brainunit`` (and their submodules: ``brainmass.noise``, ``brainmass.hopf``, ...,
    ``brainstate.nn``, ``brainunit.math``), replacing any installed package
    of those names for this process. `uninstall` restores them."""
    for name, module in _modules().items():
        if name not in _SAVED:
            _SAVED[name] = sys.modules.get(name)
        sys.modules[name] = module


def uninstall() -> None:
    """Undo `install`."""
    for name, previous in _SAVED.items():
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
    _SAVED.clear()
