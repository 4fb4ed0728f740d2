"""``segdata convert``: read one format, write another, report every change."""

from __future__ import annotations

from enum import Enum
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.categories import read_category_map, remap_categories
from segdata.cli._options import ImagesRoot, Json, Overlap, Overwrite, Scheduler, Workers
from segdata.errors import UsageError
from segdata.io import atomic_file, iter_json
from segdata.packed import PackedList
from segdata.parallel import prepare
from segdata.report import progress_bar, render_conversion, write_json


class MaskEncoding(str, Enum):
    keep = "keep"
    polygon = "polygon"
    rle = "rle"


class CategoryIds(str, Enum):
    keep = "keep"
    contiguous0 = "contiguous0"
    contiguous1 = "contiguous1"


def convert(
    source: Annotated[Path, typer.Argument(metavar="SRC", help="The dataset to read.")],
    destination: Annotated[Path, typer.Argument(metavar="DST", help="The folder to write.")],
    to: Annotated[str, typer.Option("--to", "-t", help=f"Output format: {', '.join(converters.FORMATS)}.")],
    source_format: Annotated[Optional[str], typer.Option("--from", help="Input format; sniffed when absent.")] = None,
    mask_encoding: Annotated[Optional[MaskEncoding], typer.Option(
        help="coco: keep each mask as read, lossless polygons (holes by keyhole cuts) or compressed RLE."
    )] = None,
    tolerance: Annotated[Optional[float], typer.Option(min=0.0, help="Simplify polygons by this many pixels; "
                                                       "each simplified mask is reported with its IoU.")] = None,
    overlap: Annotated[Optional[Overlap], typer.Option(
        help="Raster targets: who wins a pixel covered by several instances (default: smaller-on-top).")] = None,
    category_ids: Annotated[CategoryIds, typer.Option(
        help="Keep category ids, or renumber them in id order from 0 or 1.")] = CategoryIds.keep,
    category_map: Annotated[Optional[Path], typer.Option(
        help='JSON object from source id or name to a new id, null (drop) or {"id": 3, "name": "car"}.')] = None,
    classes: Annotated[Optional[Path], typer.Option(
        help="Class table for sources that lack one (semantic-png label maps): JSON, or one name per line.")] = None,
    copy_images: Annotated[bool, typer.Option("--copy-images", help="Copy image files too.")] = False,
    images_root: ImagesRoot = None,
    overwrite: Overwrite = False,
    report: Annotated[Optional[Path], typer.Option(help="Write the per-annotation report (JSON) here.")] = None,
    json: Json = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Convert a dataset to another format, losslessly where the target allows.

    Every skipped, clipped, merged, simplified or remapped annotation is
    counted in the report, with its IoU wherever the target lost pixels.

    Example: $ segdata convert sample_datasets/coco out/ --to voc --category-ids keep --report changes.json
    """
    source_format = source_format or converters.sniff(source)
    reader, writer = converters.get(source_format), converters.get(to)
    read_options = _accepted(reader.read, "reading", source_format, {"images_root": images_root, "classes": classes})
    prepare(workers, scheduler)
    dataset = reader.read(source, **read_options)
    dataset, changes = remap_categories(dataset, ids=category_ids.value,
                                        mapping=read_category_map(category_map) if category_map else None)
    write_options = _accepted(writer.write, "writing", to, {
        "mask_encoding": mask_encoding.value if mask_encoding else None, "tolerance": tolerance,
        "overlap": overlap.value if overlap else None, "copy_images": copy_images or None,
    })
    with progress_bar(f"writing {to}", len(dataset.images)) as progress:
        always = {"overwrite": overwrite, "workers": workers, "progress": progress}
        done = writer.write(dataset, destination, **write_options,
                            **{k: v for k, v in always.items() if k in converters.options(writer.write)})
    done.changes = PackedList(chain(changes, done.changes))
    result = done.to_dict(lazy=True)
    if report:
        with atomic_file(report) as handle:
            handle.writelines(iter_json(result))
    if json:
        write_json(result)
    else:
        render_conversion(result, Console())


def _accepted(function, doing: str, name: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave, refusing any the format's function does not take."""
    given = {key: value for key, value in given.items() if value is not None}
    takes = converters.options(function)
    for key in given:
        if key not in takes:
            raise UsageError(f"--{key.replace('_', '-')} does not apply when {doing} {name}")
    return given
