"""COCOeval's ``evaluate`` and ``accumulate`` (``segm``), vectorised over the whole dataset.

pycocotools loops in Python over every (image, category) cell, every area
range, every IoU threshold, every detection and every GT.  The same greedy
matching is done here with NumPy on flat arrays, so that its result is
identical bit for bit (the parity tests compare the ``precision`` and
``recall`` arrays with ``==``):

- IoUs come from pycocotools' own C ``iou``, one call per image for the
  categories that have both GT and detections there; only same-category
  pairs with ``IoU >= 0.5`` (the lowest threshold) can ever match, so only
  those are kept;
- greedy matching is sequential within a cell (a detection may only take a
  GT that higher-ranked detections of its cell left free) but independent
  across cells, so it runs as one loop over the rank ``r`` (at most
  ``maxDets[-1]`` steps): step ``r`` matches the ``r``-th detection of every
  cell at once, for all 4 area ranges × 10 thresholds;
- accumulation sorts all detections once by (category, -score, image,
  rank), turns cumulative TP/FP counts into precision/recall per category
  segment, and samples the 101 recall thresholds by counting instead of
  101-fold ``searchsorted`` calls.

Everything here is private; :mod:`segdata.metrics.instance` validates inputs
and builds the flat tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from pycocotools import mask as mask_utils

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = (("all", 0.0, 1e10), ("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2),
               ("large", 96.0**2, 1e10))
T, A, R, M = len(IOU_THRESHOLDS), len(AREA_RANGES), len(RECALL_THRESHOLDS), len(MAX_DETS)
# one row per (area range, threshold): row = a * T + t; COCOeval's running best starts at min(t, 1 - 1e-10)
THRESHOLD_ROWS = np.tile(np.minimum(IOU_THRESHOLDS, 1 - 1e-10), A)
_LOW = np.array([a[1] for a in AREA_RANGES])[:, None]
_HIGH = np.array([a[2] for a in AREA_RANGES])[:, None]


@dataclass
class Table:
    """GT annotations or detections as flat arrays, one entry per record.

    ``image`` and ``category`` are indices into the sorted image ids and
    category ids; ``value`` is the GT id (GT) or the score (detections).
    """

    image: np.ndarray
    category: np.ndarray
    area: np.ndarray
    value: np.ndarray
    crowd: np.ndarray
    rles: list


def out_of_range(area: np.ndarray) -> np.ndarray:
    """(A, N) bool: ``area`` outside each area range, both ends inclusive as in COCOeval."""
    return (area[None, :] < _LOW) | (area[None, :] > _HIGH)


def rank_detections(dt: Table) -> tuple[np.ndarray, np.ndarray]:
    """Order detections by (image, category, -score, input order); keep the first ``maxDets[-1]`` per cell.

    Returns the kept indices in that order and each one's rank within its cell.
    """
    n = len(dt.value)
    order = np.lexsort((np.arange(n), -dt.value, dt.category, dt.image))
    image, category = dt.image[order], dt.category[order]
    new_cell = np.ones(n, dtype=bool)
    new_cell[1:] = (image[1:] != image[:-1]) | (category[1:] != category[:-1])
    starts = np.flatnonzero(new_cell)
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    keep = rank < MAX_DETS[-1]
    return order[keep], rank[keep]


def candidate_pairs(gt: Table, dt: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same-image, same-category (detection, GT) pairs with ``IoU >= 0.5``, and their IoU.

    ``dt`` must be sorted by image (as :func:`rank_detections` leaves it).
    Each IoU is pycocotools' own, so bit-identical to COCOeval's.  One
    ``iou()`` call per image (a call costs ~30 µs of Python before any C
    work, so one per (image, category) cell as COCOeval makes would cost
    more), on the detections and GTs of the categories present on both sides.
    """
    n_cat = int(max(gt.category.max(initial=-1), dt.category.max(initial=-1))) + 1
    g_cell, d_cell = gt.image * n_cat + gt.category, dt.image * n_cat + dt.category
    d_keep = np.flatnonzero(np.isin(d_cell, g_cell))
    g_keep = np.flatnonzero(np.isin(g_cell, d_cell))
    g_keep = g_keep[np.argsort(gt.image[g_keep], kind="stable")]  # by image, JSON order within one
    images = np.unique(dt.image[d_keep])
    d_bounds = np.searchsorted(dt.image[d_keep], images).tolist() + [len(d_keep)]
    g_bounds = np.searchsorted(gt.image[g_keep], images).tolist() + [len(g_keep)]
    d_keep_list, g_keep_list = d_keep.tolist(), g_keep.tolist()
    g_crowd = gt.crowd.astype(np.uint8).tolist()
    pairs_d, pairs_g, pairs_iou = [], [], []
    for i in range(len(images)):
        d_block = d_keep_list[d_bounds[i]:d_bounds[i + 1]]
        g_block = g_keep_list[g_bounds[i]:g_bounds[i + 1]]
        ious = np.asarray(mask_utils.iou([dt.rles[d] for d in d_block], [gt.rles[g] for g in g_block],
                                         [g_crowd[g] for g in g_block]))
        d_index, g_index = d_keep[d_bounds[i]:d_bounds[i + 1]], g_keep[g_bounds[i]:g_bounds[i + 1]]
        hit = (dt.category[d_index][:, None] == gt.category[g_index][None, :]) & (ious >= IOU_THRESHOLDS[0])
        rows, cols = np.nonzero(hit)
        pairs_d.append(d_index[rows])
        pairs_g.append(g_index[cols])
        pairs_iou.append(ious[rows, cols])
    if not pairs_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(pairs_d), np.concatenate(pairs_g), np.concatenate(pairs_iou)


