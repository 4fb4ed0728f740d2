"""converters/sa1b.py: the conformance sample, round trips, streaming, bad records and bad files."""

from __future__ import annotations

import json
import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from segdata import converters
from segdata.converters import coco, sa1b
from segdata.errors import FormatError, MaskError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from segdata.stored import StoredAnnotations
from tests.conftest import run_segdata

SAM = "openvinotoolkit+datumaro/tests/assets/segment_anything_dataset"


def codes(dataset: Dataset) -> Counter:
    return Counter(f.code for f in dataset.findings)


def _bitmap(segmentation: dict) -> np.ndarray:
    """pycocotools' decode of a JSON RLE: the reference each mask is compared with."""
    rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    return coco_mask.decode(rle).view(bool)


# the conformance sample --------------------------------------------------------------


def test_datumaro_sample_reads_exactly(conformance_dir):
    folder = conformance_dir / SAM
    assert converters.sniff(folder) == "sa1b" and converters.sniff(folder / "a.json") == "sa1b"
    dataset = sa1b.read(folder)
    assert {c.id: c.name for c in dataset.categories.values()} == {1: "object"}
    assert [(i.id, i.file_name, i.width, i.height, i.split, i.path) for i in dataset.images] == [
        (1, "a.jpg", 10, 5, "", folder / "a.jpg"), (2, "b.jpg", 5, 10, "", folder / "b.jpg")]
    assert isinstance(dataset.annotations, StoredAnnotations)
    first, second = dataset.annotations
    record = json.loads((folder / "a.json").read_bytes())["annotations"][0]
    rle = {"size": [5, 10], "counts": record["segmentation"]["counts"].encode()}
    assert (first.id, first.image_id, first.category_id, first.defect) == (1, 1, 1, None)
    assert first.mask.area == int(coco_mask.area(rle)) == 4
    assert first.mask.bbox_xywh == tuple(coco_mask.toBbox(rle)) == (3.0, 1.0, 1.0, 4.0)
    assert first.attributes == {"bbox": [3.0, 1.0, 1.0, 4.0], "area": 4, "predicted_iou": 0.2633798018925796,
                                "stability_score": 0.47182999738062237, "crop_box": [3.0, 1.0, 2.0, 5.0],
                                "point_coords": [[3, 4]]}
    # b.json: id 1 again, and an RLE of 5×10 on a 10×5 image (b.jpg is 5 wide, 10 high, as the JSON says)
    assert (second.id, second.image_id, second.defect, second.mask) == (1, 2, "annotation-id-duplicate", None)
    assert second.attributes["predicted_iou"] == 0.8607975925446022
    assert [(f.code, f.image_id, f.annotation_id, f.path, f.message) for f in dataset.findings] == [
        ("annotation-id-duplicate", 2, 1, str(folder / "b.json"), "annotation id 1 is used again"),
        ("rle-size-mismatch", 2, 1, str(folder / "b.json"),
         "RLE size [5, 10] differs from image size [10, 5] (height, width)")]


def test_only_the_sa1b_files_of_the_corpus_are_sniffed_as_sa1b(conformance_dir):
    claimed = sorted(p.relative_to(conformance_dir).as_posix() for p in conformance_dir.rglob("*.json")
                     if sa1b.sniff(p))
    assert claimed == [f"{SAM}/a.json", f"{SAM}/b.json"]
    assert not any(converters.get(name).sniff(conformance_dir / SAM / "a.json") for name in converters.FORMATS
                   if name != "sa1b")


# round trips -------------------------------------------------------------------------


def test_sa1b_round_trip_writes_the_same_documents(conformance_dir, tmp_path):
    """a.json comes back field for field; b.json's duplicate id is skipped and says why."""
    report = sa1b.write(sa1b.read(conformance_dir / SAM), tmp_path / "out", workers=1)
    assert (report.images_written, report.annotations_written) == (2, 1)
    assert [(c.kind, c.image_id, c.annotation_id, c.detail) for c in report.changes] == [
        ("skipped", 2, 1, "annotation-id-duplicate")]
    written = json.loads((tmp_path / "out/a.json").read_bytes())
    assert written == json.loads((conformance_dir / SAM / "a.json").read_bytes())
    assert json.loads((tmp_path / "out/b.json").read_bytes())["annotations"] == []


