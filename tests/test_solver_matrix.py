"""Cells of the solver matrix (every solver a user can pass x fixed / adaptive steps x
step grid / saveat x node / delayed Network x with / without noise) that failed with
another library's message, or ran wrong, before `simulate` knew them.

Each cell is one short run (a few ms of a 3-region Hopf); the refusals fail before any
compile.
"""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import brainmass_eqx as bx
from brainmass_eqx.noise import WhiteNoise

Y0 = {"x": np.array([0.5, -0.3, 0.2]), "y": np.array([0.1, 0.4, -0.2])}
SAVEAT = np.arange(1.0, 5.01, 1.0)
PID = dfx.PIDController(rtol=1e-6, atol=1e-8)


def hopf():
    return bx.Hopf(3, a=0.2, w=0.3)


def noisy(model):
    return bx.with_noise(model, {"x": WhiteNoise(0.01)})


def delayed_net():
    w = np.full((3, 3), 0.5) - 0.5 * np.eye(3)
    d = np.array([[0.0, 2.0, 5.0], [1.0, 0.0, 3.0], [4.0, 2.5, 0.0]])
    return bx.Network(hopf(), w, delays=d, k=0.2)


def tolerances():
    return dfx.VeryChord(rtol=1e-6, atol=1e-6, norm=optx.max_norm)


# (model, solver, extra simulate arguments, error type, message). Before: the implicit
# solvers failed inside optimistix ("Type of `other` not understood.", fixed steps on the
# grid) or with diffrax's message for diffeqsolve's arguments (saveat; noisy models:
# "'BlockIncrements' object has no attribute 'root_finder'"); the others as each says.
REFUSED = {
    "implicit-fixed-grid": (hopf, dfx.Kvaerno5, {}, ValueError,
                            r"Kvaerno5 is implicit .* stepsize_controller=diffrax.PIDController.*"
                            r"root_finder=diffrax.VeryChord\(rtol=1e-6, atol=1e-6, norm=optimistix.max_norm\)"),
    "implicit-fixed-saveat": (hopf, dfx.ImplicitEuler, {"saveat": SAVEAT}, ValueError,
                              r"ImplicitEuler is implicit .*stepsize_controller=diffrax.PIDController"),
    # A delayed Network cannot adapt its step: only the root finder's tolerances are advised.
    "implicit-fixed-delayed": (delayed_net, dfx.Kvaerno3, {}, ValueError,
                               r"Kvaerno3 is implicit .*as given. Pass the tolerances yourself"),
    "implicit-fixed-noisy": (lambda: noisy(hopf()), dfx.Kvaerno5, {"saveat": SAVEAT}, ValueError,
                             r"Kvaerno5 is implicit .*as given. Pass the tolerances yourself"),
    # Before: "entry not a 2- or 3- tuple" (NumPy, from jnp.iscomplexobj of a dict).
    "itomilstein-noisy": (lambda: noisy(hopf()), dfx.ItoMilstein, {}, ValueError,
                          r"ItoMilstein cannot integrate the noise of Noisy\(Hopf\).*StratonovichMilstein"),
    # Before: "cannot unpack non-iterable MultiTerm object" (diffrax).
    "partitioned-noisy": (lambda: noisy(hopf()), dfx.SemiImplicitEuler, {}, ValueError,
                          r"SemiImplicitEuler is a partitioned solver"),
    # Before: "EulerHeun has no error estimate ... use diffrax.Tsit5()", not that the
    # model has no noise.
    "sde-solver-no-noise": (hopf, dfx.EulerHeun, {"stepsize_controller": PID}, ValueError,
                            r"EulerHeun is a solver for stochastic equations.*Hopf has no noise"),
    # Before: "needs terms of structure <class 'diffrax.MultiTerm'>; ... Use an ODE solver",
    # which KenCarp4 is.
    "imex-no-split": (hopf, dfx.KenCarp4, {}, ValueError, r"KenCarp4 is an IMEX solver.*diffrax.Kvaerno3/4/5"),
    # Before: it ran, taking MultiTerm(drift, diffusion) as (explicit, implicit): the drift
    # explicit (a noisy Linear(gamma=-50) at dt = 0.1 ms went to inf; Kvaerno3: 0.11), the
    # noise implicit.
    "imex-noisy": (lambda: noisy(hopf()), lambda: dfx.KenCarp3(root_finder=tolerances()), {}, ValueError,
                   r"KenCarp3 is an IMEX solver: .*Noisy\(Hopf\) as that split: the whole drift explicit .*"
                   r"diffrax.Kvaerno3/4/5 .*ExponentialEuler\(\)"),
    "imex-noisy-sil3": (lambda: noisy(hopf()), lambda: dfx.Sil3(root_finder=tolerances()), {"saveat": SAVEAT},
                        ValueError, r"Sil3 is an IMEX solver: .*no third term for the noise"),
    # Before: the noise was left out, silently (the noise-free run, 0.0 apart).
    "model-term-only-noisy": (lambda: noisy(bx.HORN(3)), bx.SymplecticEuler, {}, ValueError,
                              r"SymplecticEuler steps the model's own vector field only.*noise of Noisy\(HORN\)"),
}


