"""The promotion gate: a new model becomes the project's default only on evidence (issue 32).

Every judgement is a paired comparison of the old and the new model on the same faces
(:mod:`labeler.training.stats`): which faces each gets right. A new model is promoted when

1. it is **significantly better on the project's held-out human labels**: McNemar's exact test,
   one-sided, p < :data:`ALPHA` (5%) (the old model: the project's default; the new one: out-of-fold
   answers, see :mod:`labeler.training.retrain`);
2. **no class there is significantly worse beyond the margin**: per class, the one-sided
   :data:`CONFIDENCE` (95%) upper bound of the paired change of recall is not below -:data:`MARGIN`
   (2 points): a test at 5% of "this class lost more than 2 points";
3. on the **base model's own domain** (old: the base model; see :mod:`labeler.training.basedomain`)
   the whole set is not significantly worse beyond the same margin, and no class is on the faces
   *unlike the project's* (convention vs forgetting): a head may teach the project's convention on
   faces like the project's (its :class:`~labeler.training.likeness.Likeness` says p >= 0.5; a
   FER2013 face of mild sadness looking like the project's web photos may become "sad" where FER+
   says "neutral"), and those faces are reported, not judged per class; elsewhere the base must
   hold. A head may count at most :data:`CLAIM_MAX` of the base domain's faces as like the
   project's (else it is refused: its likeness does not tell the domains apart).

So two faces of 100 lost is not a loss (the bound reaches above -2 points) and ten of 100 is. What
is guaranteed: a class whose true recall did not fall by more than the margin is refused with
probability about 5% or less per check (the interval is approximate; its coverage is checked over
many random draws in tests/test_gate_stats.py). Not guaranteed: that a class losing a little more
than the margin is caught when it has few faces (the bound is then wide). Pure functions on
:class:`Outcomes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from labeler.training.stats import PairedChange, paired_change

#: level of the held-out improvement test (McNemar exact, one-sided)
ALPHA = 0.05
#: the non-inferiority margin (fraction): a change is a loss only if significantly below -MARGIN
MARGIN = 0.02
#: one-sided confidence of the bounds of a change
CONFIDENCE = 0.95
#: the base's top probability above which its answer stands in for a label (the offline check
#: used when there are no base-domain features for the model)
SURE = 0.6
#: the largest share of the base domain's faces a head may count as like the project's
CLAIM_MAX = 0.2

RULE = (f"promoted when held-out accuracy is significantly better (McNemar exact, one-sided p < {ALPHA}) and nothing "
        f"is significantly worse beyond {100 * MARGIN:.0f} points (one-sided {100 * CONFIDENCE:.0f}% upper bound of the paired "
        f"change below -{100 * MARGIN:.0f} points): no class on held-out, not the base's domain as a whole, no class of it on "
        f"the faces unlike the project's (the head counting at most {100 * CLAIM_MAX:.0f}% of them as like the project's)")


@dataclass(frozen=True)
class Outcomes:
    """Which of the same faces the old and the new model get right, with each face's class."""

    name: str  # what is judged: "held-out human labels", "the base's domain"
    what: str  # which faces, one line
    old_ok: np.ndarray
    new_ok: np.ndarray
    y: np.ndarray
    labels: tuple[str, ...]
    old: str = "old"  # which model gave old_ok
    like: Optional[np.ndarray] = None  # faces the head counts as like the project's (base domain only)

    def subset(self, mask: np.ndarray, what: str) -> "Outcomes":
        return Outcomes(self.name, what, self.old_ok[mask], self.new_ok[mask], self.y[mask], self.labels, self.old)

    def overall(self, confidence: float = CONFIDENCE) -> PairedChange:
        return paired_change(self.old_ok, self.new_ok, confidence)

    def per_class(self, confidence: float = CONFIDENCE) -> dict[str, PairedChange]:
        return {self.labels[c]: paired_change(self.old_ok[self.y == c], self.new_ok[self.y == c], confidence)
                for c in range(len(self.labels)) if (self.y == c).any()}


