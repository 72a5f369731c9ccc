"""Can OKS AP separate the methods at this heatmap resolution?

COCO's object keypoint similarity scores keypoint j of an instance of area A with
``exp(-d² / (2 A (2σ_j)²))``; it drops to ``level`` at the distance
``d = 2σ_j √(2 A ln(1/level))`` (:func:`oks_tolerance_px`). AP counts a prediction only when
its instance OKS reaches 0.5 (AP50, the loosest of AP's thresholds 0.50:0.95). When that
tolerance is below one heatmap pixel (in image pixels: the crop size over the heatmap size),
the decoding grid itself already costs most of the tolerance, and AP measures sub-pixel
decoding noise more than the methods: the report then says that AP cannot separate them.
"""
from __future__ import annotations

import math

import numpy as np

#: The loosest OKS threshold of COCO AP.
AP_LOOSEST_OKS = 0.5


def oks_tolerance_px(sigmas: np.ndarray, areas: np.ndarray,
                     level: float = AP_LOOSEST_OKS) -> np.ndarray:
    """(N, K) image-pixel distances at which each keypoint's OKS term equals ``level``.

    Args:
        sigmas: (K,) the dataset's OKS sigmas; areas: (N,) the instances' annotated areas.
    """
    s = np.asarray(sigmas, float)[None, :]
    a = np.asarray(areas, float)[:, None]
    return 2.0 * s * np.sqrt(2.0 * a * math.log(1.0 / level))


def ap_resolution(keypoints: dict, level: float = AP_LOOSEST_OKS) -> dict[str, float]:
    """How AP's keypoint tolerance compares with a heatmap pixel on one run's test split.

    Args:
        keypoints: a ``KeypointRecorder`` dump (``sigmas`` (K,), ``areas`` (N,),
            ``heatmap_px`` (N,) image px per heatmap pixel, ``dists`` (N, K), -1 unlabelled).
        level: the OKS level of the tolerance.

    Returns:
        dict with ``median_tolerance_px`` (image px), ``median_heatmap_px``,
        ``median_ratio`` (tolerance / heatmap pixel, median over labelled keypoints),
        ``share_below_one`` (share of labelled keypoints whose tolerance is below one heatmap
        pixel) and ``n`` (labelled keypoints with every input known); NaN values with n = 0
        (a dump without sigmas, areas or heatmap size).
    """
    out = {'median_tolerance_px': math.nan, 'median_heatmap_px': math.nan,
           'median_ratio': math.nan, 'share_below_one': math.nan, 'n': 0}
    if not all(k in keypoints for k in ('sigmas', 'areas', 'heatmap_px', 'dists')):
        return out
    tol = oks_tolerance_px(keypoints['sigmas'], keypoints['areas'], level)
    px = np.broadcast_to(np.asarray(keypoints['heatmap_px'], float)[:, None], tol.shape)
    ok = (np.asarray(keypoints['dists'], float) >= 0) & np.isfinite(tol) & np.isfinite(px) \
        & (px > 0)
    if not ok.any():
        return out
    ratio = tol[ok] / px[ok]
    return {'median_tolerance_px': float(np.median(tol[ok])),
            'median_heatmap_px': float(np.median(px[ok])),
            'median_ratio': float(np.median(ratio)),
            'share_below_one': float(np.mean(ratio < 1)), 'n': int(ok.sum())}
