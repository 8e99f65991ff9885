"""The training data: faces with a human label, the split into a training and a held-out part
(grouped by source image, stratified by class), and the crops, embeddings, logits and
probabilities of those faces.

Embeddings are cached per (face, embedding key) in the ``embeddings`` table; the key is the ident
of the model whose backbone computed them (a head model keeps its parent's key, since its backbone
is the same graph), with ``|flip`` for the horizontally flipped crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from labeler.errors import LabelerError
from labeler.fer.model import FERModel
from labeler.ingest.imageio import decode_crop
from labeler.splitting import group_hash, main_class
from labeler.splitting import grouped_split as split_groups
from labeler.store import Store, face_crops, human_labeled_faces, load_embeddings, save_embeddings, unlabeled_face_ids

#: human labels that are not classes to learn
SKIP_LABELS = ("unusable",)


class NotEnoughLabels(LabelerError, ValueError):
    """Too few human labels (or source images) to train or calibrate."""


@dataclass
class LabeledSet:
    """The human-labeled faces a model can learn from, in face order, with their split."""

    labels: list[str]  # the model's classes; ``y`` indexes them
    face_ids: np.ndarray
    image_ids: np.ndarray
    y: np.ndarray
    held: np.ndarray  # True: held out for evaluation / calibration (none with folds)
    skipped: dict[str, int] = field(default_factory=dict)  # labels left out (unusable, unknown classes)
    fold: Optional[np.ndarray] = None  # cross-validation: each face's fold (held out once, in its fold)

    @property
    def train(self) -> np.ndarray:
        return ~self.held

    @property
    def folds(self) -> int:
        return int(self.fold.max()) + 1 if self.fold is not None and len(self.fold) else 0

    def counts(self) -> dict:
        """The figures a trained model's sidecar records about its data."""
        tr, held, labs = self.train, self.held, self.labels
        if self.fold is not None:
            n_img = int(len(np.unique(self.image_ids)))
            return {"labeled_faces": int(len(self.y)), "folds": self.folds, "train_faces": int(len(self.y)), "train_images": n_img,
                    "heldout_faces": int(len(self.y)), "heldout_images": n_img,
                    "heldout": f"each face once, out of fold ({self.folds} folds grouped by image, stratified by class)",
                    "per_class": {labs[c]: int((self.y == c).sum()) for c in range(len(labs))}, "skipped": dict(self.skipped)}
        return {
            "labeled_faces": int(len(self.y)), "train_faces": int(tr.sum()), "heldout_faces": int(held.sum()),
            "train_images": int(len(np.unique(self.image_ids[tr]))), "heldout_images": int(len(np.unique(self.image_ids[held]))),
            "per_class_train": {labs[c]: int((self.y[tr] == c).sum()) for c in range(len(labs))},
            "per_class_heldout": {labs[c]: int((self.y[held] == c).sum()) for c in range(len(labs))},
            "skipped": dict(self.skipped),
        }


