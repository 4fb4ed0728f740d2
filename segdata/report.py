"""Turn results into terminal tables and JSON; the only library module that knows rich."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from segdata.io import dumps_json


def write_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (sorted keys) on stdout."""
    sys.stdout.buffer.write(dumps_json(obj, indent=True) + b"\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields the callback library jobs call with items done."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)


def render_summary(summary: dict[str, Any], console: Console) -> None:
    """Counts per split, then the category table, then defects found while reading."""
    splits = list(summary["splits"])
    table = Table(title=f"{summary['format']} dataset", title_justify="left")
    for column in ("split", "images", "annotations", "crowd", "unannotated images"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, counts in [*summary["splits"].items(), ("total", summary["totals"])]:
        table.add_row(split or "(none)", *(f"{counts[k]:,}" for k in
                                          ("images", "annotations", "crowd", "unannotated_images")),
                      style="bold" if split == "total" else None)
    console.print(table)

    categories = Table(title="categories", title_justify="left")
    categories.add_column("id", justify="right")
    categories.add_column("name")
    categories.add_column("supercategory")
    for split in splits:
        categories.add_column(split or "instances", justify="right")
    for cat in summary["categories"]:
        categories.add_row(str(cat["id"]), cat["name"], cat["supercategory"],
                           *(f"{cat['instances'][s]:,}" for s in splits))
    console.print(categories)
    render_defects(summary["defects"], console)


def render_defects(defects: dict[str, int], console: Console) -> None:
    """One line per defect code, or a line saying there were none."""
    if not defects:
        console.print("no defective records found while reading")
        return
    table = Table(title="defective records (kept, flagged; `segdata validate` explains each)",
                  title_justify="left")
    table.add_column("code")
    table.add_column("records", justify="right")
    for code, count in defects.items():
        table.add_row(code, f"{count:,}")
    console.print(table)


def render_conversion(report: dict[str, Any], console: Console) -> None:
    """Totals of a conversion and its changes by kind."""
    console.print(f"wrote {report['images_written']:,} images and {report['annotations_written']:,} "
                  f"annotations as {report['format']}")
    if not report["changes_by_kind"]:
        console.print("no annotation changed")
        return
    table = Table(title="changes", title_justify="left")
    table.add_column("kind")
    table.add_column("annotations", justify="right")
    for kind, count in report["changes_by_kind"].items():
        table.add_row(kind, f"{count:,}")
    console.print(table)
    if report["mean_iou"] is not None:
        console.print(f"mean IoU of changed masks: {report['mean_iou']:.4f}")


def render_findings(result: dict[str, Any], console: Console, *, first: int = 3) -> None:
    """Summary table by code and severity, then the first findings of each code.

    ``result`` is the ``{"findings": [...], "summary": {...}}`` object
    ``segdata validate --json`` prints.
    """
    summary = result["summary"]
    if not summary["total"]:
        console.print("no findings")
        return
    styles = {"error": "red", "warning": "yellow", "info": "cyan"}
    table = Table(title="findings", title_justify="left")
    table.add_column("code")
    table.add_column("severity")
    table.add_column("count", justify="right")
    for code, entry in summary["by_code"].items():
        table.add_row(code, f"[{styles[entry['severity']]}]{entry['severity']}[/]", f"{entry['count']:,}")
    console.print(table)
    console.print(", ".join(f"{n:,} {s}" for s, n in summary["by_severity"].items()))
    shown: dict[str, int] = {}
    for finding in result["findings"]:
        count = shown.get(finding["code"], 0)
        shown[finding["code"]] = count + 1
        if count < first:
            console.print(f"[{styles[finding['severity']]}]{finding['code']}[/] {finding['message']}",
                          highlight=False, soft_wrap=True)
        elif count == first:
            total = summary["by_code"][finding["code"]]["count"]
            console.print(f"  … {total - first:,} more {finding['code']}", highlight=False)


def render_repairs(fix: dict[str, Any], console: Console) -> None:
    """What ``segdata validate --fix`` changed, one line per change, and where it wrote."""
    changes = fix["changes"]
    console.print(f"wrote the repaired dataset to {fix['path']} ({len(changes):,} change(s))", highlight=False)
    for change in changes:
        console.print(f"  {change['kind']} {change['split']} image {change['image_id']}, annotation "
                      f"{change['annotation_id']}: {change['detail']} ({change['pixels_moved']:,} px moved)",
                      highlight=False, soft_wrap=True)


def render_compose(result: dict[str, Any], console: Console) -> None:
    """What ``segdata semantic`` wrote and decided: contested, hidden, crowd and void pixels."""
    totals, options = result["totals"], result["settings"]
    console.print(f"wrote {totals['images']:,} class maps ({result['class_dtype']}) to {result['destination']}"
                  f" — overlap {options['overlap']}, crowd {options['crowd']}, void {options['void_value']},"
                  f" background {options['background_value']}", highlight=False)
    table = Table(title="composition", title_justify="left")
    table.add_column("measure")
    table.add_column("count", justify="right")
    rows = [("instances painted", totals["instances"]), ("crowd regions", totals["crowd_instances"]),
            ("contested pixels (≥ 2 instances)", totals["contested_px"]),
            ("  won under the policy", totals["won_by_policy_px"]),
            ("  won by annotation order (tie)", totals["won_by_order_px"]),
            ("  made void", totals["voided_px"]),
            ("images with contested pixels", totals["images_with_contested_px"]),
            ("fully hidden instances", len(totals["hidden"])), ("crowd pixels", totals["crowd_px"]),
            ("void pixels", totals["void_px"]), ("skipped annotations", len(totals["skipped"])),
            ("skipped images", len(totals["images_skipped"]))]
    for label, count in rows:
        table.add_row(label, f"{count:,}")
    console.print(table)
    for hidden in totals["hidden"][:10]:
        console.print(f"hidden: annotation {hidden['annotation_id']} (image {hidden['image_id']}"
                      f"{', split ' + hidden['split'] if hidden['split'] else ''})")
    if len(totals["hidden"]) > 10:
        console.print(f"… and {len(totals['hidden']) - 10} more hidden (see --json)")
    if "preview" in result:
        console.print(f"preview of {result['preview']['images']} images: {result['preview']['path']}")
