"""The browser review card (``labeler.ui.fastcard``) in a real headless Chromium: keys faster than the
reruns that store them, undo over decisions still in flight, hide-until-answered."""

from __future__ import annotations

import pytest

from labeler import store as S
from labeler.types import LABELS

from .test_ui_browser import browser, serve  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

#: the face the browser card shows once every decision it sent is stored
SHOWN_SYNCED = """(id) => {
  const c = document.querySelector('.lbl-card');
  return !!c && c.dataset.inflight === '0' && c.dataset.live === '1' && c.dataset.face === String(id);
}"""
WATCH_INFLIGHT = """() => {  // the most decisions in flight at once, from now on
  window.__maxInflight = 0;
  const c = document.querySelector('.lbl-card');
  new MutationObserver(() => { window.__maxInflight = Math.max(window.__maxInflight, +c.dataset.inflight); })
    .observe(c, { attributes: true, attributeFilter: ['data-inflight'] });
}"""

RESEND = """(ds) => {  // the card's own trigger, with decisions it has sent before
  const S = document.querySelector('.lbl-card').parentElement.__lblCard;
  S.setTrigger('decide', { cid: S.cid, decisions: ds.map(([seq, face, lab]) => ({ seq, face, action: 'label', labels: [lab], target: null })),
                           have: [] });
}"""

@pytest.fixture
def fast_app(sample_db, tmp_path):
    from .test_ui import ensure_review

    ensure_review(sample_db, 11)
    yield from serve(sample_db, tmp_path)


def open_card(browser, url: str, name: str, first: int):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url + f"?annotator={name}&audits=0")
    page.wait_for_function(SHOWN_SYNCED, arg=first, timeout=30_000)
    return page


def mine(db_url: str, name: str) -> list[tuple[int, str, object, object]]:
    st = S.Store(db_url)
    with st.session() as s:
        rows = s.query(S.Annotation).filter(S.Annotation.annotator == name).order_by(S.Annotation.id).all()
        out = [(a.face_id, a.action, a.labels, a.undoes_id) for a in rows]
        ids = [a.id for a in rows]
    st.engine.dispose()
    return out, ids


def test_keys_faster_than_reruns_all_land_in_order(browser, fast_app, sample_db):  # noqa: F811
    q = S.review_queue(S.Store(sample_db), "fay", limit=10)
    assert len(q) == 10
    page = open_card(browser, fast_app, "fay", q[0])
    page.evaluate(WATCH_INFLIGHT)
    keys = "12345671"
    for k in keys:  # no waiting between the keys
        page.keyboard.press(k)
    assert page.evaluate("() => document.querySelector('.lbl-card').dataset.face") == str(q[8])  # shown at once
    page.wait_for_function(SHOWN_SYNCED, arg=q[8], timeout=30_000)
    assert page.evaluate("() => window.__maxInflight") >= 2  # the keys did come faster than the reruns
    got, _ids = mine(sample_db, "fay")
    assert got == [(q[i], "label", [LABELS[int(k) - 1]], None) for i, k in enumerate(keys)]  # each once, in order, right face
    rev = page.evaluate("() => document.querySelector('.lbl-card').dataset.rev")
    page.evaluate(RESEND, [[i + 1, q[i], LABELS[int(k) - 1]] for i, k in enumerate(keys)])  # the same batch once more
    page.wait_for_function("(r) => document.querySelector('.lbl-card').dataset.rev !== r", arg=rev, timeout=30_000)
    assert mine(sample_db, "fay")[0] == got  # applied once per (page, sequence number, face)
    page.keyboard.press("x")  # and the card goes on
    page.wait_for_function(SHOWN_SYNCED, arg=q[9], timeout=30_000)
    assert mine(sample_db, "fay")[0][-1] == (q[8], "unusable", None, None)


def test_undo_after_fast_keys(browser, fast_app, sample_db):  # noqa: F811
    q = S.review_queue(S.Store(sample_db), "gus", limit=5)
    page = open_card(browser, fast_app, "gus", q[0])
    for k in "123uu":  # three labels, then two undos, before the reruns caught up
        page.keyboard.press(k)
    assert page.evaluate("() => document.querySelector('.lbl-card').dataset.face") == str(q[1])
    page.wait_for_function(SHOWN_SYNCED, arg=q[1], timeout=30_000)
    got, ids = mine(sample_db, "gus")
    assert got == [(q[0], "label", ["angry"], None), (q[1], "label", ["disgust"], None), (q[2], "label", ["fear"], None),
                   (q[2], "undo", None, ids[2]), (q[1], "undo", None, ids[1])]
    page.keyboard.press("5")  # q[1] again: sad; then q[2] comes back too
    page.wait_for_function(SHOWN_SYNCED, arg=q[2], timeout=30_000)
    st = S.Store(sample_db)
    with st.session() as s:
        cur = {f: v["gus"].labels for f, v in S.current_annotations(s, q[:3]).items() if "gus" in v}
    st.engine.dispose()
    assert cur == {q[0]: ["angry"], q[1]: ["sad"]}  # q[2]'s label undone, q[1]'s replaced
    assert q[2] in S.review_queue(S.Store(sample_db), "gus", limit=100)
    page.close()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # a new page: its card has no history of its own
    page.goto(fast_app + "?annotator=gus&audits=0")
    page.wait_for_function("() => { const c = document.querySelector('.lbl-card'); return !!c && !!c.dataset.face; }",
                           timeout=30_000)
    page.keyboard.press("u")  # U still walks back the stored actions: the server says which face returns
    page.wait_for_function(SHOWN_SYNCED, arg=q[1], timeout=30_000)
    got, ids = mine(sample_db, "gus")
    assert got[-1] == (q[1], "undo", None, ids[-2]) and got[-2][:3] == (q[1], "label", ["sad"])


