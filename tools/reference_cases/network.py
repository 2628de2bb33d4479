"""Reference trajectories of brainmass 0.1.1 ``Network`` on the bundled connectome.

Output: ``<outdir>/network/<case>.npz``. Every case couples 8 nodes through
``brainmass.datasets.load_dataset('example_connectome')`` (weights (8, 8), distances in
mm) at speed 10 mm/ms, so delays reach 8 ms (80 steps at dt = 0.1 ms). The delay
history is initialised with ``delay_init = Constant(x0)``, each region's initial value of
the coupled variable, so the constant past equals the initial state.

Run through ``python tools/make_references.py --only network``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import brainmass
import brainstate
import braintools
import brainunit as u
import numpy as np

from tools.reference_cases import _common
from tools.reference_cases._common import Case

N_STEPS = 2000
DT_MS = 0.1
SPEED_MM_PER_MS = 10.0
N_REGIONS = 8

_PHASE = 2.0 * np.pi * np.arange(N_REGIONS) / N_REGIONS
# Distinct per-region initial states (a ring in the phase plane, shifted off centre).
_HOPF_INIT = {"x": 0.1 + 0.5 * np.cos(_PHASE), "y": 0.5 * np.sin(_PHASE)}
_WC_INIT = {"rE": 0.05 + 0.05 * np.arange(N_REGIONS), "rI": 0.3 - 0.03 * np.arange(N_REGIONS)}
_JR_INIT = {
    "M": (0.05 + 0.02 * np.arange(N_REGIONS)) * u.mV,
    "E": (5.0 + 2.0 * np.arange(N_REGIONS)) * u.mV,
    "I": (18.0 - 1.5 * np.arange(N_REGIONS)) * u.mV,
    "Mv": 20.0 * np.cos(_PHASE) * u.mV / u.second,
    "Ev": 100.0 * np.sin(_PHASE) * u.mV / u.second,
    "Iv": -50.0 * np.cos(_PHASE) * u.mV / u.second,
}

_JR_INPUTS = {"E_inp": np.linspace(120.0, 320.0, N_REGIONS) * u.Hz}


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """One network case.

    Attributes:
        name: case name (file stem).
        node: node class name in ``brainmass``.
        init: node state -> per-region initial values.
        coupling: ``Network``'s ``coupling`` argument.
        coupled_var: ``Network``'s ``coupled_var``.
        k: global coupling gain (magnitude, in ``k_unit``).
        delayed: pass the connectome's distances and the speed (False: ``distance=None``).
        node_inputs: constant per-region inputs to the node's update arguments after the
            coupling current (the Simulator hands them to ``Network.update``).
        k_unit: canonical unit of ``k`` ("" for a plain number).
        plain_delay_init: fill the history with the magnitudes of the coupled
            variable's initial values (no unit) instead of the quantities.
        notes: extra notes for the meta.
    """

    name: str
    node: str
    init: dict[str, Any]
    coupling: str
    coupled_var: str
    k: float
    delayed: bool = True
    node_inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    k_unit: str = ""
    plain_delay_init: bool = False
    notes: tuple[str, ...] = ()


SPECS: tuple[NetworkSpec, ...] = (
    NetworkSpec("hopf_diffusive", "HopfStep", _HOPF_INIT, "diffusive", "x", 0.5),
    NetworkSpec("hopf_additive", "HopfStep", _HOPF_INIT, "additive", "x", 0.05),
    NetworkSpec("hopf_sigmoidal", "HopfStep", _HOPF_INIT, "sigmoidal", "x", 0.1),
    NetworkSpec("hopf_tanh", "HopfStep", _HOPF_INIT, "tanh", "x", 0.05),
    NetworkSpec("hopf_laplacian", "HopfStep", _HOPF_INIT, "laplacian", "x", 0.1),
    NetworkSpec("wc_additive", "WilsonCowanStep", _WC_INIT, "additive", "rE", 1.0),
    NetworkSpec(
        "jr_sigmoidal_jansen_rit",
        "JansenRitStep",
        _JR_INIT,
        "sigmoidal_jansen_rit",
        "M",
        1.0,
        node_inputs=_JR_INPUTS,
    ),
    # brainmass refuses the case above (UnitMismatchError, see its manifest entry): the
    # delayed read of M comes back as a Quantity nested in a Quantity, so the kernel's
    # get_magnitude keeps the mV and `midpoint - x` fails. This variant is the nearest
    # configuration it runs: a unitless history (so the kernel sees plain magnitudes)
    # and k in mV (so the current has M_inp's unit).
    NetworkSpec(
        "jr_sigmoidal_jansen_rit_kmV",
        "JansenRitStep",
        _JR_INIT,
        "sigmoidal_jansen_rit",
        "M",
        1.0,
        node_inputs=_JR_INPUTS,
        k_unit="mV",
        plain_delay_init=True,
        notes=(
            "Workaround of the refused jr_sigmoidal_jansen_rit case: k = 1 mV and delay_init "
            "= Constant(magnitudes of init__M in mV, unitless). Reads before the first write "
            "return those plain magnitudes; later reads return M in mV; the kernel sees the "
            "mV magnitudes either way, and the current k*sum_j W_ij*sigma_JR(M_j) is in mV.",
        ),
    ),
    NetworkSpec(
        "hopf_diffusive_nodelay", "HopfStep", _HOPF_INIT, "diffusive", "x", 0.5, delayed=False
    ),
)

_NOTES = (
    "delay_init = Constant(initial value of the coupled variable per region): the history "
    "buffer starts filled with x0. brainmass never writes x0 itself into the buffer, so "
    "every read at the first step (0-step delays included) returns delay_init, not x0; "
    "here the two coincide.",
    "Delays in steps are ceil(distance/speed/dt) with no interpolation, frozen at "
    "construction; the delay diagonal is zero (array delay_steps, read back from brainmass).",
    "conn is the connectome as passed; coupling_matrix is what the coupling uses (conn "
    "with its diagonal zeroed, or for 'laplacian' the LaplacianConnParam value "
    "L = W' - diag(rowsum W'), W' = exp(W) * W).",
    "The coupling current is the node's first update argument; node_inputs follow it.",
)


def _delay_prefetch(net: brainmass.Network) -> Any:
    """The coupling's delayed read of the source (a brainstate PrefetchDelayAt)."""
    found = [v for v in vars(net.coupling).values() if type(v).__name__ == "PrefetchDelayAt"]
    if len(found) != 1:
        raise RuntimeError(f"expected one delayed read in {type(net.coupling).__name__}")
    return found[0]


