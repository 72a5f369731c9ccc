"""The report's tables: :class:`~bench.report.collect.Study` → DataFrames → CSV and Markdown.

Builders (statistics through :mod:`bench.report.stats`, fixed seeds, so the same runs give the
same tables): :func:`summary_table`, :func:`comparison_table`, :func:`per_joint_table`,
:func:`runs_table`. Writers: :func:`write_csv` (``%.6g`` floats) and the ``*_markdown``
functions, which format numbers *from those DataFrames* with :func:`fmt_value` /
:func:`fmt_diff` / :func:`fmt_p` -- the README quotes no number that is not in a CSV.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.report import stats
from bench.report.stats import finite
from bench.report.collect import (NOT_COMPARABLE, Study, higher_is_better, is_censored,
                                   keypoint_values)

FLOAT_FORMAT = '%.6g'
NA = '—'


# --------------------------------------------------------------------------------- formatting


def _digits(metric: str) -> int:
    if metric.startswith('epochs_to'):
        return 1
    if metric == 'EPE':
        return 2
    if metric == 'pixel_ECE':                     # pooled over mostly-empty pixels: small
        return 4
    return 3


def fmt_value(x, metric: str = '') -> str:
    if finite(x):
        return f'{float(x):.{_digits(metric)}f}'
    # +inf: a censored value ("epochs to reach" of a run that never got there)
    return '∞' if x is not None and _is_posinf(x) else NA


def _is_posinf(x) -> bool:
    try:
        return float(x) == math.inf
    except (TypeError, ValueError):
        return False


def fmt_diff(x, metric: str = '') -> str:
    if not finite(x):
        return NA
    x = 0.0 if abs(float(x)) < 1e-12 else float(x)
    return f'{x:+.{_digits(metric)}f}'


def fmt_p(p) -> str:
    if not finite(p):
        return NA
    return '<0.001' if p < 1e-3 else f'{p:.2g}'


def fmt_int(x) -> str:
    return str(int(x)) if finite(x) else NA


def _md_escape(text) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub table of already-formatted strings (no index)."""
    df = df.astype(str).apply(lambda col: col.map(_md_escape))
    df.columns = [_md_escape(c) for c in df.columns]
    return df.to_markdown(index=False, disable_numparse=True) + '\n'


def write_csv(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator='\n')


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith('\n') else text + '\n')


# ---------------------------------------------------------------------------------- builders

def _values(study: Study, method: str, metric: str, seeds: Sequence[int]) -> np.ndarray:
    m = study.metrics
    sel = m[(m.method == method) & (m.metric == metric)].set_index('seed')['value']
    return np.array([float(sel.get(s, math.nan)) for s in seeds], dtype=float)


SUMMARY_COLUMNS = ['method', 'label', 'metric', 'higher_is_better', 'mean', 'std', 'ci_low',
                   'ci_high', 'median', 'n', 'n_censored']


def summary_table(study: Study, metrics: Sequence[str], labels: Mapping[str, str], *,
                  confidence: float = 0.95) -> pd.DataFrame:
    """One row per method × metric over the method's successful seeds
    (:func:`stats.summarize`): mean, std, Student-t CI of the mean, median, n (seeds with a
    value, censored ones included) and n_censored (seeds whose run never reached an "epochs to
    reach" level: +inf, so mean = inf and no CI; the median still exists while fewer than half
    are censored)."""
    rows = []
    for method in study.methods:
        seeds = study.ok_seeds(method)
        for metric in metrics:
            s = stats.summarize(_values(study, method, metric, seeds), confidence=confidence)
            rows.append(dict(method=method, label=labels.get(method, method), metric=metric,
                             higher_is_better=higher_is_better(metric), mean=s['mean'],
                             std=s['std'], ci_low=s['ci_low'], ci_high=s['ci_high'],
                             median=s['median'], n=int(s['n']),
                             n_censored=int(s['n_censored'])))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def per_keypoint(study: Study, method: str, seeds: Sequence[int],
                 metric: str) -> np.ndarray | None:
    """(S, N, K) per-keypoint values of ``metric`` (:func:`collect.keypoint_values`) of the
    method's runs at ``seeds``, NaN where unlabelled; None when the metric is not a joint-mean
    statistic or a run has no dump."""
    per_seed = []
    for seed in seeds:
        kp = study.keypoints.get((method, seed))
        if kp is None:
            return None
        v = keypoint_values(kp['dists'], metric, kp.get('curve_thresholds'))
        if v is None:
            return None
        per_seed.append(v)
    if not per_seed or len({v.shape for v in per_seed}) != 1:
        return None
    return np.stack(per_seed)


