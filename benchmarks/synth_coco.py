"""Generate a deterministic, COCO-scale synthetic instances JSON (annotations only).

The file mimics ``instances_val2017.json``/``instances_train2017.json`` in shape:

* image sizes drawn from COCO's common ones (640×480, 480×640, 640×427, …);
* a negative-binomial (over-dispersed Poisson) number of instances per image,
  mean ≈ 7.2, so some images have none (≈ 36,000 instances for 5,000 images);
* 80 categories with COCO's sparse ids and a Zipf-like frequency (the first
  one, "person", gets about a quarter of the instances);
* masks as polygons: star-convex blobs and ellipses with 8–60 vertices, sizes
  log-normal (many small objects, as in COCO), ≈ 8 % of them in two parts;
* ≈ 2 % non-crowd masks as compressed RLE (``str`` counts);
* ≈ 1 % crowd annotations (``iscrowd: 1``) as uncompressed RLE (integer counts),
  like the official files;
* ``area`` and ``bbox`` computed with pycocotools from the mask.

Usage::

    python benchmarks/synth_coco.py [--images 5000] [--out benchmarks/data/synth_5k.json] [--seed 0]
    python benchmarks/synth_coco.py --images 20000     # benchmarks/data/synth_20k.json (stats scaling)

Without ``--out`` the file is named after its size: ``synth_<N/1000>k.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson
from pycocotools import mask as mask_utils

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "data" / "synth_5k.json"

# COCO's 80 category ids (sparse, 1..90) and names, in id order.
COCO_CATEGORIES = [
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"),
    (36, "snowboard", "sports"), (37, "sports ball", "sports"), (38, "kite", "sports"),
    (39, "baseball bat", "sports"), (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"),
    (50, "spoon", "kitchen"), (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"),
    (54, "sandwich", "food"), (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"),
    (62, "chair", "furniture"), (63, "couch", "furniture"), (64, "potted plant", "furniture"),
    (65, "bed", "furniture"), (67, "dining table", "furniture"), (70, "toilet", "furniture"),
    (72, "tv", "electronic"), (73, "laptop", "electronic"), (74, "mouse", "electronic"),
    (75, "remote", "electronic"), (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
]

# (width, height) and their weights, roughly as in COCO 2017.
IMAGE_SIZES = [(640, 480), (480, 640), (640, 427), (427, 640), (640, 426), (640, 428),
               (500, 375), (640, 360), (612, 612), (640, 640)]
SIZE_WEIGHTS = np.array([0.30, 0.10, 0.22, 0.08, 0.07, 0.05, 0.05, 0.05, 0.03, 0.05])

MEAN_INSTANCES = 7.3      # per image
DISPERSION = 4.0          # negative-binomial shape: smaller = more spread, more empty images
MULTIPART_RATE = 0.08
RLE_RATE = 0.02
CROWD_RATE = 0.01


def _segment_ids(counts: np.ndarray) -> np.ndarray:
    """For segment lengths ``counts``, the segment index of every element."""
    return np.repeat(np.arange(counts.size), counts)


def _rings(rng: np.random.Generator, cx, cy, size, aspect, angle, n_vertices, wobble) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of star-convex rings, all rings at once.

    Returns the ``(V, 2)`` float vertices and the ``(R + 1,)`` offsets of each ring.
    """
    n_vertices = n_vertices.astype(np.int64)
    offsets = np.r_[0, np.cumsum(n_vertices)]
    ring = _segment_ids(n_vertices)
    k = np.arange(offsets[-1]) - offsets[ring]
    n = n_vertices[ring]
    # monotone angles: even spacing plus jitter < one step, so the ring stays simple
    phase = rng.uniform(0, 2 * np.pi, n_vertices.size)
    theta = 2 * np.pi * (k + 0.8 * (rng.random(k.size) - 0.5)) / n + phase[ring]
    # radius: a few random harmonics around 1 (wobble 0 = a plain ellipse)
    harmonics = rng.integers(2, 7, size=(n_vertices.size, 3))
    amplitude = rng.random((n_vertices.size, 3)) * wobble[:, None] / np.array([1.0, 1.6, 2.4])
    offset = rng.uniform(0, 2 * np.pi, (n_vertices.size, 3))
    rho = 1 + (amplitude[ring] * np.cos(harmonics[ring] * theta[:, None] + offset[ring])).sum(axis=1)
    rho = np.maximum(rho, 0.25)
    rx = size / np.sqrt(np.pi) * np.sqrt(aspect)
    ry = size / np.sqrt(np.pi) / np.sqrt(aspect)
    ex = rx[ring] * rho * np.cos(theta)
    ey = ry[ring] * rho * np.sin(theta)
    ca, sa = np.cos(angle)[ring], np.sin(angle)[ring]
    xy = np.stack([cx[ring] + ca * ex - sa * ey, cy[ring] + sa * ex + ca * ey], axis=1)
    return xy, offsets


