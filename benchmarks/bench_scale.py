"""Scale benchmark (issue 10): every job at 5k / 20k / 118k images, 1 and 2 workers, Dask.

Data: ``synth_coco.py`` files of 5,000, 20,000 and 118,000 images (the last
is shaped like COCO train2017: ~850k instances, ~400 MB), annotations only;
and, for the jobs that read image files, ``synth_images.py``'s COCO trees
``data/scale_20k/`` (the images of ``synth_20k.json``, one JPEG each, every
tenth in ``val``, one ``val`` image in 25 a planted copy of a ``train`` one)
and ``data/scale_5k/`` (its first 5,000 images: not ``synth_5k.json``'s,
which draws other image ids, but a sample of the same generator).

* ``load``: ``segdata.converters.coco.read`` against ``pycocotools.coco.COCO``
  on the same file, fresh process each, peak RSS (``VmHWM``);
* each annotation job (``stats``, ``validate``, ``convert`` to VOC,
  ``semantic``) on the ``synth_<size>.json`` file, and each image job on the
  ``scale_<size>`` tree (5k and 20k only): ``leakage`` (decodes every image
  for its fingerprints; the tree's ``.segdata-cache`` deleted before each
  run), ``validate-files`` (``validate`` with the files there: it reads each
  JPEG's header) and ``report`` (validate, leakage and stats in one process);
  and ``stats`` on folders of label maps (``stats-voc``, ``stats-cityscapes``,
  ``stats-instance-png``, ``stats-semantic-png``, ``stats-labelme``,
  ``stats-yolo``; 5k and 20k), which the benchmark writes once from
  ``synth_<size>.json`` into ``data/maps_<size>/`` with ``segdata convert``
  (``segdata semantic`` for class maps; Cityscapes with its 80 categories
  folded onto ids 1–60, as 16-bit instanceIds hold at most 64 thing
  classes; YOLO from the ``scale_<size>`` tree with its images, whose
  headers give the sizes): every job on such a folder begins by reading
  each image's file on every worker;
  each runs as the real CLI in a fresh process with ``--workers 1``,
  ``--workers 2``, ``--scheduler local --workers 2`` (a 2-worker Dask
  ``LocalCluster``) and ``--scheduler local --workers 1``; time is the
  whole command, memory the peak summed PSS of the process tree
  (``_memory.py``: the command, its helpers, the Dask scheduler and
  workers), taken in a run of its own after the timed ones: sampling it
  costs ~4 % of a core, which on 2 cores slows the 2-worker runs more than
  the 1-worker ones (leakage at 5k: 1.71× unsampled, 1.67× sampled).
  With ``--repeat N`` each job runs N times on every backend, the backends
  taken in turn, and the table gives the median time: this host's speed
  drifts by several per cent between runs.  Before and after the jobs,
  ``host_scaling`` measures how much a second process gains on this host at
  all (two copies of a pure-Python loop at once against one): the ceiling
  of every 2-worker speed-up in the same run.  The installed segdata is
  timed with its bytecode written, as ``pip install`` leaves it.

Writes the ``## Scale (issue 10)`` section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/synth_coco.py --images 5000 && python benchmarks/synth_coco.py --images 20000
    python benchmarks/synth_coco.py --images 118000
    python benchmarks/synth_images.py      # scale_20k/ and scale_5k/ with 20,000 JPEGs: ~2.5 min, 0.7 GB
    python benchmarks/bench_scale.py [--sizes 5k,20k,118k]
        [--jobs load,stats,validate,convert,semantic,leakage,validate-files,report,stats-voc,...]
        [--jobs-118k load,stats]
        [--backends '1 worker,2 workers,Dask LocalCluster of 2,Dask LocalCluster of 1']
        [--backends-118k '1 worker,2 workers'] [--repeat 1]
        [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _memory import run_measured  # benchmarks/ is on sys.path when a script runs
from _results import write_section
from synth_images import is_built

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
HEADING = "## Scale (issue 10)"
BACKENDS = {"1 worker": ["--workers", "1"], "2 workers": ["--workers", "2"],
            "Dask LocalCluster of 2": ["--scheduler", "local", "--workers", "2"],
            "Dask LocalCluster of 1": ["--scheduler", "local", "--workers", "1"]}
JOBS = {
    "stats": lambda data, out: ["stats", str(data), "--json"],
    "validate": lambda data, out: ["validate", str(data), "--json", "--fail-on", "never"],
    "convert": lambda data, out: ["convert", str(data), str(out), "--to", "voc"],
    "semantic": lambda data, out: ["semantic", str(data), str(out)],
}
#: Jobs that read the image files, on the JPEG trees of ``synth_images.py`` (no 118k tree).
IMAGE_JOBS = {
    "leakage": lambda root, out: ["leakage", str(root), "--json", "--fail-on", "never"],
    "validate-files": lambda root, out: ["validate", str(root), "--json", "--fail-on", "never"],
    "report": lambda root, out: ["report", str(root), "--json", "--fail-on", "never"],
}
TREES = {"5k": DATA / "scale_5k", "20k": DATA / "scale_20k"}
#: How each per-image folder is written from ``synth_<size>.json`` (``{categories}``: the Cityscapes fold).
MAP_FORMATS = {
    "voc": ["convert", "--to", "voc", "--category-ids", "keep"],
    "cityscapes": ["convert", "--to", "cityscapes", "--category-map", "{categories}"],
    "instance-png": ["convert", "--to", "instance-png"],
    "semantic-png": ["semantic"],
    "labelme": ["convert", "--to", "labelme"],
    "yolo": ["convert", "--to", "yolo", "--copy-images"],
}
#: The formats written from the ``scale_<size>`` tree instead: YOLO's reader takes each size from its image.
FROM_TREE = {"yolo"}
#: ``stats`` on each per-image folder (5k and 20k).
MAP_JOBS = {f"stats-{name}": lambda folder, out: ["stats", str(folder), "--json"] for name in MAP_FORMATS}

_LOAD_CHILD = """
import sys, time
start = time.perf_counter()
if sys.argv[1] == "pycocotools":
    from pycocotools.coco import COCO
    COCO(sys.argv[2])
