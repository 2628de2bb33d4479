"""brainmass's HORN sequence blocks (``HORNSeqLayer``, ``HORNSeqNetwork``) and ``JansenRitTR``,
and the sequence classes brainmass keeps only in a submodule (``horn.HORN_TR`` and its
connections, the ``jansen_rit`` layers and network, ``wilson_cowan.WilsonCowanSeqLayer`` /
``WilsonCowanSeqNetwork``, ``coupling.AdditiveConn`` / ``DelayedAdditiveConn``).

The stateful objects hold brainmass's parts: per layer a `Linear` input map ``i2h``, a
recurrent map ``h2h`` (``ParamState`` weights, so ``net.states(ParamState)`` lists them
and ``brainstate.transform.grad`` trains them) and a `HORNStep` ``horn`` whose states
``x``, ``y`` carry over between calls; the network adds a readout ``h2o``. A call runs
the functional `brainmass_eqx.models.HORNSeqLayer` (symplectic Euler, brainmass's scheme)
built from the current weights, over ``(T, n_input)`` or ``(T, B, n_input)`` inputs.

The submodule-only classes are brainmass's stateful loops, unchanged: each step calls the
facade's node (`HORNStep`, `JansenRitStep`, a Wilson-Cowan step, whose maths is the
functional core's) with ``i2h(u_t)`` plus a recurrent read (`AdditiveConn`, a delayed
read through ``prefetch_delay``), inside ``brainstate.transform.for_loop``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import models as core_models
from ..models._sequence import pathway_weights
from . import brainunit as u
from ._coupling import LaplacianConnParam, additive_coupling, delay_index
from ._models import HORNStep, JansenRitStep, WilsonCowanNoSaturationStep, core_call, dt_ms
from .brainstate import random
from .brainstate._state import ParamState, State
from .brainstate.nn import Dynamics, Linear, Module, Param, call_order, init_maybe_prefetch
from .braintools import init as binit

__all__ = [
    "HORNSeqLayer", "HORNSeqNetwork", "JansenRitTR", "AdditiveConn", "DelayedAdditiveConn", "DelayedAdditiveConnTR",
    "DelayedLaplacianConn", "DelayedLaplacianConnTR", "HORN_TR", "WilsonCowanSeqLayer", "WilsonCowanSeqNetwork",
    "LaplacianConnectivity", "LaplacianConnV2", "JansenRitLayer", "JansenRit2Layer", "JansenRitNetwork",
    "WC_SUBMODULE",
]


class HORNSeqLayer(Module):
    """A layer of ``n_hidden`` HORN oscillators driven by ``i2h(u_t) + h2h(y_t)``.

    ``update(inputs, record_state=False)``: ``inputs`` ``(T, n_input)`` (or ``(T, B,
    n_input)`` with batched ``horn`` states) gives the ``x`` trajectory ``(T, n_hidden)``
    (``(T, B, n_hidden)``), or ``(states, x)`` with ``record_state``.
    """

    __module__ = "brainmass"

    def __init__(self, n_input, n_hidden, alpha=0.04, omega=2 * math.pi / 28, gamma=0.01, v=0.0,
                 delay_init=binit.Constant(0.0), x_init=binit.Constant(0.0), y_init=binit.Constant(0.0), delay=None,
                 rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0), inp_w_init=binit.KaimingNormal(),
                 inp_b_init=binit.Constant(0.0)):
        super().__init__()
        self.n_input, self.n_hidden = int(n_input), int(n_hidden)
        self.i2h = Linear(n_input, n_hidden, inp_w_init, inp_b_init)
        self.horn = HORNStep(n_hidden, alpha=alpha, omega=omega, gamma=gamma, v=v, x_init=x_init, y_init=y_init)
        if delay is None:
            self.h2h = Linear(n_hidden, n_hidden, rec_w_init, rec_b_init)
        else:
            self.h2h = DelayedAdditiveConn(self.horn, delay, "y", delay_init, rec_w_init)

    def core(self) -> core_models.HORNSeqLayer:
        cell = self.horn.core_model()
        layer = core_models.HORNSeqLayer(self.n_input, self.n_hidden, key=jr.key(0), dt=dt_ms())
        layer = eqx.tree_at(lambda m: m.cell, layer, cell)
        layer = eqx.tree_at(lambda m: m.i2h, layer, self.i2h.core())
        return eqx.tree_at(lambda m: m.h2h.linear, layer, self.h2h.core())

    def update(self, inputs, record_state: bool = False):
        if isinstance(self.h2h, DelayedAdditiveConn):
            return self._update_delayed(inputs, record_state)
        layer = self.core()
        inputs = jnp.asarray(u.get_magnitude(inputs))
        y0 = {"x": self.horn.x.value, "y": self.horn.y.value}

        def run(seq, y):
            states, out = layer(seq, y0=y, record_state=True)
            return states, out

        if inputs.ndim == 3:
            batched = jnp.ndim(y0["x"]) == 2
            states, out = jax.vmap(run, in_axes=(1, 0 if batched else None), out_axes=1)(inputs, y0)
        else:
            states, out = run(inputs, y0)
        self.horn.x.value = states["x"][-1]
        self.horn.y.value = states["y"][-1]
        return (states, out) if record_state else out


    def _update_delayed(self, inputs, record_state):
        # brainmass's loop: each step reads the delayed velocities, then calls the HORN cell
        # (whose call appends y to the delay buffer). The cell step, the buffer and the
        # coupling kernel are the core's.
        from .brainstate import transform

        def step(inp):
            out = self.horn(inp + self.h2h())
            return ({"x": self.horn.x.value, "y": self.horn.y.value}, out) if record_state else out

        return transform.for_loop(step, self.i2h(jnp.asarray(u.get_magnitude(inputs))))


class DelayedAdditiveConn(Module):
    r"""Recurrent drive $k \sum_j w_{ij}\, s_j(t - d_{ij})$ from a delayed read of ``model.<state>``
    (brainmass's ``DelayedAdditiveConn``; reads go ``ceil(d / dt)`` steps back, see
    ``brainstate.nn.Dynamics.prefetch_delay``). ``weights`` is a trainable `Param`."""

    __module__ = "brainmass"

    def __init__(self, model, delay_time, state="y", delay_init=binit.Constant(0.0), w_init=binit.KaimingNormal(),
                 k=1.0):
        super().__init__()
        n = model.varshape[0]
        delay_time = binit.param(delay_time, (n, n))
        self.prefetch = model.prefetch_delay(state, (delay_time, delay_index(n)), init=delay_init)
        self.weights = Param(binit.param(w_init, (n, n)))
        self.k = Param.init(k)

    @call_order(2)
    def init_state(self, *args, **kwargs):
        init_maybe_prefetch(self.prefetch, *args, **kwargs)

    def update_tr(self, *args, **kwargs):
        """The once-per-call (per-TR) drive: none for this per-step read."""
        return 0.0

    def update(self, *args, **kwargs):
        return additive_coupling(u.get_magnitude(self.prefetch()), self.weights.value(), self.k.value())


class _StackedLayers(Module):
    """Layers built by ``layer(n_in, size)`` for each size of ``n_hidden`` (an int or a
    sequence), each fed the previous one's output, and a readout ``h2o``."""

    def _stack(self, n_input, n_hidden, n_output, layer, w_init, b_init):
        sizes = [n_hidden] if isinstance(n_hidden, (int, np.integer)) else n_hidden
        assert isinstance(sizes, (list, tuple)), "n_hidden must be int or sequence of int."
        self.layers = []
        for size in sizes:
            self.layers.append(layer(n_input, size))
            n_input = size
        self.h2o = Linear(n_input, n_output, w_init=w_init, b_init=b_init)

    def hidden_activation(self, inputs):
        """Every layer's output sequence."""
        outs, x = [], inputs
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs


