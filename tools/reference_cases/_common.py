"""Shared machinery of the brainmass reference cases.

This module runs **inside the throwaway brainmass 0.1.1 venv** (see
``tools/make_references.py``); nothing in the ``brainmass_eqx`` package imports it.

A case module (``models.py``, ``network.py``, ...) builds a list of :class:`Case`
objects and calls :func:`generate`. For every case, :func:`generate`

1. runs the case once in a child process with ``jax_enable_x64`` and brainstate's
   ``precision=64`` (x64 alone leaves brainstate's initialisers in float32, so the
   "float64" run would silently stay float32),
2. runs it again here in float32 (brainmass's default),
3. writes ``<outdir>/<case.relpath>`` (``np.savez_compressed``) with the float32
   trajectory subsampled every ``RECORD_EVERY`` steps, the float32/float64 rounding gap
   ``gap64__<var> = max|f32 - f64| / max|f64|`` over all steps, and a JSON ``meta``,
4. writes ``<outdir>/<module>/manifest.json`` listing the files, the gaps and any case
   brainmass refused to run (with the error).

Every number is deterministic: constant initial states, no noise, no random
initialiser reaches a run.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

# The child process of `generate` sets this variable (and JAX_ENABLE_X64) and imports this
# module before any other, so the precision is fixed before any array is created.
_X64_ENV = "BMX_REFERENCE_X64"
X64 = os.environ.get(_X64_ENV) == "1"
if X64:
    jax.config.update("jax_enable_x64", True)

import brainstate  # noqa: E402
import braintools  # noqa: E402
import brainunit as u  # noqa: E402
import numpy as np  # noqa: E402

if X64:
    brainstate.environ.set(precision=64)

import brainmass  # noqa: E402

RECORD_EVERY = 5
HORIZON_RTOL = 1e-4
SCHEMA_VERSION = 1

# Canonical unit strings (time ms, rate Hz, voltage mV, current nA, ...). A quantity is
# recorded in the first entry whose dimension matches.
CANONICAL_UNITS: dict[str, Any] = {
    "": None,
    "ms": u.ms,
    "Hz": u.Hz,
    "mV": u.mV,
    "nA": u.nA,
    "mV/s": u.mV / u.second,
    "Hz/nA": u.Hz / u.nA,
    "nA/Hz": u.nA / u.Hz,
    "mm": u.mm,
    "mm/ms": u.mm / u.ms,
}


def canonical_unit(value: Any) -> str:
    """Name of the canonical unit with the dimension of ``value`` ("" if unitless)."""
    if not isinstance(value, u.Quantity) or u.get_unit(value).is_unitless:
        return ""
    for name, unit in CANONICAL_UNITS.items():
        if unit is not None and u.have_same_dim(value, unit):
            return name
    raise ValueError(f"no canonical unit for a quantity of unit {u.get_unit(value)}")


def magnitude(value: Any, unit: str) -> np.ndarray:
    """Plain float64 magnitude of ``value`` expressed in the canonical ``unit``."""
    if unit == "":
        if isinstance(value, u.Quantity):
            if not u.get_unit(value).is_unitless:
                raise ValueError(f"expected a unitless value, got unit {u.get_unit(value)}")
            value = u.get_magnitude(value)
        return np.asarray(value, dtype=np.float64)
    return np.asarray(value.to_decimal(CANONICAL_UNITS[unit]), dtype=np.float64)


def with_unit(values: Any, unit: str) -> Any:
    """``values`` (plain numbers) as a brainunit quantity of the canonical ``unit``."""
    arr = np.asarray(values, dtype=np.float64)
    return arr if unit == "" else arr * CANONICAL_UNITS[unit]


def describe_value(value: Any) -> list:
    """``[value, unit]`` for the meta JSON (arrays become nested lists)."""
    if isinstance(value, (bool, np.bool_)):
        return [bool(value), ""]
    if isinstance(value, str):
        return [value, ""]
    if isinstance(value, (int, float, np.number, np.ndarray, u.Quantity)) or hasattr(
        value, "shape"
    ):
        unit = canonical_unit(value)
        mag = magnitude(value, unit)
        if np.asarray(u.get_magnitude(value)).dtype == np.float32:
            # Shortest decimal that round-trips in float32 (0.005, not 0.004999999888).
            mag = mag.astype(np.float32).astype(str).astype(np.float64)
        return [mag.tolist(), unit]
    if value is None:
        return [None, ""]
    return [type(value).__name__, ""]


def constructor_parameters(
    cls: type, overrides: dict[str, Any], skip: Callable[[str], bool]
) -> dict:
    """Every constructor parameter of ``cls`` not skipped, defaults merged with overrides."""
    params = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "in_size") or skip(name) or p.kind is p.VAR_KEYWORD:
            continue
        params[name] = overrides[name] if name in overrides else p.default
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"{cls.__name__} has no constructor parameter(s) {sorted(unknown)}")
    return params


def constant_initialisers(cls: type, init: dict[str, Any]) -> dict[str, Any]:
    """``{init_<var> | <var>_init: Constant(values)}`` for the states ``cls`` lets us set.

    brainmass spells the initialiser arguments both ways (``init_x``, ``rE_init``); states
    without one (WongWangStep's) are written after initialisation by :class:`Case`.
    """
    sig = inspect.signature(cls.__init__).parameters
    return {
        kw: braintools.init.Constant(values)
        for var, values in init.items()
        for kw in (f"init_{var}", f"{var}_init")
        if kw in sig
    }


def update_arguments(cls: type) -> tuple[list[str], dict[str, Any]]:
    """Positional order and defaults (None where required) of ``cls.update``'s arguments."""
    params = [p for n, p in inspect.signature(cls.update).parameters.items() if n != "self"]
    return [p.name for p in params], {
        p.name: (None if p.default is p.empty else p.default) for p in params
    }


def hidden_states(module: Any) -> list[str]:
    """Names of the ``HiddenState`` attributes of ``module``, in definition order."""
    return [k for k, v in vars(module).items() if isinstance(v, brainstate.HiddenState)]


def set_state(module: Any, name: str, values: Any) -> None:
    """Overwrite state ``name`` with ``values``, keeping its dtype and unit."""
    state = getattr(module, name)
    old = state.value
    unit = u.get_unit(old)
    mag = np.asarray(values.to_decimal(unit) if isinstance(values, u.Quantity) else values)
    new = jax.numpy.asarray(
        np.broadcast_to(mag, np.shape(u.get_magnitude(old))), dtype=brainstate.environ.dftype()
    )
    state.value = new if unit.is_unitless else new * unit


@dataclasses.dataclass
class Case:
    """One reference run.

    Attributes:
        relpath: output path relative to the reference directory (``models/X.npz``).
        build: ``build() -> (module, states_owner)``; called inside the dt context.
            ``states_owner`` is the object holding the HiddenStates (the model itself,
            or ``Network.node``).
        init: state name -> initial values (per region), a plain array or quantity.
        inputs: update-argument name -> constant per-region input (array or quantity).
        input_order: the positional order of the ``update`` arguments of ``module``;
            missing arguments before the last given one take their default.
        input_defaults: defaults for those positional arguments.
        dt_ms, n_steps: step and number of steps.
        meta: extra JSON metadata (model, case, method, parameters, notes, ...).
        extra_arrays: extra arrays to store (conn, delays, ...), computed in the f32 run
            by ``extra_arrays_fn(module)`` if given.
    """

    relpath: str
    build: Callable[[], tuple[Any, Any]]
    init: dict[str, Any]
    inputs: dict[str, Any]
    input_order: list[str]
    input_defaults: dict[str, Any]
    dt_ms: float
    n_steps: int
    meta: dict[str, Any]
    extra_arrays_fn: Callable[[Any], dict[str, np.ndarray]] | None = None

    def _input_tuple(self) -> tuple:
        given = [i for i, n in enumerate(self.input_order) if n in self.inputs]
        if not given:
            return ()
        return tuple(
            self.inputs.get(n, self.input_defaults.get(n))
            for n in self.input_order[: max(given) + 1]
        )

    def simulate(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str], Any]:
        """Run the case; return (trajectories, initial states, state units, module).

        Trajectories are float arrays of shape (n_steps, N) in the state's canonical
        unit (the post-step state of every step).
        """
        dt = self.dt_ms * u.ms
        with brainstate.environ.context(dt=dt):
            module, owner = self.build()
            brainstate.nn.init_all_states(module)
            names = hidden_states(owner)
            if sorted(names) != sorted(self.init):
                raise ValueError(
                    f"{self.relpath}: states {names} but init given for {sorted(self.init)}"
                )
            for name in names:
                set_state(owner, name, self.init[name])
            units = {n: canonical_unit(getattr(owner, n).value) for n in names}
            init = {n: magnitude(getattr(owner, n).value, units[n]) for n in names}
        # Plain state names where the Simulator can look them up on the module itself
        # (the documented form); callables where the states live on a child.
        if owner is module:
            monitors = {n: n for n in names}
        else:
            monitors = {n: (lambda m, n=n: getattr(owner, n).value) for n in names}
        args = self._input_tuple()
        rec = brainmass.Simulator(module, dt=dt).run(
            self.n_steps * dt,
            inputs=(lambda i, t: args) if args else None,
            monitors=monitors,
            init_states=False,
        )
        traj = {n: magnitude(rec[n], units[n]) for n in names}
        return traj, init, units, module


