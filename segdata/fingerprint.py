"""Image fingerprints for duplicate and leak detection: file hash, perceptual hashes, thumbnails.

One fingerprint per image file, computed from one reduced-size decode
(Pillow's JPEG draft mode, so a 4000×3000 JPEG is decoded at about 1/8
scale): a BLAKE2b hash of the file bytes, two 64-bit DCT perceptual hashes
(pHash of the whole image and of its central crop) and the two 32×32
grayscale thumbnails they come from, kept to verify candidate pairs.

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
from dataclasses import dataclass
from itertools import combinations
from math import comb
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from segdata.io import write_bytes_atomic

#: Side of the grayscale thumbnails hashed and compared.
THUMB = 32
#: Hashes (and thumbnails) per image: the whole image, then its central crop.
KINDS = ("global", "crop")
_DRAFT_HW = (64, 64)
_M1, _M2, _M4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What one image file looks like, or why it could not be read.

    Parameters
    ----------
    file_hash : bytes
        16-byte BLAKE2b digest of the file bytes (``b""`` when unreadable).
    hashes : ndarray of shape (2,) and dtype uint64
        pHash of the whole image and of its central crop.
    thumbs : ndarray of shape (2, 32, 32) and dtype uint8
        The grayscale thumbnails the hashes were computed from.
    error : str, optional
        Why the file could not be read; the other fields are then empty.
    """

    file_hash: bytes
    hashes: np.ndarray
    thumbs: np.ndarray
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was read."""
        return self.error is None


def popcount(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 (SWAR; numpy < 2 has no ``bitwise_count``).

    Examples
    --------
    >>> popcount(np.array([0, 1, 0xFF, 2**64 - 1], dtype=np.uint64)).tolist()
    [0, 1, 8, 64]
    """
    v = np.asarray(values, dtype=np.uint64)
    v = v - ((v >> np.uint64(1)) & _M1)
    v = (v & _M2) + ((v >> np.uint64(2)) & _M2)
    v = (v + (v >> np.uint64(4))) & _M4
    return ((v * _H01) >> np.uint64(56)).astype(np.uint8)


