"""converters/labelme.py: conformance files, parity with labelme's own conversions, round trips, bad input."""

from __future__ import annotations

import base64
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from segdata import converters
from segdata.converters import labelme
from segdata.errors import FormatError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from tests.cases import MASKS
from tests.conftest import run_segdata

EXAMPLES = "wkentaro+labelme/examples"
INSTANCE = f"{EXAMPLES}/instance_segmentation"
SEMANTIC = f"{EXAMPLES}/semantic_segmentation"


def codes(dataset) -> Counter:
    return Counter(f.code for f in dataset.findings)


# conformance -------------------------------------------------------------------------


@pytest.mark.parametrize("folder, images, annotations, categories, found", [
    pytest.param(f"{INSTANCE}/data_annotated", 3, 12, 20, {"shape-ignore-as-void": 2}, id="instance-v4"),
    pytest.param(f"{SEMANTIC}/data_annotated", 3, 16, 20, {"shape-ignore-as-void": 2}, id="semantic-v4"),
    pytest.param(f"{EXAMPLES}/video_annotation/data_annotated", 5, 15, 2, {}, id="video-v4"),
    pytest.param(f"{EXAMPLES}/tutorial", 1, 4, 4, {}, id="embedded-imageData"),
    pytest.param(f"{EXAMPLES}/primitives", 1, 5, 4, {"shape-not-a-region": 3}, id="primitives-v5.7"),
    pytest.param("obss+sahi/tests/data/coco_utils", 3, 22, 2, {}, id="sahi-v4.4"),
])
def test_every_labelme_conformance_folder_reads_exactly(conformance_dir, folder, images, annotations,
                                                        categories, found):
    assert labelme.sniff(conformance_dir / folder)
    dataset = labelme.read(conformance_dir / folder)
    assert (len(dataset.images), len(dataset.annotations), len(dataset.categories)) == (images, annotations,
                                                                                         categories)
    assert codes(dataset) == found
    assert all(a.mask is not None and a.mask.area > 0 and a.defect is None for a in dataset.annotations)


def test_every_conformance_json_is_sniffed_and_no_coco_json_is(conformance_dir):
    files = sorted(conformance_dir.rglob("*.json"))
    claimed = [p for p in files if labelme.sniff(p)]
    assert len(claimed) == 16  # 13 wkentaro files + 3 sahi terrain files
    assert not any(converters.get("coco").sniff(p) for p in claimed)


def test_a_folders_other_json_files_and_a_folder_named_json_are_passed_over(samples_dir, tmp_path):
    folder = shutil.copytree(samples_dir / "labelme", tmp_path / "labelme")
    (folder / "train" / "classes.json").write_text('{"names": ["a", "b"]}')
    (folder / "val" / "notes.json").mkdir()

    def found(root: Path) -> list[Path]:
        return [p.relative_to(root) for p in labelme._json_files(root)]

    assert found(folder) == found(samples_dir / "labelme")
    read, original = labelme.read(folder), labelme.read(samples_dir / "labelme")
    assert [(i.id, i.file_name, i.split) for i in read.images] == \
        [(i.id, i.file_name, i.split) for i in original.images]


def test_primitives_each_shape_type(conformance_dir):
    dataset = labelme.read(conformance_dir / EXAMPLES / "primitives")
    areas = [(dataset.categories[a.category_id].name, a.mask.area) for a in dataset.annotations]
    # rectangle (32,35)-(132,135): 100x100 px by the pixel-centre rule (PIL would paint 101x101)
    assert areas[0] == ("rectangle", 10000) and areas[2] == ("rectangle", 15402)
    circle = dataset.annotations[1].mask  # centre (195, 84), rim (225, 125): r = 50.80
    assert circle.area == 8090 and abs(circle.area / (np.pi * 50.80 ** 2) - 1) < 0.003
    octagon = dataset.annotations[4].mask  # the 100x100 PNG crop, placed at (417.4, 305) rounded
    assert octagon.area == 7275 and octagon.bbox_xywh == (417.0, 305.0, 100.0, 100.0)
    skipped = [(f.details["shape"], f.message) for f in dataset.findings]
    assert [s for s, _ in skipped] == [4, 5, 6] and "is a linestrip, not a region" in skipped[2][1]


def test_group_id_merges_shapes_and_ignore_is_void(conformance_dir):
    grouped = labelme.read(conformance_dir / INSTANCE / "data_annotated")
    flat = labelme.read(conformance_dir / SEMANTIC / "data_annotated")
    person = next(c.id for c in grouped.categories.values() if c.name == "person")
    first = [a for a in grouped.annotations if a.image_id == 1 and a.category_id == person]
    assert len(first) == 2  # 2 shapes with group_id 0 -> one instance, plus one ungrouped person
    assert len([a for a in flat.annotations if a.image_id == 1 and a.category_id == person]) == 3
    assert [i.void.area if i.void else 0 for i in grouped.images] == [9258, 878, 0]


