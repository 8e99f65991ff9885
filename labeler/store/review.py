"""Queries of the review UI: the queue, one card, annotations and undo, the gallery, image views.

Reads fetch only what one screen shows (the next card: LIMIT; one gallery page); every human
action is its own append-only Annotation.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labeler.errors import LabelerError
from labeler.active import Coverage, QueueFace, queue_order
from labeler.flow import EFFORTS, capped
from labeler.store.engine import Store, chunks
from labeler.store.images import decode_flags, decode_rule_words
from labeler.store.records import accepted_label, current_annotations, vote
from labeler.store.schema import Annotation, DecisionRow, Face, Image, ImagePath, Proposal, VideoFrame
from labeler.types import LABELS, REVIEW_KINDS  # noqa: F401  (REVIEW_KINDS: the kinds the queue filters on)


def _newest_face_decisions():
    """Subquery: id of the newest decision of every face."""
    return (
        select(func.max(DecisionRow.id).label("id"))
        .where(DecisionRow.face_id.is_not(None))
        .group_by(DecisionRow.face_id)
        .subquery()
    )


def undone_ids():
    return select(Annotation.undoes_id).where(Annotation.action == "undo", Annotation.undoes_id.is_not(None))


def _labeled_face_ids():
    """Faces with a current (not undone) label/unusable annotation by anyone."""
    return select(Annotation.face_id).where(
        Annotation.action.in_(("label", "unusable", "verify")), Annotation.id.not_in(undone_ids())
    )


def _review_query(cols, annotator=None, reason_kinds=None, proposed=None, folder=None, include_skipped=False):
    newest = _newest_face_decisions()
    q = (
        select(*cols)
        .join(newest, DecisionRow.id == newest.c.id)
        .where(DecisionRow.route == "review", DecisionRow.face_id.not_in(_labeled_face_ids()))
    )
    if annotator and not include_skipped:
        skipped = select(Annotation.face_id).where(
            Annotation.action == "skip", Annotation.annotator == annotator, Annotation.id.not_in(undone_ids())
        )
        q = q.where(DecisionRow.face_id.not_in(skipped))
    if reason_kinds:
        q = q.where(DecisionRow.kind.in_(list(reason_kinds)))
    if proposed:
        q = q.where(DecisionRow.label.in_(list(proposed)))
    if folder:
        sep = "/" if "/" in folder else os.sep
        prefix = folder.rstrip("/\\") + sep
        q = q.where(DecisionRow.image_id.in_(select(ImagePath.image_id).where(ImagePath.path.startswith(prefix, autoescape=True))))
    return q


def review_queue(store: "Store", annotator: Optional[str] = None, limit: int = 1, reason_kinds=None, proposed=None,
                 folder=None, include_skipped: bool = False, exclude=()) -> list[int]:
    """Face ids of the next ``limit`` faces to review: newest decision route ``review``, no current
    human label (by anyone, at fetch time), not skipped by ``annotator``; in the active-learning
    order of :func:`labeler.active.queue_order` (most useful photo first, its faces together in
    reading order).
    Filters: decision kinds (labeler.types.REVIEW_KINDS), proposed classes (decision label), source
    folder (absolute path prefix)."""
    cols = [DecisionRow.face_id, DecisionRow.image_id, DecisionRow.priority, DecisionRow.label]
    q = _review_query(cols, annotator, reason_kinds, proposed, folder, include_skipped)
    if exclude:
        q = q.where(DecisionRow.face_id.not_in(list(exclude)))
    with store.session() as s:
        order = queue_order(*_queue_inputs(s, s.execute(q).all()))
    return order[:limit]


def _queue_inputs(s: Session, rows) -> tuple[list[QueueFace], Coverage]:
    """What :func:`labeler.active.queue_order` needs about the queued faces (box, model top
    probability, folder) and what the human labels cover (per class, per folder, started images)."""
    if not rows:
        return [], Coverage()
    fids = [r[0] for r in rows]
    boxes, tops = {}, {}
    newest = select(func.max(Proposal.id)).where(Proposal.source_kind == "model").group_by(Proposal.face_id)
    for part in chunks(fids):
        boxes.update({f: (x1, y1, x2, y2) for f, x1, y1, x2, y2 in
                      s.execute(select(Face.id, Face.x1, Face.y1, Face.x2, Face.y2).where(Face.id.in_(part)))})
        tops.update(dict(s.execute(select(Proposal.face_id, Proposal.prob).where(
            Proposal.face_id.in_(part), Proposal.id.in_(newest.where(Proposal.face_id.in_(part))))).all()))
    cur = current_annotations(s, None)
    human: dict[int, str] = {}
    for fid, anns in cur.items():
        lab = vote(anns)[0]
        if lab:
            human[fid] = lab
    img_of: dict[int, int] = {}
    for part in chunks(list(human)):
        img_of.update(dict(s.execute(select(Face.id, Face.image_id).where(Face.id.in_(part))).all()))
    iids = {r[1] for r in rows} | set(img_of.values())
    folder: dict[int, str] = {}
    for part in chunks(sorted(iids)):
        for iid, p in s.execute(select(ImagePath.image_id, ImagePath.path).where(ImagePath.image_id.in_(part)).order_by(ImagePath.id)):
            folder.setdefault(iid, os.path.dirname(p))
    per_class: dict[str, int] = {}
    per_folder: dict[str, int] = {}
    for fid, lab in human.items():
        per_class[lab] = per_class.get(lab, 0) + 1
        fo = folder.get(img_of.get(fid, -1), "")
        per_folder[fo] = per_folder.get(fo, 0) + 1
    faces = [QueueFace(fid, iid, tuple(float(v or 0.0) for v in boxes.get(fid, (0, 0, 0, 0))), float(pri or 0.0), tops.get(fid),
                       lab, folder.get(iid, "")) for fid, iid, pri, lab in rows]
    return faces, Coverage(per_class, per_folder, frozenset(img_of.values()))


def review_queue_count(store: "Store", annotator: Optional[str] = None, reason_kinds=None, proposed=None, folder=None,
                       include_skipped: bool = False) -> int:
    q = _review_query([DecisionRow.face_id], annotator, reason_kinds, proposed, folder, include_skipped)
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(q.subquery())) or 0


def in_review_queue(store: "Store", face_ids, annotator: Optional[str] = None, reason_kinds=None, proposed=None, folder=None,
                    include_skipped: bool = False) -> set[int]:
    """Those of ``face_ids`` that :func:`review_queue_count` counts (with the same filters)."""
    out: set[int] = set()
    with store.session() as s:
        for part in chunks(list(dict.fromkeys(face_ids))):
            q = _review_query([DecisionRow.face_id], annotator, reason_kinds, proposed, folder, include_skipped)
            out.update(s.scalars(q.where(DecisionRow.face_id.in_(part))))
    return out


def source_folders(store: "Store") -> list[tuple[str, int]]:
    """(folder, number of paths) for every folder that holds an ingested path (parent of the path)."""
    out: dict[str, int] = {}
    with store.session() as s:
        for (p,) in s.execute(select(ImagePath.path)):
            d = os.path.dirname(p)
            out[d] = out.get(d, 0) + 1
    return sorted(out.items())


def _face_state(s: Session, face_id: int) -> dict[str, Any]:
    def newest(model, *where):
        return s.scalar(select(model).where(model.face_id == face_id, *where).order_by(model.id.desc()).limit(1))

    mp = newest(Proposal, Proposal.source_kind == "model")
    rp = newest(Proposal, Proposal.source_kind == "rule")
    d = newest(DecisionRow)
    anns = current_annotations(s, [face_id]).get(face_id, {})
    human, votes = vote(anns) if anns else (None, {})
    return {
        "model_label": mp.label if mp else None, "model_prob": mp.prob if mp else None,
        "model_probs": dict(mp.probs) if mp and mp.probs else {}, "model_source": mp.source if mp else "",
        "rule_proposal": rp.label if rp else None, "rule_detail": rp.detail if rp else "",
        "route": d.route if d else "pending", "decision_label": d.label if d else None,
        "reason": d.reason if d else "", "reason_kind": d.kind if d and d.route == "review" else "",
        "priority": d.priority if d else 0.0, "decision_source": d.source if d else "",
        "human_label": human, "votes": votes,
        "annotations": {n: {"action": a.action, "labels": list(a.labels or []), "id": a.id,
                            "at": a.created_at.isoformat() if a.created_at else None} for n, a in sorted(anns.items())},
    }


def face_card(store: "Store", face_id: int) -> Optional[dict[str, Any]]:
    """Everything a review card shows for one face (crop bytes included)."""
    with store.session() as s:
        f = s.get(Face, face_id)
        if f is None:
            return None
        img = s.get(Image, f.image_id)
        paths = list(s.scalars(select(ImagePath.path).where(ImagePath.image_id == f.image_id).order_by(ImagePath.id)))
        boxes = [
            {"face_id": fid, "idx": idx, "box": (x1, y1, x2, y2)}
            for fid, idx, x1, y1, x2, y2 in s.execute(
                select(Face.id, Face.idx, Face.x1, Face.y1, Face.x2, Face.y2).where(Face.image_id == f.image_id).order_by(Face.idx)
            )
        ]
        out = {
            "face_id": f.id, "image_id": f.image_id, "idx": f.idx, "box": (f.x1, f.y1, f.x2, f.y2),
            "det_score": f.det_score, "whole_image": f.whole_image, "quality": dict(f.quality or {}),
            "flags": list(decode_flags(f.flags)), "crop": f.crop, "paths": paths,
            "width": img.width, "height": img.height, "rule_state": img.rule_state, "rule_label": img.rule_label,
            "rule_words": [list(w.as_pair()) for w in decode_rule_words(img.rule_words)], "n_faces": len(boxes), "faces": boxes,
        }
        out.update(_face_state(s, face_id))
        return out


#: the longest annotator name the store takes (after stripping)
MAX_ANNOTATOR = 100
ACTIONS = ("label", "unusable", "skip", "undo")


class AnnotationError(LabelerError, ValueError):
    """An annotation the store refuses: no annotator, an unknown label or action, another's undo."""