else:
    from segdata.converters import coco
    coco.read(sys.argv[2])
seconds = time.perf_counter() - start
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(seconds, peak / 1024)
"""


_COMPILE_CHILD = """
import compileall, segdata, segdata.converters, segdata.validators
for package in (segdata, segdata.converters, segdata.validators):
    for folder in package.__path__:
        compileall.compile_dir(folder, quiet=1)
"""


def compile_bytecode(python: str = sys.executable) -> None:
    """Write the bytecode of the segdata ``python`` imports, as ``pip install`` does.  With
    ``PYTHONDONTWRITEBYTECODE`` set (this host sets it) an editable install compiles its modules again
    in every timed run: ~0.2 s of the command's start, which a second worker cannot shorten."""
    subprocess.run([python, "-c", _COMPILE_CHILD], check=True)


def label_maps(size: str, name: str) -> Path:
    """The ``name`` folder of ``synth_<size>.json`` (or of the tree, :data:`FROM_TREE`), written the first
    time it is asked for."""
    folder = DATA / f"maps_{size}" / name
    if not (folder / "done").is_file():
        source = TREES[size] if name in FROM_TREE else DATA / f"synth_{size}.json"
        if name in FROM_TREE and not is_built(source):
            sys.exit(f"{source} is missing; make it with: python benchmarks/synth_images.py")
        categories = DATA / f"maps_{size}" / "cityscapes_categories.json"
        categories.parent.mkdir(parents=True, exist_ok=True)
        if name == "cityscapes":
            ids = sorted(category["id"] for category in json.loads(source.read_bytes())["categories"])
            categories.write_text(json.dumps({str(i): at % 60 + 1 for at, i in enumerate(ids)}))
        shutil.rmtree(folder, ignore_errors=True)
        command = [arg.format(categories=categories) for arg in MAP_FORMATS[name]]
        subprocess.run([sys.executable, "-m", "segdata", command[0], str(source), str(folder), *command[1:]],
                       capture_output=True, check=True)
        (folder / "done").touch()
    return folder


def load_row(data: Path) -> dict:
    row = {}
    for side in ("pycocotools", "segdata"):
        done = subprocess.run([sys.executable, "-c", _LOAD_CHILD, side, str(data)], capture_output=True,
                              text=True, check=True)
        seconds, peak = map(float, done.stdout.splitlines()[-1].split())  # pycocotools prints first
        row[side] = {"seconds": seconds, "peak_mb": peak}
    return row


_LOOP = "s = 0\nfor i in range(10_000_000):\n    s += i"


def host_scaling(rounds: int = 6) -> float:
    """Throughput of two copies of a pure-Python loop at once against one, median of ``rounds``.

    A job that shares its work perfectly between 2 workers gains no more than
    this.  The host is shared and its second core's share drifts: on
    2026-11-23 single rounds ranged from 1.15× to 2.33×.
    """
    ratios = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", _LOOP], check=True)
        one = time.perf_counter() - start
        start = time.perf_counter()
        pair = [subprocess.Popen([sys.executable, "-c", _LOOP]) for _ in range(2)]
        if any(process.wait() for process in pair):
            sys.exit("the host-scaling loop failed")
        ratios.append(2 * one / (time.perf_counter() - start))
    return statistics.median(ratios)


