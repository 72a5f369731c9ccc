"""The formulations zoo (issue #17): SimCC, UDP, RLE, DSNT and CornerNet-style focal heatmaps,
each built from MMPose's own classes by ``bench.config.build_config``.

- the geometry each codec and head gets is derived from ``params.model`` (never set by hand);
- the focal method really trains on positives, DSNT's JS term has finite gradients;
- every new method trains one tiny epoch and is evaluated through the real DVC pipeline
  (``dvc repro``), with its decoded keypoints in the image frame, its codec-floor row and its
  report rows (slow: one shared repo, module-scoped).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import bench  # noqa: F401  (registers the modules)
from bench.config import build_config, derive_codec
from bench.formulations import for_head
from bench.formulations.heatmap import dark_blur_kernel
from bench.formulations.simcc import SIMCC_SPLIT_RATIO, simcc_sigma_bins
from bench.params import load_params
from conftest import write_params

ZOO = ('simcc', 'regression_udp', 'rle', 'dsnt', 'regression_focal')


@pytest.fixture
def make_params(tmp_path, monkeypatch):
    """params.yaml of the tiny profile with ``model`` overrides, loaded (no data needed)."""
    monkeypatch.setenv('POSEBENCH_WORKDIR', str(tmp_path))

    def make(**model):
        return load_params(write_params(tmp_path, model=model))
    return make


def _build_head(cfg):
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    return MODELS.build(cfg.model.head)


# ------------------------------------------------------------------------ derived geometry

def test_zoo_methods_are_defined_but_not_in_the_default_profile():
    from bench.params import ROOT
    default = load_params(ROOT / 'params.yaml')
    study = load_params(ROOT / 'profiles' / 'study' / 'params.yaml')
    for m in ZOO:
        assert m in default.methods and default.methods[m].label
        assert m in study.methods and m in study.active_methods
    assert list(default.active_methods) == ['regression_dark', 'cls_ohem', 'cls_weighted']


@pytest.mark.parametrize('model, sigma_bins, featmap', [
    # default geometry: stride 4, sigma 1.5 heatmap px = 6 input px = 12 half-pixel bins
    ({}, 12.0, (4, 4)),
    # a bigger input at the same stride-16 backbone: twice the feature map, same stride
    ({'input_size': [128, 128], 'heatmap_size': [32, 32], 'sigma': 2.0}, 16.0, (8, 8)),
    # non-square input: one sigma (same stride on both axes), a non-square feature map
    ({'input_size': [64, 96], 'heatmap_size': [16, 24]}, 12.0, (4, 6)),
    # stride 32 with three deconvolutions: the heatmap stride is still 4
    ({'backbone': {'output_stride': 32}, 'deconv_channels': [8, 8, 8]}, 12.0, (2, 2)),
])
def test_simcc_geometry_follows_model(make_params, model, sigma_bins, featmap):
    params = make_params(**model)
    cfg = build_config(params, 'simcc', 0)
    m = params.model
    assert cfg.codec == dict(type='SimCCLabel', input_size=tuple(m.input_size),
                             sigma=sigma_bins, simcc_split_ratio=SIMCC_SPLIT_RATIO)
    head = cfg.model.head
    assert head.in_featuremap_size == featmap
    assert head.input_size == tuple(m.input_size)
    assert head.simcc_split_ratio == SIMCC_SPLIT_RATIO and head.decoder == cfg.codec
    assert head.deconv_out_channels == tuple(m.deconv_channels)
    built = _build_head(cfg)
    # the trunk (a HeatmapHead inside) ends on the heatmap grid; the 1-D outputs span the
    # input at split_ratio bins per pixel
    assert tuple(built.heatmap_size) == tuple(m.heatmap_size)
    assert built.mlp_head_x.out_features == m.input_size[0] * SIMCC_SPLIT_RATIO
    assert built.mlp_head_y.out_features == m.input_size[1] * SIMCC_SPLIT_RATIO
    assert _resolution(cfg) == [int(s * SIMCC_SPLIT_RATIO) for s in m.input_size]


def test_simcc_label_is_as_wide_as_the_heatmap_gaussian(make_params):
    """The rule behind sigma in bins: SimCC's 1-D label and the DARK heatmap Gaussian have
    the same standard deviation in input pixels."""
    from mmpose.registry import KEYPOINT_CODECS
    params = make_params(input_size=[128, 128], heatmap_size=[32, 32], sigma=2.0)
    simcc = KEYPOINT_CODECS.build(build_config(params, 'simcc', 0).codec)
    dark = KEYPOINT_CODECS.build(build_config(params, 'regression_dark', 0).codec)
    kp = np.array([[[61.3, 70.8]]], np.float32)
    vis = np.ones((1, 1), np.float32)
    lx = simcc.encode(kp, vis)['keypoint_x_labels'][0, 0]
    bins = np.arange(lx.size) / simcc.simcc_split_ratio            # input px
    sd_simcc = math.sqrt(np.sum(lx * (bins - np.sum(lx * bins) / lx.sum()) ** 2) / lx.sum())
    hm = dark.encode(kp, vis)['heatmaps'][0].sum(axis=0)            # marginal over y
    px = np.arange(hm.size) * 128 / 32                              # heatmap px -> input px
    sd_dark = math.sqrt(np.sum(hm * (px - np.sum(hm * px) / hm.sum()) ** 2) / hm.sum())
    # SimCC's label is rounded to the nearest bin, DARK's is exact: the same width
    assert sd_simcc == pytest.approx(sd_dark, rel=0.02)
    assert sd_dark == pytest.approx(2.0 * 4, rel=0.02)
    assert simcc_sigma_bins(params, 2.0) == 16.0


@pytest.mark.parametrize('model', [{}, {'input_size': [128, 128], 'heatmap_size': [32, 32],
                                        'sigma': 2.0}])
def test_codec_and_head_geometry_per_type(make_params, model):
    params = make_params(**model)
    m = params.model
    geo = dict(input_size=tuple(m.input_size), heatmap_size=tuple(m.heatmap_size),
               sigma=m.sigma)
    blur = dark_blur_kernel(m.sigma)
    in_channels = m.backbone.base_channels * 8
    featmap = tuple(s // m.backbone.output_stride for s in m.input_size)

    udp = build_config(params, 'regression_udp', 0)
    # MMPose's UDPHeatmap with its Gaussians placed right (bench/codecs/udp_heatmap.py), with
    # UDPHeatmap's geometry and blur rule
    assert udp.codec == dict(type='UDPHeatmapExact', heatmap_type='gaussian',
                             blur_kernel_size=blur, **geo)
    assert [t.get('use_udp') for split in ('train', 'val', 'test')
            for t in (udp[f'{split}_dataloader'].dataset.get('pipeline')
                      or udp[f'{split}_dataloader'].dataset.dataset.pipeline)
            if t['type'] == 'TopdownAffine'] == [True, True, True]
    assert udp.model.data_preprocessor.augment['use_udp'] is True
    assert udp.model.test_cfg == dict(flip_test=True, flip_mode='heatmap', shift_heatmap=False)
    assert _resolution(udp) == list(m.heatmap_size)

    dsnt = build_config(params, 'dsnt', 0)
    assert dsnt.codec == dict(type='IntegralRegressionLabel', unbiased=True, normalize=True,
                              blur_kernel_size=blur, **geo)
    assert {k: v for k, v in dsnt.model.head.items() if k not in ('type', 'loss', 'decoder')} \
        == dict(in_channels=in_channels, in_featuremap_size=featmap, num_joints=17,
                deconv_out_channels=tuple(m.deconv_channels),
                deconv_kernel_sizes=tuple(4 for _ in m.deconv_channels))
    assert tuple(_build_head(dsnt).heatmap_size) == tuple(m.heatmap_size)
    assert _resolution(dsnt) is None  # a soft-argmax: continuous

    rle = build_config(params, 'rle', 0)
    assert rle.codec == dict(type='RegressionLabel', input_size=tuple(m.input_size))
    assert {k: v for k, v in rle.model.head.items() if k not in ('type', 'loss', 'decoder')} \
        == dict(in_channels=in_channels, num_joints=17)
    assert rle.model.neck == dict(type='GlobalAveragePooling')
    assert rle.model.test_cfg == dict(flip_test=True, shift_coords=True)
    assert _build_head(rle).fc.in_features == in_channels
    assert _resolution(rle) is None

    focal = build_config(params, 'regression_focal', 0)
    dark = build_config(params, 'regression_dark', 0)
    assert focal.codec == dark.codec and focal.model.head.type == 'SigmoidHeatmapHead'
    assert focal.model.head.loss.type == 'PeakFocalHeatmapLoss'


def _resolution(cfg):
    """The grid a run's keypoints are decoded on, as evaluation reads it."""
    return for_head(cfg.model.head.type).resolution(cfg.codec)


