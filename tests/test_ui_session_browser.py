"""The review app around its cards, in a real headless Chromium: keys right after a sidebar control
was clicked, every page opened by its address, one name per browser (two browsers, two names),
audit samples announced and never swapped in under the annotator's hands, the to-review count."""

from __future__ import annotations

import pytest

from labeler import store as S
from labeler.types import LABELS

from .test_ui_browser import browser, serve  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

VIEW = {"width": 1400, "height": 1000}
#: the browser card shows this face, its keys act, and every decision it sent is stored
SYNCED = """(id) => {
  const c = document.querySelector('.lbl-card');
  return !!c && c.dataset.inflight === '0' && c.dataset.live === '1' && (id === null ? !!c.dataset.face : c.dataset.face === String(id));
}"""
#: no script run under way (a control's rerun has finished)
IDLE = "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"
CARD_FACE = "() => +document.querySelector('.lbl-card').dataset.face"
GRID_READY = """(old) => {
  const g = document.querySelector('.lbl-grid');
  return !!g && g.dataset.ready === '1' && g.dataset.page !== old &&
    document.querySelector('[data-testid="stApp"]').dataset.testScriptState === 'notRunning';
}"""


@pytest.fixture
def review_app(sample_db, tmp_path):
    from .test_ui import ensure_review

    ensure_review(sample_db, 11)
    yield from serve(sample_db, tmp_path)


def actions(db_url: str, name: str) -> list[tuple[int, str, object, str]]:
    st = S.Store(db_url)
    with st.session() as s:
        got = [(a.face_id, a.action, a.labels, a.source) for a in
               s.query(S.Annotation).filter(S.Annotation.annotator == name).order_by(S.Annotation.id)]
    st.engine.dispose()
    return got


def wait_rows(page, db_url: str, name: str, n: int, timeout_s: float = 30) -> list:
    """The annotator's rows once there are ``n`` of them (polled while the page runs)."""
    for _ in range(int(timeout_s * 10)):
        got = actions(db_url, name)
        if len(got) >= n:
            return got
        page.wait_for_timeout(100)
    return actions(db_url, name)


def sidebar_label(page, text: str):
    return page.locator('[data-testid="stSidebar"] label').filter(has_text=text).first


def open_page(page, title: str, heading: str) -> None:
    """Go to a page by its sidebar link and wait until its script run has drawn it."""
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.locator(f"[data-testid=stMain] h3:has-text('{heading}')").first.wait_for(timeout=30_000)
    page.wait_for_function(IDLE, timeout=30_000)


def choose(page, box: str, option: str) -> None:
    """Pick ``option`` from the select box named ``box`` with the mouse (again if a rerun closed its list)."""
    for _ in range(3):
        page.get_by_role("combobox", name=box).click()
        opt = page.get_by_role("option", name=option, exact=True)
        try:
            opt.wait_for(timeout=5_000)
        except Exception:  # noqa: BLE001 - the list was closed by a rerun: open it again
            continue
        opt.click()
        page.wait_for_function(IDLE, timeout=30_000)
        return
    raise AssertionError(f"no option {option!r} in {box!r}")


