"""``python -m bench estimate``: a measured step per method x geometry, extrapolated."""
from __future__ import annotations

import pandas as pd
import pytest

from bench.params import load_params
from conftest import bench, write_params


@pytest.mark.slow
def test_estimate_covers_every_method_and_geometry(tiny_work):
    write_params(tiny_work, sweep=[{'heatmap_size': [8, 8], 'sigma': 1.0}],
                 tune={'enabled': True, 'lrs': [0.001, 0.01], 'epochs': 1})
    params = load_params(tiny_work / 'params.yaml')
    bench(tiny_work, 'estimate', '--steps', '2', '--out', 'est')
    table = pd.read_csv(tiny_work / 'est' / 'study_estimate.csv')
    assert list(zip(table.method, table.geometry)) == [
        (m, g) for m in params.active_methods for g in ('hm16s1.5', 'hm8s1')]
    assert (table.step_ms > 0).all() and set(table.input_size) == {'64x64', '32x32'}
    iters = -(-params.data.stickman.train // params.train.batch_size) * params.train.epochs
    assert (table.iters_per_run == iters).all()
    # all seeds, plus the trials (two rates x one epoch) at the profile's own geometry only
    trials = -(-params.data.stickman.train // params.train.batch_size) * 2
    expected = table.step_ms * (iters * len(params.seeds)
                                + trials * (table.geometry == 'hm16s1.5')) / 3.6e6
    pd.testing.assert_series_equal(table.total_h, expected.round(3), check_names=False,
                                   atol=1e-3)
    assert 'lower bound' in (tiny_work / 'est' / 'study_estimate.md').read_text()
