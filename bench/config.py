"""Turn ``params.yaml`` + a method's MMPose config into the MMEngine ``Config`` of one run.

The configs in ``mmpose_configs/`` are complete MMPose configs; this module only overwrites
the values that ``params.yaml`` owns (geometry, backbone, schedule, data paths, seed), and it
writes each of them into *every* place that MMPose reads it from (codec in the head and in the
target generator, input size in every ``TopdownAffine``), so the formulations cannot drift apart.
"""
from __future__ import annotations

import copy
from pathlib import Path

from mmengine.config import Config

from bench.data.layout import coco_metric_settings, data_layout, num_keypoints, resolve_metainfo
from bench.errors import RunError
from bench.params import CONFIG_DIR, Params, workdir

# ResNet's last stage has base_channels * 8 * expansion output channels.
_EXPANSION = {18: 1, 34: 1, 50: 4, 101: 4, 152: 4}
#: ResNet stage strides for each output stride (the stem adds 4)
_STRIDES = {32: (1, 2, 2, 2), 16: (1, 2, 2, 1), 8: (1, 2, 1, 1)}


def dark_blur_kernel(sigma: float) -> int:
    """DARK's modulation kernel for heatmaps of ``sigma``: the odd size whose OpenCV Gaussian
    (sigma_k = 0.3 ((k - 1) / 2 - 1) + 0.8) is closest to ``sigma``. It gives MMPose's own
    pairs (k = 11 for sigma 2, k = 17 for sigma 3; ``gaussian_blur``'s docstring) and 7 for 1.5,
    so the blur follows ``model.sigma`` instead of a value tuned for another profile."""
    half = max(int(round((sigma - 0.8) / 0.3 + 1)), 1)
    return 2 * half + 1


#: SimCC's bins per input pixel when the method's codec does not set ``simcc_split_ratio``:
#: MMPose's default (``SimCCLabel``, every shipped SimCC config), half-pixel bins.
SIMCC_SPLIT_RATIO = 2.0


def codec_is(kind: str | None, base: str) -> bool:
    """Whether codec type ``kind`` is ``base`` or a codec registered as a subclass of it: a
    project codec that fixes one step of an MMPose codec (``UDPHeatmapExact``, a
    ``UDPHeatmap``) is treated as its MMPose parent wherever the parent is special-cased."""
    if kind == base:
        return True
    if not kind:
        return False
    from mmpose.registry import KEYPOINT_CODECS

    import bench  # noqa: F401  (our codecs)
    cls, parent = KEYPOINT_CODECS.get(kind), KEYPOINT_CODECS.get(base)
    return cls is not None and parent is not None and issubclass(cls, parent)


def _heatmap_codec(codec: dict, params: Params) -> dict:
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


def simcc_sigma_bins(params: Params, split_ratio: float) -> float | tuple[float, float]:
    """SimCC's label sigma in bins, chosen so that its 1-D Gaussians are as wide *in input
    pixels* as the heatmap methods' Gaussians: ``model.sigma`` (heatmap pixels) x the heatmap
    stride (input pixels per heatmap pixel, ``input_size / heatmap_size``) x ``split_ratio``
    (bins per input pixel). Default profile: 1.5 x 4 x 2 = 12 bins = 6 input pixels (MMPose's
    own SimCC configs use 6 bins = 3 px at 256x192). One float when both axes agree, else
    (x, y), as ``SimCCLabel`` accepts."""
    m = params.model
    sx, sy = (m.sigma * i / h * split_ratio for i, h in zip(m.input_size, m.heatmap_size))
    return float(sx) if sx == sy else (float(sx), float(sy))


def _simcc_codec(codec: dict, params: Params) -> dict:
    """``SimCCLabel``: ``input_size``, the split ratio (the method config's, else
    :data:`SIMCC_SPLIT_RATIO`) and the sigma in bins (:func:`simcc_sigma_bins`)."""
    ratio = float(codec.get('simcc_split_ratio', SIMCC_SPLIT_RATIO))
    codec.update(input_size=tuple(params.model.input_size),
                 sigma=simcc_sigma_bins(params, ratio), simcc_split_ratio=ratio)
    return codec


def _coordinate_codec(codec: dict, params: Params) -> dict:
    """``RegressionLabel``: coordinates normalised by ``input_size``; nothing else."""
    codec.update(input_size=tuple(params.model.input_size))
    return codec