def test_sa1b_round_trip_of_the_sample_is_pixel_exact_with_attributes(samples_dir, tmp_path):
    source = sa1b.read(samples_dir / "sa1b")
    report = sa1b.write(source, tmp_path / "out", workers=1)
    assert report.changes == [] and (report.images_written, report.annotations_written) == (60, 277)
    back = sa1b.read(tmp_path / "out")
    assert [(i.split, i.id, i.file_name, i.width, i.height, i.attributes) for i in back.images] == \
        [(i.split, i.id, i.file_name, i.width, i.height, i.attributes) for i in source.images]
    pairs = list(zip(source.annotations, back.annotations, strict=True))
    assert all((a.split, a.id, a.image_id, a.attributes) == (b.split, b.id, b.image_id, b.attributes)
               for a, b in pairs)
    assert all(np.array_equal(a.mask.to_bitmap(), b.mask.to_bitmap()) for a, b in pairs)


def test_coco_to_sa1b_keeps_every_pixel_and_reports_each_lost_class(samples_dir, tmp_path):
    source = coco.read(samples_dir / "coco")
    report = sa1b.write(source, tmp_path / "out", copy_images=True, workers=1)
    assert report.counts() == {"category-lost": 277, "crowd-as-object": 3}
    dropped = [c for c in report.changes if c.kind == "category-lost"]
    assert sorted((c.split, c.annotation_id) for c in dropped) == \
        sorted((a.split, a.id) for a in source.annotations)
    car = next(c for c in dropped if "'car'" in c.detail)
    assert car.detail == "category 2 ('car') reads back as 1 ('object'): SA-1B masks have no class"
    back = sa1b.read(tmp_path / "out")
    assert back.findings == [] and back.splits == ["train", "val", "test"]
    assert {i.path.name for i in back.images} == {p.name for p in (tmp_path / "out").rglob("*.jpg")}
    originals = {(a.split, a.id): a for a in source.annotations}
    assert len(back.annotations) == len(originals) == 277
    for ann in back.annotations:
        original = originals[(ann.split, ann.id)]
        assert (ann.image_id, ann.category_id) == (original.image_id, 1)
        assert np.array_equal(ann.mask.to_bitmap(), original.mask.to_bitmap()), (ann.split, ann.id)
        assert ann.attributes == {"area": original.mask.area, "bbox": list(original.mask.bbox_xywh)}


def test_what_sa1b_cannot_hold_is_reported(tmp_path):
    square = Mask.from_bitmap(np.pad(np.ones((2, 2), bool), ((1, 3), (1, 1))))
    images = [ImageRecord(1, "x/a.png", 4, 6, void=square), ImageRecord(2, "y/a.jpg", 4, 6),
              ImageRecord(3, "c.jpg", 4, 6)]
    anns = [Annotation(1, 1, 7, square, iscrowd=True, score=0.5),
            Annotation(2, 1, 1, Mask.from_bitmap(np.ones((3, 3)))),
            Annotation(3, 2, 1, square), Annotation(4, 3, 1, None, defect="polygon-box-ambiguous")]
    dataset = Dataset({1: Category(1, "object"), 7: Category(7, "kite")}, images, anns)
    report = sa1b.write(dataset, tmp_path / "out", copy_images=True, workers=1)
    assert [(c.kind, c.image_id, c.annotation_id) for c in report.changes] == [
        ("skipped", 2, None), ("skipped", 2, 3),  # y/a.jpg would write a.json again
        ("file-renamed", 1, None), ("void-as-unlabeled", 1, None), ("category-lost", 1, 1),
        ("crowd-as-object", 1, 1), ("skipped", 1, 2), ("image-missing", 1, None),
        ("skipped", 3, 4), ("image-missing", 3, None)]
    assert list(report.changes)[6].detail == "rle-size-mismatch: mask [3, 3], image [6, 4] (height, width)"
    back = sa1b.read(tmp_path / "out", images_root=tmp_path)
    assert [(i.id, i.file_name) for i in back.images] == [(1, "a.png"), (3, "c.jpg")]
    kept = back.annotations[0]
    assert (kept.id, kept.score, kept.iscrowd, kept.category_id, kept.mask.area) == (1, 0.5, False, 1, 4)


# streaming ---------------------------------------------------------------------------


