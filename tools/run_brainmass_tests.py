"""Run brainmass 0.1.1's own test files, unchanged, on the compat facade.

brainmass's wheel ships its tests next to its modules (``brainmass/*_test.py``,
``brainmass/horn/*_test.py``, ``brainmass/jansen_rit/*_test.py``). This script copies them
from an installed brainmass into a temporary folder, adds a ``conftest.py`` that calls
``brainmass_eqx.compat.install()`` before collection (so their ``import brainmass``,
``brainstate``, ``braintools``, ``brainunit`` load the facade) and defines the three fixtures
the tests ask for by name (``dt``, ``seeded``, ``connectome``: brainmass keeps them in a
repository ``conftest.py`` its wheel does not ship, so they are reconstructed here), and runs
each file in its own pytest process. With ``--reference`` the same files and fixtures also
run on real brainmass, in the Python that has it installed. The table gives passed / failed
/ errored per file.

What fails on the facade and why (out of scope, private names, random streams, documented
differences) is recorded in ``docs/compat.md``; this is the check behind it.

Usage (slow on a small machine; nice it)::

    nice -n 5 python tools/run_brainmass_tests.py                      # every file
    python tools/run_brainmass_tests.py hopf network --reference       # names containing these
    python tools/run_brainmass_tests.py --brainmass-python path/to/python -v
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

BRAINMASS_PYTHON = os.environ.get("BMX_BRAINMASS_PYTHON") or os.path.expanduser("~/.cache/bmx/venv-bm/bin/python")
ROOT = pathlib.Path(__file__).resolve().parents[1]

CONFTEST = '''"""brainmass's own tests on brainmass_eqx.compat (BMX_FACADE=0: on real brainmass)."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

if os.environ.get("BMX_FACADE", "1") != "0":
    import brainmass_eqx.compat

    brainmass_eqx.compat.install()

import matplotlib

matplotlib.use("Agg")

import brainstate  # noqa: E402
import brainunit as u  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def dt():
    """The environment step (a time Quantity, as brainmass's models require), set for the test."""
    step = 0.1 * u.ms
    with brainstate.environ.context(dt=step):
        yield step


@pytest.fixture
def seeded():
    """brainstate's global random stream, seeded."""
    brainstate.random.seed(0)
    yield


@pytest.fixture
def connectome():
    """A small directed connectome: n regions, weights SC (zero diagonal, not symmetric),
    plain-number distances dist (mm) and delays delay (ms, at 5 mm/ms)."""
    rng = np.random.default_rng(0)
    n = 6
    sc = rng.uniform(0.0, 1.0, (n, n)).astype("float32")
    np.fill_diagonal(sc, 0.0)
    dist = rng.uniform(5.0, 50.0, (n, n)).astype("float32")
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0.0)
    return {"n": n, "SC": sc, "dist": dist, "delay": (dist / 5.0) * u.ms}
'''

_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


def brainmass_folder(python: str) -> pathlib.Path:
    """The installed ``brainmass`` package folder of ``python``."""
    if not os.path.exists(python):
        sys.exit(
            f"no Python at {python!r}: give --brainmass-python, the interpreter of a venv with brainmass "
            "0.1.1 installed (python -m venv v && v/bin/pip install brainmass==0.1.1)."
        )
    out = subprocess.run(
        [python, "-c", "import brainmass, os; print(os.path.dirname(brainmass.__file__))"],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"{python} cannot import brainmass: {out.stderr.strip().splitlines()[-1]}")
    return pathlib.Path(out.stdout.strip())


def copy_tests(package: pathlib.Path, into: pathlib.Path, names: list[str]) -> list[str]:
    """Copy ``*_test.py`` (keeping subfolders) whose path contains one of ``names`` (all if
    empty); returns their relative paths."""
    chosen = []
    for path in sorted(package.rglob("*_test.py")):
        rel = path.relative_to(package).as_posix()
        if names and not any(n in rel for n in names):
            continue
        (into / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, into / rel)
        chosen.append(rel)
    (into / "conftest.py").write_text(CONFTEST)
    return chosen


def run_file(python: str, folder: pathlib.Path, rel: str, env: dict, timeout: float, verbose: bool) -> dict:
    """``{'passed': n, 'failed': n, 'error': n, 'skipped': n}`` of one test file (``timeout``:
    the whole file counted as one error)."""
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "--tb=line", rel]
    try:
        proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"passed": 0, "failed": 0, "error": 1, "skipped": 0, "note": f"timeout {timeout:g} s"}
    if verbose:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    lines = (proc.stdout.strip() or proc.stderr.strip() or "?").splitlines()
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for n, kind in _COUNTS.findall(lines[-1]):
        counts["error" if kind.startswith("error") else kind] += int(n)
    if not any(counts.values()):
        counts["error"] = 1
        counts["note"] = lines[-1][:80]
    return counts


def _cell(c: dict | None) -> str:
    if c is None:
        return ""
    text = f"{c['passed']} / {c['failed']} / {c['error']}"
    return text + (f" ({c['note']})" if "note" in c else "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only test files whose path contains one of these")
    parser.add_argument("--brainmass-python", default=BRAINMASS_PYTHON, help="a Python with brainmass 0.1.1 installed")
    parser.add_argument("--reference", action="store_true", help="also run the files on real brainmass")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per test file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each file's pytest output")
    args = parser.parse_args(argv)

    package = brainmass_folder(args.brainmass_python)
    if args.reference and subprocess.run([args.brainmass_python, "-c", "import pytest"], capture_output=True).returncode:
        sys.exit(f"--reference needs pytest in brainmass's Python: {args.brainmass_python} -m pip install pytest")
    with tempfile.TemporaryDirectory(prefix="bm-tests-") as tmp:
        folder = pathlib.Path(tmp)
        files = copy_tests(package, folder, args.names)
        if not files:
            sys.exit(f"no *_test.py under {package} matches {args.names}.")
        facade_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        reference_env = {**os.environ, "BMX_FACADE": "0"}
        rows = []
        for rel in files:
            facade = run_file(sys.executable, folder, rel, facade_env, args.timeout, args.verbose)
            reference = (
                run_file(args.brainmass_python, folder, rel, reference_env, args.timeout, args.verbose)
                if args.reference else None
            )  # fmt: skip
            rows.append((rel, facade, reference))
            print(f"{rel}: facade {_cell(facade)}" + (f", brainmass {_cell(reference)}" if reference else ""), file=sys.stderr)

    header = "| test file (passed / failed / errored) | facade |" + (" brainmass 0.1.1 |" if args.reference else "")
    print(header)
    print("|---|---|" + ("---|" if args.reference else ""))
    totals = [{"passed": 0, "failed": 0, "error": 0, "skipped": 0} for _ in range(2)]
    for rel, facade, reference in rows:
        print(f"| {rel} | {_cell(facade)} |" + (f" {_cell(reference)} |" if args.reference else ""))
        for total, c in zip(totals, (facade, reference)):
            if c is not None:
                for k in total:
                    total[k] += c[k]
    print(f"| **total** | {_cell(totals[0])} |" + (f" {_cell(totals[1])} |" if args.reference else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
