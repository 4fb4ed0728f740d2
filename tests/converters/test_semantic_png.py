"""converters/semantic_png.py: third-party label maps, segdata's own maps, round trips, bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata import converters
from segdata.compose import compose_image, settings
from segdata.converters import semantic_png
from segdata.converters._raster import masks_by_value, read_label_png
from segdata.errors import FormatError, ReadError, UsageError
from segdata.masks import Mask
from segdata.model import Annotation
from segdata.semantic import write_maps
from tests.converters.stored_checks import assert_equals_eager, mask_key, read_alike_on_two_processes

MMSEG = "open-mmlab+mmsegmentation/tests/data"


@pytest.fixture
def names16(tmp_path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(f"c{i}" for i in range(16)) + "\n")
    return path


@pytest.mark.parametrize("folder, images, per_class, void_px, finding_codes", [
    pytest.param(f"{MMSEG}/pseudo_dataset/gts", 5, {0: 5, 1: 1, 2: 2, 3: 2}, 0, [], id="mmseg-palette"),
    pytest.param(f"{MMSEG}/pseudo_loveda_dataset/ann_dir", 3, {1: 3, 2: 2, 3: 2, 4: 3, 6: 2, 7: 3}, 0, [],
                 id="loveda-starts-at-1"),
    pytest.param(f"{MMSEG}/pseudo_potsdam_dataset/ann_dir", 1, {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}, 0, [],
                 id="potsdam"),
    pytest.param(f"{MMSEG}/pseudo_synapse_dataset/ann_dir", 2, {0: 2}, 0, [], id="all-zero"),
    pytest.param(f"{MMSEG}/pseudo_isaid_dataset/ann_dir", 2, {}, 0, ["label-map-unreadable"] * 2, id="zero-byte"),
    pytest.param(f"{MMSEG}/pseudo_nyu_dataset/annotations", 1, None, 0, ["label-value-unknown"], id="depth-16bit"),
    pytest.param(f"{MMSEG}/pseudo_cityscapes_dataset/gtFine/val/frankfurt", 3, None, 3869,
                 ["label-value-unknown"] * 2, id="cityscapes-trainids-255"),
    pytest.param("pytorch+vision/test/assets", 1, {i: 1 for i in range(8)}, 0, [], id="torchvision"),
])
def test_mmseg_and_torchvision_label_maps(conformance_dir, names16, folder, images, per_class, void_px,
                                         finding_codes):
    ds = semantic_png.read(conformance_dir / folder, classes=names16)
    assert len(ds.images) == images
    if per_class is not None:
        assert dict(sorted(Counter(a.category_id for a in ds.annotations).items())) == per_class
    assert sum(i.void.area for i in ds.images if i.void) == void_px
    assert [f.code for f in ds.findings] == finding_codes
    assert all(f.path.endswith(".png") for f in ds.findings)
    usable = [i for i in ds.images if not i.defect]
    assert sum(a.mask.area for a in ds.annotations) + void_px == sum(i.width * i.height for i in usable)


def test_depth_map_values_are_named_not_guessed(conformance_dir, names16):
    ds = semantic_png.read(conformance_dir / MMSEG / "pseudo_nyu_dataset/annotations", classes=names16)
    [finding] = ds.findings
    assert len(finding.details["values"]) == 848 and "values 1485, 1486" in finding.message
    assert sum(a.defect == "category-unknown" for a in ds.annotations) == 848


def test_labelme_class_names_make_0_background(conformance_dir):
    folder = conformance_dir / "wkentaro+labelme/examples/video_annotation/data_dataset_voc"
    ds = semantic_png.read(folder / "SegmentationClassPNG", classes=folder / "class_names.txt")
    assert {c.id: c.name for c in ds.categories.values()} == {1: "car", 2: "track"}
    assert [a.mask.area for a in ds.annotations if a.category_id == 1] == [8942] * 5
    assert [a.mask.area for a in ds.annotations if a.category_id == 2] == [54094, 56621, 60054, 63110, 66363]


def test_coco_stuff_palette_maps_with_a_json_table(conformance_dir, tmp_path):
    stuff = json.loads((conformance_dir / "cocodataset+cocoapi/annotations/stuff_examples.json").read_bytes())
    table = {"background_value": 0, "void_value": None,
             "classes": [{"value": c["id"], "id": c["id"], "name": c["name"]} for c in stuff["categories"]]}
    (tmp_path / "stuff.json").write_text(json.dumps(table))
    ds = semantic_png.read(conformance_dir / "cocodataset+cocoapi/results/segmentations/examples",
                           classes=tmp_path / "stuff.json")
    assert [(i.width, i.height) for i in ds.images] == [(640, 480), (335, 500)]
    assert len(ds.annotations) == 48 and ds.findings == []  # 18 + 30 stuff values, indices not colours
    assert sum(a.mask.area for a in ds.annotations if a.category_id == 183) == 83809  # "other" in both maps


def test_missing_class_table_is_a_clear_error(conformance_dir):
    with pytest.raises(FormatError, match="no class table: expected classes.json.*--classes"):
        semantic_png.read(conformance_dir / MMSEG / "pseudo_dataset/gts")


def test_write_maps_output_sniffs_and_reads_back(samples_dir, tmp_path):
    source = converters.read(samples_dir / "coco")
    write_maps(source, tmp_path / "maps", workers=1)
    assert converters.sniff(tmp_path / "maps") == "semantic-png"
    ds = converters.read(tmp_path / "maps")
    assert len(ds.images) == 60 and sorted(ds.splits) == ["test", "train", "val"]
    assert sum(i.void.area for i in ds.images if i.void) > 0  # crowd regions written as void
    write_maps(source, tmp_path / "ids", instance_ids=True, workers=1)
    assert not semantic_png.sniff(tmp_path / "ids") and not semantic_png.sniff(samples_dir / "coco")


def test_round_trip_class_maps_equal_the_union_per_class(samples_dir, tmp_path):
    source = converters.read(samples_dir / "coco")
    report = semantic_png.write(source, tmp_path / "out", workers=2)
    grouped = Counter((a.split, a.image_id, a.category_id) for a in source.annotations if not a.iscrowd)
    merged = sum(n for n in grouped.values() if n > 1)
    assert report.counts()["merged"] == merged == 138
    change = next(c for c in report.changes if c.kind == "merged")
    assert change.detail.startswith("merged with ") and "other instances of class " in change.detail
    again = semantic_png.read(tmp_path / "out")
    back = {(i.split, Path(i.file_name).stem): i for i in again.images}
    by_image = again.annotations_by_image()
    config = settings(source.categories)
    exact = 0
    for image, anns in source.iter_images():
        copy = back[(image.split, Path(image.file_name).stem)]
        read_back = {a.category_id: a.mask.to_bitmap() for a in by_image.get((copy.split, copy.id), [])}
        expected = compose_image(image, anns, config).class_map
        for cat_id in source.categories:
            assert np.array_equal(read_back.get(cat_id, np.zeros_like(expected, bool)), expected == cat_id)
        things = [a for a in anns if not a.iscrowd]
        bitmaps = {a.id: a.mask.to_bitmap() for a in things}
        if not any(a.iscrowd for a in anns) and not any(
                (bitmaps[a.id] & bitmaps[b.id]).any() for a in things for b in things
                if a.category_id != b.category_id):
            for cat_id in {a.category_id for a in things}:  # no cross-class overlap: exactly the union
                union = np.logical_or.reduce([bitmaps[a.id] for a in things if a.category_id == cat_id])
                assert np.array_equal(read_back[cat_id], union)
            exact += 1
    assert exact > 10


def _copy_gts(conformance_dir: Path, tmp_path: Path) -> Path:
    folder = Path(shutil.copytree(conformance_dir / MMSEG / "pseudo_dataset/gts", tmp_path / "gts"))
    (folder / "classes.json").write_text(json.dumps(
        {"background_value": 0, "void_value": 255, "classes": [{"value": 1, "id": 1, "name": "a"},
                                                               {"value": 2, "id": 2, "name": "b"}]}))
    return folder


def test_value_without_class_and_size_mismatch_are_findings(conformance_dir, tmp_path):
    folder = _copy_gts(conformance_dir, tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    for index in range(5):
        Image.new("RGB", (256, 128) if index else (64, 32)).save(images / f"0000{index}_gt.jpg")
    ds = semantic_png.read(folder, images_root=images)
    codes = [(f.code, f.image_id) for f in ds.findings]
    assert codes == [("label-map-size-mismatch", 1), ("label-value-unknown", 4), ("label-value-unknown", 5)]
    assert "values 3 have no class" in ds.findings[1].message and ds.findings[1].path.endswith("00003_gt.png")
    assert ds.images[0].defect == "label-map-size-mismatch" and ds.images[0].file_name == "00000_gt.jpg"
    report = semantic_png.write(ds, tmp_path / "out", workers=1)
    assert report.counts() == {"skipped": 3}  # the mismatched image and the two class-3 annotations


def test_category_equal_to_background_is_refused(conformance_dir, tmp_path, names16):
    ds = semantic_png.read(conformance_dir / MMSEG / "pseudo_potsdam_dataset/ann_dir", classes=names16)
    with pytest.raises(UsageError, match="category 0 has the background value 0"):
        semantic_png.write(ds, tmp_path / "out", workers=1)
    report = semantic_png.write(ds, tmp_path / "out", background_value=254, workers=1)
    again = semantic_png.read(tmp_path / "out")
    assert report.annotations_written == 6
    assert [a.mask.area for a in again.annotations] == [a.mask.area for a in ds.annotations]


# columns kept, masks cut again where an image is worked on ---------------------------------------------


def _eager(root: Path, classes: Path | None = None) -> tuple[list[Annotation], list[Mask | None]]:
    """Every map cut into its masks at once, as the reader did before it kept columns; each image's void."""
    table = semantic_png._class_table(root, classes)
    maps = sorted(p for p in root.rglob("*.png")
                  if p.relative_to(root).parts[0] not in ("instance_ids", "panoptic"))
    annotations, voids = [], []
    for image_id, path in enumerate(maps, start=1):
        parts = path.relative_to(root).parts
        try:
            values = read_label_png(path)
        except (FormatError, ReadError):
            voids.append(None)
            continue
        masks = masks_by_value(values, skip=(table.background,))
        voids.append(masks.pop(table.void, None))
        for value, mask in masks.items():
            known = value in table.values
            annotations.append(Annotation(len(annotations) + 1, image_id, table.values.get(value, value),
                                          mask, split=parts[0] if len(parts) > 1 else "",
                                          defect=None if known else "category-unknown",
                                          attributes={"value": value}))
    return annotations, voids


