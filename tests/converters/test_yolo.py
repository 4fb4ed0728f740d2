"""converters/yolo.py: conformance files, round trips, the zoo of masks, and bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata import converters
from segdata.converters import yolo
from segdata.errors import FormatError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from tests.cases import MASKS
from tests.conftest import run_segdata

CVAT_SEG = "cvat-ai+datumaro/tests/assets/yolo_dataset/yolov8_segmentation"
ROBOFLOW = "openvinotoolkit+datumaro/tests/assets/roboflow_dataset/yolo"
DATUMARO = "openvinotoolkit+datumaro/tests/assets/yolo_dataset"


def codes(dataset: Dataset) -> Counter:
    return Counter(f.code for f in dataset.findings)


# conformance -------------------------------------------------------------------------


def test_cvat_yolov8_segmentation_reads_exactly(conformance_dir):
    dataset = yolo.read(conformance_dir / CVAT_SEG)
    assert yolo.sniff(conformance_dir / CVAT_SEG)
    assert [(i.split, i.file_name, i.width, i.height) for i in dataset.images] == [("train", "1.jpg", 15, 10)]
    assert sorted(dataset.categories) == list(range(10)) and dataset.categories[4].name == "label_4"
    # class 2: triangle (1.5,1)-(6,1)-(6,5); class 4: 5 points; areas by pycocotools' rule
    assert [(a.category_id, a.mask.area) for a in dataset.annotations] == [(2, 9), (4, 11)]
    assert not dataset.findings


def test_roboflow_detection_lines_read_as_boxes_and_missing_split_is_a_finding(conformance_dir):
    dataset = yolo.read(conformance_dir / ROBOFLOW)
    assert [(i.split, i.file_name, i.width, i.height) for i in dataset.images] == [
        ("train", "train_001.jpg", 10, 5), ("train", "train_002.jpg", 10, 5)]
    # "0 0.35 0.3 0.3 0.2" on 10x5: box x 2..5, y 1..2 -> 3 px; "1 0.1 0.4 0.2 0.8": x 0..2, y 0..4 -> 8 px
    assert [(a.category_id, a.mask.area, a.mask.bbox_xywh) for a in dataset.annotations] == [
        (0, 3, (2.0, 1.0, 3.0, 1.0)), (1, 8, (0.0, 0.0, 2.0, 4.0))]
    # data.yaml says val: ../valid/images, but the fixture's folder is val/: reported, not a crash
    assert codes(dataset) == {"yolo-box-line": 2, "split-source-missing": 1}


def test_datumaro_folder_without_yaml_reads_names_from_obj_names(conformance_dir):
    dataset = yolo.read(conformance_dir / DATUMARO / "labels")
    assert [(i.split, i.file_name) for i in dataset.images] == [("train", "1.jpg"), ("val", "1.jpg")]
    assert len(dataset.categories) == 10 and len(dataset.annotations) == 4
    # its boxes reach -5e-7 (0.133333 - 0.266667/2): Ultralytics would reject the image
    assert codes(dataset) == {"yolo-yaml-missing": 1, "yolo-box-line": 2, "coordinate-out-of-bounds": 2}


@pytest.mark.parametrize("layout", ["strict", "annotations"])
def test_darknet_layouts_are_not_claimed(conformance_dir, layout):
    assert not yolo.sniff(conformance_dir / DATUMARO / layout)
    with pytest.raises(FormatError, match="no data.yaml found"):
        yolo.read(conformance_dir / DATUMARO / layout)


def test_sniff_claims_no_coco_folder(samples_dir):
    assert not yolo.sniff(samples_dir / "coco") and not yolo.sniff(samples_dir / "coco-dirty")


# round trips -------------------------------------------------------------------------


def test_sample_round_trip_reports_every_annotation_with_its_iou(samples_dir, tmp_path):
    source = converters.get("coco").read(samples_dir / "coco")
    report = yolo.write(source, tmp_path / "y", copy_images=True, workers=2)
    assert (report.images_written, report.annotations_written) == (60, 277)
    measured = {c.annotation_id: c.iou for c in report.changes if c.iou is not None}
    assert len(measured) == 277
    assert sum(measured.values()) / len(measured) == 1.0  # lossless tracing, 6 decimals on <= 224 px images
    assert report.counts() == {"category-remapped": 277, "crowd-as-object": 3, "parts-joined": 32,
                               "polygon-normalized": 245}

    again = yolo.read(tmp_path / "y")
    assert not again.findings and again.splits == ["train", "val", "test"]
    assert {c.id: (c.name, c.supercategory) for c in again.categories.values()} == \
        {c.id: (c.name, c.supercategory) for c in source.categories.values()}
    by_name = {(i.split, i.file_name): i for i in again.images}
    written = again.annotations_by_image()
    ious = []
    for image, anns in source.iter_images():
        copy = by_name[(image.split, image.file_name)]
        assert (copy.width, copy.height) == (image.width, image.height)
        back = written.get((copy.split, copy.id), [])
        assert [a.category_id for a in back] == [a.category_id for a in anns]
        ious += [a.mask.iou(b.mask) for a, b in zip(anns, back)]
    assert len(ious) == 277 and min(ious) == 1.0


def test_files_are_written_fresh_not_appended(samples_dir, tmp_path):
    source = converters.get("coco").read(samples_dir / "coco")
    yolo.write(source, tmp_path / "y", workers=1)
    first = (tmp_path / "y/labels/train/scene_0001.txt").read_bytes()
    yolo.write(source, tmp_path / "y", workers=1, overwrite=True)
    assert (tmp_path / "y/labels/train/scene_0001.txt").read_bytes() == first


@pytest.mark.parametrize("bitmap", MASKS)
def test_zoo_masks_are_one_line_each_and_read_back_exactly(bitmap, tmp_path):
    dataset = _one_image_dataset(tmp_path, Mask.from_bitmap(bitmap))
    report = yolo.write(dataset, tmp_path / "out", copy_images=True, workers=1)
    again = yolo.read(tmp_path / "out")
    if not bitmap.any():
        assert [c.detail for c in report.changes] == ["mask-empty: no pixel to outline"]
        assert len(again.annotations) == 0
        return
    lines = (tmp_path / "out/labels/train/a.txt").read_text().splitlines()
    assert len(lines) == 1  # parts and holes joined, never one object per part
    assert [c.iou for c in report.changes if c.iou is not None] == [1.0]
    assert np.array_equal(again.annotations[0].mask.to_bitmap(), bitmap)
    assert again.annotations[0].category_id == 7  # restored from segdata_category_ids


def test_coordinates_outside_the_image_are_clipped_and_reported(tmp_path):
    mask = Mask.from_polygons([[-3, -2, 10, -2, 10, 8, -3, 8]], 12, 14)
    report = yolo.write(_one_image_dataset(tmp_path, mask), tmp_path / "out", workers=1)
    assert [c.detail for c in report.changes if c.kind == "coordinates-clipped"] == [
        "4 coordinate(s) clipped to [0, 1]"]
    line = (tmp_path / "out/labels/train/a.txt").read_text().split()
    assert min(map(float, line[1:])) == 0.0
    assert [c.iou for c in report.changes if c.iou is not None] == [1.0]  # pycocotools clips too


def test_join_rings_doctest_shape():
    a = np.array([[0, 0], [4, 0], [4, 4], [0, 4]])
    b = np.array([[6, 0], [8, 0], [8, 2], [6, 2]])
    joined = yolo.join_rings([a, b]).ravel().tolist()
    assert Mask.from_polygons([joined], 6, 10).area == 16 + 4


# bad input ---------------------------------------------------------------------------


def _broken_copy(conformance_dir, tmp_path, lines: str) -> Path:
    root = tmp_path / "bad"
    shutil.copytree(conformance_dir / CVAT_SEG, root)
    (root / "labels/train/1.txt").write_text(lines)
    return root


def test_bad_lines_are_skipped_each_with_a_finding_naming_file_and_line(conformance_dir, tmp_path):
    root = _broken_copy(conformance_dir, tmp_path, "2 0.1 0.1 0.4 0.1 0.4 0.5\n"
                        "2 0.1 0.1 0.4 0.1 0.4\n"          # odd count
                        "12 0.1 0.1 0.4 0.1 0.4 0.5\n"     # class outside names
                        "x 0.1 0.1 0.4 0.1 0.4 0.5\n"      # not a number
                        "\n"
                        "3 0.1 0.1\n"                      # one point
                        "3 0.1 nan 0.4 0.1 0.4 0.5\n")     # NaN
    dataset = yolo.read(root)
    assert len(dataset.annotations) == 1
    found = [(f.code, f.details["line"], Path(f.path).name) for f in dataset.findings]
    assert found == [("yolo-odd-coordinates", 2, "1.txt"), ("category-unknown", 3, "1.txt"),
                     ("yolo-line-invalid", 4, "1.txt"), ("polygon-too-few-points", 6, "1.txt"),
                     ("coordinate-non-finite", 7, "1.txt")]
    assert "line 3: class 12 is not in 'names' (0..9)" in dataset.findings[1].message


def test_missing_data_yaml_is_a_clear_error(conformance_dir, tmp_path):
    root = _broken_copy(conformance_dir, tmp_path, "2 0.1 0.1 0.4 0.1 0.4 0.5\n")
    (root / "data.yaml").unlink()
    assert not yolo.sniff(root)
    with pytest.raises(FormatError, match=r"bad: no data.yaml found"):
        yolo.read(root)


def test_invalid_yaml_names_the_line(conformance_dir, tmp_path):
    root = _broken_copy(conformance_dir, tmp_path, "")
    (root / "data.yaml").write_text("train: images/train\nnames: [a, b\n")
    with pytest.raises(FormatError, match=r"data.yaml: line 3: invalid YAML"):
        yolo.read(root)


def test_missing_image_is_a_defect_and_its_lines_cannot_be_scaled(conformance_dir, tmp_path):
    root = _broken_copy(conformance_dir, tmp_path, "2 0.1 0.1 0.4 0.1 0.4 0.5\n")
    (root / "images/train/1.jpg").write_bytes(b"not a jpeg")
    (root / "labels/train/2.txt").write_text("1 0.1 0.1 0.4 0.1 0.4 0.5\n")
    dataset = yolo.read(root)
    assert dataset.images[0].defect == "image-unreadable"
    assert [a.defect for a in dataset.annotations] == ["image-size-unknown"]
    assert codes(dataset) == {"image-unreadable": 1, "label-without-image": 1}
    report = yolo.write(dataset, tmp_path / "out", workers=1)
    assert Counter(c.kind for c in report.changes) == {"skipped": 2} and report.images_written == 0


def test_image_cut_short_after_its_header_gives_its_size_from_the_header(samples_dir, tmp_path):
    """Sizes come from headers, never a decode (most of the read time): a JPEG whose pixel data is cut
    reads with its size and scaled labels; one cut inside its header is still unreadable."""
    folder = Path(shutil.copytree(samples_dir / "yolo", tmp_path / "yolo"))
    whole = yolo.read(folder)
    cut, headless = folder / "images/train/scene_0001.jpg", folder / "images/train/scene_0002.jpg"
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    headless.write_bytes(headless.read_bytes()[:100])
    with pytest.raises(OSError, match="truncated"), Image.open(cut) as image:
        image.load()  # the pixels really are gone: only a header read gives the size
    dataset = yolo.read(folder)
    assert [(i.width, i.height, i.defect) for i in dataset.images[:2]] == [
        (whole.images[0].width, whole.images[0].height, None), (0, 0, "image-unreadable")]
    assert [a.mask.area for a in dataset.annotations if a.image_id == 1] == [
        a.mask.area for a in whole.annotations if a.image_id == 1]
    [unreadable] = [f for f in dataset.findings if f.code == "image-unreadable"]
    assert (unreadable.path, unreadable.message.split(":")[0]) == (str(headless), "cannot decode image")


def test_cli_convert_to_yolo_then_info(samples_dir, tmp_path):
    done = run_segdata("convert", samples_dir / "coco", tmp_path / "y", "--to", "yolo", "--copy-images")
    assert done.returncode == 0, done.stderr
    info = run_segdata("info", tmp_path / "y", "--json")
    assert info.returncode == 0, info.stderr
    assert '"format": "yolo"' in info.stdout


# helpers -----------------------------------------------------------------------------


def _one_image_dataset(tmp_path: Path, mask: Mask) -> Dataset:
    height, width = mask.shape_hw
    image_path = tmp_path / "a.png"
    Image.new("RGB", (width, height)).save(image_path)
    return Dataset({7: Category(7, "thing")}, [ImageRecord(1, "a.png", width, height, split="train",
                                                           path=image_path)],
                   [Annotation(1, 1, 7, mask, split="train")])


def test_unnamed_and_custom_splits_are_reported_and_read_back(tmp_path):
    dataset = _one_image_dataset(tmp_path, Mask.from_polygons([[1, 1, 5, 1, 5, 5]], 12, 14))
    extra = ImageRecord(2, "b.png", 14, 12, split="holdout", path=dataset.images[0].path)
    dataset.images[0].split = dataset.annotations[0].split = ""
    dataset.images.append(extra)
    report = yolo.write(dataset, tmp_path / "out", copy_images=True, workers=1)
    assert [(c.kind, c.split) for c in report.changes if c.kind.startswith("split")] == [
        ("split-renamed", ""), ("split-not-ultralytics", "holdout")]
    again = yolo.read(tmp_path / "out")
    assert [(i.split, i.file_name) for i in again.images] == [("train", "a.png"), ("holdout", "b.png")]
    assert len(again.annotations) == 1 and again.annotations[0].split == "train"


def test_nc_disagreeing_with_names_is_a_warning(samples_dir, tmp_path):
    folder = Path(shutil.copytree(samples_dir / "yolo", tmp_path / "yolo"))
    text = (folder / "data.yaml").read_text()
    (folder / "data.yaml").write_text(text + "nc: 8\n")
    assert not codes(yolo.read(folder))["yolo-nc-mismatch"]  # near miss: 'nc' matches the 8 names
    (folder / "data.yaml").write_text(text + "nc: 9\n")
    found = [f for f in yolo.read(folder).findings if f.code == "yolo-nc-mismatch"]
    assert [(f.severity, f.path) for f in found] == [("warning", str(folder / "data.yaml"))]
    assert "'nc' is 9 but 'names' has 8 classes" in found[0].message
