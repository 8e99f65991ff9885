"""The review app, driven through Streamlit's AppTest on a copy of the sample database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labeler import store as S

from streamlit.testing.v1 import AppTest  # noqa: E402

UI = str(Path(__file__).resolve().parent.parent / "labeler" / "ui" / "app.py")


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch) -> Path:
    """A private config folder (the UI keeps nothing there: the name is per browser), never the user's."""
    d = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(d))
    return d


def make_app(db: str, monkeypatch, name: str | None = "alice", page: str | None = None, audits: bool = False) -> AppTest:
    monkeypatch.setenv("LABELER_DB", db)
    at = AppTest.from_file(UI, default_timeout=60)
    if name:
        at.session_state["annotator"] = name
    at.session_state["audits_first"] = audits
    at.session_state["fast_card_on"] = False  # the server-drawn card (the browser card needs a browser: test_ui_browser)
    if page:
        at.session_state["page"] = page
    at.run()
    assert not at.exception, at.exception
    return at


def card_face(at: AppTest) -> int | None:
    for m in at.markdown:
        mm = re.match(r"#### Face #(\d+)", m.value)
        if mm:
            return int(mm.group(1))
    return None


def rows(db: str, **where) -> list[S.Annotation]:
    st = S.Store(db)
    with st.session() as s:
        q = s.query(S.Annotation).order_by(S.Annotation.id)
        for k, v in where.items():
            q = q.filter(getattr(S.Annotation, k) == v)
        out = q.all()
    st.engine.dispose()
    return out


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def ensure_review(db: str, n: int) -> None:
    """Make sure at least ``n`` faces wait for review: the sample data is mostly auto-accepted, so
    re-route some auto faces to review (a new, appended decision, as `labeler route` would)."""
    st = S.Store(db)
    need = n - S.review_queue_count(st)
    if need > 0:
        with st.session() as s:
            newest = S.latest_ids(s, S.DecisionRow)
            autos = [d for d in s.query(S.DecisionRow).filter(S.DecisionRow.id.in_(list(newest.values()))).order_by(S.DecisionRow.face_id)
                     if d.route == "auto"]
            for d in autos[-need:]:
                s.add(S.DecisionRow(image_id=d.image_id, face_id=d.face_id, route="review", kind="low_confidence", label=d.label,
                                 reason=f"no keyword; model unsure: {d.label} (0.50)", priority=2.5, source="test"))
    got = S.review_queue_count(st)
    st.engine.dispose()
    assert got >= n, f"the sample database should have {n} faces to review (has {got})"


@pytest.fixture
def db(sample_db) -> str:
    ensure_review(sample_db, 4)
    return sample_db


def test_annotator_must_name_themself(db, monkeypatch):
    at = make_app(db, monkeypatch, name=None)
    assert card_face(at) is None
    assert not [b for b in at.button if b.key == "lab_happy"]
    at.text_input(key="name_input").input("carol")
    click(at, "start")
    first = S.review_queue(S.Store(db), "carol")[0]
    assert card_face(at) == first
    assert at.session_state["annotator"] == "carol"


def test_the_reason_filter_offers_every_review_kind(db, monkeypatch):
    """The review page's "Reason" filter offers labeler.types.REVIEW_KINDS (the kinds route() writes:
    tests/test_routing.py) and filters the queue by the kind picked."""
    from labeler.types import REVIEW_KINDS

    at = make_app(db, monkeypatch)
    f = at.multiselect(key="f_kinds")
    assert list(f.options) == list(REVIEW_KINDS)
    st = S.Store(db)
    kinds = {k: S.review_queue(st, "alice", limit=1000, reason_kinds=[k]) for k in REVIEW_KINDS}
    have = next(k for k in REVIEW_KINDS if kinds[k])
    f.set_value([have]).run()
    assert not at.exception, at.exception
    assert card_face(at) == kinds[have][0]
    none = [k for k in REVIEW_KINDS if not kinds[k]]
    assert none, "the sample has faces of every review kind: pick another empty filter"
    at.multiselect(key="f_kinds").set_value([none[0]]).run()  # a kind with no face waiting: no card
    assert card_face(at) is None