def _same_images(study: Study, a: tuple[str, int], b: tuple[str, int]) -> bool:
    ia, ib = study.keypoints[a].get('img_ids'), study.keypoints[b].get('img_ids')
    return ia is not None and ib is not None and ia.shape == ib.shape and bool(np.all(ia == ib))


COMPARISON_COLUMNS = ['variant', 'variant_label', 'baseline', 'baseline_label', 'metric',
                      'family', 'higher_is_better', 'n', 'n_censored', 'mean_diff', 'ci_low',
                      'ci_high',
                      'p_ttest', 'p_permutation', 'p_holm', 'seed_win_rate', 'min_attainable_p',
                      'min_attainable_p_holm', 'ci_half_width',
                      'image_n', 'image_diff', 'image_ci_low', 'image_ci_high', 'image_p']


def comparison_table(study: Study, metrics: Sequence[str], baseline: str,
                     labels: Mapping[str, str], *, headline: str, confidence: float = 0.95,
                     n_resamples: int = 9999) -> pd.DataFrame:
    """Every method ≠ ``baseline`` against it, per metric, paired by seed (seeds where both
    succeeded): :func:`stats.paired_comparison` plus ``p_holm`` (Holm over the variants, per
    metric, on the permutation p). ``seed_win_rate`` is the share of seeds where the variant
    is *better* (for lower-is-better metrics: lower), censored runs included; ``n_censored``
    counts the pairs left out of the difference and tests because a run never reached an
    "epochs to reach" level. A metric the baseline has no value of (the per-pixel ECE of a
    regression baseline) gets no rows, nor does a metric of :data:`NOT_COMPARABLE`.
    ``family``: ``confirmatory`` for ``headline`` (the one test the study's conclusion rests
    on; Holm over the variants), ``exploratory`` for every other metric (Holm over the variants
    of that metric only, not across metrics: descriptive). On ``headline`` the paired
    bootstrap over test instances of the headline statistic itself
    (:func:`stats.paired_image_bootstrap`, every paired seed's runs recomputed on each
    resample) fills the ``image_*`` columns.
    """
    rows = []
    base_ok = set(study.ok_seeds(baseline))
    for metric in metrics:
        if metric in NOT_COMPARABLE or np.isnan(
                _values(study, baseline, metric, sorted(base_ok))).all():
            continue
        for variant in study.methods:
            if variant == baseline:
                continue
            seeds = sorted(base_ok & set(study.ok_seeds(variant)))
            c = stats.paired_comparison(_values(study, variant, metric, seeds),
                                        _values(study, baseline, metric, seeds),
                                        confidence=confidence, seed=0)
            wins = c['seed_win_rate']
            if not higher_is_better(metric) and finite(wins):
                wins = 1.0 - wins
            row = dict(variant=variant, variant_label=labels.get(variant, variant),
                       baseline=baseline, baseline_label=labels.get(baseline, baseline),
                       metric=metric,
                       family='confirmatory' if metric == headline else 'exploratory',
                       higher_is_better=higher_is_better(metric), n=int(c['n']),
                       n_censored=int(c['n_censored']),
                       mean_diff=c['mean_diff'], ci_low=c['ci_low'], ci_high=c['ci_high'],
                       p_ttest=c['p_ttest'], p_permutation=c['p_permutation'],
                       p_holm=math.nan, seed_win_rate=wins,
                       min_attainable_p=c['min_attainable_p'], image_n=0,
                       image_diff=math.nan, image_ci_low=math.nan, image_ci_high=math.nan,
                       image_p=math.nan)
            if metric == headline and seeds and _same_images(
                    study, (variant, seeds[0]), (baseline, seeds[0])):
                v = per_keypoint(study, variant, seeds, metric)
                b = per_keypoint(study, baseline, seeds, metric)
                if v is not None and b is not None and v.shape == b.shape:
                    ib = stats.paired_image_bootstrap(v, b, n_resamples=n_resamples,
                                                      confidence=confidence, seed=0)
                    row.update(image_n=int(ib['n']), image_diff=ib['mean_diff'],
                               image_ci_low=ib['ci_low'], image_ci_high=ib['ci_high'],
                               image_p=ib['p_boot'])
            rows.append(row)
    df = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for metric in metrics:
        sel = df.metric == metric
        if sel.any():
            df.loc[sel, 'p_holm'] = stats.holm(df.loc[sel, 'p_permutation'].to_numpy(float))
            # Holm multiplies the smallest p of a family of m tests by m: the smallest
            # adjusted p the exact test can reach with these seeds
            m = int(np.isfinite(df.loc[sel, 'p_permutation'].to_numpy(float)).sum())
            df.loc[sel, 'min_attainable_p_holm'] = np.minimum(
                1.0, max(m, 1) * df.loc[sel, 'min_attainable_p'].to_numpy(float))
    df['ci_half_width'] = (df['ci_high'] - df['ci_low']) / 2
    # metric-major: the rows of one Holm family (one metric, every variant) are together
    m_idx = {m: i for i, m in enumerate(metrics)}
    v_idx = {m: i for i, m in enumerate(study.methods)}
    df = df.assign(_k=df.metric.map(m_idx), _v=df.variant.map(v_idx))
    return (df.sort_values(['_k', '_v'], kind='stable').drop(columns=['_k', '_v'])
            .reset_index(drop=True))


