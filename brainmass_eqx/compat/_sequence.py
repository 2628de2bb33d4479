"""brainmass's HORN sequence blocks (``HORNSeqLayer``, ``HORNSeqNetwork``) and ``JansenRitTR``.

The stateful objects hold brainmass's parts: per layer a `Linear` input map ``i2h``, a
recurrent map ``h2h`` (``ParamState`` weights, so ``net.states(ParamState)`` lists them
and ``brainstate.transform.grad`` trains them) and a `HORNStep` ``horn`` whose states
``x``, ``y`` carry over between calls; the network adds a readout ``h2o``. A call runs
the functional `brainmass_eqx.models.HORNSeqLayer` (symplectic Euler, brainmass's scheme)
built from the current weights, over ``(T, n_input)`` or ``(T, B, n_input)`` inputs.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import models as core_models
from . import brainunit as u
from ._coupling import additive_coupling, delay_index
from ._models import HORNStep, JansenRitStep, core_call, dt_ms
from .brainstate import random
from .brainstate._state import State
from .brainstate.nn import Dynamics, Linear, Module, Param, call_order, init_maybe_prefetch
from .braintools import init as binit

__all__ = ["HORNSeqLayer", "HORNSeqNetwork", "JansenRitTR", "DelayedAdditiveConn"]


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

    def update(self, *args, **kwargs):
        return additive_coupling(u.get_magnitude(self.prefetch()), self.weights.value(), self.k.value())


class HORNSeqNetwork(Module):
    """Stacked `HORNSeqLayer` s and a linear readout ``h2o`` of the last layer's final ``x``."""

    __module__ = "brainmass"

    def __init__(self, n_input, n_hidden, n_output, alpha=0.04, omega=2 * math.pi / 28, gamma=0.01, v=0.0,
                 x_init=binit.Constant(0.0), y_init=binit.Constant(0.0), delay_init=binit.Constant(0.0), delay=None,
                 rec_w_init=binit.KaimingNormal(), rec_b_init=binit.Constant(0.0), inp_w_init=binit.KaimingNormal(),
                 inp_b_init=binit.Constant(0.0)):
        super().__init__()
        sizes = [n_hidden] if isinstance(n_hidden, int) else list(n_hidden)
        self.layers = []
        n_in = n_input
        for size in sizes:
            self.layers.append(HORNSeqLayer(n_in, size, alpha, omega, gamma, v, delay_init, x_init, y_init, delay,
                                            rec_w_init, rec_b_init, inp_w_init, inp_b_init))
            n_in = size
        self.h2o = Linear(n_in, n_output, binit.KaimingNormal(), binit.Constant(0.0))

    def hidden_activation(self, inputs):
        """Every layer's ``x`` trajectory."""
        outs, x = [], inputs
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs

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
