"""Cityscapes fine annotations: ``gtFine/<split>/<city>/<stem>_gtFine_*`` label PNGs and polygons.

Layout::

    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     8-bit label ids
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png  16-bit: id·1000 + n, or id
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json    imgHeight, imgWidth, objects
    ROOT/gtFine/segdata_classes.json          only when the classes are not Cityscapes' own (see below)
    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png    the photos

Reading.  The split is the folder name and the image's ``group`` is the
city.  Categories are Cityscapes' label table (cityscapesScripts
``helpers/labels.py``: id, name, category as ``supercategory``,
``hasInstances`` as ``isthing``, colour) for ids 1–33, or the table in
``gtFine/segdata_classes.json`` when a segdata writer left one.  Label **0
(unlabeled) is background**, not a category; labels 1–6 (ego vehicle,
rectification border, out of roi, static, dynamic, ground: ``ignoreInEval``)
stay ordinary stuff categories, since they are labelled regions; ``license
plate`` (id −1) cannot appear in a PNG.  Annotations come from the first
source present:

* ``instanceIds`` (16 bits kept, pitfall 25): a value ≥ 1000 is instance
  ``value % 1000`` of class ``value // 1000``; a value < 1000 of a class with
  instances is a crowd (``…group``) region, ``iscrowd=True``; of any other
  class, one stuff annotation per class and image (pitfall 29);
* ``labelIds``: one annotation per class and image (instances of one class
  touching each other cannot be told apart, pitfall 35);
* ``polygons.json``: one annotation per object (``<name>group`` = crowd;
  ``deleted`` objects are left out and counted in a finding), rasterized by
  segdata's one polygon rule (pycocotools' pixel centres), which may differ by
  a boundary pixel from cityscapesScripts' PIL drawing; such annotations carry
  ``attributes["source"] = "polygons"``.

``labelTrainIds`` and ``color`` PNGs are derived from the label ids and are
not read.  Records that parse but are wrong stay loaded with a finding (and a
``defect`` when the record is unusable): a value not in the table
(``category-unknown``), label PNGs whose size differs from the photo's or from
each other (``label-size-mismatch``), ``instanceIds`` and ``labelIds`` naming
different classes for a pixel (``cityscapes-label-mismatch``), a
``polygons.json`` whose ``imgHeight``/``imgWidth`` differ from the PNG
(``polygons-size-mismatch``), an instance value of a class without instances
(``cityscapes-stuff-instance``).  Reading decodes every label file once, on
every core (for sizes, classes and findings, which still come out in image
order), but keeps only columns (:mod:`segdata.stored`): an image's masks are
decoded again from the one file its annotations come from where the image is
worked on.  The files must stay unchanged meanwhile.

Writing paints each image with :func:`segdata.compose.compose_image`
(crowd regions painted under the instances, overlaps by the ``overlap``
policy) into ``labelIds`` (8-bit; category ids 1–255) and ``instanceIds``
(16-bit; ``id·1000 + n`` for non-crowd instances of thing categories, ``n``
from 0 per class in annotation order as cityscapesScripts numbers them; the
id alone for crowd regions and stuff; thing category ids must be < 65).
What is lost: annotation and image ids, overlapping pixels (each counted in
the report with its IoU), the distinction between background and void
(both written 0, "unlabeled"), separate stuff annotations of one class (they
merge), and a split named ``""`` (written to ``default/``).  The city is the
image's ``group`` (``default`` when none); the file stem is the image's file
name without folders, suffix and ``_leftImg8bit``.  When the categories are
not Cityscapes' table, ``gtFine/segdata_classes.json`` keeps them (id, name,
supercategory, isthing) for the way back.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from itertools import groupby
from pathlib import Path, PurePosixPath

import numpy as np
import orjson

from segdata import png
from segdata.compose import ComposeSettings, compose_image, settings
from segdata.converters._raster import (BITMAP, ImageRead, add_image_reads, image_size, paintable,
                                       raster_changes, read_label_png, value_counts)
from segdata.errors import FormatError, MaskError, UsageError
from segdata.io import dumps_json, output_dir, read_json
from segdata.masks import FACES, Mask
from segdata.model import Annotation, Category, Change, ConversionReport, Dataset, Finding, ImageRecord
from segdata.parallel import map_images, read_workers
from segdata.stored import AnnotationColumns

#: What :func:`sniff` looks for, for the error that lists every format's test.
LOOKS_FOR = "a gtFine/<split>/<city>/ tree of *_gtFine_labelIds.png, *_instanceIds.png or *_polygons.json"

#: cityscapesScripts ``labels.py``: (name, id, trainId, category, catId, hasInstances, ignoreInEval, color).
_LABELS = (
    ("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    ("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    ("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    ("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    ("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    ("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    ("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    ("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    ("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    ("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    ("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    ("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    ("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    ("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    ("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    ("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    ("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    ("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    ("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    ("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    ("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    ("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    ("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    ("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    ("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    ("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    ("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    ("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
)
_CLASSES_FILE = "segdata_classes.json"
_KINDS = ("labelIds", "instanceIds", "polygons", "labelTrainIds", "color")
_GT_NAME = re.compile(r"^(?P<stem>.+)_gtFine_(?P<kind>labelIds|instanceIds|labelTrainIds|color)\.png$"
                      r"|^(?P<pstem>.+)_gtFine_(?P<pkind>polygons)\.json$")
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
_UNLABELED = 0
_MAX_THING_ID = 64  # 65·1000 + n overflows a 16-bit PNG for n > 535
_MAX_INSTANCES = 999
_VOID = 65535  # compose's void value; written as 0 (unlabeled), so that category 255 stays usable


def _standard_categories() -> dict[int, Category]:
    """Cityscapes' label table as categories: ids 1–33 (0, unlabeled, is background).

    Examples
    --------
    >>> table = _standard_categories()
    >>> len(table), table[26].name, table[26].supercategory, table[26].isthing, table[7].isthing
    (33, 'car', 'vehicle', True, False)
    """
    return {label[1]: Category(label[1], label[0], label[3], label[5], label[7])
            for label in _LABELS if label[1] != _UNLABELED}


# ----------------------------------------------------------------------------------------- sniff


def _gt_dir(path: Path) -> Path | None:
    if (path / "gtFine").is_dir():
        return path / "gtFine"
    return path if path.is_dir() and path.name == "gtFine" else None


def _first_gt_file(gt_dir: Path) -> Path | None:
    for candidate in gt_dir.glob("*/*/*_gtFine_*"):
        match = _GT_NAME.match(candidate.name)
        if match and (match["kind"] in ("labelIds", "instanceIds") or match["pkind"]) and candidate.is_file():
            return candidate
    return None


def sniff(path: str | Path) -> bool:
    """True when ``path`` holds a ``gtFine/`` tree (or is one) with Cityscapes label files."""
    path = Path(path)
    gt_dir = _gt_dir(path)
    return gt_dir is not None and _first_gt_file(gt_dir) is not None


# ------------------------------------------------------------------------------------------ read


def _decode_value(value: int, things: set[int]) -> tuple[int, int | None, bool]:
    """``(class id, instance number or None, iscrowd)`` of one ``instanceIds`` value.

    Examples
    --------
    >>> _decode_value(26002, {26}), _decode_value(26, {26}), _decode_value(7, {26})
    ((26, 2, False), (26, None, True), (7, None, False))
    """
    if value >= 1000:
        return value // 1000, value % 1000, False
    return value, None, value in things


def _split_jobs(split_dir: Path) -> list[tuple[str, str, str, int, dict[str, Path]]]:
    """``(split, city, stem, image id, its label files by kind)`` of each image of a split, numbered
    from 1."""
    files: dict[tuple[str, str], dict[str, Path]] = {}
    for city_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for file in sorted(city_dir.iterdir()):
            match = _GT_NAME.match(file.name)
            if match:
                stem, kind = match["stem"] or match["pstem"], match["kind"] or match["pkind"]
                files.setdefault((city_dir.name, stem), {})[kind] = file
    return [(split_dir.name, city, stem, image_id, kinds)
            for image_id, ((city, stem), kinds) in enumerate(sorted(files.items()), start=1)]


def _polygons_only(kinds: dict[str, Path]) -> bool:
    """Whether an image's annotations come from its polygons.json: it has no labelIds or instanceIds."""
    return "polygons" in kinds and not {"labelIds", "instanceIds"} & kinds.keys()


