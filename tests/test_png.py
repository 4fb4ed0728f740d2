"""segdata/png.py: decode_rgb gives OpenCV's pixels for every PNG other tools wrote, says what is wrong."""

from __future__ import annotations

import io
import struct
import zlib
from collections import Counter

import cv2
import numpy as np
import pytest
from PIL import Image

from segdata import png

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def opencv_rgb(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def pillow_png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_every_conformance_and_sample_png_decodes_to_opencvs_pixels(conformance_dir, samples_dir):
    kinds = Counter()
    for path in sorted([*conformance_dir.rglob("*.png"), *samples_dir.rglob("*.png")]):
        data = path.read_bytes()
        if not data.startswith(SIGNATURE):  # a few empty placeholder files
            continue
        assert np.array_equal(png.decode_rgb(data), opencv_rgb(data)), path
        depth, colour = data[24], data[25]
        kinds[colour, depth] += 1
    # grey 1/8/16-bit, RGB, palette and RGBA; by mmsegmentation, BDD100K, cocoapi, Cityscapes, segdata…
    assert {(0, 1), (0, 8), (0, 16), (2, 8), (3, 8), (6, 8)} <= set(kinds), kinds
    assert sum(kinds.values()) > 600


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16"])
@pytest.mark.parametrize("options", [{}, {"optimize": True}, {"compress_level": 0}],
                         ids=["default", "optimize", "stored"])
def test_pillow_writes_every_colour_type_and_decode_rgb_reads_it_as_opencv_does(mode, options):
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (120, 170, 4), dtype=np.uint8)  # every row filter (RGBA: two IDAT chunks)
    noise[30:90, 40:150] = (10, 200, 30, 255)  # and a flat region, as in a label map
    image = Image.fromarray(noise, "RGBA")
    if mode == "I;16":
        image = Image.fromarray(noise[..., 0].astype(np.uint16) * 257 + noise[..., 1])
    elif mode in ("P", "PA"):
        image = image.convert("RGB").quantize(200)
        if mode == "PA":  # palette with transparency (tRNS)
            image.info["transparency"] = 3
    else:
        image = image.convert(mode)
    data = pillow_png(image, **options)
    assert np.array_equal(png.decode_rgb(data), opencv_rgb(data))
    rgba = png.decode_rgba(data)  # the same pixels, and the file's alpha or 255
    assert np.array_equal(rgba[..., :3], png.decode_rgb(data))
    if mode == "RGBA":
        assert np.array_equal(rgba[..., 3], noise[..., 3])
    elif mode in ("1", "L", "P", "RGB", "I;16"):
        assert (rgba[..., 3] == 255).all()


def adam7_png(rgb: np.ndarray) -> bytes:
    """An interlaced RGB PNG (Adam7, filter 0), which neither Pillow nor OpenCV writes."""
    height, width, _ = rgb.shape
    rows = []
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)]:
        reduced = rgb[y0::dy, x0::dx]
        if reduced.size:
            rows += [b"\0" + row.tobytes() for row in reduced]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    idat = zlib.compress(b"".join(rows))
    return SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_an_interlaced_png_is_read_too():
    rgb = np.random.default_rng(3).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    data = adam7_png(rgb)
    with Image.open(io.BytesIO(data)) as image:
        assert np.array_equal(np.asarray(image), rgb)  # the file is right
    assert np.array_equal(png.decode_rgb(data), rgb)


def test_encode_then_decode_gives_the_map_back():
    ids = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 977
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    assert np.array_equal(png.decode_rgb(png.encode(rgb)), rgb)


def broken(data: bytes, how: str) -> bytes:
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4:idat], "big")
    payload = data[idat + 4:idat + 4 + length]
    if how == "cut":
        return data[:idat + 4 + length // 2]
    if how == "crc":  # one byte of image data changed, the CRC left as it was
        return data[:idat + 10] + bytes([data[idat + 10] ^ 1]) + data[idat + 11:]
    if how == "header-crc":  # the width's low byte changed
        return data[:19] + bytes([data[19] ^ 1]) + data[20:]
    if how == "zlib":  # well-formed chunk, but its data is not a zlib stream
        return data[:idat - 4] + chunk(b"IDAT", b"\x00" * len(payload)) + data[idat + 8 + length:]
    if how == "size":  # the header claims one row more than the image data holds
        width, height = struct.unpack(">II", data[16:24])
        return data[:8] + chunk(b"IHDR", struct.pack(">II", width, height + 1) + data[24:29]) + data[33:]
    raise AssertionError(how)


@pytest.mark.parametrize(("how", "message"), [
    ("cut", r"chunk b'IDAT' at byte 33 is cut short"),
    ("crc", r"chunk b'IDAT' at byte 33 fails its CRC"),
    ("header-crc", r"chunk b'IHDR' at byte 8 fails its CRC"),
    ("zlib", r"image data is not a valid zlib stream"),
    ("size", r"image data inflates to 1510 bytes, the header needs 1661"),
])
def test_a_broken_png_is_a_value_error_saying_what_is_wrong(how, message):
    data = pillow_png(Image.fromarray(np.full((10, 50, 3), 7, np.uint8)))
    assert png.decode_rgb(data)[0, 0].tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match=message):
        png.decode_rgb(broken(data, how))


def test_bytes_that_are_not_a_png_are_a_value_error():
    with pytest.raises(ValueError, match="not a PNG file"):
        png.decode_rgb(b"GIF89a")
    with pytest.raises(ValueError, match="ihdr"):  # libspng's own words for a header it cannot read
        png.decode_rgb(SIGNATURE)
