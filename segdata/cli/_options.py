"""Options shared by several commands: one name, one meaning, one help text."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from segdata import converters
from segdata.errors import UsageError
from segdata.model import Dataset

Format = Annotated[Optional[str], typer.Option("--format", "-f", help="Input format; sniffed when absent.")]
ImagesRoot = Annotated[Optional[Path], typer.Option("--images-root", help="Folder of the image files, "
                                                    "when not beside the annotations.")]
Json = Annotated[bool, typer.Option("--json", help="Print a JSON object (stable schema) instead of tables.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty destination.")]
Workers = Annotated[Optional[int], typer.Option("--workers", "-w", min=1,
                                                help="Worker processes for per-image work (default: all cores).")]
Scheduler = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="ADDRESS", help="Run the per-image work on a Dask cluster: a dask.distributed "
                                           "scheduler address (tcp://host:8786), or 'local' for a LocalCluster "
                                           "of --workers processes. Needs: pip install 'segdata\\[dask]'.")]


class Severity(str, Enum):
    """Thresholds of ``--fail-on``."""

    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


FailOn = Annotated[Severity, typer.Option("--fail-on", help="Exit 1 when a finding is at or above this severity.")]


class Overlap(str, Enum):
    """The overlap policies of :mod:`segdata.compose`."""

    smaller_on_top = "smaller-on-top"
    larger_on_top = "larger-on-top"
    later_wins = "later-wins"
    score = "score"
    void = "void"
    error = "error"


OverlapOption = Annotated[Overlap, typer.Option(
    "--overlap", help="Who wins a pixel covered by several instances: smaller-on-top, larger-on-top, "
                      "later-wins (file order), score (highest), void (contested pixels become void), "
                      "error (refuse). Ties go to the later annotation.")]


SplitPaths = Annotated[Optional[list[str]], typer.Option(
    "--split", metavar="NAME=PATH", help="Add a split read from its own file or folder (repeatable): every "
                                         "image there gets split NAME. --format and --images-root apply to "
                                         "each PATH.")]

_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_split_paths(values: list[str] | None) -> list[tuple[str, Path]]:
    """``--split NAME=PATH`` values as ``(name, path)`` pairs, in the order given.

    Raises
    ------
    UsageError
        A value without ``=``, a name that is not a plain word (letters,
        digits, ``_ . -``; it becomes a file or folder name), or a name given twice.

    Examples
    --------
    >>> parse_split_paths(["val=data/val.json", "test=d/x=1"])
    [('val', PosixPath('data/val.json')), ('test', PosixPath('d/x=1'))]
    """
    pairs: list[tuple[str, Path]] = []
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--split expects NAME=PATH, found {value!r}")
        if not _SPLIT_NAME.fullmatch(name):
            raise UsageError(f"--split {value!r}: a split name is letters, digits, '_', '.' or '-', starting "
                             "with a letter or digit")
        if name in (n for n, _p in pairs):
            raise UsageError(f"--split names split {name!r} twice")
        pairs.append((name, Path(path)))
    return pairs


def read_parts(path: Path, splits: list[str] | None, format: str | None, images_root: Path | None
               ) -> list[tuple[str | None, Path, Dataset]]:
    """Read ``PATH`` and every ``--split NAME=PATH``: ``(name or None, path, dataset)`` each.

    Join them with :func:`segdata.combine.combine_splits`, or use :func:`read_dataset`.
    """
    pairs = parse_split_paths(splits)  # all checked before the first (slow) read
    options = {"images_root": images_root} if images_root else {}
    return [(name, where, converters.read(where, format, **options))
            for name, where in [(None, path), *pairs]]


def read_dataset(path: Path, splits: list[str] | None, format: str | None, images_root: Path | None) -> Dataset:
    """``PATH`` and its ``--split NAME=PATH`` parts read into one dataset (see :func:`read_parts`)."""
    from segdata.combine import combine_splits

    parts = read_parts(path, splits, format, images_root)
    if len(parts) == 1:
        return parts[0][2]
    return combine_splits([(name, dataset, str(where)) for name, where, dataset in parts])
