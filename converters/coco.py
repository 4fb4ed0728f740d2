"""COCO instance segmentation: one ``instances_<split>.json`` per split.

Reads polygons (several rings per instance), compressed RLE (``str`` or
``bytes`` counts) and uncompressed RLE (integer counts), with ``iscrowd``
independent of the encoding and category ids kept exactly.  Writes any mask
as polygons (lossless: holes by keyhole cuts), compressed RLE, or the face it
came from; ``area`` and ``bbox`` are always recomputed from the mask.

Records that parse but are wrong (RLE counts that do not add up, a 4-number
polygon, NaN coordinates, duplicate ids, unknown image or category ids) are
loaded with a ``defect`` and a finding, never dropped; writers skip them and
say so in the report.  A file that is not COCO at all raises
:class:`~segdata.errors.FormatError`.

Layout: ``ROOT/annotations/instances_<split>.json`` (or any ``*.json`` given
directly), images in ``ROOT/images/<split>/``, ``ROOT/<split>/`` or
``ROOT/images/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdata.errors import FormatError, MaskError
from segdata.io import dumps_json, output_dir, read_json
from segdata.jsonstream import Unscannable, chunk_spans, parse_items, read_array_items
from segdata.masks import Mask, decode_rle_string
from segdata.model import (Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord,
                           find_sorted, image_values)
from segdata.parallel import map_images, on_cluster, release_free_memory
from segdata.stored import StoredAnnotations, narrow, repeated, shape_codes
from segdata.stored_images import ImageColumns, SourceFields, StoredImages

_SNIFF_BYTES = 1 << 16
_ANN_KEYS = {"id", "image_id", "category_id", "segmentation", "iscrowd", "score"}
_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
MASK_ENCODINGS = ("keep", "polygon", "rle")
#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "a *.json (or annotations/*.json) with 'images' and 'annotations', no 'segments_info'"


_SPLIT_ORDER = {"train": 0, "val": 1, "validation": 1, "test": 2}


def _annotation_files(path: Path) -> list[Path]:
    """The split files of a dataset, in the order people read splits: train, val, test, others."""
    if path.is_file():
        return [path]
    candidates = sorted((path / "annotations").glob("*.json")) or sorted(path.glob("*.json"))
    found = [p for p in candidates if _looks_like_coco(p)]
    return sorted(found, key=lambda p: (_SPLIT_ORDER.get(_split_name(p), 3), p.name))


def _looks_like_coco(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    complete = len(head) < _SNIFF_BYTES  # a short file is seen whole: both keys must show
    return (b'"images"' in head and (b'"annotations"' in head or not complete)
            and b'"segments_info"' not in head)


def sniff(path: str | Path) -> bool:
    """True when ``path`` is a COCO instances JSON or a folder of them."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".json" and _looks_like_coco(path)
    return path.is_dir() and bool(_annotation_files(path))


def _split_name(json_path: Path) -> str:
    stem = json_path.stem
    return "" if stem == "instances" else stem.removeprefix("instances_")


def _images_dir(root: Path, json_path: Path, split: str, images_root: Path | None, first: str) -> Path | None:
    bases = [images_root] if images_root else [root, json_path.parent]
    candidates = [d for base in bases for d in (base / "images" / split, base / split, base / "images", base)]
    return next((d for d in candidates if (d / first).is_file()), None)


def _require(record: dict, key: str, kind: type | tuple, path: Path, where: str) -> Any:
    if key not in record:
        raise FormatError(f"missing required key {key!r}", path=path, record=where)
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FormatError(f"{key!r} must be {expected}, found {type(value).__name__} {value!r}",
                          path=path, record=where)
    return value


