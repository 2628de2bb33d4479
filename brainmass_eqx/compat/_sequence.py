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

from .. import models as core_models
from . import brainunit as u
from ._models import HORNStep, dt_ms
from .brainstate.nn import Linear, Module
from .braintools import init as binit

__all__ = ["HORNSeqLayer", "HORNSeqNetwork", "JansenRitTR"]


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
        if delay is not None:
            raise NotImplementedError(
                "HORNSeqLayer(delay=...): delayed recurrence is not part of the compat facade; use "
                "brainmass_eqx.models.HORNSeqLayer(..., delay=...)."
            )
        self.n_input, self.n_hidden = int(n_input), int(n_hidden)
        self.i2h = Linear(n_input, n_hidden, inp_w_init, inp_b_init)
        self.h2h = Linear(n_hidden, n_hidden, rec_w_init, rec_b_init)
        self.horn = HORNStep(n_hidden, alpha=alpha, omega=omega, gamma=gamma, v=v, x_init=x_init, y_init=y_init)

    def core(self) -> core_models.HORNSeqLayer:
        cell = self.horn.core_model()
        layer = core_models.HORNSeqLayer(self.n_input, self.n_hidden, key=jr.key(0), dt=dt_ms())
        layer = eqx.tree_at(lambda m: m.cell, layer, cell)
        layer = eqx.tree_at(lambda m: m.i2h, layer, self.i2h.core())
        return eqx.tree_at(lambda m: m.h2h.linear, layer, self.h2h.core())

    def update(self, inputs, record_state: bool = False):
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


class JansenRitTR(Module):
    """brainmass's Jansen-Rit TR block (not in the facade: use the functional one)."""

    __module__ = "brainmass"

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            "brainmass.JansenRitTR is not part of the compat facade; use brainmass_eqx.models.JansenRitTR "
            "(functional, same equations)."
        )
