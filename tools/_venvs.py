"""Throwaway virtual environments for the reference systems (never dependencies)."""

from __future__ import annotations

import subprocess
from pathlib import Path


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
