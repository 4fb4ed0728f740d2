"""COCO panoptic segmentation: ``panoptic_<split>.json`` plus one RGB PNG per image.

Each PNG pixel holds a segment id, ``id = R + 256·G + 256²·B`` (panopticapi's
``rgb2id``); 0 is VOID and never an annotation.  The JSON lists, per image,
``segments_info`` records ``{id, category_id, iscrowd, area, bbox}``; segment
ids are unique within an image only.  Categories keep ``isthing`` (stuff
categories are read as ``isthing=False`` and written as ``isthing: 0``).

Reading turns each segment into an :class:`~segdata.model.Annotation` whose id
is the segment id and whose mask is the segment's pixels.  Records that parse
but are wrong are loaded with a ``defect`` and a finding, never dropped: a
segment listed but absent from the PNG (``mask-empty``), PNG ids no segment
lists (``panoptic-id-unlisted``), a PNG whose size differs from its image
(``panoptic-size-mismatch``), a missing or unreadable PNG
(``panoptic-png-missing``), an unknown category, a duplicate or zero segment
id, stored ``area``/``bbox`` that differ from the pixels (warnings).  A file
that is not COCO panoptic at all raises :class:`~segdata.errors.FormatError`.
Reading parses the records a chunk at a time and decodes every PNG once (for
the checks above), but keeps only columns (:mod:`segdata.stored`) and each
record's byte span: an image's masks are cut from its PNG again where the
image is worked on, so memory holds no mask of the dataset's.  The JSON and
PNGs must stay unchanged while the dataset is in use.

Writing paints every image with :func:`segdata.compose.compose_image`
(crowd regions painted under the instances), so what overlapping instances
lose is decided by ``overlap`` and reported per annotation.  ``area`` and
``bbox`` are those of the visible pixels.  Annotation ids become segment ids
when, in that image, they are unique, positive and below 2²⁴ (so ids survive a
round trip); otherwise segments are numbered 1, 2, … and the report says so
(``ids-remapped``).  What it loses: pixels hidden under other instances, the
image's void region (written as VOID, like unlabelled pixels), and the source
face of each mask.

Layout: ``ROOT/annotations/panoptic_<split>.json`` with its PNGs in
``ROOT/annotations/panoptic_<split>/`` (COCO's and Datumaro's layout); a JSON
given directly may also have its PNGs beside it.  PNG names keep every dot of
the image's stem (``a.b.jpg`` → ``a.b.png``).  Images are looked for in
``ROOT/images/<split>/``, ``ROOT/<split>/`` or ``ROOT/images/``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson

from segdata import png
from segdata.compose import ComposeSettings, compose_image, ids_to_rgb, settings
from segdata.converters._raster import BITMAP, masks_by_value, paintable, raster_changes, read_ids_png
from segdata.errors import FormatError, ReadError
from segdata.io import dumps_json, output_dir, read_json
from segdata.jsonstream import Unscannable, chunk_spans, parse_item, parse_items, read_array_items
from segdata.masks import Mask
from segdata.model import Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord
from segdata.parallel import map_images, read_workers
from segdata.semantic import map_path
from segdata.stored import AnnotationColumns

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "a panoptic*.json (or annotations/panoptic*.json) with 'segments_info'"

_SNIFF_BYTES = 1 << 16
_SPLIT_ORDER = {"train": 0, "val": 1, "validation": 1, "test": 2}
_IMAGE_KEYS = {"id", "file_name", "width", "height"}
_SEGMENT_KEYS = {"id", "category_id", "iscrowd"}
_MAX_SEGMENT_ID = (1 << 24) - 1
_NO_MASK = ("segment-id-duplicate", "segment-id-invalid")  #: a segment with this defect gets no mask


def _looks_panoptic(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    if b'"segments_info"' in head:
        return True
    # a big file may list its images first, and an empty split has no segment: trust COCO's own name then
    return path.name.startswith("panoptic") and b'"images"' in head


def _annotation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    candidates = sorted((path / "annotations").glob("*.json")) or sorted(path.glob("*.json"))
    found = [p for p in candidates if _looks_panoptic(p)]
    return sorted(found, key=lambda p: (_SPLIT_ORDER.get(_split_name(p), 3), p.name))


def sniff(path: str | Path) -> bool:
    """True when ``path`` is a COCO panoptic JSON or a folder holding them."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".json" and _looks_panoptic(path)
    return path.is_dir() and bool(_annotation_files(path))