def phash(thumb: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of a 32×32 grayscale thumbnail (the ``imagehash.phash`` recipe).

    The low 8×8 DCT coefficients are compared with their median; bit 63 is
    coefficient (0, 0).
    """
    low = cv2.dct(np.asarray(thumb, dtype=np.float32))[:8, :8]
    bits = (low > np.median(low)).ravel()
    return np.packbits(bits).view(">u8")[0].astype(np.uint64)


def _thumb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.resize((THUMB, THUMB), Image.Resampling.LANCZOS), dtype=np.uint8)


def fingerprint_file(path: str | None, crop: float = 0.8) -> Fingerprint:
    """Fingerprint one image file; an unreadable file gives a fingerprint with ``error`` set.

    Parameters
    ----------
    path : str or None
        The image file (``None``: the record names no file).
    crop : float
        Side of the central crop, as a fraction of the image side.

    Returns
    -------
    Fingerprint
        Never raises for a bad file: missing, truncated and corrupt files set ``error``.
    """
    empty = Fingerprint(b"", np.zeros(len(KINDS), np.uint64), np.zeros((len(KINDS), THUMB, THUMB), np.uint8))
    if path is None:
        return Fingerprint(empty.file_hash, empty.hashes, empty.thumbs, "the record names no image file")
    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("L", _DRAFT_HW)  # JPEG: decode at reduced scale; other formats ignore it
            gray = ImageOps.exif_transpose(opened).convert("L")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return Fingerprint(empty.file_hash, empty.hashes, empty.thumbs, f"{type(err).__name__}: {err}")
    width, height = gray.size
    margin_w, margin_h = width * (1 - crop) / 2, height * (1 - crop) / 2
    box = (round(margin_w), round(margin_h), max(round(width - margin_w), round(margin_w) + 1),
           max(round(height - margin_h), round(margin_h) + 1))
    thumbs = np.stack([_thumb(gray), _thumb(gray.crop(box))])
    hashes = np.array([phash(t) for t in thumbs], dtype=np.uint64)
    return Fingerprint(hashlib.blake2b(data, digest_size=16).digest(), hashes, thumbs)


def pixel_hash(path: str) -> bytes | None:
    """BLAKE2b digest of the fully decoded pixels after EXIF orientation (``None`` if unreadable)."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            pixels = np.ascontiguousarray(np.asarray(image))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}{pixels.shape}{pixels.dtype}".encode())
    digest.update(pixels.tobytes())
    return digest.digest()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two thumbnails (1.0 for two flat thumbnails of about the same grey).

    Examples
    --------
    >>> t = np.arange(1024, dtype=np.uint8).reshape(32, 32)
    >>> round(correlation(t, t), 3), round(correlation(t, 255 - t), 3)
    (1.0, -1.0)
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    sa, sb = a.std(), b.std()
    if sa < 1 or sb < 1:  # flat: no structure to correlate, compare brightness instead
        return 1.0 if sa < 1 and sb < 1 and abs(a.mean() - b.mean()) < 4 else 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


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
                  batch_candidates: int = 1 << 22) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query, index entry) pairs of 64-bit hashes within Hamming ``radius``, without an N×N matrix.

    Multi-index hashing: each hash is cut into ``chunks`` bit ranges; by
    pigeonhole, two hashes within ``radius`` agree within ``radius // chunks``
    bits on some range, so probing each range's buckets (a CSR table over
    the sorted chunk values) finds every candidate, and the full distance
    then keeps the true ones.

    Parameters
    ----------
    queries, index : ndarray of shape (Q,) and (N,), dtype uint64
    radius : int
        Largest Hamming distance kept, 0 to 63.
    chunks : int, optional
        Chunks per hash (default: :func:`choose_chunks`).
    batch_candidates : int
        Rough number of candidates verified per numpy batch (memory bound).

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
    chunks = choose_chunks(len(index), radius) if chunks is None else chunks
    if not 1 <= chunks <= 64:
        raise ValueError(f"chunks must be in 1..64, found {chunks}")
    found_q, found_i = [], []
    shift = 64
    for width in _chunk_widths(chunks):
        shift -= width
        mask = np.uint64((1 << width) - 1)
        keys = (index >> np.uint64(shift)) & mask
        order = np.argsort(keys, kind="stable")
        if width <= 24:  # a direct-address CSR table: one gather per probe instead of two binary searches
            offsets = np.zeros((1 << width) + 1, np.int64)
            np.cumsum(np.bincount(keys.astype(np.int64), minlength=1 << width), out=offsets[1:])
        else:
            sorted_keys = keys[order]
        qkeys = (queries >> np.uint64(shift)) & mask
        flips = _flips(width, radius // chunks)
        per_query = len(flips) * (1 + len(index) / 2.0**width)
        step = max(1, int(batch_candidates / per_query))
        for start in range(0, len(queries), step):
            probes = (qkeys[start:start + step, None] ^ flips[None, :]).ravel()
            if width <= 24:
                probes = probes.astype(np.int64)
                lo = offsets[probes]
                counts = offsets[probes + 1] - lo
            else:
                lo = np.searchsorted(sorted_keys, probes, "left")
                counts = np.searchsorted(sorted_keys, probes, "right") - lo
            hit = np.flatnonzero(counts)
            if not len(hit):
                continue
            lo, counts = lo[hit], counts[hit]
            total = int(counts.sum())
            q = np.repeat(start + hit // len(flips), counts)
            offsets_in = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            i = order[np.repeat(lo, counts) + offsets_in]
            keep = popcount(queries[q] ^ index[i]) <= radius
            found_q.append(q[keep])
            found_i.append(i[keep])
    if not found_q:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.uint8)
    pair = np.unique(np.concatenate(found_q) * max(len(index), 1) + np.concatenate(found_i))
    q, i = pair // max(len(index), 1), pair % max(len(index), 1)
    return q, i, popcount(queries[q] ^ index[i])


# --------------------------------------------------------------------------------------------
# cache


def cache_dir_for(dataset_path: str | Path) -> Path:
    """Where the fingerprints of a dataset are cached: ``.segdata-cache/`` beside its annotations."""
    dataset_path = Path(dataset_path)
    return (dataset_path if dataset_path.is_dir() else dataset_path.parent) / ".segdata-cache"


class FingerprintCache:
    """Fingerprints kept in ``<folder>/fingerprints.npz``, keyed by path, file size and mtime.

    A folder that cannot be created or written is skipped silently, and
    ``writable`` says so; a damaged cache file is ignored and rewritten.
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
                    for key, size, mtime, fh, hashes, thumbs in zip(
                            stored["keys"].tolist(), stored["sizes"].tolist(), stored["mtimes"].tolist(),
                            stored["file_hashes"], stored["hashes"], stored["thumbs"]):
                        self._rows[key] = (size, mtime, Fingerprint(bytes(fh), hashes, thumbs))
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
        stamp = self.stamp(path)
        row = self._rows.get(str(path)) if stamp is not None else None
        return row[2] if row is not None and row[:2] == stamp else None

    def put(self, path: str | None, fingerprint: Fingerprint) -> None:
        """Remember a readable file's fingerprint (unreadable files are retried next time)."""
        stamp = self.stamp(path)
        if fingerprint.ok and stamp is not None:
            self._rows[str(path)] = (*stamp, fingerprint)
            self._dirty = True

    def save(self) -> None:
        """Write the cache atomically, if anything changed and the folder is writable."""
        if self.folder is None or not self._dirty:
            return
        keys = list(self._rows)
        buffer = io.BytesIO()
        np.savez(buffer, keys=np.array(keys, dtype=str),
                 sizes=np.array([self._rows[k][0] for k in keys], np.int64),
                 mtimes=np.array([self._rows[k][1] for k in keys], np.int64),
                 file_hashes=np.array([np.frombuffer(self._rows[k][2].file_hash, np.uint8) for k in keys],
                                      np.uint8).reshape(len(keys), 16),
                 hashes=np.array([self._rows[k][2].hashes for k in keys], np.uint64).reshape(
                     len(keys), len(KINDS)),
                 thumbs=np.array([self._rows[k][2].thumbs for k in keys], np.uint8).reshape(
                     len(keys), len(KINDS), THUMB, THUMB))
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(self.folder / self.FILE, buffer.getvalue())
        except OSError:
            self.writable = False
            return
        self.writable = True
        self._dirty = False
