"""segdata/model.py: what a conversion report says of annotations whose image is not in the dataset."""

from __future__ import annotations

import orjson
import pytest

from segdata import model
from segdata.converters import coco
from segdata.model import Annotation, Category, ConversionReport, Dataset, ImageRecord


@pytest.mark.parametrize("run", [model._RUN, 3])  # 3: the rows looked at in several runs
def test_each_annotation_without_its_image_in_its_split_is_reported_skipped_in_order(monkeypatch, run):
    monkeypatch.setattr(model, "_RUN", run)
    images = [ImageRecord(1, "a.png", 4, 4, split="train"), ImageRecord(2, "b.png", 4, 4, split="val")]
    anns = [Annotation(10, 1, 1, None, split="train"), Annotation(11, 2, 1, None, split="train"),
            Annotation(12, 2, 1, None, split="val"),
            Annotation(13, 5, 1, None, split="test", defect="mask-empty")]
    report = ConversionReport("coco")
    report.skip_unattached(Dataset({1: Category(1, "a")}, images, anns))
    assert [(c.kind, c.split, c.image_id, c.annotation_id, c.detail) for c in report.changes] == [
        ("skipped", "train", 2, 11, "image-ref-unknown"), ("skipped", "test", 5, 13, "mask-empty")]


@pytest.mark.parametrize("run", [model._RUN, 1])
def test_a_stored_coco_file_reports_its_dangling_annotation(tmp_path, monkeypatch, run):
    monkeypatch.setattr(model, "_RUN", run)
    path = tmp_path / "instances_train.json"
    path.write_bytes(orjson.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]]},
                        {"id": 2, "image_id": 3, "category_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]]}]}))
    dataset = coco.read(path)
    report = ConversionReport("coco")
    report.skip_unattached(dataset)
    assert [(c.split, c.image_id, c.annotation_id, c.detail) for c in report.changes] == [
        ("train", 3, 2, "image-ref-unknown")]
