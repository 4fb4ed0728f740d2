"""File checks: every declared image exists, opens, and has the size the annotations declare.

Only the image header is read (Pillow opens lazily and reads the size and
EXIF from the header), so checking a large dataset costs one small read per
file, not one decode.  The size compared is the size *after* EXIF
orientation, because that is the size every viewer and loader that honours
EXIF (and every annotation tool) shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from segdata.io import any_image_size
from segdata.model import Dataset, Finding
from segdata.parallel import map_images
from segdata.validators._registry import CODES, Context, register, where

#: EXIF orientations that rotate by 90° or 270°, so that width and height swap.
_TRANSPOSING = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


def _header_size(path: Path) -> tuple[int, int, int]:
    """``(width, height, orientation)`` as stored, from the header only (Pillow decodes lazily)."""
    with any_image_size(), Image.open(path) as image:
        width, height = image.size
        # a PNG's getexif() decodes every pixel, looking for an eXIf chunk after them; the PNG spec puts it
        # before them, where opening has read it already
        exif = image.getexif() if image.format != "PNG" or "exif" in image.info else {}
        orientation = exif.get(_ORIENTATION_TAG, 1)
    return width, height, orientation if isinstance(orientation, int) else 1


def _check_file(job: tuple[str, int, str, str | None, int, int], wanted: frozenset[str]) -> list[Finding]:
    """The file findings of one image (module level so a process pool can pickle it)."""
    split, image_id, file_name, path, width, height = job
    at = where(split, image_id)
    if path is None or not Path(path).is_file():
        if "file-missing" not in wanted:
            return []
        looked = f"expected it at {path}" if path else "looked beside the annotations; pass --images-root"
        return [Finding("file-missing", CODES["file-missing"],
                        f"{at}: image file {file_name!r} not found ({looked})", split, image_id, path=path)]
    try:
        real_w, real_h, orientation = _header_size(Path(path))
    except (OSError, UnidentifiedImageError, ValueError) as err:  # Pillow raises all three on bad headers
        if "file-unreadable" not in wanted:
            return []
        return [Finding("file-unreadable", CODES["file-unreadable"],
                        f"{at}: cannot read image header of {file_name!r} ({err})", split, image_id, path=path)]
    if orientation in _TRANSPOSING:
        real_w, real_h = real_h, real_w
    if (real_w, real_h) == (width, height) or "image-size-mismatch" not in wanted:
        return []
    rotated = " after EXIF orientation" if orientation != 1 else ""
    return [Finding("image-size-mismatch", CODES["image-size-mismatch"],
                    f"{at}: declared {width}×{height} (width×height), file is {real_w}×{real_h}{rotated}",
                    split, image_id, path=path,
                    details={"declared_wh": [width, height], "real_wh": [real_w, real_h],
                             "exif_orientation": orientation})]


@register({"file-missing": "error", "file-unreadable": "error", "image-size-mismatch": "error"})
def check_files(dataset: Dataset, context: Context) -> Iterable[Finding]:
    """Missing, unreadable and wrongly sized image files, one header read per image."""
    jobs = ((i.split, i.id, i.file_name, str(i.path) if i.path else None, i.width, i.height)
            for i in dataset.images if not i.defect)
    for findings in map_images(partial(_check_file, wanted=context.codes), jobs, workers=context.workers):
        yield from findings
