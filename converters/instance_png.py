"""Instance-id PNGs: one map per image, plus one table saying which value is which instance.

Layout and encoding::

    ROOT/instances.json          the table (below)
    ROOT/<split>/<stem>.png      one instance-id map per image

``instances.json``::

    {"format": "segdata-instance-png", "version": 1,
     "categories": [{"id", "name", "supercategory", "isthing", "color"?}],
     "maps": [{"id", "file_name", "width", "height", "split",
               "map": "<split>/<stem>.png", "encoding": "gray16" | "rgb24",
               "instances": [{"value", "id", "category_id", "iscrowd"}]}]}

A map pixel holds an instance ``value`` (0 = no instance); the table gives
each value its annotation id, category and crowd flag, so that neither ids nor
categories are squeezed into pixel values (pitfalls 24–25).  ``gray16`` maps
are 16-bit greyscale PNGs (8-bit and palette maps are read too); an image with
more than 65535 instances is written ``rgb24``, a 24-bit RGB PNG with COCO
panoptic's encoding ``value = R + 256·G + 256²·B``.  The image list is called
``maps`` (not ``images``) so that no COCO reader mistakes the table for an
instances file.  PNG stems keep every dot of the image name (``a.b.jpg`` →
``a.b.png``).

Reading: a value in a map that the table does not list is a finding
(``instance-value-unlisted``) naming the image and value; a listed value absent
from the map, a map whose size differs from its image, a missing or
unreadable map, an unknown category, a repeated value or annotation id are
loaded with a ``defect`` and a finding, never dropped.  A missing table or one
that is not this format raises :class:`~segdata.errors.FormatError`.
Reading decodes every map once, on every core (for the checks above, whose
findings still come out in table order), but keeps only columns
(:mod:`segdata.stored`) and each map entry's byte span in the table: an
image's masks are cut from its map again where the image is worked on.  The
table and maps must stay unchanged while the dataset is in use.

Writing paints each image with :func:`segdata.compose.compose_image` (crowd
regions painted under the other instances; ``overlap`` decides contested
pixels); what each instance lost is reported.  What it loses: hidden pixels
of overlapping instances, the image's void region (written as 0), the
source face of each mask, and stored ``area``/``bbox`` (recomputable from pixels).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson

from segdata import png
from segdata.compose import ComposeSettings, compose_image, ids_to_rgb, settings
from segdata.converters._raster import (BITMAP, masks_by_value, paintable, raster_changes, read_ids_png,
                                       read_label_png, value_counts)
from segdata.errors import FormatError, ReadError
from segdata.io import dumps_json, output_dir, read_json
from segdata.jsonstream import Unscannable, chunk_spans, parse_item, parse_items, read_array_items
from segdata.masks import Mask
from segdata.model import Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord
from segdata.parallel import map_images, read_workers
from segdata.semantic import map_path
from segdata.stored import AnnotationColumns

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "an instances.json whose 'format' is 'segdata-instance-png'"

TABLE = "instances.json"
_FORMAT = "segdata-instance-png"
_SNIFF_BYTES = 1 << 12
_SPLIT_ORDER = {"train": 0, "val": 1, "validation": 1, "test": 2}
_ENCODINGS = ("gray16", "rgb24")
_MAP_KEYS = {"id", "file_name", "width", "height", "split", "map", "encoding", "instances"}
_INSTANCE_KEYS = {"value", "id", "category_id", "iscrowd"}
_MAX_GRAY = 65535
_ENTRIES_PER_PARSE = 1024


def _table(path: Path) -> Path:
    return path / TABLE if path.is_dir() else path


def sniff(path: str | Path) -> bool:
    """True when ``path`` is an instance-png folder or its ``instances.json``."""
    table = _table(Path(path))
    try:
        with open(table, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    # compact or indented JSON, keys sorted or not
    return table.suffix == ".json" and b'"format"' in head and f'"{_FORMAT}"'.encode() in head


def _require(record: dict, key: str, kind: type | tuple, path: Path, where: str) -> Any:
    if key not in record:
        raise FormatError(f"missing required key {key!r}", path=path, record=where)
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(f"{key!r} must be {expected}, found {type(value).__name__} {value!r}",
                          path=path, record=where)
    return value


def read(path: str | Path, *, images_root: str | Path | None = None) -> Dataset:
    """Read an instance-png folder (or its ``instances.json``).

    Parameters
    ----------
    path : str or Path
        The folder holding ``instances.json``, or that file.
    images_root : str or Path, optional
        Where the image files are (``file_name`` is relative to it).

    Returns
    -------
    Dataset
        With ``findings`` for every record that parsed but is wrong.

    Raises
    ------
    FormatError
        No ``instances.json``, or one that is not this format.
    ReadError
        The table cannot be opened.
    """
    path = Path(path)
    table = _table(path)
    if not table.is_file():
        raise FormatError(f"no {TABLE} here: an instance-png dataset needs ROOT/{TABLE}, the table from "
                          "instance values to annotation ids and categories", path=table)
    try:
        data, arrays = read_array_items(table, "maps")
    except Unscannable:  # malformed, or NaN that only Python's json reads: parse whole, for the precise error
        data, arrays = read_json(table), None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise FormatError(f"expected a table with \"format\": \"{_FORMAT}\", found {found!r}", path=table)
    for key in ("categories", "maps"):
        _require(data, key, list, table, "")
    dataset = Dataset({}, [], [], source_format="instance-png")
    for index, raw in enumerate(data["categories"]):
        where = f"category index {index}"
        if not isinstance(raw, dict):
            raise FormatError(f"expected an object, found {type(raw).__name__}", path=table, record=where)
        cat_id = _require(raw, "id", int, table, where)
        color = raw.get("color")
        color = tuple(color) if isinstance(color, list) and len(color) == 3 else None
        dataset.categories[cat_id] = Category(
            cat_id, _require(raw, "name", str, table, f"category {cat_id}"), raw.get("supercategory") or "",
            bool(raw.get("isthing", True)), color)
    try:
        entries = _Entries.scan(table, *arrays["maps"]) if arrays else None
    except Unscannable:  # an entry orjson refuses (NaN): parse whole
        data, entries = read_json(table), None
    if entries is None:
        entries = _Entries.parsed(data["maps"], table)
    reader = _Reader(dataset, table, Path(images_root) if images_root else None,
                     stored=entries.spans is not None)
    if reader.rows is None:  # a table read whole: each map's values are kept, to cut the masks at once
        for index, raw, span in entries.in_split_order():
            entry = reader.check_entry(raw, index, span)
            reader.add_entry(entry, _map_facts(entry.job, keep=True))
    else:  # the maps are decoded on every core, as the entries are checked; the entries are finished in order
        checked: deque[_Entry] = deque()

        def jobs() -> Iterator[tuple[str, str, int, int] | None]:
            for index, raw, span in entries.in_split_order():
                checked.append(reader.check_entry(raw, index, span))
                yield checked[-1].job

        for facts in map_images(_map_facts, jobs(), workers=read_workers(len(entries.keys)),
                                reading=True):
            reader.add_entry(checked.popleft(), facts)
    dataset.annotations = reader.annotations()
    return dataset


def _split_key(raw: Any, index: int, table: Path) -> int:
    """Where a map entry sorts: no split, train, val, test, any other."""
    if not isinstance(raw, dict):
        raise FormatError(f"expected an object, found {type(raw).__name__}", path=table,
                          record=f"map index {index}")
    split = raw.get("split")
    if not split:
        return -1
    return _SPLIT_ORDER.get(split, 3) if isinstance(split, str) else 3


class _Entries:
    """The ``maps`` entries in split order (file order within a split): parsed a chunk at a time from
    their byte spans, or given parsed (a table read whole)."""

    def __init__(self, table: Path, keys: list[int], items: list | None = None,
                 spans: tuple[np.ndarray, np.ndarray] | None = None):
        self.table, self.keys, self.items, self.spans = table, keys, items, spans

    @classmethod
    def scan(cls, table: Path, starts: np.ndarray, closing: int) -> _Entries:
        """Each entry parsed once, a chunk at a time, for its split; each checked to be an object first."""
        keys: list[int] = []
        for chunk in chunk_spans(starts, closing):
            items = parse_items(table, *chunk)
            keys += [_split_key(raw, len(keys) + at, table) for at, raw in enumerate(items)]
        return cls(table, keys, spans=(starts, np.append(starts[1:], closing)))

    @classmethod
    def parsed(cls, items: list, table: Path) -> _Entries:
        return cls(table, [_split_key(raw, index, table) for index, raw in enumerate(items)], items=items)

    def in_split_order(self) -> Iterator[tuple[int, dict, tuple[int, int] | None]]:
        """``(index in the table, entry, its byte span or None)``."""
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        for first in range(0, len(order), _ENTRIES_PER_PARSE):
            block = order[first:first + _ENTRIES_PER_PARSE]
            if self.spans is None:
                yield from ((index, self.items[index], None) for index in block)
                continue
            starts, stops = self.spans
            at = np.array(sorted(block), np.int64)
            parsed = dict(zip(at.tolist(), parse_items(self.table, starts[at], stops[at])))
            yield from ((index, parsed[index], (int(starts[index]), int(stops[index]))) for index in block)


class _Reader:
    """Reads one map entry after another: the images and findings into the dataset, the annotations as
    stored columns (or, for a table read whole, decoded at once)."""

    def __init__(self, dataset: Dataset, table: Path, images_root: Path | None, stored: bool):
        self.dataset, self.table, self.images_root = dataset, table, images_root
        self.rows: AnnotationColumns | None = AnnotationColumns() if stored else None
        self.decoded: list[Annotation] = []
        self.seen_images: set[tuple[str, int]] = set()
        self.seen_anns: set[tuple[str, int]] = set()

    def annotations(self) -> Sequence[Annotation]:
        return self.decoded if self.rows is None else self.rows.store(_decode, _load)

    def check_entry(self, raw: dict, index: int, span: tuple[int, int] | None) -> _Entry:
        """A map entry's image (appended to the dataset) and its instances checked; its map still to read."""
        table = self.table
        image_id = _require(raw, "id", int, table, f"map index {index}")
        where = f"image {image_id}"
        split = raw.get("split") or ""
        if not isinstance(split, str):
            raise FormatError(f"'split' must be str, found {type(split).__name__}", path=table, record=where)
        image = ImageRecord(image_id, _require(raw, "file_name", str, table, where),
                            _require(raw, "width", int, table, where),
                            _require(raw, "height", int, table, where),
                            split=split, attributes={k: v for k, v in raw.items() if k not in _MAP_KEYS})
        if self.images_root is not None:
            image.path = self.images_root / image.file_name
        map_name = _require(raw, "map", str, table, where)
        encoding = raw.get("encoding", "gray16")
        if encoding not in _ENCODINGS:
            raise FormatError(f"'encoding' must be one of {', '.join(_ENCODINGS)}, found {encoding!r}",
                              path=table, record=where)
        self.dataset.images.append(image)
        entry = _Entry(image, map_name, span, str(table))
        if (split, image_id) in self.seen_images:
            image.defect = "image-id-duplicate"
            entry.flag("image-id-duplicate", f"image id {image_id} is used again by {image.file_name!r}")
        self.seen_images.add((split, image_id))
        entry.instances = _require(raw, "instances", list, table, where)
        entry.codes, entry.owner = self._instances(entry.instances, image_id, split, entry.flag)
        if not image.defect:
            entry.job = (str(table.parent / map_name), encoding, image.height, image.width)
        return entry

    def add_entry(self, entry: _Entry, facts: tuple | None) -> None:
        """An entry's findings about its map (from :func:`_map_facts`), then all of them, and its rows."""
        image, instances, codes, owner, map_name = (entry.image, entry.instances, entry.codes, entry.owner,
                                                    entry.map_name)
        unreadable, shape, present, values = facts or (None, None, None, None)
        failure = None
        if unreadable is not None:
            image.defect = failure = "instance-map-missing"
            entry.flag("instance-map-missing", f"instance map cannot be read: {unreadable}", map=map_name)
        elif shape is not None and present is None:
            height, width = shape
            failure = "instance-map-size-mismatch"
            entry.flag("instance-map-size-mismatch", f"map {map_name} is {width}×{height} (width×height) "
                       f"but the image is {image.width}×{image.height}", map=map_name,
                       map_size=[width, height], image_size=[image.width, image.height])
        if failure:
            for position in owner.values():
                codes[position] = codes[position] or failure
        elif present is not None:
            for value in sorted(set(present) - set(owner) - {0}):
                entry.flag("instance-value-unlisted", f"value {value} ({present[value]} px) in {map_name} is "
                           "not in the table", value=value, pixels=present[value], map=map_name)
            for value, position in owner.items():
                if value not in present:
                    codes[position] = codes[position] or "mask-empty"
                    entry.flag("mask-empty", f"value {value} is listed but absent from {map_name}",
                               instances[position]["id"], value=value)
        self.dataset.findings += entry.findings
        cut = present is not None
        masked = [cut and owner.get(inst["value"]) == at for at, inst in enumerate(instances)]
        if self.rows is not None:
            self.rows.add(_source(self.table, entry.span, len(instances), cut), image.split,
                          [inst["id"] for inst in instances], image_id=image.id,
                          category_id=[inst["category_id"] for inst in instances],
                          iscrowd=[inst.get("iscrowd", 0) for inst in instances], height=image.height,
                          width=image.width, defect=codes, mask_ok=masked, face=BITMAP)
            return
        masks = _cut(values, instances) if cut else [None] * len(instances)
        self.decoded += [_decode((image.id, inst, mask), image.split, image.height, image.width, code, ok)
                         for inst, mask, code, ok in zip(instances, masks, codes, masked)]

    def _instances(self, instances: list, image_id: int, split: str, flag) -> tuple[list, dict[int, int]]:
        """Check each instance: the first finding code of each (or None), and value -> first position."""
        table, where = self.table, f"image {image_id}"
        codes: list[str | None] = []
        owner: dict[int, int] = {}
        for position, inst in enumerate(instances):
            if not isinstance(inst, dict):
                raise FormatError(f"expected an object, found {type(inst).__name__}", path=table,
                                  record=f"instance index {position} ({where})")
            ann_id = _require(inst, "id", int, table, f"instance index {position} ({where})")
            inst_where = f"instance {ann_id} ({where})"
            value = _require(inst, "value", int, table, inst_where)
            if inst.get("iscrowd", 0) not in (0, 1):
                raise FormatError(f"'iscrowd' must be 0 or 1, found {inst['iscrowd']!r}", path=table,
                                  record=inst_where)
            category_id = _require(inst, "category_id", int, table, inst_where)
            found = []
            if (split, ann_id) in self.seen_anns:
                found.append(("annotation-id-duplicate", f"annotation id {ann_id} is used again", {}))
            self.seen_anns.add((split, ann_id))
            if category_id not in self.dataset.categories:
                found.append(("category-unknown", f"category {category_id} is not in 'categories'", {}))
            if value in owner or value <= 0:
                found.append(("instance-value-invalid", f"value {value} is " + (
                    "0 (no instance)" if value <= 0 else f"already instance {instances[owner[value]]['id']}"),
                    {"value": value}))
            else:
                owner[value] = position
            for code, message, details in found:
                flag(code, message, ann_id, **details)
            codes.append(found[0][0] if found else None)
        return codes, owner


