"""MMPose's top-down training augmentation, for a whole batch at once.

The stock train pipeline (``GetBBoxCenterScale`` -> ``RandomFlip`` -> ``RandomBBoxTransform``
-> ``TopdownAffine``) decodes, flips and warps one image at a time in Python. Here the same
random draws are made for the batch in one call each (from the same distributions, on the same
global numpy RNG that :class:`bench.engine.hooks.EpochSeedHook` seeds per epoch), the flip is
folded into the affine matrix, and every crop of the batch is sampled in one
``torch.nn.functional.grid_sample`` call on the training device.

The parameters are read from the stock pipeline in the config (:meth:`AugmentSpec.from_pipeline`):
the config keeps the per-sample MMPose pipeline as the one description of the augmentation, and
:mod:`tests.test_batched_data` checks that both paths give the same crops and keypoints for the
same draws.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import RunError

#: Transforms of the train pipeline the batched path knows, in the only order it supports.
_SUPPORTED = ('LoadImage', 'GetBBoxCenterScale', 'RandomFlip', 'RandomBBoxTransform',
              'TopdownAffine', 'GenerateTarget', 'PackPoseInputs')


def _defaults(cls) -> dict:
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


@dataclass(frozen=True)
class AugmentSpec:
    """The random top-down augmentation of an MMPose train pipeline.

    Args:
        input_size (tuple): (w, h) of the network input (``TopdownAffine.input_size``)
        use_udp (bool): ``TopdownAffine.use_udp`` (unbiased data processing warp)
        padding (float): ``GetBBoxCenterScale.padding``
        flip_prob (float): probability of a horizontal flip (0: no ``RandomFlip``)
        shift_factor, shift_prob, scale_factor, scale_prob, rotate_factor, rotate_prob:
            ``RandomBBoxTransform``'s arguments (with its defaults where the config omits
            them); ``bbox_transform=False`` when the pipeline has none
    """
    input_size: tuple
    use_udp: bool = False
    padding: float = 1.25
    flip_prob: float = 0.0
    bbox_transform: bool = False
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_factor: tuple = (0.5, 1.5)
    scale_prob: float = 1.0
    rotate_factor: float = 80.0
    rotate_prob: float = 0.6

    @classmethod
    def from_pipeline(cls, pipeline: Sequence[dict]) -> 'AugmentSpec':
        """Read the spec from a stock top-down train pipeline (list of transform configs).
        A transform the batched path does not implement stops with a one-line error."""
        from mmpose.datasets.transforms import (
            GetBBoxCenterScale,
            RandomBBoxTransform,
            RandomFlip,
            TopdownAffine,
        )

        names = [t['type'] for t in pipeline]
        unknown = [n for n in names if n not in _SUPPORTED]
        if unknown:
            raise RunError(
                f'train pipeline transform(s) {", ".join(unknown)} have no batched version: '
                f'set train.data_path: mmpose to train on the per-sample pipeline')
        order = [n for n in _SUPPORTED if n in names]
        if names != order or 'TopdownAffine' not in names:
            raise RunError(f'train pipeline {names}: the batched path needs the stock '
                              f'order {list(_SUPPORTED)} with a TopdownAffine')
        by_name = {t['type']: {k: v for k, v in t.items() if k != 'type'} for t in pipeline}
        kw = {}
        aff = {**_defaults(TopdownAffine), **by_name['TopdownAffine']}
        kw['input_size'] = tuple(int(v) for v in aff['input_size'])
        kw['use_udp'] = bool(aff.get('use_udp', False))
        if 'GetBBoxCenterScale' in by_name:
            kw['padding'] = float({**_defaults(GetBBoxCenterScale),
                                   **by_name['GetBBoxCenterScale']}['padding'])
        if 'RandomFlip' in by_name:
            flip = {**_defaults(RandomFlip), **by_name['RandomFlip']}
            if flip['direction'] != 'horizontal' or not isinstance(flip['prob'], (int, float)):
                raise RunError(f'RandomFlip({flip}): the batched path flips horizontally '
                                  f'with one probability only')
            kw['flip_prob'] = float(flip['prob'])
        if 'RandomBBoxTransform' in by_name:
            bt = {**_defaults(RandomBBoxTransform), **by_name['RandomBBoxTransform']}
            kw['bbox_transform'] = True
            for f in fields(cls):
                if f.name in bt:
                    v = bt[f.name]
                    kw[f.name] = tuple(v) if f.name == 'scale_factor' else float(v)
        return cls(**kw)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Draws:
    """One batch's random augmentation, as MMPose's transforms would draw it per sample.

    Attributes:
        flip (np.ndarray): (B,) bool
        offset (np.ndarray): (B, 2) centre shift in units of the bbox scale
        scale (np.ndarray): (B, 1) bbox scale factor
        rotate (np.ndarray): (B,) degrees
    """
    flip: np.ndarray
    offset: np.ndarray
    scale: np.ndarray
    rotate: np.ndarray

    @classmethod
    def none(cls, n: int) -> 'Draws':
        return cls(np.zeros(n, bool), np.zeros((n, 2), np.float32),
                   np.ones((n, 1), np.float32), np.zeros(n, np.float32))


def truncated_normal(shape) -> np.ndarray:
    """Standard normal truncated to [-1, 1] (what ``RandomBBoxTransform`` draws with
    ``scipy.stats.truncnorm.rvs(-1, 1)``), by rejection from numpy's global RNG: the same
    distribution without scipy's per-call overhead (0.8 ms per batch)."""
    x = np.random.standard_normal(shape)
    bad = np.abs(x) > 1
    while bad.any():
        x[bad] = np.random.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 1
    return x


