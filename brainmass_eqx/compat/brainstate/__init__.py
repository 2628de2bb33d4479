"""The subset of ``brainstate`` that brainmass's documentation uses, for the compat facade.

``environ`` (``set``, ``get``, ``get_dt``, ``context``), ``random`` (``seed``,
``normal``, ``split_key``, ...), ``nn`` (``Module``, ``Dynamics``, ``Param`` with
transforms, ``init_all_states``), ``transform`` (``jit``, ``grad``, ``vmap``,
``for_loop``, ``scan``), the state types (``State``, ``HiddenState``, ``ParamState``)
and ``init`` (the initializers of ``braintools.init``).

States are mutable containers; the transformations thread them through JAX's pure
transformations (see ``brainmass_eqx.compat.brainstate._state``).
"""

from . import environ, init as init, nn, random, transform
from ._state import HiddenState, LongTermState, ParamState, ShortTermState, State, TreefyState

__all__ = [
    "environ",
    "random",
    "nn",
    "transform",
    "init",
    "State",
    "ShortTermState",
    "LongTermState",
    "HiddenState",
    "ParamState",
    "TreefyState",
    "ShardingMode",
    "__version__",
]

__version__ = "0.5.4"


class ShardingMode:
    """Sharding hints accepted (and ignored) by the states of the compat facade."""

    REPLICATED = "replicated"
    SHARDED = "sharded"
