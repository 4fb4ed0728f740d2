"""``segdata convert``: read one format, write another, report every change."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import ImagesRoot, Json, Overwrite, Workers
from segdata.io import dumps_json, write_bytes_atomic
from segdata.report import progress_bar, render_conversion, write_json


class MaskEncoding(str, Enum):
    keep = "keep"
    polygon = "polygon"
    rle = "rle"


def convert(
    source: Annotated[Path, typer.Argument(metavar="SRC", help="The dataset to read.")],
    destination: Annotated[Path, typer.Argument(metavar="DST", help="The folder to write.")],
    to: Annotated[str, typer.Option("--to", "-t", help="Output format.")],
    source_format: Annotated[Optional[str], typer.Option("--from", help="Input format; sniffed when absent.")] = None,
    mask_encoding: Annotated[MaskEncoding, typer.Option(
        help="keep: each mask as read; polygon: lossless polygons (holes by keyhole cuts); rle: compressed RLE."
    )] = MaskEncoding.keep,
    tolerance: Annotated[float, typer.Option(min=0.0, help="Simplify polygons by this many pixels; "
                                             "each simplified mask is reported with its IoU.")] = 0.0,
    copy_images: Annotated[bool, typer.Option("--copy-images", help="Copy image files too.")] = False,
    images_root: ImagesRoot = None,
    overwrite: Overwrite = False,
    report: Annotated[Optional[Path], typer.Option(help="Write the per-annotation report (JSON) here.")] = None,
    json: Json = False,
    workers: Workers = None,
) -> None:
    """Convert a dataset to another format (or re-encode it), losslessly where the target allows.

    Every skipped, simplified or recomputed annotation is counted in the report.

    Example: $ segdata convert sample_datasets/coco out/ --to coco --mask-encoding polygon
    """
    dataset = converters.read(source, source_format, **({"images_root": images_root} if images_root else {}))
    with progress_bar(f"writing {to}", len(dataset.images)) as progress:
        result = converters.get(to).write(
            dataset, destination, mask_encoding=mask_encoding.value, tolerance=tolerance,
            copy_images=copy_images, overwrite=overwrite, workers=workers, progress=progress,
        ).to_dict()
    if report:
        write_bytes_atomic(report, dumps_json(result, indent=True))
    if json:
        write_json(result)
    else:
        render_conversion(result, Console())
