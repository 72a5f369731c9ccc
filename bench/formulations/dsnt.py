"""DSNT: soft-argmax of K soft-maxed heatmaps, a coordinate loss plus a heatmap regulariser
(``DSNTHead``, ``IntegralRegressionLabel``)."""
from __future__ import annotations

import torch

from bench.formulations import Formulation, HeadShape, register
from bench.formulations.heatmap import heatmap_geometry


def integral_head_args(codec: dict, shape: HeadShape) -> dict:
    """``in_channels``, ``in_featuremap_size``, ``num_joints`` = K and the heatmap heads'
    deconvolution trunk (the integral heads build a HeatmapHead inside and soft-argmax its K
    maps)."""
    return dict(in_channels=shape.in_channels, in_featuremap_size=tuple(shape.featmap),
                num_joints=shape.k, **shape.trunk())


def soft_argmax(codec: dict) -> tuple[str, str]:
    return ('soft-argmax: expectation of each soft-maxed map (continuous coordinates)', 'none')


def integral_perfect_output(enc: dict):
    """(normalised coordinates, soft-maxed maps): decoding reads the coordinates only."""
    return (torch.as_tensor(enc['keypoint_labels'][0]), torch.as_tensor(enc['heatmaps']))


def continuous(codec: dict) -> None:
    """A soft-argmax is an expectation: no grid (its heatmaps only feed the auxiliary loss)."""
    return None


register(Formulation(
    name='DSNT', heads=('DSNTHead',), codecs=('IntegralRegressionLabel',),
    geometry=heatmap_geometry, head_args=integral_head_args, describe=soft_argmax,
    resolution=continuous, perfect_output=integral_perfect_output, flips='coordinates'))
