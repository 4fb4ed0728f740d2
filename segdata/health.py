"""The whole health check of a dataset: validation, leakage and class statistics, and one verdict.

:func:`check_health` runs the three jobs on **one** loaded dataset, back to
back, and judges the result.  The jobs are not fused into one per-image
pass, because they need nothing of each other's per-image work:

* each image **file** is decoded once, by the leakage fingerprint (a reduced
  JPEG decode); the file check of validation reads only the header (size and
  EXIF orientation), and statistics never open the image files.  Only the two
  images of a near-duplicate candidate pair are decoded again in full, to tell
  ``exact-pixels`` from ``near-duplicate``;
* each image's masks are counted once, by the statistics (RLE unions and
  intersections, :mod:`segdata.compose_counts`); validation also works on
  RLE (pycocotools' C code); nothing paints a map.

What sharing buys is the dataset read once, one process pool start per job
instead of one interpreter per command, and one progress report.

The verdict counts each problem once: a file that validation reports as
missing or unreadable is not counted again by the leakage check.  Instance
overlaps below ``overlap_iou`` are ordinary occlusion in amodal (COCO
``instances``) annotation, and become ``info``: they are listed and counted,
but do not make a dataset unfit.  Class-statistics alerts (rare classes,
classes missing from train) are notes, not findings.

Examples
--------
>>> from segdata.converters import coco
>>> report = check_health(coco.read("sample_datasets/coco"), workers=1)  # doctest: +SKIP
>>> report.verdict["clean"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import PurePath
from typing import Any

from segdata.errors import UsageError
from segdata.model import Dataset, Finding
from segdata.packed import Mapped, PackedList
from segdata.stats import ClassStats, class_stats
from segdata.validators import summarize_findings, validate
from segdata.validators.leakage import LeakageResult, find_leaks

#: Version of the JSON object of :meth:`HealthReport.to_dict`.
SCHEMA_VERSION = 1
#: The jobs, in the order they run; progress is reported per stage.
STAGES = ("validate", "leakage", "stats")
#: Validation codes about an image file; leakage's ``file-unreadable`` for the same image is not counted twice.
_FILE_CODES = frozenset({"file-missing", "file-unreadable", "image-size-mismatch"})


@dataclass
class HealthReport:
    """What :func:`check_health` found.

    Attributes
    ----------
    validation : PackedList of Finding
        :func:`segdata.validators.validate`'s findings, instance overlaps below
        ``overlap_iou`` as ``info``; packed, because they can number several per image.
    leakage : LeakageResult
        :func:`segdata.validators.leakage.find_leaks`'s result, as it returned it.
    stats : ClassStats
        :func:`segdata.stats.class_stats`'s result.
    verdict : dict
        See :func:`judge`.
    settings : dict
        The options used.
    """

    validation: PackedList[Finding]
    leakage: LeakageResult
    stats: ClassStats
    verdict: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    def findings(self) -> Iterator[Finding]:
        """Every finding once: validation's, then leakage's (minus files validation already reported)."""
        return merge_findings(self.validation, self.leakage.findings)

    def to_dict(self, stats: dict[str, Any] | None = None, *, lazy: bool = False) -> dict[str, Any]:
        """The JSON form: verdict, settings, and each job's own JSON object under its name.

        ``stats`` is ``self.stats.to_dict()`` when the caller already has it.  ``lazy``
        gives validation's findings as a :class:`~segdata.packed.Mapped` view instead of a list, for
        :func:`segdata.report.write_json` to stream without holding them all as dicts.
        """
        findings = Mapped(Finding.to_dict, self.validation)
        return {
            "schema_version": SCHEMA_VERSION,
            "verdict": self.verdict,
            "settings": self.settings,
            "validate": {"findings": findings if lazy else list(findings),
                         "summary": summarize_findings(self.validation)},
            "leakage": self.leakage.to_dict(),
            "stats": self.stats.to_dict() if stats is None else stats,
        }


def stage_totals(dataset: Dataset) -> dict[str, int]:
    """Work units of each stage (its images: each stage makes one pass over them), for a progress bar.

    :func:`check_health` reports exactly this many units per stage.
    """
    n = len(dataset.images)
    return dict.fromkeys(STAGES, n)


def merge_findings(validation: Iterable, leakage: list) -> Iterator:
    """Validation's findings, then leakage's, without a second finding for an image file already reported.

    Works on :class:`Finding` objects and on their JSON dicts alike (the HTML page merges the dicts).
    ``validation`` is iterated twice: it must be a collection or a view, not an iterator.
    """
    def get(f: Any, key: str) -> Any:
        return f[key] if isinstance(f, dict) else getattr(f, key)

    def not_reported(f: Any) -> bool:
        return not (get(f, "code") == "file-unreadable" and (get(f, "split"), get(f, "image_id")) in reported)

    reported = {(get(f, "split"), get(f, "image_id")) for f in validation if get(f, "code") in _FILE_CODES}
    return chain(validation, filter(not_reported, leakage))


def _demote_overlaps(findings: Iterable[Finding], overlap_iou: float) -> Iterator[Finding]:
    return (replace(f, severity="info") if f.code == "instance-overlap" and f.severity == "warning"
            and f.details.get("iou", 1.0) < overlap_iou else f for f in findings)


def judge(findings: Iterable[Finding], leakage_summary: dict[str, Any],
          stats: dict[str, Any]) -> dict[str, Any]:
    """The verdict: counts by severity, leaked evaluation images, the rarest class, and one line.

    Parameters
    ----------
    findings : iterable of Finding
        Every finding once (:func:`merge_findings`).
    leakage_summary : dict
        ``LeakageResult.summary``.
    stats : dict
        ``ClassStats.to_dict()``.

    Returns
    -------
    dict
        ``{"clean", "errors", "warnings", "info", "leaked_images", "leaked": {split: {"images",
        "leaking", "share"}}, "rarest_class": {"id", "name", "pixels", "pixel_share"} or None,
        "alerts", "line"}``.  ``clean`` means no error and no warning (so no leak between splits).
    """
    severities = Counter(f.severity for f in findings)
    counts = {s: severities[s] for s in ("error", "warning", "info")}
    leaked = {split: dict(entry) for split, entry in leakage_summary["evaluation"].items()}
    leaked_images = sum(entry["leaking"] for entry in leaked.values())
    categories = [row for row in stats["classes"] if not row["is_background"]]
    rarest = min(categories, key=lambda row: (row["pixels"], row["id"]), default=None)
    rarest_class = None if rarest is None else {
        "id": rarest["id"], "name": rarest["name"], "pixels": rarest["pixels"],
        "pixel_share": rarest["pixel_share_all"] or 0.0}
    clean = counts["error"] == 0 and counts["warning"] == 0
    verdict = {"clean": clean, "errors": counts["error"], "warnings": counts["warning"], "info": counts["info"],
               "leaked_images": leaked_images, "leaked": leaked, "rarest_class": rarest_class,
               "alerts": len(stats["alerts"])}
    verdict["line"] = verdict_line(verdict)
    return verdict


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def verdict_line(verdict: dict[str, Any]) -> str:
    """``3 errors, 12 warnings, 4 leaked images (test 2 of 96, 2.1%), rarest class 'kite' has 0.03% of pixels``.

    Examples
    --------
    >>> verdict_line({"clean": True, "errors": 0, "warnings": 0, "leaked_images": 0, "leaked": {},
    ...               "rarest_class": {"name": "kite", "pixels": 30, "pixel_share": 0.0003}})
    "clean: 0 errors, 0 warnings, no leaked images, rarest class 'kite' has 0.03% of pixels"
    """
    parts = [_plural(verdict["errors"], "error"), _plural(verdict["warnings"], "warning")]
    if verdict["leaked_images"]:
        where = ", ".join(f"{split} {e['leaking']:,} of {e['images']:,}, {e['share']:.1%}"
                          for split, e in verdict["leaked"].items() if e["leaking"])
        parts.append(f"{_plural(verdict['leaked_images'], 'leaked image')} ({where})")
    else:
        parts.append("no leaked images")
    rarest = verdict["rarest_class"]
    if rarest is not None:
        share = "no pixels" if not rarest["pixels"] else f"{rarest['pixel_share']:.2%} of pixels"
        parts.append(f"rarest class '{rarest['name']}' has {share}")
    return ("clean: " if verdict["clean"] else "not clean: ") + ", ".join(parts)


def next_steps(report: dict[str, Any], path: str) -> list[str]:
    """Where to look next, most urgent first: one sentence or one ``segdata`` command per line.

    Parameters
    ----------
    report : dict
        :meth:`HealthReport.to_dict`.
    path : str
        The dataset as the user named it, for the commands.
    """
    verdict, steps = report["verdict"], []
    quoted = shlex.quote(path)
    codes = report["validate"]["summary"]["by_code"]
    serious = sorted(code for code, entry in codes.items() if entry["severity"] != "info")
    if serious:
        steps.append(f"Validation found {', '.join(serious)}; each finding names split, image and annotation:")
        steps.append(f"segdata validate {quoted} --only {','.join(serious)}")
        steps.append(f"segdata validate {quoted} --fix {PurePath(path).name}-fixed  "
                     "# recomputes bbox/area, repairs polygons, drops duplicates; lists each change")
    if verdict["leaked_images"] or report["leakage"]["summary"]["leak_pairs"]:
        steps.append("Images are shared between splits; evaluation scores on them are inflated:")
        steps.append(f"segdata leakage {quoted} --dry-run --resolve move-to-train")
    if verdict["alerts"]:
        steps.append(f"{_plural(verdict['alerts'], 'class alert')} (rare or missing classes); "
                     "the weights table suggests loss weights, and a re-split keeps rare classes in every split:")
        steps.append(f"segdata stats {quoted} --by instances --plots plots/")
    if not steps:
        steps.append("Nothing to fix. The JSON form of this report (--json) is stable, for CI.")
    return steps


def check_health(
    dataset: Dataset,
    *,
    overlap_iou: float = 0.3,
    cache_dir: str | PurePath | None = None,
    workers: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> HealthReport:
    """Validate, look for leaks between splits and count classes, on one loaded dataset.

    Parameters
    ----------
    dataset : Dataset
        As a reader returned it; images need ``path`` for the file checks and fingerprints.
    overlap_iou : float
        Instance overlaps with a lower IoU are ``info`` (occlusion), not warnings; 0 keeps every one a warning.
    cache_dir : path, optional
        Fingerprint cache folder for the leakage check (``None``: no cache, nothing written).
    workers : int, optional
        Processes for the per-image work of each job (default: all cores).
    progress : callable, optional
        Called as ``progress(stage, units)``; each stage of :data:`STAGES` reports
        :func:`stage_totals` units in all.

    Returns
    -------
    HealthReport

    Raises
    ------
    UsageError
        ``overlap_iou`` outside [0, 1].
    """
    if not 0.0 <= overlap_iou <= 1.0:
        raise UsageError(f"overlap_iou must be in [0, 1], found {overlap_iou}")
    totals = stage_totals(dataset)
    done = dict.fromkeys(STAGES, 0)

    def reporter(stage: str) -> Callable[[int], None] | None:
        if progress is None:
            return None

        def advance(units: int) -> None:
            units = min(units, totals[stage] - done[stage])  # never past the stage's share of the bar
            if units > 0:
                done[stage] += units
                progress(stage, units)
        return advance

    def finish(stage: str) -> None:
        if progress is not None and done[stage] < totals[stage]:
            progress(stage, totals[stage] - done[stage])
            done[stage] = totals[stage]

    validation = validate(dataset, workers=workers, progress=reporter("validate"),
                          collect=lambda found: PackedList(_demote_overlaps(found, overlap_iou)))
    finish("validate")
    leakage = find_leaks(dataset, cache_dir=cache_dir, workers=workers, progress=reporter("leakage"))
    finish("leakage")
    stats = class_stats(dataset, workers=workers, progress=reporter("stats"))
    finish("stats")
    verdict = judge(merge_findings(validation, leakage.findings), leakage.summary, stats.to_dict())
    return HealthReport(validation, leakage, stats, verdict,
                        {"overlap_iou": overlap_iou, "overlap_mode": "instance",
                         "cache_dir": None if cache_dir is None else str(cache_dir)})