def _split_name(json_path: Path) -> str:
    stem = json_path.stem
    return "" if stem == "panoptic" else stem.removeprefix("panoptic_")


def _require(record: dict, key: str, kind: type | tuple, path: Path, where: str) -> Any:
    if key not in record:
        raise FormatError(f"missing required key {key!r}", path=path, record=where)
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(f"{key!r} must be {expected}, found {type(value).__name__} {value!r}",
                          path=path, record=where)
    return value


def _png_dir(json_path: Path, first: Any) -> Path:
    """COCO's ``panoptic_<split>/`` beside the JSON, else the JSON's own folder: where the first
    record's PNG (its ``file_name``, ``first``) is."""
    beside = json_path.parent / json_path.stem
    if isinstance(first, str) and not (beside / first).is_file() and (json_path.parent / first).is_file():
        return json_path.parent
    return beside


def _images_dir(root: Path, split: str, images_root: Path | None, first: str) -> Path | None:
    bases = [images_root] if images_root else [root]
    candidates = [d for base in bases for d in (base / "images" / split, base / split, base / "images", base)]
    return next((d for d in candidates if (d / first).is_file()), None)


def _pixel_bbox(mask: Mask) -> list[float]:
    return [float(v) for v in mask.bbox_xywh]


class _Split:
    """Reads one ``panoptic_<split>.json`` into the dataset, flagging what is wrong.

    With ``rows``, the annotation records stay in the file: each is parsed and
    its PNG decoded once, for the checks, and what is kept is its segments'
    columns and where the record and PNG are (:func:`_load` cuts the masks
    again where the image is worked on).  Without, the file is parsed whole and
    every mask kept.
    """

    def __init__(self, json_path: Path, dataset: Dataset, rows: AnnotationColumns | None):
        self.path, self.dataset, self.rows = json_path, dataset, rows
        self.split = _split_name(json_path)
        self.sink = dataset.findings  # where flag() puts findings: a record's own list while it is checked

    def flag(self, code: str, message: str, image_id=None, annotation_id=None, severity="error", **details):
        self.sink.append(Finding(code, severity, message, self.split, image_id, annotation_id, str(self.path),
                                 details))

    def read(self, images_root: Path | None, root: Path) -> None:
        path = self.path
        if self.rows is None:
            data, spans = read_json(path), None
        else:
            data, arrays = read_array_items(path, "annotations")  # Unscannable: the caller parses whole
            spans = arrays["annotations"]
        if not isinstance(data, dict):
            raise FormatError(f"expected a JSON object, found {type(data).__name__}", path=path)
        for key in ("images", "annotations"):
            if not isinstance(data.get(key), list):
                message = (f"missing required list {key!r} (not a COCO panoptic file)" if key not in data
                           else f"{key!r} must be a list, found {type(data[key]).__name__}")
                raise FormatError(message, path=path)
        self._categories(data.get("categories") or [])
        images = self._images(data["images"])
        if images:
            folder = _images_dir(root, self.split, images_root, images[0].file_name)
            for image in images:
                image.path = folder / image.file_name if folder else None
        self.dataset.images.extend(images)
        by_id = {image.id: image for image in images if image.defect is None}
        if spans is None:  # masks kept: cut here
            records = ((index, raw, None) for index, raw in enumerate(data["annotations"]))
            covered = self._check_records(records, by_id, 1)
        else:
            covered = self._check_records(self._records(*spans), by_id,
                                          read_workers(len(spans[0])))
        for image in images:
            if image.id not in covered and image.defect is None:
                image.defect = "panoptic-png-missing"
                self.flag("panoptic-png-missing", f"image {image.id} ({image.file_name!r}) has no record in "
                          "'annotations', so no panoptic PNG", image.id)
        self.dataset.meta[self.split] = {k: data[k] for k in ("info", "licenses") if k in data}

    def _records(self, starts: np.ndarray, closing: int) -> Iterator[tuple[int, Any, tuple[int, int]]]:
        """``(index, record, its byte span)`` of each annotation record, parsed a chunk at a time."""
        index = 0
        for chunk in chunk_spans(starts, closing):
            for raw, span in zip(parse_items(self.path, *chunk), zip(*(c.tolist() for c in chunk))):
                yield index, raw, span
                index += 1

    def _check_records(self, records: Iterator[tuple[int, Any, tuple[int, int] | None]],
                       by_id: dict[int, ImageRecord], workers: int | None) -> set[int]:
        """Check each record here and its PNG in :func:`_png_facts` (on every core when ``workers`` is
        None); the findings come out in record order, as one process would flag them.  Returns the ids
        of the images a record covers."""
        checked: deque[tuple[_Record, list[Finding]]] = deque()
        covered: set[int] = set()
        png_dir = None

        def jobs() -> Iterator[tuple[str, tuple[int, int], list[int], bool] | None]:
            nonlocal png_dir
            for index, raw, span in records:
                if not isinstance(raw, dict):
                    raise FormatError(f"expected an object, found {type(raw).__name__}", path=self.path,
                                      record=f"annotation index {index}")
                png_dir = png_dir or _png_dir(self.path, raw.get("file_name"))
                self.sink, found = [], self.sink
                try:
                    record = self._segments(raw, index, span, by_id, covered, png_dir)
                finally:
                    self.sink, found = found, self.sink
                checked.append((record, found))
                yield record.png_job(keep_masks=self.rows is None)

        for facts in map_images(_png_facts, jobs(), workers=workers, reading=True):
            record, found = checked.popleft()
            self.sink.extend(found)
            cut = facts is not None and self._apply(record, facts)
            self._keep(record, cut)
        return covered

    def _categories(self, raws: list) -> None:
        categories = self.dataset.categories
        for index, raw in enumerate(raws):
            where = f"category index {index}"
            if not isinstance(raw, dict):
                raise FormatError(f"expected an object, found {type(raw).__name__}", path=self.path,
                                  record=where)
            cat_id = _require(raw, "id", int, self.path, where)
            name = _require(raw, "name", str, self.path, f"category {cat_id}")
            known = categories.get(cat_id)
            if known is not None and known.name != name:
                raise FormatError(f"category {cat_id} is {name!r} here but {known.name!r} in another split",
                                  path=self.path, record=f"category {cat_id}")
            color = raw.get("color")
            color = tuple(int(c) for c in color) if isinstance(color, list) and len(color) == 3 else None
            if known is None:
                categories[cat_id] = Category(cat_id, name, raw.get("supercategory") or "",
                                              bool(raw.get("isthing", 1)), color)

    def _images(self, raws: list) -> list[ImageRecord]:
        seen: set[int] = set()
        images = []
        for index, raw in enumerate(raws):
            if not isinstance(raw, dict):
                raise FormatError(f"expected an object, found {type(raw).__name__}", path=self.path,
                                  record=f"image index {index}")
            image_id = _require(raw, "id", int, self.path, f"image index {index}")
            where = f"image {image_id}"
            image = ImageRecord(image_id, _require(raw, "file_name", str, self.path, where),
                                _require(raw, "width", int, self.path, where),
                                _require(raw, "height", int, self.path, where), split=self.split,
                                attributes={k: v for k, v in raw.items() if k not in _IMAGE_KEYS})
            if image_id in seen:
                image.defect = "image-id-duplicate"
                self.flag("image-id-duplicate", f"image id {image_id} is used again by {image.file_name!r}",
                          image_id)
            seen.add(image_id)
            images.append(image)
        return images

    def _segments(self, raw: dict, index: int, span: tuple[int, int] | None, by_id: dict[int, ImageRecord],
                  covered: set[int], png_dir: Path) -> _Record:
        """The record's segments as annotations, their defects flagged; whether its PNG is to be cut."""
        path = self.path
        image_id = _require(raw, "image_id", int, path, f"annotation index {index}")
        where = f"image {image_id}"
        file_name = _require(raw, "file_name", str, path, where)
        segments = _require(raw, "segments_info", list, path, where)
        anns: list[Annotation] = []
        seen: set[int] = set()
        for position, seg in enumerate(segments):
            if not isinstance(seg, dict):
                raise FormatError(f"expected an object, found {type(seg).__name__}", path=path,
                                  record=f"segment index {position} ({where})")
            seg_id = _require(seg, "id", int, path, f"segment index {position} ({where})")
            seg_where = f"segment {seg_id} ({where})"
            category_id = _require(seg, "category_id", int, path, seg_where)
            iscrowd = seg.get("iscrowd", 0)
            if iscrowd not in (0, 1):  # also admits False/True (BDD100K)
                raise FormatError(f"'iscrowd' must be 0 or 1, found {iscrowd!r}", path=path, record=seg_where)
            ann = _decode((image_id, seg, None), self.split, 0, 0, None, False)
            anns.append(ann)
            if seg_id in seen:
                self._defect(ann, "segment-id-duplicate",
                             f"segment id {seg_id} is listed twice in image {image_id}")
            elif not 0 < seg_id <= _MAX_SEGMENT_ID:
                self._defect(ann, "segment-id-invalid", f"segment id {seg_id} is not in 1..{_MAX_SEGMENT_ID} "
                             "(0 is VOID)")
            seen.add(seg_id)
            if category_id not in self.dataset.categories:
                self._defect(ann, "category-unknown", f"category {category_id} is not in 'categories'")

        image = by_id.get(image_id)
        record = _Record(image_id, anns, image, span, png_dir / file_name, png_wanted=False)
        if image is None:
            for ann in anns:
                self._defect(ann, "image-ref-unknown", f"image {image_id} is not in 'images'")
        elif image_id in covered:
            for ann in anns:
                self._defect(ann, "image-record-duplicate", f"image {image_id} has a second record in "
                             "'annotations'; its segments are not used")
        else:
            covered.add(image_id)
            record.png_wanted = True
        return record

    def _keep(self, record: _Record, cut: bool) -> None:
        """One record's segments into the dataset: as they are, or as columns (their masks dropped)."""
        anns, image = record.anns, record.image
        if self.rows is None:
            self.dataset.annotations.extend(anns)
            return
        source = orjson.dumps([str(self.path), *record.span, len(anns), cut, str(record.png_path)]).decode()
        self.rows.add(source, self.split, [a.id for a in anns], [a.defect for a in anns],
                      image_id=record.image_id, category_id=[a.category_id for a in anns],
                      iscrowd=[int(a.iscrowd) for a in anns],
                      height=image.height if image else 0, width=image.width if image else 0,
                      mask_ok=[cut and ann.defect not in _NO_MASK for ann in anns], face=BITMAP)

    def _defect(self, ann: Annotation, code: str, message: str, severity: str = "error", **details) -> None:
        if ann.defect is None:
            ann.defect = code
        self.flag(code, message, ann.image_id, ann.id, severity, **details)

    def _apply(self, record: _Record, facts: tuple) -> bool:
        """What :func:`_png_facts` found in the record's PNG, as findings and defects (and masks, when
        kept); False: the PNG is unusable."""
        image, anns, png_path = record.image, record.anns, record.png_path
        if facts[0] == "unreadable":
            image.defect = image.defect or "panoptic-png-missing"
            self.flag("panoptic-png-missing", f"panoptic PNG cannot be read: {facts[1]}", image.id,
                      png=str(png_path))
            for ann in anns:
                ann.defect = ann.defect or "panoptic-png-missing"
            return False
        if facts[0] == "size":
            width, height = facts[1:]
            self.flag("panoptic-size-mismatch", f"panoptic PNG {png_path.name} is {width}×{height} "
                      f"(width×height) but image {image.id} is {image.width}×{image.height}", image.id,
                      png=str(png_path), png_size=[width, height], image_size=[image.width, image.height])
            for ann in anns:
                ann.defect = ann.defect or "panoptic-size-mismatch"
            return False
        _, present, bboxes, masks = facts
        listed = {ann.id for ann in anns}
        for value in sorted(set(present) - listed - {0}):
            self.flag("panoptic-id-unlisted",
                      f"PNG id {value} ({present[value]} px) is not in 'segments_info'", image.id,
                      png=str(png_path), value=value, pixels=present[value])
        for ann in record.usable():
            if masks is not None:
                ann.mask = masks[ann.id]
            if ann.id not in present:
                self._defect(ann, "mask-empty", f"segment {ann.id} is listed but absent from {png_path.name}")
                continue
            area, stored_area = present[ann.id], ann.attributes.get("area")
            if isinstance(stored_area, (int, float)) and stored_area != area:
                self.flag("area-mismatch",
                          f"stored area {stored_area} differs from the {area} px of the segment", image.id,
                          ann.id, "warning", stored=stored_area, pixels=area)
            bbox, stored_bbox = bboxes[ann.id], ann.attributes.get("bbox")
            if isinstance(stored_bbox, list) and stored_bbox and stored_bbox != bbox:
                self.flag("bbox-mismatch", f"stored bbox {stored_bbox} differs from the pixels' {bbox}",
                          image.id, ann.id, "warning", stored=stored_bbox, pixels=bbox)
        return True


