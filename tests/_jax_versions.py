"""The two JAX calls of the tests whose public spelling is newer than the ``jax>=0.6`` floor
that ``pyproject.toml`` declares: ``jax.enable_x64`` (from jax 0.8; before it
``jax.experimental.enable_x64``) and ``monitoring.unregister_event_duration_listener`` (after
jax 0.8.0; before it the private ``_unregister_event_duration_listener_by_callback``). The suite has to run on
every JAX the package allows, so it reaches both through here."""

import jax
from jax._src import monitoring


def enable_x64(new_val: bool = True):
    """A context manager that runs its block with ``jax_enable_x64 = new_val`` and restores
    the previous value after it."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(new_val)
    from jax.experimental import enable_x64 as experimental_enable_x64  # jax < 0.8

    return experimental_enable_x64(new_val)


def unregister_event_duration_listener(callback) -> None:
    """Removes ``callback`` registered by ``jax.monitoring.register_event_duration_secs_listener``."""
    remove = getattr(monitoring, "unregister_event_duration_listener", None)
    if remove is None:  # jax <= 0.8.0
        remove = monitoring._unregister_event_duration_listener_by_callback
    remove(callback)
