"""Segment Anything's SA-1B: one ``<name>.json`` beside each ``<name>.jpg``, masks without classes.

A file holds ``{"image": {"image_id", "width", "height", "file_name"},
"annotations": [{"id", "segmentation": {"size": [h, w], "counts": …},
"bbox", "area", "predicted_iou", "point_coords", "stability_score",
"crop_box"}, …]}`` with compressed COCO RLE.  JSON files directly in the
folder read as split ``""``; files in ``<folder>/<split>/`` as that split.

Reading
    Streams: each file is parsed once to check it (keys, RLE counts, RLE size
    against the image's, duplicate ids), and only per-annotation columns are
    kept (:class:`~segdata.stored.StoredAnnotations`); an image's records
    are parsed again from its file where that image is worked on, so memory
    grows by tens of bytes per mask, not by the masks.  Masks are
    class-agnostic: every annotation gets category 1 ``object``.  Fields
    other than ``id`` and ``segmentation`` (``predicted_iou``,
    ``point_coords``, …, the stored ``bbox`` and ``area``) go to
    ``Annotation.attributes``; the image's other fields to
    ``ImageRecord.attributes``; keys beside ``image`` and ``annotations`` are
    not kept.  Records that parse but are wrong get the COCO reader's codes
    (``rle-size-mismatch``, ``rle-counts-invalid``, ``mask-empty`` for a
    missing segmentation, ``annotation-id-duplicate`` within a split) and
    stay loaded with a ``defect``; an image id used again in a split is an
    ``image-id-duplicate``, and that file's annotations are not used.  Every
    ``*.json`` of the folder must be SA-1B: anything else, like malformed
    JSON or a missing ``id``, raises :class:`~segdata.errors.FormatError`
    naming the file and record.

Writing
    One ``<split>/<stem>.json`` per image, compressed RLE, ``bbox`` and
    ``area`` recomputed (a stored value that differs is reported), the
    attributes written back.  SA-1B has no class, crowd flag or void
    region: each annotation of a category other than 1 ``object`` is
    reported as ``category-lost``, each crowd region as
    ``crowd-as-object``, each void region as ``void-as-unlabeled``.  With
    ``copy_images`` the image is copied beside its JSON, which is what the
    format expects; otherwise read the output with ``images_root``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from segdata.converters.coco import ANNOTATION_DEFECTS
from segdata.errors import FormatError, MaskError
from segdata.io import dumps_json, output_dir, read_json
from segdata.masks import Mask, rle_string_numbers
from segdata.model import Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord
from segdata.parallel import map_batches, map_images
from segdata.stored import FACES, StoredAnnotations, shape_codes

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "*.json (or <split>/*.json) with 'image' ('image_id', 'file_name') and 'annotations' (SA-1B)"
#: The one category of class-agnostic masks.
CATEGORY = Category(1, "object")
#: Finding codes an annotation can carry: the COCO reader's, and its image's id used again.
DEFECTS = (*ANNOTATION_DEFECTS, "image-id-duplicate")

_SNIFF_BYTES = 1 << 16
_RLE_FACE = FACES.index("rle")
_IMAGE_KEYS = ("image_id", "width", "height", "file_name")
_ANN_KEYS = {"id", "segmentation", "score"}
_SPLIT_ORDER = {"train": 0, "val": 1, "validation": 1, "test": 2}
#: Files checked per task when reading; a task's result is a few arrays, not one object per file.
_FILES_PER_TASK = 64


# sniffing ----------------------------------------------------------------------------


def _looks_like_sa1b(path: str | Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    complete = len(head) < _SNIFF_BYTES  # a short file is seen whole: every key must show
    return (all(key in head for key in (b'"image"', b'"image_id"', b'"file_name"'))
            and (b'"annotations"' in head or not complete)
            and not any(key in head for key in (b'"images"', b'"items"', b'"shapes"', b'"segments_info"')))


def _json_names(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.name.endswith(".json") and e.is_file())


def _subfolders(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    return [folder / name for name in sorted(names, key=lambda n: (_SPLIT_ORDER.get(n, 3), n))]


def _first_json(folder: Path) -> Path | None:
    """The first JSON file the folder lists (unsorted: a folder of 11M files is not sorted to sniff it)."""
    with os.scandir(folder) as entries:
        return next((Path(e.path) for e in entries if e.name.endswith(".json") and e.is_file()), None)


def sniff(path: str | Path) -> bool:
    """True for an SA-1B JSON, or a folder whose first JSON (or its first split folder's) is one."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".json" and _looks_like_sa1b(path)
    if not path.is_dir():
        return False
    first = _first_json(path) or next(filter(None, map(_first_json, _subfolders(path))), None)
    return first is not None and _looks_like_sa1b(first)


# reading -----------------------------------------------------------------------------


def _require(record: dict, key: str, kind: type, path: str, where: str | None) -> Any:
    if key not in record:
        raise FormatError(f"missing required key {key!r}", path=path, record=where)
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise FormatError(f"{key!r} must be {kind.__name__}, found {type(value).__name__} {value!r}",
                          path=path, record=where)
    return value


def _document(json_path: str) -> tuple[dict, list]:
    """A file's ``image`` and ``annotations``, or a :class:`FormatError` saying what is not SA-1B."""
    data = read_json(json_path)
    if not isinstance(data, dict):
        raise FormatError(f"expected a JSON object, found {type(data).__name__}", path=json_path)
    image = _require(data, "image", dict, json_path, None)
    return image, _require(data, "annotations", list, json_path, None)


@dataclass
class _Chunk:
    """What checking some files found: their images, and per annotation only what jobs select by."""

    images: list[tuple[int, int, int, str, dict]]  # image_id, width, height, file_name, other fields
    counts: np.ndarray  # annotations per file
    ids: np.ndarray
    faces: np.ndarray
    mask_defects: list[tuple[int, str, str]]  # (row in the chunk, code, message)


def _index_files(json_paths: list[str]) -> _Chunk:
    """Parse and check some files, keeping no record (runs in a helper when there is one)."""
    images, counts, ids, faces, mask_defects = [], [], [], [], []
    for json_path in json_paths:
        image, records = _document(json_path)
        image_id = _require(image, "image_id", int, json_path, "image")
        where = f"image {image_id}"
        width = _require(image, "width", int, json_path, where)
        height = _require(image, "height", int, json_path, where)
        images.append((image_id, width, height, _require(image, "file_name", str, json_path, where),
                       {k: v for k, v in image.items() if k not in _IMAGE_KEYS}))
        counts.append(len(records))
        compressed: list[tuple[int, dict, bytes]] = []  # checked together below: ~100 masks an image
        for index, raw in enumerate(records):
            row = len(ids)
            if not isinstance(raw, dict):
                raise FormatError(f"expected an object, found {type(raw).__name__}", path=json_path,
                                  record=f"annotation index {index}")
            ids.append(_require(raw, "id", int, json_path, f"annotation index {index}"))
            faces.append(-1)
            segmentation = raw.get("segmentation")
            if segmentation is None or segmentation == []:
                mask_defects.append((row, "mask-empty", "annotation has no segmentation"))
            elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str) \
                    and _is_size(segmentation.get("size"), height, width):
                string = segmentation["counts"].encode("ascii", errors="replace")
                compressed.append((row, segmentation, string))
            else:
                _check_one(row, segmentation, height, width, faces, mask_defects)
        if compressed:
            wrong = _wrong_runs([string for _, _, string in compressed], height * width)
            for (row, segmentation, _), bad in zip(compressed, wrong.tolist()):
                if bad:  # checked again alone, for the same message as the COCO reader's
                    _check_one(row, segmentation, height, width, faces, mask_defects)
                else:
                    faces[row] = _RLE_FACE
    return _Chunk(images, np.array(counts, np.int64), np.array(ids, np.int64), np.array(faces, np.int8),
                  mask_defects)


