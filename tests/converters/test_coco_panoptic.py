"""converters/coco_panoptic.py: conformance files, round trips, id handling and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata import converters, parallel
from segdata.compose import rgb_to_ids
from segdata.converters import coco, coco_panoptic
from segdata.errors import FormatError
from segdata.jsonstream import Unscannable
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord, annotation_values
from tests.conftest import run_segdata
from tests.converters.stored_checks import (FIELDS, assert_equals_eager, assert_same,
                                            read_alike_on_two_processes)

DATUMARO = "openvinotoolkit+datumaro/tests/assets/coco_dataset"
BDD = "bdd100k+bdd100k/tests/label/testcases/panseg_coco"


def codes(dataset: Dataset) -> list[tuple[str, str, int | None, int | None]]:
    return sorted((f.code, f.severity, f.image_id, f.annotation_id) for f in dataset.findings)


def non_overlapping(dataset: Dataset, *, crowd: bool) -> list[Annotation]:
    """Usable annotations that share no pixel with another annotation of their image."""
    kept = []
    for _image, anns in dataset.iter_images():
        bitmaps = [a.mask.to_bitmap() for a in anns]
        cover = np.sum(bitmaps, axis=0) if bitmaps else None
        kept += [a for a, b in zip(anns, bitmaps)
                 if (crowd or not a.iscrowd) and b.any() and cover[b].max() == 1]
    return kept


@pytest.fixture(scope="module")
def sample(samples_dir) -> Dataset:
    return converters.read(samples_dir / "coco")


@pytest.fixture(scope="module")
def written(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("panoptic") / "out"
    report = coco_panoptic.write(sample, out, workers=1)
    return out, report


# conformance --------------------------------------------------------------------------------------


def test_datumaro_panoptic_fixture_reads_with_its_size_mismatch_as_a_finding(conformance_dir):
    dataset = coco_panoptic.read(conformance_dir / DATUMARO / "coco_panoptic")
    assert dataset.source_format == "coco-panoptic" and dataset.splits == ["train", "val"]
    assert (len(dataset.images), len(dataset.annotations), len(dataset.categories)) == (2, 3, 2)
    assert [c.isthing for c in dataset.categories.values()] == [False, False]  # stuff stays stuff
    assert codes(dataset) == [("bbox-mismatch", "warning", 40, 7), ("bbox-mismatch", "warning", 40, 20),
                              ("panoptic-size-mismatch", "error", 5, None)]
    mismatch = next(f for f in dataset.findings if f.code == "panoptic-size-mismatch")
    assert mismatch.details == {"png": mismatch.path.replace("panoptic_train.json", "panoptic_train/a.png"),
                                "png_size": [5, 5], "image_size": [10, 5]}
    by_id = {(a.split, a.id): a for a in dataset.annotations}
    unusable = by_id[("train", 460551)]
    assert unusable.defect == "panoptic-size-mismatch" and unusable.mask is None
    val = [(a.id, a.mask.area, a.iscrowd, a.category_id) for a in dataset.annotations if a.split == "val"]
    assert val == [(7, 20, False, 1), (20, 20, True, 2)]
    assert [i.path.name for i in dataset.images] == ["a.jpg", "b.jpg"]  # found in images/<split>/


def test_datumaro_consistent_copy_has_only_its_off_by_one_bboxes(conformance_dir):
    # datumaro #226: its bboxes are one pixel short; the copy under coco/ is otherwise consistent
    folder = conformance_dir / DATUMARO / "coco" / "annotations"
    dataset = coco_panoptic.read(folder)
    assert (len(dataset.images), len(dataset.annotations), len(dataset.categories)) == (2, 3, 2)
    assert codes(dataset) == [("bbox-mismatch", "warning", 5, 7), ("bbox-mismatch", "warning", 40, 7),
                              ("bbox-mismatch", "warning", 40, 20)]
    assert all(a.defect is None and a.mask.area == 20 for a in dataset.annotations)


def test_datumaro_fixtures_are_sniffed_and_plain_coco_is_not_claimed(conformance_dir, samples_dir):
    assert converters.sniff(conformance_dir / DATUMARO / "coco_panoptic") == "coco-panoptic"
    assert not coco_panoptic.sniff(conformance_dir / DATUMARO / "coco_instances")
    assert not coco_panoptic.sniff(samples_dir / "coco")
    assert converters.sniff(samples_dir / "coco") == "coco"


def test_bdd100k_record_is_not_a_whole_file_but_reads_once_wrapped(conformance_dir, tmp_path):
    source = conformance_dir / BDD
    with pytest.raises(FormatError, match=r"panseg_coco\.json: missing required list 'images'"):
        coco_panoptic.read(source / "panseg_coco.json")
    # the same record inside a COCO panoptic document, PNG beside the JSON
    record = json.loads((source / "panseg_coco.json").read_bytes())
    shutil.copy(source / "panseg_mask.png", tmp_path / "panseg_mask.png")
    categories = sorted({s["category_id"] for s in record["segments_info"]})
    document = {"images": [{"id": 255, "file_name": "panseg_mask.jpg", "width": 1280, "height": 720}],
                "annotations": [record], "categories": [{"id": c, "name": f"c{c}"} for c in categories]}
    (tmp_path / "panoptic_val.json").write_text(json.dumps(document))
    dataset = coco_panoptic.read(tmp_path / "panoptic_val.json")
    assert (len(dataset.images), len(dataset.annotations), len(dataset.categories)) == (1, 14, 13)
    assert dataset.findings == []  # every stored area equals its pixel count; no bbox stored
    assert all(a.iscrowd is False and a.attributes["ignore"] == 0 for a in dataset.annotations)
    assert sum(a.mask.area for a in dataset.annotations) == 1280 * 720 - 1537  # the rest is VOID


def test_mapillary_panoptic_json_with_string_ids_is_refused_naming_the_record(conformance_dir):
    path = conformance_dir / "openvinotoolkit+datumaro/tests/assets/mapillary_vistas_dataset/val/v2.0"
    with pytest.raises(FormatError, match=r"panoptic_2020\.json: image index 0: 'id' must be int, found str"):
        coco_panoptic.read(path / "panoptic/panoptic_2020.json")


# writing and round trips ------------------------------------------------------------------------


def test_sample_round_trip_keeps_ids_masks_and_categories(sample, written):
    out, report = written
    assert (report.images_written, report.annotations_written) == (60, 277)
    assert report.counts() == {"overlap-cut": 102}
    again = coco_panoptic.read(out)
    assert again.findings == [] and again.splits == ["train", "val", "test"]
    copies = {(a.split, a.image_id, a.id): a for a in again.annotations}
    assert set(copies) == {(a.split, a.image_id, a.id) for a in sample.annotations}  # ids survive
    checked = non_overlapping(sample, crowd=False)
    assert len(checked) == 74  # of 277; the rest overlap another instance or a crowd region
    for ann in checked:
        copy = copies[(ann.split, ann.image_id, ann.id)]
        assert np.array_equal(copy.mask.to_bitmap(), ann.mask.to_bitmap()), ann.id
        assert (copy.category_id, copy.iscrowd) == (ann.category_id, ann.iscrowd)
    cut = {(c.split, c.image_id, c.annotation_id): c.iou for c in report.changes}
    for ann in sample.annotations:  # every other mask is the visible part of its source
        copy = copies[(ann.split, ann.image_id, ann.id)]
        assert copy.mask.area == round(cut.get((ann.split, ann.image_id, ann.id), 1.0) * ann.mask.area)
        assert not (copy.mask.to_bitmap() & ~ann.mask.to_bitmap()).any()


def test_png_ids_json_and_categories_follow_coco_panoptic(written):
    out, _ = written
    document = json.loads((out / "annotations/panoptic_val.json").read_bytes())
    assert list(document)[:3] == ["annotations", "categories", "images"]
    assert {c["isthing"] for c in document["categories"]} == {1}
    record = document["annotations"][0]
    with Image.open(out / "annotations/panoptic_val" / record["file_name"]) as png:
        ids = rgb_to_ids(np.asarray(png))
    for segment in record["segments_info"]:
        rows, cols = np.nonzero(ids == segment["id"])
        assert segment["area"] == len(rows)
        width, height = cols.max() - cols.min() + 1, rows.max() - rows.min() + 1
        assert segment["bbox"] == [cols.min(), rows.min(), width, height]
    assert set(np.unique(ids)) - {0} == {s["id"] for s in record["segments_info"]}


def test_coco_to_panoptic_to_coco_keeps_every_non_overlapping_mask(sample, written, tmp_path):
    out, _ = written
    coco.write(coco_panoptic.read(out), tmp_path / "coco", workers=1)
    again = {(a.split, a.id): a for a in coco.read(tmp_path / "coco").annotations}
    for ann in non_overlapping(sample, crowd=False):
        assert np.array_equal(again[(ann.split, ann.id)].mask.to_bitmap(), ann.mask.to_bitmap())


def test_writing_is_deterministic_and_parallel_equals_serial(sample, written, tmp_path):
    out, _ = written
    coco_panoptic.write(sample, tmp_path / "par", workers=2)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        assert (tmp_path / "par" / path.relative_to(out)).read_bytes() == path.read_bytes(), path


def _tiny(ids: list[int], file_name: str = "a.b.jpg", iscrowd=(False, False)) -> Dataset:
    image = ImageRecord(1, file_name, 4, 2, split="train")
    left = np.zeros((2, 4), bool)
    left[:, :2] = True
    anns = [Annotation(ids[0], 1, 1, Mask.from_bitmap(left), iscrowd[0], split="train"),
            Annotation(ids[1], 1, 2, Mask.from_bitmap(~left), iscrowd[1], split="train")]
    return Dataset({1: Category(1, "a"), 2: Category(2, "b", isthing=False)}, [image], anns)


@pytest.mark.parametrize(("ids", "segment_ids", "remapped"), [
    pytest.param([7, 3], [7, 3], 0, id="ids-kept"),
    pytest.param([5, 5], [1, 2], 1, id="duplicate"),
    pytest.param([0, 3], [1, 2], 1, id="zero-is-void"),
    pytest.param([3, 1 << 24], [1, 2], 1, id="above-2^24"),
])
def test_segment_ids_are_annotation_ids_when_they_can_be(tmp_path, ids, segment_ids, remapped):
    report = coco_panoptic.write(_tiny(ids), tmp_path / "out", workers=1)
    assert report.counts().get("ids-remapped", 0) == remapped
    document = json.loads((tmp_path / "out/annotations/panoptic_train.json").read_bytes())
    record = document["annotations"][0]
    assert record["file_name"] == "a.b.png"  # dots in the stem kept (pitfall 30)
    assert [s["id"] for s in record["segments_info"]] == segment_ids
    assert [c["isthing"] for c in document["categories"]] == [1, 0]
    with Image.open(tmp_path / "out/annotations/panoptic_train/a.b.png") as image:
        png = rgb_to_ids(np.asarray(image))
    assert png.tolist() == [[segment_ids[0]] * 2 + [segment_ids[1]] * 2] * 2


def test_crowd_flag_and_stuff_survive(tmp_path):
    coco_panoptic.write(_tiny([4, 9], iscrowd=(True, False)), tmp_path / "out", workers=1)
    again = coco_panoptic.read(tmp_path / "out")
    assert [(a.id, a.iscrowd, a.mask.area) for a in again.annotations] == [(4, True, 4), (9, False, 4)]
    assert [c.isthing for c in again.categories.values()] == [True, False]


def test_defective_records_are_skipped_and_reported(conformance_dir, tmp_path):
    dataset = coco_panoptic.read(conformance_dir / DATUMARO / "coco_panoptic")
    report = coco_panoptic.write(dataset, tmp_path / "out", workers=1)
    skipped = [(c.image_id, c.annotation_id, c.detail) for c in report.changes if c.kind == "skipped"]
    assert skipped == [(5, 460551, "panoptic-size-mismatch")]
    assert (report.images_written, report.annotations_written) == (2, 2)


# bad input ----------------------------------------------------------------------------------------


@pytest.fixture()
def broken(conformance_dir, tmp_path) -> Path:
    """A writable copy of Datumaro's consistent panoptic fixture."""
    root = tmp_path / "src"
    shutil.copytree(conformance_dir / DATUMARO / "coco_panoptic", root)
    consistent = conformance_dir / DATUMARO / "coco/annotations"  # its train PNG is 10×5, as the image
    shutil.copy(consistent / "panoptic_train/a.png", root / "annotations/panoptic_train/a.png")
    shutil.copy(consistent / "panoptic_train.json", root / "annotations/panoptic_train.json")
    return root