def test_embedded_image_size_disagreeing_with_json_is_a_finding(conformance_dir, tmp_path):
    data = json.loads((conformance_dir / EXAMPLES / "tutorial/apc2016_obj3.json").read_bytes())
    data["imageHeight"] = 900
    (tmp_path / "a.json").write_text(json.dumps(data))
    dataset = labelme.read(tmp_path / "a.json")
    assert (dataset.images[0].height, dataset.images[0].width) == (907, 1210)  # the image wins
    assert [f.code for f in dataset.findings] == ["image-size-mismatch"]
    assert "say 900x1210 but the embedded imageData is 907x1210" in dataset.findings[0].message


# parity with labelme's own conversions -----------------------------------------------


def test_parity_with_labelme2coco(conformance_dir):
    """Same instances and classes as labelme's annotations.json; its polygons are the raw points."""
    ours = labelme.read(conformance_dir / INSTANCE / "data_annotated")
    coco = json.loads((conformance_dir / INSTANCE / "data_dataset_coco/annotations.json").read_bytes())
    assert {c["id"]: c["name"] for c in coco["categories"] if c["id"] > 0} == \
        {c.id: c.name for c in ours.categories.values()}
    by_name = {Path(i.file_name).stem: i.id for i in ours.images}
    images = {i["id"]: Path(i["file_name"]).stem for i in coco["images"]}
    grouped = ours.annotations_by_image()
    assert len(ours.annotations) == len(coco["annotations"]) == 12
    ious = []
    for record in coco["annotations"]:
        image = next(i for i in ours.images if i.id == by_name[images[record["image_id"]]])
        theirs = Mask.from_polygons(record["segmentation"], image.height, image.width)
        candidates = [a for a in grouped[("", image.id)] if a.category_id == record["category_id"]]
        ious.append(max(a.mask.iou(theirs) for a in candidates))
    assert min(ious) == 1.0


def _painted(anns, void, shape_hw) -> np.ndarray:
    """Our instances painted in file order (later wins), void on top, as labelme2voc paints."""
    painted = np.zeros(shape_hw, np.int32)
    for value, ann in enumerate(anns, start=1):
        painted[ann.mask.to_bitmap()] = value
    if void is not None:
        painted[void.to_bitmap()] = -1
    return painted


def test_parity_with_labelme2voc_instances(conformance_dir):
    """Each VOC instance (PIL-rasterized) against ours, matched by (image, class, best IoU).

    labelme paints with PIL, which includes the boundary (and puts pixel centres
    on integer coordinates); segdata reads with pycocotools' pixel-centre rule.
    The difference is at most a one-pixel ring: every pixel of either mask lies
    within one pixel of the other.  It costs small objects most (the 815 px
    bottle: 0.934).
    """
    ours = labelme.read(conformance_dir / INSTANCE / "data_annotated")
    grouped = ours.annotations_by_image()
    voc = conformance_dir / INSTANCE / "data_dataset_voc"
    ring = np.ones((3, 3), bool)
    ious = []
    for image in ours.images:
        stem = Path(image.file_name).stem
        objects = np.asarray(Image.open(voc / "SegmentationObject" / f"{stem}.png"))  # P mode: indices
        classes = np.asarray(Image.open(voc / "SegmentationClass" / f"{stem}.png"))
        anns = grouped[("", image.id)]
        painted = _painted(anns, image.void, objects.shape)
        for value in sorted(set(np.unique(objects)) - {0, 255}):
            theirs = objects == value
            category = int(np.bincount(classes[theirs]).argmax())
            scores = [(Mask.from_bitmap(theirs).iou(Mask.from_bitmap(painted == k)), k)
                      for k, a in enumerate(anns, start=1) if a.category_id == category]
            iou, k = max(scores)
            mine = painted == k
            assert not (theirs & ~binary_dilation(mine, ring)).any()
            assert not (mine & ~binary_dilation(theirs, ring)).any()
            ious.append(iou)
    print(f"labelme2voc instance parity: n={len(ious)} min={min(ious):.4f} mean={np.mean(ious):.4f}")
    assert len(ious) == 12
    assert min(ious) >= 0.933 and np.mean(ious) >= 0.976  # measured 0.9336 and 0.9770


