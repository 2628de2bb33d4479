"""Reference trajectories of every brainmass 0.1.1 node model.

Output: ``<outdir>/models/<Model>__<case>__<method>.npz`` for

* every model of the catalogue (``SPECS``), 3 regions with different constant initial
  states (and constant inputs where the dynamics need a drive);
* cases ``default`` (default parameters) and ``alt`` (every parameter that matters
  changed, still well behaved; inputs on every ``update`` argument where it has one);
* methods ``exp_euler`` and ``rk4`` where the model takes ``method``; otherwise the
  model's only scheme (``exp_euler``, or ``symplectic`` for HORN);
* WilsonCowanDelayedStep also as ``wrapped``: run through a module whose ``update``
  calls the model's ``__call__``, so that its delay buffers are written (under the bare
  Simulator they never are).

Run through ``python tools/make_references.py --only models``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import brainmass
import brainstate
import brainunit as u
import numpy as np

from tools.reference_cases import _common
from tools.reference_cases._common import Case

N_STEPS = 2000
DT_MS = 0.1
NOTE_PLAIN = (
    "Plain-number parameters are recorded with unit '' (dimensionless); they enter "
    "right-hand sides that brainmass divides by 1 ms (spec section 0.3)."
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How to run one brainmass model.

    Attributes:
        name: class name in ``brainmass``.
        init: state name -> per-region initial values (quantity where the state has a unit).
        alt: parameter overrides of the ``alt`` case.
        inputs: constant per-region inputs of the ``default`` case (update-argument name ->
            values); only where the dynamics would otherwise be trivial.
        alt_inputs: inputs of the ``alt`` case.
        dt_ms: step (ms).
        notes: free-text notes stored in the meta.
        plain_units: meta unit for parameters brainmass takes as plain numbers that it
            reads in a unit (WongWangExcInh's time constants are plain ms).
    """

    name: str
    init: dict[str, Any]
    alt: dict[str, Any]
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    alt_inputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    dt_ms: float = DT_MS
    notes: tuple[str, ...] = ()
    plain_units: dict[str, str] = dataclasses.field(default_factory=dict)


