"""Statistics for the comparison report: pure functions of arrays, deterministic given a seed.

The unit of replication is the training run (one per seed): a method is summarised by the
mean over its seeds with a bootstrap CI (:func:`summarize`), and two methods are compared
*paired by seed* (:func:`paired_comparison`: the same seed drives data order and
initialisation of both runs, so the per-seed difference removes the seed's own effect).
The decision test is the exact sign-flip permutation test, whose p-values are adjusted for
multiple comparisons with Holm-Bonferroni (:func:`holm`) and turned into one English sentence
(:func:`significance_sentence`). With few seeds an exact test simply cannot reach small
p-values (``min_attainable_p`` = 2/2^n: 0.25 with 3 seeds, 0.0625 with 5), and the report says so
instead of calling such a comparison "not significant".

:func:`paired_image_bootstrap` is a second, weaker view: the per-test-image paired bootstrap of
one pair of runs; it captures test-set sampling noise only, not seed-to-seed training noise.
:func:`calibration` scores the keypoint confidences (ECE, Brier) and :func:`epochs_to_reach`
reads convergence speed off a validation curve.

Missing values: every function drops non-finite entries (a diverged run, an unlabelled
keypoint) before computing, pairwise where inputs are paired, and reports the ``n`` it used.
Too few values give NaN results, never an exception.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ['summarize', 'paired_comparison', 'holm', 'paired_image_bootstrap', 'calibration',
           'epochs_to_reach', 'significance_sentence']

# Up to this many pairs the sign-flip test enumerates all 2^n flips (65,536): exact p-values.
# Beyond, it draws _PERMUTATION_RESAMPLES random flips (seeded): a Monte Carlo p-value.
_MAX_EXACT_PAIRS = 16
_PERMUTATION_RESAMPLES = 99_999
# Elements of one chunk of the (resamples, n_images) bootstrap index matrix (~32 MiB of int64).
_CHUNK_ELEMENTS = 4_000_000


def _finite_1d(values: ArrayLike) -> np.ndarray:
    """``values`` as a flat float array without its non-finite entries."""
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def _finite_pairs(a: ArrayLike, b: ArrayLike, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two same-shape arrays, flattened, keeping the pairs where both values are finite."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f'{names[0]} and {names[1]} must be paired (same shape), '
                         f'got {a.shape} and {b.shape}')
    a, b = a.ravel(), b.ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _is_constant(x: np.ndarray) -> bool:
    """All values equal up to float rounding of quantities of their magnitude."""
    if x.size == 0:
        return True
    scale = max(1.0, float(np.max(np.abs(x))))
    return float(np.ptp(x)) <= 16 * np.finfo(float).eps * scale


def summarize(values: ArrayLike, *, confidence: float = 0.95, n_resamples: int = 9999,
              seed: int = 0) -> dict[str, float]:
    """Mean over seeds with a bootstrap confidence interval of the mean.

    Args:
        values: (n_seeds,) one metric value per training run; non-finite entries are dropped.
        confidence: level of the two-sided CI.
        n_resamples: bootstrap resamples.
        seed: seed of the bootstrap resampling (same inputs and seed -> same CI).

    Returns:
        dict with ``mean``, ``std`` (sample std, ddof=1), ``ci_low``, ``ci_high`` (floats) and
        ``n`` (int, finite values used). The CI is ``scipy.stats.bootstrap``'s BCa interval
        when n >= 3, its percentile interval when n == 2 (BCa's jackknife acceleration needs
        at least 3 values). n < 2: ``std`` and the CI are NaN (``mean`` NaN when n == 0).
        All values equal: CI = [v, v]. Note that with a handful of seeds any bootstrap CI is
        narrower than the truth (it ignores the t-distribution's heavier tails).
    """
    x = _finite_1d(values)
    n = int(x.size)
    out = {'mean': math.nan, 'std': math.nan, 'ci_low': math.nan, 'ci_high': math.nan, 'n': n}
    if n == 0:
        return out
    out['mean'] = float(np.mean(x))
    if n < 2:
        return out
    out['std'] = float(np.std(x, ddof=1))
    if _is_constant(x):
        out['ci_low'] = out['ci_high'] = out['mean']
        return out
    low, high = _bootstrap_mean_ci(x, confidence=confidence, n_resamples=n_resamples, seed=seed)
    out['ci_low'], out['ci_high'] = low, high
    return out


def _bootstrap_mean_ci(x: np.ndarray, *, confidence: float, n_resamples: int,
                       seed: int) -> tuple[float, float]:
    """BCa (n >= 3) or percentile bootstrap CI of the mean of a non-constant 1-D sample."""
    methods = ['BCa', 'percentile'] if x.size >= 3 else ['percentile']
    low = high = math.nan
    for method in methods:
        with warnings.catch_warnings():
            # DegenerateDataWarning: BCa cannot be computed (e.g. a few distinct values);
            # the percentile interval below is the fallback.
            warnings.simplefilter('ignore')
            res = stats.bootstrap((x,), np.mean, n_resamples=n_resamples,
                                  confidence_level=confidence, method=method,
                                  rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            break
    return low, high


def paired_comparison(variant: ArrayLike, baseline: ArrayLike, *, confidence: float = 0.95,
                      seed: int = 0) -> dict[str, float]:
    """Compare two methods paired by seed: ``d = variant - baseline`` per seed.

    Args:
        variant: (n_seeds,) metric of the variant method, one value per seed.
        baseline: (n_seeds,) metric of the baseline, same seeds in the same order. Pairs
            with a non-finite value on either side are dropped.
        confidence: level of the CI of the mean difference.
        seed: seed of the Monte Carlo permutation test (only used when n > 16).

    Returns:
        dict with

        - ``mean_diff``: mean of d (positive: the variant scores higher).
        - ``ci_low``, ``ci_high``: Student-t interval of the mean difference
          (``scipy.stats.ttest_1samp(d).confidence_interval``). A t-interval rather than a
          bootstrap one because with a handful of seeds the bootstrap interval is too narrow;
          the t-interval is the one consistent with ``p_ttest``. [d, d] when all d are equal.
        - ``p_ttest``: two-sided paired t-test (``scipy.stats.ttest_rel``). NaN when the
          differences have zero variance (t is 0/0 or +-inf: the t-model says nothing useful
          there; ``p_permutation`` stays well-defined and is the decision p anyway).
        - ``p_permutation``: two-sided sign-flip permutation test of the mean difference
          (``scipy.stats.permutation_test``, ``permutation_type='samples'`` on d), EXACT
          (all 2^n sign flips enumerated) for n <= 16, Monte Carlo with 99,999 seeded flips
          beyond.
        - ``prob_improvement``: share of seeds where variant > baseline (ties count 0.5).
        - ``n`` (int): pairs used.
        - ``min_attainable_p``: 2 / 2^n, the smallest two-sided p-value the exact test can
          give with n pairs (1.0 for n = 1): with n = 3 seeds no result can go below p=0.25.
        - ``confidence``: the CI level, echoed for :func:`significance_sentence`.

        n < 2: CI and p-values are NaN (n == 0: everything NaN); never raises for small n.

    Raises:
        ValueError: the two inputs do not have the same shape.
    """
    v, b = _finite_pairs(variant, baseline, ('variant', 'baseline'))
    d = v - b
    n = int(d.size)
    out = {'mean_diff': math.nan, 'ci_low': math.nan, 'ci_high': math.nan,
           'p_ttest': math.nan, 'p_permutation': math.nan, 'prob_improvement': math.nan,
           'n': n, 'min_attainable_p': math.nan, 'confidence': float(confidence)}
    if n == 0:
        return out
    out['mean_diff'] = float(np.mean(d))
    out['prob_improvement'] = float(np.mean((d > 0) + 0.5 * (d == 0)))
    out['min_attainable_p'] = float(min(1.0, 2.0 ** (1 - n)))
    if n < 2:
        return out

    if _is_constant(d):
        out['ci_low'] = out['ci_high'] = out['mean_diff']
    else:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            t = stats.ttest_rel(v, b, alternative='two-sided')
            ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence_level=confidence)
        out['p_ttest'] = float(t.pvalue)
        out['ci_low'], out['ci_high'] = float(ci.low), float(ci.high)

    out['p_permutation'] = _sign_flip_p(d, seed=seed)
    return out


def _sign_flip_p(d: np.ndarray, *, seed: int) -> float:
    """Two-sided sign-flip permutation p-value of mean(d) = 0 (exact for n <= 16)."""
    n_resamples = np.inf if d.size <= _MAX_EXACT_PAIRS else _PERMUTATION_RESAMPLES
    res = stats.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis),
                                 permutation_type='samples', vectorized=True,
                                 n_resamples=n_resamples, alternative='two-sided',
                                 rng=np.random.default_rng(seed))
    return float(min(1.0, res.pvalue))


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, controls the family-wise error rate).

    With the m finite p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``: monotone in the raw p, never below
    it, capped at 1. Example: [0.01, 0.04, 0.03, 0.005] -> [0.03, 0.06, 0.06, 0.02].

    Args:
        pvalues: raw p-values, any shape; NaN entries are passed through as NaN and do not
            count in m (a comparison that could not be tested is not part of the family).

    Returns:
        float array of the input's shape.
    """
    p = np.asarray(pvalues, dtype=float)
    flat = p.ravel()
    out = np.full(flat.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(flat))
    m = idx.size
    if m:
        order = idx[np.argsort(flat[idx], kind='stable')]
        scaled = np.minimum(1.0, (m - np.arange(m)) * flat[order])
        out[order] = np.maximum.accumulate(scaled)
    return out.reshape(p.shape)


def paired_image_bootstrap(variant_per_image: ArrayLike, baseline_per_image: ArrayLike, *,
                           n_resamples: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> dict[str, float]:
    """Per-test-image paired bootstrap of the mean difference between two runs.

    Resamples test images with replacement (the same images for both runs), so it measures
    how much the difference depends on which test images were drawn -- not how much it
    depends on the training seed (use :func:`paired_comparison` over seeds for that).
    Vectorised: a (resamples, n_images) index matrix, drawn in chunks of at most ~4M indices;
    the chunking depends only on n_images, so results depend only on the inputs and seed.

    Args:
        variant_per_image: (n_images,) per-image metric of the variant run.
        baseline_per_image: (n_images,) per-image metric of the baseline run, same images in
            the same order. Pairs with a non-finite value on either side are dropped.
        n_resamples: bootstrap resamples.
        confidence: level of the percentile CI.
        seed: seed of the resampling.

    Returns:
        dict with ``mean_diff`` (mean of variant - baseline), ``ci_low``, ``ci_high``
        (percentile CI of the bootstrap means), ``p_boot`` (two-sided bootstrap p:
        ``min(1, 2 * (k + 1) / (R + 1))`` with k the smaller of the counts of bootstrap means
        <= 0 and >= 0 among the R resamples, so its floor is 2 / (R + 1), never 0) and ``n``
        (images used). n < 2: CI and ``p_boot`` NaN.

    Raises:
        ValueError: the two inputs do not have the same shape.
    """
    v, b = _finite_pairs(variant_per_image, baseline_per_image, ('variant_per_image',
                                                                 'baseline_per_image'))
    d = v - b
    n = int(d.size)
    out = {'mean_diff': float(np.mean(d)) if n else math.nan, 'ci_low': math.nan,
           'ci_high': math.nan, 'p_boot': math.nan, 'n': n}
    if n < 2 or n_resamples < 1:
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    alpha = 1.0 - confidence
    out['ci_low'], out['ci_high'] = (float(q) for q in
                                     np.quantile(means, [alpha / 2, 1 - alpha / 2]))
    # (k + 1) / (R + 1): the resampling estimate of a tail share is never reported as 0.
    tail = min(np.count_nonzero(means <= 0), np.count_nonzero(means >= 0))
    out['p_boot'] = float(min(1.0, 2 * (tail + 1) / (n_resamples + 1)))
    return out


def calibration(scores: ArrayLike, hits: ArrayLike, n_bins: int = 10) -> dict[str, Any]:
    """Calibration of keypoint confidences against correctness (e.g. a PCK hit).

    Scores are clipped to [0, 1] first: a confidence is compared with a hit frequency, which
    lives in [0, 1]. The regression head's score is the heatmap maximum, an unnormalised
    regression output that can exceed 1 (or go below 0); clipping reads such a score as
    "certain" (or "no confidence") instead of letting it inflate the calibration gap or the
    Brier score. The classification head's softmax scores are unaffected.

    Args:
        scores: predicted confidences, any shape.
        hits: same shape, 1/True where the prediction is correct, 0/False otherwise. Pairs
            with a non-finite score or hit are dropped.
        n_bins: equal-width bins on [0, 1]: [k/n_bins, (k+1)/n_bins), the last one closed.

    Returns:
        dict with ``ece`` (sum over bins of count/N * |accuracy - mean_score|), ``brier``
        (mean of (score - hit)^2 on the clipped scores), ``n`` (pairs used) and ``bins``: a
        DataFrame with one row per bin, columns ``bin_lo``, ``bin_hi``, ``count``,
        ``mean_score``, ``accuracy`` (NaN in empty bins). No pairs: ``ece`` and ``brier`` NaN.

    Raises:
        ValueError: shapes differ, or ``n_bins`` < 1.
    """
    if n_bins < 1:
        raise ValueError(f'n_bins must be >= 1, got {n_bins}')
    s, h = _finite_pairs(scores, hits, ('scores', 'hits'))
    s = np.clip(s, 0.0, 1.0)
    edges = np.arange(n_bins + 1) / n_bins            # k/n exactly rounded: 0.3 is 0.3
    which = np.clip(np.searchsorted(edges, s, side='right') - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean_score = np.bincount(which, weights=s, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=h, minlength=n_bins) / count
    bins = pd.DataFrame({'bin_lo': edges[:-1], 'bin_hi': edges[1:], 'count': count,
                         'mean_score': mean_score, 'accuracy': accuracy})
    n = int(s.size)
    if n == 0:
        return {'ece': math.nan, 'brier': math.nan, 'n': 0, 'bins': bins}
    full = count > 0
    ece = float(np.sum(count[full] / n * np.abs(accuracy[full] - mean_score[full])))
    brier = float(np.mean((s - h) ** 2))
    return {'ece': ece, 'brier': brier, 'n': n, 'bins': bins}


def epochs_to_reach(curve_epochs: ArrayLike, curve_values: ArrayLike, threshold: float) -> float:
    """First epoch at which a validation curve reaches ``threshold`` (value >= threshold).

    Args:
        curve_epochs: (n_points,) epochs at which the curve was measured (sorted here).
        curve_values: (n_points,) metric values at those epochs; NaN never reaches.
        threshold: the level to reach.

    Returns:
        the epoch as a float, NaN if the curve never reaches the threshold.

    Raises:
        ValueError: the two inputs do not have the same shape.
    """
    e = np.asarray(curve_epochs, dtype=float).ravel()
    v = np.asarray(curve_values, dtype=float).ravel()
    if e.shape != v.shape:
        raise ValueError(f'curve_epochs and curve_values must have the same shape, '
                         f'got {e.shape} and {v.shape}')
    order = np.argsort(e, kind='stable')
    e, v = e[order], v[order]
    with np.errstate(invalid='ignore'):
        reached = np.flatnonzero(v >= threshold)
    return float(e[reached[0]]) if reached.size else math.nan


def _fmt_signed(x: float) -> str:
    """A difference for a sentence: +0.032, -1.250, +12.3, +3.1e-05."""
    if not np.isfinite(x):
        return 'n/a'
    if abs(x) < 1e-12:                      # float noise of a zero difference
        x = 0.0
    if x != 0 and abs(x) < 5e-4:
        return f'{x:+.1e}'
    if abs(x) >= 100:
        return f'{x:+.1f}'
    return f'{x:+.3f}'


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return 'n/a'
    if p < 1e-3:
        return '<0.001'
    return f'={p:.2g}'


def significance_sentence(name: str, metric: str, comp_row: Mapping[str, Any],
                          alpha: float = 0.05) -> str:
    """One English sentence stating a paired comparison and whether it is significant.

    Args:
        name: the comparison's label as it should read, e.g. ``'cls_ohem vs regression'``
            (if it has no ``' vs '`` and ``comp_row`` has a ``'baseline'`` entry,
            ``' vs <baseline>'`` is appended).
        metric: the metric's name, e.g. ``'PCK@0.1'``.
        comp_row: a :func:`paired_comparison` result (dict or pandas row) plus ``p_holm``,
            the Holm-adjusted permutation p-value (see :func:`holm`). Without ``p_holm`` the
            raw permutation p is used and the sentence says "unadjusted".
        alpha: significance level.

    Returns:
        e.g. ``"cls_ohem vs regression on PCK@0.1: +0.032 (95% CI +0.010 to +0.054),
        Holm-adjusted p=0.031 (permutation) — significant at α=0.05."``; "not significant"
        otherwise; and when the exact test cannot reach ``alpha`` with n seeds
        (``min_attainable_p`` > alpha) or there are fewer than 2 pairs, the verdict is
        "inconclusive" with the reason.
    """
    def get(key: str, default: Any = math.nan) -> Any:
        try:
            value = comp_row[key]
        except (KeyError, IndexError):
            return default
        return default if value is None else value

    label = name
    baseline = get('baseline', None)
    if ' vs ' not in name and isinstance(baseline, str):
        label = f'{name} vs {baseline}'
    n_raw = float(get('n', 0))
    n = int(n_raw) if np.isfinite(n_raw) else 0
    conf = float(get('confidence', 0.95))
    p_holm = float(get('p_holm'))
    if np.isfinite(p_holm):
        p, p_label = p_holm, 'Holm-adjusted p'
    else:
        p, p_label = float(get('p_permutation')), 'unadjusted p'
    min_p = float(get('min_attainable_p', min(1.0, 2.0 ** (1 - n)) if n else math.nan))

    head = f'{label} on {metric}: {_fmt_signed(float(get("mean_diff")))}'
    low, high = float(get('ci_low')), float(get('ci_high'))
    if np.isfinite(low) and np.isfinite(high):
        head += f' ({conf:.0%} CI {_fmt_signed(low)} to {_fmt_signed(high)})'

    if n < 2 or not np.isfinite(p):
        return f'{head} — no test possible with n={n} paired seed{"s" * (n != 1)}: inconclusive.'
    test = f'{head}, {p_label}{_fmt_p(p)} (permutation'
    if np.isfinite(min_p) and min_p > alpha:
        return (f'{test}; with n={n} seeds the exact test cannot go below '
                f'p={min_p:.2g}: inconclusive).')
    verdict = 'significant' if p <= alpha else 'not significant'
    return f'{test}) — {verdict} at α={alpha:g}.'
