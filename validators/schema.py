"""Schema checks: unique ids, references that resolve, categories that are used.

Duplicate ids and dangling references are found by the reader while it
builds the model (it has to: the second record with an id cannot be keyed);
these checks surface the reader's findings instead of looking again, so
that each defect is reported once, by the code that saw the raw record.
``category-unused`` is the one fact only the whole dataset can tell.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from segdata.model import Dataset, Finding, annotation_values
from segdata.validators._registry import CODES, Context, reader_findings, register

_FROM_READER = ("image-id-duplicate", "annotation-id-duplicate", "image-ref-unknown", "category-unknown")


@register({"image-id-duplicate": "error", "annotation-id-duplicate": "error",
           "image-ref-unknown": "error", "category-unknown": "error", "category-unused": "info"})
def check_schema(dataset: Dataset, context: Context) -> Iterable[Finding]:
    """Ids and references as the reader found them, then categories no annotation uses."""
    yield from reader_findings(dataset, [c for c in _FROM_READER if c in context.codes])
    if not context.wants("category-unused"):
        return
    used = set(np.unique(annotation_values(dataset.annotations, "category_id")).tolist())  # no list a row
    for category in dataset.categories.values():
        if category.id not in used:
            yield Finding("category-unused", CODES["category-unused"],
                          f"category {category.id} ({category.name!r}) is defined but no annotation uses it",
                          details={"category_id": category.id, "name": category.name})
