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
  inference times, the headline metric per GFLOP (:mod:`bench.report.cost_table`);
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

import json
import math
from pathlib import Path

import pandas as pd

from bench.params import Params, ParamsError, workdir
from bench.report import (collect, cost_table, instrument, metric_table, readme, resolution,
                          scores, sections, tables, tuning)
from bench.runs import runs_root as default_runs_root

CSV_FILES = ('summary.csv', 'comparison.csv', 'per_joint.csv', 'runs.csv')
MD_FILES = ('summary.md', 'comparison.md', 'per_joint.md')


def _joint_names(params: Params) -> list[str] | None:
    """Keypoint names in dataset order, from ``data.metainfo`` (None when unavailable)."""
    try:
        from bench.data.layout import joint_names
        return joint_names(params.data.metainfo)
    except Exception:  # noqa: BLE001 -- ordering is cosmetic: fall back to metrics.json order
        return None


def run(params: Params, runs_root: str | Path | None = None,
        out_dir: str | Path | None = None) -> None:
    """Build the report from ``runs_root`` (default ``<workdir>/runs``) into ``out_dir``
    (default ``<workdir>/reports``).

    Raises:
        RunError: a run folder (or one of its required files) is missing.
        ParamsError: ``report.headline_metric`` is not one of the report's metrics.
    """
    runs_root = Path(runs_root) if runs_root is not None else default_runs_root()
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

        costs = cost_table.cost_table(study.costs, summary, rp.headline_metric, labels)
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
        tables.write_text(out_dir / 'README.md', readme.readme(readme.Context(
            params, study, summary, comparison, per_joint, runs, labels, out_dir, tuned=tuned,
            axis=axis, costs=costs)))
        progress.run_done('README')
    print(f'report: {len(methods)} methods x {len(params.seeds)} seeds '
          f'({int((runs.status != "ok").sum())} failed) -> {out_dir}/README.md')


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
                        metrics=metric_table.figure_names(rp.headline_metric),
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
