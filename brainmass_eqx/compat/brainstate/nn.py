"""``brainstate.nn``: `Module`, `Dynamics`, `Param` with transforms, `init_all_states`.

Only what brainmass's documented code uses. A `Module` is an ordinary Python object whose
attributes may be states, parameters and other modules; `Module.states` and
`Module.nodes` find them by attribute path.

The parameter transforms (`SigmoidT`, `SoftplusT`, ...) are `brainmass_eqx`
transforms, so the functional core's `Fitter` understands them (bounds for the
gradient-free backends come from them).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ... import _param as core_param
from ..._checks import plain_method
from .. import brainunit as u
from ..braintools import init as _init
from . import random
from ._state import ParamState, State

__all__ = [
    "Module",
    "Dynamics",
    "Param",
    "Const",
    "init_all_states",
    "reset_all_states",
    "call_order",
    "Transform",
    "IdentityT",
    "SigmoidT",
    "SoftplusT",
    "NegSoftplusT",
    "LogT",
    "ExpT",
    "TanhT",
    "SoftsignT",
    "ClipT",
    "AffineT",
    "ChainT",
    "ReluT",
    "PositiveT",
    "NegativeT",
    "ScaledSigmoidT",
    "L1Reg",
    "L2Reg",
    "GaussianReg",
    "FlattedDict",
    "Linear",
    "Prefetch",
    "PrefetchDelayAt",
    "init_maybe_prefetch",
]


# -- transforms --------------------------------------------------------------------------------


class Transform(core_param.AbstractTransform):
    """brainstate's parameter transform: ``forward(raw) -> value``, ``inverse(value) -> raw``."""

    def __call__(self, x):
        return self.forward(x)

    def log_abs_det_jacobian(self, x: Any, y: Any = None) -> jax.Array:
        r"""$\sum \log |d\,\mathrm{forward}(x) / dx|$ over the elements (the transforms are
        elementwise), from ``x``; ``y`` (brainstate's second argument, ``forward(x)``) is not
        needed. Defined for every transform here (brainstate raises NotImplementedError for
        `TanhT`, `SoftsignT`, `ScaledSigmoidT`, `NegativeT`, and gives `NegSoftplusT` its
        `SoftplusT` value, that of the mirrored ``x``)."""
        x = jnp.asarray(x, dtype=jnp.result_type(float))
        _, slope = jax.jvp(self.forward, (x,), (jnp.ones_like(x),))
        return jnp.sum(jnp.log(jnp.abs(slope)))

    def __repr__(self):
        return f"{type(self).__name__}()"


class IdentityT(Transform, core_param.Identity):
    """``value = raw``."""

    def __repr__(self):
        return "IdentityT()"


class SigmoidT(Transform, core_param.Sigmoid):
    """``value = lower + (upper - lower) * sigmoid(raw)`` (brainstate's ``SigmoidT(lower, upper)``)."""

    def __init__(self, lower: float, upper: float):
        self.lower = float(lower)
        self.upper = float(upper)

    @property
    def width(self):
        return self.upper - self.lower

    def __repr__(self):
        return f"SigmoidT(lower={self.lower}, upper={self.upper})"


class SoftplusT(Transform, core_param.Softplus):
    """``value = lower + softplus(raw)``."""

    def __init__(self, lower: float = 0.0):
        self.lower = float(lower)

    def __repr__(self):
        return f"SoftplusT(lower={self.lower})"


class NegSoftplusT(Transform):
    """``value = upper - softplus(-raw)``: an upper bound."""

    upper: float = eqx.field(static=True)

    def __init__(self, upper: float = 0.0):
        self.upper = float(upper)

    def forward(self, raw):
        return self.upper - jax.nn.softplus(-raw)

    def inverse(self, value):
        s = self.upper - jnp.asarray(value)
        return -(s + jnp.log(-jnp.expm1(-s)))

    @property
    def bounds(self):
        return (-math.inf, self.upper)

    def __repr__(self):
        return f"NegSoftplusT(upper={self.upper})"


class ExpT(Transform):
    """``value = lower + exp(raw)``."""

    lower: float = eqx.field(static=True)

    def __init__(self, lower: float = 0.0):
        self.lower = float(lower)

    def forward(self, raw):
        return self.lower + jnp.exp(jnp.minimum(raw, 20.0))

    def inverse(self, value):
        return jnp.log(jnp.asarray(value) - self.lower)

    @property
    def bounds(self):
        return (self.lower, math.inf)

    def __repr__(self):
        return f"{type(self).__name__}(lower={self.lower})"


