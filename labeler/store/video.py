"""Videos in the database: a processed video with its sampled frames, their faces and the face
tracks, written in one transaction (:func:`save_video`); the track as the labeling unit
(:func:`track_cards`, :func:`label_track`); what export and `status` need.

Each sampled frame is an ``images`` row of format ``frame`` (no path; its rule fields are the
video's) so that its faces are ordinary faces: crops, proposals, decisions, annotations and every
export format work on them unchanged. Their decisions have route ``track``: they are labeled
through their track, not one by one in the face queue, and ``labeler route`` leaves them alone.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional

from sqlalchemy import func, select, update

from labeler.faces.tracks import AttentionPool, Segment, TrackStats
from labeler.store.engine import Store
from labeler.store.faces import add_decision, add_proposal
from labeler.store.images import encode_flags
from labeler.store.records import current_annotations, vote
from labeler.store.review import AnnotationError, add_annotations, clean_annotator, undone_ids
from labeler.store.schema import (
    FRAME_FORMAT, TRACK_ROUTE, VIDEO_FORMATS, Annotation, Face, Image, ImagePath, TrackFace, TrackRow, Video, VideoFrame,
)
from labeler.types import LABELS, Decision, NewFace


@dataclass(frozen=True)
class NewFrame:
    frame_index: int
    t_ms: float
    shot: int
    why: str  # rate | cut
    width: int
    height: int
    faces: tuple[NewFace, ...]  # decisions are set by save_video (route track)


@dataclass(frozen=True)
class TrackMember:
    frame: int  # position in NewVideo.frames
    face: int  # position in that frame's faces
    segment: int  # index into the track's segments
    weight: float  # attention weight


@dataclass(frozen=True)
class NewTrack:
    track_no: int
    shot: int
    stats: TrackStats
    attention: AttentionPool
    segments: tuple[Segment, ...]
    members: tuple[TrackMember, ...]  # in time order
    start_frame: int
    end_frame: int
    start_ms: float
    end_ms: float


@dataclass(frozen=True)
class NewVideo:
    image_id: int  # the video file's images row
    container: str
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration_ms: float
    sample_fps: float
    status: str  # ok | truncated
    reason: str
    decoded: int
    cuts: tuple[tuple[int, float], ...]
    model: str  # FER model name@version
    frames: tuple[NewFrame, ...]
    tracks: tuple[NewTrack, ...]


@dataclass(frozen=True)
class TrackCard:
    """One track for the review page: its aggregate, segments and faces (in time order)."""

    track_id: int
    video_id: int
    track_no: int
    video_name: str
    shot: int
    start_ms: float
    end_ms: float
    label: Optional[str]  # statistics proposal (argmax of the mean)
    att_label: Optional[str]  # attention proposal
    mean: dict  # {class: p}
    attention: dict  # {class: p}
    segments: tuple[dict, ...]  # {label, start_ms, end_ms, start_frame, end_frame}
    face_ids: tuple[int, ...]
    face_segments: tuple[int, ...]
    face_t_ms: tuple[float, ...]
    human: dict  # face_id -> its current human label(s) (only labeled faces)


def _probs(values: Iterable[float], labels=LABELS) -> dict:
    return {lab: round(float(v), 6) for lab, v in zip(labels, values)}


def _seg_json(sg: Segment) -> dict:
    return {"first": sg.first, "last": sg.last, "start_frame": sg.start_frame, "end_frame": sg.end_frame,
            "start_ms": round(sg.start_ms, 3), "end_ms": round(sg.end_ms, 3), "label": sg.label, "mean": _probs(sg.mean)}


def _frame_sha(video_sha: str, frame_index: int) -> str:
    return hashlib.sha256(f"{video_sha}/frame/{frame_index}".encode()).hexdigest()


def done_video_ids(store: Store) -> set[int]:
    """Image ids of the video files processed to the end (those with a ``videos`` row)."""
    with store.session() as s:
        return set(s.scalars(select(Video.image_id)))


def pending_video_ids(store: Store) -> set[int]:
    """Video files (by their images row) that can be decoded and are not stored to the end yet."""
    with store.session() as s:
        return set(s.scalars(select(Image.id).where(Image.format.in_(VIDEO_FORMATS), Image.detected.is_(False))))


def mark_video_broken(store: Store, image_id: int, reason: str) -> None:
    """A video FFmpeg opened but could not decode a frame of: broken with the reason, not retried
    until its content changes (the walker reads broken files again on every run)."""
    with store.session() as s:
        s.execute(update(Image).where(Image.id == image_id, Image.detected.is_(False))
                  .values(status="broken", error=reason, detected=True).execution_options(synchronize_session=False))


def save_video(store: Store, v: NewVideo, detector: str) -> bool:
    """Store a processed video in one transaction: the ``videos`` row, one ``images`` row and one
    ``video_frames`` row per sampled frame, their faces (proposals; decision route ``track``), the
    tracks and their faces. A truncated video's file is marked broken with the reason (its frames
    before the damage are kept). False (nothing written) when the video was stored already."""
    with store.session() as s:
        claim = (update(Image).where(Image.id == v.image_id, Image.detected.is_(False))
                 .values(detected=True, detector=detector).execution_options(synchronize_session=False))
        if s.execute(claim).rowcount != 1 or s.scalar(select(Video.id).where(Video.image_id == v.image_id)):
            return False
        img = s.get(Image, v.image_id)
        if v.status != "ok":
            img.status, img.error = "broken", v.reason
        row = Video(image_id=v.image_id, container=v.container, codec=v.codec, width=v.width, height=v.height, fps=v.fps,
                    frame_count=v.frame_count, duration_ms=v.duration_ms, sample_fps=v.sample_fps, status=v.status,
                    reason=v.reason, decoded=v.decoded, cuts=[[int(i), round(float(t), 3)] for i, t in v.cuts])
        s.add(row)
        s.flush()
        label_of: dict[tuple[int, int], tuple[NewTrack, TrackMember]] = {}
        for tr in v.tracks:
            for m in tr.members:
                label_of[(m.frame, m.face)] = (tr, m)
        face_ids: dict[tuple[int, int], int] = {}
        for fi, fr in enumerate(v.frames):
            fimg = Image(sha256=_frame_sha(img.sha256, fr.frame_index), size_bytes=0, width=fr.width, height=fr.height,
                         format=FRAME_FORMAT, status="ingested", error="", rule_state=img.rule_state, rule_label=img.rule_label,
                         rule_words=img.rule_words, rule_source=img.rule_source, detected=True, detector=detector)
            s.add(fimg)
            s.flush()
            s.add(VideoFrame(video_id=row.id, image_id=fimg.id, frame_index=fr.frame_index, t_ms=fr.t_ms, shot=fr.shot, why=fr.why))
            for k, nf in enumerate(fr.faces):
                face = Face(image_id=fimg.id, idx=k, x1=float(nf.box[0]), y1=float(nf.box[1]), x2=float(nf.box[2]),
                            y2=float(nf.box[3]), det_score=float(nf.score),
                            landmarks=[list(map(float, pt)) for pt in nf.landmarks] if nf.landmarks else None,
                            whole_image=nf.whole_image, quality=dict(nf.quality), flags=encode_flags(nf.flags),
                            detector=detector, crop=nf.crop)
                s.add(face)
                s.flush()
                face_ids[(fi, k)] = face.id
                for p in nf.proposals:
                    add_proposal(s, face.id, p)
                tr, _m = label_of[(fi, k)]
                add_decision(s, fimg.id, face.id, Decision(
                    TRACK_ROUTE, tr.stats.label, f"video face: labeled with its track {tr.track_no} (proposal {tr.stats.label})",
                    0.0, v.model, kind=TRACK_ROUTE))
        for tr in v.tracks:
            st = tr.stats
            t = TrackRow(video_id=row.id, track_no=tr.track_no, shot=tr.shot, start_frame=tr.start_frame, end_frame=tr.end_frame,
                         start_ms=tr.start_ms, end_ms=tr.end_ms, model=v.model, label=st.label, att_label=tr.attention.label,
                         stats={"n": st.n, "mean": _probs(st.mean), "std": _probs(st.std), "min": _probs(st.min), "max": _probs(st.max)},
                         attention=_probs(tr.attention.probs), segments=[_seg_json(g) for g in tr.segments])
            s.add(t)
            s.flush()
            for pos, m in enumerate(tr.members):
                s.add(TrackFace(track_id=t.id, face_id=face_ids[(m.frame, m.face)], position=pos, segment=m.segment,
                                weight=float(m.weight)))
    return True


# ---------------------------------------------------------------- reading
def frame_image_ids(store: Store) -> set[int]:
    """The images that are sampled video frames (their faces are labeled through tracks)."""
    with store.session() as s:
        return set(s.scalars(select(VideoFrame.image_id)))


def video_face_ids(store: Store) -> set[int]:
    """The faces on sampled video frames."""
    with store.session() as s:
        return set(s.scalars(select(TrackFace.face_id)))


def frame_groups(store: Store) -> dict[int, int]:
    """frame image id -> its video's image id: export keeps a video (so each track) in one split."""
    with store.session() as s:
        return dict(s.execute(select(VideoFrame.image_id, Video.image_id).join(Video, Video.id == VideoFrame.video_id)).all())


