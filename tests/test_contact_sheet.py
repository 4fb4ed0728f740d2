"""The contact sheet of leaked pairs (segdata/contact_sheet.py); `--preview` is tested with the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segdata.contact_sheet import (CELL_HW, cell_box_ltrb, leaked_pairs_by_severity, sheet_size_wh,
                                   write_leak_sheet)
from segdata.converters import coco


def _pair(kind: str, a: str, b: str, distance: int | None, split_b: str = "val") -> dict:
    return {"kind": kind, "split_a": "train", "image_a": a, "split_b": split_b, "image_b": b,
            "distance": distance}


#: Pairs of dirty-sample images in the --json form, out of severity order: three real leaks, one made-up
#: same-name pair, and a within-split pair (never drawn).
PAIRS = [
    _pair("same-name", "scene_0001.jpg", "scene_0041.jpg", None),
    _pair("near-duplicate", "scene_0005.jpg", "scene_0062.jpg", 2),
    _pair("exact-file", "scene_0018.jpg", "scene_0064.jpg", 0),
    _pair("near-duplicate", "scene_0002.jpg", "scene_0061.jpg", 0, "test"),
    _pair("exact-file", "scene_0003.jpg", "scene_0004.jpg", 0, "train"),  # within train: not a leak
]


@pytest.fixture(scope="module")
def dirty(samples_dir):
    return coco.read(samples_dir / "coco-dirty")


def _gray(path) -> np.ndarray:
    with Image.open(path) as opened:
        return np.asarray(opened.convert("L"))


def test_pairs_are_ordered_strongest_kind_then_closest_and_within_split_pairs_left_out():
    order = [(p["kind"], p["image_b"]) for p in leaked_pairs_by_severity(PAIRS)]
    assert order == [("exact-file", "scene_0064.jpg"), ("near-duplicate", "scene_0061.jpg"),
                     ("near-duplicate", "scene_0062.jpg"), ("same-name", "scene_0041.jpg")]


def test_rows_are_bounded_and_the_rest_counted(dirty, tmp_path):
    path = tmp_path / "two.png"
    assert write_leak_sheet(PAIRS, dirty, path, max_rows=2) == {"path": str(path), "rows": 2, "left_out": 2}
    sheet = _gray(path)
    assert sheet.shape[::-1] == sheet_size_wh(2)
    footer = sheet[cell_box_ltrb(1, 0)[3] + 30:]  # below the last row's captions: the "left out" line
    assert (footer < 128).any()
    everything = write_leak_sheet(PAIRS, dirty, tmp_path / "all.png")
    assert (everything["rows"], everything["left_out"]) == (4, 0)


def test_a_missing_image_is_a_grey_cell_and_the_row_is_still_drawn(dirty, tmp_path):
    pairs = [_pair("same-group", "scene_0018.jpg", "not_in_the_dataset.jpg", None)]
    assert write_leak_sheet(pairs, dirty, tmp_path / "s.png")["rows"] == 1
    sheet = _gray(tmp_path / "s.png")
    left, top, right, bottom = cell_box_ltrb(0, 1)
    missing = sheet[top:bottom, left:right]
    assert np.median(missing) == 226 and (missing < 128).any()  # light grey, with the reason written on it
    left, top, right, bottom = cell_box_ltrb(0, 0)
    assert sheet[top:bottom, left:right].std() > 20


def test_no_leak_gives_a_one_line_sheet(dirty, tmp_path):
    assert write_leak_sheet(PAIRS[-1:], dirty, tmp_path / "none.png") == {
        "path": str(tmp_path / "none.png"), "rows": 0, "left_out": 0}
    sheet = _gray(tmp_path / "none.png")
    assert sheet.shape[::-1] == sheet_size_wh(0) and sheet.shape[0] < CELL_HW[0]
    assert (sheet < 128).any()  # "no leaks between splits"


def test_max_rows_below_one_is_refused(dirty, tmp_path):
    with pytest.raises(ValueError, match="max_rows must be at least 1, found 0"):
        write_leak_sheet(PAIRS, dirty, tmp_path / "x.png", max_rows=0)
    assert not (tmp_path / "x.png").exists()
