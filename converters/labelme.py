"""LabelMe JSON (wkentaro/labelme): one ``*.json`` per image, optionally in split subfolders.

A file holds ``shapes`` (``label``, ``points``, ``shape_type``,
``group_id``, optional base64 ``mask``), ``imagePath`` (relative to the
JSON), ``imageHeight``/``imageWidth`` and an optional base64 ``imageData``.
JSON files directly in the folder read as split ``""``; files in
``<folder>/<split>/`` as that split.

Reading
    Regions: ``polygon`` (and ``oriented_rectangle``), ``rectangle`` (two
    corners), ``circle`` (centre and a point on the rim: polygonized with
    vertices on the circle, at least 12 and enough that the gap between arc
    and chord is at most 0.1 px; labelme2coco allows 1 px) and ``mask`` (a
    base64 PNG of the shape's box, placed with its top-left pixel at the
    first point rounded, as labelme's ``shapes_to_label`` does).  ``line``,
    ``linestrip`` and ``point`` outline no region: each is skipped with a
    finding naming the shape index.  Shapes sharing a ``label`` and a
    ``group_id`` are one annotation with several rings; shapes without a
    ``group_id`` are separate instances.

    Categories come from a ``labels.txt`` or ``class_names.txt`` beside the
    JSON (or in the dataset folder or its parent, labelme's example layout):
    ``__ignore__`` shapes become the image's void region and
    ``_background_`` is not a category (each such shape is reported), and the
    other lines get ids 1, 2, … in file order, which are the ids
    labelme2coco gives.  Without such a file, labels get ids 1..n in order of
    first appearance.  Shape coordinates are read as they are and
    rasterized with pycocotools' pixel-centre rule (labelme's own PIL
    rasterizer also paints the boundary pixels, so its masks are about one
    pixel-ring larger).  ``imageHeight``/``imageWidth`` that disagree with
    the embedded ``imageData`` (or the image file) are a finding; the image
    wins, as in labelme.  A polygon with fewer than three points, a bad
    base64 mask, or a shape of an unknown type is skipped with a finding
    naming the file and shape index.  A shape flag ``iscrowd`` (written by
    :func:`write`) marks a crowd region.

Writing
    One labelme 5.x JSON per image at ``<split>/<stem>.json``, with
    ``imageData: null`` and ``imagePath`` relative to the JSON (the copied
    image with ``copy_images``, else the source image).  Each annotation is
    polygon shapes from :meth:`~segdata.masks.Mask.to_polygons`: holes by
    keyhole cuts inside a polygon, several parts as several shapes sharing a
    ``group_id``.  The image's void region is written as ``__ignore__``
    shapes and ``labels.txt`` lists ``__ignore__``, ``_background_`` and
    the category names in id order, so ids 1..n read back unchanged (other
    ids are reported as ``category-remapped``).  Every annotation is
    reported with the IoU of what was written, decoded back with segdata's
    (pycocotools') rule; labelme itself would paint the boundary pixels too.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import shutil
from itertools import chain
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from segdata.errors import FormatError, MaskError, ReadError
from segdata.io import dumps_json, output_dir, read_json
from segdata.masks import FACES, Mask, all_finite
from segdata.model import (Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord,
                           annotation_values)
from segdata.parallel import map_images, read_workers
from segdata.stored import AnnotationColumns

from ._raster import ImageRead, add_image_reads, image_size

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "*.json (or <split>/*.json) with 'shapes' and 'imagePath' (LabelMe)"

_SNIFF_BYTES = 1 << 16
_LABEL_FILES = ("labels.txt", "class_names.txt")
_IGNORE, _BACKGROUND = "__ignore__", "_background_"
_REGIONS = {"polygon", "oriented_rectangle", "rectangle", "circle", "mask"}
_NOT_REGIONS = {"line", "linestrip", "point", "points"}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Where a folder's labelme files are: its own, then one level of split subfolders.
_JSON_GLOBS = ("*.json", "*/*.json")
_SPLIT_ORDER = {"train": 0, "val": 1, "validation": 1, "test": 2}
#: Largest gap between a circle's arc and its polygon's chords, in pixels.
CIRCLE_TOLERANCE = 0.1
VERSION = "5.7.0"


# sniffing ----------------------------------------------------------------------------


def _looks_like_labelme(path: Path) -> bool:
    """Whether a file's head names ``shapes`` (and ``imagePath``, or is cut short).  Read without a file
    object: a folder's files are sniffed in the command's process, ~18 µs each with one, ~12 without."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        head = os.read(fd, _SNIFF_BYTES)
    except OSError:  # a folder named *.json
        return False
    finally:
        os.close(fd)
    return b'"shapes"' in head and (b'"imagePath"' in head or len(head) == _SNIFF_BYTES)


