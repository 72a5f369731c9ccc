"""Stage ``report``: every run → ``reports/`` (tables, figures, the generated ``README.md``).

Reads ``runs/eval/``, ``runs/live/`` and ``runs/snapshots/`` (``<kind>/<method>/seed<k>/``, never
the checkpoints of ``runs/train/``) for every active method × seed (:mod:`bench.report.collect`),
computes the statistics (:mod:`bench.report.tables` through :mod:`bench.report.stats`), draws
the figures (:mod:`bench.report.figures`) and writes:

- ``summary.csv|md``: per method × metric mean, std, Student-t CI, median, n (seeds),
  n_censored (runs that never reached an "epochs to reach" level);
- ``comparison.csv|md``: every variant vs ``report.baseline`` paired by seed, Holm-adjusted,
  plus the paired bootstrap over test instances of the headline statistic;
- ``per_joint.csv|md``: PCK@0.1 per keypoint and method; ``runs.csv``: every run's status,
  wall time and value of every metric (failed runs included, with their message);
- ``metrics.json``: {method: {metric: mean}} (DVC metrics);
- ``ap_resolution.csv``: per method, AP's keypoint tolerance against one heatmap pixel
  (:mod:`bench.report.ap_resolution`; the README flags AP when it cannot separate methods);
- ``cost.csv``: per method, parameters and FLOPs (head, whole network), training step and
  inference times, the headline metric per GFLOP (:mod:`bench.report.cost`);
- ``tuning.csv``: the learning rate each method trained with, and the trials when tuning is on
  (:mod:`bench.report.tuning`);
- ``resolution.csv`` and ``figures/resolution.png``: the paired difference to the baseline at
  each geometry of the resolution axis (:mod:`bench.report.resolution`);
- ``figures/*.png`` (:data:`bench.report.figures.FIGURES`) and ``README.md``.

Deterministic: bootstrap and permutation seeds are fixed, every iteration is sorted and the
README holds no timestamp, so the same runs give byte-identical CSV/Markdown files. Every
number in the README is formatted from the DataFrames written to the CSVs.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
from pathlib import Path

import pandas as pd

from bench.params import Params, ParamsError, workdir
from bench.report import (collect, cost, instrument, resolution, scores, sections, tables,
                          tuning)
from bench.report.stats import significance_sentence
from bench.stages import common

SOFTWARE = ('torch', 'mmengine', 'mmcv', 'mmpose', 'dvc', 'numpy')
CSV_FILES = ('summary.csv', 'comparison.csv', 'per_joint.csv', 'runs.csv')
MD_FILES = ('summary.md', 'comparison.md', 'per_joint.md')


def _joint_names(params: Params) -> list[str] | None:
    """Keypoint names in dataset order, from ``data.metainfo`` (None when unavailable)."""
    try:
        from bench.data.layout import joint_names
        return joint_names(params.data.metainfo)
    except Exception:  # noqa: BLE001 -- ordering is cosmetic: fall back to metrics.json order
        return None


def main_metrics(params: Params) -> list[str]:
    """The metrics of the README's main table."""
    return [*(collect.pck_metric(t) for t in params.eval.pck_thresholds), 'AUC', 'EPE', 'AP',
            'mean_OKS', 'AUROC', 'ECE_cal', collect.reach_metric(params.report.pck_reach)]


