"""Paired comparisons of two models on the same faces (pure; standard library and numpy only).

Each face is right or wrong under the old model and under the new one. Only the discordant faces
carry evidence: ``gains`` (wrong before, right after) and ``losses`` (right before, wrong after).

- :func:`mcnemar_p`: McNemar's exact test, a binomial test of the gains among the discordant faces
  against one half (exact tail sums with integer arithmetic, no approximation).
- :func:`paired_interval`: a confidence interval for the change of accuracy (after minus before,
  paired), Newcombe's hybrid score interval for paired proportions (Newcombe 1998, Statistics in
  Medicine 17:2635, method 10: Wilson intervals of both accuracies combined with the phi
  correlation of the pairs, phi corrected as recommended there). Approximate, not exact: its coverage
  over many random draws is checked by ``tests/test_gate_stats.py``.
- :func:`paired_change` gathers both for one set of faces (:class:`PairedChange`).

A change is *significantly worse beyond a margin* when the upper end of the one-sided interval
(``confidence``, default 95%) lies below ``-margin``: a test at 5% of "the true change is at least
``-margin``". Two faces of 100 lost is not (the interval reaches above -2 points); ten faces of 100
is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from labeler.audit import wilson


def mcnemar_p(gains: int, losses: int, alternative: str = "greater") -> float:
    """McNemar's exact p-value: ``greater`` tests that the new model is better (more gains than
    losses), ``less`` that it is worse, ``two-sided`` either (twice the smaller tail, at most 1).
    1.0 when no face changed."""
    n = int(gains) + int(losses)
    if n == 0:
        return 1.0

    def tail_ge(k: int) -> float:  # P(X >= k), X ~ Binomial(n, 1/2), exactly
        return sum(math.comb(n, i) for i in range(max(k, 0), n + 1)) / 2 ** n

    if alternative == "greater":
        return tail_ge(int(gains))
    if alternative == "less":
        return tail_ge(int(losses))
    if alternative == "two-sided":
        return min(1.0, 2 * min(tail_ge(int(gains)), tail_ge(int(losses))))
    raise ValueError(f"alternative: expected greater, less or two-sided, found {alternative!r}")


def paired_interval(both: int, gains: int, losses: int, neither: int, confidence: float = 0.95,
                    one_sided: bool = True) -> tuple[float, float]:
    """(lower, upper) of the change of accuracy, after minus before, from the 2x2 table of paired
    outcomes: ``both`` right, ``gains`` (right only after), ``losses`` (right only before),
    ``neither``. ``one_sided``: each end is a one-sided bound at ``confidence`` (the two-sided
    interval at 1 - 2 (1 - confidence)); else the two-sided interval at ``confidence``."""
    n = both + gains + losses + neither
    if n == 0:
        return -1.0, 1.0
    conf2 = 1 - 2 * (1 - confidence) if one_sided else confidence
    after, before = (both + gains) / n, (both + losses) / n
    l1, u1 = wilson(both + gains, n, conf2)
    l2, u2 = wilson(both + losses, n, conf2)
    # phi of the pairs, Newcombe's correction: positive phi reduced by n/2, negative kept
    rows = (both + gains) * (losses + neither) * (both + losses) * (gains + neither)
    phi = 0.0
    if rows > 0:
        cross = both * neither - gains * losses
        phi = (cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)) / math.sqrt(rows)
    d = after - before
    lo = d - math.sqrt(max((after - l1) ** 2 - 2 * phi * (after - l1) * (u2 - before) + (u2 - before) ** 2, 0.0))
    hi = d + math.sqrt(max((u1 - after) ** 2 - 2 * phi * (u1 - after) * (before - l2) + (before - l2) ** 2, 0.0))
    return max(-1.0, lo), min(1.0, hi)


@dataclass(frozen=True)
class PairedChange:
    """Old vs new on the same ``n`` faces: accuracies, discordant counts, the change with its
    one-sided ``confidence`` bounds, and McNemar's exact one-sided p-values."""

    n: int
    before: float
    after: float
    gains: int
    losses: int
    lower: float
    upper: float
    p_better: float
    p_worse: float
    confidence: float

    @property
    def change(self) -> float:
        return self.after - self.before

    def worse_beyond(self, margin: float) -> bool:
        """Significantly worse by more than ``margin``: the upper bound is below ``-margin``."""
        return self.n > 0 and self.upper < -margin - 1e-12

    def better(self, alpha: float) -> bool:
        """Significantly better: McNemar's one-sided p below ``alpha``."""
        return self.p_better < alpha

    def text(self) -> str:
        """``82.0% -> 80.0% (n=100, +0/-2 faces, change -2.0 pt, 95% bounds [-5.6, +0.6], McNemar p worse 0.25)``"""
        return (f"{100 * self.before:.1f}% -> {100 * self.after:.1f}% (n={self.n}, +{self.gains}/-{self.losses} faces, "
                f"change {100 * self.change:+.1f} pt, {100 * self.confidence:.0f}% bounds [{100 * self.lower:+.1f}, "
                f"{100 * self.upper:+.1f}], McNemar p better {self.p_better:.3g}, p worse {self.p_worse:.3g})")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)  # 5 significant digits: small p-values stay readable
        return {k: (float(f"{v:.5g}") if isinstance(v, float) else v) for k, v in d.items()}


def paired_change(old_ok, new_ok, confidence: float = 0.95) -> PairedChange:
    """The paired comparison of two boolean arrays (face right under the old / the new model)."""
    a, b = np.asarray(old_ok, dtype=bool), np.asarray(new_ok, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes: expected two arrays of one shape, found {a.shape} and {b.shape}")
    both, gains, losses = int((a & b).sum()), int((b & ~a).sum()), int((a & ~b).sum())
    neither = int(len(a)) - both - gains - losses
    lo, hi = paired_interval(both, gains, losses, neither, confidence)
    n = int(len(a))
    return PairedChange(n, (both + losses) / n if n else 0.0, (both + gains) / n if n else 0.0, gains, losses, lo, hi,
                        mcnemar_p(gains, losses, "greater"), mcnemar_p(gains, losses, "less"), confidence)


def z_of(confidence: float) -> float:
    """The normal quantile of a one-sided ``confidence`` (1.645 for 0.95)."""
    return NormalDist().inv_cdf(confidence)
