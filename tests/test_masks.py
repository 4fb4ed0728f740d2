"""segdata/masks.py: the mask value type and lossless polygons."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as coco_mask

from segdata.errors import MaskError
from segdata.masks import Mask, bitmap_to_polygons, crops, decode_rle_string
from tests.cases import MASKS


def decode_polygons(polygons, h, w) -> np.ndarray:
    """Rasterize with plain pycocotools: the reference the guarantee is stated against."""
    if not polygons:
        return np.zeros((h, w), bool)
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygons, h, w))).astype(bool)


@pytest.mark.parametrize("bitmap", MASKS)
def test_polygons_decode_to_the_identical_mask(bitmap):
    polygons = Mask.from_bitmap(bitmap).to_polygons()
    assert np.array_equal(decode_polygons(polygons, *bitmap.shape), bitmap)


@pytest.mark.parametrize("bitmap", MASKS)
def test_each_part_is_one_ring_and_holes_stay_in_it(bitmap):
    parts = cv2.connectedComponents(bitmap.view(np.uint8), connectivity=8)[0] - 1
    assert len(bitmap_to_polygons(bitmap)) == parts


@settings(max_examples=300, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=st.booleans()))
def test_random_masks_round_trip_exactly(bitmap):
    polygons = Mask.from_bitmap(bitmap).to_polygons()
    assert np.array_equal(decode_polygons(polygons, *bitmap.shape), bitmap)


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.booleans()))
def test_rle_string_decoder_matches_pycocotools(bitmap):
    rle = coco_mask.encode(np.asfortranarray(bitmap, dtype=np.uint8))
    runs = decode_rle_string(rle["counts"])
    flat = bitmap.ravel(order="F")
    rebuilt = np.repeat(np.arange(runs.size) % 2, runs).astype(bool)
    assert runs.sum() == bitmap.size and np.array_equal(rebuilt, flat)


@given(st.lists(arrays(bool, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.booleans()),
                min_size=1, max_size=6))
def test_batched_crops_equal_one_at_a_time(bitmaps):
    masks = [Mask.from_bitmap(b) for b in bitmaps]
    for (x0, y0, crop), bitmap in zip(crops(masks), bitmaps):
        full = np.zeros(bitmap.shape, bool)
        full[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        np.testing.assert_array_equal(full, bitmap)


@pytest.mark.parametrize("bitmap", MASKS)
def test_crop_decode_equals_full_decode(bitmap):
    mask = Mask.from_bitmap(bitmap)
    x0, y0, crop = mask.to_crop()
    full = np.zeros(bitmap.shape, bool)
    full[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    np.testing.assert_array_equal(full, mask.to_bitmap())
    if bitmap.any():
        assert (x0, y0, crop.shape[1], crop.shape[0]) == tuple(int(v) for v in mask.bbox_xywh)


def test_vertices_are_pixel_corners_of_an_axis_aligned_outline():
    (ring,) = bitmap_to_polygons(np.ones((2, 3), bool))
    assert ring == [0, 0, 0, 2, 3, 2, 3, 0]


def test_tolerance_simplifies_and_iou_measures_the_loss():
    yy, xx = np.mgrid[:80, :80]
    disk = (yy - 40) ** 2 + (xx - 40) ** 2 < 30**2
    mask = Mask.from_bitmap(disk)
    exact, simple = mask.to_polygons(), mask.to_polygons(tolerance=2.0)
    assert len(simple[0]) < len(exact[0]) / 3
    iou = Mask.from_polygons(simple, 80, 80).iou(mask)
    assert 0.95 < iou < 1.0


def test_faces_agree_on_area_and_bbox():
    square = Mask.from_polygons([[0, 0, 10, 0, 10, 10, 0, 10]], 20, 20)
    as_rle = Mask.from_rle({"size": [20, 20], "counts": square.rle["counts"].decode()})
    as_bitmap = Mask.from_bitmap(square.to_bitmap())
    assert {m.area for m in (square, as_rle, as_bitmap)} == {100}
    assert {m.bbox_xywh for m in (square, as_rle, as_bitmap)} == {(0.0, 0.0, 10.0, 10.0)}
    assert (square.face, as_rle.face, as_bitmap.face) == ("polygon", "rle", "bitmap")
    assert square.iou(as_bitmap) == 1.0


def test_uncompressed_rle_is_read_column_major():
    # runs down the columns: 1 background, 2 foreground (row 1 of col 0, row 0 of col 1), 3 background
    mask = Mask.from_rle({"size": [2, 3], "counts": [1, 2, 3]})
    assert mask.face == "uncompressed-rle"
    assert mask.to_bitmap().astype(int).tolist() == [[0, 1, 0], [1, 0, 0]]


@pytest.mark.parametrize(
    ("build", "code", "match"),
    [
        pytest.param(lambda: Mask.from_rle({"size": [3, 3], "counts": [4, 4]}), "rle-counts-invalid",
                     r"sum to 8, expected 9 \(3×3\)", id="uncompressed-sum"),
        pytest.param(lambda: Mask.from_rle({"size": [3, 3], "counts": "52203"}), "rle-counts-invalid",
                     "sum to 16, expected 9", id="compressed-sum"),
        pytest.param(lambda: Mask.from_rle({"size": [3, 3], "counts": "5\\"}), "rle-counts-invalid",
                     "negative or corrupt", id="compressed-truncated"),
        pytest.param(lambda: Mask.from_rle({"size": [3], "counts": "9"}), "rle-counts-invalid",
                     r"\[height, width\]", id="size-rank"),
        pytest.param(lambda: Mask.from_polygons([[1, 1, 5, 5]], 9, 9), "polygon-box-ambiguous",
                     "reads as a box", id="four-numbers"),
        pytest.param(lambda: Mask.from_polygons([[1, 1, 5, 5, 3]], 9, 9), "polygon-odd-coordinates",
                     "5 coordinates", id="odd"),
        pytest.param(lambda: Mask.from_polygons([[1, 1]], 9, 9), "polygon-too-few-points",
                     "1 points", id="one-point"),
        pytest.param(lambda: Mask.from_polygons([[1, 1, 5, float("nan"), 3, 3]], 9, 9),
                     "coordinate-non-finite", "NaN", id="nan"),
        pytest.param(lambda: Mask.from_polygons([], 9, 9), "polygon-too-few-points", "empty", id="no-rings"),
        pytest.param(lambda: Mask.from_polygons([[1, 1, 5, float("inf"), 3, float("-inf")]], 9, 9),
                     "coordinate-non-finite", "NaN or infinite", id="inf-and-minus-inf"),
        pytest.param(lambda: Mask.from_polygons([[1, 1, 5, "2", 3, 3]], 9, 9), "polygon-odd-coordinates",
                     "not a list of numbers", id="string-coordinate"),
        pytest.param(lambda: Mask.from_polygons([(1, 1, 5, 2, 3, 3)], 9, 9), "polygon-odd-coordinates",
                     "not a list of numbers", id="tuple-ring"),
    ],
)
def test_undecodable_input_raises_with_a_finding_code(build, code, match):
    with pytest.raises(MaskError, match=match) as caught:
        build()
    assert caught.value.code == code


def test_iou_refuses_masks_of_different_images():
    with pytest.raises(MaskError, match=r"\(4, 4\) mask with a \(5, 5\) mask"):
        Mask.from_bitmap(np.ones((4, 4))).iou(Mask.from_bitmap(np.ones((5, 5))))


@pytest.mark.parametrize("segmentation", [
    pytest.param([[1, 1, 9, 1, 9, 7], [2.5, 8, 6, 8, 6, 9.5, 2.5, 9.5]], id="polygons"),
    pytest.param({"size": [10, 12], "counts": [5, 20, 3, 92]}, id="uncompressed-rle"),
    pytest.param({"size": [10, 12], "counts": "P155000000000l0"}, id="compressed-rle"),
])
def test_from_checked_gives_the_mask_the_checking_constructors_give(segmentation):
    checked = (Mask.from_rle(segmentation) if isinstance(segmentation, dict)
               else Mask.from_polygons(segmentation, 10, 12))
    trusted = Mask.from_checked(segmentation, 10, 12)
    assert (trusted.face, trusted.shape_hw, trusted.area) == (checked.face, checked.shape_hw, checked.area)
    assert np.array_equal(trusted.to_bitmap(), checked.to_bitmap()) and trusted.area > 0
