"""The batched training data path against MMPose's per-sample pipeline (the reference).

For the same random draws (flip, shift, scale, rotation), MMPose's stock transforms
(``LoadImage`` -> ``GetBBoxCenterScale`` -> ``RandomFlip`` -> ``RandomBBoxTransform`` ->
``TopdownAffine`` -> ``GenerateTarget`` -> ``PackPoseInputs``, with their random draws pinned)
and :class:`bench.models.data_preprocessors.BatchTopdownPreprocessor` must give the same crops
(within interpolation tolerance: OpenCV interpolates in 1/32 pixel steps and rounds to uint8),
the same keypoints in the input frame, and the same targets and weights for every codec. The draws
themselves must follow MMPose's distributions.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import bench  # noqa: F401  (registers the modules)
from bench.config import build_config
from bench.models.data_preprocessors.batch_augment import AugmentSpec, Draws, draw
from bench.params import load_params

# flip, (shift x, shift y), scale, rotation (degrees): corner cases of each
DRAWS = [
    (False, (0., 0.), 1.0, 0.),
    (True, (0., 0.), 1.0, 0.),
    (False, (0.1, -0.12), 0.85, 25.),
    (True, (-0.16, 0.05), 1.2, -30.),
    (True, (0.0, 0.16), 0.8, 90.),
    (False, (0.16, 0.16), 1.15, -170.),
]


@pytest.fixture
def env(tiny_data, monkeypatch):
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_data))
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    return load_params(tiny_data / 'params.yaml')


def _reference(cfg, index: int, d) -> dict:
    """MMPose's stock train pipeline on sample ``index``, its random draws pinned to ``d``."""
    from mmcv.transforms import Compose
    from mmpose.registry import DATASETS
    inner = copy.deepcopy(cfg.train_dataloader.dataset.dataset)
    pipeline = inner.pop('pipeline')
    inner['pipeline'] = []
    dataset = DATASETS.build(inner)
    flip, shift, scale, rot = d
    transforms = Compose(pipeline)
    for t in transforms.transforms:
        name = type(t).__name__
        if name == 'RandomFlip':
            t._choose_direction = lambda flip=flip: 'horizontal' if flip else None
        elif name == 'RandomBBoxTransform':
            t._get_transform_params = lambda n, shift=shift, scale=scale, rot=rot: (
                np.array([shift], np.float32), np.array([[scale]], np.float32),
                np.array([rot], np.float32))
    results = dataset.get_data_info(index)
    for t in transforms.transforms[:-1]:
        results = t(results)
    assert type(transforms.transforms[-1]).__name__ == 'PackPoseInputs'
    packed = transforms.transforms[-1](copy.deepcopy(results))
    packed['results'] = results  # before packing: transformed_keypoints
    return packed


def _batched(cfg, indices, draws):
    from mmengine.dataset import pseudo_collate
    from mmpose.registry import DATASETS, MODELS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    dataset.full_init()
    pre = MODELS.build(cfg.model).data_preprocessor
    batch = pseudo_collate([dataset[i] for i in indices])
    d = Draws(flip=np.array([x[0] for x in draws]),
              offset=np.array([x[1] for x in draws], np.float32),
              scale=np.array([[x[2]] for x in draws], np.float32),
              rotate=np.array([x[3] for x in draws], np.float32))
    out = pre.augment_batch(batch['inputs'], batch['data_samples'], training=True, draws=d)
    return pre, out


@pytest.mark.parametrize('method', ['regression_dark', 'cls_ohem', 'regression',
                                    # the zoo: per-sample encode fallback (SimCC's 1-D labels,
                                    # RLE's coordinates, DSNT's heatmaps + coordinates) and
                                    # UDP's warp
                                    'simcc', 'rle', 'dsnt', 'regression_udp'])