def clean_annotator(annotator: Any) -> str:
    """``annotator`` stripped; a missing, blank or over-long name is an :class:`AnnotationError`."""
    name = annotator.strip() if isinstance(annotator, str) else ""
    if not name:
        raise AnnotationError(f"annotator: expected a non-blank name, found {annotator!r}; every human action is recorded with who did it.")
    if len(name) > MAX_ANNOTATOR or not name.isprintable():
        raise AnnotationError(
            f"annotator: expected a printable name of at most {MAX_ANNOTATOR} characters, found {len(name)} "
            f"({name[:20]!r}...); use a shorter name."
        )
    return name


def _checked(action: Any, labels) -> Optional[list[str]]:
    """The labels to store for ``action`` (1 or 2 distinct classes of LABELS for ``label``, None else)."""
    if action not in ACTIONS:
        raise AnnotationError(f"action: expected one of {', '.join(ACTIONS)}, found {action!r}.")
    if action != "label":
        if labels:
            raise AnnotationError(f"action {action!r}: expected no labels, found {list(labels)!r}.")
        return None
    if isinstance(labels, str):
        labels = [labels]
    labs = list(dict.fromkeys(labels or []))
    bad = [x for x in labs if x not in LABELS]
    if bad or not 1 <= len(labs) <= 2:
        raise AnnotationError(
            f"labels: expected 1 or 2 distinct classes among {', '.join(LABELS)}, found {list(labels or [])!r}; "
            "a label becomes an export class, so only the label set is accepted (use action 'unusable' for a non-face)."
        )
    return labs


