"""A new softmax head on a FER model's ``embedding`` output (numpy only; no torch).

Multinomial logistic regression regularised toward the model's current head, written as the base
ONNX graph with its head replaced by a ``Gemm`` on ``embedding`` (same input/output names), plus a
sidecar; evaluated and promoted like every trained model (:func:`labeler.training.versions.finish`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from labeler.fer.cards import ModelFileError
from labeler.fer.model import softmax
from labeler.store import Store
from labeler.training.data import embedding_key, embeddings, training_set
from labeler.training.metrics import fit_temperature_pair
from labeler.training.versions import Candidate, TrainResult, finish, load, new_version, user_models_dir, write_model

HEAD_NAME = "fer-mini-xception-head"


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
    b1, b2, eps = 0.9, 0.999, 1e-8
    fixed = ~present if not no_prior else np.zeros(k, dtype=bool)
    for t in range(1, epochs + 1):
        P = softmax(Xs @ W.T + b)
        G = (P - Y) * sw[:, None]
        gW = G.T @ Xs + 2 * l2 * (W - Wp) * inv
        gb = G.sum(axis=0)
        gW[fixed] = 0.0  # absent classes: keep the old head's row
        gb[fixed] = 0.0
        mW = b1 * mW + (1 - b1) * gW
        vW = b2 * vW + (1 - b2) * gW ** 2
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb ** 2
        W -= lr * (mW / (1 - b1 ** t)) / (np.sqrt(vW / (1 - b2 ** t)) + eps)
        b -= lr * (mb / (1 - b1 ** t)) / (np.sqrt(vb / (1 - b2 ** t)) + eps)
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


def train_head(
    store: Store, *, base: Optional[str] = None, out_dir: Optional[str | Path] = None, holdout: float = 0.2,
    seed: int = 0, force: bool = False, l2: float = 1e-3, epochs: int = 300, lr: float = 0.05, flip: bool = True,
    labels_override: Optional[np.ndarray] = None, log: Optional[Callable[[str], None]] = None,
) -> TrainResult:
    """Train a new softmax head on the human labels; write, register and (if better) promote it.

    ``base``: model name/path (default: the project's default model). ``l2``: the pull toward the
    old head (or toward 0). ``labels_override``: replace the training labels (tests: shuffled labels)."""
    t0 = time.perf_counter()
    model = load(store, base)
    data = training_set(store, model.labels, holdout, seed)
    labels, y, tr, held = data.labels, data.y, data.train, data.held
    ytrain = y if labels_override is None else np.asarray(labels_override, dtype=np.int64)
    if log:
        log(f"embedding {len(y)} faces with {model.ident}")
    X = embeddings(store, model, data.face_ids, flip=False)
    Xf = embeddings(store, model, data.face_ids, flip=True) if flip else None
    prior = old_head(model.card.file, labels)
    w0, b0, how = prior if prior is not None else (None, None, "none")
    Xtr = X[tr] if Xf is None else np.concatenate([X[tr], Xf[tr]])
    ytr = ytrain[tr] if Xf is None else np.concatenate([ytrain[tr], ytrain[tr]])
    W, b = fit_softmax_head(Xtr, ytr, len(labels), w0=w0, b0=b0, l2=l2, epochs=epochs, lr=lr, seed=seed)
    # temperature on the held-out part, for flip-averaged probabilities as the pipeline computes them
    temp = fit_temperature_pair(X[held] @ W.T + b, Xf[held] @ W.T + b if Xf is not None else None, y[held])
    out = Path(out_dir) if out_dir else user_models_dir(store)
    version = new_version()
    stem = f"{HEAD_NAME}-{version}"
    write_head_onnx(model.card.file, out / f"{stem}.onnx", W, b)
    training = {"mode": "head", "holdout": holdout, "seed": seed, "l2": l2, "epochs": epochs, "lr": lr, "flip_augment": flip,
                "class_balanced": True, "prior_head": how, "split": "grouped by source image, stratified by class",
                "shuffled_labels": labels_override is not None}
    sidecar = write_model(out, stem, model.card, {
        "name": HEAD_NAME, "version": version, "embedding_key": embedding_key(model),
        "calibration": {"temperature": temp, "fitted_on": f"{int(held.sum())} held-out human-labeled faces (seed {seed})"},
        "training": training, "data": data.counts(),
    })
    cand = Candidate(model, HEAD_NAME, version, sidecar, out / f"{stem}.onnx", data, temp, training, started=t0)
    return finish(store, cand, force)
