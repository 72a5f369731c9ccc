"""Per-pixel classification losses for (K + 1)-class keypoint maps.

Inputs of every loss:

- ``output``: logits (B, K + 1, H, W), channel 0 = background
- ``target``: (B, K + 1, H, W) soft class probabilities or one-hot labels
  (see :class:`bench.codecs.PixelClassLabel`)
- ``target_weights``: optional (B, K) keypoint weights

What a network can reduce: :class:`PixelCrossEntropyLoss` works on the
per-pixel KL divergence ``KL(t || p) = CE(t, p) - H(t)``. A soft target has
entropy, so its cross-entropy never reaches 0; the KL does, for a perfectly
predicted pixel, whatever its target. Ranking (hard negative mining), the
balancing weights and the logged parts all use the KL, and the gradient is
exactly the cross-entropy's (H(t) does not depend on the logits).

Background and positives: a pixel is *background* when its background target
``target[:, 0]`` is at least ``bg_threshold`` (0.9 by default), otherwise it
is *positive*. Why 0.9: for an isolated keypoint the background target is
``1 - G`` and the keypoint mass of a 2-D Gaussian outside its level ``G = g``
is ``g`` times the total, so the positives (``G > 0.1``) hold 90% of every
keypoint's target mass and the background pixels at most 10%; a split at
0.5 (``G > 0.5``) would leave half of the mass to "background" and count the
Gaussian's whole shoulder as background to be mined away.

Keypoint weights: a keypoint with weight 0 (not labelled, or outside the
heatmap) already has an all-zero target channel. With
``use_target_weight=False`` (default) the weights are otherwise ignored, i.e.
the model is trained to predict "background" wherever such a keypoint would
be. With ``use_target_weight=True`` the channels of zero-weight keypoints are
removed from that image's softmax (their logits are replaced by -1e30, so
they get neither probability mass nor gradient), the classification analogue
of ``KeypointMSELoss(use_target_weight=True)`` masking those channels out.
Only ``weight > 0`` vs ``== 0`` matters; positive weights are not used as
loss multipliers.

After every forward pass each loss stores detached diagnostics in
``self.last_parts``: ``bg`` and ``fg``, the background and positive pixels'
contributions to the loss (they add up to it, before ``loss_weight``), and
``bg_kept``, the fraction of the batch's background pixels that count in the
loss (1 without mining). The head logs them every iteration, DVCLive per
epoch; the report draws them, so that mining and balancing are seen working.
"""
import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpose.registry import MODELS

_MASKED_LOGIT = -1e30
#: ``PixelCrossEntropyLoss(balance=...)``: none, class-weighted, value-balanced.
BALANCE_MODES = (None, 'count', 'value')


def _log_probs(output: Tensor, target_weights: Optional[Tensor],
               use_target_weight: bool) -> Tensor:
    """log_softmax over channels in float32, optionally masking the channels
    of zero-weight keypoints."""
    logits = output.float()
    if use_target_weight and target_weights is not None:
        B, C = logits.shape[:2]
        masked = target_weights.reshape(B, C - 1) <= 0
        masked = torch.cat([masked.new_zeros(B, 1), masked], dim=1)
        logits = logits.masked_fill(masked[:, :, None, None], _MASKED_LOGIT)
    return F.log_softmax(logits, dim=1)


def _check_shapes(output: Tensor, target: Tensor) -> None:
    if output.shape != target.shape or output.dim() != 4:
        raise ValueError('expected logits and target of the same shape '
                         f'(B, K+1, H, W), got {tuple(output.shape)} and '
                         f'{tuple(target.shape)}')


def pixel_kl(logp: Tensor, target: Tensor) -> Tensor:
    """Per-pixel ``KL(target || softmax)`` (B, H, W) from log-probabilities and
    targets (B, K + 1, H, W): ``sum_c t_c (log t_c - log p_c)``, 0 terms
    where ``t_c = 0``."""
    target = target.float()
    return (torch.xlogy(target, target) - target * logp).sum(dim=1)


