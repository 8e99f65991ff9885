"""The database: the only module that imports SQLAlchemy.

SQLite by default (``labeler.db`` in the working directory); any SQLAlchemy URL via ``--db`` or
``LABELER_DB``. The schema is versioned with Alembic migrations under ``db/``, applied on first use.
Every table that records a label is append-only: proposals, decisions and annotations are never
updated, so the history of every face is its audit trail.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

from sqlalchemy import (
    JSON,
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
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import Engine

from labeler.resources import migrations_dir
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

DEFAULT_DB = "sqlite:///labeler.db"


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
    rule_source: Mapped[str] = mapped_column(String(200), default="")
    # pipeline progress: ingested -> detected (faces stored) ; proposals/decisions are per face
    detected: Mapped[bool] = mapped_column(Boolean, default=False)
    detector: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    paths: Mapped[list["ImagePath"]] = relationship(back_populates="image", order_by="ImagePath.id")
    faces: Mapped[list["Face"]] = relationship(back_populates="image", order_by="Face.idx")


class ImagePath(Base):
    __tablename__ = "image_paths"
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)  # absolute
    root: Mapped[str] = mapped_column(String(1024), default="")  # the folder given to ingest
    relpath: Mapped[str] = mapped_column(String(1024), default="")  # path relative to root
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
    flags: Mapped[str] = mapped_column(String(200), default="")  # comma-separated
    detector: Mapped[str] = mapped_column(String(100), default="")
    crop: Mapped[Optional[bytes]] = mapped_column(LargeBinary, nullable=True)  # aligned crop, PNG/JPEG bytes
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    image: Mapped[Image] = relationship(back_populates="faces")


class Proposal(Base):
    """A label proposed for a face by a rule or a model. Append-only."""

    __tablename__ = "proposals"
    __table_args__ = (Index("ix_proposals_face_kind", "face_id", "source_kind", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    source_kind: Mapped[str] = mapped_column(String(16))  # rule | model | import
    source: Mapped[str] = mapped_column(String(200))  # rules file / model name@version
    label: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    prob: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    probs: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # {label: p}
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Decision(Base):
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
    label: Mapped[Optional[str]] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Annotation(Base):
    """A human (or imported) action on a face. Append-only; undo is a new row pointing at the undone one."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_face", "face_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(16))  # label | unusable | skip | undo
    labels: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)  # ["happy"] or ["happy", "surprise"]
    undoes_id: Mapped[Optional[int]] = mapped_column(ForeignKey("annotations.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(200), default="ui")  # ui | import:csv | import:labelstudio
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("face_id", "model"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(1024))  # sidecar path
    metrics: Mapped[Optional[Any]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("name", "version"),)


class Setting(Base):
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# --------------------------------------------------------------------------------------------
# engine


def resolve_url(url: Optional[str] = None) -> str:
    url = url or os.environ.get("LABELER_DB") or DEFAULT_DB
    if "://" not in url:  # a bare file path
        url = f"sqlite:///{url}"
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: Optional[str] = None, migrate: bool = True) -> Engine:
    url = resolve_url(url)
    kw: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kw["connect_args"] = {"timeout": 10, "check_same_thread": False}
    engine = create_engine(url, **kw)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        upgrade(engine)
    return engine


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["connection_engine"] = engine
    return cfg


def current_revision(engine: Engine) -> Optional[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def upgrade(engine: Engine) -> None:
    """Apply the Alembic migrations up to head (cheap when already there)."""
    if not migrations_dir().is_dir():
        raise RuntimeError(
            f"database migrations not found: expected the folder {migrations_dir()}. "
            "Reinstall labeler (`pip install .`): the wheel carries them as labeler.migrations."
        )
    if current_revision(engine) == head_revision(engine):
        return
    from alembic import command

    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """A database handle: engine + session factory + the queries the rest of the app needs."""

    def __init__(self, url: Optional[str] = None, migrate: bool = True):
        self.url = resolve_url(url)
        self.engine = make_engine(self.url, migrate=migrate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # ---- settings
    def get_setting(self, key: str, default: Optional[str] = None) -> Optional[str]:
        with self.session() as s:
            row = s.get(Setting, key)
            return row.value if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self.session() as s:
            row = s.get(Setting, key)
            if row:
                row.value = value
            else:
                s.add(Setting(key=key, value=value))

    # ---- images
    def find_image(self, s: Session, sha256: str) -> Optional[Image]:
        return s.scalar(select(Image).where(Image.sha256 == sha256))

    def known_paths(self) -> dict[str, tuple[float, int, int]]:
        """path -> (mtime, size, image_id) for every path already ingested."""
        with self.session() as s:
            rows = s.execute(select(ImagePath.path, ImagePath.mtime, ImagePath.size_bytes, ImagePath.image_id))
            return {p: (m, sz, iid) for p, m, sz, iid in rows}

    def counts(self) -> dict[str, int]:
        """Counts by state for `labeler status`."""
        with self.session() as s:
            out: dict[str, int] = {}
            out["images"] = s.scalar(select(func.count(Image.id))) or 0
            out["paths"] = s.scalar(select(func.count(ImagePath.id))) or 0
            for st, n in s.execute(select(Image.status, func.count()).group_by(Image.status)):
                out[st] = n
            for st, n in s.execute(
                select(Image.rule_state, func.count()).where(Image.status == "ingested").group_by(Image.rule_state)
            ):
                out[f"rule_{st}"] = n
            out["detected_images"] = s.scalar(select(func.count(Image.id)).where(Image.detected.is_(True))) or 0
            out["faces"] = s.scalar(select(func.count(Face.id))) or 0
            latest = (
                select(Decision.route, func.max(Decision.id).label("mid"))
                .group_by(Decision.image_id, Decision.face_id)
                .subquery()
            )
            for route, n in s.execute(select(latest.c.route, func.count()).group_by(latest.c.route)):
                out[f"route_{route}"] = n
            labeled = set(current_annotations(s, None))
            out["human_labeled_faces"] = len(labeled)
            newest = latest_ids(s, Decision, None)
            review = s.scalars(select(Decision.face_id).where(Decision.id.in_(list(newest.values())), Decision.route == "review")).all() if newest else []
            out["review_remaining"] = sum(1 for f in review if f not in labeled)
            return out



# --------------------------------------------------------------------------------------------
# reads shared by pipeline, UI, export and retraining


def latest_ids(session: Session, model, face_ids=None, where=None) -> dict[int, int]:
    """face_id -> id of the newest row of ``model`` (Proposal/Decision) for that face."""
    q = select(model.face_id, func.max(model.id)).where(model.face_id.is_not(None)).group_by(model.face_id)
    if where is not None:
        q = q.where(where)
    if face_ids is not None:
        q = q.where(model.face_id.in_(list(face_ids)))
    return {fid: mid for fid, mid in session.execute(q)}


def current_annotations(session: Session, face_ids=None) -> dict[int, dict[str, "Annotation"]]:
    """face_id -> {annotator: their current (not undone, newest) label/unusable annotation}.

    Every action is kept; an ``undo`` row cancels the row it points at; a ``skip`` changes nothing.
    """
    q = select(Annotation).order_by(Annotation.id)
    if face_ids is not None:
        q = q.where(Annotation.face_id.in_(list(face_ids)))
    rows = session.scalars(q).all()
    undone = {a.undoes_id for a in rows if a.action == "undo" and a.undoes_id}
    out: dict[int, dict[str, Annotation]] = {}
    for a in rows:
        if a.action in ("label", "unusable") and a.id not in undone:
            out.setdefault(a.face_id, {})[a.annotator] = a
    return out


def vote(annotations: dict[str, "Annotation"]) -> tuple[Optional[str], dict[str, float]]:
    """Majority label over annotators (first label of each counts 1, a second label 0.5) and the
    vote distribution (soft label). ``unusable`` counts as the pseudo-label "unusable"."""
    dist: dict[str, float] = {}
    latest: dict[str, int] = {}
    for a in annotations.values():
        labs = ["unusable"] if a.action == "unusable" else list(a.labels or [])
        for k, lab in enumerate(labs[:2]):
            dist[lab] = dist.get(lab, 0.0) + (1.0 if k == 0 else 0.5)
            latest[lab] = max(latest.get(lab, 0), a.id)
    if not dist:
        return None, {}
    total = sum(dist.values())
    best = max(dist, key=lambda k: (dist[k], latest[k]))
    return best, {k: v / total for k, v in sorted(dist.items())}


def iter_face_records(store: "Store", chunk: int = 500, image_ids=None) -> Iterator[dict[str, Any]]:
    """One dict per face (and one per image without faces), streamed in chunks of images.

    Keys: image_id, sha256, path, root, relpath, paths, status, error, width, height, face_id, face,
    x1, y1, x2, y2, det_score, landmarks, whole_image, quality, flags, rule_state, rule_label,
    rule_words, model_label, model_prob, model_probs, model_source, route, reason, priority,
    decision_label, decision_source, human_label, votes, annotations, label, label_source.
    ``label`` is the accepted label: the human majority where people labeled the face, else the
    auto-accepted label; ``label_source`` says which (``human:<names>`` or ``auto:<source>``).
    """
    last = 0
    while True:
        with store.session() as s:
            q = select(Image).where(Image.id > last).order_by(Image.id).limit(chunk)
            if image_ids is not None:
                q = q.where(Image.id.in_(list(image_ids)))
            imgs = s.scalars(q).all()
            if not imgs:
                return
            last = imgs[-1].id
            ids = [i.id for i in imgs]
            paths: dict[int, list[ImagePath]] = {}
            for p in s.scalars(select(ImagePath).where(ImagePath.image_id.in_(ids)).order_by(ImagePath.id)):
                paths.setdefault(p.image_id, []).append(p)
            faces: dict[int, list[Face]] = {}
            for f in s.scalars(select(Face).where(Face.image_id.in_(ids)).order_by(Face.image_id, Face.idx)):
                faces.setdefault(f.image_id, []).append(f)
            fids = [f.id for fl in faces.values() for f in fl]
            prop_ids = latest_ids(s, Proposal, fids, where=Proposal.source_kind == "model")
            props = {p.face_id: p for p in s.scalars(select(Proposal).where(Proposal.id.in_(list(prop_ids.values()))))} if prop_ids else {}
            dec_ids = latest_ids(s, Decision, fids)
            decs = {d.face_id: d for d in s.scalars(select(Decision).where(Decision.id.in_(list(dec_ids.values()))))} if dec_ids else {}
            img_dec_ids = dict(
                s.execute(
                    select(Decision.image_id, func.max(Decision.id))
                    .where(Decision.image_id.in_(ids), Decision.face_id.is_(None))
                    .group_by(Decision.image_id)
                ).all()
            )
            img_decs = {d.image_id: d for d in s.scalars(select(Decision).where(Decision.id.in_(list(img_dec_ids.values()))))} if img_dec_ids else {}
            anns = current_annotations(s, fids) if fids else {}
            for img in imgs:
                pl = paths.get(img.id, [])
                first = pl[0] if pl else None
                base = {
                    "image_id": img.id, "sha256": img.sha256, "path": first.path if first else "",
                    "root": first.root if first else "", "relpath": first.relpath if first else "",
                    "paths": [p.path for p in pl], "status": img.status, "error": img.error,
                    "width": img.width, "height": img.height, "rule_state": img.rule_state,
                    "rule_label": img.rule_label, "rule_words": json.loads(img.rule_words or "[]"),
                }
                fl = faces.get(img.id, [])
                if not fl:
                    d = img_decs.get(img.id)
                    route = d.route if d else ("broken" if img.status == "broken" else ("no_face" if img.detected else "pending"))
                    yield {**base, "face_id": None, "face": None, "x1": None, "y1": None, "x2": None, "y2": None,
                           "det_score": None, "landmarks": None, "whole_image": False, "quality": None, "flags": "",
                           "model_label": None, "model_prob": None, "model_probs": None, "model_source": "",
                           "route": route, "reason": d.reason if d else img.error, "priority": 0.0,
                           "decision_label": None, "decision_source": d.source if d else "",
                           "human_label": None, "votes": {}, "annotations": [], "label": None, "label_source": ""}
                    continue
                for f in fl:
                    p = props.get(f.id)
                    d = decs.get(f.id)
                    a = anns.get(f.id, {})
                    human, votes = vote(a) if a else (None, {})
                    if human is not None:
                        label, lsrc = human, "human:" + ",".join(sorted(a))
                    elif d is not None and d.route == "auto":
                        label, lsrc = d.label, f"auto:{d.reason}"
                    else:
                        label, lsrc = None, ""
                    yield {
                        **base, "face_id": f.id, "face": f.idx, "x1": f.x1, "y1": f.y1, "x2": f.x2, "y2": f.y2,
                        "det_score": f.det_score, "landmarks": f.landmarks, "whole_image": f.whole_image,
                        "quality": f.quality, "flags": f.flags,
                        "model_label": p.label if p else None, "model_prob": p.prob if p else None,
                        "model_probs": p.probs if p else None, "model_source": p.source if p else "",
                        "route": d.route if d else "pending", "reason": d.reason if d else "",
                        "priority": d.priority if d else 0.0, "decision_label": d.label if d else None,
                        "decision_source": d.source if d else "",
                        "human_label": human, "votes": votes,
                        "annotations": [
                            {"annotator": n, "action": x.action, "labels": x.labels, "at": x.created_at.isoformat(), "source": x.source}
                            for n, x in sorted(a.items())
                        ],
                        "label": label, "label_source": lsrc,
                    }


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# ---- export/import queries (labeler/export.py, labeler/importer.py)


def face_crops(store: "Store", face_ids) -> dict[int, Optional[bytes]]:
    """face_id -> stored crop bytes (aligned face crop, JPEG/PNG) for the given faces only."""
    ids = list(face_ids)
    if not ids:
        return {}
    with store.session() as s:
        return {fid: crop for fid, crop in s.execute(select(Face.id, Face.crop).where(Face.id.in_(ids)))}


def model_version_rows(store: "Store") -> list[dict[str, Any]]:
    """Every trained model version registered in the database (for export metadata)."""
    with store.session() as s:
        return [
            {"name": m.name, "version": m.version, "path": m.path, "metrics": m.metrics,
             "created_at": m.created_at.isoformat() if m.created_at else None}
            for m in s.scalars(select(ModelVersion).order_by(ModelVersion.id))
        ]


def images_by_path(store: "Store", abs_paths=(), relpaths=()) -> tuple[dict[str, int], dict[str, set[int]]]:
    """Look paths up: ({absolute path: image_id}, {relpath (relative to an ingest root): {image_ids}})."""
    absl, rels = list(dict.fromkeys(abs_paths)), list(dict.fromkeys(relpaths))
    by_abs: dict[str, int] = {}
    by_rel: dict[str, set[int]] = {}
    with store.session() as s:
        for i in range(0, len(absl), 500):
            for p, iid in s.execute(select(ImagePath.path, ImagePath.image_id).where(ImagePath.path.in_(absl[i : i + 500]))):
                by_abs[p] = iid
        for i in range(0, len(rels), 500):
            for r, iid in s.execute(select(ImagePath.relpath, ImagePath.image_id).where(ImagePath.relpath.in_(rels[i : i + 500]))):
                by_rel.setdefault(r, set()).add(iid)
    return by_abs, by_rel


def ingest_roots(store: "Store") -> list[str]:
    with store.session() as s:
        return sorted(r for r in s.scalars(select(ImagePath.root).distinct()) if r)


def image_faces(store: "Store", image_ids) -> dict[int, dict[str, Any]]:
    """image_id -> {status, detected, faces: {idx: face_id}} for the given images."""
    ids = list(dict.fromkeys(image_ids))
    out: dict[int, dict[str, Any]] = {}
    with store.session() as s:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for iid, st, det in s.execute(select(Image.id, Image.status, Image.detected).where(Image.id.in_(chunk))):
                out[iid] = {"status": st, "detected": bool(det), "faces": {}}
            for fid, iid, idx in s.execute(select(Face.id, Face.image_id, Face.idx).where(Face.image_id.in_(chunk))):
                out[iid]["faces"][idx] = fid
    return out


def faces_by_key(store: "Store", sha_idx=(), face_ids=()) -> tuple[dict[tuple[str, int], int], set[int]]:
    """({(sha256, face idx): face_id}, {face ids that exist}) for the given keys / ids."""
    keys = list(dict.fromkeys(sha_idx))
    fids = list(dict.fromkeys(face_ids))
    by_key: dict[tuple[str, int], int] = {}
    found: set[int] = set()
    with store.session() as s:
        shas = list({k[0] for k in keys})
        for i in range(0, len(shas), 500):
            q = select(Image.sha256, Face.idx, Face.id).join(Face, Face.image_id == Image.id).where(Image.sha256.in_(shas[i : i + 500]))
            for sha, idx, fid in s.execute(q):
                by_key[(sha, idx)] = fid
        for i in range(0, len(fids), 500):
            found.update(s.scalars(select(Face.id).where(Face.id.in_(fids[i : i + 500]))))
    wanted = set(keys)
    return {k: v for k, v in by_key.items() if k in wanted}, found


def add_import_annotations(store: "Store", items, source: str) -> tuple[int, int]:
    """Append annotations ``(face_id, annotator, action, labels)`` (action label|unusable) with
    ``source``; an item equal to that annotator's current annotation of the face is not added again
    (re-import is idempotent). Returns (added, unchanged)."""
    items = list(items)
    added = unchanged = 0
    with store.session() as s:
        cur = current_annotations(s, {it[0] for it in items}) if items else {}
        state = {(fid, n): (a.action, list(a.labels or []) if a.action == "label" else []) for fid, by in cur.items() for n, a in by.items()}
        for fid, annotator, action, labels in items:
            want = (action, list(labels or []) if action == "label" else [])
            if state.get((fid, annotator)) == want:
                unchanged += 1
                continue
            s.add(Annotation(face_id=fid, annotator=annotator, action=action,
                             labels=list(labels) if action == "label" else None, source=source))
            state[(fid, annotator)] = want
            added += 1
    return added, unchanged


# --------------------------------------------------------------------------------------------
# ---- retraining queries (labeler/retrain.py)


def human_labeled_faces(store: "Store") -> list[tuple[int, int, str]]:
    """(face_id, image_id, majority human label) for every face people labeled (``unusable`` too:
    the caller decides what to skip), in face order."""
    with store.session() as s:
        cur = current_annotations(s, None)
        if not cur:
            return []
        img_of: dict[int, int] = {}
        ids = list(cur)
        for i in range(0, len(ids), 500):
            img_of.update(dict(s.execute(select(Face.id, Face.image_id).where(Face.id.in_(ids[i : i + 500]))).all()))
        out = []
        for fid in sorted(cur):
            lab, _dist = vote(cur[fid])
            if lab is not None and fid in img_of:
                out.append((fid, img_of[fid], lab))
        return out


def all_face_ids(store: "Store") -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(Face.id).order_by(Face.id)))


def load_embeddings(store: "Store", model: str, face_ids) -> dict[int, tuple[int, bytes]]:
    """face_id -> (dim, float32 little-endian bytes) cached for ``model`` (an embedding key)."""
    ids = list(dict.fromkeys(face_ids))
    out: dict[int, tuple[int, bytes]] = {}
    with store.session() as s:
        for i in range(0, len(ids), 500):
            q = select(Embedding.face_id, Embedding.dim, Embedding.vector).where(
                Embedding.model == model, Embedding.face_id.in_(ids[i : i + 500]))
            for fid, dim, vec in s.execute(q):
                out[fid] = (dim, vec)
    return out


def save_embeddings(store: "Store", model: str, items) -> int:
    """Cache ``(face_id, dim, bytes)`` for ``model``; an existing (face, model) row is replaced."""
    items = list(items)
    with store.session() as s:
        have = {}
        ids = [it[0] for it in items]
        for i in range(0, len(ids), 500):
            for e in s.scalars(select(Embedding).where(Embedding.model == model, Embedding.face_id.in_(ids[i : i + 500]))):
                have[e.face_id] = e
        for fid, dim, vec in items:
            e = have.get(fid)
            if e is None:
                s.add(Embedding(face_id=fid, model=model, dim=int(dim), vector=vec))
            else:
                e.dim, e.vector = int(dim), vec
    return len(items)


def record_model_version(store: "Store", name: str, version: str, path: str, metrics: Any) -> int:
    """Register (or update) a model version; returns its id."""
    with store.session() as s:
        row = s.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))
        if row is None:
            row = ModelVersion(name=name, version=version, path=path, metrics=metrics)
            s.add(row)
        else:
            row.path, row.metrics = path, metrics
        s.flush()
        return row.id