def _check_undo(s: Session, annotator: str, undoes_id: Optional[int]) -> None:
    target = s.get(Annotation, undoes_id) if undoes_id is not None else None
    if target is None or target.action == "undo":
        raise AnnotationError(f"undo: expected the id of an annotation to undo, found {undoes_id!r}.")
    if target.annotator != annotator:
        raise AnnotationError(
            f"undo: annotation {undoes_id} was made by {target.annotator!r}, not by {annotator!r}; only one's own actions can be undone."
        )


def _effort(effort: Optional[str]) -> Optional[str]:
    if effort is not None and effort not in EFFORTS:
        raise AnnotationError(f"effort: expected one of {', '.join(EFFORTS)}, found {effort!r}.")
    return effort


def add_annotation(store: "Store", face_id: int, annotator: str, action: str, labels=None, source: str = "ui",
                   undoes_id: Optional[int] = None, seconds: Optional[float] = None, effort: Optional[str] = None) -> int:
    """Append one human action (label | unusable | skip | undo) and return its id. Two annotators
    acting on the same face both keep their rows (the vote settles the label). The annotator must
    be named (:func:`clean_annotator`), labels must be classes of LABELS, and an ``undo`` must point
    at one of the annotator's own actions; anything else is an :class:`AnnotationError`.
    ``seconds``: how long the decision took (capped, ``labeler.flow.capped``); ``effort``: its kind
    (``labeler.flow.EFFORTS``)."""
    name = clean_annotator(annotator)
    labs = _checked(action, labels)
    if action != "undo" and undoes_id is not None:
        raise AnnotationError(f"undoes_id: only an undo points at another annotation, found action {action!r}.")
    with store.session() as s:
        if action == "undo":
            _check_undo(s, name, undoes_id)
        a = Annotation(face_id=face_id, annotator=name, action=action, labels=labs, undoes_id=undoes_id, source=source,
                       seconds=capped(seconds), effort=_effort(effort))
        s.add(a)
        s.flush()
        return a.id