def _json_files(path: Path) -> list[Path]:
    """The labelme files of a folder: its own, then one level of split subfolders."""
    return [p for pattern in _JSON_GLOBS for p in sorted(path.glob(pattern)) if _looks_like_labelme(p)]


def sniff(path: str | Path) -> bool:
    """True for a labelme JSON, or a folder holding some (directly or in split subfolders)."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".json" and _looks_like_labelme(path)
    # one file settles it: sniffing every file's head would be a serial pass before the parallel read
    candidates = (p for pattern in _JSON_GLOBS for p in path.glob(pattern)) if path.is_dir() else ()
    return any(_looks_like_labelme(p) for p in candidates)


# reading -----------------------------------------------------------------------------


def _labels_file(folders: list[Path]) -> Path | None:
    for folder in folders:
        for name in _LABEL_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def _read_labels_file(path: Path, dataset: Dataset) -> None:
    """Categories from a labelme labels file: ``__ignore__`` and ``_background_`` are not categories."""
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    for name in (n for n in names if n and n not in (_IGNORE, _BACKGROUND)):
        if any(c.name == name for c in dataset.categories.values()):
            raise FormatError(f"label {name!r} is listed twice", path=path)
        cat_id = len(dataset.categories) + 1
        dataset.categories[cat_id] = Category(cat_id, name)


def read(path: str | Path, *, images_root: str | Path | None = None) -> Dataset:
    """Read labelme JSON files: one file, a folder of them, or a folder of split subfolders.

    Each file is read once, on every core, for its image, categories and
    findings (which still come out in file order, the categories numbered as
    their labels first appear); the annotations stay in their files
    (:class:`~segdata.stored.StoredAnnotations`) and are read again, one
    image at a time, where they are used.  The files
    must stay unchanged while the dataset is in use.

    Parameters
    ----------
    path : str or Path
        A labelme ``*.json`` or a folder.
    images_root : str or Path, optional
        Where the images are, when ``imagePath`` does not lead to them.

    Returns
    -------
    Dataset
        One image per JSON; findings for every skipped shape.

    Raises
    ------
    FormatError
        Invalid JSON, or a file or shape that is not labelme (missing
        ``shapes``, ``points`` not a list of ``[x, y]``, …).
    ReadError
        A file cannot be opened.
    """
    path = Path(path)
    if path.is_file():
        files, root = [path], path.parent
    else:
        files, root = _json_files(path), path
    if not files:
        raise FormatError("no labelme JSON found (looked for *.json and */*.json with 'shapes')", path=path)
    dataset = Dataset({}, [], [], source_format="labelme")
    labels = _labels_file([files[0].parent, root, root.parent])
    if labels is not None:
        _read_labels_file(labels, dataset)

    def split_of(json_path: Path) -> str:
        return "" if json_path.parent == root else json_path.parent.name

    files.sort(key=lambda p: (_SPLIT_ORDER.get(split_of(p), 3 if split_of(p) else -1), split_of(p), p.name))
    images_root = Path(images_root) if images_root else None
    jobs = [(image_id, json_path, split_of(json_path), images_root)
            for image_id, json_path in enumerate(files, start=1)]
    columns = AnnotationColumns()
    reads = map_images(_read_file, jobs, workers=read_workers(len(jobs)), reading=True)
    add_image_reads(dataset, columns, (_with_categories(read, dataset, labels) for read in reads))
    dataset.annotations = columns.store(_decode, _load)
    return dataset


def _image_path(json_path: Path, image_path: str, images_root: Path | None) -> Path | None:
    name = image_path.replace("\\", "/")
    candidates = [json_path.parent / name]
    if images_root is not None:
        candidates.append(images_root / Path(name).name)
    candidates += [json_path.with_suffix(s) for s in _IMAGE_SUFFIXES]
    return next((c for c in candidates if c.suffix.lower() != ".json" and c.is_file()), None)


def _embedded_size(data: str, json_path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=False))) as image:
            return image.size
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as err:
        raise FormatError(f"'imageData' is not a base64 image: {err}", path=json_path) from None


def _require(record: dict, key: str, kind, path: Path, where: str | None) -> Any:
    if key not in record:
        raise FormatError(f"missing required key {key!r}", path=path, record=where)
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(f"{key!r} must be {expected}, found {type(value).__name__}", path=path,
                          record=where)
    return value


def _document(json_path: Path) -> tuple[dict, list]:
    """A labelme file's JSON object and its ``shapes``."""
    data = read_json(json_path)
    if not isinstance(data, dict):
        raise FormatError(f"expected a JSON object, found {type(data).__name__}", path=json_path)
    return data, _require(data, "shapes", list, json_path, None)


