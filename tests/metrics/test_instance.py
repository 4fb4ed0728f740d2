from __future__ import annotations

import contextlib
import copy
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
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


def test_two_workers_give_the_same_result_as_one(tmp_path):
    gt_dict, results = make_case(5, id_zero=True)
    path = write_gt(tmp_path, gt_dict)
    one = evaluate_instances(coco.read(path), copy.deepcopy(results), workers=1)
    two = evaluate_instances(coco.read(path), copy.deepcopy(results), workers=2)
    assert two.to_dict() == one.to_dict() and two.quirks == one.quirks and one.quirks["gt_annotation_id_zero"]
    np.testing.assert_array_equal(two.precision, one.precision)


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


@st.composite
def grid_cases(draw):
    """COCO GT + results on a coarse grid, so that equal masks, equal IoUs and score ties are common.

    Stored GT areas sit on the area-range bounds (1024, 9216) or next to
    them; annotation ids may start at 0; results may carry a ``bbox``; one
    cell may hold more than maxDets[1] = 10 detections.
    """
    images, anns, results = [], [], []
    next_id = draw(st.sampled_from([0, 1]))
    for image_id in range(1, draw(st.integers(1, 4)) + 1):
        height, width = draw(st.sampled_from([(12, 12), (40, 36), (100, 120)]))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": height, "width": width})

        def rect(height=height, width=width):
            # full-height bands half of the time: 10 possible masks, so GTs overlap and IoUs tie often
            r0, r1 = (0, 4) if draw(st.booleans()) else sorted(
                draw(st.lists(st.integers(0, 4), min_size=2, max_size=2, unique=True)))
            c0, c1 = sorted(draw(st.lists(st.integers(0, 4), min_size=2, max_size=2, unique=True)))
            bitmap = np.zeros((height, width), np.uint8)
            bitmap[r0 * height // 4:r1 * height // 4, c0 * width // 4:c1 * width // 4] = 1
            return bitmap

        for _ in range(draw(st.integers(0, 5))):
            bitmap = rect()
            area = draw(st.sampled_from(["mask", 1024, 1024.5, 9216, 9215]))
            anns.append({"id": next_id, "image_id": image_id, "category_id": draw(st.integers(1, 3)),
                         "iscrowd": int(draw(st.integers(0, 5)) == 0), "segmentation": rle_of(bitmap),
                         "area": int(bitmap.sum()) if area == "mask" else area})
            next_id += 1
        for _ in range(draw(st.sampled_from([0, 2, 5, 13]))):
            results.append({"image_id": image_id, "category_id": draw(st.integers(1, 3)),
                            "segmentation": rle_of(rect()), "score": draw(st.sampled_from([0.2, 0.5, 0.9]))})
    if results and draw(st.booleans()):
        for r in results:
            r["bbox"] = [float(v) for v in mask_utils.toBbox(r["segmentation"])]
    return {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}, \
        results


@settings(max_examples=150, deadline=None)
@given(grid_cases())
def test_parity_on_generated_grid_cases(case):
    gt, results = case
    with tempfile.TemporaryDirectory() as folder:
        check_parity(Path(folder), gt, results)


def _bands(tmp_path, gt_bands, dt_bands):
    """One 4×40 image of column bands (start, stop) in tenths: GT of category 1, scored detections."""
    def bitmap(start, stop):
        array = np.zeros((4, 40), np.uint8)
        array[:, start * 4:stop * 4] = 1
        return array

    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": int(bitmap(*b).sum()),
             "segmentation": rle_of(bitmap(*b))} for i, b in enumerate(gt_bands)]
    gt = {"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 40}], "annotations": anns,
          "categories": [{"id": 1, "name": "a"}]}
    results = [{"image_id": 1, "category_id": 1, "segmentation": rle_of(bitmap(*b)), "score": s}
               for b, s in dt_bands]
    return check_parity(tmp_path, gt, results)[0]


def test_equal_iou_later_gt_wins(tmp_path):
    # the first detection has IoU 2/3 with both GTs and takes the later one (B); the second detection is
    # A itself, so it matches A at every threshold. Had the first taken A, the second would only reach B
    # (IoU 0.5), an FP from IoU 0.55 on.
    ours = _bands(tmp_path, [(0, 3), (1, 4)], [((1, 3), 0.9), ((0, 3), 0.8)])
    assert ours.stats["AP50"] == pytest.approx(1.0, abs=1e-12)
    assert ours.recall[:, 0, 0, 2].tolist() == [1.0] * 4 + [0.5] * 6  # the first detection's IoU 2/3 < 0.7


def test_iou_exactly_at_threshold_matches(tmp_path):
    ours = _bands(tmp_path, [(0, 2)], [((0, 4), 0.9)])  # IoU 2/4 = 0.5
    assert ours.recall[:, 0, 0, 2].tolist() == [1.0] + [0.0] * 9


def _boxes(tmp_path, gts, dts, size=(40, 40)):
    """Images of ``size`` with box masks: ``gts`` (image, (r0, r1, c0, c1), iscrowd, stored area or None),
    ``dts`` (image, box, score). One category; COCOeval parity is checked on the way."""
    def rle(box):
        bitmap = np.zeros(size, np.uint8)
        bitmap[box[0]:box[1], box[2]:box[3]] = 1
        return rle_of(bitmap)

    images = sorted({g[0] for g in gts} | {d[0] for d in dts})
    anns = []
    for i, (image, box, crowd, area) in enumerate(gts):
        ann = {"id": i + 1, "image_id": image, "category_id": 1, "iscrowd": crowd, "segmentation": rle(box),
               "area": (box[1] - box[0]) * (box[3] - box[2]) if area is None else area}
        anns.append(ann)
    gt = {"images": [{"id": i, "file_name": f"{i}.png", "height": size[0], "width": size[1]} for i in images],
          "annotations": anns, "categories": [{"id": 1, "name": "a"}]}
    results = [{"image_id": image, "category_id": 1, "segmentation": rle(box), "score": score}
               for image, box, score in dts]
    return check_parity(tmp_path, gt, results)[0]


