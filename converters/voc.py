"""PASCAL VOC segmentation: class and object palette PNGs, split lists, a label map.

Layout::

    JPEGImages/<stem>.jpg                  the images (any suffix; copied byte for byte)
    SegmentationClass/<stem>.png           palette PNG: class index, 0 background, 255 void
    SegmentationObject/<stem>.png          palette PNG: instance 1..N, 0 background, 255 void
    ImageSets/Segmentation/<split>.txt     one stem a line
    labelmap.txt                           Datumaro's ``name:r,g,b:parts:actions``, line i = index i

Reading: category ids are the class indices, named by ``labelmap.txt``,
labelme's ``class_names.txt``, a ``classes=`` file, or the 21 standard
classes.  Index 0 is background and never a category; 255 (and a label map's
``ignored`` entry, which Datumaro invents for it) is the image's ``void``
region, never a class.  Instances come from ``SegmentationObject``, each with
the class ``SegmentationClass`` gives at its pixels; without object maps,
each class of an image is one annotation (instances cannot be recovered
from class maps).  Palette PNGs are read as indices; RGB colour-coded maps
(Datumaro's test assets) are mapped back through the label map's colours.
An image listed in no ``ImageSets/Segmentation`` list has split ``""``; an
image in several lists keeps the first of train, val, test, others, trainval.
Reading decodes every map once, on every core (for sizes, classes and
findings, which still come out in image order), but keeps only columns
(:mod:`segdata.stored`): an image's masks are cut again from the one PNG they
come from (its object map, else its class map) where the image is worked on;
the image's void region stays on its record.  The maps must stay
unchanged while the dataset is in use.

Writing loses what VOC cannot hold: overlaps are resolved by ``overlap`` and
reported per annotation with their IoU, crowd regions become void
(``crowd-as-void``), and category ids must be 1..254.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import NamedTuple, TextIO

import numpy as np
import orjson

from segdata import png
from segdata.compose import ComposeSettings, compose_image, settings
from segdata.converters._raster import (BITMAP, ImageRead, ValueMasks, add_image_reads, image_size, paintable,
                                       raster_changes, read_label_png, read_rgb_png, value_counts)
from segdata.errors import FormatError, ReadError, UsageError
from segdata.io import output_dir
from segdata.masks import Mask
from segdata.model import (Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord,
                           annotation_values)
from segdata.parallel import map_images, read_workers
from segdata.semantic import first_clash, map_path, palette_rgb
from segdata.stored import AnnotationColumns

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "a folder with SegmentationClass/ or SegmentationObject/ (PASCAL VOC)"

STANDARD_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
                    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
                    "sheep", "sofa", "train", "tvmonitor")
_VOID, _BACKGROUND, _MAX_INSTANCES = 255, 0, 254
_VOID_COLOR = (224, 224, 192)  # VOC's own colour of index 255
_VOID_NAMES = {"ignored", "__ignore__"}
_FILLER = re.compile(r"_unused_\d+")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".JPG", ".JPEG", ".PNG")
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "trainval": 4}
_DEFAULT_SPLIT = "default"  # Datumaro's name for "no split"


def sniff(path: str | Path) -> bool:
    """True when ``path`` is a folder holding ``SegmentationClass/`` or ``SegmentationObject/``."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_dir() for name in ("SegmentationClass", "SegmentationObject"))


