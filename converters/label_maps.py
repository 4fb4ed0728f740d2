"""Where each image's class map is, for the label-map formats: semantic-png, VOC, Cityscapes.

Pixel statistics of a label-map dataset are a histogram of its PNGs: the
map already says which class owns each pixel, so painting the instances the
reader cut out of it back into a map would only cost time and could only
lose pixels.  The readers build instance datasets (one annotation per class
or instance); :func:`locate` gives, beside such a dataset, the PNG and the
value table of every image whose class map is on disk, and
:meth:`LabelMap.count` turns one PNG into per-class pixel counts with one
``np.bincount``.

What counts as the class map, per format:

* ``semantic-png``: ``<split>/<stem>.png``; values through ``classes.json``
  (or the ``classes=`` table the dataset was read with); its background and
  void values;
* ``voc``: ``SegmentationClass/<stem>.png`` (class index = category id, 0
  background, 255 and a label map's ``ignored`` entry void).  An image with
  only a ``SegmentationObject`` map, or an RGB colour-coded class map, has no
  entry: its pixels are composed from its instances;
* ``cityscapes``: ``<stem>_gtFine_instanceIds.png`` when present (the map
  the reader takes its annotations from; value ≥ 1000 is class
  ``value // 1000``), else ``_labelIds.png``; 0 (unlabeled) is background and
  there is no void value.  Crowd (``…group``) pixels count for their class,
  as in ``labelIds``.  Polygon-only images have no entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from segdata.converters import cityscapes, semantic_png, voc
from segdata.converters._raster import _LABEL_MODES, read_label_png, value_counts
from segdata.io import any_image_size
from segdata.model import Dataset, ImageRecord

#: Formats :func:`locate` knows; any other gives no label map.
FORMATS = ("semantic-png", "voc", "cityscapes")


@dataclass(frozen=True)
class LabelCounts:
    """One class map's pixels: per category, background, void and values without a class."""

    shape_hw: tuple[int, int]
    pixels: dict[int, int]
    background: int
    void: int
    unknown: int


@dataclass(frozen=True)
class LabelMap:
    """One image's class-map PNG and how its values read.

    Attributes
    ----------
    path : Path
    classes : dict of int to int
        Map value -> category id.
    background : int or None
        The value of unlabelled pixels.
    void : frozenset of int
        Values that belong to no class and are not background.
    instance_ids : bool
        Cityscapes ``instanceIds``: a value ≥ 1000 is class ``value // 1000``.
    """

    path: Path
    classes: dict[int, int]
    background: int | None
    void: frozenset[int]
    instance_ids: bool = False

    def count(self) -> LabelCounts:
        """Histogram the PNG: pixels per category, background, void and unknown values.

        Raises
        ------
        ReadError, FormatError
            The PNG is missing, not an image, or a colour image.

        Examples
        --------
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.array([[0, 1, 1], [255, 7, 1]], np.uint8)).save(folder / "m.png")
        >>> LabelMap(folder / "m.png", {1: 10}, 0, frozenset({255})).count()
        LabelCounts(shape_hw=(2, 3), pixels={10: 3}, background=1, void=1, unknown=1)
        """
        values = read_label_png(self.path)
        if self.instance_ids:
            values = np.where(values >= 1000, values // 1000, values)
        found, counts = value_counts(values)
        pixels: dict[int, int] = {}
        background = void = unknown = 0
        for value, count in zip(found.tolist(), counts.tolist()):
            if value == self.background:
                background += count
            elif value in self.void:
                void += count
            elif value in self.classes:
                category = self.classes[value]
                pixels[category] = pixels.get(category, 0) + count
            else:
                unknown += count
        return LabelCounts(values.shape, pixels, background, void, unknown)


def locate(dataset: Dataset, path: str | Path, *, classes: str | Path | None = None
           ) -> dict[tuple[str, int], LabelMap]:
    """The class map of every usable image of a label-map dataset, by ``(split, image id)``.

    Parameters
    ----------
    dataset : Dataset
        As the format's ``read`` returned it from ``path``.
    path : str or Path
        What was read.
    classes : str or Path, optional
        The class table the dataset was read with, if one was given.

    Returns
    -------
    dict
        Empty for other formats; images with a ``defect`` or without a
        class-map PNG on disk are left out.

    Examples
    --------
    >>> from segdata.converters import semantic_png
    >>> root = Path(__file__).resolve().parents[1] / "sample_datasets" / "semantic-png"
    >>> maps = locate(semantic_png.read(root), root)
    >>> len(maps), maps[("test", 1)].path.name, maps[("test", 1)].void
    (60, 'scene_0051.png', frozenset({255}))
    """
    root = Path(path)
    if dataset.source_format == "semantic-png":
        table = semantic_png._class_table(root, classes)
        void = frozenset(() if table.void is None else (table.void,))
        return _existing(dataset, lambda image: LabelMap(root / _semantic_relative(image), table.values,
                                                         table.background, void))
    if dataset.source_format == "voc":
        (_names, _colors, void_indices), _source = voc._class_table(root, classes)
        values = {cat: cat for cat in dataset.categories}
        void = frozenset({255, *void_indices})

        def voc_map(image: ImageRecord) -> LabelMap:
            stem = PurePosixPath(image.file_name).with_suffix("").as_posix()
            return LabelMap(root / "SegmentationClass" / f"{stem}.png", values, 0, void)
        return {key: m for key, m in _existing(dataset, voc_map).items() if _single_channel(m.path)}
    if dataset.source_format == "cityscapes":
        gt_dir = cityscapes._gt_dir(root)
        values = {cat: cat for cat in dataset.categories}
        if gt_dir is None:
            return {}

        def cityscapes_map(image: ImageRecord) -> LabelMap:
            name = PurePosixPath(image.file_name).name
            stem = name[:name.rfind("_leftImg8bit")] if "_leftImg8bit" in name else PurePosixPath(name).stem
            folder = gt_dir / image.split / (image.group or "")
            instance_path = folder / f"{stem}_gtFine_instanceIds.png"
            if instance_path.is_file():
                return LabelMap(instance_path, values, 0, frozenset(), instance_ids=True)
            return LabelMap(folder / f"{stem}_gtFine_labelIds.png", values, 0, frozenset())
        return _existing(dataset, cityscapes_map)
    return {}


def _semantic_relative(image: ImageRecord) -> PurePosixPath:
    relative = PurePosixPath(image.file_name).with_suffix(".png")
    return PurePosixPath(image.split) / relative if image.split else relative


def _existing(dataset: Dataset, where) -> dict[tuple[str, int], LabelMap]:
    found = {}
    for image in dataset.images:
        if image.defect:
            continue
        label_map = where(image)
        if label_map.path.is_file():
            found[(image.split, image.id)] = label_map
    return found


def _single_channel(path: Path) -> bool:
    """False for an RGB colour-coded map (Datumaro's VOC assets), whose colours need the label map.

    Only the header is read; a file Pillow cannot open is kept, so that
    counting it raises the reader's own error.
    """
    try:
        with any_image_size(), Image.open(path) as image:
            return image.mode in _LABEL_MODES
    except (OSError, UnidentifiedImageError):
        return True