@pytest.mark.parametrize("cell", sorted(REFUSED))
def test_solver_matrix_refusals_name_the_solver_and_the_way_out(cell):
    make_model, make_solver, extra, error, match = REFUSED[cell]
    model = make_model()
    y0 = {name: v[: model.n_regions] for name, v in Y0.items()} if "Hopf" in model._label() else None
    with pytest.raises(error, match=match):
        bx.simulate(model, 5.0, dt=0.1, solver=make_solver(), key=jax.random.key(0), y0=y0, **extra)


@pytest.mark.parametrize(
    "solver, match",
    [
        ("tsit5", r"got str 'tsit5': simulate takes solver objects, not names"),
        (dfx.Tsit5, r"got the class diffrax.Tsit5: pass an instance, solver=diffrax.Tsit5\(\)\.$"),
        (bx.RK4, r"got the class brainmass_eqx.RK4: pass an instance, solver=brainmass_eqx.RK4\(\)\.$"),
    ],
)
def test_a_solver_name_or_class_is_told_to_pass_an_instance(solver, match):
    with pytest.raises(TypeError, match=match):
        bx.simulate(hopf(), 1.0, dt=0.1, solver=solver)


@pytest.fixture(scope="module")
def references():
    """Tsit5 at rtol 1e-10 (x64), with and without a per-step input pulse (held inputs)."""
    from _jax_versions import enable_x64

    pulse = {"x": np.r_[np.zeros(20), 0.5 * np.ones(20)]}
    refs = {}
    with enable_x64(True):
        for given in (None, pulse):
            ref = bx.simulate(hopf(), 4.0, dt=0.1, solver=dfx.Tsit5(), y0=Y0, inputs=given, saveat=SAVEAT[:4],
                              stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-12))
            refs[given is not None] = (given, np.asarray(ref.ys["x"]))
    return refs


@pytest.mark.parametrize(
    "solver, extra, pulse, tol",
    [
        # Before: AttributeError "'_HeldStepInputs' object has no attribute 'root_finder'"
        # (diffeqsolve reads it on the wrapper that holds per-step inputs).
        (dfx.Kvaerno5, {"stepsize_controller": PID}, True, 1e-5),
        # Tolerances given: fixed steps work, on the step grid and with saveat (at the
        # pulse's jump diffrax 0.7.2's VeryChord reported a divergence at 1e-6, which
        # fixed steps cannot retry; at 1e-4 it did not).
        (lambda: dfx.Kvaerno5(root_finder=tolerances()), {}, False, 1e-7),
        (lambda: dfx.Kvaerno5(root_finder=tolerances()), {"saveat": SAVEAT[:4]}, False, 1e-7),
    ],
)
def test_implicit_solver_cells_run_and_converge(x64, references, solver, extra, pulse, tol):
    given, ref = references[pulse]
    tr = bx.simulate(hopf(), 4.0, dt=0.1, solver=solver(), y0=Y0, inputs=given, **extra)
    ts, x = np.asarray(tr.ts), np.asarray(tr.ys["x"])
    x = x[[int(np.argmin(abs(ts - t))) for t in SAVEAT[:4]]]
    assert np.max(np.abs(x - ref)) < tol