# --------------------------------------------------------------------------------------------
# ---- review UI queries (labeler/ui.py)
#
# Everything the Streamlit review app reads or writes. Reads fetch only what one screen shows
# (the next card: LIMIT; one gallery page); every human action is its own append-only Annotation.

#: review reason kinds (routing.RoutingPolicy.weights) -> SQL LIKE patterns on Decision.reason
REVIEW_REASON_KINDS: dict[str, tuple[str, ...]] = {
    "disagree": ("rule says %",),
    "ambiguous": ("ambiguous name%",),
    "multi_face": ("multi-face image (%",),
    "low_confidence": ("no keyword; model unsure%", "no model proposal%"),
    "agree_low": ("rule (% and model agree on %",),
    "quality": ("quality:%",),
}


def reason_kind(reason: Optional[str]) -> str:
    """The routing reason kind of a decision reason text (``other`` when unknown)."""
    import fnmatch

    r = reason or ""
    for kind, pats in REVIEW_REASON_KINDS.items():
        if any(fnmatch.fnmatchcase(r, p.replace("%", "*").replace("[", "[[]")) for p in pats):
            return kind
    return "other"


def _newest_face_decisions():
    """Subquery: id of the newest decision of every face."""
    return (
        select(func.max(Decision.id).label("id"))
        .where(Decision.face_id.is_not(None))
        .group_by(Decision.face_id)
        .subquery()
    )


