"""The compat facade's Network and Fitter: brainmass's API and messages on the core."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainstate as bs, braintools as bt, brainunit as u

DT = 0.1 * u.ms


pytestmark = pytest.mark.usefixtures("compat_env")


@pytest.fixture(scope="module")
def connectome():
    return bm.datasets.load_dataset("example_connectome")


def test_datasets_are_brainmass_namedtuples(connectome):
    assert connectome.weights.dtype == np.float64 and connectome.weights.shape == (8, 8)
    assert str(connectome.distances.unit) == "mm" and str(connectome.distances.max()) == "80. mm"
    assert connectome.labels.dtype == np.dtype("<U8") and connectome.labels[0] == "R0"
    sig = bm.datasets.load_dataset("example_signal")
    assert sig.signal.shape == (500, 8) and str(sig.dt) == "1. ms"
    with pytest.raises(KeyError, match="unknown dataset 'hcp'. Available datasets: delayed_match_task, example_connectome, example_signal."):
        bm.datasets.load_dataset("hcp")
    with pytest.raises(ValueError, match="dataset 'example_signal' is already registered; choose a different name."):
        bm.datasets.register_dataset("example_signal", lambda: None)


def test_network_runs_with_delays_and_exposes_the_node(connectome):
    node = bm.HopfStep(8, a=0.2, w=0.3, init_x=bt.init.Constant(0.3))
    net = bm.Network(node, conn=connectome.weights, distance=connectome.distances,
                     speed=10.0 * u.mm / u.ms, coupling="diffusive", coupled_var="x", k=0.5)
    assert net.n_node == 8 and type(net.coupling).__name__ == "DiffusiveCoupling"
    res = bm.Simulator(net, dt=DT).run(5.0 * u.ms, monitors=lambda m: m.node.x.value)
    assert res["output"].shape == (50, 8)
    # update() continues from the run's final state with the delay history carried along
    x_before = net.node.x.value
    net.update()
    assert not np.allclose(net.node.x.value, x_before)


def test_network_coupling_equals_brainmass_formula_without_delays():
    W = np.array([[0.0, 1.0], [1.0, 0.0]])
    node = bm.LinearStep(2, gamma=0.0, init_x=bt.init.Constant(0.0))
    net = bm.Network(node, conn=W, coupled_var="x", k=0.5)
    bs.nn.init_all_states(net)
    net.node.x.value = jnp.array([1.0, 2.0])
    net.update()
    # diffusive: k * sum_j W_ij (x_j - x_i) = [0.5, -0.5]; Linear with gamma 0: x += dt/ms * current
    np.testing.assert_allclose(net.node.x.value, [1.0 + 0.1 * 0.5, 2.0 - 0.1 * 0.5], rtol=1e-6)


# brainmass 0.1.1's x at steps 10, 100 and 300 of this run (its Simulator, in its venv).
_BRAINMASS_LAPLACIAN = {
    "delays": [[0.109046, 0.104867, 0.102933, 0.10877, 0.102435, 0.112369, 0.108903, 0.121236],
               [0.0474, 0.056293, 0.06246, 0.051555, 0.059454, 0.049474, 0.057261, 0.035362],
               [-0.092586, -0.083671, -0.085229, -0.092159, -0.080857, -0.092706, -0.079523, -0.101148]],
    "no delays": [[0.318328] * 8, [-0.441321] * 8, [-0.402097] * 8],
}  # fmt: skip


@pytest.mark.parametrize("delays", list(_BRAINMASS_LAPLACIAN))
def test_laplacian_coupling_with_a_delay_init_runs_brainmass_trajectory(connectome, delays):
    # brainmass reads the Laplacian's diagonal through the delay buffer too: on the first step
    # every read, the zero-delay diagonal included, is delay_init, so a uniform state feels
    # no coupling. The core's Laplacian read the diagonal's current state (0.3 against the
    # neighbours' 0.1): x fell to 0.24 at the first step, 0.09 away from brainmass.
    kw = dict(distance=connectome.distances, speed=10.0 * u.mm / u.ms) if delays == "delays" else {}
    net = bm.Network(bm.HopfStep(8, a=0.2, w=0.3, init_x=bt.init.Constant(0.3)), conn=connectome.weights,
                     coupling="laplacian", coupled_var="x", k=0.5, delay_init=bt.init.Constant(0.1), **kw)  # fmt: skip
    x = np.asarray(bm.Simulator(net, dt=DT).run(30.0 * u.ms, monitors=lambda m: m.node.x.value)["output"])
    np.testing.assert_allclose(np.asarray(x[0]), 0.3032885, rtol=1e-6)  # the uncoupled Hopf step, as brainmass
    np.testing.assert_allclose(np.asarray(x[[9, 99, 299]]), _BRAINMASS_LAPLACIAN[delays], atol=2e-6)


def test_laplacian_coupling_adds_brainmass_offset_b(connectome):
    def run(b):
        net = bm.Network(bm.HopfStep(8, a=0.2, w=0.3, init_x=bt.init.Constant(0.3)), conn=connectome.weights,
                         coupling="laplacian", coupled_var="x", k=0.5)
        net.coupling.b = bs.nn.Param.init(b)
        return np.asarray(bm.Simulator(net, dt=DT).run(1.0 * u.ms, monitors=lambda m: m.node.x.value)["output"])

    # It was dropped (a difference of 0). brainmass 0.1.1: 0.394081 at step 10 (its step 1
    # differs: its default delay_init is random).
    np.testing.assert_allclose((run(0.5) - run(0.0))[9], 0.394081, rtol=1e-4)


def test_network_messages(connectome):
    node = bm.HopfStep(8)
    with pytest.raises(ValueError, match=r"coupled_var 'q' is not a state variable of HopfStep; available states: \['x', 'y'\]."):
        bm.Network(node, conn=connectome.weights, coupled_var="q")
    with pytest.raises(ValueError, match="coupling must be 'diffusive', 'additive', 'laplacian', 'sigmoidal', 'tanh' or 'sigmoidal_jansen_rit'; got 'foo'."):
        bm.Network(node, conn=connectome.weights, coupled_var="x", coupling="foo")
    with pytest.raises(ValueError, match=r"conn has shape \(3, 3\), expected \(8, 8\)."):
        bm.Network(node, conn=np.ones((3, 3)), coupled_var="x")
    with pytest.raises(ValueError, match="distance was given without speed"):  # brainmass dropped the delays
        bm.Network(node, conn=connectome.weights, distance=connectome.distances, coupled_var="x")


def test_coupling_kernels_match_the_documented_values():
    # concepts/coupling_and_delays: diffusive current [0.5, -0.5] and tanh 0.1900 / 0.4997 / 0.5000.
    W = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    x = jnp.array([[1.0, 2.0], [1.0, 2.0]])
    np.testing.assert_allclose(bm.diffusive_coupling(x, jnp.array([1.0, 2.0]), W, 0.5), [0.5, -0.5])
    levels = [float(bm.hyperbolic_tangent_coupling(jnp.full((2, 2), lv), jnp.ones((2, 2)), k=0.5, scale=2.0)[0])
              for lv in (0.1, 1.0, 5.0)]
    assert [f"{v:.4f}" for v in levels] == ["0.1900", "0.4997", "0.5000"]
    with pytest.raises(ValueError, match=r"x has incompatible shape \(2,\); expected \(..., 2, 2\) or flattened \(..., 4\)."):
        bm.diffusive_coupling(jnp.ones(2), jnp.ones(2), W, 1.0)
    L = bm.laplacian_connectivity(W)
    assert float(jnp.abs(L.sum(axis=1)).max()) < 1e-6
    with pytest.raises(ValueError, match="Unknown normalize=x, only None, 'rw', 'sym' are supported."):
        bm.laplacian_connectivity(W, normalize="x")


class _Gain(bs.nn.Module):
    def __init__(self, t=None):
        super().__init__()
        self.gain = bs.nn.Param(0.0 if t is None else 1.0, t=t, fit=True)

    def update(self):
        return self.gain.value()


def _predict(m):
    return jnp.mean(bm.Simulator(m, dt=DT).run(1.0 * u.ms)["output"])


def test_fitter_messages():
    with pytest.raises(ValueError, match=r"backend must be one of \('grad', 'nevergrad', 'scipy'\), got 'adam'."):
        bm.Fitter(_Gain(), predict=_predict, backend="adam")
    with pytest.raises(ValueError, match=r"provide either loss_fn=callable\(model\)->\(loss, aux\) or predict"):
        bm.Fitter(_Gain())
    with pytest.raises(ValueError, match="pass loss_fn or predict, not both."):
        bm.Fitter(_Gain(), loss_fn=lambda m: (0.0, None), predict=_predict)
    with pytest.raises(TypeError, match=r"objective is the builder brainmass_eqx\.compat\.objectives\.fc_corr"):
        bm.Fitter(_Gain(), predict=_predict, objective=bm.objectives.fc_corr)
    with pytest.raises(TypeError, match=r"weighted\[0\]\[1\] is the builder .*fc_rmse"):
        bm.objectives.combine((1.0, bm.objectives.fc_rmse))
    with pytest.raises(TypeError, match="backend='grad' requires a braintools.optim optimizer"):
        bm.Fitter(_Gain(), {"lr": 1}, predict=_predict).fit(jnp.asarray(1.0), n_steps=1)
    with pytest.raises(ValueError, match="n_steps must be >= 1, got 0."):
        bm.Fitter(_Gain(), predict=_predict).fit(jnp.asarray(1.0), n_steps=0)
    with pytest.raises(ValueError, match="cannot derive search bounds for trainable parameter 'gain'"):
        bm.Fitter(_Gain(), predict=_predict, backend="scipy").fit(jnp.asarray(1.0), n_steps=1)


def test_scipy_backend_fits_inside_the_transform_bounds():
    m = _Gain(t=bs.nn.SigmoidT(0.5, 3.0))
    res = bm.Fitter(m, {"method": "Nelder-Mead"}, predict=_predict, backend="scipy").fit(jnp.asarray(2.0), n_steps=1)
    assert res.backend == "scipy" and len(res.history) == 1
    assert float(res.best_params["gain"]) == pytest.approx(2.0, abs=1e-3)
    assert float(m.gain.value()) == pytest.approx(2.0, abs=1e-3)


def test_fitting_a_network_gain_names_it_coupling_k():
    W = np.array([[0.0, 0.8], [0.8, 0.0]])

    def make(k):
        node = bm.HopfStep(2, a=0.3, w=0.3, init_x=lambda shape: jnp.broadcast_to(jnp.array([0.3, -0.2]), shape))
        return bm.Network(node, conn=W, coupled_var="x", k=k)

    def predict(net):
        return bm.Simulator(net, dt=DT).run(5.0 * u.ms, monitors=lambda m: m.node.x.value)["output"]

    target = predict(make(0.8))
    net = make(bs.nn.Param(0.3, fit=True))
    res = bm.Fitter(net, bt.optim.Adam(lr=0.05), predict=predict).fit(target, n_steps=3)
    assert list(res.best_params) == ["coupling.k"]
    assert res.history[-1] < res.history[0]
