"""``segdata stats``: class-imbalance tables, suggested loss weights and split comparison."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata.cli._options import (Format, ImagesRoot, Json, Overlap, OverlapOption, Scheduler, SplitPaths, Workers,
                                  read_parts)
from segdata.parallel import prepare
from segdata.report import render_stats, write_json, write_stats_plots


class By(str, Enum):
    pixels = "pixels"
    images = "images"
    instances = "instances"


def stats(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A dataset file or folder.")],
    split: SplitPaths = None,
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
    scheduler: Scheduler = None,
) -> None:
    """Count pixels, images and instances per class; suggest loss weights; compare splits.

    Pixels are counted on each image's composed class map (background its own
    row, crowd void), beside the raw summed annotation area; label-map formats
    (semantic-png, VOC, Cityscapes) are counted on their PNGs directly.
    Weights are inverse frequency, median-frequency balancing, ENet and
    effective number.  --split NAME=PATH adds a split from its own file or
    folder (e.g. one COCO JSON per split).

    Example: $ segdata stats train.json --split val=val.json --by instances --plots plots/
    """
    from segdata.combine import combine_splits  # imported on use: see segdata.cli
    from segdata.converters.label_maps import locate
    from segdata.stats import class_stats
    prepare(workers, scheduler)
    parts = read_parts(path, split, format, images_root)
    label_maps = {}
    for name, where, part in parts:
        found = locate(part, where)
        label_maps.update(found if name is None else {(name, image_id): m for (_s, image_id), m in found.items()})
    dataset = parts[0][2] if len(parts) == 1 else combine_splits([(n, d, str(w)) for n, w, d in parts])
    result = class_stats(dataset, overlap=overlap.value, workers=workers, label_maps=label_maps)
    if csv is not None:
        result.to_csv(csv)
    summary = result.to_dict()
    if plots is not None:
        write_stats_plots(summary, plots)
    if json:
        write_json(summary)
    else:
        render_stats(summary, Console(), by=by.value)
