"""One way to go image by image: serially or in a local process pool, same results."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_batch(fn: Callable[[Any], Any], batch: list[Any]) -> list[Any]:
    return [fn(item) for item in batch]


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def map_images(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> Iterator[R]:
    """Apply ``fn`` to every item and yield the results in input order.

    Items travel to worker processes in batches, so that the cost of
    shipping them is paid once per batch, not once per image.  ``fn`` must be
    picklable (a module-level function or a ``functools.partial`` of one)
    when ``workers > 1``.  At most ``2 × workers`` batches are in flight, so
    memory stays flat however many items there are.

    Parameters
    ----------
    fn : callable
        The per-image job.
    items : iterable
        Image records (or whatever ``fn`` takes); consumed lazily.
    workers : int, optional
        1 runs in this process; more uses a process pool.  Default: all cores.
    batch_size : int
        Items per task sent to a worker.
    progress : callable, optional
        Called with the number of items just finished.

    Examples
    --------
    >>> list(map_images(abs, [-1, 2, -3], workers=1))
    [1, 2, 3]
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, found {workers}")
    if workers == 1:
        for item in items:
            yield fn(item)
            if progress:
                progress(1)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = []
        batches = _batches(items, batch_size)
        for batch in islice(batches, 2 * workers):
            pending.append(pool.submit(_run_batch, fn, batch))
        while pending:
            results = pending.pop(0).result()
            batch = next(batches, None)
            if batch is not None:
                pending.append(pool.submit(_run_batch, fn, batch))
            yield from results
            if progress:
                progress(len(results))
