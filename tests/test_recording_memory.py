"""simulate's check of its recording against the memory left, alone and under a user's own
``jax.vmap`` (brainmass_eqx._memory.check_recording): nothing large is allocated here, the
memory left is monkeypatched."""

from __future__ import annotations

import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _devices import run_on_two_host_devices

import brainmass_eqx as bx
from brainmass_eqx import _ensemble as ens, _memory
from brainmass_eqx.fit import Fitter

MB = 1_000_000


def big(a, key=None, **kw):
    """1 MB of recording per run: 62,500 samples of x and y of 2 regions in float32."""
    model = bx.Hopf(2, a=a, init_x=0.5)
    if key is not None:
        model = bx.with_noise(model, {"x": bx.noise.WhiteNoise(0.01)})
    return bx.simulate(model, 6250.0, dt=0.1, key=key, **kw)["x"]


def small(a):
    """A short run (200 samples, 3.2 kB) to run for real under each transformation."""
    return bx.simulate(bx.Hopf(2, a=a, init_x=0.5), 20.0, dt=0.1)["x"]


@pytest.fixture
def left(monkeypatch):
    """``left(n)``: n bytes of memory left, as `available_bytes` reports it."""

    def set_left(n):
        monkeypatch.setattr(_memory, "available_bytes", lambda device=None: n)

    return set_left


def refused(fn, *args, match=None):
    """Whether tracing ``fn(*args)`` (nothing runs) raises the recording's MemoryError."""
    try:
        jax.eval_shape(fn, *args)
    except MemoryError as err:
        assert str(err).startswith("simulate: "), err
        if match is not None:
            assert match in str(err), str(err)
        return True
    return False