#: What each codec type takes from ``params.model`` (its geometry), one function per type. A
#: codec missing here stops :func:`build_config` with one line: its size-dependent arguments
#: must be derived here, never set by hand in a profile.
CODEC_GEOMETRY = {
    'MSRAHeatmap': _heatmap_codec,
    'UDPHeatmap': _heatmap_codec,
    'UDPHeatmapExact': _heatmap_codec,  # bench.codecs: UDPHeatmap, Gaussians placed right
    'PixelClassLabel': _heatmap_codec,
    'IntegralRegressionLabel': _heatmap_codec,
    'SimCCLabel': _simcc_codec,
    'RegressionLabel': _coordinate_codec,
}


def derive_codec(codec: dict, params: Params) -> dict:
    """A copy of the method config's ``codec`` with its geometry derived from ``params.model``
    (:data:`CODEC_GEOMETRY`)."""
    kind = codec.get('type')
    if kind not in CODEC_GEOMETRY:
        raise RunError(f'codec {kind}: no geometry rule (known: '
                       f'{", ".join(sorted(CODEC_GEOMETRY))}); add one in bench/config.py')
    return CODEC_GEOMETRY[kind](dict(codec), params)


def codec_resolution(codec: dict) -> list[int] | None:
    """(W, H) of the grid a codec decodes keypoints on, or None when its output is continuous.

    Heatmap codecs (MSRAHeatmap, UDPHeatmap(Exact), PixelClassLabel): ``heatmap_size``. SimCCLabel:
    its bins, ``input_size x simcc_split_ratio`` (as ``SimCCHead`` sizes its outputs).
    RegressionLabel (RLE) and IntegralRegressionLabel (DSNT, whose soft-argmax is an
    expectation; its heatmaps only feed the auxiliary loss): None."""
    kind = codec.get('type')
    if kind == 'SimCCLabel':
        r = float(codec.get('simcc_split_ratio', SIMCC_SPLIT_RATIO))
        return [int(s * r) for s in codec['input_size']]
    if kind in ('RegressionLabel', 'IntegralRegressionLabel') or 'heatmap_size' not in codec:
        return None
    return [int(s) for s in codec['heatmap_size']]


