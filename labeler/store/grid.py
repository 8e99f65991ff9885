"""Queries of the fast review screens: verify-by-grid pages, the still-pending check of a prefetched
queue, and the next photo with faces to review (its faces in reading order: labeler.active.reading_order).

Verify by grid: a page shows faces proposed as one class (from the review queue or an auto-accept
decision); the annotator marks only the wrong ones. Settling the page appends, per face, one
annotation with the page's source ``grid:<key>``: ``verify`` with the class for an unmarked face (a
human label, counted by ``records.current_annotations``), ``reject`` with the class for a marked one
(who rejected what; not a label), plus a new review decision for the marked face, "rejected as
<class>", proposing the model's next likeliest class. Undo of a page appends ``undo`` rows for its
annotations and, for each rejected face, a copy of the decision it had before. Nothing is updated
in place.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from sqlalchemy import func, select

from labeler.flow import capped
from labeler.store.engine import Store, chunks
from labeler.store.schema import Annotation, DecisionRow, Face, Proposal
from labeler.types import LABELS

#: where a grid page's faces come from: the review queue, or auto-accepted decisions
GRID_SOURCES = ("review", "auto")
#: the annotation actions of a grid page (``verify`` is a human label, ``reject`` is not)
GRID_ACTIONS = ("verify", "reject")
#: review priority of a face rejected on a grid (above every routing weight: settle it next)
REJECTED_PRIORITY = 4.0
_HUMAN = ("label", "unusable", "verify")


class GridError(ValueError):
    """A grid call the store refuses (unknown class or source, no annotator)."""


@dataclass(frozen=True)
class GridClass:
    """One class a grid can verify: how many faces wait with that proposal."""

    label: str
    faces: int


@dataclass(frozen=True)
class GridFace:
    """One tile of a grid page."""

    face_id: int
    image_id: int
    crop: Optional[bytes]
    prob: Optional[float]  # the model's probability of the page's class (None: no model proposal)


@dataclass(frozen=True)
class GridResult:
    """What settling (or undoing) one grid page wrote."""

    key: str  # the page: annotations carry source "grid:<key>"
    label: str
    verified: tuple[int, ...]
    rejected: tuple[int, ...]


def _check(label: str, source: str) -> None:
    if label not in LABELS:
        raise GridError(f"grid class: expected one of {', '.join(LABELS)}, found {label!r}.")
    if source not in GRID_SOURCES:
        raise GridError(f"grid source: expected one of {', '.join(GRID_SOURCES)}, found {source!r}.")


def _undone():
    return select(Annotation.undoes_id).where(Annotation.action == "undo", Annotation.undoes_id.is_not(None))


def _newest():
    return select(func.max(DecisionRow.id).label("id")).where(DecisionRow.face_id.is_not(None)).group_by(DecisionRow.face_id).subquery()


def _waiting(source: str, annotator: Optional[str]):
    """Newest decisions of route ``source`` on faces nobody labeled (and, for the review queue, the
    annotator did not skip)."""
    newest = _newest()
    labeled = select(Annotation.face_id).where(Annotation.action.in_(_HUMAN), Annotation.id.not_in(_undone()))
    q = (select(DecisionRow.face_id, DecisionRow.image_id, DecisionRow.label)
         .join(newest, DecisionRow.id == newest.c.id)
         .where(DecisionRow.route == source, DecisionRow.face_id.not_in(labeled)))
    if annotator and source == "review":
        skipped = select(Annotation.face_id).where(Annotation.action == "skip", Annotation.annotator == annotator,
                                                   Annotation.id.not_in(_undone()))
        q = q.where(DecisionRow.face_id.not_in(skipped))
    return q


def grid_classes(store: Store, source: str = "review", annotator: Optional[str] = None) -> list[GridClass]:
    """The classes faces of ``source`` are proposed as (decision label), with how many wait, in
    LABELS order; classes with no face are left out."""
    _check(LABELS[0], source)
    sub = _waiting(source, annotator).subquery()
    with store.session() as s:
        got = dict(s.execute(select(sub.c.label, func.count()).where(sub.c.label.is_not(None)).group_by(sub.c.label)).all())
    return [GridClass(lab, got[lab]) for lab in LABELS if got.get(lab)]


def grid_page(store: Store, label: str, source: str = "review", annotator: Optional[str] = None, n: int = 48,
              exclude: Iterable[int] = (), min_prob: Optional[float] = None) -> list[GridFace]:
    """The next ``n`` faces proposed as ``label`` (newest decision of route ``source``, no human
    label yet), most confident first (the newest model proposal: faces whose top class is ``label``
    by its probability, then the others), a photo's faces together at equal confidence. ``min_prob``:
    only faces whose model gives ``label`` at least this (the review flow sends the rest to cards,
    ``labeler.flow``)."""
    _check(label, source)
    q = _waiting(source, annotator).where(DecisionRow.label == label)
    ex = list(exclude)
    if ex:
        q = q.where(DecisionRow.face_id.not_in(ex))
    sub = q.subquery()
    newest = (select(func.max(Proposal.id).label("id")).where(Proposal.source_kind == "model")
              .group_by(Proposal.face_id).subquery())
    prop = (select(Proposal.face_id, Proposal.label, Proposal.prob).join(newest, Proposal.id == newest.c.id)).subquery()
    stmt = (select(Face.id, Face.image_id, Face.crop).join(sub, Face.id == sub.c.face_id)
            .outerjoin(prop, prop.c.face_id == Face.id))
    if min_prob is not None:
        stmt = stmt.where(prop.c.label == label, prop.c.prob >= float(min_prob))
    stmt = stmt.order_by((prop.c.label == label).desc(), prop.c.prob.desc(), Face.image_id, Face.idx)
    with store.session() as s:
        rows = s.execute(stmt.limit(max(0, int(n)))).all()
        probs = _model_probs(s, [r[0] for r in rows])
    return [GridFace(fid, iid, crop, (probs.get(fid) or {}).get(label)) for fid, iid, crop in rows]


def _model_probs(s, face_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """face_id -> the newest model proposal's class probabilities."""
    out: dict[int, dict[str, float]] = {}
    for ids in chunks(face_ids):
        newest = (select(func.max(Proposal.id)).where(Proposal.face_id.in_(ids), Proposal.source_kind == "model")
                  .group_by(Proposal.face_id))
        for fid, probs in s.execute(select(Proposal.face_id, Proposal.probs).where(Proposal.id.in_(newest))):
            out[fid] = dict(probs or {})
    return out


