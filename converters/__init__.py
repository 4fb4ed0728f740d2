"""Format registry: each on-disk format is one module with ``sniff``, ``read`` and ``write``.

A module's ``read(path, **options)`` returns a :class:`~segdata.model.Dataset`
and its ``write(dataset, path, **options)`` a
:class:`~segdata.model.ConversionReport`; the keyword options a function
declares are the ones it takes (``images_root`` on read; ``mask_encoding``,
``tolerance``, ``copy_images``, ``overwrite``, ``workers``, ``progress`` on
write), so callers can tell an option the format cannot use from a typo.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType

from segdata.errors import FormatError, UsageError
from segdata.model import Dataset

#: Format name -> module, in the order ``sniff`` tries them.
_MODULES: dict[str, str] = {
    "coco": "segdata.converters.coco",
    "yolo": "segdata.converters.yolo",
    "labelme": "segdata.converters.labelme",
    "sa1b": "segdata.converters.sa1b",
    "semantic-png": "segdata.converters.semantic_png",
    "voc": "segdata.converters.voc",
    "cityscapes": "segdata.converters.cityscapes",
    "coco-panoptic": "segdata.converters.coco_panoptic",
    "instance-png": "segdata.converters.instance_png",
}
FORMATS = tuple(_MODULES)


def get(name: str) -> ModuleType:
    """The module of a format, or a :class:`UsageError` listing the known names."""
    if name not in _MODULES:
        raise UsageError(f"unknown format {name!r}; known formats: {', '.join(sorted(_MODULES))}")
    return importlib.import_module(_MODULES[name])


def options(function) -> set[str]:
    """The keyword options a format's ``read`` or ``write`` takes."""
    return {name for name, p in inspect.signature(function).parameters.items() if p.kind is p.KEYWORD_ONLY}


def sniff(path: str | Path) -> str:
    """Name the format of ``path``; refuse when none or several match, saying what was tried."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or folder", path=path)
    matches = [name for name in _MODULES if get(name).sniff(path)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        looked_for = "; ".join(f"{name}: {get(name).LOOKS_FOR}" for name in _MODULES)
        raise FormatError(f"not a dataset of any known format (looked for {looked_for}); "
                          "name the format with --from or --format", path=path)
    raise FormatError(f"ambiguous: looks like {', '.join(matches)}; name one with --from or --format", path=path)


def read(path: str | Path, format: str | None = None, **options) -> Dataset:
    """Read ``path`` with the named format, or the one :func:`sniff` finds."""
    return get(format or sniff(path)).read(path, **options)
