"""Write class maps (and instance-id and panoptic maps) for every image of a dataset.

Layout of the destination folder (written atomically)::

    classes.json                     value -> category id and name, void and background values
    <split>/<stem>.png               class map: palette PNG (8-bit) or 16-bit grey PNG
    instance_ids/<split>/<stem>.png  16-bit: 1 + position of the annotation in its image (0 = none)
    instance_ids/annotation_ids_<split>.json   per map, the annotation id of each value (value - 1)
    panoptic/panoptic_<split>/<stem>.png   RGB, segment id = R + 256·G + 256²·B (0 = void / unlabeled)
    panoptic/panoptic_<split>.json         COCO panoptic: images, annotations with segments_info, categories

``<stem>`` is the image's ``file_name`` (sub-folders kept) with only its last
suffix replaced by ``.png``, so ``a.b.jpg`` gives ``a.b.png``.  PNG is
lossless, so ids survive (pitfall 27: never JPEG a panoptic map).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from segdata import png
from segdata.compose import (ComposeSettings, ImageComposeReport, compose_image, ids_to_rgb, report_dict,
                             report_totals, settings)
from segdata.errors import UsageError
from segdata.io import dumps_json, output_dir, write_bytes_atomic
from segdata.model import Annotation, Dataset, ImageRecord
from segdata.packed import Mapped, PackedList
from segdata.parallel import map_images
from segdata.stored import repeated

#: Version of the JSON object returned by :func:`write_maps`; bumped on any incompatible change.
SCHEMA_VERSION = 1
_RESERVED = ("instance_ids", "panoptic")
_PREVIEW_CELL = 256


def palette_rgb(config: ComposeSettings, colors: dict[int, tuple[int, int, int]] | None = None) -> np.ndarray:
    """A deterministic 256-entry RGB palette: background black, void white, classes distinct.

    Classes take PASCAL VOC's bit-interleaved colours (never white, each
    distinct), or the category's own colour when the source gives one.

    Returns
    -------
    ndarray of shape (256, 3) and dtype uint8
    """
    index = np.arange(256)
    palette = np.zeros((256, 3), np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    voc = palette.copy()
    if config.background_value <= 255 and config.background_value != 0:
        palette[0], palette[config.background_value] = voc[config.background_value], voc[0]
    for cat_id, color in (colors or {}).items():
        if color is not None and cat_id <= 255:
            palette[cat_id] = color
    if config.void_value <= 255:
        palette[config.void_value] = (255, 255, 255)
    return palette.astype(np.uint8)


def map_path(image: ImageRecord) -> PurePosixPath:
    """``<split>/<file_name minus its last suffix>.png``, refusing names that leave the folder."""
    name = PurePosixPath(image.file_name.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or not name.name:
        raise UsageError(f"file_name {image.file_name!r} would be written outside the destination",
                         record=f"image {image.id}")
    return PurePosixPath(image.split) / name.with_suffix(".png") if image.split else name.with_suffix(".png")


def first_clash(paths: Callable[[], Iterable[tuple[int, str]]]) -> tuple[int, int, str] | None:
    """The first image whose output path an earlier one has: ``(earlier id, image id, path)``, or None.

    ``paths()`` gives ``(image id, path)`` in image order, and is called
    again only when two paths share a hash: the paths are held as 8-byte
    hashes, not as a dict of strings (~110 bytes an image).
    """
    hashes = np.fromiter((hash(path) for _, path in paths()), np.int64)
    shared = set(hashes[repeated(hashes)].tolist())
    seen: dict[str, int] = {}
    for (image_id, path), key in zip(paths() if shared else (), hashes.tolist()):
        if key in shared:
            if path in seen:
                return seen[path], image_id, path
            seen[path] = image_id
    return None


def _panoptic_name(split: str) -> str:
    """COCO's names: ``panoptic_<split>.json`` beside the folder ``panoptic_<split>/`` of its PNGs."""
    return f"panoptic_{split}" if split else "panoptic"


