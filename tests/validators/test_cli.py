"""``segdata validate`` run as a user would: exit codes, JSON, --fix."""

from __future__ import annotations

import json

from segdata.converters import coco
from segdata.validators import validate
from tests.conftest import run_segdata


def test_help_has_an_example():
    result = run_segdata("validate", "--help")
    assert result.returncode == 0 and "$ segdata validate " in result.stdout


def test_clean_sample_exits_0_and_json_has_findings_and_summary(samples_dir):
    result = run_segdata("validate", samples_dir / "coco", "--json", "--workers", "2")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"findings", "summary"}
    assert printed["summary"]["by_severity"]["error"] == 0
    assert printed["summary"]["total"] == len(printed["findings"])
    assert set(printed["findings"][0]) == {"code", "severity", "message", "split", "image_id", "annotation_id",
                                           "path", "details"}


def test_fail_on_sets_the_exit_code(samples_dir):
    dirty = samples_dir / "coco-dirty"
    assert run_segdata("validate", dirty, "--json").returncode == 1
    assert run_segdata("validate", dirty, "--fail-on", "never").returncode == 0
    assert run_segdata("validate", samples_dir / "coco", "--fail-on", "warning").returncode == 1
    only_warnings = run_segdata("validate", dirty, "--only", "instance-overlap")
    assert only_warnings.returncode == 0 and "instance-overlap" in only_warnings.stdout


def test_only_and_skip_select_codes(samples_dir):
    result = run_segdata("validate", samples_dir / "coco-dirty", "--json", "--only", "bbox-mismatch,area-mismatch",
                         "--skip", "area-mismatch")
    assert result.returncode == 1
    assert [f["code"] for f in json.loads(result.stdout)["findings"]] == ["bbox-mismatch"]


def test_panoptic_mode_makes_overlaps_errors(samples_dir):
    result = run_segdata("validate", samples_dir / "coco", "--json", "--overlap-mode", "panoptic")
    assert result.returncode == 1
    assert json.loads(result.stdout)["summary"]["by_code"]["instance-overlap"]["severity"] == "error"


def test_unknown_code_is_a_usage_error_on_one_line(samples_dir):
    result = run_segdata("validate", samples_dir / "coco", "--only", "no-such-code")
    assert result.returncode == 2 and result.stdout == ""
    line, = result.stderr.strip().splitlines()
    assert line.startswith("segdata: error: unknown finding code(s) no-such-code; known codes: ")


def test_table_shows_counts_and_first_findings(samples_dir):
    result = run_segdata("validate", samples_dir / "coco-dirty")
    assert result.returncode == 1
    assert "area-mismatch" in result.stdout and "train image 1, annotation 4: polygon 0 crosses" in result.stdout
    assert "more instance-overlap" in result.stdout


def test_fix_writes_a_dataset_without_errors_and_otherwise_identical(samples_dir, tmp_path):
    out = tmp_path / "fixed"
    result = run_segdata("validate", samples_dir / "coco-dirty", "--fix", out, "--json", "--workers", "2")
    assert result.returncode == 1, result.stderr  # the findings are those of the input
    changes = json.loads(result.stdout)["fix"]["changes"]
    assert sorted((c["kind"], c["annotation_id"]) for c in changes) == [
        ("area-recomputed", 243), ("bbox-recomputed", 190), ("dropped-duplicate", 302), ("polygon-made-valid", 4)]

    # annotations only: the images stay where they are
    original = coco.read(samples_dir / "coco-dirty")
    fixed = coco.read(out, images_root=samples_dir / "coco-dirty")
    assert [f for f in validate(fixed, workers=2) if f.severity == "error"] == []
    assert [(i.split, i.id, i.file_name, i.width, i.height) for i in fixed.images] == [
        (i.split, i.id, i.file_name, i.width, i.height) for i in original.images]
    assert fixed.categories == original.categories
    kept = {(a.split, a.id): a for a in fixed.annotations}
    touched = {c["annotation_id"] for c in changes}
    for ann in original.annotations:
        if ann.id == 302:
            assert (ann.split, ann.id) not in kept
            continue
        new = kept[(ann.split, ann.id)]
        assert (new.image_id, new.category_id, new.iscrowd) == (ann.image_id, ann.category_id, ann.iscrowd)
        if ann.id not in touched:
            assert new.mask.rle["counts"] == ann.mask.rle["counts"], ann.id
            assert new.attributes == ann.attributes, ann.id  # stored area and bbox were already right


def test_fix_lists_changes_in_the_table(samples_dir, tmp_path):
    result = run_segdata("validate", samples_dir / "coco-dirty", "--fix", tmp_path / "fixed", "--only",
                         "bbox-mismatch")
    assert result.returncode == 1
    assert "bbox-recomputed val image 42, annotation 190" in result.stdout