def run(params: Params, runs_root: str | Path | None = None,
        out_dir: str | Path | None = None) -> None:
    """Build the report from ``runs_root`` (default ``<workdir>/runs``) into ``out_dir``
    (default ``<workdir>/reports``).

    Raises:
        RunError: a run folder (or one of its required files) is missing.
        ParamsError: ``report.headline_metric`` is not one of the report's metrics.
    """
    runs_root = Path(runs_root) if runs_root is not None else common.runs_root()
    out_dir = Path(out_dir) if out_dir is not None else workdir() / 'reports'
    rp = params.report
    methods = list(params.active_methods)
    labels = {m: params.methods[m].label or m for m in methods}
    metrics = collect.metric_names(params.eval.pck_thresholds, rp.pck_reach)
    if rp.headline_metric not in metrics:
        raise ParamsError(f'report.headline_metric = {rp.headline_metric!r}: not a report '
                          f'metric (one of {", ".join(metrics)})')

    from bench.console import StageProgress
    steps = ['runs read', 'tables', 'figures', 'README']
    with StageProgress('report', steps, unit='step', item='step') as progress:
        study = collect.load_study(runs_root, methods, params.seeds,
                                   pck_thresholds=params.eval.pck_thresholds,
                                   pck_reach=rp.pck_reach, joint_order=_joint_names(params))
        progress.run_done('runs read')
        summary = tables.summary_table(study, metrics, labels, confidence=rp.confidence)
        comparison = tables.comparison_table(study, metrics, rp.baseline, labels,
                                             headline=rp.headline_metric,
                                             confidence=rp.confidence, n_resamples=rp.n_bootstrap)
        per_joint = tables.per_joint_table(study, rp.baseline, labels, confidence=rp.confidence)
        runs = tables.runs_table(study)

        out_dir.mkdir(parents=True, exist_ok=True)
        for name, df in zip(CSV_FILES, (summary, comparison, per_joint, runs)):
            tables.write_csv(df, out_dir / name)
        tables.write_csv(sections.ap_resolution_table(study, methods, labels),
                         out_dir / 'ap_resolution.csv')
        tables.write_csv(scores.score_table(study, methods, labels), out_dir / 'scores.csv')
        tables.write_csv(scores.per_joint_auroc(study, methods, labels),
                         out_dir / 'auroc_per_joint.csv')
        tables.write_text(out_dir / 'summary.md', tables.summary_markdown(summary))
        tables.write_text(out_dir / 'comparison.md', tables.comparison_markdown(comparison))
        tables.write_text(out_dir / 'per_joint.md',
                          tables.per_joint_markdown(per_joint, methods, rp.baseline, labels))
        headline = {m: {r.metric: (None if not math.isfinite(r.mean) else round(float(r.mean), 6))
                        for r in summary[summary.method == m].itertuples()} for m in methods}
        tables.write_text(out_dir / 'metrics.json', json.dumps(headline, indent=2, sort_keys=True))

        costs = cost.cost_table(study.costs, summary, rp.headline_metric, labels)
        tables.write_csv(costs, out_dir / 'cost.csv')
        tuned = tuning.tuning_table(runs_root, methods, labels, params.tune.lrs,
                                    enabled=params.tune.enabled, default_lr=params.train.lr)
        tables.write_csv(tuned, out_dir / 'tuning.csv')
        axis = resolution.resolution_table(
            _resolution_points(params, runs_root, study), rp.baseline, rp.headline_metric, labels,
            confidence=rp.confidence,
            floor=instrument.read_csv(out_dir / 'codec_floor.csv'))
        tables.write_csv(axis, out_dir / 'resolution.csv')

        progress.run_done('tables')
        _draw_figures(params, study, summary, per_joint, labels, out_dir / 'figures')
        resolution.resolution_figure(axis, methods, labels, out_dir / 'figures' / 'resolution.png',
                                     baseline_label=labels[rp.baseline])
        progress.run_done('figures')
        tables.write_text(out_dir / 'README.md',
                          readme(params, study, summary, comparison, per_joint, runs, labels,
                                 out_dir, tuned=tuned, axis=axis, costs=costs))
        progress.run_done('README')
    print(f'report: {len(methods)} methods x {len(params.seeds)} seeds '
          f'({int((runs.status != "ok").sum())} failed) -> {out_dir}/README.md')


def _floor_at(floor: pd.DataFrame | None, geometry: str) -> pd.DataFrame | None:
    """The rows of ``codec_floor.csv`` at one geometry (a file without the column: all)."""
    if floor is None or 'geometry' not in floor:
        return floor
    return floor[floor.geometry == geometry].reset_index(drop=True)


def _resolution_points(params: Params, runs_root: Path, study: collect.Study) -> list[dict]:
    """Every geometry of the study (``model``'s own and ``sweep``'s), by heatmap size then
    sigma, each with its runs (:func:`bench.report.resolution.resolution_table`'s input)."""
    points = []
    for tag in params.geometries():
        m = params.at_geometry(tag).model
        runs = study if tag is None else collect.load_study(
            runs_root, params.active_methods, params.seeds,
            pck_thresholds=params.eval.pck_thresholds, pck_reach=params.report.pck_reach,
            joint_order=study.joints, geometry=tag)
        points.append(dict(study=runs, tag=tag or params.base_geometry(),
                           input_size=tuple(m.input_size), heatmap_size=tuple(m.heatmap_size),
                           sigma=m.sigma))
    return sorted(points, key=lambda p: (p['heatmap_size'][1], p['heatmap_size'][0],
                                         p['sigma']))


