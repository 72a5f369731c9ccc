"""Launchers (torchrun, srun), CUDA determinism settings and per-epoch augmentation streams
with dataloader workers."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import launch
from bench.errors import RunError
from bench.runs import RunPaths
from conftest import write_params


def test_determinism_sets_cublas_workspace(monkeypatch):
    monkeypatch.delenv('CUBLAS_WORKSPACE_CONFIG', raising=False)
    launch.configure_determinism(False)
    assert 'CUBLAS_WORKSPACE_CONFIG' not in os.environ
    launch.configure_determinism(True)
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'
    import torch
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    monkeypatch.setenv('CUBLAS_WORKSPACE_CONFIG', ':16:8')  # the user's own value is kept
    launch.configure_determinism(True)
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':16:8'


def test_relaunch_commands(tmp_path):
    args = ['train', '--method', 'm', '--seed', '0']
    assert launch.relaunch_command('none', 2, args, {}) is None
    cmd = launch.relaunch_command('pytorch', 2, args, {})
    assert cmd[1:4] == ['-m', 'torch.distributed.run', '--standalone']
    assert '--nproc_per_node=2' in cmd and cmd[-5:] == args
    assert launch.relaunch_command('pytorch', 2, args, {'LOCAL_RANK': '0'}) is None
    with pytest.raises(RunError, match='srun'):
        launch.relaunch_command('slurm', 2, args, {'PATH': str(tmp_path)})
    srun = tmp_path / 'srun'
    srun.write_text('#!/bin/sh\n')
    srun.chmod(0o755)
    cmd = launch.relaunch_command('slurm', 2, args, {'PATH': str(tmp_path)})
    assert cmd[:3] == [str(srun), '--ntasks=2', '--export=ALL,POSEBENCH_SLURM_STEP=1']
    assert cmd[-5:] == args
    assert launch.relaunch_command('slurm', 2, args, {'POSEBENCH_SLURM_STEP': '1'}) is None


def test_slurm_environment_translation(tmp_path):
    from bench.engine.dist import slurm_to_torch_env
    env = slurm_to_torch_env({'SLURM_PROCID': '1', 'SLURM_NTASKS': '2', 'SLURM_LOCALID': '1',
                              'MASTER_ADDR': '10.0.0.1'})
    assert env == dict(RANK='1', WORLD_SIZE='2', LOCAL_RANK='1', MASTER_ADDR='10.0.0.1',
                       MASTER_PORT='29500')
    with pytest.raises(RunError, match='SLURM_PROCID'):
        slurm_to_torch_env({})
    with pytest.raises(RunError, match='MASTER_ADDR'):
        slurm_to_torch_env({'SLURM_PROCID': '0', 'SLURM_NTASKS': '1', 'PATH': str(tmp_path)})


def _first_batches(work: Path, draws: list[tuple[int, int]]) -> list[np.ndarray]:
    """For each (epoch, seed) of ``draws`` (0-based epoch): per-channel pixel sums (B, 3) of
    the augmented input crops of that epoch's first training batch, drawn by 2 dataloader
    workers exactly as the Runner and EpochSeedHook set them up (same images, unshuffled: only
    the augmentation differs). One process; a fresh Runner per draw."""
    code = f'''
import json, sys
import numpy as np
import bench
from bench.config import build_config
from bench.engine.hooks import EpochSeedHook
from bench.params import load_params
from mmengine.runner import Runner
out = []
for i, (epoch, seed) in enumerate({draws!r}):
    cfg = build_config(load_params(), 'regression_dark', seed=seed, work_dir=f'{work}/w{{i}}')
    cfg.train_dataloader.sampler = dict(type='DefaultSampler', shuffle=False)
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    class R: pass
    r = R(); r.epoch = epoch; r.rank = 0; r.train_dataloader = runner.train_dataloader
    EpochSeedHook(seed=seed).before_train_epoch(r)
    batch = next(iter(runner.train_dataloader))
    # through the data preprocessor: the batched path augments there (main-process RNG)
    inputs = runner.model.data_preprocessor(batch, True)['inputs']
    out.append([x.double().sum(dim=(1, 2)).tolist() for x in inputs])
print(json.dumps(out))
'''
    env = {**os.environ, 'POSEBENCH_WORKDIR': str(work)}
    proc = subprocess.run([sys.executable, '-c', code], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [np.asarray(b) for b in json.loads(proc.stdout.strip().splitlines()[-1])]


@pytest.mark.slow
@pytest.mark.parametrize('data_path', ['mmpose', 'batched'])
def test_workers_draw_a_new_augmentation_stream_each_epoch(tiny_work, data_path):
    """With train.workers: 2, epoch 1's augmentations differ from epoch 2's (MMEngine's
    default worker seeding would replay them), and the same seed reproduces each epoch; on
    both data paths (MMPose's transforms draw in the workers, the batched path in the main
    process, from the RNG EpochSeedHook seeds)."""
    write_params(tiny_work, train={'workers': 2, 'data_path': data_path})
    e0, e1, again, other_seed = _first_batches(tiny_work, [(0, 0), (1, 0), (1, 0), (1, 1)])
    assert e0.shape == e1.shape and not np.allclose(e0, e1)
    np.testing.assert_array_equal(again, e1)
    assert not np.allclose(other_seed, e1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_slurm_on_cpu(tiny_work):
    """`train.launcher: slurm`: two srun tasks, simulated by their SLURM environment, train one
    run with gloo; rank 0 alone writes the run folder."""
    write_params(tiny_work, train={'epochs': 1, 'launcher': 'slurm', 'gpus': 2})
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, 'POSEBENCH_WORKDIR': str(tiny_work), 'SLURM_PROCID': str(rank),
               'SLURM_NTASKS': '2', 'SLURM_LOCALID': str(rank), 'SLURM_NODELIST': 'localhost',
               'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': port,
               launch.SLURM_STEP: '1', 'PYTHONUNBUFFERED': '1'}
        procs.append(subprocess.Popen(
            [sys.executable, '-m', 'bench', 'train', '--method', 'regression_dark', '--seed',
             '0'], cwd=tiny_work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    run = RunPaths('regression_dark', 0, tiny_work / 'runs').train
    log = '\n'.join(p.read_text() for p in run.rglob('*.log'))
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'CPUDistributedDataParallel' in log
    assert json.loads((run / 'status.json').read_text())['status'] == 'ok'


def test_gpu_check_without_cuda_says_so_and_exits_0(tmp_path):
    import torch
    if torch.cuda.is_available():  # pragma: no cover -- CI and this project's machines have none
        pytest.skip('a CUDA device is visible: gpu-check would run its trainings')
    proc = subprocess.run([sys.executable, '-m', 'bench', 'gpu-check', '--out', str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('gpu-check: no CUDA device visible')
    assert not (tmp_path / 'gpu_check.json').exists()