@dataclass
class _Record:
    """One ``annotations`` record, checked: its segments, its image (None: unknown), where it is."""

    image_id: int
    anns: list[Annotation]
    image: ImageRecord | None
    span: tuple[int, int] | None
    png_path: Path
    png_wanted: bool  #: whether its PNG is checked and cut: it is the first record of a known image

    def usable(self) -> list[Annotation]:
        """The segments that get a mask: not a repeated or invalid id."""
        return [ann for ann in self.anns if ann.defect not in _NO_MASK]

    def png_job(self, keep_masks: bool) -> tuple[str, tuple[int, int], list[int], bool] | None:
        if not self.png_wanted:
            return None
        shape = (self.image.height, self.image.width)
        return str(self.png_path), shape, [a.id for a in self.usable()], keep_masks


def _png_facts(job: tuple[str, tuple[int, int], list[int], bool] | None) -> tuple | None:
    """What one record's PNG says (in a worker): ``("unreadable", why)``, ``("size", width, height)``, or
    ``("ok", pixels per PNG id, bbox per wanted id present, masks per wanted id or None)``."""
    if job is None:
        return None
    png_path, shape, wanted, keep_masks = job
    try:
        ids = read_ids_png(png_path)
    except (FormatError, ReadError) as err:
        return "unreadable", err.message
    if ids.shape != shape:
        return "size", ids.shape[1], ids.shape[0]
    values, counts = np.unique(ids, return_counts=True)
    present = dict(zip(values.tolist(), counts.tolist()))
    masks = masks_by_value(ids, wanted=set(wanted))
    bboxes = {value: _pixel_bbox(mask) for value, mask in masks.items() if value in present}
    return "ok", present, bboxes, masks if keep_masks else None


