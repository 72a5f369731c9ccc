"""The runs' on-disk layout (``bench/runs.py``): one place for the paths, matching
``dvc.yaml``; pruning of dropped seeds; the train stage's test for a finished seed."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from bench.params import ROOT
from bench.runs import KINDS, RunPaths, find_runs, method_dir, metrics_file, prune_seeds
from bench.stages.train import _completed_run


def test_paths_are_kind_first(tmp_path):
    run = RunPaths('cls_ohem', 3, tmp_path)
    for kind in KINDS:
        assert run.kind(kind) == tmp_path / kind / 'cls_ohem' / 'seed3'
        assert run.kind(kind).parent == method_dir(kind, 'cls_ohem', tmp_path)
    assert (run.train, run.live, run.snapshots, run.eval) == tuple(run.kind(k) for k in KINDS)
    assert run.stale == tmp_path / 'train' / 'cls_ohem' / 'seed3.stale'
    assert run.metrics == metrics_file('cls_ohem', tmp_path) == tmp_path / 'metrics/cls_ohem.json'
    assert run.name == 'cls_ohem/seed3'


def test_dvc_yaml_declares_the_same_paths():
    """The stages' outputs are the per-method folders of RunPaths, they never overlap, and the
    report depends on the small outputs only."""
    stages = yaml.safe_load((ROOT / 'dvc.yaml').read_text())['stages']
    m = '${item.method}'
    root = Path('runs')

    def paths(entries):
        return [Path(next(iter(e)) if isinstance(e, dict) else e) for e in entries]

    train, evaluate = stages['train'], stages['evaluate']
    assert list(train['matrix']) == ['method'] and list(evaluate['matrix']) == ['method']
    assert train['cmd'] == f'python -m bench train --method {m}'
    assert evaluate['cmd'] == f'python -m bench evaluate --method {m}'
    assert paths(train['outs']) == [method_dir('train', m, root), method_dir('snapshots', m, root)]
    assert paths(train['plots']) == [method_dir('live', m, root)]
    assert paths(evaluate['outs']) == [method_dir('eval', m, root)]
    assert paths(evaluate['metrics']) == [metrics_file(m, root)]
    assert method_dir('train', m, root) in paths(evaluate['deps'])
    for stage in (train, evaluate):
        for out in [*stage.get('outs', []), *stage.get('plots', []), *stage.get('metrics', [])]:
            assert next(iter(out.values()))['cache'] is False
    assert 'seeds' in train['params'] and 'seeds' in evaluate['params']
    deps = paths(stages['report']['deps'])
    assert {root / 'eval', root / 'live', root / 'snapshots'} <= set(deps)
    assert not any(d == root or d.is_relative_to(root / 'train') for d in deps)


def _tree(root: Path, method: str, names: list[str]) -> None:
    for kind in ('train', 'live', 'snapshots', 'eval'):
        for name in names:
            (method_dir(kind, method, root) / name).mkdir(parents=True)


def test_prune_removes_only_dropped_seeds(tmp_path):
    _tree(tmp_path, 'cls_ohem', ['seed0', 'seed1', 'seed2'])
    for name in ('seed2.stale', 'notes'):
        (tmp_path / 'train/cls_ohem' / name).mkdir()
    _tree(tmp_path, 'regression_dark', ['seed2'])
    removed = prune_seeds('cls_ohem', [0, 1], ('train', 'live', 'snapshots'), tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        'live/cls_ohem/seed2', 'snapshots/cls_ohem/seed2', 'train/cls_ohem/seed2',
        'train/cls_ohem/seed2.stale']
    assert (tmp_path / 'eval/cls_ohem/seed2').is_dir()  # a kind not asked for
    assert (tmp_path / 'train/cls_ohem/notes').is_dir()  # not a seed folder
    assert (tmp_path / 'train/regression_dark/seed2').is_dir()  # another method
    assert [r.name for r in find_runs('train', tmp_path)] == [
        'cls_ohem/seed0', 'cls_ohem/seed1', 'regression_dark/seed2']


def test_a_finished_run_is_recognised_by_key_status_and_weights(tmp_path):
    work = tmp_path / 'seed0'
    work.mkdir()
    (work / 'fingerprint.txt').write_text('k1\n')
    assert _completed_run(work, 'k1') is None  # no status yet (running, or killed)
    (work / 'status.json').write_text(json.dumps(dict(status='ok', epochs=2)))
    assert _completed_run(work, 'k1') is None  # no final.pth
    (work / 'final.pth').write_bytes(b'w')
    assert _completed_run(work, 'k1') == dict(status='ok', epochs=2)
    assert _completed_run(work, 'k2') is None  # other inputs
    (work / 'status.json').write_text(json.dumps(dict(status='diverged')))
    assert _completed_run(work, 'k1') is None
