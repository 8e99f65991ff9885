"""The Tracks page in a real headless Chromium: one key labels every frame of a video's face track,
Shift+key only the current segment's (the sample database holds sample_data/video/two_shots.mp4)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labeler import store as S
from labeler.store.schema import Annotation

from .test_ui_browser import browser, idle, serve, shot, shots_dir  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def tracks_app(sample_db, tmp_path):
    yield from serve(sample_db, tmp_path)


def _labels(st, face_ids) -> dict[int, tuple]:
    with st.session() as s:
        cur = S.current_annotations(s, list(face_ids))
        return {f: tuple(a.labels or ()) + (a.source,) for f, anns in cur.items() for a in anns.values()}


def _wait_labeled(page, st, face_ids, n, timeout_ms=20_000) -> dict:
    waited = 0
    while waited < timeout_ms:
        got = _labels(st, face_ids)
        if len(got) >= n:
            return got
        page.wait_for_timeout(200)
        waited += 200
    return _labels(st, face_ids)


def test_one_key_labels_every_frame_of_the_track(browser, tracks_app, sample_db, tmp_path):  # noqa: F811
    st = S.Store(sample_db)
    t1, t2, t3 = S.track_ids(st)[:3]
    c1, c2, c3 = (S.track_card(st, t) for t in (t1, t2, t3))
    assert len(c1.face_ids) == 7 and len(c3.segments) == 2
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(tracks_app + "tracks?annotator=tess")
    idle(page, f"Track #{t1} ·")
    shot(page, shots_dir(tmp_path) / "tracks.png")

    page.keyboard.press("1")  # angry: the whole track
    idle(page, f"Track #{t2} ·")  # and on to the next track
    got = _wait_labeled(page, st, c1.face_ids + c2.face_ids, len(c1.face_ids))
    assert got == {f: ("angry", f"track:{t1}") for f in c1.face_ids}  # every frame of track 1, none of track 2

    page.keyboard.press("n")  # track 3: the person whose expression changes
    idle(page, f"Track #{t3} ·")
    page.keyboard.press("ArrowRight")  # its second segment
    idle(page, "▶ segment 2")
    page.keyboard.press("Shift+6")  # surprise, for that segment only
    idle(page, "segment 2: 3 frames labeled surprise")
    seg2 = [f for f, g in zip(c3.face_ids, c3.face_segments) if g == 1]
    got = _wait_labeled(page, st, c3.face_ids, len(seg2))
    assert got == {f: ("surprise", f"track:{t3}/segment:1") for f in seg2}
    shot(page, shots_dir(tmp_path) / "tracks_segment.png")
    page.keyboard.press("u")  # undo: the segment's labels go, track 1's stay
    idle(page, f"track #{t3}: your last labels undone")
    assert _labels(st, c3.face_ids) == {} and len(_labels(st, c1.face_ids)) == len(c1.face_ids)
    with st.session() as s:
        assert set(s.scalars(select(Annotation.annotator))) == {"tess"}
    st.engine.dispose()
