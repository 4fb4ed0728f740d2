"""Panoptic quality (PQ, SQ, RQ), identical to panopticapi's ``pq_compute``.

Segment ids come from RGB PNGs (``id = R + 256 G + 256² B``), ``0`` is VOID.
Rules kept from the reference:

- a GT and a predicted segment of the same category match when
  ``IoU > 0.5`` (strictly); crowd GT never matches; the union leaves out the
  predicted pixels on GT VOID (but not VOID predicted over GT);
- GT area is the JSON ``segments_info.area``, predicted area is counted in
  the PNG;
- an unmatched non-crowd GT is a false negative; an unmatched prediction is
  ignored when more than half of it lies on VOID plus the (last listed)
  crowd segment of its category, else it is a false positive;
- per class ``PQ = ΣIoU / (TP + FP/2 + FN/2)``, ``SQ = ΣIoU / TP`` (0 without
  TP), ``RQ = TP / (TP + FP/2 + FN/2)``; All/Things/Stuff are unweighted
  means over classes with ``TP + FP + FN > 0``.

Where the reference raises ``ZeroDivisionError`` (no class in a subset, e.g.
Stuff on a things-only dataset) the subset's values are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segdata.errors import EvaluationError, FormatError, ReadError
from segdata.io import read_json

OFFSET = 256 * 256 * 256
VOID = 0


@dataclass
class PanopticResult:
    """PQ/SQ/RQ for All, Things and Stuff (``None`` when a subset has no class) and per class."""

    summary: dict[str, dict[str, Any]]
    per_class: list[dict[str, Any]]

    @property
    def quirks(self) -> dict[str, Any]:
        """Subsets where panopticapi would divide by zero (what ``--strict`` reports)."""
        return {f"{name}_without_classes": True for name, row in self.summary.items() if row["n"] == 0}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"task": "panoptic", "summary": self.summary, "per_class": self.per_class}


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Segment ids of an (H, W, 3) uint8 image: ``R + 256 G + 256² B``.

    Examples
    --------
    >>> int(rgb_to_id(np.array([[[1, 2, 3]]], dtype=np.uint8))[0, 0])
    197121
    """
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _read_ids(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return rgb_to_id(np.asarray(image.convert("RGB")))
    except OSError as err:
        raise ReadError(f"cannot read panoptic PNG ({err})", path=path) from err


def _load(json_path: Path) -> dict:
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise FormatError("expected a COCO panoptic JSON object with an 'annotations' list", path=json_path)
    return data


def _pair_stats(gt_ann: dict, pred_ann: dict, gt_dir: Path, pred_dir: Path, categories: dict, stats: dict) -> None:
    image_id = gt_ann["image_id"]
    where = f"image {image_id}"
    gt_ids = _read_ids(gt_dir / gt_ann["file_name"])
    pred_path = pred_dir / pred_ann["file_name"]
    pred_ids = _read_ids(pred_path)
    if gt_ids.shape != pred_ids.shape:
        raise EvaluationError(f"panoptic PNG is {pred_ids.shape[0]}x{pred_ids.shape[1]} (height x width), the GT "
                              f"PNG is {gt_ids.shape[0]}x{gt_ids.shape[1]}", path=pred_path, record=where)
    gt_segms = {s["id"]: dict(s) for s in gt_ann["segments_info"]}
    pred_segms = {s["id"]: dict(s) for s in pred_ann["segments_info"]}
    labels, counts = np.unique(pred_ids, return_counts=True)
    unseen = set(pred_segms)
    for label, count in zip(labels.tolist(), counts.tolist()):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise EvaluationError(f"segment {label} is in the PNG but not in segments_info", path=pred_path,
                                  record=where)
        pred_segms[label]["area"] = count
        unseen.discard(label)
        if pred_segms[label]["category_id"] not in categories:
            raise EvaluationError(f"segment {label} has category {pred_segms[label]['category_id']}, which is not "
                                  "in the GT categories", path=pred_path, record=where)
    if unseen:
        raise EvaluationError(f"segments {sorted(unseen)} are in segments_info but not in the PNG", path=pred_path,
                              record=where)
    pairs, inter = np.unique(gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64), return_counts=True)
    overlap = {(int(p // OFFSET), int(p % OFFSET)): int(n) for p, n in zip(pairs.tolist(), inter.tolist())}
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in overlap.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        g, p = gt_segms[gt_label], pred_segms[pred_label]
        if g.get("iscrowd", 0) == 1 or g["category_id"] != p["category_id"]:
            continue
        area = g["area"] if "area" in g else int(np.count_nonzero(gt_ids == gt_label))
        union = p["area"] + area - intersection - overlap.get((VOID, pred_label), 0)
        iou = intersection / union
        if iou > 0.5:
            stats[g["category_id"]]["tp"] += 1
            stats[g["category_id"]]["iou"] += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    crowd_by_category = {}
    for gt_label, g in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if g.get("iscrowd", 0) == 1:
            crowd_by_category[g["category_id"]] = gt_label
            continue
        stats[g["category_id"]]["fn"] += 1
    for pred_label, p in pred_segms.items():
        if pred_label in pred_matched:
            continue
        excused = overlap.get((VOID, pred_label), 0)
        if p["category_id"] in crowd_by_category:
            excused += overlap.get((crowd_by_category[p["category_id"]], pred_label), 0)
        if excused / p["area"] > 0.5:
            continue
        stats[p["category_id"]]["fp"] += 1


def _average(categories: dict, stats: dict, isthing: bool | None):
    pq = sq = rq = 0.0
    n = 0
    for cat_id, cat in categories.items():
        if isthing is not None and (cat.get("isthing", 1) == 1) != isthing:
            continue
        s = stats[cat_id]
        if s["tp"] + s["fp"] + s["fn"] == 0:
            continue
        n += 1
        pq += s["iou"] / (s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"])
        sq += s["iou"] / s["tp"] if s["tp"] != 0 else 0
        rq += s["tp"] / (s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"])
    if n == 0:  # panopticapi divides by zero here
        return {"pq": None, "sq": None, "rq": None, "n": 0}
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}


def evaluate_panoptic(gt_json_path: str | Path, pred_json_path: str | Path, *, gt_dir: str | Path | None = None,
                      pred_dir: str | Path | None = None) -> PanopticResult:
    """Compute PQ/SQ/RQ of COCO panoptic predictions, as panopticapi does.

    Parameters
    ----------
    gt_json_path, pred_json_path : str or Path
        COCO panoptic JSON files (``annotations`` with ``segments_info``).
    gt_dir, pred_dir : str or Path, optional
        Their PNG folders; by default the JSON path without ``.json``
        (panopticapi's convention).

    Returns
    -------
    PanopticResult

    Raises
    ------
    EvaluationError
        A GT image has no prediction; a PNG and its ``segments_info``
        disagree; an unknown category; PNG sizes differ.
    FormatError, ReadError
        A file cannot be read as COCO panoptic.
    """
    gt_json_path, pred_json_path = Path(gt_json_path), Path(pred_json_path)
    gt_dir = Path(gt_dir) if gt_dir else gt_json_path.with_suffix("")
    pred_dir = Path(pred_dir) if pred_dir else pred_json_path.with_suffix("")
    gt, pred = _load(gt_json_path), _load(pred_json_path)
    categories = {c["id"]: c for c in gt.get("categories") or []}
    predictions = {a["image_id"]: a for a in pred["annotations"]}
    stats = {cat_id: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0} for cat_id in categories}
    for gt_ann in gt["annotations"]:
        pred_ann = predictions.get(gt_ann["image_id"])
        if pred_ann is None:
            raise EvaluationError("no prediction for this GT image", path=pred_json_path,
                                  record=f"image {gt_ann['image_id']}")
        for segment in gt_ann["segments_info"]:
            if segment["category_id"] not in categories:
                raise EvaluationError(f"segment {segment['id']} has unknown category {segment['category_id']}",
                                      path=gt_json_path, record=f"image {gt_ann['image_id']}")
        _pair_stats(gt_ann, pred_ann, gt_dir, pred_dir, categories, stats)
    summary = {name: _average(categories, stats, isthing)
               for name, isthing in (("all", None), ("things", True), ("stuff", False))}
    per_class = []
    for cat_id, cat in categories.items():
        s = stats[cat_id]
        denominator = s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"]
        per_class.append({"category_id": cat_id, "name": cat.get("name", str(cat_id)),
                          "isthing": cat.get("isthing", 1) == 1, "tp": s["tp"], "fp": s["fp"], "fn": s["fn"],
                          "pq": s["iou"] / denominator if denominator else None,
                          "sq": s["iou"] / s["tp"] if s["tp"] else (0.0 if denominator else None),
                          "rq": s["tp"] / denominator if denominator else None})
    return PanopticResult(summary, per_class)
