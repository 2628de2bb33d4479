"""``brainstate.init``: the initializers of ``braintools.init``."""

from ..braintools.init import (
    Constant,
    Initialization,
    KaimingNormal,
    Normal,
    Uniform,
    ZeroInit,
    param,
)

__all__ = ["Initialization", "Constant", "ZeroInit", "Uniform", "Normal", "KaimingNormal", "param"]
