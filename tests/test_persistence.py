"""Files the package writes and reads back: fit checkpoints, sweep checkpoints, saved
trajectories (a damaged file, a missing folder, two writers, another precision)."""

import json
import os
import warnings

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _jax_versions import enable_x64

import brainmass_eqx as bm
from brainmass_eqx import _ensemble as ens
from brainmass_eqx.fit import Fitter, _checkpoint as ckpt


class _Quadratic(bm.AbstractModel):
    """A carrier of two parameters: the fitting machinery without a simulation."""

    a: object = bm.models.parameter(0.0)
    b: object = bm.models.parameter(0.0)


def _quad_loss(model, target):
    a, b = bm.unwrap(model.a), bm.unwrap(model.b)
    return (a - target[0]) ** 2 + (b - target[1]) ** 2, a + b


_TARGET = jnp.array([1.0, -2.0])


def _fitter(callbacks=None):
    model = _Quadratic(a=bm.Param(0.3, bounds=(-5.0, 5.0)), b=bm.Param(0.0))
    return Fitter(model, optax.adam(0.05), loss_fn=_quad_loss, callbacks=callbacks)


# -- fit checkpoints -----------------------------------------------------------------------


def test_fit_checkpoint_path_is_checked_before_the_fit_runs(tmp_path):
    # Without checkpoint_every the checkpoint is written at the end only: a missing folder
    # failed there, after the whole fit, with "No such file ... 'f.ckpt.tmp'", and the
    # fit's result was lost.
    steps = []
    count_steps = lambda info: steps.append(info["step"])  # noqa: E731
    with pytest.raises(FileNotFoundError, match=r"checkpoint=.*the folder .*missing.* does not exist; create it"):
        _fitter(count_steps).fit(_TARGET, 3, checkpoint=str(tmp_path / "missing" / "f.ckpt"))
    assert steps == []
    with pytest.raises(IsADirectoryError, match=r"checkpoint=.* is a folder; pass a file path in it"):
        _fitter(count_steps).fit(_TARGET, 3, checkpoint=str(tmp_path))
    assert steps == []


def test_two_writers_of_one_checkpoint_leave_a_whole_file(tmp_path, monkeypatch):
    # Two fits saving to the same path (the same script started twice). With one shared
    # temporary name the second writer truncated the first's file, and the first's rename
    # then failed (FileNotFoundError) after the second had renamed it away.
    path = str(tmp_path / "fit.ckpt")
    first = {"x": jnp.arange(3.0)}
    second = {"x": jnp.arange(3.0) + 10.0}
    real_replace = os.replace
    calls = []

    def replace_after_another_writer(src, dst):
        calls.append(dst)
        if len(calls) == 1:  # the other process saves while this one is about to rename
            ckpt.save_checkpoint(path, {"who": "second"}, second)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_another_writer)
    ckpt.save_checkpoint(path, {"who": "first"}, first)
    monkeypatch.setattr(os, "replace", real_replace)
    header, state = ckpt.load_checkpoint(path, first, {})
    assert header["who"] == "first"  # the last rename wins, whole
    np.testing.assert_array_equal(state["x"], first["x"])
    assert sorted(os.listdir(tmp_path)) == ["fit.ckpt"]  # no temporary file left behind


@pytest.fixture(scope="module")
def written_checkpoint(tmp_path_factory):
    """A checkpoint of 12 of 30 steps of the quadratic fit (float32), and its bytes."""
    path = str(tmp_path_factory.mktemp("ckpt") / "fit.ckpt")
    stopper = _fitter(callbacks=lambda info: info["step"] == 11)
    stopper.fit(_TARGET, 30, checkpoint=path, checkpoint_every=5)
    with open(path, "rb") as f:
        return path, f.read()


def _flip_first_value(data: bytes) -> bytes:
    """``data`` with one bit of the first byte of the first array's values flipped (the
    state is a series of .npy records after the JSON header line)."""
    state = data.index(b"\n", data.index(b"\n") + 1) + 1
    values = data.index(b"\n", data.index(b"NUMPY", state)) + 1
    return data[:values] + bytes([data[values] ^ 0x40]) + data[values + 1 :]


