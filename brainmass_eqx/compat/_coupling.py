"""brainmass's coupling kernels, coupling modules, graph Laplacian and small utilities.

The kernels (`diffusive_coupling`, `additive_coupling`, `sigmoidal_coupling`,
`hyperbolic_tangent_coupling`, `sigmoidal_jansen_rit_coupling`) take brainmass's
arguments: ``x`` is the delayed source as seen by each target, shape ``(..., N_out,
N_in)`` or flattened, or a callable returning it; they keep brainmass's shape checks
and messages. The coupling *modules* (`DiffusiveCoupling`, ...) hold their parameters as
`Param` objects, read ``x``/``y`` from callables, and are what `Network` exposes as
``net.coupling``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import brainunit as u
from .brainstate.nn import IdentityT, Module, Param, call_order, init_maybe_prefetch

__all__ = [
    "diffusive_coupling",
    "additive_coupling",
    "sigmoidal_coupling",
    "hyperbolic_tangent_coupling",
    "sigmoidal_jansen_rit_coupling",
    "laplacian_connectivity",
    "LaplacianConnParam",
    "DiffusiveCoupling",
    "AdditiveCoupling",
    "SigmoidalCoupling",
    "HyperbolicTangentCoupling",
    "SigmoidalJansenRitCoupling",
    "sys2nd",
    "sigmoid",
    "bounded_input",
    "process_sequence",
    "delay_index",
    "set_module_as",
]


def _value(x: Any) -> Any:
    x = x() if callable(x) and not isinstance(x, (jax.Array, np.ndarray, u.Quantity)) else x
    return x.value() if isinstance(x, Param) else x


def _as_matrix(x_val: Any, n_out: int, n_in: int):
    shape = jnp.shape(u.get_magnitude(x_val))
    if len(shape) >= 2 and tuple(shape[-2:]) == (n_out, n_in):
        return x_val
    if len(shape) >= 1 and shape[-1] == n_out * n_in:
        return _reshape(x_val, tuple(shape[:-1]) + (n_out, n_in))
    raise ValueError(
        f"x has incompatible shape {tuple(shape)}; expected (..., {n_out}, {n_in}) or flattened (..., {n_out * n_in})."
    )


def _reshape(x, shape):
    if isinstance(x, u.Quantity):
        return u.Quantity(jnp.reshape(x.value, shape), x.unit)
    return jnp.reshape(x, shape)


def _square_conn(conn):
    conn = _value(conn)
    ndim = jnp.ndim(u.get_magnitude(conn))
    if ndim == 2:
        n_out, n_in = jnp.shape(u.get_magnitude(conn))
        return conn, n_out, n_in
    if ndim == 1:
        size = int(np.prod(jnp.shape(u.get_magnitude(conn))))
        n = int(round(float(np.sqrt(size))))
        if n * n != size:
            raise ValueError(
                f"Flattened conn length {size} is not a perfect square; these couplings have no target to "
                "infer N_out, so a 1-D conn must be square (N_out == N_in). Pass a 2-D (N_out, N_in) conn for "
                "non-square connectivity."
            )
        return _reshape(conn, (n, n)), n, n
    raise ValueError(f"conn must be 1-D (square-flattened) or 2-D; got {ndim}-D.")


def diffusive_coupling(delayed_x: Callable | Any, y: Callable | Any, conn: Any, k: Any):
    r"""``k * sum_j conn[i, j] * (x[i, j] - y[i])`` (leading dimensions broadcast)."""
    y_val = _value(y)
    y_shape = jnp.shape(u.get_magnitude(y_val))
    if len(y_shape) < 1:
        raise ValueError(f"y must have at least 1 dimension; got shape {tuple(y_shape)}")
    n_out = y_shape[-1]
    x_val = _value(delayed_x)
    if jnp.ndim(u.get_magnitude(x_val)) < 1:
        raise ValueError(f"x must have at least 1 dimension; got shape {jnp.shape(u.get_magnitude(x_val))}")
    conn = _value(conn)
    cshape = jnp.shape(u.get_magnitude(conn))
    if len(cshape) == 1:
        if cshape[0] % n_out != 0:
            raise ValueError(f"Flattened connection length {cshape[0]} is not divisible by N_out={n_out}.")
        n_in = cshape[0] // n_out
        conn = _reshape(conn, (n_out, n_in))
    else:
        if cshape[0] != n_out:
            raise ValueError(f"Connection rows ({cshape[0]}) must match y size ({n_out}).")
        n_in = cshape[1]
    x_mat = _as_matrix(x_val, n_out, n_in)
    y_exp = u.math.expand_dims(y_val, axis=-1)
    diff = (x_mat - y_exp) * conn
    return _value(k) * u.math.sum(diff, axis=-1)


def additive_coupling(delayed_x: Callable | Any, conn: Any, k: Any = 1.0, b: Any = 0.0):
    r"""``k * sum_j conn[i, j] * x[i, j] + b``."""
    conn = _value(conn)
    if jnp.ndim(u.get_magnitude(conn)) != 2:
        raise ValueError("Only support 2D connection matrix")
    n_out, n_in = jnp.shape(u.get_magnitude(conn))
    x_mat = _as_matrix(_value(delayed_x), n_out, n_in)
    return _value(k) * u.math.sum(conn * x_mat, axis=-1) + _value(b)


def _net(delayed_x, conn):
    conn2d, n_out, n_in = _square_conn(conn)
    x_val = _value(delayed_x)
    if jnp.ndim(u.get_magnitude(x_val)) < 1:
        raise ValueError(f"x must have at least 1 dimension; got shape {jnp.shape(u.get_magnitude(x_val))}")
    x_mat = _as_matrix(x_val, n_out, n_in)
    return conn2d, x_mat


def sigmoidal_coupling(delayed_x, conn, k=1.0, a=1.0, b=0.0, slope=1.0, midpoint=0.0):
    r"""``k * sigmoid(slope * (a * sum_j conn[i, j] x[i, j] + b - midpoint))`` (units stripped)."""
    conn2d, x_mat = _net(delayed_x, conn)
    net = u.get_magnitude(u.math.sum(conn2d * x_mat, axis=-1))
    return _value(k) * jax.nn.sigmoid(_value(slope) * (_value(a) * net + _value(b) - _value(midpoint)))


def hyperbolic_tangent_coupling(delayed_x, conn, k=0.5, scale=2.0):
    r"""``k * tanh(scale * sum_j conn[i, j] x[i, j])`` (units stripped)."""
    conn2d, x_mat = _net(delayed_x, conn)
    net = u.get_magnitude(u.math.sum(conn2d * x_mat, axis=-1))
    return _value(k) * jnp.tanh(_value(scale) * net)


def sigmoidal_jansen_rit_coupling(delayed_x, conn, k=1.0, cmin=0.0, cmax=0.005, midpoint=6.0, r=0.56):
    r"""``k * sum_j conn[i, j] * (cmin + (cmax - cmin) / (1 + exp(r (midpoint - x[i, j]))))``."""
    conn2d, x_mat = _net(delayed_x, conn)
    x = u.get_magnitude(x_mat)
    cmin, cmax = _value(cmin), _value(cmax)
    rate = cmin + (cmax - cmin) / (1.0 + jnp.exp(_value(r) * (_value(midpoint) - x)))
    return _value(k) * jnp.sum(u.get_magnitude(conn2d) * rate, axis=-1)


def laplacian_connectivity(W, *, normalize=None, eps: float = 1e-12, return_diag: bool = False):
    r"""Negative graph Laplacian of ``W``: ``W - diag(d)`` (``None``), ``D^-1 W - I`` (``'rw'``) or
    ``D^-1/2 W D^-1/2 - I`` (``'sym'``), with ``d`` the row sums (floored at ``eps``)."""
    W = u.get_magnitude(_value(W))
    # Host (NumPy) input stays on the host, in its own precision, as with brainunit.
    xp = np if isinstance(W, np.ndarray) else jnp
    W = xp.asarray(W)
    d = xp.sum(W, axis=-1)
    if normalize is None:
        L = W - xp.diag(d)
    elif normalize == "rw":
        L = W / xp.maximum(d, eps)[:, None] - xp.eye(W.shape[-1], dtype=W.dtype)
    elif normalize == "sym":
        s = 1.0 / xp.sqrt(xp.maximum(d, eps))
        L = W * s[:, None] * s[None, :] - xp.eye(W.shape[-1], dtype=W.dtype)
    else:
        raise ValueError(f"Unknown normalize={normalize}, only None, 'rw', 'sym' are supported.")
    return (L, d) if return_diag else L


class LaplacianConnParam(Param):
    """A trainable connectivity whose value is ``laplacian_connectivity(exp(raw) * W (* mask))``."""

    __module__ = "brainmass"

    def __init__(self, W, t=None, reg=None, mask=None, fit=True, normalize=None, eps=1e-12, return_diag=False):
        W = jnp.asarray(u.get_magnitude(W))
        if mask is not None and jnp.shape(mask) != W.shape:
            raise ValueError(f"Mask shape {jnp.shape(mask)} must match W shape {W.shape}.")
        self.original_W = W
        self.mask = mask
        self.normalize = normalize
        self.eps = eps
        self.return_diag = return_diag
        super().__init__(W, t=IdentityT() if t is None else t, reg=reg, fit=fit, precompute=self._laplacian)

    def _laplacian(self, raw_value):
        weight = jnp.exp(raw_value) * self.original_W
        if self.mask is not None:
            weight = weight * self.mask
        return laplacian_connectivity(weight, normalize=self.normalize, eps=self.eps, return_diag=self.return_diag)


def _check_source(x):
    if not callable(x):
        raise TypeError(f"The argument must be a Prefetch or Callable, got {x}")
    return x


class _Coupling(Module):
    __module__ = "brainmass"
    kernel: Callable = None
    names: tuple = ()
    # the connection shapes the kernel reads: (N_out, N_in), or flattened N_out * N_in
    conn_ndims: tuple = (1, 2)

    def __init__(self, x, conn, **params):
        super().__init__()
        self.x = _check_source(x)
        self.conn = Param.init(conn)
        # checked here, as brainmass does, not at the first call inside a run
        ndim = jnp.ndim(u.get_magnitude(self.conn.value()))
        if ndim not in self.conn_ndims:
            shapes = " or ".join({1: "1-D (square-flattened)", 2: "2-D (N_out, N_in)"}[d] for d in self.conn_ndims)
            raise ValueError(f"{type(self).__name__}: conn must be {shapes}; got a {ndim}-D array.")
        for name, value in params.items():
            setattr(self, name, Param.init(value))

    def _params(self):
        return {n: getattr(self, n).value() for n in self.names}

    @call_order(2)
    def init_state(self, *args, **kwargs):
        # After the nodes: size the delay buffers behind prefetch_delay reads.
        init_maybe_prefetch(self.x, *args, **kwargs)
        init_maybe_prefetch(getattr(self, "y", None), *args, **kwargs)

    def update(self, *args, **kwargs):
        return type(self).kernel(self.x, self.conn.value(), **self._params())

    def coupling_kwargs(self) -> dict:
        """The kernel's shape parameters (everything but the gain ``k`` and ``conn``)."""
        return {n: getattr(self, n).value() for n in self.names if n != "k"}


