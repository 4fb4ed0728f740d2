"""``segdata report``: the whole health check — validation, leakage and class statistics — in one run."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import segdata
from segdata.cli._options import (FailOn, Format, ImagesRoot, Json, Scheduler, Severity, SplitPaths, Workers,
                                  read_dataset)
from segdata.parallel import prepare
from segdata.report import write_json

#: Classes listed in the terminal table (the rarest first); the HTML page lists all.
_CLASSES_SHOWN = 8
_STYLES = {"error": "red", "warning": "yellow", "info": "cyan"}


def _command_line(ctx: typer.Context) -> str:
    """The command as given, rebuilt from what click parsed (sys.argv is not the command under a test runner)."""
    words = ctx.command_path.split()
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.param_type_name == "argument":
            words.append(str(value))
        elif value != param.default and value not in (None, False, []):
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                item = getattr(item, "value", item)
                words += [param.opts[0]] if item is True else [param.opts[0], str(item)]
    return shlex.join(words)


def _render(report: dict[str, Any], findings: Iterable[dict[str, Any]], steps: list[str], out: Optional[Path],
            console: Console) -> None:
    """Verdict line first, then a short table per section, then where to look next."""
    verdict = report["verdict"]
    console.print(f"[bold {'green' if verdict['clean'] else 'red'}]{verdict['line']}[/]", highlight=False,
                  soft_wrap=True)

    counts: dict[tuple[str, str], int] = {}
    firsts: dict[tuple[str, str], dict[str, Any]] = {}
    demoted = 0
    for f in findings:
        key = (f["code"], f["severity"])
        counts[key] = counts.get(key, 0) + 1
        firsts.setdefault(key, f)
        demoted += key == ("instance-overlap", "info")
    table = Table(title="findings (validation and leaks)", title_justify="left")
    for column in ("code", "severity", "count", "first at"):
        table.add_column(column, justify="right" if column == "count" else "left")
    order = sorted(counts, key=lambda key: (("error", "warning", "info").index(key[1]), key[0]))
    for code, severity in order:
        first = firsts[(code, severity)]
        at = " ".join(str(v) for v in (first["split"], "image", first["image_id"]) if v not in ("", None))
        if first["annotation_id"] is not None:
            at += f", annotation {first['annotation_id']}"
        table.add_row(code, f"[{_STYLES[severity]}]{severity}[/]", f"{counts[(code, severity)]:,}", at)
    if order:
        console.print(table)
    else:
        console.print("no findings")
    if demoted:
        console.print(f"{demoted:,} instance overlaps below IoU {report['settings']['overlap_iou']:g} are "
                      "counted as info (occlusion), not as warnings", highlight=False)

    summary = report["leakage"]["summary"]
    if summary["evaluation"]:
        leaks = Table(title=f"leakage ({summary['leak_pairs']:,} pairs between splits)", title_justify="left")
        for column in ("split", "images", "leaking", "share"):
            leaks.add_column(column, justify="left" if column == "split" else "right")
        for split, entry in summary["evaluation"].items():
            leaks.add_row(split, f"{entry['images']:,}", f"{entry['leaking']:,}", f"{entry['share']:.1%}")
        console.print(leaks)

    stats = report["stats"]
    rows = sorted((r for r in stats["classes"] if not r["is_background"]), key=lambda r: (r["pixels"], r["id"]))
    classes = Table(title=f"rarest classes (of {len(rows)}; pixels on class maps)", title_justify="left")
    for column in ("class", "pixels", "share", "images", "instances", "w med"):
        classes.add_column(column, justify="left" if column == "class" else "right")
    for row in rows[:_CLASSES_SHOWN]:
        weight = row["weights"]["median_frequency"]
        share = row["pixel_share_all"]
        classes.add_row(row["name"], f"{row['pixels']:,}", "—" if share is None else f"{share:.2%}",
                        f"{row['images']:,}", f"{row['instances']:,}", "—" if weight is None else f"{weight:.3g}")
    console.print(classes)
    for alert in stats["alerts"]:
        console.print(f"[yellow]{alert['code']}[/] {alert['message']}", highlight=False, soft_wrap=True)

    console.print("[bold]where to look next[/]")
    for step in steps:
        console.print(f"  {'$ ' if step.startswith('segdata ') else ''}{step}", highlight=False, soft_wrap=True)
    if out is not None:
        console.print(f"  the full report, with thumbnails and plots: {out}", highlight=False, soft_wrap=True)


def report(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A dataset file or folder.")],
    split: SplitPaths = None,
    format: Format = None,
    images_root: ImagesRoot = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", metavar="FILE", help="Write the self-contained HTML report here.")] = None,
    json: Json = False,
    fail_on: FailOn = Severity.error,
    overlap_iou: Annotated[Optional[float], typer.Option(
        "--overlap-iou", min=0.0, max=1.0, help="Instance overlaps below this IoU are info (occlusion), "
                                                "not warnings (default: 0.3).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", metavar="DIR", help="Keep leakage fingerprints here, so a re-run hashes only new "
                                           "images (default: no cache, nothing written).")] = None,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Validation, leakage between splits and class statistics in one run, with one verdict.

    Prints the verdict first (errors, warnings, leaked evaluation images, the
    rarest class), a short table per section and where to look next; --out
    writes one self-contained HTML page (thumbnails with the offending
    annotation outlined, leaked pairs side by side, plots, weights); --json
    prints validate's, leakage's and stats' JSON objects under one document
    with the verdict.  Exit 1 on findings at --fail-on.

    Example: $ segdata report sample_datasets/coco-dirty --fail-on never --out report.html
    """
    from segdata.health import STAGES, check_health, merge_findings, next_steps, stage_totals  # on use: see cli
    from segdata.validators import fails

    prepare(workers, scheduler)
    dataset = read_dataset(path, split, format, images_root)
    options = {"overlap_iou": overlap_iou} if overlap_iou is not None else {}  # defaults live in check_health
    if json:
        result = check_health(dataset, cache_dir=cache_dir, workers=workers, **options)
    else:
        totals = stage_totals(dataset)
        columns = [TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(STAGES[0], total=sum(totals.values()))
            result = check_health(dataset, cache_dir=cache_dir, workers=workers, **options,
                                  progress=lambda stage, units: progress.update(task, advance=units,
                                                                                description=stage))
    document = {**result.to_dict(lazy=True), "segdata_version": segdata.__version__}  # findings streamed, not held

    def findings() -> Iterator[dict[str, Any]]:
        return merge_findings(document["validate"]["findings"], document["leakage"]["findings"])

    steps = next_steps(document, str(path))
    if out is not None:
        from segdata.html_report import render_html
        from segdata.io import write_bytes_atomic

        page = render_html(document, findings(), dataset, title=str(path), command=_command_line(ctx),
                           version=segdata.__version__, next_steps=steps)
        write_bytes_atomic(out, page.encode())
    if json:
        write_json(document)
    else:
        _render(document, findings(), steps, out, Console())
    if fails(result.findings(), fail_on.value):
        raise typer.Exit(1)
