"""End to end: the review app served by streamlit, driven by a real headless Chromium (Playwright).

Needs Debian's ``chromium`` and the ``playwright`` package; skipped without them, a failure where
LABELER_REQUIRE_CHROMIUM is set (scripts/test.sh as root: CI).
Screenshots of every page go to $LABELER_SCREENSHOTS (or the test's tmp folder).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labeler import store as S

from .conftest import chromium_exe, need_module

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
CARD_JS = """(id) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState === 'running') return false;
  const c = document.querySelector('.lbl-card');  // the browser card: every decision sent is stored
  if (c && c.dataset.inflight !== '0') return false;
  const m = /Face #(\\d+) ·/.exec(document.body.innerText);
  return id === null ? !!m : (m && m[1] === String(id));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db_url: str, port: int, config_home: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "labeler" / "ui" / "app.py"), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal", "--", "--db", db_url]
    env = dict(os.environ, LABELER_DB=db_url, XDG_CONFIG_HOME=str(config_home))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("streamlit did not come up in 60 s")


@pytest.fixture
def browser():
    sync_api = need_module("playwright.sync_api", "chromium", "pip install playwright")
    exe = chromium_exe()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROME_ARGS)
        yield b
        b.close()


def shots_dir(tmp_path) -> Path:
    d = Path(os.environ.get("LABELER_SCREENSHOTS") or tmp_path / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def wait_card(page, face_id=None, timeout=20_000) -> None:
    page.wait_for_function(CARD_JS, arg=face_id, timeout=timeout, polling="raf")


def idle(page, text: str) -> None:
    """Wait until ``text`` is shown and the script run that showed it has finished."""
    page.wait_for_function(
        "(t) => document.body.innerText.includes(t) && "
        "document.querySelector('[data-testid=\"stApp\"]').dataset.testScriptState === 'notRunning'", arg=text)


def goto_page(page, name: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=name).first.click()
    page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]').dataset.testScriptState !== 'running'")


def serve(db_url: str, tmp_path):
    port = free_port()
    proc = start_app(db_url, port, tmp_path / "config")
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def app(sample_db, tmp_path):
    from .test_ui import ensure_review

    ensure_review(sample_db, 5)
    yield from serve(sample_db, tmp_path)


def no_audits(page) -> None:
    """The review queue itself (no audit samples first), and the keys to the page again."""
    page.get_by_role("checkbox", name="Audit samples first").uncheck(force=True)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def shot(page, path: Path, wait_ms: int = 600) -> None:
    page.wait_for_timeout(wait_ms)  # let the images paint
    page.screenshot(path=str(path), full_page=True)


def test_label_with_keyboard_undo_and_pages(browser, app, sample_db, tmp_path):
    st = S.Store(sample_db)
    q = S.review_queue(st, "erin", limit=4)
    assert len(q) == 4, "the sample database needs faces to review"
    c1 = S.face_card(st, q[1])
    suggestion = c1["decision_label"] or c1["model_label"]
    shots = shots_dir(tmp_path)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app)
    name = page.get_by_label("Your name")
    name.fill("erin")
    name.press("Enter")  # the sign-in form starts on Enter
    wait_card(page)
    no_audits(page)
    wait_card(page, q[0])
    page.wait_for_timeout(300)  # let the images paint for the screenshot
    page.screenshot(path=str(shots / "review.png"))

    page.keyboard.press("1")  # angry
    wait_card(page, q[1])
    page.keyboard.press("Enter")  # accept the suggestion
    wait_card(page, q[2])
    page.keyboard.press("x")  # unusable
    wait_card(page, q[3])
    page.keyboard.press("u")  # undo the unusable: the face comes back
    wait_card(page, q[2])

    with st.session() as s:
        rows = s.query(S.Annotation).filter(S.Annotation.annotator == "erin").order_by(S.Annotation.id).all()
        got = [(a.face_id, a.action, a.labels, a.source) for a in rows]
        assert got == [
            (q[0], "label", ["angry"], "ui"),
            (q[1], "label", [suggestion], "ui"),
            (q[2], "unusable", None, "ui"),
            (q[2], "undo", None, "ui"),
        ]
        assert rows[3].undoes_id == rows[2].id
        cur = S.current_annotations(s, q)
    assert set(cur) == {q[0], q[1]}
    assert q[2] in S.review_queue(st, "someone-else", limit=1000)

    page.keyboard.press("a")  # two labels: happy + surprise
    idle(page, "Two labels")
    page.keyboard.press("4")
    idle(page, "Held: happy")
    page.keyboard.press("6")
    wait_card(page, q[3])
    with st.session() as s:
        last = s.query(S.Annotation).order_by(S.Annotation.id.desc()).first()
        assert (last.face_id, last.labels) == (q[2], ["happy", "surprise"])

    page.get_by_role("button", name="Open image view").click()  # the card's photo, on the Image page
    idle(page, "Image view")
    assert page.url.split("?")[0].rstrip("/").endswith("/image")
    assert page.get_by_role("button", name="Next to do").count() == 1

    page.keyboard.press("?")  # the keyboard help overlay
    page.wait_for_selector(".lbl-help.lbl-open")
    shot(page, shots / "help_image.png", 200)
    page.keyboard.press("Escape")
    page.wait_for_selector(".lbl-help:not(.lbl-open)", state="attached")
    # every page from the sidebar: its own address and heading, no error drawn (then its screenshot)
    for title, heading, fname in (("Verify", "Verify by grid", "verify.png"), ("Gallery", "Gallery", "gallery.png"),
                                  ("Image", "Image view", "image.png"), ("Overview", "Overview", "overview.png")):
        goto_page(page, title)
        if title == "Overview":  # charts draw after the script has finished
            page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] svg').length >= 3",
                                   timeout=20_000)
        page.wait_for_timeout(1500)
        assert page.url.split("?")[0].rstrip("/").endswith("/" + title.lower()), (title, page.url)
        assert page.get_by_role("heading", name=heading, exact=True).count() == 1, title
        assert page.locator('[data-testid="stException"]').count() == 0, title
        page.screenshot(path=str(shots / fname), full_page=True)
    assert page.get_by_text("Reviewed").count() >= 1
    goto_page(page, "Review")  # back to the queue from the sidebar: the next card again
    wait_card(page, q[3])
    st.engine.dispose()


