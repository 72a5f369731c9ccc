"""bench.data.validate: every kind of broken COCO keypoint file gives a one-line DatasetError
that names the file and the offending record."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.data.validate import DatasetError, validate_coco_keypoints, validate_split_files
from bench.perf import synthetic_coco_annotations

K = 17


def _valid() -> dict:
    kp = np.zeros((K, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.arange(K) + 1.0, 5.0, 2
    kp[3] = 0  # one keypoint outside the image, written as COCO does
    anns = [dict(id=i + 1, image_id=i + 1, category_id=1, keypoints=kp.ravel().tolist(),
                 num_keypoints=K - 1, bbox=[0.5, 1.0, 20.0, 10.0], area=200.0, iscrowd=0)
            for i in range(3)]
    images = [dict(id=i + 1, file_name=f'train/{i:06d}.png', width=24, height=16)
              for i in range(3)]
    cats = [dict(id=1, name='person', keypoints=[f'k{j}' for j in range(K)], skeleton=[])]
    return dict(images=images, annotations=anns, categories=cats)


@pytest.fixture
def dataset(tmp_path: Path):
    """A valid 3-image dataset: (annotation path, image root, data dict)."""
    img_root = tmp_path / 'images'
    (img_root / 'train').mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(img_root / 'train' / f'{i:06d}.png'), np.full((16, 24, 3), 90, np.uint8))
    ann = tmp_path / 'annotations' / 'train.json'
    ann.parent.mkdir()
    data = _valid()
    ann.write_text(json.dumps(data))
    return ann, img_root, data


def _dump(ann: Path, data) -> None:
    ann.write_text(json.dumps(data))  # allow_nan: NaN/Infinity literals, as some tools write


def _kp(data, i: int, j: int, c: int, value) -> None:
    data['annotations'][i]['keypoints'][3 * j + c] = value


# each case: (id, breaker(ann_path, image_root, data), substrings the message must contain)
CASES = [
    ('unreadable-missing', lambda a, r, d: a.unlink(), ['cannot read annotation file']),
    ('unreadable-directory', lambda a, r, d: (a.unlink(), a.mkdir()),
     ['cannot read annotation file']),
    ('invalid-json', lambda a, r, d: a.write_text('{"images": [\n  {"id": 1,,}\n]}'),
     ['invalid JSON at line 2 column']),
    ('not-utf8', lambda a, r, d: a.write_bytes(b'{"images": "\xff\xfe"}'), ['not UTF-8']),
    ('top-level-list', lambda a, r, d: _dump(a, [d]), ['top level is a JSON list']),
    ('missing-top-level-key',
     lambda a, r, d: _dump(a, {k: v for k, v in d.items() if k != 'annotations'}),
     ["missing top-level key(s) ['annotations']"]),
    ('top-level-not-list', lambda a, r, d: _dump(a, {**d, 'images': {}}),
     ["top-level 'images' is a dict"]),
    ('no-images', lambda a, r, d: _dump(a, {**d, 'images': []}), ['no images', 'empty split']),
    ('no-annotations', lambda a, r, d: _dump(a, {**d, 'annotations': []}),
     ['no annotations', 'empty split']),
    ('image-without-file-name',
     lambda a, r, d: (d['images'][2].pop('file_name'), _dump(a, d)),
     ['images[2] (id=3)', 'file_name']),
    ('image-without-height',
     lambda a, r, d: (d['images'][1].pop('height'), _dump(a, d)),
     ['images[1] (id=2)', 'height=None is not a positive integer']),
    ('duplicate-image-id', lambda a, r, d: (d['images'][2].update(id=1), _dump(a, d)),
     ['images[2]', 'id=1 appears more than once']),
    ('annotation-missing-key',
     lambda a, r, d: (d['annotations'][1].pop('bbox'), _dump(a, d)),
     ['annotations[1] (id=2)', "missing key 'bbox'"]),
    ('duplicate-annotation-id',
     lambda a, r, d: (d['annotations'][2].update(id=2), _dump(a, d)),
     ['annotations[2] (id=2)', 'appears more than once']),
    ('unknown-image-id',
     lambda a, r, d: (d['annotations'][1].update(image_id=99), _dump(a, d)),
     ['annotations[1] (id=2)', 'image_id=99 is not in "images"']),
    ('keypoints-wrong-length',
     lambda a, r, d: (d['annotations'][2]['keypoints'].pop(), _dump(a, d)),
     ['annotations[2] (id=3)', "'keypoints' has 50 values, expected a list of 51"]),
    ('keypoints-not-a-list',
     lambda a, r, d: (d['annotations'][0].update(keypoints=None), _dump(a, d)),
     ['annotations[0] (id=1)', "'keypoints' has a NoneType"]),
    ('keypoint-not-a-number',
     lambda a, r, d: (_kp(d, 1, 4, 0, 'x'), _dump(a, d)),
     ['annotations[1] (id=2)', "'keypoints'[12] is 'x', not a number"]),
    ('keypoint-nan', lambda a, r, d: (_kp(d, 1, 5, 1, float('nan')), _dump(a, d)),
     ['annotations[1] (id=2)', 'keypoint 5 has y=nan']),
    ('keypoint-inf', lambda a, r, d: (_kp(d, 2, 0, 0, float('inf')), _dump(a, d)),
     ['annotations[2] (id=3)', 'keypoint 0 has x=inf']),
    ('keypoint-negative', lambda a, r, d: (_kp(d, 0, 7, 0, -3.5), _dump(a, d)),
     ['annotations[0] (id=1)', 'keypoint 7 has negative x=-3.5']),
    ('visibility-out-of-range', lambda a, r, d: (_kp(d, 1, 16, 2, 3), _dump(a, d)),
     ['annotations[1] (id=2)', 'keypoint 16 has visibility v=3']),
    ('visibility-fractional', lambda a, r, d: (_kp(d, 1, 2, 2, 0.5), _dump(a, d)),
     ['annotations[1] (id=2)', 'keypoint 2 has visibility v=0.5']),
    ('bbox-malformed', lambda a, r, d: (d['annotations'][1].update(bbox=[1, 2, 3]), _dump(a, d)),
     ['annotations[1] (id=2)', "'bbox' has 3 values"]),
    ('bbox-zero-width',
     lambda a, r, d: (d['annotations'][2].update(bbox=[1, 2, 0, 3]), _dump(a, d)),
     ['annotations[2] (id=3)', 'bbox [1.0, 2.0, 0.0, 3.0]']),
    ('bbox-negative-height',
     lambda a, r, d: (d['annotations'][0].update(bbox=[1, 2, 3, -1]), _dump(a, d)),
     ['annotations[0] (id=1)', 'w > 0, h > 0']),
    ('image-missing', lambda a, r, d: (r / 'train' / '000001.png').unlink(),
     ['images[1] (id=2)', 'does not exist', '000001.png']),
    ('image-empty', lambda a, r, d: (r / 'train' / '000002.png').write_bytes(b''),
     ['images[2] (id=3)', 'is empty (0 bytes)']),
    ('image-undecodable', lambda a, r, d: (r / 'train' / '000000.png').write_bytes(b'nope'),
     ['images[0] (id=1)', 'cannot be decoded']),
]


@pytest.mark.parametrize('breaker, expected', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_file_gives_one_line_error_naming_file_and_record(dataset, breaker, expected):
    ann, img_root, data = dataset
    breaker(ann, img_root, data)
    with pytest.raises(DatasetError) as err:
        validate_coco_keypoints(ann, img_root, num_keypoints=K)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert '\n' not in msg and '\r' not in msg
    assert str(ann) in msg
    for part in expected:
        assert part in msg, msg


def test_valid_file_returns_summary(dataset):
    ann, img_root, _ = dataset
    summary = validate_coco_keypoints(ann, img_root, num_keypoints=K)
    assert summary == dict(images=3, annotations=3, keypoints_labelled=3 * (K - 1))


def test_check_images_false_skips_the_image_files(dataset):
    ann, img_root, _ = dataset
    (img_root / 'train' / '000001.png').unlink()
    assert validate_coco_keypoints(ann, img_root, K, check_images=False)['images'] == 3


def test_crowd_annotation_may_have_an_empty_box(dataset):
    ann, img_root, data = dataset
    data['annotations'][0].update(iscrowd=1, bbox=[0, 0, 0, 0])
    _dump(ann, data)
    assert validate_coco_keypoints(ann, img_root, K)['annotations'] == 3


def test_validate_split_files_checks_each_split(dataset):
    ann, img_root, data = dataset
    root = ann.parent.parent
    data['annotations'][0]['keypoints'][2] = 7
    (ann.parent / 'val.json').write_text(json.dumps(data))
    ok = validate_split_files(root, {'train': 'annotations/train.json'}, 'images/', K)
    assert ok['train']['annotations'] == 3
    with pytest.raises(DatasetError, match=r'val\.json: annotations\[0\] \(id=1\)'):
        validate_split_files(root, {'train': 'annotations/train.json',
                                    'val': 'annotations/val.json'}, 'images/', K)


def test_large_file_is_validated_to_its_last_record(tmp_path):
    # COCO-sized splits: every record is checked, the last one included (the vectorised
    # checks must not stop at a chunk boundary); `python -m bench perf` times this
    n = 60_000
    data = synthetic_coco_annotations(n, K)
    ann = tmp_path / 'big.json'
    ann.write_text(json.dumps(data))
    summary = validate_coco_keypoints(ann, tmp_path, K, check_images=False)
    assert summary['annotations'] == n and summary['images'] == n // 2
    data['annotations'][-1]['keypoints'][3 * 7 + 1] = float('nan')
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=rf'annotations\[{n - 1}\] \(id={n - 1}\).*keypoint 7 '
                                           r'has y=nan'):
        validate_coco_keypoints(ann, tmp_path, K, check_images=False)


REALDATA = Path(__file__).parent / 'data' / 'realdata'


def _coco_params(tmp_path, monkeypatch, name: str, **coco):
    from bench.params import load_params
    from conftest import write_params
    ann = 'annotations/person_keypoints.json'
    write_params(tmp_path, data=dict(
        source='coco', metainfo=f'configs/_base_/datasets/{name}.py',
        coco=dict(root=str(REALDATA / name), img_prefix='images/',
                  ann_files=dict(train=ann, val=ann, test=ann), **coco)))
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tmp_path))
    return load_params(tmp_path / 'params.yaml')


def test_metric_settings_come_from_the_metainfo_or_the_data_key(tmp_path, monkeypatch):
    from bench.data.layout import coco_metric_settings
    assert coco_metric_settings(_coco_params(tmp_path, monkeypatch, 'crowdpose')) == dict(
        use_area=False, iou_type='keypoints_crowd')              # as MMPose's CrowdPose config
    assert coco_metric_settings(_coco_params(tmp_path, monkeypatch, 'coco')) == dict(
        use_area=True, iou_type='keypoints')
    assert coco_metric_settings(_coco_params(tmp_path, monkeypatch, 'coco', use_area=False)) \
        == dict(use_area=False, iou_type='keypoints')            # the data key wins


def test_data_stage_names_the_field_a_metric_needs(tmp_path, monkeypatch, capsys):
    """CrowdPose has no `area`: forcing `use_area: true` stops the data stage, before any
    training, with one line naming the file, the annotation, the field and the setting."""
    from bench.stages import data
    params = _coco_params(tmp_path, monkeypatch, 'crowdpose', use_area=True)
    with pytest.raises(DatasetError) as exc:
        data.run(params)
    msg = str(exc.value)
    assert '\n' not in msg and 'person_keypoints.json' in msg and '"area"' in msg
    assert 'use_area' in msg and 'annotations[0]' in msg
