"""Tests of the per-pixel classification losses."""
import math

import pytest
import torch
import torch.nn.functional as F

from bench.models import PixelCrossEntropyLoss, PixelFocalLoss
from mmpose.registry import MODELS

LOSS_CONFIGS = [
    dict(type='PixelCrossEntropyLoss'),
    dict(type='PixelCrossEntropyLoss', neg_pos_ratio=3),
    dict(type='PixelCrossEntropyLoss', balance=True),
    dict(type='PixelCrossEntropyLoss', neg_pos_ratio=2, balance=True),
    dict(type='PixelCrossEntropyLoss', use_target_weight=True),
    dict(type='PixelFocalLoss'),
    dict(type='PixelFocalLoss', gamma=0.5, alpha=0.25),
    dict(type='PixelFocalLoss', gamma=0.0),
]


def build(cfg):
    return MODELS.build(dict(cfg))


def soft_target(B=2, K=3, H=6, W=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, K + 1, H, W, generator=g).mul(2).softmax(1)


def one_hot_target(B=2, K=3, H=6, W=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K + 1, (B, H, W), generator=g)
    return F.one_hot(labels, K + 1).permute(0, 3, 1, 2).float()


def ce_map(logits, target):
    return -(target * logits.log_softmax(1)).sum(1)


def test_registered_with_loss_weight():
    for cfg in LOSS_CONFIGS:
        loss = build(dict(cfg, loss_weight=2.5))
        assert loss.loss_weight == 2.5
    logits = torch.randn(2, 4, 6, 5)
    target = soft_target()
    a = build(dict(type='PixelCrossEntropyLoss'))(logits, target)
    b = build(dict(type='PixelCrossEntropyLoss', loss_weight=2.5))(logits,
                                                                   target)
    torch.testing.assert_close(b, 2.5 * a)


def test_plain_ce_value_and_parts():
    logits = torch.randn(2, 4, 6, 5)
    target = soft_target()
    loss_fn = PixelCrossEntropyLoss()
    loss = loss_fn(logits, target)
    ce = ce_map(logits, target)
    torch.testing.assert_close(loss, ce.mean())
    pos = target[:, 0] < 0.5
    assert pos.any() and (~pos).any()
    torch.testing.assert_close(loss_fn.last_parts['fg'], ce[pos].mean())
    torch.testing.assert_close(loss_fn.last_parts['bg'], ce[~pos].mean())
    assert not loss_fn.last_parts['fg'].requires_grad
    # hard (one-hot) targets give the ordinary cross-entropy
    t1 = one_hot_target()
    torch.testing.assert_close(
        loss_fn(logits, t1), F.cross_entropy(logits, t1.argmax(1)))


def _ohem_case():
    """B=3 images, K=1, 4x4 pixels, distinct per-pixel losses.

    image 0: 2 positives, ratio 3 -> 6 hardest of 14 negatives kept
    image 1: no positive -> min_negatives (5) kept
    image 2: 15 positives, 1 negative -> the single negative (k clipped)
    """
    B, H, W = 3, 4, 4
    target = torch.zeros(B, 2, H, W)
    target[:, 0] = 1.0
    pos = torch.zeros(B, H, W, dtype=torch.bool)
    pos[0, 0, 0] = pos[0, 2, 3] = True
    pos[2] = True
    pos[2, 1, 1] = False
    target[:, 0][pos] = 0.0
    target[:, 1][pos] = 1.0
    # logit of the keypoint class grows with the pixel index: distinct losses
    g = torch.Generator().manual_seed(0)
    perm = torch.stack([torch.randperm(H * W, generator=g) for _ in range(B)])
    logits = torch.zeros(B, 2, H, W)
    logits[:, 1] = (perm.float() / 4 - 2).reshape(B, H, W)
    return logits, target, pos


