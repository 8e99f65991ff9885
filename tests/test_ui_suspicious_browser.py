"""The "suspicious labels first" queue on the browser review card, in a real headless Chromium: a
link with ``?queue=suspicious`` opens it, keys answer it, the database has the answers."""

from __future__ import annotations

import pytest

from labeler import store as S
from labeler.types import LABELS

from .conftest import need_module
from .test_ui_browser import browser, serve, shot, shots_dir  # noqa: F401 - fixtures
from .test_ui_fastcard_browser import SHOWN_SYNCED, mine

need_module("cleanlab", "quality", "pip install 'labeler[quality]'")
need_module("crowdkit", "quality", "pip install 'labeler[quality]'")

pytestmark = pytest.mark.browser


@pytest.fixture
def suspicious_app(sample_db, tmp_path):
    from .test_ui_suspicious import wrong_labels

    wrong = wrong_labels(sample_db, tmp_path)  # three wrong imported labels among right ones
    for url in serve(sample_db, tmp_path):
        yield url, wrong


def card_text(page) -> str:
    return page.evaluate("() => document.querySelector('.lbl-card').innerText")


def test_a_link_opens_the_suspicious_queue_and_keys_answer_it(browser, suspicious_app, sample_db, tmp_path):  # noqa: F811
    url, wrong = suspicious_app
    st = S.Store(sample_db)
    order = S.suspicious_queue(st, "ivy", S.issue_map(st))
    st.engine.dispose()
    assert set(order) == set(wrong)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url + "?annotator=ivy&audits=0&queue=suspicious")
    page.wait_for_function(SHOWN_SYNCED, arg=order[0], timeout=30_000)
    assert page.evaluate("() => document.querySelector('.lbl-card').dataset.mode") == "suspicious"
    text = card_text(page)
    assert f"Suspicious label: {wrong[order[0]]} (imported), the model prefers happy" in text
    assert "3 suspicious labels left to check" in text and "issue score" in text
    shot(page, shots_dir(tmp_path) / "review_suspicious.png")
    page.keyboard.press(str(LABELS.index("happy") + 1))  # relabeled
    page.wait_for_function(SHOWN_SYNCED, arg=order[1], timeout=30_000)
    page.keyboard.press("Enter")  # the current label confirmed
    page.wait_for_function(SHOWN_SYNCED, arg=order[2], timeout=30_000)
    assert "1 suspicious labels left to check" in card_text(page)
    got, _ids = mine(sample_db, "ivy")
    assert got == [(order[0], "label", ["happy"], None), (order[1], "label", [wrong[order[1]]], None)]
    st = S.Store(sample_db)
    with st.session() as s:  # appended: the imported labels are still there
        imported = s.query(S.Annotation).filter(S.Annotation.annotator == "import", S.Annotation.face_id.in_(order)).count()
    assert imported == 3
    assert S.suspicious_queue(st, "ivy", S.issue_map(st)) == [order[2]]
    st.engine.dispose()
