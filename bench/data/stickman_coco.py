"""Stickman annotation and COCO files: a rendered figure's keypoints, visibility, box and area,
read from the canvas' part-ownership map (so they match the pixels), and the COCO keypoint
records and JSON files that ``mmpose.datasets.CocoDataset`` loads unchanged.

Visibility follows COCO: 2 = visible, 1 = labelled but hidden (under an occluder, another
limb, or on the far side of the head), 0 = outside the image (written as ``x = y = 0``).
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .stickman_body import COCO_SKELETON, KEYPOINT_NAMES, NUM_KEYPOINTS, SIDE_KPTS
from .stickman_render import EAR, FARM, HEAD, LAST_PART, NECK, SHIN, THIGH, TORSO, UARM

#: the generator named in every annotation file's ``info``
GENERATOR = 'bench.data.stickman'


# --------------------------------------------------------------------------------------------
# Part ownership: which drawn part may "own" the pixel under each keypoint for it to be visible.
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _owner_table() -> np.ndarray:
    """(17, 256) bool: ``table[k, part]`` is True when keypoint k is seen on that part."""
    t = np.zeros((NUM_KEYPOINTS, 256), dtype=bool)
    t[0, HEAD] = True
    for side, (sh, el, wr, hip, kn, an, ear, eye) in SIDE_KPTS.items():
        t[eye, HEAD] = True
        t[ear, [HEAD, EAR[side]]] = True
        t[sh, [TORSO, NECK, UARM[side]]] = True
        t[el, [UARM[side], FARM[side]]] = True
        t[wr, FARM[side]] = True
        t[hip, [TORSO, THIGH[side]]] = True
        t[kn, [THIGH[side], SHIN[side]]] = True
        t[an, SHIN[side]] = True
    return t


def figure_pixels(owner: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels that the annotated figure owns in the ownership map."""
    return (owner >= 1) & (owner <= LAST_PART)


def annotate(kp: np.ndarray, inside: np.ndarray, hidden: np.ndarray, owner: np.ndarray,
             fig: np.ndarray, size: tuple[int, int]) -> dict:
    """The annotation of one figure, in pixels of its ``size = (w, h)`` image.

    Args:
        kp (np.ndarray): (17, 2) keypoints.
        inside (np.ndarray): (17,) bool, the keypoint lies in the image.
        hidden (np.ndarray): (17,) bool, on the far side of the head sphere.
        owner (np.ndarray): (H, W) uint8 part-ownership map of the finished image.
        fig (np.ndarray): (H, W) bool, the figure's own pixels (:func:`figure_pixels` of the
            map as it was right after the figure was painted).

    Returns:
        dict: ``keypoints`` (17, 3) float (x, y, v), ``bbox`` (4,) xywh, ``area`` float and
        ``num_keypoints`` int.
    """
    w, h = size
    xi = np.clip(np.floor(kp[:, 0] + 0.5).astype(int), 0, w - 1)
    yi = np.clip(np.floor(kp[:, 1] + 0.5).astype(int), 0, h - 1)
    seen = _owner_table()[np.arange(NUM_KEYPOINTS), owner[yi, xi]] & ~hidden
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
    return dict(keypoints=kpts, bbox=np.array([x0, y0, x1 - x0, y1 - y0]),
                area=float(max(int(fig.sum()), 1)), num_keypoints=int((vis > 0).sum()))


# --------------------------------------------------------------------------------------------
# COCO records and files.
# --------------------------------------------------------------------------------------------
def _r2(x) -> list:
    return [round(float(v), 2) for v in np.asarray(x).ravel()]


def coco_records(index: int, file_name: str, size: tuple[int, int], ann: dict) -> tuple:
    """``(image, annotation)`` COCO records of image ``index`` (ids are ``index + 1``);
    coordinates are rounded to 0.01 px."""
    kpts = ann['keypoints'].copy()
    kpts[:, 2] = np.round(kpts[:, 2])
    image = dict(id=index + 1, file_name=file_name, width=size[0], height=size[1])
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


def write_split(path: Path, split: str, config: dict, rows: list[tuple]) -> Path:
    """Write the COCO file of one split from its :func:`coco_records` ``rows``; ``config``
    (the generator's settings) goes into ``info``. Atomic: a reader never sees half a file."""
    coco = dict(
        info=dict(description=f'stickman gymnasts, {split} split', generator=GENERATOR,
                  config=config),
        licenses=[], categories=categories(),
        images=[r[0] for r in rows], annotations=[r[1] for r in rows])
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(json.dumps(coco, sort_keys=True, separators=(',', ':')) + '\n')
    tmp.replace(path)
    return path
