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
from bench.runs import RunPaths

COCO_JOINTS = ['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
               'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
               'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle']
# method -> (formulation, error scale of its keypoints: smaller = better)
KINDS = {'regression': ('regression', 0.11), 'regression_dark': ('regression', 0.105),
         'regression_ohkm': ('regression', 0.10),
         'cls_ohem': ('classification', 0.07), 'cls_weighted': ('classification', 0.08),
         'cls_focal': ('classification', 0.075)}
THRESHOLDS = (0.05, 0.1, 0.2)
CURVE_THR = np.arange(50) / 50 * 0.5                 # KeypointRecorder's curve
COCO_SIGMAS = np.array([.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, 1.07,
                        1.07, .087, .087, .089, .089]) / 10


def mmpose_pck(dists: np.ndarray, t: float) -> float:
    """MMPose's PCK from (N, K) normalised distances (-1: unlabelled): per keypoint type the
    share strictly below t, then the mean over the keypoint types labelled at least once."""
    lab = dists >= 0
    per_joint = [(dists[lab[:, j], j] < t).mean() for j in range(dists.shape[1]) if lab[:, j].any()]
    return float(np.mean(per_joint))


def _dump(rng, labelled, difficulty, quality, kind, n_instances, k):
    """(dists, scores) of one run on one split, as KeypointRecorder dumps them."""
    dists = np.abs(rng.normal(0, quality, size=(n_instances, k))) * difficulty
    dists = np.where(labelled, dists, -1.0)
    hit = labelled & (dists < 0.1)
    if kind == 'classification':
        scores = np.clip(0.25 + 0.6 * hit + rng.normal(0, 0.15, dists.shape), 0, 1)
    else:
        scores = 0.3 + 0.5 * hit + rng.normal(0, 0.2, dists.shape)
    return dists, scores


def _pixel_bins(rng, quality):
    """A per-pixel reliability histogram (eval/pixel_calibration.npz), slightly overconfident."""
    edges = np.linspace(0, 1, 21)
    mid = (edges[:-1] + edges[1:]) / 2
    count = np.stack([np.r_[np.full(19, 50), 4000], np.r_[60000, np.full(19, 40)]]).astype(int)
    target = np.clip(mid - quality * (mid - 0.5), 0, 1)        # less extreme than predicted
    sum_pred = count * mid
    sum_target = count * target * (1 + 0.01 * rng.standard_normal(count.shape))
    ece = np.abs(sum_pred.sum(0) - sum_target.sum(0)).sum() / count.sum()
    return dict(edges=edges, count=count, sum_pred=sum_pred, sum_target=sum_target,
                ece=np.asarray(ece))


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
    visible = np.ones(gt.shape[:2], bool)
    visible[:, 0] = False                          # an unlabelled keypoint is not drawn
    return dict(images=images, heatmaps=heatmaps.astype(np.float32), keypoints=pred, gt=gt,
                gt_visible=visible,
                epoch=epoch)


