"""Per-pixel calibration of a classification head: are its K+1 softmax outputs honest
probabilities, i.e. does a pixel-class predicted with probability p hold target mass p?

Every (pixel, class) entry of every test image is one forecast: the predicted probability
p (the head's softmax, one forward pass without flip test: the distribution the loss trains)
against the soft target t of :class:`bench.codecs.PixelClassLabel` (the probability the
target assigns to that class at that pixel). :class:`PixelReliability` accumulates, per class
(channel) and bin of p, the count, the sum of p and the sum of t; :func:`pixel_ece` turns the
bins into a class-wise expected calibration error over pixels and classes,
``Σ_classes Σ_bins |Σ p − Σ t| / (number of entries)`` (the "static calibration error").

Why class-wise: binned over all classes together, the errors of different classes cancel in
a bin. Since p and t both sum to 1 over the classes of a pixel, a network that predicts
1/(K+1) everywhere would put every entry in one bin with Σ p = Σ t and score a perfect 0.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from bench.formulations import for_head

#: Channel groups of the figure: the background channel, and the K keypoint channels pooled.
GROUPS = ('background', 'keypoints')


class PixelReliability:
    """Reliability histograms, one per class, of per-pixel class probabilities against soft
    targets.

    Args:
        n_bins: equal-width bins of the predicted probability on [0, 1] (the last one closed).
    """

    def __init__(self, n_bins: int = 20):
        if n_bins < 1:
            raise ValueError(f'n_bins must be >= 1, got {n_bins}')
        self.edges = np.linspace(0.0, 1.0, n_bins + 1)
        self.count = self.sum_pred = self.sum_target = None     # (C, n_bins) once seen

    def update(self, probs: np.ndarray, target: np.ndarray) -> None:
        """Add one image: ``probs`` and ``target`` (C, H, W) with C = K+1, channel 0 =
        background."""
        probs = np.asarray(probs, np.float64)
        target = np.asarray(target, np.float64)
        if probs.shape != target.shape:
            raise ValueError(f'probs {probs.shape} and target {target.shape} differ')
        c, n_bins = probs.shape[0], self.edges.size - 1
        if self.count is None:
            self.count = np.zeros((c, n_bins), np.int64)
            self.sum_pred = np.zeros((c, n_bins))
            self.sum_target = np.zeros((c, n_bins))
        elif self.count.shape[0] != c:
            raise ValueError(f'{c} channels, earlier images had {self.count.shape[0]}')
        p, t = probs.reshape(c, -1), target.reshape(c, -1)
        # one bincount over (channel, bin) pairs: channel-major flat bin index
        b = (np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
             + n_bins * np.arange(c)[:, None]).ravel()
        size = c * n_bins
        self.count += np.bincount(b, minlength=size).reshape(c, n_bins)
        self.sum_pred += np.bincount(b, weights=p.ravel(), minlength=size).reshape(c, n_bins)
        self.sum_target += np.bincount(b, weights=t.ravel(), minlength=size).reshape(c, n_bins)

    def result(self) -> dict[str, np.ndarray]:
        """``edges`` (B+1,), ``count`` (C, B), ``sum_pred`` (C, B), ``sum_target`` (C, B),
        row c = channel c (0: background); (0, B) arrays before any image."""
        n_bins = self.edges.size - 1
        empty = np.zeros((0, n_bins))
        return dict(edges=self.edges.copy(),
                    count=(self.count if self.count is not None
                           else empty.astype(np.int64)).copy(),
                    sum_pred=(self.sum_pred if self.sum_pred is not None else empty).copy(),
                    sum_target=(self.sum_target if self.sum_target is not None
                                else empty).copy())


def pixel_ece(count: np.ndarray, sum_pred: np.ndarray, sum_target: np.ndarray) -> float:
    """Class-wise ECE from (C, B) :class:`PixelReliability` bins (one row per class):
    ``Σ_rows Σ_bins |Σ p − Σ t| / Σ count``. NaN when empty."""
    c = np.asarray(count, np.float64)
    total = c.sum()
    if total == 0:
        return float('nan')
    diff = np.asarray(sum_pred, np.float64) - np.asarray(sum_target, np.float64)
    return float(np.abs(diff).sum() / total)


def by_group(hist: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(C, B) per-channel bins → (2, B) bins of :data:`GROUPS` (row 0: background, row 1: the
    keypoint channels summed), for the figure."""
    return {k: np.stack([np.asarray(hist[k])[0], np.asarray(hist[k])[1:].sum(axis=0)])
            for k in ('count', 'sum_pred', 'sum_target')}


def score_pixels(model, batches: Iterable[dict], n_bins: int = 20) -> dict[str, np.ndarray] | None:
    """Run a classification model over ``batches`` (a test dataloader) and accumulate its
    per-pixel reliability against the codec's soft targets (a head whose formulation record
    says its maps are K+1 class probabilities, :mod:`bench.formulations`).

    The targets are encoded from the annotated keypoints warped into the model-input frame
    (the same warp as the input image), with the head's own codec. Returns
    :meth:`PixelReliability.result` plus ``ece`` (a 0-d array), or None for a head whose
    maps are not K+1 class probabilities, or that has no maps at all (nothing to score, no
    crash).
    """
    import torch

    from bench.engine.inference import (input_from_original, test_cfg_override,
                                        to_input_frame, uses_udp)
    codec = getattr(model.head, 'decoder', None)
    if codec is None or not for_head(type(model.head).__name__).pixel_classes:
        return None  # SimCC, RLE, DSNT, heatmap regression...: no K+1 class maps
    udp = uses_udp(getattr(batches, 'dataset', None))
    acc = PixelReliability(n_bins)
    with test_cfg_override(model, output_heatmaps=True, flip_test=False), torch.no_grad():
        for batch in batches:
            for sample in model.test_step(batch):
                probs = sample.pred_fields.heatmaps.cpu().numpy()
                kpts = to_input_frame(np.asarray(sample.gt_instances.keypoints[:1]),
                                      input_from_original(sample.metainfo, use_udp=udp))
                visible = np.asarray(sample.gt_instances.keypoints_visible[:1], np.float32)
                target = codec.encode(kpts.astype(np.float32), visible)['heatmaps']
                acc.update(probs, target)
    out = acc.result()
    out['ece'] = np.asarray(pixel_ece(out['count'], out['sum_pred'], out['sum_target']))
    return out