def _write_image(job: tuple[ImageRecord, list[Annotation]], *, config: ComposeSettings, staging: Path,
                 palette: np.ndarray | None, instance_ids: bool, panoptic: bool) -> dict[str, Any] | None:
    """Compose one image and write its PNGs into the staging folder (runs in a worker)."""
    image, annotations = job
    if image.defect:
        return None
    maps = compose_image(image, annotations, config)
    relative = map_path(image)
    targets = [(staging / relative, png.encode(maps.class_map, palette))]
    result: dict[str, Any] = {"report": maps.report, "map": str(relative)}
    if instance_ids:
        if len(annotations) > 65535:
            raise UsageError(f"{len(annotations)} annotations do not fit a 16-bit instance-id PNG",
                             record=f"image {image.id}")
        targets.append((staging / "instance_ids" / relative, png.encode(maps.instance_map)))
        result["annotation_ids"] = [ann.id for ann in annotations]
    if panoptic:
        targets.append((staging / "panoptic" / _panoptic_name(image.split) / relative.relative_to(image.split),
                        png.encode(ids_to_rgb(maps.instance_map))))
        result["segments_info"] = maps.segments_info()
    for path, data in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return result


def write_maps(
    dataset: Dataset,
    destination: str | Path,
    *,
    overlap: str = "smaller-on-top",
    crowd: str = "void",
    void_value: int = 255,
    background_value: int = 0,
    on_invalid: str = "raise",
    palette: bool = True,
    instance_ids: bool = False,
    panoptic: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a class map PNG per image (and instance-id / panoptic maps), atomically.

    Parameters
    ----------
    dataset : Dataset
    destination : str or Path
        The folder to write; replaced only when every image succeeded.
    overlap, crowd, void_value, background_value, on_invalid
        See :func:`segdata.compose.settings`.
    palette : bool
        Write 8-bit class maps as palette PNGs (colours for viewers, values for readers).
    instance_ids, panoptic : bool
        Also write instance-id maps / COCO panoptic PNGs and JSON.
    workers : int, optional
        Processes painting images (default: all cores).
    progress : callable, optional
        Called with the number of images just written.
    overwrite : bool
        Replace a non-empty destination.

    Returns
    -------
    dict
        ``{"schema_version", "destination", "settings", "class_dtype", "totals",
        "images": [per-image report, …]}``; ``"images"`` is a
        :class:`~segdata.packed.Mapped` view of the reports, held packed.

    Raises
    ------
    UsageError
        Options that contradict each other or the categories, a split named
        like an output folder, two images that map to the same PNG.
    ComposeError
        An image whose annotations cannot be painted (named in the message).
    """
    config = settings(dataset.categories, overlap=overlap, crowd=crowd, void_value=void_value,
                      background_value=background_value, on_invalid=on_invalid)
    reserved = [s for s in dataset.splits if s in _RESERVED]
    if reserved and (instance_ids or panoptic):
        raise UsageError(f"split {reserved[0]!r} has the name of an output folder ({', '.join(_RESERVED)})")
    clash = first_clash(lambda: ((i.id, str(map_path(i))) for i in dataset.images if not i.defect))
    if clash:
        raise UsageError(f"images {clash[0]} and {clash[1]} would both be written to {clash[2]}",
                         record=f"image {clash[1]}")
    colors = palette_rgb(config, {c.id: c.color for c in dataset.categories.values()}) \
        if palette and config.class_dtype == np.uint8 else None
    reports: PackedList[ImageComposeReport] = PackedList()  # one an image: packed
    skipped_images = []
    panoptic_records: dict[str, list[dict]] = {}
    id_tables: dict[str, dict[str, list[int]]] = {}
    with output_dir(destination, overwrite=overwrite) as staging:
        job = partial(_write_image, config=config, staging=staging, palette=colors,
                      instance_ids=instance_ids, panoptic=panoptic)
        for image, result in zip(dataset.images,
                                 map_images(job, dataset.image_items(), workers=workers, progress=progress)):
            if result is None:
                skipped_images.append({"split": image.split, "image_id": image.id, "reason": image.defect})
                continue
            reports.append(result["report"])
            relative = PurePosixPath(result["map"])
            file_name = str(relative.relative_to(image.split) if image.split else relative)
            if instance_ids:
                id_tables.setdefault(image.split, {})[file_name] = result["annotation_ids"]
            if panoptic:
                panoptic_records.setdefault(image.split, []).append(
                    {"image": {"id": image.id, "file_name": image.file_name, "width": image.width,
                               "height": image.height},
                     "annotation": {"image_id": image.id, "file_name": file_name,
                                    "segments_info": result["segments_info"]}})
        _write_tables(dataset, staging, config, id_tables, panoptic_records)
    totals = report_totals(reports)
    totals["images_skipped"] = skipped_images
    return {
        "schema_version": SCHEMA_VERSION,
        "destination": str(destination),
        "settings": {"overlap": overlap, "crowd": crowd, "void_value": void_value,
                     "background_value": background_value, "on_invalid": on_invalid,
                     "instance_ids": instance_ids, "panoptic": panoptic},
        "class_dtype": np.dtype(config.class_dtype).name,
        "totals": totals,
        "images": Mapped(report_dict, reports),
    }


def _write_tables(dataset: Dataset, staging: Path, config: ComposeSettings,
                  id_tables: dict[str, dict[str, list[int]]], panoptic_records: dict[str, list[dict]]) -> None:
    classes = {
        "background_value": config.background_value,
        "void_value": config.void_value,
        "dtype": np.dtype(config.class_dtype).name,
        "classes": [{"value": c.id, "id": c.id, "name": c.name, "supercategory": c.supercategory}
                    for c in sorted(dataset.categories.values(), key=lambda c: c.id)],
    }
    (staging / "classes.json").write_bytes(dumps_json(classes, indent=True))
    for split, table in id_tables.items():
        (staging / "instance_ids" / (f"annotation_ids_{split}.json" if split else "annotation_ids.json")).write_bytes(dumps_json(table, indent=True))
    categories = [{"id": c.id, "name": c.name, "supercategory": c.supercategory, "isthing": int(c.isthing)}
                  for c in dataset.categories.values()]
    for split, records in panoptic_records.items():
        document = {"images": [r["image"] for r in records], "annotations": [r["annotation"] for r in records],
                    "categories": categories}
        name = f"{_panoptic_name(split)}.json"
        (staging / "panoptic" / name).write_bytes(dumps_json(document))


def write_preview(dataset: Dataset, path: str | Path, *, max_images: int = 8, columns: int = 4,
                  **options: Any) -> int:
    """Write a contact sheet: up to ``max_images`` images with their class map blended over them.

    Images whose file cannot be read are drawn on grey, so that the sheet
    still shows the labels.  ``options`` are those of
    :func:`segdata.compose.settings`.

    Returns
    -------
    int
        The number of images on the sheet.
    """
    config = settings(dataset.categories, **options)
    colors = palette_rgb(config, {c.id: c.color for c in dataset.categories.values()})
    cells = []
    for image, annotations in dataset.iter_images():
        if len(cells) == max_images:
            break
        if image.defect:
            continue
        class_map = compose_image(image, annotations, config).class_map
        photo = _photo(image.path)
        if photo is None or photo.shape[:2] != class_map.shape:
            photo = np.full((*class_map.shape, 3), 128, np.uint8)
        overlay = colors[np.minimum(class_map, 255)]
        labelled = (class_map != config.background_value)[:, :, None]
        blended = np.where(labelled, (photo.astype(np.uint16) + overlay) // 2, photo).astype(np.uint8)
        cells.append(_fit(blended))
    if not cells:
        raise UsageError("no usable image to preview", path=path)
    rows = -(-len(cells) // columns)
    sheet = np.zeros((rows * _PREVIEW_CELL, min(columns, len(cells)) * _PREVIEW_CELL, 3), np.uint8)
    for index, cell in enumerate(cells):
        row, col = divmod(index, columns)
        sheet[row * _PREVIEW_CELL:row * _PREVIEW_CELL + cell.shape[0],
              col * _PREVIEW_CELL:col * _PREVIEW_CELL + cell.shape[1]] = cell
    write_bytes_atomic(path, png.encode(sheet))
    return len(cells)


def _photo(path: Path | None) -> np.ndarray | None:
    try:
        with Image.open(path) as photo:
            return np.asarray(photo.convert("RGB"))
    except (OSError, TypeError, ValueError):  # no path, a missing or unreadable file: a grey cell instead
        return None


def _fit(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = _PREVIEW_CELL / max(height, width, 1)
    size_wh = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size_wh, Image.Resampling.NEAREST))