def _a(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# Wilson-Cowan variants share the E/I populations; their per-variant parameters differ.
# The alt sets of the sigmoidal variants use Wilson & Cowan's classic limit-cycle
# weights and gains (c1..c4 = 16, 12, 15, 3): with these drives they oscillate, which
# exercises the dynamics far better than the fixed point the defaults relax to.
_WC_INIT = {"rE": _a(0.1, 0.3, 0.5), "rI": _a(0.05, 0.2, 0.4)}
_WC_IN = {"rE_inp": _a(0.5, 1.0, 2.0)}
_WC_ALT_IN = {"rE_inp": _a(1.25, 1.75, 2.5), "rI_inp": _a(0.0, 0.2, -0.2)}
_WC_EI_ALT = dict(
    tau_E=1.2 * u.ms, a_E=1.3, theta_E=4.0, tau_I=2.0 * u.ms, a_I=2.0, theta_I=3.7, r=0.9
)
_WC_W_ALT = dict(wEE=16.0, wIE=12.0, wEI=15.0, wII=3.0)
_WC_DIV_ALT = dict(_WC_EI_ALT, wEE=5.5, wIE=2.5, wEI=6.0, wII=5.0, sigma_E=1.2, sigma_I=0.8)

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "HopfStep",
        init={"x": _a(0.1, 0.5, 1.2), "y": _a(0.0, 0.2, -0.3)},
        alt=dict(a=0.5, w=0.35, beta=2.0),
        alt_inputs={"x_inp": _a(0.05, -0.05, 0.1), "y_inp": _a(0.0, 0.03, -0.03)},
    ),
    ModelSpec(
        "StuartLandauStep",
        init={"x": _a(0.2, -0.4, 0.9), "y": _a(0.1, 0.3, -0.6)},
        alt=dict(a=0.6, w=0.15),
        alt_inputs={"x_inp": _a(0.05, 0.0, -0.1), "y_inp": _a(0.02, -0.02, 0.0)},
    ),
    ModelSpec(
        "VanDerPolStep",
        init={"x": _a(0.5, -1.0, 2.0), "y": _a(0.0, 0.5, -0.5)},
        alt=dict(mu=2.5),
        alt_inputs={"x_inp": _a(0.1, 0.0, -0.1), "y_inp": _a(0.0, 0.05, -0.05)},
    ),
    ModelSpec(
        "FitzHughNagumoStep",
        init={"V": _a(0.2, -0.5, 1.0), "w": _a(0.0, 0.3, -0.2)},
        alt=dict(alpha=2.5, beta=3.5, gamma=-1.2, delta=0.1, epsilon=0.4, tau=15.0 * u.ms),
        inputs={"V_inp": _a(0.5, 1.0, 1.5)},
        alt_inputs={"V_inp": _a(0.8, 1.2, 2.0), "w_inp": _a(0.0, 0.05, -0.05)},
    ),
    ModelSpec(
        "ThresholdLinearStep",
        init={"E": _a(0.1, 0.5, 1.0), "I": _a(0.05, 0.15, 0.3)},
        alt=dict(tau_E=30.0 * u.ms, tau_I=15.0 * u.ms, beta_E=0.08, beta_I=0.4),
        inputs={"E_inp": _a(10.0, 5.0, 2.0), "I_inp": _a(1.0, 1.0, 1.0)},
        alt_inputs={"E_inp": _a(8.0, 4.0, 1.0), "I_inp": _a(1.5, 1.2, 1.0)},
        notes=(
            "brainmass integrates dI/dt = (+I - beta_I*max(I_inp,0))/tau_I and clips E, I at 0 "
            "(spec 2.2): I decays to 0 and stays clipped there; inputs chosen so that "
            "beta_I*I_inp > I(0).",
        ),
    ),
    ModelSpec(
        "Generic2dOscillatorStep",
        init={"V": _a(0.5, -1.0, 1.5), "W": _a(0.0, 1.0, -1.0)},
        alt=dict(
            a=-1.5,
            b=-8.0,
            c=0.2,
            d=0.05,
            e=2.5,
            f=1.2,
            g=-0.5,
            alpha=1.1,
            beta=0.9,
            gamma=0.8,
            I=0.3,
            tau=1.5,
        ),
        alt_inputs={"V_inp": _a(0.1, 0.0, -0.1)},
    ),
    ModelSpec(
        "LorenzStep",
        init={"x": _a(1.0, -2.0, 5.0), "y": _a(1.0, 3.0, -1.0), "z": _a(1.0, 20.0, 25.0)},
        alt=dict(sigma=12.0, rho=35.0, beta=3.0),
        alt_inputs={"x_inp": _a(0.5, 0.0, -0.5)},
        dt_ms=0.01,
        notes=(
            "dt = 0.01 ms (exp_euler diverges at 0.1 ms, spec 2.2). Chaotic: see horizon_steps.",
        ),
    ),
    ModelSpec(
        "LinearStep",
        init={"x": _a(0.5, -1.0, 2.0)},
        alt=dict(gamma=-0.05),
        inputs={"x_inp": _a(1.0, 0.0, -2.0)},
        alt_inputs={"x_inp": _a(0.02, 0.0, -0.01)},
    ),
    ModelSpec(
        "WilsonCowanStep",
        init=_WC_INIT,
        alt=dict(_WC_EI_ALT, **_WC_W_ALT),
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanNoSaturationStep",
        init=_WC_INIT,
        alt={k: v for k, v in dict(_WC_EI_ALT, **_WC_W_ALT).items() if k != "r"},
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanSymmetricStep",
        init=_WC_INIT,
        alt=dict(tau=1.5 * u.ms, a=1.5, theta=3.8, r=0.9, **_WC_W_ALT),
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanSimplifiedStep",
        init=_WC_INIT,
        alt=dict(_WC_EI_ALT, w_exc=16.0, w_inh=12.0),
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanLinearStep",
        init=_WC_INIT,
        alt=dict(tau_E=1.5 * u.ms, tau_I=2.0 * u.ms, wEE=0.7, wIE=0.4, wEI=0.9, wII=0.8, r=0.9),
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanDivisiveStep",
        init=_WC_INIT,
        alt=_WC_DIV_ALT,
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanDivisiveInputStep",
        init=_WC_INIT,
        alt=_WC_DIV_ALT,
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanDelayedStep",
        init=_WC_INIT,
        alt=dict(
            _WC_EI_ALT,
            **_WC_W_ALT,
            delay_EE=3.0 * u.ms,
            delay_IE=2.5 * u.ms,
            delay_EI=1.0 * u.ms,
            delay_II=2.0 * u.ms,
        ),
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
        notes=(
            "Under the bare Simulator (cases default, alt) brainmass calls update(), not "
            "__call__, so the delay buffers are never written: every delayed read returns "
            "the buffer's initial content, which is rE_init/rI_init = the initial state "
            "(spec 2.2 caveat). Case 'wrapped' runs the model through a module whose "
            "update calls the model's __call__, so the buffers are written after each step.",
        ),
    ),
    ModelSpec(
        "WilsonCowanAdaptiveStep",
        init=dict(_WC_INIT, aE=_a(0.0, 0.05, 0.1), aI=_a(0.0, 0.02, 0.05)),
        alt=dict(_WC_EI_ALT, **_WC_W_ALT, tau_aE=50.0 * u.ms, tau_aI=40.0 * u.ms, b_E=0.3, b_I=0.2),
        inputs=_WC_IN,
        alt_inputs=_WC_ALT_IN,
    ),
    ModelSpec(
        "WilsonCowanThreePopulationStep",
        init=dict(_WC_INIT, rM=_a(0.0, 0.1, 0.2)),
        alt=dict(
            _WC_EI_ALT,
            **_WC_W_ALT,
            tau_M=3.0 * u.ms,
            a_M=1.2,
            theta_M=3.0,
            wME=7.0,
            wMI=5.0,
            wEM=3.0,
            wIM=2.5,
            wMM=1.5,
        ),
        inputs=_WC_IN,
        alt_inputs=dict(_WC_ALT_IN, rM_inp=_a(0.2, 0.0, -0.2)),
    ),
    ModelSpec(
        "JansenRitStep",
        init={
            "M": _a(0.05, 0.1, 0.2) * u.mV,
            "E": _a(5.0, 10.0, 20.0) * u.mV,
            "I": _a(5.0, 12.0, 18.0) * u.mV,
            "Mv": _a(0.0, 50.0, -50.0) * u.mV / u.second,
            "Ev": _a(0.0, 200.0, -200.0) * u.mV / u.second,
            "Iv": _a(0.0, 100.0, -100.0) * u.mV / u.second,
        },
        alt=dict(
            Ae=3.5 * u.mV,
            Ai=20.0 * u.mV,
            be=110.0 * u.Hz,
            bi=55.0 * u.Hz,
            C=120.0,
            a1=1.1,
            a2=0.85,
            a3=0.3,
            a4=0.3,
            s_max=5.5 * u.Hz,
            v0=6.5 * u.mV,
            r=0.6,
        ),
        inputs={"E_inp": _a(120.0, 220.0, 320.0) * u.Hz},
        alt_inputs={
            "M_inp": _a(0.0, 0.5, 1.0) * u.mV,
            "E_inp": _a(150.0, 250.0, 300.0) * u.Hz,
            "I_inp": _a(0.0, -0.5, 0.5) * u.mV,
        },
        notes=("Velocities Mv, Ev, Iv are stored in mV/s, brainmass's own unit.",),
    ),
    ModelSpec(
        "WongWangStep",
        init={"S1": _a(0.1, 0.3, 0.5), "S2": _a(0.2, 0.1, 0.6)},
        alt=dict(
            tau_S=80.0 * u.ms,
            gamma=0.6,
            a=250.0 * u.Hz / u.nA,
            theta=0.3 * u.nA,
            J_N11=0.25 * u.nA,
            J_N22=0.27 * u.nA,
            J_N12=0.055 * u.nA,
            J_N21=0.045 * u.nA,
            J_A_ext=0.00025 * u.nA / u.Hz,
            mu_0=35.0 * u.Hz,
            I_0=0.33 * u.nA,
        ),
        inputs={"coherence": _a(0.1, 0.1, 0.1)},
        alt_inputs={"coherence": _a(-0.2, -0.2, -0.2)},
        notes=(
            "WongWangStep has no initialiser argument (its states always start at 0); the "
            "initial states were written into S1, S2 after init_all_states and the run used "
            "init_states=False. S1, S2 are clipped to [0, 1] after each step.",
        ),
    ),
    ModelSpec(
        "WongWangExcInhStep",
        init={"S_e": _a(0.05, 0.2, 0.5), "S_i": _a(0.05, 0.1, 0.3)},
        alt=dict(
            a_e=300.0,
            b_e=120.0,
            d_e=0.15,
            gamma_e=0.0007,
            tau_e=90.0,
            w_p=1.3,
            W_e=1.1,
            a_i=600.0,
            b_i=170.0,
            d_i=0.09,
            gamma_i=0.0011,
            tau_i=12.0,
            W_i=0.75,
            J_N=0.16,
            J_i=0.9,
            I_o=0.35,
            I_ext=0.05,
            G=1.5,
            lamda=0.5,
        ),
        alt_inputs={"coupling": _a(0.05, 0.1, 0.2)},
        plain_units={"tau_e": "ms", "tau_i": "ms"},
        notes=("tau_e, tau_i are passed to brainmass as plain numbers, which it reads as ms.",),
    ),
    ModelSpec(
        "MontbrioPazoRoxinStep",
        init={"r": _a(0.0, 0.5, 2.0) * u.Hz, "v": _a(-2.0, 0.0, 1.0)},
        alt=dict(tau=2.0 * u.ms, eta=-3.0, delta=2.0 * u.Hz, J=20.0),
        alt_inputs={"r_inp": _a(0.1, 0.2, 0.3) * u.Hz, "v_inp": _a(0.5, 0.0, -0.5)},
        notes=("r is in Hz; brainmass uses a fixed 1 ms on the 2 v r term (spec 2.2).",),
    ),
    ModelSpec(
        "CoombesByrneStep",
        init={"r": _a(0.1, 0.5, 1.0), "v": _a(0.0, -1.0, 1.0)},
        alt=dict(Delta=0.5, eta=3.0, k=1.5, v_syn=-5.0),
        alt_inputs={"r_inp": _a(0.0, 0.1, 0.2), "v_inp": _a(0.2, 0.0, -0.2)},
    ),
    ModelSpec(
        "LarterBreakspearStep",
        init={"V": _a(0.0, 0.2, -0.3), "W": _a(0.0, 0.1, 0.3), "Z": _a(0.0, 0.05, 0.1)},
        alt=dict(
            gCa=1.0,
            gK=2.1,
            gL=0.55,
            gNa=6.5,
            TCa=-0.02,
            TK=0.02,
            TNa=0.28,
            d_Ca=0.16,
            d_K=0.28,
            d_Na=0.16,
            VCa=1.05,
            VK=-0.72,
            VL=-0.48,
            VNa=0.55,
            phi=0.75,
            tau_K=1.1,
            aee=0.36,
            aei=1.9,
            aie=2.1,
            ane=1.05,
            ani=0.42,
            b=0.11,
            C=0.12,
            Iext=0.32,
            rNMDA=0.27,
            VT=0.01,
            d_V=0.62,
            ZT=0.01,
            d_Z=0.68,
            QV_max=1.05,
            QZ_max=0.95,
            t_scale=1.2,
        ),
        alt_inputs={"V_inp": _a(0.1, 0.2, 0.3)},
        notes=("Possibly chaotic: see horizon_steps.",),
    ),
    ModelSpec(
        "EpileptorStep",
        init={
            "x1": _a(-1.5, -1.0, 0.5),
            "y1": _a(-10.0, -8.0, -12.0),
            "z": _a(3.8, 3.6, 4.0),
            "x2": _a(-1.0, -0.8, -1.2),
            "y2": _a(0.0, 0.1, 0.2),
            "g": _a(0.0, 0.05, -0.05),
        },
        alt=dict(
            a=1.1,
            b=3.2,
            c=1.1,
            d=5.2,
            r=0.0005,
            x0=-2.0,
            Iext=3.2,
            slope=0.1,
            Iext2=0.5,
            tau=12.0,
            aa=5.5,
            bb=2.2,
            Kvf=0.5,
            Kf=0.3,
            Ks=0.2,
            tt=1.2,
            modification=1.0,
        ),
        alt_inputs={"x1_inp": _a(0.1, -0.1, 0.2), "x2_inp": _a(0.05, 0.0, -0.05)},
    ),
    ModelSpec(
        "KuramotoNetwork",
        init={"theta": _a(0.0, 1.0, 2.5)},
        alt=dict(
            omega=_a(0.2, 0.25, 0.3),
            K=0.8,
            alpha=0.3,
            conn=np.array([[0.3, 1.0, 0.5], [1.0, 0.2, 2.0], [0.5, 2.0, 0.1]]),
            normalize_by_n=False,
            exclude_self=False,
        ),
        inputs={"theta_inp": _a(0.1, 0.2, 0.3)},
        alt_inputs={"theta_inp": _a(0.05, 0.0, -0.05)},
        notes=("KuramotoNetwork has no method argument: forward Euler (its exp-Euler with J=0).",),
    ),
    ModelSpec(
        "HORNStep",
        init={"x": _a(0.5, -0.3, 0.0), "y": _a(0.0, 0.1, -0.2)},
        alt=dict(alpha=0.08, omega=0.3, gamma=0.02, v=0.5),
        inputs={"inputs": _a(0.5, -0.2, 1.0)},
        alt_inputs={"inputs": _a(1.0, 0.3, -0.5)},
        notes=("HORNStep has no method argument: symplectic Euler with h = dt/ms.",),
    ),
)


