"""KeypointRecorder, the source of every headline number, against MMPose's own functions and
hand-computed answers on hand-built predictions (no model, no data: milliseconds)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from mmpose.evaluation.functional import keypoint_auc, keypoint_epe, keypoint_pck_accuracy

from bench.evaluation.metrics import CURVE_THRESHOLDS, KeypointRecorder

# 4 instances × 3 keypoints; bbox size 64 px (the PCK normaliser), so thresholds 0.0625,
# 0.125, 0.25 are 4, 8 and 16 px, and every distance below is an exact binary fraction of it.
# Errors (px, along x); None: not labelled. Keypoint 2 is never labelled.
ERRORS = [[2, 0, None],
          [8, 6, None],          # 8 px = exactly 0.125: a miss for PCK@0.125 (strict <)
          [12, None, None],
          [20, 10, None]]
THRESHOLDS = (0.0625, 0.125, 0.25)
SIGMAS = np.array([0.025, 0.05, 0.1])
AREAS = [1000.0, 1500.0, 800.0, 2000.0]
NAMES = {0: 'nose', 1: 'eye', 2: 'ear'}


def _samples():
    rng = np.random.default_rng(0)
    out, preds, gts, masks = [], [], [], []
    for i, row in enumerate(ERRORS):
        gt = rng.uniform(20, 60, size=(1, 3, 2))
        pred = gt.copy()
        pred[0, :, 0] += [e if e is not None else 7.0 for e in row]
        visible = np.array([[e is not None for e in row]], dtype=np.float32)
        out.append({
            'img_id': 100 + i,
            'input_scale': np.array([80.0, 80.0], np.float32),
            'raw_ann_info': {'area': AREAS[i]},
            'gt_instances': {'keypoints': gt, 'keypoints_visible': visible,
                             'bboxes': np.array([[10.0, 20.0, 74.0, 60.0]])},   # 64 × 40
            'pred_instances': {'keypoints': pred,
                               'keypoint_scores': np.array([[0.9, 0.5, 0.1]])}})
        preds.append(pred[0])
        gts.append(gt[0])
        masks.append(visible[0] > 0)
    return out, np.stack(preds), np.stack(gts), np.stack(masks)


@pytest.fixture
def scored(tmp_path):
    samples, pred, gt, mask = _samples()
    metric = KeypointRecorder(thresholds=THRESHOLDS, per_joint_thr=0.125, heatmap_size=(16, 16),
                              out_file=str(tmp_path / 'kp.npz'))
    metric.dataset_meta = {'keypoint_id2name': NAMES, 'sigmas': SIGMAS}
    metric.process([], samples)
    metrics = metric.compute_metrics(metric.results)
    with np.load(tmp_path / 'kp.npz') as z:
        dump = {k: z[k] for k in z.files}
    return metrics, dump, pred, gt, mask


def test_pck_is_mmposes_joint_mean_with_strict_threshold(scored):
    metrics, _, pred, gt, mask = scored
    norm = np.full((4, 2), 64.0)
    # by hand: keypoint 0 errors 2, 8, 12, 20 px; keypoint 1 errors 0, 6, 10; keypoint 2 never
    hand = {0.0625: (1 / 4 + 1 / 3) / 2,     # < 4 px: {2} of 4, {0} of 3
            0.125: (1 / 4 + 2 / 3) / 2,      # < 8 px: {2} of 4 (8 is not < 8), {0, 6} of 3
            0.25: (3 / 4 + 3 / 3) / 2}       # < 16 px: {2, 8, 12} of 4, all 3
    for thr in THRESHOLDS:
        _, mm, _ = keypoint_pck_accuracy(pred, gt, mask, thr, norm)
        assert metrics[f'PCK@{thr:g}'] == pytest.approx(hand[thr], abs=1e-12)
        assert metrics[f'PCK@{thr:g}'] == pytest.approx(mm, abs=1e-12)
    # not the pooled share of keypoints with <= (the old curve's definition): 4/7
    assert metrics['PCK@0.125'] != pytest.approx(4 / 7)


def test_per_joint_pck(scored):
    metrics, _, pred, gt, mask = scored
    assert metrics['PCK@0.125/nose'] == pytest.approx(1 / 4)
    assert metrics['PCK@0.125/eye'] == pytest.approx(2 / 3)
    assert metrics['PCK@0.125/ear'] == -1.0                  # never labelled
    per_joint, _, _ = keypoint_pck_accuracy(pred, gt, mask, 0.125, np.full((4, 2), 64.0))
    np.testing.assert_allclose([metrics[f'PCK@0.125/{n}'] for n in NAMES.values()], per_joint)


def test_auc_is_keypoint_auc_and_the_mean_of_the_curve(scored):
    metrics, dump, pred, gt, mask = scored
    # keypoint_auc normalises by one factor: 0.5 * 64 px makes its thresholds i / 50 those of
    # the curve, t = 0, 0.01, ..., 0.49 of the bbox size
    mm = keypoint_auc(pred, gt, mask, norm_factor=0.5 * 64, num_thrs=50)
    assert metrics['AUC'] == pytest.approx(mm, abs=1e-12)
    # by hand: a distance d (in bbox sizes) is below 49 - floor(100 d) of the 50 thresholds;
    # keypoint 0: 46 + 37 + 31 + 18 = 132 over 4, keypoint 1: 49 + 40 + 34 = 123 over 3
    assert metrics['AUC'] == pytest.approx((132 / 4 + 123 / 3) / 2 / 50, abs=1e-12)
    np.testing.assert_allclose(dump['curve_thresholds'], CURVE_THRESHOLDS)
    assert dump['curve'].mean() == pytest.approx(metrics['AUC'], abs=1e-12)
    for t, value in zip(dump['curve_thresholds'], dump['curve']):
        _, mm_t, _ = keypoint_pck_accuracy(pred, gt, mask, t, np.full((4, 2), 64.0))
        assert value == pytest.approx(mm_t, abs=1e-12)


def test_epe_is_keypoint_epe(scored):
    metrics, _, pred, gt, mask = scored
    assert metrics['EPE'] == pytest.approx(keypoint_epe(pred, gt, mask), abs=1e-12)
    assert metrics['EPE'] == pytest.approx((2 + 8 + 12 + 20 + 0 + 6 + 10) / 7, abs=1e-12)


def test_mean_oks_matches_cocoeval(scored):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    metrics, dump, pred, gt, mask = scored
    coco = COCO()
    coco.dataset = {
        'images': [{'id': i} for i in range(4)],
        'categories': [{'id': 1, 'name': 'person', 'keypoints': list(NAMES.values()),
                        'skeleton': []}],
        'annotations': [{'id': i + 1, 'image_id': i, 'category_id': 1, 'iscrowd': 0,
                         'area': AREAS[i], 'bbox': [10, 20, 64, 40],
                         'num_keypoints': int(mask[i].sum()),
                         'keypoints': [float(v) for j in range(3) for v in
                                       (*gt[i, j], 2 * mask[i, j])]} for i in range(4)]}
    coco.createIndex()
    dets = coco.loadRes([{'image_id': i, 'category_id': 1, 'score': 1.0,
                          'keypoints': [float(v) for j in range(3) for v in (*pred[i, j], 1)]}
                         for i in range(4)])
    ev = COCOeval(coco, dets, 'keypoints')
    ev.params.kpt_oks_sigmas = SIGMAS
    ev.evaluate()
    expected = np.array([ev.ious[(i, 1)][0, 0] for i in range(4)])
    np.testing.assert_allclose(dump['oks'], expected, rtol=1e-9)
    assert metrics['mean_OKS'] == pytest.approx(expected.mean(), rel=1e-9)


def test_dump_holds_what_the_report_reads(scored):
    metrics, dump, *_ = scored
    assert dump['img_ids'].tolist() == [100, 101, 102, 103]
    assert dump['scores'].shape == dump['dists'].shape == (4, 3)
    np.testing.assert_allclose(dump['dists'][:, 0], [2 / 64, 8 / 64, 12 / 64, 20 / 64])
    assert (dump['dists'][:, 2] == -1).all() and dump['dists'][2, 1] == -1
    np.testing.assert_allclose(dump['areas'], AREAS)
    np.testing.assert_allclose(dump['heatmap_px'], 80 / 16)
    np.testing.assert_allclose(dump['sigmas'], SIGMAS)
    np.testing.assert_allclose(dump['bbox_size'], 64)


def test_without_sigmas_mean_oks_is_nan(tmp_path):
    samples, *_ = _samples()
    metric = KeypointRecorder(thresholds=(0.1,))
    metric.dataset_meta = {'keypoint_id2name': NAMES}
    metric.process([], samples)
    assert math.isnan(metric.compute_metrics(metric.results)['mean_OKS'])