def test_parity_with_labelme2voc_classes(conformance_dir):
    ours = labelme.read(conformance_dir / SEMANTIC / "data_annotated")
    grouped = ours.annotations_by_image()
    ious = []
    for image in ours.images:
        classes = np.asarray(Image.open(conformance_dir / SEMANTIC / "data_dataset_voc/SegmentationClass"
                                        / f"{Path(image.file_name).stem}.png"))
        anns = grouped[("", image.id)]
        painted = _painted(anns, image.void, classes.shape)
        ids = np.array([0] + [a.category_id for a in anns])
        class_map = np.where(painted < 0, 255, ids[np.maximum(painted, 0)])
        assert set(np.unique(class_map)) == set(np.unique(classes))  # same classes, same void
        for value in sorted(set(np.unique(classes)) - {0, 255}):
            ious.append(Mask.from_bitmap(classes == value).iou(Mask.from_bitmap(class_map == value)))
    print(f"labelme2voc class parity: n={len(ious)} min={min(ious):.4f} mean={np.mean(ious):.4f}")
    assert len(ious) == 7 and min(ious) >= 0.933 and np.mean(ious) >= 0.977  # measured 0.9336, 0.9773


# round trips -------------------------------------------------------------------------


def test_sample_round_trip_reports_every_annotation_with_its_iou(samples_dir, tmp_path):
    source = converters.get("coco").read(samples_dir / "coco")
    report = labelme.write(source, tmp_path / "l", copy_images=True, workers=2)
    assert (report.images_written, report.annotations_written) == (60, 277)
    measured = [c.iou for c in report.changes if c.iou is not None]
    assert len(measured) == 277 and sum(measured) / len(measured) == 1.0
    assert report.counts() == {"polygon-written": 277}

    again = labelme.read(tmp_path / "l")
    assert not again.findings and again.splits == ["train", "val", "test"]
    assert {c.id: c.name for c in again.categories.values()} == \
        {c.id: c.name for c in source.categories.values()}
    by_name = {(i.split, i.file_name): i for i in again.images}
    written = again.annotations_by_image()
    ious = []
    for image, anns in source.iter_images():
        copy = by_name[(image.split, image.file_name)]
        assert copy.path is not None and copy.path.read_bytes() == image.path.read_bytes()
        back = written.get((copy.split, copy.id), [])
        assert [(a.category_id, a.iscrowd) for a in back] == [(a.category_id, a.iscrowd) for a in anns]
        ious += [a.mask.iou(b.mask) for a, b in zip(anns, back)]
    assert len(ious) == 277 and min(ious) == 1.0


def test_written_json_is_labelme_5_with_relative_image_path(samples_dir, tmp_path):
    source = converters.get("coco").read(samples_dir / "coco")
    labelme.write(source, tmp_path / "l", workers=1)
    document = json.loads((tmp_path / "l/train/scene_0001.json").read_bytes())
    assert document["imageData"] is None and document["version"].startswith("5.")
    assert (tmp_path / "l/train" / document["imagePath"]).resolve() == \
        (samples_dir / "coco/images/train/scene_0001.jpg").resolve()
    assert (tmp_path / "l/labels.txt").read_text().splitlines()[:3] == ["__ignore__", "_background_", "road"]


@pytest.mark.parametrize("bitmap", MASKS)
def test_zoo_masks_read_back_exactly(bitmap, tmp_path):
    height, width = bitmap.shape
    dataset = Dataset({1: Category(1, "thing")}, [ImageRecord(1, "a.png", width, height, split="train")],
                      [Annotation(1, 1, 1, Mask.from_bitmap(bitmap), split="train")])
    report = labelme.write(dataset, tmp_path / "out", workers=1)
    again = labelme.read(tmp_path / "out")
    if not bitmap.any():
        assert [c.kind for c in report.changes] == ["skipped"] and len(again.annotations) == 0
        return
    assert [c.iou for c in report.changes] == [1.0]
    assert len(again.annotations) == 1  # several parts -> several shapes sharing a group_id
    assert np.array_equal(again.annotations[0].mask.to_bitmap(), bitmap)


def test_void_is_written_as_ignore_shapes_and_read_back(conformance_dir, tmp_path):
    source = labelme.read(conformance_dir / INSTANCE / "data_annotated")
    labelme.write(source, tmp_path / "out", workers=1)
    again = labelme.read(tmp_path / "out")
    assert [i.void.area if i.void else 0 for i in again.images] == [9258, 878, 0]
    assert [a.category_id for a in again.annotations] == [a.category_id for a in source.annotations]


# bad input ---------------------------------------------------------------------------


def _broken(conformance_dir, tmp_path, edit) -> Path:
    folder = tmp_path / "bad"
    shutil.copytree(conformance_dir / EXAMPLES / "primitives", folder)
    path = folder / "primitives.json"
    data = json.loads(path.read_bytes())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def test_polygon_with_two_points_is_skipped_with_a_finding(conformance_dir, tmp_path):
    def edit(data):
        data["shapes"][3]["points"] = data["shapes"][3]["points"][:2]
    dataset = labelme.read(_broken(conformance_dir, tmp_path, edit))
    found = [f for f in dataset.findings if f.code == "polygon-too-few-points"]
    assert len(found) == 1 and found[0].details == {"shape": 3} and found[0].path.endswith("primitives.json")
    assert "shape 3 ('polygon', polygon): 2 point(s)" in found[0].message
    assert len(dataset.annotations) == 4


