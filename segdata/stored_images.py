"""Image records kept as columns, their other source fields left in the JSON file they came from.

A COCO image record held as an :class:`~segdata.model.ImageRecord` costs
~490 bytes (the object, its ids, name and path, the URLs and date it
carries): 58 MB over COCO train's 118k images, more than its 860k
annotations' columns.  :class:`StoredImages` keeps per image what jobs read
(id, size, split, defect, folder, file name) in ~40 bytes, and the byte span
of its record, where the other fields are parsed again when asked for.
Records are made on each access; they are values, not the store's own
objects, so changing one does not change the store.
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdata.jsonstream import parse_items
from segdata.model import ImageRecord
from segdata.stored import narrow

_NUMBERS = ("id", "width", "height", "split", "defect", "folder", "file", "start", "stop")


class SourceFields(Mapping[str, Any]):
    """An image's fields that segdata does not interpret, read from its span of ``file`` on each use."""

    __slots__ = ("file", "start", "stop", "skip", "_fields")

    def __init__(self, file: str, start: int, stop: int, skip: frozenset[str]):
        self.file, self.start, self.stop, self.skip = file, start, stop, skip
        self._fields: dict[str, Any] | None = None

    def _parsed(self) -> dict[str, Any]:
        """Parsed once per record made (``{**fields}`` asks for every key), never kept by the store."""
        if self._fields is None:
            record = parse_items(self.file, np.array([self.start]), np.array([self.stop]))[0]
            self._fields = {key: value for key, value in record.items() if key not in self.skip}
        return self._fields

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._parsed() == dict(other)

    def __repr__(self) -> str:
        return repr(self._parsed())

    def __reduce__(self):
        return SourceFields, (self.file, self.start, self.stop, self.skip)


class StoredImages(Sequence[ImageRecord]):
    """A read-only sequence of image records kept as columns (see the module's docstring).

    Build one with :class:`ImageColumns`.  ``values(name)`` gives a column
    without making records (``id``, ``width``, ``height``, ``split``).
    """

    def __init__(self, columns: dict[str, np.ndarray], names: bytes, name_ends: np.ndarray,
                 tables: dict[str, tuple], skip: frozenset[str]):
        self.columns = {name: narrow(values) for name, values in columns.items()}
        self._names, self._name_ends = names, narrow(name_ends)
        self.tables, self.skip = tables, skip  # split / defect / folder / file: index → value

    def __len__(self) -> int:
        return len(self._name_ends)

    def _records(self, first: int, stop: int) -> list[ImageRecord]:
        """The records ``first`` to ``stop`` (columns read as lists, a slice at a time)."""
        t, rows = self.tables, slice(first, stop)
        ids, widths, heights, splits, defects, folders, files, starts, stops = (
            self.columns[name][rows].tolist() for name in _NUMBERS)
        ends = self._name_ends[max(first - 1, 0):stop].tolist()
        if first == 0:
            ends.insert(0, 0)
        records = []
        for n in range(stop - first):
            file_name = self._names[ends[n]:ends[n + 1]].decode()
            folder = t["folder"][folders[n]]
            records.append(ImageRecord(
                ids[n], file_name, widths[n], heights[n], split=t["split"][splits[n]],
                path=folder / file_name if folder is not None else None,
                defect=t["defect"][defects[n]] if defects[n] >= 0 else None,
                attributes=SourceFields(t["file"][files[n]], starts[n], stops[n], self.skip)))
        return records

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[n] for n in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError("image index out of range")
        index %= len(self)
        return self._records(index, index + 1)[0]

    def __iter__(self) -> Iterator[ImageRecord]:
        for first in range(0, len(self), 4096):
            yield from self._records(first, min(first + 4096, len(self)))

    def cut(self, first: int, stop: int) -> StoredImages:
        """Images ``first`` to ``stop`` as a store of their own: what a batch of them travels as."""
        part = copy.copy(self)  # its columns are narrow already: not narrowed again (~0.7 µs an image)
        ends = self._name_ends[first:stop]
        start = int(self._name_ends[first - 1]) if first else 0
        end = int(ends[-1]) if len(ends) else start
        part.columns = {name: values[first:stop] for name, values in self.columns.items()}
        part._names, part._name_ends = self._names[start:end], ends - start
        return part

    def values(self, name: str) -> np.ndarray:
        """One field of every image, in order: ``split`` as names, the numbers as they are stored."""
        if name == "split":
            return np.array(self.tables["split"], object)[self.columns["split"]]
        return self.columns[name]

    def __repr__(self) -> str:
        return f"StoredImages({len(self)} images)"

    @staticmethod
    def concat(parts: Sequence[StoredImages]) -> StoredImages:
        """One store holding the images of ``parts`` in order."""
        builder = ImageColumns(parts[0].skip)
        for part in parts:
            remap = {name: np.array([builder._index(name, value) for value in table] + [-1], np.int64)
                     for name, table in part.tables.items()}
            for name in _NUMBERS:
                values = part.columns[name]
                builder._columns[name].extend((remap[name][values] if name in remap else values).tolist())
            builder._names += part._names
            ends = part._name_ends.astype(np.int64) + (builder._name_ends[-1] if builder._name_ends else 0)
            builder._name_ends.extend(ends.tolist())
        return builder.build()


class ImageColumns:
    """Collects image records one at a time into the columns of a :class:`StoredImages`.

    Only records whose ``group`` and ``void`` are None, whose ``attributes``
    are a :class:`SourceFields` and whose path is ``folder / file_name`` fit
    (what a COCO file's records are).
    """

    def __init__(self, skip: frozenset[str]):
        self.skip = skip
        self._columns = {name: array("q") for name in _NUMBERS}
        self._names = bytearray()
        self._name_ends = array("q")
        self._tables: dict[str, dict[Any, int]] = {name: {} for name in ("split", "defect", "folder", "file")}

    def _index(self, table: str, value: Any) -> int:
        if table == "defect" and value is None:
            return -1
        return self._tables[table].setdefault(value, len(self._tables[table]))

    def append(self, image: ImageRecord, folder: Path | None) -> None:
        """Add ``image``, whose path is ``folder / image.file_name`` (None: no folder)."""
        fields = image.attributes
        if image.group is not None or image.void is not None or not isinstance(fields, SourceFields):
            raise ValueError(f"image {image.id} does not fit a StoredImages")
        values = (image.id, image.width, image.height, self._index("split", image.split),
                  self._index("defect", image.defect), self._index("folder", folder),
                  self._index("file", fields.file), fields.start, fields.stop)
        for name, value in zip(_NUMBERS, values):
            self._columns[name].append(value)
        self._names += image.file_name.encode()
        self._name_ends.append(len(self._names))

    def build(self) -> StoredImages:
        columns = {name: np.frombuffer(values, np.int64) if len(values) else np.zeros(0, np.int64)
                   for name, values in self._columns.items()}
        ends = np.frombuffer(self._name_ends, np.int64) if len(self._name_ends) else np.zeros(0, np.int64)
        tables = {name: tuple(table) for name, table in self._tables.items()}
        return StoredImages(columns, bytes(self._names), ends.copy(), tables, self.skip)
