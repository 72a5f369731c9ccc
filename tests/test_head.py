"""Tests of ``PixelClassHead``."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

import bench  # noqa: F401  (registers the modules)
from bench.codecs import PixelClassLabel
from bench.models import PixelClassHead
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

K = 17
IN_CH = 8
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
CODEC = dict(
    type='PixelClassLabel', input_size=(64, 64), heatmap_size=(16, 16),
    sigma=1.5)


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('mmpose')


def build_head(**kwargs):
    cfg = dict(
        type='PixelClassHead',
        in_channels=IN_CH,
        out_channels=K,
        deconv_out_channels=(32, ),
        deconv_kernel_sizes=(4, ),
        loss=dict(type='PixelCrossEntropyLoss', neg_pos_ratio=3),
        decoder=CODEC)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def feats(B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, IN_CH, 8, 8, generator=g), )


def data_samples(B=2, seed=0):
    codec = PixelClassLabel((64, 64), (16, 16), sigma=1.5)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(B):
        kp = rng.uniform(0, 63, (1, K, 2))
        vis = (rng.uniform(size=(1, K)) > 0.2).astype(np.float32)
        enc = codec.encode(kp, vis)
        s = PoseDataSample(metainfo=dict(flip_indices=COCO_FLIP))
        s.gt_fields = PixelData(heatmaps=torch.from_numpy(enc['heatmaps']))
        s.gt_instance_labels = InstanceData(
            keypoint_weights=torch.from_numpy(enc['keypoint_weights']))
        s.gt_instances = InstanceData(keypoints=kp, keypoints_visible=vis)
        samples.append(s)
    return samples


def test_build_and_output_shape():
    head = build_head()
    assert isinstance(head, PixelClassHead) and isinstance(head, HeatmapHead)
    assert head.out_channels == K
    out = head.forward(feats())
    assert out.shape == (2, K + 1, 16, 16)
    # same trunk options as HeatmapHead
    head2 = build_head(
        deconv_out_channels=(16, 16),
        deconv_kernel_sizes=(4, 4),
        conv_out_channels=(16, ),
        conv_kernel_sizes=(3, ))
    assert head2.forward(feats()).shape == (2, K + 1, 32, 32)


def test_flip_probs_helper():
    B, C, H, W = 2, K + 1, 4, 5
    probs = torch.rand(B, C, H, W)
    out = PixelClassHead.flip_probs(probs, COCO_FLIP)
    for c in range(C):
        src = 0 if c == 0 else 1 + COCO_FLIP[c - 1]
        torch.testing.assert_close(out[:, c], probs[:, src].flip(-1))
    shifted = PixelClassHead.flip_probs(probs, COCO_FLIP, shift_heatmap=True)
    torch.testing.assert_close(shifted[..., 1:], out[..., :-1])
    torch.testing.assert_close(shifted[..., 0], out[..., 0])
    with pytest.raises(ValueError):
        PixelClassHead.flip_probs(probs, COCO_FLIP[:-1])


def test_flip_test_restores_keypoints_and_background():
    """Feed logits directly (forward = identity) so that the flipped-image
    prediction is known: the encoded target of the mirrored pose."""
    head = build_head()
    head.forward = lambda f: f[-1]
    codec = head.decoder
    Wh = 16
    rng = np.random.default_rng(0)
    # distinct keypoints (heatmap space)
    pts = []
    for _ in range(100000):
        p = rng.uniform(1, Wh - 2, 2)
        if all(np.hypot(*(p - q)) >= 2.5 for q in pts):
            pts.append(p)
            if len(pts) == K:
                break
    pts = np.array(pts)
    assert len(pts) == K
    # mirrored image: keypoint j sits at the mirror of keypoint flip[j]
    mirrored = pts[COCO_FLIP].copy()
    mirrored[:, 0] = Wh - 1 - mirrored[:, 0]
    scale = 64 / 16
    t = codec.encode(pts[None] * scale)['heatmaps']
    t_flip = codec.encode(mirrored[None] * scale)['heatmaps']
    eps = 1e-8
    logits = torch.from_numpy(np.log(t + eps))[None]
    logits_flip = torch.from_numpy(np.log(t_flip + eps))[None]
    samples = data_samples(B=1)

    preds, fields = head.predict([(logits, ), (logits_flip, )],
                                 samples,
                                 test_cfg=dict(
                                     flip_test=True, output_heatmaps=True))
    probs = fields[0].heatmaps
    assert probs.shape == (K + 1, 16, 16)
    # flipped-and-restored probabilities equal the original ones
    torch.testing.assert_close(
        probs, torch.from_numpy(t).float(), atol=1e-5, rtol=0)
    kp = preds[0].keypoints
    assert kp.shape == (1, K, 2)
    ref_kp, ref_scores = codec.decode(t)
    np.testing.assert_allclose(kp, ref_kp, atol=1e-3)
    np.testing.assert_allclose(preds[0].keypoint_scores, ref_scores,
                               atol=1e-5)

    # a wrong channel permutation would not restore the target
    bad = PixelClassHead.flip_probs(
        torch.from_numpy(t_flip)[None], list(range(K)))[0]
    assert (bad - torch.from_numpy(t)).abs().max() > 0.5


def test_loss_returns_finite_parts_and_backprops():
    head = build_head()
    losses = head.loss(feats(), data_samples())
    assert set(losses) == {'loss_kpt', 'acc_pose', 'bg_part', 'fg_part', 'bg_kept'}
    # the logged parts are the loss's two contributions: they add up to it
    torch.testing.assert_close(losses['bg_part'] + losses['fg_part'], losses['loss_kpt'].detach())
    assert 0 < float(losses['bg_kept']) <= 1
    for v in losses.values():
        assert torch.isfinite(v).all()
    # only loss_kpt is summed into the total loss by MMEngine
    assert [k for k in losses if 'loss' in k] == ['loss_kpt']
    assert 0 <= float(losses['acc_pose']) <= 1
    losses['loss_kpt'].backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    from mmengine.model import BaseModel
    total, log_vars = BaseModel.parse_losses(None, losses)
    torch.testing.assert_close(total, losses['loss_kpt'])
    assert {'bg_part', 'fg_part', 'bg_kept', 'acc_pose'} <= set(log_vars)


def test_loss_with_focal_loss():
    head = build_head(loss=dict(type='PixelFocalLoss', gamma=2.0))
    losses = head.loss(feats(), data_samples(), train_cfg=dict(
        compute_acc=False))
    assert set(losses) == {'loss_kpt', 'bg_part', 'fg_part', 'bg_kept'}
    assert torch.isfinite(losses['loss_kpt'])


@pytest.mark.parametrize('flip', [False, True])
def test_predict(flip):
    head = build_head()
    head.eval()
    f = feats()
    inputs = [f, tuple(x.flip(-1) for x in f)] if flip else f
    with torch.no_grad():
        preds = head.predict(inputs, data_samples(), test_cfg=dict(
            flip_test=flip, shift_heatmap=flip))
    assert len(preds) == 2
    for p in preds:
        assert isinstance(p, InstanceData)
        assert p.keypoints.shape == (1, K, 2)
        assert p.keypoint_scores.shape == (1, K)
        assert np.all(p.keypoint_scores >= 0) and np.all(
            p.keypoint_scores <= 1)
        assert np.all(np.isfinite(p.keypoints))
