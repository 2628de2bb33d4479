"""The GPU column: brainmass_eqx's network and fitting cases on an accelerator.

    python benchmarks/bench_gpu.py [--members 256 1024 4096 16384] [--rounds 3] [--budget 420]
                                   [--json PATH]

The reference systems cannot run beside it there (a GPU machine of this project reaches no
package index, so brainmass 0.1.1 and neurolib 0.6.2 cannot be installed): their figures are
the CPU tables' (`bench_network.py`, `bench_fit.py`), and this script reports ours on the
accelerator against ours on it, with the same problems (`bench_network.problem_arrays`).

- **W3 scaling**: W1 shortened to 1 s (10,000 steps of the 80-node delayed Hopf network),
  one run jitted, then ``--members`` (k, a) sets through one jitted ``jax.vmap``: seconds,
  throughput (network-seconds per wall-second) and its ratio to the single run's; three
  members checked against single runs; the 256 sets also through ``brainmass_eqx.ensemble``.
- **W1**: the 10 s run ('linear' delays), compile (first call minus a later one) and the
  median of ``--rounds`` calls with new (k, a), with the XLA compilations those trigger.
- **W4**: one gradient step fitting k and the 80-vector a with ``fc_corr`` (bench_fit's
  child, a fresh process); **P32n**: a nevergrad generation of 32 W4 candidates, the
  Fitter's one vmap against a Python loop of single losses (bench_fit's child).
- **W6**: the 1,000-region sparse network (BCOO), 1 s.

Sections run in that order, each only while ``--budget`` seconds (from the start) remain
enough for it, so a lease of fixed length returns the most important figures first; each
result is printed as it comes, and the whole set is written to ``--json``.
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
sys.path.insert(0, str(HERE))
# JAX reads this when it first starts a backend: the fit cases' fresh processes share the GPU.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from bench_network import (  # noqa: E402
    A0,
    K0,
    SPEED,
    W_RAD,
    CompileCounter,
    N,
    ours,
    problem_arrays,
    problem_w6,
    timed,
    w1_x,
    w6,
)

SECTIONS = ("accuracy", "W3", "W1", "W4", "P32n", "W6")


def _say(*parts) -> None:
    print(*parts, flush=True)


def device_line() -> str:
    import jax

    d = jax.devices()[0]
    return (
        f"{d.platform} {getattr(d, 'device_kind', '')} x{len(jax.devices())}, jax {jax.__version__}"
    )


def jax_platform() -> str:
    import jax

    return jax.default_backend()


def w3_scaling(problem, members: list[int], rounds: int, deadline: float) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import brainmass_eqx as bm

    def one(k, a):
        return w1_x(problem, 1000.0, k, a)

    single = jax.jit(one)
    first, _ = timed(lambda: jax.block_until_ready(single(K0, A0)))
    singles = [
        timed(lambda r=r: jax.block_until_ready(single(K0 + 1e-3 * (r + 1), A0)))[0]
        for r in range(rounds)
    ]
    t_single = statistics.median(singles)
    rows = [
        dict(members=1, first=first, run=t_single, throughput=1.0 / t_single, ratio=1.0, err=0.0)
    ]
    _say(
        f"W3 single 1 s run: first call {first:.2f} s, then {t_single * 1e3:.1f} ms ({1 / t_single:.1f} network-s/s)"
    )
    batched = jax.jit(jax.vmap(one))

    def call(ks, as_):
        return jax.block_until_ready(batched(ks, as_))

    rng = np.random.default_rng(1)
    for m in members:
        # The first call compiles; a size whose run would pass the deadline is skipped.
        estimate = rows[-1]["run"] * m / rows[-1]["members"] if len(rows) > 1 else 0.0
        if time.perf_counter() + 2 * estimate + 20 > deadline:
            _say(f"W3 {m} members: skipped (budget)")
            break
        ks = jnp.asarray(rng.uniform(0.2, 0.8, m), jnp.float32)
        as_ = jnp.asarray(rng.uniform(0.1, 0.3, m), jnp.float32)
        first, out = timed(call, ks, as_)
        times = [timed(call, ks + 1e-3 * r, as_)[0] for r in range(rounds)]
        run = statistics.median(times)
        out = np.asarray(out)
        err = max(
            float(np.abs(out[i] - np.asarray(single(ks[i], as_[i]))).max())
            for i in (0, m // 2, m - 1)
        )
        row = dict(
            members=m, first=first, run=run, throughput=m / run, ratio=(m / run) * t_single, err=err
        )
        rows.append(row)
        _say(
            f"W3 {m} members: first call {first:.2f} s, then {run:.3f} s: {m / run:.0f} network-s/s, "
            f"{row['ratio']:.1f}x the single run; members vs single runs {err:.1e}"
        )
    if 256 in members and time.perf_counter() + 30 < deadline:
        ks = jnp.asarray(rng.uniform(0.2, 0.8, 256), jnp.float32)
        as_ = jnp.asarray(rng.uniform(0.1, 0.3, 256), jnp.float32)

        def member(p):
            return one(p["k"], p["a"])

        ref = np.asarray(batched(ks, as_))
        first, out = timed(lambda: bm.ensemble(member, {"k": ks, "a": as_}))
        times = [
            timed(lambda r=r: bm.ensemble(member, {"k": ks + 1e-3 * r, "a": as_}))[0]
            for r in range(rounds)
        ]
        run = statistics.median(times)
        err = float(np.abs(np.asarray(out) - ref).max())
        rows.append(
            dict(
                members="256 (ensemble)",
                first=first,
                run=run,
                throughput=256 / run,
                ratio=(256 / run) * t_single,
                err=err,
            )
        )
        _say(
            f"W3 256 members through ensemble: {run:.3f} s, {(256 / run) * t_single:.1f}x the single run; vs vmap {err:.1e}"
        )
    return rows


def accuracy(problem) -> list[dict]:
    """1 s of W1 on the accelerator against the same program on the host's CPU (float32 both),
    with JAX's default matrix-product precision and with ``'highest'`` (no TF32); and eight
    copies of the run through one ``jax.vmap`` (the batched delay read) against the CPU's run."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import brainmass_eqx as bm
    from brainmass_eqx.network import Network

    cpu = jax.devices("cpu")[0]
    rows = []
    for label, distance in (("delayed", problem["distance"]), ("no delays", None)):

        def sim(k, distance=distance):
            node = bm.Hopf(N, a=A0, w=W_RAD, init_x=problem["x0"], init_y=problem["y0"])
            speed = SPEED if distance is not None else None
            net = Network(node, problem["conn"], distance=distance, speed=speed, k=k)
            return bm.simulate(net, 1000.0, dt=0.1, sample_every=10, monitors="x")["x"]

        def run(sim=sim):
            return np.asarray(jax.jit(sim)(K0))

        def run_batched(sim=sim):
            return np.asarray(jax.jit(jax.vmap(sim))(jnp.full(8, K0, jnp.float32)))

        with jax.default_device(cpu):
            ref = run()
        scale = float(np.abs(ref).max())
        row = dict(case=label, scale=scale)
        for precision in ("default", "highest"):
            with jax.default_matmul_precision(None if precision == "default" else "highest"):
                out = run()
                t, _ = timed(run)
                members = run_batched()
            row[precision] = float(np.abs(out - ref).max()) / scale
            row[f"{precision}_s"] = t
            row[f"{precision}_vmap8"] = float(np.abs(members - ref).max()) / scale
        rows.append(row)
        _say(
            f"accuracy, {label}: accelerator vs CPU, max |diff| / max |x| = {row['default']:.1e} (default "
            f"precision, {row['default_s']:.2f} s per call; vmap of 8: {row['default_vmap8']:.1e}), "
            f"{row['highest']:.1e} ('highest', {row['highest_s']:.2f} s; vmap of 8: {row['highest_vmap8']:.1e})"
        )
    return rows