def _parts(pixel_loss: Tensor, weight: Tensor, bg: Tensor,
           kept: Tensor) -> Dict[str, Tensor]:
    """Contributions of background / positive pixels to ``sum(weight *
    pixel_loss)`` and the fraction of background pixels kept (detached)."""
    with torch.no_grad():
        contrib = pixel_loss.detach() * weight
        n_bg = bg.sum()
        return dict(
            bg=(contrib * bg).sum(),
            fg=(contrib * ~bg).sum(),
            bg_kept=torch.where(n_bg > 0, (kept & bg).sum() / n_bg.clamp(min=1),
                                torch.ones((), device=bg.device)))


@MODELS.register_module()
class PixelCrossEntropyLoss(nn.Module):
    r"""Per-pixel (soft-target) cross-entropy over K + 1 classes, computed as
    the KL divergence :math:`\sum_c t_c (\log t_c - \log \mathrm{softmax}
    (z)_c)` (same gradient, 0 for a perfect prediction; see the module
    docstring), averaged over pixels.

    Args:
        neg_pos_ratio (float, optional): Online hard negative mining. Per
            image, keep every positive pixel and the
            ``ceil(neg_pos_ratio * num_positives)`` background pixels with the
            highest KL (``min_negatives`` of them when the image has no
            positive pixel; never more than the image has); the loss is the
            mean over the kept pixels of the whole batch. ``None`` (default)
            keeps every pixel
        balance (str, optional): How the background and the positive
            pixels' parts of the loss are weighed (of the kept pixels when
            mining):

            - ``None`` (default): every kept pixel weighs the same (the mean
              over the kept pixels);
            - ``'count'`` (class-weighted CE): ``0.5 * mean over positive
              pixels + 0.5 * mean over background pixels``: both pixel
              *groups* weigh the same whatever their counts, but the parts'
              *values* still differ by the groups' mean losses (measured:
              an order of magnitude once the background is learnt);
            - ``'value'`` (value-balanced CE, the paper's "parts of the same
              order of magnitude"): the mean loss is split into its two
              parts and each is rescaled by a factor without gradient so
              that ``background part / positive part = part_ratio`` at every
              step, the total keeping the unscaled mean's value
              (:meth:`value_factors`).

            When the batch has no positive (or no background) pixel the
            other part gets the full weight. Defaults to None
        part_ratio (float): ``balance='value'`` only: the background part
            over the positive part. Defaults to 1.0 (equal parts)
        min_negatives (int): Background pixels kept by mining in an image
            without positive pixels. Defaults to 64
        bg_threshold (float): A pixel is background when its background
            target is at least this value, positive otherwise (module
            docstring). Defaults to 0.9
        use_target_weight (bool): Mask zero-weight keypoint channels out of
            the softmax (see module docstring). Defaults to False
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """

    def __init__(self,
                 neg_pos_ratio: Optional[float] = None,
                 balance: Optional[str] = None,
                 part_ratio: float = 1.0,
                 min_negatives: int = 64,
                 bg_threshold: float = 0.9,
                 use_target_weight: bool = False,
                 loss_weight: float = 1.0):
        super().__init__()
        if neg_pos_ratio is not None and neg_pos_ratio < 0:
            raise ValueError('neg_pos_ratio must be >= 0')
        if not 0.0 < bg_threshold <= 1.0:
            raise ValueError(f'bg_threshold must be in (0, 1], got {bg_threshold}')
        if balance not in BALANCE_MODES:
            raise ValueError(f'balance must be one of {BALANCE_MODES}, got {balance!r}')
        if not part_ratio > 0:
            raise ValueError(f'part_ratio must be > 0, got {part_ratio}')
        self.neg_pos_ratio = neg_pos_ratio
        self.balance = balance
        self.part_ratio = float(part_ratio)
        self.min_negatives = int(min_negatives)
        self.bg_threshold = float(bg_threshold)
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight
        self.last_parts: Dict[str, Tensor] = {}

    def pixel_loss(self,
                   output: Tensor,
                   target: Tensor,
                   target_weights: Optional[Tensor] = None) -> Tensor:
        """Per-pixel KL divergence (B, H, W), float32."""
        logp = _log_probs(output, target_weights, self.use_target_weight)
        return pixel_kl(logp, target)

    def background(self, target: Tensor) -> Tensor:
        """Background pixels (B, H, W) bool; the others are positive."""
        return target[:, 0] >= self.bg_threshold

    def hard_negative_mask(self, pixel_loss: Tensor, pos: Tensor) -> Tensor:
        """Pixels kept by online hard negative mining, (B, H, W) bool."""
        B = pixel_loss.shape[0]
        loss_f = pixel_loss.detach().reshape(B, -1)
        pos_f = pos.reshape(B, -1)
        P = loss_f.shape[1]
        with torch.no_grad():
            n_pos = pos_f.sum(1)
            n_neg = P - n_pos
            k = torch.ceil(n_pos.double() * self.neg_pos_ratio - 1e-9).long()
            k = torch.where(n_pos > 0, k, torch.full_like(k,
                                                          self.min_negatives))
            k = torch.minimum(k, n_neg)
            neg_loss = loss_f.masked_fill(pos_f, -math.inf)
            order = neg_loss.argsort(dim=1, descending=True, stable=True)
            rank = torch.empty_like(order)
            rank.scatter_(1, order,
                          torch.arange(P, device=order.device).expand(B, P))
            keep = pos_f | (rank < k[:, None])
        return keep.reshape(pos.shape)

    def pixel_weights(self, pixel_loss: Tensor, bg: Tensor) -> tuple:
        """Per-pixel loss weights (B, H, W) and the kept mask: the loss is
        ``sum(weights * pixel_loss)``."""
        pos = ~bg
        if self.neg_pos_ratio is not None:
            keep = self.hard_negative_mask(pixel_loss, pos)
        else:
            keep = torch.ones_like(pos)
        keep_f = keep.float()
        if self.balance == 'count':
            fg_k, bg_k = keep_f * pos, keep_f * bg
            n_fg, n_bg = fg_k.sum(), bg_k.sum()
            parts = (n_fg > 0).float() + (n_bg > 0).float()
            weight = (fg_k / n_fg.clamp(min=1.0) + bg_k / n_bg.clamp(min=1.0)) \
                / parts.clamp(min=1.0)
        else:
            weight = keep_f / keep_f.sum().clamp(min=1.0)
            if self.balance == 'value':
                weight = weight * self.value_factors(pixel_loss, weight, bg)
        return weight, keep

    def value_factors(self, pixel_loss: Tensor, weight: Tensor,
                      bg: Tensor) -> Tensor:
        """Per-pixel factors (B, H, W), without gradient, that rescale the
        background part ``b = sum(weight * pixel_loss over background)`` and
        the positive part ``f`` to ``S r / (1 + r)`` and ``S / (1 + r)``,
        ``S = b + f``, ``r = part_ratio``. A part that is 0 (no such pixel
        kept, or every one predicted perfectly) cannot be scaled up: the
        other part then carries the whole ``S``."""
        with torch.no_grad():
            contrib = pixel_loss.detach() * weight
            b, f = (contrib * bg).sum(), (contrib * ~bg).sum()
            total, r = b + f, self.part_ratio
            one, zero = total.new_tensor(1.0), total.new_tensor(0.0)
            share_b = torch.where(f > 0, total.new_tensor(r / (1 + r)), one)
            share_b = torch.where(b > 0, share_b, zero)
            a_b = torch.where(b > 0, share_b * total / b.clamp(min=1e-30), zero)
            a_f = torch.where(f > 0, (1 - share_b) * total / f.clamp(min=1e-30), zero)
            return torch.where(bg, a_b, a_f)

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None) -> Tensor:
        """Args:
            output (Tensor): logits (B, K + 1, H, W)
            target (Tensor): target probabilities (B, K + 1, H, W)
            target_weights (Tensor, optional): keypoint weights (B, K)

        Returns:
            Tensor: scalar loss
        """
        _check_shapes(output, target)
        kl = self.pixel_loss(output, target, target_weights)
        bg = self.background(target)
        weight, keep = self.pixel_weights(kl, bg)
        self.last_parts = _parts(kl, weight, bg, keep)
        return (kl * weight).sum() * self.loss_weight


