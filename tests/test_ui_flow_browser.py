"""The guided review flow in a real headless Chromium (issue 31): the audits the project's policy asks
for come first, then the Review page sends the likely-right faces to a Verify grid page, then the
face the grid sent back is a card; every decision is stored once, in that order, with its seconds."""

from __future__ import annotations

import pytest

from labeler import store as S
from labeler.types import LABELS

from .test_ui_browser import browser, serve  # noqa: F401 - fixtures
from .test_ui_session_browser import GRID_READY, IDLE, SYNCED, actions, wait_rows

pytestmark = pytest.mark.browser


def test_audits_then_a_grid_page_then_a_card(browser, sample_db, tmp_path, monkeypatch):
    from .test_ui import ensure_review
    from labeler.config import load_config

    ensure_review(sample_db, 11)
    cfg = tmp_path / "project.toml"
    cfg.write_text("[routing]\naudit_always = true\n")  # the sample is too small for audits to pay: ask anyway
    monkeypatch.setenv("LABELER_CONFIG", str(cfg))
    store = S.Store(sample_db)
    asked = S.pending_audits(store, load_config(cfg).routing)
    assert asked, "the policy asks for audits on the sample"
    server = serve(sample_db, tmp_path)  # (kept: the server stops when the generator is closed)
    url = next(server)
    try:
        _flow(browser, url, sample_db, store, asked)
    finally:
        server.close()


def _flow(browser, url, sample_db, store, asked) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url + "review?annotator=flow")
    # 1. the audit cards, answered with the class the model proposes
    for i, fid in enumerate(asked):
        page.wait_for_function(SYNCED, arg=fid, timeout=60_000)
        assert page.evaluate("() => document.querySelector('.lbl-card').dataset.mode") == "audit"
        page.wait_for_timeout(150)  # a person's look at the face
        page.keyboard.press(str(LABELS.index(S.face_card(store, fid)["model_label"]) + 1))
    rows = wait_rows(page, sample_db, "flow", len(asked))
    assert [r[0] for r in rows] == list(asked) and {r[3] for r in rows} == {S.AUDIT_SOURCE}
    # 2. the flow now leads to a grid page: its button opens Verify on that class
    page.reload()
    page.get_by_role("button", name="Verify: happy").click(timeout=60_000)
    page.wait_for_function(GRID_READY, arg="", timeout=60_000)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Space")  # the first face is wrong: it goes back to review as a card
    page.keyboard.press("Enter")
    n_grid = page.evaluate("() => document.querySelectorAll('.lbl-grid .lbl-tile').length") or 0
    rows = wait_rows(page, sample_db, "flow", len(asked) + 1)
    grid = [r for r in rows[len(asked):] if r[3].startswith("grid:")]
    assert grid and {r[1] for r in grid} <= {"verify", "reject"} and sum(r[1] == "reject" for r in grid) == 1
    rejected = next(r[0] for r in grid if r[1] == "reject")
    # 3. back on Review, the face the grid sent back is a card
    page.goto(url + "review?annotator=flow")
    page.wait_for_function(IDLE, timeout=60_000)
    page.wait_for_function(SYNCED, arg=None, timeout=60_000)
    shown = page.evaluate("() => +document.querySelector('.lbl-card').dataset.face")
    assert shown == rejected and page.evaluate("() => document.querySelector('.lbl-card').dataset.mode") == "review"
    page.keyboard.press(str(LABELS.index("sad") + 1))
    rows = wait_rows(page, sample_db, "flow", len(asked) + len(grid) + 1)
    assert rows[-1][:2] == (rejected, "label") and rows[-1][3] == "ui"
    # every decision kept its seconds and its kind
    with store.session() as s:
        timed = [(a.effort, a.seconds) for a in s.query(S.Annotation).filter(S.Annotation.annotator == "flow")
                 .order_by(S.Annotation.id)]
    kinds = [k for k, _ in timed]
    assert kinds[: len(asked)] == ["audit"] * len(asked) and kinds[-1] == "card"
    assert {"grid_face", "grid_mark"} <= set(kinds) or ("grid_mark" in kinds and n_grid <= 1)
    assert all(sec is not None and 0 < sec <= 60 for _, sec in timed)
    assert timed[0][1] >= 0.1  # the look before the first audit key
