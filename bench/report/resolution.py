"""The resolution axis: where does each formulation win?

With ``params.yaml`` ``sweep``, every active method is trained at several geometries (heatmap
size with the matching input size, and sigma). At each geometry, each method is compared with
the baseline *at that geometry*, paired by seed (:func:`bench.report.tables.comparison_table`,
Holm over the variants of that geometry): the table ``reports/resolution.csv`` and the figure
``figures/resolution.png`` show the paired difference of the headline metric with its CI
against heatmap resolution, one line per method. A difference measured at one resolution says
nothing about another: published gains of classification and heatmap-free formulations sit at
low resolution.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.report.collect import Study
from bench.report.tables import comparison_table, fmt_diff, fmt_p, fmt_value, to_markdown

COLUMNS = ['geometry', 'input_size', 'heatmap_size', 'sigma', 'variant', 'variant_label',
           'baseline', 'metric', 'n', 'baseline_mean', 'variant_mean', 'mean_diff', 'ci_low',
           'ci_high', 'p_holm', 'seed_win_rate', 'baseline_floor', 'variant_floor']


def _mean(study: Study, method: str, metric: str) -> float:
    m = study.metrics
    v = m.loc[(m.method == method) & (m.metric == metric), 'value'].to_numpy(float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float('nan')


def resolution_table(points: Sequence[dict], baseline: str, headline: str,
                     labels: Mapping[str, str], *, confidence: float = 0.95,
                     floor: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (geometry, variant): the paired difference of ``headline`` to ``baseline``
    at that geometry.

    Args:
        points: one dict per geometry, in axis order, with ``study`` (its runs), ``tag``
            (``hm32s2``), ``input_size`` (w, h), ``heatmap_size`` (W, H) and ``sigma``.
        floor: ``codec_floor.csv`` (with its ``geometry`` column): the baseline's and each
            variant's floor of ``headline`` at each geometry go in ``baseline_floor`` /
            ``variant_floor`` (NaN where there is none), so that a difference at a
            resolution where the floors differ is read as partly the codecs'.
    """
    def floor_of(method: str, tag: str) -> float:
        if floor is None or headline not in floor or 'geometry' not in floor:
            return float('nan')
        v = floor.loc[(floor.method == method) & (floor.geometry == tag), headline]
        return float(v.iat[0]) if len(v) else float('nan')

    rows = []
    for p in points:
        study: Study = p['study']
        # headline='': no per-image bootstrap (the seed-level test is what the figure shows)
        comp = comparison_table(study, [headline], baseline, labels, headline='',
                                confidence=confidence)
        base_mean = _mean(study, baseline, headline)
        for r in comp.itertuples():
            rows.append(dict(geometry=p['tag'], input_size='x'.join(map(str, p['input_size'])),
                             heatmap_size='x'.join(map(str, p['heatmap_size'])),
                             sigma=float(p['sigma']), variant=r.variant,
                             variant_label=r.variant_label, baseline=baseline,
                             metric=headline, n=int(r.n), baseline_mean=base_mean,
                             variant_mean=_mean(study, r.variant, headline),
                             mean_diff=r.mean_diff, ci_low=r.ci_low, ci_high=r.ci_high,
                             p_holm=r.p_holm, seed_win_rate=r.seed_win_rate,
                             baseline_floor=floor_of(baseline, p['tag']),
                             variant_floor=floor_of(r.variant, p['tag'])))
    return pd.DataFrame(rows, columns=COLUMNS)


def uneven_floors(table: pd.DataFrame, tolerance: float = 0.01) -> list[str]:
    """``<geometry>: <method>`` for every row whose codec floor differs from the baseline's at
    the same geometry by more than ``tolerance`` (rows without both floors are skipped)."""
    gap = (table.variant_floor - table.baseline_floor).abs()
    rows = table[gap > tolerance]
    return [f'{g} ({v})' for g, v in zip(rows.geometry, rows.variant_label)]


