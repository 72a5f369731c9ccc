"""Which work dirs ``train`` resumes from: only a complete checkpoint written from the same
inputs (config, data, code), wherever the checkout is."""
from __future__ import annotations

import pytest
import yaml

from bench.params import ROOT
from bench.runs import RunPaths
from bench.stages.train import _prepare_work_dir
from bench.stages.common import training_key


def _paths(tmp_path) -> RunPaths:
    return RunPaths('regression', 0, tmp_path / 'runs')


def _work(tmp_path, pointer, checkpoint=b'weights'):
    work = _paths(tmp_path).train
    work.mkdir(parents=True)
    (work / 'fingerprint.txt').write_text('k1\n')
    if checkpoint is not None:
        (work / 'epoch_1.pth').write_bytes(checkpoint)
    if pointer is not None:
        (work / 'last_checkpoint').write_text(pointer.format(work=work))
    return work


def test_resumes_from_a_complete_checkpoint_of_the_same_config(tmp_path):
    work = _work(tmp_path, '{work}/epoch_1.pth')
    assert _prepare_work_dir(_paths(tmp_path), 'k1') == str(work / 'epoch_1.pth')
    assert (work / 'epoch_1.pth').exists() and not _paths(tmp_path).stale.exists()


def test_pointer_of_a_moved_checkout_is_found_in_the_work_dir(tmp_path):
    # MMEngine writes an absolute path; the checkout was moved since
    work = _work(tmp_path, '/elsewhere/runs/train/regression/seed0/epoch_1.pth')
    assert _prepare_work_dir(_paths(tmp_path), 'k1') == str(work / 'epoch_1.pth')


@pytest.mark.parametrize('pointer, checkpoint', [
    (None, b'weights'),                # killed while saving epoch 1: no pointer yet
    ('', b'weights'),                  # killed while writing the pointer
    ('{work}/epoch_1.pth', None),      # pointer to a checkpoint that is gone
    ('{work}/epoch_1.pth', b''),       # pointer to an empty file
])
def test_incomplete_work_dir_is_moved_aside(tmp_path, pointer, checkpoint):
    paths = _paths(tmp_path)
    _work(tmp_path, pointer, checkpoint=checkpoint)
    for folder in (paths.live, paths.snapshots):  # the run's curves and heatmaps go with it
        folder.mkdir(parents=True)
        (folder / 'x').write_text('old')
    other = RunPaths('regression', 1, paths.root)  # another seed's folders stay
    other.live.mkdir(parents=True)
    assert _prepare_work_dir(paths, 'k1') is None
    assert paths.stale == paths.root / 'train' / 'regression' / 'seed0.stale'
    assert (paths.stale / 'fingerprint.txt').exists()
    assert (paths.train / 'fingerprint.txt').read_text() == 'k1\n'
    assert not (paths.train / 'last_checkpoint').exists()
    assert not paths.live.exists() and not paths.snapshots.exists() and other.live.exists()


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    _work(tmp_path, '{work}/epoch_1.pth')
    assert _prepare_work_dir(_paths(tmp_path), 'k2') is None
    assert (_paths(tmp_path).stale / 'epoch_1.pth').exists()


def _checkout(root, manifest='{"sha256": "a"}'):
    """A work root with a data manifest and a code root whose dvc.yaml's train stage depends
    on it and on a code folder and file."""
    (root / 'data').mkdir(parents=True)
    (root / 'data' / 'manifest.json').write_text(manifest)
    deps = ['data/manifest.json', 'bench/models', 'bench/stages/train.py']
    (root / 'code').mkdir()
    (root / 'code' / 'dvc.yaml').write_text(yaml.safe_dump(dict(stages=dict(
        data=dict(cmd='x', deps=['bench/data']), train=dict(cmd='y', deps=deps)))))
    for dep in deps[1:]:
        path = root / 'code' / dep
        if path.suffix == '.py':
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('x = 1\n')
        else:
            path.mkdir(parents=True)
            (path / 'm.py').write_text('y = 2\n')
    cfg = dict(work_dir=f'{root}/runs/train/regression/seed0', lr=0.004,
               val_evaluator=[dict(ann_file=f'{root}/data/stickman/annotations/val.json')])
    return cfg, root, root / 'code'


def test_training_key_follows_data_code_and_config_not_the_checkout_location(tmp_path):
    cfg, work, code = _checkout(tmp_path / 'a')
    key = training_key(cfg, work, code)
    moved_cfg, moved_work, moved_code = _checkout(tmp_path / 'b')  # same inputs, elsewhere
    assert training_key(moved_cfg, moved_work, moved_code) == key

    (code / 'bench/models/__pycache__').mkdir()
    (code / 'bench/models/__pycache__/m.cpython-311.pyc').write_bytes(b'\0')
    assert training_key(cfg, work, code) == key  # byte code is not an input

    assert training_key({**cfg, 'lr': 0.001}, work, code) != key
    (code / 'bench/models/m.py').write_text('y = 3\n')  # e.g. a fixed loss
    changed_code = training_key(cfg, work, code)
    assert changed_code != key
    (work / 'data/manifest.json').write_text('{"sha256": "b"}')  # regenerated data
    assert training_key(cfg, work, code) not in (key, changed_code)


def test_key_covers_a_dep_added_to_dvc_yaml(tmp_path):
    cfg, work, code = _checkout(tmp_path)
    key = training_key(cfg, work, code)
    (code / 'bench/extra.py').write_text('z = 0\n')
    dvc = yaml.safe_load((code / 'dvc.yaml').read_text())
    dvc['stages']['train']['deps'].append('bench/extra.py')
    (code / 'dvc.yaml').write_text(yaml.safe_dump(dvc))
    assert training_key(cfg, work, code) != key


def test_train_deps_of_the_project_are_hashed_from_existing_files():
    deps = yaml.safe_load((ROOT / 'dvc.yaml').read_text())['stages']['train']['deps']
    assert 'data/manifest.json' in deps and 'bench/models' in deps
    # data/ is hashed under the work folder; runs/tuned/<m>.json (the tuned rate) reaches the
    # key through the resolved config
    assert any(d.startswith('runs/tuned/') for d in deps)
    assert all((ROOT / d).exists() for d in deps if not d.startswith(('data/', 'runs/')))
