"""Fitting benchmarks: brainmass_eqx against brainmass 0.1.1, in the same run.

    python benchmarks/bench_fit.py [--cases S1 P32 W4] [--steps 4] [--repeat 1] [--bm-python PATH]

Every case runs in a fresh subprocess (so compile caches are cold and peak RSS is the
case's own). Cases:

- **S1**: one gradient step fitting ``a`` (80-vector) of 80 uncoupled Hopf nodes on a 1 s
  simulation (dt = 0.1 ms, 10 000 steps) with ``timeseries_rmse``, Adam(0.05).
- **S1c**, **W4c**: S1, W4 with ``adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=10_000)``
  in ``simulate`` (a checkpoint per step: no recomputation in the backward pass, every
  step's state and solver state kept in memory) instead of diffrax's default checkpointing.
- **W4**: one gradient step fitting ``k`` and the 80-vector ``a`` of the 80-node delayed
  Hopf network (dense random symmetric conn / 80, distances U(5, 200) mm, speed 10 mm/ms,
  so delays up to 20 ms; diffusive coupling, k = 0.5; a = 0.2, w = 0.3, init U(0, 0.1);
  ``brainmass_api.md`` section 12 (d)) on a 1 s simulation with ``fc_corr(as_loss=True)``.
  Runs for brainmass_eqx once ``brainmass_eqx.network.Network`` exists.
- **P32**: one nevergrad generation of 32 candidates of S1's problem, evaluated by the
  Fitter's own path (a real ``backend='nevergrad'`` fit, median generation time: on a CPU
  the population in one slice per core, each slice one ``jax.vmap`` call, the slices at
  once; ``population_threads`` in the table) against a Python loop of 32 calls of the
  jitted single loss, the fit and the loop alternating over 3 rounds (the ratio is the
  median of the rounds' ratios, their range beside it); also the whole population in one
  ``jax.vmap`` call (``population_threads=1``) and with ``population='map'``
  (``jax.lax.map``).
  **P32e**: the same with ``diffrax.Euler()`` instead of the default `ExponentialEuler`
  (whose ``exprel`` dominates the batched step). **P32n**: the same for W4's problem
  (``k`` and ``a`` of the delayed network, fc_corr).

Timing as in ``brainmass_api.md`` section 12 (d): a callback stamps every step; step 0 =
trace + compile + run, "run" = the median of steps 1..n-1, compile = step 0 - run. Each is
given in wall time and in CPU time of the process (``time.process_time``: on a shared
machine the less noisy of the two). With ``--repeat R`` each implementation runs in R fresh
children, alternating, and medians are reported.

After the per-case table, a summary of W4 and P32n against issue 7's targets: per step at
least 3x faster than brainmass, compile under 3 s, peak RSS under 500 MB, and the 32
candidates' vmap at least 3x faster than a Python loop over them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)
BM_PYTHON = os.environ.get("BMX_BRAINMASS_PYTHON") or os.path.expanduser("~/.cache/bmx/venv-bm/bin/python")
N, DURATION_MS, DT_MS = 80, 1000.0, 0.1


from bench_network import (  # noqa: E402  (VmHWM peak; the shared W1 problem)
    _peak_mb as _peak_rss_mb,
    problem_arrays,
)


def _network_setup():
    """W1's connectome (``bench_network.problem_arrays``), as float32."""
    problem = problem_arrays()
    return problem["conn"].astype("float32"), problem["distance"].astype("float32")


def _stamp() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def _timings(stamps, t0):
    """``stamps``: ``(wall, cpu)`` after each step; ``t0``: the same before the first."""
    out = {}
    for j, name in ((0, ""), (1, "_cpu")):
        marks = [t0[j]] + [s[j] for s in stamps]
        steps = [b - a for a, b in zip(marks[:-1], marks[1:])]
        run = _median(steps[1:]) if len(steps) > 1 else float("nan")
        out.update({f"step0{name}": steps[0], f"run{name}": run, f"compile{name}": steps[0] - run})
    return out


# -- children: brainmass_eqx -----------------------------------------------------------------


NETWORK_CASES = ("W4", "P32n")


def _eqx_setup(case: str, bounded: bool):
    """``(start model, true model, objective)``: 80 Hopf nodes, alone or in the W4 network."""
    import jax.numpy as jnp

    import brainmass_eqx as bm
    from brainmass_eqx import objectives

    def param(value, bounds):
        return bm.Param(value, bounds=bounds if bounded else None)

    def node(a):
        return bm.Hopf(n_regions=N, a=a, w=0.3, init_x=bm.Uniform(0.0, 0.1), init_y=bm.Uniform(0.0, 0.1))

    a0, a_true = jnp.full(N, 0.15), jnp.full(N, 0.2)
    if case not in NETWORK_CASES:
        return node(param(a0, (0.05, 0.5))), node(a_true), objectives.timeseries_rmse()
    from brainmass_eqx.network import Network  # ImportError until it exists

    conn, dist = _network_setup()

    def build(a, k):
        return Network(node(a), conn, distance=dist, speed=10.0, coupling="diffusive", coupled_var="x", k=k)

    return build(param(a0, (0.05, 0.5)), param(0.4, (0.1, 1.0))), build(a_true, 0.5), objectives.fc_corr(as_loss=True)


