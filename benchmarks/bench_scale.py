"""Scale benchmark (issue 10): every annotation job at 5k / 20k / 118k images, 1 and 2 workers, Dask.

Data: ``synth_coco.py`` files of 5,000, 20,000 and 118,000 images (the last
is shaped like COCO train2017: ~850k instances, ~400 MB), annotations only.

* ``load``: ``segdata.converters.coco.read`` against ``pycocotools.coco.COCO``
  on the same file, fresh process each, peak RSS (``VmHWM``);
* each job (``stats``, ``validate``, ``convert`` to VOC, ``semantic``) runs
  as the real CLI in a fresh process with ``--workers 1``, ``--workers 2``
  and ``--scheduler local --workers 2`` (a 2-worker Dask ``LocalCluster``);
  time is the whole command, memory the peak summed PSS of the process tree
  (``_memory.py``: the command, its helpers, the Dask scheduler and workers).

Writes the ``## Scale (issue 10)`` section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/synth_coco.py --images 5000 && python benchmarks/synth_coco.py --images 20000
    python benchmarks/synth_coco.py --images 118000
    python benchmarks/bench_scale.py [--sizes 5k,20k,118k] [--jobs load,stats,validate,convert,semantic]
                                     [--jobs-118k load,stats]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _memory import run_measured  # benchmarks/ is on sys.path when a script runs
from _results import write_section

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
HEADING = "## Scale (issue 10)"
BACKENDS = {"1 worker": ["--workers", "1"], "2 workers": ["--workers", "2"],
            "Dask LocalCluster of 2": ["--scheduler", "local", "--workers", "2"]}
JOBS = {
    "stats": lambda data, out: ["stats", str(data), "--json"],
    "validate": lambda data, out: ["validate", str(data), "--json", "--fail-on", "never"],
    "convert": lambda data, out: ["convert", str(data), str(out), "--to", "voc"],
    "semantic": lambda data, out: ["semantic", str(data), str(out)],
}

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


def load_row(data: Path) -> dict:
    row = {}
    for side in ("pycocotools", "segdata"):
        done = subprocess.run([sys.executable, "-c", _LOAD_CHILD, side, str(data)], capture_output=True,
                              text=True, check=True)
        seconds, peak = map(float, done.stdout.splitlines()[-1].split())  # pycocotools prints first
        row[side] = {"seconds": seconds, "peak_mb": peak}
    return row


def job_run(job: str, data: Path, backend: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as scratch:
        out = Path(scratch) / "out"
        command = [sys.executable, "-m", "segdata", *JOBS[job](data, out), *backend]
        start = time.perf_counter()
        _, peak = run_measured(command)
        return {"seconds": time.perf_counter() - start, "peak_mb": peak}


def section(results: dict, load: dict, loadavg: tuple[float, float]) -> str:
    lines = [HEADING, "",
             f"`python benchmarks/bench_scale.py` — measured {date.today().isoformat()}, one run each, fresh "
             f"process; Python {platform.python_version()}, {os.cpu_count()} cores, load average "
             f"{loadavg[0]:.2f} before and {loadavg[1]:.2f} after.", ""]
    if load:
        lines += ["### Loading a COCO file: segdata vs `pycocotools.COCO()`", "",
                  "| images | pycocotools s | segdata s | pycocotools peak MB | segdata peak MB | segdata / pycocotools |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for size, row in load.items():
            p, s = row["pycocotools"], row["segdata"]
            lines.append(f"| {size} | {p['seconds']:.1f} | {s['seconds']:.1f} | {p['peak_mb']:.0f} | "
                         f"{s['peak_mb']:.0f} | **{s['peak_mb'] / p['peak_mb']:.2f}×** |")
        lines.append("")
    if results:
        lines += ["### Jobs (CLI, whole command)", "",
                  "| job | images | backend | seconds | µs / image | peak PSS MB |", "|---|---:|---|---:|---:|---:|"]
        for (job, size, backend), r in results.items():
            lines.append(f"| {job} | {size} | {backend} | {r['seconds']:.1f} | "
                         f"{r['seconds'] / r['images'] * 1e6:,.0f} | {r['peak_mb']:.0f} |")
        lines += ["", "| job | images | speed-up, 2 workers / 1 | speed-up, Dask 2 / 1 |", "|---|---:|---:|---:|"]
        for job, size in dict.fromkeys((j, s) for j, s, _ in results):
            one = results.get((job, size, "1 worker"))
            two = results.get((job, size, "2 workers"))
            dask = results.get((job, size, "Dask LocalCluster of 2"))
            if one:
                lines.append(f"| {job} | {size} | {one['seconds'] / two['seconds']:.2f}× | "
                             + (f"{one['seconds'] / dask['seconds']:.2f}× |" if dask else "– |"))
    lines += ["", "Reading the rows: the local backends fork their helper before reading the dataset and the command's "
              "own process takes batches too, whenever its helpers are ahead; the Dask rows include starting a LocalCluster (a "
              "scheduler, two nannies, two workers: each a full interpreter with distributed imported) and ship "
              "every batch, pickled, to a worker, which is why one machine is faster without it.  Memory is the "
              "summed PSS of all those processes."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5k,20k,118k")
    parser.add_argument("--jobs", default="load," + ",".join(JOBS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--jobs-118k", default="load,stats", help="The jobs also run at 118k (each takes minutes).")
    parser.add_argument("--no-write", action="store_true", help="Print the section, leave RESULTS.md alone.")
    args = parser.parse_args()
    sizes, jobs, backends = args.sizes.split(","), args.jobs.split(","), args.backends.split(",")
    before = os.getloadavg()[0]
    load, results = {}, {}
    for size in sizes:
        data = DATA / f"synth_{size}.json"
        if not data.is_file():
            sys.exit(f"{data} is missing; make it with: python benchmarks/synth_coco.py --images "
                     f"{int(size.rstrip('k')) * 1000}")
        images = int(size.rstrip("k")) * 1000  # synth_coco.py makes exactly that many
        if "load" in jobs and (size != "118k" or "load" in args.jobs_118k.split(",")):
            load[size] = load_row(data)
            print(size, "load", load[size], file=sys.stderr)
        for job in (j for j in jobs if j in JOBS and (size != "118k" or j in args.jobs_118k.split(","))):
            for backend in backends:
                results[(job, size, backend)] = {**job_run(job, data, BACKENDS[backend]), "images": images}
                print(size, job, backend, results[(job, size, backend)], file=sys.stderr)
    text = section(results, load, (before, os.getloadavg()[0]))
    print(text)
    if not args.no_write:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
