"""converters/_raster.py: image sizes from headers, panoptic ids, and a bad file as one error naming it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from segdata.compose import rgb_to_ids
from segdata.converters._raster import image_size, read_ids_png, read_label_png, read_rgb_png
from segdata.errors import FormatError, ReadError
from tests.conftest import png_stating_size

MAP = "semantic-png/test/scene_0055.png"


def test_png_cut_inside_its_pixel_data_gives_its_size_but_not_its_values(samples_dir, tmp_path):
    """A size is a header read, never a decode (readers ask it of every image); label values need it all."""
    data = (samples_dir / MAP).read_bytes()
    pixels = data.index(b"IDAT")
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: pixels + (len(data) - pixels) // 2])
    with Image.open(samples_dir / MAP) as whole:
        assert image_size(cut) == whole.size
    with pytest.raises(FormatError, match=r"cut\.png: cannot decode image: image file is truncated"):
        read_label_png(cut)


def test_a_header_past_pillows_bomb_guard_gives_its_size_and_a_decode_one_error(samples_dir, tmp_path):
    """20000 × 10000 is 200M pixels: Pillow's guard refuses to open it, though a size needs no decode."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_stating_size((samples_dir / MAP).read_bytes(), 20000, 10000))
    assert image_size(huge) == (20000, 10000)
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(FormatError, match=r"huge\.png: not decoded: Image size \(200000000 pixels\) exceeds"):
        read_label_png(huge)
    assert Image.MAX_IMAGE_PIXELS == limit == 89478485  # the guard is back, at Pillow's value


@pytest.mark.parametrize("content, error, message", [
    pytest.param(None, ReadError, "no such file", id="missing"),
    pytest.param(b"", FormatError, "not an image Pillow can read", id="zero-bytes"),
    pytest.param(b"not a png at all", FormatError, "not an image Pillow can read", id="garbage"),
    pytest.param(20, FormatError, "cannot decode image", id="header-cut"),
])
def test_unreadable_header_is_one_error_naming_the_file(samples_dir, tmp_path, content, error, message):
    path = tmp_path / "bad.png"
    if isinstance(content, int):
        content = (samples_dir / MAP).read_bytes()[:content]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=rf"^{re.escape(str(path))}: {message}"):
        image_size(path)


# panoptic ids, decoded by segdata.png ---------------------------------------------------------------


def test_ids_of_every_panoptic_and_rgb24_map_are_pillows(samples_dir, conformance_dir):
    datumaro = conformance_dir / "openvinotoolkit+datumaro/tests/assets/coco_dataset"
    maps = [*samples_dir.glob("coco-panoptic/annotations/*/*.png"), *datumaro.glob("*/annotations/panoptic_*/*.png"),
            *conformance_dir.glob("bdd100k+bdd100k/tests/label/testcases/panseg_coco/**/*.png")]
    assert len(maps) > 60
    for path in maps:
        ids = read_ids_png(path)
        assert ids.dtype == np.uint32 and np.array_equal(ids, rgb_to_ids(read_rgb_png(path))), path


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "LA"])
def test_ids_of_a_map_in_any_8_bit_mode_are_pillows(tmp_path, mode):
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    image = rgb.quantize(40) if mode == "P" else rgb.convert(mode)
    image.save(tmp_path / "map.png")
    assert np.array_equal(read_ids_png(tmp_path / "map.png"), rgb_to_ids(read_rgb_png(tmp_path / "map.png")))


@pytest.mark.parametrize("content, error, message", [
    pytest.param(None, ReadError, "no such file", id="missing"),
    pytest.param(b"not a png at all", FormatError, "not an image Pillow can read", id="garbage"),
    pytest.param(20, FormatError, "cannot decode image", id="header-cut"),
    pytest.param(-40, FormatError, "cannot decode image", id="pixels-cut"),
    pytest.param("bomb", FormatError, r"not decoded: Image size \(200000000 pixels\) exceeds", id="bomb"),
])
def test_an_unreadable_ids_map_is_one_error_naming_the_file(samples_dir, tmp_path, content, error, message):
    source = next(samples_dir.glob("coco-panoptic/annotations/*/*.png")).read_bytes()
    path = tmp_path / "bad.png"
    if content == "bomb":
        content = png_stating_size(source, 20000, 10000)
    elif isinstance(content, int):
        content = source[:content]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=rf"^{re.escape(str(path))}: {message}"):
        read_ids_png(path)
