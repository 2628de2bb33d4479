"""Regenerate the TVB reference data under ``tests/data/reference/tvb``.

Usage (any python3, from anywhere)::

    python tools/make_tvb_references.py [--venv PATH]

* Ensures a throwaway venv holding ``tvb-library==2.10.0`` (default
  ``~/.cache/bmx/venv-tvb``; ``--venv`` or ``$BMX_TVB_VENV`` overrides), creating it with
  ``python3 -m venv`` + ``pip install`` when missing. TVB is never a dependency of
  ``brainmass_eqx``.
* Runs this file's cases inside that venv (``--child``): TVB region simulations on the
  bundled 8-region example connectome (weights, tract lengths), with conduction delays,
  TVB's deterministic Heun integrator, float64, a constant initial history, no noise.
* Writes one ``<case>.npz`` per case: ``state__<tvb state>`` ``(T, N)`` float64, the state
  after every ``record_every``-th step from the first (sample ``j`` after step
  ``1 + record_every*j``, as ``simulate(..., sample_every=record_every)`` records),
  ``init__<tvb state>`` ``(N,)``, ``dt``, ``n_steps``, ``record_every``, ``speed``,
  ``idelays`` (TVB's delays in steps) and ``meta`` (JSON: the TVB model, coupling and
  their parameters, the TVB version).
* Writes ``random_history.npz``: a run from TVB's default random initial history
  (`run_random_history`).
* Writes ``monitors.npz``: TVB's ``Bold`` (period 500 ms) and ``TemporalAverage`` (100 ms)
  monitors applied, alone, to a signal given by a formula (`monitor_signal`).

``tests/test_tvb_parity.py`` builds the same networks with brainmass_eqx (the mapping of
names is the one ``docs/howto/migrating.md`` gives) and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _external  # noqa: E402 (a script run by path)

TVB_VERSION = "2.10.0"

# name: (TVB model class and parameters, coupling class and parameters, per-state initial
# value, dt (ms), steps, record every, conduction speed (mm/ms)). Parameters are lists
# (one value, or one per region).
CASES = {
    "jansen_rit": dict(
        model=("JansenRit", {"mu": [0.22], "v0": [5.52]}),
        coupling=("SigmoidalJansenRit", {"a": [10.0]}),
        init={"y0": 0.0, "y1": 0.0, "y2": 0.0, "y3": 0.0, "y4": 0.0, "y5": 0.0},
        dt=2.0**-4, n_steps=3200, record_every=16, speed=3.0,
    ),
    "generic_2d_oscillator": dict(
        model=("Generic2dOscillator", {"a": [-0.5], "tau": [1.5], "I": [0.2]}),
        coupling=("Linear", {"a": [0.05], "b": [0.01]}),
        init={"V": [0.1, -0.2, 0.3, 0.0, -0.5, 0.4, 0.2, -0.1], "W": 0.2},
        dt=0.05, n_steps=4000, record_every=20, speed=4.0,
    ),
    "epileptor": dict(
        model=("Epileptor", {"x0": [-1.6, -2.4, -2.4, -1.8, -2.4, -2.4, -2.4, -2.4],
                             "Ks": [-0.2], "Kf": [0.1], "Kvf": [0.05], "r": [0.0015]}),
        coupling=("Difference", {"a": [1.0]}),
        init={"x1": -1.5, "y1": -10.0, "z": 3.0, "x2": -1.0, "y2": 0.0, "g": 0.0},
        dt=0.05, n_steps=8000, record_every=40, speed=3.0,
    ),
    "sup_hopf": dict(
        model=("SupHopf", {"a": [0.1, -0.05, 0.2, 0.0, 0.15, -0.1, 0.05, 0.3], "omega": [0.3]}),
        coupling=("Difference", {"a": [0.2]}),
        init={"x": [0.5, -0.3, 0.2, 0.1, -0.4, 0.3, 0.0, 0.6], "y": 0.1},
        dt=0.05, n_steps=4000, record_every=20, speed=5.0,
    ),
    "reduced_wong_wang_exc_inh": dict(
        model=("ReducedWongWangExcInh", {"G": [1.5], "I_ext": [0.0, 0.05, 0.0, 0.1, 0.0, 0.0, 0.02, 0.0]}),
        coupling=("Linear", {"a": [1.0]}),
        init={"S_e": [0.1, 0.5, 0.2, 0.8, 0.05, 0.3, 0.6, 0.4], "S_i": 0.05},
        dt=0.1, n_steps=3000, record_every=15, speed=3.0,
    ),
    "reduced_wong_wang": dict(
        model=("ReducedWongWang", {"w": [0.9], "I_o": [0.3, 0.33, 0.35, 0.3, 0.32, 0.31, 0.34, 0.3]}),
        coupling=("Linear", {"a": [0.4]}),
        init={"S": [0.1, 0.5, 0.2, 0.8, 0.05, 0.3, 0.6, 0.4]},
        dt=0.1, n_steps=3000, record_every=15, speed=3.0,
    ),
    "montbrio_pazo_roxin": dict(
        model=("MontbrioPazoRoxin", {"eta": [-4.6], "J": [14.5], "Delta": [0.7], "tau": [1.0], "cr": [1.0], "cv": [0.0]}),
        coupling=("Linear", {"a": [0.5]}),
        init={"r": [0.1, 0.5, 0.2, 1.0, 0.05, 0.3, 0.8, 0.4], "V": -2.0},
        dt=0.01, n_steps=10000, record_every=50, speed=10.0,
    ),
    "larter_breakspear": dict(
        model=("LarterBreakspear", {"C": [0.3]}),
        coupling=("HyperbolicTangent", {"a": [0.5], "b": [1.0], "midpoint": [0.0], "sigma": [0.65]}),
        init={"V": [-0.2, 0.1, 0.3, -0.4, 0.0, 0.2, -0.1, 0.4], "W": 0.1, "Z": 0.05},
        dt=0.1, n_steps=2000, record_every=10, speed=10.0,
    ),
    "wilson_cowan": dict(
        model=("WilsonCowan", {"P": [1.2], "tau_e": [10.0], "tau_i": [10.0]}),
        coupling=("Linear", {"a": [0.5]}),
        init={"E": [0.1, 0.5, 0.2, 0.8, 0.05, 0.3, 0.6, 0.4], "I": 0.1},
        dt=0.1, n_steps=3000, record_every=15, speed=3.0,
    ),
    "wilson_cowan_unshifted": dict(
        model=("WilsonCowan", {"P": [1.2], "tau_e": [10.0], "tau_i": [10.0], "shift_sigmoid": [False]}),
        coupling=("Linear", {"a": [0.5]}),
        init={"E": [0.1, 0.5, 0.2, 0.8, 0.05, 0.3, 0.6, 0.4], "I": 0.1},
        dt=0.1, n_steps=3000, record_every=15, speed=3.0,
    ),
    "coombes_byrne_2d": dict(
        model=("CoombesByrne2D", {"eta": [1.5], "v_syn": [-4.0], "k": [1.0], "Delta": [0.5]}),
        coupling=("Linear", {"a": [0.3]}),
        init={"r": [0.1, 0.5, 0.2, 0.8, 0.05, 0.3, 0.6, 0.4], "V": -0.5},
        dt=0.01, n_steps=5000, record_every=25, speed=10.0,
    ),
    "generic_2d_oscillator_sigmoidal": dict(
        model=("Generic2dOscillator", {"a": [-0.5], "tau": [1.5], "I": [0.2]}),
        # TVB's Sigmoidal: cmin + (cmax - cmin) / (1 + exp(-a (sum - midpoint) / sigma)).
        coupling=("Sigmoidal", {"cmin": [-0.3], "cmax": [0.5], "midpoint": [0.2], "a": [2.0], "sigma": [0.5]}),
        init={"V": [0.1, -0.2, 0.3, 0.0, -0.5, 0.4, 0.2, -0.1], "W": 0.2},
        dt=0.05, n_steps=4000, record_every=20, speed=4.0,
    ),
    "kuramoto": dict(
        model=("Kuramoto", {"omega": [0.05, 0.08, 0.11, 0.06, 0.09, 0.12, 0.07, 0.1]}),
        coupling=("Kuramoto", {"a": [0.4]}),
        init={"theta": [0.0, 0.8, 1.6, 2.4, 3.2, 4.0, 4.8, 5.6]},
        dt=0.05, n_steps=4000, record_every=20, speed=5.0,
    ),
}


def run_case(outdir: Path, name: str, spec: dict) -> None:
    """Simulate one case with TVB (inside the TVB venv) and write ``outdir/<name>.npz``."""
    import numpy as np
    from tvb.datatypes import connectivity
    from tvb.simulator import coupling, integrators, models, monitors, simulator

    data = np.load(_external.CONNECTOME)
    weights, lengths = data["weights"].astype(np.float64), data["distances"].astype(np.float64)
    n = weights.shape[0]
    conn = connectivity.Connectivity(
        weights=weights, tract_lengths=lengths, region_labels=np.array([f"r{i}" for i in range(n)]),
        centres=np.zeros((n, 3)), speed=np.array([spec["speed"]]),
    )
    model_name, model_params = spec["model"]
    # Flags (WilsonCowan's shift_sigmoid) stay boolean arrays; every other parameter is float64.
    model = getattr(models, model_name)(
        **{k: np.array(v) if isinstance(v[0], bool) else np.array(v, dtype=np.float64) for k, v in model_params.items()}
    )
    names = list(model.state_variables)
    model.variables_of_interest = tuple(names)
    coupling_name, coupling_params = spec["coupling"]
    kernel = getattr(coupling, coupling_name)(**{k: np.array(v, dtype=np.float64) for k, v in coupling_params.items()})
    conn.configure()
    horizon = int(np.rint(lengths.max() / spec["speed"] / spec["dt"])) + 1
    init = np.stack([np.broadcast_to(np.asarray(spec["init"][v], np.float64), (n,)) for v in names])
    sim = simulator.Simulator(
        model=model, connectivity=conn, coupling=kernel,
        integrator=integrators.HeunDeterministic(dt=spec["dt"]), monitors=(monitors.Raw(),),
        simulation_length=spec["n_steps"] * spec["dt"],
        # The whole horizon: a shorter history is padded with random states.
        initial_conditions=np.broadcast_to(init[None, :, :, None], (horizon, len(names), n, 1)).copy(),
    )
    sim.configure()
    ((_, ys),) = sim.run()
    ys = ys[:, :, :, 0]
    every = spec["record_every"]
    if ys.shape[0] != spec["n_steps"]:
        raise SystemExit(f"{name}: TVB returned {ys.shape[0]} steps, expected {spec['n_steps']}")
    out = {f"state__{v}": ys[::every, i] for i, v in enumerate(names)}
    out.update({f"init__{v}": init[i] for i, v in enumerate(names)})
    import importlib.metadata

    meta = dict(
        tvb_version=importlib.metadata.version("tvb-library"), model=model_name, model_params=model_params,
        coupling=coupling_name, coupling_params=coupling_params, state_names=names,
        integrator="HeunDeterministic", connectome="example_connectome",
    )
    np.savez_compressed(
        outdir / f"{name}.npz", dt=spec["dt"], n_steps=spec["n_steps"], record_every=every,
        speed=spec["speed"], idelays=sim.connectivity.idelays, meta=json.dumps(meta), **out,
    )


def monitor_signal(dt: float, n_steps: int, n: int = 8):
    """The signal ``(n_steps, n)`` given to TVB's monitors alone: slow and fast rhythms per
    region (also computed by ``tests/test_tvb_parity.py``)."""
    import numpy as np

    t = (np.arange(n_steps) + 1) * dt  # ms, the end of each step
    f = 0.004 + 0.0015 * np.arange(n)  # per ms
    return np.sin(2 * np.pi * f * t[:, None]) + 0.5 * np.cos(2 * np.pi * 0.05 * f * t[:, None] + np.arange(n))


def run_monitors(outdir: Path) -> None:
    """TVB's Bold and TemporalAverage monitors on `monitor_signal`, step numbers from 1 (in
    a simulation TVB's step counter starts after its history horizon); writes
    ``monitors.npz`` with ``bold`` and ``tavg`` ``(T, 8)``."""
    import numpy as np
    from tvb.simulator import monitors

    dt, n_steps, bold_period, tavg_period = 0.25, 160_000, 500.0, 100.0
    x = monitor_signal(dt, n_steps)
    outputs = {}
    for name, monitor in (("bold", monitors.Bold(period=bold_period)), ("tavg", monitors.TemporalAverage(period=tavg_period))):
        monitor.dt, monitor.voi = dt, np.array([0])
        monitor.istep = int(round(monitor.period / dt))
        if name == "bold":
            monitor.compute_hrf()
            monitor._interim_stock = np.zeros((monitor._interim_istep, 1, x.shape[1], 1))
            monitor._stock = np.zeros((monitor._stock_steps, 1, x.shape[1], 1))
        else:
            monitor._stock = np.zeros((monitor.istep, 1, x.shape[1], 1))
        samples = [monitor.sample(k + 1, x[k][None, :, None]) for k in range(n_steps)]
        outputs[name] = np.array([s[1][0, :, 0] for s in samples if s is not None])
    import importlib.metadata

    meta = dict(tvb_version=importlib.metadata.version("tvb-library"), bold_period=bold_period, tavg_period=tavg_period)
    np.savez_compressed(outdir / "monitors.npz", dt=dt, n_steps=n_steps, meta=json.dumps(meta), **outputs)


def run_random_history(outdir: Path) -> None:
    """TVB's default start: no ``initial_conditions``, so ``model.initial`` fills the whole
    horizon with uniform random states (NumPy's global generator, seeded here) and the
    current state is the buffer's row 0. Writes ``random_history.npz``: ``buffer`` ``(h,
    N)`` (the coupled V, TVB's rows: row 0 is t = 0, row ``h - m`` is t = -m dt),
    ``state0`` ``(2, N)`` (V, W), ``raw`` ``(n_steps / 20, 2, N)`` (after steps 1, 21, ...), ``tavg`` and ``subsample``
    (V, period 1 ms) with their times."""
    import numpy as np
    from tvb.datatypes import connectivity
    from tvb.simulator import coupling, integrators, models, monitors, simulator

    data = np.load(_external.CONNECTOME)
    weights, lengths = data["weights"].astype(np.float64), data["distances"].astype(np.float64)
    n, dt, n_steps, speed, a = weights.shape[0], 0.05, 2000, 4.0, 0.05
    conn = connectivity.Connectivity(
        weights=weights, tract_lengths=lengths, region_labels=np.array([f"r{i}" for i in range(n)]),
        centres=np.zeros((n, 3)), speed=np.array([speed]),
    )
    conn.configure()
    model = models.Generic2dOscillator(a=np.array([-0.5]), tau=np.array([1.5]), I=np.array([0.2]))
    model.variables_of_interest = ("V", "W")
    np.random.seed(0)
    sim = simulator.Simulator(
        model=model, connectivity=conn, coupling=coupling.Linear(a=np.array([a])),
        integrator=integrators.HeunDeterministic(dt=dt), simulation_length=n_steps * dt,
        monitors=(monitors.Raw(), monitors.TemporalAverage(period=1.0), monitors.SubSample(period=1.0)),
    )
    sim.configure()
    buffer, state0 = np.array(sim.history.buffer[:, 0, :, 0]), np.array(sim.current_state[:, :, 0])
    (rt, raw), (tt, tavg), (st, sub) = sim.run()
    import importlib.metadata

    meta = dict(tvb_version=importlib.metadata.version("tvb-library"), model_params={"a": -0.5, "tau": 1.5, "I": 0.2},
                coupling_a=a, seed=0)
    np.savez_compressed(
        outdir / "random_history.npz", dt=dt, n_steps=n_steps, speed=speed, idelays=sim.connectivity.idelays,
        buffer=buffer, state0=state0, record_every=20, raw=raw[::20, :, :, 0], tavg_t=tt, tavg=tavg[:, 0, :, 0],
        subsample_t=st, subsample=sub[:, 0, :, 0], meta=json.dumps(meta),
    )


def write(outdir: Path) -> None:
    for name, spec in CASES.items():
        run_case(outdir, name, spec)
    run_monitors(outdir)
    run_random_history(outdir)


def main(argv: list[str] | None = None) -> None:
    _external.main(
        argv, doc=__doc__, script=__file__, dist="tvb-library", version=TVB_VERSION, venv_env="BMX_TVB_VENV",
        write=write,
    )


if __name__ == "__main__":
    sys.exit(main())