def _read_file(job: tuple[int, Path, str, Path | None]) -> ImageRead:
    """One file's image, findings and rows (read by a helper, when there is one), its annotations numbered
    from 1.  Each row's category is its label, and a :class:`_Label` among the findings marks where the
    label is first used: only :func:`_with_categories`, taking the files in order, knows which are new."""
    image_id, json_path, split, images_root = job
    data, shapes = _document(json_path)
    image_path = data.get("imagePath") or ""
    if not isinstance(image_path, str):
        raise FormatError(f"'imagePath' must be a string, found {type(image_path).__name__}", path=json_path)
    findings: list = []

    def flag(code, message, severity="error", annotation_id=None, **details):
        findings.append(Finding(code, severity, message, split, image_id, annotation_id, str(json_path),
                                details))

    located = _image_path(json_path, image_path, images_root)
    name = Path(image_path.replace("\\", "/")).name if image_path else ""
    if not name or name.endswith(".json"):
        name = located.name if located else json_path.with_suffix(".jpg").name
    height, width = data.get("imageHeight"), data.get("imageWidth")
    actual = None
    if data.get("imageData"):
        actual = _embedded_size(data["imageData"], json_path)
        source = "embedded imageData"
    elif located is not None:
        try:
            actual = image_size(located)
        except (ReadError, FormatError):
            actual = None
        source = located.name
    if actual is not None and (width, height) != actual:
        if isinstance(width, int) and isinstance(height, int):
            flag("image-size-mismatch", f"imageHeight/imageWidth say {height}x{width} but the {source} is "
                 f"{actual[1]}x{actual[0]} (height x width); the image wins")
        width, height = actual
    if not (isinstance(width, int) and isinstance(height, int)) or isinstance(width, bool) or width <= 0 \
            or height <= 0:
        raise FormatError(f"'imageHeight'/'imageWidth' must be positive integers (found {height!r}, "
                          f"{width!r}) and no image gives the size", path=json_path)
    image = ImageRecord(image_id, name, width, height, split=split, path=located)
    read = ImageRead(image, findings)
    del data  # imageData can be megabytes; the shapes are all that is left to read

    instances, void = _instances(shapes, json_path, flag)
    if void:
        image.void = _union(void, height, width)
    rows = []  # (id, label, crowd, defect, face) per instance; its place in _load's list is its start
    for ann_id, entry in enumerate(instances, start=1):
        label = entry["label"]
        findings.append(_Label(label, entry["shapes"][0], str(json_path)))
        rings = [p for p in entry["parts"] if isinstance(p, list)]
        defect = None
        try:
            if rings:  # the only part of _union that can fail; bitmaps are placed when decoded
                Mask.from_polygons(rings, height, width)
        except MaskError as err:
            defect = err.code
            flag(err.code, f"shapes {entry['shapes']}: {err.message}", annotation_id=ann_id)
        face = "polygon" if len(rings) == len(entry["parts"]) else "bitmap"
        rows.append((ann_id, label, entry["crowd"], defect, -1 if defect is not None else FACES.index(face)))
    if rows:
        _ids, labels, crowd, defects, faces = zip(*rows)
        read.rows = (str(json_path), len(rows), {
            "defect": defects, "image_id": image_id, "category_id": labels, "iscrowd": crowd,
            "height": height, "width": width, "face": faces,
            "mask_ok": [defect is None for defect in defects]})
    return read


class _Label(NamedTuple):
    """Where a file's findings would say that an instance's label is no category yet."""

    label: str
    shape: int
    path: str


