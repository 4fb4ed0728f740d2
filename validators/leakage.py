"""Leakage between splits: the same picture, scene or labels in training and evaluation.

Pairs of images in different splits are reported with the strongest kind
that links them, one pair once, strongest first:

``exact-file``
    the same bytes (SHA-256 of the file);
``exact-pixels``
    different bytes, the same decoded pixels after EXIF orientation;
``near-duplicate``
    a perceptual hash of one image (of the whole image, or of one of 16
    regions trimmed by 2.5–7.5 % per side) within ``max_distance`` bits of
    the whole-image hash of the other (or of it mirrored, when ``mirror``),
    confirmed by a correlation of at least ``min_correlation`` between that
    region and the other image, aligned to within about 1 % on 24×24
    grayscale grids: re-encoded, resized, brightness-shifted, mirrored and
    copies cropped by up to 10 % per side;
``same-group``
    the same group key (``ImageRecord.group``, or ``group_regex`` matched on
    the file name: its first capture group, else the whole match) — frames
    of one video, slices of one patient;
``same-masks``
    different image files whose annotation masks are identical (the same
    non-empty set of RLEs with the same classes): a re-exported or
    re-encoded copy that the pixels alone may miss;
``same-name``
    the same file name (last path component) in two splits; a warning.

So a byte-identical copy is ``exact-file`` only, not also a near-duplicate
at distance 0.  The same links inside one split are reported as
``duplicate-within-split`` (info) with the kind in ``details``.  Files that
cannot be read are ``file-unreadable`` and left out; the check never aborts.

This check is not in the :func:`segdata.validators.validate` registry: it
needs image decoding and a cache folder, and runs as ``segdata leakage``.

Examples
--------
>>> from segdata.model import Dataset, ImageRecord
>>> images = [ImageRecord(1, "a/cam1_001.png", 8, 8, "train"), ImageRecord(2, "b/cam1_002.png", 8, 8, "val")]
>>> result = find_leaks(Dataset({}, images, []), group_regex=r"cam\\d+", workers=1)
>>> result.pairs[["kind", "image_a", "image_b"]].values.tolist()
[['same-group', 'a/cam1_001.png', 'b/cam1_002.png']]
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

from segdata.errors import UsageError
from segdata.fingerprint import (MIRRORED, REGIONS, WHOLE, FingerprintCache, FingerprintTable,
                                 aligned_correlation, fingerprint_file, image_header, pixel_hash,
                                 radius_search)
from segdata.model import Annotation, Dataset, Finding, ImageRecord, image_values
from segdata.parallel import map_images

if TYPE_CHECKING:
    import pandas as pd

#: Pair kinds, strongest first (a pair is reported under its strongest kind).
LEAK_KINDS = ("exact-file", "exact-pixels", "near-duplicate", "same-group", "same-masks", "same-name")

#: Code -> default severity of every finding this check emits.
LEAK_CODES = {
    "leak-exact-file": "error",
    "leak-exact-pixels": "error",
    "leak-near-duplicate": "error",
    "leak-same-masks": "warning",
    "leak-same-group": "error",
    "leak-same-name": "warning",
    "duplicate-within-split": "info",
    "file-unreadable": "error",
}

PAIR_COLUMNS = ["kind", "split_a", "image_a", "split_b", "image_b", "distance"]

_WHAT = {
    "exact-file": "is a byte-identical copy of",
    "exact-pixels": "has the same decoded pixels as",
    "near-duplicate": "is a near-duplicate of",
    "same-masks": "has the same annotation masks as",
    "same-group": "is in the same group as",
    "same-name": "has the same file name as",
}


@dataclass
class LeakageResult:
    """Findings, the pairs table and a summary of one leakage check.

    ``pairs`` has the columns ``kind, split_a, image_a, split_b, image_b,
    distance`` (images by file name; ``distance`` the pHash Hamming distance
    for near-duplicates, 0 for exact kinds, missing otherwise), within-split
    pairs included (``split_a == split_b``); it is made from ``pair_rows``
    when first asked for (importing pandas takes 0.2 s, in the command's
    process and each Dask worker, and ``--json`` needs no frame).
    ``hashed`` counts the images fingerprinted by this run and ``cached``
    those taken from the cache.
    """

    findings: list[Finding]
    pair_rows: list[tuple[str, str, str, str, str, int | None]]  # the rows of ``pairs``
    summary: dict[str, Any]
    hashed: int = 0
    cached: int = 0
    cache_writable: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def pairs(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.pair_rows, columns=PAIR_COLUMNS).astype({"distance": "Int64"})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``segdata leakage --json``: pairs (null distances as None), summary, findings."""
        return {"pairs": [dict(zip(PAIR_COLUMNS, row)) for row in self.pair_rows], "summary": self.summary,
                "findings": [f.to_dict() for f in self.findings]}