def test_batched_path_matches_mmpose_pipeline(env, method):
    cfg = build_config(env, method, 0)
    assert cfg.train_dataloader.dataset.type == 'BatchedTopdownDataset'
    indices = list(range(len(DRAWS)))
    pre, out = _batched(cfg, indices, DRAWS)
    # back to BGR pixels, as the reference packs them
    mean, std = pre.mean, pre.std
    crops = (out['inputs'] * std + mean)[:, [2, 1, 0]]
    for i, d in zip(indices, DRAWS):
        ref = _reference(cfg, i, d)
        ref_img = ref['inputs'].float()
        diff = (crops[i] - ref_img).abs()
        assert ref_img.shape == crops[i].shape
        # OpenCV: 1/32-pixel interpolation steps, uint8 rounding; the rest is identical
        assert diff.mean() < 0.6, (method, d, float(diff.mean()))
        assert torch.quantile(diff.flatten(), 0.99) < 4.0, (method, d)
        ref_ds, ds = ref['data_samples'], out['data_samples'][i]
        kp_ref = ref['results']['transformed_keypoints']
        # targets and weights: the codec's own encode on MMPose's keypoints; every field and
        # label the reference packs (heatmaps, SimCC's x/y labels, regression coordinates...)
        w_ref = ref_ds.gt_instance_labels.keypoint_weights
        np.testing.assert_array_equal(_np(ds.gt_instance_labels.keypoint_weights), _np(w_ref))
        # (PackPoseInputs sets no gt_fields for a codec without fields; the batched path an
        # empty one)
        assert _keys(ds, 'gt_fields') == _keys(ref_ds, 'gt_fields'), method
        assert _keys(ds, 'gt_instance_labels') == _keys(ref_ds, 'gt_instance_labels'), method
        targets = [(f'{group}.{k}', getattr(ds, group).get(k), getattr(ref_ds, group).get(k))
                   for group in ('gt_fields', 'gt_instance_labels')
                   for k in sorted(_keys(ref_ds, group)) if k != 'keypoint_weights']
        assert targets, method
        for name, t, t_ref in targets:
            t, t_ref = _np(t), _np(t_ref)
            assert t.shape == t_ref.shape and t.dtype == t_ref.dtype, (method, name)
            # Keypoints differ by float rounding only (closed-form warp vs
            # cv2.getAffineTransform on float32 points), which moves a Gaussian target by at
            # most ~1e-4 of its peak (and a normalised coordinate by less).
            np.testing.assert_allclose(t, t_ref, atol=2e-4, err_msg=f'{method} {name} {d}')
        assert kp_ref.shape == (1, 17, 2)
        assert ds.flip == d[0] and ds.input_size == tuple(spec_size(cfg))


def _keys(sample, group: str) -> set:
    return set(getattr(sample, group).keys()) if hasattr(sample, group) else set()


def spec_size(cfg):
    return cfg.model.data_preprocessor.augment['input_size']


def _np(x):
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def test_batched_keypoints_match_topdown_affine(env):
    """The keypoints the batched path encodes are TopdownAffine's, left/right swapped on a
    flip as ``flip_keypoints`` swaps them."""
    from bench.models.data_preprocessors import batch_augment as ba
    cfg = build_config(env, 'regression_dark', 0)
    from mmpose.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    dataset.full_init()
    spec = AugmentSpec(**cfg.model.data_preprocessor.augment)
    samples = [dataset[i]['data_samples'] for i in range(len(DRAWS))]
    d = Draws(flip=np.array([x[0] for x in DRAWS]),
              offset=np.array([x[1] for x in DRAWS], np.float32),
              scale=np.array([[x[2]] for x in DRAWS], np.float32),
              rotate=np.array([x[3] for x in DRAWS], np.float32))
    widths = np.array([s.size[1] for s in samples], np.float32)
    center, scale = ba.bbox_center_scale(np.stack([s.bbox for s in samples]), widths, spec, d)
    A, full = ba.warp_matrices(center, scale, spec, d, widths)
    kp, vis = ba.transform_keypoints(np.stack([s.keypoints for s in samples]),
                                     np.stack([s.keypoints_visible for s in samples]), full, d,
                                     samples[0].flip_indices)
    from mmpose.structures.bbox import get_warp_matrix
    for i, x in enumerate(DRAWS):
        ref = _reference(cfg, i, x)
        np.testing.assert_allclose(A[i], get_warp_matrix(center[i], scale[i], float(d.rotate[i]),
                                                         output_size=spec.input_size),
                                   rtol=1e-4, atol=1e-3)
        ref_kp = ref['results']['transformed_keypoints'][0]
        ref_vis = ref['results']['keypoints_visible'][0]
        np.testing.assert_array_equal(vis[i], ref_vis)
        on = ref_vis > 0
        np.testing.assert_allclose(kp[i][on], ref_kp[on], atol=2e-3)


