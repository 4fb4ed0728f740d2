"""Overlap checks: IoU and both containment ratios, modes, crowd exclusion, the bbox prefilter."""

from __future__ import annotations

import numpy as np
import pytest

from segdata.validators import validate
from segdata.validators.overlap import candidate_pairs
from tests.validators.coco_files import ann, document, read, square

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def _overlaps(tmp_path, anns, mode="instance"):
    dataset = read(tmp_path, document(anns, categories=CATS))
    return validate(dataset, only=["instance-overlap", "instance-duplicate"], overlap_mode=mode, workers=1)


def test_overlap_details_give_iou_and_both_containments(tmp_path):
    # A is 8×8 = 64 px; B (4×8 = 32 px) lies inside A's right half
    finding, = _overlaps(tmp_path, [ann(1, square(2, 2, 10, 10)), ann(2, square(6, 2, 10, 10), category_id=2)])
    assert finding.code == "instance-overlap" and finding.severity == "warning"
    assert finding.details["intersection"] == 32 and finding.details["other_annotation_id"] == 2
    assert finding.details["iou"] == pytest.approx(0.5)
    assert (finding.details["containment"], finding.details["other_containment"]) == (0.5, 1.0)


@pytest.mark.parametrize(("mode", "same_class", "expected"), [
    pytest.param("instance", False, ["warning"], id="instance-cross-class"),
    pytest.param("instance", True, ["warning"], id="instance-same-class"),
    pytest.param("panoptic", True, ["error"], id="panoptic-same-class"),
    pytest.param("panoptic", False, ["error"], id="panoptic-cross-class"),
    pytest.param("semantic", False, ["error"], id="semantic-cross-class"),
    pytest.param("semantic", True, [], id="semantic-same-class-paints-one-class"),
])
def test_overlap_mode_sets_severity(tmp_path, mode, same_class, expected):
    anns = [ann(1, square(2, 2, 10, 10)), ann(2, square(6, 2, 14, 10), category_id=1 if same_class else 2)]
    assert [f.severity for f in _overlaps(tmp_path, anns, mode)] == expected


def test_pixel_grid_edge_and_corner_sharing_is_not_overlap(tmp_path):
    anns = [ann(1, square(2, 2, 8, 8)), ann(2, square(8, 2, 14, 8)), ann(3, square(8, 8, 14, 14)),
            ann(4, square(2, 8, 8, 14))]
    assert _overlaps(tmp_path, anns) == []


def test_duplicate_replaces_overlap_for_the_pair(tmp_path):
    found = _overlaps(tmp_path, [ann(1, square(2, 2, 10, 10)), ann(2, square(2, 2, 10, 10)),
                                 ann(3, square(6, 2, 14, 10), category_id=2)])
    assert sorted((f.code, f.annotation_id, f.details["other_annotation_id"]) for f in found) == [
        ("instance-duplicate", 1, 2), ("instance-overlap", 1, 3), ("instance-overlap", 2, 3)]


def test_candidate_pairs_prefilter_keeps_every_touching_pair():
    rng = np.random.default_rng(0)
    boxes = np.c_[rng.integers(0, 50, (40, 2)), rng.integers(1, 15, (40, 2))].astype(float)
    expected = [[i, j] for i in range(40) for j in range(i + 1, 40)
                if min(boxes[i, 0] + boxes[i, 2], boxes[j, 0] + boxes[j, 2]) > max(boxes[i, 0], boxes[j, 0])
                and min(boxes[i, 1] + boxes[i, 3], boxes[j, 1] + boxes[j, 3]) > max(boxes[i, 1], boxes[j, 1])]
    assert candidate_pairs(boxes).tolist() == expected