def test_unknown_codec_or_head_stops_with_one_line(make_params):
    from bench.errors import RunError
    with pytest.raises(RunError, match='codec MyCodec: no formulation record.*bench/formulations/'):
        derive_codec(dict(type='MyCodec'), make_params())
    with pytest.raises(RunError, match='head MyHead: no formulation record.*bench/formulations/'):
        derive_codec(dict(type='MSRAHeatmap'), make_params(), head='MyHead')
    with pytest.raises(RunError, match='head SimCCHead .SimCC. decodes with SimCCLabel, not '
                       'codec MSRAHeatmap'):
        derive_codec(dict(type='MSRAHeatmap'), make_params(), head='SimCCHead')


def test_zoo_configs_differ_from_the_baseline_only_in_head_codec_and_their_settings():
    """Fairness by construction: data, backbone, schedule, augmentation and runtime are the
    baseline's; what differs is the head, the codec (and where it goes), the test-time
    options, RLE's pooling neck and UDP's warp."""
    from bench.params import ROOT
    params = load_params(ROOT / 'params.yaml')

    def strip(method):
        cfg = build_config(params, method, 0).to_dict()
        for key in ('work_dir', 'codec'):
            cfg.pop(key)
        model = cfg['model']
        for key in ('head', 'test_cfg', 'neck'):
            model.pop(key, None)
        model['data_preprocessor'].pop('codec')
        model['data_preprocessor']['augment'].pop('use_udp')
        for split in ('train', 'val', 'test'):
            ds = cfg[f'{split}_dataloader']['dataset']
            for t in ds.get('pipeline') or ds['dataset']['pipeline']:
                t.pop('encoder', None)
                t.pop('use_udp', None)
        return cfg

    base = strip('regression_dark')
    for m in ZOO:
        assert strip(m) == base, m


