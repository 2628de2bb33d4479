r"""Coupling kernels: how delayed source activity becomes a node's coupling current.

Notation (per target region $i$): $X_{ij} = x_j(t - \tau_{ij})$ the delayed value of
source $j$, $y_i = x_i(t)$ the target's own current value, $W$ the (effective) connection
weights, $k$ the network's global gain (TVB's $G$).

Most kernels are *summed*: the current depends on the sources only through
$S_i = \sum_j W_{ij}\, \phi(X_{ij})$ for a per-source transform $\phi$ (`pre`), and is
then $c_i = \mathrm{post}(S_i, y_i)$. A `Network` computes such sums straight from its
delay history (one fused gather per step, fast under ``jax.vmap``), storing $\phi(x)$
rather than $x$; with linear interpolation of the delays it therefore interpolates
$\phi(x)$ (the same second-order accuracy; identical for nearest/ceil delays and for
linear $\phi$).

| kernel | current to region $i$ |
|---|---|
| `Diffusive` | $k \sum_j W_{ij} (X_{ij} - y_i)$ |
| `Difference` | $k\, a \sum_j W_{ij} (X_{ij} - y_i)$ (TVB ``Difference``) |
| `Additive` | $k \sum_j W_{ij} X_{ij} + b$ |
| `Laplacian` | $k \sum_j L_{ij} X_{ij} + b$ with $L = W_n - \mathrm{diag}(c)$ (below) |
| `Sigmoidal` | $k\, \sigma(\mathrm{slope}\,(a S_i + b - \mathrm{midpoint}))$, $S_i = \sum_j W_{ij} X_{ij}$ |
| `Tanh` | $k \tanh(\mathrm{scale}\, S_i)$ |
| `SigmoidalJansenRit` | $k \sum_j W_{ij} [c_{min} + (c_{max} - c_{min})\, \sigma(r (X_{ij} - \mathrm{midpoint}))]$ |
| `PreSigmoidal` | $k \sum_j W_{ij}\, H [Q + \tanh(G (P X_{ij} - \theta))]$ (TVB ``PreSigmoidal``, static threshold) |
| `Kuramoto` | $k\, g \sum_j W_{ij} \sin(X_{ij} - y_i - \alpha)$, $g = 1/N$ if ``normalize_by_n`` |

These are brainmass 0.1.1's formulas (its ``coupling=`` strings map to these classes, with
the same default shape parameters); `Difference` and `PreSigmoidal` are TVB's kernels,
which brainmass lacks (`PreSigmoidal` with TVB's defaults). Every parameter is a field:
set it at construction, pass a `Param` to fit it. Parameters are plain numbers in the node's
units (a kernel does not know its node, so a Quantity with a dimension is refused), except
`Kuramoto`'s phase lag, which takes any angle unit.

**Writing a kernel.** Subclass `AbstractCoupling` and implement ``__call__(delayed,
current, weights, k)`` (any function of the delayed values per pair), or, for a summed
kernel, subclass `AbstractSummedCoupling` and implement `post` (and `pre` if the sources
are transformed before the sum).
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._checks import check_keywords, closest_name, keyword_names
from ._names import module_getattr
from ._param import Param, read
from ._text import Readable
from ._units import UnitError, check_real, is_quantity, to_canonical, unxt_module

__all__ = [
    "AbstractCoupling",
    "AbstractSummedCoupling",
    "Diffusive",
    "Difference",
    "Additive",
    "Laplacian",
    "Sigmoidal",
    "Tanh",
    "SigmoidalJansenRit",
    "PreSigmoidal",
    "Kuramoto",
    "COUPLINGS",
    "make_coupling",
]


# TVB's Sigmoidal: what it computes, and how it is written here.
_TVB_SIGMOIDAL = (
    "TVB's Sigmoidal(cmin, cmax, midpoint, a, sigma): cmin + (cmax - cmin) / (1 + exp(-a (S - midpoint) / sigma)) "
    "of the sum S",
    "Sigmoidal(slope=a / sigma, midpoint=midpoint) with the Network's k=cmax - cmin and the constant input "
    "simulate(..., inputs={target: cmin})",
)

# TVB's kernels (tvb.simulator.coupling), as written here.
_TVB_COUPLINGS = {
    "Linear": "Additive(b=b) with the Network's k=a (TVB's Linear(a, b): a sum_j W_ij x_j + b)",
    "Scaling": "Additive() with the Network's k=a (TVB's Scaling(a): a sum_j W_ij x_j)",
    "Sigmoidal": f"{_TVB_SIGMOIDAL[1]} ({_TVB_SIGMOIDAL[0]})",
    "HyperbolicTangent": (
        "SigmoidalJansenRit(cmin=0, cmax=2 a, midpoint=midpoint / b, r=2 b / sigma) with k=1 (TVB's "
        "HyperbolicTangent(a, b, midpoint, sigma): a (1 + tanh((b x_j - midpoint) / sigma)) before the sum)"
    ),
    "SigmoidalJansenRit": (
        "SigmoidalJansenRit(cmax=5.0) with coupled_var='eeg', target='E' and the Network's k=a (TVB's "
        "SigmoidalJansenRit(a); rates are in Hz here: its cmax 0.005 /ms is 5.0)"
    ),
    "Kuramoto": "Kuramoto() with the Network's k=a (TVB's Kuramoto(a))",
    "Difference": "Difference(a=a) (TVB's Difference(a))",
    "PreSigmoidal": (
        "PreSigmoidal(H=H, Q=Q, G=G, P=P, theta=theta) with k=1, or 'pre_sigmoidal' for TVB's defaults (TVB's "
        "PreSigmoidal(dynamic=False): H (Q + tanh(G (P x_j - theta))) before the sum; TVB's default dynamic=True, a "
        "threshold read from a second coupled variable, has no kernel)"
    ),
}


def _scalar_field(value, name: str, canonical: str = ""):
    """A kernel parameter: a finite real array, or a `Param`, in the ``canonical`` unit
    (``'rad'`` for a phase; ``''`` for the rest, plain numbers in the node's units)."""
    unit = value.unit if isinstance(value, Param) else str(unxt_module().unit_of(value)) if is_quantity(value) else ""
    if unit:
        unxt = unxt_module()
        if canonical == "" and unxt.unit(unit).physical_type != unxt.unit("").physical_type:
            # The kernel does not know the node, so it cannot convert: an offset in uA against
            # a node input in nA was taken as its numbers, 1000x off.
            raise UnitError(
                f"coupling parameter {name!r} is given in {unit!r}: a kernel's parameters are plain numbers, "
                f"in the unit of the node's coupling input (an offset such as b) or of the coupled variable "
                f"(a threshold such as midpoint); give e.g. {name}=q.ustrip('<that unit>')."
            )
        value = value.in_unit(name, canonical) if isinstance(value, Param) else to_canonical(value, name, canonical)
    if isinstance(value, Param):
        return value
    check_real(value, name)
    arr = jnp.asarray(value, dtype=jnp.result_type(float))
    if not isinstance(arr, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"coupling parameter {name!r} must be finite, got {value!r}.")
    return arr


class AbstractCoupling(Readable):
    """Base class of coupling kernels.

    Subclasses implement `__call__`. Class attribute ``signed_weights`` says whether
    negative connection weights are meaningful (a `Network` rejects them otherwise);
    ``cancels_self_connections`` whether a self-connection's term vanishes (a `Network`
    that drops a diagonal the coupling would sum says so otherwise).
    """

    signed_weights: ClassVar[bool] = False
    #: Whether a self-connection's term vanishes (``W_ii (y_i - y_i)``), so that keeping or
    #: dropping the diagonal of the weights makes no difference.
    cancels_self_connections: ClassVar[bool] = False
    #: Other libraries' keywords for this kernel's parameters and what they are here, said
    #: when one is passed (TVB's ``Linear(a=...)`` is the Network's ``k``).
    keyword_aliases: ClassVar[dict[str, str]] = {}
    #: Whether the target's own term is one of the delayed reads (at zero delay), so that
    #: ``current`` follows the delay rule: on a network's first step it is the history's
    #: $h(0)$, as every read at $t \le 0$ (`Laplacian`'s diagonal). False for kernels that
    #: compare the delayed sources with the target's present state (`Diffusive`).
    target_term_delayed: ClassVar[bool] = False

    def __new__(cls, *args, **kwargs):
        # TVB's kernels share some names with ours and not others: a TVB keyword says where it goes.
        check_keywords(cls.__name__, kwargs, keyword_names(cls.__init__), cls.keyword_aliases)
        return super().__new__(cls, *args, **kwargs)

    def current_of(self, out: Any, current: Array, method: str) -> Array:
        """``out``, what the kernel's ``method`` (``'post'`` or ``'__call__'``) returned,
        checked to be one plain value per target, as ``current`` is (at trace time:
        shapes are static, so a compiled run pays nothing for it).

        A scalar (a mean over the regions by mistake) broadcast silently to every region,
        and an ``(N, 1)`` column against the node's ``(N,)`` states into an ``(N, N)``
        derivative; a Quantity failed deep inside the solver."""
        name = f"{type(self).__name__}.{method}"
        if is_quantity(out):
            raise TypeError(
                f"{name} returned a unxt Quantity; it must return plain numbers in the unit of the "
                f"node's coupling input (the Network adds them to it as they are): strip the unit, "
                f"e.g. value.ustrip('mV')."
            )
        if jnp.shape(out) != jnp.shape(current):
            raise ValueError(
                f"{name} returned shape {jnp.shape(out)}; it must return one current per target "
                f"region, the shape of `current`, {jnp.shape(current)} (a scalar or an (N, 1) column is "
                f"refused: it would drive every region alike, or broadcast into an (N, N) derivative). "
                f"Reduce over the sources only (axis=-1), not over the targets."
            )
        return out

    def effective_weights(self, weights: Float[Array | np.ndarray, "T J"]) -> Float[Array | np.ndarray, "T J"]:
        """The weights the kernel sums with, from the network's connection weights
        (identity; `Laplacian` normalises). Dense ``(N, N)``, or ``(N, J)`` per-target
        lists for a sparse connectome. A `Network` passes NumPy weights when they are
        concrete (it plans on the host) and gets NumPy back; JAX ones under tracing."""
        return weights

    def __call__(
        self,
        delayed: Float[Array, "T J"],
        current: Float[Array, " T"],
        weights: Float[Array, "T J"],
        k: Any,
    ) -> Float[Array, " T"]:
        """The coupling current of every target.

        **Arguments:**

        - `delayed`: ``delayed[i, j]`` is the delayed source value $x_j(t - \\tau_{ij})$
          (for a sparse connectome, ``j`` indexes target ``i``'s listed sources).
        - `current`: the targets' own current values $x_i(t)$.
        - `weights`: the effective weights (see `effective_weights`), same layout as
          ``delayed``.
        - `k`: the network's global gain.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not implement __call__(delayed, current, weights, k): the "
            f"coupling current of every target (or subclass AbstractSummedCoupling and implement post)."
        )


class AbstractSummedCoupling(AbstractCoupling):
    r"""A kernel whose current depends on the sources only through
    $S_i = \sum_j W_{ij}\, \phi(X_{ij})$: implement `post` (and `pre`, default identity)."""

    #: number of features `pre` returns per source value
    n_features: ClassVar[int] = 1

    def pre(self, x: Array) -> Array:
        """$\\phi$: source values -> features, a new leading axis of size ``n_features``."""
        return x[None]

    def features(self, x: Array) -> Array:
        """`pre` of ``x``, checked (at trace time) to add exactly ``n_features`` leading
        features: the history keeps ``n_features`` channels per region, so a `pre` that
        returned more (without declaring them) had its features read into the wrong
        regions, and the run went on with silently wrong currents."""
        out = self.pre(x)
        expected = (self.n_features, *jnp.shape(x))
        if jnp.shape(out) != expected:
            raise ValueError(
                f"{type(self).__name__}.pre returned shape {jnp.shape(out)} for sources of shape "
                f"{jnp.shape(x)}; it must return {expected}: n_features (= {self.n_features}) features "
                f"stacked on a new leading axis. Declare their number: n_features: ClassVar = "
                f"{jnp.shape(out)[0] if jnp.ndim(out) > jnp.ndim(x) else '...'}."
            )
        return out

    def post(self, summed: Float[Array, "F T"], current: Float[Array, " T"], rowsum: Float[Array, " T"], k) -> Array:
        """The current from the sums ``summed[f, i]`` $= \\sum_j W_{ij} \\phi_f(X_{ij})$,
        the targets' current values and the row sums of the effective weights."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement post(summed, current, rowsum, k): the coupling "
            f"current of every target from the weighted sums summed[f, i]."
        )

    def __call__(self, delayed, current, weights, k):
        feats = self.features(delayed)
        summed = jnp.sum(weights * feats, axis=-1)
        return self.post(summed, current, jnp.sum(weights, axis=-1), k)


