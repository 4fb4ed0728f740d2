"""Semantic-segmentation metrics from one dataset-level confusion matrix.

Conventions (those of mmsegmentation's ``IoUMetric`` unless said otherwise):

- GT pixels equal to ``ignore_index`` leave the matrix entirely (the mask is
  applied to the prediction too);
- a predicted value outside ``0..K-1`` on a valid GT pixel is a false
  negative of the GT class and a false positive of no class; a GT value
  outside the range (and not ignored) counts only as a false positive of
  the predicted class.  Both are counted in ``out_of_range``;
- a class absent from GT and prediction has no IoU (``None``) and is left out
  of every mean; a class absent from GT but predicted has IoU 0 and counts in
  mIoU (``absent_classes="zero"``), or is left out as detectron2 does
  (``absent_classes="exclude"``); its recall is ``None`` either way;
- fwIoU weights IoU by GT frequency (detectron2).

The matrix ``C[g, p]`` has one extra row and column, index K, for values out
of range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segdata.errors import EvaluationError, ReadError, UsageError

ABSENT_CLASSES = ("exclude", "zero")


def read_label_map(path: str | Path) -> np.ndarray:
    """Read a PNG label map as integers: palette indices for mode P, 16-bit values kept.

    Raises
    ------
    ReadError
        The file cannot be opened as an image.
    EvaluationError
        The image has colour channels (a label map holds one value per pixel).
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
                raise EvaluationError(f"expected a single-channel label map, found mode {image.mode}", path=path)
            return np.asarray(image).astype(np.int64)
    except (OSError, Image.DecompressionBombError) as err:
        raise ReadError(f"cannot read image ({err})", path=path) from err


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, *, ignore_index: int = 255) -> np.ndarray:
    """Count ``(gt, pred)`` pixel pairs into a (K+1, K+1) matrix; index K holds out-of-range values.

    Parameters
    ----------
    gt, pred : ndarray of shape (H, W) and integer dtype
    num_classes : int
        K.
    ignore_index : int
        GT value whose pixels are left out.

    Returns
    -------
    ndarray of shape (K+1, K+1) and dtype int64

    Examples
    --------
    >>> confusion_matrix(np.array([[0, 1, 255]]), np.array([[0, 7, 1]]), 2)
    array([[1, 0, 0],
           [0, 0, 1],
           [0, 0, 0]])
    """
    keep = gt != ignore_index
    g, p = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    n = num_classes + 1
    g = np.where((g < 0) | (g >= num_classes), num_classes, g)
    p = np.where((p < 0) | (p >= num_classes), num_classes, p)
    return np.bincount(g * n + p, minlength=n * n).reshape(n, n)


