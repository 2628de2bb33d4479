"""brainmass's ``Network`` on the functional core's `brainmass_eqx.network.Network`.

``Network(node, *, conn, distance=None, speed=None, coupling='diffusive', coupled_var,
k=1.0, delay_init=..., self_connection=False, noise=None)`` wraps a facade node model.
Its state is the node's (``net.node.x.value``); ``net.coupling`` is the coupling module
holding the gain ``k`` (named ``'coupling.k'`` by the `Fitter`); ``Simulator`` runs it as
one core solve, ``update(*node_inputs)`` takes one step with the delay history carried in
the solver state.

Deliberate differences (``docs/compat.md``): delays are read with brainmass's
whole-step rule (``ceil``) from a history that starts as the initial state (brainmass
filled it with random ``U(0, 0.05)`` values and never buffered the initial state);
``distance`` without ``speed`` is an error (brainmass silently dropped the delays); the
environment ``dt`` is not needed at construction, and delays stay fixed in time when the
run's ``dt`` changes; the ``'laplacian'`` connectivity is not trainable by default.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import network as core_network
from . import brainunit as u
from ._coupling import (
    AdditiveCoupling,
    DiffusiveCoupling,
    HyperbolicTangentCoupling,
    SigmoidalCoupling,
    SigmoidalJansenRitCoupling,
)
from ._models import CoreStepper, NodeModel, core_call
from ._noise import Noise, check_noise_size
from .brainstate._state import State
from .brainstate.nn import Module, Param, call_order
from .braintools import init as binit

__all__ = ["Network"]

_COUPLINGS = ("diffusive", "additive", "laplacian", "sigmoidal", "tanh", "sigmoidal_jansen_rit")


class _DefaultDelayInit(binit.Uniform):
    """brainmass's default ``delay_init`` (U(0, 0.05)); here it means "the initial state"."""

    def __repr__(self):
        return "Uniform(low=0.0, high=0.05)"


_DEFAULT_DELAY_INIT = _DefaultDelayInit(0.0, 0.05)


def _check_conn(conn, n, self_connection):
    """``conn`` as an (n, n) array, its diagonal zeroed unless ``self_connection`` (brainmass's
    rule, so that ``net.coupling.conn.value()`` shows the weights the run uses). A `Param` is
    kept as given, diagonal included: brainmass lets a Param own its structure."""
    if isinstance(conn, Param):
        return conn
    arr = np.asarray(u.get_magnitude(conn))
    if arr.ndim == 1:
        if arr.shape[0] != n * n:
            raise ValueError(f"flattened conn has length {arr.shape[0]}, expected {n * n}.")
        arr = arr.reshape(n, n)
    elif arr.ndim == 2:
        if arr.shape != (n, n):
            raise ValueError(f"conn has shape {arr.shape}, expected ({n}, {n}).")
    else:
        raise ValueError(f"conn must be 1-D (flattened) or 2-D; got {arr.ndim}-D.")
    if not self_connection:
        arr = arr * (1.0 - np.eye(n, dtype=arr.dtype))
    return arr


