"""Leakage between splits (validators/leakage.py) and the fingerprints under it (segdata/fingerprint.py)."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segdata.contact_sheet import cell_box_ltrb, sheet_size_wh
from segdata.converters import coco
from segdata.errors import UsageError
from segdata.fingerprint import (_VERIFY, CACHE_VERSION, MIRRORED, REGIONS, THUMB, WHOLE, FingerprintCache,
                                 FingerprintTable, _area_matrix, _jittered, aligned_correlation,
                                 choose_chunks, fingerprint_file, popcount, radius_search, region_hashes)
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from segdata.validators.leakage import LEAK_CODES, PAIR_COLUMNS, _near_pairs, _scan, find_leaks
from segdata.validators.leakage_fix import resolve_leaks
from tests.conftest import run_segdata


def _planted_leaks(readme: str) -> set[tuple[str, str, int, str, int]]:
    """``(code, split, image id, source split, source image id)`` of each leak row of coco-dirty/README.md."""
    rows = set()
    for line in readme.splitlines():
        match = re.match(r"\|\s*\d+\s*\|\s*`(leak-[a-z-]+)`\s*\|\s*(\w+)\s*\|[^|]*\|\s*(\d+)\s*\|"
                         r".*copy of (\w+) \S+ \(image (\d+)", line)
        if match:
            code, split, image_id, source_split, source_id = match.groups()
            rows.add((code, split, int(image_id), source_split, int(source_id)))
    return rows


@pytest.fixture(scope="module")
def dirty_result(samples_dir):
    return find_leaks(coco.read(samples_dir / "coco-dirty"), workers=1)


@pytest.fixture()
def clean_copy(samples_dir, tmp_path) -> Path:
    """The clean sample in tmp_path: the cache is written beside it, never into the repository."""
    return Path(shutil.copytree(samples_dir / "coco", tmp_path / "coco"))


def test_dirty_sample_every_planted_leak_found_with_its_kind(samples_dir, dirty_result):
    planted = _planted_leaks((samples_dir / "coco-dirty" / "README.md").read_text())
    assert len(planted) == 4
    found = {(f.code, f.split, f.image_id, f.details["other_split"], f.details["other_image_id"])
             for f in dirty_result.findings}
    assert found == planted
    assert all(LEAK_CODES[f.code] == f.severity == "error" for f in dirty_result.findings)


def test_dirty_sample_pairs_table_reports_the_strongest_kind_once(dirty_result):
    pairs = dirty_result.pairs
    assert list(pairs.columns) == PAIR_COLUMNS
    assert pairs[["kind", "split_a", "image_a", "split_b", "image_b"]].values.tolist() == [
        ["exact-file", "train", "scene_0018.jpg", "val", "scene_0064.jpg"],
        ["near-duplicate", "train", "scene_0002.jpg", "test", "scene_0061.jpg"],
        ["near-duplicate", "train", "scene_0005.jpg", "val", "scene_0062.jpg"],
        ["near-duplicate", "train", "scene_0014.jpg", "test", "scene_0063.jpg"],
    ]
    assert pairs.distance.max() <= 2  # README: pHash distance 0 for each copy (as decoded at its own size)
    summary = dirty_result.summary
    assert summary["by_split_pair"] == {"train/test": {"near-duplicate": 2},
                                        "train/val": {"exact-file": 1, "near-duplicate": 1}}
    assert summary["evaluation"]["val"] == {"images": 12, "leaking": 2, "share": round(2 / 12, 4)}


def test_clean_sample_has_no_cross_split_leak(samples_dir):
    result = find_leaks(coco.read(samples_dir / "coco"), workers=2)
    assert result.findings == []
    assert result.pairs.empty
    assert result.summary["leak_pairs"] == 0


def test_clean_sample_nearest_pair_is_far_even_at_a_wide_radius(samples_dir):
    # the closest clean pair is pHash distance 18 (README); at radius 20 the thumbnail check keeps precision
    result = find_leaks(coco.read(samples_dir / "coco"), max_distance=20, workers=1)
    assert result.pairs.empty


def _scene(seed: int, size_hw=(96, 128)) -> np.ndarray:
    """A smooth random RGB picture with structure for hashing."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(small, size_hw[::-1], interpolation=cv2.INTER_CUBIC)