@dataclass
class SemanticResult:
    """Per-class IoU, precision, recall, Dice and the dataset means; ``None`` where undefined."""

    per_class: list[dict[str, Any]]
    summary: dict[str, Any]
    confusion: np.ndarray

    @property
    def quirks(self) -> dict[str, int]:
        """Pixel counts of values outside ``0..K-1`` (what ``--strict`` reports)."""
        return {f"{key}_out_of_range": n for key, n in self.summary["out_of_range"].items() if n}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the confusion matrix as nested lists."""
        return {"task": "semantic", "summary": self.summary, "per_class": self.per_class,
                "confusion_matrix": self.confusion.tolist()}


def _div(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def metrics_from_confusion(confusion: np.ndarray, *, absent_classes: str = "zero",
                           class_names: dict[int, str] | None = None) -> SemanticResult:
    """Derive every metric from a (K+1, K+1) matrix made by :func:`confusion_matrix`.

    Parameters
    ----------
    confusion : ndarray of shape (K+1, K+1)
    absent_classes : {"zero", "exclude"}
        A class absent from GT but predicted: IoU 0 counted in mIoU
        (mmseg, Cityscapes), or left out (detectron2).
    class_names : dict of int to str, optional

    Returns
    -------
    SemanticResult

    Examples
    --------
    >>> c = confusion_matrix(np.array([[0, 0, 1, 1]]), np.array([[0, 1, 1, 2]]), 3)
    >>> metrics_from_confusion(c).summary["miou"], metrics_from_confusion(c, absent_classes="exclude").summary["miou"]
    (0.27777777777777773, 0.41666666666666663)
    """
    if absent_classes not in ABSENT_CLASSES:
        raise UsageError(f"absent_classes must be one of {', '.join(ABSENT_CLASSES)}, found {absent_classes!r}")
    k = confusion.shape[0] - 1
    tp = np.diag(confusion)[:k].astype(np.int64)
    gt_area = confusion[:k].sum(axis=1)
    pred_area = confusion[:, :k].sum(axis=0)
    fn, fp = gt_area - tp, pred_area - tp
    rows, ious, recalls, weights = [], [], [], []
    for c in range(k):
        iou = _div(tp[c], tp[c] + fp[c] + fn[c])
        if gt_area[c] == 0 and absent_classes == "exclude":
            iou = None
        row = {"class": c, "name": (class_names or {}).get(c, str(c)), "gt_pixels": int(gt_area[c]),
               "pred_pixels": int(pred_area[c]), "tp": int(tp[c]), "fp": int(fp[c]), "fn": int(fn[c]),
               "iou": iou, "precision": _div(tp[c], pred_area[c]), "recall": _div(tp[c], gt_area[c]),
               "dice": _div(2 * tp[c], 2 * tp[c] + fp[c] + fn[c])}
        rows.append(row)
        ious.append(iou)
        recalls.append(row["recall"])
        weights.append(gt_area[c])
    total = int(gt_area.sum())
    pixel_accuracy = _div(tp.sum(), total)
    fwiou = (sum(w * i for w, i in zip(weights, ious) if i is not None) / total) if total else None
    weak = [r["name"] for r in rows if r["recall"] is not None and r["recall"] < 0.5]
    paradox = None
    if pixel_accuracy is not None and pixel_accuracy >= 0.9 and weak:
        paradox = (f"pixel accuracy is {pixel_accuracy:.1%} but recall is below 50% for {', '.join(weak)}: "
                   "frequent classes dominate pixel accuracy; read mIoU and per-class recall instead")
    summary = {"miou": _mean(ious), "pixel_accuracy": pixel_accuracy, "mean_accuracy": _mean(recalls),
               "fwiou": float(fwiou) if fwiou is not None else None, "mean_dice": _mean(
                   [r["dice"] for r, i in zip(rows, ious) if i is not None]),
               "classes_evaluated": sum(i is not None for i in ious), "absent_classes": absent_classes,
               "pixels": total, "out_of_range": {"pred_pixels": int(confusion[:k, k].sum()),
                                                 "gt_pixels": int(confusion[k].sum())},
               "accuracy_paradox": paradox}
    return SemanticResult(rows, summary, confusion)


def evaluate_semantic(gt_dir: str | Path, pred_dir: str | Path, *, num_classes: int | None = None,
                      ignore_index: int = 255, absent_classes: str = "zero") -> SemanticResult:
    """Evaluate folders of PNG label maps, matched by file stem.

    Parameters
    ----------
    gt_dir, pred_dir : str or Path
        Folders of ``*.png`` label maps (palette indices for mode P, 16-bit kept).
    num_classes : int, optional
        K; by default the largest GT value other than ``ignore_index``, plus one.
    ignore_index : int
        GT value whose pixels are left out.
    absent_classes : {"zero", "exclude"}
        See :func:`metrics_from_confusion`.

    Returns
    -------
    SemanticResult
        ``summary["out_of_range"]`` counts predicted values outside ``0..K-1``.

    Raises
    ------
    EvaluationError
        A GT map has no prediction, or the sizes of a pair differ.
    ReadError
        A folder or file cannot be read.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for folder in (gt_dir, pred_dir):
        if not folder.is_dir():
            raise ReadError("expected a folder of PNG label maps", path=folder)
    gt_files = {p.stem: p for p in sorted(gt_dir.glob("*.png"))}
    pred_files = {p.stem: p for p in sorted(pred_dir.glob("*.png"))}
    if not gt_files:
        raise EvaluationError("no *.png label maps found", path=gt_dir)
    missing = sorted(set(gt_files) - set(pred_files))
    if missing:
        raise EvaluationError(f"no prediction for {len(missing)} GT map(s), first {missing[0]}.png",
                              path=pred_dir, record=missing[0])
    k = num_classes
    if k is None:
        k = 1 + max(int(np.max(m[m != ignore_index], initial=0)) for m in map(read_label_map, gt_files.values()))
    confusion = np.zeros((k + 1, k + 1), dtype=np.int64)
    for stem, gt_path in gt_files.items():
        gt, pred = read_label_map(gt_path), read_label_map(pred_files[stem])
        if gt.shape != pred.shape:
            raise EvaluationError(f"label map is {pred.shape[0]}x{pred.shape[1]} (height x width), the GT map "
                                  f"is {gt.shape[0]}x{gt.shape[1]}", path=pred_files[stem], record=stem)
        confusion += confusion_matrix(gt, pred, k, ignore_index=ignore_index)
    result = metrics_from_confusion(confusion, absent_classes=absent_classes)
    result.summary["images"] = len(gt_files)
    result.summary["unmatched_predictions"] = sorted(set(pred_files) - set(gt_files))
    return result