def make_fake_runs(root: Path, methods, seeds, *, k: int = 17, n_instances: int = 40,
                   epochs: int = 6, snapshot_epochs=(1, 3), n_images: int = 3,
                   diverged=(), never_reach=()) -> Path:
    """Write the runs under ``root`` (a ``runs/`` folder) as the train and evaluate stages
    would, in what the report reads: ``eval/<method>/seed<k>/`` (train_status.json,
    metrics.json, keypoints.npz and keypoints_val.npz, pixel_calibration.npz for
    classification), ``live/...`` (DVCLive TSVs) and ``snapshots/...``; never ``train/``.
    Classification methods are built to be better (smaller keypoint errors); ``diverged``:
    (method, seed) pairs that fail; ``never_reach``: (method, seed) pairs whose validation PCK
    stays below 0.5.
    """
    joints = COCO_JOINTS[:k] if k <= len(COCO_JOINTS) else [f'kp{j}' for j in range(k)]
    common = np.random.default_rng(1234)           # the shared test set: same labels, difficulty
    labelled = common.random((n_instances, k)) > 0.15
    difficulty = common.uniform(0.5, 1.5, size=(n_instances, 1))
    val_labelled = common.random((n_instances, k)) > 0.15
    val_difficulty = common.uniform(0.5, 1.5, size=(n_instances, 1))
    areas = common.uniform(1000, 2500, size=n_instances)     # stickman-like: small figures
    sigmas = COCO_SIGMAS[:k] if k <= len(COCO_SIGMAS) else np.full(k, 0.05)
    for method in methods:
        kind, quality = KINDS[method]
        for seed in seeds:
            paths = RunPaths(method, seed, root)
            run = paths.eval
            rng = np.random.default_rng([zlib.crc32(method.encode()), seed])
            run.mkdir(parents=True, exist_ok=True)
            if (method, seed) in diverged:
                msg = f'{method}/seed{seed}: loss is NaN at epoch 2, iteration 7'
                (run / 'train_status.json').write_text(json.dumps(
                    dict(status='diverged', message=msg)))
                (run / 'metrics.json').write_text(json.dumps(
                    dict(status='diverged', method=method, seed=seed, message=msg)))
                continue
            (run / 'train_status.json').write_text(json.dumps(
                dict(status='ok', epochs=epochs, wall_s=round(60 + 10 * rng.random(), 1))))
            q = quality * (1 + 0.08 * rng.standard_normal())
            dists, scores = _dump(rng, labelled, difficulty, q, kind, n_instances, k)
            valid = dists[labelled]
            curve = np.array([mmpose_pck(dists, t) for t in CURVE_THR])
            bbox = np.full(n_instances, 60.0)
            px = np.clip(dists, 0, None) * bbox[:, None]
            oks = np.array([np.exp(-px[i, lab] ** 2 / (2 * areas[i] * (2 * sigmas[lab]) ** 2))
                            .mean() for i, lab in enumerate(labelled)])
            (run / 'timing.json').write_text(json.dumps(dict(stage='evaluate',
                                                                      wall_s=5.0)))
            np.savez_compressed(run / 'keypoints.npz', img_ids=np.arange(n_instances),
                                scores=scores, dists=dists, visible=labelled,
                                curve_thresholds=CURVE_THR, curve=curve, oks=oks, areas=areas,
                                bbox_size=bbox, heatmap_px=np.full(n_instances, 7.3),
                                sigmas=sigmas)
            v_dists, v_scores = _dump(rng, val_labelled, val_difficulty, q, kind, n_instances, k)
            np.savez_compressed(run / 'keypoints_val.npz',
                                img_ids=np.arange(n_instances), scores=v_scores, dists=v_dists,
                                visible=val_labelled)
            per_joint = {}
            for j, name in enumerate(joints):
                col = dists[labelled[:, j], j]
                per_joint[name] = float((col < 0.1).mean()) if col.size else -1.0
            pck = {f'PCK@{t:g}': mmpose_pck(dists, t) for t in THRESHOLDS}
            ap = float(pck['PCK@0.1'] * 0.9)
            metrics = dict(status='ok', method=method, seed=seed, **pck, AUC=float(curve.mean()),
                           EPE=float(valid.mean() * 100), mean_OKS=float(oks.mean()), AP=ap,
                           AP50=min(1.0, ap + 0.1), AP75=ap - 0.1,
                           per_joint_pck=dict(sorted(per_joint.items())))
            if kind == 'classification':
                bins = _pixel_bins(rng, quality)
                np.savez_compressed(run / 'pixel_calibration.npz', **bins)
                metrics['pixel_ECE'] = round(float(bins['ece']), 6)
            (run / 'metrics.json').write_text(json.dumps(metrics, indent=2, sort_keys=True))

            e = np.arange(1, epochs + 1)
            live = paths.live / 'plots' / 'metrics'
            final_pck = pck['PCK@0.1'] if (method, seed) not in never_reach else 0.3
            _tsv(live / 'val' / 'PCK.tsv', 'PCK',
                 final_pck * (1 - np.exp(-e / 1.5)) + rng.normal(0, 0.01, epochs))
            _tsv(live / 'val' / 'EPE.tsv', 'EPE', 10 * np.exp(-e / 3) + metrics['EPE'])
            _tsv(live / 'val' / 'coco' / 'AP.tsv', 'AP', ap * (1 - np.exp(-e / 2)))
            _tsv(live / 'train' / 'loss.tsv', 'loss', np.exp(-e / 2) + 0.1)
            _tsv(live / 'train' / 'loss_kpt.tsv', 'loss_kpt', np.exp(-e / 2) + 0.1)
            if kind == 'classification':
                _tsv(live / 'train' / 'bg_part.tsv', 'bg_part', 0.05 * np.exp(-e / 2) + 0.01)
                _tsv(live / 'train' / 'fg_part.tsv', 'fg_part', 2 * np.exp(-e / 3) + 0.3)
                _tsv(live / 'train' / 'bg_kept.tsv', 'bg_kept', np.ones(epochs))

            snaps = paths.snapshots
            snaps.mkdir(parents=True, exist_ok=True)
            for ep in sorted({*snapshot_epochs, epochs}):
                srng = np.random.default_rng([zlib.crc32(method.encode()), seed, ep])
                np.savez_compressed(snaps / f'epoch_{ep:03d}.npz',
                                    **_snapshot(srng, kind, quality, k, n_images, ep, epochs))
    return root


