"""Every Python example in the README and the docs runs as printed.

A page's ```python blocks run in order in one namespace (later blocks use earlier names),
in a scratch directory, in a fresh interpreter: pages change process-wide settings (64-bit
floats, the native kernels, the compat facade's modules) as a reader would. A statement may
raise only where the page says so: the exception's class name must appear in the
statement's source or in the comment line right after it (``bx.Hopf(0)  # ValueError:
...``); the rest of the block then runs on.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "docs").is_dir():  # tests/ copied out of the checkout, run on an installed package
    pytest.skip(f"needs the docs/ next to tests/ ({ROOT / 'docs'} is missing)", allow_module_level=True)
PAGES = sorted(
    str(p.relative_to(ROOT))
    for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    if "```python" in p.read_text(encoding="utf-8")
)
_BLOCK = re.compile(r"(<!-- slow[^\n]*-->\n)?```python\n(.*?)```", re.S)
# `<!-- slow: why -->` on the line before a block (invisible on the rendered page) keeps
# that block out of the default run: a page's longest computation runs in the slow run
# (`pytest -m slow`, the nightly), with the rest of its page.
_SLOW_TAG = re.compile(r"^<!-- slow", re.M)  # at a line's start: prose may name the tag


def _blocks(page: str, slow: bool = True) -> list[str]:
    """The sources of `page`'s ```python blocks, in order; without `slow`, not those tagged slow."""
    found = _BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))
    return [source for tag, source in found if slow or not tag]


SLOW_PAGES = [p for p in PAGES if _SLOW_TAG.search((ROOT / p).read_text(encoding="utf-8"))]


def test_pages_found():
    assert "README.md" in PAGES and "docs/getting-started.md" in PAGES
    assert "docs/howto/fitting.md" in SLOW_PAGES


@pytest.mark.parametrize("page", SLOW_PAGES)
def test_every_slow_tag_is_on_a_block(page):
    """A tag that is not on the line right before a block would leave that block in the
    default run, unnoticed."""
    text = (ROOT / page).read_text(encoding="utf-8")
    assert len(_SLOW_TAG.findall(text)) == len(_blocks(page)) - len(_blocks(page, slow=False)) > 0


def _run_block(source: str, label: str, namespace: dict) -> None:
    lines = source.splitlines()
    for statement in ast.parse(source, filename=label).body:
        # dont_inherit: this file's `from __future__ import annotations` must not turn
        # the page's annotations into strings (a user's script has no such import).
        code = compile(ast.Module([statement], type_ignores=[]), label, "exec", dont_inherit=True)
        try:
            exec(code, namespace)
        except Exception as err:  # noqa: BLE001 (checked against the page's own words)
            said = "\n".join(lines[statement.lineno - 1 : statement.end_lineno + 1])
            if type(err).__name__ not in said:
                raise AssertionError(f"{label}, line {statement.lineno}: {type(err).__name__}: {err}") from err


def run_page(page: str, slow: bool) -> None:
    """Run `page`'s examples in this process (the child's entry point); the blocks tagged
    slow only with `slow`."""
    import matplotlib

    matplotlib.use("Agg")
    # A real module, as a user's script is: classes defined on the page (an eqx.Module
    # subclass) look their module up in sys.modules.
    module = types.ModuleType("__docs__")
    sys.modules["__docs__"] = module
    namespace = module.__dict__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, (tag, block) in enumerate(_BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))):
            if slow or not tag:
                _run_block(block, f"{page} example {i + 1}", namespace)


def _run_page_in_a_child(page: str, slow: bool, cwd: Path) -> None:
    child = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_docs_examples as t; "
             f"t.run_page({page!r}, {slow})")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", child], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, tmp_path):
    _run_page_in_a_child(page, False, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES)
def test_examples_run_with_the_slow_blocks(page, tmp_path):
    _run_page_in_a_child(page, True, tmp_path)


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_first_amplitude_is_the_limit_cycle_radius(page):
    """The first pages' `amplitude(a)` is what its name says: the Hopf limit cycle's radius.

    With beta = 1 the radius is sqrt(a), and d sqrt(a) / d a = 1 at a = 0.25. The largest
    |x| is that radius only over a window of at least one period (2 pi / w = 31 ms at the
    default w = 0.2); over 10 ms it depends on the phase the window starts at (0.64 instead
    of 0.77 at a = 0.6, and a gradient of 0.94 at a = 0.25).
    """
    import jax
    import numpy as np

    namespace: dict = {}
    for block in _blocks(page):
        # Only the imports and the definition: the page's own grad/vmap calls are the rest.
        keep = [
            s
            for s in ast.parse(block).body
            if isinstance(s, ast.Import | ast.ImportFrom)
            or (isinstance(s, ast.FunctionDef) and s.name == "amplitude")
            or (isinstance(s, ast.Assign) and any(getattr(t, "id", "") == "amplitude" for t in s.targets))
        ]
        exec(compile(ast.Module(keep, type_ignores=[]), page, "exec", dont_inherit=True), namespace)
    amplitude = namespace["amplitude"]
    a = np.array([0.1, 0.25, 0.6, 1.0])
    np.testing.assert_allclose(jax.vmap(amplitude)(a), np.sqrt(a), rtol=0.02)
    np.testing.assert_allclose(jax.grad(amplitude)(0.25), 1.0, rtol=0.02)


def test_sparse_network_example_moves():
    """networks.md's sparse example is a network that does something: started from
    x = y = 0 (Hopf's default) below its bifurcation, it recorded zeros, and the gradient
    the page takes next was zero everywhere. Its run (not the gradient, whose compilation
    is the slow part) at 50 regions instead of 1,000, to stay quick."""
    import jax.numpy as jnp

    page = "docs/howto/networks.md"
    (block,) = [b for b in _blocks(page) if "scipy.sparse" in b]
    assert "n = 1000\n" in block and "\nloss = " in block
    run = block.split("\nloss = ")[0].replace("n = 1000\n", "n = 50\n")
    namespace: dict = {}
    exec(compile(run, page, "exec", dont_inherit=True), namespace)
    assert float(jnp.abs(namespace["traj"]["x"]).max()) > 0.01


def test_ensembles_memory_example_warns_nothing():
    """ensembles.md's `chunk=` example drew its 4x4 connectome with a non-zero diagonal, so
    every member's Network warned that it dropped 4 self-connections, a warning the page
    never mentions. Its imports (the first block) and that block, run as written."""
    page = "docs/howto/ensembles.md"
    blocks = _blocks(page)
    (block,) = [b for b in blocks if "def one(k, a)" in b]
    namespace: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(blocks[0].split("\ndef run")[0], page, "exec", dont_inherit=True), namespace)
        exec(compile(block, page, "exec", dont_inherit=True), namespace)
    assert namespace["xs"].shape == (8, 100, 4)
    said = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, DeprecationWarning)]
    assert said == []
