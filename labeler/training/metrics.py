"""How a model is judged on held-out human labels (accuracy, macro-F1, ECE, NLL, confusion), the
promotion rule, and the temperature fit for flip-averaged probabilities."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from labeler.fer.calibration import class_scores, expected_calibration_error, fit_temperature
from labeler.fer.model import softmax


def evaluate(probs: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro-F1 (over the classes present in ``y``), ECE, NLL and the confusion matrix
    (rows = truth, columns = prediction, in ``labels`` order)."""
    k = len(labels)
    n = len(y)
    if n == 0:
        return {"n": 0}
    pred = probs.argmax(axis=1)
    s = class_scores(y, pred, k)
    cm = s["cm"]
    f1s = {labels[c]: float(s["f1"][c]) for c in np.unique(y)}
    p_true = np.clip(probs[np.arange(n), y], 1e-12, 1.0)
    return {
        "n": int(n),
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(float(np.mean(list(f1s.values()))), 4),
        "ece": round(float(expected_calibration_error(probs, y, bins=15)), 4),
        "nll": round(float(-np.log(p_true).mean()), 4),
        "f1": {c: round(v, 4) for c, v in f1s.items()},
        "labels": list(labels),
        "confusion": cm.tolist(),
    }


def better(after: dict, before: dict) -> bool:
    """The promotion rule: a higher held-out macro-F1, ties broken by a higher accuracy."""
    a = (after.get("macro_f1", -1.0), after.get("accuracy", -1.0))
    b = (before.get("macro_f1", -1.0), before.get("accuracy", -1.0))
    return a[0] > b[0] + 1e-9 or (abs(a[0] - b[0]) <= 1e-9 and a[1] > b[1] + 1e-9)


def format_metrics(m: dict) -> list[str]:
    """Before/after lines and the confusion matrix of a metrics record, for people."""
    out = []
    for side in ("before", "after"):
        x = m.get(side) or {}
        if not x.get("n"):
            continue
        out.append(f"{side:6s} n={x['n']} accuracy={x['accuracy']:.3f} macro-F1={x['macro_f1']:.3f} ECE={x['ece']:.3f} NLL={x['nll']:.3f}")
    x = m.get("after") or m.get("before") or {}
    if x.get("confusion"):
        labs = x["labels"]
        out.append("confusion (rows truth, columns predicted), after:" if m.get("after") else "confusion:")
        out.append("          " + " ".join(f"{lab[:7]:>7s}" for lab in labs))
        for lab, row in zip(labs, x["confusion"]):
            if sum(row):
                out.append(f"{lab:>9s} " + " ".join(f"{v:7d}" for v in row))
    return out


def _avg(l1: np.ndarray, l2: Optional[np.ndarray]) -> np.ndarray:
    """Flip averaging exactly as OnnxFERModel.predict does it: the mean of the logits."""
    return l1 if l2 is None else 0.5 * (l1 + l2)


def fit_temperature_pair(l1: np.ndarray, l2: Optional[np.ndarray], y: np.ndarray) -> float:
    """The temperature minimising the NLL of softmax(mean(l1, l2) / T), the probabilities the
    model gives with flip averaging (just softmax(l1 / T) when ``l2`` is None)."""
    if len(y) == 0:
        return 1.0
    return round(float(fit_temperature(_avg(l1, l2), y)), 4)


def probs_from_logits(l1: np.ndarray, l2: Optional[np.ndarray], t: float) -> np.ndarray:
    return softmax(_avg(l1, l2), t)
