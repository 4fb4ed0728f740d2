"""``segdata semantic``: paint instances into class maps (and instance-id / panoptic maps)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import Format, ImagesRoot, Json, Overlap, OverlapOption, Overwrite, Scheduler, Workers
from segdata.parallel import prepare
from segdata.report import render_compose, write_json


class Crowd(str, Enum):
    void = "void"
    paint = "paint"
    skip = "skip"


class OnInvalid(str, Enum):
    raise_ = "raise"
    skip = "skip"


def semantic(
    source: Annotated[Path, typer.Argument(metavar="SRC", help="The dataset to read.")],
    destination: Annotated[Path, typer.Argument(metavar="DST", help="The folder to write.")],
    overlap: OverlapOption = Overlap.smaller_on_top,
    crowd: Annotated[Crowd, typer.Option(help="Crowd regions: void, paint (under instances) or skip.")
                     ] = Crowd.void,
    void_value: Annotated[int, typer.Option(min=0, max=65535, help="Value of void pixels.")] = 255,
    background_value: Annotated[int, typer.Option(min=0, max=65535, help="Value of unlabelled pixels.")] = 0,
    on_invalid: Annotated[OnInvalid, typer.Option(help="Annotations the reader flagged as unusable: "
                                                  "raise, or skip and count them.")] = OnInvalid.raise_,
    palette: Annotated[bool, typer.Option("--palette/--no-palette",
                                          help="Write 8-bit class maps as palette PNGs.")] = True,
    instance_ids: Annotated[bool, typer.Option("--instance-ids", help="Also write 16-bit instance-id maps.")
                            ] = False,
    panoptic: Annotated[bool, typer.Option("--panoptic", help="Also write COCO panoptic PNGs and JSON.")
                        ] = False,
    preview: Annotated[Optional[Path], typer.Option(metavar="FILE.png", help="Write a contact sheet of up "
                                                    "to 8 images with their class map blended over them.")
                       ] = None,
    format: Format = None,
    images_root: ImagesRoot = None,
    overwrite: Overwrite = False,
    json: Json = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Paint each image's instances into a class map PNG, counting every contested pixel.

    Writes DST/<split>/<stem>.png and DST/classes.json; with --instance-ids and
    --panoptic also DST/instance_ids/ and DST/panoptic/.

    Example: $ segdata semantic sample_datasets/coco out/ --panoptic
    """
    from segdata.semantic import write_maps, write_preview  # see segdata.cli

    options = {"overlap": overlap.value, "crowd": crowd.value, "void_value": void_value,
               "background_value": background_value, "on_invalid": on_invalid.value}
    prepare(workers, scheduler)
    dataset = converters.read(source, format, **({"images_root": images_root} if images_root else {}))
    result = write_maps(dataset, destination, **options, palette=palette, instance_ids=instance_ids,
                        panoptic=panoptic, workers=workers, overwrite=overwrite)
    if preview is not None:
        result["preview"] = {"path": str(preview), "images": write_preview(dataset, preview, **options)}
    if json:
        write_json({key: value for key, value in result.items() if key != "images"})
    else:
        render_compose(result, Console())