def _read_image(context: tuple[dict[int, Category], Path], job: tuple) -> ImageRead:
    """One image's label files read (by a helper, when there is one): ``context`` is the categories and
    the images folder, ``job`` one of :func:`_split_jobs`."""
    return _Reader(*context).read_image(*job)


class _Reader:
    """Reads one image: its record, findings and rows, its annotations numbered from 1."""

    def __init__(self, categories: dict[int, Category], images_dir: Path):
        self.categories = categories
        self.images_dir = images_dir
        self.things = {c.id for c in categories.values() if c.isthing}
        self.by_name = {c.name: c for c in categories.values()}
        self.findings: list[Finding] = []

    def flag(self, code: str, message: str, image: ImageRecord, path: Path | None, annotation_id=None,
             severity: str = "error", **details) -> None:
        self.findings.append(Finding(code, severity, message, image.split, image.id, annotation_id,
                                     None if path is None else str(path), details))

    def _photo(self, split: str, city: str, stem: str) -> Path | None:
        folder = self.images_dir / split / city
        exact = folder / f"{stem}_leftImg8bit.png"
        if exact.is_file():
            return exact
        return next(iter(sorted(folder.glob(f"{stem}_leftImg8bit.*"))), None) if folder.is_dir() else None

    def read_image(self, split: str, city: str, stem: str, image_id: int,
                   kinds: dict[str, Path]) -> ImageRead:
        photo = self._photo(split, city, stem)
        file_name = f"{city}/{photo.name if photo else stem + '_leftImg8bit.png'}"
        instance_path, label_path, polygons_path = (kinds.get("instanceIds"), kinds.get("labelIds"),
                                                    kinds.get("polygons"))
        instance_ids = read_label_png(instance_path) if instance_path else None
        label_ids = read_label_png(label_path) if label_path else None
        polygons = read_json(polygons_path) if polygons_path else None
        if polygons is not None:
            _check_polygons_document(polygons, polygons_path)
        primary = instance_ids if instance_ids is not None else label_ids
        primary_path = instance_path or label_path
        if photo is not None:
            width, height = image_size(photo)
        elif primary is not None:
            height, width = primary.shape
        elif polygons is not None:
            height, width = polygons["imgHeight"], polygons["imgWidth"]
        else:  # only labelTrainIds / color: their size is the image's
            width, height = image_size(next(iter(kinds.values())))
        image = ImageRecord(image_id, file_name, width, height, split=split, group=city, path=photo)
        read = ImageRead(image, self.findings)
        next_ann = [1]
        defect = None
        if primary is not None and primary.shape != (height, width):
            defect = "label-size-mismatch"
            self.flag("label-size-mismatch", f"label map is {primary.shape[0]}×{primary.shape[1]} "
                      f"(height×width) but the image {photo.name} is {height}×{width}", image, primary_path)
        if instance_ids is not None and label_ids is not None:
            self._compare(instance_ids, label_ids, image, instance_path, label_path)
        if polygons is not None:
            against = ((primary.shape, primary_path.name) if primary is not None
                       else ((height, width), photo and photo.name))
            if against[1] and (polygons["imgHeight"], polygons["imgWidth"]) != against[0]:
                defect = defect or (None if primary is not None else "polygons-size-mismatch")
                self.flag("polygons-size-mismatch", f"imgHeight×imgWidth is {polygons['imgHeight']}×"
                          f"{polygons['imgWidth']} but {against[1]} is {against[0][0]}×{against[0][1]}",
                          image, polygons_path)
        if primary is not None:
            kind = "instanceIds" if instance_ids is not None else "labelIds"
            rows = self._from_map(primary, kind == "instanceIds", image, primary_path, next_ann)
            source, (height, width) = (primary_path, kind), primary.shape
        elif polygons is not None:
            rows = self._from_polygons(polygons, image, polygons_path, next_ann)
            source, (height, width) = (polygons_path, "polygons"), (image.height, image.width)
        else:
            rows = []
            self.flag("cityscapes-no-labels", "no labelIds, instanceIds or polygons.json for this image "
                      f"(found only {', '.join(sorted(kinds))})", image, next(iter(kinds.values())),
                      severity="warning")
        if rows:
            _ids, starts, category_ids, crowd, codes, masked = zip(*rows)
            read.rows = (orjson.dumps([str(source[0]), source[1]]).decode(), len(rows),
                         {"defect": [code or defect for code in codes], "start": starts, "image_id": image_id,
                          "category_id": category_ids, "iscrowd": crowd, "height": height, "width": width,
                          "mask_ok": masked,
                          "face": FACES.index("polygon") if source[1] == "polygons" else BITMAP})
        return read

    def _compare(self, instance_ids: np.ndarray, label_ids: np.ndarray, image: ImageRecord,
                 instance_path: Path, label_path: Path) -> None:
        if instance_ids.shape != label_ids.shape:
            self.flag("label-size-mismatch", f"instanceIds is {instance_ids.shape[0]}×"
                      f"{instance_ids.shape[1]} but labelIds is {label_ids.shape[0]}×{label_ids.shape[1]} "
                      "(height×width)", image, label_path)
            return
        classes = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)
        differ = classes != label_ids
        if differ.any():
            pairs = Counter(zip(classes[differ].tolist(), label_ids[differ].tolist()))
            listed = ", ".join(f"{a}→{b} ({n} px)" for (a, b), n in sorted(pairs.items())[:5])
            self.flag("cityscapes-label-mismatch",
                      f"instanceIds and labelIds name different classes on {int(differ.sum())} pixels "
                      f"(instanceIds class→labelIds class: {listed}); instanceIds are kept",
                      image, label_path, pixels=int(differ.sum()),
                      pairs=[[a, b, n] for (a, b), n in sorted(pairs.items())])

    def _from_map(self, values: np.ndarray, instances: bool, image: ImageRecord, path: Path,
                  next_ann: list[int]) -> list[list]:
        """One row ``[id, start, category, crowd, defect, mask_ok]`` per value but 0; ``start`` is the
        value's place among the map's values."""
        rows = []
        for start, value in enumerate(value_counts(values)[0].tolist()):
            if value == _UNLABELED:
                continue
            cat_id, number, iscrowd = _decode_value(value, self.things) if instances else (value, None, False)
            row = [next_ann[0], start, cat_id, iscrowd, None, True]
            next_ann[0] += 1
            if cat_id not in self.categories:
                row[4] = "category-unknown"
                self.flag("category-unknown", f"value {value} is class {cat_id}, which is not in the label "
                          "table", image, path, row[0], value=value)
            elif number is not None and cat_id not in self.things:
                self.flag("cityscapes-stuff-instance", f"value {value} is instance {number} of class "
                          f"{cat_id} ({self.categories[cat_id].name}), a class without instances; "
                          "kept as an instance", image, path, row[0], severity="warning", value=value)
            rows.append(row)
        return rows

    def _from_polygons(self, document: dict, image: ImageRecord, path: Path,
                       next_ann: list[int]) -> list[list]:
        """One row ``[id, start, category, crowd, defect, mask_ok]`` per object not deleted; ``start`` is
        the object's index."""
        rows, deleted = [], 0
        for index, obj in enumerate(document["objects"]):
            if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
                raise FormatError("an object must be a JSON object with a string 'label'", path=path,
                                  record=f"object index {index}")
            if obj.get("deleted"):
                deleted += 1
                continue
            name, iscrowd = obj["label"], False
            category = self.by_name.get(name)
            if category is None and name.endswith("group") and name[:-5] in self.by_name \
                    and self.by_name[name[:-5]].isthing:
                category, iscrowd = self.by_name[name[:-5]], True
            row = [next_ann[0], index, category.id if category else -1, iscrowd, None, False]
            next_ann[0] += 1
            rows.append(row)
            if category is None:
                row[4] = "category-unknown"
                self.flag("category-unknown", f"label {name!r} is not in the label table", image, path,
                          row[0], label=name)
                continue
            try:
                _polygon_mask(obj, image.height, image.width)
                row[5] = True
            except (MaskError, TypeError, ValueError) as err:
                row[4] = getattr(err, "code", "polygon-invalid")
                self.flag(row[4], f"object {index} ({name}): {getattr(err, 'message', err)}", image, path,
                          row[0])
        if deleted:
            self.flag("cityscapes-deleted-objects", f"{deleted} object(s) marked 'deleted' left out", image,
                      path, severity="info", count=deleted)
        return rows


