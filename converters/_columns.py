"""The per-annotation columns a reader of one-file-per-image formats gathers while it reads.

LabelMe and YOLO readers pass over every file once (for categories, sizes
and findings) and keep, per annotation, only what
:class:`segdata.stored.StoredAnnotations` needs to find and judge the record
again in its file; the records themselves stay on disk.
"""

from __future__ import annotations

from array import array

import numpy as np

from segdata.masks import FACES
from segdata.stored import COLUMNS, Decoder, Loader, StoredAnnotations

# Typecodes wide enough for every value a column can take; StoredAnnotations narrows them afterwards.
_TYPECODES = {"file": "q", "split": "q", "start": "q", "id": "q", "image_id": "q", "category_id": "q",
              "iscrowd": "b", "height": "q", "width": "q", "defect": "h", "mask_ok": "b", "face": "b"}


class Columns:
    """Annotation columns built one row at a time, in compact arrays (a few bytes per value, not objects)."""

    def __init__(self):
        self._values = {name: array(code) for name, code in _TYPECODES.items()}
        self._files: dict[str, int] = {}
        self._splits: dict[str, int] = {}
        self._defects: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._values["id"])

    def add(self, file: str, split: str, start: int, ann_id: int, image_id: int, category_id: int,
            iscrowd: bool, height: int, width: int, defect: str | None, face: str) -> None:
        """One annotation: record ``start`` of ``file``; its mask decodes unless it has a ``defect``."""
        values = self._values
        values["file"].append(self._files.setdefault(file, len(self._files)))
        values["split"].append(self._splits.setdefault(split, len(self._splits)))
        values["start"].append(start)
        values["id"].append(ann_id)
        values["image_id"].append(image_id)
        values["category_id"].append(category_id)
        values["iscrowd"].append(iscrowd)
        values["height"].append(height)
        values["width"].append(width)
        code = -1 if defect is None else self._defects.setdefault(defect, len(self._defects))
        values["defect"].append(code)
        values["mask_ok"].append(defect is None)
        values["face"].append(-1 if defect is not None else FACES.index(face))

    def store(self, decode: Decoder, load: Loader) -> StoredAnnotations:
        """The rows as a store: ``load(file)`` gives the records again, ``decode`` makes them annotations."""
        columns = {name: np.frombuffer(values, values.typecode) if values else np.zeros(0, COLUMNS[name])
                   for name, values in self._values.items()}
        columns["stop"] = np.zeros(len(self), np.int8)  # unused: a record is found by its index in its file
        return StoredAnnotations(list(self._files), list(self._splits), list(self._defects), decode, columns,
                                 load=load)