def w1(problem, rounds: int) -> dict:
    run = ours(problem, "linear")
    counter = CompileCounter()
    first, _ = timed(lambda: run(10000.0))
    c0 = counter.count
    times = [
        timed(lambda r=r: run(10000.0, K0 + 0.01 * (r + 1), A0 + 0.005 * (r + 1)))[0]
        for r in range(rounds)
    ]
    t = statistics.median(times)
    return dict(first=first, run=t, compile=first - t, recompiles=counter.count - c0, calls=rounds)


def fit_child(child: str, case: str, steps: int) -> dict:
    proc = subprocess.run(
        [sys.executable, str(HERE / "bench_fit.py"), "--child", child, case, str(steps)],
        capture_output=True, text=True, cwd=HERE.parent,
    )  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]}
    return json.loads(lines[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the whole script")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to run")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget
    results: dict = {"device": device_line()}
    _say("device:", results["device"])

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))

    problem = problem_arrays()
    run = set(args.sections)
    if "accuracy" in run and jax_platform() != "cpu":
        results["accuracy"] = accuracy(problem)
        save()
    if "W3" in run:
        results["W3"] = w3_scaling(problem, args.members, args.rounds, deadline - 120)
        save()
    # W1 is 10x W3's single run, called 1 + rounds times.
    w1_cost = 10 * results["W3"][0]["run"] * (args.rounds + 1) + 10 if "W3" in results else 30
    if "W1" in run and time.perf_counter() + w1_cost < deadline - 100:
        results["W1"] = w1(problem, args.rounds)
        r = results["W1"]
        _say(
            f"W1 10 s: {r['run']:.3f} s per call, compile {r['compile']:.2f} s, {r['recompiles']} recompiles in {r['calls']} calls"
        )
    save()
    for child, case, key in (("eqx_grad", "W4", "W4"), ("eqx_population", "P32n", "P32n")):
        if key in run and time.perf_counter() + 60 < deadline:
            results[key] = fit_child(child, case, 4)
            _say(f"{key}:", json.dumps(results[key]))
            save()
    if "W6" in run and time.perf_counter() + 40 < deadline:
        r = w6(problem_w6(), rounds=args.rounds)
        r.pop("x_last", None)
        results["W6"] = r
        _say(
            f"W6 1,000 regions sparse, 1 s: {r['run']:.3f} s per call, first {r['first']:.2f} s, {r['recompiles']} recompiles"
        )
    save()
    _say(f"total {time.perf_counter() - start:.0f} s\n")
    _say("\n".join(table(results)))
    return 0


