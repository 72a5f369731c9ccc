"""Stickman gymnasts: the benchmark's embedded default dataset.

A deterministic generator of synthetic images of human-like figures in gymnastic poses
(splits, handstands, bridges, cartwheels, tucks, ...), annotated in COCO keypoint format so
that ``mmpose.datasets.CocoDataset`` loads it unchanged. Layout written by :func:`generate`::

    out_dir/
        images/train/000000.png ...        # one annotated figure per image
        images/val/...  images/test/...
        annotations/train.json  val.json  test.json

``file_name`` in the JSON is relative to ``images/`` (``"train/000000.png"``), so a top-down
CocoDataset is built with ``data_root=out_dir, ann_file='annotations/train.json',
data_prefix=dict(img='images/')``.

Rendering model (what makes the task hard-ish but learnable):

- a 2D kinematic body (spine bend, neck tilt, shoulder/elbow/hip/knee angles with limits wide
  enough for gymnastics, per-segment foreshortening) rotated uniformly over 360 degrees;
- a body yaw (front, back or near-profile view) that sets which side is the figure's own left
  and the depth order of the limbs; the head is a shaded sphere whose eyes, ears and nose
  follow the head yaw, and whose hair tells front from back (the only left/right cue, as in
  real images);
- bodies are filled shapes (shaded tapered capsules, a torso polygon, outlines, clothes with
  stripes) in per-figure colours, over cluttered backgrounds with limb-like distractor sticks,
  a second partially visible unannotated figure, occluders (balls, boxes, beams), truncation
  at the border, blur and noise.

Visibility follows COCO: 2 = visible, 1 = labelled but hidden (under an occluder, another
limb, or on the far side of the head), 0 = outside the image (written as ``x = y = 0``). It is
read from a per-pixel part-ownership map drawn with the image, so it is always consistent
with the pixels.

Note:
    Every image is rendered from ``np.random.default_rng([seed, split, index])`` alone, so the
    output does not depend on ``workers``, on the order of rendering, or on the split sizes;
    PNGs and JSONs are byte-identical between runs on one machine (float rounding of the
    numpy/OpenCV build may differ across machines).
"""
from __future__ import annotations

import colorsys
import json
import math
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass
from functools import lru_cache, partial
from pathlib import Path

import cv2
import numpy as np

KEYPOINT_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
    'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle')
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
#: 0-based COCO limbs (the order of ``configs/_base_/datasets/coco.py``).
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
                 (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
                 (3, 5), (4, 6))
FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
SPLITS = ('train', 'val', 'test')
_SPLIT_CODE = {'train': 0, 'val': 1, 'test': 2}


@dataclass(frozen=True)
class StickmanConfig:
    """What to generate. The defaults are the benchmark's default dataset.

    Args:
        seed (int): Master seed; image ``i`` of a split is drawn from
            ``default_rng([seed, split_code, i])``. Default: 0.
        image_size (tuple[int, int]): ``(w, h)`` of every image. Default: ``(128, 128)``.
        train / val / test (int): Number of images (= annotated figures) per split.
            Defaults: 1500 / 200 / 300.
        scale_range (tuple[float, float]): Standing height of the figure as a fraction of
            ``min(w, h)``; a figure that would not fit (a split, arms overhead) is shrunk
            unless it is truncated on purpose. Default: ``(0.55, 0.9)``.
        clutter_shapes (int): Maximum number of random background shapes. Default: 6.
        distractor_limbs (int): Maximum number of limb-like distractor sticks (1-2 shaded
            segments with figure-like colours). Default: 3.
        occluder_prob (float): Probability of an object (ball, box, beam) drawn over part of
            the figure; keypoints under it are labelled ``v=1``. Default: 0.3.
        second_figure_prob (float): Probability of a second, partially visible figure that
            is NOT annotated (in front of the figure in a third of the cases). Default: 0.3.
        truncation_prob (float): Probability that the figure is placed partly outside the
            image (those keypoints get ``v=0``). Default: 0.15.
        blur_prob (float): Probability of a Gaussian blur (sigma 0.4-1.2 px). Default: 0.3.
        noise_std (float): Maximum std of the additive Gaussian pixel noise, in grey levels
            (0-255); each image draws its std uniformly in ``[0, noise_std]``. Default: 6.0.
        back_view_prob (float): Probability of a figure seen from the back (no face, hair
            over the head, left/right mirrored). Default: 0.2.
        profile_prob (float): Probability of a near-profile view (yaw 50-80 degrees, narrow
            shoulders, far limbs behind the torso). Default: 0.15.
        min_keypoints (int): Minimum number of labelled (``v>0``) keypoints; truncated
            placements with fewer are resampled. Default: 8.
        max_rotation (float): Whole-body rotation is uniform in
            [-max_rotation, max_rotation] degrees; 180 (default) covers every orientation
            (handstands, cartwheels), smaller values keep figures closer to upright.
    """

    seed: int = 0
    image_size: tuple[int, int] = (128, 128)
    train: int = 1500
    val: int = 200
    test: int = 300
    scale_range: tuple[float, float] = (0.55, 0.9)
    clutter_shapes: int = 6
    distractor_limbs: int = 3
    occluder_prob: float = 0.3
    second_figure_prob: float = 0.3
    truncation_prob: float = 0.15
    blur_prob: float = 0.3
    noise_std: float = 6.0
    back_view_prob: float = 0.2
    profile_prob: float = 0.15
    min_keypoints: int = 8
    max_rotation: float = 180.0

    def __post_init__(self) -> None:
        w, h = self.image_size
        if min(w, h) < 16:
            raise ValueError(f'image_size must be at least 16x16, got {self.image_size}')
        for split in SPLITS:
            if getattr(self, split) < 1:
                raise ValueError(f'{split} must be >= 1, got {getattr(self, split)}')
        lo, hi = self.scale_range
        if not 0 < lo <= hi <= 2:
            raise ValueError(f'scale_range must satisfy 0 < lo <= hi <= 2, got {self.scale_range}')
        for name in ('occluder_prob', 'second_figure_prob', 'truncation_prob', 'blur_prob',
                     'back_view_prob', 'profile_prob'):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')
        if self.back_view_prob + self.profile_prob > 1:
            raise ValueError('back_view_prob + profile_prob must be <= 1')
        if self.noise_std < 0 or self.clutter_shapes < 0 or self.distractor_limbs < 0:
            raise ValueError('noise_std, clutter_shapes and distractor_limbs must be >= 0')
        if not 1 <= self.min_keypoints <= NUM_KEYPOINTS:
            raise ValueError(f'min_keypoints must be in [1, {NUM_KEYPOINTS}]')

    def counts(self) -> dict[str, int]:
        """Images per split, in :data:`SPLITS` order."""
        return {split: getattr(self, split) for split in SPLITS}