def _polygon_mask(obj: dict, height: int, width: int) -> Mask:
    """An object's ``polygon`` (``[[x, y], …]``) as a mask, by segdata's one polygon rule.

    Raises
    ------
    MaskError, TypeError, ValueError
        Not a list of points, or a polygon :meth:`segdata.masks.Mask.from_polygons` refuses.
    """
    ring = obj.get("polygon")
    if not isinstance(ring, list) or not all(isinstance(p, list) and len(p) == 2 for p in ring):
        raise MaskError("'polygon' must be a list of [x, y] points", code="polygon-invalid")
    return Mask.from_polygons([[float(c) for point in ring for c in point]], height, width)


class _Records(Sequence[tuple]):
    """An image's records again, by their ``start``: ``(kind, value or object, mask or None)``; a map's
    masks are cut when asked for, an object's polygon is rasterized by :func:`_decode`; crowd flags come
    from the store's columns."""

    def __init__(self, path: str, kind: str):
        self.kind = kind
        if kind == "polygons":
            self.items = read_json(path)["objects"]
        else:
            self.values = read_label_png(path)
            self.items = value_counts(self.values)[0].tolist()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, at):
        item = self.items[at]
        return self.kind, item, None if self.kind == "polygons" else Mask.from_bitmap(self.values == item)


