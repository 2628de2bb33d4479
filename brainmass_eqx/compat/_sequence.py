"""brainmass's sequence blocks (``HORNSeqLayer``, ``HORNSeqNetwork``, ``JansenRitTR``)."""

from __future__ import annotations

from .brainstate.nn import Module

__all__ = ["HORNSeqLayer", "HORNSeqNetwork", "JansenRitTR"]


class _NotYet(Module):
    __module__ = "brainmass"

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            f"brainmass.{type(self).__name__} is not part of the compat facade yet; use "
            f"brainmass_eqx.models.{type(self).__name__} (functional) instead."
        )


class HORNSeqLayer(_NotYet):
    """brainmass's HORN sequence layer (not in the facade yet)."""


class HORNSeqNetwork(_NotYet):
    """brainmass's multi-layer HORN network (not in the facade yet)."""


class JansenRitTR(_NotYet):
    """brainmass's Jansen-Rit TR block (not in the facade yet)."""