GRID_READY = """(old) => {
  const g = document.querySelector('.lbl-grid');
  const app = document.querySelector('[data-testid="stApp"]');
  return !!g && g.dataset.ready === '1' && g.dataset.page !== old && app.dataset.testScriptState !== 'running';
}"""


def reroute(db_url: str, face_ids, label: str) -> None:
    """New review decisions proposing ``label`` for these faces (as `labeler route` would append)."""
    st = S.Store(db_url)
    with st.session() as s:
        for fid in face_ids:
            f = s.get(S.Face, fid)
            s.add(S.DecisionRow(image_id=f.image_id, face_id=fid, route="review", kind="low_confidence", label=label,
                                reason=f"test: model unsure, {label}", priority=1.0, source="test"))
    st.engine.dispose()


def test_grid_verify_two_marked_then_undo(browser, sample_db, tmp_path):
    st = S.Store(sample_db)
    with st.session() as s:
        photo = S.Face.id.not_in(S.video_face_ids(st))  # sample_data's video faces are labeled by track
        fids = [f for (f,) in s.query(S.Face.id).filter(photo).order_by(S.Face.id).limit(8)]
    reroute(sample_db, fids, "neutral")  # the class with the most faces waiting: the grid opens on it
    from labeler.store import grid as G

    want = [g.face_id for g in G.grid_page(st, "neutral", "review", "gina")]
    assert set(fids) <= set(want)
    shots = shots_dir(tmp_path)
    for url in serve(sample_db, tmp_path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "verify?annotator=gina&pays=0")
        page.wait_for_function(GRID_READY, arg="", timeout=30_000)
        token = page.evaluate("() => document.querySelector('.lbl-grid').dataset.page")
        shown = [int(x) for x in page.evaluate("() => Array.from(document.querySelectorAll('.lbl-tile')).map(t => t.dataset.face)")]
        assert shown == want
        for key in ("ArrowRight", "Space", "ArrowRight", "ArrowRight", "Space"):  # tiles 2 and 4 marked wrong
            page.keyboard.press(key)
        assert page.evaluate("() => document.querySelector('.lbl-grid').dataset.marked") == f"{shown[1]},{shown[3]}"
        shot(page, shots / "verify_marked.png", 300)
        page.keyboard.press("Enter")
        idle(page, "sent back to review")
        with st.session() as s:
            acts = {(a.face_id, a.action) for a in s.query(S.Annotation).filter(S.Annotation.annotator == "gina")}
        assert acts == {(f, "reject" if f in (shown[1], shown[3]) else "verify") for f in shown}
        acc = S.accepted_labels(st, shown)
        assert {f for f, (lab, by) in acc.items() if (lab, by) == ("neutral", "human")} == set(shown) - {shown[1], shown[3]}
        for f in (shown[1], shown[3]):
            c = S.face_card(st, f)
            assert (c["route"], c["reason"], c["human_label"]) == ("review", "rejected as neutral", None)
        page.wait_for_function(GRID_READY, arg=token, timeout=30_000)  # the next page
        token2 = page.evaluate("() => document.querySelector('.lbl-grid').dataset.page")
        page.keyboard.press("u")  # undo the confirmed page
        idle(page, "undid the neutral page")
        assert S.accepted_labels(st, shown) == {f: v for f, v in S.accepted_labels(st, shown).items() if v[1] == "auto"}
        assert all(S.face_card(st, f)["reason"] != "rejected as neutral" for f in shown)
        page.wait_for_function(GRID_READY, arg=token2, timeout=30_000)
        assert [int(x) for x in page.evaluate("() => Array.from(document.querySelectorAll('.lbl-tile')).map(t => t.dataset.face)")] == want
    st.engine.dispose()