class DiffusiveCoupling(_Coupling):
    """``k * sum_j conn[i, j] (x[i, j] - y[i])`` between callables ``x`` (delayed source) and ``y``."""

    names = ("k",)

    def __init__(self, x, y, conn, k=1.0):
        super().__init__(x, conn, k=k)
        self.y = _check_source(y)

    def update(self, *args, **kwargs):
        return diffusive_coupling(self.x, self.y, self.conn.value(), self.k.value())


class AdditiveCoupling(_Coupling):
    """``k * sum_j conn[i, j] x[i, j] + b``."""

    names = ("k", "b")
    kernel = staticmethod(additive_coupling)
    conn_ndims = (2,)  # additive_coupling reads conn.shape as (N_out, N_in)

    def __init__(self, x, conn, k=1.0, b=0.0):
        super().__init__(x, conn, k=k, b=b)


class SigmoidalCoupling(_Coupling):
    """``k * sigmoid(slope * (a * net + b - midpoint))``."""

    names = ("k", "a", "b", "slope", "midpoint")
    kernel = staticmethod(sigmoidal_coupling)

    def __init__(self, x, conn, k=1.0, a=1.0, b=0.0, slope=1.0, midpoint=0.0):
        super().__init__(x, conn, k=k, a=a, b=b, slope=slope, midpoint=midpoint)


