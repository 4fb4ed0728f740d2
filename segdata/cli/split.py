"""``segdata split``: new train/val/test splits that keep groups and duplicates whole, classes balanced."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import Format, ImagesRoot, Json, Overwrite, Workers
from segdata.errors import UsageError
from segdata.report import render_split, write_json


def _fractions(text: str) -> dict[str, float]:
    """``train=0.8,val=0.1,test=0.1`` -> ``{"train": 0.8, "val": 0.1, "test": 0.1}``."""
    fractions = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            fractions[name.strip()] = float(value)
        except ValueError as err:
            raise UsageError("--fractions expects name=share pairs like train=0.8,val=0.2, "
                             f"found {text!r}") from err
    return fractions


def split(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A dataset file or folder.")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder of the re-split dataset (COCO).")],
    fractions: Annotated[str, typer.Option(
        "--fractions", help="Split names and shares of the images.")] = "train=0.8,val=0.1,test=0.1",
    group_regex: Annotated[Optional[str], typer.Option(
        "--group-regex", metavar="RE", help="Group key from the file name (first capture group, else the "
                                            "match); images of one group must not span splits.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Breaks ties between equally rare units.")] = 0,
    format: Format = None,
    images_root: ImagesRoot = None,
    json: Json = False,
    overwrite: Overwrite = False,
    workers: Workers = None,
) -> None:
    """Pool every image and split again, keeping groups and duplicate sets whole and classes balanced.

    Exact copies and near-duplicates (found as by segdata leakage) and
    images sharing a group key always land in the same split; units are
    assigned rarest class first, so that each split gets close to its share
    of the images of every class.  Writes COCO with the images copied.

    Example: $ segdata split sample_datasets/coco-dirty resplit/ --fractions train=0.7,val=0.15,test=0.15
    """
    from segdata.fingerprint import cache_dir_for  # imported on use: see segdata.cli
    from segdata.splits import split_dataset
    from segdata.validators.leakage import find_leaks
    shares = _fractions(fractions)
    options = {"images_root": images_root} if images_root else {}
    dataset = converters.read(path, format, **options)
    cache_dir = cache_dir_for(path)
    leaks = find_leaks(dataset, cache_dir=cache_dir, workers=workers)
    new, report = split_dataset(dataset, shares, group_regex=group_regex, leaks=leaks, seed=seed)
    conversion = converters.get("coco").write(new, out, copy_images=True, overwrite=overwrite,
                                              workers=workers)
    result = {"path": str(out), **report, "conversion": conversion.to_dict()}
    if json:
        write_json(result)
    else:
        render_split(result, Console())