# ---------------------------------------------------------------- focal loss, DSNT's JS term

def _dark_targets(n=4, K=5, size=16, sigma=1.5, seed=0):
    """DARK's unbiased Gaussians at random sub-pixel keypoints (one unlabelled)."""
    from mmpose.codecs import MSRAHeatmap
    codec = MSRAHeatmap((size * 4, size * 4), (size, size), sigma, unbiased=True)
    rng = np.random.default_rng(seed)
    heat, weights = [], []
    for _ in range(n):
        kp = rng.uniform(4, size * 4 - 4, (1, K, 2)).astype(np.float32)
        vis = np.ones((1, K), np.float32)
        vis[0, 0] = 0
        enc = codec.encode(kp, vis)
        heat.append(enc['heatmaps'])
        weights.append(enc['keypoint_weights'][0])
    return torch.as_tensor(np.stack(heat)), torch.as_tensor(np.stack(weights))


def test_focal_loss_sees_one_positive_per_labelled_keypoint(monkeypatch):
    """MMPose's FocalHeatmapLoss counts only target == 1 as positive: DARK's sub-pixel
    Gaussians give it none. The wrapper hands it exactly one positive, at the peak, per
    labelled keypoint; the test fails if the positives go missing."""
    from mmpose.models.losses.heatmap_loss import FocalHeatmapLoss
    from bench.models import PeakFocalHeatmapLoss
    target, weights = _dark_targets()
    labelled = weights > 0
    assert labelled.sum() == 16 and not labelled[:, 0].any()
    assert int(target.eq(1).sum()) == 0  # the stock loss alone: no positive at all

    seen = {}
    stock_forward = FocalHeatmapLoss.forward

    def spy(self, output, target, target_weights=None, mask=None):
        seen['target'] = target
        return stock_forward(self, output, target, target_weights, mask)
    monkeypatch.setattr(FocalHeatmapLoss, 'forward', spy)
    loss = PeakFocalHeatmapLoss(use_target_weight=True)
    out = torch.full_like(target, 0.1, requires_grad=True)
    value = loss(out, target, weights)
    passed = seen['target']
    positives = passed.eq(1)
    assert positives.flatten(2).sum(-1).tolist() == labelled.long().tolist()
    peak = target.flatten(2).argmax(-1)
    assert (positives.flatten(2).float().argmax(-1)[labelled] == peak[labelled]).all()
    # the rest of each Gaussian is kept as the negatives' penalty reduction
    assert torch.equal(passed[~positives], target[~positives])
    # and the positives pull their pixel up
    value.backward()
    grad = out.grad.flatten(2).gather(-1, peak[..., None])[..., 0]
    assert (grad[labelled] < 0).all() and torch.isfinite(value)