def test_a_vmap_whose_recording_cannot_fit_is_refused_before_it_runs_with_the_numbers(left):
    left(10 * MB)
    a64, a4 = jnp.linspace(0.1, 0.2, 64), jnp.linspace(0.1, 0.2, 4)
    assert refused(jax.vmap(big), a64, match=(
        "simulate: a jax.vmap of 64 runs records about 64 MB (1 MB per run: 62500 samples of 16 B), and 10 MB "
        "is left on this machine"))
    with pytest.raises(MemoryError, match=r"bx.ensemble\(fn, batch, chunk=7\) evaluates that many at a time.*"
                       r"simulate\(..., check_memory=False\) runs it anyway"):
        jax.eval_shape(jax.vmap(big), a64)
    assert not refused(jax.vmap(big), a4)
    assert not refused(jax.vmap(lambda a: big(a, check_memory=False)), a64)
    # Under jit, checked when traced: a vmap inside jit, and a jit inside a vmap.
    with pytest.raises(MemoryError, match="a jax.vmap of 64 runs"):
        jax.jit(jax.vmap(big)).lower(a64)
    assert refused(jax.vmap(jax.jit(big)), a64, match="a jax.vmap of 64 runs")
    # A run's recording alone: 1 MB where 0.5 MB is left.
    left(MB // 2)
    assert refused(big, 0.1, match="simulate: the run records about 1 MB (62500 samples of 16 B), and 500 kB is left")
    assert not refused(lambda a: big(a, check_memory=False), 0.1)
    # Nothing known of the memory left (not Linux, a backend without figures): no check.
    left(None)
    assert not refused(jax.vmap(big), a64)


def test_nested_vmaps_multiply_whichever_input_each_maps(left):
    left(10 * MB)
    assert refused(jax.vmap(jax.vmap(big)), jnp.ones((4, 4)), match="a jax.vmap of 16 runs records about 16 MB")
    assert not refused(jax.vmap(jax.vmap(big)), jnp.ones((2, 4)))
    # A vmap over the keys inside one over the model's a: 4 x 4 runs.
    keys = jax.random.split(jax.random.key(0), 4)
    over_both = jax.vmap(jax.vmap(big, in_axes=(None, 0)), in_axes=(0, None))
    assert refused(over_both, jnp.ones(4), keys, match="a jax.vmap of 16 runs")
    assert not refused(over_both, jnp.ones(2), keys)
    # Noise keys alone batch the run too.
    assert refused(jax.vmap(lambda k: big(0.1, k)), jax.random.split(jax.random.key(0), 64), match="of 64 runs")
    # eqx.filter_vmap over a batch of models; y0 batched alone.
    models = eqx.filter_vmap(lambda a: bx.Hopf(2, a=a, init_x=0.5))(jnp.ones(16))
    assert refused(eqx.filter_vmap(lambda m: bx.simulate(m, 6250.0, dt=0.1).ys), models, match="of 16 runs")
    y0 = {"x": jnp.ones((16, 2)), "y": jnp.zeros((16, 2))}
    assert refused(jax.vmap(lambda y: bx.simulate(bx.Hopf(2), 6250.0, dt=0.1, y0=y).ys), y0, match="of 16 runs")


def test_the_check_leaves_nothing_in_the_compiled_program():
    a = jnp.linspace(0.1, 0.2, 4)

    def text(check):
        lowered = jax.jit(jax.vmap(lambda a: small_checked(a, check))).lower(a).as_text()
        return lowered.split("\n", 1)[1]  # without the module's name

    def small_checked(a, check):
        return bx.simulate(bx.Hopf(2, a=a, init_x=0.5), 20.0, dt=0.1, check_memory=check)["x"]

    assert text(True) == text(False)


def test_differentiated_and_jitted_vmaps_run_and_are_checked(left):
    left(10 * MB)
    a = jnp.asarray([0.1, 0.2, 0.3])

    def loss(a):
        return jnp.mean(small(a) ** 2)

    def loss_big(a):
        return jnp.mean(big(a) ** 2)

    per_member = np.asarray([jax.grad(loss)(x) for x in a])
    np.testing.assert_allclose(jax.vmap(jax.grad(loss))(a), per_member, rtol=1e-5)
    np.testing.assert_allclose(jax.grad(lambda a: jax.vmap(loss)(a).sum())(a), per_member, rtol=1e-5)
    np.testing.assert_allclose(jax.jacfwd(jax.vmap(loss))(a), np.diag(per_member), rtol=1e-5, atol=1e-7)
    hess = jax.hessian(lambda a: jax.vmap(loss)(a).sum())(a)
    np.testing.assert_allclose(np.diag(hess), [jax.hessian(loss)(x) for x in a], rtol=1e-4)
    batched = jax.jit(jax.vmap(jax.value_and_grad(loss)))
    np.testing.assert_allclose(batched(a)[1], per_member, rtol=1e-5)
    np.testing.assert_allclose(batched(a + 0.01)[1], [jax.grad(loss)(x) for x in a + 0.01], rtol=1e-5)
    # Each of them is checked: 64 members of 1 MB where 10 MB are left.
    a64 = jnp.linspace(0.1, 0.2, 64)
    assert refused(jax.vmap(jax.grad(loss_big)), a64, match="of 64 runs")
    assert refused(jax.grad(lambda a: jax.vmap(loss_big)(a).sum()), a64, match="of 64 runs")
    assert refused(jax.jit(jax.vmap(jax.value_and_grad(loss_big))), a64, match="of 64 runs")
    assert refused(jax.hessian(lambda a: jax.vmap(loss_big)(a[0] + jnp.zeros(64)).sum()), a64[:1], match="of 64 runs")


def test_ensemble_and_sweep_check_their_program_alone(left, monkeypatch):
    # Every recording refused here: ensemble and sweep run on their own check alone.
    left(1)
    a = jnp.linspace(0.1, 0.2, 8)
    assert refused(small, 0.1)
    monkeypatch.setattr(ens, "available_bytes", lambda device: None)
    for threads in (1, 2):
        got = ens.ensemble(small, a, threads=threads)
        assert got.shape == (8, 200, 2)
    assert ens.ensemble(small, a, threads=1, check_memory=False).shape == (8, 200, 2)
    assert ens.ensemble(small, a, chunk=3).shape == (8, 200, 2)
    table = ens.sweep(small, {"a": [0.1, 0.2, 0.3]}, {"m": lambda x: x.mean()}, chunk_size=2)
    assert len(table["m"]) == 3
    # The ensemble's own refusal, not simulate's.
    monkeypatch.setattr(ens, "available_bytes", lambda device: 1)
    with pytest.raises(MemoryError, match="^ensemble: evaluating 8 members"):
        ens.ensemble(small, a, threads=1)


def test_a_jitted_run_traced_before_is_not_refused_inside_ensemble(left, monkeypatch):
    # The jitted run's program (with its probe) is traced outside ensemble, then reused
    # from jit's cache under ensemble's vmap: the probe's rule was refused there, with
    # ensemble(check_memory=False) too.
    left(5000)  # one run's 3.2 kB fits, 8 do not
    monkeypatch.setattr(ens, "available_bytes", lambda device: None)
    run = jax.jit(small)
    a = jnp.linspace(0.1, 0.2, 8)
    assert run(a[0]).shape == (200, 2)
    assert refused(jax.vmap(run), a)
    got = ens.ensemble(run, a, threads=1, check_memory=False)
    assert ens.ensemble(run, a, threads=1).shape == (8, 200, 2)
    left(None)
    np.testing.assert_array_equal(got, jax.vmap(small)(a))


def test_a_fitter_population_that_cannot_fit_is_refused_and_population_map_runs(left):
    # 100 samples of x and y of one region: 800 B per candidate's run.
    def predict(model):
        return bx.simulate(model, 20.0, dt=0.2)["x"]

    target = predict(bx.Hopf(a=0.25, init_x=0.1))
    fitter = Fitter(bx.Hopf(a=bx.Param(0.1, bounds=(0.01, 1.0)), init_x=0.1), "DE", predict=predict, backend="nevergrad")
    left(3000)
    with pytest.raises(MemoryError, match=r"simulate: a jax.vmap of 8 runs records about 6.4 kB \(800 B per run"):
        fitter.fit(target, 2, popsize=8, key=jax.random.key(0), population_threads=1)
    result = fitter.fit(target, 2, popsize=8, key=jax.random.key(0), population="map")
    assert result.raw["losses"].shape == (2, 8)
    left(None)
    assert fitter.fit(target, 2, popsize=8, key=jax.random.key(0)).raw["losses"].shape == (2, 8)


TWO_DEVICES = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    import brainmass_eqx as bx
    from brainmass_eqx import _ensemble as ens, _memory
    assert len(jax.devices()) == 2
    def small(a):
        return bx.simulate(bx.Hopf(2, a=a, init_x=0.5), 20.0, dt=0.1)["x"]
    # 3.2 kB per run; room for 3: a vmap of 8 is refused, an ensemble over the devices runs.
    _memory.available_bytes = lambda device=None: 10_000
    a = jnp.linspace(0.1, 0.2, 8)
    try:
        jax.eval_shape(jax.vmap(small), a)
        raise SystemExit("not refused")
    except MemoryError as err:
        assert "a jax.vmap of 8 runs" in str(err), err
    ens.available_bytes = lambda device: None
    assert ens.ensemble(small, a).shape == (8, 200, 2)
    assert ens.ensemble(small, a, check_memory=False).shape == (8, 200, 2)
    print("TWO-DEVICES-OK")
    """
)


def test_ensemble_over_two_forced_host_devices_is_not_refused_by_simulate():
    run_on_two_host_devices(TWO_DEVICES, expect="TWO-DEVICES-OK")


def test_the_size_of_a_named_observables_sample_is_traced_once_per_shape(monkeypatch):
    # Before: jax.eval_shape of the monitors at every eager call (0.4-0.7 ms; a 2-region 2 ms
    # JansenRit run recording "eeg" took 1.66 ms, 0.94 without the check). Cached by what fixes
    # the shapes; a callable monitor, which may close over anything, is traced every time.
    from brainmass_eqx import _simulate as sim

    monkeypatch.setattr(sim, "_OBSERVED_BYTES", {}, raising=False)  # a clean cache
    traced = []
    eval_shape = jax.eval_shape
    monkeypatch.setattr(jax, "eval_shape", lambda *a, **k: traced.append(1) or eval_shape(*a, **k))

    def sample_bytes(model, monitor):
        y0 = {name: jnp.zeros(model.n_regions) for name in model.state_names}
        return sim._sample_bytes(model, sim._Monitor(tuple(sim._monitor_spec(model, monitor).items())), y0)

    assert sample_bytes(bx.JansenRit(2), ["eeg"]) == 8 and len(traced) == 1
    assert sample_bytes(bx.JansenRit(2, C=120.0), ["eeg"]) == 8 and len(traced) == 1  # other values, same shapes
    assert sample_bytes(bx.JansenRit(3), ["eeg"]) == 12 and len(traced) == 2
    assert sample_bytes(bx.JansenRit(3), ["eeg", "M"]) == 24 and len(traced) == 3
    assert sample_bytes(bx.JansenRit(3), ["M"]) == 12 and len(traced) == 3  # a state: y0's size, never traced
    regions = [2]
    by_closure = {"out": lambda model, y: jnp.zeros(regions[0])}
    assert sample_bytes(bx.JansenRit(2), by_closure) == 8 and len(traced) == 4
    regions[0] = 5
    assert sample_bytes(bx.JansenRit(2), by_closure) == 20 and len(traced) == 5
    # Under jit the model's arrays are tracers: keyed by their shapes as well.
    assert jax.jit(lambda m: jnp.asarray(sample_bytes(m, ["eeg"])))(bx.JansenRit(2)) == 8 and len(traced) == 5


# -- the delay history a run carries (its solver state), counted with its recording --------

DELAY_CONN = np.full((8, 8), 0.05) * (1.0 - np.eye(8))
DELAY_MS = np.linspace(5.0, 50.0, 64).reshape(8, 8)


def delayed(k, max_delay=None, **kw):
    """8 delayed Hopf regions, delays up to 50 ms at dt 0.1 (a history of about 500 steps:
    tens of kB), 10 ms recorded every step (100 samples of x and y: 6.4 kB)."""
    net = bx.Network(bx.Hopf(8, init_x=0.1), DELAY_CONN, delays=DELAY_MS, k=k, max_delay=max_delay)
    return bx.simulate(net, 10.0, dt=0.1, **kw).ys


@pytest.fixture
def carried(monkeypatch):
    """``carried()``: ``(history, state)``, what the last traced run's check was given as its
    delay history and the bytes its history wrappers' ``init`` made beyond the inner
    solver's state (the state as it is, from shapes)."""
    from brainmass_eqx import _simulate as sim
    from brainmass_eqx.models import _delay_history as dh
    from brainmass_eqx.network import _DelayedCoupling

    seen = {}
    for cls in (_DelayedCoupling, dh.SelfDelaySolver):
        def init(self, *args, _init=cls.init, **kw):
            out = _init(self, *args, **kw)
            made = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(out[1:]))
            seen["state"] = seen.get("state", 0) + made
            return out

        monkeypatch.setattr(cls, "init", init)
    check = sim.check_recording
    monkeypatch.setattr(
        sim, "check_recording", lambda *a, **kw: seen.__setitem__("history", kw.get("history")) or check(*a, **kw)
    )

    def last():
        out = seen.get("history"), seen.get("state", 0)
        seen.clear()
        return out

    return last


