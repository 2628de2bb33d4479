"""Network benchmark: W1 (one delayed 80-node Hopf network), W3 (256 parameter sets through
``jax.vmap``), memory of a 60 s run, and a gradient, against brainmass 0.1.1 and neurolib 0.6.2.

    python benchmarks/bench_network.py [--rounds 3] [--skip-memory] [--threads default|1]

**W1**: 80 Hopf nodes (a = 0.2, w = 0.3 rad/ms, initial state U(0, 0.1)), dense random
symmetric conn (U(0, 1) / 80, zero diagonal), symmetric distances U(5, 200) mm, speed
10 mm/ms (delays up to 20 ms), diffusive coupling, k = 0.5, dt = 0.1 ms, 10 s simulated
(100,000 steps), x recorded every 1 ms. brainmass_eqx runs it with each delay
interpolation ('linear', the default; 'nearest', neurolib's rule; 'ceil', brainmass's);
brainmass 0.1.1 with ``Simulator.run`` (which compiles on every call); neurolib 0.6.2's
numba Hopf model (forward Euler, delays rounded to whole steps, ``model.run()``). The three
systems are timed in the same run, alternating, after one warm-up call each: medians of
``--rounds`` calls. brainmass_eqx's calls after the first use new values of (k, a), and the
script counts the XLA compilations they trigger (must be 0). "brainmass run-only" is its
10 s call minus a 10 ms call (the compilation it repeats on every call).

**W3**: W1 shortened to 1 s, 256 (k, a) sets in one ``jax.vmap`` (jitted): throughput in
network-seconds per wall-second, against the single-run throughput of W1; also the same
sets through ``brainmass_eqx.ensemble`` (on a CPU: 16-member vmaps, one thread per core).

**W3s**: W1 shortened to 1 s over 32 conduction speeds (8-12 mm/ms, ``max_delay`` 25 ms):
members with their own delays, each read by the members' blocked kernel as a single run
would be. One ``jax.vmap``, ``ensemble``, a Python loop over the speeds as numbers (after
a first pass that compiles one program per block size), and a jitted single run with a
traced speed: throughput against that single run's and against the loop.

**W6**: 1,000 Hopf regions, a sparse random connectome (5 % density, U(0, 1) / 50 weights,
as a ``jax.experimental.sparse.BCOO`` matrix for us, dense for brainmass, which has no
sparse connectome), distances U(5, 200) mm at 10 mm/ms (delays up to 20 ms), 1 s.

**Memory**: a 60 s W1 run (recording x every 1 ms: 60,000 x 80) in a fresh process; peak
RSS (``ru_maxrss``) next to the floor (JAX and brainmass_eqx imported, nothing run).
**Gradient**: ``jax.grad`` of the mean square of 1 s of W1 w.r.t. (k, speed), in a fresh
process: time of the second call and peak RSS.

The reference systems run in their own virtual environments ($BMX_BRAINMASS_PYTHON,
$BMX_NEUROLIB_PYTHON as set by ``benchmarks/run.py``, else ``~/.cache/bmx/venv-bm`` and
``~/.cache/bmx/venv-neurolib``, created on first use). With ``--threads 1`` every JAX
process (ours and brainmass's) runs XLA single-threaded (on a shared 2-core machine the
default thread pool can lose much time waiting for cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
N, DT_MS, SPEED, K0, A0, W_RAD = 80, 0.1, 10.0, 0.5, 0.2, 0.3
SINGLE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def random_connectome(rng, n: int, max_distance: float):
    """A symmetric random connectome without self-connections, drawn from ``rng``: weights
    U(0, 1) / n and tract lengths U(5, max_distance) mm (symmetrised)."""
    import numpy as np

    conn = rng.uniform(0.0, 1.0, (n, n))
    conn = (conn + conn.T) / 2 / n
    np.fill_diagonal(conn, 0.0)
    dist = rng.uniform(5.0, max_distance, (n, n))
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0.0)
    return conn, dist


def problem_arrays(seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    conn, dist = random_connectome(rng, N, 200.0)
    return dict(conn=conn, distance=dist, x0=rng.uniform(0, 0.1, N), y0=rng.uniform(0, 0.1, N))


def problem_w6(seed: int = 2, n: int = 1000, density: float = 0.05):
    import numpy as np

    rng = np.random.default_rng(seed)
    mask = rng.uniform(size=(n, n)) < density
    conn = np.where(mask, rng.uniform(0.0, 1.0, (n, n)) / 50, 0.0)
    np.fill_diagonal(conn, 0.0)
    dist = rng.uniform(5.0, 200.0, (n, n))
    return dict(conn=conn, distance=dist, x0=rng.uniform(0, 0.1, n), y0=rng.uniform(0, 0.1, n))


def reference_python(name: str) -> str | None:
    env = {"brainmass": "BMX_BRAINMASS_PYTHON", "neurolib": "BMX_NEUROLIB_PYTHON"}[name]
    if os.environ.get(env):
        return os.environ[env]
    venv = Path({"brainmass": "~/.cache/bmx/venv-bm", "neurolib": "~/.cache/bmx/venv-neurolib"}[name]).expanduser()
    python = venv / "bin" / "python"
    if not python.exists():
        package = {"brainmass": "brainmass==0.1.1", "neurolib": "neurolib==0.6.2"}[name]
        print(f"[bench_network] creating {venv} with {package} ...", file=sys.stderr, flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", package], check=True)
        except (subprocess.CalledProcessError, OSError) as err:
            print(f"[bench_network] {name} unavailable: {err}", file=sys.stderr)
            return None
    return str(python)


class Worker:
    """A reference system in its own venv, driven over stdin/stdout (see _network_workers.py)."""

    def __init__(self, system: str, python: str, problem_path: str, env: dict):
        self.proc = subprocess.Popen(
            [python, str(HERE / "_network_workers.py"), system, problem_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("worker died")
        return json.loads(line)

    def run(self, duration_ms: float, k: float = K0, a: float = A0) -> dict:
        """One call; the reply has "seconds" and "cpu", or "error" if the system failed."""
        self.proc.stdin.write(json.dumps({"duration_ms": duration_ms, "k": k, "a": a}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# -- brainmass_eqx side ----------------------------------------------------------------------


def w1_x(problem, duration_ms: float, k=K0, a=A0, interpolation: str = "linear"):
    """W1's network run for ``duration_ms``: x every 1 ms (traceable in k and a)."""
    import brainmass_eqx as bm
    from brainmass_eqx.network import Network

    node = bm.Hopf(N, a=a, w=W_RAD, init_x=problem["x0"], init_y=problem["y0"])
    net = Network(node, problem["conn"], distance=problem["distance"], speed=SPEED, k=k, interpolation=interpolation)
    return bm.simulate(net, duration_ms, dt=DT_MS, sample_every=10, monitors="x")["x"]


