"""Turn results into terminal tables and JSON; the only library module that knows rich."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from segdata.io import iter_json, write_bytes_atomic


def write_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (sorted keys) on stdout, views in it streamed (:func:`iter_json`)."""
    out = sys.stdout.buffer
    for piece in iter_json(obj):
        out.write(piece)
    out.write(b"\n")
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
    table.add_column("mean IoU", justify="right")
    table.add_column("min IoU", justify="right")
    for kind, count in report["changes_by_kind"].items():
        iou = report["iou_by_kind"].get(kind)
        table.add_row(kind, f"{count:,}", *(f"{iou[k]:.4f}" for k in ("mean", "min")) if iou else ("", ""))
    console.print(table)
    if report["mean_iou"] is not None:
        console.print(f"IoU of the masks as written vs the source: mean {report['mean_iou']:.4f}, "
                      f"min {report['min_iou']:.4f}")


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


def render_stats(result: dict[str, Any], console: Console, *, by: str = "pixels") -> None:
    """Class table of ``segdata stats`` sorted by one count, with bars, then imbalance, splits and alerts.

    ``result`` is the object ``segdata stats --json`` prints; ``by`` is
    ``pixels``, ``images`` or ``instances``.
    """
    rows = sorted(result["classes"], key=lambda row: row[by], reverse=True)
    top = max((row[by] for row in rows), default=0) or 1
    settings = result["settings"]
    table = Table(title=f"classes by {by} (pixels on class maps, overlap {settings['overlap']}; "
                        "crowd is void)", title_justify="left")
    for column in ("id", "name", f"{by} bar", "pixels", "area sum", "images", "inst", "crowd",
                   "S/M/L", "w inv", "w med", "w enet", "w eff"):
        table.add_column(column, justify="left" if column in ("name", f"{by} bar") else "right",
                         no_wrap=True)

    def number(value: float | None) -> str:
        return "—" if value is None else f"{value:.3g}"

    for row in rows:
        weights = row["weights"]
        table.add_row(str(row["id"]), row["name"], "█" * round(10 * row[by] / top),
                      f"{row['pixels']:,}", f"{row['area_sum']:,}", f"{row['images']:,}",
                      f"{row['instances']:,}",
                      f"{row['crowd']:,}", f"{row['small']}/{row['medium']}/{row['large']}",
                      *(number(weights[k]) for k in ("inverse_frequency", "median_frequency", "enet",
                                                      "effective_number")),
                      style="dim" if row["is_background"] else None)
    console.print(table)
    ratios = ", ".join(f"{count} {entry['ratio']:,.1f}" if entry["ratio"] is not None else f"{count} —"
                       for count, entry in result["imbalance"].items())
    console.print(f"imbalance (max/min over classes present): {ratios}", highlight=False)
    images = result["images"]
    console.print(f"{images['images']:,} images, {images['unannotated_images']:,} without annotations; "
                  f"classes per image mean {images['classes_per_image_mean']:.2f}, instances per image mean "
                  f"{images['instances_per_image_mean']:.2f}", highlight=False)
    comparison = result["split_comparison"]
    if len(result["splits"]) > 1:
        splits = Table(title=f"share of each split's images containing the class (reference "
                             f"{comparison['reference']})", title_justify="left")
        splits.add_column("class")
        for split in result["splits"]:
            splits.add_column(split or "(none)", justify="right")
        for row in comparison["classes"]:
            splits.add_row(row["name"], *(f"{row[f'fraction_{s}']:.0%}" if row[f"fraction_{s}"] is not None
                                          else "—" for s in result["splits"]))
        console.print(splits)
        distances = ", ".join(f"{s} {d:.3f}" for s, d in comparison["js_distance"].items())
        if distances:
            console.print(f"Jensen–Shannon distance to {comparison['reference']} (base 2): {distances}",
                          highlight=False)
        if comparison["chi2"] is not None:
            console.print(f"chi-square on image counts: χ²={comparison['chi2']:.2f}, "
                          f"dof={comparison['dof']}, "
                          f"p={comparison['p_value']:.3g}, Cramér's V={comparison['cramers_v']:.3f}",
                          highlight=False)
    for alert in result["alerts"]:
        console.print(f"[yellow]{alert['code']}[/] {alert['message']}", highlight=False, soft_wrap=True)


