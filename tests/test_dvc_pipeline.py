"""The real pipeline, end to end, on a tiny configuration: ``dvc repro`` in a fresh git repo
runs data -> train -> evaluate -> report (one train and one evaluate stage per method: the
session's shared tiny study, conftest ``tiny_study``); in a copy of that checkout a second
``dvc repro`` does nothing; editing one method invalidates only that method's stages;
a new seed re-runs the train stages, which train only the new seed; a ``dvc repro`` killed
mid-training resumes the killed seed from its checkpoint and skips the finished ones."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from bench.params import ROOT
from bench.runs import RunPaths
from conftest import copy_repo, dvc_env, dvc_repo, git, run_dvc, stale_stages

pytestmark = pytest.mark.slow


def _state(run: RunPaths) -> tuple:
    """What a finished training leaves: its weights' mtime and its status."""
    return ((run.train / 'final.pth').stat().st_mtime_ns,
            (run.train / 'status.json').read_bytes())


def test_dvc_repro_end_to_end(tiny_study, tmp_path):
    out = (tiny_study.parent / 'repro.log').read_text()  # the study's one `dvc repro`
    for stage in ('data', 'floor', 'tune@regression_dark', 'tune@cls_ohem',
                  'train@regression_dark', 'train@cls_ohem',
                  'evaluate@regression_dark', 'evaluate@cls_ohem', 'report'):
        assert f"Running stage '{stage}'" in out, stage
    report = (tiny_study / 'reports' / 'README.md').read_text()
    assert 'cls_ohem' in report and 'regression' in report
    floor = (tiny_study / 'reports' / 'codec_floor.csv').read_text()
    assert 'regression_dark' in floor and 'cls_ohem' in floor
    assert (tiny_study / 'reports' / 'figures' / 'heatmaps.png').stat().st_size > 10_000

    # the checkout copied elsewhere (new paths and inodes): still up to date
    repo = copy_repo(tiny_study, tmp_path / 'repo')
    assert 'Data and pipelines are up to date' in run_dvc(repo, 'repro')
    metrics = run_dvc(repo, 'metrics', 'show')
    assert 'runs/metrics/cls_ohem.json' in metrics and 'reports/metrics.json' in metrics
    assert 'seed0.PCK@0.1' in metrics
    plots = json.loads(run_dvc(repo, 'plots', 'show', '--json'))
    assert not plots.get('errors'), plots['errors']  # DVCLive's summary is .dvcignore'd
    assert 'runs/live/cls_ohem/seed0/plots/metrics/val/PCK.tsv' in plots['data']

    # one method's loss: only that method's (learning rate and) training (then its
    # evaluation, downstream), the report and the floor (seconds) are stale
    doc = yaml.safe_load((repo / 'params.yaml').read_text())
    doc['methods']['cls_ohem']['loss']['neg_pos_ratio'] = 2
    (repo / 'params.yaml').write_text(yaml.safe_dump(doc, sort_keys=False))
    assert stale_stages(repo) == {'tune@cls_ohem', 'train@cls_ohem', 'report', 'floor'}

    # a new seed: every train stage re-runs, but trains only what changed
    doc['seeds'] = [0, 1]
    (repo / 'params.yaml').write_text(yaml.safe_dump(doc, sort_keys=False))
    assert stale_stages(repo) == {'tune@cls_ohem', 'train@regression_dark', 'train@cls_ohem',
                            'evaluate@regression_dark', 'evaluate@cls_ohem', 'report', 'floor'}
    runs = repo / 'runs'
    kept = _state(RunPaths('regression_dark', 0, runs))
    # killed once cls_ohem's new seed has its first epoch's checkpoint (the last training)
    victim = RunPaths('cls_ohem', 1, runs).train / 'last_checkpoint'
    proc = subprocess.Popen(['dvc', 'repro'], cwd=repo, env=dvc_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 900
    while not (victim.exists() and victim.read_text().strip()):
        assert proc.poll() is None, 'dvc repro ended before it could be killed'
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (victim.parent / 'status.json').exists()
    first = _state(RunPaths('cls_ohem', 0, runs))

    out = run_dvc(repo, 'repro')
    assert "Running stage 'train@cls_ohem'" in out and 'cls_ohem/seed0: already trained' in out
    assert _state(RunPaths('cls_ohem', 0, runs)) == first  # finished before the kill: kept
    status = json.loads((victim.parent / 'status.json').read_text())
    assert status['status'] == 'ok' and status['resumed'] is True  # from epoch 1
    assert RunPaths('cls_ohem', 0, runs).stale.is_dir()  # the old loss's run, moved aside
    # regression_dark's seed 0 was never retrained: only its seed 1 was
    assert _state(RunPaths('regression_dark', 0, runs)) == kept
    assert json.loads((RunPaths('regression_dark', 1, runs).train / 'status.json')
                      .read_text())['status'] == 'ok'
    table = (repo / 'reports' / 'runs.csv').read_text()
    assert len(table.strip().splitlines()) == 1 + 4, table  # 2 methods x 2 seeds
    assert set(json.loads((runs / 'metrics' / 'cls_ohem.json').read_text())) == \
        {'seed0', 'seed1'}


REALDATA = ROOT / 'tests' / 'data' / 'realdata'


@pytest.mark.slow
def test_real_photographs_run_through_every_stage_as_profiles(tmp_path):
    """MMPose's own COCO (17 keypoints, photographs of four sizes, the batched data path) and
    CrowdPose (14 keypoints, no ``area`` field: CocoMetric with ``use_area=False`` and the
    crowd IoU, from the metainfo) test data, each as a profile through ``dvc repro``: every
    stage completes, the metrics are finite and the report's figures are drawn. Accuracy is
    not the point (a dozen instances, one epoch).

    Profiles (``profiles/<name>/``: an override of params.yaml and the generated pipeline):
    ``dvc repro profiles/<name>/dvc.yaml`` writes the profile's data, runs and report in its
    folder, reads the override (its seed, its epochs), never touches the top-level params.yaml
    or the default study's folders, and leaves ``dvc status`` clean for that pipeline."""
    repo = dvc_repo(tmp_path / 'repo', train={'epochs': 2})
    params_before = (repo / 'params.yaml').read_bytes()
    ann = 'annotations/person_keypoints.json'
    datasets = {'coco': 'configs/_base_/datasets/coco.py',
                'crowdpose': 'configs/_base_/datasets/crowdpose.py'}
    for name, metainfo in datasets.items():
        prof = repo / 'profiles' / name
        prof.mkdir(parents=True)
        doc = {'extends': '../../params.yaml', 'profile': name,
               'active_methods': ['regression_dark', 'cls_ohem'], 'seeds': [3],
               'train': {'epochs': 1},
               'data': {'source': 'coco', 'metainfo': metainfo,
                        'coco': {'root': str(REALDATA / name), 'img_prefix': 'images/',
                                 'ann_files': {s: ann for s in ('train', 'val', 'test')}}}}
        (prof / 'params.yaml').write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = subprocess.run([sys.executable, '-m', 'bench', 'pipeline', name], cwd=repo,
                              env=dvc_env(), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    git(repo, 'add', '-A')
    git(repo, 'commit', '-qm', 'real-data profiles')
    for name in datasets:
        prof = repo / 'profiles' / name
        out = run_dvc(repo, 'repro', f'profiles/{name}/dvc.yaml')
        assert "Running stage 'profiles/" + name + "/dvc.yaml:train@cls_ohem'" in out
        for method in ('regression_dark', 'cls_ohem'):
            m = json.loads((prof / 'runs' / 'metrics' / f'{method}.json').read_text())['seed3']
            assert m['status'] == 'ok', (name, method, m)
            for key in ('PCK@0.1', 'AUC', 'EPE', 'AP'):
                assert np.isfinite(m[key]), (name, method, key, m[key])
            K = 17 if name == 'coco' else 14
            assert len(m['per_joint_pck']) == K
        reports = prof / 'reports'
        assert 'Baseline' in (reports / 'README.md').read_text()
        for fig in ('heatmaps.png', 'learning_curves.png', 'calibration.png'):
            assert (reports / 'figures' / fig).stat().st_size > 10_000, (name, fig)
        # the override's one epoch, not the top level's two
        live = RunPaths('regression_dark', 3, prof / 'runs').live
        assert (live / 'plots' / 'metrics' / 'val' / 'PCK.tsv').read_text().count('\n') == 2
        assert '1 epochs' in (reports / 'README.md').read_text()
        assert 'Data and pipelines are up to date' in run_dvc(repo, 'repro',
                                                           f'profiles/{name}/dvc.yaml')
        assert 'up to date' in run_dvc(repo, 'status', f'profiles/{name}/dvc.yaml')
    # the default study's files and parameters are never touched by a profile
    assert not (repo / 'runs').exists() and not (repo / 'reports').exists()
    assert (repo / 'params.yaml').read_bytes() == params_before
