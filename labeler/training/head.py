"""A new head on a FER model's ``embedding`` output (numpy only; no torch).

`labeler train --mode head` writes a *residual* head: the base ONNX graph kept whole, its logits
plus a learned linear correction of the embedding (``Gemm`` + ``Add``, same input/output names).
The correction starts at zero (the untrained head is exactly the base: a linear head fitted to the
base's last layer agreed only ~71-83 % top-1 with the base for mini-Xception, whose last layer is a
3x3 conv), is pulled toward zero, is distilled toward the base's probabilities on the project's
unlabeled faces, stays zero for classes with too few labels, and fades with a face's distance
from the labeled faces (:mod:`labeler.training.reach`). Judged by the promotion gate
(:func:`labeler.training.versions.finish`). ``fit_softmax_head``/``write_head_onnx`` (a plain
replacement head) remain for other uses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from labeler.fer.cards import ModelFileError
from labeler.fer.model import FERModel, softmax
from labeler.fer.resolver import load_model
from labeler.store import Store
from labeler.training.data import embedding_key, features, training_set, unlabeled_sample
from labeler.training.gate import read_rgb, replay_sample
from labeler.training.metrics import fit_temperature_pair
from labeler.training.reach import REACH_Q, Reach, knn_distance, make_reach, reach_initializers, reach_nodes
from labeler.training.versions import Candidate, TrainResult, finish, load, new_version, trained_name, user_models_dir, write_model

#: a head is named after the shipped model it descends from: ``fer-ferplus-cnn-head``
HEAD_SUFFIX = "-head"
#: distillation weights toward the base: on the project's unlabeled faces, and on replayed images of
#: the base's own domain (``--base-data``); images per class replayed; how much more a face far from
#: the labeled faces is distilled (:func:`far_weights`). Chosen on issue 11's experiment
#: (scripts/eval_retrain_domains.py, README "Retraining"), which is the dev set: a tuned choice
KD, KD_REPLAY, REPLAY_PER_CLASS, FAR_POWER = 3.0, 5.0, 200, 2.0


def far_weights(X: np.ndarray, labeled: np.ndarray, power: float, ref: Optional[float] = None, k: int = 5) -> tuple[np.ndarray, float]:
    """Per-row distillation weights of ``X``: its mean distance to its ``k`` nearest ``labeled``
    rows over ``ref`` (default: the median of those distances), to ``power``, clipped to 0.1..10;
    and the ``ref`` used. Where the labels say nothing (faces unlike any labeled face: another
    domain, a class nobody labeled) the base's answers weigh more; near the labeled faces the labels
    may move them."""
    d = knn_distance(X, labeled, k)
    ref = float(np.median(d)) if ref is None else ref
    return np.clip((d / max(ref, 1e-9)) ** power, 0.1, 10.0), ref


def image_features(model: FERModel, paths: Sequence[Path], flip: bool = True, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings, raw logits) of image files with ``model``, each image and, with ``flip``, its
    mirror image (2N rows then); (None, None) for no paths."""
    if not paths:
        return None, None
    imgs = read_rgb(paths)
    if flip:
        imgs += [np.ascontiguousarray(im[:, ::-1]) for im in imgs]
    es, zs = [], []
    for i in range(0, len(imgs), batch):
        e, z = model._run(imgs[i : i + batch], [model.embedding_name, model.logits_name])
        es.append(e)
        zs.append(z)
    return np.concatenate(es).astype(np.float64), np.concatenate(zs).astype(np.float64)



