"""``segdata report`` end to end: exit codes, the JSON document, the quick start, and the page in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdata import __version__
from segdata.converters import coco
from segdata.health import check_health
from segdata.io import dumps_json
from tests.conftest import REPO, run_segdata

CHROMIUM_SH = REPO / "docs" / "chromium.sh"


def _tree(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize(("sample", "fail_on", "code", "clean"), [
    pytest.param("coco-dirty", "error", 1, False, id="dirty-error"),
    pytest.param("coco-dirty", "never", 0, False, id="dirty-never"),
    pytest.param("coco", "warning", 0, True, id="clean-warning"),
    pytest.param("coco", "info", 1, True, id="clean-info-occlusions"),
])
def test_exit_code_follows_fail_on(samples_dir, sample, fail_on, code, clean):
    done = run_segdata("report", samples_dir / sample, "--fail-on", fail_on, "--json", "--workers", "1")
    assert done.returncode == code, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == {"schema_version", "verdict", "settings", "validate", "leakage", "stats",
                             "segdata_version"}
    assert document["verdict"]["clean"] is clean


def test_dirty_sample_terminal_summary_starts_with_the_verdict(samples_dir):
    done = run_segdata("report", samples_dir / "coco-dirty", "--workers", "1")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("not clean: 8 errors, 1 warning, 4 leaked images (val 2 of 12, 16.7%, test 2 of 12, "
                        "16.7%), rarest class 'kite' has 0.06% of pixels")
    assert "where to look next" in done.stdout and "segdata leakage" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["/nonexistent/data"], "segdata: error: /nonexistent/data: no such file or folder", id="no-path"),
    pytest.param(["{samples}/coco", "--split", "val"], "segdata: error: --split expects NAME=PATH, found 'val'",
                 id="split-without-path"),
])
def test_bad_input_exits_2_with_one_line(samples_dir, args, message):
    done = run_segdata("report", *[a.format(samples=samples_dir) for a in args])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [message]


def test_splits_from_separate_files_give_the_same_verdict(samples_dir):
    notes = samples_dir / "coco-dirty" / "annotations"
    done = run_segdata("report", notes / "instances_train.json", "--split", f"val={notes / 'instances_val.json'}",
                       "--split", f"test={notes / 'instances_test.json'}", "--json", "--fail-on", "never",
                       "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"]["line"].startswith("not clean: 8 errors, 1 warning, 4 leaked images")


def test_streamed_json_is_the_library_document_byte_for_byte(samples_dir):
    """The CLI streams validation's findings (packed, then written one by one); the bytes are dumps_json's."""
    dataset = coco.read(samples_dir / "coco-dirty")
    document = {**check_health(dataset, workers=1).to_dict(), "segdata_version": __version__}
    done = run_segdata("report", samples_dir / "coco-dirty", "--json", "--fail-on", "never", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert len(document["validate"]["findings"]) > 10
    assert done.stdout.encode() == dumps_json(document, indent=True) + b"\n"


def test_quickstart_writes_only_the_report(samples_dir, tmp_path):
    """The README's first command: exit 0, report.html in the working folder, nothing beside the dataset."""
    before = _tree(samples_dir)
    done = run_segdata("report", samples_dir / "coco-dirty", "--fail-on", "never", "--out", "report.html",
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert _tree(samples_dir) == before
    page = (tmp_path / "report.html").read_text()
    assert (f"Made by <code>segdata report {samples_dir / 'coco-dirty'} --out report.html --fail-on never</code> "
            f"with segdata {__version__}.") in page


def test_cache_dir_keeps_fingerprints_for_the_next_run(samples_dir, tmp_path):
    cache = tmp_path / "cache"
    for cached in (0, 60):
        done = run_segdata("report", samples_dir / "coco", "--cache-dir", cache, "--json", "--workers", "1")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["leakage"]["summary"]["cached"] == cached
    assert (cache / "fingerprints.npz").is_file()


def _chromium(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CHROMIUM_SH), *map(str, args)], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def browser() -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI is set and chromium is absent: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


def test_page_renders_in_headless_chromium(browser, samples_dir, tmp_path):
    """The same docs/chromium.sh that makes the README's screenshot: DOM after scripts ran, and a real picture."""
    page = tmp_path / "report.html"
    done = run_segdata("report", samples_dir / "coco-dirty", "--fail-on", "never", "--out", page, "--workers", "1")
    assert done.returncode == 0, done.stderr
    dom = _chromium("dump-dom", page, tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr
    assert 'data-rendered="yes"' in dom.stdout  # the page's one script ran to its end
    assert "not clean: 8 errors, 1 warning, 4 leaked images" in dom.stdout
    for section in ("verdict", "validation", "leakage", "statistics", "weights", "next", "provenance"):
        assert f'id="{section}"' in dom.stdout
    shot = tmp_path / "shot.png"
    done = _chromium("screenshot", page, shot, tmp_path / "profile-shot")
    assert done.returncode == 0, done.stderr
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape == (1500, 1100, 3)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 1000  # thumbnails and text, not a blank or single-colour page
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 70) & (pixels[..., 2] < 70)
    assert red[:300].sum() > 10_000  # the red verdict banner near the top
