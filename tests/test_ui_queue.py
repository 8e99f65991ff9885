"""The review queue's count (``labeler.ui.prefetch``): what the card says is waiting equals what the
database has waiting for the annotator (the review queue, and the audit samples outside it; a face in
both counted once), over random sequences of answers, skips and undos."""

from __future__ import annotations

import random

import pytest

from labeler import store as S
from labeler.store import grid as G

from labeler.ui import prefetch as P  # noqa: E402

from .test_ui_session_browser import audit_db  # noqa: E402

NAME = "ida"


def db_waiting(st: S.Store, drawn: list[int]) -> int:
    """The database's side: the review queue's count, and the audit samples drawn for the queue that
    still wait (nobody labeled them, the annotator did not skip them) and are outside the review queue."""
    pending = G.still_pending(st, drawn, NAME, any_route=True)
    return S.review_queue_count(st, NAME) + len(set(pending) - S.in_review_queue(st, pending, NAME))


@pytest.mark.parametrize("seed", range(4))
def test_the_count_is_the_databases_over_random_sessions(tmp_path, seed):
    rng = random.Random(seed)
    from labeler.routing import RoutingPolicy

    pol = RoutingPolicy(method="bucket")  # audit samples drawn per bucket (tests/test_ui_session_browser.audit_db)
    url, drawn, outside = audit_db(tmp_path, pol)
    st = S.Store(url)
    q = P.new_queue(st, NAME, {}, ("k",), lambda: [a.face_id for a in S.next_audit_faces(st, NAME, 20, pol)])
    q.audits.result()
    P.take_audits(st, NAME, {}, q)
    assert q.audit == drawn and q.audit_review == set(drawn) - outside
    assert P.waiting(q) == db_waiting(st, drawn) == 66  # every face once, whether in the queue, the audit or both
    done: list[tuple[int, str, bool]] = []  # (face, source, shown as an audit sample) of each action, newest last
    for _ in range(40):
        fid, audit = P.head(st, url, NAME, {}, q)
        op = rng.choice(["label", "label", "skip", "undo"]) if fid is not None else "undo"
        if op == "undo":
            if not done:
                continue
            face, src, _was_audit = done.pop()
            r = P.undo(st, NAME, src, "ui", q)  # as the cards undo: the face back at the head of q
            assert r is not None and r["face_id"] == face
        elif op == "skip":
            S.add_annotation(st, fid, NAME, "skip", None, source="ui")
            P.settled(q, fid, audit=audit)
            done.append((fid, "ui", audit))
        else:
            lab = [rng.choice(["happy", "sad"])]
            if audit:
                S.add_audit(st, fid, NAME, "label", lab)
            else:
                S.add_annotation(st, fid, NAME, "label", lab, source="ui")
            P.settled(q, fid, audit=audit)
            done.append((fid, S.AUDIT_SOURCE if audit else "ui", audit))
        assert P.waiting(q) == db_waiting(st, drawn), (op, fid, audit)
    st.engine.dispose()