# --------------------------------------------------------------------------------------------
# Part ownership: which drawn part may "own" the pixel under each keypoint for it to be visible.
# --------------------------------------------------------------------------------------------
_TORSO, _HEAD, _NECK = 1, 2, 3
_EAR = {+1: 4, -1: 5}
_UARM = {+1: 6, -1: 7}
_FARM = {+1: 8, -1: 9}
_THIGH = {+1: 10, -1: 11}
_SHIN = {+1: 12, -1: 13}
_LAST_PART = 13
_OTHER = 255  # anything that hides the annotated figure: occluders, the second figure
# keypoint indices per side: shoulder, elbow, wrist, hip, knee, ankle, ear, eye
_SIDE_KPTS = {+1: (5, 7, 9, 11, 13, 15, 3, 1), -1: (6, 8, 10, 12, 14, 16, 4, 2)}


@lru_cache(maxsize=1)
def _owner_table() -> np.ndarray:
    """(17, 256) bool: ``table[k, part]`` is True when keypoint k is seen on that part."""
    t = np.zeros((NUM_KEYPOINTS, 256), dtype=bool)
    t[0, _HEAD] = True
    for side, (sh, el, wr, hip, kn, an, ear, eye) in _SIDE_KPTS.items():
        t[eye, _HEAD] = True
        t[ear, [_HEAD, _EAR[side]]] = True
        t[sh, [_TORSO, _NECK, _UARM[side]]] = True
        t[el, [_UARM[side], _FARM[side]]] = True
        t[wr, _FARM[side]] = True
        t[hip, [_TORSO, _THIGH[side]]] = True
        t[kn, [_THIGH[side], _SHIN[side]]] = True
        t[an, _SHIN[side]] = True
    return t


# --------------------------------------------------------------------------------------------
# Body model, in a unit frame: pelvis at the origin, standing height 1, image axes (y down).
# --------------------------------------------------------------------------------------------
_UP = np.array([0.0, -1.0])

# name, weight, arm abduction, elbow, leg abduction, knee, spine bend (degrees). Abduction is
# measured from "hanging down" towards the limb's own side (0 = down, 90 = T, 180 = overhead),
# bends are relative to the proximal segment, so the left/right parameterisation is mirrored.
_POSES = (
    ('stand', 0.12, (5, 50), (-20, 70), (0, 15), (-10, 20), (-10, 10)),
    ('arms_up', 0.14, (145, 185), (-20, 25), (-5, 20), (-15, 25), (-15, 15)),
    ('star', 0.14, (95, 150), (-25, 25), (28, 60), (-15, 15), (-10, 10)),
    ('split', 0.12, (60, 180), (-30, 40), (75, 100), (-10, 15), (-15, 15)),
    ('bridge', 0.10, (150, 190), (-15, 15), (0, 30), (60, 110), (20, 45)),
    ('tuck', 0.10, (-20, 70), (60, 140), (10, 45), (-150, -95), (-25, 25)),
    ('needle', 0.10, (120, 190), (-20, 20), (110, 175), (-15, 15), (-20, 20)),
    ('random', 0.18, (-40, 190), (-60, 150), (-30, 110), (-140, 60), (-40, 40)),
)
_POSE_P = np.array([p[1] for p in _POSES]) / sum(p[1] for p in _POSES)

