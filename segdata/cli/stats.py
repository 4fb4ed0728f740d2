"""``segdata stats``: class-imbalance tables, suggested loss weights and split comparison."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import Format, ImagesRoot, Json, Overlap, OverlapOption, Workers
from segdata.report import render_stats, write_json, write_stats_plots


class By(str, Enum):
    pixels = "pixels"
    images = "images"
    instances = "instances"


def stats(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A dataset file or folder.")],
    by: Annotated[By, typer.Option("--by", help="Sort the table by this count.")] = By.pixels,
    overlap: OverlapOption = Overlap.smaller_on_top,
    csv: Annotated[Optional[Path], typer.Option(
        "--csv", metavar="FILE", help="Also write every class table (all splits) as CSV.")] = None,
    plots: Annotated[Optional[Path], typer.Option(
        "--plots", metavar="DIR", help="Also write PNG plots (frequency, sizes, weights).")] = None,
    format: Format = None,
    images_root: ImagesRoot = None,
    json: Json = False,
    workers: Workers = None,
) -> None:
    """Count pixels, images and instances per class; suggest loss weights; compare splits.

    Pixels are counted on each image's composed class map (background its own
    row, crowd void), beside the raw summed annotation area; weights are
    inverse frequency, median-frequency balancing, ENet and effective number.

    Example: $ segdata stats sample_datasets/coco --by instances --plots plots/
    """
    from segdata.stats import class_stats  # imported on use: see segdata.cli
    dataset = converters.read(path, format, **({"images_root": images_root} if images_root else {}))
    result = class_stats(dataset, overlap=overlap.value, workers=workers)
    if csv is not None:
        result.to_csv(csv)
    summary = result.to_dict()
    if plots is not None:
        write_stats_plots(summary, plots)
    if json:
        write_json(summary)
    else:
        render_stats(summary, Console(), by=by.value)
