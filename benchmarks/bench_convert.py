"""Convert benchmark (issue 4): COCO → Pascal VOC on the 5k synthetic set, segdata against Datumaro 1.13.

Both sides start from the same COCO tree (``annotations/instances_default.json``
= the synthetic file, an empty ``images/default/``: Datumaro refuses a tree
without it) and write VOC's ``SegmentationClass`` and ``SegmentationObject``
palette PNGs for every image:

* ``Datumaro``: its Python API, ``Dataset.import_from(root, "coco_instances")``,
  the ``polygons_to_masks`` transform (its one-line ``datum convert`` skips
  polygons and still exits 0), ``export(out, "voc_segmentation")``.  It lives
  in its own venv (its pins conflict with segdata's): made on first use at
  ``benchmarks/.venv-datumaro`` or given with ``--datumaro-python``.
* ``segdata``: ``segdata convert ROOT OUT --to voc`` with default workers
  (all cores), run through the CLI's own ``main`` in a fresh process.

Each side runs in a fresh process; time is the whole job (read, convert,
write); memory is the peak of the summed PSS of the process and its workers,
sampled every 50 ms (``_memory.py``: PSS shares a page between the processes
that map it, so forked workers are not counted twice).  PNG counts are
checked: every image must get both maps.

Writes the ``## Convert (issue 4)`` section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/synth_coco.py && python benchmarks/bench_convert.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from _memory import run_measured  # benchmarks/ is on sys.path when a script runs
from _results import write_section

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "synth_5k.json"
DATUMARO_VENV = HERE / ".venv-datumaro"
HEADING = "## Convert (issue 4)"
COMMAND = "python benchmarks/synth_coco.py && python benchmarks/bench_convert.py"
TARGET_SPEED, TARGET_RSS = 8.0, 0.5

_DATUMARO_CHILD = """
import json, sys, time
import datumaro as dm
root, out = sys.argv[1], sys.argv[2]
start = time.perf_counter()
dataset = dm.Dataset.import_from(root, "coco_instances")
dataset = dataset.transform("polygons_to_masks")
dataset.export(out, "voc_segmentation", save_media=False)
print(json.dumps({"seconds": time.perf_counter() - start, "version": dm.__version__}))
"""

_SEGDATA_CHILD = """
import json, sys, time
import segdata
from segdata.cli import main
start = time.perf_counter()
code = main(["convert", sys.argv[1], sys.argv[2], "--to", "voc"] + sys.argv[3:])
assert code == 0, code
print(json.dumps({"seconds": time.perf_counter() - start, "version": segdata.__version__}))
"""


def datumaro_python(given: Path | None) -> Path:
    """The Python of a venv holding Datumaro 1.13, made on first use."""
    if given:
        return given
    python = DATUMARO_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DATUMARO_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "datumaro==1.13.*"], check=True)
    return python


def coco_tree(data: Path, folder: Path) -> Path:
    """The layout Datumaro's COCO importer insists on, around the synthetic file."""
    (folder / "annotations").mkdir(parents=True)
    (folder / "images" / "default").mkdir(parents=True)
    (folder / "annotations" / "instances_default.json").symlink_to(data.resolve())
    return folder


def run_side(python: Path, child: str, root: Path, extra: list[str]) -> tuple[dict, dict[str, int]]:
    """Run one side in a fresh process; its result and the number of PNGs per VOC folder."""
    out = Path(tempfile.mkdtemp(prefix="bench_convert_")) / "voc"
    try:
        done, peak_mb = run_measured([str(python), "-c", child, str(root), str(out), *extra])
        counts = {name: len(list((out / name).glob("*.png"))) for name in ("SegmentationClass", "SegmentationObject")}
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "pss_mb": peak_mb}, counts


def section(images: int, annotations: int, rows: list[tuple[str, dict, dict]], load: float) -> str:
    (_, base, _), *others = rows
    lines = [HEADING, "",
             f"`{COMMAND}` — {images:,} images, {annotations:,} annotations; measured {date.today().isoformat()}, one run each, fresh process; "
             f"Python {platform.python_version()}, {os.cpu_count()} cores, load average before the run "
             f"{load:.2f}.", "",
             "| side | seconds | speed-up | peak PSS MB, all processes | class maps | object maps |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, result, counts in rows:
        lines.append(f"| {name} | {result['seconds']:.1f} | {base['seconds'] / result['seconds']:.2f}× | "
                     f"{result['pss_mb']:.0f} | "
                     f"{counts['SegmentationClass']:,} | {counts['SegmentationObject']:,} |")
    name, best, _ = others[0]
    speed, memory = base["seconds"] / best["seconds"], best["pss_mb"] / base["pss_mb"]
    lines += ["", f"Targets ({name}): ≥ {TARGET_SPEED:g}× Datumaro's speed → **{speed:.1f}×** "
              f"({'met' if speed >= TARGET_SPEED else 'missed'}); ≤ {TARGET_RSS:g}× its peak memory → "
              f"**{memory:.2f}×** ({'met' if memory <= TARGET_RSS else 'missed'}).",
              "Datumaro writes no maps for images without annotations; segdata writes a background-only "
              "map for them, so that every image of the split has its maps.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datumaro-python", type=Path)
    parser.add_argument("--no-write", action="store_true", help="Print the section, leave RESULTS.md alone.")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data} is missing; make it with: python benchmarks/synth_coco.py")
    meta = json.loads(args.data.read_bytes())
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as scratch:
        root = coco_tree(args.data, Path(scratch) / "coco")
        rows = []
        for name, python, child, extra in (
            ("Datumaro", datumaro_python(args.datumaro_python), _DATUMARO_CHILD, []),
            ("segdata, default workers", Path(sys.executable), _SEGDATA_CHILD, []),
            ("segdata, 1 worker", Path(sys.executable), _SEGDATA_CHILD, ["--workers", "1"]),
        ):
            result, counts = run_side(python, child, root, extra)
            name = f"Datumaro {result['version']}" if name == "Datumaro" else name
            print(f"{name:26}: {json.dumps(result)} {counts}", file=sys.stderr)
            rows.append((name, result, counts))
    text = section(len(meta["images"]), len(meta["annotations"]), rows, load)
    print(text)
    if not args.no_write:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
