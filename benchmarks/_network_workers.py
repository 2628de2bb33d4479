"""Reference-system workers for `bench_network.py`: brainmass 0.1.1 and neurolib 0.6.2.

Runs inside the reference system's own virtual environment (it imports neither
brainmass_eqx nor JAX code of this repository). Started as

    python _network_workers.py {brainmass,neurolib} PROBLEM.npz

it reads one JSON command per line on stdin, ``{"duration_ms": 10000.0, "k": 0.5,
"a": 0.2}``, runs the W1 network (80 Hopf nodes, conn, distances and initial state from
PROBLEM.npz, speed 10 mm/ms, diffusive coupling, w = 0.3, dt = 0.1 ms, x recorded every
1 ms) and answers one JSON line ``{"seconds": wall time of the run call, "cpu": process
time of the call, "x_last": [...]}`` (or ``{"error": ...}``). The network size is the
problem's (80 regions for W1, 1,000 for W6).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

DT_MS = 0.1
SPEED = 10.0  # mm/ms
W_RAD_PER_MS = 0.3


def brainmass_runner(problem):
    import brainmass
    import brainstate
    import braintools
    import brainunit as u

    conn, dist, x0, y0 = (problem[k] for k in ("conn", "distance", "x0", "y0"))
    n = conn.shape[0]
    # brainmass sizes the delay buffers at construction from the environment dt.
    brainstate.environ.set(dt=DT_MS * u.ms)

    def run(duration_ms, k, a):
        node = brainmass.HopfStep(
            n, a=a, w=W_RAD_PER_MS, init_x=braintools.init.Constant(x0), init_y=braintools.init.Constant(y0)
        )
        net = brainmass.Network(
            node,
            conn=conn,
            distance=dist * u.mm,
            speed=SPEED * u.mm / u.ms,
            coupling="diffusive",
            coupled_var="x",
            k=k,
            delay_init=braintools.init.Constant(x0),
        )
        sim = brainmass.Simulator(net, dt=DT_MS * u.ms)
        t = time.perf_counter()
        out = sim.run(duration_ms * u.ms, monitors=lambda m: m.node.x.value, sample_every=10)
        x = np.asarray(out["output"])
        return time.perf_counter() - t, x

    return run


def neurolib_runner(problem):
    from neurolib.models.hopf import HopfModel

    conn, dist, x0, y0 = (problem[k] for k in ("conn", "distance", "x0", "y0"))

    def run(duration_ms, k, a):
        model = HopfModel(Cmat=conn, Dmat=dist)
        model.params.update(
            dict(
                a=a,
                w=W_RAD_PER_MS,
                K_gl=k,
                signalV=SPEED,
                coupling="diffusive",
                sigma_ou=0.0,
                duration=duration_ms,
                dt=DT_MS,
                sampling_dt=1.0,
                xs_init=x0[:, None],
                ys_init=y0[:, None],
            )
        )
        t = time.perf_counter()
        model.run()
        x = np.asarray(model.x).T
        return time.perf_counter() - t, x

    return run


def main():
    system, path = sys.argv[1], sys.argv[2]
    problem = dict(np.load(path))
    run = {"brainmass": brainmass_runner, "neurolib": neurolib_runner}[system](problem)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        cpu = time.process_time()
        try:
            seconds, x = run(float(cmd["duration_ms"]), float(cmd["k"]), float(cmd["a"]))
        except Exception as err:  # reported to the benchmark, which says so in its table
            print(json.dumps({"error": f"{type(err).__name__}: {err}"[:300]}), flush=True)
            continue
        cpu = time.process_time() - cpu
        print(json.dumps({"seconds": seconds, "cpu": cpu, "shape": list(x.shape), "x_last": x[-1].tolist()}), flush=True)


if __name__ == "__main__":
    main()
