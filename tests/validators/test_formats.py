"""Format readers' own findings reach ``validate`` under registered codes, never dropped."""

from __future__ import annotations

import json
import shutil

from segdata import converters
from segdata.validators import CODES, validate
from segdata.validators.formats import CODES as FORMAT_CODES
from tests.conftest import REPO

PANOPTIC = "openvinotoolkit+datumaro/tests/assets/coco_dataset/coco_panoptic"


def test_panoptic_png_json_size_mismatch_is_found(conformance_dir):
    findings = validate(converters.read(conformance_dir / PANOPTIC), workers=1)
    found = [f for f in findings if f.code == "panoptic-size-mismatch"]
    assert [(f.image_id, f.severity) for f in found] == [(5, "error")]
    assert "is 5×5 (width×height) but image 5 is 10×5" in found[0].message


def test_label_value_without_a_class_is_found(samples_dir, tmp_path):
    folder = shutil.copytree(samples_dir / "semantic-png", tmp_path / "maps")
    table = json.loads((folder / "classes.json").read_text())
    table["classes"] = [c for c in table["classes"] if c["name"] != "kite"]
    (folder / "classes.json").write_text(json.dumps(table))
    findings = [f for f in validate(converters.read(folder), workers=1) if f.code == "label-value-unknown"]
    assert findings and all(f.severity == "error" and "have no class in the class table" in f.message
                            for f in findings)
    assert not [f for f in validate(converters.read(samples_dir / "semantic-png"), workers=1)
                if f.code == "label-value-unknown"]  # the near miss: every value has its class


def test_every_code_a_reader_flags_is_registered(conformance_dir, samples_dir):
    assert set(FORMAT_CODES) <= set(CODES)
    for path in (conformance_dir / PANOPTIC, samples_dir / "voc", samples_dir / "yolo"):
        assert {f.code for f in converters.read(path).findings} <= set(CODES)


#: Codes no reader test triggers yet: listed so that the gap is visible and shrinks.
UNTESTED: set[str] = set()


def test_each_format_code_is_triggered_by_a_reader_test():
    tests = "".join(path.read_text() for path in (REPO / "tests" / "converters").glob("test_*.py"))
    assert {code for code in FORMAT_CODES if code not in tests} == UNTESTED