def add_annotations(store: "Store", items, annotator: str, source: str = "ui") -> list[int]:
    """Append ``(face_id, action, labels)`` items in one transaction (gallery / group relabel);
    checked as :func:`add_annotation` checks one (no ``undo`` here: use :func:`undo_last`)."""
    name = clean_annotator(annotator)
    rows = []
    for fid, action, labels in items:
        if action == "undo":
            raise AnnotationError("action 'undo' cannot be bulk-added; use undo_last (one's own newest action).")
        rows.append(Annotation(face_id=fid, annotator=name, action=action, labels=_checked(action, labels), source=source))
    with store.session() as s:
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def undo_last(store: "Store", annotator: str, source: str = "ui") -> Optional[dict[str, Any]]:
    """Undo the newest not-yet-undone label/unusable/skip action of ``annotator`` (from ``source``):
    appends an ``undo`` row by the same annotator pointing at it, so nobody can undo another's
    action. Repeated calls walk further back. None if nothing to undo."""
    name = clean_annotator(annotator)
    with store.session() as s:
        a = s.scalar(
            select(Annotation)
            .where(Annotation.annotator == name, Annotation.source == source,
                   Annotation.action.in_(("label", "unusable", "skip")), Annotation.id.not_in(undone_ids()))
            .order_by(Annotation.id.desc())
            .limit(1)
        )
        if a is None:
            return None
        u = Annotation(face_id=a.face_id, annotator=name, action="undo", labels=None, undoes_id=a.id, source=source)
        s.add(u)
        s.flush()
        return {"face_id": a.face_id, "undone_id": a.id, "undo_id": u.id, "action": a.action, "labels": a.labels}


def _decision_rows(s: Session, face_ids=None):
    newest = _newest_face_decisions()
    q = select(DecisionRow.face_id, DecisionRow.route, DecisionRow.label, DecisionRow.reason).join(newest, DecisionRow.id == newest.c.id)
    if face_ids is not None:
        q = q.where(DecisionRow.face_id.in_(list(face_ids)))
    return s.execute(q)