def test_focal_loss_rejects_logits():
    from bench.models import PeakFocalHeatmapLoss
    target, weights = _dark_targets(n=1)
    with pytest.raises(ValueError, match='probabilities in \\(0, 1\\).*SigmoidHeatmapHead'):
        PeakFocalHeatmapLoss()(torch.randn_like(target), target, weights)


def test_sigmoid_heatmap_head_outputs_clamped_probabilities():
    from bench.models import SigmoidHeatmapHead
    head = SigmoidHeatmapHead(in_channels=8, out_channels=3, deconv_out_channels=(8,),
                              deconv_kernel_sizes=(4,))
    head.init_weights()
    out = head.forward((torch.randn(2, 8, 4, 4) * 100,))
    assert out.shape == (2, 3, 8, 8)
    assert out.min() >= 1e-4 and out.max() <= 1 - 1e-4
    # CornerNet's prior: every pixel starts near 0.1 (the 1x1 layer's weights are ~0)
    start = head.forward((torch.randn(2, 8, 4, 4),))
    assert abs(float(start.detach().mean()) - 0.1) < 0.01


def test_finite_js_loss_has_the_stock_value_and_finite_gradients():
    from mmpose.models.losses import JSDiscretLoss
    from bench.models import FiniteJSDiscretLoss
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 4, 16, generator=g).softmax(-1).reshape(3, 4, 4, 4)
    gt = torch.randn(3, 4, 16, generator=g).softmax(-1).reshape(3, 4, 4, 4)
    masked = torch.tensor([[1., 0., 1., 1.], [1., 1., 1., 1.], [0., 1., 1., 1.]])
    for w, stock_nan in ((masked, True), (torch.ones(3, 4), False)):
        grads, values = [], []
        for loss in (JSDiscretLoss(), FiniteJSDiscretLoss()):
            p = pred.clone().requires_grad_()
            value = loss(p, gt, w)
            value.backward()
            values.append(float(value.detach()))
            grads.append(p.grad)
        assert values[1] == pytest.approx(values[0], rel=1e-6)
        # MMPose's: NaN as soon as one keypoint has weight 0 (the DSNT run diverged)
        assert bool(torch.isnan(grads[0]).any()) == stock_nan
        assert torch.isfinite(grads[1]).all()
        labelled = w > 0
        torch.testing.assert_close(grads[1][labelled], grads[0][labelled])


# --------------------------------------- one tiny epoch each, through the DVC pipeline

@pytest.fixture(scope='module')
def zoo_work(tmp_path_factory):
    """Every zoo method trained one tiny epoch (seed 0) and evaluated by ``dvc repro`` in a
    fresh git + DVC repo: data -> floor -> tune -> train -> evaluate -> report, the real
    pipeline (SimCC is the report's baseline, so that no other method needs training)."""
    from conftest import dvc_repo, run_dvc
    repo = dvc_repo(tmp_path_factory.mktemp('zoo') / 'repo', train={'epochs': 1},
                    active_methods=list(ZOO), report={'baseline': 'simcc'})
    out = run_dvc(repo, 'repro')
    for m in ZOO:
        assert f"Running stage 'train@{m}'" in out and f"Running stage 'evaluate@{m}'" in out
    return repo


