"""The sample datasets and the third-party conformance corpus: each known defect found by its code."""

from __future__ import annotations

import re

import pytest

from segdata.converters import coco
from segdata.validators import CODES, summarize_findings, validate

NOT_MINE = ("leak-",)  # leakage rows of the dirty README belong to the leakage checks


def _planted(readme: str) -> set[tuple[str, str, int, frozenset[int]]]:
    """``(code, split, image id, annotation ids)`` of each planted row of coco-dirty/README.md."""
    rows = set()
    for line in readme.splitlines():
        match = re.match(r"\|\s*\d+\s*\|\s*`([a-z-]+)`\s*\|\s*(\w+)\s*\|[^|]*\|\s*(\d+)\s*\|\s*([\d, ]+)\s*\|", line)
        if match and match.group(1) in CODES:
            ids = frozenset(int(v) for v in match.group(4).split(","))
            rows.add((match.group(1), match.group(2), int(match.group(3)), ids))
    return rows


def _located(finding) -> tuple[str, str, int, frozenset[int]]:
    ids = {finding.annotation_id, finding.details.get("other_annotation_id")} - {None}
    return finding.code, finding.split, finding.image_id, frozenset(ids)


def test_dirty_sample_findings_match_its_readme(samples_dir):
    readme = (samples_dir / "coco-dirty" / "README.md").read_text()
    planted = _planted(readme)
    assert {row[0] for row in planted} == {"polygon-self-intersection", "bbox-mismatch", "area-mismatch",
                                           "instance-duplicate", "instance-overlap"}
    findings = validate(coco.read(samples_dir / "coco-dirty"), workers=2)
    natural = int(re.search(r"\*\*(\d+)\*\* pairs of non-crowd instances", readme).group(1))
    overlaps = [f for f in findings if f.code == "instance-overlap"]
    assert len(overlaps) == natural + 1  # the natural pairs plus the planted one
    strong = {_located(f) for f in overlaps if f.details["iou"] >= 0.3}
    others = {_located(f) for f in findings if f.code != "instance-overlap"}
    assert others | strong == planted
    assert not [f for f in findings if f.code.startswith(NOT_MINE)]


def test_clean_sample_has_no_error_findings(samples_dir):
    findings = validate(coco.read(samples_dir / "coco"), workers=2)
    assert summarize_findings(findings)["by_severity"]["error"] == 0
    assert {f.code for f in findings} <= {"instance-overlap"}


def _read(conformance_dir, relative):
    return coco.read(conformance_dir / relative)


def test_pycococreator_crowd_area_is_wrong(conformance_dir):
    dataset = _read(conformance_dir, "waspinator+pycococreator/example_data/annotations/coco_example.json")
    findings = validate(dataset, only=["area-mismatch"], workers=1)
    assert [(f.annotation_id, f.details["stored"], f.details["pixel"]) for f in findings] == [(3, 31463, 34073)]


def test_cocoapi_sample_crowd_area_and_overlaps(conformance_dir):
    dataset = _read(conformance_dir, "cocodataset+cocoapi/PythonAPI/extra/samples/instances_val2017_1img-sample.json")
    findings = validate(dataset, skip=["file-missing", "category-unused"], workers=1)
    area, = [f for f in findings if f.code == "area-mismatch"]
    crowd, = [a for a in dataset.annotations if a.iscrowd]
    assert (area.annotation_id, area.details["stored"], area.details["pixel"]) == (crowd.id, 18419, 12852)
    # INVENTORY counts 9 pairs with PIL's fill, which paints the outline too; by pycocotools'
    # pixel-centre rule (segdata's one rasterizer) 7 pairs share pixels and 2 only touch
    assert sum(f.code == "instance-overlap" for f in findings) == 7
    assert crowd.id not in {f.annotation_id for f in findings if f.code == "instance-overlap"}
    assert {f.code for f in findings} == {"area-mismatch", "instance-overlap"}  # its crowd bbox is fine


@pytest.mark.parametrize("name", ["terrain1_coco", "terrain2_coco", "terrain3_coco", "terrain_all_coco",
                                  "combined_coco", "modified_terrain1_coco", "modified_terrain2_coco"])
def test_sahi_area_is_the_image_area_everywhere(conformance_dir, name):
    dataset = _read(conformance_dir, f"obss+sahi/tests/data/coco_utils/{name}.json")
    flagged = {f.annotation_id for f in validate(dataset, only=["area-mismatch"], workers=1)}
    assert flagged == {a.id for a in dataset.annotations}


@pytest.mark.parametrize("layout", ["coco", "coco_instances"])
def test_datumaro_crowd_bbox_differs_from_its_mask(conformance_dir, layout):
    dataset = _read(conformance_dir,
                    f"openvinotoolkit+datumaro/tests/assets/coco_dataset/{layout}/annotations/instances_val.json")
    finding, = validate(dataset, only=["bbox-mismatch"], workers=1)
    assert (finding.annotation_id, finding.details["stored"], finding.details["pixel"]) == (
        2, [0.0, 0.0, 1.0, 9.0], [0.0, 0.0, 2.0, 10.0])
