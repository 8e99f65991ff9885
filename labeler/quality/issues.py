"""Label-issue scores with confident learning (Northcutt, Jiang and Chuang, "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 2021), through ``cleanlab``, its reference
implementation.

Given each face's label and out-of-sample model probabilities:

- ``score`` = 1 - cleanlab's label quality (``cleanlab.rank.get_label_quality_scores``). With the
  default method ``self_confidence`` it is 1 - p(given label): for a calibrated model, the
  probability that the given label is wrong. It ranked FER2013's own PublicTest labels against the
  FER+ crowd majority best of cleanlab's methods (docs/measurements.md, issue 33); the
  ``normalized_margin`` and the class-threshold-adjusted variants stay selectable.
- ``flagged`` = confident learning's verdict (``cleanlab.filter.find_label_issues``, its defaults:
  ``prune_by_noise_rate``): the faces it counts among the estimated label errors.
- ``suggested`` = the class the model prefers.

cleanlab is imported when a score is asked for (it takes seconds to import with scikit-learn).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

#: cleanlab's label-quality methods; ``adjusted_margin`` is ``normalized_margin`` on probabilities
#: less the per-class thresholds of confident learning (cleanlab's ``adjust_pred_probs``)
METHODS = ("self_confidence", "normalized_margin", "adjusted_margin", "confidence_weighted_entropy")
DEFAULT_METHOD = "self_confidence"


@dataclass(frozen=True)
class Scores:
    """Per row: ``score`` (0..1, larger = more likely wrong), ``flagged`` (None where confident
    learning cannot run: fewer than two classes among the labels) and ``suggested`` (class index)."""

    score: np.ndarray
    flagged: Optional[np.ndarray]
    suggested: np.ndarray


def _checked(given, probs) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(given, dtype=np.int64).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(y):
        raise ValueError(f"label issues: expected one row of class probabilities per label, found {p.shape} for {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"label issues: labels must be class indices 0..{p.shape[1] - 1}")
    p = np.clip(p, 0.0, None)
    s = p.sum(1, keepdims=True)
    return y, np.divide(p, s, out=np.full_like(p, 1.0 / max(p.shape[1], 1)), where=s > 0)


def scores(given, probs, method: str = DEFAULT_METHOD) -> Scores:
    """Label-issue scores of ``given`` (class indices) under ``probs`` (rows of out-of-sample class
    probabilities, normalised here)."""
    if method not in METHODS:
        raise ValueError(f"label issues: method must be one of {', '.join(METHODS)}, not {method!r}")
    y, p = _checked(given, probs)
    if len(y) == 0:
        return Scores(np.zeros(0), None, np.zeros(0, dtype=np.int64))
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    adjust = method == "adjusted_margin"
    with warnings.catch_warnings():  # "too few examples in class ...": small projects are expected
        warnings.simplefilter("ignore")
        quality = get_label_quality_scores(y, p, method="normalized_margin" if adjust else method, adjust_pred_probs=adjust)
        flagged = find_label_issues(y, p, n_jobs=1) if len(np.unique(y)) >= 2 else None
    return Scores(np.clip(1.0 - np.asarray(quality, dtype=np.float64), 0.0, 1.0),
                  None if flagged is None else np.asarray(flagged, dtype=bool), p.argmax(1))
