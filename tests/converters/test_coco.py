"""converters/coco.py: reading, writing, round trips, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segdata.converters import coco
from segdata.errors import FormatError, OutputExistsError


def conformance_coco_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if coco.sniff(p) and _is_dataset(p))


def _is_dataset(path: Path) -> bool:
    data = json.loads(path.read_bytes())
    return isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data


def assert_round_trip_exact(source: Path, tmp_path: Path) -> int:
    """read -> write as polygons -> read: every usable mask decodes to the identical pixels."""
    original = coco.read(source)
    coco.write(original, tmp_path / "out", mask_encoding="polygon", workers=1)
    again = coco.read(tmp_path / "out")
    written = {(a.split, a.id): a for a in again.annotations}
    checked = 0
    for ann in original.annotations:
        if ann.defect:
            assert (ann.split, ann.id) not in written or ann.defect == "annotation-id-duplicate"
            continue
        copy = written[(ann.split, ann.id)]
        assert copy.mask.face == "polygon" or ann.mask.area == 0
        assert np.array_equal(copy.mask.to_bitmap(), ann.mask.to_bitmap()), (source, ann.id)
        assert copy.iscrowd == ann.iscrowd and copy.category_id == ann.category_id
        checked += 1
    return checked


def test_every_conformance_coco_mask_survives_polygon_round_trip(conformance_dir, tmp_path):
    files = conformance_coco_files(conformance_dir)
    assert len(files) >= 30
    checked = sum(assert_round_trip_exact(f, tmp_path / str(i)) for i, f in enumerate(files))
    assert checked == 132  # every usable mask: polygons, compressed and uncompressed RLE, holes (COCO-Stuff)


@pytest.mark.parametrize("name", ["coco", "coco-dirty"])
def test_every_sample_mask_survives_polygon_round_trip(samples_dir, tmp_path, name):
    assert assert_round_trip_exact(samples_dir / name, tmp_path) > 100


def test_keep_writes_each_face_back_as_it_was(conformance_dir, tmp_path):
    source = conformance_dir / "cocodataset+cocoapi/PythonAPI/extra/samples/instances_val2017_1img-sample.json"
    coco.write(coco.read(source), tmp_path, workers=1, overwrite=True)
    before = {a["id"]: a["segmentation"] for a in json.loads(source.read_bytes())["annotations"]}
    after = {a["id"]: a["segmentation"] for a in
             json.loads((tmp_path / "annotations/instances_val2017_1img-sample.json").read_bytes())["annotations"]}
    assert before == after  # 15 polygons and one uncompressed crowd RLE, byte for byte


def test_stuff_rle_with_holes_reads_and_categories_keep_their_ids(conformance_dir):
    dataset = coco.read(conformance_dir / "cocodataset+cocoapi/annotations/stuff_examples.json")
    assert {a.mask.face for a in dataset.annotations} == {"rle"}
    assert 183 in dataset.categories and dataset.categories[183].name == "other"
    assert not dataset.findings


def test_crowd_area_defect_is_reported_when_recomputed(conformance_dir, tmp_path):
    """pycococreator's crowd annotation stores the background's area (31463) instead of 34073."""
    source = conformance_dir / "waspinator+pycococreator/example_data/annotations/coco_example.json"
    report = coco.write(coco.read(source), tmp_path, workers=1, overwrite=True)
    areas = [c.detail for c in report.changes if c.kind == "area-recomputed" and c.annotation_id == 3]
    assert areas == ["31463 -> 34073"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "instances_train.json"
    path.write_text(text)
    return path


IMAGE = '{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}'


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param('{"images": [' + IMAGE + '], "annotations": [', r"line 1 column \d+: invalid JSON",
                     id="truncated"),
        pytest.param('{"images": [], "annotations": {}}', "'annotations' must be a list", id="wrong-type"),
        pytest.param('{"images": [{"id": 1, "file_name": "a.jpg", "width": 4}], "annotations": []}',
                     "image 1: missing required key 'height'", id="missing-key"),
        pytest.param('{"images": [' + IMAGE + '], "annotations": [{"id": 7, "image_id": "1", '
                     '"category_id": 1}]}', "annotation 7: 'image_id' must be int, found str '1'",
                     id="id-as-string"),
        pytest.param('[1, 2]', "expected a JSON object, found list", id="not-an-object"),
    ],
)
def test_unreadable_file_raises_naming_file_and_record(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(FormatError, match=match) as caught:
        coco.read(path)
    assert str(caught.value).startswith(str(path))


def test_wrong_records_are_loaded_flagged_and_skipped_with_reason(tmp_path):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [3, 4], "counts": [5, 2]}},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 2]]},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, float("nan"), 2, 0]]},
        {"id": 4, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]]},
        {"id": 4, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 3]]},
        {"id": 5, "image_id": 9, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]]},
        {"id": 6, "image_id": 1, "category_id": 42, "segmentation": [[0, 0, 2, 0, 2, 2]]},
        {"id": 7, "image_id": 1, "category_id": 1, "segmentation": {"size": [5, 5], "counts": [25]}},
    ]
    document = {"images": [json.loads(IMAGE)], "annotations": anns, "categories": [{"id": 1, "name": "a"}]}
    path = _write(tmp_path, json.dumps(document).replace("NaN", "NaN"))
    dataset = coco.read(path)
    assert [a.defect for a in dataset.annotations] == [
        "rle-counts-invalid", "polygon-box-ambiguous", "coordinate-non-finite", None,
        "annotation-id-duplicate", "image-ref-unknown", "category-unknown", "rle-size-mismatch",
    ]
    assert len(dataset.findings) == 7 and all(f.path == str(path) for f in dataset.findings)
    report = coco.write(dataset, tmp_path / "out", workers=1)
    skipped = sorted((c.annotation_id, c.detail) for c in report.changes if c.kind == "skipped")
    assert len(skipped) == 7 and report.annotations_written == 1


def test_refuses_a_non_empty_destination_and_leaves_it_untouched(samples_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty; pass --overwrite"):
        coco.write(coco.read(samples_dir / "coco"), tmp_path, workers=1)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_writing_is_deterministic_and_parallel_equals_serial(samples_dir, tmp_path):
    dataset = coco.read(samples_dir / "coco")
    coco.write(dataset, tmp_path / "a", mask_encoding="polygon", workers=1)
    coco.write(dataset, tmp_path / "b", mask_encoding="polygon", workers=2)
    for a in sorted((tmp_path / "a/annotations").iterdir()):
        assert a.read_bytes() == (tmp_path / "b/annotations" / a.name).read_bytes()


def test_tolerance_reports_the_iou_of_every_simplified_mask(samples_dir, tmp_path):
    dataset = coco.read(samples_dir / "coco")
    report = coco.write(dataset, tmp_path, mask_encoding="polygon", tolerance=1.5, workers=1)
    simplified = [c for c in report.changes if c.kind == "simplified"]
    assert simplified and all(0.5 < c.iou <= 1.0 for c in simplified)


def test_splits_and_image_folders_are_found(samples_dir):
    dataset = coco.read(samples_dir / "coco")
    assert dataset.splits == ["train", "val", "test"]  # the order people read splits in
    assert all(image.path is not None and image.path.is_file() for image in dataset.images)
