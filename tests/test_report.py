"""The health check (segdata/health.py) and its HTML page (segdata/html_report.py), on the samples."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageFile

from segdata.converters import coco
from segdata.errors import UsageError
from segdata.health import check_health, judge, next_steps, stage_totals, verdict_line
from segdata.html_report import THUMB_SIDE, render_html, thumbnail
from segdata.model import ImageRecord
from segdata.stats import class_stats
from segdata.validators import validate
from segdata.validators.leakage import find_leaks
from tests.validators.test_leakage import _planted_leaks
from tests.validators.test_samples import _located, _planted


@pytest.fixture(scope="module")
def dirty(samples_dir):
    dataset = coco.read(samples_dir / "coco-dirty")
    return dataset, check_health(dataset, workers=1)


@pytest.fixture(scope="module")
def clean(samples_dir):
    dataset = coco.read(samples_dir / "coco")
    return dataset, check_health(dataset, workers=1)


def _page(dataset, report, path="sample_datasets/coco-dirty") -> str:
    document = report.to_dict()
    return render_html(document, [f.to_dict() for f in report.findings()], dataset, title=path,
                       command=f"segdata report {path} --out report.html", version="9.9",
                       next_steps=next_steps(document, path))


def test_dirty_sample_problems_are_exactly_the_planted_ones(samples_dir, dirty):
    _dataset, report = dirty
    readme = (samples_dir / "coco-dirty" / "README.md").read_text()
    problems = [f for f in report.findings() if f.severity != "info"]
    leaks = {(f.code, f.split, f.image_id, f.details["other_split"], f.details["other_image_id"])
             for f in problems if f.code.startswith("leak-")}
    others = {_located(f) for f in problems if not f.code.startswith("leak-")}
    assert len(problems) == 9
    assert leaks == _planted_leaks(readme)
    assert others == _planted(readme)
    natural = int(re.search(r"\*\*(\d+)\*\* pairs of non-crowd instances", readme).group(1))
    info = [f for f in report.findings() if f.severity == "info"]
    assert len(info) == natural and {f.code for f in info} == {"instance-overlap"}
    assert max(f.details["iou"] for f in info) < 0.3


def test_dirty_sample_verdict(dirty):
    verdict = dirty[1].verdict
    assert (verdict["clean"], verdict["errors"], verdict["warnings"], verdict["leaked_images"]) == (False, 8, 1, 4)
    assert verdict["leaked"] == {"val": {"images": 12, "leaking": 2, "share": round(2 / 12, 4)},
                                 "test": {"images": 12, "leaking": 2, "share": round(2 / 12, 4)}}
    assert verdict["line"] == ("not clean: 8 errors, 1 warning, 4 leaked images (val 2 of 12, 16.7%, test 2 of 12, "
                               "16.7%), rarest class 'kite' has 0.06% of pixels")


def test_clean_sample_verdict_is_clean(clean):
    _dataset, report = clean
    assert report.verdict["clean"] is True
    assert report.verdict["line"] == "clean: 0 errors, 0 warnings, no leaked images, rarest class 'kite' has 0.06% of pixels"
    assert {f.severity for f in report.findings()} == {"info"}  # natural occlusions, counted, not problems


def test_overlap_iou_zero_keeps_every_overlap_a_warning(clean):
    dataset, report = clean
    strict = check_health(dataset, overlap_iou=0.0, workers=1)
    overlaps = sum(f.code == "instance-overlap" for f in report.findings())
    assert overlaps > 0 and strict.verdict["warnings"] == overlaps and not strict.verdict["clean"]


def test_sections_are_each_commands_own_json(samples_dir, dirty):
    dataset, report = dirty
    document = report.to_dict()
    assert set(document) == {"schema_version", "verdict", "settings", "validate", "leakage", "stats"}
    assert document["leakage"] == find_leaks(dataset, workers=1).to_dict()
    assert document["stats"] == class_stats(dataset, workers=1).to_dict()
    alone = [f.to_dict() for f in validate(dataset, workers=1)]
    ours = document["validate"]["findings"]
    assert [(f["code"], f["image_id"], f["annotation_id"], f["message"]) for f in ours] == [
        (f["code"], f["image_id"], f["annotation_id"], f["message"]) for f in alone]
    changed = [(a["code"], a["severity"], b["severity"]) for a, b in zip(alone, ours) if a != b]
    assert set(changed) == {("instance-overlap", "warning", "info")}


def test_each_image_file_is_decoded_once(samples_dir, monkeypatch):
    """Only the leakage check decodes image files: validation reads headers, stats never opens them.

    So the report decodes exactly what ``find_leaks`` alone does: each file once for its fingerprint, and
    at most the two files of a near-duplicate candidate pair once more to compare their pixels.
    """
    decodes = []
    load = ImageFile.ImageFile.load

    def counting_load(self):
        if self.tile:  # tiles left to decode: this call decodes (a loaded image has none)
            decodes.append(self)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    dataset = coco.read(samples_dir / "coco-dirty")
    report = check_health(dataset, workers=1)
    in_report = len(decodes)
    decodes.clear()
    find_leaks(dataset, workers=1)
    near = report.leakage.pairs[report.leakage.pairs.kind.isin(["near-duplicate", "exact-pixels"])]
    assert in_report == len(decodes)
    assert len(dataset.images) <= in_report <= len(dataset.images) + 2 * len(near)


def test_progress_reports_each_stage_in_full(samples_dir):
    dataset = coco.read(samples_dir / "coco")
    seen: dict[str, int] = {}
    check_health(dataset, workers=1, progress=lambda stage, units: seen.__setitem__(stage, seen.get(stage, 0) + units))
    assert seen == stage_totals(dataset) == {"validate": 60, "leakage": 60, "stats": 60}  # one pass each


def test_bad_overlap_iou_is_refused_before_any_work(samples_dir):
    with pytest.raises(UsageError, match=r"overlap_iou must be in \[0, 1\], found 1.5"):
        check_health(coco.read(samples_dir / "coco"), overlap_iou=1.5)


def test_verdict_names_a_class_without_pixels():
    stats = {"classes": [{"is_background": False, "id": 3, "name": "kite", "pixels": 0, "pixel_share_all": 0.0}],
             "alerts": []}
    verdict = judge([], {"evaluation": {}}, stats)
    assert verdict["line"] == "clean: 0 errors, 0 warnings, no leaked images, rarest class 'kite' has no pixels"
    assert verdict_line({**verdict, "clean": False, "errors": 1}).startswith("not clean: 1 error, 0 warnings")


class _Refs(HTMLParser):
    """Every src/href value and every tag of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data"):
                self.refs.append((tag, name, value or ""))
            if name == "id":
                self.ids.add(value)


