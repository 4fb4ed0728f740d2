"""Image files for the synthetic COCO sets, for the benchmarks whose jobs read pixels.

``synth_coco.py`` writes annotations only.  This module gives its images
files: one smooth random picture per image record, of the declared
width × height (a 9×12 colour grid upsampled, distinct per image id, ~35 KB
as JPEG), in the layout the COCO reader finds:
``ROOT/annotations/instances_<split>.json`` and ``ROOT/images/<split>/<file_name>``,
every tenth image in ``val``, the rest in ``train``.

Run as a script, it makes the scale benchmark's trees from ``synth_20k.json``
(``synth_5k.json`` draws other image ids, so its images are not among them):
``data/scale_20k/`` (20,000 JPEGs, ~0.7 GB, about two minutes on one core)
and ``data/scale_5k/`` (the first 5,000 of those images, the same files
through an ``images`` symlink).  One ``val`` image in 25 is a planted copy
of the nearest earlier ``train`` image of the same size, so that ``leakage``
has pairs to confirm: the same file, re-encoded brighter, mirrored, or
cropped by 6 % a side (a quarter each).  ``bench_report.py`` builds its
trees with the same functions, without planted copies.

Usage::

    python benchmarks/synth_coco.py --images 20000 && python benchmarks/synth_images.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SCALE_SOURCE = DATA / "synth_20k.json"
SCALE_TREES = {"20k": 20_000, "5k": 5_000}   # largest first: the others link to its images
COPY_KINDS = ("same file", "re-encoded brighter", "mirrored", "cropped")
QUALITY = 90


def picture(seed: int, width: int, height: int) -> np.ndarray:
    """A smooth random picture: a 9×12 colour grid upsampled (distinct per seed, a few tens of KB as JPEG)."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def every_tenth_in_val(images: list[dict]) -> dict[int, str]:
    """The split of each image id: every tenth image (by position) in ``val``, the others in ``train``."""
    return {image["id"]: ("val" if index % 10 == 9 else "train") for index, image in enumerate(images)}


def is_built(root: Path) -> bool:
    """Whether ``root`` is a finished tree: its annotations are written last."""
    return (root / "annotations" / "instances_val.json").is_file()


def write_annotations(document: dict, images: list[dict], split_of: dict[int, str], root: Path) -> None:
    """``annotations/instances_<split>.json``: ``images``, their annotations, the rest of ``document``."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        keep = {image["id"] for image in images if split_of[image["id"]] == split}
        part = {**document, "images": [i for i in images if i["id"] in keep],
                "annotations": [a for a in document["annotations"] if a["image_id"] in keep]}
        (root / "annotations" / f"instances_{split}.json").write_bytes(orjson.dumps(part))


def plant_copies(images: list[dict], split_of: dict[int, str], share: float = 0.04,
                 seed: int = 10) -> dict[int, tuple[int, str]]:
    """For ``share`` of the ``val`` images, the earlier ``train`` image of the same size it copies, and how.

    The source comes before its copy, so the first N images of a tree hold both members of their pairs.
    """
    rng = np.random.default_rng(seed)
    last_train: dict[tuple[int, int], int] = {}
    copies = {}
    for image in images:
        size = (image["width"], image["height"])
        if split_of[image["id"]] == "train":
            last_train[size] = image["id"]
        elif rng.random() < share and size in last_train:
            copies[image["id"]] = (last_train[size], COPY_KINDS[int(rng.integers(len(COPY_KINDS)))])
    return copies


def _copy_pixels(source_id: int, width: int, height: int, kind: str) -> tuple[np.ndarray, int]:
    """The pixels of a planted copy of ``source_id``'s picture and the JPEG quality to write them at."""
    pixels = picture(source_id, width, height)
    if kind == "re-encoded brighter":
        return np.clip(pixels.astype(np.int16) + 12, 0, 255).astype(np.uint8), 75
    if kind == "mirrored":
        return np.ascontiguousarray(pixels[:, ::-1]), QUALITY
    dx, dy = round(0.06 * width), round(0.06 * height)
    cropped = pixels[dy:height - dy, dx:width - dx]
    return cv2.resize(cropped, (width, height), interpolation=cv2.INTER_AREA), QUALITY


def write_images(images: list[dict], split_of: dict[int, str], root: Path,
                 copies: dict[int, tuple[int, str]] | None = None) -> None:
    """One JPEG per image record under ``root/images/<split>/``, with a progress line on stderr."""
    copies = copies or {}
    path_of: dict[int, Path] = {}
    start = time.perf_counter()
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
    for done, image in enumerate(images, 1):
        path = path_of[image["id"]] = root / "images" / split_of[image["id"]] / image["file_name"]
        source, kind = copies.get(image["id"], (image["id"], ""))
        if kind == "same file":
            shutil.copyfile(path_of[source], path)
        else:
            pixels, quality = (_copy_pixels(source, image["width"], image["height"], kind) if kind
                               else (picture(source, image["width"], image["height"]), QUALITY))
            cv2.imwrite(str(path), pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if done % 500 == 0 or done == len(images):
            print(f"\rJPEG files: {done:,} / {len(images):,} ({time.perf_counter() - start:.0f} s)",
                  end="\n" if done == len(images) else "", file=sys.stderr, flush=True)


def build_scale_trees(source: Path = SCALE_SOURCE) -> dict[str, Path]:
    """``scale_20k`` with its JPEGs and planted copies, ``scale_5k`` on its first 5,000 images; made once."""
    roots = {label: DATA / f"scale_{label}" for label in SCALE_TREES}
    if all(is_built(root) for root in roots.values()):
        return roots
    if not source.is_file():
        sys.exit(f"{source} is missing; make it with: python benchmarks/synth_coco.py --images 20000")
    document = orjson.loads(source.read_bytes())
    split_of = every_tenth_in_val(document["images"])
    largest = max(SCALE_TREES, key=SCALE_TREES.get)
    for label, count in SCALE_TREES.items():
        root, images = roots[label], document["images"][:count]
        if is_built(root):
            continue
        if label == largest:
            copies = plant_copies(images, split_of)
            write_images(images, split_of, root, copies)
            print(f"{root}: {len(copies)} planted copies in val", file=sys.stderr)
        else:
            root.mkdir(parents=True, exist_ok=True)
            link = root / "images"
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(roots[largest] / "images", root))
        write_annotations(document, images, split_of, root)
    return roots


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)  # for --help
    for label, root in build_scale_trees().items():
        print(f"{label}: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
