"""Turn results into terminal tables and JSON; the only library module that knows rich."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from segdata.io import dumps_json


def write_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (sorted keys) on stdout."""
    sys.stdout.buffer.write(dumps_json(obj, indent=True) + b"\n")
    sys.stdout.flush()


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
