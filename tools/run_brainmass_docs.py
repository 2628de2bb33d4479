"""Run brainmass 0.1.1's documentation notebooks unchanged on the compat facade.

Each notebook is read from a brainmass checkout (a bare git mirror at a tag, or a docs
folder), a first cell ``import brainmass_eqx.compat as _c; _c.install()`` is prepended, and
it is executed top to bottom by nbclient in a fresh kernel, one notebook at a time, under a
per-notebook wall-clock limit. The table says for each notebook whether it ran (``pass``),
raised (``error``, with the first failing cell and exception) or ran out of time
(``timeout``), and how many cells printed something other than what the stored notebook
printed (``diff``: random numbers and timings differ legitimately; ``--diff`` shows them).

Usage (slow on a small machine; nice it)::

    nice -n 5 python tools/run_brainmass_docs.py                  # all 55 notebooks
    python tools/run_brainmass_docs.py hopf wong_wang --diff       # names containing these
    python tools/run_brainmass_docs.py --docs path/to/brainmass/docs --timeout 900
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import nbclient
import nbformat

MIRROR = pathlib.Path("/work/.mirror/chaobrain+brainmass/repo")
SETUP = "import brainmass_eqx.compat as _c; _c.install()"


def _from_git(git_dir: pathlib.Path, ref: str) -> dict[str, str]:
    """``{path: notebook json}`` for every ``docs/**.ipynb`` of ``ref`` in a (bare) repo."""
    git = ["git", "--git-dir", str(git_dir)]
    names = subprocess.run(
        [*git, "ls-tree", "-r", ref, "--name-only"], check=True, capture_output=True, text=True
    ).stdout.split()
    out = {}
    for name in sorted(n for n in names if n.startswith("docs/") and n.endswith(".ipynb")):
        out[name[len("docs/") :]] = subprocess.run(
            [*git, "show", f"{ref}:{name}"], check=True, capture_output=True, text=True
        ).stdout
    return out


def _from_folder(docs: pathlib.Path) -> dict[str, str]:
    return {
        str(p.relative_to(docs)): p.read_text() for p in sorted(docs.rglob("*.ipynb"))
    }


def _stdout(cell) -> str:
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    ).strip()


async def _execute(nb, timeout: float, workdir: str) -> None:
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": workdir}}
    )
    await asyncio.wait_for(client.async_execute(), timeout)


def _kernel_cpu() -> float:
    """CPU seconds of finished child processes (each notebook's kernel exits at its end)."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_notebook(text: str, timeout: float) -> dict:
    """Execute one notebook with the facade installed; return status, failure and diffs."""
    nb = nbformat.reads(text, as_version=4)
    expected = [_stdout(c) for c in nb.cells]
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP))
    t0, t0_cpu = time.perf_counter(), _kernel_cpu()
    status, failure = "pass", ""
    with tempfile.TemporaryDirectory() as workdir:
        try:
            asyncio.run(_execute(nb, timeout, workdir))
        except nbclient.exceptions.CellExecutionError as err:
            status = "error"
            cell = next(
                (i for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
                 if o.get("output_type") == "error"),
                None,
            )
            failure = f"cell {cell - 1 if cell is not None else '?'}: {err.ename}: {err.evalue}"
        except (TimeoutError, nbclient.exceptions.CellTimeoutError):
            status, failure = "timeout", f"over {timeout:.0f} s"
        except Exception as err:  # noqa: BLE001  a kernel death is a result too
            status, failure = "error", f"{type(err).__name__}: {err}"
    diffs = []
    for i, (want, cell) in enumerate(zip(expected, nb.cells[1:])):
        got = _stdout(cell)
        ran = bool(cell.get("outputs")) or cell.get("execution_count") is not None
        if cell.cell_type == "code" and want and ran and got != want:
            diffs.append((i, want, got))
    return {
        "status": status,
        "failure": failure,
        "diffs": diffs,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": _kernel_cpu() - t0_cpu,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("only", nargs="*", help="run only notebooks whose path contains one of these")
    p.add_argument("--git-dir", type=pathlib.Path, default=MIRROR, help="brainmass git repo")
    p.add_argument("--ref", default="v0.1.1", help="tag or commit of brainmass (default v0.1.1)")
    p.add_argument("--docs", type=pathlib.Path, help="read notebooks from this folder instead")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook")
    p.add_argument("--diff", action="store_true", help="print the cells whose stdout differs")
    p.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = p.parse_args(argv)

    # The kernel inherits the environment: let the notebooks' %matplotlib inline choose.
    os.environ.pop("MPLBACKEND", None)
    books = _from_folder(args.docs) if args.docs else _from_git(args.git_dir, args.ref)
    if args.only:
        books = {k: v for k, v in books.items() if any(o in k for o in args.only)}
    results = {}
    print(f"{'notebook':55s} {'status':8s} {'diff':>4s} {'wall s':>7s} {'cpu s':>7s}  failure", flush=True)
    for name, text in books.items():
        r = results[name] = run_notebook(text, args.timeout)
        print(
            f"{name:55s} {r['status']:8s} {len(r['diffs']):4d} {r['wall_s']:7.1f} {r['cpu_s']:7.1f}  "
            f"{r['failure'][:300]}",
            flush=True,
        )
        if args.diff:
            for i, want, got in r["diffs"]:
                print(f"    cell {i}\n      brainmass: {want[:600]!r}\n      facade:    {got[:600]!r}")
    passed = sum(r["status"] == "pass" for r in results.values())
    print(f"{passed} of {len(results)} notebooks ran", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