@MODELS.register_module()
class PixelFocalLoss(nn.Module):
    r"""Per-pixel focal cross-entropy with soft targets,
    :math:`-\sum_c \alpha_c t_c (1 - p_c)^\gamma \log p_c`, averaged over
    pixels. With ``gamma=0`` and ``alpha=None`` it is the soft cross-entropy,
    which differs from :class:`PixelCrossEntropyLoss` (without mining /
    balancing) by the mean target entropy, a constant: same gradient. Its
    per-pixel values are not made 0 at a perfect prediction (the focal loss
    of a soft target is not minimised at ``p = t``), so its logged parts
    are focal-loss values.

    Args:
        gamma (float): Focusing parameter. Defaults to 2.0
        alpha (float, optional): Class weighting: keypoint channels are
            weighted by ``alpha`` and the background channel by
            ``1 - alpha``. ``None`` (default) weighs all classes by 1
        bg_threshold (float): Background / positive split of the logged
            parts (as :class:`PixelCrossEntropyLoss`; the loss itself does not
            use it). Defaults to 0.9
        use_target_weight (bool): Mask zero-weight keypoint channels out of
            the softmax (see module docstring). Defaults to False
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """

    def __init__(self,
                 gamma: float = 2.0,
                 alpha: Optional[float] = None,
                 bg_threshold: float = 0.9,
                 use_target_weight: bool = False,
                 loss_weight: float = 1.0):
        super().__init__()
        if gamma < 0:
            raise ValueError('gamma must be >= 0')
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError('alpha must be in [0, 1]')
        self.gamma = float(gamma)
        self.alpha = alpha
        self.bg_threshold = float(bg_threshold)
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight
        self.last_parts: Dict[str, Tensor] = {}

    def pixel_loss(self,
                   output: Tensor,
                   target: Tensor,
                   target_weights: Optional[Tensor] = None) -> Tensor:
        """Per-pixel focal loss (B, H, W), float32."""
        logp = _log_probs(output, target_weights, self.use_target_weight)
        terms = target.float() * logp
        if self.gamma > 0:
            # 1 - p = -expm1(log p), accurate for p -> 1; the floor keeps the
            # gradient of x**gamma finite at x = 0 when gamma < 1
            one_minus_p = (-torch.expm1(logp)).clamp(min=1e-12)
            terms = terms * one_minus_p.pow(self.gamma)
        if self.alpha is not None:
            C = output.shape[1]
            w = terms.new_full((1, C, 1, 1), self.alpha)
            w[:, 0] = 1.0 - self.alpha
            terms = terms * w
        return -terms.sum(dim=1)

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None) -> Tensor:
        """Args:
            output (Tensor): logits (B, K + 1, H, W)
            target (Tensor): target probabilities (B, K + 1, H, W)
            target_weights (Tensor, optional): keypoint weights (B, K)

        Returns:
            Tensor: scalar loss
        """
        _check_shapes(output, target)
        fl = self.pixel_loss(output, target, target_weights)
        bg = target[:, 0] >= self.bg_threshold
        weight = torch.full_like(fl, 1.0 / fl.numel())
        self.last_parts = _parts(fl, weight, bg, torch.ones_like(bg))
        return fl.mean() * self.loss_weight


