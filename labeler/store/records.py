"""Face records (what export, evaluation and training read), current annotations, the vote, and
the one accepted-label rule."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labeler.store.engine import Store, chunks, latest_ids
from labeler.store.images import decode_flags, decode_rule_words
from labeler.store.schema import AUDIT_SOURCE, Annotation, DecisionRow, Face, Image, ImagePath, Proposal, Video, VideoFrame
from labeler.types import AnnotationRecord, FaceRecord


def current_annotations(session: Session, face_ids=None) -> dict[int, dict[str, Annotation]]:
    """face_id -> {annotator: their current (not undone, newest) label/unusable annotation}.

    Every action is kept; an ``undo`` row cancels the row it points at; a ``skip`` changes nothing.
    """
    q = select(Annotation).order_by(Annotation.id)
    if face_ids is not None:
        q = q.where(Annotation.face_id.in_(list(face_ids)))
    rows = session.scalars(q).all()
    undone = {a.undoes_id for a in rows if a.action == "undo" and a.undoes_id}
    out: dict[int, dict[str, Annotation]] = {}
    for a in rows:
        if a.action in ("label", "unusable", "verify") and a.id not in undone:  # verify: a grid label (store.grid)
            out.setdefault(a.face_id, {})[a.annotator] = a
    return out


def rejections(session: Session, face_ids) -> dict[int, tuple[str, ...]]:
    """face_id -> the classes humans rejected for it on a Verify grid (``reject`` rows not undone)."""
    out: dict[int, list[str]] = {}
    for ids in chunks(face_ids):
        rows = session.scalars(select(Annotation).where(Annotation.face_id.in_(ids), Annotation.action.in_(("reject", "undo")))
                               .order_by(Annotation.id)).all()
        undone = {a.undoes_id for a in rows if a.action == "undo" and a.undoes_id}
        for a in rows:
            if a.action == "reject" and a.id not in undone:
                for lab in a.labels or ():
                    if lab not in out.setdefault(a.face_id, []):
                        out[a.face_id].append(lab)
    return {f: tuple(v) for f, v in out.items()}


def vote(annotations: dict[str, Annotation]) -> tuple[Optional[str], dict[str, float]]:
    """Majority label over annotators (first label of each counts 1, a second label 0.5) and the
    vote distribution (soft label). ``unusable`` counts as the pseudo-label "unusable"."""
    dist: dict[str, float] = {}
    latest: dict[str, int] = {}
    for a in annotations.values():
        labs = ["unusable"] if a.action == "unusable" else list(a.labels or [])
        for k, lab in enumerate(labs[:2]):
            dist[lab] = dist.get(lab, 0.0) + (1.0 if k == 0 else 0.5)
            latest[lab] = max(latest.get(lab, 0), a.id)
    if not dist:
        return None, {}
    total = sum(dist.values())
    best = max(dist, key=lambda k: (dist[k], latest[k]))
    return best, {k: v / total for k, v in sorted(dist.items())}


def accepted_label(human: Optional[str], route: Optional[str], decision_label: Optional[str]) -> tuple[Optional[str], str]:
    """THE rule: the accepted label of a face is the human majority (``unusable`` included) where
    people labeled it, else the label of an ``auto`` decision. Returns (label, "human" | "auto" | "")."""
    if human:
        return human, "human"
    if route == "auto" and decision_label:
        return decision_label, "auto"
    return None, ""


def _newest(s: Session, model, ids: dict[int, int]) -> dict:
    """face_id -> the row of ``model`` with the id in ``ids`` (face_id -> row id)."""
    out = {}
    for chunk in chunks(ids.values()):
        for r in s.scalars(select(model).where(model.id.in_(chunk))):
            out[r.face_id] = r
    return out


def iter_face_records(store: Store, chunk: int = 500, image_ids=None) -> Iterator[FaceRecord]:
    """One FaceRecord per face (and one per image without faces), streamed in chunks of images."""
    last = 0
    while True:
        with store.session() as s:
            q = select(Image).where(Image.id > last).order_by(Image.id).limit(chunk)
            if image_ids is not None:
                q = q.where(Image.id.in_(list(image_ids)))
            imgs = s.scalars(q).all()
            if not imgs:
                return
            last = imgs[-1].id
            yield from _records(s, imgs)


def _records(s: Session, imgs: list[Image]) -> Iterator[FaceRecord]:
    ids = [i.id for i in imgs]
    paths: dict[int, list[ImagePath]] = {}
    for p in s.scalars(select(ImagePath).where(ImagePath.image_id.in_(ids)).order_by(ImagePath.id)):
        paths.setdefault(p.image_id, []).append(p)
    faces: dict[int, list[Face]] = {}
    for f in s.scalars(select(Face).where(Face.image_id.in_(ids)).order_by(Face.image_id, Face.idx)):
        faces.setdefault(f.image_id, []).append(f)
    fids = [f.id for fl in faces.values() for f in fl]
    props = _newest(s, Proposal, latest_ids(s, Proposal, fids, where=Proposal.source_kind == "model"))
    decs = _newest(s, DecisionRow, latest_ids(s, DecisionRow, fids))
    img_dec_ids = dict(
        s.execute(
            select(DecisionRow.image_id, func.max(DecisionRow.id))
            .where(DecisionRow.image_id.in_(ids), DecisionRow.face_id.is_(None))
            .group_by(DecisionRow.image_id)
        ).all()
    )
    img_decs = {d.image_id: d for d in s.scalars(select(DecisionRow).where(DecisionRow.id.in_(list(img_dec_ids.values()))))}
    anns = current_annotations(s, fids) if fids else {}
    rejected = rejections(s, fids) if fids else {}
    # a sampled video frame has no path: named after its video (frame_names)
    frames = frame_names(s, [i for i in ids if i not in paths])
    for img in imgs:
        pl = paths.get(img.id, [])
        first = pl[0] if pl else None
        path, root, rel = (first.path, first.root, first.relpath) if first else frames.get(img.id, ("", "", ""))
        base = dict(
            image_id=img.id, sha256=img.sha256, path=path, root=root,
            relpath=rel, paths=tuple(p.path for p in pl), status=img.status, error=img.error,
            width=img.width, height=img.height, rule_state=img.rule_state, rule_label=img.rule_label,
            rule_words=decode_rule_words(img.rule_words),
            text_share=img.text_share, nonphoto=img.nonphoto, dup_group=img.dup_group,
        )
        fl = faces.get(img.id, [])
        if not fl:
            d = img_decs.get(img.id)
            route = d.route if d else ("broken" if img.status == "broken" else ("no_face" if img.detected else "pending"))
            yield FaceRecord(**base, route=route, kind=d.kind if d else "", reason=d.reason if d else img.error,
                             decision_source=d.source if d else "")
            continue
        for f in fl:
            yield _face_record(base, f, props.get(f.id), decs.get(f.id), anns.get(f.id, {}), rejected.get(f.id, ()))


def _face_record(base: dict, f: Face, p: Optional[Proposal], d: Optional[DecisionRow], a: dict[str, Annotation],
                 rejected: tuple[str, ...] = ()) -> FaceRecord:
    human, votes = vote(a) if a else (None, {})
    label, by = accepted_label(human, d.route if d else None, d.label if d else None)
    lsrc = {"human": "human:" + ",".join(sorted(a)), "auto": f"auto:{d.reason}" if d else ""}.get(by, "")
    return FaceRecord(
        **base, face_id=f.id, face=f.idx, x1=f.x1, y1=f.y1, x2=f.x2, y2=f.y2, det_score=f.det_score,
        landmarks=f.landmarks, whole_image=f.whole_image, quality=f.quality, flags=decode_flags(f.flags),
        text_near=f.text_near,
        model_label=p.label if p else None, model_prob=p.prob if p else None, model_probs=p.probs if p else None,
        model_source=p.source if p else "", route=d.route if d else "pending", kind=d.kind if d else "",
        reason=d.reason if d else "", priority=d.priority if d else 0.0, decision_label=d.label if d else None,
        decision_source=d.source if d else "", human_label=human, votes=votes,
        annotations=tuple(
            AnnotationRecord(n, x.action, tuple(x.labels) if x.labels is not None else None, x.created_at.isoformat(), x.source)
            for n, x in sorted(a.items())
        ),
        rejected=rejected, label=label, label_source=lsrc, bucket=d.bucket if d else None, est_precision=d.est_precision if d else None,
        est_lower=d.est_lower if d else None, est_upper=d.est_upper if d else None,
    )


def face_crops(store: Store, face_ids) -> dict[int, Optional[bytes]]:
    """face_id -> stored crop bytes (aligned face crop, JPEG/PNG) for the given faces only."""
    out: dict[int, Optional[bytes]] = {}
    with store.session() as s:
        for ids in chunks(face_ids):
            out.update(dict(s.execute(select(Face.id, Face.crop).where(Face.id.in_(ids))).all()))
    return out


def human_labels_by_image(store: Store) -> dict[int, list[str]]:
    """image_id -> the human (majority) labels of its faces that people labeled, ``unusable`` left
    out; undone annotations do not count."""
    out: dict[int, list[str]] = {}
    with store.session() as s:
        cur = current_annotations(s, None)
        img_of: dict[int, int] = {}
        for ids in chunks(cur):
            img_of.update(dict(s.execute(select(Face.id, Face.image_id).where(Face.id.in_(ids))).all()))
    for fid in sorted(cur):
        lab, _ = vote(cur[fid])
        if lab and lab != "unusable" and fid in img_of:
            out.setdefault(img_of[fid], []).append(lab)
    return out

def is_blind(source: str) -> bool:
    """An audit answer or an imported label: made without seeing our proposal."""
    return source == AUDIT_SOURCE or source.startswith("import")


def frame_names(s: Session, image_ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
    """frame image id -> (path, root, relpath) named after its video: ``<video path>#frame=<n>``."""
    out: dict[int, tuple[str, str, str]] = {}
    for ids in chunks(image_ids):
        rows = s.execute(select(VideoFrame.image_id, VideoFrame.frame_index, Video.image_id)
                         .join(Video, Video.id == VideoFrame.video_id).where(VideoFrame.image_id.in_(ids))).all()
        paths: dict[int, ImagePath] = {}
        for p in s.scalars(select(ImagePath).where(ImagePath.image_id.in_({r[2] for r in rows})).order_by(ImagePath.id)):
            paths.setdefault(p.image_id, p)
        for fid, idx, vid in rows:
            p = paths.get(vid)
            if p is not None:
                out[fid] = (f"{p.path}#frame={idx}", p.root, f"{p.relpath}#frame={idx}")
    return out