class Diffusive(AbstractSummedCoupling):
    r"""$c_i = k \sum_j W_{ij} (X_{ij} - y_i)$: delayed sources against the target's *current* value."""

    cancels_self_connections: ClassVar[bool] = True

    def post(self, summed, current, rowsum, k):
        return k * (summed[0] - rowsum * current)


class Difference(AbstractSummedCoupling):
    r"""TVB's ``Difference``: $c_i = k\, a \sum_j W_{ij} (X_{ij} - y_i)$.

    **Arguments:** `a`: gain (default 1; TVB's default is 0.1: a TVB ``Difference()`` is
    ``Difference(a=0.1)`` here).
    """

    cancels_self_connections: ClassVar[bool] = True
    a: Any = 1.0

    def __init__(self, a: Any = 1.0):
        self.a = _scalar_field(a, "a")

    def post(self, summed, current, rowsum, k):
        return k * read(self.a) * (summed[0] - rowsum * current)


class Additive(AbstractSummedCoupling):
    r"""$c_i = k \sum_j W_{ij} X_{ij} + b$. Signed weights allowed.

    **Arguments:** `b`: bias added to the current (default 0).
    """

    signed_weights: ClassVar[bool] = True
    keyword_aliases: ClassVar[dict[str, str]] = {"a": "the Network's k (TVB's Linear(a=a, b=b) is coupling=Additive(b=b), k=a)"}
    b: Any = 0.0

    def __init__(self, b: Any = 0.0):
        self.b = _scalar_field(b, "b")

    def post(self, summed, current, rowsum, k):
        return k * summed[0] + read(self.b)