def ours(problem, interpolation: str):
    import jax

    def run(duration_ms, k=K0, a=A0):
        return jax.block_until_ready(w1_x(problem, duration_ms, k, a, interpolation))

    return run


class CompileCounter:
    def __init__(self):
        import jax

        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def timed_cpu(fn, *args):
    """(wall seconds, process seconds, result)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - t, time.process_time() - c, out


def w3(problem, n_sets: int = 256, rounds: int = 3):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import brainmass_eqx as bm

    def one(k, a):
        return w1_x(problem, 1000.0, k, a)

    batched = jax.jit(jax.vmap(one))
    rng = np.random.default_rng(1)
    ks = jnp.asarray(rng.uniform(0.2, 0.8, n_sets), jnp.float32)
    as_ = jnp.asarray(rng.uniform(0.1, 0.3, n_sets), jnp.float32)
    first, _ = timed(lambda: jax.block_until_ready(batched(ks, as_)))
    times = [timed(lambda r=r: jax.block_until_ready(batched(ks + 1e-3 * r, as_)))[0] for r in range(rounds)]
    # Correctness: a few members against single runs.
    out = np.asarray(batched(ks, as_))
    single = jax.jit(one)
    err = max(float(np.abs(out[i] - np.asarray(single(ks[i], as_[i]))).max()) for i in (0, 7, n_sets - 1))
    singles = [timed(lambda r=r: jax.block_until_ready(single(ks[1] + 1e-3 * r, as_[1])))[0] for r in range(rounds)]
    def member(m):
        return one(m["k"], m["a"])

    via_ensemble = bm.ensemble(member, {"k": ks, "a": as_})  # compiles
    err_ensemble = float(np.abs(np.asarray(via_ensemble) - out).max())
    ensembles = [timed(lambda r=r: bm.ensemble(member, {"k": ks + 1e-3 * r, "a": as_}))[0] for r in range(rounds)]
    return dict(
        first=first, run=statistics.median(times), single_1s=statistics.median(singles), max_err=err,
        ensemble=statistics.median(ensembles), ensemble_err=err_ensemble,
    )  # fmt: skip


def w3_speeds(problem, n_sets: int = 32, rounds: int = 3):
    """W3s: W1 shortened to 1 s over ``n_sets`` conduction speeds (8-12 mm/ms, ``max_delay``
    25 ms): one jitted ``jax.vmap``, ``ensemble``, a Python loop over the speeds as numbers
    (after a first pass that compiles one program per block size), and a jitted single run
    whose speed is traced. Members with their own delays each read as a single run would
    (`read_members_blocked_p`)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import brainmass_eqx as bm
    from brainmass_eqx.network import Network

    def one(speed):
        node = bm.Hopf(N, a=A0, w=W_RAD, init_x=problem["x0"], init_y=problem["y0"])
        net = Network(node, problem["conn"], distance=problem["distance"], speed=speed, k=K0, max_delay=25.0)
        return bm.simulate(net, 1000.0, dt=DT_MS, sample_every=10, monitors="x")["x"]

    speeds = np.linspace(8.0, 12.0, n_sets, dtype=np.float32)
    batched, traced = jax.jit(jax.vmap(one)), jax.jit(one)
    first, _ = timed(lambda: jax.block_until_ready(batched(jnp.asarray(speeds))))
    vmaps = [timed(lambda r=r: jax.block_until_ready(batched(jnp.asarray(speeds + 1e-3 * r))))[0] for r in range(rounds)]
    jax.block_until_ready(bm.ensemble(one, jnp.asarray(speeds)))
    ensembles = [timed(lambda r=r: jax.block_until_ready(bm.ensemble(one, jnp.asarray(speeds + 1e-3 * r))))[0]
                 for r in range(rounds)]  # fmt: skip

    def loop(shift):
        return [jax.block_until_ready(one(float(v) + shift)) for v in speeds]

    loop_first, _ = timed(lambda: loop(0.0))
    loops = [timed(lambda r=r: loop(1e-3 * (r + 1)))[0] for r in range(rounds)]
    jax.block_until_ready(traced(speeds[0]))
    singles = [timed(lambda r=r: jax.block_until_ready(traced(speeds[r % n_sets])))[0] for r in range(rounds)]
    out = np.asarray(batched(jnp.asarray(speeds)))
    err = max(float(np.abs(out[i] - np.asarray(one(float(speeds[i])))).max()) for i in (0, n_sets - 1))
    return dict(
        n=n_sets, first=first, vmap=statistics.median(vmaps), ensemble=statistics.median(ensembles),
        loop_first=loop_first, loop=statistics.median(loops), traced_single=statistics.median(singles), max_err=err,
    )  # fmt: skip