def per_joint_table(study: Study, baseline: str, labels: Mapping[str, str], *,
                    confidence: float = 0.95) -> pd.DataFrame:
    """PCK@0.1 per keypoint per method: mean over the method's successful seeds, std, n, the
    difference of the means to the baseline, and that difference paired by seed (the seeds
    where both runs have the keypoint): ``diff_n`` pairs, its Student-t CI ``diff_ci_low`` /
    ``diff_ci_high`` (NaN for the baseline, or with fewer than 2 pairs)."""
    pj = study.per_joint
    cols = ['joint', 'method', 'label', 'pck', 'std', 'n', 'diff_vs_baseline', 'diff_n',
            'diff_ci_low', 'diff_ci_high']
    if pj.empty:
        return pd.DataFrame(columns=cols)
    g = pj.groupby(['method', 'joint'], sort=False)['pck']
    agg = pd.DataFrame({'pck': g.mean(), 'std': g.std(ddof=1), 'n': g.count()}).reset_index()
    base = agg[agg.method == baseline].set_index('joint')['pck']
    agg['diff_vs_baseline'] = agg['pck'] - agg['joint'].map(base)
    by_seed = pj.pivot_table(index=['joint', 'seed'], columns='method', values='pck')
    paired = []
    for m, j in zip(agg['method'], agg['joint']):
        if m == baseline or baseline not in by_seed or m not in by_seed:
            paired.append((0, math.nan, math.nan))
            continue
        d = (by_seed.loc[j, m] - by_seed.loc[j, baseline]).dropna().to_numpy(float)
        lo, hi = stats.t_interval(d, confidence) if len(d) > 1 else (math.nan, math.nan)
        paired.append((len(d), lo, hi))
    agg['diff_n'] = [p[0] for p in paired]
    agg['diff_ci_low'] = [p[1] for p in paired]
    agg['diff_ci_high'] = [p[2] for p in paired]
    agg['label'] = agg['method'].map(lambda m: labels.get(m, m))
    m_idx = {m: i for i, m in enumerate(study.methods)}
    j_idx = {j: i for i, j in enumerate(study.joints)}
    agg = agg.assign(_j=agg.joint.map(j_idx), _m=agg.method.map(m_idx))
    agg = agg.sort_values(['_j', '_m'], kind='stable').drop(columns=['_j', '_m'])
    agg['n'] = agg['n'].astype(int)
    return agg[cols].reset_index(drop=True)