# head-local sphere points (a = figure's left, b = up, c = towards the face)
_FACE = {
    0: (0.0, -0.2, 1.05),        # nose (sticks out of the sphere)
    1: (0.38, 0.15, 0.9), 2: (-0.38, 0.15, 0.9),  # eyes
    3: (1.0, 0.05, -0.1), 4: (-1.0, 0.05, -0.1),  # ears
}
_MOUTH = (0.0, -0.55, 0.82)
# a face point is drawn and visible when its depth (towards the viewer) exceeds this
_FACE_DEPTH = {0: -0.15, 1: 0.05, 2: 0.05, 3: -0.3, 4: -0.3}


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _perp(u: np.ndarray) -> np.ndarray:
    # for an upright figure (u = up) this is +x: the figure's left seen from the front
    return np.array([-u[1], u[0]])


@dataclass
class _Body:
    """A posed body in the unit frame (all lengths in standing heights)."""

    pts: dict          # name -> (2,) point
    radii: dict        # name -> radius
    kpts: np.ndarray   # (17, 2) keypoints
    hidden: np.ndarray  # (17,) bool: on the far side of the head sphere
    yaw: float         # body yaw in degrees (0 = facing the viewer)
    psi: float         # head yaw in degrees
    head_up: np.ndarray  # (2,) unit vector from neck to the top of the head
    draw_order: tuple  # limb names ('arm', side) / ('leg', side) / 'torso' / 'head' in paint order
    far_side: int      # side whose limbs are shaded darker (0: none)


def _sample_view(rng: np.random.Generator, back_p: float, profile_p: float) -> float:
    u = rng.random()
    side = 1.0 if rng.random() < 0.5 else -1.0
    if u < back_p:
        return 180.0 + rng.uniform(-45, 45)
    if u < back_p + profile_p:
        return side * rng.uniform(50, 80) + (180.0 if rng.random() < 0.3 else 0.0)
    return rng.uniform(-45, 45)


