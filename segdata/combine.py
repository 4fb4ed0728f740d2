"""One dataset from several read separately: a COCO JSON or a folder per split.

``segdata stats train.json --split val=val.json`` reads two files; the jobs
(stats, leakage, report) want one :class:`~segdata.model.Dataset` whose
``split`` says where each image came from.  A named part puts every one of
its images, annotations and findings in that split (whatever splits its own
files named); an unnamed part keeps its own splits.  Nothing is renumbered:
ids are kept as the files have them, so a clash is refused, never resolved
silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from segdata.errors import UsageError
from segdata.model import Category, Dataset


def combine_splits(parts: Sequence[tuple[str | None, Dataset, str]]) -> Dataset:
    """Join datasets read separately into one, a named part becoming one split.

    Parameters
    ----------
    parts : sequence of (str or None, Dataset, str)
        ``(split name or None, dataset, source)``; ``None`` keeps the part's
        own splits; ``source`` (a path) names the part in errors.

    Returns
    -------
    Dataset
        Categories in order of first appearance; ``source_format`` the
        parts' common format, or ``""`` when they differ.  The inputs are
        not modified.

    Raises
    ------
    UsageError
        A split given by two parts, one category id named differently by two
        parts, or an image id appearing twice in one split (a named part
        whose files number their images independently, such as a folder of
        several COCO files).

    Examples
    --------
    >>> from segdata.model import ImageRecord
    >>> one = Dataset({1: Category(1, "a")}, [ImageRecord(1, "x.jpg", 4, 2, split="train")], [])
    >>> two = Dataset({1: Category(1, "a")}, [ImageRecord(1, "y.jpg", 4, 2, split="train")], [])
    >>> combine_splits([(None, one, "a.json"), ("val", two, "b.json")]).splits
    ['train', 'val']
    """
    categories: dict[int, Category] = {}
    named_by: dict[int, str] = {}
    split_source: dict[str, str] = {}
    seen: dict[tuple[str, int], str] = {}
    result = Dataset(categories, [], [])
    formats = set()
    for name, part, source in parts:
        formats.add(part.source_format)
        for cat_id, category in part.categories.items():
            known = categories.get(cat_id)
            if known is None:
                categories[cat_id], named_by[cat_id] = category, source
            elif known.name != category.name:
                raise UsageError(f"category {cat_id} is {category.name!r} in {source} but {known.name!r} in "
                                 f"{named_by[cat_id]}; the splits must share one category table")
        own = part.splits if name is None else [name]
        for split in own:
            if split in split_source:
                raise UsageError(f"split {split!r} comes from both {split_source[split]} and {source}")
        for split in own:
            split_source[split] = source
        if name is None:
            images, annotations, findings = part.images, part.annotations, part.findings
            result.meta.update(part.meta)
        else:
            images = [replace(image, split=name) for image in part.images]
            annotations = [replace(ann, split=name) for ann in part.annotations]
            findings = [replace(finding, split=name) for finding in part.findings]
            result.meta[name] = {key: value for meta in part.meta.values() for key, value in meta.items()}
        for image in images:
            key = (image.split, image.id)
            if key in seen:
                raise UsageError(f"image id {image.id} appears twice in split {image.split!r} ({seen[key]}, "
                                 f"{source}); give each file of its own split with --split NAME=PATH")
            seen[key] = source
        result.images.extend(images)
        result.annotations.extend(annotations)
        result.findings.extend(findings)
    result.source_format = formats.pop() if len(formats) == 1 else ""
    return result