def read(path: str | Path, *, images_root: str | Path | None = None) -> Dataset:
    """Read a COCO panoptic JSON with its PNGs, or a folder of them (one per split).

    Parameters
    ----------
    path : str or Path
        A ``panoptic_<split>.json``, or a folder holding ``annotations/panoptic_*.json``.
    images_root : str or Path, optional
        Where the image files are, when not in ``ROOT/images``.

    Returns
    -------
    Dataset
        With ``findings`` for every record that parsed but is wrong.

    Raises
    ------
    FormatError
        Not COCO panoptic: invalid JSON, a missing required key, a wrong type.
    ReadError
        A JSON file cannot be opened.
    """
    path = Path(path)
    files = _annotation_files(path)
    if not files:
        raise FormatError("no COCO panoptic file found (looked for annotations/*.json and *.json holding "
                          "'segments_info')", path=path)
    root = path if path.is_dir() else path.parent
    root = root.parent if root.name == "annotations" else root
    images_root = Path(images_root) if images_root else None
    try:
        return _read_files(files, root, images_root, AnnotationColumns())
    except Unscannable:  # malformed, or NaN that only Python's json reads: parse whole, for the precise error
        return _read_files(files, root, images_root, None)


def _read_files(files: list[Path], root: Path, images_root: Path | None,
                rows: AnnotationColumns | None) -> Dataset:
    dataset = Dataset({}, [], [], source_format="coco-panoptic")
    for json_path in files:
        _Split(json_path, dataset, rows).read(images_root, root)
    if rows is not None:
        dataset.annotations = rows.store(_decode, _load)
    return dataset


