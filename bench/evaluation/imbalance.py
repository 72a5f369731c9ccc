"""How imbalanced the per-pixel classification problem is: the background share of the pixels of
real encoded targets, and what hard negative mining would keep of it.

The paper's loss ideas (mining, balancing) fight an imbalance that grows with the heatmap
resolution at a fixed sigma in heatmap pixels: the keypoints' pixels stay about as many while
the map grows quadratically. This module measures it on the train split's targets (what the
losses see, without augmentation), so the README can say at which resolutions there is anything
to fight.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def imbalance_rows(samples: Sequence[dict], input_size: Sequence[int],
                   heatmap_sizes: Sequence[Sequence[int]], sigma: float,
                   bg_threshold: float = 0.9,
                   ratios: Sequence[float] = (1.0, 3.0)) -> list[dict]:
    """Per heatmap size: median / min / max over instances of the background share (pixels
    whose background target is >= ``bg_threshold``) and, per OHEM ratio, the median fraction of
    background pixels that mining would keep (``min(1, ceil(ratio * n_pos) / n_bg)``) and the
    share of instances where it keeps them all.

    Args:
        samples: test-pipeline results with ``transformed_keypoints`` (1, K, 2) and
            ``keypoints_visible`` (1, K) in the model-input frame
            (:func:`bench.evaluation.codec_floor.split_samples`).
    """
    from bench.codecs import PixelClassLabel
    rows = []
    for size in heatmap_sizes:
        codec = PixelClassLabel(input_size=tuple(input_size), heatmap_size=tuple(size),
                                sigma=sigma)
        bg_share, kept = [], {r: [] for r in ratios}
        for s in samples:
            t0 = codec.encode(s['transformed_keypoints'][:1], s['keypoints_visible'][:1])[
                'heatmaps'][0]
            bg = t0 >= bg_threshold
            n_bg, n_pos = int(bg.sum()), int((~bg).sum())
            bg_share.append(n_bg / bg.size)
            for r in ratios:
                kept[r].append(1.0 if n_bg == 0 else min(1.0, math.ceil(r * n_pos) / n_bg))
        row = dict(heatmap=f'{size[0]}x{size[1]}', sigma=sigma, bg_threshold=bg_threshold,
                   bg_share_median=float(np.median(bg_share)), bg_share_min=float(np.min(
                       bg_share)), bg_share_max=float(np.max(bg_share)))
        for r in ratios:
            k = np.asarray(kept[r])
            row[f'ohem{r:g}_bg_kept_median'] = float(np.median(k))
            row[f'ohem{r:g}_keeps_all'] = float((k >= 1.0).mean())
        rows.append(row)
    return rows