def test_hide_until_answered_on_the_browser_card(browser, fast_app, sample_db):  # noqa: F811
    st = S.Store(sample_db)
    q = S.review_queue(st, "hal", limit=3)
    cards = [S.face_card(st, f) for f in q[:2]]
    st.engine.dispose()
    page = open_card(browser, fast_app, "hal", q[0])
    page.locator("label").filter(has_text="Hide the proposal until I answer").click()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.wait_for_function("() => document.querySelector('.lbl-card').innerText.includes('Proposal hidden until you answer')")
    for c in cards:  # nothing of the proposal on the page (the first card, and the next one after the key)
        card_text = page.evaluate("() => document.querySelector('.lbl-card').innerText")
        assert "Why review" not in card_text and "Model (" not in card_text and c["reason"] not in card_text
        assert page.get_by_role("button", name="Accept: nothing proposed (press 1-7)").is_disabled()
        assert page.evaluate("() => document.querySelector('.lbl-card').dataset.mode") == "blind"
        if c is cards[0]:
            page.keyboard.press("3")  # fear
            page.wait_for_function(SHOWN_SYNCED, arg=q[1], timeout=30_000)
            text = page.evaluate("() => document.querySelector('.lbl-card').innerText")
            sugg = c["decision_label"] or c["model_label"]
            assert f"Face #{q[0]}: you said label fear · the proposal was {sugg}" in text
    page.keyboard.press("Enter")  # nothing to accept while the proposal is hidden: nothing stored, the card says why
    page.wait_for_function("() => document.querySelector('.lbl-card').innerText.includes('has none shown: press the class you see')")
    assert page.evaluate("() => document.querySelector('.lbl-card').dataset.face") == str(q[1])
    got, _ids = mine(sample_db, "hal")
    assert got == [(q[0], "label", ["fear"], None)]


def test_audit_samples_first_on_the_browser_card(browser, tmp_path, monkeypatch):  # noqa: F811
    from labeler.store.audit import reroute

    from .test_audit import _build
    from .test_ui_session_browser import bucket_app

    pol = bucket_app(tmp_path, monkeypatch)  # audit samples per bucket (the app's --config)
    url_db = f"sqlite:///{tmp_path / 'audit.db'}"
    st = _build(url_db)  # one bucket of 60 faces the model is sure of: audit samples are drawn from it
    reroute(st, pol)
    audits = {a.face_id for a in S.next_audit_faces(st, "ida", 20, pol)}
    assert audits
    st.engine.dispose()
    for url in serve(url_db, tmp_path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "?annotator=ida")  # audit samples first (the default): the first card waits for them
        page.wait_for_function("() => { const c = document.querySelector('.lbl-card'); return !!c && !!c.dataset.face; }",
                               timeout=30_000)
        text = page.evaluate("() => document.querySelector('.lbl-card').innerText")
        assert "Audit: answer blind" in text and "Proposal hidden until you answer" in text and "Model (" not in text
        fid = int(page.evaluate("() => document.querySelector('.lbl-card').dataset.face"))
        assert fid in audits
        page.keyboard.press("4")  # happy, blind
        page.keyboard.press("u")  # undone before the rerun came back: the sample is shown again
        page.wait_for_function(SHOWN_SYNCED, arg=fid, timeout=30_000)
        assert "Audit: answer blind" in page.evaluate("() => document.querySelector('.lbl-card').innerText")
        page.keyboard.press("5")  # sad
        page.wait_for_function("(f) => { const c = document.querySelector('.lbl-card'); "
                               "return c.dataset.inflight === '0' && c.dataset.face !== String(f); }", arg=fid, timeout=30_000)
        assert "you said label sad · the proposal was happy" in page.evaluate("() => document.querySelector('.lbl-card').innerText")
    st = S.Store(url_db)
    with st.session() as s:
        got = [(a.face_id, a.action, a.labels, a.source) for a in
               s.query(S.Annotation).filter(S.Annotation.annotator == "ida", S.Annotation.action != "skip").order_by(S.Annotation.id)]
    st.engine.dispose()
    assert got == [(fid, "label", ["happy"], "audit"), (fid, "undo", None, "audit"), (fid, "label", ["sad"], "audit")]
