"""Coupling kernels: brainmass 0.1.1's formulas, the fast summed path, user kernels, errors."""

from __future__ import annotations

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import load_reference
from jax.experimental import sparse as jsparse

import brainmass_eqx as bm
from brainmass_eqx import coupling as C
from brainmass_eqx.network import Network

N = 5
RNG = np.random.default_rng(7)
X = jnp.asarray(RNG.normal(size=(N, N)), jnp.float32)  # delayed[i, j]
Y = jnp.asarray(RNG.normal(size=N), jnp.float32)  # targets' current values
W = jnp.asarray(RNG.uniform(0, 1, (N, N)), jnp.float32)
K = 0.7


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# brainmass 0.1.1's kernel functions (coupling.py), written out in numpy.
_FORMULAS = {
    "diffusive": (C.Diffusive(), lambda x, y, w, k: k * (w * (x - y[:, None])).sum(-1)),
    "difference": (C.Difference(a=1.5), lambda x, y, w, k: k * 1.5 * (w * (x - y[:, None])).sum(-1)),
    "additive": (C.Additive(b=0.3), lambda x, y, w, k: k * (w * x).sum(-1) + 0.3),
    "sigmoidal": (
        C.Sigmoidal(a=1.2, b=0.1, slope=2.0, midpoint=0.5),
        lambda x, y, w, k: k * _sigmoid(2.0 * (1.2 * (w * x).sum(-1) + 0.1 - 0.5)),
    ),
    "tanh": (C.Tanh(scale=1.5), lambda x, y, w, k: k * np.tanh(1.5 * (w * x).sum(-1))),
    "sigmoidal_jansen_rit": (
        C.SigmoidalJansenRit(cmin=0.1, cmax=0.9, midpoint=0.2, r=1.3),
        lambda x, y, w, k: k * (w * (0.1 + 0.8 / (1.0 + np.exp(1.3 * (0.2 - x))))).sum(-1),
    ),
    # TVB's PreSigmoidal (static threshold), H (Q + tanh(G (P x_j - theta))) before the sum.
    "pre_sigmoidal": (
        C.PreSigmoidal(H=0.7, Q=0.8, G=3.0, P=1.2, theta=0.1),
        lambda x, y, w, k: k * (w * 0.7 * (0.8 + np.tanh(3.0 * (1.2 * x - 0.1)))).sum(-1),
    ),
    "kuramoto": (
        C.Kuramoto(alpha=0.3, normalize_by_n=True),
        lambda x, y, w, k: k / N * (w * np.sin(x - y[:, None] - 0.3)).sum(-1),
    ),
}


@pytest.mark.parametrize("name", list(_FORMULAS))
def test_kernel_formula(name):
    kernel, formula = _FORMULAS[name]
    expected = formula(np.asarray(X, np.float64), np.asarray(Y, np.float64), np.asarray(W, np.float64), K)
    np.testing.assert_allclose(np.asarray(kernel(X, Y, W, K)), expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(_FORMULAS))
def test_summed_path_equals_pairwise_evaluation(name):
    """What a Network computes from its history (pre, weighted sums, post) is the kernel."""
    kernel, _ = _FORMULAS[name]
    feats = kernel.pre(X)  # (F, N, N)
    summed = jnp.sum(W * feats, axis=-1)
    fast = kernel.post(summed, Y, jnp.sum(W, axis=-1), K)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(kernel(X, Y, W, K)), rtol=1e-5, atol=1e-6)


def _laplacian(w, normalize, eps=1e-12):
    d = w.sum(-1)
    if normalize is None:
        return w - np.diag(d)
    if normalize == "rw":
        return w / np.maximum(d, eps)[:, None] - np.eye(len(w))
    s = 1.0 / np.sqrt(np.maximum(d, eps))
    return w * s[:, None] * s[None, :] - np.eye(len(w))