def peak_positives(target: Tensor) -> Tensor:
    """``target`` (B, K, H, W) with each channel's maximum pixel set to exactly 1.0 (the first
    one on a tie); a channel whose maximum is 0 (an unlabelled keypoint) is left all zero."""
    B, K, H, W = target.shape
    flat = target.reshape(B, K, H * W)
    peak, where = flat.max(dim=-1, keepdim=True)
    out = flat.clone()
    out.scatter_(-1, where, torch.where(peak > 0, torch.ones_like(peak), peak))
    return out.reshape(B, K, H, W)


@MODELS.register_module()
class PeakFocalHeatmapLoss(nn.Module):
    """MMPose's ``FocalHeatmapLoss`` (CornerNet's penalty-reduced focal loss) on Gaussian
    heatmap targets whose peaks are not exactly 1.

    Why this wrapper: ``FocalHeatmapLoss`` counts as positives the pixels where the target
    *equals* 1 (``target.eq(1)``) and divides by their number, falling back to the bare
    background sum when there are none. CornerNet draws its Gaussians around the *rounded*
    keypoint, so the peak is exactly 1; DARK's unbiased targets (this study's baseline codec)
    put the Gaussian at the exact sub-pixel keypoint, whose peak pixel is ``exp(-d² / 2σ²)``
    < 1 unless the keypoint sits exactly on a pixel centre: the stock loss would see (almost)
    no positives and train every map towards 0. Here each labelled channel's maximum pixel (the
    pixel nearest to the keypoint, CornerNet's positive) is set to exactly 1 before the stock
    loss runs; the rest of the Gaussian stays as it is, as the penalty reduction
    ``(1 - target)^beta`` of the negatives. A keypoint outside the heatmap but within 3σ of it
    keeps a partial Gaussian (DARK's weight stays 1): its positive is the nearest border pixel,
    where the MSE baseline's target peaks too.

    ``output`` must be probabilities in (0, 1) (:class:`bench.models.SigmoidHeatmapHead`); raw
    logits stop with an error instead of NaN losses.

    Args:
        alpha, beta, use_target_weight, skip_empty_channel, loss_weight: those of
            ``FocalHeatmapLoss`` (defaults 2, 4, False, False, 1.0)
    """

    def __init__(self, alpha: float = 2, beta: float = 4, use_target_weight: bool = False,
                 skip_empty_channel: bool = False, loss_weight: float = 1.0):
        super().__init__()
        from mmpose.models.losses.heatmap_loss import FocalHeatmapLoss
        self.focal = FocalHeatmapLoss(alpha=alpha, beta=beta,
                                      use_target_weight=use_target_weight,
                                      skip_empty_channel=skip_empty_channel,
                                      loss_weight=loss_weight)

    def forward(self, output: Tensor, target: Tensor, target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None) -> Tensor:
        with torch.no_grad():
            lo, hi = output.min(), output.max()
        if not (lo > 0 and hi < 1):
            raise ValueError(f'PeakFocalHeatmapLoss needs probabilities in (0, 1), got outputs '
                             f'in [{float(lo):.3g}, {float(hi):.3g}]: use a head that ends in '
                             f'a sigmoid (SigmoidHeatmapHead)')
        return self.focal(output, peak_positives(target), target_weights, mask)


