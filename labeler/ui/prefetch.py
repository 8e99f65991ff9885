"""The review card's speed: the queue precomputed, the next cards loaded before they are asked for.

The queue (``labeler.store.review_queue``: ordering it reads the whole review set) is fetched in
batches of ``BATCH`` face ids, the next batch in a worker thread while the current one still has
``LOW`` faces. Before a card is shown, only the head of the batch is checked again
(``store.grid.still_pending``: indexed look-ups of a few faces), so a face someone else labeled
meanwhile is dropped. The next ``AHEAD`` cards (the card record and the boxed photo) are loaded in
the worker threads while the annotator looks at the current one. No Streamlit call is made from a
worker thread.

The "suspicious labels first" queue (``Queue.issues`` set: face -> label issue, scored when the
queue is made) runs on the same machinery: its batches come from ``store.suspicious_queue``
(labeled faces, highest label-issue score first), its head is checked by ``store.still_suspicious``
(the annotator's answer or skip takes a face out), and it is not leased (a second look at a label
someone else is checking does no harm: the vote settles it).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from labeler import store as S
from labeler.store import grid as G
from labeler.ui.resources import boxed_image

BATCH = 120
LOW = 25
AHEAD = 3
#: the width of the photo drawn beside the card
PHOTO_SIDE = 360

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="labeler-prefetch")
_CARDS: dict[tuple[str, int], Future] = {}
_LOCK = threading.Lock()


def load_card(db: S.Store, face_id: int) -> Optional[dict[str, Any]]:
    """The card record of one face with its boxed photo (``photo``: JPEG bytes or None)."""
    c = S.face_card(db, face_id)
    if c is None:
        return None
    boxes = tuple((b["face_id"], *b["box"], str(b.get("n", b["idx"] + 1))) for b in c["faces"])
    c["photo"] = boxed_image(tuple(c["paths"]), boxes, face_id, PHOTO_SIDE)
    return c


def card(db: S.Store, url: str, face_id: int) -> Optional[dict[str, Any]]:
    """The card of ``face_id``: the prefetched one when it was loaded (or is being loaded), else
    loaded now. A prefetched card is used once (a card shown again is loaded afresh)."""
    with _LOCK:
        fut = _CARDS.pop((url, face_id), None)
    if fut is not None:
        try:
            return fut.result(timeout=5)
        except Exception:  # noqa: BLE001 - a failed prefetch: load it here, where errors show
            pass
    return load_card(db, face_id)


def prefetch(db: S.Store, url: str, face_ids: list[int]) -> None:
    """Start loading the cards of ``face_ids`` in the worker threads (those not loaded yet)."""
    with _LOCK:
        if len(_CARDS) > 64:  # cards asked for and never shown (filters changed): drop them
            _CARDS.clear()
        for fid in face_ids:
            if (url, fid) not in _CARDS:
                _CARDS[(url, fid)] = _POOL.submit(load_card, db, fid)


@dataclass
class Queue:
    """One annotator's precomputed queue for one set of filters (kept in the session state)."""

    key: tuple
    ids: list[int]
    left: int  # faces waiting when the batch was fetched, less those settled here since
    audit: list[int] = field(default_factory=list)  # audit samples, shown first (hidden proposal)
    audit_review: set[int] = field(default_factory=set)  # those of them also in the review queue (counted in left)
    seen: set[int] = field(default_factory=set)
    refill: Optional[Future] = None
    audits: Optional[Future] = None
    #: the "suspicious labels first" queue: face -> its label issue (None: the review queue)
    issues: Optional[Mapping[int, Any]] = None

    @property
    def suspicious(self) -> bool:
        return self.issues is not None


def _fetch(db: S.Store, annotator: str, filters: dict[str, Any], exclude: tuple[int, ...],
           issues: Optional[Mapping[int, Any]] = None) -> tuple[list[int], int, Optional[list[int]]]:
    """(the next batch, the faces waiting, and for the suspicious queue those faces themselves)."""
    ex = set(exclude)
    if issues is not None:  # the suspicious queue: every face of it at once (a sort of scores held here)
        ids = S.suspicious_queue(db, annotator, issues, include_skipped=bool(filters.get("include_skipped")))
        return [f for f in ids if f not in ex][:BATCH], len(ids), ids
    ids = S.review_queue(db, annotator, limit=BATCH + len(exclude), **filters)
    return [f for f in ids if f not in ex][:BATCH], S.review_queue_count(db, annotator, **filters), None


def _left(q: "Queue", left: int, among: Optional[list[int]]) -> int:
    """A fetch's count of the faces waiting; for the suspicious queue less those settled here since
    the fetch was started (a background fetch may have read the database before the last answers)."""
    return left if among is None else sum(1 for f in among if f not in q.seen)


def new_queue(db: S.Store, annotator: str, filters: dict[str, Any], key: tuple,
              audits: Optional[Callable[[], list[int]]] = None, issues: Optional[Mapping[int, Any]] = None) -> Queue:
    """A queue for ``annotator``: the review queue with ``filters`` (audit samples first when
    ``audits`` draws them), or with ``issues`` (face -> label issue) the "suspicious labels first"
    queue (only ``include_skipped`` of the filters applies; no audit samples)."""
    ids, left, _among = _fetch(db, annotator, filters, (), issues)
    q = Queue(key, ids, left, issues=issues)
    if issues is not None:
        if annotator:  # the card the review queue leased to the annotator goes back to the others
            S.release_leases(db, annotator)
        return q
    if audits is not None:
        q.audits = _POOL.submit(audits)
    return q


