"""Geometry checks: polygon arity, ring validity, bounds, empty and tiny masks, RLE integrity.

Polygon arity, non-finite coordinates and broken RLE make a record
undecodable, so the reader flags them (and keeps the record with a
``defect``); these checks surface those findings.  What needs the decoded
geometry is checked here, one image at a time:

* ``polygon-self-intersection``: a ring whose edges *cross*.  GEOS also calls
  a ring invalid when it merely touches itself (``Ring Self-intersection``):
  the zero-width keyhole cut that joins a hole to its outline, or two
  pixels touching at a corner.  Those rasterize the same under every fill
  rule, and lossless polygon writers (segdata's own included) produce them,
  so only proper crossings, points that are not vertices of the ring, are
  reported; they are where even-odd (pycocotools) and non-zero
  (``cv2.fillPoly``) fills and shapely disagree.
* ``coordinate-out-of-bounds``: a vertex left of 0, above 0, right of the
  width or below the height.  Vertices are pixel-corner coordinates, so
  ``x == width`` is the right edge of the last column, inside the image.
* ``mask-empty`` and ``mask-tiny``: no pixels, or fewer than ``min_area``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import numpy as np
import shapely

from segdata.model import Annotation, Dataset, Finding, ImageRecord
from segdata.validators._registry import CODES, Context, ImageJob, reader_findings, register, where

_FROM_READER = ("polygon-too-few-points", "polygon-odd-coordinates", "polygon-box-ambiguous",
                "coordinate-non-finite", "mask-empty", "rle-size-mismatch", "rle-counts-invalid")
_PER_IMAGE = ("polygon-self-intersection", "coordinate-out-of-bounds", "mask-empty", "mask-tiny")


def ring_crossings(ring: list[float]) -> list[tuple[float, float]]:
    """Points where the edges of a closed ring properly cross, sorted.

    Touching (a vertex on another edge, an edge traversed back along a
    keyhole cut) is not crossing: noding the ring adds a node only where two
    edges cross between vertices.

    Parameters
    ----------
    ring : list of float
        A flat COCO ring ``[x0, y0, x1, y1, …]`` (closed implicitly).

    Returns
    -------
    list of (float, float)
        ``(x, y)`` of each crossing; empty for a simple or merely self-touching ring.

    Examples
    --------
    >>> ring_crossings([0, 0, 10, 10, 10, 0, 0, 10])  # a bow-tie
    [(5.0, 5.0)]
    >>> ring_crossings([2, 2, 4, 4, 6, 4, 6, 6, 4, 6, 4, 4, 2, 2, 2, 8, 8, 8, 8, 2])  # a keyhole
    []
    """
    xy = np.asarray(ring, dtype=float).reshape(-1, 2)
    if shapely.is_valid(shapely.Polygon(xy)):
        return []
    noded = shapely.node(shapely.LineString(np.vstack([xy, xy[:1]])))
    vertices = {(float(x), float(y)) for x, y in xy}
    nodes = {(float(x), float(y)) for x, y in shapely.get_coordinates(noded)}
    return sorted(nodes - vertices)


def _out_of_bounds(ring: list[float], width: int, height: int) -> tuple[int, float, list[float]]:
    """Vertices outside ``[0, width] × [0, height]``: how many, the worst overshoot, the worst vertex."""
    xy = np.asarray(ring, dtype=float).reshape(-1, 2)
    over = np.maximum(np.maximum(-xy, xy - (width, height)), 0).max(axis=1)
    worst = int(over.argmax())
    return int((over > 0).sum()), float(over[worst]), xy[worst].tolist()


def _annotation_findings(image: ImageRecord, ann: Annotation, wanted: frozenset[str],
                         min_area: int) -> Iterable[Finding]:
    at = where(ann.split, ann.image_id, ann.id)
    mask = ann.mask

    def finding(code: str, message: str, **details) -> Finding:
        return Finding(code, CODES[code], f"{at}: {message}", ann.split, ann.image_id, ann.id,
                       details=details)

    rings = mask.source_polygons or []
    for index, ring in enumerate(rings):
        if "polygon-self-intersection" in wanted:
            crossings = ring_crossings(ring)
            if crossings:
                x, y = crossings[0]
                yield finding("polygon-self-intersection",
                              f"polygon {index} crosses itself at ({x:g}, {y:g})"
                              + (f" and {len(crossings) - 1} more point(s)" if len(crossings) > 1 else "")
                              + "; expected a simple ring (fill rules disagree on crossing rings)",
                              ring=index, location_xy=[x, y], crossings_xy=[list(c) for c in crossings])
        if "coordinate-out-of-bounds" in wanted:
            count, overshoot, vertex = _out_of_bounds(ring, mask.width, mask.height)
            if count:
                yield finding("coordinate-out-of-bounds",
                              f"polygon {index} has {count} vertex(es) outside the {mask.width}×{mask.height} "
                              f"image, expected x in [0, {mask.width}] and y in [0, {mask.height}]; "
                              f"farthest ({vertex[0]:g}, {vertex[1]:g}) is {overshoot:g} px out",
                              ring=index, vertices_outside=count, max_overshoot_px=overshoot,
                              farthest_xy=vertex)
    if not wanted & {"mask-empty", "mask-tiny"}:
        return
    area = mask.area
    if area == 0 and "mask-empty" in wanted:
        yield finding("mask-empty", f"{mask.face} mask covers no pixel of the {mask.width}×{mask.height} image",
                      area=0)
    elif 0 < area < min_area and "mask-tiny" in wanted:
        yield finding("mask-tiny", f"mask covers {area} pixel(s), expected at least {min_area} (min_area)",
                      area=area, min_area=min_area)


def _image_geometry(job: tuple[ImageRecord, list[Annotation]], wanted: frozenset[str],
                    min_area: int) -> list[Finding]:
    """The geometry findings of one image (module level so a process pool can pickle it)."""
    image, anns = job
    found: list[Finding] = []
    for ann in anns:
        if ann.mask is not None and ann.defect is None:
            found.extend(_annotation_findings(image, ann, wanted, min_area))
    return found


def _image_part(context: Context) -> ImageJob | None:
    wanted = context.codes & set(_PER_IMAGE)
    return partial(_image_geometry, wanted=frozenset(wanted), min_area=context.min_area) if wanted else None


@register({"polygon-too-few-points": "error", "polygon-odd-coordinates": "error",
           "polygon-box-ambiguous": "error", "polygon-self-intersection": "error",
           "coordinate-non-finite": "error", "coordinate-out-of-bounds": "warning",
           "mask-empty": "error", "mask-tiny": "warning",
           "rle-size-mismatch": "error", "rle-counts-invalid": "error"}, image_part=_image_part)
def check_geometry(dataset: Dataset, context: Context) -> Iterable[Finding]:
    """Undecodable geometry as the reader found it; ring, bounds and size checks per image follow."""
    yield from reader_findings(dataset, [c for c in _FROM_READER if c in context.codes])