class HORNSeqNetwork(_StackedLayers):
    """Stacked `HORNSeqLayer` s and a linear readout ``h2o`` of the last layer's final ``x``."""

    __module__ = "brainmass"

    def __init__(self, n_input, n_hidden, n_output, alpha=0.04, omega=2 * math.pi / 28, gamma=0.01, v=0.0,
                 x_init=binit.Constant(0.0), y_init=binit.Constant(0.0), delay_init=binit.Constant(0.0), delay=None,
                 rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0), inp_w_init=binit.KaimingNormal(),
                 inp_b_init=binit.Constant(0.0)):
        super().__init__()

        def layer(n_in, size):
            return HORNSeqLayer(n_in, size, alpha, omega, gamma, v, delay_init, x_init, y_init, delay, rec_w_init,
                                rec_b_init, inp_w_init, inp_b_init)

        self._stack(n_input, n_hidden, n_output, layer, binit.KaimingNormal(), binit.Constant(0.0))

    def update(self, inputs):
        return self.h2o(self.hidden_activation(inputs)[-1][-1])


@eqx.filter_jit
def _tr_step(core, state, inputs, key):
    return core.step_tr(state, inputs, key)


def _magnitude_in(value, unit):
    value = value.value() if isinstance(value, Param) else value
    if isinstance(value, u.Quantity):
        return value.to(unit).value if unit else u.maybe_decimal(value)
    return value