def w6(problem, rounds: int = 3):
    import jax
    import jax.numpy as jnp
    from jax.experimental import sparse as jsparse

    import brainmass_eqx as bm
    from brainmass_eqx.network import Network

    n = problem["conn"].shape[0]
    conn = jsparse.BCOO.fromdense(jnp.asarray(problem["conn"], jnp.float32))
    dist = problem["distance"]

    @jax.jit
    def run(k, a):
        node = bm.Hopf(n, a=a, w=W_RAD, init_x=problem["x0"], init_y=problem["y0"])
        net = Network(node, conn, distance=dist, speed=SPEED, k=k, max_delay=20.0)
        return bm.simulate(net, 1000.0, dt=DT_MS, sample_every=10, monitors="x")["x"]

    counter = CompileCounter()
    first = timed_cpu(lambda: jax.block_until_ready(run(K0, A0)))
    c0 = counter.count
    times = [timed_cpu(lambda r=r: jax.block_until_ready(run(K0 + 0.01 * (r + 1), A0)))[:2] for r in range(rounds)]
    return dict(
        first=first[0],
        run=statistics.median(t[0] for t in times),
        cpu=statistics.median(t[1] for t in times),
        recompiles=counter.count - c0,
        x_last=np.asarray(first[2])[-1],
    )