def test_implicit_solver_in_a_delayed_network_with_saveat(x64):
    # Before: AttributeError "'_DelayedCoupling' object has no attribute 'root_finder'"
    # (diffeqsolve reads it on the wrapper carrying the delay history).
    net, saveat = delayed_net(), SAVEAT[:3]
    ref = bx.simulate(net, 3.0, dt=0.1, solver=dfx.Tsit5(), y0=Y0, saveat=saveat)
    tr = bx.simulate(net, 3.0, dt=0.1, solver=dfx.Kvaerno5(root_finder=tolerances()), y0=Y0, saveat=saveat)
    assert np.max(np.abs(np.asarray(tr.ys["x"]) - np.asarray(ref.ys["x"]))) < 1e-8


# -- a failed implicit step on fixed steps ------------------------------------------------------
#
# A 3-region Hopf at rest, kicked by an input of 5 from step 5 on at dt = 0.5 ms: the kicked
# step's root find diverges ("Nonlinear solve diverged"; ImplicitEuler, VeryChord at 1e-4).
# With saveat (a diffrax solve) that raised; on the step grid the run went on silently from
# the failed step's value (x = 1.58 there), and where that value was NaN it was reported as
# a divergence blaming dt. A stiff case of the same kind (amplitude 3, dt 0.5 ms, Kvaerno5)
# ran silently 1.56 off a tight Tsit5 run.

KICK_DT, KICK_T = 0.5, 10.0
KICKED = "Hopf: the step from t = 2 ms to 2.5 ms (step 5 of 20) failed in ImplicitEuler's root find"


def kicked(**extra):
    solver = dfx.ImplicitEuler(root_finder=dfx.VeryChord(rtol=1e-4, atol=1e-4, norm=optx.max_norm))
    y0 = extra.pop("y0", {"x": np.zeros(3), "y": np.zeros(3)})
    n = round(KICK_T / KICK_DT)
    inputs = extra.pop("inputs", {"x": np.r_[np.zeros(4), 5.0 * np.ones(n - 4)]})
    return bx.simulate(hopf(), extra.pop("duration", KICK_T), dt=KICK_DT, solver=solver, y0=y0, inputs=inputs, **extra)


@pytest.mark.parametrize(
    "extra",
    [{}, {"chunk": 4}, {"adjoint": dfx.RecursiveCheckpointAdjoint()}, {"sample_every": 3, "transient": 2}],
    ids=["grid", "chunked", "diffrax-loop", "sampled"],
)
def test_a_failed_implicit_step_on_the_grid_raises_naming_its_time_and_the_fix(extra):
    # Before: the run returned, x = 1.58 after the failed step (with saveat it raised).
    with pytest.raises(RuntimeError, match=r"the solve stopped at t = 2.5 ms of 10 ms after 5 steps: Nonlinear solve diverged"):
        kicked(saveat=np.arange(0.5, 10.01, 0.5))
    with pytest.raises(RuntimeError) as info:
        kicked(**extra)
    text = str(info.value)
    assert text.startswith(KICKED + " (its root finder's rtol = 0.0001, atol = 0.0001): Nonlinear solve diverged.")
    assert "root_finder=diffrax.VeryChord(rtol=1e-4" in text and "smaller dt" in text
    assert "stepsize_controller=diffrax.PIDController" in text


def test_a_continued_run_names_the_failed_step_in_the_continued_time():
    first = kicked(duration=2.0, inputs=None)
    with pytest.raises(RuntimeError, match=r"Hopf: the step from t = 2 ms to 2.5 ms \(step 1 of 16\) failed"):
        kicked(duration=8.0, y0=first, inputs={"x": 5.0 * np.ones(16)})


def test_a_failed_implicit_step_under_jit_and_in_a_fitters_loss():
    from brainmass_eqx._checks import divergence_gives_nan

    y0 = {"x": jnp.zeros(3), "y": jnp.zeros(3)}
    with pytest.raises(Exception, match=r"Hopf: a step of ImplicitEuler \(its root finder's rtol = 0.0001, atol = "
                                        r"0.0001\) failed .*Run it outside jit for the time of the step"):
        jax.block_until_ready(jax.jit(lambda y: kicked(y0=y).ys["x"])(y0))
    # In a Fitter's loss: non-finite from the failed step on, as a stopped diffrax solve's samples.
    with divergence_gives_nan():
        tr = jax.jit(lambda y: kicked(y0=y))(y0)
    x = np.asarray(tr.ys["x"])
    assert np.all(x[:4] == 0.0) and np.all(np.isinf(x[4:]))
    assert np.all(np.isinf(np.asarray(tr.final_state["x"])))


