"""``segdata leakage``: images shared between splits (exact copies, near-duplicates, groups, names, masks)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import FailOn, Format, ImagesRoot, Json, Overwrite, Severity, Workers
from segdata.report import progress_bar, render_leak_fix, render_leakage, write_json

class Resolve(str, Enum):
    move_to_train = "move-to-train"
    drop_from_eval = "drop-from-eval"


def leakage(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A dataset file or folder.")],
    format: Format = None,
    images_root: ImagesRoot = None,
    max_distance: Annotated[Optional[int], typer.Option(
        "--max-distance", min=0, max=63, help="Largest pHash Hamming distance (of 64 bits) of a "
                                              "near-duplicate candidate [default: 10].")] = None,
    mirror: Annotated[Optional[bool], typer.Option(
        "--mirror/--no-mirror", help="Also match horizontally mirrored copies [default: mirror].")] = None,
    group_regex: Annotated[Optional[str], typer.Option(
        "--group-regex", metavar="RE", help="Group key from the file name (first capture group, else the "
                                            "match); images of one group must not span splits.")] = None,
    fail_on: FailOn = Severity.error,
    json: Json = False,
    fix: Annotated[Optional[Path], typer.Option(
        "--fix", metavar="OUT", help="Write a copy (COCO, images copied) with the leaks resolved.")] = None,
    resolve: Annotated[Resolve, typer.Option(
        "--resolve", help="move-to-train: each linked set of images goes to its first split; "
                          "drop-from-eval: the members outside it are dropped.")] = Resolve.move_to_train,
    preview: Annotated[bool, typer.Option(
        "--preview", help="List what --resolve would move or drop, and write nothing.")] = False,
    overwrite: Overwrite = False,
    workers: Workers = None,
) -> None:
    """Find images shared between splits; exit 1 on findings at --fail-on.

    Kinds, strongest first (each pair once): exact-file (same bytes),
    exact-pixels (same decoded pixels), near-duplicate (perceptual hashes
    within --max-distance, confirmed on thumbnails), same-group, same-masks
    (identical annotation masks on different files; warning), same-name (warning).
    Duplicates inside one split are listed as info.  Fingerprints are cached
    in .segdata-cache/ beside the annotations, so a re-check hashes only new
    images.  With --fix OUT, writes a copy in which no exact, near-duplicate
    or group link spans two splits (--resolve), listing every image moved or
    dropped; --preview lists them without writing.

    Example: $ segdata leakage sample_datasets/coco-dirty --fix unleaked/ --resolve move-to-train
    """
    from segdata.fingerprint import cache_dir_for  # imported on use: see segdata.cli
    from segdata.validators import fails
    from segdata.validators.leakage import find_leaks
    from segdata.validators.leakage_fix import resolve_leaks
    options = {"images_root": images_root} if images_root else {}
    dataset = converters.read(path, format, **options)
    given = {"max_distance": max_distance, "mirror": mirror, "group_regex": group_regex}
    settings = {k: v for k, v in given.items() if v is not None}  # defaults live in find_leaks only
    cache_dir = cache_dir_for(path)
    if json:
        result = find_leaks(dataset, cache_dir=cache_dir, workers=workers, **settings)
    else:
        with progress_bar("fingerprinting", len(dataset.images)) as advance:
            result = find_leaks(dataset, cache_dir=cache_dir, workers=workers, progress=advance, **settings)
    output = result.to_dict()
    if fix is not None or preview:
        fixed, changes = resolve_leaks(dataset, result, resolve.value)
        output["fix"] = {"path": None if preview or fix is None else str(fix), "policy": resolve.value,
                         "changes": [c.to_dict() for c in changes]}
        if not preview:
            report = converters.get("coco").write(fixed, fix, copy_images=True, overwrite=overwrite,
                                                  workers=workers)
            output["fix"]["conversion"] = report.to_dict()
    if json:
        write_json(output)
    else:
        console = Console()
        render_leakage(output, console)
        if "fix" in output:
            render_leak_fix(output["fix"], console)
    if fails(result.findings, fail_on.value):
        raise typer.Exit(1)
