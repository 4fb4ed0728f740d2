"""PQ on hand-computed cases (panopticapi-lite pins numpy<2, so it cannot run beside segdata)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segdata.errors import EvaluationError
from segdata.metrics.panoptic import evaluate_panoptic

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


@pytest.mark.parametrize(("segments", "message"), [
    pytest.param([], r"pred/a.png: image 1: segment 5 is in the PNG but not in segments_info", id="png-only"),
    pytest.param([{"id": 5, "category_id": 9}], r"segment 5 has category 9", id="unknown-category"),
])
def test_prediction_errors_name_file_and_image(tmp_path, segments, message):
    gt = write(tmp_path, "gt", columns({1: (0, 10)}), [{"id": 1, "category_id": 1, "iscrowd": 0, "area": 40}])
    pred = write(tmp_path, "pred", columns({5: (0, 10)}), segments)
    with pytest.raises(EvaluationError, match=message):
        evaluate_panoptic(gt, pred)
