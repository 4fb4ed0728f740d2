"""A contact sheet of leaked pairs: both images of each pair side by side, to judge a leak at a glance.

A leak report names files; whether ``scene_0062.jpg`` really is a resized
``scene_0005.jpg`` is seen faster than read.  ``segdata leakage --preview
FILE.png`` draws one row per pair linking two splits, strongest kind first,
with each image's split and file name under it and the kind (and pHash
distance) under the row.  The number of rows is bounded
(:data:`MAX_ROWS`), and the sheet says how many pairs were left out, so a
dataset with thousands of leaks still gives a small file.  Only Pillow is
used, with its default font.

Examples
--------
>>> sheet_size_wh(3)
(356, 532)
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from segdata.io import write_bytes_atomic
from segdata.model import Dataset, ImageRecord

#: Pairs drawn at most; the rest are counted in the sheet's last line.
MAX_ROWS = 24
#: The box each image is fitted into, ``(height, width)`` in pixels.
CELL_HW = (120, 160)

_MARGIN = 12
_GAP = 12  # between the two images of a pair
_LINE = 14  # height of one line of the default font, with its leading
_HEADER = _MARGIN + _LINE + 6
_ROW = CELL_HW[0] + 2 * _LINE + 10  # image, its caption, the pair's kind, padding
_FOOTER = _LINE + _MARGIN
_BACKGROUND, _CELL, _INK, _MUTED = (255, 255, 255), (226, 226, 226), (20, 20, 20), (90, 90, 90)
_KIND_RANK = {kind: rank for rank, kind in enumerate(
    ("exact-file", "exact-pixels", "near-duplicate", "same-group", "same-masks", "same-name"))}


def sheet_size_wh(rows: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of a sheet with ``rows`` pair rows (at least one line of text)."""
    width = 2 * _MARGIN + 2 * CELL_HW[1] + _GAP
    return width, _HEADER + max(rows, 0) * _ROW + _FOOTER


def cell_box_ltrb(row: int, side: int) -> tuple[int, int, int, int]:
    """The box ``(left, top, right, bottom)`` of image ``side`` (0: image_a, 1: image_b) of pair ``row``.

    An image is fitted into the box keeping its aspect ratio and centred;
    the rest of the box is light grey.
    """
    left = _MARGIN + side * (CELL_HW[1] + _GAP)
    top = _HEADER + row * _ROW
    return left, top, left + CELL_HW[1], top + CELL_HW[0]


def leaked_pairs_by_severity(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pairs that link two splits, strongest kind first, closest first within a kind, else in order.

    ``pairs`` are the ``pairs`` of ``segdata leakage --json``; pairs within one split are left out.
    """
    cross = [p for p in pairs if p["split_a"] != p["split_b"]]
    return sorted(cross, key=lambda p: (_KIND_RANK.get(p["kind"], len(_KIND_RANK)),
                                        p["distance"] is None, p["distance"] or 0))


def _fitted(image: ImageRecord | None) -> Image.Image | str:
    """The image reduced to fit :data:`CELL_HW`, or why it cannot be shown."""
    if image is None or image.path is None:
        return "no image file"
    height, width = CELL_HW
    try:
        with Image.open(image.path) as opened:
            opened.draft("RGB", (width, height))  # JPEG: decode at reduced scale, as the fingerprints do
            small = ImageOps.exif_transpose(opened).convert("RGB")
            small.thumbnail((width, height), Image.Resampling.LANCZOS)
            return small
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "cannot be read"


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text`` cut from the left (the end of a path says most) with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength("…" + text, font=font) > width:
        text = text[1:]
    return "…" + text


def write_leak_sheet(pairs: list[dict[str, Any]], dataset: Dataset, path: str | Path, *,
                     max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """Write a PNG contact sheet of the pairs that link two splits, one pair per row.

    Parameters
    ----------
    pairs : list of dict
        The ``pairs`` of :meth:`~segdata.validators.leakage.LeakageResult.to_dict`
        (``kind, split_a, image_a, split_b, image_b, distance``, images by file name).
    dataset : Dataset
        The dataset checked: where the image files are.
    path : path
        The PNG to write (atomically: never half a file).
    max_rows : int
        Pairs drawn at most, strongest first (:func:`leaked_pairs_by_severity`).

    Returns
    -------
    dict
        ``path``, ``rows`` (pairs drawn) and ``left_out`` (pairs not drawn).
        Without a leak the sheet is one line saying so.

    Raises
    ------
    ValueError
        ``max_rows`` below 1.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, found {max_rows}")
    leaked = leaked_pairs_by_severity(pairs)
    shown, left_out = leaked[:max_rows], max(len(leaked) - max_rows, 0)
    by_name = {(image.split, image.file_name): image for image in dataset.images}
    sheet = Image.new("RGB", sheet_size_wh(len(shown)), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    text_width = sheet.width - 2 * _MARGIN
    header = (f"{len(leaked):,} leaked pair(s) between splits, strongest first" if leaked
              else "no leaks between splits")
    draw.text((_MARGIN, _MARGIN), _fit_text(draw, header, font, text_width), fill=_INK, font=font)
    for row, pair in enumerate(shown):
        for side, key in enumerate("ab"):
            left, top, right, bottom = cell_box_ltrb(row, side)
            draw.rectangle((left, top, right - 1, bottom - 1), fill=_CELL)
            picture = _fitted(by_name.get((pair[f"split_{key}"], pair[f"image_{key}"])))
            if isinstance(picture, str):
                draw.text((left + 6, top + 6), picture, fill=_MUTED, font=font)
            else:
                sheet.paste(picture, (left + (CELL_HW[1] - picture.width) // 2,
                                      top + (CELL_HW[0] - picture.height) // 2))
            caption = f"{pair[f'split_{key}']}: {pair[f'image_{key}']}"
            draw.text((left, bottom + 2), _fit_text(draw, caption, font, CELL_HW[1]), fill=_MUTED, font=font)
        distance = "" if pair["distance"] is None else f", pHash distance {pair['distance']}"
        _l, top, _r, bottom = cell_box_ltrb(row, 0)
        label = _fit_text(draw, f"{pair['kind']}{distance}", font, text_width)
        draw.text((_MARGIN, bottom + 2 + _LINE), label, fill=_INK, font=font)
    footer = (f"{left_out:,} more pair(s) left out (--json lists them all)" if left_out
              else f"all {len(leaked):,} shown" if leaked else "")
    draw.text((_MARGIN, sheet.height - _FOOTER), footer, fill=_MUTED, font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=False)
    write_bytes_atomic(path, buffer.getvalue())
    return {"path": str(path), "rows": len(shown), "left_out": left_out}
