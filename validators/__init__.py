"""Checks of a dataset's files, schema, geometry, consistency and overlaps, each yielding findings.

A check is a function ``(dataset, context) -> Iterable[Finding]``, registered
in :mod:`segdata.validators._registry` under the stable codes it emits, each
with a default severity; one module per family (``files``, ``schema``,
``geometry``, ``consistency``, ``overlap``).  :func:`validate` runs them;
repairs are separate (:func:`segdata.validators.repair.repair`) and never
happen silently.

Examples
--------
>>> from segdata.model import Annotation, Category, Dataset, ImageRecord
>>> from segdata.masks import Mask
>>> square = Mask.from_polygons([[0, 0, 4, 0, 4, 4, 0, 4]], 8, 8)
>>> dataset = Dataset({1: Category(1, "a")}, [ImageRecord(1, "a.png", 8, 8)],
...                   [Annotation(1, 1, 1, square, attributes={"area": 16, "bbox": [0, 0, 4, 4]})])
>>> [f.code for f in validate(dataset, skip=["file-missing"], workers=1)]
[]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from copy import copy
from dataclasses import replace
from functools import partial
from itertools import chain
from typing import TypeVar

from segdata.errors import UsageError
from segdata.model import SEVERITIES, Annotation, Dataset, Finding, ImageRecord
from segdata.packed import PackedList, pack
from segdata.parallel import map_batches
from segdata.validators import consistency, files, formats, geometry, overlap, schema  # noqa: F401  (they register)
from segdata.validators._registry import CHECKS, CODES, OVERLAP_MODES, Context, ImageJob

__all__ = ["CODES", "FAIL_ON", "OVERLAP_MODES", "fails", "select_codes", "summarize_findings", "validate"]

#: Thresholds for :func:`fails`: the lowest severity that fails, or never.
FAIL_ON = ("error", "warning", "info", "never")
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
C = TypeVar("C")


def select_codes(only: Iterable[str] | None = None, skip: Iterable[str] | None = None) -> frozenset[str]:
    """The codes to report: ``only`` (default: all) minus ``skip``, each checked against the registry.

    Raises
    ------
    UsageError
        A code is not registered; the message lists the known codes, sorted.
    """
    only, skip = (None if only is None else list(only)), list(skip or ())
    unknown = sorted({*(only or ()), *skip} - set(CODES))
    if unknown:
        raise UsageError(f"unknown finding code(s) {', '.join(unknown)}; known codes: {', '.join(sorted(CODES))}")
    return frozenset(CODES if only is None else only) - set(skip)


def validate(
    dataset: Dataset,
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
    overlap_mode: str = "instance",
    min_area: int = 4,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    collect: Callable[[Iterator[Finding]], C] = list,  # type: ignore[assignment]
) -> C:
    """Run every registered check (or the selected ones) and return their findings.

    Parameters
    ----------
    dataset : Dataset
        As a reader returned it; its ``findings`` (defects the reader flagged) are reported too.
    only, skip : iterable of str, optional
        Finding codes to report (default: all) and to leave out.
    overlap_mode : {"instance", "panoptic", "semantic"}
        What the dataset promises about overlaps (see :mod:`segdata.validators.overlap`).
    min_area : int
        Masks with fewer pixels (but at least one) are ``mask-tiny``.
    workers : int, optional
        Processes for the per-image checks (default: all cores).
    progress : callable, optional
        Called with the number of images just finished (one pass for all per-image checks).
    collect : callable, optional
        Given the findings as an iterator, as the checks produce them, returns what ``validate``
        returns (default ``list``).  :class:`segdata.packed.PackedList` holds many compactly, and
        keeps the per-image checks' findings as the workers packed them.

    Returns
    -------
    list of Finding
        In registry order (consistency, files, formats, geometry, overlap, schema), then image order
        (or what ``collect`` made of them).

    Raises
    ------
    UsageError
        An unknown code, overlap mode, or a ``min_area`` below 1.
    """
    codes = select_codes(only, skip)
    if overlap_mode not in OVERLAP_MODES:
        raise UsageError(f"overlap_mode must be one of {', '.join(sorted(OVERLAP_MODES))}, found {overlap_mode!r}")
    if min_area < 1:
        raise UsageError(f"min_area must be at least 1 pixel, found {min_area}")
    context = Context(codes, overlap_mode, min_area, workers, progress)
    if collect is PackedList:  # the packed chunks of the per-image checks are kept as they came
        found: PackedList[Finding] = PackedList()
        for findings in _run_checks(dataset, context):
            found.extend(findings)
        return found  # type: ignore[return-value]
    return collect(chain.from_iterable(_run_checks(dataset, context)))


def _run_checks(dataset: Dataset, context: Context) -> Iterator[Iterable[Finding]]:
    """Each check's selected findings, in registry order; the per-image parts run in one pass, at the first.

    The findings of every part but the one being reported wait, packed, on
    disk: they can number one per overlapping pair of instances.
    """
    checks = [check for check in CHECKS.values() if context.wants(*check.codes)]
    parts = {check.name: part for check in checks if check.image_part and (part := check.image_part(context))}
    held: dict[str, PackedList[Finding]] | None = None
    for check in checks:
        yield (f for f in check.fn(dataset, context) if f.code in context.codes)
        if check.name in parts:
            if held is None:
                held = _per_image_findings(dataset, parts, context)
            yield held.pop(check.name)


def _per_image_findings(dataset: Dataset, parts: dict[str, ImageJob],
                        context: Context) -> dict[str, PackedList[Finding]]:
    held = {name: PackedList(in_memory=0) for name in parts}
    batch = partial(_batch_findings, parts=tuple(parts.values()), codes=context.codes)
    items = dataset.image_items()
    for packed in map_batches(batch, items, workers=context.workers, progress=context.progress):
        for chunk, kept in zip(packed, held.values()):
            if chunk is not None:
                kept.add_packed(*chunk)
    return held


def _batch_findings(jobs: list[tuple[ImageRecord, list[Annotation]]], parts: tuple[ImageJob, ...],
                    codes: frozenset[str]) -> list[tuple[bytes, int] | None]:
    """Every part's selected findings of some images, packed where found: ``(chunk, count)`` or ``None``.

    They can number one per overlapping pair of instances (50k over 20k
    COCO-like images); the command's process keeps them as it receives
    them, without unpickling and packing them again.
    """
    found: list[list[Finding]] = [[] for _ in parts]
    for job in jobs:
        image, anns = job
        if image.defect or not anns:  # nothing for the parts to check
            continue
        for kept, findings in zip(found, _image_findings(job, parts)):
            kept.extend(f for f in findings if f.code in codes)
    return [(pack(findings), len(findings)) if findings else None for findings in found]


def _image_findings(job: tuple[ImageRecord, list[Annotation]],
                    parts: tuple[ImageJob, ...]) -> list[list[Finding]]:
    """Every part's findings of one image, its annotations decoded once (for :func:`_batch_findings`).

    Each mask's RLE is made once for all the parts, on a copy of the mask:
    a dataset held in memory does not keep it (see :meth:`Mask.to_rle`).
    """
    image, anns = job
    measured = [replace(ann, mask=copy(ann.mask)) if ann.mask is not None else ann for ann in anns]
    for ann in measured:
        if ann.mask is not None and ann.defect is None:
            try:
                ann.mask.rle  # noqa: B018  (made and kept on the copy)
            except (ValueError, ArithmeticError):  # the parts meet it as they did before
                pass
    return [part((image, measured)) for part in parts]


def summarize_findings(findings: Iterable[Finding]) -> dict:
    """Counts by severity and by code, the JSON ``summary`` of ``segdata validate``.

    Returns
    -------
    dict
        ``{"total": n, "by_severity": {"error": n, "warning": n, "info": n},
        "by_code": {code: {"severity": s, "count": n}}}``, codes sorted; a code
        that appears with two severities (overlaps by mode) keeps the highest.
    """
    by_severity: Counter[str] = Counter()
    by_code: dict[str, dict] = {}
    for f in findings:
        by_severity[f.severity] += 1
        entry = by_code.setdefault(f.code, {"severity": f.severity, "count": 0})
        entry["count"] += 1
        if _RANK[f.severity] < _RANK[entry["severity"]]:
            entry["severity"] = f.severity
    return {"total": by_severity.total(), "by_severity": {s: by_severity[s] for s in SEVERITIES},
            "by_code": dict(sorted(by_code.items()))}


def fails(findings: Iterable[Finding], fail_on: str = "error") -> bool:
    """True when any finding is at or above ``fail_on`` (``never``: always False).

    Examples
    --------
    >>> fails([Finding("mask-tiny", "warning", "…")], "error"), fails([Finding("mask-tiny", "warning", "…")], "warning")
    (False, True)
    """
    if fail_on not in FAIL_ON:
        raise UsageError(f"fail_on must be one of {', '.join(FAIL_ON)}, found {fail_on!r}")
    if fail_on == "never":
        return False
    return any(_RANK[f.severity] <= _RANK[fail_on] for f in findings)