def _head_geometry(head: dict, codec: dict, params: Params, k: int) -> dict:
    """The head arguments that follow from ``params.model``, K and the codec, for the head's
    type; only arguments that the head's constructor accepts.

    - HeatmapHead, PixelClassHead, SigmoidHeatmapHead: ``in_channels`` (the backbone's last
      stage), ``out_channels`` = K, the deconvolution trunk (one 4x4 x2 deconvolution per
      ``model.deconv_channels`` entry);
    - SimCCHead: the same trunk and K-channel 1x1 layer (it builds a HeatmapHead inside), so
      that only its last layers (two linear maps to the x and y bins) differ, plus
      ``input_size``, ``in_featuremap_size`` = input_size // backbone.output_stride and the
      codec's ``simcc_split_ratio``;
    - DSNTHead: ``in_channels``, ``in_featuremap_size``, ``num_joints`` = K and the same trunk
      (it also builds a HeatmapHead inside, and soft-argmaxes its K maps);
    - RLEHead: ``in_channels`` (after the GlobalAveragePooling neck) and ``num_joints`` = K.

    Another head type gets those of the heatmap heads' arguments that its constructor
    names."""
    m = params.model
    in_channels = m.backbone.base_channels * 8 * _EXPANSION[m.backbone.depth]
    trunk = dict(deconv_out_channels=tuple(m.deconv_channels),
                 deconv_kernel_sizes=tuple(4 for _ in m.deconv_channels))
    featmap = tuple(int(s) // m.backbone.output_stride for s in m.input_size)
    kind = head.get('type')
    if kind == 'SimCCHead':
        return dict(out_channels=k, in_channels=in_channels, **trunk,
                    input_size=tuple(m.input_size), in_featuremap_size=featmap,
                    simcc_split_ratio=codec['simcc_split_ratio'])
    if kind == 'DSNTHead':
        return dict(in_channels=in_channels, in_featuremap_size=featmap, num_joints=k, **trunk)
    if kind == 'RLEHead':
        return dict(in_channels=in_channels, num_joints=k)
    fields = dict(out_channels=k, in_channels=in_channels, **trunk)
    if kind not in ('HeatmapHead', 'PixelClassHead', 'SigmoidHeatmapHead'):
        import inspect

        from mmpose.registry import MODELS

        import bench  # noqa: F401  (our heads)
        cls = MODELS.get(kind)
        if cls is not None:  # an unknown type: MODELS.build names it when the model is built
            accepted = inspect.signature(cls).parameters
            fields = {key: v for key, v in fields.items() if key in accepted}
    return fields


def _use_batched_path(cfg: Config, codec: dict) -> None:
    """Train on :mod:`bench.engine.batched_data`: the stock train dataset (with its stock
    pipeline, which stays the description of the augmentation) is wrapped so that it hands out
    decoded pixels, and the data preprocessor augments, crops and encodes each batch."""
    from bench.engine.batch_augment import AugmentSpec
    loader = cfg.train_dataloader
    spec = AugmentSpec.from_pipeline(loader.dataset.pipeline)
    loader.dataset = dict(type='BatchedTopdownDataset', dataset=loader.dataset,
                          cache_dir=str(workdir() / '.cache' / 'images'))
    cfg.model.data_preprocessor = dict(cfg.model.data_preprocessor,
                                       type='BatchTopdownPreprocessor',
                                       augment=spec.to_dict(), codec=codec)


def build_config(params: Params, method: str, seed: int,
                 work_dir: str | Path | None = None, lr: float | None = None) -> Config:
    """The full MMEngine config of run (``method``, ``seed``); nothing is built yet. ``lr``
    replaces ``train.lr`` (a tuned learning rate: :mod:`bench.stages.tune`)."""
    spec = params.methods[method]
    cfg = Config.fromfile(str(CONFIG_DIR / spec.config))
    # no yapf: MMEngine formats the whole config with it each time the config is logged, dumped
    # or stored in a checkpoint (every epoch): 2-5 s each on this machine. The text stays valid
    # Python. (``fromfile(format_python_code=False)`` does not survive the _base_ merge.)
    object.__setattr__(cfg, '_format_python_code', False)
    m, t = params.model, params.train
    layout = data_layout(params)
    k = num_keypoints(params.data.metainfo)

    codec = derive_codec(cfg.codec, params)
    cfg.codec = codec
    head = cfg.model.head
    head.decoder = codec
    head.update(_head_geometry(head, codec, params, k))
    if spec.loss is not None:
        head.loss = copy.deepcopy(dict(spec.loss))
    cfg.model.backbone.update(depth=m.backbone.depth, stem_channels=m.backbone.stem_channels,
                              base_channels=m.backbone.base_channels,
                              strides=_STRIDES[m.backbone.output_stride])

    metainfo = dict(from_file=resolve_metainfo(params.data.metainfo))
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        ds = loader.dataset
        ds.update(data_root=layout['root'], ann_file=layout['ann_files'][split],
                  data_prefix=dict(img=layout['img_prefix']), metainfo=metainfo)
        for tr in ds.pipeline:
            if tr['type'] == 'TopdownAffine':
                tr['input_size'] = tuple(m.input_size)
            elif tr['type'] == 'GenerateTarget':
                tr['encoder'] = codec
        loader.num_workers = t.workers
        loader.persistent_workers = False

        if split == 'train':
            loader.batch_size = t.batch_size
    coco_settings = coco_metric_settings(params)
    for split in ('val', 'test'):
        evaluators = cfg[f'{split}_evaluator']
        for ev in evaluators:
            if ev['type'] == 'CocoMetric':
                ev['ann_file'] = layout['root'] + layout['ann_files'][split]
                ev.update(coco_settings)

    if t.data_path == 'batched':
        _use_batched_path(cfg, codec)
    if t.channels_last:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='ChannelsLastHook')]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=t.epochs, val_interval=t.val_interval)
    # foreach: one kernel per step for all parameters (PyTorch's default only on CUDA); same
    # numbers, a third of the optimizer's time on the CPU
    cfg.optim_wrapper = dict(optimizer=dict(type='Adam', lr=lr or t.lr, foreach=True))
    milestones = [e for e in t.milestones if e < t.epochs]
    cfg.param_scheduler = [
        dict(type='LinearLR', begin=0, end=max(t.warmup_iters, 1), start_factor=0.01,
             by_epoch=False),
        dict(type='MultiStepLR', begin=0, end=t.epochs, milestones=milestones or [t.epochs],
             gamma=0.1, by_epoch=True),
    ]
    cfg.randomness = dict(seed=seed, deterministic=t.deterministic)
    cfg.launcher = t.launcher
    for key, value in spec.cfg_options.items():
        cfg.merge_from_dict({key: value})
    from bench.stages.common import RunPaths  # the runs' layout is defined there
    cfg.work_dir = str(work_dir or RunPaths(method, seed).train)
    return cfg
