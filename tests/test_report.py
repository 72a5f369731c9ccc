"""The report stage on fabricated runs (no training): files, tables, edge cases, determinism."""
from __future__ import annotations

import json
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from bench.errors import RunError
from bench.params import ROOT, load_params
from bench.report import collect
from bench.report.figures import FIGURES
from bench.stages import report

COCO_JOINTS = ['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
               'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
               'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle']
# method -> (formulation, error scale of its keypoints: smaller = better)
KINDS = {'regression': ('regression', 0.11), 'regression_ohkm': ('regression', 0.10),
         'cls_ohem': ('classification', 0.07), 'cls_balanced': ('classification', 0.08),
         'cls_focal': ('classification', 0.075)}
THRESHOLDS = (0.05, 0.1, 0.2)
CURVE_THR = np.round(np.linspace(0.01, 0.5, 50), 4)


def _tsv(path: Path, name: str, values) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ['timestamp\tstep\t' + name]
    lines += [f'{1700000000000 + i}\t{i + 1}\t{v!r}' for i, v in enumerate(values)]
    path.write_text('\n'.join(lines) + '\n')


def _gauss(center_xy, shape, sigma):
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    return np.exp(-((x - center_xy[0]) ** 2 + (y - center_xy[1]) ** 2) / (2 * sigma ** 2))


