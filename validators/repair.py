"""Safe repairs of what the checks found: a new dataset and the list of every change.

Only these repairs exist, each tied to the finding code it answers:

==========================  ==================================================================
``bbox-mismatch``           stored ``bbox`` := the mask's pixel box
``area-mismatch``           stored ``area`` := the mask's pixel count
``polygon-self-intersection``  each crossing ring := ``make_valid(ring, method="structure")``
                            (exterior rings bound area, holes exclude it), rasterized by the
                            pixel-centre rule and traced back to lossless polygons
``coordinate-out-of-bounds``  polygons := the traced outline of the pixels pycocotools keeps
                            (it clips silently; the clip moves no pixel)
``mask-empty``              the annotation is dropped
``instance-duplicate``      the later of two identical same-class masks is dropped
                            (near-duplicates, IoU < 1, are left for a person to judge)
==========================  ==================================================================

A repaired mask also gets its stored ``area`` and ``bbox`` recomputed, so
that the repair does not leave a stale one behind.  Nothing else changes:
records without a repairable finding are carried over as they are (shared,
not copied), and the input dataset is never modified.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import asdict, dataclass, replace

import numpy as np
import shapely
from pycocotools import mask as _coco_mask

from segdata.masks import Mask, bitmap_to_polygons
from segdata.model import Annotation, Dataset, Finding
from segdata.validators.geometry import ring_crossings

#: The finding codes :func:`repair` acts on.
REPAIRABLE = ("bbox-mismatch", "area-mismatch", "polygon-self-intersection", "coordinate-out-of-bounds",
              "mask-empty", "instance-duplicate")


@dataclass(slots=True)
class RepairChange:
    """One change :func:`repair` made, with the number of pixels whose membership it changed."""

    kind: str
    code: str
    split: str
    image_id: int
    annotation_id: int
    detail: str
    pixels_moved: int = 0

    def to_dict(self) -> dict:
        """The JSON form (stable keys)."""
        return asdict(self)


def _rasterize(geometry, height: int, width: int) -> np.ndarray:
    """Pixels of a shapely (Multi)Polygon by pycocotools' pixel-centre rule: exteriors minus holes."""
    bitmap = np.zeros((height, width), bool)
    for part in getattr(geometry, "geoms", [geometry]):
        if not isinstance(part, shapely.Polygon) or part.is_empty:
            continue  # structure keeps only areas; collapsed lines cover no pixel
        inside = _ring_bitmap(part.exterior, height, width)
        for hole in part.interiors:
            inside &= ~_ring_bitmap(hole, height, width)
        bitmap |= inside
    return bitmap


def _ring_bitmap(ring, height: int, width: int) -> np.ndarray:
    flat = np.asarray(ring.coords[:-1], dtype=float).ravel().tolist()
    if len(flat) < 6:
        return np.zeros((height, width), bool)
    return _coco_mask.decode(_coco_mask.frPyObjects([flat], height, width)[0]).astype(bool)


def _rebuilt(mask: Mask) -> Mask:
    """The mask with crossing rings made valid and every vertex inside the image, as lossless polygons."""
    height, width = mask.shape_hw
    bitmap = np.zeros((height, width), bool)
    for ring in mask.source_polygons:
        if ring_crossings(ring):
            polygon = shapely.Polygon(np.asarray(ring, dtype=float).reshape(-1, 2))
            bitmap |= _rasterize(shapely.make_valid(polygon, method="structure"), height, width)
        else:
            bitmap |= _ring_bitmap(shapely.LinearRing(np.asarray(ring, dtype=float).reshape(-1, 2)),
                                   height, width)
    polygons = bitmap_to_polygons(bitmap)
    return Mask.from_polygons(polygons, height, width) if polygons else Mask.from_bitmap(bitmap)


def _pixels_moved(before: Mask, after: Mask) -> int:
    union = _coco_mask.area(_coco_mask.merge([before.rle, after.rle], intersect=False))
    inter = _coco_mask.area(_coco_mask.merge([before.rle, after.rle], intersect=True))
    return int(union - inter)


