"""The overview's numbers: ``labeler.reports.progress`` on hand-made face states, and
``labeler.store.overview_stats`` against the store's own answers on the sample database."""

from __future__ import annotations

import pytest

from labeler import store as S
from labeler.reports import progress as P
from labeler.store.stats import ActionCount, FaceStatus, OverviewData


def face(fid, rule=None, model=None, human=None, route="pending", decision=None):
    acc, by = S.accepted_label(human, route, decision)
    return FaceStatus(fid, rule, model, human, route, decision, acc, by)


FACES = (
    face(1, rule="happy", model="happy", route="auto", decision="happy"),  # auto-accepted
    face(2, rule="sad", model="happy", human="sad", route="review", decision="happy"),  # reviewed
    face(3, model="fear", route="review", decision="fear"),  # remaining
    face(4, model="angry", human="unusable", route="auto", decision="angry"),  # a human overrides auto
    face(5, model="neutral"),  # pending (not routed)
)
DATA = OverviewData(n_faces=5, n_images=7, faces=FACES, image_routes={"no_face": 2, "broken": 1},
                    actions=(ActionCount("bob", "label", 2), ActionCount("bob", "undo", 1), ActionCount("dora", "skip", 3)),
                    current_labels={"bob": 1})


def test_progress_counts_each_face_once():
    p = P.progress(DATA)
    assert (p.faces, p.auto_accepted, p.reviewed, p.remaining, p.pending) == (5, 1, 2, 1, 1)
    assert (p.no_face_images, p.broken_images) == (2, 1)
    assert p.labeled == 3 and p.fraction == pytest.approx(0.6)
    assert P.progress(OverviewData(0, 0, (), {}, (), {})).fraction == 0.0


def test_class_distribution_follows_the_accepted_label():
    assert P.class_distribution(FACES) == {"happy": {"auto": 1, "human": 0}, "sad": {"auto": 0, "human": 1},
                                           "unusable": {"auto": 0, "human": 1}}
    assert list(P.class_distribution(FACES)) == ["happy", "sad", "unusable"]  # LABELS order, unusable last


def test_agreement_only_on_faces_where_both_say_something():
    got = {(a.a, a.b): (a.rate, a.n) for a in P.agreement(FACES)}
    assert got[("rule", "model")] == (0.5, 2)  # faces 1 (same) and 2 (differ)
    assert got[("rule", "human")] == (1.0, 1)  # face 2
    assert got[("model", "human")] == (0.0, 2)  # faces 2 and 4
    assert P.agreement((), [("rule", "model")])[0].n == 0
    with pytest.raises(ValueError, match="agreement compares rule, model, human"):
        P.agreement(FACES, [("rule", "route")])


def test_confusion_table():
    assert P.confusion(FACES, "model", "human") == {"angry": {"sad": 0, "unusable": 1}, "happy": {"sad": 1, "unusable": 0}}
    assert P.confusion(FACES, "rule", "human") == {"sad": {"sad": 1}}
    assert P.confusion((), "rule", "model") == {}


def test_annotator_table():
    t = P.annotator_table(DATA.actions, dict(DATA.current_labels))
    assert t == {"bob": {"label": 2, "skip": 0, "undo": 1, "current labels": 1},
                 "dora": {"label": 0, "skip": 3, "undo": 0, "current labels": 0}}


def test_overview_stats_agrees_with_the_store(sample_db):
    st = S.Store(sample_db)
    fid = S.overview_stats(st).faces[0].face_id
    S.add_annotation(st, fid, "bob", "label", ["angry"])
    data = S.overview_stats(st)
    c = S.status_counts(st)
    assert data.n_faces == c["faces"] == len(data.faces)
    assert [f.face_id for f in data.faces] == sorted(f.face_id for f in data.faces)
    acc = S.accepted_labels(st)
    assert {f.face_id: (f.accepted, f.accepted_by) for f in data.faces if f.accepted} == acc
    assert sum(1 for f in data.faces if f.route == "auto") == c.get("route_auto", 0)
    assert data.image_routes.get("no_face", 0) == c.get("route_no_face", 0)
    assert any(f.model for f in data.faces) and any(f.rule for f in data.faces)
    (mine,) = [f for f in data.faces if f.face_id == fid]
    assert (mine.human, mine.accepted, mine.accepted_by) == ("angry", "angry", "human")
    assert data.current_labels == {"bob": 1}
    assert ActionCount("bob", "label", 1) in data.actions
    st.engine.dispose()