def _sample_body(rng: np.random.Generator, back_p: float, profile_p: float) -> _Body:
    """Draw proportions, view and pose; return the posed body in the unit frame."""
    girth = rng.uniform(0.8, 1.25)
    jit = lambda x: x * rng.uniform(0.92, 1.08)  # noqa: E731
    yaw = _sample_view(rng, back_p, profile_p)
    cos_y, sin_y = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    # lateral offsets shrink with yaw; the sign mirrors left/right for back views
    lat = math.copysign(max(abs(cos_y), 0.3), cos_y)

    k = rng.choice(len(_POSES), p=_POSE_P)
    name, _, arm_r, elbow_r, leg_r, knee_r, bend_r = _POSES[k]
    arm = {s: rng.uniform(*arm_r) for s in (1, -1)}
    elbow = {s: rng.uniform(*elbow_r) for s in (1, -1)}
    leg = {s: rng.uniform(*leg_r) for s in (1, -1)}
    knee = {s: rng.uniform(*knee_r) for s in (1, -1)}
    if name == 'needle':  # one leg raised, the other one standing
        s = 1 if rng.random() < 0.5 else -1
        leg[s], knee[s] = rng.uniform(-10, 15), rng.uniform(-10, 10)
    if name == 'bridge' and rng.random() < 0.5:
        knee = {s: -v for s, v in knee.items()}
    bend = rng.uniform(*bend_r) * (1 if rng.random() < 0.5 else -1)
    neck_tilt = rng.uniform(-30, 30)
    # foreshortening: a segment pointing at the camera looks shorter
    fore = np.where(rng.random(8) < 0.25, rng.uniform(0.55, 1.0, 8), 1.0)
    if name == 'tuck':
        fore[4:6] = rng.uniform(0.5, 0.8, 2)

    u1 = _UP
    u2 = _rot(_UP, bend)
    pelvis = np.zeros(2)
    waist = pelvis + u1 * jit(0.13)
    neck = waist + u2 * jit(0.16)
    u3 = _rot(u2, neck_tilt)
    head_ry = jit(0.085)
    head_rx = head_ry * rng.uniform(0.78, 0.88)
    head_c = neck + u3 * (jit(0.045) + head_ry * 0.95)
    r1, r2 = _perp(u1), _perp(u2)
    sw, hw = jit(0.22) * girth ** 0.5, jit(0.15) * girth ** 0.5

    pts = dict(pelvis=pelvis, waist=waist, neck=neck, head=head_c)
    radii = dict(head_rx=head_rx, head_ry=head_ry, neck=0.028 * girth,
                 shoulder_w=0.125 * girth * abs(lat), waist_w=0.085 * girth * abs(lat),
                 hip_w=0.1 * girth * abs(lat))
    lens = dict(uarm=jit(0.16), farm=jit(0.145), thigh=jit(0.245), shin=jit(0.245))
    for s in (1, -1):
        lat_s = s * lat
        side_dir2, side_dir1 = s * math.copysign(1, lat) * r2, s * math.copysign(1, lat) * r1
        sh = neck - u2 * 0.025 + r2 * (sw / 2) * lat_s
        hip = pelvis + r1 * (hw / 2) * lat_s
        d_ua = math.cos(math.radians(arm[s])) * -u2 + math.sin(math.radians(arm[s])) * side_dir2
        a2 = arm[s] + elbow[s]
        d_fa = math.cos(math.radians(a2)) * -u2 + math.sin(math.radians(a2)) * side_dir2
        d_th = math.cos(math.radians(leg[s])) * -u1 + math.sin(math.radians(leg[s])) * side_dir1
        l2 = leg[s] + knee[s]
        d_sh = math.cos(math.radians(l2)) * -u1 + math.sin(math.radians(l2)) * side_dir1
        i = 0 if s == 1 else 1
        el = sh + d_ua * lens['uarm'] * fore[i]
        wr = el + d_fa * lens['farm'] * fore[2 + i]
        kn = hip + d_th * lens['thigh'] * fore[4 + i]
        an = kn + d_sh * lens['shin'] * fore[6 + i]
        # toes point where the body faces: out of the image plane for front views
        toe = an + d_sh * 0.025 - _perp(d_sh) * 0.065 * sin_y
        pts.update({f'sh{s}': sh, f'el{s}': el, f'wr{s}': wr, f'hand{s}': wr + d_fa * 0.035,
                    f'hip{s}': hip, f'kn{s}': kn, f'an{s}': an, f'toe{s}': toe})
    radii.update(uarm=(0.039 * girth, 0.031 * girth), farm=(0.031 * girth, 0.024 * girth),
                 hand=0.03 * girth, thigh=(0.058 * girth, 0.043 * girth),
                 shin=(0.042 * girth, 0.029 * girth), foot=0.024 * girth, ear=0.022)

    psi = yaw + rng.uniform(-35, 35)
    kpts = np.zeros((NUM_KEYPOINTS, 2))
    hidden = np.zeros(NUM_KEYPOINTS, dtype=bool)
    for idx, abc in _FACE.items():
        xy, depth = _head_point(head_c, u3, head_rx, head_ry, psi, abc)
        kpts[idx] = xy
        hidden[idx] = depth <= _FACE_DEPTH[idx]
    for s, (sh, el, wr, hip, kn, an, _, _) in _SIDE_KPTS.items():
        kpts[[sh, el, wr, hip, kn, an]] = [pts[f'sh{s}'], pts[f'el{s}'], pts[f'wr{s}'],
                                         pts[f'hip{s}'], pts[f'kn{s}'], pts[f'an{s}']]

    # paint order: a side is "far" when it faces away (depth of its shoulder < 0)
    far = 0
    if abs(sin_y) > 0.5:
        far = 1 if -sin_y < 0 else -1
    arms = [('arm', 1), ('arm', -1)]
    legs = [('leg', 1), ('leg', -1)]
    if rng.random() < 0.5:
        arms.reverse()
        legs.reverse()
    if far:
        order = (('arm', far), ('leg', far), 'torso', ('leg', -far), 'head', ('arm', -far))
    else:
        order = (*legs, 'torso', 'head', *arms)
    return _Body(pts, radii, kpts, hidden, yaw, psi, u3, order, far)


def _head_point(center: np.ndarray, up: np.ndarray, rx: float, ry: float, psi: float,
                abc: tuple) -> tuple[np.ndarray, float]:
    """Project a head-local sphere point; returns its (2,) position and its depth."""
    a, b, c = abc
    cp, sp = math.cos(math.radians(psi)), math.sin(math.radians(psi))
    a2, depth = a * cp + c * sp, -a * sp + c * cp
    return center + rx * a2 * _perp(up) + ry * b * up, depth


def _body_extent_points(body: _Body) -> np.ndarray:
    """(M, 2) points whose hull bounds the drawn body (for placement)."""
    p = body.pts
    hr = body.radii['head_ry']
    head = p['head'] + np.array([[hr, 0], [-hr, 0], [0, hr], [0, -hr]])
    return np.concatenate([np.stack(list(p.values())), head])