# -- subprocess measurements (memory, gradient) ----------------------------------------------


def child(mode: str, problem_path: str):
    """Run in a fresh process; print one JSON line."""
    import numpy as np

    problem = dict(np.load(problem_path))
    import jax
    import jax.numpy as jnp

    import brainmass_eqx as bm
    from brainmass_eqx.network import Network

    jnp.zeros(1).block_until_ready()
    if mode == "floor":
        print(json.dumps({"peak_mb": _peak_mb()}))
        return
    node = bm.Hopf(N, a=A0, w=W_RAD, init_x=problem["x0"], init_y=problem["y0"])
    if mode == "memory":
        net = Network(node, problem["conn"], distance=problem["distance"], speed=SPEED, k=K0)
        t, tr = timed(lambda: jax.block_until_ready(bm.simulate(net, 60000.0, dt=DT_MS, sample_every=10, monitors="x")["x"]))
        print(json.dumps({"peak_mb": _peak_mb(), "seconds": t, "shape": list(tr.shape)}))
        return
    if mode in ("grad", "grad_fc"):
        if mode == "grad":

            def loss(k, speed):
                net = Network(node, problem["conn"], distance=problem["distance"], speed=speed, k=k, max_delay=25.0)
                x = bm.simulate(net, 1000.0, dt=DT_MS, sample_every=10, monitors="x")["x"]
                return jnp.mean(x**2)

            args, new = (K0, SPEED), (K0 + 0.01, SPEED)
        else:
            # Issue 7's W4 gradient: k and the 80-vector a, FC correlation with a target.
            from brainmass_eqx.objectives import fc_corr

            target = np.random.default_rng(5).normal(size=(1000, N)).astype(np.float32)
            objective = fc_corr(as_loss=True)

            def loss(k, a):
                node_a = bm.Hopf(N, a=a, w=W_RAD, init_x=problem["x0"], init_y=problem["y0"])
                net = Network(node_a, problem["conn"], distance=problem["distance"], speed=SPEED, k=k)
                return objective(bm.simulate(net, 1000.0, dt=DT_MS, sample_every=10, monitors="x")["x"], target)

            args, new = (K0, jnp.full(N, A0)), (K0 + 0.01, jnp.full(N, A0 + 0.01))
        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        first, g = timed(lambda: jax.block_until_ready(grad(*args)))
        cpu = time.process_time()
        second, g = timed(lambda: jax.block_until_ready(grad(*new)))
        cpu = time.process_time() - cpu
        peak = _peak_mb()  # before the extra compilations below
        temp = grad.lower(*args).compile().memory_analysis()
        fwd, _ = timed(lambda: jax.block_until_ready(jax.jit(loss)(*args)))
        fwd2, _ = timed(lambda: jax.block_until_ready(jax.jit(loss)(*new)))
        print(json.dumps({
            "peak_mb": peak, "first": first, "grad": second, "grad_cpu": cpu, "forward": fwd2,
            "temp_mb": temp.temp_size_in_bytes / 2**20 if temp is not None else None,
        }))
        return
    raise ValueError(mode)