@pytest.mark.slow
def test_zoo_rows_in_the_floor_and_the_report(zoo_work):
    """The floor stage scores every new codec (RLE: a row that says the floor does not
    apply), and the report has each method's row and cost."""
    import pandas as pd
    floor = pd.read_csv(zoo_work / 'reports' / 'codec_floor.csv')
    rows = floor.set_index('method')
    for m in ZOO:
        if m == 'rle':
            assert 'not applicable' in rows.loc[m, 'note'] and math.isnan(rows.loc[m, 'PCK@0.05'])
        else:
            assert rows.loc[m, 'PCK@0.05'] >= 0.98, (m, rows.loc[m, 'PCK@0.05'])
    costs = pd.read_csv(zoo_work / 'reports' / 'cost.csv').set_index('method')
    assert set(ZOO) <= set(costs.index)
    assert costs.loc['rle', 'head_params'] < costs.loc['simcc', 'head_params']
    assert (costs.loc[list(ZOO), 'infer_ms'] > 0).all()
    readme = (zoo_work / 'reports' / 'README.md').read_text()
    params = load_params(zoo_work / 'params.yaml')
    assert all(params.methods[m].label in readme for m in ZOO)


def _predictions(work: Path, method: str):
    """The trained model of (method, seed 0) under its saved config, on the test split, as
    the evaluate stage runs it: pred (N, K, 2) image px, gt (N, K, 2), the crops' centres and
    scales (N, 2), input size."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpose.models import build_pose_estimator
    from mmpose.registry import DATASETS

    from bench.runs import RunPaths
    from bench.stages.run_config import load_run_config
    os.environ['POSEBENCH_WORKDIR'] = str(work)
    try:
        paths = RunPaths(method, 0, root=work / 'runs')
        cfg = load_run_config(paths.train)
        init_default_scope('mmpose')
        model = build_pose_estimator(cfg.model)
        load_checkpoint(model, str(paths.train / 'final.pth'), map_location='cpu',
                        logger='silent')
        model.eval()
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
        with torch.no_grad():
            samples = model.test_step(pseudo_collate([dataset[i] for i in range(len(dataset))]))
    finally:
        del os.environ['POSEBENCH_WORKDIR']
    return dict(
        pred=np.stack([s.pred_instances.keypoints[0] for s in samples]).astype(np.float64),
        gt=np.stack([s.gt_instances.keypoints[0] for s in samples]).astype(np.float64),
        center=np.stack([s.metainfo['input_center'] for s in samples]).astype(np.float64),
        scale=np.stack([s.metainfo['input_scale'] for s in samples]).astype(np.float64),
        input_size=np.asarray(samples[0].metainfo['input_size'], np.float64))


def _saved_config_floor(work: Path, method: str) -> dict:
    """The codec floor (PCK, EPE) of a perfect network under run (method, seed 0)'s saved
    config."""
    from bench.evaluation.codec_floor import floor_metrics, perfect_predictions
    from bench.runs import RunPaths
    from bench.stages.run_config import load_run_config
    os.environ['POSEBENCH_WORKDIR'] = str(work)
    try:
        cfg = load_run_config(RunPaths(method, 0, root=work / 'runs').train)
        return floor_metrics(perfect_predictions(cfg))
    finally:
        del os.environ['POSEBENCH_WORKDIR']


@pytest.mark.slow
@pytest.mark.parametrize('method', ZOO)
def test_zoo_method_trains_and_evaluates_in_the_image_frame(zoo_work, method):
    from bench.runs import RunPaths
    paths = RunPaths(method, 0, root=zoo_work / 'runs')
    metrics = json.loads((paths.eval / 'metrics.json').read_text())
    assert metrics['status'] == 'ok', metrics
    for key in ('PCK@0.05', 'PCK@0.1', 'PCK@0.2', 'AUC', 'EPE', 'mean_OKS'):
        assert math.isfinite(metrics[key]), (method, key)
    dump = np.load(paths.eval / 'keypoints.npz')
    labelled = dump['dists'] >= 0

    # The evaluate stage recorded the image-frame predictions: its distances are those of
    # the model's keypoints, as test_step returns them, to the annotations.
    p = _predictions(zoo_work, method)
    dists = np.linalg.norm(p['pred'] - p['gt'], axis=-1) / dump['bbox_size'][:, None]
    # Not bit for bit: the stage and this test may run at other thread counts, and the DARK /
    # UDP refinement (a Newton step on the log of a blurred map) turns 1e-7 differences of
    # the near-flat maps of a one-epoch model into up to ~2e-3 of a bbox (0.1 px here) for
    # some keypoints (focal's sigmoid maps: ~5%); a frame bug moves nearly all of them by
    # 0.1-1 bbox.
    diff = np.abs(dump['dists'][labelled] - dists[labelled])
    assert np.median(diff) < 1e-4 and diff.max() < 0.02, (method, np.sort(diff)[-5:])
    # ... and those are in the image frame: inside the crop each one was decoded from (the
    # decoders' grids: heatmap, bins, soft-argmax; RLE's unbounded regression gets a margin).
    lo = p['center'] - p['scale'] / 2
    hi = p['center'] + p['scale'] / 2
    margin = (0.25 if method == 'rle' else 0.02) * p['scale'][:, None]
    inside = ((p['pred'] >= lo[:, None] - margin) & (p['pred'] <= hi[:, None] + margin)).all(-1)
    assert inside.all(), (method, p['pred'][~inside])
    # The decoding path of that saved config, fed a perfect network's outputs (the codec
    # floor), lands on the annotations in the image frame: a frame bug (heatmap or bin
    # coordinates left unscaled, a codec / head / pipeline size mismatch, UDP's warp missing)
    # could not. UDP at the profile's sigma 1.5: its codec places the Gaussians right (MMPose's
    # UDPHeatmap moves those near the top/left border one pixel: tests/test_udp_codec.py).
    if method != 'rle':
        floor = _saved_config_floor(zoo_work, method)
        assert floor['PCK@0.05'] >= 0.98, (method, floor)
        if method == 'regression_udp':  # exact: without UDP's warp it is 0.85 px off
            assert floor['EPE'] < 0.1, floor

    # snapshots: every method with maps has them on the heatmap grid; RLE has none, and its
    # (DVC output) folder says why
    snaps = sorted(paths.snapshots.glob('epoch_*.npz'))
    if method == 'rle':
        assert not snaps and 'RLEHead' in (paths.snapshots / 'NO_SNAPSHOTS.txt').read_text()
        return
    assert snaps
    with np.load(snaps[-1]) as snap:
        assert snap['heatmaps'].shape[1:] == (17, 16, 16)
        assert np.isfinite(snap['heatmaps']).all()
        kp = snap['keypoints']                  # the model-input frame of the snapshot images
        assert ((kp > -1) & (kp < 65)).all(), (method, kp)


@pytest.mark.slow
def test_zoo_report_figures_skip_methods_without_maps(zoo_work, tmp_path, monkeypatch):
    """The heatmaps and sharpness figures draw exactly the methods that have snapshots (a
    column, a box each), name the one that has none (RLE), and are not placeholders: the
    figures are read before they are saved."""
    from bench.report import figures as F
    from bench.report.collect import load_study
    study = load_study(zoo_work / 'runs', list(ZOO), [0])
    labels = {m: m for m in ZOO}
    have = [m for m in ZOO if study.snapshot_epochs.get((m, 0))]
    assert 'rle' not in have and len(have) >= 3, have
    drawn = {}
    real = F.save
    monkeypatch.setattr(F, 'save', lambda fig, path: drawn.setdefault(path.name, fig)
                        and real(fig, path))
    assert F.heatmaps(study, list(ZOO), labels, tmp_path / 'h.png').is_file()
    assert F.sharpness(study, list(ZOO), labels, tmp_path / 's.png').is_file()

    fig = drawn['h.png']
    titles = [ax.get_title().replace('\n', ' ') for ax in fig.axes if ax.get_title()]
    assert titles[0] == 'input + ground truth'
    columns = [t.split(' (maps')[0] for t in titles[1:] if 'background' not in t]
    assert columns == have
    assert f'no snapshot for {labels["rle"]}' in fig._suptitle.get_text()
    fig = drawn['s.png']
    boxes = [t.get_text().replace('\n', '') for t in fig.axes[0].get_xticklabels()]
    assert boxes == have
