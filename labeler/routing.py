"""Routing: a pure function from the evidence for one face (and the measured precision of the
auto-accept buckets) to a decision. No I/O.

Every face whose evidence agrees is an auto-accept *candidate* in one bucket (:func:`candidate`),
named by its evidence kind, model-probability band and class, e.g. ``keyword+model:happy`` (single
face, the filename keyword is the model's top-1), ``keyword+model#2:sad`` (the keyword is the
model's #2), ``model>=0.95:neutral`` (no keyword), ``group+model>=0.95:happy`` (a face of a group
photo). A candidate is auto-accepted only when its bucket's estimate (``labeler.audit``, measured by
blind audits) certifies the target precision: lower 95% bound >= ``target_precision``. Everything
else goes to review with a reason and a priority (higher = review first). Non-candidates (ambiguous
names, quality flags, text on or beside the face, keyword and model disagreeing, an unsure model)
never auto-accept. The non-photo score is not routed on: it is a value to sort and filter by.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from labeler.types import TEXT_FLAG, BucketEstimate, Decision, FaceRecord, RuleWord, Selection, text_pending

#: how auto-accept is decided (``--method``): conformal selection from one audit sample (the
#: default; ``labeler.selection``), its per-class (Mondrian) version, or a certificate per bucket
METHODS = ("conformal", "conformal-class", "bucket")
#: the trust score counts a filename keyword that agrees with the proposal as this factor on the odds
#: (a stated prior, not fitted: the score only orders faces, the audits measure the order)
KEYWORD_ODDS = 4.0


@dataclass(frozen=True)
class RoutingPolicy:
    #: who is a candidate with a keyword: the keyword's class must be among the model's top-k
    #: classes (1 = the model's top-1) at a calibrated probability >= agree_threshold
    agree_threshold: float = 0.10
    agree_top_k: int = 2
    #: without a keyword (or on a group photo) the model's top-1 must reach this to be a candidate
    model_threshold: float = 0.7
    #: model-probability bands of the model-only buckets (the lowest is model_threshold). One band
    #: above it: on 1,500 FER2013 PublicTest faces (FER+ majority, fer-ferplus-cnn, target 0.95) bands
    #: (0.98, 0.9) auto-accepted 12.7%, (0.9) 8.8%, (0.97) 14.2%, (0.95) 18.6% (true precision >= 0.99):
    #: fewer, larger buckets cost fewer audits each, and 0.95 still keeps the very reliable faces apart
    model_bands: tuple[float, ...] = (0.95,)
    #: conformal: the accepted set's false discovery rate is at most 1 - this; bucket: a bucket
    #: auto-accepts only when its lower 95% precision bound reaches this (``--target-precision``)
    target_precision: float = 0.95
    #: how auto-accept is decided (METHODS)
    method: str = "conformal"
    #: conformal: the blind audits asked for before anything is auto-accepted (one seeded random sample
    #: of the candidates; ``labeler.selection.smallest_share`` says what a size allows)
    audit_size: int = 100
    #: conformal: the seed of the audit order (a different seed draws another random sample)
    audit_seed: int = 0
    #: conformal: ask for the audits even where they are not expected to pay for themselves in
    #: review time (``labeler.flow.audit_pays``; a small project is better reviewed on grids)
    audit_always: bool = False
    #: faces with any of these quality flags are never auto-accepted
    block_flags: tuple[str, ...] = ("small", "blurry", "profile", "low_score")
    #: review-order weights per review kind (labeler.types.REVIEW_KINDS)
    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "disagree": 3.0,  # rule and model disagree: one of them is wrong, a human settles it
            "ambiguous": 2.5,  # name with words of two classes
            "low_confidence": 2.0,
            "agree_low": 1.5,  # rule and model agree but their bucket is not certified
            "multi_face": 1.8,
            "quality": 0.5,  # blocked by a quality flag: least useful first
        }
    )

    def __post_init__(self) -> None:
        if not 0.0 < float(self.target_precision) < 1.0:
            raise ValueError(f"target precision must be between 0 and 1 (e.g. 0.95), not {self.target_precision}")
        if self.method not in METHODS:
            raise ValueError(f"routing method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if int(self.audit_size) < 1:
            raise ValueError(f"audit size must be at least 1 (e.g. 100), not {self.audit_size}")

    @property
    def source(self) -> str:
        k = f",top{self.agree_top_k}" if self.agree_top_k != 1 else ""
        m = "" if self.method == "bucket" else f",{self.method}:{self.audit_size}"
        return f"policy(agree>={self.agree_threshold:g}{k},model>={self.model_threshold:g},target={self.target_precision:g}{m})"

    def band(self, p: float) -> Optional[float]:
        """The model-probability band of ``p`` (its lower edge), None below ``model_threshold``."""
        edges = [b for b in (*self.model_bands, self.model_threshold) if b >= self.model_threshold]
        return max((b for b in edges if p >= b), default=None)


@dataclass(frozen=True)
class FaceEvidence:
    n_faces: int  # faces kept in the image
    rule_state: str  # labeled | ambiguous | none
    rule_label: Optional[str]
    rule_words: tuple[str, ...] = ()
    probs: Optional[Mapping[str, float]] = None  # calibrated model probabilities
    model: str = ""  # name@version
    flags: tuple[str, ...] = ()
    whole_image: bool = False
    #: text (caption, watermark, figure label) on or beside the face: never auto-accepted
    text_near: bool = False
    #: classes a human rejected for this face (a marked face on a Verify grid): never auto-accepted as these
    rejected: tuple[str, ...] = ()
    #: text was not looked for on this face yet (``labeler.types.text_pending``): a certified bucket
    #: still sends it to review until the check is done (``labeler.cleanup.check_text``)
    text_pending: bool = False


def evidence(
    n_faces: int,
    rule_state: str,
    rule_label: Optional[str],
    rule_words: Iterable[RuleWord],
    probs: Optional[Mapping[str, float]],
    model: str,
    flags: Iterable[str],
    whole_image: bool,
    rejected: Iterable[str] = (),
    text_pending: bool = False,
) -> FaceEvidence:
    """THE evidence builder: what route() sees of one face (negated rule words left out)."""
    return FaceEvidence(
        n_faces=n_faces, rule_state=rule_state, rule_label=rule_label,
        rule_words=tuple(w.word for w in rule_words if not w.negated), probs=probs, model=model,
        flags=tuple(flags), whole_image=bool(whole_image), text_near=TEXT_FLAG in tuple(flags),
        rejected=tuple(rejected), text_pending=bool(text_pending),
    )


def evidence_for(rec: FaceRecord, n_faces: int) -> FaceEvidence:
    """The evidence of a stored face (its newest model proposal), for re-routing and evaluation."""
    return evidence(n_faces, rec.rule_state, rec.rule_label, rec.rule_words, rec.model_probs, rec.model_source,
                    rec.flags, rec.whole_image, rec.rejected, text_pending(rec.text_near, rec.nonphoto))


def _top(probs: Mapping[str, float]) -> tuple[str, float, float]:
    items = sorted(probs.items(), key=lambda kv: -kv[1])
    second = items[1][1] if len(items) > 1 else 0.0
    return items[0][0], float(items[0][1]), float(second)


def _uncertainty(probs: Optional[Mapping[str, float]]) -> float:
    """Normalised entropy in [0, 1]: 1 = the model has no idea."""
    if not probs:
        return 1.0
    ps = [p for p in probs.values() if p > 0]
    h = -sum(p * math.log(p) for p in ps)
    return h / math.log(max(len(probs), 2))


@dataclass(frozen=True)
class Candidate:
    """An auto-accept candidate: its bucket, the label it would get, the decision kind if it is
    accepted / sent to review, and the evidence in words."""

    bucket: str
    label: str
    auto_kind: str
    review_kind: str
    why: str


def candidate(ev: FaceEvidence, policy: RoutingPolicy = RoutingPolicy()) -> Optional[Candidate]:
    """THE bucket rule: the auto-accept bucket of a face, or None when its evidence never auto-accepts
    (no model proposal, ambiguous name, quality flag, keyword and model disagreeing, unsure model, or
    a class a human rejected for this face)."""
    c = _candidate(ev, policy)
    return None if c is not None and c.label in ev.rejected else c


def _candidate(ev: FaceEvidence, policy: RoutingPolicy) -> Optional[Candidate]:
    if ev.probs is None or ev.rule_state == "ambiguous" or ev.text_near or any(f in policy.block_flags for f in ev.flags):
        return None
    top, p, _ = _top(ev.probs)
    words = ", ".join(ev.rule_words)
    single = ev.n_faces == 1 or ev.whole_image
    if single and ev.rule_state == "labeled":
        lab = ev.rule_label or ""
        pr = float(ev.probs.get(lab, 0.0))
        rank = sum(1 for v in ev.probs.values() if v > pr)  # 0 = the model's top-1
        if rank >= policy.agree_top_k or pr < policy.agree_threshold:
            return None
        how = f"{lab} ({pr:.2f})" if rank == 0 else f"{lab} is the model's #{rank + 1} ({pr:.2f}; top {top} {p:.2f})"
        kind = "keyword+model" if rank == 0 else f"keyword+model#{rank + 1}"
        return Candidate(f"{kind}:{lab}", lab, "agree", "agree_low", f"rule ({words}) and model agree: {how}")
    band = policy.band(p)
    if band is None:
        return None
    if single:
        return Candidate(f"model>={band:g}:{top}", top, "model_confident", "low_confidence", f"model {top} ({p:.2f}), no keyword")
    if ev.rule_state == "labeled":
        if top != ev.rule_label:
            return None
        return Candidate(f"group+keyword+model>={band:g}:{top}", top, "multi_face_agree", "multi_face",
                         f"multi-face image ({ev.n_faces} faces): model {top} ({p:.2f}), name says {ev.rule_label}")
    return Candidate(f"group+model>={band:g}:{top}", top, "model_confident", "low_confidence",
                     f"multi-face image ({ev.n_faces} faces): model {top} ({p:.2f}), no keyword")


def trust_score(ev: FaceEvidence, c: Candidate) -> float:
    """THE trust score of a candidate, what conformal selection orders faces by: the calibrated
    probability of the proposed class, its odds times ``KEYWORD_ODDS`` where the filename keyword
    names that class. Only the order matters: the audits measure how right each part of it is."""
    return label_trust(ev, c.label)


def label_trust(ev: FaceEvidence, label: str) -> float:
    """The trust score of ``label`` for a face (see :func:`trust_score`), candidate or not."""
    p = min(max(float((ev.probs or {}).get(label, 0.0)), 0.0), 1.0)
    if ev.rule_state == "labeled" and ev.rule_label == label and p < 1.0:
        odds = KEYWORD_ODDS * p / (1.0 - p)
        p = odds / (1.0 + odds)
    return round(p, 6)


def route(ev: FaceEvidence, policy: RoutingPolicy = RoutingPolicy(),
          estimates: Optional[Mapping[str, BucketEstimate]] = None, selection: Optional[Selection] = None) -> Decision:
    """The decision for one face, given the current estimate of every bucket (``estimates``, method
    ``bucket``: a bucket missing from it is not estimated yet and never auto-accepts) or the current
    conformal selection (``selection``, the other methods: None or not ready accepts nothing)."""
    w = policy.weights
    src = f"{policy.source};model={ev.model or '-'}"
    unc = _uncertainty(ev.probs)
    words = ", ".join(ev.rule_words)

    def review(kind: str, reason: str, label: Optional[str] = None, est: Optional[BucketEstimate] = None,
               bucket: Optional[str] = None) -> Decision:
        return Decision(route="review", label=label, reason=reason, priority=round(w[kind] + unc, 4), source=src, kind=kind,
                        **_est_fields(bucket, est))

    if ev.probs is None:
        return review("low_confidence", "no model proposal")
    top, p, _ = _top(ev.probs)
    if ev.text_near:
        return review("quality", f"text on or beside the face (caption, watermark or figure): never auto-accepted; "
                      f"model says {top} ({p:.2f})", top)
    if ev.rule_state == "ambiguous":
        return review("ambiguous", f"ambiguous name: words of two classes ({words}); model says {top} ({p:.2f})", top)
    c = candidate(ev, policy)
    if c is not None and policy.method != "bucket":
        return _selected(ev, c, policy, selection, review, src)
    if c is not None:
        est = estimates.get(c.bucket) if estimates is not None else None
        t = policy.target_precision
        if est is not None and est.certifies(t) and ev.text_pending:
            return review(c.review_kind, f"{c.why}; bucket {c.bucket} certified at target {t:g}, {TEXT_PENDING}", c.label, est,
                          c.bucket)
        if est is not None and est.certifies(t):
            return Decision("auto", c.label, f"{c.why}; bucket {c.bucket} certified: {_said(est)} >= target {t:g}", 0.0, src,
                            c.auto_kind, **_est_fields(c.bucket, est))
        # no figures in a review reason: a new audit changes the estimate, not why the face waits
        return review(c.review_kind, f"{c.why}; bucket {c.bucket} not certified at target {t:g}", c.label, est, c.bucket)
    if ev.rejected:
        alt = next((lab for lab, _ in sorted(ev.probs.items(), key=lambda kv: -kv[1]) if lab not in ev.rejected), None)
        # the words and label a Verify grid gives a face it sends back (store.grid): a re-route keeps that decision
        return review("disagree", f"rejected as {', '.join(ev.rejected)}", alt)
    single = ev.n_faces == 1 or ev.whole_image
    bad = [f for f in ev.flags if f in policy.block_flags]
    if not single and ev.rule_state == "labeled":
        # the keyword names the photo, not a face: it is only a hint here
        return review("multi_face", f"multi-face image ({ev.n_faces} faces): keyword '{ev.rule_label}' not given to faces; model says {top} ({p:.2f})", top)
    if bad:
        return review("quality", f"quality: {', '.join(bad)}; model says {top} ({p:.2f})", top)
    if ev.rule_state == "labeled":
        lab = ev.rule_label or ""
        pr = float(ev.probs.get(lab, 0.0))
        if top == lab:
            return review("agree_low", f"rule ({words}) and model agree on {top} but the model is unsure ({p:.2f})", top)
        return review("disagree", f"rule says {lab} ({words}), model says {top} ({p:.2f}; {lab} {pr:.2f})", top)
    return review("low_confidence", f"no keyword; model unsure: {top} ({p:.2f})", top)


def _selected(ev: FaceEvidence, c: Candidate, policy: RoutingPolicy, sel: Optional[Selection], review, src: str) -> Decision:
    """A candidate under conformal selection: auto-accepted when its trust score reaches the
    selection's threshold for its class; its bucket is ``selection:<class>``."""
    bucket = f"selection:{c.label}"
    score = trust_score(ev, c)
    if sel is None or not sel.accepts(c.label, score):
        # no figures in a review reason: a new audit changes the threshold, not why the face waits
        why = "auto-accept not started (audits to answer)" if sel is None or not sel.ready else "below the selection's threshold"
        return review(c.review_kind, f"{c.why}; {why}", c.label, None, bucket)
    est = BucketEstimate(bucket, sel.accepted, sel.calibration, sel.calibration - sel.wrong, sel.estimate.precision,
                         sel.estimate.lower, sel.estimate.upper, "selection", sel.method)
    said = (f"selected: trust {score:.3f} >= {sel.threshold_for(c.label):.3f} ({sel.method}, {sel.calibration} audits, "
            f"false discovery rate <= {sel.q:.3g})")
    if ev.text_pending:
        return review(c.review_kind, f"{c.why}; {said}, {TEXT_PENDING}", c.label, est, bucket)
    return Decision("auto", c.label, f"{c.why}; {said}", 0.0, src, c.auto_kind, **_est_fields(bucket, est))


#: the end of a review reason of a face held back only by its text check (labeler.cleanup.check_text)
TEXT_PENDING = "text not looked for yet: looked for before auto-accept"


def _said(est: BucketEstimate) -> str:
    """The estimate in words, for the decision's reason."""
    if est.source == "audit":
        return f"lower bound {est.lower:.3f} ({est.agreeing}/{est.audited} audits agree)"
    return f"lower bound {est.lower:.3f} (prior, no audit)"


def _est_fields(bucket: Optional[str], est: Optional[BucketEstimate]) -> dict:
    if est is None:
        return {"bucket": bucket}
    return {"bucket": bucket, "precision": None if est.precision is None else round(est.precision, 4),
            "lower": round(est.lower, 4), "upper": round(est.upper, 4)}
