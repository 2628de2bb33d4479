"""Recovery demos of the optimistix, nevergrad and SciPy backends (fixed keys, small sizes)."""

import warnings

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
from test_fit import A_TRUE, TARGET, Quadratic, amplitude, hopf

import brainmass_eqx as bm
from brainmass_eqx.fit import Fitter, NonFiniteLossError

KEY = jax.random.key(7)


def start_model():
    return hopf(bm.Param(0.1, bounds=(0.01, 1.0)))


@pytest.mark.parametrize("method", ["DE", "CMA"])
def test_nevergrad_recovers_hopf_a(method):
    fitter = Fitter(start_model(), method, predict=amplitude, backend="nevergrad")
    result = fitter.fit(TARGET, 15, popsize=8, key=KEY)
    assert abs(float(result.best_params["a"]) - A_TRUE) < 0.02
    assert result.raw["losses"].shape == (15, 8)  # every candidate of every generation
    assert result.history.shape == (15,)
    assert result.best_loss == np.min(result.raw["losses"])
    # The best candidate's own loss, not a recommendation nobody evaluated.
    loss, _ = fitter.loss(result.best_params, TARGET)
    np.testing.assert_allclose(float(loss), result.best_loss, rtol=1e-5, atol=1e-7)
    again = fitter.fit(TARGET, 15, popsize=8, key=KEY)
    assert again.best_loss == result.best_loss  # the key fixes the search


def test_nevergrad_search_space_and_nonfinite_candidates():
    def loss(model, target):
        a = bm.unwrap(model.a)
        return jnp.where(a > 0.8, jnp.nan, (a - target) ** 2)

    model = Quadratic(a=bm.Param(0.0))
    fitter = Fitter(model, "DE", loss_fn=loss, backend="nevergrad", search_space={"a": (-1.0, 1.0)})
    with warnings.catch_warnings():
        # Told as a loss under nevergrad's clip: no LossTooLargeWarning per diverging candidate.
        warnings.simplefilter("error")
        result = fitter.fit(jnp.asarray(0.3), 20, popsize=8, key=KEY)
    assert np.isnan(result.raw["losses"]).any()  # the search went on
    assert float(result.best_params["a"]) == pytest.approx(0.3, abs=0.02)
    mapped = fitter.fit(jnp.asarray(0.3), 20, popsize=8, key=KEY, population="map")
    np.testing.assert_allclose(mapped.raw["losses"], result.raw["losses"], rtol=1e-6)
    auto = fitter.fit(jnp.asarray(0.3), 20, popsize=8, key=KEY, population="auto")
    assert auto.raw["population"] in ("vmap", "map") and set(auto.raw["population_seconds"]) == {"vmap", "map"}
    np.testing.assert_allclose(auto.raw["losses"], result.raw["losses"], rtol=1e-6)
    assert "population_reused" not in auto.raw
    # A later fit of the same population and target shapes keeps the choice (timing both
    # modes again cost a compilation and two evaluations of a population per fit).
    again = fitter.fit(jnp.asarray(0.2), 3, popsize=8, key=KEY, population="auto")
    assert again.raw["population_reused"] is True
    assert (again.raw["population"], again.raw["population_seconds"]) == (auto.raw["population"], auto.raw["population_seconds"])
    assert "population_reused" not in fitter.fit(jnp.asarray(0.2), 3, popsize=4, key=KEY, population="auto").raw
    with pytest.raises(ValueError, match=r"population must be one of \('vmap', 'map', 'auto'\), got 'pmap'"):
        fitter.fit(jnp.asarray(0.3), 2, population="pmap")
    always_nan = Fitter(model, "DE", loss_fn=lambda m, t: jnp.nan * bm.unwrap(m.a), backend="nevergrad", search_space={"a": (-1.0, 1.0)})
    with pytest.raises(NonFiniteLossError, match="every candidate's loss was non-finite at generation 0"):
        always_nan.fit(None, 5, popsize=4)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU plan: one call off a CPU")