def _with_header(data: bytes, change) -> bytes:
    """``data`` with its JSON header line replaced by ``change(header)``, JSON-encoded."""
    magic, header, state = data.split(b"\n", 2)
    return magic + b"\n" + json.dumps(change(json.loads(header))).encode() + b"\n" + state


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:60],  # cut inside the JSON header
        lambda data: data[:-20],  # cut inside the state's bytes
        lambda data: _flip_first_value(data),  # one bit of a value changed: same length
        # Before: "is not a brainmass_eqx fit checkpoint." (no fix) for a partial copy.
        lambda data: b"",
        lambda data: data[:10],  # cut inside the first line
        lambda data: _with_header(data, lambda h: [h]),
        # Before: KeyError 'step' and KeyError 'yes', after the header had been accepted.
        lambda data: _with_header(data, lambda h: {k: v for k, v in h.items() if k != "step"}),
        lambda data: _with_header(data, lambda h: dict(h, x64="yes")),
    ],
    ids=["header cut", "state cut", "value changed", "empty", "first line cut", "header a list", "no step", "x64 a string"],
)
def test_damaged_fit_checkpoint_is_refused_naming_the_file(tmp_path, written_checkpoint, damage):
    # Before: json's "Expecting value: line 1 column 61", equinox's "Error at leaf with
    # path (GetAttrKey(name='active'),)", and a changed value resumed silently (a fitted
    # parameter 4.3e-6 off the uninterrupted fit's for this bit).
    _, data = written_checkpoint
    path = str(tmp_path / "damaged.ckpt")
    with open(path, "wb") as f:
        f.write(damage(data))
    with pytest.raises(ValueError, match=r"checkpoint=.*damaged\.ckpt' is damaged .*resume=False"):
        _fitter().fit(_TARGET, 30, checkpoint=path, resume=True)


def test_a_file_that_is_no_fit_checkpoint_says_what_to_pass(tmp_path):
    path = tmp_path / "sweep.npz"
    np.savez(path, x=np.ones(3))
    with pytest.raises(ValueError, match=r"sweep\.npz' is not a brainmass_eqx fit checkpoint \(it begins b'PK.*Fitter\.fit\(checkpoint=\.\.\.\)"):
        _fitter().fit(_TARGET, 30, checkpoint=str(path), resume=True)


def test_fit_checkpoint_of_the_other_precision_says_so(tmp_path, written_checkpoint):
    # Every array's dtype differs, so the target's digest did too: the checkpoint was
    # refused as "written by a different fit: its target (a digest of its values)".
    _, data = written_checkpoint
    path = str(tmp_path / "fit.ckpt")
    with open(path, "wb") as f:
        f.write(data)
    with enable_x64(True):
        with pytest.raises(ValueError, match=r"written with jax_enable_x64 off \(float32\); it is on \(float64\) in this"):
            _fitter().fit(_TARGET, 30, checkpoint=path, resume=True)
    # In the precision it was written in, it resumes.
    assert _fitter().fit(_TARGET, 30, checkpoint=path, resume=True).n_steps == 30


# -- sweep checkpoints ---------------------------------------------------------------------


def _point(a):
    return bm.simulate(bm.Hopf(1, a=a, init_x=0.5), 2.0, dt=0.1)


_SUMMARIES = {"mean_x": lambda tr: jnp.mean(tr["x"])}


def test_sweep_checkpoint_path_is_checked_and_a_damaged_one_is_named(tmp_path, monkeypatch):
    grid = {"a": [0.1, 0.2, 0.3]}
    real = ens.ensemble
    chunks = []
    monkeypatch.setattr(ens, "ensemble", lambda *a, **k: chunks.append(1) or real(*a, **k))
    # A missing folder failed after the first chunk had run ('sw.npz.tmp.npz').
    with pytest.raises(FileNotFoundError, match=r"sweep: checkpoint=.*the folder .*missing.* does not exist"):
        ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=str(tmp_path / "missing" / "sw.npz"))
    assert chunks == []
    path = str(tmp_path / "sw.npz")
    table = ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=path)
    assert sorted(os.listdir(tmp_path)) == ["sw.npz"]
    with open(path, "rb") as f:
        data = f.read()
    cut = str(tmp_path / "cut.npz")
    with open(cut, "wb") as f:
        f.write(data[: len(data) // 2])
    # Before: zipfile's "File is not a zip file", naming neither the file nor what to do.
    with pytest.raises(ValueError, match=r"sweep: checkpoint .*cut\.npz' is damaged .*delete it"):
        ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=cut)
    other = str(tmp_path / "other.npz")
    np.savez(other, x=np.ones(3))
    # Before: KeyError "'fingerprint is not a file in the archive'".
    with pytest.raises(ValueError, match=r"sweep: checkpoint .*other\.npz' is not a sweep checkpoint \(it holds \['x'\]\)"):
        ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=other)
    chunks.clear()
    again = ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=path)
    assert chunks == []  # all read back from the checkpoint
    np.testing.assert_array_equal(again["mean_x"], table["mean_x"])


