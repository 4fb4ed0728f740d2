"""Random COCO panoptic GT and predictions (JSON + RGB-id PNGs) that exercise pq_compute's rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

THINGS = (1, 2, 3, 4)  # 4 never appears in the GT: a class predicted only
STUFF = (10, 11)


def _png(id_map: np.ndarray, path: Path) -> None:
    rgb = np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(path)


def _rect(rng, id_map: np.ndarray, value: int) -> None:
    h, w = id_map.shape
    r0, c0 = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
    id_map[r0:r0 + int(rng.integers(2, h // 2 + 2)), c0:c0 + int(rng.integers(2, w // 2 + 2))] = value


def make_panoptic(folder: Path, seed: int, *, n_images: int = 6, things_only: bool = False) -> tuple[Path, Path]:
    """Write ``gt.json``/``gt/`` and ``pred.json``/``pred/`` under ``folder``; return the two JSON paths.

    Crowd GT, VOID in GT and prediction, a wrong stored GT area now and
    then, predictions of a class absent from the GT, category swaps, missed
    segments, false positives and an image without any GT segment.
    """
    rng = np.random.default_rng(seed)
    stuff = () if things_only else STUFF
    ids = iter(rng.choice(np.arange(1, 2**24), size=4000, replace=False).tolist())
    for name in ("gt", "pred"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    images, gt_anns, pred_anns = [], [], []
    for image_id in range(1, n_images + 1):
        shape = (int(rng.integers(12, 30)), int(rng.integers(12, 40)))
        gt = np.zeros(shape, np.int64)
        category = {}
        if image_id != n_images:  # the last image has no GT segment at all
            if stuff:
                cut = int(rng.integers(2, shape[0] - 2))
                for rows in (slice(0, cut), slice(cut, None)):
                    segment = next(ids)
                    gt[rows] = segment
                    category[segment] = (int(rng.choice(stuff)), 0)
            for _ in range(int(rng.integers(1, 6))):
                segment = next(ids)
                _rect(rng, gt, segment)
                category[segment] = (int(rng.choice(THINGS[:3])), int(rng.random() < 0.25))
            for _ in range(int(rng.integers(0, 3))):
                _rect(rng, gt, 0)  # VOID
        labels, areas = np.unique(gt, return_counts=True)
        gt_segments = [{"id": int(s), "category_id": category[int(s)][0], "iscrowd": category[int(s)][1],
                        "area": int(a) + (int(rng.integers(1, 4)) if rng.random() < 0.1 else 0)}
                       for s, a in zip(labels, areas) if s != 0]
        shifted = np.roll(gt, tuple(int(v) for v in rng.integers(0, 3, size=2)), axis=(0, 1))
        pred = np.zeros_like(gt)
        pred_category = {}
        for segment in gt_segments:
            if rng.random() < 0.1:
                continue  # missed: left VOID
            new = next(ids)
            pred[shifted == segment["id"]] = new
            swap = rng.random() < 0.15
            pred_category[new] = int(rng.choice(THINGS if segment["category_id"] in THINGS else stuff)) \
                if swap else segment["category_id"]
        for _ in range(int(rng.integers(0, 3))):
            new = next(ids)
            _rect(rng, pred, new)
            pred_category[new] = int(rng.choice(THINGS))
        if rng.random() < 0.3:
            _rect(rng, pred, 0)  # predicted VOID over whatever is there
        pred_segments = [{"id": int(s), "category_id": pred_category[int(s)]} for s in np.unique(pred) if s != 0]
        file_name = f"{image_id}.png"
        _png(gt, folder / "gt" / file_name)
        _png(pred, folder / "pred" / file_name)
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": shape[0], "width": shape[1]})
        gt_anns.append({"image_id": image_id, "file_name": file_name, "segments_info": gt_segments})
        pred_anns.append({"image_id": image_id, "file_name": file_name, "segments_info": pred_segments})
    categories = [{"id": c, "name": f"c{c}", "isthing": 1} for c in THINGS] + \
        [{"id": c, "name": f"c{c}", "isthing": 0} for c in stuff]
    for name, anns in (("gt", gt_anns), ("pred", pred_anns)):
        (folder / f"{name}.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                         "categories": categories}))
    return folder / "gt.json", folder / "pred.json"
