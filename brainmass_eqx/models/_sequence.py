"""Neural-mass cells as recurrent layers over input sequences (trained like RNNs).

Each layer drives ``n_hidden`` copies of a node model (the *cell*: `HORN`,
a Wilson-Cowan variant, `JansenRit`) with an affine map of the input sequence plus a
recurrence among the hidden units, one integration step of ``dt`` per input sample, as a
``jax.lax.scan``. Layers are immutable ``eqx.Module``s: call them on a ``(T, n_input)``
array, ``jax.vmap`` them over a batch, differentiate through them, or mark weights and
cell parameters as trainable `Param`s. The cells themselves are ordinary models that
`simulate` runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from .._checks import check_int, positive_ms
from .._param import Param, read, unwrap
from .._precision import matmul
from .._units import to_canonical
from ..solvers import ExponentialEuler, ModelTerm, _FrozenInputs, checked_step, fixed_step_solver
from ._delay_history import INTERPOLATIONS, history_init, history_push, history_read, slots_for
from ._horn import HORN
from ._jansen_rit import JansenRit
from ._symplectic import SymplecticEuler
from ._wilson_cowan import AbstractWilsonCowan, WilsonCowanNoSaturation

__all__ = [
    "Affine",
    "AdditiveRecurrence",
    "DelayedAdditiveRecurrence",
    "AbstractSequenceLayer",
    "HORNSeqLayer",
    "HORNSeqNetwork",
    "WilsonCowanSeqLayer",
    "WilsonCowanSeqNetwork",
    "JansenRitLayer",
    "JansenRit2Layer",
    "JansenRitNetwork",
    "JansenRitTR",
    "pathway_weights",
    "solver_step",
]


def _he_normal(key, shape):
    # Kaiming/He normal with fan_in = shape[0] (weights are (n_in, n_out), as in brainmass).
    return jax.nn.initializers.he_normal(in_axis=0, out_axis=1)(key, shape, jnp.result_type(float))


class Affine(eqx.Module):
    """``x @ weight + bias`` with ``weight`` of shape ``(n_in, n_out)`` (brainmass layout).

    **Arguments:** `n_in`, `n_out`; `key` for the Kaiming-normal weights; `bias` (default
    True, zeros); or give `weight` / `bias` arrays (or `Param`s) directly.
    """

    weight: Any
    bias: Any

    def __init__(self, n_in: int, n_out: int, *, key: PRNGKeyArray | None = None, bias: Any = True, weight: Any = None):
        n_in, n_out = check_int(n_in, "n_in", 1), check_int(n_out, "n_out", 1)
        if weight is None:
            if key is None:
                raise ValueError("Affine: pass key=jax.random.key(...) to draw the weights, or weight=...")
            weight = _he_normal(key, (n_in, n_out))
        if jnp.shape(read(weight)) != (n_in, n_out):
            raise ValueError(f"Affine: weight must have shape ({n_in}, {n_out}), got {jnp.shape(read(weight))}.")
        if bias is True:
            bias = jnp.zeros((n_out,), jnp.result_type(float))
        elif bias is False:
            bias = None
        elif jnp.shape(read(bias)) not in ((), (n_out,)):
            raise ValueError(f"Affine: bias must be a scalar or have shape ({n_out},), got {jnp.shape(read(bias))}.")
        self.weight, self.bias = weight, bias

    def __call__(self, x):
        y = matmul(x, read(self.weight))
        return y if self.bias is None else y + self.bias


class AdditiveRecurrence(eqx.Module):
    """Recurrent drive ``W^T s + b`` from the current value ``s`` of one state variable.

    **Arguments:**

    - `linear`: the `Affine` map ``s -> W^T s + b`` (``(n, n)`` weights).
    """

    linear: Affine

    def n_slots(self, dt):
        return 0

    def __call__(self, current, buffer, count):
        return self.linear(current)


class DelayedAdditiveRecurrence(eqx.Module):
    r"""Recurrent drive $k \sum_j w_{ij}\, s_j(t - d_{ij})$ with per-connection delays.

    **Arguments:** `weight` (n, n); `delay` (n, n) in ms (or a time Quantity); `k` (gain);
    `interpolation` (one of ``'linear'``, ``'nearest'``, ``'ceil'``; ``'ceil'`` reads
    ``ceil(d/dt)`` whole steps back, as brainmass); `delay_init` (the value read before
    the start: the initial state is not part of the history, as in brainmass);
    `max_delay` (ms: the longest delay the history buffer holds; default None, the largest
    entry of a concrete `delay`; required when `delay` is traced).
    """

    weight: Any
    delay: Any
    k: Any = 1.0
    delay_init: float = eqx.field(default=0.0, static=True)
    interpolation: str = eqx.field(default="linear", static=True)
    max_delay: float = eqx.field(default=None, static=True)

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}.")
        delay = self.delay
        if not isinstance(delay, Param):
            delay = jnp.asarray(to_canonical(delay, "delay", "ms"), dtype=jnp.result_type(float))
        n = jnp.shape(read(self.weight))
        if len(n) != 2 or n[0] != n[1]:
            raise ValueError(f"weight must be a square (n, n) matrix, got shape {n}.")
        if jnp.shape(read(delay)) not in ((), n):
            raise ValueError(f"delay must be a scalar or have shape {n} (ms), got {jnp.shape(read(delay))}.")
        if self.max_delay is None:
            value = read(delay)
            if isinstance(value, jax.core.Tracer):
                raise ValueError("delay is traced: pass max_delay=<the longest delay in ms>.")
            if np.any(np.asarray(value) < 0):
                raise ValueError(f"delay must be >= 0 ms, got {np.asarray(value)}.")
            self.max_delay = float(np.max(np.asarray(value)))
        self.delay = delay

    def n_slots(self, dt):
        return slots_for(self.max_delay, dt)

    def __call__(self, current, buffer, count, dt):
        n = current.shape[-1]
        lag = jnp.broadcast_to(self.delay / dt, (n, n))
        column = jnp.broadcast_to(jnp.arange(n), (n, n))
        past = history_read(buffer, count, lag, self.interpolation, column=column)
        return self.k * jnp.sum(self.weight * past, axis=-1)


def solver_step(solver, model, t0, dt, y: dict, inputs: dict) -> dict:
    """One step of ``solver`` on ``model`` from ``t0`` with inputs held, then ``post_step``;
    a failed step (an implicit solver's root find) raises when it runs (`checked_step`). An
    implicit solver needs its root finder's tolerances (`solvers.fixed_step_solver`)."""
    owner = f"{model._label()} (a sequence layer's cell)"
    solver = fixed_step_solver(solver, owner)
    term = ModelTerm(model)
    args = _FrozenInputs(inputs)
    state = solver.init(term, t0, t0 + dt, y, args)
    y1, _, _, _, result = solver.step(term, t0, t0 + dt, y, args, state, False)
    return model.post_step(checked_step(y1, result, solver, owner))


class AbstractSequenceLayer(eqx.Module):
    """A cell of ``n_hidden`` units driven by ``i2h(u_t) + recurrence`` (see the module).

    Subclasses set the ClassVars ``recurrent_state`` (the state the recurrence reads),
    ``drive_input`` (the cell input it feeds) and ``output`` (what each step emits: a
    state or observable), and may override `drives`.

    **Fields:**

    - `cell`: the node model of ``n_hidden`` regions (a `HORN`, `WilsonCowan`, ...).
    - `i2h`: the input map, an `Affine` ``(n_input, n_hidden)``.
    - `h2h`: the recurrence: an `AdditiveRecurrence` or a `DelayedAdditiveRecurrence`.
    - `dt`: the step, in ms.
    - `solver`: the diffrax solver of one step (e.g. `ExponentialEuler`); an implicit one
      (``diffrax.Kvaerno3``, ``ImplicitEuler``) with its root finder's tolerances given,
      since the layer's fixed steps have no adaptive controller to take them from
      (`solvers.fixed_step_solver`: refused when the layer is built).
    """

    cell: Any
    i2h: Affine
    h2h: Any
    dt: float = eqx.field(static=True)
    solver: Any = eqx.field(static=True)

    recurrent_state: ClassVar[str] = ""
    drive_input: ClassVar[str] = ""
    output: ClassVar[str] = ""

    def __check_init__(self):
        fixed_step_solver(self.solver, f"{type(self).__name__}(solver=...)")

    @property
    def n_hidden(self) -> int:
        return self.cell.n_regions

    def drives(self, y, recurrent, u_t) -> dict:
        """The cell inputs of one step: ``{drive_input: i2h(u_t) + recurrent}``."""
        return {self.drive_input: u_t + recurrent}

    def _recurrent(self, y, buffer, count):
        current = y[self.recurrent_state]
        if isinstance(self.h2h, DelayedAdditiveRecurrence):
            return self.h2h(current, buffer, count, self.dt)
        return self.h2h(current, buffer, count)

    def __call__(self, inputs: Array, *, y0: dict | None = None, record_state: bool = False):
        """Run the layer over ``inputs`` of shape ``(T, n_input)``.

        **Returns:** the outputs ``(T, n_hidden)`` (the emitted variable after each step),
        or ``(states, outputs)`` with ``states = {name: (T, n_hidden)}`` when
        ``record_state``. `y0` is the initial cell state, ``{state name: (n_hidden,) array}``
        with every state of the cell (default: the cell's), checked as `simulate` checks it.
        """
        layer = unwrap(self)
        inputs = jnp.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != layer.i2h.weight.shape[0]:
            raise ValueError(
                f"inputs must have shape (T, {layer.i2h.weight.shape[0]}), got {inputs.shape}; "
                "vmap the layer for a batch."
            )
        if y0 is not None:
            # Imported here: _simulate imports solvers, which import this package (a cycle).
            from .._simulate import _check_y0

            y0 = _check_y0(layer.cell, y0)
        return layer._scan(layer.i2h(inputs), y0, record_state)

    def _scan(self, drive_seq, y0, record_state):
        cell = self.cell
        y = cell.init_state() if y0 is None else {k: jnp.asarray(v) for k, v in y0.items()}
        n_slots = max(self.h2h.n_slots(self.dt), 1)
        init_hist = getattr(self.h2h, "delay_init", 0.0)
        buffer, count = history_init(jnp.full_like(y[self.recurrent_state], init_hist), n_slots)

        def body(carry, xs):
            y, buffer, count = carry
            i, u_t = xs
            recurrent = self._recurrent(y, buffer, count)
            y = solver_step(self.solver, cell, i * self.dt, self.dt, y, self.drives(y, recurrent, u_t))
            buffer, count = history_push(buffer, count, y[self.recurrent_state])
            out = cell.observe(self.output, y)
            return (y, buffer, count), ((y, out) if record_state else out)

        steps = jnp.arange(drive_seq.shape[0])
        _, ys = jax.lax.scan(body, (y, buffer, count), (steps, drive_seq))
        return ys


def _layer_parts(n_input, n_hidden, key, delay, delay_init, interpolation, rec_bias, inp_bias):
    n_input, n_hidden = check_int(n_input, "n_input", 1), check_int(n_hidden, "n_hidden", 1)
    if key is None:
        raise ValueError("pass key=jax.random.key(...) to draw the input and recurrent weights.")
    k_in, k_rec = jr.split(key)
    i2h = Affine(n_input, n_hidden, key=k_in, bias=inp_bias)
    if delay is None:
        h2h = AdditiveRecurrence(Affine(n_hidden, n_hidden, key=k_rec, bias=rec_bias))
    else:
        h2h = DelayedAdditiveRecurrence(
            _he_normal(k_rec, (n_hidden, n_hidden)), delay, delay_init=delay_init, interpolation=interpolation
        )
    return i2h, h2h


class HORNSeqLayer(AbstractSequenceLayer):
    r"""A layer of ``n_hidden`` `HORN` oscillators: drive $I_t = W_{in}^T u_t + b_{in} +
    W_{rec}^T y_t + b_{rec}$ (the recurrence reads the velocities $y$; with ``delay``, a
    delayed additive read $\sum_j w_{ij} y_j(t - d_{ij})$), symplectic-Euler step, output
    $x$ (brainmass ``HORNSeqLayer``).

    **Arguments:** `n_input`, `n_hidden`, `key` (weights); the `HORN` parameters `alpha`,
    `omega`, `gamma`, `v` and initial `init_x`, `init_y`; `delay` (None, or (n, n) ms);
    `delay_init`, `interpolation` (see `DelayedAdditiveRecurrence`); `dt` (ms, default
    0.1); `rec_bias`, `inp_bias` (True: zero-initialised biases); `solver` (default
    `SymplecticEuler`, brainmass's scheme).
    """

    recurrent_state: ClassVar = "y"
    drive_input: ClassVar = "input"
    output: ClassVar = "x"

    def __init__(self, n_input, n_hidden, *, key, alpha=0.04, omega=2.0 * math.pi / 28.0, gamma=0.01, v=0.0,
                 init_x=0.0, init_y=0.0, delay=None, delay_init=0.0, interpolation="linear", dt=0.1,
                 rec_bias=True, inp_bias=True, solver=None):
        self.i2h, self.h2h = _layer_parts(n_input, n_hidden, key, delay, delay_init, interpolation, rec_bias, inp_bias)
        self.cell = HORN(n_hidden, alpha=alpha, omega=omega, gamma=gamma, v=v, init_x=init_x, init_y=init_y)
        self.dt = positive_ms(dt, "dt")
        self.solver = SymplecticEuler() if solver is None else solver


class WilsonCowanSeqLayer(AbstractSequenceLayer):
    r"""A layer of Wilson-Cowan units (default `WilsonCowanNoSaturation`, as brainmass):
    input ``rE`` $= W_{in}^T u_t + b_{in} + W_{rec}^T r_E + b_{rec}$ (or a delayed additive
    read of $r_E$), exponential-Euler step, output $r_E$ (brainmass ``WilsonCowanSeqLayer``).

    **Arguments:** `n_input`, `n_hidden`, `key`; `wc_cls` (any `AbstractWilsonCowan`
    subclass) and its parameters as keyword arguments (`wc_kwargs`); `delay`,
    `delay_init`, `interpolation`, `dt`, `rec_bias`, `inp_bias`, `solver` as for
    `HORNSeqLayer` (default solver `ExponentialEuler`).
    """

    recurrent_state: ClassVar = "rE"
    drive_input: ClassVar = "rE"
    output: ClassVar = "rE"

    def __init__(self, n_input, n_hidden, *, key, wc_cls=WilsonCowanNoSaturation, delay=None, delay_init=0.0,
                 interpolation="linear", dt=0.1, rec_bias=True, inp_bias=True, solver=None, **wc_kwargs):
        if not (isinstance(wc_cls, type) and issubclass(wc_cls, AbstractWilsonCowan)):
            raise TypeError(f"wc_cls must be a Wilson-Cowan model class, got {wc_cls!r}.")
        self.i2h, self.h2h = _layer_parts(n_input, n_hidden, key, delay, delay_init, interpolation, rec_bias, inp_bias)
        self.cell = wc_cls(n_hidden, **wc_kwargs)
        self.dt = positive_ms(dt, "dt")
        self.solver = ExponentialEuler() if solver is None else solver


class JansenRitLayer(AbstractSequenceLayer):
    r"""A layer of `JansenRit` columns: the excitatory rate input ``E`` (Hz) is
    $W_{in}^T u_t + b_{in} + W_{rec}^T M + b_{rec}$ (or a delayed additive read of $M$),
    output the EEG proxy $E - I$ (brainmass ``JansenRitLayer``).

    **Arguments:** `n_input`, `n_hidden`, `key`; `JansenRit` parameters and initial
    values as keyword arguments (`jr_kwargs`); `delay`, `delay_init`, `interpolation`,
    `dt` (ms), `rec_bias`, `inp_bias`, `solver` (default `ExponentialEuler`).
    """

    recurrent_state: ClassVar = "M"
    drive_input: ClassVar = "E"
    output: ClassVar = "eeg"

    def __init__(self, n_input, n_hidden, *, key, delay=None, delay_init=0.0, interpolation="linear", dt=0.1,
                 rec_bias=True, inp_bias=True, solver=None, **jr_kwargs):
        self.i2h, self.h2h = _layer_parts(n_input, n_hidden, key, delay, delay_init, interpolation, rec_bias, inp_bias)
        self.cell = JansenRit(n_hidden, **jr_kwargs)
        self.dt = positive_ms(dt, "dt")
        self.solver = ExponentialEuler() if solver is None else solver


class JansenRit2Layer(AbstractSequenceLayer):
    r"""A layer of `JansenRit` columns with three recurrent pathways (brainmass
    ``JansenRit2Layer``): with $e = E - I$ (mV),

    $$I_M = W_{in}^T u_t + b_{in} + \sum_j w^b_{ij} M_j(t - d_{ij}),\qquad
      I_E = W^f e\ \text{(Hz)},\qquad I_I = -W^l e\ \text{(mV)}.$$

    **Arguments:** `n_input`, `n_hidden`, `key`; `delay` ((n, n) ms, required); `delay_init`,
    `interpolation`, `dt`, `inp_bias`, `solver`; `JansenRit` keyword arguments.
    """

    w_f: Any
    w_l: Any

    recurrent_state: ClassVar = "M"
    drive_input: ClassVar = "M"
    output: ClassVar = "eeg"

    def __init__(self, n_input, n_hidden, *, key, delay, delay_init=0.0, interpolation="linear", dt=0.1,
                 inp_bias=True, solver=None, **jr_kwargs):
        if delay is None:
            raise ValueError("JansenRit2Layer needs delay= ((n_hidden, n_hidden) delays in ms, or a scalar).")
        if key is None:
            raise ValueError("pass key=jax.random.key(...) to draw the input and recurrent weights.")
        key, k_f, k_l = jr.split(key, 3)
        self.i2h, self.h2h = _layer_parts(n_input, n_hidden, key, delay, delay_init, interpolation, True, inp_bias)
        self.cell = JansenRit(n_hidden, **jr_kwargs)
        self.w_f = _he_normal(k_f, (n_hidden, n_hidden))
        self.w_l = _he_normal(k_l, (n_hidden, n_hidden))
        self.dt = positive_ms(dt, "dt")
        self.solver = ExponentialEuler() if solver is None else solver

    def drives(self, y, recurrent, u_t):
        eeg = y["E"] - y["I"]
        return {"M": u_t + recurrent, "E": matmul(self.w_f, eeg), "I": -matmul(self.w_l, eeg)}


class _SeqNetwork(eqx.Module):
    """Stacked layers and a linear readout of the last layer's final output."""

    layers: tuple
    h2o: Affine

    def hidden_activation(self, inputs: Array) -> list:
        """Every layer's output sequence."""
        outs, x = [], inputs
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs

    def __call__(self, inputs: Array) -> Array:
        """``h2o`` of the last layer's output at the final step: shape ``(n_output,)``."""
        return self.h2o(self.hidden_activation(inputs)[-1][-1])


def _stack(layer_cls, n_input, n_hidden, n_output, key, **kwargs):
    if not isinstance(n_hidden, (int, np.integer, Sequence)) or isinstance(n_hidden, str):
        raise TypeError(f"n_hidden must be an int or a non-empty sequence of ints, got {n_hidden!r}.")
    sizes = [n_hidden] if isinstance(n_hidden, (int, np.integer)) else list(n_hidden)
    if not sizes:
        raise ValueError(f"n_hidden must be an int or a non-empty sequence of ints, got {n_hidden!r}.")
    keys = jr.split(key, len(sizes) + 1)
    layers = []
    for size, k in zip(sizes, keys[:-1]):
        layers.append(layer_cls(n_input, size, key=k, **kwargs))
        n_input = size
    return tuple(layers), Affine(n_input, check_int(n_output, "n_output", 1), key=keys[-1])


class HORNSeqNetwork(_SeqNetwork):
    """Stacked `HORNSeqLayer`s and a linear readout of the last layer's final $x$
    (brainmass ``HORNSeqNetwork``).

    **Arguments:**

    - `n_input`: the input size: a call takes inputs of shape ``(T, n_input)``.
    - `n_hidden`: units per layer: an int (one layer) or a sequence of ints (one layer each,
      the first fed by the inputs, each next by the previous layer's outputs).
    - `n_output`: the readout size: a call returns shape ``(n_output,)``.
    - `key`: a ``jax.random`` key for the layers' and the readout's weights (required).
    - `**layer_kwargs`: further `HORNSeqLayer` keyword arguments, given to every layer.
    """

    def __init__(self, n_input, n_hidden, n_output, *, key, **layer_kwargs):
        self.layers, self.h2o = _stack(HORNSeqLayer, n_input, n_hidden, n_output, key, **layer_kwargs)


class WilsonCowanSeqNetwork(_SeqNetwork):
    """Stacked `WilsonCowanSeqLayer`s and a linear readout of the last layer's final $r_E$
    (brainmass ``WilsonCowanSeqNetwork``).

    **Arguments:**

    - `n_input`: the input size: a call takes inputs of shape ``(T, n_input)``.
    - `n_hidden`: units per layer: an int (one layer) or a sequence of ints (one layer each,
      the first fed by the inputs, each next by the previous layer's outputs).
    - `n_output`: the readout size: a call returns shape ``(n_output,)``.
    - `key`: a ``jax.random`` key for the layers' and the readout's weights (required).
    - `**layer_kwargs`: further `WilsonCowanSeqLayer` keyword arguments, given to every layer.
    """

    def __init__(self, n_input, n_hidden, n_output, *, key, **layer_kwargs):
        self.layers, self.h2o = _stack(WilsonCowanSeqLayer, n_input, n_hidden, n_output, key, **layer_kwargs)


class JansenRitNetwork(_SeqNetwork):
    """Stacked `JansenRit2Layer`s and a linear readout of the last layer's final EEG proxy
    $E - I$ (brainmass ``JansenRitNetwork``).

    **Arguments:**

    - `n_input`: the input size: a call takes inputs of shape ``(T, n_input)``.
    - `n_hidden`: units per layer: an int (one layer) or a sequence of ints (one layer each,
      the first fed by the inputs, each next by the previous layer's outputs).
    - `n_output`: the readout size: a call returns shape ``(n_output,)``.
    - `key`: a ``jax.random`` key for the layers' and the readout's weights (required).
    - `delay`: the recurrent delays in ms (or a time Quantity), a scalar or ``(n, n)`` for
      layers of ``n`` units, given to every layer (required, as for `JansenRit2Layer`).
    - `**layer_kwargs`: further `JansenRit2Layer` keyword arguments, given to every layer.
    """

    def __init__(self, n_input, n_hidden, n_output, *, key, delay, **layer_kwargs):
        self.layers, self.h2o = _stack(JansenRit2Layer, n_input, n_hidden, n_output, key, delay=delay, **layer_kwargs)


def pathway_weights(w, sc, mask=None, symmetric=False):
    r"""One Jansen-Rit coupling pathway's weights from log-weights ``w`` (brainmass's
    ``LaplacianConnectivity``): $W = e^{w} \odot SC$ (with ``symmetric``, $\tfrac12 (W +
    W^T)$), divided by its Frobenius norm, times ``mask`` if given.

    **Returns:** ``(W, diag)`` with ``diag = -W.sum(axis=1)`` (the Laplacian's diagonal).
    """
    w = jnp.exp(w) * sc
    if symmetric:
        w = 0.5 * (w + w.T)
    w = w / jnp.linalg.norm(w)
    if mask is not None:
        w = w * mask
    return w, -jnp.sum(w, axis=1)


def _check_std_in(std_in, n):
    value = read(std_in)
    if jnp.shape(value) not in ((), (n,)):
        raise ValueError(f"std_in must be a scalar or have shape ({n},), got {jnp.shape(value)}.")
    if not isinstance(value, jax.core.Tracer):
        if np.any(np.asarray(value) < 0):
            raise ValueError(f"std_in must be >= 0 (a standard deviation), got {np.asarray(value)}.")
    if isinstance(std_in, Param):
        return std_in
    return jnp.asarray(value, dtype=jnp.result_type(float))


class JansenRitTR(eqx.Module):
    r"""Jansen-Rit regions coupled through a structural connectome, advanced one TR at a
    time (brainmass ``JansenRitTR``; in the spirit of WhoBPyT's JR model).

    Pathway weights $W^p = \mathrm{mask} \odot \tilde W^p / \|\tilde W^p\|_F$ with
    $\tilde W^p = e^{w_p} \odot \mathrm{sc}$ ($p$ = lateral, forward, backward; the lateral
    one symmetrised, $\tilde W^l \leftarrow (\tilde W^l + \tilde W^{lT})/2$) and
    $D^p = -\mathrm{rowsum}(W^p)$. Once per TR the long-range inputs are read from $M$
    delayed by ``delay`` TRs: $L^p_i = \sum_j W^p_{ij} M_j(\mathrm{TR} - d_{ij})$. Then
    ``tr/dt`` JR steps run with

    $$I_M = g_l (L^l + D^l M) + k u, \quad I_E = g_f (L^f + D^f e), \quad
      I_I = -g_b (L^b + D^b e), \qquad e = E - I.$$

    **Arguments:** `n` (regions); `sc` (n, n) structural connectivity; `delay` (n, n) in
    TRs (whole numbers); `k`, `w_ll`, `w_ff`, `w_bb` ((n, n) log-weights), `g_l`, `g_f`,
    `g_b` (all trainable as `Param`s); `mask` (optional (n, n)); `tr`, `dt` (ms; default
    1 ms and 0.1 ms); `delay_init` (the value of $M$ before the start, default 0);
    `state_init` (initial value of every JR state, default 0); `solver` (the step of the JR
    cell, default `ExponentialEuler`, brainmass's); `symmetrize_lateral` (default
    True; False reproduces brainmass, see below); `std_in` (None, or a nonnegative scalar or
    per-region (n,) array, may be a `Param`: input noise, below); `jr_kwargs`: JR parameters.

    **Input noise** (``std_in``, brainmass's ``GaussianNoise(sigma=std_in)`` on the three
    inputs): every sub-step $t$ adds independent draws to the inputs above,

    $$I_M \mathrel{+}= \sigma z^M_t\ \text{(mV)},\quad I_E \mathrel{+}= \sigma z^E_t\ \text{(Hz)},
      \quad I_I \mathrel{+}= \sigma z^I_t\ \text{(mV)},\qquad z_t \sim \mathcal N(0, 1)\ \text{i.i.d.},$$

    held over the step like the other inputs. There is no $\sqrt{dt}$ factor (as in brainmass):
    $\sigma$ is the standard deviation of the per-step input perturbation, so the state
    variance it causes depends on ``dt``. $I_M$ and $I_I$ enter inside the sigmoid, where a
    white-noise limit does not exist, which is why this is not rescaled to a dt-independent
    intensity as the noise API does. `step_tr` and `__call__` then need a `key`.

    **Deliberate differences from brainmass 0.1.1:** the lateral weights are symmetrised
    (brainmass transposes with axes (0, 1), a no-op: ``symmetrize_lateral=False`` gives its
    numbers); ``std_in`` runs (brainmass's raised a unit error for every value: one
    ``sigma`` cannot be in mV and in Hz), with $\sigma$ in each input's own unit;
    ``state_saturation`` / ``input_saturation``, unused by brainmass, do not exist.
    """

    cell: JansenRit
    sc: Any
    delay: Any
    k: Any
    w_ll: Any
    w_ff: Any
    w_bb: Any
    g_l: Any
    g_f: Any
    g_b: Any
    mask: Any
    std_in: Any
    tr: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    delay_init: float = eqx.field(static=True)
    max_delay: int = eqx.field(static=True)
    solver: Any = eqx.field(static=True)
    symmetrize_lateral: bool = eqx.field(static=True)

    def __init__(self, n, sc, delay, k, w_ll, w_ff, w_bb, g_l, g_f, g_b, *, mask=None, tr=1.0, dt=0.1,
                 delay_init=0.0, state_init=0.0, solver=None, symmetrize_lateral=True, std_in=None,
                 **jr_kwargs):
        n = check_int(n, "n", 1)
        sc = jnp.asarray(sc, dtype=jnp.result_type(float))
        if sc.shape != (n, n):
            raise ValueError(f"sc must have shape ({n}, {n}), got {sc.shape}.")
        for name, w in (("w_ll", w_ll), ("w_ff", w_ff), ("w_bb", w_bb)):
            if jnp.shape(read(w)) not in ((), (n, n)):
                raise ValueError(f"{name} must be a scalar or have shape ({n}, {n}), got {jnp.shape(read(w))}.")
        delay_arr = np.asarray(delay)
        if delay_arr.shape not in ((), (n, n)) or np.any(delay_arr < 0) or np.any(delay_arr != np.round(delay_arr)):
            raise ValueError(f"delay must hold whole numbers of TRs >= 0, shape ({n}, {n}) or scalar; got {delay_arr}.")
        if mask is not None and np.shape(mask) != (n, n):
            raise ValueError(f"mask must have shape ({n}, {n}), got {np.shape(mask)}.")
        self.tr, self.dt = positive_ms(tr, "tr"), positive_ms(dt, "dt")
        n_sub = self.tr / self.dt
        if abs(n_sub - round(n_sub)) > 1e-6 or round(n_sub) < 1:
            raise ValueError(f"tr ({self.tr} ms) must be a whole number (>= 1) of steps dt ({self.dt} ms).")
        inits = {f"init_{s}": state_init for s in JansenRit.state_names}
        self.cell = JansenRit(n, **{**inits, **jr_kwargs})
        self.sc, self.mask = sc, None if mask is None else jnp.asarray(mask, dtype=sc.dtype)
        self.delay = jnp.asarray(delay_arr, dtype=jnp.int32)
        self.max_delay = int(delay_arr.max()) if delay_arr.size else 0
        self.k, self.w_ll, self.w_ff, self.w_bb = k, w_ll, w_ff, w_bb
        self.g_l, self.g_f, self.g_b = g_l, g_f, g_b
        self.delay_init = float(delay_init)
        self.solver = ExponentialEuler() if solver is None else solver
        self.symmetrize_lateral = bool(symmetrize_lateral)
        self.std_in = None if std_in is None else _check_std_in(std_in, n)

    def __check_init__(self):
        fixed_step_solver(self.solver, "JansenRitTR(solver=...)")

    def _normalise(self, w, symmetric=False):
        return pathway_weights(w, self.sc, self.mask, symmetric)

    def init_state(self) -> tuple:
        """``(JR state, history buffer of M per TR, count)``."""
        y = self.cell.init_state()
        buffer, count = history_init(jnp.full_like(y["M"], self.delay_init), self.max_delay + 2)
        return y, buffer, count

    def _checked_state(self, state) -> tuple:
        """``state`` in `init_state`'s form: the JR state checked and cast to JAX's float
        as `simulate` checks ``y0`` (an integer one failed inside ``jax.jvp``, naming no
        argument), the history of M in the same float, the count an int32 index."""
        # Imported here: _simulate imports solvers, which import this package (a cycle).
        from .._simulate import _check_y0

        try:
            y, buffer, count = state
        except (TypeError, ValueError):
            raise TypeError(
                "JansenRitTR: state must be the tuple (JR state dict, history of M, count) that "
                f"init_state() or a previous call returns, got {type(state).__name__}."
            ) from None
        # Not checked for NaN when traced: under jit this is the state carried from TR to
        # TR (a check per TR in the loop, and a divergence blamed on "initial values").
        y = _check_y0(unwrap(self.cell), y, traced_check=False)
        return y, jnp.asarray(buffer, dtype=y["M"].dtype), jnp.asarray(count, dtype=jnp.int32)

    def step_tr(self, state, u, key: PRNGKeyArray | None = None):
        """Advance one TR with input ``u`` ((n,) held, or (tr/dt, n) per step). Returns
        ``(new state, E - I at the end of the TR)``. `key` draws the ``std_in`` noise
        (required when ``std_in`` is set, ignored otherwise)."""
        if self.std_in is not None and key is None:
            raise ValueError("JansenRitTR.step_tr: std_in is set, so pass key=jax.random.key(...) to draw the noise.")
        m = unwrap(self)
        y, buffer, count = m._checked_state(state)
        n = y["M"].shape[-1]
        n_sub = int(round(m.tr / m.dt))
        u = m.k * jnp.asarray(u)
        w_l, d_l = m._normalise(m.w_ll, symmetric=m.symmetrize_lateral)
        w_f, d_f = m._normalise(m.w_ff)
        w_b, d_b = m._normalise(m.w_bb)
        column = jnp.broadcast_to(jnp.arange(n), (n, n))
        # The history holds M at the end of every TR (lag 0: the current M); the state
        # before the first TR is not part of it, as in brainmass (it reads delay_init).
        past = history_read(buffer, count, jnp.broadcast_to(m.delay, (n, n)).astype(buffer.dtype), "nearest", column)
        far_M, far_E, far_I = (m.g_l * jnp.sum(w_l * past, 1), m.g_f * jnp.sum(w_f * past, 1),
                               -m.g_b * jnp.sum(w_b * past, 1))
        per_step = u if u.ndim == 2 else jnp.broadcast_to(u, (n_sub, n))
        if per_step.shape[0] != n_sub:
            raise ValueError(f"an input given per step must have {n_sub} rows (tr/dt), got {per_step.shape[0]}.")

        def body(y, xs):
            i, ext, step_key = xs
            eeg = y["E"] - y["I"]
            inputs = {
                "M": far_M + m.g_l * d_l * y["M"] + ext,
                "E": far_E + m.g_f * d_f * eeg,
                "I": far_I - m.g_b * d_b * eeg,
            }
            if step_key is not None:
                z = jr.normal(step_key, (3, n), eeg.dtype)
                inputs = {name: inputs[name] + m.std_in * z[j] for j, name in enumerate(("M", "E", "I"))}
            return solver_step(m.solver, m.cell, i * m.dt, m.dt, y, inputs), None

        keys = None if m.std_in is None else jr.split(key, n_sub)
        y, _ = jax.lax.scan(body, y, (jnp.arange(n_sub), per_step, keys))
        buffer, count = history_push(buffer, count, y["M"])
        return (y, buffer, count), y["E"] - y["I"]

    def __call__(self, inputs, state=None, *, key: PRNGKeyArray | None = None, record_state: bool = False):
        """Run ``T`` TRs on ``inputs`` of shape ``(T, n)`` (held per TR) or
        ``(T, tr/dt, n)`` (per step). Returns the EEG proxies ``(T, n)`` and the final state
        (and the per-TR JR states when ``record_state``). `key` draws the ``std_in`` noise
        (split into one key per TR; required when ``std_in`` is set)."""
        if self.std_in is not None and key is None:
            raise ValueError("JansenRitTR: std_in is set, so pass key=jax.random.key(...) to draw the noise.")
        inputs = jnp.asarray(inputs)
        state = self.init_state() if state is None else self._checked_state(state)
        keys = None if self.std_in is None else jr.split(key, inputs.shape[0])

        def body(state, xs):
            u, tr_key = xs
            state, eeg = self.step_tr(state, u, tr_key)
            return state, ((eeg, state[0]) if record_state else eeg)

        state, out = jax.lax.scan(body, state, (inputs, keys))
        if record_state:
            eeg, ys = out
            return eeg, state, ys
        return out, state
