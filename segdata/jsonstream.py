"""Find the items of a JSON document's big arrays, and parse them by byte span.

A COCO file is one object whose ``annotations`` (and ``images``) arrays
hold nearly all of its bytes.  Parsed whole, a 17 MB file becomes ~150 MB
of Python objects before the first annotation is converted; parsed a span
at a time, only one span's objects are alive, and an item can be parsed
again later from its span alone (:mod:`segdata.stored`).  Where items start
is found by a vectorised scan (NumPy, block by block): quotes that are not
escaped toggle "inside a string"; brackets outside strings change the
depth; an opening bracket at the array's depth starts an item.  Spans are
parsed by orjson.

Whatever the scan cannot vouch for (a document that is not an object, a
key that is missing or not an array, an item that is not an object or an
array, a span orjson refuses) is left to :func:`segdata.io.read_json` on
the whole file, so malformed input gets the same precise error as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from segdata.errors import ReadError

#: Bytes scanned per NumPy block (bounds the scan's temporary arrays).
SCAN_BLOCK = 1 << 20
#: Bytes of array items parsed per orjson call.
CHUNK_BYTES = 1 << 18
#: Items closer than this (bytes) are read with one call.
_GAP = 1 << 16

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_STEP = np.zeros(256, np.int8)  # how a bracket outside strings changes the depth
_STEP[[ord("{"), ord("[")]] = 1
_STEP[[ord("}"), ord("]")]] = -1


class Unscannable(ValueError):
    """The document is not an object with the wanted array; parse it whole instead."""


def _structure(handle: BinaryIO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the top-level keys, the items of top-level arrays and the top-level values end.

    Returns the positions of (opening quotes at depth 1, ``{`` or ``[``
    opening at depth 2, brackets closing back to depth 1), outside strings.
    Depth counts the brackets open *after* a byte: 1 inside the top-level
    object.  The file is read block by block; in each, quotes and brackets
    are found by whole-block comparisons, a bracket is inside a string if an
    odd number of quotes came before it, and only the few stretches at depth 1
    are searched for keys, so memory stays small whatever the file's size.
    """
    depth, in_string, escaped_next = 0, 0, False
    keys, items, ends = [], [], []
    handle.seek(0)
    start = 0
    folded = np.empty(SCAN_BLOCK, np.uint8)  # buffers reused by every block: fresh ones are faulted in anew
    is_mark, is_quote = np.empty(SCAN_BLOCK, bool), np.empty(SCAN_BLOCK, bool)
    while raw := handle.read(SCAN_BLOCK):
        block = np.frombuffer(raw, np.uint8)
        n = len(block)
        # [ \ ] and { | } differ by 0x20 only: one fold and one comparison find them all (| has no step)
        np.subtract(np.bitwise_or(block, 0x20, out=folded[:n]), ord("{"), out=folded[:n])
        marks = np.flatnonzero(np.less_equal(folded[:n], 2, out=is_mark[:n]))
        np.equal(block, _QUOTE, out=is_quote[:n])
        kinds = block[marks]
        slashes = marks[kinds == _BACKSLASH]
        if escaped_next or len(slashes):  # few (RLE counts, Windows paths): walk only the backslashes
            escaped, skip = ([0], 0) if escaped_next else ([], -1)
            for position in slashes.tolist():
                if position != skip:
                    escaped.append(position + 1)
                    skip = position + 1
            escaped_next = bool(escaped) and escaped[-1] == n
            is_quote[escaped[:-1] if escaped_next else escaped] = False  # an escaped quote is a string's byte
        quotes = np.flatnonzero(is_quote[:n])
        step = _STEP[kinds]
        outside = (step != 0) & ((np.searchsorted(quotes, marks) + in_string) & 1 == 0)
        marks, step = marks[outside], step[outside]
        after = np.cumsum(step, dtype=np.int64) + depth
        if len(after) and after.min() < 0:
            raise Unscannable("unbalanced brackets")
        # keys: opening quotes in the stretches at depth 1, from a bracket (or the block's start) to the next
        level = np.concatenate(([depth], after))
        at_one = np.flatnonzero(level == 1)
        if len(at_one):
            bounds = np.concatenate(([-1], marks, [n]))
            first, last = np.searchsorted(quotes, bounds[at_one]), np.searchsorted(quotes, bounds[at_one + 1])
            count = last - first
            nth = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
            keys.append(quotes[nth[(nth + in_string) & 1 == 0]] + start)
        items.append(marks[(step == 1) & (after == 3)] + start)
        ends.append(marks[(step == -1) & (after == 1)] + start)
        depth = int(after[-1]) if len(after) else depth
        in_string = (in_string + len(quotes)) & 1
        start += n
    if depth != 0 or in_string:
        raise Unscannable("unterminated document")
    return tuple(np.concatenate(found) if found else np.zeros(0, np.int64) for found in (keys, items, ends))


