"""`evaluate` scores a model under the config saved with its training run, never under today's
params.yaml (issue 15, item 6), and writes what the report's confidence figures need."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from bench.config import build_config
from bench.errors import RunError
from bench.params import ROOT, load_params
from bench.runs import RunPaths
from bench.stages.run_config import RUN_CONFIG, load_run_config, save_run_config
from conftest import bench, write_params


def test_saved_config_round_trips_and_follows_a_moved_checkout(tmp_path, monkeypatch):
    old, new = tmp_path / 'old', tmp_path / 'new'
    old.mkdir()
    new.mkdir()
    params = load_params(ROOT / 'params.yaml')
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(old))
    cfg = build_config(params, 'cls_ohem', 0)
    path = save_run_config(cfg, old / 'train')
    assert path.name == RUN_CONFIG and str(old) not in path.read_text()
    assert load_run_config(old / 'train').to_dict() == cfg.to_dict()
    # the same run folder read from another checkout location: paths follow the checkout
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(new))
    moved = load_run_config(old / 'train')
    assert moved.test_dataloader.dataset.data_root == \
        cfg.test_dataloader.dataset.data_root.replace(str(old), str(new))
    assert moved.model.to_dict() == cfg.model.to_dict()


def test_run_without_saved_config_is_a_one_line_error(tmp_path):
    with pytest.raises(RunError) as exc:
        load_run_config(tmp_path / 'train', run='cls_ohem/seed0')
    assert 'cls_ohem/seed0' in str(exc.value) and '\n' not in str(exc.value)
    assert 'train@cls_ohem`' in str(exc.value)


@pytest.mark.slow
def test_params_edit_after_training_does_not_change_the_scores(tiny_study, tmp_path):
    """Trained and evaluated (the shared tiny study, copied), then params.yaml edited in ways
    that would change how the model is scored (input size, heatmap sigma: decoding) without
    retraining: evaluate must give byte-identical metrics."""
    tiny_work = tmp_path
    for item in ('data', 'runs'):
        shutil.copytree(tiny_study / item, tiny_work / item, symlinks=True)
    run = {m: RunPaths(m, 0, tiny_work / 'runs') for m in ('regression_dark', 'cls_ohem')}
    before = {m: (r.eval / 'metrics.json').read_bytes() for m, r in run.items()}

    write_params(tiny_work,
                 model={'input_size': [128, 128], 'heatmap_size': [32, 32], 'sigma': 2.5})
    for method, r in run.items():
        (r.eval / 'metrics.json').unlink()  # written again, not kept
        bench(tiny_work, 'evaluate', '--method', method, '--seed', '0')
        assert (r.eval / 'metrics.json').read_bytes() == before[method], method

    # what the report reads: both splits' dumps, and the per-pixel calibration of the
    # classification head only
    cls = json.loads(before['cls_ohem'])
    reg = json.loads(before['regression_dark'])
    assert 0 <= cls['pixel_ECE'] < 1 and 'pixel_ECE' not in reg
    for m, r in run.items():
        metrics = json.loads(before[m])
        assert 0 <= metrics['mean_OKS'] <= 1
        with np.load(r.eval / 'keypoints_val.npz') as val, \
                np.load(r.eval / 'keypoints.npz') as test:
            assert val['dists'].shape == (8, 17) and test['dists'].shape == (12, 17)
            assert np.isfinite(test['heatmap_px']).all() and (test['areas'] > 0).all()
    with np.load(run['cls_ohem'].eval / 'pixel_calibration.npz') as z:
        assert z['count'].sum() == 12 * 18 * 16 * 16
    assert not (run['regression_dark'].eval / 'pixel_calibration.npz').exists()
    assert os.path.getsize(run['cls_ohem'].train / RUN_CONFIG) > 1000
    # the classification head's second score (P_j) and the AP it gives, beside its own
    assert 0 <= cls['AP_P'] <= 1 and 'AP_P' not in reg
    with np.load(run['cls_ohem'].eval / 'keypoints.npz') as test:
        assert test['probs'].shape == test['scores'].shape
        assert (test['probs'] <= test['scores'] + 1e-6).all()  # G_j >= P_j at any pixel
    with np.load(run['regression_dark'].eval / 'keypoints.npz') as test:
        assert 'probs' not in test.files

    # the data changes under a trained run: one line naming the run, never MMPose's assertion
    manifest = tiny_work / 'data' / 'manifest.json'
    manifest.write_text(manifest.read_text().replace('"stickman"', '"stickman-edited"', 1))
    proc = bench(tiny_work, 'evaluate', '--method', 'cls_ohem', '--seed', '0', check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()  # the progress lines, then the error
    assert err[-1].startswith('error: ') and 'Traceback' not in proc.stderr, err
    assert 'cls_ohem/seed0' in err[-1] and 'other data' in err[-1], err
    ann = tiny_work / 'data' / 'stickman' / 'annotations' / 'test.json'
    ann.unlink()
    proc = bench(tiny_work, 'evaluate', '--method', 'regression_dark', '--seed', '0', check=False)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and err[-1].startswith('error: '), err
    assert 'regression_dark/seed0' in err[-1] and 'are gone' in err[-1], err