def runs_table(study: Study) -> pd.DataFrame:
    """One row per run: method, seed, status, message, epochs, wall_s (training), eval_wall_s
    (evaluation), test_instances, then one column per metric with the run's value (the
    per-seed values behind every summary and comparison; empty for a failed run, ``inf`` for
    a censored "epochs to reach")."""
    runs = study.runs.copy()
    m = study.metrics
    if m.empty:
        return runs
    order = list(dict.fromkeys(m['metric']))
    wide = m.pivot(index=['method', 'seed'], columns='metric', values='value')[order]
    wide.columns.name = None
    return runs.merge(wide.reset_index(), on=['method', 'seed'], how='left')


# ---------------------------------------------------------------------------------- markdown

def summary_markdown(summary: pd.DataFrame) -> str:
    df = pd.DataFrame({
        'method': summary['label'], 'metric': summary['metric'],
        'better': summary['higher_is_better'].map({True: '↑', False: '↓'}),
        'mean': [fmt_value(v, m) for v, m in zip(summary['mean'], summary['metric'])],
        'std': [fmt_value(v, m) for v, m in zip(summary['std'], summary['metric'])],
        'CI low': [fmt_value(v, m) for v, m in zip(summary['ci_low'], summary['metric'])],
        'CI high': [fmt_value(v, m) for v, m in zip(summary['ci_high'], summary['metric'])],
        'median': [fmt_value(v, m) for v, m in zip(summary['median'], summary['metric'])],
        'n': summary['n'].map(fmt_int),
        'never reached': [fmt_int(k) if is_censored(m) else NA
                          for k, m in zip(summary['n_censored'], summary['metric'])]})
    return ('Mean over seeds with its Student-t CI; for an "epochs to reach" metric, runs that '
            'never reached the level count as ∞ (never dropped): the mean is then ∞ and the '
            'median is the summary.\n\n' + to_markdown(df))


def _main_header(metric: str) -> str:
    arrow = '↑' if higher_is_better(metric) else '↓'
    return f'{metric} {arrow}' + (' (median)' if is_censored(metric) else '')


def main_markdown(summary: pd.DataFrame, metrics: Sequence[str], methods: Sequence[str]) -> str:
    """Methods × headline metrics, each cell ``mean [CI low, CI high]`` (Student t); for a
    censored metric ("epochs to reach") the median over seeds with censored runs at ∞ and the
    count of runs that never reached the level. The best value per column in bold (highest,
    or lowest for ↓ metrics), unless every method shares it (a column that cannot separate
    the methods)."""
    s = summary.set_index(['method', 'metric'])
    table = {'method': [], 'seeds': []}
    for metric in metrics:
        table[_main_header(metric)] = []
    best = {}
    for metric in metrics:
        col = 'median' if is_censored(metric) else 'mean'
        means = {m: s.loc[(m, metric), col] for m in methods if (m, metric) in s.index}
        means = {m: v for m, v in means.items() if finite(v) or _is_posinf(v)}
        if len(means) > 1:
            pick = max if higher_is_better(metric) else min
            target = pick(means.values())
            winners = {m for m, v in means.items() if v == target}
            # no "best" when every run is censored, nor in a column where every method ties
            if finite(target) and len(winners) < len(means):
                best[metric] = winners
    for m in methods:
        first = s.loc[(m, metrics[0])]
        table['method'].append(first['label'])
        table['seeds'].append(fmt_int(first['n']))
        for metric in metrics:
            r = s.loc[(m, metric)]
            censored = is_censored(metric)
            cell = fmt_value(r['median' if censored else 'mean'], metric)
            if m in best.get(metric, ()):
                cell = f'**{cell}**'
            if censored:
                if finite(r['n_censored']) and r['n_censored'] > 0:
                    cell += f' ({int(r["n_censored"])}/{int(r["n"])} never)'
            elif finite(r['ci_low']) and finite(r['ci_high']):
                cell += f' [{fmt_value(r["ci_low"], metric)}, {fmt_value(r["ci_high"], metric)}]'
            table[_main_header(metric)].append(cell)
    return to_markdown(pd.DataFrame(table))