def test_the_counted_history_is_what_the_solver_state_carries(carried):
    # Traced only (jax.eval_shape): the bytes init makes are those of a real run.
    hopf = bx.Hopf(8, init_x=0.1)
    cases = {
        "linear (packed, complex)": bx.Network(hopf, DELAY_CONN, delays=DELAY_MS),
        "ceil (real)": bx.Network(hopf, DELAY_CONN, delays=DELAY_MS, interpolation="ceil"),
        "updated": bx.Network(hopf, DELAY_CONN, delays=DELAY_MS, interpolation="nearest", stage_coupling="updated"),
        "two coupled variables": bx.Network(hopf, DELAY_CONN, delays=DELAY_MS, coupled_var=("x", "y"), target=("x", "y")),
        "lags under a block": bx.Network(hopf, DELAY_CONN, delays=np.full((8, 8), 0.2)),
        "noisy": bx.with_noise(bx.Network(hopf, DELAY_CONN, delays=DELAY_MS), {"x": bx.noise.WhiteNoise(0.01)}),
        "a node's own delays": bx.WilsonCowanDelayed(8),
        "both": bx.Network(bx.WilsonCowanDelayed(8), DELAY_CONN, delays=DELAY_MS, coupled_var="rE", target="rE"),
    }
    for name, model in cases.items():
        jax.eval_shape(lambda m: bx.simulate(m, 1.0, dt=0.1, key=jax.random.key(0)).ys, model)
        history, state = carried()
        # Beyond it: the step counters (4 B each) and 'updated''s previous delayed part (F x N).
        assert history is not None and history > 0 and 0 <= state - history <= 64, (name, history, state)
    # No delays: nothing but the step counter.
    jax.eval_shape(lambda m: bx.simulate(m, 1.0, dt=0.1).ys, bx.Network(hopf, DELAY_CONN, stage_coupling="held"))
    assert carried() == (0, 4)
    # The longest delay (max_delay) sizes it: twice the history, twice the bytes (to the rows' padding).
    jax.eval_shape(lambda k: delayed(k, max_delay=100.0), 0.1)
    longer = carried()[0]
    jax.eval_shape(lambda k: delayed(k, max_delay=200.0), 0.1)
    assert 1.9 < carried()[0] / longer < 2.1