# --------------------------------------------------------------------------------------------
# Placement: rotation, scale and translation from the unit frame to pixels.
# --------------------------------------------------------------------------------------------
def _place(rng: np.random.Generator, body: _Body, size: tuple[int, int], scale: float,
           truncate: float, max_rotation: float = 180.0) -> np.ndarray:
    """Return a (2, 3) affine map unit frame -> pixels.

    Args:
        scale: Wanted standing height in pixels.
        truncate: 0 to keep the whole figure in the image (shrinking it if needed), else the
            fraction of the figure extent to push out of the image across one or two borders.
    """
    w, h = size
    theta = rng.uniform(-max_rotation, max_rotation)
    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    rot = np.array([[c, -s], [s, c]])
    ext = _body_extent_points(body) @ rot.T
    lo, hi = ext.min(0), ext.max(0)
    span = np.maximum(hi - lo, 1e-3)
    limit = np.array([w - 3.0, h - 3.0])
    if not truncate:
        scale = min(scale, *(limit / span))
    m = rot * scale
    lo_px, span_px = lo * scale, span * scale
    # translation keeping the extent inside [1, size - 2] (centred when it is too big)
    t_lo = 1.0 - lo_px
    t_hi = limit + 1.0 - lo_px - span_px
    t = np.where(t_hi > t_lo, rng.uniform(0, 1, 2) * (t_hi - t_lo) + t_lo, (t_lo + t_hi) / 2)
    if truncate:
        axes = [rng.integers(2)] if rng.random() < 0.7 else [0, 1]
        for ax in axes:
            push = truncate * span_px[ax]
            t[ax] = (t_lo[ax] - push) if rng.random() < 0.5 else (t_hi[ax] + push)
    return np.concatenate([m, t[:, None]], axis=1)


def _apply(aff: np.ndarray, p: np.ndarray) -> np.ndarray:
    return p @ aff[:, :2].T + aff[:, 2]


# --------------------------------------------------------------------------------------------
# Drawing: float32 BGR canvas + a part-ownership map, anti-aliased by signed distance.
# --------------------------------------------------------------------------------------------
class _Canvas:
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


def _capsule(cv: _Canvas, p: np.ndarray, q: np.ndarray, r1: float, r2: float,
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


def _polygon(cv: _Canvas, poly: np.ndarray, color: np.ndarray, pid: int, axis: tuple,
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


def _head(cv: _Canvas, c: np.ndarray, up: np.ndarray, rx: float, ry: float, psi: float,
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
    right = _perp(up)
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


def _dot(cv: _Canvas, p: np.ndarray, r: float, color: np.ndarray, pid: int = 0) -> None:
    _capsule(cv, p, p, r, r, color, pid)


# --------------------------------------------------------------------------------------------
# Styles: colours and clothes.
# --------------------------------------------------------------------------------------------
_SKIN = np.array([[189, 224, 255], [148, 193, 234], [120, 170, 224], [90, 135, 198],
                  [60, 100, 160], [45, 70, 110]], dtype=np.float32)  # BGR
_HAIR = np.array([[20, 20, 25], [30, 45, 70], [40, 80, 130], [90, 160, 210], [40, 60, 160],
                  [150, 150, 150]], dtype=np.float32)


def _hsv(rng: np.random.Generator, s=(0.35, 1.0), v=(0.3, 1.0)) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*s), rng.uniform(*v))
    return np.array([b, g, r], dtype=np.float32) * 255.0


def _sample_style(rng: np.random.Generator) -> dict:
    skin = np.clip(_SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.1), 0, 255)
    top, bottom = _hsv(rng), _hsv(rng)
    if rng.random() < 0.35:  # leotard: one colour from shoulders to hips
        bottom = top
    sleeves = rng.choice(3, p=[0.35, 0.3, 0.35])  # none, short, long
    legs = rng.choice(3, p=[0.3, 0.3, 0.4])       # bare, shorts, tights/long
    stripes = {}
    if rng.random() < 0.3:
        stripes['top'] = _hsv(rng)
    if rng.random() < 0.2:
        stripes['bottom'] = _hsv(rng)
    return dict(
        skin=skin, hair=_HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2),
        hair_line=rng.uniform(0.15, 0.55), top=top, bottom=bottom,
        uarm=top if sleeves >= 1 else skin, farm=top if sleeves == 2 else skin,
        thigh=bottom if legs >= 1 else skin, shin=bottom if legs == 2 else skin,
        shoe=_hsv(rng, v=(0.1, 0.9)), stripes=stripes, stripe_period=rng.uniform(0.03, 0.06),
        far_shade=rng.uniform(0.65, 0.8))