def draw(spec: AugmentSpec, n: int) -> Draws:
    """Draw the augmentation of ``n`` samples from numpy's global RNG (the one MMPose's
    transforms use), with ``RandomFlip``'s and ``RandomBBoxTransform``'s distributions:
    flip with ``flip_prob``; truncated-normal (on [-1, 1]) shift, scale and rotation, each
    applied with its probability."""
    flip = np.random.rand(n) < spec.flip_prob if spec.flip_prob > 0 else np.zeros(n, bool)
    if not spec.bbox_transform:
        d = Draws.none(n)
        d.flip = flip
        return d
    v = truncated_normal((n, 4)).astype(np.float32)
    offset = np.where(np.random.rand(n, 1) < spec.shift_prob, v[:, :2] * spec.shift_factor, 0.)
    lo, hi = spec.scale_factor
    scale = np.where(np.random.rand(n, 1) < spec.scale_prob,
                     v[:, 2:3] * ((hi - lo) * 0.5) + (hi + lo) * 0.5, 1.)
    rotate = np.where(np.random.rand(n) < spec.rotate_prob, v[:, 3] * spec.rotate_factor, 0.)
    return Draws(flip, offset.astype(np.float32), scale.astype(np.float32),
                 rotate.astype(np.float32))


def bbox_center_scale(bboxes: np.ndarray, img_widths: np.ndarray, spec: AugmentSpec,
                      d: Draws) -> tuple[np.ndarray, np.ndarray]:
    """``GetBBoxCenterScale`` -> ``RandomFlip`` (centre) -> ``RandomBBoxTransform`` ->
    ``TopdownAffine``'s aspect-ratio fix, for (B, 4) xyxy boxes: centres (B, 2) in the
    (flipped) image frame and scales (B, 2)."""
    x1, y1, x2, y2 = np.asarray(bboxes, np.float32).T
    center = np.stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5], 1)
    scale = np.stack([x2 - x1, y2 - y1], 1) * spec.padding
    center[d.flip, 0] = img_widths[d.flip] - 1 - center[d.flip, 0]  # flip_bbox('center')
    center = center + d.offset * scale
    scale = scale * d.scale
    w, h = spec.input_size
    aspect = w / h
    sw, sh = scale[:, :1], scale[:, 1:]
    scale = np.where(sw > sh * aspect, np.hstack([sw, sw / aspect]), np.hstack([sh * aspect, sh]))
    return center, scale