class Laplacian(AbstractSummedCoupling):
    r"""$c_i = k \sum_j L_{ij} X_{ij}$ with a (negative) graph Laplacian of the weights.

    With $W' = W$ (or $W' = e^{W} \odot W$ when ``exp_weights``, brainmass's
    ``LaplacianConnParam`` at initialisation) and $d_i = \sum_j W'_{ij}$ (floored at
    ``eps`` where normalised):

    - ``normalize=None``: $L = W' - \mathrm{diag}(d)$;
    - ``'rw'``: $L = D^{-1} W' - I$;
    - ``'sym'``: $L = D^{-1/2} W' D^{-1/2} - I$.

    The diagonal term reads the target with zero delay, as every term of the sum is read:
    its current value, except on the first step of a network given a ``history``, where it
    is $h(0)$ as every read at $t \le 0$ (brainmass's rule: its Laplacian is an additive
    coupling through the delay buffer, so a state uniform with its ``delay_init`` feels no
    coupling on that step). With ``stage_coupling='updated'`` each stage reads it from its
    own state, as it does every term that depends on the current state.

    **Isolated nodes** (normalised): a node whose row of weights is all zero ($d_i = 0$)
    has $D^{-1}_{ii} = D^{-1/2}_{ii} = 0$ (networkx's convention for the normalised
    Laplacian), so its normalised weights are 0 and its coupling is $-k\,y_i$, as in
    brainmass, whose floor gives $0 / \varepsilon = 0$ there; with ``'sym'`` its column is 0
    too (brainmass scaled it by $1/\sqrt{\varepsilon} = 10^6$ where such a node still
    sends, in a directed connectome; an undirected one has a zero column there anyway).
    The row is discontinuous there (0 at the zero row, weights summing to 1 for any
    positive entry), so it has no derivative: the gradient of such a row's weights
    through the degree is 0. The floor alone gave $1/\varepsilon$: a gradient of $7.6 \cdot
    10^{10}$ on a 4-region Hopf network's isolated row (0.02 elsewhere; $7 \cdot 10^4$
    with ``'sym'``), which a fit's first step turned into nonsense. Degrees in
    $(0, \varepsilon)$ are floored at ``eps``, as brainmass's.

    **Arguments:** `normalize`, `exp_weights`, `eps` as above; `b`: a bias added to the
    current, $c_i = k \sum_j L_{ij} X_{ij} + b$ (default 0; brainmass's ``b``).
    """

    target_term_delayed: ClassVar[bool] = True
    normalize: str | None = eqx.field(static=True, default=None)
    exp_weights: bool = eqx.field(static=True, default=False)
    eps: float = eqx.field(static=True, default=1e-12)
    b: Any = 0.0

    def __init__(self, normalize: str | None = None, exp_weights: bool = False, eps: float = 1e-12, b: Any = 0.0):
        self.normalize = normalize
        self.exp_weights = exp_weights
        self.eps = eps
        self.b = _scalar_field(b, "b")

    @property
    def cancels_self_connections(self) -> bool:  # type: ignore[override]
        # Unnormalised, W'_ii's term is W'_ii (y_i - y_i); normalised, W'_ii also enters d_i,
        # which scales every other weight of the row.
        return self.normalize is None

    def __check_init__(self):
        if self.normalize not in (None, "rw", "sym"):
            raise ValueError(
                f"Laplacian(normalize={self.normalize!r}) is unknown; only None, 'rw', 'sym' are supported."
            )

    def effective_weights(self, weights):
        # NumPy weights stay NumPy: a Network computes its plan on the host when it can.
        xp = np if isinstance(weights, np.ndarray) else jnp
        w = xp.exp(weights) * weights if self.exp_weights else weights
        if self.normalize is None:
            return w
        d = xp.sum(w, axis=-1)
        # Isolated nodes (see the class): a degree of 1 in the branch `where` drops, so that
        # its derivative (multiplied by 0) stays finite.
        isolated = d == 0
        zero, one = xp.zeros((), w.dtype), xp.ones((), w.dtype)
        d = xp.where(isolated, one, xp.maximum(d, xp.asarray(self.eps, w.dtype)))
        if self.normalize == "rw":
            return xp.where(isolated[:, None], zero, w / d[:, None])
        inv = xp.where(isolated, zero, 1.0 / xp.sqrt(d))
        if w.shape[0] != w.shape[1]:
            raise ValueError(
                "Laplacian(normalize='sym') needs a dense (N, N) connectome, got a sparse conn (kept as "
                "per-target lists): pass conn as a dense array (conn.todense()), or use normalize='rw' or None."
            )
        return w * inv[:, None] * inv[None, :]

    def post(self, summed, current, rowsum, k):
        c = rowsum if self.normalize is None else 1.0
        return k * (summed[0] - c * current) + read(self.b)