def _with_categories(read: ImageRead, dataset: Dataset, labels: Path | None) -> ImageRead:
    """``read`` with its rows' labels made category ids, a label no category has yet added as the next id
    (with a finding, when a labels file lists the categories)."""
    by_name = {c.name: c.id for c in dataset.categories.values()}
    findings = []
    for item in read.findings:
        if not isinstance(item, _Label):
            findings.append(item)
            continue
        if item.label in by_name:
            continue
        cat_id = by_name[item.label] = max(dataset.categories, default=0) + 1
        dataset.categories[cat_id] = Category(cat_id, item.label)
        if labels is not None:
            findings.append(Finding("category-unknown", "warning", f"label {item.label!r} is not in "
                                    f"{labels.name}; added as category {cat_id}", read.image.split,
                                    read.image.id, None, item.path, {"shape": item.shape}))
    read.findings = findings
    if read.rows is not None:
        read.rows[2]["category_id"] = [by_name[label] for label in read.rows[2]["category_id"]]
    return read


def _instances(shapes: list, json_path: Path, flag: Callable) -> tuple[list[dict], list]:
    """A file's instances and void parts, flagging every shape skipped.

    Shapes of one ``label`` and ``group_id`` are one instance, placed where
    its first region is; each instance is ``{"label", "parts", "shapes",
    "crowd"}``, its parts rings or ``(x, y, crop)`` bitmaps.  :func:`read`
    and :func:`_load` both group through here, so a record's index in
    :func:`_load`'s list is the one the reader gave it.
    """
    instances: dict[tuple[str, Any], dict] = {}
    void: list = []
    for index, shape in enumerate(shapes):
        where = f"shape {index}"
        if not isinstance(shape, dict):
            raise FormatError(f"expected an object, found {type(shape).__name__}", path=json_path,
                              record=where)
        label = _require(shape, "label", str, json_path, where)
        points = _require(shape, "points", list, json_path, where)
        kind = shape.get("shape_type") or "polygon"
        if not _are_points(points):
            raise FormatError("'points' must be a list of [x, y] numbers", path=json_path, record=where)
        if kind in _NOT_REGIONS:
            flag("shape-not-a-region", f"shape {index} ({label!r}) is a {kind}, not a region; skipped",
                 "warning", shape=index)
            continue
        if kind not in _REGIONS:
            flag("shape-type-unknown", f"shape {index} ({label!r}) has unknown shape_type {kind!r}; skipped",
                 shape=index)
            continue
        if label == _BACKGROUND:
            flag("shape-background", f"shape {index} is labelled {_BACKGROUND}, not a category; skipped",
                 "warning", shape=index)
            continue
        try:
            part = _shape_part(shape, kind, points)
        except MaskError as err:
            flag(err.code, f"shape {index} ({label!r}, {kind}): {err.message}; skipped", shape=index)
            continue
        if label == _IGNORE:
            void.append(part)
            flag("shape-ignore-as-void", f"shape {index} is labelled {_IGNORE}: read as void", "info",
                 shape=index)
            continue
        group_id = shape.get("group_id")
        key = (label, group_id if group_id is not None else ("shape", index))
        entry = instances.setdefault(key, {"label": label, "parts": [], "shapes": [], "crowd": False})
        entry["parts"].append(part)
        entry["shapes"].append(index)
        entry["crowd"] |= bool((shape.get("flags") or {}).get("iscrowd"))
    return list(instances.values()), void


def _are_points(points: list) -> bool:
    """Every point is ``[x, y]`` of numbers (JSON types are exact; C-level maps, as a Python loop per
    point was half the time of reading a file)."""
    return (set(map(type, points)) <= {list} and set(map(len, points)) <= {2}
            and set(map(type, chain.from_iterable(points))) <= {int, float, bool})


def _ignore(*_, **__) -> None:
    """A flag that drops what it is told: the reader has already reported it."""


def _load(file: str) -> list[dict]:
    """A labelme file's instances again, in the reader's order (:data:`segdata.stored.Loader`)."""
    json_path = Path(file)
    return _instances(_document(json_path)[1], json_path, _ignore)[0]


def _decode(record: dict, split: str, height: int, width: int, defect: str | None,
            mask_ok: bool) -> Annotation:
    """One instance of :func:`_load` as the reader judged it; ids come from the store's columns."""
    ann = Annotation(0, 0, 0, None, record["crowd"], split=split, defect=defect)
    if mask_ok:
        ann.mask = _union(record["parts"], height, width, checked=True)
    return ann


