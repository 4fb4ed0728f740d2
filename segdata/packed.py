"""``PackedList``: an append-only sequence kept as compressed pickles, for results that grow with the dataset.

A health check of a dataset with many overlapping instances holds a finding
per overlapping pair: 12k findings on 5,000 COCO-like images, about 700
bytes each as Python objects.  Packed in chunks of :data:`CHUNK` items
(pickle, then zlib at level 1), the same findings take about 50 bytes each.
Items are unpickled again one chunk at a time, whenever the list is
iterated.

Examples
--------
>>> items = PackedList(range(5))
>>> items.append(5)
>>> len(items), list(items), list(items)[-1]
(6, [0, 1, 2, 3, 4, 5], 5)
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Items per compressed chunk: large enough for zlib to find the repeats between items.
CHUNK = 512


class PackedList(Generic[T]):
    """Items appended in order, iterated in order (any number of times); not indexable."""

    def __init__(self, items: Iterable[T] = ()):
        self._chunks: list[bytes] = []
        self._tail: list[T] = []
        self._len = 0
        self.extend(items)

    def append(self, item: T) -> None:
        self._tail.append(item)
        self._len += 1
        if len(self._tail) == CHUNK:
            self._chunks.append(zlib.compress(pickle.dumps(self._tail, pickle.HIGHEST_PROTOCOL), 1))
            self._tail = []

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[T]:
        tail = list(self._tail)  # what is appended while iterating is not seen
        for chunk in list(self._chunks):
            yield from pickle.loads(zlib.decompress(chunk))
        yield from tail

    def __eq__(self, other: object) -> bool:
        """Equal to a list or packed list of equal items, in order."""
        if not isinstance(other, (PackedList, list)):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PackedList({self._len} items in {len(self._chunks)} packed chunks)"


class Mapped(Generic[T, R]):
    """``fn`` of each item, made again on each iteration: a view that :func:`segdata.io.iter_json` writes
    item by item, so that a JSON document of many results (findings, changes, image reports) is never
    held whole.

    Examples
    --------
    >>> squares = Mapped(lambda x: x * x, PackedList(range(4)))
    >>> len(squares), list(squares), squares == [0, 1, 4, 9]
    (4, [0, 1, 4, 9], True)
    """

    def __init__(self, fn: Callable[[T], R], items: Iterable[T]):
        self.fn, self.items = fn, items

    def __iter__(self) -> Iterator[R]:
        return map(self.fn, self.items)

    def __len__(self) -> int:
        return len(self.items) if isinstance(self.items, Sized) else sum(1 for _ in self.items)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, (Mapped, list)):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]