def _undone_ids():
    return select(Annotation.undoes_id).where(Annotation.action == "undo", Annotation.undoes_id.is_not(None))


def _labeled_face_ids():
    """Faces with a current (not undone) label/unusable annotation by anyone."""
    return select(Annotation.face_id).where(
        Annotation.action.in_(("label", "unusable")), Annotation.id.not_in(_undone_ids())
    )


def _review_query(cols, annotator=None, reason_kinds=None, proposed=None, folder=None, include_skipped=False):
    newest = _newest_face_decisions()
    q = (
        select(*cols)
        .join(newest, Decision.id == newest.c.id)
        .where(Decision.route == "review", Decision.face_id.not_in(_labeled_face_ids()))
    )
    if annotator and not include_skipped:
        skipped = select(Annotation.face_id).where(
            Annotation.action == "skip", Annotation.annotator == annotator, Annotation.id.not_in(_undone_ids())
        )
        q = q.where(Decision.face_id.not_in(skipped))
    if reason_kinds:
        from sqlalchemy import or_

        q = q.where(or_(*[Decision.reason.like(p) for k in reason_kinds for p in REVIEW_REASON_KINDS.get(k, ())]))
    if proposed:
        q = q.where(Decision.label.in_(list(proposed)))
    if folder:
        sep = "/" if "/" in folder else os.sep
        prefix = folder.rstrip("/\\") + sep
        q = q.where(Decision.image_id.in_(select(ImagePath.image_id).where(ImagePath.path.startswith(prefix, autoescape=True))))
    return q


