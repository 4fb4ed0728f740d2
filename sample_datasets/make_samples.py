"""Render segdata's synthetic sample datasets, deterministically.

Run from anywhere::

    python sample_datasets/make_samples.py

It (re)writes, next to this script:

* ``coco/``        the clean sample: 60 street/field scenes, 8 long-tailed
                   classes, COCO instance annotations for train/val/test;
* ``coco-dirty/``  the same scenes with planted problems (cross-split
                   near-duplicates, a byte-identical copy, a self-intersecting
                   polygon, a wrong bbox, a wrong area, a duplicated
                   instance, a strongly overlapping pair), each listed in
                   ``coco-dirty/README.md``;
* ``README.md``    provenance, licence and the class table.

Everything comes from fixed seeds: no timestamps, no randomness from the
environment, so a re-run gives byte-identical files.  Annotations are written
with segdata's own COCO writer (area and bbox recomputed from the masks); only
the two planted wrong values (bbox, area) are edited into the written JSON.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segdata.converters import coco
from segdata.io import dumps_json, read_json
from segdata.masks import Mask, bitmap_to_polygons
from segdata.model import Annotation, Category, Dataset, ImageRecord

HERE = Path(__file__).resolve().parent
SEED = 20240917
QUALITY = 85
SPLITS = (("train", 40), ("val", 10), ("test", 10))
SIZES = ((160, 120), (176, 132), (192, 144), (208, 156), (224, 168), (240, 180), (256, 192))

#: id, name, supercategory
CLASSES = (
    (1, "road", "surface"),
    (2, "car", "vehicle"),
    (3, "person", "person"),
    (4, "tree", "plant"),
    (5, "fence", "structure"),
    (6, "sign", "structure"),
    (7, "tyre", "object"),
    (8, "kite", "object"),
)
CAT = {name: cid for cid, name, _ in CLASSES}
NAME = {cid: name for cid, name, _ in CLASSES}

# Forced features (by image id); everything else is drawn from the per-image seed.
EMPTY_IDS = {17, 57}                      # no annotation at all
KITE_IDS = {6, 22, 35, 58}                # the rare class: 3 train, 1 test
CROWD_IDS = {9, 28, 46}                   # one iscrowd=1 "crowd of people" each
TYRE_IDS = {3, 14, 26, 33, 39, 44, 53}    # rings with a hole

MAX_NATURAL_IOU = 0.2    # the generator never lets two instances overlap more than this
MIN_VISIBLE = 0.5        # every instance keeps at least half of its pixels visible
LICENSE = {"id": 1, "name": "MIT License", "url": "https://opensource.org/licenses/MIT"}


# ---------------------------------------------------------------------------------------------
# small drawing helpers (all masks are uint8 canvases of the image size, 1 = inside)


def _pt(x, y):
    return int(round(x)), int(round(y))


def poly(canvas, points):
    cv2.fillPoly(canvas, [np.round(np.asarray(points, float)).astype(np.int32)], 1)


def rounded_rect(canvas, x0, y0, x1, y1, r):
    r = max(0, min(r, (x1 - x0) / 2, (y1 - y0) / 2))
    ri = int(round(r))
    cv2.rectangle(canvas, _pt(x0 + r, y0), _pt(x1 - r, y1), 1, -1)
    cv2.rectangle(canvas, _pt(x0, y0 + r), _pt(x1, y1 - r), 1, -1)
    for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
        cv2.circle(canvas, _pt(cx, cy), ri, 1, -1)


def tidy(mask: np.ndarray, holes: bool = False) -> np.ndarray:
    """Fill unintended holes and remove diagonal-only pixel contacts (pinches)."""
    m = mask.astype(bool).copy()
    for _ in range(50):
        if not holes and m.any():
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            filled = np.zeros(m.shape, np.uint8)
            cv2.drawContours(filled, contours, -1, 1, -1)
            m |= filled.astype(bool)
        a, b, c, d = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]
        p1 = a & d & ~b & ~c
        p2 = b & c & ~a & ~d
        if not (p1.any() or p2.any()):
            return m
        m[:-1, 1:] |= p1
        m[:-1, :-1] |= p2
    raise RuntimeError("tidy did not converge")


def n_parts(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def has_hole(mask: np.ndarray) -> bool:
    return bool((tidy(mask, holes=False) & ~mask).any())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    return inter / np.count_nonzero(a | b) if inter else 0.0


def smooth_noise(rng, h, w, sigma, amp):
    n = rng.standard_normal((h, w)).astype(np.float32)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
        n /= max(float(n.std()), 1e-6)
    return n * amp


def layer(rng, h, w, color, y0, y1, noise=8.0, sigma=0.8, light=0.18):
    """A colour layer with top-lit shading over rows y0..y1 and grainy noise."""
    ys = np.arange(h, dtype=np.float32)[:, None]
    t = np.clip((ys - y0) / max(y1 - y0, 1.0), 0, 1)
    shade = (1 + light) - 2 * light * t
    base = np.asarray(color, np.float32)[None, None, :] * shade[..., None]
    return base + smooth_noise(rng, h, w, sigma, noise)[..., None]


# ---------------------------------------------------------------------------------------------
# objects


@dataclass
class Obj:
    cls: str
    mask: np.ndarray                 # bool, full (un-occluded) shape, clipped to the image
    paint: np.ndarray                # float RGB layer, valid inside ``mask`` and ``extra``
    depth: float                     # painter's order: smaller is farther
    crowd: bool = False
    extra: np.ndarray | None = None  # unannotated pixels drawn with the object (sign pole, kite string)
    info: dict = field(default_factory=dict)


class Scene:
    """The geometry of one image: horizon, ground perspective and roads."""

    def __init__(self, rng, w, h):
        self.rng, self.w, self.h = rng, w, h
        self.yh = h * rng.uniform(0.34, 0.5)
        self.k = h * rng.uniform(0.46, 0.56)   # pixel height of a person standing on the bottom row
        self.vx = w * rng.uniform(0.3, 0.7)
        self.recede = None   # (x_left(y), x_right(y), y_top)
        self.band = None     # (y0, y1)

    def s_of(self, y):
        return (y - self.yh) / (self.h - self.yh)

    def y_of(self, s):
        return self.yh + s * (self.h - self.yh)

    def on_road(self, y, x):
        if self.band and self.band[0] <= y <= self.band[1]:
            return True
        if self.recede and y >= self.recede[2]:
            xl, xr = self.recede[0](y), self.recede[1](y)
            return xl <= x <= xr
        return False

    def road_span(self, y):
        xl, xr = self.recede[0](y), self.recede[1](y)
        return xl, xr


def new_canvas(sc):
    return np.zeros((sc.h, sc.w), np.uint8)


def make_recede_road(sc, rng, y_top=None):
    w, h = sc.w, sc.h
    tw = w * rng.uniform(0.015, 0.04)
    cxb = sc.vx + w * rng.uniform(-0.3, 0.3)
    hwb = w * rng.uniform(0.32, 0.55)

    def xl(y):
        s = sc.s_of(y)
        return (sc.vx - tw) + s * ((cxb - hwb) - (sc.vx - tw))

    def xr(y):
        s = sc.s_of(y)
        return (sc.vx + tw) + s * ((cxb + hwb) - (sc.vx + tw))

    top = sc.yh + 1 if y_top is None else y_top
    ybot = h + 4
    m = new_canvas(sc)
    poly(m, [(xl(top), top), (xr(top), top), (xr(ybot), ybot), (xl(ybot), ybot)])
    m = m.astype(bool)
    sc.recede = (xl, xr, top)
    # asphalt, lighter with distance (haze), and a dashed centre line in perspective
    grey = rng.uniform(70, 105)
    tint = np.array([grey, grey * rng.uniform(0.98, 1.02), grey * rng.uniform(1.0, 1.06)])
    paint = layer(rng, h, w, tint, sc.yh, h, noise=7, sigma=0.6, light=-0.12)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    s = np.maximum(sc.s_of(ys), 1e-3)
    cx = (sc.vx) + s * (cxb - sc.vx)
    half = 0.02 * w * s + 0.3
    dash = (np.floor(6.0 / s + 0.5) % 2) == 0
    line = (np.abs(xs - cx) <= half) & dash & (ys > top + 2)
    paint[line] = (225, 222, 205)
    edge = 0.012 * w * s + 0.3
    for fx in (xl, xr):
        ex = np.vectorize(fx)(ys[:, :1])
        paint[(np.abs(xs - ex - (2 * edge if fx is xl else -2 * edge)) <= edge) & (ys > top + 3)] = (215, 215, 210)
    return Obj("road", m, paint, -1e9, info={"kind": "recede"})


def make_band_road(sc, rng):
    w, h = sc.w, sc.h
    y0 = sc.y_of(rng.uniform(0.22, 0.42))
    y1 = y0 + (h - sc.yh) * rng.uniform(0.16, 0.24)
    tilt = rng.uniform(-0.04, 0.04) * h
    m = new_canvas(sc)
    poly(m, [(-2, y0 - tilt), (w + 2, y0 + tilt), (w + 2, y1 + tilt), (-2, y1 - tilt)])
    m = m.astype(bool)
    sc.band = (y0 - abs(tilt), y1 + abs(tilt))
    sc.band_exact = (y0, y1, tilt)
    grey = rng.uniform(65, 100)
    paint = layer(rng, h, w, (grey, grey, grey * 1.04), y0, y1, noise=7, sigma=0.6, light=-0.08)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    frac = xs / w
    yc = (y0 + y1) / 2 - tilt + 2 * tilt * frac
    th = max(0.6, (y1 - y0) * 0.04)
    dash = (np.floor(xs / max(4.0, (y1 - y0) * 0.7)) % 2) == 0
    paint[(np.abs(ys - yc) <= th) & dash] = (228, 220, 120)
    return Obj("road", m, paint, -1e9 + 1, info={"kind": "band"})


PALETTE_CAR = ((178, 34, 34), (30, 70, 160), (230, 230, 225), (35, 35, 40), (200, 160, 30),
               (150, 155, 160), (40, 110, 60), (120, 30, 90))


def make_car(sc, rng, side_view, yb, cx):
    u = sc.k * sc.s_of(yb)
    m = new_canvas(sc)
    win = new_canvas(sc)
    dark = new_canvas(sc)
    lights = new_canvas(sc)
    if not side_view:  # seen from behind, on the receding road
        rounded_rect(m, cx - 0.5 * u, yb - 0.52 * u, cx + 0.5 * u, yb - 0.1 * u, 0.08 * u)
        poly(m, [(cx - 0.44 * u, yb - 0.5 * u), (cx + 0.44 * u, yb - 0.5 * u),
                 (cx + 0.33 * u, yb - 0.82 * u), (cx - 0.33 * u, yb - 0.82 * u)])
        for sx in (-1, 1):
            rounded_rect(m, cx + sx * 0.42 * u - 0.08 * u, yb - 0.2 * u, cx + sx * 0.42 * u + 0.08 * u, yb,
                         0.03 * u)
            rounded_rect(dark, cx + sx * 0.42 * u - 0.08 * u, yb - 0.2 * u, cx + sx * 0.42 * u + 0.08 * u, yb,
                         0.03 * u)
            cv2.rectangle(lights, _pt(cx + sx * 0.44 * u, yb - 0.44 * u), _pt(cx + sx * 0.33 * u, yb - 0.36 * u),
                          1, -1)
        poly(win, [(cx - 0.38 * u, yb - 0.53 * u), (cx + 0.38 * u, yb - 0.53 * u),
                   (cx + 0.3 * u, yb - 0.77 * u), (cx - 0.3 * u, yb - 0.77 * u)])
        cv2.rectangle(dark, _pt(cx - 0.12 * u, yb - 0.3 * u), _pt(cx + 0.12 * u, yb - 0.2 * u), 1, -1)
        x0, x1 = cx - 0.5 * u, cx + 0.5 * u
    else:  # side view, on the crossing road
        length = u * rng.uniform(2.3, 2.7)
        face = 1 if rng.random() < 0.5 else -1
        x0, x1 = cx - length / 2, cx + length / 2
        rounded_rect(m, x0, yb - 0.52 * u, x1, yb - 0.14 * u, 0.12 * u)
        a, b = (0.22, 0.72) if face > 0 else (0.28, 0.78)
        poly(m, [(x0 + (a - 0.04) * length, yb - 0.5 * u), (x0 + (b + 0.06) * length, yb - 0.5 * u),
                 (x0 + (b - 0.06) * length, yb - 0.84 * u), (x0 + (a + 0.08) * length, yb - 0.84 * u)])
        poly(win, [(x0 + (a + 0.02) * length, yb - 0.54 * u), (x0 + (b + 0.02) * length, yb - 0.54 * u),
                   (x0 + (b - 0.06) * length, yb - 0.78 * u), (x0 + (a + 0.1) * length, yb - 0.78 * u)])
        for fx in (0.2, 0.8):
            r = 0.17 * u
            cv2.circle(m, _pt(x0 + fx * length, yb - r), int(round(r)), 1, -1)
            cv2.circle(dark, _pt(x0 + fx * length, yb - r), int(round(r)), 1, -1)
        lx = x1 - 0.05 * length if face > 0 else x0 + 0.01 * length
        cv2.rectangle(lights, _pt(lx, yb - 0.44 * u), _pt(lx + 0.04 * length, yb - 0.36 * u), 1, -1)
    m = tidy(m)
    color = PALETTE_CAR[rng.integers(len(PALETTE_CAR))]
    paint = layer(rng, sc.h, sc.w, color, yb - 0.85 * u, yb, noise=4, light=0.2)
    paint[win.astype(bool)] = np.array((150, 185, 205), np.float32) * rng.uniform(0.7, 1.0)
    paint[dark.astype(bool)] = (28, 28, 30)
    paint[lights.astype(bool)] = (230, 60, 40) if not side_view else (250, 240, 190)
    return Obj("car", m, paint, yb, info={"u": u, "yb": yb, "cx": cx, "x0": x0, "x1": x1})


PALETTE_SHIRT = ((200, 40, 40), (40, 90, 190), (240, 200, 40), (60, 150, 70), (235, 235, 235),
                 (120, 60, 150), (240, 120, 30), (40, 40, 45))
SKIN = ((241, 194, 160), (224, 172, 125), (198, 134, 90), (141, 85, 54), (90, 60, 40))


def person_masks(sc, rng, yb, cx, u, detached):
    legs = new_canvas(sc)
    body = new_canvas(sc)
    head = new_canvas(sc)
    for sx in (-1, 1):
        cv2.rectangle(legs, _pt(cx + sx * 0.07 * u - 0.045 * u, yb - 0.46 * u),
                      _pt(cx + sx * 0.07 * u + 0.045 * u, yb - 1), 1, -1)
    cv2.ellipse(body, _pt(cx, yb - 0.63 * u), _pt(0.15 * u, 0.22 * u), 0, 0, 360, 1, -1)
    hy, hr = yb - 0.9 * u, max(1.5, 0.1 * u)
    if detached:
        hy = yb - 0.97 * u
    cv2.circle(head, _pt(cx, hy), int(round(hr)), 1, -1)
    if detached:  # lift the head until it no longer touches the body (a separate part)
        for _ in range(10):
            if not (cv2.dilate(head, np.ones((3, 3), np.uint8)) & body).any():
                break
            head = np.roll(head, -1, axis=0)
            head[-1] = 0
    return legs.astype(bool), body.astype(bool), head.astype(bool)


def make_person(sc, rng, yb, cx, u=None, detached=None):
    u = sc.k * sc.s_of(yb) if u is None else u
    if detached is None:
        detached = rng.random() < 0.3
    legs, body, head = person_masks(sc, rng, yb, cx, u, detached)
    m = legs | body | head
    m = tidy(m)
    if detached and n_parts(m) < 2:
        detached = False
    paint = layer(rng, sc.h, sc.w, PALETTE_SHIRT[rng.integers(len(PALETTE_SHIRT))], yb - u, yb - 0.4 * u,
                  noise=5, light=0.15)
    pants = np.array(((40, 45, 70), (60, 60, 60), (90, 70, 50), (30, 30, 35))[rng.integers(4)], np.float32)
    paint[legs] = pants + smooth_noise(rng, sc.h, sc.w, 0.6, 4)[legs][:, None]
    paint[head] = SKIN[rng.integers(len(SKIN))]
    hair_color = ((30, 20, 15), (80, 50, 25), (200, 170, 100))[rng.integers(3)]
    if head.any():
        hair = head & (np.arange(sc.h)[:, None] < (np.nonzero(head.any(1))[0].min() + 0.07 * u + 0.5))
        paint[hair] = hair_color
    return Obj("person", m, paint, yb, info={"u": u, "yb": yb, "cx": cx, "detached": detached})


def make_crowd(sc, rng, yb0, x0, x1):
    """Many small overlapping people in rows: one iscrowd region (union mask)."""
    m = np.zeros((sc.h, sc.w), bool)
    paint = np.zeros((sc.h, sc.w, 3), np.float32)
    rows = int(rng.integers(2, 4))
    for row in range(rows):
        yb = yb0 + row * 0.035 * (sc.h - sc.yh) * 3
        u = sc.k * sc.s_of(yb)
        x = x0 + rng.uniform(0, 0.3 * u)
        while x < x1:
            p = make_person(sc, rng, yb + rng.uniform(-1, 1), x, u * rng.uniform(0.9, 1.1), detached=False)
            paint[p.mask] = p.paint[p.mask]
            m |= p.mask
            x += u * rng.uniform(0.22, 0.36)
    m = tidy(m)
    return Obj("person", m, paint, yb0, crowd=True, info={"yb": yb0, "x0": x0, "x1": x1})


def make_tree(sc, rng, yb, cx, big=False):
    u = sc.k * sc.s_of(yb)
    height = u * rng.uniform(2.0, 3.2) * (1.3 if big else 1.0)
    cr = u * rng.uniform(0.55, 0.8) * (1.3 if big else 1.0)
    trunk = new_canvas(sc)
    tw = max(1.5, 0.07 * u)
    cv2.rectangle(trunk, _pt(cx - tw, yb - height + cr), _pt(cx + tw, yb - 1), 1, -1)
    canopy = new_canvas(sc)
    ccx, ccy = cx + rng.uniform(-0.1, 0.1) * cr, yb - height + cr
    cv2.circle(canopy, _pt(ccx, ccy), int(round(cr * 0.75)), 1, -1)
    for _ in range(int(rng.integers(5, 9))):
        ang = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(0.25, 0.6) * cr
        cv2.circle(canopy, _pt(ccx + dist * math.cos(ang), ccy + 0.8 * dist * math.sin(ang)),
                   int(round(cr * rng.uniform(0.35, 0.55))), 1, -1)
    m = tidy(trunk.astype(bool) | canopy.astype(bool))
    green = np.array(((50, 110, 45), (70, 130, 50), (35, 90, 50), (95, 125, 45), (40, 100, 70))[rng.integers(5)],
                     np.float32)
    paint = layer(rng, sc.h, sc.w, green, ccy - cr, ccy + cr, noise=16, sigma=1.0, light=0.3)
    leaf = smooth_noise(rng, sc.h, sc.w, 0.5, 10)
    paint += leaf[..., None] * np.array((0.6, 1.0, 0.5), np.float32)
    t = trunk.astype(bool) & ~canopy.astype(bool)
    paint[t] = np.array((95, 65, 40), np.float32) + smooth_noise(rng, sc.h, sc.w, 0.5, 6)[t][:, None]
    return Obj("tree", m, paint, yb, info={"u": u, "yb": yb, "cx": cx})


def make_fence(sc, rng, yb, x0, x1):
    u = sc.k * sc.s_of(yb)
    bh = u * rng.uniform(0.45, 0.65)
    bw = max(2.0, 0.07 * u)
    gap = max(bw + 2.5, u * rng.uniform(0.2, 0.32))
    m = new_canvas(sc)
    x, bars = x0, 0
    while x + bw <= x1 or bars < 3:
        poly(m, [(x, yb - 1), (x + bw, yb - 1), (x + bw, yb - bh), (x + bw / 2, yb - bh - bw * 0.7),
                 (x, yb - bh)])
        x += gap
        bars += 1
    m = tidy(m)
    color = ((235, 232, 222), (130, 90, 55), (150, 150, 145))[rng.integers(3)]
    paint = layer(rng, sc.h, sc.w, color, yb - bh, yb, noise=5, light=0.15)
    return Obj("fence", m, paint, yb, info={"u": u, "yb": yb, "bars": bars})


def sign_plate(cx, cy, r, shape):
    if shape == "octagon":
        return [(cx + r * math.cos(math.pi / 8 + i * math.pi / 4), cy + r * math.sin(math.pi / 8 + i * math.pi / 4))
                for i in range(8)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + 0.95 * r, cy + 0.7 * r), (cx - 0.95 * r, cy + 0.7 * r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    return [(cx - r, cy - 0.75 * r), (cx + r, cy - 0.75 * r), (cx + r, cy + 0.75 * r), (cx - r, cy + 0.75 * r)]


def make_sign(sc, rng, yb, cx, shape=None):
    u = sc.k * sc.s_of(yb)
    shape = shape or ("octagon", "triangle", "diamond", "rectangle")[rng.integers(4)]
    r = max(4.0, u * rng.uniform(0.2, 0.26))
    cy = yb - 1.25 * u - r * 0.6
    pole = new_canvas(sc)
    pw = max(0.6, 0.025 * u)
    cv2.rectangle(pole, _pt(cx - pw, cy), _pt(cx + pw, yb - 1), 1, -1)
    corners = sign_plate(cx, cy, r, shape)
    m = new_canvas(sc)
    poly(m, corners)
    m = tidy(m)
    inner = new_canvas(sc)
    poly(inner, sign_plate(cx, cy + (0.12 * r if shape == "triangle" else 0), r * 0.72, shape))
    inner = inner.astype(bool) & m
    colors = {"octagon": ((200, 30, 35), (235, 235, 235)), "triangle": ((205, 35, 35), (245, 245, 240)),
              "diamond": ((25, 25, 25), (240, 200, 30)), "rectangle": ((240, 240, 240), (30, 80, 170))}[shape]
    paint = layer(rng, sc.h, sc.w, colors[0], cy - r, cy + r, noise=3, light=0.1)
    paint[inner] = colors[1]
    if shape == "octagon":
        paint[inner] = colors[0]
        band = np.abs(np.arange(sc.h)[:, None] - cy) < max(0.6, 0.12 * r)
        paint[inner & band & (np.abs(np.arange(sc.w)[None, :] - cx) < 0.55 * r)] = colors[1]
    pole_paint = np.broadcast_to(np.float32((120, 122, 125)), (sc.h, sc.w, 3))
    paint[pole.astype(bool) & ~m] = pole_paint[pole.astype(bool) & ~m]
    return Obj("sign", m, paint, yb, extra=pole.astype(bool) & ~m,
               info={"u": u, "yb": yb, "cx": cx, "shape": shape, "corners": corners})


def make_tyre(sc, rng, yb, cx):
    u = sc.k * sc.s_of(yb)
    R = max(6.0, u * rng.uniform(0.22, 0.32))
    flat = rng.random() < 0.35
    ry = R * (0.45 if flat else 1.0)
    cy = yb - ry
    m = new_canvas(sc)
    cv2.ellipse(m, _pt(cx, cy), _pt(R, ry), 0, 0, 360, 1, -1)
    hole = new_canvas(sc)
    hr = max(2.0, R * rng.uniform(0.5, 0.6))
    cv2.ellipse(hole, _pt(cx, cy), _pt(hr, max(1.5, hr * ry / R)), 0, 0, 360, 1, -1)
    m = tidy(m.astype(bool) & ~hole.astype(bool), holes=True)
    paint = layer(rng, sc.h, sc.w, (38, 38, 40), cy - ry, cy + ry, noise=4, light=0.35)
    ys, xs = np.mgrid[0:sc.h, 0:sc.w].astype(np.float32)
    ang = np.arctan2((ys - cy) / max(ry, 1), (xs - cx) / R)
    tread = (np.floor(ang * 12 / math.pi) % 2) == 0
    rad = np.hypot((xs - cx) / R, (ys - cy) / max(ry, 1))
    paint[tread & (rad > 0.85)] *= 0.6
    return Obj("tyre", m, paint, yb, info={"u": u, "yb": yb, "cx": cx, "flat": flat})


def make_kite(sc, rng):
    size = sc.h * rng.uniform(0.1, 0.16)
    cx = sc.w * rng.uniform(0.1, 0.9)
    cy = rng.uniform(0.08 * sc.h + size, max(0.08 * sc.h + size + 1, sc.yh - size * 1.2))
    ang = rng.uniform(-0.5, 0.5)
    pts = []
    for a, r in ((-math.pi / 2, 1.0), (math.pi / 2 - 0.55, 0.9), (math.pi / 2 + 0.55, 0.9)):
        pts.append((cx + size * r * math.cos(a + ang), cy + size * r * math.sin(a + ang)))
    m = new_canvas(sc)
    poly(m, pts)
    m = tidy(m)
    c1, c2 = (((230, 40, 60), (250, 210, 40)), ((40, 120, 220), (250, 250, 250)),
              ((250, 120, 20), (60, 40, 120)))[rng.integers(3)]
    paint = layer(rng, sc.h, sc.w, c1, cy - size, cy + size, noise=3, light=0.1)
    ys, xs = np.mgrid[0:sc.h, 0:sc.w].astype(np.float32)
    # a stripe along the kite's axis
    ax = (pts[0][0] - cx, pts[0][1] - cy)
    d = np.abs((xs - cx) * ax[1] - (ys - cy) * ax[0]) / max(math.hypot(*ax), 1e-6)
    paint[d < size * 0.18] = c2
    # tail with bows and the string: drawn, not annotated
    string = new_canvas(sc)
    tail_start = (pts[1][0] + pts[2][0]) / 2, (pts[1][1] + pts[2][1]) / 2
    prev = tail_start
    for i in range(1, 6):
        nxt = (tail_start[0] + 3 * math.sin(i * 1.3) + i * 0.6 * math.sin(ang),
               tail_start[1] + i * size * 0.28)
        cv2.line(string, _pt(*prev), _pt(*nxt), 1, 1)
        cv2.circle(string, _pt(*nxt), 1, 1, -1)
        prev = nxt
    end = (cx + rng.uniform(-0.6, 0.6) * sc.w, sc.h + 10)
    cv2.line(string, _pt(cx, cy), _pt(*end), 1, 1)
    extra = string.astype(bool) & ~m
    paint[extra] = (60, 50, 45)
    return Obj("kite", m, paint, 1e9, extra=extra, info={"size": size})


# ---------------------------------------------------------------------------------------------
# background


SKIES = (  # top, horizon (RGB)
    ((60, 110, 190), (175, 205, 235)),
    ((90, 140, 210), (200, 220, 240)),
    ((120, 125, 135), (200, 200, 205)),
    ((70, 70, 130), (240, 170, 110)),
    ((150, 185, 215), (225, 230, 230)),
    ((40, 90, 170), (150, 195, 230)),
)
GROUNDS = ((80, 140, 60), (120, 150, 70), (165, 150, 95), (140, 115, 80), (200, 185, 140), (125, 125, 120),
           (95, 120, 55))


def render_background(sc, rng, variant_colors=None):
    h, w = sc.h, sc.w
    top, hor = (np.asarray(c, np.float32) for c in SKIES[rng.integers(len(SKIES))])
    jitter = rng.uniform(0.9, 1.1, 3).astype(np.float32)
    top, hor = top * jitter, hor * jitter
    ys = np.arange(h, dtype=np.float32)[:, None, None]
    t = np.clip(ys / max(sc.yh, 1), 0, 1) ** rng.uniform(0.7, 1.4)
    img = np.broadcast_to(top * (1 - t) + hor * t, (h, w, 3)).copy()
    img += smooth_noise(rng, h, w, 3, 2.5)[..., None]
    # clouds
    for _ in range(int(rng.integers(0, 5))):
        cl = np.zeros((h, w), np.float32)
        cx, cy = rng.uniform(0, w), rng.uniform(0, sc.yh * 0.8)
        for _ in range(int(rng.integers(3, 7))):
            cv2.ellipse(cl, _pt(cx + rng.uniform(-0.12, 0.12) * w, cy + rng.uniform(-0.04, 0.04) * h),
                        _pt(rng.uniform(0.05, 0.12) * w, rng.uniform(0.02, 0.05) * h), 0, 0, 360, 1.0, -1)
        cl = cv2.GaussianBlur(cl, (0, 0), 2.5) * rng.uniform(0.4, 0.8)
        img = img * (1 - cl[..., None]) + 245 * cl[..., None]
    # distant hills
    xs = np.arange(w, dtype=np.float32)
    ridge = sc.yh - h * (0.03 + 0.05 * (np.sin(xs / w * rng.uniform(3, 9) + rng.uniform(0, 6)) + 1) / 2
                         + 0.02 * smooth_noise(rng, 1, w, 4, 1)[0])
    hill = ys[..., 0] >= ridge[None, :]
    hill_col = hor * 0.55 + np.float32((60, 90, 70)) * 0.45
    img[hill] = hill_col * rng.uniform(0.85, 1.0)
    # ground
    base = np.asarray(GROUNDS[rng.integers(len(GROUNDS))], np.float32) * rng.uniform(0.88, 1.1, 3).astype(np.float32)
    gy = np.arange(h, dtype=np.float32)[:, None]
    s = np.clip((gy - sc.yh) / (h - sc.yh), 0, 1)
    ground = base[None, None, :] * (0.8 + 0.3 * s[..., None]) + (hor * (1 - s[..., None]) * 0.15)
    ground = np.broadcast_to(ground, (h, w, 3)).copy()
    texture = rng.integers(4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if texture == 0:      # grainy noise
        ground += smooth_noise(rng, h, w, 1.2, 9)[..., None]
    elif texture == 1:    # crop rows converging to the vanishing point
        ang = np.arctan2(xx - sc.vx, np.maximum(yy - sc.yh, 0.5))
        ground *= (1 + 0.12 * np.sin(ang * rng.uniform(18, 30)))[..., None]
        ground += smooth_noise(rng, h, w, 0.8, 5)[..., None]
    elif texture == 2:    # horizontal stripes in perspective (ploughed field, mown lawn)
        depth = 1.0 / np.maximum((yy - sc.yh) / (h - sc.yh), 0.02)
        ground *= (1 + 0.1 * np.sign(np.sin(depth * rng.uniform(4, 7))))[..., None]
        ground += smooth_noise(rng, h, w, 0.8, 5)[..., None]
    else:                 # patchy gradient
        ground *= (1 + 0.12 * smooth_noise(rng, h, w, 6, 1))[..., None]
        ground += smooth_noise(rng, h, w, 0.7, 4)[..., None]
    below = yy >= sc.yh
    img[below] = ground[below]
    return img


# ---------------------------------------------------------------------------------------------
# layout


def visible_fractions(objs):
    order = sorted(range(len(objs)), key=lambda i: objs[i].depth, reverse=True)
    covered = np.zeros(objs[0].mask.shape, bool)
    out = {}
    for i in order:
        m = objs[i].mask
        out[i] = np.count_nonzero(m & ~covered) / max(np.count_nonzero(m), 1)
        covered |= m
    return out


def acceptable(objs, cand, area_min=40):
    area = np.count_nonzero(cand.mask)
    if area < area_min:
        return False
    ys, xs = np.nonzero(cand.mask)
    if xs.max() - xs.min() < 4 or ys.max() - ys.min() < 4:
        return False
    for o in objs:
        if cand.crowd or o.crowd:
            if (o.mask & cand.mask).any():
                return False
        elif iou(o.mask, cand.mask) > MAX_NATURAL_IOU:
            return False
    trial = objs + [cand]
    vis = visible_fractions(trial)
    return all(v >= MIN_VISIBLE for v in vis.values())


def try_place(objs, factory, tries, required=False, what=""):
    for _ in range(tries):
        cand = factory()
        if cand is not None and acceptable(objs, cand):
            objs.append(cand)
            return cand
    if required:
        raise RuntimeError(f"could not place a required {what}")
    return None


def ground_x_off_road(sc, rng, y, margin):
    """An x on the ground at row y, away from the receding road."""
    for _ in range(20):
        x = rng.uniform(-0.1 * sc.w, 1.1 * sc.w)
        if sc.recede and y >= sc.recede[2]:
            xl, xr = sc.road_span(y)
            if xl - margin <= x <= xr + margin:
                continue
        return x
    return None


def ground_y(sc, rng, lo, hi):
    """A foot row on the ground (not on the crossing road)."""
    for _ in range(20):
        y = sc.y_of(rng.uniform(lo, hi))
        if sc.band and sc.band[0] - 2 <= y <= sc.band[1] + 2:
            continue
        return y
    return None


def layout(image_id, sc, rng):
    objs: list[Obj] = []
    if image_id in EMPTY_IDS:
        return objs
    road = rng.choice(4, p=(0.2, 0.42, 0.2, 0.18))  # none, receding, crossing band, T-junction
    if road in (2, 3):
        objs.append(make_band_road(sc, rng))
    if road in (1, 3):
        r = make_recede_road(sc, rng, y_top=sc.band_exact[1] + abs(sc.band_exact[2]) if road == 3 else None)
        if road == 3:
            r.mask &= ~objs[0].mask
        objs.append(r)

    if image_id in CROWD_IDS:
        def crowd():
            yb = sc.y_of(rng.uniform(0.06, 0.14))
            x0 = rng.uniform(-0.05, 0.6) * sc.w
            return make_crowd(sc, rng, yb, x0, x0 + rng.uniform(0.3, 0.45) * sc.w)
        try_place(objs, crowd, 300, required=True, what="crowd")

    if rng.random() < 0.3:
        def fence():
            y = ground_y(sc, rng, 0.12, 0.5)
            if y is None:
                return None
            u = sc.k * sc.s_of(y)
            x0 = rng.uniform(-0.2, 0.7) * sc.w
            x1 = x0 + rng.uniform(1.5, 4.0) * u
            if sc.recede and y >= sc.recede[2]:
                xl, xr = sc.road_span(y)
                if not (x1 < xl - 2 or x0 > xr + 2):
                    return None
            return make_fence(sc, rng, y, x0, x1)
        try_place(objs, fence, 40)

    for _ in range(min(int(rng.poisson(0.75)), 3)):
        def tree():
            y = ground_y(sc, rng, 0.02, 0.9)
            if y is None:
                return None
            x = ground_x_off_road(sc, rng, y, 0.1 * sc.k * sc.s_of(y))
            return None if x is None else make_tree(sc, rng, y, x, big=rng.random() < 0.2)
        try_place(objs, tree, 40)

    if rng.random() < (0.35 if road else 0.1):
        def sign():
            y = ground_y(sc, rng, 0.2, 0.9)
            if y is None:
                return None
            x = ground_x_off_road(sc, rng, y, 0.05 * sc.k * sc.s_of(y))
            return None if x is None else make_sign(sc, rng, y, x)
        try_place(objs, sign, 40)

    if road:
        for _ in range(min(int(rng.poisson(1.9)), 4)):
            def car():
                if sc.recede is not None and (sc.band is None or rng.random() < 0.6):
                    y = rng.uniform(max(sc.recede[2] + 6, sc.y_of(0.12)), sc.y_of(1.05))
                    xl, xr = sc.road_span(y)
                    u = sc.k * sc.s_of(y)
                    if xr - xl < 1.1 * u:
                        return None
                    x = rng.uniform(xl + 0.5 * u, xr - 0.5 * u)
                    return make_car(sc, rng, False, y, x)
                y0, y1, tilt = sc.band_exact
                y = rng.uniform(y0 + 0.45 * (y1 - y0), y1 - 0.1 * (y1 - y0))
                return make_car(sc, rng, True, y, rng.uniform(-0.15, 1.15) * sc.w)
            try_place(objs, car, 40)

    for _ in range(min(int(rng.poisson(1.0)), 3)):
        def person():
            y = ground_y(sc, rng, 0.12, 1.1)
            if y is None:
                return None
            x = ground_x_off_road(sc, rng, y, 0.0) if rng.random() < 0.8 else rng.uniform(0, sc.w)
            return None if x is None else make_person(sc, rng, y, x)
        try_place(objs, person, 40)

    if image_id in TYRE_IDS:
        for _ in range(1 + int(rng.random() < 0.3)):
            def tyre():
                y = ground_y(sc, rng, 0.45, 1.0)
                if y is None:
                    return None
                x = ground_x_off_road(sc, rng, y, 0.0)
                return None if x is None else make_tyre(sc, rng, y, x)
            try_place(objs, tyre, 300, required=True, what="tyre")

    if image_id in KITE_IDS:
        try_place(objs, lambda: make_kite(sc, rng), 300, required=True, what="kite")
    return objs


def composite(bg, objs, rng):
    img = bg.copy()
    for o in sorted(objs, key=lambda o: o.depth):
        img[o.mask] = o.paint[o.mask]
        if o.extra is not None:
            img[o.extra] = o.paint[o.extra]
    img = cv2.GaussianBlur(img, (0, 0), 0.55)
    img += rng.normal(0, 1.6, img.shape).astype(np.float32)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def encode_jpeg(rgb: np.ndarray, quality: int = QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1].copy()


# ---------------------------------------------------------------------------------------------
# perceptual hashes (to prove the clean splits do not leak and the planted copies do)


def _dct_matrix(n):
    k = np.arange(n)[:, None]
    return np.cos(np.pi * k * (2 * np.arange(n)[None, :] + 1) / (2 * n))


_DCT32 = _dct_matrix(32)


def phash(rgb: np.ndarray) -> np.ndarray:
    """64-bit DCT hash (as the ``imagehash.phash`` recipe: 32×32 grey, low 8×8, median)."""
    grey = np.asarray(Image.fromarray(rgb).convert("L").resize((32, 32), Image.Resampling.LANCZOS), np.float64)
    low = (_DCT32 @ grey @ _DCT32.T)[:8, :8]
    return (low > np.median(low)).ravel()


def dhash(rgb: np.ndarray) -> np.ndarray:
    grey = np.asarray(Image.fromarray(rgb).convert("L").resize((9, 8), Image.Resampling.LANCZOS), np.int32)
    return (grey[:, 1:] > grey[:, :-1]).ravel()


# ---------------------------------------------------------------------------------------------
# dataset assembly


@dataclass
class Rendered:
    image_id: int
    split: str
    file_name: str
    rgb: np.ndarray
    jpeg: bytes
    objs: list[Obj]


def split_of(image_id):
    start = 0
    for split, n in SPLITS:
        if image_id <= start + n:
            return split
        start += n
    raise ValueError(image_id)


def render_image(image_id, planted=None):
    rng = np.random.default_rng([SEED, image_id])
    w, h = SIZES[int(rng.integers(len(SIZES)))]
    sc = Scene(rng, w, h)
    objs = layout(image_id, sc, rng)
    bg = render_background(sc, np.random.default_rng([SEED, image_id, 1]))
    if planted is not None:
        objs = objs + [planted(sc, objs)]
    rgb = composite(bg, objs, np.random.default_rng([SEED, image_id, 2]))
    return sc, objs, rgb


def polygon_mask(bitmap: np.ndarray) -> Mask:
    h, w = bitmap.shape
    rings = bitmap_to_polygons(bitmap)
    mask = Mask.from_polygons(rings, h, w)
    assert np.array_equal(mask.to_bitmap(), bitmap), "bitmap_to_polygons is not lossless here"
    return mask


def object_mask(o: Obj) -> Mask:
    return Mask.from_bitmap(o.mask) if o.crowd else polygon_mask(o.mask)


def categories():
    return {cid: Category(cid, name, sup) for cid, name, sup in CLASSES}


def meta(kind):
    info = {"description": f"segdata synthetic sample dataset ({kind}), rendered by sample_datasets/make_samples.py",
            "version": "1.0", "contributor": "segdata", "url": "", "year": 2024}
    return {split: {"info": info, "licenses": [LICENSE]} for split, _ in SPLITS}


def write_dataset(out: Path, dataset: Dataset, files: dict[tuple[str, str], bytes]):
    report = coco.write(dataset, out, mask_encoding="keep", overwrite=True)
    assert not report.changes, report.counts()
    for (split, name), data in sorted(files.items()):
        path = out / "images" / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return report


def render_clean():
    total = sum(n for _, n in SPLITS)
    rendered = []
    for image_id in range(1, total + 1):
        _, objs, rgb = render_image(image_id)
        split = split_of(image_id)
        rendered.append(Rendered(image_id, split, f"scene_{image_id:04d}.jpg", rgb, encode_jpeg(rgb), objs))
    return rendered


def build_dataset(rendered):
    images, annotations = [], []
    ann_id = 0
    for r in rendered:
        h, w = r.rgb.shape[:2]
        images.append(ImageRecord(r.image_id, r.file_name, w, h, split=r.split, attributes={"license": 1}))
        for o in sorted(r.objs, key=lambda o: o.depth):
            ann_id += 1
            annotations.append(Annotation(ann_id, r.image_id, CAT[o.cls], object_mask(o), iscrowd=o.crowd,
                                          split=r.split))
    return images, annotations


# ---------------------------------------------------------------------------------------------
# the dirty variant


def resize_mask(mask: np.ndarray, w: int, h: int) -> np.ndarray:
    small = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
    return tidy(small, holes=True)


def build_dirty(rendered, clean_images, clean_anns):
    """Return (images, annotations, files, problems, post-edits) of the dirty sample."""
    images = [ImageRecord(i.id, i.file_name, i.width, i.height, split=i.split, attributes=dict(i.attributes))
              for i in clean_images]
    anns = [Annotation(a.id, a.image_id, a.category_id, a.mask, iscrowd=a.iscrowd, split=a.split)
            for a in clean_anns]
    files = {(r.split, r.file_name): r.jpeg for r in rendered}
    by_id = {r.image_id: r for r in rendered}
    anns_of = defaultdict(list)
    for a in anns:
        anns_of[a.image_id].append(a)
    next_image = max(i.id for i in images) + 1
    next_ann = max(a.id for a in anns) + 1
    problems = []
    used = set()

    def classes(r):
        return {o.cls for o in r.objs}

    train = [r for r in rendered if r.split == "train"]
    # 1. cross-split copies of train images (the sources: ordinary scenes, not the rare class)
    sources = [r for r in train if r.image_id not in KITE_IDS | CROWD_IDS | EMPTY_IDS and len(r.objs) >= 3]
    copies = (
        ("leak-near-duplicate", "test", "re-saved as JPEG at quality 60", sources[1]),
        ("leak-near-duplicate", "val", "resized to 0.8x (INTER_AREA), JPEG quality 85; masks resized too", sources[4]),
        ("leak-near-duplicate", "test", "brightness +15% (pixel values x1.15, clipped), JPEG quality 85", sources[8]),
        ("leak-exact-file", "val", "byte-identical copy of the JPEG under another name", sources[11]),
    )
    for code, split, how, src in copies:
        used.add(src.image_id)
        rgb = decode_jpeg(src.jpeg)
        h, w = rgb.shape[:2]
        scale = None
        if "quality 60" in how:
            data = encode_jpeg(rgb, 60)
        elif "resized" in how:
            scale = 0.8
            w, h = int(round(w * scale)), int(round(h * scale))
            data = encode_jpeg(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA))
        elif "brightness" in how:
            data = encode_jpeg(np.clip(np.round(rgb.astype(np.float32) * 1.15), 0, 255).astype(np.uint8))
        else:
            data = src.jpeg
        name = f"scene_{next_image:04d}.jpg"
        images.append(ImageRecord(next_image, name, w, h, split=split, attributes={"license": 1}))
        files[(split, name)] = data
        new_ids = []
        for a in anns_of[src.image_id]:
            mask = a.mask
            if scale is not None:
                bitmap = resize_mask(mask.to_bitmap(), w, h)
                mask = Mask.from_bitmap(bitmap) if a.iscrowd else polygon_mask(bitmap)
            anns.append(Annotation(next_ann, next_image, a.category_id, mask, iscrowd=a.iscrowd, split=split))
            new_ids.append(next_ann)
            next_ann += 1
        problems.append({"code": code, "split": split, "file_name": name, "image_id": next_image,
                         "annotation_ids": new_ids,
                         "what": f"copy of train {src.file_name} (image {src.image_id}, annotations "
                                 f"{[a.id for a in anns_of[src.image_id]]}): {how}",
                         "source": src, "data": data})
        next_image += 1

    def pick(split, cls, cond=lambda r, o: True):
        for r in rendered:
            if r.split != split or r.image_id in used or r.image_id in KITE_IDS | EMPTY_IDS:
                continue
            for o, a in zip(sorted(r.objs, key=lambda o: o.depth), anns_of[r.image_id]):
                if o.cls == cls and not o.crowd and cond(r, o):
                    used.add(r.image_id)
                    return r, o, a
        raise RuntimeError(f"no {cls} in {split} for a planted problem")

    # 2. a self-intersecting polygon: a sign plate's corners clicked in the wrong order (bow-tie)
    r, o, a = pick("train", "sign", lambda r, o: len(o.info["corners"]) == 4)
    c = o.info["corners"]
    ring = [float(round(v, 1)) for p in (c[0], c[2], c[1], c[3]) for v in p]
    a.mask = Mask.from_polygons([ring], r.rgb.shape[0], r.rgb.shape[1])
    problems.append({"code": "polygon-self-intersection", "split": "train", "file_name": r.file_name,
                     "image_id": r.image_id, "annotation_ids": [a.id],
                     "what": f"the {o.info['shape']} sign plate is one 4-point ring whose vertices are "
                             "out of order, so its edges cross (a bow-tie); its stored area and bbox are the "
                             "pixel values pycocotools rasterizes from that ring (consistent)"})

    # 3. a wrong stored bbox (edited into the JSON after writing)
    r, o, a = pick("val", "car")
    edits = [("val", a.id, "bbox")]
    problems.append({"code": "bbox-mismatch", "split": "val", "file_name": r.file_name, "image_id": r.image_id,
                     "annotation_ids": [a.id], "what": "stored bbox shifted by (+9, -6) px and 12 px too wide; "
                     "area and segmentation are right"})

    # 4. a wrong stored area
    r, o, a = pick("test", "tree")
    edits.append(("test", a.id, "area"))
    problems.append({"code": "area-mismatch", "split": "test", "file_name": r.file_name, "image_id": r.image_id,
                     "annotation_ids": [a.id], "what": "stored area is 1.5x the pixel count of the mask; "
                     "bbox and segmentation are right"})

    # 5. an exact duplicated instance (same mask, same class, new id)
    r, o, a = pick("train", "person")
    dup = Annotation(next_ann, a.image_id, a.category_id, a.mask, iscrowd=False, split="train")
    anns.insert(anns.index(a) + 1, dup)
    problems.append({"code": "instance-duplicate", "split": "train", "file_name": r.file_name,
                     "image_id": r.image_id, "annotation_ids": [a.id, next_ann],
                     "what": f"annotation {next_ann} repeats annotation {a.id} (person): same polygons, "
                             "same class, new id"})
    next_ann += 1

    # 6. a strongly overlapping pair of different classes: a person standing right in front of a car
    r, o, a = pick("train", "car", lambda r, o: o.info["u"] >= 28 and o.info["x0"] > 0
                   and o.info["x1"] < r.rgb.shape[1])
    target = o

    def planted(sc, objs):
        # search size and position for a mask IoU near 0.45, then draw that person
        best = None
        u_car = target.info["u"]
        for f in np.linspace(1.0, 3.0, 21):
            for dy in np.linspace(0.05, 0.6, 12):
                for dx in np.linspace(-0.2, 0.2, 5):
                    args = (target.info["yb"] + dy * u_car, target.info["cx"] + dx * u_car, f * u_car)
                    legs, body, head = person_masks(sc, None, *args, detached=False)
                    score = abs(iou(tidy(legs | body | head), target.mask) - 0.45)
                    if best is None or score < best[0] - 1e-9:
                        best = (score, args)
        yb, cx, u = best[1]
        return make_person(sc, np.random.default_rng([SEED, r.image_id, 3]), yb, cx, u=u, detached=False)

    sc, objs, rgb = render_image(r.image_id, planted=planted)
    person = objs[-1]
    data = encode_jpeg(rgb)
    files[(r.split, r.file_name)] = data
    overlap_iou = iou(person.mask, target.mask)
    new = Annotation(next_ann, r.image_id, CAT["person"], polygon_mask(person.mask), split="train")
    anns.insert(max(anns.index(x) for x in anns_of[r.image_id]) + 1, new)
    problems.append({"code": "instance-overlap", "split": "train", "file_name": r.file_name,
                     "image_id": r.image_id, "annotation_ids": [a.id, next_ann],
                     "what": f"person {next_ann} (added, drawn standing in front of the car) overlaps car {a.id} "
                             f"with mask IoU {overlap_iou:.3f}; the image file differs from the clean one",
                     "iou": overlap_iou})
    next_ann += 1
    return images, anns, files, problems, edits


def doc_width(doc, ann):
    return next(i["width"] for i in doc["images"] if i["id"] == ann["image_id"])


def apply_edits(out: Path, edits):
    for split, ann_id, what in edits:
        path = out / "annotations" / f"instances_{split}.json"
        doc = read_json(path)
        for ann in doc["annotations"]:
            if ann["id"] == ann_id:
                if what == "bbox":
                    x, y, w, h = ann["bbox"]
                    assert y >= 6 and x + 9 + w + 12 <= doc_width(doc, ann), "the README's shift must fit"
                    ann["bbox"] = [x + 9.0, y - 6.0, w + 12.0, h]
                else:
                    ann["area"] = int(round(ann["area"] * 1.5))
                break
        else:
            raise RuntimeError(f"annotation {ann_id} not found in {path}")
        path.write_bytes(dumps_json(doc))


# ---------------------------------------------------------------------------------------------
# statistics for the READMEs (computed from the files as written)


def overlap_pairs(dataset, exclude=()):
    pairs = []
    for image, anns in dataset.iter_images():
        anns = [a for a in anns if not a.iscrowd and a.mask is not None]
        for a, b in combinations(anns, 2):
            key = (image.split, min(a.id, b.id), max(a.id, b.id))
            if key in exclude:
                continue
            v = a.mask.iou(b.mask)
            if v > 0:
                pairs.append({"split": image.split, "image_id": image.id, "a": a, "b": b, "iou": v})
    crowd_hits = 0
    for image, anns in dataset.iter_images():
        for c in (a for a in anns if a.iscrowd):
            crowd_hits += sum(1 for a in anns if a is not c and
                              (a.mask.to_bitmap() & c.mask.to_bitmap()).any())
    return pairs, crowd_hits


def class_table(dataset):
    splits = [s for s, _ in SPLITS]
    inst = Counter((a.split, a.category_id) for a in dataset.annotations if not a.iscrowd)
    crowd = Counter((a.split, a.category_id) for a in dataset.annotations if a.iscrowd)
    imgs = Counter((split, cid) for split, _, cid in
                   {(a.split, a.image_id, a.category_id) for a in dataset.annotations})
    lines = ["| id | class | " + " | ".join(splits) + " | total | images with it |",
             "|---:|---|" + "---:|" * (len(splits) + 2)]
    for cid, name, _ in CLASSES:
        cells = []
        for s in splits:
            cell = str(inst[(s, cid)])
            if crowd[(s, cid)]:
                cell += f" (+{crowd[(s, cid)]} crowd)"
            cells.append(cell)
        total = sum(inst[(s, cid)] for s in splits)
        tc = sum(crowd[(s, cid)] for s in splits)
        nimg = sum(imgs[(s, cid)] for s in splits)
        lines.append(f"| {cid} | {name} | " + " | ".join(cells) + f" | {total}" + (f" (+{tc} crowd)" if tc else "")
                     + f" | {nimg} |")
    nimages = Counter(i.split for i in dataset.images)
    nanns = Counter(a.split for a in dataset.annotations)
    lines.append("| | **images** | " + " | ".join(str(nimages[s]) for s in splits) + f" | {len(dataset.images)} | |")
    lines.append("| | **annotations** | " + " | ".join(str(nanns[s]) for s in splits)
                 + f" | {len(dataset.annotations)} | |")
    return "\n".join(lines)


def overlap_summary(pairs, crowd_hits):
    diff = [p for p in pairs if p["a"].category_id != p["b"].category_id]
    same = [p for p in pairs if p["a"].category_id == p["b"].category_id]
    kinds = Counter(tuple(sorted((NAME[p["a"].category_id], NAME[p["b"].category_id]))) for p in pairs)
    top = max((p["iou"] for p in pairs), default=0.0)
    lines = [
        f"- **{len(pairs)}** pairs of non-crowd instances in the same image share at least one pixel "
        f"({len(diff)} of different classes, {len(same)} of the same class); "
        f"by split: " + ", ".join(f"{s} {sum(p['split'] == s for p in pairs)}" for s, _ in SPLITS) + ".",
        f"- Their mask IoU is at most **{top:.3f}**: "
        f"pairs with IoU >= 0.1: {sum(p['iou'] >= 0.1 for p in pairs)}; "
        f">= 0.2: {sum(p['iou'] >= 0.2 for p in pairs)}; >= 0.3: {sum(p['iou'] >= 0.3 for p in pairs)} "
        f"(the generator rejects layouts above IoU {MAX_NATURAL_IOU}).",
        "- By class pair: " + ", ".join(f"{a}/{b} {n}" for (a, b), n in sorted(kinds.items())) + ".",
        f"- Crowd regions (iscrowd=1) touch no other instance ({crowd_hits} contacts).",
    ]
    assert top < 0.3 and crowd_hits == 0
    return "\n".join(lines)


def hash_distance(a, b):
    return int(np.count_nonzero(a != b))


def closest_cross_split(out: Path, dataset, exclude=frozenset()):
    """Smallest pHash and dHash distances between images of different splits (read from the files)."""
    hashes = []
    for image in dataset.images:
        rgb = decode_jpeg((out / "images" / image.split / image.file_name).read_bytes())
        hashes.append((image.split, image.id, phash(rgb), dhash(rgb)))
    best = {"phash": 64, "dhash": 64}
    for (s1, i1, p1, d1), (s2, i2, p2, d2) in combinations(hashes, 2):
        if s1 != s2 and frozenset((i1, i2)) not in exclude:
            best["phash"] = min(best["phash"], hash_distance(p1, p2))
            best["dhash"] = min(best["dhash"], hash_distance(d1, d2))
    return best


def polygon_validity(out: Path):
    """What shapely says of every written polygon ring: keyhole touches vs real crossings."""
    from shapely.geometry import Polygon
    from shapely.validation import explain_validity

    found = Counter()
    for split, _ in SPLITS:
        doc = read_json(out / "annotations" / f"instances_{split}.json")
        for ann in doc["annotations"]:
            if isinstance(ann["segmentation"], list):
                for ring in ann["segmentation"]:
                    polygon = Polygon(list(zip(ring[::2], ring[1::2])))
                    if not polygon.is_valid:
                        reason = explain_validity(polygon).split("[")[0]
                        found[(reason, NAME[ann["category_id"]])] += 1
    return found


def validity_note(found):
    touch = sum(n for (reason, _), n in found.items() if reason == "Ring Self-intersection")
    cross = sum(n for (reason, _), n in found.items() if reason == "Self-intersection")
    classes = sorted({c for (reason, c) in found if reason == "Ring Self-intersection"})
    other = {k: n for k, n in found.items() if k[0] not in ("Ring Self-intersection", "Self-intersection")}
    assert not other, other
    return (f"shapely calls {touch} polygon ring(s) ({', '.join(classes) or 'none'}) invalid with "
            f"\"Ring Self-intersection\": the zero-width keyhole cuts that join a hole to its outline, "
            f"where the ring touches itself without crossing; {cross} ring(s) really cross themselves "
            f"(\"Self-intersection\").")


# ---------------------------------------------------------------------------------------------
# READMEs


#: The other formats of the clean sample: folder = format name, and whether images are copied
#: (formats that need the image to be complete: YOLO reads sizes from it, VOC, LabelMe and SA-1B hold it).
FORMATS = {"coco-panoptic": False, "instance-png": False, "semantic-png": False, "voc": True,
           "cityscapes": False, "yolo": True, "labelme": True, "sa1b": True}


def convert_formats(clean_out: Path) -> None:
    """Each format folder, made by the real ``segdata convert`` command from the COCO sample."""
    for name, copy_images in FORMATS.items():
        subprocess.run([sys.executable, "-m", "segdata", "convert", str(clean_out), str(HERE / name), "--to", name,
                        "--overwrite", "--workers", "1", "--json", *(["--copy-images"] if copy_images else [])],
                       check=True, capture_output=True)


def top_readme(clean, dirty, clean_pairs, dirty_pairs, clean_hash, problems, features, validity):
    format_rows = "\n".join(f"| `{name}/` | {name} | {'yes' if copy else 'no'} |" for name, copy in FORMATS.items())
    return f"""# Sample datasets