def test_bad_base64_mask_is_skipped_with_a_finding(conformance_dir, tmp_path):
    def edit(data):
        data["shapes"][7]["mask"] = "not base64!"
    dataset = labelme.read(_broken(conformance_dir, tmp_path, edit))
    found = [(f.code, f.details["shape"]) for f in dataset.findings if f.severity == "error"]
    assert found == [("mask-data-invalid", 7)] and len(dataset.annotations) == 4


def test_mask_that_is_base64_but_not_png_is_a_finding(conformance_dir, tmp_path):
    def edit(data):
        data["shapes"][7]["mask"] = base64.b64encode(b"GIF? no").decode()
    dataset = labelme.read(_broken(conformance_dir, tmp_path, edit))
    assert [f.code for f in dataset.findings if f.severity == "error"] == ["mask-data-invalid"]


def test_shape_without_points_is_a_format_error_naming_the_shape(conformance_dir, tmp_path):
    def edit(data):
        del data["shapes"][2]["points"]
    with pytest.raises(FormatError, match=r"primitives.json: shape 2: missing required key 'points'"):
        labelme.read(_broken(conformance_dir, tmp_path, edit))


def test_invalid_json_is_a_format_error(tmp_path):
    (tmp_path / "a.json").write_text('{"shapes": [ {"label": "x", ')
    with pytest.raises(FormatError, match="a.json"):
        labelme.read(tmp_path / "a.json")


def test_label_missing_from_labels_txt_is_a_finding(conformance_dir, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(conformance_dir / INSTANCE / "data_annotated", folder)
    (folder / "labels.txt").write_text("__ignore__\n_background_\nperson\n")
    dataset = labelme.read(folder)
    assert dataset.categories[1].name == "person"
    unknown = sorted({f.message.split("'")[1] for f in dataset.findings if f.code == "category-unknown"})
    assert unknown == ["bottle", "bus", "car", "chair", "sofa"]


def test_cli_convert_to_labelme_then_info(samples_dir, tmp_path):
    done = run_segdata("convert", samples_dir / "coco", tmp_path / "l", "--to", "labelme")
    assert done.returncode == 0, done.stderr
    info = run_segdata("info", tmp_path / "l", "--json")
    assert info.returncode == 0, info.stderr
    assert '"format": "labelme"' in info.stdout


def _sample_scene(samples_dir, tmp_path, edit) -> Path:
    """scene_0052 of the sample, copied with its image and its first shape edited."""
    for suffix in (".json", ".jpg"):
        shutil.copy(samples_dir / "labelme/test" / f"scene_0052{suffix}", tmp_path)
    path = tmp_path / "scene_0052.json"
    document = json.loads(path.read_text())
    edit(document["shapes"][0])
    path.write_text(json.dumps(document))
    return path


def test_unknown_shape_type_is_a_finding_and_skipped(samples_dir, tmp_path):
    near = labelme.read(_sample_scene(samples_dir, tmp_path, lambda s: s.update(shape_type=None)))
    assert not codes(near)["shape-type-unknown"]  # near miss: a null shape_type is read as a polygon
    shapes = json.loads((tmp_path / "scene_0052.json").read_text())["shapes"]
    assert len(near.annotations) == len(shapes)
    path = _sample_scene(samples_dir, tmp_path, lambda s: s.update(shape_type="blob"))
    dataset = labelme.read(path)
    found = [f for f in dataset.findings if f.code == "shape-type-unknown"]
    assert [(f.image_id, f.path) for f in found] == [(dataset.images[0].id, str(path))]
    assert "shape 0 ('road') has unknown shape_type 'blob'; skipped" in found[0].message
    assert len(dataset.annotations) == len(json.loads(path.read_text())["shapes"]) - 1


def test_shape_labelled_background_is_a_finding_and_skipped(samples_dir, tmp_path):
    near = labelme.read(_sample_scene(samples_dir, tmp_path, lambda s: s.update(label="background")))
    assert not codes(near)["shape-background"]  # near miss: a plain category named 'background'
    path = _sample_scene(samples_dir, tmp_path, lambda s: s.update(label="_background_"))
    dataset = labelme.read(path)
    found = [f for f in dataset.findings if f.code == "shape-background"]
    assert [(f.image_id, f.path, f.severity) for f in found] == [(dataset.images[0].id, str(path), "warning")]
    assert "shape 0 is labelled _background_, not a category; skipped" in found[0].message
    assert "_background_" not in {c.name for c in dataset.categories.values()}
