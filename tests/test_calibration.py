"""Calibration: temperature fitting, expected calibration error, reliability table (synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest

from labeler.fer.calibration import expected_calibration_error, fit_temperature, nll, reliability_table


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _calibrated(n=20000, k=7, seed=0):
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, k))
    p = _softmax(z)
    u = rng.random((n, 1))
    y = (p.cumsum(1) < u).sum(1).clip(0, k - 1)
    return z, y


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_fit_temperature_recovers_known_temperature(t_true):
    z, y = _calibrated()
    # a model whose logits are z * t_true is (over/under)confident by t_true; the fitted T undoes it
    t = fit_temperature(z * t_true, y)
    assert t == pytest.approx(t_true, rel=0.06)
    assert nll(z * t_true, y, t) <= nll(z * t_true, y, 1.0)


def test_fit_temperature_bounds_and_empty():
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    # labels that contradict the logits: the best T is as large as allowed
    z = np.tile([10.0, 0.0, 0.0], (50, 1))
    t = fit_temperature(z, np.full(50, 1))
    assert 19.0 <= t <= 20.0
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))


def test_ece_small_for_calibrated_large_for_overconfident():
    z, y = _calibrated()
    ece_cal = expected_calibration_error(_softmax(z), y, bins=15)
    ece_over = expected_calibration_error(_softmax(3.0 * z), y, bins=15)
    assert ece_cal < 0.02
    assert ece_over > 0.1
    # temperature scaling repairs it
    t = fit_temperature(3.0 * z, y)
    assert expected_calibration_error(_softmax(3.0 * z / t), y) < 0.02


def test_reliability_table():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    rows = reliability_table(probs, y, bins=10)
    assert len(rows) == 10 and sum(r["count"] for r in rows) == 4
    top = rows[-1]  # (0.9, 1.0]: 0.95 only; 0.9 falls in (0.8, 0.9]
    assert top["count"] == 1 and top["accuracy"] == 1.0 and top["confidence"] == pytest.approx(0.95)
    assert rows[8]["count"] == 1 and rows[8]["accuracy"] == 0.0
    assert rows[0]["count"] == 0 and rows[0]["accuracy"] is None
    ece = expected_calibration_error(probs, y, bins=10)
    expected = (abs(1 - 0.95) + abs(0 - 0.9) + abs(1 - 0.55) + abs(1 - 0.6)) / 4
    assert ece == pytest.approx(expected)
