"""The check registry: stable finding codes, their default severities, and the run context.

A check is a function ``(dataset, context) -> Iterable[Finding]``.  It is
registered with the codes it may emit, so that ``--only``/``--skip`` can be
checked against a closed list before any work starts, and so that each code
has exactly one default severity, documented in one place.  A check that
looks at each image's annotations registers that work as its
``image_part``: :func:`segdata.validators.validate` runs the parts of all
such checks in one pass over the images, so that each image's annotations
are read and decoded once, not once per check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from segdata.model import SEVERITIES, Annotation, Dataset, Finding, ImageRecord

#: Code -> default severity, for every code any registered check may emit.
CODES: dict[str, str] = {}

#: A check's work on one image: findings from ``(image, its annotations)``.
ImageJob = Callable[[tuple[ImageRecord, list[Annotation]]], list[Finding]]

#: Check name (``module.function``) -> check, in registration order (the order of the report).
CHECKS: dict[str, Check] = {}

OVERLAP_MODES = ("instance", "panoptic", "semantic")


@dataclass(frozen=True)
class Check:
    """A registered check: its function, the codes (with default severities) it emits, its per-image part.

    ``image_part(context)`` returns a picklable ``(image, annotations) -> list
    of findings``, or ``None`` when the context wants none of its codes; its
    findings follow those of ``fn``, in image order.
    """

    name: str
    codes: dict[str, str]
    fn: Callable[[Dataset, Context], Iterable[Finding]]
    image_part: Callable[[Context], ImageJob | None] | None = None


@dataclass(frozen=True)
class Context:
    """What one validation run asked for; handed to every check.

    Parameters
    ----------
    codes : frozenset of str
        The codes selected by ``only``/``skip``; a check skips work whose codes are all unselected.
    overlap_mode : {"instance", "panoptic", "semantic"}
        How overlapping instances are judged (see :mod:`segdata.validators.overlap`).
    min_area : int
        Masks with fewer pixels (but more than none) are ``mask-tiny``.
    workers : int, optional
        Processes for per-image checks (``None``: all cores).
    progress : callable, optional
        Called with the number of images just checked.
    """

    codes: frozenset[str] = field(default_factory=lambda: frozenset(CODES))
    overlap_mode: str = "instance"
    min_area: int = 4
    workers: int | None = None
    progress: Callable[[int], None] | None = None

    def wants(self, *codes: str) -> bool:
        """True when any of ``codes`` is selected."""
        return any(code in self.codes for code in codes)


def register(codes: dict[str, str],
             image_part: Callable[[Context], ImageJob | None] | None = None) -> Callable:
    """Register a check under the codes it emits, each with its default severity (and its per-image part).

    A code belongs to one check only: two checks emitting the same code
    would make ``--skip`` ambiguous and double-count findings.
    """
    for code, severity in codes.items():
        if severity not in SEVERITIES:
            raise ValueError(f"severity of {code!r} must be one of {sorted(SEVERITIES)}, found {severity!r}")

    def decorate(fn: Callable[[Dataset, Context], Iterable[Finding]]) -> Callable:
        name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"
        if name in CHECKS:  # the same module imported under a second name (doctest collection): keep the first
            return fn
        taken = sorted(code for code in codes if code in CODES)
        if taken:
            raise ValueError(f"finding code(s) {', '.join(taken)} already registered by another check")
        CODES.update(codes)
        CHECKS[name] = Check(name, dict(codes), fn, image_part)
        return fn

    return decorate


def reader_findings(dataset: Dataset, codes: Iterable[str]) -> Iterable[Finding]:
    """The reader's findings of ``codes``, with the registry's severity.

    Readers flag records they could not decode (and keep them with a
    ``defect``); checks surface those findings rather than detect the same
    defect a second time from data the reader already refused.
    """
    wanted = set(codes)
    for finding in dataset.findings:
        if finding.code in wanted:
            yield replace(finding, severity=CODES[finding.code], details=dict(finding.details))


def where(split: str, image_id: int | None, annotation_id: int | None = None) -> str:
    """``split image 3, annotation 17``: the location prefix of messages."""
    parts = [f"{split} " if split else ""]
    parts.append(f"image {image_id}" if image_id is not None else "")
    if annotation_id is not None:
        parts.append(f", annotation {annotation_id}" if image_id is not None else f"annotation {annotation_id}")
    return "".join(parts)
