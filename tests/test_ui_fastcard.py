"""The browser review card's server side through Streamlit's AppTest (no browser): the window of
cards the page is given. Keys, decisions and undo are driven in a real Chromium in
test_ui_fastcard_browser.py."""

from __future__ import annotations

import json


from labeler import store as S

from streamlit.testing.v1 import AppTest  # noqa: E402

from .test_ui import UI, card_face, click, config_home, ensure_review, rows  # noqa: E402,F401 - config_home: a private config folder


def card_data(db: str, monkeypatch, **state) -> dict:
    monkeypatch.setenv("LABELER_DB", db)
    at = AppTest.from_file(UI, default_timeout=60)
    at.session_state["annotator"] = "alice"
    at.session_state["audits_first"] = False
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    (el,) = [e for e in at.get("bidi_component") if e.proto.component_name == "labeler_fast_card"]
    return json.loads(el.proto.json)


def test_the_page_gets_the_queue_as_a_window_of_whole_cards(sample_db, monkeypatch):
    ensure_review(sample_db, 8)
    st = S.Store(sample_db)
    q = S.review_queue(st, "alice", limit=30)
    d = card_data(sample_db, monkeypatch)
    win = d["window"]
    assert [c["id"] for c in win] == q[:len(win)] and len(win) == min(len(q), 20)
    c0 = S.face_card(st, q[0])
    st.engine.dispose()
    first = win[0]
    assert first["head"] == f"Face #{q[0]} · image #{c0['image_id']} · face {c0['idx'] + 1} of {c0['n_faces']}"
    assert first["crop"].startswith("data:image/") and first["photo"].startswith("data:image/jpeg;base64,")
    assert first["suggestion"] == (c0["decision_label"] or c0["model_label"]) and not first["hidden"]
    assert "Why review" in first["evidence"] and c0["reason"].split("(")[0].strip() in first["evidence"]
    assert d["acks"] == {} and d["left"] == S.review_queue_count(S.Store(sample_db), "alice") and not d["empty"]


def test_hidden_cards_carry_no_proposal_to_show(sample_db, monkeypatch):
    ensure_review(sample_db, 3)
    d = card_data(sample_db, monkeypatch, hide_mode=True)
    assert d["window"] and all(c["hidden"] and c["evidence"] == "" and c["suggestion"] is None and "reveal" not in c
                               for c in d["window"])


def test_the_server_card_stays_selectable(sample_db, monkeypatch):
    """?card=server: the server-drawn card, not the browser card, and it labels: a click stores the
    label of the face shown, the next face comes, still on the server card."""
    ensure_review(sample_db, 3)
    q = S.review_queue(S.Store(sample_db), "alice", limit=2)
    monkeypatch.setenv("LABELER_DB", sample_db)
    at = AppTest.from_file(UI, default_timeout=60)
    at.session_state["annotator"] = "alice"
    at.session_state["audits_first"] = False
    at.query_params["card"] = "server"
    at.run()
    assert not at.exception, at.exception

    def fast_cards():
        return [e for e in at.get("bidi_component") if e.proto.component_name == "labeler_fast_card"]

    assert not fast_cards() and card_face(at) == q[0]
    click(at, "lab_happy")
    (a,) = rows(sample_db, annotator="alice")
    assert (a.face_id, a.action, a.labels, a.source) == (q[0], "label", ["happy"], "ui")
    assert not fast_cards() and card_face(at) == q[1]