def _voc_palette() -> np.ndarray:
    """PASCAL VOC's bit-interleaved 256-colour palette (index 255 is (224, 224, 192)).

    >>> _voc_palette()[[0, 1, 2, 15, 255]].tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0], [192, 128, 128], [224, 224, 192]]
    """
    index = np.arange(256)
    palette = np.zeros((256, 3), np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


#: VOC's palette as packed colour -> index: how an RGB object map's colours read as instance numbers.
_PALETTE_INDEX = {(r << 16) | (g << 8) | b: index for index, (r, g, b) in enumerate(_voc_palette().tolist())}


def _read_class_table(path: Path) -> tuple[dict[int, str], dict[int, tuple[int, int, int]], set[int]]:
    """``(names, colours, void indices)`` by class index from a label map or a names file.

    Datumaro's ``labelmap.txt`` (``name:r,g,b:parts:actions``) gives colours;
    a plain file gives one name a line (labelme's ``labels.txt`` starts with
    ``__ignore__``, which takes no index).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ReadError(f"cannot read the class table: {error}", path=path) from None
    except UnicodeDecodeError:
        raise FormatError("a class table must be UTF-8 text", path=path) from None
    lines = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if lines and lines[0] == "__ignore__":
        lines = lines[1:]
    names, colors, void = {}, {}, set()
    for index, line in enumerate(lines):
        name, *rest = line.split(":")
        if rest and rest[0].strip():
            try:
                rgb = tuple(int(v) for v in rest[0].split(","))
            except ValueError:
                rgb = ()
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise FormatError(f"expected 'name:r,g,b:parts:actions', found {line!r}", path=path,
                                  record=f"line {index + 1}")
            colors[index] = rgb
        if name in _VOID_NAMES:
            void.add(index)
        else:
            names[index] = name
    if not names:
        raise FormatError("the class table names no class", path=path)
    return names, colors, void


def _class_table(root: Path, classes: str | Path | None):
    if classes is not None:
        return _read_class_table(Path(classes)), str(classes)
    for name in ("labelmap.txt", "class_names.txt"):
        if (root / name).is_file():
            return _read_class_table(root / name), str(root / name)
    palette = _voc_palette()
    return (dict(enumerate(STANDARD_CLASSES)), {i: tuple(map(int, palette[i])) for i in range(21)},
            set()), "standard"


def _split_lists(root: Path) -> dict[str, str]:
    """Stem -> split, the first list (train, val, test, others, trainval) naming it winning."""
    folder = root / "ImageSets" / "Segmentation"
    lists = sorted(folder.glob("*.txt"), key=lambda p: (_SPLIT_ORDER.get(p.stem, 3), p.stem)) \
        if folder.is_dir() else []
    splits: dict[str, str] = {}
    for path in lists:
        split = "" if path.stem == _DEFAULT_SPLIT else path.stem
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                splits.setdefault(line.split()[0], split)
    return splits


def _stems(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in sorted(folder.rglob("*.png"))}


def _find_image(folder: Path, stem: str) -> Path | None:
    return next((folder / (stem + s) for s in _IMAGE_SUFFIXES if (folder / (stem + s)).is_file()), None)


def _map_values(path: str | Path) -> tuple[np.ndarray, bool]:
    """A label PNG's values; for an RGB map, its packed colours (and True)."""
    try:
        return read_label_png(path), False
    except FormatError as error:
        if "single-channel" not in error.message:
            raise
    rgb = read_rgb_png(path).astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], True


def _read_map(path: Path, lookup: dict[int, int]
              ) -> tuple[np.ndarray, list[tuple[int, int, int]], dict[int, int]]:
    """Indices of a label PNG; an RGB map goes through ``lookup`` (packed colour -> index).

    Returns the map, the colours no index was found for (their pixels become
    0), and each index's place among the PNG's distinct values (or colours):
    where :func:`_load` finds its mask again.
    """
    values, rgb = _map_values(path)
    if not rgb:
        return values, [], {value: at for at, value in enumerate(value_counts(values)[0].tolist())}
    colours, inverse = np.unique(values, return_inverse=True)
    indices = np.array([lookup.get(int(c), -1) for c in colours], np.int64)
    unknown = [(int(c) >> 16, (int(c) >> 8) & 255, int(c) & 255) for c, i in zip(colours, indices) if i < 0]
    places = {index: at for at, index in enumerate(indices.tolist()) if index >= 0}
    return np.where(indices < 0, 0, indices)[inverse.reshape(values.shape)].astype(np.uint8), unknown, places


def _pack(rgb) -> int:
    return (int(rgb[0]) << 16) | (int(rgb[1]) << 8) | int(rgb[2])


def _class_lookup(colors: dict[int, tuple[int, int, int]], void_indices: set[int]) -> dict[int, int]:
    """Packed colour -> class index of an RGB class map: the table's colours, void ones (and VOC's own
    void colour, and white) to 255."""
    lookup = {_pack(c): i for i, c in colors.items()}
    lookup.update({_pack(c): _VOID for i, c in colors.items() if i in void_indices})
    lookup.setdefault(_pack(_VOID_COLOR), _VOID)
    lookup.setdefault(_pack((255, 255, 255)), _VOID)
    return lookup


