"""Verify-by-grid, the prefetched queue's pending check and reading order (labeler.store.grid), on
small generated databases."""

from __future__ import annotations

import pytest

from labeler import store as S
from labeler.store import grid as G
from labeler.types import LABELS


def probs_for(label: str, p: float = 0.8) -> dict[str, float]:
    rest = (1 - p) / (len(LABELS) - 1)
    out = {lab: rest for lab in LABELS}
    out[label] = p
    out["sad" if label != "sad" else "fear"] += 0.01  # a clear second class
    return out


def make_faces(store: S.Store, specs: list[tuple[str, str]], faces_per_image: int = 1) -> list[int]:
    """One face per (route, label) spec, ``faces_per_image`` faces to a photo; returns the face ids."""
    ids = []
    with store.session() as s:
        img = None
        for k, (route, label) in enumerate(specs):
            if k % faces_per_image == 0:
                img = S.Image(sha256=f"{k:064d}", size_bytes=1, width=400, height=300, status="ingested", detected=True)
                s.add(img)
                s.flush()
            i = k % faces_per_image
            f = S.Face(image_id=img.id, idx=i, x1=10 + 50 * i, y1=10, x2=50 + 50 * i, y2=50, crop=b"crop%d" % k)
            s.add(f)
            s.flush()
            s.add(S.Proposal(face_id=f.id, source_kind="model", source="m@1", label=label, prob=0.8, probs=probs_for(label)))
            s.add(S.DecisionRow(image_id=img.id, face_id=f.id, route=route, kind="low_confidence" if route == "review" else "agree",
                                label=label, reason="test", priority=1.0, source="test"))
            ids.append(f.id)
    return ids


def test_grid_settles_verified_and_rejected_and_undo_restores(store):
    ids = make_faces(store, [("review", "happy")] * 6 + [("review", "sad")] * 2 + [("auto", "happy")] * 3)
    assert G.grid_classes(store, "review") == [G.GridClass("happy", 6), G.GridClass("sad", 2)]
    assert G.grid_classes(store, "auto") == [G.GridClass("happy", 3)]
    page = G.grid_page(store, "happy", "review", "ann", n=4)
    assert [g.face_id for g in page] == ids[:4] and page[0].crop == b"crop0" and page[0].prob == pytest.approx(0.8)

    r = G.settle_grid(store, "ann", "happy", [g.face_id for g in page], marked=[ids[1], ids[3]])
    assert r.verified == (ids[0], ids[2]) and r.rejected == (ids[1], ids[3])
    acc = S.accepted_labels(store, ids[:4])
    assert acc[ids[0]] == ("happy", "human") and acc[ids[2]] == ("happy", "human")
    assert ids[1] not in acc and ids[3] not in acc
    queue = S.review_queue(store, "ann", limit=100)
    assert ids[0] not in queue and ids[2] not in queue
    assert ids[1] in queue and ids[3] in queue  # rejected faces come back to single review
    card = S.face_card(store, ids[1])
    assert card["reason"] == "rejected as happy" and card["route"] == "review"
    assert card["decision_label"] == "sad"  # the model's next class is proposed, never the rejected one
    with store.session() as s:
        acts = [(a.face_id, a.action, a.labels, a.annotator) for a in s.query(S.Annotation).order_by(S.Annotation.id)]
    assert acts == [(ids[0], "verify", ["happy"], "ann"), (ids[1], "reject", ["happy"], "ann"),
                    (ids[2], "verify", ["happy"], "ann"), (ids[3], "reject", ["happy"], "ann")]
    assert [g.face_id for g in G.grid_page(store, "happy", "review", "ann")] == ids[4:6]
    # routing reads the rejection: even with every bucket certified the face is not auto-accepted as happy
    from labeler.routing import evidence_for, route

    from .test_routing import ALL, P

    rec = next(r for r in S.iter_face_records(store) if r.face_id == ids[1])
    assert rec.rejected == ("happy",)
    d = route(evidence_for(rec, 1), P, ALL)
    assert (d.route, d.label, d.reason) == ("review", "sad", "rejected as happy")

    u = G.undo_grid(store, "ann")
    assert u.key == r.key and set(u.verified) == {ids[0], ids[2]} and set(u.rejected) == {ids[1], ids[3]}
    assert S.accepted_labels(store, ids[:4]) == {}
    assert [g.face_id for g in G.grid_page(store, "happy", "review", "ann")] == ids[:6]
    assert S.face_card(store, ids[1])["reason"] == "test"
    assert next(r for r in S.iter_face_records(store) if r.face_id == ids[1]).rejected == ()
    assert G.undo_grid(store, "ann") is None
    assert G.undo_grid(store, "bob") is None


