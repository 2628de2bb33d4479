"""Plain-text formatting shared by the command line and the model catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int | None = None) -> str:
    """An aligned plain-text table; the last column is cut to ``max_width`` characters."""
    rows = [[str(c) for c in r] for r in rows]
    if max_width is not None:
        rows = [r[:-1] + [r[-1] if len(r[-1]) <= max_width else r[-1][: max_width - 3] + "..."] for r in rows]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    fmt = "  ".join("{:<" + str(w) + "}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*("-" * w for w in widths)).rstrip()]
    lines += [fmt.format(*r).rstrip() for r in rows]
    return "\n".join(lines)


def value_text(value: Any) -> str:
    """A parameter value for display: numbers with 4 significant digits."""
    value = getattr(value, "value", value)  # a Param
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return str(value)
    if arr.ndim == 0:
        return f"{float(arr):.4g}"
    if arr.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in arr.ravel()) + "]"
    return f"array{arr.shape} mean {arr.mean():.4g}"
