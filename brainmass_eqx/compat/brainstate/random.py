"""``brainstate.random``: a global PRNG key held in a `State`.

Because the key lives in a state, the compat transformations thread it through
``jit``/``for_loop``/``vmap`` like any other state: each draw splits it. The streams are
JAX's (``jax.random``), so numbers differ from brainstate's; seeds are reproducible.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._state import State

__all__ = [
    "RandomState",
    "DEFAULT",
    "seed",
    "split_key",
    "split_keys",
    "get_key",
    "set_key",
    "normal",
    "randn",
    "uniform",
    "rand",
    "randint",
    "choice",
    "permutation",
    "exponential",
    "bernoulli",
]


class RandomState(State):
    """A state holding a JAX PRNG key."""

    __module__ = "brainstate.random"

    def __init__(self, seed_or_key: Any = None):
        super().__init__(_as_key(seed_or_key))

    def seed(self, seed_or_key: Any = None) -> None:
        self.value = _as_key(seed_or_key)

    def split_key(self, n: int | None = None):
        keys = jr.split(self.value, 2 if n is None else n + 1)
        self.value = keys[0]
        return keys[1] if n is None else keys[1:]


def _as_key(seed_or_key: Any):
    if seed_or_key is None:
        seed_or_key = np.random.randint(0, 2**31 - 1)
    if isinstance(seed_or_key, (int, np.integer)):
        return jr.key(int(seed_or_key))
    return seed_or_key


DEFAULT = RandomState(0)


def seed(seed_or_key: Any = None) -> None:
    """Re-seed the global key (``None``: a random seed). Also seeds NumPy's global RNG,
    as brainstate does."""
    if isinstance(seed_or_key, (int, np.integer)):
        np.random.seed(int(seed_or_key) % (2**32))
    DEFAULT.seed(seed_or_key)


def split_key(n: int | None = None):
    """A fresh key (or ``n`` keys) split off the global key."""
    return DEFAULT.split_key(n)


def split_keys(n: int):
    return DEFAULT.split_key(n)


def get_key():
    return DEFAULT.value


def set_key(key) -> None:
    DEFAULT.value = key


def _shape(size) -> tuple[int, ...]:
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(size)


def normal(loc: Any = 0.0, scale: Any = 1.0, size: Any = None, key=None, dtype=None):
    shape = _shape(size) if size is not None else jnp.broadcast_shapes(jnp.shape(loc), jnp.shape(scale))
    key = split_key() if key is None else key
    return loc + scale * jr.normal(key, shape, dtype or jnp.result_type(float))


def randn(*shape, key=None):
    return normal(size=shape, key=key)


def uniform(low: Any = 0.0, high: Any = 1.0, size: Any = None, key=None, dtype=None):
    shape = _shape(size) if size is not None else jnp.broadcast_shapes(jnp.shape(low), jnp.shape(high))
    key = split_key() if key is None else key
    return jr.uniform(key, shape, dtype or jnp.result_type(float), jnp.asarray(low), jnp.asarray(high))


def rand(*shape, key=None):
    return uniform(size=shape, key=key)


def randint(low, high=None, size=None, key=None, dtype=int):
    if high is None:
        low, high = 0, low
    key = split_key() if key is None else key
    return jr.randint(key, _shape(size), low, high, dtype)


def choice(a, size=None, replace=True, p=None, key=None):
    key = split_key() if key is None else key
    return jr.choice(key, jnp.asarray(a) if not isinstance(a, int) else a, _shape(size), replace, p)


def permutation(x, key=None):
    key = split_key() if key is None else key
    return jr.permutation(key, x)


def exponential(scale=1.0, size=None, key=None):
    key = split_key() if key is None else key
    return scale * jr.exponential(key, _shape(size))


def bernoulli(p=0.5, size=None, key=None):
    key = split_key() if key is None else key
    return jr.bernoulli(key, p, _shape(size) if size is not None else None)


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
