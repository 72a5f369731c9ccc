"""Stickman body: the COCO keypoint layout, a 2D kinematic body in gymnastic poses, and its
placement in an image.

A body is posed in a *unit frame* (pelvis at the origin, standing height 1, image axes with y
down): spine bend, neck tilt, shoulder/elbow/hip/knee angles wide enough for gymnastics,
per-segment foreshortening, and a body yaw (front, back or near-profile view) that sets which
side is the figure's own left and the depth order of the limbs. The head is a sphere whose
eyes, ears and nose follow the head yaw. :func:`place` then maps the unit frame to pixels
(rotation, scale, translation, optional truncation at the border).

Every function draws from the ``rng`` it is given, in a fixed order: the generated dataset is
a pure function of the seeds (see :mod:`bench.data.stickman`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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
#: keypoint indices per side (+1: the figure's left): shoulder, elbow, wrist, hip, knee,
#: ankle, ear, eye
SIDE_KPTS = {+1: (5, 7, 9, 11, 13, 15, 3, 1), -1: (6, 8, 10, 12, 14, 16, 4, 2)}


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
MOUTH = (0.0, -0.55, 0.82)
# a face point is drawn and visible when its depth (towards the viewer) exceeds this
_FACE_DEPTH = {0: -0.15, 1: 0.05, 2: 0.05, 3: -0.3, 4: -0.3}


def rotate(v: np.ndarray, deg: float) -> np.ndarray:
    """``v`` (2,) rotated by ``deg`` degrees (clockwise on screen: image y points down)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def perp(u: np.ndarray) -> np.ndarray:
    """``u`` (2,) turned by 90 degrees."""
    # for an upright figure (u = up) this is +x: the figure's left seen from the front
    return np.array([-u[1], u[0]])


@dataclass
class Body:
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


def sample_body(rng: np.random.Generator, back_p: float, profile_p: float) -> Body:
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
    u2 = rotate(_UP, bend)
    pelvis = np.zeros(2)
    waist = pelvis + u1 * jit(0.13)
    neck = waist + u2 * jit(0.16)
    u3 = rotate(u2, neck_tilt)
    head_ry = jit(0.085)
    head_rx = head_ry * rng.uniform(0.78, 0.88)
    head_c = neck + u3 * (jit(0.045) + head_ry * 0.95)
    r1, r2 = perp(u1), perp(u2)
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
        toe = an + d_sh * 0.025 - perp(d_sh) * 0.065 * sin_y
        pts.update({f'sh{s}': sh, f'el{s}': el, f'wr{s}': wr, f'hand{s}': wr + d_fa * 0.035,
                    f'hip{s}': hip, f'kn{s}': kn, f'an{s}': an, f'toe{s}': toe})
    radii.update(uarm=(0.039 * girth, 0.031 * girth), farm=(0.031 * girth, 0.024 * girth),
                 hand=0.03 * girth, thigh=(0.058 * girth, 0.043 * girth),
                 shin=(0.042 * girth, 0.029 * girth), foot=0.024 * girth, ear=0.022)

    psi = yaw + rng.uniform(-35, 35)
    kpts = np.zeros((NUM_KEYPOINTS, 2))
    hidden = np.zeros(NUM_KEYPOINTS, dtype=bool)
    for idx, abc in _FACE.items():
        xy, depth = head_point(head_c, u3, head_rx, head_ry, psi, abc)
        kpts[idx] = xy
        hidden[idx] = depth <= _FACE_DEPTH[idx]
    for s, (sh, el, wr, hip, kn, an, _, _) in SIDE_KPTS.items():
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
    return Body(pts, radii, kpts, hidden, yaw, psi, u3, order, far)


def head_point(center: np.ndarray, up: np.ndarray, rx: float, ry: float, psi: float,
                abc: tuple) -> tuple[np.ndarray, float]:
    """Project a head-local sphere point; returns its (2,) position and its depth."""
    a, b, c = abc
    cp, sp = math.cos(math.radians(psi)), math.sin(math.radians(psi))
    a2, depth = a * cp + c * sp, -a * sp + c * cp
    return center + rx * a2 * perp(up) + ry * b * up, depth


def _body_extent_points(body: Body) -> np.ndarray:
    """(M, 2) points whose hull bounds the drawn body (for placement)."""
    p = body.pts
    hr = body.radii['head_ry']
    head = p['head'] + np.array([[hr, 0], [-hr, 0], [0, hr], [0, -hr]])
    return np.concatenate([np.stack(list(p.values())), head])


# --------------------------------------------------------------------------------------------
# Placement: rotation, scale and translation from the unit frame to pixels.
# --------------------------------------------------------------------------------------------
def place(rng: np.random.Generator, body: Body, size: tuple[int, int], scale: float,
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


def apply_affine(aff: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Points ``p`` (..., 2) through the (2, 3) affine map ``aff``."""
    return p @ aff[:, :2].T + aff[:, 2]

