"""The batched top-down training data path, its data preprocessor: the raw batches of
:class:`bench.datasets.BatchedTopdownDataset` augmented (:mod:`.batch_augment`), cropped and
encoded (:mod:`.batch_targets`) on the training device at once."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from mmengine.structures import InstanceData, PixelData
from mmpose.models.data_preprocessors import PoseDataPreprocessor
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.structures import PoseDataSample

from bench.datasets.batched_topdown import RawTopdownSample
from bench.models.data_preprocessors.batch_augment import (AugmentSpec, bbox_center_scale, draw,
                                                           transform_keypoints, warp_images,
                                                           warp_matrices)
from bench.models.data_preprocessors.batch_targets import batch_encode


@MODELS.register_module()
class BatchTopdownPreprocessor(PoseDataPreprocessor):
    """``PoseDataPreprocessor`` that also augments, crops and encodes raw training batches
    (from :class:`BatchedTopdownDataset`) on the model's device.

    Args:
        augment (dict): :class:`~bench.models.data_preprocessors.batch_augment.AugmentSpec` fields
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
        from bench.models.data_preprocessors.batch_augment import Draws
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
