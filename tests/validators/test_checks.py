"""Every finding code: a minimal real COCO file that triggers it, and a near miss that does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segdata.masks import Mask, bitmap_to_polygons
from segdata.packed import PackedList
from segdata.validators import CODES, validate
from segdata.validators.formats import CODES as FORMAT_CODES
from tests.validators.coco_files import SIZE, ann, document, read, square

NO_FILES = ("file-missing",)  # these documents have no image files


def _keyhole_ring() -> list[list[float]]:
    bitmap = np.zeros((SIZE, SIZE), bool)
    bitmap[2:12, 2:12] = True
    bitmap[5:8, 5:8] = False
    return bitmap_to_polygons(bitmap)


def _diagonal_touch() -> list[list[float]]:
    bitmap = np.zeros((SIZE, SIZE), bool)
    bitmap[2:5, 2:5] = True
    bitmap[5:8, 5:8] = True
    return bitmap_to_polygons(bitmap)


def _rle(on: int, *, size=(SIZE, SIZE), total=None) -> dict:
    total = size[0] * size[1] if total is None else total
    return {"size": list(size), "counts": [0, on, total - on] if on else [total]}


def _compressed(on: int) -> dict:
    bitmap = np.zeros((SIZE, SIZE), bool)
    bitmap.flat[:on] = True
    rle = Mask.from_bitmap(bitmap).rle
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _two(second: dict, *, first=None) -> list[dict]:
    return [first or ann(1, square(2, 2, 10, 10)), second]


# (code, document that triggers it, near miss that must not); ids name the near miss
CASES = [
    pytest.param("image-id-duplicate",
                 document(images=[{"id": 1, "file_name": "a.png", "width": SIZE, "height": SIZE}] * 2),
                 document(images=[{"id": i, "file_name": f"{i}.png", "width": SIZE, "height": SIZE}
                                  for i in (1, 2)]),
                 id="image-id-duplicate/distinct-ids"),
    pytest.param("annotation-id-duplicate", document(_two(ann(1, square(12, 12, 18, 18)))),
                 document(_two(ann(2, square(12, 12, 18, 18)))), id="annotation-id-duplicate/distinct-ids"),
    pytest.param("image-ref-unknown", document([ann(1, square(2, 2, 9, 9), image_id=9)]),
                 document([ann(1, square(2, 2, 9, 9), image_id=1)]), id="image-ref-unknown/known-image"),
    pytest.param("category-unknown", document([ann(1, square(2, 2, 9, 9), category_id=7)]),
                 document([ann(1, square(2, 2, 9, 9), category_id=1)]), id="category-unknown/known"),
    pytest.param("category-unused",
                 document(categories=[{"id": 1, "name": "thing"}, {"id": 2, "name": "spare"}]),
                 document(_two(ann(2, square(12, 12, 18, 18), category_id=2)),
                          categories=[{"id": 1, "name": "thing"}, {"id": 2, "name": "spare"}]),
                 id="category-unused/both-used"),
    pytest.param("polygon-too-few-points", document([ann(1, [[1, 1]])]),
                 document([ann(1, [[0, 0, 10, 0, 0, 10]])]), id="polygon-too-few-points/triangle"),
    pytest.param("polygon-odd-coordinates", document([ann(1, [[0, 0, 10, 0, 10, 10, 0]])]),
                 document([ann(1, [[0, 0, 10, 0, 10, 10, 0, 10]])]), id="polygon-odd-coordinates/even"),
    pytest.param("polygon-box-ambiguous", document([ann(1, [[0, 0, 5, 5]])]),
                 document([ann(1, [[0, 0, 5, 0, 5, 5]])]), id="polygon-box-ambiguous/six-numbers"),
    pytest.param("polygon-self-intersection", document([ann(1, [[2, 2, 12, 12, 12, 2, 2, 12]])]),
                 document([ann(1, _keyhole_ring())]), id="polygon-self-intersection/keyhole-touch"),
    pytest.param("polygon-self-intersection", document([ann(1, [[2, 2, 12, 12, 12, 2, 2, 12]])]),
                 document([ann(1, _diagonal_touch())]), id="polygon-self-intersection/corner-touch"),
    pytest.param("coordinate-non-finite", document([ann(1, [[0, 0, 10, 0, 10, math.nan, 0, 10]])]),
                 document([ann(1, [[0, 0, 10, 0, 10, 10, 0, 10]])]), id="coordinate-non-finite/finite"),
    pytest.param("coordinate-out-of-bounds", document([ann(1, square(10, 10, SIZE + 0.5, SIZE))]),
                 document([ann(1, square(10, 10, SIZE, SIZE))]), id="coordinate-out-of-bounds/border-touch"),
    pytest.param("coordinate-out-of-bounds", document([ann(1, square(-1, 0, 5, 5))]),
                 document([ann(1, square(0, 0, 5, 5))]), id="coordinate-out-of-bounds/origin-touch"),
    pytest.param("mask-empty", document([ann(1, _rle(0))]), document([ann(1, _rle(1))]),
                 id="mask-empty/one-pixel"),
    pytest.param("mask-empty", document([ann(1, [])]), document([ann(1, square(0, 0, 1, 1))]),
                 id="mask-empty/no-segmentation"),
    pytest.param("mask-tiny", document([ann(1, _rle(3))]), document([ann(1, _rle(4))]),
                 id="mask-tiny/min-area"),
    pytest.param("rle-size-mismatch", document([ann(1, _rle(5, size=(10, 10)))]),
                 document([ann(1, _rle(5))]), id="rle-size-mismatch/same-size"),
    pytest.param("rle-counts-invalid", document([ann(1, _rle(5, total=SIZE * SIZE - 1))]),
                 document([ann(1, _rle(5))]), id="rle-counts-invalid/sums-to-size"),
    pytest.param("bbox-mismatch", document([ann(1, square(2, 2, 12, 12), bbox=[5, 2, 10, 10])]),
                 document([ann(1, square(2.3, 2.3, 11.6, 11.6), bbox=[2.3, 2.3, 9.3, 9.3])]),
                 id="bbox-mismatch/vertex-extent"),
    pytest.param("bbox-mismatch", document([ann(1, _rle(2), bbox=[0, 0, 1, 1])]),
                 document([ann(1, _rle(2), bbox=[0, 0, 1, 2])]), id="bbox-mismatch/rle-pixel-box"),
    pytest.param("area-mismatch", document([ann(1, square(2, 2, 12, 12), area=150)]),
                 document([ann(1, square(2.3, 2.3, 11.6, 11.6), area=9.3 * 9.3)]),
                 id="area-mismatch/shoelace-area"),
    pytest.param("area-mismatch", document([ann(1, _rle(50), area=60)]), document([ann(1, _rle(50), area=50)]),
                 id="area-mismatch/rle-pixel-area"),
    pytest.param("crowd-encoding", document([ann(1, square(2, 2, 12, 12), iscrowd=1)]),
                 document([ann(1, _rle(50), iscrowd=1)]), id="crowd-encoding/crowd-rle"),
    pytest.param("crowd-encoding", document([ann(1, _rle(50), iscrowd=0)]),
                 document([ann(1, _compressed(50), iscrowd=0)]),
                 id="crowd-encoding/compressed-rle-instance"),
    pytest.param("instance-overlap", document(_two(ann(2, square(5, 2, 15, 10)))),
                 document(_two(ann(2, square(10, 2, 18, 10)))), id="instance-overlap/shared-edge"),
    pytest.param("instance-overlap", document(_two(ann(2, square(5, 2, 15, 10)))),
                 document(_two(ann(2, square(5, 2, 15, 10), iscrowd=1))), id="instance-overlap/crowd"),
    pytest.param("instance-duplicate", document(_two(ann(2, square(2, 2, 10, 10)))),
                 document(_two(ann(2, square(2, 2, 10, 10), category_id=2)),
                          categories=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]),
                 id="instance-duplicate/other-class"),
]


@pytest.mark.parametrize(("code", "bad", "near_miss"), CASES)
def test_code_is_found_and_near_miss_is_not(tmp_path, code, bad, near_miss):
    (tmp_path / "bad").mkdir()
    (tmp_path / "ok").mkdir()
    found = validate(read(tmp_path / "bad", bad), skip=NO_FILES, workers=1)
    assert code in {f.code for f in found}, [f.message for f in found]
    spared = validate(read(tmp_path / "ok", near_miss), skip=NO_FILES, workers=1)
    assert code not in {f.code for f in spared}, [f.message for f in spared if f.code == code]


def test_every_registered_code_has_a_case():
    file_codes = {"file-missing", "file-unreadable", "image-size-mismatch"}  # tests/validators/test_files.py
    format_codes = set(FORMAT_CODES)  # found by the readers: tests/validators/test_formats.py
    assert {p.values[0] for p in CASES} | file_codes | format_codes == set(CODES)


def test_messages_locate_the_defect(tmp_path):
    finding, = validate(read(tmp_path, document([ann(7, [[2, 2, 12, 12, 12, 2, 2, 12]])])),
                        only=["polygon-self-intersection"], workers=1)
    assert (finding.split, finding.image_id, finding.annotation_id) == ("train", 1, 7)
    assert finding.details["location_xy"] == [7.0, 7.0] and "(7, 7)" in finding.message
    assert finding.message.startswith("train image 1, annotation 7: polygon 0 crosses itself")


def test_reader_findings_are_surfaced_once_with_registry_severity(tmp_path):
    dataset = read(tmp_path, document([ann(1, [[0, 0, 5, 5]]), ann(1, square(2, 2, 9, 9))]))
    codes = [f.code for f in validate(dataset, skip=NO_FILES, workers=1)]
    assert codes.count("polygon-box-ambiguous") == 1 and codes.count("annotation-id-duplicate") == 1


def test_mask_tiny_threshold_is_configurable(tmp_path):
    dataset = read(tmp_path, document([ann(1, _rle(3))]))
    assert [f.code for f in validate(dataset, only=["mask-tiny"], min_area=4, workers=1)] == ["mask-tiny"]
    assert validate(dataset, only=["mask-tiny"], min_area=3, workers=1) == []


def test_workers_give_the_same_findings(tmp_path):
    doc = document([ann(1, square(2, 2, 10, 10)), ann(2, square(5, 2, 15, 10), area=1),
                    ann(3, [[2, 2, 12, 12, 12, 2, 2, 12]])])
    dataset = read(tmp_path, doc)
    assert validate(dataset, skip=NO_FILES, workers=2) == validate(dataset, skip=NO_FILES, workers=1)


def test_per_image_checks_share_one_pass_and_report_in_registry_order(tmp_path, monkeypatch):
    doc = document([ann(1, square(2, 2, 10, 10), area=1), ann(2, square(5, 2, 15, 10)),
                    ann(3, [[2, 12, 12, 18, 12, 12, 2, 18]])])
    dataset = read(tmp_path, doc)
    passes = []
    image_items = type(dataset).image_items
    monkeypatch.setattr(type(dataset), "image_items", lambda self: passes.append(1) or image_items(self))
    found = validate(dataset, skip=NO_FILES, workers=1)
    assert passes == [1]  # each image's annotations read and decoded once for geometry, consistency, overlap
    assert [(f.code, f.annotation_id) for f in found] == [  # consistency, geometry, overlap
        ("area-mismatch", 1), ("polygon-self-intersection", 3), ("instance-overlap", 1)]


def test_packed_findings_are_the_listed_ones_whatever_the_selection(tmp_path):
    doc = document([ann(1, square(2, 2, 10, 10), area=1, bbox=[0, 0, 1, 1]), ann(2, square(5, 2, 15, 10)),
                    ann(3, [[2, 12, 12, 18, 12, 12, 2, 18]])])
    dataset = read(tmp_path, doc)
    for only, skip in ((None, NO_FILES), (["bbox-mismatch", "instance-overlap"], None)):
        listed = validate(dataset, only=only, skip=skip, workers=1)
        packed = validate(dataset, only=only, skip=skip, workers=2, collect=PackedList)  # packed in a helper
        assert isinstance(packed, PackedList) and list(packed) == listed
    # of the consistency check's findings, only the selected code
    assert [(f.code, f.annotation_id) for f in listed] == [("bbox-mismatch", 1), ("instance-overlap", 1)]
