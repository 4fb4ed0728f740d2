"""What every raster format shares: reading label PNGs exactly, cutting maps into masks, reporting loss.

Label maps are read with Pillow, never OpenCV: a palette PNG's values are its
indices, not colours (pitfall 26), and a 16-bit PNG keeps all 16 bits
(pitfall 25).  Readers that decode each image's maps in a helper gather the
results in order with :func:`add_image_reads`.  Writers paint through
:func:`segdata.compose.compose_image` and account for every pixel an instance
lost with :func:`raster_changes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from segdata import png
from segdata.compose import ComposedMaps, ComposeSettings
from segdata.errors import FormatError, ReadError
from segdata.io import any_image_size
from segdata.masks import FACES, Mask
from segdata.model import Annotation, Change, Dataset, Finding, ImageRecord
from segdata.stored import AnnotationColumns

#: Pillow modes whose values are labels (P: palette indices; I;16*: 16-bit; I: 32-bit signed).
_LABEL_MODES = {"1": np.uint8, "L": np.uint8, "P": np.uint8, "I;16": np.uint16, "I;16B": np.uint16,
                "I;16L": np.uint16, "I": np.uint32}
_BINCOUNT_LIMIT = 1 << 16  # above this, np.unique: a bincount would allocate one slot per value
#: The ``face`` column of a mask cut from a map (an index in :data:`segdata.masks.FACES`).
BITMAP = FACES.index("bitmap")


def read_label_png(path: str | Path) -> np.ndarray:
    """The values of a single-channel label map: palette indices, 8-bit, 16-bit or 32-bit.

    Returns
    -------
    ndarray of shape (H, W), dtype uint8, uint16 or uint32

    Raises
    ------
    ReadError
        The file is missing or cannot be opened.
    FormatError
        Not an image, or a colour image (RGB/RGBA) where label values were expected.
    """
    with _open(path) as image:
        dtype = _LABEL_MODES.get(image.mode)
        if dtype is None:
            raise FormatError(f"a label map must be single-channel (palette, 8-bit or 16-bit); found "
                              f"mode {image.mode}", path=path)
        values = np.asarray(image)
    if values.dtype == np.int32:
        if values.size and values.min() < 0:
            raise FormatError("a label map holds negative values", path=path)
        return values.astype(np.uint32)
    return values.astype(dtype, copy=False)


def read_rgb_png(path: str | Path) -> np.ndarray:
    """An (H, W, 3) uint8 colour image (palette and grey images expanded, alpha dropped)."""
    with _open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_ids_png(path: str | Path) -> np.ndarray:
    """COCO panoptic ids ``R + 256·G + 256²·B`` of an RGB PNG, as (H, W) uint32.

    Decoded by :func:`segdata.png.decode_rgba` (libdeflate), ~5× faster than
    Pillow on these maps, to the pixels :func:`read_rgb_png` gives an 8-bit
    file (palette and grey expanded, alpha dropped); 16-bit samples keep their
    high byte.  The header is checked by Pillow first: the same errors, and
    its decompression-bomb guard.
    """
    with _open_header(path, decoding=True):
        pass
    try:
        rgba = png.decode_rgba(Path(path).read_bytes())
    except OSError as err:
        raise ReadError(f"cannot read file ({err.strerror or err})", path=path) from err
    except ValueError as err:
        raise FormatError(f"cannot decode image: {err}", path=path) from None
    ids = rgba.view("<u4")[..., 0]  # each pixel's four bytes as one little-endian word: the id, alpha on top
    return np.bitwise_and(ids, 0xFFFFFF, out=ids)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, read from its header only.

    The pixels are never decoded: readers ask this of every image, and a decode
    was most of their read time.  So a file cut short after its header gives its
    size; ``segdata leakage`` (and ``report``) decodes every image and reports it.
    """
    with _open_header(path) as image:
        return image.size


def _open(path: str | Path) -> Image.Image:
    """The image with its pixels decoded, so that a truncated file fails here, naming it."""
    image = _open_header(path, decoding=True)
    try:
        image.load()
    except OSError as error:
        image.close()
        raise FormatError(f"cannot decode image: {error}", path=path) from None
    return image


