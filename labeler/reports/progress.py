"""Labeling progress in numbers: pure functions on ``labeler.store.stats.OverviewData`` (no I/O).

What the Overview page shows: how many faces have a label and how (auto / human), what is left,
the class distribution of the accepted labels, how often rule, model and people agree, and what
each annotator did.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional

from labeler.store.stats import ActionCount, FaceStatus, OverviewData
from labeler.types import LABELS

#: the three sources of a label that the overview compares, pairwise
SOURCES = ("rule", "model", "human")
PAIRS: tuple[tuple[str, str], ...] = (("rule", "model"), ("rule", "human"), ("model", "human"))


@dataclass(frozen=True)
class Progress:
    faces: int
    auto_accepted: int  # auto-routed, no human label (a human label overrides the auto one)
    reviewed: int  # a human label (the majority of the current annotations)
    remaining: int  # routed to review, no human label yet
    pending: int  # no decision yet (not routed)
    no_face_images: int
    broken_images: int
    tracked: int = 0  # faces of video frames, labeled per track (Tracks page), no human label

    @property
    def labeled(self) -> int:
        return self.auto_accepted + self.reviewed

    @property
    def fraction(self) -> float:
        return self.labeled / self.faces if self.faces else 0.0


@dataclass(frozen=True)
class Agreement:
    a: str  # one of SOURCES
    b: str
    rate: float  # share of the compared faces where both give the same label (0.0 when none)
    n: int  # faces where both give a label


def progress(data: OverviewData) -> Progress:
    faces = data.faces
    return Progress(
        faces=data.n_faces,
        auto_accepted=sum(1 for f in faces if f.route == "auto" and not f.human),
        reviewed=sum(1 for f in faces if f.human),
        remaining=sum(1 for f in faces if f.route == "review" and not f.human),
        pending=sum(1 for f in faces if f.route == "pending"),
        no_face_images=data.image_routes.get("no_face", 0),
        broken_images=data.image_routes.get("broken", 0),
        tracked=sum(1 for f in faces if f.route == "track" and not f.human),
    )


def class_distribution(faces: Iterable[FaceStatus]) -> dict[str, dict[str, int]]:
    """accepted label -> {"auto": n, "human": n}, classes in LABELS order, then "unusable"."""
    n = Counter((f.accepted, f.accepted_by) for f in faces if f.accepted)
    order = list(LABELS) + ["unusable"] + sorted({lab for lab, _by in n} - set(LABELS) - {"unusable"})
    return {lab: {"auto": n[(lab, "auto")], "human": n[(lab, "human")]} for lab in order
            if n[(lab, "auto")] or n[(lab, "human")]}


def _pairs(faces: Iterable[FaceStatus], a: str, b: str) -> list[tuple[str, str]]:
    if a not in SOURCES or b not in SOURCES:
        raise ValueError(f"agreement compares {', '.join(SOURCES)}; got {a!r} and {b!r}")
    got = ((getattr(f, a), getattr(f, b)) for f in faces)
    return [(x, y) for x, y in got if x is not None and y is not None]


def agreement(faces: Iterable[FaceStatus], pairs: Iterable[tuple[str, str]] = PAIRS) -> list[Agreement]:
    """For each pair of sources, how often they give the same label on the faces where both give one."""
    faces = list(faces)
    out = []
    for a, b in pairs:
        both = _pairs(faces, a, b)
        same = sum(1 for x, y in both if x == y)
        out.append(Agreement(a, b, same / len(both) if both else 0.0, len(both)))
    return out


def confusion(faces: Iterable[FaceStatus], a: str, b: str) -> dict[str, dict[str, int]]:
    """label of ``a`` -> label of ``b`` -> faces, over the faces where both give a label (rows and
    columns sorted; only labels that occur)."""
    n = Counter(_pairs(faces, a, b))
    rows = sorted({x for x, _y in n})
    cols = sorted({y for _x, y in n})
    return {x: {y: n[(x, y)] for y in cols} for x in rows}


def annotator_table(actions: Iterable[ActionCount], current: Optional[dict[str, int]] = None) -> dict[str, dict[str, int]]:
    """annotator -> action -> annotations (every action seen, 0 where none), plus "current labels":
    the faces the annotator's current annotation is on."""
    actions = list(actions)
    names = sorted({c.annotator for c in actions})
    kinds = sorted({c.action for c in actions})
    n = Counter()
    for c in actions:
        n[(c.annotator, c.action)] += c.n
    current = current or {}
    return {a: {**{k: n[(a, k)] for k in kinds}, "current labels": current.get(a, 0)} for a in names}