class _CallWrapper(brainstate.nn.Module):
    """A module whose ``update`` calls the wrapped model's ``__call__``.

    ``__call__`` runs the model's before/after-update hooks, which is where brainstate
    writes delay buffers; ``Simulator`` calls ``update`` directly and would skip them.
    """

    def __init__(self, m: brainstate.nn.Module):
        super().__init__()
        self.m = m

    def update(self, *args):
        return self.m(*args)


def _skip_param(name: str) -> bool:
    return (
        name.startswith("noise")
        or name.startswith("init_")
        or name.endswith("_init")
        or name == "method"
    )


def _model_cases(spec: ModelSpec) -> list[Case]:
    cls = getattr(brainmass, spec.name)
    sig = inspect.signature(cls.__init__).parameters
    input_order, input_defaults = _common.update_arguments(cls)
    init_kwargs = _common.constant_initialisers(cls, spec.init)
    if "method" in sig:
        methods = ["exp_euler", "rk4"]
    else:
        methods = ["symplectic" if spec.name == "HORNStep" else "exp_euler"]
    variants = [("default", {}, spec.inputs), ("alt", spec.alt, spec.alt_inputs)]
    if spec.name == "WilsonCowanDelayedStep":
        variants.append(("wrapped", spec.alt, spec.alt_inputs))
    cases = []
    for case_name, overrides, inputs in variants:
        params = _common.constructor_parameters(cls, overrides, _skip_param)
        for method in methods:
            kwargs = dict(params, **init_kwargs)
            if "method" in sig:
                kwargs["method"] = method

            def build(kwargs=kwargs, wrap=(case_name == "wrapped")):
                model = cls(3, **kwargs)
                return (_CallWrapper(model), model) if wrap else (model, model)

            meta_params = {}
            for name, value in params.items():
                value_desc = _common.describe_value(value)
                if name in spec.plain_units:
                    value_desc[1] = spec.plain_units[name]
                meta_params[name] = value_desc
            notes = [NOTE_PLAIN, *spec.notes]
            if case_name == "wrapped":
                notes.append("Parameters, initial states and inputs as in the alt case.")
            meta = {
                "kind": "model",
                "model": spec.name,
                "case": case_name,
                "method": method,
                "params": meta_params,
                "init_via": sorted(init_kwargs) or "state assignment after init",
                "update_inputs": {n: f"input__{n}" for n in inputs},
                "update_signature": input_order,
                "simulator": "brainmass.Simulator(model, dt).run(n_steps*dt, inputs=lambda i, t: "
                "constant inputs, monitors=states, init_states=False) after init_all_states and "
                "writing the initial states",
                "notes": notes,
            }
            cases.append(
                Case(
                    relpath=f"models/{spec.name}__{case_name}__{method}.npz",
                    build=build,
                    init=spec.init,
                    inputs=inputs,
                    input_order=input_order,
                    input_defaults=input_defaults,
                    dt_ms=spec.dt_ms,
                    n_steps=N_STEPS,
                    meta=meta,
                )
            )
    return cases


def cases(only: str | None = None) -> list[Case]:
    """All model cases (or those of the model named ``only``)."""
    return [c for s in SPECS if only in (None, s.name) for c in _model_cases(s)]


def main(outdir: str) -> None:
    """Write every model reference file under ``<outdir>/models``."""
    written = _common.generate(__name__, cases(), outdir)
    print(f"[models] wrote {len(written)} files")