def _read_split(json_path: Path, dataset: Dataset, images_root: Path | None, root: Path) -> None:
    split = _split_name(json_path)
    try:
        data, arrays = read_array_items(json_path, "annotations", "images")
        image_starts, image_closing = arrays.pop("images")
        images = (raw for spans in chunk_spans(image_starts, image_closing)
                  for raw in parse_items(json_path, *spans))
        head = _read_head(json_path, split, data, images, dataset.categories, images_root, root,
                          (image_starts, np.append(image_starts[1:], image_closing)))
        del images, image_starts
        release_free_memory()  # the image records parsed; the annotations' columns can take their pages
        closing = arrays["annotations"][1]
        index = _index_file(json_path, arrays)
        records = None
    except Unscannable:  # malformed, or NaN that only Python's json reads: parse whole, as before
        data = read_json(json_path)
        if not isinstance(data, dict):
            raise FormatError(f"expected a JSON object, found {type(data).__name__}", path=json_path) from None
        records = data.pop("annotations", None)
        for key, value in (("images", data.get("images")), ("annotations", records)):
            if not isinstance(value, list):
                raise FormatError(f"missing required list {key!r}" if value is None else
                                  f"{key!r} must be a list, found {type(value).__name__}", path=json_path)
        head = _read_head(json_path, split, data, data.get("images"), dataset.categories, images_root, root,
                          None)
        index = _index_records((str(json_path), 0, records, None))
    known_image, heights, widths = head.sizes.lookup(index.columns["image_id"])
    defect, mask_ok, findings = _resolve(json_path, split, index, dataset.categories, known_image, heights,
                                         widths)
    if records is None:
        shapes, shape = shape_codes(heights, widths)
        annotations = StoredAnnotations(
            [str(json_path)], [split], ANNOTATION_DEFECTS, _decode,
            dict(index.columns, file=_zeros(len(index)), split=_zeros(len(index)), shape=shape, defect=defect,
                 mask_ok=mask_ok), shapes, closings=[closing])
    else:
        annotations = [_decode(raw, split, h, w, ANNOTATION_DEFECTS[code] if code >= 0 else None, ok)
                       for raw, h, w, code, ok in zip(records, heights.tolist(), widths.tolist(), defect.tolist(),
                                                      mask_ok.tolist())]
    if not dataset.images:
        dataset.images = head.images
    elif isinstance(head.images, StoredImages) and isinstance(dataset.images, StoredImages):
        dataset.images = StoredImages.concat([dataset.images, head.images])
    else:
        dataset.images = [*dataset.images, *head.images]
    if isinstance(annotations, StoredAnnotations) and len(dataset.annotations) == 0:
        dataset.annotations = annotations  # the first split: its store becomes the dataset's
    elif isinstance(annotations, StoredAnnotations) and isinstance(dataset.annotations, StoredAnnotations):
        dataset.annotations = StoredAnnotations.concat([dataset.annotations, annotations])
    else:
        dataset.annotations = [*dataset.annotations, *annotations]
    dataset.findings.extend(head.findings + findings)
    dataset.meta[split] = {k: data[k] for k in ("info", "licenses") if k in data}


def _zeros(n: int) -> np.ndarray:
    """``n`` zeros that take no memory (a read-only view of one): one file's and one split's codes, 1.7 MB
    at 860k rows as arrays."""
    return np.broadcast_to(np.int8(0), (n,))


def _index_file(json_path: Path, arrays: dict[str, tuple[np.ndarray, int]]) -> _Index:
    """Check the annotation records (``arrays["annotations"]``, popped) in tasks of :data:`_INDEX_BYTES`
    (:data:`_CLUSTER_INDEX_BYTES` on a Dask cluster), on every core.  Tasks are made as they are sent, and
    the records' offsets (7 MB at 860k records) are gone before the columns are joined."""
    starts, closing = arrays.pop("annotations")
    size = _CLUSTER_INDEX_BYTES if on_cluster(reading=True) else _INDEX_BYTES

    def tasks() -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
        first = 0
        for chunk, stops in chunk_spans(starts, closing, size):
            yield str(json_path), first, chunk, stops
            first += len(chunk)

    workers = None if len(starts) and closing - starts[0] > size else 1  # one task: no helper
    parts = list(map_images(_index_records, tasks(), batch_size=1, workers=workers, reading=True))
    del starts
    return _Index.join(parts)