def test_a_delay_history_that_cannot_fit_is_refused_with_what_was_counted(left, carried):
    jax.eval_shape(lambda k: delayed(k), 0.1)  # not `delayed`: its trace would be cached
    history = carried()[1] - 4  # what the solver state carries, less the step counter
    recording = 100 * 64
    assert history > 4 * recording  # the history, not the recording, is what does not fit
    left(recording + history // 2)
    assert refused(delayed, 0.1, match=(
        f"simulate: the run needs about {_memory.format_bytes(recording + history)} (recording 6.4 kB "
        f"(100 samples of 64 B) + delay history {_memory.format_bytes(history)}"))
    with pytest.raises(MemoryError, match=r"a shorter max_delay .* or fewer regions.*check_memory=False\) runs it"):
        jax.eval_shape(delayed, 0.1)
    assert not refused(lambda k: delayed(k, check_memory=False), 0.1)
    left(recording + history)
    assert not refused(delayed, 0.1)
    # Under a user's vmap, times its members: 4 runs' recordings fit, their histories do not.
    k4 = jnp.linspace(0.1, 0.2, 4)
    left(2 * (recording + history))
    assert refused(jax.vmap(delayed), k4, match=(
        f"simulate: a jax.vmap of 4 runs needs about {_memory.format_bytes(4 * (recording + history))} "
        f"({_memory.format_bytes(recording + history)} per run: recording 6.4 kB (100 samples of 64 B) + delay "
        f"history {_memory.format_bytes(history)}"))
    with pytest.raises(MemoryError, match=r"bx.ensemble\(fn, batch, chunk=1\) evaluates that many at a time"):
        jax.eval_shape(jax.vmap(delayed), k4)
    assert not refused(jax.vmap(delayed), k4[:2])
    assert refused(jax.vmap(jax.vmap(delayed)), jnp.ones((2, 2)) * 0.1, match="a jax.vmap of 4 runs needs about")


def test_a_chunked_runs_recording_and_history_are_checked_where_each_lives(monkeypatch):
    # On a GPU a chunk run's recording gathers in host memory and its history stays on the
    # device: each is checked against its own memory (on a CPU they are one and add up).
    host, gpu = jax.devices("cpu")[0], type("Gpu", (), {"platform": "gpu", "__str__": lambda self: "gpu:0"})()
    left = {host: 10 * MB, gpu: 10 * MB}
    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: left[device])
    run = _memory._PerRun(1000, 8 * 1000, 6 * MB, host, gpu)  # an 8 MB recording, a 6 MB history
    _memory._refuse_recording(1, run)  # each fits in its own memory
    with pytest.raises(MemoryError, match="the run needs about 14 MB"):
        _memory._refuse_recording(1, run._replace(state_device=host))
    with pytest.raises(MemoryError, match=r"^simulate: the run needs about 6 MB \(delay history 6 MB.* left on gpu:0"):
        left[gpu] = 5 * MB
        _memory._refuse_recording(1, run)