def test_keys_work_right_after_each_sidebar_control(browser, review_app, sample_db):  # noqa: F811
    page = browser.new_page(viewport=VIEW)
    page.goto(review_app + "review?annotator=kai&audits=0")
    page.wait_for_function(SYNCED, arg=None, timeout=60_000)
    # the toggle: clicked with the mouse, the focus stays on it; the next key must still label the card
    f0 = page.evaluate(CARD_FACE)
    sidebar_label(page, "Hide the proposal until I answer").click()
    page.wait_for_function("() => document.querySelector('.lbl-card').innerText.includes('Proposal hidden until you answer')")
    page.keyboard.press("4")
    page.wait_for_function("(f) => +document.querySelector('.lbl-card').dataset.face !== f", arg=f0)
    assert wait_rows(page, sample_db, "kai", 1)[-1][:3] == (f0, "label", ["happy"])
    sidebar_label(page, "Hide the proposal until I answer").click()  # off again
    page.wait_for_function(IDLE)
    # the checkbox, then S
    page.wait_for_function(SYNCED, arg=None, timeout=30_000)
    f1 = page.evaluate(CARD_FACE)
    sidebar_label(page, "Include faces I skipped").click()
    page.wait_for_function(IDLE)
    page.wait_for_function(SYNCED, arg=None, timeout=30_000)
    f1 = page.evaluate(CARD_FACE)
    page.keyboard.press("s")
    assert wait_rows(page, sample_db, "kai", 2)[-1][:2] == (f1, "skip")
    # a select box: a folder chosen from its list, then X
    page.wait_for_function(SYNCED, arg=None, timeout=30_000)
    choose(page, "Source folder", "(all folders)")
    page.wait_for_function(SYNCED, arg=None, timeout=30_000)
    f2 = page.evaluate(CARD_FACE)
    page.keyboard.press("x")
    assert wait_rows(page, sample_db, "kai", 3)[-1][:2] == (f2, "unusable")
    # the Gallery's class box: a class chosen, then ? opens the help (and is not typed into the box)
    open_page(page, "Gallery", "Gallery")
    box = page.get_by_role("combobox", name="Class")
    choose(page, "Class", "happy")
    page.keyboard.press("?")
    page.wait_for_selector(".lbl-help.lbl-open", timeout=10_000)
    assert box.input_value() == "happy"
    page.keyboard.press("Escape")
    # Verify: the source radio, then Enter confirms the grid
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Verify").first.click()
    page.wait_for_function(GRID_READY, arg="", timeout=30_000)
    token = page.evaluate("() => document.querySelector('.lbl-grid').dataset.page")
    sidebar_label(page, "auto-accepted").click()  # (none waits in the sample data) and back
    page.get_by_text("No face of the auto-accepted waits for a grid").wait_for(timeout=30_000)
    sidebar_label(page, "review queue").click()
    page.wait_for_function(GRID_READY, arg="", timeout=30_000)  # the page kept from before
    assert page.evaluate("() => document.querySelector('.lbl-grid').dataset.page") == token
    shown = page.evaluate("() => Array.from(document.querySelectorAll('.lbl-tile')).map(t => +t.dataset.face)")
    page.keyboard.press("Enter")
    got = wait_rows(page, sample_db, "kai", 3 + len(shown))
    assert [(f, a) for f, a, _l, _s in got[3:]] == [(f, "verify") for f in shown]


#: every page's address, and what shows it is there (after the name is known)
ADDRESSES = {"review": ".lbl-card", "": ".lbl-card", "sign-in": ".lbl-card", "verify": "text=Verify by grid",
             "image": "text=Image view", "tracks": "[data-testid=stMain] h3:has-text('Track')",
             "gallery": "[data-testid=stMain] h3:has-text('Gallery')", "overview": "[data-testid=stMain] h3:has-text('Overview')"}


def no_page_not_found(page) -> None:
    page.wait_for_function(IDLE, timeout=30_000)
    assert page.get_by_text("Page not found").count() == 0, page.url


def test_every_page_opens_by_its_address(browser, review_app):  # noqa: F811
    for path, sel in ADDRESSES.items():  # a shared link with the name: straight to the page
        page = browser.new_page(viewport=VIEW)
        page.goto(review_app + path + "?annotator=lee&audits=0")
        page.locator(sel).first.wait_for(timeout=30_000)
        no_page_not_found(page)
        want = "review" if path in ("", "sign-in") else path
        assert page.url.split("?")[0].rstrip("/").endswith("/" + want) and "annotator=lee" in page.url, (path, page.url)
        assert "Annotator: lee" in page.locator('[data-testid="stSidebar"]').inner_text()  # the name on every page
        page.close()
    for path in ("review", "overview", ""):  # a new browser without a name: the sign-in form, then that page
        page = browser.new_page(viewport=VIEW)
        page.goto(review_app + path)
        page.get_by_label("Your name").fill("mo")
        no_page_not_found(page)
        page.get_by_label("Your name").press("Enter")  # Enter in the box starts, like the button
        page.locator(ADDRESSES[path]).first.wait_for(timeout=30_000)
        no_page_not_found(page)
        assert "annotator=mo" in page.url
        page.close()


def sign_in(ctx, url: str, name: str):
    page = ctx.new_page()
    page.goto(url)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Your name").press("Enter")
    page.get_by_text(f"Annotator: {name}").wait_for(timeout=30_000)
    return page


