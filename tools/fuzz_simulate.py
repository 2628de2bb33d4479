"""Randomised equivalence check of `simulate`'s paths (docs/concepts.md, "Reproducibility").

Draws small cases (1-4 regions; Hopf, WilsonCowan, JansenRit, a delayed Hopf Network with
'nearest' / 'ceil' / 'linear' delays; noise on or off; a few ms to ~50 ms; dt in {0.05, 0.1,
0.25}; ExponentialEuler, Euler, Heun, RK4, Tsit5 fixed or adaptive) and checks, each with
the tolerance the docs promise:

- ``exact``: ``chunk=`` against the run in one piece; ``transient`` against the samples of
  the run without it; a continued run (``y0=traj``, same key) against one run.
- ``rounding``: ``jax.jit`` against the direct call; ``jax.vmap`` over keys against a loop;
  ``saveat`` on the step grid against ``sample_every``; a float32 ``saveat`` run in pieces
  against the run in one solve; per-step inputs of one constant value against the value held.
- ``tolerance``: a float32 adaptive run in pieces against the run in one solve (each piece
  restarts the step size); not for a noisy one, whose pieces draw independent noise.
- ``same path``: a noisy adaptive run under ``jax.jit`` against the direct call, and a
  ``vmap`` member against its single run: rounding flips a step's acceptance, and the other
  steps on the same Brownian tree differ by the solver's pathwise error, which ``rtol``
  does not bound (docs/howto/noise.md, "Adaptive steps": 1.3e-2 on a scale of 0.19 for
  Heun at rtol 1e-3); another path (another key or tree) differs by the scale itself.

``exact`` fails by one ulp here and there (the compiler rounds another loop otherwise, see
docs/concepts.md, "Reproducibility"): read a failure of at most a few ulp as that.

Usage: ``python tools/fuzz_simulate.py [n_cases] [seed]``; prints a table of checks run and
failed, and each failure's case. Durations and region counts come from small sets, so that
the compiled programs are reused across cases (a compile of a delayed Network is seconds).
"""

from __future__ import annotations

import collections
import sys
import traceback

import diffrax as dfx
import jax
import jax.random as jr
import numpy as np

import brainmass_eqx as bx
from brainmass_eqx import _simulate
from brainmass_eqx.noise import OUProcess, WhiteNoise

# Rounding: relative to the largest recorded magnitude (short runs of stable models).
ROUNDING = 2e-5

_MODELS: dict = {}


def model_of(kind, n, noisy, interp):
    key = (kind, n, noisy, interp)
    if key not in _MODELS:
        if kind == "net":
            off = 1.0 - np.eye(n)
            delays = (0.35 + 0.6 * np.arange(n * n).reshape(n, n) % 1.7) * off
            m = bx.Network(bx.Hopf(n_regions=n, a=-0.05), off / max(1, n - 1), delays=delays, k=0.5,
                           interpolation=interp, noise=OUProcess(0.05, tau=5.0) if noisy else None)
        else:
            node = {"hopf": lambda: bx.Hopf(n_regions=n, a=-0.05), "wc": lambda: bx.WilsonCowan(n_regions=n),
                    "jr": lambda: bx.JansenRit(n_regions=n)}[kind]()
            if noisy:
                first = node.state_names[0]
                node = bx.with_noise(node, {first: WhiteNoise(0.05)})
            m = node
        _MODELS[key] = m
    return _MODELS[key]


SOLVERS = {
    "expeuler": (None, None),
    "euler": (dfx.Euler(), None),
    "heun": (dfx.Heun(), None),
    "rk4": (bx.RK4(), None),
    "tsit5": (dfx.Tsit5(), None),
    "tsit5_adaptive": (dfx.Tsit5(), dfx.PIDController(rtol=1e-6, atol=1e-8)),
    "heun_adaptive": (dfx.Heun(), dfx.PIDController(rtol=1e-3, atol=1e-5)),
}


