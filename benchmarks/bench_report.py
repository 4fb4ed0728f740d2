"""Report benchmark (issue 9): ``segdata report`` against ``validate`` + ``leakage`` + ``stats`` run one by one.

On the synthetic COCO-scale set made by ``synth_coco.py`` *with image files*:
this script writes a COCO tree per size under ``benchmarks/data/`` (gitignored),
``report_5k/`` (the 5,000 images, every tenth in ``val``, the rest in
``train``; one smooth random JPEG of the declared size per image, made once
by ``synth_images.py``'s functions)
and ``report_1k/`` (the first 1,000 images, the same splits, the same files
through an ``images`` symlink).

Each measurement is a fresh ``python -m segdata`` process, with the same
``--workers`` for every command and ``--json`` output (discarded):

* ``report``: ``segdata report ROOT --json`` (no fingerprint cache: the
  report's default);
* ``one by one``: ``segdata validate``, ``segdata leakage`` (its
  ``.segdata-cache`` deleted before each run, so it fingerprints every image,
  as the report does) and ``segdata stats``, one after another; the time is
  their sum;
* ``report --out``: the report with its HTML page, for what the page costs.

The runs are interleaved (one round = every command once, on 1k then 5k), so
the load of a shared machine weighs on both sides alike; the best of the
rounds is kept for time and the largest for memory.  Memory is the peak over
the run of the **sum of PSS over the process tree** (parent and workers;
``benchmarks/_memory.py``), sampled every 50 ms.

Writes the ``## Report (issue 9)`` section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/synth_coco.py
    python benchmarks/bench_report.py [--rounds 2] [--memory-rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import orjson

from _memory import run_measured  # benchmarks/ is on sys.path when a script runs
from _results import write_section
from synth_images import every_tenth_in_val, is_built, write_annotations, write_images

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SYNTH = DATA / "synth_5k.json"
HEADING = "## Report (issue 9)"
COMMAND = "python benchmarks/synth_coco.py && python benchmarks/bench_report.py"
SIZES = {"1k": 1000, "5k": 5000}


def build_trees() -> dict[str, Path]:
    """``report_5k`` and ``report_1k`` COCO trees with image files; made once, reused after."""
    if not SYNTH.is_file():
        subprocess.run([sys.executable, str(HERE / "synth_coco.py")], check=True)
    full = orjson.loads(SYNTH.read_bytes())
    split_of = every_tenth_in_val(full["images"])
    largest = max(SIZES, key=SIZES.get)
    roots = {}
    for label, count in sorted(SIZES.items(), key=lambda item: -item[1]):
        root = DATA / f"report_{label}"
        roots[label] = root
        if is_built(root):
            continue
        images = full["images"][:count]
        if label == largest:
            write_images(images, split_of, root)
        else:
            root.mkdir(parents=True, exist_ok=True)
            if not (root / "images").is_symlink():
                (root / "images").symlink_to(DATA / f"report_{largest}" / "images")
        write_annotations(full, images, split_of, root)
    return roots


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # the finished children and the workers they waited for
    return used.ru_utime + used.ru_stime


def _segdata(*args: str | Path, memory: bool) -> tuple[float, float, float | None]:
    """Seconds, CPU seconds (process tree) and, with ``memory``, peak summed PSS (MB) of one run.

    Timed runs are not sampled: reading ``smaps_rollup`` of a large process every 50 ms takes time
    from it (the kernel walks its page tables under its memory-map lock), more so the larger it is.
    """
    command = [sys.executable, "-m", "segdata", *map(str, args)]
    start, cpu = time.perf_counter(), _cpu()
    if memory:
        _done, peak = run_measured(command)
    else:
        subprocess.run(command, check=True, capture_output=True)
        peak = None
    return time.perf_counter() - start, _cpu() - cpu, peak


def measure(roots: dict[str, Path], rounds: int, memory_rounds: int, workers: int,
            out_dir: Path | None) -> dict:
    """``rounds`` interleaved timed rounds, then ``memory_rounds`` sampling memory, then each HTML page."""
    results: dict[str, dict[str, list[tuple[float, float, float | None]]]] = {}
    common = ("--json", "--workers", str(workers))

    def record(label: str, name: str, *args: str | Path, memory: bool = False) -> None:
        seconds, cpu, peak = _segdata(*args, memory=memory)
        results.setdefault(label, {}).setdefault(name, []).append((seconds, cpu, peak))
        shown = f", {peak:.0f} MB" if peak is not None else ""
        print(f"{label} {name}: {seconds:.1f} s, CPU {cpu:.1f} s{shown}", file=sys.stderr)

    for memory in [False] * rounds + [True] * memory_rounds:
        for label, root in roots.items():
            record(label, "report", "report", root, "--fail-on", "never", *common, memory=memory)
            record(label, "validate", "validate", root, "--fail-on", "never", *common, memory=memory)
            shutil.rmtree(root / ".segdata-cache", ignore_errors=True)  # cold, as the report runs
            record(label, "leakage", "leakage", root, "--fail-on", "never", *common, memory=memory)
            shutil.rmtree(root / ".segdata-cache", ignore_errors=True)
            record(label, "stats", "stats", root, *common, memory=memory)
    for label, root in roots.items() if out_dir is not None else ():
        record(label, "report --out", "report", root, "--fail-on", "never", "--out", out_dir / f"{label}.html",
               *common)
    return results


def _section(results: dict, workers: int, load: tuple[str, str], page_kb: dict[str, float]) -> str:
    runs_of_report = next(iter(results.values()))["report"]
    timed_rounds = sum(m is None for _s, _c, m in runs_of_report)
    memory_rounds = len(runs_of_report) - timed_rounds
    lines = [HEADING, "",
             (f"Measured {date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}; load average (1/5/15 min) before {load[0]}, after {load[1]}. "
              f"`--workers {workers}` for every command, `--json` output, fresh process each; runs interleaved, "
              f"best wall and CPU time of {timed_rounds} timed rounds "
              "(CPU: user + system of the process tree, the measure the load of a shared machine "
              f"disturbs least). Memory, in {memory_rounds} more rounds of their own (sampling slows a "
              "process): "
              "the largest peak of the summed PSS of the process tree (parent + workers), every 50 ms. "
              "Data: the synthetic "
              "COCO-scale set with one JPEG per image (every tenth image in `val`). "
              f"Command: `{COMMAND}`."), "",
             ("| images | report s | validate s | leakage s | stats s | one by one s | report / one by one | "
              "CPU s: report / one by one | report peak MB | largest single command MB | report --out s | "
              "HTML KB |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for label, runs in results.items():
        timed = {name: [v for v in values if v[2] is None] for name, values in runs.items()}
        best = {name: min(s for s, _c, _m in values) for name, values in timed.items()}
        cpu = {name: min(c for _s, c, _m in values) for name, values in timed.items()}
        peak = {name: max((m for _s, _c, m in values if m is not None), default=0.0)
                for name, values in runs.items()}
        apart = best["validate"] + best["leakage"] + best["stats"]
        cpu_apart = cpu["validate"] + cpu["leakage"] + cpu["stats"]
        low = min(m for _s, _c, m in runs["report"] if m is not None)
        largest = max(peak["validate"], peak["leakage"], peak["stats"])
        summary[label] = (best["report"], apart, peak["report"], largest, cpu["report"], cpu_apart, low)
        lines.append(f"| {SIZES[label]:,} | {best['report']:.1f} | {best['validate']:.1f} | {best['leakage']:.1f} | "
                     f"{best['stats']:.1f} | {apart:.1f} | **{best['report'] / apart:.2f}** | "
                     f"{cpu['report']:.1f} / {cpu_apart:.1f} | "
                     f"{peak['report']:.0f} | {max(peak['validate'], peak['leakage'], peak['stats']):.0f} | "
                     f"{best['report --out']:.1f} | {page_kb[label]:.0f} |")
    t5, a5, m5, s5, c5, ca5, low5 = summary["5k"]
    _t1, _a1, m1, s1, _c1, _ca1, low1 = summary["1k"]
    lines += ["",
              (f"- Time, 5k images: the report takes **{t5:.1f} s** against {a5:.1f} s for the three commands one "
               f"after another ({'met' if t5 < a5 else 'missed'}: {t5 / a5:.0%} of the time), and {c5:.1f} CPU "
               f"seconds against {ca5:.1f} ({c5 / ca5:.0%}): the dataset is read and the libraries imported "
               "once instead of three times, and each image file decoded once (the fingerprint); the jobs "
               "run back to back on the one loaded dataset, not fused into one per-image pass."),
              (f"- Memory, 1k → 5k images: the report's peak {m1:.0f} MB → {m5:.0f} MB (**{m5 / m1:.2f}×** for 5× "
               f"the images; the lowest of the {memory_rounds} sampled rounds {low1:.0f} and {low5:.0f} MB), "
               f"while the largest of the three single commands goes {s1:.0f} → {s5:.0f} MB "
               f"({s5 / s1:.2f}×). The report grows by {(m5 - m1) * 1024 / 4000:.1f} KB per image, more than "
               "half of it the dataset as read (image records, "
               "annotation columns, and the heap the reader's scan leaves behind). Of its own it keeps "
               "~200 bytes of hashes per image (the 1 KB thumbnails wait in a temporary file for the pairs "
               "to verify) and the findings packed (~50 bytes each; this set plants ~2.5 overlapping pairs "
               "per image, 12.5k findings at 5k), and it prints the JSON as it goes. Image decodes, decoded "
               "masks and pixel counts are streamed one image at a time.")]
    return "\n".join(lines) + "\n"


_LOG_LINE = re.compile(r"^(\w+) (report --out|report|validate|leakage|stats): ([\d.]+) s, CPU ([\d.]+) s(?:, ([\d.]+) MB)?$")


def _from_log(log: Path, workers: int, no_write: bool) -> int:
    """The section from the lines ``measure`` printed (and the load averages in the log's header)."""
    results: dict = {}
    text = log.read_text()
    for line in text.splitlines():
        if (match := _LOG_LINE.match(line)) is not None:
            label, name, seconds, cpu, peak = match.groups()
            results.setdefault(label, {}).setdefault(name, []).append(
                (float(seconds), float(cpu), None if peak is None else float(peak)))
    load = re.search(r"^load before (.+), after (.+)$", text, re.MULTILINE)
    page_kb = {label: (DATA / "report_pages" / f"{label}.html").stat().st_size / 1024 for label in results}
    section = _section(results, workers, load.groups() if load else ("?", "?"), page_kb)
    if not no_write:
        write_section(HEADING, section)
    print(section)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory-rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing RESULTS.md")
    parser.add_argument("--from-log", type=Path, metavar="FILE",
                        help="re-write the section from the stderr of an earlier run, measuring nothing")
    args = parser.parse_args(argv)
    if args.from_log is not None:
        return _from_log(args.from_log, args.workers, args.no_write)
    roots = build_trees()
    out_dir = DATA / "report_pages"
    out_dir.mkdir(exist_ok=True)
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = measure(roots, args.rounds, args.memory_rounds, args.workers, out_dir)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load before {load_before}, after {load_after}", file=sys.stderr)
    page_kb = {label: (out_dir / f"{label}.html").stat().st_size / 1024 for label in roots}
    section = _section(results, args.workers, (load_before, load_after), page_kb)
    if args.no_write:
        print(section)
    else:
        write_section(HEADING, section)
        print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
