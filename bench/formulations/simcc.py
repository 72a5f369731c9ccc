"""SimCC: two 1-D classifications per keypoint, over x and y bins (``SimCCHead``,
``SimCCLabel``)."""
from __future__ import annotations

import torch

from bench.formulations import Formulation, HeadShape, register

#: SimCC's bins per input pixel when the method's codec does not set ``simcc_split_ratio``:
#: MMPose's default (``SimCCLabel``, every shipped SimCC config), half-pixel bins.
SIMCC_SPLIT_RATIO = 2.0


def simcc_sigma_bins(params, split_ratio: float) -> float | tuple[float, float]:
    """SimCC's label sigma in bins, chosen so that its 1-D Gaussians are as wide *in input
    pixels* as the heatmap methods' Gaussians: ``model.sigma`` (heatmap pixels) x the heatmap
    stride (input pixels per heatmap pixel, ``input_size / heatmap_size``) x ``split_ratio``
    (bins per input pixel). Default profile: 1.5 x 4 x 2 = 12 bins = 6 input pixels (MMPose's
    own SimCC configs use 6 bins = 3 px at 256x192). One float when both axes agree, else
    (x, y), as ``SimCCLabel`` accepts."""
    m = params.model
    sx, sy = (m.sigma * i / h * split_ratio for i, h in zip(m.input_size, m.heatmap_size))
    return float(sx) if sx == sy else (float(sx), float(sy))


def geometry(codec: dict, params) -> dict:
    """``input_size``, the split ratio (the method config's, else :data:`SIMCC_SPLIT_RATIO`)
    and the sigma in bins (:func:`simcc_sigma_bins`)."""
    ratio = float(codec.get('simcc_split_ratio', SIMCC_SPLIT_RATIO))
    codec.update(input_size=tuple(params.model.input_size),
                 sigma=simcc_sigma_bins(params, ratio), simcc_split_ratio=ratio)
    return codec


def resolution(codec: dict) -> list[int]:
    """Its bins, ``input_size x simcc_split_ratio`` (as ``SimCCHead`` sizes its outputs)."""
    r = float(codec.get('simcc_split_ratio', SIMCC_SPLIT_RATIO))
    return [int(s * r) for s in codec['input_size']]


def head_args(codec: dict, shape: HeadShape) -> dict:
    """The heatmap heads' trunk and K-channel 1x1 layer (SimCCHead builds one inside), so that
    only its last layers (two linear maps to the x and y bins) differ, plus ``input_size``,
    ``in_featuremap_size`` and the codec's ``simcc_split_ratio``."""
    return dict(out_channels=shape.k, in_channels=shape.in_channels, **shape.trunk(),
                input_size=tuple(shape.input_size), in_featuremap_size=tuple(shape.featmap),
                simcc_split_ratio=codec['simcc_split_ratio'])


def describe(codec: dict) -> tuple[str, str]:
    ratio = codec.get('simcc_split_ratio', SIMCC_SPLIT_RATIO)
    return (f'two 1-D distributions over {ratio:g} bins per input pixel (Gaussian labels, '
            f'σ {codec.get("sigma")} bins); arg-max of each',
            'DARK on the 1-D vectors' if codec.get('use_dark') else 'none (bin centre)')


register(Formulation(
    name='SimCC', heads=('SimCCHead',), codecs=('SimCCLabel',), geometry=geometry,
    head_args=head_args, describe=describe, resolution=resolution, flips='1-D vectors',
    # (x, y) 1-D vectors: the labels themselves (decoding is their arg-max; a softmax would
    # not move it)
    perfect_output=lambda enc: (torch.as_tensor(enc['keypoint_x_labels'][0]),
                                torch.as_tensor(enc['keypoint_y_labels'][0]))))
