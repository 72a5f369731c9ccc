"""Per-pixel classification, the method under test: K+1 logits per pixel (``PixelClassHead``),
softmax, soft cross-entropy against :class:`~bench.codecs.PixelClassLabel`'s targets."""
from __future__ import annotations

import numpy as np
import torch

from bench.formulations import Formulation, register
from bench.formulations.heatmap import grid_resolution, heatmap_geometry, heatmap_head_args


def describe(codec: dict) -> tuple[str, str]:
    """(decoding, refinement) of ``PixelClassLabel``, in words."""
    exact = codec.get('decode_exact', True)
    decoding = ('softmax over K+1; the Gaussians recovered exactly from the mixture (per-pixel '
                'root of Π(1−r·T)=P₀); arg-max' if exact
                else 'softmax over K+1; arg-max of P_j (no mixture inversion)')
    refine = ('one Newton step on the log of the recovered Gaussian (3×3 stencil; two-point σ '
              'formula at the border)' if codec.get('decode_refine', True) else 'none')
    return decoding, refine


def batch_encode(codec, keypoints: np.ndarray, visible: np.ndarray, device) -> dict | None:
    """The soft target of a whole batch in torch: the codec's windowed Gaussians G_j (same
    windows, :meth:`~bench.codecs.PixelClassLabel.windows`), P_0 = prod(1 - G_j),
    P_j = (1 - P_0) G_j / sum G. The hard target: None, encoded per sample."""
    if codec.target != 'soft':
        return None
    W, H = codec.heatmap_size
    win = codec.windows(keypoints, visible)  # (B*K, ...) flattened
    B, K = keypoints.shape[:2]
    c_t = torch.from_numpy(win.centres.reshape(B, K, 2)).to(device)
    st = torch.from_numpy(win.starts.reshape(B, K, 2)).to(device)
    valid = win.valid.reshape(B, K)
    valid_t = torch.from_numpy(valid).to(device)
    u = torch.arange(W, dtype=torch.float64, device=device)
    v = torch.arange(H, dtype=torch.float64, device=device)
    # windowed separable Gaussians in float32, as the codec computes them
    gx = torch.exp(((u - c_t[..., :1]) ** 2 * codec.neg_inv_2s2).float())
    gy = torch.exp(((v - c_t[..., 1:]) ** 2 * codec.neg_inv_2s2).float())
    gx = gx * ((u >= st[..., :1]) & (u < st[..., :1] + win.Lx))
    gy = gy * ((v >= st[..., 1:]) & (v < st[..., 1:] + win.Ly))
    gx = gx * (valid_t * float(codec.G_MAX))[..., None]
    G = gy[..., :, None] * gx[..., None, :]  # (B, K, H, W) float32
    P0 = torch.exp(torch.log1p(-G).sum(1))  # (B, H, W)
    S = G.sum(1).clamp_min(1e-30)
    ratio = (1.0 - P0) / S
    heat = torch.cat([P0[:, None], G * ratio[:, None]], 1)
    weights = torch.from_numpy(valid.astype(np.float32)).to(device)
    return dict(fields=dict(heatmaps=heat), labels=dict(keypoint_weights=weights[:, None]),
                instances={})


register(Formulation(
    name='per-pixel classification', heads=('PixelClassHead',), codecs=('PixelClassLabel',),
    geometry=heatmap_geometry, head_args=heatmap_head_args, describe=describe,
    resolution=grid_resolution, batch_encode=batch_encode, pixel_classes=True,
    # K+1 logits: any logits whose softmax is the target; log(0) is kept finite so that the
    # softmax of a pixel never divides by 0
    perfect_output=lambda enc: torch.as_tensor(enc['heatmaps']).clamp(min=1e-30).log()))
