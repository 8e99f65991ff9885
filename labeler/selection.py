"""Auto-accept by conformal selection: one random audit sample of the project, a guarantee on the
whole accepted set. Pure: numpy and scipy, no I/O.

The question asked of every candidate face j (a face whose evidence may auto-accept, with a trust
score s_j, ``labeler.routing.trust_score``) is "is its proposal wrong?". A seeded random sample of
the candidates is audited blind (the *calibration* faces: proposal right or wrong, and their
scores). For each other candidate, the conformal p-value

    p_j = (1 + #{calibration faces i whose proposal is wrong and s_i >= s_j}) / (n + 1)

is a valid p-value for "face j's proposal is wrong" when the calibration faces and the candidate
are exchangeable (Jin & Candes 2023, "Selection by prediction with conformal p-values": the
clipped score, here with ties counted against the face, which only makes p larger). The
Benjamini-Hochberg procedure at level q = 1 - target over these p-values selects a set whose
false discovery rate, the expected share of wrong proposals in it, is at most q (ibid., Theorem
2.3; no assumption on the model or the score, only on the random audit sample). p_j falls as s_j
rises, so the selected set is every test face with a score at or above one threshold.

``method``:
- ``conformal`` (the default): one calibration sample for every class; the guarantee is on the
  whole accepted set. With n audits the smallest set it can accept is 1 / (q (n + 1)) of the test
  faces (20% at n = 100, q = 0.05): the p-values cannot go below 1 / (n + 1).
- ``conformal-class`` (Mondrian): calibration and Benjamini-Hochberg per proposed class, so each
  class's accepted set has its own false discovery rate <= q and no class can hide behind a large,
  easy one (happy). It needs about 20 / (q-share of the class) audits per class before it accepts
  anything in that class: with 100 audits over 7 classes, usually nothing.

The accepted set's precision is estimated the way the selection reads the audits
(:func:`accepted_precision`), with bounds that hold although the threshold was chosen on them; the
proposals nobody checked (what `export --include-proposals` writes) are estimated by
prediction-powered inference (:func:`ppi_accuracy`, Angelopoulos et al. 2023): their mean trust
score corrected by the score's mean error on the random audit sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
from scipy.stats import beta, norm

from labeler.types import ALL_CLASSES, Estimate, Selection

#: bounds are one-sided 95% (the ends of a two-sided 90% interval), as for the buckets (labeler.audit)
BOUND_Z = float(norm.ppf(0.95))


def conformal_pvalues(cal_scores: Sequence[float], cal_wrong: Sequence[bool], test_scores: Sequence[float]) -> np.ndarray:
    """p_j = (1 + #{i: wrong_i and s_i >= s_j}) / (n + 1) for every test score (see the module)."""
    cs = np.asarray(cal_scores, dtype=float)
    cw = np.asarray(cal_wrong, dtype=bool)
    ts = np.asarray(test_scores, dtype=float)
    if cs.shape != cw.shape:
        raise ValueError(f"calibration scores and outcomes differ in length: {cs.shape} vs {cw.shape}")
    wrong = np.sort(cs[cw])
    above = len(wrong) - np.searchsorted(wrong, ts, side="left")
    return (1.0 + above) / (len(cs) + 1.0)


def benjamini_hochberg(pvalues: Sequence[float], q: float) -> np.ndarray:
    """Boolean mask of the hypotheses Benjamini-Hochberg rejects at level ``q``."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool)
    ranked = np.sort(p)
    eps = 1e-12  # q = 1 - 0.8 is 0.19999999999999996 in floating point: 1/5 must still pass it
    ok = np.nonzero(ranked <= q * np.arange(1, m + 1) / m + eps)[0]
    if len(ok) == 0:
        return np.zeros(m, dtype=bool)
    return p <= q * (ok[-1] + 1) / m + eps


def select_threshold(cal_scores, cal_wrong, test_scores, q: float) -> Optional[float]:
    """The lowest test score conformal selection accepts at level ``q`` (every test face at or above
    it is selected), None when it selects nothing."""
    ts = np.asarray(test_scores, dtype=float)
    if len(ts) == 0 or len(cal_scores) == 0:
        return None
    chosen = benjamini_hochberg(conformal_pvalues(cal_scores, cal_wrong, ts), q)
    return float(ts[chosen].min()) if chosen.any() else None


def smallest_share(n: int, q: float) -> float:
    """The smallest share of the test faces a selection from ``n`` audits can accept at level ``q``
    (the p-values cannot go below 1 / (n + 1))."""
    return 1.0 / (q * (n + 1))


def audits_for_share(share: float, q: float) -> int:
    """Audits needed before a selection can accept as little as ``share`` of the test faces."""
    return max(1, math.ceil(1.0 / (q * share) - 1))


def accepted_precision(cal_scores: Sequence[float], cal_right: Sequence[bool], threshold: float, accepted: int,
                       pool: int) -> Estimate:
    """The precision of the faces at or above ``threshold`` (``accepted`` of them among the ``pool``
    candidates that were not audited) estimated from the audited ones, the way the selection itself
    reads them: the share of the candidates that is wrong and scores at or above the threshold,
    (1 + wrong audited above) / (n + 1), over the share that scores there. The bounds are
    Clopper-Pearson bounds of that wrong share, Bonferroni-corrected over every step the threshold
    could have stopped at (one per wrong audit, plus one), so they hold although the threshold was
    chosen on the same audits."""
    cs = np.asarray(cal_scores, dtype=float)
    cr = np.asarray(cal_right, dtype=bool)
    n = len(cs)
    if accepted == 0 or n == 0:
        return Estimate(None, 0.0, 1.0, "nothing accepted")
    above = cs >= threshold
    wrong = int((~cr & above).sum())
    share = (accepted + int(above.sum())) / (pool + n)  # of all candidates (audited ones too)
    steps = int((~cr).sum()) + 1
    conf = 1 - 0.05 / steps  # one-sided, simultaneous over the steps
    hi = 1.0 if wrong >= n else float(beta.ppf(conf, wrong + 1, n - wrong))
    lo = 0.0 if wrong == 0 else float(beta.ppf(1 - conf, wrong, n - wrong + 1))
    point = (wrong + 1) / (n + 1)
    clip = lambda x: min(max(x, 0.0), 1.0)  # noqa: E731
    how = (f"from the audits: {wrong} of {n} audited faces wrong at or above the threshold, where "
           f"{share:.1%} of the candidates score; bounds one-sided 95%, simultaneous over the {steps} places "
           f"the threshold could stop")
    return Estimate(clip(1 - point / share), clip(1 - hi / share), clip(1 - lo / share), how)


def ppi_accuracy(scores: Sequence[float], cal_scores: Sequence[float], cal_right: Sequence[bool]) -> Estimate:
    """Prediction-powered estimate (Angelopoulos et al. 2023) of the share of right proposals among
    faces with ``scores`` (e.g. every candidate nobody labeled): their mean trust score, corrected by
    the mean of (right - score) over a random audit sample of the same faces (``cal_*``), with a
    normal interval of both parts' variance. Valid where the audited faces are a random sample of
    those faces (no selection in between)."""
    ts = np.asarray(scores, dtype=float)
    cs = np.asarray(cal_scores, dtype=float)
    cr = np.asarray(cal_right, dtype=float)
    if len(ts) == 0 or len(cs) < 2:
        return Estimate(None, 0.0, 1.0, "too few faces or audits")
    rect = cr - cs
    point = float(ts.mean() + rect.mean())
    half = BOUND_Z * math.sqrt((ts.var(ddof=1) / len(ts) if len(ts) > 1 else 0.0) + rect.var(ddof=1) / len(cs))
    how = (f"prediction-powered: mean trust score {ts.mean():.3f} of {len(ts)} faces, corrected by {rect.mean():+.3f} "
           f"(right minus score over {len(cs)} audited faces)")
    return Estimate(min(max(point, 0.0), 1.0), min(max(point - half, 0.0), 1.0), min(max(point + half, 0.0), 1.0), how)


def expected_selected(scores: Sequence[float], n: int, q: float) -> float:
    """How many of the candidates that are not audited a selection from ``n`` audits would accept if
    every trust score were the chance that its proposal is right (a plug-in: the expected counts in
    place of the audits). Reads scores only, never labels, so deciding by it keeps the guarantee."""
    s = np.sort(np.asarray(scores, dtype=float))[::-1]
    N = len(s)
    if N == 0 or n < 1 or n >= N:
        return 0.0
    wrong = np.cumsum(1.0 - s) / N  # share of candidates wrong and at or above each score
    p = (n * wrong + 1.0) / (n + 1.0)
    ok = np.nonzero(p <= q * np.arange(1, N + 1) / N)[0]
    return 0.0 if len(ok) == 0 else float((ok[-1] + 1) * (N - n) / N)


@dataclass(frozen=True)
class Calibrated:
    """One audited candidate: its proposed class, trust score and whether the proposal was right."""

    label: str
    score: float
    right: bool


def select(cal: Sequence[Calibrated], test: Sequence[tuple[str, float]], target: float, method: str = "conformal",
           audit_size: int = 0) -> Selection:
    """Conformal selection of the ``test`` faces ((class, score) pairs) from the audited ``cal`` faces."""
    if method not in ("conformal", "conformal-class"):
        raise ValueError(f"unknown selection method {method!r}: expected conformal or conformal-class")
    q = 1.0 - target
    if method == "conformal":
        groups = {ALL_CLASSES: (list(cal), list(test))}
    else:
        groups = {c: ([x for x in cal if x.label == c], [t for t in test if t[0] == c])
                  for c in sorted({t[0] for t in test} | {x.label for x in cal})}
    thresholds: dict[str, float] = {}
    for key, (cs, ts) in groups.items():
        t = select_threshold([x.score for x in cs], [not x.right for x in cs], [s for _, s in ts], q)
        if t is not None:
            thresholds[key] = t
    per: dict[str, tuple[int, int]] = {}
    for x in cal:
        a, w = per.get(x.label, (0, 0))
        per[x.label] = (a + 1, w + (0 if x.right else 1))
    n, wrong = len(cal), sum(1 for x in cal if not x.right)
    sel = Selection(method, target, audit_size, n, wrong, len(test), thresholds, per_class=dict(sorted(per.items())))
    acc = [s for lab, s in test if sel.accepts(lab, s)]
    est = Estimate(None, 0.0, 1.0, "nothing accepted")
    if acc and method == "conformal":
        est = accepted_precision([x.score for x in cal], [x.right for x in cal], thresholds[ALL_CLASSES], len(acc), len(test))
    elif acc:  # per class, then the classes' estimates weighted by their accepted faces
        parts = []
        for c, t in thresholds.items():
            k = sum(1 for lab, s in test if lab == c and s >= t)
            cc = [x for x in cal if x.label == c]
            e = accepted_precision([x.score for x in cc], [x.right for x in cc], t, k,
                                   sum(1 for lab, _ in test if lab == c))
            parts.append((k, e))
        tot = sum(k for k, _ in parts)
        est = Estimate(sum(k * (e.precision or 0.0) for k, e in parts) / tot, sum(k * e.lower for k, e in parts) / tot,
                       sum(k * e.upper for k, e in parts) / tot, "per class, " + parts[0][1].how)
    if acc:
        why = f"{len(acc)} of {len(test)} candidate faces selected at target {target:g} from {n} audits ({wrong} wrong)"
    elif not test:
        why = "every candidate face has a person's label: nothing is left to auto-accept"
    else:
        why = (f"nothing selected at target {target:g} from {n} audits ({wrong} wrong): with {n} audits a selection "
               f"must take at least {smallest_share(n, q):.0%} of the {len(test)} candidate faces, and the audits do "
               f"not show that many to be right often enough")
    return replace(sel, accepted=len(acc), estimate=est, why=why)


def not_ready(method: str, target: float, audit_size: int, answered: int, test: int, asked: int) -> Selection:
    """The selection before the planned audits are in: accepts nothing and says what is missing."""
    why = (f"auto-accept starts once {audit_size} candidate faces are audited blind in the seeded order "
           f"({answered} done, {asked} to go)")
    return Selection(method, target, audit_size, answered, 0, test, {}, 0, Estimate(None, 0.0, 1.0, why), False, why,
                     asked=asked)


def dataset_accuracy(human: int, auto: int, est: Estimate) -> Estimate:
    """The accepted labels of the data set as a whole: human labels counted as right, the auto-accepted
    ones at the selection's estimate."""
    n = human + auto
    if n == 0:
        return Estimate(None, 0.0, 1.0, "no accepted labels")
    if auto == 0:
        return Estimate(1.0, 1.0, 1.0, f"{human} human labels (counted as right); nothing auto-accepted")
    p = est.precision if est.precision is not None else 0.0
    return Estimate((human + auto * p) / n, (human + auto * est.lower) / n, (human + auto * est.upper) / n,
                    f"{human} human labels counted as right, {auto} auto-accepted at {est.how}")
