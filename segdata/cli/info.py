"""``segdata info``: what a dataset holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import Format, ImagesRoot, Json
from segdata.report import render_summary, write_json
from segdata.summary import summarize


def info(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A dataset file or folder.")],
    format: Format = None,
    images_root: ImagesRoot = None,
    json: Json = False,
) -> None:
    """Show the format, image and annotation counts per split, and the category table.

    Records that parse but are wrong are counted as defects, not dropped.

    Example: $ segdata info sample_datasets/coco --json
    """
    options = {"images_root": images_root} if images_root else {}
    summary = summarize(converters.read(path, format, **options))
    if json:
        write_json(summary)
    else:
        render_summary(summary, Console())
