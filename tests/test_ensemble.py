"""Ensembles (vmap + sharding across devices) and resumable parameter sweeps."""

import dataclasses
import re
import sys
import textwrap
import threading
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _devices import run_on_two_host_devices

import brainmass_eqx as bx
import brainmass_eqx._ensemble as ens


def settled_amplitude(model):
    return jnp.max(jnp.abs(bx.simulate(model, 60.0, dt=0.1, transient=400)["x"]), axis=0)


def test_ensemble_equals_vmap_over_a_batch_of_models():
    a = jnp.linspace(0.05, 0.8, 5)
    models = eqx.filter_vmap(lambda a: bx.Hopf(2, a=a, init_x=0.5))(a)
    got = ens.ensemble(settled_amplitude, models)
    want = eqx.filter_vmap(settled_amplitude)(models)
    np.testing.assert_array_equal(got, want)
    assert got.shape == (5, 2)


def test_cpu_slices_at_once_equal_one_vmap():
    # 7 models in 3 slices (padded to 9) run at once in threads: the members of one vmap.
    a = jnp.linspace(0.05, 0.8, 7)
    models = eqx.filter_vmap(lambda a: bx.Hopf(2, a=a, init_x=0.5))(a)
    want = eqx.filter_vmap(settled_amplitude)(models)
    for _ in range(2):  # the first call of a signature compiles (one slice alone), the second does not
        # Slices of 3 compile apart from the vmap of 7: equal up to XLA's rounding of each
        # width (1 ulp, as `ensemble` documents; bitwise with threads=1 below).
        np.testing.assert_allclose(ens.ensemble(settled_amplitude, models, threads=3), want, rtol=3e-7, atol=0)
    np.testing.assert_array_equal(ens.ensemble(settled_amplitude, models, threads=1), want)
    assert 1 <= ens.cpu_slices(7) <= max(1, 7 // 4)
    # Inside a trace there are no threads to run: one vmap.
    traced = eqx.filter_jit(lambda m: ens.ensemble(settled_amplitude, m, threads=3))(models)
    np.testing.assert_array_equal(traced, want)
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        ens.ensemble(settled_amplitude, models, threads=0)
    with pytest.raises(TypeError, match=r"ensemble: threads must be an int >= 1 \(or None for one per CPU core\), got 1.5"):
        ens.ensemble(settled_amplitude, models, threads=1.5)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU plan: one call off a CPU")
def test_cpu_plan_cuts_a_large_batch_into_16_member_slices_taken_in_turn(monkeypatch):
    monkeypatch.setattr(ens, "cpu_slices", lambda size, min_slice=4: min(2, max(1, size // min_slice)))
    assert ens.cpu_plan(256) == (2, 16, 16)  # 16 slices, two threads
    assert ens.cpu_plan(40) == (2, 3, 16)  # the last slice padded to 16
    assert ens.cpu_plan(32) == (2, 2, 16)
    assert ens.cpu_plan(20) == (2, 2, 10)  # no more than one slice per thread: equal slices
    assert ens.cpu_plan(3) == (1, 1, 3)
    assert ens.cpu_plan(0) == (1, 1, 0)
    # One thread (one core, or too few members for two) takes the 16-member slices in turn.
    assert ens.cpu_plan(7) == (1, 1, 7)
    monkeypatch.setattr(ens, "cpu_slices", lambda size, min_slice=4: 1)
    assert ens.cpu_plan(40) == (1, 3, 16)
    # Threads given: that many equal slices at once, whatever the size.
    assert ens.cpu_plan(256, threads=2) == (2, 2, 128)
    assert ens.cpu_plan(7, threads=3) == (3, 3, 3)
    assert ens.cpu_plan(2, threads=3) == (2, 2, 1)
    # ... but no slice of padding alone: 7 members with 5 threads are 4 slices of 2.
    assert ens.cpu_plan(7, threads=5) == (4, 4, 2)
    assert ens.cpu_plan(10, threads=4) == (4, 4, 3)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU plan: one call off a CPU")
def test_a_batch_of_many_slices_is_taken_in_turn_by_one_thread_per_core(monkeypatch):
    # 72 members on "2 cores": five 16-member slices (80, the padding dropped), the first
    # alone (it compiles), the others taken in turn by two threads.
    monkeypatch.setattr(ens, "cpu_slices", lambda size, min_slice=4: min(2, max(1, size // min_slice)))
    threads, widths = set(), []

    def record(x):
        threads.add(threading.current_thread().name)
        widths.append(x.shape[0])
        return x

    def fn(a):
        return jax.pure_callback(record, jax.ShapeDtypeStruct((), a.dtype), jnp.sin(a), vmap_method="expand_dims")

    a = jnp.linspace(0.0, 1.0, 72)
    got = ens.ensemble(fn, a)
    np.testing.assert_allclose(got, np.sin(np.asarray(a)), rtol=1e-6)
    assert got.shape == (72,) and widths == [16] * 5
    assert threads - {"MainThread"} and len(threads - {"MainThread"}) <= 2
    assert all(name.startswith(("bmx-slice", "MainThread")) for name in threads)
    # fn closing over a traced value: no threads, and one traced call of the whole batch
    # besides the first slice's (not one per slice).
    traces = []

    def closing(k):
        def member(x):
            traces.append(x.shape)
            return jnp.sin(k * x)

        return ens.ensemble(member, a).sum()

    np.testing.assert_allclose(jax.grad(closing)(1.0), np.sum(np.asarray(a) * np.cos(np.asarray(a))), rtol=1e-5)
    assert len(traces) == 2


def test_run_slices_calls_each_part_once_in_order():
    calls = []

    def fn(x):
        calls.append(int(x))
        return jnp.asarray(x) * 2

    parts = [(jnp.asarray(i),) for i in range(3)]
    for _ in range(2):  # the first call of the signature runs part 0 alone, then the others
        calls.clear()
        assert [int(out) for out in ens.run_slices(fn, parts)] == [0, 2, 4]
        assert sorted(calls) == [0, 1, 2]


def test_ensemble_empty_batch_and_outputs_that_are_not_arrays():
    # An empty batch divided by zero slices (ZeroDivisionError); jax.vmap takes it.
    for threads in (None, 1, 2):
        assert ens.ensemble(lambda a: 2 * a, jnp.zeros((0, 3)), threads=threads).shape == (0, 3)
    # eqx.filter_vmap returns a leaf that is not an array as it is; joining the slices
    # tried to concatenate it ("Zero-dimensional arrays cannot be concatenated").
    out = ens.ensemble(lambda p: {"x": p["x"] ** 2, "unit": p["unit"]}, {"x": jnp.arange(5.0), "unit": 1.0}, threads=2)
    np.testing.assert_array_equal(out["x"], jnp.arange(5.0) ** 2)
    assert out["unit"] == 1.0


def test_ensemble_of_a_function_closing_over_a_traced_value():
    # A concrete batch, fn closing over a tracer (grad/jit of a parameter shared by the
    # members): the slices ran in threads, outside the trace (UnexpectedTracerError).
    xs = np.linspace(0.0, 1.0, 8, dtype=np.float32)
    want = jax.grad(lambda k: jnp.sin(k * xs).sum())(1.5)
    for threads in (None, 2, 3):
        got = jax.grad(lambda k, t=threads: ens.ensemble(lambda a: jnp.sin(k * a), xs, threads=t).sum())(1.5)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        jitted = jax.jit(lambda k, t=threads: ens.ensemble(lambda a: jnp.sin(k * a), xs, threads=t))(1.5)
        np.testing.assert_allclose(jitted, jnp.sin(1.5 * xs), rtol=1e-6)


def test_batch_leaves_must_share_the_leading_axis():
    with pytest.raises(ValueError, match="same leading"):
        ens.ensemble(lambda p: p["a"], {"a": jnp.zeros(3), "b": jnp.zeros(4)})
    with pytest.raises(ValueError, match=r"no array leaves to map over. Python numbers are not mapped over: give the "
                       r"values as an array, e.g. jnp.asarray\(\[...\]\)"):
        ens.ensemble(lambda p: p, [0.1, 0.2])
    with pytest.raises(ValueError, match=r"no array leaves to map over\.$"):
        ens.ensemble(lambda p: p, {})


SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, equinox as eqx
    import brainmass_eqx as bx
    from brainmass_eqx import ensemble
    assert len(jax.devices()) == 2, jax.devices()
    def f(model):
        return jnp.max(jnp.abs(bx.simulate(model, 30.0, dt=0.1, transient=200)["x"]), axis=0)
    models = eqx.filter_vmap(lambda a: bx.Hopf(2, a=a, init_x=0.5))(jnp.linspace(0.05, 0.8, 7))
    sharded = ensemble(f, models)
    single = ensemble(f, models, devices=jax.devices()[:1])
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(single), rtol=1e-6, atol=1e-7)
    # One device given: the run is on it (it ran on the default device).
    assert ensemble(lambda a: 2 * a, jnp.arange(3.0), devices=jax.devices()[1:]).devices() == {jax.devices()[1]}
    # Outputs that are not arrays come back as they are (slicing them raised TypeError).
    assert ensemble(lambda a: {"a": a, "unit": 1.0}, jnp.arange(3.0))["unit"] == 1.0
    assert ensemble(lambda a: a, jnp.zeros((0, 2))).shape == (0, 2)
    print("SHARDED-OK", sharded.shape)
    """
)


def test_sharded_ensemble_on_two_forced_host_devices():
    run_on_two_host_devices(SHARDED, expect="SHARDED-OK (7, 2)")



SHARDED_NETWORK = textwrap.dedent(
    """
    import re, sys
    import jax, jax.numpy as jnp, numpy as np
    import brainmass_eqx as bx
    import brainmass_eqx._ensemble as ens
    from brainmass_eqx.noise import WhiteNoise, with_noise
    assert len(jax.devices()) == 2, jax.devices()
    rng = np.random.default_rng(0)
    conn = rng.uniform(0.0, 0.1, (3, 3))
    np.fill_diagonal(conn, 0.0)
    dist = rng.uniform(5.0, 30.0, (3, 3))
    def member(m):
        net = bx.Network(bx.Hopf(3, a=m["a"], w=0.3, init_x=0.1), conn, distance=dist, speed=10.0, k=0.2)
        noisy = with_noise(net, noise_x=WhiteNoise(0.01))
        return bx.simulate(noisy, 20.0, dt=0.1, sample_every=10, monitors="x", key=m["key"])["x"]
    batch = {"a": jnp.linspace(-0.1, 0.3, 5), "key": jax.random.split(jax.random.key(0), 5)}
    # The program ensemble compiles (and checks the memory of) is the one it runs.
    programs, program_bytes = [], ens._program_bytes
    def spy(mapped, args):
        programs.append(mapped.lower(*args).compile().compiled.as_text())
        return program_bytes(mapped, args)
    ens._program_bytes = spy
    out = bx.ensemble(member, batch)   # 5 members: padded to 6, 3 on each device
    collectives = re.findall(r"= \\S+ (all-gather|all-reduce|all-to-all|collective-permute)\\(", programs[-1])
    assert collectives == [], collectives
    one = bx.ensemble(member, batch, devices=jax.devices()[:1], threads=1)
    assert out.shape == one.shape == (5, 20, 3)
    np.testing.assert_allclose(np.asarray(out), np.asarray(one), rtol=1e-6, atol=1e-7)
    # ensembles.md's own shard_map example, on these two devices.
    page = open(sys.argv[1]).read()
    blocks = re.findall(r"```python\\n(.*?)```", page, re.S)
    namespace = {}
    exec(blocks[0].split("\\ndef run")[0], namespace)
    exec(next(b for b in blocks if "def one(k, a)" in b), namespace)
    exec(next(b for b in blocks if "jax.shard_map" in b), namespace)
    xs, ks, as_ = namespace["xs_sharded"], namespace["ks"], namespace["as_"]
    np.testing.assert_allclose(np.asarray(xs), np.asarray(namespace["xs"]), rtol=1e-6, atol=1e-6)
    assert xs.sharding.spec == jax.sharding.PartitionSpec("batch"), xs.sharding
    assert "all-gather" not in namespace["per_device"].lower(ks, as_).compile().as_text()
    print("SHARDED-NETWORK-OK")
    """
)


def test_a_sharded_network_ensemble_runs_each_devices_members_without_gathering_them():
    """On several devices each runs the program of its own members. A jit of the vmap on
    inputs placed with a NamedSharding (what ensemble did) left the split to XLA, which
    cannot split the delay history's kernels: every device advanced every member's
    history, the written values all-gathered at every step (the same numbers, the work of
    the whole batch on each device). ensembles.md's shard_map example is checked the same way."""
    page = str(Path(__file__).resolve().parents[1] / "docs" / "howto" / "ensembles.md")
    run_on_two_host_devices(SHARDED_NETWORK, page, expect="SHARDED-NETWORK-OK")

def _hopf_point(a, w):
    return bx.simulate(bx.Hopf(1, a=a, w=w, init_x=0.5), 40.0, dt=0.1, transient=200)


SUMMARIES = {"amplitude": lambda tr: jnp.max(jnp.abs(tr["x"])), "mean_x": lambda tr: jnp.mean(tr["x"])}


def test_sweep_returns_a_tidy_table():
    table = ens.sweep(_hopf_point, {"a": [-0.2, 0.25, 1.0], "w": [0.2, 0.4]}, SUMMARIES, chunk_size=4)
    assert list(table) == ["a", "w", "amplitude", "mean_x"]
    assert all(v.shape == (6,) for v in table.values())
    # The summaries in the runs' float (float64 columns held float32 results).
    assert table["amplitude"].dtype == np.float32
    np.testing.assert_allclose(table["a"], [-0.2, -0.2, 0.25, 0.25, 1.0, 1.0])
    # The Hopf limit cycle has amplitude sqrt(a) above the bifurcation; below it decays.
    np.testing.assert_allclose(table["amplitude"][4:], 1.0, rtol=0.03)
    assert np.all(table["amplitude"][:2] < 0.2)


def _wc_point(tau_E):
    y0 = {"rE": 0.2, "rI": 0.1}
    return bx.simulate(bx.WilsonCowan(2, tau_E=tau_E), 5.0, dt=0.1, y0=y0)


def test_a_quantity_grid_reaches_simulate_fn_in_its_unit():
    """np.asarray of a Quantity drops its unit: a grid of tau_E in seconds reached the model
    as plain numbers, read in ms (tau_E = 0.01 ms: mean rE -4.17 instead of 0.203)."""
    import unxt as u

    summaries = {"m": lambda tr: jnp.mean(tr["rE"])}
    plain = ens.sweep(_wc_point, {"tau_E": [10.0, 20.0]}, summaries, chunk_size=2)
    for grid in (u.Quantity(np.array([0.01, 0.02]), "s"), [u.Quantity(10.0, "ms"), u.Quantity(0.02, "s")]):
        table = ens.sweep(_wc_point, {"tau_E": grid}, summaries, chunk_size=2)
        np.testing.assert_allclose(table["m"], plain["m"], rtol=1e-6)
        unit = "s" if not isinstance(grid, list) else "ms"
        assert str(u.unit_of(table["tau_E"])) == unit
        np.testing.assert_allclose(u.ustrip("ms", table["tau_E"]), [10.0, 20.0], rtol=1e-6)
    with pytest.raises(TypeError, match=r"grid\['tau_E'\] mixes Quantities and plain numbers"):
        ens.sweep(_wc_point, {"tau_E": [u.Quantity(10.0, "ms"), 20.0]}, summaries)


def test_sweep_as_a_dataframe_with_a_progress_bar(capsys):
    # A DataFrame column holds numbers: a Quantity grid's in the unit it was given in.
    # (pandas is always there: nevergrad requires it, so no skip that could hide a failure.)
    import unxt as u

    summaries = {"m": lambda tr: jnp.mean(tr["rE"])}
    table = ens.sweep(_wc_point, {"tau_E": [10.0, 20.0, 30.0]}, summaries, chunk_size=2)
    capsys.readouterr()
    frame = ens.sweep(_wc_point, {"tau_E": u.Quantity(np.array([0.01, 0.02, 0.03]), "s")}, summaries, chunk_size=2,
                      as_dataframe=True, progress=True)  # fmt: skip
    assert list(frame.columns) == ["tau_E", "m"]
    np.testing.assert_allclose(frame["tau_E"].to_numpy(), [0.01, 0.02, 0.03])
    np.testing.assert_allclose(frame["m"].to_numpy(), table["m"], rtol=1e-6)
    bar = capsys.readouterr().err
    assert "sweep" in bar and "2/2" in bar, bar  # 3 points in chunks of 2


def test_a_second_sweep_of_the_same_functions_does_not_compile(compiles):
    # Each sweep mapped a closure made inside it, a new function to JAX's cache every
    # call: a second sweep compiled its runs again (0.9 s for runs of 5 ms).
    def short(a, w):
        return bx.simulate(bx.Hopf(1, a=a, w=w, init_x=0.5), 5.0, dt=0.1)

    first = ens.sweep(short, {"a": [0.1, 0.2], "w": [0.3, 0.4]}, SUMMARIES, chunk_size=4)
    assert compiles
    n = len(compiles)
    second = ens.sweep(short, {"a": [0.5, 0.6], "w": [0.3, 0.4]}, SUMMARIES, chunk_size=4)  # new values
    assert len(compiles) == n
    assert not np.array_equal(second["amplitude"], first["amplitude"])
    want = [float(SUMMARIES["amplitude"](short(a, w))) for a in (0.5, 0.6) for w in (0.3, 0.4)]
    np.testing.assert_allclose(second["amplitude"], want, rtol=1e-6)


def test_sweep_takes_summaries_that_cannot_be_hashed():
    @dataclasses.dataclass  # eq=True: unhashable, so it cannot key the compiled program
    class Scaled:
        scale: float

        def __call__(self, tr):
            return self.scale * jnp.mean(tr["x"])

    table = ens.sweep(_hopf_point, {"a": [0.1, 0.2], "w": [0.3]}, {"m": Scaled(2.0)}, chunk_size=2)
    want = [2.0 * float(jnp.mean(_hopf_point(a, 0.3)["x"])) for a in (0.1, 0.2)]
    np.testing.assert_allclose(table["m"], want, rtol=1e-6)


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    grid = {"a": [0.1, 0.2, 0.3, 0.4, 0.5], "w": [0.3]}
    path = tmp_path / "sweep.npz"
    full = ens.sweep(_hopf_point, grid, SUMMARIES, chunk_size=2)

    class Interrupted(Exception):
        pass

    real = ens.ensemble
    calls = []
    fail_on_call = [2]

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == fail_on_call[0]:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(ens, "ensemble", flaky)
    with pytest.raises(Interrupted):
        ens.sweep(_hopf_point, grid, SUMMARIES, chunk_size=2, checkpoint=path)
    assert int(np.load(path)["done"]) == 2
    calls.clear()
    fail_on_call[0] = None
    resumed = ens.sweep(_hopf_point, grid, SUMMARIES, chunk_size=2, checkpoint=path)
    assert len(calls) == 2  # only the two unfinished chunks ran
    for name in full:
        np.testing.assert_array_equal(resumed[name], full[name])
    with pytest.raises(ValueError, match="belongs to a different sweep"):
        ens.sweep(_hopf_point, {"a": [0.1], "w": [0.3]}, SUMMARIES, chunk_size=2, checkpoint=path)


def test_resuming_a_changed_sweep_is_refused(tmp_path):
    # Only the grid, the summary names and chunk_size were compared: a summary or a
    # simulate_fn that computes something else under the same names resumed, its rows
    # mixed with the old ones (100 x the amplitude after the first chunk).
    grid = {"a": [0.1, 0.5, 0.9], "w": [0.3]}
    path = tmp_path / "sweep.npz"
    ens.sweep(_hopf_point, grid, SUMMARIES, chunk_size=2, checkpoint=path)
    target = jnp.asarray([1.0, 2.0])
    changed = [
        (_hopf_point, {**SUMMARIES, "amplitude": lambda tr: 100 * jnp.max(jnp.abs(tr["x"]))}),
        (_hopf_point, {**SUMMARIES, "amplitude": lambda tr: jnp.max(jnp.abs(tr["x"])) + target[0]}),
        (lambda a, w: bx.simulate(bx.Hopf(1, a=a, w=w, init_x=0.5), 50.0, dt=0.1, transient=200), SUMMARIES),
    ]
    for simulate_fn, summaries in changed:
        with pytest.raises(ValueError, match=r"belongs to a different sweep \(the grid, the summaries, what simulate_fn"):
            ens.sweep(simulate_fn, grid, summaries, chunk_size=2, checkpoint=path)
    # The same computation written again (new function objects) still resumes: nothing runs.
    again = {"amplitude": lambda tr: jnp.max(jnp.abs(tr["x"])), "mean_x": lambda tr: jnp.mean(tr["x"])}
    calls = []
    table = ens.sweep(lambda a, w: calls.append(a) or _hopf_point(a, w), grid, again, chunk_size=2, checkpoint=path)
    assert len(calls) == 1 and not np.isnan(table["amplitude"]).any()  # the one trace, no chunk


def test_sweep_without_pandas_refuses_before_running(monkeypatch):
    # The import used to come after the whole grid had run, losing it.
    monkeypatch.setitem(sys.modules, "pandas", None)
    calls = []

    def point(a, w):
        calls.append(a)
        return _hopf_point(a, w)

    with pytest.raises(ImportError, match=r"sweep\(as_dataframe=True\) needs pandas, which is not installed"):
        ens.sweep(point, {"a": [0.1], "w": [0.3]}, SUMMARIES, as_dataframe=True)
    assert calls == []


def test_sweep_bad_input():
    with pytest.raises(ValueError, match="grid is empty"):
        ens.sweep(_hopf_point, {}, SUMMARIES)
    with pytest.raises(ValueError, match=r"grid\['a'\] must be a non-empty 1-D"):
        ens.sweep(_hopf_point, {"a": [], "w": [0.3]}, SUMMARIES)
    with pytest.raises(ValueError, match="equally long"):
        ens.sweep(_hopf_point, {"a": [0.1, 0.2], "w": [0.3]}, SUMMARIES, product=False)
    with pytest.raises(ValueError, match="sweep: chunk_size must be an int >= 1"):
        ens.sweep(_hopf_point, {"a": [0.1], "w": [0.3]}, SUMMARIES, chunk_size=0)
    with pytest.raises(ValueError, match="clash"):
        ens.sweep(_hopf_point, {"a": [0.1], "w": [0.3]}, {"a": SUMMARIES["amplitude"]})
    with pytest.raises(ValueError, match=r"grid name\(s\) \['omega'\] are not parameters of simulate_fn.*it takes \['a', 'w'\]"):
        ens.sweep(_hopf_point, {"a": [0.1], "omega": [0.3]}, SUMMARIES)
    with pytest.raises(ValueError, match=r"grid name\(s\) \['W'\] \(did you mean 'w'\?\) are not parameters"):
        ens.sweep(_hopf_point, {"a": [0.1], "W": [0.3]}, SUMMARIES)
    with pytest.raises(ValueError, match=r"sweep: simulate_fn requires \['w'\], which the grid does not give; add it to the grid, or give a default"):
        ens.sweep(_hopf_point, {"a": [0.1]}, SUMMARIES)
    with pytest.raises(TypeError, match=r"sweep: summaries must be a dict \{column name: fn\(result\) -> scalar\}, got list"):
        ens.sweep(_hopf_point, {"a": [0.1], "w": [0.3]}, list(SUMMARIES.values()))
    with pytest.raises(TypeError, match=r"sweep: summaries\['x'\] must be a function fn\(result\) -> scalar, got str"):
        ens.sweep(_hopf_point, {"a": [0.1], "w": [0.3]}, {"x": "mean"})
    # A summary that is not a scalar is refused from one traced point, before any run.
    calls = []
    with pytest.raises(ValueError, match=r"sweep: summary 'x' must return a scalar per run, got shape \(2, 1\) .*Reduce it in the summary, e.g. lambda result: jnp.mean"):
        ens.sweep(lambda a, w: calls.append(a) or _hopf_point(a, w), {"a": [0.1], "w": [0.3]}, {"x": lambda tr: tr["x"][:2]})
    assert len(calls) == 1  # the trace; no chunk ran


# -- memory: an up-front check, and chunks one after another --------------------------------


def _record_every_step(a):
    return bx.simulate(bx.Hopf(2, a=a, init_x=0.5), 20.0, dt=0.1)["x"]


def _xla_bytes(fn, batch):
    """XLA's own count of one vmapped call's temporaries and outputs."""
    stats = eqx.filter_jit(eqx.filter_vmap(fn)).lower(batch).compile().compiled.memory_analysis()
    return stats.temp_size_in_bytes, stats.output_size_in_bytes


def test_a_call_that_cannot_fit_is_refused_before_it_runs_with_a_chunk_that_fits(monkeypatch):
    a = jnp.linspace(0.05, 0.8, 8)
    want = np.asarray(eqx.filter_jit(eqx.filter_vmap(_record_every_step))(a))
    need = sum(_xla_bytes(_record_every_step, a))  # one vmap call of all 8: what the check counts
    monkeypatch.setattr(ens, "available_bytes", lambda device: need - 1)
    with pytest.raises(MemoryError, match=r"ensemble: evaluating 8 members needs about .* Evaluate fewer members per call, one call after another: chunk=(\d+)") as err:
        ens.ensemble(_record_every_step, a, threads=1)
    chunk = int(re.search(r"chunk=(\d+)", str(err.value)).group(1))
    assert 1 <= chunk < 8
    # The chunk it names fits the same memory, and gives the same members.
    got = ens.ensemble(_record_every_step, a, threads=1, chunk=chunk)
    assert isinstance(got, np.ndarray) and got.shape == (8, 200, 2)
    # Calls of another width round differently (XLA compiles each): 9e-8 over 200 steps.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ens.ensemble(_record_every_step, a, threads=1, check_memory=False), want)
    # Where even the outputs of all members do not fit, chunking is not offered.
    monkeypatch.setattr(ens, "available_bytes", lambda device: want.nbytes // 2)
    with pytest.raises(MemoryError, match="The outputs alone take .*, so chunking does not help"):
        ens.ensemble(_record_every_step, a, threads=1)
    # A sweep names its own option, chunk_size.
    half = sum(_xla_bytes(lambda a: _record_every_step(a).mean(), a[:4])) // 2
    monkeypatch.setattr(ens, "available_bytes", lambda device: half)
    with pytest.raises(MemoryError, match=r"sweep: evaluating 4 members .* chunk_size=\d+"):
        ens.sweep(lambda a: _record_every_step(a), {"a": [0.1, 0.2, 0.3, 0.4]}, {"m": lambda x: x.mean()}, chunk_size=4)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="slices run at once on a CPU only (threads=)")
def test_slices_at_once_and_their_join_count_in_the_check(monkeypatch):
    # 8 members in 2 slices of 4 at once: twice one slice's memory, or the join of their
    # outputs (the slices' outputs and a copy of them all), whichever is more.
    a = jnp.linspace(0.05, 0.8, 8)
    temp, out = _xla_bytes(_record_every_step, a[:4])
    need = 2 * max(temp + out, 2 * out)
    monkeypatch.setattr(ens, "available_bytes", lambda device: need)
    ens.ensemble(_record_every_step, a, threads=2)
    monkeypatch.setattr(ens, "available_bytes", lambda device: need - 1)
    with pytest.raises(MemoryError, match="2 call.s. of 4 members at once"):
        ens.ensemble(_record_every_step, a, threads=2)
    # Nothing to compare with (not Linux, a backend without figures): no check.
    monkeypatch.setattr(ens, "available_bytes", lambda device: None)
    ens.ensemble(_record_every_step, a, threads=2)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="slices run in threads on a CPU only")
def test_slices_taken_in_turn_count_every_output_until_the_join(monkeypatch):
    # 64 members on "2 cores": four 16-member slices, two at once; the first two slices'
    # outputs wait for the last two and the join copies all four.
    monkeypatch.setattr(ens, "cpu_slices", lambda size, min_slice=4: min(2, max(1, size // min_slice)))
    a = jnp.linspace(0.05, 0.8, 64)
    temp, out = _xla_bytes(_record_every_step, a[:16])
    need = 2 * max(temp + out, 2 * out) + 2 * 2 * out
    monkeypatch.setattr(ens, "available_bytes", lambda device: need)
    assert ens.ensemble(_record_every_step, a).shape == (64, 200, 2)
    monkeypatch.setattr(ens, "available_bytes", lambda device: need - 1)
    with pytest.raises(MemoryError, match=r"2 call\(s\) of 16 members at once \(4 in all, their outputs kept until the last\)"):
        ens.ensemble(_record_every_step, a)


def test_chunks_equal_the_calls_of_their_size_and_keep_what_is_not_an_array():
    a = jnp.linspace(0.05, 0.8, 7)

    def fn(a):
        return {"x": _record_every_step(a)[-1], "label": "hopf"}

    got = ens.ensemble(fn, a, chunk=3, threads=1)
    assert got["label"] == "hopf" and isinstance(got["x"], np.ndarray) and got["x"].shape == (7, 2)
    # Each chunk (the last padded to 3) is the vmap of 3 members, bit for bit.
    per_chunk = [np.asarray(ens.ensemble(fn, ens.pad_batch(a[i : i + 3], len(a[i : i + 3]), 3), threads=1)["x"])
                 for i in (0, 3, 6)]  # fmt: skip
    np.testing.assert_array_equal(got["x"], np.concatenate(per_chunk)[:7])
    np.testing.assert_allclose(got["x"], eqx.filter_vmap(fn)(a)["x"], rtol=3e-7, atol=0)
    with pytest.raises(TypeError, match=r"ensemble: chunk must be an int >= 1 \(members per call"):
        ens.ensemble(fn, a, chunk=2.5)
    with pytest.raises(ValueError, match="chunk cannot be used on a traced batch"):
        eqx.filter_jit(lambda b: ens.ensemble(fn, b, chunk=3))(a)


def test_chunks_hand_freed_memory_back_between_them(monkeypatch):
    # Each chunk's slices run in new threads, whose glibc arenas kept what the run freed:
    # the peak grew with the number of chunks (see `release_free_memory`).
    calls = []
    monkeypatch.setattr(ens, "release_free_memory", lambda: calls.append(1))
    ens.ensemble(lambda a: a * 2, jnp.arange(10.0), chunk=4)
    assert len(calls) == 3
    ens.sweep(lambda a: a * 2, {"a": np.arange(10.0)}, {"twice": lambda x: x}, chunk_size=4)
    assert len(calls) == 6


def test_host_memory_is_the_smaller_of_linux_and_a_cgroup_limit(monkeypatch):
    import brainmass_eqx._memory as mem

    limits = {"/sys/fs/cgroup/memory.max": 4_000_000_000, "/sys/fs/cgroup/memory.current": 3_000_000_000}
    monkeypatch.setattr(mem, "_read_int", lambda path: limits.get(path))
    monkeypatch.setattr(mem, "_read_stat", lambda path, name: 0)
    linux = mem._host_available()
    assert linux is not None and linux <= 1_000_000_000
    with monkeypatch.context() as m:
        m.setattr(mem, "_read_int", lambda path: None)
        linux_free = mem._host_available()
    # Page cache the kernel can drop is not in use: 2.5 GB of inactive files leave 3.5 GB.
    monkeypatch.setattr(mem, "_read_stat", lambda path, name: 2_500_000_000 if name == "inactive_file" else 0)
    with_cache = mem._host_available()
    assert with_cache <= 3_500_000_000
    if linux_free > 4_000_000_000:  # (else Linux's own figure is the smaller)
        assert with_cache == 3_500_000_000
    limits.clear()  # no cgroup limit ("max" reads as None)
    assert mem._host_available() > 0
    assert mem.format_bytes(3.2e9) == "3.2 GB" and mem.format_bytes(64e6) == "64 MB" and mem.format_bytes(12) == "12 B"


def test_ensemble_refuses_devices_that_are_not_a_list_of_devices():
    # ensemble took list(devices) as given: one device failed inside list(), an empty list
    # deep inside. The Fitter's check, shared.
    batch = jnp.arange(3.0)
    with pytest.raises(ValueError, match=r"devices must be a non-empty list of jax devices .*got an empty list"):
        bx.ensemble(lambda p: p, batch, devices=[])
    with pytest.raises(TypeError, match=r"devices must be a list of devices, got one device .*: pass devices=\["):
        bx.ensemble(lambda p: p, batch, devices=jax.devices()[0])