def _split_order(splits: list[str]) -> dict[str, int]:
    """``train`` first (the side leaks come from), then the splits in order of appearance."""
    ordered = sorted(splits, key=lambda s: (s != "train", splits.index(s)))
    return {split: rank for rank, split in enumerate(ordered)}


def group_key(group_regex: str | None) -> Callable[[ImageRecord], str | None]:
    """An image's group key: ``ImageRecord.group``, or with ``group_regex`` its first group (or its whole
    match) in the file name; None: in no group."""
    if group_regex is None:
        return lambda image: image.group
    try:
        pattern = re.compile(group_regex)
    except re.error as err:
        raise UsageError(f"group_regex {group_regex!r} is not a valid regular expression: {err}") from err

    def key(image: ImageRecord) -> str | None:
        match = pattern.search(image.file_name)
        return None if match is None else (match.group(1) if pattern.groups else match.group(0))
    return key


def _image_fields(images: Sequence[ImageRecord], group_regex: str | None
                  ) -> tuple[list[str | None], list[str], list[str | None]]:
    """Each image's path (None: none), file name and group key, in one pass over the records.

    Stored images (:mod:`segdata.stored_images`) make a record on each
    access; five passes over 20k of them were 0.6 s of the command's
    serial time.
    """
    key = group_key(group_regex)
    paths, names, groups = [], [], []
    for image in images:
        paths.append(None if image.path is None else str(image.path))
        names.append(image.file_name)
        groups.append(key(image))
    return paths, names, groups


def _mask_signature(job: tuple[ImageRecord, Sequence[Annotation]]) -> bytes | None:
    """A digest of one image's sorted (class, RLE) set, or ``None`` without decodable masks (in a worker)."""
    _image, annotations = job
    parts = []
    for ann in annotations:
        if ann.mask is None:
            continue
        try:
            rle = ann.mask.to_rle()  # not kept on the mask: one pass over the whole dataset
        except (ValueError, ArithmeticError):  # a mask the checks report elsewhere
            continue
        counts = rle["counts"] if isinstance(rle["counts"], bytes) else str(rle["counts"]).encode()
        parts.append(b"%d|%d,%d|" % (ann.category_id, *rle["size"]) + counts)
    return hashlib.blake2b(b"\0".join(sorted(parts)), digest_size=16).digest() if parts else None


def _scan(dataset: Dataset, paths: list[str | None], cache: FingerprintCache, workers: int | None,
          progress: Callable[[int], None] | None) -> tuple[FingerprintTable, list[int], int, int, list]:
    """Each image's fingerprint row and mask signature, in one pass over the images.

    A table row per distinct file (``paths``: each image's), fingerprinted
    once (by the first image that names it) or taken from the cache;
    returns the table, each image's row, how many files were hashed and
    cached, and each image's signature.  One pass, not one for the files
    and one for the masks: the images are iterated once, and the progress
    bar covers the masks too.
    """
    row_of = {path: row for row, path in enumerate(dict.fromkeys(paths))}
    table, todo = FingerprintTable(len(row_of)), set()
    for path, row in row_of.items():
        fp = fingerprint_file(None) if path is None else cache.get(path)
        if fp is None:
            todo.add(path)
        else:
            table[row] = fp
    hashed = len(todo)
    to_hash = []  # each image's path if it is the first to name a file not cached, else None
    for path in paths:
        to_hash.append(path if path in todo else None)
        todo.discard(path)

    signatures = []
    items = dataset.image_items(attach=to_hash)
    for path, stamp, fp, signature in map_images(_image_keys, items, workers=workers, progress=progress):
        if path is not None:
            table[row_of[path]] = fp
            cache.put(path, fp, stamp)
        signatures.append(signature)
    cache.save()
    return table, [row_of[p] for p in paths], hashed, len(row_of) - (None in row_of) - hashed, signatures