def video_counts(store: Store) -> dict[str, int]:
    """For `labeler status`: videos (processed, truncated, waiting), sampled frames, tracks, and the
    tracks whose every face has a human label."""
    with store.session() as s:
        out = {"videos": s.scalar(select(func.count(Video.id))) or 0,
               "videos_truncated": s.scalar(select(func.count(Video.id)).where(Video.status != "ok")) or 0,
               "videos_waiting": s.scalar(select(func.count(Image.id)).where(Image.format.in_(VIDEO_FORMATS),
                                                                                Image.status == "ingested",
                                                                                Image.detected.is_(False))) or 0,
               "video_frames": s.scalar(select(func.count(VideoFrame.id))) or 0,
               "tracks": s.scalar(select(func.count(TrackRow.id))) or 0}
        members = s.execute(select(TrackFace.track_id, TrackFace.face_id)).all()
        labeled = set(current_annotations(s, None)) if members else set()
        open_tracks = {t for t, f in members if f not in labeled}
        out["tracks_labeled"] = len({t for t, _ in members} - open_tracks)
    return out


def track_ids(store: Store, only_open: bool = False) -> list[int]:
    """Track ids in video and time order; ``only_open``: those with a face without a human label."""
    with store.session() as s:
        ids = list(s.scalars(select(TrackRow.id).order_by(TrackRow.video_id, TrackRow.track_no)))
        if not only_open or not ids:
            return ids
        members = s.execute(select(TrackFace.track_id, TrackFace.face_id)).all()
        labeled = set(current_annotations(s, [f for _, f in members]))
        todo = {t for t, f in members if f not in labeled}
        return [t for t in ids if t in todo]