def test_label_writes_annotation_and_advances(db, monkeypatch):
    st = S.Store(db)
    queue = S.review_queue(st, "alice", limit=2)
    before = S.review_queue_count(st, "alice")
    at = make_app(db, monkeypatch)
    assert card_face(at) == queue[0]
    click(at, "lab_happy")
    (a,) = rows(db)
    assert (a.face_id, a.annotator, a.action, a.labels, a.source) == (queue[0], "alice", "label", ["happy"], "ui")
    assert a.created_at is not None
    assert card_face(at) == queue[1]  # auto-advance
    assert S.review_queue_count(st, "alice") == before - 1
    assert queue[0] not in S.review_queue(st, "bob", limit=1000)  # gone for everyone


def test_accept_unusable_skip(db, monkeypatch):
    st = S.Store(db)
    q = S.review_queue(st, "alice", limit=3)
    sugg = S.face_card(st, q[0])
    sugg = sugg["decision_label"] or sugg["model_label"]
    at = make_app(db, monkeypatch)
    click(at, "accept")
    click(at, "unusable")
    click(at, "skip")
    got = [(a.face_id, a.action, a.labels) for a in rows(db, annotator="alice")]
    assert got == [(q[0], "label", [sugg]), (q[1], "unusable", None), (q[2], "skip", None)]
    assert q[2] not in S.review_queue(st, "alice", limit=1000)  # skipped: not shown to alice again
    assert q[2] in S.review_queue(st, "bob", limit=1000)  # but still to review for others
    assert card_face(at) not in q


def test_undo_returns_face_to_queue(db, monkeypatch):
    st = S.Store(db)
    first = S.review_queue(st, "alice")[0]
    at = make_app(db, monkeypatch)
    click(at, "lab_sad")
    assert card_face(at) != first
    click(at, "undo")
    lab, und = rows(db)
    assert (und.action, und.undoes_id, und.annotator, und.face_id) == ("undo", lab.id, "alice", first)
    assert card_face(at) == first  # shown again right away
    assert first in S.review_queue(st, "bob", limit=1000)
    with st.session() as s:
        assert first not in S.current_annotations(s, [first])


def test_two_labels(db, monkeypatch):
    first = S.review_queue(S.Store(db), "alice")[0]
    at = make_app(db, monkeypatch)
    click(at, "second")
    click(at, "lab_happy")
    assert rows(db) == []  # held until the second label
    assert card_face(at) == first
    click(at, "lab_surprise")
    (a,) = rows(db)
    assert (a.face_id, a.labels) == (first, ["happy", "surprise"])


def test_other_annotator_label_leaves_queue(db, monkeypatch):
    st = S.Store(db)
    q = S.review_queue(st, "alice", limit=2)
    at = make_app(db, monkeypatch)
    assert card_face(at) == q[0]
    S.add_annotation(st, q[0], "bob", "label", ["fear"])  # bob labels it in his own session
    at.run()
    assert card_face(at) == q[1]
    click(at, "lab_angry")
    assert [(a.annotator, a.face_id) for a in rows(db)] == [("bob", q[0]), ("alice", q[1])]


def test_filter_by_proposed_class(db, monkeypatch):
    st = S.Store(db)
    at = make_app(db, monkeypatch)
    cls = S.face_card(st, card_face(at))["decision_label"]
    at.sidebar.multiselect(key="f_prop").set_value([cls]).run()
    fid = card_face(at)
    assert S.face_card(st, fid)["decision_label"] == cls
    said = [c.value for c in at.caption if " to review" in c.value]
    assert said and said[0].startswith(f"{S.review_queue_count(st, 'alice', proposed=[cls])} to review")


def test_the_review_page_leads_with_the_flow_and_sends_grid_work_to_verify(db, monkeypatch):
    """The flow's next steps sit on top of the Review page: on the sample, the faces are likely-right
    happy faces, so a grid page comes first, and its button opens Verify on that class."""
    from labeler.config import Config
    from labeler.reports.effort import effort

    e = effort(S.Store(db), Config().routing)
    assert e.steps and e.steps[0].kind == "grid"
    at = make_app(db, monkeypatch)
    flow = [c.value for c in at.caption if c.value.startswith("**Flow**")]
    assert flow == [f"**Flow** · {e.next_steps}"]
    at.button(key="flow_verify").click().run()
    assert at.session_state["grid_class"] == e.steps[0].label and at.session_state["page"] == "Verify"


