from __future__ import annotations

import json

import numpy as np
from PIL import Image

from tests.conftest import run_segdata
from tests.metrics.cocogen import make_case, rle_of, write_gt
from tests.metrics.pangen import make_panoptic


def test_instance_json_and_table(tmp_path):
    gt, results = make_case(2, n_images=4, overflow=False)
    gt_path = write_gt(tmp_path, gt)
    (tmp_path / "res.json").write_text(json.dumps(results))
    done = run_segdata("evaluate", gt_path, tmp_path / "res.json", "--task", "instance", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out["stats"]) >= {"AP", "AP50", "ARl"} and len(out["per_class"]) == 4
    table = run_segdata("evaluate", gt_path, tmp_path / "res.json", "--task", "instance", "--per-class")
    assert table.returncode == 0 and "AP50" in table.stdout and "per class" in table.stdout


def test_instance_strict_exits_1_on_quirks(tmp_path):
    gt, results = make_case(2, n_images=4, overflow=False, bbox=True)
    (tmp_path / "res.json").write_text(json.dumps(results))
    done = run_segdata("evaluate", write_gt(tmp_path, gt), tmp_path / "res.json", "--task", "instance", "--strict")
    assert done.returncode == 1
    assert "quirk result_has_bbox" in done.stdout


def test_unknown_image_exits_2_with_one_line(tmp_path):
    gt, _ = make_case(2, n_images=2, overflow=False)
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": 999, "category_id": 1, "score": 0.5,
                                                     "segmentation": rle_of(np.ones((3, 3)))}]))
    done = run_segdata("evaluate", write_gt(tmp_path, gt), tmp_path / "res.json", "--task", "instance")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("res.json: result 0 (image 999): image is not in the ground truth")
    assert done.stderr.startswith("segdata: error: ")


def test_semantic_ignore_index(tmp_path):
    for name, array in (("gt", np.array([[0, 1], [7, 7]])), ("pred", np.array([[0, 0], [1, 1]]))):
        (tmp_path / name).mkdir()
        Image.fromarray(array.astype(np.uint8)).save(tmp_path / name / "x.png")
    done = run_segdata("evaluate", tmp_path / "gt", tmp_path / "pred", "--task", "semantic", "--json",
                       "--ignore-index", "7")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["summary"]
    assert (summary["pixels"], summary["pixel_accuracy"], summary["miou"]) == (2, 0.5, 0.25)


def test_semantic_absent_classes_convention(tmp_path):
    # class 1 is predicted once but absent from GT: IoU 0 counts (zero) or is left out (exclude)
    for name, array in (("gt", np.array([[0, 2], [2, 2]])), ("pred", np.array([[1, 2], [2, 2]]))):
        (tmp_path / name).mkdir()
        Image.fromarray(array.astype(np.uint8)).save(tmp_path / name / "x.png")
    mious = {}
    for convention in ("zero", "exclude"):
        done = run_segdata("evaluate", tmp_path / "gt", tmp_path / "pred", "--task", "semantic", "--json",
                           "--absent-classes", convention)
        assert done.returncode == 0, done.stderr
        mious[convention] = json.loads(done.stdout)["summary"]["miou"]
    assert mious == {"zero": 1 / 3, "exclude": 0.5}  # IoUs: class 0 → 0, class 1 → 0 (absent), class 2 → 1


def test_instance_rle_size_mismatch_exits_2(tmp_path):
    gt, _ = make_case(2, n_images=2, overflow=False)  # image ids 3 and 6
    height = gt["images"][0]["height"]
    (tmp_path / "res.json").write_text(json.dumps([{"image_id": 3, "category_id": 1, "score": 0.5,
                                                     "segmentation": rle_of(np.ones((3, 3)))}]))
    done = run_segdata("evaluate", write_gt(tmp_path, gt), tmp_path / "res.json", "--task", "instance")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"segdata: error: {tmp_path / 'res.json'}: result 0 (image 3): RLE size [3, 3] "
                                   f"differs from image size [{height}, {gt['images'][0]['width']}] (height, width)")


def test_instance_empty_results_score_zero(tmp_path):
    gt, _ = make_case(2, n_images=3, overflow=False)
    (tmp_path / "res.json").write_text("[]")
    done = run_segdata("evaluate", write_gt(tmp_path, gt), tmp_path / "res.json", "--task", "instance", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["stats"]["AP"], out["stats"]["AR100"], out["totals"]["predictions"]) == (0.0, 0.0, 0)
    assert out["totals"]["fn"] == out["totals"]["gt_instances"] > 0


def test_semantic_label_map_of_wrong_size_exits_2(tmp_path):
    for name, shape in (("gt", (4, 5)), ("pred", (5, 4))):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros(shape, np.uint8)).save(tmp_path / name / "x.png")
    done = run_segdata("evaluate", tmp_path / "gt", tmp_path / "pred", "--task", "semantic")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("x.png: x: label map is 5x4 (height x width), the GT map is 4x5")


def test_panoptic_without_prediction_for_an_image_exits_2(tmp_path):
    gt_json, pred_json = make_panoptic(tmp_path, 0, n_images=3)
    pred = json.loads(pred_json.read_text())
    pred["annotations"] = pred["annotations"][:-1]
    pred_json.write_text(json.dumps(pred))
    done = run_segdata("evaluate", gt_json, pred_json, "--task", "panoptic")
    assert done.returncode == 2
    assert done.stderr.strip() == f"segdata: error: {pred_json}: image 3: no prediction for this GT image"


def test_panoptic_json_table(tmp_path):
    gt_json, pred_json = make_panoptic(tmp_path, 1, n_images=3, things_only=True)
    done = run_segdata("evaluate", gt_json, pred_json, "--task", "panoptic", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["summary"]["stuff"] == {"pq": None, "sq": None, "rq": None, "n": 0}
    assert out["quirks"] == {"stuff_without_classes": True}
