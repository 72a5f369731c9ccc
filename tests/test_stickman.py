"""bench.data.stickman: determinism, COCO format, and loading/scoring by MMPose unchanged."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.data.stickman import (FLIP_PAIRS, KEYPOINT_NAMES, SPLITS, StickmanConfig,
                                 _sample_body, generate, render_sample)
from bench.data.validate import validate_coco_keypoints

SMALL = StickmanConfig(train=8, val=4, test=4)
# MMPose finds coco.py in its installed .mim folder when the relative path does not exist
pytestmark = pytest.mark.filterwarnings('ignore:The metainfo config file:UserWarning')


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('stickman')
    generate(root, SMALL, progress=False)
    return root


def _coco(root: Path, split: str) -> dict:
    return json.loads((root / 'annotations' / f'{split}.json').read_text())


def test_layout(small):
    files = set(_digests(small))
    for split, n in SMALL.counts().items():
        assert f'annotations/{split}.json' in files
        assert {f'images/{split}/{i:06d}.png' for i in range(n)} <= files
    assert len(files) == 3 + sum(SMALL.counts().values())


def test_same_config_gives_byte_identical_files(small, tmp_path):
    paths = generate(tmp_path, SMALL, progress=False)
    assert paths == {s: tmp_path / 'annotations' / f'{s}.json' for s in SPLITS}
    assert _digests(tmp_path) == _digests(small)


def test_workers_do_not_change_the_output(small, tmp_path):
    generate(tmp_path, SMALL, workers=2, progress=False)
    assert _digests(tmp_path) == _digests(small)


def test_different_seed_changes_every_file(small, tmp_path):
    generate(tmp_path, dataclasses.replace(SMALL, seed=1), progress=False)
    a, b = _digests(small), _digests(tmp_path)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def test_an_image_does_not_depend_on_split_sizes():
    img_a, ann_a = render_sample(SMALL, 'val', 3)
    img_b, ann_b = render_sample(dataclasses.replace(SMALL, val=500, train=1), 'val', 3)
    assert np.array_equal(img_a, img_b)
    assert np.array_equal(ann_a['keypoints'], ann_b['keypoints'])


@pytest.mark.parametrize('split', SPLITS)
def test_annotations_are_valid_coco_keypoints(small, split):
    summary = validate_coco_keypoints(small / 'annotations' / f'{split}.json', small / 'images')
    n = SMALL.counts()[split]
    assert summary['images'] == summary['annotations'] == n
    coco = _coco(small, split)
    (cat,) = coco['categories']
    assert cat['id'] == 1 and cat['name'] == 'person'
    assert cat['keypoints'] == list(KEYPOINT_NAMES)
    assert [15, 13] in cat['skeleton'] and len(cat['skeleton']) == 19  # 1-based, as COCO
    w, h = SMALL.image_size
    for img, ann in zip(coco['images'], coco['annotations']):
        assert img['file_name'].startswith(f'{split}/') and (img['width'], img['height']) == (w, h)
        assert ann['image_id'] == img['id'] and ann['category_id'] == 1 and ann['iscrowd'] == 0
        kp = np.array(ann['keypoints']).reshape(17, 3)
        vis = kp[:, 2]
        assert ann['num_keypoints'] == int((vis > 0).sum()) >= SMALL.min_keypoints
        assert np.all(kp[vis == 0, :2] == 0)
        x, y, bw, bh = ann['bbox']
        assert bw > 0 and bh > 0 and x >= 0 and y >= 0 and x + bw <= w - 1 and y + bh <= h - 1
        lab = kp[vis > 0, :2]
        assert np.all(lab >= [x - 1, y - 1]) and np.all(lab <= [x + bw + 1, y + bh + 1])
        assert 0 < ann['area'] <= bw * bh + 1
    ids = [a['image_id'] for a in coco['annotations']]
    assert len(set(ids)) == len(ids)  # exactly one annotated figure per image


def test_visibility_levels_all_occur():
    vis = np.concatenate([render_sample(SMALL, 'train', i)[1]['keypoints'][:, 2]
                          for i in range(40)])
    frac = np.bincount(vis.astype(int), minlength=3) / vis.size
    assert frac[2] > 0.6 and 0.03 < frac[1] < 0.35 and 0 < frac[0] < 0.15, frac


def test_left_is_the_figures_own_left():
    # upright (unit frame, no rotation): seen from the front, the figure's left is image +x;
    # seen from the back it is image -x
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        body = _sample_body(rng, back_p=0.3, profile_p=0.0)
        front = math.cos(math.radians(body.yaw)) > 0
        sign = 1 if front else -1
        for left, right in ((5, 6), (11, 12)):  # shoulders, hips
            assert sign * (body.kpts[left, 0] - body.kpts[right, 0]) > 0
        if abs(math.cos(math.radians(body.psi))) > 0.3:  # eyes/ears follow the head yaw
            head_sign = 1 if math.cos(math.radians(body.psi)) > 0 else -1
            assert head_sign * (body.kpts[1, 0] - body.kpts[2, 0]) > 0
            assert head_sign * (body.kpts[3, 0] - body.kpts[4, 0]) > 0
            # the face is hidden exactly when the head is seen from the back
            assert body.hidden[0] == (head_sign < 0)
        seen.add(front)
    assert seen == {True, False}


def test_flip_pairs_match_mmpose_metainfo():
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    meta = parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py'))
    assert [meta['keypoint_id2name'][i] for i in range(17)] == list(KEYPOINT_NAMES)
    flip = list(range(17))
    for a, b in FLIP_PAIRS:
        flip[a], flip[b] = b, a
    assert meta['flip_indices'] == flip


def test_config_is_validated():
    with pytest.raises(ValueError, match='val'):
        StickmanConfig(val=0)
    with pytest.raises(ValueError, match='scale_range'):
        StickmanConfig(scale_range=(0.9, 0.5))
    with pytest.raises(ValueError, match='occluder_prob'):
        StickmanConfig(occluder_prob=1.5)


def _mmpose_dataset(root: Path, split: str, pipeline: list):
    from mmengine.registry import init_default_scope
    from mmpose.datasets import CocoDataset

    init_default_scope('mmpose')
    return CocoDataset(ann_file=f'annotations/{split}.json', data_root=str(root),
                       data_prefix=dict(img='images/'), data_mode='topdown',
                       metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
                       test_mode=True, pipeline=pipeline)


@pytest.mark.parametrize('split', SPLITS)
def test_mmpose_coco_dataset_loads_every_split(small, split):
    pipeline = [dict(type='LoadImage'), dict(type='GetBBoxCenterScale'),
                dict(type='TopdownAffine', input_size=(64, 64)), dict(type='PackPoseInputs')]
    ds = _mmpose_dataset(small, split, pipeline)
    assert len(ds) == len(_coco(small, split)['annotations'])
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 64, 64)
    sample = item['data_samples']
    assert sample.gt_instances.keypoints.shape == (1, 17, 2)
    assert Path(sample.metainfo['img_path']).is_file()


def _coco_metric_ap(root: Path, split: str, jitter: float) -> float:
    from mmpose.evaluation import CocoMetric

    ds = _mmpose_dataset(root, split, pipeline=[])
    metric = CocoMetric(ann_file=str(root / 'annotations' / f'{split}.json'))
    metric.dataset_meta = ds.metainfo
    rng = np.random.default_rng(0)
    samples = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        kp = info['keypoints'] + rng.normal(0, jitter, info['keypoints'].shape)
        samples.append(dict(
            id=info['id'], img_id=info['img_id'], category_id=1,
            pred_instances=dict(keypoints=kp, keypoint_scores=np.ones(kp.shape[:2])),
            gt_instances=dict(bbox_scores=info['bbox_score']),
            ori_shape=SMALL.image_size[::-1], raw_ann_info=info['raw_ann_info']))
    metric.process([], samples)
    return metric.evaluate(len(samples))['coco/AP']


def test_coco_metric_scores_ground_truth_as_perfect(small):
    assert _coco_metric_ap(small, 'val', jitter=0.0) == pytest.approx(1.0)
    assert _coco_metric_ap(small, 'val', jitter=4.0) < 0.9  # and the metric is not trivial