def track_card(store: Store, track_id: int) -> Optional[TrackCard]:
    with store.session() as s:
        t = s.get(TrackRow, track_id)
        if t is None:
            return None
        vimg = s.scalar(select(Video.image_id).where(Video.id == t.video_id))
        name = s.scalar(select(ImagePath.relpath).where(ImagePath.image_id == vimg).order_by(ImagePath.id).limit(1)) or f"video {vimg}"
        rows = s.execute(select(TrackFace.face_id, TrackFace.segment, VideoFrame.t_ms)
                         .join(Face, Face.id == TrackFace.face_id).join(VideoFrame, VideoFrame.image_id == Face.image_id)
                         .where(TrackFace.track_id == track_id).order_by(TrackFace.position)).all()
        anns = current_annotations(s, [r[0] for r in rows])
        human = {fid: vote(a)[0] for fid, a in anns.items() if a}
        segs = tuple({k: g[k] for k in ("label", "start_ms", "end_ms", "start_frame", "end_frame")} for g in (t.segments or []))
        return TrackCard(t.id, t.video_id, t.track_no, name, t.shot, t.start_ms, t.end_ms, t.label, t.att_label,
                         dict((t.stats or {}).get("mean", {})), dict(t.attention or {}), segs,
                         tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows), human)


