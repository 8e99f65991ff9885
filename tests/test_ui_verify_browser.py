"""Verify (the grid page) in a real headless Chromium: pages confirmed one after another each store
their faces, the page's buttons are on screen, the tile captions say what they are."""

from __future__ import annotations

import io
import random

import pytest

from labeler import store as S
from labeler.types import LABELS

from .test_ui_browser import browser, serve  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

#: a grid page is on screen, its images loaded, and no script run is under way
GRID_READY = """(old) => {
  const g = document.querySelector('.lbl-grid');
  const app = document.querySelector('[data-testid="stApp"]');
  if (!g || g.dataset.ready !== '1' || g.dataset.page === old || app.dataset.testScriptState === 'running') return false;
  return Array.from(g.querySelectorAll('img')).every(i => i.complete && i.naturalWidth > 0);
}"""
TILES = "() => Array.from(document.querySelectorAll('.lbl-tile')).map(t => +t.dataset.face)"


def grid_db(tmp_path, per_class: dict[str, int], seed: int = 0) -> str:
    """A database of one-face photos waiting for review, ``per_class[c]`` of them proposed as ``c``
    (model proposal and review decision), each with a small generated crop."""
    from PIL import Image as PILImage

    rng = random.Random(seed)
    crops = []
    for _ in range(12):
        buf = io.BytesIO()
        PILImage.new("RGB", (64, 64), tuple(rng.randrange(40, 220) for _ in range(3))).save(buf, "JPEG")
        crops.append(buf.getvalue())
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    st = S.Store(url)
    k = 0
    with st.session() as s:
        for label, n in per_class.items():
            for _ in range(n):
                img = S.Image(sha256=f"{k:064x}", size_bytes=100, width=64, height=64, status="ingested", detected=True)
                s.add(img)
                s.flush()
                f = S.Face(image_id=img.id, idx=0, x1=0, y1=0, x2=64, y2=64, crop=crops[k % len(crops)])
                s.add(f)
                s.flush()
                p = round(rng.uniform(0.4, 0.95), 2)
                probs = {lab: round((1 - p) / (len(LABELS) - 1), 3) for lab in LABELS} | {label: p}
                s.add(S.Proposal(face_id=f.id, source_kind="model", source="test@1", label=label, prob=p, probs=probs))
                s.add(S.DecisionRow(image_id=img.id, face_id=f.id, route="review", kind="low_confidence", label=label,
                                    reason=f"test: model unsure, {label}", priority=1.0, source="test"))
                k += 1
    st.engine.dispose()
    return url


def grid_rows(db_url: str, name: str) -> list[tuple[int, str, str]]:
    st = S.Store(db_url)
    with st.session() as s:
        got = [(a.face_id, a.action, a.source) for a in
               s.query(S.Annotation).filter(S.Annotation.annotator == name).order_by(S.Annotation.id)]
    st.engine.dispose()
    return got


def test_five_pages_confirmed_in_a_row_each_store_their_faces(browser, tmp_path):  # noqa: F811
    # the class with the most faces (neutral) opens; after its pages come happy's: the class in hand is
    # kept while it has faces (the counts in the class box change with every page)
    url_db = grid_db(tmp_path, {"neutral": 130, "happy": 120})
    for url in serve(url_db, tmp_path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "verify?annotator=gina&pays=0")
        page.wait_for_function(GRID_READY, arg="", timeout=60_000)
        token, expect = "", []
        for k in range(5):
            token = page.evaluate("() => document.querySelector('.lbl-grid').dataset.page")
            shown = page.evaluate(TILES)
            assert shown and not set(shown) & {f for f, _a in expect}, f"page {k + 1} shows faces settled before"
            page.keyboard.press("ArrowRight")
            page.keyboard.press("Space")  # the second face marked wrong
            page.keyboard.press("Enter")
            expect += [(f, "reject" if i == 1 else "verify") for i, f in enumerate(shown)]
            page.wait_for_function(GRID_READY, arg=token, timeout=60_000)
            got = [(f, a) for f, a, _s in grid_rows(url_db, "gina")]
            assert got == expect, f"page {k + 1}: {len(shown)} faces confirmed, {len(got) - len(expect) + len(shown)} stored"
            body = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').innerText")
            assert f"{len(expect)} faces settled on grids this session" in body
            assert f"{len(shown) - 1} verified, 1 sent back to review" in body
        assert len({s for _f, _a, s in grid_rows(url_db, "gina")}) == 5  # five pages, each its own source


def test_the_page_buttons_are_on_screen_and_the_tile_numbers_explained(browser, tmp_path):  # noqa: F811
    url_db = grid_db(tmp_path, {"neutral": 60})
    for url in serve(url_db, tmp_path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "verify?annotator=gina&pays=0")
        page.wait_for_function(GRID_READY, arg="", timeout=60_000)
        assert page.evaluate("() => window.scrollY") == 0
        for button in (page.locator(".lbl-grid-ok"), page.get_by_role("button", name="Undo my last grid page")):
            box = button.bounding_box()  # on screen at 1400 x 1000 without scrolling
            assert box and 0 <= box["y"] and box["y"] + box["height"] <= 1000, box
        assert "the number on a face: the model's probability of neutral" in page.inner_text(".lbl-grid-top")
        tile = page.locator(".lbl-tile").first
        cap = tile.locator(".lbl-cap").inner_text()
        assert tile.get_attribute("title") == f"face #{tile.get_attribute('data-face')}: the model gives neutral {cap}"


def test_a_crowd_photo_is_shown_large_with_its_legend(browser, tmp_path):  # noqa: F811
    from .test_ui_browser import crowd_db

    url_db = crowd_db(tmp_path)
    for url in serve(url_db, tmp_path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "image?annotator=ivan")
        page.get_by_text("faces 1-12 of 15").wait_for(timeout=60_000)
        img = page.locator('[data-testid="stMain"] [data-testid="stImage"] img').first
        page.wait_for_function("(i) => i.complete && i.naturalWidth > 0", arg=img.element_handle())
        assert img.bounding_box()["width"] >= 600  # (it was drawn at 470 px beside the tiles)
        assert page.get_by_text("yellow: the face under the cursor · red: the faces of this page").count() == 1