def _load(source: str) -> _Records:
    """An image's records from the one file its annotations come from (``[path, kind]``)."""
    return _Records(*orjson.loads(source))


def _decode(record: tuple, split: str, height: int, width: int, defect: str | None,
            mask_ok: bool) -> Annotation:
    """One value's or object's annotation; ids and category come from the store's columns."""
    kind, item, mask = record
    if kind == "polygons":
        ann = Annotation(0, 0, 0, None, split=split, defect=defect,
                         attributes={"label": item["label"], "source": "polygons"})
        if mask_ok:
            ann.mask = _polygon_mask(item, height, width)
        return ann
    attributes = {"cityscapes_value": item}
    if kind == "instanceIds" and item >= 1000:
        attributes["instance_number"] = item % 1000
    return Annotation(0, 0, 0, mask, split=split, defect=defect, attributes=attributes)


def _check_polygons_document(document: object, path: Path) -> None:
    if not isinstance(document, dict):
        raise FormatError(f"expected a JSON object, found {type(document).__name__}", path=path)
    for key, kind in (("imgHeight", int), ("imgWidth", int), ("objects", list)):
        if not isinstance(document.get(key), kind) or isinstance(document.get(key), bool):
            raise FormatError(f"{key!r} must be {kind.__name__}, found {document.get(key)!r}", path=path)