def test_sweep_checkpoint_of_the_other_precision_says_so(tmp_path):
    # Resumed in the other precision its traced computation differs too, and the checkpoint
    # was refused as "a different sweep (the grid, the summaries, ...)": neither the cause
    # nor the fix, where a fit checkpoint names the precision.
    grid = {"a": [0.1, 0.2, 0.3]}
    path = str(tmp_path / "sw.npz")
    with enable_x64(True):
        ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=path)
    with pytest.raises(ValueError, match=r"sw\.npz' was written with jax_enable_x64 on \(float64\); it is off \(float32\) in this"):
        ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=path)
    with enable_x64(True):  # in its own precision it resumes
        assert ens.sweep(_point, grid, _SUMMARIES, chunk_size=2, checkpoint=path)["mean_x"].dtype == np.float64


# -- saved trajectories --------------------------------------------------------------------


def test_trajectory_save_killed_part_way_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "run.npz")
    first = bm.simulate(bm.Hopf(2, a=0.1), 2.0, dt=0.1)
    first.save(path)
    real_savez = np.savez

    def savez_killed(file, *args, **kwargs):
        # What a process killed (or a full disk) mid-write leaves: some bytes, then nothing.
        if isinstance(file, (str, os.PathLike)):
            with open(file, "wb") as f:
                f.write(b"PK\x03\x04 part of a zip")
        else:
            file.write(b"PK\x03\x04 part of a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_killed)
    with pytest.raises(KeyboardInterrupt):
        bm.simulate(bm.Hopf(2, a=0.2), 2.0, dt=0.1).save(path)
    monkeypatch.setattr(np, "savez", real_savez)
    # Before: the previous trajectory was gone ("... is damaged (BadZipFile ...").
    loaded = bm.Trajectory.load(path)
    np.testing.assert_array_equal(loaded["x"], first["x"])
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]


def test_trajectory_save_to_a_missing_folder_names_it(tmp_path):
    # open()'s error named the temporary file ('.../run.npz.<pid>-<thread>-<hex>.tmp').
    run = bm.simulate(bm.Hopf(2, a=0.1), 2.0, dt=0.1)
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match=r"path='.*run.npz': the folder '.*no_such_folder' does not exist; create it"):
        run.save(missing / "run.npz")
    assert not missing.exists()


def test_a_float64_trajectory_continued_in_float32_says_so(tmp_path):
    # A float64 run saved and continued in a process with x64 off was rounded to float32
    # and went on in float32 without a word (9e-8 off the uninterrupted float64 run here),
    # where a fit checkpoint of the other precision is refused by name.
    net = bm.Network(bm.Hopf(3, a=0.1, w=0.3, init_x=np.array([0.1, 0.5, 0.9])), np.ones((3, 3)) - np.eye(3),
                     delays=np.full((3, 3), 0.5), k=0.3)  # fmt: skip
    path = str(tmp_path / "run64.npz")
    with enable_x64(True):
        bm.simulate(net, 2.0, dt=0.1).save(path)
    loaded = bm.Trajectory.load(path)
    assert loaded.final_state["x"].dtype == np.float64
    with pytest.warns(RuntimeWarning, match=r"computed in float64 and is continued in float32 .*jax_enable_x64"):
        assert bm.simulate(net, 1.0, dt=0.1, y0=loaded)["x"].dtype == np.float32
    # Its own precision, or a float32 one continued in float64, continues silently.
    bm.simulate(net, 2.0, dt=0.1).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bm.simulate(net, 1.0, dt=0.1, y0=bm.Trajectory.load(path))
        with enable_x64(True):
            bm.simulate(net, 1.0, dt=0.1, y0=bm.Trajectory.load(path))
