"""Cost columns (issue #17): parameter and FLOP counts against hand counts, the timers on
synthetic inputs, and the cost table."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from bench.evaluation import model_cost as cost
from bench.report.cost_table import COST_COLUMNS, cost_markdown, cost_table, fmt_count

C, K = 64, 5           # backbone output channels (ResNet-18, base 8) and keypoints
SIZE = (64, 64)        # input (w, h): 2x2 features at stride 32


def _cfg(head: dict, neck: dict | None = None):
    from mmengine.config import Config
    model = dict(type='TopdownPoseEstimator',
                 data_preprocessor=dict(type='PoseDataPreprocessor', mean=[0, 0, 0],
                                        std=[1, 1, 1], bgr_to_rgb=True),
                 backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8),
                 head=head, test_cfg=dict(flip_test=True))
    if neck is not None:
        model['neck'] = neck
    return Config(dict(model=model, codec=dict(input_size=SIZE)))


def _heatmap_head(kind='HeatmapHead', deconv=None, heatmap=(2, 2)):
    codec = (dict(type='PixelClassLabel', input_size=SIZE, heatmap_size=heatmap, sigma=1.0)
             if kind == 'PixelClassHead' else
             dict(type='MSRAHeatmap', input_size=SIZE, heatmap_size=heatmap, sigma=1.0))
    head = dict(type=kind, in_channels=C, out_channels=K, decoder=codec,
                deconv_out_channels=deconv)
    if deconv:
        head['deconv_kernel_sizes'] = tuple(4 for _ in deconv)
    return head


def _backbone_flops(cfg) -> int:
    model = cost.build_model(cfg)
    w, h = SIZE
    return cost.count(model.backbone, (torch.zeros(1, 3, h, w),))['flops']


# ------------------------------------------------------------------------------------ counting

def test_conv_flops_are_multiply_adds():
    # 3x3 conv, 4 -> 6 channels, stride 2 on 9x9: 5x5 outputs, each 6 * 4 * 9 multiply-adds
    conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)
    c = cost.count(conv, (torch.zeros(1, 4, 9, 9),))
    assert c['flops'] == 5 * 5 * 6 * 4 * 9 == 5400      # bias not counted
    assert c['params'] == 6 * 4 * 9 + 6
    # transposed: every input pixel scatters C_in x C_out x k x k multiply-adds
    deconv = torch.nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, bias=False)
    assert cost.count(deconv, (torch.zeros(1, 4, 3, 3),))['flops'] == 3 * 3 * 4 * 6 * 16


def test_1x1_heatmap_head_matches_hand_count():
    cfg = _cfg(_heatmap_head())
    c = cost.model_complexity(cfg)
    assert c['head_type'] == 'HeatmapHead'
    assert c['input_size'] == SIZE
    assert c['feature_shapes'] == [(1, C, 2, 2)]
    assert c['head_params'] == C * K + K                 # one 1x1 conv with bias
    assert c['head_flops'] == 2 * 2 * C * K              # per output pixel C x K
    assert c['head_loss_params'] == 0
    # the whole network is the backbone plus the head, counted on the same trace
    assert c['model_flops'] == _backbone_flops(cfg) + c['head_flops']
    model = cost.build_model(cfg)
    assert c['model_params'] == sum(p.numel() for p in model.parameters())


def test_deconv_heads_and_pixel_class_head_extra_channel():
    hm = cost.model_complexity(_cfg(_heatmap_head(deconv=(8,), heatmap=(4, 4))))
    deconv = 2 * 2 * C * 8 * 16                          # 4x4 transposed conv on 2x2
    bn = 4 * 4 * 8 * 2                                   # eval BN: 2 per element
    final = 4 * 4 * 8 * K
    assert hm['head_flops'] == deconv + bn + final
    assert hm['head_params'] == C * 8 * 16 + 2 * 8 + 8 * K + K   # deconv has no bias
    px = cost.model_complexity(
        _cfg(_heatmap_head('PixelClassHead', deconv=(8,), heatmap=(4, 4))))
    assert px['head_type'] == 'PixelClassHead'
    # K + 1 outputs: one more 1x1 output channel, nothing else
    assert px['head_params'] - hm['head_params'] == 8 + 1
    assert px['head_flops'] - hm['head_flops'] == 4 * 4 * 8
    assert px['model_flops'] - hm['model_flops'] == 4 * 4 * 8


def test_rle_head_on_pooled_features():
    head = dict(type='RLEHead', in_channels=C, num_joints=K,
                decoder=dict(type='RegressionLabel', input_size=SIZE))
    cfg = _cfg(head, neck=dict(type='GlobalAveragePooling'))
    c = cost.model_complexity(cfg)
    assert c['feature_shapes'] == [(1, C)]
    assert c['head_params'] == C * 4 * K + 4 * K         # one linear layer: (x, y, sx, sy)
    assert c['head_flops'] == C * 4 * K
    assert c['head_loss_params'] > 0                     # RealNVP flow of RLELoss: train only
    model = cost.build_model(cfg)
    total = sum(p.numel() for p in model.head.parameters())
    assert c['head_params'] + c['head_loss_params'] == total
    gap = C * 2 * 2                                      # average pooling: 1 per input element
    assert c['model_flops'] == _backbone_flops(cfg) + gap + c['head_flops']


def test_simcc_and_dsnt_heads():
    simcc = dict(type='SimCCHead', in_channels=C, out_channels=K, input_size=SIZE,
                 in_featuremap_size=(2, 2), simcc_split_ratio=2.0, deconv_out_channels=None,
                 decoder=dict(type='SimCCLabel', input_size=SIZE, sigma=2.0,
                              simcc_split_ratio=2.0))
    c = cost.model_complexity(_cfg(simcc))
    bins = 64 * 2                                        # input size x split ratio, x and y
    assert c['head_params'] == (C * K + K) + 2 * (4 * bins + bins)
    assert c['head_flops'] == 2 * 2 * C * K + 2 * K * 4 * bins

    dsnt = dict(type='DSNTHead', in_channels=C, in_featuremap_size=(2, 2), num_joints=K,
                deconv_out_channels=(8,), deconv_kernel_sizes=(4,),
                decoder=dict(type='IntegralRegressionLabel', input_size=SIZE,
                             heatmap_size=(4, 4), sigma=1.0))
    d = cost.model_complexity(_cfg(dsnt))
    assert d['head_flops'] == 2 * 2 * C * 8 * 16 + 4 * 4 * 8 * 2 + 4 * 4 * 8 * K
    # the soft-argmax expectation is element-wise: not counted, but reported
    assert 'aten::softmax' in d['head_uncounted_ops']


def test_default_profile_head_matches_params():
    from bench.config import build_config
    from bench.params import load_params
    params = load_params()
    m = params.model
    k = cost.num_keypoints_of(cost.build_model(build_config(params, 'regression_dark', 0)))
    c = cost.model_complexity(build_config(params, 'regression_dark', 0))
    cin, expected_params = m.backbone.base_channels * 8, 0
    for cout in m.deconv_channels:
        expected_params += cin * cout * 16 + 2 * cout    # 4x4 deconv, no bias, BN
        cin = cout
    expected_params += cin * k + k
    assert c['head_params'] == expected_params
    assert tuple(c['input_size']) == tuple(m.input_size)


# ---------------------------------------------------------------------------------- timing

class _FakeHead:
    num_keypoints = 3

    class decoder:
        input_size = (8, 8)


class _FakeModel:
    """test_step advances a fake clock by the next planned duration."""

    def __init__(self, clock, durations):
        self.head = _FakeHead()
        self.clock, self.durations, self.calls, self.mode = clock, list(durations), [], None

    def eval(self):
        self.mode = 'eval'
        return self

    def test_step(self, data):
        assert not torch.is_grad_enabled()
        self.calls.append(len(data['inputs']))
        self.clock[0] += self.durations.pop(0)
        return data['data_samples']


def test_inference_ms_median_per_image_without_warmup(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(cost.time, 'perf_counter', lambda: clock[0])
    # 2 slow warm-up batches, then 5 timed ones of 4 images (seconds per batch)
    model = _FakeModel(clock, [9.0, 9.0, 0.004, 0.008, 0.012, 0.016, 5.0])
    ms = cost.inference_ms(model, batch_size=4, repeats=5, warmup=2)
    assert ms == pytest.approx(12 / 4)                   # median 12 ms per batch of 4
    assert model.calls == [4] * 7 and model.mode == 'eval'


def test_inference_ms_real_model_runs():
    model = cost.build_model(_cfg(_heatmap_head()))
    for what in ('test_step', 'forward'):
        ms = cost.inference_ms(model, batch_size=2, repeats=2, warmup=1, what=what)
        assert 0 < ms < 10_000
    with pytest.raises(ValueError):
        cost.inference_ms(model, what='backward')


def _scalars(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join((json.dumps(x) if isinstance(x, dict) else x) + '\n'
                            for x in lines))
    return path


def test_train_step_ms_from_scalars(tmp_path):
    train = lambda e, i, t: dict(lr=0.1, data_time=0.001, loss=1.0, time=t, epoch=e, iter=i,
                                 step=i)
    path = _scalars(tmp_path / 'vis_data' / 'scalars.json', [
        train(1, 20, 1.0), train(1, 40, 1.0),
        dict(PCK=0.5, EPE=3.0, data_time=0.1, time=9.0, step=1),     # validation: skipped
        train(2, 60, 0.10), train(2, 80, 0.30), train(2, 100, 0.20),
        '',                                                          # blank
        '{"time": 0.5, "epoch": 2, "it',                             # cut by a kill
        dict(PCK=0.6, EPE=2.0, data_time=0.1, time=9.0, step=2)])
    assert cost.train_step_ms_from_scalars(path) == pytest.approx(200.0)
    # two epochs: median of 1.0, 1.0, 0.1, 0.3, 0.2
    assert cost.train_step_ms_from_scalars(path, last_epochs=2) == pytest.approx(300.0)
    only_val = _scalars(tmp_path / 'v.json', [dict(PCK=0.5, time=1.0, step=1)])
    assert math.isnan(cost.train_step_ms_from_scalars(only_val))


def test_find_scalars_picks_newest(tmp_path):
    assert cost.find_scalars(tmp_path) is None
    for stamp in ('20261126_231741', '20261127_080000', '20261126_235959'):
        _scalars(tmp_path / stamp / 'vis_data' / 'scalars.json', [])
    assert cost.find_scalars(tmp_path).parts[-3] == '20261127_080000'


# ----------------------------------------------------------------------------------- table

def _summary(metric='PCK@0.1'):
    rows = []
    for method, label, pck, epe in (('regression_dark', 'Regression', 0.75, 3.0),
                                    ('cls_ohem', 'Classification', 0.78, 2.5)):
        rows.append(dict(method=method, label=label, metric='PCK@0.1', higher_is_better=True,
                         mean=pck, std=0.01, ci_low=pck - .01, ci_high=pck + .01, median=pck,
                         n=2, n_censored=0))
        rows.append(dict(method=method, label=label, metric='EPE', higher_is_better=False,
                         mean=epe, std=0.1, ci_low=epe - .1, ci_high=epe + .1, median=epe,
                         n=2, n_censored=0))
    return pd.DataFrame(rows)


def _costs():
    base = dict(head_params=82609, head_flops=2256896, model_params=784705,
                model_flops=20_000_000)
    cls = dict(head_params=82642, head_flops=2265088, model_params=784738,
               model_flops=25_000_000)
    return pd.DataFrame([
        dict(method='cls_ohem', seed=0, **cls, train_step_ms=100.0, infer_ms=3.0),
        dict(method='cls_ohem', seed=1, **cls, train_step_ms=120.0, infer_ms=math.nan),
        dict(method='cls_ohem', seed=2, **cls, train_step_ms=110.0, infer_ms=5.0),
        dict(method='regression_dark', seed=0, **base, train_step_ms=90.0, infer_ms=4.0),
        dict(method='regression_dark', seed=1, **base, train_step_ms=math.nan,
             infer_ms=math.nan),
        dict(method='cls_focal', seed=0, **cls, train_step_ms=1.0, infer_ms=1.0)])


def test_cost_table_two_methods():
    t = cost_table(_costs(), _summary(), 'PCK@0.1', {'cls_ohem': 'CE + OHEM'})
    assert list(t.columns) == COST_COLUMNS
    # summary order, then methods with costs only (sorted)
    assert list(t['method']) == ['regression_dark', 'cls_ohem', 'cls_focal']
    assert list(t['label']) == ['Regression', 'CE + OHEM', 'cls_focal']
    r, c, f = (t.iloc[i] for i in range(3))
    assert r['n_runs'] == 2 and c['n_runs'] == 3
    assert c['train_step_ms'] == 110.0 and c['infer_ms'] == 4.0      # medians, NaN skipped
    assert r['train_step_ms'] == 90.0 and r['head_params'] == 82609
    assert r['mean'] == 0.75 and c['mean'] == 0.78
    assert r['mean_per_gflop'] == pytest.approx(0.75 / 0.020)
    assert c['mean_per_gflop'] == pytest.approx(0.78 / 0.025)
    assert math.isnan(f['mean']) and math.isnan(f['mean_per_gflop'])
    # an error metric gets no "per GFLOP" (it would reward compute for being worse)
    e = cost_table(_costs(), _summary(), 'EPE', {})
    assert e['mean'].tolist()[:2] == [3.0, 2.5]
    assert e['mean_per_gflop'].isna().all()


def test_cost_table_missing_costs_and_markdown():
    costs = _costs()
    costs = costs[costs.method != 'regression_dark'].drop(columns=['infer_ms'])
    t = cost_table(costs, _summary(), 'PCK@0.1', {})
    r = t.set_index('method').loc['regression_dark']
    assert r['n_runs'] == 0 and math.isnan(r['model_flops']) and r['mean'] == 0.75
    assert t['infer_ms'].isna().all()
    md = cost_markdown(cost_table(_costs(), _summary(), 'PCK@0.1', {}))
    assert md == cost_markdown(cost_table(_costs(), _summary(), 'PCK@0.1', {}))  # deterministic
    lines = md.strip().splitlines()
    header = lines[lines.index(next(x for x in lines if x.startswith('| method')))]
    assert 'PCK@0.1 ↑' in header and 'PCK@0.1 per GFLOP' in header
    row = next(x for x in lines if x.startswith('| Regression'))
    cells = [x.strip() for x in row.strip('|').split('|')]
    assert cells == ['Regression', '82.6 k', '2.26 M', '785 k', '20 M', '90.0', '4.00',
                     '0.750', '37.5']
    assert '—' in next(x for x in lines if x.startswith('| cls_focal'))  # no PCK: NA


def test_fmt_count():
    assert [fmt_count(x) for x in (512, 82609, 999999, 19724288, 1.5e9, math.nan)] == \
        ['512', '82.6 k', '1 M', '19.7 M', '1.5 G', '—']


def test_cost_row_has_every_field(tmp_path):
    _scalars(tmp_path / '20261126_231741' / 'vis_data' / 'scalars.json',
             [dict(time=0.05, epoch=1, iter=20, step=20)])
    cfg = _cfg(_heatmap_head())
    row = cost.cost_row(cfg, work_dir=tmp_path, batch_size=2, repeats=2)
    assert set(row) == set(cost.COST_FIELDS)
    assert row['head_params'] == C * K + K and row['train_step_ms'] == pytest.approx(50.0)
    assert row['infer_ms'] > 0
    assert math.isnan(cost.cost_row(cfg, batch_size=1, repeats=1)['train_step_ms'])
