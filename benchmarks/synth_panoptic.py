"""Write a synthetic COCO panoptic GT and prediction (JSON + RGB-id PNGs) for ``bench_evaluate.py``.

Each 640×480 image has 2–4 stuff bands, 4–14 thing instances (rectangles and
ellipses, 5 % crowd) and a VOID frame and blobs, like COCO panoptic val.  The
prediction is the GT shifted by a few pixels with new segment ids; 8 % of
the segments change category, 5 % vanish into VOID, and 0–3 random false
positives are painted on top.  Everything is seeded, so the files are the
same on every machine.

Usage::

    python benchmarks/synth_panoptic.py [--images 500] [--out benchmarks/data/panoptic_500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
HEIGHT, WIDTH = 480, 640
THINGS = list(range(1, 81))
STUFF = list(range(92, 145))


def _to_png(id_map: np.ndarray, path: Path) -> None:
    rgb = np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def _shape(rng, id_map: np.ndarray, value: int) -> None:
    h, w = int(rng.integers(12, 200)), int(rng.integers(12, 240))
    r, c = int(rng.integers(0, HEIGHT - h)), int(rng.integers(0, WIDTH - w))
    if rng.random() < 0.5:
        id_map[r:r + h, c:c + w] = value
    else:
        rows, cols = np.ogrid[:h, :w]
        inside = ((rows - h / 2) / (h / 2)) ** 2 + ((cols - w / 2) / (w / 2)) ** 2 <= 1
        id_map[r:r + h, c:c + w][inside] = value


def _image(rng, next_id):
    """One GT id map and its segments_info, then the prediction's."""
    gt = np.zeros((HEIGHT, WIDTH), np.int64)
    categories = {}
    cuts = np.sort(rng.choice(np.arange(40, HEIGHT - 40), size=int(rng.integers(1, 4)), replace=False))
    for top, bottom in zip([0, *cuts], [*cuts, HEIGHT]):
        segment = next_id()
        gt[top:bottom] = segment
        categories[segment] = (int(rng.choice(STUFF)), 0)
    for _ in range(int(rng.integers(4, 15))):
        segment = next_id()
        _shape(rng, gt, segment)
        categories[segment] = (int(rng.choice(THINGS)), int(rng.random() < 0.05))
    gt[:3], gt[-3:], gt[:, :3], gt[:, -3:] = 0, 0, 0, 0  # VOID frame
    for _ in range(int(rng.integers(0, 3))):
        _shape(rng, gt, 0)
    labels, areas = np.unique(gt, return_counts=True)
    gt_segments = [{"id": int(s), "category_id": categories[int(s)][0], "iscrowd": categories[int(s)][1],
                    "area": int(a), "bbox": [0, 0, 1, 1]} for s, a in zip(labels, areas) if s != 0]
    dy, dx = rng.integers(-6, 7, size=2)
    shifted = np.roll(np.roll(gt, int(dy), axis=0), int(dx), axis=1)
    pred = np.zeros_like(gt)
    pred_categories = {}
    for segment in gt_segments:
        if rng.random() < 0.05:
            continue  # missed: VOID
        new = next_id()
        pred[shifted == segment["id"]] = new
        category = segment["category_id"]
        if rng.random() < 0.08:
            category = int(rng.choice(THINGS if category in THINGS else STUFF))
        pred_categories[new] = category
    for _ in range(int(rng.integers(0, 4))):
        new = next_id()
        _shape(rng, pred, new)
        pred_categories[new] = int(rng.choice(THINGS))
    labels = np.unique(pred)
    pred_segments = [{"id": int(s), "category_id": pred_categories[int(s)]} for s in labels if s != 0]
    return gt, gt_segments, pred, pred_segments


def generate(out: Path, n_images: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``out/gt.json``, ``out/gt/*.png``, ``out/pred.json``, ``out/pred/*.png``; return the JSONs."""
    rng = np.random.default_rng(seed)
    counter = iter(range(1, 2**24))
    categories = ([{"id": c, "name": f"thing{c}", "isthing": 1, "supercategory": "thing"} for c in THINGS]
                  + [{"id": c, "name": f"stuff{c}", "isthing": 0, "supercategory": "stuff"} for c in STUFF])
    for name in ("gt", "pred"):
        (out / name).mkdir(parents=True, exist_ok=True)
    images, gt_anns, pred_anns = [], [], []
    for image_id in range(1, n_images + 1):
        gt, gt_segments, pred, pred_segments = _image(rng, lambda: next(counter) * 7919 % 2**24 or 1)
        file_name = f"{image_id:012d}.png"
        _to_png(gt, out / "gt" / file_name)
        _to_png(pred, out / "pred" / file_name)
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "height": HEIGHT, "width": WIDTH})
        gt_anns.append({"image_id": image_id, "file_name": file_name, "segments_info": gt_segments})
        pred_anns.append({"image_id": image_id, "file_name": file_name, "segments_info": pred_segments})
    for name, anns in (("gt", gt_anns), ("pred", pred_anns)):
        (out / f"{name}.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                      "categories": categories}))
    return out / "gt.json", out / "pred.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--out", type=Path, default=HERE / "data" / "panoptic_500")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    generate(args.out, args.images, args.seed)
    print(f"wrote {args.images} images to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
