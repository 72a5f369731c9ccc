"""Turn ``params.yaml`` + a method's MMPose config into the MMEngine ``Config`` of one run.

The configs in ``mmpose_configs/`` are complete MMPose configs; this module only overwrites
the values that ``params.yaml`` owns (geometry, backbone, schedule, data paths, seed), and it
writes each of them into *every* place that MMPose reads it from (codec in the head and in the
target generator, input size in every ``TopdownAffine``), so the formulations cannot drift apart.
What depends on the formulation (the codec's geometry, the head's size arguments) comes from
its record in :mod:`bench.formulations`.
"""
from __future__ import annotations

import copy
from pathlib import Path

from mmengine.config import Config

from bench.data.layout import coco_metric_settings, data_layout, num_keypoints, resolve_metainfo
from bench.formulations import HeadShape, check_pair, for_codec, for_head
from bench.params import CONFIG_DIR, Params, workdir
from bench.runs import RunPaths

# ResNet's last stage has base_channels * 8 * expansion output channels.
_EXPANSION = {18: 1, 34: 1, 50: 4, 101: 4, 152: 4}
#: ResNet stage strides for each output stride (the stem adds 4)
_STRIDES = {32: (1, 2, 2, 2), 16: (1, 2, 2, 1), 8: (1, 2, 1, 1)}


def head_shape(params: Params, k: int) -> HeadShape:
    """What ``params.model`` fixes for every head (K, the backbone's last stage, the trunk)."""
    m = params.model
    return HeadShape(k=k, in_channels=m.backbone.base_channels * 8 * _EXPANSION[m.backbone.depth],
                     featmap=tuple(int(s) // m.backbone.output_stride for s in m.input_size),
                     deconv_out_channels=tuple(m.deconv_channels),
                     input_size=tuple(m.input_size))


def derive_codec(codec: dict, params: Params, head: str | None = None) -> dict:
    """A copy of the method config's ``codec`` with its geometry derived from ``params.model``
    by its formulation's record (:mod:`bench.formulations`): the family of ``head`` (which
    must decode with it), else the family that decodes with the codec."""
    kind = codec.get('type')
    f = check_pair(head, kind) if head is not None else for_codec(kind)
    return f.geometry(dict(codec), params)


def _use_batched_path(cfg: Config, codec: dict) -> None:
    """Train on the batched path (:mod:`bench.datasets.batched_topdown`,
    :mod:`bench.models.data_preprocessors.batch_topdown`): the stock train dataset (with its stock
    pipeline, which stays the description of the augmentation) is wrapped so that it hands out
    decoded pixels, and the data preprocessor augments, crops and encodes each batch."""
    from bench.models.data_preprocessors.batch_augment import AugmentSpec
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

    head = cfg.model.head
    codec = derive_codec(cfg.codec, params, head.get('type'))
    cfg.codec = codec
    head.decoder = codec
    head.update(for_head(head.get('type')).head_args(codec, head_shape(params, k)))
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
    cfg.work_dir = str(work_dir or RunPaths(method, seed).train)
    return cfg
