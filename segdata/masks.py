"""The mask value type: one shape with polygon, RLE and bitmap faces.

Every face is converted through pycocotools' C code, so a polygon means the
same pixels in every command (pixel-centre rule), and RLE is COCO's
column-major run-length encoding.  A mask remembers the face it came from, so
that writing it back to that face is lossless.
"""

from __future__ import annotations

import math
from itertools import accumulate
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as _coco_mask

from segdata.errors import MaskError

#: The faces a mask can come from; writing back to the same face is lossless.
FACES = ("polygon", "rle", "uncompressed-rle", "bitmap")


def decode_rle_string(counts: bytes | str) -> np.ndarray:
    """Decode COCO's compressed RLE string into run lengths, without trusting it.

    pycocotools decodes the same string in C but overflows its buffer when the
    runs do not add up to the mask size; this vectorised decoder lets the
    caller check the runs first.

    Parameters
    ----------
    counts : bytes or str
        The LEB128-like string of a compressed COCO RLE.

    Returns
    -------
    ndarray of shape (N,) and dtype int64
        The run lengths; negative values mean a corrupt string.

    Examples
    --------
    >>> decode_rle_string(b"423OO").tolist()  # a 3×4 mask: 4 off, 2 on, 3 off, 1 on, 2 off
    [4, 2, 3, 1, 2]
    """
    if isinstance(counts, str):
        counts = counts.encode("ascii", errors="replace")
    chars = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64)
    if chars[-1] & 0x20:
        return np.array([-1], dtype=np.int64)  # a number cut off mid-way
    values, _starts, position = rle_string_numbers(chars)
    if position.max() > 11:
        return np.array([-1], dtype=np.int64)  # longer than any uint32 run
    # from the fourth number on, each run is stored as a delta to the run two before
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def rle_string_numbers(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An RLE string's signed numbers, where each starts, and each char's place in its number.

    ``chars`` are the string's bytes minus 48.  Five bits per char, low
    first; 0x20 says another char follows; 0x10 in the last char is the
    sign.  Numbers longer than 12 chars come out wrong (shifts are capped so
    that they stay defined); callers reject them by ``position``.
    """
    more = (chars & 0x20) != 0
    boundary = np.empty(chars.size, bool)  # a number starts after one without the "more" bit
    boundary[0] = True
    np.logical_not(more[:-1], out=boundary[1:])
    starts = np.flatnonzero(boundary)
    position = np.arange(chars.size) - starts[np.cumsum(boundary) - 1]
    values = np.add.reduceat((chars & 0x1F) << (5 * np.minimum(position, 12)), starts)
    ends = np.flatnonzero(~more)
    negative = (chars[ends] & 0x10) != 0
    values[negative] |= -1 << (5 * np.minimum(position[ends[negative]] + 1, 12))
    return values, starts, position


def _check_runs(runs: np.ndarray, height: int, width: int) -> None:
    if runs.size and runs.min() < 0:
        raise MaskError("RLE counts hold a negative or corrupt run", code="rle-counts-invalid")
    total = int(runs.sum())
    if total != height * width:
        raise MaskError(
            f"RLE counts sum to {total}, expected {height * width} ({height}×{width})",
            code="rle-counts-invalid",
        )


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise MaskError(f"RLE size must be [height, width], found {size!r}", code="rle-counts-invalid")
    return int(size[0]), int(size[1])


def all_finite(values: list[float]) -> bool:
    """No NaN or infinity, by one C-level sum; only a sum that is not finite is looked at value by value."""
    try:
        if math.isfinite(math.fsum(values)):
            return True
    except (OverflowError, ValueError):  # finite values whose sum overflows; inf and -inf together
        pass
    return all(math.isfinite(v) for v in values)


def _check_polygons(polygons: object) -> tuple[np.ndarray, tuple[int, ...]]:
    """All rings in one array and where each ends, after checking every coordinate."""
    if not isinstance(polygons, list) or not polygons:
        raise MaskError("polygon list is empty", code="polygon-too-few-points")
    for index, ring in enumerate(polygons):
        # one C-level pass (math.fsum) checks every coordinate: a Python loop over each one cost
        # 0.5 s on 36k annotations; JSON true/false pass as 1/0 here, as they do in pycocotools
        try:
            finite = isinstance(ring, list) and math.isfinite(math.fsum(ring))
        except TypeError:
            finite = None
        except (ValueError, OverflowError):  # inf and -inf in one ring
            finite = False
        if finite is None or not isinstance(ring, list):
            raise MaskError(f"polygon {index} is not a list of numbers", code="polygon-odd-coordinates")
        if len(ring) % 2:
            raise MaskError(
                f"polygon {index} has {len(ring)} coordinates, expected an even count (x, y pairs)",
                code="polygon-odd-coordinates",
            )
        if len(ring) == 4:
            raise MaskError(
                f"polygon {index} has 4 coordinates, which pycocotools reads as a box [x, y, w, h]",
                code="polygon-box-ambiguous",
            )
        if len(ring) < 6:
            raise MaskError(
                f"polygon {index} has {len(ring) // 2} points, expected at least 3",
                code="polygon-too-few-points",
            )
        if not finite:
            raise MaskError(f"polygon {index} has a NaN or infinite coordinate", code="coordinate-non-finite")
    return _pack_polygons(polygons)


def _pack_polygons(polygons: list) -> tuple[np.ndarray, tuple[int, ...]]:
    # all rings in one array and where each ends: a fifth of the memory of lists of Python floats, and
    # cheap to ship to workers
    ends = tuple(accumulate(len(ring) for ring in polygons))
    flat = np.asarray(polygons[0]) if len(polygons) == 1 else np.concatenate([np.asarray(r) for r in polygons])
    return flat, ends[:-1]


class Mask:
    """A binary mask of one image, held as compact RLE and decoded on demand.

    Build one with :meth:`from_polygons`, :meth:`from_rle` or
    :meth:`from_bitmap`; each validates its input and raises
    :class:`~segdata.errors.MaskError` (with a finding ``code``) when the
    input cannot be decoded.

    Examples
    --------
    >>> square = Mask.from_polygons([[0, 0, 10, 0, 10, 10, 0, 10]], 20, 20)
    >>> square.area, square.bbox_xywh, square.face
    (100, (0.0, 0.0, 10.0, 10.0), 'polygon')
    """

    __slots__ = ("_polygons", "_rle", "face", "height", "width")

    def __init__(self, height: int, width: int, face: str, *, polygons=None, rle=None):
        self.height = height
        self.width = width
        self.face = face
        self._polygons = polygons
        self._rle = rle

    # construction -----------------------------------------------------------------

    @classmethod
    def from_polygons(cls, polygons: list[list[float]], height: int, width: int) -> Mask:
        """Wrap COCO polygons (flat ``[x0, y0, x1, y1, …]`` rings, unioned) of an image."""
        return cls(height, width, "polygon", polygons=_check_polygons(polygons))

    @classmethod
    def from_rle(cls, rle: dict) -> Mask:
        """Wrap a COCO RLE dict, compressed (``str``/``bytes`` counts) or not (``list``)."""
        if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
            raise MaskError("RLE must be a dict with 'size' and 'counts'", code="rle-counts-invalid")
        height, width = _check_size(rle["size"])
        counts = rle["counts"]
        if isinstance(counts, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
                raise MaskError("uncompressed RLE counts must be integers", code="rle-counts-invalid")
            _check_runs(np.asarray(counts, dtype=np.int64), height, width)
            compressed = _coco_mask.frPyObjects(rle, height, width)
            return cls(height, width, "uncompressed-rle", rle=compressed)
        if isinstance(counts, str):
            counts = counts.encode("ascii", errors="replace")
        if not isinstance(counts, bytes):
            raise MaskError(f"RLE counts must be a string or a list, found {type(counts).__name__}",
                            code="rle-counts-invalid")
        _check_runs(decode_rle_string(counts), height, width)
        return cls(height, width, "rle", rle={"size": [height, width], "counts": counts})

    @classmethod
    def from_checked(cls, segmentation: list | dict, height: int, width: int) -> Mask:
        """Wrap a COCO segmentation that :meth:`from_polygons` or :meth:`from_rle` has already accepted.

        Readers that keep records in their file (:mod:`segdata.stored`) parse
        them again for every job; checking every coordinate and run again
        each time was a third of that cost.
        """
        if isinstance(segmentation, list):
            return cls(height, width, "polygon", polygons=_pack_polygons(segmentation))
        counts = segmentation["counts"]
        if isinstance(counts, list):
            rle = _coco_mask.frPyObjects(segmentation, height, width)
            return cls(height, width, "uncompressed-rle", rle=rle)
        if isinstance(counts, str):
            counts = counts.encode("ascii", errors="replace")
        return cls(height, width, "rle", rle={"size": [height, width], "counts": counts})

    @classmethod
    def from_bitmap(cls, bitmap: np.ndarray) -> Mask:
        """Encode a 2-D array (non-zero = inside) as a mask of the same shape."""
        bitmap = np.asarray(bitmap)
        if bitmap.ndim != 2:
            raise MaskError(f"a bitmap must be 2-D (height, width), found shape {bitmap.shape}",
                            code="mask-shape")
        rle = _coco_mask.encode(np.asfortranarray(bitmap != 0, dtype=np.uint8))
        return cls(bitmap.shape[0], bitmap.shape[1], "bitmap", rle=rle)

    # faces ------------------------------------------------------------------------

    @property
    def shape_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the image the mask belongs to."""
        return self.height, self.width

    @property
    def rle(self) -> dict:
        """Compressed COCO RLE, ``{"size": [h, w], "counts": bytes}``; computed once."""
        if self._rle is None:
            self._rle = self.to_rle()
        return self._rle

    @property
    def source_polygons(self) -> list[np.ndarray] | None:
        """The polygons the mask was made from (one flat ``x, y, …`` array per ring), or ``None`` for other faces."""
        if self._polygons is None:
            return None
        flat, ends = self._polygons
        return np.split(flat, ends) if ends else [flat]

    def to_bitmap(self) -> np.ndarray:
        """Decode to a ``(height, width)`` bool array."""
        return _coco_mask.decode(self.rle).view(bool)

    def to_rle(self) -> dict:
        """Compressed COCO RLE, computed anew for a polygon mask: per-image jobs keep memory flat."""
        if self._rle is not None:
            return self._rle
        parts = _coco_mask.frPyObjects(self.source_polygons, self.height, self.width)
        return _coco_mask.merge(parts) if len(parts) > 1 else parts[0]

    def to_crop(self) -> tuple[int, int, np.ndarray]:
        """Decode the mask only inside its bounding box.

        Painting and tracing need only the box; decoding the whole image per
        instance is where naive loops spend their time.  :func:`crops` does
        the same for many masks at once.

        Returns
        -------
        x0, y0 : int
            Top-left corner of the box (column, row).
        crop : ndarray of shape (box height, box width) and dtype bool
            Empty (0×0) for an empty mask.

        Examples
        --------
        >>> x0, y0, crop = Mask.from_polygons([[2, 1, 5, 1, 5, 3, 2, 3]], 6, 8).to_crop()
        >>> (x0, y0), crop.shape, bool(crop.all())
        ((2, 1), (2, 3), True)
        """
        return crops([self])[0]

    def to_polygons(self, tolerance: float = 0.0) -> list[list[float]] | list[np.ndarray]:
        """COCO polygons that rasterize back to exactly this mask.

        With ``tolerance == 0`` the result is lossless: pycocotools decodes it
        to the identical mask (holes become zero-width keyhole cuts, parts stay
        separate rings).  A positive ``tolerance`` (pixels) simplifies each
        ring; measure the loss with :meth:`iou`.
        """
        if tolerance == 0 and self._polygons is not None:
            return self.source_polygons
        x0, y0, crop = self.to_crop()
        return bitmap_to_polygons(crop, tolerance=tolerance, offset_xy=(x0, y0))

    # measures (they leave a polygon mask's RLE uncached: a job that measures every mask of a dataset
    # would otherwise keep every RLE) ------------------------------------------------------------------

    @property
    def area(self) -> int:
        """Pixel count, as pycocotools counts it."""
        return int(_coco_mask.area(self.to_rle()))

    @property
    def bbox_xywh(self) -> tuple[float, float, float, float]:
        """Tight box ``(x, y, width, height)`` of the pixels, as pycocotools computes it."""
        return tuple(float(v) for v in _coco_mask.toBbox(self.to_rle()))

    def iou(self, other: Mask) -> float:
        """Intersection over union with a mask of the same image (1.0 when both are empty)."""
        if self.shape_hw != other.shape_hw:
            raise MaskError(f"cannot compare a {self.shape_hw} mask with a {other.shape_hw} mask",
                            code="mask-shape")
        pair = [self.to_rle(), other.to_rle()]
        union = int(_coco_mask.area(_coco_mask.merge(pair, intersect=False)))
        if union == 0:
            return 1.0
        inter = int(_coco_mask.area(_coco_mask.merge(pair, intersect=True)))
        return inter / union

    def __repr__(self) -> str:
        return f"Mask({self.height}×{self.width}, face={self.face!r})"


def crops(masks: list[Mask]) -> list[tuple[int, int, np.ndarray]]:
    """:meth:`Mask.to_crop` of several masks (one image's), computed together.

    Per-call NumPy overhead, not arithmetic, dominates small masks, so the
    RLE strings are decoded, and the runs turned into boxes, in one pass
    over all masks; only the final fill is done mask by mask.
    """
    if not masks:
        return []
    runs = _decode_valid_rle_strings([mask.to_rle()["counts"] for mask in masks])
    lengths = np.fromiter(map(len, runs), np.int64, len(runs))
    runs = np.concatenate(runs)
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    owner = np.repeat(np.arange(len(masks)), lengths)
    total = np.cumsum(runs)
    ends = total - np.repeat(np.where(first > 0, total[np.maximum(first - 1, 0)], 0), lengths)
    on = ((np.arange(runs.size) - first[owner]) % 2 == 1) & (runs > 0)
    on_end, owner = ends[on], owner[on]
    on_start = on_end - runs[on]
    heights = np.array([mask.height for mask in masks], np.int64)[owner]
    col_start, row_start = np.divmod(on_start, heights)
    col_last, row_last = np.divmod(on_end - 1, heights)
    bounds = np.searchsorted(owner, np.arange(len(masks) + 1))
    result = []
    for index, mask in enumerate(masks):
        a, b = bounds[index], bounds[index + 1]
        if a == b:
            result.append((0, 0, np.zeros((0, 0), bool)))
            continue
        x0, x1 = int(col_start[a]), int(col_last[b - 1]) + 1
        if (col_start[a:b] != col_last[a:b]).any():  # a run wraps to the next column: every row
            y0, y1 = 0, mask.height
        else:
            y0, y1 = int(row_start[a:b].min()), int(row_last[a:b].max()) + 1
        box_h = y1 - y0
        # column-major within the box: a run's start and (exclusive) end become +1 / -1 steps
        steps = np.zeros((x1 - x0) * box_h + 1, np.int8)
        steps[(col_start[a:b] - x0) * box_h + row_start[a:b] - y0] = 1
        steps[(col_last[a:b] - x0) * box_h + row_last[a:b] - y0 + 1] -= 1
        crop = np.cumsum(steps[:-1], dtype=np.int8).view(bool).reshape(x1 - x0, box_h).T
        result.append((x0, y0, crop))
    return result


def _decode_valid_rle_strings(strings: list[bytes]) -> list[np.ndarray]:
    """Run lengths of several RLE strings known to be valid (made or checked by segdata).

    The same arithmetic as :func:`decode_rle_string`, segmented: numbers never
    span two strings, and the delta to the run two before restarts in each.

    Examples
    --------
    >>> [r.tolist() for r in _decode_valid_rle_strings([b"423OO", b"", b"52"])]
    [[4, 2, 3, 1, 2], [], [5, 2]]
    """
    lengths = np.fromiter(map(len, strings), np.int64, len(strings))
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return [np.zeros(0, np.int64) for _ in strings]
    values, starts, _position = rle_string_numbers(chars)
    # numbers per string, and each number's index m within its string
    first_number = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    number_start = np.searchsorted(starts, first_number)
    numbers = np.diff(np.append(number_start, values.size))
    m = np.arange(values.size) - np.repeat(number_start, numbers)
    runs = values.copy()
    for parity, first in ((1, 1), (0, 2)):  # run m adds run m-2 from m = 3 (odd) and m = 4 (even) on
        chain = np.where((m % 2 == parity) & (m >= first), values, 0)
        total = np.cumsum(chain)
        before = np.where(number_start > 0, total[np.maximum(number_start - 1, 0)], 0)
        selected = (m % 2 == parity) & (m >= first)
        runs[selected] = (total - np.repeat(before, numbers))[selected]
    return np.split(runs, np.cumsum(numbers)[:-1])


def _ring_corners(contour: np.ndarray) -> np.ndarray:
    """Map a contour of the 2× upsampled mask to pixel corners, dropping straight-run points."""
    points = (contour.reshape(-1, 2) + 1) >> 1
    step = np.concatenate((points[1:], points[:1])) - points  # cyclic: points[i+1] - points[i]
    moving = (step[:, 0] != 0) | (step[:, 1] != 0)  # a point equal to the next adds nothing
    points = points[moving]
    if len(points) < 4:
        return points
    after = np.concatenate((points[1:], points[:1])) - points
    before = np.concatenate((after[-1:], after[:-1]))
    turns = before[:, 0] * after[:, 1] != before[:, 1] * after[:, 0]
    reversals = before[:, 0] * after[:, 0] + before[:, 1] * after[:, 1] < 0
    return points[turns | reversals]


def bitmap_to_polygons(
    bitmap: np.ndarray, *, tolerance: float = 0.0, offset_xy: Sequence[int] = (0, 0)
) -> list[list[float]]:
    """Trace a bitmap into COCO polygons along pixel edges.

    Each 8-connected part becomes one ring whose vertices are pixel corners;
    its holes are joined to it by zero-width keyhole cuts, which pycocotools'
    even-odd column fill ignores.  Tracing the 2× upsampled mask gives each
    pixel's left and right edge a contour point of its own, and
    ``(c + 1) // 2`` maps those points back to corners.

    Parameters
    ----------
    bitmap : ndarray of shape (H, W)
        Non-zero = inside.
    tolerance : float
        Douglas–Peucker tolerance in pixels; 0 keeps the result lossless.
    offset_xy : (int, int)
        Added to every vertex (the position of a crop in its image).

    Returns
    -------
    list of list of float
        Flat ``[x0, y0, x1, y1, …]`` rings, one per part.

    Examples
    --------
    >>> bitmap_to_polygons(np.ones((2, 3), bool))
    [[0, 0, 0, 2, 3, 2, 3, 0]]
    """
    import cv2  # imported here: only tracing needs it, and it costs 16 MB at import

    bitmap = np.asarray(bitmap)
    if bitmap.ndim != 2:
        raise MaskError(f"a bitmap must be 2-D (height, width), found shape {bitmap.shape}", code="mask-shape")
    if bitmap.dtype == bool:
        bitmap = bitmap.view(np.uint8)
    elif bitmap.dtype != np.uint8:
        bitmap = (bitmap != 0).view(np.uint8)
    x0, y0, width, height = cv2.boundingRect(bitmap)  # trace only the box: 4× its pixels, not the image's
    offset_xy = (offset_xy[0] + x0, offset_xy[1] + y0)
    doubled = np.zeros((2 * height + 2, 2 * width + 2), np.uint8)
    if height and width:
        crop = np.minimum(bitmap[y0 : y0 + height, x0 : x0 + width], 1)  # any non-zero value is inside
        cv2.resize(crop, (2 * width, 2 * height), dst=doubled[1:-1, 1:-1], interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE, offset=(-1, -1))
    if not contours:
        return []
    hierarchy = hierarchy[0]

    def ring_of(index: int) -> np.ndarray:
        corners = _ring_corners(contours[index])
        if tolerance > 0 and len(corners) > 3:
            corners = cv2.approxPolyDP(corners.reshape(-1, 1, 2).astype(np.int32), tolerance, True).reshape(-1, 2)
        return corners

    rings = []
    for index in np.flatnonzero(hierarchy[:, 3] == -1):
        outer = ring_of(index)
        if len(outer) < 3:
            continue
        child = hierarchy[index, 2]
        while child != -1:
            hole = ring_of(child)
            if len(hole) >= 3:
                nearest = int(np.abs(outer - hole[0]).sum(axis=1).argmin())
                outer = np.concatenate([outer[: nearest + 1], hole, hole[:1], outer[nearest:]])
            child = hierarchy[child, 0]
        rings.append((outer + np.asarray(offset_xy)).ravel().tolist())
    return rings
