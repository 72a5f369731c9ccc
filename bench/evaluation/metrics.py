"""A metric that scores a test set *and* keeps what the report needs per keypoint, and COCO AP
under a head's second keypoint score."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpose.evaluation.functional import keypoint_epe, keypoint_pck_accuracy
from mmpose.evaluation.functional.keypoint_eval import _calc_distances
from mmpose.evaluation.metrics import CocoMetric
from mmpose.registry import METRICS

# The PCK-vs-threshold curve and its AUC, on MMPose's ``keypoint_auc`` grid: thresholds
# i / AUC_STEPS * AUC_RANGE for i = 0 .. AUC_STEPS - 1 (bbox-normalised), AUC = the curve's
# mean. With one bbox size B for every instance, AUC == keypoint_auc(..., norm_factor=
# AUC_RANGE * B, num_thrs=AUC_STEPS).
AUC_RANGE = 0.5
AUC_STEPS = 50
CURVE_THRESHOLDS = np.arange(AUC_STEPS) / AUC_STEPS * AUC_RANGE


def pck(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, thr: float,
        norm: np.ndarray) -> tuple[np.ndarray, float]:
    """MMPose's PCK, the one definition of every number named PCK in posebench.

    Per keypoint type, the share of its labelled instances with a normalised distance strictly
    below ``thr``; then the mean over the keypoint types labelled at least once.

    Args:
        pred, gt: (N, K, 2) keypoints; mask: (N, K) bool, labelled; norm: (N, 2) normaliser.

    Returns:
        (K,) per-keypoint accuracy (-1 where never labelled) and the mean (0.0 if none).
    """
    per_joint, avg, _ = keypoint_pck_accuracy(pred, gt, mask, thr, norm)
    return per_joint, float(avg)


def oks_per_instance(dists_px: np.ndarray, labelled: np.ndarray, areas: np.ndarray,
                     sigmas: np.ndarray) -> np.ndarray:
    """COCO's object keypoint similarity of each instance with its ground truth.

    ``mean over labelled j of exp(-d_j² / (2 · area · (2 σ_j)²))`` (``COCOeval.computeOks``
    for an instance with labelled keypoints).

    Args:
        dists_px: (N, K) prediction-to-ground-truth distances in image pixels.
        labelled: (N, K) bool.
        areas: (N,) the instances' annotated areas (image px²).
        sigmas: (K,) the dataset's OKS sigmas.

    Returns:
        (N,) OKS in [0, 1]; NaN for an instance without labelled keypoints or without area.
    """
    var = (2.0 * np.asarray(sigmas, float)) ** 2                      # (K,)
    a = np.asarray(areas, float)[:, None] + np.spacing(1)             # as COCOeval
    with np.errstate(invalid='ignore', divide='ignore'):
        sim = np.exp(-np.asarray(dists_px, float) ** 2 / var / a / 2)
        count = labelled.sum(axis=1)
        out = np.where(labelled, sim, 0.0).sum(axis=1) / count
    return np.where((count > 0) & np.isfinite(out), out, np.nan)


def _area(sample: dict) -> float:
    """The instance's annotated area: ``raw_ann_info['area']`` (the COCO annotation), NaN if
    the dataset does not record one."""
    raw = sample.get('raw_ann_info')
    if isinstance(raw, list):                      # bottom-up style: several annotations
        raw = raw[0] if raw else None
    area = raw.get('area') if isinstance(raw, dict) else None
    if area is None:
        area = sample['gt_instances'].get('areas', [math.nan])[0]
    return float(area)


def _second_score(pred: dict) -> np.ndarray | None:
    """(K,) ``keypoint_probs``, the classification heads' second score (the class probability
    at the decoded pixel); None for a head that gives one score only."""
    p = pred.get('keypoint_probs')
    return None if p is None else np.asarray(p[0], np.float64)


@METRICS.register_module()
class ScoreCocoMetric(CocoMetric):
    """MMPose's ``CocoMetric`` ranking instances by another per-keypoint score of the
    predictions: ``score_key`` (for example ``'keypoint_probs'``) replaces
    ``keypoint_scores``. Everything else is ``CocoMetric``'s own.

    Args:
        score_key (str): the ``pred_instances`` field to score keypoints with.
        **kwargs: ``CocoMetric``'s arguments.
    """

    def __init__(self, score_key: str = 'keypoint_scores', **kwargs):
        super().__init__(**kwargs)
        self.score_key = score_key

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        swapped = []
        for sample in data_samples:
            pred = dict(sample['pred_instances'])
            pred['keypoint_scores'] = pred[self.score_key]
            swapped.append({**sample, 'pred_instances': pred})
        super().process(data_batch, swapped)


@METRICS.register_module()
class KeypointRecorder(BaseMetric):
    """Every posebench keypoint metric of a split, and a dump of every keypoint for the report.

    Metrics (all bbox-normalised PCKs are MMPose's :func:`pck`): ``PCK@<thr>`` per threshold,
    per-joint ``PCK@<per_joint_thr>/<joint name>`` (-1: joint never labelled), ``AUC`` (the mean
    of the PCK curve at :data:`CURVE_THRESHOLDS`, MMPose's ``keypoint_auc`` with bbox
    normalisation), ``EPE`` (MMPose's ``keypoint_epe``, image pixels) and ``mean_OKS`` (the mean
    over instances of :func:`oks_per_instance`; NaN without OKS sigmas in the dataset meta).

    The dump ``out_file`` (npz) holds, for N instances and K keypoints: ``img_ids`` (N,),
    ``scores`` (N, K) the predicted keypoint scores, ``probs`` (N, K) the second score
    (``keypoint_probs``: a classification head's class probability; only when every sample
    has one), ``dists`` (N, K) distances divided by the
    bbox size (-1 where the keypoint is not labelled), ``visible`` (N, K) bool,
    ``curve_thresholds`` (T,) and ``curve`` (T,) the PCK curve, ``oks`` (N,), ``areas`` (N,)
    annotated areas, ``bbox_size`` (N,) the PCK normaliser in image px, ``heatmap_px`` (N,)
    image pixels per heatmap pixel (NaN without ``heatmap_size``) and ``sigmas`` (K,).

    Args:
        thresholds (Sequence[float]): PCK thresholds reported as ``PCK@<thr>``.
        per_joint_thr (float): threshold of the per-joint PCK.
        heatmap_size (Sequence[int], optional): (W, H) of the model's heatmaps, to record
            the size of a heatmap pixel in image pixels (input_scale / heatmap size).
        out_file (str, optional): where to write the dump.
    """
    default_prefix = ''

    def __init__(self, thresholds: Sequence[float] = (0.05, 0.1, 0.2),
                 per_joint_thr: float = 0.1, heatmap_size: Sequence[int] | None = None,
                 out_file: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.per_joint_thr = float(per_joint_thr)
        self.heatmap_size = (np.asarray(heatmap_size, np.float64) if heatmap_size is not None
                             else None)
        self.out_file = out_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = sample['gt_instances']
            bbox = np.asarray(gt['bboxes'][0], np.float64)
            scale = sample.get('input_scale')
            hm_px = (float(np.mean(np.asarray(scale, np.float64) / self.heatmap_size))
                     if scale is not None and self.heatmap_size is not None else math.nan)
            self.results.append(dict(
                img_id=sample['img_id'],
                pred=np.asarray(sample['pred_instances']['keypoints'][:1], np.float64),
                scores=np.asarray(sample['pred_instances']['keypoint_scores'][0], np.float64),
                probs=_second_score(sample['pred_instances']),
                gt=np.asarray(gt['keypoints'][:1], np.float64),
                mask=np.asarray(gt['keypoints_visible']).astype(bool).reshape(1, -1),
                bbox_size=float(np.max(bbox[2:] - bbox[:2])),
                area=_area(sample), heatmap_px=hm_px))

    def compute_metrics(self, results: list) -> dict[str, float]:
        pred = np.concatenate([r['pred'] for r in results])            # (N, K, 2)
        gt = np.concatenate([r['gt'] for r in results])
        mask = np.concatenate([r['mask'] for r in results])            # (N, K)
        bbox_size = np.array([r['bbox_size'] for r in results])
        norm = np.repeat(bbox_size[:, None], 2, axis=1)                # (N, 2)
        metrics: dict[str, float] = {}
        for thr in self.thresholds:
            metrics[f'PCK@{thr:g}'] = pck(pred, gt, mask, thr, norm)[1]
        per_joint, _ = pck(pred, gt, mask, self.per_joint_thr, norm)
        names = self.dataset_meta.get('keypoint_id2name', {}) if self.dataset_meta else {}
        for j, acc in enumerate(per_joint):
            metrics[f'PCK@{self.per_joint_thr:g}/{names.get(j, str(j))}'] = float(acc)
        curve = np.array([pck(pred, gt, mask, t, norm)[1] for t in CURVE_THRESHOLDS])
        metrics['AUC'] = float(curve.mean())
        metrics['EPE'] = float(keypoint_epe(pred, gt, mask))

        # _calc_distances leaves out (-1) keypoints that are unlabelled or have a zero norm,
        # exactly the ones PCK leaves out
        dists = _calc_distances(pred, gt, mask, norm).T                 # (N, K)
        labelled = dists >= 0
        areas = np.array([r['area'] for r in results])
        sigmas = np.asarray((self.dataset_meta or {}).get('sigmas', []), np.float64)
        if sigmas.shape == (mask.shape[1],):
            oks = oks_per_instance(np.linalg.norm(pred - gt, axis=-1), labelled, areas, sigmas)
        else:
            oks, sigmas = np.full(len(results), np.nan), np.full(mask.shape[1], np.nan)
        metrics['mean_OKS'] = float(np.nanmean(oks)) if np.isfinite(oks).any() else math.nan
        if self.out_file:
            Path(self.out_file).parent.mkdir(parents=True, exist_ok=True)
            second = ([r['probs'] for r in results]
                      if all(r['probs'] is not None for r in results) else None)
            extra = {} if second is None else dict(probs=np.stack(second))
            np.savez_compressed(
                self.out_file, **extra, img_ids=np.array([r['img_id'] for r in results]),
                scores=np.stack([r['scores'] for r in results]), dists=dists,
                visible=mask, curve_thresholds=CURVE_THRESHOLDS, curve=curve, oks=oks,
                areas=areas, bbox_size=bbox_size,
                heatmap_px=np.array([r['heatmap_px'] for r in results]), sigmas=sigmas)
        return metrics
