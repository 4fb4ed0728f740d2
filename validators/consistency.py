"""Consistency checks: stored ``bbox`` and ``area`` against the geometry, ``iscrowd`` against the encoding.

COCOeval bins objects into small/medium/large by the *stored* ``area``
(``cocoeval.py``), so a wrong area silently moves objects between bins; a
wrong ``bbox`` corrupts every box metric and crop.

Tolerances, and why:

* ``area`` of a polygon: COCO's own files store the polygon's (shoelace)
  area, a float, while exporters store a pixel count, by pycocotools'
  pixel-centre rule or by their own rasterizer (labelme's PIL fill includes
  the outline: 0.2–0.45 px × perimeter more).  So the stored area is compared
  with *both* the pixel area and the shoelace area (sum over rings), and
  flagged only when it matches neither within ``AREA_RTOL`` relative, at
  least ``AREA_ATOL`` px, and at least ``AREA_BAND`` px × perimeter (the band
  along the outline where rasterization rules disagree).  Of an RLE only the
  pixel area exists, so only that is compared, without the band.
* ``bbox``: COCO stores the vertex extent (floats) of polygons, exporters the
  pixel extent, and COCO's crowd boxes use inclusive extents (one pixel
  narrower); so each edge may be ``BBOX_ATOL`` px off the pixel box or the
  vertex extent, but never more than ``BBOX_RTOL`` of the box's shorter side
  (one pixel off a 2-pixel-wide object is a real error).
* ``crowd-encoding``: COCO stores crowd regions (``iscrowd: 1``) as RLE, and
  uses uncompressed RLE *only* for them.  A crowd polygon, or a non-crowd
  uncompressed RLE, usually means the flag was lost or set in a conversion.
  Compressed RLE for ordinary instances is common (LVIS, SA-1B) and fine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import numpy as np

from segdata.model import Annotation, Dataset, Finding, ImageRecord
from segdata.validators._registry import CODES, Context, ImageJob, register, where

AREA_RTOL = 0.02
AREA_ATOL = 1.0
AREA_BAND = 0.5
BBOX_ATOL = 1.0
BBOX_RTOL = 0.1
_PER_IMAGE = ("bbox-mismatch", "area-mismatch", "crowd-encoding")


def shoelace_area(rings: list[list[float]]) -> float:
    """Sum of the absolute shoelace areas of flat COCO rings.

    Examples
    --------
    >>> shoelace_area([[0, 0, 4, 0, 4, 3, 0, 3]])
    12.0
    """
    total = 0.0
    for ring in rings:
        x, y = np.asarray(ring, dtype=float).reshape(-1, 2).T
        total += abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2
    return total


def _vertex_extent(rings: list[list[float]]) -> list[float]:
    xy = np.concatenate([np.asarray(r, dtype=float).reshape(-1, 2) for r in rings])
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def perimeter(rings: list[list[float]]) -> float:
    """Total length of the closed rings' edges, in pixels."""
    total = 0.0
    for ring in rings:
        xy = np.asarray(ring, dtype=float).reshape(-1, 2)
        total += float(np.hypot(*(np.roll(xy, -1, axis=0) - xy).T).sum())
    return total


def _bbox_tolerance(ref_xywh: list[float]) -> float:
    return min(BBOX_ATOL, BBOX_RTOL * max(min(ref_xywh[2], ref_xywh[3]), 0.0))