def _record(tmp_path: Path, image_id: int, split: str, name: str, rgb: np.ndarray | None = None,
            data: bytes | None = None, **save) -> ImageRecord:
    path = tmp_path / split / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        path.write_bytes(data)
    else:
        Image.fromarray(rgb).save(path, **save)
    return ImageRecord(image_id, name, 128, 96, split, path=path)


def test_truncated_jpeg_is_unreadable_and_the_check_continues(tmp_path):
    scene = _scene(1)
    good = _record(tmp_path, 1, "train", "a.jpg", scene, quality=90)
    copy = _record(tmp_path, 2, "val", "b.jpg", data=good.path.read_bytes())
    whole = _record(tmp_path, 3, "val", "c.jpg", _scene(2), quality=90)
    data = whole.path.read_bytes()
    broken = _record(tmp_path, 4, "val", "d.jpg", data=data[: len(data) // 2])
    missing = ImageRecord(5, "e.jpg", 128, 96, "val", path=tmp_path / "nowhere.jpg")
    result = find_leaks(Dataset({}, [good, copy, whole, broken, missing], []), workers=1)
    unreadable = [f for f in result.findings if f.code == "file-unreadable"]
    assert [(f.image_id, f.severity) for f in unreadable] == [(4, "error"), (5, "error")]
    assert "cannot be read" in unreadable[0].message
    assert result.pairs[["kind", "image_a", "image_b"]].values.tolist() == [["exact-file", "a.jpg", "b.jpg"]]
    assert result.summary["unreadable"] == 2


def test_each_kind_on_built_copies(tmp_path):
    scene, other = _scene(10), _scene(11)
    images = [
        _record(tmp_path, 1, "train", "source.png", scene),
        _record(tmp_path, 2, "val", "pixels.png", scene, compress_level=0),  # other bytes, same pixels
        _record(tmp_path, 3, "test", "mirror.jpg", np.ascontiguousarray(scene[:, ::-1]), quality=85),
        _record(tmp_path, 4, "train", "other.png", other),
        _record(tmp_path, 5, "test", "other.png", _scene(12)),  # same name, different picture
        _record(tmp_path, 6, "train", "cam7_0001.png", _scene(13)),
        _record(tmp_path, 7, "val", "cam7_0002.png", _scene(14)),
        _record(tmp_path, 8, "train", "twin.png", other),  # within-split duplicate of other.png (train)
    ]
    square = Mask.from_polygons([[2, 2, 40, 2, 40, 40, 2, 40]], 96, 128)
    annotations = [Annotation(1, 6, 1, square, split="train"), Annotation(2, 7, 1, square, split="val")]
    dataset = Dataset({1: Category(1, "thing")}, images, annotations)
    result = find_leaks(dataset, group_regex=r"(cam\d+)_", workers=1)
    rows = result.pairs[["kind", "split_a", "image_a", "split_b", "image_b"]].values.tolist()
    assert rows == [
        ["exact-pixels", "train", "source.png", "val", "pixels.png"],
        ["near-duplicate", "train", "source.png", "test", "mirror.jpg"],
        ["same-group", "train", "cam7_0001.png", "val", "cam7_0002.png"],  # an error: above same-masks
        ["same-name", "train", "other.png", "test", "other.png"],
        ["near-duplicate", "val", "pixels.png", "test", "mirror.jpg"],
        ["exact-file", "train", "other.png", "train", "twin.png"],
    ]
    within, = [f for f in result.findings if f.code == "duplicate-within-split"]
    assert (within.severity, within.details["kind"]) == ("info", "exact-file")
    assert result.summary["within_split"] == {"exact-file": 1}
    unmirrored = find_leaks(dataset, mirror=False, workers=1)
    assert "mirror.jpg" not in set(unmirrored.pairs.image_b)
    maskless = find_leaks(Dataset({}, images, []), group_regex=r"(cam\d+)_", workers=1)
    assert "same-group" in set(maskless.pairs.kind)
    assert "same-masks" in set(find_leaks(dataset, workers=1).pairs.kind)  # without the group key


def _photo(seed: int, size_hw=(240, 320)) -> np.ndarray:
    """A photo-like RGB picture: smooth colour at three scales plus a few sharp discs."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((*size_hw, 3), np.float32)
    for cells, amplitude in ((3, 70), (8, 40), (24, 15)):
        small = rng.normal(0, amplitude, (cells * 3 // 4 + 1, cells, 3)).astype(np.float32)
        canvas += cv2.resize(small, size_hw[::-1], interpolation=cv2.INTER_CUBIC)
    canvas += 128
    for _ in range(6):
        centre = (int(rng.integers(0, size_hw[1])), int(rng.integers(0, size_hw[0])))
        colour = tuple(float(v) for v in rng.integers(0, 256, 3))
        cv2.circle(canvas, centre, int(rng.integers(8, 40)), colour, -1)
    return np.clip(canvas, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("box_ltrb", "mirrored", "scale"), [
    pytest.param((0.10, 0.10, 0.10, 0.10), False, 1.0, id="10%-every-side"),
    pytest.param((0.10, 0.0, 0.0, 0.10), False, 0.6, id="10%-left-bottom-resized"),
    pytest.param((0.0, 0.07, 0.10, 0.02), True, 1.3, id="uneven-mirrored-enlarged"),
    pytest.param((0.05, 0.05, 0.05, 0.05), True, 0.5, id="5%-mirrored-halved"),
])
def test_cropped_copy_is_found_and_another_view_of_the_scene_is_not(tmp_path, box_ltrb, mirrored, scale):
    scene = _photo(40, (360, 480))  # the scene; the source and the other view are windows of it
    source, other_view = scene[:240, :320], scene[120:, 160:]  # the other view is shifted by half a side
    height, width = source.shape[:2]
    left, top, right, bottom = box_ltrb
    copy = source[round(top * height):height - round(bottom * height),
                  round(left * width):width - round(right * width)]
    copy = cv2.resize(copy, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if mirrored:
        copy = copy[:, ::-1]
    images = [_record(tmp_path, 1, "train", "source.jpg", np.ascontiguousarray(source), quality=90),
              _record(tmp_path, 2, "test", "copy.jpg", np.ascontiguousarray(copy), quality=60),
              _record(tmp_path, 3, "test", "other_view.jpg", np.ascontiguousarray(other_view), quality=90)]
    result = find_leaks(Dataset({}, images, []), workers=1)
    assert result.pairs[["kind", "image_a", "image_b"]].values.tolist() == [
        ["near-duplicate", "source.jpg", "copy.jpg"]]
    assert result.pairs.distance.iloc[0] <= 10


def _near_pairs_one_by_one(table, rows, ok, max_distance, min_correlation):
    """The rule ``_near_pairs`` follows, candidate by candidate: closest first, a pair settled by its first
    verified candidate (what it did before it tried the candidates in rounds, on every core)."""
    n, kinds = len(ok), np.array([k for k in range(len(REGIONS)) if k != MIRRORED])
    hashes = table.hashes[[rows[i] for i in ok]]
    q, e, dist = radius_search(hashes[:, kinds].ravel(), hashes[:, [WHOLE, MIRRORED]].T.ravel(), max_distance)
    a, region, b, flipped = q // len(kinds), kinds[q % len(kinds)], e % n, e >= n
    best = {}
    for k in np.lexsort((region, dist, np.maximum(a, b), np.minimum(a, b))).tolist():
        key = (ok[min(a[k], b[k])], ok[max(a[k], b[k])])
        if a[k] != b[k] and key not in best and aligned_correlation(
                table.thumb(rows[ok[a[k]]]), REGIONS[region[k]], table.thumb(rows[ok[b[k]]]),
                bool(flipped[k])) >= min_correlation:
            best[key] = int(dist[k])
    return best


@pytest.mark.parametrize("min_correlation", [0.5, 0.93, 0.99])
def test_candidates_tried_in_rounds_on_two_processes_settle_pairs_as_one_by_one(tmp_path, min_correlation):
    scene = _photo(7, (360, 480))
    crops = [scene[:240, :320], scene[20:230, 30:300], scene[:200, 40:320][:, ::-1], scene[120:, 160:],
             cv2.resize(scene[10:250, 0:300], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), _photo(8)]
    images = [_record(tmp_path, k, "train" if k % 2 else "test", f"{k}.jpg", np.ascontiguousarray(crop),
                      quality=70) for k, crop in enumerate(crops)]
    paths = [str(image.path) for image in images]
    table, rows, *_ = _scan(Dataset({}, images, []), paths, FingerprintCache(None), 1, None)
    ok = list(range(len(images)))
    try:
        expected = _near_pairs_one_by_one(table, rows, ok, 30, min_correlation)
        assert _near_pairs(table, rows, ok, 30, True, min_correlation, workers=2) == expected
    finally:
        table.close()
    assert 2 <= len(expected) < 15  # some pairs verified, some not


def test_a_crop_copy_is_missed_without_regional_hashes(tmp_path):
    # near-miss for the test above: the whole-image hashes alone are too far apart for a 10 % crop
    source = _photo(40)
    copy = source[24:216, 32:288]
    fps = [fingerprint_file(str(_record(tmp_path, k, "x", f"{k}.png", np.ascontiguousarray(im)).path))
           for k, im in ((1, source), (2, copy))]
    whole = int(popcount(np.array([fps[0].hashes[WHOLE] ^ fps[1].hashes[WHOLE]]))[0])
    regional = int(popcount(fps[0].hashes[2:] ^ fps[1].hashes[WHOLE]).min())
    assert whole > 10 >= regional


@pytest.mark.parametrize("region", [WHOLE, 2, 9, len(REGIONS) - 1])
@pytest.mark.parametrize("mirrored", [False, True])
def test_aligned_correlation_is_the_best_pearson_over_the_jittered_framings(samples_dir, region, mirrored):
    paths = sorted((samples_dir / "coco-dirty" / "images").glob("*/*.jpg"))[:3]
    thumbs = [fingerprint_file(str(path)).thumb.astype(np.float64) for path in paths]
    x0, y0, x1, y1 = REGIONS[region]
    whole = _area_matrix(THUMB, 0.0, 1.0, _VERIFY)
    for thumb_a, thumb_b in [(thumbs[0], thumbs[0]), (thumbs[0], thumbs[1]), (thumbs[2], thumbs[1])]:
        target = whole @ thumb_b @ whole.T
        target = target[:, ::-1] if mirrored else target
        best = max(np.corrcoef((rows @ thumb_a @ cols.T).ravel(), target.ravel())[0, 1]
                   for rows in _jittered(y0, y1) for cols in _jittered(x0, x1))
        found = aligned_correlation(thumb_a, REGIONS[region], thumb_b, mirrored)
        assert found == pytest.approx(best, abs=1e-12)


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    dataset = Dataset({}, [ImageRecord(1, "a.png", 1, 1, "train", path=tmp_path / "a.png")], [])
    with pytest.raises(UsageError, match=r"group_regex '\(' is not a valid regular expression"):
        find_leaks(dataset, group_regex="(")
    with pytest.raises(UsageError, match=r"max_distance must be in 0\.\.63 bits, found 64"):
        find_leaks(dataset, max_distance=64)


def test_fingerprint_of_a_jpeg_uses_draft_and_survives_a_missing_path(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_scene(3, (1200, 1600))).save(path, quality=90)
    fp = fingerprint_file(str(path))
    assert fp.ok and fp.hashes.shape == (len(REGIONS),) and fp.hashes.dtype == np.uint64
    assert fp.thumb.shape == (32, 32) and fp.thumb.dtype == np.uint8
    assert fp.hashes[MIRRORED] == region_hashes(np.asarray(Image.open(path).convert("L"))[:, ::-1])[WHOLE]
    assert fingerprint_file(None).error == "the record names no image file"
    for sent in (fp, fingerprint_file(None)):  # as a helper sends it back
        back = pickle.loads(pickle.dumps(sent))
        assert (back.file_hash, back.error) == (sent.file_hash, sent.error)
        for name in ("hashes", "thumb"):
            ours, theirs = getattr(back, name), getattr(sent, name)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape and (ours == theirs).all()


def _clustered_hashes(seed: int, n: int, centres: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, centres, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    picks = base[rng.integers(0, centres, n)]
    flips = np.zeros(n, np.uint64)
    for _ in range(6):  # up to 6 random bits flipped around each centre: many pairs within small radii
        bit = rng.integers(0, 64, n).astype(np.uint64)
        flips ^= np.where(rng.random(n) < 0.6, np.uint64(1) << bit, np.uint64(0))
    return picks ^ flips


def _brute_force(queries: np.ndarray, index: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
    dist = popcount(queries[:, None] ^ index[None, :])
    q, i = np.nonzero(dist <= radius)
    return list(zip(q.tolist(), i.tolist(), dist[q, i].tolist()))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), radius=st.integers(0, 12),
       chunks=st.one_of(st.none(), st.integers(1, 13)), centres=st.integers(1, 20),
       sizes=st.sampled_from([(150, 200), (200, 150)]))  # more queries than entries: the sides swap
def test_radius_search_equals_brute_force(seed, radius, chunks, centres, sizes):
    if chunks is not None and (chunks > radius + 1 or 64 // chunks > 24 and radius // chunks > 2):
        chunks = None  # keep explicit choices cheap: choose_chunks avoids wide chunks with many probes
    queries = _clustered_hashes(seed, sizes[0], centres)
    index = _clustered_hashes(seed + 1, sizes[1], centres)
    q, i, d = radius_search(queries, index, radius, chunks=chunks, batch_candidates=997)
    assert list(zip(q.tolist(), i.tolist(), d.tolist())) == _brute_force(queries, index, radius)


@pytest.mark.parametrize("workers", [1, 2])
def test_radius_search_on_random_hashes_matches_brute_force_at_radius_8(workers):
    rng = np.random.default_rng(8)
    index = rng.integers(0, 2**64 - 1, 3000, dtype=np.uint64)
    queries = index[:300] ^ (np.uint64(1) << rng.integers(0, 64, 300).astype(np.uint64))
    q, i, d = radius_search(queries, index, 8, workers=workers)  # 2: the chunks shared with a helper
    assert list(zip(q.tolist(), i.tolist(), d.tolist())) == _brute_force(queries, index, 8)
    assert len(q) >= 300


@pytest.mark.parametrize("numpy_count", [True, False], ids=["bitwise_count", "swar"])
def test_popcount_counts_every_bit(monkeypatch, numpy_count):
    if not numpy_count:
        monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy 1 has none
    values = np.random.default_rng(3).integers(0, 2**64 - 1, 1000, dtype=np.uint64, endpoint=True)
    values[:3] = [0, 1, 2**64 - 1]
    assert popcount(values).tolist() == [int(v).bit_count() for v in values.tolist()]


def test_choose_chunks_is_exact_buckets_on_small_indexes_and_wider_on_large():
    assert choose_chunks(100, 8) == 9  # r + 1 chunks: exact-match buckets
    assert choose_chunks(1_000_000, 8) < 9


def test_radius_search_refuses_a_radius_outside_the_hash():
    with pytest.raises(ValueError, match="radius must be in 0..63 bits, found 64"):
        radius_search(np.zeros(1, np.uint64), np.zeros(1, np.uint64), 64)


def test_fingerprint_table_gives_back_each_rows_fingerprint(clean_copy):
    """Rows written in any order, in runs or not, and read between writes, read back exactly (the
    thumbnails from the table's temporary file, whose writes stay buffered while rows come in order)."""
    paths = [str(p) for p in sorted((clean_copy / "images").rglob("*.jpg"))[:4]] + [None]
    prints = [fingerprint_file(p) for p in paths]
    table = FingerprintTable(len(prints))
    for row in (3, 0, 1):
        table[row] = prints[row]
    assert np.array_equal(table.thumb(0), prints[0].thumb)  # a read among buffered writes
    for row in (2, 4):
        table[row] = prints[row]
    for row, fp in enumerate(prints):
        assert (table.file_hashes[row], table.errors[row]) == (fp.file_hash, fp.error)
        assert np.array_equal(table.hashes[row], fp.hashes) and np.array_equal(table.thumb(row), fp.thumb)
    assert table.errors[4] == "the record names no image file"
    table.close()


def test_cache_second_run_hashes_zero_images(clean_copy):
    cache_dir = clean_copy / ".segdata-cache"
    dataset = coco.read(clean_copy)
    first = find_leaks(dataset, cache_dir=cache_dir, workers=1)
    assert (first.hashed, first.cached, first.cache_writable) == (60, 0, True)
    assert (cache_dir / FingerprintCache.FILE).is_file()
    second = find_leaks(dataset, cache_dir=cache_dir, workers=1)
    assert (second.hashed, second.cached) == (0, 60)
    assert second.pairs.equals(first.pairs)
    changed = dataset.images[0].path
    Image.fromarray(_scene(5)).save(changed, format="JPEG")  # new content, new size and mtime: hashed again
    third = find_leaks(dataset, cache_dir=cache_dir, workers=1)
    assert (third.hashed, third.cached) == (1, 59)


def test_a_file_changed_while_it_is_fingerprinted_misses_the_cache_next_time(clean_copy, monkeypatch):
    """The cache keeps each file's size and mtime from before it was read, not after."""
    cache_dir = clean_copy / ".segdata-cache"
    dataset = coco.read(clean_copy)
    changed = dataset.images[0].path

    def rewritten_once_read(path):
        fingerprint = fingerprint_file(path)
        if Path(path) == Path(changed):
            Image.fromarray(_scene(5)).save(changed, format="JPEG")
        return fingerprint

    monkeypatch.setattr("segdata.validators.leakage.fingerprint_file", rewritten_once_read)
    assert find_leaks(dataset, cache_dir=cache_dir, workers=1).hashed == 60
    monkeypatch.undo()
    again = find_leaks(dataset, cache_dir=cache_dir, workers=1)
    assert (again.hashed, again.cached) == (1, 59)


def test_unwritable_cache_folder_is_skipped_and_counted(clean_copy):
    blocker = clean_copy / "a-file"
    blocker.write_text("not a folder")
    result = find_leaks(coco.read(clean_copy), cache_dir=blocker / ".segdata-cache", workers=1)
    assert (result.hashed, result.cache_writable, result.summary["cache_writable"]) == (60, False, False)
    assert result.findings == []


def test_damaged_cache_is_ignored_and_rewritten(clean_copy):
    cache_dir = clean_copy / ".segdata-cache"
    cache_dir.mkdir()
    (cache_dir / FingerprintCache.FILE).write_bytes(b"not an npz")
    result = find_leaks(coco.read(clean_copy), cache_dir=cache_dir, workers=1)
    assert (result.hashed, result.cache_writable) == (60, True)


def test_cache_of_another_version_is_recomputed(clean_copy):
    cache_dir = clean_copy / ".segdata-cache"
    dataset = coco.read(clean_copy)
    find_leaks(dataset, cache_dir=cache_dir, workers=1)
    with np.load(cache_dir / FingerprintCache.FILE) as stored:
        arrays = dict(stored)
    assert int(arrays["version"]) == CACHE_VERSION
    arrays["version"] = np.array(CACHE_VERSION - 1)
    np.savez(cache_dir / FingerprintCache.FILE, **arrays)
    assert find_leaks(dataset, cache_dir=cache_dir, workers=1).hashed == 60
    del arrays["version"]  # a cache from before versioning: the old layout
    np.savez(cache_dir / FingerprintCache.FILE, **arrays)
    assert find_leaks(dataset, cache_dir=cache_dir, workers=1).hashed == 60
    assert find_leaks(dataset, cache_dir=cache_dir, workers=1).hashed == 0


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_dirty_sample_exits_1_and_lists_the_pairs_as_json(samples_dir, tmp_path):
    dirty = shutil.copytree(samples_dir / "coco-dirty", tmp_path / "dirty")
    done = run_segdata("leakage", dirty, "--json", "--workers", "1")
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert [(p["kind"], p["image_a"], p["image_b"]) for p in result["pairs"]] == [
        ("exact-file", "scene_0018.jpg", "scene_0064.jpg"),
        ("near-duplicate", "scene_0002.jpg", "scene_0061.jpg"),
        ("near-duplicate", "scene_0005.jpg", "scene_0062.jpg"),
        ("near-duplicate", "scene_0014.jpg", "scene_0063.jpg"),
    ]
    assert set(result["pairs"][0]) == set(PAIR_COLUMNS)
    assert result["summary"]["by_kind"] == {"exact-file": 1, "near-duplicate": 3}
    assert (Path(dirty) / ".segdata-cache" / "fingerprints.npz").is_file()
    again = run_segdata("leakage", dirty, "--fail-on", "never", "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert "0 fingerprinted, 64 from the cache" in again.stdout
    assert "scene_0064" in again.stdout


def test_cli_splits_from_separate_paths_find_the_same_pairs(samples_dir, tmp_path):
    annotations = Path(shutil.copytree(samples_dir / "coco-dirty", tmp_path / "dirty")) / "annotations"
    # two PATHs (each keeps the split its file names) and one --split NAME=PATH (the split it is given)
    done = run_segdata("leakage", annotations / "instances_train.json", annotations / "instances_val.json",
                       "--split", f"holdout={annotations / 'instances_test.json'}", "--json",
                       "--workers", "1")
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert [(p["kind"], p["split_a"], p["image_a"], p["split_b"], p["image_b"]) for p in result["pairs"]] == [
        ("exact-file", "train", "scene_0018.jpg", "val", "scene_0064.jpg"),
        ("near-duplicate", "train", "scene_0002.jpg", "holdout", "scene_0061.jpg"),
        ("near-duplicate", "train", "scene_0005.jpg", "val", "scene_0062.jpg"),
        ("near-duplicate", "train", "scene_0014.jpg", "holdout", "scene_0063.jpg"),
    ]
    assert result["summary"]["images"] == 64
    assert (annotations / ".segdata-cache" / "fingerprints.npz").is_file()  # beside the first PATH
    twice = run_segdata("leakage", annotations / "instances_train.json", annotations / "instances_train.json")
    assert twice.returncode == 2
    assert twice.stderr.startswith("segdata: error: split 'train' comes from both")
    bad = run_segdata("leakage", annotations / "instances_train.json", "--split", "val")
    assert bad.returncode == 2
    assert bad.stderr.startswith("segdata: error: --split expects NAME=PATH, found 'val'")


def test_cli_preview_draws_each_leaked_pair_side_by_side(samples_dir, tmp_path):
    dirty = shutil.copytree(samples_dir / "coco-dirty", tmp_path / "dirty")
    sheet_path = tmp_path / "sheets" / "leaks.png"
    done = run_segdata("leakage", dirty, "--preview", sheet_path, "--json", "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["preview"] == {"path": str(sheet_path), "rows": 4, "left_out": 0}
    with Image.open(sheet_path) as opened:
        assert opened.format == "PNG"
        sheet = np.asarray(opened.convert("L")).astype(float)
    assert sheet.shape[::-1] == sheet_size_wh(4)

    def cell(row: int, side: int) -> np.ndarray:
        left, top, right, bottom = cell_box_ltrb(row, side)
        return sheet[top:bottom, left:right]

    for row in range(4):
        assert cell(row, 0).std() > 20 and cell(row, 1).std() > 20  # pictures, not blank cells
        similarity = np.corrcoef(cell(row, 0).ravel(), cell(row, 1).ravel())[0, 1]
        assert similarity > 0.9, (row, similarity)  # each row is a pair of copies
    assert np.array_equal(cell(0, 0), cell(0, 1))  # row 0: the exact-file pair (strongest first)
    assert np.corrcoef(cell(0, 0).ravel(), cell(1, 0).ravel())[0, 1] < 0.9  # rows show different pictures
    shown = run_segdata("leakage", dirty, "--preview", tmp_path / "again.png", "--workers", "1")
    assert "contact sheet of 4 leaked pair(s) written to" in shown.stdout
    assert (tmp_path / "again.png").read_bytes() == sheet_path.read_bytes()  # deterministic


def test_cli_clean_sample_exits_0(clean_copy):
    done = run_segdata("leakage", clean_copy, "--no-mirror", "--max-distance", "12",
                       "--group-regex", r"scene_(\d+)")
    assert done.returncode == 0, done.stderr
    assert "no leaks between splits" in done.stdout


def test_cli_same_name_is_a_warning_for_fail_on(tmp_path):
    root = tmp_path / "named"
    for split, seed in (("train", 20), ("val", 21)):
        (root / "images" / split).mkdir(parents=True)
        Image.fromarray(_scene(seed)).save(root / "images" / split / "x.png")
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "x.png", "width": 128, "height": 96}],
            "annotations": [], "categories": [{"id": 1, "name": "thing"}]}))
    assert run_segdata("leakage", root, "--workers", "1").returncode == 0
    warned = run_segdata("leakage", root, "--fail-on", "warning", "--workers", "1")
    assert warned.returncode == 1, warned.stderr
    assert "same-name" in warned.stdout


