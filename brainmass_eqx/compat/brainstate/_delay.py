"""brainstate's state reads for hand-built couplings: ``prefetch`` and ``prefetch_delay``.

``node.prefetch('x')`` is a zero-argument callable giving the current value of
``node.x``; ``node.prefetch_delay('x', (delay, index), init=...)`` gives, for every
target ``i`` and source slot ``j``, ``x[index[i, j]]`` as it was ``delay[i, j]`` ago
(brainstate's ``PrefetchDelayAt``). The past is a ring buffer owned by the node (one per
state variable, shared by all its delayed reads) and kept with the functional core's
history functions (`brainmass_eqx.models._delay_history`): reads go ``ceil(delay / dt)``
whole steps back (``dt`` of the environment when the buffer is initialised), and the
buffer is written, as in brainstate, *after each call* ``node(...)`` (not after
``node.update(...)``). Before the first write every read returns the ``init`` fill: the
initial state is not part of the past.

The buffer is allocated by ``init_maybe_prefetch(read)`` (what brainmass's couplings call
from their ``init_state``) or by ``init_all_states`` on any module that holds the read.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...models._delay_history import history_init, history_push, history_read, slots_for
from .. import brainunit as u
from . import environ
from ._state import State
from .nn import Module

__all__ = ["Prefetch", "PrefetchDelayAt", "StateDelay", "init_maybe_prefetch"]


def _read_item(module: Any, item: str) -> Any:
    value = getattr(module, item)
    if isinstance(value, State):
        return value.value
    return value.value() if hasattr(value, "value") and callable(value.value) else value


def _dt_ms() -> float:
    dt = environ.get_dt()
    return float(np.asarray(dt.to(u.ms).value)) if isinstance(dt, u.Quantity) else float(dt)


def _in_ms(delay: Any, name: str) -> np.ndarray:
    if isinstance(delay, u.Quantity):
        if delay.unit.physical_type != u.ms.astropy.physical_type:
            raise u.UnitMismatchError(f"{name} must be a time, got {delay}.")
        return np.asarray(delay.to(u.ms).value, dtype=float)
    return np.asarray(delay, dtype=float)  # a plain number is in ms


class StateDelay(Module):
    """The ring buffer of past values of one state variable ``item`` of ``module``.

    **Arguments:** `module` (the node), `item` (the state's attribute name), `init` (the
    fill before the first write: an initializer such as ``braintools.init.Constant(0.)``,
    a number or an array; a plain number is in the state's unit), `update_every` (ms, or a
    time; default: every step): brainstate's frequency-controlled buffer, written on the
    calls ``0, k, 2k, ...`` with ``k = int(update_every / dt)`` and holding one slot per
    ``update_every``, so a read ``delay`` back goes ``ceil(delay / update_every)`` slots back
    from the latest written one.
    """

    __module__ = "brainstate.nn"

    def __init__(self, module: Any, item: str, init: Any = 0.0, update_every: Any = None):
        super().__init__()
        self._module, self.item, self.init = module, item, init
        self.update_every = None if update_every is None else float(_in_ms(update_every, "update_every"))  # ms
        self.calls = State(None)
        self._every = 1
        self._max_delay = 0.0
        self.history = State(None)
        self.count = State(None)
        self._unit = None
        self._dt = None

    def register(self, max_delay_ms: float) -> None:
        self._max_delay = max(self._max_delay, float(max_delay_ms))

    @property
    def initialized(self) -> bool:
        return self.history.value is not None

    def init_state(self, batch_size: int | None = None, **kwargs: Any) -> None:
        """Allocate the buffer (``slots_for(longest delay, dt)`` entries) filled by ``init``."""
        from ..braintools import init as binit

        state = getattr(self._module, self.item, None)
        current = state.value if isinstance(state, State) else None
        if current is not None:
            shape, unit = jnp.shape(u.get_magnitude(current)), u.get_unit(current)
        else:
            shape = tuple(self._module.varshape) if batch_size is None else (int(batch_size), *self._module.varshape)
            unit = None
        self._unit = None if unit is None or u._is_dimensionless(unit) else unit
        dt = _dt_ms()
        self._every = 1
        if self.update_every is not None:
            if self.update_every < dt - 1e-12:
                raise ValueError(
                    f"prefetch_delay(update_every={self.update_every} ms) must be >= the step dt ({dt} ms)."
                )
            # brainstate truncates: int(update_every / dt) calls between writes.
            self._every = int(self.update_every / dt + 1e-9)
        # _dt: the time between slots (dt, or update_every for a frequency-controlled buffer).
        self._dt = dt if self.update_every is None else self.update_every
        self.calls.value = jnp.asarray(0, dtype=jnp.int32)
        n_slots = slots_for(self._max_delay, self._dt)
        random_fill = callable(self.init) and not isinstance(self.init, u.Quantity)
        # A random initializer gets one draw per slot, as brainstate fills its buffer.
        fill = binit.param(self.init, (n_slots, *shape)) if random_fill else self.init
        if isinstance(fill, u.Quantity):
            fill = fill.to(self._unit).value if self._unit is not None else u.maybe_decimal(fill)
        fill = jnp.asarray(fill, dtype=jnp.result_type(float))
        buffer, count = history_init(fill[0] if random_fill else jnp.broadcast_to(fill, shape), n_slots)
        if random_fill:
            buffer = fill
        self.history.value, self.count.value = buffer, count

    def _require(self) -> None:
        if not self.initialized:
            raise ValueError(
                f"The delay buffer of {type(self._module).__name__}.{self.item} is not initialised: call "
                "brainstate.nn.init_all_states(...) on the module holding the prefetch_delay read (or "
                "init_maybe_prefetch(read)) first."
            )

    def write(self) -> None:
        """Append the current value of the state (brainstate's after-update hook)."""
        self._require()
        value = _read_item(self._module, self.item)
        value = value.to(self._unit).value if isinstance(value, u.Quantity) and self._unit else u.get_magnitude(value)
        history, count = history_push(
            self.history.value, self.count.value, jnp.asarray(value, dtype=self.history.value.dtype)
        )
        if self._every > 1:
            # A frequency-controlled buffer keeps the push only on every k-th call.
            write = self.calls.value % self._every == 0
            history = jnp.where(write, history, self.history.value)
            count = jnp.where(write, count, self.count.value)
        self.history.value, self.count.value = history, count
        self.calls.value = self.calls.value + 1

    def read(self, delay_ms: np.ndarray, index: np.ndarray | None) -> Any:
        """The values ``delay_ms`` back (``index``: per-connection source columns)."""
        self._require()
        buffer, count = self.history.value, self.count.value
        lag = jnp.asarray(delay_ms / self._dt, dtype=buffer.dtype)
        n_batch = buffer.ndim - 1 - len(self._module.varshape)

        def one(buf):
            if index is None:
                return history_read(buf, count, jnp.broadcast_to(lag, buf.shape[1:]), "ceil")
            return history_read(buf, count, lag, "ceil", column=jnp.asarray(index))

        for _ in range(n_batch):  # leading batch axes of the state: read each member
            one = jax.vmap(one, in_axes=1)
        out = one(buffer)
        return out if self._unit is None else u.Quantity(out, self._unit)


class Prefetch(Module):
    """``node.prefetch(item)``: a zero-argument callable giving the current ``node.<item>``."""

    __module__ = "brainstate.nn"

    def __init__(self, module: Any, item: str):
        super().__init__()
        self._module, self.item = module, item

    def update(self, *args: Any, **kwargs: Any) -> Any:
        return _read_item(self._module, self.item)

    def __repr__(self) -> str:
        return f"Prefetch({type(self._module).__name__}.{self.item})"


class PrefetchDelayAt(Module):
    """``node.prefetch_delay(item, delay_or_(delay, index), init=...)``: a zero-argument
    callable giving ``node.<item>`` as it was ``delay`` ago (see the module docstring).

    With ``(delay, index)`` (both ``(N_out, N_in)``; ``index = brainmass.delay_index(N)``)
    the result is ``(..., N_out, N_in)``: entry ``[i, j]`` is source ``index[i, j]`` delayed
    by ``delay[i, j]``. With a scalar (or per-variable) delay it has the state's shape.
    """

    __module__ = "brainstate.nn"

    def __init__(self, module: Any, item: str, delay: Any, init: Any = None, update_every: Any = None):
        super().__init__()
        self._module, self.item = module, item
        if isinstance(delay, tuple):
            if len(delay) != 2:
                raise ValueError(f"prefetch_delay expects a delay or a (delay, index) pair, got {len(delay)} items.")
            time, index = delay
            self.index = np.asarray(index, dtype=np.int32)
        else:
            time, self.index = delay, None
        self.delay_ms = _in_ms(time, "delay")
        if self.index is not None and self.delay_ms.shape not in ((), self.index.shape):
            raise ValueError(f"delay shape {self.delay_ms.shape} does not match index shape {self.index.shape}.")
        if np.any(self.delay_ms < 0):
            raise ValueError(f"delays must be >= 0, got {self.delay_ms}.")
        every = None if update_every is None else float(_in_ms(update_every, "update_every"))
        self.delay = module._state_delay(item, init, every)
        self.delay.register(float(np.max(self.delay_ms)) if self.delay_ms.size else 0.0)

    def update(self, *args: Any, **kwargs: Any) -> Any:
        return self.delay.read(self.delay_ms, self.index)

    def __repr__(self) -> str:
        return f"PrefetchDelayAt({type(self._module).__name__}.{self.item}, max {np.max(self.delay_ms)} ms)"


def init_maybe_prefetch(target: Any, *args: Any, **kwargs: Any) -> None:
    """Initialise the delay buffer behind a `PrefetchDelayAt` (a `Prefetch` or any other
    callable needs nothing); brainmass's couplings call it from their ``init_state``."""
    if isinstance(target, PrefetchDelayAt):
        target.delay.init_state(*args, **kwargs)
