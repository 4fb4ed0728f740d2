"""Two installs of segdata side by side: one job on each backend, the installs taken in turn, round by round.

For a change whose effect is smaller than this host's drift between runs (on
2026-11-23 one command's runs spread by ±20 % within minutes): every round
runs each backend with each install, one after the other, so both installs
meet the same host.  Prints, per install, the median seconds on each backend
(and each run), and with two backends the first's speed-up over the second,
as medians and round by round.  Writes nothing: the numbers go into
RESULTS.md by hand, beside the change they measure.

Usage (each interpreter from a virtual environment with one install, run from
outside the repository so that neither imports the working tree)::

    python benchmarks/paired_installs.py OLD/bin/python NEW/bin/python --job stats --size 20k
        [--backends 'Dask LocalCluster of 2,Dask LocalCluster of 1'] [--rounds 4] [--data PATH]

``--data`` runs the job on another dataset (any format segdata sniffs) instead of the scale set.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bench_scale import BACKENDS, DATA, IMAGE_JOBS, JOBS, TREES, job_run  # benchmarks/ is on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pythons", nargs=2, help="the interpreters of the two installs, old then new")
    parser.add_argument("--job", required=True, choices=[*JOBS, *IMAGE_JOBS])
    parser.add_argument("--size", default="20k", help="5k, 20k or 118k (image jobs: 5k or 20k)")
    parser.add_argument("--backends", default="Dask LocalCluster of 2,Dask LocalCluster of 1")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--data", type=Path, help="a dataset to run the job on instead of --size's")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if unknown := sorted(set(backends) - set(BACKENDS)):
        sys.exit(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    data = args.data or (TREES.get(args.size) if args.job in IMAGE_JOBS else DATA / f"synth_{args.size}.json")
    if data is None or not data.exists():
        sys.exit(f"no data for {args.job} at {args.size}: see bench_scale.py for how to make it")
    runs: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for backend in backends:
            for python in args.pythons:
                seconds = job_run(args.job, data, BACKENDS[backend], python=python)["seconds"]
                runs.setdefault((python, backend), []).append(seconds)
                print(round_, backend, python, f"{seconds:.2f}", file=sys.stderr)
    header = "| install | " + " | ".join(f"{b} s (each run)" for b in backends) + " |"
    if len(backends) == 2:
        header += f" {backends[0]} faster than {backends[1]} | per round |"
    print(header)
    print("|---|" + "---:|" * len(backends) + ("---:|---|" if len(backends) == 2 else ""))
    for python in args.pythons:
        cells = [f"{statistics.median(runs[python, b]):.1f} "
                 f"({', '.join(f'{s:.1f}' for s in runs[python, b])})" for b in backends]
        if len(backends) == 2:
            fast, slow = runs[python, backends[0]], runs[python, backends[1]]
            cells += [f"{statistics.median(slow) / statistics.median(fast):.2f}×",
                      ", ".join(f"{b / a:.2f}" for a, b in zip(fast, slow))]
        print(f"| {python} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