def test_gallery_relabel(db, monkeypatch):
    st = S.Store(db)
    acc = S.accepted_labels(st)
    if not acc:  # make sure there is something accepted
        for fid in S.review_queue(st, limit=2):
            S.add_annotation(st, fid, "seed", "label", ["happy"])
        acc = S.accepted_labels(st)
    cls = max({lab for lab, _k in acc.values()}, key=lambda c: sum(1 for v in acc.values() if v[0] == c))
    ids = sorted(f for f, (lab, _k) in acc.items() if lab == cls)[:2]
    new = "disgust" if cls != "disgust" else "fear"
    at = make_app(db, monkeypatch, page="Gallery")
    at.selectbox(key="g_class").set_value(cls).run()
    assert at.caption[0].value.startswith(f"{len([v for v in acc.values() if v[0] == cls])} faces accepted as")
    for fid in ids:
        at.checkbox(key=f"g_{fid}").check()
    at.selectbox(key="g_new").set_value(new)
    at.run()
    click(at, "g_relabel")
    got = [(a.face_id, a.action, a.labels, a.annotator) for a in rows(db, annotator="alice")]
    assert got == [(fid, "label", [new], "alice") for fid in ids]
    acc2 = S.accepted_labels(st, ids)
    assert all(acc2[f] == (new, "human") for f in ids)
    assert all(not at.checkbox(key=f"g_{f}").value for f in ids if [c for c in at.checkbox if c.key == f"g_{f}"])


def test_image_view_pages_a_crowd_by_keys(db, monkeypatch):
    from labeler.active import reading_order
    from labeler.ui.views import image as page

    st = S.Store(db)
    img = S.image_list(st, min_faces=1)[0]  # the image with the most faces
    v = S.image_view(st, img["image_id"])
    order = reading_order([(f["face_id"], *f["box"]) for f in v["faces"]])
    monkeypatch.setattr(page, "PER_PAGE", 2)  # a crowd of a few faces: pages of 2
    at = make_app(db, monkeypatch, page="Image")
    at.selectbox(key="image_id").set_value(img["image_id"]).run()
    assert not at.exception
    click(at, "im_lab_happy")  # face 1 (reading order), the cursor moves to face 2
    click(at, "im_unusable")
    if len(order) > 2:
        assert at.caption[0].value.startswith(f"faces 3-{min(4, len(order))} of {len(order)}")
        click(at, "im_prev")
        assert at.caption[0].value.startswith("faces 1-2 of")
    got = [(a.face_id, a.action, a.labels) for a in rows(db, annotator="alice")]
    assert got == [(order[0], "label", ["happy"]), (order[1], "unusable", None)][:len(got)] and len(got) == min(2, len(order))


def _uneven_crowd(tmp_path) -> str:
    """A generated photo of faces of different sizes in uneven rows, all waiting for review: a big
    face whose left edge is left of a small face's but whose centre is right of it, a face a little
    lower than its row, and a second row."""
    from PIL import Image as PILImage

    photo = tmp_path / "crowd.jpg"
    PILImage.new("RGB", (800, 500), (90, 120, 160)).save(photo, "JPEG")
    buf = photo.read_bytes()
    url = f"sqlite:///{tmp_path / 'crowd.db'}"
    st = S.Store(url)
    boxes = [(300, 250, 360, 320), (0, 0, 200, 100), (60, 30, 90, 60), (420, 20, 480, 90), (250, 10, 310, 80), (520, 240, 580, 310)]
    with st.session() as s:
        img = S.Image(sha256="d" * 64, size_bytes=len(buf), width=800, height=500, status="ingested", detected=True)
        img.paths = [S.ImagePath(path=str(photo), root=str(tmp_path), relpath="crowd.jpg")]
        s.add(img)
        s.flush()
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            f = S.Face(image_id=img.id, idx=i, x1=x1, y1=y1, x2=x2, y2=y2, crop=buf)
            s.add(f)
            s.flush()
            s.add(S.DecisionRow(image_id=img.id, face_id=f.id, route="review", kind="multi_face", label="happy",
                                reason="crowd", priority=1.0, source="test"))
    st.engine.dispose()
    return url