@dataclass
class _Entry:
    """A map entry checked, waiting for its map's facts: its findings so far (in the order a read gives
    them), and the ``job`` of :func:`_map_facts` (None: the image is not read, its id is a duplicate)."""

    image: ImageRecord
    map_name: str
    span: tuple[int, int] | None
    table: str  # the path findings name
    instances: list = field(default_factory=list)
    codes: list[str | None] = field(default_factory=list)
    owner: dict[int, int] = field(default_factory=dict)  # value -> first position
    findings: list[Finding] = field(default_factory=list)
    job: tuple[str, str, int, int] | None = None

    def flag(self, code, message, annotation_id=None, severity="error", **details):
        self.findings.append(Finding(code, severity, message, self.image.split, self.image.id, annotation_id,
                                     self.table, details))


def _map_facts(job: tuple[str, str, int, int] | None, keep: bool = False) -> tuple | None:
    """What a read needs of one map, found where it is decoded (in a helper when there is one): why it
    cannot be read, or its shape, and if it is the image's its values' pixel counts (and with ``keep``
    the values).  ``job`` is the map's path, encoding and the image's height and width."""
    if job is None:
        return None
    path, encoding, height, width = job
    try:
        values = _read_map(Path(path), encoding)
    except (FormatError, ReadError) as err:
        return err.message, None, None, None
    if values.shape != (height, width):
        return None, values.shape, None, None
    found, counts = value_counts(values)
    return None, values.shape, dict(zip(found.tolist(), counts.tolist())), values if keep else None


