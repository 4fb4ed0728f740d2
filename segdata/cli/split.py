"""``segdata split``: new train/val/test splits that keep groups and duplicates whole, classes balanced."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from segdata import converters
from segdata.cli._options import Format, ImagesRoot, Json, Overwrite, Workers
from segdata.errors import UsageError
from segdata.report import render_split, write_json


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DEFAULT_NAMES = {2: "train,test", 3: "train,val,test"}


def _fractions(ratios: str, names: str | None) -> dict[str, float]:
    """``--ratios 0.8,0.1,0.1`` and ``--names train,val,test`` as ``{"train": 0.8, "val": 0.1, "test": 0.1}``.

    Raises
    ------
    UsageError
        A ratio that is not a number, ratios that are not positive or do not
        sum to 1 (± 0.001), no ``--names`` for other than 2 or 3 ratios,
        names whose count differs from the ratios', or a name given twice.
    """
    try:
        shares = [float(part) for part in ratios.split(",")]
    except ValueError as err:
        raise UsageError("--ratios expects comma-separated numbers like 0.8,0.1,0.1, "
                         f"found {ratios!r}") from err
    if any(not share > 0 for share in shares) or abs(sum(shares) - 1) > 1e-3:
        raise UsageError(f"--ratios must be positive and sum to 1, found {ratios!r}")
    if names is None:
        if len(shares) not in _DEFAULT_NAMES:
            raise UsageError(f"--ratios gives {len(shares)} splits: name them with --names")
        names = _DEFAULT_NAMES[len(shares)]
    labels = [name.strip() for name in names.split(",")]
    if len(labels) != len(shares):
        raise UsageError(f"--names gives {len(labels)} split name(s) for {len(shares)} ratio(s)")
    if not all(_NAME.fullmatch(label) for label in labels) or len(set(labels)) != len(labels):
        raise UsageError("--names must be distinct split names (letters, digits, '_', '.' or '-'; they "
                         f"become file names), found {names!r}")
    return dict(zip(labels, shares))


def _render_class_shares(result: dict, class_names: dict[str, str], console: Console) -> None:
    """Per class, the share of its images in each split (against the ratio), then the JS distances."""
    table = Table(title="share of each class's images per split", title_justify="left")
    table.add_column("class")
    table.add_column("images", justify="right")
    for name, ratio in result["ratios"].items():
        table.add_column(f"{name} ({ratio * 100:g} %)", justify="right")
    for class_id, shares in result["class_share"].items():
        table.add_row(class_names.get(class_id, class_id), f"{result['class_images'][class_id]:,}",
                      *(f"{share:.1%}" for share in shares.values()))
    console.print(table)
    distances = ", ".join(f"{pair} {'n/a' if value is None else f'{value:.4f}'}"
                          for pair, value in result["js_distance"].items())
    console.print("Jensen–Shannon distance between the splits' class distributions (base 2, 0 = same "
                  f"mix): {distances}", highlight=False, soft_wrap=True)


def split(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A dataset file or folder.")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder of the re-split dataset (COCO).")],
    ratios: Annotated[str, typer.Option(
        "--ratios", help="Shares of the images, one per split, summing to 1.")] = "0.8,0.1,0.1",
    names: Annotated[Optional[str], typer.Option(
        "--names", help="Split names, one per ratio (default: train,val,test for 3 ratios, "
                        "train,test for 2).")] = None,
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
    assigned rarest class first, then single units are moved while that
    brings the classes closer to their shares.  Writes COCO with the images
    copied, and runs the leakage check on the new splits to show that none
    leaks (leaks_after in --json).  Prints each class's share of images per
    split and the Jensen–Shannon distance (base 2) between the splits' class
    distributions.  --names defaults to train,val,test (3 ratios) or
    train,test (2).

    Example: $ segdata split sample_datasets/coco-dirty resplit/ --ratios 0.7,0.15,0.15
    """
    shares = _fractions(ratios, names)  # refused before the (slow) imports and reads
    from segdata.fingerprint import cache_dir_for  # imported on use: see segdata.cli
    from segdata.splits import split_dataset
    from segdata.validators.leakage import find_leaks
    options = {"images_root": images_root} if images_root else {}
    dataset = converters.read(path, format, **options)
    cache_dir = cache_dir_for(path)
    leaks = find_leaks(dataset, cache_dir=cache_dir, workers=workers)
    new, report = split_dataset(dataset, shares, group_regex=group_regex, leaks=leaks, seed=seed)
    conversion = converters.get("coco").write(new, out, copy_images=True, overwrite=overwrite,
                                              workers=workers)
    # the proof: the same check on the new splits (same files, so every fingerprint comes from the cache)
    recheck = find_leaks(new, cache_dir=cache_dir, group_regex=group_regex, workers=workers).summary
    result = {"path": str(out), "ratios": shares, **report, "conversion": conversion.to_dict(),
              "leaks_after": {"leak_pairs": recheck["leak_pairs"], "by_kind": recheck["by_kind"]}}
    if json:
        write_json(result)
    else:
        console = Console()
        render_split(result, console)
        _render_class_shares(result, {str(c.id): c.name for c in dataset.categories.values()}, console)
        kinds = ", ".join(f"{kind} {count}" for kind, count in recheck["by_kind"].items())
        console.print(f"leakage check on the new splits: {recheck['leak_pairs']:,} leak pairs"
                      + (f" ({kinds})" if kinds else ""), highlight=False)
