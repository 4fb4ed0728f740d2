"""Paint one image's instances into a class map, an instance-id map and panoptic segments.

Overlapping instances have no standard resolution (labelme paints later on
top, Ultralytics smaller on top, panopticapi refuses), so the rule is an
explicit :data:`OVERLAP_POLICIES` choice and every contested pixel is counted
in an :class:`ImageComposeReport`.

How it is fast: no instance is ever decoded to a full-image bitmap.  Each
mask's COCO RLE (pycocotools' C rasterizer, the one polygon rule) is turned
into runs by segdata's one RLE codec and painted only inside its bounding
box.  A policy is an order: instances are painted from the highest priority
down, and a pixel keeps the first instance that reaches it, so that the
contested pixels (already owned when another instance arrives) fall out of
the same pass.  Rasterizing shifted polygons straight into the box would be
cheaper, but pycocotools' interpolation rounds differently at other offsets
(about 0.2 % of random polygons differ by a pixel), so it is not used.

Layering, bottom to top: background, crowd regions, non-crowd instances (by
policy), then void (the image's own void region, contested pixels under
``overlap="void"``, crowd regions under ``crowd="void"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segdata.errors import SegdataError, UsageError
from segdata.masks import crops
from segdata.model import Annotation, Category, ImageRecord

#: How a pixel covered by several non-crowd instances is decided.
OVERLAP_POLICIES = ("error", "larger-on-top", "later-wins", "score", "smaller-on-top", "void")
#: What crowd regions become: void, painted under the instances, or ignored.
CROWD_POLICIES = ("paint", "skip", "void")
#: What an annotation the reader flagged as unusable does: stop the job, or be skipped and counted.
ON_INVALID = ("raise", "skip")

_MAX_PNG_VALUE = 65535


class ComposeError(SegdataError, ValueError):
    """An image's annotations cannot be painted (size mismatch, unknown class, refused overlap)."""


@dataclass(slots=True)
class ImageComposeReport:
    """What painting one image decided.

    ``contested_px`` counts pixels covered by two or more non-crowd instances;
    each was either won under the policy's rule (``won_by_policy_px``), won by
    annotation order because the rule tied (``won_by_order_px``), or made
    void (``voided_px``).  ``hidden_annotation_ids`` are non-empty instances
    with no pixel left visible.
    """

    split: str
    image_id: int
    instances: int = 0
    crowd_instances: int = 0
    contested_px: int = 0
    won_by_policy_px: int = 0
    won_by_order_px: int = 0
    voided_px: int = 0
    crowd_px: int = 0
    void_px: int = 0
    hidden_annotation_ids: list[int] = field(default_factory=list)
    skipped_annotation_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class ComposeSettings:
    """Validated options of a composition, shared by every image of a dataset.

    Build it with :func:`settings`; ``class_dtype`` holds every category id,
    the void value and the background value.
    """

    overlap: str
    crowd: str
    void_value: int
    background_value: int
    on_invalid: str
    category_ids: frozenset[int]
    class_dtype: type


@dataclass(slots=True)
class ComposedMaps:
    """One image's maps.

    ``class_map`` holds category ids, ``background_value`` and ``void_value``;
    ``instance_map`` holds ``1 + position`` of the annotation in the image's
    annotation list (0 = no instance: background, void or a voided crowd);
    ``source_areas[value]`` is the pixel count of that annotation's whole mask.
    """

    class_map: np.ndarray
    instance_map: np.ndarray
    annotations: list[Annotation]
    report: ImageComposeReport
    boxes_xyxy: dict[int, tuple[int, int, int, int]]
    source_areas: np.ndarray
    _visible: np.ndarray | None = field(default=None, repr=False)

    def visible_areas(self) -> np.ndarray:
        """Visible pixels of each annotation, indexed by its instance value (index 0 unused).

        Counted inside each instance's box, not over the whole map: the
        boxes of an image's instances cover far fewer pixels than a
        full-image histogram per image.
        """
        if self._visible is None:
            areas = np.zeros(len(self.annotations) + 1, np.int64)
            for value, (x0, y0, x1, y1) in self.boxes_xyxy.items():
                areas[value] = np.count_nonzero(self.instance_map[y0:y1, x0:x1] == value)
            self._visible = areas
        return self._visible

    def segments_info(self) -> list[dict[str, Any]]:
        """COCO panoptic ``segments_info`` of the visible instances; segment id = instance value.

        ``bbox`` and ``area`` are those of the visible pixels, as panopticapi
        computes them; instances with no visible pixel are left out, since a
        segment listed but absent from the PNG is an error to panopticapi.
        """
        segments = []
        for value, (x0, y0, x1, y1) in sorted(self.boxes_xyxy.items()):
            visible = self.instance_map[y0:y1, x0:x1] == value
            area = int(np.count_nonzero(visible))
            if area == 0:
                continue
            rows = np.flatnonzero(visible.any(axis=1))
            cols = np.flatnonzero(visible.any(axis=0))
            ann = self.annotations[value - 1]
            segments.append({"id": value, "category_id": ann.category_id, "area": area,
                             "bbox": [x0 + int(cols[0]), y0 + int(rows[0]), int(cols[-1] - cols[0] + 1),
                                      int(rows[-1] - rows[0] + 1)],
                             "iscrowd": int(ann.iscrowd)})
        return segments