def _read_map(path: Path, encoding: str) -> np.ndarray:
    return read_ids_png(path) if encoding == "rgb24" else read_label_png(path)


def _cut(values: np.ndarray, instances: list[dict]) -> list[Mask | None]:
    """Each instance's mask; None for a value 0 or less, or one an earlier instance has."""
    seen: set[int] = set()
    valid = []
    for inst in instances:
        value = inst["value"]
        valid.append(None if value <= 0 or value in seen else value)
        seen.add(value)
    masks = masks_by_value(values, wanted={v for v in valid if v is not None})
    return [None if value is None else masks[value] for value in valid]


def _source(table: Path, span: tuple[int, int], count: int, cut: bool) -> str:
    """What :func:`_load` needs to give an image's annotations again: its entry's bytes in the table, how
    many instances it held, and whether its map is cut (it is not when unreadable or of another size)."""
    return orjson.dumps([str(table), *span, count, cut]).decode()


def _load(source: str) -> list[tuple[int, dict, Mask | None]]:
    """An image's instances as ``(image id, table record, mask)``, in table order: one decode of its map.

    Raises
    ------
    FormatError, ReadError
        The table or the map cannot be read, or the table changed since the dataset was read.
    """
    table, start, stop, count, cut = orjson.loads(source)
    raw = parse_item(table, start, stop)
    instances = raw.get("instances") if isinstance(raw, dict) else None
    if not isinstance(instances, list) or len(instances) != count:
        raise FormatError(f"the table changed since it was read: the map entry at bytes {start}–{stop} no "
                          f"longer lists {count} instances", path=table)
    masks = _cut(_read_map(Path(table).parent / raw["map"], raw.get("encoding", "gray16")), instances) \
        if cut else [None] * count
    return [(raw["id"], inst, mask) for inst, mask in zip(instances, masks)]


