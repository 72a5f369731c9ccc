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
    dict(type='PixelCrossEntropyLoss', balance='count'),
    dict(type='PixelCrossEntropyLoss', neg_pos_ratio=2, balance='count'),
    dict(type='PixelCrossEntropyLoss', balance='value'),
    dict(type='PixelCrossEntropyLoss', neg_pos_ratio=3, balance='value', part_ratio=2.0),
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


def entropy_map(target):
    return -torch.xlogy(target, target).sum(1)


def test_plain_ce_value_and_parts():
    logits = torch.randn(2, 4, 6, 5)
    target = soft_target()
    target[0, :, 0, :] = torch.tensor([0.95, 0.05, 0.0, 0.0])[:, None]  # some background
    loss_fn = PixelCrossEntropyLoss()
    loss = loss_fn(logits, target)
    kl = ce_map(logits, target) - entropy_map(target)  # independent formula
    torch.testing.assert_close(loss, kl.mean())
    bg = target[:, 0] >= 0.9
    assert bg.any() and (~bg).any()
    # the parts are the two groups' contributions: they add up to the loss
    torch.testing.assert_close(loss_fn.last_parts['fg'], kl[~bg].sum() / kl.numel())
    torch.testing.assert_close(loss_fn.last_parts['bg'], kl[bg].sum() / kl.numel())
    torch.testing.assert_close(loss_fn.last_parts['bg'] + loss_fn.last_parts['fg'], loss)
    assert float(loss_fn.last_parts['bg_kept']) == 1.0
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
    balanced_fn = PixelCrossEntropyLoss(balance='count')
    balanced = balanced_fn(logits, target)
    torch.testing.assert_close(balanced,
                               torch.tensor(0.5 * math.log(2) +
                                            0.5 * math.log(4)))
    torch.testing.assert_close(balanced_fn.last_parts['fg'],
                               torch.tensor(0.5 * math.log(2)))
    torch.testing.assert_close(balanced_fn.last_parts['bg'],
                               torch.tensor(0.5 * math.log(4)))
    # no positive pixel in the batch: the background mean with full weight
    bg_only = torch.zeros(1, 2, 2, 2)
    bg_only[0, 0] = 1
    torch.testing.assert_close(
        PixelCrossEntropyLoss(balance='count')(logits, bg_only),
        ce_map(logits, bg_only).mean())
    # with mining, the balance is over the kept pixels
    fn = PixelCrossEntropyLoss(balance='count', neg_pos_ratio=1)
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
    dict(type='PixelCrossEntropyLoss', balance='count'),
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
    """gamma = 0: the soft cross-entropy, i.e. PixelCrossEntropyLoss (a KL) plus the mean
    target entropy, with the same gradient."""
    logits = torch.randn(2, 4, 6, 5) * 3
    for target in (soft_target(seed=3), one_hot_target(seed=3)):
        a = logits.clone().requires_grad_(True)
        b = logits.clone().requires_grad_(True)
        focal = PixelFocalLoss(gamma=0.0)(a, target)
        kl = PixelCrossEntropyLoss()(b, target)
        torch.testing.assert_close(focal, ce_map(logits, target).mean())
        torch.testing.assert_close(focal - kl, entropy_map(target).mean())
        focal.backward()
        kl.backward()
        torch.testing.assert_close(a.grad, b.grad)


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
    assert PixelFocalLoss(gamma=2.0)(logits, target) < ce_map(logits, target).mean()


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
    # KL = CE - H(target), with the masked channel out of the softmax
    ref0 = -(target[0, keep] * logits[0, keep].log_softmax(0)).sum(0) \
        - entropy_map(target[:1])[0]
    ref1 = ce_map(logits[1:], target[1:])[0] - entropy_map(target[1:])[0]
    torch.testing.assert_close(loss, torch.cat([ref0, ref1]).mean())
    # without use_target_weight the weights are ignored
    torch.testing.assert_close(
        PixelCrossEntropyLoss()(logits, target, weights),
        (ce_map(logits, target) - entropy_map(target)).mean())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        PixelCrossEntropyLoss()(torch.zeros(1, 4, 5, 5), torch.zeros(1, 3, 5,
                                                                     5))


