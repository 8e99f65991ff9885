"""Queries of `labeler import`: find images and faces by path or key, append imported annotations."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from labeler.store.engine import Store, chunks
from labeler.store.locks import lock
from labeler.store.records import current_annotations
from labeler.store.schema import Annotation, Face, Image, ImagePath, Proposal, path_key


def images_by_path(store: Store, abs_paths=(), relpaths=()) -> tuple[dict[str, int], dict[str, set[int]]]:
    """Look paths up: ({absolute path: image_id}, {relpath (relative to an ingest root): {image_ids}})."""
    by_abs: dict[str, int] = {}
    by_rel: dict[str, set[int]] = {}
    with store.session() as s:
        for ids in chunks(abs_paths):
            keys = [path_key(p) for p in ids]
            by_abs.update(dict(s.execute(select(ImagePath.path, ImagePath.image_id).where(ImagePath.path_key.in_(keys))).all()))
        for ids in chunks(relpaths):
            for r, iid in s.execute(select(ImagePath.relpath, ImagePath.image_id).where(ImagePath.relpath.in_(ids))):
                by_rel.setdefault(r, set()).add(iid)
    return by_abs, by_rel


def ingest_roots(store: Store) -> list[str]:
    with store.session() as s:
        return sorted(r for r in s.scalars(select(ImagePath.root).distinct()) if r)


def image_faces(store: Store, image_ids) -> dict[int, dict[str, Any]]:
    """image_id -> {status, detected, faces: {idx: face_id}} for the given images."""
    out: dict[int, dict[str, Any]] = {}
    with store.session() as s:
        for ids in chunks(image_ids):
            for iid, st, det in s.execute(select(Image.id, Image.status, Image.detected).where(Image.id.in_(ids))):
                out[iid] = {"status": st, "detected": bool(det), "faces": {}}
            for fid, iid, idx in s.execute(select(Face.id, Face.image_id, Face.idx).where(Face.image_id.in_(ids))):
                out[iid]["faces"][idx] = fid
    return out


def faces_by_key(store: Store, sha_idx=(), face_ids=()) -> tuple[dict[tuple[str, int], int], set[int]]:
    """({(sha256, face idx): face_id}, {face ids that exist}) for the given keys / ids."""
    keys = list(dict.fromkeys(sha_idx))
    by_key: dict[tuple[str, int], int] = {}
    found: set[int] = set()
    with store.session() as s:
        for shas in chunks(k[0] for k in keys):
            q = select(Image.sha256, Face.idx, Face.id).join(Face, Face.image_id == Image.id).where(Image.sha256.in_(shas))
            for sha, idx, fid in s.execute(q):
                by_key[(sha, idx)] = fid
        for ids in chunks(face_ids):
            found.update(s.scalars(select(Face.id).where(Face.id.in_(ids))))
    wanted = set(keys)
    return {k: v for k, v in by_key.items() if k in wanted}, found


def add_import_annotations(store: Store, items, source: str) -> tuple[int, int]:
    """Append annotations ``(face_id, annotator, action, labels)`` (action label|unusable) with
    ``source``; an item equal to that annotator's current annotation of the face is not added again
    (re-import is idempotent). Returns (added, unchanged).

    Idempotent under concurrency too: the read of the current annotations and the append run
    under the ``import`` lock row, so the same file imported twice at once adds its rows once."""
    items = list(items)
    added = unchanged = 0
    with store.session() as s:
        lock(s, "import")
        cur = current_annotations(s, {it[0] for it in items}) if items else {}
        state = {(fid, n): (a.action, list(a.labels or []) if a.action == "label" else []) for fid, by in cur.items() for n, a in by.items()}
        for fid, annotator, action, labels in items:
            want = (action, list(labels or []) if action == "label" else [])
            if state.get((fid, annotator)) == want:
                unchanged += 1
                continue
            s.add(Annotation(face_id=fid, annotator=annotator, action=action,
                             labels=list(labels) if action == "label" else None, source=source))
            state[(fid, annotator)] = want
            added += 1
    return added, unchanged


def add_vote_proposals(store: Store, items, source: str) -> tuple[int, int]:
    """Append imported vote distributions ``(face_id, label or None, shares {class: share}, counts
    {column: votes})`` as proposals of kind ``import`` named ``source`` (``votes:<file>``); a face
    whose newest proposal of that source already has these counts gets nothing (re-import is
    idempotent, under the ``import`` lock). Returns (added, unchanged)."""
    items = list(items)
    added = unchanged = 0
    with store.session() as s:
        lock(s, "import")
        newest: dict[int, Proposal] = {}
        for ids in chunks({it[0] for it in items}):
            q = (select(Proposal).where(Proposal.face_id.in_(ids), Proposal.source_kind == "import", Proposal.source == source)
                 .order_by(Proposal.id))
            newest.update({p.face_id: p for p in s.scalars(q)})
        for fid, label, shares, votes in items:
            detail = json.dumps(votes, sort_keys=True)
            if fid in newest and newest[fid].detail == detail:
                unchanged += 1
                continue
            p = Proposal(face_id=fid, source_kind="import", source=source, label=label,
                         prob=shares.get(label) if label else None, probs=dict(shares), detail=detail)
            s.add(p)
            newest[fid] = p
            added += 1
    return added, unchanged
