"""Every matrix product (and direct convolution) of the simulation, observation and metrics
paths asks for full precision (`brainmass_eqx._precision`). A GPU computes a product of default precision in TF32:
on an H200, 4,096 vmapped members of the 80-region delayed network then left the float32
trajectories by up to 0.65 (x of order sqrt(a) <= 0.55) in 1 s.

The programs are lowered, not run, with the delay reads as XLA operations (the native CPU
kernels off): the program a GPU gets, whose ``dot_general`` and ``convolution`` operations
are checked here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx as bm
from brainmass_eqx import metrics
from brainmass_eqx.network import Network
from brainmass_eqx.observation import HRFBold, LeadFieldModel, LeadfieldReadout, SpatialAverage

N = 6
_rng = np.random.default_rng(0)
CONN = _rng.uniform(0.0, 1.0, (N, N)) * (1 - np.eye(N))
DIST = _rng.uniform(5.0, 50.0, (N, N))
DIST = (DIST + DIST.T) / 2 * (1 - np.eye(N))


def _products(fn, *args) -> list[str]:
    text = jax.jit(lambda *a: fn(*a)).lower(*args).as_text()  # fn may be a Module of arrays
    ops = ("stablehlo.dot_general", "stablehlo.convolution")
    return [line.strip() for line in text.splitlines() if any(op in line for op in ops)]


def _network_run(distance):
    def run(k):
        speed = None if distance is None else 10.0
        net = Network(bm.Hopf(N), CONN, distance=distance, speed=speed, k=k)
        return bm.simulate(net, 2.0, dt=0.1, monitors="x")["x"]

    return run


def _kuramoto_run(k):
    return bm.simulate(bm.Kuramoto(N, conn=CONN, K=k, init_theta=0.0), 2.0, dt=0.1)["theta"]


SIGNAL = jnp.asarray(_rng.normal(size=(40, N)), jnp.float32)
PROGRAMS = {
    "delayed network": (_network_run(DIST), jnp.float32(0.3)),
    "delayed network, vmap of 40": (jax.vmap(_network_run(DIST)), jnp.full(40, 0.3)),
    "network without delays, vmap of 8": (jax.vmap(_network_run(None)), jnp.full(8, 0.3)),
    "Kuramoto with conn, vmap of 8": (jax.vmap(_kuramoto_run), jnp.full(8, 0.3)),
    "FC": (metrics.functional_connectivity, SIGNAL),
    "FCD": (lambda x: metrics.functional_connectivity_dynamics(x, window_size=10, step_size=5), SIGNAL),
    "SpatialAverage": (SpatialAverage(np.array([0, 0, 1, 1, 2, 2])), SIGNAL),
    "LeadfieldReadout": (LeadfieldReadout(_rng.normal(size=(3, N)), y0=0.0, cy0=1.0), SIGNAL),
    "HRFBold, direct convolution": (lambda x: HRFBold(period=8.0, method="direct")(x, 1.0), SIGNAL),
    "LeadFieldModel with sensor noise": (
        lambda x: LeadFieldModel(jnp.ones((N, 3)), noise_cov=jnp.eye(3))(x, jax.random.key(0)),
        SIGNAL,
    ),
    "LeadFieldModel.noise_cov": (lambda c: LeadFieldModel(jnp.ones((N, 3)), noise_cov=c).noise_cov, jnp.eye(3)),
    "compress_vertex_leadfield": (lambda L: LeadFieldModel.compress_vertex_leadfield(L, jnp.ones((9, N))), jnp.ones((3, 9))),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_products_ask_for_full_precision(name, xla_reads):
    fn, arg = PROGRAMS[name]
    products = _products(fn, arg)
    assert products, f"{name}: no matrix product in the program (the test would check nothing)"
    default = [p for p in products if "HIGHEST" not in p or "DEFAULT" in p]
    assert not default, f"{name}: products at default precision (TF32 on a GPU):\n" + "\n".join(default)