def _check_one(row: int, segmentation: Any, height: int, width: int, faces: list[int],
               mask_defects: list[tuple[int, str, str]]) -> None:
    """One segmentation checked as the COCO reader checks it: its face, or its defect."""
    try:
        if isinstance(segmentation, dict):
            mask = Mask.from_rle(segmentation)
        elif isinstance(segmentation, list):
            mask = Mask.from_polygons(segmentation, height, width)
        else:
            raise MaskError(f"segmentation must be an RLE dict, found {type(segmentation).__name__}",
                            code="rle-counts-invalid")
    except MaskError as err:
        mask_defects.append((row, err.code, err.message))
        return
    faces[row] = FACES.index(mask.face)
    if mask.shape_hw != (height, width):
        mask_defects.append((row, "rle-size-mismatch", f"RLE size {list(mask.shape_hw)} differs from "
                             f"image size {[height, width]} (height, width)"))


def _wrong_runs(strings: list[bytes], pixels: int) -> np.ndarray:
    """Which compressed RLE strings of one image do not decode to runs that fill its ``pixels``.

    What :meth:`~segdata.masks.Mask.from_rle` checks (a number cut off,
    longer than 12 chars, a negative run, runs not adding up), for all of
    an image's strings at once: one string at a time, NumPy's per-call cost
    made this check 80 % of reading.
    """
    lengths = np.fromiter(map(len, strings), np.int64, len(strings))
    chars = np.frombuffer(b"".join(strings), np.uint8).astype(np.int64) - 48
    if not chars.size:
        return np.full(len(strings), pixels != 0)
    cut = (lengths > 0) & (chars[np.maximum(np.cumsum(lengths) - 1, 0)] & 0x20 != 0)
    if cut.any():  # its last number would run on into the next string: check the others without it
        cut[~cut] = _wrong_runs([string for string, c in zip(strings, cut.tolist()) if not c], pixels)
        return cut
    owner = np.repeat(np.arange(len(strings)), lengths)
    values, starts, position = rle_string_numbers(chars)
    wrong = np.bincount(owner[position > 11], minlength=len(strings)) > 0
    number_owner = owner[starts]
    first = np.searchsorted(number_owner, np.arange(len(strings)))
    m = np.arange(values.size) - first[number_owner]  # a number's index in its string
    runs = values.copy()
    for parity, least in ((1, 1), (0, 2)):  # run m adds run m - 2 from m = 3 and m = 4 on (pycocotools)
        selected = (m % 2 == parity) & (m >= least)
        total = np.cumsum(np.where(selected, values, 0))
        before = np.where(first > 0, total[np.maximum(first - 1, 0)], 0)[number_owner]
        runs[selected] = (total - before)[selected]
    wrong |= np.bincount(number_owner[(runs < 0) | (runs > pixels)], minlength=len(strings)) > 0
    # runs capped at pixels + 1 (already wrong above): float sums of them stay exact
    sums = np.bincount(number_owner, weights=np.minimum(runs, pixels + 1), minlength=len(strings))
    return wrong | (sums != pixels)