def _open_header(path: str | Path, decoding: bool = False) -> Image.Image:
    """The image with only its header read (Pillow decodes on ``load``); a bad file is one error naming it.

    Pillow's decompression-bomb guard holds only if the caller is ``decoding``.
    """
    try:
        if decoding:
            return Image.open(path)
        with any_image_size():
            return Image.open(path)
    except Image.DecompressionBombError as error:
        raise FormatError(f"not decoded: {error}", path=path) from None
    except FileNotFoundError:
        raise ReadError("no such file", path=path) from None
    except UnidentifiedImageError:
        raise FormatError("not an image Pillow can read (empty or corrupt file?)", path=path) from None
    except PermissionError as error:
        raise ReadError(f"cannot open: {error}", path=path) from None
    except OSError as error:  # the file is there but its header is cut short
        raise FormatError(f"cannot decode image: {error}", path=path) from None


def value_counts(label_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a label map, ascending, and their pixel counts.

    One ``np.bincount`` for 8- and 16-bit values; ``np.unique`` above, where
    a bincount would allocate a slot per value.

    >>> [v.tolist() for v in value_counts(np.array([[7, 0], [7, 70000]], np.uint32))]
    [[0, 7, 70000], [1, 2, 1]]
    """
    flat = label_map.ravel()
    if flat.size and int(flat.max()) >= _BINCOUNT_LIMIT:
        return np.unique(flat, return_counts=True)
    counts = np.bincount(flat)
    found = np.flatnonzero(counts)
    return found, counts[found]


def masks_by_value(label_map: np.ndarray, skip: tuple[int, ...] = (),
                   wanted: set[int] | None = None) -> dict[int, Mask]:
    """One mask per distinct value of ``label_map`` (or per ``wanted`` value), leaving out ``skip``.

    One sort of the map gives every value's pixels, so the cost is
    O(pixels), not O(values × pixels): a panoptic or instance map holds
    hundreds of values.  A wanted value absent from the map gets an empty mask.

    Examples
    --------
    >>> masks = masks_by_value(np.array([[0, 3], [3, 70000]], np.uint32), skip=(0,))
    >>> {value: mask.area for value, mask in masks.items()}
    {3: 2, 70000: 1}
    >>> masks[3].to_bitmap().astype(int).tolist(), masks_by_value(np.zeros((1, 2), np.uint8), wanted={9})[9].area
    ([[0, 1], [1, 0]], 0)
    """
    cuts = ValueMasks(label_map)
    at = {value: index for index, value in enumerate(cuts.values)}
    return {value: cuts.mask(at.get(value)) for value in sorted(at if wanted is None else wanted)
            if value not in skip}


class ValueMasks(Sequence[tuple[int, Mask]]):
    """A label map's ``(value, mask)`` pairs, one per distinct value in ascending order, each mask cut
    when it is asked for: what the label-map readers' ``load`` gives, by the value's index.

    Examples
    --------
    >>> cuts = ValueMasks(np.array([[0, 3], [3, 9]], np.uint8))
    >>> len(cuts), cuts.values, cuts[1][0], cuts[1][1].area
    (3, [0, 3, 9], 3, 2)
    """

    def __init__(self, label_map: np.ndarray, path: str | Path | None = None):
        self.shape_hw, self.path = label_map.shape, path
        flat = label_map.ravel(order="F")  # COCO RLE runs down columns
        self._order = np.argsort(flat, kind="stable")  # pixels grouped by value, ascending within a group
        grouped = flat[self._order]
        starts = np.flatnonzero(np.r_[grouped.size > 0, grouped[1:] != grouped[:-1]])  # sorted: no np.unique
        self.values: list[int] = grouped[starts].tolist()
        self._bounds = np.r_[starts, grouped.size].tolist()

    def __len__(self) -> int:
        return len(self.values)

    def mask(self, index: int | None) -> Mask:
        """The mask of the value at ``index`` (an empty mask for None)."""
        if index is None:
            return _mask_of_pixels(self._order[:0], *self.shape_hw)
        return _mask_of_pixels(self._order[self._bounds[index]:self._bounds[index + 1]], *self.shape_hw)

    def __iter__(self) -> Iterator[tuple[int, Mask]]:
        return (self[index] for index in range(len(self)))

    def __getitem__(self, index):
        if not isinstance(index, int) or not 0 <= index < len(self):
            raise FormatError(f"the label map changed since it was read: it now holds {len(self)} distinct "
                              f"values, it held at least {index + 1}", path=self.path)
        return self.values[index], self.mask(index)


def mask_of_value(label_map: np.ndarray, value: int) -> Mask:
    """The mask of one value of ``label_map``, as :func:`masks_by_value` cuts it, without sorting the map.

    >>> mask_of_value(np.array([[0, 3], [3, 3]], np.uint8), 3).area
    3
    """
    height, width = label_map.shape
    return _mask_of_pixels(np.flatnonzero(label_map.ravel(order="F") == value), height, width)


def _mask_of_pixels(pixels: np.ndarray, height: int, width: int) -> Mask:
    """A mask from its ascending column-major pixel indices."""
    runs = [height * width]
    if len(pixels):
        breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
        run_starts = pixels[np.r_[0, breaks]]
        run_ends = pixels[np.r_[breaks - 1, len(pixels) - 1]] + 1
        gaps = run_starts - np.r_[0, run_ends[:-1]]
        runs = [*np.column_stack([gaps, run_ends - run_starts]).ravel().tolist(),
                height * width - int(run_ends[-1])]
    rle = coco_mask.frPyObjects({"size": [height, width], "counts": runs}, height, width)
    return Mask(height, width, "bitmap", rle=rle)


@dataclass
class ImageRead:
    """One image as a per-image reader found it, in whichever process read its files.

    Its annotations are numbered from 1 (in ``findings`` too): only the
    command's process, taking the reads in order, knows where they start
    (:func:`add_image_reads`).  ``rows`` is the ``file``, number of rows and
    other columns of :meth:`~segdata.stored.AnnotationColumns.add`.
    """

    image: ImageRecord
    findings: list[Finding] = field(default_factory=list)
    rows: tuple[str, int, dict[str, Any]] | None = None


def add_image_reads(dataset: Dataset, rows: AnnotationColumns, reads: Iterable[ImageRead],
                    next_id: int = 1) -> int:
    """Append each read's image, findings and rows in turn, its annotations numbered on from ``next_id``;
    the next id."""
    for read in reads:
        dataset.images.append(read.image)
        for finding in read.findings:
            if finding.annotation_id is not None:
                finding.annotation_id += next_id - 1
        dataset.findings += read.findings
        if read.rows is not None:
            file, count, columns = read.rows
            rows.add(file, read.image.split, range(next_id, next_id + count), **columns)
            next_id += count
    return next_id


def paintable(image: ImageRecord, annotations: list[Annotation], config: ComposeSettings,
              changes: list[Change]) -> list[Annotation]:
    """The annotations painting can use; each other one gets a ``skipped`` change naming why.

    The reason is a finding code: the annotation's own defect, or
    ``mask-missing``, ``category-unknown``, ``mask-size-mismatch``, ``mask-empty``.
    """
    usable = []
    for ann in annotations:
        reason = ann.defect or (
            "mask-missing" if ann.mask is None else
            "category-unknown" if ann.category_id not in config.category_ids else
            "mask-size-mismatch" if ann.mask.shape_hw != (image.height, image.width) else
            "mask-empty" if ann.mask.area == 0 else None)
        if reason:
            changes.append(Change("skipped", ann.split, ann.image_id, ann.id, reason))
        else:
            usable.append(ann)
    return usable


def raster_changes(maps: ComposedMaps, split: str, image_id: int) -> list[Change]:
    """What painting cost each annotation of one image, as conversion-report changes.

    Kinds: ``skipped`` (unusable, or crowd under ``crowd="skip"``),
    ``crowd-as-void`` (a crowd region written as void), ``hidden`` (no
    pixel left visible, IoU 0) and ``overlap-cut`` (pixels lost to other
    instances or to void; IoU = visible / source area, since the written
    mask is the visible part of the source).
    """
    counts = maps.visible_areas()
    skipped = set(maps.report.skipped_annotation_ids)
    changes = []
    for value, ann in enumerate(maps.annotations, start=1):
        where = (split, image_id, ann.id)
        if ann.id in skipped:
            changes.append(Change("skipped", *where, ann.defect or ("crowd region left out (crowd='skip')"
                                                                   if ann.iscrowd else "mask missing")))
            continue
        if ann.mask is None:
            continue
        area, visible = int(maps.source_areas[value]), int(counts[value])
        if ann.iscrowd and visible == 0 and area:
            changes.append(Change("crowd-as-void", *where, f"{area} px crowd region written as void"))
        elif visible == 0 and area:
            changes.append(Change("hidden", *where, f"all {area} px under other instances or void", 0.0))
        elif visible < area:
            changes.append(Change("overlap-cut", *where, f"{area - visible} of {area} px under other "
                                  "instances or void", visible / area))
    return changes