def review_queue(store: "Store", annotator: Optional[str] = None, limit: int = 1, reason_kinds=None, proposed=None,
                 folder=None, include_skipped: bool = False, exclude=()) -> list[int]:
    """Face ids of the next ``limit`` faces to review: newest decision route ``review``, no current
    human label (by anyone, at fetch time), not skipped by ``annotator``; priority desc, then id.
    Filters: reason kinds (REVIEW_REASON_KINDS keys), proposed classes (decision label), source
    folder (absolute path prefix)."""
    q = _review_query([Decision.face_id], annotator, reason_kinds, proposed, folder, include_skipped)
    if exclude:
        q = q.where(Decision.face_id.not_in(list(exclude)))
    q = q.order_by(Decision.priority.desc(), Decision.face_id).limit(limit)
    with store.session() as s:
        return list(s.scalars(q))


def review_queue_count(store: "Store", annotator: Optional[str] = None, reason_kinds=None, proposed=None, folder=None,
                       include_skipped: bool = False) -> int:
    q = _review_query([Decision.face_id], annotator, reason_kinds, proposed, folder, include_skipped)
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(q.subquery())) or 0


def source_folders(store: "Store") -> list[tuple[str, int]]:
    """(folder, number of paths) for every folder that holds an ingested path (parent of the path)."""
    out: dict[str, int] = {}
    with store.session() as s:
        for (p,) in s.execute(select(ImagePath.path)):
            d = os.path.dirname(p)
            out[d] = out.get(d, 0) + 1
    return sorted(out.items())