# ---------------------------------------------------------------------------------- fixtures

BASE_METHODS = ('regression', 'cls_ohem', 'cls_weighted')


@pytest.fixture(scope='module')
def base_params():
    return load_params(ROOT / 'params.yaml')


def make_params(base, methods=BASE_METHODS, seeds=(0, 1, 2), **report):
    report = {'baseline': 'regression', 'n_bootstrap': 999, **report}
    return base.model_copy(update=dict(
        active_methods=tuple(methods), seeds=tuple(seeds),
        report=base.report.model_copy(update=report)))


def label(params, method: str) -> str:
    return params.methods[method].label or method


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
    assert not (study3 / 'runs' / 'train').exists()  # the report never reads the checkpoints
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
    assert (head.loc[['cls_ohem', 'cls_weighted'], 'mean'] > head.loc['regression', 'mean']).all()

    comp = pd.read_csv(out / 'comparison.csv')
    # every metric but the per-pixel ECE, which the regression baseline does not have, and
    # ECE_raw, which the report calls not comparable across formulations
    assert len(comp) == 2 * (len(metrics) - 2) and not {'pixel_ECE', 'ECE_raw'} & set(comp.metric)
    # one confirmatory family: the headline metric's; every other test is exploratory
    assert set(comp.loc[comp.metric == 'PCK@0.1', 'family']) == {'confirmatory'}
    assert set(comp.loc[comp.metric != 'PCK@0.1', 'family']) == {'exploratory'}
    assert set(comp.variant) == {'cls_ohem', 'cls_weighted'}
    assert set(comp.baseline) == {'regression'}
    assert {'p_holm', 'p_permutation', 'p_ttest', 'min_attainable_p', 'seed_win_rate',
            'n_censored', 'image_diff', 'image_ci_low', 'image_ci_high',
            'image_p'} <= set(comp.columns)
    assert 'prob_improvement' not in comp.columns
    pck = comp[comp.metric == 'PCK@0.1']
    assert (pck['n'] == 3).all() and (pck['mean_diff'] > 0).all()
    assert (pck['p_holm'] >= pck['p_permutation']).all()
    assert np.allclose(pck['min_attainable_p'], 0.25)
    # Holm over the 2 variants doubles the floor; the CI half-width is half the CI
    assert np.allclose(pck['min_attainable_p_holm'], 0.5)
    assert np.allclose(pck['ci_half_width'], (pck['ci_high'] - pck['ci_low']) / 2)
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
    assert 'and Holm over 2 variants no exact test can go below p=0.5' in readme
    # (the variant's name carries what its mechanisms were: test_report_names_mechanisms...)
    assert (f'{label(base_params, "cls_ohem")} (in this regime: mining kept ≥ 99% of the '
            f'background: plain CE on these targets) vs {label(base_params, "regression")} on '
            'PCK@0.1') in readme
    assert 'seed win rate' in readme and 'P(better)' not in readme
    # per-stage wall time of `dvc repro`: data 12 s + 9 trainings + 9 evaluations of 5 s
    train_total = runs.wall_s.sum()
    assert re.search(r'\| wall time: data +\| 12 s ', readme)
    assert re.search(r'\| wall time: evaluate +\| 45 s for 9 run\(s\), 5 s per run ', readme)
    assert re.search(rf'\| wall time: total +\| {12 + 45 + train_total:.0f} s ', readme)