@dataclass(frozen=True)
class Check:
    check: str
    passed: bool
    detail: str
    stats: dict[str, Any] = field(default_factory=dict)  # "all" or class -> PairedChange.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "passed": self.passed, "detail": self.detail, "stats": self.stats}


@dataclass(frozen=True)
class GateResult:
    promoted: bool
    reason: str  # one line: why (not)
    checks: tuple[Check, ...] = ()
    rule: str = RULE

    def as_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "reason": self.reason, "rule": self.rule, "alpha": ALPHA, "margin": MARGIN,
                "confidence": CONFIDENCE, "claim_max": CLAIM_MAX, "checks": [c.as_dict() for c in self.checks]}


def _class_check(name: str, o: Outcomes, margin: float, confidence: float) -> Check:
    pcs = o.per_class(confidence)
    bad = [f"{c} {ch.text()}" for c, ch in pcs.items() if ch.worse_beyond(margin)]
    if bad:
        detail = "; ".join(bad)
    elif pcs:
        c, ch = min(pcs.items(), key=lambda kv: kv[1].upper)
        detail = f"every class within the margin; the nearest, {c}: {ch.text()}"
    else:
        detail = "no faces"
    return Check(name, not bad, detail, {c: ch.as_dict() for c, ch in pcs.items()})


def gate(held: Outcomes, domains: Sequence[Outcomes] = (), force: bool = False, not_measured: Optional[str] = None,
         alpha: float = ALPHA, margin: float = MARGIN, confidence: float = CONFIDENCE, claim_max: float = CLAIM_MAX) -> GateResult:
    """The promotion decision from paired outcomes on the held-out human labels and on each set of
    the base's domain (``not_measured``: why there is none)."""
    h = held.overall(confidence)
    checks = [Check("better on held-out human labels", h.better(alpha),
                    f"{h.text()} ({held.what}; needs McNemar p better < {alpha:g})", {"all": h.as_dict()}),
              _class_check("no class significantly worse on held-out", held, margin, confidence)]
    for d in domains:
        o = d.overall(confidence)
        checks.append(Check(f"not significantly worse on {d.name}", not o.worse_beyond(margin), f"{o.text()} ({d.what})",
                            {"all": o.as_dict()}))
        if d.like is None:
            checks.append(_class_check(f"no class significantly worse on {d.name}", d, margin, confidence))
            continue
        like = np.asarray(d.like, dtype=bool)
        n_like = int(like.sum())
        unlike = d.subset(~like, f"{len(like) - n_like} faces unlike the project's")
        checks.append(_class_check(f"no class significantly worse on {d.name}, faces unlike the project's", unlike, margin, confidence))
        liked = d.subset(like, f"{n_like} faces like the project's")
        moved = "; ".join(f"{c} {ch.text()}" for c, ch in liked.per_class(confidence).items() if ch.gains or ch.losses)
        checks.append(Check(f"at most {100 * claim_max:.0f}% of {d.name} counted as like the project's", n_like <= claim_max * len(like),
                            f"{n_like} of {len(like)} ({100 * n_like / max(len(like), 1):.1f}%); there the project's convention may "
                            f"apply, not judged per class: {moved or 'no answer changed'}",
                            {c: ch.as_dict() for c, ch in liked.per_class(confidence).items()}))
    if not domains:
        checks.append(Check("not worse on the base's domain", True, f"not measured: {not_measured or 'no set'}"))
    failed = [c for c in checks if not c.passed]
    if force:
        return GateResult(True, "forced" + (f" (would have failed: {failed[0].check}: {failed[0].detail})" if failed else ""),
                          tuple(checks))
    if failed:
        return GateResult(False, f"{failed[0].check}: failed ({failed[0].detail}); the default model is unchanged", tuple(checks))
    return GateResult(True, f"significantly better on held-out (McNemar p {h.p_better:.2g}, +{h.gains}/-{h.losses} faces) "
                            f"and nothing significantly worse beyond {100 * margin:.0f} points", tuple(checks))
