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

The generator is split by job; this module composes one sample and writes the dataset:

- :mod:`bench.data.stickman_body`: keypoint layout, posed body (kinematics, view), placement;
- :mod:`bench.data.stickman_render`: canvas, shaded primitives, styles, painting a body;
- :mod:`bench.data.stickman_scene`: background, clutter, distractor limbs, occluders;
- :mod:`bench.data.stickman_coco`: annotation from the ownership map, COCO records and files.
"""
from __future__ import annotations

import multiprocessing as mp
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from .stickman_body import (COCO_SKELETON, FLIP_PAIRS, KEYPOINT_NAMES, NUM_KEYPOINTS,
                            apply_affine, place, sample_body)
from .stickman_coco import annotate, categories, coco_records, figure_pixels, write_split
from .stickman_render import Canvas, draw_body, sample_style
from .stickman_scene import background, distractor_limb, occluder

__all__ = ['COCO_SKELETON', 'FLIP_PAIRS', 'KEYPOINT_NAMES', 'NUM_KEYPOINTS', 'SPLITS',
           'StickmanConfig', 'categories', 'generate', 'render_sample']

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

    # figure geometry first: resample until enough keypoints land inside the image
    truncate = rng.uniform(0.1, 0.4) if rng.random() < cfg.truncation_prob else 0.0
    for attempt in range(64):
        body = sample_body(rng, cfg.back_view_prob, cfg.profile_prob)
        scale = rng.uniform(*cfg.scale_range) * m
        aff = place(rng, body, (w, h), scale, truncate if attempt < 32 else 0.0,
                    cfg.max_rotation)
        kp = apply_affine(aff, body.kpts)
        # pixel centres are at integer coordinates (as in MMPose: x in [0, w - 1])
        inside = np.all((kp >= 0) & (kp <= np.array([w, h]) - 1), axis=1)
        if inside.sum() >= cfg.min_keypoints:
            break
    scale = float(np.sqrt(abs(np.linalg.det(aff[:, :2]))))
    style = sample_style(rng)

    # the scene, back to front: background, distractors, a second figure behind or in front
    cv = Canvas(background(rng, w, h, cfg.clutter_shapes).astype(np.float32))
    for _ in range(rng.integers(0, cfg.distractor_limbs + 1)):
        distractor_limb(rng, cv, sample_style(rng), scale)
    second = None
    if rng.random() < cfg.second_figure_prob:
        body2 = sample_body(rng, cfg.back_view_prob, cfg.profile_prob)
        aff2 = place(rng, body2, (w, h), scale * rng.uniform(0.75, 1.15), rng.uniform(0.3, 0.6),
                     cfg.max_rotation)
        second = (body2, sample_style(rng), aff2, rng.random() < 1 / 3)
        if not second[3]:
            draw_body(cv, body2, second[1], aff2, main=False)
    draw_body(cv, body, style, aff, main=True)
    fig = figure_pixels(cv.owner)
    if second is not None and second[3]:
        draw_body(cv, second[0], second[1], second[2], main=False)
    if rng.random() < cfg.occluder_prob:
        occluder(rng, cv, kp[rng.choice(np.flatnonzero(inside))], scale)

    # camera: exposure, blur, noise
    img = cv.img * rng.uniform(0.8, 1.15) + rng.uniform(-20, 20)
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    sigma = rng.uniform(0, cfg.noise_std)
    img = img + rng.normal(0, 1, img.shape).astype(np.float32) * sigma
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)

    # annotation, read from the ownership map so that it matches the pixels
    return img, annotate(kp, inside, body.hidden, cv.owner, fig, (w, h))


# --------------------------------------------------------------------------------------------
# Dataset files.
# --------------------------------------------------------------------------------------------
def _render_and_write(cfg: StickmanConfig, split: str, img_dir: Path, index: int) -> tuple:
    img, ann = render_sample(cfg, split, index)
    name = f'{index:06d}.png'
    if not cv2.imwrite(str(img_dir / name), img, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f'cannot write {img_dir / name}')
    return coco_records(index, f'{split}/{name}', cfg.image_size, ann)


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
            paths[split] = write_split(out_dir / 'annotations' / f'{split}.json', split,
                                       asdict(cfg), rows)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return paths
