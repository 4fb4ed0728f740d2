"""The zoo of mask edge cases every mask and converter function is tried on."""

from __future__ import annotations

import numpy as np
import pytest


def _canvas(h: int = 12, w: int = 14) -> np.ndarray:
    return np.zeros((h, w), bool)


def _one_pixel():
    m = _canvas(); m[5, 6] = True; return m


def _hole():
    m = _canvas(); m[2:10, 3:11] = True; m[4:7, 5:8] = False; return m


def _two_holes_and_island():
    m = _canvas(); m[1:11, 1:13] = True; m[3:9, 3:7] = False; m[5, 5] = True; m[3:5, 9:11] = False; return m


def _border():
    m = _canvas(); m[0, :] = True; m[:, -1] = True; m[-1, 3:5] = True; return m


def _multipart():
    m = _canvas(); m[1:3, 1:3] = True; m[8:11, 9:13] = True; m[6, 2] = True; return m


def _diagonal():
    m = _canvas(); idx = np.arange(8); m[idx + 2, idx + 3] = True; return m


def _checkerboard():
    return (np.indices((12, 14)).sum(0) % 2).astype(bool)


def _full():
    return np.ones((12, 14), bool)


def _one_by_one():
    return np.ones((1, 1), bool)


MASKS = [
    pytest.param(_canvas(), id="empty"),
    pytest.param(_one_pixel(), id="one-pixel"),
    pytest.param(_hole(), id="hole"),
    pytest.param(_two_holes_and_island(), id="holes-and-island"),
    pytest.param(_border(), id="border"),
    pytest.param(_multipart(), id="multi-part"),
    pytest.param(_diagonal(), id="diagonal-touching"),
    pytest.param(_checkerboard(), id="checkerboard"),
    pytest.param(_full(), id="full-image"),
    pytest.param(_one_by_one(), id="one-by-one-image"),
]