def _edit(root: Path, change) -> None:
    path = root / "annotations/panoptic_val.json"
    data = json.loads(path.read_bytes())
    change(data)
    path.write_text(json.dumps(data))


def _drop_segment(data):
    del data["annotations"][0]["segments_info"][1]


def _unknown_category(data):
    data["annotations"][0]["segments_info"][0]["category_id"] = 9


def _absent_segment(data):
    data["annotations"][0]["segments_info"].append({"id": 99, "category_id": 1, "iscrowd": 0})


def _duplicate_segment(data):
    data["annotations"][0]["segments_info"].append({"id": 7, "category_id": 1, "iscrowd": 0})


def _no_record(data):
    data["images"].append({"id": 41, "file_name": "c.jpg", "width": 5, "height": 10})


@pytest.mark.parametrize(("change", "finding", "defect"), [
    pytest.param(_drop_segment, ("panoptic-id-unlisted", 40, None), None, id="png-id-without-segment"),
    pytest.param(_unknown_category, ("category-unknown", 40, 7), (7, "category-unknown"),
                 id="unknown-category"),
    pytest.param(_absent_segment, ("mask-empty", 40, 99), (99, "mask-empty"), id="segment-absent-from-png"),
    pytest.param(_duplicate_segment, ("segment-id-duplicate", 40, 7), (7, "segment-id-duplicate"),
                 id="duplicate-segment-id"),
    pytest.param(_no_record, ("panoptic-png-missing", 41, None), None, id="image-without-png"),
])
def test_wrong_records_become_findings_and_are_skipped_on_write(broken, tmp_path, change, finding, defect):
    _edit(broken, change)
    dataset = coco_panoptic.read(broken)
    errors = [(f.code, f.image_id, f.annotation_id) for f in dataset.findings if f.severity == "error"]
    assert errors == [finding]
    if defect:
        assert (defect[0], defect[1]) in {(a.id, a.defect) for a in dataset.annotations}
    report = coco_panoptic.write(dataset, tmp_path / "out", workers=1)
    assert all(c.kind != "skipped" or c.image_id in (40, 41) for c in report.changes)
    if defect or finding[0] == "panoptic-png-missing":
        assert any(c.kind == "skipped" for c in report.changes)


