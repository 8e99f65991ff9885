"""What `labeler autolabel` writes and reads: detected faces, proposals and routing decisions."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Optional

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from labeler.store.engine import Store, chunks, latest_ids
from labeler.store.images import decode_flags, encode_flags, image_rules
from labeler.store.cleaning import CLEAN_COLUMNS, clean_values, to_signed
from labeler.store.locks import lock
from labeler.store.records import current_annotations, is_blind
from labeler.store.schema import VIDEO_FORMATS, DecisionRow, Face, Image, ImagePath, Proposal
from labeler.types import Decision, DetectedImage, ImageRules, NewProposal, StoredFace, Undetected, text_pending

NO_FACE = Decision(route="no_face", label=None, reason="no face detected", kind="no_face")


def undetected_ids(store: Store) -> set[int]:
    """Images ingested earlier whose detection never finished (a killed run)."""
    with store.session() as s:
        return set(s.scalars(select(Image.id).where(Image.status == "ingested", Image.detected.is_(False))))


def undetected(store: Store, under: Optional[str] = None) -> list[Undetected]:
    """Every image and video ingested and not detected yet (ingested only, a run stopped, or one
    still at work), by its first path; with ``under`` (a stored folder path, or a file's), only
    those with a path there."""
    q = (select(Image.id, Image.format, ImagePath.path, Image.sha256).join(ImagePath, ImagePath.image_id == Image.id)
         .where(Image.status == "ingested", Image.detected.is_(False)).order_by(Image.id, ImagePath.id))
    if under is not None:
        inside = under.rstrip("/") + "/"
        q = q.where(or_(ImagePath.path == under, ImagePath.path.startswith(inside, autoescape=True)))
    out: dict[int, Undetected] = {}
    with store.session() as s:
        for iid, fmt, path, sha in s.execute(q):
            out.setdefault(iid, Undetected(iid, fmt in VIDEO_FORMATS, path, sha))
    return list(out.values())


def pending_rules(store: Store, image_ids: Iterable[int]) -> dict[int, ImageRules]:
    """image_id -> its rules, for those of ``image_ids`` that exist and are not detected yet."""
    out: dict[int, ImageRules] = {}
    with store.session() as s:
        for ids in chunks(image_ids):
            for img in s.scalars(select(Image).where(Image.id.in_(ids), Image.detected.is_(False))):
                out[img.id] = image_rules(img)
    return out


def _decision_row(image_id: int, face_id: Optional[int], d: Decision) -> dict:
    return dict(image_id=image_id, face_id=face_id, route=d.route, kind=d.kind, label=d.label, reason=d.reason,
                priority=d.priority, source=d.source, bucket=d.bucket, est_precision=d.precision, est_lower=d.lower,
                est_upper=d.upper)


def _proposal_row(face_id: int, p: NewProposal) -> dict:
    return dict(face_id=face_id, source_kind=p.source_kind, source=p.source, label=p.label, prob=p.prob,
                probs=dict(p.probs) if p.probs is not None else None, detail=p.detail)


def add_decision(s: Session, image_id: int, face_id: Optional[int], d: Decision) -> None:
    s.add(DecisionRow(**_decision_row(image_id, face_id, d)))


def add_proposal(s: Session, face_id: int, p: NewProposal) -> None:
    s.add(Proposal(**_proposal_row(face_id, p)))


def save_detections(store: Store, images: Iterable[DetectedImage], detector: str) -> list[int]:
    """Store the faces (with their proposals and decisions) of each image and mark it detected, in
    one transaction; an image already detected (or gone) is left alone. Returns the ids written.

    Two processes detecting the same image at once (two `autolabel` runs of one folder) store its
    faces once: each image is first claimed by a conditional ``UPDATE ... WHERE detected = false``,
    which only one transaction can win (the other waits for it and then matches no row). A batch's
    images are claimed by one such UPDATE, in id order, so that two such transactions lock their
    rows in the same order."""
    images = sorted(images, key=lambda d: d.image_id)
    with store.session() as s:
        claimed: set[int] = set()
        for ids in chunks(di.image_id for di in images):
            claim = (update(Image).where(Image.id.in_(ids), Image.detected.is_(False)).values(detected=True, detector=detector)
                     .returning(Image.id).execution_options(synchronize_session=False))
            claimed.update(s.scalars(claim))
        # the others are gone, or detected already (by an earlier run, or by another process just now)
        done = [di for di in images if di.image_id in claimed and not claimed.discard(di.image_id)]  # an image once
        clean = [{"b_id": di.image_id, **{f"b_{k}": v for k, v in clean_values(di.clean).items()}}
                 for di in done if di.clean is not None]
        if clean:
            t = Image.__table__  # a Core UPDATE, executed once per row (not the ORM's bulk update by primary key)
            s.execute(update(t).where(t.c.id == bindparam("b_id")).values({k: bindparam(f"b_{k}") for k in CLEAN_COLUMNS}), clean)
        faces = [(di.image_id, i, nf) for di in done for i, nf in enumerate(di.faces)]
        rows = [dict(image_id=iid, idx=i, x1=float(nf.box[0]), y1=float(nf.box[1]), x2=float(nf.box[2]), y2=float(nf.box[3]),
                     det_score=float(nf.score), landmarks=[list(map(float, pt)) for pt in nf.landmarks] if nf.landmarks else None,
                     whole_image=nf.whole_image, quality=dict(nf.quality), flags=encode_flags(nf.flags), detector=detector,
                     crop=nf.crop, phash=None if nf.phash is None else to_signed(nf.phash), text_near=nf.text_near)
                for iid, i, nf in faces]
        # the batch's rows in three statements (bulk inserts; the faces' ids come back in order)
        ids = s.scalars(insert(Face).returning(Face.id, sort_by_parameter_order=True), rows).all() if rows else []
        props = [_proposal_row(fid, p) for fid, (_, _, nf) in zip(ids, faces) for p in nf.proposals]
        decs = [_decision_row(di.image_id, None, replace(NO_FACE, source=detector)) for di in done if not di.faces]
        decs += [_decision_row(iid, fid, nf.decision) for fid, (iid, _, nf) in zip(ids, faces)]
        for model, batch in ((Proposal, props), (DecisionRow, decs)):
            if batch:
                s.execute(insert(model), batch)
    return [di.image_id for di in done]


def route_broken(store: Store) -> int:
    """A ``broken`` decision for every broken image that has none yet; returns how many were added.
    Under a lock, so that two runs at once add one each, not two."""
    n = 0
    with store.session() as s:
        lock(s, "route_broken")
        have = set(s.scalars(select(DecisionRow.image_id).where(DecisionRow.face_id.is_(None), DecisionRow.route == "broken")))
        for img in s.scalars(select(Image).where(Image.status == "broken")):
            if img.id not in have:
                add_decision(s, img.id, None, Decision("broken", None, img.error, 0.0, "ingest", kind="broken"))
                n += 1
    return n


def last_face_id(store: Store) -> int:
    """The largest face id so far (0 for none): faces stored later have larger ids."""
    with store.session() as s:
        return int(s.scalar(select(func.max(Face.id))) or 0)


def faces_to_repropose(store: Store, model: str, only_stale: bool = True, upto: Optional[int] = None) -> list[int]:
    """Face ids without a human label, or whose labels are all blind (audits, imports: they measure
    the model's precision, so the current model's proposal must be stored for them too), in id order;
    with ``only_stale`` only those whose newest model proposal is from another model than ``model``
    (or missing); with ``upto`` only ids up to it (the faces a run found itself are proposed already)."""
    with store.session() as s:
        labeled = {f for f, by in current_annotations(s, None).items() if not all(is_blind(a.source or "") for a in by.values())}
        ids = select(Face.id).order_by(Face.id) if upto is None else select(Face.id).where(Face.id <= upto).order_by(Face.id)
        todo = [f for f in s.scalars(ids) if f not in labeled]
        if only_stale and todo:
            newest = latest_ids(s, Proposal, None, where=Proposal.source_kind == "model")
            src: dict[int, str] = {}
            for ids in chunks(newest.values()):
                src.update(dict(s.execute(select(Proposal.id, Proposal.source).where(Proposal.id.in_(ids))).all()))
            todo = [f for f in todo if src.get(newest.get(f, -1)) != model]
    return todo


def stored_faces(store: Store, face_ids: Iterable[int]) -> list[StoredFace]:
    """The given faces (id order) with their crops and their images' rules and face counts."""
    out: list[StoredFace] = []
    with store.session() as s:
        for ids in chunks(face_ids):
            faces = s.scalars(select(Face).where(Face.id.in_(ids)).order_by(Face.id)).all()
            nfaces: dict[int, int] = {}
            for (iid,) in s.execute(select(Face.image_id).where(Face.image_id.in_({f.image_id for f in faces}))):
                nfaces[iid] = nfaces.get(iid, 0) + 1
            for f in faces:
                out.append(StoredFace(f.id, f.image_id, nfaces[f.image_id], f.whole_image, decode_flags(f.flags), f.crop,
                                      image_rules(f.image), text_pending(f.text_near, f.image.nonphoto)))
    return sorted(out, key=lambda f: f.face_id)


def add_routed(store: Store, items: Iterable[tuple[int, int, tuple[NewProposal, ...], Decision]]) -> int:
    """Append ``(image_id, face_id, proposals, decision)`` items in one transaction; returns how many."""
    n = 0
    with store.session() as s:
        for image_id, face_id, props, d in items:
            for p in props:
                add_proposal(s, face_id, p)
            add_decision(s, image_id, face_id, d)
            n += 1
    return n
