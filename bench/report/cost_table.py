"""The cost table: per method, what it costs (parameters, FLOPs, train step and inference time,
from :mod:`bench.evaluation.model_cost`) next to its headline accuracy, and the accuracy per
unit of compute.

:func:`cost_table` builds the DataFrame (one row per method), :func:`cost_markdown` formats it
for the README with :mod:`bench.report.tables`' helpers. Same inputs, same output: rows follow
the summary's method order (then any method with costs only, sorted), medians over seeds.

Accuracy per cost is ``mean / model GFLOPs`` (``mean_per_gflop``): the headline mean over
seeds divided by the FLOPs of one whole forward pass (backbone + neck + head, one image) in
units of 10^9 multiply-adds. The whole network, not the head: that is what inference on one
image costs, and the head alone would make a near-free head (RLE's single linear layer) look
infinitely efficient while it still needs the whole backbone. FLOPs, not milliseconds: counted
FLOPs depend on the architecture only, measured milliseconds on the machine, its load and its
threads (they stay in their own columns). Only for a higher-is-better headline (PCK, AUC, AP):
an error per GFLOP (EPE) rewards compute for being *worse*, so it is left empty (NaN).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.report.collect import higher_is_better
from bench.report.stats import finite
from bench.report.tables import NA, fmt_value, to_markdown

#: What :func:`cost_table` reads from ``costs`` (besides method and seed)
COST_INPUT = ['head_params', 'head_flops', 'model_params', 'model_flops', 'train_step_ms',
              'infer_ms']
COST_COLUMNS = ['method', 'label', 'n_runs', 'head_params', 'head_flops', 'model_params',
                'model_flops', 'train_step_ms', 'infer_ms', 'metric', 'mean', 'mean_per_gflop']


def _median(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors='coerce').to_numpy(float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def cost_table(costs: pd.DataFrame, summary: pd.DataFrame, headline: str,
               labels: Mapping[str, str] | Sequence[str] | None = None) -> pd.DataFrame:
    """One row per method: ``label``, ``n_runs`` (rows of ``costs``), the medians over its runs
    of ``head_params``, ``head_flops``, ``model_params``, ``model_flops`` (equal for every seed
    of a method; the median only guards against a stray row), ``train_step_ms`` (one training
    iteration) and ``infer_ms`` (inference, per image): NaN where no run has a value; then the
    ``headline`` ``metric``'s ``mean`` from ``summary`` (:func:`bench.report.tables.summary_table`)
    and ``mean_per_gflop`` = mean / (model_flops / 1e9) (module docstring: why, and why NaN for a
    lower-is-better headline).

    Args:
        costs: one row per (method, seed), columns ``method``, ``seed`` and :data:`COST_INPUT`
            (missing columns count as NaN)
        summary: the report's summary table (``method``, ``label``, ``metric``, ``mean``, ...)
        headline: the headline metric (``report.headline_metric``)
        labels: method -> label; a label in ``summary`` is used otherwise, then the method name.
            A sequence of methods is accepted as a row order (labels then from ``summary``)
    """
    label_map: dict[str, str] = {}
    order: list[str] = []
    if summary is not None and not summary.empty:
        order += list(dict.fromkeys(summary['method']))
        if 'label' in summary:
            label_map.update(dict(zip(summary['method'], summary['label'])))
    if isinstance(labels, Mapping):
        label_map.update(labels)
    elif labels is not None:
        order = list(dict.fromkeys(list(labels) + order))
    costs = costs if costs is not None else pd.DataFrame(columns=['method', 'seed'])
    extra = sorted(set(costs['method']) - set(order)) if 'method' in costs else []
    order += extra

    means: dict[str, float] = {}
    if summary is not None and not summary.empty:
        sel = summary[summary['metric'] == headline]
        means = {m: float(v) for m, v in zip(sel['method'], sel['mean'])}
    per_gflop_ok = higher_is_better(headline)

    rows = []
    for method in order:
        c = costs[costs['method'] == method] if 'method' in costs else costs.iloc[:0]
        row = dict(method=method, label=label_map.get(method, method), n_runs=int(len(c)))
        for col in COST_INPUT:
            row[col] = _median(c[col]) if col in c else math.nan
        mean = means.get(method, math.nan)
        row.update(metric=headline, mean=mean)
        gflops = row['model_flops'] / 1e9
        row['mean_per_gflop'] = (mean / gflops if per_gflop_ok and finite(mean)
                                 and finite(gflops) and gflops > 0 else math.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=COST_COLUMNS)


# --------------------------------------------------------------------------------- formatting

def fmt_count(x) -> str:
    """A parameter or FLOP count with an SI prefix (k, M, G) and 3 significant digits:
    82609 -> '82.6 k', 19724288 -> '19.7 M', 999999 -> '1 M', 512 -> '512'."""
    if not finite(x):
        return NA
    x = float(x)
    prefixes = ((1.0, ''), (1e3, ' k'), (1e6, ' M'), (1e9, ' G'))
    i = max([j for j, (scale, _) in enumerate(prefixes) if abs(x) >= scale] or [0])
    text = fmt_sig(x / prefixes[i][0])
    if abs(float(text)) >= 1000 and i + 1 < len(prefixes):   # 999.9 k rounds to 1000 k
        i += 1
        text = fmt_sig(x / prefixes[i][0])
    return text + prefixes[i][1]


def fmt_ms(x) -> str:
    """Milliseconds: 2 decimals under 10 ms, 1 under 100, none above."""
    if not finite(x):
        return NA
    x = float(x)
    return f'{x:.2f}' if abs(x) < 10 else f'{x:.1f}' if abs(x) < 100 else f'{x:.0f}'


def fmt_sig(x, digits: int = 3) -> str:
    """``digits`` significant digits, never in exponent form: 39.036 -> '39', 0.19254 ->
    '0.193'."""
    if not finite(x):
        return NA
    return np.format_float_positional(float(x), precision=digits, unique=False,
                                      fractional=False, trim='-')


def cost_markdown(table: pd.DataFrame) -> str:
    """The cost table as Markdown (numbers formatted from :func:`cost_table`'s DataFrame)."""
    if table.empty:
        return '_No cost measurements._\n'
    metric = str(table['metric'].iloc[0])
    arrow = '↑' if higher_is_better(metric) else '↓'
    df = pd.DataFrame({
        'method': table['label'],
        'head params': table['head_params'].map(fmt_count),
        'head FLOPs': table['head_flops'].map(fmt_count),
        'model params': table['model_params'].map(fmt_count),
        'model FLOPs': table['model_flops'].map(fmt_count),
        'train step (ms)': table['train_step_ms'].map(fmt_ms),
        'inference (ms/img)': table['infer_ms'].map(fmt_ms),
        f'{metric} {arrow}': [fmt_value(v, metric) for v in table['mean']],
        f'{metric} per GFLOP': table['mean_per_gflop'].map(fmt_sig)})
    return ('FLOPs: multiply-adds of one forward pass on one image (MMEngine\'s counter, one '
            'multiply-add = one FLOP; element-wise operations not counted); "model" is backbone '
            '+ neck + head, parameters exclude train-only loss modules. Train step: median '
            'logged time of a training iteration (batch included, data loading included) in the '
            'last epoch; inference: median `test_step` time per image (flip test and decoding '
            f'included). Medians over seeds. {metric} per GFLOP: the seeds\' mean {metric} '
            'divided by the model\'s GFLOPs.\n\n' + to_markdown(df))