@pytest.mark.parametrize("normalize", [None, "rw", "sym"])
@pytest.mark.parametrize("exp_weights", [False, True])
def test_laplacian_is_k_times_L_applied_to_delayed_values(normalize, exp_weights):
    w = np.asarray(W, np.float64) * (1 - np.eye(N))
    wp = np.exp(w) * w if exp_weights else w
    L = _laplacian(wp, normalize)
    # The diagonal term reads the target at zero delay: its current value.
    x = np.asarray(X, np.float64).copy()
    np.fill_diagonal(x, np.asarray(Y, np.float64))
    expected = K * (L * x).sum(-1)
    kernel = C.Laplacian(normalize=normalize, exp_weights=exp_weights)
    weff = kernel.effective_weights(jnp.asarray(w, jnp.float32))
    got = kernel(jnp.asarray(x, jnp.float32), Y, weff, K)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_laplacian_matrix_matches_brainmass_reference():
    ref = load_reference("network/hopf_laplacian.npz")
    w = np.asarray(ref["conn"], np.float32) * (1 - np.eye(len(ref["conn"]), dtype=np.float32))
    kernel = C.make_coupling("laplacian")
    weff = np.asarray(kernel.effective_weights(jnp.asarray(w)))
    np.testing.assert_allclose(weff - np.diag(weff.sum(-1)), ref["coupling_matrix"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("normalize", ["rw", "sym"])
def test_laplacian_isolated_node_keeps_brainmass_values_with_a_finite_gradient(normalize):
    # Region 0 has no connections. Its degree was floored at eps = 1e-12: the gradient of a
    # network loss w.r.t. its row of weights was 1/eps-sized (7.6e10 with 'rw', 7e4 with
    # 'sym', against 0.02 and 0.04 for the other weights); the row has no derivative there.
    n = 4
    w = RNG.uniform(0.2, 1.0, (n, n)).astype(np.float32)
    w = (w + w.T) / 2 * (1 - np.eye(n, dtype=np.float32))
    w[0], w[:, 0] = 0.0, 0.0
    kernel = C.Laplacian(normalize=normalize)
    # The values are brainmass's, bit for bit (its laplacian_connectivity: the degree
    # floored at eps), with JAX and with NumPy (a host plan's path).
    for xp in (jnp, np):
        wx = xp.asarray(w)
        d = xp.maximum(xp.sum(wx, axis=-1), xp.asarray(1e-12, wx.dtype))
        inv = 1.0 / xp.sqrt(d)
        expected = wx / d[:, None] if normalize == "rw" else wx * inv[:, None] * inv[None, :]
        np.testing.assert_array_equal(np.asarray(kernel.effective_weights(wx)), np.asarray(expected))

    def loss(conn):
        net = Network(bm.Hopf(n, a=0.2, w=0.3), conn, coupling=kernel, k=0.5)
        y0 = {"x": jnp.arange(1.0, n + 1) / n, "y": jnp.zeros(n)}
        return jnp.sum(bm.simulate(net, 2.0, dt=0.1, y0=y0)["x"][-1] ** 2)

    g = np.asarray(jax.grad(loss)(jnp.asarray(w)))
    assert np.all(np.isfinite(g)) and np.abs(g).max() < 1.0
    assert np.all(g[0] == 0.0)  # the isolated row: no derivative, 0
    assert np.abs(g[1:, 1:]).max() > 1e-3  # the others' are the plain ones


@pytest.mark.parametrize("normalize", [None, "rw"])
def test_laplacian_reads_its_diagonal_through_the_history_as_the_sum_it_is(normalize):
    # k L X + b with every term a delayed read, the diagonal at zero delay: the same run as
    # an additive coupling over the matrix L itself. On the first step of a network given a
    # history every read, the diagonal's too, is h(0): the core's Laplacian read the target's
    # initial state there instead (0.3 against the neighbours' 0.1): 0.022 off at 1 ms (0.010 with "rw").
    n = 4
    w = RNG.uniform(0.2, 1.0, (n, n)).astype(np.float32) * (1 - np.eye(n, dtype=np.float32))
    delays = RNG.uniform(0.2, 0.6, (n, n))
    kernel = C.Laplacian(normalize=normalize, b=0.05)
    weff = np.asarray(kernel.effective_weights(w))
    L = weff - np.diag(weff.sum(-1) if normalize is None else np.ones(n, np.float32))
    y0 = {"x": jnp.full(n, 0.3), "y": jnp.zeros(n)}
    first = []
    for history in ({"x": 0.1}, lambda t: {"x": jnp.full(n, 0.1) + t}):
        runs = [
            bm.simulate(Network(bm.Hopf(n, a=0.2, w=0.3), conn, coupling=c, k=0.5, delays=delays, history=history,
                                self_connection=True), 1.0, dt=0.1, y0=y0)["x"]
            for conn, c in ((w, kernel), (L, C.Additive(b=0.05)))
        ]  # fmt: skip
        np.testing.assert_allclose(np.asarray(runs[0]), np.asarray(runs[1]), rtol=1e-5, atol=1e-6)
        first.append(runs[0][0])
    free = bm.simulate(Network(bm.Hopf(n, a=0.2, w=0.3), w, coupling=C.Additive(b=0.05), k=0.0), 0.1, dt=0.1, y0=y0)
    # A uniform past, the diagonal's read included: only b drives the first step.
    np.testing.assert_allclose(np.asarray(first[0]), np.asarray(free["x"][0]), rtol=1e-6)


def test_make_coupling_names_and_errors():
    assert isinstance(C.make_coupling("diffusive"), C.Diffusive)
    assert C.make_coupling("laplacian").exp_weights  # brainmass's LaplacianConnParam
    with pytest.raises(ValueError, match="coupling must be one of 'diffusive', 'additive'"):
        C.make_coupling("foo")
    with pytest.raises(ValueError, match=r"got 'diffusve' \(did you mean 'diffusive'\?\)"):
        C.make_coupling("diffusve")
    with pytest.raises(ValueError, match=r"\(did you mean 'sigmoidal_jansen_rit'\?\)"):
        C.make_coupling("Sigmoidal Jansen Rit")
    with pytest.raises(TypeError, match="pass an instance, e.g. coupling=Tanh()"):
        C.make_coupling(C.Tanh)
    with pytest.raises(ValueError, match="Laplacian\\(normalize='x'\\) is unknown"):
        C.Laplacian(normalize="x")
    with pytest.raises(ValueError, match="'scale' must be finite"):
        C.Tanh(scale=np.nan)


def test_symmetric_laplacian_refuses_a_sparse_conn_when_the_network_is_built():
    """It raised only when the run started, without saying what to do."""
    w = np.ones((N, N)) - np.eye(N)
    with pytest.raises(ValueError, match=r"normalize='sym'\) needs a dense .* pass conn as a dense array \(conn.todense\(\)\)"):
        Network(bm.Hopf(N), jsparse.BCOO.fromdense(w), coupling=C.Laplacian(normalize="sym"))
    Network(bm.Hopf(N), jsparse.BCOO.fromdense(w), coupling=C.Laplacian(normalize="rw"))
    # A row with all N sources (its diagonal kept) made the lists square: taken as (N, N),
    # silently wrong (19040 off a dense run of values below 1).
    full = np.zeros((N, N), np.float32)
    full[0] = 0.5
    full[1, 2] = 0.3
    with pytest.raises(ValueError, match="Laplacian.normalize='sym'. needs a dense"):
        Network(bm.Hopf(N), jsparse.BCOO.fromdense(full), coupling=C.Laplacian(normalize="sym"), self_connection=True)


class MyDiffusive(C.AbstractCoupling):
    """A user kernel: one method, evaluated per pair."""

    def __call__(self, delayed, current, weights, k):
        return k * jnp.sum(weights * (delayed - current[:, None]), axis=-1)


def test_user_kernel_in_a_network_equals_builtin():
    node = bm.Hopf(N, a=0.2, w=0.3, init_x=np.linspace(-0.3, 0.3, N), init_y=0.1)
    dist = RNG.uniform(5, 30, (N, N))
    runs = [
        bm.simulate(Network(node, W, distance=dist, speed=10.0, k=K, coupling=c, self_connection=False), 20.0, dt=0.1)["x"]
        for c in (MyDiffusive(), C.Diffusive())
    ]
    np.testing.assert_allclose(np.asarray(runs[0]), np.asarray(runs[1]), rtol=1e-5, atol=1e-6)


def test_kernel_parameters_are_trainable():
    node = bm.Hopf(N, a=0.2, w=0.3, init_x=np.linspace(-0.3, 0.3, N), init_y=0.1)
    dist = RNG.uniform(5, 30, (N, N))

    def loss(slope):
        net = Network(node, W, distance=dist, speed=10.0, k=K, coupling=C.Sigmoidal(slope=slope, midpoint=0.2),
                      self_connection=False)
        return jnp.mean(bm.simulate(net, 10.0, dt=0.1, monitors="x")["x"] ** 2)

    g = jax.grad(loss)(1.0)
    fd = (jax.jit(loss)(1.05) - jax.jit(loss)(0.95)) / 0.1
    assert abs(float(g)) > 1e-6
    np.testing.assert_allclose(float(g), float(fd), rtol=3e-2)
    net = Network(node, W, coupling=C.Tanh(scale=bm.Param(2.0)), self_connection=False)
    trainable, _ = bm.partition_trainable(net)
    assert len(jax.tree_util.tree_leaves(trainable)) == 1


# TVB's PreSigmoidal. TVB (tvb-library) is not installed here: the references are computed
# by hand in float64 from the formula TVB documents, H (Q + tanh(G (P x_j - theta))) summed
# with the weights, and its defaults H = 0.5, Q = 1, G = 60, P = 1, theta = 0.5 (TVB's own
# code sums over the wrong axis, see the kernel's docstring: it is not the reference).
def _pre_sigmoidal(x, H=0.5, Q=1.0, G=60.0, P=1.0, theta=0.5):
    return H * (Q + np.tanh(G * (P * x - theta)))


def test_pre_sigmoidal_has_tvbs_defaults_and_name():
    kernel = C.make_coupling("pre_sigmoidal")
    assert isinstance(kernel, C.PreSigmoidal)
    assert [float(getattr(kernel, p)) for p in ("H", "Q", "G", "P", "theta")] == [0.5, 1.0, 60.0, 1.0, 0.5]
    # Hand-computed: at the threshold a source gives H Q = 0.5; 0.01 above it,
    # 0.5 (1 + tanh(0.6)) = 0.76852478...; far below 0, far above 2 H = 1.
    x = jnp.asarray([0.5, 0.51, -1.0, 2.0])
    np.testing.assert_allclose(np.asarray(kernel.pre(x)[0]), [0.5, 0.7685247834990177, 0.0, 1.0], rtol=1e-6, atol=1e-7)
    # Delayed values near the threshold, where the steep default tanh is not saturated.
    xd = 0.5 + 0.02 * np.asarray(X, np.float64)
    expected = K * (np.asarray(W, np.float64) * _pre_sigmoidal(xd)).sum(-1)
    np.testing.assert_allclose(np.asarray(kernel(jnp.asarray(xd, jnp.float32), Y, W, K)), expected, rtol=1e-5)
    # TVB's class name: was answered "no kernel here"; now the kernel, and TVB's default
    # dynamic threshold, which it is not.
    with pytest.raises(ValueError, match=r"TVB's PreSigmoidal is coupling=PreSigmoidal\(H=H, Q=Q, G=G, P=P, theta=theta\) "
                                         r"with k=1, or 'pre_sigmoidal' .*dynamic=True, a threshold read from a second"):
        C.make_coupling("PreSigmoidal")
    with pytest.raises(TypeError, match=r"'dynamic' \(it is not a parameter of this PreSigmoidal: its threshold is the "
                                        r"constant theta, TVB's dynamic=False \(drop the keyword\)"):
        C.PreSigmoidal(dynamic=True)
    with pytest.raises(ValueError, match="'G' must be finite"):
        C.PreSigmoidal(G=np.inf)


# A delayed Linear network: x_i' = gamma x_i + k sum_j W_ij f(x_j(t - tau_ij)), Euler steps,
# delays of whole steps (so that 'nearest' reads recorded states exactly), constant past.
_PS_DT, _PS_STEPS, _PS_GAMMA, _PS_K = 0.1, 60, -0.5, 0.4
_PS_W = np.asarray(W, np.float64) * (1 - np.eye(N))
_PS_D = RNG.integers(1, 25, (N, N)) * (1 - np.eye(N, dtype=int))  # delays in steps, up to 2.4 ms
_PS_X0 = np.linspace(0.3, 0.7, N)


def _pre_sigmoidal_run(G, theta):
    node = bm.Linear(N, gamma=_PS_GAMMA, init_x=_PS_X0)
    net = Network(node, _PS_W, delays=_PS_D * _PS_DT, interpolation="nearest", k=_PS_K,
                  coupling=C.PreSigmoidal(G=G, theta=theta), self_connection=False)
    return bm.simulate(net, _PS_STEPS * _PS_DT, dt=_PS_DT, solver=dfx.Euler(), monitors="x")["x"]


_pre_sigmoidal_run_jit = jax.jit(_pre_sigmoidal_run)


def _pre_sigmoidal_run_numpy(G, theta):
    xs = [_PS_X0]
    for n in range(_PS_STEPS):
        past = np.asarray(xs)[np.maximum(n - _PS_D, 0), np.arange(N)[None, :]]  # past[i, j] = x_j(t_n - tau_ij)
        drive = _PS_K * (_PS_W * _pre_sigmoidal(past, G=G, theta=theta)).sum(-1)
        xs.append(xs[-1] + _PS_DT * (_PS_GAMMA * xs[-1] + drive))
    return np.asarray(xs[1:])  # simulate records after each step


def test_pre_sigmoidal_network_with_delays_and_vmap_match_a_hand_computed_run(x64):
    Gs, thetas = jnp.asarray([3.0, 60.0]), jnp.asarray([0.5, 0.45])
    runs = jax.vmap(_pre_sigmoidal_run_jit)(Gs, thetas)
    for b in range(2):
        expected = _pre_sigmoidal_run_numpy(float(Gs[b]), float(thetas[b]))
        assert np.ptp(expected[-1]) > 0.05  # the regions differ: the delays and weights matter
        np.testing.assert_allclose(np.asarray(runs[b]), expected, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(_pre_sigmoidal_run_jit(Gs[b], thetas[b])), expected, rtol=1e-10, atol=1e-12)


def test_pre_sigmoidal_gradients_in_G_and_theta_match_finite_differences(x64):
    @jax.jit
    def loss(G, theta):
        return jnp.mean(_pre_sigmoidal_run(G, theta) ** 2)

    g = jax.grad(loss, argnums=(0, 1))(4.0, 0.5)
    h = 1e-6
    fd = ((loss(4.0 + h, 0.5) - loss(4.0 - h, 0.5)) / (2 * h), (loss(4.0, 0.5 + h) - loss(4.0, 0.5 - h)) / (2 * h))
    assert min(abs(float(v)) for v in g) > 1e-4
    np.testing.assert_allclose([float(v) for v in g], [float(v) for v in fd], rtol=1e-6)
    # As Params they are the network's trainable leaves.
    net = Network(bm.Linear(N), _PS_W, coupling=C.PreSigmoidal(G=bm.Param(4.0), theta=bm.Param(0.5)), self_connection=False)
    trainable, _ = bm.partition_trainable(net)
    assert len(jax.tree_util.tree_leaves(trainable)) == 2


def test_kernel_parameters_with_units_are_converted_or_refused():
    # A kernel does not know its node: a Quantity offset was taken as its numbers in its own
    # unit (Additive(b=Quantity(1, 'mV')) gave b = 1 to a dimensionless Hopf input; a uA
    # offset against a nA input would be 1000x off), a Param's unit likewise.
    import unxt

    message = r"coupling parameter 'b' is given in 'mV': a kernel's parameters are plain numbers"
    with pytest.raises(bm.UnitError, match=message):
        C.Additive(b=unxt.Quantity(1.0, "mV"))
    with pytest.raises(bm.UnitError, match=message):
        C.Laplacian(b=bm.Param(unxt.Quantity(1.0, "mV")))
    # Dimensionless units convert, as does a phase lag in any angle unit.
    assert float(C.Tanh(scale=unxt.Quantity(2.0, "%")).scale) == pytest.approx(0.02)
    assert float(C.Kuramoto(alpha=unxt.Quantity(90.0, "deg")).alpha) == pytest.approx(np.pi / 2)
    assert float(C.Kuramoto(alpha=bm.Param(90.0, unit="deg")).alpha.value) == pytest.approx(np.pi / 2)
    with pytest.raises(ValueError, match=r"'alpha' has unit 'mV' \(electrical potential\), but it must be an angle"):
        C.Kuramoto(alpha=unxt.Quantity(1.0, "mV"))
