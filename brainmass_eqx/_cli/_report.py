"""Text output: aligned tables and short reports."""

from __future__ import annotations

import inspect
import textwrap
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


def describe(desc) -> str:
    """The text of ``brainmass-eqx models NAME``."""
    doc = inspect.cleandoc(desc.cls.__doc__ or "")
    lines = [f"{desc.name}" + (f"  (brainmass: {desc.brainmass_name})" if desc.brainmass_name else ""), ""]
    lines += [doc.strip(), ""]
    unit = lambda u: u if u else "1"
    lines.append("states:      " + ", ".join(f"{s} [{unit(u)}]" for s, u in desc.states.items()))
    lines.append("inputs:      " + ", ".join(f"{s} [{unit(u)}]" for s, u in desc.inputs.items()))
    lines.append(f"coupling:    input {desc.cls.coupling_input!r}")
    if desc.observables:
        lines.append("observables: " + ", ".join(desc.observables))
    lines.append("")
    rows = []
    for name, spec in desc.parameters.items():
        domain = spec["domain"]
        domain = domain if isinstance(domain, str) else f"[{domain[0]}, {domain[1]}]"
        rows.append((name, value_text(spec["default"]), unit(spec["unit"]), domain, spec["doc"]))
    lines.append(table(("parameter", "default", "unit", "domain", "meaning"), rows))
    lines += ["", "reference:", textwrap.fill(desc.reference, 92, initial_indent="  ", subsequent_indent="  ")]
    return "\n".join(lines)
