"""What the writers of the TVB and neurolib reference runs share: the throwaway venv of
the reference system (never a dependency) and the command line that reruns the writer
inside it."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "tests" / "data" / "reference"
#: The bundled 8-region connectome every reference network runs on.
CONNECTOME = REPO_ROOT / "brainmass_eqx" / "datasets" / "_data" / "example_connectome.npz"


def installed_version(python: Path, dist: str) -> str | None:
    """The version of distribution ``dist`` importable by ``python``, or None."""
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_venv(venv: Path, dist: str, version: str) -> Path:
    """Return the python of ``venv``, creating it and installing ``dist==version`` if needed."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating venv {venv}", flush=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    if installed_version(python, dist) != version:
        print(f"installing {dist}=={version} into {venv}", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{dist}=={version}"], check=True)
        found = installed_version(python, dist)
        if found != version:
            raise SystemExit(f"{venv}: {dist} {found} importable, need {version}")
    return python


def main(
    argv: list[str] | None, *, doc: str, script: str, dist: str, version: str, venv_env: str,
    write: Callable[[Path], None],
) -> None:
    """The writer's command line: ``--venv`` (default ``$venv_env`` or
    ``~/.cache/bmx/venv-<dist's first word>``) is ensured, then ``script`` reruns itself
    there with ``--child``, which calls ``write(outdir)``."""
    default = Path.home() / ".cache" / "bmx" / f"venv-{dist.split('-')[0]}"
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--venv", type=Path, default=Path(os.environ.get(venv_env, default)),
        help=f"venv holding {dist} (default: ${venv_env} or {default})",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        outdir = REFERENCE_DIR / dist.split("-")[0]
        outdir.mkdir(parents=True, exist_ok=True)
        write(outdir)
        for path in sorted(outdir.glob("*.npz")):
            print(f"  {path.relative_to(REPO_ROOT)}  {path.stat().st_size / 1024:.1f} KiB", flush=True)
        return
    python = ensure_venv(args.venv.expanduser(), dist, version)
    subprocess.run([python, script, "--child"], check=True)