def _snapshot(rng, kind, quality, k, n_images, epoch, final, size=64, hm=16):
    """A snapshot of the same validation images for every run (as HeatmapSnapshotHook saves)."""
    stride = size / hm
    common = np.random.default_rng(99)
    images = (90 + common.integers(0, 40, size=(n_images, size, size, 3))).astype(np.uint8)
    gt = common.uniform(10, size - 10, size=(n_images, k, 2))
    for i in range(n_images):                      # draw the "figure" so the overlay has context
        for x, y in gt[i].astype(int):
            images[i, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = (230, 230, 230)
    spread = 1.0 + 3 * (1 - epoch / final)         # maps sharpen as training goes on
    pred = gt + rng.normal(0, quality * 10 * spread, size=gt.shape)
    maps = np.stack([np.stack([_gauss(p / stride, (hm, hm), 1.5 * spread) for p in pred[i]])
                     for i in range(n_images)])
    if kind == 'classification':                   # softmax over background + K keypoints
        logits = np.concatenate([np.full(maps[:, :1].shape, 3.0), 8 * maps - 2], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        heatmaps = e / e.sum(axis=1, keepdims=True)
    else:
        heatmaps = 0.8 * maps / spread + rng.normal(0, 0.02, size=maps.shape)
    return dict(images=images, heatmaps=heatmaps.astype(np.float32), keypoints=pred, gt=gt,
                epoch=epoch)


def make_fake_runs(root: Path, methods, seeds, *, k: int = 17, n_instances: int = 40,
                   epochs: int = 6, snapshot_epochs=(1, 3), n_images: int = 3,
                   diverged=()) -> Path:
    """Write ``root/<method>/seed<k>/`` as the train and evaluate stages would: status.json,
    metrics.json, eval/keypoints.npz, DVCLive TSVs, snapshots. Classification methods are
    built to be better (smaller keypoint errors); ``diverged``: (method, seed) pairs that fail.
    """
    joints = COCO_JOINTS[:k] if k <= len(COCO_JOINTS) else [f'kp{j}' for j in range(k)]
    common = np.random.default_rng(1234)           # the shared test set: same labels, difficulty
    labelled = common.random((n_instances, k)) > 0.15
    difficulty = common.uniform(0.5, 1.5, size=(n_instances, 1))
    for method in methods:
        kind, quality = KINDS[method]
        for seed in seeds:
            run = root / method / f'seed{seed}'
            rng = np.random.default_rng([zlib.crc32(method.encode()), seed])
            (run / 'train').mkdir(parents=True, exist_ok=True)
            if (method, seed) in diverged:
                msg = f'{method}/seed{seed}: loss is NaN at epoch 2, iteration 7'
                (run / 'train' / 'status.json').write_text(json.dumps(
                    dict(status='diverged', message=msg)))
                (run / 'metrics.json').write_text(json.dumps(
                    dict(status='diverged', method=method, seed=seed, message=msg)))
                continue
            (run / 'train' / 'status.json').write_text(json.dumps(
                dict(status='ok', epochs=epochs, wall_s=round(60 + 10 * rng.random(), 1))))
            q = quality * (1 + 0.08 * rng.standard_normal())
            dists = np.abs(rng.normal(0, q, size=(n_instances, k))) * difficulty
            dists = np.where(labelled, dists, -1.0)
            hit = labelled & (dists <= 0.1)
            if kind == 'classification':
                scores = np.clip(0.25 + 0.6 * hit + rng.normal(0, 0.15, dists.shape), 0, 1)
            else:
                scores = 0.3 + 0.5 * hit + rng.normal(0, 0.2, dists.shape)
            valid = dists[labelled]
            curve = np.array([(valid <= t).mean() for t in CURVE_THR])
            (run / 'eval').mkdir(exist_ok=True)
            (run / 'eval' / 'timing.json').write_text(json.dumps(dict(stage='evaluate',
                                                                      wall_s=5.0)))
            np.savez_compressed(run / 'eval' / 'keypoints.npz', img_ids=np.arange(n_instances),
                                scores=scores, dists=dists, visible=labelled,
                                curve_thresholds=CURVE_THR, curve=curve)
            per_joint = {}
            for j, name in enumerate(joints):
                col = dists[labelled[:, j], j]
                per_joint[name] = float((col <= 0.1).mean()) if col.size else -1.0
            pck = {f'PCK@{t:g}': float((valid <= t).mean()) for t in THRESHOLDS}
            ap = float(pck['PCK@0.1'] * 0.9)
            metrics = dict(status='ok', method=method, seed=seed, **pck, AUC=float(curve.mean()),
                           EPE=float(valid.mean() * 100), AP=ap, AP50=min(1.0, ap + 0.1),
                           AP75=ap - 0.1, per_joint_pck=dict(sorted(per_joint.items())))
            (run / 'metrics.json').write_text(json.dumps(metrics, indent=2, sort_keys=True))

            e = np.arange(1, epochs + 1)
            live = run / 'live' / 'plots' / 'metrics'
            final_pck = pck['PCK@0.1']
            _tsv(live / 'val' / 'PCK.tsv', 'PCK',
                 final_pck * (1 - np.exp(-e / 1.5)) + rng.normal(0, 0.01, epochs))
            _tsv(live / 'val' / 'EPE.tsv', 'EPE', 10 * np.exp(-e / 3) + metrics['EPE'])
            _tsv(live / 'val' / 'coco' / 'AP.tsv', 'AP', ap * (1 - np.exp(-e / 2)))
            _tsv(live / 'train' / 'loss.tsv', 'loss', np.exp(-e / 2) + 0.1)
            _tsv(live / 'train' / 'loss_kpt.tsv', 'loss_kpt', np.exp(-e / 2) + 0.1)
            if kind == 'classification':
                _tsv(live / 'train' / 'bg_part.tsv', 'bg_part', 0.05 * np.exp(-e / 2) + 0.01)
                _tsv(live / 'train' / 'fg_part.tsv', 'fg_part', 2 * np.exp(-e / 3) + 0.3)

            snaps = run / 'snapshots'
            snaps.mkdir(exist_ok=True)
            for ep in sorted({*snapshot_epochs, epochs}):
                srng = np.random.default_rng([zlib.crc32(method.encode()), seed, ep])
                np.savez_compressed(snaps / f'epoch_{ep:03d}.npz',
                                    **_snapshot(srng, kind, quality, k, n_images, ep, epochs))
    return root


# ---------------------------------------------------------------------------------- fixtures

BASE_METHODS = ('regression', 'cls_ohem', 'cls_balanced')


@pytest.fixture(scope='module')
def base_params():
    return load_params(ROOT / 'params.yaml')


def make_params(base, methods=BASE_METHODS, seeds=(0, 1, 2), **report):
    return base.model_copy(update=dict(
        active_methods=tuple(methods), seeds=tuple(seeds),
        report=base.report.model_copy(update=dict(n_bootstrap=999, **report))))


@pytest.fixture(scope='module')
def study3(tmp_path_factory, base_params):
    """3 methods × 3 seeds, reported once."""
    root = tmp_path_factory.mktemp('report3')
    make_fake_runs(root / 'runs', BASE_METHODS, (0, 1, 2))
    (root / 'data').mkdir()
    (root / 'data' / 'timing.json').write_text(json.dumps(dict(stage='data', wall_s=12.0)))
    report.run(make_params(base_params), runs_root=root / 'runs', out_dir=root / 'reports')
    return root


def _metrics(params) -> list[str]:
    return collect.metric_names(params.eval.pck_thresholds, params.report.pck_reach)


# ------------------------------------------------------------------------------------- tests

def test_every_output_exists(study3):
    out = study3 / 'reports'
    for name in ('README.md', 'summary.csv', 'summary.md', 'comparison.csv', 'comparison.md',
                 'per_joint.csv', 'per_joint.md', 'runs.csv', 'metrics.json'):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (out / 'figures' / name).stat().st_size > 5000, name
    readme = (out / 'README.md').read_text()
    for name in FIGURES:
        assert f'](figures/{name})' in readme
    for section in ('## Research question', '## Setup', '## Results', '## Failed runs',
                    '## Conclusion (generated)', '## Per keypoint'):
        assert section in readme
    assert 'mmpose 1.3.2' in readme


def test_summary_and_comparison_tables(study3, base_params):
    out = study3 / 'reports'
    metrics = _metrics(base_params)
    summary = pd.read_csv(out / 'summary.csv')
    assert len(summary) == len(BASE_METHODS) * len(metrics)
    assert set(zip(summary.method, summary.metric)) == {(m, k) for m in BASE_METHODS
                                                        for k in metrics}
    head = summary[summary.metric == 'PCK@0.1'].set_index('method')
    assert (head['n'] == 3).all()
    assert (head['ci_low'] <= head['mean']).all() and (head['mean'] <= head['ci_high']).all()
    # the built-in effect: both classification methods beat the regression baseline
    assert (head.loc[['cls_ohem', 'cls_balanced'], 'mean'] > head.loc['regression', 'mean']).all()

    comp = pd.read_csv(out / 'comparison.csv')
    assert len(comp) == 2 * len(metrics)
    assert set(comp.variant) == {'cls_ohem', 'cls_balanced'} and set(comp.baseline) == {'regression'}
    assert {'p_holm', 'p_permutation', 'p_ttest', 'min_attainable_p', 'prob_improvement',
            'image_diff', 'image_ci_low', 'image_ci_high', 'image_p'} <= set(comp.columns)
    pck = comp[comp.metric == 'PCK@0.1']
    assert (pck['n'] == 3).all() and (pck['mean_diff'] > 0).all()
    assert (pck['p_holm'] >= pck['p_permutation']).all()
    assert np.allclose(pck['min_attainable_p'], 0.25)
    assert pck['image_p'].notna().all() and (pck['image_diff'] > 0).all()
    assert comp.loc[comp.metric != 'PCK@0.1', 'image_p'].isna().all()

    per_joint = pd.read_csv(out / 'per_joint.csv')
    assert len(per_joint) == 17 * 3
    assert list(dict.fromkeys(per_joint.joint))[:3] == ['nose', 'left_eye', 'right_eye']
    runs = pd.read_csv(out / 'runs.csv')
    assert len(runs) == 9 and (runs.status == 'ok').all()
    assert (runs.eval_wall_s == 5.0).all()
    dvc_metrics = json.loads((out / 'metrics.json').read_text())
    assert set(dvc_metrics) == set(BASE_METHODS)
    assert dvc_metrics['cls_ohem']['PCK@0.1'] == pytest.approx(head.loc['cls_ohem', 'mean'],
                                                                abs=1e-5)
    readme = (out / 'README.md').read_text()
    assert 'no exact test can go below p=0.25' in readme
    assert 'Classification (CE + OHEM 1:3) vs Regression (MSE) on PCK@0.1' in readme
    # per-stage wall time of `dvc repro`: data 12 s + 9 trainings + 9 evaluations of 5 s
    train_total = runs.wall_s.sum()
    assert re.search(r'\| wall time: data +\| 12 s ', readme)
    assert re.search(r'\| wall time: evaluate +\| 45 s for 9 run\(s\), 5 s per run ', readme)
    assert re.search(rf'\| wall time: total +\| {12 + 45 + train_total:.0f} s ', readme)


def test_report_is_deterministic(study3, base_params, tmp_path):
    report.run(make_params(base_params), runs_root=study3 / 'runs', out_dir=tmp_path)
    for name in (*report.CSV_FILES, *report.MD_FILES, 'README.md', 'metrics.json',
                 *(f'figures/{f}' for f in FIGURES)):
        assert (tmp_path / name).read_bytes() == (study3 / 'reports' / name).read_bytes(), name


def test_fourth_method_adds_rows_and_a_heatmap_column(study3, base_params, tmp_path):
    runs = tmp_path / 'runs'
    shutil.copytree(study3 / 'runs', runs)
    make_fake_runs(runs, ['regression_ohkm'], (0, 1, 2))
    methods = (*BASE_METHODS, 'regression_ohkm')
    report.run(make_params(base_params, methods), runs_root=runs, out_dir=tmp_path / 'out')
    summary = pd.read_csv(tmp_path / 'out' / 'summary.csv')
    assert len(summary) == 4 * len(_metrics(base_params))
    assert 'regression_ohkm' in set(pd.read_csv(tmp_path / 'out' / 'comparison.csv').variant)
    assert 'Regression (OHKM-MSE)' in (tmp_path / 'out' / 'README.md').read_text()
    # one more column (regression: no background column) -> a wider figure, same height
    w3 = mpimg.imread(study3 / 'reports' / 'figures' / 'heatmaps.png').shape
    w4 = mpimg.imread(tmp_path / 'out' / 'figures' / 'heatmaps.png').shape
    assert w4[1] > w3[1] + 100 and abs(w4[0] - w3[0]) < 40


def test_single_seed(base_params, tmp_path):
    make_fake_runs(tmp_path / 'runs', BASE_METHODS, (0,))
    report.run(make_params(base_params, seeds=(0,)), runs_root=tmp_path / 'runs',
               out_dir=tmp_path / 'out')
    summary = pd.read_csv(tmp_path / 'out' / 'summary.csv')
    assert (summary['n'].isin([0, 1])).all()
    assert summary[['std', 'ci_low', 'ci_high']].isna().all().all()
    comp = pd.read_csv(tmp_path / 'out' / 'comparison.csv')
    assert comp['p_permutation'].isna().all() and comp['p_holm'].isna().all()
    readme = (tmp_path / 'out' / 'README.md').read_text()
    assert 'Confidence intervals are unavailable' in readme
    assert 'inconclusive' in readme


def test_diverged_run_is_excluded_and_listed(base_params, tmp_path):
    make_fake_runs(tmp_path / 'runs', BASE_METHODS, (0, 1, 2), diverged={('cls_ohem', 1)})
    report.run(make_params(base_params), runs_root=tmp_path / 'runs', out_dir=tmp_path / 'out')
    out = tmp_path / 'out'
    summary = pd.read_csv(out / 'summary.csv')
    n = summary[summary.metric == 'PCK@0.1'].set_index('method')['n']
    assert n['cls_ohem'] == 2 and n['regression'] == 3
    comp = pd.read_csv(out / 'comparison.csv').set_index(['variant', 'metric'])
    assert comp.loc[('cls_ohem', 'PCK@0.1'), 'n'] == 2           # paired on seeds 0 and 2
    assert comp.loc[('cls_balanced', 'PCK@0.1'), 'n'] == 3
    runs = pd.read_csv(out / 'runs.csv')
    failed = runs[runs.status != 'ok']
    assert list(zip(failed.method, failed.seed)) == [('cls_ohem', 1)]
    readme = (out / 'README.md').read_text()
    failed_section = readme.split('## Failed runs')[1].split('## ')[0]
    assert 'loss is NaN at epoch 2' in failed_section and 'diverged' in failed_section


def test_missing_run_folder_is_a_one_line_error(base_params, tmp_path):
    make_fake_runs(tmp_path / 'runs', BASE_METHODS, (0, 2))
    with pytest.raises(RunError) as exc:
        report.run(make_params(base_params), runs_root=tmp_path / 'runs',
                   out_dir=tmp_path / 'out')
    msg = str(exc.value)
    assert 'regression/seed1' in msg and '\n' not in msg
    assert not (tmp_path / 'out' / 'README.md').exists()


def test_headline_metric_must_be_a_report_metric(base_params, tmp_path):
    from bench.params import ParamsError
    make_fake_runs(tmp_path / 'runs', ['regression'], (0,))
    with pytest.raises(ParamsError, match='headline_metric'):
        report.run(make_params(base_params, ['regression'], (0,), headline_metric='PCK@0.3'),
                   runs_root=tmp_path / 'runs', out_dir=tmp_path / 'out')
