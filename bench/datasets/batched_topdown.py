"""The batched top-down training data path, its dataset half: a dataset that hands out decoded
pixels and raw annotations; the data preprocessor
(:class:`bench.models.data_preprocessors.BatchTopdownPreprocessor`) augments, crops and
encodes the whole batch on the training device.

Per sample, MMPose's stock path costs 2.3 ms on this machine (PNG decode 0.8, bbox transform
0.45, warp 0.25, target 0.2-0.46, packing 0.28): about 60% of a default training iteration.
Here a sample costs a dict lookup; the batch costs one vectorised draw, one ``grid_sample`` and
one target encode (:mod:`bench.models.data_preprocessors.batch_augment`,
:mod:`bench.models.data_preprocessors.batch_targets`).

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

import numpy as np
from mmpose.registry import DATASETS

from bench.datasets.image_cache import DecodedImages


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
            (:class:`bench.datasets.image_cache.DecodedImages`)
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
