"""What the label-map readers' tests check of a read that keeps columns: it equals the masks cut at once."""

from __future__ import annotations

import os
import pickle
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType

from segdata import parallel
from segdata.masks import Mask
from segdata.model import Annotation, Dataset, annotation_values
from segdata.stored import StoredAnnotations

FIELDS = ("split", "id", "image_id", "category_id", "iscrowd", "defect", "usable")


def mask_key(mask: Mask | None) -> tuple | None:
    """A mask's face, size and exact RLE string (``repr`` shows only the size)."""
    return None if mask is None else (mask.face, mask.shape_hw, mask.rle["size"], mask.rle["counts"])


def assert_same(got: Sequence[Annotation], expected: Sequence[Annotation]) -> None:
    assert [repr(a) for a in got] == [repr(a) for a in expected]
    assert [mask_key(a.mask) for a in got] == [mask_key(a.mask) for a in expected]


def assert_equals_eager(ds: Dataset, expected: list[Annotation]) -> None:
    """``ds.annotations`` are stored columns giving ``expected``: whole, by column, per image pickled."""
    assert isinstance(ds.annotations, StoredAnnotations)
    assert_same(list(ds.annotations), expected)
    for name in FIELDS:
        assert annotation_values(ds.annotations, name).tolist() == annotation_values(expected, name).tolist()
    per_image = defaultdict(list)
    for ann in expected:
        per_image[(ann.split, ann.image_id)].append(ann)
    groups = ds.annotations_by_image()
    assert sorted(groups) == sorted(per_image)
    images = Counter((image.split, image.id) for image in ds.images)
    for key, anns in per_image.items():
        group = groups[key]
        assert len(group._rows.files) == images[key]  # a helper is sent its image's map (two: a repeated id)
        assert_same(pickle.loads(pickle.dumps(group)), anns)


def converts_alike(dataset: Dataset, folder: Path) -> int:
    """COCO written by one process and by two (groups pickled to a helper, which reads its files again) is
    byte for byte the same; the number of annotations written."""
    from segdata import converters

    written = []
    for workers in (1, 2):
        report = converters.get("coco").write(dataset, folder / f"w{workers}", workers=workers)
        files = sorted((folder / f"w{workers}").rglob("*.json"))
        written.append(([p.read_bytes() for p in files], report.annotations_written))
    assert written[0] == written[1]
    return written[0][1]


_REAL: dict[tuple[str, str], Callable] = {}  # what a noting stand-in calls; a forked helper inherits it


def _noting_the_process(key: tuple[str, str], pids: str, *args):
    with open(pids, "a") as file:
        file.write(f"{os.getpid()}\n")
    return _REAL[key](*args)


def read_alike_on_two_processes(read: Callable[[], Dataset], module: ModuleType, name: str, monkeypatch,
                                folder: Path) -> tuple[Dataset, list[str]]:
    """``read()`` again on two processes, in batches of 2, equals it on one: images, voids, findings and
    annotations.  ``module.name``, the per-image function sent to the helper, notes each pid it runs in
    (in ``folder``); returns the one-process read and those pids, one per call."""
    one = read()
    key = (module.__name__, name)
    _REAL[key] = getattr(module, name)
    pids = folder / "pids"
    monkeypatch.setattr(parallel, "LOCAL_BATCH", 2)  # more than 4 batches: helpers take some
    monkeypatch.setattr(parallel, "_prepared", 2)
    monkeypatch.setattr(module, name, partial(_noting_the_process, key, str(pids)))
    two = read()
    assert two.findings == one.findings and two.meta == one.meta
    assert [repr(i) for i in two.images] == [repr(i) for i in one.images]
    assert [mask_key(i.void) for i in two.images] == [mask_key(i.void) for i in one.images]
    assert_same(list(two.annotations), list(one.annotations))
    noted = pids.read_text().split()
    assert set(noted) - {str(os.getpid())}, "no helper read an image"
    return one, noted
