"""Turn ``params.yaml`` + a method's MMPose config into the MMEngine ``Config`` of one run.

The configs in ``mmpose_configs/`` are complete MMPose configs; this module only overwrites
the values that ``params.yaml`` owns (geometry, backbone, schedule, data paths, seed), and it
writes each of them into *every* place that MMPose reads it from (codec in the head and in the
target generator, input size in every ``TopdownAffine``), so the formulations cannot drift apart.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mmengine.config import Config

from bench.params import CONFIG_DIR, STICKMAN_ROOT, Params, workdir

# ResNet's last stage has base_channels * 8 * expansion output channels.
_EXPANSION = {18: 1, 34: 1, 50: 4, 101: 4, 152: 4}
#: ResNet stage strides for each output stride (the stem adds 4)
_STRIDES = {32: (1, 2, 2, 2), 16: (1, 2, 2, 1), 8: (1, 2, 1, 1)}


def resolve_metainfo(metainfo_file: str) -> str:
    """An absolute path for ``data.metainfo``: a file of the user's, or one that MMPose ships
    (``configs/_base_/datasets/*.py``, looked up in its package as MMPose itself does)."""
    own = workdir() / metainfo_file
    if own.is_file():
        return str(own)
    import mmpose
    shipped = Path(mmpose.__file__).parent / '.mim' / metainfo_file
    if shipped.is_file():
        return str(shipped)
    from bench.params import ParamsError
    raise ParamsError(f'data.metainfo = {metainfo_file!r}: no such file here or in MMPose')


def num_keypoints(metainfo_file: str) -> int:
    """K from an MMPose metainfo file (``configs/_base_/datasets/*.py`` or a path)."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    meta = parse_pose_metainfo(dict(from_file=resolve_metainfo(metainfo_file)))
    return int(meta['num_keypoints'])


def joint_names(metainfo_file: str) -> list[str]:
    """Keypoint names in dataset order, from an MMPose metainfo file."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    meta = parse_pose_metainfo(dict(from_file=resolve_metainfo(metainfo_file)))
    return [meta['keypoint_id2name'][i] for i in range(int(meta['num_keypoints']))]


def data_layout(params: Params) -> dict[str, Any]:
    """Where the dataset lives: ``root`` (absolute, trailing /), ``ann_files``, ``img_prefix``."""
    if params.data.source == 'stickman':
        root = STICKMAN_ROOT
        ann = {s: f'annotations/{s}.json' for s in ('train', 'val', 'test')}
        prefix = 'images/'
    else:
        root = params.data.coco.root
        ann = dict(params.data.coco.ann_files)
        prefix = params.data.coco.img_prefix
    root = str(workdir() / root).rstrip('/') + '/'  # absolute: MMEngine joins it as is
    return dict(root=root, ann_files=ann, img_prefix=prefix)


def dark_blur_kernel(sigma: float) -> int:
    """DARK's modulation kernel for heatmaps of ``sigma``: the odd size whose OpenCV Gaussian
    (sigma_k = 0.3 ((k - 1) / 2 - 1) + 0.8) is closest to ``sigma``. It gives MMPose's own
    pairs (k = 11 for sigma 2, k = 17 for sigma 3; ``gaussian_blur``'s docstring) and 7 for 1.5,
    so the blur follows ``model.sigma`` instead of a value tuned for another profile."""
    half = max(int(round((sigma - 0.8) / 0.3 + 1)), 1)
    return 2 * half + 1


def _set_codec_geometry(codec: dict, params: Params) -> dict:
    codec = dict(codec)
    codec.update(input_size=tuple(params.model.input_size),
                 heatmap_size=tuple(params.model.heatmap_size), sigma=params.model.sigma)
    if codec.get('type') == 'MSRAHeatmap' and codec.get('unbiased'):
        codec['blur_kernel_size'] = dark_blur_kernel(params.model.sigma)
    return codec


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
                 work_dir: str | Path | None = None) -> Config:
    """The full MMEngine config of run (``method``, ``seed``); nothing is built yet."""
    spec = params.methods[method]
    cfg = Config.fromfile(str(CONFIG_DIR / spec.config))
    # no yapf: MMEngine formats the whole config with it each time the config is logged, dumped
    # or stored in a checkpoint (every epoch): 2-5 s each on this machine. The text stays valid
    # Python. (``fromfile(format_python_code=False)`` does not survive the _base_ merge.)
    object.__setattr__(cfg, '_format_python_code', False)
    m, t = params.model, params.train
    layout = data_layout(params)
    k = num_keypoints(params.data.metainfo)

    codec = _set_codec_geometry(cfg.codec, params)
    cfg.codec = codec
    head = cfg.model.head
    head.decoder = codec
    head.out_channels = k
    head.in_channels = m.backbone.base_channels * 8 * _EXPANSION[m.backbone.depth]
    head.deconv_out_channels = tuple(m.deconv_channels)
    head.deconv_kernel_sizes = tuple(4 for _ in m.deconv_channels)
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
    for split in ('val', 'test'):
        evaluators = cfg[f'{split}_evaluator']
        for ev in evaluators:
            if ev['type'] == 'CocoMetric':
                ev['ann_file'] = layout['root'] + layout['ann_files'][split]

    if t.data_path == 'batched':
        _use_batched_path(cfg, codec)
    if t.channels_last:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='ChannelsLastHook')]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=t.epochs, val_interval=t.val_interval)
    # foreach: one kernel per step for all parameters (PyTorch's default only on CUDA); same
    # numbers, a third of the optimizer's time on the CPU
    cfg.optim_wrapper = dict(optimizer=dict(type='Adam', lr=t.lr, foreach=True))
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
