"""brainmass 0.1.1's docstring examples run unchanged on the compat facade.

``tests/data/compat/brainmass_doctests.json`` holds every ``>>>`` example of the
brainmass 0.1.1 package (46 docstrings, 288 examples; brainmass is Apache-2.0), extracted
with ``doctest.DocTestFinder`` in the reference environment::

    ~/.cache/bmx/venv-bm/bin/python - <<'PY'
    import doctest, importlib, json, pkgutil, brainmass
    mods = [brainmass] + [importlib.import_module(f"brainmass.{m.name}")
                          for m in pkgutil.walk_packages(brainmass.__path__) if "_test" not in m.name]
    seen, out = set(), []
    for mod in mods:
        for t in doctest.DocTestFinder(exclude_empty=True).find(mod):
            if t.examples and t.name not in seen:
                seen.add(t.name)
                out.append({"name": t.name, "examples": [{"source": e.source, "want": e.want} for e in t.examples]})
    json.dump(out, open("brainmass_doctests.json", "w"), indent=1)
    PY

Each docstring's examples run in order, as ``doctest`` would, after
``brainmass_eqx.compat.install()`` (their ``import brainmass, brainunit as u`` load the
facade), and must print what brainmass printed.
"""

from __future__ import annotations

import doctest
import io
import json
import pathlib
import sys
import warnings

import pytest

import brainmass_eqx.compat as compat

DATA = pathlib.Path(__file__).parent / "data" / "compat" / "brainmass_doctests.json"
DOCTESTS = json.loads(DATA.read_text())


@pytest.fixture(scope="module")
def installed():
    import matplotlib

    matplotlib.use("Agg")
    saved = {k: sys.modules.get(k) for k in ("brainmass", "brainstate", "braintools", "brainunit")}
    compat.install()
    yield
    compat.uninstall()
    for k, v in saved.items():
        if v is not None:
            sys.modules[k] = v
    compat.brainstate.environ.reset()


def test_every_docstring_is_here():
    assert len(DOCTESTS) == 46
    assert sum(len(t["examples"]) for t in DOCTESTS) == 288


@pytest.mark.parametrize("entry", DOCTESTS, ids=[t["name"] for t in DOCTESTS])
def test_docstring_examples(installed, entry):
    import matplotlib.pyplot as plt

    compat.brainstate.environ.reset()
    compat.brainstate.random.seed(0)
    examples = [doctest.Example(e["source"], e["want"]) for e in entry["examples"]]
    test = doctest.DocTest(examples, {"__name__": "__doctest__"}, entry["name"], None, 0, None)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.run(test, out=report.write, clear_globs=True)
    plt.close("all")
    assert result.failed == 0, report.getvalue()
