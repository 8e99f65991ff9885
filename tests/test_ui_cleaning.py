"""The cleaning flags in the app: gallery filters, sort by non-photo score, one decision for a
near-duplicate group (AppTest), and the data report on the Overview page (AppTest and a real
headless Chromium, as tests/test_ui_browser.py drives it)."""

from __future__ import annotations

import pytest

from labeler import store as S
from labeler.reports.datareport import TITLES

from .test_ui import click, config_home, db, make_app, rows  # noqa: F401 - fixtures
from .test_ui_browser import browser, serve  # noqa: F401 - fixtures


def test_gallery_near_copies_and_one_decision_for_the_group(db, monkeypatch):  # noqa: F811
    st = S.Store(db)
    (grp,) = S.face_groups(st)  # the sample's astronaut at several names and sizes
    assert len(grp.face_ids) >= 3
    at = make_app(db, monkeypatch, page="Gallery")
    at.selectbox(key="g_class").set_value("any").run()
    at.selectbox(key="g_flag").set_value("near_dup").run()
    assert not at.exception
    total, _ = S.gallery_page(st, "any", flag="near_dup")
    assert total >= len(grp.face_ids) and at.caption[0].value.startswith(f"{total} faces, has a near copy")
    assert {c.key for c in at.checkbox if c.key.startswith("g_")} >= {f"g_{f}" for f in grp.face_ids}
    at.selectbox(key=f"grp_{grp.face_ids[0]}").set_value("surprise").run()
    click(at, f"grp_{grp.face_ids[0]}_go")
    got = [(a.face_id, a.action, a.labels) for a in rows(db, annotator="alice")]
    assert got == [(f, "label", ["surprise"]) for f in grp.face_ids]  # appended, one per face
    assert all(S.accepted_labels(st, grp.face_ids)[f] == ("surprise", "human") for f in grp.face_ids)


def test_gallery_sorts_by_nonphoto_score_and_filters_text(db, monkeypatch):  # noqa: F811
    st = S.Store(db)
    at = make_app(db, monkeypatch, page="Gallery")
    at.selectbox(key="g_class").set_value("any").run()
    at.selectbox(key="g_sort").set_value("nonphoto").run()
    shown = [int(c.key[2:]) for c in at.checkbox if c.key.startswith("g_") and c.key[2:].isdigit()]
    scores = {r.face_id: r.nonphoto for r in S.iter_face_records(st) if r.face_id is not None}
    want = sorted(scores.values(), key=lambda v: (v is None, -(v or 0.0)))  # unmeasured last
    assert len(shown) == min(len(scores), 48) and [scores[f] for f in shown] == want[:len(shown)]
    assert shown and scores[shown[0]] == max(v for v in scores.values() if v is not None)
    at.selectbox(key="g_flag").set_value("text").run()  # no sample photo carries text
    assert at.caption[0].value.startswith("0 faces") and at.info


def test_overview_shows_the_data_report(db, monkeypatch):  # noqa: F811
    at = make_app(db, monkeypatch, page="Overview")
    assert not at.exception
    assert any(b.label.startswith("Download the report") for b in at.get("download_button"))


@pytest.mark.browser
def test_data_report_on_the_overview_page_in_a_browser(browser, sample_db, tmp_path):  # noqa: F811
    for base in serve(sample_db, tmp_path):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base + "overview?annotator=zoe")
        page.wait_for_selector("iframe", timeout=60_000)
        frame = page.frame_locator("iframe").last
        frame.locator("section#classes svg").wait_for(timeout=60_000)
        for key in TITLES:
            assert frame.locator(f"#{key} svg rect").count() >= 2 or key == "flags", key
            box = frame.locator(f"#{key} svg, #{key} .empty").first.bounding_box()
            assert box and box["width"] > 100, key
        assert "FER2013" in frame.locator("body").inner_text()
