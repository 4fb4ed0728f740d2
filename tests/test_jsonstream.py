"""segdata.jsonstream: parsing an array's items by byte span gives exactly what a whole-document parse gives,
or steps aside."""

from __future__ import annotations

import random

import orjson
import pytest

from segdata import jsonstream
from segdata.jsonstream import Unscannable, chunk_spans, parse_items, read_array_items


def _streamed(path, key="annotations"):
    head, arrays = read_array_items(path, key)
    runs = list(chunk_spans(*arrays[key]))
    assert all(len(starts) for starts, _ in runs)  # an item longer than a chunk starts no empty run
    return head, [item for spans in runs for item in parse_items(path, *spans)]


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks and chunks of a few bytes: every boundary case falls inside a real file."""
    monkeypatch.setattr(jsonstream, "SCAN_BLOCK", 7)
    monkeypatch.setattr(jsonstream, "CHUNK_BYTES", 50)


def test_every_coco_file_streams_to_the_whole_parse(samples_dir, conformance_dir, tiny_blocks):
    files = sorted(samples_dir.glob("coco*/annotations/*.json")) + sorted(conformance_dir.rglob("*.json"))
    compared = 0
    for path in files:
        whole = orjson.loads(path.read_bytes()) if path.stat().st_size < 5_000_000 else None
        if not isinstance(whole, dict) or not isinstance(whole.get("annotations"), list):
            continue
        head, items = _streamed(path)
        assert items == whole["annotations"], path
        assert head == {**whole, "annotations": []}, path
        compared += 1
    assert compared >= 40  # the samples and the corpus' COCO-like files


@pytest.mark.parametrize("text, items", [
    pytest.param(b'{"annotations": []}', [], id="empty"),
    pytest.param(b'{"x": "\\\\", "annotations": [{"f": "a\\"]},"}, [2]]}', [{"f": 'a"]},'}, [2]], id="escapes"),
    pytest.param(b'{"x": {"annotations": 1}, "annotations" : [[1], {"a": [2]}]}', [[1], {"a": [2]}],
                 id="nested-key-of-the-same-name"),
    pytest.param(b' \n{"annotations":[{"b":"\\\\\\\\"}, {"c":"[\\\\"}],"images":[]}', [{"b": "\\\\"}, {"c": "[\\"}],
                 id="backslash-runs"),
])
def test_strings_escapes_and_nesting(tmp_path, tiny_blocks, text, items):
    path = tmp_path / "a.json"
    path.write_bytes(text)
    head, streamed = _streamed(path)
    assert streamed == items == orjson.loads(text)["annotations"]
    assert head["annotations"] == []


def test_random_documents_with_quotes_backslashes_and_brackets_in_strings(tmp_path, monkeypatch):
    """Keys and strings made of the very bytes the scan looks at, on blocks of 1 to 8 bytes."""
    rng = random.Random(7)

    def text() -> str:
        return "".join(rng.choice('"\\[]{}|a ,:') for _ in range(rng.randint(0, 6)))

    def value(depth: int):
        roll = rng.random()
        if depth > 3 or roll < 0.3:
            return rng.choice([1, 2.5, None, True, text()])
        if roll < 0.6:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 3))}

    path = tmp_path / "a.json"
    for round_ in range(300):
        document = {text(): value(1) for _ in range(rng.randint(0, 3))}
        document["annotations"] = [rng.choice([{text(): value(2)}, [value(2)]])
                                   for _ in range(rng.randint(0, 4))]
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 if round_ % 2 else 0))
        monkeypatch.setattr(jsonstream, "SCAN_BLOCK", 1 + round_ % 8)
        head, items = _streamed(path)
        assert items == document["annotations"] and head == {**document, "annotations": []}, path.read_text()


@pytest.mark.parametrize("text", [
    pytest.param(b"[1, 2]", id="not-an-object"),
    pytest.param(b'{"images": []}', id="key-missing"),
    pytest.param(b'{"annotations": {"a": 1}}', id="not-an-array"),
    pytest.param(b'{"annotations": [{"a": 1},, {"b": 2}]}', id="double-comma"),
    pytest.param(b'{"annotations": [{"a": 1}, 2]}', id="scalar-item"),
    pytest.param(b'{"annotations": [3, {"a": 1}]}', id="scalar-first-item"),
    pytest.param(b'{"annotations": [{"a": 1},]}', id="trailing-comma"),
    pytest.param(b'{"annotations": [{"a": NaN}]}', id="nan"),
    pytest.param(b'{"annotations": [{"a": 1}', id="truncated"),
    pytest.param(b'{"annotations": [], "annotations": []}', id="key-twice"),
])
def test_what_it_cannot_vouch_for_is_left_to_the_whole_parse(tmp_path, tiny_blocks, text):
    path = tmp_path / "a.json"
    path.write_bytes(text)
    with pytest.raises(Unscannable, match=r"."):
        _streamed(path)
