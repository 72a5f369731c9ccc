"""Which keypoint score each method ranks its keypoints by, and what the score is worth.

A regression head scores keypoint j with its heatmap's maximum. A classification head's
decoder recovers the Gaussians :math:`G_j` from the K+1 probabilities and scores with
:math:`G_j`'s peak, the same quantity on the same 0-1 scale (a perfect prediction of either
formulation scores 1 at an isolated or a crowded joint alike). Its class probability
:math:`P_j` at the decoded pixel is kept as a second score (``keypoint_probs``): keypoints that
crowd one pixel share its mass, so :math:`P_j` is capped below 1 where joints meet, whatever
the network's confidence. Tables here: AUROC (does the score rank PCK@0.1 hits above misses?)
pooled over keypoints and per keypoint type, and COCO AP, under both scores.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bench.report import stats, tables
from bench.report.collect import Study, hits

def score_name(study: Study, method: str) -> str:
    """The score a method's keypoints carry, read from its dumps."""
    seeds = study.ok_seeds(method)
    if seeds and 'probs' in study.keypoints.get((method, seeds[0]), {}):
        return 'recovered Gaussian peak G_j (second: class probability P_j)'
    return 'heatmap maximum'


def _mean(study: Study, method: str, metric: str) -> float:
    v = study.metrics
    vals = v.loc[(v.method == method) & (v.metric == metric), 'value'].to_numpy(float)
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else math.nan


def score_table(study: Study, methods: Sequence[str], labels: Mapping[str, str]) -> pd.DataFrame:
    """One row per method: its score, AUROC and AP under it (means over seeds), and the same
    under the second score where the head has one (``AUROC_P``, ``AP_P``)."""
    return pd.DataFrame([dict(method=m, label=labels[m], score=score_name(study, m),
                              AUROC=_mean(study, m, 'AUROC'), AP=_mean(study, m, 'AP'),
                              AUROC_P=_mean(study, m, 'AUROC_P'), AP_P=_mean(study, m, 'AP_P'))
                         for m in methods])


def per_joint_auroc(study: Study, methods: Sequence[str], labels: Mapping[str, str]
                    ) -> pd.DataFrame:
    """AUROC of the keypoint score per keypoint type (rows: joints in dataset order; one
    column per method: the mean over seeds of each run's AUROC on that joint's labelled test
    keypoints)."""
    K = next((kp['dists'].shape[1] for kp in study.keypoints.values()), 0)
    joints = study.joints if len(study.joints) == K else [str(j) for j in range(K)]
    table = pd.DataFrame({'joint': joints})
    for m in methods:
        per_seed = []
        for s in study.ok_seeds(m):
            kp = study.keypoints[(m, s)]
            lab, hit = hits(kp['dists'])
            sc = np.asarray(kp['scores'], float)
            per_seed.append([stats.auroc(sc[lab[:, j], j], hit[lab[:, j], j])
                             for j in range(K)])
        a = np.array(per_seed, float).reshape(-1, K)
        n = np.isfinite(a).sum(0)           # a joint never hit or never missed: NaN
        table[labels[m]] = np.where(n > 0, np.where(np.isfinite(a), a, 0).sum(0)
                                    / np.maximum(n, 1), math.nan)
    return table


def scores_markdown(table: pd.DataFrame, joints: pd.DataFrame) -> str:
    """The report's section: the score each method uses and why, then both tables."""
    rows = []
    for r in table.itertuples():
        rows.append({'method': r.label, 'keypoint score': r.score,
                     'AUROC': tables.fmt_value(r.AUROC), 'AP': tables.fmt_value(r.AP),
                     'AUROC under P_j': tables.fmt_value(r.AUROC_P) if math.isfinite(r.AUROC_P)
                     else '–',
                     'AP under P_j': tables.fmt_value(r.AP_P) if math.isfinite(r.AP_P) else '–'})
    text = ('Every method scores a keypoint with the same kind of quantity: regression with its '
            'heatmap\'s maximum, classification with the peak of the Gaussian G_j its decoder '
            'recovers from the K+1 probabilities (both are 1 for a perfect prediction, isolated '
            'or crowded). The class probability P_j at the decoded pixel, which this report '
            'used before, is shown as a second score: neighbouring keypoints share a pixel\'s '
            'mass, so P_j is capped where joints crowd, whatever the network knows. AUROC: does '
            'the score rank PCK@0.1 hits above misses (pooled over keypoints, mean over seeds); '
            'AP: COCO OKS AP, which ranks instances by their keypoints\' mean score.\n\n')
    text += tables.to_markdown(pd.DataFrame(rows)) + '\n\n'
    show = joints.copy()
    for c in show.columns[1:]:
        show[c] = [tables.fmt_value(v) for v in show[c]]
    text += ('AUROC of the keypoint score per keypoint type (mean over seeds):\n\n'
             + tables.to_markdown(show) + '\n')
    return text
