"""HeatmapSnapshotHook and the per-pixel calibration pass draw and score in the model-input
frame: their ground truth is the annotation warped exactly as the input image was.

A real (untrained) model and the tiny generated dataset; the reference is MMPose's own
``TopdownAffine`` output (``transformed_keypoints``), not our warp. Seconds, no training.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from bench.config import build_config
from bench.engine.hooks import HeatmapSnapshotHook
from bench.evaluation.pixel_calibration import pixel_ece, score_pixels
from bench.params import load_params

N_IMAGES = 3


@pytest.fixture(scope='module')
def built(tiny_data):
    """(model, val dataset) of the tiny classification config, built like the train stage."""
    import os
    os.environ['POSEBENCH_WORKDIR'] = str(tiny_data)
    try:
        params = load_params(tiny_data / 'params.yaml')
        cfg = build_config(params, 'cls_ohem', seed=0)
        init_default_scope('mmpose')
        from mmpose.models import build_pose_estimator
        from mmpose.registry import DATASETS
        torch.manual_seed(0)
        model = build_pose_estimator(cfg.model)
        yield model, DATASETS.build(cfg.val_dataloader.dataset)
    finally:
        del os.environ['POSEBENCH_WORKDIR']


def warped_annotation(dataset, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) annotated keypoints of sample i in the model-input frame, and (K,) labelled:
    the val pipeline run up to (not including) PackPoseInputs, which drops this field."""
    results = dataset.get_data_info(i)
    for transform in dataset.pipeline.transforms[:-1]:
        results = transform(results)
    return (np.asarray(results['transformed_keypoints'][0], float),
            np.asarray(results['keypoints_visible'][0]) > 0)


def test_snapshot_ground_truth_is_in_the_input_frame(built, tmp_path):
    model, dataset = built
    hook = HeatmapSnapshotHook(out_dir=str(tmp_path), epochs=[1], num_images=N_IMAGES)
    runner = SimpleNamespace(epoch=0, rank=0, max_epochs=5, model=model,
                             val_dataloader=SimpleNamespace(dataset=dataset))
    model.train()
    hook.after_train_epoch(runner)
    assert model.training and model.test_cfg.get('flip_test')       # options restored
    with np.load(tmp_path / 'epoch_001.npz') as z:
        snap = {k: z[k] for k in z.files}
    h, w = snap['images'].shape[1:3]
    moved = 0.0
    for i in range(N_IMAGES):
        expected, labelled = warped_annotation(dataset, i)
        assert labelled.sum() >= 8
        np.testing.assert_array_equal(snap['gt_visible'][i], labelled)
        err = np.abs(snap['gt'][i][labelled] - expected[labelled])
        assert err.max() <= 0.5, f'image {i}: ground truth off by {err.max():.2f} input px'
        inside = (expected[labelled] >= 0) & (expected[labelled] < [w, h])
        assert inside.all(axis=1).mean() > 0.7                       # the figure's joints
        original = np.asarray(dataset[i]['data_samples'].gt_instances.keypoints[0])
        moved = max(moved, np.abs(original[labelled] - expected[labelled]).max())
    assert moved > 5        # the original-image annotation would be visibly off the figure


class _OracleModel:
    """Stands in for a classification model whose softmax *is* the soft target of the
    annotation warped by MMPose's TopdownAffine: honest probabilities by construction."""

    def __init__(self, model, dataset):
        self.head = model.head
        self.test_cfg = dict(flip_test=True)
        self.training = False
        self.dataset = dataset

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def test_step(self, batch):
        assert self.test_cfg['flip_test'] is False and self.test_cfg['output_heatmaps']
        samples = batch['data_samples']
        for s in samples:
            kpts, labelled = warped_annotation(self.dataset, s.metainfo['id_in_batch'])
            target = self.head.decoder.encode(kpts[None].astype(np.float32),
                                              labelled[None].astype(np.float32))['heatmaps']
            s.pred_fields = PixelData(heatmaps=torch.from_numpy(target))
        return samples


def test_pixel_calibration_of_an_oracle_is_perfect(built):
    model, dataset = built
    items = []
    for i in range(N_IMAGES):
        item = dataset[i]
        item['data_samples'].set_metainfo({'id_in_batch': i})
        items.append(item)
    result = score_pixels(_OracleModel(model, dataset), [pseudo_collate(items)])
    k = model.head.num_keypoints
    assert result['count'].sum() == N_IMAGES * (k + 1) * 16 * 16
    assert float(result['ece']) < 1e-6                   # targets from our warp = MMPose's
    assert pixel_ece(result['count'], result['sum_pred'], result['sum_target']) < 1e-6
    assert result['count'].shape == (k + 1, 20)                  # one histogram per class
    assert result['count'][1:, 8:].sum() > 0   # keypoint peaks (p >= 0.4) are in the test


def test_pixel_calibration_skips_regression_heads(built):
    from mmpose.models.heads import HeatmapHead
    head = HeatmapHead(in_channels=8, out_channels=17, deconv_out_channels=(),
                       deconv_kernel_sizes=(), decoder=dict(type='MSRAHeatmap', sigma=2,
                                                            input_size=(64, 64),
                                                            heatmap_size=(16, 16)))
    assert score_pixels(SimpleNamespace(head=head), []) is None