def _image_keys(job: tuple[ImageRecord, Sequence[Annotation], str | None]) -> tuple:
    """``(path, its stamp, its fingerprint, the mask signature)`` of one image; no path: its file is hashed
    elsewhere.  The stamp is taken before the file is read: a file changed meanwhile misses the cache next
    time, and the command's process stats no file."""
    image, annotations, path = job
    if path is None:
        return None, None, None, _mask_signature((image, annotations))
    stamp = FingerprintCache.stamp(path)
    return path, stamp, fingerprint_file(path), _mask_signature((image, annotations))


def _near_pairs(table: FingerprintTable, rows: list[int], ok: list[int], max_distance: int, mirror: bool,
                min_correlation: float, workers: int | None) -> dict[tuple[int, int], int]:
    """Verified near-duplicate pairs ``(i, j)`` with ``i < j`` -> Hamming distance of the hashes that matched.

    Every hash of every image but the mirrored one (its whole image and 16
    trimmed regions) is a query; the index holds each image's whole-image
    hash (and its mirrored hash when ``mirror``).  A hit says "this region
    of image a looks like all of image b": the candidate is kept when
    :func:`~segdata.fingerprint.aligned_correlation` of that region and b's
    thumbnail reaches ``min_correlation``.  Candidates are tried closest
    first, and a pair is settled by its first verified candidate.
    """
    if len(ok) < 2:
        return {}
    n = len(ok)
    hashes = table.hashes[[rows[i] for i in ok]]
    index = hashes[:, [WHOLE, MIRRORED] if mirror else [WHOLE]].T.ravel()  # e: image e % n, mirrored e >= n
    kinds = np.array([k for k in range(len(REGIONS)) if k != MIRRORED])
    # q: image q // K, region kinds[q % K]
    q, e, dist = radius_search(hashes[:, kinds].ravel(), index, max_distance, workers=workers)
    a, region, b, flipped = q // len(kinds), kinds[q % len(kinds)], e % n, e >= n
    keep = a != b
    a, region, b, flipped, dist = a[keep], region[keep], b[keep], flipped[keep], dist[keep]
    if not len(a):
        return {}
    low, high = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((region, dist, high, low))
    a, region, b, flipped, dist, low, high = (x[order] for x in (a, region, b, flipped, dist, low, high))
    # a pair's candidates are adjacent, closest first; round r tries the r-th candidate of every pair still
    # unsettled, all of them on every core (serial, 595 correlations were 0.5 s at 20k images)
    first = np.flatnonzero(np.r_[True, (low[1:] != low[:-1]) | (high[1:] != high[:-1])])
    ends, cursor, unsettled = np.r_[first[1:], len(low)], first.copy(), np.arange(len(first))
    best: dict[tuple[int, int], int] = {}
    while len(unsettled):
        tried = cursor[unsettled].tolist()
        jobs = [(table.thumb(rows[ok[a[k]]]), REGIONS[region[k]], table.thumb(rows[ok[b[k]]]),
                 bool(flipped[k])) for k in tried]
        scores = np.fromiter(map_images(_correlation, jobs, workers=workers), float, len(jobs))
        verified = scores >= min_correlation
        for k in np.array(tried)[verified].tolist():
            best[(ok[low[k]], ok[high[k]])] = int(dist[k])
        cursor[unsettled] += 1
        unsettled = unsettled[~verified & (cursor[unsettled] < ends[unsettled])]
    return dict(sorted(best.items()))


