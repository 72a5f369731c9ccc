"""Heatmap regression: K Gaussian heatmaps, MSE (``HeatmapHead``) or a focal loss on sigmoid
probabilities (``SigmoidHeatmapHead``); MMPose's ``MSRAHeatmap`` (stock or DARK) and
``UDPHeatmap`` codecs, and our ``UDPHeatmapExact``."""
from __future__ import annotations

import numpy as np
import torch

from bench.formulations import Formulation, HeadShape, codec_is, register


def dark_blur_kernel(sigma: float) -> int:
    """DARK's modulation kernel for heatmaps of ``sigma``: the odd size whose OpenCV Gaussian
    (sigma_k = 0.3 ((k - 1) / 2 - 1) + 0.8) is closest to ``sigma``. It gives MMPose's own
    pairs (k = 11 for sigma 2, k = 17 for sigma 3; ``gaussian_blur``'s docstring) and 7 for 1.5,
    so the blur follows ``model.sigma`` instead of a value tuned for another profile."""
    half = max(int(round((sigma - 0.8) / 0.3 + 1)), 1)
    return 2 * half + 1


def heatmap_geometry(codec: dict, params) -> dict:
    """A codec that draws Gaussians on the heatmap grid: ``input_size``, ``heatmap_size`` and
    ``sigma`` (heatmap pixels) from ``params.model``; a DARK-style decoder (MSRAHeatmap or
    IntegralRegressionLabel with ``unbiased=True``, UDPHeatmap and its subclasses always) gets
    the blur kernel that matches that sigma (:func:`dark_blur_kernel`)."""
    m = params.model
    codec.update(input_size=tuple(m.input_size), heatmap_size=tuple(m.heatmap_size),
                 sigma=m.sigma)
    if codec_is(codec['type'], 'UDPHeatmap') or codec.get('unbiased'):
        codec['blur_kernel_size'] = dark_blur_kernel(m.sigma)
    return codec


def grid_resolution(codec: dict) -> list[int]:
    """The heatmap grid, ``heatmap_size`` (W, H)."""
    return [int(s) for s in codec['heatmap_size']]


def heatmap_head_args(codec: dict, shape: HeadShape) -> dict:
    """``in_channels`` (the backbone's last stage), ``out_channels`` = K and the deconvolution
    trunk."""
    return dict(out_channels=shape.k, in_channels=shape.in_channels, **shape.trunk())


def describe(codec: dict) -> tuple[str, str]:
    """(decoding, refinement) of MSRAHeatmap (stock, DARK) and UDPHeatmap(Exact), in words."""
    kind = codec.get('type')
    blur = codec.get('blur_kernel_size', 11)
    if codec_is(kind, 'UDPHeatmap'):  # and bench.codecs.UDPHeatmapExact, its subclass
        placed = ('' if kind == 'UDPHeatmap' else
                  '; peaks at the nearest pixel (MMPose 1.3.2 moves those within 3σ of the '
                  'top/left border one pixel when 3σ is not an integer)')
        return ('UDP Gaussian targets on the unbiased grid ((w−1)/(W−1) input px per heatmap '
                f'px{placed}); arg-max',
                f'UDP DARK: Gaussian blur (kernel {blur}), then one Newton step on the '
                'log-heatmap')
    if codec.get('unbiased'):
        return ('unbiased Gaussian targets (untruncated, sub-pixel centre); arg-max',
                f'DARK: Gaussian blur (kernel {blur}), then one Newton step on the log-heatmap')
    return ('Gaussian targets cut at 3σ around the rounded centre (MMPose 1.3.2 truncation '
            'bug); arg-max', 'quarter-pixel step towards the higher neighbour')


def _grid(n: int, device) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64, device=device)


def batch_encode(codec, keypoints: np.ndarray, visible: np.ndarray, device) -> dict | None:
    """``MSRAHeatmap(unbiased=True)`` (DARK) on the whole batch, as
    ``generate_unbiased_gaussian_heatmaps``: an untruncated Gaussian at the exact sub-pixel
    centre; weight 0 for invisible keypoints and for those whose 3-sigma box misses the
    heatmap. Other settings (the stock biased target, UDP): None, encoded per sample."""
    if type(codec).__name__ != 'MSRAHeatmap' or not codec.unbiased:
        return None
    W, H = codec.heatmap_size
    sigma = float(codec.sigma)
    mu = torch.from_numpy((keypoints / codec.scale_factor).astype(np.float32)).to(device)
    vis = torch.from_numpy(np.asarray(visible, np.float32)).to(device)
    radius = sigma * 3
    left, top = (mu - radius).unbind(-1)
    right, bottom = (mu + radius + 1).unbind(-1)
    out = (left >= W) | (top >= H) | (right < 0) | (bottom < 0)
    valid = (vis >= 0.5) & ~out
    weights = torch.where(out & (vis >= 0.5), torch.zeros_like(vis), vis)
    mu = mu.double()
    gx = torch.exp(-(_grid(W, device) - mu[..., :1]) ** 2 / (2 * sigma ** 2))  # (B, K, W)
    gy = torch.exp(-(_grid(H, device) - mu[..., 1:]) ** 2 / (2 * sigma ** 2))  # (B, K, H)
    heat = (gy[..., :, None] * gx[..., None, :]).float() * valid[..., None, None]
    return dict(fields=dict(heatmaps=heat), labels=dict(keypoint_weights=weights[:, None]),
                instances={})


_CODECS = ('MSRAHeatmap', 'UDPHeatmap')
_SHARED = dict(codecs=_CODECS, geometry=heatmap_geometry, head_args=heatmap_head_args,
               describe=describe, resolution=grid_resolution, batch_encode=batch_encode)

register(Formulation(
    name='heatmap regression', heads=('HeatmapHead',),
    # K Gaussian heatmaps: the output *is* the target
    perfect_output=lambda enc: torch.as_tensor(enc['heatmaps']), **_SHARED))

register(Formulation(
    name='heatmap regression, focal', heads=('SigmoidHeatmapHead',),
    # K probability maps: the target, within the head's sigmoid clamp (it cannot output 0, 1)
    perfect_output=lambda enc: torch.as_tensor(enc['heatmaps']).clamp(1e-4, 1 - 1e-4),
    **_SHARED))