def _face_state(s: Session, face_id: int) -> dict[str, Any]:
    def newest(model, *where):
        return s.scalar(select(model).where(model.face_id == face_id, *where).order_by(model.id.desc()).limit(1))

    mp = newest(Proposal, Proposal.source_kind == "model")
    rp = newest(Proposal, Proposal.source_kind == "rule")
    d = newest(Decision)
    anns = current_annotations(s, [face_id]).get(face_id, {})
    human, votes = vote(anns) if anns else (None, {})
    return {
        "model_label": mp.label if mp else None, "model_prob": mp.prob if mp else None,
        "model_probs": dict(mp.probs) if mp and mp.probs else {}, "model_source": mp.source if mp else "",
        "rule_proposal": rp.label if rp else None, "rule_detail": rp.detail if rp else "",
        "route": d.route if d else "pending", "decision_label": d.label if d else None,
        "reason": d.reason if d else "", "reason_kind": reason_kind(d.reason) if d and d.route == "review" else "",
        "priority": d.priority if d else 0.0, "decision_source": d.source if d else "",
        "human_label": human, "votes": votes,
        "annotations": {n: {"action": a.action, "labels": list(a.labels or []), "id": a.id,
                            "at": a.created_at.isoformat() if a.created_at else None} for n, a in sorted(anns.items())},
    }