@pytest.mark.parametrize("native", [True, False])
def test_a_constant_past_fills_its_buffer_once_in_the_compiled_run(native, monkeypatch):
    # 20 regions, delays up to 200 ms at dt 0.1 (a buffer of 2000 steps, 320 kB): a constant
    # past was a broadcast reshaped to the buffer, which XLA fused into the first step's
    # one-slot write, copying the whole buffer for it (and, with the native blocked read,
    # making the broadcast again): temporaries of 644 kB for 320 kB of history (1.28 MB
    # for 643 kB native), now 341 kB (664 kB).
    from brainmass_eqx import _simulate as sim

    seen = {}
    check = sim.check_recording
    monkeypatch.setattr(
        sim, "check_recording", lambda *a, **kw: seen.__setitem__("history", kw.get("history")) or check(*a, **kw)
    )
    rng = np.random.default_rng(0)
    n = 20
    conn = rng.uniform(0, 0.05, (n, n)).astype(np.float32)
    delays = rng.uniform(1.0, 200.0, (n, n)).astype(np.float32)
    net = bx.Network(bx.Hopf(n, init_x=0.1), conn, delays=delays)
    bx.set_native_kernels(native)
    try:
        # The delays concrete (a plan made on the host, blocked reads where native) and
        # the initial state traced, as in an eager run.
        run = jax.jit(lambda y0: bx.simulate(net, 2.0, dt=0.1, sample_every=10, monitors="x", y0=y0).ys)
        temp = run.lower(net.init_state()).compile().memory_analysis().temp_size_in_bytes
    finally:
        bx.set_native_kernels(True)
    history = seen["history"]
    ring = 2000 * n * 8  # complex64 slots (linear interpolation), whether or not blocked
    assert history >= ring
    # Beyond the history only small arrays (states, one step's reads, the recording).
    assert temp < history + ring // 4, (temp, history, ring)


