"""Parse one big array of a JSON document a few megabytes at a time.

A COCO file is one object whose ``annotations`` array holds nearly all of
its bytes.  Parsed whole, a 17 MB file becomes ~150 MB of Python objects
before the first annotation is converted; parsed in chunks, only one
chunk's objects are alive at a time.  The chunk boundaries are found by a
vectorised scan (NumPy, block by block): quotes that are not escaped toggle
"inside a string"; brackets outside strings change the depth; commas at
the array's depth separate its items.  Each chunk is then parsed by orjson.

Whatever the scan cannot vouch for (a document that is not an object, a
key that is missing or not an array, a chunk orjson refuses) is left to
:func:`segdata.io.read_json` on the whole file, so malformed input gets the
same precise error as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from segdata.errors import ReadError

#: Bytes scanned per NumPy block (bounds the scan's temporary arrays).
SCAN_BLOCK = 1 << 22
#: Bytes of array items parsed per orjson call.
CHUNK_BYTES = 1 << 18

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_STEP = np.zeros(256, np.int8)  # how a byte outside strings changes the depth
_STEP[[ord("{"), ord("[")]] = 1
_STEP[[ord("}"), ord("]")]] = -1
_SCANNED = _STEP != 0
_SCANNED[[_QUOTE, _BACKSLASH]] = True


class Unscannable(ValueError):
    """The document is not an object with the wanted array; parse it whole instead."""


def _structure(handle: BinaryIO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the top-level keys, the items of top-level arrays and the top-level values end.

    Returns the positions of (opening quotes at depth 1, ``{`` or ``[``
    opening at depth 2, brackets closing back to depth 1), outside strings.
    Depth counts the brackets open *after* a byte: 1 inside the top-level
    object.  The file is read block by block and only its quotes,
    backslashes and brackets are looked at, so memory stays small whatever
    the file's size.
    """
    depth, in_string, escaped_next = 0, 0, False
    keys, items, ends = [], [], []
    handle.seek(0)
    start = 0
    while raw := handle.read(SCAN_BLOCK):
        block = np.frombuffer(raw, np.uint8)
        where = np.flatnonzero(_SCANNED[block])
        chars = block[where]
        quote = chars == _QUOTE
        slashes = np.flatnonzero(chars == _BACKSLASH)
        if escaped_next or len(slashes):  # rare in COCO files (Windows paths): walk only the backslashes
            escaped, skip = ([0], 0) if escaped_next else ([], -1)
            for position in where[slashes].tolist():
                if position != skip:
                    escaped.append(position + 1)
                    skip = position + 1
            escaped_next = bool(escaped) and escaped[-1] == len(block)
            quote[np.isin(where, escaped)] = False
        parity = (np.cumsum(quote, dtype=np.uint8) + in_string) & 1
        in_string = int(parity[-1]) if len(parity) else in_string
        step = _STEP[chars]
        step[parity == 1] = 0
        after = np.cumsum(step, dtype=np.int64) + depth
        depth = int(after[-1]) if len(after) else depth
        if len(after) and after.min() < 0:
            raise Unscannable("unbalanced brackets")
        opening_quote = quote & (parity == 1)
        keys.append(where[opening_quote & (after == 1)] + start)
        items.append(where[(step == 1) & (after == 3)] + start)
        ends.append(where[(step == -1) & (after == 1)] + start)
        start += len(block)
    if depth != 0 or in_string:
        raise Unscannable("unterminated document")
    return tuple(np.concatenate(found) if found else np.zeros(0, np.int64) for found in (keys, items, ends))


def read_with_array_chunks(path: str | Path, key: str) -> tuple[dict[str, Any], Iterator[list[Any]]]:
    """Read a JSON object whose ``key`` array is parsed chunk by chunk.

    Parameters
    ----------
    path : str or Path
        The JSON file.
    key : str
        Top-level key of the array to stream (``"annotations"``).

    Returns
    -------
    head : dict
        Every other member, parsed; ``head[key]`` is an empty list.
    chunks : iterator of list
        The array's items, in order, a few megabytes of JSON at a time.

    Raises
    ------
    Unscannable
        The file is not an object holding a ``key`` array, or a chunk does
        not parse: the caller parses the whole file for a precise error.
    ReadError
        The file cannot be opened.

    Examples
    --------
    >>> import tempfile, os
    >>> fd, name = tempfile.mkstemp(suffix=".json"); os.write(fd, b'{"a": [1, {"b": "],\\\\""}], "c": 2}')
    33
    >>> head, chunks = read_with_array_chunks(name, "a")
    >>> head, [item for chunk in chunks for item in chunk]
    ({'a': [], 'c': 2}, [1, {'b': '],"'}])
    >>> os.close(fd); os.unlink(name)
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as err:
        raise ReadError(f"cannot read file ({err.strerror})", path=path) from err
    with handle:
        head, item_spans = _split(handle, key)
    return head, _chunks(path, item_spans)


def _split(handle: BinaryIO, key: str) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """The document without ``key``'s items, parsed, and the byte spans of those items in chunks."""
    if not handle.read(SCAN_BLOCK).lstrip().startswith(b"{"):
        raise Unscannable("not an object")
    keys, items, ends = _structure(handle)
    name = orjson.dumps(key)
    found = []
    for position in keys.tolist():
        handle.seek(position)
        if handle.read(len(name)) == name:
            found.append(position)
    if len(found) != 1:
        raise Unscannable(f"{key!r} found {len(found)} times")
    after_name = found[0] + len(name)
    handle.seek(after_name)
    following = handle.read(256)
    value = following.lstrip()
    if not value.startswith(b":") or not value[1:].lstrip().startswith(b"["):
        raise Unscannable(f"{key!r} is not an array")
    opening = after_name + len(following) - len(value[1:].lstrip())
    closing = int(ends[np.searchsorted(ends, opening)])
    handle.seek(0)
    before = handle.read(opening)
    handle.seek(closing + 1)
    try:
        head = orjson.loads(before + b"[]" + handle.read())
    except orjson.JSONDecodeError as err:
        raise Unscannable(str(err)) from err
    return head, _item_spans(opening + 1, closing, items[(items > opening) & (items < closing)])


def _item_spans(start: int, stop: int, item_starts: np.ndarray) -> list[tuple[int, int]]:
    """Cut ``[start, stop)`` (an array's inside) just before the items nearest every CHUNK_BYTES-th byte."""
    cuts = [start, stop]
    item_starts = item_starts[1:]  # the first item starts the first chunk
    if len(item_starts):
        wanted = np.arange(start + CHUNK_BYTES, stop, CHUNK_BYTES)
        cuts[1:1] = item_starts[np.searchsorted(item_starts, wanted).clip(0, len(item_starts) - 1)].tolist()
    cuts = sorted(set(cuts))
    return list(zip(cuts, cuts[1:]))


def _chunks(path: Path, spans: list[tuple[int, int]]) -> Iterator[list[Any]]:
    """Parse each span of an array's inside; every span but the last ends with the comma before an item."""
    with path.open("rb") as handle:
        for index, (left, right) in enumerate(spans):
            handle.seek(left)
            piece = handle.read(right - left).rstrip()
            if index < len(spans) - 1:  # drop the one comma before the next item; a second one stays, and fails
                if not piece.endswith(b","):
                    raise Unscannable("items not separated by a comma")
                piece = piece[:-1]
            if not piece.strip():
                continue
            try:
                yield orjson.loads(b"[" + piece + b"]")
            except orjson.JSONDecodeError as err:
                raise Unscannable(str(err)) from err