def _draw_figures(params: Params, study: collect.Study, summary: pd.DataFrame,
                  per_joint: pd.DataFrame, labels: dict, fig_dir: Path) -> None:
    from bench.report import figures as F
    rp = params.report
    methods = list(params.active_methods)
    F.heatmaps(study, methods, labels, fig_dir / 'heatmaps.png')
    F.learning_curves(study, methods, labels, fig_dir / 'learning_curves.png',
                      pck_reach=rp.pck_reach, confidence=rp.confidence)
    F.metric_comparison(summary, study.metrics, methods, labels,
                        fig_dir / 'metric_comparison.png',
                        metrics=[rp.headline_metric] + [m for m in ('AUC', 'AP', 'EPE')
                                                        if m != rp.headline_metric],
                        confidence=rp.confidence)
    F.pck_curves(study, methods, labels, fig_dir / 'pck_curves.png',
                 thresholds=params.eval.pck_thresholds, confidence=rp.confidence)
    F.per_joint_diff(per_joint, methods, rp.baseline, labels, fig_dir / 'per_joint_diff.png')
    F.calibration(study, methods, labels, fig_dir / 'calibration.png')
    F.pixel_calibration(study, methods, labels, fig_dir / 'pixel_calibration.png')
    F.oks(study, methods, labels, fig_dir / 'oks.png')
    F.sharpness(study, methods, labels, fig_dir / 'sharpness.png')
    miners = [m for m in methods if instrument.mines(params.methods[m].loss)]
    instrument.mechanism_figure(study, methods, labels, fig_dir / 'loss_mechanisms.png',
                                confidence=rp.confidence, miners=miners)


# ------------------------------------------------------------------------------------ README

def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def _size(wh) -> str:
    return f'{wh[0]}×{wh[1]}'


def _data_line(params: Params) -> str:
    d = params.data
    if d.source == 'stickman':
        s = d.stickman
        return (f'stickman (generated by `bench/data/stickman.py`, data seed {d.seed}): '
                f'{_size(s.image_size)} images, train {s.train} / val {s.val} / test {s.test} '
                f'images')
    c = d.coco
    files = ', '.join(f'{k}: `{v}`' for k, v in sorted(c.ann_files.items()))
    return f'COCO-format dataset at `{c.root}` ({files}; images under `{c.img_prefix}`)'


def _stage_times(runs: pd.DataFrame, data_timing: Path) -> list[tuple[str, str]]:
    """Setup rows with the wall time of each stage of ``dvc repro`` that recorded one (the
    data stage in ``data_timing``, every run's training and evaluation in ``runs.csv``)."""
    rows, total = [], 0.0
    try:
        wall = json.loads(data_timing.read_text()).get('wall_s')
    except (OSError, ValueError, AttributeError):  # not recorded (or not by us): no row
        wall = None
    if isinstance(wall, (int, float)):
        rows.append(('wall time: data', f'{wall:.0f} s'))
        total += wall
    for column, stage in (('wall_s', 'train'), ('eval_wall_s', 'evaluate')):
        wall = runs[column].dropna()
        if len(wall):
            rows.append((f'wall time: {stage}',
                         f'{wall.sum():.0f} s for {len(wall)} run(s), {wall.mean():.0f} s per '
                         f'run on average (see `runs.csv`)'))
            total += float(wall.sum())
    if rows:
        rows.append(('wall time: total', f'{total:.0f} s ({total / 60:.1f} min) over the stages '
                     'above, one after another; not counting the report stage and process '
                     'start-up'))
    return rows


def _verdict(row, alpha: float) -> str:
    n = int(row['n']) if tables._finite(row['n']) else 0
    p = row['p_holm']
    if n < 2 or not tables._finite(p):
        return 'inconclusive'
    floor = row.get('min_attainable_p_holm', row['min_attainable_p'])
    if tables._finite(floor) and floor > alpha:  # Holm's floor: m x 2 / 2^n
        return 'inconclusive'
    return 'significant' if p <= alpha else 'not significant'


def _seeds_needed(alpha: float, m: int) -> int:
    """Smallest n with m * 2 / 2^n <= alpha: the exact test (Holm over m) can reach alpha."""
    n = 1
    while max(m, 1) * 2.0 ** (1 - n) > alpha:
        n += 1
    return n