# --------------------------------------------------------------------------------------------
# Rendering a body.
# --------------------------------------------------------------------------------------------
def _draw_body(cv: _Canvas, body: _Body, style: dict, aff: np.ndarray,
               main: bool = True) -> None:
    """Paint ``body`` through ``aff`` (unit -> px); ``main=False`` owns pixels as _OTHER."""
    scale = float(np.sqrt(abs(np.linalg.det(aff[:, :2]))))
    rot = aff[:, :2] / scale
    P = {k: _apply(aff, v) for k, v in body.pts.items()}
    R = {k: (tuple(x * scale for x in v) if isinstance(v, tuple) else v * scale)
         for k, v in body.radii.items()}
    pid = (lambda p: p) if main else (lambda p: _OTHER)  # noqa: E731
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
        _capsule(cv, P[f'sh{s}'], P[f'el{s}'], *R['uarm'], colour('uarm', s), pid(_UARM[s]),
                 outline, stripes('uarm'))
        _capsule(cv, P[f'el{s}'], P[f'wr{s}'], *R['farm'], colour('farm', s), pid(_FARM[s]),
                 outline, stripes('farm'))
        _dot(cv, P[f'hand{s}'], R['hand'], colour('skin', s), pid(_FARM[s]))

    def leg(s: int) -> None:
        _capsule(cv, P[f'hip{s}'], P[f'kn{s}'], *R['thigh'], colour('thigh', s),
                 pid(_THIGH[s]), outline, stripes('thigh'))
        _capsule(cv, P[f'an{s}'], P[f'toe{s}'], R['foot'], R['foot'] * 0.8, colour('shoe', s),
                 pid(_SHIN[s]), outline)
        _capsule(cv, P[f'kn{s}'], P[f'an{s}'], *R['shin'], colour('shin', s), pid(_SHIN[s]),
                 outline, stripes('shin'))

    def torso() -> None:
        up1 = P['waist'] - P['pelvis']
        up1 /= np.linalg.norm(up1) + 1e-9
        up2 = P['neck'] - P['waist']
        up2 /= np.linalg.norm(up2) + 1e-9
        r1, r2 = _perp(up1), _perp(up2)
        hip_c = P['pelvis'] - up1 * R['hip_w'] * 0.3
        chest = [P['neck'] - up2 * R['shoulder_w'] * 0.05 + r2 * R['shoulder_w'],
                 P['waist'] + r1 * R['waist_w'], P['waist'] - r1 * R['waist_w'],
                 P['neck'] - up2 * R['shoulder_w'] * 0.05 - r2 * R['shoulder_w']]
        pelvis = [P['waist'] + r1 * R['waist_w'] * 1.02, hip_c + r1 * R['hip_w'],
                  hip_c - up1 * R['hip_w'] * 0.4, hip_c - r1 * R['hip_w'],
                  P['waist'] - r1 * R['waist_w'] * 1.02]
        _polygon(cv, np.array(pelvis), colour('bottom', 0), pid(_TORSO),
                 (P['pelvis'], P['waist'], R['hip_w'] + 1e-3), outline, stripes('bottom'))
        _polygon(cv, np.array(chest), colour('top', 0), pid(_TORSO),
                 (P['waist'], P['neck'], R['shoulder_w'] + 1e-3), outline, stripes('top'))

    def head() -> None:
        up = rot @ body.head_up
        c, rx, ry = P['head'], R['head_rx'], R['head_ry']
        _capsule(cv, P['neck'], c, R['neck'], R['neck'], style['skin'], pid(_NECK), outline)
        kp = _apply(aff, body.kpts[:5])
        skin = np.asarray(style['skin'], np.float32)
        for s, idx in ((1, 3), (-1, 4)):  # ears stick out of the head outline
            if not body.hidden[idx]:
                _dot(cv, kp[idx], R['ear'], skin * 0.85, pid(_EAR[s]))
        _head(cv, c, up, rx, ry, body.psi, skin, style['hair'], style['hair_line'],
              pid(_HEAD), outline)
        if not body.hidden[0]:
            _dot(cv, kp[0], max(0.7, 0.14 * rx), skin * 0.75, pid(_HEAD))
        mouth, depth = _head_point(c, up, rx, ry, body.psi, _MOUTH)
        if depth > 0.3:
            _dot(cv, mouth, max(0.6, 0.1 * rx), np.array([60, 60, 150], np.float32))
        for idx in (1, 2):
            if not body.hidden[idx]:
                _dot(cv, kp[idx], max(0.7, 0.13 * rx), np.array([25, 20, 20], np.float32))

    for part in body.draw_order:
        if part == 'torso':
            torso()
        elif part == 'head':
            head()
        elif part[0] == 'arm':
            arm(part[1])
        else:
            leg(part[1])


# --------------------------------------------------------------------------------------------
# Backgrounds, clutter and occluders.
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs / max(w - 1, 1), ys / max(h - 1, 1)


def _background(rng: np.random.Generator, w: int, h: int, cfg: StickmanConfig) -> np.ndarray:
    """(h, w, 3) uint8: gradient + low-frequency noise + pattern + random shapes."""
    xs, ys = _grid(w, h)
    c0, c1 = _hsv(rng, s=(0.0, 0.7), v=(0.2, 0.95)), _hsv(rng, s=(0.0, 0.7), v=(0.2, 0.95))
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
        img = np.where(side[..., None], img * 0.4 + _hsv(rng, v=(0.3, 0.9)) * 0.6, img)
    out = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, cfg.clutter_shapes + 1)):
        _clutter_shape(rng, out)
    return out


def _clutter_shape(rng: np.random.Generator, img: np.ndarray) -> None:
    """Draw one random shape with OpenCV (anti-aliased, 8-bit) in place."""
    h, w = img.shape[:2]
    m = min(w, h)
    color = tuple(float(x) for x in _hsv(rng, s=(0.0, 1.0), v=(0.1, 1.0)))
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


