"""Benchmark ``segdata leakage``: radius search at a million hashes, copies found, hashing speed.

1. Multi-index radius search (:func:`segdata.fingerprint.radius_search`) of
   1,000,000 random 64-bit fingerprints against themselves at radius 8, with
   1,000 planted neighbours (each a copy of a random hash with 1–8 bits
   flipped); target < 60 s.  Every planted neighbour must be found, and 200
   queries are checked against a brute-force scan of the whole index.
2. Recall and precision on a generated set of photo-like 640×480 JPEGs
   (:func:`make_set`): ``--sources`` distinct pictures in ``train`` (each a
   view of its own synthetic scene: smooth multi-octave colour field,
   textured patches, shaded objects, grain); in ``test``, one planted copy
   of each of the first half of them, with every transform at once (crop
   0–10 % per side, resize 0.5–1.5×, brightness ±20 %, mirrored one time in
   two, JPEG quality 50–95); one hard negative for each of the other half (another view of the same
   scene, shifted by 25–60 % of the width, with other objects placed); and
   ``--sources // 4`` unrelated pictures.  Recall is the share of copies
   paired with their source, precision the share of reported train/test
   pairs that are a source and its copy.  The same set goes through
   imagededup's ``PHash().find_duplicates`` at its defaults, in its own venv
   (``benchmarks/.venv-imagededup``, made on first use).
3. Hashing throughput on the ``train`` JPEGs, one process each, interleaved
   (imagehash, segdata, imagehash, segdata; best round of each):
   ``segdata.fingerprint.fingerprint_file`` against ``imagehash.phash``
   (``Image.open`` + ``phash``, both in child processes); target ≥ 3×.

Writes the ``## Leakage (issue 6)`` section of ``benchmarks/RESULTS.md``
(replacing only that section).

Usage::

    python benchmarks/bench_leakage.py [--sources 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime
import glob
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from segdata.fingerprint import popcount, radius_search
from segdata.model import Dataset, ImageRecord
from segdata.validators.leakage import find_leaks

from _results import write_section  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
HEADING = "## Leakage (issue 6)"
COMMAND = "python benchmarks/bench_leakage.py"
TARGET_SECONDS = 60.0
SIZE_WH = (640, 480)
PEER_VENV = HERE / ".venv-imagededup"
PEER_PACKAGES = ["imagededup==0.3.3.post2", "imagehash==4.3.2"]
DEFAULTS = {name: p.default for name, p in inspect.signature(find_leaks).parameters.items()}

IMAGEDEDUP_CHILD = r"""
import json, sys, time, types
try:
    from imagededup.methods import PHash
    stubbed = False
except (ImportError, RuntimeError):
    # imagededup's package imports its CNN (torchvision models); a torchvision whose C ops do not load
    # with this torch build breaks the import, though the hashing methods never use them: stub the CNN
    for name in list(sys.modules):
        if name.startswith(("imagededup", "torchvision")):
            del sys.modules[name]
    for name, attribute in (("imagededup.utils.models", "CustomModel"), ("imagededup.methods.cnn", "CNN")):
        sys.modules[name] = types.ModuleType(name)
        setattr(sys.modules[name], attribute, None)
    from imagededup.methods import PHash
    stubbed = True
start = time.perf_counter()
found = PHash(verbose=False).find_duplicates(image_dir=sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - start, "found": found, "stubbed": stubbed}))
"""

IMAGEHASH_CHILD = r"""
import json, sys, time
import imagehash
from PIL import Image
paths = json.load(open(sys.argv[1]))
with Image.open(paths[0]) as im:  # warm-up: lazy imports and first-call costs stay out of the timing
    imagehash.phash(im)
start = time.perf_counter()
for p in paths:
    with Image.open(p) as im:
        imagehash.phash(im)
print(json.dumps({"seconds": time.perf_counter() - start, "images": len(paths)}))
"""

SEGDATA_CHILD = r"""
import json, sys, time
from segdata.fingerprint import fingerprint_file
paths = json.load(open(sys.argv[1]))
fingerprint_file(paths[0])  # warm-up, as on the other side
start = time.perf_counter()
for p in paths:
    assert fingerprint_file(p).ok