def _next_class(probs: dict[str, float], rejected: str) -> Optional[str]:
    rest = [(p, lab) for lab, p in probs.items() if lab != rejected and lab in LABELS]
    return max(rest)[1] if rest else None


def settle_grid(store: Store, annotator: str, label: str, face_ids: Sequence[int], marked: Iterable[int],
                seconds: Optional[float] = None) -> GridResult:
    """Settle one grid page: every face of ``face_ids`` not in ``marked`` is verified as ``label``
    (a human label by ``annotator``); every marked face goes back to single review, "rejected as
    <label>". One transaction. ``seconds``: the page's wall time (shown to Enter), shared by its faces
    (effort ``grid_face``, ``grid_mark`` for a marked one), each share capped (``labeler.flow.capped``)."""
    name = (annotator or "").strip() if isinstance(annotator, str) else ""
    if not name:
        raise GridError(f"annotator: expected a non-blank name, found {annotator!r}; every human action is recorded with who did it.")
    _check(label, "review")
    ids = list(dict.fromkeys(int(f) for f in face_ids))
    bad = set(int(m) for m in marked)
    if bad - set(ids):
        raise GridError(f"marked faces {sorted(bad - set(ids))} are not on the page {ids[:5]}...; mark only faces shown.")
    key = uuid.uuid4().hex[:12]
    src = f"grid:{key}"
    share = capped(seconds) / len(ids) if seconds is not None and ids else None  # the page's time, capped, shared
    with store.session() as s:
        s.add_all([Annotation(face_id=f, annotator=name, action="reject" if f in bad else "verify", labels=[label], source=src,
                              seconds=share, effort="grid_mark" if f in bad else "grid_face") for f in ids])
        if bad:
            probs = _model_probs(s, sorted(bad))
            prev = _decisions(s, sorted(bad))
            for f in sorted(bad):
                d = prev.get(f)
                image_id = d.image_id if d else s.scalar(select(Face.image_id).where(Face.id == f))
                s.add(DecisionRow(image_id=image_id, face_id=f, route="review", kind="disagree",
                                  label=_next_class(probs.get(f, {}), label), reason=f"rejected as {label}",
                                  priority=REJECTED_PRIORITY, source=src))
    return GridResult(key, label, tuple(f for f in ids if f not in bad), tuple(f for f in ids if f in bad))