def _is_size(size: Any, height: int, width: int) -> bool:
    return type(size) is list and len(size) == 2 and type(size[0]) is int and type(size[1]) is int \
        and size == [height, width]


def _load(json_path: str) -> list[tuple[int, dict]]:
    """A file's annotation records in order, each with its image's id (SA-1B records do not carry it)."""
    image, records = _document(json_path)
    return [(image["image_id"], raw) for raw in records]


def _decode(record: tuple[int, dict], split: str, height: int, width: int, defect: str | None,
            mask_ok: bool) -> Annotation:
    """One record as an :class:`Annotation`, once :func:`_index_files` has judged it."""
    image_id, raw = record
    ann = Annotation(raw["id"], image_id, CATEGORY.id, None, False, raw.get("score"), split, defect,
                     {k: v for k, v in raw.items() if k not in _ANN_KEYS})
    if mask_ok:  # checked when the file was read
        ann.mask = Mask.from_checked(raw["segmentation"], height, width)
    return ann


def _files(path: Path) -> list[tuple[str, str]]:
    """``(json path, split)`` of every file: the folder's own, then each split folder's, by name."""
    if path.is_file():
        return [(str(path), "")]
    found = [(str(path / name), "") for name in _json_names(path)]
    for folder in _subfolders(path):
        found += [(str(folder / name), folder.name) for name in _json_names(folder)]
    return found


def read(path: str | Path, *, images_root: str | Path | None = None) -> Dataset:
    """Read SA-1B JSON files: one file, a folder of them, or a folder of split subfolders.

    Parameters
    ----------
    path : str or Path
        An SA-1B ``*.json`` or a folder.
    images_root : str or Path, optional
        Where the images are, when not beside their JSON.

    Returns
    -------
    Dataset
        One image per JSON, category 1 ``object``; annotations left in
        their files; findings for every record that parses but is wrong.

    Raises
    ------
    FormatError
        Invalid JSON, or a file or record that is not SA-1B (missing
        ``image``, ``id`` not an integer, …).
    ReadError
        A file cannot be opened.
    """
    path = Path(path)
    files = _files(path)
    if not files:
        raise FormatError("no SA-1B JSON found (looked for *.json and */*.json)", path=path)
    paths = [name for name, _ in files]
    splits = list(dict.fromkeys(split for _, split in files))
    split_index = {split: index for index, split in enumerate(splits)}
    file_split = np.array([split_index[split] for _, split in files], np.int16)
    chunks = list(map_batches(_index_files, paths, batch_size=_FILES_PER_TASK,
                              workers=None if len(paths) > 4 * _FILES_PER_TASK else 1, reading=True))
    dataset = Dataset({CATEGORY.id: Category(CATEGORY.id, CATEGORY.name)}, [], [], source_format="sa1b")
    root = Path(images_root) if images_root else None
    images = (image for chunk in chunks for image in chunk.images)  # batches shrink at the end: sizes vary
    for (json_path, split), (image_id, width, height, file_name, extra) in zip(files, images):
        folder = root if root is not None else Path(json_path).parent
        dataset.images.append(ImageRecord(image_id, file_name, width, height, split=split,
                                          path=folder / file_name, attributes=extra))
    counts = np.concatenate([c.counts for c in chunks])
    dataset.annotations = _store(dataset, paths, splits, file_split, counts, chunks)
    return dataset