def read(path: str | Path, *, classes: str | Path | None = None,
         images_root: str | Path | None = None) -> Dataset:
    """Read a PASCAL VOC segmentation folder.

    Parameters
    ----------
    path : str or Path
        The folder holding ``SegmentationClass/`` and/or ``SegmentationObject/``.
    classes : str or Path, optional
        A class table (``labelmap.txt`` style or one name a line, line i naming
        index i, line 0 background) used instead of the folder's own.
    images_root : str or Path, optional
        Where the images are, when not in ``JPEGImages/``.

    Returns
    -------
    Dataset
        With findings for unreadable maps, sizes that disagree, values or
        colours without a class, and instances whose pixels disagree on the class.

    Raises
    ------
    FormatError
        The folder is not VOC, or its class table cannot be parsed.
    """
    root = Path(path)
    if not sniff(root):
        raise FormatError("not a PASCAL VOC segmentation folder: expected SegmentationClass/ or "
                          "SegmentationObject/ (with JPEGImages/ and ImageSets/Segmentation/)", path=root)
    (names, colors, void_indices), table_source = _class_table(root, classes)
    dataset = Dataset({i: Category(i, n, color=colors.get(i)) for i, n in sorted(names.items())
                       if i not in (_BACKGROUND, _VOID) and not _FILLER.fullmatch(n)},
                      [], [], source_format="voc", meta={"": {"classes": table_source}})
    class_lookup, object_lookup = _class_lookup(colors, void_indices), _PALETTE_INDEX
    class_maps, object_maps = _stems(root / "SegmentationClass"), _stems(root / "SegmentationObject")
    splits = _split_lists(root)
    images_dir = Path(images_root) if images_root else root / "JPEGImages"
    stems = sorted(set(class_maps) | set(object_maps) | set(splits))
    jobs = [(image_id, stem, splits.get(stem, ""), class_maps.get(stem), object_maps.get(stem), images_dir)
            for image_id, stem in enumerate(stems, start=1)]
    context = _Context(frozenset(dataset.categories), class_lookup, object_lookup, frozenset(void_indices))
    rows = AnnotationColumns()
    reads = map_images(partial(_read_image, context), jobs, workers=read_workers(len(jobs)),
                       reading=True)
    add_image_reads(dataset, rows, reads)
    dataset.annotations = rows.store(_decode, _load)
    return dataset


class _Records(Sequence[tuple[str, "int | None", Mask]]):
    """A map's ``(kind, value, mask)`` records by the value's place among the PNG's values (or colours),
    each mask cut when asked for; an RGB object map's colour is read back as its palette index."""

    def __init__(self, path: str, kind: str):
        values, self.rgb = _map_values(path)
        self.kind, self.cuts = kind, ValueMasks(values, path)

    def __len__(self) -> int:
        return len(self.cuts)

    def __getitem__(self, at):
        value, mask = self.cuts[at]
        return self.kind, _PALETTE_INDEX.get(value) if self.rgb else value, mask


def _load(source: str) -> _Records:
    """An image's records again, from the one map its annotations were cut from (``[path, kind]``)."""
    return _Records(*orjson.loads(source))


def _decode(record: tuple[str, int | None, Mask], split: str, height: int, width: int, defect: str | None,
            mask_ok: bool) -> Annotation:
    """One value's annotation; ids and category come from the store's columns."""
    kind, value, mask = record
    instance = kind == "object" and defect not in ("class-map-missing", "instance-class-missing")
    return Annotation(0, 0, 0, mask, split=split, defect=defect,
                      attributes={"instance": value} if instance else {})


class _Context(NamedTuple):
    """What reading any image of a folder needs: its class ids, colour lookups and void indices."""

    categories: frozenset[int]
    class_lookup: dict[int, int]
    object_lookup: dict[int, int]
    void_indices: frozenset[int]


def _read_image(context: _Context, job: tuple) -> ImageRead:
    """One image's maps read (by a helper, when there is one): ``job`` is its id, stem, split, class and
    object map paths and the images folder."""
    return _Reader(context).read_image(*job)