def test_report_names_mechanisms_that_did_not_act(study3, base_params):
    """Mining that kept all the background (cls_ohem's logged bg_kept is 1 at every epoch) and
    a class-weighted loss whose parts sat ~100x apart get a warning each, and the conclusion
    names those methods for what they were; every generated markdown file is free of template
    residue."""
    out = study3 / 'reports'
    readme = (out / 'README.md').read_text()
    ohem, weighted = label(base_params, 'cls_ohem'), label(base_params, 'cls_weighted')
    assert f'> **Warning — {ohem}**: mining kept ≥ 99% of the background' in readme
    assert f'> **Warning — {weighted}**: its parts were up to' in readme
    conclusion = readme[readme.index('## Conclusion'):]
    assert f'{ohem} (in this regime: mining kept ≥ 99% of the background: plain CE' in conclusion
    assert f'{weighted} (in this regime: its parts were up to' in conclusion
    for md in out.glob('*.md'):
        residue = re.findall(r'\{[A-Za-z_][A-Za-z_0-9.]*\}', md.read_text())
        assert not residue, f'{md.name}: unformatted template field(s) {residue}'


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
    assert label(base_params, 'regression_ohkm') in (tmp_path / 'out' / 'README.md').read_text()
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
    assert comp.loc[('cls_weighted', 'PCK@0.1'), 'n'] == 3
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
    assert 'evaluate@regression`' in msg
    assert not (tmp_path / 'out' / 'README.md').exists()


def test_headline_metric_must_be_a_report_metric(base_params, tmp_path):
    from bench.params import ParamsError
    make_fake_runs(tmp_path / 'runs', ['regression'], (0,))
    with pytest.raises(ParamsError, match='headline_metric'):
        report.run(make_params(base_params, ['regression'], (0,), headline_metric='PCK@0.3'),
                   runs_root=tmp_path / 'runs', out_dir=tmp_path / 'out')


# ------------------------------------------------------------------ issue 15: what the scores mean

def test_summary_cis_are_at_least_the_t_interval_of_runs_csv(study3, base_params):
    """Acceptance: every summary CI is at least as wide as the Student-t interval of the
    per-seed values that runs.csv lists."""
    from scipy import stats as sps
    out = study3 / 'reports'
    summary = pd.read_csv(out / 'summary.csv')
    runs = pd.read_csv(out / 'runs.csv')
    checked = 0
    for row in summary.itertuples():
        values = runs.loc[(runs.method == row.method) & (runs.status == 'ok'), row.metric]
        values = values[np.isfinite(values)].to_numpy(float)
        if len(values) < 2 or np.ptp(values) == 0:
            continue
        lo, hi = sps.t.interval(0.95, len(values) - 1, loc=values.mean(),
                                scale=sps.sem(values))
        tol = 1e-5 * max(1.0, abs(values).max())          # runs.csv holds %.6g values
        assert row.ci_low <= lo + tol and row.ci_high >= hi - tol, (row.method, row.metric)
        checked += 1
    assert checked >= 3 * 10


def test_summary_has_auroc_mean_oks_and_confidence_columns(study3, base_params):
    out = study3 / 'reports'
    summary = pd.read_csv(out / 'summary.csv')
    assert {'median', 'n_censored'} <= set(summary.columns)
    s = summary.set_index(['method', 'metric'])
    for m in BASE_METHODS:
        for metric in ('AUROC', 'mean_OKS', 'ECE_cal', 'Brier_cal', 'ECE_raw'):
            assert s.loc[(m, metric), 'n'] == 3 and np.isfinite(s.loc[(m, metric), 'mean'])
        assert 0.5 < s.loc[(m, 'AUROC'), 'mean'] <= 1          # the fake scores track hits
    # the per-pixel ECE exists for the classification heads only
    assert s.loc[('regression', 'pixel_ECE'), 'n'] == 0
    assert s.loc[('cls_ohem', 'pixel_ECE'), 'n'] == 3
    runs = pd.read_csv(out / 'runs.csv')
    assert {'AUROC', 'mean_OKS', 'PCK@0.1', 'epochs_to_PCK0.5'} <= set(runs.columns)
    readme = (out / 'README.md').read_text()
    assert '### What each score is' in readme
    assert '](figures/pixel_calibration.png)' in readme and 'ECE_raw' in readme
    assert (out / 'figures' / 'pixel_calibration.png').stat().st_size > 5000