# --------------------------------------------------------------------------------------------
# mining and balancing on real encoded targets (issue: they must do what their names say)

def encoded_target(W=64, H=64, sigma=1.5, K=17, seed=0):
    """(1, K+1, H, W) soft target of ``PixelClassLabel`` for K keypoints spread on a grid over
    the heatmap (as a person filling its crop), with jitter."""
    import numpy as np

    from bench.codecs import PixelClassLabel
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.linspace(6, W - 7, 5), np.linspace(6, H - 7, 4))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)[:K] + rng.uniform(-1, 1, (K, 2))
    codec = PixelClassLabel(input_size=(W * 4, H * 4), heatmap_size=(W, H), sigma=sigma)
    hm = codec.encode(pts[None] * 4, np.ones((1, K)))['heatmaps']
    return torch.from_numpy(hm)[None]


def test_kl_ranking_ignores_target_entropy():
    """A perfectly predicted pixel has KL 0 whatever its soft target, so mining ranks it last;
    raw cross-entropy would have ranked the soft Gaussian-tail pixels first."""
    target = encoded_target()
    logits = target.clamp(min=1e-12).log()            # perfect everywhere ...
    bg = target[:, 0] >= 0.9
    far = bg & (target[:, 0] > 1 - 1e-6)              # ... except on some far pixels
    wrong = far.clone()
    wrong.view(-1)[far.view(-1).nonzero()[::7, 0]] = False
    wrong = far & ~wrong
    # a mild error (p = 0.05 for a keypoint there): less cross-entropy than the soft tail's
    # own entropy, but KL > 0 where the perfect pixels have KL = 0
    logits[:, 1][wrong] = logits[:, 0][wrong] + math.log(0.05 / 0.95)
    loss_fn = PixelCrossEntropyLoss(neg_pos_ratio=0.05)
    kl = loss_fn.pixel_loss(logits, target)
    keep = loss_fn.hard_negative_mask(kl, ~bg)
    kept_neg = keep & bg
    n_kept = int(kept_neg.sum())
    assert 0 < n_kept <= int(wrong.sum())
    assert bool(wrong[kept_neg].all())                # only mispredicted pixels are mined
    soft_tail = bg & ~far  # background with entropy > 0, predicted perfectly
    assert float(kl[soft_tail].abs().max()) < 1e-5
    ce = ce_map(logits, target)
    assert float(ce[soft_tail].max()) > float(ce[wrong].max())  # CE would pick the tail


def test_ohem_discards_background_on_a_64px_target():
    """OHEM 1:3 on a 64x64-heatmap target with 17 spread keypoints keeps every positive plus
    exactly ceil(3 n_pos) of the hardest background pixels: at most half of the background."""
    target = encoded_target()
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    loss_fn = PixelCrossEntropyLoss(neg_pos_ratio=3)
    loss_fn(logits, target)
    bg = target[:, 0] >= 0.9
    n_pos, n_bg = int((~bg).sum()), int(bg.sum())
    kl = loss_fn.pixel_loss(logits, target)
    keep = loss_fn.hard_negative_mask(kl, ~bg)
    assert int((keep & bg).sum()) == math.ceil(3 * n_pos)
    assert bool(keep[~bg].all())
    hardest = kl[bg].sort(descending=True).values[:math.ceil(3 * n_pos)]
    torch.testing.assert_close(kl[keep & bg].sort(descending=True).values, hardest)
    kept = float(loss_fn.last_parts['bg_kept'])
    assert kept == pytest.approx(math.ceil(3 * n_pos) / n_bg) and kept <= 0.5


def test_balanced_parts_same_order_at_initialisation():
    """At initialisation (logits ~ 0: the head's final layer is initialised with std 1e-3) the
    balanced loss's two parts are within 3x of each other; plain CE's are not."""
    target = encoded_target()
    logits = 1e-3 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    bal = PixelCrossEntropyLoss(balance='count')
    bal(logits, target)
    r = float(bal.last_parts['bg'] / bal.last_parts['fg'])
    assert 1 / 3 <= r <= 3, r
    plain = PixelCrossEntropyLoss()
    plain(logits, target)
    assert float(plain.last_parts['bg'] / plain.last_parts['fg']) > 3


