"""Leakage-aware stratified group splits (segdata/splits.py) and ``segdata split``."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter, defaultdict

import numpy as np
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


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fractions", [
    pytest.param({"train": 0.8, "val": 0.1, "test": 0.1}, id="80-10-10"),
    pytest.param({"train": 0.7, "val": 0.15, "test": 0.15}, id="70-15-15"),
])
def test_dirty_sample_split_has_no_leak_and_classes_of_20_images_within_5_points(samples_dir, fractions,
                                                                                   seed):
    dataset = coco.read(samples_dir / "coco-dirty")
    new, _ = split_dataset(dataset, fractions, leaks=find_leaks(dataset, workers=1), seed=seed)
    again = find_leaks(new, workers=1)
    assert again.pairs[again.pairs.split_a != again.pairs.split_b].empty  # no leak of any kind, warnings too
    assert not [f for f in again.findings if f.code.startswith("leak-")]
    images_of = defaultdict(set)  # class -> (split, image id) of its images, counted on the output itself
    for ann in new.annotations:
        images_of[ann.category_id].add((ann.split, ann.image_id))
    common = {c: Counter(split for split, _ in images)
              for c, images in images_of.items() if len(images) >= 20}
    assert sorted(len(images_of[c]) for c in common) == [22, 33, 37, 43, 49]  # fence, tree, person, car, road
    for category, per_split in common.items():
        total = sum(per_split.values())
        for split, fraction in fractions.items():
            assert abs(per_split[split] / total - fraction) <= 0.05, (category, split, per_split[split])


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
    done = run_segdata("split", dirty, out, "--ratios", "0.7,0.15,0.15", "--json", "--workers", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ratios"] == {"train": 0.7, "val": 0.15, "test": 0.15}
    assert sum(result["images"].values()) == 64 and result["groups_split"] == 0
    assert result["leaks_after"] == {"leak_pairs": 0, "by_kind": {}}
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "instances_test.json", "instances_train.json", "instances_val.json"]
    shown = run_segdata("split", dirty, tmp_path / "shown", "--workers", "1")
    assert shown.returncode == 0, shown.stderr
    assert "leakage check on the new splits: 0 leak pairs" in shown.stdout
    assert re.search(r"train \(80 %\).*val \(10 %\).*test \(10 %\)", shown.stdout)
    assert re.search(r"│ road\s+│\s+49 │", shown.stdout)  # a class row: name and image count
    distances = r"train/val 0\.\d{4}, train/test 0\.\d{4}, val/test 0\.\d{4}"
    assert re.search(r"Jensen–Shannon distance .*: " + distances, shown.stdout.replace("\n", " "))
    recheck = run_segdata("leakage", out, "--workers", "1")
    assert recheck.returncode == 0, recheck.stdout + recheck.stderr
    assert "Example: $ segdata split" in run_segdata("split", "--help").stdout


def test_cli_split_two_ratios_default_to_train_and_test_and_names_are_kept(samples_dir, tmp_path):
    dirty = shutil.copytree(samples_dir / "coco-dirty", tmp_path / "dirty")
    two = run_segdata("split", dirty, tmp_path / "two", "--ratios", "0.75,0.25", "--json", "--workers", "1")
    assert two.returncode == 0, two.stderr
    assert json.loads(two.stdout)["ratios"] == {"train": 0.75, "test": 0.25}  # --json sorts keys
    assert sorted(p.name for p in (tmp_path / "two" / "annotations").iterdir()) == [
        "instances_test.json", "instances_train.json"]
    named = run_segdata("split", dirty, tmp_path / "named", "--ratios", "0.6,0.2,0.1,0.1",
                        "--names", "fit,tune,holdout,audit", "--seed", "4", "--json", "--workers", "1")
    assert named.returncode == 0, named.stderr
    result = json.loads(named.stdout)
    assert result["ratios"] == {"fit": 0.6, "tune": 0.2, "holdout": 0.1, "audit": 0.1}
    assert sum(result["images"].values()) == 64
    assert set(result["js_distance"]) == {"fit/tune", "fit/holdout", "fit/audit", "tune/holdout",
                                          "tune/audit", "holdout/audit"}
    assert result["leaks_after"]["leak_pairs"] == 0


def _js_base2(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance in bits, from its definition (no SciPy)."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return math.sqrt((kl(p) + kl(q)) / 2)


def test_cli_split_js_distance_matches_the_written_splits(samples_dir, tmp_path):
    dirty = shutil.copytree(samples_dir / "coco-dirty", tmp_path / "dirty")
    out = tmp_path / "resplit"
    done = run_segdata("split", dirty, out, "--ratios", "0.7,0.15,0.15", "--seed", "2", "--json",
                       "--workers", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    written = coco.read(out)  # counted on the files the command wrote, not on its report
    classes = sorted(written.categories)
    images_of = defaultdict(set)
    for ann in written.annotations:
        images_of[(ann.split, ann.category_id)].add(ann.image_id)
    counts = {split: np.array([len(images_of[(split, c)]) for c in classes], float)
              for split in ("train", "val", "test")}
    expected = {f"{a}/{b}": _js_base2(counts[a], counts[b])
                for a, b in (("train", "val"), ("train", "test"), ("val", "test"))}
    assert result["js_distance"] == pytest.approx(expected, abs=1e-6)
    assert all(0 < value < 0.3 for value in expected.values())
    totals = sum(counts.values())
    assert result["class_images"] == {str(c): int(n) for c, n in zip(classes, totals)}
    for k, c in enumerate(classes):
        assert result["class_share"][str(c)] == pytest.approx(
            {split: counts[split][k] / totals[k] for split in counts}, abs=1e-4)


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--ratios", "0.8,a"], "--ratios expects comma-separated numbers like 0.8,0.1,0.1, "
                 "found '0.8,a'", id="not-a-number"),
    pytest.param(["--ratios", "0.8,0.1"], "--ratios must be positive and sum to 1, found '0.8,0.1'",
                 id="sum"),
    pytest.param(["--ratios", "1.2,-0.2"], "--ratios must be positive and sum to 1", id="negative"),
    pytest.param(["--ratios", "0.4,0.3,0.2,0.1"], "--ratios gives 4 splits: name them with --names",
                 id="four-unnamed"),
    pytest.param(["--ratios", "0.5,0.5", "--names", "train,val,test"],
                 "--names gives 3 split name(s) for 2 ratio(s)", id="count"),
    pytest.param(["--ratios", "0.5,0.5", "--names", "a,a"], "--names must be distinct split names",
                 id="twice"),
    pytest.param(["--ratios", "0.5,0.5", "--names", "a,../b"], "--names must be distinct split names",
                 id="path"),
])
def test_cli_split_bad_ratios_or_names_are_one_error_line(tmp_path, samples_dir, args, message):
    done = run_segdata("split", samples_dir / "coco-dirty", tmp_path / "x", *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"segdata: error: {message}")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "x").exists()
