"""Ultralytics YOLO segmentation: ``data.yaml``, ``images/<split>/``, ``labels/<split>/<stem>.txt``.

Each label line is one object, ``cls x1 y1 x2 y2 …``: a class index into
``names`` and one polygon ring in coordinates normalized to [0, 1].  The
format has no crowd flag, no category ids (only indices), no holes and no
multi-part objects, so writing is lossy and every written annotation is
reported with its IoU.

Reading
    ``data.yaml`` (or any ``*.yaml`` with ``names``) gives the splits
    (``train``/``val``/``test``: a folder, a ``*.txt`` list of images, or a
    list of either; relative to ``path``, else to the YAML's folder, with
    Ultralytics' Roboflow fallback of dropping a leading ``../``) and the
    classes (``names``, a list or an ``{index: name}`` dict).  A folder with
    ``images/`` and ``labels/`` but no YAML is read with ``obj.names`` or
    ``classes.txt`` as the names (with a finding).  Labels sit where
    Ultralytics looks: the last ``/images/`` of the image path replaced by
    ``/labels/``, suffix ``.txt``.  Image sizes come from the image headers,
    so an image that is missing or unreadable is loaded with a defect and its
    lines with a defect (they cannot be scaled).  Category ids are the
    indices, unless the YAML carries ``segdata_category_ids`` (written by
    :func:`write`, ignored by Ultralytics), which restores the original ids.

    Bad lines (non-numeric, an odd number of coordinates, fewer than three
    points, a class outside ``names``) are skipped, each with a finding
    naming the file and line number; a label file without an image is a
    finding.  A line of exactly four numbers is a detection box
    ``cx cy w h``: it is read as its rectangle, with one warning per file
    listing those lines, so detection datasets (Roboflow) load too.
    Coordinates outside [0, 1] are kept (pycocotools clips them) with a
    warning, since Ultralytics rejects such an image.  Each image's header
    and label file are read on every core; the findings still come out in
    image order.

Writing
    One line per annotation, written fresh (never appended).  Multi-part
    masks and holes become a single ring: parts and keyhole-cut holes are
    traced losslessly and joined by zero-width bridges at their nearest
    vertices (never one object per part, never a dropped hole), reported as
    ``parts-joined``; single rings as ``polygon-normalized``.  Each carries
    the IoU of the line as written (6 decimals), decoded back with
    pycocotools' pixel-centre rule, against the source mask.  Coordinates
    are clipped to [0, 1] (``coordinates-clipped``).  Crowd regions are
    written as ordinary objects (YOLO has no crowd flag) and reported as
    ``crowd-as-object``.  Categories are indexed 0..n-1 in id order
    (``category-remapped`` when an index differs from the id), and the ids
    are kept in ``data.yaml`` under ``segdata_category_ids`` (supercategories
    under ``segdata_supercategories``).  ``data.yaml``
    has no ``path`` key, so Ultralytics resolves the splits against the
    YAML's own folder wherever the dataset is moved.  ``copy_images`` copies
    image bytes (never re-encodes).  The unnamed split ``""`` is written as
    ``train`` (``unsplit`` if there is a train split too; ``split-renamed``);
    splits other than train/val/test are listed too, and named under
    ``segdata_splits`` so segdata reads them back (``split-not-ultralytics``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from segdata.errors import FormatError, MaskError, ReadError
from segdata.io import output_dir
from segdata.masks import FACES, Mask, all_finite, bitmap_to_polygons
from segdata.model import Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord
from segdata.parallel import map_images, read_workers
from segdata.stored import AnnotationColumns

from ._raster import ImageRead, add_image_reads, image_size

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "a data.yaml with 'names' and 'train'/'val' (or images/ + labels/ + obj.names)"

#: Ultralytics' image suffixes (``ultralytics/data/utils.py``: ``IMG_FORMATS``).
IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
_SPLIT_KEYS = ("train", "val", "test")
_NAMES_FILES = ("obj.names", "classes.txt")
_IDS_KEY = "segdata_category_ids"
_SUPER_KEY = "segdata_supercategories"
_EXTRA_SPLITS_KEY = "segdata_splits"
_DECIMALS = 6
_POLYGON = FACES.index("polygon")  # the face column of a line: every line is one ring


# sniffing ----------------------------------------------------------------------------


def _yaml_file(path: Path) -> Path | None:
    """The dataset YAML of a folder: ``data.yaml`` first, else the one ``*.yaml`` naming classes."""
    if path.is_file():
        return path if path.suffix in (".yaml", ".yml") else None
    for name in ("data.yaml", "data.yml"):
        if (path / name).is_file():
            return path / name
    found = [p for p in sorted(path.glob("*.y*ml")) if _names_in(p)]
    return found[0] if len(found) == 1 else None


def _names_in(path: Path) -> bool:
    try:
        head = path.read_bytes()[: 1 << 16]
    except OSError:
        return False
    return b"names:" in head and (b"train:" in head or b"val:" in head)


def _names_file(root: Path) -> Path | None:
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return next((root / n for n in _NAMES_FILES if (root / n).is_file()), None)
    return None


def sniff(path: str | Path) -> bool:
    """True for an Ultralytics dataset YAML (``names`` and ``train``/``val``), or a folder holding one.

    A folder with ``images/``, ``labels/`` and ``obj.names`` (or ``classes.txt``) counts too.
    """
    path = Path(path)
    if path.is_file():
        return path.suffix in (".yaml", ".yml") and _names_in(path)
    if not path.is_dir():
        return False
    found = _yaml_file(path)
    if found is not None:
        return _names_in(found)
    return _names_file(path) is not None


# reading -----------------------------------------------------------------------------


def _load_yaml(path: Path) -> dict:
    import yaml  # imported on use: every command sniffs formats, and only YOLO reads YAML (~16 ms)

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ReadError(f"cannot open: {err}", path=path) from None
    except UnicodeDecodeError as err:
        raise FormatError(f"not UTF-8 text: {err}", path=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(err, "problem", None) or err
        raise FormatError(f"invalid YAML: {problem}", path=path, record=where) from None
    if not isinstance(data, dict):
        raise FormatError(f"expected a YAML mapping, found {type(data).__name__}", path=path)
    return data


def _names(data: dict, path: Path) -> dict[int, str]:
    """``names`` as ``{index: name}``: a list, or a dict whose keys are integers."""
    if "names" not in data:
        raise FormatError("missing required key 'names' (the class names)", path=path)
    names = data["names"]
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        result = {}
        for key, name in names.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise FormatError(f"'names' keys must be class indices, found {key!r}", path=path,
                                  record="names") from None
            result[index] = str(name)
        return dict(sorted(result.items()))
    raise FormatError(f"'names' must be a list or a mapping, found {type(names).__name__}", path=path)


def _category_ids(data: dict, names: dict[int, str], path: Path) -> dict[int, int]:
    """Class index -> category id: the indices, or the ids segdata kept in the YAML."""
    kept = data.get(_IDS_KEY)
    if kept is None:
        return {i: i for i in names}
    if isinstance(kept, list):
        kept = dict(enumerate(kept))
    if not isinstance(kept, dict) or {int(k) for k in kept} != set(names):
        raise FormatError(f"{_IDS_KEY!r} must map every class index of 'names' to a category id",
                          path=path, record=_IDS_KEY)
    ids = {int(k): int(v) for k, v in kept.items()}
    if len(set(ids.values())) != len(ids):
        raise FormatError(f"{_IDS_KEY!r} repeats a category id", path=path, record=_IDS_KEY)
    return ids


def _resolve(base: Path, entry: str) -> Path:
    """An entry of ``train``/``val``/``test``, as Ultralytics resolves it (with its ``../`` fallback)."""
    target = Path(entry) if Path(entry).is_absolute() else base / entry
    if not target.exists() and entry.startswith("../"):
        target = base / entry[3:]
    return target


def _split_images(base: Path, value: Any, flag: Callable) -> list[tuple[Path, Path]]:
    """``(image, folder its file_name is relative to)`` for one split's entry (folders, list files)."""
    entries = value if isinstance(value, list) else [value]
    images: list[tuple[Path, Path]] = []
    for entry in entries:
        target = _resolve(base, str(entry))
        if target.is_dir():
            found = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            images.extend((p, target) for p in found)
        elif target.is_file() and target.suffix == ".txt":
            for line in target.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    image = _resolve(target.parent, line) if line.startswith("./") else _resolve(base, line)
                    images.append((image, _image_dir(image)))
        else:
            flag("split-source-missing", f"{entry!r} is neither an image folder nor a list file "
                 f"(looked for {target})", severity="error", path=target)
    return images


