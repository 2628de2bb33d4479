"""Run every benchmark against the reference systems and write BENCHMARKS.md.

    python benchmarks/run.py [--only network noise fit bold] [--no-write] [--gpu]

Each `benchmarks/bench_<name>.py` is a standalone script that prints a Markdown table
comparing brainmass_eqx with brainmass 0.1.1 (and neurolib 0.6.2 where it has the case),
measured in the same run, alternating, after warm-up, as medians. The reference systems
live in their own virtual environments, created here on first use and never installed
into the package's environment:

- brainmass 0.1.1: ``$BMX_REFERENCE_VENV`` or ``~/.cache/bmx/venv-bm``
- neurolib 0.6.2: ``$BMX_NEUROLIB_VENV`` or ``~/.cache/bmx/venv-neurolib``

The combined tables are written to BENCHMARKS.md with the machine description. With
``--gpu`` the run is labelled as the GPU column (run the same command on the GPU machine).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

REFERENCE_VENVS = {
    "brainmass": (os.environ.get("BMX_REFERENCE_VENV", "~/.cache/bmx/venv-bm"), ["brainmass==0.1.1"]),
    "neurolib": (os.environ.get("BMX_NEUROLIB_VENV", "~/.cache/bmx/venv-neurolib"), ["neurolib==0.6.2"]),
}


def ensure_venv(name: str) -> Path:
    """The python of the reference system ``name``, creating its venv if missing."""
    path, requirements = REFERENCE_VENVS[name]
    venv = Path(path).expanduser()
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"[run.py] creating the {name} reference venv at {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    return python


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    try:
        import jax

        devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
        jax_version = jax.__version__
    except Exception:  # the description must not fail the run
        devices, jax_version = "?", "?"
    return (
        f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
        f"jax {jax_version}, devices: {devices}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="benchmark names (bench_<name>.py) to run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--gpu", action="store_true", help="label this run as the GPU column")
    args = parser.parse_args(argv)

    scripts = sorted(HERE.glob("bench_*.py"))
    if not args.gpu:  # the accelerator's column: without one it measures a CPU's vmap scaling again
        scripts = [s for s in scripts if s.name != "bench_gpu.py" or (args.only and "gpu" in args.only)]
    if args.only:
        wanted = {f"bench_{n}.py" for n in args.only}
        unknown = wanted - {s.name for s in scripts}
        if unknown:
            print(f"unknown benchmark(s) {sorted(unknown)}; available: {[s.stem[6:] for s in scripts]}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.name in wanted]
    env = dict(os.environ)
    env["BMX_BRAINMASS_PYTHON"] = str(ensure_venv("brainmass"))
    try:
        env["BMX_NEUROLIB_PYTHON"] = str(ensure_venv("neurolib"))
    except subprocess.CalledProcessError as err:  # neurolib is only one column of one case
        print(f"[run.py] neurolib venv unavailable ({err}); its column will be missing", file=sys.stderr)

    sections = []
    failed = []
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            failed.append(script.name)
        sections.append(f"### `{script.name}`\n\n{proc.stdout.strip()}\n")

    label = "GPU" if args.gpu else "CPU"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = (
        f"## Latest full run ({label}, {stamp})\n\n"
        f"Machine: {machine_description()}\n\n"
        f"Command: `python benchmarks/run.py{' --gpu' if args.gpu else ''}`\n\n" + "\n".join(sections)
    )
    if not args.no_write:
        out = ROOT / "BENCHMARKS.md"
        existing = out.read_text() if out.exists() else "# Benchmarks\n"
        marker = f"## Latest full run ({label}"
        if marker in existing:
            existing = existing[: existing.index(marker)].rstrip() + "\n"
        out.write_text(existing.rstrip() + "\n\n" + report)
        print(f"\n[run.py] wrote {out}")
    if failed:
        print(f"[run.py] failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