def _edges(xywh: list[float]) -> np.ndarray:
    x, y, w, h = xywh
    return np.array([x, y, x + w, y + h], dtype=float)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _annotation_findings(ann: Annotation, wanted: frozenset[str]) -> Iterable[Finding]:
    at = where(ann.split, ann.image_id, ann.id)
    mask = ann.mask
    rings = mask.source_polygons

    def finding(code: str, message: str, **details) -> Finding:
        return Finding(code, CODES[code], f"{at}: {message}", ann.split, ann.image_id, ann.id,
                       details=details)

    stored_bbox = ann.attributes.get("bbox")
    if "bbox-mismatch" in wanted and stored_bbox is not None:
        pixel = list(mask.bbox_xywh)
        if not (isinstance(stored_bbox, list) and len(stored_bbox) == 4 and all(map(_is_number, stored_bbox))):
            yield finding("bbox-mismatch", f"stored bbox {stored_bbox!r} is not 4 finite numbers "
                          f"[x, y, width, height]; the mask's is {pixel}", stored=stored_bbox, pixel=pixel)
        else:
            refs = {"pixel": (pixel, _bbox_tolerance(pixel))}
            off = {"pixel": float(np.abs(_edges(stored_bbox) - _edges(pixel)).max())}
            if rings and off["pixel"] > refs["pixel"][1] + 1e-9:  # the vertex extent only when needed
                extent = _vertex_extent(rings)
                refs["vertex-extent"] = (extent, _bbox_tolerance(extent))
                off["vertex-extent"] = float(np.abs(_edges(stored_bbox) - _edges(extent)).max())
            if all(off[name] > tol + 1e-9 for name, (_, tol) in refs.items()):
                expected = " or ".join(f"{name} {[round(v, 2) for v in ref]}" for name, (ref, _) in refs.items())
                yield finding("bbox-mismatch", f"stored bbox {stored_bbox} differs from the mask's "
                              f"({expected}) by {min(off.values()):g} px at some edge",
                              stored=stored_bbox, pixel=pixel, max_edge_offset_px=min(off.values()),
                              **({"vertex_extent": refs["vertex-extent"][0]} if "vertex-extent" in refs else {}))

    stored_area = ann.attributes.get("area")
    if "area-mismatch" in wanted and stored_area is not None:
        pixel_area = mask.area
        refs = {"pixel": pixel_area}
        band = 0.0
        if rings and _is_number(stored_area) and abs(stored_area - pixel_area) > max(AREA_ATOL,
                                                                                   AREA_RTOL * pixel_area):
            refs["shoelace"] = shoelace_area(rings)  # the polygon measures only when the pixel area disagrees
            band = AREA_BAND * perimeter(rings)
        if not _is_number(stored_area):
            yield finding("area-mismatch", f"stored area {stored_area!r} is not a finite number; "
                          f"the mask covers {pixel_area} px", stored=stored_area, pixel=pixel_area)
        elif all(abs(stored_area - ref) > max(AREA_ATOL, AREA_RTOL * ref, band) for ref in refs.values()):
            expected = " or ".join(f"{name} area {ref:g}" for name, ref in refs.items())
            within = f"{AREA_RTOL:.0%}" + (f" or {band:g} px along the outline" if band else "")
            yield finding("area-mismatch", f"stored area {stored_area:g} matches neither {expected} "
                          f"(within {within})", stored=stored_area, pixel=pixel_area,
                          **({"shoelace": refs["shoelace"]} if "shoelace" in refs else {}),
                          ratio=stored_area / pixel_area if pixel_area else None)

    if "crowd-encoding" in wanted:
        if ann.iscrowd and mask.face == "polygon":
            yield finding("crowd-encoding", "iscrowd is 1 but the mask is stored as polygons; COCO stores "
                          "crowd regions as RLE (check the iscrowd flag)", iscrowd=1, face=mask.face)
        elif not ann.iscrowd and mask.face == "uncompressed-rle":
            yield finding("crowd-encoding", "iscrowd is 0 but the mask is uncompressed RLE, COCO's crowd "
                          "encoding (check the iscrowd flag)", iscrowd=0, face=mask.face)


def _image_consistency(job: tuple[ImageRecord, list[Annotation]], wanted: frozenset[str]) -> list[Finding]:
    """The consistency findings of one image (module level so a process pool can pickle it)."""
    _, anns = job
    found: list[Finding] = []
    for ann in anns:
        if ann.mask is not None and ann.defect is None:
            found.extend(_annotation_findings(ann, wanted))
    return found


def _image_part(context: Context) -> ImageJob | None:
    wanted = context.codes & set(_PER_IMAGE)
    return partial(_image_consistency, wanted=frozenset(wanted)) if wanted else None


@register({"bbox-mismatch": "error", "area-mismatch": "error", "crowd-encoding": "warning"},
          image_part=_image_part)
def check_consistency(dataset: Dataset, context: Context) -> Iterable[Finding]:
    """Stored bbox and area recomputed from each mask, and iscrowd against the encoding: all per image."""
    return ()