def table(results: dict) -> list[str]:
    """The results as a Markdown table (what `run.py` collects)."""
    rows = [f"Device: {results['device']}", "", "| case | result |", "|---|---|"]
    for r in results.get("accuracy", []):
        rows.append(
            f"| accuracy, {r['case']}: vs the host CPU, max abs diff / max abs x | {r['default']:.1e} "
            f"(`vmap` of 8: {r['default_vmap8']:.1e}) |"
        )
    for r in results.get("W3", []):
        rows.append(
            f"| W3, {r['members']} member(s), 1 s | {r['run']:.3f} s, {r['throughput']:.0f} network-s/s, "
            f"{r['ratio']:.1f}x the single run; members vs single runs {r['err']:.1e} |"
        )
    if "W1" in results:
        r = results["W1"]
        rows.append(f"| W1, 10 s | {r['run']:.3f} s per call, compile {r['compile']:.2f} s, {r['recompiles']} recompiles |")
    for key in ("W4", "P32n"):
        r = results.get(key)
        if r and "error" in r:
            rows.append(f"| {key} | failed: {r['error']} |")
        elif r and key == "W4":
            rows.append(f"| W4 gradient step | {r['run']:.3f} s, compile {r['compile']:.2f} s, loss {r['loss']:.5f} |")
        elif r:
            rows.append(
                f"| P32n, 32 candidates | one `vmap` {r['run']:.3f} s against a loop {r['loop']:.2f} s: {r['speedup']:.1f}x |"
            )
    if "W6" in results:
        r = results["W6"]
        rows.append(f"| W6, 1,000 regions sparse, 1 s | {r['run']:.3f} s per call, {r['recompiles']} recompiles |")
    return rows


if __name__ == "__main__":
    sys.exit(main())