def test_each_browser_its_own_name_labels_and_undo(browser, review_app, sample_db):  # noqa: F811
    a_ctx, b_ctx = browser.new_context(viewport=VIEW), browser.new_context(viewport=VIEW)
    a = sign_in(a_ctx, review_app + "review?audits=0", "ann")
    b = b_ctx.new_page()  # another browser (another person) opening a page: asked for a name, not given ann's
    b.goto(review_app + "verify")
    b.get_by_label("Your name").wait_for(timeout=30_000)
    assert "ann" not in b.inner_text("body")
    b.get_by_label("Your name").fill("bob")
    b.get_by_label("Your name").press("Enter")
    b.get_by_text("Verify by grid").wait_for(timeout=30_000)
    assert "Annotator: bob" in b.inner_text("body")
    a.wait_for_function(SYNCED, arg=None, timeout=30_000)
    fa = a.evaluate(CARD_FACE)
    a.keyboard.press("1")  # ann: angry
    assert wait_rows(a, sample_db, "ann", 1) == [(fa, "label", ["angry"], "ui")]
    b.goto(review_app + "review?audits=0")  # bob's own URL has his name: the card, then U
    b.wait_for_function(SYNCED, arg=None, timeout=30_000)
    fb = b.evaluate(CARD_FACE)
    assert fb != fa
    b.keyboard.press("u")  # bob has nothing to undo: ann's label stays
    b.wait_for_function("() => document.querySelector('.lbl-card').innerText.includes('nothing to undo')", timeout=30_000)
    b.keyboard.press("6")
    assert wait_rows(b, sample_db, "bob", 1) == [(fb, "label", ["surprise"], "ui")]
    assert actions(sample_db, "ann") == [(fa, "label", ["angry"], "ui")]
    a.keyboard.press("u")  # ann's undo walks back ann's label, not bob's
    got = wait_rows(a, sample_db, "ann", 2)
    assert got[1][:2] == (fa, "undo") and actions(sample_db, "bob") == [(fb, "label", ["surprise"], "ui")]
    again = a_ctx.new_page()  # the same browser, a plain address: its cookie knows the name
    again.goto(review_app)
    again.get_by_text("Annotator: ann").wait_for(timeout=30_000)
    assert "annotator=ann" in again.url
    again.get_by_role("button", name="Change name").click()
    again.get_by_label("Your name").wait_for(timeout=30_000)
    again.goto(review_app)  # signed out: the cookie is gone too
    again.get_by_label("Your name").wait_for(timeout=30_000)
    a_ctx.close()
    b_ctx.close()


#: every face the card shows, in order (consecutive repeats dropped), and the keys pressed meanwhile
WATCH = """() => {
  const c = document.querySelector('.lbl-card');
  window.__faces = [c.dataset.face]; window.__keys = 0;
  document.addEventListener('keydown', () => { window.__keys += 1; }, true);
  new MutationObserver(() => {
    const f = c.dataset.face;
    if (f && f !== window.__faces[window.__faces.length - 1]) window.__faces.push(f);
  }).observe(c, { attributes: true, attributeFilter: ['data-face'] });
}"""
LEFT = "() => +/^(\\d+) to review/.exec(document.querySelector('.lbl-card .lbl-cap').textContent)[1]"


def bucket_app(tmp_path, monkeypatch):
    """The app started with ``[routing] method = "bucket"`` (``labeler ui --config``), and that policy."""
    from labeler.routing import RoutingPolicy

    cfg = tmp_path / "buckets.toml"
    cfg.write_text('[routing]\nmethod = "bucket"\n')
    monkeypatch.setenv("LABELER_CONFIG", str(cfg))
    return RoutingPolicy(method="bucket")


def audit_db(tmp_path, pol) -> tuple[str, list[int], set[int]]:
    """test_audit's database (a bucket of 60 faces the model is sure of, all routed to review), with
    auto decisions for half of the faces of the first audit draw: audit samples both inside and
    outside the review queue. Returns the URL, the audit samples of "ida" and those outside the queue."""
    from labeler.store.audit import reroute

    from .test_audit import _build

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    st = _build(url)
    reroute(st, pol)
    audits = [a.face_id for a in S.next_audit_faces(st, "ida", 20, pol)]
    outside = set(audits[::2])
    with st.session() as s:
        for f in outside:
            s.add(S.DecisionRow(image_id=s.get(S.Face, f).image_id, face_id=f, route="auto", kind="agree", label="happy",
                                reason="test: auto", priority=0.0, source="test"))
    assert [a.face_id for a in S.next_audit_faces(st, "ida", 20, pol)] == audits  # the same draw (seeded, by bucket)
    st.engine.dispose()
    return url, audits, outside