class _Sizes:
    """Image id → (height, width) of the first image with that id, looked up for many ids at once."""

    def __init__(self, images: Sequence[ImageRecord]):
        self.ids, first = np.unique(image_values(images, "id"), return_index=True)
        self.heights, self.widths = (narrow(image_values(images, name)[first])
                                     for name in ("height", "width"))

    def lookup(self, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whether each id is an image's, and its height and width (0 if not), in the images' narrow type."""
        n = len(image_ids)
        known = np.zeros(n, bool)
        heights, widths = np.zeros(n, self.heights.dtype), np.zeros(n, self.widths.dtype)
        if not len(self.ids):
            return known, heights, widths
        for low in range(0, n, 1 << 16):  # in runs: the 8-byte positions of all ids would be 7 MB at 860k
            run = slice(low, low + (1 << 16))
            found, at = find_sorted(self.ids, image_ids[run])
            known[run] = found
            heights[run] = np.where(found, self.heights[at], 0)
            widths[run] = np.where(found, self.widths[at], 0)
        return known, heights, widths


@dataclass
class _Head:
    images: Sequence[ImageRecord]
    sizes: _Sizes
    findings: list[Finding]


def _read_head(json_path: Path, split: str, data: dict, image_records: Iterable[Any], categories: dict[int, Category],
               images_root: Path | None, root: Path, spans: tuple[np.ndarray, np.ndarray] | None) -> _Head:
    """One split's categories (joining ``categories``) and images, with the findings about them.

    With the records' byte ``spans`` (what orjson can parse again), the images are kept as a
    :class:`~segdata.stored_images.StoredImages` and their other fields stay in the file; without
    (what only Python's json reads: NaN, integers beyond 64 bits), as records holding a dict.
    """
    findings: list[Finding] = []
    for index, raw in enumerate(data.get("categories") or []):
        where = f"category index {index}"
        if not isinstance(raw, dict):
            raise FormatError(f"expected an object, found {type(raw).__name__}", path=json_path, record=where)
        cat_id = _require(raw, "id", int, json_path, where)
        name = _require(raw, "name", str, json_path, f"category {cat_id}")
        known = categories.get(cat_id)
        if known is not None and known.name != name:
            raise FormatError(f"category {cat_id} is {name!r} here but {known.name!r} in another split",
                              path=json_path, record=f"category {cat_id}")
        if known is None:
            categories[cat_id] = Category(cat_id, name, raw.get("supercategory") or "",
                                                  bool(raw.get("isthing", True)))

    seen: set[int] = set()
    images: list[ImageRecord] = []
    columns = ImageColumns(_IMAGE_KEYS) if spans is not None else None
    folder = None
    for index, raw in enumerate(image_records):
        if not isinstance(raw, dict):
            raise FormatError(f"expected an object, found {type(raw).__name__}", path=json_path,
                              record=f"image index {index}")
        image_id = _require(raw, "id", int, json_path, f"image index {index}")
        where = f"image {image_id}"
        image = ImageRecord(
            image_id, _require(raw, "file_name", str, json_path, where),
            _require(raw, "width", int, json_path, where), _require(raw, "height", int, json_path, where),
            split=split)
        if index == 0:
            folder = _images_dir(root, json_path, split, images_root, image.file_name)
        image.path = folder / image.file_name if folder else None
        if image_id in seen:
            findings.append(Finding("image-id-duplicate", "error", f"image id {image_id} is used again by "
                                    f"{image.file_name!r}", split, image_id, None, str(json_path)))
            image.defect = "image-id-duplicate"
        seen.add(image_id)
        if columns is None:
            image.attributes = {k: v for k, v in raw.items() if k not in _IMAGE_KEYS}
            images.append(image)
        else:
            image.attributes = SourceFields(str(json_path), int(spans[0][index]), int(spans[1][index]),
                                            _IMAGE_KEYS)
            columns.append(image, folder)
    kept = columns.build() if columns is not None else images
    return _Head(kept, _Sizes(kept), findings)


#: Finding codes an annotation record can carry, in the order they are checked.
ANNOTATION_DEFECTS = ("annotation-id-duplicate", "category-unknown", "image-ref-unknown", "mask-empty",
                      "rle-size-mismatch", "rle-counts-invalid", "polygon-odd-coordinates", "polygon-box-ambiguous",
                      "polygon-too-few-points", "coordinate-non-finite")
_FACE = {"polygon": 0, "rle": 1, "uncompressed-rle": 2}
#: Bytes of annotation records checked per task when reading (shared with the command's helpers).
_INDEX_BYTES = 1 << 18
#: The same on a Dask cluster, where a task costs ~16 ms of CPU across its processes, twice the 8.6 ms of
#: checking 256 KB of records: over 20k COCO images (70 MB), reading on a LocalCluster of 2 took 2.7 s in
#: tasks of 256 KB, 2.0 s in tasks of 2 MB (2 local processes: 1.7 s).
_CLUSTER_INDEX_BYTES = 1 << 21


@dataclass
class _Index:
    """The columns of some records, and their mask defects: ``(row, code, message)``; ``rle_sizes``: rows
    ``(row, height, width)`` of the records that are RLE (an array: as a dict, 25k of them at 118k COCO images
    were 5 MB of small objects, and their heap pages stayed after them)."""

    columns: dict[str, np.ndarray]
    mask_defects: list[tuple[int, str, str]]
    rle_sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.columns["id"])

    @staticmethod
    def join(parts: list[_Index]) -> _Index:
        """The parts' rows in order; ``parts`` is emptied while copied, not held twice (20 MB at 118k)."""
        names = ("start", "id", "image_id", "category_id", "iscrowd", "face")
        total = sum(len(p) for p in parts)
        columns = {name: np.empty(total, np.result_type(*(p.columns[name] for p in parts)) if parts
                                  else np.int64) for name in names}
        mask_defects: list[tuple[int, str, str]] = []
        rle_sizes: list[np.ndarray] = [np.zeros((0, 3), np.int64)]
        offset = 0
        parts.reverse()
        while parts:
            if len(parts) % 256 == 0:  # the copied parts' pages back to the system as the columns fill
                release_free_memory()
            part = parts.pop()
            for name in names:
                columns[name][offset:offset + len(part)] = part.columns[name]
            mask_defects += [(row + offset, code, message) for row, code, message in part.mask_defects]
            rle_sizes.append(part.rle_sizes + [offset, 0, 0])
            offset += len(part)
        return _Index(columns, mask_defects, np.concatenate(rle_sizes))


def _index_records(task: tuple) -> _Index:
    """Check records and keep the columns jobs select by; ``task`` is (path, first index, starts, stops) or
    (path, first index, records, None) for records already parsed.  Runs in a helper when there is one."""
    path, first, starts, stops = task
    records = parse_items(path, starts, stops) if stops is not None else starts
    n = len(records)
    ids, image_ids, category_ids = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    iscrowd, face = np.zeros(n, bool), np.full(n, -1, np.int8)
    mask_defects, rle_sizes = [], []
    for row, raw in enumerate(records):
        if not isinstance(raw, dict):
            raise FormatError(f"expected an object, found {type(raw).__name__}", path=path,
                              record=f"annotation index {first + row}")
        ann_id = ids[row] = _require(raw, "id", int, path, f"annotation index {first + row}")
        where = f"annotation {ann_id}"
        image_ids[row] = _require(raw, "image_id", int, path, where)
        category_ids[row] = _require(raw, "category_id", int, path, where)
        crowd = raw.get("iscrowd", 0)
        if crowd not in (0, 1):  # also admits False/True (BDD100K)
            raise FormatError(f"'iscrowd' must be 0 or 1, found {crowd!r}", path=path, record=where)
        iscrowd[row] = crowd
        segmentation = raw.get("segmentation")
        if segmentation is None or segmentation == []:
            mask_defects.append((row, "mask-empty", "annotation has no segmentation"))
            continue
        try:
            if isinstance(segmentation, dict):
                mask = Mask.from_rle(segmentation)
                rle_sizes.append((row, *mask.shape_hw))
            elif isinstance(segmentation, list):
                mask = Mask.from_polygons(segmentation, 0, 0)
            else:
                raise MaskError(f"segmentation must be a list of polygons or an RLE dict, found "
                                f"{type(segmentation).__name__}", code="rle-counts-invalid")
        except MaskError as err:
            mask_defects.append((row, err.code, err.message))
            continue
        face[row] = _FACE[mask.face]
    columns = {"id": ids, "image_id": image_ids, "category_id": category_ids, "iscrowd": iscrowd, "face": face}
    columns["start"] = np.asarray(starts, np.int64) if stops is not None else np.zeros(n, np.int64)
    return _Index({name: narrow(values) for name, values in columns.items()}, mask_defects,
                  np.array(rle_sizes, np.int64).reshape(-1, 3))


def _resolve(json_path: Path, split: str, index: _Index, categories: dict[int, Category],
             known_image: np.ndarray, heights: np.ndarray,
             widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Finding]]:
    """Each record's first defect code (index into :data:`ANNOTATION_DEFECTS`, -1: none), whether its mask
    is decoded, and the findings, in record order: duplicate id, unknown category, unknown image, mask.
    ``known_image``, ``heights`` and ``widths`` are the records' images' (:meth:`_Sizes.lookup`)."""
    c = index.columns
    n = len(index)
    duplicate = repeated(c["id"])
    # not np.isin over the rows: its int64 temporaries were 11 MB at 860k rows, the read's peak
    present = np.unique(c["category_id"])
    unknown_category = np.zeros(n, bool)
    for value in present[~np.isin(present, np.array(list(categories), np.int64))].tolist():
        unknown_category |= c["category_id"] == value
    unknown_image = ~known_image
    mask_defects = {row: (code, message) for row, code, message in index.mask_defects}
    rows, rle_heights, rle_widths = index.rle_sizes.T
    wrong = ~unknown_image[rows] & ((rle_heights != heights[rows]) | (rle_widths != widths[rows]))
    for row, height, width in index.rle_sizes[wrong].tolist():
        mask_defects[row] = ("rle-size-mismatch", f"RLE size {[height, width]} differs from image size "
                             f"{[int(heights[row]), int(widths[row])]} (height, width)")
    defect = np.full(n, -1, np.int16)
    mask_ok = ~unknown_image
    mask_ok[list(mask_defects)] = False
    findings = []
    troubled = np.flatnonzero(duplicate | unknown_category | unknown_image | ~mask_ok).tolist()
    for row in troubled:
        ann_id, image_id = int(c["id"][row]), int(c["image_id"][row])
        codes = []
        if duplicate[row]:
            codes.append(("annotation-id-duplicate", f"annotation id {ann_id} is used again"))
        if unknown_category[row]:
            codes.append(("category-unknown", f"category {int(c['category_id'][row])} is not in 'categories'"))
        if unknown_image[row]:
            codes.append(("image-ref-unknown", f"image {image_id} is not in 'images'"))
        elif row in mask_defects:
            codes.append(mask_defects[row])
        defect[row] = ANNOTATION_DEFECTS.index(codes[0][0])
        findings += [Finding(code, "error", message, split, image_id, ann_id, str(json_path))
                     for code, message in codes]
    return defect, mask_ok, findings


def _decode(raw: dict, split: str, height: int, width: int, defect: str | None, mask_ok: bool) -> Annotation:
    """One record as an :class:`Annotation`, once :func:`_index_records` and :func:`_resolve` have judged it."""
    ann = Annotation(raw["id"], raw["image_id"], raw["category_id"], None, bool(raw.get("iscrowd", 0)),
                     raw.get("score"), split, defect, {k: v for k, v in raw.items() if k not in _ANN_KEYS})
    if mask_ok:  # checked when the file was read
        ann.mask = Mask.from_checked(raw["segmentation"], height, width)
    return ann


def read(path: str | Path, *, images_root: str | Path | None = None) -> Dataset:
    """Read a COCO instances JSON, or a folder of them (one per split).

    Parameters
    ----------
    path : str or Path
        A ``*.json`` file, or a folder holding ``annotations/*.json``.
    images_root : str or Path, optional
        Where the image files are, when not beside the annotations.

    Returns
    -------
    Dataset
        With ``findings`` for every record that parsed but is wrong.

    Raises
    ------
    FormatError
        The file is not COCO: invalid JSON, a missing required key, a wrong type.
    ReadError
        A file cannot be opened.
    """
    path = Path(path)
    files = _annotation_files(path)
    if not files:
        raise FormatError("no COCO annotation file found (looked for annotations/*.json and *.json "
                          "holding 'images' and 'annotations')", path=path)
    dataset = Dataset({}, [], [], source_format="coco")
    root = path if path.is_dir() else path.parent
    for json_path in files:
        _read_split(json_path, dataset, Path(images_root) if images_root else None,
                    root.parent if root.name == "annotations" else root)
    release_free_memory()  # the parsed records are gone; their pages would otherwise stay with this process
    return dataset


def _encode(mask: Mask, encoding: str, tolerance: float) -> tuple[Any, float | None]:
    """The JSON segmentation of a mask, and the IoU where the encoding lost pixels."""
    face = mask.face if encoding == "keep" else encoding
    if face == "polygon" and mask.area > 0:
        polygons = mask.to_polygons(tolerance)
        if tolerance == 0:
            return polygons, None
        written = Mask.from_polygons(polygons, *mask.shape_hw) if polygons else None
        return polygons, written.iou(mask) if written else 0.0
    if face == "uncompressed-rle":
        runs = decode_rle_string(mask.rle["counts"])
        return {"size": list(mask.shape_hw), "counts": runs.tolist()}, None
    return {"size": list(mask.shape_hw), "counts": mask.rle["counts"].decode("ascii")}, None


def write(
    dataset: Dataset,
    path: str | Path,
    *,
    mask_encoding: str = "keep",
    tolerance: float = 0.0,
    copy_images: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write one ``annotations/instances_<split>.json`` per split.

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The destination folder; written atomically.
    mask_encoding : {"keep", "polygon", "rle"}
        ``keep`` writes each mask in the face it was read in; ``polygon`` is
        lossless unless ``tolerance`` > 0; empty masks are written as RLE.
    tolerance : float
        Polygon simplification in pixels; every simplified mask is reported with its IoU.
    copy_images : bool
        Copy image files to ``images/<split>/``.
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes encoding masks (default: all cores).
    progress : callable, optional
        Called with the number of images just encoded.

    Returns
    -------
    ConversionReport
        Skipped records, recomputed areas and boxes, simplifications.
    """
    if mask_encoding not in MASK_ENCODINGS:
        raise ValueError(f"mask_encoding must be one of {sorted(MASK_ENCODINGS)}, found {mask_encoding!r}")
    report = ConversionReport("coco")
    grouped = dataset.annotations_by_image()
    categories = [
        {"id": c.id, "name": c.name, "supercategory": c.supercategory, **({} if c.isthing else {"isthing": 0})}
        for c in dataset.categories.values()
    ]
    encode = partial(_image_json, mask_encoding=mask_encoding, tolerance=tolerance)
    with output_dir(path, overwrite=overwrite) as staging:
        (staging / "annotations").mkdir()
        for split in dataset.splits:
            images, annotations = [], []
            jobs = ((image, grouped.get((split, image.id), [])) for image in dataset.images if image.split == split)
            for image_json, ann_jsons, changes in map_images(encode, jobs, workers=workers, progress=progress):
                report.changes.extend(changes)
                if image_json is None:
                    continue
                images.append(image_json)
                annotations.extend(ann_jsons)
            if copy_images:
                _copy_images(dataset, split, staging / "images" / split)
            report.images_written += len(images)
            report.annotations_written += len(annotations)
            document = {**dataset.meta.get(split, {}), "images": images, "annotations": annotations,
                        "categories": categories}
            name = f"instances_{split}.json" if split else "instances.json"
            # COCO's own key order (images before annotations): readers sniff the head of the file
            (staging / "annotations" / name).write_bytes(dumps_json(document, sort_keys=False))
    report.skip_unattached(dataset)
    return report


def _copy_images(dataset: Dataset, split: str, folder: Path) -> None:
    for image in dataset.images:
        if image.split == split and image.path is not None and image.path.is_file():
            target = folder / image.file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image.path, target)


def _image_json(job: tuple[ImageRecord, list[Annotation]], *, mask_encoding: str, tolerance: float):
    """One image's JSON records and the changes made to them (runs in a worker)."""
    image, anns = job
    changes: list[Change] = []
    if image.defect:  # a repeated id: its annotations stay with the first image of that id
        changes.append(Change("skipped", image.split, image.id, None, image.defect))
        return None, [], changes
    image_json = {"id": image.id, "file_name": image.file_name, "width": image.width,
                  "height": image.height, **image.attributes}
    ann_jsons = []
    for ann in anns:
        if ann.defect or ann.mask is None:
            changes.append(Change("skipped", ann.split, ann.image_id, ann.id, ann.defect or "mask-missing"))
        else:
            ann_jsons.append(_annotation_json(ann, mask_encoding, tolerance, changes))
    return image_json, ann_jsons, changes


def _annotation_json(ann: Annotation, encoding: str, tolerance: float, changes: list[Change]) -> dict:
    mask = ann.mask
    segmentation, iou = _encode(mask, encoding, tolerance)
    where = (ann.split, ann.image_id, ann.id)
    if iou is not None:
        changes.append(Change("simplified", *where, f"tolerance {tolerance} px", iou))
    area, bbox = mask.area, list(mask.bbox_xywh)
    stored_area, stored_bbox = ann.attributes.get("area"), ann.attributes.get("bbox")
    if stored_area is not None and stored_area != area:
        changes.append(Change("area-recomputed", *where, f"{stored_area} -> {area}"))
    if stored_bbox is not None and stored_bbox != bbox:
        changes.append(Change("bbox-recomputed", *where, f"{stored_bbox} -> {bbox}"))
    record = {**ann.attributes, "id": ann.id, "image_id": ann.image_id, "category_id": ann.category_id,
              "segmentation": segmentation, "area": area, "bbox": bbox, "iscrowd": int(ann.iscrowd)}
    if ann.score is not None:
        record["score"] = ann.score
    return record
