"""segdata/io.py: atomic outputs get the permissions any other file of the user would get."""

from __future__ import annotations

import os
import stat

from segdata.io import output_dir, write_bytes_atomic


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_atomic_file_and_folder_follow_the_umask(tmp_path):
    write_bytes_atomic(tmp_path / "report.html", b"<html></html>")
    with output_dir(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("a")
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o666 & ~_umask()
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~_umask()
