"""Statistics for the comparison report: pure functions of arrays, deterministic given a seed.

The unit of replication is the training run (one per seed): a method is summarised by the
mean over its seeds with a Student-t CI (:func:`summarize`, :func:`t_interval`; with a handful
of seeds a bootstrap interval would be far too narrow), and two methods are compared *paired by
seed* (:func:`paired_comparison`: the same seed drives data order and initialisation of both
runs, so the per-seed difference removes the seed's own effect).
The decision test is the exact sign-flip permutation test, whose p-values are adjusted for
multiple comparisons with Holm-Bonferroni (:func:`holm`) and turned into one English sentence
(:func:`significance_sentence`). With few seeds an exact test simply cannot reach small
p-values (``min_attainable_p`` = 2/2^n: 0.25 with 3 seeds, 0.0625 with 5), and the report says so
instead of calling such a comparison "not significant". :func:`seed_win_rate` counts the seeds
where a variant wins: a description, not a probability.

:func:`paired_image_bootstrap` is a second, weaker view: the paired bootstrap over test
instances of the headline statistic itself (MMPose's joint-mean accuracy); it captures
test-set sampling noise only, not seed-to-seed training noise.
Confidence scores: :func:`auroc` (does the score rank hits above misses? comparable across
formulations), :func:`fit_isotonic` (recalibration fitted on the validation split) and
:func:`calibration` (ECE, Brier, reliability bins). :func:`epochs_to_reach` reads convergence
speed off a validation curve, +inf for a run that never gets there (censored, never dropped).

Missing values: every function drops NaN entries (a diverged run, an unlabelled keypoint)
before computing, pairwise where inputs are paired, and reports the ``n`` it used; +inf is a
censored value where the docstring says so. Too few values give NaN results, never an
exception.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ['t_interval', 'summarize', 'seed_win_rate', 'paired_comparison', 'holm',
           'paired_image_bootstrap', 'auroc', 'roc_curve', 'fit_isotonic', 'calibration',
           'epochs_to_reach', 'significance_sentence']

# Up to this many pairs the sign-flip test enumerates all 2^n flips (65,536): exact p-values.
# Beyond, it draws _PERMUTATION_RESAMPLES random flips (seeded): a Monte Carlo p-value.
_MAX_EXACT_PAIRS = 16
_PERMUTATION_RESAMPLES = 99_999
# Elements of one chunk of the (resamples, n_images) bootstrap index matrix (~32 MiB of int64).
_CHUNK_ELEMENTS = 4_000_000


def finite(x) -> bool:
    """Whether ``x`` is a finite number (None, NaN, inf and non-numbers are not)."""
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _finite_1d(values: ArrayLike) -> np.ndarray:
    """``values`` as a flat float array without its non-finite entries."""
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def _finite_pairs(a: ArrayLike, b: ArrayLike,
                  names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
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


def t_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean of the finite ``values``.

    ``mean ± t_{(1+confidence)/2, n-1} · s / √n`` with s the sample standard deviation
    (ddof=1): exact for normal data, and the honest interval for a handful of seeds (a
    bootstrap interval of 3 values is about 2.8 times narrower, because it ignores the
    uncertainty of s itself).

    Args:
        values: (n,) values; non-finite entries are dropped.
        confidence: level of the two-sided interval.

    Returns:
        (low, high); (NaN, NaN) when fewer than 2 finite values; (v, v) when all are equal.
    """
    x = _finite_1d(values)
    n = int(x.size)
    if n < 2:
        return math.nan, math.nan
    mean = float(np.mean(x))
    if _is_constant(x):
        return mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * float(np.std(x, ddof=1)) \
        / math.sqrt(n)
    return mean - half, mean + half