def accepted_labels(store: "Store", face_ids=None) -> dict[int, tuple[str, str]]:
    """face_id -> (accepted label, "human" | "auto") for faces that have one: the human majority
    (``unusable`` included) where people labeled the face, else the label of an ``auto`` decision."""
    out: dict[int, tuple[str, str]] = {}
    with store.session() as s:
        dec = {fid: (route, label) for fid, route, label, _r in _decision_rows(s, face_ids)}
        anns = current_annotations(s, face_ids)
    for fid in sorted(set(dec) | set(anns)):
        route, dlabel = dec.get(fid, (None, None))
        human = vote(anns[fid])[0] if fid in anns else None
        label, by = accepted_label(human, route, dlabel)
        if label:
            out[fid] = (label, by)
    return out


def gallery_faces(store: "Store", label: str, kind: str = "all", limit: int = 48, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """One page of faces whose accepted label is ``label`` (kind all | auto | human):
    (total, [{face_id, image_id, label, kind, crop}]) ordered by face id."""
    acc = accepted_labels(store)
    ids = sorted(fid for fid, (lab, k) in acc.items() if lab == label and kind in ("all", k))
    page = ids[offset : offset + limit]
    if not page:
        return len(ids), []
    with store.session() as s:
        rows = {fid: (iid, crop) for fid, iid, crop in s.execute(select(Face.id, Face.image_id, Face.crop).where(Face.id.in_(page)))}
    return len(ids), [
        {"face_id": fid, "image_id": rows[fid][0], "label": acc[fid][0], "kind": acc[fid][1], "crop": rows[fid][1]}
        for fid in page if fid in rows
    ]


def image_list(store: "Store", min_faces: int = 1, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """Images with at least ``min_faces`` faces: [{image_id, n_faces, path}] ordered by faces desc, id."""
    n = func.count(Face.id).label("n")
    q = (
        select(Face.image_id, n)
        .where(Face.image_id.not_in(select(VideoFrame.image_id)))  # video frames: the Tracks page
        .group_by(Face.image_id)
        .having(n >= min_faces)
        .order_by(n.desc(), Face.image_id)
        .limit(limit)
        .offset(offset)
    )
    with store.session() as s:
        rows = s.execute(q).all()
        first = {}
        if rows:
            for iid, p in s.execute(
                select(ImagePath.image_id, ImagePath.path).where(ImagePath.image_id.in_([r[0] for r in rows])).order_by(ImagePath.id.desc())
            ):
                first[iid] = p
    return [{"image_id": iid, "n_faces": k, "path": first.get(iid, "")} for iid, k in rows]


def image_view(store: "Store", image_id: int) -> Optional[dict[str, Any]]:
    """One image with all its faces, each with its box and current state (labels, decision)."""
    with store.session() as s:
        img = s.get(Image, image_id)
        if img is None:
            return None
        paths = list(s.scalars(select(ImagePath.path).where(ImagePath.image_id == image_id).order_by(ImagePath.id)))
        faces = s.scalars(select(Face).where(Face.image_id == image_id).order_by(Face.idx)).all()
        items = []
        for f in faces:
            st = _face_state(s, f.id)
            label, src = accepted_label(st["human_label"], st["route"], st["decision_label"])
            src = src or st["route"]
            items.append({"face_id": f.id, "idx": f.idx, "box": (f.x1, f.y1, f.x2, f.y2), "crop": f.crop,
                          "flags": list(decode_flags(f.flags)), "label": label, "label_source": src, **st})
        return {"image_id": img.id, "paths": paths, "width": img.width, "height": img.height, "status": img.status,
                "rule_state": img.rule_state, "rule_label": img.rule_label, "rule_words": [list(w.as_pair()) for w in decode_rule_words(img.rule_words)],
                "faces": items}