def match(gt: Table, dt_rank: np.ndarray, pairs: tuple, gt_ignore: np.ndarray, n_dt: int) -> np.ndarray:
    """COCOeval's greedy matching for every (area range, threshold) row; (A*T, n_dt) GT index or -1.

    In a cell, detections take GTs in rank order; a detection takes, among
    the GTs still free (crowd GT always is) with ``IoU >= threshold``, the
    non-ignored one of highest IoU, else the ignored one of highest IoU;
    among equal IoUs the later GT in JSON order (COCOeval's scan keeps the
    last ``>=``).  Cells do not interact, so rank ``r`` of all cells is one
    NumPy step.
    """
    p_d, p_g, p_iou = pairs
    rows = A * T
    matched = np.full((rows, n_dt), -1, dtype=np.int32)
    if not len(p_d):
        return matched
    order = np.lexsort((p_g, p_d, dt_rank[p_d]))
    p_d, p_g, p_iou = p_d[order], p_g[order], p_iou[order]
    ignore_rows = np.repeat(gt_ignore, T, axis=0)  # (rows, G)
    taken = np.zeros((rows, len(gt.value)), dtype=bool)
    rank = dt_rank[p_d]
    bounds = np.flatnonzero(np.diff(rank, prepend=-1, append=-1))
    for start, stop in pairwise(bounds.tolist()):
        d, g, iou = p_d[start:stop], p_g[start:stop], p_iou[start:stop]
        first = np.flatnonzero(np.diff(d, prepend=-1))  # one segment per detection
        segment = np.cumsum(np.diff(d, prepend=-1) != 0) - 1
        ok = (iou[None, :] >= THRESHOLD_ROWS[:, None]) & (~taken[:, g] | gt.crowd[g][None, :])
        ignored = ignore_rows[:, g]
        has_real = np.logical_or.reduceat(ok & ~ignored, first, axis=1)
        candidate = ok & (ignored != has_real[:, segment])
        key = np.where(candidate, iou[None, :], -1.0)
        best = np.maximum.reduceat(key, first, axis=1)
        position = np.where(candidate & (key == best[:, segment]), np.arange(stop - start)[None, :], -1)
        pick = np.maximum.reduceat(position, first, axis=1)  # the last GT with the best IoU
        hit_rows, hit_segments = np.nonzero(pick >= 0)
        chosen = g[pick[hit_rows, hit_segments]]
        taken[hit_rows, chosen] = True
        matched[hit_rows, d[first[hit_segments]]] = chosen
    return matched


def true_false_positives(gt: Table, dt: Table, matched: np.ndarray, gt_ignore: np.ndarray):
    """(A*T, D) TP and FP flags, as COCOeval's ``dtMatches``/``dtIgnore`` make them in ``accumulate``.

    A match to GT id 0 reads as no match (``dtMatches`` holds the GT id and
    is tested for truth); an unmatched detection outside the area range is
    ignored; a detection matched to an ignored GT is ignored.
    """
    rows = np.arange(A * T)[:, None]
    is_matched = matched >= 0  # -1 (no match) reads the padding: id 1, not ignored
    nonzero_id = is_matched & (np.append(gt.value, 1)[matched] != 0)
    gt_ignored = np.repeat(np.pad(gt_ignore, ((0, 0), (0, 1))), T, axis=0)[rows, matched]
    ignored = (is_matched & gt_ignored) | (~nonzero_id & np.repeat(out_of_range(dt.area), T, axis=0))
    return nonzero_id & ~ignored, ~nonzero_id & ~ignored