def _distractor_limb(rng: np.random.Generator, cv: _Canvas, style: dict, scale: float) -> None:
    """One or two shaded capsules that look like an arm or a leg without a body."""
    p = rng.uniform(0, 1, 2) * [cv.w, cv.h]
    r = rng.uniform(0.02, 0.045) * scale
    color = style[('uarm', 'farm', 'thigh', 'shin', 'skin')[rng.integers(5)]]
    d = _rot(np.array([1.0, 0.0]), rng.uniform(0, 360))
    for _ in range(rng.integers(1, 3)):
        q = p + d * rng.uniform(0.12, 0.25) * scale
        _capsule(cv, p, q, r, r * 0.8, color, 0, max(0.6, 0.012 * scale))
        p, r, d = q, r * 0.8, _rot(d, rng.uniform(-120, 120))


def _occluder(rng: np.random.Generator, cv: _Canvas, at: np.ndarray, scale: float) -> None:
    """A ball, a box, a blob or a beam over the point ``at`` (pixels); owns its pixels."""
    color = _hsv(rng, s=(0.2, 1.0), v=(0.25, 1.0))
    kind = rng.integers(4)
    c = at + rng.normal(0, 0.04 * scale, 2)
    if kind == 0:  # ball
        r = rng.uniform(0.07, 0.15) * scale
        _capsule(cv, c, c, r, r, color, _OTHER, max(0.6, 0.01 * scale))
        return
    if kind == 3:  # beam / bar crossing the figure
        d = _rot(np.array([1.0, 0.0]), rng.uniform(0, 180)) * scale
        r = rng.uniform(0.025, 0.06) * scale
        stripes = (rng.uniform(0.05, 0.15) * scale, _hsv(rng)) if rng.random() < 0.4 else None
        _capsule(cv, c - d, c + d, r, r, color, _OTHER, max(0.6, 0.01 * scale), stripes)
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
    cv.blend(0, 0, alpha, color * shade[..., None], _OTHER)


# --------------------------------------------------------------------------------------------
# One sample.
# --------------------------------------------------------------------------------------------
def _rng(cfg: StickmanConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, _SPLIT_CODE[split], index])


def render_sample(cfg: StickmanConfig, split: str, index: int) -> tuple[np.ndarray, dict]:
    """Render image ``index`` of ``split``; pure function of its arguments.

    Returns:
        tuple: ``(img, ann)``: ``img`` is a (h, w, 3) uint8 BGR image; ``ann`` holds
        ``keypoints`` (17, 3) float (x, y, v), ``bbox`` (4,) xywh, ``area`` float and
        ``num_keypoints`` int, in pixels of the image.
    """
    rng = _rng(cfg, split, index)
    w, h = cfg.image_size
    m = min(w, h)
    owner_kpt_table = _owner_table()

    # figure geometry first: resample until enough keypoints land inside the image
    truncate = rng.uniform(0.1, 0.4) if rng.random() < cfg.truncation_prob else 0.0
    for attempt in range(64):
        body = _sample_body(rng, cfg.back_view_prob, cfg.profile_prob)
        scale = rng.uniform(*cfg.scale_range) * m
        aff = _place(rng, body, (w, h), scale, truncate if attempt < 32 else 0.0,
                     cfg.max_rotation)
        kp = _apply(aff, body.kpts)
        # pixel centres are at integer coordinates (as in MMPose: x in [0, w - 1])
        inside = np.all((kp >= 0) & (kp <= np.array([w, h]) - 1), axis=1)
        if inside.sum() >= cfg.min_keypoints:
            break
    scale = float(np.sqrt(abs(np.linalg.det(aff[:, :2]))))
    style = _sample_style(rng)

    cv = _Canvas(_background(rng, w, h, cfg).astype(np.float32))
    for _ in range(rng.integers(0, cfg.distractor_limbs + 1)):
        _distractor_limb(rng, cv, _sample_style(rng), scale)
    second = None
    if rng.random() < cfg.second_figure_prob:
        body2 = _sample_body(rng, cfg.back_view_prob, cfg.profile_prob)
        aff2 = _place(rng, body2, (w, h), scale * rng.uniform(0.75, 1.15), rng.uniform(0.3, 0.6),
                      cfg.max_rotation)
        second = (body2, _sample_style(rng), aff2, rng.random() < 1 / 3)
        if not second[3]:
            _draw_body(cv, body2, second[1], aff2, main=False)
    _draw_body(cv, body, style, aff, main=True)
    fig = (cv.owner >= 1) & (cv.owner <= _LAST_PART)
    if second is not None and second[3]:
        _draw_body(cv, second[0], second[1], second[2], main=False)
    if rng.random() < cfg.occluder_prob:
        _occluder(rng, cv, kp[rng.choice(np.flatnonzero(inside))], scale)

    img = cv.img * rng.uniform(0.8, 1.15) + rng.uniform(-20, 20)
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    sigma = rng.uniform(0, cfg.noise_std)
    img = img + rng.normal(0, 1, img.shape).astype(np.float32) * sigma
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)

    # annotation, read from the ownership map so that it matches the pixels
    xi = np.clip(np.floor(kp[:, 0] + 0.5).astype(int), 0, w - 1)
    yi = np.clip(np.floor(kp[:, 1] + 0.5).astype(int), 0, h - 1)
    seen = owner_kpt_table[np.arange(NUM_KEYPOINTS), cv.owner[yi, xi]] & ~body.hidden
    vis = np.where(inside, np.where(seen, 2, 1), 0)
    kpts = np.concatenate([np.where(inside[:, None], kp, 0.0), vis[:, None]], axis=1)
    ys_, xs_ = np.nonzero(fig)
    if xs_.size == 0:  # cannot happen with >= 1 keypoint inside; keep the box valid anyway
        xs_, ys_ = kp[inside, 0], kp[inside, 1]
    x0, x1 = float(xs_.min()) - 0.5, float(xs_.max()) + 0.5
    y0, y1 = float(ys_.min()) - 0.5, float(ys_.max()) + 0.5
    margin = max(1.0, 0.03 * max(x1 - x0, y1 - y0))
    x0, y0 = max(x0 - margin, 0.0), max(y0 - margin, 0.0)
    x1, y1 = min(x1 + margin, w - 1.0), min(y1 + margin, h - 1.0)  # MMPose clips to w - 1
    ann = dict(keypoints=kpts, bbox=np.array([x0, y0, x1 - x0, y1 - y0]),
               area=float(max(int(fig.sum()), 1)), num_keypoints=int((vis > 0).sum()))
    return img, ann