def _store(dataset: Dataset, paths: list[str], splits: list[str], file_split: np.ndarray, counts: np.ndarray,
           chunks: list[_Chunk]) -> StoredAnnotations:
    """The annotation columns, each record's first defect, and the findings (images first, then records)."""
    n = int(counts.sum())
    file = np.repeat(np.arange(len(paths)), counts)
    ids = np.concatenate([c.ids for c in chunks])
    firsts = np.cumsum([0] + [len(c.ids) for c in chunks]).tolist()
    mask_defects = {row + first: (code, message) for c, first in zip(chunks, firsts)
                    for row, code, message in c.mask_defects}
    images = dataset.images
    split = file_split[file]
    image_ids = np.array([image.id for image in images], np.int64)
    heights = np.array([image.height for image in images], np.int64)
    widths = np.array([image.width for image in images], np.int64)

    seen: dict[tuple[str, int], int] = {}
    repeated = np.zeros(len(images), bool)
    for index, image in enumerate(images):
        key = (image.split, image.id)
        if key in seen:
            repeated[index] = True
            image.defect = "image-id-duplicate"
            dataset.findings.append(Finding(
                "image-id-duplicate", "error", f"image id {image.id} is used again by {image.file_name!r} "
                f"(first by {images[seen[key]].file_name!r}); its {int(counts[index])} annotations are kept "
                "out of use", image.split, image.id, None, paths[index]))
        seen.setdefault(key, index)

    order = np.lexsort((ids, split))  # stable: an id's first row in the split comes first
    duplicate = np.zeros(n, bool)
    duplicate[order[1:][(split[order][1:] == split[order][:-1]) & (ids[order][1:] == ids[order][:-1])]] = True
    in_repeated = repeated[file]
    mask_ok = ~in_repeated
    mask_ok[list(mask_defects)] = False
    defect = np.full(n, -1, np.int16)
    for row in np.flatnonzero(duplicate | ~mask_ok).tolist():
        image_index = int(file[row])
        codes = []
        if duplicate[row]:
            codes.append(("annotation-id-duplicate", f"annotation id {int(ids[row])} is used again"))
        if row in mask_defects:
            codes.append(mask_defects[row])
        image_id, ann_id = int(image_ids[image_index]), int(ids[row])
        dataset.findings.extend(Finding(code, "error", message, splits[split[row]], image_id, ann_id,
                                        paths[image_index]) for code, message in codes)
        first_code = "image-id-duplicate" if in_repeated[row] else codes[0][0]
        defect[row] = DEFECTS.index(first_code)
    faces = np.concatenate([c.faces for c in chunks])
    start = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    shapes, image_shape = shape_codes(heights, widths)
    return StoredAnnotations(paths, splits, DEFECTS, _decode, {
        "file": file, "split": split, "start": start, "id": ids, "image_id": image_ids[file],
        "category_id": np.full(n, CATEGORY.id), "iscrowd": np.zeros(n, bool), "shape": image_shape[file],
        "defect": defect, "mask_ok": mask_ok, "face": faces,
    }, shapes, load=_load)


# writing -----------------------------------------------------------------------------