def face_crops_of(store: Store, face_ids: Iterable[int]) -> dict[int, Optional[bytes]]:
    with store.session() as s:
        return dict(s.execute(select(Face.id, Face.crop).where(Face.id.in_(list(face_ids)))).all())


def label_track(store: Store, track_id: int, label: str, annotator: str, segment: Optional[int] = None,
                action: str = "label") -> list[int]:
    """Label every face of a track (or of one of its segments) in one transaction: one append-only
    annotation per face, source ``track:<id>`` (``track:<id>/segment:<k>``). Returns the ids."""
    with store.session() as s:
        q = select(TrackFace.face_id).where(TrackFace.track_id == track_id).order_by(TrackFace.position)
        if segment is not None:
            q = q.where(TrackFace.segment == int(segment))
        faces = list(s.scalars(q))
    if not faces:
        raise AnnotationError(f"track {track_id}" + (f" segment {segment}" if segment is not None else "")
                              + " has no faces: give a track id from `labeler status`/the Tracks page")
    src = f"track:{track_id}" + (f"/segment:{int(segment)}" if segment is not None else "")
    return add_annotations(store, [(f, action, [label] if action == "label" else None) for f in faces], annotator, source=src)


def undo_track_label(store: Store, annotator: str) -> Optional[int]:
    """Undo the annotator's newest track labeling (the whole track, or one segment): an ``undo`` row
    for each of their current annotations with that source. Returns the track id, None if nothing."""
    name = clean_annotator(annotator)
    mine = (Annotation.annotator == name, Annotation.action.in_(("label", "unusable")), Annotation.id.not_in(undone_ids()))
    with store.session() as s:
        last = s.scalar(select(Annotation).where(*mine, Annotation.source.like("track:%")).order_by(Annotation.id.desc()).limit(1))
        if last is None:
            return None
        for a in s.scalars(select(Annotation).where(*mine, Annotation.source == last.source)).all():
            s.add(Annotation(face_id=a.face_id, annotator=name, action="undo", labels=None, undoes_id=a.id, source=last.source))
        return int(last.source.split(":")[1].split("/")[0])


@dataclass(frozen=True)
class TrackRecord:
    """One row of the per-track CSV."""

    video: str
    video_image_id: int  # the video file's images row (export: the split of its frames)
    track_id: int
    track_no: int
    shot: int
    start_ms: float
    end_ms: float
    n_faces: int
    label: Optional[str]  # people's most common label once every face has one (a tie: the earlier frame's), else the model's proposal
    source: str  # human | model
    n_human: int
    mean: dict
    attention: dict
    segments: tuple[dict, ...]


def track_records(store: Store) -> list[TrackRecord]:
    """Every track with its accepted label (for the per-track CSV of an export)."""
    out = []
    with store.session() as s:
        members: dict[int, list[int]] = {}
        for t, f in s.execute(select(TrackFace.track_id, TrackFace.face_id).order_by(TrackFace.track_id, TrackFace.position)):
            members.setdefault(t, []).append(f)
        anns = current_annotations(s, None)
        names, image_of = {}, {}
        for vid, iid in s.execute(select(Video.id, Video.image_id)):
            image_of[vid] = iid
            names[vid] = s.scalar(select(ImagePath.relpath).where(ImagePath.image_id == iid).order_by(ImagePath.id).limit(1)) or ""
        for t in s.scalars(select(TrackRow).order_by(TrackRow.video_id, TrackRow.track_no)):
            faces = members.get(t.id, [])
            human = [vote(anns[f])[0] for f in faces if anns.get(f)]
            human = [h for h in human if h]
            # every face labeled by people: their most common label (segments may differ), else the proposal
            agreed = Counter(human).most_common(1)[0][0] if human and len(human) == len(faces) else None
            segs = tuple({k: g[k] for k in ("label", "start_ms", "end_ms", "start_frame", "end_frame")} for g in (t.segments or []))
            out.append(TrackRecord(names.get(t.video_id, ""), image_of[t.video_id], t.id, t.track_no, t.shot, t.start_ms, t.end_ms, len(faces),
                                   agreed or t.label, "human" if agreed else "model", len(human),
                                   dict((t.stats or {}).get("mean", {})), dict(t.attention or {}), segs))
    return out
