"""The batched top-down training data path: a dataset that hands out decoded pixels and raw
annotations, and a data preprocessor that augments, crops and encodes the whole batch on the
training device.

Per sample, MMPose's stock path costs 2.3 ms on this machine (PNG decode 0.8, bbox transform
0.45, warp 0.25, target 0.2-0.46, packing 0.28): about 60% of a default training iteration.
Here a sample costs a dict lookup; the batch costs one vectorised draw, one ``grid_sample`` and
one target encode (:mod:`bench.engine.batch_augment`, :mod:`bench.engine.batch_targets`).

Configuration (``bench.config.build_config`` writes it when ``train.data_path: batched``)::

    train_dataloader = dict(dataset=dict(
        type='BatchedTopdownDataset',
        dataset=dict(type='CocoDataset', ..., pipeline=train_pipeline),  # stock, the reference
        cache_dir='.cache/images'))
    model = dict(data_preprocessor=dict(
        type='BatchTopdownPreprocessor', mean=..., std=..., bgr_to_rgb=True,
        augment=AugmentSpec.from_pipeline(train_pipeline).to_dict(), codec=codec))

Validation and test loaders keep MMPose's per-sample pipeline: the preprocessor passes packed
batches (``PoseDataSample``) to :class:`~mmpose.models.PoseDataPreprocessor` unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from mmengine.structures import InstanceData, PixelData
from mmpose.registry import DATASETS, KEYPOINT_CODECS, MODELS
from mmpose.models.data_preprocessors import PoseDataPreprocessor
from mmpose.structures import PoseDataSample

from bench.engine.batch_augment import (AugmentSpec, bbox_center_scale, draw, transform_keypoints,
                                        warp_images, warp_matrices)
from bench.engine.batch_targets import batch_encode
from bench.engine.image_cache import DecodedImages


@dataclass
class RawTopdownSample:
    """One instance as the batched path needs it (not a Sequence or Mapping, so that MMEngine's
    ``pseudo_collate`` passes it through whole).

    Attributes:
        index (int): position in the dataset
        size (np.ndarray): (2,) true (h, w) of the image
        bbox (np.ndarray): (4,) xyxy
        keypoints (np.ndarray): (K, 2) image frame
        keypoints_visible (np.ndarray): (K,)
        meta (dict): ``id``, ``img_id``, ``img_path``
        flip_indices (list): the dataset's left/right swap (``metainfo['flip_indices']``)
    """
    index: int
    size: np.ndarray
    bbox: np.ndarray
    keypoints: np.ndarray
    keypoints_visible: np.ndarray
    meta: dict
    flip_indices: list


@DATASETS.register_module()
class BatchedTopdownDataset:
    """A top-down dataset whose items are decoded pixels and raw annotations: the
    augmentation, the crop and the targets are left to :class:`BatchTopdownPreprocessor`.

    Args:
        dataset (dict): the wrapped MMPose dataset (``data_mode='topdown'``), with its stock
            train pipeline (kept as the reference; not run here)
        cache_dir (str): where the decoded images are memory-mapped
            (:class:`bench.engine.image_cache.DecodedImages`)
    """

    def __init__(self, dataset: dict, cache_dir: str = '.cache/images'):
        self._cfg = dict(dataset)
        self.cache_dir = cache_dir
        self.dataset = DATASETS.build(self._cfg)
        self._ready = False

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        if self._ready:
            return
        self.dataset.full_init()
        infos = [self.dataset.get_data_info(i) for i in range(len(self.dataset))]
        self.images = DecodedImages([d['img_path'] for d in infos], self.cache_dir)
        self._rows = np.array([self.images.index[str(d['img_path'])] for d in infos])
        self._bbox = np.stack([np.asarray(d['bbox'], np.float32).reshape(4) for d in infos])
        self._kp = np.stack([np.asarray(d['keypoints'], np.float32)[0, :, :2] for d in infos])
        vis = [np.asarray(d['keypoints_visible'], np.float32)[0] for d in infos]
        self._vis = np.stack([v[..., 0] if v.ndim == 2 else v for v in vis])
        self._meta = [dict(id=d.get('id'), img_id=d.get('img_id'), img_path=d['img_path'])
                      for d in infos]
        self._flip = list(self.dataset.metainfo['flip_indices'])
        self._ready = True

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        self.full_init()
        row = self._rows[i]
        h, w = self.images.sizes[row]
        # the cache pads every image to the split's largest size: hand out the image itself
        # (a view), so that a batch pads to its own largest image
        return dict(inputs=self.images.pixels[row, :h, :w],
                    data_samples=RawTopdownSample(int(i), self.images.sizes[row], self._bbox[i],
                                                  self._kp[i], self._vis[i], self._meta[i],
                                                  self._flip))


@MODELS.register_module()
class BatchTopdownPreprocessor(PoseDataPreprocessor):
    """``PoseDataPreprocessor`` that also augments, crops and encodes raw training batches
    (from :class:`BatchedTopdownDataset`) on the model's device.

    Args:
        augment (dict): :class:`~bench.engine.batch_augment.AugmentSpec` fields
        codec (dict): the training target's codec (the ``GenerateTarget`` encoder)
        **kwargs: ``PoseDataPreprocessor``'s (mean, std, bgr_to_rgb...)
    """

    def __init__(self, augment: Optional[dict] = None, codec: Optional[dict] = None, **kwargs):
        super().__init__(**kwargs)
        self.spec = AugmentSpec(**augment) if augment else None
        self.codec = KEYPOINT_CODECS.build(codec) if codec else None
        #: hand out channels-last batches (set by :class:`bench.engine.hooks.ChannelsLastHook`)
        self.channels_last = False

    def forward(self, data: dict, training: bool = False) -> dict:
        samples = data.get('data_samples')
        if not samples or not isinstance(samples[0], RawTopdownSample):
            return super().forward(data, training)
        if self.spec is None or self.codec is None:
            raise ValueError('BatchTopdownPreprocessor got a raw batch but no augment/codec')
        return self.augment_batch(data['inputs'], samples, training)

    def augment_batch(self, images: list, samples: list, training: bool = True, draws=None) -> dict:
        """Raw batch -> ``{'inputs': (B, 3, h, w) normalised, 'data_samples': [...]}``.
        ``draws`` fixes the random augmentation (tests); by default it is drawn here, from the
        global numpy RNG, when ``training``."""
        from bench.engine.batch_augment import Draws
        spec = self.spec
        B = len(samples)
        sizes = np.stack([s.size for s in samples])
        widths = sizes[:, 1].astype(np.float32)
        if draws is None:
            draws = draw(spec, B) if training else Draws.none(B)
        center, scale = bbox_center_scale(np.stack([s.bbox for s in samples]), widths, spec,
                                          draws)
        A, full = warp_matrices(center, scale, spec, draws, widths)
        flip_indices = samples[0].flip_indices
        kp, vis = transform_keypoints(np.stack([s.keypoints for s in samples]),
                                      np.stack([s.keypoints_visible for s in samples]), full,
                                      draws, flip_indices)
        h_max, w_max = sizes.max(0)
        if all(img.shape[:2] == (h_max, w_max) for img in images):
            batch = torch.from_numpy(np.stack(images))
        else:  # zero padding, top-left: the warp reads 0 outside each image anyway
            batch = torch.zeros((B, h_max, w_max, 3), dtype=torch.uint8)
            pad = batch.numpy()  # the same memory: copies the read-only cache rows, no warning
            for i, img in enumerate(images):
                pad[i, :img.shape[0], :img.shape[1]] = img
        device = self.device
        crops = warp_images(batch.to(device), full, spec.input_size)
        if self._channel_conversion:
            crops = crops[:, [2, 1, 0]]
        if self._enable_normalize:
            crops = (crops - self.mean) / self.std
        if self.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        targets = batch_encode(self.codec, kp, vis, device)
        data_samples = []
        w, h = spec.input_size
        for i, s in enumerate(samples):
            # what the heads' losses read (gt_fields, gt_instance_labels) and a few meta keys:
            # each field costs a deep copy per sample and batch
            ds = PoseDataSample(metainfo=dict(img_path=s.meta['img_path'], input_size=(w, h),
                                              flip=bool(draws.flip[i])))
            if targets['instances']:
                ds.gt_instances = InstanceData(
                    **{key: value[i] for key, value in targets['instances'].items()})
            ds.gt_instance_labels = InstanceData(
                **{key: value[i] for key, value in targets['labels'].items()})
            ds.gt_fields = PixelData(**{key: value[i] for key, value in targets['fields'].items()})
            data_samples.append(ds)
        return dict(inputs=crops, data_samples=data_samples)
