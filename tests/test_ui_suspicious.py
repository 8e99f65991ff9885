"""The Review page's "suspicious labels first" queue on a copy of the sample database (real crops, the
shipped model's real probabilities: it sees the astronaut's smile): the store's queue and the card
queue (``labeler.ui.prefetch``) that serves it, and the server-drawn card through Streamlit's AppTest.
Labels come in as `labeler import` brings them; three of them are wrong."""

from __future__ import annotations

import re

import pytest

from labeler import store as S
from labeler.datasets.importer import import_csv
from labeler.ui import prefetch as P

from .conftest import need_module

need_module("cleanlab", "quality", "pip install 'labeler[quality]'")
need_module("crowdkit", "quality", "pip install 'labeler[quality]'")

from .test_quality_store import _image_faces, _labels_csv  # noqa: E402
from .test_ui import card_face, click, config_home, make_app, rows  # noqa: E402,F401  (config_home: autouse fixture)

#: the wrong labels imported, by the index of the face in ``_image_faces``
WRONG = {1: "angry", 4: "sad", 6: "fear"}


def wrong_labels(db: str, tmp_path) -> dict[int, str]:
    """Import a label for every still-image face: happy (what the model sees), three of them wrong."""
    st = S.Store(db)
    faces = _image_faces(st)
    wrong = {faces[i][2]: lab for i, lab in WRONG.items()}
    import_csv(st, _labels_csv(tmp_path, faces, lambda fid: wrong.get(fid, "happy")))
    st.engine.dispose()
    return wrong


def test_the_queue_orders_by_score_and_an_answer_appends_and_drops(sample_db, tmp_path):
    wrong = wrong_labels(sample_db, tmp_path)
    st = S.Store(sample_db)
    issues = S.issue_map(st)
    order = S.suspicious_queue(st, "alice", issues)
    assert set(order) == set(wrong)  # the right labels (the model agrees: score < 0.5, not flagged) stay out
    assert [issues[f].score for f in order] == sorted((issues[f].score for f in order), reverse=True)
    assert all(issues[f].score > 0.9 and issues[f].suggested == "happy" and issues[f].kind == "import" for f in order)
    assert not any(S.is_suspicious(x) for f, x in issues.items() if f not in wrong)

    held = min(f for f in issues if f not in wrong)
    assert S.take_lease(st, held, "alice") and held in S.active_leases(st)  # as if the review queue had served it
    q = P.new_queue(st, "alice", {"include_skipped": False}, ("k",), issues={f: x for f, x in issues.items() if S.is_suspicious(x)})
    assert held not in S.active_leases(st)  # switched to the suspicious queue: back to the others
    assert P.waiting(q) == 3
    first, audit = P.head(st, sample_db, "alice", {}, q)
    assert (first, audit) == (order[0], False)
    S.add_annotation(st, first, "alice", "label", ["happy"])  # what the card stores for the key "3"
    P.settled(q, first)
    with st.session() as s:
        got = [(a.annotator, a.labels) for a in s.query(S.Annotation).filter(S.Annotation.face_id == first).order_by(S.Annotation.id)]
    assert got == [("import", [wrong[first]]), ("alice", ["happy"])]  # appended, nothing overwritten
    assert P.waiting(q) == 2 and P.head(st, sample_db, "alice", {}, q)[0] == order[1]
    assert S.suspicious_queue(st, "alice", issues) == order[1:]  # answered: out of alice's queue
    assert S.suspicious_queue(st, "bob", issues) == order[1:]  # and bob's: its label is no longer the one scored
    fresh = S.issue_map(st)
    assert fresh[first].label == "happy" and not S.is_suspicious(fresh[first])  # rescored: the tie goes to the newest answer

    S.add_annotation(st, order[1], "alice", "label", [wrong[order[1]]])  # Enter: the current label confirmed
    P.settled(q, order[1])
    assert S.suspicious_queue(st, "alice", S.issue_map(st)) == [order[2]]  # still doubted, but alice has answered it
    assert order[1] in S.suspicious_queue(st, "bob", S.issue_map(st))  # a second look for someone else
    S.add_annotation(st, order[2], "alice", "skip")
    P.settled(q, order[2])
    assert P.head(st, sample_db, "alice", {}, q) == (None, False) and P.waiting(q) == 0
    assert S.suspicious_queue(st, "alice", issues, include_skipped=True) == [order[2]]
    r = P.undo(st, "alice", "ui", "ui", q)  # U: the skip undone, the face back at the head
    assert r["face_id"] == order[2] and P.head(st, sample_db, "alice", {}, q)[0] == order[2]
    st.engine.dispose()


def test_server_card_suspicious_queue(sample_db, tmp_path, monkeypatch):
    """?queue=suspicious opens the queue; the card says the current label, its source, the score and
    the class the model prefers; Enter confirms the current label, a class key relabels; the
    Gallery's scores follow."""
    wrong = wrong_labels(sample_db, tmp_path)
    order = S.suspicious_queue(S.Store(sample_db), "alice", S.issue_map(S.Store(sample_db)))
    at = make_app(sample_db, monkeypatch, page="Review", name=None)
    at.query_params["queue"] = "suspicious"
    at.session_state["annotator"] = "alice"
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="w_queue_kind").value == "suspicious"
    assert card_face(at) == order[0]
    assert any("3 suspicious labels left to check" in c.value for c in at.caption)
    text = " ".join(m.value for m in at.markdown)
    assert f"now **{wrong[order[0]]}** (imported)" in text and "prefers happy" in text
    assert float(re.search(r"issue score (\d\.\d\d)", text).group(1)) > 0.9
    assert at.button(key="accept").label == f"Accept: {wrong[order[0]]}"
    click(at, "accept")  # Enter: the imported label confirmed by alice
    click(at, "lab_happy")  # the next one relabeled
    assert [(a.face_id, a.labels) for a in rows(sample_db, annotator="alice")] == [(order[0], [wrong[order[0]]]), (order[1], ["happy"])]
    assert card_face(at) == order[2]
    from labeler.ui.resources import issue_scores  # the app's cache (AppTest runs it in this process)

    assert issue_scores(sample_db)[order[1]][0] < 0.5  # rescored after the answer: the Gallery and Overview agree
    assert any("1 suspicious labels left to check" in c.value for c in at.caption)
    click(at, "unusable")
    assert any("No suspicious label left" in s.value for s in at.success)
    at.radio(key="w_queue_kind").set_value("review").run()  # back to the review queue
    assert not at.exception and any("to review with these filters" in c.value for c in at.caption)


def test_without_the_quality_extra_the_review_queue_stays(sample_db, tmp_path, monkeypatch):
    import labeler.quality as Q

    wrong_labels(sample_db, tmp_path)
    monkeypatch.setattr(Q, "missing", lambda: ["cleanlab"])
    at = make_app(sample_db, monkeypatch, page="Review")
    at.radio(key="w_queue_kind").set_value("suspicious").run()
    assert not at.exception, at.exception
    notes = [w.value for w in at.sidebar.warning]
    assert notes == ["Suspicious labels first needs the quality extra: pip install 'labeler[quality]'"]
    assert any("to review with these filters" in c.value for c in at.caption)