class Network(CoreStepper, Module):
    """A delay-coupled network of ``node`` regions (brainmass's ``Network``)."""

    __module__ = "brainmass"
    _is_core_network = True

    def __init__(self, node, *, conn, distance=None, speed=None, coupling="diffusive", coupled_var, k=1.0,
                 delay_init=_DEFAULT_DELAY_INIT, self_connection=False, noise=None, interpolation="ceil"):
        super().__init__()
        if not isinstance(node, (NodeModel, Network)):
            raise TypeError(f"node must be a brainmass node model (e.g. HopfStep(N)), got {type(node).__name__}.")
        if coupling not in _COUPLINGS:
            raise ValueError(
                "coupling must be 'diffusive', 'additive', 'laplacian', 'sigmoidal', 'tanh' or "
                f"'sigmoidal_jansen_rit'; got {coupling!r}."
            )
        states = list(node.state_names())
        if coupled_var not in states:
            raise ValueError(
                f"coupled_var {coupled_var!r} is not a state variable of {type(node).__name__}; "
                f"available states: {states}."
            )
        if noise is not None and not isinstance(noise, Noise):
            raise TypeError(f"noise must be a brainmass noise process (e.g. OUProcess(N, ...)), got {type(noise).__name__}.")
        if noise is not None:
            check_noise_size("noise", noise, node)
        self.node = node
        n = self.n_node
        self.coupled_var = coupled_var
        self.coupling_name = coupling
        self.self_connection = bool(self_connection)
        # brainmass keeps a Param conn's diagonal whatever self_connection says (a Laplacian
        # parametrisation builds its own diagonal, so the laplacian path still drops W's)
        self._keep_diagonal = self.self_connection or (isinstance(conn, Param) and coupling != "laplacian")
        conn = _check_conn(conn, n, self.self_connection)
        self.coupling = self._make_coupling(coupling, conn, k)
        self.distance = distance
        self.speed = speed
        self.delay_init = delay_init
        self.noise = noise
        self.interpolation = interpolation
        if noise is not None and isinstance(node, NodeModel):
            target = node.core.coupling_input
            clash = [kw for kw, (t, _) in node.noises.items() if t == target and getattr(node, kw) is not None]
            if clash:
                raise ValueError(
                    f"noise: the node's {clash[0]} already drives its coupling input {target!r}; brainmass added "
                    f"both, here one noise process drives one input. Drop Network(noise=...) or {clash[0]}=..."
                )
        self.core_model()  # conn, delays, units: checked now

    # -- construction -----------------------------------------------------------------------------
    def _make_coupling(self, name, conn, k):
        src = self._delayed_source
        tgt = self._target_value
        if name == "diffusive":
            return DiffusiveCoupling(src, tgt, conn, k=k)
        if name in ("additive", "laplacian"):
            return AdditiveCoupling(src, conn, k=k)
        if name == "sigmoidal":
            return SigmoidalCoupling(src, conn, k=k)
        if name == "tanh":
            return HyperbolicTangentCoupling(src, conn, k=k)
        return SigmoidalJansenRitCoupling(src, conn, k=k)

    def _delayed_source(self):
        # The coupling module's x: the source seen by every target (no delay), for
        # ``net.coupling.update()`` outside a run.
        x = u.get_magnitude(getattr(self.node, self.coupled_var).value)
        return jnp.broadcast_to(x[..., None, :], x.shape + (x.shape[-1],))

    def _target_value(self):
        return u.get_magnitude(getattr(self.node, self.coupled_var).value)

    @property
    def n_node(self) -> int:
        return int(self.node.n_regions)

    @property
    def n_regions(self) -> int:
        return self.n_node

    # -- the core model ---------------------------------------------------------------------------
    def _history(self):
        if self.delay_init is _DEFAULT_DELAY_INIT or self.delay_init is None:
            return None
        value = binit.param(self.delay_init, (self.n_node,), allow_scalar=False)
        return {self.coupled_var: u.get_magnitude(value)}

    def core_model(self):
        node = self.node.core_model()
        conn = self.coupling.conn.value()
        kwargs = {n: getattr(self.coupling, n).value() for n in self.coupling.names if n != "k"}
        coupling = self.coupling_name
        if kwargs and coupling not in ("additive", "laplacian"):
            from .. import coupling as core_coupling

            cls = {"sigmoidal": core_coupling.Sigmoidal, "tanh": core_coupling.Tanh,
                   "sigmoidal_jansen_rit": core_coupling.SigmoidalJansenRit}[coupling]
            coupling = cls(**kwargs)
        elif coupling in ("additive", "laplacian") and "b" in kwargs:
            from .. import coupling as core_coupling

            if coupling == "additive":
                coupling = core_coupling.Additive(b=kwargs["b"])
            else:  # brainmass's: its LaplacianConnParam (exp(W) * W) under an additive coupling
                coupling = core_coupling.Laplacian(exp_weights=True, b=kwargs["b"])
        override = self.__dict__.get("_core_override")
        if override is not None:
            return override
        history = self._history()
        delays = {} if self.distance is None and self.speed is None else {
            "distance": self.distance, "speed": self.speed, "max_delay": self._max_delay()}
        return core_call(
            core_network.Network, node, conn, coupling=coupling, coupled_var=self.coupled_var,
            k=self.coupling.k.value(), self_connection=self._keep_diagonal, interpolation=self.interpolation,
            history=history, noise=None if self.noise is None else self.noise.to_core(), **delays,
        )  # fmt: skip

    def _max_delay(self):
        """The longest delay (ms) from host values, so that a core network built inside a
        trace (a fit, a vmap) knows its history capacity; None if the delays are traced."""
        try:
            d, v = self.distance, self.speed
            d = d.to(u.mm).value if isinstance(d, u.Quantity) else d
            v = v.to(u.mm / u.ms).value if isinstance(v, u.Quantity) else v
            tau = np.asarray(d, dtype=np.float64) / np.asarray(v, dtype=np.float64)
            tau = np.broadcast_to(tau, (self.n_node, self.n_node)) * (1.0 - np.eye(self.n_node))
            return float(tau.max())
        except Exception:  # noqa: BLE001 (traced or unusual inputs: let the core decide)
            return None

    def solver(self):
        return self.node.solver()

    def state_names(self):
        return self.node.state_names()

    @property
    def state_units(self):
        return self.node.state_units

    @property
    def output(self):
        return self.node.output

    def observable_unit(self, name, core=None):
        return self.node.observable_unit(name, None if core is None else core.node)

    def _to_facade(self, core, name, value):
        return self.node._to_facade(core.node, name, value)

    def _unflat(self, x):
        return self.node._unflat(x)

    @property
    def _batch(self):
        return getattr(self.node, "_batch", None)

    @_batch.setter
    def _batch(self, value):
        pass

    def _noise_key(self, core) -> str | None:
        if self.noise is None:
            return None
        target = core.target[0]
        return f"{target}_noise"

    def to_core_state(self, core=None) -> dict:
        core = self.core_model() if core is None else core
        y = self.node.to_core_state(core.node)
        key = self._noise_key(core)
        if key is not None and key not in y:
            value = getattr(self.noise, "x", None)
            y[key] = (
                u.get_magnitude(value.value) if isinstance(value, State)
                else self.node._noise_init(core.node, key)
            )
        return y

    def from_core_state(self, state, core=None) -> None:
        core = self.core_model() if core is None else core
        self.node.from_core_state(state, core.node)
        key = self._noise_key(core)
        if key is not None and key in state:
            if isinstance(getattr(self.noise, "x", None), State):
                self.noise.x.value = state[key]
            else:
                self.noise.x = State(state[key])

    def core_inputs(self, args, kwargs=None, core=None):
        # Simulator inputs follow the coupling current, which is the node's first input.
        node_core = None if core is None else core.node
        return self.node.core_inputs((None,) + tuple(args), kwargs, node_core)

    def _output(self, core):
        return self.node._output(core.node)

    # -- the stateful protocol -----------------------------------------------------------------------
    @call_order(1)
    def init_state(self, batch_size=None, **kwargs):
        """Reset the delay history (to the initial state) and the step counter."""
        self._init_stepper(batch_size)

    def update(self, *node_inputs):
        """One step: the delayed coupling current enters the node's first input."""
        return self._core_step(node_inputs, {})

    def __repr__(self):
        return (
            f"Network(n_node={self.n_node}, node={type(self.node).__name__}, coupling={self.coupling_name!r}, "
            f"coupled_var={self.coupled_var!r})"
        )
