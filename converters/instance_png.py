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

Writing paints each image with :func:`segdata.compose.compose_image` (crowd
regions painted under the other instances; ``overlap`` decides contested
pixels); what each instance lost is reported.  What it loses: hidden pixels
of overlapping instances, the image's void region (written as 0), the
source face of each mask, and stored ``area``/``bbox`` (recomputable from pixels).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segdata import png
from segdata.compose import ComposeSettings, compose_image, ids_to_rgb, rgb_to_ids, settings
from segdata.converters._raster import masks_by_value, paintable, raster_changes, read_label_png, read_rgb_png
from segdata.errors import FormatError, ReadError
from segdata.io import dumps_json, output_dir, read_json
from segdata.model import Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord
from segdata.parallel import map_images
from segdata.semantic import map_path

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
    root = table.parent
    data = read_json(table)
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
    records = [(index, raw) for index, raw in enumerate(data["maps"])]
    for index, raw in records:
        if not isinstance(raw, dict):
            raise FormatError(f"expected an object, found {type(raw).__name__}", path=table,
                              record=f"map index {index}")
    records.sort(key=lambda r: _SPLIT_ORDER.get(r[1].get("split") or "", 3 if r[1].get("split") else -1))
    seen_images: set[tuple[str, int]] = set()
    seen_anns: set[tuple[str, int]] = set()
    for index, raw in records:
        _read_image(raw, index, dataset, table, root, Path(images_root) if images_root else None,
                    seen_images, seen_anns)
    return dataset


def _read_image(raw: dict, index: int, dataset: Dataset, table: Path, root: Path, images_root: Path | None,
                seen_images: set, seen_anns: set) -> None:
    image_id = _require(raw, "id", int, table, f"map index {index}")
    where = f"image {image_id}"
    split = raw.get("split") or ""
    if not isinstance(split, str):
        raise FormatError(f"'split' must be str, found {type(split).__name__}", path=table, record=where)
    image = ImageRecord(image_id, _require(raw, "file_name", str, table, where),
                        _require(raw, "width", int, table, where), _require(raw, "height", int, table, where),
                        split=split, attributes={k: v for k, v in raw.items() if k not in _MAP_KEYS})
    if images_root is not None:
        image.path = images_root / image.file_name
    map_name = _require(raw, "map", str, table, where)
    encoding = raw.get("encoding", "gray16")
    if encoding not in _ENCODINGS:
        raise FormatError(f"'encoding' must be one of {', '.join(_ENCODINGS)}, found {encoding!r}",
                          path=table, record=where)
    dataset.images.append(image)

    def flag(code, message, annotation_id=None, severity="error", **details):
        dataset.findings.append(Finding(code, severity, message, split, image_id, annotation_id, str(table),
                                        details))

    def defect(ann: Annotation, code: str, message: str, **details) -> None:
        ann.defect = ann.defect or code
        flag(code, message, ann.id, **details)

    if (split, image_id) in seen_images:
        image.defect = "image-id-duplicate"
        flag("image-id-duplicate", f"image id {image_id} is used again by {image.file_name!r}")
    seen_images.add((split, image_id))

    anns: dict[int, Annotation] = {}
    for position, inst in enumerate(_require(raw, "instances", list, table, where)):
        if not isinstance(inst, dict):
            raise FormatError(f"expected an object, found {type(inst).__name__}", path=table,
                              record=f"instance index {position} ({where})")
        ann_id = _require(inst, "id", int, table, f"instance index {position} ({where})")
        inst_where = f"instance {ann_id} ({where})"
        value = _require(inst, "value", int, table, inst_where)
        iscrowd = inst.get("iscrowd", 0)
        if iscrowd not in (0, 1):
            raise FormatError(f"'iscrowd' must be 0 or 1, found {iscrowd!r}", path=table, record=inst_where)
        ann = Annotation(ann_id, image_id, _require(inst, "category_id", int, table, inst_where), None,
                         bool(iscrowd), None, split,
                         attributes={k: v for k, v in inst.items() if k not in _INSTANCE_KEYS})
        dataset.annotations.append(ann)
        if (split, ann_id) in seen_anns:
            defect(ann, "annotation-id-duplicate", f"annotation id {ann_id} is used again")
        seen_anns.add((split, ann_id))
        if ann.category_id not in dataset.categories:
            defect(ann, "category-unknown", f"category {ann.category_id} is not in 'categories'")
        if value in anns or value <= 0:
            defect(ann, "instance-value-invalid", f"value {value} is " + ("0 (no instance)" if value <= 0 else
                   f"already instance {anns[value].id}"), value=value)
        else:
            anns[value] = ann
    if image.defect:
        return
    map_path_ = root / map_name
    try:
        values = rgb_to_ids(read_rgb_png(map_path_)) if encoding == "rgb24" else read_label_png(map_path_)
    except (FormatError, ReadError) as err:
        image.defect = "instance-map-missing"
        flag("instance-map-missing", f"instance map cannot be read: {err.message}", map=map_name)
        for ann in anns.values():
            ann.defect = ann.defect or "instance-map-missing"
        return
    if values.shape != (image.height, image.width):
        height, width = values.shape
        flag("instance-map-size-mismatch", f"map {map_name} is {width}×{height} (width×height) but the "
             f"image is {image.width}×{image.height}", map=map_name, map_size=[width, height],
             image_size=[image.width, image.height])
        for ann in anns.values():
            ann.defect = ann.defect or "instance-map-size-mismatch"
        return
    found, counts = np.unique(values, return_counts=True)
    present = dict(zip(found.tolist(), counts.tolist()))
    for value in sorted(set(present) - set(anns) - {0}):
        flag("instance-value-unlisted", f"value {value} ({present[value]} px) in {map_name} is not in the "
             "table", value=value, pixels=present[value], map=map_name)
    masks = masks_by_value(values, wanted=set(anns))
    for value, ann in anns.items():
        ann.mask = masks[value]
        if value not in present:
            defect(ann, "mask-empty", f"value {value} is listed but absent from {map_name}", value=value)


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