class JansenRitTR(Dynamics):
    r"""Jansen-Rit regions on a connectome, advanced one TR per ``update`` (brainmass's
    ``JansenRitTR``), computed by `brainmass_eqx.models.JansenRitTR`.

    ``delay`` counts TRs (the delayed $M$ is buffered once per TR). ``update(input,
    record_state=False, iter_input=False)`` runs ``tr / dt`` JR steps with the input
    (times ``k``) held, or one input row per step with ``iter_input``, and returns the
    EEG proxy $E - I$ (a plain array, mV), with ``{'M', 'E', 'I'}`` when
    ``record_state``. The JR states live in ``self.step`` (a `JansenRitStep`).

    ``std_in`` (a plain number or per-region array, may be a `Param`) adds brainmass's
    ``GaussianNoise(sigma=std_in)`` to the M, E and I inputs of every sub-step: $\sigma z$
    with $z \sim \mathcal N(0, 1)$ drawn from ``brainstate.random``, in mV for M and I and
    in Hz for E, not scaled by $\sqrt{dt}$ (see `brainmass_eqx.models.JansenRitTR`).

    Differences from brainmass (``docs/compat.md``): the lateral weights are symmetrised
    (``symmetrize_lateral=False``, a facade keyword, gives brainmass's unsymmetrised
    numbers); ``std_in`` runs (brainmass 0.1.1 raised a unit error for every value);
    ``state_saturation`` / ``input_saturation`` are accepted and unused, as in brainmass.
    """

    __module__ = "brainmass"

    def __init__(self, in_size, delay, sc, k, w_ll, w_ff, w_bb, g_l, g_f, g_b, std_in=None, mask=None,
                 state_saturation=True, input_saturation=True, state_init=binit.Constant(0.0),
                 delay_init=binit.Constant(0.0), tr=1e-3 * u.second, symmetrize_lateral=True):
        super().__init__(in_size)
        n = self.varshape[0]
        if std_in is not None:
            value = std_in.value() if isinstance(std_in, Param) else std_in
            if not u.is_unitless(value):
                raise ValueError(
                    f"JansenRitTR(std_in=...) must be a plain number (it is in mV for the M and I inputs and in Hz "
                    f"for E), got {value}; pass its magnitude."
                )
        self.std_in = Param.init(std_in, (n,))
        self.sc = np.asarray(u.get_magnitude(sc), dtype=float)
        if self.sc.shape != (n, n):
            raise ValueError(f"sc must have shape ({n}, {n}), got {self.sc.shape}.")
        self.delay_steps = np.asarray(u.get_magnitude(delay))
        self.mask = None if mask is None else np.asarray(binit.param(mask, (n, n)))
        self.k = Param.init(k)
        self.w_ll, self.w_ff, self.w_bb = (Param.init(w, (n, n)) for w in (w_ll, w_ff, w_bb))
        self.g_l, self.g_f, self.g_b = Param.init(g_l), Param.init(g_f), Param.init(g_b)
        self.tr = tr
        self.delay_init = delay_init
        self.symmetrize_lateral = bool(symmetrize_lateral)
        self.step = JansenRitStep(
            in_size,
            M_init=lambda *a: state_init(*a) * u.mV, E_init=lambda *a: state_init(*a) * u.mV,
            I_init=lambda *a: state_init(*a) * u.mV, Mv_init=lambda *a: state_init(*a) * u.mV / u.second,
            Ev_init=lambda *a: state_init(*a) * u.mV / u.second, Iv_init=lambda *a: state_init(*a) * u.mV / u.second,
        )
        self.core_model(dt=1.0)  # shapes, delays and tr are checked now, naming the argument

    def core_model(self, dt=None) -> core_models.JansenRitTR:
        """The functional block with the current parameter values (``dt``: ms, default the
        environment's)."""
        dt = dt_ms() if dt is None else dt
        tr = dt_ms(self.tr, "tr")
        n_sub = tr / dt
        if abs(n_sub - round(n_sub)) > 1e-6:
            # brainmass truncated int(tr / dt); the core requires whole steps.
            tr = int(n_sub) * dt
        values = [_magnitude_in(p, "") for p in (self.k, self.w_ll, self.w_ff, self.w_bb, self.g_l, self.g_f, self.g_b)]
        std_in = None if self.std_in is None else _magnitude_in(self.std_in, "")
        return core_call(
            core_models.JansenRitTR, self.varshape[0], self.sc, self.delay_steps, *values, mask=self.mask, tr=tr,
            dt=dt, symmetrize_lateral=self.symmetrize_lateral, std_in=std_in,
        )

    def init_state(self, batch_size=None, **kwargs):
        if batch_size is not None:
            raise ValueError(
                "JansenRitTR runs one network (batch_size=None); map it over a batch with "
                "brainstate.transform.vmap."
            )
        buffer, count = self.core_model().init_state()[1:]
        fill = binit.param(self.delay_init, buffer.shape)
        self.history = State(jnp.broadcast_to(jnp.asarray(_magnitude_in(fill, "mV"), dtype=buffer.dtype), buffer.shape))
        self.count = State(count)

    def update(self, input, record_state: bool = False, iter_input: bool = False):
        if not isinstance(getattr(self, "history", None), State):
            raise ValueError("JansenRitTR has no state yet: call brainstate.nn.init_all_states(model) first.")
        core = self.core_model()
        n_sub = int(round(core.tr / core.dt))
        inputs = jnp.asarray(_magnitude_in(input, "mV"), dtype=jnp.result_type(float))
        if iter_input and inputs.shape[0] != n_sub:
            raise AssertionError(f"Input length {inputs.shape[0]} does not match number of steps {n_sub}")
        if not iter_input:
            inputs = jnp.broadcast_to(inputs, self.varshape)
        y = self.step.to_core_state(core.cell)
        key = None if core.std_in is None else random.split_key()
        (y, buffer, count), eeg = _tr_step(core, (y, self.history.value, self.count.value), inputs, key)
        self.step.from_core_state(y, core.cell)
        self.history.value, self.count.value = buffer, count
        if record_state:
            return eeg, dict(M=self.step.M.value, E=self.step.E.value, I=self.step.I.value)
        return eeg