def _peak_mb() -> float:
    """Peak RSS of this process. Linux keeps ``ru_maxrss`` across ``execve``, so a child
    started by the (large) benchmark process would report the parent's peak; ``VmHWM``
    starts afresh with the new program."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(mode: str, problem_path: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode, problem_path],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- main ------------------------------------------------------------------------------------


import numpy as np  # noqa: E402  (the benchmark needs it; the workers' venvs have their own)


def ratios(x, *references) -> str:
    """Table cells ``x / r`` for each reference time ``r`` (blank where it is missing)."""
    return " | ".join(fmt(x / r if r else None, 2) for r in references)


def fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-w6", action="store_true")
    parser.add_argument("--threads", choices=["default", "1"], default="1")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    env = dict(os.environ)
    if args.threads == "1":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_FLAGS).strip()
        os.environ["XLA_FLAGS"] = env["XLA_FLAGS"]  # before JAX starts in this process

    import numpy as np

    tmp = tempfile.mkdtemp(prefix="bench_network_")
    problem = problem_arrays()
    problem_path = os.path.join(tmp, "problem.npz")
    np.savez(problem_path, **problem)

    workers = {}
    for name in ("brainmass", "neurolib"):
        python = reference_python(name)
        if python is not None:
            try:
                workers[name] = Worker(name, python, problem_path, env)
            except (RuntimeError, OSError) as err:
                print(f"[bench_network] {name} worker failed to start: {err}", file=sys.stderr)

    counter = CompileCounter()
    interps = ("linear", "nearest", "ceil")
    runners = {i: ours(problem, i) for i in interps}
    first, compiles_first, results = {}, {}, {}
    for i in interps:
        c0 = counter.count
        first[i], results[i] = timed(runners[i], 10000.0)
        compiles_first[i] = counter.count - c0
    ref_first = {}
    for name, w in workers.items():
        ref_first[name] = w.run(10000.0)  # warm-up
    times = {i: [] for i in interps}
    cpu_times = {i: [] for i in interps}
    ref_times = {name: [] for name in workers}
    ref_cpu = {name: [] for name in workers}
    short_cpu = []
    short = []
    compiles_later = 0
    # Each round rotates the order of the systems: the call that follows a reference
    # system's (multi-threaded, in another process) finds the cores still busy with its
    # spinning threads for a while, which made the first of ours ('linear') 0.29-0.39 s in
    # runs where it took 0.24-0.27 s alone.
    systems = list(interps) + list(workers)
    for r in range(args.rounds):
        k, a = K0 + 0.01 * (r + 1), A0 + 0.005 * (r + 1)
        for system in systems[r % len(systems) :] + systems[: r % len(systems)]:
            if system in runners:
                c0 = counter.count
                t, c, _ = timed_cpu(runners[system], 10000.0, k, a)
                compiles_later += counter.count - c0
                times[system].append(t)
                cpu_times[system].append(c)
                continue
            reply = workers[system].run(10000.0, k, a)
            ref_times[system].append(reply["seconds"])
            ref_cpu[system].append(reply["cpu"])
            if system == "brainmass":
                reply = workers["brainmass"].run(10.0, k, a)
                short.append(reply["seconds"])
                short_cpu.append(reply["cpu"])

    # Agreement: brainmass_eqx 'ceil' vs brainmass (same rule, same scheme), 'nearest' vs neurolib.
    agree = {}
    x_ours = {i: np.asarray(runners[i](10000.0))[-1] for i in ("ceil", "nearest")}
    if "brainmass" in workers:
        x_bm = np.asarray(workers["brainmass"].run(10000.0)["x_last"])
        agree["brainmass"] = float(np.abs(x_ours["ceil"] - x_bm).max() / np.abs(x_bm).max())
    if "neurolib" in workers:
        x_nl = np.asarray(workers["neurolib"].run(10000.0)["x_last"])
        agree["neurolib"] = float(np.abs(x_ours["nearest"] - x_nl).max() / np.abs(x_nl).max())
    for w in workers.values():
        w.close()
    workers = {name: None for name in workers}  # closed; the names say which systems ran

    # The same 'linear' calls with XLA's gather for the delayed read (native kernels off).
    import brainmass_eqx as bm

    xla_reads = None
    if bm.native_kernels_available():
        bm.set_native_kernels(False)
        timed(runners["linear"], 10000.0)  # compile
        runs = [timed_cpu(runners["linear"], 10000.0, K0 + 0.01 * (r + 1), A0 + 0.005 * (r + 1)) for r in range(args.rounds)]
        xla_reads = (statistics.median(t for t, _, _ in runs), statistics.median(c for _, c, _ in runs))
        bm.set_native_kernels(True)

    w3_res = w3(problem, rounds=args.rounds)
    w3s_res = w3_speeds(problem, rounds=args.rounds)
    w6_res = w6_bm = None
    if not args.skip_w6:
        p6 = problem_w6()
        p6_path = os.path.join(tmp, "problem_w6.npz")
        np.savez(p6_path, **p6)
        w6_res = w6(p6, rounds=args.rounds)
        if "brainmass" in workers:
            try:
                bm6 = Worker("brainmass", reference_python("brainmass"), p6_path, env)
                w6_bm = [bm6.run(1000.0)]
                if "error" not in w6_bm[0]:
                    w6_bm += [bm6.run(1000.0, K0 + 0.01 * (r + 1)) for r in range(max(1, args.rounds - 1))]
                bm6.close()
            except (RuntimeError, OSError) as err:
                w6_bm = [{"error": str(err)}]
    mem = grad = grad_fc = floor = None
    if not args.skip_memory:
        floor = run_child("floor", problem_path, env)
        mem = run_child("memory", problem_path, env)
        grad = run_child("grad", problem_path, env)
        grad_fc = run_child("grad_fc", problem_path, env)

    med = {i: statistics.median(v) for i, v in times.items()}
    ref_med = {n: statistics.median(v) for n, v in ref_times.items()}
    bm_med = ref_med.get("brainmass")
    bm_runonly = bm_med - statistics.median(short) if bm_med is not None and short else None
    nl_med = ref_med.get("neurolib")

    lines = []
    lines.append(f"XLA threads: {'1 (XLA_FLAGS=' + SINGLE_THREAD_FLAGS + ')' if args.threads == '1' else 'default'}; "
                 f"medians of {args.rounds} calls after a warm-up, alternating the systems (their order rotated each round).\n")
    lines.append("**W1**: 80-node delayed Hopf network, 10 s at dt = 0.1 ms, x every 1 ms\n")
    lines.append("| system | first call (s) | run (s) | run / brainmass call | run / brainmass run-only | run / neurolib |")
    lines.append("|---|---|---|---|---|---|")
    for i in interps:
        lines.append(
            f"| brainmass_eqx, interpolation='{i}' | {fmt(first[i])} | {fmt(med[i])} | "
            f"{ratios(med[i], bm_med, bm_runonly, nl_med)} |"
        )
    if xla_reads is not None:
        lines.append(
            f"| brainmass_eqx, 'linear', XLA reads (native kernels off) | | {fmt(xla_reads[0])} | "
            f"{ratios(xla_reads[0], bm_med, bm_runonly, nl_med)} |"
        )
    if bm_med is not None:
        lines.append(f"| brainmass 0.1.1 `Simulator.run` (compiles every call) | {fmt(ref_first['brainmass']['seconds'])} | {fmt(bm_med)} | 1 | | |")
        lines.append(f"| brainmass 0.1.1 run-only (10 s call − 10 ms call) | | {fmt(bm_runonly)} | | 1 | |")
    if nl_med is not None:
        lines.append(f"| neurolib 0.6.2 numba Hopf `model.run()` | {fmt(ref_first['neurolib']['seconds'])} | {fmt(nl_med)} | | | 1 |")
    lines.append("")
    # The same calls in process (CPU) time: on a shared machine wall times also count the
    # time other processes held the cores.
    cpu = {i: statistics.median(v) for i, v in cpu_times.items()}
    rcpu = {n: statistics.median(v) for n, v in ref_cpu.items()}
    bm_cpu, nl_cpu = rcpu.get("brainmass"), rcpu.get("neurolib")
    bm_cpu_runonly = bm_cpu - statistics.median(short_cpu) if bm_cpu is not None and short_cpu else None
    lines.append("The same calls in process time (CPU s):\n")
    lines.append("| system | run CPU (s) | / brainmass call | / brainmass run-only | / neurolib |")
    lines.append("|---|---|---|---|---|")
    for i in interps:
        lines.append(f"| brainmass_eqx, interpolation='{i}' | {fmt(cpu[i])} | {ratios(cpu[i], bm_cpu, bm_cpu_runonly, nl_cpu)} |")
    if xla_reads is not None:
        lines.append(f"| brainmass_eqx, 'linear', XLA reads | {fmt(xla_reads[1])} | {ratios(xla_reads[1], bm_cpu, bm_cpu_runonly, nl_cpu)} |")
    if bm_cpu is not None:
        lines.append(f"| brainmass 0.1.1 `Simulator.run` | {fmt(bm_cpu)} | 1 | | |")
        lines.append(f"| brainmass 0.1.1 run-only | {fmt(bm_cpu_runonly)} | | 1 | |")
    if nl_cpu is not None:
        lines.append(f"| neurolib 0.6.2 numba Hopf | {fmt(nl_cpu)} | | | 1 |")
    lines.append("")
    lines.append(
        f"Compile (first call − run, 'linear'): {fmt(first['linear'] - med['linear'])} s; XLA compilations in the "
        f"{args.rounds * len(interps)} later calls with new (k, a): **{compiles_later}**. "
        + (f"Final x, 'ceil' vs brainmass: max rel. difference {agree['brainmass']:.1e}; " if "brainmass" in agree else "")
        + (f"'nearest' vs neurolib (Euler): {agree['neurolib']:.1e}." if "neurolib" in agree else "")
    )
    lines.append("")
    single_tp = 10.0 / med["linear"]
    lines.append("**W3**: 256 (k, a) sets of W1 shortened to 1 s, one `jax.vmap` (jitted)\n")
    lines.append("| case | first call (s) | run (s) | throughput (network-s / s) | vs W1 single-run throughput |")
    lines.append("|---|---|---|---|---|")
    lines.append(
        f"| brainmass_eqx vmap, 256 sets | {fmt(w3_res['first'])} | {fmt(w3_res['run'])} | {fmt(256 / w3_res['run'])} | "
        f"{fmt(256 / w3_res['run'] / single_tp, 2)}x |"
    )
    lines.append(
        f"| brainmass_eqx `ensemble`, 256 sets (16-member vmaps, one thread per core) | | {fmt(w3_res['ensemble'])} | "
        f"{fmt(256 / w3_res['ensemble'])} | {fmt(256 / w3_res['ensemble'] / single_tp, 2)}x |"
    )
    lines.append(f"| brainmass_eqx single run (W1, 10 s) | | {fmt(med['linear'])} | {fmt(single_tp)} | 1x |")
    lines.append(
        f"| brainmass_eqx single 1 s run (jitted) | | {fmt(w3_res['single_1s'])} | {fmt(1 / w3_res['single_1s'])} | "
        f"{fmt(1 / w3_res['single_1s'] / single_tp, 2)}x |"
    )
    if bm_med is not None:
        lines.append(f"| brainmass 0.1.1, a loop of `Simulator.run` (10 s calls) | | | {fmt(10 / bm_med)} | {fmt(10 / bm_med / single_tp, 2)}x |")
    lines.append("")
    lines.append(
        f"vmap members vs single runs: max |difference| {w3_res['max_err']:.1e}; `ensemble` vs the vmap: "
        f"{w3_res['ensemble_err']:.1e}."
    )
    lines.append("")
    n3s = w3s_res["n"]
    lines.append(
        f"**W3s**: {n3s} conduction speeds (8-12 mm/ms, max_delay 25 ms) of W1 shortened to 1 s: members with "
        "their own delays\n"
    )
    lines.append("| case | run (s) | per member (ms) | throughput vs a traced single run | vs the loop over speeds as numbers |")
    lines.append("|---|---|---|---|---|")
    loop_s, one_s = w3s_res["loop"], w3s_res["traced_single"]
    for label, key in ((f"one `jax.vmap` of {n3s} (first call {fmt(w3s_res['first'])} s)", "vmap"),
                       ("`ensemble`", "ensemble"),
                       (f"a Python loop over the speeds as numbers (first pass {fmt(w3s_res['loop_first'])} s)", "loop")):
        lines.append(f"| {label} | {fmt(w3s_res[key])} | {fmt(w3s_res[key] / n3s * 1e3)} | "
                     f"{fmt(one_s * n3s / w3s_res[key], 2)}x | {fmt(loop_s / w3s_res[key], 2)}x |")  # fmt: skip
    lines.append(
        f"| a jitted single run with a traced speed | {fmt(one_s)} | {fmt(one_s * 1e3)} | 1x | "
        f"{fmt(loop_s / n3s / one_s, 2)}x |"
    )
    lines.append("")
    lines.append(f"vmap members vs runs with the speed as a number: max |difference| {w3s_res['max_err']:.1e}.")
    lines.append("")
    if w6_res is not None:
        lines.append("**W6**: 1,000-region sparse network (5 % density, BCOO), delays <= 20 ms, 1 s\n")
        lines.append("| system | first call (s) | run (s) | run CPU (s) | recompiles |")
        lines.append("|---|---|---|---|---|")
        lines.append(
            f"| brainmass_eqx (jitted, sparse conn) | {fmt(w6_res['first'])} | {fmt(w6_res['run'])} | "
            f"{fmt(w6_res['cpu'])} | {w6_res['recompiles']} |"
        )
        if w6_bm is None:
            lines.append("| brainmass 0.1.1 | not run (no brainmass environment) | | | |")
        elif "error" in w6_bm[0]:
            lines.append(f"| brainmass 0.1.1 (dense conn) | failed: {w6_bm[0]['error']} | | | |")
        else:
            runs = w6_bm[1:]
            lines.append(
                f"| brainmass 0.1.1 `Simulator.run` (dense conn; compiles every call) | {fmt(w6_bm[0]['seconds'])} | "
                f"{fmt(statistics.median(r['seconds'] for r in runs))} | {fmt(statistics.median(r['cpu'] for r in runs))} | every call |"
            )
            x_bm = np.asarray(w6_bm[0]["x_last"])
            lines.append("")
            lines.append(
                "Final x, brainmass_eqx ('linear') vs brainmass ('ceil' delays): max rel. difference "
                f"{float(np.abs(w6_res['x_last'] - x_bm).max() / np.abs(x_bm).max()):.1e} (different delay rules)."
            )
        lines.append("")
    if mem is not None:
        lines.append("**Memory and gradient** (fresh processes)\n")
        lines.append("| case | peak RSS (MB) | time (s) |")
        lines.append("|---|---|---|")
        lines.append(f"| floor: jax + brainmass_eqx imported | {fmt(floor.get('peak_mb'), 4)} | |")
        lines.append(f"| W1 60 s, x every 1 ms | {fmt(mem.get('peak_mb'), 4)} | {fmt(mem.get('seconds'))} (first call) |")
        for res, what in ((grad, "(k, speed), mean x^2"), (grad_fc, "(k, 80-vector a), fc_corr (W4's gradient)")):
            if "error" in res:
                lines.append(f"| jax.grad, 1 s of W1, w.r.t. {what} | failed: {res['error']} | |")
            else:
                lines.append(
                    f"| jax.grad, 1 s of W1, w.r.t. {what} | {fmt(res['peak_mb'], 4)} (XLA temp buffers "
                    f"{fmt(res['temp_mb'])}) | {fmt(res['grad'])} (CPU {fmt(res['grad_cpu'])}; forward "
                    f"{fmt(res['forward'])}; first call {fmt(res['first'])}) |"
                )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