Two small synthetic instance-segmentation datasets in COCO layout, for trying
segdata's commands, for its tests and for screenshots.

| folder | what | images (train/val/test) | annotations |
|---|---|---|---|
| `coco/` | the clean sample | {'/'.join(str(sum(i.split == s for i in clean.images)) for s, _ in SPLITS)} | {len(clean.annotations)} |
| `coco-dirty/` | the same scenes with {len(problems)} planted problems, listed in [`coco-dirty/README.md`](coco-dirty/README.md) | {'/'.join(str(sum(i.split == s for i in dirty.images)) for s, _ in SPLITS)} | {len(dirty.annotations)} |

Layout of each: `annotations/instances_<split>.json` and `images/<split>/*.jpg`
(`segdata` reads either folder with `--format coco` or by sniffing).

The clean sample also comes in every other format segdata writes, each made
from `coco/` by `segdata convert coco <folder> --to <format>` (defaults:
category ids kept, smaller instances on top where a raster format needs one
owner per pixel, crowd regions as void or crowd segments):

| folder | format | images copied |
|---|---|---|
{format_rows}

## Provenance and licence

Every image and annotation is **synthetic**: rendered by
[`make_samples.py`](make_samples.py) with NumPy and OpenCV from fixed seeds,
no photographs, no third-party data.  Annotations are written with segdata's
own COCO writer (`segdata.converters.coco.write`), so `area` and `bbox` are
pycocotools' values for each mask.  The datasets are under the same licence as
the project, **MIT** (each JSON's `licenses` says so).

Regenerate (byte-identical output; no timestamps, no randomness from the
machine):

```
python sample_datasets/make_samples.py
```

It replaces `coco/`, `coco-dirty/`, the format folders and the READMEs.

## What the scenes hold

Street and field scenes, {SIZES[0][0]}x{SIZES[0][1]} to {SIZES[-1][0]}x{SIZES[-1][1]} pixels, JPEG quality {QUALITY}:
a sky gradient with clouds, hills, a textured ground (grain, crop rows,
perspective stripes or patches), and objects drawn in depth order.  Masks are
each object's full, un-occluded shape (instances may overlap, as in COCO);
ordinary objects are stored as polygons traced losslessly from the rendered
mask (`segdata.masks.bitmap_to_polygons`: pixel-corner vertices, holes joined
by zero-width keyhole cuts), crowd regions as compressed RLE.

| class | shape | notes |
|---|---|---|
| road | receding trapezoid or a crossing band | always touches the image border; T-junctions give two adjacent roads |
| car | rounded body + cabin + wheels (rear or side view) | on the roads |
| person | legs + ellipse body + round head | some heads are detached, making a **multi-part** mask; also **crowd** regions (iscrowd=1, RLE) of many small people |
| tree | blob of circles + trunk | |
| fence | 3+ disjoint pickets | **one multi-part annotation** per fence |
| sign | octagon / triangle / diamond / rectangle plate | the pole is drawn but not annotated |
| tyre | ring | a mask **with a hole** |
| kite | triangle in the sky | the **rare** class; its tail and string are not annotated |

Features of the clean sample (image ids): empty images (no annotations)
{features['empty']}; crowd regions {features['crowd']}; multi-part masks in
{features['multipart']} images; masks with holes {features['holes']}; instances
touching the border in {features['border']} images.

### Class table (instances per split; computed by the script)

Clean `coco/`:

{class_table(clean)}

Dirty `coco-dirty/` (adds the cross-split copies and the planted instances):

{class_table(dirty)}

### Natural overlaps

Annotations are full shapes, so objects in front of others overlap them
(cars on roads, people in front of trees...).  In the clean sample:

{overlap_summary(*clean_pairs)}

In `coco-dirty/`, leaving out the two planted pairs (`instance-duplicate`,
`instance-overlap`):

{overlap_summary(*dirty_pairs)}

### No leakage in the clean sample

Every clean image is its own rendering (seed `[{SEED}, image_id]`); file
names are unique across splits.  Closest pair of images in different splits:
pHash (64-bit DCT hash) Hamming distance **{clean_hash['phash']}**, dHash
distance **{clean_hash['dhash']}**; no two files share a SHA-256.

### Polygon validity

Polygons are traced with pixel-corner vertices and keyhole cuts; {validity}
"""


def dirty_readme(problems, dirty_pairs, hashes, best, validity):
    rows = []
    for i, p in enumerate(problems, 1):
        ids = ", ".join(str(a) for a in p["annotation_ids"])
        extra = ""
        if p["code"].startswith("leak-"):
            d = hashes[p["image_id"]]
            extra = f" pHash distance to the source {d['phash']}, dHash {d['dhash']}."
        rows.append(f"| {i} | `{p['code']}` | {p['split']} | `{p['file_name']}` | {p['image_id']} | {ids} | "
                    f"{p['what']}.{extra} |")
    table = "\n".join(rows)
    return f"""# coco-dirty: the sample with planted problems

The same generator and scenes as `../coco/` (see `../README.md`), with exactly
the {len(problems)} problems below planted; everything else (ids, file names,
every other image file and annotation) is identical to the clean sample.
The copies get new image ids and file names; their annotations are copies
of the source's (with new annotation ids).

| # | finding code | split | file_name | image id | annotation id(s) | what was planted |
|---:|---|---|---|---:|---|---|
{table}

Notes for checks:

- The byte-identical copy (`leak-exact-file`) is also, trivially, a
  near-duplicate of its source (distance 0); a near-duplicate check may report it too.
- The three near-duplicates and the exact copy each pair an image in `train`
  with one in `val` or `test` (hash distances are between the copy and its
  source, as decoded, at their own sizes).  Every other pair of images in
  different splits is far apart: closest pHash distance {best['phash']}, dHash
  {best['dhash']} (64-bit hashes).
- The self-intersecting polygon's stored `area` and `bbox` match the pixels
  pycocotools rasterizes from it; a shoelace (signed) area of the bow-tie would
  be near 0, which is not an `area-mismatch`.
- Polygon validity: {validity}  The one crossing ring is the planted bow-tie.
- The duplicated instance is a same-class pair with IoU 1.0; the planted
  `instance-overlap` pair is the only pair of instances of different classes
  with IoU >= 0.3 (natural overlaps stay at or below IoU {MAX_NATURAL_IOU}, see below).
- The images that carry a planted problem were not used as copy sources, so
  each problem appears once.

## Natural overlaps (not planted)

Besides the two planted pairs, these overlaps come from the scenes themselves
(objects in front of others; computed by the script from the written files):

{overlap_summary(*dirty_pairs)}

Regenerate with `python sample_datasets/make_samples.py` (from the repository root).
"""


# ---------------------------------------------------------------------------------------------


def features_of(dataset):
    empty, crowd, multipart, holes, border = [], [], set(), [], set()
    for image, alist in dataset.iter_images():
        if not alist:
            empty.append(image.id)
        for a in alist:
            bm = a.mask.to_bitmap()
            if a.iscrowd:
                crowd.append(image.id)
            elif n_parts(bm) > 1:
                multipart.add(image.id)
            if not a.iscrowd and has_hole(bm):
                holes.append(image.id)
            if bm[0].any() or bm[-1].any() or bm[:, 0].any() or bm[:, -1].any():
                border.add(image.id)
    return {"empty": ", ".join(map(str, sorted(empty))), "crowd": ", ".join(map(str, sorted(crowd))),
            "multipart": len(multipart), "holes": ", ".join(map(str, sorted(set(holes)))), "border": len(border)}


def check_clean(dataset, rendered):
    names = [i.file_name for i in dataset.images]
    assert len(set(names)) == len(names)
    shas = [hashlib.sha256(r.jpeg).hexdigest() for r in rendered]
    assert len(set(shas)) == len(shas)
    present = defaultdict(set)
    for a in dataset.annotations:
        present[a.split].add(a.category_id)
    assert present["train"] == set(NAME), "every class must be in train"
    assert CAT["kite"] in present["val"] | present["test"]
    assert not dataset.findings, dataset.findings


def main():
    rendered = render_clean()
    images, anns = build_dataset(rendered)
    clean_out, dirty_out = HERE / "coco", HERE / "coco-dirty"
    clean = Dataset(categories(), images, anns, meta=meta("clean"))
    write_dataset(clean_out, clean, {(r.split, r.file_name): r.jpeg for r in rendered})

    d_images, d_anns, d_files, problems, edits = build_dirty(rendered, images, anns)
    dirty = Dataset(categories(), d_images, d_anns, meta=meta("dirty"))
    write_dataset(dirty_out, dirty, d_files)
    apply_edits(dirty_out, edits)

    # statistics from the files as written
    clean_read = coco.read(clean_out)
    dirty_read = coco.read(dirty_out)
    check_clean(clean_read, rendered)
    assert not dirty_read.findings, dirty_read.findings
    planted_pairs = {(p["split"], min(p["annotation_ids"]), max(p["annotation_ids"])) for p in problems
                     if p["code"] in ("instance-duplicate", "instance-overlap")}
    clean_pairs = overlap_pairs(clean_read)
    dirty_pairs = overlap_pairs(dirty_read, exclude=planted_pairs)
    all_dirty, _ = overlap_pairs(dirty_read)
    assert sum(p["iou"] >= 0.3 for p in all_dirty if p["a"].category_id != p["b"].category_id) == 1

    best = closest_cross_split(clean_out, clean_read)
    copy_hashes, leak_pairs = {}, set()
    for p in problems:
        if p["code"].startswith("leak-"):
            rgb, src = decode_jpeg(p["data"]), decode_jpeg(p["source"].jpeg)
            copy_hashes[p["image_id"]] = {"phash": hash_distance(phash(rgb), phash(src)),
                                          "dhash": hash_distance(dhash(rgb), dhash(src))}
            leak_pairs.add(frozenset((p["image_id"], p["source"].image_id)))
    dirty_best = closest_cross_split(dirty_out, dirty_read, leak_pairs)
    clean_valid, dirty_valid = polygon_validity(clean_out), polygon_validity(dirty_out)
    assert not any(reason == "Self-intersection" for reason, _ in clean_valid)
    assert sum(n for (reason, _), n in dirty_valid.items() if reason == "Self-intersection") == 1

    convert_formats(clean_out)
    (dirty_out / "README.md").write_text(
        dirty_readme(problems, dirty_pairs, copy_hashes, dirty_best, validity_note(dirty_valid)), encoding="utf-8")
    (HERE / "README.md").write_text(
        top_readme(clean_read, dirty_read, clean_pairs, dirty_pairs, best, problems, features_of(clean_read),
                   validity_note(clean_valid)),
        encoding="utf-8")
    print(f"clean: {len(clean_read.images)} images, {len(clean_read.annotations)} annotations")
    print(f"dirty: {len(dirty_read.images)} images, {len(dirty_read.annotations)} annotations, "
          f"{len(problems)} planted problems")


if __name__ == "__main__":
    main()
