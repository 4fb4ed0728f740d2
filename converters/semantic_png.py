"""Semantic class maps: one PNG per image, a value per class, and ``classes.json``.

Layout (the one :func:`segdata.semantic.write_maps` writes)::

    classes.json          background and void values, and value -> category id and name
    <split>/<stem>.png    class map: palette PNG (8-bit, values are the indices) or 16-bit grey

A map directly in the folder has split ``""``; one in a sub-folder has the
first folder as its split.  Folders without ``classes.json`` (mmsegmentation
and labelme label maps) are read with ``classes=``: a ``classes.json``, or a
text file with one name a line, line i naming value i (labelme's
``labels.txt`` starts with ``__ignore__``, which takes no value).  A line
named ``_background_``/``background`` makes its value the background; the
void value is 255 unless the table names a class 255.

What the format loses: instances.  Reading gives one annotation per class
per image (pitfall 35: instances cannot be recovered from class maps), the
void value becomes the image's ``void`` region and the background value
nothing.  Writing merges every instance into its class, and reports a
``merged`` change for each annotation that shares its image with another
instance of its class, besides what painting cost (overlaps, crowd as void).

Reading decodes every map once, on every core (for its classes, size and
findings, which still come out in map order), but keeps only columns
(:mod:`segdata.stored`): an image's masks are cut from its PNG again where
the image is worked on, so a folder of millions of maps is never held whole.
The maps must stay unchanged while the dataset is in use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segdata import png
from segdata.compose import ComposeSettings, compose_image, settings
from segdata.converters._raster import (BITMAP, ValueMasks, image_size, mask_of_value, paintable,
                                       raster_changes, read_label_png, value_counts)
from segdata.errors import FormatError, ReadError, UsageError
from segdata.io import dumps_json, output_dir, read_json
from segdata.masks import Mask
from segdata.model import Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord
from segdata.parallel import map_images, read_workers
from segdata.semantic import map_path, palette_rgb
from segdata.stored import AnnotationColumns

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "a folder of class-map PNGs with classes.json beside them"

_RESERVED = ("instance_ids", "panoptic")
_BACKGROUND_NAMES = {"_background_", "background", "__background__"}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".JPG", ".JPEG", ".PNG")
_SHOWN_VALUES = 10


def sniff(path: str | Path) -> bool:
    """True for a folder with a segdata ``classes.json`` and no instance-id or panoptic maps."""
    path = Path(path)
    if not path.is_dir() or any((path / name).exists() for name in _RESERVED):
        return False
    try:
        table = read_json(path / "classes.json")
    except (FormatError, ReadError, OSError):
        return False
    return isinstance(table, dict) and isinstance(table.get("classes"), list) and "void_value" in table


class _Table:
    """Value -> category, and the background and void values (``None`` when there is none)."""

    def __init__(self, categories: dict[int, Category], values: dict[int, int], background: int | None,
                 void: int | None):
        self.categories, self.values, self.background, self.void = categories, values, background, void


def _parse_json_table(data: Any, path: Path) -> _Table:
    if isinstance(data, list):  # a plain list of names, index = value
        return _names_table([str(n) for n in data])
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise FormatError("a class table must hold a 'classes' list (as segdata semantic writes it) or be "
                          "a list of names", path=path)
    categories, values = {}, {}
    for index, entry in enumerate(data["classes"]):
        where = f"classes[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise FormatError("each class needs a 'name' and an integer 'value' or 'id'", path=path, record=where)
        cat_id, value = entry.get("id", entry.get("value")), entry.get("value", entry.get("id"))
        if not isinstance(cat_id, int) or not isinstance(value, int) or isinstance(value, bool):
            raise FormatError("each class needs a 'name' and an integer 'value' or 'id'", path=path, record=where)
        if value in values:
            raise FormatError(f"value {value} is given to two classes", path=path, record=where)
        color = entry.get("color")
        categories[cat_id] = Category(cat_id, entry["name"], entry.get("supercategory") or "",
                                      bool(entry.get("isthing", True)),
                                      tuple(color) if isinstance(color, list) and len(color) == 3 else None)
        values[value] = cat_id
    background, void = data.get("background_value", 0), data.get("void_value", 255)
    for name, v in (("background_value", background), ("void_value", void)):
        if v is not None and not isinstance(v, int):
            raise FormatError(f"{name!r} must be an integer or null, found {v!r}", path=path)
    return _Table(categories, values, background, void)


def _names_table(names: list[str]) -> _Table:
    """One name a value; ``__ignore__`` first takes no value, ``_background_`` marks the background.

    >>> table = _names_table(["__ignore__", "_background_", "car", "track"])
    >>> table.background, table.void, {v: table.categories[c].name for v, c in table.values.items()}
    (0, 255, {1: 'car', 2: 'track'})
    """
    if names and names[0] == "__ignore__":
        names = names[1:]
    background = next((i for i, n in enumerate(names) if n in _BACKGROUND_NAMES), None)
    void = 255 if len(names) <= 255 else None
    categories = {i: Category(i, n) for i, n in enumerate(names) if i != background}
    return _Table(categories, {i: i for i in categories}, background, void)


def _class_table(root: Path, classes: str | Path | None) -> _Table:
    path = Path(classes) if classes is not None else root / "classes.json"
    if classes is None and not path.is_file():
        raise FormatError("no class table: expected classes.json beside the maps; pass one with --classes "
                          "(a classes.json, or a text file with one class name a line, line i naming value i)",
                          path=root)
    if path.suffix.lower() == ".json":
        return _parse_json_table(read_json(path), path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ReadError(f"cannot read the class table: {error}", path=path) from None
    except UnicodeDecodeError:
        raise FormatError("a class table must be UTF-8 text", path=path) from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise FormatError("the class table names no class", path=path)
    return _names_table(names)


def _find_image(images_root: Path, split: str, stem: PurePosixPath) -> Path | None:
    for folder in ([images_root / split, images_root] if split else [images_root]):
        for suffix in _IMAGE_SUFFIXES:
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def read(path: str | Path, *, classes: str | Path | None = None,
         images_root: str | Path | None = None) -> Dataset:
    """Read a folder of class maps: one annotation per class per image.

    Parameters
    ----------
    path : str or Path
        The folder holding the maps (and ``classes.json``).
    classes : str or Path, optional
        The class table, for folders without ``classes.json``.
    images_root : str or Path, optional
        Where the images are (``<split>/<stem>.<ext>`` or ``<stem>.<ext>``);
        gives their file names and checks their size against the maps.

    Returns
    -------
    Dataset
        With findings for unreadable maps, values without a class, and maps
        whose size differs from their image.

    Raises
    ------
    FormatError
        Not a folder, no class table, a class table that cannot be parsed.
    """
    root = Path(path)
    if not root.is_dir():
        raise FormatError("expected a folder of class-map PNGs with classes.json", path=root)
    table = _class_table(root, classes)
    maps = sorted(p for p in root.rglob("*.png") if p.relative_to(root).parts[0] not in _RESERVED)
    if not maps:
        raise FormatError("no class-map PNG found (expected <split>/<stem>.png or <stem>.png)", path=root)
    dataset = Dataset(dict(sorted(table.categories.items())), [], [], source_format="semantic-png",
                      meta={"": {"background_value": table.background, "void_value": table.void}})
    for image_id, map_file in enumerate(maps, start=1):
        relative = PurePosixPath(map_file.relative_to(root).as_posix())
        split = relative.parts[0] if len(relative.parts) > 1 else ""
        stem = relative.relative_to(split).with_suffix("") if split else relative.with_suffix("")
        image_path = _find_image(Path(images_root), split, stem) if images_root else None
        file_name = f"{stem}{image_path.suffix}" if image_path else f"{stem}.png"
        dataset.images.append(ImageRecord(image_id, file_name, 0, 0, split=split, path=image_path))
    void = table.void if table.void != table.background else None
    jobs = [(str(map_file), None if image.path is None else str(image.path), void)
            for map_file, image in zip(maps, dataset.images)]
    rows = AnnotationColumns()
    next_id = 1
    reads = map_images(_map_facts, jobs, workers=read_workers(len(maps)), reading=True)
    for map_file, image, facts in zip(maps, dataset.images, reads):
        next_id = _add_map(dataset, rows, table, map_file, image, facts, next_id)
    dataset.annotations = rows.store(_decode, _load)
    return dataset


def _map_facts(job: tuple[str, str | None, int | None]) -> tuple:
    """What :func:`read` needs of one map, found where it is decoded (in a helper when there is one): why it
    cannot be read, or its size, its image's size (or why that cannot be read), its values' pixel counts
    and its void region (of value ``void``, if any)."""
    map_file, image_path, void = job
    try:
        values = read_label_png(map_file)
    except (FormatError, ReadError) as error:
        return error.message, None, None, None, None
    try:
        image_size_or_error: tuple[int, int] | str | None = image_size(image_path) if image_path else None
    except (FormatError, ReadError) as error:
        image_size_or_error = f"{image_path}: {error.message}"
    found, counts = value_counts(values)
    pixels = dict(zip(found.tolist(), counts.tolist()))
    region = mask_of_value(values, void) if void is not None and void in pixels else None
    return None, values.shape, image_size_or_error, pixels, region


def _add_map(dataset: Dataset, rows: AnnotationColumns, table: _Table, map_file: Path, image: ImageRecord,
             facts: tuple, next_id: int) -> int:
    """One map's image size, void, findings and rows, from :func:`_map_facts`; the next annotation id."""
    unreadable, shape, image_size_or_error, pixels, region = facts

    def flag(code, message, severity="error", **details):
        dataset.findings.append(Finding(code, severity, message, image.split, image.id, None, str(map_file),
                                        details))

    if unreadable is not None:
        flag("label-map-unreadable", unreadable)
        image.defect = "label-map-unreadable"
        return next_id
    image.height, image.width = shape
    if isinstance(image_size_or_error, str):
        flag("image-unreadable", image_size_or_error, severity="warning")
    elif image_size_or_error is not None and image_size_or_error != (image.width, image.height):
        width, height = image_size_or_error
        flag("label-map-size-mismatch", f"label map is {image.width}×{image.height} but the image "
             f"{image.path.name} is {width}×{height} (width×height)")
        image.defect = "label-map-size-mismatch"
        image.width, image.height = width, height
    image.void = region
    skip = [v for v in (table.background, table.void) if v is not None]
    cut = [v for v in pixels if v not in skip]  # ascending, as masks_by_value gives them
    unknown = [v for v in cut if v not in table.values]
    if unknown:
        shown = ", ".join(map(str, unknown[:_SHOWN_VALUES])) + (f", … ({len(unknown)} in all)"
                                                                if len(unknown) > _SHOWN_VALUES else "")
        flag("label-value-unknown", f"values {shown} have no class in the class table",
             values=unknown, pixels=[pixels[v] for v in unknown])
    index = {value: at for at, value in enumerate(pixels)}
    codes = [None if v in table.values else "category-unknown" for v in cut]
    rows.add(str(map_file), image.split, range(next_id, next_id + len(cut)), codes,
             start=[index[v] for v in cut], image_id=image.id,
             category_id=[table.values.get(v, v) for v in cut], height=shape[0], width=shape[1], face=BITMAP)
    return next_id + len(cut)


