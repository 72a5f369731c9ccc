"""The codec floor (what a perfect network scores with each method's codec, flip and decoder)
and the method descriptions, on the tiny generated dataset."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from conftest import bench


@pytest.fixture(scope='module')
def floor_work(tiny_data, tmp_path_factory):
    """The tiny study with the ``floor`` stage run once (every defined method)."""
    import shutil
    work = tmp_path_factory.mktemp('floor')
    shutil.copytree(tiny_data / 'data', work / 'data')
    shutil.copy(tiny_data / 'params.yaml', work / 'params.yaml')
    out = bench(work, 'floor')
    assert 'floor' in out.stdout
    return work


def test_floor_rows_and_equal_ceilings(floor_work):
    floor = pd.read_csv(floor_work / 'reports' / 'codec_floor.csv').set_index('method')
    import yaml
    params = yaml.safe_load((floor_work / 'params.yaml').read_text())
    assert set(floor.index) == set(params['methods'])
    assert floor.loc[list(params['active_methods']), 'active'].all()
    assert not floor.loc['regression', 'active']
    for col in ('PCK@0.05', 'PCK@0.1', 'PCK@0.2', 'EPE', 'PCK@0.1/nose'):
        assert col in floor
    # the headline methods share one ceiling ...
    heads = floor.loc[['regression_dark', 'cls_ohem', 'cls_balanced'], 'PCK@0.05']
    assert heads.min() >= 0.98 and heads.max() - heads.min() <= 0.01
    # ... which the stock codec (biased decoding, truncated targets) does not reach: the floor
    # tells the codecs apart
    assert floor.loc['regression', 'PCK@0.05'] < heads.min() - 0.1
    assert floor.loc['regression', 'EPE'] > 2 * floor.loc['regression_dark', 'EPE']


def test_method_descriptions_follow_the_resolved_configs(floor_work):
    d = pd.read_csv(floor_work / 'reports' / 'methods.csv').set_index('method')
    assert 'DARK' in d.loc['regression_dark', 'refinement']
    assert '"unbiased": true' in d.loc['regression_dark', 'codec']
    assert 'quarter-pixel' in d.loc['regression', 'refinement']
    assert 'truncation bug' in d.loc['regression', 'decoding']
    assert 'recovered exactly' in d.loc['cls_ohem', 'decoding']
    assert d.loc['cls_ohem', 'head'] == 'PixelClassHead'
    assert '"neg_pos_ratio": 3' in d.loc['cls_ohem', 'loss']
    assert 'KeypointMSELoss' in d.loc['regression_dark', 'loss']
    assert d.loc['cls_ohem', 'test_time'].startswith('flip test')


def test_imbalance_table(floor_work):
    imb = pd.read_csv(floor_work / 'reports' / 'imbalance.csv').set_index('heatmap')
    assert list(imb.index) == ['16x16', '64x64']
    # the background share grows with the resolution at a fixed sigma, and so does what
    # mining can discard
    assert imb.loc['64x64', 'bg_share_median'] > imb.loc['16x16', 'bg_share_median'] + 0.3
    assert imb.loc['64x64', 'ohem3_bg_kept_median'] < 0.5
    assert imb.loc['16x16', 'ohem3_keeps_all'] > 0.5


def test_perfect_predictions_are_exact_for_our_codec_without_flip(tiny_data, monkeypatch):
    """Without flip test (whose one-pixel shift is MMPose's convention, not exact), a perfect
    classification network decodes to the annotations themselves."""
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_data))
    from bench.config import build_config
    from bench.floor import floor_metrics, perfect_predictions
    from bench.params import load_params
    cfg = build_config(load_params(tiny_data / 'params.yaml'), 'cls_ohem', seed=0)
    cfg.model.test_cfg = dict(cfg.model.test_cfg, flip_test=False)
    pp = perfect_predictions(cfg)
    err = np.hypot(*(pp['pred'] - pp['gt']).transpose(2, 0, 1))[pp['mask']]
    scale = pp['norm'][:, :1].repeat(pp['mask'].shape[1], 1)[pp['mask']]
    # within 1% of the bbox size everywhere (the crop is 1.25 bbox at 64 px: 0.05 heatmap px
    # is about 0.4% of the bbox)
    assert (err / scale).max() < 0.01
    assert floor_metrics(pp)['PCK@0.05'] == 1.0


def test_head_without_rule_gets_a_note(tiny_data, monkeypatch):
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tiny_data))
    from bench import floor
    from bench.errors import RunError
    monkeypatch.setattr(floor, 'PERFECT_OUTPUT', {})
    from bench.config import build_config
    from bench.params import load_params
    cfg = build_config(load_params(tiny_data / 'params.yaml'), 'cls_ohem', seed=0)
    with pytest.raises(RunError, match='no perfect-output rule for head PixelClassHead'):
        floor.perfect_predictions(cfg, samples=[])
    assert os.environ['POSEBENCH_WORKDIR'] == str(tiny_data)
