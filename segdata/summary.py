"""What a dataset holds, as a plain dict: the data behind ``segdata info``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from segdata.model import Dataset, annotation_values

#: Version of the JSON object returned by :func:`summarize`; bumped on any incompatible change.
SCHEMA_VERSION = 1


def summarize(dataset: Dataset) -> dict[str, Any]:
    """Counts per split, a category table and the defects found while reading.

    Returns
    -------
    dict
        ``{"schema_version", "format", "splits": {split: {"images", "annotations",
        "crowd", "unannotated_images"}}, "totals": {...}, "categories": [{"id",
        "name", "supercategory", "isthing", "instances": {split: n}}],
        "defects": {code: n}}``; ``annotations`` counts every record read,
        usable or not.
    """
    splits = dataset.splits
    per_split = {s: {"images": 0, "annotations": 0, "crowd": 0, "unannotated_images": 0} for s in splits}
    instances: Counter[tuple[int, str]] = Counter()
    grouped = dataset.annotations_by_image()
    for image in dataset.images:
        per_split[image.split]["images"] += 1
        if not grouped.get((image.split, image.id)):
            per_split[image.split]["unannotated_images"] += 1
    for split, crowd, category_id in zip(*(annotation_values(dataset.annotations, name).tolist()
                                           for name in ("split", "iscrowd", "category_id"))):
        counts = per_split.setdefault(split, {"images": 0, "annotations": 0, "crowd": 0, "unannotated_images": 0})
        counts["annotations"] += 1
        counts["crowd"] += crowd
        instances[(category_id, split)] += 1
    totals = {key: sum(c[key] for c in per_split.values())
              for key in ("images", "annotations", "crowd", "unannotated_images")}
    categories = [
        {"id": c.id, "name": c.name, "supercategory": c.supercategory, "isthing": c.isthing,
         "instances": {s: instances[(c.id, s)] for s in per_split}}
        for c in dataset.categories.values()
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "format": dataset.source_format,
        "splits": per_split,
        "totals": totals,
        "categories": categories,
        "defects": dict(sorted(Counter(f.code for f in dataset.findings).items())),
    }
