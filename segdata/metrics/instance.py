"""COCO mask AP/AR, identical to pycocotools ``COCOeval(iouType="segm")``.

The IoUs come from pycocotools' C code (``maskUtils.iou``, crowd GT scored
as intersection over detection area), as in COCOeval.  What COCOeval does in
Python loops per (image, category, area range, threshold, detection, GT) is
done in :mod:`segdata.metrics._cocoeval` with NumPy over the whole dataset at
once.  Every quirk of the reference is kept, because numbers that differ
from a paper's are worse than numbers with a known bias:

- detections are ordered by ``-score`` with a stable sort, ties keep input
  order; ``maxDets`` applies per image *and* category;
- a detection matches at ``IoU >= threshold`` (capped at ``1 - 1e-10``);
  among equal IoUs the later GT wins; real GT is preferred to ignored GT;
- GT ``ignore`` is ``iscrowd`` (a user ``ignore`` field is overwritten); GT
  area is the stored ``area`` field; area ranges include both ends;
- a match to GT id 0 reads as no match; when the first result carries a
  ``bbox``, every detection's area is its box area;
- ``AP`` (``stats[0]``) is read at maxDets 100, categories without GT are
  left out of the means, and a mean over nothing is -1.

Inputs that trigger a quirk are listed in ``InstanceResult.quirks``.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segdata.errors import EvaluationError, UsageError
from segdata.metrics._cocoeval import (
    AREA_RANGES,
    IOU_THRESHOLDS,
    MAX_DETS,
    RECALL_THRESHOLDS,
    Table,
    accumulate,
    candidate_pairs,
    match,
    out_of_range,
    rank_detections,
    true_false_positives,
)
from segdata.model import Dataset
from segdata.parallel import map_images

__all__ = ["AREA_RANGES", "IOU_THRESHOLDS", "MAX_DETS", "RECALL_THRESHOLDS", "STAT_NAMES", "InstanceResult",
           "evaluate_instances"]

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_AREA_CHUNK = 255  # pycocotools' area() overflows a uint8 shape array under NumPy 2 beyond 255 masks


@dataclass
class InstanceResult:
    """COCO mask AP/AR with per-class AP, counts at a score threshold, and quirk triggers.

    ``stats`` maps the 12 names of ``STAT_NAMES`` to COCOeval's ``stats``;
    ``precision`` (T, R, K, A, M) and ``recall`` (T, K, A, M) are COCOeval's
    ``eval`` arrays; ``per_class`` has one row per GT category (``ap`` is
    None without GT); ``totals`` sums the counts over classes.
    """

    stats: dict[str, float]
    per_class: list[dict[str, Any]]
    totals: dict[str, Any]
    quirks: dict[str, list[Any]]
    score_threshold: float
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (no arrays)."""
        return {"task": "instance", "stats": self.stats, "per_class": self.per_class, "totals": self.totals,
                "quirks": self.quirks, "score_threshold": self.score_threshold}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _areas(rles: list) -> np.ndarray:
    if not rles:
        return np.zeros(0)
    return np.concatenate([mask_utils.area(rles[i:i + _AREA_CHUNK]) for i in range(0, len(rles), _AREA_CHUNK)]
                          ).astype(float)


def _gt_rows(job: tuple, category_index: dict) -> list[tuple]:
    """One image's GT annotations of known categories, in JSON order, as (id, category index, crowd, RLE,
    stored area, user ignore).  Decoding the masks is most of the cost of the GT, so it runs image by
    image, in helpers when there are some."""
    image, annotations = job
    rows = []
    for ann in annotations:
        if ann.category_id not in category_index:
            continue  # COCOeval never sees them either
        if ann.mask is None:
            raise EvaluationError(f"annotation has no usable mask ({ann.defect}); run `segdata validate`",
                                  record=f"annotation {ann.id} (image {image.id})")
        rows.append((ann.id, category_index[ann.category_id], bool(ann.iscrowd), ann.mask.rle,
                     ann.attributes.get("area"), ann.attributes.get("ignore")))
    return rows


def _gt_table(gt: Dataset, image_index: dict, category_index: dict, quirks: dict,
              workers: int | None) -> Table:
    image, category, ids, crowd, rles, stored = [], [], [], [], [], []
    job = partial(_gt_rows, category_index=category_index)
    for record, rows in zip(gt.images, map_images(job, gt.image_items(), workers=workers)):
        for ann_id, k, iscrowd, rle, area, user_ignore in rows:
            if ann_id == 0:
                quirks["gt_annotation_id_zero"].append(ann_id)
            if user_ignore is not None and bool(user_ignore) != iscrowd:
                quirks["gt_ignore_overwritten"].append(ann_id)
            image.append(image_index[record.id])
            category.append(k)
            ids.append(ann_id)
            crowd.append(iscrowd)
            rles.append(rle)
            stored.append(area)
    mask_area = _areas(rles)
    area = np.array([m if s is None else float(s) for s, m in zip(stored, mask_area.tolist())], dtype=float)
    for ann_id, s, m in zip(ids, stored, mask_area.tolist()):
        if s is None:
            quirks["gt_area_missing"].append(ann_id)
        elif s != m:
            quirks["gt_area_differs"].append(ann_id)
    return Table(np.array(image, np.int64), np.array(category, np.int64), area, np.array(ids, np.int64),
                 np.array(crowd, bool), rles)