def _decode(record: tuple[int, dict, Mask | None], split: str, height: int, width: int, defect: str | None,
            mask_ok: bool) -> Annotation:
    """One instance of the table; its mask only where the reader cut one."""
    image_id, inst, mask = record
    return Annotation(inst["id"], image_id, inst["category_id"], mask if mask_ok else None,
                      bool(inst.get("iscrowd", 0)), None, split, defect,
                      {k: v for k, v in inst.items() if k not in _INSTANCE_KEYS})


def write(
    dataset: Dataset,
    path: str | Path,
    *,
    overlap: str = "smaller-on-top",
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write ``instances.json`` and one instance-id PNG per image.

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
        Skipped records and pixels lost to overlaps.

    Raises
    ------
    UsageError
        An unknown overlap policy, a category id outside 1..65534, or an
        image file name that would leave the destination.
    """
    # no class map is written: the void value only has to stay out of the categories' way
    config = settings(dataset.categories, overlap=overlap, crowd="paint", on_invalid="skip",
                      background_value=0, void_value=65535)
    report = ConversionReport("instance-png")
    categories = [{"id": c.id, "name": c.name, "supercategory": c.supercategory, "isthing": c.isthing,
                   **({"color": list(c.color)} if c.color is not None else {})}
                  for c in dataset.categories.values()]
    maps = []
    jobs = _unique_maps(dataset.iter_images(), report)
    with output_dir(path, overwrite=overwrite) as staging:
        paint = partial(_paint_image, config=config, staging=staging)
        for entry, changes in map_images(paint, jobs, workers=workers, progress=progress):
            report.changes.extend(changes)
            if entry is not None:
                maps.append(entry)
                report.annotations_written += len(entry["instances"])
        report.images_written = len(maps)
        document = {"format": _FORMAT, "version": 1, "categories": categories, "maps": maps}
        # 'format' first, so that sniff finds it in the head of the file
        (staging / TABLE).write_bytes(dumps_json(document, indent=True, sort_keys=False))
    report.skip_unattached(dataset)
    return report


def _unique_maps(jobs, report: ConversionReport):
    """Leave out (and report) an image whose map path another image already has (``a.jpg``, ``a.png``)."""
    taken: dict[PurePosixPath, int] = {}
    for image, anns in jobs:
        relative = map_path(image)
        if relative in taken and not image.defect:
            report.add("skipped", image.split, image.id, None,
                       f"map {relative} is already image {taken[relative]}'s")
            continue
        taken.setdefault(relative, image.id)
        yield image, anns


def _paint_image(job: tuple[ImageRecord, list[Annotation]], *, config: ComposeSettings, staging: Path):
    """Paint one image, write its map into the staging folder, return its table entry (runs in a worker)."""
    image, anns = job
    changes: list[Change] = []
    if image.defect:
        changes.append(Change("skipped", image.split, image.id, None, image.defect))
        return None, changes
    usable = paintable(image, anns, config, changes)
    maps = compose_image(image, usable, config)
    changes.extend(raster_changes(maps, image.split, image.id))
    visible = np.flatnonzero(maps.visible_areas())
    instances = [{**usable[v - 1].attributes, "value": int(v), "id": usable[v - 1].id,
                  "category_id": usable[v - 1].category_id, "iscrowd": int(usable[v - 1].iscrowd)}
                 for v in visible if v > 0]
    for instance in instances:  # stored area/bbox describe the source mask, not the painted one
        instance.pop("area", None)
        instance.pop("bbox", None)
    relative: PurePosixPath = map_path(image)
    if len(usable) <= _MAX_GRAY:
        encoding, data = "gray16", png.encode(maps.instance_map.astype(np.uint16))
    else:
        encoding, data = "rgb24", png.encode(ids_to_rgb(maps.instance_map))
    target = staging / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    entry = {**image.attributes, "id": image.id, "file_name": image.file_name, "width": image.width,
             "height": image.height, "split": image.split, "map": str(relative), "encoding": encoding,
             "instances": instances}
    return entry, changes
