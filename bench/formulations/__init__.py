"""One record per formulation family: everything the benchmark must know about a head and the
codecs it decodes, in one place.

A formulation is what the network outputs and how that output becomes keypoints: heatmap
regression, per-pixel classification, SimCC, RLE, DSNT, IPR. MMPose supplies the modules (a
codec in ``KEYPOINT_CODECS``, a head in ``MODELS``, loaded by a config in ``mmpose_configs/``);
the benchmark around them needs a few more facts per family, and reads them here only:

- config building (:mod:`bench.config`): the codec's geometry from ``params.model`` and the
  head's size arguments;
- the codec floor (:mod:`bench.evaluation.codec_floor`): what a perfect network outputs;
- the method table (``reports/methods.csv``): the decoding and refinement, in words;
- evaluation: the grid a codec decodes on (the resolution axis);
- the batched training data path: an encoder of the whole batch on the training device;
- pixel calibration: whether the head's maps are K+1 class probabilities.

A family is one module of this package holding one :func:`register` call; every module here is
imported with the package, so adding a family is that file, its MMPose config and its
``params.yaml`` entry (README, "Adding a formulation": :mod:`bench.formulations.ipr` is the
worked example).

Records are found by head type (:func:`for_head`; each head belongs to one family) or by codec
type (:func:`for_codec`; a codec shared by several families, as ``MSRAHeatmap`` by the
MSE and the focal heatmap heads, must be described the same way by each of them, which
:func:`register` checks).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Optional

from bench.errors import RunError


@dataclass(frozen=True)
class HeadShape:
    """What ``params.model`` fixes for every head: K, the backbone's last stage and the
    deconvolution trunk.

    Attributes:
        k (int): keypoints
        in_channels (int): channels of the backbone's last stage
        featmap (tuple): (w, h) of its feature map, ``input_size // output_stride``
        deconv_out_channels (tuple): one 4x4 x2 deconvolution per entry
        input_size (tuple): (w, h) of the model input
    """
    k: int
    in_channels: int
    featmap: tuple
    deconv_out_channels: tuple
    input_size: tuple

    def trunk(self) -> dict:
        """The deconvolution trunk as MMPose's heatmap-style heads take it."""
        return dict(deconv_out_channels=tuple(self.deconv_out_channels),
                    deconv_kernel_sizes=tuple(4 for _ in self.deconv_out_channels))


@dataclass(frozen=True)
class Formulation:
    """One formulation family.

    Attributes:
        name (str): how the report names the family
        heads (tuple): head types (``MODELS``) of the family; each head has one family
        codecs (tuple): codec types (``KEYPOINT_CODECS``) the heads decode with; a codec
            registered as a subclass of one of them belongs too
        geometry (callable): ``(codec: dict, params) -> dict``, the codec config with every
            size-dependent argument derived from ``params.model``
        head_args (callable): ``(codec: dict, shape: HeadShape) -> dict``, the head's size
            arguments
        describe (callable): ``(codec: dict) -> (decoding, refinement)``, in words
        resolution (callable): ``(codec: dict) -> [W, H] | None``, the grid keypoints are
            decoded on, None for continuous outputs
        perfect_output (callable, optional): ``(encoded: dict) -> Tensor | tuple``: what a
            perfect network's ``head.forward`` returns for one instance, made from the codec's
            ``encode`` of its ground truth; None when a floor means nothing (``no_floor``)
        no_floor (str): why there is no floor (``perfect_output`` None)
        batch_encode (callable, optional): ``(codec, keypoints (B, K, 2), visible (B, K),
            device) -> dict | None``: the batch's targets at once on the device (the fields of
            :func:`bench.models.data_preprocessors.batch_targets.batch_encode`), None for a
            codec setting it does not cover; None: every sample through ``codec.encode``
        pixel_classes (bool): the head's maps are K+1 per-pixel class probabilities (pixel
            calibration scores them)
        flips (str): what the flip test flips and averages: ``'heatmaps'``,
            ``'coordinates'`` or another output named in words (``'1-D vectors'``)
    """
    name: str
    heads: tuple
    codecs: tuple
    geometry: Callable[[dict, Any], dict]
    head_args: Callable[[dict, HeadShape], dict]
    describe: Callable[[dict], tuple]
    resolution: Callable[[dict], Optional[list]]
    perfect_output: Optional[Callable[[dict], Any]] = None
    no_floor: str = ''
    batch_encode: Optional[Callable] = None
    pixel_classes: bool = False
    flips: str = 'heatmaps'