class HyperbolicTangentCoupling(_Coupling):
    """``k * tanh(scale * net)``."""

    names = ("k", "scale")
    kernel = staticmethod(hyperbolic_tangent_coupling)

    def __init__(self, x, conn, k=0.5, scale=2.0):
        super().__init__(x, conn, k=k, scale=scale)


class SigmoidalJansenRitCoupling(_Coupling):
    """``k * sum_j conn[i, j] * sigmoid_JR(x[i, j])``."""

    names = ("k", "cmin", "cmax", "midpoint", "r")
    kernel = staticmethod(sigmoidal_jansen_rit_coupling)

    def __init__(self, x, conn, k=1.0, cmin=0.0, cmax=0.005, midpoint=6.0, r=0.56):
        super().__init__(x, conn, k=k, cmin=cmin, cmax=cmax, midpoint=midpoint, r=r)


# -- utilities ------------------------------------------------------------------------------------


def sys2nd(A, a, u, x, v):  # noqa: F811 (brainmass's argument name shadows the module)
    r"""Acceleration of a second-order synapse: ``A a u - 2 a v - a^2 x``."""
    from ..models._math import second_order_synapse

    return second_order_synapse(A, a, u, x, v)


def sigmoid(x, vmax, v0, r):
    r"""``vmax * sigmoid(r (x - v0))``."""
    from ..models._math import rate_sigmoid

    return rate_sigmoid(u.maybe_decimal(x), vmax, v0, r)