def _whole_sample_crowd(sample_db: str) -> str:
    """The sample's group photo with every face re-routed to review."""
    st = S.Store(sample_db)
    img = S.image_list(st, min_faces=2)[0]  # the photo with the most faces
    with st.session() as s:
        fids = [f.id for f in s.query(S.Face).filter(S.Face.image_id == img["image_id"])]
        newest = S.latest_ids(s, S.DecisionRow)
        for d in s.query(S.DecisionRow).filter(S.DecisionRow.id.in_([newest[f] for f in fids if f in newest])):
            s.add(S.DecisionRow(image_id=d.image_id, face_id=d.face_id, route="review", kind="low_confidence", label=d.label,
                                reason="test: the whole crowd to review", priority=2.5, source="test"))
    st.engine.dispose()
    return sample_db


@pytest.mark.parametrize("crowd", ["sample", "uneven"])
def test_the_review_queue_and_the_image_page_order_a_crowd_the_same_way(crowd, sample_db, tmp_path, monkeypatch):
    """Every face of a crowd photo waiting for review: the order the review queue serves them in is
    the order the Image page numbers and walks them in (labeling face after face)."""
    url = _whole_sample_crowd(sample_db) if crowd == "sample" else _uneven_crowd(tmp_path)
    st = S.Store(url)
    img = S.image_list(st, min_faces=2)[0]
    with st.session() as s:
        fids = [f.id for f in s.query(S.Face).filter(S.Face.image_id == img["image_id"])]
    assert len(fids) >= 3
    queued = [f for f in S.review_queue(st, "alice", limit=10_000) if f in set(fids)]
    assert sorted(queued) == sorted(fids)
    if crowd == "uneven":  # stored order: the lower-row face first; the small face before the big one
        assert queued == [fids[2], fids[1], fids[4], fids[3], fids[0], fids[5]]
    at = make_app(url, monkeypatch, page="Image")
    at.selectbox(key="image_id").set_value(img["image_id"]).run()
    for _ in fids:
        click(at, "im_lab_happy")  # labels the face under the cursor, which moves to the next in the page's order
    walked = [a.face_id for a in rows(url, annotator="alice")]
    assert walked == queued


def test_image_view_opens_on_next_pending_photo(db, monkeypatch):
    from labeler.store import grid as G

    want = G.next_pending_image(S.Store(db), "alice")
    at = make_app(db, monkeypatch, page="Image")
    assert at.selectbox(key="image_id").value == want


def test_hide_until_answered(db, monkeypatch):
    st = S.Store(db)
    q = S.review_queue(st, "alice", limit=2)
    card = S.face_card(st, q[0])
    at = make_app(db, monkeypatch, name=None)
    at.session_state["annotator"] = "alice"
    at.session_state["hide_mode"] = True
    at.run()
    text = " ".join(m.value for m in at.markdown)
    assert "Proposal hidden" in text and "Why review" not in text and "**Model**" not in text
    assert at.button(key="accept").label == "Accept: nothing proposed (press 1-7)"
    click(at, "accept")  # Enter with nothing shown to accept: nothing stored, and the card says why
    assert card_face(at) == q[0] and not rows(db, annotator="alice")
    assert any("has none shown: press the class you see (1-7)" in c.value for c in at.caption)
    click(at, "lab_fear")
    assert card_face(at) == q[1]
    reveal = " ".join(i.value for i in at.info)
    assert f"Face #{q[0]}: you said **label fear**" in reveal and (card["decision_label"] or card["model_label"]) in reveal


def test_annotator_per_browser_never_per_server(db, monkeypatch, config_home):
    at = make_app(db, monkeypatch, name=None)
    at.text_input(key="name_input").input("carol")
    click(at, "start")
    assert at.query_params["annotator"] in (["carol"], "carol") and card_face(at) is not None
    assert not config_home.exists()  # nothing kept on the server
    again = make_app(db, monkeypatch, name=None)  # a new session (another browser): no name in its URL or cookie
    assert not again.session_state["annotator"] if "annotator" in again.session_state else True
    assert again.text_input(key="name_input") is not None and card_face(again) is None
    linked = AppTest.from_file(UI, default_timeout=60)  # a link with the name in it
    linked.query_params["annotator"] = "dora"
    linked.session_state["audits_first"] = False
    linked.session_state["fast_card_on"] = False
    linked.run()
    assert linked.session_state["annotator"] == "dora" and card_face(linked) is not None
    click(linked, "change_name")
    assert "annotator" not in linked.query_params and card_face(linked) is None