@MODELS.register_module()
class FiniteJSDiscretLoss(nn.Module):
    """MMPose's ``JSDiscretLoss`` (DSNT's Jensen-Shannon term), same value, finite gradients.

    Why: MMPose 1.3.2 computes ``KL(p || m)`` with ``nn.KLDivLoss((m + eps).log(), p)``, whose
    backward with respect to its *target* ``p`` is ``log(p) + 1 - log(m + eps)``: ``-inf`` where
    ``p = 0``. With ``use_target_weight=True`` the predicted map of every zero-weight keypoint
    (unlabelled, or outside the input) is multiplied by 0 first, so one such keypoint in a batch
    makes the whole gradient NaN (measured with PyTorch 2.9: the DSNT run diverged at its second
    iteration). Here ``KL(p || q) = p log(p') - p log(q + eps)`` with ``p' = p`` where ``p > 0``
    and 1 elsewhere: the same value (0 log 0 = 0, as ``KLDivLoss``), the same gradient
    ``log p + 1 - log(q + eps)`` where ``p > 0``, and ``-log(q + eps)`` (finite) where ``p = 0``.
    Everything else (the weighting, ``size_average``, the sum) is MMPose's.

    Args:
        use_target_weight (bool): weight each keypoint's map (both maps multiplied by its
            weight, as MMPose does). Defaults to True
        size_average (bool): divide by the batch size. Defaults to True
    """

    def __init__(self, use_target_weight: bool = True, size_average: bool = True):
        super().__init__()
        self.use_target_weight = use_target_weight
        self.size_average = size_average

    @staticmethod
    def kl(p: Tensor, q: Tensor) -> Tensor:
        """Element-wise ``p (log p - log(q + eps))``, 0 where ``p = 0`` (MMPose's eps)."""
        safe = torch.where(p > 0, p, torch.ones_like(p))
        return p * safe.log() - p * (q + 1e-24).log()

    def js(self, pred_hm: Tensor, gt_hm: Tensor) -> Tensor:
        m = 0.5 * (pred_hm + gt_hm)
        return 0.5 * (self.kl(pred_hm, m) + self.kl(gt_hm, m))

    def forward(self, pred_hm: Tensor, gt_hm: Tensor,
                target_weight: Optional[Tensor] = None) -> Tensor:
        if self.use_target_weight:
            assert target_weight is not None and pred_hm.ndim >= target_weight.ndim
            while target_weight.ndim < pred_hm.ndim:
                target_weight = target_weight.unsqueeze(-1)
            loss = self.js(pred_hm * target_weight, gt_hm * target_weight)
        else:
            loss = self.js(pred_hm, gt_hm)
        if self.size_average:
            loss = loss / len(gt_hm)
        return loss.sum()