def test_stored_groups_decode_as_the_files_say_and_travel_pickled(samples_dir):
    """Each image's group (and the same group pickled) equals pycocotools' decode of that JSON."""
    dataset = sa1b.read(samples_dir / "sa1b")
    grouped = dataset.annotations_by_image()
    assert dataset.annotations.files == tuple(str(p) for split in ("train", "val", "test")
                                              for p in sorted((samples_dir / "sa1b" / split).glob("*.json")))
    for image in dataset.images:
        json_path = samples_dir / "sa1b" / image.split / f"{Path(image.file_name).stem}.json"
        document = json.loads(json_path.read_bytes())
        group = grouped.get((image.split, image.id), [])
        assert len(group) == len(document["annotations"])
        travelled = pickle.loads(pickle.dumps(group)) if group else []
        for record, ann, again in zip(document["annotations"], group, travelled, strict=True):
            expected = {k: v for k, v in record.items() if k not in ("id", "segmentation")}
            for one in (ann, again):
                assert (one.id, one.image_id, one.split) == (record["id"], image.id, image.split)
                assert one.attributes == expected
                assert np.array_equal(one.mask.to_bitmap(), _bitmap(record["segmentation"]))


def test_a_job_sent_one_group_gets_only_its_file(samples_dir):
    dataset = sa1b.read(samples_dir / "sa1b")
    group = dataset.annotations_by_image()[("val", 41)]
    assert group._rows.files == (str(samples_dir / "sa1b/val/scene_0041.json"),)
    assert [a.id for a in pickle.loads(pickle.dumps(group))] == [a.id for a in group]


@pytest.mark.parametrize("counts, pixels", [
    pytest.param(b"423OO", 12, id="valid"),
    pytest.param(b"423OO", 13, id="short-of-the-size"),
    pytest.param(b"42", 12, id="too-few-runs"),
    pytest.param(b"4`", 12, id="cut-off"),
    pytest.param(b"\\\\\\\\\\\\\\\\\\\\\\\\0", 12, id="number-of-13-chars"),
    pytest.param(b"4?", 12, id="negative-run"),
    pytest.param(b"", 0, id="empty-of-empty"),
    pytest.param(b"", 12, id="empty"),
    pytest.param(b"~~", 12, id="outside-the-alphabet"),
])
def test_batched_rle_check_agrees_with_mask_from_rle(counts, pixels):
    """Each string alone, and each among others (numbers must not run on into the next string)."""
    try:
        Mask.from_rle({"size": [pixels, 1], "counts": counts})
        wrong = False
    except MaskError:
        wrong = True
    assert sa1b._wrong_runs([counts], pixels).tolist() == [wrong]
    valid = Mask.from_bitmap(np.eye(pixels, 1, -2)).rle["counts"] if pixels else b""
    assert sa1b._wrong_runs([valid, counts, b"4`", valid], pixels).tolist() == [False, wrong, True, False]


def test_batched_rle_check_agrees_on_mutated_strings():
    rng = np.random.default_rng(20240917)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 12, 2))
        strings = []
        for _ in range(int(rng.integers(1, 6))):
            chars = bytearray(Mask.from_bitmap(rng.random((height, width)) < rng.random()).rle["counts"])
            if rng.random() < 0.6:
                chars[int(rng.integers(len(chars)))] = int(rng.integers(40, 120))
            strings.append(bytes(chars))
        expected = []
        for string in strings:
            try:
                Mask.from_rle({"size": [height, width], "counts": string})
                expected.append(False)
            except MaskError:
                expected.append(True)
        assert sa1b._wrong_runs(strings, height * width).tolist() == expected, strings


# bad records and bad files -----------------------------------------------------------