@pytest.mark.parametrize("folder", [
    pytest.param(f"{MMSEG}/pseudo_dataset/gts", id="mmseg-palette"),
    pytest.param(f"{MMSEG}/pseudo_loveda_dataset/ann_dir", id="loveda"),
    pytest.param(f"{MMSEG}/pseudo_isaid_dataset/ann_dir", id="zero-byte"),
    pytest.param(f"{MMSEG}/pseudo_nyu_dataset/annotations", id="depth-16bit"),
    pytest.param(f"{MMSEG}/pseudo_cityscapes_dataset/gtFine/val/frankfurt", id="cityscapes-trainids-255"),
    pytest.param("pytorch+vision/test/assets", id="torchvision"),
    pytest.param("bdd100k+bdd100k/tests/eval/testcases/lane/gts", id="bdd-lanes-void"),
])
def test_a_read_keeps_columns_and_gives_the_masks_cut_at_once(conformance_dir, names16, folder):
    ds = semantic_png.read(conformance_dir / folder, classes=names16)
    expected, voids = _eager(conformance_dir / folder, names16)
    assert_equals_eager(ds, expected)
    assert [mask_key(image.void) for image in ds.images] == [mask_key(void) for void in voids]
    for finding in (f for f in ds.findings if f.code == "label-value-unknown"):
        areas = {a.attributes["value"]: a.mask.area for a in expected if a.image_id == finding.image_id}
        assert finding.details["pixels"] == [areas[value] for value in finding.details["values"]]