def _image_json(job: tuple[ImageRecord, Any, str], *, names: dict[int, str]):
    """One image's SA-1B document (bytes), what writing it changed, and how many annotations it holds.

    Runs in a worker.  An image whose id is used again is skipped alone: the
    annotations of that id are the first image's, and its own carry a defect.
    """
    image, anns, file_name = job
    changes: list[Change] = []
    if image.defect:
        return None, [Change("skipped", image.split, image.id, None, image.defect)], 0
    if file_name != image.file_name:
        changes.append(Change("file-renamed", image.split, image.id, None,
                              f"{image.file_name!r} -> {file_name!r} (beside its JSON)"))
    if image.void is not None and image.void.area:
        changes.append(Change("void-as-unlabeled", image.split, image.id, None,
                              f"{image.void.area} void px: SA-1B has no void region"))
    records = []
    for ann in anns:
        where = (ann.split, ann.image_id, ann.id)
        if ann.defect or ann.mask is None:
            changes.append(Change("skipped", *where, ann.defect or "mask-missing"))
            continue
        mask = ann.mask
        if mask.shape_hw != (image.height, image.width):
            changes.append(Change("skipped", *where, f"rle-size-mismatch: mask {list(mask.shape_hw)}, image "
                                  f"{[image.height, image.width]} (height, width)"))
            continue
        area, bbox = mask.area, list(mask.bbox_xywh)
        stored_area, stored_bbox = ann.attributes.get("area"), ann.attributes.get("bbox")
        if stored_area is not None and stored_area != area:
            changes.append(Change("area-recomputed", *where, f"{stored_area} -> {area}"))
        if stored_bbox is not None and stored_bbox != bbox:
            changes.append(Change("bbox-recomputed", *where, f"{stored_bbox} -> {bbox}"))
        if (ann.category_id, names.get(ann.category_id)) != (CATEGORY.id, CATEGORY.name):
            changes.append(Change("category-lost", *where, f"category {ann.category_id} "
                                  f"({names.get(ann.category_id)!r}) reads back as {CATEGORY.id} "
                                  f"({CATEGORY.name!r}): SA-1B masks have no class"))
        if ann.iscrowd:
            changes.append(Change("crowd-as-object", *where, "crowd region written as an ordinary mask"))
        record = {"id": ann.id, "segmentation": {"size": [image.height, image.width],
                                                 "counts": mask.rle["counts"].decode("ascii")},
                  **ann.attributes, "bbox": bbox, "area": area}
        if ann.score is not None:
            record["score"] = ann.score
        records.append(record)
    document = {"image": {"image_id": image.id, "width": image.width, "height": image.height,
                          "file_name": file_name, **image.attributes}, "annotations": records}
    return dumps_json(document, sort_keys=False), changes, len(records)


def write(
    dataset: Dataset,
    path: str | Path,
    *,
    copy_images: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write one SA-1B JSON per image at ``<split>/<stem>.json``.

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The destination folder; written atomically.
    copy_images : bool
        Copy each image beside its JSON (bytes, never re-encoded).
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes encoding masks (default: all cores).
    progress : callable, optional
        Called with the number of images just written.

    Returns
    -------
    ConversionReport
        Skips, recomputed areas and boxes, and each annotation whose class,
        crowd flag or image's void region SA-1B cannot hold.
    """
    report = ConversionReport("sa1b")
    names = {cat_id: category.name for cat_id, category in dataset.categories.items()}
    grouped = dataset.annotations_by_image()
    job = partial(_image_json, names=names)
    with output_dir(path, overwrite=overwrite) as staging:
        for split in dataset.splits:
            folder = staging / split if split else staging
            folder.mkdir(exist_ok=True)
            taken: dict[str, int] = {}
            images = []
            for image in (i for i in dataset.images if i.split == split):
                file_name = Path(image.file_name).name
                stem = Path(file_name).stem
                if stem in taken and not image.defect:
                    report.add("skipped", split, image.id, None, f"{stem}.json already written for image "
                               f"{taken[stem]} (same stem)")
                    for ann in grouped.get((split, image.id), []):
                        report.add("skipped", split, image.id, ann.id, f"its image's {stem}.json is taken")
                    continue
                if not image.defect:
                    taken[stem] = image.id
                images.append((image, file_name))
            jobs = ((image, grouped.get((split, image.id), []), file_name) for image, file_name in images)
            for (image, file_name), (document, changes, count) in zip(images, map_images(
                    job, jobs, workers=workers, progress=progress)):
                report.changes.extend(changes)
                if document is None:
                    continue
                (folder / f"{Path(file_name).stem}.json").write_bytes(document)
                report.images_written += 1
                report.annotations_written += count
                if not copy_images:
                    continue
                if image.path is not None and Path(image.path).is_file():
                    shutil.copyfile(image.path, folder / file_name)
                else:
                    report.add("image-missing", split, image.id, None,
                               f"image file {image.path or image.file_name} not found; not copied")
    report.skip_unattached(dataset)
    return report
