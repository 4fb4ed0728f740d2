"""The one in-memory model every format is read into and written from.

Ids are kept exactly as the source has them.  Image and annotation ids are
unique within a split (``(split, id)`` is the key), because many tools number
each split from 1.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segdata.masks import Mask
from segdata.packed import Mapped, PackedList

if TYPE_CHECKING:
    import pandas as pd

SEVERITIES = ("error", "warning", "info")


@dataclass(slots=True)
class Category:
    """A class: ``id`` as in the source, ``isthing`` False for panoptic stuff."""

    id: int
    name: str
    supercategory: str = ""
    isthing: bool = True
    color: tuple[int, int, int] | None = None


@dataclass(slots=True)
class ImageRecord:
    """One image: where it is, how big, which split and group it belongs to.

    ``void`` is the region the labels declare "ignore" (VOC's 255 band,
    panoptic VOID); ``defect`` names why the record is unusable (a duplicate
    id); ``attributes`` keeps source fields segdata does not
    interpret, so that they survive a round trip.
    """

    id: int
    file_name: str
    width: int
    height: int
    split: str = ""
    group: str | None = None
    void: Mask | None = None
    path: Path | None = None
    defect: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Annotation:
    """One instance.  ``mask`` is ``None`` when the record could not be decoded.

    ``defect`` names the finding code that makes the record unusable for
    conversion (it stays loaded, so validation can report it);
    ``attributes`` keeps source fields such as the stored ``area`` and ``bbox``.
    """

    id: int
    image_id: int
    category_id: int
    mask: Mask | None
    iscrowd: bool = False
    score: float | None = None
    split: str = ""
    defect: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Finding:
    """A problem found in a dataset, located by split, image and annotation."""

    code: str
    severity: str
    message: str
    split: str = ""
    image_id: int | None = None
    annotation_id: int | None = None
    path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (stable keys).  ``details`` is shared, not copied: 12k overlap findings are 6 MB of it."""
        return {"code": self.code, "severity": self.severity, "message": self.message, "split": self.split,
                "image_id": self.image_id, "annotation_id": self.annotation_id, "path": self.path,
                "details": self.details}


@dataclass(slots=True)
class Change:
    """What a conversion did to one annotation (``image_id`` None: to a category)."""

    kind: str
    split: str
    image_id: int | None
    annotation_id: int | None
    detail: str
    iou: float | None = None


@dataclass
class ConversionReport:
    """Per-annotation account of a conversion: nothing changes unreported."""

    format: str
    images_written: int = 0
    annotations_written: int = 0
    changes: PackedList[Change] = field(default_factory=PackedList)  # packed: one or more per image

    def add(self, kind: str, split: str, image_id: int, annotation_id: int | None, detail: str,
            iou: float | None = None) -> None:
        """Record one change."""
        self.changes.append(Change(kind, split, image_id, annotation_id, detail, iou))

    def skip_unattached(self, dataset: Dataset) -> None:
        """Report as skipped each annotation whose image the dataset lacks (read from columns, no masks decoded)."""
        # arrays, not a tuple per image and a Python int per annotation (90 MB at 860k annotations), and in
        # runs of rows: whole columns of split names and np.isin's temporaries were 20 MB more
        image_splits, image_ids = image_values(dataset.images, "split"), image_values(dataset.images, "id")
        known = {split: np.unique(image_ids[image_splits == split]) for split in set(image_splits.tolist())}
        anns = dataset.annotations
        for low in range(0, len(anns), _RUN):
            run = anns.rows(slice(low, low + _RUN)) if hasattr(anns, "rows") else anns[low:low + _RUN]
            splits, run_image_ids = annotation_values(run, "split"), annotation_values(run, "image_id")
            attached = np.zeros(len(splits), bool)
            for split, ids in known.items():
                rows = np.flatnonzero(splits == split)
                attached[rows] = find_sorted(ids, run_image_ids[rows])[0]
            unattached = np.flatnonzero(~attached)
            ann_ids, defects = (annotation_values(run, key)[unattached].tolist() for key in ("id", "defect"))
            for row, ann_id, defect in zip(unattached.tolist(), ann_ids, defects):
                self.add("skipped", splits[row], int(run_image_ids[row]), ann_id,
                         defect or "image-ref-unknown")

    def counts(self) -> dict[str, int]:
        """Number of changes of each kind, sorted by kind."""
        return dict(sorted(Counter(c.kind for c in self.changes).items()))

    def to_dict(self, *, lazy: bool = False) -> dict[str, Any]:
        """The JSON form: totals, counts by kind, IoU of the lossy kinds, and every change.

        ``lazy`` gives the changes as a :class:`~segdata.packed.Mapped` view,
        for :func:`segdata.io.iter_json` to stream, not as a list of dicts.
        """
        ious: dict[str, array] = defaultdict(lambda: array("d"))
        for change in self.changes:
            if change.iou is not None:
                ious[change.kind].append(change.iou)
        every = [iou for values in ious.values() for iou in values]
        return {
            "format": self.format,
            "images_written": self.images_written,
            "annotations_written": self.annotations_written,
            "changes_by_kind": self.counts(),
            "iou_by_kind": {kind: {"mean": sum(v) / len(v), "min": min(v)} for kind, v in sorted(ious.items())},
            "mean_iou": sum(every) / len(every) if every else None,
            "min_iou": min(every) if every else None,
            "changes": Mapped(asdict, self.changes) if lazy else [asdict(c) for c in self.changes],
        }