def test_draws_follow_mmpose_distributions():
    """Flip rate, and the shift / scale / rotation distributions of RandomBBoxTransform,
    against MMPose's own transform sampled as many times."""
    from mmpose.datasets.transforms import RandomBBoxTransform, RandomFlip  # noqa: F401
    spec = AugmentSpec(input_size=(64, 64), flip_prob=0.5, bbox_transform=True,
                       scale_factor=(0.8, 1.2), rotate_factor=30.)
    np.random.seed(0)
    n = 20000
    d = draw(spec, n)
    t = RandomBBoxTransform(rotate_factor=30., scale_factor=(0.8, 1.2))
    np.random.seed(1)
    ref = [t._get_transform_params.__wrapped__(t, 1) if hasattr(t._get_transform_params,
                                                                  '__wrapped__')
           else t._get_transform_params(1) for _ in range(n)]
    offset = np.concatenate([r[0] for r in ref])
    scale = np.concatenate([r[1] for r in ref])
    rot = np.concatenate([r[2] for r in ref])
    assert abs(d.flip.mean() - 0.5) < 0.02
    for ours, theirs in ((d.offset, offset), (d.scale, scale), (d.rotate, rot)):
        assert abs(ours.mean() - theirs.mean()) < 0.05 * max(theirs.std(), 1e-3) + 0.01
        assert abs(ours.std() - theirs.std()) < 0.05 * theirs.std()
        assert abs((ours == 0).mean() - (theirs == 0).mean()) < 0.02
    assert np.abs(d.rotate).max() <= 30 and d.scale.min() >= 0.8 - 1e-6


def test_unsupported_transform_is_one_line_error():
    from bench.errors import RunError
    pipeline = [dict(type='LoadImage'), dict(type='GetBBoxCenterScale'),
                dict(type='RandomHalfBody'), dict(type='TopdownAffine', input_size=(64, 64)),
                dict(type='GenerateTarget', encoder=None), dict(type='PackPoseInputs')]
    with pytest.raises(RunError, match='RandomHalfBody.*train.data_path: mmpose'):
        AugmentSpec.from_pipeline(pipeline)


def test_image_cache_is_reused_and_keyed_on_the_files(tmp_path):
    import cv2
    from bench.datasets.image_cache import DecodedImages
    paths = []
    for i in range(3):
        img = np.full((20 + i, 30, 3), 40 * i, np.uint8)
        p = tmp_path / f'{i}.png'
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    a = DecodedImages(paths, tmp_path / 'cache')
    assert a.pixels.shape == (3, 22, 30, 3)
    assert (a.sizes == [[20, 30], [21, 30], [22, 30]]).all()
    assert (a.pixels[1, :21] == 40).all() and (a.pixels[1, 21:] == 0).all()
    assert len(list((tmp_path / 'cache').glob('*.npy'))) == 2
    DecodedImages(paths, tmp_path / 'cache')  # reused: no new file
    assert len(list((tmp_path / 'cache').glob('*.npy'))) == 2
    cv2.imwrite(paths[0], np.full((20, 30, 3), 7, np.uint8))  # a changed file: a new key
    b = DecodedImages(paths, tmp_path / 'cache')
    assert (b.pixels[0, :20] == 7).all()
    assert len(list((tmp_path / 'cache').glob('*.npy'))) == 4