def test_ohem_keeps_exact_pixel_counts():
    logits, target, pos = _ohem_case()
    loss_fn = PixelCrossEntropyLoss(neg_pos_ratio=3, min_negatives=5)
    ce = ce_map(logits, target)
    keep = loss_fn.hard_negative_mask(ce, pos)
    assert keep.reshape(3, -1).sum(1).tolist() == [2 + 6, 5, 15 + 1]
    assert torch.all(keep[pos])  # every positive is kept
    # the kept negatives are the hardest ones
    for b, k in enumerate([6, 5, 1]):
        neg = ce[b][~pos[b]]
        kept = ce[b][keep[b] & ~pos[b]]
        torch.testing.assert_close(
            kept.sort(descending=True).values,
            neg.sort(descending=True).values[:k])
    # the loss is the mean over the kept pixels
    loss = loss_fn(logits, target)
    torch.testing.assert_close(loss, ce[keep].mean())
    # non-integer ratio rounds up: ceil(1.5 * 2) = 3, ceil(0.7 * 2) = 2
    for ratio, n in [(1.5, 3), (0.7, 2), (0, 0)]:
        keep = PixelCrossEntropyLoss(
            neg_pos_ratio=ratio, min_negatives=5).hard_negative_mask(ce, pos)
        assert int(keep[0].sum()) == 2 + n


def test_ohem_ties_keep_exact_count():
    # all negatives have the same loss: still exactly ratio * positives
    target = torch.zeros(2, 3, 8, 8)
    target[:, 0] = 1
    target[0, 0, 2, 2:6] = 0
    target[0, 1, 2, 2:6] = 1
    logits = torch.zeros(2, 3, 8, 8)
    loss_fn = PixelCrossEntropyLoss(neg_pos_ratio=2.5, min_negatives=7)
    ce = ce_map(logits, target)
    keep = loss_fn.hard_negative_mask(ce, target[:, 0] < 0.5)
    assert keep.reshape(2, -1).sum(1).tolist() == [4 + 10, 7]


def test_balance_weights_fg_and_bg_equally():
    # 1 positive pixel with CE log 2, 3 background pixels with CE log 4
    target = torch.zeros(1, 2, 2, 2)
    target[0, 0] = 1
    target[0, :, 0, 0] = torch.tensor([0.0, 1.0])
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1] = math.log(3)
    logits[0, 1, 0, 0] = 0.0
    plain = PixelCrossEntropyLoss()(logits, target)
    torch.testing.assert_close(plain,
                               torch.tensor((math.log(2) + 3 * math.log(4)) /
                                            4))
    balanced_fn = PixelCrossEntropyLoss(balance=True)
    balanced = balanced_fn(logits, target)
    torch.testing.assert_close(balanced,
                               torch.tensor(0.5 * math.log(2) +
                                            0.5 * math.log(4)))
    torch.testing.assert_close(balanced_fn.last_parts['fg'],
                               torch.tensor(math.log(2)))
    torch.testing.assert_close(balanced_fn.last_parts['bg'],
                               torch.tensor(math.log(4)))
    # no positive pixel in the batch: the background mean with full weight
    bg_only = torch.zeros(1, 2, 2, 2)
    bg_only[0, 0] = 1
    torch.testing.assert_close(
        PixelCrossEntropyLoss(balance=True)(logits, bg_only),
        ce_map(logits, bg_only).mean())
    # with mining, the balance is over the kept pixels
    fn = PixelCrossEntropyLoss(balance=True, neg_pos_ratio=1)
    torch.testing.assert_close(
        fn(logits, target),
        torch.tensor(0.5 * math.log(2) + 0.5 * math.log(4)))


@pytest.mark.parametrize('cfg', LOSS_CONFIGS)
@pytest.mark.parametrize('scale', [1.0, 1e4])
def test_all_background_images_have_finite_gradients(cfg, scale):
    target = torch.zeros(2, 4, 6, 5)
    target[:, 0] = 1
    logits = (torch.randn(2, 4, 6, 5) * scale).requires_grad_()
    loss_fn = build(cfg)
    loss = loss_fn(logits, target, torch.zeros(2, 3))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()
    assert torch.isfinite(loss_fn.last_parts['bg'])
    assert loss_fn.last_parts['fg'] == 0


