"""Every Python example in the README and the docs runs as printed.

A page's ```python blocks run in order in one namespace (later blocks use earlier names),
in a scratch directory. A statement may raise only where the page says so: the exception's
class name must appear in the statement's source or in the comment line right after it
(``bx.Hopf(0)  # ValueError: ...``); the rest of the block then runs on.
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    str(p.relative_to(ROOT))
    for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    if "```python" in p.read_text(encoding="utf-8")
)
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def test_pages_found():
    assert "README.md" in PAGES and "docs/getting-started.md" in PAGES


def _run_block(source: str, label: str, namespace: dict) -> None:
    lines = source.splitlines()
    for statement in ast.parse(source, filename=label).body:
        code = compile(ast.Module([statement], type_ignores=[]), label, "exec")
        try:
            exec(code, namespace)
        except Exception as err:  # noqa: BLE001 (checked against the page's own words)
            said = "\n".join(lines[statement.lineno - 1 : statement.end_lineno + 1])
            if type(err).__name__ not in said:
                raise AssertionError(f"{label}, line {statement.lineno}: {type(err).__name__}: {err}") from err


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, block in enumerate(_BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))):
            _run_block(block, f"{page} example {i + 1}", namespace)
    plt.close("all")
