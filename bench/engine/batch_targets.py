"""Training targets for a whole batch, on the training device, with each codec's own math.

``GenerateTarget`` encodes one sample at a time in numpy (0.2-0.5 ms each here). For the
codecs of the default study the batch is encoded at once in torch:

- ``MSRAHeatmap(unbiased=True)`` (DARK): ``generate_unbiased_gaussian_heatmaps``, an
  untruncated Gaussian at the exact sub-pixel centre; weight 0 for invisible keypoints and for
  those whose 3-sigma box misses the heatmap;
- ``PixelClassLabel`` (soft target): the windowed Gaussians G_j of the codec (same window as
  its ``_geometry``), P_0 = prod(1 - G_j), P_j = (1 - P_0) G_j / sum G.

Every other codec (stock biased ``MSRAHeatmap``, ``UDPHeatmap``, ``SimCCLabel``,
``RegressionLabel``...) is encoded per sample with its own ``encode``, exactly as
``GenerateTarget`` calls it, and packed into the fields and labels its mapping tables name, as
``PackPoseInputs`` does. :mod:`tests.test_batched_data` checks the torch paths against
``encode``.
"""
from __future__ import annotations

import numpy as np
import torch


def batch_encode(codec, keypoints: np.ndarray, visible: np.ndarray,
                 device: torch.device) -> dict:
    """Encode a batch. ``keypoints`` (B, K, 2) in the input frame, ``visible`` (B, K).

    Returns a dict with ``fields`` (name -> (B, ...) tensor, for ``gt_fields``), ``labels``
    (name -> (B, ...) tensor, ``gt_instance_labels``; instance axis of 1 per sample kept), and
    ``instances`` (name -> (B, ...) numpy, ``gt_instances``)."""
    kind = type(codec).__name__
    if kind == 'MSRAHeatmap' and codec.unbiased:
        return _msra_unbiased(codec, keypoints, visible, device)
    if kind == 'PixelClassLabel' and codec.target == 'soft':
        return _pixel_class_soft(codec, keypoints, visible, device)
    return _per_sample(codec, keypoints, visible, device)


def _grid(n: int, device) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float64, device=device)


def _msra_unbiased(codec, keypoints, visible, device) -> dict:
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


def _pixel_class_soft(codec, keypoints, visible, device) -> dict:
    from bench.codecs.pixel_class_label import _ONE_MINUS
    W, H = codec.heatmap_size
    B, K = keypoints.shape[:2]
    geo = codec._geometry(K)
    c = keypoints.astype(np.float64) * codec._to_heatmap
    inside = (c >= -0.5) & (c < codec._upper)
    valid = inside[..., 0] & inside[..., 1] & (np.asarray(visible) >= 0.5)
    c[~valid] = 0.0
    start = (c + (0.5 - geo.R)).astype(np.intp)
    start = np.minimum(np.maximum(start, 0), geo.start_max)
    c_t = torch.from_numpy(c).to(device)
    st = torch.from_numpy(start).to(device)
    valid_t = torch.from_numpy(valid).to(device)
    u, v = _grid(W, device), _grid(H, device)
    # windowed separable Gaussians in float32, as the codec computes them
    gx = torch.exp(((u - c_t[..., :1]) ** 2 * codec._neg_inv_2s2).float())
    gy = torch.exp(((v - c_t[..., 1:]) ** 2 * codec._neg_inv_2s2).float())
    gx = gx * ((u >= st[..., :1]) & (u < st[..., :1] + geo.Lx))
    gy = gy * ((v >= st[..., 1:]) & (v < st[..., 1:] + geo.Ly))
    gx = gx * (valid_t * float(_ONE_MINUS))[..., None]
    G = gy[..., :, None] * gx[..., None, :]  # (B, K, H, W) float32
    P0 = torch.exp(torch.log1p(-G).sum(1))  # (B, H, W)
    S = G.sum(1).clamp_min(1e-30)
    ratio = (1.0 - P0) / S
    heat = torch.cat([P0[:, None], G * ratio[:, None]], 1)
    weights = torch.from_numpy(valid.astype(np.float32)).to(device)
    return dict(fields=dict(heatmaps=heat), labels=dict(keypoint_weights=weights[:, None]),
                instances={})


def _per_sample(codec, keypoints, visible, device) -> dict:
    fields, labels, instances = {}, {}, {}
    encoded = [codec.encode(kp[None], vis[None]) for kp, vis in zip(keypoints, visible)]
    for key in encoded[0]:
        values = [e[key] for e in encoded]
        if key in codec.field_mapping_table:
            fields[codec.field_mapping_table[key]] = torch.stack(
                [torch.from_numpy(np.ascontiguousarray(x)) for x in values]).to(device)
        elif key in codec.label_mapping_table:
            labels[codec.label_mapping_table[key]] = torch.stack(
                [torch.from_numpy(np.ascontiguousarray(x)) for x in values]).to(device)
        elif key in getattr(codec, 'instance_mapping_table', {}):
            instances[codec.instance_mapping_table[key]] = np.stack(values)
    return dict(fields=fields, labels=labels, instances=instances)