def _shape_part(shape: dict, kind: str, points: list):
    """A shape's region: a flat ring (list of floats) or an ``(x, y, crop)`` bitmap of its box."""
    if kind in ("polygon", "oriented_rectangle"):
        if len(points) < 3:
            raise MaskError(f"{len(points)} point(s), a polygon needs at least 3",
                            code="polygon-too-few-points")
        ring = list(map(float, chain.from_iterable(points)))
        if not all_finite(ring):
            raise MaskError("a NaN or infinite coordinate", code="coordinate-non-finite")
        return ring
    if len(points) != 2:
        raise MaskError(f"a {kind} needs 2 points, found {len(points)}", code="shape-points-invalid")
    (x0, y0), (x1, y1) = points
    if kind == "rectangle":
        xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        return [xa, ya, xb, ya, xb, yb, xa, yb]
    if kind == "circle":
        return circle_ring(x0, y0, math.hypot(x1 - x0, y1 - y0))
    return _mask_crop(shape.get("mask"), min(x0, x1), min(y0, y1))


def circle_ring(cx: float, cy: float, radius: float) -> list[float]:
    """A circle as a flat ring whose chords stray at most :data:`CIRCLE_TOLERANCE` px from the arc.

    Examples
    --------
    >>> ring = np.reshape(circle_ring(0, 0, 50), (-1, 2))
    >>> len(ring), bool(np.allclose(np.hypot(*ring.T), 50))  # vertices, all on the circle
    (50, True)
    >>> bool(50 * (1 - math.cos(math.pi / len(ring))) <= CIRCLE_TOLERANCE)  # arc-to-chord gap
    True
    """
    if not radius > 0:
        raise MaskError("a circle of radius 0 has no area", code="mask-empty")
    n = 12
    if radius > CIRCLE_TOLERANCE:
        n = max(n, math.ceil(math.pi / math.acos(1 - CIRCLE_TOLERANCE / radius)))
    angles = 2 * math.pi * np.arange(n) / n
    return np.column_stack((cx + radius * np.cos(angles), cy + radius * np.sin(angles))).ravel().tolist()


def _mask_crop(data: Any, x: float, y: float) -> tuple[int, int, np.ndarray]:
    """A labelme ``mask`` (base64 PNG of the box) and its top-left pixel: ``(x, y)`` rounded."""
    if not isinstance(data, str) or not data:
        raise MaskError("a mask shape needs a base64 PNG in 'mask'", code="mask-data-invalid")
    try:
        with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as png:
            crop = np.asarray(png) != 0
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as err:
        raise MaskError(f"'mask' is not a base64 PNG: {err}", code="mask-data-invalid") from None
    if crop.ndim == 3:
        crop = crop.any(axis=2)
    return int(round(x)), int(round(y)), crop


