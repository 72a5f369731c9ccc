"""End-to-end: real trainings through MMEngine's Runner on a tiny generated dataset.

Covers the acceptance lists of the pipeline and reliability issues: train/evaluate outputs,
determinism (byte-identical metrics), resume after a real SIGKILL, the divergence guard, and a
two-process ``torchrun`` training on the CPU.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import bench, write_params

pytestmark = pytest.mark.slow


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def test_train_and_evaluate_both_formulations(tiny_work):
    for method in ('regression_dark', 'cls_ohem'):
        for stage in ('train', 'evaluate'):
            proc = bench(tiny_work, stage, '--method', method, '--seed', '0')
            log = proc.stdout + proc.stderr
            # the stack's per-run noise is filtered (bench/_quiet.py), its real log is not
            assert 'The prefix is not set' not in log and '"FileClient"' not in log
            assert 'mmengine - INFO' in log
        run = tiny_work / 'runs' / method / 'seed0'
        status = json.loads((run / 'train' / 'status.json').read_text())
        assert status['status'] == 'ok' and status['epochs'] == 2
        assert (run / 'train' / 'final.pth').is_file()
        metrics = json.loads((run / 'metrics.json').read_text())
        for key in ('PCK@0.05', 'PCK@0.1', 'PCK@0.2', 'AUC', 'EPE', 'AP', 'AP50', 'AP75'):
            assert np.isfinite(metrics[key]), key
        assert 0 <= metrics['PCK@0.1'] <= 1
        assert len(metrics['per_joint_pck']) == 17 and 'left_wrist' in metrics['per_joint_pck']
        dump = np.load(run / 'eval' / 'keypoints.npz')
        assert dump['scores'].shape == dump['dists'].shape == (12, 17)
        # learning curves through DVCLive, one row per epoch
        pck = (run / 'live' / 'plots' / 'metrics' / 'val' / 'PCK.tsv').read_text().splitlines()
        assert len(pck) == 3 and pck[0].split('\t')[-1] == 'PCK'
        snaps = sorted(p.name for p in (run / 'snapshots').glob('*.npz'))
        assert snaps == ['epoch_001.npz', 'epoch_002.npz']
        heat = np.load(run / 'snapshots' / 'epoch_002.npz')['heatmaps']
        channels = 18 if method.startswith('cls') else 17
        assert heat.shape == (2, channels, 16, 16)
        if channels == 18:  # honest probabilities
            np.testing.assert_allclose(heat.sum(1), 1, atol=1e-4)
    # the loss mechanisms, measured in every training: one row per epoch of the kept background
    # fraction, both loss parts and their ratio
    cls_curves = tiny_work / 'runs/cls_ohem/seed0/live/plots/metrics/train'
    curves = {}
    for name in ('bg_kept', 'bg_part', 'fg_part', 'part_ratio'):
        rows = (cls_curves / f'{name}.tsv').read_text().splitlines()
        assert len(rows) == 3, name  # header + 2 epochs
        curves[name] = [float(r.split('\t')[-1]) for r in rows[1:]]
    assert all(0 < k <= 1 for k in curves['bg_kept'])
    assert all(v > 0 for v in curves['bg_part'] + curves['fg_part'])
    np.testing.assert_allclose(curves['part_ratio'],
                               np.divide(curves['bg_part'], curves['fg_part']), rtol=1e-6)


def test_same_seed_identical_and_resume_after_kill(tiny_work, tmp_path_factory):
    """An uninterrupted run, the same run again, and one killed mid-training then resumed all
    end with byte-identical metrics.json."""
    write_params(tiny_work, train={'epochs': 3})
    method = 'cls_ohem'
    bench(tiny_work, 'train', '--method', method, '--seed', '0')
    bench(tiny_work, 'evaluate', '--method', method, '--seed', '0')
    reference = (tiny_work / 'runs' / method / 'seed0' / 'metrics.json').read_bytes()

    again = tmp_path_factory.mktemp('again')
    os.symlink(tiny_work / 'data', again / 'data')
    (again / 'params.yaml').write_bytes((tiny_work / 'params.yaml').read_bytes())
    bench(again, 'train', '--method', method, '--seed', '0')
    bench(again, 'evaluate', '--method', method, '--seed', '0')
    assert (again / 'runs' / method / 'seed0' / 'metrics.json').read_bytes() == reference

    # the finished run started again with the same inputs (as `dvc repro -f` does): it
    # resumes from its last epoch, trains nothing, keeps its
    # metrics and its recorded training time and memory
    status_file = again / 'runs' / method / 'seed0' / 'train' / 'status.json'
    first = json.loads(status_file.read_text())
    bench(again, 'train', '--method', method, '--seed', '0')
    rerun = json.loads(status_file.read_text())
    assert rerun['resumed'] is True
    assert (rerun['wall_s'], rerun['peak_rss_mb']) == (first['wall_s'], first['peak_rss_mb'])
    bench(again, 'evaluate', '--method', method, '--seed', '0')
    assert (again / 'runs' / method / 'seed0' / 'metrics.json').read_bytes() == reference

    killed = tmp_path_factory.mktemp('killed')
    os.symlink(tiny_work / 'data', killed / 'data')
    (killed / 'params.yaml').write_bytes((tiny_work / 'params.yaml').read_bytes())
    work = killed / 'runs' / method / 'seed0' / 'train'
    env = {**os.environ, 'POSEBENCH_WORKDIR': str(killed)}
    proc = subprocess.Popen([sys.executable, '-m', 'bench', 'train', '--method', method,
                             '--seed', '0'], cwd=killed, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    pointer = work / 'last_checkpoint'  # written by MMEngine once epoch_1.pth is complete
    while not (pointer.exists() and pointer.read_text().strip()):  # killed during epoch 2
        assert proc.poll() is None, 'training ended before it could be killed'
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / 'status.json').exists()
    out = bench(killed, 'train', '--method', method, '--seed', '0')
    status = json.loads((work / 'status.json').read_text())
    assert status['resumed'] is True, out.stdout[-2000:]
    bench(killed, 'evaluate', '--method', method, '--seed', '0')
    assert (killed / 'runs' / method / 'seed0' / 'metrics.json').read_bytes() == reference


def test_divergence_guard_stops_run_and_spares_siblings(tiny_work):
    write_params(tiny_work, methods={'cls_ohem': {
        'config': 'classification.py',
        'loss': {'type': 'PixelCrossEntropyLoss', 'neg_pos_ratio': 3},
        # an absurd SGD step (Adam's normalised steps stay finite): NaN within 2 iterations
        'cfg_options': {'optim_wrapper.optimizer': {'type': 'SGD', 'lr': 1.0e+30}}}})
    bench(tiny_work, 'train', '--method', 'regression_dark', '--seed', '0')
    sibling = tiny_work / 'runs' / 'regression_dark' / 'seed0'
    before = _files(sibling)

    proc = bench(tiny_work, 'train', '--method', 'cls_ohem', '--seed', '0')
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1, proc.stdout[-3000:]
    msg = lines[0]
    assert 'cls_ohem/seed0' in msg and 'epoch' in msg and 'iteration' in msg, msg
    status = json.loads((tiny_work / 'runs/cls_ohem/seed0/train/status.json').read_text())
    assert status['status'] == 'diverged' and status['message'] in msg
    assert not (tiny_work / 'runs/cls_ohem/seed0/train/final.pth').exists()
    bench(tiny_work, 'evaluate', '--method', 'cls_ohem', '--seed', '0')
    result = json.loads((tiny_work / 'runs/cls_ohem/seed0/metrics.json').read_text())
    assert result['status'] == 'diverged' and 'PCK@0.1' not in result
    assert _files(sibling) == before


def test_two_process_torchrun_on_cpu(tiny_work):
    """`train.launcher: pytorch` makes the stage command itself start torchrun with
    `train.gpus` processes (gloo on a CPU-only machine)."""
    write_params(tiny_work, train={'epochs': 1, 'launcher': 'pytorch', 'gpus': 2})
    bench(tiny_work, 'train', '--method', 'regression_dark', '--seed', '0')
    log = '\n'.join(p.read_text() for p in (tiny_work / 'runs/regression_dark/seed0/train')
                    .rglob('*.log'))
    assert 'Distributed training: True' in log, log[:2000]
    assert 'GPU number: 2' in log  # MMEngine's name for the world size
    assert 'CPUDistributedDataParallel' in log
    status = json.loads((tiny_work / 'runs/regression_dark/seed0/train/status.json').read_text())
    assert status['status'] == 'ok'