def labeled_data(store: Store, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(face_ids, image_ids, y as index into ``labels``) of faces with a human majority label,
    and counts of what was skipped (unusable, labels outside the model's classes)."""
    idx = {lab: i for i, lab in enumerate(labels)}
    fids, iids, ys = [], [], []
    skipped: dict[str, int] = {}
    for fid, iid, lab in human_labeled_faces(store, audits=False):  # audits calibrate auto-accept: never trained on
        if lab in SKIP_LABELS or lab not in idx:
            skipped[lab] = skipped.get(lab, 0) + 1
            continue
        fids.append(fid)
        iids.append(iid)
        ys.append(idx[lab])
    return np.array(fids, dtype=np.int64), np.array(iids, dtype=np.int64), np.array(ys, dtype=np.int64), skipped


def group_classes(groups: np.ndarray, y: np.ndarray) -> dict[int, int]:
    """Each group's class (labeler.splitting.main_class of its items' labels)."""
    out: dict[int, int] = {}
    for g in np.unique(groups):
        vals, cnt = np.unique(y[groups == g], return_counts=True)
        out[int(g)] = int(main_class(dict(zip(vals.tolist(), cnt.tolist()))))
    return out


def holdout_mask(groups: np.ndarray, y: np.ndarray, holdout: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out items: labeler.splitting.grouped_split with parts (1 - holdout,
    holdout): whole groups (source images) on one side, stratified by class, every class with at
    least two groups holding at least one out, stable as labels grow."""
    mask = np.zeros(len(y), dtype=bool)
    if len(y) == 0 or holdout <= 0:
        return mask
    part = split_groups(group_classes(groups, y), (1.0 - holdout, holdout), seed)
    mask[:] = [part[int(g)] == 1 for g in groups]
    return mask


def grouped_folds(groups: np.ndarray, y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Each item's fold (0..k-1) for cross-validation: whole groups (source images) in one fold,
    the groups of each class (a group's class: its most common label) dealt round the folds in the
    order of a seeded hash of their id, so every fold holds about 1/k of every class."""
    fold = np.zeros(len(y), dtype=np.int64)
    gclass = group_classes(groups, y)
    start = 0
    for c in sorted(set(gclass.values())):
        gs = sorted((g for g, kk in gclass.items() if kk == c), key=lambda g: group_hash(g, seed))
        for i, g in enumerate(gs):  # classes continue where the last one stopped: small classes spread too
            fold[groups == g] = (start + i) % k
        start += len(gs)
    return fold


def cv_set(store: Store, labels: Sequence[str], folds: int, seed: int, min_labels: int = 4) -> LabeledSet:
    """The human labels in ``folds`` cross-validation folds (grouped by image, stratified by class);
    refuses (saying what to do) when there are too few labels or images."""
    fids, iids, y, skipped = labeled_data(store, labels)
    n_img = len(np.unique(iids))
    if len(y) < min_labels or n_img < 2:
        raise NotEnoughLabels(
            f"not enough human labels to train: expected at least {min_labels} labeled faces of 2 or more images, found "
            f"{len(y)} of {n_img} (skipped {skipped}). Label faces in the UI or `labeler import` a labels file first.")
    fold = grouped_folds(iids, y, max(2, min(int(folds), n_img)), seed)
    return LabeledSet(list(labels), fids, iids, y, np.zeros(len(y), dtype=bool), skipped, fold)




def training_set(store: Store, labels: Sequence[str], holdout: float, seed: int, min_labels: int = 4) -> LabeledSet:
    """The human labels split for training; refuses (saying what to do) when there are too few."""
    fids, iids, y, skipped = labeled_data(store, labels)
    if len(y) < min_labels:
        raise NotEnoughLabels(
            f"not enough human labels to train: expected at least {min_labels} labeled faces, found {len(y)} "
            f"(skipped {skipped}). Label faces in the UI or `labeler import` a labels file first.")
    held = holdout_mask(iids, y, holdout, seed)
    if not held.any() or held.all():
        raise NotEnoughLabels(
            f"could not hold out a part of the {len(y)} labels grouped by image ({len(np.unique(iids))} images): "
            "label faces of more images (each class needs two images to be held out)")
    return LabeledSet(list(labels), fids, iids, y, held, skipped)


def crops(store: Store, face_ids) -> list[np.ndarray]:
    """The stored (aligned) crops of faces, decoded to RGB, in the order asked."""
    face_ids = [int(f) for f in face_ids]
    raw = face_crops(store, face_ids)
    out = []
    for fid in face_ids:
        b = raw.get(fid)
        if b is None:
            raise NotEnoughLabels(f"face {fid}: expected a stored crop, found none; re-run `labeler autolabel` to detect it again")
        out.append(decode_crop(b))
    return out


def _mirror(items: list[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(c[:, ::-1]) for c in items]


def embedding_key(model: FERModel) -> str:
    return str(model.card.meta.get("embedding_key") or model.ident)


def embeddings(store: Store, model: FERModel, face_ids, flip: bool = False, batch: int = 256) -> np.ndarray:
    """Embeddings of the faces' stored crops (horizontally flipped with ``flip``), cached in the DB."""
    key = embedding_key(model) + ("|flip" if flip else "")
    face_ids = [int(f) for f in face_ids]
    have = load_embeddings(store, key, face_ids)
    todo = [f for f in face_ids if f not in have]
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        items = crops(store, chunk)
        e = np.asarray(model.embed(_mirror(items) if flip else items), dtype="<f4")
        save_embeddings(store, key, [(f, e.shape[1], e[j].tobytes()) for j, f in enumerate(chunk)])
        have.update({f: (e.shape[1], e[j].tobytes()) for j, f in enumerate(chunk)})
    if not face_ids:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.frombuffer(have[f][1], dtype="<f4") for f in face_ids]).astype(np.float64)


def model_probs(store: Store, model: FERModel, face_ids, flip: bool = True, batch: int = 256) -> np.ndarray:
    """The model's calibrated probabilities (as the pipeline sees them) for stored face crops."""
    out = []
    for i in range(0, len(face_ids), batch):
        out.append(np.asarray(model.predict(crops(store, face_ids[i : i + batch]), flip=flip), dtype=np.float64))
    return np.concatenate(out) if out else np.zeros((0, len(model.labels)))


def model_logits(store: Store, model: FERModel, face_ids, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits (before temperature) for the crops and their mirror images."""
    a, b = [], []
    for i in range(0, len(face_ids), batch):
        items = crops(store, face_ids[i : i + batch])
        a.append(np.asarray(model.logits(items), dtype=np.float64))
        b.append(np.asarray(model.logits(_mirror(items)), dtype=np.float64))
    k = len(model.labels)
    return (np.concatenate(a) if a else np.zeros((0, k))), (np.concatenate(b) if b else np.zeros((0, k)))


def features(store: Store, model: FERModel, face_ids, flip: bool = False, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings N x C, raw logits N x K) of the faces' stored crops (mirrored with ``flip``) in
    one pass of ``model``, cached in the DB under ``<embedding key>|el`` (``|el|flip``)."""
    key = embedding_key(model) + "|el" + ("|flip" if flip else "")
    face_ids = [int(f) for f in face_ids]
    k = len(model.labels)
    have = load_embeddings(store, key, face_ids)
    todo = [f for f in face_ids if f not in have]
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        items = crops(store, chunk)
        items = _mirror(items) if flip else items
        e, z = model._run(items, [model.embedding_name, model.logits_name])  # one pass, both outputs
        v = np.concatenate([e, z], axis=1).astype("<f4")
        save_embeddings(store, key, [(f, v.shape[1], v[j].tobytes()) for j, f in enumerate(chunk)])
        have.update({f: (v.shape[1], v[j].tobytes()) for j, f in enumerate(chunk)})
    if not face_ids:
        return np.zeros((0, 0)), np.zeros((0, k))
    v = np.stack([np.frombuffer(have[f][1], dtype="<f4") for f in face_ids]).astype(np.float64)
    return v[:, :-k], v[:, -k:]


def face_features(store: Store, runner, face_ids, flip: bool = False, batch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings, raw logits, probe features) of the faces' stored crops (mirrored with ``flip``)
    in one pass of a :class:`~labeler.training.likeness.ProbeRunner`, cached in the DB under
    ``<embedding key>|elp`` (``|elp|flip``)."""
    model = runner.model
    key = embedding_key(model) + "|elp" + ("|flip" if flip else "")
    face_ids = [int(f) for f in face_ids]
    k, c = len(model.labels), runner.emb_dim
    have = load_embeddings(store, key, face_ids)
    todo = [f for f in face_ids if f not in have]
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        items = crops(store, chunk)
        e, z, p = runner.run(_mirror(items) if flip else items)
        v = np.concatenate([e, z, p], axis=1).astype("<f4")
        save_embeddings(store, key, [(f, v.shape[1], v[j].tobytes()) for j, f in enumerate(chunk)])
        have.update({f: (v.shape[1], v[j].tobytes()) for j, f in enumerate(chunk)})
    if not face_ids:
        return np.zeros((0, c)), np.zeros((0, k)), np.zeros((0, 0))
    v = np.stack([np.frombuffer(have[f][1], dtype="<f4") for f in face_ids]).astype(np.float64)
    return v[:, :c], v[:, c : c + k], v[:, c + k :]


def unlabeled_sample(store: Store, n: int = 3000, seed: int = 0) -> np.ndarray:
    """Up to ``n`` face ids without a human label (a seeded sample when there are more): the faces
    the new model is distilled on toward the base model, and the base-agreement check's set."""
    ids = np.array(unlabeled_face_ids(store), dtype=np.int64)
    if len(ids) > n:
        ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
    return ids