ONE_STEP = r"a step of ImplicitEuler \(its root finder's rtol = 0.0001, atol = 0.0001\) failed .*VeryChord\(rtol=1e-4"


def kicked_solver():
    return dfx.ImplicitEuler(root_finder=dfx.VeryChord(rtol=1e-4, atol=1e-4, norm=optx.max_norm))


def test_a_failed_implicit_step_of_a_sequence_layers_cell_raises():
    # solver_step (a sequence layer's step, any solver= it is given) dropped the step's
    # result: the kicked step above went on from x = 1.58 without a word.
    from brainmass_eqx._checks import divergence_gives_nan
    from brainmass_eqx.models._sequence import solver_step

    zero = {"x": jnp.zeros(3), "y": jnp.zeros(3)}
    step = jax.jit(lambda y, kick: solver_step(kicked_solver(), hopf(), 0.0, KICK_DT, y, {"x": kick * jnp.ones(3)}))
    with pytest.raises(Exception, match=r"Hopf \(a sequence layer's cell\): " + ONE_STEP):
        jax.block_until_ready(step(zero, 5.0))
    # A step that converges is simulate's step, unchanged.
    ref = bx.simulate(hopf(), KICK_DT, dt=KICK_DT, solver=kicked_solver(), y0=zero, inputs={"x": 0.1})
    np.testing.assert_allclose(step(zero, 0.1)["x"], ref.ys["x"][0], rtol=1e-6)
    with divergence_gives_nan():  # in a Fitter's loss: inf, so that the candidate's loss is non-finite
        assert np.all(np.isinf(jax.jit(lambda y: solver_step(kicked_solver(), hopf(), 0.0, KICK_DT, y,
                                                                {"x": 5.0 * jnp.ones(3)}))(zero)["x"]))


@pytest.mark.usefixtures("compat_env")
def test_a_failed_implicit_step_of_a_compat_update_raises():
    # The compat models' update (brainmass's one-step API) dropped it too, for a model whose
    # solver() is implicit (a subclass: the method names are all explicit).
    import brainmass_eqx.compat as bm
    from brainmass_eqx.compat import brainstate as bs, brainunit as u

    class ImplicitHopf(bm.HopfStep):
        def solver(self):
            return kicked_solver()

    node = ImplicitHopf(3, a=0.2, w=0.3)
    with bs.environ.context(dt=KICK_DT * u.ms):
        node.init_all_states()
        node.update(0.1)
        assert np.all(np.isfinite(np.asarray(node.x.value)))
        with pytest.raises(Exception, match=r"Hopf.update: " + ONE_STEP):
            node.update(5.0)
            jax.block_until_ready(node.x.value)


NO_TOLERANCES = r"solver {} is implicit and its root finder has no tolerances .*Pass the tolerances yourself"


def test_a_sequence_layer_refuses_an_implicit_solver_without_tolerances_naming_the_fix():
    # Its steps are fixed, with no adaptive controller to take the root finder's tolerances
    # from (as simulate's on fixed steps): it failed deep inside optimistix as the first step
    # ran ("RuntimeError: Type of `other` not understood.").
    from brainmass_eqx.models import WilsonCowanSeqLayer
    from brainmass_eqx.models._sequence import solver_step

    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"WilsonCowanSeqLayer\(solver=...\): " + NO_TOLERANCES.format("Kvaerno3")):
        WilsonCowanSeqLayer(2, 3, key=key, solver=dfx.Kvaerno3())
    zero = {"x": jnp.zeros(3), "y": jnp.zeros(3)}
    with pytest.raises(ValueError, match=r"Hopf \(a sequence layer's cell\): " + NO_TOLERANCES.format("ImplicitEuler")):
        solver_step(dfx.ImplicitEuler(), hopf(), 0.0, 0.1, zero, {})
    # With them, the layer runs, as its explicit twin does.
    out = WilsonCowanSeqLayer(2, 3, key=key, solver=dfx.Kvaerno3(root_finder=tolerances()))(jnp.ones((4, 2)))
    ref = WilsonCowanSeqLayer(2, 3, key=key, solver=dfx.Heun())(jnp.ones((4, 2)))
    np.testing.assert_allclose(out, ref, atol=1e-3)


