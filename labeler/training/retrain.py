"""`labeler train --mode head`: a residual head (:mod:`labeler.training.head`) trained on every
human label, judged on evidence (issue 32).

- **Judged out of fold.** The human labels are split into folds (grouped by source image,
  stratified by class; ``holdout`` 0.2 = 5 folds); a head trained without each fold answers that
  fold's faces, so every labeled face has an answer from a head that never saw it. The gate
  compares those answers with the project default's on the same faces (paired,
  :mod:`labeler.training.gate`); the temperature is fitted on them. The written head is trained on
  all the labels (the evidence is about the procedure; the final head has more labels than any fold's).
- **The base's domain** comes from the model's shipped features (:mod:`labeler.training.basedomain`;
  no ``--base-data`` needed) or from a ``--base-data`` folder: its replay faces are distilled on and
  are the negatives of the head's :class:`~labeler.training.likeness.Likeness`, its gate faces are
  where the gate checks that the base holds. Without either (a model with no shipped features), the
  head keeps the kNN reach and the gate checks agreement with the base where it is sure.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from labeler.fer.model import FERModel, softmax
from labeler.fer.resolver import load_model
from labeler.store import Store, model_version_rows
from labeler.training.basedomain import BaseDomain, folder_domain, load_base_domain
from labeler.training.data import cv_set, embedding_key, face_features, features, unlabeled_sample
from labeler.training.gate import Outcomes
from labeler.training.head import FAR_POWER, HEAD_SUFFIX, KD, KD_REPLAY, REPLAY_PER_CLASS, fit_residual_head
from labeler.training.judge import answers, held_outcomes, sure_agreement
from labeler.training.likeness import ProbeRunner, fit_likeness
from labeler.training.metrics import evaluate, fit_temperature_pair
from labeler.training.reach import REACH_Q
from labeler.training.residual import ResidualHead, write_residual_onnx
from labeler.training.versions import Candidate, Judged, TrainResult, finish, load, new_version, trained_name, user_models_dir, write_model

#: with base-domain features (the likeness instead of the reach): distillation toward the base on the
#: project's unlabeled faces and on the replayed base-domain faces; chosen on issue 11's experiment
#: (dev), a tuned choice (docs/measurements.md, issue 32)
LIKENESS_KD, LIKENESS_KD_REPLAY = 1.0, 5.0


def root_model(model: FERModel) -> FERModel:
    """The model a residual head is built on: a residual head's own base (a new head is always
    trained from the base, not stacked on the previous head), else the model itself."""
    side = (model.card.meta.get("residual") or {}).get("base_sidecar")
    if side and Path(side).is_file():
        return load_model(str(side))
    return model


def _rows(views, mask=None) -> tuple:
    """Both views of the faces ``mask`` selects, stacked: (E, Z, P or None)."""
    out = []
    for j in range(3):
        parts = [v[j] if mask is None else v[j][mask] for v in views if v[j] is not None]
        out.append(np.concatenate(parts) if len(parts) == len(views) else None)
    return tuple(out)


def _cat(P, E):
    return np.concatenate([P, E], axis=1)


def base_domain_of(model: FERModel, base_data, replay_per_class: int, seed: int, shipped: bool = True,
                   folder: Optional[str | Path] = None) -> tuple[Optional[BaseDomain], Optional[ProbeRunner], str]:
    """(the base's domain, the runner of the probe features, a line saying which): a ``--base-data``
    folder when given, else the shipped features of ``model`` (``folder``: where instead; tests)."""
    if base_data:
        runner = ProbeRunner(model)
        dom = folder_domain(runner, base_data, replay_per_class, seed)
        return dom, runner, f"base domain: --base-data {base_data} ({len(dom.gate)} judged, {len(dom.replay)} replayed)"
    if not shipped:
        return None, None, "base domain: shipped features not used (asked)"
    dom, why = load_base_domain(model, folder)
    return dom, (ProbeRunner(model) if dom is not None else None), why


def train_head(
    store: Store, *, base: Optional[str] = None, out_dir: Optional[str | Path] = None, holdout: float = 0.2, seed: int = 0,
    force: bool = False, l2: float = 1e-2, kd: Optional[float] = None, min_class: int = 3, epochs: int = 300, lr: float = 0.05,
    unlabeled: int = 3000, base_data: Optional[str | Path] = None, kd_replay: Optional[float] = None,
    replay_per_class: int = REPLAY_PER_CLASS, far_power: Optional[float] = None, reach_q: Optional[float] = REACH_Q,
    labels_override: Optional[np.ndarray] = None, shipped: bool = True, domain_folder: Optional[str | Path] = None,
    log: Optional[Callable[[str], None]] = None,
) -> TrainResult:
    """Train a residual head on the human labels; write, register, judge by the gate, maybe promote.

    ``base``: model name/path (default: the project's default; a residual head means its base);
    ``holdout``: the share of each fold (0.2: 5 folds); ``kd``/``kd_replay``: distillation weights
    toward the base on up to ``unlabeled`` faces without a human label / on the base domain's replay
    faces (None: :data:`LIKENESS_KD`/:data:`LIKENESS_KD_REPLAY` with a base domain, else the reach's
    ``KD``/``KD_REPLAY``); ``min_class``: classes with fewer labels keep the base's weights;
    ``base_data``: a ``<class>/*.jpg`` folder of the base's domain instead of the shipped features;
    ``shipped``: use the shipped features (False: as a model without them); ``reach_q``/``far_power``:
    the reach, when there is no base domain; ``labels_override``: tests."""
    t0 = time.perf_counter()
    say = log or (lambda _m: None)
    current = load(store, base)
    model = root_model(current)
    labels = list(model.labels)
    k_folds = max(2, int(round(1.0 / holdout))) if holdout > 0 else 5
    data = cv_set(store, labels, k_folds, seed)
    y, fold, n = data.y, data.fold, len(data.y)
    ytrain = y if labels_override is None else np.asarray(labels_override, dtype=np.int64)
    dom, runner, dom_why = base_domain_of(model, base_data, replay_per_class, seed, shipped, domain_folder)
    say(dom_why)
    like = dom is not None and len(dom.replay) > 0
    kd = (LIKENESS_KD if like else KD) if kd is None else kd
    kd_replay = (LIKENESS_KD_REPLAY if like else KD_REPLAY) if kd_replay is None else kd_replay
    far_power = (0.0 if like else FAR_POWER) if far_power is None else far_power
    ufaces = unlabeled_sample(store, unlabeled, seed)
    say(f"features of {n} labeled and {len(ufaces)} unlabeled faces with {model.ident}")

    def views(ids):
        if runner is not None:
            return face_features(store, runner, ids), face_features(store, runner, ids, flip=True)
        return (*features(store, model, ids), None), (*features(store, model, ids, flip=True), None)

    L, U = views(data.face_ids), views(ufaces)
    Eu, Zu, Pu = _rows(U) if len(ufaces) else (None, None, None)
    Er, Zr, Pr = dom.replay.both_views() if like else (None, None, None)
    t_base = float(model.temperature or 1.0)

    def fit(mask: np.ndarray) -> tuple[ResidualHead, np.ndarray]:
        E, Z, P = _rows(L, mask)
        yt = np.concatenate([ytrain[mask]] * 2)
        kw = dict(t0=t_base, Eu=Eu, Zu=Zu, kd=kd, l2=l2, min_class=min_class, epochs=epochs, lr=lr, Er=Er, Zr=Zr,
                  kd_replay=kd_replay, far_power=far_power)
        if like:
            lk = fit_likeness(_cat(P, E), _cat(Pr, Er), dom.tensors, seed=seed)
            corr = (lk.weights(_cat(P, E)), lk.weights(_cat(Pu, Eu)) if Eu is not None else None, lk.weights(_cat(Pr, Er)))
            dW, db, guarded, _ = fit_residual_head(E, Z, yt, len(labels), corr=corr, **kw)
            return ResidualHead(dW, db, likeness=lk), guarded
        groups = np.concatenate([np.arange(n)[mask]] * 2)  # the face of each row (its views share it)
        dW, db, guarded, reach = fit_residual_head(E, Z, yt, len(labels), reach_q=reach_q, groups=groups, **kw)
        return ResidualHead(dW, db, reach=reach), guarded

    def of(views_, mask=None):
        return tuple(tuple(a if (a is None or mask is None) else a[mask] for a in v) for v in views_)

    oof = np.zeros((2, n, len(labels)))
    for f in range(data.folds):
        m = fold == f
        if m.any() and (~m).any():
            say(f"fold {f + 1} of {data.folds}: {int((~m).sum())} faces to learn from, {int(m.sum())} to answer")
            head_f, _ = fit(~m)
            va, vb = of(L, m)
            oof[0, m], oof[1, m] = head_f.logits(*va), head_f.logits(*vb)
    say(f"the head on all {n} labeled faces")
    final, guarded = fit(np.ones(n, dtype=bool))
    temp = fit_temperature_pair(oof[0], oof[1], y)
    out = Path(out_dir) if out_dir else user_models_dir(store)
    version = new_version()
    name = trained_name(model.name, HEAD_SUFFIX)
    stem = f"{name}-{version}"
    write_residual_onnx(model.card.file, out / f"{stem}.onnx", final.dW, final.db, final.reach, final.likeness)
    training = {"mode": "head", "kind": "residual (base logits + linear correction on the embedding)", "folds": data.folds,
                "holdout": holdout, "seed": seed, "l2": l2, "kd": kd, "distilled_on": f"{len(ufaces)} faces without a human label",
                "min_class": min_class, "guarded_classes": [labels[c] for c in np.flatnonzero(guarded)],
                "guarded_rule": "weights of the base; bias from the distillation terms only", "epochs": epochs,
                "base_domain": dom_why,
                "replay": f"{dom.describe('replay')}, weight {kd_replay}" if like else "none (no base-domain features)",
                "label_softmax": "all classes", "far_power": far_power, "weighting": final.describe(),
                "lr": lr, "flip_augment": True, "class_balanced": True,
                "split": f"{data.folds} cross-validation folds grouped by source image, stratified by class; the head "
                         "written is trained on all of them", "shuffled_labels": labels_override is not None}
    sidecar = write_model(out, stem, model.card, {
        "name": name, "version": version, "embedding_key": embedding_key(model),
        "residual": {"base": model.ident, "base_sidecar": str(Path(model.card.sidecar).resolve()), "base_temperature": t_base},
        "calibration": {"temperature": temp, "fitted_on": f"out-of-fold answers of {n} human-labeled faces ({data.folds} folds, seed {seed})"},
        "training": training, "data": data.counts(),
    })
    cand = Candidate(current, name, version, sidecar, out / f"{stem}.onnx", data, temp, training, started=t0, root=model)
    return finish(store, cand, _judged(store, cand, model, final, temp, oof, L, U, ufaces, dom), force)


def _judged(store: Store, cand: Candidate, root: FERModel, head: ResidualHead, temp: float, oof: np.ndarray, L, U, ufaces,
            dom: Optional[BaseDomain]) -> Judged:
    """The outcomes the gate judges a head on: the default's answers vs the out-of-fold ones on the
    labeled faces; the base vs the head on the base domain's gate faces (or, without them,
    agreement where the base is sure on the unlabeled faces)."""
    d = cand.data
    labels = list(d.labels)
    current = cand.base
    trained = next((set(r["metrics"].get("trained_on") or []) for r in model_version_rows(store)
                    if Path(r["path"]).resolve() == Path(current.card.sidecar).resolve()), set())
    seen = int(np.isin(d.face_ids, list(trained)).sum()) if trained else 0
    what = (f"{len(d.y)} human-labeled faces, the new head's answers out of fold ({d.folds} folds)"
            + (f"; {current.ident} was trained on {seen} of them (its answers there are in-sample)" if seen else ""))
    before, after, held = held_outcomes(labels, d.y, answers(store, current, d.face_ids, root),
                                        softmax(0.5 * (oof[0] + oof[1]), temp), what, current.ident)
    t_base = float(root.temperature or 1.0)
    if dom is not None and len(dom.gate):
        g = dom.gate
        zb = 0.5 * (g.Z + g.Zf)
        zn = head.flip_logits((g.E, g.Z, g.P), (g.Ef, g.Zf, g.Pf))
        how = dom.describe("gate")
        like = None
        if head.likeness is not None:  # the faces the head may move by the project's convention (gate.py)
            like = 0.5 * (head.likeness.prob(_cat(g.P, g.E)) + head.likeness.prob(_cat(g.Pf, g.Ef))) >= 0.5
        out = Outcomes("the base's domain", how, zb.argmax(1) == g.y, zn.argmax(1) == g.y, g.y, tuple(labels), root.ident, like)
        return Judged(before, after, held, [out], {"set": how, "base": evaluate(softmax(zb, t_base), g.y, labels),
                                                    "after": evaluate(softmax(zn, temp), g.y, labels)})
    ua, ub = U
    pb = softmax(0.5 * (ua[1] + ub[1]), t_base) if len(ufaces) else np.zeros((0, len(labels)))

    def new_probs(m):
        return softmax(head.flip_logits(tuple(a[m] if a is not None else None for a in ua),
                                        tuple(a[m] if a is not None else None for a in ub)), temp)

    dom_out, figures, why = sure_agreement(pb, new_probs, labels, root.ident)
    return Judged(before, after, held, [dom_out] if dom_out else [], figures, why)