def resolution_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown: one row per geometry × variant."""
    if table.empty:
        return '_No resolution sweep in this profile (`sweep: []`)._\n'
    df = pd.DataFrame({
        'geometry': table.geometry, 'input': table.input_size, 'heatmap': table.heatmap_size,
        'σ': table.sigma.map(lambda s: f'{s:g}'), 'method': table.variant_label,
        'n': table.n,
        f'Δ {table.metric.iat[0]} [CI]': [
            f'{fmt_diff(d, m)} [{fmt_diff(lo, m)}, {fmt_diff(hi, m)}]'
            for d, lo, hi, m in zip(table.mean_diff, table.ci_low, table.ci_high, table.metric)],
        'p (Holm)': table.p_holm.map(fmt_p),
        'floor (base / method)': [f'{fmt_value(b, m)} / {fmt_value(v, m)}' for b, v, m in
                                  zip(table.baseline_floor, table.variant_floor, table.metric)]})
    return to_markdown(df)


def resolution_figure(table: pd.DataFrame, methods: Sequence[str], labels: Mapping[str, str],
                      path: Path, *, baseline_label: str = '') -> Path:
    """Paired difference to the baseline (with its CI) against heatmap height, per method."""
    from bench.report import figures as F
    plt = F.plt
    if table.empty:
        return F.placeholder(path, 'Paired difference vs heatmap resolution',
                              'no resolution sweep in this profile (params.yaml `sweep`)')
    names = F.display_names(methods, labels)
    colors = F.palette(methods)
    metric = table.metric.iat[0]
    # x: heatmap height; several sigmas at one size sit side by side, in table order
    df = table.assign(hm=table.heatmap_size.map(lambda s: int(s.split('x')[-1])))
    sizes = sorted(df.hm.unique())
    variants = [m for m in methods if m in set(df.variant)]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.axhline(0, color='0.3', lw=1, ls='--')
    width = 0.25 / max(len(variants), 1)
    for i, v in enumerate(variants):
        d = df[df.variant == v].sort_values(['hm', 'sigma'], kind='stable')
        # one line per method through its first sigma at each size (the usual design: sigma
        # scales with the heatmap); a second sigma at one size starts a second, dotted line
        d = d.assign(rank=d.groupby('hm').cumcount())
        for j, part in d.groupby('rank', sort=True):
            x = np.log2(part.hm.to_numpy(float)) + (i - (len(variants) - 1) / 2) * width
            y = part.mean_diff.to_numpy(float)
            err = np.vstack([y - part.ci_low.to_numpy(float), part.ci_high.to_numpy(float) - y])
            ax.errorbar(x, y, yerr=err, color=colors[v], marker='os^D'[j % 4], capsize=3,
                        lw=1.5, ls='-' if j == 0 else ':',
                        label=names[v] if j == 0 else f'{names[v]} (other σ)')
            for xi, yi, sg in zip(x, y, part.sigma):
                if np.isfinite(yi):
                    ax.annotate(f'σ{sg:g}', (xi, yi), textcoords='offset points',
                                xytext=(4, 4), fontsize=7, color=colors[v])
    ax.set_xticks(np.log2(sizes), [f'{s}' for s in sizes])
    # half an octave of margin: one size alone would otherwise push the dodged points apart
    ax.set_xlim(np.log2(sizes[0]) - 0.5, np.log2(sizes[-1]) + 0.5)
    ax.set_xlabel('heatmap size (input size scales with it)')
    ax.set_ylabel(f'Δ {metric} vs {baseline_label or "baseline"}')
    ax.set_title(f'Paired difference to the baseline vs heatmap resolution\n'
                 f'(mean over seeds, {int(df.n.max())} max, Student-t CI)', fontsize=11)
    ax.legend(fontsize=8, loc='best', frameon=False)
    ax.grid(alpha=0.3)
    return F.save(fig, path)