print(json.dumps({"seconds": time.perf_counter() - start, "images": len(paths)}))
"""


# --------------------------------------------------------------------------------------------
# 1. radius search


def radius_benchmark(n: int, radius: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    planted_from = rng.choice(n - 1000, 1000, replace=False)
    for k, source in enumerate(planted_from):
        bits = rng.choice(64, 1 + k % radius, replace=False).astype(np.uint64)
        hashes[n - 1000 + k] = hashes[source] ^ np.bitwise_or.reduce(np.uint64(1) << bits)
    start, cpu = time.perf_counter(), time.process_time()
    q, i, _d = radius_search(hashes, hashes, radius)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    found = set(zip(q.tolist(), i.tolist()))
    planted_found = sum((n - 1000 + k, int(s)) in found for k, s in enumerate(planted_from))
    sample = rng.choice(n, 200, replace=False)
    brute = {(int(s), int(j)) for s in sample for j in np.flatnonzero(popcount(hashes ^ hashes[s]) <= radius)}
    mih = {(a, b) for a, b in found if a in set(sample.tolist())}
    return {"n": n, "radius": radius, "seconds": seconds, "cpu": cpu, "pairs": int((q != i).sum()) // 2,
            "planted_found": planted_found, "brute_agrees": brute == mih}


# --------------------------------------------------------------------------------------------
# 2. the generated set


def _scene(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A photo-like float canvas: multi-octave smooth colour, a vertical gradient, textured patches, grain."""
    quarter = np.zeros((h // 4, w // 4, 3), np.float32)  # octaves summed at 1/4 size, upscaled once
    for cells, amplitude in ((3, 70), (6, 45), (12, 28), (24, 16), (48, 9)):
        small = rng.normal(0, amplitude, (max(2, cells * h // w), cells, 3)).astype(np.float32)
        quarter += cv2.resize(small, quarter.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    canvas = cv2.resize(quarter, (w, h), interpolation=cv2.INTER_CUBIC)
    canvas += rng.uniform(80, 170, 3).astype(np.float32)
    canvas += np.linspace(rng.uniform(-40, 40), rng.uniform(-40, 40), h, dtype=np.float32)[:, None, None]
    for _ in range(int(rng.integers(3, 7))):  # textured patches: oriented stripes inside ellipses
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(w // 20, w // 6)), int(rng.integers(h // 20, h // 6))
        x0, x1, y0, y1 = max(cx - ax, 0), min(cx + ax + 1, w), max(cy - ay, 0), min(cy + ay + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.ellipse(mask, (cx - x0, cy - y0), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4)
        texture = 25 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
        canvas[y0:y1, x0:x1] += (mask * texture)[..., None]
    canvas += rng.normal(0, 5, (h, w, 1)).astype(np.float32)
    return canvas


def _with_objects(rng: np.random.Generator, view: np.ndarray) -> Image.Image:
    """The view with 4–8 shaded discs, boxes and polygons placed at random."""
    h, w = view.shape[:2]
    out = view.copy()
    for _ in range(int(rng.integers(4, 9))):
        colour = tuple(float(v) for v in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        size = int(rng.integers(min(w, h) // 20, min(w, h) // 5))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            cv2.circle(out, centre, size, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            corner_a = (centre[0] - size, centre[1] - size // 2)
            corner_b = (centre[0] + size, centre[1] + size)
            cv2.rectangle(out, corner_a, corner_b, colour, -1, cv2.LINE_AA)
        else:
            points = (np.array(centre) + rng.integers(-size, size, (5, 2))).astype(np.int32)
            cv2.fillPoly(out, [points], colour, cv2.LINE_AA)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _copy(rng: np.random.Generator, picture: Image.Image) -> tuple[Image.Image, dict]:
    """Every transform at once: crop 0–10 % a side, resize 0.5–1.5×, brightness ±20 %, mirror one in two."""
    w, h = picture.size
    left, top, right, bottom = rng.uniform(0, 0.10, 4)
    scale, bright, mirror = rng.uniform(0.5, 1.5), rng.uniform(0.8, 1.2), bool(rng.random() < 0.5)
    out = picture.crop((round(left * w), round(top * h), round(w - right * w), round(h - bottom * h)))
    out = out.resize((round(out.width * scale), round(out.height * scale)), Image.Resampling.LANCZOS)
    out = ImageEnhance.Brightness(out).enhance(bright)
    if mirror:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out, {"crop": float(max(left, top, right, bottom)), "scale": float(scale),
                 "brightness": float(bright), "mirror": mirror}


def _make_scene(job: tuple[str, int, str, int]) -> list[tuple[str, str, dict]]:
    """Write one scene's pictures; ``(split, file name, info)`` for each."""
    folder, s, role, seed = job
    rng = np.random.default_rng(seed)
    w, h = SIZE_WH
    canvas = _scene(rng, w * 8 // 5, h * 8 // 5)
    shift = int(rng.uniform(0.25, 0.6) * w)
    x = int(rng.integers(0, canvas.shape[1] - w - shift + 1))
    y_a, y_b = (int(v) for v in rng.integers(0, canvas.shape[0] - h + 1, 2))
    xs = (x, x + shift) if rng.random() < 0.5 else (x + shift, x)
    source = _with_objects(rng, canvas[y_a:y_a + h, xs[0]:xs[0] + w])
    written = []

    def save(picture: Image.Image, split: str, name: str, quality: int, info: dict) -> None:
        picture.save(Path(folder) / split / name, quality=quality)
        written.append((split, name, info))

    if role == "other":
        save(source, "test", f"other_{s:05d}.jpg", int(rng.integers(85, 96)), {})
        return written
    save(source, "train", f"src_{s:05d}.jpg", int(rng.integers(85, 96)), {})
    if role == "copy":
        copy, info = _copy(rng, source)
        quality = int(rng.integers(50, 96))
        save(copy, "test", f"copy_{s:05d}.jpg", quality, {**info, "quality": quality})
    else:
        negative = _with_objects(rng, canvas[y_b:y_b + h, xs[1]:xs[1] + w])
        save(negative, "test", f"view_{s:05d}.jpg", int(rng.integers(85, 96)),
             {"shift": shift / w})
    return written


def make_set(folder: Path, sources: int, workers: int, seed: int = 6) -> list[tuple[str, str, dict]]:
    """Write the generated set under ``folder/{train,test}``; ``(split, file name, info)`` of every image."""
    for split in ("train", "test"):
        (folder / split).mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), s, "copy" if s < sources // 2 else "negative", seed * 1_000_003 + s)
            for s in range(sources)]
    jobs += [(str(folder), sources + d, "other", seed * 1_000_003 + sources + d) for d in range(sources // 4)]
    with Pool(workers) as pool:
        return [row for rows in pool.map(_make_scene, jobs, chunksize=16) for row in rows]


def _truth(rows: list[tuple[str, str, dict]]) -> tuple[dict, set]:
    copies = {(f"src_{name[5:]}", name): info for split, name, info in rows if name.startswith("copy_")}
    negatives = {(f"src_{name[5:]}", name) for split, name, info in rows if name.startswith("view_")}
    return copies, negatives


def score(found: set[tuple[str, str]], copies: dict, negatives: set) -> dict:
    """Recall (overall and by transform strata), precision, hard negatives reported."""
    hits = {pair: pair in found for pair in copies}

    def recall(keep) -> dict:
        chosen = [hit for pair, hit in hits.items() if keep(copies[pair])]
        return {"n": len(chosen), "recall": sum(chosen) / len(chosen) if chosen else float("nan")}

    strata = {
        "all copies": recall(lambda i: True),
        "largest side cropped by ≤ 5 %": recall(lambda i: i["crop"] <= 0.05),
        "largest side cropped by 5–10 %": recall(lambda i: i["crop"] > 0.05),
        "mirrored": recall(lambda i: i["mirror"]),
        "not mirrored": recall(lambda i: not i["mirror"]),
        "resized < 0.75×": recall(lambda i: i["scale"] < 0.75),
        "JPEG quality < 65": recall(lambda i: i["quality"] < 65),
        "brightness off by > 15 %": recall(lambda i: abs(i["brightness"] - 1) > 0.15),
    }
    true = sum(pair in copies for pair in found)
    return {"strata": strata, "reported": len(found), "true": true,
            "missed": [copies[pair] for pair, hit in hits.items() if not hit][:20],
            "precision": true / len(found) if found else 1.0,
            "negatives_reported": sum(pair in found for pair in negatives)}


def segdata_side(folder: Path, rows: list, workers: int) -> tuple[set, float]:
    images = [ImageRecord(n + 1, name, 0, 0, split, path=folder / split / name)
              for n, (split, name, _info) in enumerate(rows)]
    start = time.perf_counter()
    result = find_leaks(Dataset({}, images, []), workers=workers)
    seconds = time.perf_counter() - start
    cross = result.pairs[result.pairs.split_a != result.pairs.split_b]
    found = {tuple(sorted((a, b), key=lambda n: not n.startswith("src_"))) for a, b in
             zip(cross.image_a, cross.image_b)}
    return found, seconds


def peer_python() -> tuple[Path | None, str]:
    """The Python of a venv holding imagededup and imagehash, made on first use; or None and why not."""
    python = PEER_VENV / "bin" / "python"
    if python.exists():
        return python, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, capture_output=True)
        # imagededup needs torch only for its CNN; a CPU-only wheel beside pip keeps the venv small
        cpu_torch = sorted(glob.glob("/opt/wheels/torch-*+cpu-*.whl"))[-1:]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *cpu_torch, *PEER_PACKAGES],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as err:
        return None, (err.stderr or str(err)).strip().splitlines()[-1]
    return python, ""


STUBBED: list[bool] = []


def imagededup_side(python: Path, folder: Path, rows: list) -> tuple[set, float]:
    """imagededup's PHash defaults on one flat folder of the same files (it reads a single folder)."""
    flat = folder / "flat"
    flat.mkdir(exist_ok=True)
    for split, name, _info in rows:
        (flat / name).symlink_to(folder / split / name)
    done = subprocess.run([str(python), "-c", IMAGEDEDUP_CHILD, str(flat)], capture_output=True, text=True,
                          check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    STUBBED.append(result["stubbed"])
    split_of = {name: split for split, name, _info in rows}
    found = {tuple(sorted((a, b), key=lambda n: not n.startswith("src_")))
             for a, dups in result["found"].items() for b in dups if split_of[a] != split_of[b]}
    return found, result["seconds"]


def throughput(peer: Path | None, paths: list[str], rounds: int = 2) -> dict:
    """Images per second of imagehash.phash and of segdata's fingerprint, interleaved child processes."""
    listing = Path(tempfile.mkstemp(suffix=".json")[1])
    listing.write_text(json.dumps(paths))
    best: dict[str, float] = {}
    try:
        for _ in range(rounds):
            sides = ([("imagehash.phash", peer, IMAGEHASH_CHILD)] if peer else []) + [
                ("segdata fingerprint", Path(sys.executable), SEGDATA_CHILD)]
            for name, python, child in sides:
                done = subprocess.run([str(python), "-c", child, str(listing)], capture_output=True,
                                      text=True, check=True)
                out = json.loads(done.stdout.strip().splitlines()[-1])
                best[name] = max(best.get(name, 0.0), out["images"] / out["seconds"])
    finally:
        listing.unlink()
    return best


# --------------------------------------------------------------------------------------------
# report


def _recall_table(scores: dict[str, dict]) -> list[str]:
    names = list(scores)
    lines = ["| copies | n | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for stratum, first in scores[names[0]]["strata"].items():
        cells = [f"{scores[n]['strata'][stratum]['recall']:.1%}" for n in names]
        lines.append(f"| {stratum} | {first['n']:,} | " + " | ".join(cells) + " |")
    cells = [f"**{scores[n]['precision']:.1%}** ({scores[n]['true']:,} / {scores[n]['reported']:,})"
             for n in names]
    lines.append("| **precision** (true / reported train–test pairs) | | " + " | ".join(cells) + " |")
    lines.append("| hard negatives reported (same scene, other view) | | " + " | ".join(
        f"{scores[n]['negatives_reported']:,}" for n in names) + " |")
    lines.append("| seconds (hashing included) | | " + " | ".join(
        f"{scores[n]['seconds']:.1f}" for n in names) + " |")
    return lines


def section(radius: dict, info: dict, scores: dict, speeds: dict, peer_error: str) -> str:
    ok = "✔" if radius["seconds"] < TARGET_SECONDS else "✘"
    agrees = "identical" if radius["brute_agrees"] else "DIFFER"
    w, h = SIZE_WH
    ours = scores["segdata (defaults)"]["strata"]["all copies"]["recall"]
    precision = scores["segdata (defaults)"]["precision"]
    lines = [
        HEADING, "",
        f"`{COMMAND}`; measured {info['date']}, one run, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared with other jobs, load average before the run {info['load']:.2f}; "
        f"find_leaks with {info['workers']} worker(s).",
        "", "| measure | value |", "|---|---:|",
        f"| radius search, {radius['n']:,} random 64-bit hashes × themselves, radius {radius['radius']} "
        f"| **{radius['seconds']:.1f} s** {ok} (target < {TARGET_SECONDS:.0f} s; "
        f"{radius['cpu']:.1f} s of CPU) |",
        f"| pairs within radius (1,000 planted) | {radius['pairs']:,} |",
        f"| planted neighbours found | {radius['planted_found']:,} / 1,000 |",
        f"| 200 queries checked against a brute-force scan | {agrees} |",
        "",
        f"Copies: {info['images']:,} generated photo-like {w}×{h} JPEGs — {info['sources']:,} distinct "
        f"pictures in train (each a view of its own synthetic scene), in test {info['copies']:,} planted "
        f"copies (every transform at once: crop 0–10 % per side, resize 0.5–1.5×, brightness ±20 %, "
        f"mirrored one time in two, JPEG quality 50–95), {info['negatives']:,} hard negatives (another "
        f"view of a train picture's scene, shifted by 25–60 % of the width, other objects) and "
        f"{info['others']:,} "
        f"unrelated pictures.  segdata at its defaults (radius {DEFAULTS['max_distance']}, mirror, "
        f"aligned correlation ≥ {DEFAULTS['min_correlation']}); imagededup 0.3.3.post2 "
        "`PHash().find_duplicates(image_dir)` at its defaults (radius 10), on one flat folder of the same "
        "files (symbolic links), pairs counted between train and test only.",
        "",
    ]
    lines += _recall_table(scores)
    target = "✔" if ours >= 0.95 and precision >= 0.99 else "✘"
    lines += ["", f"Target (segdata defaults): recall ≥ 95 % and precision ≥ 99 % → **{ours:.1%}** and "
              f"**{precision:.1%}** {target}."]
    if any(STUBBED):
        lines += ["", "imagededup's package imports its CNN (torchvision) on import; the torchvision wheel "
                  "beside the CPU-only torch in its venv does not load its C ops, so the child process "
                  "stubs the CNN module.  `PHash` never uses it: its hashing and search code ran unchanged."]
    if peer_error:
        lines += ["", f"imagededup / imagehash could not be installed on Python "
                  f"{platform.python_version()}: `{peer_error}`"]
    lines += ["", f"Hashing throughput, {info['throughput_images']:,} of the train JPEGs ({w}×{h}), one "
              "process each, child processes interleaved, best of 2 rounds:", "",
              "| hasher | images / s | speed-up |", "|---|---:|---:|"]
    base = speeds.get("imagehash.phash")
    for name, speed in speeds.items():
        ratio = f"{speed / base:.2f}×" if base else "–"
        lines.append(f"| {name} | {speed:,.0f} | {ratio} |")
    if base:
        ratio = speeds["segdata fingerprint"] / base
        mark = "✔" if ratio >= 3 else "✘"
        lines += ["", f"Target: ≥ 3× `imagehash.phash` → **{ratio:.2f}×** {mark} "
                  "(segdata's fingerprint is 18 hashes, a thumbnail and a SHA-256 of the file, from a JPEG "
                  "decoded at reduced size; imagehash decodes the full image for one hash)."]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-radius", action="store_true", help="skip the 1M radius search (quick runs)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    peer, peer_error = peer_python()
    print("peer:", peer, peer_error)
    with tempfile.TemporaryDirectory(prefix="bench_leakage_") as tmp:
        folder = Path(tmp)
        rows = make_set(folder, args.sources, args.workers)
        copies, negatives = _truth(rows)
        scores = {}
        found, seconds = segdata_side(folder, rows, args.workers)
        scores["segdata (defaults)"] = {**score(found, copies, negatives), "seconds": seconds}
        print("segdata", scores["segdata (defaults)"])
        if peer:
            found, seconds = imagededup_side(peer, folder, rows)
            scores["imagededup PHash (defaults)"] = {**score(found, copies, negatives), "seconds": seconds}
            print("imagededup", scores["imagededup PHash (defaults)"])
        paths = [str(folder / split / name) for split, name, _info in rows if split == "train"][:1000]
        speeds = throughput(peer, paths)
        print(speeds)
    skipped = {"n": 0, "radius": args.radius, "seconds": float("nan"), "cpu": float("nan"), "pairs": 0,
               "planted_found": 0, "brute_agrees": False}
    radius = skipped if args.no_radius else radius_benchmark(args.n, args.radius)
    print(radius)
    info = {"date": datetime.date.today().isoformat(), "load": load, "workers": args.workers,
            "images": len(rows), "sources": args.sources, "copies": len(copies), "negatives": len(negatives),
            "others": args.sources // 4, "throughput_images": len(paths)}
    if args.no_radius:
        print(section(radius, info, scores, speeds, peer_error))
        return
    write_section(HEADING, section(radius, info, scores, speeds, peer_error), args.results)
    print(f"wrote section {HEADING!r} of {args.results}")


if __name__ == "__main__":
    main()