def test_image_bootstrap_estimates_the_headline_statistic(study3, base_params):
    """Acceptance: the bootstrap's point estimate is the headline PCK's own difference."""
    comp = pd.read_csv(study3 / 'reports' / 'comparison.csv')
    head = comp[comp.metric == base_params.report.headline_metric]
    assert len(head) == 2
    np.testing.assert_allclose(head['image_diff'], head['mean_diff'], rtol=1e-5, atol=1e-9)


def test_ap_resolution_flag(study3):
    out = study3 / 'reports'
    ap = pd.read_csv(out / 'ap_resolution.csv')
    assert set(ap.method) == set(BASE_METHODS)
    # areas 1000-2500 px², COCO sigmas, 7.3 image px per heatmap pixel: below one pixel
    assert (ap.median_ratio < 1).all() and (~ap.ap_separates.astype(bool)).all()
    assert 'AP cannot separate the methods at this resolution' in (out / 'README.md').read_text()


def test_runs_that_never_reach_are_censored_not_dropped(base_params, tmp_path):
    make_fake_runs(tmp_path / 'runs', BASE_METHODS, (0, 1, 2),
                   never_reach={('cls_ohem', 1)})
    report.run(make_params(base_params), runs_root=tmp_path / 'runs', out_dir=tmp_path / 'out')
    out = tmp_path / 'out'
    summary = pd.read_csv(out / 'summary.csv').set_index(['method', 'metric'])
    row = summary.loc[('cls_ohem', 'epochs_to_PCK0.5')]
    assert row['n'] == 3 and row['n_censored'] == 1          # counted, not dropped
    assert row['mean'] == np.inf and np.isfinite(row['median'])
    runs = pd.read_csv(out / 'runs.csv').set_index(['method', 'seed'])
    assert runs.loc[('cls_ohem', 1), 'epochs_to_PCK0.5'] == np.inf
    comp = pd.read_csv(out / 'comparison.csv').set_index(['variant', 'metric'])
    assert comp.loc[('cls_ohem', 'epochs_to_PCK0.5'), 'n_censored'] == 1
    readme = (out / 'README.md').read_text()
    assert '(1/3 never)' in readme


def test_ap_tolerance_by_hand():
    from bench.report.ap_resolution import ap_resolution, oks_tolerance_px
    # the example: an eye (COCO sigma 0.025) of a stickman of area 1631 px²
    tol = oks_tolerance_px([0.025], [1631.0])[0, 0]
    assert np.exp(-tol ** 2 / (2 * 1631.0 * (2 * 0.025) ** 2)) == pytest.approx(0.5)
    assert tol == pytest.approx(2.38, abs=0.01)               # < 7.3 px per heatmap pixel
    dump = dict(sigmas=np.array([0.025, 0.107]), areas=np.array([1631.0, 1631.0]),
                heatmap_px=np.array([7.3, 7.3]), dists=np.array([[0.1, 0.2], [-1.0, 0.3]]))
    r = ap_resolution(dump)
    assert r['n'] == 3 and r['share_below_one'] == pytest.approx(1 / 3)   # the eye only
    assert r['median_ratio'] > 1                               # the hips tolerate ~10 px
    assert ap_resolution({'dists': dump['dists']})['n'] == 0   # no sigmas: no verdict


