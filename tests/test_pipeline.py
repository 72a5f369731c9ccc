"""End-to-end: real trainings through MMEngine's Runner on a tiny generated dataset.

Covers the acceptance lists of the pipeline and reliability issues: train/evaluate outputs,
determinism (byte-identical metrics), resume after a real SIGKILL, the divergence guard, and a
two-process ``torchrun`` training on the CPU.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.runs import RunPaths
from conftest import bench, stage_output, write_params

pytestmark = pytest.mark.slow


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def _run(work: Path, method: str, seed: int = 0) -> RunPaths:
    return RunPaths(method, seed, work / 'runs')


def test_train_and_evaluate_both_formulations(tiny_study):
    """The train and evaluate stages of the shared tiny study (conftest ``tiny_study``: run by
    ``dvc repro`` as the pipeline runs them, every seed of a method in one process)."""
    out = (tiny_study.parent / 'repro.log').read_text()
    for method in ('regression_dark', 'cls_ohem'):
        for stage in ('train', 'evaluate'):
            log = stage_output(out, f'{stage}@{method}')
            # the stack's per-run noise is filtered (bench/quiet.py); its real log goes to
            # the run's work dir, not the console (bench/console.py)
            assert 'The prefix is not set' not in log and '"FileClient"' not in log
            assert 'mmengine - INFO' not in log and '\r' not in log
            assert f'{stage} {method}: 1/1 runs done' in log
            kind = 'train' if stage == 'train' else 'eval'
            logs = list((tiny_study / 'runs' / kind / method / 'seed0').rglob('*/*.log'))
            assert logs and 'mmengine - INFO' in logs[-1].read_text()
        run = _run(tiny_study, method)
        status = json.loads((run.train / 'status.json').read_text())
        assert status['status'] == 'ok' and status['epochs'] == 2
        assert (run.train / 'final.pth').is_file()
        # what the report reads is in the eval folder: the training's status included
        assert (run.eval / 'train_status.json').read_text() == \
            (run.train / 'status.json').read_text()
        metrics = json.loads((run.eval / 'metrics.json').read_text())
        assert json.loads(run.metrics.read_text()) == {'seed0': metrics}  # DVC's metrics file
        for key in ('PCK@0.05', 'PCK@0.1', 'PCK@0.2', 'AUC', 'EPE', 'AP', 'AP50', 'AP75'):
            assert np.isfinite(metrics[key]), key
        assert 0 <= metrics['PCK@0.1'] <= 1
        assert len(metrics['per_joint_pck']) == 17 and 'left_wrist' in metrics['per_joint_pck']
        dump = np.load(run.eval / 'keypoints.npz')
        assert dump['scores'].shape == dump['dists'].shape == (12, 17)
        # learning curves through DVCLive, one row per epoch
        pck = (run.live / 'plots' / 'metrics' / 'val' / 'PCK.tsv').read_text().splitlines()
        assert len(pck) == 3 and pck[0].split('\t')[-1] == 'PCK'
        snaps = sorted(p.name for p in run.snapshots.glob('*.npz'))
        assert snaps == ['epoch_001.npz', 'epoch_002.npz']
        heat = np.load(run.snapshots / 'epoch_002.npz')['heatmaps']
        channels = 18 if method.startswith('cls') else 17
        assert heat.shape == (2, channels, 16, 16)
        if channels == 18:  # honest probabilities
            np.testing.assert_allclose(heat.sum(1), 1, atol=1e-4)
    # the loss mechanisms, measured in every training: one row per epoch of the kept background
    # fraction, both loss parts and their ratio
    cls_curves = _run(tiny_study, 'cls_ohem').live / 'plots/metrics/train'
    curves = {}
    for name in ('bg_kept', 'bg_part', 'fg_part', 'part_ratio'):
        rows = (cls_curves / f'{name}.tsv').read_text().splitlines()
        assert len(rows) == 3, name  # header + 2 epochs
        curves[name] = [float(r.split('\t')[-1]) for r in rows[1:]]
    assert all(0 < k <= 1 for k in curves['bg_kept'])
    assert all(v > 0 for v in curves['bg_part'] + curves['fg_part'])
    np.testing.assert_allclose(curves['part_ratio'],
                               np.divide(curves['bg_part'], curves['fg_part']), rtol=1e-6)


def test_same_seed_identical_and_resume_after_kill(tiny_work, tiny_study, tmp_path_factory):
    """A seed trained after another seed in one process (as ``train@<method>`` runs them),
    the same seed trained alone (the shared tiny study's: same params and data, another
    folder) and the same seed killed mid-training and resumed end with byte-identical
    metrics.json; a finished seed is skipped without a Runner, a dropped seed is removed."""
    write_params(tiny_work, seeds=[1, 0])
    method = 'cls_ohem'
    bench(tiny_work, 'train', '--method', method)  # seed 1, then seed 0 with a fresh Runner
    bench(tiny_work, 'evaluate', '--method', method)
    run = _run(tiny_work, method)
    reference = (_run(tiny_study, method).eval / 'metrics.json').read_bytes()  # alone
    assert (run.eval / 'metrics.json').read_bytes() == reference
    assert set(json.loads(run.metrics.read_text())) == {'seed0', 'seed1'}
    for seed in (0, 1):  # each Runner logged into its own work dir
        logs = list(_run(tiny_work, method, seed).train.glob('*/vis_data/scalars.json'))
        assert len(logs) == 1, seed

    # the stage started again with the same inputs (as `dvc repro` does when a seed is added
    # or dropped): the finished seed is skipped without building a Runner, nothing of it is
    # written; the dropped seed's folders leave the method's outputs
    weights = run.train / 'final.pth'
    before = (weights.stat().st_mtime_ns, (run.train / 'status.json').read_bytes())
    write_params(tiny_work, seeds=[0])
    out = bench(tiny_work, 'train', '--method', method).stdout
    assert 'cls_ohem/seed0: already trained' in out and 'skipped' in out, out[-2000:]
    assert 'mmengine' not in out, out[-2000:]
    assert (weights.stat().st_mtime_ns, (run.train / 'status.json').read_bytes()) == before
    gone = _run(tiny_work, method, 1)
    assert not gone.train.exists() and not gone.live.exists() and not gone.snapshots.exists()

    killed = tmp_path_factory.mktemp('killed')
    os.symlink(tiny_work / 'data', killed / 'data')
    (killed / 'params.yaml').write_bytes((tiny_work / 'params.yaml').read_bytes())
    work = _run(killed, method).train
    env = {**os.environ, 'POSEBENCH_WORKDIR': str(killed)}
    proc = subprocess.Popen([sys.executable, '-m', 'bench', 'train', '--method', method,
                             '--seed', '0'], cwd=killed, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    pointer = work / 'last_checkpoint'  # written by MMEngine once epoch_1.pth is complete
    while not (pointer.exists() and pointer.read_text().strip()):  # killed in the last epoch
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
    assert (_run(killed, method).eval / 'metrics.json').read_bytes() == reference


def test_divergence_guard_stops_run_and_spares_siblings(tiny_work, tiny_study):
    write_params(tiny_work, seeds=[0, 1], methods={'cls_ohem': {
        'config': 'classification.py',
        'loss': {'type': 'PixelCrossEntropyLoss', 'neg_pos_ratio': 3},
        # an absurd SGD step (Adam's normalised steps stay finite): NaN within 2 iterations
        'cfg_options': {'optim_wrapper.optimizer': {'type': 'SGD', 'lr': 1.0e+30}}}})
    # a finished sibling run in the same runs/: the tiny study's (same data and recipe)
    trained, sibling = _run(tiny_study, 'regression_dark'), _run(tiny_work, 'regression_dark')
    for kind in ('train', 'live', 'snapshots', 'eval'):
        shutil.copytree(getattr(trained, kind), getattr(sibling, kind), symlinks=True)
    before = _files(sibling.train)

    # every seed of the method in one process: a diverged seed does not stop the next one
    proc = bench(tiny_work, 'train', '--method', 'cls_ohem')
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('error:')]
    assert len(lines) == 2, proc.stderr[-3000:]
    assert proc.stderr.count('  log: ') == 2  # each diverged run points to its log
    for seed, msg in enumerate(lines):
        assert f'cls_ohem/seed{seed}' in msg and 'epoch' in msg and 'iteration' in msg, msg
        run = _run(tiny_work, 'cls_ohem', seed)
        status = json.loads((run.train / 'status.json').read_text())
        assert status['status'] == 'diverged' and status['message'] in msg
        assert not (run.train / 'final.pth').exists()
    bench(tiny_work, 'evaluate', '--method', 'cls_ohem')
    table = json.loads(_run(tiny_work, 'cls_ohem').metrics.read_text())
    assert list(table) == ['seed0', 'seed1']
    for seed in (0, 1):
        run = _run(tiny_work, 'cls_ohem', seed)
        result = json.loads((run.eval / 'metrics.json').read_text())
        assert result['status'] == 'diverged' and 'PCK@0.1' not in result
        assert table[f'seed{seed}'] == result
        assert (run.eval / 'train_status.json').read_bytes() == \
            (run.train / 'status.json').read_bytes()
    assert _files(sibling.train) == before


def test_two_process_torchrun_on_cpu(tiny_work):
    """`train.launcher: pytorch` makes the stage command itself start torchrun with
    `train.gpus` processes (gloo on a CPU-only machine)."""
    write_params(tiny_work, train={'epochs': 1, 'launcher': 'pytorch', 'gpus': 2})
    bench(tiny_work, 'train', '--method', 'regression_dark')  # every seed, as DVC runs it
    work = _run(tiny_work, 'regression_dark').train
    log = '\n'.join(p.read_text() for p in work.rglob('*.log'))
    assert 'Distributed training: True' in log, log[:2000]
    assert 'GPU number: 2' in log  # MMEngine's name for the world size
    assert 'CPUDistributedDataParallel' in log
    status = json.loads((work / 'status.json').read_text())
    assert status['status'] == 'ok'


def test_parallel_runs_train_seeds_side_by_side(tiny_work):
    """`train.parallel_runs: 2`: the method's two seeds train in two spawned workers, each
    with its own result; a second run of the stage skips both without starting a worker.
    Each worker starts its own DataLoader worker (`train.workers: 1`, as the study profile's
    2): a daemonic pool worker could not (seen on a GPU machine)."""
    write_params(tiny_work, seeds=[0, 1], train={'epochs': 1, 'parallel_runs': 2, 'workers': 1})
    log = bench(tiny_work, 'train', '--method', 'regression_dark')
    out = log.stdout + log.stderr
    assert 'train regression_dark: 2 runs, 2 at a time' in out
    finals = []
    for seed in (0, 1):
        run = RunPaths('regression_dark', seed, tiny_work / 'runs')
        assert json.loads((run.train / 'status.json').read_text())['status'] == 'ok'
        assert (run.live / 'plots').is_dir() and any(run.snapshots.iterdir())
        finals.append((run.train / 'final.pth').stat().st_mtime_ns)
    again = bench(tiny_work, 'train', '--method', 'regression_dark')
    out = again.stdout + again.stderr
    assert 'at a time' not in out and out.count('already trained') == 2
    assert [(RunPaths('regression_dark', s, tiny_work / 'runs').train / 'final.pth')
            .stat().st_mtime_ns for s in (0, 1)] == finals
    # evaluation side by side too: one metrics file with both seeds
    ev = bench(tiny_work, 'evaluate', '--method', 'regression_dark')
    assert 'evaluate regression_dark: 2 runs, 2 at a time' in ev.stdout + ev.stderr
    table = json.loads((tiny_work / 'runs' / 'metrics' / 'regression_dark.json').read_text())
    assert sorted(table) == ['seed0', 'seed1']
    assert all(0 <= table[k]['PCK@0.1'] <= 1 for k in table)