class Sigmoidal(AbstractSummedCoupling):
    r"""$c_i = k\, \sigma(\mathrm{slope}\,(a S_i + b - \mathrm{midpoint}))$, $S_i = \sum_j W_{ij} X_{ij}$
    (the logistic applied after the sum). Signed weights allowed.

    **Arguments:** `a` (1), `b` (0), `slope` (1), `midpoint` (0).
    """

    signed_weights: ClassVar[bool] = True
    keyword_aliases: ClassVar[dict[str, str]] = dict.fromkeys(
        ("cmin", "cmax", "sigma"), f"not a parameter of this Sigmoidal ({_TVB_SIGMOIDAL[0]}; it is {_TVB_SIGMOIDAL[1]})"
    )
    a: Any = 1.0
    b: Any = 0.0
    slope: Any = 1.0
    midpoint: Any = 0.0

    def __init__(self, a: Any = 1.0, b: Any = 0.0, slope: Any = 1.0, midpoint: Any = 0.0):
        self.a = _scalar_field(a, "a")
        self.b = _scalar_field(b, "b")
        self.slope = _scalar_field(slope, "slope")
        self.midpoint = _scalar_field(midpoint, "midpoint")

    def post(self, summed, current, rowsum, k):
        z = read(self.slope) * (read(self.a) * summed[0] + read(self.b) - read(self.midpoint))
        return k * jax.nn.sigmoid(z)