def _load(source: str) -> list[tuple[int, dict, Mask | None]]:
    """An image's segments as ``(image id, segment record, mask)``, in file order: one decode of its PNG.

    Raises
    ------
    FormatError, ReadError
        The JSON or the PNG cannot be read, or the JSON changed since the dataset was read.
    """
    json_path, start, stop, count, cut, png_path = orjson.loads(source)
    raw = parse_item(json_path, start, stop)
    segments = raw.get("segments_info") if isinstance(raw, dict) else None
    if not isinstance(segments, list) or len(segments) != count:
        raise FormatError(f"the file changed since it was read: the record at bytes {start}–{stop} no longer "
                          f"lists {count} segments", path=json_path)
    wanted = {seg["id"] for seg in segments if 0 < seg["id"] <= _MAX_SEGMENT_ID}
    masks = masks_by_value(read_ids_png(png_path), wanted=wanted) if cut else {}
    return [(raw["image_id"], seg, masks.get(seg["id"])) for seg in segments]


def _decode(record: tuple[int, dict, Mask | None], split: str, height: int, width: int, defect: str | None,
            mask_ok: bool) -> Annotation:
    """One segment of a record; its mask only where the reader cut one."""
    image_id, seg, mask = record
    return Annotation(seg["id"], image_id, seg["category_id"], mask if mask_ok else None,
                      bool(seg.get("iscrowd", 0)), None, split, defect,
                      {k: v for k, v in seg.items() if k not in _SEGMENT_KEYS})


