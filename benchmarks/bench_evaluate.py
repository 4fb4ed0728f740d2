"""Benchmark ``segdata evaluate``: COCO mask AP against pycocotools, faster-coco-eval and hotcoco; PQ against panopticapi.

Instance: ground truth is ``benchmarks/data/synth_5k.json`` (from
``synth_coco.py``).  Detections: every usable GT polygon twice, shifted by up
to ±8 px, plus random boxes of random classes, up to ~20 per image, scores
rounded to 0.01 so that ties occur.  Every tool gets the same GT file and
the same results list (a fresh copy each, made outside the timing); loading
is timed apart from evaluation; each tool's 12 stats are compared with
pycocotools'.

Panoptic: 500 synthetic 640×480 COCO panoptic images (``synth_panoptic.py``)
scored by panopticapi's ``pq_compute`` (one process per core, as it always
runs), hotcoco's ``pq_compute`` and segdata's ``evaluate_panoptic`` with 1 and
with 2 worker processes.  PQ/SQ/RQ (All/Things/Stuff) are compared with
panopticapi's.

Tools run interleaved, ``--rounds`` times, so that the load other jobs put on
the machine hits every tool alike; the table shows the median round.

Writes the ``## Evaluate (issue 8)`` section of ``benchmarks/RESULTS.md``
(replacing only that section).

Usage::

    pip install faster-coco-eval hotcoco && pip install --no-deps panopticapi-lite
    python benchmarks/synth_coco.py && python benchmarks/synth_panoptic.py && python benchmarks/bench_evaluate.py
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import io
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from _results import write_section  # benchmarks/ is on sys.path when a script runs
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from segdata.converters import coco
from synth_panoptic import generate as generate_panoptic

from segdata import parallel, png
from segdata.metrics.instance import STAT_NAMES, evaluate_instances
from segdata.metrics.panoptic import evaluate_panoptic

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
HEADING = "## Evaluate (issue 8)"
INSTALL = {"faster-coco-eval": "pip install faster-coco-eval", "hotcoco": "pip install hotcoco",
           "panopticapi-lite": "pip install --no-deps panopticapi-lite  # its numpy<2 pin is not needed"}


@contextlib.contextmanager
def quiet():
    """Silence stdout at the file-descriptor level too: Rust and C++ tools print past ``sys.stdout``."""
    with contextlib.redirect_stdout(io.StringIO()):
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(devnull)
            os.close(saved)


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def make_results(gt: COCO, usable: set[int], per_image: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    cat_ids = sorted(gt.getCatIds())
    results = []
    for image_id in sorted(gt.getImgIds()):
        image = gt.imgs[image_id]
        h, w = image["height"], image["width"]
        made = 0
        for ann in gt.imgToAnns.get(image_id, []):
            if ann["id"] not in usable or not isinstance(ann["segmentation"], list) or ann["iscrowd"]:
                continue
            for _ in range(2):
                if made >= per_image:
                    break
                dx, dy = rng.uniform(-8, 8, size=2)
                polys = [[v + (dx if i % 2 == 0 else dy) for i, v in enumerate(p)] for p in ann["segmentation"]]
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
                results.append({"image_id": image_id, "category_id": ann["category_id"], "segmentation": rle,
                                "score": round(float(rng.random()), 2)})
                made += 1
        boxes = []
        for _ in range(per_image - made):
            bw, bh = rng.uniform(4, w / 2), rng.uniform(4, h / 2)
            boxes.append([rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh])
        for rle in (mask_utils.frPyObjects(np.array(boxes), h, w) if boxes else []):
            results.append({"image_id": image_id, "category_id": int(rng.choice(cat_ids)), "segmentation": rle,
                            "score": round(float(rng.random()), 2)})
    for r in results:
        r["segmentation"]["counts"] = r["segmentation"]["counts"].decode()
    return results


def timed(fn):
    """(result, wall seconds, CPU seconds of this process and its threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def instance_tools(gt_path: Path, dataset_loader):
    """name → function(results) returning (stats, load (wall, cpu), evaluate (wall, cpu))."""
    def pycocotools(results):
        from pycocotools.cocoeval import COCOeval

        def load():
            gt = COCO(str(gt_path))
            return gt, gt.loadRes(results)
        with quiet():
            (gt, dt), load_wall, load_cpu = timed(load)
            e = COCOeval(gt, dt, "segm")
            _, wall, cpu = timed(lambda: (e.evaluate(), e.accumulate(), e.summarize()))
        return list(e.stats), (load_wall, load_cpu), (wall, cpu)

    def faster_coco_eval(results):
        from faster_coco_eval import COCO as FCOCO
        from faster_coco_eval import COCOeval_faster

        def load():
            gt = FCOCO(str(gt_path))
            return gt, gt.loadRes(results)
        with quiet():
            (gt, dt), load_wall, load_cpu = timed(load)
            e = COCOeval_faster(gt, dt, iouType="segm", print_function=lambda *a, **k: None)
            _, wall, cpu = timed(lambda: (e.evaluate(), e.accumulate(), e.summarize()))
        return list(e.stats), (load_wall, load_cpu), (wall, cpu)

    def hotcoco(results):
        import hotcoco as hc

        def load():
            gt = hc.COCO(str(gt_path))
            return gt, gt.load_res(results)
        with quiet():
            (gt, dt), load_wall, load_cpu = timed(load)
            e = hc.COCOeval(gt, dt, "segm")
            _, wall, cpu = timed(lambda: (e.evaluate(), e.accumulate(), e.summarize()))
        return list(e.stats), (load_wall, load_cpu), (wall, cpu)

    def segdata(results, workers):
        dataset, load_wall, load_cpu = timed(dataset_loader)
        ours, wall, cpu = timed(lambda: evaluate_instances(dataset, results, workers=workers))
        return [ours.stats[n] for n in STAT_NAMES], (load_wall, load_cpu), (wall, cpu)

    tools = {f"pycocotools {version('pycocotools')}": pycocotools}
    if version("faster-coco-eval"):
        tools[f"faster-coco-eval {version('faster-coco-eval')}"] = faster_coco_eval
    if version("hotcoco"):
        tools[f"hotcoco {version('hotcoco')}"] = hotcoco
    tools["segdata, 1 process"] = lambda results: segdata(results, 1)
    tools["segdata, 2 processes (GT masks decoded in both)"] = lambda results: segdata(results, 2)
    return tools


def panoptic_tools(gt_json: Path, pred_json: Path):
    """name → function() returning {"all"|"things"|"stuff": {"pq","sq","rq","n"}}."""
    def panopticapi():
        from panopticapi.evaluation import pq_compute
        with quiet():
            r = pq_compute(str(gt_json), str(pred_json))
        return {k.lower(): r[k] for k in ("All", "Things", "Stuff")}

    def hotcoco():
        from hotcoco.panoptic import pq_compute
        with quiet():
            r = pq_compute(str(gt_json), str(pred_json))
        return {k.lower(): r[k] for k in ("All", "Things", "Stuff")}

    tools = {}
    if version("panopticapi-lite"):
        tools[f"panopticapi {version('panopticapi-lite')} (panopticapi-lite, {os.cpu_count()} processes)"] = panopticapi
    if version("hotcoco"):
        tools[f"hotcoco {version('hotcoco')}"] = hotcoco
    tools["segdata, 1 process"] = lambda: evaluate_panoptic(gt_json, pred_json, workers=1).summary
    tools["segdata, 2 processes"] = lambda: evaluate_panoptic(gt_json, pred_json, workers=2).summary
    return tools


def decode_only(gt_json: Path, pred_json: Path, decode) -> float:
    """Seconds to decode every GT and predicted PNG once in one process with ``decode(bytes)``."""
    files = sorted(gt_json.with_suffix("").glob("*.png")) + sorted(pred_json.with_suffix("").glob("*.png"))
    start = time.perf_counter()
    for path in files:
        decode(path.read_bytes())
    return time.perf_counter() - start


def opencv_decode(data: bytes):
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def run_interleaved(tools: dict, rounds: int, call) -> dict:
    """Each round runs every tool once, starting one further along the list each time."""
    runs = {name: [] for name in tools}
    names = list(tools)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(call(tools[name]))
    return runs


def median_run(runs: list, key) -> object:
    return sorted(runs, key=key)[len(runs) // 2]


def instance_section(args) -> list[str]:
    dataset = coco.read(args.data)
    # COCOeval would crash on records segdata flags as unusable; every tool gets the same clean GT
    usable = {a.id for a in dataset.annotations if a.mask is not None}
    bad = len(dataset.annotations) - len(usable)
    gt_path = args.data
    if bad:
        import json

        raw = json.loads(args.data.read_text())
        raw["annotations"] = [a for a in raw["annotations"] if a["id"] in usable]
        gt_path = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_evaluate_gt.json"
        gt_path.write_text(json.dumps(raw))
    with quiet():
        gt = COCO(str(gt_path))
    results = make_results(gt, usable, args.per_image)
    del dataset
    tools = instance_tools(gt_path, lambda: coco.read(gt_path))
    runs = run_interleaved(tools, args.rounds, lambda fn: fn(copy.deepcopy(results)))
    reference = next(iter(runs.values()))[0][0]
    rows = []
    for name, tool_runs in runs.items():
        stats, load, evaluate = median_run(tool_runs, key=lambda run: run[2][0])
        delta = max(abs(a - b) for a, b in zip(stats, reference))
        rows.append((name, load, evaluate, delta, stats))
    ref_eval = rows[0][2][0]
    ref_total = rows[0][1][0] + rows[0][2][0]
    ours = rows[-1]
    lines = [
        (f"**COCO mask AP** — {len(gt.imgs):,} images, {len(gt.anns):,} GT ({bad} unusable GT records dropped for all "
        f"tools), {len(results):,} detections (~{args.per_image}/image: jittered GT polygons + random boxes); "
        f"median of {args.rounds} interleaved rounds. CPU = this process's CPU time (all its threads; not "
        "segdata's helper process)."), "",
        ("| tool | load GT + results: wall / CPU (s) | evaluate + accumulate + summarize: wall / CPU (s) | "
        "evaluate speed-up vs pycocotools: wall / CPU | load + evaluate speed-up (wall) | "
        "12 stats vs pycocotools: max abs. diff. |"),
        "|---|---:|---:|---:|---:|---:|"]
    for name, load, evaluate, delta, _ in rows:
        lines.append(f"| {name} | {load[0]:.2f} / {load[1]:.2f} | {evaluate[0]:.2f} / {evaluate[1]:.2f} | "
                     f"{ref_eval / evaluate[0]:.1f}× / {rows[0][2][1] / evaluate[1]:.1f}× | "
                     f"{ref_total / (load[0] + evaluate[0]):.1f}× | {delta:.1e} |")
    missing = [INSTALL[p] for p in ("faster-coco-eval", "hotcoco") if not version(p)]
    lines += ["", f"segdata (`coco.read` + `evaluate_instances`, result checks included): "
              f"AP = {ours[4][0]:.4f}, AP50 = {ours[4][1]:.4f}, AR100 = {ours[4][8]:.4f}; with 2 processes "
              f"**{ref_eval / ours[2][0]:.1f}×** pycocotools on evaluation, with 1 "
              f"**{ref_eval / rows[-2][2][0]:.1f}×**. "
              + (f"Not installed, not run: `{'`, `'.join(missing)}`." if missing else "")]
    return lines


def panoptic_section(args) -> list[str]:
    gt_json, pred_json = args.panoptic / "gt.json", args.panoptic / "pred.json"
    if not gt_json.is_file():
        generate_panoptic(args.panoptic, args.panoptic_images)
    tools = panoptic_tools(gt_json, pred_json)
    runs = run_interleaved(tools, args.rounds, lambda fn: timed(fn))
    reference = next(iter(runs.values()))[0][0]
    lines = [
        "", (f"**Panoptic quality** — {args.panoptic_images} synthetic 640×480 COCO panoptic images "
        "(`synth_panoptic.py`: stuff bands, things, 5 % crowd, VOID; predictions shifted, relabelled, missed, "
        f"false positives), PNG reading included; median of {args.rounds} interleaved rounds."), "",
        "| tool | wall (s) | speed-up vs panopticapi | PQ/SQ/RQ (All, Things, Stuff) vs panopticapi: max abs. diff. |",
        "|---|---:|---:|---:|"]
    ref_wall = statistics.median(run[1] for run in next(iter(runs.values())))
    for name, tool_runs in runs.items():
        summary, wall, _ = median_run(tool_runs, key=lambda run: run[1])
        delta = max(abs(summary[s][m] - reference[s][m]) for s in reference for m in ("pq", "sq", "rq"))
        lines.append(f"| {name} | {wall:.2f} | {ref_wall / wall:.1f}× | {delta:.1e} |")
    decode = {name: statistics.median(decode_only(gt_json, pred_json, fn) for _ in range(args.rounds))
              for name, fn in (("opencv", opencv_decode), ("segdata", png.decode_rgb))}
    all_row = reference["all"]
    lines += ["", (f"PQ = {all_row['pq']:.4f}, SQ = {all_row['sq']:.4f}, RQ = {all_row['rq']:.4f}. "
                   "Differences of 1e-16 come from panopticapi summing per process and then across processes. "
                   "segdata's helper process is forked once at the start, as `segdata evaluate` forks it "
                   f"before reading. Decoding the {2 * args.panoptic_images} PNGs alone "
                   "(1 process, median of "
                   f"{args.rounds}): OpenCV (libpng) **{decode['opencv']:.2f} s**, `segdata.png.decode_rgb` "
                   f"(libdeflate + libspng) **{decode['segdata']:.2f} s** — zlib's inflate was the floor of "
                   "a Python PQ.")]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE / "data" / "synth_5k.json")
    parser.add_argument("--per-image", type=int, default=20)
    parser.add_argument("--panoptic", type=Path, default=HERE / "data" / "panoptic_500")
    parser.add_argument("--panoptic-images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data} is missing; run python benchmarks/synth_coco.py first")
    parallel.start_workers(2)  # as `segdata evaluate` forks its helper before it reads anything
    load_before = os.getloadavg()
    panoptic = panoptic_section(args)  # first: the instance section leaves this process large
    lines = instance_section(args) + panoptic
    load_after = os.getloadavg()
    section = "\n".join([
        HEADING, "",
        (f"`python benchmarks/bench_evaluate.py` ({datetime.date.today().isoformat()}) — Python "
        f"{platform.python_version()}, {os.cpu_count()} cores shared with other jobs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after."), "", *lines, ""])
    write_section(HEADING, section, args.results)
    print(section)


if __name__ == "__main__":
    main()