def _scene(samples_dir: Path, folder: Path, edit=None, name: str = "scene_0041") -> Path:
    """A sample file copied into ``folder``, edited."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.json"
    document = json.loads((samples_dir / "sa1b/val" / f"{name}.json").read_bytes())
    if edit:
        edit(document)
    path.write_text(json.dumps(document))
    return path


def _edit_annotation(index: int, **fields):
    def edit(document):
        record = document["annotations"][index]
        for key, value in fields.items():
            if value is None:
                del record[key]
            else:
                record[key] = value
    return edit


@pytest.mark.parametrize("edit, code, message", [
    pytest.param(_edit_annotation(0, segmentation={"size": [10, 10], "counts": "0T3"}), "rle-size-mismatch",
                 "RLE size [10, 10] differs from image size [144, 192] (height, width)", id="size"),
    pytest.param(_edit_annotation(0, segmentation={"size": [144, 192], "counts": "0Z3"}),
                 "rle-counts-invalid",
                 "RLE counts sum to 106, expected 27648 (144×192)", id="counts"),
    pytest.param(_edit_annotation(0, segmentation={"size": [144], "counts": "0Z3"}), "rle-counts-invalid",
                 "RLE size must be [height, width], found [144]", id="size-of-one"),
    pytest.param(_edit_annotation(0, segmentation=None), "mask-empty", "annotation has no segmentation",
                 id="no-segmentation"),
    pytest.param(_edit_annotation(0, id=188), "annotation-id-duplicate", "annotation id 188 is used again",
                 id="duplicate-id"),
])
def test_wrong_records_are_loaded_flagged_and_skipped(samples_dir, tmp_path, edit, code, message):
    path = _scene(samples_dir, tmp_path / "data", edit)
    dataset = sa1b.read(tmp_path / "data")
    found = [(f.code, f.image_id, f.path, f.message) for f in dataset.findings]
    assert found == [(code, 41, str(path), message)]
    flagged = [(a.id, a.defect, a.mask is None) for a in dataset.annotations if a.defect]
    assert len(flagged) == 1 and flagged[0][1] == code
    report = sa1b.write(dataset, tmp_path / "out", workers=1)
    assert [(c.kind, c.detail) for c in report.changes] == [("skipped", code)]
    assert report.annotations_written == len(dataset.annotations) - 1


def test_an_image_id_used_again_keeps_that_file_out_of_use(samples_dir, tmp_path):
    _scene(samples_dir, tmp_path / "data")
    again = _scene(samples_dir, tmp_path / "data", lambda d: d["image"].update(image_id=41), "scene_0042")
    dataset = sa1b.read(tmp_path / "data")
    found = [(f.code, f.image_id, f.path) for f in dataset.findings]
    assert found == [("image-id-duplicate", 41, str(again))]
    assert dataset.findings[0].message == ("image id 41 is used again by 'scene_0042.jpg' (first by "
                                           "'scene_0041.jpg'); its 6 annotations are kept out of use")
    assert [a.defect for a in dataset.annotations] == [None] * 2 + ["image-id-duplicate"] * 6
    report = sa1b.write(dataset, tmp_path / "out", workers=1)
    assert Counter(c.detail for c in report.changes) == {"image-id-duplicate": 7}  # the image and its 6
    assert report.annotations_written == 2 and not (tmp_path / "out/scene_0042.json").exists()


@pytest.mark.parametrize("edit, match", [
    pytest.param(lambda d: d.pop("image"), "scene_0041.json: missing required key 'image'", id="no-image"),
    pytest.param(lambda d: d["image"].update(width="192"), "scene_0041.json: image 41: 'width' must be int, "
                 "found str '192'", id="width-as-string"),
    pytest.param(_edit_annotation(1, id=None),
                 "scene_0041.json: annotation index 1: missing required key 'id'",
                 id="no-id"),
    pytest.param(lambda d: d["annotations"].append([1]), "scene_0041.json: annotation index 2: expected an "
                 "object, found list", id="record-not-an-object"),
])
def test_a_file_that_is_not_sa1b_raises_naming_file_and_record(samples_dir, tmp_path, edit, match):
    _scene(samples_dir, tmp_path / "data", edit)
    with pytest.raises(FormatError, match=match):
        sa1b.read(tmp_path / "data")


def test_malformed_json_raises_naming_the_file(samples_dir, tmp_path):
    _scene(samples_dir, tmp_path / "data")
    (tmp_path / "data/broken.json").write_text('{"image": {"image_id": 1}, "annotations": [')
    with pytest.raises(FormatError, match=r"broken.json: line 1 column \d+: invalid JSON"):
        sa1b.read(tmp_path / "data")


def test_cli_malformed_file_exits_2_with_one_line_naming_it(samples_dir, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(samples_dir / "sa1b/val", folder)
    (folder / "scene_0045.json").write_text('{"image": {"image_id": 45, "file_name": "scene_0045.j')
    done = run_segdata("info", folder, "--format", "sa1b")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "scene_0045.json" in lines[0] and "invalid JSON" in lines[0], done.stderr