def test_unlisted_png_id_finding_says_value_and_pixels(broken):
    _edit(broken, _drop_segment)
    finding = next(f for f in coco_panoptic.read(broken).findings if f.code == "panoptic-id-unlisted")
    assert (finding.details["value"], finding.details["pixels"]) == (20, 20)
    assert finding.message == "PNG id 20 (20 px) is not in 'segments_info'"


def test_missing_png_file_is_a_finding(broken):
    (broken / "annotations/panoptic_val/b.png").unlink()
    dataset = coco_panoptic.read(broken)
    assert [(f.code, f.image_id) for f in dataset.findings if f.severity == "error"] == [
        ("panoptic-png-missing", 40)]
    assert {a.defect for a in dataset.annotations if a.split == "val"} == {"panoptic-png-missing"}


@pytest.mark.parametrize(("text", "match"), [
    pytest.param('{"images": [], "annotations": [{"image_id": 1, "segments_info": []}]}',
                 r"panoptic_val\.json: image 1: missing required key 'file_name'", id="no-file-name"),
    pytest.param('{"images": [{"id": 1, "file_name": "b.jpg", "width": 5}], "annotations": [], '
                 '"segments_info": 0}',
                 r"panoptic_val\.json: image 1: missing required key 'height'", id="no-height"),
    pytest.param('{"annotations": [{"segments_info": []}]',
                 r"panoptic_val\.json: line 1 column \d+: invalid JSON", id="truncated"),
])
def test_a_file_that_is_not_panoptic_raises_naming_file_and_record(broken, text, match):
    (broken / "annotations/panoptic_val.json").write_text(text)
    with pytest.raises(FormatError, match=match):
        coco_panoptic.read(broken)