def eqx_grad(case: str, n_steps: int) -> dict:
    import jax.random as jr
    import optax

    import brainmass_eqx as bm
    from brainmass_eqx.fit import Fitter

    key = jr.key(0)
    adjoint = None
    if case.endswith("c"):
        import diffrax

        adjoint = diffrax.RecursiveCheckpointAdjoint(checkpoints=int(round(DURATION_MS / DT_MS)))
    model, truth, objective = _eqx_setup(case.removesuffix("c"), bounded=False)

    def predict(m):
        return bm.simulate(m, DURATION_MS, dt=DT_MS, key=key, monitors="x", adjoint=adjoint).ys["x"]

    target = predict(truth)
    stamps = []
    fitter = Fitter(model, optax.adam(0.05), predict=predict, objective=objective, callbacks=lambda info: stamps.append(_stamp()))
    t0 = _stamp()
    result = fitter.fit(target, n_steps)
    return dict(_timings(stamps, t0), loss=result.best_loss, rss=_peak_rss_mb())


def eqx_population(case: str, n_steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import numpy as np

    import brainmass_eqx as bm
    from brainmass_eqx.fit import Fitter

    popsize = 32
    key = jr.key(0)
    solver = None
    if case == "P32e":
        import diffrax

        solver = diffrax.Euler()
    model, truth, objective = _eqx_setup(case, bounded=True)

    def predict(m):
        return bm.simulate(m, DURATION_MS, dt=DT_MS, key=key, monitors="x", check_finite=False, solver=solver).ys["x"]

    target = predict(truth)
    stamps = []
    fitter = Fitter(
        model, "DE", predict=predict, objective=objective, backend="nevergrad",
        callbacks=lambda info: stamps.append(_stamp()),
    )  # fmt: skip
    single = jax.jit(lambda values, target: fitter.loss(values, target)[0])
    rng = np.random.default_rng(0)
    box = fitter.space.box("the benchmark")
    candidates = [
        {name: jnp.asarray(rng.uniform(*box[name]), jnp.float32) for name in fitter.names} for _ in range(popsize)
    ]
    single(candidates[0], target).block_until_ready()  # compile

    def loop():
        t = _stamp()
        for c in candidates:
            single(c, target).block_until_ready()
        u = _stamp()
        return u[0] - t[0], u[1] - t[1]

    # The Fitter's generations and the loop alternate, so that each ratio compares the two
    # at the same moment of a shared machine; the figures are medians over the rounds.
    rounds, threads = [], None
    for _ in range(3):
        stamps.clear()
        t0 = _stamp()
        threads = fitter.fit(target, n_steps, popsize=popsize, key=key).raw["population_threads"]
        fit_times = _timings(stamps, t0)
        rounds.append((fit_times, loop()))
    vmapped = {k: _median([r[0][k] for r in rounds]) for k in rounds[0][0]}
    vmapped.update({k: rounds[0][0][k] for k in ("step0", "step0_cpu", "compile", "compile_cpu")})  # the first fit's
    loop_wall, loop_cpu = _median([r[1][0] for r in rounds]), _median([r[1][1] for r in rounds])
    ratios = [r[1][0] / r[0]["run"] for r in rounds]
    stamps.clear()
    t0 = _stamp()
    fitter.fit(target, n_steps, popsize=popsize, key=key, population="map")
    mapped = _timings(stamps, t0)
    stamps.clear()
    t0 = _stamp()
    fitter.fit(target, n_steps, popsize=popsize, key=key, population_threads=1)
    whole = _timings(stamps, t0)
    return dict(
        vmapped, loop=loop_wall, loop_cpu=loop_cpu, speedup=_median(ratios), speedup_min=min(ratios),
        speedup_max=max(ratios), mapped=mapped["run"], mapped_cpu=mapped["run_cpu"], one_call=whole["run"],
        one_call_cpu=whole["run_cpu"], threads=threads, rss=_peak_rss_mb(),
    )  # fmt: skip


# -- children: brainmass 0.1.1 (run with its own interpreter) ---------------------------------


def bm_grad(case: str, n_steps: int) -> dict:
    import brainmass
    import brainstate
    import braintools
    import brainunit as u
    import jax.numpy as jnp
    from brainstate.nn import Param

    brainstate.environ.set(dt=DT_MS * u.ms)

    def node(a):
        return brainmass.HopfStep(N, a=a, w=0.3, init_x=braintools.init.Uniform(0.0, 0.1), init_y=braintools.init.Uniform(0.0, 0.1))

    if case == "S1":
        model, truth = node(Param(jnp.full(N, 0.15))), node(jnp.full(N, 0.2))
        objective = brainmass.objectives.timeseries_rmse()

        def monitor(m):
            return m.x.value
    else:
        conn, dist = _network_setup()

        def build(a, k):
            return brainmass.Network(node(a), conn=conn, distance=dist * u.mm, speed=10.0 * u.mm / u.ms, coupling="diffusive", coupled_var="x", k=k)

        model, truth = build(Param(jnp.full(N, 0.15)), Param(0.4)), build(jnp.full(N, 0.2), 0.5)
        objective = brainmass.objectives.fc_corr(as_loss=True)

        def monitor(m):
            return m.node.x.value

    def predict(m):
        return brainmass.Simulator(m, dt=DT_MS * u.ms).run(DURATION_MS * u.ms, monitors=monitor)["output"]

    target = predict(truth)
    stamps = []
    fitter = brainmass.Fitter(
        model, braintools.optim.Adam(lr=0.05), predict=predict, objective=objective,
        callbacks=[lambda info: stamps.append(_stamp())],
    )  # fmt: skip
    t0 = _stamp()
    result = fitter.fit(target=target, n_steps=n_steps)
    return dict(_timings(stamps, t0), loss=float(result.best_loss), rss=_peak_rss_mb())


CHILDREN = {"eqx_grad": eqx_grad, "eqx_population": eqx_population, "bm_grad": bm_grad}


# -- driver ------------------------------------------------------------------------------------


def _run_child(python: str, child: str, case: str, n_steps: int) -> dict:
    proc = subprocess.run(
        [python, HERE, "--child", child, case, str(n_steps)], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(HERE))
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail[:140]}
    return json.loads(lines[-1])