def summarize(values: ArrayLike, *, confidence: float = 0.95) -> dict[str, float]:
    """Mean over seeds with its Student-t confidence interval (:func:`t_interval`).

    Censoring: a value of +inf is a *censored* run, e.g. one whose validation curve never
    reached the level of an "epochs to reach" metric (:func:`epochs_to_reach`). It is never
    dropped: it counts in ``n`` and ``n_censored``, the ``median`` treats it as +inf (so the
    median is finite while fewer than half of the runs are censored), and ``mean`` is +inf
    (the mean of a sample with an unbounded value), with ``std`` and the CI NaN.

    Args:
        values: (n_seeds,) one metric value per training run; NaN entries (a diverged run, a
            metric the run does not have) and -inf are dropped.
        confidence: level of the two-sided CI.

    Returns:
        dict with ``mean``, ``std`` (sample std, ddof=1), ``ci_low``, ``ci_high``, ``median``
        (floats), ``n`` (int: values used, censored ones included) and ``n_censored`` (int).
        n < 2: ``std`` and the CI are NaN (``mean`` and ``median`` NaN when n == 0). All
        values equal: CI = [v, v].
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x) & (x != -np.inf)]
    n, censored = int(x.size), int(np.count_nonzero(x == np.inf))
    out = {'mean': math.nan, 'std': math.nan, 'ci_low': math.nan, 'ci_high': math.nan,
           'median': math.nan, 'n': n, 'n_censored': censored}
    if n == 0:
        return out
    out['median'] = float(np.median(x))
    if censored:
        out['mean'] = math.inf
        return out
    out['mean'] = float(np.mean(x))
    if n < 2:
        return out
    out['std'] = float(np.std(x, ddof=1))
    out['ci_low'], out['ci_high'] = t_interval(x, confidence)
    return out


def seed_win_rate(variant: ArrayLike, baseline: ArrayLike) -> float:
    """Share of seeds where the variant's value is higher than the baseline's (ties 0.5).

    A descriptive count, not a probability: with 3 seeds it can only be 0, 1/6, ..., 1.
    ±inf values take part (a censored run compares as larger than any finite one, two
    censored runs tie); pairs with a NaN on either side are dropped. NaN when no pair is left.

    Args:
        variant, baseline: (n_seeds,) paired by seed.
    """
    v = np.asarray(variant, dtype=float).ravel()
    b = np.asarray(baseline, dtype=float).ravel()
    if v.shape != b.shape:
        raise ValueError(f'variant and baseline must be paired (same shape), got {v.shape} '
                         f'and {b.shape}')
    keep = ~np.isnan(v) & ~np.isnan(b)
    if not keep.any():
        return math.nan
    v, b = v[keep], b[keep]
    return float(np.mean((v > b) + 0.5 * (v == b)))


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
        - ``seed_win_rate``: share of seeds where variant > baseline (ties count 0.5), over
          every pair without a NaN, censored (+inf) values included (:func:`seed_win_rate`).
          A count of seeds, not a probability.
        - ``n`` (int): finite pairs used by the mean, CI and tests.
        - ``n_censored`` (int): pairs left out of those because a side is ±inf (a censored
          run, see :func:`summarize`); they still count in ``seed_win_rate``.
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
    va, ba = np.asarray(variant, dtype=float).ravel(), np.asarray(baseline, dtype=float).ravel()
    both = ~np.isnan(va) & ~np.isnan(ba)
    out = {'mean_diff': math.nan, 'ci_low': math.nan, 'ci_high': math.nan,
           'p_ttest': math.nan, 'p_permutation': math.nan,
           'seed_win_rate': seed_win_rate(va, ba), 'n': n,
           'n_censored': int(np.count_nonzero(both) - n), 'min_attainable_p': math.nan,
           'confidence': float(confidence)}
    if n == 0:
        return out
    out['mean_diff'] = float(np.mean(d))
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


def _runs_instances_keypoints(x: ArrayLike, name: str) -> np.ndarray:
    """(N,), (N, K) or (S, N, K) per-keypoint values as a float (S, N, K) array."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[None, :, None]
    elif a.ndim == 2:
        a = a[None]
    elif a.ndim != 3:
        raise ValueError(f'{name} must have shape (N,), (N, K) or (S, N, K), got {a.shape}')
    return a


