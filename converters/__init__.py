"""Format registry: each on-disk format is one module with ``sniff``, ``read`` and ``write``."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from segdata.converters import coco
from segdata.errors import FormatError, UsageError
from segdata.model import Dataset

#: Format name -> module, in the order ``sniff`` tries them.
FORMATS: dict[str, ModuleType] = {"coco": coco}


def get(name: str) -> ModuleType:
    """The module of a format, or a :class:`UsageError` listing the known names."""
    try:
        return FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown format {name!r}; known formats: {', '.join(sorted(FORMATS))}") from None


def sniff(path: str | Path) -> str:
    """Name the format of ``path``; refuse when none or several match, saying what was tried."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    matches = [name for name, module in FORMATS.items() if module.sniff(path)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise FormatError(f"not a dataset of any known format (tried: {', '.join(FORMATS)}); "
                          "name it with --format", path=path)
    raise FormatError(f"ambiguous: looks like {', '.join(matches)}; name one with --format", path=path)


def read(path: str | Path, format: str | None = None, **options) -> Dataset:
    """Read ``path`` with the named format, or the one :func:`sniff` finds."""
    return get(format or sniff(path)).read(path, **options)

