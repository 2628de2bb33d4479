"""Where an ensemble's speed-up goes: the cost per member and step of W3's pieces, batched.

    python benchmarks/bench_batching.py [--members 1 16 256] [--rounds 5]

W3 (``bench_network.py``) measures the throughput of 256 members of W1 (1 s) in one
``jax.vmap`` against the single run's. This script splits that ratio by what each step
does, for ``--members`` ensemble sizes (1 = a single jitted run, no vmap):

- **node**: the 80 Hopf nodes alone (no coupling);
- **network, no delays**: W1's connectome and diffusive coupling read from the current state;
- **W1 (delayed)**: the full W1 network, delays read from the history with 'linear'
  interpolation (the default).

For each it prints the wall and CPU (process) time per member and step, and the batching
gain: the single run's CPU time per step divided by the batch's per member, i.e. how much
cheaper a member's step is when it shares its step with others on the same cores. A
second table gives each network's coupling cost (its time minus the node's alone: for W1
the history's write and delayed read, which replace the instantaneous coupling's matrix
product). A throughput ratio of R on C cores needs a batching gain near R / C on each
core: on 2 cores, W3's 5x needs 2.5x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DURATION_MS = 1000.0


def _runner(kind: str, members: int, problem):
    import jax
    import jax.numpy as jnp
    from bench_network import DT_MS, SPEED, N

    import brainmass_eqx as bm
    from brainmass_eqx.network import Network

    def one(k, a):
        node = bm.Hopf(N, a=a, w=0.3, init_x=problem["x0"], init_y=problem["y0"])
        if kind == "node":
            model = node
        elif kind == "nodelay":
            model = Network(node, problem["conn"], k=k)
        else:
            model = Network(node, problem["conn"], distance=problem["distance"], speed=SPEED, k=k)
        return bm.simulate(model, DURATION_MS, dt=DT_MS, sample_every=10, monitors="x")["x"]

    ks = jnp.linspace(0.1, 1.0, members)
    a = jnp.linspace(-0.2, 0.4, members)
    if members == 1:
        fn = jax.jit(one)
        args = (ks[0], a[0])
    else:
        fn = jax.jit(jax.vmap(one))
        args = (ks, a)
    return lambda: jax.block_until_ready(fn(*args))


def measure(kind: str, members: int, rounds: int, problem) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one call, after a warm-up call. A sample repeats short
    calls until it lasts about 0.5 s: a single 1 s run takes 25-40 ms, where this machine's
    noise alone is several ms."""
    call = _runner(kind, members, problem)
    call()  # compiles
    start = time.perf_counter()
    call()
    repeat = max(1, round(0.5 / max(time.perf_counter() - start, 1e-3)))
    walls, cpus = [], []
    for _ in range(rounds):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(repeat):
            call()
        walls.append((time.perf_counter() - w) / repeat)
        cpus.append((time.process_time() - c) / repeat)
    return statistics.median(walls), statistics.median(cpus)


KINDS = (
    ("node", "node alone"),
    ("nodelay", "network, no delays"),
    ("delayed", "W1 (delayed, 'linear')"),
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if any(m < 1 for m in args.members):
        parser.error("--members: every ensemble size must be at least 1")
    from bench_network import DT_MS, problem_arrays

    problem = problem_arrays()
    steps = round(DURATION_MS / DT_MS)
    results = {}
    for members in args.members:
        for kind, _ in KINDS:
            results[kind, members] = measure(kind, members, args.rounds, problem)
            print(f"[bench_batching] {kind:8s} x{members:<4d} done", file=sys.stderr, flush=True)

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    print(
        f"# bench_batching: W1's pieces for {DURATION_MS:g} ms ({steps} steps), {cores} CPU(s), medians of {args.rounds}\n"
    )
    print(
        "| piece | members | wall per member-step (us) | CPU per member-step (us) | batching gain (CPU, vs 1 member) |"
    )
    print("|---|---|---|---|---|")
    for kind, label in KINDS:
        single = results.get((kind, 1))
        for members in args.members:
            wall, cpu = results[kind, members]
            per_wall, per_cpu = wall / steps / members * 1e6, cpu / steps / members * 1e6
            gain = f"{single[1] / steps * 1e6 / per_cpu:.2f}x" if single else "-"
            print(f"| {label} | {members} | {per_wall:.3f} | {per_cpu:.3f} | {gain} |")
    print()
    print("The coupling's share (each network minus the node alone, CPU us per member-step):")
    print()
    print(
        "| members | instantaneous coupling (no delays) | gain | delayed coupling (history write and read) | gain |"
    )
    print("|---|---|---|---|---|")
    first = {}
    for members in args.members:
        row = [str(members)]
        for kind in ("nodelay", "delayed"):
            share = (
                (results[kind, members][1] - results["node", members][1]) / steps / members * 1e6
            )
            if members == 1:
                first[kind] = share
            gain = f"{first[kind] / share:.2f}x" if kind in first and share > 0 else "-"
            row += [f"{share:.3f}", gain]
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
