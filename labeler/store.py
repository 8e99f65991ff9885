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
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

DEFAULT_DB = "sqlite:///labeler.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "db"


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
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
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
    if not MIGRATIONS_DIR.is_dir():
        raise RuntimeError(
            f"database migrations not found: expected the folder {MIGRATIONS_DIR}. "
            "Install labeler from its source tree (`pip install -e .`), which keeps db/ beside the package."
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
            labeled = select(Annotation.face_id).where(Annotation.action.in_(("label", "unusable"))).distinct().subquery()
            out["human_labeled_faces"] = s.scalar(select(func.count()).select_from(labeled)) or 0
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
            img_of.update(dict(s.execute(select(Face.id, Face.image_id).where(Face.id.in_(ids[i : i + 500])))))
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