def test_missing_json_is_a_clear_error(broken):
    for path in (broken / "annotations").glob("*.json"):
        path.unlink()
    with pytest.raises(FormatError, match="no COCO panoptic file found"):
        coco_panoptic.read(broken)


# columns kept, masks cut again where an image is worked on -----------------------------------------


def _read_whole(root: Path, monkeypatch) -> Dataset:
    """Every JSON parsed whole and every mask kept, as the reader did before it kept columns."""
    def unscannable(*args):
        raise Unscannable("parse whole")

    with monkeypatch.context() as patch:
        patch.setattr(coco_panoptic, "read_array_items", unscannable)
        return coco_panoptic.read(root)


def _assert_stored_equals_whole(root: Path, monkeypatch) -> Dataset:
    stored, whole = coco_panoptic.read(root), _read_whole(root, monkeypatch)
    assert isinstance(whole.annotations, list)
    assert_equals_eager(stored, whole.annotations)
    assert [repr(i) for i in stored.images] == [repr(i) for i in whole.images]
    assert stored.findings == whole.findings and stored.meta == whole.meta
    return stored


@pytest.mark.parametrize(("source", "annotations"), [
    pytest.param("sample", 277, id="sample"),
    pytest.param(f"{DATUMARO}/coco_panoptic", 3, id="datumaro-size-mismatch"),
    pytest.param(f"{DATUMARO}/coco", 3, id="datumaro-consistent"),
])
def test_sets_keep_columns_and_give_the_masks_cut_at_once(samples_dir, conformance_dir, monkeypatch, source,
                                                          annotations):
    root = samples_dir / "coco-panoptic" if source == "sample" else conformance_dir / source
    stored = _assert_stored_equals_whole(root, monkeypatch)
    assert len(stored.annotations) == annotations
    assert sum(a.mask is not None for a in stored.annotations) > 0


