"""RLE: the coordinates regressed directly, trained with residual log-likelihood estimation
(``RLEHead`` after a global average pooling neck, ``RegressionLabel``)."""
from __future__ import annotations

from bench.formulations import Formulation, HeadShape, register


def geometry(codec: dict, params) -> dict:
    """Coordinates normalised by ``input_size``; nothing else."""
    codec.update(input_size=tuple(params.model.input_size))
    return codec


def head_args(codec: dict, shape: HeadShape) -> dict:
    """``in_channels`` (after the pooling neck) and ``num_joints`` = K."""
    return dict(in_channels=shape.in_channels, num_joints=shape.k)


register(Formulation(
    name='RLE', heads=('RLEHead',), codecs=('RegressionLabel',), geometry=geometry,
    head_args=head_args, flips='coordinates',
    describe=lambda codec: ('coordinates regressed directly (normalised by the input size)',
                            'none'),
    resolution=lambda codec: None,
    # the network regresses the normalised coordinate itself; nothing is quantised or
    # re-encoded between the target and the decoded keypoint
    no_floor='not applicable: the target is the coordinate itself'))
