"""End to end: the review app served by streamlit, driven by a real headless Chromium (Playwright).

Needs Debian's ``chromium`` and the ``playwright`` package; skipped cleanly without them.
Screenshots of every page go to $LABELER_SCREENSHOTS (or the test's tmp folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labeler import store as S

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
CARD_JS = """(id) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState === 'running') return false;
  const m = /Face #(\\d+) ·/.exec(document.body.innerText);
  return id === null ? !!m : (m && m[1] === String(id));
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db_url: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "labeler" / "ui" / "app.py"), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--", "--db", db_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
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
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium is not installed (apt-get install chromium)")
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


@pytest.fixture
def app(sample_db):
    from .test_ui import ensure_review

    ensure_review(sample_db, 5)
    port = free_port()
    proc = start_app(sample_db, port)
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


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
    name.press("Enter")
    page.get_by_role("button", name="Start").click()
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
    assert page.url.rstrip("/").endswith("/image")
    assert page.get_by_role("button", name="Save labels for this image").count() == 1

    for title, fname in (("Gallery", "gallery.png"), ("Image", "image.png"), ("Overview", "overview.png")):
        goto_page(page, title)
        if title == "Overview":  # charts draw after the script has finished
            page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] svg').length >= 3",
                                   timeout=20_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / fname), full_page=True)
    assert page.get_by_text("Reviewed").count() >= 1
    goto_page(page, "Review")  # back to the queue from the sidebar: the next card again
    wait_card(page, q[3])
    st.engine.dispose()
