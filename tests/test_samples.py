"""The sample folders in every format are exactly what ``segdata convert`` writes from the COCO sample."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from segdata import converters
from tests.conftest import SAMPLES, run_segdata

_spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
make_samples = sys.modules.setdefault("make_samples", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(make_samples)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", make_samples.FORMATS)
def test_sample_folder_is_what_convert_writes(name, tmp_path):
    copy = ["--copy-images"] if make_samples.FORMATS[name] else []
    result = run_segdata("convert", SAMPLES / "coco", tmp_path / name, "--to", name, "--workers", "1", *copy)
    assert result.returncode == 0, result.stderr
    committed, written = _files(SAMPLES / name), _files(tmp_path / name)
    assert sorted(written) == sorted(committed)
    assert [path for path in written if written[path] != committed[path]] == []
    assert converters.sniff(SAMPLES / name) == name
    assert converters.read(SAMPLES / name).findings == []  # the near miss of every reader finding code
