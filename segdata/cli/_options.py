"""Options shared by several commands: one name, one meaning, one help text."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

Format = Annotated[Optional[str], typer.Option("--format", "-f", help="Input format; sniffed when absent.")]
ImagesRoot = Annotated[Optional[Path], typer.Option("--images-root", help="Folder of the image files, "
                                                    "when not beside the annotations.")]
Json = Annotated[bool, typer.Option("--json", help="Print a JSON object (stable schema) instead of tables.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty destination.")]
Workers = Annotated[Optional[int], typer.Option("--workers", "-w", min=1,
                                                help="Worker processes for per-image work [default: all cores].")]
Scheduler = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="ADDRESS", help="Run the per-image work on a Dask cluster: a dask.distributed "
                                           "scheduler address (tcp://host:8786), or 'local' for a LocalCluster "
                                           "of --workers processes. Needs: pip install 'segdata[dask]'.")]


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