@pytest.mark.parametrize('cfg', LOSS_CONFIGS)
def test_loss_vanishes_for_confident_correct_logits(cfg):
    target = one_hot_target(B=2, K=3, H=6, W=5, seed=1)
    logits = (50 * target).requires_grad_()
    loss = build(cfg)(logits, target, torch.ones(2, 3))
    assert 0 <= loss.item() < 1e-4
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize('cfg', [
    dict(type='PixelCrossEntropyLoss'),
    dict(type='PixelCrossEntropyLoss', neg_pos_ratio=3),
    dict(type='PixelCrossEntropyLoss', balance=True),
    dict(type='PixelFocalLoss', gamma=0.0),
])
def test_soft_ce_gradient_vanishes_at_target(cfg):
    target = soft_target(seed=2)
    logits = target.log().requires_grad_()
    build(cfg)(logits, target).backward()
    assert logits.grad.abs().max() < 1e-6
    # and not elsewhere
    logits2 = torch.zeros_like(target, requires_grad=True)
    build(cfg)(logits2, target).backward()
    assert logits2.grad.abs().max() > 1e-3


def test_focal_reduces_to_ce_at_gamma_zero():
    logits = torch.randn(2, 4, 6, 5) * 3
    for target in (soft_target(seed=3), one_hot_target(seed=3)):
        focal = PixelFocalLoss(gamma=0.0)
        ce = PixelCrossEntropyLoss()
        torch.testing.assert_close(focal(logits, target), ce(logits, target))
        torch.testing.assert_close(focal.last_parts['bg'],
                                   ce.last_parts['bg'])


def test_focal_value_and_alpha():
    logits = torch.randn(2, 4, 6, 5)
    target = soft_target(seed=4)
    p = logits.softmax(1)
    terms = target * (1 - p)**2 * logits.log_softmax(1)
    torch.testing.assert_close(
        PixelFocalLoss(gamma=2.0)(logits, target), -terms.sum(1).mean())
    w = torch.tensor([0.75, 0.25, 0.25, 0.25])[None, :, None, None]
    torch.testing.assert_close(
        PixelFocalLoss(gamma=2.0, alpha=0.25)(logits, target),
        -(terms * w).sum(1).mean())
    # focusing down-weights easy pixels: focal < CE
    assert PixelFocalLoss(gamma=2.0)(logits, target) < PixelCrossEntropyLoss()(
        logits, target)


def test_target_weight_masks_channels():
    logits = torch.randn(2, 4, 6, 5, requires_grad=True)
    target = soft_target(seed=5)
    target[0, 2] = 0  # keypoint 1 of image 0 unlabelled ...
    target = target / target.sum(1, keepdim=True)
    weights = torch.ones(2, 3)
    weights[0, 1] = 0  # ... and weight 0
    loss = PixelCrossEntropyLoss(use_target_weight=True)(logits, target,
                                                         weights)
    loss.backward()
    assert torch.all(logits.grad[0, 2] == 0)
    assert torch.all(logits.grad[1, 2] != 0)
    keep = [0, 1, 3]
    ref0 = -(target[0, keep] * logits[0, keep].log_softmax(0)).sum(0)
    ref1 = ce_map(logits[1:], target[1:])[0]
    torch.testing.assert_close(loss, torch.cat([ref0, ref1]).mean())
    # without use_target_weight the weights are ignored
    torch.testing.assert_close(
        PixelCrossEntropyLoss()(logits, target, weights),
        ce_map(logits, target).mean())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        PixelCrossEntropyLoss()(torch.zeros(1, 4, 5, 5), torch.zeros(1, 3, 5,
                                                                     5))