def job_run(job: str, data: Path, backend: list[str], memory: bool = False,
            python: str = sys.executable) -> dict:
    """Seconds of one CLI run (by the segdata ``python`` imports), or with ``memory`` its peak summed
    PSS; an image job starts and ends without fingerprint cache."""
    def drop_cache() -> None:
        if job in IMAGE_JOBS:  # where ``leakage`` keeps the fingerprints of a tree
            shutil.rmtree(data / ".segdata-cache", ignore_errors=True)

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as scratch:
        out = Path(scratch) / "out"
        command = [python, "-m", "segdata", *{**JOBS, **IMAGE_JOBS, **MAP_JOBS}[job](data, out), *backend]
        drop_cache()
        start = time.perf_counter()
        try:
            if memory:
                return {"peak_mb": run_measured(command)[1]}
            subprocess.run(command, capture_output=True, check=True)
        finally:
            drop_cache()
        return {"seconds": time.perf_counter() - start}


def section(results: dict, load: dict, loadavg: tuple[float, float], repeat: int = 1,
            host: tuple[float, float] | None = None) -> str:
    taken = ("one timed run each" if repeat == 1 else
             f"the median of {repeat} timed runs each, the backends taken in turn") + \
        ", then one more for the peak memory (sampling it slows a run)"
    lines = [HEADING, "",
             f"`python benchmarks/bench_scale.py` — measured {date.today().isoformat()}, {taken}, fresh "
             f"process; Python {platform.python_version()}, {os.cpu_count()} cores, load average "
             f"{loadavg[0]:.2f} before and {loadavg[1]:.2f} after."
             + (f" The host's own 2-core scaling (`host_scaling`: two copies of a pure-Python loop at once "
                f"against one, the most that 2 workers can gain): {host[0]:.2f}× before and {host[1]:.2f}× "
                f"after." if host else ""), ""]
    if load:
        lines += ["### Loading a COCO file: segdata vs `pycocotools.COCO()`", "",
                  "| images | pycocotools s | segdata s | pycocotools peak MB | segdata peak MB "
                  "| segdata / pycocotools |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for size, row in load.items():
            p, s = row["pycocotools"], row["segdata"]
            lines.append(f"| {size} | {p['seconds']:.1f} | {s['seconds']:.1f} | {p['peak_mb']:.0f} | "
                         f"{s['peak_mb']:.0f} | **{s['peak_mb'] / p['peak_mb']:.2f}×** |")
        lines.append("")
    if results:
        lines += ["### Jobs (CLI, whole command)", "",
                  "| job | images | backend | seconds | µs / image | peak PSS MB |"
                  + (" each run s |" if repeat > 1 else ""),
                  "|---|---:|---|---:|---:|---:|" + ("---|" if repeat > 1 else "")]
        for (job, size, backend), r in results.items():
            each = f" {', '.join(f'{s:.1f}' for s in r['runs'])} |" if repeat > 1 else ""
            lines.append(f"| {job} | {size} | {backend} | {r['seconds']:.1f} | "
                         f"{r['seconds'] / r['images'] * 1e6:,.0f} | {r['peak_mb']:.0f} |{each}")
        lines += ["", "| job | images | speed-up, 2 workers / 1 | Dask of 2 / 1 worker "
                  "| Dask of 2 / Dask of 1 |", "|---|---:|---:|---:|---:|"]
        for job, size in dict.fromkeys((j, s) for j, s, _ in results):
            ratios = []
            for one, two in (("1 worker", "2 workers"), ("1 worker", "Dask LocalCluster of 2"),
                             ("Dask LocalCluster of 1", "Dask LocalCluster of 2")):
                one, two = results.get((job, size, one)), results.get((job, size, two))
                ratios.append(f"{one['seconds'] / two['seconds']:.2f}×" if one and two else "–")
            lines.append(f"| {job} | {size} | {' | '.join(ratios)} |")
        growth = [(job, backend, r, results[(job, "118k", backend)])
                  for (job, size, backend), r in results.items()
                  if size == "20k" and (job, "118k", backend) in results]
        if growth:
            lines += ["", "Growth from 20k to 118k images (issue 10: time linear within 20 %, memory within "
                      "1.5×):", "", "| job | backend | µs / image, 118k / 20k | peak PSS, 118k / 20k |",
                      "|---|---|---:|---:|"]
            for job, backend, small, large in growth:
                per_image = (large["seconds"] / large["images"]) / (small["seconds"] / small["images"])
                memory = large["peak_mb"] / small["peak_mb"]
                lines.append(f"| {job} | {backend} | {per_image:.2f}× | {memory:.2f}× |")
    lines += ["", "Reading the rows: the local backends fork their helper before reading the dataset and "
              "the command's own process takes batches too, whenever its helpers are ahead; the Dask rows "
              "include starting a LocalCluster (a scheduler and nannies in the command's process, and a "
              "worker process each, forked from it before it reads) and ship every batch (up to 1,024 "
              "images, 256 from a job's stream), pickled, to a worker, which is why one machine is faster "
              "without it.  Memory is the summed PSS of all those processes."]
    if any(job in IMAGE_JOBS for job, _s, _b in results):
        lines += ["", "The image jobs run on the JPEG trees of `synth_images.py` (~35 KB per image; the 5k "
                  "tree is the first 5,000 images of the 20k one, not `synth_5k.json`'s; every tenth image "
                  "in `val`, one in 25 of those a planted copy of a `train` image: the same file, re-encoded "
                  "brighter, mirrored or cropped): `leakage` decodes every image for its fingerprints (its "
                  "cache deleted before each run), `validate-files` is `validate` reading each file's header "
                  "as well, `report` runs validate, leakage and stats on one load of the dataset."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5k,20k,118k")
    parser.add_argument("--jobs", default=",".join(["load", *JOBS, *IMAGE_JOBS]),
                        help="load, annotation jobs (on synth_<size>.json), image jobs (on the "
                             "scale_<size>/ JPEG trees, which exist at 5k and 20k only) and per-image "
                             f"folder jobs ({', '.join(MAP_JOBS)}; 5k and 20k).")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--jobs-118k", default="load,stats",
                        help="The jobs also run at 118k (each takes minutes; no image job: no 118k tree).")
    parser.add_argument("--backends-118k", default=None,
                        help="The backends of the 118k runs but load (default: --backends).")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Runs of each job on each backend, the backends taken in turn; "
                             "the median counts.")
    parser.add_argument("--no-write", action="store_true", help="Print the section, leave RESULTS.md alone.")
    args = parser.parse_args()
    sizes, jobs, backends = args.sizes.split(","), args.jobs.split(","), args.backends.split(",")
    backends_118k = backends if args.backends_118k is None else args.backends_118k.split(",")
    at_118k = [j for j in args.jobs_118k.split(",") if j]  # "" runs nothing at 118k
    if args.repeat < 1:
        sys.exit(f"--repeat must be at least 1, found {args.repeat}")
    known = ["load", *JOBS, *IMAGE_JOBS, *MAP_JOBS]
    if unknown := sorted(set(jobs + at_118k) - set(known)):
        sys.exit(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if unknown := sorted(set(backends + backends_118k) - set(BACKENDS)):
        sys.exit(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    if images_at_118k := sorted(set(at_118k) & {*IMAGE_JOBS, *MAP_JOBS}):
        sys.exit(f"no image tree or per-image folder at 118k for {', '.join(images_at_118k)}")
    compile_bytecode()
    before = os.getloadavg()[0]
    scaling_before = host_scaling()
    load, results = {}, {}
    for size in sizes:
        wanted = [j for j in jobs if size != "118k" or j in at_118k]
        on_file = [j for j in wanted if j in JOBS]
        on_tree = [j for j in wanted if j in IMAGE_JOBS and size in TREES]
        on_maps = [j for j in wanted if j in MAP_JOBS]
        data, tree = DATA / f"synth_{size}.json", TREES.get(size)
        if ("load" in wanted or on_file or on_maps) and not data.is_file():
            sys.exit(f"{data} is missing; make it with: python benchmarks/synth_coco.py --images "
                     f"{int(size.rstrip('k')) * 1000}")
        if on_tree and not is_built(tree):
            sys.exit(f"{tree} is missing; make it with: python benchmarks/synth_images.py")
        images = int(size.rstrip("k")) * 1000  # synth_coco.py makes exactly that many, the trees too
        if "load" in wanted:
            load[size] = load_row(data)
            print(size, "load", load[size], file=sys.stderr)
        for job in on_file + on_tree + on_maps:
            source = (data if job in JOBS else tree if job in IMAGE_JOBS
                      else label_maps(size, job.removeprefix("stats-")))
            runs: dict[str, list[dict]] = {}
            for memory in [False] * args.repeat + [True]:  # the timed runs, then one sampled for memory
                for backend in backends_118k if size == "118k" else backends:
                    run = job_run(job, source, BACKENDS[backend], memory)
                    runs.setdefault(backend, []).append(run)
                    print(size, job, backend, run, file=sys.stderr)
            for backend, (*timed, sampled) in runs.items():
                seconds = [run["seconds"] for run in timed]
                results[(job, size, backend)] = {"seconds": statistics.median(seconds), "runs": seconds,
                                                 "peak_mb": sampled["peak_mb"], "images": images}
    text = section(results, load, (before, os.getloadavg()[0]), args.repeat, (scaling_before, host_scaling()))
    print(text)
    if not args.no_write:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