def test_gradient_equals_torch_soft_cross_entropy():
    """Without mining and balancing the loss differs from PyTorch's soft-target cross-entropy by
    a constant (the mean target entropy): same gradient."""
    target = encoded_target(W=16, H=16)
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(2))
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours = PixelCrossEntropyLoss()(a, target)
    ref = F.cross_entropy(b, target)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(ref - ours, entropy_map(target).mean())


def _parts_ratio(loss_fn) -> float:
    return float(loss_fn.last_parts['bg'] / loss_fn.last_parts['fg'])


@pytest.mark.parametrize('ratio', [1.0, 2.0])
def test_value_balanced_parts_equal_at_init_and_after_steps(ratio):
    """On a target encoded at the paper's geometry (64x64 heatmaps, sigma 1.5), the
    value-balanced loss's background and positive parts stand at ``part_ratio`` at
    initialisation and after every one of a few Adam steps, while the loss value stays the
    unbalanced mean's; plain CE's parts drift apart as the background is learnt."""
    target = encoded_target()
    logits = (1e-3 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))
              ).requires_grad_(True)
    fn = PixelCrossEntropyLoss(balance='value', part_ratio=ratio)
    plain = PixelCrossEntropyLoss()
    opt = torch.optim.Adam([logits], lr=0.05)
    for step in range(6):
        loss = fn(logits, target)
        assert _parts_ratio(fn) == pytest.approx(ratio, rel=1e-5), step
        torch.testing.assert_close(loss.detach(), plain(logits, target).detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    plain(logits, target)
    assert _parts_ratio(plain) > 3 * ratio  # what there is to balance


def test_value_balanced_gradient_matches_hand_written_reference():
    """d loss / d logits = w (p - t) per pixel and channel (the soft cross-entropy's gradient,
    ``sum_c t_c = 1``), with ``w = a_bg / N`` on background pixels and ``a_fg / N`` on positive
    ones, ``a_bg = S r / (1 + r) / B``, ``a_fg = S / (1 + r) / F``: B and F the background and
    positive sums of the per-pixel KL over N pixels, S = B + F. Computed here in float64 from
    the definitions, not with the loss's code."""
    target = encoded_target(W=32, H=32)
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(4))
    r = 0.5
    z = logits.clone().requires_grad_(True)
    PixelCrossEntropyLoss(balance='value', part_ratio=r)(z, target).backward()

    t = target.double().numpy()[0]
    zz = logits.double().numpy()[0]
    import numpy as np
    p = np.exp(zz - zz.max(0)) / np.exp(zz - zz.max(0)).sum(0)
    with np.errstate(divide='ignore', invalid='ignore'):
        kl = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1)) - np.log(p)), 0).sum(0)
    bg = t[0] >= 0.9
    n = kl.size
    b, f = kl[bg].sum() / n, kl[~bg].sum() / n
    s = b + f
    w = np.where(bg, s * r / (1 + r) / b, s / (1 + r) / f) / n
    ref = w[None] * (p - t)
    np.testing.assert_allclose(z.grad.double().numpy()[0], ref, rtol=1e-4, atol=1e-9)


def test_value_balanced_with_one_part_empty_keeps_the_other():
    """A batch without positive pixels: the background part carries the whole loss (no
    division by a zero part)."""
    target = encoded_target(W=16, H=16)
    bg_only = torch.zeros_like(target)
    bg_only[:, 0] = 1
    logits = torch.randn(target.shape, generator=torch.Generator().manual_seed(5))
    fn = PixelCrossEntropyLoss(balance='value')
    loss = fn(logits, bg_only)
    torch.testing.assert_close(loss, PixelCrossEntropyLoss()(logits, bg_only))
    assert float(fn.last_parts['fg']) == 0.0 and torch.isfinite(loss)


def test_balance_mode_is_checked():
    with pytest.raises(ValueError, match='balance must be one of'):
        PixelCrossEntropyLoss(balance=True)
    with pytest.raises(ValueError, match='part_ratio'):
        PixelCrossEntropyLoss(balance='value', part_ratio=0)