class Tanh(AbstractSummedCoupling):
    r"""$c_i = k \tanh(\mathrm{scale}\, S_i)$, $S_i = \sum_j W_{ij} X_{ij}$. Signed weights allowed.

    **Arguments:** `scale` (2, brainmass's default).
    """

    signed_weights: ClassVar[bool] = True
    scale: Any = 2.0

    def __init__(self, scale: Any = 2.0):
        self.scale = _scalar_field(scale, "scale")

    def post(self, summed, current, rowsum, k):
        return k * jnp.tanh(read(self.scale) * summed[0])


class SigmoidalJansenRit(AbstractSummedCoupling):
    r"""TVB's ``SigmoidalJansenRit``: the sigmoid applied to each source *before* the sum,

    $$c_i = k \sum_j W_{ij}\Big[c_{min} + \frac{c_{max} - c_{min}}{1 + e^{r(\mathrm{midpoint} - X_{ij})}}\Big].$$

    **Arguments:** `cmin` (0), `cmax` (0.005), `midpoint` (6), `r` (0.56).
    """

    keyword_aliases: ClassVar[dict[str, str]] = {"a": "the Network's k (TVB's SigmoidalJansenRit(a=a))"}
    cmin: Any = 0.0
    cmax: Any = 0.005
    midpoint: Any = 6.0
    r: Any = 0.56

    def __init__(self, cmin: Any = 0.0, cmax: Any = 0.005, midpoint: Any = 6.0, r: Any = 0.56):
        self.cmin = _scalar_field(cmin, "cmin")
        self.cmax = _scalar_field(cmax, "cmax")
        self.midpoint = _scalar_field(midpoint, "midpoint")
        self.r = _scalar_field(r, "r")

    def pre(self, x):
        cmin, cmax = read(self.cmin), read(self.cmax)
        return (cmin + (cmax - cmin) * jax.nn.sigmoid(read(self.r) * (x - read(self.midpoint))))[None]

    def post(self, summed, current, rowsum, k):
        return k * summed[0]