def test_cli_json_does_not_import_pandas(clean_copy):
    """``pairs`` becomes a frame only when asked for: ``--json`` does not pay pandas' 0.2 s import."""
    code = ("import sys\nfrom segdata.cli import run\n"
            "sys.argv = ['segdata', 'leakage', sys.argv[1], '--json', '--workers', '1']\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\nprint('pandas' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(clean_copy)], capture_output=True, text=True)
    assert json.loads(done.stdout)["summary"]["leak_pairs"] == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "False"


def test_cli_unreadable_images_are_findings_and_the_check_goes_on(clean_copy):
    images = clean_copy / "images"
    truncated, garbage, missing = images / "val" / "scene_0041.jpg", images / "test" / "scene_0051.jpg", \
        images / "test" / "scene_0052.jpg"
    truncated.write_bytes(truncated.read_bytes()[:400])
    garbage.write_bytes(b"this is not an image\n" * 20)
    missing.unlink()
    shutil.copy(images / "train" / "scene_0001.jpg", images / "val" / "scene_0042.jpg")  # a real leak as well
    done = run_segdata("leakage", clean_copy, "--json", "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    unreadable = {(f["split"], f["image_id"]) for f in result["findings"] if f["code"] == "file-unreadable"}
    assert unreadable == {("val", 41), ("test", 51), ("test", 52)}
    assert result["summary"]["unreadable"] == 3
    assert [(p["kind"], p["image_a"], p["image_b"]) for p in result["pairs"]] == [
        ("exact-file", "scene_0001.jpg", "scene_0042.jpg")]


def test_cli_bad_regex_is_one_error_line_and_exit_2(clean_copy):
    done = run_segdata("leakage", clean_copy, "--group-regex", "(")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("segdata: error: group_regex '(' is not a valid regular expression")


def test_cli_help_has_an_example():
    done = run_segdata("leakage", "--help")
    assert done.returncode == 0
    assert "Example: $ segdata leakage" in done.stdout


# ---------------------------------------------------------------------------------------------- --fix


@pytest.mark.parametrize(("policy", "kind", "images_after"), [
    pytest.param("move-to-train", "moved", 64, id="move-to-train"),
    pytest.param("drop-from-eval", "dropped", 60, id="drop-from-eval"),
])
def test_resolve_leaks_on_the_dirty_sample_leaves_no_cross_split_leak(samples_dir, dirty_result, policy, kind,
                                                                       images_after):
    dataset = coco.read(samples_dir / "coco-dirty")
    fixed, changes = resolve_leaks(dataset, dirty_result, policy)
    assert sorted((c.kind, c.split, c.image_id, c.annotations) for c in changes) == sorted([
        (kind, "test", 61, 9), (kind, "val", 62, 6), (kind, "test", 63, 4), (kind, "val", 64, 5)])
    assert len(fixed.images) == images_after
    # the input is untouched
    assert len(dataset.images) == 64 and {i.split for i in dataset.images if i.id == 64} == {"val"}
    again = find_leaks(fixed, workers=1)
    assert again.summary["leak_pairs"] == 0
    if policy == "move-to-train":
        assert again.summary["within_split"] == {"exact-file": 1, "near-duplicate": 3}
        moved = {a.id for a in fixed.annotations if a.split == "train" and a.image_id == 64}
        assert moved == {297, 298, 299, 300, 301}


def test_resolve_leaks_gives_a_moved_image_a_free_id(tmp_path):
    images = [ImageRecord(1, "cam1_a.png", 8, 8, "train"), ImageRecord(1, "cam1_b.png", 8, 8, "val")]
    square = Mask.from_polygons([[0, 0, 4, 0, 4, 4, 0, 4]], 8, 8)
    annotations = [Annotation(7, 1, 1, square, split="train"), Annotation(7, 1, 1, square, split="val")]
    dataset = Dataset({1: Category(1, "a")}, images, annotations)
    fixed, changes = resolve_leaks(dataset, find_leaks(dataset, group_regex="cam1", workers=1))
    assert [(a.split, a.image_id, a.id) for a in fixed.annotations] == [("train", 1, 7), ("train", 2, 8)]
    assert (changes[0].to_split, changes[0].new_image_id) == ("train", 2)
    with pytest.raises(UsageError, match="policy must be one of move-to-train, drop-from-eval, found 'keep'"):
        resolve_leaks(dataset, find_leaks(dataset, workers=1), "keep")


def test_cli_fix_writes_a_dataset_without_leaks_and_dry_run_writes_nothing(samples_dir, tmp_path):
    dirty = shutil.copytree(samples_dir / "coco-dirty", tmp_path / "dirty")
    def files() -> list[Path]:
        return sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if ".segdata-cache" not in p.parts)

    before = files()
    dry = run_segdata("leakage", dirty, "--dry-run", "--resolve", "drop-from-eval", "--workers", "1")
    assert dry.returncode == 1, dry.stderr
    assert "preview (nothing written): drop-from-eval, 4 image(s) changed" in dry.stdout
    assert files() == before
    out = tmp_path / "unleaked"
    done = run_segdata("leakage", dirty, "--fix", out, "--json", "--workers", "1")
    assert done.returncode == 1, done.stderr  # the findings are about the input
    fix = json.loads(done.stdout)["fix"]
    assert (fix["policy"], len(fix["changes"])) == ("move-to-train", 4)
    assert (out / "images" / "train" / "scene_0064.jpg").is_file()
    recheck = run_segdata("leakage", out, "--workers", "1")
    assert recheck.returncode == 0, recheck.stdout + recheck.stderr
    assert "no leaks between splits" in recheck.stdout