def comparison_markdown(comparison: pd.DataFrame, *, image: bool = True) -> str:
    """One row per metric × variant (vs the baseline named above the table)."""
    c = comparison
    if c.empty:
        return '_No comparison: only the baseline is active._\n'
    df = pd.DataFrame({
        'variant': c['variant_label'],
        'metric': [f'{m} {"↑" if h else "↓"}' for m, h in zip(c['metric'], c['higher_is_better'])],
        'family': c['family'] if 'family' in c else NA,
        'n': [fmt_int(n) + (f' (+{int(k)} censored)' if finite(k) and k > 0 else '')
              for n, k in zip(c['n'], c['n_censored'])],
        'diff': [fmt_diff(v, m) for v, m in zip(c['mean_diff'], c['metric'])],
        'CI': [f'[{fmt_diff(lo, m)}, {fmt_diff(hi, m)}]' if finite(lo) and finite(hi) else NA
               for lo, hi, m in zip(c['ci_low'], c['ci_high'], c['metric'])],
        'p (t)': c['p_ttest'].map(fmt_p),
        'p (perm.)': c['p_permutation'].map(fmt_p),
        'p (Holm)': c['p_holm'].map(fmt_p),
        'seed win rate': c['seed_win_rate'].map(lambda x: f'{x:.2f}' if finite(x) else NA),
        'CI ±': [fmt_diff(h, m).lstrip('+') if finite(h) else NA
                 for h, m in zip(c['ci_half_width'], c['metric'])],
        'min p': c['min_attainable_p'].map(fmt_p),
        'min p (Holm)': c['min_attainable_p_holm'].map(fmt_p)})
    if image:
        df['image diff [CI], p'] = [
            f'{fmt_diff(d, m)} [{fmt_diff(lo, m)}, {fmt_diff(hi, m)}], p={fmt_p(p)}'
            if finite(d) else NA
            for d, lo, hi, p, m in zip(c['image_diff'], c['image_ci_low'], c['image_ci_high'],
                                       c['image_p'], c['metric'])]
    base = ', '.join(dict.fromkeys(c['baseline_label']))
    return (f'Each variant vs **{base}**: diff = variant − baseline, paired by seed.\n\n'
            + to_markdown(df))


def per_joint_markdown(per_joint: pd.DataFrame, methods: Sequence[str], baseline: str,
                       labels: Mapping[str, str]) -> str:
    """Keypoints × methods (mean PCK@0.1) plus one Δ column per variant vs the baseline, with
    the difference's paired CI."""
    if per_joint.empty:
        return '_No per-joint results._\n'
    present = [m for m in methods if (per_joint.method == m).any()]
    joints = list(dict.fromkeys(per_joint['joint']))
    idx = per_joint.set_index(['joint', 'method'])
    table = {'keypoint': joints}
    for m in present:
        table[labels.get(m, m)] = [fmt_value(idx.loc[(j, m), 'pck']) if (j, m) in idx.index
                                   else NA for j in joints]
    if baseline in present:
        for m in present:
            if m == baseline:
                continue
            table[f'Δ {labels.get(m, m)} [CI]'] = [
                _diff_with_ci(idx.loc[(j, m)]) if (j, m) in idx.index else NA for j in joints]
    return to_markdown(pd.DataFrame(table))


def _diff_with_ci(row) -> str:
    cell = fmt_diff(row['diff_vs_baseline'])
    lo, hi = row.get('diff_ci_low', math.nan), row.get('diff_ci_high', math.nan)
    if finite(lo) and finite(hi):
        cell += f' [{fmt_diff(lo)}, {fmt_diff(hi)}]'
    return cell


def failed_markdown(runs: pd.DataFrame, labels: Mapping[str, str]) -> str:
    failed = runs[runs.status != 'ok']
    if failed.empty:
        return f'None: all {len(runs)} runs finished and are included.\n'
    df = pd.DataFrame({'method': [labels.get(m, m) for m in failed['method']],
                       'seed': failed['seed'].map(fmt_int), 'status': failed['status'],
                       'message': failed['message'].map(lambda s: s or NA)})
    return (f'{len(failed)} of {len(runs)} runs did not finish and are excluded from every '
            f'table and figure:\n\n' + to_markdown(df))