def _read_classes(path: Path) -> dict[int, Category]:
    data = read_json(path)
    rows = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise FormatError("expected an object with a list 'classes'", path=path)
    categories = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("id"), int) \
                or not isinstance(row.get("name"), str):
            raise FormatError("a class needs an integer 'id' and a string 'name'", path=path,
                              record=f"class index {index}")
        color = row.get("color")
        categories[row["id"]] = Category(row["id"], row["name"], row.get("supercategory") or "",
                                         bool(row.get("isthing", True)), tuple(color) if color else None)
    return categories


def read(path: str | Path, *, images_root: str | Path | None = None) -> Dataset:
    """Read a Cityscapes ``gtFine`` tree (splits train, val, test first, then others by name).

    Parameters
    ----------
    path : str or Path
        The folder holding ``gtFine/`` (and usually ``leftImg8bit/``), or the ``gtFine`` folder.
    images_root : str or Path, optional
        The ``leftImg8bit`` folder (holding ``<split>/<city>/``), when not beside ``gtFine``.

    Returns
    -------
    Dataset
        With ``findings`` for every record that parsed but is wrong.

    Raises
    ------
    FormatError
        No Cityscapes label file, an unreadable or colour label PNG, a malformed polygons.json.
    ReadError
        A file cannot be opened.
    """
    path = Path(path)
    gt_dir = _gt_dir(path)
    if gt_dir is None or _first_gt_file(gt_dir) is None:
        raise FormatError("not a Cityscapes dataset (looked for gtFine/<split>/<city>/*_gtFine_labelIds.png, "
                          "*_gtFine_instanceIds.png or *_gtFine_polygons.json)", path=path)
    classes_path = gt_dir / _CLASSES_FILE
    categories = _read_classes(classes_path) if classes_path.is_file() else _standard_categories()
    dataset = Dataset(categories, [], [], source_format="cityscapes")
    images_dir = Path(images_root) if images_root else gt_dir.parent / "leftImg8bit"
    splits = sorted((p for p in gt_dir.iterdir() if p.is_dir()),
                    key=lambda p: (_SPLIT_ORDER.get(p.name, 3), p.name))
    jobs = [job for split_dir in splits for job in _split_jobs(split_dir)]
    rows = AnnotationColumns()
    reads = map_images(partial(_read_image, (categories, images_dir)), jobs, workers=read_workers(len(jobs)),
                       reading=True)
    for _split, split_reads in groupby(reads, key=lambda read: read.image.split):  # ids count per split
        add_image_reads(dataset, rows, split_reads)
    dataset.annotations = rows.store(_decode, _load)
    polygon_images = sum(_polygons_only(job[4]) for job in jobs)
    if polygon_images:
        dataset.findings.append(Finding(
            "polygons-rasterized", "info", f"{polygon_images} image(s) had only polygons.json; their "
            "polygons were rasterized by pycocotools' pixel-centre rule, which can differ by a boundary "
            "pixel from cityscapesScripts' labelIds", path=str(gt_dir),
            details={"images": polygon_images}))
    return dataset