# -- the classes brainmass keeps only in a submodule -----------------------------------------------


def _n_units(model) -> int:
    return int(np.prod(model.varshape))


class AdditiveConn(Module):
    r"""Recurrent drive $W^T s + b$ from the current value of ``model.<state>`` (brainmass's
    ``coupling.AdditiveConn``): a trainable `Linear` (``w_init``, ``b_init``) of the state's
    magnitude (``'y'`` for HORN, ``'M'`` in mV for Jansen-Rit). ``update_tr()`` is 0."""

    __module__ = "brainmass"

    def __init__(self, model, state="y", w_init=binit.KaimingNormal(), b_init=binit.Constant(0.0)):
        super().__init__()
        self.model = model
        self.state = state
        n = _n_units(model)
        self.linear = Linear(n, n, w_init=w_init, b_init=b_init)

    def update_tr(self, *args, **kwargs):
        """The once-per-call (per-TR) drive: none for this per-step read."""
        return 0.0

    def update(self, *args, **kwargs):
        return self.linear(u.get_magnitude(getattr(self.model, self.state).value))


class _DelayedHidden(Module):
    r"""A delayed read of ``model.y`` through ``weights`` (``k`` a gain): $k \sum_j w_{ij}
    y_j(t - d_{ij})$, every step (``per_tr=False``) or once per call with a buffer written
    every ``tr`` (``per_tr=True``, brainstate's ``update_every``). ``weights`` is a trainable
    `Param`, or with ``laplacian`` a `LaplacianConnParam` of it (brainmass's defaults)."""

    __module__ = "brainmass"
    per_tr = False
    laplacian = False

    def __init__(self, model, delay_time, delay_init=binit.Constant(0.0), w_init=binit.KaimingNormal(), k=1.0,
                 tr=None):
        super().__init__()
        n = _n_units(model)
        delay_time = binit.param(delay_time, (n, n))
        every = {"update_every": tr} if self.per_tr else {}
        self.prefetch = model.prefetch_delay("y", (delay_time, delay_index(n)), init=delay_init, **every)
        weights = binit.param(w_init, (n, n))
        self.weights = LaplacianConnParam(weights) if self.laplacian else Param(weights)
        self.k = Param.init(k)

    @call_order(2)
    def init_state(self, *args, **kwargs):
        init_maybe_prefetch(self.prefetch, *args, **kwargs)

    def _drive(self):
        return additive_coupling(u.get_magnitude(self.prefetch()), self.weights.value(), self.k.value())

    def update_tr(self, *args, **kwargs):
        """The once-per-call drive (the per-TR classes), else 0."""
        return self._drive() if self.per_tr else 0.0

    def update(self, *args, **kwargs):
        """The per-step drive (the per-step classes), else 0."""
        return 0.0 if self.per_tr else self._drive()


class DelayedAdditiveConnTR(_DelayedHidden):
    """brainmass's ``horn.DelayedAdditiveConnTR``: the delayed additive read of ``y`` from a
    buffer written once per ``tr`` (default 1 ms), applied once per call (``update_tr``)."""

    per_tr = True

    def __init__(self, model, delay_time, delay_init=binit.Constant(0.0), w_init=binit.KaimingNormal(), k=1.0,
                 tr=1.0 * u.ms):
        super().__init__(model, delay_time, delay_init, w_init, k, tr)