def _dt_table(results: list, sizes: dict, image_index: dict, category_index: dict, path: str | None,
              quirks: dict) -> tuple[Table, np.ndarray]:
    """The results of known categories as a table, and the count of results per category."""
    if not isinstance(results, list):
        raise EvaluationError(f"expected a JSON list of results, found {type(results).__name__}", path=path)
    use_bbox = bool(results) and isinstance(results[0], dict) and results[0].get("bbox") not in (None, [])
    image, category, score, rles, boxes = [], [], [], [], []
    for index, raw in enumerate(results):
        try:
            image_id, category_id, segm = raw["image_id"], raw["category_id"], raw["segmentation"]
            value = float(raw["score"])
        except (TypeError, KeyError, ValueError):
            raise EvaluationError("expected an object with image_id, category_id, segmentation and a numeric "
                                  "score", path=path, record=f"result {index}") from None
        size = sizes.get(image_id)
        if size is None:
            raise EvaluationError("image is not in the ground truth", path=path,
                                  record=f"result {index} (image {image_id})")
        if not isinstance(segm, dict) or "size" not in segm or "counts" not in segm:
            raise EvaluationError("segmentation must be an RLE dict with 'size' and 'counts'", path=path,
                                  record=f"result {index} (image {image_id})")
        if list(segm["size"]) != size:
            raise EvaluationError(f"RLE size {list(segm['size'])} differs from image size {size} "
                                  "(height, width)", path=path, record=f"result {index} (image {image_id})")
        counts = segm["counts"]
        if isinstance(counts, str):
            segm = {"size": size, "counts": counts.encode()}
        elif isinstance(counts, list):
            segm = mask_utils.frPyObjects(segm, *size)
        elif not isinstance(counts, bytes):
            raise EvaluationError(f"RLE counts must be a string or a list, found {type(counts).__name__}",
                                  path=path, record=f"result {index} (image {image_id})")
        if "bbox" in raw:
            quirks["result_has_bbox"].append(index)
        k = category_index.get(category_id)
        if k is None:
            quirks["result_category_unknown"].append(index)
            continue  # COCOeval only evaluates the GT's categories
        if use_bbox:
            try:
                boxes.append(float(raw["bbox"][2] * raw["bbox"][3]))
            except (KeyError, IndexError, TypeError) as err:
                raise EvaluationError("the first result has a 'bbox', so COCOeval reads every result's area "
                                      "from its bbox, but this one has none", path=path,
                                      record=f"result {index} (image {image_id})") from err
        image.append(image_index[image_id])
        category.append(k)
        score.append(value)
        rles.append(segm)
    area = np.array(boxes, dtype=float) if use_bbox else _areas(rles)
    table = Table(np.array(image, np.int64), np.array(category, np.int64), area, np.array(score, float),
                  np.zeros(len(rles), bool), rles)
    return table, np.bincount(table.category, minlength=len(category_index))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic collector off for the block, then back as it was: building tables of 10^5 result
    dicts and RLEs (no cycles) set off full collections that scanned them all, 0.25 of 2.5 s."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _summarize(precision, recall) -> dict[str, float]:
    def mean(s: np.ndarray) -> float:
        return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))

    def ap(a: int, m: int, t: int | None = None) -> float:
        s = precision[:, :, :, a, m]
        return mean(s if t is None else s[[t]])

    def ar(a: int, m: int) -> float:
        return mean(recall[:, :, a, m])

    t50 = int(np.where(IOU_THRESHOLDS == 0.5)[0][0])
    t75 = int(np.where(IOU_THRESHOLDS == 0.75)[0][0])
    values = [ap(0, 2), ap(0, 2, t50), ap(0, 2, t75), ap(1, 2), ap(2, 2), ap(3, 2),
              ar(0, 0), ar(0, 1), ar(0, 2), ar(1, 2), ar(2, 2), ar(3, 2)]
    return dict(zip(STAT_NAMES, values))


