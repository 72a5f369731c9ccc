"""The codec floor (what a perfect network scores with each method's codec, flip and decoder)
and the method descriptions, on the tiny generated dataset."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from conftest import stage_output


@pytest.fixture(scope='module')
def floor_work(tiny_study):
    """The tiny study, whose ``floor`` stage ran once (every defined method) in its
    ``dvc repro`` (conftest ``tiny_study``; read only)."""
    out = stage_output((tiny_study.parent / 'repro.log').read_text(), 'floor')
    assert 'regression_dark' in out and 'EPE' in out
    return tiny_study


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
    heads = floor.loc[['regression_dark', 'cls_ohem', 'cls_weighted'], 'PCK@0.05']
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
    from bench.evaluation.codec_floor import floor_metrics, perfect_predictions
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
    import dataclasses

    from bench import formulations
    from bench.evaluation import codec_floor as floor
    from bench.errors import RunError
    family = formulations.for_head('PixelClassHead')
    monkeypatch.setitem(formulations.FORMULATIONS, family.name, dataclasses.replace(
        family, perfect_output=None, no_floor='no floor rule yet'))
    from bench.config import build_config
    from bench.params import load_params
    cfg = build_config(load_params(tiny_data / 'params.yaml'), 'cls_ohem', seed=0)
    with pytest.raises(RunError, match='codec floor of head PixelClassHead: no floor rule yet'):
        floor.perfect_predictions(cfg, samples=[])
    assert os.environ['POSEBENCH_WORKDIR'] == str(tiny_data)


def test_zoo_floors(floor_work):
    """The new codecs' ceilings: SimCC (half-pixel bins), DSNT (the coordinates themselves)
    and the focal method (DARK's codec, within the sigmoid's clamp) leave nothing to training;
    RLE's row says why it has none."""
    floor = pd.read_csv(floor_work / 'reports' / 'codec_floor.csv').set_index('method')
    for m in ('simcc', 'dsnt', 'regression_focal'):
        assert floor.loc[m, 'PCK@0.05'] >= 0.98, m
        assert pd.isna(floor.loc[m, 'note']) or not floor.loc[m, 'note'], m
    assert floor.loc['dsnt', 'EPE'] < 0.01
    assert floor.loc['simcc', 'EPE'] < floor.loc['regression_dark', 'EPE']
    assert floor.loc['regression_focal', 'PCK@0.05'] == pytest.approx(
        floor.loc['regression_dark', 'PCK@0.05'], abs=0.01)
    assert floor.loc['rle', 'note'] == 'not applicable: the target is the coordinate itself'
    assert floor.loc['rle', ['PCK@0.05', 'PCK@0.1', 'PCK@0.2', 'EPE']].isna().all()
    assert not floor.loc['rle', 'active']
    d = pd.read_csv(floor_work / 'reports' / 'methods.csv').set_index('method')
    assert d.loc['simcc', 'head'] == 'SimCCHead' and d.loc['simcc', 'test_time'] == \
        'flip test, 1-D vectors'
    assert d.loc['rle', 'test_time'] == 'flip test, coordinates, flipped x shifted 1 px'
    assert d.loc['regression_udp', 'test_time'] == 'flip test, heatmap mode'
    assert 'UDP' in d.loc['regression_udp', 'refinement']
    assert 'soft-argmax' in d.loc['dsnt', 'decoding']
    assert 'FiniteJSDiscretLoss' in d.loc['dsnt', 'loss']
    assert 'PeakFocalHeatmapLoss' in d.loc['regression_focal', 'loss']


def test_udp_floor_exact_at_the_default_sigma(floor_work, monkeypatch):
    """UDP's floor at the profile's sigma 1.5 is exact: its codec (``UDPHeatmapExact``) places
    the Gaussians right, where MMPose 1.3.2's ``UDPHeatmap`` (``generate_udp_gaussian_heatmaps``
    rounds the window corner toward 0) moves the peaks of keypoints near the top/left border
    one heatmap pixel (PCK@0.05 0.63, EPE 3.5 px on the full test split; pinned in
    tests/test_udp_codec.py). The floor uses UDP's own test pipeline (its warp), not the first
    method's."""
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(floor_work))
    from bench.config import build_config
    from bench.formulations.heatmap import dark_blur_kernel
    from bench.evaluation.codec_floor import floor_metrics, perfect_predictions, split_samples
    from bench.params import load_params
    cfg = build_config(load_params(floor_work / 'params.yaml'), 'regression_udp', seed=0)
    assert cfg.codec['sigma'] == 1.5 and cfg.codec['type'] == 'UDPHeatmapExact'
    samples = split_samples(cfg)
    exact = floor_metrics(perfect_predictions(cfg, samples=samples))
    floor = pd.read_csv(floor_work / 'reports' / 'codec_floor.csv').set_index('method')
    assert floor.loc['regression_udp', 'codec'] == 'UDPHeatmapExact'
    assert floor.loc['regression_udp', 'EPE'] == pytest.approx(exact['EPE'], rel=1e-5)
    assert floor.loc['regression_udp', 'PCK@0.05'] >= 0.99
    assert exact['EPE'] < 0.1
    # the same method with MMPose's codec: the bug the subclass removes
    for codec in (cfg.codec, cfg.model.head.decoder):
        codec['type'] = 'UDPHeatmap'
    stock = floor_metrics(perfect_predictions(cfg, samples=samples))
    assert stock['EPE'] > 10 * exact['EPE']
    # ... and at sigma 1 (3 sigma an integer) the two codecs agree, exactly
    for codec in (cfg.codec, cfg.model.head.decoder):
        codec.update(sigma=1.0, blur_kernel_size=dark_blur_kernel(1.0))
    stock1 = perfect_predictions(cfg, samples=samples)
    for codec in (cfg.codec, cfg.model.head.decoder):
        codec['type'] = 'UDPHeatmapExact'
    np.testing.assert_array_equal(perfect_predictions(cfg, samples=samples)['pred'],
                                  stock1['pred'])
    assert floor_metrics(stock1)['PCK@0.05'] == 1.0