class DelayedLaplacianConn(_DelayedHidden):
    """brainmass's ``horn.DelayedLaplacianConn``: the delayed read of ``y`` through a
    `LaplacianConnParam` of the weights, every step."""

    laplacian = True

    def __init__(self, model, delay_time, delay_init=binit.Constant(0.0), w_init=binit.KaimingNormal(), k=1.0):
        super().__init__(model, delay_time, delay_init, w_init, k)


class DelayedLaplacianConnTR(_DelayedHidden):
    """brainmass's ``horn.DelayedLaplacianConnTR``: `DelayedLaplacianConn` with a buffer
    written once per ``tr``, applied once per call (``update_tr``)."""

    per_tr = laplacian = True

    def __init__(self, model, delay_time, delay_init=binit.Constant(0.0), w_init=binit.KaimingNormal(), k=1.0,
                 tr=1.0 * u.ms):
        super().__init__(model, delay_time, delay_init, w_init, k, tr)


class HORN_TR(Module):
    r"""brainmass's ``horn.HORN_TR``: ``n_hidden`` HORN oscillators driven by
    $u_t + h2h_{step}(t) + h2h_{TR}$, where the per-call drive $h2h_{TR}$ is read once at
    the start of ``update``. ``rec_type`` (with ``delay``): ``'additive'``
    (`DelayedAdditiveConn`), ``'additive_tr'`` (`DelayedAdditiveConnTR`), ``'laplacian'``
    (`DelayedLaplacianConn`), ``'laplacian_tr'`` (`DelayedLaplacianConnTR`); without
    ``delay`` an `AdditiveConn` of ``y``. ``update(inputs (T, n_hidden), record_state=False)``
    gives the ``x`` trajectory (and ``{'x', 'y'}`` per step with ``record_state``)."""

    __module__ = "brainmass"

    def __init__(self, n_hidden, alpha=0.04, omega=2.0 * math.pi / 28.0, gamma=0.01, v=0.0,
                 x_init=binit.Constant(0.0), y_init=binit.Constant(0.0), tr=1.0 * u.ms, delay=None,
                 rec_type="additive", rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0),
                 delay_init=binit.Constant(0.0)):
        super().__init__()
        self.n_hidden = n_hidden
        self.horn = HORNStep(n_hidden, alpha=alpha, omega=omega, gamma=gamma, v=v, x_init=x_init, y_init=y_init)
        kinds = {"additive": DelayedAdditiveConn, "additive_tr": DelayedAdditiveConnTR,
                 "laplacian": DelayedLaplacianConn, "laplacian_tr": DelayedLaplacianConnTR}
        if delay is None:
            self.h2h = AdditiveConn(self.horn, w_init=rec_w_init, b_init=rec_b_init)
        elif rec_type not in kinds:
            raise ValueError(f"HORN_TR(rec_type={rec_type!r}): use one of {sorted(kinds)}.")
        elif rec_type == "additive":
            self.h2h = DelayedAdditiveConn(self.horn, delay, w_init=rec_w_init, delay_init=delay_init)
        elif rec_type == "laplacian":
            self.h2h = DelayedLaplacianConn(self.horn, delay, w_init=rec_w_init, delay_init=delay_init)
        else:
            self.h2h = kinds[rec_type](self.horn, delay, w_init=rec_w_init, delay_init=delay_init, tr=tr)

    def update(self, inputs, record_state: bool = False):
        from .brainstate import transform

        inputs = jnp.asarray(u.get_magnitude(inputs))
        # The per-call drive is an input of every step (not a closed-over value: the loop
        # stays compiled once).
        drive_tr = jnp.broadcast_to(jnp.asarray(self.h2h.update_tr(), dtype=inputs.dtype), inputs.shape)

        def step(inp, inp_tr):
            out = self.horn(inp + self.h2h.update() + inp_tr)
            return ({"x": self.horn.x.value, "y": self.horn.y.value}, out) if record_state else out

        return transform.for_loop(step, inputs, drive_tr)


def _sequence_loop(layer, inputs, record_state, names):
    """brainmass's layer loop: ``layer.step(i2h(u_t))`` per row of ``inputs``; with
    ``record_state`` also the states ``names`` of ``layer.dynamics`` after each step."""
    from .brainstate import transform

    def step(inp):
        out = layer.step(inp)
        return ({n: getattr(layer.dynamics, n).value for n in names}, out) if record_state else out

    return transform.for_loop(step, layer.i2h(inputs))


class _WCAdditiveConn(AdditiveConn):
    """brainmass's ``wilson_cowan.AdditiveConn``: `AdditiveConn` of ``rE``."""

    __module__ = "brainmass.wilson_cowan"

    def __init__(self, model, w_init=binit.KaimingNormal(), b_init=binit.Constant(0.0)):
        super().__init__(model, "rE", w_init, b_init)


