"""Repairs: each fixes its finding, lists the pixels it moved, and leaves everything else alone."""

from __future__ import annotations

import copy

import numpy as np

from segdata.validators import validate
from segdata.validators.repair import repair
from tests.validators.coco_files import SIZE, ann, document, read, square

NO_FILES = ["file-missing"]
PENTAGRAM = [[10, 1, 15.3, 17.3, 1.4, 7.2, 18.6, 7.2, 4.7, 17.3]]  # even-odd leaves the centre empty


def _repaired(dataset):
    findings = validate(dataset, skip=NO_FILES, workers=1)
    return repair(dataset, findings)


def _snapshot(dataset):
    return [(a.id, a.mask.rle["counts"] if a.mask else None, copy.deepcopy(a.attributes))
            for a in dataset.annotations]


def test_repair_recomputes_bbox_and_area_only_where_flagged(tmp_path):
    dataset = read(tmp_path, document([ann(1, square(2, 2, 12, 12), area=150, bbox=[5, 2, 10, 10]),
                                       ann(2, square(14, 14, 18, 18))]))
    before = _snapshot(dataset)
    new, changes = _repaired(dataset)
    assert _snapshot(dataset) == before  # the input is never modified
    assert sorted((c.kind, c.annotation_id, c.pixels_moved) for c in changes) == [
        ("area-recomputed", 1, 0), ("bbox-recomputed", 1, 0)]
    assert new.annotations[0].attributes["area"] == 100 and new.annotations[0].attributes["bbox"] == [2, 2, 10, 10]
    kept, original = new.annotations[1], dataset.annotations[1]  # the untouched one is kept as it was
    assert (kept.attributes, kept.mask.rle) == (original.attributes, original.mask.rle)
    assert validate(new, skip=NO_FILES, workers=1) == []


def test_crossing_ring_is_made_valid_and_the_moved_pixels_counted(tmp_path):
    dataset = read(tmp_path, document([ann(1, PENTAGRAM)]))
    old = dataset.annotations[0].mask
    new, changes = _repaired(dataset)
    fixed = new.annotations[0].mask
    made_valid, = [c for c in changes if c.kind == "polygon-made-valid"]
    centre = old.to_bitmap()[9, 10], fixed.to_bitmap()[9, 10]
    assert centre == (False, True)  # structure fills what the ring encloses; even-odd left a hole
    assert made_valid.pixels_moved == int((old.to_bitmap() ^ fixed.to_bitmap()).sum())
    assert made_valid.pixels_moved >= fixed.area - old.area > 0
    assert fixed.face == "polygon"
    assert new.annotations[0].attributes["area"] == fixed.area
    assert [f.code for f in validate(new, skip=NO_FILES, workers=1)] == []


def test_out_of_bounds_polygon_is_clipped_without_moving_a_pixel(tmp_path):
    dataset = read(tmp_path, document([ann(1, square(10, 10, SIZE + 3, SIZE + 0.5))]))
    new, changes = _repaired(dataset)
    assert [(c.kind, c.pixels_moved) for c in changes] == [("polygon-clipped", 0)]
    assert np.array_equal(new.annotations[0].mask.to_bitmap(), dataset.annotations[0].mask.to_bitmap())
    assert validate(new, skip=NO_FILES, workers=1) == []


def test_empty_masks_and_exact_duplicates_are_dropped_but_near_duplicates_kept(tmp_path):
    empty = {"size": [SIZE, SIZE], "counts": [SIZE * SIZE]}
    dataset = read(tmp_path, document([ann(1, square(2, 2, 10, 10)), ann(2, square(2, 2, 10, 10)),
                                       ann(3, square(0, 0, SIZE, SIZE)), ann(4, square(0, 0, SIZE, SIZE - 1)),  # IoU 0.95
                                       ann(5, empty)]))
    findings = validate(dataset, skip=NO_FILES, workers=1)
    assert {(f.annotation_id, f.details["other_annotation_id"]) for f in findings
            if f.code == "instance-duplicate"} == {(1, 2), (3, 4)}
    new, changes = repair(dataset, findings)
    assert sorted((c.kind, c.annotation_id, c.pixels_moved) for c in changes) == [
        ("dropped-duplicate", 2, 64), ("dropped-empty", 5, 0)]
    assert [a.id for a in new.annotations] == [1, 3, 4]
    assert [a.id for a in dataset.annotations] == [1, 2, 3, 4, 5]
