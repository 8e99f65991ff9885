"""Queries for models and training: registered model versions, the default-model setting, the
human-labeled faces to train on, and the embedding cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import select

from labeler.store.engine import Store, chunks
from labeler.store.records import current_annotations, vote
from labeler.store.schema import Embedding, Face, ModelVersion, Setting

#: the project setting that names the default FER model (a sidecar path or a name)
DEFAULT_MODEL_KEY = "default_model"


def model_version_rows(store: Store) -> list[dict[str, Any]]:
    """Every trained model version registered in the database, oldest first."""
    with store.session() as s:
        return [
            {"name": m.name, "version": m.version, "path": m.path, "metrics": m.metrics,
             "created_at": m.created_at.isoformat() if m.created_at else None}
            for m in s.scalars(select(ModelVersion).order_by(ModelVersion.id))
        ]


def record_model_version(store: Store, name: str, version: str, path: str, metrics: Any) -> int:
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


def delete_setting(store: Store, key: str) -> bool:
    """Remove a project setting; True when there was one."""
    with store.session() as s:
        row = s.get(Setting, key)
        if row is None:
            return False
        s.delete(row)
        return True


@dataclass(frozen=True)
class ModelRegistry:
    """A project's models as :class:`labeler.fer.resolver.ModelRegistry` needs them."""

    store: Store

    def registered_models(self) -> dict[str, str]:
        """``name`` and ``name@version`` -> sidecar path of registered versions (newest wins)."""
        out: dict[str, str] = {}
        for r in model_version_rows(self.store):
            out[r["name"]] = r["path"]
            out[f"{r['name']}@{r['version']}"] = r["path"]
        return out

    def default_model(self) -> Optional[str]:
        return self.store.get_setting(DEFAULT_MODEL_KEY) or None

    def set_default_model(self, sidecar: Optional[str]) -> None:
        """Make a sidecar path the project's default model (None: back to the shipped default)."""
        if sidecar is None:
            delete_setting(self.store, DEFAULT_MODEL_KEY)
        else:
            self.store.set_setting(DEFAULT_MODEL_KEY, str(sidecar))


def model_registry(store: Store) -> ModelRegistry:
    return ModelRegistry(store)


def human_labeled_faces(store: Store, audits: bool = True) -> list[tuple[int, int, str]]:
    """(face_id, image_id, majority human label) for every face people labeled (``unusable`` too:
    the caller decides what to skip), in face order. ``audits=False`` leaves out the faces labeled by
    audit answers only (source ``audit``): the sample auto-accept is calibrated on, which a model must
    never train on (``labeler.store.audit.calibration_plan``)."""
    with store.session() as s:
        cur = current_annotations(s, None)
        if not audits:
            cur = {f: a for f, a in cur.items() if any(x.source != "audit" for x in a.values())}
        if not cur:
            return []
        img_of: dict[int, int] = {}
        for part in chunks(cur):
            img_of.update(dict(s.execute(select(Face.id, Face.image_id).where(Face.id.in_(part))).all()))
        out = []
        for fid in sorted(cur):
            lab, _dist = vote(cur[fid])
            if lab is not None and fid in img_of:
                out.append((fid, img_of[fid], lab))
        return out


def load_embeddings(store: Store, model: str, face_ids) -> dict[int, tuple[int, bytes]]:
    """face_id -> (dim, float32 little-endian bytes) cached for ``model`` (an embedding key)."""
    out: dict[int, tuple[int, bytes]] = {}
    with store.session() as s:
        for part in chunks(face_ids):
            q = select(Embedding.face_id, Embedding.dim, Embedding.vector).where(
                Embedding.model == model, Embedding.face_id.in_(part))
            for fid, dim, vec in s.execute(q):
                out[fid] = (dim, vec)
    return out


def save_embeddings(store: Store, model: str, items) -> int:
    """Cache ``(face_id, dim, bytes)`` for ``model``; an existing (face, model) row is replaced."""
    items = list(items)
    with store.session() as s:
        have = {}
        for part in chunks(it[0] for it in items):
            for e in s.scalars(select(Embedding).where(Embedding.model == model, Embedding.face_id.in_(part))):
                have[e.face_id] = e
        for fid, dim, vec in items:
            e = have.get(fid)
            if e is None:
                s.add(Embedding(face_id=fid, model=model, dim=int(dim), vector=vec))
            else:
                e.dim, e.vector = int(dim), vec
    return len(items)


def unlabeled_face_ids(store: Store) -> list[int]:
    """Ids of every face without a current human label (label or unusable), in face order."""
    human = {fid for fid, _iid, _lab in human_labeled_faces(store)}
    with store.session() as s:
        return [int(f) for f in s.scalars(select(Face.id).order_by(Face.id)) if int(f) not in human]
