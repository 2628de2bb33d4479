"""Regenerate the brainmass 0.1.1 reference data under ``tests/data/reference``.

Usage (any python3, from anywhere)::

    python tools/make_references.py [--only NAME] [--venv PATH]

* Ensures a throwaway venv holding ``brainmass==0.1.1`` (default
  ``~/.cache/bmx/venv-bm``; ``--venv`` or ``$BMX_REFERENCE_VENV`` overrides), creating it
  with ``python3 -m venv`` + ``pip install brainmass==0.1.1`` when missing. brainmass is
  never a dependency of ``brainmass_eqx``.
* Runs every ``tools/reference_cases/<NAME>.py`` that defines ``main(outdir)`` inside
  that venv, with the repository root as working directory (``--only NAME`` runs one).
* Prints the files written, their sizes and the total.

The outputs are deterministic: constant initial states, no noise, CPU only
(``JAX_PLATFORMS=cpu``).
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CASES_DIR = REPO_ROOT / "tools" / "reference_cases"
OUTDIR = Path("tests") / "data" / "reference"
BRAINMASS_VERSION = "0.1.1"
DEFAULT_VENV = Path.home() / ".cache" / "bmx" / "venv-bm"


def case_modules() -> list[str]:
    """Names of the case modules that define a top-level ``main(outdir)``."""
    names = []
    for path in sorted(CASES_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            names.append(path.stem)
    return names


def _installed_version(python: Path) -> str | None:
    probe = subprocess.run(
        [str(python), "-c", "import brainmass; print(brainmass.__version__)"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_venv(venv: Path) -> Path:
    """Return the venv's python, creating the venv / installing brainmass if needed."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating venv {venv}", flush=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    version = _installed_version(python)
    if version != BRAINMASS_VERSION:
        print(
            f"installing brainmass=={BRAINMASS_VERSION} into {venv} (found {version})", flush=True
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"brainmass=={BRAINMASS_VERSION}"],
            check=True,
        )
        version = _installed_version(python)
        if version != BRAINMASS_VERSION:
            raise SystemExit(
                f"--venv {venv}: brainmass {version} importable, need {BRAINMASS_VERSION}"
            )
    return python


def run_module(python: Path, name: str) -> None:
    """Run ``tools.reference_cases.<name>.main(OUTDIR)`` in the reference venv."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONHASHSEED="0")
    env.pop("JAX_ENABLE_X64", None)
    code = f"import tools.reference_cases.{name} as m; m.main({str(OUTDIR)!r})"
    subprocess.run([str(python), "-c", code], cwd=REPO_ROOT, env=env, check=True)


def summarize(since: float) -> None:
    root = REPO_ROOT / OUTDIR
    files = sorted(p for p in root.rglob("*") if p.is_file())
    fresh = [p for p in files if p.stat().st_mtime >= since]
    print(f"\n{len(fresh)} files written under {OUTDIR}:")
    for p in fresh:
        print(f"  {p.relative_to(root)}  {p.stat().st_size / 1024:.1f} KiB")
    total = sum(p.stat().st_size for p in files)
    print(f"reference directory total: {len(files)} files, {total / 2**20:.2f} MiB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", metavar="NAME", help="run only tools/reference_cases/NAME.py")
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(os.environ.get("BMX_REFERENCE_VENV", DEFAULT_VENV)),
        help="venv holding brainmass 0.1.1 (default: $BMX_REFERENCE_VENV or ~/.cache/bmx/venv-bm)",
    )
    args = parser.parse_args(argv)
    modules = case_modules()
    if args.only is not None:
        if args.only not in modules:
            parser.error(
                f"--only {args.only!r}: no such case module; available: {', '.join(modules)}"
            )
        modules = [args.only]
    python = ensure_venv(args.venv.expanduser())
    start = time.time() - 1.0  # mtime granularity
    for name in modules:
        print(f"== {name}", flush=True)
        run_module(python, name)
    summarize(start)


if __name__ == "__main__":
    sys.exit(main())
