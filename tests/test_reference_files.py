"""Sanity of the committed brainmass reference data (tests/data/reference).

Every file loads, its arrays agree with its metadata, its values are finite and its
states move; the catalogue is covered; the manifests list exactly the files present.
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
from _reference import REFERENCE_DIR, load_reference, reference_files, states, stored_steps

# models/ and network/ hold trajectories in the format of tests/data/reference/README.md;
# other groups (objectives, observation, ...) have formats of their own.
FILES = reference_files("models") + reference_files("network")

CATALOGUE = [
    "HopfStep", "StuartLandauStep", "VanDerPolStep", "FitzHughNagumoStep",
    "ThresholdLinearStep", "Generic2dOscillatorStep", "LorenzStep", "LinearStep",
    "WilsonCowanStep", "WilsonCowanNoSaturationStep", "WilsonCowanSymmetricStep",
    "WilsonCowanSimplifiedStep", "WilsonCowanLinearStep", "WilsonCowanDivisiveStep",
    "WilsonCowanDivisiveInputStep", "WilsonCowanDelayedStep", "WilsonCowanAdaptiveStep",
    "WilsonCowanThreePopulationStep", "JansenRitStep", "WongWangStep", "WongWangExcInhStep",
    "MontbrioPazoRoxinStep", "CoombesByrneStep", "LarterBreakspearStep", "EpileptorStep",
    "KuramotoNetwork", "HORNStep",
]  # fmt: skip
# Models without a `method` argument: one scheme only.
SINGLE_SCHEME = {
    "ThresholdLinearStep": "exp_euler", "WongWangStep": "exp_euler",
    "KuramotoNetwork": "exp_euler", "HORNStep": "symplectic",
}  # fmt: skip
NETWORK_CASES = [
    "hopf_diffusive", "hopf_additive", "hopf_sigmoidal", "hopf_tanh", "hopf_laplacian",
    "wc_additive", "jr_sigmoidal_jansen_rit_kmV", "hopf_diffusive_nodelay",
]  # fmt: skip


def test_reference_data_present_and_small():
    assert len(FILES) > 100
    total = sum(p.stat().st_size for p in REFERENCE_DIR.rglob("*") if p.is_file())
    assert total < 8 * 2**20


@pytest.mark.parametrize("relpath", reference_files())
def test_every_reference_file_loads(relpath):
    ref = load_reference(relpath)
    assert ref and all(isinstance(v, (np.ndarray, dict)) for v in ref.values())


@pytest.mark.parametrize("relpath", FILES)
def test_file_consistent_with_its_metadata(relpath):
    ref = load_reference(relpath)
    meta = ref["meta"]
    n_steps, every = int(ref["n_steps"]), int(ref["record_every"])
    assert (n_steps, every, float(ref["dt_ms"])) == (
        meta["n_steps"],
        meta["record_every"],
        meta["dt_ms"],
    )
    n_stored = len(range(every - 1, n_steps, every))
    assert meta["n_stored"] == n_stored == len(stored_steps(ref))
    n = meta["n_regions"]
    assert meta["brainmass_version"] == "0.1.1"
    assert set(meta["state_units"]) == set(meta["state_names"])
    for name, traj in states(ref).items():
        init = ref[f"init__{name}"]
        assert traj.shape == (n_stored, n) and traj.dtype == np.float32, name
        assert init.shape == (n,), name
        assert np.isfinite(traj).all() and np.isfinite(init).all(), name
        gap = float(ref[f"gap64__{name}"])
        assert math.isfinite(gap) and gap >= 0.0 and gap == pytest.approx(meta["gap64"][name])
        # A reference whose variable never leaves its initial value tests nothing.
        assert np.max(np.abs(traj - init)) > 1e-6 * (1.0 + np.max(np.abs(init))), name
    for name in meta["inputs"]:
        assert ref[f"input__{name}"].shape == (n,) and np.isfinite(ref[f"input__{name}"]).all()
    stray = {k for k in ref if k.startswith("input__")} - {f"input__{k}" for k in meta["inputs"]}
    assert not stray
    assert 0 <= int(ref["horizon_steps"]) <= n_steps == meta["n_steps"]


@pytest.mark.parametrize("model", CATALOGUE)
def test_every_model_has_default_and_alt_for_each_method(model):
    methods = [SINGLE_SCHEME[model]] if model in SINGLE_SCHEME else ["exp_euler", "rk4"]
    for case in ("default", "alt"):
        for method in methods:
            meta = load_reference(f"models/{model}__{case}__{method}.npz")["meta"]
            assert (meta["model"], meta["case"], meta["method"]) == (model, case, method)
            assert all(len(v) == 2 and isinstance(v[1], str) for v in meta["params"].values())


def test_wrapped_delayed_wilson_cowan_differs_from_the_bare_run():
    # The bare Simulator never writes the delay buffers; the wrapped run does, with the
    # same parameters, inputs and initial state (the alt case).
    bare = load_reference("models/WilsonCowanDelayedStep__alt__exp_euler.npz")
    wrapped = load_reference("models/WilsonCowanDelayedStep__wrapped__exp_euler.npz")
    assert wrapped["meta"]["params"] == bare["meta"]["params"]
    np.testing.assert_array_equal(wrapped["init__rE"], bare["init__rE"])
    assert np.max(np.abs(wrapped["state__rE"] - bare["state__rE"])) > 1e-2


@pytest.mark.parametrize("case", NETWORK_CASES)
def test_network_delays_are_brainmass_ceil_steps(case):
    ref = load_reference(f"network/{case}.npz")
    dt = float(ref["dt_ms"])
    assert ref["conn"].shape == ref["coupling_matrix"].shape == ref["delay_steps"].shape == (8, 8)
    if "distances_mm" in ref:
        expected = np.ceil(ref["distances_mm"] / float(ref["speed_mm_per_ms"]) / dt - 1e-9)
        np.testing.assert_array_equal(ref["delay_steps"], expected.astype(np.int64))
        assert ref["delay_steps"].max() == 80
    else:
        assert not ref["delay_steps"].any()
    coupled = ref["meta"]["coupled_var"]
    assert coupled in ref["meta"]["state_names"]


def test_manifests_list_exactly_the_files():
    for group in ("models", "network"):
        manifest = json.loads((REFERENCE_DIR / group / "manifest.json").read_text())
        assert sorted(manifest["cases"]) == reference_files(group)
        assert not set(manifest["refused"]) & set(manifest["cases"])


def test_load_reference_names_the_missing_path():
    with pytest.raises(FileNotFoundError, match="relpath 'models/NoSuchModel.npz'"):
        load_reference("models/NoSuchModel.npz")


DRIVER = REFERENCE_DIR.parents[2] / "tools" / "make_references.py"
# The driver lives in the git checkout's tools/, not in an sdist or a copy of tests/ run
# against an installed package: there its tests have nothing to test.
needs_driver = pytest.mark.skipif(not DRIVER.exists(), reason=f"needs the checkout's {DRIVER.name} (tools/)")


def _driver():
    spec = importlib.util.spec_from_file_location("make_references", DRIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_driver
def test_driver_finds_the_case_modules():
    assert {"models", "network"} <= set(_driver().case_modules())


@needs_driver
def test_driver_names_an_unknown_only(capsys):
    # Rejected before any venv is touched.
    with pytest.raises(SystemExit):
        _driver().main(["--only", "bogus"])
    assert "--only 'bogus': no such case module" in capsys.readouterr().err
