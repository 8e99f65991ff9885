"""The tables. Every table that records a label is append-only: proposals, decisions and
annotations are never updated, so the history of every face is its audit trail.

Column sizes: free text (paths, names, sources, reasons, flags, annotators) is unbounded ``Text`` on
every backend (migration 0005), so a long path or name never fails on PostgreSQL; ``String(N)`` is
kept only for closed sets written by the code (states, routes, kinds, labels, actions, hashes).
A path is unique through ``image_paths.path_key``, a sha256 of it (migration 0006): PostgreSQL's btree
entries hold at most ~2,700 bytes, so an index on the path text itself refused long paths."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# ---- shared constants (the bottom layer: every store module may use them)

#: the annotation source of an audit answer (a blind label: the proposal hidden until answered)
AUDIT_SOURCE = "audit"
#: ``images.format`` of a sampled frame
FRAME_FORMAT = "frame"
#: the route of a face labeled through its track
TRACK_ROUTE = "track"
#: containers a video image may have as ``images.format`` (labeler.ingest.video.sniff_video)
VIDEO_FORMATS = ("mp4", "mov", "avi", "mkv", "webm")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Image(Base):
    """One distinct content (sha256); every path that had it is in ImagePath."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    format: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)  # ingested | broken
    error: Mapped[str] = mapped_column(Text, default="")
    # filename rules, from the first path seen (re-evaluated by `labeler rules apply`)
    rule_state: Mapped[str] = mapped_column(String(16), default="none", index=True)  # labeled|ambiguous|none
    rule_label: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    rule_words: Mapped[str] = mapped_column(Text, default="")  # json list of [word, class]
    rule_source: Mapped[str] = mapped_column(Text, default="")
    # pipeline progress: ingested -> detected (faces stored) ; proposals/decisions are per face
    detected: Mapped[bool] = mapped_column(Boolean, default=False)
    detector: Mapped[str] = mapped_column(Text, default="")
    # cleaning (labeler.faces.cleaning, migration 0007); NULL = not measured yet
    phash: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)  # 64-bit DCT hash, signed
    text_share: Mapped[Optional[float]] = mapped_column(Float, nullable=True)  # image area under text boxes
    nonphoto: Mapped[Optional[float]] = mapped_column(Float, nullable=True)  # score in [0, 1]
    dup_group: Mapped[Optional[int]] = mapped_column(Integer, nullable=True, index=True)  # smallest image id
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paths: Mapped[list["ImagePath"]] = relationship(back_populates="image", order_by="ImagePath.id")
    faces: Mapped[list["Face"]] = relationship(back_populates="image", order_by="Face.idx")


def path_key(path: str) -> str:
    """What makes a path unique in ``image_paths``: the sha256 of its text (an index on the text itself
    refuses long paths on PostgreSQL). Migration 0006 fills old rows by the same rule."""
    return hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()


class ImagePath(Base):
    __tablename__ = "image_paths"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)  # absolute
    path_key: Mapped[str] = mapped_column(
        String(64), unique=True, default=lambda ctx: path_key(ctx.get_current_parameters()["path"]))
    root: Mapped[str] = mapped_column(Text, default="")  # the folder given to ingest
    relpath: Mapped[str] = mapped_column(Text, default="")  # path relative to root
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    image: Mapped[Image] = relationship(back_populates="paths")


class Face(Base):
    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("image_id", "idx"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)  # 0..n-1 within the image
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    det_score: Mapped[float] = mapped_column(Float, default=0.0)
    landmarks: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # [[x, y] * 5]
    whole_image: Mapped[bool] = mapped_column(Boolean, default=False)
    quality: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # {det_score, size, blur, yaw}
    flags: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    detector: Mapped[str] = mapped_column(Text, default="")
    crop: Mapped[Optional[bytes]] = mapped_column(LargeBinary, nullable=True)  # aligned crop, PNG/JPEG bytes
    phash: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)  # of the detector box, signed
    text_near: Mapped[Optional[bool]] = mapped_column(Boolean, nullable=True)  # text on or beside the face
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    image: Mapped[Image] = relationship(back_populates="faces")


