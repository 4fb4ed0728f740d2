"""segdata/parallel.py: the same results in the same order, serial or pooled."""

from __future__ import annotations

import pytest

from segdata.parallel import map_images


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_input_order(workers):
    done = []
    results = list(map_images(_square, iter(range(103)), workers=workers, batch_size=5, progress=done.append))
    assert results == [x * x for x in range(103)]
    assert sum(done) == 103


def test_rejects_zero_workers():
    with pytest.raises(ValueError, match="at least 1, found 0"):
        list(map_images(_square, [1], workers=0))