def settings(
    categories: Mapping[int, Category] | Sequence[int],
    *,
    overlap: str = "smaller-on-top",
    crowd: str = "void",
    void_value: int = 255,
    background_value: int = 0,
    on_invalid: str = "raise",
) -> ComposeSettings:
    """Check the options against the categories once, before any image is painted.

    A category id equal to the background or void value would be
    indistinguishable from it in the class map (pitfalls 20–22), so it is
    refused rather than silently merged.

    Raises
    ------
    UsageError
        An unknown policy, a negative value, background equal to void, a
        category id equal to either, or a value above 65535 (16-bit PNG).
    """
    for name, value, choices in (("overlap", overlap, OVERLAP_POLICIES), ("crowd", crowd, CROWD_POLICIES),
                                 ("on_invalid", on_invalid, ON_INVALID)):
        if value not in choices:
            raise UsageError(f"{name} must be one of {', '.join(choices)}; found {value!r}")
    for name, value in (("void_value", void_value), ("background_value", background_value)):
        if not 0 <= value <= _MAX_PNG_VALUE:
            raise UsageError(f"{name} must be in 0..{_MAX_PNG_VALUE} (a 16-bit PNG value), found {value}")
    if void_value == background_value:
        raise UsageError(f"void_value and background_value are both {void_value}; they must differ")
    ids = frozenset(categories)
    for cat_id in sorted(ids):
        if cat_id == background_value:
            raise UsageError(f"category {cat_id} has the background value {background_value}; pass another "
                             "background value (e.g. --background-value 254) so class and background differ")
        if cat_id == void_value:
            raise UsageError(f"category {cat_id} has the void value {void_value}; pass another void value "
                             "(e.g. --void-value 65535)")
        if not 0 <= cat_id <= _MAX_PNG_VALUE:
            raise UsageError(f"category {cat_id} does not fit a 16-bit class map (0..{_MAX_PNG_VALUE})")
    largest = max([void_value, background_value, *ids])
    return ComposeSettings(overlap, crowd, void_value, background_value, on_invalid, ids,
                           np.uint8 if largest <= 255 else np.uint16)