def _placed(part: tuple[int, int, np.ndarray], height: int, width: int) -> np.ndarray:
    """A mask crop placed on the image, as labelme's ``shapes_to_label`` does (what falls outside is cut)."""
    x0, y0, crop = part
    bitmap = np.zeros((height, width), bool)
    h, w = crop.shape
    ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x0, 0), min(x0 + w, width))
    if ys.start < ys.stop and xs.start < xs.stop:
        bitmap[ys, xs] = crop[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return bitmap


def _union(parts: list, height: int, width: int, *, checked: bool = False) -> Mask:
    """One mask from rings (unioned by pycocotools) and crops; ``checked``: the rings passed reading."""
    rings = [p for p in parts if isinstance(p, list)]
    bitmaps = [_placed(p, height, width) for p in parts if not isinstance(p, list)]
    polygons = Mask.from_checked if checked else Mask.from_polygons
    if not bitmaps:
        return polygons(rings, height, width)
    union = np.logical_or.reduce(bitmaps)
    if rings:
        union |= polygons(rings, height, width).to_bitmap()
    return Mask.from_bitmap(union)


# writing -----------------------------------------------------------------------------


def _polygon_shapes(mask: Mask, label: str, tolerance: float, group_id: int | None,
                    flags: dict) -> list[dict]:
    rings = mask.to_polygons(tolerance)
    group = group_id if len(rings) > 1 else None
    return [{"label": label, "points": np.asarray(r, float).reshape(-1, 2).tolist(), "group_id": group,
             "description": "", "shape_type": "polygon", "flags": dict(flags), "mask": None} for r in rings]


def _image_json(job, *, names: dict[int, str], tolerance: float):
    """One image's labelme document and what writing it changed (runs in a worker)."""
    image, anns, image_path = job
    changes: list[Change] = []
    if image.defect:
        changes.append(Change("skipped", image.split, image.id, None, image.defect))
        changes.extend(Change("skipped", a.split, a.image_id, a.id, image.defect) for a in anns)
        return None, changes, 0
    shapes, group, written = [], 0, 0
    for ann in anns:
        where = (ann.split, ann.image_id, ann.id)
        if ann.defect or ann.mask is None:
            changes.append(Change("skipped", *where, ann.defect or "mask-missing"))
            continue
        if ann.category_id not in names:
            changes.append(Change("skipped", *where, f"category-unknown: no category {ann.category_id}"))
            continue
        if ann.mask.area == 0:
            changes.append(Change("skipped", *where, "mask-empty: no pixel to outline"))
            continue
        group += 1
        new = _polygon_shapes(ann.mask, names[ann.category_id], tolerance, group,
                              {"iscrowd": True} if ann.iscrowd else {})
        rings = [[v for point in s["points"] for v in point] for s in new]
        iou = Mask.from_polygons(rings, image.height, image.width).iou(ann.mask)
        detail = "one polygon shape" if len(new) == 1 else f"{len(new)} polygon shapes, group_id {group}"
        changes.append(Change("polygon-written", *where, detail + "; IoU by pycocotools' rule", iou))
        shapes.extend(new)
        written += 1
    if image.void is not None and image.void.area:
        shapes.extend(_polygon_shapes(image.void, _IGNORE, 0.0, None, {}))
    document = {"version": VERSION, "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
                "imageHeight": image.height, "imageWidth": image.width}
    return document, changes, written


def write(
    dataset: Dataset,
    path: str | Path,
    *,
    tolerance: float = 0.0,
    copy_images: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write one labelme JSON per image (``<split>/<stem>.json``) and a ``labels.txt``.

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The destination folder; written atomically.
    tolerance : float
        Polygon simplification in pixels (0: lossless).
    copy_images : bool
        Copy each image beside its JSON (bytes, never re-encoded).
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes tracing masks (default: all cores).
    progress : callable, optional
        Called with the number of images just written.

    Returns
    -------
    ConversionReport
        Every written annotation with its IoU; skips and category remaps.
    """
    report = ConversionReport("labelme")
    destination = Path(path).resolve()
    ordered = sorted(dataset.categories)
    names = {cat_id: dataset.categories[cat_id].name for cat_id in ordered}
    position = {cat_id: i for i, cat_id in enumerate(ordered, start=1)}
    grouped = dataset.annotations_by_image()
    job = partial(_image_json, names=names, tolerance=tolerance)
    with output_dir(path, overwrite=overwrite) as staging:
        lines = [_IGNORE, _BACKGROUND, *names.values()]
        (staging / "labels.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        taken: dict[Path, int] = {}
        for split in dataset.splits:
            images = [image for image in dataset.images if image.split == split]
            folder = Path(split) if split else Path()

            def relative_image(image: ImageRecord) -> str:
                json_dir = destination / folder / Path(image.file_name).parent
                if copy_images or image.path is None:
                    return Path(image.file_name).name
                return Path(os.path.relpath(Path(image.path).resolve(), json_dir)).as_posix()

            jobs = ((image, grouped.get((split, image.id), []), relative_image(image)) for image in images)
            for image, (document, changes, count) in zip(images, map_images(job, jobs, workers=workers,
                                                                             progress=progress)):
                report.changes.extend(changes)
                if document is None:
                    continue
                target = staging / folder / Path(image.file_name).with_suffix(".json")
                if target in taken:
                    report.add("skipped", split, image.id, None, f"{target.relative_to(staging)} already "
                               f"written for image {taken[target]} (same stem)")
                    continue
                taken[target] = image.id
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(dumps_json(document, indent=True, sort_keys=False))
                report.images_written += 1
                report.annotations_written += count
                if copy_images and image.path is not None and Path(image.path).is_file():
                    shutil.copyfile(image.path, target.parent / Path(image.file_name).name)
        fields = (annotation_values(dataset.annotations, name).tolist()
                  for name in ("split", "image_id", "id", "category_id"))
        for split, image_id, ann_id, category_id in zip(*fields):
            if position.get(category_id, category_id) != category_id:
                report.add("category-remapped", split, image_id, ann_id,
                           f"category {category_id} reads back as {position[category_id]} "
                           "(labelme keeps names; labels.txt gives ids by position)")
    report.skip_unattached(dataset)
    return report
