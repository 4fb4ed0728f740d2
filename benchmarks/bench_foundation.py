"""Foundation benchmark (issue 2): segdata's COCO reader and mask faces against their peers.

Measures, on the synthetic COCO-scale file made by ``synth_coco.py``:

a. load + decode every mask: ``pycocotools.coco.COCO(path)`` + ``annToMask`` for
   every annotation, against ``segdata.converters.coco.read(path)`` +
   ``ann.mask.to_bitmap()`` for every annotation of every image
   (``Dataset.iter_images``).  Each run is a fresh subprocess reporting its own
   wall time and peak RSS (``VmHWM``, the same as ``getrusage(RUSAGE_SELF).ru_maxrss``
   but not inherited across ``exec``); best of
   ``--repeats`` for time, the largest peak RSS.
b. mask → polygon throughput on the first ``--masks`` non-empty masks, both
   sides given the same input: the full-image ``uint8`` bitmap, traced by
   ``cv2.findContours(m, RETR_CCOMP, CHAIN_APPROX_SIMPLE)`` (lossy: pixel
   centres) and by segdata's lossless ``bitmap_to_polygons(m)``; and, as a
   conversion meets them, the RLE: ``decode`` + ``findContours`` against
   ``Mask.from_rle(rle).to_polygons()`` (which decodes only the box).  A sample
   of ``--verify`` of them is checked: the polygons rasterised by pycocotools
   must equal the bitmap.

Writes the ``## Foundation (issue 2)`` section of ``benchmarks/RESULTS.md`` and
leaves every other section as it is.

Usage::

    python benchmarks/synth_coco.py && python benchmarks/bench_foundation.py
    python benchmarks/bench_foundation.py --profile   # also cProfile the segdata sides
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _results import write_section  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "synth_5k.json"
RESULTS = HERE / "RESULTS.md"
HEADING = "## Foundation (issue 2)"
COMMAND = "python benchmarks/synth_coco.py && python benchmarks/bench_foundation.py"

TARGET_LOAD_TIME = 1.2
TARGET_LOAD_RSS = 1.5
TARGET_POLYGONS = 4.0


# --------------------------------------------------------------------------------------
# children: one fresh process per measurement
# --------------------------------------------------------------------------------------

def _peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: ``getrusage``'s
    ``ru_maxrss`` survives ``exec`` on Linux, so a child spawned by a big
    parent would report the parent's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_pycocotools(path: str) -> dict:
    import contextlib
    import io

    from pycocotools.coco import COCO

    rss_imports = _peak_rss_mb()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        coco = COCO(path)
    loaded = time.perf_counter()
    decoded = 0
    for ann in coco.anns.values():
        coco.annToMask(ann)
        decoded += 1
    end = time.perf_counter()
    return {"load_s": loaded - start, "total_s": end - start, "decoded": decoded,
            "rss_imports_mb": rss_imports, "rss_loaded_mb": None, "rss_peak_mb": _peak_rss_mb()}


def child_segdata(path: str) -> dict:
    from segdata.converters import coco

    rss_imports = _peak_rss_mb()
    start = time.perf_counter()
    ds = coco.read(path)
    loaded = time.perf_counter()
    rss_loaded = _peak_rss_mb()
    decoded = 0
    for _image, anns in ds.iter_images():
        for ann in anns:
            if ann.mask is None:
                continue
            ann.mask.to_bitmap()
            decoded += 1
    end = time.perf_counter()
    return {"load_s": loaded - start, "total_s": end - start, "decoded": decoded,
            "rss_imports_mb": rss_imports, "rss_loaded_mb": rss_loaded, "rss_peak_mb": _peak_rss_mb()}


CHILDREN = {"pycocotools": child_pycocotools, "segdata": child_segdata}


def run_child(side: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", side, str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# a. load + decode
# --------------------------------------------------------------------------------------

def bench_load(path: Path, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {side: [] for side in CHILDREN}
    for repeat in range(repeats):
        order = list(CHILDREN) if repeat % 2 == 0 else list(reversed(CHILDREN))
        for side in order:
            result = run_child(side, path)
            runs[side].append(result)
            print(f"  [a] run {repeat + 1}/{repeats} {side:12s} load {result['load_s']:6.2f} s  "
                  f"total {result['total_s']:6.2f} s  peak RSS {result['rss_peak_mb']:7.1f} MB  "
                  f"({result['decoded']} masks)", flush=True)
    summary = {}
    for side, results in runs.items():
        best = min(results, key=lambda r: r["total_s"])
        summary[side] = {
            "total_s": best["total_s"], "load_s": min(r["load_s"] for r in results),
            "decode_s": min(r["total_s"] - r["load_s"] for r in results),
            "rss_peak_mb": max(r["rss_peak_mb"] for r in results),
            "rss_imports_mb": max(r["rss_imports_mb"] for r in results),
            "rss_loaded_mb": max((r["rss_loaded_mb"] or 0) for r in results) or None,
            "decoded": best["decoded"], "all_total_s": [r["total_s"] for r in results],
        }
    return summary


# --------------------------------------------------------------------------------------
# b. mask -> polygons
# --------------------------------------------------------------------------------------

def bench_polygons(path: Path, n_masks: int, n_verify: int, repeats: int = 5) -> dict:
    import cv2
    import numpy as np

    from segdata.converters import coco
    from segdata.masks import Mask, bitmap_to_polygons

    ds = coco.read(path)
    masks, bitmaps = [], []
    for _image, anns in ds.iter_images():
        for ann in anns:
            if ann.mask is None or ann.mask.area == 0:
                continue
            masks.append(Mask.from_rle(ann.mask.rle))        # the RLE face: no source polygons to return
            bitmaps.append(np.ascontiguousarray(ann.mask.to_bitmap(), dtype=np.uint8))
            if len(masks) == n_masks:
                break
        if len(masks) == n_masks:
            break
    del ds

    def time_best(fn) -> tuple[float, object]:
        best, result = float("inf"), None
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - start)
        return best, result

    mode, method = cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    cv_s, cv_out = time_best(lambda: [cv2.findContours(m, mode, method) for m in bitmaps])
    sdb_s, _ = time_best(lambda: [bitmap_to_polygons(m) for m in bitmaps])
    sd_s, sd_out = time_best(lambda: [m.to_polygons() for m in masks])
    # from RLE, as in a conversion: the peer decodes the whole image, segdata only the box
    from pycocotools import mask as mask_utils

    rles = [m.rle for m in masks]
    # (pycocotools decodes column-major: its transpose is C-contiguous, so no copy; x and y swap)
    cvd_s, _ = time_best(lambda: [cv2.findContours(mask_utils.decode(r).T, mode, method) for r in rles])
    cv_vertices = sum(len(c) for contours, _ in cv_out for c in contours)
    sd_vertices = sum(len(ring) // 2 for polygons in sd_out for ring in polygons)

    rng = np.random.default_rng(0)
    sample = sorted(rng.choice(len(masks), size=min(n_verify, len(masks)), replace=False).tolist())
    exact = 0
    for i in sample:
        height, width = bitmaps[i].shape
        decoded = Mask.from_polygons(sd_out[i], height, width).to_bitmap()
        exact += bool(np.array_equal(decoded, bitmaps[i].astype(bool)))
    return {"n": len(masks), "cv_s": cv_s, "sdb_s": sdb_s, "sd_s": sd_s, "cvd_s": cvd_s, "cv_vertices": cv_vertices,
            "sd_vertices": sd_vertices, "verified": len(sample), "exact": exact}


# --------------------------------------------------------------------------------------
# profiling (optional)
# --------------------------------------------------------------------------------------

def profile_segdata(path: Path, n_masks: int) -> str:
    import cProfile
    import io
    import pstats

    import numpy as np  # noqa: F401  (imported before profiling)

    from segdata.converters import coco
    from segdata.masks import Mask

    out = io.StringIO()
    profiler = cProfile.Profile()
    profiler.enable()
    ds = coco.read(path)
    profiler.disable()
    out.write("### coco.read\n")
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(20)

    profiler = cProfile.Profile()
    profiler.enable()
    for _image, anns in ds.iter_images():
        for ann in anns:
            if ann.mask is not None:
                ann.mask.to_bitmap()
    profiler.disable()
    out.write("### decode every mask\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)

    masks = [Mask.from_rle(a.mask.rle) for a in ds.annotations if a.mask is not None][:n_masks]
    profiler = cProfile.Profile()
    profiler.enable()
    for m in masks:
        m.to_polygons()
    profiler.disable()
    out.write("### to_polygons\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    return out.getvalue()


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------

def machine_info() -> dict:
    import cv2
    import numpy
    from importlib.metadata import version

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "pycocotools": version("pycocotools"), "numpy": numpy.__version__, "opencv": cv2.__version__,
            "orjson": version("orjson"), "segdata": version("segdata")}


def today() -> str:
    try:
        return subprocess.run(["date", "-u", "+%F"], check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return time.strftime("%Y-%m-%d", time.gmtime())


def _met(ratio: float, target: float) -> str:
    return f"**yes** (≤ {target:g}×)" if ratio <= target else f"**no** (target ≤ {target:g}×)"


def load_average() -> str:
    try:
        return ", ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def render(info: dict, dataset: str, load: dict | None, poly: dict | None, repeats: int,
           loadavg: tuple[str, str] = ("unknown", "unknown")) -> str:
    lines = [HEADING, "",
             f"- Date: {today()}",
             f"- Machine: {info['cores']} cores, {info['cpu']}; Python {info['python']}, "
             f"pycocotools {info['pycocotools']}, numpy {info['numpy']}, opencv {info['opencv']}, "
             f"orjson {info['orjson']}, segdata {info['segdata']}",
             f"- Load average (1, 5, 15 min): {loadavg[0]} before, {loadavg[1]} after the run "
             "(other jobs may share the machine; ratios come from interleaved runs)",
             f"- Data: {dataset}",
             f"- Reproduce: `{COMMAND}`",
             ""]
    if load:
        p, s = load["pycocotools"], load["segdata"]
        rt, rr = s["total_s"] / p["total_s"], s["rss_peak_mb"] / p["rss_peak_mb"]
        lines += [
            f"### a. Load + decode every mask ({s['decoded']} masks; fresh process per run, "
            f"best of {repeats} for time, largest peak RSS)", "",
            "| measure | pycocotools `COCO` + `annToMask` | segdata `coco.read` + `to_bitmap` "
            "| segdata / pycocotools | target met |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| wall time, load + decode | {p['total_s']:.2f} s | {s['total_s']:.2f} s | {rt:.2f}× "
            f"| {_met(rt, TARGET_LOAD_TIME)} |",
            f"| of which load (parse + index) | {p['load_s']:.2f} s | {s['load_s']:.2f} s "
            f"| {s['load_s'] / p['load_s']:.2f}× | – |",
            f"| of which decode all masks | {p['decode_s']:.2f} s | {s['decode_s']:.2f} s "
            f"| {s['decode_s'] / p['decode_s']:.2f}× | – |",
            f"| peak RSS | {p['rss_peak_mb']:.0f} MB | {s['rss_peak_mb']:.0f} MB | {rr:.2f}× "
            f"| {_met(rr, TARGET_LOAD_RSS)} |",
            f"| RSS after imports (baseline) | {p['rss_imports_mb']:.0f} MB | {s['rss_imports_mb']:.0f} MB "
            f"| {s['rss_imports_mb'] / p['rss_imports_mb']:.2f}× | – |",
            f"| peak RSS minus import baseline | {p['rss_peak_mb'] - p['rss_imports_mb']:.0f} MB "
            f"| {s['rss_peak_mb'] - s['rss_imports_mb']:.0f} MB "
            f"| {(s['rss_peak_mb'] - s['rss_imports_mb']) / max(p['rss_peak_mb'] - p['rss_imports_mb'], 1e-9):.2f}× | – |",
            "",
            "Peak RSS is the child's `VmHWM` (`/proc/self/status`), read at the end of the run: "
            "`getrusage(RUSAGE_SELF).ru_maxrss` would also count the parent's memory, which Linux carries "
            "across `exec`.",
            "",
            f"All wall times (s): pycocotools {', '.join(f'{t:.2f}' for t in p['all_total_s'])}; "
            f"segdata {', '.join(f'{t:.2f}' for t in s['all_total_s'])}.",
            "",
        ]
    if poly:
        ratio = poly["sdb_s"] / poly["cv_s"]
        n = poly["n"]
        lines += [
            f"### b. Mask → polygons ({n} non-empty masks, best of {max(repeats, 5)})", "",
            "| input (same for both) | `cv2.findContours` (lossy) | segdata (lossless) "
            "| segdata / findContours | target met |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| full-image `uint8` bitmap: `findContours(m)` vs `bitmap_to_polygons(m)` | {poly['cv_s']:.3f} s "
            f"| {poly['sdb_s']:.3f} s | {ratio:.2f}× | {_met(ratio, TARGET_POLYGONS)} |",
            f"| COCO RLE: `decode` + `findContours` vs `Mask.from_rle(rle).to_polygons()` | {poly['cvd_s']:.3f} s "
            f"| {poly['sd_s']:.3f} s | {poly['sd_s'] / poly['cvd_s']:.2f}× | – |",
            f"| RLE face vs bitmap (the issue's first definition): `findContours(m)` vs "
            f"`Mask.from_rle(rle).to_polygons()` | {poly['cv_s']:.3f} s | {poly['sd_s']:.3f} s "
            f"| {poly['sd_s'] / poly['cv_s']:.2f}× | – |",
            f"| per mask, bitmap input | {poly['cv_s'] / n * 1e6:.0f} µs | {poly['sdb_s'] / n * 1e6:.0f} µs | | |",
            f"| vertices out | {poly['cv_vertices']} | {poly['sd_vertices']} | | |",
            "",
            "segdata traces only the mask's bounding box (at 2× resolution) and maps the contour to pixel "
            "corners; from RLE it decodes only the box. Lossless check (pycocotools rasterises segdata's "
            f"polygons): **{poly['exact']} / {poly['verified']}** sampled masks identical to the original bitmap.",
            "",
        ]
    return "\n".join(lines)


def describe(path: Path) -> str:
    import orjson

    data = orjson.loads(path.read_bytes())
    anns = data["annotations"]
    crowd = sum(a["iscrowd"] for a in anns)
    rle = sum(1 for a in anns if isinstance(a["segmentation"], dict) and not a["iscrowd"])
    return (f"`{path.relative_to(HERE.parent) if path.is_relative_to(HERE.parent) else path}` "
            f"({path.stat().st_size / 1e6:.1f} MB): {len(data['images'])} images, {len(anns)} instances "
            f"({len(anns) - rle - crowd} polygon, {rle} compressed RLE, {crowd} crowd uncompressed RLE), "
            f"{len(data['categories'])} categories")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"COCO JSON (default {DEFAULT_DATA})")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; best time is kept")
    parser.add_argument("--masks", type=int, default=5000, help="masks for the polygon benchmark")
    parser.add_argument("--verify", type=int, default=500, help="masks checked for a lossless round trip")
    parser.add_argument("--skip", choices=["load", "polygons"], action="append", default=[],
                        help="skip a part (the section then omits it)")
    parser.add_argument("--profile", action="store_true", help="also cProfile the segdata side and print it")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"Markdown file (default {RESULTS})")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    parser.add_argument("--child", nargs=2, metavar=("SIDE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        side, path = args.child
        print(json.dumps(CHILDREN[side](path)))
        return 0

    if not args.data.is_file():
        print(f"{args.data} not found: run python benchmarks/synth_coco.py first", file=sys.stderr)
        return 2
    dataset = describe(args.data)
    print(f"data: {dataset}", flush=True)
    load = poly = None
    loadavg_before = load_average()
    if "load" not in args.skip:
        load = bench_load(args.data, args.repeats)
    if "polygons" not in args.skip:
        poly = bench_polygons(args.data, args.masks, args.verify, max(args.repeats, 5))
        print(f"  [b] findContours {poly['cv_s']:.3f} s, segdata bitmap_to_polygons {poly['sdb_s']:.3f} s "
              f"({poly['sdb_s'] / poly['cv_s']:.2f}×); lossless {poly['exact']}/{poly['verified']}", flush=True)
    section = render(machine_info(), dataset, load, poly, args.repeats, (loadavg_before, load_average()))
    if args.no_write:
        print(section)
    else:
        write_section(HEADING, section, args.results)
        print(f"wrote section {HEADING!r} of {args.results}")
        print(section)
    if args.profile:
        print(profile_segdata(args.data, args.masks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