class _Reader:
    """Reads one image: its record, findings and rows, its annotations numbered from 1."""

    def __init__(self, context: _Context):
        self.categories = context.categories
        self.class_lookup, self.object_lookup = context.class_lookup, context.object_lookup
        self.void_indices = sorted(context.void_indices)
        self.next_id = 1
        self.findings: list[Finding] = []
        self.pending: list[tuple[int, int, str | None, int]] = []  # (id, category, defect, value)

    def flag(self, code, message, image, path, annotation_id=None, severity="error", **details):
        self.findings.append(Finding(code, severity, message, image.split, image.id, annotation_id,
                                     str(path) if path else None, details))

    def read_image(self, image_id: int, stem: str, split: str, class_path: Path | None,
                   object_path: Path | None, images_dir: Path) -> ImageRead:
        image_path = _find_image(images_dir, stem)
        file_name = image_path.name if image_path else f"{stem}.jpg"
        if image_path and "/" in stem:
            file_name = f"{stem}{image_path.suffix}"
        image = ImageRecord(image_id, file_name, 0, 0, split=split, path=image_path)
        read = ImageRead(image, self.findings)
        maps = {}
        for kind, map_path_, lookup in (("class", class_path, self.class_lookup),
                                        ("object", object_path, self.object_lookup)):
            if map_path_ is None:
                continue
            try:
                values, unknown, places = _read_map(map_path_, lookup)
            except (FormatError, ReadError) as error:
                self.flag("label-map-unreadable", error.message, image, map_path_)
                image.defect = image.defect or "label-map-unreadable"
                continue
            if unknown:
                self.flag("label-colour-unknown", f"{kind} map colours {unknown[:8]} are in no class table; "
                          "their pixels were read as background", image, map_path_, colours=unknown)
            maps[kind] = (values, map_path_, places)
        self._set_size(image, maps, image_path)
        if not maps:
            if image.defect is None:
                self.flag("label-map-missing", f"{stem} is listed in ImageSets/Segmentation but has no "
                          "SegmentationClass or SegmentationObject PNG; read as unlabeled", image, image_path,
                          severity="warning")
                image.attributes["unlabeled"] = True
            return read
        if image.defect:
            return read
        class_map = maps.get("class", (None,))[0]
        if class_map is not None and self.void_indices:  # a label map's 'ignored' entry is VOC's 255
            class_map = np.where(np.isin(class_map, self.void_indices), _VOID, class_map).astype(class_map.dtype)
        object_map = maps.get("object", (None,))[0]
        void = np.zeros(next(iter(maps.values()))[0].shape, bool)
        for values in (class_map, object_map):
            if values is not None:
                void |= values == _VOID
        if void.any():
            image.void = Mask.from_bitmap(void)
        kind = "class" if object_map is None else "object"
        if object_map is None:
            found, counts = value_counts(class_map)
            for value, count in zip(found.tolist(), counts.tolist()):
                if value not in (_BACKGROUND, _VOID):
                    self._annotation(image, value, count, maps["class"][1], value)
        else:
            self._instances(image, class_map, object_map, maps)
        values, path, places = maps[kind]
        rows = self.pending
        read.rows = (orjson.dumps([str(path), kind]).decode(), len(rows),
                     {"start": [places[r[3]] for r in rows], "image_id": image.id,
                      "category_id": [r[1] for r in rows], "defect": [r[2] for r in rows],
                      "height": values.shape[0], "width": values.shape[1], "face": BITMAP})
        return read

    def _set_size(self, image: ImageRecord, maps: dict, image_path: Path | None) -> None:
        shapes = {kind: values.shape for kind, (values, _p, _places) in maps.items()}
        if len(set(shapes.values())) > 1:
            self.flag("label-map-size-mismatch", f"class map is {shapes['class'][1]}×{shapes['class'][0]} but "
                      f"object map is {shapes['object'][1]}×{shapes['object'][0]} (width×height)",
                      image, maps["object"][1])
            image.defect = "label-map-size-mismatch"
        if shapes:
            image.height, image.width = next(iter(shapes.values()))
        if image_path is None:
            return
        try:
            width, height = image_size(image_path)
        except (FormatError, ReadError) as error:
            self.flag("image-unreadable", error.message, image, image_path, severity="warning")
            return
        if shapes and (height, width) != (image.height, image.width):
            label_path = next(iter(maps.values()))[1]
            self.flag("label-map-size-mismatch", f"label map is {image.width}×{image.height} but the image "
                      f"{image_path.name} is {width}×{height} (width×height)", image, label_path)
            image.defect = image.defect or "label-map-size-mismatch"
        image.width, image.height = width, height

    def _annotation(self, image: ImageRecord, category_id: int, pixels: int, path: Path, value: int,
                    defect: str | None = None) -> int:
        """One annotation, the region of ``value`` in the map at ``path``: its id (kept until the image's
        annotations are stored)."""
        ann_id = self.next_id
        self.next_id += 1
        if defect is None and category_id not in self.categories:
            defect = "category-unknown"
            self.flag("label-value-unknown", f"class value {category_id} ({pixels} px) has no class in the "
                      "class table", image, path, ann_id, value=category_id, pixels=pixels)
        self.pending.append((ann_id, category_id, defect, value))
        return ann_id

    def _instances(self, image: ImageRecord, class_map, object_map, maps: dict) -> None:
        object_path = maps["object"][1]
        if class_map is None:
            self.flag("class-map-missing", "SegmentationObject PNG without a SegmentationClass PNG: the "
                      "instances have no class", image, object_path)
        else:  # (instance, class) pairs with their pixel counts, in one pass
            pairs, counts = _pair_counts(object_map, class_map)
            stray = (pairs >> 16 == 0) & ~np.isin(pairs & 0xFFFF, (_BACKGROUND, _VOID))
            if stray.any():
                self.flag("class-pixels-without-instance", f"{int(counts[stray].sum())} px of classes "
                          f"{sorted(int(c) for c in pairs[stray] & 0xFFFF)} belong to no instance", image,
                          object_path, severity="warning")
        found, areas = value_counts(object_map)
        for value, area in zip(found.tolist(), areas.tolist()):
            if value in (_BACKGROUND, _VOID):
                continue
            if class_map is None:
                self._annotation(image, 0, area, object_path, value, defect="class-map-missing")
                continue
            mine = (pairs >> 16) == value
            classes = {int(c): int(n) for c, n in zip(pairs[mine] & 0xFFFF, counts[mine])}
            labelled = {c: n for c, n in classes.items() if c not in (_BACKGROUND, _VOID)}
            if not labelled:
                ann_id = self._annotation(image, 0, area, object_path, value,
                                          defect="instance-class-missing")
                self.flag("instance-class-missing", f"instance {value} has no class pixel in "
                          f"SegmentationClass (found {classes})", image, object_path, ann_id, instance=value)
                continue
            category = max(labelled, key=lambda c: (labelled[c], -c))
            ann_id = self._annotation(image, category, area, object_path, value)
            if len(classes) > 1:
                self.flag("instance-class-mixed", f"instance {value} covers class pixels {classes} "
                          f"(pixels by class); read as class {category}", image, object_path, ann_id,
                          severity="warning", instance=value, classes=classes)


