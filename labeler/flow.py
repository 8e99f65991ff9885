"""The review flow, priced in human seconds (pure: no I/O).

A person's time goes where it buys the most labels per second:

1. **audits** first: the blind sample conformal auto-accept is calibrated on (``labeler.selection``);
   every face it lets the tool accept costs nobody anything;
2. **grid pages** of faces whose proposal is likely right: one class a page, most confident first;
   a right face costs a glance, only the wrong ones are marked (and come back as cards);
3. **cards** for the faces the model cannot settle, most useful first (``labeler.active``);
4. **second opinions** where a face needs more annotators (none by default).

Which faces go to a grid is decided by :class:`TimeModel`: a face goes to a grid when its expected
seconds there (a glance, plus, if wrong, a mark and a card later) are fewer than on a card (Enter on
a right proposal, a class key otherwise). With the default constants that is a calibrated
probability of about 0.7 or more.

The constants default to cited figures (issue 31): a card 2.5 s (choosing among classes takes
several seconds; Papadopoulos et al. 2016 measured ~1.6 s for a yes/no verification against several
seconds for drawing or choosing), Enter on a right proposal 1.2 s, a grid 0.4 s a face seen + 1.5 s
a face marked + 1 s a page (rapid serial verification reaches ~0.1 s an image with redundancy,
Krishna et al. 2016; 0.4 s leaves room for a careful look), an audit 2.5 s (a card without the
proposal). :meth:`TimeModel.measured` replaces them with a project's own medians where it has them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Sequence

#: faces on a grid page (the Verify page's default)
PAGE = 48
#: a decision's wall time is capped here: a longer gap is a person away, not a person working
IDLE_CAP_S = 60.0
#: the kinds of human decision whose time is recorded (``annotations.effort``)
EFFORTS = ("card", "card_accept", "audit", "grid_face", "grid_mark")


def capped(seconds) -> "float | None":
    """THE time bookkeeping rule: a decision's seconds, at least 0, at most IDLE_CAP_S (None stays None)."""
    if seconds is None:
        return None
    s = float(seconds)
    if s != s:  # NaN
        return None
    return min(max(s, 0.0), IDLE_CAP_S)


@dataclass(frozen=True)
class TimeModel:
    """Seconds of human time per action."""

    card: float = 2.5  # a card answered with a class key (the proposal was wrong, or not trusted)
    card_accept: float = 1.2  # Enter on a card whose proposal is right
    audit: float = 2.5  # a blind audit card (no proposal to accept)
    grid_seen: float = 0.4  # per face looked at on a grid page
    grid_mark: float = 1.5  # per face marked wrong on a grid page
    grid_page: float = 1.0  # per grid page (load, Enter)

    def card_seconds(self, p_right: float) -> float:
        """Expected seconds of one face on a card whose proposal is right with probability ``p_right``."""
        return p_right * self.card_accept + (1 - p_right) * self.card

    def grid_seconds(self, p_right: float, page: int = PAGE) -> float:
        """Expected seconds of one face sent to a grid: a glance, and if wrong a mark and a card."""
        return self.grid_seen + self.grid_page / max(page, 1) + (1 - p_right) * (self.grid_mark + self.card_seconds(0.3))

    def grid_pays(self, p_right: float, page: int = PAGE) -> bool:
        return self.grid_seconds(p_right, page) < self.card_seconds(p_right)

    def grid_threshold(self, page: int = PAGE) -> float:
        """The lowest probability at which a grid costs less than a card (bisection: both are linear)."""
        lo, hi = 0.0, 1.0
        if not self.grid_pays(1.0, page):
            return math.inf
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if self.grid_pays(mid, page) else (mid, hi)
        return round(hi, 4)

    @classmethod
    def measured(cls, medians: Mapping[str, float], base: Optional["TimeModel"] = None) -> "TimeModel":
        """The defaults with a project's measured medians put in where present (keys: the fields)."""
        base = base or cls()
        known = {k: float(v) for k, v in medians.items() if k in cls.__dataclass_fields__ and v and v > 0}
        return replace(base, **known)


def audit_pays(scores: Sequence[float], n: int, q: float, tm: TimeModel = TimeModel()) -> bool:
    """Whether ``n`` blind audits are worth their seconds: each costs an audit card where a review
    card (or a grid glance) would have done, and pays back the review of every face the selection is
    then expected to accept (``labeler.selection.expected_selected``, from the scores alone)."""
    from labeler.selection import expected_selected

    if not scores or n < 1:
        return False
    mean = sum(scores) / len(scores)
    review = min(tm.card_seconds(mean), tm.grid_seconds(mean))
    extra = n * max(tm.audit - review, 0.0)
    top = sorted(scores, reverse=True)
    k = int(round(expected_selected(scores, n, q)))
    saved = sum(min(tm.card_seconds(p), tm.grid_seconds(p)) for p in top[:k])
    return saved > extra


@dataclass(frozen=True)
class Step:
    """One step of the flow: ``kind`` audit | grid | cards | second_opinion; for a grid its class and
    pages; ``faces`` and the expected ``seconds``."""

    kind: str
    faces: int
    seconds: float
    label: Optional[str] = None
    pages: int = 0

    def words(self) -> str:
        if self.kind == "audit":
            return f"{self.faces} audit cards"
        if self.kind == "grid":
            return f"{self.pages} grid page{'s' * (self.pages != 1)} of {self.label}"
        if self.kind == "second_opinion":
            return f"{self.faces} second opinions"
        return f"{self.faces} cards"


@dataclass(frozen=True)
class Waiting:
    """A face waiting for a person: its proposed class and the probability that it is right."""

    face_id: int
    label: Optional[str]
    p_right: float


def split_waiting(waiting: Sequence[Waiting], tm: TimeModel = TimeModel(), page: int = PAGE) -> tuple[dict[str, list[Waiting]], list[Waiting]]:
    """THE grid-or-card rule: class -> its faces for grid pages (most confident first), and the faces
    for cards."""
    t = tm.grid_threshold(page)
    grids: dict[str, list[Waiting]] = {}
    cards = []
    for w in waiting:
        if w.label is not None and w.p_right >= t:
            grids.setdefault(w.label, []).append(w)
        else:
            cards.append(w)
    for v in grids.values():
        v.sort(key=lambda w: (-w.p_right, w.face_id))
    return grids, cards


def plan(audits: int, waiting: Sequence[Waiting], tm: TimeModel = TimeModel(), second_opinions: int = 0,
         page: int = PAGE) -> list[Step]:
    """The steps in the order a person should take them, with their expected seconds."""
    steps = []
    if audits:
        steps.append(Step("audit", audits, audits * tm.audit))
    grids, cards = split_waiting(waiting, tm, page)
    for lab, ws in sorted(grids.items(), key=lambda kv: -len(kv[1])):
        steps.append(Step("grid", len(ws), sum(tm.grid_seconds(w.p_right, page) for w in ws), lab,
                          pages=math.ceil(len(ws) / page)))
    if cards:
        steps.append(Step("cards", len(cards), sum(tm.card_seconds(w.p_right) for w in cards)))
    if second_opinions:
        steps.append(Step("second_opinion", second_opinions, second_opinions * tm.card))
    return steps


def say(steps: Sequence[Step]) -> str:
    """"next: 100 audit cards, then 3 grid pages of happy, then 41 cards (about 9 min)"."""
    if not steps:
        return "nothing left to review"
    total = sum(s.seconds for s in steps)
    return f"next: {', then '.join(s.words() for s in steps)} (about {duration(total)})"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
