"""``segdata leakage``: images shared between splits (exact copies, near-duplicates, groups, names, masks)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from segdata import converters
from segdata.cli._options import (FailOn, Format, ImagesRoot, Json, Overwrite, Scheduler, Severity, SplitPaths, Workers,
                                  read_dataset, read_parts)
from segdata.model import Dataset
from segdata.parallel import prepare
from segdata.report import progress_bar, render_leak_fix, render_leakage, write_json

class Resolve(str, Enum):
    move_to_train = "move-to-train"
    drop_from_eval = "drop-from-eval"


def _read(paths: list[Path], splits: list[str] | None, format: str | None,
          images_root: Path | None) -> Dataset:
    """Every PATH (each keeping its own splits) and every ``--split NAME=PATH``, as one dataset."""
    if len(paths) == 1:
        return read_dataset(paths[0], splits, format, images_root)
    from segdata.combine import combine_splits  # imported on use: see segdata.cli
    parts = read_parts(paths[0], splits, format, images_root)
    options = {"images_root": images_root} if images_root else {}
    parts[1:1] = [(None, where, converters.read(where, format, **options)) for where in paths[1:]]
    return combine_splits([(name, dataset, str(where)) for name, where, dataset in parts])


def leakage(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH", help="Dataset files or folders; each keeps the splits its files name.")],
    split: SplitPaths = None,
    format: Format = None,
    images_root: ImagesRoot = None,
    max_distance: Annotated[Optional[int], typer.Option(
        "--max-distance", min=0, max=63, help="Largest pHash Hamming distance (of 64 bits) of a "
                                              "near-duplicate candidate (default: 10).")] = None,
    mirror: Annotated[Optional[bool], typer.Option(
        "--mirror/--no-mirror", help="Also match horizontally mirrored copies (default: mirror).")] = None,
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
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what --resolve would move or drop, and write no dataset.")] = False,
    preview: Annotated[Optional[Path], typer.Option(
        "--preview", metavar="FILE.png", help="Also write a contact sheet of the leaked pairs side by side "
                                              "(strongest first, up to 24).")] = None,
    overwrite: Overwrite = False,
    workers: Workers = None,
    scheduler: Scheduler = None,
) -> None:
    """Find images shared between splits; exit 1 on findings at --fail-on.

    Kinds, strongest first (each pair once): exact-file (same bytes),
    exact-pixels (same decoded pixels), near-duplicate (re-encoded, resized,
    brightness-shifted, mirrored or cropped by up to 10 % per side: regional
    perceptual hashes within --max-distance, confirmed on aligned
    thumbnails), same-group, same-masks
    (identical annotation masks on different files; warning), same-name (warning).
    Duplicates inside one split are listed as info.  Fingerprints are cached
    in .segdata-cache/ beside the annotations, so a re-check hashes only new
    images.  With --fix OUT, writes a copy in which no exact, near-duplicate
    or group link spans two splits (--resolve), listing every image moved or
    dropped; --dry-run lists them without writing.  Several PATHs, or
    --split NAME=PATH, check splits kept in separate files (the cache is
    then beside the first PATH).  --preview FILE.png draws each leaked pair
    side by side, with its kind and distance.

    Example: $ segdata leakage train.json --split val=val.json --preview leaks.png --fix unleaked/
    """
    from segdata.contact_sheet import write_leak_sheet  # imported on use: see segdata.cli
    from segdata.fingerprint import cache_dir_for
    from segdata.validators import fails
    from segdata.validators.leakage import find_leaks
    from segdata.validators.leakage_fix import resolve_leaks
    prepare(workers, scheduler)
    dataset = _read(paths, split, format, images_root)
    given = {"max_distance": max_distance, "mirror": mirror, "group_regex": group_regex}
    settings = {k: v for k, v in given.items() if v is not None}  # defaults live in find_leaks only
    cache_dir = cache_dir_for(paths[0])
    if json:
        result = find_leaks(dataset, cache_dir=cache_dir, workers=workers, **settings)
    else:
        with progress_bar("fingerprinting", len(dataset.images)) as advance:
            result = find_leaks(dataset, cache_dir=cache_dir, workers=workers, progress=advance, **settings)
    output = result.to_dict()
    if fix is not None or dry_run:
        fixed, changes = resolve_leaks(dataset, result, resolve.value)
        output["fix"] = {"path": None if dry_run or fix is None else str(fix), "policy": resolve.value,
                         "changes": [c.to_dict() for c in changes]}
        if not dry_run:
            report = converters.get("coco").write(fixed, fix, copy_images=True, overwrite=overwrite,
                                                  workers=workers)
            output["fix"]["conversion"] = report.to_dict()
    if preview is not None:
        output["preview"] = write_leak_sheet(output["pairs"], dataset, preview)
    if json:
        write_json(output)
    else:
        console = Console()
        render_leakage(output, console)
        if "fix" in output:
            render_leak_fix(output["fix"], console)
        if "preview" in output:
            sheet = output["preview"]
            console.print(f"contact sheet of {sheet['rows']:,} leaked pair(s) written to {sheet['path']}"
                          + (f"; {sheet['left_out']:,} more left out" if sheet["left_out"] else ""),
                          highlight=False, soft_wrap=True)
    if fails(result.findings, fail_on.value):
        raise typer.Exit(1)
