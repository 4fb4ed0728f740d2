"""File primitives: the one JSON reader, atomic writes, safe output folders, and image headers of any size."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from segdata.errors import FormatError, OutputExistsError, ReadError

_UMASK = os.umask(0o022)  # read once (it can only be read by setting it), and put back at once
os.umask(_UMASK)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a malformed file raises :class:`FormatError` with line and column."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReadError(f"cannot read file ({err.strerror})", path=path) from err
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        try:  # Python's json writes NaN and Infinity, which orjson refuses; keep them for the checks
            return json.loads(data)
        except ValueError:
            pass
        reason = err.msg.split(":")[0]
        raise FormatError(f"invalid JSON ({reason})", path=path,
                          record=f"line {err.lineno} column {err.colno}") from err


def dumps_json(obj: Any, *, indent: bool = False, sort_keys: bool = True) -> bytes:
    """Serialize deterministically (NumPy scalars and arrays allowed).

    ``sort_keys=False`` keeps the order the caller built, for formats whose
    readers expect a conventional key order.
    """
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    if indent:
        option |= orjson.OPT_INDENT_2
    return orjson.dumps(obj, option=option)


def iter_json(obj: Any, *, depth: int = 0) -> Iterator[bytes]:
    """``dumps_json(obj, indent=True)`` in pieces, items of views streamed one at a time.

    A *view* is an iterable that is not a list, tuple, dict, string or array
    (a generator, :class:`segdata.packed.Mapped`): it is written as a
    JSON array, item by item, so that a document of 100k findings is never
    held whole, as dicts or as bytes.  The bytes are those ``dumps_json``
    gives for the same document with the views as lists.

    Examples
    --------
    >>> streamed = b"".join(iter_json({"b": (i for i in range(2)), "a": 1}))
    >>> streamed == dumps_json({"a": 1, "b": [0, 1]}, indent=True)
    True
    """
    pad = b"\n" + b"  " * (depth + 1)
    if isinstance(obj, dict) and _holds_view(obj):
        yield b"{"
        for n, key in enumerate(sorted(obj)):
            yield (b"," if n else b"") + pad + dumps_json(key) + b": "
            yield from iter_json(obj[key], depth=depth + 1)
        yield pad[:-2] + b"}"
    elif _is_view(obj):
        first = True
        for item in obj:
            yield (b"[" if first else b",") + pad + dumps_json(item, indent=True).replace(b"\n", pad)
            first = False
        yield b"[]" if first else pad[:-2] + b"]"
    else:
        yield dumps_json(obj, indent=True).replace(b"\n", pad[:-2])


def _is_view(obj: Any) -> bool:
    return hasattr(obj, "__iter__") and not isinstance(obj, (list, tuple, dict, str, bytes, np.ndarray))


def _holds_view(obj: dict) -> bool:
    return any(_is_view(v) or (isinstance(v, dict) and _holds_view(v)) for v in obj.values())


@contextmanager
def any_image_size() -> Iterator[None]:
    """Pillow's decompression-bomb guard lifted while headers are read.

    ``Image.open`` refuses a header stating more than 179M pixels, though
    it decodes nothing: a 20000 × 10000 label map of a remote-sensing
    dataset is data, not an attack.  Decodes keep the guard.
    """
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write to a temporary sibling, then rename into place: never a half-written file."""
    with atomic_file(path) as handle:
        handle.write(data)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary sibling of ``path``, renamed into place when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make every output private to its writer
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def output_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``path`` only when the block succeeds.

    A destination that exists and is not empty is refused unless ``overwrite``;
    an interrupted run leaves the old state, never half a dataset.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError("destination is a file, expected a folder", path=path)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError("destination is not empty; pass --overwrite to replace it", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(staging, 0o777 & ~_UMASK)  # mkdtemp's 0700, renamed into place, would hide the output
    try:
        yield staging
        if path.exists():
            backup = path.with_name(f".{path.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(path, backup)
            os.replace(staging, path)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