def read_array_items(path: str | Path, *keys: str) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, int]]]:
    """Parse a JSON object except its ``keys``' arrays, and find where those arrays' items are.

    Parameters
    ----------
    path : str or Path
        The JSON file.
    *keys : str
        Top-level keys of the arrays (``"annotations"``); their items must be objects or arrays.

    Returns
    -------
    head : dict
        Every other member, parsed; ``head[key]`` is an empty list.
    arrays : dict
        ``key → (starts, closing)``: the byte offset of each item's opening
        bracket, in order, and of the array's closing bracket.  Item ``i`` is
        what lies in ``[starts[i], starts[i + 1])`` (or up to ``closing``), its comma included.

    Raises
    ------
    Unscannable
        The file is not an object holding one ``key`` array of objects or
        arrays: the caller parses the whole file for a precise error.
    ReadError
        The file cannot be opened.

    Examples
    --------
    >>> import tempfile, os
    >>> fd, name = tempfile.mkstemp(suffix=".json"); os.write(fd, b'{"a": [[1], {"b": "],\\\\""}], "c": 2}')
    35
    >>> head, arrays = read_array_items(name, "a")
    >>> head, parse_items(name, *next(chunk_spans(*arrays["a"])))
    ({'a': [], 'c': 2}, [[1], {'b': '],"'}])
    >>> os.close(fd); os.unlink(name)
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as err:
        raise ReadError(f"cannot read file ({err.strerror})", path=path) from err
    with handle:
        return _split(handle, keys)


def chunk_spans(starts: np.ndarray, closing: int, size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The items as runs of about ``size`` bytes (default :data:`CHUNK_BYTES`): ``(starts, stops)`` of each run."""
    size = size or CHUNK_BYTES
    if not len(starts):
        return
    cuts = np.unique(np.searchsorted(starts, np.arange(starts[0], closing, size)))
    cuts = cuts[cuts < len(starts)]  # points within the last item start no run
    for first, last in zip(cuts, list(cuts[1:]) + [len(starts)]):  # stops per run: no copy of all starts
        tail = [closing] if last == len(starts) else []
        yield starts[first:last], np.append(starts[first + 1:last + 1], tail).astype(starts.dtype)


def parse_items(path: str | Path, starts: np.ndarray, stops: np.ndarray) -> list[Any]:
    """Parse the items at ``[start, stop)`` (sorted, each an item and the comma after it) of ``path``.

    Items less than 64 KB apart are read with one call: a run in file
    order costs a few reads, scattered items one each.

    Raises
    ------
    Unscannable
        The bytes are not one JSON value per span.
    """
    pieces = []
    runs = np.split(np.arange(len(starts)), np.flatnonzero(starts[1:] - stops[:-1] > _GAP) + 1)
    fd = os.open(path, os.O_RDONLY)
    try:
        for run in runs:
            if not len(run):
                continue
            base = int(starts[run[0]])
            block = os.pread(fd, int(stops[run[-1]]) - base, base)
            for left, right in zip((starts[run] - base).tolist(), (stops[run] - base).tolist()):
                piece = block[left:right].rstrip()
                pieces.append(piece[:-1] if piece.endswith(b",") else piece)
    finally:
        os.close(fd)
    try:
        items = orjson.loads(b"[" + b",".join(pieces) + b"]")
    except orjson.JSONDecodeError as err:
        raise Unscannable(str(err)) from err
    if len(items) != len(starts):
        raise Unscannable("an item that is not an object or an array")
    return items


def parse_item(path: str | Path, start: int, stop: int) -> Any:
    """The item at ``[start, stop)`` of ``path``; None where those bytes are no longer one JSON value (a
    file changed since it was scanned: the caller says what it expected there)."""
    try:
        [item] = parse_items(path, np.array([start]), np.array([stop]))
    except Unscannable:
        return None
    return item


def _split(handle: BinaryIO, keys: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, int]]]:
    """The document without the items of ``keys``' arrays, parsed; where those items start; where each array closes."""
    if not handle.read(SCAN_BLOCK).lstrip().startswith(b"{"):
        raise Unscannable("not an object")
    key_starts, items, ends = _structure(handle)
    arrays = {}
    for key in keys:
        name = orjson.dumps(key)
        found = []
        for position in key_starts.tolist():
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
        starts = items[(items > opening) & (items < closing)]
        handle.seek(opening + 1)  # nothing but blanks before the first item, no comma after the last
        before_first = handle.read((int(starts[0]) if len(starts) else closing) - opening - 1)
        handle.seek(max(opening + 1, closing - 256))
        if before_first.strip() or handle.read(closing - handle.tell()).rstrip().endswith(b","):
            raise Unscannable(f"{key!r} holds an item that is not an object or an array")
        arrays[key] = (opening, starts, closing)
    pieces, position = [], 0
    for opening, _, closing in sorted(arrays.values(), key=lambda found: found[0]):
        handle.seek(position)
        pieces += [handle.read(opening - position), b"[]"]
        position = closing + 1
    handle.seek(position)
    try:
        head = orjson.loads(b"".join(pieces) + handle.read())
    except orjson.JSONDecodeError as err:
        raise Unscannable(str(err)) from err
    return head, {key: (starts, closing) for key, (_, starts, closing) in arrays.items()}
