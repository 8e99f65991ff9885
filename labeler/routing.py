"""Routing: a pure function from the evidence for one face to a decision. No I/O.

Auto-accept only on agreeing evidence:
- a single face (or a whole-image face) whose filename rule and model top-1 agree with the model's
  calibrated probability >= ``agree_threshold``; or
- a model probability >= ``model_threshold`` (higher) with no conflicting rule (no keyword, or the
  keyword names the same class; for a multi-face image the keyword is never given to the faces).
Everything else goes to review with a reason and a priority (higher = review first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from labeler.types import Decision, FaceRecord, RuleWord


@dataclass(frozen=True)
class RoutingPolicy:
    # Defaults chosen on ../shared/data/dev (web_keyword + muxspace, `labeler eval`), with the shipped
    # model calibrated (T=1.778): the keyword alone is ~93% right, so the model acts as a veto (the
    # keyword's class must be among its two likeliest, at >= 0.10); alone, the model must be >= 0.99.
    agree_threshold: float = 0.10
    model_threshold: float = 0.99
    #: the rule's class must be among the model's top-k classes (1 = the model's top-1)
    agree_top_k: int = 2
    #: faces with any of these quality flags are never auto-accepted
    block_flags: tuple[str, ...] = ("small", "blurry", "profile", "low_score")
    #: review-order weights per review kind (labeler.types.REVIEW_KINDS)
    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "disagree": 3.0,  # rule and model disagree: one of them is wrong, a human settles it
            "ambiguous": 2.5,  # name with words of two classes
            "low_confidence": 2.0,
            "agree_low": 1.5,  # rule and model agree but the model is unsure
            "multi_face": 1.8,
            "quality": 0.5,  # blocked by a quality flag: least useful first
        }
    )

    @property
    def source(self) -> str:
        k = f",top{self.agree_top_k}" if self.agree_top_k != 1 else ""
        return f"policy(agree>={self.agree_threshold:g}{k},model>={self.model_threshold:g})"


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


def evidence(
    n_faces: int,
    rule_state: str,
    rule_label: Optional[str],
    rule_words: Iterable[RuleWord],
    probs: Optional[Mapping[str, float]],
    model: str,
    flags: Iterable[str],
    whole_image: bool,
) -> FaceEvidence:
    """THE evidence builder: what route() sees of one face (negated rule words left out)."""
    return FaceEvidence(
        n_faces=n_faces, rule_state=rule_state, rule_label=rule_label,
        rule_words=tuple(w.word for w in rule_words if not w.negated), probs=probs, model=model,
        flags=tuple(flags), whole_image=bool(whole_image),
    )


def evidence_for(rec: FaceRecord, n_faces: int) -> FaceEvidence:
    """The evidence of a stored face (its newest model proposal), for re-routing and evaluation."""
    return evidence(n_faces, rec.rule_state, rec.rule_label, rec.rule_words, rec.model_probs, rec.model_source,
                    rec.flags, rec.whole_image)


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


def route(ev: FaceEvidence, policy: RoutingPolicy = RoutingPolicy()) -> Decision:
    w = policy.weights
    src = f"{policy.source};model={ev.model or '-'}"
    unc = _uncertainty(ev.probs)
    words = ", ".join(ev.rule_words)

    def review(kind: str, reason: str, label: Optional[str] = None) -> Decision:
        return Decision(route="review", label=label, reason=reason, priority=round(w[kind] + unc, 4), source=src, kind=kind)

    if ev.probs is None:
        return review("low_confidence", "no model proposal")
    top, p, _ = _top(ev.probs)
    single = ev.n_faces == 1 or ev.whole_image
    bad = [f for f in ev.flags if f in policy.block_flags]

    if ev.rule_state == "ambiguous":
        return review("ambiguous", f"ambiguous name: words of two classes ({words}); model says {top} ({p:.2f})", top)
    if not single and ev.rule_state == "labeled":
        # the keyword names the photo, not a face: it is only a hint here
        if p >= policy.model_threshold and top == ev.rule_label and not bad:
            return Decision("auto", top, f"multi-face image: model {top} ({p:.2f}) >= {policy.model_threshold:g}, name says {ev.rule_label}", 0.0, src, "multi_face_agree")
        return review("multi_face", f"multi-face image ({ev.n_faces} faces): keyword '{ev.rule_label}' not given to faces; model says {top} ({p:.2f})", top)
    if bad:
        return review("quality", f"quality: {', '.join(bad)}; model says {top} ({p:.2f})", top)
    if ev.rule_state == "labeled":
        lab = ev.rule_label or ""
        pr = float(ev.probs.get(lab, 0.0))
        rank = sum(1 for v in ev.probs.values() if v > pr)  # 0 = the model's top-1
        if rank < policy.agree_top_k and pr >= policy.agree_threshold:
            how = f"{lab} ({pr:.2f})" if rank == 0 else f"{lab} is the model's #{rank + 1} ({pr:.2f}; top {top} {p:.2f})"
            return Decision("auto", lab, f"rule ({words}) and model agree: {how}", 0.0, src, "agree")
        if rank == 0:
            return review("agree_low", f"rule ({words}) and model agree on {top} but the model is unsure ({p:.2f})", top)
        return review("disagree", f"rule says {lab} ({words}), model says {top} ({p:.2f}; {lab} {pr:.2f})", top)
    if p >= policy.model_threshold:
        return Decision("auto", top, f"model confident: {top} ({p:.2f}) >= {policy.model_threshold:g}, no keyword", 0.0, src, "model_confident")
    return review("low_confidence", f"no keyword; model unsure: {top} ({p:.2f})", top)
