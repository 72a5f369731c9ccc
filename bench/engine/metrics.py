"""A metric that scores a test set *and* keeps what the report needs per keypoint."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpose.evaluation.functional import keypoint_epe, keypoint_pck_accuracy
from mmpose.evaluation.functional.keypoint_eval import _calc_distances
from mmpose.registry import METRICS

# PCK-vs-threshold curve: the report plots it, and its mean is the AUC.
CURVE_THRESHOLDS = np.round(np.linspace(0.01, 0.5, 50), 4)


@METRICS.register_module()
class KeypointRecorder(BaseMetric):
    """PCK at several thresholds (bbox-normalised, as MMPose's ``PCKAccuracy``), per-joint PCK,
    AUC of the PCK curve on [0.01, 0.5], EPE, and a dump of every keypoint for the report.

    The dump ``out_file`` (npz) holds, for N instances and K keypoints: ``img_ids`` (N,),
    ``scores`` (N, K) the predicted keypoint scores, ``dists`` (N, K) distances divided by the
    bbox size (-1 where the keypoint is not labelled), ``visible`` (N, K) bool.

    Args:
        thresholds (Sequence[float]): PCK thresholds reported as ``PCK@<thr>``.
        per_joint_thr (float): threshold of the per-joint PCK (``PCK@<thr>/<joint name>``).
        out_file (str, optional): where to write the dump.
    """
    default_prefix = ''

    def __init__(self, thresholds: Sequence[float] = (0.05, 0.1, 0.2),
                 per_joint_thr: float = 0.1, out_file: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.per_joint_thr = float(per_joint_thr)
        self.out_file = out_file

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = sample['gt_instances']
            mask = gt['keypoints_visible'].astype(bool).reshape(1, -1)
            bbox = gt['bboxes'][0]
            self.results.append(dict(
                img_id=sample['img_id'],
                pred=sample['pred_instances']['keypoints'][:1],
                scores=np.asarray(sample['pred_instances']['keypoint_scores'][0], np.float64),
                gt=gt['keypoints'][:1],
                mask=mask,
                bbox_size=float(np.max(bbox[2:] - bbox[:2]))))

    def compute_metrics(self, results: list) -> dict[str, float]:
        pred = np.concatenate([r['pred'] for r in results])
        gt = np.concatenate([r['gt'] for r in results])
        mask = np.concatenate([r['mask'] for r in results])
        norm = np.array([[r['bbox_size']] * 2 for r in results])
        metrics: dict[str, float] = {}
        for thr in self.thresholds:
            _, avg, _ = keypoint_pck_accuracy(pred, gt, mask, thr, norm)
            metrics[f'PCK@{thr:g}'] = float(avg)
        per_joint, _, _ = keypoint_pck_accuracy(pred, gt, mask, self.per_joint_thr, norm)
        names = self.dataset_meta.get('keypoint_id2name', {}) if self.dataset_meta else {}
        for j, acc in enumerate(per_joint):
            # -1: joint never labelled in this split
            metrics[f'PCK@{self.per_joint_thr:g}/{names.get(j, str(j))}'] = float(acc)
        dists = _calc_distances(pred, gt, mask, norm).T  # (N, K), -1 where unlabelled
        valid = dists >= 0
        curve = np.array([(dists[valid] <= t).mean() for t in CURVE_THRESHOLDS])
        metrics['AUC'] = float(curve.mean())
        metrics['EPE'] = float(keypoint_epe(pred, gt, mask))
        if self.out_file:
            Path(self.out_file).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(
                self.out_file, img_ids=np.array([r['img_id'] for r in results]),
                scores=np.stack([r['scores'] for r in results]), dists=dists,
                visible=mask, curve_thresholds=CURVE_THRESHOLDS, curve=curve)
        return metrics
