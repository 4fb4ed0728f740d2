"""Tiny COCO files written into a test's tmp_path, so every check runs on a real file through ``coco.read``."""

from __future__ import annotations

import json
from pathlib import Path

from segdata.converters import coco
from segdata.masks import Mask
from segdata.model import Dataset

SIZE = 20  # every test image is SIZE × SIZE unless a case says otherwise


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """One polygon ring around ``[x0, x1] × [y0, y1]`` (pixel-corner coordinates)."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def ann(ann_id: int, segmentation, *, image_id: int = 1, category_id: int = 1, iscrowd: int = 0,
        area=None, bbox=None) -> dict:
    """An annotation record; ``area`` and ``bbox`` are pycocotools' values unless given."""
    if area is None or bbox is None:
        try:
            mask = (Mask.from_rle(segmentation) if isinstance(segmentation, dict)
                    else Mask.from_polygons(segmentation, SIZE, SIZE))
            area = mask.area if area is None else area
            bbox = list(mask.bbox_xywh) if bbox is None else bbox
        except Exception:  # a deliberately broken record: the reader flags it
            area, bbox = area or 0, bbox or [0, 0, 0, 0]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": segmentation,
            "area": area, "bbox": bbox, "iscrowd": iscrowd}


def document(annotations: list[dict] | None = None, *, images: list[dict] | None = None,
             categories: list[dict] | None = None) -> dict:
    """A COCO document: one SIZE × SIZE image, one category, one square unless told otherwise."""
    return {
        "images": images if images is not None else [{"id": 1, "file_name": "a.png", "width": SIZE,
                                                       "height": SIZE}],
        "annotations": annotations if annotations is not None else [ann(1, square(2, 2, 12, 12))],
        "categories": categories if categories is not None else [{"id": 1, "name": "thing"}],
    }


def read(tmp_path: Path, doc: dict) -> Dataset:
    """Write ``doc`` as ``instances_train.json`` in ``tmp_path`` and read it back."""
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(doc))  # Python's json writes NaN, as some exporters do
    return coco.read(path)
