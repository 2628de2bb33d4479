"""brainmass's ``Network`` on the functional core's `brainmass_eqx.network.Network`."""

from __future__ import annotations

from .brainstate.nn import Module

__all__ = ["Network"]


class Network(Module):
    """``Network(node, *, conn, distance=None, speed=None, coupling='diffusive', coupled_var, k=1.0,
    delay_init=..., self_connection=False, noise=None)``."""

    __module__ = "brainmass"

    def __init__(self, *args, **kwargs):
        try:
            from .. import network  # noqa: F401
        except ImportError as err:
            raise NotImplementedError(
                "brainmass.Network needs brainmass_eqx.network, which is not available in this build yet."
            ) from err
        raise NotImplementedError("brainmass.Network: facade pending")
