"""A new head on a FER model's ``embedding`` output (numpy only; no torch).

`labeler train --mode head` writes a *residual* head: the base ONNX graph kept whole, its logits
plus a learned linear correction of the embedding (``Gemm`` + ``Add``, same input/output names).
The correction starts at zero (the untrained head is exactly the base: a linear head fitted to the
base's last layer agreed only ~71-83 % top-1 with the base for mini-Xception, whose last layer is a
3x3 conv), is pulled toward zero, is distilled toward the base's probabilities on the project's
unlabeled faces and on replayed faces of the base's own domain, stays zero for classes with too
few labels, and applies to a face in proportion to its weight: its likeness to the labeled faces
(:mod:`labeler.training.likeness`) where the base's domain is known, else its reach
(:mod:`labeler.training.reach`). Trained, judged and promoted by :mod:`labeler.training.retrain`;
written by :mod:`labeler.training.residual`. ``fit_softmax_head``/``write_head_onnx`` (a plain
replacement head) remain for other uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from labeler.fer.cards import ModelFileError
from labeler.fer.model import softmax
from labeler.training.reach import Reach, knn_distance, make_reach

#: a head is named after the shipped model it descends from: ``fer-ferplus-cnn-head``
HEAD_SUFFIX = "-head"
#: with the reach (no base-domain features): distillation weights toward the base on the project's
#: unlabeled faces and on replayed images of the base's own domain; images per class replayed from a
#: ``--base-data`` folder; how much more a face far from the labeled faces is distilled
#: (:func:`far_weights`). Chosen on issue 11's experiment (scripts/eval/eval_retrain_domains.py), which
#: is the dev set: a tuned choice
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
    corr: Optional[tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]] = None,
    kd_rows: Optional[tuple[Optional[np.ndarray], Optional[np.ndarray]]] = None,
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
    if kd_rows is not None:  # per-row distillation weights given (times the far weights)
        wu = wu * kd_rows[0] if wu is not None and kd_rows[0] is not None else wu
        wr = wr * kd_rows[1] if wr is not None and kd_rows[1] is not None else wr
    reach = make_reach(Xs, mu, sd, groups, q=reach_q) if reach_q and corr is None else None
    if corr is not None:
        gl = np.asarray(corr[0], dtype=np.float64)[:, None]
        gu = np.asarray(corr[1], dtype=np.float64)[:, None] if U is not None else None
        gr = np.asarray(corr[2], dtype=np.float64)[:, None] if R is not None else None
    else:
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