def _relative_gap(a: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.max(np.abs(ref)))
    err = float(np.max(np.abs(a - ref)))
    return err / scale if scale > 0 else err


def _horizon(traj32: dict[str, np.ndarray], traj64: dict[str, np.ndarray]) -> int:
    """Leading steps over which every variable's f32/f64 gap stays within HORIZON_RTOL."""
    n = next(iter(traj64.values())).shape[0]
    bad = np.zeros(n, dtype=bool)
    for name, ref in traj64.items():
        scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
        bad |= np.max(np.abs(traj32[name] - ref), axis=1) > HORIZON_RTOL * scale
    return int(np.argmax(bad)) if bad.any() else n


def _child_main(module_name: str, out: str) -> None:
    """Child-process entry point: run every case of ``module_name`` in float64."""
    import importlib

    mod = importlib.import_module(module_name)
    arrays: dict[str, np.ndarray] = {}
    for case in mod.cases():
        try:
            traj, _, _, _ = case.simulate()
        except Exception:  # recorded by the float32 run of the parent
            continue
        for name, values in traj.items():
            if values.dtype != np.float64:
                raise RuntimeError(
                    f"{case.relpath}: float64 run produced {values.dtype} for {name}"
                )
            arrays[f"{case.relpath}::{name}"] = values
    np.savez(out, **arrays)


