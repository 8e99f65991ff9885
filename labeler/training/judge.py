"""What the gate judges, gathered by running models: the project default's answers on the labeled
faces (the "old" side of every held-out comparison), and a whole judgement for a model that is not a
residual head (a finetuned network: :func:`judge_model`)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from labeler.fer.model import FERModel, softmax
from labeler.store import Store
from labeler.training.basedomain import PER_CLASS, base_data_sample, read_rgb
from labeler.training.data import features, model_probs
from labeler.training.gate import SURE, Outcomes
from labeler.training.metrics import evaluate
from labeler.training.versions import Candidate, Judged


def answers(store: Store, model: FERModel, face_ids, root: Optional[FERModel] = None) -> np.ndarray:
    """Flip-averaged calibrated probabilities of stored faces, as the pipeline computes them: from
    the cached features where ``model`` is the network ``root`` (same file, any temperature), else by
    running ``model`` on the crops (a residual head, a finetuned network: exactly what it answers)."""
    face_ids = np.asarray(face_ids, dtype=np.int64)
    if root is not None and model.card.sha256 == root.card.sha256:
        z1, z2 = features(store, root, face_ids)[1], features(store, root, face_ids, flip=True)[1]
        return softmax(0.5 * (z1 + z2), float(model.temperature or 1.0))
    return model_probs(store, model, face_ids, flip=True)


def held_outcomes(labels, y: np.ndarray, p_old: np.ndarray, p_new: np.ndarray, what: str, old: str) -> tuple[dict, dict, Outcomes]:
    """(before, after, outcomes) of the old and new probabilities of the same labeled faces."""
    return (evaluate(p_old, y, labels), evaluate(p_new, y, labels),
            Outcomes("held-out human labels", what, p_old.argmax(1) == y, p_new.argmax(1) == y, y, tuple(labels), old))


def judge_model(store: Store, cand: Candidate, new: FERModel, base_data=None, unlabeled=None) -> Judged:
    """A candidate that is a network of its own, judged by running it: on the held-out part of the
    human labels (against the project's default), and on the base's domain: a ``--base-data``
    folder's seeded sample, else agreement with the base where it is sure on ``unlabeled`` faces.
    (Shipped base-domain features describe the base network, not this one: not usable here.)"""
    d = cand.data
    root = cand.root or cand.base
    labels = list(d.labels)
    hf, y = d.face_ids[d.held], d.y[d.held]
    before, after, held = held_outcomes(labels, y, answers(store, cand.base, hf, root), answers(store, new, hf, root),
                                        f"{len(hf)} held-out faces", cand.base.ident)
    if base_data:
        paths, yb = base_data_sample(base_data, labels)
        imgs = read_rgb(paths)
        pb = np.asarray(root.predict(imgs, flip=True), dtype=np.float64)
        pn = np.asarray(new.predict(imgs, flip=True), dtype=np.float64)
        how = f"{len(paths)} images of --base-data {base_data} (up to {PER_CLASS} per class, seeded)"
        dom = Outcomes("the base's domain", how, pb.argmax(1) == yb, pn.argmax(1) == yb, yb, tuple(labels), root.ident)
        return Judged(before, after, held, [dom], {"set": how, "base": evaluate(pb, yb, labels), "after": evaluate(pn, yb, labels)})
    ids = np.asarray(unlabeled if unlabeled is not None else [], dtype=np.int64)
    pb = answers(store, root, ids, root) if len(ids) else np.zeros((0, len(labels)))
    dom, figures, why = sure_agreement(pb, lambda m: answers(store, new, ids[m], root), labels, root.ident)
    return Judged(before, after, held, [dom] if dom else [], figures, why)


def sure_agreement(pb: np.ndarray, new_probs, labels, base_ident: str) -> tuple[Optional[Outcomes], dict, Optional[str]]:
    """The offline stand-in for the base's domain: the faces without a human label where the base is
    sure (top probability >= :data:`~labeler.training.gate.SURE`), its answer standing in for the
    label (the base scores 100% there by definition). ``pb``: the base's probabilities of those
    faces; ``new_probs(mask)``: the new model's of the faces ``mask`` selects. (outcomes, figures,
    why not measured)."""
    if not len(pb):
        return None, {}, "no --base-data, no base-domain features for the model and no face without a human label"
    mask = pb.max(axis=1) >= SURE
    if not mask.any():
        return None, {}, f"the base is sure (p >= {SURE}) of none of the {len(pb)} faces without a human label"
    pn = np.asarray(new_probs(mask), dtype=np.float64)
    yb = pb[mask].argmax(axis=1)
    what = (f"agreement with {base_ident} on the {int(mask.sum())} of {len(pb)} faces without a human label where it is sure, "
            f"p >= {SURE} (no base-domain features for it, no --base-data)")
    dom = Outcomes("the project's faces where the base is sure", what, np.ones(len(yb), dtype=bool), pn.argmax(axis=1) == yb,
                   yb, tuple(labels), base_ident)
    return dom, {"set": what, "base": evaluate(pb[mask], yb, labels), "after": evaluate(pn, yb, labels)}, None