def _joint_mean(weights: np.ndarray, values: np.ndarray, labelled: np.ndarray,
                k: int) -> np.ndarray:
    """MMPose's joint-mean statistic of S runs for R weightings of the N instances.

    Args:
        weights: (R, N) multiplicity of each instance (1 everywhere: the sample itself).
        values: (N, S*K) per-keypoint values, 0 where unlabelled.
        labelled: (N, S*K) 1.0 where labelled.
        k: K, the keypoints per run.

    Returns:
        (R, S): per run, the mean over the keypoints that have a labelled instance of
        ``Σ_n w_n v_nj / Σ_n w_n l_nj`` (NaN if no keypoint is labelled).
    """
    # np.einsum (no BLAS): each output sums over the instances in one fixed order, so a
    # resample's value does not depend on how many resamples share its chunk, nor on the
    # BLAS library or its threads (the report must be byte-identical from the same runs)
    num = np.einsum('rn,nc->rc', weights, values)
    den = np.einsum('rn,nc->rc', weights, labelled)
    with np.errstate(invalid='ignore', divide='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)       # a run without labels: NaN
        acc = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        return np.nanmean(acc.reshape(weights.shape[0], -1, k), axis=2)


def paired_image_bootstrap(variant: ArrayLike, baseline: ArrayLike, *,
                           n_resamples: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> dict[str, float]:
    """Paired bootstrap over test instances of the difference of a joint-mean accuracy.

    The statistic is MMPose's ``keypoint_pck_accuracy`` average, generalised to any
    per-keypoint value in [0, 1]: per keypoint type j, the mean of the values of the instances
    where j is labelled; then the mean over the keypoint types that are labelled at least once.
    With PCK hits as values it *is* the headline PCK (and with the share of curve thresholds
    hit, the AUC), so the bootstrap estimates the same quantity as the headline number: each
    resample draws N test instances with replacement (the same ones for every run) and
    recomputes the statistic of every run on them. With (N,) inputs (K = 1) the statistic is
    the plain mean of the labelled per-instance values.

    It measures how much the difference depends on which test instances were drawn -- not
    how much it depends on the training seed (use :func:`paired_comparison` over seeds).
    Vectorised: (resamples, N) instance multiplicities, drawn in chunks of at most ~4M indices;
    the chunking depends only on N, so results depend only on the inputs and seed.

    Args:
        variant: per-keypoint values of the variant's runs on the test instances, shape (N,),
            (N, K) or (S, N, K) (S runs, paired by seed with ``baseline``'s); NaN where a
            keypoint is not labelled.
        baseline: the baseline's, same shape and instance order.
        n_resamples: bootstrap resamples.
        confidence: level of the percentile CI.
        seed: seed of the resampling.

    Returns:
        dict with ``mean_diff`` (the statistic of the variant minus the baseline's, averaged
        over the S pairs of runs), ``ci_low``, ``ci_high`` (percentile CI of the bootstrap
        differences), ``p_boot`` (two-sided bootstrap p: ``min(1, 2 * (k + 1) / (R + 1))``
        with k the smaller of the counts of bootstrap differences <= 0 and >= 0 among the R
        resamples, so its floor is 2 / (R + 1), never 0) and ``n`` (instances with at least
        one labelled value). n < 2: CI and ``p_boot`` NaN.

    Raises:
        ValueError: the two inputs do not have the same shape, or have more than 3 axes.
    """
    v = _runs_instances_keypoints(variant, 'variant')
    b = _runs_instances_keypoints(baseline, 'baseline')
    if v.shape != b.shape:
        raise ValueError(f'variant and baseline must be paired (same shape), got '
                         f'{np.shape(variant)} and {np.shape(baseline)}')
    s, _, k = v.shape
    used = (np.isfinite(v) | np.isfinite(b)).any(axis=(0, 2))      # (N,)
    v, b = v[:, used], b[:, used]
    n = int(used.sum())

    def columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lab = np.isfinite(x)                                        # (S, n, K)
        flat = lambda a: a.transpose(1, 0, 2).reshape(n, s * k)      # noqa: E731
        return flat(np.where(lab, x, 0.0)), flat(lab.astype(float))

    vv, vl = columns(v)
    bv, bl = columns(b)

    def diff(weights: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            return np.nanmean(_joint_mean(weights, vv, vl, k)
                              - _joint_mean(weights, bv, bl, k), axis=1)

    out = {'mean_diff': float(diff(np.ones((1, n)))[0]) if n else math.nan,
           'ci_low': math.nan, 'ci_high': math.nan, 'p_boot': math.nan, 'n': n}
    if n < 2 or n_resamples < 1:
        return out
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    diffs = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        rows = np.arange(stop - start)[:, None] * n
        counts = np.bincount((idx + rows).ravel(), minlength=(stop - start) * n)
        diffs[start:stop] = diff(counts.reshape(stop - start, n).astype(float))
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return out
    alpha = 1.0 - confidence
    out['ci_low'], out['ci_high'] = (float(q) for q in
                                     np.quantile(diffs, [alpha / 2, 1 - alpha / 2]))
    # (k + 1) / (R + 1): the resampling estimate of a tail share is never reported as 0.
    tail = min(np.count_nonzero(diffs <= 0), np.count_nonzero(diffs >= 0))
    out['p_boot'] = float(min(1.0, 2 * (tail + 1) / (diffs.size + 1)))
    return out


def calibration(scores: ArrayLike, hits: ArrayLike, n_bins: int = 10) -> dict[str, Any]:
    """Calibration of confidences against correctness (e.g. a PCK@0.1 hit): ECE, Brier, bins.

    Scores are clipped to [0, 1] first: a confidence is compared with a hit frequency, which
    lives in [0, 1]. Applied to *raw* keypoint scores this is a "raw ECE": the regression
    head's score is a heatmap maximum (an unnormalised regression output, not a probability)
    and the classification head's peak probability is capped by its own soft target where
    keypoints crowd, so raw ECEs of the two formulations are not comparable. Applied to scores
    recalibrated by :func:`fit_isotonic` on another split, it measures what stays
    miscalibrated after the best monotone map to probabilities: that one compares.

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


def auroc(scores: ArrayLike, hits: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` as a detector of ``hits``.

    The probability that a random hit scores higher than a random miss (ties count 0.5):
    the Mann-Whitney U statistic over (number of hits × number of misses), from average
    ranks. It depends only on the *order* of the scores, so it compares a regression head's
    heatmap maxima with a classification head's probabilities on equal terms.

    Args:
        scores: confidences, any shape.
        hits: same shape, 1/True for a correct prediction. Pairs with a non-finite score or
            hit are dropped.

    Returns:
        AUROC in [0, 1] (0.5: the score says nothing about correctness); NaN when there are
        no hits or no misses.

    Raises:
        ValueError: shapes differ.
    """
    s, h = _finite_pairs(scores, hits, ('scores', 'hits'))
    pos = h > 0.5
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    # U of the hits over the misses (a tie counts one half) / (n1 n0)
    return float(stats.mannwhitneyu(s[pos], s[~pos]).statistic / (n1 * n0))


def roc_curve(scores: ArrayLike, hits: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) of ``scores`` thresholded at each distinct
    value, from (0, 0) to (1, 1); its trapezoidal area is :func:`auroc`. Empty arrays when
    there are no hits or no misses."""
    s, h = _finite_pairs(scores, hits, ('scores', 'hits'))
    pos = h > 0.5
    if pos.all() or not pos.any():
        return np.array([]), np.array([])
    order = np.argsort(-s, kind='stable')
    s, pos = s[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]     # last index of each distinct score
    tp = np.cumsum(pos)[last]
    fp = np.cumsum(~pos)[last]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def fit_isotonic(scores: ArrayLike, hits: ArrayLike):
    """Recalibration map score → P(hit), fitted by isotonic regression.

    The non-decreasing step function that minimises the squared error to the hits (pool
    adjacent violators, ``scipy.optimize.isotonic_regression``, weighted by the number of
    pairs per distinct score). Fitted on one split (validation) and applied to another
    (test), it turns any monotone confidence into a probability without changing its order, so
    that the remaining miscalibration on the test split can be compared across formulations.

    Args:
        scores, hits: (n,) the fitting pairs; non-finite pairs are dropped.

    Returns:
        a function (m,) scores → (m,) probabilities in [0, 1]: linear interpolation between
        the fitted values at the distinct fitting scores, constant beyond them (as
        scikit-learn's ``IsotonicRegression(out_of_bounds='clip')``). ``None`` when there are
        no fitting pairs.
    """
    from scipy.optimize import isotonic_regression
    s, h = _finite_pairs(scores, hits, ('scores', 'hits'))
    if s.size == 0:
        return None
    knots, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=h) / counts
    fitted = isotonic_regression(means, weights=counts.astype(float), increasing=True).x

    def calibrate(new_scores: ArrayLike) -> np.ndarray:
        return np.clip(np.interp(np.asarray(new_scores, dtype=float), knots, fitted), 0.0, 1.0)

    return calibrate


def epochs_to_reach(curve_epochs: ArrayLike, curve_values: ArrayLike, threshold: float) -> float:
    """First epoch at which a validation curve reaches ``threshold`` (value >= threshold).

    Args:
        curve_epochs: (n_points,) epochs at which the curve was measured (sorted here).
        curve_values: (n_points,) metric values at those epochs; NaN never reaches.
        threshold: the level to reach.

    Returns:
        the epoch as a float; +inf when the curve never reaches the threshold (a censored
        run: it must count as "slower than any run that reached it", see :func:`summarize`,
        never be dropped); NaN when there is no curve point at all (nothing was measured).

    Raises:
        ValueError: the two inputs do not have the same shape.
    """
    e = np.asarray(curve_epochs, dtype=float).ravel()
    v = np.asarray(curve_values, dtype=float).ravel()
    if e.shape != v.shape:
        raise ValueError(f'curve_epochs and curve_values must have the same shape, '
                         f'got {e.shape} and {v.shape}')
    if e.size == 0:
        return math.nan
    order = np.argsort(e, kind='stable')
    e, v = e[order], v[order]
    with np.errstate(invalid='ignore'):
        reached = np.flatnonzero(v >= threshold)
    return float(e[reached[0]]) if reached.size else math.inf


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
    holm_floor = float(get('min_attainable_p_holm', math.nan))
    if np.isfinite(p_holm) and np.isfinite(holm_floor):
        min_p = holm_floor  # Holm multiplies the family's smallest p by its size

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


def verdict(row, alpha: float) -> str:
    """``'significant'``, ``'not significant'`` or ``'inconclusive'`` for one row of the
    comparison table (``n``, ``p_holm``, ``min_attainable_p[_holm]``): inconclusive when fewer
    than 2 paired seeds, no p, or when Holm's floor for this many seeds (m x 2 / 2^n) is above
    ``alpha`` (no outcome could reach it)."""
    n = int(row['n']) if finite(row['n']) else 0
    p = row['p_holm']
    if n < 2 or not finite(p):
        return 'inconclusive'
    floor = row.get('min_attainable_p_holm', row['min_attainable_p'])
    if finite(floor) and floor > alpha:
        return 'inconclusive'
    return 'significant' if p <= alpha else 'not significant'


def seeds_needed(alpha: float, m: int) -> int:
    """Smallest n with m * 2 / 2^n <= alpha: the exact test (Holm over m) can reach alpha."""
    n = 1
    while max(m, 1) * 2.0 ** (1 - n) > alpha:
        n += 1
    return n
