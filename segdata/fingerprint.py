"""Image fingerprints for duplicate and leak detection: file hash, regional perceptual hashes, a thumbnail.

One fingerprint per image file, computed from one reduced-size decode
(Pillow's JPEG draft mode, so a 4000×3000 JPEG is decoded at about 1/8
scale): a SHA-256 hash of the file bytes (its first 16 bytes; SHA-256 rather
than BLAKE2b because most CPUs hash it in hardware, 2–3× faster), 18 64-bit DCT perceptual hashes
and a 32×32 grayscale thumbnail kept to verify candidate pairs.

The hashes are those of the whole image, of the whole image mirrored, and
of 16 regions (each side trimmed by 2.5 % or 7.5 %, :data:`REGIONS`).  A
copy cropped by up to 10 % per side is, after normalisation to a square, a
region of its source whose edges lie within 2.5 % of one of those 16
regions, and pHash tolerates that much: the copy's whole-image hash lands
near one regional hash of its source.  A global hash alone does not: a
crop by 5 % per side moves it 10–20 bits away.  All 18 hashes come from one
matrix product (area resampling and the low 8×8 DCT rows folded together),
so they cost about as much as one.

Radius search over 64-bit hashes goes through multi-index hashing
(:func:`radius_search`), never an N×N matrix, and fingerprints are cached
beside the dataset (:class:`FingerprintCache`) keyed by path, size and
modification time, so that a re-check hashes only new or changed images.

Examples
--------
>>> import numpy as np
>>> index = np.array([0b1111, 0b0111, 0xFF00], dtype=np.uint64)
>>> q, i, d = radius_search(np.array([0b1111], dtype=np.uint64), index, 1)
>>> list(zip(q.tolist(), i.tolist(), d.tolist()))
[(0, 0, 0), (0, 1, 1)]
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from segdata.io import atomic_file
from segdata.parallel import map_images

#: Side of the grayscale thumbnail kept for verification, and of the grid each hash is computed on.
THUMB = 32
#: Per-side trims of the hashed regions: with a 5 % step, any trim of 0–10 % is within 2.5 % of one.
MARGINS = (0.025, 0.075)
#: ``(start, stop)`` fractions of one axis: the whole axis, then the four trimmed intervals.
INTERVALS = ((0.0, 1.0),) + tuple((a, 1.0 - b) for a in MARGINS for b in MARGINS)
#: Box ``(x0, y0, x1, y1)`` (fractions) of each hash: whole, whole mirrored, then 16 regions.
REGIONS = ((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 1.0)) + tuple(
    (x[0], y[0], x[1], y[1]) for y in INTERVALS[1:] for x in INTERVALS[1:])
#: Index of the whole-image hash, and of the mirrored one, in ``Fingerprint.hashes``.
WHOLE, MIRRORED = 0, 1
#: Version of the cached fingerprint layout; a cache of another version is recomputed.
CACHE_VERSION = 2
_DRAFT_HW = (48, 48)  # decode at least 48 pixels a side: coarser grids alias the 32 cells of each hash
_VERIFY = 24  # side of the grids compared when verifying a candidate pair
_JITTER = (-0.025, 0.0, 0.025)  # edge shifts tried when verifying: half the regions' 5 % step
_M1, _M2, _M4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What one image file looks like, or why it could not be read.

    Parameters
    ----------
    file_hash : bytes
        First 16 bytes of the SHA-256 digest of the file bytes (``b""`` when unreadable).
    hashes : ndarray of shape (18,) and dtype uint64
        pHashes of the :data:`REGIONS`: the whole image, the whole image mirrored, 16 trimmed regions.
    thumb : ndarray of shape (32, 32) and dtype uint8
        Grayscale thumbnail of the whole image (area-resampled), to verify candidate pairs.
    error : str, optional
        Why the file could not be read; the other fields are then zeros.
    """

    file_hash: bytes
    hashes: np.ndarray
    thumb: np.ndarray
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was read."""
        return self.error is None

    def __reduce__(self):
        # a batch's fingerprints cross processes by the hundred: as bytes, without a dataclass's per-object
        # fields() and two array pickles, 256 of them pickle in 0.4 ms, not 3.0 ms, and load in 0.9, not 2.0
        return _unpack_fingerprint, (self.file_hash, self.hashes.tobytes(), self.thumb.tobytes(), self.error)


def _unpack_fingerprint(file_hash: bytes, hashes: bytes, thumb: bytes, error: str | None) -> Fingerprint:
    return Fingerprint(file_hash, np.frombuffer(hashes, np.uint64),  # read-only, as the object is frozen
                       np.frombuffer(thumb, np.uint8).reshape(THUMB, THUMB), error)


class FingerprintTable:
    """Fingerprints of many files, a row each: hashes in memory, thumbnails in an unnamed temporary file.

    About 200 bytes a file stay in memory; the 1 KB thumbnails are read back
    only for the candidate pairs a search finds, so checking millions of
    images does not hold gigabytes of thumbnails.  The file goes away with
    :meth:`close` (or the table).
    """

    def __init__(self, rows: int):
        self.file_hashes = [b""] * rows
        self.hashes = np.zeros((rows, len(REGIONS)), np.uint64)
        self.errors: list[str | None] = ["not fingerprinted"] * rows
        self._thumbs = tempfile.TemporaryFile()

    def __setitem__(self, row: int, fingerprint: Fingerprint) -> None:
        self.file_hashes[row] = fingerprint.file_hash
        self.hashes[row] = fingerprint.hashes
        self.errors[row] = fingerprint.error
        if self._thumbs.tell() != row * THUMB * THUMB:  # rows mostly come in order: a seek would flush
            self._thumbs.seek(row * THUMB * THUMB)     # the buffer, a write call for every 1 KB thumbnail
        self._thumbs.write(np.ascontiguousarray(fingerprint.thumb, np.uint8).tobytes())

    def thumb(self, row: int) -> np.ndarray:
        """The ``(32, 32)`` uint8 thumbnail of a row."""
        self._thumbs.seek(row * THUMB * THUMB)
        return np.frombuffer(self._thumbs.read(THUMB * THUMB), np.uint8).reshape(THUMB, THUMB)

    def close(self) -> None:
        self._thumbs.close()


def popcount(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64, as uint8.

    numpy 2's ``bitwise_count`` (one CPU instruction a value); on numpy 1,
    the same counts by SWAR, a dozen array passes.

    Examples
    --------
    >>> popcount(np.array([0, 1, 0xFF, 2**64 - 1], dtype=np.uint64)).tolist()
    [0, 1, 8, 64]
    """
    v = np.asarray(values, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(v)
    v = v - ((v >> np.uint64(1)) & _M1)
    v = (v & _M2) + ((v >> np.uint64(2)) & _M2)
    v = (v + (v >> np.uint64(4))) & _M4
    return ((v * _H01) >> np.uint64(56)).astype(np.uint8)


@lru_cache(maxsize=4096)
def _area_matrix(n_in: int, start: float, stop: float, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights: row i averages the pixels under cell i of ``[start, stop]``."""
    edges = n_in * (start + (stop - start) * np.arange(n_out + 1) / n_out)
    pixels = np.arange(n_in + 1, dtype=np.float64)
    overlap = np.minimum(edges[1:, None], pixels[None, 1:]) - np.maximum(edges[:-1, None], pixels[None, :-1])
    weights = np.clip(overlap, 0, None)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def _dct8() -> np.ndarray:
    """The 8 lowest rows of the (unnormalised) 32-point DCT-II, as ``imagehash.phash`` uses them."""
    k, n = np.arange(8)[:, None], np.arange(THUMB)[None, :]
    return 2 * np.cos(np.pi * k * (2 * n + 1) / (2 * THUMB))


@lru_cache(maxsize=1024)
def _hash_rows(n_in: int) -> np.ndarray:
    """``(40, n_in)``: per :data:`INTERVALS` entry, the low DCT rows of its 32 area-resampled cells."""
    rows = np.concatenate([_dct8() @ _area_matrix(n_in, a, b, THUMB) for a, b in INTERVALS])
    rows.setflags(write=False)
    return rows


def _bits(low: np.ndarray) -> np.ndarray:
    """64-bit hashes of ``(K, 8, 8)`` DCT blocks: a bit per term above its block's median (bit 63: (0, 0))."""
    flat = low.reshape(len(low), 64)
    middle = np.partition(flat, (31, 32), axis=1)  # the median of 64 values, without a full sort
    bits = flat > (middle[:, 31:32] + middle[:, 32:33]) / 2
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def region_hashes(gray: np.ndarray) -> np.ndarray:
    """The 18 pHashes of :data:`REGIONS` of one grayscale image.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Any numeric dtype; H, W >= 1.

    Returns
    -------
    ndarray of shape (18,) and dtype uint64
    """
    gray = np.asarray(gray, np.float64)
    low = _hash_rows(gray.shape[0]) @ gray @ _hash_rows(gray.shape[1]).T  # (40, 40): 5 × 5 blocks of 8 × 8
    blocks = low.reshape(5, 8, 5, 8).transpose(0, 2, 1, 3)
    whole = blocks[0, 0]
    mirrored = whole * (-1.0) ** np.arange(8)[None, :]  # mirroring flips the sign of odd horizontal terms
    return _bits(np.concatenate([whole[None], mirrored[None], blocks[1:, 1:].reshape(16, 8, 8)]))


def phash(thumb: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of a grayscale image (the whole-image entry of :func:`region_hashes`).

    Examples
    --------
    >>> t = np.tile(np.arange(32, dtype=np.uint8), (32, 1))
    >>> bool(phash(t) == phash(t * 2)), bool(phash(t) == phash(t[:, ::-1]))
    (True, False)
    """
    return region_hashes(thumb)[WHOLE]


def fingerprint_file(path: str | None) -> Fingerprint:
    """Fingerprint one image file; an unreadable file gives a fingerprint with ``error`` set.

    Parameters
    ----------
    path : str or None
        The image file (``None``: the record names no file).

    Returns
    -------
    Fingerprint
        Never raises for a bad file: missing, truncated and corrupt files set ``error``.
    """
    empty = Fingerprint(b"", np.zeros(len(REGIONS), np.uint64), np.zeros((THUMB, THUMB), np.uint8))
    if path is None:
        return Fingerprint(empty.file_hash, empty.hashes, empty.thumb, "the record names no image file")
    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("L", _DRAFT_HW)  # JPEG: decode at reduced scale; other formats ignore it
            gray = ImageOps.exif_transpose(opened).convert("L")
            factor = min(gray.size) // (2 * _DRAFT_HW[0])
            if factor > 1:  # a large PNG: box-reduce before the matrix products
                gray = gray.reduce(factor)
            pixels = np.asarray(gray, np.float64)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return Fingerprint(empty.file_hash, empty.hashes, empty.thumb, f"{type(err).__name__}: {err}")
    height, width = pixels.shape
    thumb = _area_matrix(height, 0.0, 1.0, THUMB) @ pixels @ _area_matrix(width, 0.0, 1.0, THUMB).T
    return Fingerprint(hashlib.sha256(data).digest()[:16], region_hashes(pixels),
                       np.clip(np.rint(thumb), 0, 255).astype(np.uint8))


def image_header(path: str) -> tuple[str, tuple[int, int]] | None:
    """``(mode, (width, height))`` after EXIF orientation, from the header alone (``None`` if unreadable).

    Two files can only have the same pixels when their headers agree, so
    :func:`pixel_hash` (a full decode) is needed only then.
    """
    try:
        with Image.open(path) as opened:
            turned = opened.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # orientations that swap the axes
            return opened.mode, (opened.size[::-1] if turned else opened.size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def pixel_hash(path: str) -> bytes | None:
    """SHA-256 digest of the fully decoded pixels after EXIF orientation (``None`` if unreadable)."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            pixels = np.ascontiguousarray(np.asarray(image))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    digest = hashlib.sha256()
    digest.update(f"{image.mode}{pixels.shape}{pixels.dtype}".encode())
    digest.update(pixels.tobytes())
    return digest.digest()[:16]


@lru_cache(maxsize=64)
def _jittered(start: float, stop: float) -> np.ndarray:
    """``(J, 24, 32)`` resamplings of ``[start, stop]``, each end moved by ``_JITTER`` (within [0, 1])."""
    spans = sorted({(round(min(max(start + d0, 0.0), 1.0), 4), round(min(max(stop + d1, 0.0), 1.0), 4))
                    for d0 in _JITTER for d1 in _JITTER})
    return np.stack([_area_matrix(THUMB, a, b, _VERIFY) for a, b in spans if b - a > 0.5])


def aligned_correlation(thumb_a: np.ndarray, box: tuple[float, float, float, float], thumb_b: np.ndarray,
                        mirrored: bool = False) -> float:
    """Best correlation between region ``box`` of ``thumb_a`` and the whole of ``thumb_b``, over small shifts.

    Each edge of ``box`` is moved by -2.5 %, 0 and +2.5 % (up to 81
    framings); the region and ``thumb_b`` (mirrored if ``mirrored``) are
    area-resampled to 24×24 and the highest Pearson correlation is returned.
    This is the verification of a hash candidate: a cropped copy's
    framing is found to within about 1 % and correlates near 1, while a
    different picture whose hash merely came close does not.

    Parameters
    ----------
    thumb_a, thumb_b : ndarray of shape (32, 32)
        Thumbnails of :class:`Fingerprint`.
    box : tuple of 4 floats
        ``(x0, y0, x1, y1)`` fractions of ``thumb_a`` (an entry of :data:`REGIONS`).
    mirrored : bool
        Compare with ``thumb_b`` mirrored left-right.

    Returns
    -------
    float
        In [-1, 1]; two flat images (no structure to correlate) give 1.0 when within 4 grey levels, else 0.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.integers(0, 256, (32, 32)), rng.integers(0, 256, (32, 32))
    >>> round(aligned_correlation(a, REGIONS[WHOLE], a[:, ::-1], mirrored=True), 3)
    1.0
    >>> aligned_correlation(a, REGIONS[WHOLE], b) < 0.5
    True
    """
    x0, y0, x1, y1 = box
    target = _area_matrix(THUMB, 0.0, 1.0, _VERIFY) @ np.asarray(thumb_b, np.float64)
    target = target @ _area_matrix(THUMB, 0.0, 1.0, _VERIFY).T
    if mirrored:
        target = target[:, ::-1]
    rows, cols = _jittered(y0, y1), _jittered(x0, x1)
    tall = rows.reshape(-1, THUMB) @ np.asarray(thumb_a, np.float64)  # (rows framings × 24, 32)
    # every (row framing, column framing) grid from one matrix product (einsum: 1.55 ms a candidate; now 0.85)
    grids = (tall @ cols.reshape(-1, THUMB).T).reshape(len(rows), _VERIFY, len(cols), _VERIFY)
    grids = grids.transpose(0, 2, 1, 3).reshape(-1, _VERIFY * _VERIFY)
    target = target.ravel()
    grids_mean = grids.mean(axis=1)
    grids = grids - grids_mean[:, None]
    spread, target_spread = grids.std(axis=1), target.std()
    if target_spread < 1:  # flat: no structure to correlate, compare brightness instead
        return 1.0 if (np.abs(grids_mean[spread < 1] - target.mean()) < 4).any() else 0.0
    best = (grids @ (target - target.mean())) / (np.maximum(spread, 1e-9) * target_spread * len(target))
    best[spread < 1] = 0.0
    return float(best.max())


# --------------------------------------------------------------------------------------------
# radius search: multi-index hashing


def _chunk_widths(chunks: int) -> list[int]:
    return [64 // chunks + (i < 64 % chunks) for i in range(chunks)]


def _flips(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set."""
    masks = [sum(1 << b for b in bits) for r in range(radius + 1) for bits in combinations(range(width), r)]
    return np.array(masks, dtype=np.uint64)


def choose_chunks(n_index: int, radius: int) -> int:
    """Chunks for :func:`radius_search`: the count with the fewest expected bucket probes and candidates.

    With ``m`` chunks, a pair within ``radius`` agrees within ``radius // m``
    bits on at least one chunk (pigeonhole).  ``m = radius + 1`` means exact
    bucket matches; fewer, wider chunks cost enumerated probes but give far
    fewer false candidates on large indexes.
    """
    best, best_cost = radius + 1, float("inf")
    for m in range(1, min(radius + 1, 64) + 1):
        width = max(_chunk_widths(m))
        probes = sum(comb(width, r) for r in range(radius // m + 1))
        if probes > 50_000 or width > 40:
            continue
        cost = m * probes * (1 + n_index / 2.0 ** min(_chunk_widths(m)))
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def radius_search(queries: np.ndarray, index: np.ndarray, radius: int, *, chunks: int | None = None,
                  batch_candidates: int = 1 << 16,
                  workers: int | None = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query, index entry) pairs of 64-bit hashes within Hamming ``radius``, without an N×N matrix.

    Multi-index hashing: each hash is cut into ``chunks`` bit ranges; by
    pigeonhole, two hashes within ``radius`` agree within ``radius // chunks``
    bits on some range, so probing each range's buckets (a CSR table over
    the sorted chunk values) finds every candidate, and the full distance
    then keeps the true ones.  Probes cost per query and candidates per
    pair, so the smaller side is the one probed, whichever it is.

    Parameters
    ----------
    queries, index : ndarray of shape (Q,) and (N,), dtype uint64
    radius : int
        Largest Hamming distance kept, 0 to 63.
    chunks : int, optional
        Chunks per hash (default: :func:`choose_chunks`).
    batch_candidates : int
        Rough number of candidates verified per numpy batch (memory bound).
    workers : int, optional
        Processes sharing the chunks (:func:`segdata.parallel.map_images`; ``None``: all cores).

    Returns
    -------
    (query_idx, index_idx, distance) : ndarrays of shape (K,)
        Sorted by query, then index entry; each pair once.

    Raises
    ------
    ValueError
        ``radius`` outside 0..63 or ``chunks`` outside 1..64.
    """
    if not 0 <= radius < 64:
        raise ValueError(f"radius must be in 0..63 bits, found {radius}")
    queries, index = np.asarray(queries, np.uint64).ravel(), np.asarray(index, np.uint64).ravel()
    swapped = len(queries) > len(index)
    if swapped:
        queries, index = index, queries
    chunks = choose_chunks(len(index), radius) if chunks is None else chunks
    if not 1 <= chunks <= 64:
        raise ValueError(f"chunks must be in 1..64, found {chunks}")
    widths = _chunk_widths(chunks)
    spans = list(zip((64 - np.cumsum(widths)).tolist(), widths))  # (shift, width), high bits first
    search = partial(_search_chunk, queries, index, radius, radius // chunks, batch_candidates)
    found = list(map_images(search, spans, workers=workers, batch_size=1))
    q, i = (np.concatenate([part[side] for part in found]) for side in (0, 1))
    if swapped:
        queries, index, q, i = index, queries, i, q
    pair = np.unique(q * max(len(index), 1) + i)
    q, i = pair // max(len(index), 1), pair % max(len(index), 1)
    return q, i, popcount(queries[q] ^ index[i])


def _search_chunk(queries: np.ndarray, index: np.ndarray, radius: int, flip_radius: int,
                  batch_candidates: int, span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within ``radius`` whose bits at ``span`` (shift, width) differ by ``flip_radius`` at most."""
    shift, width = span
    mask = np.uint64((1 << width) - 1)
    keys = (index >> np.uint64(shift)) & mask
    order = np.argsort(keys, kind="stable")
    by_key = index[order]  # candidates are compared here, in bucket order: no gather through ``order``
    if width <= 24:  # a direct-address CSR table: one gather per probe instead of two binary searches
        sizes = np.bincount(keys.astype(np.int64), minlength=1 << width)
        occupied = sizes > 0  # 1 byte a bucket: most probes miss, and this table stays in cache
        offsets = np.zeros((1 << width) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
    else:
        sorted_keys = keys[order]
    qkeys = (queries >> np.uint64(shift)) & mask
    flips = _flips(width, flip_radius)
    per_query = len(flips) * (1 + len(index) / 2.0**width)
    step = max(1, int(batch_candidates / per_query))
    found_q, found_i = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in range(0, len(queries), step):
        probes = (qkeys[start:start + step, None] ^ flips[None, :]).ravel()
        if width <= 24:
            probes = probes.astype(np.int64)
            hit = np.flatnonzero(occupied[probes])
            lo = offsets[probes[hit]]
            counts = offsets[probes[hit] + 1] - lo
        else:
            lo = np.searchsorted(sorted_keys, probes, "left")
            counts = np.searchsorted(sorted_keys, probes, "right") - lo
            hit = np.flatnonzero(counts)
            lo, counts = lo[hit], counts[hit]
        if not len(hit):
            continue
        ends = np.cumsum(counts)
        position = np.repeat(lo - (ends - counts), counts) + np.arange(ends[-1])  # in ``by_key``
        hit_query = start + hit // len(flips)
        distance = popcount(np.repeat(queries[hit_query], counts) ^ by_key[position])
        near = np.flatnonzero(distance <= radius)
        found_q.append(hit_query[np.searchsorted(ends, near, "right")])
        found_i.append(order[position[near]])
    return np.concatenate(found_q), np.concatenate(found_i)


# --------------------------------------------------------------------------------------------
# cache


def cache_dir_for(dataset_path: str | Path) -> Path:
    """Where the fingerprints of a dataset are cached: ``.segdata-cache/`` beside its annotations."""
    dataset_path = Path(dataset_path)
    return (dataset_path if dataset_path.is_dir() else dataset_path.parent) / ".segdata-cache"


class FingerprintCache:
    """Fingerprints kept in ``<folder>/fingerprints.npz``, keyed by path, file size and mtime.

    A folder that cannot be created or written is skipped silently, and
    ``writable`` says so; a damaged cache file, or one written with another
    :data:`CACHE_VERSION` (another set of hashes), is ignored and rewritten.
    """

    FILE = "fingerprints.npz"

    def __init__(self, folder: str | Path | None):
        self.folder = None if folder is None else Path(folder)
        self.writable: bool | None = None
        self._rows: dict[str, tuple[int, int, Fingerprint]] = {}
        self._dirty = False
        if self.folder is not None and (self.folder / self.FILE).is_file():
            try:
                with np.load(self.folder / self.FILE, allow_pickle=False) as stored:
                    if "version" in stored and int(stored["version"]) == CACHE_VERSION:
                        for key, size, mtime, fh, hashes, thumb in zip(
                                stored["keys"].tolist(), stored["sizes"].tolist(), stored["mtimes"].tolist(),
                                stored["file_hashes"], stored["hashes"], stored["thumbs"]):
                            self._rows[key] = (size, mtime, Fingerprint(bytes(fh), hashes, thumb))
            except (OSError, ValueError, KeyError):
                self._rows = {}

    @staticmethod
    def stamp(path: str | None) -> tuple[int, int] | None:
        """``(size, mtime_ns)`` of a file, or ``None`` when it cannot be stat'ed."""
        if path is None:
            return None
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def get(self, path: str | None) -> Fingerprint | None:
        """The cached fingerprint of an unchanged file, else ``None``."""
        if not self._rows:
            return None
        stamp = self.stamp(path)
        row = self._rows.get(str(path)) if stamp is not None else None
        return row[2] if row is not None and row[:2] == stamp else None

    def put(self, path: str | None, fingerprint: Fingerprint, stamp: tuple[int, int] | None) -> None:
        """Remember a readable file's fingerprint under its :meth:`stamp` from before it was read (no folder:
        nothing kept; unreadable or unstamped: retried next time)."""
        if self.folder is None:
            return
        if fingerprint.ok and stamp is not None:
            self._rows[str(path)] = (*stamp, fingerprint)
            self._dirty = True

    def save(self) -> None:
        """Write the cache atomically, if anything changed and the folder is writable."""
        if self.folder is None or not self._dirty:
            return
        keys = list(self._rows)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_file(self.folder / self.FILE) as handle:  # straight to the file: no second copy in memory
                np.savez(handle, version=np.array(CACHE_VERSION), keys=np.array(keys, dtype=str),
                         sizes=np.array([self._rows[k][0] for k in keys], np.int64),
                         mtimes=np.array([self._rows[k][1] for k in keys], np.int64),
                         file_hashes=np.array([np.frombuffer(self._rows[k][2].file_hash, np.uint8) for k in keys],
                                              np.uint8).reshape(len(keys), 16),
                         hashes=np.array([self._rows[k][2].hashes for k in keys], np.uint64).reshape(
                             len(keys), len(REGIONS)),
                         thumbs=np.array([self._rows[k][2].thumb for k in keys], np.uint8).reshape(
                             len(keys), THUMB, THUMB))
        except OSError:
            self.writable = False
            return
        self.writable = True
        self._dirty = False
