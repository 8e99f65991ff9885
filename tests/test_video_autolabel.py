"""Videos through `labeler autolabel` (the CLI): sampled frames with timestamps, face tracks with
their aggregated proposals and segments as sample_data/video/two_shots.json says, broken and
truncated files recorded with reasons, resuming a killed run, labeling a whole track or a segment."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.slow
from sqlalchemy import select

from labeler import store as S
from labeler.cli import main
from labeler.store.schema import Face, Image, ImagePath, TrackFace, TrackRow, Video, VideoFrame

from .conftest import SAMPLE
from .test_video import _faststart

CLIP = SAMPLE / "video" / "two_shots.mp4"
EXPECTED = json.loads((SAMPLE / "video" / "two_shots.json").read_text())


def run(capsys, *argv) -> str:
    rc = main(list(argv))
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


@pytest.fixture(scope="module")
def clip_db(tmp_path_factory):
    """One autolabel run over a folder with the clip (under a name that hides it is a video), a
    zero-byte .mp4, an MP4 cut before its index and a faststart MP4 cut in its media data."""
    d = tmp_path_factory.mktemp("videos")
    src = d / "in"
    src.mkdir()
    shutil.copyfile(CLIP, src / "interview.bin")
    (src / "empty.mp4").write_bytes(b"")
    data = CLIP.read_bytes()
    (src / "no_index.mp4").write_bytes(data[: len(data) // 2])
    fast = _faststart(data)
    (src / "cut_short.mp4").write_bytes(fast[: len(fast) * 6 // 10])
    url = f"sqlite:///{d / 'v.db'}"
    rc = main(["autolabel", str(src), "--db", url, "--workers", "1", "-q"])
    assert rc == 0
    return url, src


def _video_of(s, name):
    iid = s.scalar(select(ImagePath.image_id).where(ImagePath.path.like(f"%/{name}")))
    return s.get(Image, iid), s.scalar(select(Video).where(Video.image_id == iid))


def test_clip_gives_the_expected_frames_tracks_and_segments(clip_db):
    url, _ = clip_db
    store = S.Store(url)
    with store.session() as s:
        img, video = _video_of(s, "interview.bin")
        assert (img.status, img.format, video.status, video.decoded) == ("ingested", "mp4", "ok", EXPECTED["frames"])
        frames = s.scalars(select(VideoFrame).where(VideoFrame.video_id == video.id).order_by(VideoFrame.frame_index)).all()
        assert [f.frame_index for f in frames] == EXPECTED["sampled_frames"]
        assert all(f.t_ms == pytest.approx(1000.0 * f.frame_index / EXPECTED["fps"], abs=1) for f in frames)
        assert [f.frame_index for f in frames if f.why == "cut"] == [c["frame"] for c in EXPECTED["cuts"]]
        tracks = s.scalars(select(TrackRow).where(TrackRow.video_id == video.id).order_by(TrackRow.track_no)).all()
        assert len(tracks) == len(EXPECTED["tracks"])
        idx_of = {f.image_id: f.frame_index for f in frames}
        for t, exp in zip(tracks, EXPECTED["tracks"]):
            faces = s.execute(select(Face.image_id).join(TrackFace, TrackFace.face_id == Face.id)
                              .where(TrackFace.track_id == t.id).order_by(TrackFace.position)).scalars().all()
            assert (t.shot, [idx_of[i] for i in faces]) == (exp["shot"], exp["frames"])
            assert t.label == exp["label"] and t.att_label == exp["label"]
            assert sum(t.attention.values()) == pytest.approx(1.0, abs=1e-4) and t.stats["n"] == len(faces)
            want = exp.get("segments", [{"label": exp["label"], "frames": exp["frames"]}])
            assert [(g["label"], g["start_frame"], g["end_frame"]) for g in t.segments] == \
                [(w["label"], w["frames"][0], w["frames"][-1]) for w in want]
    # every video face is labeled through its track: none waits in the face queue or is audited
    assert S.review_queue_count(store) == 0 and S.pending_audits(store) == []
    recs = [r for r in S.iter_face_records(store) if r.face_id is not None]
    assert recs and {r.route for r in recs} == {"track"}
    assert {r.path.rsplit("#", 1)[1] for r in recs} == {f"frame={i}" for i in EXPECTED["sampled_frames"]}


def test_broken_and_truncated_videos_are_recorded_with_reasons(clip_db):
    url, _ = clip_db
    with S.Store(url).session() as s:
        empty, v = _video_of(s, "empty.mp4")
        assert (empty.status, empty.error, v) == ("broken", "empty file (0 bytes)", None)
        no_index, v = _video_of(s, "no_index.mp4")
        assert no_index.status == "broken" and v is None
        assert no_index.error.startswith("truncated MP4: box 'mdat'") and "no 'moov' index" in no_index.error
        cut, v = _video_of(s, "cut_short.mp4")  # frames before the damage are kept, the file is broken
        assert cut.status == "broken" and cut.error.startswith("truncated MP4: box 'mdat'")
        assert v.status == "truncated" and v.reason == cut.error and 0 < v.decoded < EXPECTED["frames"]
        assert s.scalar(select(VideoFrame.id).where(VideoFrame.video_id == v.id)) is not None


def test_status_and_a_second_run_add_nothing(clip_db, capsys):
    url, src = clip_db
    status = run(capsys, "status", "--db", url)
    assert "videos processed                       2" in status and "  of which truncated                   1" in status
    assert f"face tracks (labeling units) {'':6s}" in status
    with S.Store(url).session() as s:
        before = (s.scalar(select(VideoFrame.id).order_by(VideoFrame.id.desc()).limit(1)),
                  s.scalar(select(TrackRow.id).order_by(TrackRow.id.desc()).limit(1)))
    out = run(capsys, "autolabel", str(src), "--db", url, "--workers", "1", "-q")
    assert "videos processed" not in out and "broken, retried:   3" in out
    with S.Store(url).session() as s:
        after = (s.scalar(select(VideoFrame.id).order_by(VideoFrame.id.desc()).limit(1)),
                 s.scalar(select(TrackRow.id).order_by(TrackRow.id.desc()).limit(1)))
    assert after == before


class _DiesAfter:
    """A real detector that raises on its n-th frame, as a run killed in the middle of a video."""

    def __init__(self, n: int):
        from labeler.faces import detect as fd

        self.inner, self.left = fd.get_detector("mtcnn"), n

    def detect(self, rgb):
        self.left -= 1
        if self.left < 0:
            raise KeyboardInterrupt("killed")
        return self.inner.detect(rgb)


def test_a_killed_run_redoes_a_partial_video_cleanly(tmp_path, capsys):
    from labeler.pipeline import Autolabeler

    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(CLIP, src / "clip.mp4")
    url = f"sqlite:///{tmp_path / 'v.db'}"
    store = S.Store(url)
    with pytest.raises(KeyboardInterrupt):
        Autolabeler(store, detector=_DiesAfter(5)).run(src, progress=False)
    with store.session() as s:  # the video's file is ingested, nothing of it half-stored
        assert s.scalar(select(Video.id)) is None and s.scalar(select(VideoFrame.id)) is None
        assert s.scalar(select(Face.id)) is None
    assert len(S.pending_video_ids(store)) == 1
    out = run(capsys, "autolabel", str(src), "--db", url, "--workers", "1", "-q")
    assert "videos processed:  1 (13 frames sampled of 60 decoded" in out
    with store.session() as s:
        assert len(s.scalars(select(VideoFrame.id)).all()) == len(EXPECTED["sampled_frames"])
        assert len(s.scalars(select(TrackRow.id)).all()) == len(EXPECTED["tracks"])
    assert S.pending_video_ids(store) == set()


def test_label_a_whole_track_or_one_segment(clip_db):
    url, _ = clip_db
    store = S.Store(url)
    with store.session() as s:
        _, video = _video_of(s, "interview.bin")
        t3 = s.scalar(select(TrackRow.id).where(TrackRow.video_id == video.id, TrackRow.track_no == 3))
        t1 = s.scalar(select(TrackRow.id).where(TrackRow.video_id == video.id, TrackRow.track_no == 1))
    ids = S.label_track(store, t1, "happy", "ann")
    card = S.track_card(store, t1)
    assert len(ids) == len(card.face_ids) == len(EXPECTED["tracks"][0]["frames"])
    assert set(card.human) == set(card.face_ids) and set(card.human.values()) == {"happy"}
    # the second segment of track 3 (the edited face) gets its own label; the first is untouched
    S.label_track(store, t3, "surprise", "ann", segment=1)
    card = S.track_card(store, t3)
    seg1 = {f for f, g in zip(card.face_ids, card.face_segments) if g == 1}
    assert len(seg1) == 3 and set(card.human) == seg1 and set(card.human.values()) == {"surprise"}
    recs = {r.face_id: r for r in S.iter_face_records(store) if r.face_id in seg1}
    assert {r.label_source for r in recs.values()} == {"human:ann"} and {r.label for r in recs.values()} == {"surprise"}
    with store.session() as s:
        from labeler.store.schema import Annotation

        srcs = set(s.scalars(select(Annotation.source).where(Annotation.face_id.in_(seg1))))
    assert srcs == {f"track:{t3}/segment:1"}
    with pytest.raises(S.AnnotationError):
        S.label_track(store, t3, "happy", "ann", segment=7)
    # undo takes back one's newest track labeling (the segment), appending undo rows; then the track
    assert S.undo_track_label(store, "ann") == t3 and S.track_card(store, t3).human == {}
    assert S.undo_track_label(store, "ann") == t1 and S.track_card(store, t1).human == {}
    assert S.undo_track_label(store, "ann") is None
    with store.session() as s:
        from labeler.store.schema import Annotation

        assert len(s.scalars(select(Annotation).where(Annotation.action == "undo")).all()) == len(ids) + 3


def test_export_keeps_each_video_in_one_split_and_writes_the_track_csv(clip_db, tmp_path, capsys):
    import csv

    src_url, _ = clip_db
    db = tmp_path / "copy.db"
    import sqlite3

    with sqlite3.connect(src_url.removeprefix("sqlite:///")) as a, sqlite3.connect(db) as b:
        a.backup(b)  # with what is still in the -wal file
    url = f"sqlite:///{db}"
    store = S.Store(url)
    tracks = S.track_ids(store)
    assert len(tracks) == 6  # 3 of the clip, 3 of the truncated copy (frames before the damage)
    for t, lab in zip(tracks, ["happy", "sad", "surprise", "happy", "sad", "neutral"]):
        S.label_track(store, t, lab, "ann")
    cards = {t: S.track_card(store, t) for t in tracks}
    track_of = {f: t for t, c in cards.items() for f in c.face_ids}
    # without grouping the 36 frames (one image each) would be spread over train/val/test
    run(capsys, "export", "--db", url, "--format", "imagefolder", "--out", str(tmp_path / "if"))
    split_of: dict[int, set] = {}
    files = list((tmp_path / "if").rglob("*.jpg"))
    for p in files:
        sp, _cls = p.relative_to(tmp_path / "if").parts[:2]
        split_of.setdefault(track_of[int(p.name.split("_")[0])], set()).add(sp)
    assert len(files) == len(track_of) and set(split_of) == set(tracks)
    assert all(len(v) == 1 for v in split_of.values())  # a track never spans two splits
    by_video: dict[int, set] = {}
    for t, c in cards.items():
        by_video.setdefault(c.video_id, set()).update(split_of[t])
    assert all(len(v) == 1 for v in by_video.values())  # nor does a video
    assert all(p.name.split("_", 1)[1].startswith(("interview_", "cut_short")) for p in files)  # named after the video
    rows = list(csv.DictReader(open(tmp_path / "if" / "tracks.csv", encoding="utf-8")))
    assert [(r["track_id"], r["label"], r["source"], r["frames"]) for r in rows] == \
        [(str(t), lab, "human", str(len(cards[t].face_ids))) for t, lab in zip(tracks, ["happy", "sad", "surprise", "happy", "sad", "neutral"])]
    r0 = next(r for r in rows if r["video"] == "interview.bin" and r["track"] == "1")
    assert r0["shot"] == "0" and float(r0["start_s"]) == 0.0 and float(r0["end_s"]) == pytest.approx(3.0)
    assert json.loads(r0["probs"])["happy"] > 0.5 and abs(sum(json.loads(r0["attention_probs"]).values()) - 1) < 1e-3
    assert r0["split"] == next(iter(split_of[int(r0["track_id"])]))
    # the csv export: one row per frame face, its split that of its video; the track CSV beside it
    run(capsys, "export", "--db", url, "--format", "csv", "--out", str(tmp_path / "faces.csv"))
    faces = [r for r in csv.DictReader(open(tmp_path / "faces.csv", encoding="utf-8")) if r["face_id"]]
    assert {int(r["face_id"]) for r in faces} == set(track_of)
    assert all(r["image"].startswith(("interview.bin#frame=", "cut_short.mp4#frame=")) for r in faces)
    assert all({r["split"]} == split_of[track_of[int(r["face_id"])]] for r in faces)
    assert (tmp_path / "faces.csv.tracks.csv").exists()


@pytest.mark.both_backends
def test_videos_on_both_backends(db_url, tmp_path):
    """The same run on SQLite and PostgreSQL: frames, tracks (JSON aggregates), labeling a segment,
    and a rerun that adds nothing."""
    from labeler.pipeline import Autolabeler

    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(CLIP, src / "clip.mp4")
    (src / "empty.mp4").write_bytes(b"")
    store = S.Store(db_url)
    rep = Autolabeler(store).run(src, progress=False)
    assert [(d.status, d.frames, d.tracks) for d in rep.videos] == [("ok", len(EXPECTED["sampled_frames"]), 3)]
    tracks = [S.track_card(store, t) for t in S.track_ids(store)]
    assert [(c.label, len(c.face_ids), [g["label"] for g in c.segments]) for c in tracks] == \
        [(e["label"], len(e["frames"]), [g["label"] for g in e.get("segments", [{"label": e["label"]}])]) for e in EXPECTED["tracks"]]
    S.label_track(store, tracks[2].track_id, "surprise", "ann", segment=1)
    assert S.video_counts(store)["tracks_labeled"] == 0  # one segment of three tracks
    S.label_track(store, tracks[2].track_id, "happy", "ann", segment=0)
    assert S.video_counts(store)["tracks_labeled"] == 1
    rec = {r.track_id: r for r in S.track_records(store)}[tracks[2].track_id]
    assert (rec.label, rec.source, rec.n_human) == ("happy", "human", 6)  # 3 happy, 3 surprise: a tie goes to the earlier
    with store.session() as s:
        empty = s.scalar(select(Image).join(ImagePath).where(ImagePath.path.like("%/empty.mp4")))
        assert (empty.status, empty.error) == ("broken", "empty file (0 bytes)")
    rep = Autolabeler(store).run(src, progress=False)
    assert rep.videos == [] and len(S.track_ids(store)) == 3


def test_frames_in_worker_processes_give_the_same_tracks(clip_db, tmp_path, capsys):
    """--workers 2: the sampled frames are detected and proposed in the worker processes, in order."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(CLIP, src / "interview.bin")
    url = f"sqlite:///{tmp_path / 'w2.db'}"
    out = run(capsys, "autolabel", str(src), "--db", url, "--workers", "2", "-q")
    assert "videos processed:  1 (13 frames sampled of 60 decoded, 20 faces, 3 tracks" in out

    def tracks(u):
        with S.Store(u).session() as s:
            vid = s.scalar(select(Video.id).join(ImagePath, ImagePath.image_id == Video.image_id)
                           .where(ImagePath.path.like("%/interview.bin")))
            return [(t.shot, t.start_frame, t.end_frame, t.label, t.att_label, [g["label"] for g in t.segments], t.stats["mean"])
                    for t in s.scalars(select(TrackRow).where(TrackRow.video_id == vid).order_by(TrackRow.track_no))]

    one, two = tracks(clip_db[0]), tracks(url)
    assert [t[:6] for t in two] == [t[:6] for t in one] and len(two) == 3
    for a, b in zip(one, two):
        assert b[6] == pytest.approx(a[6], abs=1e-4)
