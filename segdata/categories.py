"""Category-id control for conversions: keep ids, renumber them, or map them through a file.

Ids are kept exactly unless asked otherwise (pitfall 23: tools that silently
renumber break every model trained on the old ids).  Two things are decided
here on purpose rather than by accident (pitfall 22): labelme's
``_background_`` marker category is not a class, and a map file may merge
or drop categories, every affected annotation being reported.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from segdata.errors import FormatError, UsageError
from segdata.io import read_json
from segdata.model import Category, Change, Dataset, annotation_values
from segdata.stored import StoredAnnotations

#: ``keep`` the source ids; renumber in id order from 0 or from 1.
ID_MODES = ("keep", "contiguous0", "contiguous1")
#: Category names that mark the background rather than name a class (labelme, VOC exports).
BACKGROUND_NAMES = ("_background_",)


def read_category_map(path: str | Path) -> dict[str, Any]:
    """Read a category map: a JSON object from source id or name to a target.

    A target is a new id (``3``), ``null`` (drop the category and its
    annotations) or ``{"id": 3, "name": "vehicle"}`` (renumber and rename).
    Several sources may share a target id: they are merged.

    Raises
    ------
    FormatError
        Not a JSON object, or a target of another shape (named by its key).
    """
    mapping = read_json(path)
    if not isinstance(mapping, dict):
        raise FormatError(f"a category map must be a JSON object, found {type(mapping).__name__}", path=path)
    for key, target in mapping.items():
        if target is None or (isinstance(target, int) and not isinstance(target, bool)):
            continue
        if isinstance(target, dict) and isinstance(target.get("id"), int) and \
                isinstance(target.get("name", ""), str) and set(target) <= {"id", "name"}:
            continue
        raise FormatError(f"target must be an integer id, null or {{\"id\": int, \"name\": str}}, found "
                          f"{target!r}", path=path, record=f"key {key!r}")
    return mapping


def remap_categories(dataset: Dataset, *, ids: str = "keep",
                     mapping: dict[str, Any] | None = None) -> tuple[Dataset, list[Change]]:
    """A dataset whose categories follow ``mapping`` then ``ids``, and the change to each annotation.

    Parameters
    ----------
    dataset : Dataset
        Left unchanged.
    ids : {"keep", "contiguous0", "contiguous1"}
        After the mapping, keep ids or renumber them in id order.
    mapping : dict, optional
        From :func:`read_category_map`; keys are source ids (as strings) or names.
        Categories it does not name keep their id.

    Returns
    -------
    Dataset, list of Change
        ``category-remapped`` and ``dropped`` changes per annotation, and a
        ``category-dropped`` change (no image) for a dropped category.

    Raises
    ------
    UsageError
        An unknown mode, or a map key that names no category (a typo would
        otherwise silently keep the category).

    Examples
    --------
    >>> from segdata.model import Annotation
    >>> data = Dataset({4: Category(4, "cat"), 9: Category(9, "dog")}, [], [Annotation(1, 1, 9, None)])
    >>> remapped, changes = remap_categories(data, ids="contiguous1")
    >>> sorted(remapped.categories), remapped.annotations[0].category_id, changes[0].detail
    ([1, 2], 2, '9 (dog) -> 2 (dog)')
    """
    if ids not in ID_MODES:
        raise UsageError(f"category ids must be one of {', '.join(ID_MODES)}; found {ids!r}")
    category_ids = annotation_values(dataset.annotations, "category_id")
    used = set(np.unique(category_ids).tolist())
    changes: list[Change] = []
    target: dict[int, Category | None] = {}  # source id -> new category, None = dropped
    for category in dataset.categories.values():
        if category.name in BACKGROUND_NAMES and category.id not in used:
            target[category.id] = None
            changes.append(Change("category-dropped", "", None, None, f"category {category.id} "
                                  f"{category.name!r} marks the background, it is not a class"))
        else:
            target[category.id] = replace(category)  # a copy: a map may rename it
    if mapping:
        _apply_map(dataset, mapping, target, changes)
    if ids != "keep":
        kept = sorted({c.id for c in target.values() if c is not None})
        new_id = {old: index for index, old in enumerate(kept, start=0 if ids == "contiguous0" else 1)}
        target = {source: None if c is None else replace(c, id=new_id[c.id]) for source, c in target.items()}
    categories = {c.id: c for c in target.values() if c is not None}
    new_of = {}  # source id -> new id (None: dropped), for the ids that change
    for source in used:
        new = target.get(source, dataset.categories.get(source))
        if new is None or new.id != source:
            new_of[source] = None if new is None else new.id
    if not new_of:
        return replace(dataset, categories=dict(sorted(categories.items()))), changes
    rows = np.flatnonzero(np.isin(category_ids, list(new_of)))
    where = zip(*(annotation_values(dataset.annotations, name)[rows].tolist()
                  for name in ("split", "image_id", "id")))
    for source, (split, image_id, ann_id) in zip(category_ids[rows].tolist(), where):
        new_id = new_of[source]
        if new_id is None:
            changes.append(Change("dropped", split, image_id, ann_id,
                                  f"category {source} is dropped by the category map"))
        else:
            changes.append(Change("category-remapped", split, image_id, ann_id, f"{source} "
                                  f"({dataset.categories[source].name}) -> {new_id} ({categories[new_id].name})"))
    new_ids = category_ids.astype(np.int64)  # a copy
    for source, new_id in new_of.items():
        if new_id is not None:
            new_ids[category_ids == source] = new_id
    kept = ~np.isin(category_ids, [source for source, new_id in new_of.items() if new_id is None])
    if isinstance(dataset.annotations, StoredAnnotations):
        annotations = dataset.annotations.select(np.flatnonzero(kept), new_ids[kept])
    else:
        pairs = zip(dataset.annotations, new_ids.tolist(), kept.tolist())
        annotations = [ann if ann.category_id == new_id else replace(ann, category_id=new_id)
                       for ann, new_id, keep in pairs if keep]
    return replace(dataset, categories=dict(sorted(categories.items())), annotations=annotations,
                   _by_image=None), changes


def _apply_map(dataset: Dataset, mapping: dict[str, Any], target: dict[int, Category | None],
               changes: list[Change]) -> None:
    by_key = {str(c.id): c for c in dataset.categories.values()}
    for category in dataset.categories.values():
        by_key.setdefault(category.name, category)
    unknown = [key for key in mapping if key not in by_key]
    if unknown:
        raise UsageError(f"the category map names {unknown[0]!r}, which is neither the id nor the name of a "
                         f"category (known: {', '.join(sorted(by_key, key=str)[:12])})")
    mapped = {by_key[key].id for key in mapping}
    # a target id that an unmapped category already has merges into that category
    merged = {c.id: c for source, c in target.items() if c is not None and source not in mapped}
    for key, value in mapping.items():
        source = by_key[key]
        if value is None:
            target[source.id] = None
            changes.append(Change("category-dropped", "", None, None, f"category {source.id} {source.name!r} "
                                  "dropped by the category map"))
            continue
        new_id, name = (value, source.name) if isinstance(value, int) else (value["id"], value.get("name", source.name))
        # the first source mapped to an id names the merged category, unless the map names it
        first = merged.setdefault(new_id, replace(source, id=new_id, name=name))
        if isinstance(value, dict) and "name" in value:
            first.name = name
        target[source.id] = first