def write(
    dataset: Dataset,
    path: str | Path,
    *,
    overlap: str = "smaller-on-top",
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write ``annotations/panoptic_<split>.json`` and ``annotations/panoptic_<split>/*.png`` per split.

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The destination folder; written atomically.
    overlap : str
        Who wins a pixel covered by several instances (see :data:`segdata.compose.OVERLAP_POLICIES`).
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes painting images (default: all cores).
    progress : callable, optional
        Called with the number of images just painted.

    Returns
    -------
    ConversionReport
        Skipped records, pixels lost to overlaps, renumbered segment ids.

    Raises
    ------
    UsageError
        An unknown overlap policy, a category id outside 1..65534, or an
        image file name that would leave the destination.
    """
    # background 0 is VOID; no class map is written, so the void value only has to stay out of the way
    config = settings(dataset.categories, overlap=overlap, crowd="paint", on_invalid="skip",
                      background_value=0, void_value=65535)
    report = ConversionReport("coco-panoptic")
    grouped = dataset.annotations_by_image()
    categories = [{"id": c.id, "name": c.name, "supercategory": c.supercategory, "isthing": int(c.isthing),
                   **({"color": list(c.color)} if c.color is not None else {})}
                  for c in dataset.categories.values()]
    with output_dir(path, overwrite=overwrite) as staging:
        (staging / "annotations").mkdir()
        for split in dataset.splits:
            name = f"panoptic_{split}" if split else "panoptic"
            paint = partial(_paint_image, config=config, png_dir=staging / "annotations" / name)
            jobs = _unique_pngs(((image, grouped.get((split, image.id), [])) for image in dataset.images
                                 if image.split == split), report)
            images, records = [], []
            for image_json, record, changes in map_images(paint, jobs, workers=workers, progress=progress):
                report.changes.extend(changes)
                if image_json is None:
                    continue
                images.append(image_json)
                records.append(record)
                report.annotations_written += len(record["segments_info"])
            report.images_written += len(images)
            document = {**dataset.meta.get(split, {}), "images": images, "annotations": records,
                        "categories": categories}
            # sorted keys put 'annotations' (segments_info) first, so sniffers see it in the head
            (staging / "annotations" / f"{name}.json").write_bytes(dumps_json(document))
    report.skip_unattached(dataset)
    return report


def _unique_pngs(jobs, report: ConversionReport):
    """Leave out (and report) an image whose PNG name another image already has (``a.jpg``, ``a.png``)."""
    taken: dict[PurePosixPath, int] = {}
    for image, anns in jobs:
        name = _png_name(image)
        if name in taken and not image.defect:
            report.add("skipped", image.split, image.id, None, f"PNG {name} is already image {taken[name]}'s")
            continue
        taken.setdefault(name, image.id)
        yield image, anns


def _png_name(image: ImageRecord) -> PurePosixPath:
    """The PNG's name inside ``panoptic_<split>/``: every dot of the stem kept (panopticapi's
    ``rsplit('.')[0]`` would cut ``a.b.jpg`` to ``a``).

    Examples
    --------
    >>> str(_png_name(ImageRecord(1, "frames/a.b.jpg", 4, 2, split="val")))
    'frames/a.b.png'
    """
    relative = map_path(image)  # keeps dots in stems, refuses names leaving the folder
    return relative.relative_to(image.split) if image.split else relative


def _paint_image(job: tuple[ImageRecord, list[Annotation]], *, config: ComposeSettings, png_dir: Path):
    """One image's PNG (written into the staging folder), its JSON records and changes (runs in a worker)."""
    image, anns = job
    changes: list[Change] = []
    if image.defect:
        changes.append(Change("skipped", image.split, image.id, None, image.defect))
        return None, None, changes
    usable = paintable(image, anns, config, changes)
    maps = compose_image(image, usable, config)
    changes.extend(raster_changes(maps, image.split, image.id))
    ids = [ann.id for ann in usable]
    keep_ids = len(set(ids)) == len(ids) and all(0 < i <= _MAX_SEGMENT_ID for i in ids)
    if not keep_ids:
        changes.append(Change("ids-remapped", image.split, image.id, None, "annotation ids are not unique, "
                              "positive and below 2^24 in this image; segment ids are 1 + position"))
    lut = np.array([0, *ids] if keep_ids else range(len(usable) + 1), np.uint32)
    segments = []
    for segment in maps.segments_info():
        ann = usable[segment["id"] - 1]
        segment["id"] = int(lut[segment["id"]])
        where = (ann.split, ann.image_id, ann.id)
        stored_area, stored_bbox = ann.attributes.get("area"), ann.attributes.get("bbox")
        # pixels lost to overlaps are reported by raster_changes; here only stored values the mask belies
        area, bbox = ann.mask.area, list(ann.mask.bbox_xywh)
        if isinstance(stored_area, (int, float)) and stored_area != area:
            changes.append(Change("area-recomputed", *where, f"{stored_area} -> {area}"))
        if isinstance(stored_bbox, list) and stored_bbox and stored_bbox != bbox:
            changes.append(Change("bbox-recomputed", *where, f"{stored_bbox} -> {bbox}"))
        extra = {k: v for k, v in ann.attributes.items() if k not in ("area", "bbox")}
        segments.append({**extra, **segment})
    png_name = _png_name(image)
    target = png_dir / png_name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png.encode(ids_to_rgb(np.take(lut, maps.instance_map))))
    image_json = {"id": image.id, "file_name": image.file_name, "width": image.width, "height": image.height,
                  **image.attributes}
    return image_json, {"image_id": image.id, "file_name": str(png_name), "segments_info": segments}, changes
