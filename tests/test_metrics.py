"""Figures of a detector, checked on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

import metrics


@pytest.mark.parametrize(
    ("labels", "scores", "auc"),
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        ([0, 1], [0.5, 0.5], 0.5),
        ([1, 1, 0], [0.9, 0.2, 0.2], 0.75),
        ([1, 1], [0.1, 0.2], None),
    ],
)
def test_roc_auc(labels, scores, auc):
    assert metrics.roc_auc(np.array(labels), np.array(scores)) == (auc if auc is None else pytest.approx(auc))


def test_the_temperature_that_made_the_labels_is_found():
    """Labels drawn at sigmoid(z / 2) from a model that says sigmoid(z): the model is overconfident by
    a temperature of 2, and calibration must find it and remove the error."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, size=40_000)
    labels = rng.random(logits.size) < 1 / (1 + np.exp(-logits / 2))
    overconfident = 1 / (1 + np.exp(-logits))
    temperature = metrics.fit_temperature(labels, overconfident)
    assert temperature == pytest.approx(2.0, rel=0.05)
    before = metrics.calibration(labels, overconfident)["ece"]
    after = metrics.calibration(labels, metrics.apply_temperature(overconfident, temperature))["ece"]
    assert before > 0.08 and after < 0.015
    # The temperature keeps the ranking and the 0.5 threshold: no verdict changes.
    calibrated = metrics.apply_temperature(overconfident, temperature)
    assert np.array_equal(np.argsort(calibrated), np.argsort(overconfident))
    assert np.array_equal(calibrated >= 0.5, overconfident >= 0.5)


def test_calibration_error_and_reliability_table_by_hand():
    report = metrics.calibration([0, 0, 1, 1, 1], [0.12, 0.18, 0.9, 0.95, 0.55])
    # bins: 0.1-0.2 holds 0.12, 0.18 (mean 0.15, none fake); 0.5-0.6 holds 0.55 (fake); 0.9-1.0 holds 0.9, 0.95
    assert [(row["bin"], row["count"], row["fake_share"]) for row in report["reliability"]] == [
        ("0.1-0.2", 2, 0.0),
        ("0.5-0.6", 1, 1.0),
        ("0.9-1.0", 2, 1.0),
    ]
    assert report["ece"] == pytest.approx((2 * 0.15 + 1 * 0.45 + 2 * 0.075) / 5, abs=1e-4)


def test_binary_metrics_give_false_alarms_and_an_interval_around_the_auc():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 200)
    scores = np.concatenate([rng.normal(0.4, 0.1, 200), rng.normal(0.6, 0.1, 200)]).clip(0, 1)
    figures = metrics.binary_metrics(labels, scores, scores >= 0.5)
    low, high = figures["roc_auc_ci95"]
    assert low < figures["roc_auc"] < high and 0.03 < high - low < 0.15
    assert figures["false_alarms"] == pytest.approx(float((scores[:200] >= 0.5).mean()), abs=1e-4)
    assert metrics.binary_metrics([1, 1], [0.2, 0.9], [False, True])["roc_auc_ci95"] is None