def _pair_counts(object_map: np.ndarray, class_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (instance, class) pairs of the maps' pixels, as ``instance << 16 | class``, and their
    counts.

    Of 8-bit maps (VOC's), one bincount of ``instance << 8 | class``: over 500
    maps of 640×360, 0.7 ms a map, where sorting every pixel's pair took 1.2 ms.
    """
    if object_map.dtype == np.uint8 and class_map.dtype == np.uint8:
        codes, counts = value_counts(object_map.astype(np.uint16) << 8 | class_map)
        return (codes >> 8) << 16 | (codes & 255), counts
    return np.unique(object_map.astype(np.int64) << 16 | class_map, return_counts=True)


def _stem(image: ImageRecord) -> PurePosixPath:
    """The image's VOC id: its ``file_name`` without split folder or last suffix."""
    return map_path(replace(image, split="")).with_suffix("")


def write(
    dataset: Dataset,
    path: str | Path,
    *,
    overlap: str = "smaller-on-top",
    copy_images: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write class and object palette PNGs, split lists and ``labelmap.txt``.

    Parameters
    ----------
    dataset : Dataset
        Category ids must be 1..254 (0 is background, 255 void).
    path : str or Path
        The destination folder; written atomically.
    overlap : str
        Who wins a pixel several instances cover (see :func:`segdata.compose.settings`).
    copy_images : bool
        Copy the image files into ``JPEGImages/``, byte for byte, keeping their suffix.
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes painting images (default: all cores).
    progress : callable, optional
        Called with the number of images just written.

    Returns
    -------
    ConversionReport
        Skipped records, crowd regions written as void, instances cut or hidden by overlaps.

    Raises
    ------
    UsageError
        A category id outside 1..254, a name ``labelmap.txt`` cannot hold,
        more than 254 instances in one image, two images with the same stem.
    """
    bad = [c.id for c in dataset.categories.values() if not 1 <= c.id <= _MAX_INSTANCES]
    if bad:
        raise UsageError(f"VOC class indices are 1..254 (0 is background, 255 void); found category "
                         f"{bad[0]}; renumber with --category-ids contiguous1")
    colon = [c.name for c in dataset.categories.values() if ":" in c.name]
    if colon:
        raise UsageError(f"category name {colon[0]!r} contains ':', which labelmap.txt cannot hold; "
                         "rename it with --category-map")
    config = settings(dataset.categories, overlap=overlap, crowd="void", void_value=_VOID,
                      background_value=_BACKGROUND, on_invalid="skip")
    _check_images(dataset)
    palette = palette_rgb(config, {c.id: c.color for c in dataset.categories.values()})
    palette[_VOID] = _VOID_COLOR
    report = ConversionReport("voc")
    with output_dir(path, overwrite=overwrite) as staging, ExitStack() as open_lists:
        for name in ("SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
            (staging / name).mkdir(parents=True)
        lists: dict[str, TextIO] = {}  # each split's list, written as its images are: 118k stems were 8 MB
        job = partial(_write_image, config=config, staging=staging, palette=palette, copy_images=copy_images)
        for image, (stem, changes, written) in zip(
                dataset.images, map_images(job, dataset.image_items(), workers=workers, progress=progress)):
            report.changes.extend(changes)
            if stem is None:
                continue
            report.images_written += 1
            report.annotations_written += written
            split = image.split or _DEFAULT_SPLIT
            if split not in lists:
                where = staging / "ImageSets" / "Segmentation" / f"{split}.txt"
                lists[split] = open_lists.enter_context(open(where, "w", encoding="utf-8", newline="\n"))
            lists[split].write(f"{stem}\n")
        (staging / "labelmap.txt").write_text(_labelmap(dataset, palette), encoding="utf-8")
    report.skip_unattached(dataset)
    return report


def _check_images(dataset: Dataset) -> None:
    """Refuse, before any pixel is painted, what VOC cannot hold."""
    clash = first_clash(lambda: ((i.id, str(_stem(i))) for i in dataset.images if not i.defect))
    if clash:
        raise UsageError(f"images {clash[0]} and {clash[1]} would both be written as {clash[2]} (VOC has one "
                         "folder for every split)", record=f"image {clash[1]}")
    for image, anns in dataset.iter_images():
        if image.defect:
            continue
        instances = int((annotation_values(anns, "usable") & ~annotation_values(anns, "iscrowd")).sum())
        if instances > _MAX_INSTANCES:
            raise UsageError(f"{instances} instances do not fit an 8-bit SegmentationObject PNG (at most "
                             f"{_MAX_INSTANCES}: 0 is background, 255 void)",
                             record=f"image {image.id} ({image.file_name})")


def _labelmap(dataset: Dataset, palette: np.ndarray) -> str:
    """Datumaro's label map: line i names class index i (gaps filled by ``_unused_<i>``)."""
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    for index in range(1, max(dataset.categories, default=0) + 1):
        category = dataset.categories.get(index)
        name = category.name if category else f"_unused_{index}"
        r, g, b = palette[index]
        lines.append(f"{name}:{r},{g},{b}::")
    return "\n".join(lines) + "\n"


def _write_image(job: tuple[ImageRecord, list[Annotation]], *, config: ComposeSettings, staging: Path,
                 palette: np.ndarray, copy_images: bool) -> tuple[str | None, list[Change], int]:
    """Paint one image's class and object maps into the staging folder (runs in a worker)."""
    image, annotations = job
    changes: list[Change] = []
    if image.defect:
        changes.append(Change("skipped", image.split, image.id, None, image.defect))
        return None, changes, 0
    stem = _stem(image)
    if image.attributes.get("unlabeled") and not annotations:
        return str(stem), changes, 0  # listed, as VOC lists test images, but no label map invented
    usable = paintable(image, annotations, config, changes)
    maps = compose_image(image, usable, config)
    changes.extend(raster_changes(maps, image.split, image.id))
    visible = maps.visible_areas()
    shown = [value for value, ann in enumerate(usable, start=1) if not ann.iscrowd and visible[value]]
    numbers = [usable[value - 1].attributes.get("instance") for value in shown]
    if not all(isinstance(n, int) and 1 <= n <= _MAX_INSTANCES for n in numbers) or len(set(numbers)) < len(numbers):
        numbers = list(range(1, len(shown) + 1))  # keep the numbers read from VOC only when they are usable
    lookup = np.zeros(len(usable) + 1, np.uint8)
    lookup[shown] = numbers
    written = len(shown)
    object_map = np.take(lookup, maps.instance_map)  # half the time of lookup[instance_map]
    object_map[maps.class_map == _VOID] = _VOID
    for folder, values in (("SegmentationClass", maps.class_map), ("SegmentationObject", object_map)):
        target = staging / folder / f"{stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png.encode(values, palette))
    if copy_images:
        if image.path is not None and Path(image.path).is_file():
            target = staging / "JPEGImages" / f"{stem}{Path(image.path).suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image.path, target)
        else:
            changes.append(Change("image-missing", image.split, image.id, None,
                                  f"image file {image.path or image.file_name} not found; not copied"))
    return str(stem), changes, written
