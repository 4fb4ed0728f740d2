"""Resolve leaks between splits by moving or dropping images, never silently.

Images linked by error-level leak pairs (exact copies, near-duplicates, shared
groups) form connected components; each component must end up in one split.
The policy says how:

``move-to-train``
    every member moves to the component's first split (``train`` when it has
    a member there): one copy per duplicate set stays useful for training,
    and evaluation loses only what it shared with training.
``drop-from-eval``
    members outside the component's first split are dropped, with their annotations.

Warning-level pairs (``same-name``, ``same-masks``) are reported, not acted
on.  A moved image whose id is taken in its new split gets the next free
id, and so do its annotations; every move, drop and new id is listed.

Examples
--------
>>> from segdata.model import Dataset, ImageRecord
>>> images = [ImageRecord(1, "cam1_a.png", 8, 8, "train"), ImageRecord(1, "cam1_b.png", 8, 8, "val")]
>>> dataset = Dataset({}, images, [])
>>> fixed, changes = resolve_leaks(dataset, find_leaks(dataset, group_regex="cam1", workers=1))
>>> [(i.split, i.id, i.file_name) for i in fixed.images], [c.kind for c in changes]
([('train', 1, 'cam1_a.png'), ('train', 2, 'cam1_b.png')], ['moved'])
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from segdata.errors import UsageError
from segdata.model import Dataset
from segdata.validators.leakage import LEAK_CODES, LeakageResult, find_leaks  # noqa: F401  (doctest)

#: Policies of :func:`resolve_leaks`.
RESOLVE_POLICIES = ("move-to-train", "drop-from-eval")


@dataclass(frozen=True, slots=True)
class LeakChange:
    """One image moved or dropped by :func:`resolve_leaks`."""

    kind: str
    split: str
    image_id: int
    file_name: str
    to_split: str | None = None
    new_image_id: int | None = None
    annotations: int = 0

    def to_dict(self) -> dict:
        """The JSON form."""
        return asdict(self)


def _components(result: LeakageResult, keys: dict[tuple[str, str], int]) -> list[set[int]]:
    parent = list(range(len(keys)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    acted = {code[len("leak-"):] for code, severity in LEAK_CODES.items()
             if code.startswith("leak-") and severity == "error"}
    for row in result.pairs.itertuples():
        if row.split_a != row.split_b and row.kind in acted:
            parent[find(keys[(row.split_a, row.image_a)])] = find(keys[(row.split_b, row.image_b)])
    members: dict[int, set[int]] = {}
    for i in range(len(keys)):
        members.setdefault(find(i), set()).add(i)
    return [m for m in members.values() if len(m) > 1]


def resolve_leaks(dataset: Dataset, result: LeakageResult,
                  policy: str = "move-to-train") -> tuple[Dataset, list[LeakChange]]:
    """A new dataset in which no error-level leak pair of ``result`` spans two splits.

    Parameters
    ----------
    dataset : Dataset
        The dataset ``result`` was computed on; it is not modified.
    result : LeakageResult
        From :func:`segdata.validators.leakage.find_leaks`.
    policy : {"move-to-train", "drop-from-eval"}

    Returns
    -------
    (Dataset, list of LeakChange)
        The resolved copy and every image moved or dropped, in image order.

    Raises
    ------
    UsageError
        An unknown policy.
    """
    if policy not in RESOLVE_POLICIES:
        raise UsageError(f"policy must be one of {', '.join(RESOLVE_POLICIES)}, found {policy!r}")
    images = dataset.images
    keys = {(image.split, image.file_name): n for n, image in enumerate(images)}
    rank = {split: r for r, split in enumerate(sorted(dataset.splits, key=lambda s: (s != "train",
                                                                                   dataset.splits.index(s))))}
    target: dict[int, str | None] = {}
    for component in _components(result, keys):
        first = min((images[n].split for n in component), key=rank.get)
        target.update({n: first for n in component if images[n].split != first})
    if policy == "drop-from-eval":
        target = {n: None for n in target}
    return move_images(dataset, target)


def move_images(dataset: Dataset, target: dict[int, str | None]) -> tuple[Dataset, list[LeakChange]]:
    """A copy of ``dataset`` with image ``n`` (index in ``dataset.images``) moved to ``target[n]``.

    ``None`` drops the image and its annotations.  An image or annotation
    whose id is taken in its new split gets the next free id there.

    Returns
    -------
    (Dataset, list of LeakChange)
        The new dataset and each image moved or dropped, in image order.
    """
    images = dataset.images
    splits = list(dict.fromkeys([*dataset.splits, *(t for t in target.values() if t is not None)]))
    grouped = dataset.annotations_by_image()
    used_images = {split: {i.id for i in images if i.split == split} for split in splits}
    used_anns = {split: {a.id for a in dataset.annotations if a.split == split} for split in splits}
    new_images, new_annotations, changes = [], [], []
    moved_anns: dict[tuple[str, int], list] = {}
    for n, image in enumerate(images):
        anns = grouped.get((image.split, image.id), [])
        if n not in target or target[n] == image.split:
            new_images.append(copy.copy(image))
            continue
        to = target[n]
        if to is None:
            changes.append(LeakChange("dropped", image.split, image.id, image.file_name,
                                      annotations=len(anns)))
            continue
        new_id = image.id if image.id not in used_images[to] else max(used_images[to]) + 1
        used_images[to].add(new_id)
        moved = copy.copy(image)
        moved.split, moved.id = to, new_id
        new_images.append(moved)
        moved_anns[(image.split, image.id)] = []
        for ann in anns:
            ann_id = ann.id if ann.id not in used_anns[to] else max(used_anns[to]) + 1
            used_anns[to].add(ann_id)
            moved_anns[(image.split, image.id)].append((ann, to, new_id, ann_id))
        changes.append(LeakChange("moved", image.split, image.id, image.file_name, to, new_id, len(anns)))
    dropped = {(c.split, c.image_id) for c in changes if c.kind == "dropped"}
    for ann in dataset.annotations:
        if (ann.split, ann.image_id) not in dropped and (ann.split, ann.image_id) not in moved_anns:
            new_annotations.append(copy.copy(ann))
    for entries in moved_anns.values():
        for ann, to, image_id, ann_id in entries:
            moved_ann = copy.copy(ann)
            moved_ann.split, moved_ann.image_id, moved_ann.id = to, image_id, ann_id
            new_annotations.append(moved_ann)
    meta = {split: dict(dataset.meta.get(split, {})) for split in splits if split in dataset.meta}
    return Dataset(dataset.categories, new_images, new_annotations, [], meta, dataset.source_format), changes
