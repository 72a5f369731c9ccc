"""Stickman rendering: a float32 canvas with a part-ownership map, anti-aliased shaded
primitives (tapered capsules, polygons, an ellipsoid head), per-figure styles (skin, hair,
clothes with stripes), and the painting of a posed :class:`~bench.data.stickman_body.Body`.

Every painted pixel records which body *part* covers it (:data:`TORSO` ... :data:`SHIN`, or
:data:`OTHER` for anything that hides the annotated figure): the annotation reads keypoint
visibility from that map (:mod:`bench.data.stickman_coco`), so it always matches the pixels.
"""
from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

from .stickman_body import MOUTH, Body, apply_affine, head_point, perp

# --------------------------------------------------------------------------------------------
# Part ids written to the ownership map (0: background, 1..LAST_PART: the annotated figure).
# --------------------------------------------------------------------------------------------
TORSO, HEAD, NECK = 1, 2, 3
EAR = {+1: 4, -1: 5}
UARM = {+1: 6, -1: 7}
FARM = {+1: 8, -1: 9}
THIGH = {+1: 10, -1: 11}
SHIN = {+1: 12, -1: 13}
LAST_PART = 13
OTHER = 255  # anything that hides the annotated figure: occluders, the second figure


# --------------------------------------------------------------------------------------------
# Drawing: float32 BGR canvas + a part-ownership map, anti-aliased by signed distance.
# --------------------------------------------------------------------------------------------
class Canvas:
    """A float32 (H, W, 3) image in [0, 255] and a uint8 (H, W) part-ownership map."""

    def __init__(self, img: np.ndarray):
        self.img = img
        self.h, self.w = img.shape[:2]
        self.owner = np.zeros((self.h, self.w), dtype=np.uint8)

    def roi(self, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int, int, int] | None:
        x0, y0 = max(int(math.floor(lo[0])), 0), max(int(math.floor(lo[1])), 0)
        x1, y1 = min(int(math.ceil(hi[0])) + 1, self.w), min(int(math.ceil(hi[1])) + 1, self.h)
        return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None

    def blend(self, x0: int, y0: int, alpha: np.ndarray, color: np.ndarray, pid: int) -> None:
        """Paint ``color`` ((h, w, 3) or (3,)) with coverage ``alpha`` (h, w) at (x0, y0)."""
        sl = (slice(y0, y0 + alpha.shape[0]), slice(x0, x0 + alpha.shape[1]))
        dst = self.img[sl]
        dst += alpha[..., None] * (color - dst)
        if pid:
            self.owner[sl][alpha > 0.5] = pid


def _shade(rho: np.ndarray) -> np.ndarray:
    """Cylinder/sphere shading for normalised distance-to-axis ``rho`` in [0, 1]."""
    return 0.62 + 0.38 * np.sqrt(np.clip(1.0 - rho * rho, 0.0, 1.0))


