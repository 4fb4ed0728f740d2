"""COCO mask AP/AR, identical to pycocotools ``COCOeval(iouType="segm")``.

The IoU of every (image, category) pair comes from pycocotools' C code
(``maskUtils.iou``, crowd GT scored as intersection over detection area), as
in COCOeval.  What COCOeval does in Python loops is done here with NumPy:
the greedy matching runs once per detection for all 4 area ranges and all 10
IoU thresholds at the same time, and the accumulation works on one array per
category.  Every quirk of the reference is kept, because numbers that differ
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

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segdata.errors import EvaluationError, UsageError
from segdata.model import Dataset

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = (("all", 0.0, 1e10), ("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2),
               ("large", 96.0**2, 1e10))
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_THRESHOLD_ROWS = np.tile(np.minimum(IOU_THRESHOLDS, 1 - 1e-10), len(AREA_RANGES))  # row = area * T + t
_T, _A = len(IOU_THRESHOLDS), len(AREA_RANGES)


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


def _gt_tables(gt: Dataset, quirks: dict[str, list[Any]]):
    ids = [image.id for image in gt.images]
    if len(set(ids)) != len(ids):
        raise UsageError("image ids repeat across splits or records; evaluate one split's file at a time",
                         record=f"image {sorted({i for i in ids if ids.count(i) > 1})[0]}")
    sizes = {image.id: (image.height, image.width) for image in gt.images}
    gts: dict[tuple[int, int], list] = defaultdict(list)
    for ann in gt.annotations:
        if ann.image_id not in sizes or ann.category_id not in gt.categories:
            continue  # COCOeval never sees them either
        if ann.mask is None:
            raise EvaluationError(f"annotation has no usable mask ({ann.defect}); run `segdata validate`",
                                  record=f"annotation {ann.id} (image {ann.image_id})")
        stored = ann.attributes.get("area")
        area = float(ann.mask.area) if stored is None else float(stored)
        if stored is None:
            quirks["gt_area_missing"].append(ann.id)
        elif stored != ann.mask.area:
            quirks["gt_area_differs"].append(ann.id)
        if ann.id == 0:
            quirks["gt_annotation_id_zero"].append(ann.id)
        user_ignore = ann.attributes.get("ignore")
        if user_ignore is not None and bool(user_ignore) != ann.iscrowd:
            quirks["gt_ignore_overwritten"].append(ann.id)
        gts[(ann.image_id, ann.category_id)].append((ann.id, ann.mask.rle, area, int(ann.iscrowd)))
    return sizes, gts


def _dt_tables(results: list, sizes: dict, categories: dict, path: str | None, quirks):
    if not isinstance(results, list):
        raise EvaluationError(f"expected a JSON list of results, found {type(results).__name__}", path=path)
    use_bbox = bool(results) and isinstance(results[0], dict) and results[0].get("bbox") not in (None, [])
    rles, keys, scores = [], [], []
    for index, raw in enumerate(results):
        where = f"result {index}"
        if not isinstance(raw, dict) or not {"image_id", "category_id", "segmentation", "score"} <= raw.keys():
            raise EvaluationError("expected an object with image_id, category_id, segmentation, score",
                                  path=path, record=where)
        image_id = raw["image_id"]
        where = f"result {index} (image {image_id})"
        if image_id not in sizes:
            raise EvaluationError("image is not in the ground truth", path=path, record=where)
        segm = raw["segmentation"]
        if not isinstance(segm, dict) or "size" not in segm or "counts" not in segm:
            raise EvaluationError("segmentation must be an RLE dict with 'size' and 'counts'", path=path,
                                  record=where)
        height, width = sizes[image_id]
        if list(segm["size"]) != [height, width]:
            raise EvaluationError(f"RLE size {list(segm['size'])} differs from image size {[height, width]} "
                                  "(height, width)", path=path, record=where)
        if isinstance(segm["counts"], list):
            segm = mask_utils.frPyObjects(segm, height, width)
        elif isinstance(segm["counts"], str):
            segm = {"size": segm["size"], "counts": segm["counts"].encode()}
        if raw["category_id"] not in categories:
            quirks["result_category_unknown"].append(index)
        if "bbox" in raw:
            quirks["result_has_bbox"].append(index)
        rles.append(segm)
        keys.append((image_id, raw["category_id"]))
        scores.append(float(raw["score"]))
    if use_bbox:
        try:
            areas = [float(raw["bbox"][2] * raw["bbox"][3]) for raw in results]
        except (KeyError, IndexError, TypeError) as err:
            raise EvaluationError("the first result has a 'bbox', so COCOeval reads every result's area from "
                                  "its bbox, but this one has none", path=path) from err
    else:
        # pycocotools' area() overflows a uint8 shape array under NumPy 2 beyond 255 masks: go in chunks
        areas = [float(a) for i in range(0, len(rles), 255) for a in mask_utils.area(rles[i:i + 255])]
    dts: dict[tuple[int, int], list] = defaultdict(list)
    for index, key in enumerate(keys):
        dts[key].append((index + 1, rles[index], areas[index], scores[index]))
    return dts


def _evaluate_pair(gts: list, dts: list):
    """Match one (image, category) for all area ranges and thresholds; COCOeval.evaluateImg, vectorised."""
    order = np.argsort([-d[3] for d in dts], kind="mergesort")[: MAX_DETS[-1]]
    dts = [dts[i] for i in order]
    n_d, n_g = len(dts), len(gts)
    g_area = np.array([g[2] for g in gts], dtype=float)
    crowd = np.array([g[3] for g in gts], dtype=bool)
    g_ids = np.array([g[0] for g in gts], dtype=float)
    lo = np.array([a[1] for a in AREA_RANGES])[:, None]
    hi = np.array([a[2] for a in AREA_RANGES])[:, None]
    gt_ig = crowd[None, :] | (g_area[None, :] < lo) | (g_area[None, :] > hi)  # (A, G)
    rows = _A * _T
    dtm = np.zeros((rows, n_d))
    dt_ig = np.zeros((rows, n_d), dtype=bool)
    if n_d and n_g:
        ious = np.asarray(mask_utils.iou([d[1] for d in dts], [g[1] for g in gts], crowd.astype(np.uint8).tolist()))
        ig_rows = np.repeat(gt_ig, _T, axis=0)  # (rows, G)
        gtm = np.zeros((rows, n_g), dtype=bool)
        row_index = np.arange(rows)
        for d in range(n_d):
            iou = ious[d]
            ok = (~gtm | crowd) & (iou >= _THRESHOLD_ROWS[:, None])
            real, ignored = ok & ~ig_rows, ok & ig_rows
            has_real, has_ignored = real.any(axis=1), ignored.any(axis=1)
            # the scan keeps the last GT of the highest IoU (>=), real GT before ignored GT
            pick_real = n_g - 1 - np.argmax(np.where(real, iou, -1.0)[:, ::-1], axis=1)
            pick_ignored = n_g - 1 - np.argmax(np.where(ignored, iou, -1.0)[:, ::-1], axis=1)
            pick = np.where(has_real, pick_real, pick_ignored)
            hit = row_index[has_real | has_ignored]
            if hit.size:
                m = pick[hit]
                dt_ig[hit, d] = ig_rows[hit, m]
                dtm[hit, d] = g_ids[m]
                gtm[hit, m] = True
    d_area = np.array([d[2] for d in dts], dtype=float)
    d_out = np.repeat((d_area[None, :] < lo) | (d_area[None, :] > hi), _T, axis=0)
    dt_ig |= (dtm == 0) & d_out
    return (np.array([d[3] for d in dts], dtype=float), dtm.reshape(_A, _T, n_d),
            dt_ig.reshape(_A, _T, n_d), (~gt_ig).sum(axis=1))


def _accumulate(cells: list, precision, recall, k: int) -> None:
    """COCOeval.accumulate for category ``k``; ``cells`` are the evaluated images in ascending id order."""
    npig = sum((c[3] for c in cells), np.zeros(_A, dtype=int))
    scores = np.concatenate([c[0] for c in cells])
    rank = np.concatenate([np.arange(len(c[0])) for c in cells])
    dtm = np.concatenate([c[1] for c in cells], axis=2)
    dt_ig = np.concatenate([c[2] for c in cells], axis=2)
    for m, max_det in enumerate(MAX_DETS):
        keep = rank < max_det
        order = np.argsort(-scores[keep], kind="mergesort")
        matched = dtm[:, :, keep][:, :, order]
        ignored = dt_ig[:, :, keep][:, :, order]
        tp_sum = np.cumsum(np.logical_and(matched, ~ignored), axis=2).astype(dtype=float)
        fp_sum = np.cumsum(np.logical_and(np.logical_not(matched), ~ignored), axis=2).astype(dtype=float)
        n_d = tp_sum.shape[2]
        for a in range(_A):
            if npig[a] == 0:
                continue
            tp, fp = tp_sum[a], fp_sum[a]
            rc = tp / npig[a]
            pr = tp / (fp + tp + np.spacing(1))
            recall[:, k, a, m] = rc[:, -1] if n_d else 0
            if not n_d:
                precision[:, :, k, a, m] = 0
                continue
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            for t in range(_T):
                inds = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                q = np.zeros(len(RECALL_THRESHOLDS))
                valid = inds < n_d
                q[valid] = pr[t, inds[valid]]
                precision[t, :, k, a, m] = q


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
                       results_path: str | Path | None = None) -> InstanceResult:
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

    Returns
    -------
    InstanceResult

    Raises
    ------
    EvaluationError
        A result names an unknown image, its RLE size differs from the
        image's, or a GT annotation has no mask.
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
    path = None if results_path is None else str(results_path)
    quirks: dict[str, list[Any]] = defaultdict(list)
    sizes, gts = _gt_tables(gt, quirks)
    dts = _dt_tables(results, sizes, gt.categories, path, quirks)
    cat_ids = sorted(gt.categories)
    img_ids = sorted(sizes)
    n_r = len(RECALL_THRESHOLDS)
    precision = -np.ones((_T, n_r, len(cat_ids), _A, len(MAX_DETS)))
    recall = -np.ones((_T, len(cat_ids), _A, len(MAX_DETS)))
    per_class, totals = [], {"gt_instances": 0, "predictions": 0, "tp": 0, "fp": 0, "fn": 0}
    for k, cat_id in enumerate(cat_ids):
        cells = []
        for img_id in img_ids:
            g, d = gts.get((img_id, cat_id), []), dts.get((img_id, cat_id), [])
            if g or d:
                cells.append(_evaluate_pair(g, d))
        if cells:
            _accumulate(cells, precision, recall, k)
        row = _class_counts(cells, score_threshold)
        s = precision[:, :, k, 0, -1]
        row = {"category_id": cat_id, "name": gt.categories[cat_id].name,
               "ap": float(np.mean(s[s > -1])) if (s > -1).any() else None, **row,
               "predictions": sum(len(v) for (_, c), v in dts.items() if c == cat_id)}
        per_class.append(row)
        for key in totals:
            totals[key] += row[key]
    totals["precision"] = _ratio(totals["tp"], totals["tp"] + totals["fp"])
    totals["recall"] = _ratio(totals["tp"], totals["gt_instances"])
    return InstanceResult(_summarize(precision, recall), per_class, totals,
                          {key: quirks[key] for key in sorted(quirks)}, score_threshold, precision, recall)


def _class_counts(cells: list, score_threshold: float) -> dict[str, Any]:
    gt_count = tp = fp = 0
    for scores, dtm, dt_ig, npig in cells:
        above = scores >= score_threshold
        gt_count += int(npig[0])
        tp += int(np.count_nonzero((dtm[0, 0] != 0) & ~dt_ig[0, 0] & above))
        fp += int(np.count_nonzero((dtm[0, 0] == 0) & ~dt_ig[0, 0] & above))
    return {"gt_instances": gt_count, "tp": tp, "fp": fp, "fn": gt_count - tp,
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, gt_count)}
