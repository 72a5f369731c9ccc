"""The console a person reads (issue 27): one progress display per stage, MMEngine's stream in
the runs' logs, failures that point to their evidence, plain lines when not on a terminal."""
from __future__ import annotations

import io
import json

import pytest

from bench.console import StageProgress, report_failure
from bench.params import load_params
from conftest import bench, write_params


def test_plain_progress_lines_off_a_terminal(monkeypatch):
    """Not a terminal (CI, a pipe): whole lines only, no carriage return, no bar; the method,
    runs done / running / to go, an ETA and the last run's PCK."""
    monkeypatch.delenv('POSEBENCH_VERBOSE', raising=False)
    out = io.StringIO()
    state = {'a/seed0': (None, False, None), 'a/seed1': (None, False, None)}
    with StageProgress('train a', list(state), units=4, unit='epoch',
                       poll=lambda r: state[r], stream=out) as progress:
        state['a/seed0'] = (4, True, 0.5)
        progress._poll_once()
        progress._draw(force=True)
        state['a/seed1'] = (2, False, None)
        progress._poll_once()
        progress._draw(force=True)
    text = out.getvalue()
    assert '\r' not in text and '\x1b' not in text
    lines = text.strip().splitlines()
    assert lines[0].startswith('train a: 0/2 runs done, 0 running, 2 to go, 0/8 epochs')
    assert 'train a: 1/2 runs done, 0 running, 1 to go, 4/8 epochs, ETA ' in text
    assert 'last val PCK@0.1 0.500 (a/seed0)' in text
    assert '1/2 runs done, 1 running, 0 to go, 6/8 epochs' in text
    # a run counts as running from its start (progress.json written before its first epoch)
    state['a/seed1'] = (0, False, None)
    progress.partial.clear()
    progress._poll_once()
    assert progress._counts()[:3] == (1, 1, 0)
    assert lines[-1].endswith('finished, last val PCK@0.1 0.500 (a/seed0)')


def test_failure_names_the_run_and_shows_its_log(tmp_path, capsys):
    log = tmp_path / 'train.log'
    log.write_text(''.join(f'line {i}\n' for i in range(40)) + 'ValueError: broken\n')
    report_failure('m/seed3', 'ValueError: broken', log)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == 'error: run m/seed3 failed: ValueError: broken'
    assert err[-2] == '  | ValueError: broken' and err[-1] == f'  log: {log}'
    assert len(err) == 1 + 15 + 1


@pytest.mark.slow
def test_a_failing_seed_points_to_its_log_and_keeps_the_others(tiny_work, monkeypatch):
    """Seed 1 resumes from a damaged checkpoint: the stage fails, the console names the seed,
    shows its log's last lines and path; seed 0 is trained and kept; the console carries no
    MMEngine stream (environment, config, iterations) and no carriage return."""
    write_params(tiny_work, train={'epochs': 1}, seeds=[0, 1])
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_work))
    monkeypatch.delenv('POSEBENCH_VERBOSE', raising=False)
    from bench.stages.train import run_config, train_log
    _, paths, key = run_config(load_params(tiny_work / 'params.yaml'), 'regression_dark', 1)
    paths.train.mkdir(parents=True)
    (paths.train / 'fingerprint.txt').write_text(key + '\n')
    (paths.train / 'epoch_1.pth').write_bytes(b'not a checkpoint')
    (paths.train / 'last_checkpoint').write_text('epoch_1.pth')

    proc = bench(tiny_work, 'train', '--method', 'regression_dark', check=False)
    assert proc.returncode != 0
    console = proc.stdout + proc.stderr
    assert '\r' not in console
    assert 'error: run regression_dark/seed1 failed:' in proc.stderr
    assert f'  log: {train_log(paths)}' in proc.stderr and train_log(paths).is_file()
    assert 'Traceback' in train_log(paths).read_text()
    assert proc.stderr.strip().splitlines()[-1].startswith(
        'error: train regression_dark: 1 of 2 runs failed (regression_dark/seed1;')
    assert 'train regression_dark: 0/2 runs done' in proc.stderr
    for noise in ('System environment', 'Config:', 'Epoch(train)', 'Epoch(val)'):
        assert noise not in console, noise
    assert len(console.splitlines()) <= 25, console
    status = json.loads((paths.train.parent / 'seed0' / 'status.json').read_text())
    assert status['status'] == 'ok'
    # the full MMEngine stream is in seed 0's log
    from bench.console import latest_log
    log0 = latest_log(paths.train.parent / 'seed0').read_text()
    assert 'Epoch(train)' in log0 and 'System environment' in log0


def test_progress_has_one_writer_per_run(tmp_path):
    """Under torchrun every rank runs the hooks: only rank 0 writes progress.json (two ranks
    replacing one temporary file crashed the slower one)."""
    from types import SimpleNamespace

    from bench.engine.hooks import ProgressHook
    for rank in (1, 0):
        hook = ProgressHook(str(tmp_path / f'rank{rank}.json'))
        hook.before_train(SimpleNamespace(rank=rank, epoch=0, max_epochs=3))
        hook.after_val_epoch(SimpleNamespace(rank=rank, epoch=1, max_epochs=3), {'PCK': 0.5})
    assert not (tmp_path / 'rank1.json').exists()
    assert json.loads((tmp_path / 'rank0.json').read_text()) == dict(epoch=1, max_epochs=3,
                                                                    val_pck=0.5)