def test_a_large_population_is_evaluated_in_16_candidate_slices_taken_in_turn(monkeypatch):
    # 40 candidates on "2 cores": two threads take three slices of 16 (the last padded),
    # with the losses, best candidate and prediction of one call over the population.
    import brainmass_eqx._ensemble as ens
    from brainmass_eqx.fit import _nevergrad

    monkeypatch.setattr(ens, "cpu_slices", lambda size, min_slice=4: min(2, max(1, size // min_slice)))
    widths, run_slices = [], _nevergrad.run_slices

    def recorded(fn, parts, pool=None, **kw):
        widths.append([part[0].shape[0] for part in parts])
        return run_slices(fn, parts, pool, **kw)

    monkeypatch.setattr(_nevergrad, "run_slices", recorded)
    fitter = Fitter(start_model(), "DE", predict=amplitude, backend="nevergrad")
    whole = fitter.fit(TARGET, 3, popsize=40, key=KEY, population_threads=1)
    assert widths == []  # one call per generation
    queued = fitter.fit(TARGET, 3, popsize=40, key=KEY)
    assert widths == [[16, 16, 16]] * 3
    assert queued.raw["population_threads"] == 2 and queued.raw["losses"].shape == (3, 40)
    # Each width compiles apart, so rounds apart: 3e-8 on losses of 1e-3.
    np.testing.assert_allclose(queued.raw["losses"], whole.raw["losses"], rtol=1e-6, atol=1e-7)
    assert queued.best_step == whole.best_step
    np.testing.assert_allclose(queued.best_loss, whole.best_loss, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(queued.prediction, whole.prediction, rtol=1e-6, atol=1e-7)


def test_nevergrad_population_slices_equal_one_call():
    # Slices of a population evaluated at once (threads) give the losses, best candidate
    # and prediction of one call over the whole population; 7 candidates in 3 slices of 3
    # also exercise the padding.
    fitter = Fitter(start_model(), "DE", predict=amplitude, backend="nevergrad")
    whole = fitter.fit(TARGET, 4, popsize=7, key=KEY, population_threads=1)
    sliced = fitter.fit(TARGET, 4, popsize=7, key=KEY, population_threads=3)
    assert whole.raw["population_threads"] == 1 and sliced.raw["population_threads"] == 3
    np.testing.assert_allclose(sliced.raw["losses"], whole.raw["losses"], rtol=1e-6)
    assert sliced.raw["losses"].shape == (4, 7)
    assert sliced.best_loss == whole.best_loss and sliced.best_step == whole.best_step
    np.testing.assert_allclose(sliced.prediction, whole.prediction, rtol=1e-6)
    np.testing.assert_allclose(float(sliced.best_params["a"]), float(whole.best_params["a"]), rtol=1e-6)
    with pytest.raises(ValueError, match="population_threads must be an int >= 1, got 0"):
        fitter.fit(TARGET, 2, population_threads=0)
    grad = Fitter(start_model(), optax.adam(0.01), predict=amplitude)
    with pytest.raises(ValueError, match="population_threads applies to backend='nevergrad'"):
        grad.fit(TARGET, 2, population_threads=2)
    # A population size given to another backend used to be ignored without a word.
    with pytest.raises(ValueError, match=r"popsize, population applies to backend='nevergrad' \(its population\), not 'grad'; drop it"):
        grad.fit(TARGET, 2, popsize=8, population="vmap")


@pytest.mark.parametrize("method", ["L-BFGS-B", "Nelder-Mead"])
def test_scipy_recovers_hopf_a(method):
    fitter = Fitter(start_model(), method, predict=amplitude, backend="scipy")
    result = fitter.fit(TARGET, 40, key=KEY)
    assert abs(float(result.best_params["a"]) - A_TRUE) < 5e-3
    assert result.best_loss == np.min(result.history)
    assert result.raw["results"][0].nit <= 40
    # best_step counts evaluations, n_steps iterations: the repr says which is which.
    assert f"at evaluation {result.best_step} ({result.n_steps} iterations)" in repr(result)


def test_scipy_random_restarts_from_a_key():
    # Two minima at a = +-1 in the box [-2, 2]: restarts drawn from the key find both.
    model = Quadratic(a=bm.Param(1.5, bounds=(-2.0, 2.0)))
    fitter = Fitter(model, "L-BFGS-B", loss_fn=lambda m, t: (bm.unwrap(m.a) ** 2 - 1.0) ** 2 + 0.1 * bm.unwrap(m.a), backend="scipy")
    result = fitter.fit(None, 50, n_starts=6, key=KEY)
    ends = [float(r.x[0]) for r in result.raw["results"]]
    assert min(ends) < -0.9 and max(ends) > 0.9
    assert float(result.best_params["a"]) < -0.9  # the tilt makes -1 the global minimum
    assert result.stop_reason == "converged"
    same = fitter.fit(None, 50, n_starts=6, key=KEY)
    assert [float(r.x[0]) for r in same.raw["results"]] == ends
    capped = fitter.fit(None, 1)
    assert capped.stop_reason.startswith("scipy: ") and "LIMIT" in capped.stop_reason


def test_optimistix_bfgs_recovers_hopf_a():
    fitter = Fitter(start_model(), optx.BFGS(rtol=1e-5, atol=1e-7), predict=amplitude, backend="optimistix")
    result = fitter.fit(TARGET, 40)
    assert abs(float(result.best_params["a"]) - A_TRUE) < 5e-3
    assert np.all(np.diff(result.history) <= 0)  # losses of accepted iterates


def test_optimistix_levenberg_marquardt_on_residuals():
    # One parameter, ten residuals: the Jacobian is built forwards, which needs a
    # forward-differentiable solve.
    def predict(model):
        return amplitude_forward(model)

    fitter = Fitter(start_model(), optx.LevenbergMarquardt(rtol=1e-5, atol=1e-7), predict=predict, backend="optimistix")
    result = fitter.fit(TARGET, 30)
    assert abs(float(result.best_params["a"]) - A_TRUE) < 1e-3
    assert result.stop_reason == "converged" and result.n_steps < 30
    # The reported loss is the least-squares value 0.5 * sum(residual^2).
    residual = amplitude(result.model) - TARGET
    np.testing.assert_allclose(result.best_loss, 0.5 * float(jnp.sum(residual**2)), rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("solver", [optx.LBFGS, optx.LevenbergMarquardt])
def test_optimistix_multi_start_with_solvers_whose_state_holds_jaxprs(solver):
    # LBFGS's and the least-squares solvers' states hold jaxprs: jax.vmap over the starts
    # refused them as outputs ("not a valid JAX type") and every such multi-start fit failed.
    predict = amplitude_forward if solver is optx.LevenbergMarquardt else amplitude
    fitter = Fitter(start_model(), solver(rtol=1e-5, atol=1e-7), predict=predict, backend="optimistix")
    result = fitter.fit(TARGET, 20, n_starts=2, key=KEY)
    assert abs(float(result.best_params["a"]) - A_TRUE) < 5e-3


def amplitude_forward(model):
    tr = bm.simulate(model, 30.0, dt=0.2, transient=100, sample_every=5, check_finite=False, adjoint=dfx.ForwardMode())
    return jnp.sqrt(tr.ys["x"] ** 2 + tr.ys["y"] ** 2)


@jax.custom_vjp
def reverse_only(x):
    return x


reverse_only.defvjp(lambda x: (x, None), lambda _, g: (g,))


def test_least_squares_falls_back_to_reverse_mode_with_a_warning():
    model = Quadratic(a=bm.Param(0.0), b=bm.Param(0.0))
    residuals = lambda m, t: reverse_only(jnp.stack([bm.unwrap(m.a), bm.unwrap(m.b), bm.unwrap(m.a) + bm.unwrap(m.b)]) - t)
    fitter = Fitter(model, optx.GaussNewton(rtol=1e-6, atol=1e-8), loss_fn=residuals, backend="optimistix")
    with pytest.warns(UserWarning, match=r"reverse mode.*adjoint=diffrax.ForwardMode\(\)"):
        result = fitter.fit(jnp.array([1.0, 2.0, 3.0]), 10)
    assert float(result.best_params["b"]) == pytest.approx(2.0, abs=1e-4)


@pytest.mark.parametrize("backend, optimizer", [("scipy", "L-BFGS-B"), ("nevergrad", "DE")])
def test_callbacks_stop_gradient_free_backends(backend, optimizer):
    model = Quadratic(a=bm.Param(1.5, bounds=(-2.0, 2.0)))
    seen = []
    fitter = Fitter(
        model, optimizer, loss_fn=lambda m, t: (bm.unwrap(m.a) - t) ** 4, backend=backend,
        callbacks=lambda info: seen.append(info["step"]) or info["step"] == 2,
    )  # fmt: skip
    result = fitter.fit(jnp.asarray(0.5), 50, **({"popsize": 4} if backend == "nevergrad" else {}))
    assert result.stop_reason == "callback" and result.n_steps == 3 and seen == [0, 1, 2]


# -- network recoveries (the 8-node example connectome) -------------------------------------


# The coupled oscillators are multistable: this key's initial state gives a loss with one
# basin around the true k (others have local minima, as real fits do).
NET_KEY = jax.random.key(0)


def example_network(k=0.3, speed=5.0):
    network = pytest.importorskip("brainmass_eqx.network")
    from brainmass_eqx.datasets import load_dataset

    conn = load_dataset("example_connectome")
    node = bm.Hopf(8, a=0.1, w=jnp.linspace(0.25, 0.35, 8), init_x=bm.Uniform(-0.3, 0.3), init_y=bm.Uniform(-0.3, 0.3))
    # max_delay leaves the history room for slower speeds than the start value.
    return network.Network(node, conn.weights, distance=conn.distances, speed=speed, coupled_var="x", k=k, max_delay=60.0)


def fc_prediction(model):  # 300 ms, the first 100 ms discarded, x every 0.5 ms
    return bm.simulate(model, 300.0, dt=0.1, key=NET_KEY, transient=1000, sample_every=5, monitors="x").ys["x"]


@pytest.fixture(scope="module")
def fc_target():
    return fc_prediction(example_network(k=0.3))


def test_grad_recovers_global_coupling_from_fc(fc_target):
    from brainmass_eqx import objectives

    fitter = Fitter(example_network(k=bm.Param(0.15, bounds=(0.0, 2.0))), optax.adam(0.1), predict=fc_prediction, objective=objectives.fc_corr(as_loss=True))
    result = fitter.fit(fc_target, 30)
    assert fitter.names == ("k",)
    assert result.history[0] > 0.04 and result.best_loss < 5e-3
    assert abs(float(result.best_params["k"]) - 0.3) < 0.05


@pytest.mark.parametrize(
    ("backend", "method", "n_steps", "options"),
    [
        ("nevergrad", "DE", 10, {"popsize": 8}),
        ("nevergrad", "CMA", 10, {"popsize": 8}),
        # From k = 0.15 L-BFGS-B's first step overshoots into a ripple of the loss beyond
        # the true k (a local minimum at 0.81, loss 8e-3); restarts drawn from the key find
        # the true basin, as a user of this backend would.
        ("scipy", "L-BFGS-B", 20, {"n_starts": 3}),
        ("scipy", "Nelder-Mead", 30, {}),
    ],
)
def test_gradient_free_and_scipy_backends_recover_global_coupling_from_fc(fc_target, backend, method, n_steps, options):
    from brainmass_eqx import objectives

    start = example_network(k=bm.Param(0.15, bounds=(0.0, 2.0)))
    fitter = Fitter(start, method, predict=fc_prediction, objective=objectives.fc_corr(as_loss=True), backend=backend)
    result = fitter.fit(fc_target, n_steps, key=jax.random.key(3), **options)
    assert fitter.names == ("k",)
    assert abs(float(result.best_params["k"]) - 0.3) < 0.02
    assert result.best_loss < 1e-3  # the start's loss is about 0.045


def test_grad_recovers_conduction_speed_from_time_series():
    # Linear interpolation of the delayed reads makes the loss differentiable in the speed.
    def predict(model):
        return bm.simulate(model, 100.0, dt=0.1, key=NET_KEY, sample_every=5, monitors="x").ys["x"]

    target = predict(example_network(speed=5.0))
    fitter = Fitter(example_network(speed=bm.Param(3.0, bounds=(1.0, 20.0))), optax.adam(0.1), predict=predict)
    result = fitter.fit(target, 40)
    assert fitter.names == ("speed",)
    assert abs(float(result.best_params["speed"]) - 5.0) < 0.1


def test_scipy_stop_reason_is_readable():
    # L-BFGS-B stopping at a loss floor reports a bare "ABNORMAL: " (seen fitting a speed
    # to 4e-9); the FitResult's stop_reason says what it means.
    from brainmass_eqx.fit._scipy import _readable_message

    assert _readable_message("ABNORMAL: ") == (
        "ABNORMAL (the line search found no decrease: usually the loss is at its floor, or its gradient is inexact)"
    )
    assert _readable_message("STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT") == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"


# -- the result is what was evaluated (every backend) ----------------------------------------


def steep_loss(model, target):
    # Steep around its minimum, so that parameters an ulp apart give clearly different losses.
    return 1e6 * (bm.unwrap(model.a) - target) ** 2


def test_nevergrad_reports_the_values_it_evaluated():
    # best_params were recomputed from the unit cube in float64, an ulp or two away from the
    # float32 values behind best_loss: with keys 2 and 3 the loss at best_params was
    # 1.842e-5 for a best_loss of 1.867e-5, and 3.6e-9 for 8.9e-10.
    fitter = Fitter(Quadratic(a=bm.Param(0.1, bounds=(0.01, 1.0))), "CMA", loss_fn=steep_loss, backend="nevergrad")
    for seed in range(4):
        result = fitter.fit(jnp.asarray(0.4), 15, popsize=8, key=jax.random.key(seed))
        assert float(fitter.loss(result.best_params, jnp.asarray(0.4))[0]) == result.best_loss
        assert result.best_loss == float(np.nanmin(result.raw["losses"][result.best_step]))


@pytest.mark.parametrize("low, high, target", [(0.01, 1.0, -1.0), (0.01, 1.0, 2.0), (0.5, None, -1.0)])
def test_a_fit_that_ends_on_a_bound_returns_a_model_on_it(low, high, target):
    # Values on a bound used to be moved inside by 64 eps (7.6e-6 in float32) on their way to
    # the model: result.model.a was 0.0100076 for best_params 0.01 (its loss 3e-3 higher).
    fitter = Fitter(Quadratic(a=bm.Param(0.8, bounds=(low, high))), "L-BFGS-B", loss_fn=steep_loss, backend="scipy")
    result = fitter.fit(jnp.asarray(target), 20)
    bound = low if target < low else high
    assert float(result.best_params["a"]) == np.float32(bound)
    assert float(bm.unwrap(result.model.a)) == float(result.best_params["a"])
    space = fitter.space
    for value in (low, high, 0.5 * (low + (high or 2 * low + 1))):
        if value is not None:
            back = space.to_values(space.to_raw({"a": jnp.asarray(value, jnp.float32)}))["a"]
            assert float(back) == np.float32(value)


def test_least_squares_loss_is_what_it_minimises_and_takes_no_objective():
    def predict(m):
        return jnp.stack([m.a, 2.0 * m.a, m.a**2])

    model = Quadratic(a=bm.Param(0.1, bounds=(0.0, 2.0)))
    target = jnp.array([1.0, 1.9, 1.1])
    solver = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)
    fitter = Fitter(model, solver, predict=predict, backend="optimistix")
    result = fitter.fit(target, 20)
    # Fitter.loss gave the RMSE (0.0447) for a best_loss of 0.5 * sum(r^2) (0.003).
    assert float(fitter.loss(result.best_params, target)[0]) == pytest.approx(result.best_loss, rel=1e-6)
    residuals = predict(bm.unwrap(result.model)) - target
    assert result.best_loss == pytest.approx(0.5 * float(jnp.sum(residuals**2)), rel=1e-5)
    # An objective was silently ignored: psd_rmse or fc_corr fitted the time series instead.
    with pytest.raises(ValueError, match=r"objective= is not used by a least-squares solver \(LevenbergMarquardt\)"):
        Fitter(model, solver, predict=predict, backend="optimistix", objective=bm.objectives.psd_rmse(dt=0.1))
    # With loss_fn= (its output: the residuals) Fitter.loss failed ('must return a scalar loss').
    by_residuals = Fitter(model, solver, loss_fn=lambda m, t: predict(m) - t, backend="optimistix")
    assert float(by_residuals.loss(result.best_params, target)[0]) == pytest.approx(result.best_loss, rel=1e-6)


def test_callbacks_see_the_model_for_every_backend():
    # nevergrad's callbacks got model=None (decided by the shape of the population's losses).
    seen = []
    fitter = Fitter(Quadratic(a=bm.Param(1.5, bounds=(-2.0, 2.0))), "DE", loss_fn=steep_loss, backend="nevergrad",
                    callbacks=seen.append)  # fmt: skip
    fitter.fit(jnp.asarray(0.5), 2, popsize=4)
    info = seen[-1]
    assert isinstance(info["model"], Quadratic) and np.shape(info["loss"]) == (4,)
    assert float(bm.unwrap(info["model"].a)) == pytest.approx(float(info["params"]["a"]))
    assert float(np.min(info["loss"])) == pytest.approx(float(steep_loss(info["model"], 0.5)), rel=1e-5)


def test_nonfinite_loss_keeps_the_result_so_far_for_gradient_free_backends(monkeypatch):
    def loss(model, target):
        a = bm.unwrap(model.a)
        return jnp.where(a > 0.9, jnp.nan, (a - target) ** 2)

    model = Quadratic(a=bm.Param(0.1, bounds=(0.0, 1.0)))
    # SciPy: L-BFGS-B's first step from 0.1 towards 5 lands on the bound 1, where the loss is NaN.
    with pytest.raises(NonFiniteLossError) as info:
        Fitter(model, "L-BFGS-B", loss_fn=loss, backend="scipy").fit(jnp.asarray(5.0), 20)
    assert info.value.result is not None  # it was None
    assert float(info.value.result.best_params["a"]) == pytest.approx(0.1) and info.value.result.best_loss == pytest.approx(4.9**2)
    # nevergrad: the second generation's every loss is NaN.
    from brainmass_eqx.fit import _nevergrad

    evaluate, calls = _nevergrad._Slices.__call__, []

    def nan_after_first(self, u, *rest):
        losses, best, out = evaluate(self, u, *rest)
        calls.append(1)
        return (losses if len(calls) == 1 else np.full(np.shape(losses), np.nan)), best, out

    monkeypatch.setattr(_nevergrad._Slices, "__call__", nan_after_first)
    with pytest.raises(NonFiniteLossError, match="generation 1") as info:
        Fitter(model, "DE", loss_fn=loss, backend="nevergrad").fit(jnp.asarray(0.5), 5, popsize=4)
    result = info.value.result
    assert result is not None and result.n_steps == 1 and result.best_step == 0
    assert result.best_loss == pytest.approx(float(loss(bm.unwrap(result.model), 0.5)))


def test_nevergrad_names_ignore_case():
    with pytest.raises(ValueError, match=r"optimizer='cma' is not a nevergrad optimizer name; close names: \['CMA'"):
        Fitter(Quadratic(a=bm.Param(0.5, bounds=(0.0, 1.0))), "cma", loss_fn=steep_loss, backend="nevergrad")
    with pytest.raises(ValueError, match=r"unknown parameter 'A' \(did you mean 'a'\?\)"):
        Fitter(Quadratic(a=bm.Param(0.5, bounds=(0.0, 1.0))), loss_fn=steep_loss, backend="nevergrad", search_space={"A": (0, 1)})


def test_an_error_inside_nevergrad_is_named_with_the_optimizers_to_use(monkeypatch):
    # nevergrad 1.0.12's 'NGOpt' raised "TypeError: only 0-dimensional arrays can be
    # converted to Python scalars" from its metamodel under NumPy 2.4, a stack deep inside
    # nevergrad that read like a fault of the loss.
    import nevergrad as ng

    def broken_tell(self, candidate, loss, *args, **kwargs):
        raise TypeError("only 0-dimensional arrays can be converted to Python scalars")

    monkeypatch.setattr(ng.optimizers.base.Optimizer, "tell", broken_tell)
    fitter = Fitter(Quadratic(a=bm.Param(0.5, bounds=(0.0, 1.0))), "DE", loss_fn=steep_loss, backend="nevergrad")
    with pytest.raises(RuntimeError, match=r"nevergrad's optimizer 'DE' failed inside nevergrad itself at generation 0 "
                       r"\(TypeError: only 0-dimensional .*\), not in the loss\. Choose another optimizer: 'DE' or 'CMA'"):
        fitter.fit(jnp.asarray(0.5), 2, popsize=4)


def test_least_squares_with_a_prior_finds_the_penalised_optimum():
    # A prior adds one residual sqrt(2 P) (coverage of the default suite: no test fitted a
    # Param with a prior by a least-squares solver). For residuals a x - y and P =
    # 0.5 ((a - m) / s)^2 the optimum is (x.y + m / s^2) / (x.x + 1 / s^2), here
    # (4.8 + 2) / (5 + 4) = 0.7556, against 0.96 without the prior.
    from brainmass_eqx.fit import GaussianPrior

    x, y = jnp.array([1.0, 2.0]), jnp.array([1.0, 1.9])
    model = Quadratic(a=bm.Param(0.1, prior=GaussianPrior(mean=0.5, std=0.5)))
    fitter = Fitter(model, optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8), predict=lambda m: m.a * x, backend="optimistix")
    result = fitter.fit(y, 50)
    a = float(result.best_params["a"])
    assert a == pytest.approx(6.8 / 9.0, rel=1e-4)  # float32; a residual sqrt(P) would give 0.8286
    # best_loss is the penalised least-squares loss 0.5 |r|^2 + P at that point.
    expect = 0.5 * float(jnp.sum((a * x - y) ** 2)) + 0.5 * ((a - 0.5) / 0.5) ** 2
    assert result.best_loss == pytest.approx(expect, rel=1e-5)
    with pytest.raises(ValueError, match=r"GaussianPrior\(std=...\) must be positive, got 0.0"):
        GaussianPrior(mean=0.5, std=0.0)