class _WCDelayedAdditiveConn(DelayedAdditiveConn):
    """brainmass's ``wilson_cowan.DelayedAdditiveConn``: `DelayedAdditiveConn` of ``rE``."""

    __module__ = "brainmass.wilson_cowan"

    def __init__(self, model, delay_time, delay_init=binit.Constant(0.0), w_init=binit.KaimingNormal(), k=1.0):
        super().__init__(model, delay_time, "rE", delay_init, w_init, k)


for _cls in (_WCAdditiveConn, _WCDelayedAdditiveConn):
    _cls.__name__ = _cls.__qualname__ = _cls.__name__[len("_WC"):]


class WilsonCowanSeqLayer(Module):
    r"""brainmass's ``wilson_cowan.WilsonCowanSeqLayer``: ``n_hidden`` Wilson-Cowan units
    (``wc_cls``, default `WilsonCowanNoSaturationStep`, with ``**wc_kwargs``) whose ``rE``
    input is $W_{in}^T u_t + b_{in}$ plus a recurrent read of ``rE`` (an `AdditiveConn`, or
    with ``delay`` a `DelayedAdditiveConn`). ``update(inputs (T, n_input), record_state=False)``
    gives the ``rE`` trajectory (and ``{'rE', 'rI'}`` per step with ``record_state``)."""

    __module__ = "brainmass.wilson_cowan"

    def __init__(self, n_input, n_hidden, wc_cls=WilsonCowanNoSaturationStep, delay_init=binit.Constant(0.0),
                 rE_init=binit.Constant(0.0), rI_init=binit.Constant(0.0), delay=None,
                 rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0), inp_w_init=binit.KaimingNormal(),
                 inp_b_init=binit.Constant(0.0), **wc_kwargs):
        super().__init__()
        self.n_input, self.n_hidden = n_input, n_hidden
        self.dynamics = wc_cls(n_hidden, **wc_kwargs, rE_init=rE_init, rI_init=rI_init)
        self.i2h = Linear(n_input, n_hidden, w_init=inp_w_init, b_init=inp_b_init)
        if delay is None:
            self.h2h = _WCAdditiveConn(self.dynamics, w_init=rec_w_init, b_init=rec_b_init)
        else:
            self.h2h = _WCDelayedAdditiveConn(self.dynamics, delay, delay_init=delay_init, w_init=rec_w_init)

    def step(self, inp):
        return self.dynamics(inp + self.h2h())

    def update(self, inputs, record_state: bool = False):
        return _sequence_loop(self, inputs, record_state, ("rE", "rI"))


class WilsonCowanSeqNetwork(_StackedLayers):
    """brainmass's ``wilson_cowan.WilsonCowanSeqNetwork``: stacked `WilsonCowanSeqLayer` s
    and a readout ``h2o`` (``inp_w_init``, ``inp_b_init``) of the last layer's final ``rE``."""

    __module__ = "brainmass.wilson_cowan"

    def __init__(self, n_input, n_hidden, n_output, wc_cls=WilsonCowanNoSaturationStep,
                 delay_init=binit.Constant(0.0), rE_init=binit.Constant(0.0), rI_init=binit.Constant(0.0), delay=None,
                 rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0), inp_w_init=binit.KaimingNormal(),
                 inp_b_init=binit.Constant(0.0), **wc_kwargs):
        super().__init__()

        def layer(n_in, size):
            return WilsonCowanSeqLayer(n_in, size, wc_cls, delay_init, rE_init, rI_init, delay, rec_w_init,
                                       rec_b_init, inp_w_init, inp_b_init, **wc_kwargs)

        self._stack(n_input, n_hidden, n_output, layer, inp_w_init, inp_b_init)

    def update(self, inputs):
        self.hidden_activation(inputs)
        return self.h2o(self.layers[-1].dynamics.rE.value)


#: brainmass's ``wilson_cowan`` names outside its ``__all__``.
WC_SUBMODULE = {"AdditiveConn": _WCAdditiveConn, "DelayedAdditiveConn": _WCDelayedAdditiveConn,
                "WilsonCowanSeqLayer": WilsonCowanSeqLayer, "WilsonCowanSeqNetwork": WilsonCowanSeqNetwork}