def compose_image(image: ImageRecord, annotations: Sequence[Annotation], config: ComposeSettings) -> ComposedMaps:
    """Paint one image's annotations into its class map and instance-id map.

    Parameters
    ----------
    image : ImageRecord
        Gives ``(height, width)`` and the optional ``void`` region.
    annotations : sequence of Annotation
        The image's annotations in file order; their position (1-based) is
        their value in the instance-id map.
    config : ComposeSettings
        From :func:`settings`.

    Returns
    -------
    ComposedMaps
        ``class_map`` of shape (H, W) and dtype ``config.class_dtype``;
        ``instance_map`` of shape (H, W), uint16 (uint32 above 65535 annotations).

    Raises
    ------
    ComposeError
        A mask whose size differs from the image, an unknown category, an
        unusable annotation under ``on_invalid="raise"``, a missing score
        under ``overlap="score"``, or any overlap under ``overlap="error"``.

    Examples
    --------
    >>> from segdata.masks import Mask
    >>> image = ImageRecord(1, "a.jpg", width=4, height=2)
    >>> box = lambda x0, x1: Mask.from_polygons([[x0, 0, x1, 0, x1, 2, x0, 2]], 2, 4)
    >>> anns = [Annotation(7, 1, 1, box(0, 3)), Annotation(8, 1, 2, box(2, 4))]
    >>> maps = compose_image(image, anns, settings([1, 2]))
    >>> maps.class_map.tolist(), maps.report.contested_px
    ([[1, 1, 2, 2], [1, 1, 2, 2]], 2)
    """
    height, width = image.height, image.width
    report = ImageComposeReport(image.split, image.id)
    instance_dtype = np.uint16 if len(annotations) <= _MAX_PNG_VALUE else np.uint32
    owner = np.zeros((height, width), instance_dtype)
    things, crowds = [], []  # (value, annotation, x0, y0, crop)
    usable = [(value, ann) for value, ann in enumerate(annotations, start=1) if _usable(image, ann, config, report)]
    if config.crowd == "skip":
        report.skipped_annotation_ids.extend(ann.id for _v, ann in usable if ann.iscrowd)
        usable = [(value, ann) for value, ann in usable if not ann.iscrowd]
    for (value, ann), crop in zip(usable, crops([ann.mask for _v, ann in usable])):
        (crowds if ann.iscrowd else things).append((value, ann, *crop))
    report.instances, report.crowd_instances = len(things), len(crowds)

    class_map = np.full((height, width), config.background_value, config.class_dtype)
    contested, losers = _paint_things(image, things, owner, class_map, config, report)
    void = None if contested is None or config.overlap != "void" else contested
    if void is not None:
        owner[void] = 0
    crowd_region = np.zeros((height, width), bool) if crowds else None
    for value, ann, x0, y0, crop in reversed(crowds):  # among crowds the later one is on top
        box = (slice(y0, y0 + crop.shape[0]), slice(x0, x0 + crop.shape[1]))
        free = crop & (owner[box] == 0)
        if void is not None:
            free &= ~void[box]
        crowd_region[box] |= free
        if config.crowd == "paint":
            owner[box][free] = value
            class_map[box][free] = ann.category_id
    if crowd_region is not None and config.crowd == "void":
        void = crowd_region if void is None else void | crowd_region
    if image.void is not None:
        image_void = _image_void(image)
        void = image_void if void is None else void | image_void
        if crowd_region is not None:
            crowd_region &= ~image_void
        owner[image_void] = 0
    report.crowd_px = 0 if crowd_region is None else int(np.count_nonzero(crowd_region))
    if void is not None:
        class_map[void] = config.void_value
        report.void_px = int(np.count_nonzero(void))
    boxes = {value: (x0, y0, x0 + crop.shape[1], y0 + crop.shape[0]) for value, _a, x0, y0, crop in things + crowds}
    # only an instance that lost pixels (or any, once void was laid over them) can be hidden
    suspects = things if void is not None else [t for t in things if t[0] in losers]
    report.hidden_annotation_ids = sorted(
        (ann.id for value, ann, x0, y0, crop in suspects
         if crop.any() and not (owner[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]][crop] == value).any()),
        key=[a.id for a in annotations].index)
    areas = np.zeros(len(annotations) + 1, np.int64)
    for value, _a, _x, _y, crop in things + crowds:
        areas[value] = np.count_nonzero(crop)
    return ComposedMaps(class_map, owner, list(annotations), report, boxes, areas)


def _usable(image: ImageRecord, ann: Annotation, config: ComposeSettings, report: ImageComposeReport) -> bool:
    where = f"annotation {ann.id} (image {image.id}{', split ' + image.split if image.split else ''})"
    if ann.defect is not None or ann.mask is None:
        if config.on_invalid == "skip":
            report.skipped_annotation_ids.append(ann.id)
            return False
        raise ComposeError(f"annotation is unusable ({ann.defect or 'no mask'}); fix it, or skip such "
                           "records with on_invalid='skip' (--on-invalid skip)", record=where)
    if ann.category_id not in config.category_ids:
        raise ComposeError(f"category {ann.category_id} is not in the dataset's categories "
                           f"(known: {_few(config.category_ids)})", record=where)
    if ann.mask.shape_hw != (image.height, image.width):
        height, width = ann.mask.shape_hw
        raise ComposeError(f"mask is {height}×{width} (height×width) but the image is "
                           f"{image.height}×{image.width}", record=where)
    if config.overlap == "score" and not ann.iscrowd and ann.score is None:
        raise ComposeError("overlap='score' needs a score on every instance; this one has none",
                           record=where)
    return True


def _few(ids: frozenset[int]) -> str:
    listed = sorted(ids)
    return ", ".join(map(str, listed[:10])) + (f", … ({len(listed)} in all)" if len(listed) > 10 else "")