def warp_matrices(center: np.ndarray, scale: np.ndarray, spec: AugmentSpec, d: Draws,
                  img_widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, MMPose's warp matrix from the flipped image to the input, ``A`` (B, 2, 3),
    and the full matrix from the *unflipped* image to the input, ``A @ flip`` (B, 2, 3), both
    float64.

    ``get_warp_matrix`` (``fix_aspect_ratio=True``) maps the box centre to the input centre and
    the rotated box axis onto the input axis: the similarity ``x -> s R(-rot) (x - c) + c_in``
    with ``s = w_in / scale_w``; it is evaluated here in closed form for the whole batch (MMPose
    goes through ``cv2.getAffineTransform`` on float32 points; the test bounds the difference).
    UDP's matrix (``get_udp_warp_matrix``) is taken from MMPose per sample."""
    w, h = spec.input_size
    if spec.use_udp:
        from mmpose.structures.bbox import get_udp_warp_matrix
        A = np.stack([get_udp_warp_matrix(c, s, float(r), output_size=(w, h))
                      for c, s, r in zip(center, scale, d.rotate)]).astype(np.float64)
    else:
        rad = np.deg2rad(d.rotate.astype(np.float64))
        s = w / scale[:, 0].astype(np.float64)
        cos, sin = s * np.cos(rad), s * np.sin(rad)
        c = center.astype(np.float64)
        A = np.empty((len(c), 2, 3))
        A[:, 0, 0], A[:, 0, 1] = cos, sin
        A[:, 1, 0], A[:, 1, 1] = -sin, cos
        A[:, 0, 2] = w * 0.5 - (cos * c[:, 0] + sin * c[:, 1])
        A[:, 1, 2] = h * 0.5 - (-sin * c[:, 0] + cos * c[:, 1])
    full = A.copy()
    # flipped image x' = (w - 1) - x: A @ [[-1, 0, w - 1], [0, 1, 0], [0, 0, 1]]
    f = d.flip
    full[f, :, 2] += A[f, :, 0] * (img_widths[f] - 1)[:, None]
    full[f, :, 0] = -A[f, :, 0]
    return A, full


def transform_keypoints(keypoints: np.ndarray, visible: np.ndarray, full: np.ndarray,
                        d: Draws, flip_indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (B, K, 2) of the unflipped image -> the input frame, with ``flip_keypoints``'
    left/right swap for flipped samples. Returns (keypoints (B, K, 2) float32, visible (B, K))."""
    kp = np.einsum('bij,bkj->bki', full[:, :, :2], keypoints.astype(np.float64)) \
        + full[:, None, :, 2]
    kp = kp.astype(np.float32)
    vis = np.array(visible, dtype=np.float32, copy=True)
    if d.flip.any():
        idx = np.asarray(flip_indices)
        kp[d.flip] = kp[d.flip][:, idx]
        vis[d.flip] = vis[d.flip][:, idx]
    return kp, vis


def warp_images(images: torch.Tensor, full: np.ndarray, input_size: Sequence[int]) -> torch.Tensor:
    """Crop every image of the batch: (B, H, W, 3) uint8 (any device) -> (B, 3, h, w) float32,
    ``cv2.warpAffine(img, M, (w, h), flags=INTER_LINEAR)`` with a constant 0 border, without
    rounding to uint8. ``full`` (B, 2, 3) maps image pixels to input pixels (pixel centres at
    integer coordinates, as OpenCV's)."""
    B, H, W, _ = images.shape
    w, h = (int(v) for v in input_size)
    M = np.concatenate([full, np.tile([[[0., 0., 1.]]], (B, 1, 1))], 1)
    inv = np.linalg.inv(M)  # input pixel -> image pixel
    # align_corners=True: pixel i of an axis of n pixels sits at 2 i / (n - 1) - 1
    to_norm = np.array([[2. / max(W - 1, 1), 0., -1.], [0., 2. / max(H - 1, 1), -1.],
                        [0., 0., 1.]])
    from_norm = np.array([[(w - 1) / 2., 0., (w - 1) / 2.], [0., (h - 1) / 2., (h - 1) / 2.],
                          [0., 0., 1.]])
    theta = (to_norm @ inv @ from_norm)[:, :2]
    grid = F.affine_grid(torch.from_numpy(theta.astype(np.float32)), [B, 3, h, w],
                         align_corners=True).to(images.device)
    src = images.permute(0, 3, 1, 2).float()
    return F.grid_sample(src, grid, mode='bilinear', padding_mode='zeros', align_corners=True)
