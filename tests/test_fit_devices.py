"""The Fitter's populations and starts on several devices (`Fitter.fit(devices=...)`): a
nevergrad population and a multi-start 'grad' / 'optimistix' fit are split over the devices
by `shard_vmap`, one compile per fit, no collectives, the result of one device; with one
device nothing changes. The several-device checks run in a subprocess with two forced host
devices (as tests/test_ensemble.py's)."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _devices import run_on_two_host_devices

import brainmass_eqx as bx
from brainmass_eqx.fit import Fitter

TWO_DEVICES = textwrap.dedent(
    """
    import re, tempfile, warnings, os
    import equinox as eqx, jax, jax.numpy as jnp, numpy as np, optax, optimistix as optx, pytest
    import brainmass_eqx as bx
    from brainmass_eqx._ensemble import place
    from brainmass_eqx.fit import Fitter
    assert len(jax.devices()) == 2, jax.devices()
    one = jax.devices()[:1]
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(1) if event == "/jax/core/compile/backend_compile_duration" else None)
    COLLECTIVE = re.compile(r"= \\S+ (all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter)\\(")

    def predict(m):
        return bx.simulate(m, 5.0, dt=0.1)["x"]
    def hopf(a):
        return bx.Hopf(2, a=bx.Param(a, fit=True, bounds=(0.01, 1.0)), w=0.3, init_x=0.5)
    t1, t2 = predict(bx.Hopf(2, a=0.4, w=0.3, init_x=0.5)), predict(bx.Hopf(2, a=0.6, w=0.3, init_x=0.5))
    def same(r, s, exact):
        check = np.testing.assert_array_equal if exact else (lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6))
        check(r.best_loss, s.best_loss)
        check(np.asarray(r.history), np.asarray(s.history))
        for name in r.best_params:
            check(np.asarray(r.best_params[name]), np.asarray(s.best_params[name]))

    # nevergrad: 5 candidates, a share of 3 on each device (the last candidate repeated).
    ng = Fitter(hopf(0.1), "DE", backend="nevergrad", predict=predict)
    split = ng.fit(t1, 3, popsize=5)
    assert split.raw["population_devices"] == 2 and split.raw["population_threads"] == 1
    assert split.raw["losses"].shape == (3, 5)
    n = len(compiles)
    ng.fit(t2, 4, popsize=5)  # another target, more generations: nothing compiled
    assert len(compiles) == n, len(compiles) - n
    # One device, the same shares (threads): bit for bit; one vmap of 5: to rounding.
    same(split, Fitter(hopf(0.1), "DE", backend="nevergrad", predict=predict).fit(
        t1, 3, popsize=5, devices=one, population_threads=2), exact=True)
    same(split, Fitter(hopf(0.1), "DE", backend="nevergrad", predict=predict).fit(
        t1, 3, popsize=5, devices=one, population_threads=1), exact=False)
    (shards,) = [v for k, v in ng._compiled.items() if k[0] == "nevergrad"]
    shared = place((jnp.zeros(1), jnp.ones(1), ng.problem.data(t1), None), shards.devices, split=False)
    text = shards.mapped.lower(place(jnp.full((2, 3, 1), 0.5), shards.devices, split=True), *shared).compile()
    assert COLLECTIVE.findall(text.compiled.as_text()) == []
    with pytest.raises(ValueError, match=r"population_threads=2 cuts the population into threads on one device; with 2 "
                       r"devices it is split over them instead, one share each. Drop population_threads, or pass "
                       r"devices=jax.devices\\(\\)\\[:1\\]"):
        ng.fit(t1, 2, popsize=5, population_threads=2)

    # A candidate whose loss is NaN is a bad candidate; a failed run-time check names its generation.
    class Q(eqx.Module):
        a: object
    def nan_above(m, t):
        return jnp.where(m.a > 0.5, jnp.nan, (m.a - t) ** 2)
    quad = Fitter(Q(bx.Param(0.2, bounds=(0.0, 1.0))), "DE", loss_fn=nan_above, backend="nevergrad")
    r = quad.fit(jnp.asarray(0.3), 4, popsize=7)
    assert np.isnan(r.raw["losses"]).any() and np.isfinite(r.best_loss) and r.raw["losses"].shape == (4, 7)
    same(r, quad.fit(jnp.asarray(0.3), 4, popsize=7, devices=one, population_threads=1), exact=False)
    checked = Fitter(Q(bx.Param(0.2, bounds=(0.0, 1.0))), "DE", backend="nevergrad",
                     loss_fn=lambda m, t: eqx.error_if((m.a - t) ** 2, m.a > 0.5, "a is above 0.5"))
    with pytest.raises(RuntimeError, match="a run-time check failed for a candidate of generation 0: a is above 0.5"):
        checked.fit(jnp.asarray(0.3), 3, popsize=7)

    # Multi-start 'grad': 3 starts, 2 on each device (the last repeated).
    grad = Fitter(hopf(0.1), optax.adam(0.05), predict=predict)
    split = grad.fit(t1, 4, n_starts=3)
    assert split.history.shape == (4, 3) and split.raw["best_loss"].shape == (3,)
    (runner,) = [v for k, v in grad._compiled.items() if k[0] == "grad"]
    assert runner.devices == tuple(jax.devices()) and runner.padded == 4
    n = len(compiles)
    grad.fit(t2, 5, n_starts=3)
    assert len(compiles) == n, len(compiles) - n
    same(split, Fitter(hopf(0.1), optax.adam(0.05), predict=predict).fit(t1, 4, n_starts=3, devices=one), exact=False)
    data = place((grad.problem.data(t1), None), runner.devices, split=False)
    raw0 = place(jax.tree_util.tree_map(lambda a: jnp.repeat(a[None], 4, 0), grad.space.initial_raw()), runner.devices, split=True)
    carry = runner.start(raw0, jax.eval_shape(lambda: t1), *data)
    step = runner.step.lower(carry, jnp.asarray(0, jnp.int32), *data).compile().compiled.as_text()
    assert COLLECTIVE.findall(step) == []
    # Checkpoint: 2 steps, then resumed to 4, equal to 4 at once; the checkpoint (3 starts,
    # no padding) resumes on one device too.
    path = os.path.join(tempfile.mkdtemp(), "fit.ckpt")
    grad.fit(t1, 2, n_starts=3, checkpoint=path)
    same(split, grad.fit(t1, 4, n_starts=3, checkpoint=path, resume=True), exact=True)
    grad.fit(t1, 2, n_starts=3, checkpoint=path)
    same(split, grad.fit(t1, 4, n_starts=3, checkpoint=path, resume=True, devices=one), exact=False)
    # A start whose loss turns NaN stops there, the others go on: as on one device. Start 2
    # (a = 0.87) is the last, the one repeated as padding: one warning, for it.
    fit_nan = lambda devices: Fitter(Q(bx.Param(0.2, bounds=(0.0, 1.0))), optax.sgd(0.5), loss_fn=nan_above).fit(
        jnp.asarray(0.3), 3, n_starts=3, key=jax.random.key(4), devices=devices)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r2 = fit_nan(None)
    stops = [str(w.message) for w in seen if "That start stops here" in str(w.message)]
    assert len(stops) == 1 and "at step 0 (start 2)" in stops[0], stops
    assert np.isnan(r2.history[:, 2]).all() and np.isfinite(r2.history[:, :2]).all()
    with pytest.warns(RuntimeWarning, match="That start stops here"):
        same(r2, fit_nan(one), exact=False)

    # optimistix: NonlinearCG splits; BFGS cannot be traced under shard_map (lineax issue
    # #185) and runs on one device, saying so.
    cg = optx.NonlinearCG(rtol=1e-6, atol=1e-8)
    f = Fitter(hopf(0.1), cg, backend="optimistix", predict=predict)
    same(f.fit(t1, 3, n_starts=3), Fitter(hopf(0.1), cg, backend="optimistix", predict=predict).fit(
        t1, 3, n_starts=3, devices=one), exact=False)
    assert [v for k, v in f._compiled.items() if k[0] == "optimistix"][0].devices is not None
    bfgs = optx.BFGS(rtol=1e-6, atol=1e-8)
    with pytest.warns(UserWarning, match=r"the 3 starts run side by side on one device, not split over the 2 devices: "
                      r"their step cannot be traced under jax.shard_map \\(ValueError: Symmetric.*lineax issue #185"):
        r = Fitter(hopf(0.1), bfgs, backend="optimistix", predict=predict).fit(t1, 3, n_starts=3)
    same(r, Fitter(hopf(0.1), bfgs, backend="optimistix", predict=predict).fit(t1, 3, n_starts=3, devices=one), exact=True)
    print("FIT-DEVICES-OK")
    """
)


def test_populations_and_starts_split_over_two_forced_host_devices():
    run_on_two_host_devices(TWO_DEVICES, expect="FIT-DEVICES-OK", timeout=900)


def _quadratic_fitter(backend, **kw):
    import equinox as eqx

    class Q(eqx.Module):
        a: object

    return Fitter(Q(bx.Param(0.2, bounds=(0.0, 1.0))), loss_fn=lambda m, t: (m.a - t) ** 2, backend=backend, **kw)


def test_devices_are_checked_eagerly():
    fitter = _quadratic_fitter("grad", optimizer=optax.adam(0.1))
    target = jnp.asarray(0.3)
    device = jax.devices()[0]
    with pytest.raises(TypeError, match=r"devices must be a list of devices, got one device .*: pass devices=\["):
        fitter.fit(target, 2, devices=device)
    with pytest.raises(ValueError, match=r"devices must be a non-empty list of jax devices .*got an empty list"):
        fitter.fit(target, 2, devices=[])
    with pytest.raises(ValueError, match=r"devices must be a non-empty list of jax devices .*got 'cpu'"):
        fitter.fit(target, 2, devices=["cpu"])
    with pytest.raises(ValueError, match="devices lists a device twice"):
        fitter.fit(target, 2, devices=[device, device])
    with pytest.raises(TypeError, match="Fitter.fit"):
        Fitter(fitter.model, optax.adam(0.1), loss_fn=lambda m, t: (m.a - t) ** 2, devices=[device])


@pytest.mark.parametrize("backend, kw", [("nevergrad", {"popsize": 6}), ("grad", {"n_starts": 3}), ("scipy", {"n_starts": 2})])
def test_one_device_given_is_the_default_fit(backend, kw):
    fitter = _quadratic_fitter(backend, **({"optimizer": optax.adam(0.1)} if backend == "grad" else {}))
    default = fitter.fit(jnp.asarray(0.3), 3, **kw)
    given = fitter.fit(jnp.asarray(0.3), 3, devices=jax.devices(), **kw)
    assert default.best_loss == given.best_loss
    np.testing.assert_array_equal(default.history, given.history)
    assert "population_devices" not in (given.raw or {})