def test_score_ties_across_images_follow_image_id(tmp_path):
    # equal scores: image 1's detection (an FP) ranks before image 2's (a TP) whatever the input order
    ours = _boxes(tmp_path, [(2, (0, 10, 0, 10), 0, None)], [(2, (0, 10, 0, 10), 0.5), (1, (0, 10, 0, 10), 0.5)])
    assert ours.stats["AP50"] == pytest.approx(0.5, abs=1e-12)


def test_real_gt_preferred_over_crowd(tmp_path):
    # the detection overlaps the crowd region fully (IoA 1) and the real GT at IoU 0.5: it is a TP
    ours = _boxes(tmp_path, [(1, (0, 20, 0, 20), 1, None), (1, (0, 10, 0, 20), 0, None)], [(1, (0, 20, 0, 20), 0.9)])
    assert ours.recall[0, 0, 0, 2] == 1.0
    assert ours.totals["tp"] == 1


def test_crowd_absorbs_many_detections(tmp_path):
    # three detections inside the crowd region are ignored, not FPs; the real GT's match makes AP 1
    crowd_dts = [(1, (r, r + 5, 0, 10), 0.9) for r in (20, 25, 30)]
    ours = _boxes(tmp_path, [(1, (20, 40, 0, 20), 1, None), (1, (0, 10, 20, 40), 0, None)],
                  crowd_dts + [(1, (0, 10, 20, 40), 0.1)])
    assert ours.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert ours.totals["fp"] == 0


def test_area_bounds_are_inclusive_and_stored_area_decides(tmp_path):
    # stored area 1024 = 32²: the GT is in both the small and the medium range; its mask is 100 pixels
    ours = _boxes(tmp_path, [(1, (0, 10, 0, 10), 0, 1024)], [(1, (0, 10, 0, 10), 0.9)])
    assert ours.recall[0, 0, 1:3, 2].tolist() == [1.0, 1.0]  # small, medium
    assert ours.recall[0, 0, 3, 2] == -1.0  # large: no GT
    assert ours.quirks["gt_area_differs"] == [1]


def test_missing_area_uses_the_mask_and_is_reported(tmp_path):
    bitmap = np.zeros((10, 10), np.uint8)
    bitmap[:4, :4] = 1
    gt = {"images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 10}],
          "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": rle_of(bitmap)}]}
    result = evaluate_instances(coco.read(write_gt(tmp_path, gt)),
                                [{"image_id": 1, "category_id": 1, "segmentation": rle_of(bitmap), "score": 1.0}])
    assert result.quirks["gt_area_missing"] == [5]  # pycocotools raises KeyError here
    assert result.stats["APs"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("results", "message"), [
    pytest.param({"image_id": 1}, r"preds.json: expected a JSON list of results, found dict", id="not-a-list"),
    pytest.param([{"image_id": 1, "category_id": 1, "score": 0.5}],
                 r"result 0: expected an object with image_id, category_id, segmentation and a numeric score",
                 id="missing-segmentation"),
    pytest.param([{"image_id": 1, "category_id": 1, "score": "high", "segmentation": {}}],
                 r"result 0: expected .* a numeric score", id="score-not-a-number"),
    pytest.param([{"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": [[1, 1, 5, 1, 5, 5]]}],
                 r"result 0 \(image 1\): segmentation must be an RLE dict", id="polygon-result"),
    pytest.param([{"image_id": 1, "category_id": 1, "score": 0.5,
                   "segmentation": {"size": [10, 10], "counts": 7}}],
                 r"result 0 \(image 1\): RLE counts must be a string or a list, found int", id="counts-not-rle"),
    pytest.param([{"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [0, 0, 2, 2],
                   "segmentation": {"size": [10, 10], "counts": "0d1"}},
                  {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": {"size": [10, 10], "counts": "0d1"}}],
                 r"result 1 \(image 1\): the first result has a 'bbox'", id="bbox-on-first-only"),
])
def test_bad_results_are_clear_errors(tmp_path, results, message):
    gt, _ = _tiny(tmp_path)
    with pytest.raises(EvaluationError, match=message):
        evaluate_instances(gt, results, results_path="preds.json")


def test_result_of_unknown_category_is_left_out_and_reported(tmp_path):
    gt, bitmap = _tiny(tmp_path)
    hit = {"image_id": 1, "category_id": 1, "segmentation": rle_of(bitmap), "score": 0.9}
    result = evaluate_instances(gt, [hit, {**hit, "category_id": 99}])
    assert result.quirks["result_category_unknown"] == [1]
    assert result.totals["predictions"] == 1


def test_matched_detection_outside_the_area_range_still_counts(tmp_path):
    # GT of 1000 px is small; the detection (1600 px, IoU 0.625) is medium-sized but matched: a TP in "small"
    ours = _boxes(tmp_path, [(1, (0, 25, 0, 40), 0, None)], [(1, (0, 40, 0, 40), 0.9)], size=(60, 60))
    assert ours.recall[0, 0, 1, 2] == 1.0
    assert ours.precision[0, :, 0, 1, 2].min() > 0.99