def _decisions(s, face_ids: Sequence[int], before: Optional[int] = None) -> dict[int, DecisionRow]:
    """face_id -> the newest decision (with id < ``before`` when given)."""
    out: dict[int, DecisionRow] = {}
    for ids in chunks(face_ids):
        q = select(func.max(DecisionRow.id)).where(DecisionRow.face_id.in_(ids))
        if before is not None:
            q = q.where(DecisionRow.id < before)
        for d in s.scalars(select(DecisionRow).where(DecisionRow.id.in_(q.group_by(DecisionRow.face_id)))):
            out[d.face_id] = d
    return out


def undo_grid(store: Store, annotator: str) -> Optional[GridResult]:
    """Undo ``annotator``'s newest grid page that is not undone yet: an ``undo`` row for each of its
    annotations, and the decision each rejected face had before. None when there is none."""
    with store.session() as s:
        last = s.scalar(select(Annotation).where(
            Annotation.annotator == annotator, Annotation.action.in_(GRID_ACTIONS), Annotation.source.like("grid:%"),
            Annotation.id.not_in(_undone())).order_by(Annotation.id.desc()).limit(1))
        if last is None:
            return None
        src = last.source
        rows = s.scalars(select(Annotation).where(Annotation.source == src, Annotation.annotator == annotator,
                                                  Annotation.action.in_(GRID_ACTIONS), Annotation.id.not_in(_undone()))
                         .order_by(Annotation.id)).all()
        s.add_all([Annotation(face_id=a.face_id, annotator=annotator, action="undo", undoes_id=a.id, source=src) for a in rows])
        rejected = [a.face_id for a in rows if a.action == "reject"]
        mine = {d.face_id: d for d in s.scalars(select(DecisionRow).where(DecisionRow.source == src))}
        before = _decisions(s, rejected, before=min((d.id for d in mine.values()), default=None)) if mine else {}
        for f in rejected:
            d = before.get(f)
            if d is not None:
                s.add(DecisionRow(image_id=d.image_id, face_id=f, route=d.route, kind=d.kind, label=d.label, reason=d.reason,
                                  priority=d.priority, source=f"undo {src}", bucket=d.bucket, est_precision=d.est_precision,
                                  est_lower=d.est_lower, est_upper=d.est_upper))
        label = (rows[0].labels or [""])[0]
    return GridResult(src.split(":", 1)[1], label, tuple(a.face_id for a in rows if a.action == "verify"), tuple(rejected))


def still_pending(store: Store, face_ids: Sequence[int], annotator: Optional[str] = None,
                  any_route: bool = False) -> list[int]:
    """Those of ``face_ids`` (in their order) that still wait for review: newest decision route
    ``review`` (any route with ``any_route``: audit samples), no current human label, not skipped by
    ``annotator``. Indexed look-ups of these faces only (no scan): the check of a prefetched queue
    before its head is shown."""
    ids = list(dict.fromkeys(face_ids))
    if not ids:
        return []
    with store.session() as s:
        dec = _decisions(s, ids)
        rows = s.execute(select(Annotation.id, Annotation.face_id, Annotation.action, Annotation.annotator, Annotation.undoes_id)
                         .where(Annotation.face_id.in_(ids))).all()
    undone = {u for _i, _f, act, _a, u in rows if act == "undo" and u}
    done = {f for i, f, act, who, _u in rows if i not in undone
            and (act in _HUMAN or (act == "skip" and annotator and who == annotator))}
    return [f for f in ids if f not in done and f in dec and (any_route or dec[f].route == "review")]


def next_pending_image(store: Store, annotator: Optional[str] = None, after: Optional[int] = None) -> Optional[int]:
    """The photo of the first face in the review queue (after image ``after`` when given, wrapping)."""
    q = _waiting("review", annotator).subquery()
    with store.session() as s:
        if after is not None:
            got = s.scalar(select(func.min(q.c.image_id)).where(q.c.image_id > after))
            if got is not None:
                return got
        return s.scalar(select(func.min(q.c.image_id)))