_TVB_DYNAMIC_THRESHOLD = (
    "not a parameter of this PreSigmoidal: its threshold is the constant theta, TVB's dynamic=False (drop the "
    "keyword); TVB's default dynamic=True, a threshold read from each source's second coupled variable, has no kernel"
)


class PreSigmoidal(AbstractSummedCoupling):
    r"""TVB's ``PreSigmoidal`` with a static threshold: a shifted, scaled tanh of each
    source *before* the sum,

    $$c_i = k \sum_j W_{ij}\, f(X_{ij}), \qquad f(x) = H\,\big[Q + \tanh\big(G\,(P x - \theta)\big)\big].$$

    Each source contributes between $H(Q - 1)$ and $H(Q + 1)$ (0 and 1 with TVB's
    defaults), half way at $P x = \theta$, where $f$ rises by $H G P$ per unit of $x$;
    $G$ sets this slope; it is not the network's gain `k` (TVB's ``PreSigmoidal`` has no gain:
    use ``k=1``).

    TVB's ``dynamic=True`` (its default) reads $\theta$ from each source's second coupled
    variable instead and returns the node's own term as a second coupling; a `Network`
    couples each coupled variable on its own, so that form has no kernel here (the
    keywords ``dynamic`` and ``globalT`` are refused with this advice). TVB 2.10's code
    also sums over the wrong axis (``# TODO check use of arrays dims here``): what it
    returns for region $i$ is $\sum_j W_{ij} f(x_i(t - \tau_{ji}))$ (with ``dynamic``,
    $\sum_j W_{ji} H [Q + \tanh(G (P x_i - \vartheta_i))]$ at $t - \tau_{ji}$, $\vartheta$
    the second variable): region $i$'s own delayed activity, not the documented sum over
    its sources, which this kernel computes.

    **Arguments** (TVB's names and defaults; each may be a `Param`):

    - `H`: scale of each source's term (0.5).
    - `Q`: offset inside the scale, TVB's "average" (1).
    - `G`: slope of the tanh (60).
    - `P`: factor on the source's value, TVB's "excitation-inhibition ratio" (1).
    - `theta`: threshold (0.5).
    """

    keyword_aliases: ClassVar[dict[str, str]] = {
        "dynamic": _TVB_DYNAMIC_THRESHOLD,
        "globalT": (
            "not a parameter of this PreSigmoidal: TVB's globalT=True with a constant threshold takes the first entry "
            "of a per-region theta, a number passed as theta"
        ),
    }
    H: Any = 0.5
    Q: Any = 1.0
    G: Any = 60.0
    P: Any = 1.0
    theta: Any = 0.5

    def __init__(self, H: Any = 0.5, Q: Any = 1.0, G: Any = 60.0, P: Any = 1.0, theta: Any = 0.5):
        self.H = _scalar_field(H, "H")
        self.Q = _scalar_field(Q, "Q")
        self.G = _scalar_field(G, "G")
        self.P = _scalar_field(P, "P")
        self.theta = _scalar_field(theta, "theta")

    def pre(self, x):
        z = read(self.G) * (read(self.P) * x - read(self.theta))
        return (read(self.H) * (read(self.Q) + jnp.tanh(z)))[None]

    def post(self, summed, current, rowsum, k):
        return k * summed[0]