def db_waiting(db_url: str, name: str, audits_left: list[int]) -> int:
    """What waits for ``name`` in the database: the review queue, and the audit samples outside it."""
    st = S.Store(db_url)
    n = S.review_queue_count(st, name) + len(set(still_waiting(st, audits_left, name)) - S.in_review_queue(st, audits_left, name))
    st.engine.dispose()
    return n


def still_waiting(st, faces, name):
    from labeler.store import grid as G

    return G.still_pending(st, faces, name, any_route=True)


def test_audit_samples_first_announced_never_swapped_and_the_count_is_the_databases(browser, tmp_path, monkeypatch):  # noqa: F811
    url_db, audits, outside = audit_db(tmp_path, bucket_app(tmp_path, monkeypatch))
    for url in serve(url_db, tmp_path):
        page = browser.new_page(viewport=VIEW)
        page.goto(url + "review?annotator=ida")  # audit samples first (the default)
        page.wait_for_function(SYNCED, arg=None, timeout=60_000)
        page.evaluate(WATCH)
        card = page.locator(".lbl-card")
        assert card.get_attribute("data-mode") == "audit" and page.evaluate(CARD_FACE) == audits[0]  # the first card
        assert "Audit: answer blind. Press the class you see (1-7)" in card.inner_text()
        assert page.evaluate(LEFT) == db_waiting(url_db, "ida", audits) == 66  # each face once
        page.keyboard.press("Enter")  # nothing is proposed: nothing stored, and the card says why
        page.wait_for_function("() => document.querySelector('.lbl-card').innerText.includes('has none shown')")
        assert actions(url_db, "ida") == []
        for i, f in enumerate(audits):  # every sample answered (happy), then the review queue
            page.wait_for_function(SYNCED, arg=f, timeout=30_000)
            assert card.get_attribute("data-mode") == "audit"
            assert page.evaluate(LEFT) == db_waiting(url_db, "ida", audits[i:])
            page.keyboard.press("4")
        page.wait_for_function(SYNCED, arg=None, timeout=30_000)
        assert card.get_attribute("data-mode") == "review" and page.evaluate(CARD_FACE) not in audits
        assert [(f, a, s) for f, a, _l, s in actions(url_db, "ida")] == [(f, "label", "audit") for f in audits]
        assert page.evaluate(LEFT) == db_waiting(url_db, "ida", []) == 66 - len(audits)
        f = page.evaluate(CARD_FACE)
        page.keyboard.press("s")  # a review card skipped: the count follows
        page.wait_for_function("(f) => { const c = document.querySelector('.lbl-card'); return c.dataset.inflight === '0' && "
                               "+c.dataset.face !== f; }", arg=f, timeout=30_000)
        assert page.evaluate(LEFT) == db_waiting(url_db, "ida", [])
        faces, keys = page.evaluate("() => [window.__faces.map(Number), window.__keys]")
        assert faces[:len(audits)] == audits and len(faces) == len(audits) + 2  # one new card per answer, none in between
        assert keys == len(audits) + 2


def test_two_label_accept_names_what_enter_stores_and_the_gallery_explains_its_marks(browser, review_app, sample_db):  # noqa: F811
    page = browser.new_page(viewport=VIEW)
    page.goto(review_app + "review?annotator=tia&audits=0")
    page.wait_for_function(SYNCED, arg=None, timeout=60_000)
    f0 = page.evaluate(CARD_FACE)
    st = S.Store(sample_db)
    c0 = S.face_card(st, f0)
    st.engine.dispose()
    held = next(lab for lab in LABELS if lab != (c0["decision_label"] or c0["model_label"]))  # not the proposal
    page.keyboard.press("a")  # two labels: the first one held ...
    page.keyboard.press(str(LABELS.index(held) + 1))
    accept = page.locator(".lbl-card button").filter(has_text="Accept").first
    assert accept.evaluate("b => b.firstChild.textContent") == f"Accept: {held}"  # ... is what Enter stores
    page.keyboard.press("Enter")
    assert wait_rows(page, sample_db, "tia", 1) == [(f0, "label", [held], "ui")]
    open_page(page, "Gallery", "Gallery")
    choose(page, "Class", "any face")
    page.get_by_text("non-photo = how much the image looks like").wait_for(timeout=30_000)
    main = page.inner_text('[data-testid="stMain"]')
    assert "non-photo 0." in main and "np 0." not in main
