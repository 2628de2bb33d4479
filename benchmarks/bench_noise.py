"""Noise benchmark: what OU noise on x costs, against the deterministic run and brainmass 0.1.1.

    python benchmarks/bench_noise.py [--rounds 5] [--threads default|1]

Cases (the W1 setup of ``bench_network.py``): 80 Hopf nodes (a = 0.2, w = 0.3 rad/ms,
initial state U(0, 0.1)), 10 s at dt = 0.1 ms (100,000 steps), x recorded every 1 ms;

- **node**: the 80 regions uncoupled (one ``Hopf(80)``);
- **network**: dense random symmetric conn (U(0, 1) / 80), symmetric distances U(5, 200) mm,
  speed 10 mm/ms (delays up to 20 ms), diffusive coupling, k = 0.5;

each deterministic and with ``OUProcess(sigma=0.05, tau=20 ms)`` on x (brainmass's
``noise_x=OUProcess(80, sigma=0.05, tau=20 ms)``; here ``with_noise(node, noise_x=...)``).
brainmass_eqx calls are timed after one warm-up call per case, each later call with a
new key (the script counts the XLA compilations they trigger: must be 0). brainmass 0.1.1
runs ``Simulator.run`` in its own virtual environment ($BMX_BRAINMASS_PYTHON, else
``~/.cache/bmx/venv-bm``); it compiles on every call, so its run-only time is the 10 s call
minus a 10 ms call. All systems alternate within each round; the table gives medians, of
wall time and of process CPU time (on a shared machine the CPU time is the steadier one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_network import (  # noqa: E402  (the shared W1 problem and reference-venv lookup)
    A0,
    DT_MS,
    K0,
    SINGLE_THREAD_FLAGS,
    SPEED,
    W_RAD,
    CompileCounter,
    problem_arrays,
    reference_python,
)

SIGMA, TAU_MS = 0.05, 20.0
CASES = ("node", "network")

_BRAINMASS_WORKER = r'''
import json, sys, time
import numpy as np
import brainmass, brainstate, braintools
import brainunit as u

problem = dict(np.load(sys.argv[1]))
conn, dist, x0, y0 = (problem[k] for k in ("conn", "distance", "x0", "y0"))
n = conn.shape[0]
DT, SPEED, W, A, K, SIGMA, TAU = (float(v) for v in sys.argv[2:9])
brainstate.environ.set(dt=DT * u.ms)  # brainmass sizes delay buffers at construction

def build(case, noisy):
    noise = brainmass.OUProcess(n, sigma=SIGMA, tau=TAU * u.ms) if noisy else None
    node = brainmass.HopfStep(n, a=A, w=W, init_x=braintools.init.Constant(x0),
                              init_y=braintools.init.Constant(y0), noise_x=noise)
    if case == "node":
        return node, (lambda m: m.x.value)
    net = brainmass.Network(node, conn=conn, distance=dist * u.mm, speed=SPEED * u.mm / u.ms,
                            coupling="diffusive", coupled_var="x", k=K, delay_init=braintools.init.Constant(x0))
    return net, (lambda m: m.node.x.value)

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    cmd = json.loads(line)
    model, monitor = build(cmd["case"], cmd["noisy"])
    sim = brainmass.Simulator(model, dt=DT * u.ms)
    t, c = time.perf_counter(), time.process_time()
    out = np.asarray(sim.run(cmd["duration_ms"] * u.ms, monitors=monitor, sample_every=10)["output"])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    print(json.dumps({"wall": wall, "cpu": cpu, "shape": list(out.shape), "std": float(out[len(out) // 2:].std())}), flush=True)
'''


class BrainmassWorker:
    def __init__(self, python: str, problem_path: str, env: dict):
        args = [str(v) for v in (DT_MS, SPEED, W_RAD, A0, K0, SIGMA, TAU_MS)]
        self.proc = subprocess.Popen(
            [python, "-c", _BRAINMASS_WORKER, problem_path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("brainmass worker died")
        return json.loads(line)

    def run(self, case: str, noisy: bool, duration_ms: float) -> dict:
        self.proc.stdin.write(json.dumps({"case": case, "noisy": noisy, "duration_ms": duration_ms}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def ours(problem):
    """``run(case, noisy, key) -> (wall, cpu, x)`` for brainmass_eqx."""
    import jax
    import numpy as np

    import brainmass_eqx as bm
    from brainmass_eqx.noise import OUProcess, with_noise

    try:
        from brainmass_eqx.network import Network
    except ImportError:  # the network lands separately; the node case runs without it
        Network = None

    def build(case, noisy):
        node = bm.Hopf(len(problem["x0"]), a=A0, w=W_RAD, init_x=problem["x0"], init_y=problem["y0"])
        if noisy:
            node = with_noise(node, noise_x=OUProcess(SIGMA, tau=TAU_MS))
        if case == "node":
            return node
        return Network(node, problem["conn"], distance=problem["distance"], speed=SPEED, k=K0)

    models = {(c, n): build(c, n) for c in CASES if c == "node" or Network is not None for n in (False, True)}

    def run(case, noisy, seed):
        model = models[(case, noisy)]
        t, c = time.perf_counter(), time.process_time()
        tr = bm.simulate(model, 10000.0, dt=DT_MS, sample_every=10, monitors="x", key=jax.random.key(seed))
        x = np.asarray(jax.block_until_ready(tr["x"]))
        return time.perf_counter() - t, time.process_time() - c, x

    return run, sorted({c for c, _ in models}, key=CASES.index)


def fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", choices=["default", "1"], default="1")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    if args.threads == "1":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_FLAGS).strip()
        os.environ["XLA_FLAGS"] = env["XLA_FLAGS"]  # before JAX starts in this process

    import numpy as np

    problem = problem_arrays()
    problem_path = os.path.join(tempfile.mkdtemp(prefix="bench_noise_"), "problem.npz")
    np.savez(problem_path, **problem)

    worker = None
    python = reference_python("brainmass")
    if python is not None:
        try:
            worker = BrainmassWorker(python, problem_path, env)
        except (RuntimeError, OSError) as err:
            print(f"[bench_noise] brainmass worker failed to start: {err}", file=sys.stderr)

    counter = CompileCounter()
    run, cases = ours(problem)
    variants = [(c, n) for c in cases for n in (False, True)]
    first = {v: run(*v, 0)[0] for v in variants}
    if worker is not None:
        for v in variants:
            worker.run(*v, 10000.0)  # warm-up
    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    bm_wall = {v: [] for v in variants}
    bm_cpu = {v: [] for v in variants}
    bm_short = {v: [] for v in variants}
    stds = {}
    compiles = 0
    for r in range(args.rounds):
        for v in variants:
            c0 = counter.count
            w, c, x = run(*v, r + 1)
            compiles += counter.count - c0
            wall[v].append(w)
            cpu[v].append(c)
            stds[v] = float(x[len(x) // 2 :].std())
            if worker is not None:
                out = worker.run(*v, 10000.0)
                bm_wall[v].append(out["wall"])
                bm_cpu[v].append(out["cpu"])
                bm_short[v].append(worker.run(*v, 10.0)["wall"])
    if worker is not None:
        worker.close()

    med = lambda d, v: statistics.median(d[v]) if d[v] else None  # noqa: E731
    lines = [
        f"XLA threads: {'1 (XLA_FLAGS=' + SINGLE_THREAD_FLAGS + ')' if args.threads == '1' else 'default'}; "
        f"medians of {args.rounds} calls after a warm-up, alternating the systems; XLA compilations in the "
        f"{args.rounds * len(variants)} timed brainmass_eqx calls (new key each): **{compiles}**.\n",
        "OU noise on x (sigma 0.05, tau 20 ms), 80 Hopf regions, 10 s at dt = 0.1 ms, x every 1 ms\n",
        "| case | system | deterministic run (s) | with OU noise (s) | noise / deterministic (wall) | "
        "noise / deterministic (CPU) | first call, noisy (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        det, noisy = (case, False), (case, True)
        lines.append(
            f"| {case} | brainmass_eqx | {fmt(med(wall, det))} | {fmt(med(wall, noisy))} | "
            f"**{fmt(med(wall, noisy) / med(wall, det), 3)}** | **{fmt(med(cpu, noisy) / med(cpu, det), 3)}** | "
            f"{fmt(first[noisy])} |"
        )
        if worker is not None:
            # Non-positive when the machine's noise exceeds the compile time it removes.
            only = {v: med(bm_wall, v) - med(bm_short, v) for v in (det, noisy)}
            only = {v: t if t > 0 else None for v, t in only.items()}
            lines.append(
                f"| {case} | brainmass 0.1.1 `Simulator.run` (compiles every call) | {fmt(med(bm_wall, det))} | "
                f"{fmt(med(bm_wall, noisy))} | {fmt(med(bm_wall, noisy) / med(bm_wall, det), 3)} | "
                f"{fmt(med(bm_cpu, noisy) / med(bm_cpu, det), 3)} | |"
            )
            lines.append(
                f"| {case} | brainmass 0.1.1 run-only (10 s call − 10 ms call) | {fmt(only[det])} | {fmt(only[noisy])} | "
                f"{fmt(only[noisy] / only[det] if only[det] and only[noisy] else None, 3)} | | |"
            )
    lines.append("")
    if worker is not None:
        lines.append(
            "Noisy run, brainmass_eqx / brainmass `Simulator.run`: "
            + ", ".join(f"{c} {fmt(med(wall, (c, True)) / med(bm_wall, (c, True)), 2)}" for c in cases)
            + ". Std of x over the second half (ours, last round): "
            + ", ".join(f"{c}/{'OU' if n else 'det'} {stds[(c, n)]:.3g}" for c, n in variants)
            + "."
        )
    if "network" not in cases:
        lines.append("(brainmass_eqx.network is not available: network case skipped.)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