def face_card(store: "Store", face_id: int) -> Optional[dict[str, Any]]:
    """Everything a review card shows for one face (crop bytes included)."""
    with store.session() as s:
        f = s.get(Face, face_id)
        if f is None:
            return None
        img = s.get(Image, f.image_id)
        paths = list(s.scalars(select(ImagePath.path).where(ImagePath.image_id == f.image_id).order_by(ImagePath.id)))
        boxes = [
            {"face_id": fid, "idx": idx, "box": (x1, y1, x2, y2)}
            for fid, idx, x1, y1, x2, y2 in s.execute(
                select(Face.id, Face.idx, Face.x1, Face.y1, Face.x2, Face.y2).where(Face.image_id == f.image_id).order_by(Face.idx)
            )
        ]
        out = {
            "face_id": f.id, "image_id": f.image_id, "idx": f.idx, "box": (f.x1, f.y1, f.x2, f.y2),
            "det_score": f.det_score, "whole_image": f.whole_image, "quality": dict(f.quality or {}),
            "flags": [x for x in (f.flags or "").split(",") if x], "crop": f.crop, "paths": paths,
            "width": img.width, "height": img.height, "rule_state": img.rule_state, "rule_label": img.rule_label,
            "rule_words": json.loads(img.rule_words or "[]"), "n_faces": len(boxes), "faces": boxes,
        }
        out.update(_face_state(s, face_id))
        return out