# --------------------------------------------------------------------------------------------
# Dataset files.
# --------------------------------------------------------------------------------------------
def _r2(x) -> list:
    return [round(float(v), 2) for v in np.asarray(x).ravel()]


def _render_and_write(cfg: StickmanConfig, split: str, img_dir: Path, index: int) -> tuple:
    img, ann = render_sample(cfg, split, index)
    name = f'{index:06d}.png'
    if not cv2.imwrite(str(img_dir / name), img, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f'cannot write {img_dir / name}')
    kpts = ann['keypoints'].copy()
    kpts[:, 2] = np.round(kpts[:, 2])
    image = dict(id=index + 1, file_name=f'{split}/{name}', width=cfg.image_size[0],
                 height=cfg.image_size[1])
    record = dict(id=index + 1, image_id=index + 1, category_id=1,
                  keypoints=[round(float(v), 2) if i % 3 != 2 else int(v)
                             for i, v in enumerate(kpts.ravel())],
                  num_keypoints=ann['num_keypoints'], bbox=_r2(ann['bbox']),
                  area=round(ann['area'], 2), iscrowd=0)
    return image, record


def categories() -> list[dict]:
    """The COCO ``person`` category (1-based skeleton, as in the COCO files)."""
    return [dict(id=1, name='person', supercategory='person', keypoints=list(KEYPOINT_NAMES),
                 skeleton=[[a + 1, b + 1] for a, b in COCO_SKELETON])]


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already


def _pool(workers: int):
    # fork: cheap, and children need nothing from the parent but this module; spawn elsewhere
    method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
    return mp.get_context(method).Pool(workers, initializer=_init_worker)


def generate(out_dir: Path, cfg: StickmanConfig = StickmanConfig(), workers: int = 1,
             progress: bool = True) -> dict[str, Path]:
    """Write the dataset under ``out_dir``; see the module docstring for the layout.

    Args:
        out_dir (Path): Root of the dataset (created if missing). Existing files with the same
            names are overwritten; other files are left alone.
        cfg (StickmanConfig): What to generate.
        workers (int): Processes rendering images (``imap`` over indices, chunked); the
            output is byte-identical for any value.
        progress (bool): Show a tqdm bar per split.

    Returns:
        dict[str, Path]: ``{split: path of annotations/{split}.json}``.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    (out_dir / 'annotations').mkdir(parents=True, exist_ok=True)
    workers = max(1, int(workers))
    pool = _pool(workers) if workers > 1 else None
    paths: dict[str, Path] = {}
    try:
        for split, n in cfg.counts().items():
            img_dir = out_dir / 'images' / split
            img_dir.mkdir(parents=True, exist_ok=True)
            job = partial(_render_and_write, cfg, split, img_dir)
            if pool is None:
                it = map(job, range(n))
            else:
                it = pool.imap(job, range(n), chunksize=max(1, min(32, n // (workers * 4))))
            rows = list(tqdm(it, total=n, desc=f'stickman {split}', unit='img',
                             disable=not progress))
            coco = dict(
                info=dict(description=f'stickman gymnasts, {split} split',
                          generator='bench.data.stickman', config=asdict(cfg)),
                licenses=[], categories=categories(),
                images=[r[0] for r in rows], annotations=[r[1] for r in rows])
            path = out_dir / 'annotations' / f'{split}.json'
            tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
            tmp.write_text(json.dumps(coco, sort_keys=True, separators=(',', ':')) + '\n')
            tmp.replace(path)  # atomic: a reader never sees half a file
            paths[split] = path
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return paths
