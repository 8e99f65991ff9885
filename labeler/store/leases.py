"""Review-queue leases: a face served to an annotator is theirs for a while.

When several people review at once, each card fetch (:func:`lease_next`) leases the face it serves
to the annotator for ``minutes`` (``LABELER_LEASE_MINUTES``, default 10). Nobody else is served a
face while its lease runs; a lease left behind (a closed browser tab) simply expires. The next
fetch by the same annotator renews the lease of the card still on their screen and releases the
ones they answered or skipped, so answering releases a face. The queue itself (order, filters) is
``review.review_queue``; this module only keeps two people off the same face.

A lease is taken by one upsert that only one process can win on SQLite and PostgreSQL alike:
``INSERT ... ON CONFLICT (face_id) DO UPDATE ... WHERE expired OR mine``.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import delete, select

from labeler.store.engine import Store, StoreError
from labeler.store.grid import still_pending
from labeler.store.locks import dialect_insert
from labeler.store.review import review_queue
from labeler.store.schema import ReviewLease, utcnow

DEFAULT_MINUTES = 10.0
ENV = "LABELER_LEASE_MINUTES"
#: how many queue entries past the leased ones one fetch looks at before it gives up for this round
LOOKAHEAD = 20


def lease_minutes(minutes: Optional[float] = None) -> float:
    """The lease length: ``minutes`` if given, else ``LABELER_LEASE_MINUTES``, else 10."""
    raw = minutes if minutes is not None else os.environ.get(ENV, DEFAULT_MINUTES)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise StoreError(f"review lease length must be a positive number of minutes, found {raw!r}: "
                         f"set {ENV} to e.g. 10")
    return value


def active_leases(store: Store, now: Optional[datetime] = None) -> dict[int, tuple[str, datetime]]:
    """face_id -> (annotator, expires_at) of every lease still running."""
    now = now or utcnow()
    with store.session() as s:
        q = select(ReviewLease.face_id, ReviewLease.annotator, ReviewLease.expires_at).where(ReviewLease.expires_at > now)
        return {fid: (who, until) for fid, who, until in s.execute(q)}


def take_lease(store: Store, face_id: int, annotator: str, minutes: Optional[float] = None,
               now: Optional[datetime] = None) -> bool:
    """Lease ``face_id`` to ``annotator`` (or renew their lease); False when someone else holds a
    lease on it that has not expired."""
    now = now or utcnow()
    until = now + timedelta(minutes=lease_minutes(minutes))
    t = ReviewLease.__table__
    with store.session() as s:
        ins = dialect_insert(s, t).values(face_id=face_id, annotator=annotator, expires_at=until)
        ins = ins.on_conflict_do_update(
            index_elements=["face_id"],
            set_={"annotator": ins.excluded.annotator, "expires_at": ins.excluded.expires_at},
            where=(t.c.expires_at <= now) | (t.c.annotator == annotator),
        )
        return s.execute(ins.returning(t.c.face_id)).first() is not None  # rowcount is -1 on psycopg


def release_leases(store: Store, annotator: str, face_ids=None, keep=()) -> int:
    """Drop the leases of ``annotator`` (only on ``face_ids`` when given; never those in ``keep``);
    returns how many."""
    q = delete(ReviewLease).where(ReviewLease.annotator == annotator)
    if face_ids is not None:
        q = q.where(ReviewLease.face_id.in_(list(face_ids)))
    if keep:
        q = q.where(ReviewLease.face_id.not_in(list(keep)))
    with store.session() as s:
        return s.execute(q.execution_options(synchronize_session=False)).rowcount or 0


def lease_next(store: Store, annotator: str, limit: int = 1, minutes: Optional[float] = None, **filters) -> list[int]:
    """The next ``limit`` faces of ``annotator``'s review queue (``review_queue`` with ``filters``)
    that nobody else holds, leased to them; their other leases are released. A face they hold
    already stays first (the card on screen does not change under them). Without a name, no lease:
    the plain queue head."""
    if not annotator:
        return review_queue(store, annotator, limit=limit, **filters)
    minutes = lease_minutes(minutes)
    asked_out = set(filters.pop("exclude", ()) or ())
    got: list[int] = []
    for _round in range(5):  # another annotator may win each candidate we saw: look again
        now = utcnow()
        leases = active_leases(store, now)
        others = [f for f, (who, _u) in leases.items() if who != annotator]
        exclude = sorted(set(others) | asked_out | set(got))
        cands = review_queue(store, annotator, limit=limit - len(got) + LOOKAHEAD, exclude=exclude, **filters)
        mine = [f for f in cands if leases.get(f, ("",))[0] == annotator]
        for fid in mine + [f for f in cands if f not in mine]:
            if len(got) == limit:
                break
            if take_lease(store, fid, annotator, minutes, now):
                if _pending(store, fid, annotator):
                    got.append(fid)
                else:  # answered by someone between the queue read and the lease: not served
                    release_leases(store, annotator, [fid])
        if len(got) == limit or not cands:
            break
    release_leases(store, annotator, keep=got)
    return got


def _pending(store: Store, face_id: int, annotator: str) -> bool:
    """Whether the face still waits for ``annotator``'s answer. Checked after the lease is taken:
    whoever held it before answered (committed) before releasing it, so the answer is seen here."""
    return bool(still_pending(store, [face_id], annotator))


def lease_order(store: Store, annotator: str, face_ids: list[int], minutes: Optional[float] = None) -> list[int]:
    """For a queue the UI precomputed: ``face_ids`` reordered so that the first is leased to
    ``annotator`` (the first one nobody else holds that still waits for review), the faces others
    hold moved to the end (they come back when their lease ends), faces settled meanwhile dropped
    before it. The annotator's other leases are released. [] when none can be leased (the caller
    fetches its queue again). Without a name, ``face_ids`` as they are."""
    if not annotator or not face_ids:
        return list(face_ids)
    minutes = lease_minutes(minutes)
    now = utcnow()
    held = {f for f, (who, _u) in active_leases(store, now).items() if who != annotator}
    ids = list(dict.fromkeys(face_ids))
    for k, fid in enumerate(ids):
        if fid in held:
            continue
        if not take_lease(store, fid, annotator, minutes, now):
            held.add(fid)  # taken by someone since the look at the leases
            continue
        if not _pending(store, fid, annotator):  # answered meanwhile: dropped
            release_leases(store, annotator, [fid])
            continue
        release_leases(store, annotator, keep=[fid])
        rest = [f for f in ids[k + 1:] if f not in held]
        return [fid] + rest + [f for f in ids if f in held]
    release_leases(store, annotator)
    return []