def add_annotation(store: "Store", face_id: int, annotator: str, action: str, labels=None, source: str = "ui",
                   undoes_id: Optional[int] = None) -> int:
    """Append one human action (label | unusable | skip | undo) and return its id. Two annotators
    acting on the same face both keep their rows (the vote settles the label)."""
    if action not in ("label", "unusable", "skip", "undo"):
        raise ValueError(f"unknown action {action!r}")
    labs = list(dict.fromkeys(labels or []))[:2] if action == "label" else None
    if action == "label" and not labs:
        raise ValueError("a label action needs 1 or 2 labels")
    with store.session() as s:
        a = Annotation(face_id=face_id, annotator=annotator, action=action, labels=labs, undoes_id=undoes_id, source=source)
        s.add(a)
        s.flush()
        return a.id


def add_annotations(store: "Store", items, annotator: str, source: str = "ui") -> list[int]:
    """Append ``(face_id, action, labels)`` items in one transaction (gallery / group relabel)."""
    ids = []
    with store.session() as s:
        rows = []
        for fid, action, labels in items:
            labs = list(dict.fromkeys(labels or []))[:2] if action == "label" else None
            rows.append(Annotation(face_id=fid, annotator=annotator, action=action, labels=labs, source=source))
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    return ids


def undo_last(store: "Store", annotator: str, source: str = "ui") -> Optional[dict[str, Any]]:
    """Undo the newest not-yet-undone label/unusable/skip action of ``annotator`` (from ``source``):
    appends an ``undo`` row pointing at it. Repeated calls walk further back. None if nothing to undo."""
    with store.session() as s:
        a = s.scalar(
            select(Annotation)
            .where(Annotation.annotator == annotator, Annotation.source == source,
                   Annotation.action.in_(("label", "unusable", "skip")), Annotation.id.not_in(_undone_ids()))
            .order_by(Annotation.id.desc())
            .limit(1)
        )
        if a is None:
            return None
        u = Annotation(face_id=a.face_id, annotator=annotator, action="undo", labels=None, undoes_id=a.id, source=source)
        s.add(u)
        s.flush()
        return {"face_id": a.face_id, "undone_id": a.id, "undo_id": u.id, "action": a.action, "labels": a.labels}


def _decision_rows(s: Session, face_ids=None):
    newest = _newest_face_decisions()
    q = select(Decision.face_id, Decision.route, Decision.label, Decision.reason).join(newest, Decision.id == newest.c.id)
    if face_ids is not None:
        q = q.where(Decision.face_id.in_(list(face_ids)))
    return s.execute(q)


def accepted_labels(store: "Store", face_ids=None) -> dict[int, tuple[str, str]]:
    """face_id -> (accepted label, "human" | "auto") for faces that have one: the human majority
    (``unusable`` included) where people labeled the face, else the label of an ``auto`` decision."""
    out: dict[int, tuple[str, str]] = {}
    with store.session() as s:
        for fid, route, label, _r in _decision_rows(s, face_ids):
            if route == "auto" and label:
                out[fid] = (label, "auto")
        for fid, anns in current_annotations(s, face_ids).items():
            human, _v = vote(anns)
            if human:
                out[fid] = (human, "human")
    return out


