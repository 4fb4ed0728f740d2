"""File checks on real image files: missing, unreadable, and declared size vs header size after EXIF."""

from __future__ import annotations

import pytest
from PIL import Image

from segdata.validators import validate
from tests.conftest import png_stating_size
from tests.validators.coco_files import document, read

FILE_CODES = ["file-missing", "file-unreadable", "image-size-mismatch"]


def _images(*entries):
    return [{"id": i, "file_name": name, "width": w, "height": h} for i, (name, w, h) in enumerate(entries, 1)]


def _codes(tmp_path, images):
    return sorted(f.code for f in validate(read(tmp_path, document([], images=images)), only=FILE_CODES, workers=1))


def _rotated(path, width, height):
    """An image stored ``width × height`` whose EXIF orientation 6 shows it rotated 90° (a PNG's eXIf chunk
    before its pixels, where Pillow writes it)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (width, height)).save(path, exif=exif)


def test_file_missing_and_present(tmp_path):
    Image.new("L", (20, 20)).save(tmp_path / "a.png")
    assert _codes(tmp_path, _images(("a.png", 20, 20), ("gone.png", 20, 20))) == ["file-missing"]
    assert _codes(tmp_path, _images(("a.png", 20, 20))) == []


def test_file_missing_message_names_the_expected_path(tmp_path):
    Image.new("L", (20, 20)).save(tmp_path / "a.png")
    finding, = validate(read(tmp_path, document([], images=_images(("a.png", 20, 20), ("b.png", 20, 20)))),
                        only=["file-missing"], workers=1)
    assert finding.image_id == 2 and str(tmp_path / "b.png") in finding.message


def test_file_unreadable_zero_bytes_but_not_a_valid_png(tmp_path):
    Image.new("L", (20, 20)).save(tmp_path / "a.png")
    (tmp_path / "empty.png").write_bytes(b"")
    assert _codes(tmp_path, _images(("a.png", 20, 20), ("empty.png", 20, 20))) == ["file-unreadable"]


@pytest.mark.parametrize(("declared", "expected"), [
    pytest.param((30, 20), ["image-size-mismatch"], id="wider-than-declared"),
    pytest.param((20, 20), [], id="same-size"),
])
def test_image_size_mismatch(tmp_path, declared, expected):
    Image.new("L", (30, 20)).save(tmp_path / "a.png")
    Image.new("L", (20, 20)).save(tmp_path / "b.png")
    assert _codes(tmp_path, _images(("a.png", 30, 20), ("b.png", *declared))) == expected


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_size_is_compared_after_exif_orientation(tmp_path, suffix):
    _rotated(tmp_path / f"a{suffix}", 20, 10)
    assert _codes(tmp_path, _images((f"a{suffix}", 10, 20))) == []  # shown rotated: 10 wide, 20 high
    finding, = validate(read(tmp_path, document([], images=_images((f"a{suffix}", 20, 10)))),
                        only=FILE_CODES, workers=1)
    assert finding.code == "image-size-mismatch" and "after EXIF orientation" in finding.message
    assert finding.details == {"declared_wh": [20, 10], "real_wh": [10, 20], "exif_orientation": 6}


def test_a_header_past_pillows_bomb_guard_is_read_not_refused(tmp_path):
    Image.new("L", (20, 20)).save(tmp_path / "a.png")
    (tmp_path / "huge.png").write_bytes(png_stating_size((tmp_path / "a.png").read_bytes(), 20000, 10000))
    assert _codes(tmp_path, _images(("huge.png", 20000, 10000))) == []
    assert _codes(tmp_path, _images(("huge.png", 20000, 9999))) == ["image-size-mismatch"]