# ----------------------------------------------------------------------------------------- write


def _stem(image: ImageRecord) -> str:
    """The Cityscapes stem of an image's file name (no folders, suffix or ``_leftImg8bit``).

    Examples
    --------
    >>> _stem(ImageRecord(1, "frankfurt/frankfurt_000000_000294_leftImg8bit.png", 4, 2))
    'frankfurt_000000_000294'
    >>> _stem(ImageRecord(2, "photos\\\\scene.v2.jpg", 4, 2))
    'scene.v2'
    """
    stem = PurePosixPath(image.file_name.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = stem.removesuffix("_leftImg8bit")
    if not stem or stem in (".", ".."):
        raise UsageError(f"file_name {image.file_name!r} gives no file stem", record=f"image {image.id}")
    return stem


def _relative(image: ImageRecord) -> PurePosixPath:
    """``<split>/<city>/<stem>`` of an image's label files."""
    city = image.group or "default"
    if "/" in city or "\\" in city or city in (".", ".."):
        raise UsageError(f"group {city!r} cannot be a city folder name", record=f"image {image.id}")
    return PurePosixPath(image.split or "default", city, _stem(image))


def _check_categories(categories: dict[int, Category]) -> None:
    for cat in sorted(categories.values(), key=lambda c: c.id):
        if not 1 <= cat.id <= 255:
            raise UsageError(f"category {cat.id} ({cat.name}) does not fit a Cityscapes labelIds PNG: ids "
                             "must be 1–255 (0 is 'unlabeled'); remap the categories first (--category-map)")
        if cat.isthing and cat.id > _MAX_THING_ID:
            raise UsageError(f"category {cat.id} ({cat.name}) has instances, and id·1000 + n overflows a "
                             f"16-bit instanceIds PNG above id {_MAX_THING_ID}; remap the categories first "
                             "(--category-map)")


def _is_standard(categories: dict[int, Category]) -> bool:
    standard = _standard_categories()
    return categories.keys() == standard.keys() and all(
        (c.name, c.isthing) == (standard[i].name, standard[i].isthing) for i, c in categories.items())


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
    """Write ``gtFine/<split>/<city>/<stem>_gtFine_{labelIds,instanceIds}.png`` for every image.

    Parameters
    ----------
    dataset : Dataset
    path : str or Path
        The destination folder; written atomically.
    overlap : str
        How overlapping instances are painted (:data:`segdata.compose.OVERLAP_POLICIES`).
    copy_images : bool
        Copy image files to ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit<suffix>``.
    overwrite : bool
        Replace a non-empty destination.
    workers : int, optional
        Processes painting images (default: all cores).
    progress : callable, optional
        Called with the number of images just written.

    Returns
    -------
    ConversionReport
        Skipped records, pixels lost to overlaps (with IoU), void written as unlabeled.

    Raises
    ------
    UsageError
        A category id outside 1–255 (or above 64 for a category with instances), two
        images that map to the same files, more than 1000 instances of a class in one image.
    """
    _check_categories(dataset.categories)
    config = settings(dataset.categories, overlap=overlap, crowd="paint", void_value=_VOID,
                      background_value=_UNLABELED, on_invalid="skip")
    seen: dict[PurePosixPath, int] = {}
    for image in dataset.images:
        if not image.defect:
            relative = _relative(image)
            if relative in seen:
                raise UsageError(f"images {seen[relative]} and {image.id} would both be written to "
                                 f"gtFine/{relative}_gtFine_labelIds.png", record=f"image {image.id}")
            seen[relative] = image.id
    report = ConversionReport("cityscapes")
    things = frozenset(c.id for c in dataset.categories.values() if c.isthing)
    with output_dir(path, overwrite=overwrite) as staging:
        gt_dir = staging / "gtFine"
        gt_dir.mkdir()
        job = partial(_write_image, config=config, things=things, gt_dir=gt_dir)
        for written, changes in map_images(job, dataset.image_items(), workers=workers, progress=progress):
            report.changes.extend(changes)
            if written is not None:
                report.images_written += 1
                report.annotations_written += written
        if not _is_standard(dataset.categories):
            classes = [{"id": c.id, "name": c.name, "supercategory": c.supercategory, "isthing": c.isthing,
                        **({"color": list(c.color)} if c.color else {})}
                       for c in sorted(dataset.categories.values(), key=lambda c: c.id)]
            (gt_dir / _CLASSES_FILE).write_bytes(dumps_json({"classes": classes}, indent=True))
        if copy_images:
            _copy_images(dataset, staging / "leftImg8bit")
    report.skip_unattached(dataset)
    return report


def _copy_images(dataset: Dataset, folder: Path) -> None:
    for image in dataset.images:
        if not image.defect and image.path is not None and image.path.is_file():
            relative = _relative(image)
            target = folder / relative.parent / f"{relative.name}_leftImg8bit{image.path.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image.path, target)


def _write_image(job: tuple[ImageRecord, list[Annotation]], *, config: ComposeSettings,
                 things: frozenset[int], gt_dir: Path) -> tuple[int | None, list[Change]]:
    """Paint one image and write its two PNGs (runs in a worker): (annotations written, changes)."""
    image, annotations = job
    changes: list[Change] = []
    if image.defect:
        changes.append(Change("skipped", image.split, image.id, None, image.defect))
        changes.extend(Change("skipped", a.split, a.image_id, a.id, image.defect) for a in annotations)
        return None, changes
    usable = paintable(image, annotations, config, changes)
    maps = compose_image(image, usable, config)
    changes.extend(raster_changes(maps, image.split, image.id))
    if maps.report.void_px:
        changes.append(Change("void-as-unlabeled", image.split, image.id, None,
                              f"{maps.report.void_px} void px written as 0 (unlabeled)"))
    values = np.zeros(len(usable) + 1, np.uint16)
    numbers: Counter[int] = Counter()
    for position, ann in enumerate(usable, start=1):
        if ann.iscrowd or ann.category_id not in things:
            values[position] = ann.category_id
            continue
        number = numbers[ann.category_id]
        if number > _MAX_INSTANCES:
            raise UsageError(f"more than {_MAX_INSTANCES + 1} instances of category {ann.category_id} in one "
                             "image do not fit Cityscapes' id·1000 + n encoding",
                             record=f"image {image.id}{', split ' + image.split if image.split else ''}")
        values[position] = ann.category_id * 1000 + number
        numbers[ann.category_id] += 1
    label_ids = np.where(maps.class_map == _VOID, _UNLABELED, maps.class_map).astype(np.uint8)
    instance_ids = np.take(values, maps.instance_map)
    relative = _relative(image)
    folder = gt_dir / relative.parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{relative.name}_gtFine_labelIds.png").write_bytes(png.encode(label_ids))
    (folder / f"{relative.name}_gtFine_instanceIds.png").write_bytes(png.encode(instance_ids))
    hidden = set(maps.report.hidden_annotation_ids) | set(maps.report.skipped_annotation_ids)
    return sum(1 for a in usable if a.id not in hidden), changes
