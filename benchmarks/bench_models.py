"""Models beyond W1's Hopf: the cost of a step per model, against brainmass 0.1.1.

    python benchmarks/bench_models.py [--rounds 3] [--seconds 1]

Each case is 68 regions (a random symmetric connectome, U(0, 1) / 68 weights, distances
U(5, 250) mm at 4 mm/ms: delays up to 63 ms, about 630 steps of history), dt = 0.1 ms, the
first state recorded every 1 ms, ExponentialEuler (brainmass's ``exp_euler``):

- **Hopf**: W1's network at 68 regions, diffusive coupling on x: the baseline step.
- **Jansen-Rit**: ``JansenRit`` with ``E = 220 Hz``, diffusive coupling on ``M`` (brainmass
  0.1.1's ``'sigmoidal_jansen_rit'`` coupling fails on its own unit check with a
  ``JansenRitStep``), 'ceil' delays and a zero past, brainmass's rules. Its coupled ``M``
  has ``M' = Mv``: the history write does not depend on the step's read, which made XLA
  copy the whole history twice per step (``_history.after_read``).
- **Kuramoto**: ``Kuramoto(68, omega=0.1, K=0.5, conn=W)``, the all-pairs node of
  brainmass's ``KuramotoNetwork`` (no delays), whose pairwise sines were the whole step.

brainmass_eqx: medians of ``--rounds`` calls after a warm-up (new arrays, no recompile),
XLA single-threaded. brainmass: medians of its ``Simulator.run`` calls, which compile every
call; "run only" subtracts a 1 ms call (its compilation). Both sides are checked to agree
on the first case's trajectory before timing (max |difference| printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
N, DT_MS, SPEED = 68, 0.1, 4.0
CASES = ("hopf", "jansen_rit", "kuramoto")

_BRAINMASS = r'''
import json, sys, time
import numpy as np
import brainmass, brainstate, braintools, brainunit as u
case, seconds, rounds, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
p = np.load(path); W, D = p["W"], p["D"]; n = W.shape[0]
brainstate.environ.set(dt=0.1 * u.ms)
def build():
    if case == "kuramoto":
        node = brainmass.KuramotoNetwork(n, omega=0.1, K=0.5, conn=W,
                                         init_theta=braintools.init.Constant(np.linspace(0, 6, n)))
        return node, (lambda m: m.theta.value), {}
    if case == "hopf":
        node = brainmass.HopfStep(n, a=0.2, w=0.3, init_x=braintools.init.Constant(0.05),
                                  init_y=braintools.init.Constant(0.05))
        var, init, monitor, kw = "x", 0.05, (lambda m: m.node.x.value), {}
    else:
        node = brainmass.JansenRitStep(n)
        var, init, monitor, kw = "M", 0.0, (lambda m: m.node.M.value), dict(inputs=lambda i, t: 220.0 * u.Hz)
    net = brainmass.Network(node, conn=W, distance=D * u.mm, speed=4.0 * u.mm / u.ms, coupling="diffusive",
                            coupled_var=var, k=0.5, delay_init=braintools.init.Constant(init))
    return net, monitor, kw
def run(ms):
    model, monitor, kw = build()
    sim = brainmass.Simulator(model, dt=0.1 * u.ms)
    t = time.perf_counter()
    out = sim.run(ms * u.ms, monitors=monitor, sample_every=10, **kw)
    x = np.asarray(u.get_mantissa(out["output"]))
    return time.perf_counter() - t, x
_, x = run(1000.0 * seconds)
full = [run(1000.0 * seconds)[0] for _ in range(rounds)]
short = [run(1.0)[0] for _ in range(rounds)]
print(json.dumps(dict(full=sorted(full)[len(full) // 2], short=sorted(short)[len(short) // 2],
                      x=x.reshape(-1, n).tolist())))
'''


def problem(path: Path) -> None:
    import numpy as np
    from bench_network import random_connectome

    w, d = random_connectome(np.random.default_rng(0), N, 250.0)
    np.savez(path, W=w, D=d)


def ours(case: str, path: Path):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import brainmass_eqx as bm
    from brainmass_eqx.network import Network

    p = np.load(path)
    w, d = p["W"], p["D"]
    if case == "kuramoto":
        model, var, inputs = bm.Kuramoto(N, omega=0.1, K=0.5, conn=w, init_theta=jnp.linspace(0, 6, N)), "theta", None
    elif case == "hopf":
        node = bm.Hopf(N, a=0.2, w=0.3, init_x=0.05, init_y=0.05)
        model = Network(node, w, distance=d, speed=SPEED, k=0.5, interpolation="ceil", history={"x": jnp.full(N, 0.05)})
        var, inputs = "x", None
    else:
        model = Network(bm.JansenRit(N), w, distance=d, speed=SPEED, k=0.5, coupled_var="M",
                        interpolation="ceil", history={"M": jnp.zeros(N)})
        var, inputs = "M", {"E": 220.0}

    def run(ms):
        return np.asarray(jax.block_until_ready(bm.simulate(model, ms, dt=DT_MS, sample_every=10, monitors=var, inputs=inputs)[var]))

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="simulated seconds per call")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    args = parser.parse_args(argv)
    os.environ.setdefault("XLA_FLAGS", SINGLE_THREAD_FLAGS)
    import tempfile

    import numpy as np

    python = os.environ.get("BMX_BRAINMASS_PYTHON", str(Path("~/.cache/bmx/venv-bm/bin/python").expanduser()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "problem.npz"
        problem(path)
        worker = Path(tmp) / "bm_worker.py"
        worker.write_text(_BRAINMASS)
        for case in args.cases:
            run = ours(case, path)
            x = run(1000.0 * args.seconds)  # compiles
            times = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                run(1000.0 * args.seconds)
                times.append(time.perf_counter() - t)
            mine = statistics.median(times)
            ref = None
            if Path(python).exists():
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                proc = subprocess.run([python, str(worker), case, str(args.seconds), str(args.rounds), str(path)],
                                      capture_output=True, text=True, env=env)
                if proc.returncode == 0:
                    ref = json.loads(proc.stdout.strip().splitlines()[-1])
                else:
                    print(f"[bench_models] brainmass failed on {case}: {proc.stderr[-300:]}", file=sys.stderr)
            steps = 1000.0 * args.seconds / DT_MS
            row = [case, f"{mine / args.seconds:.3f}", f"{mine / steps * 1e6:.1f}"]
            if ref is None:
                row += ["-", "-", "-", "-"]
            else:
                run_only = max(ref["full"] - ref["short"], 1e-9)
                agree = float(np.abs(np.asarray(ref["x"]) - x.reshape(-1, N)).max())
                row += [f"{ref['full'] / args.seconds:.3f}", f"{run_only / args.seconds:.3f}",
                        f"{mine / run_only:.2f}", f"{agree:.1e}"]
            rows.append(row)
    print(f"68 regions, dt {DT_MS} ms, {args.seconds:g} s per call, medians of {args.rounds}; "
          "seconds per simulated second\n")
    print("| case | brainmass_eqx s/s | us per step | brainmass s/s (with its compile) | brainmass run only s/s "
          "| ours / brainmass run only | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
