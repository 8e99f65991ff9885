"""The data report from a tiny generated input, beside a tiny and the shipped FER2013 reference."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from labeler.reports.datareport import (BINS, REFERENCE_FILE, TITLES, FaceStats, Summary, build_report,
                                        load_reference, summarise)
from labeler.types import LABELS


def _items() -> list[FaceStats]:
    return [
        FaceStats("happy", 30, 15.0, 100.0, False, 5.0, ("small", "blurry"), "web"),
        FaceStats("happy", 120, 300.0, 180.0, False, -50.0, ("profile", "text"), "web"),
        FaceStats("sad", 48, 90.0, 60.0, True, None, (), "lab"),
        FaceStats(None, 400, 2500.0, 250.0, False, 0.0, ("nonphoto",), "web"),
    ]


def _tiny_reference() -> Summary:
    return summarise([FaceStats(c, 48, 100.0, 128.0, True, 0.0, (), "train") for c in LABELS], "REF")


class _Check(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.ids, self.svgs = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "br"):
            self.stack.append(tag)
        self.ids += [v for k, v in attrs if k == "id"]
        self.svgs += tag == "svg"

    def handle_startendtag(self, tag, attrs):
        self.ids += [v for k, v in attrs if k == "id"]

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def test_summary_bins_and_counts():
    s = summarise(_items())
    assert s.n_faces == 4 and s.grayscale == 1
    assert s.classes["happy"] == 2 and s.classes["sad"] == 1 and s.classes["unlabeled"] == 1
    assert s.hist["size"] == [0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1]  # 30, 48, 120, 400 (open last bin)
    assert s.n_measured["yaw"] == 3 and sum(s.hist["yaw"]) == 3
    assert s.flags == {"small": 1, "blurry": 1, "profile": 1, "text": 1, "nonphoto": 1}
    assert s.sources == {"web": 3, "lab": 1}
    assert Summary.from_json(s.to_json()) == s


def test_report_renders_every_section_side_by_side():
    page = build_report(_items(), _tiny_reference(), title="Team data")
    p = _Check()
    p.feed(page)
    p.close()
    assert not p.stack, p.stack
    assert set(TITLES) <= set(p.ids)
    assert p.svgs == len(TITLES)
    assert "REF (7 faces)" in page and "this data set (4 faces)" in page
    happy = re.search(r'id="classes".*?</section>', page, re.S).group(0)
    assert "50.0%" in happy and "14.3%" in happy  # 2 of 4 here, 1 of 7 in the reference
    assert "<script" not in page  # a static page


def test_shipped_fer2013_reference():
    if not REFERENCE_FILE.is_file():
        pytest.fail(f"{REFERENCE_FILE} is missing; make it with scripts/make/fer2013_reference.py")
    ref = load_reference()
    assert ref.n_faces == 28709 and sum(ref.classes.values()) == ref.n_faces
    assert ref.grayscale == ref.n_faces and ref.hist["size"][BINS["size"].index(48)] == ref.n_faces
    assert 0 < ref.n_measured["yaw"] <= 2000
    page = build_report(_items())
    assert "FER2013 train (28709 faces)" in page


@pytest.mark.browser
def test_report_in_a_real_browser(tmp_path):
    """Every chart is drawn with visible bars, nothing overflows the page (headless Chromium)."""

    from .conftest import chromium_exe, need_module

    sync_api = need_module("playwright.sync_api", "chromium", "pip install playwright")
    exe = chromium_exe()
    page_file = tmp_path / "report.html"
    page_file.write_text(build_report(_items(), _tiny_reference()), encoding="utf-8")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        try:
            page = b.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_file.as_uri())
            for key in TITLES:
                box = page.locator(f"#{key} svg").bounding_box()
                assert box and box["width"] > 300 and box["height"] > 20, key
                assert page.locator(f"#{key} svg rect").count() >= 2, key
            assert page.evaluate("document.documentElement.scrollWidth") <= 1200
            assert page.locator("h2").all_inner_texts() == [t for t, _ in TITLES.values()]
        finally:
            b.close()
