"""converters/labelme.py leaves annotations in their JSON files: what it reads again equals what it read.

The fingerprints were recorded with the reader that kept every decoded
annotation in a list (commit d5fb27f): the stored reader gives the same
annotations (ids, categories, crowd flags, defects, mask pixels), images and
findings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from segdata.converters import labelme
from segdata.model import Dataset, annotation_values
from segdata.stored import StoredAnnotations
from tests.converters.stored_checks import (assert_equals_eager, assert_same, converts_alike,
                                            read_alike_on_two_processes)

EXAMPLES = "wkentaro+labelme/examples"


def fingerprint(dataset: Dataset, root: Path) -> tuple[int, int, str]:
    """Annotation count, total mask area, and a digest of every annotation, image and finding."""
    digest = hashlib.sha256()
    area = 0
    for ann in dataset.annotations:
        digest.update(repr(ann).encode())
        if ann.mask is not None:
            digest.update(ann.mask.rle["counts"])
            area += ann.mask.area
    for image in dataset.images:
        void = image.void.rle["counts"] if image.void is not None else b""
        digest.update(repr((image.split, image.id, image.file_name, image.width, image.height, image.defect,
                            image.path and image.path.relative_to(root).as_posix())).encode() + void)
    for f in dataset.findings:
        message = f.message.replace(str(root), "<root>")  # a message may name a folder: where the data is
        digest.update(repr((f.code, f.severity, message, f.split, f.image_id, f.annotation_id,
                            Path(f.path).relative_to(root).as_posix(), f.details)).encode())
    return len(dataset.annotations), area, digest.hexdigest()[:16]


def _edge_cases(conformance_dir: Path, tmp_path: Path) -> Path:
    """labelme's primitives with a group mixing a mask and a polygon after a failed shape, a NaN rectangle
    (a defect of the merged annotation), a zero circle, a crowd flag and a void mask."""
    folder = Path(shutil.copytree(conformance_dir / EXAMPLES / "primitives", tmp_path / "edge"))
    path = folder / "primitives.json"
    data = json.loads(path.read_bytes())
    rectangle, circle, wide, polygon, line, point, strip, octagon = data["shapes"]
    data["shapes"] = [
        dict(polygon, points=polygon["points"][:2], group_id=1),  # fails, before its group's first region
        rectangle,
        dict(octagon, label="polygon", group_id=1),
        dict(polygon, group_id=1),  # joins the mask above: one annotation, a bitmap
        dict(rectangle, label="broken", points=[[float("nan"), 1.0], [float("nan"), 9.0]]),
        dict(circle, points=[circle["points"][0], circle["points"][0]]),
        dict(circle, flags={"iscrowd": True}),
        dict(octagon, label="__ignore__"),
        dict(wide, label="wide"),
        line, point, strip,
    ]
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def edge(conformance_dir, tmp_path) -> tuple[Dataset, Path]:
    path = _edge_cases(conformance_dir, tmp_path)
    return labelme.read(path.parent), tmp_path


@pytest.mark.parametrize("folder, expected", [
    pytest.param("labelme", (277, 509358, "1439e3f0767410ca"), id="sample"),
])
def test_sample_reads_as_the_eager_reader_did(samples_dir, folder, expected):
    dataset = labelme.read(samples_dir / folder)
    assert isinstance(dataset.annotations, StoredAnnotations)
    assert fingerprint(dataset, samples_dir / folder) == expected


@pytest.mark.parametrize("folder, expected", [
    pytest.param(f"{EXAMPLES}/primitives", (5, 51764, "7d847d83d10133a3"), id="primitives"),
    pytest.param(f"{EXAMPLES}/instance_segmentation/data_annotated", (12, 251174, "c37f608053d8fa0a"),
                 id="instance"),
])
def test_conformance_reads_as_the_eager_reader_did(conformance_dir, folder, expected):
    assert fingerprint(labelme.read(conformance_dir / folder), conformance_dir) == expected


def test_edge_cases_read_as_the_eager_reader_did(edge):
    dataset, root = edge
    assert fingerprint(dataset, root) == (5, 51764, "fbab5954a43da845")
    names = {c.id: c.name for c in dataset.categories.values()}
    assert [(a.id, names[a.category_id], a.iscrowd, a.defect, a.mask and a.mask.face, a.mask and a.mask.area)
            for a in dataset.annotations] == [
        (1, "rectangle", False, None, "polygon", 10000), (2, "polygon", False, None, "bitmap", 18272),
        (3, "broken", False, "coordinate-non-finite", None, None), (4, "circle", True, None, "polygon", 8090),
        (5, "wide", False, None, "polygon", 15402)]
    assert [(f.code, f.annotation_id, f.details) for f in dataset.findings] == [
        ("polygon-too-few-points", None, {"shape": 0}), ("mask-empty", None, {"shape": 5}),
        ("shape-ignore-as-void", None, {"shape": 7}), ("shape-not-a-region", None, {"shape": 9}),
        ("shape-not-a-region", None, {"shape": 10}), ("shape-not-a-region", None, {"shape": 11}),
        ("coordinate-non-finite", 3, {})]
    assert dataset.images[0].void.area == 7275
    assert annotation_values(dataset.annotations, "usable").tolist() == [True, True, False, True, True]


def test_each_image_is_read_again_from_its_own_file_only_where_it_is_used(samples_dir, monkeypatch):
    loaded = []

    def counting(file: str):
        loaded.append(Path(file).name)
        return load(file)

    load = labelme._load
    monkeypatch.setattr(labelme, "_load", counting)
    dataset = labelme.read(samples_dir / "labelme")
    assert loaded == []  # one pass: nothing read twice, nothing decoded
    image = dataset.images[7]
    anns = list(dataset.annotations_by_image()[(image.split, image.id)])
    assert loaded == ["scene_0008.json"] and [a.image_id for a in anns] == [image.id] * len(anns) == [8] * 2


def test_groups_and_columns_give_the_decoded_annotations(samples_dir, edge):
    for dataset in (labelme.read(samples_dir / "labelme"), edge[0]):
        whole = list(dataset.annotations)
        assert_equals_eager(dataset, whole)
        assert_same([dataset.annotations[i] for i in range(len(whole))], whole)


def test_helper_processes_convert_the_stored_sample_as_one_process_does(samples_dir, tmp_path):
    assert converts_alike(labelme.read(samples_dir / "labelme"), tmp_path) == 277


def test_files_read_on_two_processes_give_the_one_process_read(samples_dir, monkeypatch, tmp_path):
    root = Path(shutil.copytree(samples_dir / "labelme", tmp_path / "labelme"))
    for name, edit in (("train/scene_0003.json", lambda shapes: shapes[0].update(label="ufo")),  # new label
                       ("train/scene_0009.json", lambda shapes: shapes[1].update(label="ufo")),  # seen
                       ("val/scene_0041.json", lambda shapes: shapes[0].update(label="boat")),
                       ("train/scene_0005.json", lambda shapes: shapes[2].update(  # a defect
                           shape_type="rectangle", points=[["nan", 1.0], ["nan", 9.0]])),
                       ("train/scene_0006.json", lambda shapes: shapes[0].update(shape_type="line"))):
        document = json.loads((root / name).read_bytes())
        edit(document["shapes"])
        (root / name).write_text(json.dumps(document).replace('"nan"', "NaN"))
    one, pids = read_alike_on_two_processes(lambda: labelme.read(root), labelme, "_read_file", monkeypatch,
                                            tmp_path)
    assert [(f.code, f.message) for f in one.findings if f.code == "category-unknown"] == [
        ("category-unknown", "label 'ufo' is not in labels.txt; added as category 9"),
        ("category-unknown", "label 'boat' is not in labels.txt; added as category 10")]
    (defect,) = [f for f in one.findings if f.annotation_id is not None]
    assert defect.code == "coordinate-non-finite" and defect.image_id == 5
    assert [a.defect for a in one.annotations if a.id == defect.annotation_id] == [defect.code]
    assert len(pids) == len(one.images) == 60