class Kuramoto(AbstractSummedCoupling):
    r"""(Sakaguchi-)Kuramoto phase coupling, $c_i = k\, g \sum_j W_{ij} \sin(X_{ij} - y_i - \alpha)$,
    with $g = 1/N$ (``normalize_by_n``) or 1. Computed from the sums of $\sin X$ and
    $\cos X$: $\sin(X - \theta) = \sin X \cos\theta - \cos X \sin\theta$. Signed weights allowed.

    **Arguments:** `alpha` (phase lag, rad, 0), `normalize_by_n` (False).
    """

    signed_weights: ClassVar[bool] = True
    n_features: ClassVar[int] = 2
    keyword_aliases: ClassVar[dict[str, str]] = {"a": "the Network's k (TVB's Kuramoto(a=a))"}
    alpha: Any = 0.0
    normalize_by_n: bool = eqx.field(static=True, default=False)

    def __init__(self, alpha: Any = 0.0, normalize_by_n: bool = False):
        self.alpha = _scalar_field(alpha, "alpha", "rad")
        self.normalize_by_n = bool(normalize_by_n)

    def pre(self, x):
        return jnp.stack([jnp.sin(x), jnp.cos(x)])

    def post(self, summed, current, rowsum, k):
        phase = current + read(self.alpha)
        out = summed[0] * jnp.cos(phase) - summed[1] * jnp.sin(phase)
        if self.normalize_by_n:
            out = out / current.shape[-1]
        return k * out


#: brainmass's ``coupling=`` names (plus this package's extra kernels).
COUPLINGS: dict[str, type[AbstractCoupling]] = {
    "diffusive": Diffusive,
    "additive": Additive,
    "laplacian": Laplacian,
    "sigmoidal": Sigmoidal,
    "tanh": Tanh,
    "sigmoidal_jansen_rit": SigmoidalJansenRit,
    "kuramoto": Kuramoto,
    "difference": Difference,
    "pre_sigmoidal": PreSigmoidal,
}


def make_coupling(coupling: str | AbstractCoupling) -> AbstractCoupling:
    """A kernel from a name (``'diffusive'``, ...; brainmass's defaults) or a kernel instance.

    **Arguments:**

    - `coupling`: a key of `COUPLINGS` (``'diffusive'``, ``'additive'``, ``'laplacian'``,
      ``'sigmoidal'``, ``'tanh'``, ``'sigmoidal_jansen_rit'``, ``'kuramoto'``,
      ``'difference'``, ``'pre_sigmoidal'``), built with brainmass's defaults (TVB's for
      ``'pre_sigmoidal'``; ``'laplacian'`` as brainmass's ``Network`` does:
      ``Laplacian(exp_weights=True)``), or an `AbstractCoupling`, returned as it is.
    """
    if isinstance(coupling, AbstractCoupling):
        return coupling
    if isinstance(coupling, str) and coupling in COUPLINGS:
        if coupling == "laplacian":
            # brainmass's Network wraps conn in LaplacianConnParam: exp(W) * W, unnormalised.
            return Laplacian(exp_weights=True)
        return COUPLINGS[coupling]()
    if isinstance(coupling, type) and issubclass(coupling, AbstractCoupling):
        raise TypeError(f"coupling: pass an instance, e.g. coupling={coupling.__name__}(), not the class.")
    names = ", ".join(repr(n) for n in COUPLINGS)
    if isinstance(coupling, str) and coupling in _TVB_COUPLINGS:
        # TVB's class names: the nearest brainmass name is no equivalent ('Sigmoidal' is not 'sigmoidal').
        hint = f": TVB's {coupling} is coupling={_TVB_COUPLINGS[coupling]} here"
        raise ValueError(f"coupling must be one of {names} or an AbstractCoupling instance; got {coupling!r}{hint}.")
    close = closest_name(coupling.replace(" ", "_"), COUPLINGS) if isinstance(coupling, str) else None
    hint = f" (did you mean {close!r}?)" if close else ""
    raise ValueError(f"coupling must be one of {names} or an AbstractCoupling instance; got {coupling!r}{hint}.")


__getattr__ = module_getattr(
    __name__, __all__, {name: text for name, text in _TVB_COUPLINGS.items() if name not in __all__}
)
