"""Tests of ``converters/label_maps.py`` with ``segdata/stats.py``: pixels of label-map datasets are PNG histograms.

The three label-map samples were written from ``sample_datasets/coco`` with
smaller instances on top and crowd regions as void (VOC, semantic-png) or
as their class (Cityscapes has no void value), so their pixel counts are
known twice: from the PNG files themselves, read here with Pillow alone, and
from the COCO original.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from segdata import converters, stats
from segdata.combine import combine_splits
from segdata.converters import label_maps
from segdata.errors import UsageError
from segdata.model import Category, Dataset, ImageRecord
from segdata.stats import class_stats
from tests.conftest import png_stating_size, run_segdata


def _pillow_counts(sample_dir, fmt):
    """Pixels per value of every class-map PNG (Pillow + np.bincount), with the format's value rules."""
    if fmt == "semantic-png":
        table = json.loads((sample_dir / "classes.json").read_text())
        files = sorted(sample_dir.glob("*/*.png"))
        to_class = {c["value"]: c["id"] for c in table["classes"]}
        background, void = table["background_value"], table["void_value"]
    elif fmt == "voc":
        files = sorted((sample_dir / "SegmentationClass").glob("*.png"))
        to_class, background, void = None, 0, 255
    else:
        files = sorted((sample_dir / "gtFine").glob("*/*/*_gtFine_instanceIds.png"))
        to_class, background, void = None, 0, None
    pixels, images = {}, {}
    for path in files:
        with Image.open(path) as image:
            values = np.asarray(image).astype(np.int64)
        if fmt == "cityscapes":
            values = np.where(values >= 1000, values // 1000, values)
        counts = np.bincount(values.ravel())
        for value in np.flatnonzero(counts):
            if value == void:
                continue
            key = 0 if value == background else (to_class[value] if to_class else int(value))
            pixels[key] = pixels.get(key, 0) + int(counts[value])
            if key:
                images[key] = images.get(key, 0) + 1
    return len(files), pixels, images


@pytest.fixture(scope="module")
def coco_pixels(samples_dir):
    """COCO's pixels per class (smaller-on-top, crowd void) and its void pixels."""
    dataset = converters.read(samples_dir / "coco")
    table = class_stats(dataset, workers=1).classes.set_index("id")
    void = sum(image.width * image.height for image in dataset.images) - int(table["pixels"].sum())
    return table["pixels"].astype(int).to_dict(), void


@pytest.mark.parametrize("fmt", ["semantic-png", "voc", "cityscapes"])
def test_label_map_pixels_are_the_png_histogram(samples_dir, fmt, monkeypatch):
    path = samples_dir / fmt
    dataset = converters.read(path)
    maps = label_maps.locate(dataset, path)
    assert len(maps) == len(dataset.images) == 60

    def no_compose(*args, **kwargs):
        raise AssertionError("a label-map image was composed from instances")

    monkeypatch.setattr(stats, "count_image", no_compose)  # workers=1: the job runs in this process
    result = class_stats(dataset, workers=1, label_maps=maps)
    files, pixels, images = _pillow_counts(path, fmt)
    assert files == 60 and result.settings["images_from_label_maps"] == 60
    assert result.settings["unknown_pixels"] == 0
    table = result.classes.set_index("id")
    assert table["pixels"].astype(int).to_dict() == {i: pixels.get(i, 0) for i in table.index}
    assert {i: int(n) for i, n in table["pixel_images"].items() if i} == \
        {i: images.get(i, 0) for i in table.index if i}
    assert int(table.loc[0, "pixels"]) == pixels[0] > 0  # background is its own row


@pytest.mark.parametrize("fmt", ["semantic-png", "voc", "cityscapes"])
def test_label_map_pixels_equal_the_coco_original(samples_dir, fmt, coco_pixels):
    pixels, coco_void = coco_pixels
    path = samples_dir / fmt
    dataset = converters.read(path)
    table = class_stats(dataset, workers=2, label_maps=label_maps.locate(dataset, path)).classes
    found = table.set_index("id")["pixels"].astype(int).to_dict()
    if fmt == "cityscapes":  # no void value: the crowd regions (all of class person, 3) were written as class 3
        assert coco_void == 5735 and found[3] == pixels[3] + coco_void
        found[3] = pixels[3]
    assert found == pixels


def test_label_map_values_background_void_and_unknown(tmp_path):
    """A hand-made semantic-png folder: value 7 maps to category 70, 254 is background, 0 is void, 9 unknown."""
    table = {"background_value": 254, "void_value": 0, "classes": [{"id": 70, "name": "x", "value": 7}]}
    (tmp_path / "classes.json").write_text(json.dumps(table))
    (tmp_path / "train").mkdir()
    Image.fromarray(np.array([[7, 7, 254, 0], [9, 9, 9, 254]], np.uint8)).save(tmp_path / "train" / "a.png")
    dataset = converters.read(tmp_path, "semantic-png")
    maps = label_maps.locate(dataset, tmp_path)
    assert maps[("train", 1)].count() == label_maps.LabelCounts((2, 4), {70: 2}, 2, 1, 3)
    result = class_stats(dataset, workers=1, label_maps=maps)
    row = result.classes.set_index("id")
    assert int(row.loc[70, "pixels"]) == 2 and int(row.loc[0, "pixels"]) == 2  # background row is id 0
    assert result.settings["unknown_pixels"] == 3
    assert row.loc[70, "pixel_share_all"] == pytest.approx(2 / 8)


def test_cli_a_map_past_pillows_bomb_guard_is_a_finding_not_a_crash(tmp_path):
    """200M pixels: Pillow refuses to decode the map (a guard against decompression bombs); the reader's
    finding says so, and the command goes on."""
    table = {"background_value": 0, "void_value": 255, "classes": [{"id": 1, "name": "x", "value": 1}]}
    (tmp_path / "classes.json").write_text(json.dumps(table))
    (tmp_path / "train").mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.ones((4, 5), np.uint8)).save(tmp_path / "train" / name)
    huge = tmp_path / "train" / "a.png"
    huge.write_bytes(png_stating_size(huge.read_bytes(), 20000, 10000))
    result = run_segdata("validate", tmp_path, "--format", "semantic-png", "--json", "--workers", "1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    finding, = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "label-map-unreadable"]
    assert finding["path"] == str(huge) and finding["message"].startswith(
        "not decoded: Image size (200000000 pixels) exceeds limit")
    stats = json.loads(run_segdata("stats", tmp_path, "--format", "semantic-png", "--json").stdout)
    assert stats["images"]["images"] == 1 and stats["settings"]["images_skipped"] == 1  # counted, not dropped


def test_sixteen_bit_instance_ids_are_counted_by_class(tmp_path):
    values = np.array([[26001, 26002, 26], [7, 0, 0]], np.uint16)
    Image.fromarray(values).save(tmp_path / "m.png")
    cars = label_maps.LabelMap(tmp_path / "m.png", {7: 7, 26: 26}, 0, frozenset(), instance_ids=True)
    assert cars.count() == label_maps.LabelCounts((2, 3), {26: 3, 7: 1}, 2, 0, 0)


def test_other_formats_have_no_label_maps(samples_dir):
    assert label_maps.locate(converters.read(samples_dir / "coco"), samples_dir / "coco") == {}


def test_voc_image_without_a_class_map_is_composed(samples_dir, tmp_path):
    voc = tmp_path / "voc"
    shutil.copytree(samples_dir / "voc", voc, ignore=shutil.ignore_patterns("JPEGImages"))
    (voc / "SegmentationClass" / "scene_0001.png").unlink()  # instances remain, from SegmentationObject
    dataset = converters.read(voc)
    maps = label_maps.locate(dataset, voc)
    assert len(maps) == 59
    result = class_stats(dataset, workers=1, label_maps=maps)
    assert result.settings["images_from_label_maps"] == 59 and result.settings["images_skipped"] == 0


# ------------------------------------------------------------------------------------ --split NAME=PATH


def test_cli_split_paths_name_the_splits(samples_dir):
    annotations = samples_dir / "coco" / "annotations"
    result = run_segdata("stats", annotations / "instances_train.json", "--split",
                         f"holdout={annotations / 'instances_val.json'}", "--split", f"maps={samples_dir / 'voc'}",
                         "--json", "--workers", "1")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["splits"]) == {"train", "holdout", "maps"}  # JSON keys are sorted
    images = {split: part["images"]["images"] for split, part in data["splits"].items()}
    assert images == {"train": 40, "holdout": 10, "maps": 60}
    assert data["settings"]["images_from_label_maps"] == 60  # the VOC part is counted on its PNGs
    whole = json.loads(run_segdata("stats", samples_dir / "coco", "--json", "--workers", "1").stdout)
    train = {c["id"]: c["pixels"] for c in whole["splits"]["train"]["classes"]}
    assert {c["id"]: c["pixels"] for c in data["splits"]["train"]["classes"]} == train
    assert data["split_comparison"]["reference"] == "train" and "holdout" in data["split_comparison"]["js_distance"]