class LogT(ExpT):
    """brainstate's ``LogT``: the same map as `ExpT` (optimised in log space)."""


class PositiveT(ExpT):
    """``value = exp(raw)``."""

    def __init__(self):
        super().__init__(0.0)

    def __repr__(self):
        return "PositiveT()"


class NegativeT(NegSoftplusT):
    """``value = -softplus(-raw)``."""

    def __init__(self):
        super().__init__(0.0)

    def __repr__(self):
        return "NegativeT()"


class _Interval(Transform):
    lower: float = eqx.field(static=True)
    upper: float = eqx.field(static=True)

    def __init__(self, lower: float, upper: float):
        self.lower = float(lower)
        self.upper = float(upper)

    @property
    def width(self):
        return self.upper - self.lower

    @property
    def bounds(self):
        return (self.lower, self.upper)

    def __repr__(self):
        return f"{type(self).__name__}(lower={self.lower}, upper={self.upper})"


class TanhT(_Interval):
    """``value = lower + width * (tanh(raw) + 1) / 2``."""

    def forward(self, raw):
        return self.lower + self.width * (jnp.tanh(raw) + 1.0) / 2.0

    def inverse(self, value):
        return jnp.arctanh(2.0 * (jnp.asarray(value) - self.lower) / self.width - 1.0)


class SoftsignT(_Interval):
    """``value = lower + width * (raw / (1 + |raw|) + 1) / 2``."""

    def forward(self, raw):
        return self.lower + self.width * (raw / (1.0 + jnp.abs(raw)) + 1.0) / 2.0

    def inverse(self, value):
        z = 2.0 * (jnp.asarray(value) - self.lower) / self.width - 1.0
        return z / (1.0 - jnp.abs(z))


class ClipT(_Interval):
    """``value = clip(raw, lower, upper)``."""

    def forward(self, raw):
        return jnp.clip(raw, self.lower, self.upper)

    def inverse(self, value):
        return jnp.clip(jnp.asarray(value), self.lower, self.upper)


class ScaledSigmoidT(_Interval):
    """``value = lower + width * sigmoid(beta * raw)``."""

    beta: float = eqx.field(static=True)

    def __init__(self, lower: float, upper: float, beta: float = 1.0):
        super().__init__(lower, upper)
        self.beta = float(beta)

    def forward(self, raw):
        return self.lower + self.width * jax.nn.sigmoid(self.beta * raw)

    def inverse(self, value):
        z = (jnp.asarray(value) - self.lower) / self.width
        return (jnp.log(z) - jnp.log1p(-z)) / self.beta


class ReluT(Transform):
    """``value = relu(raw) + lower_bound``."""

    lower_bound: float = eqx.field(static=True)

    def __init__(self, lower_bound: float = 0.0):
        self.lower_bound = float(lower_bound)

    def forward(self, raw):
        return jax.nn.relu(raw) + self.lower_bound

    def inverse(self, value):
        return jax.nn.relu(jnp.asarray(value) - self.lower_bound)

    @property
    def bounds(self):
        return (self.lower_bound, math.inf)


class AffineT(Transform):
    """``value = scale * raw + shift``."""

    a: float = eqx.field(static=True)
    b: float = eqx.field(static=True)

    def __init__(self, scale: float, shift: float):
        if scale == 0:
            raise ValueError("AffineT: 'scale' must be non-zero.")
        self.a = float(scale)
        self.b = float(shift)

    def forward(self, raw):
        return self.a * raw + self.b

    def inverse(self, value):
        return (jnp.asarray(value) - self.b) / self.a

    def __repr__(self):
        return f"AffineT(scale={self.a}, shift={self.b})"


class ChainT(Transform):
    """Apply ``transforms`` in order (forward) and in reverse order (inverse)."""

    transforms: tuple

    def __init__(self, *transforms: Transform):
        self.transforms = tuple(transforms)

    def forward(self, raw):
        for t in self.transforms:
            raw = t.forward(raw)
        return raw

    def inverse(self, value):
        for t in reversed(self.transforms):
            value = t.inverse(value)
        return value


