"""Overlap checks: instances of one image that share pixels, and instances annotated twice.

Per image, candidate pairs come from a vectorised bounding-box test (NumPy
broadcasting over the ``(n, 4)`` box array); only pairs whose pixel boxes
share area are intersected exactly, in RLE by pycocotools' C code
(``mask.iou`` of one instance against its candidates), so no mask is ever
decoded and the cost follows the number of touching pairs and the RLE
lengths, not ``n² × pixels``.  Pixel boxes are integer extents, so two
instances that only share a pixel-grid edge have boxes that only touch and
are never candidates; they do not overlap (no pixel has two owners).

Crowd regions are excluded: they mark "many objects here" and overlap
instances by design.

``overlap_mode`` says what the dataset promises:

* ``instance`` (COCO instances, amodal annotation): overlap is allowed,
  reported as a warning so that it can be measured.
* ``panoptic``: every pixel has at most one owner; any overlap is an error.
* ``semantic``: the instances are painted into one class map, so only
  overlaps of *different* classes lose labels (errors); same-class overlaps
  paint the same class and are not reported.

``instance-duplicate`` (same class, IoU ≥ ``DUPLICATE_IOU``) is reported
instead of ``instance-overlap`` for that pair: it is almost always the same
object annotated twice, which inflates counts and penalises correct
predictions as false positives.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import numpy as np
from pycocotools import mask as _coco_mask

from segdata.model import Annotation, Dataset, Finding, ImageRecord
from segdata.validators._registry import CODES, Context, ImageJob, register, where

DUPLICATE_IOU = 0.95


def candidate_pairs(boxes_xywh: np.ndarray) -> np.ndarray:
    """Index pairs ``(i, j)``, ``i < j``, whose boxes share positive area.

    Parameters
    ----------
    boxes_xywh : ndarray of shape (N, 4) and dtype float
        ``(x, y, width, height)`` per instance.

    Returns
    -------
    ndarray of shape (P, 2) and dtype int64

    Examples
    --------
    >>> candidate_pairs(np.array([[0, 0, 2, 2], [2, 0, 2, 2], [1, 1, 2, 2]], float)).tolist()
    [[0, 2], [1, 2]]
    """
    boxes = np.asarray(boxes_xywh, dtype=float).reshape(-1, 4)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    overlapping = ((np.minimum(x1[:, None], x1[None, :]) > np.maximum(x0[:, None], x0[None, :]))
                   & (np.minimum(y1[:, None], y1[None, :]) > np.maximum(y0[:, None], y0[None, :])))
    return np.argwhere(np.triu(overlapping, k=1))


def _image_overlaps(job: tuple[ImageRecord, list[Annotation]], wanted: frozenset[str],
                    mode: str) -> list[Finding]:
    """The overlap findings of one image (module level so a process pool can pickle it)."""
    image, anns = job
    anns = [a for a in anns if a.mask is not None and a.defect is None and not a.iscrowd]
    if len(anns) < 2:
        return []
    rles = [a.mask.to_rle() for a in anns]
    areas = _coco_mask.area(rles).astype(np.float64)
    boxes = _coco_mask.toBbox(rles)
    pairs = candidate_pairs(boxes)
    found: list[Finding] = []
    overlap_severity = "warning" if mode == "instance" else "error"
    for i in np.unique(pairs[:, 0]):
        js = pairs[pairs[:, 0] == i, 1]
        ious = _coco_mask.iou([rles[i]], [rles[j] for j in js], [0] * len(js))[0]
        for j, iou in zip(js, ious):
            if iou <= 0:
                continue
            a, b = anns[i], anns[j]
            # inter = iou · union and union = |A| + |B| − inter, so inter = iou (|A| + |B|) / (1 + iou)
            inter = int(round(iou * (areas[i] + areas[j]) / (1 + iou)))
            same = a.category_id == b.category_id
            details = {"other_annotation_id": b.id, "iou": float(iou), "intersection": inter,
                       "containment": float(inter / areas[i]), "other_containment": float(inter / areas[j]),
                       "category_id": a.category_id, "other_category_id": b.category_id}
            at = where(a.split, a.image_id, a.id)
            if same and iou >= DUPLICATE_IOU:
                if "instance-duplicate" in wanted:
                    exact = " (identical masks)" if inter == areas[i] == areas[j] else ""
                    found.append(Finding(
                        "instance-duplicate", CODES["instance-duplicate"],
                        f"{at}: annotation {b.id} of the same category {a.category_id} has mask IoU "
                        f"{iou:.3f}{exact}, expected < {DUPLICATE_IOU} (annotated twice?)",
                        a.split, a.image_id, a.id, details=details))
                continue
            if "instance-overlap" not in wanted or (mode == "semantic" and same):
                continue
            found.append(Finding(
                "instance-overlap", overlap_severity,
                f"{at}: shares {inter} px with annotation {b.id} (IoU {iou:.3f}; {inter / areas[i]:.1%} of "
                f"this mask, {inter / areas[j]:.1%} of the other); expected no shared pixels in "
                f"{mode} mode" if mode != "instance" else
                f"{at}: shares {inter} px with annotation {b.id} (IoU {iou:.3f}; {inter / areas[i]:.1%} of "
                f"this mask, {inter / areas[j]:.1%} of the other)",
                a.split, a.image_id, a.id, details=details))
    return found


def _image_part(context: Context) -> ImageJob | None:
    wanted = context.codes & {"instance-overlap", "instance-duplicate"}
    return partial(_image_overlaps, wanted=frozenset(wanted), mode=context.overlap_mode) if wanted else None


@register({"instance-overlap": "warning", "instance-duplicate": "error"}, image_part=_image_part)
def check_overlap(dataset: Dataset, context: Context) -> Iterable[Finding]:
    """Pairs of non-crowd instances of an image that share pixels (severity by ``overlap_mode``)."""
    return ()