def test_grid_page_lists_classes(db, monkeypatch):
    from labeler.store import grid as G

    st = S.Store(db)
    classes = G.grid_classes(st, "review", "alice")
    at = make_app(db, monkeypatch, page="Verify")
    assert not at.exception
    if classes:
        top = max(classes, key=lambda c: c.faces).label
        assert at.selectbox(key="grid_class").value == top
        page = at.session_state["grid_page"]
        assert [f.face_id for f in page[2]] == [f.face_id for f in G.grid_page(st, top, "review", "alice", 48)]


def test_review_card_jumps_to_image_view(db, monkeypatch):
    at = make_app(db, monkeypatch)
    card = S.face_card(S.Store(db), card_face(at))
    click(at, "open_img")
    assert at.session_state["page"] == "Image"
    assert at.selectbox(key="image_id").value == card["image_id"]


def _metric(at: AppTest, label: str) -> str:
    (m,) = [m for m in at.metric if m.label == label]
    return str(m.value)


def test_overview_counts_match_db(db, monkeypatch):
    st = S.Store(db)
    fid = S.review_queue(st)[0]
    S.add_annotation(st, fid, "bob", "label", ["angry"])
    S.add_annotation(st, fid, "dora", "skip")
    c = S.status_counts(st)
    at = make_app(db, monkeypatch, page="Overview")
    assert _metric(at, "Faces") == str(c["faces"])
    with st.session() as s:
        labeled = set(S.current_annotations(s))
    assert labeled == {fid}
    assert _metric(at, "Reviewed") == "1"
    assert _metric(at, "Remaining") == str(c["route_review"] - 1)
    assert _metric(at, "Auto-accepted") == str(c.get("route_auto", 0))
    assert _metric(at, "No face (images)") == str(c.get("route_no_face", 0))
    # auto-accept's state, as `labeler status` says it: a sample this small is not worth auditing
    assert _metric(at, "Audits answered") == "0 / 0"
    assert any("too few for blind audits to pay for themselves" in x.value for x in at.caption)
    said = [x.value for x in at.caption if "faces of video frames" in x.value]
    assert c["route_track"] > 0 and said == [f"{c['route_track']} faces of video frames are labeled per track, on the Tracks page (not in Remaining)."]
    assert len(at.get("vega_lite_chart")) >= 3  # progress, classes, agreement, annotators
    tables = [d.value for d in at.dataframe]
    pivot = [t for t in tables if "skip" in t.columns or "label" in t.columns]
    assert pivot and pivot[0].loc["bob", "label"] == 1 and pivot[0].loc["dora", "skip"] == 1


def test_training_panel_hook(db, monkeypatch):
    """The button calls the training package's entry point on the app's database and shows the result."""
    import labeler.training as training
    from labeler.training import TrainResult

    at = make_app(db, monkeypatch, page="Overview")
    has = [b for b in at.button if b.key == "train_head"]
    real_has = callable(getattr(training, "train", None))
    assert bool(has) == real_has
    assert has, "the Overview page shows the training panel"
    calls = []

    def train(store, mode="head", **kw):
        calls.append((store.url, mode))
        return TrainResult(name="head-test", version="1", sidecar="s.json", onnx="s.onnx", promoted=True,
                           reason="better on held-out faces", metrics={"after": {"accuracy": 0.5, "n": 3}})

    monkeypatch.setattr(training, "train", train)
    at.run()
    assert calls == []  # nothing trains until the button is pressed
    click(at, "train_head")
    assert calls == [(S.resolve_url(db), "head")]
    assert any(j.value and "accuracy" in str(j.value) for j in at.json)
    assert any("head-test@1" in s.value and "now the default" in s.value for s in at.success)


def test_key_press_for_a_card_no_longer_shown_is_dropped(db, monkeypatch):
    """A key that reaches the old card's button after the next card was shown must not relabel
    the old face (the press was meant for the next card)."""
    at = make_app(db, monkeypatch)
    first = card_face(at)
    at.session_state["card_face"] = -1  # as if the screen had already moved on to another card
    click(at, "lab_sad")
    assert rows(db) == []
    assert card_face(at) == first  # nothing happened to the queue; the card is shown again
    click(at, "lab_sad")  # pressed again on the card now shown: recorded
    assert [(a.face_id, a.labels) for a in rows(db)] == [(first, ["sad"])]