# -- regularisers ---------------------------------------------------------------------------------


class _Reg:
    """brainstate's regulariser: ``loss(value)`` (added by `Module.reg_loss`), the prior's
    ``reset_value()`` (`Param.reset_to_prior`) and a draw from it, ``sample_init(shape)``."""

    __module__ = "brainstate.nn"

    def __init__(self, weight: float = 1.0, fit_hyper: bool = False):
        if fit_hyper:
            raise NotImplementedError(
                f"{type(self).__name__}(fit_hyper=True): the facade keeps a regulariser's hyperparameters "
                f"fixed; pass fit_hyper=False, or fit the prior's parameters with brainmass_eqx.fit."
            )
        self.weight = jnp.asarray(weight, dtype=jnp.result_type(float))

    def reset_value(self):
        return 0.0

    def __repr__(self):
        return f"{type(self).__name__}(weight={self.weight})"


class L1Reg(_Reg):
    """``weight * sum |value|``: a Laplace prior of scale ``1 / weight``."""

    def loss(self, value):
        return self.weight * jnp.sum(jnp.abs(value))

    def sample_init(self, shape):
        scale = 1.0 / (self.weight + 1e-8)
        centred = random.rand(*_to_size(shape)) - 0.5
        return scale * jnp.sign(centred) * jnp.log(1 - 2 * jnp.abs(centred) + 1e-8)


class L2Reg(_Reg):
    """``relu(weight) * sum value**2``: a zero-mean Gaussian prior of variance ``1 / weight``."""

    def loss(self, value):
        return jax.nn.relu(self.weight) * jnp.sum(jnp.square(value))

    def sample_init(self, shape):
        return random.randn(*_to_size(shape)) / jnp.sqrt(jax.nn.relu(self.weight) + 1e-8)


class GaussianReg(_Reg):
    """brainstate's Gaussian negative log-likelihood, with precision ``p = 1 / (std**2 + 1e-8)``:
    ``weight * (sum p (value - mean)**2 - sum log p)`` (``p`` floored at 1e-6)."""

    def __init__(self, mean: Any, std: Any, weight: float = 1.0, fit_hyper: bool = False):
        super().__init__(weight, fit_hyper)
        self.mean = jnp.asarray(mean, dtype=jnp.result_type(float))
        self.precision = 1.0 / (jnp.asarray(std, dtype=jnp.result_type(float)) ** 2 + 1e-8)

    def loss(self, value):
        precision = jax.nn.relu(self.precision) + 1e-6
        return self.weight * (jnp.sum(precision * jnp.square(value - self.mean)) - jnp.sum(jnp.log(precision)))

    def reset_value(self):
        return self.mean

    def sample_init(self, shape):
        return self.mean + random.randn(*_to_size(shape)) / jnp.sqrt(jax.nn.relu(self.precision) + 1e-8)

    def __repr__(self):
        return f"GaussianReg(mean={self.mean}, precision={self.precision}, weight={self.weight})"


# -- modules ---------------------------------------------------------------------------------------


class FlattedDict(dict):
    """A dict keyed by attribute paths (tuples), as brainstate's ``states()`` returns."""

    def to_dict_values(self):
        return {k: v.value for k, v in self.items()}


def _children(obj: Any) -> Iterator[tuple[Any, Any]]:
    for name, value in vars(obj).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (Module, State)):
            yield name, value
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, (Module, State)):
                    yield (name, i), item
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, (Module, State)):
                    yield (name, k), item


def _walk_levels(root: Module) -> Iterator[tuple[tuple, Any, int]]:
    """Every module and state reachable from ``root`` once, by first-found path, with its
    hierarchy level (brainstate's: ``root`` 0, its sub-modules 1, ...; a state has the
    level of the module holding it)."""
    seen: set[int] = set()

    def visit(obj, path, level):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        yield path, obj, level
        if isinstance(obj, Module):
            for key, child in obj._graph_children():
                key = key if isinstance(key, tuple) else (key,)
                yield from visit(child, path + key, level + 1 if isinstance(child, Module) else level)

    yield from visit(root, (), 0)


def _walk(root: Module) -> Iterator[tuple[tuple, Any]]:
    """Every module and state reachable from ``root`` once, by first-found path."""
    for path, obj, _ in _walk_levels(root):
        yield path, obj


