"""Eager argument checks shared across the package."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_int"]


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
        raise TypeError(message)
    if value < minimum:
        raise ValueError(message)
    return int(value)