def draw(rng):
    kind = rng.choice(["hopf", "wc", "jr", "net"])
    n = int(rng.choice([1, 2, 3, 4])) if kind != "net" else int(rng.choice([2, 3]))
    noisy = bool(rng.random() < 0.4)
    interp = str(rng.choice(["nearest", "ceil", "linear"])) if kind == "net" else None
    solver = str(rng.choice(list(SOLVERS)))
    if solver == "tsit5_adaptive" and noisy:
        solver = "heun_adaptive"  # an SDE needs an SDE solver's error estimate
    if solver.endswith("_adaptive") and kind == "net":
        solver = "tsit5"  # a delayed Network has no adaptive path
    if noisy and solver in ("rk4", "tsit5"):
        solver = "heun"  # ODE-only RK on a MultiTerm
    dt = float(rng.choice([0.05, 0.1, 0.25]))
    n_steps = int(rng.choice([12, 40, 97, 200]))
    k = int(rng.choice([1, 1, 2, 3, 5]))
    tr = int(rng.choice([0, 0, 1, 4, 10])) if n_steps > 10 * k + 10 else 0
    chunk = int(rng.choice([1, 3, 7, 16]))
    return dict(kind=kind, n=n, noisy=noisy, interp=interp, solver=solver, dt=dt, n_steps=n_steps, k=k, tr=tr,
                chunk=chunk, seed=int(rng.integers(0, 5)))


def run(case, **kw):
    m = model_of(case["kind"], case["n"], case["noisy"], case["interp"])
    solver, ctrl = SOLVERS[case["solver"]]
    args = dict(dt=case["dt"], key=jr.key(case["seed"]), solver=solver, stepsize_controller=ctrl)
    if case["kind"] == "wc":  # its initial state (0) is its rest: start away from it
        n = case["n"]
        args["y0"] = {"rE": np.linspace(0.2, 0.4, n), "rI": np.linspace(0.1, 0.3, n)}
    args.update(kw)
    duration = args.pop("duration", case["n_steps"] * case["dt"])
    return bx.simulate(m, duration, **args)


def diff(a, b, names):
    d, scale = 0.0, 1e-30
    for name in names:
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        if x.shape != y.shape:
            return np.inf, 1.0
        d = max(d, float(np.max(np.abs(x - y), initial=0.0)))
        scale = max(scale, float(np.max(np.abs(y), initial=0.0)))
    return d, scale


def compare(a, b, names, finals=True):
    """The largest difference of ``a`` and ``b`` (their final states too) and their scale."""
    d, scale = diff(a, b, names)
    if finals:
        fd, fs = diff(a.final_state, b.final_state, names)
        d, scale = max(d, fd), max(scale, fs)
    return d, scale


# The adaptive controllers of `SOLVERS` take rtol 1e-3 at most.
TOLERANCE = 2e-3
# A noisy adaptive run's pathwise error at rtol 1e-3 (docs/howto/noise.md: 0.12 of the scale
# at most, measured); two Brownian paths are about the scale apart.
SAME_PATH = 0.3

BOUNDS = {"rounding": ROUNDING, "tolerance": TOLERANCE, "same path": SAME_PATH}


def holds(promise, d, scale):
    if promise == "exact":
        return d == 0.0
    return d <= BOUNDS[promise] * max(scale, 1e-3)


