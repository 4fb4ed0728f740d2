from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segdata.errors import EvaluationError, ReadError
from segdata.metrics.semantic import confusion_matrix, evaluate_semantic, metrics_from_confusion
from tests.conftest import png_stating_size


def reference(pairs, k, ignore):
    """An independent per-class computation with boolean masks (mmseg's definitions)."""
    inter = np.zeros(k)
    area_gt = np.zeros(k)
    area_pred = np.zeros(k)
    for gt, pred in pairs:
        valid = gt != ignore
        for c in range(k):
            inter[c] += np.sum((gt == c) & (pred == c) & valid)
            area_gt[c] += np.sum((gt == c) & valid)
            area_pred[c] += np.sum((pred == c) & valid)
    union = area_gt + area_pred - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
        acc = inter / area_gt
    weights = area_gt / area_gt.sum()
    return {"miou": np.nanmean(iou), "mean_accuracy": np.nanmean(acc), "pixel_accuracy": inter.sum() / area_gt.sum(),
            "fwiou": np.nansum(weights * iou), "iou": iou}


def write(folder, name, array, mode=None):
    folder.mkdir(exist_ok=True)
    image = Image.fromarray(array.astype(np.uint16 if array.max() > 255 else np.uint8))
    if mode == "P":  # palette PNG: the indices are the labels, not the colours
        image = Image.fromarray(array.astype(np.uint8)).convert("P")
        image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.save(folder / f"{name}.png")


@pytest.mark.parametrize("seed", range(4))
def test_matches_independent_computation(tmp_path, seed):
    rng = np.random.default_rng(seed)
    k = 6
    pairs = []
    for i in range(5):
        shape = tuple(rng.integers(5, 40, size=2))
        gt = rng.integers(0, k - 1, size=shape)  # class k-1 never in GT
        gt[rng.random(shape) < 0.1] = 255
        pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, k, size=shape))
        pred[pred == 255] = 0
        pairs.append((gt, pred))
        write(tmp_path / "gt", f"img{i}", gt, mode="P" if i % 2 else None)
        write(tmp_path / "pred", f"img{i}", pred)
    ours = evaluate_semantic(tmp_path / "gt", tmp_path / "pred", num_classes=k)
    ref = reference(pairs, k, 255)
    for key in ("miou", "mean_accuracy", "pixel_accuracy", "fwiou"):
        assert ours.summary[key] == pytest.approx(ref[key], abs=1e-12), key
    assert [r["iou"] for r in ours.per_class] == pytest.approx(list(ref["iou"]), abs=1e-12, nan_ok=True)


def test_absent_class_conventions_by_hand():
    # class 0: tp 1, fn 1 -> 1/2; class 1: tp 1, fp 1, fn 1 -> 1/3; class 2 predicted, not in GT -> 0
    c = confusion_matrix(np.array([[0, 0, 1, 1, 255]]), np.array([[0, 1, 1, 2, 2]]), 4)
    zero = metrics_from_confusion(c)
    exclude = metrics_from_confusion(c, absent_classes="exclude")
    assert zero.summary["miou"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert exclude.summary["miou"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert [r["iou"] for r in zero.per_class] == pytest.approx([1 / 2, 1 / 3, 0.0, None])  # class 3: absent
    assert zero.summary["mean_accuracy"] == exclude.summary["mean_accuracy"] == pytest.approx(0.5)
    assert zero.summary["pixel_accuracy"] == pytest.approx(0.5)
    assert zero.per_class[1]["dice"] == pytest.approx(2 / 4)
    assert zero.summary["fwiou"] == pytest.approx(0.5 * 1 / 2 + 0.5 * 1 / 3)


def test_out_of_range_prediction_is_fn_only():
    c = confusion_matrix(np.array([[0, 1]]), np.array([[9, 1]]), 2)
    result = metrics_from_confusion(c)
    assert result.summary["out_of_range"] == {"pred_pixels": 1, "gt_pixels": 0}
    assert (result.per_class[0]["fn"], result.per_class[0]["iou"]) == (1, 0.0)


def test_accuracy_paradox_is_flagged():
    gt = np.zeros((10, 10), int)
    gt[0, :2] = 1
    result = metrics_from_confusion(confusion_matrix(gt, np.zeros_like(gt), 2))
    assert result.summary["pixel_accuracy"] == 0.98
    assert "recall is below 50% for 1" in result.summary["accuracy_paradox"]


def test_sixteen_bit_maps(tmp_path):
    gt = np.array([[0, 300], [300, 255]])
    write(tmp_path / "gt", "a", gt)
    write(tmp_path / "pred", "a", gt)
    result = evaluate_semantic(tmp_path / "gt", tmp_path / "pred")
    assert len(result.per_class) == 301
    assert result.summary["miou"] == 1.0


def test_size_mismatch_names_file(tmp_path):
    write(tmp_path / "gt", "a", np.zeros((4, 5)))
    write(tmp_path / "pred", "a", np.zeros((5, 4)))
    with pytest.raises(EvaluationError, match=r"pred/a.png: a: label map is 5x4 \(height x width\), the GT map is 4x5"):
        evaluate_semantic(tmp_path / "gt", tmp_path / "pred")


def test_a_map_past_pillows_bomb_guard_is_one_error_naming_it(tmp_path):
    write(tmp_path / "gt", "a", np.zeros((4, 5)))
    write(tmp_path / "pred", "a", np.zeros((4, 5)))
    huge = tmp_path / "pred" / "a.png"
    huge.write_bytes(png_stating_size(huge.read_bytes(), 20000, 10000))
    with pytest.raises(ReadError, match=r"pred/a\.png: cannot read image \(Image size \(200000000 pixels\)"):
        evaluate_semantic(tmp_path / "gt", tmp_path / "pred")
