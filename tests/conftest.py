"""Shared fixtures: a tiny but real study (generated data, 2-epoch trainings) in a temp folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.params import ROOT, merge

TINY = {
    'data': {'workers': 1, 'stickman': {'image_size': [96, 96], 'train': 48, 'val': 8,
                                        'test': 12}},
    'model': {'backbone': {'stem_channels': 8, 'base_channels': 8},
              'deconv_channels': [8, 8]},
    'train': {'epochs': 2, 'batch_size': 16, 'warmup_iters': 2, 'milestones': [],
              'workers': 0, 'val_interval': 1, 'parallel_runs': 1},
    'active_methods': ['regression_dark', 'cls_ohem'],
    'seeds': [0],
    'eval': {'snapshot_epochs': [1], 'snapshot_images': 2},
}


def write_params(workdir: Path, **overrides) -> Path:
    doc = merge(merge(yaml.safe_load((ROOT / 'params.yaml').read_text()), TINY), overrides)
    path = workdir / 'params.yaml'
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def bench(workdir: Path, *args, check=True, timeout=600, **popen) -> subprocess.CompletedProcess:
    """Run ``python -m bench ARGS`` as a real process in ``workdir``."""
    env = {**os.environ, 'POSEBENCH_WORKDIR': str(workdir), 'PYTHONUNBUFFERED': '1'}
    proc = subprocess.run([sys.executable, '-m', 'bench', *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'bench {" ".join(args)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> Path:
    """A work folder with tiny params and its generated dataset (made once per session)."""
    work = tmp_path_factory.mktemp('tiny_data')
    write_params(work)
    bench(work, 'data')
    return work


@pytest.fixture
def tiny_work(tiny_data, tmp_path) -> Path:
    """A fresh work folder sharing the session's generated data."""
    shutil.copytree(tiny_data / 'data', tmp_path / 'data')
    shutil.copy(tiny_data / 'params.yaml', tmp_path / 'params.yaml')
    return tmp_path


@pytest.fixture(scope='session', autouse=True)
def compiled_decoder():
    """Compile the exact decoder's numba kernels once per session into the checkout's
    ``bench/codecs/__pycache__`` (numba's cache), for the input types the stages pass: every
    stage process of the tests then loads them instead of compiling (2-5 s a process), the
    end-to-end repos too (:func:`test_dvc_pipeline.dvc_repo` copies the cache with the code)."""
    import numpy as np

    from bench.codecs import PixelClassLabel
    from bench.codecs.pixel_class_label import recover_gaussians
    codec = PixelClassLabel((32, 32), (8, 8), 1.0)
    probs = codec.encode(np.full((1, 2, 2), 16.0))['heatmaps'][None]
    for dtype in (np.float32, np.float64):
        codec.batch_decode(probs.astype(dtype))
        recover_gaussians(probs.astype(dtype))