def gallery_faces(store: "Store", label: str, kind: str = "all", limit: int = 48, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """One page of faces whose accepted label is ``label`` (kind all | auto | human):
    (total, [{face_id, image_id, label, kind, crop}]) ordered by face id."""
    acc = accepted_labels(store)
    ids = sorted(fid for fid, (lab, k) in acc.items() if lab == label and kind in ("all", k))
    page = ids[offset : offset + limit]
    if not page:
        return len(ids), []
    with store.session() as s:
        rows = {fid: (iid, crop) for fid, iid, crop in s.execute(select(Face.id, Face.image_id, Face.crop).where(Face.id.in_(page)))}
    return len(ids), [
        {"face_id": fid, "image_id": rows[fid][0], "label": acc[fid][0], "kind": acc[fid][1], "crop": rows[fid][1]}
        for fid in page if fid in rows
    ]


def image_list(store: "Store", min_faces: int = 1, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
    """Images with at least ``min_faces`` faces: [{image_id, n_faces, path}] ordered by faces desc, id."""
    n = func.count(Face.id).label("n")
    q = (
        select(Face.image_id, n)
        .group_by(Face.image_id)
        .having(n >= min_faces)
        .order_by(n.desc(), Face.image_id)
        .limit(limit)
        .offset(offset)
    )
    with store.session() as s:
        rows = s.execute(q).all()
        first = {}
        if rows:
            for iid, p in s.execute(
                select(ImagePath.image_id, ImagePath.path).where(ImagePath.image_id.in_([r[0] for r in rows])).order_by(ImagePath.id.desc())
            ):
                first[iid] = p
    return [{"image_id": iid, "n_faces": k, "path": first.get(iid, "")} for iid, k in rows]


def image_view(store: "Store", image_id: int) -> Optional[dict[str, Any]]:
    """One image with all its faces, each with its box and current state (labels, decision)."""
    with store.session() as s:
        img = s.get(Image, image_id)
        if img is None:
            return None
        paths = list(s.scalars(select(ImagePath.path).where(ImagePath.image_id == image_id).order_by(ImagePath.id)))
        faces = s.scalars(select(Face).where(Face.image_id == image_id).order_by(Face.idx)).all()
        items = []
        for f in faces:
            st = _face_state(s, f.id)
            if st["human_label"]:
                label, src = st["human_label"], "human"
            elif st["route"] == "auto":
                label, src = st["decision_label"], "auto"
            else:
                label, src = None, st["route"]
            items.append({"face_id": f.id, "idx": f.idx, "box": (f.x1, f.y1, f.x2, f.y2), "crop": f.crop,
                          "flags": [x for x in (f.flags or "").split(",") if x], "label": label, "label_source": src, **st})
        return {"image_id": img.id, "paths": paths, "width": img.width, "height": img.height, "status": img.status,
                "rule_state": img.rule_state, "rule_label": img.rule_label, "rule_words": json.loads(img.rule_words or "[]"),
                "faces": items}


def overview_stats(store: "Store") -> dict[str, Any]:
    """Progress, class distribution, rule/model/human agreement rows and per-annotator counts."""
    with store.session() as s:
        n_faces = s.scalar(select(func.count(Face.id))) or 0
        n_images = s.scalar(select(func.count(Image.id))) or 0
        dec = {fid: (route, label) for fid, route, label, _r in _decision_rows(s)}
        anns = current_annotations(s)
        human = {fid: vote(a)[0] for fid, a in anns.items()}
        mp_ids = latest_ids(s, Proposal, None, where=Proposal.source_kind == "model")
        rp_ids = latest_ids(s, Proposal, None, where=Proposal.source_kind == "rule")
        want = list(mp_ids.values()) + list(rp_ids.values())
        plabel: dict[int, Optional[str]] = {}
        for i in range(0, len(want), 500):
            for pid, lab in s.execute(select(Proposal.id, Proposal.label).where(Proposal.id.in_(want[i : i + 500]))):
                plabel[pid] = lab
        newest_img = (
            select(func.max(Decision.id).label("id")).where(Decision.face_id.is_(None)).group_by(Decision.image_id).subquery()
        )
        img_routes = dict(
            s.execute(select(Decision.route, func.count()).join(newest_img, Decision.id == newest_img.c.id).group_by(Decision.route)).all()
        )
        per_annotator = [
            {"annotator": a, "action": act, "n": n}
            for a, act, n in s.execute(
                select(Annotation.annotator, Annotation.action, func.count()).group_by(Annotation.annotator, Annotation.action)
                .order_by(Annotation.annotator, Annotation.action)
            )
        ]
        face_ids = list(s.scalars(select(Face.id).order_by(Face.id)))
    auto = sum(1 for fid, (r, _l) in dec.items() if r == "auto" and not human.get(fid))
    reviewed = sum(1 for v in human.values() if v)
    remaining = sum(1 for fid, (r, _l) in dec.items() if r == "review" and not human.get(fid))
    current_by_annotator: dict[str, int] = {}
    for a in anns.values():
        for name in a:
            current_by_annotator[name] = current_by_annotator.get(name, 0) + 1
    rows = []
    dist: dict[str, dict[str, int]] = {}
    for fid in face_ids:
        r, dl = dec.get(fid, ("pending", None))
        h = human.get(fid)
        acc, kind = (h, "human") if h else ((dl, "auto") if r == "auto" and dl else (None, ""))
        if acc:
            dist.setdefault(acc, {"auto": 0, "human": 0})[kind] += 1
        rows.append({"face_id": fid, "rule": plabel.get(rp_ids.get(fid, -1)), "model": plabel.get(mp_ids.get(fid, -1)),
                     "human": h, "route": r, "decision": dl, "accepted": acc, "accepted_by": kind})
    return {
        "faces": n_faces, "images": n_images, "auto_accepted": auto, "reviewed": reviewed, "remaining": remaining,
        "pending": n_faces - len(dec), "no_face_images": img_routes.get("no_face", 0), "broken_images": img_routes.get("broken", 0),
        "class_distribution": dist, "rows": rows, "per_annotator": per_annotator,
        "current_labels_by_annotator": current_by_annotator,
    }
