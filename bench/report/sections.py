"""README sections that say what each score is, and when a score cannot decide anything.

Each function returns Markdown; every number in it is formatted from a DataFrame that the
report also writes as a CSV (``summary.csv``, ``ap_resolution.csv``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from bench.report import metric_table, stats, tables
from bench.report.ap_resolution import AP_LOOSEST_OKS, ap_resolution
from bench.report.collect import Study


def scores_markdown(reach: str) -> str:
    """The definition of every per-run score of the tables (``reach``: the name of the
    "epochs to reach" metric), from the metric table."""
    rows = metric_table.definitions(reach)
    return ('### What each score is\n\n'
            + tables.to_markdown(pd.DataFrame(rows, columns=['score', 'definition'])))


AP_RESOLUTION_COLUMNS = ['method', 'label', 'oks_level', 'median_tolerance_px',
                         'median_heatmap_px', 'median_ratio', 'share_below_one', 'n',
                         'ap_separates']


def ap_resolution_table(study: Study, methods: Sequence[str],
                        labels: Mapping[str, str]) -> pd.DataFrame:
    """Per method (its first successful run: the test instances and geometry are those of
    every seed), :func:`bench.report.ap_resolution.ap_resolution` at AP's loosest OKS, and
    ``ap_separates``: False when the median tolerance is below one heatmap pixel."""
    rows = []
    for m in methods:
        seeds = [s for s in study.ok_seeds(m) if (m, s) in study.keypoints]
        if not seeds:
            continue
        r = ap_resolution(study.keypoints[(m, seeds[0])], AP_LOOSEST_OKS)
        rows.append(dict(method=m, label=labels.get(m, m), oks_level=AP_LOOSEST_OKS, **r,
                         ap_separates=(bool(r['median_ratio'] >= 1)
                                       if stats.finite(r['median_ratio']) else None)))
    return pd.DataFrame(rows, columns=AP_RESOLUTION_COLUMNS)


def ap_markdown(table: pd.DataFrame) -> str:
    """The AP resolution check (from :func:`ap_resolution_table`)."""
    known = table[table['ap_separates'].notna()] if not table.empty else table
    if known.empty:
        return ('_AP resolution check unavailable (the keypoint dumps hold no OKS sigmas, '
                'areas or heatmap size)._\n')
    worst = known.loc[known['median_ratio'].idxmin()]
    numbers = (f'at OKS {AP_LOOSEST_OKS:g} (AP\'s loosest threshold) a keypoint tolerates a '
               f'median {worst["median_tolerance_px"]:.1f} image px, against '
               f'{worst["median_heatmap_px"]:.1f} image px per heatmap pixel (ratio '
               f'{worst["median_ratio"]:.2f}; {worst["share_below_one"]:.0%} of the labelled '
               'test keypoints tolerate less than one heatmap pixel; '
               '[`ap_resolution.csv`](ap_resolution.csv))')
    if (known['ap_separates'] == False).any():  # noqa: E712 -- a pandas column of bools
        return (f'> **AP cannot separate the methods at this resolution**: {numbers}. An '
                'error of a fraction of a heatmap pixel, the decoding grid itself, already '
                'costs most of the tolerance, so AP differences here are decoding noise; '
                'compare PCK, AUC, EPE and mean OKS instead.\n')
    return f'AP resolution check: {numbers}; AP can resolve the methods.\n'


def pixel_calibration_markdown(summary: pd.DataFrame, methods: Sequence[str]) -> str:
    """The per-pixel calibration section: what is measured, the pixel ECE per classification
    method (from ``summary``), the figure."""
    s = summary[(summary.metric == 'pixel_ECE') & summary.method.isin(methods)
                & (summary['n'] > 0)]
    text = ('Are the classification outputs honest probabilities? Every pixel × class entry of '
            'every test image is a forecast: the K+1 softmax (one forward pass, no flip test) '
            'against the probability that the codec\'s soft target gives that class at that '
            'pixel. A point on the diagonal: where the network says p, the target holds p on '
            'average. The ECE is class-wise (bins per channel, so that errors of different '
            'classes cannot cancel) over all entries, most of them near 0 (keypoint channels '
            'far from their keypoint), which dilutes it: read the curves, not only the '
            'number.\n')
    figure = '\n![Per-pixel calibration](figures/pixel_calibration.png)\n'
    if s.empty:
        return text + '\n_No classification method in this study._\n' + figure
    rows = [(r.label, tables.fmt_value(r.mean, 'pixel_ECE')
             + (f' [{tables.fmt_value(r.ci_low, "pixel_ECE")}, '
                f'{tables.fmt_value(r.ci_high, "pixel_ECE")}]'
                if stats.finite(r.ci_low) else ''), tables.fmt_int(r.n))
            for r in s.itertuples()]
    return (text + '\n' + tables.to_markdown(pd.DataFrame(
        rows, columns=['method', 'pixel ECE (mean [Student-t CI])', 'seeds'])) + figure)