def _adam_step(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float,
               b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """One Adam update of ``p`` in place from gradient ``g``; returns the new moments (m, v)."""
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g ** 2
    p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return m, v

def old_head(onnx_path: Path, labels: Sequence[str]) -> Optional[tuple[np.ndarray, np.ndarray, str]]:
    """(W (K,C), b (K,), how) of the model's current head as a linear map of ``embedding``, if the
    graph lets us read one: a Gemm/MatMul on ``embedding`` (a head model), or the final Conv whose
    input ``embedding`` is the global average of (W summed over its kernel: exact for 1x1, an
    approximation for larger kernels because of zero padding at the borders)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(onnx_path))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    prod = {o: n for n in m.graph.node for o in n.output}
    emb = prod.get("embedding")
    feat = None
    if emb is not None and emb.op_type in ("GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Squeeze", "Identity"):
        cur = emb
        while cur is not None and cur.op_type in ("Flatten", "Reshape", "Squeeze", "Identity"):
            cur = prod.get(cur.input[0])
        if cur is not None and cur.op_type in ("GlobalAveragePool", "ReduceMean"):
            feat = cur.input[0]
    for n in m.graph.node:
        if n.op_type == "Gemm" and n.input[0] == "embedding" and n.input[1] in inits:
            w = inits[n.input[1]]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = w if attrs.get("transB", 0) else w.T
            b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] in inits else np.zeros(w.shape[0])
            if w.shape[0] == len(labels):
                return w.astype(np.float64), b.astype(np.float64).reshape(-1), "gemm"
        if feat is not None and n.op_type == "Conv" and n.input[0] == feat and n.input[1] in inits:
            w = inits[n.input[1]]
            if w.shape[0] != len(labels):
                continue
            b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] in inits else np.zeros(w.shape[0])
            how = "conv1x1" if w.shape[2:] == (1, 1) else f"conv{w.shape[2]}x{w.shape[3]}-summed"
            return w.sum(axis=(2, 3)).astype(np.float64), b.astype(np.float64), how
    return None


def fit_softmax_head(
    X: np.ndarray, y: np.ndarray, k: int, *, w0: Optional[np.ndarray] = None, b0: Optional[np.ndarray] = None,
    l2: float = 1e-2, epochs: int = 300, lr: float = 0.05, sample_weight: Optional[np.ndarray] = None, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, full-batch Adam: mean class-balanced cross-entropy +
    ``l2`` * ||W - W0||^2 (toward the old head; toward 0 without one). Classes absent from ``y``
    keep their prior weights (or, without a prior, zero weights and a bias well below the others)."""
    n, c = X.shape
    present = np.bincount(y, minlength=k) > 0
    if w0 is None:
        w0 = np.zeros((k, c))
        b0 = np.zeros(k)
        no_prior = True
    else:
        b0 = np.zeros(k) if b0 is None else b0
        no_prior = False
    counts = np.bincount(y, minlength=k).astype(np.float64)
    cw = np.where(counts > 0, n / (present.sum() * np.maximum(counts, 1)), 0.0)
    sw = cw[y] * (sample_weight if sample_weight is not None else 1.0)
    sw = sw / sw.sum()
    # scale features for a well-conditioned optimisation; the prior is mapped into that space
    mu = X.mean(axis=0)
    sd = X.std(axis=0) + 1e-6
    Xs = (X - mu) / sd
    W = w0 * sd  # W x = (W*sd) xs + W mu
    b = b0 + w0 @ mu
    Wp, bp = W.copy(), b.copy()
    # the penalty is on the original-space weights: l2 * ||W_orig - w0||^2 = l2 * ||(W - Wp) / sd||^2
    inv = 1.0 / (sd ** 2)[None, :]
    Y = np.eye(k)[y]
    mW, vW = np.zeros_like(W), np.zeros_like(W)
    mb, vb = np.zeros_like(b), np.zeros_like(b)
    fixed = ~present if not no_prior else np.zeros(k, dtype=bool)
    for t in range(1, epochs + 1):
        P = softmax(Xs @ W.T + b)
        G = (P - Y) * sw[:, None]
        gW = G.T @ Xs + 2 * l2 * (W - Wp) * inv
        gb = G.sum(axis=0)
        gW[fixed] = 0.0  # absent classes: keep the old head's row
        gb[fixed] = 0.0
        mW, vW = _adam_step(W, gW, mW, vW, t, lr)
        mb, vb = _adam_step(b, gb, mb, vb, t, lr)
    if no_prior and (~present).any():
        W[~present] = 0.0
        b[~present] = b[present].min() - 5.0
    W_orig = W / sd
    b_orig = b - W_orig @ mu
    return W_orig, b_orig


def write_head_onnx(base_onnx: Path, out_onnx: Path, W: np.ndarray, b: np.ndarray) -> None:
    """The base graph with its ``logits`` recomputed by ``Gemm(embedding, W^T) + b``; nodes that only
    fed the old logits are dropped. Input/output names are kept."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(base_onnx))
    g = m.graph
    outs = [o.name for o in g.output]
    if "logits" not in outs or "embedding" not in outs:
        raise ModelFileError(f"{base_onnx}: expected outputs 'logits' and 'embedding', found {', '.join(outs)}")
    wname, bname = "head_retrained/W", "head_retrained/b"
    gemm = helper.make_node("Gemm", ["embedding", wname, bname], ["logits"], name="head_retrained/Gemm", transB=1)
    old = [n for n in g.node if "logits" not in n.output]
    nodes = old + [gemm]
    # keep only what the outputs need
    prod = {o: i for i, n in enumerate(nodes) for o in n.output}
    need, stack = set(), list(outs)
    seen: set[str] = set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        i = prod.get(t)
        if i is not None and i not in need:
            need.add(i)
            stack.extend(x for x in nodes[i].input if x)
    kept = [n for i, n in enumerate(nodes) if i in need]
    used = {x for n in kept for x in n.input}
    inits = [t for t in g.initializer if t.name in used and t.name not in (wname, bname)]
    inits += [numpy_helper.from_array(W.astype(np.float32), wname), numpy_helper.from_array(b.astype(np.float32), bname)]
    del g.node[:]
    g.node.extend(kept)
    del g.initializer[:]
    g.initializer.extend(inits)
    vi = [v for v in g.value_info if v.name in used or v.name in outs]
    del g.value_info[:]
    g.value_info.extend(vi)
    for o in g.output:
        if o.name == "logits":
            o.type.tensor_type.elem_type = TensorProto.FLOAT
    onnx.checker.check_model(m)
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(out_onnx))


# --------------------------------------------------------------------------------------------
# the residual head: the base model's logits plus a learned correction (keeps what the base knows)


def fit_residual_head(
    E: np.ndarray, Z: np.ndarray, y: np.ndarray, k: int, *, t0: float = 1.0, Eu: Optional[np.ndarray] = None,
    Zu: Optional[np.ndarray] = None, kd: float = 1.0, l2: float = 1e-2, min_class: int = 3, epochs: int = 300,
    lr: float = 0.05, Er: Optional[np.ndarray] = None, Zr: Optional[np.ndarray] = None, kd_replay: float = 1.0,
    covered_softmax: bool = False, far_power: float = 0.0, reach_q: Optional[float] = None,
    groups: Optional[np.ndarray] = None, guarded_bias_kd: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Optional[Reach]]:
    """A correction (dW (K,C), db (K,)) so that ``softmax((Z + T0 (E dW^T + db)) / T0)`` fits the labels.

    ``E``/``Z``: embeddings and the base model's raw logits of the human-labeled faces, ``y`` their
    classes; ``t0``: the base's temperature (the base's probabilities are softmax(Z / t0)).
    Loss: class-balanced cross-entropy on the labels over all classes (with ``covered_softmax``:
    over the classes the labels cover only) + ``kd`` * KL(base || new) on the unlabeled faces
    ``Eu``/``Zu`` (distillation: where nobody labeled, the new model answers as the base did) +
    ``kd_replay`` * KL(base || new) on ``Er``/``Zr``, images of the base's own domain (replay: a
    one-domain label set cannot move the answers on the others) + ``l2`` * ||dW||^2 on standardised
    embeddings. With ``far_power`` each distilled face weighs more the further it is from the labeled
    faces (:func:`far_weights`). With ``reach_q`` the correction is fitted as it will be applied: times
    each face's :class:`Reach` weight (``groups``: the face of each labeled row, for the radius).
    Guard: classes with fewer than ``min_class`` labels keep the base's weights (their rows of
    ``dW`` stay zero): a label of another class still counts against them for that face (a face
    labeled sad is no neutral face), but only the covered classes learn from the labels. With
    ``guarded_bias_kd`` their bias follows the distillation terms alone (never the labels): where
    the covered classes' corrections raise them on every face a little, an unlabeled class keeps its
    share of the base's answers (web_pool has no neutral folder: without it FER2013's neutral faces
    drifted to sad); without it their bias stays zero too.
    Starts at zero: the untrained head IS the base model. Returns (dW, db, guarded classes mask, reach
    or None)."""
    n, c = E.shape
    counts = np.bincount(y, minlength=k).astype(np.float64)
    guarded = counts < min_class  # min_class 0: no guard (tests: a deliberately harmful head)
    free = ~guarded
    allE = np.concatenate([E, *(a for a in (Eu, Er) if a is not None and len(a))])
    mu, sd = allE.mean(axis=0), allE.std(axis=0) + 1e-6
    Xs = (E - mu) / sd
    U = Zu / t0 if Zu is not None and len(Zu) else None
    Xu = (Eu - mu) / sd if U is not None else None
    Pu = softmax(U) if U is not None else None
    R = Zr / t0 if Zr is not None and len(Zr) else None
    Xr = (Er - mu) / sd if R is not None else None
    Pr = softmax(R) if R is not None else None
    wu = np.ones(len(U)) if U is not None else None
    wr = np.ones(len(R)) if R is not None else None
    if far_power:  # one reference distance for both sets: the project's unlabeled faces' median
        ref = None
        if U is not None:
            wu, ref = far_weights(Xu, Xs, far_power)
        if R is not None:
            wr = far_weights(Xr, Xs, far_power, ref)[0]
    reach = make_reach(Xs, mu, sd, groups, q=reach_q) if reach_q else None
    gl = reach.of_standardised(Xs)[:, None] if reach else np.ones((n, 1))
    gu = reach.of_standardised(Xu)[:, None] if reach and U is not None else (np.ones((len(U), 1)) if U is not None else None)
    gr = reach.of_standardised(Xr)[:, None] if reach and R is not None else (np.ones((len(R), 1)) if R is not None else None)
    cw = np.where(counts > 0, n / (max(1, (counts > 0).sum()) * np.maximum(counts, 1)), 0.0)
    sw = cw[y] / cw[y].sum()
    Y = np.eye(k)[y]
    Zs = Z / t0
    mask = np.where(guarded, -np.inf, 0.0) if covered_softmax else np.zeros(k)
    W = np.zeros((k, c))
    b = np.zeros(k)
    mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    for t in range(1, epochs + 1):
        # the labels compare only the classes they cover: a label set without class c is no evidence
        # against c (a one-domain set often lacks whole classes), so c's probability is left to the KD term
        G = (softmax(Zs + gl * (Xs @ W.T + b) + mask) - Y) * sw[:, None] * gl
        gW = G.T @ Xs + 2 * l2 * W
        gb = G.sum(axis=0)
        gb[guarded] = 0.0  # the labels never move a guarded class
        if U is not None and kd > 0:
            Gu = (softmax(U + gu * (Xu @ W.T + b)) - Pu) * (kd * wu / len(U))[:, None] * gu
            gW += Gu.T @ Xu
            gb += Gu.sum(axis=0)
        if R is not None and kd_replay > 0:
            Gr = (softmax(R + gr * (Xr @ W.T + b)) - Pr) * (kd_replay * wr / len(R))[:, None] * gr
            gW += Gr.T @ Xr
            gb += Gr.sum(axis=0)
        gW[guarded] = 0.0
        if not guarded_bias_kd:
            gb[guarded] = 0.0
        mW, vW = _adam_step(W, gW, mW, vW, t, lr)
        mb, vb = _adam_step(b, gb, mb, vb, t, lr)
    W[~free] = 0.0
    if not guarded_bias_kd:
        b[~free] = 0.0
    # back to raw embeddings and the raw-logit scale: logits = Z + E (t0 W / sd)^T + t0 (b - (W / sd) mu)
    Wr = W / sd
    return t0 * Wr, t0 * (b - Wr @ mu), guarded, reach


def write_residual_onnx(base_onnx: Path, out_onnx: Path, dW: np.ndarray, db: np.ndarray, reach: Optional[Reach] = None) -> None:
    """The base graph with ``logits = base logits + Gemm(embedding, dW^T) + db`` (times the face's
    :class:`Reach` weight where ``reach`` is given): every node of the base kept (its logits renamed
    ``head_residual/base_logits``); input/output names unchanged."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load(str(base_onnx))
    g = m.graph
    outs = [o.name for o in g.output]
    if "logits" not in outs or "embedding" not in outs:
        raise ModelFileError(f"{base_onnx}: expected outputs 'logits' and 'embedding', found {', '.join(outs)}")
    base_name = "head_residual/base_logits"
    for n in g.node:
        n.output[:] = [base_name if o == "logits" else o for o in n.output]
        n.input[:] = [base_name if i == "logits" else i for i in n.input]
    for v in g.value_info:
        if v.name == "logits":
            v.name = base_name
    wn, bn = "head_residual/dW", "head_residual/db"
    g.initializer.extend([numpy_helper.from_array(dW.astype(np.float32), wn), numpy_helper.from_array(db.astype(np.float32), bn)])
    delta = "head_residual/delta"
    g.node.append(helper.make_node("Gemm", ["embedding", wn, bn], [delta], name="head_residual/Gemm", transB=1))
    if reach is not None:
        g.initializer.extend(reach_initializers(reach))
        g.node.extend(reach_nodes("embedding", delta, "head_residual/reached"))
        delta = "head_residual/reached"
    g.node.append(helper.make_node("Add", [base_name, delta], ["logits"], name="head_residual/Add"))
    onnx.checker.check_model(m)
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(out_onnx))


