"""bench.report.stats: hand-computed cases, edge cases (n < 2, constants) and Holm properties."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from bench.report import stats as S
from bench.report.stats import (auroc, calibration, epochs_to_reach, fit_isotonic, holm,
                                paired_comparison, paired_image_bootstrap, roc_curve,
                                seed_win_rate, significance_sentence, summarize, t_interval)

BASE = np.array([0.5, 0.6, 0.7, 0.55, 0.65, 0.52, 0.58, 0.61])
DIFF = np.array([0.05, 0.04, 0.06, 0.05, 0.05, 0.04, 0.06, 0.05])
NULL = np.array([0.01, -0.01, 0.01, -0.01, -0.01, 0.01, -0.01, 0.01])   # mean 0, symmetric


# ---------------------------------------------------------------------------- paired_comparison

def test_paired_known_effect_matches_hand_computation():
    r = paired_comparison(BASE + DIFF, BASE)
    assert r['n'] == 8
    assert r['mean_diff'] == pytest.approx(0.05, abs=1e-12)
    # Every difference is positive: of the 2^8 sign flips only the identity reaches the
    # observed mean, on each side -> two-sided exact p = 2 * 1/256.
    assert r['p_permutation'] == pytest.approx(2 / 256, rel=1e-12)
    assert r['min_attainable_p'] == pytest.approx(2 / 256)
    assert r['seed_win_rate'] == 1.0
    # t-test by hand: sd of DIFF, t = mean / (sd / sqrt(n)), two-sided Student-t tail.
    sd = math.sqrt(np.sum((DIFF - 0.05) ** 2) / 7)           # = sqrt(0.0004 / 7)
    t = 0.05 / (sd / math.sqrt(8))
    assert r['p_ttest'] == pytest.approx(2 * sps.t.sf(t, df=7), rel=1e-6)
    # CI: the Student-t interval mean +- t_{0.975, 7} * sd / sqrt(n).
    half = sps.t.ppf(0.975, df=7) * sd / math.sqrt(8)
    assert r['ci_low'] == pytest.approx(0.05 - half, rel=1e-6)
    assert r['ci_high'] == pytest.approx(0.05 + half, rel=1e-6)


def test_paired_no_effect_is_not_significant():
    r = paired_comparison(BASE + NULL, BASE)
    assert r['mean_diff'] == pytest.approx(0.0, abs=1e-12)
    assert r['p_permutation'] > 0.5
    assert r['p_ttest'] > 0.5
    assert r['seed_win_rate'] == 0.5
    assert r['ci_low'] < 0 < r['ci_high']


def test_permutation_p_is_exact_enumeration():
    d = np.array([0.3, -0.1, 0.25, 0.05, -0.02, 0.4])
    flips = np.array(list(itertools.product([1, -1], repeat=d.size)))
    null = (flips * d).mean(axis=1)
    obs = d.mean()
    tol = 1e-12
    p_hand = min(1.0, 2 * min(np.mean(null >= obs - tol), np.mean(null <= obs + tol)))
    r = paired_comparison(d, np.zeros_like(d))
    assert r['p_permutation'] == pytest.approx(p_hand, rel=1e-12)


def test_ties_count_half_in_seed_win_rate():
    r = paired_comparison([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 3.0])
    assert r['seed_win_rate'] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert 'prob_improvement' not in r                 # a count of seeds, not a probability


def test_censored_pairs_count_in_win_rate_not_in_the_tests():
    # epochs to reach (lower is better): +inf = the run never reached the level
    variant, baseline = [3.0, np.inf, 4.0, 5.0], [4.0, 6.0, np.inf, np.inf]
    r = paired_comparison(variant, baseline)
    assert r['n'] == 1 and r['n_censored'] == 3
    # variant > baseline on seed 1 only (inf > 6): the share of seeds where variant is higher
    assert r['seed_win_rate'] == pytest.approx(1 / 4)
    assert seed_win_rate([np.inf, 2.0, np.nan], [np.inf, 1.0, 0.0]) == pytest.approx(0.75)


@pytest.mark.parametrize('n', [0, 1])
def test_paired_tiny_n_gives_nan_not_exception(n):
    r = paired_comparison(BASE[:n] + 0.1, BASE[:n])
    assert r['n'] == n
    for key in ('ci_low', 'ci_high', 'p_ttest', 'p_permutation'):
        assert math.isnan(r[key])
    if n == 1:
        assert r['mean_diff'] == pytest.approx(0.1)
        assert r['min_attainable_p'] == 1.0


def test_paired_zero_variance_difference():
    r = paired_comparison(BASE + 0.05, BASE)
    assert math.isnan(r['p_ttest'])                      # t = inf: not reported
    assert r['p_permutation'] == pytest.approx(2 / 256)  # well-defined
    assert r['ci_low'] == r['ci_high'] == pytest.approx(0.05)
    same = paired_comparison(BASE, BASE)
    assert same['p_permutation'] == 1.0 and same['mean_diff'] == 0.0


def test_paired_drops_nonfinite_pairs_and_checks_shapes():
    v = np.append(BASE + DIFF, np.nan)
    b = np.append(BASE, 0.3)
    assert paired_comparison(v, b)['n'] == 8
    with pytest.raises(ValueError):
        paired_comparison([1.0, 2.0], [1.0, 2.0, 3.0])


def test_paired_monte_carlo_beyond_exact_is_seeded():
    rng = np.random.default_rng(3)
    v, b = rng.normal(0.5, 1, 20), np.zeros(20)
    r1, r2 = paired_comparison(v, b, seed=7), paired_comparison(v, b, seed=7)
    assert r1 == r2
    assert 0 < r1['p_permutation'] <= 1
    assert r1['min_attainable_p'] == pytest.approx(2 / 2 ** 20)


# ---------------------------------------------------------------------------------------- holm

def test_holm_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_nan_passthrough_and_cap():
    out = holm([0.02, np.nan, 0.5, 0.01])
    assert math.isnan(out[1])
    # m = 3 (NaN not counted): 0.01*3 = 0.03, 0.02*2 = 0.04, 0.5*1 = 0.5
    np.testing.assert_allclose(out[[0, 2, 3]], [0.04, 0.5, 0.03])
    np.testing.assert_allclose(holm([0.4, 0.6]), [0.8, 0.8])
    np.testing.assert_allclose(holm([0.9, 0.6]), [1.0, 1.0])
    assert holm([]).shape == (0,)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float('nan'))), min_size=1, max_size=30))
def test_holm_properties(raw):
    p = np.array(raw, dtype=float)
    adj = holm(p)
    finite = ~np.isnan(p)
    assert np.array_equal(np.isnan(adj), ~finite)
    a, r = adj[finite], p[finite]
    assert np.all(a >= r - 1e-15)
    assert np.all(a <= 1.0)
    # monotone in the order of the raw p-values
    order = np.argsort(r, kind='stable')
    assert np.all(np.diff(a[order]) >= 0)
    # Bonferroni bounds it from above
    assert np.all(a <= np.minimum(1.0, r * r.size) + 1e-12)


# ----------------------------------------------------------------------------------- summarize

def test_summarize_basic_and_deterministic():
    x = BASE + DIFF
    r = summarize(x)
    assert r['n'] == 8 and r['n_censored'] == 0
    assert r['mean'] == pytest.approx(np.mean(x))
    assert r['std'] == pytest.approx(np.std(x, ddof=1))
    assert r['median'] == pytest.approx(np.median(x))
    assert r['ci_low'] < r['mean'] < r['ci_high']
    assert summarize(x) == r


def test_summarize_ci_is_the_student_t_interval():
    """The acceptance rule: never narrower than the t-interval (here: equal to it)."""
    for x in ([0.51, 0.56, 0.58], [0.5, 0.7], BASE):
        r = summarize(x, confidence=0.9)
        n, m, s = len(x), np.mean(x), np.std(x, ddof=1)
        half = sps.t.ppf(0.95, n - 1) * s / math.sqrt(n)
        assert r['ci_low'] == pytest.approx(m - half, rel=1e-12)
        assert r['ci_high'] == pytest.approx(m + half, rel=1e-12)
        lo, hi = sps.t.interval(0.9, n - 1, loc=m, scale=sps.sem(x))
        assert (r['ci_low'], r['ci_high']) == pytest.approx((lo, hi), rel=1e-9)
    # 3 seeds: the t-interval is ~2.5-3x wider than a bootstrap of the same 3 values
    x = np.array([0.51, 0.56, 0.58])
    boot = sps.bootstrap((x,), np.mean, method='percentile', rng=np.random.default_rng(0))
    t_width = np.diff(t_interval(x))[0]
    assert t_width > 2 * np.diff([boot.confidence_interval.low, boot.confidence_interval.high])[0]


def test_summarize_constant_and_tiny():
    c = summarize([0.7, 0.7, 0.7, 0.7])
    assert c['ci_low'] == c['ci_high'] == pytest.approx(0.7) and c['std'] == 0.0
    one = summarize([0.7])
    assert one['mean'] == 0.7 and one['n'] == 1 and one['median'] == 0.7
    assert math.isnan(one['std']) and math.isnan(one['ci_low']) and math.isnan(one['ci_high'])
    empty = summarize([])
    assert empty['n'] == 0 and math.isnan(empty['mean']) and math.isnan(empty['median'])
    two = summarize([0.5, 0.7])
    assert two['ci_low'] < 0.5 and two['ci_high'] > 0.7       # t with 1 df: very wide
    assert summarize([0.5, np.nan, 0.7])['n'] == 2
    assert all(math.isnan(v) for v in t_interval([1.0]))


def test_summarize_counts_censored_runs_instead_of_dropping_them():
    r = summarize([3.0, 5.0, np.inf, np.nan])                # NaN: no curve at all
    assert r['n'] == 3 and r['n_censored'] == 1
    assert r['median'] == 5.0                                # censored at +inf
    assert r['mean'] == math.inf
    assert math.isnan(r['ci_low']) and math.isnan(r['std'])
    most = summarize([3.0, np.inf, np.inf])
    assert most['median'] == math.inf and most['n_censored'] == 2


# --------------------------------------------------------------------------- image bootstrap

def test_image_bootstrap_clear_effect_and_null():
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 1, 300)
    r = paired_image_bootstrap(b + 0.05 + rng.normal(0, 0.01, 300), b, n_resamples=1000)
    assert r['n'] == 300 and r['ci_low'] > 0
    assert r['p_boot'] == pytest.approx(2 / 1001)          # floor: no resample <= 0
    z = paired_image_bootstrap(b, b, n_resamples=500)
    assert z['mean_diff'] == 0 and z['ci_low'] == z['ci_high'] == 0 and z['p_boot'] == 1.0
    sym = paired_image_bootstrap(np.tile([0.1, -0.1], 50), np.zeros(100), n_resamples=2000)
    assert sym['p_boot'] > 0.5 and sym['ci_low'] < 0 < sym['ci_high']


def test_image_bootstrap_chunking_is_invisible(monkeypatch):
    rng = np.random.default_rng(1)
    v, b = rng.normal(0.1, 1, 40), rng.normal(0, 1, 40)
    whole = paired_image_bootstrap(v, b, n_resamples=333, seed=5)
    monkeypatch.setattr(S, '_CHUNK_ELEMENTS', 40 * 7)          # 7 resamples per chunk
    assert paired_image_bootstrap(v, b, n_resamples=333, seed=5) == whole


def test_image_bootstrap_tiny():
    r = paired_image_bootstrap([0.5], [0.4])
    assert r['mean_diff'] == pytest.approx(0.1)
    assert math.isnan(r['ci_low']) and math.isnan(r['p_boot'])
    with pytest.raises(ValueError):
        paired_image_bootstrap([0.5, 0.6], [0.4])


def _mmpose_pck(hits: np.ndarray) -> float:
    """MMPose's PCK from (N, K) hits with NaN where unlabelled: per-joint share, mean over
    labelled joints (keypoint_pck_accuracy's average)."""
    from mmpose.evaluation.functional import keypoint_pck_accuracy
    n, k = hits.shape
    gt = np.zeros((n, k, 2))
    pred = gt.copy()
    pred[..., 0] = np.where(hits == 1, 0.05, 0.5)           # distance 0.05 or 0.5 of norm 1
    _, avg, _ = keypoint_pck_accuracy(pred, gt, np.isfinite(hits), 0.1, np.ones((n, 2)))
    return float(avg)


def test_image_bootstrap_estimates_the_headline_pck_itself():
    """The point estimate is the difference of MMPose's PCK (joint mean of per-joint
    accuracies), averaged over the paired seeds -- not a mean of per-image PCKs."""
    rng = np.random.default_rng(4)
    s, n, k = 3, 60, 5
    labelled = rng.random((n, k)) > 0.3
    labelled[:, 4] = False
    labelled[:3, 4] = True                                   # joint 4: labelled 3 times only
    v = np.where(labelled, (rng.random((s, n, k)) < 0.7).astype(float), np.nan)
    b = np.where(labelled, (rng.random((s, n, k)) < 0.5).astype(float), np.nan)
    r = paired_image_bootstrap(v, b, n_resamples=500)
    expected = np.mean([_mmpose_pck(v[i]) - _mmpose_pck(b[i]) for i in range(s)])
    assert r['mean_diff'] == pytest.approx(expected, abs=1e-12)
    per_image = np.nanmean(v, axis=2).mean() - np.nanmean(b, axis=2).mean()
    assert abs(per_image - expected) > 1e-3                  # the old, different statistic
    assert r['n'] == n and r['ci_low'] < r['mean_diff'] < r['ci_high']


def test_image_bootstrap_resamples_instances_jointly():
    # one run pair, two keypoints; a resample is a multiset of instances: check one by hand
    v = np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]])
    b = np.zeros_like(v)
    b[np.isnan(v)] = np.nan
    r = paired_image_bootstrap(v, b, n_resamples=4000, seed=1)
    # full sample: joint 0: 2/3, joint 1: 2/2 -> (2/3 + 1) / 2 against 0
    assert r['mean_diff'] == pytest.approx((2 / 3 + 1) / 2)
    assert 0 < r['ci_low'] <= r['mean_diff'] <= r['ci_high'] <= 1
    with pytest.raises(ValueError):
        paired_image_bootstrap(np.zeros((2, 3, 4, 5)), np.zeros((2, 3, 4, 5)))


