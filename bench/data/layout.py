"""Where a study's dataset lives and what its MMPose metainfo says: the data layout, K, the
keypoint names and the COCO evaluation settings. Light (MMPose's metainfo parser only), so
that the data, floor and report stages need not import the training configuration."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.errors import ParamsError
from bench.params import STICKMAN_ROOT, Params, workdir


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


#: CocoMetric settings by the metainfo's ``dataset_name``, as MMPose's dataset configs set them
#: (``configs/body_2d_keypoint/*/crowdpose/*.py``: ``use_area=False``,
#: ``iou_type='keypoints_crowd'``); any other dataset gets COCO's.
DATASET_METRIC_SETTINGS = {
    'crowdpose': dict(use_area=False, iou_type='keypoints_crowd'),
}
COCO_METRIC_SETTINGS = dict(use_area=True, iou_type='keypoints')


def coco_metric_settings(params: Params) -> dict[str, Any]:
    """``use_area`` and ``iou_type`` of ``CocoMetric`` for this dataset: the ``data.coco`` keys
    where set, else by the metainfo's ``dataset_name`` (:data:`DATASET_METRIC_SETTINGS`)."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    meta = parse_pose_metainfo(dict(from_file=resolve_metainfo(params.data.metainfo)))
    settings = dict(DATASET_METRIC_SETTINGS.get(meta.get('dataset_name'), COCO_METRIC_SETTINGS))
    if params.data.source == 'coco':
        for key in settings:
            value = getattr(params.data.coco, key)
            if value is not None:
                settings[key] = value
    return settings


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