def _run_float64(module_name: str, repo_root: Path) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "f64.npz")
        env = dict(os.environ, **{_X64_ENV: "1", "JAX_ENABLE_X64": "1"})
        code = f"from tools.reference_cases import _common; _common._child_main({module_name!r}, {out!r})"
        subprocess.run([sys.executable, "-c", code], cwd=repo_root, env=env, check=True)
        with np.load(out) as data:
            return {k: data[k] for k in data.files}


def _meta_json(meta: dict) -> np.ndarray:
    return np.array(json.dumps(meta, sort_keys=True))


def generate(module_name: str, cases: list[Case], outdir: str | os.PathLike) -> list[Path]:
    """Run ``cases`` in float64 (child process) and float32 (here) and write them.

    Returns the paths written (the .npz files and the manifest).
    """
    if X64:
        raise RuntimeError("generate() must run in the float32 parent process")
    outdir = Path(outdir)
    repo_root = Path(__file__).resolve().parents[2]
    group = module_name.rsplit(".", 1)[-1]
    keys = [c.relpath for c in cases]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate case paths in {module_name}")
    print(f"[{group}] float64 runs of {len(cases)} cases ...", flush=True)
    f64 = _run_float64(module_name, repo_root)
    written, manifest, refused = [], {}, {}
    for case in cases:
        print(f"[{group}] {case.relpath}", flush=True)
        try:
            traj, init, units, module = case.simulate()
        except Exception as exc:
            refused[case.relpath] = f"{type(exc).__name__}: {exc}"
            print(f"    REFUSED: {refused[case.relpath]}", flush=True)
            traceback.print_exc(limit=3)
            continue
        traj64 = {n: f64[f"{case.relpath}::{n}"] for n in traj}
        gaps = {n: _relative_gap(traj[n], traj64[n]) for n in traj}
        horizon = _horizon(traj, traj64)
        n_regions = next(iter(init.values())).shape[0]
        arrays: dict[str, np.ndarray] = {}
        for n in traj:
            arrays[f"state__{n}"] = traj[n][RECORD_EVERY - 1 :: RECORD_EVERY].astype(np.float32)
            arrays[f"init__{n}"] = init[n].astype(np.float32)
            arrays[f"gap64__{n}"] = np.asarray(gaps[n], dtype=np.float64)
        for name, value in case.inputs.items():
            arrays[f"input__{name}"] = np.broadcast_to(
                magnitude(value, canonical_unit(value)), (n_regions,)
            ).astype(np.float32)
        arrays["dt_ms"] = np.asarray(case.dt_ms, dtype=np.float64)
        arrays["n_steps"] = np.asarray(case.n_steps, dtype=np.int64)
        arrays["record_every"] = np.asarray(RECORD_EVERY, dtype=np.int64)
        arrays["horizon_steps"] = np.asarray(horizon, dtype=np.int64)
        if case.extra_arrays_fn is not None:
            arrays.update(case.extra_arrays_fn(module))
        meta = dict(case.meta)
        meta.update(
            schema_version=SCHEMA_VERSION,
            brainmass_version=brainmass.__version__,
            jax_version=jax.__version__,
            state_names=list(traj),
            state_units=units,
            inputs={k: canonical_unit(v) for k, v in case.inputs.items()},
            dt_ms=case.dt_ms,
            n_steps=case.n_steps,
            record_every=RECORD_EVERY,
            n_stored=len(range(RECORD_EVERY - 1, case.n_steps, RECORD_EVERY)),
            n_regions=int(n_regions),
            gap64=gaps,
            horizon_steps=horizon,
            horizon_rtol=HORIZON_RTOL,
        )
        arrays["meta"] = _meta_json(meta)
        path = outdir / case.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        written.append(path)
        manifest[case.relpath] = {
            "gap64": gaps,
            "horizon_steps": horizon,
            "max_abs": {n: float(np.max(np.abs(traj[n]))) for n in traj},
        }
    manifest_path = outdir / group / "manifest.json"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(
        json.dumps(
            {"brainmass_version": brainmass.__version__, "cases": manifest, "refused": refused},
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    written.append(manifest_path)
    return written