def root_model(store: Store, model: FERModel) -> FERModel:
    """The model a residual head is built on: a residual head's own base (a new head is always
    trained from the base, not stacked on the previous head), else the model itself."""
    side = (model.card.meta.get("residual") or {}).get("base_sidecar")
    if side and Path(side).is_file():
        return load_model(str(side))
    return model


def train_head(
    store: Store, *, base: Optional[str] = None, out_dir: Optional[str | Path] = None, holdout: float = 0.2,
    seed: int = 0, force: bool = False, l2: float = 1e-2, kd: float = KD, min_class: int = 3, epochs: int = 300,
    lr: float = 0.05, flip: bool = True, unlabeled: int = 3000, base_data: Optional[str | Path] = None,
    kd_replay: float = KD_REPLAY, replay_per_class: int = REPLAY_PER_CLASS, far_power: float = FAR_POWER,
    reach_q: Optional[float] = REACH_Q, labels_override: Optional[np.ndarray] = None, log: Optional[Callable[[str], None]] = None,
) -> TrainResult:
    """Train a residual head on the human labels; write, register, judge by the gate, maybe promote.

    ``base``: model name/path (default: the project's default; a residual head means its base).
    ``kd``: the weight of distillation toward the base on up to ``unlabeled`` faces without a human
    label; ``min_class``: classes with fewer labels keep the base's logit; ``base_data``: a folder
    of the base's domain (``<class>/*.jpg``): the gate's base-domain check, and other images of it
    (up to ``replay_per_class`` per class) the head is distilled on with weight ``kd_replay``;
    ``reach_q``: the head's :class:`Reach` (None: the correction applies to every face alike);
    ``labels_override``: tests."""
    t0 = time.perf_counter()
    current = load(store, base)
    model = root_model(store, current)
    data = training_set(store, model.labels, holdout, seed)
    labels, y, tr, held = data.labels, data.y, data.train, data.held
    ytrain = y if labels_override is None else np.asarray(labels_override, dtype=np.int64)
    ufaces = unlabeled_sample(store, unlabeled, seed)
    if log:
        log(f"features of {len(y)} labeled and {len(ufaces)} unlabeled faces with {model.ident}")
    E, Z = features(store, model, data.face_ids)
    Eu, Zu = features(store, model, ufaces)
    views = [(E, Z, Eu, Zu)]
    if flip:
        views.append((*features(store, model, data.face_ids, flip=True), *features(store, model, ufaces, flip=True)))
    Etr = np.concatenate([v[0][tr] for v in views])
    Ztr = np.concatenate([v[1][tr] for v in views])
    ytr = np.concatenate([ytrain[tr]] * len(views))
    gtr = np.concatenate([np.arange(len(y))[tr]] * len(views))  # the face of each row (its views share it)
    Eun = np.concatenate([v[2] for v in views]) if len(ufaces) else None
    Zun = np.concatenate([v[3] for v in views]) if len(ufaces) else None
    t_base = float(model.temperature or 1.0)
    rpaths = replay_sample(base_data, labels, replay_per_class, seed) if base_data and replay_per_class > 0 else []
    Er, Zr = image_features(model, rpaths, flip)
    if log and rpaths:
        log(f"replay: {len(rpaths)} images of {base_data} (the gate judges on others)")
    dW, db, guarded, reach = fit_residual_head(Etr, Ztr, ytr, len(labels), t0=t_base, Eu=Eun, Zu=Zun, kd=kd, l2=l2,
                                               min_class=min_class, epochs=epochs, lr=lr, Er=Er, Zr=Zr,
                                               kd_replay=kd_replay, far_power=far_power, reach_q=reach_q, groups=gtr)

    def heldout_logits(v):
        w = reach.weights(v[0][held])[:, None] if reach is not None else 1.0
        return v[1][held] + w * (v[0][held] @ dW.T + db)

    temp = fit_temperature_pair(heldout_logits(views[0]), heldout_logits(views[1]) if flip else None, y[held])
    out = Path(out_dir) if out_dir else user_models_dir(store)
    version = new_version()
    name = trained_name(model.name, HEAD_SUFFIX)
    stem = f"{name}-{version}"
    write_residual_onnx(model.card.file, out / f"{stem}.onnx", dW, db, reach)
    training = {"mode": "head", "kind": "residual (base logits + linear correction on the embedding)", "holdout": holdout,
                "seed": seed, "l2": l2, "kd": kd, "distilled_on": f"{len(ufaces)} faces without a human label",
                "min_class": min_class, "guarded_classes": [labels[c] for c in np.flatnonzero(guarded)],
                "guarded_rule": "weights of the base; bias from the distillation terms only", "epochs": epochs,
                "replay": f"{len(rpaths)} images of {base_data}, weight {kd_replay}" if rpaths else "none (no --base-data)",
                "label_softmax": "all classes", "far_power": far_power,
                "reach": {"quantile": reach_q, **reach.describe()} if reach is not None else "none (every face alike)",
                "lr": lr, "flip_augment": flip, "class_balanced": True, "split": "grouped by source image, stratified by class",
                "shuffled_labels": labels_override is not None}
    sidecar = write_model(out, stem, model.card, {
        "name": name, "version": version, "embedding_key": embedding_key(model),
        "residual": {"base": model.ident, "base_sidecar": str(Path(model.card.sidecar).resolve()), "base_temperature": t_base},
        "calibration": {"temperature": temp, "fitted_on": f"{int(held.sum())} held-out human-labeled faces (seed {seed})"},
        "training": training, "data": data.counts(),
    })
    cand = Candidate(current, name, version, sidecar, out / f"{stem}.onnx", data, temp, training, started=t0,
                     root=model, unlabeled=ufaces, base_data=base_data)
    return finish(store, cand, force)
