"""converters/instance_png.py: round trips, the value table, wide id spaces and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata import converters
from segdata import png
from segdata.compose import ids_to_rgb
from segdata.converters import coco, coco_panoptic, instance_png
from segdata.errors import FormatError
from segdata.jsonstream import Unscannable
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from tests.cases import MASKS
from tests.conftest import run_segdata
from tests.converters.stored_checks import assert_equals_eager, read_alike_on_two_processes
from tests.converters.test_coco_panoptic import non_overlapping


@pytest.fixture(scope="module")
def sample(samples_dir) -> Dataset:
    return converters.read(samples_dir / "coco")


@pytest.fixture(scope="module")
def written(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("instance_png") / "out"
    return out, instance_png.write(sample, out, workers=1)


def _copy(written: tuple, tmp_path: Path) -> Path:
    shutil.copytree(written[0], tmp_path / "src")
    return tmp_path / "src"


def _table(root: Path) -> dict:
    return json.loads((root / "instances.json").read_bytes())


def _save_table(root: Path, table: dict) -> None:
    (root / "instances.json").write_text(json.dumps(table))


# round trips --------------------------------------------------------------------------------------


def test_sample_round_trip_keeps_ids_masks_categories_and_crowd(sample, written):
    out, report = written
    assert (report.images_written, report.annotations_written) == (60, 277)
    assert report.counts() == {"overlap-cut": 102}
    again = instance_png.read(out)
    assert again.source_format == "instance-png" and again.findings == []
    assert again.splits == ["train", "val", "test"] and len(again.categories) == 8
    copies = {(a.split, a.image_id, a.id): a for a in again.annotations}
    assert set(copies) == {(a.split, a.image_id, a.id) for a in sample.annotations}
    checked = non_overlapping(sample, crowd=True)
    assert len(checked) == 77 and sum(a.iscrowd for a in checked) == 3  # 74 instances and the 3 crowd regions
    for ann in checked:
        copy = copies[(ann.split, ann.image_id, ann.id)]
        assert np.array_equal(copy.mask.to_bitmap(), ann.mask.to_bitmap()), ann.id
        assert (copy.category_id, copy.iscrowd) == (ann.category_id, ann.iscrowd)
    crowd = [a for a in sample.annotations if a.iscrowd]
    assert len(crowd) == 3 and all(copies[(a.split, a.image_id, a.id)].iscrowd for a in crowd)
    for ann in sample.annotations:  # every mask written is the visible part of its source
        copy = copies[(ann.split, ann.image_id, ann.id)]
        assert not (copy.mask.to_bitmap() & ~ann.mask.to_bitmap()).any()


def test_coco_to_instance_png_to_coco_keeps_every_non_overlapping_mask(sample, written, tmp_path):
    coco.write(instance_png.read(written[0]), tmp_path / "coco", workers=1)
    again = {(a.split, a.id): a for a in coco.read(tmp_path / "coco").annotations}
    for ann in non_overlapping(sample, crowd=True):
        assert np.array_equal(again[(ann.split, ann.id)].mask.to_bitmap(), ann.mask.to_bitmap())


def test_instance_png_and_panoptic_agree_pixel_for_pixel(written, tmp_path):
    dataset = instance_png.read(written[0])
    coco_panoptic.write(dataset, tmp_path / "pan", workers=1)
    panoptic = {(a.split, a.id): a for a in coco_panoptic.read(tmp_path / "pan").annotations}
    for ann in dataset.annotations:
        assert np.array_equal(panoptic[(ann.split, ann.id)].mask.to_bitmap(), ann.mask.to_bitmap())


@pytest.mark.parametrize("bitmap", [m for m in MASKS if m.id != "empty"])
def test_every_mask_of_the_zoo_survives(tmp_path, bitmap):
    height, width = bitmap.shape
    image = ImageRecord(3, "z.png", width, height, split="val")
    ann = Annotation(12, 3, 5, Mask.from_bitmap(bitmap), split="val")
    dataset = Dataset({5: Category(5, "z")}, [image], [ann])
    instance_png.write(dataset, tmp_path / "out", workers=1)
    (copy,) = instance_png.read(tmp_path / "out").annotations
    assert (copy.id, copy.category_id, copy.split) == (12, 5, "val")
    assert np.array_equal(copy.mask.to_bitmap(), bitmap)


def test_an_empty_mask_is_reported_not_dropped_silently(tmp_path):
    image = ImageRecord(1, "e.jpg", 3, 2)
    empty = Annotation(4, 1, 1, Mask.from_bitmap(np.zeros((2, 3))))
    dataset = Dataset({1: Category(1, "x")}, [image], [empty])
    report = instance_png.write(dataset, tmp_path / "out", workers=1)
    assert [(c.kind, c.annotation_id, c.detail) for c in report.changes] == [
        ("skipped", 4, "mask-empty")]


def test_layout_keeps_dots_and_writes_16_bit_maps(tmp_path):
    image = ImageRecord(1, "sub/a.b.jpg", 4, 1, split="train")
    masks = [np.array([[1, 0, 0, 0]]), np.array([[0, 1, 1, 0]])]
    anns = [Annotation(70000, 1, 2, Mask.from_bitmap(m), split="train") for m in masks[:1]]
    anns.append(Annotation(9, 1, 2, Mask.from_bitmap(masks[1]), iscrowd=True, split="train"))
    instance_png.write(Dataset({2: Category(2, "c")}, [image], anns), tmp_path / "out", workers=1)
    table = _table(tmp_path / "out")
    assert list(table) == ["format", "version", "categories", "maps"]
    (entry,) = table["maps"]
    assert (entry["map"], entry["encoding"]) == ("train/sub/a.b.png", "gray16")
    assert entry["instances"] == [{"value": 1, "id": 70000, "category_id": 2, "iscrowd": 0},
                                  {"value": 2, "id": 9, "category_id": 2, "iscrowd": 1}]
    with Image.open(tmp_path / "out/train/sub/a.b.png") as png:
        assert png.mode.startswith("I;16") and np.asarray(png).tolist() == [[1, 2, 2, 0]]
    assert instance_png.sniff(tmp_path / "out") and instance_png.sniff(tmp_path / "out/instances.json")


def test_more_instances_than_16_bits_hold_are_written_as_rgb(tmp_path, monkeypatch):
    monkeypatch.setattr(instance_png, "_MAX_GRAY", 1)  # 65536 real instances would take seconds
    image = ImageRecord(1, "a.jpg", 3, 1)
    anns = [Annotation(i, 1, 1, Mask.from_bitmap(np.eye(1, 3, i - 1, dtype=bool))) for i in (1, 2, 3)]
    instance_png.write(Dataset({1: Category(1, "x")}, [image], anns), tmp_path / "out", workers=1)
    assert _table(tmp_path / "out")["maps"][0]["encoding"] == "rgb24"
    with Image.open(tmp_path / "out/a.png") as png:
        assert png.mode == "RGB"
    again = instance_png.read(tmp_path / "out")
    assert [(a.id, a.mask.to_bitmap().tolist()) for a in again.annotations] == [
        (1, [[True, False, False]]), (2, [[False, True, False]]), (3, [[False, False, True]])]


@pytest.mark.parametrize(("encoding", "values"), [
    pytest.param("gray16", [40000, 65535], id="16-bit-not-truncated"),
    pytest.param("rgb24", [65536, 16_777_215], id="24-bit-rgb"),
])
def test_wide_values_are_read_whole(tmp_path, encoding, values):
    ids = np.array([[values[0], values[1], 0]], np.uint32)
    data = png.encode(ids.astype(np.uint16)) if encoding == "gray16" else png.encode(ids_to_rgb(ids))
    (tmp_path / "m.png").write_bytes(data)
    _save_table(tmp_path, {"format": "segdata-instance-png", "version": 1,
                           "categories": [{"id": 1, "name": "x"}],
                           "maps": [{"id": 1, "file_name": "m.jpg", "width": 3, "height": 1, "map": "m.png",
                                     "encoding": encoding, "instances": [
                                         {"value": values[0], "id": 1, "category_id": 1, "iscrowd": 0},
                                         {"value": values[1], "id": 2, "category_id": 1, "iscrowd": 0}]}]})
    dataset = instance_png.read(tmp_path)
    assert dataset.findings == []
    assert [a.mask.to_bitmap().tolist() for a in dataset.annotations] == [[[True, False, False]],
                                                                          [[False, True, False]]]


def test_sniff_claims_only_its_own_folders(samples_dir, written, conformance_dir):
    assert converters.sniff(written[0]) == "instance-png"
    assert not instance_png.sniff(samples_dir / "coco")
    assert not coco.sniff(written[0]) and not coco_panoptic.sniff(written[0])
    panoptic = conformance_dir / "openvinotoolkit+datumaro/tests/assets/coco_dataset/coco_panoptic"
    assert not instance_png.sniff(panoptic)


# bad input ----------------------------------------------------------------------------------------


def test_missing_table_says_which_file_was_expected(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(FormatError, match=r"instances\.json: no instances\.json here: an instance-png "
                                          r"dataset needs ROOT/instances\.json"):
        instance_png.read(tmp_path)


def test_a_table_of_another_format_is_refused(samples_dir, tmp_path):
    shutil.copy(samples_dir / "coco/annotations/instances_val.json", tmp_path / "instances.json")
    with pytest.raises(FormatError, match=r"instances\.json: expected a table with \"format\": "
                                          r"\"segdata-instance-png\", found None"):
        instance_png.read(tmp_path)


def test_a_value_the_table_does_not_list_is_a_finding(written, tmp_path):
    root = _copy(written, tmp_path)
    table = _table(root)
    entry = table["maps"][0]
    dropped = entry["instances"].pop(0)
    _save_table(root, table)
    dataset = instance_png.read(root)
    (finding,) = dataset.findings
    assert (finding.code, finding.split) == ("instance-value-unlisted", "train")
    assert finding.image_id == entry["id"]
    assert finding.details["value"] == dropped["value"] and finding.details["pixels"] > 0
    assert f"value {dropped['value']} (" in finding.message


def test_map_size_mismatch_is_a_finding_and_its_instances_are_skipped(written, tmp_path):
    root = _copy(written, tmp_path)
    table = _table(root)
    entry = table["maps"][0]
    entry["width"] += 1
    _save_table(root, table)
    dataset = instance_png.read(root)
    assert [(f.code, f.image_id) for f in dataset.findings] == [("instance-map-size-mismatch", entry["id"])]
    defects = {a.defect for a in dataset.annotations if a.split == "train" and a.image_id == entry["id"]}
    assert defects == {"instance-map-size-mismatch"}
    report = instance_png.write(dataset, tmp_path / "out", workers=1)
    assert report.counts()["skipped"] == len(entry["instances"])


@pytest.mark.parametrize(("edit", "code"), [
    pytest.param(lambda e: e["instances"][0].update(category_id=99), "category-unknown",
                 id="unknown-category"),
    pytest.param(lambda e: e["instances"].append({"value": 999, "id": 5000, "category_id": 1, "iscrowd": 0}),
                 "mask-empty", id="listed-value-absent"),
    pytest.param(lambda e: e["instances"].append({**e["instances"][0], "id": 5000}), "instance-value-invalid",
                 id="value-twice"),
    pytest.param(lambda e: e["instances"][1].update(id=e["instances"][0]["id"]), "annotation-id-duplicate",
                 id="id-twice"),
    pytest.param(lambda e: e.update(map="train/nowhere.png"), "instance-map-missing", id="map-missing"),
])
def test_wrong_records_are_loaded_flagged_and_skipped(written, tmp_path, edit, code):
    root = _copy(written, tmp_path)
    table = _table(root)
    edit(table["maps"][0])
    _save_table(root, table)
    dataset = instance_png.read(root)
    assert [f.code for f in dataset.findings if f.severity == "error"] == [code]
    flagged = [a for a in dataset.annotations if a.defect == code]
    report = instance_png.write(dataset, tmp_path / "out", workers=1)
    skipped = {c.annotation_id for c in report.changes if c.kind == "skipped"}
    assert {a.id for a in flagged} <= skipped or code == "instance-map-missing"


# the CLI, end to end ------------------------------------------------------------------------------


def test_a_broken_table_is_one_error_naming_the_file(written, tmp_path):
    root = _copy(written, tmp_path)
    (root / "instances.json").write_text('{"format": "segdata-instance-png", "maps": [')
    with pytest.raises(FormatError, match=r"instances\.json: line 1 column \d+: invalid JSON"):
        instance_png.read(root)


def test_cli_converts_to_instance_png(conformance_dir, tmp_path):
    # one subprocess: `info` and the exit-2 path are run end to end in test_coco_panoptic.py
    source = conformance_dir / "openvinotoolkit+datumaro/tests/assets/coco_dataset/coco_instances"
    done = run_segdata("convert", source, tmp_path / "ip", "--to", "instance-png", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "wrote 2 images and 2 annotations as instance-png" in done.stdout
    dataset = converters.read(tmp_path / "ip")
    assert dataset.source_format == "instance-png" and len(dataset.annotations) == 2


# columns kept, masks cut again where an image is worked on ---------------------------------------------


def _read_whole(root: Path, monkeypatch) -> Dataset:
    """The table parsed whole and every map cut at read time, as the reader did before it kept columns."""
    with monkeypatch.context() as patch:
        patch.setattr(instance_png, "read_array_items", _unscannable)
        return instance_png.read(root)


def _unscannable(*args):
    raise Unscannable("parse whole")


def _assert_stored_equals_whole(root: Path, monkeypatch) -> Dataset:
    stored, whole = instance_png.read(root), _read_whole(root, monkeypatch)
    assert isinstance(whole.annotations, list)
    assert_equals_eager(stored, whole.annotations)
    assert [repr(i) for i in stored.images] == [repr(i) for i in whole.images]
    assert stored.findings == whole.findings
    return stored


def test_the_sample_and_a_written_table_keep_columns_and_give_the_masks_cut_at_once(samples_dir, written,
                                                                                   monkeypatch):
    assert len(_assert_stored_equals_whole(samples_dir / "instance-png", monkeypatch).annotations) == 277
    stored = _assert_stored_equals_whole(written[0], monkeypatch)
    assert stored.splits == ["train", "val", "test"] and stored.findings == []


@pytest.mark.parametrize(("source", "annotations"), [
    pytest.param("cocodataset+cocoapi/PythonAPI/extra/samples/instances_val2017_1img-sample.json", 16,
                 id="cocoapi-1img"),
    pytest.param("openvinotoolkit+datumaro/tests/assets/coco_dataset/coco_instances", 2, id="datumaro"),
])
def test_conformance_sets_written_as_instance_png_read_the_same_from_columns(conformance_dir, tmp_path,
                                                                           monkeypatch, source, annotations):
    report = instance_png.write(converters.read(conformance_dir / source), tmp_path / "ip", workers=1)
    stored = _assert_stored_equals_whole(tmp_path / "ip", monkeypatch)
    assert len(stored.annotations) == report.annotations_written == annotations


def _every_wrong_record(written: tuple, tmp_path: Path) -> tuple[Path, dict, dict]:
    """A copy of the written sample with every kind of wrong record; its first and second map entries."""
    root = _copy(written, tmp_path)
    table = _table(root)
    first, second, third, fourth = table["maps"][:4]
    first["instances"][0].update(category_id=99)
    first["instances"].append({**first["instances"][1], "id": 5000, "note": "kept"})  # value twice
    first["instances"].append({"value": 0, "id": 5001, "category_id": 1})
    first["instances"].append({"value": 999, "id": 5002, "category_id": 1, "iscrowd": 1})  # absent
    second["instances"][2].update(id=second["instances"][1]["id"])
    second["instances"].pop(0)  # its value is in the map, unlisted
    third.update(map="train/nowhere.png")
    fourth["width"] += 1
    table["maps"].insert(0, {**table["maps"][-1], "split": ""})  # no split: read first
    table["maps"].append({**second})  # the same image id again
    _save_table(root, table)
    return root, first, second


def test_every_wrong_record_reads_the_same_from_columns(written, tmp_path, monkeypatch):
    root, first, second = _every_wrong_record(written, tmp_path)
    stored = _assert_stored_equals_whole(root, monkeypatch)
    assert [(f.code, f.image_id, f.annotation_id) for f in stored.findings] == [
        ("category-unknown", 1, 1), ("instance-value-invalid", 1, 5000), ("instance-value-invalid", 1, 5001),
        ("mask-empty", 1, 5002), ("annotation-id-duplicate", 2, second["instances"][0]["id"]),
        ("instance-value-unlisted", 2, None), ("instance-map-missing", 3, None),
        ("instance-map-size-mismatch", 4, None), ("image-id-duplicate", 2, None),
        *[("annotation-id-duplicate", 2, inst["id"]) for inst in second["instances"]]]
    assert stored.splits == ["", "train", "val", "test"]
    masks = {a.id: a.mask for a in stored.annotations if a.split == "train" and a.image_id == first["id"]}
    assert masks[5000] is None and masks[5001] is None and masks[5002].area == 0


def test_maps_read_on_two_processes_give_the_one_process_read(written, tmp_path, monkeypatch):
    root, _first, _second = _every_wrong_record(written, tmp_path)
    (root / _table(root)["maps"][10]["map"]).write_bytes(b"not a png")
    one, pids = read_alike_on_two_processes(lambda: instance_png.read(root), instance_png, "_map_facts",
                                            monkeypatch, tmp_path)
    assert {f.code for f in one.findings} == {
        "category-unknown", "instance-value-invalid", "mask-empty", "annotation-id-duplicate",
        "instance-value-unlisted", "instance-map-missing", "instance-map-size-mismatch", "image-id-duplicate"}
    assert len(pids) == len(one.images)  # a call per entry (a repeated image id's reads no map)


def test_a_table_changed_after_reading_is_an_error_naming_it(written, tmp_path):
    root = _copy(written, tmp_path)
    dataset = instance_png.read(root)
    table = _table(root)
    table["maps"][0]["instances"].pop()
    _save_table(root, table)
    with pytest.raises(FormatError, match=r"instances\.json: the table changed since it was read: the map "
                                          r"entry at bytes \d+–\d+ no longer lists \d+ instances"):
        list(dataset.annotations)