@pytest.mark.parametrize("n_samples", [2000, 2003])  # chunks of 40; 44 chunks of 45 and a tail of 23
def test_a_vmapped_recording_is_written_members_first_without_a_transposed_copy(n_samples):
    # The chunked loop wrote its records as a stacked (chunks, members, ...) array, which
    # the vmap then copied members-first: temporaries as large as the outputs (a vmap of
    # 1,000 delayed 80-region networks recording 200 ms every step: 865 MB of temporaries
    # for 610 MB of outputs, now 407 MB). The records now go straight into a carried
    # members-first array, which is the output.
    def run(a):
        return bx.simulate(bx.Hopf(20, a=a, init_x=0.1), n_samples * 0.1, dt=0.1, monitors="x")["x"]

    a = jnp.linspace(0.05, 0.5, 16)
    batched = jax.jit(jax.vmap(run))
    stats = batched.lower(a).compile().memory_analysis()
    recording = 16 * n_samples * 20 * 4
    assert stats.output_size_in_bytes == recording
    assert stats.temp_size_in_bytes < recording // 2, (stats.temp_size_in_bytes, recording)  # was 1.0x
    got, single = np.asarray(batched(a)), jax.jit(run)
    for i in (0, 7, 15):
        np.testing.assert_allclose(got[i], np.asarray(single(a[i])), rtol=0, atol=1e-6)


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("recording, history", [(8 * MB, 0), (8 * MB, 6 * MB), (0, 6 * MB)])
def test_the_refusal_is_one_text_of_the_parts_held(members, recording, history):
    # Four texts (one run / a vmap, with / without a delay history) repeated each other's
    # sentences with small differences (one run's ended "check_memory=False runs it anyway.",
    # a vmap's "simulate(..., check_memory=False) ..."; a recording beside a history was not
    # told to run shorter). Each part held now brings its clause, once.
    host = jax.devices("cpu")[0]
    run = _memory._PerRun(1000, recording // 1000, history, host, host)
    text = _memory._recording_message(members, recording, history, run, 20 * MB, host)  # one run fits
    subject = "the run" if members == 1 else f"a jax.vmap of {members} runs"
    assert text.startswith(f"simulate: {subject} {'needs' if history else 'records'} about "), text
    assert text.endswith(" would be killed for memory (or swap) midway. " + text.split(" midway. ")[1]), text
    assert text.endswith(". simulate(..., check_memory=False) runs it anyway."), text
    assert text.count("1000 samples of 8 kB") == bool(recording)
    assert text.count("delay history 6 MB") == text.count("a shorter max_delay") == bool(history)
    assert text.count("a larger sample_every") == bool(recording)
    assert text.count("or a shorter run (continue it with y0=") == (bool(recording) and members == 1)
    assert text.count("does not help (every run's recording exists before it)") == (bool(recording) and members > 1)
    assert text.count("bx.ensemble(fn, batch, chunk=") == (members > 1)
    assert text.count("check_memory=False") == 1