def _in_hierarchy(level: int, allowed_hierarchy: Any) -> bool:
    low, high = (0, sys.maxsize) if allowed_hierarchy is None else allowed_hierarchy
    return low <= level <= high


class Module:
    """A container of states, parameters and sub-modules (brainstate's ``nn.Module``)."""

    __module__ = "brainstate.nn"

    def __init__(self, name: str | None = None):
        self._name = name

    @property
    def name(self) -> str | None:
        """The name given at construction (None if none), read-only as brainstate's."""
        return self.__dict__.get("_name")

    @name.setter
    def name(self, value: Any) -> None:
        raise AttributeError("The name of the model is read-only.")

    # brainstate's sizes: None unless the module sets them (`Dynamics` from its ``in_size``).
    @property
    def in_size(self) -> Any:
        return self.__dict__.get("_in_size")

    @in_size.setter
    def in_size(self, value: Any) -> None:
        self._in_size = value

    @property
    def out_size(self) -> Any:
        return self.__dict__.get("_out_size")

    @out_size.setter
    def out_size(self, value: Any) -> None:
        self._out_size = value

    # -- graph ----------------------------------------------------------------------------
    def _graph_children(self) -> Iterator[tuple[Any, Any]]:
        return _children(self)

    def states(self, *filters: type, allowed_hierarchy: Any = None) -> FlattedDict:
        """``{path: State}`` of every state reachable from this module (of the given types),
        held by modules whose level is in ``allowed_hierarchy = (low, high)`` (this module 0)."""
        out = FlattedDict()
        for path, obj, level in _walk_levels(self):
            if isinstance(obj, State) and (not filters or isinstance(obj, filters)) and _in_hierarchy(level, allowed_hierarchy):
                out[path] = obj
        return out

    def nodes(self, *filters: type, allowed_hierarchy: Any = None) -> FlattedDict:
        """``{path: Module}`` of every module reachable from this one (itself at ``()``, level
        0), whose level is in ``allowed_hierarchy = (low, high)``."""
        out = FlattedDict()
        for path, obj, level in _walk_levels(self):
            if isinstance(obj, Module) and (not filters or isinstance(obj, filters)) and _in_hierarchy(level, allowed_hierarchy):
                out[path] = obj
        return out

    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        return iter(self.nodes(allowed_hierarchy=(1, 1)).values())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(dotted path, sub-module)`` of the direct sub-modules."""
        return ((".".join(map(str, p)), m) for p, m in self.nodes(allowed_hierarchy=(1, 1)).items())

    def modules(self, include_self: bool = True) -> Iterator[Module]:
        """Every module reachable from this one (this one too with ``include_self``)."""
        return iter(self.nodes(allowed_hierarchy=(0 if include_self else 1, sys.maxsize)).values())

    def named_modules(self, prefix: str = "", include_self: bool = True) -> Iterator[tuple[str, Module]]:
        """``(dotted path, module)`` of every module reachable from this one."""
        lowest = 0 if include_self else 1
        for path, module in self.nodes(allowed_hierarchy=(lowest, sys.maxsize)).items():
            yield ".".join(filter(None, (prefix, *map(str, path)))), module

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, ParamState]]:
        """``(dotted path, ParamState)`` of the trainable raw values (brainstate's: the states,
        not the `Param` modules, which `named_param_modules` gives); ``recurse=False``: those
        held one level down (a `Param` attribute's ``val``), as brainstate."""
        hierarchy = None if recurse else (1, 1)
        for path, state in self.states(ParamState, allowed_hierarchy=hierarchy).items():
            yield ".".join(filter(None, (prefix, *map(str, path)))), state

    def parameters(self, recurse: bool = True) -> Iterator[ParamState]:
        """The `ParamState` of every trainable value (see `named_parameters`)."""
        return (state for _, state in self.named_parameters(recurse=recurse))

    def named_param_modules(self, allowed_hierarchy: Any = None) -> Iterator[tuple[str, Param]]:
        """``(dotted path, Param)`` of every `Param` (`Const` too) whose level is in
        ``allowed_hierarchy``."""
        for path, param in self.nodes(Param, allowed_hierarchy=allowed_hierarchy).items():
            yield ".".join(map(str, path)), param

    def param_modules(self, allowed_hierarchy: Any = None) -> Iterator[Param]:
        """Every `Param` module (see `named_param_modules`)."""
        return (param for _, param in self.named_param_modules(allowed_hierarchy))

    # -- protocol ---------------------------------------------------------------------------
    def init_state(self, *args: Any, **kwargs: Any) -> None:
        """Create this module's own states (sub-modules are handled by `init_all_states`)."""

    def reset_state(self, *args: Any, **kwargs: Any) -> None:
        self.init_state(*args, **kwargs)

    def init_all_states(self, *args: Any, **kwargs: Any) -> Module:
        return init_all_states(self, *args, **kwargs)

    def reset_all_states(self, *args: Any, **kwargs: Any) -> Module:
        return init_all_states(self, *args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.update is not implemented.")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.update(*args, **kwargs)

    @contextlib.contextmanager
    def param_precompute(self):
        """brainstate caches transformed parameter values inside this block; here every
        ``Param.value()`` is computed on demand, so the block only marks the scope."""
        yield self

    def reg_loss(self):
        """Sum of the regularisation losses of every trainable `Param` with a ``reg``."""
        total = 0.0
        for p in self.nodes(Param).values():
            total = total + p.reg_loss()
        return total

    def __repr__(self) -> str:
        fields = []
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            text = repr(value).replace("\n", "\n  ")
            fields.append(f"  {name}={text}")
        body = ",\n".join(fields)
        return f"{type(self).__name__}(\n{body}\n)" if fields else f"{type(self).__name__}()"


def _to_size(x: Any) -> tuple[int, ...] | None:
    if x is None:
        return None
    if isinstance(x, (int, np.integer)):
        return (int(x),)
    if isinstance(x, (tuple, list)):
        return tuple(int(i) for i in x)
    raise ValueError(f"Cannot make a size for {x}")


class Dynamics(Module):
    """A module with a size (``in_size``, ``varshape``) and dynamical states."""

    __module__ = "brainstate.nn"

    def __init__(self, in_size: Any = None, name: str | None = None):
        super().__init__(name=name)
        self.in_size = in_size

    @property
    def in_size(self):
        return self._in_size

    @in_size.setter
    def in_size(self, value):
        self._in_size = _to_size(value)

    @property
    def out_size(self):
        return self._in_size

    @property
    def varshape(self) -> tuple[int, ...]:
        return self._in_size

    def prefetch(self, item: str):
        """A zero-argument callable giving the current value of ``self.<item>``."""
        from ._delay import Prefetch

        return Prefetch(self, item)

    def prefetch_delay(self, state: str, *delay: Any, init: Any = None, interpolation: str | None = None,
                       update_every: Any = None):  # fmt: skip
        """A zero-argument callable giving ``self.<state>`` ``delay`` ago; ``delay`` is a time
        or a ``(delay (N, N), index (N, N))`` pair (one tuple or two arguments) (see ``brainstate._delay``); ``init`` fills
        the past before the first write (default 0). ``update_every`` (a time >= dt, default
        dt): the buffer keeps one value per ``update_every`` (brainstate's frequency-controlled
        delay, e.g. once per TR), and ``delay`` counts in those slots. ``interpolation`` is
        accepted with brainstate's names: brainstate 0.5.4 reads whole steps back
        (``ceil(delay / dt)``) whichever it is given, and so does this."""
        from ._delay import PrefetchDelayAt

        if interpolation is not None and interpolation not in _DELAY_INTERPOLATIONS:
            raise ValueError(
                f"prefetch_delay(interpolation={interpolation!r}) is unknown; brainstate's are {sorted(_DELAY_INTERPOLATIONS)}."
            )
        # brainstate takes (delay, index) as one tuple or as two arguments.
        delay = delay[0] if len(delay) == 1 else tuple(delay)
        return PrefetchDelayAt(self, state, delay, 0.0 if init is None else init, update_every)

    def _state_delay(self, item: str, init: Any, update_every: Any = None):
        """The node's ring buffer of ``item`` (one per state variable and write interval,
        shared by its reads)."""
        from ._delay import StateDelay

        delays = self.__dict__.setdefault("_delays", {})
        key = item if update_every is None else (item, float(update_every))
        if key not in delays:
            delays[key] = StateDelay(self, item, init, update_every)
        return delays[key]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.update(*args, **kwargs)
        # brainstate's after-update hooks: a call (not a bare update()) writes the delay buffers.
        for delay in self.__dict__.get("_delays", {}).values():
            delay.write()
        return out


def call_order(level: int = 0, check_order_boundary: bool = True):
    """Decorator: ``init_all_states`` calls methods with a higher level later.
    ``check_order_boundary`` is brainstate's check that ``level`` is in its range (0 to 9)."""
    if check_order_boundary and not 0 <= level < 10:
        raise ValueError(f"\"level\" must be an integer in [0, 10), but got {level}.")

    def decorate(fn):
        fn.call_order = level
        return fn

    return decorate


_DELAY_INTERPOLATIONS = frozenset(
    {"nearest", "round", "linear", "linear_interp", "cubic", "hermite", "polynomial2", "polynomial3"}
)


def init_all_states(target: Module, *args: Any, **kwargs: Any) -> Module:
    """Call ``init_state(*args, **kwargs)`` on ``target`` and every module below it.

    Modules are visited parent first; methods decorated with `call_order` run last,
    lowest level first.
    """
    ordered, later = [], []
    for _, node in _walk(target):
        if isinstance(node, Module) and not isinstance(node, Param):
            level = getattr(type(node).init_state, "call_order", None)
            (later if level is not None else ordered).append((level or 0, node))
    for _, node in ordered + sorted(later, key=lambda x: x[0]):
        node.init_state(*args, **kwargs)
    # The delay buffers behind prefetch_delay reads, after the states they record (brainstate
    # registers them on the module: a read held outside any module is initialised too).
    for _, node in _walk(target):
        if isinstance(node, Module):
            for delay in node.__dict__.get("_delays", {}).values():
                delay.init_state(*args, **kwargs)
    return target


reset_all_states = init_all_states


# -- parameters ----------------------------------------------------------------------------------------


def _split_unit(value):
    value = u.from_core(value)
    if isinstance(value, u.Quantity):
        return value.value, value.unit
    return value, None


class Param(Module):
    """A (possibly trainable) parameter: ``Param(value, t=IdentityT(), reg=None, fit=True)``.

    The raw value ``t.inverse(value)`` is stored in a `ParamState` when ``fit=True``; `value`
    returns ``t.forward(raw)`` (with the original unit). `val` is brainstate's storage
    attribute (see there).
    """

    __module__ = "brainstate.nn"

    def __init__(self, value: Any, t: Transform | None = None, reg: Any = None, fit: bool = True,
                 precompute: Callable | None = None):
        super().__init__()
        if isinstance(value, Param):
            value = value.value()
        t = IdentityT() if t is None else t
        if not isinstance(t, core_param.AbstractTransform):
            raise TypeError(f"Param(t=...) must be a transform such as SigmoidT(0., 1.), got {type(t).__name__}.")
        mag, unit = _split_unit(value)
        self.fit = bool(fit)
        self.t = t
        self.reg = reg
        self.precompute = precompute
        self._unit = unit
        raw = t.inverse(jnp.asarray(mag, dtype=jnp.result_type(float)))
        # The magnitude (in ``self._unit``) is stored, so that a fit differentiates plain arrays.
        self._val = ParamState(raw) if self.fit else raw

    def _graph_children(self):
        if isinstance(self._val, State):
            yield "val", self._val

    @property
    def val(self):
        """brainstate's storage: the raw (unconstrained) value ``t.inverse(value)``.

        - ``fit=True``: the `ParamState` holding it (what a fit updates; its ``.value`` is the
          magnitude in `unit`).
        - ``fit=False`` (`Const`): the raw value itself, with the parameter's unit when the
          transform is the identity (``Const(20 * u.ms).val`` is ``20 ms``, as brainstate's), a
          plain array otherwise (brainstate's transforms strip the unit too).
        """
        if isinstance(self._val, State) or self._unit is None or not isinstance(self.t, core_param.Identity):
            return self._val
        return u.Quantity(self._val, self._unit)

    @property
    def raw(self):
        """The raw magnitude (a plain array, in `unit` when the transform is the identity)."""
        return self._val.value if isinstance(self._val, State) else self._val

    def value(self) -> Any:
        # The transform is an eqx.Module: read its method plainly (an eqx.BoundMethod, 25 us,
        # per parameter per step of an update loop).
        v = plain_method(self.t, "forward")(self.raw)
        if self.precompute is not None:
            v = self.precompute(v)
        return v if self._unit is None else u.Quantity(v, self._unit)

    def set_value(self, value: Any) -> None:
        mag, unit = _split_unit(value)
        if unit is not None and self._unit is not None:
            mag = u.Quantity(mag, unit).to(self._unit).value
        raw = self.t.inverse(jnp.asarray(mag, dtype=jnp.result_type(float)))
        if isinstance(self._val, State):
            self._val.value = raw
        else:
            self._val = raw

    def reg_loss(self):
        if not self.fit or self.reg is None:
            return 0.0
        return self.reg.loss(u.get_magnitude(self.value()))

    def reset_to_prior(self) -> None:
        """The value set to the regulariser's prior value (its mean; 0 for `L1Reg` and
        `L2Reg`); nothing without a ``reg``."""
        if self.reg is not None:
            self.set_value(self.reg.reset_value())

    def clip(self, min_val: Any = None, max_val: Any = None) -> None:
        """The value clipped in place to ``[min_val, max_val]`` (either may be None)."""
        self.set_value(u.math.clip(self.value(), a_min=min_val, a_max=max_val))

    @property
    def unit(self):
        return self._unit

    @classmethod
    def init(cls, data: Any, sizes: Any = None, allow_none: bool = True, **kwargs: Any):
        """``data`` as a parameter: a `Param` is kept; a callable initializer is called with
        ``sizes``; anything else becomes a `Const`. The shape must broadcast to ``sizes``."""
        if data is None:
            if allow_none:
                return None
            raise ValueError("Expect a parameter with type of float, ArrayType, Initializer, or Callable function, but we got None. ")
        sizes = _to_size(sizes)
        data = u.from_core(data)
        if not isinstance(data, Param):
            if callable(data) and not isinstance(data, (u.Quantity, jax.Array, np.ndarray)):
                if sizes is None:
                    raise ValueError("When the parameter is a callable function, the size must be provided.")
                data = data(sizes, **kwargs)
            if not (np.isscalar(data) or isinstance(data, (np.ndarray, jax.Array, u.Quantity, float, int))):
                raise TypeError(f"Unknown parameter type: {type(data)}")
            data = Const(data)
        if sizes is not None:
            shape = jnp.shape(u.get_magnitude(data.value()))
            try:
                np.broadcast_shapes(shape, sizes)
            except ValueError:
                raise ValueError(f"The shape of the parameter {shape} does not match with the given size {sizes}") from None
        return data

    def __repr__(self) -> str:
        raw = self.raw
        val = self.value()
        shown = repr(val) if not isinstance(raw, jax.core.Tracer) else f"<traced {jnp.shape(raw)}>"
        shown = shown.replace("\n", "\n  ")
        return f"{type(self).__name__}(\n  fit={self.fit},\n  t={self.t!r},\n  reg={self.reg!r},\n  val={shown}\n)"


class Const(Param):
    """A non-trainable parameter (``Param(value, fit=False)``)."""

    __module__ = "brainstate.nn"

    def __init__(self, value: Any, **kwargs: Any):
        if kwargs.pop("fit", False):
            raise ValueError("Const parameters must be non-trainable (fit=False).")
        super().__init__(value, fit=False, **kwargs)


def _affine():
    from ...models import Affine

    return Affine


class Linear(Module):
    """``x @ W + b`` with ``weight`` a `ParamState` holding ``{'weight': W, 'bias': b}``
    (brainstate's ``nn.Linear`` layout)."""

    __module__ = "brainstate.nn"

    def __init__(self, in_size: int, out_size: int, w_init: Any = None, b_init: Any = None):
        super().__init__()
        w_init = _init.KaimingNormal() if w_init is None else w_init
        params = {"weight": _init.param(w_init, (in_size, out_size), allow_scalar=False)}
        if b_init is not None:
            params["bias"] = _init.param(b_init, (out_size,), allow_scalar=False)
        self.in_size, self.out_size = in_size, out_size
        self.weight = ParamState(params)

    def core(self):
        w = self.weight.value
        return _affine()(self.in_size, self.out_size, weight=w["weight"], bias=w.get("bias", False))

    def update(self, x):
        return self.core()(x)


# The delayed reads are modules themselves (imported last: they subclass Module).
from ._delay import Prefetch, PrefetchDelayAt, init_maybe_prefetch  # noqa: E402
