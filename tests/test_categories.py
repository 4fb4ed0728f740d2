"""Category-id control: kept unless asked, renumbered or mapped on request, every change reported."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from segdata import converters
from segdata.categories import read_category_map, remap_categories
from segdata.errors import FormatError, UsageError
from segdata.model import Annotation, Category, Dataset
from tests.conftest import run_segdata


@pytest.fixture(scope="module")
def sample(samples_dir):
    return converters.read(samples_dir / "coco")


def test_keep_changes_nothing(sample):
    remapped, changes = remap_categories(sample)
    assert changes == [] and remapped.categories == sample.categories
    assert [a.category_id for a in remapped.annotations] == [a.category_id for a in sample.annotations]


@pytest.mark.parametrize("mode, first", [("contiguous0", 0), ("contiguous1", 1)])
def test_contiguous_renumbers_in_id_order_and_reports_each_annotation(sample, mode, first):
    remapped, changes = remap_categories(sample, ids=mode)
    assert [(c.id, c.name) for c in remapped.categories.values()] == \
        [(old.id - 1 + first, old.name) for old in sample.categories.values()]
    assert all(new.category_id == old.category_id - 1 + first
               for new, old in zip(remapped.annotations, sample.annotations))
    assert len(changes) == (len(sample.annotations) if first == 0 else 0)
    assert sample.annotations[0].category_id in sample.categories  # the input is left as it was


def test_map_merges_renames_and_drops(sample, tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"car": {"id": 2, "name": "vehicle"}, "7": 2, "kite": None, "4": 40}))
    remapped, changes = remap_categories(sample, mapping=read_category_map(path))
    assert {c.id: c.name for c in remapped.categories.values()} == \
        {1: "road", 2: "vehicle", 3: "person", 5: "fence", 6: "sign", 40: "tree"}
    source = Counter(a.category_id for a in sample.annotations)
    result = Counter(a.category_id for a in remapped.annotations)
    assert result[2] == source[2] + source[7] and result[40] == source[4] and 8 not in result
    kinds = Counter(c.kind for c in changes)
    assert kinds == {"category-remapped": source[7] + source[4], "dropped": source[8], "category-dropped": 1}
    assert len(remapped.annotations) == len(sample.annotations) - source[8]


def test_unused_background_marker_is_not_a_class():
    data = Dataset({0: Category(0, "_background_"), 1: Category(1, "cat")}, [], [Annotation(1, 1, 1, None)])
    remapped, changes = remap_categories(data, ids="contiguous0")
    assert list(remapped.categories) == [0] and remapped.categories[0].name == "cat"
    assert [c.kind for c in changes] == ["category-dropped", "category-remapped"]
    used = Dataset({0: Category(0, "_background_")}, [], [Annotation(1, 1, 0, None)])
    assert list(remap_categories(used)[0].categories) == [0]  # annotated: a class after all, kept


def test_map_typos_and_bad_targets_are_refused(sample, tmp_path):
    with pytest.raises(UsageError, match="names 'cra', which is neither the id nor the name"):
        remap_categories(sample, mapping={"cra": 1})
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"car": "1"}))
    with pytest.raises(FormatError, match=r"map.json: key 'car': target must be an integer id"):
        read_category_map(path)
    path.write_text("[1, 2]")
    with pytest.raises(FormatError, match="must be a JSON object"):
        read_category_map(path)


def test_cli_reports_remapping_and_refuses_options_the_target_cannot_use(sample, samples_dir, tmp_path):
    (tmp_path / "map.json").write_text(json.dumps({"kite": None}))
    result = run_segdata("convert", samples_dir / "coco", tmp_path / "out", "--to", "coco",
                         "--category-map", tmp_path / "map.json", "--category-ids", "contiguous1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    kites = sum(a.category_id == 8 for a in sample.annotations)
    assert report["changes_by_kind"] == {"category-dropped": 1, "dropped": kites} and kites == 4
    written = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert [c["id"] for c in written["categories"]] == [1, 2, 3, 4, 5, 6, 7]
    result = run_segdata("convert", samples_dir / "coco", tmp_path / "other", "--to", "coco", "--overlap", "void")
    assert result.returncode == 2
    assert result.stderr.strip() == "segdata: error: --overlap does not apply when writing coco"
