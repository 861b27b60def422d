"""The original project's verdict rule, branch by branch, with its statistics."""

from __future__ import annotations

import pytest

from custom_vision import DEEPFAKE, NO_FACE, REAL, Prediction, decide


def p(deepfake: float) -> Prediction:
    return Prediction({DEEPFAKE: deepfake, REAL: round(1 - deepfake, 6)})


def test_no_crops_means_no_face_found():
    verdict = decide([])
    assert (verdict.label, verdict.deepfake_probability, verdict.stats) == (NO_FACE, None, {})


def test_only_deepfake_crops_give_deepfake_with_their_stats():
    verdict = decide([p(0.9), p(0.7), p(0.8)])
    assert verdict.label == DEEPFAKE
    stats = verdict.stats[DEEPFAKE]
    assert (stats.max, stats.min, stats.count) == (0.9, 0.7, 3)
    assert stats.mean == pytest.approx(0.8) and stats.sum == pytest.approx(2.4)
    assert REAL not in verdict.stats
    assert verdict.deepfake_probability == pytest.approx(0.8)


def test_only_real_crops_give_not_deepfake():
    verdict = decide([p(0.1), p(0.3)])
    assert verdict.label == REAL
    stats = verdict.stats[REAL]
    assert (stats.max, stats.min, stats.count) == (0.9, 0.7, 2)
    assert stats.mean == pytest.approx(0.8) and stats.sum == pytest.approx(1.6)
    assert verdict.deepfake_probability == pytest.approx(0.2)


def test_both_labels_the_higher_mean_wins_even_when_outnumbered():
    # two real crops at 0.6 and one fake crop at 0.95: the fake mean (0.95) beats the real mean (0.6)
    verdict = decide([p(0.4), p(0.4), p(0.95)])
    assert verdict.label == DEEPFAKE
    assert verdict.stats[REAL].count == 2 and verdict.stats[REAL].mean == pytest.approx(0.6)
    assert verdict.stats[DEEPFAKE].count == 1 and verdict.stats[DEEPFAKE].mean == pytest.approx(0.95)
    assert verdict.deepfake_probability == pytest.approx((0.4 + 0.4 + 0.95) / 3)


def test_both_labels_real_wins_with_the_higher_mean():
    verdict = decide([p(0.55), p(0.05)])
    assert verdict.label == REAL
    assert verdict.stats[DEEPFAKE].mean == pytest.approx(0.55)
    assert verdict.stats[REAL].mean == pytest.approx(0.95)


def test_equal_means_go_to_deepfake_the_cautious_answer():
    verdict = decide([p(0.7), p(0.3)])
    assert verdict.stats[DEEPFAKE].mean == pytest.approx(verdict.stats[REAL].mean)
    assert verdict.label == DEEPFAKE


def test_a_crop_with_equal_probabilities_is_labelled_deepfake():
    assert p(0.5).label == DEEPFAKE