_FIELDS = {"split": object, "defect": object, "id": np.int64, "image_id": np.int64, "category_id": np.int64, "iscrowd": bool,
           "usable": bool}


#: Rows per run where a whole column's temporaries would grow with the dataset.
_RUN = 1 << 16


def find_sorted(ordered: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each of ``values`` is in ``ordered`` (sorted, not empty), and its index there (clipped)."""
    at = np.searchsorted(ordered, values)
    np.minimum(at, len(ordered) - 1, out=at)
    return ordered[at] == values, at


def annotation_values(annotations: Sequence[Annotation], name: str) -> np.ndarray:
    """One field of every annotation, in order, without decoding masks where they are stored.

    ``name`` is ``split``, ``id``, ``image_id``, ``category_id``, ``iscrowd``,
    ``defect`` (a finding code or None) or ``usable`` (no defect and a decoded mask): what jobs count and select
    by, read from columns for :mod:`segdata.stored` annotations and from the
    objects otherwise.
    """
    if hasattr(annotations, "values"):
        return annotations.values(name)
    if name == "usable":
        return np.array([a.defect is None and a.mask is not None for a in annotations], bool)
    return np.array([getattr(a, name) for a in annotations], _FIELDS[name])


def image_values(images: Sequence[ImageRecord], name: str) -> np.ndarray:
    """``id``, ``width``, ``height`` or ``split`` of every image, in order, read from columns where the
    images are stored (:mod:`segdata.stored_images`) and from the records otherwise."""
    if hasattr(images, "values"):
        return images.values(name)
    return np.array([getattr(image, name) for image in images], object if name == "split" else np.int64)


@dataclass
class Dataset:
    """Categories, images and annotations of every split, plus what reading found.

    ``findings`` holds the defects a reader flagged (records that parse but
    are wrong); ``meta`` keeps per-split source fields (COCO ``info``,
    ``licenses``) for round trips.
    """

    categories: dict[int, Category]
    images: Sequence[ImageRecord]
    annotations: Sequence[Annotation]
    findings: list[Finding] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_format: str = ""
    _by_image: Mapping[tuple[str, int], Sequence[Annotation]] | None = field(default=None, repr=False)

    @property
    def splits(self) -> list[str]:
        """Split names in order of first appearance."""
        return list(dict.fromkeys(image_values(self.images, "split").tolist()))

    def annotations_by_image(self) -> Mapping[tuple[str, int], Sequence[Annotation]]:
        """Annotations grouped by ``(split, image_id)``, in file order.

        Annotations left in their file (:class:`segdata.stored.StoredAnnotations`)
        are grouped without being parsed; each group is parsed where it is used.
        """
        if self._by_image is None:
            if hasattr(self.annotations, "by_image"):
                self._by_image = self.annotations.by_image()
            else:
                grouped: dict[tuple[str, int], list[Annotation]] = defaultdict(list)
                for ann in self.annotations:
                    grouped[(ann.split, ann.image_id)].append(ann)
                self._by_image = dict(grouped)
        return self._by_image

    def iter_images(self) -> Iterator[tuple[ImageRecord, Sequence[Annotation]]]:
        """Each image with its annotations, so that masks are decoded one image at a time."""
        return iter(self.image_items())

    def image_items(self, attach: Mapping[tuple[str, int], Any] | Sequence[Any] | None = None
                    ) -> Sequence[tuple]:
        """What :meth:`iter_images` yields, as a sequence for :func:`segdata.parallel.map_images`: its
        batches travel to workers as columns (:class:`segdata.image_items.ImageItems`)."""
        from segdata.image_items import ImageItems

        return ImageItems(self.images, self.annotations_by_image(), attach)

    def images_frame(self) -> pd.DataFrame:
        """One row per image: split, id, file_name, width, height, group."""
        import pandas as pd  # imported here: it costs 40 MB and most jobs never need a frame

        return pd.DataFrame(
            [(i.split, i.id, i.file_name, i.width, i.height, i.group) for i in self.images],
            columns=["split", "id", "file_name", "width", "height", "group"],
        )

    def annotations_frame(self) -> pd.DataFrame:
        """One row per annotation: split, id, image_id, category_id, iscrowd, face, defect."""
        import pandas as pd

        return pd.DataFrame(
            [
                (a.split, a.id, a.image_id, a.category_id, a.iscrowd,
                 a.mask.face if a.mask is not None else None, a.defect)
                for a in self.annotations
            ],
            columns=["split", "id", "image_id", "category_id", "iscrowd", "face", "defect"],
        )
