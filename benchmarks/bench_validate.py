"""Benchmark ``segdata validate``: a full run on the 5k-image synthetic COCO, and overlap scaling.

1. Full validation of ``benchmarks/data/synth_5k.json`` (every check except
   the file checks: the synthetic set has no image files) with 2 workers;
   target < 60 s.
2. The overlap check alone, serially, on synthetic 640×480 images with N
   random overlapping blobs, N = 10 … 200.  Checking all pairs of decoded
   masks would cost N²/2 × 640 × 480 pixel operations per image; the bbox
   prefilter plus RLE intersections grow with the number of touching pairs
   and RLE lengths instead.  For a yardstick, the naive all-pairs bitmap
   intersection is timed for the small N.

Writes the ``## Validate (issue 5)`` section of ``benchmarks/RESULTS.md``
(replacing only that section).

Usage::

    python benchmarks/synth_coco.py && python benchmarks/bench_validate.py
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

from segdata.converters import coco
from segdata.masks import Mask
from segdata.model import Annotation, Category, Dataset, ImageRecord
from segdata.validators import CODES, validate

from _results import write_section  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "synth_5k.json"
RESULTS = HERE / "RESULTS.md"
HEADING = "## Validate (issue 5)"
COMMAND = "python benchmarks/synth_coco.py && python benchmarks/bench_validate.py"
FILE_CODES = ["file-missing", "file-unreadable", "image-size-mismatch"]
TARGET_SECONDS = 60.0
HEIGHT, WIDTH = 480, 640


def blob_dataset(n: int, images: int, seed: int = 0) -> Dataset:
    """``images`` 640×480 images, each with ``n`` random star-convex blobs (polygons) of 3 classes."""
    rng = np.random.default_rng(seed)
    records, anns = [], []
    for image_id in range(1, images + 1):
        records.append(ImageRecord(image_id, f"{image_id}.png", WIDTH, HEIGHT))
        for k in range(n):
            cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            radius = rng.lognormal(math.log(35), 0.5)
            angles = np.sort(rng.uniform(0, 2 * np.pi, 24))
            r = radius * rng.uniform(0.6, 1.0, 24)
            ring = np.c_[np.clip(cx + r * np.cos(angles), 0, WIDTH), np.clip(cy + r * np.sin(angles), 0, HEIGHT)]
            mask = Mask.from_polygons([ring.ravel().round(2).tolist()], HEIGHT, WIDTH)
            anns.append(Annotation(image_id * 1000 + k, image_id, 1 + k % 3, mask))
    return Dataset({c: Category(c, f"c{c}") for c in (1, 2, 3)}, records, anns)


def naive_pairs_seconds(dataset: Dataset) -> float:
    """All pairs of decoded masks of each image intersected as bitmaps: the cost the prefilter avoids."""
    start = time.perf_counter()
    for _, anns in dataset.iter_images():
        bitmaps = [a.mask.to_bitmap() for a in anns]
        for a, b in itertools.combinations(bitmaps, 2):
            np.logical_and(a, b).sum()
    return time.perf_counter() - start


def bench_full(path: Path, workers: int) -> dict:
    start = time.perf_counter()
    dataset = coco.read(path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    findings = validate(dataset, skip=FILE_CODES, workers=workers)
    validate_s = time.perf_counter() - start
    timings = {}
    for family, codes in (("geometry", ["polygon-self-intersection", "coordinate-out-of-bounds", "mask-empty",
                                        "mask-tiny"]),
                          ("consistency", ["bbox-mismatch", "area-mismatch", "crowd-encoding"]),
                          ("overlap", ["instance-overlap", "instance-duplicate"])):
        start = time.perf_counter()
        validate(dataset, only=codes, workers=workers)
        timings[family] = time.perf_counter() - start
    return {"images": len(dataset.images), "annotations": len(dataset.annotations), "read_s": read_s,
            "validate_s": validate_s, "families": timings,
            "findings": dict(sorted(Counter(f.code for f in findings).items()))}


def bench_overlap(sizes: list[int], images: int, naive_up_to: int) -> list[dict]:
    rows = []
    for n in sizes:
        dataset = blob_dataset(n, images)
        for ann in dataset.annotations:  # rasterize once, outside the timing: the cost measured is the check
            ann.mask.rle
        start = time.perf_counter()
        found = validate(dataset, only=["instance-overlap", "instance-duplicate"], workers=1)
        seconds = time.perf_counter() - start
        naive = naive_pairs_seconds(blob_dataset(n, 1)) * images if n <= naive_up_to else None
        rows.append({"n": n, "ms_per_image": 1000 * seconds / images, "pairs_per_image": n * (n - 1) / 2,
                     "overlapping_pairs_per_image": len(found) / images,
                     "naive_ms_per_image": None if naive is None else 1000 * naive / images})
    return rows


def render(full: dict, rows: list[dict], data_path: Path, workers: int, load: str) -> str:
    ok = "meets" if full["validate_s"] < TARGET_SECONDS else "misses"
    fam = ", ".join(f"{k} {v:.1f} s" for k, v in full["families"].items())
    lines = [HEADING, "",
             f"Command: `{COMMAND}`.  Machine: {os.cpu_count()} cores; load during the run: `{load}`.", "",
             f"**Full validation** of `{data_path.relative_to(HERE.parent) if data_path.is_relative_to(HERE.parent) else data_path}` "
             f"({full['images']:,} images, {full['annotations']:,} instances), every check except the file checks "
             f"(no image files), {workers} workers: **{full['validate_s']:.1f} s** ({ok} the < {TARGET_SECONDS:.0f} s "
             f"target); reading took {full['read_s']:.1f} s more.  Each family alone: {fam}.", "",
             "Findings: " + (", ".join(f"{c} {n:,}" for c, n in full["findings"].items()) or "none") + ".", "",
             "**Overlap check vs instances per image** (640×480, random star-convex blobs of 3 classes, "
             "serial, per image):", "",
             "| N instances | pairs N(N−1)/2 | overlapping pairs | overlap check ms | naive all-pairs bitmaps ms |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        naive = f"{r['naive_ms_per_image']:.0f}" if r["naive_ms_per_image"] is not None else "—"
        lines.append(f"| {r['n']} | {r['pairs_per_image']:,.0f} | {r['overlapping_pairs_per_image']:,.1f} | "
                     f"{r['ms_per_image']:.1f} | {naive} |")
    first, last = rows[0], rows[-1]
    growth = last["ms_per_image"] / first["ms_per_image"]
    pair_growth = last["pairs_per_image"] / first["pairs_per_image"]
    exponent = math.log(growth) / math.log(last["n"] / first["n"])
    lines += ["", f"From N = {first['n']} to {last['n']} the pairs grow {pair_growth:,.0f}× (quadratic) while the "
              f"check's time grows {growth:.0f}× (≈ N^{exponent:.2f}); the time follows the pairs that really touch "
              "(found by a vectorised bbox test) and their RLE lengths, not N² decoded images.  The naive column "
              "decodes every mask and ANDs every pair of bitmaps."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--images", type=int, default=10, help="images per size in the overlap scaling")
    parser.add_argument("--naive-up-to", type=int, default=50)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found; run python benchmarks/synth_coco.py first")
    assert set(FILE_CODES) <= set(CODES)
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    full = bench_full(args.data, args.workers)
    print(full)
    rows = bench_overlap(args.sizes, args.images, args.naive_up_to)
    for row in rows:
        print(row)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    load = f"{load_before.split('load average:')[-1].strip()} before, {load_after.split('load average:')[-1].strip()} after"
    write_section(HEADING, render(full, rows, args.data, args.workers, f"load average {load}"), args.results)
    print(f"wrote section {HEADING!r} of {args.results}")


if __name__ == "__main__":
    main()
