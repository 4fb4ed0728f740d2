"""``PackedList``: an append-only sequence kept as compressed pickles, for results that grow with the dataset.

A health check of a dataset with many overlapping instances holds a finding
per overlapping pair: 12k findings on 5,000 COCO-like images, about 700
bytes each as Python objects.  Packed in chunks of :data:`CHUNK` items
(pickle, then zlib at level 1), the same findings take about 50 bytes each,
and past :data:`IN_MEMORY` of them they wait in a temporary file.  Items
are unpickled again one chunk at a time, whenever the list is iterated.

Examples
--------
>>> items = PackedList(range(5))
>>> items.append(5)
>>> len(items), list(items), list(items)[-1]
(6, [0, 1, 2, 3, 4, 5], 5)
"""

from __future__ import annotations

import os
import pickle
import tempfile
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Items per compressed chunk: large enough for zlib to find the repeats between items.
CHUNK = 512


#: Packed bytes a list keeps in memory; later chunks go to an unnamed temporary file, so that memory stays
#: flat however many items come (a COCO-train-sized file's 420k findings are ~21 MB packed).
IN_MEMORY = 4 << 20


def pack(items: list[T]) -> bytes:
    """``items`` as one chunk of a :class:`PackedList` (:meth:`PackedList.add_packed`).

    Packed in the worker that made them, results cross to the process that
    keeps them as these bytes, and are never objects there until read.
    """
    return zlib.compress(pickle.dumps(items, pickle.HIGHEST_PROTOCOL), 1)


class PackedList(Generic[T]):
    """Items appended in order, iterated in order (any number of times); not indexable.

    Past ``in_memory`` packed bytes, chunks are written to a temporary
    file (deleted when the list is) and read back on each iteration.
    """

    def __init__(self, items: Iterable[T] = (), *, in_memory: int = IN_MEMORY):
        self._in_memory = in_memory
        self._chunks: list[bytes] = []
        self._spilled: list[tuple[int, int]] = []  # (offset, length) of each chunk in self._file
        self._file: BinaryIO | None = None
        self._held = 0
        self._tail: list[T] = []
        self._len = 0
        self.extend(items)

    def append(self, item: T) -> None:
        self._tail.append(item)
        self._len += 1
        if len(self._tail) == CHUNK:
            self._pack()

    def add_packed(self, chunk: bytes, count: int) -> None:
        """Append the ``count`` items that :func:`pack` made ``chunk`` of, after those appended so far."""
        if self._tail:
            self._pack()
        self._store(chunk)
        self._len += count

    def _pack(self) -> None:
        chunk = pack(self._tail)
        self._tail = []
        self._store(chunk)

    def _store(self, chunk: bytes) -> None:
        if self._file is None and self._held + len(chunk) <= self._in_memory:  # once one spills, all do
            self._chunks.append(chunk)
            self._held += len(chunk)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="segdata-packed-")
            weakref.finalize(self, self._file.close)  # closed (and so deleted) with the list
        self._spilled.append((self._file.seek(0, os.SEEK_END), len(chunk)))
        self._file.write(chunk)

    def extend(self, items: Iterable[T]) -> None:
        """Append ``items``; of another packed list, its chunks as they are, not unpacked and packed again."""
        if not isinstance(items, PackedList):
            for item in items:
                self.append(item)
            return
        chunks, count, tail = items._snapshot()
        if self._tail:
            self._pack()
        for chunk in chunks:
            self._store(chunk)
        self._len += count
        self.extend(tail)

    def _snapshot(self) -> tuple[Iterator[bytes], int, list[T]]:
        """The packed chunks so far, in order, how many items they hold, and the items not yet packed.

        What is appended later is not among them.
        """
        chunks, spilled, tail = list(self._chunks), list(self._spilled), list(self._tail)

        def read() -> Iterator[bytes]:
            yield from chunks
            if spilled:
                self._file.flush()  # type: ignore[union-attr]
                fd = self._file.fileno()  # type: ignore[union-attr]
                for offset, length in spilled:
                    yield os.pread(fd, length, offset)

        return read(), self._len - len(tail), tail

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[T]:
        chunks, _, tail = self._snapshot()  # what is appended while iterating is not seen
        for chunk in chunks:
            yield from pickle.loads(zlib.decompress(chunk))
        yield from tail

    def __reduce__(self):
        return PackedList, (list(self),)  # a file does not travel: the items do

    def __eq__(self, other: object) -> bool:
        """Equal to a list or packed list of equal items, in order."""
        if not isinstance(other, (PackedList, list)):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"PackedList({self._len} items in {len(self._chunks) + len(self._spilled)} packed chunks, "
                f"{len(self._spilled)} on disk)")


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
        return len(self.items)  # type: ignore[arg-type]

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, (Mapped, list)):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]
