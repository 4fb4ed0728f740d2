from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from segdata.converters import coco
from segdata.errors import EvaluationError
from segdata.metrics.instance import STAT_NAMES, evaluate_instances
from tests.metrics.cocogen import make_case, rle_of, write_gt


def reference(gt_path, results):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        if results:
            dt = gt.loadRes(copy.deepcopy(results))
        else:  # loadRes([]) raises; an empty detection set is what segdata reports
            dt = COCO()
            dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"],
                          "annotations": []}
            dt.createIndex()
        e = COCOeval(gt, dt, "segm")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def check_parity(tmp_path, gt_dict, results):
    path = write_gt(tmp_path, gt_dict)
    ref = reference(path, results)
    ours = evaluate_instances(coco.read(path), results)
    np.testing.assert_allclose([ours.stats[n] for n in STAT_NAMES], ref.stats, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.precision, ref.eval["precision"])
    np.testing.assert_array_equal(ours.recall, ref.eval["recall"])
    return ours, ref


@pytest.mark.parametrize("seed", range(6))
def test_parity_with_cocoeval(tmp_path, seed):
    check_parity(tmp_path, *make_case(seed))


@pytest.mark.parametrize("options", [
    pytest.param({"id_zero": True}, id="annotation-id-zero"),
    pytest.param({"bbox": True}, id="bbox-in-results"),
    pytest.param({"n_images": 3, "overflow": False}, id="few-images"),
    pytest.param({"n_cats": 2}, id="one-class-with-gt"),
])
def test_parity_quirks(tmp_path, options):
    ours, _ = check_parity(tmp_path, *make_case(11, **options))
    if "id_zero" in options:
        assert ours.quirks["gt_annotation_id_zero"] == [0]
    if "bbox" in options:
        assert ours.quirks["result_has_bbox"]


def test_empty_results_are_zero_not_error(tmp_path):
    gt, _ = make_case(3)
    ours, _ = check_parity(tmp_path, gt, [])
    assert ours.stats["AP"] == 0.0
    assert ours.totals["fn"] == ours.totals["gt_instances"] > 0


def _tiny(tmp_path):
    bitmap = np.zeros((10, 10), np.uint8)
    bitmap[2:6, 2:6] = 1
    gt = {"images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 10}],
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 16,
                           "segmentation": rle_of(bitmap), "ignore": 1}]}
    return coco.read(write_gt(tmp_path, gt)), bitmap


def test_score_ties_keep_input_order(tmp_path):
    gt, bitmap = _tiny(tmp_path)
    hit = {"image_id": 1, "category_id": 1, "segmentation": rle_of(bitmap), "score": 0.5}
    miss = {**hit, "segmentation": rle_of(1 - bitmap)}
    # pycocotools' precision is tp / (tp + fp + eps), so a perfect curve reads 1 - 1 ulp
    assert evaluate_instances(gt, [hit, miss]).stats["AP50"] == pytest.approx(1.0, abs=1e-12)
    assert evaluate_instances(gt, [miss, hit]).stats["AP50"] == pytest.approx(0.5, abs=1e-12)


def test_counts_and_quirks(tmp_path):
    gt, bitmap = _tiny(tmp_path)
    results = [{"image_id": 1, "category_id": 1, "segmentation": rle_of(bitmap), "score": 0.9},
               {"image_id": 1, "category_id": 2, "segmentation": rle_of(bitmap), "score": 0.8},
               {"image_id": 1, "category_id": 1, "segmentation": rle_of(1 - bitmap), "score": 0.1}]
    result = evaluate_instances(gt, results, score_threshold=0.5)
    a, b = result.per_class
    assert (a["gt_instances"], a["predictions"], a["tp"], a["fp"], a["fn"]) == (1, 2, 1, 0, 0)
    assert (b["gt_instances"], b["tp"], b["fp"], b["ap"]) == (0, 0, 1, None)  # FP of a GT-less class is visible
    assert result.totals["precision"] == 0.5
    assert result.quirks == {"gt_ignore_overwritten": [1]}


@pytest.mark.parametrize(("result", "message"), [
    pytest.param({"image_id": 7}, r"result 0 \(image 7\): image is not in the ground truth", id="unknown-image"),
    pytest.param({"segmentation": rle_of(np.zeros((4, 10)))}, r"result 0 \(image 1\): RLE size \[4, 10\] differs from image size "
                 r"\[10, 10\]", id="size-mismatch"),
])
def test_errors_name_file_and_record(tmp_path, result, message):
    gt, bitmap = _tiny(tmp_path)
    base = {"image_id": 1, "category_id": 1, "segmentation": rle_of(bitmap), "score": 0.9}
    with pytest.raises(EvaluationError, match=f"^preds.json: {message}"):
        evaluate_instances(gt, [{**base, **result}], results_path="preds.json")


def test_parity_on_cocoapi_sample(conformance_dir, tmp_path):
    """Real COCO GT (polygons, crowd RLE) from cocoapi; results are its masks, shifted and rescored."""
    gt_path = conformance_dir / "cocodataset+cocoapi/PythonAPI/extra/samples/instances_val2017_1img-sample.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
    rng = np.random.default_rng(0)
    results = []
    for ann in gt.dataset["annotations"]:
        bitmap = gt.annToMask(ann)
        for shift in (0, 3, 9):
            results.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                            "segmentation": rle_of(np.roll(bitmap, shift, axis=1)),
                            "score": round(float(rng.random()), 1)})
    ref = reference(gt_path, results)
    ours = evaluate_instances(coco.read(gt_path), results)
    np.testing.assert_allclose([ours.stats[n] for n in STAT_NAMES], ref.stats, rtol=0, atol=1e-12)


def test_more_than_255_results(tmp_path):
    """pycocotools' batch area() overflows past 255 masks under NumPy 2; segdata must not."""
    gt, bitmap = _tiny(tmp_path)
    results = [{"image_id": 1, "category_id": 1, "segmentation": rle_of(bitmap), "score": i / 300}
               for i in range(300)]
    assert evaluate_instances(gt, results).per_class[0]["predictions"] == 300