def test_html_is_self_contained_and_every_image_decodes(dirty):
    dataset, report = dirty
    page = _page(dataset, report)
    parser = _Refs()
    parser.feed(page)
    external = [r for r in parser.refs if not (r[2].startswith("#") or r[2].startswith("data:image/"))]
    assert external == []
    assert re.findall(r"url\(", page) == [] and "@import" not in page
    without_data = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", page)
    assert "://" not in without_data and "//" not in re.sub(r"<!DOCTYPE html>", "", without_data)
    images = [value for tag, name, value in parser.refs if tag == "img"]
    for uri in images:
        with Image.open(BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as decoded:
            decoded.load()
            assert min(decoded.size) > 10
    # 9 problem images (7 codes, 3 near-duplicates), 4 leaked pairs side by side, 3 plots
    assert len(images) == 9 + 2 * 4 + 3
    assert {"verdict", "validation", "leakage", "statistics", "weights", "next", "provenance"} <= parser.ids
    assert "not clean: 8 errors, 1 warning, 4 leaked images" in page
    assert "segdata report sample_datasets/coco-dirty --out report.html" in page and "segdata 9.9" in page


def test_html_is_deterministic(dirty):
    dataset, report = dirty
    assert _page(dataset, report) == _page(dataset, report)


def test_thumbnail_outlines_the_annotation_and_nothing_else(dirty):
    dataset, _report = dirty
    image = next(i for i in dataset.images if (i.split, i.id) == ("train", 1))
    ann = next(a for a in dataset.annotations if (a.split, a.id) == ("train", 4))  # the bow-tie

    def decode(uri):
        return np.asarray(Image.open(BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"), np.int16)

    plain, marked = decode(thumbnail(image, [])), decode(thumbnail(image, [(ann, (255, 0, 0))]))
    assert plain.shape == marked.shape == (image.height, image.width, 3)  # 160×120: small images stay as they are
    rows, cols = np.nonzero(np.abs(marked - plain).max(axis=2) > 60)
    scale = plain.shape[1] / image.width
    x, y, w, h = (v * scale for v in ann.mask.bbox_xywh)
    assert len(rows) > 20
    margin = 4 + 8  # the line's half width, and JPEG ringing around it
    assert x - margin <= cols.min() and cols.max() <= x + w + margin
    assert y - margin <= rows.min() and rows.max() <= y + h + margin


def test_thumbnail_of_a_missing_file_is_a_placeholder_of_the_declared_shape():
    uri = thumbnail(ImageRecord(1, "gone.jpg", 640, 320, "train"), [])
    with Image.open(BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as decoded:
        assert decoded.size == (THUMB_SIDE, THUMB_SIDE // 2)
