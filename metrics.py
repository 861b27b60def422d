"""Figures for a binary detector (fake is the positive class): ROC AUC with a bootstrap interval,
accuracy, false alarms, calibration error, and the temperature that calibrates it.

This module imports nothing of the project.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import rankdata

BOOTSTRAP_ROUNDS = 1000


def _logits(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities with their logits divided by ``temperature``."""
    return 1 / (1 + np.exp(-_logits(probabilities) / temperature))


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature T that makes sigmoid(logit / T) fit ``labels`` best (least log loss): one
    parameter, so the ranking and the 0.5 threshold, hence every verdict, stay as they are."""
    logits = _logits(probabilities)
    labels = np.asarray(labels, dtype=np.float64)

    def log_loss(log_t: float) -> float:
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, z) - labels * z))

    return float(np.exp(minimize_scalar(log_loss, bounds=(-3, 3), method="bounded").x))


def calibration(labels, probabilities, bins: int = 10) -> dict:
    """Expected calibration error (the mean gap between P(DeepFake) and the share of fakes, weighted by
    how many crops fall in each of ``bins`` equal bins) and the reliability table behind it."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    table, error = [], 0.0
    for index in range(bins):
        inside = which == index
        count = int(inside.sum())
        if not count:
            continue
        predicted, observed = float(probabilities[inside].mean()), float(labels[inside].mean())
        error += count / len(labels) * abs(predicted - observed)
        table.append(
            {
                "bin": f"{index / bins:.1f}-{(index + 1) / bins:.1f}",
                "count": count,
                "mean_probability": round(predicted, 4),
                "fake_share": round(observed, 4),
            }
        )
    return {"ece": round(error, 4), "reliability": table}


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None without both classes."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_auc_interval(labels, scores, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> list[float] | None:
    """A bootstrap 95% interval of the ROC AUC: the 2.5th and 97.5th percentiles over ``rounds``
    resamples (with replacement) of the scored items; None without both classes."""
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    if roc_auc(labels, scores) is None:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        pick = rng.integers(len(labels), size=len(labels))
        value = roc_auc(labels[pick], scores[pick])
        if value is not None:
            values.append(value)
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def quantile_bands(values, reference, bands: int = 4) -> tuple[np.ndarray, list[float]]:
    """Each of ``values``' band (0: the lowest) and the ``bands - 1`` edges between bands, cut so that
    each band holds as many of ``reference`` (a non-empty part of the values, as the real crops)."""
    edges = [float(edge) for edge in np.quantile(np.asarray(reference, float), np.arange(1, bands) / bands)]
    return np.digitize(np.asarray(values, float), edges), edges


def binary_metrics(labels, scores, predicted) -> dict:
    """Accuracy, ROC AUC with its bootstrap 95% interval, the confusion matrix, the false alarms (the
    share of real items called fake) and the calibration of ``scores`` (P(DeepFake))."""
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    auc = roc_auc(labels, scores)
    reals = int((~labels).sum())
    return {
        "count": int(len(labels)),
        "accuracy": round(float((labels == predicted).mean()), 4) if len(labels) else None,
        "roc_auc": None if auc is None else round(auc, 4),
        "roc_auc_ci95": roc_auc_interval(labels, scores),
        "false_alarms": round(int((~labels & predicted).sum()) / reals, 4) if reals else None,
        "confusion": {
            "true_fake": int((labels & predicted).sum()),
            "false_fake": int((~labels & predicted).sum()),
            "true_real": int((~labels & ~predicted).sum()),
            "false_real": int((labels & ~predicted).sum()),
        },
        "calibration": calibration(labels, scores) if len(labels) else None,
    }