def _label_path(image_path: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/``, suffix ``.txt``."""
    text = str(image_path)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in text:
        head, tail = text.rsplit(sa, 1)
        text = head + sb + tail
    return Path(text).with_suffix(".txt")


def read(path: str | Path, *, images_root: str | Path | None = None) -> Dataset:
    """Read an Ultralytics YOLO segmentation (or detection) dataset.

    Parameters
    ----------
    path : str or Path
        The dataset folder, or its ``data.yaml``.
    images_root : str or Path, optional
        Resolve the split entries against this folder instead of ``path``.

    Returns
    -------
    Dataset
        Category ids = class indices (or the ids kept by segdata); findings for
        every skipped line, box line, missing image and orphan label file.

    Raises
    ------
    FormatError
        No ``data.yaml`` (nor ``obj.names``), invalid YAML, bad ``names``, or a
        label file that is not text.
    ReadError
        A file cannot be opened.
    """
    path = Path(path)
    dataset = Dataset({}, [], [], source_format="yolo")
    findings = dataset.findings
    yaml_path = _yaml_file(path) if path.exists() else None
    if yaml_path is not None:
        data = _load_yaml(yaml_path)
        root = yaml_path.parent
        names = _names(data, yaml_path)
        ids = _category_ids(data, names, yaml_path)
        declared = data.get("path")
        base = root
        if isinstance(declared, str) and declared:
            candidate = Path(declared) if Path(declared).is_absolute() else root / declared
            base = candidate if candidate.is_dir() else root
        extra = data.get(_EXTRA_SPLITS_KEY) or []
        keys = [*_SPLIT_KEYS, *(k for k in extra if isinstance(k, str) and k not in _SPLIT_KEYS)]
        splits = {k: data[k] for k in keys if data.get(k)}
        if "nc" in data and data["nc"] != len(names):
            findings.append(Finding("yolo-nc-mismatch", "warning", f"'nc' is {data['nc']} but 'names' has "
                                    f"{len(names)} classes", path=str(yaml_path)))
        source = yaml_path
    else:
        names_path = _names_file(path) if path.is_dir() else None
        if names_path is None:
            raise FormatError("no data.yaml found (nor images/ + labels/ + obj.names or classes.txt); "
                              "an Ultralytics dataset needs a YAML with 'names' and the split folders",
                              path=path)
        lines = [s.strip() for s in names_path.read_text(encoding="utf-8").splitlines()]
        names = dict(enumerate(s for s in lines if s))
        ids = {i: i for i in names}
        root = base = path
        splits = {p.name: f"images/{p.name}" for p in sorted((path / "images").iterdir()) if p.is_dir()} \
            or {"train": "images"}
        findings.append(Finding("yolo-yaml-missing", "warning", f"no data.yaml: class names read from "
                                f"{names_path.name}, splits from the folders of images/", path=str(path)))
        source = names_path
    if images_root is not None:
        base = Path(images_root)
    supers = data.get(_SUPER_KEY) if yaml_path is not None else None
    supers = {int(k): str(v) for k, v in supers.items()} if isinstance(supers, dict) else {}
    for index, name in names.items():
        dataset.categories[ids[index]] = Category(ids[index], name, supers.get(index, ""))

    ordered = sorted(splits, key=lambda s: (_SPLIT_KEYS.index(s) if s in _SPLIT_KEYS else 3, s))
    next_ann = 1
    columns = AnnotationColumns()
    read_image = partial(_read_image, (names, ids))
    for split in ordered:
        def flag(code, message, severity="error", path=source, image_id=None, **details):
            findings.append(Finding(code, severity, message, split, image_id, None, str(path), details))

        images = _split_images(base, splits[split], flag)
        labels_seen = {_label_path(image_path) for image_path, _folder in images}
        first = len(dataset.images) + 1  # image ids count on across splits
        jobs = [(first + at, split, image_path, folder) for at, (image_path, folder) in enumerate(images)]
        reads = map_images(read_image, jobs, workers=read_workers(len(jobs)), reading=True)
        next_ann = add_image_reads(dataset, columns, reads, next_ann)
        for folder in dict.fromkeys(folder for _, folder in images):
            labels_dir = _label_path(folder / "x.jpg").parent
            if labels_dir.is_dir():
                for orphan in sorted(set(labels_dir.rglob("*.txt")) - labels_seen):
                    flag("label-without-image", "label file has no image in this split", "warning", orphan)
    dataset.annotations = columns.store(_decode, _load)
    return dataset


def _image_dir(image_path: Path) -> Path:
    """The folder a listed image's ``file_name`` is relative to: the split folder under ``images``."""
    parts = image_path.parts
    if "images" in parts[:-2]:
        last = len(parts) - 2 - parts[:-1][::-1].index("images")
        return Path(*parts[: last + 2])
    return image_path.parent


def _read_image(context: tuple[dict[int, str], dict[int, int]],
                job: tuple[int, str, Path, Path]) -> ImageRead:
    """One image's size and label lines, read by a helper when there is one: ``context`` is the class
    names and category ids, ``job`` the image's id, split, path and the folder its name is relative to."""
    names, ids = context
    image_id, split, image_path, folder = job
    image = ImageRecord(image_id, image_path.relative_to(folder).as_posix(), 0, 0, split=split,
                        path=image_path)
    read = ImageRead(image)
    try:
        image.width, image.height = image_size(image_path)
    except (ReadError, FormatError) as err:
        image.defect = "image-unreadable"
        read.findings.append(Finding("image-unreadable", "error", f"{err.message}; its labels cannot be "
                                     "scaled to pixels", split, image_id, None, str(image_path), {}))
    label_path = _label_path(image_path)
    if label_path.is_file():
        _read_labels(label_path, image, names, ids, read)
    return read


def _read_labels(label_path: Path, image: ImageRecord, names: dict[int, str], ids: dict[int, int],
                 read: ImageRead) -> None:
    """Judge one image's label lines into ``read``: its findings, and a row per annotation, numbered
    from 1."""
    lines = _load(str(label_path))
    next_ann = 1

    def flag(code, message, line_no, severity="error", annotation_id=None):
        read.findings.append(Finding(code, severity, message, image.split, image.id, annotation_id,
                                     str(label_path), {"line": line_no}))

    boxes, outside = [], []
    rows = []  # (id, line index, category id, defect) per annotation
    for line_no, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            values = list(map(float, tokens))
        except ValueError:
            flag("yolo-line-invalid", f"line {line_no}: not numbers: {line.strip()[:60]!r}; line skipped",
                 line_no)
            continue
        if not all_finite(values):
            flag("coordinate-non-finite", f"line {line_no}: NaN or infinite value; line skipped", line_no)
            continue
        cls, coords = values[0], values[1:]
        if cls != int(cls) or int(cls) not in names:
            flag("category-unknown", f"line {line_no}: class {tokens[0]} is not in 'names' "
                 f"(0..{max(names, default=-1)}); line skipped", line_no)
            continue
        if len(coords) == 4:
            boxes.append(line_no)
        elif len(coords) % 2:
            flag("yolo-odd-coordinates", f"line {line_no}: {len(coords)} coordinates, an odd count; "
                 "line skipped", line_no)
            continue
        elif len(coords) < 6:
            flag("polygon-too-few-points", f"line {line_no}: {len(coords) // 2} point(s), a polygon needs 3; "
                 "line skipped", line_no)
            continue
        coords = _polygon(coords)
        if min(coords) < 0 or max(coords) > 1:
            outside.append(line_no)
        ann_id, defect = next_ann, None
        next_ann += 1
        if image.defect:
            defect = "image-size-unknown"
        else:
            try:  # checked once here; the mask is made where the annotation is used
                Mask.from_polygons([_scaled(coords, image.height, image.width).tolist()], image.height,
                                   image.width)
            except MaskError as err:
                defect = err.code
                flag(err.code, f"line {line_no}: {err.message}", line_no, annotation_id=ann_id)
        rows.append((ann_id, line_no - 1, ids[int(cls)], defect))
    if rows:
        _ann_ids, starts, category_ids, defects = zip(*rows)
        read.rows = (str(label_path), len(rows), {
            "defect": defects, "start": starts, "image_id": image.id, "category_id": category_ids,
            "height": image.height, "width": image.width,
            "face": [-1 if defect is not None else _POLYGON for defect in defects],
            "mask_ok": [defect is None for defect in defects]})
    if boxes:
        flag("yolo-box-line", f"{len(boxes)} line(s) are detection boxes (cx cy w h), read as rectangles: "
             f"lines {_ranges(boxes)}", boxes[0], "warning")
    if outside:
        flag("coordinate-out-of-bounds", f"coordinates outside [0, 1] (Ultralytics rejects this image; "
             f"pycocotools clips them): lines {_ranges(outside)}", outside[0], "warning")


def _polygon(coords: list[float]) -> list[float]:
    """A line's normalized ring: its points, or a detection box ``cx cy w h`` as its four corners."""
    if len(coords) != 4:
        return coords
    cx, cy, w, h = coords
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _scaled(coords: list[float], height: int, width: int) -> np.ndarray:
    """Normalized ``x, y, …`` in pixels (the same IEEE products as ``v * width`` in Python)."""
    ring = np.array(coords, float)
    with np.errstate(over="ignore"):  # a huge value becomes inf, as in Python, and a finding of the reader
        ring[0::2] *= width
        ring[1::2] *= height
    return ring


def _load(file: str) -> list[str]:
    """A label file's lines (:data:`segdata.stored.Loader`): a record's index is its line number - 1."""
    label_path = Path(file)
    try:
        return label_path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise FormatError(f"a label file must be UTF-8 text: {err}", path=label_path) from None


def _decode(line: str, split: str, height: int, width: int, defect: str | None, mask_ok: bool) -> Annotation:
    """One label line as the reader judged it; ids come from the store's columns."""
    values = list(map(float, line.split()))
    ann = Annotation(0, 0, 0, None, split=split, defect=defect, attributes={})
    if mask_ok:
        ann.mask = Mask.from_checked([_scaled(_polygon(values[1:]), height, width)], height, width)
    return ann


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


# writing -----------------------------------------------------------------------------


def join_rings(rings: list[np.ndarray]) -> np.ndarray:
    """Join rings into one by zero-width bridges between their nearest vertices.

    Each bridge is walked once each way, so pycocotools' even-odd fill
    cancels it: the joined ring covers the union of disjoint rings.

    Examples
    --------
    >>> a = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    >>> b = np.array([[5, 0], [7, 0], [7, 2], [5, 2]])
    >>> join_rings([a, b]).tolist()
    [[0, 0], [2, 0], [5, 0], [7, 0], [7, 2], [5, 2], [5, 0], [2, 0], [2, 2], [0, 2]]
    """
    from scipy.spatial import cKDTree

    joined = np.asarray(rings[0])
    for ring in rings[1:]:
        ring = np.asarray(ring)
        distance, nearest = cKDTree(joined).query(ring)
        j = int(np.argmin(distance))
        i = int(nearest[j])
        joined = np.concatenate([joined[: i + 1], ring[j:], ring[: j + 1], joined[i:]])
    return joined


def _rings(mask: Mask, tolerance: float) -> list[np.ndarray]:
    """The mask's rings: its own single source ring, or a lossless (or simplified) trace."""
    source = mask.source_polygons
    if tolerance == 0 and source is not None and len(source) == 1:
        return [np.asarray(source[0], float).reshape(-1, 2)]
    x0, y0, crop = mask.to_crop()  # several source rings may overlap: trace their union
    return [np.asarray(r, float).reshape(-1, 2) for r in bitmap_to_polygons(crop, tolerance=tolerance,
                                                                           offset_xy=(x0, y0))]


def _number(value: float) -> str:
    text = f"{value:.{_DECIMALS}f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def _label_text(job, *, index_of: dict[int, int], tolerance: float) -> tuple[str | None, list[Change], int]:
    """One image's label file and what writing it changed (runs in a worker)."""
    image, anns = job
    changes: list[Change] = []
    if image.defect or image.width <= 0 or image.height <= 0:
        changes.append(Change("skipped", image.split, image.id, None, image.defect or "image-size-unknown"))
        changes.extend(Change("skipped", a.split, a.image_id, a.id, image.defect or "image-size-unknown")
                       for a in anns)
        return None, changes, 0
    lines = []
    size = np.array([image.width, image.height], float)
    for ann in anns:
        where = (ann.split, ann.image_id, ann.id)
        if ann.defect or ann.mask is None:
            changes.append(Change("skipped", *where, ann.defect or "mask-missing"))
            continue
        if ann.category_id not in index_of:
            changes.append(Change("skipped", *where, f"category-unknown: no category {ann.category_id}"))
            continue
        if ann.mask.area == 0:
            changes.append(Change("skipped", *where, "mask-empty: no pixel to outline"))
            continue
        rings = _rings(ann.mask, tolerance)
        ring = join_rings(rings) / size
        clipped = int(((ring < 0) | (ring > 1)).sum())
        if clipped:
            ring = np.clip(ring, 0.0, 1.0)
            changes.append(Change("coordinates-clipped", *where,
                                  f"{clipped} coordinate(s) clipped to [0, 1]"))
        numbers = [_number(v) for v in ring.ravel()]
        written = np.array([float(v) for v in numbers]).reshape(-1, 2) * size
        iou = Mask.from_polygons([written.ravel().tolist()], image.height, image.width).iou(ann.mask)
        if len(rings) > 1:
            changes.append(Change("parts-joined", *where, f"{len(rings)} rings (parts and holes) joined by "
                                  "zero-width bridges into one line", iou))
        else:
            changes.append(Change("polygon-normalized", *where, f"one ring, {_DECIMALS}-decimal normalized "
                                  "coordinates", iou))
        index = index_of[ann.category_id]
        if index != ann.category_id:
            changes.append(Change("category-remapped", *where,
                                  f"category {ann.category_id} -> class {index}"))
        if ann.iscrowd:
            changes.append(Change("crowd-as-object", *where, "crowd region written as an ordinary object"))
        lines.append(f"{index} " + " ".join(numbers))
    return "".join(line + "\n" for line in lines), changes, len(lines)


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
    """Write ``data.yaml``, ``labels/<split>/*.txt`` and, with ``copy_images``, ``images/<split>/``.

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The destination folder; written atomically.
    tolerance : float
        Polygon simplification in pixels (0: lossless tracing before normalizing).
    copy_images : bool
        Copy image files (bytes, never re-encoded) to ``images/<split>/``.
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes tracing masks (default: all cores).
    progress : callable, optional
        Called with the number of images just written.

    Returns
    -------
    ConversionReport
        Every written annotation with its IoU; skips, clips, remaps, crowd regions.
    """
    report = ConversionReport("yolo")
    grouped = dataset.annotations_by_image()
    ordered = sorted(dataset.categories)
    index_of = {cat_id: index for index, cat_id in enumerate(ordered)}
    job = partial(_label_text, index_of=index_of, tolerance=tolerance)
    with output_dir(path, overwrite=overwrite) as staging:
        config: dict[str, Any] = {}
        extra_splits = []
        for split in dataset.splits:
            key = split or ("train" if "train" not in dataset.splits else "unsplit")
            sub = Path("images") / key
            config[key] = sub.as_posix()
            if key not in _SPLIT_KEYS:
                extra_splits.append(key)
            note = None
            if key != split:
                note = ("split-renamed", f"the unnamed split is listed as {key!r}")
            elif key not in _SPLIT_KEYS:
                note = ("split-not-ultralytics", f"Ultralytics reads only train/val/test; {key!r} is "
                        f"listed under {_EXTRA_SPLITS_KEY!r} for segdata")
            if note:
                for image in dataset.images:
                    if image.split == split:
                        report.add(note[0], split, image.id, None, note[1])
            labels_dir = staging / "labels" / key
            images = [image for image in dataset.images if image.split == split]
            taken: dict[Path, int] = {}
            jobs = ((image, grouped.get((split, image.id), [])) for image in images)
            for image, (text, changes, count) in zip(images, map_images(job, jobs, workers=workers,
                                                                         progress=progress)):
                report.changes.extend(changes)
                if text is None:
                    continue
                label = labels_dir / Path(image.file_name).with_suffix(".txt")
                if label in taken:
                    report.add("skipped", split, image.id, None, f"label file {label.relative_to(staging)} "
                               f"already written for image {taken[label]} (same stem)")
                    continue
                taken[label] = image.id
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(text, encoding="utf-8")  # always fresh: never appended (pitfall 30)
                report.images_written += 1
                report.annotations_written += count
                if copy_images and image.path is not None and image.path.is_file():
                    target = staging / sub / image.file_name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(image.path, target)
        if extra_splits:
            config[_EXTRA_SPLITS_KEY] = extra_splits
        config["names"] = {index: dataset.categories[cat_id].name for index, cat_id in enumerate(ordered)}
        config[_IDS_KEY] = {index: cat_id for index, cat_id in enumerate(ordered)}
        if any(dataset.categories[cat_id].supercategory for cat_id in ordered):
            config[_SUPER_KEY] = {i: dataset.categories[c].supercategory for i, c in enumerate(ordered)}
        header = ("# Ultralytics YOLO segmentation dataset written by segdata.\n"
                  "# No 'path' key: Ultralytics resolves the splits against this file's folder.\n"
                  f"# '{_IDS_KEY}': the original category ids (class index -> id); "
                  "Ultralytics ignores it.\n")
        import yaml

        body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        (staging / "data.yaml").write_text(header + body, encoding="utf-8")
    report.skip_unattached(dataset)
    return report