class LaplacianConnectivity(Module):
    r"""brainmass's ``jansen_rit.LaplacianConnectivity``: Jansen-Rit's three coupling
    pathways (lateral ``l``, feed-forward ``f``, feedback ``b``) with weights
    ``pathway_weights(w_p, sc, mask)`` ($W_p = e^{w_p} \odot SC$ over its norm; the lateral
    one symmetrised, see below).

    ``update_tr()`` gives the long-range terms $(g_l W_l x^D, g_f W_f x^D, -g_b W_b x^D)$ of
    the delayed signal ``delayed_x()``; ``update()`` the local ones $(g_l d_l M, g_f d_f e,
    -g_b d_b e)$ with $d_p = -\sum_j W_p^{ij}$ and $e = E - I$ (mV magnitudes).

    ``symmetrize_lateral`` (a facade keyword, default True): brainmass's lateral pathway
    computes $\tfrac12(W + W^T)$ with ``transpose(w, (0, 1))``, which leaves $W$ unchanged;
    ``False`` gives brainmass's numbers (as `JansenRitTR`)."""

    __module__ = "brainmass"

    def __init__(self, delayed_x, M, E, I, sc, w_ll, w_ff, w_bb, g_l=1.0, g_f=1.0, g_b=1.0, mask=None,  # noqa: E741
                 symmetrize_lateral=True):
        super().__init__()
        self.delayed_x, self.M, self.E, self.I = delayed_x, M, E, I
        self.sc = jnp.asarray(u.get_magnitude(sc))
        shape = self.sc.shape
        self.mask = None if mask is None else jnp.asarray(binit.param(mask, shape))
        self.w_ff, self.w_bb, self.w_ll = (Param.init(w, shape) for w in (w_ff, w_bb, w_ll))
        self.g_l, self.g_f, self.g_b = Param.init(g_l), Param.init(g_f), Param.init(g_b)
        self.symmetrize_lateral = bool(symmetrize_lateral)

    @call_order(2)
    def init_state(self, *args, **kwargs):
        for read in (self.delayed_x, self.M, self.E, self.I):
            init_maybe_prefetch(read)

    def _weights(self):
        return (pathway_weights(self.w_ll.value(), self.sc, self.mask, self.symmetrize_lateral),
                pathway_weights(self.w_ff.value(), self.sc, self.mask),
                pathway_weights(self.w_bb.value(), self.sc, self.mask))

    def update_tr(self, *args, **kwargs):
        (w_l, _), (w_f, _), (w_b, _) = self._weights()
        x = u.get_magnitude(self.delayed_x())
        return (self.g_l.value() * jnp.sum(w_l * x, axis=1), self.g_f.value() * jnp.sum(w_f * x, axis=1),
                -self.g_b.value() * jnp.sum(w_b * x, axis=1))

    def update(self, *args, **kwargs):
        (_, d_l), (_, d_f), (_, d_b) = self._weights()
        M = u.get_magnitude(self.M())
        eeg = u.get_magnitude(self.E()) - u.get_magnitude(self.I())
        return self.g_l.value() * d_l * M, self.g_f.value() * d_f * eeg, -self.g_b.value() * d_b * eeg


class LaplacianConnV2(Module):
    r"""brainmass's ``jansen_rit.LaplacianConnV2`` (`JansenRit2Layer`'s recurrence): with
    $e = E - I$ (mV magnitudes), ``update()`` gives $(\sum_j w^b_{ij} M_j(t - d_{ij}),\
    W^f e,\ -W^l e)$, the M (mV), E (Hz) and I (mV) inputs. ``w_b``, ``w_f``, ``w_l``
    are trainable `ParamState` s drawn by ``weight``."""

    __module__ = "brainmass"

    def __init__(self, dynamics, delays, delay_init=binit.Constant(0.0), weight=binit.KaimingNormal()):
        super().__init__()
        n = _n_units(dynamics)
        self.dynamics = dynamics
        delays = binit.param(delays, (n, n))
        self.delay_prefetch = dynamics.prefetch_delay("M", (delays, delay_index(n)), init=delay_init)
        self.w_b, self.w_f, self.w_l = (ParamState(binit.param(weight, (n, n))) for _ in range(3))

    @call_order(2)
    def init_state(self, *args, **kwargs):
        init_maybe_prefetch(self.delay_prefetch, *args, **kwargs)

    def update(self, *args, **kwargs):
        eeg = u.get_magnitude((self.dynamics.E.value - self.dynamics.I.value).to(u.mV))
        inp_M = additive_coupling(u.get_magnitude(self.delay_prefetch()), self.w_b.value)
        return inp_M, self.w_f.value @ eeg, -(self.w_l.value @ eeg)


def _jr_step(n_hidden, kw):
    """The layer's `JansenRitStep` from brainmass's layer keywords (its parameters,
    initializers, noises and ``method``; any other keyword is refused by the step)."""
    return JansenRitStep(n_hidden, **kw)