# -------------------------------------------------------------------------------------- AUROC

def test_auroc_hand_examples():
    assert auroc([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    # pairs (hit, miss): (0.9, 0.5) win, (0.9, 0.3) win, (0.4, 0.5) loss, (0.4, 0.3) win
    assert auroc([0.9, 0.4, 0.5, 0.3], [1, 1, 0, 0]) == pytest.approx(3 / 4)
    assert auroc([0.5, 0.5], [1, 0]) == 0.5                   # a tie counts one half
    assert math.isnan(auroc([0.1, 0.2], [1, 1]))              # no misses
    # only the order matters: a monotone transform (heatmap max vs probability) changes nothing
    rng = np.random.default_rng(0)
    s = rng.random(500)
    h = rng.random(500) < s
    assert auroc(3 * s - 7, h) == pytest.approx(auroc(s, h))
    assert auroc(np.exp(s), h) == pytest.approx(auroc(s, h))


def test_roc_curve_area_is_auroc():
    rng = np.random.default_rng(1)
    s = np.round(rng.random(300), 2)                          # with ties
    h = rng.random(300) < s
    fpr, tpr = roc_curve(s, h)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapz(tpr, fpr) == pytest.approx(auroc(s, h), abs=1e-12)


# ------------------------------------------------------------------------------- recalibration

def test_isotonic_recalibration_is_monotone_and_fixes_a_distorted_score():
    rng = np.random.default_rng(2)
    p = rng.random(20_000)
    h = rng.random(p.size) < p
    raw = p ** 4                                              # same order, badly calibrated
    cal = fit_isotonic(raw[:10_000], h[:10_000])
    out = cal(raw[10_000:])
    assert np.all(np.diff(cal(np.sort(raw))) >= -1e-12)       # non-decreasing
    assert calibration(raw[10_000:], h[10_000:])['ece'] > 0.15
    assert calibration(out, h[10_000:])['ece'] < 0.03
    assert auroc(out, h[10_000:]) == pytest.approx(auroc(raw[10_000:], h[10_000:]), abs=0.01)
    # pool-adjacent-violators by hand: [1, 0] at scores [0.1, 0.2] pools to 0.5, 0.5
    two = fit_isotonic([0.1, 0.2, 0.3], [1, 0, 1])
    np.testing.assert_allclose(two([0.1, 0.2, 0.3, 0.0, 0.9]), [0.5, 0.5, 1, 0.5, 1])
    assert fit_isotonic([], []) is None


# --------------------------------------------------------------------------------- calibration

def test_calibration_perfectly_calibrated_is_near_zero():
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, 200_000)
    h = rng.uniform(0, 1, s.size) < s
    r = calibration(s, h)
    assert r['ece'] < 0.01
    assert r['brier'] == pytest.approx(1 / 6, abs=0.005)     # E[s(1-s)] for s ~ U(0, 1)


def test_calibration_overconfident_hand_example():
    s = [0.9, 0.9, 0.9, 0.9, 0.6, 0.6]
    h = [1, 0, 1, 0, 1, 0]
    r = calibration(s, h)
    # bin [0.9, 1.0): 4 items, mean 0.9, accuracy 0.5, gap 0.4; bin [0.6, 0.7): 2 items, 0.1
    assert r['ece'] == pytest.approx((4 * 0.4 + 2 * 0.1) / 6)          # 0.3
    # Brier: (0.01 + 0.81 + 0.01 + 0.81 + 0.16 + 0.36) / 6 = 0.36
    assert r['brier'] == pytest.approx(0.36)
    bins = r['bins']
    assert isinstance(bins, pd.DataFrame)
    assert list(bins.columns) == ['bin_lo', 'bin_hi', 'count', 'mean_score', 'accuracy']
    assert len(bins) == 10 and bins['count'].sum() == 6
    assert bins.loc[9, 'count'] == 4 and bins.loc[6, 'count'] == 2
    assert bins.loc[9, 'accuracy'] == 0.5 and math.isnan(bins.loc[0, 'accuracy'])


def test_calibration_clipping_edges_and_empty():
    r = calibration([1.3, -0.2, 1.0, 0.0], [1, 0, 1, 0])      # clipped: perfectly right
    assert r['ece'] == 0.0 and r['brier'] == 0.0
    assert r['bins'].loc[9, 'count'] == 2 and r['bins'].loc[0, 'count'] == 2
    assert calibration([0.3], [1])['bins'].loc[3, 'count'] == 1  # left edge is inclusive
    e = calibration([], [])
    assert math.isnan(e['ece']) and math.isnan(e['brier']) and e['bins']['count'].sum() == 0
    assert calibration([0.5, np.nan], [1, 1])['n'] == 1


# ----------------------------------------------------------------------------- epochs_to_reach

def test_epochs_to_reach():
    epochs, vals = [1, 2, 3, 4, 5], [0.1, 0.3, 0.5, 0.4, 0.6]
    assert epochs_to_reach(epochs, vals, 0.3) == 2.0          # >= counts
    assert epochs_to_reach(epochs, vals, 0.45) == 3.0
    assert epochs_to_reach(epochs, vals, 0.7) == math.inf     # censored, not missing
    assert epochs_to_reach([30, 10, 20], [0.9, np.nan, 0.8], 0.5) == 20.0   # sorted, NaN skipped
    assert math.isnan(epochs_to_reach([], [], 0.1))           # nothing measured


# ----------------------------------------------------------------------- significance_sentence

def _with_holm(row: dict, p_holm: float | None = None) -> dict:
    return {**row, 'p_holm': row['p_permutation'] if p_holm is None else p_holm}


def test_sentence_significant():
    row = _with_holm(paired_comparison(BASE + DIFF, BASE))
    s = significance_sentence('cls_ohem vs regression', 'PCK@0.1', row)
    assert s.startswith('cls_ohem vs regression on PCK@0.1: +0.050 (95% CI +0.04')
    assert 'Holm-adjusted p=0.0078 (permutation)' in s
    assert s.endswith('— significant at α=0.05.')


def test_sentence_not_significant():
    row = _with_holm(paired_comparison(BASE + NULL, BASE))
    s = significance_sentence('cls_ohem', 'PCK@0.1', {**row, 'baseline': 'regression'})
    assert s.startswith('cls_ohem vs regression on PCK@0.1:')
    assert 'not significant' in s and 'inconclusive' not in s


def test_sentence_inconclusive_with_three_seeds():
    row = _with_holm(paired_comparison(BASE[:3] + DIFF[:3], BASE[:3]))
    s = significance_sentence('cls_ohem vs regression', 'AUC', row)
    assert 'with n=3 seeds the exact test cannot go below p=0.25: inconclusive' in s
    assert 'not significant' not in s


def test_sentence_holm_decides_and_small_n_never_raises():
    row = paired_comparison(BASE + DIFF, BASE)
    assert 'not significant' in significance_sentence('a vs b', 'm', _with_holm(row, 0.2))
    s = significance_sentence('a vs b', 'm', pd.Series(row))       # no p_holm: unadjusted
    assert 'unadjusted p=0.0078' in s
    one = significance_sentence('a vs b', 'm', _with_holm(paired_comparison([0.5], [0.4])))
    assert 'inconclusive' in one