def checks(case):
    m = model_of(case["kind"], case["n"], case["noisy"], case["interp"])
    names = m.state_names
    adaptive = SOLVERS[case["solver"]][1] is not None
    k, tr, n_steps, dt = case["k"], case["tr"], case["n_steps"], case["dt"]
    ref = run(case, sample_every=k, transient=tr)
    out = {}
    if not adaptive:
        out["chunk"] = ("exact", compare(run(case, sample_every=k, transient=tr, chunk=case["chunk"]), ref, names))
        if tr % k == 0 and tr:
            full = run(case, sample_every=k)
            sliced = {v: full[v][tr // k:] for v in names}
            out["transient"] = ("exact", compare(ref, sliced, names, finals=False))
            out["transient_final"] = ("exact", compare(ref.final_state, full.final_state, names, finals=False))
        one = run(case)
        out["sample_every"] = ("exact", compare(ref, {v: one[v][tr::k] for v in names}, names, finals=False))
        out["sample_every_final"] = ("exact", compare(ref.final_state, one.final_state, names, finals=False))
        # A continued run against one run (a delayed Network needs every step recorded).
        half = n_steps // 2
        if half * dt > getattr(m, "max_delay", 0.0):  # else refused: too short a past
            first = run(case, duration=half * dt)
            second = run(case, duration=(n_steps - half) * dt, y0=first)
            out["continued"] = ("exact", compare(second, {v: one[v][half:] for v in names}, names, finals=False))
            out["continued_final"] = ("exact", compare(second.final_state, one.final_state, names, finals=False))
        # saveat on the step grid.
        sv = run(case, saveat=np.asarray(ref.ts))
        out["saveat_grid"] = ("rounding", compare(sv, ref, names))
    else:
        one = ref
    # jit against direct.
    fn = jax.jit(lambda key: run(dict(case), key=key, sample_every=k, transient=tr).ys)
    jitted = fn(jr.key(case["seed"]))
    same = "same path" if adaptive and case["noisy"] else "rounding"
    out["jit"] = (same, compare(jitted, ref, names, finals=False))
    if case["noisy"] or "x" not in names:
        keys = jr.split(jr.key(case["seed"]), 2)
        batched = jax.vmap(lambda key: run(dict(case), key=key, sample_every=k, transient=tr).ys)(keys)
        for i in range(2):
            single = run(case, key=keys[i], sample_every=k, transient=tr)
            out[f"vmap_key{i}"] = (same, compare({v: batched[v][i] for v in names}, single, names, finals=False))
    # Per-step constant input against the held value (first input of the model).
    inputs = tuple(getattr(m, "input_names", ()))
    if inputs and not case["noisy"]:
        name = inputs[0]
        held = run(case, sample_every=k, transient=tr, inputs={name: 0.1})
        per_step = run(case, sample_every=k, transient=tr, inputs={name: np.full((n_steps, 1), 0.1, np.float32)})
        out["inputs_per_step"] = ("rounding", compare(per_step, held, names))
    return out


def pieces_checks(case, monkeypatch_bits=20):
    """A float32 saveat / adaptive run in pieces against one solve (pieces of ~2**(4+log2 dt) ms).

    Nothing (an empty dict) for a noisy adaptive run: its pieces draw independent Brownian trees (`simulate`'s
    ``saveat``), another realisation than the one solve's (0.16 apart on a scale of 0.16).
    """
    m = model_of(case["kind"], case["n"], case["noisy"], case["interp"])
    names = m.state_names
    adaptive = SOLVERS[case["solver"]][1] is not None
    if adaptive and case["noisy"]:
        return {}
    n_steps, dt = case["n_steps"], case["dt"]
    rng = np.random.default_rng(case["seed"])
    saveat = np.sort(rng.integers(0, n_steps + 1, size=6)) * dt
    kw = {} if adaptive else dict(saveat=saveat)
    old_bits, old_steps = _simulate._PIECE_BITS, _simulate._piece_steps
    try:
        _simulate._PIECE_BITS = monkeypatch_bits
        many = run(case, **kw)
        _simulate._piece_steps = lambda n, d: None
        one = run(case, **kw)
    finally:
        _simulate._PIECE_BITS, _simulate._piece_steps = old_bits, old_steps
    return {"pieces": ("tolerance" if adaptive else "rounding", compare(many, one, names))}


def main(n_cases=60, seed=0):
    rng = np.random.default_rng(seed)
    table = collections.defaultdict(lambda: [0, 0])
    failures = []
    for i in range(n_cases):
        case = draw(rng)
        try:
            results = checks(case)
            results.update(pieces_checks(case))
        except Exception as err:  # noqa: BLE001
            table["error"][0] += 1
            table["error"][1] += 1
            failures.append((case, "error", f"{type(err).__name__}: {str(err)[:300]}"))
            traceback.print_exc(limit=2)
            continue
        for name, (promise, (d, scale)) in results.items():
            table[name][0] += 1
            if not holds(promise, d, scale):
                table[name][1] += 1
                failures.append((case, name, f"{promise}: max diff {d:.3g} (scale {scale:.3g})"))
        print(i, case, {k: f"{v[1][0]:.2g}" for k, v in results.items()}, flush=True)
    print(f"\n{'check':24s} {'run':>5s} {'failed':>7s}")
    for name, (n, f) in sorted(table.items()):
        print(f"{name:24s} {n:5d} {f:7d}")
    for case, name, what in failures:
        print("FAIL", name, what, case)
    return failures


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
