"""The report's account of the instrument itself: what each method is (from its resolved config),
its codec floor next to its trained result, and the loss mechanisms measured during training.

Inputs: ``reports/methods.csv`` and ``reports/codec_floor.csv`` (stage ``floor``), the summary
table, and the per-epoch DVCLive curves ``train/bg_kept``, ``train/bg_part``, ``train/fg_part``
and ``train/part_ratio`` of the classification runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.report import stats, tables

#: DVCLive curves of the loss mechanisms, and what the figure calls them.
MECHANISM_CURVES = {
    'train/bg_kept': 'background pixels kept by mining (fraction)',
    'train/part_ratio': 'background part / positive part of the loss',
    'train/bg_part': 'background part of the loss',
    'train/fg_part': 'positive part of the loss',
}


def read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def methods_markdown(described: pd.DataFrame | None, methods: Sequence[str],
                     seeds_ok: Mapping[str, int]) -> str:
    """The method table: head, codec, decoding, refinement, test-time flip and loss of each
    active method, as generated from the resolved configs by the ``floor`` stage, and the
    number of successful seeds."""
    if described is None:
        return '_`methods.csv` is missing: run `dvc repro floor`._\n'
    d = described.set_index('method')
    rows = [(d.at[m, 'label'], f'`{m}`', f'`{d.at[m, "head"]}`', f'`{d.at[m, "codec"]}`',
             d.at[m, 'decoding'], d.at[m, 'refinement'], d.at[m, 'test_time'],
             f'`{d.at[m, "loss"]}`', tables.fmt_int(seeds_ok.get(m, 0)))
            for m in methods if m in d.index]
    return tables.to_markdown(pd.DataFrame(rows, columns=[
        'method', 'key', 'head', 'codec', 'decoding', 'refinement', 'test time', 'loss',
        'seeds ok']))


def floor_table(floor: pd.DataFrame | None, summary: pd.DataFrame, metric: str,
                labels: Mapping[str, str]) -> pd.DataFrame:
    """Per method of the floor file: its floor and, for trained (active) methods, the trained
    mean of ``metric`` and the share of the floor it reaches."""
    if floor is None or metric not in floor:
        return pd.DataFrame()
    trained = summary[summary.metric == metric].set_index('method')['mean']
    rows = []
    for r in floor.to_dict('records'):  # itertuples would rename 'PCK@0.1' (not a name)
        mean = trained.get(r['method'], np.nan)
        fl = r.get(metric, np.nan)
        rows.append(dict(method=r['method'], label=labels.get(r['method'], r['label']),
                         trained=bool(r['active']), floor=fl, result=mean,
                         share=mean / fl if stats.finite(mean) and stats.finite(fl) and fl
                         else np.nan, note=r.get('note', '') if isinstance(r.get('note'), str)
                         else ''))
    return pd.DataFrame(rows)


def floor_markdown(floor: pd.DataFrame | None, summary: pd.DataFrame,
                   thresholds: Sequence[float], headline: str,
                   labels: Mapping[str, str]) -> str:
    """The codec-floor section: the floor of every defined method (PCK at each threshold, EPE),
    then the trained result next to its floor on the headline metric."""
    if floor is None:
        return '_`codec_floor.csv` is missing: run `dvc repro floor`._\n'
    pcks = [f'PCK@{t:g}' for t in thresholds]
    cols = [c for c in pcks + ['EPE'] if c in floor]
    rows = []
    for r in floor.to_dict('records'):  # itertuples would rename 'PCK@0.1' (not a name)
        rows.append([labels.get(r['method'], r['label']), f'`{r["method"]}`',
                     'yes' if r['active'] else 'no',
                     *(tables.fmt_value(r[c], c) for c in cols),
                     r['note'] if isinstance(r.get('note'), str) else ''])
    out = [tables.to_markdown(pd.DataFrame(rows, columns=['method', 'key', 'trained', *cols,
                                                           'note']))]
    share = floor_table(floor, summary, headline, labels)
    share = share[share.trained] if not share.empty else share
    if not share.empty:
        out.append(f'Trained result against its floor ({headline}, mean over seeds):\n')
        out.append(tables.to_markdown(pd.DataFrame(
            [(r.label, tables.fmt_value(r.floor, headline), tables.fmt_value(r.result, headline),
              f'{r.share:.1%}' if stats.finite(r.share) else '—')
             for r in share.itertuples()],
            columns=['method', 'floor', 'trained', 'share of the floor'])))
    return '\n'.join(out)


def floors_equal(floor: pd.DataFrame | None, methods: Sequence[str], metric: str,
                 tol: float = 0.01) -> bool | None:
    """Whether the active methods' floors on ``metric`` lie within ``tol`` of each other
    (None when unknown)."""
    if floor is None or metric not in floor:
        return None
    vals = floor.set_index('method').reindex(list(methods))[metric].dropna()
    if len(vals) < 2:
        return None
    return bool(vals.max() - vals.min() <= tol)


def mechanism_curves(study, methods: Sequence[str]) -> pd.DataFrame:
    """The loss-mechanism curves (method, seed, name, epoch, value) of ``methods``;
    ``train/part_ratio`` is derived from the two parts for runs that did not log it."""
    c = study.curves
    if c.empty:
        return c
    c = c[c.name.isin(MECHANISM_CURVES) & c.method.isin(methods)]
    keys = ['method', 'seed', 'epoch']
    parts = c[c.name.isin(['train/bg_part', 'train/fg_part'])].pivot_table(
        index=keys, columns='name', values='value')
    if {'train/bg_part', 'train/fg_part'} <= set(parts.columns):
        have = set(map(tuple, c.loc[c.name == 'train/part_ratio', keys].to_numpy()))
        ratio = (parts['train/bg_part'] / parts['train/fg_part']).rename('value').reset_index()
        ratio = ratio[[tuple(r) not in have for r in ratio[keys].to_numpy()]]
        c = pd.concat([c, ratio.assign(name='train/part_ratio')], ignore_index=True)
    return c.sort_values(['method', 'seed', 'name', 'epoch']).reset_index(drop=True)


def mechanism_table(study, methods: Sequence[str], labels: Mapping[str, str]) -> pd.DataFrame:
    """Last-epoch mechanism values per method: mean over seeds of each curve."""
    c = mechanism_curves(study, methods)
    if c.empty:
        return pd.DataFrame()
    last = c[c.epoch == c.groupby(['method', 'seed', 'name']).epoch.transform('max')]
    t = last.groupby(['method', 'name']).value.mean().unstack('name')
    t.index = [labels.get(m, m) for m in t.index]
    return t


def mechanism_figure(study, methods: Sequence[str], labels: Mapping[str, str], path: Path, *,
                     confidence: float = 0.95, miners: Sequence[str] | None = None) -> Path:
    """Per method over epochs, mean and Student-t CI over seeds: the fraction of background
    pixels that mining kept (only the methods of ``miners``, when given: a loss that does not
    mine keeps everything by definition, and its line would hide a mining one at 1.0), and the
    background/positive ratio of the loss's two parts (log scale; 1 = balanced). A placeholder
    when no run logged them."""
    import matplotlib.pyplot as plt
    from scipy import stats as sps

    from bench.report.figures import placeholder, save
    c = mechanism_curves(study, methods)
    if miners is not None:
        c = c[(c.name != 'train/bg_kept') | c.method.isin(list(miners))]
    if c.empty:  # a DVC out: always written
        return placeholder(path, 'Loss mechanisms',
                            'no active method logged its loss parts (classification losses do)')
    panels = [n for n in ('train/bg_kept', 'train/part_ratio') if n in set(c.name)]
    if not panels:
        return placeholder(path, 'Loss mechanisms', 'no run logged a kept fraction or both parts')
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    from bench.report.figures import palette
    colors = palette(list(methods))
    for ax, name in zip(axes[0], panels):
        d = c[c.name == name]
        for m in methods:
            dm = d[d.method == m]
            if dm.empty:
                continue
            g = dm.groupby('epoch').value
            mean, sd, n = g.mean(), g.std(ddof=1), g.count()
            half = sps.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
            ax.plot(mean.index, mean.values, marker='o', ms=3, color=colors[m],
                    label=labels.get(m, m))
            ok = n > 1
            ax.fill_between(mean.index[ok], (mean - half)[ok], (mean + half)[ok],
                            color=colors[m], alpha=0.2, lw=0)
        ax.set_title(MECHANISM_CURVES[name], fontsize=10)
        ax.set_xlabel('epoch')
        if name == 'train/part_ratio':
            ax.set_yscale('log')
            ax.axhline(1.0, color='grey', lw=0.8, ls='--')
        else:
            ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f'Loss mechanisms during training (mean, {confidence:.0%} t-CI over seeds)',
                 fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def mines(loss: Mapping | None) -> bool:
    """Whether a method's ``loss`` config does hard negative mining (``neg_pos_ratio``)."""
    return (loss or {}).get('neg_pos_ratio') is not None