def _fmt(x, spec=".2f"):
    return "-" if x is None or x != x else format(x, spec)


# Issue 7's targets for case W4 (and its population, P32n).
TARGETS = {"speedup": 3.0, "compile": 3.0, "rss": 500.0, "vmap": 3.0}


def _met(ok) -> str:
    return "-" if ok is None else ("yes" if ok else "**no**")


def _targets_table(ours: dict | None, ref: dict | None, pop: dict | None) -> list[str]:
    """The W4 summary: our figures, brainmass's, the ratio and whether issue 7's target is met."""
    rows = [
        "| W4 quantity | brainmass_eqx | brainmass 0.1.1 | ratio | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    have = ours is not None and "error" not in ours
    have_ref = ref is not None and "error" not in ref
    if have:
        for key, label in (("run", "run per step, wall (s, median)"), ("run_cpu", "run per step, CPU (s, median)")):
            ratio = ref[key] / ours[key] if have_ref else None
            rows.append(
                f"| {label} | {_fmt(ours[key], '.3f')} | {_fmt(ref[key], '.3f') if have_ref else '-'} | "
                f"{_fmt(ratio, '.1f')}x faster | >= {TARGETS['speedup']:g}x faster | "
                f"{_met(None if ratio is None else ratio >= TARGETS['speedup'])} |"
            )
        for key, label in (("compile", "compile (s, wall: step 0 - run)"), ("compile_cpu", "compile (s, CPU)")):
            ratio = ref[key] / ours[key] if have_ref else None
            rows.append(
                f"| {label} | {_fmt(ours[key])} | {_fmt(ref[key]) if have_ref else '-'} | {_fmt(ratio, '.1f')}x shorter | "
                f"< {TARGETS['compile']:g} s | {_met(ours[key] < TARGETS['compile'])} |"
            )
        ratio = ref["rss"] / ours["rss"] if have_ref else None
        rows.append(
            f"| peak RSS (MB) | {_fmt(ours['rss'], '.0f')} | {_fmt(ref['rss'], '.0f') if have_ref else '-'} | "
            f"{_fmt(ratio, '.1f')}x less | < {TARGETS['rss']:g} MB | {_met(ours['rss'] < TARGETS['rss'])} |"
        )
    if pop is not None and "error" not in pop:
        rows.append(
            f"| P32n: 32 candidates, the Fitter's vmap ({pop['threads']:.0f} slice(s) at once) vs a Python loop "
            f"(s per generation, wall) | {_fmt(pop['run'], '.3f')} (vmap; one vmap call {_fmt(pop['one_call'], '.3f')}) | "
            f"{_fmt(pop['loop'], '.3f')} (loop; lax.map {_fmt(pop['mapped'], '.3f')}) | {_fmt(pop['speedup'], '.1f')}x faster | "
            f">= {TARGETS['vmap']:g}x faster | {_met(pop['speedup'] >= TARGETS['vmap'])} |"
        )
        rows.append(
            f"| P32n, CPU (s per generation) | {_fmt(pop['run_cpu'], '.3f')} (vmap; one call "
            f"{_fmt(pop['one_call_cpu'], '.3f')}) | {_fmt(pop['loop_cpu'], '.3f')} (loop; "
            f"lax.map {_fmt(pop['mapped_cpu'], '.3f')}) | {_fmt(pop['loop_cpu'] / pop['run_cpu'], '.1f')}x faster | - | - |"
        )
    return rows


def _medians(runs: list[dict]) -> dict:
    """Per key, the median over repeated children (errors win: they are reported)."""
    for r in runs:
        if "error" in r:
            return r
    return {k: _median([r[k] for r in runs]) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cases = ["S1", "S1c", "W4", "W4c", "P32", "P32e", "P32n"]
    parser.add_argument("--cases", nargs="+", default=cases, choices=cases)
    parser.add_argument("--steps", type=int, default=4, help="fit steps per measurement (>= 2)")
    parser.add_argument("--repeat", type=int, default=1, help="fresh children per implementation, run alternately")
    parser.add_argument("--bm-python", default=BM_PYTHON, help="interpreter with brainmass 0.1.1 installed")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, case, n_steps = args.child
        print(json.dumps(CHILDREN[name](case, int(n_steps))))
        return

    print(
        f"# bench_fit: {N} regions, {DURATION_MS:g} ms at dt {DT_MS} ms; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs; medians of {args.repeat} alternating run(s) per implementation\n"
    )
    print("| case | implementation | step 0: trace+compile+run (s) | compile (s) | run per step (s) | run per step, CPU (s) | peak RSS (MB) | note |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for case in args.cases:
        if case.startswith("P32"):
            steps = max(args.steps, 3 if case in NETWORK_CASES else 5)
            r = _medians([_run_child(sys.executable, "eqx_population", case, steps) for _ in range(args.repeat)])
            summary[case] = r
            if "error" in r:
                print(f"| {case} | brainmass_eqx | - | - | - | - | - | error: {r['error']} |")
                continue
            print(
                f"| {case} | brainmass_eqx, 32 candidates, vmap in {r['threads']:.0f} slice(s) at once | {_fmt(r['step0'])} | "
                f"{_fmt(r['compile'])} | {_fmt(r['run'], '.3f')} | {_fmt(r['run_cpu'], '.3f')} | {_fmt(r['rss'], '.0f')} | "
                f"Python loop of 32 jitted calls: {r['loop']:.3f} s, vmap {r['speedup']:.1f}x faster (3 alternating rounds: "
                f"{r['speedup_min']:.1f}-{r['speedup_max']:.1f}x); one vmap call "
                f"(population_threads=1): {r['one_call']:.3f} s; population='map' (lax.map): {r['mapped']:.3f} s |"
            )
            continue
        impls = [("brainmass_eqx", sys.executable, "eqx_grad")]
        if os.path.exists(args.bm_python) and not case.endswith("c"):
            impls.append(("brainmass 0.1.1", args.bm_python, "bm_grad"))
        runs = {impl: [] for impl, _, _ in impls}
        for _ in range(args.repeat):
            for impl, python, child in impls:
                runs[impl].append(_run_child(python, child, case, args.steps))
        rows = [(impl, _medians(runs[impl])) for impl, _, _ in impls]
        summary[case] = dict(rows)
        ours = rows[0][1]
        for impl, r in rows:
            if "error" in r:
                print(f"| {case} | {impl} | - | - | - | - | - | error: {r['error']} |")
                continue
            note = f"loss {r['loss']:.4g}"
            if impl != "brainmass_eqx" and "error" not in ours:
                note += f"; brainmass_eqx {r['run'] / ours['run']:.1f}x faster per step ({r['run_cpu'] / ours['run_cpu']:.1f}x in CPU time)"
            print(
                f"| {case} | {impl} | {_fmt(r['step0'])} | {_fmt(r['compile'])} | {_fmt(r['run'], '.3f')} | "
                f"{_fmt(r['run_cpu'], '.3f')} | {_fmt(r['rss'], '.0f')} | {note} |"
            )
    if "W4" in summary or "P32n" in summary:
        w4 = summary.get("W4", {})
        print()
        print("\n".join(_targets_table(w4.get("brainmass_eqx"), w4.get("brainmass 0.1.1"), summary.get("P32n"))))


if __name__ == "__main__":
    main()