def readme(params: Params, study: collect.Study, summary: pd.DataFrame,
           comparison: pd.DataFrame, per_joint: pd.DataFrame, runs: pd.DataFrame,
           labels: dict, out_dir: Path, *, tuned: pd.DataFrame | None = None,
           axis: pd.DataFrame | None = None, costs: pd.DataFrame | None = None) -> str:
    rp = params.report
    methods = list(params.active_methods)
    alpha, conf = rp.alpha, rp.confidence
    base_label = labels[rp.baseline]
    head = rp.headline_metric
    up = collect.higher_is_better(head)
    m, t = params.model, params.train
    n_ok = summary[summary.metric == head].set_index('method')['n']
    verdicts = instrument.mechanism_verdicts(
        study, methods, {x: params.methods[x].loss for x in methods}, labels)
    was = {} if verdicts.empty else {r.label: r.what_it_was for r in verdicts.itertuples()
                                     if r.what_it_was}
    L: list[str] = []
    add = L.append

    add('# posebench report: per-pixel classification vs heatmap regression\n')
    add('_Generated by `python -m bench report` (DVC stage `report`) from `runs/`; do not edit. '
        'Tables: [`summary.csv`](summary.csv), [`comparison.csv`](comparison.csv), '
        '[`per_joint.csv`](per_joint.csv), [`runs.csv`](runs.csv) (and their `.md` '
        'versions); every number below is formatted from them._\n')
    add('## Research question\n')
    add('Is 2D human pose estimation better posed as **per-pixel classification** — K+1 channels '
        '(background first) that are per-pixel softmax probabilities, trained with a per-pixel '
        'cross-entropy — than as **heatmap regression** — K Gaussian heatmaps trained with an '
        'MSE loss? Both formulations share the data, backbone, input, schedule and test-time '
        'flip; the head\'s output, codec and loss differ, and the codec floor below shows '
        'whether the codecs leave every side the same ceiling. '
        f'Baseline: **{base_label}**; headline metric: '
        f'**{head}** ({"higher" if up else "lower"} is better).\n')

    add('## Setup\n')
    k = len(study.joints) or study.num_keypoints()
    tests = runs['test_instances'].dropna() if 'test_instances' in runs else pd.Series()
    ms = ', '.join(str(x) for x in t.milestones) or 'none'
    setup = [
        ('data', _data_line(params)),
        ('keypoints', f'K = {k if k else "—"} (`{params.data.metainfo}`)'
                      + (f'; {tables.fmt_int(tests.iat[0])} test instances' if len(tests) else '')),
        ('model', f'ResNet-{m.backbone.depth} (stem {m.backbone.stem_channels}, base '
                  f'{m.backbone.base_channels} channels) + {len(m.deconv_channels)} '
                  f'deconvolution(s) {list(m.deconv_channels)}; shared by every method'),
        ('input / heatmap', f'{_size(m.input_size)} input, {_size(m.heatmap_size)} heatmaps, '
                            f'σ = {m.sigma:g} heatmap pixels'),
        ('schedule', f'{t.epochs} epochs, batch {t.batch_size}, Adam lr {t.lr:g}, warm-up '
                     f'{t.warmup_iters} iterations, ×0.1 at epoch(s) {ms}, validation every '
                     f'{t.val_interval} epoch(s)'),
        ('seeds', f'{len(params.seeds)}: {", ".join(str(s) for s in params.seeds)} (each seed '
                  f'drives data order and initialisation; methods are paired by seed)'),
        ('statistics', f'{conf:.0%} Student-t CIs of the mean over seeds, '
                       f'paired comparisons by seed: exact sign-flip permutation test, '
                       f'Holm-adjusted over the variants per metric, α = {alpha:g}'),
        ('software', ', '.join(f'{d} {_version(d)}' for d in SOFTWARE)
                     + f', Python {platform.python_version()}'),
        ('report machine', f'{platform.system()} {platform.machine()}, {os.cpu_count()} CPU '
                           f'cores'),
    ]
    setup += _stage_times(runs, study.runs_root.parent / 'data' / 'timing.json')
    add(tables.to_markdown(pd.DataFrame(setup, columns=['', 'value'])))
    if tuned is not None:
        add(tuning.tuning_markdown(tuned, epochs=params.tune.epochs, seed=params.tune.seed,
                                   lr=t.lr))
    add('Methods (generated from each method\'s resolved MMPose config by the `floor` stage, '
        '[`methods.csv`](methods.csv)):\n')
    add(instrument.methods_markdown(instrument.read_csv(out_dir / 'methods.csv'), methods,
                                    n_ok.to_dict()))

    add('## The instrument: codec floor\n')
    floor = _floor_at(instrument.read_csv(out_dir / 'codec_floor.csv'), params.base_geometry())
    add('What a *perfect* network scores on the test split with each method\'s codec, flip test '
        'and decoder: the ground truth encoded, passed through the method\'s own head `predict` '
        'and decoded ([`codec_floor.csv`](codec_floor.csv), per joint there too). A comparison '
        'measures formulations only where the floors agree.\n')
    add(instrument.floor_markdown(floor, summary, params.eval.pck_thresholds, head, labels))
    equal = instrument.floors_equal(floor, methods, collect.pck_metric(
        params.eval.pck_thresholds[0]))
    if equal is False:
        add(f'> **The trained methods\' floors differ** by more than 0.01 in '
            f'{collect.pck_metric(params.eval.pck_thresholds[0])}: part of any difference below '
            'is the codecs\', not the formulations\'.\n')
    elif equal:
        add(f'The trained methods\' floors agree within 0.01 in '
            f'{collect.pck_metric(params.eval.pck_thresholds[0])}: every side has the same '
            'ceiling.\n')

    add('## Results\n')
    add(f'Test-set metrics: mean over seeds with its {conf:.0%} Student-t CI in brackets, best '
        'mean in bold; each score is defined under "What each score is" below. '
        f'`{collect.reach_metric(rp.pck_reach)}`: first epoch whose validation PCK@0.1 reaches '
        f'{rp.pck_reach:g}, as the median over seeds with the runs that never reach it counted '
        'as ∞ (and their number). All metrics with std, median and n: '
        '[`summary.md`](summary.md); every run\'s value: [`runs.csv`](runs.csv).\n')
    if (n_ok <= 1).all():
        add('> **Confidence intervals are unavailable**: every method has at most one successful '
            'seed; the tables show single-run values, and no paired test is possible. Add seeds '
            'in `params.yaml` (`seeds:`).\n')
    elif (n_ok <= 1).any():
        few = ', '.join(labels[x] for x in methods if n_ok.get(x, 0) <= 1)
        add(f'> Confidence intervals are unavailable for {few} (fewer than 2 successful '
            'seeds).\n')
    add(tables.main_markdown(summary, main_metrics(params), methods))
    add('![Test metrics per method](figures/metric_comparison.png)\n')
    add(sections.scores_markdown(collect.reach_metric(rp.pck_reach)))
    add(sections.ap_markdown(sections.ap_resolution_table(study, methods, labels)))

    add(f'### Paired comparison with {base_label}\n')
    if comparison.empty:
        add('_Only one method is active: nothing to compare._\n')
    else:
        add('Difference = variant − baseline, paired by seed over the seeds where both runs '
            'succeeded (n); CI: Student t. `p (perm.)`: exact two-sided sign-flip permutation '
            f'test, `p (Holm)`: adjusted over the {comparison.variant.nunique()} variant(s) per '
            'metric; `seed win rate`: share of the paired seeds where the variant is better '
            '(a count, not a probability); `min p`: the smallest p the exact test can give '
            'with n seeds; `censored`: pairs left out of diff and tests because a run never '
            'reached the level (they count in the win rate). `image diff`: paired bootstrap '
            f'over test instances of {head} itself (each resample recomputes every paired '
            'seed\'s statistic); it reflects test-set sampling noise only, not seed-to-seed '
            'training noise. All metrics: [`comparison.md`](comparison.md).\n')
        n_metrics = comparison.metric.nunique()
        add(f'**One confirmatory family**: the `{head}` test (Holm over the variants) is the one '
            'the conclusion rests on. Every other row is **exploratory**: Holm-adjusted over the '
            f'variants of its own metric only, not across the {n_metrics} metrics tested, so its '
            'p-values describe and decide nothing. A metric this report calls not comparable '
            f'across formulations ({", ".join(sorted(collect.NOT_COMPARABLE))}) is not tested.\n')
        shown = comparison[comparison.metric.isin(main_metrics(params))]
        add(tables.comparison_markdown(shown))
        min_p = comparison['min_attainable_p_holm']
        if (min_p > alpha).any():
            n = int(comparison.loc[min_p > alpha, 'n'].max())
            mp = comparison.loc[comparison['n'] == n, 'min_attainable_p_holm'].iat[0]
            nv = comparison.variant.nunique()
            add(f'> **Too few seeds for a decision**: with {n} paired seed{"s" * (n != 1)} and '
                f'Holm over {nv} variant{"s" * (nv != 1)} no exact test can go below '
                f'p={tables.fmt_p(mp)}, so no comparison can reach α={alpha:g}. The exact test '
                f'needs ≥ {_seeds_needed(alpha, nv)} seeds with Holm over {nv} variants '
                f'(≥ {_seeds_needed(alpha, 1)} for one); the study profile (`make study`, '
                '`profiles/study`) runs more seeds.\n')
        elif len(min_p):
            add(f'Smallest p the exact test can reach here after Holm: '
                f'{tables.fmt_p(float(min_p.max()))} (< α={alpha:g}: every comparison can be '
                f'decided); widest 95% CI of a headline difference: '
                f'±{float(shown.loc[shown.metric == head, "ci_half_width"].max()):.3f}.\n')

    add('### Accuracy per cost\n')
    if costs is None or costs.empty:
        add('_No run recorded its cost (`cost.json` of the evaluate stage)._\n')
    else:
        add('Per method, medians over its runs ([`cost.csv`](cost.csv)); the times are this '
            'machine\'s, at the stages\' thread counts.\n')
        add(cost.cost_markdown(costs))

    add('### Where does each formulation win? The resolution axis\n')
    if axis is None or axis.empty or axis.geometry.nunique() < 2:
        add('_One geometry in this profile: `sweep` in `params.yaml` adds heatmap sizes (the '
            'input size follows) and sigmas; the study profile sweeps them._\n')
    else:
        add(f'Every method trained at {axis.geometry.nunique()} geometries (heatmap size, its '
            f'input size, σ in heatmap pixels); at each, the paired difference of {head} to '
            f'{base_label} at the same geometry, Holm over the variants of that geometry '
            '([`resolution.csv`](resolution.csv)).\n')
        add(resolution.resolution_markdown(axis))
        uneven = resolution.uneven_floors(axis)
        if uneven:
            add(f'> **Floors differ by more than 0.01 in {head}** at: {", ".join(uneven)}. '
                'There, part of the difference is the codecs\', not the formulations\'.\n')
        add('![Paired difference vs heatmap resolution](figures/resolution.png)\n')

    add('## Figures\n')
    add('### Heatmaps\n')
    add('Predicted keypoint maps on the same validation images (rows: image × epoch; columns: '
        'the input with its ground truth, then each method\'s keypoint maps\' maximum overlaid '
        'on the input with its predicted keypoints; classification methods also show their '
        'background channel). Like for like: a classification column draws the Gaussians its '
        'decoder recovers from the K+1 probabilities, on the regression heatmaps\' 0–1 scale '
        '(a perfect prediction of either formulation peaks at the same value), not the '
        'probabilities P_j, which neighbouring keypoints share.\n')
    add('![Predicted heatmaps](figures/heatmaps.png)\n')
    add('### Learning curves\n')
    add('![Learning curves](figures/learning_curves.png)\n')
    add('### PCK vs threshold\n')
    add('![PCK curves](figures/pck_curves.png)\n')
    add('### Keypoint scores, like for like\n')
    add(scores.scores_markdown(scores.score_table(study, methods, labels),
                               scores.per_joint_auroc(study, methods, labels)))
    add('### Confidence of the keypoint scores\n')
    add('Regression scores are heatmap maxima, classification scores recovered Gaussian peaks '
        '(above): the same kind of quantity, not calibrated probabilities. Left, the ROC of '
        'each score as a detector of a PCK@0.1 hit (AUROC: ranking only, comparable); middle, '
        'the reliability after isotonic recalibration fitted on each run\'s validation split '
        '(ECE_cal, comparable); right, the raw scores (ECE_raw, not comparable across '
        'formulations).\n')
    add('![Calibration](figures/calibration.png)\n')
    add('### Per-pixel calibration (classification)\n')
    add(sections.pixel_calibration_markdown(summary, methods))
    add('### Object keypoint similarity\n')
    add('![OKS per instance](figures/oks.png)\n')
    add('### Loss mechanisms (classification)\n')
    mech = instrument.mechanism_table(study, methods, labels)
    if mech.empty:
        add('_No classification run logged its loss parts._\n')
    else:
        add('Measured in every training (DVCLive `train/bg_kept`, `train/bg_part`, '
            '`train/fg_part`, `train/part_ratio`): the share of background pixels that hard '
            'negative mining kept, and the background part of the loss over its positive part '
            '(the two parts add up to the loss; 1 = balanced). A pixel is background when its '
            'background target is ≥ the loss\'s `bg_threshold`. Last epoch, mean over seeds:\n')
        add(tables.to_markdown(mech.reset_index().rename(columns={'index': 'method'}).round(4)))
        add('Did each mechanism act in this regime? Over every epoch of every seed: mining '
            f'"discarded background" when it kept < {instrument.MINING_KEEPS_ALL:.0%} of it on '
            f'average; a balancing loss\'s parts "balanced" when within '
            f'{instrument.PARTS_APART:g}× of each other at every epoch.\n')
        add(instrument.verdicts_markdown(verdicts))
        add('![Loss mechanisms](figures/loss_mechanisms.png)\n')
    add('### Heatmap sharpness\n')
    add('Per keypoint map of the final snapshot: spatial entropy (map clipped at 0 and '
        'normalised to sum 1) and peak width (heatmap pixels at or above half the maximum).\n')
    add('![Sharpness](figures/sharpness.png)\n')
    if (out_dir / 'figures' / 'dataset_samples.png').is_file():
        add('### Data\n')
        add('![Dataset samples](figures/dataset_samples.png)\n')

    add('## Per keypoint\n')
    add(f'PCK@{collect.HIT_THRESHOLD:g} per keypoint, mean over seeds; Δ: difference to '
        f'{base_label}, with its {conf:.0%} Student-t CI paired by seed (a keypoint whose CI '
        'holds 0 is no evidence of a difference; 17 keypoints × variants, no multiplicity '
        'correction: exploratory).\n')
    add('![Per-keypoint difference](figures/per_joint_diff.png)\n')
    add(tables.per_joint_markdown(per_joint, methods, rp.baseline, labels))

    add('## Failed runs\n')
    add(tables.failed_markdown(runs, labels))

    add('## Conclusion (generated)\n')
    heads = comparison[comparison.metric == head]
    if heads.empty:
        add('_No comparison: only the baseline is active._\n')
    else:
        add(f'On the headline metric {head}, each variant against {base_label}, paired by '
            'seed:\n')
        groups = {'significant': [], 'not significant': [], 'inconclusive': []}
        for _, row in heads.iterrows():
            name = f'{row["variant_label"]} vs {base_label}'
            if row['variant_label'] in was:
                name = (f'{row["variant_label"]} (in this regime: '
                        f'{was[row["variant_label"]]}) vs {base_label}')
            add(f'- {significance_sentence(name, head, row.to_dict(), alpha=alpha)}')
            verdict = _verdict(row, alpha)
            entry = row['variant_label']
            if entry in was:
                entry += f' [{was[entry]}]'
            if verdict == 'significant':
                better = (row['mean_diff'] > 0) == up
                entry += f' ({"better" if better else "worse"} than {base_label})'
            groups[verdict].append(entry)
        add('')
        add(f'- **Significant** at α={alpha:g} (Holm-adjusted permutation test): '
            f'{", ".join(groups["significant"]) or "none"}.')
        add(f'- **Not significant**: {", ".join(groups["not significant"]) or "none"}.')
        add(f'- **Inconclusive** (too few paired seeds for the exact test to reach α): '
            f'{", ".join(groups["inconclusive"]) or "none"}.')
        img = heads[heads['image_diff'].map(tables._finite)]
        if not img.empty:
            add('')
            add(f'Paired bootstrap over test instances of {head} (test-set noise only; '
                'a complement to, not a replacement for, the seed-level test):')
            for _, row in img.iterrows():
                add(f'- {row["variant_label"]}: {tables.fmt_diff(row["image_diff"], head)} '
                    f'({conf:.0%} CI {tables.fmt_diff(row["image_ci_low"], head)} to '
                    f'{tables.fmt_diff(row["image_ci_high"], head)}, '
                    f'p={tables.fmt_p(row["image_p"])}, {tables.fmt_int(row["image_n"])} '
                    'instances)')
        add('')
    return '\n'.join(L).rstrip('\n') + '\n'