def capsule(cv: Canvas, p: np.ndarray, q: np.ndarray, r1: float, r2: float,
            color: np.ndarray, pid: int, outline: float = 0.0,
            stripes: tuple | None = None) -> None:
    """A shaded tapered capsule from ``p`` (radius r1) to ``q`` (radius r2), pixels.

    ``stripes = (period_px, color2)`` paints bands across the capsule axis.
    """
    r = max(r1, r2) + 1.0
    box = cv.roi(np.minimum(p, q) - r, np.maximum(p, q) + r)
    if box is None:
        return
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(p[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(p[1])
    v = (q - p).astype(np.float32)
    l2 = float(v @ v) + 1e-6
    t = np.clip((xs * v[0] + ys * v[1]) / l2, 0.0, 1.0)
    ex, ey = xs - t * v[0], ys - t * v[1]
    d = np.sqrt(ex * ex + ey * ey)
    rad = r1 + t * (r2 - r1)
    alpha = np.clip(rad - d + 0.5, 0.0, 1.0)
    if not alpha.any():
        return
    col = np.broadcast_to(np.asarray(color, np.float32), alpha.shape + (3,))
    if stripes is not None:
        period, color2 = stripes
        band = (t * math.sqrt(l2) / period) % 1.0 < 0.5
        col = np.where(band[..., None], np.asarray(color2, np.float32), col)
    shade = _shade(d / rad)
    if outline > 0:
        shade = np.where(rad - d < outline, shade * 0.5, shade)
    cv.blend(x0, y0, alpha, col * shade[..., None], pid)


def _polygon(cv: Canvas, poly: np.ndarray, color: np.ndarray, pid: int, axis: tuple,
             outline: float = 0.0, stripes: tuple | None = None) -> None:
    """A filled polygon (N, 2) shaded like a cylinder around ``axis = (p, q, half_width)``."""
    box = cv.roi(poly.min(0) - 1, poly.max(0) + 1)
    if box is None:
        return
    x0, y0, x1, y1 = box
    local = np.round((poly - [x0, y0]) * 16).astype(np.int32)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(mask, [local], 255, cv2.LINE_AA, shift=4)
    alpha = mask.astype(np.float32) / 255.0
    p, q, half = axis
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(p[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(p[1])
    v = (q - p).astype(np.float32)
    l2 = float(v @ v) + 1e-6
    t = np.clip((xs * v[0] + ys * v[1]) / l2, 0.0, 1.0)
    d = np.abs(xs * v[1] - ys * v[0]) / math.sqrt(l2)
    col = np.broadcast_to(np.asarray(color, np.float32), alpha.shape + (3,))
    if stripes is not None:
        period, color2 = stripes
        band = (t * math.sqrt(l2) / period) % 1.0 < 0.5
        col = np.where(band[..., None], np.asarray(color2, np.float32), col)
    shade = _shade(np.clip(d / half, 0, 1))
    if outline > 0:
        edge = np.zeros_like(mask)
        cv2.polylines(edge, [local], True, 255, max(1, round(outline * 2)), cv2.LINE_AA, shift=4)
        shade = shade * (1.0 - 0.5 * edge.astype(np.float32) / 255.0)
    cv.blend(x0, y0, alpha, col * shade[..., None], pid)


def _head(cv: Canvas, c: np.ndarray, up: np.ndarray, rx: float, ry: float, psi: float,
          skin: np.ndarray, hair: np.ndarray, hair_line: float, pid: int,
          outline: float) -> None:
    """A shaded ellipsoid head; hair covers the top and the back of the sphere."""
    r = max(rx, ry) + 1.0
    box = cv.roi(c - r, c + r)
    if box is None:
        return
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(c[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(c[1])
    right = perp(up)
    a = (xs * right[0] + ys * right[1]) / rx
    b = (xs * up[0] + ys * up[1]) / ry
    rho = np.sqrt(a * a + b * b)
    alpha = np.clip((1.0 - rho) * min(rx, ry) + 0.5, 0.0, 1.0)
    if not alpha.any():
        return
    depth = np.sqrt(np.clip(1.0 - a * a - b * b, 0.0, 1.0))
    cp, sp = math.cos(math.radians(psi)), math.sin(math.radians(psi))
    c_local = a * sp + depth * cp  # towards the face, in head coordinates
    is_hair = (b > hair_line + 0.3 * c_local) | (c_local < -0.25)
    col = np.where(is_hair[..., None], np.asarray(hair, np.float32),
                   np.asarray(skin, np.float32))
    shade = _shade(np.clip(rho, 0, 1))
    if outline > 0:
        shade = np.where((1.0 - rho) * min(rx, ry) < outline, shade * 0.5, shade)
    cv.blend(x0, y0, alpha, col * shade[..., None], pid)


def dot(cv: Canvas, p: np.ndarray, r: float, color: np.ndarray, pid: int = 0) -> None:
    """A shaded disc of radius ``r`` at ``p`` (pixels)."""
    capsule(cv, p, p, r, r, color, pid)


# --------------------------------------------------------------------------------------------
# Styles: colours and clothes.
# --------------------------------------------------------------------------------------------
_SKIN = np.array([[189, 224, 255], [148, 193, 234], [120, 170, 224], [90, 135, 198],
                  [60, 100, 160], [45, 70, 110]], dtype=np.float32)  # BGR
_HAIR = np.array([[20, 20, 25], [30, 45, 70], [40, 80, 130], [90, 160, 210], [40, 60, 160],
                  [150, 150, 150]], dtype=np.float32)


def hsv(rng: np.random.Generator, s=(0.35, 1.0), v=(0.3, 1.0)) -> np.ndarray:
    """A random BGR colour (float32, 0-255): uniform hue, saturation in ``s``, value in ``v``."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s), rng.uniform(*v))
    return np.array([b, g, r], dtype=np.float32) * 255.0


def sample_style(rng: np.random.Generator) -> dict:
    """A figure's look: skin, hair, clothes (leotard, sleeves, legs, stripes), far-side shade."""
    skin = np.clip(_SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.1), 0, 255)
    top, bottom = hsv(rng), hsv(rng)
    if rng.random() < 0.35:  # leotard: one colour from shoulders to hips
        bottom = top
    sleeves = rng.choice(3, p=[0.35, 0.3, 0.35])  # none, short, long
    legs = rng.choice(3, p=[0.3, 0.3, 0.4])       # bare, shorts, tights/long
    stripes = {}
    if rng.random() < 0.3:
        stripes['top'] = hsv(rng)
    if rng.random() < 0.2:
        stripes['bottom'] = hsv(rng)
    return dict(
        skin=skin, hair=_HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2),
        hair_line=rng.uniform(0.15, 0.55), top=top, bottom=bottom,
        uarm=top if sleeves >= 1 else skin, farm=top if sleeves == 2 else skin,
        thigh=bottom if legs >= 1 else skin, shin=bottom if legs == 2 else skin,
        shoe=hsv(rng, v=(0.1, 0.9)), stripes=stripes, stripe_period=rng.uniform(0.03, 0.06),
        far_shade=rng.uniform(0.65, 0.8))


# --------------------------------------------------------------------------------------------
# Rendering a body.
# --------------------------------------------------------------------------------------------
def draw_body(cv: Canvas, body: Body, style: dict, aff: np.ndarray,
              main: bool = True) -> None:
    """Paint ``body`` through ``aff`` (unit -> px); ``main=False`` owns pixels as
    :data:`OTHER`."""
    scale = float(np.sqrt(abs(np.linalg.det(aff[:, :2]))))
    rot = aff[:, :2] / scale
    P = {k: apply_affine(aff, v) for k, v in body.pts.items()}
    R = {k: (tuple(x * scale for x in v) if isinstance(v, tuple) else v * scale)
         for k, v in body.radii.items()}
    pid = (lambda p: p) if main else (lambda p: OTHER)  # noqa: E731
    outline = max(0.6, 0.012 * scale)
    period = style['stripe_period'] * scale

    def stripes(part: str):
        key = 'top' if part in ('top', 'uarm', 'farm') else 'bottom'
        on = key in style['stripes'] and style[part] is style[key]
        return (period, style['stripes'][key]) if on else None

    def colour(part: str, side: int) -> np.ndarray:
        c = np.asarray(style[part], np.float32)
        return c * style['far_shade'] if side and side == body.far_side else c

    def arm(s: int) -> None:
        capsule(cv, P[f'sh{s}'], P[f'el{s}'], *R['uarm'], colour('uarm', s), pid(UARM[s]),
                outline, stripes('uarm'))
        capsule(cv, P[f'el{s}'], P[f'wr{s}'], *R['farm'], colour('farm', s), pid(FARM[s]),
                outline, stripes('farm'))
        dot(cv, P[f'hand{s}'], R['hand'], colour('skin', s), pid(FARM[s]))

    def leg(s: int) -> None:
        capsule(cv, P[f'hip{s}'], P[f'kn{s}'], *R['thigh'], colour('thigh', s),
                pid(THIGH[s]), outline, stripes('thigh'))
        capsule(cv, P[f'an{s}'], P[f'toe{s}'], R['foot'], R['foot'] * 0.8, colour('shoe', s),
                pid(SHIN[s]), outline)
        capsule(cv, P[f'kn{s}'], P[f'an{s}'], *R['shin'], colour('shin', s), pid(SHIN[s]),
                outline, stripes('shin'))

    def torso() -> None:
        up1 = P['waist'] - P['pelvis']
        up1 /= np.linalg.norm(up1) + 1e-9
        up2 = P['neck'] - P['waist']
        up2 /= np.linalg.norm(up2) + 1e-9
        r1, r2 = perp(up1), perp(up2)
        hip_c = P['pelvis'] - up1 * R['hip_w'] * 0.3
        chest = [P['neck'] - up2 * R['shoulder_w'] * 0.05 + r2 * R['shoulder_w'],
                 P['waist'] + r1 * R['waist_w'], P['waist'] - r1 * R['waist_w'],
                 P['neck'] - up2 * R['shoulder_w'] * 0.05 - r2 * R['shoulder_w']]
        pelvis = [P['waist'] + r1 * R['waist_w'] * 1.02, hip_c + r1 * R['hip_w'],
                  hip_c - up1 * R['hip_w'] * 0.4, hip_c - r1 * R['hip_w'],
                  P['waist'] - r1 * R['waist_w'] * 1.02]
        _polygon(cv, np.array(pelvis), colour('bottom', 0), pid(TORSO),
                 (P['pelvis'], P['waist'], R['hip_w'] + 1e-3), outline, stripes('bottom'))
        _polygon(cv, np.array(chest), colour('top', 0), pid(TORSO),
                 (P['waist'], P['neck'], R['shoulder_w'] + 1e-3), outline, stripes('top'))

    def head() -> None:
        up = rot @ body.head_up
        c, rx, ry = P['head'], R['head_rx'], R['head_ry']
        capsule(cv, P['neck'], c, R['neck'], R['neck'], style['skin'], pid(NECK), outline)
        kp = apply_affine(aff, body.kpts[:5])
        skin = np.asarray(style['skin'], np.float32)
        for s, idx in ((1, 3), (-1, 4)):  # ears stick out of the head outline
            if not body.hidden[idx]:
                dot(cv, kp[idx], R['ear'], skin * 0.85, pid(EAR[s]))
        _head(cv, c, up, rx, ry, body.psi, skin, style['hair'], style['hair_line'],
              pid(HEAD), outline)
        if not body.hidden[0]:
            dot(cv, kp[0], max(0.7, 0.14 * rx), skin * 0.75, pid(HEAD))
        mouth, depth = head_point(c, up, rx, ry, body.psi, MOUTH)
        if depth > 0.3:
            dot(cv, mouth, max(0.6, 0.1 * rx), np.array([60, 60, 150], np.float32))
        for idx in (1, 2):
            if not body.hidden[idx]:
                dot(cv, kp[idx], max(0.7, 0.13 * rx), np.array([25, 20, 20], np.float32))

    for part in body.draw_order:
        if part == 'torso':
            torso()
        elif part == 'head':
            head()
        elif part[0] == 'arm':
            arm(part[1])
        else:
            leg(part[1])
