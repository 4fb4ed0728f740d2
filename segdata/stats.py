"""Class-imbalance statistics: three counts per class, suggested loss weights, split comparison.

Three counts disagree routinely, so all three are given side by side:

* **pixels**, counted on the *composed* class map of each image under the
  chosen overlap policy (:func:`segdata.compose_counts.count_image`: each
  instance's visible pixels, from RLE unions and intersections, exactly
  what :func:`segdata.compose.compose_image` would paint; the rest of the
  map is void or background).  Background is a row of its own (id = the
  background value, 0); void pixels (crowd regions, the image's void region,
  contested pixels under ``overlap="void"``) are excluded from every class.
  Beside it, ``area_sum`` is the raw summed area of the non-crowd
  annotations (each mask's pixel count under pycocotools' rule, overlaps
  counted twice, as Datumaro does),
  so that the effect of the overlap policy is visible.  For a label-map
  dataset (semantic-png, VOC, Cityscapes), pixels are the histogram of each
  image's class-map PNG instead (``label_maps=``): the map has already
  decided every pixel, and painting the reader's instances back would only
  redo that work;
* **images** containing the class: images with at least one annotation of it
  (crowd included); for background, images with a background pixel;
* **instances**: non-crowd annotations; crowd regions are counted apart
  (``crowd``).

Object sizes follow COCO's ``areaRng`` on the recomputed area of non-crowd
instances: small ``< 32²``, medium ``< 96²``, large otherwise.

Suggested loss weights (``NaN`` for a class the count does not cover):

* ``inverse_frequency``: ``1 / p_c`` with ``p_c`` = pixels(c) / non-void
  pixels, over the classes with pixels (background included), normalised to
  mean 1 over those classes;
* ``median_frequency`` (Eigen & Fergus, arXiv:1411.4734, as in PyTorch-ENet's
  ``median_freq_balancing``): ``freq_c`` = pixels(c) / total pixels of the
  images where c has a pixel, ``w_c = median(freq) / freq_c``, unnormalised;
* ``enet`` (Paszke et al., arXiv:1606.02147): ``w_c = 1 / ln(1.02 + p_c)``
  with ``p_c`` as above (the pixels a loss with an ignore index sees), unnormalised;
* ``effective_number`` (Cui et al., CVPR 2019): ``w_c ∝ (1 − β) / (1 − β^n_c)``
  with ``n_c`` = instances, over the categories with instances (not
  background), normalised so that Σw = K (mean 1).

Per-image work runs through :func:`segdata.parallel.map_batches`: each batch
of images is counted and summed where it runs, and only that partial tally
(sums per split and class, instance areas) comes back to be added here.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segdata.compose import ComposeSettings, settings
from segdata.compose_counts import count_image
from segdata.errors import UsageError
from segdata.io import write_bytes_atomic
from segdata.model import Annotation, Dataset, ImageRecord
from segdata.parallel import map_batches

if TYPE_CHECKING:
    import pandas as pd

#: Version of the JSON object returned by :meth:`ClassStats.to_dict`.
SCHEMA_VERSION = 1
#: COCO ``areaRng`` limits (``cocoeval.py``): small below 32², medium below 96².
SMALL_AREA, MEDIUM_AREA = 32**2, 96**2
#: Names of the suggested weights, in the order they are shown.
WEIGHTS = ("inverse_frequency", "median_frequency", "enet", "effective_number")
#: The three counts, as ``--by`` names them.
COUNTS = ("pixels", "images", "instances")
ENET_C = 1.02
BACKGROUND = "background"
REFERENCE_SPLIT = "train"

_QUANTILES = {"area_min": 0.0, "area_q25": 0.25, "area_median": 0.5, "area_q75": 0.75, "area_max": 1.0}


#: A table as its columns, in order: name -> values (a NumPy array, or a list of names).
Columns = dict[str, Any]


@dataclass
class ClassStats:
    """What :func:`class_stats` found.

    The tables are pandas DataFrames, built when first asked for: the
    command's JSON and tables are made from the columns, without pandas
    (0.25 s to import and 0.1 s to unload, in every run of ``segdata stats``).

    Attributes
    ----------
    classes : DataFrame
        One row per class (background first, then categories in dataset
        order), over every split; columns ``id, name, is_background, pixels,
        area_sum, crowd_area_sum, pixel_share_labelled, pixel_share_all,
        images, pixel_images, instances, crowd, small, medium, large,
        area_min … area_max`` and one ``weight_<name>`` column per weight.
    by_split : dict of str to DataFrame
        The same table for each split.
    images : DataFrame
        One row per split plus ``(all)``: images, unannotated images, mean /
        median / max classes and instances per image.
    split_comparison : DataFrame
        Per class (categories only) and split: ``n_<split>`` images containing
        it, ``fraction_<split>`` of the split's images containing it, and
        ``share_<split>``, its share of the split's summed image counts (the
        distribution the JS distance compares).
    split_tests : dict
        ``reference``, ``js_distance`` (base 2, per split vs the reference, on
        the normalised image-count distribution), ``chi2``, ``p_value``,
        ``dof``, ``cramers_v`` (on the splits × classes image counts), and
        ``absent_from_reference`` (per evaluation split, category ids present
        there but absent from the reference split).
    imbalance : dict
        Per count, ``ratio`` (max / min over categories with a non-zero
        count), ``max_class``, ``min_class``, and ``absent`` (categories with
        a zero count).
    alerts : list of dict
        Rare and absent classes: ``{"code", "class_id", "name", "message"}``.
    settings : dict
        The options used, and ``images_skipped`` / ``annotations_skipped``.
    """

    class_columns: Columns
    split_columns: dict[str, Columns]
    image_rows: list[dict[str, Any]]
    comparison_columns: Columns
    split_tests: dict[str, Any]
    imbalance: dict[str, Any]
    alerts: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def classes(self) -> pd.DataFrame:
        return _frame(self.class_columns)

    @cached_property
    def by_split(self) -> dict[str, pd.DataFrame]:
        return {split: _frame(columns) for split, columns in self.split_columns.items()}

    @cached_property
    def images(self) -> pd.DataFrame:
        return _frame(self.image_rows)

    @cached_property
    def split_comparison(self) -> pd.DataFrame:
        return _frame(self.comparison_columns)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``schema_version`` 1); NaN becomes ``None``."""
        images = {row["split"]: {k: v for k, v in row.items() if k != "split"} for row in self.image_rows}
        splits = {split: {"classes": _records(columns), "images": _clean(images[split]),
                          "js_distance_vs_reference": self.split_tests["js_distance"].get(split)}
                  for split, columns in self.split_columns.items()}
        return _clean({
            "schema_version": SCHEMA_VERSION,
            "settings": self.settings,
            "classes": _records(self.class_columns),
            "images": images["(all)"],
            "splits": splits,
            "split_comparison": {**self.split_tests, "classes": _rows(self.comparison_columns)},
            "imbalance": self.imbalance,
            "alerts": self.alerts,
        })

    def to_csv(self, path: str | Path) -> None:
        """Write every class table (a ``split`` column; ``(all)`` first) as one CSV, atomically."""
        import pandas as pd

        tables = [self.classes.assign(split="(all)")]
        tables += [table.assign(split=split) for split, table in self.by_split.items()]
        frame = pd.concat(tables, ignore_index=True)
        frame = frame[["split", *[c for c in frame.columns if c != "split"]]]
        write_bytes_atomic(path, frame.to_csv(index=False, lineterminator="\n").encode())


