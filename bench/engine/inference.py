"""Running a top-down estimator outside MMEngine's loops (heatmap snapshots, per-pixel
calibration): its test-time options changed for a while, and the model-input frame."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np


@contextmanager
def test_cfg_override(model, **options) -> Iterator[None]:
    """Set ``model.test_cfg`` options (e.g. ``output_heatmaps=True, flip_test=False``) and
    the model to eval mode for the ``with`` block; both are restored afterwards, even on error.

    The estimator passes its own ``test_cfg`` dict to the head, so it is changed in place."""
    cfg = model.test_cfg
    saved = dict(cfg)
    was_training = model.training
    cfg.update(options)
    model.eval()
    try:
        yield
    finally:
        cfg.clear()
        cfg.update(saved)
        model.train(was_training)


def input_from_original(metainfo: dict, use_udp: bool = False) -> np.ndarray:
    """The (2, 3) affine map from original-image pixels to model-input pixels of a sample:
    the warp ``TopdownAffine`` applied (no rotation at test time), from the sample's
    ``input_center``, ``input_scale`` and ``input_size``; ``use_udp``: UDP's warp
    (``TopdownAffine(use_udp=True)``, whose input spans w - 1 pixels), as the pipeline did."""
    from mmpose.structures.bbox import get_udp_warp_matrix, get_warp_matrix
    w, h = metainfo['input_size']
    warp = get_udp_warp_matrix if use_udp else get_warp_matrix
    return warp(np.asarray(metainfo['input_center'], np.float32),
                np.asarray(metainfo['input_scale'], np.float32), 0.0, output_size=(w, h))


def uses_udp(dataset) -> bool:
    """Whether ``dataset``'s pipeline warps with UDP (a ``TopdownAffine(use_udp=True)``)."""
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', None) or []
    return any(type(t).__name__ == 'TopdownAffine' and getattr(t, 'use_udp', False)
               for t in transforms)


def to_input_frame(points: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """(..., K, 2) points in original-image pixels → model-input pixels under a (2, 3) warp
    (or (..., 2, 3), one warp per leading index)."""
    p = np.asarray(points, np.float64)
    m = np.asarray(warp, np.float64)
    return np.einsum('...ij,...kj->...ki', m[..., :2], p) + m[..., None, :, 2]