def take_audits(db: S.Store, annotator: str, filters: dict[str, Any], q: Queue) -> None:
    """The audit samples drawn for ``q`` become its first cards (call once ``q.audits`` is done: the
    UI waits for them before the first card, so that they are never swapped in under a card shown)."""
    try:
        q.audit = [f for f in q.audits.result() if f not in q.seen] if q.audits is not None else []
    except Exception:  # noqa: BLE001 - no audits then; the review queue goes on
        q.audit = []
    q.audits = None
    q.audit_review = S.in_review_queue(db, q.audit, annotator, **filters) if q.audit else set()


def waiting(q: Queue) -> int:
    """Faces waiting for the annotator with the queue's filters: the review queue's count and the
    audit samples outside it (one that is in both counts once), as the database has them at the last
    fetch, less those settled here since."""
    return q.left + sum(1 for f in q.audit if f not in q.audit_review)


def head(db: S.Store, url: str, annotator: str, filters: dict[str, Any], q: Queue) -> tuple[Optional[int], bool]:
    """The face to show now and whether it is an audit sample; drops settled faces from the head,
    tops the batch up in the background, and prefetches the cards that follow."""
    if q.audits is not None and q.audits.done():
        take_audits(db, annotator, filters, q)
    if q.audit:
        q.audit = G.still_pending(db, q.audit[:AHEAD + 1], annotator, any_route=True) + q.audit[AHEAD + 1:]
        if q.audit:
            prefetch(db, url, q.audit[1:AHEAD + 1] + q.ids[:1])
            return q.audit[0], True
    if q.suspicious:
        def pending(ids: list[int]) -> list[int]:
            return S.still_suspicious(db, ids, annotator, q.issues, include_skipped=bool(filters.get("include_skipped")))
    else:
        def pending(ids: list[int]) -> list[int]:
            return G.still_pending(db, ids, annotator)
    if q.refill is not None and q.refill.done():
        try:
            more, left, among = q.refill.result()
            have = set(q.ids) | q.seen
            q.ids += [f for f in more if f not in have]
            q.left = _left(q, left, among)
        except Exception:  # noqa: BLE001 - try again below
            pass
        q.refill = None
    for _ in range(100):  # settled faces dropped from the head; a new batch when it ran out
        got = pending(q.ids[:AHEAD + 1])
        q.seen |= set(q.ids[:AHEAD + 1]) - set(got)
        q.ids = got + q.ids[AHEAD + 1:]
        if q.ids:
            break
        if q.refill is not None:
            more, left, among = q.refill.result()
            q.refill = None
        else:
            more, left, among = _fetch(db, annotator, filters, tuple(q.seen), q.issues)
        q.left = _left(q, left, among)
        q.ids = [f for f in more if f not in q.seen]
        if not more:
            break
    if len(q.ids) < LOW and q.refill is None:
        q.refill = _POOL.submit(_fetch, db, annotator, filters, tuple(q.ids) + tuple(q.seen), q.issues)
    if not q.suspicious:
        q.ids = S.lease_order(db, annotator, q.ids)  # the head leased to this annotator: nobody else is served it
    if not q.ids:
        return None, False
    prefetch(db, url, q.ids[1:AHEAD + 1])
    return q.ids[0], False


def settled(q: Queue, face_id: int, audit: bool = False) -> None:
    """The face on the card was answered (or skipped) here: take it off the queue."""
    q.seen.add(face_id)
    if audit:
        q.audit = [f for f in q.audit if f != face_id]
        if face_id in q.audit_review:  # it was in the review queue too
            q.left = max(0, q.left - 1)
            if face_id in q.ids:
                q.ids.remove(face_id)
    elif face_id in q.ids:
        q.ids.remove(face_id)
        q.left = max(0, q.left - 1)


def put_back(q: Queue, face_id: int, audit: bool = False) -> None:
    """An undone face goes to the head of the queue again (of the audit samples, for an audit answer)."""
    q.seen.discard(face_id)
    if audit:
        q.audit.insert(0, face_id)
        if face_id in q.audit_review:
            q.left += 1
        return
    if face_id in q.ids:
        q.ids.remove(face_id)
    q.ids.insert(0, face_id)
    q.left += 1


def undo(db: S.Store, annotator: str, source: str, review_source: str, q: Optional[Queue]) -> Optional[dict[str, Any]]:
    """Undo the annotator's newest action of ``source`` (the audit's, after an audit answer), else
    their newest of ``review_source``; the face comes back at the head of ``q`` (of its audit samples
    when an audit answer was undone). ``store.undo_last``'s record, or None when nothing was undone."""
    r = S.undo_last(db, annotator, source=source)
    audit = r is not None and source != review_source
    if r is None and source != review_source:
        r = S.undo_last(db, annotator, source=review_source)
    if r is not None and q is not None:
        put_back(q, r["face_id"], audit=audit and r["action"] != "skip")
    return r
