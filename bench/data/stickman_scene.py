"""Stickman scenes: everything around the annotated figure that makes the task harder.

Backgrounds (gradient, low-frequency noise, gym-like stripes or checkerboards, a floor mat,
random clutter shapes), limb-like distractor sticks, and occluders (balls, boxes, blobs,
beams) that own their pixels as :data:`~bench.data.stickman_render.OTHER`, so the keypoints
they cover are labelled hidden (``v=1``).
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from .stickman_body import rotate
from .stickman_render import OTHER, Canvas, capsule, hsv


@lru_cache(maxsize=4)
def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs / max(w - 1, 1), ys / max(h - 1, 1)


def background(rng: np.random.Generator, w: int, h: int, clutter_shapes: int) -> np.ndarray:
    """(h, w, 3) uint8: gradient + low-frequency noise + pattern + up to ``clutter_shapes``
    random shapes."""
    xs, ys = _grid(w, h)
    c0, c1 = hsv(rng, s=(0.0, 0.7), v=(0.2, 0.95)), hsv(rng, s=(0.0, 0.7), v=(0.2, 0.95))
    ang = rng.uniform(0, 2 * math.pi)
    g = xs * math.cos(ang) + ys * math.sin(ang)
    g = (g - g.min()) / (np.ptp(g) + 1e-6)
    img = c0 + g[..., None] * (c1 - c0)
    gh, gw = rng.integers(3, 9, 2)
    lowf = cv2.resize(rng.normal(0, 1, (gh, gw, 3)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    img += lowf * rng.uniform(5, 30)
    if rng.random() < 0.35:  # stripes or a checkerboard, like gym walls and mats
        f = rng.uniform(3, 12)
        a = rng.uniform(0, math.pi)
        u = (xs * math.cos(a) + ys * math.sin(a)) * f
        pat = (u % 1.0 < 0.5).astype(np.float32)
        if rng.random() < 0.5:
            v = (-xs * math.sin(a) + ys * math.cos(a)) * f
            pat = np.logical_xor(pat > 0, v % 1.0 < 0.5).astype(np.float32)
        img += (pat[..., None] - 0.5) * rng.uniform(10, 40)
    if rng.random() < 0.4:  # a floor mat: one side of a random line
        p = rng.uniform(0, 1, 2)
        a = rng.uniform(0, 2 * math.pi)
        side = (xs - p[0]) * math.cos(a) + (ys - p[1]) * math.sin(a) > 0
        img = np.where(side[..., None], img * 0.4 + hsv(rng, v=(0.3, 0.9)) * 0.6, img)
    out = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, clutter_shapes + 1)):
        _clutter_shape(rng, out)
    return out


def _clutter_shape(rng: np.random.Generator, img: np.ndarray) -> None:
    """Draw one random shape with OpenCV (anti-aliased, 8-bit) in place."""
    h, w = img.shape[:2]
    m = min(w, h)
    color = tuple(float(x) for x in hsv(rng, s=(0.0, 1.0), v=(0.1, 1.0)))
    c = rng.uniform(-0.1, 1.1, 2) * [w, h]
    size = rng.uniform(0.05, 0.3, 2) * m
    thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
    kind = rng.integers(4)
    ci = tuple(int(v) for v in np.round(c * 16))
    if kind == 0:
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (float(size[0]), float(size[1])),
                             float(rng.uniform(0, 180))))
        pts = [np.round(box * 16).astype(np.int32)]
        if thick < 0:
            cv2.fillPoly(img, pts, color, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(img, pts, True, color, thick, cv2.LINE_AA, shift=4)
    elif kind == 1:
        axes = tuple(int(v) for v in np.round(size * 8))
        cv2.ellipse(img, ci, axes, float(rng.uniform(0, 180)), 0, 360, color, thick,
                    cv2.LINE_AA, shift=4)
    elif kind == 2:
        tri = c + rng.uniform(-1, 1, (3, 2)) * size.max()
        pts = [np.round(tri * 16).astype(np.int32)]
        if thick < 0:
            cv2.fillPoly(img, pts, color, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(img, pts, True, color, thick, cv2.LINE_AA, shift=4)
    else:
        q = c + rng.uniform(-1, 1, 2) * size.max() * 2
        cv2.line(img, ci, tuple(int(v) for v in np.round(q * 16)), color,
                 max(1, abs(thick)), cv2.LINE_AA, shift=4)


def distractor_limb(rng: np.random.Generator, cv: Canvas, style: dict, scale: float) -> None:
    """One or two shaded capsules that look like an arm or a leg without a body."""
    p = rng.uniform(0, 1, 2) * [cv.w, cv.h]
    r = rng.uniform(0.02, 0.045) * scale
    color = style[('uarm', 'farm', 'thigh', 'shin', 'skin')[rng.integers(5)]]
    d = rotate(np.array([1.0, 0.0]), rng.uniform(0, 360))
    for _ in range(rng.integers(1, 3)):
        q = p + d * rng.uniform(0.12, 0.25) * scale
        capsule(cv, p, q, r, r * 0.8, color, 0, max(0.6, 0.012 * scale))
        p, r, d = q, r * 0.8, rotate(d, rng.uniform(-120, 120))


def occluder(rng: np.random.Generator, cv: Canvas, at: np.ndarray, scale: float) -> None:
    """A ball, a box, a blob or a beam over the point ``at`` (pixels); owns its pixels."""
    color = hsv(rng, s=(0.2, 1.0), v=(0.25, 1.0))
    kind = rng.integers(4)
    c = at + rng.normal(0, 0.04 * scale, 2)
    if kind == 0:  # ball
        r = rng.uniform(0.07, 0.15) * scale
        capsule(cv, c, c, r, r, color, OTHER, max(0.6, 0.01 * scale))
        return
    if kind == 3:  # beam / bar crossing the figure
        d = rotate(np.array([1.0, 0.0]), rng.uniform(0, 180)) * scale
        r = rng.uniform(0.025, 0.06) * scale
        stripes = (rng.uniform(0.05, 0.15) * scale, hsv(rng)) if rng.random() < 0.4 else None
        capsule(cv, c - d, c + d, r, r, color, OTHER, max(0.6, 0.01 * scale), stripes)
        return
    size = rng.uniform(0.1, 0.3, 2) * scale
    mask = np.zeros((cv.h, cv.w), dtype=np.uint8)
    ci = tuple(int(v) for v in np.round(c * 16))
    if kind == 1:  # box
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (float(size[0]), float(size[1])),
                             float(rng.uniform(0, 180))))
        cv2.fillPoly(mask, [np.round(box * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    else:  # blob
        axes = tuple(int(v) for v in np.round(size * 8))
        cv2.ellipse(mask, ci, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA,
                    shift=4)
    alpha = mask.astype(np.float32) / 255.0
    shade = 0.8 + 0.2 * cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.05 * scale))
    cv.blend(0, 0, alpha, color * shade[..., None], OTHER)
