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

from segdata import png
from segdata.errors import EvaluationError, FormatError, ReadError
from segdata.io import read_json
from segdata.parallel import map_images

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


def _read_rgba(path: Path) -> np.ndarray:
    """An RGB panoptic PNG as (H, W) uint32 ``R + 256 G + 256² B + 255·256³`` (palette and RGBA read as RGB)."""
    import cv2  # here, not at the top: loading the CLI must not load OpenCV

    try:
        rgb = png.decode_rgb(path.read_bytes())
    except OSError as err:
        raise ReadError(f"cannot read panoptic PNG ({err.strerror or err})", path=path) from err
    except ValueError as err:
        raise ReadError(f"cannot decode panoptic PNG: {err}", path=path) from None
    # RGBA bytes read as a little-endian uint32: the id plus a constant alpha byte on top
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA).view("<u4")[..., 0]


def _runs(gt_rgba: np.ndarray, pred_rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(GT id, predicted id, pixel count) of each run of equal pairs in raster order.

    Segments are large, so there are a few thousand runs instead of ~10⁵
    pixels: everything after this works on runs.
    """
    gt_flat, pred_flat = gt_rgba.ravel(), pred_rgba.ravel()
    change = np.empty(gt_flat.size, dtype=bool)
    change[0] = True
    np.not_equal(gt_flat[1:], gt_flat[:-1], out=change[1:])
    change[1:] |= pred_flat[1:] != pred_flat[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, gt_flat.size))
    return (gt_flat[starts] & 0xFFFFFF).astype(np.int64), (pred_flat[starts] & 0xFFFFFF).astype(np.int64), lengths


def _load(json_path: Path) -> dict:
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise FormatError("expected a COCO panoptic JSON object with an 'annotations' list", path=json_path)
    return data


def _dense(ids: np.ndarray, labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Index of each pixel's id in sorted ``labels`` (VOID included), ``len(labels)`` for an id not there."""
    table = np.array(sorted(set(labels) | {VOID}), dtype=np.int64)
    index = np.searchsorted(table, ids)
    index[table[np.minimum(index, len(table) - 1)] != ids] = len(table)
    return table, index


def _image_stats(item: tuple) -> tuple[list, list, list]:
    """One image's TPs (category, IoU) in panopticapi's order, its FN and FP categories.

    The pair histogram is one ``bincount`` over dense segment indices;
    panopticapi's ``np.unique`` over 64-bit pair codes gives the same counts
    in the same (GT id, predicted id) order.
    """
    gt_ann, pred_ann, gt_dir, pred_dir, categories = item
    image_id = gt_ann["image_id"]
    where = f"image {image_id}"
    gt_rgba = _read_rgba(gt_dir / gt_ann["file_name"])
    pred_path = pred_dir / pred_ann["file_name"]
    pred_rgba = _read_rgba(pred_path)
    if gt_rgba.shape != pred_rgba.shape:
        raise EvaluationError(f"panoptic PNG is {pred_rgba.shape[0]}x{pred_rgba.shape[1]} (height x width), the "
                              f"GT PNG is {gt_rgba.shape[0]}x{gt_rgba.shape[1]}", path=pred_path, record=where)
    gt_ids, pred_ids, lengths = _runs(gt_rgba, pred_rgba)
    gt_segms = {s["id"]: s for s in gt_ann["segments_info"]}
    pred_segms = {s["id"]: s for s in pred_ann["segments_info"]}
    gt_table, gt_index = _dense(gt_ids, list(gt_segms))
    pred_table, pred_index = _dense(pred_ids, list(pred_segms))
    n_pred = len(pred_table) + 1  # the last column: ids missing from segments_info
    overlap = np.bincount(gt_index * n_pred + pred_index, weights=lengths,
                          minlength=(len(gt_table) + 1) * n_pred).astype(np.int64).reshape(len(gt_table) + 1, n_pred)
    pred_area = overlap.sum(axis=0)
    if pred_area[-1]:
        unknown = int(np.min(pred_ids[pred_index == len(pred_table)]))
        raise EvaluationError(f"segment {unknown} is in the PNG but not in segments_info", path=pred_path,
                              record=where)
    pred_column = {int(label): j for j, label in enumerate(pred_table.tolist())}
    for label, segment in pred_segms.items():
        if segment["category_id"] not in categories and pred_area[pred_column[label]]:
            raise EvaluationError(f"segment {label} has category {segment['category_id']}, which is not in the "
                                  "GT categories", path=pred_path, record=where)
    unseen = sorted(label for label in pred_segms if not pred_area[pred_column[label]])
    if unseen:
        raise EvaluationError(f"segments {unseen} are in segments_info but not in the PNG", path=pred_path,
                              record=where)
    void = overlap[0]  # GT VOID (id 0 sorts first) under each prediction
    tps, gt_matched, pred_matched = [], set(), set()
    for row, column in zip(*np.nonzero(overlap[:-1, :-1])):  # ascending (GT id, predicted id)
        gt_label, pred_label = int(gt_table[row]), int(pred_table[column])
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        g, p = gt_segms[gt_label], pred_segms[pred_label]
        if g.get("iscrowd", 0) == 1 or g["category_id"] != p["category_id"]:
            continue
        intersection = overlap[row, column]
        area = g["area"] if "area" in g else int(overlap[row].sum())
        iou = intersection / (pred_area[column] + area - intersection - void[column])
        if iou > 0.5:
            tps.append((g["category_id"], float(iou)))
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    crowd_row, fns, fps = {}, [], []
    for gt_label, g in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if g.get("iscrowd", 0) == 1:
            crowd_row[g["category_id"]] = int(np.searchsorted(gt_table, gt_label))
            continue
        fns.append(g["category_id"])
    for pred_label, p in pred_segms.items():
        if pred_label in pred_matched:
            continue
        column = pred_column[pred_label]
        excused = void[column]
        if p["category_id"] in crowd_row:
            excused += overlap[crowd_row[p["category_id"]], column]
        if excused / pred_area[column] > 0.5:
            continue
        fps.append(p["category_id"])
    return tps, fns, fps


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
                      pred_dir: str | Path | None = None, workers: int | None = 1) -> PanopticResult:
    """Compute PQ/SQ/RQ of COCO panoptic predictions, as panopticapi does.

    Parameters
    ----------
    gt_json_path, pred_json_path : str or Path
        COCO panoptic JSON files (``annotations`` with ``segments_info``).
    gt_dir, pred_dir : str or Path, optional
        Their PNG folders; by default the JSON path without ``.json``
        (panopticapi's convention).
    workers : int, optional
        Processes that read and compare PNGs (``segdata.parallel``; None:
        all cores); the sums are made in image order whatever the count, so
        the result is the same.

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
    items = []
    for gt_ann in gt["annotations"]:
        pred_ann = predictions.get(gt_ann["image_id"])
        if pred_ann is None:
            raise EvaluationError("no prediction for this GT image", path=pred_json_path,
                                  record=f"image {gt_ann['image_id']}")
        for segment in gt_ann["segments_info"]:
            if segment["category_id"] not in categories:
                raise EvaluationError(f"segment {segment['id']} has unknown category {segment['category_id']}",
                                      path=gt_json_path, record=f"image {gt_ann['image_id']}")
        items.append((gt_ann, pred_ann, gt_dir, pred_dir, set(categories)))
    # images in GT order, TPs in (GT id, predicted id) order: the float sums of one panopticapi process
    for tps, fns, fps in map_images(_image_stats, items, workers=workers):
        for category, iou in tps:
            stats[category]["tp"] += 1
            stats[category]["iou"] += iou
        for category in fns:
            stats[category]["fn"] += 1
        for category in fps:
            stats[category]["fp"] += 1
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