def test_the_sample_and_a_labelme_folder_read_as_their_masks_cut_at_once(samples_dir, conformance_dir):
    sample = samples_dir / "semantic-png"
    ds = semantic_png.read(sample)
    expected, voids = _eager(sample)
    assert len(expected) == 196 and sum(v is not None for v in voids) == 3
    assert_equals_eager(ds, expected)
    assert [mask_key(image.void) for image in ds.images] == [mask_key(void) for void in voids]
    folder = conformance_dir / "wkentaro+labelme/examples/video_annotation/data_dataset_voc"
    ds = semantic_png.read(folder / "SegmentationClassPNG", classes=folder / "class_names.txt")
    assert_equals_eager(ds, _eager(folder / "SegmentationClassPNG", folder / "class_names.txt")[0])


def test_a_map_changed_after_reading_is_an_error_naming_it(conformance_dir, tmp_path):
    folder = _copy_gts(conformance_dir, tmp_path)
    ds = semantic_png.read(folder)
    assert [len(anns) for _, anns in ds.iter_images()] == [1, 1, 1, 1, 1]
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "00001_gt.png")
    with pytest.raises(FormatError, match=r"00001_gt.png: the label map changed since it was read: it now "
                                          r"holds 1 distinct values, it held at least 2"):
        list(ds.annotations)


def test_maps_read_on_two_processes_give_the_one_process_read(samples_dir, monkeypatch, tmp_path):
    folder = Path(shutil.copytree(samples_dir / "semantic-png", tmp_path / "maps"))
    maps = sorted(folder.rglob("*.png"))
    images = tmp_path / "images"
    for index, path in enumerate(maps[:8]):  # an image of another size, one that cannot be read
        target = images / path.parent.name / f"{path.stem}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        if index == 6:
            target.write_bytes(b"not a jpeg")
        else:
            Image.new("RGB", (8, 8) if index == 7 else read_label_png(path).shape[::-1]).save(target)
    values = read_label_png(maps[5]).copy()
    values[0, :3] = 77  # a value without a class
    Image.fromarray(values).save(maps[5])
    maps[3].write_bytes(b"not a png")
    one, pids = read_alike_on_two_processes(lambda: semantic_png.read(folder, images_root=images),
                                            semantic_png, "_map_facts", monkeypatch, tmp_path)
    assert {f.code for f in one.findings} == {"label-map-unreadable", "label-value-unknown",
                                             "label-map-size-mismatch", "image-unreadable"}
    assert len(pids) == len(maps)
