"""Measured precision of auto-accepted labels: confidence bounds, per-bucket estimates, priors and
what an audit still needs (``--method bucket``; the default, conformal selection, is
``labeler.selection``). Pure: no I/O; scipy's beta distribution for the exact bounds.

A bucket (``labeler.routing.candidate``: evidence kind x model-probability band x class) is
certified when the lower end of the 95% interval of its audited precision reaches the target
precision; only then do its faces auto-accept. Audits are blind human labels of a seeded random
sample of the bucket's faces (``labeler.store.audit``); imported labels count too.

Bounds are one-sided 95% confidence bounds (the ends of the two-sided 90% interval): a bucket is
certified when P(precision >= lower) >= 95%, the usual meaning of a "95% lower confidence bound".
Clopper-Pearson (exact: the beta quantile, ``scipy.stats.beta.ppf``) decides by default; Wilson is there for comparison and for
priors, whose pseudo-counts need not be whole numbers. ``wilson``/``clopper_pearson`` themselves
take any confidence (two-sided; 0.95 by default).

Priors (my choice, stated in every estimate that uses one): before any audit, a bucket's precision is
taken as the mean calibrated model probability of its class over its faces, worth only
``PRIOR_WEIGHT`` (20) audits, Wilson bound. Calibration is measured on another domain than the
user's photos (README: ECE 0.06-0.12 on web photos), so a prior can never certify much: 20 of 20
gives a lower bound of 0.881. At the default target 0.95 no bucket auto-accepts on a prior alone.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, Optional

from scipy.stats import beta

from labeler.types import BucketEstimate

CONFIDENCE = 0.95
#: the certifying bound is a one-sided 95% lower confidence bound (P(precision >= lower) >= 95%):
#: the lower end of the two-sided 90% interval; ``upper`` is the one-sided 95% upper bound
BOUNDS = 1 - 2 * (1 - CONFIDENCE)
METHODS = ("clopper-pearson", "wilson")
#: how many audits the prior (mean calibrated probability) is worth
PRIOR_WEIGHT = 20.0


# ---------------------------------------------------------------------------- bounds
def wilson(x: float, n: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for ``x`` successes of ``n`` (``x`` may be fractional); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = x / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def clopper_pearson(x: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for ``x`` successes of ``n``; (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= x <= n:
        raise ValueError(f"successes must be between 0 and n={n}, not {x}")
    alpha = 1.0 - confidence
    lo = 0.0 if x == 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
    return lo, hi


def interval(x: int, n: int, method: str = "clopper-pearson", confidence: float = CONFIDENCE) -> tuple[float, float]:
    if method == "clopper-pearson":
        return clopper_pearson(x, n, confidence)
    if method == "wilson":
        return wilson(x, n, confidence)
    raise ValueError(f"unknown interval method {method!r}: expected one of {', '.join(METHODS)}")


# ---------------------------------------------------------------------------- estimates
def estimate(bucket: str, faces: int, audited: int, agreeing: int, mean_prob: Optional[float] = None,
             method: str = "clopper-pearson", prior_weight: float = PRIOR_WEIGHT) -> BucketEstimate:
    """The bucket's precision: from its audits when it has any, else from the prior (the mean
    calibrated probability of its class, worth ``prior_weight`` audits), else unknown (0, 1)."""
    if audited > 0:
        lo, hi = interval(agreeing, audited, method, BOUNDS)
        return BucketEstimate(bucket, faces, audited, agreeing, agreeing / audited, lo, hi, "audit", method)
    if mean_prob is not None and prior_weight > 0:
        lo, hi = wilson(mean_prob * prior_weight, prior_weight, BOUNDS)
        how = (f"prior: mean calibrated model probability {mean_prob:.3f} over {faces} faces, "
               f"worth {prior_weight:g} audits (Wilson); no audit yet")
        return BucketEstimate(bucket, faces, 0, 0, mean_prob, lo, hi, how, "wilson")
    return BucketEstimate(bucket, faces, 0, 0, None, 0.0, 1.0, "prior: nothing known; no audit yet", method)


def needed(agreeing: int, audited: int, target: float, method: str = "clopper-pearson",
           limit: int = 100_000) -> Optional[int]:
    """How many more audits, all agreeing, would bring the lower bound to ``target``; None when
    more than ``limit`` (or never: a target of 1 or more)."""
    def ok(k: int) -> bool:
        return interval(agreeing + k, audited + k, method, BOUNDS)[0] >= target

    if target >= 1.0:
        return None
    if ok(0):
        return 0
    hi = 1
    while not ok(hi):
        if hi > limit:
            return None
        hi *= 2
    lo = hi // 2  # ok(lo) is False (or lo == 0, checked above)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi if hi <= limit else None


@dataclass(frozen=True)
class BucketState:
    """Where a bucket stands at a target: ``auto`` (certified), ``review`` (settled: its upper bound
    is below the target, or it cannot be certified with the faces it has left), or ``open`` (an
    audit sample of ``sample`` more faces is wanted); ``needed``: agreeing audits still needed."""

    estimate: BucketEstimate
    state: str  # auto | review | open
    needed: Optional[int]
    why: str
    sample: int = 0


def settle(est: BucketEstimate, target: float, unaudited: int, batch: int = 10) -> BucketState:
    """The state of a bucket with ``unaudited`` faces left that could still be audited."""
    if est.source == "audit" and est.certifies(target):
        return BucketState(est, "auto", 0, f"certified: lower bound {est.lower:.3f} >= {target:g}")
    if est.source == "audit" and est.upper < target:
        return BucketState(est, "review", None, f"below target: upper bound {est.upper:.3f} < {target:g}")
    need = needed(est.agreeing, est.audited, target, est.method if est.source == "audit" else "clopper-pearson",
                  limit=max(unaudited, 0))
    if need is None:
        return BucketState(est, "review", None, f"cannot be certified: even {unaudited} more agreeing audits would not reach {target:g}")
    if est.source != "audit" and est.certifies(target):  # a prior that certifies a low target
        return BucketState(est, "auto", need, f"certified by its prior (lower {est.lower:.3f} >= {target:g}); audit to measure")
    return BucketState(est, "open", need, f"needs {need} more agreeing audits", sample=min(batch, need, unaudited))


def audit_order(face_ids: Iterable[int], seed: int = 0) -> list[int]:
    """A seeded, reproducible random order of faces (a face's place does not depend on the others,
    so faces added later fall into the order without moving earlier draws)."""
    return sorted(face_ids, key=lambda f: hashlib.sha256(f"{seed}:{f}".encode()).hexdigest())


def table(states: Iterable[BucketState], target: float) -> list[str]:
    """Per bucket: faces, audited, agreeing, precision with its interval, where the number comes
    from, and auto / review / open (with the agreeing audits still needed), as text lines."""
    rows = list(states)
    out = [f"buckets at target precision {target:g} (auto-accept when the one-sided 95% lower bound >= target):",
           f"  {'bucket':34s} {'faces':>6s} {'audited':>7s} {'agree':>6s} {'precision [95% bounds]':>26s}  state"]
    for st in rows:
        e = st.estimate
        prec = "-" if e.precision is None else f"{e.precision:.3f} [{e.lower:.3f}, {e.upper:.3f}]"
        src = "audit" if e.source == "audit" else "prior"
        state = {"auto": "auto", "review": "review", "open": f"open: {st.needed} more agreeing audits"}[st.state]
        out.append(f"  {e.bucket:34s} {e.faces:6d} {e.audited:7d} {e.agreeing:6d} {prec:>26s}  {state} ({src})")
    if not rows:
        out.append("  (no auto-accept candidates)")
    return out


@dataclass
class AccuracyTally:
    """The estimated accuracy of a set of accepted labels, added one face at a time: a human label
    counts as right (annotators' agreement is reported apart); an auto-accepted label counts at the
    estimate it was routed on (its bucket's, or the conformal selection's: point, lower, upper), one
    routed before estimates existed at (0, 0, 1); an unverified proposal (``export
    --include-proposals``) at ``proposal_estimate`` (else 0..1)."""

    human: int = 0
    auto: int = 0
    unmeasured: int = 0
    proposals: int = 0
    proposal_estimate: Optional[tuple[float, float, float, str]] = None  # point, lower, upper, how
    _p: float = 0.0
    _lo: float = 0.0
    _hi: float = 0.0

    def __post_init__(self) -> None:
        self.buckets: dict[str, list] = {}  # bucket -> [faces, precision, lower, upper] (newest seen)

    def add(self, human: bool, bucket: Optional[str] = None, p: Optional[float] = None, lo: Optional[float] = None,
            hi: Optional[float] = None, proposal: bool = False) -> None:
        if human:
            self.human += 1
            self._p, self._lo, self._hi = self._p + 1, self._lo + 1, self._hi + 1
            return
        if proposal:
            self.proposals += 1
            pp, plo, phi, _ = self.proposal_estimate or (0.0, 0.0, 1.0, "")
            self._p, self._lo, self._hi = self._p + pp, self._lo + plo, self._hi + phi
            return
        self.auto += 1
        if p is None or lo is None or hi is None:
            self.unmeasured += 1
            self._hi += 1
            return
        self._p, self._lo, self._hi = self._p + p, self._lo + lo, self._hi + hi
        b = self.buckets.setdefault(bucket or "?", [0, p, lo, hi])
        b[0] += 1
        b[1:] = [p, lo, hi]

    def result(self) -> dict:
        n = self.human + self.auto + self.proposals
        val = (lambda x: round(x / n, 4)) if n else (lambda x: None)
        selected = any(b.startswith("selection:") for b in self.buckets)
        how = ("human labels counted as right; each auto-accepted label counted at the estimate it was routed on: "
               + ("the conformal selection's (the share of wrong labels among the audited faces that score at or above "
                  "its threshold, simultaneous one-sided 95% bounds)" if selected else
                  "the precision of its bucket (evidence x model-probability band x class) as measured by blind audits of "
                  "seeded random samples (and imported labels), Clopper-Pearson 95% interval per bucket")
               + "; the data set's interval is the face-weighted mean of the bounds"
               + (f"; {self.unmeasured} auto labels were routed before estimates existed and count as 0..1" if self.unmeasured else ""))
        if self.proposals:
            how += f"; {self.proposals} unverified model proposals counted at " + (
                self.proposal_estimate[3] if self.proposal_estimate else "0..1 (not measured)")
        return {
            "faces": n, "human_labels": self.human, "auto_accepted": self.auto, "auto_unmeasured": self.unmeasured,
            "unverified_proposals": self.proposals,
            "precision": val(self._p), "lower": val(self._lo), "upper": val(self._hi),
            "buckets": {b: {"faces": v[0], "precision": v[1], "lower": v[2], "upper": v[3]} for b, v in sorted(self.buckets.items())},
            "how": how,
        }
