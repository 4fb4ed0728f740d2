"""segdata/io.py, segdata/packed.py: atomic outputs get the user's usual permissions; big results stream."""

from __future__ import annotations

import os
import pickle
import stat

import numpy as np

from segdata.io import dumps_json, iter_json, output_dir, write_bytes_atomic
from segdata.model import Finding
from segdata.packed import CHUNK, PackedList, pack


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_atomic_file_and_folder_follow_the_umask(tmp_path):
    write_bytes_atomic(tmp_path / "report.html", b"<html></html>")
    with output_dir(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("a")
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o666 & ~_umask()
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~_umask()


def _findings(count: int) -> list[Finding]:
    return [Finding("instance-overlap", "info", f"image {i}: shares {i} px", "train", i // 3, i,
                    details={"iou": i / count, "other_annotation_id": i + 1}) for i in range(count)]


def test_packed_list_gives_back_every_item_in_order_across_chunks():
    findings = _findings(2 * CHUNK + 7)
    packed = PackedList(findings[:CHUNK + 1])
    for finding in findings[CHUNK + 1:]:
        packed.append(finding)
    assert len(packed) == len(findings)
    assert list(packed) == findings and list(packed) == findings  # iterated again, the same
    seen = []
    for finding in packed:  # appended while iterating: not seen by this pass, kept for the next
        if not seen:
            packed.append(findings[0])
        seen.append(finding)
    assert seen == findings and len(packed) == len(findings) + 1


def test_packed_list_past_its_memory_keeps_chunks_on_disk_and_gives_back_every_item():
    findings = _findings(4 * CHUNK + 3)
    in_memory = len(PackedList(findings[:CHUNK])._chunks[0])
    packed = PackedList(findings, in_memory=in_memory)  # room for one chunk
    assert (len(packed._chunks), len(packed._spilled)) == (1, 3) and "3 on disk" in repr(packed)
    seen = []
    for finding in packed:  # appended while iterating: not seen by this pass, kept for the next
        if not seen:
            packed.extend(findings[:CHUNK])
        seen.append(finding)
    assert seen == findings and list(packed) == findings + findings[:CHUNK]
    assert pickle.loads(pickle.dumps(packed)) == findings + findings[:CHUNK]


def test_chunks_packed_elsewhere_join_in_order_and_a_small_one_never_passes_a_spilled_one():
    findings = _findings(3 * CHUNK)
    big, small = findings[:CHUNK], findings[CHUNK:CHUNK + 2]
    packed = PackedList(findings[-3:], in_memory=len(pack(big)) - 1)  # the big chunk spills; the small fits
    packed.add_packed(pack(big), len(big))
    packed.add_packed(pack(small), len(small))
    packed.append(findings[-1])
    assert len(packed) == 3 + CHUNK + 2 + 1
    assert list(packed) == findings[-3:] + big + small + findings[-1:]


def test_a_packed_list_extended_by_another_takes_its_chunks_without_unpacking_them(monkeypatch):
    findings = _findings(2 * CHUNK + 3)
    source = PackedList(findings, in_memory=len(pack(findings[:CHUNK])))  # a chunk held, one spilled, 3 loose
    kept = PackedList(findings[:2])
    with monkeypatch.context() as patched:
        patched.setattr("segdata.packed.zlib.decompress", None)  # unpacking a chunk would fail
        kept.extend(source)
        kept.extend(kept)  # itself: what it held when asked
    assert len(kept) == 2 * (2 + len(findings))
    assert list(kept) == 2 * (findings[:2] + findings) and list(source) == findings


def test_streamed_json_has_the_bytes_of_the_whole_document():
    findings = _findings(1100)
    document = {"verdict": {"line": "x", "counts": {"b": 2, "a": 1}}, "validate": {
        "findings": [f.to_dict() for f in findings], "summary": {"total": 1100}},
        "stats": {"pixels": np.arange(3), "classes": []}, "empty": [],
        "nested": {"deep": {"list": [[1, [2]]]}}}
    lazy = {**document, "validate": {"findings": (f.to_dict() for f in PackedList(findings)),
                                     "summary": {"total": 1100}},
            "empty": iter([]), "nested": {"deep": {"list": iter([[1, [2]]])}}}
    assert b"".join(iter_json(lazy)) == dumps_json(document, indent=True)