#: Every registered family, by name.
FORMULATIONS: dict[str, Formulation] = {}
#: Fields that describe the codec, which families sharing a codec must share.
_CODEC_FIELDS = ('geometry', 'describe', 'resolution', 'batch_encode')


def register(formulation: Formulation) -> Formulation:
    """Add a family. A head may belong to one family only; a codec listed by several must
    have the same codec-side functions in each."""
    if formulation.perfect_output is None and not formulation.no_floor:
        raise ValueError(f'formulation {formulation.name}: no perfect_output and no no_floor '
                         'reason')
    for other in FORMULATIONS.values():
        if other.name == formulation.name:
            continue
        shared = set(other.heads) & set(formulation.heads)
        if shared:
            raise ValueError(f'formulation {formulation.name}: head {sorted(shared)[0]} '
                             f'belongs to {other.name} already')
        for codec in set(other.codecs) & set(formulation.codecs):
            for f in _CODEC_FIELDS:
                if getattr(other, f) is not getattr(formulation, f):
                    raise ValueError(f'formulation {formulation.name}: codec {codec} is '
                                     f'{f}-described differently by {other.name}')
    FORMULATIONS[formulation.name] = formulation
    return formulation


def codec_is(kind: Optional[str], base: str) -> bool:
    """Whether codec type ``kind`` is ``base`` or a codec registered as a subclass of it: a
    project codec that fixes one step of an MMPose codec (``UDPHeatmapExact``, a
    ``UDPHeatmap``) is treated as its MMPose parent."""
    if kind == base:
        return True
    if not kind:
        return False
    from mmpose.registry import KEYPOINT_CODECS

    import bench.codecs  # noqa: F401  (our codecs)
    cls, parent = KEYPOINT_CODECS.get(kind), KEYPOINT_CODECS.get(base)
    return cls is not None and parent is not None and issubclass(cls, parent)


def for_head(kind: Optional[str]) -> Formulation:
    """The family of head type ``kind``; one line naming it when it has none."""
    for f in FORMULATIONS.values():
        if kind in f.heads:
            return f
    known = sorted(h for f in FORMULATIONS.values() for h in f.heads)
    raise RunError(f'head {kind}: no formulation record (known heads: {", ".join(known)}); '
                   'add one in bench/formulations/ (README, "Adding a formulation")')


def for_codec(kind: Optional[str]) -> Formulation:
    """A family that decodes with codec type ``kind`` (or with its registered parent); one
    line naming it when none does."""
    for f in FORMULATIONS.values():
        if kind in f.codecs:
            return f
    for f in FORMULATIONS.values():
        if any(codec_is(kind, base) for base in f.codecs):
            return f
    known = sorted({c for f in FORMULATIONS.values() for c in f.codecs})
    raise RunError(f'codec {kind}: no formulation record decodes with it (known codecs: '
                   f'{", ".join(known)}); add one in bench/formulations/')


def check_pair(head: Optional[str], codec: Optional[str]) -> Formulation:
    """The family of ``head``, which must decode with ``codec``: one line when it does not (a
    geometry rule would otherwise write arguments the codec does not take)."""
    f = for_head(head)
    if not any(codec_is(codec, base) for base in f.codecs):
        raise RunError(f'head {head} ({f.name}) decodes with {", ".join(f.codecs)}, not codec '
                       f'{codec}; add the codec to its record in bench/formulations/')
    return f


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')