#: Mining that keeps at least this share of the background discards (next to) nothing.
MINING_KEEPS_ALL = 0.99
#: Parts further apart than this factor (either way) are not "of the same order".
PARTS_APART = 3.0


def mechanism_verdicts(study, methods: Sequence[str], losses: Mapping[str, dict | None],
                       labels: Mapping[str, str]) -> pd.DataFrame:
    """Whether each classification method's loss mechanisms did what their names say, from the
    logged per-epoch curves (every epoch of every seed):

    - ``mining``: the loss mines (``neg_pos_ratio``); ``bg_kept_mean`` / ``bg_kept_max`` the
      mean and largest per-epoch kept fraction; ``mining_acts`` False when the mean is at least
      :data:`MINING_KEEPS_ALL` (the method was plain CE on these targets);
    - ``balancing``: the loss's ``balance`` (``count``, ``value``) or ``none``;
      ``ratio_min`` / ``ratio_max`` the extremes of background part / positive part over epochs;
      ``balanced`` False when a balancing loss's parts were more than :data:`PARTS_APART`
      apart at any epoch (None for a loss that does not balance);
    - ``what_it_was``: the name the conclusion uses when a mechanism did not act (else '').
    """
    c = mechanism_curves(study, methods)
    rows = []
    for m in methods:
        loss = dict(losses.get(m) or {})
        if c.empty or m not in set(c.method):
            continue
        cm = c[c.method == m]
        kept = cm[cm.name == 'train/bg_kept'].value
        ratio = cm[cm.name == 'train/part_ratio'].value
        mining = mines(loss)
        balance = loss.get('balance') or 'none'
        kept_mean = float(kept.mean()) if len(kept) else np.nan
        acts = None if not mining or not len(kept) else bool(kept_mean < MINING_KEEPS_ALL)
        rmin = float(ratio.min()) if len(ratio) else np.nan
        rmax = float(ratio.max()) if len(ratio) else np.nan
        balanced = None
        if balance != 'none' and len(ratio):
            balanced = bool(rmax <= PARTS_APART and rmin >= 1 / PARTS_APART)
        what = []
        if acts is False:
            what.append('mining kept ≥ 99% of the background: plain CE on these targets')
        if balanced is False:
            what.append(f'its parts were up to {max(rmax, 1 / rmin):.0f}× apart: not '
                        'balanced in value')
        rows.append(dict(method=m, label=labels.get(m, m), mining=mining,
                         bg_kept_mean=kept_mean,
                         bg_kept_max=float(kept.max()) if len(kept) else np.nan,
                         mining_acts=acts, balancing=balance, ratio_min=rmin, ratio_max=rmax,
                         balanced=balanced, what_it_was='; '.join(what)))
    return pd.DataFrame(rows)


def verdicts_markdown(verdicts: pd.DataFrame) -> str:
    """The table of :func:`mechanism_verdicts` and one warning line per mechanism that did not
    act as named."""
    if verdicts.empty:
        return ''
    rows = []
    for r in verdicts.itertuples():
        if r.mining:
            mined = (f'{"yes" if r.mining_acts else "**no**"}: kept {r.bg_kept_mean:.2f} of the '
                     f'background (epoch max {r.bg_kept_max:.2f})')
        else:
            mined = 'no mining'
        if r.balancing == 'none':
            bal = f'not balanced by design: bg/positive {r.ratio_min:.2f}–{r.ratio_max:.2f}'
        else:
            bal = (f'{"yes" if r.balanced else "**no**"} ({r.balancing}): bg/positive '
                   f'{r.ratio_min:.2f}–{r.ratio_max:.2f} over epochs')
        rows.append((r.label, f'`{r.method}`', mined, bal))
    out = [tables.to_markdown(pd.DataFrame(rows, columns=[
        'method', 'key', 'mining discarded background?', 'parts balanced?']))]
    for r in verdicts.itertuples():
        if r.what_it_was:
            out.append(f'> **Warning — {r.label}**: {r.what_it_was}.\n')
    return '\n'.join(out)