def bounded_input(x, bound: float = 500.0):
    """``bound * tanh(x / bound)``."""
    return bound * jnp.tanh(x / bound)


def process_sequence(data, mode: str | Callable = "stack"):
    """Reduce every leaf of ``data`` along axis 0: ``'stack'``, ``'last'``, ``'first'``,
    ``'avg'``/``'mean'``, ``'max'``, ``'min'`` or a callable."""
    msg = (
        f"Unknown mode: {mode}. Supported modes: 'stack', 'last', 'first', 'avg', 'mean', 'max', 'min', or callable."
    )
    fns = {
        "stack": lambda x: x, "last": lambda x: x[-1], "first": lambda x: x[0], "avg": lambda x: x.mean(axis=0),
        "mean": lambda x: x.mean(axis=0), "max": lambda x: x.max(axis=0), "min": lambda x: x.min(axis=0),
    }
    if callable(mode):
        fn = mode
    elif isinstance(mode, str) and mode in fns:
        fn = fns[mode]
    else:
        raise ValueError(msg)
    return jax.tree_util.tree_map(fn, data)


def delay_index(n_hidden: int):
    """An ``(n, n)`` int array whose every row is ``arange(n)``."""
    return np.tile(np.arange(n_hidden)[None, :], (n_hidden, 1))


def set_module_as(module: str):
    """Decorator setting ``__module__`` (brainmass's ``utils.set_module_as``)."""

    def decorate(obj):
        obj.__module__ = module
        return obj

    return decorate