def _correlation(job: tuple[np.ndarray, tuple, np.ndarray, bool]) -> float:
    """:func:`~segdata.fingerprint.aligned_correlation` of one candidate (in a worker)."""
    return aligned_correlation(*job)


def find_leaks(
    dataset: Dataset,
    *,
    max_distance: int = 10,
    mirror: bool = True,
    min_correlation: float = 0.93,
    group_regex: str | None = None,
    cache_dir: str | PurePath | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> LeakageResult:
    """Find images shared between splits (and duplicates within one split).

    Parameters
    ----------
    dataset : Dataset
        Images need ``path`` for the file kinds; ``split`` names the side.
    max_distance : int
        Largest pHash Hamming distance (0..63 of 64 bits) of a near-duplicate candidate.
    mirror : bool
        Also match horizontally mirrored copies.
    min_correlation : float
        Correlation a candidate must reach between the matched region of one image and the other image
        (aligned to about 1 %, on 24×24 grayscale grids) to be a near-duplicate: the precision knob.
    group_regex : str, optional
        Group key from the file name, instead of ``ImageRecord.group``.
    cache_dir : path, optional
        Folder of the fingerprint cache (``None``: no cache). Not writable: skipped, see ``cache_writable``.
    workers : int, optional
        Processes for fingerprinting (default: all cores).
    progress : callable, optional
        Called with the number of images just scanned (fingerprinted or found in the cache, masks digested).

    Returns
    -------
    LeakageResult

    Raises
    ------
    UsageError
        ``max_distance`` or ``min_correlation`` out of range, or an invalid ``group_regex``.
    """
    if not 0 <= max_distance < 64:
        raise UsageError(f"max_distance must be in 0..63 bits, found {max_distance}")
    if not -1 <= min_correlation <= 1:
        raise UsageError(f"min_correlation must be in [-1, 1], found {min_correlation}")
    images = dataset.images
    paths, names, groups = _image_fields(images, group_regex)
    cache = FingerprintCache(cache_dir)
    table, rows, hashed, cached, signatures = _scan(dataset, paths, cache, workers, progress)
    errors = [table.errors[row] for row in rows]
    findings = []
    for i, error in enumerate(errors):
        if error is not None:
            image = images[i]
            findings.append(Finding("file-unreadable", LEAK_CODES["file-unreadable"],
                                    f"{image.split} image {image.id} ({image.file_name}): cannot be read "
                                    f"({error}); left out of the leakage check", image.split, image.id,
                                    path=paths[i], details={"error": error}))
    ok = [i for i, error in enumerate(errors) if error is None]
    file_hash = [table.file_hashes[row] for row in rows]

    links: dict[tuple[int, int], tuple[int, int | None]] = {}  # (i, j) -> (kind rank, distance)

    def link(i: int, j: int, kind: str, distance: int | None) -> None:
        key, rank = (min(i, j), max(i, j)), LEAK_KINDS.index(kind)
        if key not in links or rank < links[key][0]:
            links[key] = (rank, distance)

    def link_equal(keys: list, kind: str, distance: int | None) -> None:
        members = defaultdict(list)
        for i, key in keys:
            if key is not None:
                members[key].append(i)
        for same in members.values():
            for i, j in combinations(same, 2):
                link(i, j, kind, distance)

    link_equal([(i, file_hash[i]) for i in ok], "exact-file", 0)
    near = _near_pairs(table, rows, ok, max_distance, mirror, min_correlation, workers)
    table.close()
    differing = {(i, j): distance for (i, j), distance in near.items() if file_hash[i] != file_hash[j]}
    headers = {k: image_header(paths[k]) for pair in differing for k in pair}
    # pixels are compared only where the headers are: other pairs differ without a decode
    alike = {(i, j) for i, j in differing if headers[i] is not None and headers[i] == headers[j]}
    decoded = sorted({k for pair in alike for k in pair})
    digests = dict(zip(decoded, map_images(pixel_hash, [paths[k] for k in decoded], workers=workers)))
    for (i, j), distance in differing.items():
        same = (i, j) in alike and digests[i] is not None and digests[i] == digests[j]
        link(i, j, "exact-pixels" if same else "near-duplicate", 0 if same else distance)
    link_equal(list(enumerate(groups)), "same-group", None)
    link_equal([(i, signatures[i]) for i in range(len(images))], "same-masks", None)
    link_equal([(i, PurePath(name).name) for i, name in enumerate(names)], "same-name", None)

    order = _split_order(dataset.splits)
    splits = image_values(images, "split").tolist()
    rows, pair_findings = [], []
    for (i, j), (rank, distance) in links.items():
        if (order[splits[i]], i) > (order[splits[j]], j):
            i, j = j, i
        a, b, kind = images[i], images[j], LEAK_KINDS[rank]
        rows.append((kind, a.split, a.file_name, b.split, b.file_name, distance, rank, order[a.split], i, j))
        within = a.split == b.split
        code = "duplicate-within-split" if within else f"leak-{kind}"
        at = f" at pHash distance {distance}" if kind == "near-duplicate" else ""
        pair_findings.append((rank, i, j, Finding(
            code, LEAK_CODES[code],
            f"{b.split} image {b.id} ({b.file_name}) {_WHAT[kind]} "
            f"{a.split} image {a.id} ({a.file_name}){at}",
            b.split, b.id, path=None if b.path is None else str(b.path),
            details={"kind": kind, "distance": distance, "other_split": a.split, "other_image_id": a.id,
                     "other_file_name": a.file_name})))
    rows.sort(key=lambda r: (r[1] == r[3], r[7], r[6], r[8], r[9]))
    pairs = [(*r[:5], None if r[5] is None else int(r[5])) for r in rows]
    pair_findings.sort(key=lambda t: (t[3].code == "duplicate-within-split", t[0], t[1], t[2]))
    findings.extend(t[3] for t in pair_findings)
    summary = _summary(dataset, pairs, order, hashed, cached, len(findings) - len(pair_findings),
                       cache.writable, max_distance)
    return LeakageResult(findings, pairs, summary, hashed, cached, cache.writable)


def _summary(dataset: Dataset, pairs: list[tuple], order: dict[str, int], hashed: int, cached: int,
             unreadable: int, writable: bool | None, max_distance: int) -> dict[str, Any]:
    """Counts per split pair and kind, the share of each evaluation split that leaks, cache counts."""
    cross = [row for row in pairs if row[1] != row[3]]
    within = [row for row in pairs if row[1] == row[3]]
    by_pair: dict[str, dict[str, int]] = {}
    for (split_a, split_b, kind), count in Counter((a, b, kind) for kind, a, _, b, _, _ in cross).items():
        by_pair.setdefault(f"{split_a}/{split_b}", {})[kind] = count
    sizes = Counter(image_values(dataset.images, "split").tolist())
    leaking_names = defaultdict(set)
    for _, split_a, image_a, split_b, image_b, _ in cross:
        leaking_names[split_b].add(image_b)
        leaking_names[split_a].add(image_a)
    evaluation = {split: {"images": sizes[split], "leaking": len(leaking_names[split]),
                          "share": round(len(leaking_names[split]) / sizes[split], 4) if sizes[split]
                          else 0.0}
                  for split in sorted(order, key=order.get)[1:]}
    return {
        "images": len(dataset.images),
        "unreadable": unreadable,
        "hashed": hashed,
        "cached": cached,
        "cache_writable": writable,
        "max_distance": max_distance,
        "leak_pairs": len(cross),
        "by_split_pair": {k: dict(sorted(v.items())) for k, v in sorted(by_pair.items())},
        "by_kind": dict(sorted(Counter(row[0] for row in cross).items())),
        "within_split": dict(sorted(Counter(row[0] for row in within).items())),
        "evaluation": evaluation,
    }