def write_stats_plots(result: dict[str, Any], plots_dir: str | Path) -> list[Path]:
    """PNG plots of ``segdata stats``: class frequency per split (log), sizes, weights.

    Parameters
    ----------
    result : dict
        The object ``segdata stats --json`` prints.
    plots_dir : str or Path
        Created if missing; ``class_frequency.png``, ``sizes.png`` and
        ``weights.png`` are written there atomically.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    classes = [row for row in result["classes"] if not row["is_background"]]
    names = [row["name"] for row in classes]
    x = np.arange(len(classes))
    splits = result["splits"]
    written = []

    def save(figure: Figure, name: str) -> None:
        buffer = BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=100)
        write_bytes_atomic(plots_dir / name, buffer.getvalue())
        written.append(plots_dir / name)

    figure = Figure(figsize=(max(6, 0.9 * len(classes) + 2), 9))
    width = 0.8 / max(1, len(splits))
    for axes, count in zip(figure.subplots(3, 1), ("pixels", "images", "instances")):
        for position, (split, entry) in enumerate(splits.items()):
            values = {row["id"]: row[count] for row in entry["classes"]}
            axes.bar(x + (position - (len(splits) - 1) / 2) * width, [values[r["id"]] for r in classes],
                     width, label=split or "(none)")
        axes.set_yscale("log")
        axes.set_ylabel(count)
        axes.set_xticks(x, names, rotation=45, ha="right")
        axes.legend(fontsize="small")
    figure.suptitle("class frequency per split (log scale)")
    save(figure, "class_frequency.png")

    figure = Figure(figsize=(max(6, 0.9 * len(classes) + 2), 4.5))
    axes = figure.subplots()
    bottom = np.zeros(len(classes))
    for size in ("small", "medium", "large"):
        values = np.array([row[size] for row in classes], float)
        axes.bar(x, values, 0.6, bottom=bottom, label=size)
        bottom += values
    axes.set_xticks(x, names, rotation=45, ha="right")
    axes.set_ylabel("instances")
    axes.set_title("instance sizes (COCO: small < 32², medium < 96², large)")
    axes.legend(fontsize="small")
    save(figure, "sizes.png")

    figure = Figure(figsize=(max(6, 0.9 * len(classes) + 2), 4.5))
    axes = figure.subplots()
    kinds = ("inverse_frequency", "median_frequency", "enet", "effective_number")
    for position, kind in enumerate(kinds):
        values = [np.nan if row["weights"][kind] is None else row["weights"][kind] for row in classes]
        axes.bar(x + (position - 1.5) * 0.2, values, 0.2, label=kind.replace("_", " "))
    axes.set_yscale("log")
    axes.set_xticks(x, names, rotation=45, ha="right")
    axes.set_ylabel("weight")
    axes.set_title("suggested loss weights (categories; background omitted)")
    axes.legend(fontsize="small")
    save(figure, "weights.png")
    return written


def render_leakage(result: dict[str, Any], console: Console, *, first: int = 20) -> None:
    """What ``segdata leakage`` found: counts per split pair and kind, leaking share per split, the pairs.

    ``result`` is the object ``segdata leakage --json`` prints.
    """
    summary = result["summary"]
    console.print(f"{summary['images']:,} images: {summary['hashed']:,} fingerprinted, "
                  f"{summary['cached']:,} from the cache, {summary['unreadable']:,} unreadable (left out)",
                  highlight=False)
    for finding in result["findings"]:
        if finding["code"] == "file-unreadable":
            console.print(f"[red]file-unreadable[/] {finding['message']}", highlight=False, soft_wrap=True)
    if not summary["leak_pairs"]:
        console.print("no leaks between splits")
    else:
        table = Table(title="leak pairs by split pair and kind", title_justify="left")
        for column in ("splits", "kind", "pairs"):
            table.add_column(column, justify="right" if column == "pairs" else "left")
        for pair, kinds in summary["by_split_pair"].items():
            for kind, count in kinds.items():
                table.add_row(pair, kind, f"{count:,}")
        console.print(table)
    shares = Table(title="evaluation splits with a leak", title_justify="left")
    for column in ("split", "images", "leaking", "share"):
        shares.add_column(column, justify="left" if column == "split" else "right")
    for split, entry in summary["evaluation"].items():
        shares.add_row(split, f"{entry['images']:,}", f"{entry['leaking']:,}", f"{entry['share']:.1%}")
    if summary["evaluation"]:
        console.print(shares)
    if summary["within_split"]:
        counts = ", ".join(f"{n:,} {kind}" for kind, n in summary["within_split"].items())
        console.print(f"duplicates within a split: {counts}", highlight=False)
    pairs = result["pairs"]
    if pairs:
        table = Table(title="pairs", title_justify="left")
        for column in ("kind", "split a", "image a", "split b", "image b", "distance"):
            table.add_column(column, justify="right" if column == "distance" else "left")
        for pair in pairs[:first]:
            table.add_row(pair["kind"], pair["split_a"], pair["image_a"], pair["split_b"], pair["image_b"],
                          "" if pair["distance"] is None else str(pair["distance"]))
        console.print(table)
        if len(pairs) > first:
            console.print(f"  … {len(pairs) - first:,} more pairs (--json lists them all)", highlight=False)


def render_evaluation(result: dict[str, Any], console: Console, *, per_class: bool = False) -> None:
    """Tables of ``segdata evaluate``: the summary metrics, then (``per_class``) one row per class.

    ``result`` is the object ``segdata evaluate --json`` prints; ``None`` shows as ``n/a``.
    """
    def fmt(value: Any) -> str:
        if value is None:
            return "n/a"
        return f"{value:.4f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)

    task = result["task"]
    summary = Table(title=f"{task} evaluation", title_justify="left")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    if task == "instance":
        rows = [*result["stats"].items(), *(("total " + k, v) for k, v in result["totals"].items())]
    elif task == "panoptic":
        rows = [(f"{metric.upper()} {subset}", values[metric]) for subset, values in result["summary"].items()
                for metric in ("pq", "sq", "rq", "n")]
    else:
        rows = [(k, v) for k, v in result["summary"].items() if k not in ("out_of_range", "accuracy_paradox",
                                                                         "unmatched_predictions")]
        rows += [(f"{k.replace('_', ' ')} out of range", v) for k, v in result["summary"]["out_of_range"].items()]
    for name, value in rows:
        summary.add_row(name, fmt(value))
    console.print(summary)
    if task == "semantic" and result["summary"]["accuracy_paradox"]:
        console.print(f"note: {result['summary']['accuracy_paradox']}", highlight=False)
    if per_class and result["per_class"]:
        columns = [k for k in result["per_class"][0] if k not in ("category_id", "class")]
        table = Table(title="per class", title_justify="left")
        table.add_column("id", justify="right")
        for column in columns:
            table.add_column(column, justify="left" if column == "name" else "right")
        for row in result["per_class"]:
            table.add_row(str(row.get("category_id", row.get("class"))), *(fmt(row[c]) for c in columns))
        console.print(table)
    for name, value in result.get("quirks", {}).items():
        shown = value if not isinstance(value, list) else ", ".join(map(str, value[:10])) + (
            f" … ({len(value)} in all)" if len(value) > 10 else "")
        console.print(f"quirk {name}: {shown}", highlight=False)


def render_leak_fix(fix: dict[str, Any], console: Console) -> None:
    """What ``segdata leakage --fix/--preview`` moved or dropped, one line per image, and where it wrote."""
    changes = fix["changes"]
    where = f"wrote the resolved dataset to {fix['path']}" if fix["path"] else "preview (nothing written)"
    console.print(f"{where}: {fix['policy']}, {len(changes):,} image(s) changed", highlight=False)
    for change in changes:
        if change["kind"] == "moved":
            console.print(f"  moved {change['split']} image {change['image_id']} ({change['file_name']}) to "
                          f"{change['to_split']} as image {change['new_image_id']}, with "
                          f"{change['annotations']:,} annotation(s)", highlight=False, soft_wrap=True)
        else:
            console.print(f"  dropped {change['split']} image {change['image_id']} ({change['file_name']}) and "
                          f"{change['annotations']:,} annotation(s)", highlight=False, soft_wrap=True)


def render_split(result: dict[str, Any], console: Console) -> None:
    """What ``segdata split`` wrote: images per split against the target, and the class balance."""
    table = Table(title=f"new splits in {result['path']}", title_justify="left")
    for column in ("split", "images", "target"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name, count in result["images"].items():
        table.add_row(name, f"{count:,}", f"{result['target'][name]:,.1f}")
    console.print(table)
    console.print(f"{result['units']:,} units (groups and duplicate sets kept whole), "
                  f"{result['groups_split']:,} split apart; largest gap between a class's share and its "
                  f"split's fraction: {result['max_class_deviation']:.1%}", highlight=False)