class _JansenRitLayerBase(Module):
    """What brainmass's two Jansen-Rit layers share: their keywords, the columns
    (`JansenRitStep` from the layer's step keywords), the input map ``i2h`` and the loop over
    time. A layer adds its recurrence in ``_connect``."""

    def __init__(self, n_input, n_hidden, *, delay=None, delay_init=binit.Constant(0.0),
                 rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0), inp_w_init=binit.KaimingNormal(),
                 inp_b_init=binit.Constant(0.0), **jr_kwargs):
        super().__init__()
        self.dynamics = _jr_step(n_hidden, jr_kwargs)
        self.i2h = Linear(n_input, n_hidden, w_init=inp_w_init, b_init=inp_b_init)
        self._connect(delay, delay_init, rec_w_init, rec_b_init)

    def _connect(self, delay, delay_init, rec_w_init, rec_b_init):
        raise NotImplementedError

    def update(self, inputs, record_state: bool = False):
        assert inputs.ndim == 2, "Inputs must be 2D (time, features)"
        return _sequence_loop(self, inputs, record_state, ("M", "E", "I"))


class JansenRitLayer(_JansenRitLayerBase):
    r"""brainmass's ``jansen_rit.JansenRitLayer``: ``n_hidden`` Jansen-Rit columns whose
    excitatory input is ``E_inp`` $= (W_{in}^T u_t + b_{in} + \text{rec})$ Hz, ``rec`` an
    `AdditiveConn` of ``M`` (mV magnitude), or with ``delay`` a `DelayedAdditiveConn`.
    Keywords as `JansenRitStep` (parameters, initializers, noises, ``method``) and the
    layer's ``delay``, ``delay_init``, ``rec_w_init``, ``rec_b_init``, ``inp_w_init``,
    ``inp_b_init``, all by keyword (brainmass also takes the step's parameters by position;
    the facade refuses that rather than guess). ``update(inputs (T, n_input),
    record_state=False)`` gives the EEG proxy per step (mV), with ``{'M', 'E', 'I'}`` when
    ``record_state``."""

    __module__ = "brainmass"

    def _connect(self, delay, delay_init, rec_w_init, rec_b_init):
        if delay is None:
            self.h2h = AdditiveConn(self.dynamics, state="M", w_init=rec_w_init, b_init=rec_b_init)
        else:
            self.h2h = DelayedAdditiveConn(self.dynamics, delay, state="M", delay_init=delay_init, w_init=rec_w_init)

    def step(self, inp):
        return self.dynamics(E_inp=(inp + self.h2h()) * u.Hz)


class JansenRit2Layer(_JansenRitLayerBase):
    r"""brainmass's ``jansen_rit.JansenRit2Layer``: Jansen-Rit columns driven through a
    `LaplacianConnV2` (``delay`` required, ``rec_w_init`` draws its three weights): per
    step ``M_inp = (i2h(u_t) + c_M)`` mV, ``E_inp = c_E`` Hz, ``I_inp = c_I`` mV. Keywords
    and ``update`` as `JansenRitLayer`."""

    __module__ = "brainmass"

    def _connect(self, delay, delay_init, rec_w_init, rec_b_init):
        assert delay is not None, "Delay must be provided for JansenRit2Layer"
        self.conn = LaplacianConnV2(self.dynamics, delay, delay_init=delay_init, weight=rec_w_init)

    def step(self, inp):
        inp_M, inp_E, inp_I = self.conn()
        return self.dynamics(M_inp=(inp + inp_M) * u.mV, E_inp=inp_E * u.Hz, I_inp=inp_I * u.mV)


class JansenRitNetwork(_StackedLayers):
    """brainmass's ``jansen_rit.JansenRitNetwork``: stacked `JansenRit2Layer` s (each fed the
    previous one's EEG magnitudes) and a readout ``h2o`` (``inp_w_init``, ``inp_b_init``)
    of the last layer's final EEG proxy (mV magnitude)."""

    __module__ = "brainmass"

    def __init__(self, n_input, n_hidden, n_output, *, delay=None, delay_init=binit.Constant(0.0),
                 rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0), inp_w_init=binit.KaimingNormal(),
                 inp_b_init=binit.Constant(0.0), **jr_kwargs):
        super().__init__()

        def layer(n_in, size):
            return JansenRit2Layer(n_in, size, delay=delay, delay_init=delay_init, rec_w_init=rec_w_init,
                                   rec_b_init=rec_b_init, inp_w_init=inp_w_init, inp_b_init=inp_b_init, **jr_kwargs)

        self._stack(n_input, n_hidden, n_output, layer, inp_w_init, inp_b_init)

    def update(self, inputs, record_state: bool = False):
        x = inputs
        for layer in self.layers:
            x = u.get_magnitude(layer(x))
        return self.h2o(u.get_magnitude(self.layers[-1].dynamics.eeg()))
