"""Every per-run metric of the report, in one table: its name, where its value comes from,
which way is better, whether it compares across formulations, whether the README's main table
shows it, and its definition. Collection (:mod:`bench.report.collect`), the tables
(:mod:`bench.report.tables`), the definitions section and the comparison read it; adding a
metric is one row here (plus the code that computes it, if it is new).

``source``: ``'pck'`` (one per ``eval.pck_thresholds``, from ``metrics.json``), ``'file'``
(``metrics.json``), ``'confidence'`` (computed by the report from ``keypoints*.npz``:
:func:`bench.report.collect.confidence_metrics`), ``'pixel'`` (``metrics.json``,
classification heads only), ``'reach'`` (the validation curve: epochs to a PCK level).
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.evaluation.metrics import AUC_RANGE, AUC_STEPS

#: PCK threshold of the confidence "hit" and of the per-joint table (MMPose's per-joint PCK).
HIT_THRESHOLD = 0.1
_HIT = f'hit = the keypoint counts in PCK@{HIT_THRESHOLD:g}'


@dataclass(frozen=True)
class Metric:
    """One row of :data:`METRICS`. ``name`` is the column of the tables (``'PCK@t'`` and
    ``'epochs_to'`` stand for their families); ``main``: position in the README's main table
    (None: not there); ``figure``: position in the metric-comparison figure, after the
    headline (None: not drawn); ``group``: the row of the definitions table it is defined in
    (the first metric of a group carries the ``definition``)."""
    name: str
    source: str
    higher_is_better: bool = True
    comparable: bool = True
    main: int | None = None
    figure: int | None = None
    group: str | None = None
    definition: str = ''


METRICS: tuple[Metric, ...] = (
    Metric('PCK@t', 'pck', main=0, definition=(
        'MMPose `keypoint_pck_accuracy`: per keypoint type, the share of its labelled test '
        'instances predicted strictly closer than t × bbox size; then the mean over the '
        'keypoint types labelled at least once. The one PCK of this report: headline, '
        'per-joint, curves, AUC and the bootstrap over test instances.')),
    Metric('AUC', 'file', main=1, figure=1, definition=(
        f'mean of the PCK curve at t = 0, {AUC_RANGE / AUC_STEPS:g}, …, '
        f'{AUC_RANGE * (AUC_STEPS - 1) / AUC_STEPS:g} (MMPose `keypoint_auc`, bbox-'
        'normalised).')),
    Metric('EPE', 'file', higher_is_better=False, main=2, figure=3, definition=(
        'MMPose `keypoint_epe`: mean distance in image pixels over labelled keypoints.')),
    Metric('mean_OKS', 'file', main=4, definition=(
        'mean over test instances of COCO\'s object keypoint similarity (dataset sigmas, '
        'annotated area); its distribution: [`oks.png`](figures/oks.png).')),
    Metric('AP', 'file', main=3, figure=2, group='AP, AP50, AP75', definition=(
        'COCO keypoint AP (MMPose `CocoMetric`) over OKS thresholds 0.50:0.95; see the '
        'resolution check below.')),
    Metric('AP50', 'file', group='AP, AP50, AP75'),
    Metric('AP75', 'file', group='AP, AP50, AP75'),
    Metric('AUROC', 'confidence', main=5, definition=(
        f'probability that a hit scores higher than a miss ({_HIT}): how well the keypoint '
        'score ranks correct keypoints. It depends on the order of the scores only, so heatmap '
        'maxima and softmax probabilities compare.')),
    Metric('ECE_cal', 'confidence', higher_is_better=False, main=6,
           group='ECE_cal, Brier_cal', definition=(
               'expected calibration error (10 bins) and Brier score of the keypoint scores '
               'against a hit after isotonic recalibration fitted on the run\'s validation '
               'split: what stays miscalibrated once the best monotone map to P(hit) is learnt '
               'on held-out data. Comparable across formulations.')),
    Metric('Brier_cal', 'confidence', higher_is_better=False, group='ECE_cal, Brier_cal'),
    # a heatmap maximum is not a probability: reported per method, never tested between them
    Metric('ECE_raw', 'confidence', higher_is_better=False, comparable=False, definition=(
        'ECE of the raw scores clipped to [0, 1] against a hit. Not comparable across '
        'formulations: a regression score is a heatmap maximum, not a probability, and a '
        'classification peak probability is capped by its own soft target where keypoints '
        'crowd.')),
    Metric('pixel_ECE', 'pixel', higher_is_better=False, definition=(
        'classification heads only: class-wise ECE over every pixel × class of the K+1 '
        'softmax against the codec\'s soft target on the test split (one forward pass, no flip '
        'test; 20 bins per class): the claim "honest probabilities", measured.')),
    Metric('epochs_to', 'reach', higher_is_better=False, main=7, definition=(
        'first epoch whose validation PCK@0.1 reaches the level. A run that never reaches it '
        'is censored (∞): counted in n, never dropped; the tables give the median with '
        'censored runs at ∞ and how many never reached it.')),
)
#: Rows of the definitions table that are not metrics of a run.
EXTRA_DEFINITIONS = (
    ('seed win rate', 'share of the paired seeds on which the variant is better: a count of '
                      'seeds, not a probability.'),
)


def pck_metric(threshold: float) -> str:
    """``'PCK@0.1'``: the name metrics.json uses for PCK at a threshold."""
    return f'PCK@{threshold:g}'


def reach_metric(pck_reach: float) -> str:
    """``'epochs_to_PCK0.5'``: epochs until the validation PCK first reaches ``pck_reach``."""
    return f'epochs_to_PCK{pck_reach:g}'


def of_source(source: str) -> tuple[str, ...]:
    return tuple(m.name for m in METRICS if m.source == source)


def lookup(metric: str) -> Metric | None:
    """The row of a metric (a family's row for ``PCK@0.1`` or ``epochs_to_PCK0.5``)."""
    for m in METRICS:
        if metric == m.name or (m.source == 'pck' and metric.startswith('PCK@')) \
                or (m.source == 'reach' and metric.startswith('epochs_to')):
            return m
    return None


def _expand(rows, pck_thresholds, pck_reach: float) -> list[str]:
    """The column names of ``rows``, the families expanded (one PCK per threshold)."""
    out = []
    for m in rows:
        if m.source == 'pck':
            out += [pck_metric(t) for t in pck_thresholds]
        elif m.source == 'reach':
            out.append(reach_metric(pck_reach))
        else:
            out.append(m.name)
    return out


def names(pck_thresholds, pck_reach: float) -> list[str]:
    """Every per-run metric of the report, in table order."""
    return _expand(METRICS, pck_thresholds, pck_reach)


def main_names(pck_thresholds, pck_reach: float) -> list[str]:
    """The README's main table, in its order."""
    main = sorted((m for m in METRICS if m.main is not None), key=lambda m: m.main)
    return _expand(main, pck_thresholds, pck_reach)


def figure_names(headline: str) -> list[str]:
    """The metric-comparison figure's panels: the headline, then the table's figure metrics."""
    drawn = sorted((m for m in METRICS if m.figure is not None), key=lambda m: m.figure)
    return [headline] + [m.name for m in drawn if m.name != headline]


def higher_is_better(metric: str) -> bool:
    row = lookup(metric)
    return True if row is None else row.higher_is_better


NOT_COMPARABLE = frozenset(m.name for m in METRICS if not m.comparable)


def definitions(reach: str) -> list[tuple[str, str]]:
    """(score, definition) rows of the README's "What each score is", in table order."""
    rows, seen = [], set()
    for m in METRICS:
        label = m.group or (reach if m.source == 'reach' else m.name)
        if label in seen:
            continue
        seen.add(label)
        rows.append((label, m.definition))
    return rows + list(EXTRA_DEFINITIONS)