def test_pngs_checked_on_two_processes_give_the_one_process_read(samples_dir, monkeypatch, tmp_path):
    root = samples_dir / "coco-panoptic"
    one, pids = read_alike_on_two_processes(lambda: coco_panoptic.read(root), coco_panoptic, "_png_facts",
                                            monkeypatch, tmp_path)
    assert len(one.annotations) == 277 and len(pids) == 60


def test_a_bad_record_in_a_read_on_two_processes_names_the_file_and_the_record(broken, monkeypatch):
    monkeypatch.setattr(parallel, "LOCAL_BATCH", 2)
    monkeypatch.setattr(parallel, "_prepared", 2)
    _edit(broken, lambda data: data["annotations"].extend([data["annotations"][0]] * 20 + [{"image_id": 3}]))
    with pytest.raises(FormatError, match=r"panoptic_val\.json: image 3: missing required key 'file_name'"):
        coco_panoptic.read(broken)


def _every_defect(data):
    first = data["annotations"][0]
    _drop_segment(data), _unknown_category(data), _absent_segment(data), _duplicate_segment(data)
    _no_record(data)
    first["segments_info"].append({"id": 0, "category_id": 1, "iscrowd": 0, "note": "kept"})
    data["annotations"].append({**first, "segments_info": first["segments_info"][:1]})  # the image again
    data["annotations"].append({**first, "image_id": 77})  # no such image


def test_every_wrong_record_reads_the_same_from_columns(broken, monkeypatch):
    _edit(broken, _every_defect)
    (broken / "annotations/panoptic_train/a.png").write_bytes(b"not a png")
    stored, whole = coco_panoptic.read(broken), _read_whole(broken, monkeypatch)
    assert_same(list(stored.annotations), whole.annotations)
    for name in FIELDS:
        assert annotation_values(stored.annotations, name).tolist() == annotation_values(whole.annotations,
                                                                                          name).tolist()
    assert stored.findings == whole.findings
    assert {f.code for f in stored.findings} >= {
        "panoptic-id-unlisted", "category-unknown", "mask-empty", "segment-id-duplicate", "segment-id-invalid",
        "panoptic-png-missing", "image-record-duplicate", "image-ref-unknown"}
    masks = {(a.image_id, a.id): a.mask for a in stored.annotations if a.split == "val"}
    assert masks[(40, 99)].area == 0 and masks[(40, 0)] is None and masks[(77, 7)] is None


def test_a_json_with_nan_is_read_whole(broken):
    _edit(broken, lambda data: data["annotations"][0]["segments_info"][0].update(area=float("nan")))
    dataset = coco_panoptic.read(broken)
    assert isinstance(dataset.annotations, list)
    assert any(np.isnan(a.attributes.get("area", 0)) for a in dataset.annotations)


def test_a_json_changed_after_reading_is_an_error_naming_it(broken):
    dataset = coco_panoptic.read(broken)
    _edit(broken, _drop_segment)
    with pytest.raises(FormatError, match=r"panoptic_val\.json: the file changed since it was read: the record "
                                          r"at bytes \d+–\d+ no longer lists \d+ segments"):
        list(dataset.annotations)


# the CLI, end to end ------------------------------------------------------------------------------


def test_cli_converts_to_panoptic_and_reads_it_back(conformance_dir, tmp_path):
    source = conformance_dir / DATUMARO / "coco_instances"  # tiny: keeps the subprocess quick
    done = run_segdata("convert", source, tmp_path / "pan", "--to", "coco-panoptic", "--workers", "1",
                       "--report", tmp_path / "report.json")
    assert done.returncode == 0, done.stderr
    assert "wrote 2 images and 2 annotations as coco-panoptic" in done.stdout
    report = json.loads((tmp_path / "report.json").read_bytes())
    assert report["changes_by_kind"] == {"bbox-recomputed": 1, "overlap-cut": 1, "skipped": 1}
    info = run_segdata("info", tmp_path / "pan")
    assert info.returncode == 0, info.stderr
    assert "coco-panoptic" in info.stdout


def test_cli_broken_json_exits_2_with_one_line_naming_the_file(broken):
    (broken / "annotations/panoptic_val.json").write_text('{"annotations": [{"segments_info": [')
    done = run_segdata("info", broken, "--format", "coco-panoptic")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "panoptic_val.json" in lines[0] and "invalid JSON" in lines[0], done.stderr