def _priority(ann: Annotation, crop: np.ndarray, overlap: str) -> float:
    if overlap == "smaller-on-top":
        return -float(np.count_nonzero(crop))
    if overlap == "larger-on-top":
        return float(np.count_nonzero(crop))
    if overlap == "score":
        return float(ann.score)
    return 0.0  # later-wins, void, error: file order alone


def _paint_things(image: ImageRecord, things: list, owner: np.ndarray, class_map: np.ndarray,
                  config: ComposeSettings, report: ImageComposeReport) -> tuple[np.ndarray | None, set[int]]:
    """Paint non-crowd instances first-come-first-kept, highest priority first.

    Returns the contested map (None when nothing overlapped) and the values of
    the instances that lost pixels.
    """
    overlap = config.overlap
    priorities = np.zeros(max((t[0] for t in things), default=0) + 1, np.float64)
    for value, ann, _x, _y, crop in things:
        priorities[value] = _priority(ann, crop, overlap)
    # highest priority first; among equal priorities the later annotation first (it wins the tie)
    order = sorted(things, key=lambda t: (priorities[t[0]], t[0]), reverse=overlap != "error")
    contested = tied = None
    losers: set[int] = set()
    for value, ann, x0, y0, crop in order:
        box = (slice(y0, y0 + crop.shape[0]), slice(x0, x0 + crop.shape[1]))
        owned = owner[box]
        taken = crop & (owned != 0)
        if taken.any():
            if overlap == "error":
                other = int(owned[taken][0])
                raise ComposeError(
                    f"annotations {_annotation_id(things, other)} and {ann.id} overlap on "
                    f"{int(np.count_nonzero(taken))} pixels; overlap='error' refuses to decide (choose "
                    f"one of {', '.join(p for p in OVERLAP_POLICIES if p != 'error')})",
                    record=f"image {image.id}{', split ' + image.split if image.split else ''}")
            if contested is None:
                contested = np.zeros(owner.shape, bool)
                tied = np.zeros(owner.shape, bool)
            contested[box] |= taken
            if overlap in ("smaller-on-top", "larger-on-top", "score"):
                tied[box] |= taken & (priorities[owned] == priorities[value])
            losers.add(value)
            free = crop & ~taken
            owned[free] = value
            class_map[box][free] = ann.category_id
        else:
            owned[crop] = value
            class_map[box][crop] = ann.category_id
    if contested is not None:
        report.contested_px = int(np.count_nonzero(contested))
        if overlap == "void":
            report.voided_px = report.contested_px
        else:
            report.won_by_order_px = int(np.count_nonzero(tied))
            report.won_by_policy_px = report.contested_px - report.won_by_order_px
    return contested, losers


def _annotation_id(things: list, value: int) -> int:
    return next(ann.id for v, ann, *_ in things if v == value)


def _image_void(image: ImageRecord) -> np.ndarray:
    void = np.zeros((image.height, image.width), bool)
    x0, y0, crop = image.void.to_crop()
    void[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    return void


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic ids from an (H, W, 3) image: id = R + 256·G + 256²·B."""
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_ids` (ids below 2²⁴)."""
    ids = ids.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def report_totals(reports: Iterable[ImageComposeReport]) -> dict[str, Any]:
    """Sum per-image reports into the totals a command prints (JSON-ready, stable keys); one pass, so that
    reports held packed are unpacked once."""
    keys = ("instances", "crowd_instances", "contested_px", "won_by_policy_px", "won_by_order_px",
            "voided_px", "crowd_px", "void_px")
    totals: dict[str, Any] = dict.fromkeys(keys, 0)
    totals.update(images=0, images_with_contested_px=0, hidden=[], skipped=[])
    for r in reports:
        for key in keys:
            totals[key] += getattr(r, key)
        totals["images"] += 1
        totals["images_with_contested_px"] += bool(r.contested_px)
        totals["hidden"] += [{"split": r.split, "image_id": r.image_id, "annotation_id": a}
                             for a in r.hidden_annotation_ids]
        totals["skipped"] += [{"split": r.split, "image_id": r.image_id, "annotation_id": a}
                              for a in r.skipped_annotation_ids]
    return totals


def report_dict(report: ImageComposeReport) -> dict[str, Any]:
    """The JSON form of one image's report."""
    return asdict(report)