def _suffix_max(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``max(values[i:end of i's group])`` for each ``i``; ``group`` is non-decreasing.

    The values are replaced by their exact rank, offset per group so that a
    single running maximum (from the end) never crosses into the next group.
    """
    if not len(values):
        return values
    unique, rank = np.unique(values, return_inverse=True)
    offset = (group[-1] - group) * len(unique)
    return unique[np.maximum.accumulate((offset + rank)[::-1])[::-1] - offset]


def _recall_needs(npig: np.ndarray) -> np.ndarray:
    """(K, A, R): the fewest TPs ``l >= 1`` whose recall ``l / npig`` reaches each recall threshold.

    The reference finds the first detection with ``recall >= threshold``
    (``searchsorted``); recall only grows at a TP, so that detection is the
    ``l``-th TP.  ``ceil(threshold * npig)`` is ``l`` or off by one; the
    exact float comparison settles it.
    """
    npig = npig.astype(float)[:, :, None]
    need = np.maximum(np.ceil(RECALL_THRESHOLDS * npig), 1).astype(np.int64)
    need += need / npig < RECALL_THRESHOLDS
    need -= (need > 1) & ((need - 1) / npig >= RECALL_THRESHOLDS)
    return need


def _accumulate_subset(dt: Table, keep: np.ndarray, tp: np.ndarray, ignored: np.ndarray, npig: np.ndarray,
                       need: np.ndarray):
    """Precision (rows, K, R) and recall (rows, K) for the detections ``keep``, sorted as COCOeval sorts them.

    Recall only grows, and precision only peaks, at a TP: between two TPs
    the FP count grows and precision falls.  So the reference's
    cumulative arrays are only read at TPs here: the ``l``-th TP of a
    (row, category) has ``tp = l`` and ``fp`` = the detections before it in
    its category that are neither TP nor ignored.
    """
    n_cat, rows, n = npig.shape[0], A * T, len(keep)
    category = dt.category[keep]
    counts = np.bincount(category, minlength=n_cat)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    t_row, t_pos = np.nonzero(tp[:, keep])  # row-major: by row, then position (so by category)
    i_row, i_pos = np.nonzero(ignored[:, keep])
    t_cat = category[t_pos]
    group = t_row * n_cat + t_cat
    group_start = np.searchsorted(group, np.arange(rows * n_cat + 1))
    n_tp = np.diff(group_start).reshape(rows, n_cat)
    nth = np.arange(len(group)) - group_start[group] + 1
    i_key = i_row * (n + 1) + i_pos
    ignored_before = (np.searchsorted(i_key, t_row * (n + 1) + t_pos)
                      - np.searchsorted(i_key, t_row * (n + 1) + starts[t_cat]))
    tp_count = nth.astype(float)
    fp_count = (t_pos - starts[t_cat] - (nth - 1) - ignored_before).astype(float)
    envelope = _suffix_max(tp_count / (fp_count + tp_count + np.spacing(1)), group)
    npig_rows = np.repeat(np.where(npig > 0, npig, 1).T.astype(float), T, axis=0)  # (rows, K)
    recall = np.where(counts[None, :] > 0, n_tp / npig_rows, 0.0)
    need_rows = np.repeat(need.transpose(1, 0, 2), T, axis=0)  # (rows, K, R)
    index = group_start[:-1].reshape(rows, n_cat)[:, :, None] + need_rows - 1
    valid = need_rows <= n_tp[:, :, None]
    precision = np.where(valid, envelope[np.minimum(index, max(len(envelope) - 1, 0))] if len(envelope) else 0.0,
                         0.0)
    return precision, recall


def accumulate(dt: Table, dt_rank: np.ndarray, tp: np.ndarray, fp: np.ndarray, npig: np.ndarray):
    """COCOeval.accumulate: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where undefined.

    ``tp`` and ``fp`` are (A*T, D) flags; ``npig`` (K, A) counts the
    non-ignored GT per category and area range.  The arithmetic is the
    reference's where it rounds: ``tp / npig`` and ``tp / (fp + tp + eps)``
    on the same integers, compared with the same thresholds.
    """
    n_cat = npig.shape[0]
    precision = -np.ones((T, R, n_cat, A, M))
    recall = -np.ones((T, n_cat, A, M))
    has_gt = npig > 0  # (K, A)
    need = _recall_needs(np.where(has_gt, npig, 1))
    ignored = ~tp & ~fp
    order = np.lexsort((dt_rank, dt.image, -dt.value, dt.category))
    done: dict[int, tuple] = {}
    for m, max_det in enumerate(MAX_DETS):
        keep = order[dt_rank[order] < max_det]
        if len(keep) not in done:  # a larger maxDet that keeps the same detections gives the same arrays
            done[len(keep)] = _accumulate_subset(dt, keep, tp, ignored, npig, need)
        q, rec = done[len(keep)]
        q = q.reshape(A, T, n_cat, R).transpose(1, 3, 2, 0)  # (T, R, K, A)
        rec = rec.reshape(A, T, n_cat).transpose(1, 2, 0)  # (T, K, A)
        precision[..., m] = np.where(has_gt[None, None], q, -1.0)
        recall[..., m] = np.where(has_gt[None], rec, -1.0)
    return precision, recall
