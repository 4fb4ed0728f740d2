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


class Severity(str, Enum):
    """Thresholds of ``--fail-on``."""

    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


FailOn = Annotated[Severity, typer.Option("--fail-on", help="Exit 1 when a finding is at or above this severity.")]
