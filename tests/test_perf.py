"""``python -m bench perf --quick``: the benchmark runs as a real command and reports every
comparison with its target. No timing is asserted here: the numbers are the report's."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import bench

pytestmark = pytest.mark.slow


def test_perf_writes_every_benchmark_with_its_target(tiny_work):
    bench(tiny_work, 'perf', '--quick', '--out', 'perf_out')
    df = pd.read_csv(tiny_work / 'perf_out' / 'perf.csv')
    assert set(df.benchmark) == {'encode', 'decode', 'decode_batch', 'decode_dark', 'encode_floor',
                                 'loss', 'train_step', 'pipeline', 'validate', 'data_path'}
    assert set(df.loc[df.benchmark == 'encode', 'case']) == {'K=17, 32x32', 'K=17, 64x64'}
    # every classification method of params.yaml is timed against the regression baseline
    import yaml
    methods = yaml.safe_load((tiny_work / 'params.yaml').read_text())['methods']
    cls = {m for m, spec in methods.items() if spec['config'] == 'classification.py'}
    assert len(cls) >= 4
    steps = df[df.benchmark == 'train_step']
    assert {c.split(' vs ')[0] for c in steps.case} == cls
    assert {c.split(':')[0] for c in df.loc[df.benchmark == 'loss', 'case']} == cls
    targets = df.dropna(subset=['target'])
    assert set(targets.benchmark) == {'encode', 'decode', 'decode_batch', 'train_step'}
    assert np.allclose(targets.ratio, targets.ours_us / targets.mmpose_us, rtol=0.01, atol=2e-3)
    assert set(targets.meets_target) <= {'yes', 'NO'}
    assert (df.ours_us > 0).all() and df.loc[df.benchmark == 'encode_floor', 'ratio'].isna().all()
    md = (tiny_work / 'perf_out' / 'perf.md').read_text()
    assert md.startswith('# Performance') and 'meets_target' in md and 'encode_floor' in md
    # the data path (MMPose's per-sample pipeline vs the batched one) and the breakdown of a
    # real training iteration with each
    data = df[df.benchmark == 'data_path']
    assert set(c.split(':')[0] for c in data.case) == {'regression_dark', 'cls_ohem'}
    assert (data.mmpose_us > 0).all()
    it = pd.read_csv(tiny_work / 'perf_out' / 'perf_iteration.csv')
    assert list(it.data_path) == ['mmpose', 'batched']
    parts = it.loader_ms + it.augment_ms + it.fwd_bwd_ms + it.other_ms
    assert np.allclose(parts, it.iteration_ms, atol=2e-3)  # the csv is rounded
    assert ((it.data_share > 0) & (it.data_share < 1)).all()
    assert 'Data share of an iteration with the batched path' in md