def evaluate_instances(gt: Dataset, results: list[dict], *, score_threshold: float = 0.5,
                       results_path: str | Path | None = None, workers: int | None = 1) -> InstanceResult:
    """Compute COCO mask AP/AR of ``results`` against ``gt``, exactly as COCOeval ``segm`` does.

    Parameters
    ----------
    gt : Dataset
        Ground truth (one split), e.g. from ``segdata.converters.coco.read``.
    results : list of dict
        COCO results: ``image_id``, ``category_id``, ``segmentation`` (RLE
        dict, compressed or not) and ``score``.  An empty list is no
        detections: AP and AR are 0 for classes with GT (pycocotools raises).
    score_threshold : float
        Detections at or above it count in the TP/FP/FN table (IoU >= 0.5,
        all areas, top 100 per image and class).
    results_path : str or Path, optional
        Named in error messages.
    workers : int, optional
        Processes that decode the GT masks, image by image (``segdata.parallel``;
        None: all cores); the result is the same whatever the count.

    Returns
    -------
    InstanceResult

    Raises
    ------
    EvaluationError
        A result names an unknown image, its RLE size differs from the
        image's, it lacks a field, or a GT annotation has no mask.
    UsageError
        Image ids repeat in ``gt``.

    Examples
    --------
    >>> import numpy as np
    >>> from pycocotools import mask as mask_utils
    >>> from segdata.masks import Mask
    >>> from segdata.model import Annotation, Category, Dataset, ImageRecord
    >>> bitmap = np.zeros((8, 8), np.uint8); bitmap[2:6, 2:6] = 1
    >>> gt = Dataset({1: Category(1, "cell")}, [ImageRecord(1, "a.png", 8, 8)],
    ...              [Annotation(1, 1, 1, Mask.from_bitmap(bitmap), attributes={"area": 16})])
    >>> rle = mask_utils.encode(np.asfortranarray(bitmap))
    >>> result = evaluate_instances(gt, [{"image_id": 1, "category_id": 1, "segmentation": rle, "score": 0.9}])
    >>> round(result.stats["AP"], 12), result.stats["APm"]  # pycocotools' eps: 1 - 2 ulp
    (1.0, -1.0)
    """
    with _collector_paused():
        return _evaluate(gt, results, score_threshold, results_path, workers)


def _evaluate(gt: Dataset, results: list[dict], score_threshold: float, results_path: str | Path | None,
              workers: int | None) -> InstanceResult:
    path = None if results_path is None else str(results_path)
    ids = [image.id for image in gt.images]
    if len(set(ids)) != len(ids):
        raise UsageError("image ids repeat across splits or records; evaluate one split's file at a time",
                         record=f"image {min(i for i in ids if ids.count(i) > 1)}")
    quirks: dict[str, list[Any]] = defaultdict(list)
    sizes = {image.id: [image.height, image.width] for image in gt.images}
    image_index = {image_id: i for i, image_id in enumerate(sorted(sizes))}
    cat_ids = sorted(gt.categories)
    category_index = {cat_id: k for k, cat_id in enumerate(cat_ids)}
    gt_table = _gt_table(gt, image_index, category_index, quirks, workers)
    dt_all, predictions = _dt_table(results, sizes, image_index, category_index, path, quirks)

    kept, rank = rank_detections(dt_all)
    dt = Table(dt_all.image[kept], dt_all.category[kept], dt_all.area[kept], dt_all.value[kept],
               dt_all.crowd[kept], [dt_all.rles[i] for i in kept.tolist()])
    gt_ignore = gt_table.crowd[None, :] | out_of_range(gt_table.area)  # (A, G)
    pairs = candidate_pairs(gt_table, dt)
    matched = match(gt_table, rank, pairs, gt_ignore, len(kept))
    tp, fp = true_false_positives(gt_table, dt, matched, gt_ignore)
    npig = np.stack([np.bincount(gt_table.category[~ignored], minlength=len(cat_ids)) for ignored in gt_ignore],
                    axis=1)  # (K, A)
    precision, recall = accumulate(dt, rank, tp, fp, npig)

    above = dt.value >= score_threshold  # TP/FP at IoU 0.5, all areas (row 0), top 100 per cell
    class_tp = np.bincount(dt.category[tp[0] & above], minlength=len(cat_ids))
    class_fp = np.bincount(dt.category[fp[0] & above], minlength=len(cat_ids))
    per_class, totals = [], {"gt_instances": 0, "predictions": 0, "tp": 0, "fp": 0, "fn": 0}
    for k, cat_id in enumerate(cat_ids):
        s = precision[:, :, k, 0, -1]
        n_gt, n_tp, n_fp = int(npig[k, 0]), int(class_tp[k]), int(class_fp[k])
        row = {"category_id": cat_id, "name": gt.categories[cat_id].name,
               "ap": float(np.mean(s[s > -1])) if (s > -1).any() else None, "gt_instances": n_gt, "tp": n_tp,
               "fp": n_fp, "fn": n_gt - n_tp, "precision": _ratio(n_tp, n_tp + n_fp), "recall": _ratio(n_tp, n_gt),
               "predictions": int(predictions[k])}
        per_class.append(row)
        for key in totals:
            totals[key] += row[key]
    totals["precision"] = _ratio(totals["tp"], totals["tp"] + totals["fp"])
    totals["recall"] = _ratio(totals["tp"], totals["gt_instances"])
    return InstanceResult(_summarize(precision, recall), per_class, totals,
                          {key: quirks[key] for key in sorted(quirks)}, score_threshold, precision, recall)
