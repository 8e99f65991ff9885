"""Probability calibration (numpy only): temperature scaling, expected calibration error, reliability table.

Temperature scaling (Guo et al. 2017) divides the logits by one scalar T > 0 fitted by minimising the
negative log-likelihood on held-out labeled data; it changes confidence, never the top-1 class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

T_MIN, T_MAX = 0.05, 20.0


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels ``y`` under softmax(logits / T)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    y = np.asarray(y, dtype=np.int64)
    return float(-_log_softmax(z)[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, t_min: float = T_MIN, t_max: float = T_MAX, tol: float = 1e-5) -> float:
    """The T in [t_min, t_max] minimising the NLL of softmax(logits / T): golden-section search on
    log T (the NLL is unimodal in T for temperature scaling). Returns 1.0 when there is no data."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.shape[0]:
        raise ValueError(f"expected logits N x K and y of length N, found {z.shape} and {y.shape}")
    if len(y) == 0:
        return 1.0
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must be in [0, {z.shape[1] - 1}], found {y.min()}..{y.max()}")
    f = lambda u: nll(z, y, math.exp(u))  # noqa: E731
    a, b = math.log(t_min), math.log(t_max)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    u = (a + b) / 2
    # the bounds themselves, in case the minimum is at an edge
    best = min((f(u), u), (f(math.log(t_min)), math.log(t_min)), (f(math.log(t_max)), math.log(t_max)))
    return float(math.exp(best[1]))


def _check(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"expected probs N x K and y of length N, found {p.shape} and {y.shape}")
    return p, y


def reliability_table(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> list[dict[str, Any]]:
    """Top-label reliability: for each of ``bins`` equal-width confidence bins over [0, 1], the
    range, count, mean confidence and accuracy (None for empty bins) and the gap |acc - conf|."""
    p, y = _check(probs, y)
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    rows: list[dict[str, Any]] = []
    if len(y) == 0:
        conf = np.zeros(0)
        correct = np.zeros(0)
    else:
        conf = p.max(axis=1)
        correct = (p.argmax(axis=1) == y).astype(np.float64)
    # bin i holds lo < conf <= hi (the first bin includes 0)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, int(bins) - 1)
    for i in range(int(bins)):
        m = idx == i
        n = int(m.sum())
        acc = float(correct[m].mean()) if n else None
        mc = float(conf[m].mean()) if n else None
        rows.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": n, "confidence": mc, "accuracy": acc,
                     "gap": abs(acc - mc) if n else None})
    return rows


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: sum over equal-width confidence bins of (bin share) x |accuracy - mean confidence|."""
    p, y = _check(probs, y)
    if len(y) == 0:
        return 0.0
    rows = reliability_table(p, y, bins)
    return float(sum(r["count"] * r["gap"] for r in rows if r["count"]) / len(y))


def class_scores(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, Any]:
    """Confusion matrix (rows = truth, columns = prediction) and per-class precision, recall and F1;
    ``macro_f1`` averages F1 over the classes present in ``y``."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y, int), np.asarray(pred, int)), 1)
    tp = np.diag(cm).astype(float)
    recall = tp / np.maximum(cm.sum(1), 1)
    precision = tp / np.maximum(cm.sum(0), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    present = cm.sum(1) > 0
    return {"cm": cm, "recall": recall, "precision": precision, "f1": f1, "present": present,
            "accuracy": float(tp.sum() / max(cm.sum(), 1)),
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0}


def coverage_at_precision(probs: np.ndarray, y: np.ndarray, target: float = 0.95) -> float:
    """The largest share of items, most confident first, whose top-1 precision is still >= target."""
    if len(y) == 0:
        return 0.0
    order = np.argsort(-probs.max(1), kind="stable")
    correct = (probs.argmax(1)[order] == np.asarray(y)[order]).astype(float)
    prec = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    ok = np.flatnonzero(prec >= target)
    return float((ok.max() + 1) / len(y)) if len(ok) else 0.0