def test_grid_on_auto_faces_and_refusals(store):
    ids = make_faces(store, [("auto", "angry")] * 3)
    page = G.grid_page(store, "angry", "auto")
    G.settle_grid(store, "ann", "angry", [g.face_id for g in page], marked=[ids[2]])
    assert S.accepted_labels(store, ids) == {ids[0]: ("angry", "human"), ids[1]: ("angry", "human")}
    assert S.review_queue(store, "ann", limit=10) == [ids[2]]
    assert G.grid_page(store, "angry", "auto") == []
    with pytest.raises(G.GridError, match="grid class"):
        G.grid_page(store, "joy")
    with pytest.raises(G.GridError, match="annotator"):
        G.settle_grid(store, " ", "angry", ids, [])
    with pytest.raises(G.GridError, match="not on the page"):
        G.settle_grid(store, "ann", "angry", ids[:1], [ids[2]])


def test_still_pending_checks_only_the_given_faces(store):
    ids = make_faces(store, [("review", "fear")] * 4 + [("auto", "fear")])
    S.add_annotation(store, ids[0], "bob", "label", ["fear"])
    S.add_annotation(store, ids[1], "ann", "skip")
    uid = S.add_annotation(store, ids[2], "bob", "unusable")
    S.add_annotation(store, ids[2], "bob", "undo", undoes_id=uid)
    assert G.still_pending(store, ids, "ann") == [ids[2], ids[3]]
    assert G.still_pending(store, ids, "bob") == [ids[1], ids[2], ids[3]]
    assert G.still_pending(store, ids, "ann", any_route=True) == [ids[2], ids[3], ids[4]]
    assert G.still_pending(store, []) == []




def test_next_pending_image(store):
    ids = make_faces(store, [("auto", "happy"), ("auto", "happy"), ("review", "sad"), ("review", "sad"), ("review", "sad"), ("auto", "sad")],
                     faces_per_image=2)
    with store.session() as s:
        imgs = [s.get(S.Face, f).image_id for f in ids[::2]]
    assert G.next_pending_image(store) == imgs[1]
    assert G.next_pending_image(store, after=imgs[1]) == imgs[2]
    assert G.next_pending_image(store, after=imgs[2]) == imgs[1]  # wraps


def test_a_grid_page_shows_the_most_confident_faces_first_and_can_leave_the_unsure_to_cards(store):
    ids = make_faces(store, [("review", "happy")] * 6 + [("review", "sad")] * 2)
    ps = [0.55, 0.95, 0.70, 0.99, 0.62, 0.81]
    with store.session() as s:  # a newer model proposal per face, at these probabilities
        for fid, p in zip(ids, ps):
            s.add(S.Proposal(face_id=fid, source_kind="model", source="m@2", label="happy", prob=p, probs=probs_for("happy", p)))
    page = G.grid_page(store, "happy", "review", "ann", n=4)
    assert [f.face_id for f in page] == [ids[3], ids[1], ids[5], ids[2]]  # 0.99, 0.95, 0.81, 0.70
    assert [round(f.prob, 2) for f in page] == [0.99, 0.95, 0.81, 0.70]
    sure = G.grid_page(store, "happy", "review", "ann", n=48, min_prob=0.66)
    assert {f.face_id for f in sure} == {ids[1], ids[2], ids[3], ids[5]}
    assert G.grid_page(store, "sad", "review", "ann", n=48, min_prob=0.66) == [] or all(
        f.prob >= 0.66 for f in G.grid_page(store, "sad", "review", "ann", n=48, min_prob=0.66))
