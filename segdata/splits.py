"""Leakage-aware stratified group splits: new splits in which no group or duplicate set spans two splits.

The unit of assignment is a *unit*: the images linked by a group key
(``ImageRecord.group`` or ``group_regex`` on the file name) or by an
error-level leak pair (exact copy, near-duplicate) of a
:class:`~segdata.validators.leakage.LeakageResult`, joined transitively.
Units are assigned greedily, rarest class first (iterative stratification,
Sechidis et al. 2011, on groups): each unit goes to the split with the
largest unmet part of its own quota for the unit's classes (plus its image
quota), so that every split gets close to its fraction of the images
containing each class, and a rare class reaches the small splits too.

Examples
--------
>>> from segdata.model import Dataset, ImageRecord
>>> images = [ImageRecord(i, f"cam{i % 3}_{i}.png", 8, 8, "all") for i in range(1, 13)]
>>> new, report = split_dataset(Dataset({}, images, []), {"train": 2 / 3, "test": 1 / 3},
...                             group_regex=r"cam\\d")
>>> report["images"], report["groups_split"]
({'train': 8, 'test': 4}, 0)
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from segdata.errors import UsageError
from segdata.model import Dataset, annotation_values
from segdata.validators.leakage import LEAK_CODES, LeakageResult, group_key
from segdata.validators.leakage_fix import move_images


def _units(dataset: Dataset, group_regex: str | None, leaks: LeakageResult | None) -> list[list[int]]:
    """Images joined by a group key or an error-level leak pair (union-find), in image order."""
    images = dataset.images
    parent = list(range(len(images)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    key_of = group_key(group_regex)
    first_of: dict[str, int] = {}
    for n, image in enumerate(images):
        key = key_of(image)
        if key is not None:
            join(n, first_of.setdefault(key, n))
    if leaks is not None:
        acted = {code[len("leak-"):] for code, severity in LEAK_CODES.items()
                 if code.startswith("leak-") and severity == "error"}
        index = {(image.split, image.file_name): n for n, image in enumerate(images)}
        for row in leaks.pairs.itertuples():
            if row.kind in acted:
                join(index[(row.split_a, row.image_a)], index[(row.split_b, row.image_b)])
    units: dict[int, list[int]] = {}
    for n in range(len(images)):
        units.setdefault(find(n), []).append(n)
    return list(units.values())


def split_dataset(dataset: Dataset, fractions: dict[str, float], *, group_regex: str | None = None,
                  leaks: LeakageResult | None = None, seed: int = 0) -> tuple[Dataset, dict]:
    """Reassign every image to one of ``fractions``' splits, keeping each unit whole and classes balanced.

    Parameters
    ----------
    dataset : Dataset
        Any splits; all images are pooled and reassigned.
    fractions : dict of str to float
        Split name -> share of the images, each > 0, summing to 1 (± 0.001).
    group_regex : str, optional
        Group key from the file name, instead of ``ImageRecord.group``.
    leaks : LeakageResult, optional
        Its error-level pairs (exact copies, near-duplicates) keep their images together.
    seed : int
        Breaks ties between units of equal rarity and size.

    Returns
    -------
    (Dataset, dict)
        The re-split copy (ids made unique within each new split) and a report:
        ``images`` per split, ``target`` image counts, ``units``,
        ``groups_split`` (units across two splits: 0 by construction),
        ``class_share`` (per class id, the share of its images in each split),
        ``class_images`` (per class id, its images in all splits),
        ``max_class_deviation`` (largest gap between a class share and
        its split's fraction) and ``js_distance`` (per pair of splits
        ``"a/b"``, the Jensen–Shannon distance, base 2, between their class
        distributions: each split's images-per-class counts, normalized; 0
        means the same class mix, 1 no class in common; ``None`` when either
        split has no class).

    Raises
    ------
    UsageError
        Fractions that are empty, not positive or do not sum to 1.
    """
    total = sum(fractions.values())
    if not fractions or any(f <= 0 for f in fractions.values()) or abs(total - 1) > 1e-3:
        raise UsageError(f"fractions must be positive and sum to 1, found {fractions}")
    names, shares = list(fractions), np.array(list(fractions.values()), float)
    grouped = dataset.annotations_by_image()
    classes = sorted(dataset.categories) or sorted(set(annotation_values(dataset.annotations, "category_id").tolist()))
    column = {c: k for k, c in enumerate(classes)}
    present = np.zeros((len(dataset.images), len(classes)), np.int64)
    for n, image in enumerate(dataset.images):
        for category_id in annotation_values(grouped.get((image.split, image.id), []), "category_id").tolist():
            if category_id in column:
                present[n, column[category_id]] = 1
    units = _units(dataset, group_regex, leaks)
    unit_classes = np.array([present[u].sum(axis=0) for u in units]).reshape(len(units), len(classes))
    unit_sizes = np.array([len(u) for u in units])
    totals = present.sum(axis=0)
    rng = np.random.default_rng(seed)
    none = np.iinfo(np.int64).max  # a unit without classes is placed last, by size
    rarity = [min((int(totals[k]) for k in np.flatnonzero(row)), default=none)
              for row in unit_classes]
    order = sorted(range(len(units)), key=lambda u: (rarity[u], -unit_sizes[u], rng.random()))
    want_images, want_classes = shares * len(dataset.images), np.outer(shares, totals)
    have_images, have_classes = np.zeros(len(names)), np.zeros((len(names), len(classes)))
    target: dict[int, str] = {}
    assign = np.zeros(len(units), np.int64)
    for u in order:
        # unmet share of each split's own quota: a rare class reaches the small splits too
        need_images = (want_images - have_images) / np.maximum(want_images, 1e-9)
        mine = unit_classes[u] > 0
        score = need_images
        if mine.any():
            unmet = (want_classes - have_classes)[:, mine] / np.maximum(want_classes[:, mine], 1e-9)
            score = score + unmet.mean(axis=1)
        best = int(np.argmax(score))
        have_images[best] += unit_sizes[u]
        have_classes[best] += unit_classes[u]
        assign[u] = best
    moves = _refine(assign, unit_classes, unit_sizes, want_classes, want_images, totals, have_classes,
                    have_images)
    for u, unit in enumerate(units):
        target.update({n: names[assign[u]] for n in unit})
    new, _changes = move_images(dataset, target)
    counts = Counter(target.values())
    share = {str(c): {name: round(float(have_classes[s, k] / totals[k]), 4) if totals[k] else 0.0
                      for s, name in enumerate(names)} for k, c in enumerate(classes)}
    deviation = max((abs(share[str(c)][name] - fractions[name]) for c in classes for name in names
                     if totals[column[c]]), default=0.0)
    report = {"images": {name: counts[name] for name in names},
              "target": {name: round(float(w), 1) for name, w in zip(names, want_images)},
              "units": len(units), "groups_split": sum(len({target[n] for n in u}) > 1 for u in units),
              "refining_moves": moves,
              "class_share": share,
              "class_images": {str(c): int(totals[k]) for k, c in enumerate(classes)},
              "max_class_deviation": round(float(deviation), 4),
              "js_distance": _js_distances(names, have_classes)}
    return _reordered(new, names), report


def _js_distances(names: list[str], have_classes: np.ndarray) -> dict[str, float | None]:
    """Jensen–Shannon distance (base 2) between the class distributions of each pair of splits.

    A split's distribution is its count of images per class, normalized;
    the distance is a bounded, symmetric summary of how differently two
    splits mix their classes (the per-class shares show where).
    """
    from scipy.spatial.distance import jensenshannon  # imported on use: keeps `import segdata.splits` light

    result: dict[str, float | None] = {}
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            p, q = have_classes[a], have_classes[b]
            value = float(jensenshannon(p, q, base=2)) if p.sum() > 0 and q.sum() > 0 else None
            result[f"{names[a]}/{names[b]}"] = None if value is None else round(value, 6)
    return result


def _refine(assign: np.ndarray, unit_classes: np.ndarray, unit_sizes: np.ndarray, want_classes: np.ndarray,
            want_images: np.ndarray, totals: np.ndarray, have_classes: np.ndarray, have_images: np.ndarray,
            max_moves: int = 1000) -> int:
    """Move single units between splits while that lowers the classes' chi-square distance to their quotas.

    The greedy pass places each unit once, in order, and cannot undo an
    early choice; on a small dataset that leaves a class a few images off
    in a small split (one image of a 22-image class in a 15 % split is
    4.5 points).  Each step here takes the move of one unit that most
    lowers ``sum((have - want)**2 / total)`` over splits and classes,
    allowed only if every split's image count stays within
    ``max(1, 1 % of the images)`` of its target (or no further off than it
    already is), and never taking the last image of a class out of a split
    (chi-square would empty a small split of a class whose quota there is
    below one image: the greedy pass gave it one on purpose), until no
    move helps or after ``max_moves`` moves.
    ``assign``, ``have_classes`` and ``have_images`` are updated in place.

    Returns
    -------
    int
        The number of moves made.
    """
    n_units = len(assign)
    if n_units < 2 or len(want_images) < 2:
        return 0
    weight = np.where(totals > 0, 1.0 / np.maximum(totals, 1), 0.0)
    counts = unit_classes.astype(float)
    squares = (counts**2) @ weight
    band = max(1.0, 0.01 * float(want_images.sum()))
    rows = np.arange(n_units)
    sizes = unit_sizes.astype(float)
    for moves in range(max_moves):
        cross = (counts * weight) @ (have_classes - want_classes).T  # (units, splits)
        delta = (squares - 2 * cross[rows, assign])[:, None] + squares[:, None] + 2 * cross
        delta[rows, assign] = np.inf
        off = np.abs(have_images - want_images)
        limit = np.maximum(band, off)
        after_remove = np.abs(have_images[assign] - sizes - want_images[assign]) <= limit[assign]
        after_add = np.abs(have_images[None, :] + sizes[:, None] - want_images[None, :]) <= limit[None, :]
        empties = ((have_classes[assign] - counts) <= 0) & (counts > 0)  # the last of a class in its split
        delta[~after_remove | empties.any(axis=1)] = np.inf
        delta[~after_add] = np.inf
        u, b = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if not delta[u, b] < -1e-12:
            return moves
        a = assign[u]
        have_classes[a] -= unit_classes[u]
        have_classes[b] += unit_classes[u]
        have_images[a] -= sizes[u]
        have_images[b] += sizes[u]
        assign[u] = b
    return max_moves


def _reordered(dataset: Dataset, names: list[str]) -> Dataset:
    """Images and annotations ordered by the requested splits (so files come out train, val, test)."""
    rank = {name: k for k, name in enumerate(names)}
    images = sorted(dataset.images, key=lambda i: rank.get(i.split, len(rank)))
    annotations = sorted(dataset.annotations, key=lambda a: rank.get(a.split, len(rank)))
    meta = {name: {} for name in names}
    return Dataset(dataset.categories, images, annotations, [], meta, dataset.source_format)