def _frame(table: Columns | list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd  # imported here: see ClassStats

    return pd.DataFrame(table)


def _rows(columns: Columns) -> list[dict[str, Any]]:
    """A table's rows as dicts of Python values."""
    names = list(columns)
    values = [column.tolist() if isinstance(column, np.ndarray) else list(column) for column in columns.values()]
    return [dict(zip(names, row)) for row in zip(*values)]


def _records(columns: Columns) -> list[dict[str, Any]]:
    rows = []
    for row in _rows(columns):
        weights = {name: row.pop(f"weight_{name}") for name in WEIGHTS}
        rows.append({**row, "weights": weights})
    return rows


def _clean(obj: Any) -> Any:
    """NumPy scalars to Python, NaN / inf to None, recursively (JSON has neither)."""
    if isinstance(obj, dict):
        return {key: _clean(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(value) for value in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _image_counts(job: tuple[ImageRecord, list[Annotation], Any], *,
                  config: ComposeSettings) -> dict[str, Any] | None:
    """One image's class histogram and instance areas (runs in a worker).

    The histogram is that of the image's class-map PNG when it has one
    (``job[2]``, a :class:`segdata.converters.label_maps.LabelMap`), else
    that of its composed class map.
    """
    image, annotations, label_map = job
    if image.defect:
        return None
    unknown = 0
    if label_map is not None:
        counts = label_map.count()
        pixels = dict(counts.pixels)
        if counts.background:
            pixels[config.background_value] = counts.background
        void, unknown = counts.void, counts.unknown
        size = counts.shape_hw[0] * counts.shape_hw[1]
        instances = [(ann.category_id, bool(ann.iscrowd), ann.mask.area) for ann in annotations
                     if ann.mask is not None and ann.defect is None]
    else:
        # the composed map's counts, from RLE unions and intersections: a tenth of painting it
        counts = count_image(image, annotations, config)
        visible = counts.visible
        pixels = {}
        for position, ann in enumerate(annotations, start=1):
            if visible[position]:
                pixels[ann.category_id] = pixels.get(ann.category_id, 0) + int(visible[position])
        size = image.height * image.width
        void = counts.void_px
        if size - void - sum(pixels.values()):
            pixels[config.background_value] = size - void - sum(pixels.values())
        skipped = set(counts.skipped_annotation_ids)
        instances = [(ann.category_id, bool(ann.iscrowd), int(counts.source_areas[position]))
                     for position, ann in enumerate(annotations, start=1)
                     if ann.id not in skipped and ann.mask is not None and ann.defect is None]
    return {"split": image.split, "size": size, "void": void, "unknown": unknown,
            "from_label_map": label_map is not None,
            "pixels": pixels, "instances": instances, "skipped": len(annotations) - len(instances)}


def _tally_batch(jobs: list[tuple[ImageRecord, list[Annotation], Any]], *, config: ComposeSettings,
                 splits: tuple[str, ...]) -> _Tally:
    """Some images counted and summed where they ran: one partial tally comes back, not a result an image."""
    tally = _Tally(len(splits))
    split_code = {split: code for code, split in enumerate(splits)}
    for job in jobs:
        result = _image_counts(job, config=config)
        if result is None:
            tally.skipped_images += 1
            continue
        tally.skipped_annotations += result["skipped"]
        tally.unknown_pixels += result["unknown"]
        tally.from_label_maps += result["from_label_map"]
        tally.add(split_code[result["split"]], result["size"], result["pixels"], result["instances"])
    return tally


def class_stats(
    dataset: Dataset,
    *,
    overlap: str = "smaller-on-top",
    beta: float = 0.999,
    rare_instance_share: float = 0.01,
    rare_images: int = 5,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    label_maps: Mapping[tuple[str, int], Any] | None = None,
) -> ClassStats:
    """Per-class pixel, image and instance counts, sizes, weights and split comparison.

    Parameters
    ----------
    dataset : Dataset
    overlap : str
        Overlap policy of the class maps pixels are counted on (see
        :data:`segdata.compose.OVERLAP_POLICIES`); crowd regions are void,
        annotations flagged unusable are skipped and counted.
    beta : float
        β of the effective-number weights, in [0, 1).
    rare_instance_share, rare_images : float, int
        A category is rare below this share of all instances or this many images.
    workers : int, optional
        Processes composing images (default: all cores).
    progress : callable, optional
        Called with the number of images just counted.
    label_maps : mapping, optional
        ``(split, image id)`` -> the image's class-map PNG, as
        :func:`segdata.converters.label_maps.locate` finds them for
        semantic-png, VOC and Cityscapes.  Those images' pixels are the
        histogram of the PNG (its own background and void values; values
        without a class are counted in ``settings["unknown_pixels"]``), not
        of a map composed from the instances the reader cut out of it; the
        overlap policy does not apply to them.  Image and instance counts
        still come from ``dataset``.

    Returns
    -------
    ClassStats

    Raises
    ------
    UsageError
        A bad option, or a category id equal to the background (0) or void (255) value.
    ComposeError
        An image that cannot be composed (``overlap="error"`` and an overlap, a size mismatch).

    Examples
    --------
    >>> from segdata.masks import Mask
    >>> from segdata.model import Category
    >>> box = lambda x0, x1: Mask.from_polygons([[x0, 0, x1, 0, x1, 2, x0, 2]], 2, 4)
    >>> data = Dataset({1: Category(1, "a"), 2: Category(2, "b")}, [ImageRecord(1, "x.jpg", 4, 2)],
    ...                [Annotation(7, 1, 1, box(0, 3)), Annotation(8, 1, 2, box(2, 4))])
    >>> stats = class_stats(data, workers=1)
    >>> stats.classes[["name", "pixels", "area_sum", "instances"]].values.tolist()
    [['background', 0, 0, 0], ['a', 4, 6, 1], ['b', 4, 4, 1]]
    """
    if not 0.0 <= beta < 1.0:
        raise UsageError(f"beta must be in [0, 1), found {beta}")
    if not 0.0 <= rare_instance_share <= 1.0 or rare_images < 0:
        raise UsageError(f"rare_instance_share must be in [0, 1] and rare_images ≥ 0; found "
                         f"{rare_instance_share} and {rare_images}")
    config = settings(dataset.categories, overlap=overlap, crowd="void", on_invalid="skip")
    tally = _Tally(len(dataset.splits))
    label_maps = label_maps or {}
    fold = partial(_tally_batch, config=config, splits=tuple(dataset.splits))
    for part in map_batches(fold, dataset.image_items(attach=label_maps), workers=workers, progress=progress):
        tally.merge(part)

    names = {config.background_value: BACKGROUND, **{c.id: c.name for c in dataset.categories.values()}}
    order = [config.background_value, *dataset.categories]
    splits = dataset.splits
    classes = _class_table(tally, None, order, names, config.background_value, beta)
    by_split = {split: _class_table(tally, code, order, names, config.background_value, beta)
                for code, split in enumerate(splits)}
    n_images = np.bincount(np.frombuffer(tally.image_split, np.int16), minlength=len(splits)).tolist()
    comparison, tests = _compare_splits(by_split, dict(zip(splits, n_images)), order[1:], names)
    return ClassStats(
        class_columns=classes, split_columns=by_split, image_rows=_image_summary(tally, splits),
        comparison_columns=comparison, split_tests=tests, imbalance=_imbalance(classes),
        alerts=_alerts(classes, rare_instance_share, rare_images, tests),
        settings={"overlap": overlap, "crowd": "void", "beta": beta,
                  "background_value": config.background_value,
                  "void_value": config.void_value, "rare_instance_share": rare_instance_share,
                  "rare_images": rare_images, "images_skipped": tally.skipped_images,
                  "annotations_skipped": tally.skipped_annotations,
                  "images_from_label_maps": tally.from_label_maps, "unknown_pixels": tally.unknown_pixels})


#: What :class:`_Tally` sums per (split, class), in this order.
_SUMS = ("pixels", "pixel_images", "present_px", "area_sum", "crowd_area_sum", "images", "instances", "crowd",
         "small", "medium", "large")


class _Tally:
    """Per-image results reduced: sums per (split, class), each instance's area (for exact quantiles), and
    per image only its split and counts (~4 bytes an instance, not a row of five); tallies of batches add
    up with :meth:`merge`."""

    def __init__(self, n_splits: int):
        self.sums: dict[tuple[int, int], list[int]] = {}
        self.areas: dict[tuple[int, int], array] = {}
        self.image_split, self.image_instances, self.image_classes = array("h"), array("i"), array("i")
        self.size = [0] * n_splits
        self.skipped_images = self.skipped_annotations = self.unknown_pixels = self.from_label_maps = 0

    def merge(self, other: _Tally) -> None:
        """Add another tally's images, after this one's."""
        self.size = [a + b for a, b in zip(self.size, other.size)]
        for key, values in other.sums.items():
            sums = self._sums(*key)
            for index, value in enumerate(values):
                sums[index] += value
        for key, values in other.areas.items():
            areas = self._areas(key, values.typecode == "q")
            areas.extend(values if areas.typecode == values.typecode else array(areas.typecode, values))
        self.image_split.extend(other.image_split)
        self.image_instances.extend(other.image_instances)
        self.image_classes.extend(other.image_classes)
        self.skipped_images += other.skipped_images
        self.skipped_annotations += other.skipped_annotations
        self.unknown_pixels += other.unknown_pixels
        self.from_label_maps += other.from_label_maps

    def add(self, split: int, size: int, pixels: dict[int, int],
            instances: list[tuple[int, bool, int]]) -> None:
        """One image: its class histogram and its instances' (class, crowd, area)."""
        self.size[split] += size
        wide = size >= 2**31  # an area of this image may need 8 bytes
        for class_id, count in pixels.items():
            sums = self._sums(split, class_id)
            sums[0] += count
            sums[1] += 1
            sums[2] += size
        for class_id, crowd, area in instances:
            sums = self._sums(split, class_id)
            if crowd:
                sums[4] += area
                sums[7] += 1
                continue
            sums[3] += area
            sums[6] += 1
            sums[8 if area < SMALL_AREA else 9 if area < MEDIUM_AREA else 10] += 1
            self._areas((split, class_id), wide).append(area)
        classes = {class_id for class_id, _crowd, _area in instances}
        for class_id in classes:
            self._sums(split, class_id)[5] += 1
        self.image_split.append(split)
        self.image_instances.append(len(instances))
        self.image_classes.append(len(classes))

    def _areas(self, key: tuple[int, int], wide: bool) -> array:
        """Where a class's areas go: 4 bytes each (3.4 MB at 860k instances), 8 once a value needs them."""
        areas = self.areas.get(key)
        if areas is None or wide and areas.typecode == "i":
            areas = self.areas[key] = array("q" if wide else "i", areas or ())
        return areas

    def _sums(self, split: int, class_id: int) -> list[int]:
        sums = self.sums.get((split, class_id))
        if sums is None:
            sums = self.sums[split, class_id] = [0] * len(_SUMS)
        return sums


def _class_table(tally: _Tally, split: int | None, order: list[int], names: dict[int, str], background: int,
                 beta: float) -> Columns:
    """The class table of one split (``None``: all of them)."""
    position = {class_id: index for index, class_id in enumerate(order)}
    sums = np.zeros((len(order), len(_SUMS)), np.int64)
    areas: list[list[array]] = [[] for _ in order]
    for (at, class_id), values in tally.sums.items():
        if (split is None or at == split) and class_id in position:
            sums[position[class_id]] += values
            areas[position[class_id]].append(tally.areas.get((at, class_id), array("q")))
    sums_of = dict(zip(_SUMS, sums.T))
    is_background = np.array([i == background for i in order], bool)
    pixels = sums_of["pixels"]
    table: Columns = {"id": np.array(order, np.int64), "name": [names[i] for i in order],
                      "is_background": is_background}
    for name in ("pixels", "pixel_images", "area_sum", "crowd_area_sum"):
        table[name] = sums_of[name]
    labelled, counted = pixels[~is_background].sum(), pixels.sum()
    total = sum(tally.size) if split is None else tally.size[split]
    table["pixel_share_labelled"] = np.where(is_background, np.nan, pixels / labelled if labelled else np.nan)
    table["pixel_share_all"] = pixels / total if total else np.full(len(order), np.nan)
    table["images"] = np.where(is_background, sums_of["pixel_images"], sums_of["images"])
    for name in ("instances", "crowd", "small", "medium", "large"):
        table[name] = sums_of[name]
    quantiles = np.full((len(order), len(_QUANTILES)), np.nan)
    for index, parts in enumerate(areas):
        values = [np.frombuffer(part, part.typecode) for part in parts]  # one split: no copy
        values = values[0] if len(values) == 1 else np.concatenate(values) if values else ()
        if len(values):
            quantiles[index] = np.quantile(values, list(_QUANTILES.values()))
    table.update(zip(_QUANTILES, quantiles.T))
    share = pixels / counted if counted else np.zeros(len(order))
    present_px = sums_of["present_px"]
    freq = pixels / np.where(present_px > 0, present_px, np.nan)
    weights = suggested_weights(share, freq, np.where(is_background, 0, table["instances"]), beta)
    table.update((f"weight_{name}", values) for name, values in weights.items())
    return table


def suggested_weights(share: np.ndarray, freq: np.ndarray, instances: np.ndarray, beta: float
                      ) -> dict[str, np.ndarray]:
    """The four weight conventions of the module docstring, NaN where a class is not covered.

    Parameters
    ----------
    share : ndarray of shape (K,) and dtype float
        Pixel share ``p_c`` of each class among counted (non-void) pixels.
    freq : ndarray of shape (K,) and dtype float
        Eigen & Fergus frequency (NaN where the class has no pixel).
    instances : ndarray of shape (K,) and dtype int
        Instance count per class (0 for background).
    beta : float

    Examples
    --------
    >>> share, freq = np.array([0.5, 0.25, 0.25]), np.array([0.5, 0.25, 0.5])
    >>> w = suggested_weights(share, freq, np.array([0, 1, 3]), 0.5)
    >>> {k: np.round(v, 4).tolist() for k, v in w.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'inverse_frequency': [0.6, 1.2, 1.2], 'median_frequency': [1.0, 2.0, 1.0],
     'enet': [2.3883, 4.1838, 4.1838], 'effective_number': [nan, 1.2727, 0.7273]}
    """
    present = share > 0
    inverse = np.full(share.shape, np.nan)
    if present.any():
        inverse[present] = 1.0 / share[present]
        inverse[present] /= inverse[present].mean()
    has_freq = np.isfinite(freq) & (freq > 0)
    median = np.full(share.shape, np.nan)
    if has_freq.any():
        median[has_freq] = np.median(freq[has_freq]) / freq[has_freq]
    enet = np.where(present, 1.0 / np.log(ENET_C + share), np.nan)
    effective = np.full(share.shape, np.nan)
    counted = instances > 0
    if counted.any():
        raw = (1.0 - beta) / (1.0 - np.power(beta, instances[counted].astype(float)))
        effective[counted] = raw / raw.sum() * counted.sum()
    return {"inverse_frequency": inverse, "median_frequency": median, "enet": enet,
            "effective_number": effective}


def _image_summary(tally: _Tally, splits: list[str]) -> list[dict[str, Any]]:
    """One row per split, ``(all)`` first: images, unannotated images, classes and instances per image."""
    image_split = np.frombuffer(tally.image_split, np.int16)
    counts = {"classes": np.frombuffer(tally.image_classes, np.int32),
              "instances": np.frombuffer(tally.image_instances, np.int32)}
    rows = []
    for code, split in enumerate(["(all)", *splits], start=-1):
        keep = slice(None) if code < 0 else image_split == code
        part = {name: values[keep] for name, values in counts.items()}
        row: dict[str, Any] = {"split": split, "images": len(part["instances"]),
                               "unannotated_images": int((part["instances"] == 0).sum())}
        for column, values in part.items():
            row[f"{column}_per_image_mean"] = float(values.mean()) if len(values) else np.nan
            row[f"{column}_per_image_median"] = float(np.median(values)) if len(values) else np.nan
            row[f"{column}_per_image_max"] = int(values.max()) if len(values) else 0
        rows.append(row)
    return rows


def _compare_splits(by_split: dict[str, Columns], n_images: dict[str, int], ids: list[int],
                    names: dict[int, str]) -> tuple[Columns, dict[str, Any]]:
    """Image shares per split, JS distance to the reference and a chi-square test on image counts."""
    comparison: Columns = {"id": np.array(ids, np.int64), "name": [names[i] for i in ids]}
    counts = {}
    for split, table in by_split.items():
        counts[split] = table["images"][~table["is_background"]]  # the rows of ``ids``, in order
        comparison[f"n_{split}"] = counts[split]
        comparison[f"fraction_{split}"] = (counts[split] / n_images[split] if n_images[split]
                                           else np.full(len(ids), np.nan))
    tests: dict[str, Any] = {"reference": REFERENCE_SPLIT if REFERENCE_SPLIT in by_split else None,
                             "js_distance": {}, "chi2": None, "p_value": None, "dof": None, "cramers_v": None,
                             "absent_from_reference": {}}
    for split, values in counts.items():
        total = values.sum()
        comparison[f"share_{split}"] = values / total if total else np.full(len(ids), np.nan)
    reference = tests["reference"]
    if reference is not None:
        ref = counts[reference]
        for split, values in counts.items():
            if split == reference:
                continue
            if ref.sum() and values.sum():
                tests["js_distance"][split] = js_distance(ref, values)
            tests["absent_from_reference"][split] = [i for i, n, r in zip(ids, values, ref)
                                                     if n > 0 and r == 0]
    table = np.array([counts[s] for s in counts], dtype=np.int64).reshape(len(counts), len(ids))
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] >= 2 and table.shape[1] >= 2:
        chi2, p_value, dof = chi2_test(table)
        tests.update(chi2=chi2, p_value=p_value, dof=dof,
                     cramers_v=float(math.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))))
    return comparison, tests


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two count vectors.

    SciPy's ``jensenshannon(p, q, base=2)``, in NumPy: importing
    ``scipy.stats`` and ``scipy.spatial`` would add 46 MB to the command.

    Examples
    --------
    >>> js_distance(np.array([1, 0]), np.array([0, 1])), js_distance(np.array([2, 2]), np.array([1, 1]))
    (1.0, 0.0)
    """
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    entropy = sum(float(np.sum(np.where(x > 0, x * np.log(np.where(x > 0, x, 1) / m), 0.0))) for x in (p, q))
    return math.sqrt(max(entropy / math.log(2) / 2, 0.0))


def chi2_test(table: np.ndarray) -> tuple[float, float, int]:
    """Pearson's chi-square test of independence on a contingency table: statistic, p-value, dof.

    As ``scipy.stats.chi2_contingency`` computes it (Yates' correction when
    dof is 1); only the chi-square survival function comes from SciPy,
    through the light ``scipy.special``.

    Examples
    --------
    >>> [round(v, 6) for v in chi2_test(np.array([[10, 20, 30], [20, 20, 20]]))]
    [5.333333, 0.069483, 2]
    """
    from scipy.special import gammaincc  # 11 MB, and only when splits are compared

    observed = table.astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    if dof == 1:  # Yates: move each count up to 0.5 toward its expectation
        diff = expected - observed
        observed = observed + np.sign(diff) * np.minimum(0.5, np.abs(diff))
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    return chi2, float(gammaincc(dof / 2, chi2 / 2)), dof


def _imbalance(classes: Columns) -> dict[str, Any]:
    things = ~classes["is_background"]
    ids = classes["id"][things]
    result = {}
    for count in COUNTS:
        values = classes[count][things]
        present = values > 0
        entry: dict[str, Any] = {"ratio": None, "max_class": None, "min_class": None,
                                 "absent": ids[~present].tolist()}
        if present.any():
            top, bottom = values[present].argmax(), values[present].argmin()  # the first, in table order
            entry.update(ratio=float(values[present][top] / values[present][bottom]),
                         max_class=int(ids[present][top]), min_class=int(ids[present][bottom]))
        result[count] = entry
    return result


def _alerts(classes: Columns, rare_share: float, rare_images: int, tests: dict[str, Any]
            ) -> list[dict[str, Any]]:
    things = [row for row in _rows(classes) if not row["is_background"]]
    total = sum(row["instances"] for row in things)
    alerts = []
    for row in things:
        class_id, name, instances, images = row["id"], row["name"], row["instances"], row["images"]
        where = {"class_id": class_id, "name": name}
        if instances == 0 and row["crowd"] == 0:
            alerts.append({"code": "class-absent", **where, "message": f"class {class_id} ({name}) has no "
                           "instance in any split"})
            continue
        if total and instances / total < rare_share:
            alerts.append({"code": "class-rare-instances", **where,
                           "message": f"class {class_id} ({name}) has {instances} of {total} instances "
                                      f"({instances / total:.2%} < {rare_share:.0%})"})
        if images < rare_images:
            alerts.append({"code": "class-rare-images", **where,
                           "message": f"class {class_id} ({name}) is in {images} image(s) "
                                      f"(< {rare_images})"})
    names = {row["id"]: row["name"] for row in things}
    for split, absent in tests["absent_from_reference"].items():
        for class_id in absent:
            alerts.append({"code": "class-absent-from-train", "class_id": int(class_id),
                           "name": names[class_id],
                           "split": split, "message": f"class {class_id} ({names[class_id]}) is in split "
                           f"{split!r} but not in {tests['reference']!r}"})
    return alerts
