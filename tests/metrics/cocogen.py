"""Random COCO ground truth and results that exercise COCOeval's quirks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils


def rle_of(bitmap: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(bitmap.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    return rle


def _blob(rng, height: int, width: int) -> np.ndarray:
    bitmap = np.zeros((height, width), np.uint8)
    h = int(rng.integers(2, height // 1.2))
    w = int(rng.integers(2, width // 1.2))
    r, c = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
    bitmap[r:r + h, c:c + w] = 1
    if rng.random() < 0.3:  # a hole
        bitmap[r + h // 3:r + h // 2, c + w // 3:c + w // 2] = 0
    return bitmap


def _jitter(rng, bitmap: np.ndarray) -> np.ndarray:
    dr, dc = rng.integers(-4, 5, size=2)
    return np.roll(np.roll(bitmap, int(dr), axis=0), int(dc), axis=1)


def make_case(seed: int, *, n_images: int = 12, n_cats: int = 4, id_zero: bool = False,
              overflow: bool = True, bbox: bool = False) -> tuple[dict, list]:
    """GT dict (COCO JSON) and results list; category ``n_cats`` never has GT."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    next_id = 0 if id_zero else 1
    for image_id in range(1, n_images + 1):
        height, width = int(rng.integers(30, 140)), int(rng.integers(30, 160))
        images.append({"id": image_id * 3, "file_name": f"{image_id}.png", "height": height, "width": width})
        n_gt = 0 if image_id % 5 == 0 else int(rng.integers(1, 7))
        for _ in range(n_gt):
            cat = int(rng.integers(1, n_cats))
            bitmap = _blob(rng, height, width)
            crowd = int(rng.random() < 0.15)
            area = int(bitmap.sum())
            if rng.random() < 0.1:
                area += int(rng.integers(-5, 200))  # stored area differs from the mask
            anns.append({"id": next_id, "image_id": image_id * 3, "category_id": cat, "iscrowd": crowd,
                         "segmentation": rle_of(bitmap), "area": area,
                         "bbox": [float(v) for v in mask_utils.toBbox(rle_of(bitmap))]})
            next_id += 1
            for _ in range(int(rng.integers(0, 4))):
                pred = _jitter(rng, bitmap) if rng.random() < 0.8 else _blob(rng, height, width)
                results.append({"image_id": image_id * 3, "category_id": cat if rng.random() < 0.85
                                else int(rng.integers(1, n_cats + 1)),
                                "segmentation": rle_of(pred), "score": round(float(rng.random()), 1)})
        for _ in range(int(rng.integers(0, 4))):  # false positives, some on the GT-less class
            results.append({"image_id": image_id * 3, "category_id": int(rng.integers(1, n_cats + 1)),
                            "segmentation": rle_of(_blob(rng, height, width)),
                            "score": round(float(rng.random()), 2)})
    if overflow:  # more than maxDets[-1] on one (image, category)
        image = images[0]
        target = next((a for a in anns if a["image_id"] == image["id"]), None)
        cat = target["category_id"] if target else 1
        for _ in range(130):
            results.append({"image_id": image["id"], "category_id": cat,
                            "segmentation": rle_of(_blob(rng, image["height"], image["width"])),
                            "score": round(float(rng.random()), 1)})
    if bbox:
        for r in results:
            r["bbox"] = [float(v) for v in mask_utils.toBbox(r["segmentation"])]
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, n_cats + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, results


def write_gt(tmp_path: Path, gt: dict) -> Path:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path
