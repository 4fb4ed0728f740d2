"""A dataset's images with their annotations, as a sequence whose slices travel as columns.

:func:`segdata.parallel.map_images` ships a sequence's items to a worker a
slice at a time.  A slice of :class:`ImageItems` over a stored dataset
(:mod:`segdata.stored_images`, :mod:`segdata.stored`) pickles as its
images' columns and one table of their annotations' rows; the worker makes
the records.  A list of 256 COCO items cost the command's process 2.8 ms to
make and pickle (~11 µs an image), the largest part of its work per image
on a 2-worker LocalCluster, where it takes that time from the workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from segdata.model import Annotation, ImageRecord, image_values
from segdata.stored import AnnotationGroup

#: Images made at a time when iterating: a group keeps its annotations once parsed, so the items are not kept.
_CHUNK = 4096


class ImageItems(Sequence[tuple]):
    """Each image with its annotations (``[]`` for none), in image order; with ``attach``, a third value:
    ``attach.get((split, image id))``, or for a sequence, its item at the image's position.

    Slices are views; pickled, a view is its images and their annotations
    as columns (:class:`ImageBatch`).

    Parameters
    ----------
    images : sequence of ImageRecord
    grouped : mapping
        ``(split, image id)`` -> that image's annotations, as
        :meth:`segdata.model.Dataset.annotations_by_image` gives them.
    attach : mapping or sequence, optional
        A value per image to pass along, by ``(split, image id)`` or by
        position (default: items are pairs).
    """

    def __init__(self, images: Sequence[ImageRecord], grouped: Mapping[tuple[str, int], Sequence[Annotation]],
                 attach: Mapping[tuple[str, int], Any] | Sequence[Any] | None = None,
                 span: tuple[int, int] | None = None):
        self._images, self._grouped, self._attach = images, grouped, attach
        self._first, self._stop = span if span is not None else (0, len(images))

    def __len__(self) -> int:
        return self._stop - self._first

    def __getitem__(self, index):
        if isinstance(index, slice):
            first, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("ImageItems slices take every item")
            return ImageItems(self._images, self._grouped, self._attach,
                              (self._first + first, self._first + max(first, stop)))
        if not -len(self) <= index < len(self):
            raise IndexError("image index out of range")
        at = self._first + index % len(self)
        return next(iter(self._batch(at, at + 1)))

    def __iter__(self) -> Iterator[tuple]:
        for first in range(self._first, self._stop, _CHUNK):
            yield from self._batch(first, min(first + _CHUNK, self._stop))

    def __reduce__(self):
        batch = self._batch(self._first, self._stop)
        return ImageBatch, (batch.images, batch.groups, batch.bounds, batch.attached)

    def _batch(self, first: int, stop: int) -> ImageBatch:
        """Images ``first`` to ``stop`` and their annotations, gathered."""
        images = self._images
        images = images.cut(first, stop) if hasattr(images, "cut") else images[first:stop]
        splits, ids = image_values(images, "split"), image_values(images, "id")
        grouped = self._grouped
        if hasattr(grouped, "rows_of"):  # stored annotations: one table for all, cut per image where used
            groups, lengths = grouped.rows_of(splits, ids)
            bounds = np.r_[0, np.cumsum(lengths)]
        else:
            groups, bounds = [grouped.get(key, []) for key in _keys(splits, ids)], None
        attached, attach = None, self._attach
        if isinstance(attach, Mapping):  # as a rule empty: no lookups then
            attached = [attach.get(key) for key in _keys(splits, ids)] if attach else [None] * len(ids)
        elif attach is not None:
            attached = list(attach[first:stop])
        return ImageBatch(images, groups, bounds, attached)


def _keys(splits: np.ndarray, ids: np.ndarray) -> Iterator[tuple[str, int]]:
    return zip(splits.tolist(), ids.tolist())


class ImageBatch(Sequence[tuple]):
    """Some images and their annotations, as :class:`ImageItems` gathered them: what a worker receives."""

    def __init__(self, images: Sequence[ImageRecord], groups: Any, bounds: np.ndarray | None,
                 attached: list[Any] | None):
        self.images, self.groups, self.bounds, self.attached = images, groups, bounds, attached

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return list(self)[index]

    def __iter__(self) -> Iterator[tuple]:
        if self.bounds is None:
            groups = iter(self.groups)
        else:
            rows, bounds = self.groups, self.bounds.tolist()
            groups = (AnnotationGroup(rows.cut(low, high)) if high > low else []
                      for low, high in pairwise(bounds))
        if self.attached is None:
            yield from zip(self.images, groups)
        else:
            yield from zip(self.images, groups, self.attached)