def test_a_damaged_image_cache_heals(tmp_path, capsys):
    """Truncated (a killed copy, a full disk) or altered in place (same size: the key cannot
    see it): the next open rebuilds the cache, says why in one line, and reads the images."""
    import cv2
    from bench.datasets.image_cache import DecodedImages
    paths = []
    for i in range(3):
        p = tmp_path / f'{i}.png'
        cv2.imwrite(str(p), np.full((16, 24, 3), 50 + 40 * i, np.uint8))
        paths.append(str(p))
    DecodedImages(paths, tmp_path / 'cache')
    data = next(f for f in (tmp_path / 'cache').glob('*.npy') if '.sizes' not in f.name)
    good = data.read_bytes()

    data.write_bytes(good[:len(good) // 2])                     # truncated
    capsys.readouterr()
    a = DecodedImages(paths, tmp_path / 'cache')
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and 'unreadable' in out[0] and 'rebuilding' in out[0], out
    assert (a.pixels[2] == 130).all() and data.read_bytes() == good
    del a

    damaged = bytearray(good)                                   # same size, other bytes
    damaged[-100] ^= 0xFF
    data.write_bytes(bytes(damaged))
    b = DecodedImages(paths, tmp_path / 'cache')
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and 'checksum' in out[0] and 'rebuilding' in out[0], out
    assert (b.pixels[2] == 130).all() and data.read_bytes() == good
    assert not list((tmp_path / 'cache').glob('*tmp*'))


REALDATA = Path(__file__).parent / 'data' / 'realdata'


@pytest.fixture
def coco_env(tmp_path, monkeypatch):
    """Params reading MMPose's own COCO test photographs (4 images of mixed sizes, one
    annotation file for every split) in place."""
    from conftest import write_params
    ann = 'annotations/person_keypoints.json'
    write_params(tmp_path, data=dict(source='coco', coco=dict(
        root=str(REALDATA / 'coco'), img_prefix='images/',
        ann_files=dict(train=ann, val=ann, test=ann))))
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tmp_path))
    from mmengine.registry import init_default_scope
    init_default_scope('mmpose')
    return load_params(tmp_path / 'params.yaml')


@pytest.mark.parametrize('method', ['regression_dark', 'cls_ohem'])
def test_batched_path_on_real_photographs_of_mixed_sizes(coco_env, method):
    """Real photographs of four sizes: every batch of two (so most batches lack the largest
    image, which the image cache pads to) crops what MMPose's per-sample pipeline crops."""
    cfg = build_config(coco_env, method, 0)
    from mmpose.registry import DATASETS
    n = len(DATASETS.build(cfg.train_dataloader.dataset))
    assert n >= 8
    for start in range(0, n - 1, 2):
        indices = [start, start + 1]
        draws = [DRAWS[start % len(DRAWS)], DRAWS[(start + 1) % len(DRAWS)]]
        pre, out = _batched(cfg, indices, draws)
        crops = (out['inputs'] * pre.std + pre.mean)[:, [2, 1, 0]]
        for k, (i, d) in enumerate(zip(indices, draws)):
            ref = _reference(cfg, i, d)
            ref_img = ref['inputs'].float()
            assert ref_img.shape == crops[k].shape
            diff = (crops[k] - ref_img).abs()
            assert diff.mean() < 0.6, (method, i, float(diff.mean()))
            assert torch.quantile(diff.flatten(), 0.99) < 4.0, (method, i)
            t = _np(out['data_samples'][k].gt_instance_labels.keypoint_weights)
            np.testing.assert_array_equal(
                t, _np(ref['data_samples'].gt_instance_labels.keypoint_weights))
