"""The real pipeline, end to end, on a tiny configuration: ``dvc repro`` in a fresh git repo
runs data -> train -> evaluate -> report; a second ``dvc repro`` does nothing; editing one
method invalidates only that method's runs, and a new seed only the new seed's stages."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.params import ROOT
from conftest import write_params

pytestmark = pytest.mark.slow


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, 'PATH': f'{Path(sys.executable).parent}:{os.environ["PATH"]}',
           'DVC_NO_ANALYTICS': '1'}
    env.pop('POSEBENCH_WORKDIR', None)
    proc = subprocess.run(['dvc', *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f'dvc {" ".join(args)}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}'
    return proc.stdout + proc.stderr


def _git(repo: Path, *args: str) -> None:
    subprocess.run(['git', '-c', 'user.name=posebench', '-c', 'user.email=ci@posebench',
                    *args], cwd=repo, check=True, capture_output=True)


def test_dvc_repro_end_to_end(tmp_path):
    repo = tmp_path / 'repo'
    repo.mkdir()
    for item in ('dvc.yaml', 'mmpose_configs', 'bench'):
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copy(src, repo / item)
    write_params(repo, train={'epochs': 1})
    _git(repo, 'init', '-q')
    _dvc(repo, 'init', '-q')
    _git(repo, 'add', '-A')
    _git(repo, 'commit', '-qm', 'tiny study')

    out = _dvc(repo, 'repro')
    for stage in ('data', 'floor', 'train@regression_dark-0', 'train@cls_ohem-0', 'evaluate@regression_dark-0',
                  'evaluate@cls_ohem-0', 'report'):
        assert f"Running stage '{stage}'" in out, stage
    report = (repo / 'reports' / 'README.md').read_text()
    assert 'cls_ohem' in report and 'regression' in report
    floor = (repo / 'reports' / 'codec_floor.csv').read_text()
    assert 'regression_dark' in floor and 'cls_ohem' in floor
    assert (repo / 'reports' / 'figures' / 'heatmaps.png').stat().st_size > 10_000

    assert 'Data and pipelines are up to date' in _dvc(repo, 'repro')
    metrics = _dvc(repo, 'metrics', 'show')
    assert 'runs/cls_ohem/seed0/metrics.json' in metrics and 'reports/metrics.json' in metrics

    doc = yaml.safe_load((repo / 'params.yaml').read_text())
    doc['methods']['cls_ohem']['loss']['neg_pos_ratio'] = 2
    doc['seeds'] = [0, 1]
    (repo / 'params.yaml').write_text(yaml.safe_dump(doc, sort_keys=False))
    stale = {line.rstrip(':') for line in _dvc(repo, 'status').splitlines()
             if line and not line[0].isspace() and line.endswith(':')}
    assert stale == {'train@cls_ohem-0', 'train@cls_ohem-1', 'train@regression_dark-1',
                     'evaluate@cls_ohem-1', 'evaluate@regression_dark-1', 'report',
                     'floor'}, stale  # the floor is recomputed (seconds) on any method edit