def _exact_duplicates(dataset: Dataset, findings: list[Finding]) -> set[tuple[str, int]]:
    """``(split, id)`` of each later copy of an identical same-class mask."""
    by_id = {(a.split, a.id): a for a in dataset.annotations if a.defect is None and a.mask is not None}
    drop = set()
    for f in findings:
        if f.code != "instance-duplicate":
            continue
        first, other = by_id.get((f.split, f.annotation_id)), by_id.get((f.split, f.details.get("other_annotation_id")))
        if (first is not None and other is not None and first.category_id == other.category_id
                and first.mask.rle["counts"] == other.mask.rle["counts"] and (f.split, first.id) not in drop):
            drop.add((f.split, other.id))
    return drop


def repair(dataset: Dataset, findings: list[Finding]) -> tuple[Dataset, list[RepairChange]]:
    """Apply the safe repairs for ``findings`` and return a new dataset and every change made.

    Parameters
    ----------
    dataset : Dataset
        Not modified.
    findings : list of Finding
        As :func:`segdata.validators.validate` returned them for ``dataset``;
        findings of codes not in :data:`REPAIRABLE` are ignored.

    Returns
    -------
    (Dataset, list of RepairChange)
        The repaired dataset (unchanged records shared with the input) and
        one change per repaired field or dropped annotation, in file order.
    """
    codes: dict[tuple[str, int], set[str]] = defaultdict(set)
    for f in findings:
        if f.code in REPAIRABLE and f.annotation_id is not None:
            codes[(f.split, f.annotation_id)].add(f.code)
    duplicates = _exact_duplicates(dataset, findings)
    changes: list[RepairChange] = []
    kept: list[Annotation] = []
    dropped: set[tuple[str, int]] = set()
    for ann in dataset.annotations:
        key = (ann.split, ann.id)
        wanted = codes.get(key, set())
        if ann.defect is not None or ann.mask is None or not (wanted or key in duplicates):
            kept.append(ann)
            continue
        change = _recorder(changes, ann)
        if key in duplicates:
            change("dropped-duplicate", "instance-duplicate", "identical to an earlier same-class mask",
                   ann.mask.area)
            dropped.add(key)
            continue
        mask = ann.mask
        if mask.face == "polygon" and wanted & {"polygon-self-intersection", "coordinate-out-of-bounds"}:
            mask = _rebuilt(ann.mask)
            moved = _pixels_moved(ann.mask, mask)
            for code in sorted(wanted & {"polygon-self-intersection", "coordinate-out-of-bounds"}):
                kind = "polygon-made-valid" if code == "polygon-self-intersection" else "polygon-clipped"
                change(kind, code, f"polygons rebuilt from {ann.mask.area} px to {mask.area} px", moved)
        if mask.area == 0 and ("mask-empty" in wanted or mask is not ann.mask):
            change("dropped-empty", "mask-empty", "mask covers no pixel", 0)
            dropped.add(key)
            continue
        attributes = dict(ann.attributes)
        recompute = {"bbox"} if "bbox-mismatch" in wanted else set()
        recompute |= {"area"} if "area-mismatch" in wanted else set()
        recompute |= {"area", "bbox"} if mask is not ann.mask else set()
        for field in sorted(recompute):
            new = mask.area if field == "area" else list(mask.bbox_xywh)
            old = attributes.get(field)
            if field in attributes and old != new:
                attributes[field] = new
                change(f"{field}-recomputed", f"{field}-mismatch" if f"{field}-mismatch" in wanted
                       else "polygon-self-intersection", f"stored {field} {old} -> {new}", 0)
        kept.append(replace(ann, mask=mask, attributes=attributes))
    repaired = Dataset(
        dict(dataset.categories), list(dataset.images), kept,
        findings=[f for f in dataset.findings if (f.split, f.annotation_id) not in dropped],
        meta=copy.deepcopy(dataset.meta), source_format=dataset.source_format,
    )
    return repaired, changes


def _recorder(changes: list[RepairChange], ann: Annotation):
    def change(kind: str, code: str, detail: str, moved: int) -> None:
        changes.append(RepairChange(kind, code, ann.split, ann.image_id, ann.id, detail, int(moved)))
    return change
