r"""Noise: turn a model's ODE into an SDE that diffrax solves.

A *noise spec* (`OUProcess`, `WhiteNoise`, `BrownianNoise`, `ColoredNoise` and its named
colours, `MultiplicativeNoise`) describes a random process. `with_noise` attaches specs to
named targets of any model and returns a model with the same contract (`Noisy`), whose
``terms(key, ...)`` are ``MultiTerm(ModelTerm(drift), NoiseTerm(diffusion, brownian))``:

$$\mathrm{d}y = f(t, y, I(t) + \eta(t))\,\mathrm{d}t + g(t, y)\,\mathrm{d}W.$$

**Where noise enters.** A target is an *input* of the model (as in brainmass: the noise is
added to the input of the same name, e.g. ``noise_x`` to the ``x`` input), or, for a state
that is not an input or with ``enters='derivative'``, the *time derivative* of that state
(TVB style). Coloured processes (OU, Brownian, 1/f^β) are extra state variables integrated
with the model (named ``<target>_noise``); their value is added to the input. White noise
has no state: an input perturbation $\sigma\,\xi(t)$ changes the state by
$\partial f/\partial I \cdot \sigma\, \mathrm{d}W$ (computed with one ``jax.jvp``; this is
$\sigma\,\mathrm{d}W$ on the target's own state when the input enters additively).

**Units.** Let $U$ be the target's unit (the input's unit, or the state's unit per ms for
``enters='derivative'``). OU, coloured noise and every ``mean``: $U$. White and
multiplicative noise: $\sigma$ in $U\sqrt{\mathrm{ms}}$ (so that $\sigma\,\mathrm{d}W$ has
the unit of $U\,\mathrm{d}t$; for models whose dimensionless inputs are rates per ms,
$\mathrm{ms}^{-1/2}$ is accepted as well). Brownian noise: $\sigma$ in $U/\sqrt{\mathrm{ms}}$.
Plain numbers are read in these units with time in ms; ``tau`` is a time, frequencies are Hz.

**Brownian increments** come from `BlockBrownianPath`: the normals of steps
$[bB, (b+1)B)$ of the absolute step grid are the rows of
``jax.random.normal(jax.random.fold_in(key, b), (B, size))``, each row computed in the
step that uses it (no per-step random-number call, no stored block).
`BlockIncrements` (applied by `Noisy.wrap_solver`) counts the steps exactly, so chunked
runs reproduce the unchunked run bit for bit. Adaptive steps use
``diffrax.VirtualBrownianTree``.

Every spec also works as a keyword of `with_noise` (``noise_x=OUProcess(...)``), and a
`Network` routes ``Network(noise=...)`` to its node's coupling input.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.extend import core as jex_core
from jaxtyping import Array, ArrayLike, PRNGKeyArray, PyTree

from ._checks import broadcasts_to_regions, checked_as_run_starts, did_you_mean, python_number
from ._names import module_getattr
from ._param import Param, lands_in, read
from ._text import Readable
from ._units import (
    CANONICAL_UNITS,
    UnitError,
    as_float_array,
    check_real,
    is_quantity,
    per_ms,
    unxt_module,
)
from ._wrapping import AbstractSolverWrapper
from .models._base import AbstractModel, AbstractModelWrapper, State
from .solvers import (
    ExponentialEuler,
    ModelTerm,
    StochasticExponentialEuler,
    absolute_time,
    bounded_stages,
)

__all__ = [
    "AbstractNoise",
    "AbstractStateNoise",
    "AbstractWhiteNoise",
    "OUProcess",
    "WhiteNoise",
    "GaussianNoise",
    "BrownianNoise",
    "ColoredNoise",
    "PinkNoise",
    "BlueNoise",
    "VioletNoise",
    "MultiplicativeNoise",
    "Noisy",
    "NoiseTerm",
    "BlockBrownianPath",
    "BlockIncrements",
    "with_noise",
    "with_coupling_noise",
    "split_noise_kwargs",
]

# Derives the Brownian key from the simulation key, so that random initial states (drawn
# from the same key by `init_state`) and the noise are independent.
_NOISE_KEY_TAG = 0x6E6F6973


def _silence_wrapper_sde_warning() -> None:
    """diffrax warns when an SDE is solved by a solver not marked Itô or Stratonovich, but
    it looks through one wrapper only (`sde_convention`): it warned about our wrappers
    (`Substeps`, `BlockIncrements`, a delayed `Network`'s ``_DelayedCoupling``, ...), which
    follow the convention of the solver they wrap, also around ``diffrax.Heun``. The
    warning that matters, an unmarked solver on multiplicative noise, is `simulate`'s own
    (`check_sde_convention`), naming the solver the user gave. (Idempotent; re-applied per
    run because test runners and ``warnings.catch_warnings`` blocks reset the filters, and
    so that it names the wrappers of modules imported since.)"""
    names = sorted({cls.__name__ for cls in _subclasses(AbstractSolverWrapper)})
    warnings.filterwarnings(
        "ignore",
        message=rf"`({'|'.join(map(re.escape, names))})` is not marked as converging",
        category=UserWarning,
    )


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _reads(jaxpr, tainted: list[bool]) -> list[bool]:
    """Which outputs of ``jaxpr`` (a ``jax.extend.core.Jaxpr``) depend on the inputs flagged in
    ``tainted`` (data flow, not values: ``0 * y`` depends on ``y``). Calls with a jaxpr of
    their own (``pjit``, custom derivatives) are followed; any other operation depends on
    all its inputs."""
    seen = {v for v, t in zip(jaxpr.invars, tainted) if t}

    def hit(v):
        return not isinstance(v, jex_core.Literal) and v in seen

    for eqn in jaxpr.eqns:
        flags = [hit(v) for v in eqn.invars]
        if not any(flags):
            continue
        inner = next(
            (
                getattr(p, "jaxpr", p)
                for p in eqn.params.values()
                if isinstance(p, jex_core.ClosedJaxpr | jex_core.Jaxpr)
                and len(getattr(p, "jaxpr", p).invars) == len(eqn.invars)
                and len(getattr(p, "jaxpr", p).outvars) == len(eqn.outvars)
            ),
            None,
        )
        outs = [True] * len(eqn.outvars) if inner is None else _reads(inner, flags)
        seen.update(v for v, t in zip(eqn.outvars, outs) if t)
    return [hit(v) for v in jaxpr.outvars]


def multiplicative_noise(terms, t, y, args) -> bool:
    r"""Whether the diffusion of ``terms`` (the terms driven by a Brownian path) reads the
    state ``y``, i.e. the noise is multiplicative. Decided from the data flow of
    ``vf(t, y, args)``, not from its values (a coefficient $\sigma y^2$ reads ``y`` even where
    its derivative is 0). White noise on an input that enters additively (Hopf's ``x``),
    on a derivative, and the coloured processes (OU, ...: additive white noise on their
    own states) are additive; white noise on an input inside a nonlinearity
    (Wilson-Cowan's ``rE``, scaled by the slope at the current state) and
    `MultiplicativeNoise` are multiplicative."""
    noisy = [
        term
        for term in jax.tree_util.tree_leaves(
            terms, is_leaf=lambda x: isinstance(x, dfx.AbstractTerm) and not isinstance(x, dfx.MultiTerm)
        )
        if isinstance(term, dfx.AbstractTerm)
        and any(
            isinstance(leaf, dfx.AbstractBrownianPath)
            for leaf in jax.tree_util.tree_leaves(term, is_leaf=lambda x: isinstance(x, dfx.AbstractBrownianPath))
        )
    ]
    shapes = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), y)
    for term in noisy:
        closed = jax.make_jaxpr(lambda y_, term=term: term.vf(t, y_, args))(shapes)
        if any(_reads(closed.jaxpr, [True] * len(closed.jaxpr.invars))):
            return True
    return False


_silence_wrapper_sde_warning()


# -- units ---------------------------------------------------------------------------------


def _unit_of_kind(kind: str) -> str:
    """The unit string of ``kind`` (a key of CANONICAL_UNITS, or a unit string)."""
    return CANONICAL_UNITS.get(kind, kind)


# A field's accepted unit: (unit string, power of ms it is multiplied by), e.g. a white-noise
# intensity of a target in mV is ('mV', 0.5), mV sqrt(ms). Unit objects are built (importing
# unxt) only when a Quantity or a Param with a unit has to be converted.
_UnitSpec = tuple[str, float]


def _unit_object(spec: _UnitSpec):
    unxt = unxt_module()
    text, ms_power = spec
    unit = unxt.unit(text) if text else unxt.unit("")
    return unit * unxt.unit("ms") ** ms_power if ms_power else unit


def _unit_text(unit) -> str:
    text = str(unit)
    return "" if text in ("", "dimensionless") else text


def _convert(value: Any, where: str, units: tuple[_UnitSpec, ...], meaning: str) -> Any:
    """``value`` (number, array, Quantity or Param) in the first of ``units`` it fits.

    Plain numbers and unit-less Params are taken to be in ``units[0]`` already. `meaning`
    says in the error what the units are (e.g. "the unit of its target").
    """
    if isinstance(value, Param):
        if value.unit == "":
            return value
        objects = [_unit_object(spec) for spec in units]
        for unit in objects:
            try:
                return value.in_unit(where, _unit_text(unit) or "")
            except (UnitError, ValueError, TypeError):
                continue
        got = value.unit
    elif is_quantity(value):
        unxt = unxt_module()
        objects = [_unit_object(spec) for spec in units]
        for unit in objects:
            try:
                stripped = unxt.ustrip(unit, value)
            except Exception:  # noqa: BLE001 (unxt raises several types on a mismatch)
                continue
            # In the default float dtype, as a plain number is: Quantity(1, 's') holds an
            # int, stored as an int32 field that eqx.filter_grad skipped (no gradient, no
            # error); a weakly typed float compiled a second program.
            return as_float_array(stripped)
        got = str(unxt.unit_of(value))
    else:
        check_real(value, where)
        try:
            return jnp.asarray(value, dtype=jnp.result_type(float))
        except TypeError as err:
            raise TypeError(
                f"{where} must be a number, an array, a unxt Quantity or a Param; got "
                f"{type(value).__name__}."
            ) from err
    accepted = " or ".join(repr(_unit_text(u) or "dimensionless") for u in objects)
    raise UnitError(
        f"{where} has unit {got!r}, but it must be in {accepted} ({meaning}); "
        f"pass e.g. unxt.Quantity(value, {(_unit_text(objects[0]) or '')!r}) or a plain number in "
        "that unit."
    )


def _concrete(x: Any) -> np.ndarray | None:
    x = read(x)
    if isinstance(x, jax.core.Tracer) or any(
        isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x)
    ):
        return None
    if is_quantity(x):
        x = x.value
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return None


# -- noise specs ---------------------------------------------------------------------------


class AbstractNoise(Readable):
    """Base class of noise specs.

    A spec is an immutable description. Its fields may be numbers, arrays (broadcast to the
    target's regions), unxt Quantities or `Param` objects (trainable). `with_noise` converts
    them to canonical units for the target they are attached to.

    Subclasses declare ``field_units``: ``{field: kind}`` with kind one of ``'target'``,
    ``'target*sqrt(ms)'``, ``'target/sqrt(ms)'``, ``'time'``, ``'frequency'``.
    """

    field_units: ClassVar[dict[str, str]] = {}
    #: Fields that must be >= 0 (``nonnegative``) or > 0 (``positive``).
    nonnegative: ClassVar[tuple[str, ...]] = ()
    positive: ClassVar[tuple[str, ...]] = ()

    def __check_init__(self):
        for name, kind in self.field_units.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            label = f"{type(self).__name__}.{name}"
            # Text or complex numbers were kept until the run; a time or a frequency in the
            # wrong unit until the spec was attached (the target's kinds can only be then).
            check_real(read(value), label)
            if kind in ("time", "frequency"):
                _convert(value, label, ((_unit_of_kind(kind), 0.0),), f"a {kind}")
        for name in self.nonnegative + self.positive:
            value = _concrete(getattr(self, name))
            if value is None:
                continue
            for bad, rule in zip(self._refused(name, value), self._must_be(name)):
                if np.any(bad):
                    raise ValueError(f"{rule}, got {value}.")

    def _refused(self, name: str, value: Any) -> tuple[Any, Any]:
        """Where ``value`` (NumPy or JAX) breaks field ``name``'s rules (`nonnegative`,
        `positive`), one mask per rule of `_must_be`: NaN/inf, then below 0 (at 0 too, for a
        positive one)."""
        xp = jnp if isinstance(value, jax.Array) else np
        return ~xp.isfinite(value), (value <= 0) if name in self.positive else (value < 0)

    def _must_be(self, name: str) -> tuple[str, str]:
        """The texts of field ``name``'s checks, in the order they are tried (``"... must be
        finite"``, then ``"... must be positive"`` / ``"non-negative"``, as a model
        parameter's), shared by the eager message (``", got <value>."`` added) and the
        run-time one of a traced value (`checked_as_run_starts`, which raises the text of
        the first rule that fails: one combined text named both for either)."""
        need = "positive" if name in self.positive else "non-negative"
        return tuple(f"{type(self).__name__}: {name!r} must be {rule}" for rule in ("finite", need))

    def step_warning(self, dt_ms: float, target: str) -> str | None:
        """A warning `simulate` gives for a step ``dt_ms`` too coarse for this spec on
        ``target``, or None. Default: None."""
        return None

    def bind(self, target_unit: str, n_regions: int, where: str) -> AbstractNoise:
        """This spec with every field converted to canonical magnitudes for a target of
        unit ``target_unit`` (a unit string) and ``n_regions`` regions (shapes checked)."""
        dimensionless = target_unit == ""
        for f in dataclasses.fields(self):
            # A Quantity in a field without a declared unit kind stayed a Quantity and
            # failed inside the solver as a bare TracerArrayConversionError.
            if f.name not in self.field_units and is_quantity(read(getattr(self, f.name))):
                raise TypeError(
                    f"{where}.{f.name} is a unxt Quantity, but {type(self).__name__}.field_units does not "
                    f"say its unit kind, so it cannot be converted: declare field_units: ClassVar = "
                    f"{{{f.name!r}: 'target*sqrt(ms)'}} (or 'target', 'target/sqrt(ms)', 'time', 'frequency'), "
                    f"or pass a plain number."
                )
        new = {}
        for name, kind in self.field_units.items():
            value = getattr(self, name)
            if value is None:
                continue
            label = f"{where}.{name}"
            if kind == "target":
                units, meaning = ((target_unit, 0.0),), "the unit of its target"
            elif kind == "target*sqrt(ms)":
                units = ((target_unit, 0.5),) + ((("", -0.5),) if dimensionless else ())
                meaning = "its target's unit times sqrt(ms)"
            elif kind == "target/sqrt(ms)":
                units, meaning = ((target_unit, -0.5),), "its target's unit per sqrt(ms)"
            else:
                units, meaning = ((_unit_of_kind(kind), 0.0),), f"a {kind}"
            # (Whether the value is traced is read before the conversion, whose jnp.asarray
            # traces even a constant under jax.jit.)
            traced = _concrete(value) is None
            value = _convert(value, label, units, meaning)
            shape = jnp.shape(read(value))
            if not broadcasts_to_regions(shape, n_regions):
                raise ValueError(
                    f"{label} has shape {shape}, which does not broadcast to the {n_regions} "
                    f"regions of the target; give a scalar or an array of shape ({n_regions},)."
                )
            if traced and name in self.nonnegative + self.positive:
                # Traced (the spec built inside jax.jit / vmap / grad): checked as the run
                # starts, unless a Param's transform keeps it in range. A negative tau ran as
                # a divergence blaming dt; a negative sigma ran without a word.
                if not lands_in(value, 0.0):
                    value = checked_as_run_starts(value, self._refused(name, read(value)), self._must_be(name))
            new[name] = value
        out = copy.copy(self)
        for name, value in new.items():
            object.__setattr__(out, name, value)
        return out


class AbstractWhiteNoise(AbstractNoise):
    r"""Noise without state: the target's input receives $\mu + \sigma(t, y)\,\xi(t)$."""

    def coefficient(self, t: ArrayLike, state: State) -> Array:
        """$\\sigma(t, y)$, the intensity multiplying the unit white noise $\\xi(t)$: a
        scalar (the same for every region) or one value per region, ``(n_regions,)``, in the
        canonical magnitudes `bind` gave the fields (plain numbers)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement coefficient(self, t, state): the noise "
            f"intensity sigma(t, y), a scalar or one value per region."
        )

    def checked_coefficient(self, t: ArrayLike, state: State, n_regions: int) -> Array:
        """`coefficient` broadcast to the ``n_regions`` regions, refused (at trace time)
        when it is neither a scalar nor per region: an ``(n, 1)`` column failed inside
        ``broadcast_to`` with no word of the noise, and a Quantity as a bare
        ``TracerArrayConversionError``."""
        out = self.coefficient(t, state)
        name = f"{type(self).__name__}.coefficient"
        if is_quantity(out):
            raise TypeError(
                f"{name} returned a unxt Quantity; return plain numbers (the fields are already "
                f"plain numbers in the target's canonical unit once with_noise binds them)."
            )
        if jnp.shape(out) not in ((), (1,), (n_regions,)):
            raise ValueError(
                f"{name} returned shape {jnp.shape(out)}; it must return a scalar (one intensity for "
                f"every region) or one value per region, shape ({n_regions},)."
            )
        return jnp.broadcast_to(out, (n_regions,))

    def offset(self) -> Array | None:
        """A constant added to the input (the mean), or None."""
        return read(getattr(self, "mean", None))


class AbstractStateNoise(AbstractNoise):
    """Noise with state variables, integrated with the model; its value enters the input."""

    #: unit of the state variables: ``'target'`` or ``''`` (normalised components).
    state_unit: ClassVar[str] = "target"

    def state_shape(self, n: int) -> tuple[int, ...]:
        return (n,)

    def wiener_shape(self, n: int) -> tuple[int, ...]:
        """Shape of the independent Brownian motions driving the state."""
        return (n,)

    def init(self, n: int) -> Array:
        return jnp.zeros(self.state_shape(n), jnp.result_type(float))

    def drift_and_diagonal(self, eta: Array) -> tuple[Array, Array]:
        """Drift of the state and the diagonal of its Jacobian (for `ExponentialEuler`)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement drift_and_diagonal(self, eta) -> (drift, diagonal): "
            f"the drift of the noise state and the diagonal of its Jacobian."
        )

    def diffusion(self, eta: Array) -> Array:
        """Coefficient multiplying ``dW`` (broadcasts against ``wiener_shape``)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement diffusion(self, eta): "
            f"the coefficient multiplying dW."
        )

    def value(self, eta: Array) -> Array:
        """The contribution to the target input, shape ``(n,)``."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement value(self, eta): "
            f"the contribution to the target input, shape (n,)."
        )


def _or_zero(x):
    return 0.0 if x is None else read(x)


class OUProcess(AbstractStateNoise):
    r"""Ornstein-Uhlenbeck (coloured, exponentially correlated) noise, as in brainmass:

    $$\mathrm{d}\eta = \frac{\mu - \eta}{\tau}\,\mathrm{d}t + \frac{\sigma}{\sqrt{\tau}}\,\mathrm{d}W,$$

    added to the target input. Stationary mean $\mu$, standard deviation $\sigma/\sqrt 2$,
    autocorrelation $e^{-|\Delta t|/\tau}$. With `ExponentialEuler` one step is
    $\eta \leftarrow \eta + (1 - e^{-\Delta t/\tau})(\mu - \eta) + \sigma\sqrt{\Delta t/\tau}\,z$,
    brainmass's update.

    **Arguments:**

    - `sigma`: amplitude, in the target's unit ($\ge 0$).
    - `tau`: correlation time, ms or a time Quantity ($> 0$; default 10 ms as brainmass).
    - `mean`: stationary mean $\mu$ in the target's unit (default 0).
    - `init`: initial value of $\eta$ (default 0, as brainmass).
    """

    sigma: Any
    tau: Any = 10.0
    mean: Any = None
    init_value: Any = None

    field_units: ClassVar = {"sigma": "target", "tau": "time", "mean": "target", "init_value": "target"}
    nonnegative: ClassVar = ("sigma",)
    positive: ClassVar = ("tau",)

    def __init__(self, sigma, tau=10.0, mean=None, init=None):
        self.sigma = sigma
        self.tau = tau
        self.mean = mean
        self.init_value = init

    def init(self, n):
        return jnp.broadcast_to(jnp.asarray(_or_zero(self.init_value), jnp.result_type(float)), (n,))

    def drift_and_diagonal(self, eta):
        tau = read(self.tau)
        return (_or_zero(self.mean) - eta) / tau, jnp.broadcast_to(-1.0 / tau, eta.shape)

    def diffusion(self, eta):
        return read(self.sigma) / jnp.sqrt(read(self.tau))

    def value(self, eta):
        return eta


class BrownianNoise(AbstractStateNoise):
    r"""Brownian ("red") noise: the input receives $\mu + \eta$ with $\mathrm{d}\eta = \sigma\,\mathrm{d}W$.

    brainmass's ``BrownianNoise``: after time $t$ the variance of $\eta$ is $\sigma^2 t$.

    **Arguments:**

    - `sigma`: in the target's unit per $\sqrt{\mathrm{ms}}$ ($\ge 0$).
    - `mean`: offset in the target's unit (default 0).
    """

    sigma: Any
    mean: Any = None

    field_units: ClassVar = {"sigma": "target/sqrt(ms)", "mean": "target"}
    nonnegative: ClassVar = ("sigma",)

    def drift_and_diagonal(self, eta):
        zero = jnp.zeros_like(eta)
        return zero, zero

    def diffusion(self, eta):
        return read(self.sigma)

    def value(self, eta):
        return _or_zero(self.mean) + eta


class ColoredNoise(AbstractStateNoise):
    r"""Coloured noise in *time*, power spectral density $\propto 1/f^\beta$ for
    $f_{min} \le f \le f_{max}$, stationary standard deviation $\sigma$.

    The process is a weighted sum of independent unit-variance components with log-spaced
    time constants $\tau_k = 1/(2\pi f_k)$ (``per_decade`` per decade, from a decade below
    $f_{min}$ to a decade above $f_{max}$), weights $a_k^2 \propto \tau_k^{\beta-1}$. For
    $1 \le \beta < 2$ the components are OU processes (spectrum $2\tau/(1+\omega^2\tau^2)$);
    for $-2 < \beta < 1$ they are band-pass filters, the difference $u - v$ of two cascaded
    low-pass stages $\tau\dot u = -u + 2\sqrt{\tau}\,\xi$, $\tau \dot v = u - v$ (spectrum
    $4\tau\,\omega^2\tau^2/(1+\omega^2\tau^2)^2$, two states each). $\beta = 2$ is one
    slow OU process at $f_{min}/10$, $\beta = -2$ one band-pass filter at $10 f_{max}$.
    The exponent is exact to about $\pm 0.03$ for $|\beta| \le 1$ and drifts toward 0 by
    up to 0.2 as $|\beta| \to 2$. Every component is an SDE state, so the spectrum does
    not depend on ``dt`` as long as ``dt`` resolves the fastest component,
    $\tau_{min} = 1/(20\pi f_{max})$ (0.16 ms at the default $f_{max}$ = 100 Hz). The
    variance depends on ``dt`` only through the band-pass components: with the default
    `ExponentialEuler` an OU component's variance is exact at every ``dt`` (pink noise,
    $\beta = 1$, f_max 100 Hz, dt = 0.1 ms: 0.99 $\pm$ 0.05 $\sigma^2$), but the second
    stage of a band-pass component is driven by the first explicitly, so for $\beta < 1$
    (*including* the falling spectra $0 < \beta < 1$) the variance exceeds $\sigma^2$: at
    f_max = 100 Hz, 1.38 / 1.54 / 1.66 $\sigma^2$ for $\beta$ = 0.5 / 0 / -1 at dt = 0.1 ms,
    1.04 / 1.05 / 1.06 $\sigma^2$ at dt = 0.01 ms. Keep $dt \cdot f_{max} \lesssim 1$ (dt
    in ms, f_max in Hz) for an excess of about 6 % or less; `simulate` warns beyond that.

    brainmass's ``ColoredNoise`` colours each sample across *regions* and is white in time.

    **Arguments:**

    - `sigma`: stationary standard deviation, target unit ($\ge 0$).
    - `beta`: spectral exponent in $[-2, 2]$ (1 pink, 0 white, -1 blue, -2 violet).
    - `mean`: offset, target unit (default 0).
    - `f_min`, `f_max`: the band (Hz) where the spectrum follows $f^{-\beta}$.
    - `per_decade`: components per decade (2 keeps the local slope within ±0.03).
    """

    sigma: Any
    # NumPy scalars (a beta from np.linspace(-2, 2, 5, dtype=np.float32), a per_decade from
    # np.arange) become the Python numbers the checks and the hash of a static field expect.
    beta: float = eqx.field(default=1.0, static=True, converter=python_number)
    mean: Any = None
    f_min: float = eqx.field(default=1.0, static=True, converter=python_number)
    f_max: float = eqx.field(default=100.0, static=True, converter=python_number)
    per_decade: int = eqx.field(default=2, static=True, converter=python_number)

    field_units: ClassVar = {"sigma": "target", "mean": "target"}
    nonnegative: ClassVar = ("sigma",)
    state_unit: ClassVar = ""

    def __check_init__(self):
        cls = type(self).__name__
        if not (isinstance(self.beta, (int, float)) and -2.0 <= self.beta <= 2.0):
            raise ValueError(f"{cls}: 'beta' must be a number in [-2, 2], got {self.beta!r}.")
        if not (isinstance(self.f_min, (int, float)) and isinstance(self.f_max, (int, float))):
            raise TypeError(f"{cls}: 'f_min' and 'f_max' must be numbers in Hz, got {self.f_min!r}, {self.f_max!r}.")
        if not (0 < self.f_min < self.f_max < math.inf):
            raise ValueError(
                f"{cls}: need 0 < f_min < f_max (Hz), got f_min={self.f_min!r}, f_max={self.f_max!r}."
            )
        if not (isinstance(self.per_decade, int) and self.per_decade >= 1):
            raise ValueError(f"{cls}: 'per_decade' must be an int >= 1, got {self.per_decade!r}.")

    @property
    def bandpass(self) -> bool:
        return self.beta < 1.0

    def step_warning(self, dt_ms: float, target: str) -> str | None:
        if not self.bandpass or dt_ms * self.f_max <= 1.0:
            return None
        return (
            f"{type(self).__name__}(beta={self.beta:g}, f_max={self.f_max:g} Hz) on {target!r} at dt = {dt_ms:g} ms: "
            f"its band-pass components (beta < 1) are stepped too coarsely (dt * f_max = {dt_ms * self.f_max:g}, "
            "ms times Hz), so its variance exceeds sigma^2 (by 38-66 % at dt * f_max = 10). Take dt <= "
            f"{1.0 / self.f_max:g} ms, or a lower f_max, for an excess of about 6 % or less."
        )

    def _taus_and_weights(self) -> tuple[np.ndarray, np.ndarray]:
        if self.beta == 2.0:
            freqs = np.array([self.f_min / 10.0])
        elif self.beta == -2.0:
            freqs = np.array([self.f_max * 10.0])
        else:
            lo, hi = math.log10(self.f_min) - 1.0, math.log10(self.f_max) + 1.0
            freqs = np.logspace(lo, hi, math.ceil((hi - lo) * self.per_decade) + 1)
        taus = 1e3 / (2.0 * np.pi * freqs)  # ms
        w = taus ** (self.beta - 1.0)
        return taus, np.sqrt(w / w.sum())

    def _columns(self):
        taus, weights = self._taus_and_weights()
        dtype = jnp.result_type(float)
        return jnp.asarray(taus, dtype)[:, None], jnp.asarray(weights, dtype)[:, None]

    def state_shape(self, n):
        k = len(self._taus_and_weights()[0])
        return (2, k, n) if self.bandpass else (k, n)

    def wiener_shape(self, n):
        return (len(self._taus_and_weights()[0]), n)

    def drift_and_diagonal(self, eta):
        tau, _ = self._columns()
        diag = jnp.broadcast_to(-1.0 / tau, eta.shape)
        if self.bandpass:
            # Two cascaded low-pass stages; their difference is the band-pass output.
            # Every state decays at rate 1/tau, which ExponentialEuler integrates exactly.
            lead, lag = eta[0], eta[1]
            return jnp.stack([-lead / tau, (lead - lag) / tau]), diag
        return -eta / tau, diag

    def diffusion(self, eta):
        tau, _ = self._columns()
        if self.bandpass:
            return jnp.stack([2.0 / jnp.sqrt(tau), jnp.zeros_like(tau)])
        return jnp.sqrt(2.0 / tau)

    def value(self, eta):
        _, weights = self._columns()
        components = eta[0] - eta[1] if self.bandpass else eta
        return _or_zero(self.mean) + read(self.sigma) * jnp.sum(weights * components, axis=0)


def _named_colour(name: str, beta: float, doc: str):
    def __init__(self, sigma, mean=None, f_min=1.0, f_max=100.0, per_decade=2):
        ColoredNoise.__init__(
            self, sigma=sigma, beta=beta, mean=mean, f_min=f_min, f_max=f_max, per_decade=per_decade
        )

    return type(name, (ColoredNoise,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


PinkNoise = _named_colour(
    "PinkNoise", 1.0, "Pink noise: `ColoredNoise` with $\\beta = 1$ (PSD $\\propto 1/f$) in time."
)
BlueNoise = _named_colour(
    "BlueNoise",
    -1.0,
    "Blue noise: `ColoredNoise` with $\\beta = -1$ (PSD $\\propto f$) in time. (brainmass "
    "uses $\\beta = -2$ under this name, across regions.)",
)
VioletNoise = _named_colour(
    "VioletNoise",
    -2.0,
    "Violet noise: `ColoredNoise` with $\\beta = -2$ (PSD $\\propto f^2$) in time. (brainmass "
    "uses $\\beta = -4$ under this name, across regions.)",
)


class WhiteNoise(AbstractWhiteNoise):
    r"""Additive Gaussian white noise: the target input receives $\mu + \sigma\,\xi(t)$,
    i.e. the state receives $\sigma\,\mathrm{d}W$ (for an additive input).

    Correctly scaled: a step of ``dt`` adds $\sigma\sqrt{dt}\,z$, so statistics do not
    depend on ``dt``. (brainmass adds $\sigma z\,dt$, which vanishes as ``dt`` shrinks.)

    **Arguments:**

    - `sigma`: intensity, in the target's unit times $\sqrt{\mathrm{ms}}$ ($\ge 0$).
    - `mean`: constant offset, in the target's unit (default 0).
    """

    sigma: Any
    mean: Any = None

    field_units: ClassVar = {"sigma": "target*sqrt(ms)", "mean": "target"}
    nonnegative: ClassVar = ("sigma",)

    def coefficient(self, t, state):
        return read(self.sigma)


class GaussianNoise(WhiteNoise):
    """Alias of `WhiteNoise` (brainmass's name)."""


class MultiplicativeNoise(AbstractWhiteNoise):
    r"""State-dependent (multiplicative) white noise: the input receives
    $\sigma\,h(t, y)\,\xi(t)$.

    Interpreted in the Itô sense by `ExponentialEuler` and ``diffrax.Euler``
    (Euler-Maruyama) and in the Stratonovich sense by ``diffrax.Heun``.

    **Arguments:**

    - `diffusion`: a callable ``h(t, state) -> array (n_regions,)`` (``state`` is the dict of
      every state variable, noise states included). It may be an ``eqx.Module`` with
      trainable fields.
    - `sigma`: a scale, target unit times $\sqrt{\mathrm{ms}}$ (default 1).
    """

    diffusion: Callable
    sigma: Any = 1.0

    field_units: ClassVar = {"sigma": "target*sqrt(ms)"}
    nonnegative: ClassVar = ("sigma",)

    def __check_init__(self):
        if not callable(self.diffusion):
            raise TypeError(
                f"MultiplicativeNoise: 'diffusion' must be a callable h(t, state) -> array, got "
                f"{type(self.diffusion).__name__}."
            )

    def coefficient(self, t, state):
        return read(self.sigma) * self.diffusion(t, state)

    def offset(self):
        return None


# -- Brownian paths ------------------------------------------------------------------------
#
# JAX lowers its threefry hash to a rolled loop on CPU, so a per-step ``jax.random.normal``
# costs microseconds of fixed overhead, and keeping a pre-drawn block in a loop carry makes
# XLA copy it every step. Instead the normals of one step are computed in place by an
# unrolled Threefry-2x32 (the same integer arithmetic as JAX's, which XLA fuses into the
# step): row ``j`` of ``jax.random.normal(jax.random.fold_in(key, b), (B, ...))``, computed
# without the other rows.

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: Array, r: int) -> Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """Threefry-2x32 (20 rounds), unrolled; bit-identical to ``jax``'s threefry2x32."""
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotl(x1, r)
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _key_words(key: PRNGKeyArray) -> Array:
    """The two uint32 words of a threefry key (other key types are hashed into one)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jr.key_impl(key)) == "threefry2x32":
            return jr.key_data(key)
        return jr.bits(key, (2,), jnp.uint32)
    key = jnp.asarray(key)
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise TypeError(
            f"key must be a JAX PRNG key (jax.random.key(seed)), got an array of dtype {key.dtype} "
            f"and shape {key.shape}."
        )
    return key


def _fold_in(words: Array, data: Array) -> Array:
    """``jax.random.fold_in`` on threefry key words."""
    a, b = _threefry2x32(words[0], words[1], jnp.zeros((), jnp.uint32), jnp.asarray(data).astype(jnp.uint32))
    return jnp.stack([a, b])


def _normals_at(words: Array, first: Array, size: int, dtype) -> Array:
    """Elements ``first, ..., first + size - 1`` of the flattened
    ``jax.random.normal(key, shape, dtype)`` (JAX's partitionable threefry layout)."""
    counter = jnp.asarray(first).astype(jnp.uint32) + jnp.arange(size, dtype=jnp.uint32)
    b1, b2 = _threefry2x32(words[0], words[1], jnp.zeros_like(counter), counter)
    finfo = jnp.finfo(dtype)
    if finfo.bits == 64:
        bits = (b1.astype(jnp.uint64) << np.uint64(32)) | b2.astype(jnp.uint64)
        one = np.array(1.0, np.float64).view(np.uint64)
    else:
        bits = b1 ^ b2
        one = np.array(1.0, np.float32).view(np.uint32)
    mantissa = bits >> np.array(finfo.bits - finfo.nmant, bits.dtype)
    floats = jax.lax.bitcast_convert_type(mantissa | one, dtype) - jnp.array(1.0, dtype)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    uniform = jax.lax.max(jnp.asarray(lo, dtype), floats * (jnp.array(1.0, dtype) - lo) + lo)
    return jnp.asarray(np.sqrt(2), dtype) * jax.lax.erf_inv(uniform)


def _leaves_layout(shape: PyTree[jax.ShapeDtypeStruct]):
    leaves, treedef = jax.tree_util.tree_flatten(shape)
    dtypes = {jnp.dtype(leaf.dtype) for leaf in leaves}
    if len(dtypes) > 1:
        raise ValueError(f"BlockBrownianPath: every leaf of `shape` must have the same dtype, got {dtypes}.")
    sizes = [math.prod(leaf.shape) for leaf in leaves]
    return leaves, treedef, sizes


class BlockBrownianPath(dfx.AbstractBrownianPath):
    r"""Brownian motion on a fixed step grid, drawn in blocks of steps.

    Steps $i = bB + j$ of the grid $t_{start} + i\,\Delta t$ ($0 \le j < B$) form block $b$.
    With $S$ the total size of ``shape``, the normals of step $i$ are row $j$ of
    ``jax.random.normal(jax.random.fold_in(key, b), (B, S))`` (``(B, 2, S)`` with Lévy
    area); the increment is $\sqrt{\Delta t}\,z$ and the space-time Lévy area
    $\sqrt{\Delta t/12}\,z'$. Each row is computed on its own, in the step that needs it
    (see the comment above `_threefry2x32`): a step costs $S$ hashes and no stored block.
    Because the block index comes from the absolute step index, a run split into chunks
    sees exactly the same increments.

    ``evaluate(t0, t1)`` works for any interval on the grid (times are rounded to it).
    `BlockIncrements` (used by `simulate` for noisy models) counts steps exactly instead of
    rounding times, which matters for very long float32 runs.

    **Arguments:**

    - `shape`: a pytree of ``jax.ShapeDtypeStruct`` (or a tuple of ints) for the increments.
    - `key`: a JAX PRNG key.
    - `dt`: the grid step (ms).
    - `t_start`: the grid origin (default 0).
    - `block`: steps per block, $B$ (default 1024).
    - `levy_area`: ``diffrax.BrownianIncrement`` or ``diffrax.SpaceTimeLevyArea``.
    - `first_step`: the absolute index of the step that starts at ``t_start`` (default 0);
      a continued run starts where the earlier run's steps ended, so that it draws the
      increments an uninterrupted run would (not the earlier run's again).
    """

    shape: PyTree[jax.ShapeDtypeStruct] = eqx.field(static=True)
    key: PRNGKeyArray
    first_step: Any
    dt: float = eqx.field(static=True)
    t_start: float = eqx.field(static=True)
    block: int = eqx.field(static=True)
    levy_area: type = eqx.field(static=True)

    def __init__(self, shape, key, dt, t_start=0.0, block=1024, levy_area=dfx.BrownianIncrement, first_step=0):
        dt, block = python_number(dt), python_number(block)
        if isinstance(shape, tuple) and all(isinstance(s, int) for s in shape):
            shape = jax.ShapeDtypeStruct(shape, jnp.result_type(float))
        if not (isinstance(dt, (int, float)) and dt > 0):
            raise ValueError(f"BlockBrownianPath: 'dt' must be a positive number (ms), got {dt!r}.")
        if levy_area not in (dfx.BrownianIncrement, dfx.SpaceTimeLevyArea):
            raise ValueError(
                "BlockBrownianPath: 'levy_area' must be diffrax.BrownianIncrement or "
                f"diffrax.SpaceTimeLevyArea, got {levy_area!r}."
            )
        _, _, sizes = _leaves_layout(shape)
        m = 2 if levy_area is dfx.SpaceTimeLevyArea else 1
        if not (isinstance(block, int) and block >= 1 and block * m * sum(sizes) < 2**32):
            raise ValueError(
                f"BlockBrownianPath: 'block' must be an int >= 1 with block * size < 2**32, got {block!r}."
            )
        self.shape = shape
        self.key = key
        self.first_step = jnp.asarray(first_step, jnp.int32)
        self.dt = float(dt)
        self.t_start = float(t_start)
        self.block = block
        self.levy_area = levy_area

    @property
    def t0(self):
        return self.t_start

    @property
    def t1(self):
        return math.inf

    @property
    def _n_normals(self) -> int:
        return 2 if self.levy_area is dfx.SpaceTimeLevyArea else 1

    def step_index(self, t: ArrayLike) -> Array:
        """The index of the grid step that starts at ``t``."""
        return jnp.round((jnp.asarray(t) - self.t_start) / self.dt).astype(jnp.int32) + self.first_step

    def step_normals(self, i: ArrayLike) -> Array:
        """Standard normals of step ``i``, shape ``(1 or 2, S)``."""
        leaves, _, sizes = _leaves_layout(self.shape)
        width = self._n_normals * sum(sizes)
        i = jnp.asarray(i)
        words = _fold_in(_key_words(self.key), i // self.block)
        # Two chained hashes and erf_inv in one fusion took jaxlib 0.11.2's XLA:CPU minutes to
        # compile (LLVM; 100 steps of 4 Hopf nodes with white noise still compiling after 60 s,
        # 1.0 s with this barrier); the block's key is one scalar pair: keeping it out is free.
        words = jax.lax.optimization_barrier(words)
        z = _normals_at(words, (i % self.block) * width, width, leaves[0].dtype)
        return z.reshape(self._n_normals, sum(sizes))

    def _unflatten(self, flat: Array) -> PyTree[Array]:
        leaves, treedef, sizes = _leaves_layout(self.shape)
        out, start = [], 0
        for leaf, size in zip(leaves, sizes):
            out.append(flat[start : start + size].reshape(leaf.shape))
            start += size
        return jax.tree_util.tree_unflatten(treedef, out)

    def step_increment(self, i: ArrayLike, use_levy: bool = False):
        """The increment of step ``i`` (a `diffrax.AbstractBrownianIncrement` if ``use_levy``)."""
        z = self.step_normals(i)
        w = self._unflatten(math.sqrt(self.dt) * z[0])
        if not use_levy:
            return w
        dt = jax.tree_util.tree_map(lambda x: jnp.asarray(self.dt, x.dtype), w)
        if self.levy_area is dfx.SpaceTimeLevyArea:
            return dfx.SpaceTimeLevyArea(dt=dt, W=w, H=self._unflatten(math.sqrt(self.dt / 12.0) * z[1]))
        return dfx.BrownianIncrement(dt=dt, W=w)

    @eqx.filter_jit
    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        """The increment $W(t_1) - W(t_0)$ (or $W(t_0) - W(t_{start})$ without ``t1``)."""
        del left
        if t1 is None:
            t0, t1 = self.t_start, t0
        t0 = eqx.internal.nondifferentiable(jnp.asarray(t0), name="t0")
        t1 = eqx.internal.nondifferentiable(jnp.asarray(t1), name="t1")
        i0, i1 = self.step_index(t0), self.step_index(t1)
        leaves, _, sizes = _leaves_layout(self.shape)
        dtype = leaves[0].dtype
        sqrt_dt = math.sqrt(self.dt)

        # Space-time Lévy areas combine in order: with barH = h * H over [s, u] split at t,
        # barH_su = barH_st + barH_tu + (h_tu W_st - h_st W_tu) / 2.
        def per_step(i, carry):
            w_a, bh_a, h_a = carry
            z = self.step_normals(i)
            w = sqrt_dt * z[0]
            bh = self.dt * math.sqrt(self.dt / 12.0) * z[-1]
            return w_a + w, bh_a + bh + (self.dt * w_a - h_a * w) / 2.0, h_a + self.dt

        zero = jnp.zeros(sum(sizes), dtype)
        w_sum, bar_h, h = jax.lax.fori_loop(i0, jnp.maximum(i0, i1), per_step, (zero, zero, jnp.zeros((), dtype)))
        w = self._unflatten(w_sum)
        if not use_levy:
            return w
        dt = jax.tree_util.tree_map(lambda x: (t1 - t0).astype(x.dtype), w)
        if self.levy_area is dfx.SpaceTimeLevyArea:
            return dfx.SpaceTimeLevyArea(dt=dt, W=w, H=self._unflatten(bar_h / jnp.where(h > 0, h, 1.0)))
        return dfx.BrownianIncrement(dt=dt, W=w)


class _StepIncrement(dfx.AbstractBrownianPath):
    """The increment of the current step, already drawn (used inside `BlockIncrements`)."""

    increment: Any
    levy_area: type = eqx.field(static=True)

    @property
    def t0(self):
        return -math.inf

    @property
    def t1(self):
        return math.inf

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        if use_levy:
            return self.increment
        return self.increment.W


def _is_block_path(x) -> bool:
    return isinstance(x, BlockBrownianPath)


def _find_block_path(terms) -> BlockBrownianPath | None:
    found = [x for x in jax.tree_util.tree_leaves(terms, is_leaf=_is_block_path) if _is_block_path(x)]
    if len(found) > 1:
        raise ValueError("BlockIncrements: the terms hold more than one BlockBrownianPath; use one path.")
    return found[0] if found else None


class BlockIncrements(AbstractSolverWrapper, dfx.AbstractWrappedSolver):
    """Run ``solver`` with the increments of a `BlockBrownianPath` indexed by an exact step
    counter (carried in the solver state) instead of by rounding the time.

    Each step gives the wrapped solver the increment of exactly that step, so the solver
    must evaluate the Brownian control over its whole step only (Euler, Heun and the other
    Runge-Kutta methods, `ExponentialEuler`, the SRK solvers do; ``diffrax.HalfSolver``
    does not). Terms without a `BlockBrownianPath` (e.g. a ``VirtualBrownianTree`` for
    adaptive steps) pass through unchanged.

    **Arguments:**

    - `solver`: the diffrax solver to wrap.
    """

    solver: dfx.AbstractSolver

    def init(self, terms, t0, t1, y0, args):
        path = _find_block_path(terms)
        inner = self.solver.init(terms, t0, t1, y0, args)
        return (None if path is None else path.step_index(t0), inner)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        path = _find_block_path(terms)
        i, inner = solver_state
        if path is not None:
            increment = _StepIncrement(path.step_increment(i, use_levy=True), path.levy_area)
            terms = jax.tree_util.tree_map(
                lambda x: increment if _is_block_path(x) else x, terms, is_leaf=_is_block_path
            )
            i = i + 1
        y1, err, dense, inner, result = self.solver.step(terms, t0, t1, y0, args, inner, made_jump)
        return y1, err, dense, (i, inner), result


# -- attaching noise to a model --------------------------------------------------------------


class NoiseTerm(dfx.AbstractTerm):
    r"""The diffusion term $g(t, y)\,\mathrm{d}W$ of a `Noisy` model.

    ``vf`` returns the coefficients per Brownian motion; ``contr`` the Brownian increments
    (a dict ``{'white': {target: dW}, 'state': {noise state: dW}}``); ``prod`` the state
    increment (a dict like the state).

    **Arguments:**

    - `model`: the `Noisy` model whose ``diffusion(t, y, inputs)`` gives the coefficients.
    - `path`: the Brownian motion, a diffrax ``AbstractPath`` whose increments have the
      structure above (e.g. `BlockIncrements`, as `simulate` uses).
    """

    model: Any
    path: dfx.AbstractPath

    def vf(self, t, y, args):
        return self.model.diffusion(absolute_time(args, t), y, args.evaluate(t))

    def contr(self, t0, t1, **kwargs):
        # A path that carries Lévy area serves an SRK solver; always return the full
        # increment so that diffrax's term check (which may not be told use_levy=True when
        # the solver is wrapped) sees the Lévy area too. `prod` reads its W.
        if getattr(self.path, "levy_area", dfx.BrownianIncrement) is not dfx.BrownianIncrement:
            kwargs["use_levy"] = True
        return self.path.evaluate(t0, t1, **kwargs)

    def prod(self, vf, control):
        if isinstance(control, dfx.AbstractBrownianIncrement):
            control = control.W
        out = dict(vf["base"])
        for target, tangent in vf["white"].items():
            dw = control["white"][target]
            for name, coefficient in tangent.items():
                out[name] = out[name] + coefficient * dw
        for name, coefficient in vf["state"].items():
            out[name] = out[name] + coefficient * control["state"][name]
        return out


Enters = Literal["input", "derivative"]


def _enter_pairs(enters: Mapping[str, str] | tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``{target: mode}`` (or its pairs) as sorted pairs: hashable, as a static field must be."""
    return tuple(sorted(dict(enters).items()))


class Noisy(AbstractModelWrapper):
    """A model with noise attached (build it with `with_noise`).

    It has the model contract: its states are the model's plus one ``<target>_noise`` state
    per coloured noise (OU, Brownian, 1/f^β); observables ``noise_<target>`` give the value
    a coloured noise adds to its target. Attribute access falls through to the wrapped
    model (``noisy.a`` is ``noisy.model.a``). `simulate` needs ``key=`` for it.

    **Fields:**

    - `model`: the deterministic model.
    - `noise`: ``{target: noise spec}`` in canonical units.
    - `enters`: ``{target: 'input' | 'derivative'}``; stored as its sorted
      ``(target, mode)`` pairs.
    """

    # Defaults only because the base class's n_regions has one; `with_noise` fills them.
    model: AbstractModel = None
    noise: dict = None
    enters: tuple[tuple[str, str], ...] = eqx.field(default=(), static=True, converter=_enter_pairs)

    is_stochastic: ClassVar[bool] = True

    def __post_init__(self):
        if not isinstance(self.model, AbstractModel):
            raise TypeError(f"Noisy: `model` must be a brainmass_eqx model, got {type(self.model).__name__}.")
        self.n_regions = self.model.n_regions
        self.noise = dict(self.noise or {})

    # -- names ------------------------------------------------------------------------------

    @property
    def _enters(self) -> dict[str, str]:
        return dict(self.enters)

    def step_warning(self, dt_ms: float) -> str | None:
        """The first of the noise specs' step warnings (`AbstractNoise.step_warning`)."""
        for target, spec in self.noise.items():
            message = spec.step_warning(dt_ms, target)
            if message:
                return message
        return None

    @property
    def _stateful(self) -> dict[str, AbstractStateNoise]:
        return {t: s for t, s in self.noise.items() if isinstance(s, AbstractStateNoise)}

    @property
    def _white(self) -> dict[str, AbstractWhiteNoise]:
        return {t: s for t, s in self.noise.items() if isinstance(s, AbstractWhiteNoise)}

    @property
    def noise_state_names(self) -> tuple[str, ...]:
        return tuple(f"{t}_noise" for t in self._stateful)

    @property
    def state_names(self):
        return tuple(self.model.state_names) + self.noise_state_names

    @property
    def observables(self):
        return tuple(self.model.observables) + tuple(f"noise_{t}" for t in self._stateful)

    def _target_unit_text(self, target: str) -> str:
        return _target_unit(self.model, target, self._enters[target])

    @property
    def state_units(self):
        units = dict(self.model.state_units)
        for t, spec in self._stateful.items():
            units[f"{t}_noise"] = self._target_unit_text(t) if spec.state_unit == "target" else ""
        return units

    @property
    def observable_units(self):
        units = dict(getattr(self.model, "observable_units", {}))
        for t in self._stateful:
            units[f"noise_{t}"] = self._target_unit_text(t)
        return units

    # -- dynamics -----------------------------------------------------------------------------

    def _split(self, state: State, inputs: dict) -> tuple[State, dict, dict]:
        """(model state, inputs with the noise added, derivative offsets)."""
        inner = {k: state[k] for k in self.model.state_names}
        inputs = dict(inputs)
        offsets = {}
        for t, spec in self.noise.items():
            if isinstance(spec, AbstractStateNoise):
                value = spec.value(state[f"{t}_noise"])
            else:
                value = spec.offset()
                if value is None:
                    continue
            if self._enters[t] == "input":
                inputs[t] = inputs.get(t, 0.0) + value
            else:
                offsets[t] = offsets.get(t, 0.0) + value
        return inner, inputs, offsets

    def vector_field(self, t, state, inputs):
        inner, inputs, offsets = self._split(state, inputs)
        f = dict(self.model.vector_field(t, inner, inputs))
        for k, v in offsets.items():
            f[k] = f[k] + v
        for target, spec in self._stateful.items():
            f[f"{target}_noise"] = spec.drift_and_diagonal(state[f"{target}_noise"])[0]
        return f

    def vector_field_and_diagonal(self, t, state, inputs):
        inner, inputs, offsets = self._split(state, inputs)
        f, diag = self.model.vector_field_and_diagonal(t, inner, inputs)
        f, diag = dict(f), dict(diag)
        for k, v in offsets.items():
            f[k] = f[k] + v
        for target, spec in self._stateful.items():
            f[f"{target}_noise"], diag[f"{target}_noise"] = spec.drift_and_diagonal(state[f"{target}_noise"])
        return f, diag

    def diffusion(self, t, state, inputs) -> dict:
        """Coefficients of the Brownian motions (see `NoiseTerm`)."""
        inner, noisy_inputs, _ = self._split(state, inputs)
        dtype = jnp.result_type(float)
        white = {}
        for target, spec in self._white.items():
            s = jnp.asarray(spec.checked_coefficient(t, state, self.n_regions), dtype)
            if self._enters[target] == "derivative":
                white[target] = {target: s}
                continue
            base = jnp.broadcast_to(jnp.asarray(noisy_inputs.get(target, 0.0), dtype), (self.n_regions,))

            def response(value, target=target):
                return self.model.vector_field(t, inner, {**noisy_inputs, target: value})

            # The state's response to the input perturbation s * xi: (df/dI) s. Exactly s on
            # the target's own state when the input is additive; the rest is zeros.
            _, white[target] = jax.jvp(response, (base,), (s,))
        return {
            "base": {k: jnp.zeros_like(v) for k, v in state.items()},
            "white": white,
            "state": {
                f"{t}_noise": spec.diffusion(state[f"{t}_noise"]) for t, spec in self._stateful.items()
            },
        }

    def brownian_shape(self) -> dict:
        """The pytree of ``jax.ShapeDtypeStruct`` of the Brownian increments."""
        dtype = jnp.result_type(float)
        n = self.n_regions
        return {
            "white": {t: jax.ShapeDtypeStruct((n,), dtype) for t in self._white},
            "state": {
                f"{t}_noise": jax.ShapeDtypeStruct(spec.wiener_shape(n), dtype) for t, spec in self._stateful.items()
            },
        }

    def init_state(self, key: PRNGKeyArray | None = None) -> State:
        state = dict(self.model.init_state(key))
        for t, spec in self._stateful.items():
            state[f"{t}_noise"] = jnp.asarray(spec.init(self.n_regions), jnp.result_type(float))
        return state

    def post_step(self, state):
        inner = self.model.post_step({k: state[k] for k in self.model.state_names})
        return {**state, **inner}

    def observe(self, name, state):
        if name in self.state_names:
            return state[name]
        if name.startswith("noise_") and name[len("noise_") :] in self._stateful:
            t = name[len("noise_") :]
            return self._stateful[t].value(state[f"{t}_noise"])
        return self.model.observe(name, {k: state[k] for k in self.model.state_names})

    # -- solving --------------------------------------------------------------------------------

    def terms(
        self,
        key: PRNGKeyArray | None = None,
        *,
        dt: float | None = None,
        t1: float | None = None,
        adaptive: bool = False,
        solver: dfx.AbstractSolver | None = None,
        step_offset: Any = 0,
    ):
        """``MultiTerm(ModelTerm(self), NoiseTerm(self, brownian path))``.

        **Arguments:**

        - `key`: the PRNG key of the run (required).
        - `dt`: the fixed step (ms): the grid of the `BlockBrownianPath`.
        - `t1`: the end of the run (ms); needed for adaptive steps.
        - `adaptive`: use a ``diffrax.VirtualBrownianTree`` (tolerance ``dt / 16``) instead.
        - `solver`: the solver the terms are for (selects the Lévy area it needs).
        - `step_offset`: steps already taken by the runs this one continues (`simulate` with
          ``y0=trajectory``): the noise goes on from there instead of starting again.
        """
        if key is None:
            names = sorted(self.noise)
            raise ValueError(
                f"key: {self.model._label()} with noise on {names} is stochastic; pass a PRNG "
                "key, e.g. simulate(..., key=jax.random.key(0)) (the same key gives the same run)."
            )
        if dt is None:
            raise ValueError("dt: Noisy.terms needs the step dt (ms) to lay out the Brownian increments.")
        levy_area = _levy_area_for(solver)
        _silence_wrapper_sde_warning()
        noise_key = jr.fold_in(key, _NOISE_KEY_TAG)
        shape = self.brownian_shape()
        if adaptive:
            if t1 is None:
                raise ValueError("t1: adaptive noisy runs need the end time t1 (ms) for the Brownian tree.")
            # A continued adaptive run cannot extend the tree; it draws a new one.
            tree_key = noise_key if isinstance(step_offset, int) and step_offset == 0 else jr.fold_in(noise_key, step_offset)
            path = dfx.VirtualBrownianTree(0.0, t1, tol=dt / 16.0, shape=shape, key=tree_key, levy_area=levy_area)
        else:
            path = BlockBrownianPath(shape, noise_key, dt, levy_area=levy_area, first_step=step_offset)
        return dfx.MultiTerm(ModelTerm(self), NoiseTerm(self, path))

    def wrap_solver(self, solver, dt=None):
        """The model's solver hook, with `ExponentialEuler` replaced by its SDE form and the
        whole wrapped in `BlockIncrements` (``dt`` is passed on to models that need it)."""
        if type(solver) is ExponentialEuler:
            solver = StochasticExponentialEuler()
        # As `Substeps` does for the solvers it sees directly (it cannot see through our
        # wrapper): a bounded stage loop, so that forward-mode AD works too.
        solver = bounded_stages(solver)
        if dt is None:
            inner = self.model.wrap_solver(solver)
        else:
            from ._simulate import _wrap_solver  # it imports the model contract, as we do

            inner = _wrap_solver(self.model, solver, dt)
        return BlockIncrements(inner)


def _levy_area_for(solver) -> type:
    needed = getattr(solver, "minimal_levy_area", dfx.BrownianIncrement)
    if issubclass(needed, dfx.AbstractSpaceTimeTimeLevyArea):
        raise ValueError(
            f"solver {type(solver).__name__} needs space-time-time Lévy area, which noisy models do "
            "not provide; use ExponentialEuler, diffrax.Euler/Heun, RK4, SRA1 or ShARK."
        )
    if issubclass(needed, dfx.AbstractSpaceTimeLevyArea):
        return dfx.SpaceTimeLevyArea
    return dfx.BrownianIncrement


def _target_unit(model, target: str, enters: str) -> str:
    """The unit string of what the noise adds to: an input, or a state's derivative."""
    if enters == "input":
        return _unit_of_kind(model.input_units.get(target, "dimensionless"))
    return per_ms(model.state_units.get(target, ""))


def _valid_targets(model) -> list[str]:
    names = list(model.input_names)
    return names + [s for s in model.state_names if s not in names]


def with_noise(
    model: AbstractModel,
    noise: Mapping[str, AbstractNoise] | None = None,
    /,
    *,
    enters: Enters | Mapping[str, Enters] | None = None,
    **noise_kwargs: AbstractNoise | None,
) -> AbstractModel:
    """Attach noise to named targets of ``model``; returns a `Noisy` model.

    ``with_noise(Hopf(80), {'x': OUProcess(0.05, tau=20)})`` or, brainmass style,
    ``with_noise(Hopf(80), noise_x=OUProcess(0.05, tau=20))``.

    **Arguments:**

    - `model`: any model (a `Noisy` model gets the new noise added).
    - `noise`: ``{target: spec}``. A target is an input name (the noise is added to that
      input) or a state name (the noise is added to its time derivative).
    - `enters`: ``'input'`` or ``'derivative'``, for all targets or per target; default
      the model's ``noise_enters`` for the target (Epileptor's ``x1`` and ``x2``:
      ``'derivative'``, as brainmass), else ``'input'`` where the target is an input,
      else ``'derivative'``.
    - `noise_<target>`: keyword form of ``noise`` (``None`` values are ignored).

    **Returns:** the noisy model (the model itself if no noise is given).
    """
    if noise is not None and not isinstance(noise, Mapping):
        targets = _valid_targets(model) if isinstance(model, AbstractModel) else ["<target>"]
        example = type(noise).__name__ + "(...)" if isinstance(noise, AbstractNoise) else "spec"
        raise TypeError(
            f"with_noise: `noise` must be a dict {{target: spec}} naming what the noise drives, "
            f"got {type(noise).__name__}: write with_noise(model, {{{targets[0]!r}: {example}}}) "
            f"or with_noise(model, noise_{targets[0]}={example}); valid targets are {targets}."
        )
    specs = dict(noise or {})
    for kw, spec in noise_kwargs.items():
        if not kw.startswith("noise_"):
            raise TypeError(f"with_noise got an unexpected keyword {kw!r}; noise keywords are named noise_<target>.")
        if spec is not None:
            target = kw[len("noise_") :]
            if target in specs:
                raise ValueError(f"noise on {target!r} given twice (in `noise` and as {kw}=).")
            specs[target] = spec
    if not specs:
        return model
    if isinstance(model, Noisy):
        clash = sorted(set(specs) & set(model.noise))
        if clash:
            raise ValueError(f"noise: {clash} already carry noise in this model; attach one spec per target.")
        previous = dict(model.enters)
        merged = with_noise(model.model, {**model.noise, **specs}, enters={**previous, **_enters_map(enters, specs)})
        return merged
    if not isinstance(model, AbstractModel):
        raise TypeError(f"with_noise: `model` must be a brainmass_eqx model, got {type(model).__name__}.")
    from .observation._inloop import refuse_inner_bold  # observation imports this module

    refuse_inner_bold(model, "with_noise")
    valid = _valid_targets(model)
    inputs = set(model.input_names)
    entering = _enters_map(enters, specs)
    bound, modes = {}, {}
    for target, spec in specs.items():
        if not isinstance(spec, AbstractNoise):
            raise TypeError(
                f"noise[{target!r}] must be a noise spec (OUProcess, WhiteNoise, BrownianNoise, "
                f"ColoredNoise, MultiplicativeNoise, ...), got {type(spec).__name__}."
            )
        if target not in valid:
            # 'coupling' is the coupling input of most models, not of all (Jansen-Rit's is 'M').
            entry = getattr(model, "coupling_input", None)
            hint = (
                f" (its coupling enters input {entry!r}: noise_{entry}=... adds to it)"
                if target == "coupling" and entry in model.input_names
                else did_you_mean(target, valid)
            )
            raise ValueError(
                f"noise target {target!r}: {model._label()} has no input or state of that name"
                f"{hint}; valid targets are {valid}."
            )
        mode = (
            entering.get(target)
            or getattr(model, "noise_enters", {}).get(target)
            or ("input" if target in inputs else "derivative")
        )
        if mode not in ("input", "derivative"):
            raise ValueError(f"enters[{target!r}] must be 'input' or 'derivative', got {mode!r}.")
        if mode == "input" and target not in inputs:
            raise ValueError(
                f"enters[{target!r}] = 'input', but {model._label()} has no input {target!r}; "
                f"its inputs are {sorted(inputs)}."
            )
        if mode == "derivative" and target not in model.state_names:
            raise ValueError(
                f"enters[{target!r}] = 'derivative', but {model._label()} has no state {target!r}; "
                f"its states are {list(model.state_names)}."
            )
        if f"{target}_noise" in model.state_names:
            raise ValueError(f"noise target {target!r}: the model already has a state named {target}_noise.")
        unit = _target_unit(model, target, mode)
        bound[target] = spec.bind(unit, model.n_regions, f"noise[{target!r}] ({type(spec).__name__})")
        modes[target] = mode
    return Noisy(model=model, noise=bound, enters=modes)


def _enters_map(enters, specs) -> dict:
    if enters is None:
        return {}
    if isinstance(enters, str):
        return {t: enters for t in specs}
    return dict(enters)


def with_coupling_noise(model: AbstractModel, noise: AbstractNoise) -> AbstractModel:
    """Attach ``noise`` to the coupling current of ``model``: its ``coupling_input`` (for a
    `Network`, the node input the coupling current is added to; brainmass's
    ``Network(noise=...)``)."""
    target = getattr(model, "coupling_input", None)
    if target is None:
        raise ValueError(
            f"{model._label()} has no coupling input (coupling_input is None); attach the "
            "noise to a named input with with_noise(model, {name: spec})."
        )
    # Added to the coupling current, whatever the model's noise_enters says.
    return with_noise(model, {target: noise}, enters="input")


def split_noise_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, AbstractNoise], dict[str, Any]]:
    """Split brainmass-style keywords: ``({target: spec} from noise_<target>=..., the rest)``.

    ``None`` values are dropped. For facades: ``noise, rest = split_noise_kwargs(kw);
    with_noise(Model(**rest), noise)``.

    **Arguments:**

    - `kwargs`: a mapping of keyword arguments, e.g. ``{'a': 0.25, 'noise_x': OUProcess(0.1)}``.

    **Returns:** ``(noise, rest)``: ``{'x': OUProcess(0.1)}`` (the ``noise_`` prefix removed)
    and ``{'a': 0.25}``.
    """
    noise, rest = {}, {}
    for k, v in kwargs.items():
        if k.startswith("noise_"):
            if v is not None:
                noise[k[len("noise_") :]] = v
        else:
            rest[k] = v
    return noise, rest


__getattr__ = module_getattr(
    __name__,
    __all__,
    {
        "Additive": "WhiteNoise (TVB's noise.Additive(nsig=D), sqrt(2 D) dW on each state's derivative, is "
        "with_noise(node, {state: WhiteNoise(sqrt(2 D))}, enters='derivative'))",
    },
)