def _load(path: str) -> ValueMasks:
    """A map's ``(value, mask)`` pairs by the value's index among the map's values, each mask cut when asked
    for: one decode of the map gives an image's annotations again, where the image is worked on."""
    return ValueMasks(read_label_png(path), path)


def _decode(record: tuple[int, Mask], split: str, height: int, width: int, defect: str | None,
            mask_ok: bool) -> Annotation:
    """One value's annotation; ids and category come from the store's columns."""
    value, mask = record
    return Annotation(0, 0, 0, mask, split=split, defect=defect, attributes={"value": value})


def write(
    dataset: Dataset,
    path: str | Path,
    *,
    overlap: str = "smaller-on-top",
    void_value: int = 255,
    background_value: int = 0,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write one class map per image and ``classes.json``; class value = category id.

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The destination folder; written atomically.
    overlap : str
        Who wins a pixel several instances cover (see :func:`segdata.compose.settings`).
    void_value, background_value : int
        The values of void (crowd regions, the image's void) and of unlabelled pixels.
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes painting images (default: all cores).
    progress : callable, optional
        Called with the number of images just written.

    Returns
    -------
    ConversionReport
        ``merged`` for instances merged into their class, and what painting cost.

    Raises
    ------
    UsageError
        A category id equal to the background or void value, two images
        written to the same PNG, a split named like a reserved folder.
    """
    config = settings(dataset.categories, overlap=overlap, crowd="void", void_value=void_value,
                      background_value=background_value, on_invalid="skip")
    clash = [s for s in dataset.splits if s in _RESERVED]
    if clash:
        raise UsageError(f"split {clash[0]!r} has the name of a reserved folder ({', '.join(_RESERVED)})")
    seen: dict[PurePosixPath, int] = {}
    for image in dataset.images:
        if not image.defect:
            relative = map_path(image)
            if relative in seen:
                raise UsageError(f"images {seen[relative]} and {image.id} would both be written to {relative}",
                                 record=f"image {image.id}")
            seen[relative] = image.id
    palette = palette_rgb(config, {c.id: c.color for c in dataset.categories.values()}) \
        if config.class_dtype == np.uint8 else None
    names = {c.id: c.name for c in dataset.categories.values()}
    report = ConversionReport("semantic-png")
    with output_dir(path, overwrite=overwrite) as staging:
        job = partial(_write_image, config=config, staging=staging, palette=palette, names=names)
        for changes, written in map_images(job, dataset.image_items(), workers=workers, progress=progress):
            report.changes.extend(changes)
            if written is not None:
                report.images_written += 1
                report.annotations_written += written
        table = {"background_value": background_value, "void_value": void_value,
                 "dtype": np.dtype(config.class_dtype).name,
                 "classes": [{"value": c.id, "id": c.id, "name": c.name, "supercategory": c.supercategory}
                             for c in sorted(dataset.categories.values(), key=lambda c: c.id)]}
        (staging / "classes.json").write_bytes(dumps_json(table, indent=True))
    report.skip_unattached(dataset)
    return report


def _write_image(job: tuple[ImageRecord, list[Annotation]], *, config: ComposeSettings, staging: Path,
                 palette: np.ndarray | None, names: dict[int, str]) -> tuple[list[Change], int | None]:
    """Paint one image's class map into the staging folder (runs in a worker)."""
    image, annotations = job
    changes: list[Change] = []
    if image.defect:
        return [Change("skipped", image.split, image.id, None, image.defect)], None
    usable = paintable(image, annotations, config, changes)
    maps = compose_image(image, usable, config)
    changes.extend(raster_changes(maps, image.split, image.id))
    per_class = Counter(a.category_id for a in usable if not a.iscrowd)
    for ann in usable:
        others = per_class[ann.category_id] - 1
        if not ann.iscrowd and others:
            changes.append(Change("merged", ann.split, ann.image_id, ann.id, f"merged with {others} other "
                                  f"instances of class {names[ann.category_id]}"))
    target = staging / map_path(image)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png.encode(maps.class_map, palette))
    present = np.unique(maps.class_map)
    return changes, int(np.count_nonzero((present != config.background_value) & (present != config.void_value)))
