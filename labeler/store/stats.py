"""Queries for the progress overview (the UI's Overview page): one typed snapshot of where every
face stands. The arithmetic on it (progress, distributions, agreement) is ``labeler.reports.progress``."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Mapping, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labeler.store.engine import Store, chunks, latest_ids
from labeler.store.records import accepted_label, current_annotations, vote
from labeler.store.schema import Annotation, DecisionRow, Face, Image, ImagePath, Proposal


@dataclass(frozen=True)
class FaceStatus:
    """Where one face stands: the newest rule and model proposals, the human majority, the newest
    decision and the accepted label (``labeler.store.accepted_label``)."""

    face_id: int
    rule: Optional[str]  # label of the newest rule proposal (None: no keyword / ambiguous / none)
    model: Optional[str]  # label of the newest model proposal
    human: Optional[str]  # human majority ("unusable" included); None: nobody labeled it
    route: str  # newest decision: auto | review | ...; "pending" when none yet
    decision: Optional[str]  # the decision's label
    accepted: Optional[str]
    accepted_by: str  # human | auto | ""


@dataclass(frozen=True)
class ActionCount:
    """How many annotations of one action one annotator wrote (undone ones and undos included)."""

    annotator: str
    action: str
    n: int


@dataclass(frozen=True)
class OverviewData:
    """Everything the overview shows, as of one read."""

    n_faces: int
    n_images: int
    faces: tuple[FaceStatus, ...]  # by face id
    image_routes: Mapping[str, int]  # route of the newest image-level decision (no_face, broken) -> images
    actions: tuple[ActionCount, ...]  # by annotator, action
    current_labels: Mapping[str, int]  # annotator -> faces their current (not undone) annotation is on


def _proposal_labels(s: Session, kind: str) -> dict[int, Optional[str]]:
    """face_id -> label of the newest proposal of ``kind`` (rule | model)."""
    newest = latest_ids(s, Proposal, None, where=Proposal.source_kind == kind)
    label: dict[int, Optional[str]] = {}
    for ids in chunks(newest.values()):
        label.update(dict(s.execute(select(Proposal.id, Proposal.label).where(Proposal.id.in_(ids))).all()))
    return {fid: label.get(pid) for fid, pid in newest.items()}


def _face_decisions(s: Session) -> dict[int, tuple[str, Optional[str]]]:
    """face_id -> (route, label) of its newest decision."""
    newest = latest_ids(s, DecisionRow)
    out: dict[int, tuple[str, Optional[str]]] = {}
    for ids in chunks(newest.values()):
        q = select(DecisionRow.face_id, DecisionRow.route, DecisionRow.label).where(DecisionRow.id.in_(ids))
        out.update({fid: (route, lab) for fid, route, lab in s.execute(q)})
    return out


def _image_routes(s: Session) -> dict[str, int]:
    newest = select(func.max(DecisionRow.id).label("id")).where(DecisionRow.face_id.is_(None)).group_by(DecisionRow.image_id).subquery()
    q = select(DecisionRow.route, func.count()).join(newest, DecisionRow.id == newest.c.id).group_by(DecisionRow.route)
    return dict(s.execute(q).all())


def _actions(s: Session) -> tuple[ActionCount, ...]:
    q = (select(Annotation.annotator, Annotation.action, func.count()).group_by(Annotation.annotator, Annotation.action)
         .order_by(Annotation.annotator, Annotation.action))
    return tuple(ActionCount(a, act, n) for a, act, n in s.execute(q))


def overview_stats(store: Store) -> OverviewData:
    """Where every face stands, image-level routes and per-annotator counts, in one read."""
    with store.session() as s:
        n_images = s.scalar(select(func.count(Image.id))) or 0
        dec = _face_decisions(s)
        anns = current_annotations(s)
        rule, model = _proposal_labels(s, "rule"), _proposal_labels(s, "model")
        img_routes = _image_routes(s)
        actions = _actions(s)
        face_ids = list(s.scalars(select(Face.id).order_by(Face.id)))
    human = {fid: vote(a)[0] for fid, a in anns.items()}
    current: dict[str, int] = {}
    for a in anns.values():
        for name in a:
            current[name] = current.get(name, 0) + 1
    faces = []
    for fid in face_ids:
        route, dl = dec.get(fid, ("pending", None))
        acc, by = accepted_label(human.get(fid), route, dl)
        faces.append(FaceStatus(fid, rule.get(fid), model.get(fid), human.get(fid), route, dl, acc, by))
    return OverviewData(len(face_ids), n_images, tuple(faces), img_routes, actions, current)


@dataclass(frozen=True)
class EffortRow:
    """One annotator's timed decisions of one kind (``annotations.effort``): how many, how long."""

    annotator: str
    effort: str
    decisions: int
    seconds: float  # total
    median: float


def effort_rows(store: Store) -> list[EffortRow]:
    """Per annotator and kind of decision, the timed decisions (undone ones too: the time was spent)."""
    by: dict[tuple[str, str], list[float]] = {}
    with store.session() as s:
        for who, kind, sec in s.execute(select(Annotation.annotator, Annotation.effort, Annotation.seconds)
                                        .where(Annotation.seconds.is_not(None), Annotation.effort.is_not(None))):
            by.setdefault((who, kind), []).append(float(sec))
    return [EffortRow(who, kind, len(v), float(sum(v)), float(statistics.median(v))) for (who, kind), v in sorted(by.items())]


def status_counts(store: Store) -> dict[str, int]:
    """Counts by state for `labeler status`."""
    with store.session() as s:
        out: dict[str, int] = {}
        out["images"] = s.scalar(select(func.count(Image.id))) or 0
        out["paths"] = s.scalar(select(func.count(ImagePath.id))) or 0
        for st, n in s.execute(select(Image.status, func.count()).group_by(Image.status)):
            out[st] = n
        for st, n in s.execute(
            select(Image.rule_state, func.count()).where(Image.status == "ingested").group_by(Image.rule_state)
        ):
            out[f"rule_{st}"] = n
        out["detected_images"] = s.scalar(select(func.count(Image.id)).where(Image.detected.is_(True))) or 0
        out["faces"] = s.scalar(select(func.count(Face.id))) or 0
        # the newest decision per face (or per image without faces), then its route: portable SQL
        # (PostgreSQL refuses a bare column beside max() that SQLite would accept)
        latest = select(func.max(DecisionRow.id).label("mid")).group_by(DecisionRow.image_id, DecisionRow.face_id).subquery()
        q = select(DecisionRow.route, func.count()).join(latest, DecisionRow.id == latest.c.mid).group_by(DecisionRow.route)
        for route, n in s.execute(q):
            out[f"route_{route}"] = n
        labeled = set(current_annotations(s, None))
        out["human_labeled_faces"] = len(labeled)
        newest = latest_ids(s, DecisionRow, None)
        review: list[int] = []
        for ids in chunks(newest.values()):
            review += s.scalars(select(DecisionRow.face_id).where(DecisionRow.id.in_(ids), DecisionRow.route == "review")).all()
        out["review_remaining"] = sum(1 for f in review if f not in labeled)
        return out