def generate(n_images: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    # --- images ---------------------------------------------------------------------
    image_ids = np.sort(rng.choice(600_000, size=n_images, replace=False) + 1)
    size_index = rng.choice(len(IMAGE_SIZES), size=n_images, p=SIZE_WEIGHTS / SIZE_WEIGHTS.sum())
    widths = np.array([IMAGE_SIZES[i][0] for i in size_index])
    heights = np.array([IMAGE_SIZES[i][1] for i in size_index])
    days = rng.integers(0, 365 * 3, n_images)
    seconds = rng.integers(0, 86400, n_images)
    images = []
    for image_id, w, h, d, s in zip(image_ids.tolist(), widths.tolist(), heights.tolist(),
                                    days.tolist(), seconds.tolist()):
        name = f"{image_id:012d}.jpg"
        y, m, dd = 2013 + d // 365, 1 + (d % 365) // 31 % 12, 1 + d % 28
        images.append({
            "license": 1 + image_id % 8, "file_name": name,
            "coco_url": f"http://images.cocodataset.org/val2017/{name}",
            "height": h, "width": w,
            "date_captured": f"{y}-{m:02d}-{dd:02d} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}",
            "flickr_url": f"http://farm{1 + image_id % 9}.staticflickr.com/{image_id % 10000}/{image_id}_z.jpg",
            "id": image_id,
        })

    # --- instances ------------------------------------------------------------------
    p = DISPERSION / (DISPERSION + MEAN_INSTANCES)
    per_image = np.minimum(rng.negative_binomial(DISPERSION, p, n_images), 60)
    n_ann = int(per_image.sum())
    owner = _segment_ids(per_image)                  # image index of every annotation
    W, H = widths[owner].astype(float), heights[owner].astype(float)

    ranks = np.arange(1, len(COCO_CATEGORIES) + 1)
    zipf = 1.0 / ranks ** 1.1
    order = np.r_[0, 1 + rng.permutation(len(COCO_CATEGORIES) - 1)]   # "person" stays the most frequent
    category_ids = np.array([c[0] for c in COCO_CATEGORIES])[order]
    categories_of = category_ids[rng.choice(len(ranks), size=n_ann, p=zipf / zipf.sum())]

    kind = rng.random(n_ann)
    crowd = kind < CROWD_RATE
    as_rle = (kind >= CROWD_RATE) & (kind < CROWD_RATE + RLE_RATE)

    # size = sqrt(area) in pixels: log-normal, many small objects; crowds are big
    size = np.exp(rng.normal(np.log(42), 0.95, n_ann))
    size[crowd] *= 3
    size = np.clip(size, 4, 0.85 * np.minimum(W, H))
    aspect = np.exp(rng.normal(0, 0.45, n_ann))
    angle = rng.uniform(0, np.pi, n_ann)
    wobble = np.where(rng.random(n_ann) < 0.3, 0.0, rng.uniform(0.05, 0.45, n_ann))  # 30 % plain ellipses
    cx = rng.uniform(0.02, 0.98, n_ann) * W
    cy = rng.uniform(0.02, 0.98, n_ann) * H
    n_vertices = np.clip(np.round(8 + 52 * (size / 350) ** 0.7 + rng.normal(0, 4, n_ann)), 8, 60)

    # second parts: a smaller blob beside the first
    multi = np.flatnonzero(rng.random(n_ann) < MULTIPART_RATE)
    part_scale = rng.uniform(0.3, 0.7, multi.size)
    direction = rng.uniform(0, 2 * np.pi, multi.size)
    distance = size[multi] * rng.uniform(0.6, 1.2, multi.size)
    ring_owner = np.r_[np.arange(n_ann), multi]
    xy, offsets = _rings(
        rng,
        np.r_[cx, cx[multi] + distance * np.cos(direction)],
        np.r_[cy, cy[multi] + distance * np.sin(direction)],
        np.r_[size, size[multi] * part_scale],
        np.r_[aspect, aspect[multi]],
        np.r_[angle, rng.uniform(0, np.pi, multi.size)],
        np.r_[n_vertices, np.clip(np.round(n_vertices[multi] * part_scale) + 4, 8, 60)],
        np.r_[wobble, wobble[multi]],
    )
    vertex_ring = _segment_ids(np.diff(offsets))
    vertex_ann = ring_owner[vertex_ring]
    xy[:, 0] = np.clip(xy[:, 0], 0, W[vertex_ann])
    xy[:, 1] = np.clip(xy[:, 1], 0, H[vertex_ann])
    flat = np.round(xy, 2).ravel().tolist()

    rings_of: list[list[list[float]]] = [[] for _ in range(n_ann)]
    for r, a in enumerate(ring_owner.tolist()):
        rings_of[a].append(flat[2 * offsets[r]: 2 * offsets[r + 1]])

    # --- encode, measure -------------------------------------------------------------
    annotations = []
    next_id = 900_000
    hs, ws = heights[owner].tolist(), widths[owner].tolist()
    image_of = image_ids[owner].tolist()
    cats = categories_of.tolist()
    crowd_l, rle_l = crowd.tolist(), as_rle.tolist()
    for a in range(n_ann):
        h, w = hs[a], ws[a]
        polygons = rings_of[a]
        parts = mask_utils.frPyObjects(polygons, h, w)
        rle = mask_utils.merge(parts) if len(parts) > 1 else parts[0]
        area = int(mask_utils.area(rle))
        if area == 0:  # a sliver that covers no pixel centre: make it a small box
            x, y = min(max(polygons[0][0], 1.0), w - 3.0), min(max(polygons[0][1], 1.0), h - 3.0)
            polygons = [[x, y, x + 1, y, x + 2, y, x + 2, y + 1, x + 2, y + 2, x + 1, y + 2, x, y + 2, x, y + 1]]
            rle = mask_utils.frPyObjects(polygons, h, w)[0]
            area = int(mask_utils.area(rle))
        bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
        if crowd_l[a]:
            column_major = mask_utils.decode(rle).ravel(order="F")
            change = np.flatnonzero(np.diff(column_major)) + 1
            bounds = np.r_[0, change, column_major.size]
            runs = np.diff(bounds)
            if column_major[0]:
                runs = np.r_[0, runs]
            segmentation = {"counts": runs.tolist(), "size": [h, w]}
        elif rle_l[a]:
            segmentation = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
        else:
            segmentation = polygons
        next_id += 1 + (a * 7919) % 13      # sparse, increasing ids like COCO's
        annotations.append({
            "segmentation": segmentation, "area": float(area), "iscrowd": int(crowd_l[a]),
            "image_id": image_of[a], "bbox": bbox, "category_id": cats[a], "id": next_id,
        })

    return {
        "info": {"description": "segdata synthetic COCO-like instances", "version": "1.0", "year": 2024,
                 "contributor": "segdata benchmarks", "date_created": "2024/01/01", "url": "",
                 "seed": seed},
        "licenses": [{"url": f"http://creativecommons.org/licenses/{i}", "id": i, "name": f"License {i}"}
                     for i in range(1, 9)],
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": s, "id": i, "name": n} for i, n, s in COCO_CATEGORIES],
    }


def default_out(n_images: int) -> Path:
    """``data/synth_5k.json`` for 5000 images, ``data/synth_20k.json`` for 20000, ``synth_<N>.json`` otherwise."""
    name = f"synth_{n_images // 1000}k.json" if n_images % 1000 == 0 else f"synth_{n_images}.json"
    return DEFAULT_OUT.with_name(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000, help="number of images (default 5000)")
    parser.add_argument("--out", type=Path, help=f"output JSON (default {DEFAULT_OUT} for 5000 images, "
                                                 "synth_<N/1000>k.json beside it for others)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = default_out(args.images)
    start = time.perf_counter()
    data = generate(args.images, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(data))
    os.replace(tmp, args.out)  # atomic: a benchmark reading the file never sees half of it
    anns = data["annotations"]
    crowd = sum(a["iscrowd"] for a in anns)
    rle = sum(1 for a in anns if isinstance(a["segmentation"], dict) and not a["iscrowd"])
    multi = sum(1 for a in anns if isinstance(a["segmentation"], list) and len(a["segmentation"]) > 1)
    with_anns = len({a["image_id"] for a in anns})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s: "
          f"{len(data['images'])} images ({len(data['images']) - with_anns} without instances), "
          f"{len(anns)} instances ({multi} two-part polygons, {rle} compressed RLE, {crowd} crowd RLE), "
          f"{len(data['categories'])} categories")
    return 0


if __name__ == "__main__":
    sys.exit(main())
