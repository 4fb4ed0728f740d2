"""converters/yolo.py leaves annotations in their label files: what it reads again equals what it read.

The fingerprints were recorded with the reader that kept every decoded
annotation in a list (commit d5fb27f): the stored reader gives the same
annotations (ids, categories, defects, mask pixels), images and findings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from segdata.converters import yolo
from segdata.model import Dataset, annotation_values
from segdata.stored import StoredAnnotations
from tests.converters.stored_checks import (assert_equals_eager, assert_same, converts_alike,
                                            read_alike_on_two_processes)
from tests.converters.test_labelme_stored import fingerprint

CVAT_SEG = "cvat-ai+datumaro/tests/assets/yolo_dataset/yolov8_segmentation"
DATUMARO = "openvinotoolkit+datumaro/tests/assets/yolo_dataset/labels"
ROBOFLOW = "openvinotoolkit+datumaro/tests/assets/roboflow_dataset/yolo"


def _edge_cases(conformance_dir: Path, tmp_path: Path) -> Path:
    """CVAT's one-image dataset with every kind of line: good, box, skipped, out of bounds, overflowing
    to infinity once scaled (a defect), blank, CRLF; and a second image that is not an image."""
    root = Path(shutil.copytree(conformance_dir / CVAT_SEG, tmp_path / "edge"))
    (root / "labels/train/1.txt").write_text(
        "2 0.1 0.1 0.4 0.1 0.4 0.5\n0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.4\n12 0.1 0.1 0.4 0.1 0.4 0.5\n"
        "\n  \nx 0.1\n3 nan 0 1 0 1 1\n4 -0.1 0 1.2 0 1 1\n5 0.1 0.1 1e308 0.1 0.4 0.5\n"
        "6 0.1 0.1\n7 0.1 0.1 0.2 0.1 0.15 0.3 0.1 0.4\r\n1.5 0 0 1 0 1 1\n", newline="")
    (root / "images/train/2.jpg").write_bytes(b"not a jpeg")
    (root / "labels/train/2.txt").write_text("1 0.2 0.2 0.8 0.2 0.8 0.9\n9 0.5 0.5 1 1\n")
    return root


@pytest.fixture
def edge(conformance_dir, tmp_path) -> tuple[Dataset, Path]:
    return yolo.read(_edge_cases(conformance_dir, tmp_path)), tmp_path


def test_sample_reads_as_the_eager_reader_did(samples_dir):
    dataset = yolo.read(samples_dir / "yolo")
    assert isinstance(dataset.annotations, StoredAnnotations)
    assert fingerprint(dataset, samples_dir / "yolo") == (277, 509358, "85a27539afdbe304")


@pytest.mark.parametrize("folder, expected", [
    pytest.param(DATUMARO, (4, 28, "f8fc5ce654a97375"), id="datumaro"),
    pytest.param(ROBOFLOW, (2, 11, "4573b48cf58922c5"), id="roboflow"),
])
def test_conformance_reads_as_the_eager_reader_did(conformance_dir, folder, expected):
    assert fingerprint(yolo.read(conformance_dir / folder), conformance_dir) == expected


def test_edge_cases_read_as_the_eager_reader_did(edge):
    dataset, root = edge
    assert fingerprint(dataset, root) == (7, 97, "484962207bbd4590")
    anns = [(a.id, a.image_id, a.category_id, a.defect, a.mask and a.mask.area) for a in dataset.annotations]
    assert anns == [(1, 1, 2, None, 9), (2, 1, 0, None, 6), (3, 1, 4, None, 81),
                    (4, 1, 5, "coordinate-non-finite", None), (5, 1, 7, None, 1),
                    (6, 2, 1, "image-size-unknown", None), (7, 2, 9, "image-size-unknown", None)]
    assert [(f.code, f.image_id, f.annotation_id, f.details.get("line")) for f in dataset.findings] == [
        ("yolo-odd-coordinates", 1, None, 3), ("category-unknown", 1, None, 4),
        ("yolo-line-invalid", 1, None, 7), ("coordinate-non-finite", 1, None, 8),
        ("coordinate-non-finite", 1, 4, 10), ("polygon-too-few-points", 1, None, 11),
        ("category-unknown", 1, None, 13), ("yolo-box-line", 1, None, 2),
        ("coordinate-out-of-bounds", 1, None, 9), ("image-unreadable", 2, None, None),
        ("yolo-box-line", 2, None, 2)]
    usable = annotation_values(dataset.annotations, "usable").tolist()
    assert usable == [True, True, True, False, True, False, False]


def test_each_image_is_read_again_from_its_own_file_only_where_it_is_used(samples_dir, monkeypatch):
    loaded = []

    def counting(file: str):
        loaded.append(Path(file).name)
        return load(file)

    load = yolo._load
    monkeypatch.setattr(yolo, "_load", counting)
    dataset = yolo.read(samples_dir / "yolo")
    assert len(loaded) == len(set(loaded)) == 60  # one pass: each label file read once
    loaded.clear()
    image = dataset.images[7]
    anns = list(dataset.annotations_by_image()[(image.split, image.id)])
    assert loaded == ["scene_0008.txt"] and [a.image_id for a in anns] == [8] * 2
    # the image's size, from the columns: the image is not opened again
    assert {(a.mask.height, a.mask.width) for a in anns} == {(image.height, image.width)}


def test_groups_and_columns_give_the_decoded_annotations(samples_dir, edge):
    for dataset in (yolo.read(samples_dir / "yolo"), edge[0]):
        whole = list(dataset.annotations)
        assert_equals_eager(dataset, whole)
        assert_same([dataset.annotations[i] for i in range(len(whole))], whole)


def test_helper_processes_convert_the_stored_sample_as_one_process_does(samples_dir, tmp_path):
    assert converts_alike(yolo.read(samples_dir / "yolo"), tmp_path) == 277


def test_images_read_on_two_processes_give_the_one_process_read(samples_dir, monkeypatch, tmp_path):
    root = Path(shutil.copytree(samples_dir / "yolo", tmp_path / "yolo"))
    (root / "labels/train/scene_0003.txt").write_text(  # a box, a bad line, an unknown class, out of bounds,
        "0 0.5 0.5 0.2 0.2\nx 0.1\n99 0.1 0.1 0.4 0.1 0.4 0.5\n1 -0.1 0 1.2 0 1 1\n"  # a defect
        "2 0.1 0.1 1e308 0.1 0.4 0.5\n")
    (root / "images/train/scene_0005.jpg").write_bytes(b"not a jpeg")
    (root / "labels/train/scene_0099.txt").write_text("0 0.1 0.1 0.4 0.1 0.4 0.5\n")  # no image
    one, pids = read_alike_on_two_processes(lambda: yolo.read(root), yolo, "_read_image", monkeypatch,
                                            tmp_path)
    assert {f.code for f in one.findings} >= {"yolo-box-line", "yolo-line-invalid", "category-unknown",
                                              "coordinate-out-of-bounds", "image-unreadable",
                                              "label-without-image"}
    (defect,) = [f for f in one.findings if f.annotation_id is not None]  # it names its annotation
    assert [a.defect for a in one.annotations if (a.split, a.id) == (defect.split, defect.annotation_id)] \
        == [defect.code]
    assert len(pids) == len(one.images)