def test_heatmap_figure_draws_perfect_maps_of_both_formulations_at_the_same_peak():
    """Like for like: a perfectly predicted classification map (the codec's own K+1 target) and
    a perfectly predicted regression map (DARK's unbiased Gaussians) of the same keypoints draw
    at the same peak value per keypoint, although crowding keypoints share the classification
    probabilities (P_j's own peaks sit well below the Gaussians')."""
    from mmpose.codecs import MSRAHeatmap

    from bench.codecs import PixelClassLabel
    from bench.report.figures import keypoint_map
    kpts = np.array([[[20.0, 20.0], [21.5, 20.5], [40.5, 44.25]]])  # two crowd, one alone
    vis = np.ones((1, 3))
    cls = PixelClassLabel(input_size=(64, 64), heatmap_size=(64, 64), sigma=1.5)
    reg = MSRAHeatmap(input_size=(64, 64), heatmap_size=(64, 64), sigma=1.5, unbiased=True)
    probs = cls.encode(kpts, vis)['heatmaps']                  # (K+1, H, W)
    gauss = reg.encode(kpts, vis)['heatmaps']                  # (K, H, W)
    # float32 targets: equal to 1e-5
    np.testing.assert_allclose(keypoint_map(probs, True), keypoint_map(gauss, False), atol=1e-5)
    assert probs[1:3].max() < 0.8 * gauss[:2].max()  # what the old figure drew: P_j, dimmer


def test_per_joint_differences_carry_their_paired_cis(study3, base_params):
    """Each variant's per-keypoint Δ comes with the Student-t CI of the seed-paired
    differences, recomputed here from the runs' own metrics files; the table shows it and the
    figure's cells say it (starred where the CI excludes 0)."""
    from scipy import stats as sps

    from bench.report.figures import per_joint_annotations
    out = study3 / 'reports'
    pj = pd.read_csv(out / 'per_joint.csv')
    joint = 'left_ankle'

    def pck(method):
        return np.array([json.loads((RunPaths(method, s, study3 / 'runs').eval / 'metrics.json')
                                    .read_text())['per_joint_pck'][joint] for s in (0, 1, 2)])
    d = pck('cls_ohem') - pck('regression')
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    row = pj[(pj.method == 'cls_ohem') & (pj.joint == joint)].iloc[0]
    assert row.diff_n == 3
    assert row.diff_vs_baseline == pytest.approx(d.mean(), abs=1e-5)
    assert (row.diff_ci_low, row.diff_ci_high) == pytest.approx((d.mean() - half,
                                                                 d.mean() + half), abs=1e-5)
    assert pj.loc[pj.method == 'regression', 'diff_ci_low'].isna().all()  # the baseline
    md = (out / 'per_joint.md').read_text()
    assert f'Δ {label(base_params, "cls_ohem")} [CI]' in md
    assert f'[{row.diff_ci_low:+.3f}, {row.diff_ci_high:+.3f}]' in md
    cells = per_joint_annotations(pj, ['cls_ohem'], [joint])
    star = '*' if row.diff_ci_low > 0 or row.diff_ci_high < 0 else ''
    assert cells[0, 0] == f'{row.diff_vs_baseline:+.2f}{star}\n±{half:.2f}'


def test_no_bold_in_a_column_where_every_method_ties():
    """Bold marks the best mean of a column, unless every method shares it (a column that
    cannot separate the methods: 'epochs to reach' resolved only at the validation epochs)."""
    from bench.report.tables import main_markdown
    rows = []
    for m, pck in (('a', 0.7), ('b', 0.6)):
        rows.append(dict(method=m, label=m.upper(), metric='PCK@0.1', mean=pck, median=pck,
                         ci_low=pck - 0.01, ci_high=pck + 0.01, n=3, n_censored=0))
        rows.append(dict(method=m, label=m.upper(), metric='epochs_to_PCK0.5', mean=7.0,
                         median=7.0, ci_low=np.nan, ci_high=np.nan, n=3, n_censored=0))
    md = main_markdown(pd.DataFrame(rows), ['PCK@0.1', 'epochs_to_PCK0.5'], ['a', 'b'])
    assert '**0.700**' in md and '**7.0**' not in md and md.count('**') == 2


def test_the_metric_table_decides_the_comparison_figure():
    """One table of metrics: the comparison figure's panels come from it, the headline
    first and never twice."""
    from bench.report import metric_table as T
    assert T.figure_names('PCK@0.1') == ['PCK@0.1', 'AUC', 'AP', 'EPE']
    assert T.figure_names('AP') == ['AP', 'AUC', 'EPE']
    drawn = {m.name for m in T.METRICS if m.figure is not None}
    assert all(T.lookup(n).comparable for n in drawn)  # only what compares across formulations
