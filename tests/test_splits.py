"""Leakage-aware stratified group splits (segdata/splits.py) and ``segdata split``."""

from __future__ import annotations

import json
import shutil

import pytest

from segdata.converters import coco
from segdata.errors import UsageError
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from segdata.splits import split_dataset
from segdata.validators.leakage import find_leaks
from tests.conftest import run_segdata

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_dirty_sample_resplit_keeps_each_copy_with_its_source(samples_dir):
    dataset = coco.read(samples_dir / "coco-dirty")
    leaks = find_leaks(dataset, workers=1)
    new, report = split_dataset(dataset, FRACTIONS, leaks=leaks, seed=3)
    assert sum(report["images"].values()) == len(new.images) == 64
    assert report["units"] == 60 and report["groups_split"] == 0
    assert abs(report["images"]["train"] - 0.8 * 64) <= 3
    again = find_leaks(new, workers=1)
    assert again.summary["leak_pairs"] == 0
    assert again.summary["within_split"] == {"exact-file": 1, "near-duplicate": 3}
    assert len(new.annotations) == len(dataset.annotations)
    assert {(i.split, i.id) for i in new.images}.__len__() == 64  # ids unique within each new split
    assert all(share > 0 for shares in report["class_share"].values() for share in shares.values())
    assert report["max_class_deviation"] <= 0.3  # class 8 is in only 4 images: 2 / 1 / 1


def _images_with_classes(n: int) -> Dataset:
    """n images in 5 groups; class 2 is rare (every 7th image)."""
    square = Mask.from_polygons([[0, 0, 4, 0, 4, 4, 0, 4]], 8, 8)
    images = [ImageRecord(i, f"seq{i % 5}_{i:03d}.png", 8, 8, "pool") for i in range(n)]
    annotations = [Annotation(10 * i + c, i, c, square, split="pool")
                   for i in range(n) for c in ((1, 2) if i % 7 == 0 else (1,))]
    return Dataset({1: Category(1, "common"), 2: Category(2, "rare")}, images, annotations)


def test_groups_never_span_splits_and_fractions_are_followed():
    dataset = _images_with_classes(100)
    new, report = split_dataset(dataset, {"train": 0.6, "test": 0.4}, group_regex=r"seq(\d)_")
    by_group = {}
    for image in new.images:
        by_group.setdefault(image.file_name[:4], set()).add(image.split)
    assert all(len(splits) == 1 for splits in by_group.values())
    assert report["images"] == {"train": 60, "test": 40}
    assert [i.split for i in new.images] == sorted((i.split for i in new.images), key=["train", "test"].index)


def test_rare_class_is_spread_over_the_splits():
    new, report = split_dataset(_images_with_classes(140), {"train": 0.5, "test": 0.5}, seed=1)
    assert report["class_share"]["2"] == {"train": 0.5, "test": 0.5}
    assert report["max_class_deviation"] == 0.0


@pytest.mark.parametrize(("fractions", "message"), [
    pytest.param({"train": 0.8, "val": 0.1}, r"fractions must be positive and sum to 1", id="sum"),
    pytest.param({"train": 1.2, "val": -0.2}, r"fractions must be positive and sum to 1", id="negative"),
    pytest.param({}, r"fractions must be positive and sum to 1, found \{\}", id="empty"),
])
def test_bad_fractions_are_refused(fractions, message):
    with pytest.raises(UsageError, match=message):
        split_dataset(_images_with_classes(5), fractions)


def test_cli_split_writes_a_dataset_without_leaks(samples_dir, tmp_path):
    dirty = shutil.copytree(samples_dir / "coco-dirty", tmp_path / "dirty")
    out = tmp_path / "resplit"
    done = run_segdata("split", dirty, out, "--fractions", "train=0.7,val=0.15,test=0.15", "--json",
                       "--workers", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sum(result["images"].values()) == 64 and result["groups_split"] == 0
    recheck = run_segdata("leakage", out, "--workers", "1")
    assert recheck.returncode == 0, recheck.stdout + recheck.stderr
    bad = run_segdata("split", dirty, tmp_path / "x", "--fractions", "train:0.5")
    assert bad.returncode == 2
    assert "segdata: error: --fractions expects name=share pairs" in bad.stderr
    assert "Example: $ segdata split" in run_segdata("split", "--help").stdout
