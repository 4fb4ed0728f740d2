"""Shared fixtures: data folders found from this file, never from the working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_datasets"
CONFORMANCE = REPO.parent / "shared" / "conformance"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    if not CONFORMANCE.is_dir():
        pytest.skip(f"the shared conformance corpus is absent (looked in {CONFORMANCE})")
    return CONFORMANCE


def run_segdata(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "segdata", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def png_stating_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` with its header (IHDR) stating ``width × height``: a huge map's header, in a few bytes."""
    import struct
    import zlib

    data = bytearray(png)
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)

