"""Annotations left in the JSON file they came from: columns in memory, records parsed where they are used.

Read whole, a COCO-train-sized file (400 MB, 860,000 instances) becomes
~1.3 GB of Python objects, and every job holds them all although it works
one image at a time.  :class:`StoredAnnotations` keeps, per annotation,
only the numbers jobs select by (ids, category, crowd, image size, defect)
and where its record starts; an image's records are read and parsed
again where that image is worked on — in a helper process, when there is
one — so memory grows by ~20 bytes per annotation, not ~1.5 KB.  A record
ends where the next one in its file starts, and an annotation's image
size is an index into the few sizes a dataset has: neither is kept per
annotation (7 MB at COCO-train size).

Formats of one file per image (LabelMe, YOLO, SA-1B, and the PNG maps of
semantic-PNG, instance-PNG, VOC and Cityscapes) keep the same columns and,
instead of where the record starts, its place in its file: the reader's
``load(file)`` gives the file's records again, in order.

Every file must stay unchanged while the dataset is in use, and a Dask
worker must see it at the same path (as it must the images).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
from segdata.jsonstream import parse_items
from segdata.model import Annotation, find_sorted

#: ``decode(record, split, height, width, defect, mask_ok) -> Annotation``: the reader's own record decoder
#: (the columns' id, image_id, category_id and iscrowd replace the annotation's: per-image records lack them).
Decoder = Callable[[dict, str, int, int, "str | None", bool], Annotation]
#: ``load(file) -> records``: a per-image file's records in order; ``start`` is then the record's index.
Loader = Callable[[str], Sequence[Any]]

#: The per-annotation columns and their types; ``shape`` indexes a store's ``shapes`` (height, width).
COLUMNS = {
    "file": np.int32, "split": np.int16, "start": np.int64, "id": np.int64, "image_id": np.int64,
    "category_id": np.int64, "iscrowd": np.bool_, "shape": np.int32, "defect": np.int16, "mask_ok": np.bool_,
    "face": np.int8,
}
FACES = ("polygon", "rle", "uncompressed-rle")


@dataclass(frozen=True)
class _Rows:
    """Everything needed to rebuild some rows, and nothing else: what a helper process receives."""

    files: tuple[str, ...]
    splits: tuple[str, ...]
    defects: tuple[str, ...]
    decode: Decoder
    table: np.ndarray  # structured: COLUMNS' fields, with height, width and stop in place of shape
    load: Loader | None = None

    def __len__(self) -> int:
        return len(self.table)

    def values(self, name: str) -> np.ndarray:
        """A field of every row without parsing it (see :func:`segdata.model.annotation_values`)."""
        return _values(self.table, self.splits, self.defects, name)

    def __reduce__(self):
        # the rows as one string of bytes and their dtype (the same object for every group of a batch,
        # so pickled once a batch): pickling the table as an array costs 5 µs a group, this 1
        return _unpack_rows, (self.files, self.splits, self.defects, self.decode, self.load, self.table.dtype,
                              self.table.tobytes())

    def cut(self, first: int, stop: int) -> _Rows:
        """Rows ``first`` to ``stop``, with only the files they are in."""
        return _Rows(self.files, self.splits, self.defects, self.decode, self.table[first:stop],
                     self.load).detached()

    def detached(self) -> _Rows:
        """These rows with only the files they are in: a helper is sent its few paths, not all of them."""
        if len(self.files) <= 1:
            return self
        table = self.table.copy()  # not a view's base: its rows are renumbered
        column = table["file"]
        if len(column) and (column == column[0]).all():  # as a rule, an image's rows: np.unique is slower
            used = column[:1].tolist()
            column[...] = 0
        else:
            used, table["file"] = np.unique(column, return_inverse=True)
            used = used.tolist()
        files = tuple(self.files[i] for i in used)
        return _Rows(files, self.splits, self.defects, self.decode, table, self.load)

    def build(self) -> list[Annotation]:
        """Read, parse and decode the rows, in their order."""
        c = self.table
        out: list[Annotation | None] = [None] * len(self)
        order = np.lexsort((c["start"], c["file"]))
        keys = list(zip(*(c[name].tolist() for name in ("id", "image_id", "category_id", "iscrowd"))))
        for file_index in np.unique(c["file"]).tolist():
            rows = order[c["file"][order] == file_index]
            if self.load is None:
                records = parse_items(self.files[file_index], c["start"][rows], c["stop"][rows])
            else:
                items = self.load(self.files[file_index])
                records = [items[at] for at in c["start"][rows].tolist()]
            for row, record in zip(rows.tolist(), records):
                defect = int(c["defect"][row])
                ann = self.decode(record, self.splits[c["split"][row]], int(c["height"][row]),
                                  int(c["width"][row]), self.defects[defect] if defect >= 0 else None,
                                  bool(c["mask_ok"][row]))
                # the columns win: a category map's new id, and what a per-image file's reader decided
                if (ann.id, ann.image_id, ann.category_id, ann.iscrowd) != keys[row]:
                    ann.id, ann.image_id, ann.category_id, ann.iscrowd = keys[row]  # new: decode made it
                out[row] = ann
        return out  # type: ignore[return-value]


def _unpack_rows(files: tuple[str, ...], splits: tuple[str, ...], defects: tuple[str, ...], decode: Decoder,
                 load: Loader | None, dtype: np.dtype, packed: bytes) -> _Rows:
    """:meth:`_Rows.__reduce__` undone: the table is a read-only view of ``packed``."""
    return _Rows(files, splits, defects, decode, np.frombuffer(packed, dtype), load)


class AnnotationGroup(Sequence[Annotation]):
    """The annotations of one image, parsed on first use; what travels to a helper is only their rows.

    ``len()`` and truth need no parsing, so that jobs can pass over images
    without annotations cheaply.
    """

    __slots__ = ("_rows", "_items")

    def __init__(self, rows: _Rows):
        self._rows = rows
        self._items: list[Annotation] | None = None

    def _built(self) -> list[Annotation]:
        if self._items is None:
            self._items = self._rows.build()
        return self._items

    def __len__(self) -> int:
        return len(self._rows)

    def values(self, name: str) -> np.ndarray:
        """A field of each annotation, without parsing (see :func:`segdata.model.annotation_values`)."""
        return self._rows.values(name)

    def __getitem__(self, index):
        return self._built()[index]

    def __iter__(self) -> Iterator[Annotation]:
        return iter(self._built())

    def __reduce__(self):
        return AnnotationGroup, (self._rows,)

    def __repr__(self) -> str:
        return f"AnnotationGroup({len(self)} annotations)"


class StoredAnnotations(Sequence[Annotation]):
    """A read-only sequence of annotations kept as columns (integers as narrow as their values allow)
    and byte spans in their source files.

    Indexing and iteration decode records on demand (iteration a few
    thousand at a time, in file order), so walking all of them holds one
    batch; :meth:`by_image` hands out each image's :class:`AnnotationGroup`.

    Parameters
    ----------
    files : sequence of str
        The source files; ``columns["file"]`` indexes them.
    splits : sequence of str
        Split names; ``columns["split"]`` indexes them.
    defects : sequence of str
        Finding codes; ``columns["defect"]`` indexes them (-1: none).
    decode : callable
        The reader's module-level record decoder (:data:`Decoder`).
    columns : dict of str to ndarray
        One array per name of :data:`COLUMNS`, all of one length; and
        ``stop``, where each record ends, if the rows are not every record
        of their files in file order (a selection of them).
    shapes : array of shape (k, 2)
        The (height, width) pairs ``columns["shape"]`` indexes (:func:`shape_codes`).
    load : callable, optional
        For one file per image: the reader's module-level :data:`Loader`
        (``start`` is a record's index in its file).
    closings : sequence of int, optional
        Without ``load``: where each file's array closes, the end of its last record.
    """

    def __init__(self, files: Sequence[str], splits: Sequence[str], defects: Sequence[str], decode: Decoder,
                 columns: dict[str, np.ndarray], shapes: np.ndarray, load: Loader | None = None,
                 closings: Sequence[int] = ()):
        self.files, self.splits, self.defects = tuple(files), tuple(splits), tuple(defects)
        self.decode, self.load, self.closings = decode, load, tuple(closings)
        self.shapes = narrow(np.asarray(shapes, np.int64).reshape(-1, 2))
        kept = dict(COLUMNS, stop=np.int64) if "stop" in columns else COLUMNS
        self.columns = {name: narrow(_typed(columns[name], dtype)) for name, dtype in kept.items()}
        shipped = [(name, values.dtype) for name, values in self.columns.items()
                   if name not in ("shape", "stop")]
        size = self.shapes.dtype
        self._row_type = np.dtype(shipped + [("height", size), ("width", size), ("stop", np.int64)])
        self._groups: tuple[dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray] | None = None

    def rows(self, indices: np.ndarray | slice) -> _Rows:
        """The rows at ``indices``, detached from the rest: with only the files they are in."""
        return self._detached(self._table(indices))

    def _table(self, indices: np.ndarray | slice) -> np.ndarray:
        """The rows at ``indices`` as one structured array, with each one's image size and record end: what
        a group is cut from and shipped as."""
        rows = np.arange(*indices.indices(len(self))) if isinstance(indices, slice) else np.asarray(indices)
        table = np.empty(len(rows), self._row_type)
        for name, values in self.columns.items():
            if name not in ("shape", "stop"):
                table[name] = values[rows]
        table["height"], table["width"] = self.shapes[self.columns["shape"][rows]].T
        table["stop"] = self._stops(rows)
        return table

    def _stops(self, rows: np.ndarray) -> np.ndarray:
        """Where the records at ``rows`` end: where the next row's starts, or for a file's last row where its
        array closes (0 for one file per image: there a record is found by its index)."""
        c = self.columns
        if "stop" in c:
            return c["stop"][rows]
        if self.load is not None or not len(rows):
            return np.zeros(len(rows), np.int64)
        following = np.minimum(rows + 1, len(self) - 1)
        file = c["file"][rows]
        last = (rows == len(self) - 1) | (c["file"][following] != file)
        return np.where(last, np.array(self.closings, np.int64)[file], c["start"][following])

    def _detached(self, table: np.ndarray) -> _Rows:
        """``table``'s rows as a :class:`_Rows`, with only the files they are in."""
        return _Rows(self.files, self.splits, self.defects, self.decode, table, self.load).detached()

    def __len__(self) -> int:
        return len(self.columns["id"])

    def values(self, name: str) -> np.ndarray:
        """A field of every annotation, without parsing (see :func:`segdata.model.annotation_values`)."""
        return _values(self.columns, self.splits, self.defects, name)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.rows(index).build()
        if not -len(self) <= index < len(self):
            raise IndexError("annotation index out of range")
        return self.rows(slice(index, index + 1 or None)).build()[0]

    def __iter__(self) -> Iterator[Annotation]:
        step = 4096
        for first in range(0, len(self), step):
            yield from self.rows(slice(first, first + step)).build()

    def __repr__(self) -> str:
        return f"StoredAnnotations({len(self)} annotations in {len(self.files)} files)"

    def select(self, rows: np.ndarray, category_id: np.ndarray) -> StoredAnnotations:
        """The annotations at ``rows``, in that order, with new category ids (a category map's result)."""
        columns = {name: values[rows] for name, values in self.columns.items()}
        if self.load is None:  # the rows that are left no longer end where the next one starts
            columns["stop"] = self._stops(rows)
        return StoredAnnotations(self.files, self.splits, self.defects, self.decode,
                                 {**columns, "category_id": category_id}, self.shapes, self.load,
                                 self.closings)

    def with_split(self, name: str) -> StoredAnnotations:
        """The same annotations, all in split ``name``."""
        columns = dict(self.columns, split=np.zeros(len(self), np.int16))
        return StoredAnnotations(self.files, (name,), self.defects, self.decode, columns, self.shapes,
                                 self.load, self.closings)

    @staticmethod
    def concat(parts: Sequence[StoredAnnotations]) -> StoredAnnotations:
        """One store holding the rows of ``parts`` in order (their decoders must be the same)."""
        files: dict[str, int] = {}
        splits: dict[str, int] = {}
        defects: dict[str, int] = {}
        shapes: dict[tuple[int, int], int] = {}
        closings: dict[str, int] = {}
        names = [file for part in parts for file in part.files]
        # a selection among the parts, or a file in two of them: a row's record need not end at the next row
        kept = dict(COLUMNS, stop=np.int64) if parts and parts[0].load is None and (
            any("stop" in part.columns for part in parts) or len(set(names)) < len(names)) else COLUMNS
        columns: dict[str, list[np.ndarray]] = {name: [] for name in kept}
        for part in parts:
            if part.decode is not parts[0].decode or part.load is not parts[0].load:
                raise ValueError("cannot join stores of different readers")
            closings.update(zip(part.files, part.closings))
            remap = {"file": (part.files, files), "split": (part.splits, splits),
                     "defect": (part.defects, defects), "shape": (map(tuple, part.shapes.tolist()), shapes)}
            for name in kept:
                values = part._stops(np.arange(len(part))) if name == "stop" else part.columns[name]
                if name in remap:
                    own, joined = remap[name]
                    table = np.array([joined.setdefault(value, len(joined)) for value in own] + [-1],
                                     np.int64)
                    values = table[values]  # -1 indexes the -1 appended last
                columns[name].append(values)
        return StoredAnnotations(files, splits, defects, parts[0].decode,
                                 {name: np.concatenate(values) if values else np.zeros(0, kept[name])
                                  for name, values in columns.items()}, np.array(list(shapes), np.int64),
                                 parts[0].load, [closings[file] for file in files] if closings else ())

    def by_image(self) -> Mapping[tuple[str, int], AnnotationGroup]:
        """Each image's annotations, keyed by ``(split, image_id)``, in file order within an image."""
        return _GroupedRows(self)

    def _image_index(self) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """Per split: sorted image ids and where each one's run starts in ``order``; and ``order``."""
        if self._groups is None:
            # few temporaries, and ``order`` as narrow as the row count: 3.4 MB held at 860k rows, not 7
            c = self.columns
            keys = (c["image_id"], c["split"]) if len(self.splits) > 1 else (c["image_id"],)
            order = narrow(np.lexsort(keys))  # stable: file order within an image
            split_sorted = c["split"][order]
            per_split = {}
            for split in np.unique(split_sorted).tolist():
                low, high = (int(np.searchsorted(split_sorted, split, side)) for side in ("left", "right"))
                ids = c["image_id"][order[low:high]]
                starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
                per_split[split] = (ids[starts], narrow(np.r_[starts, len(ids)] + low))
            self._groups = per_split, order
        return self._groups


class AnnotationColumns:
    """A per-image-file reader's annotations gathered as :data:`COLUMNS`, one source's rows at a time, while
    it reads: the records stay in their files, and until :meth:`store` a value takes 1 to 8 bytes in an
    ``array`` (a Python int in a list takes ~36).
    """

    #: Typecodes wide enough for every value a column can take; StoredAnnotations narrows them afterwards.
    _TYPECODES = {"file": "i", "split": "h", "start": "q", "id": "q", "image_id": "q", "category_id": "q",
                  "iscrowd": "b", "height": "q", "width": "q", "defect": "h", "mask_ok": "b", "face": "b"}

    def __init__(self) -> None:
        self._values = {name: array(code) for name, code in self._TYPECODES.items()}
        self._files: dict[str, int] = {}
        self._splits: dict[str, int] = {}
        self._defects: dict[str, int] = {}

    def add(self, file: str, split: str, ids: Sequence[int],
            defect: str | None | Sequence[str | None] = None, **values: int | Sequence[int]) -> None:
        """The rows of one source (an image's), whose records ``load(file)`` gives again.

        ``defect`` is each row's finding code (or None), or one for all rows.
        ``values`` are the other columns, each one value for all rows or one
        per row: ``image_id``, ``category_id``, ``height``, ``width`` (the
        image's, which :meth:`store` turns into ``shape``) and ``face`` (an index
        in :data:`segdata.masks.FACES`, or -1); ``start``, the record's index in
        ``load(file)``, defaults to the row's place, ``iscrowd`` to False and
        ``mask_ok`` (the mask can be decoded) to True.
        """
        n = len(ids)
        if not n:
            return
        codes = [defect] * n if defect is None or isinstance(defect, str) else defect
        row = {"file": self._files.setdefault(file, len(self._files)),
               "split": self._splits.setdefault(split, len(self._splits)), "start": range(n), "id": ids,
               "iscrowd": 0, "mask_ok": 1, "defect": [-1 if code is None else
                                                      self._defects.setdefault(code, len(self._defects))
                                                      for code in codes], **values}
        if row.keys() != self._values.keys():  # checked first: a column missed would fall out of step
            raise TypeError(f"columns wanted: {sorted(self._values.keys() - row.keys())}, "
                            f"unknown: {sorted(row.keys() - self._values.keys())}")
        for name, value in row.items():
            one = isinstance(value, (int, np.integer))
            self._values[name].extend(repeat(int(value), n) if one else value)

    def store(self, decode: Decoder, load: Loader) -> StoredAnnotations:
        """The rows as a store: ``load(file)`` gives a source's records again, ``decode`` makes each one an
        annotation."""
        columns = {name: np.frombuffer(values, values.typecode) if values
                   else np.zeros(0, COLUMNS.get(name, np.int64)) for name, values in self._values.items()}
        shapes, columns["shape"] = shape_codes(columns.pop("height"), columns.pop("width"))
        return StoredAnnotations(list(self._files), list(self._splits), list(self._defects), decode, columns,
                                 shapes, load=load)


def shape_codes(heights: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (height, width) pairs and each row's index among them.

    A dataset has few image sizes, so a row's takes 1 or 2 bytes, not 4 to
    16.  The pairs are found in runs of rows: a sort of every row's pair at
    once would be a COCO-train read's peak.

    >>> shapes, codes = shape_codes(np.array([480, 640, 480]), np.array([640, 480, 640]))
    >>> shapes[codes].tolist()
    [[480, 640], [640, 480], [480, 640]]
    """
    index: dict[tuple[int, int], int] = {}
    codes = np.empty(len(heights), np.int32)
    for low in range(0, len(heights), 1 << 16):
        run = slice(low, low + (1 << 16))
        run_h, run_w = heights[run], widths[run]
        # one int64 a pair, in (height, width) order: a plain sort, 14x faster than np.unique(axis=0)'s
        keys = run_h.astype(np.int64) * (1 << 32) + run_w.astype(np.int64)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        pairs = zip(run_h[first].tolist(), run_w[first].tolist())
        local = np.array([index.setdefault(pair, len(index)) for pair in pairs], np.int32)
        codes[run] = local[inverse.reshape(-1)]
    return np.array(list(index), np.int64).reshape(-1, 2), narrow(codes)


def _typed(values: np.ndarray, dtype: type) -> np.ndarray:
    """``values`` as ``dtype``'s kind; integers already narrower are kept, not widened and narrowed again."""
    values = np.asarray(values)
    return values if values.dtype.kind == np.dtype(dtype).kind else values.astype(dtype)


def narrow(values: np.ndarray) -> np.ndarray:
    """Integers in the smallest signed type that holds them: most ids fit 32 bits, sizes and codes 16 or 8."""
    if values.dtype.kind != "i" or not len(values):
        return values
    low, high = int(values.min()), int(values.max())
    dtype = next(t for t in (np.int8, np.int16, np.int32, np.int64) if np.iinfo(t).min <= low and high <= np.iinfo(t).max)
    return values.astype(dtype, copy=False)


def repeated(values: np.ndarray) -> np.ndarray:
    """Whether each value was taken by an earlier row: one sorted copy of the values, not an argsort's
    8 bytes a row and its gathers (16 MB at 860k ids, the COCO read's peak)."""
    ordered = np.sort(values)
    taken = ordered[1:][ordered[1:] == ordered[:-1]]
    del ordered
    rows = np.flatnonzero(np.isin(values, taken)) if len(taken) else taken  # every use of one: few
    later = np.zeros(len(values), bool)
    order = rows[np.argsort(values[rows], kind="stable")]
    later[order[1:][values[order[1:]] == values[order[:-1]]]] = True
    return later


def _values(columns: dict[str, np.ndarray] | np.ndarray, splits: tuple[str, ...], defects: tuple[str, ...],
            name: str) -> np.ndarray:
    if name == "usable":
        return (columns["defect"] < 0) & columns["mask_ok"]
    if name == "split":
        return np.array(splits, object)[columns["split"]] if splits else np.zeros(0, object)
    if name == "defect":
        return np.array([*defects, None], object)[columns["defect"]]  # -1 picks the None
    return columns[name]


class _GroupedRows(Mapping[tuple[str, int], AnnotationGroup]):
    """``(split, image_id) → AnnotationGroup``, made on each lookup (nothing decoded is kept here)."""

    def __init__(self, store: StoredAnnotations):
        self._store = store
        self._per_split, self._order = store._image_index()
        self._split_index = {name: index for index, name in enumerate(store.splits)}

    def _span(self, key: tuple[str, int]) -> tuple[int, int] | None:
        split = self._split_index.get(key[0])
        if split not in self._per_split or not isinstance(key[1], (int, np.integer)):
            return None
        ids, bounds = self._per_split[split]
        at = int(np.searchsorted(ids, key[1]))
        if at == len(ids) or ids[at] != key[1]:
            return None
        return int(bounds[at]), int(bounds[at + 1])

    def __getitem__(self, key: tuple[str, int]) -> AnnotationGroup:
        span = self._span(key)
        if span is None:
            raise KeyError(key)
        return AnnotationGroup(self._store.rows(self._order[span[0]:span[1]]))

    def rows_of(self, splits: np.ndarray, ids: np.ndarray) -> tuple[_Rows, np.ndarray]:
        """The rows of the annotations of images ``(splits[i], ids[i])``, one image's after another, and how
        many each has (0: none, or no such image): one search per split and one gather per column for all
        the images, not one of each per image (~25 µs an image, most of what iterating over them cost)."""
        spans = np.zeros((len(ids), 2), np.int64)  # (low, high) in ``order``; (0, 0): not found
        ids = np.asarray(ids)
        if ids.dtype.kind in "iu":  # as get: an id of another type is no image's
            nothing = (np.zeros(0, np.int64), None)
            for name in dict.fromkeys(splits.tolist()):
                stored_ids, bounds = self._per_split.get(self._split_index.get(name), nothing)
                if not len(stored_ids):  # no such split
                    continue
                at_keys = np.flatnonzero(splits == name)
                hit, at = find_sorted(stored_ids, ids[at_keys])
                spans[at_keys[hit]] = np.stack([bounds[at[hit]], bounds[at[hit] + 1]], axis=1)
        lengths = spans[:, 1] - spans[:, 0]
        ends = np.cumsum(lengths)
        table = self._store._table(self._order[np.repeat(spans[:, 0] - ends + lengths, lengths)
                                               + np.arange(ends[-1] if len(ends) else 0)])
        return self._store._detached(table), lengths

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and self._span(key) is not None

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for split, (ids, _) in self._per_split.items():
            name = self._store.splits[split]
            for image_id in ids.tolist():
                yield name, image_id

    def __len__(self) -> int:
        return sum(len(ids) for ids, _ in self._per_split.values())

