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
    "random", "random_sample", "ranf", "sample", "standard_normal", "rand_like", "randn_like", "poisson", "gamma",
    "beta", "laplace", "logistic", "lognormal",
    "RandomState",
    "DEFAULT",
    "seed",
    "split_key",
    "split_keys",
    "get_key",
    "set_key",
    "restore_key",
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
        self._backup = None

    def seed(self, seed_or_key: Any = None) -> None:
        self.value = _as_key(seed_or_key)

    def split_key(self, n: int | None = None, backup: bool = False):
        if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1):
            raise ValueError(f"n must be a positive integer or None, got {n!r}.")
        keys = jr.split(self.value, 2 if n is None else n + 1)
        if backup:
            self.backup_key()
        self.value = keys[0]
        return keys[1] if n is None else keys[1:]

    def backup_key(self) -> None:
        if self._backup is not None:
            raise ValueError("The random key has been backed up, and has not been restored (restore_key()).")
        self._backup = self.value

    def restore_key(self) -> None:
        if self._backup is None:
            raise ValueError("The random key has not been backed up: split_key(..., backup=True) first.")
        self.value, self._backup = self._backup, None


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


def split_key(n: int | None = None, backup: bool = False):
    """A fresh key (or ``n`` keys) split off the global key; ``backup=True`` keeps the
    key before the split for `restore_key`."""
    return DEFAULT.split_key(n, backup)


def split_keys(n: int, backup: bool = False):
    return DEFAULT.split_key(n, backup)


def restore_key() -> None:
    """The global key as it was before the last ``split_key(..., backup=True)``."""
    DEFAULT.restore_key()


def get_key():
    return DEFAULT.value


def set_key(seed_or_key: Any) -> None:
    """Set the global key (a key, or an integer seed)."""
    DEFAULT.value = _as_key(seed_or_key)


def _key(key: Any):
    """A draw's key: a fresh split of the global key, or the one given (a key or a seed)."""
    return split_key() if key is None else _as_key(key)


def _shape(size) -> tuple[int, ...]:
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(size)


def normal(loc: Any = 0.0, scale: Any = 1.0, size: Any = None, key=None, dtype=None):
    shape = _shape(size) if size is not None else jnp.broadcast_shapes(jnp.shape(loc), jnp.shape(scale))
    return loc + scale * jr.normal(_key(key), shape, dtype or jnp.result_type(float))


def randn(*dn, key=None, dtype=None):
    return normal(size=dn, key=key, dtype=dtype)


def uniform(low: Any = 0.0, high: Any = 1.0, size: Any = None, key=None, dtype=None):
    shape = _shape(size) if size is not None else jnp.broadcast_shapes(jnp.shape(low), jnp.shape(high))
    return jr.uniform(_key(key), shape, dtype or jnp.result_type(float), jnp.asarray(low), jnp.asarray(high))


def rand(*dn, key=None, dtype=None):
    return uniform(size=dn, key=key, dtype=dtype)


def randint(low, high=None, size=None, key=None, dtype=int):
    if high is None:
        low, high = 0, low
    return jr.randint(_key(key), _shape(size), low, high, dtype)


def choice(a, size=None, replace=True, p=None, key=None):
    return jr.choice(_key(key), jnp.asarray(a) if not isinstance(a, int) else a, _shape(size), replace, p)


def permutation(x, axis: int = 0, independent: bool = False, key=None):
    """``x`` shuffled along ``axis`` (each slice on its own with ``independent=True``); an
    integer n shuffles ``arange(n)``."""
    return jr.permutation(_key(key), x, axis, independent=independent)


def exponential(scale=None, size=None, key=None, dtype=None):
    """Exponential draws of mean ``scale`` (1 if None); the shape is ``size`` or ``scale``'s."""
    if size is None:
        size = () if scale is None else jnp.shape(scale)
    out = jr.exponential(_key(key), _shape(size), dtype or jnp.result_type(float))
    return out if scale is None else scale * out


def bernoulli(p=0.5, size=None, key=None, check_valid: bool = True):
    """Boolean draws, True with probability ``p``; ``check_valid`` refuses a ``p`` outside
    [0, 1] (when it is a concrete value)."""
    if check_valid and not isinstance(p, jax.core.Tracer) and np.any((np.asarray(p) < 0) | (np.asarray(p) > 1)):
        raise ValueError(f"Parameter p should be within [0, 1], but we got {p!r}.")
    return jr.bernoulli(_key(key), p, _shape(size) if size is not None else None)


def _size_of(size: Any, *params: Any) -> tuple[int, ...]:
    """``size``, else the broadcast shape of the given (not None) parameters."""
    if size is not None:
        return _shape(size)
    return jnp.broadcast_shapes(*(jnp.shape(p) for p in params if p is not None))


def _loc_scale(loc: Any, scale: Any, draws: Any) -> Any:
    """``draws * scale + loc``, either left out when None (brainstate's)."""
    draws = draws if scale is None else draws * scale
    return draws if loc is None else draws + loc


def random(size=None, key=None, dtype=None):
    """Uniform draws in [0, 1)."""
    return jr.uniform(_key(key), _shape(size), dtype or jnp.result_type(float))


random_sample = ranf = sample = random


def standard_normal(size=None, key=None, dtype=None):
    return jr.normal(_key(key), _shape(size), dtype or jnp.result_type(float))


def rand_like(input, dtype=None, key=None):  # noqa: A002 (brainstate's name)
    """``rand`` of ``input``'s shape (and dtype unless given)."""
    return random(jnp.shape(input), key=key, dtype=dtype or jnp.result_type(input))


def randn_like(input, dtype=None, key=None):  # noqa: A002 (brainstate's name)
    """``randn`` of ``input``'s shape (and dtype unless given)."""
    return standard_normal(jnp.shape(input), key=key, dtype=dtype or jnp.result_type(input))


def poisson(lam=1.0, size=None, key=None, dtype=None):
    return jr.poisson(_key(key), lam, _size_of(size, lam), dtype or jnp.result_type(int))


def gamma(shape, scale=None, size=None, key=None, dtype=None):
    """Gamma draws of shape ``shape`` (``scale`` 1 if None)."""
    draws = jr.gamma(_key(key), shape, _size_of(size, shape, scale), dtype or jnp.result_type(float))
    return _loc_scale(None, scale, draws)


def beta(a, b, size=None, key=None, dtype=None):
    return jr.beta(_key(key), a, b, _size_of(size, a, b), dtype or jnp.result_type(float))


def laplace(loc=None, scale=None, size=None, key=None, dtype=None):
    draws = jr.laplace(_key(key), _size_of(size, loc, scale), dtype or jnp.result_type(float))
    return _loc_scale(loc, scale, draws)


def logistic(loc=None, scale=None, size=None, key=None, dtype=None):
    draws = jr.logistic(_key(key), _size_of(size, loc, scale), dtype or jnp.result_type(float))
    return _loc_scale(loc, scale, draws)


def lognormal(mean=None, sigma=None, size=None, key=None, dtype=None):
    """``exp`` of normal draws with ``mean`` and standard deviation ``sigma``."""
    draws = jr.normal(_key(key), _size_of(size, mean, sigma), dtype or jnp.result_type(float))
    return jnp.exp(_loc_scale(mean, sigma, draws))


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
