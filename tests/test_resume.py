"""Which work dirs ``train`` resumes from: only a complete checkpoint of the same config."""
from __future__ import annotations

import pytest

from bench.stages.train import _prepare_work_dir


def _work(tmp_path, pointer, key='k1', checkpoint=b'weights'):
    work = tmp_path / 'train'
    work.mkdir()
    (work / 'fingerprint.txt').write_text('k1\n')
    if checkpoint is not None:
        (work / 'epoch_1.pth').write_bytes(checkpoint)
    if pointer is not None:
        (work / 'last_checkpoint').write_text(pointer.format(work=work))
    return work


def test_resumes_from_a_complete_checkpoint_of_the_same_config(tmp_path):
    work = _work(tmp_path, '{work}/epoch_1.pth')
    assert _prepare_work_dir(tmp_path, 'k1') is True
    assert (work / 'epoch_1.pth').exists() and not (tmp_path / 'train.stale').exists()


@pytest.mark.parametrize('pointer, checkpoint', [
    (None, b'weights'),                # killed while saving epoch 1: no pointer yet
    ('', b'weights'),                  # killed while writing the pointer
    ('{work}/epoch_1.pth', None),      # pointer to a checkpoint that is gone
    ('{work}/epoch_1.pth', b''),       # pointer to an empty file
])
def test_incomplete_work_dir_is_moved_aside(tmp_path, pointer, checkpoint):
    _work(tmp_path, pointer, checkpoint=checkpoint)
    assert _prepare_work_dir(tmp_path, 'k1') is False
    assert (tmp_path / 'train.stale' / 'fingerprint.txt').exists()
    assert (tmp_path / 'train' / 'fingerprint.txt').read_text() == 'k1\n'
    assert not (tmp_path / 'train' / 'last_checkpoint').exists()


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    _work(tmp_path, '{work}/epoch_1.pth')
    assert _prepare_work_dir(tmp_path, 'k2') is False
    assert (tmp_path / 'train.stale' / 'epoch_1.pth').exists()
