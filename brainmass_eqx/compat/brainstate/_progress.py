"""brainstate's ``ProgressBar`` for ``for_loop`` / ``scan``: a tqdm bar updated from inside
the compiled loop.

The loop calls the host (``jax.debug.callback``) on its first iteration, every ``freq``
iterations and on its last; the host side (`_Runner`) draws the bar. The callback reads the
runner of the loop running now (`running`), not one closed over at compile time, so that a
cached loop program draws a new bar on every call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import jax

__all__ = ["ProgressBar"]


class ProgressBar:
    """A progress bar for ``for_loop(..., pbar=ProgressBar(...))`` (or ``pbar=freq``).

    **Arguments** (brainstate's):

    - `freq`: iterations between updates; default about 20 updates in all.
    - `count`: the number of updates instead (not with `freq`).
    - `desc`: the label, a string, or ``(format_string, fn)`` with ``fn({'i': i}) -> dict``
      formatting the label at each update.
    - other keywords go to ``tqdm`` (``total`` and the refresh intervals are set here).
    """

    __module__ = "brainstate.transform"

    def __init__(self, freq: int | None = None, count: int | None = None, desc: Any = None, **kwargs: Any):
        if isinstance(freq, int) and freq <= 0:
            raise ValueError(f"Print rate (freq) should be > 0, but got {freq}.")
        if freq is not None and count is not None:
            raise ValueError("Cannot specify both count and freq.")
        if desc is not None and not isinstance(desc, str):
            if not (isinstance(desc, (tuple, list)) and len(desc) == 2 and isinstance(desc[0], str) and callable(desc[1])):
                raise TypeError(f"desc must be a string or a (format_string, callable) pair, but got {desc!r}.")
        for name in ("total", "mininterval", "maxinterval", "miniters"):
            kwargs.pop(name, None)
        self.freq, self.count, self.desc, self.kwargs = freq, count, desc, kwargs

    def plan(self, n: int) -> int:
        """The update interval for a loop of ``n`` iterations (brainstate's rules)."""
        if self.count is not None:
            freq = n // self.count
            if freq == 0:
                raise ValueError(f"Count {self.count} is too large for n {n}.")
            return freq
        if self.freq is None:
            return max(n // 20, 1) if n > 20 else 1
        if self.freq > n:
            raise ValueError(f"Print rate should be less than the number of steps {n}, got {self.freq}")
        return self.freq

    def label_data(self, i: Any) -> dict:
        """What the label is formatted with at iteration ``i`` (traced): ``desc[1]({'i': i})``."""
        if self.desc is None or isinstance(self.desc, str):
            return {}
        data = self.desc[1]({"i": i})
        if not isinstance(data, dict):
            raise TypeError(f"The desc format function must return a dict, but got {type(data).__name__}.")
        return data


class _Runner:
    """The host side of one loop's bar."""

    def __init__(self, pbar: ProgressBar, n: int):
        self.pbar, self.n, self.freq = pbar, n, pbar.plan(n)
        self.bar = None
        self.shown = 0

    def label(self, data: dict) -> str:
        desc = self.pbar.desc
        if desc is None:
            return f"Running for {self.n:,} iterations"
        return desc if isinstance(desc, str) else desc[0].format(**data)

    def tick(self, i: int, data: dict) -> None:
        from tqdm.auto import tqdm

        if self.bar is None:
            self.bar = tqdm(total=self.n, **self.pbar.kwargs)
        done = self.n if i >= self.n - 1 else i + 1
        self.bar.set_description(self.label(data), refresh=False)
        self.bar.update(done - self.shown)
        self.shown = done
        if done == self.n:
            self.bar.close()


_RUNNING: list[_Runner] = []


@contextlib.contextmanager
def running(pbar: ProgressBar | int | None, n: int) -> Iterator[_Runner | None]:
    """The runner of ``pbar`` (an int is brainstate's ``freq``) for a loop of ``n``
    iterations, the one the loop's callbacks draw while it runs; None without a bar."""
    if pbar is None:
        yield None
        return
    if isinstance(pbar, int) and not isinstance(pbar, bool):
        pbar = ProgressBar(freq=pbar)
    if not isinstance(pbar, ProgressBar):
        raise TypeError(f"pbar must be a ProgressBar or an int (its freq), got {type(pbar).__name__}.")
    runner = _Runner(pbar, n)
    _RUNNING.append(runner)
    try:
        yield runner
    finally:
        _RUNNING.remove(runner)
        if runner.bar is not None:
            runner.bar.close()


def _tick(i: Any, data: dict) -> None:
    if _RUNNING:
        _RUNNING[-1].tick(int(i), data)


def tick_if_due(i: Any, freq: int, n: int, pbar: ProgressBar) -> None:
    """Inside the loop body: call the host at the first, every ``freq``-th and the last
    iteration ``i`` (traced) of ``n``."""
    due = (i == 0) | (i % freq == freq - 1) | (i == n - 1)
    data = pbar.label_data(i)
    jax.lax.cond(due, lambda d: jax.debug.callback(_tick, i, d, ordered=True), lambda d: None, data)


def with_progress(body: Callable, freq: int, n: int, pbar: ProgressBar) -> Callable:
    """``body(carry, x)`` of a scan with the iteration count carried and the bar ticked."""

    def counted(carry, x):
        i, inner = carry
        inner, y = body(inner, x)
        tick_if_due(i, freq, n, pbar)
        return (i + 1, inner), y

    return counted
