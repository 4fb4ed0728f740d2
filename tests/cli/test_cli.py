"""The real ``segdata`` command, run in a subprocess as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

from segdata import __version__, converters
from segdata.converters import coco
from tests.conftest import run_segdata


def test_loading_the_cli_leaves_the_heavy_libraries_unloaded():
    code = "import sys, segdata.cli; print(sorted({'pandas', 'scipy', 'shapely', 'cv2', 'matplotlib'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_version():
    result = run_segdata("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"segdata {__version__}"


def test_every_command_has_help_with_an_example():
    for command in ("info", "convert"):
        result = run_segdata(command, "--help")
        assert result.returncode == 0 and "$ segdata " + command in result.stdout


def test_info_json_counts_splits_and_categories(samples_dir):
    result = run_segdata("info", samples_dir / "coco", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    dataset = coco.read(samples_dir / "coco")
    assert summary["schema_version"] == 1 and summary["format"] == "coco"
    assert summary["totals"]["images"] == len(dataset.images)
    assert summary["totals"]["annotations"] == len(dataset.annotations)
    assert set(summary["splits"]) == {"train", "val", "test"}
    assert [c["id"] for c in summary["categories"]] == list(dataset.categories)
    assert summary["defects"] == {}


def test_info_table_is_readable(samples_dir):
    result = run_segdata("info", samples_dir / "coco")
    assert result.returncode == 0 and "categories" in result.stdout and "total" in result.stdout


def test_convert_reencodes_to_polygons_and_reports(samples_dir, tmp_path):
    report_path = tmp_path / "report.json"
    result = run_segdata("convert", samples_dir / "coco", tmp_path / "out", "--to", "coco",
                         "--mask-encoding", "polygon", "--report", report_path, "--json", "--workers", "2")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(report_path.read_text())
    assert printed["annotations_written"] == len(coco.read(samples_dir / "coco").annotations)
    assert {a.mask.face for a in coco.read(tmp_path / "out").annotations} == {"polygon"}


def test_truncated_json_is_one_line_naming_file_and_position(tmp_path):
    bad = tmp_path / "instances_train.json"
    bad.write_text('{"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}], "annotations": [')
    result = run_segdata("info", bad)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"segdata: error: {bad}: line 1 column 88: invalid JSON (unexpected end of data)"]


def test_missing_key_names_the_record_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "instances_train.json"
    bad.write_text('{"images": [{"id": 5, "file_name": "a.jpg", "height": 3}], "annotations": []}')
    result = run_segdata("info", bad)
    assert result.returncode == 2
    assert result.stderr == f"segdata: error: {bad}: image 5: missing required key 'width'\n"
    debug = run_segdata("--debug", "info", bad)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_flagged_records_are_counted_not_fatal(tmp_path):
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 2]]},
                        {"id": 2, "image_id": 3, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]]}],
    }))
    result = run_segdata("info", path, "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["defects"] == {"image-ref-unknown": 1, "polygon-box-ambiguous": 1}


def test_unknown_format_and_non_empty_destination_exit_2(samples_dir, tmp_path):
    result = run_segdata("convert", samples_dir / "coco", tmp_path, "--to", "nope")
    known = ", ".join(sorted(converters.FORMATS))
    assert result.returncode == 2 and f"unknown format 'nope'; known formats: {known}" in result.stderr
    (tmp_path / "x").write_text("")
    result = run_segdata("convert", samples_dir / "coco", tmp_path, "--to", "coco")
    assert result.returncode == 2 and "not empty; pass --overwrite" in result.stderr


def test_unknown_folder_lists_what_was_tried(tmp_path):
    result = run_segdata("info", tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"segdata: error: {tmp_path}: not a dataset of any known format")
    for name in converters.FORMATS:
        assert f"{name}: {converters.get(name).LOOKS_FOR}" in line
    assert line.endswith("name the format with --from or --format")