def _extra_arrays(spec: NetworkSpec, conn: np.ndarray, distances: np.ndarray):
    def fn(net: brainmass.Network) -> dict[str, np.ndarray]:
        delay_steps = np.asarray(_delay_prefetch(net).delay_info[0], dtype=np.int64)
        c = net.coupling.conn
        coupling_matrix = np.asarray(u.get_magnitude(c.value()), dtype=np.float64)
        out = {
            "conn": conn.astype(np.float64),
            "coupling_matrix": coupling_matrix,
            "delay_steps": delay_steps,
            "k": np.asarray(spec.k, dtype=np.float64),
        }
        if spec.delayed:
            out["distances_mm"] = distances.astype(np.float64)
            out["speed_mm_per_ms"] = np.asarray(SPEED_MM_PER_MS, dtype=np.float64)
        return out

    return fn


def _case(spec: NetworkSpec, data: Any) -> Case:
    conn = np.asarray(data.weights, dtype=np.float64)
    distances = np.asarray(data.distances.to_decimal(u.mm), dtype=np.float64)
    cls = getattr(brainmass, spec.node)
    coupled_init = spec.init[spec.coupled_var]
    if spec.plain_delay_init:
        coupled_init = _common.magnitude(coupled_init, _common.canonical_unit(coupled_init))
    k = _common.with_unit(spec.k, spec.k_unit)
    node_update, node_defaults = _common.update_arguments(cls)

    def build():
        node = cls(N_REGIONS, **_common.constant_initialisers(cls, spec.init))
        net = brainmass.Network(
            node,
            conn=conn,
            distance=data.distances if spec.delayed else None,
            speed=SPEED_MM_PER_MS * u.mm / u.ms if spec.delayed else None,
            coupling=spec.coupling,
            coupled_var=spec.coupled_var,
            k=k,
            delay_init=braintools.init.Constant(coupled_init),
        )
        return net, node

    node_params = _common.constructor_parameters(
        cls,
        {},
        lambda n: n.startswith("noise") or n.startswith("init_") or n.endswith("_init"),
    )
    # The coupling kernels' shape parameters cannot be set through Network: read back
    # the class defaults it used.
    with brainstate.environ.context(dt=DT_MS * u.ms):
        probe, _ = build()
    shape_params = {
        name: _common.describe_value(v.value())
        for name, v in vars(probe.coupling).items()
        if isinstance(v, brainstate.nn.Const) and name not in ("conn", "k")
    }
    meta = {
        "kind": "network",
        "case": spec.name,
        "node": spec.node,
        "node_params": {n: _common.describe_value(v) for n, v in node_params.items()},
        "coupling": spec.coupling,
        "coupling_shape_params": shape_params,
        "coupled_var": spec.coupled_var,
        "k": [spec.k, spec.k_unit],
        "n_regions": N_REGIONS,
        "connectome": "brainmass.datasets.load_dataset('example_connectome')",
        "distance": "example_connectome.distances (mm)" if spec.delayed else None,
        "speed_mm_per_ms": SPEED_MM_PER_MS if spec.delayed else None,
        "delay_init": "Constant(init__"
        + spec.coupled_var
        + ")"
        + (" as plain magnitudes" if spec.plain_delay_init else ""),
        "first_step_delayed_read": "delay_init (brainmass never buffers x0; equal to x0 here)",
        "self_connection": False,
        "node_update_signature": node_update,
        "update_inputs": {
            "<coupling current>": node_update[0],
            **{n: f"input__{n}" for n in spec.node_inputs},
        },
        "notes": [*_NOTES, *spec.notes],
    }
    return Case(
        relpath=f"network/{spec.name}.npz",
        build=build,
        init=spec.init,
        inputs=spec.node_inputs,
        input_order=node_update[1:],
        input_defaults=node_defaults,
        dt_ms=DT_MS,
        n_steps=N_STEPS,
        meta=meta,
        extra_arrays_fn=_extra_arrays(spec, conn, distances),
    )


def cases(only: str | None = None) -> list[Case]:
    """All network cases (or the one named ``only``)."""
    data = brainmass.datasets.load_dataset("example_connectome")
    return [_case(s, data) for s in SPECS if only in (None, s.name)]


def main(outdir: str) -> None:
    """Write every network reference file under ``<outdir>/network``."""
    written = _common.generate(__name__, cases(), outdir)
    print(f"[network] wrote {len(written)} files")
