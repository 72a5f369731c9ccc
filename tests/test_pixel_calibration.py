"""PixelReliability / pixel_ece: the per-pixel calibration histogram on hand-built maps."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.evaluation.pixel_calibration import PixelReliability, by_group, pixel_ece


def _ece(acc: PixelReliability) -> float:
    r = acc.result()
    return pixel_ece(r['count'], r['sum_pred'], r['sum_target'])


def test_hand_example():
    # background + 1 keypoint, a 1 x 2 image; 10 bins
    probs = np.array([[[0.9, 0.2]], [[0.1, 0.8]]])
    target = np.array([[[1.0, 0.5]], [[0.0, 0.5]]])
    acc = PixelReliability(n_bins=10)
    acc.update(probs, target)
    r = acc.result()
    assert r['count'][0].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 1]      # background: .2, .9
    assert r['count'][1].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]      # keypoint: .1, .8
    assert r['sum_target'][0, 9] == 1.0 and r['sum_pred'][1, 8] == pytest.approx(0.8)
    # one entry per bin: ECE = mean |p - t| = (0.1 + 0.3 + 0.1 + 0.3) / 4
    assert _ece(acc) == pytest.approx(0.2)


def test_classes_are_binned_apart_so_a_uniform_forecast_is_not_calibrated():
    # two pixels whose target is [0.9, 0.1]; the network says [0.5, 0.5] at both. Binned over
    # both classes together the four entries share one bin with Σp = Σt = 2 (p and t both sum
    # to 1 per pixel): ECE 0. Per class: background |1.0 - 1.8|, keypoint |1.0 - 0.2|.
    acc = PixelReliability(n_bins=10)
    acc.update(np.full((2, 1, 2), 0.5), np.array([[[0.9, 0.9]], [[0.1, 0.1]]]))
    r = acc.result()
    assert r['count'].shape == (2, 10) and r['count'][:, 5].tolist() == [2, 2]
    assert _ece(acc) == pytest.approx((0.8 + 0.8) / 4)
    pooled = abs(r['sum_pred'].sum() - r['sum_target'].sum()) / r['count'].sum()
    assert pooled == pytest.approx(0.0, abs=1e-12)


def test_by_group_pools_the_keypoint_channels_for_the_figure():
    acc = PixelReliability(n_bins=4)
    acc.update(np.array([[[0.9]], [[0.05]], [[0.05]]]), np.array([[[1.0]], [[0.0]], [[0.0]]]))
    g = by_group(acc.result())
    assert g['count'].tolist() == [[0, 0, 0, 1], [2, 0, 0, 0]]
    assert g['sum_pred'][1, 0] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        acc.update(np.zeros((2, 1, 1)), np.zeros((2, 1, 1)))      # channel count changed


def test_honest_probabilities_have_zero_ece_and_edges_are_closed():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(18, 16, 16))
    p = np.exp(logits) / np.exp(logits).sum(axis=0)
    acc = PixelReliability()
    acc.update(p, p)
    edge = np.zeros((18, 1, 1))
    edge[0] = 1.0                                            # p = 1 and p = 0 exactly
    acc.update(edge, edge)
    assert _ece(acc) == pytest.approx(0.0, abs=1e-12)
    r = acc.result()
    assert r['count'].sum() == 18 * 257 and r['count'][0, -1] >= 1   # p = 1: last bin
    # every prediction 10% above its target (same bins for p and t): ECE = mean(p - p / 1.1)
    acc2 = PixelReliability()
    acc2.update(p, p / 1.1)
    assert _ece(acc2) == pytest.approx(np.mean(p - p / 1.1))


def test_empty_and_bad_input():
    assert math.isnan(_ece(PixelReliability()))
    with pytest.raises(ValueError):
        PixelReliability().update(np.zeros((3, 2, 2)), np.zeros((3, 2, 3)))
    with pytest.raises(ValueError):
        PixelReliability(n_bins=0)