@pytest.mark.parametrize(("value", "message"), [
    pytest.param("val", "--split expects NAME=PATH, found 'val'", id="no-equals"),
    pytest.param("=x.json", "--split expects NAME=PATH", id="no-name"),
    pytest.param("a b=x.json", "a split name is letters", id="bad-name"),
])
def test_cli_split_refuses_bad_values(samples_dir, value, message):
    result = run_segdata("stats", samples_dir / "coco", "--split", value)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("segdata: error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_split_refuses_a_split_given_twice(samples_dir):
    annotations = samples_dir / "coco" / "annotations"
    result = run_segdata("stats", samples_dir / "coco", "--split", f"val={annotations / 'instances_val.json'}")
    assert result.returncode == 2
    assert result.stderr.startswith("segdata: error: split 'val' comes from both ")


def test_combine_refuses_clashing_categories_and_ids():
    def part(name, split="train"):
        return Dataset({1: Category(1, name)}, [ImageRecord(1, "x.jpg", 4, 2, split=split)], [])

    with pytest.raises(UsageError, match="category 1 is 'b' in b.json but 'a' in a.json"):
        combine_splits([(None, part("a"), "a.json"), ("val", part("b"), "b.json")])
    merged = Dataset({1: Category(1, "a")}, [ImageRecord(1, "x.jpg", 4, 2, split="train"),
                                              ImageRecord(1, "y.jpg", 4, 2, split="val")], [])
    with pytest.raises(UsageError, match="image id 1 appears twice in split 'test'"):
        combine_splits([("test", merged, "both.json")])
    original = part("a")
    combined = combine_splits([("val", original, "a.json")])
    assert combined.images[0].split == "val" and original.images[0].split == "train"  # input untouched


def test_read_dataset_joins_the_split_paths(samples_dir):
    from segdata.cli._options import read_dataset

    annotations = samples_dir / "coco" / "annotations"
    alone = read_dataset(annotations / "instances_train.json", None, None, None)
    joined = read_dataset(annotations / "instances_train.json", [f"holdout={annotations / 'instances_val.json'}"],
                          "coco", None)
    assert alone.splits == ["train"] and joined.splits == ["train", "holdout"]
    assert len(joined.images) == len(alone.images) + 10
    assert {a.split for a in joined.annotations} == {"train", "holdout"}