@pytest.mark.usefixtures("compat_env")
def test_a_compat_update_refuses_an_implicit_solver_without_tolerances():
    import brainmass_eqx.compat as bm
    from brainmass_eqx.compat import brainstate as bs, brainunit as u

    class ImplicitHopf(bm.HopfStep):
        def solver(self):
            return dfx.Kvaerno3()

    node = ImplicitHopf(3, a=0.2, w=0.3)
    with bs.environ.context(dt=KICK_DT * u.ms), pytest.raises(ValueError, match=r"Hopf.update: " + NO_TOLERANCES.format("Kvaerno3")):
        node.init_all_states()
        node.update(0.1)


def test_only_solvers_whose_step_can_fail_carry_a_failure_record():
    from brainmass_eqx.solvers import Substeps, _FrozenInputs, step_can_fail

    implicit = dfx.ImplicitEuler(root_finder=tolerances())
    node, net = hopf(), delayed_net()
    for model, solver, can_fail in [(node, bx.ExponentialEuler(), False), (node, bx.RK4(), False),
                                    (node, dfx.Tsit5(), False), (node, implicit, True),
                                    (net, net.wrap_solver(bx.RK4(), dt=0.1), False),
                                    (net, net.wrap_solver(implicit, dt=0.1), True)]:
        assert step_can_fail(solver) is can_fail
        stepper = Substeps(solver, 2, 0.1)
        state = stepper.init(model.terms(None), 0.0, 0.2, Y0, _FrozenInputs({}))
        # Explicit solvers' loops carry exactly what they did before (and compile the same).
        assert len(state) == 3 + can_fail and (stepper.failure(state) is None) is not can_fail


def test_a_half_solver_of_an_implicit_solver_is_refused_up_front():
    # diffrax 0.7's diffeqsolve reads the HalfSolver's own root_finder: an AttributeError
    # from deep inside, in plain diffrax too.
    with pytest.raises(ValueError, match=r"HalfSolver\(ImplicitEuler\(\)\) cannot run: .*diffrax\.Kvaerno3/4/5"):
        bx.simulate(
            bx.Hopf(2), 5.0, dt=0.1, solver=dfx.HalfSolver(dfx.ImplicitEuler()),
            stepsize_controller=dfx.PIDController(rtol=1e-4, atol=1e-6),
        )


def test_a_failed_implicit_step_in_a_fitters_population_is_per_member():
    # A population (the nevergrad backend's jax.vmap of the loss) where some candidates' root
    # find fails: those candidates' losses are non-finite from their own failed step on, the
    # others' are their single runs'. Kicked by 0.15, the Hopf at a = -2 and -0.5 runs; at
    # a = 1 step 5 fails, at a = 0.2 step 10 (samples after steps 1, 3, 5, ...: from sample 2, sample 5).
    from brainmass_eqx.fit import Fitter

    solver = dfx.ImplicitEuler(root_finder=dfx.VeryChord(rtol=1e-4, atol=1e-4, norm=optx.max_norm))
    kick = {"x": np.r_[np.zeros(4), 0.15 * np.ones(16)]}

    def loss_fn(model, target):
        tr = bx.simulate(model, KICK_T, dt=KICK_DT, solver=solver, y0={"x": jnp.zeros(3), "y": jnp.zeros(3)},
                         inputs=kick, sample_every=2)
        return jnp.mean(tr.ys["x"] ** 2), (tr.ys["x"], tr.final_state["x"])

    fitter = Fitter(bx.Hopf(3, a=bx.Param(0.0, fit=True), w=0.3), loss_fn=loss_fn)
    a = jnp.array([-2.0, 1.0, -0.5, 0.2])
    loss, (x, final) = jax.jit(jax.vmap(lambda a: fitter.loss({"a": a})))(a)
    one = jax.jit(lambda a: fitter.loss({"a": a}))
    for i, first_inf in enumerate([None, 2, None, 5]):
        alone, (x_alone, final_alone) = one(a[i])
        if first_inf is None:
            assert np.isfinite(loss[i]) and np.all(np.isfinite(final[i]))
            np.testing.assert_allclose(loss[i], alone, rtol=1e-6)
            np.testing.assert_allclose(x[i], x_alone, rtol=1e-6, atol=1e-7)
        else:
            assert np.isinf(loss[i]) and np.all(np.isinf(final[i])) and np.all(np.isinf(final_alone))
            assert np.all(np.isfinite(x[i][:first_inf])) and np.all(np.isinf(x[i][first_inf:]))
            np.testing.assert_array_equal(x[i], x_alone)