def crowd_db(tmp_path, n: int = 15) -> str:
    """A database with one 15-face photo (a generated JPEG), every face waiting for review."""
    from PIL import Image as PILImage

    photo = tmp_path / "crowd.jpg"
    PILImage.new("RGB", (1000, 600), (90, 120, 160)).save(photo, "JPEG")
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    st = S.Store(url)
    buf = photo.read_bytes()
    with st.session() as s:
        img = S.Image(sha256="c" * 64, size_bytes=len(buf), width=1000, height=600, status="ingested", detected=True)
        img.paths = [S.ImagePath(path=str(photo), root=str(tmp_path), relpath="crowd.jpg")]
        s.add(img)
        s.flush()
        order = [(k % 5, k // 5) for k in range(n)]  # columns, rows: stored out of reading order
        for i, (col, row) in enumerate(reversed(order)):
            x, y = 40 + col * 190, 40 + row * 180
            f = S.Face(image_id=img.id, idx=i, x1=x, y1=y, x2=x + 100, y2=y + 120, crop=buf)
            s.add(f)
            s.flush()
            s.add(S.DecisionRow(image_id=img.id, face_id=f.id, route="review", kind="multi_face", label="happy",
                                reason="crowd", priority=1.0, source="test"))
    st.engine.dispose()
    return url


def test_crowd_pages_by_keys(browser, tmp_path):
    from labeler.active import reading_order

    url_db = crowd_db(tmp_path)
    st = S.Store(url_db)
    with st.session() as s:
        boxes = [(f.id, f.x1, f.y1, f.x2, f.y2) for f in s.query(S.Face)]
    order = reading_order(boxes)
    assert order != sorted(order)  # stored order is not reading order
    shots = shots_dir(tmp_path)
    for url in serve(url_db, tmp_path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "image?annotator=ivan")  # opens on the next photo with faces to review
        idle(page, "faces 1-12 of 15")
        shot(page, shots / "image_crowd.png")
        page.keyboard.press("1")  # face 1: angry; the cursor moves to face 2
        idle(page, "cursor on face 2")
        page.keyboard.press("n")
        idle(page, "faces 13-15 of 15")
        page.keyboard.press("7")  # face 13: neutral
        idle(page, "cursor on face 14")
        page.keyboard.press("p")
        idle(page, "faces 1-12 of 15")
    with st.session() as s:
        got = [(a.face_id, a.labels) for a in s.query(S.Annotation).order_by(S.Annotation.id)]
    assert got == [(order[0], ["angry"]), (order[12], ["neutral"])]
    st.engine.dispose()


def test_hide_until_answered(browser, app, sample_db, tmp_path):
    st = S.Store(sample_db)
    q = S.review_queue(st, "hana", limit=2)
    c0 = S.face_card(st, q[0])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app + "?annotator=hana")
    wait_card(page)
    no_audits(page)
    page.locator("label").filter(has_text="Hide the proposal until I answer").click()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    idle(page, "Proposal hidden until you answer")
    wait_card(page, q[0])
    body = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').innerText")
    assert "Why review" not in body and "Model (" not in body and c0["reason"] not in body
    shot(page, shots_dir(tmp_path) / "review_hidden.png")
    page.keyboard.press("3")  # fear
    wait_card(page, q[1])
    idle(page, "the proposal was")
    assert f"Face #{q[0]}: you said label fear" in page.evaluate("() => document.body.innerText")
    with st.session() as s:
        a = s.query(S.Annotation).filter(S.Annotation.annotator == "hana").one()
    assert (a.face_id, a.labels) == (q[0], ["fear"])
    st.engine.dispose()


def test_a_page_link_opens_that_page_after_sign_in(browser, app):
    # a link to a page shared with a new annotator: the sign-in form first, then the page itself
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    page = ctx.new_page()
    page.goto(app.rstrip("/") + "/overview")
    page.get_by_label("Your name").fill("kim")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/overview**", timeout=20_000)
    page.get_by_text("Page not found").wait_for(state="detached", timeout=5_000)
    page.get_by_role("heading", name="Overview").first.wait_for(timeout=20_000)
    ctx.close()
