"""PQ: parity with panopticapi on generated data, and hand-computed cases of each rule."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from segdata.errors import EvaluationError, ReadError
from segdata.metrics.panoptic import evaluate_panoptic
from tests.metrics.pangen import make_panoptic

CATEGORIES = [{"id": 1, "name": "car", "isthing": 1}, {"id": 2, "name": "road", "isthing": 0}]


def write(tmp_path, name, id_map, segments, categories=CATEGORIES):
    folder = tmp_path / name
    folder.mkdir()
    rgb = np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "a.png")
    data = {"categories": categories, "images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 10}],
            "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segments}]}
    (tmp_path / f"{name}.json").write_text(json.dumps(data))
    return tmp_path / f"{name}.json"


def columns(spec):
    id_map = np.zeros((4, 10), np.int64)
    for value, (start, stop) in spec.items():
        id_map[:, start:stop] = value
    return id_map


def test_crowd_excuses_prediction_and_stuff_is_none_on_things_only(tmp_path):
    things = CATEGORIES[:1]
    gt = write(tmp_path, "gt", columns({1: (0, 5), 2: (5, 10)}),
               [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 20},
                {"id": 2, "category_id": 1, "iscrowd": 1, "area": 20}], things)
    pred = write(tmp_path, "pred", columns({7: (0, 4), 8: (6, 10)}),
                 [{"id": 7, "category_id": 1}, {"id": 8, "category_id": 1}], things)
    result = evaluate_panoptic(gt, pred)
    assert result.summary["all"] == {"pq": pytest.approx(0.8), "sq": pytest.approx(0.8), "rq": 1.0, "n": 1}
    assert result.summary["stuff"] == {"pq": None, "sq": None, "rq": None, "n": 0}
    assert (result.per_class[0]["tp"], result.per_class[0]["fp"], result.per_class[0]["fn"]) == (1, 0, 0)


def test_iou_half_is_no_match_and_void_leaves_union(tmp_path):
    gt = write(tmp_path, "gt", columns({1: (0, 4), 3: (4, 9)}),  # column 9 is VOID
               [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 16},
                {"id": 3, "category_id": 2, "iscrowd": 0, "area": 20}])
    pred = write(tmp_path, "pred", columns({5: (0, 2), 6: (4, 10)}),
                 [{"id": 5, "category_id": 1}, {"id": 6, "category_id": 2}])
    result = evaluate_panoptic(gt, pred)
    car, road = result.per_class
    assert (car["tp"], car["fp"], car["fn"], car["pq"]) == (0, 1, 1, 0.0)  # IoU 8/16 = 0.5 is not > 0.5
    assert (road["tp"], road["pq"]) == (1, 1.0)  # 20 / (24 + 20 - 20 - 4 on VOID)
    assert result.summary["all"]["pq"] == 0.5
    assert result.summary["things"]["pq"] == 0.0
    assert result.summary["stuff"]["pq"] == 1.0


def test_gt_area_comes_from_json(tmp_path):
    gt = write(tmp_path, "gt", columns({1: (0, 10)}), [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 30}])
    pred = write(tmp_path, "pred", columns({5: (0, 10)}), [{"id": 5, "category_id": 1}])
    assert evaluate_panoptic(gt, pred).per_class[0]["sq"] == pytest.approx(40 / 30)  # as panopticapi


def test_png_sizes_must_agree(tmp_path):
    gt = write(tmp_path, "gt", columns({1: (0, 10)}), [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 40}])
    pred = write(tmp_path, "pred", columns({5: (0, 10)}), [{"id": 5, "category_id": 1}])
    Image.fromarray(np.zeros((3, 10, 3), np.uint8)).save(tmp_path / "pred" / "a.png")
    with pytest.raises(EvaluationError, match=r"pred/a.png: image 1: panoptic PNG is 3x10 \(height x width\), the GT "
                                              r"PNG is 4x10"):
        evaluate_panoptic(gt, pred)


def test_unreadable_png_is_a_read_error(tmp_path):
    gt = write(tmp_path, "gt", columns({1: (0, 10)}), [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 40}])
    pred = write(tmp_path, "pred", columns({5: (0, 10)}), [{"id": 5, "category_id": 1}])
    (tmp_path / "pred" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ReadError, match=r"pred/a.png: cannot decode panoptic PNG"):
        evaluate_panoptic(gt, pred)
    (tmp_path / "pred" / "a.png").unlink()
    with pytest.raises(ReadError, match=r"pred/a.png: cannot read panoptic PNG"):
        evaluate_panoptic(gt, pred)


@pytest.mark.parametrize(("segments", "message"), [
    pytest.param([], r"pred/a.png: image 1: segment 5 is in the PNG but not in segments_info", id="png-only"),
    pytest.param([{"id": 5, "category_id": 9}], r"segment 5 has category 9", id="unknown-category"),
    pytest.param([{"id": 5, "category_id": 1}, {"id": 6, "category_id": 1}],
                 r"pred/a.png: image 1: segments \[6\] are in segments_info but not in the PNG", id="json-only"),
])
def test_prediction_errors_name_file_and_image(tmp_path, segments, message):
    gt = write(tmp_path, "gt", columns({1: (0, 10)}), [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 40}])
    pred = write(tmp_path, "pred", columns({5: (0, 10)}), segments)
    with pytest.raises(EvaluationError, match=message):
        evaluate_panoptic(gt, pred)


# pq_compute never closes its multiprocessing.Pool; its __del__ then warns about a pool still running
_POOL_LEFT_OPEN = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning",
                                            "ignore:unclosed running multiprocessing pool:ResourceWarning")


def _reference(evaluation, gt_json, pred_json):
    """panopticapi's numbers, summed in one process (``pq_compute`` splits images over all cores)."""
    gt, pred = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
    categories = {c["id"]: c for c in gt["categories"]}
    predictions = {a["image_id"]: a for a in pred["annotations"]}
    pairs = [(a, predictions[a["image_id"]]) for a in gt["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        stat = evaluation.pq_compute_single_core(0, pairs, str(gt_json.with_suffix("")),
                                                 str(pred_json.with_suffix("")), categories)
    summary, per_class = {}, None
    for name, isthing in (("all", None), ("things", True), ("stuff", False)):
        try:
            summary[name], per = stat.pq_average(categories, isthing=isthing)
        except ZeroDivisionError:  # a subset without classes: segdata says None instead
            summary[name] = None
        per_class = per if name == "all" else per_class
    return summary, per_class, stat


def _assert_same(ours, summary, per_class, stat):
    for name, row in summary.items():
        expected = {"pq": None, "sq": None, "rq": None, "n": 0} if row is None else row
        assert ours.summary[name] == expected, name
    for row in ours.per_class:
        counts = stat[row["category_id"]]
        assert (row["tp"], row["fp"], row["fn"]) == (counts.tp, counts.fp, counts.fn), row
        if counts.tp + counts.fp + counts.fn == 0:
            assert (row["pq"], row["sq"], row["rq"]) == (None, None, None)
        else:
            assert {k: row[k] for k in ("pq", "sq", "rq")} == per_class[row["category_id"]], row


@pytest.mark.parametrize("things_only", [pytest.param(False, id="things-and-stuff"),
                                         pytest.param(True, id="things-only")])
@pytest.mark.parametrize("seed", range(6))
def test_parity_with_panopticapi(tmp_path, panopticapi_evaluation, seed, things_only):
    gt_json, pred_json = make_panoptic(tmp_path, seed, things_only=things_only)
    expected = _reference(panopticapi_evaluation, gt_json, pred_json)
    assert sum(expected[2][c].tp for c in (1, 2, 3)) > 0 and sum(expected[2][c].fp for c in (1, 2, 3, 4)) > 0
    _assert_same(evaluate_panoptic(gt_json, pred_json), *expected)


@_POOL_LEFT_OPEN
def test_parity_with_pq_compute_in_worker_processes(tmp_path, panopticapi_evaluation):
    """The public entry point, several processes on both sides; sums may then differ in the last bit."""
    gt_json, pred_json = make_panoptic(tmp_path, 7, n_images=12)
    with contextlib.redirect_stdout(io.StringIO()):
        expected = panopticapi_evaluation.pq_compute(str(gt_json), str(pred_json))
    ours = evaluate_panoptic(gt_json, pred_json, workers=2)
    for name, key in (("all", "All"), ("things", "Things"), ("stuff", "Stuff")):
        for metric in ("pq", "sq", "rq"):
            assert ours.summary[name][metric] == pytest.approx(expected[key][metric], rel=0, abs=1e-12)
        assert ours.summary[name]["n"] == expected[key]["n"]


@_POOL_LEFT_OPEN
def test_things_only_is_none_where_panopticapi_divides_by_zero(tmp_path, panopticapi_evaluation):
    gt_json, pred_json = make_panoptic(tmp_path, 3, things_only=True)
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(ZeroDivisionError, match="division by zero"):
        panopticapi_evaluation.pq_compute(str(gt_json), str(pred_json))
    assert evaluate_panoptic(gt_json, pred_json).summary["stuff"] == {"pq": None, "sq": None, "rq": None, "n": 0}