class Proposal(Base):
    """A label proposed for a face by a rule or a model. Append-only."""

    __tablename__ = "proposals"
    __table_args__ = (Index("ix_proposals_face_kind", "face_id", "source_kind", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    source_kind: Mapped[str] = mapped_column(String(16))  # rule | model | import
    source: Mapped[str] = mapped_column(Text)  # rules file / model name@version
    label: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    prob: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    probs: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # {label: p}
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DecisionRow(Base):
    """A routing decision, for a face (or for an image with no face / broken). Append-only."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_face", "face_id", "id"),
        Index("ix_decisions_image", "image_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    face_id: Mapped[Optional[int]] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), nullable=True)
    route: Mapped[str] = mapped_column(String(16))  # auto | review | no_face | broken
    #: labeler.types.Decision.kind: why, as a closed set (the review queue filters on it)
    kind: Mapped[str] = mapped_column(String(32), default="", server_default="")
    label: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(Text, default="")
    #: the auto-accept bucket (labeler.routing.candidate) and the precision estimate the route was
    #: decided on (labeler.audit: point estimate and 95% interval); NULL where the face is no candidate
    bucket: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    est_precision: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    est_lower: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    est_upper: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Annotation(Base):
    """A human (or imported) action on a face. Append-only; undo is a new row pointing at the undone one."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_face", "face_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(16))  # label | unusable | skip | undo
    labels: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # ["happy"] or ["happy", "surprise"]
    undoes_id: Mapped[Optional[int]] = mapped_column(ForeignKey("annotations.id"), nullable=True)
    source: Mapped[str] = mapped_column(Text, default="ui")  # ui | import:csv | import:labelstudio
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: wall seconds of the decision (capped: labeler.flow.IDLE_CAP_S) and its kind (labeler.flow.EFFORTS)
    seconds: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    effort: Mapped[Optional[str]] = mapped_column(String(16), nullable=True)


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("face_id", "model"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(Text)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)  # sidecar path
    metrics: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("name", "version"),)


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ReviewLease(Base):
    """A face served to an annotator, held for them until ``expires_at`` (labeler.store.leases).
    Not history: a lease is replaced when it expires and deleted when released."""

    __tablename__ = "review_leases"
    __table_args__ = (Index("ix_review_leases_annotator", "annotator"),)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    annotator: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


# ---------------------------------------------------------------- videos (labeler.store.video)
class Video(Base):
    """A video file's content (its ``images`` row, format = the container) once fully processed:
    the row is written in the same transaction as its frames, faces and tracks, so a video without
    one (a killed run) is processed again from the start."""

    __tablename__ = "videos"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    container: Mapped[str] = mapped_column(String(16), default="")
    codec: Mapped[str] = mapped_column(String(16), default="")
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    frame_count: Mapped[int] = mapped_column(Integer, default=0)  # announced by the container
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    sample_fps: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16))  # ok | truncated
    reason: Mapped[str] = mapped_column(Text, default="")
    decoded: Mapped[int] = mapped_column(Integer, default=0)
    cuts: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # [[frame, t_ms], ...]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class VideoFrame(Base):
    """A sampled frame: its own ``images`` row (format ``frame``, no path) carries its faces."""

    __tablename__ = "video_frames"
    __table_args__ = (UniqueConstraint("video_id", "frame_index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    frame_index: Mapped[int] = mapped_column(Integer)
    t_ms: Mapped[float] = mapped_column(Float)
    shot: Mapped[int] = mapped_column(Integer, default=0)
    why: Mapped[str] = mapped_column(String(8), default="rate")  # rate | cut


class TrackRow(Base):
    """One person in one shot (labeler.faces.tracks): the labeling unit of a video, with its frames'
    model probabilities aggregated (statistics and attention) and its segments."""

    __tablename__ = "tracks"
    __table_args__ = (UniqueConstraint("video_id", "track_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    track_no: Mapped[int] = mapped_column(Integer)  # 1.. within the video
    shot: Mapped[int] = mapped_column(Integer, default=0)
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    start_ms: Mapped[float] = mapped_column(Float)
    end_ms: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(Text, default="")  # the FER model's name@version
    label: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)  # argmax of the mean
    att_label: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)  # argmax of the attention pool
    stats: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # {n, mean, std, min, max: {label: p}}
    attention: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # {label: p}
    segments: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # [{first, last, start_frame, ..., label}]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TrackFace(Base):
    __tablename__ = "track_faces"
    __table_args__ = (Index("ix_track_faces_track", "track_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"))
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), unique=True)
    position: Mapped[int] = mapped_column(Integer)  # 0.. in time order
    segment: Mapped[int] = mapped_column(Integer, default=0)  # index into the track's segments
    weight: Mapped[float] = mapped_column(Float, default=0.0)  # attention weight
