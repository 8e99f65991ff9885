"""`labeler train` / `labeler models` / `labeler calibrate`: learn from the human labels.

Three ways to improve the FER model with the labels a team has gathered, all evaluated the same way
(on a held-out part of the human labels, split by source image and stratified by class) and all
promoted to the project's default model only when they are better there (macro-F1, ties by
accuracy) or when forced:

- ``train_head``: a new softmax head (multinomial logistic regression, numpy) on the current
  model's ``embedding`` output, regularised toward the shipped head; written as the base ONNX graph
  with its head replaced by a ``Gemm`` on ``embedding`` (same input/output names), plus a sidecar.
- ``train_finetune`` (the ``train`` extra): the whole network in PyTorch (``labeler.torchnet``),
  head first with the backbone frozen, then every layer at a lower rate; exported to ONNX.
- ``calibrate``: a temperature for any model (the shipped one included) fitted on held-out human
  labels. It is written as a *calibrated copy of the sidecar* in the user models folder, pointing
  at the same ONNX file, with ``calibration.temperature`` set and a version suffixed ``+cal...``; it
  is registered in ``model_versions`` and becomes the default model. Nothing else has to know about
  it: ``models.load_model(<sidecar>)`` applies the sidecar's temperature, and the changed ident
  makes `autolabel`/`repropose` re-propose the faces with the calibrated probabilities.

Embeddings are cached per (face, embedding key) in the ``embeddings`` table; the key is the ident
of the model whose backbone computed them (a head model keeps its parent's key, since its backbone
is the same graph), with ``|flip`` for the horizontally flipped crop.

User models live in ``$LABELER_USER_MODELS`` or a ``labeler_models/`` folder beside the SQLite file.
No torch at module level.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from labeler.store import core as st
from labeler.ingest.imageio import decode_crop
from labeler.fer.cards import ModelFileError, find_cards, read_card, write_card
from labeler.fer.calibration import expected_calibration_error, fit_temperature
from labeler.fer.model import softmax as _softmax
from labeler.store import Store
from labeler.types import LABELS

DEFAULT_MODEL_KEY = "default_model"
USER_MODELS_ENV = "LABELER_USER_MODELS"
HEAD_NAME = "fer-mini-xception-head"
FINETUNE_NAME = "fer-mini-xception-ft"
SKIP_LABELS = ("unusable",)


# --------------------------------------------------------------------------------------------
# places and models


def user_models_dir(store: Store) -> Path:
    """Where trained / calibrated models go: ``$LABELER_USER_MODELS``, else ``labeler_models/``
    beside the SQLite database file (else in the working directory)."""
    env = os.environ.get(USER_MODELS_ENV)
    if env:
        return Path(env)
    url = store.url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url[len("sqlite:///"):]).resolve().parent / "labeler_models"
    return Path.cwd() / "labeler_models"


def _load(name_or_path: Optional[str] = None, store: Optional[Store] = None):
    from labeler.fer.model import load_model

    if name_or_path is None and store is not None:
        name_or_path = store.get_setting(DEFAULT_MODEL_KEY) or None
    if store is not None and name_or_path and not str(name_or_path).endswith((".json", ".onnx")):
        reg = _registered(store).get(str(name_or_path))
        if reg:
            name_or_path = reg
    return load_model(name_or_path)


def shipped_model():
    """The shipped default FER model itself (not a same-named calibrated copy in a user folder)."""
    from labeler.fer.cards import default_models_dir
    from labeler.fer.model import DEFAULT_MODEL, load_model

    for c in find_cards("fer", [default_models_dir()]):
        if c.name == DEFAULT_MODEL:
            return load_model(str(c.sidecar))
    return load_model(None)


def _registered(store: Store) -> dict[str, str]:
    """name and name@version -> sidecar path of model versions registered in the database (newest wins)."""
    out: dict[str, str] = {}
    for r in st.model_version_rows(store):
        out[r["name"]] = r["path"]
        out[f"{r['name']}@{r['version']}"] = r["path"]
    return out


def embedding_key(model) -> str:
    return str(model.card.meta.get("embedding_key") or model.ident)


# --------------------------------------------------------------------------------------------
# data


def labeled_data(store: Store, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """(face_ids, image_ids, y as index into ``labels``) of faces with a human majority label,
    and counts of what was skipped (unusable, labels outside the model's classes)."""
    idx = {lab: i for i, lab in enumerate(labels)}
    fids, iids, ys = [], [], []
    skipped: dict[str, int] = {}
    for fid, iid, lab in st.human_labeled_faces(store):
        if lab in SKIP_LABELS or lab not in idx:
            skipped[lab] = skipped.get(lab, 0) + 1
            continue
        fids.append(fid)
        iids.append(iid)
        ys.append(idx[lab])
    return np.array(fids, dtype=np.int64), np.array(iids, dtype=np.int64), np.array(ys, dtype=np.int64), skipped


def grouped_split(groups: np.ndarray, y: np.ndarray, holdout: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean mask of held-out items: whole groups (source images) go to one side, chosen per class
    (a group's class is its most common label) so the held-out part is stratified; every class with
    at least two groups gets at least one held-out group."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(y), dtype=bool)
    if len(y) == 0 or holdout <= 0:
        return mask
    gclass: dict[int, int] = {}
    for g in np.unique(groups):
        vals, cnt = np.unique(y[groups == g], return_counts=True)
        gclass[int(g)] = int(vals[np.argmax(cnt)])
    held: set[int] = set()
    for c in sorted(set(gclass.values())):
        gs = np.array(sorted(g for g, k in gclass.items() if k == c))
        if len(gs) < 2:
            continue
        n = min(len(gs) - 1, max(1, int(round(holdout * len(gs)))))
        held.update(int(g) for g in rng.permutation(gs)[:n])
    mask[:] = [int(g) in held for g in groups]
    return mask


def _crops(store: Store, face_ids) -> list[np.ndarray]:
    face_ids = [int(f) for f in face_ids]
    raw = st.face_crops(store, face_ids)
    out = []
    for fid in face_ids:
        b = raw.get(int(fid))
        if b is None:
            raise ValueError(f"face {fid} has no stored crop; re-run `labeler autolabel` to detect it again")
        out.append(decode_crop(b))
    return out


def embeddings(store: Store, model, face_ids, flip: bool = False, batch: int = 256) -> np.ndarray:
    """Embeddings of the faces' stored crops (horizontally flipped with ``flip``), cached in the DB."""
    key = embedding_key(model) + ("|flip" if flip else "")
    face_ids = [int(f) for f in face_ids]
    have = st.load_embeddings(store, key, face_ids)
    todo = [f for f in face_ids if f not in have]
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        crops = _crops(store, chunk)
        if flip:
            crops = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
        e = np.asarray(model.embed(crops), dtype="<f4")
        items = [(f, e.shape[1], e[j].tobytes()) for j, f in enumerate(chunk)]
        st.save_embeddings(store, key, items)
        have.update({f: (e.shape[1], e[j].tobytes()) for j, f in enumerate(chunk)})
    if not face_ids:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.frombuffer(have[f][1], dtype="<f4") for f in face_ids]).astype(np.float64)


def model_probs(store: Store, model, face_ids, flip: bool = True, batch: int = 256) -> np.ndarray:
    """The model's calibrated probabilities (as the pipeline sees them) for stored face crops."""
    out = []
    for i in range(0, len(face_ids), batch):
        out.append(np.asarray(model.predict(_crops(store, face_ids[i : i + batch]), flip=flip), dtype=np.float64))
    return np.concatenate(out) if out else np.zeros((0, len(model.labels)))


def model_logits(store: Store, model, face_ids, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits (before temperature) for the crops and their mirror images."""
    a, b = [], []
    for i in range(0, len(face_ids), batch):
        crops = _crops(store, face_ids[i : i + batch])
        a.append(np.asarray(model.logits(crops), dtype=np.float64))
        b.append(np.asarray(model.logits([np.ascontiguousarray(c[:, ::-1]) for c in crops]), dtype=np.float64))
    k = len(model.labels)
    return (np.concatenate(a) if a else np.zeros((0, k))), (np.concatenate(b) if b else np.zeros((0, k)))


# --------------------------------------------------------------------------------------------
# metrics


def softmax(z: np.ndarray) -> np.ndarray:
    return _softmax(z)


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    return float(expected_calibration_error(probs, y, bins=bins))


def evaluate(probs: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro-F1 (over the classes present in ``y``), ECE, NLL and the confusion matrix
    (rows = truth, columns = prediction, in ``labels`` order)."""
    k = len(labels)
    n = len(y)
    if n == 0:
        return {"n": 0}
    pred = probs.argmax(axis=1)
    cm = np.zeros((k, k), dtype=int)
    np.add.at(cm, (y, pred), 1)
    f1s = {}
    for c in np.unique(y):
        tp = cm[c, c]
        prec = tp / max(cm[:, c].sum(), 1)
        rec = tp / max(cm[c, :].sum(), 1)
        f1s[labels[c]] = 0.0 if tp == 0 else float(2 * prec * rec / (prec + rec))
    p_true = np.clip(probs[np.arange(n), y], 1e-12, 1.0)
    return {
        "n": int(n),
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(float(np.mean(list(f1s.values()))), 4),
        "ece": round(ece(probs, y), 4),
        "nll": round(float(-np.log(p_true).mean()), 4),
        "f1": {c: round(v, 4) for c, v in f1s.items()},
        "labels": list(labels),
        "confusion": cm.tolist(),
    }


def better(after: dict, before: dict) -> bool:
    """The promotion rule: a higher held-out macro-F1, ties broken by a higher accuracy."""
    a = (after.get("macro_f1", -1.0), after.get("accuracy", -1.0))
    b = (before.get("macro_f1", -1.0), before.get("accuracy", -1.0))
    return a[0] > b[0] + 1e-9 or (abs(a[0] - b[0]) <= 1e-9 and a[1] > b[1] + 1e-9)


def format_metrics(m: dict) -> list[str]:
    out = []
    for side in ("before", "after"):
        x = m.get(side) or {}
        if not x.get("n"):
            continue
        out.append(f"{side:6s} n={x['n']} accuracy={x['accuracy']:.3f} macro-F1={x['macro_f1']:.3f} ECE={x['ece']:.3f} NLL={x['nll']:.3f}")
    x = m.get("after") or m.get("before") or {}
    if x.get("confusion"):
        labs = x["labels"]
        out.append("confusion (rows truth, columns predicted), after:" if m.get("after") else "confusion:")
        out.append("          " + " ".join(f"{lab[:7]:>7s}" for lab in labs))
        for lab, row in zip(labs, x["confusion"]):
            if sum(row):
                out.append(f"{lab:>9s} " + " ".join(f"{v:7d}" for v in row))
    return out


# --------------------------------------------------------------------------------------------
# temperature


def _avg(l1: np.ndarray, l2: Optional[np.ndarray]) -> np.ndarray:
    """Flip averaging exactly as models.OnnxFERModel.predict does it: the mean of the logits."""
    return l1 if l2 is None else 0.5 * (l1 + l2)


def fit_temperature_pair(l1: np.ndarray, l2: Optional[np.ndarray], y: np.ndarray) -> float:
    """The temperature minimising the NLL of softmax(mean(l1, l2) / T), the probabilities the
    model gives with flip averaging (just softmax(l1 / T) when ``l2`` is None)."""
    if len(y) == 0:
        return 1.0
    return round(float(fit_temperature(_avg(l1, l2), y)), 4)


def _probs_from_logits(l1: np.ndarray, l2: Optional[np.ndarray], t: float) -> np.ndarray:
    return softmax(_avg(l1, l2) / t)


# --------------------------------------------------------------------------------------------
# the softmax head


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


# --------------------------------------------------------------------------------------------
# writing models


def _version() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def write_model(out_dir: Path, stem: str, base_card, meta_extra: dict[str, Any]) -> Path:
    """Write ``<stem>.json`` beside ``<stem>.onnx`` (already written) with the base card's FER facts."""
    base = base_card.meta
    meta = {
        "name": meta_extra.pop("name"),
        "version": meta_extra.pop("version"),
        "kind": base.get("kind", "fer"),
        "file": f"{stem}.onnx",
        "sha256": "",
        "labels": list(base.get("labels", LABELS)),
        "input": base.get("input"),
        "outputs": base.get("outputs"),
        "embedding_dim": base.get("embedding_dim"),
        "licence": base.get("licence", ""),
        "licence_file": base.get("licence_file", ""),
        "source": {"parent": base_card.ident, "parent_sidecar": str(Path(base_card.sidecar).resolve()),
                   "parent_source": base.get("source")},
        **meta_extra,
    }
    if base.get("licence_file") and not os.path.isabs(base["licence_file"]):
        lf = (Path(base_card.sidecar).parent / base["licence_file"]).resolve()
        meta["licence_file"] = str(lf)
    sidecar = out_dir / f"{stem}.json"
    write_card(sidecar, meta)
    return sidecar


def _promote(store: Store, sidecar: Path, metrics: dict, force: bool) -> tuple[bool, str]:
    if force:
        ok, why = True, "forced"
    elif better(metrics["after"], metrics["before"]):
        ok, why = True, "better on held-out (macro-F1, then accuracy)"
    else:
        ok, why = False, "not better on held-out (macro-F1, then accuracy): the default model is unchanged"
    if ok:
        store.set_setting(DEFAULT_MODEL_KEY, str(Path(sidecar).resolve()))
    return ok, why


# --------------------------------------------------------------------------------------------
# train_head


def _prepare(store: Store, model, holdout: float, seed: int, min_labels: int = 4):
    labels = list(model.labels)
    fids, iids, y, skipped = labeled_data(store, labels)
    if len(y) < min_labels:
        raise ValueError(f"not enough human labels to train: found {len(y)} labeled faces (skipped {skipped}), need at least {min_labels}. "
                         "Label faces in the UI or `labeler import` a labels file first.")
    held = grouped_split(iids, y, holdout, seed)
    if not held.any() or held.all():
        raise ValueError(f"could not hold out a part of the {len(y)} labels grouped by image ({len(np.unique(iids))} images): "
                         "label faces of more images (each class needs two images to be held out)")
    return labels, fids, iids, y, held, skipped


def train_head(
    store: Store, *, base: Optional[str] = None, out_dir: Optional[str | Path] = None, holdout: float = 0.2,
    seed: int = 0, force: bool = False, l2: float = 1e-3, epochs: int = 300, lr: float = 0.05, flip: bool = True,
    labels_override: Optional[np.ndarray] = None, verbose: bool = True,
) -> dict[str, Any]:
    """Train a new softmax head on the human labels; write, register and (if better) promote it.

    ``base``: model name/path (default: the project's default model). ``l2``: the pull toward the
    old head (or toward 0). ``labels_override``: replace the training labels (tests: shuffled labels).
    Returns {sidecar, onnx, name, version, promoted, reason, metrics, counts, ...}."""
    t0 = time.perf_counter()
    model = _load(base, store)
    labels, fids, iids, y, held, skipped = _prepare(store, model, holdout, seed)
    ytrain = y.copy()
    if labels_override is not None:
        ytrain = np.asarray(labels_override, dtype=np.int64)
    tr = ~held
    X = embeddings(store, model, fids, flip=False)
    Xf = embeddings(store, model, fids, flip=True) if flip else None
    prior = old_head(model.card.file, labels)
    w0, b0, how = (prior if prior is not None else (None, None, "none"))
    Xtr = X[tr] if Xf is None else np.concatenate([X[tr], Xf[tr]])
    ytr = ytrain[tr] if Xf is None else np.concatenate([ytrain[tr], ytrain[tr]])
    W, b = fit_softmax_head(Xtr, ytr, len(labels), w0=w0, b0=b0, l2=l2, epochs=epochs, lr=lr, seed=seed)
    # temperature on the held-out part, for flip-averaged probabilities as the pipeline computes them
    lh = X[held] @ W.T + b
    lhf = Xf[held] @ W.T + b if Xf is not None else None
    temp = fit_temperature_pair(lh, lhf, y[held])
    out = Path(out_dir) if out_dir else user_models_dir(store)
    version = _version()
    stem = f"{HEAD_NAME}-{version}"
    write_head_onnx(model.card.file, out / f"{stem}.onnx", W, b)
    counts = {
        "labeled_faces": int(len(y)), "train_faces": int(tr.sum()), "heldout_faces": int(held.sum()),
        "train_images": int(len(np.unique(iids[tr]))), "heldout_images": int(len(np.unique(iids[held]))),
        "per_class_train": {labels[c]: int((y[tr] == c).sum()) for c in range(len(labels))},
        "per_class_heldout": {labels[c]: int((y[held] == c).sum()) for c in range(len(labels))},
        "skipped": skipped,
    }
    training = {"mode": "head", "holdout": holdout, "seed": seed, "l2": l2, "epochs": epochs, "lr": lr, "flip_augment": flip,
                "class_balanced": True, "prior_head": how, "split": "grouped by source image, stratified by class",
                "shuffled_labels": labels_override is not None}
    sidecar = write_model(out, stem, model.card, {
        "name": HEAD_NAME, "version": version, "embedding_key": embedding_key(model),
        "calibration": {"temperature": temp, "fitted_on": f"{int(held.sum())} held-out human-labeled faces (seed {seed})"},
        "training": training, "data": counts,
    })
    return _finish(store, model, HEAD_NAME, version, stem, out, Path(sidecar), fids, held, y, labels, temp, training,
                   counts, force, t0, verbose)


def _finish(store: Store, model, name: str, version: str, stem: str, out: Path, sidecar: Path, fids, held, y, labels,
            temp: float, training: dict, counts: dict, force: bool, t0: float, verbose: bool) -> dict[str, Any]:
    """Shared end of a training run: before/after on the held-out faces, promotion rule, figures
    written into the sidecar and the model_versions row, and the report."""
    new = _load(str(sidecar))
    hf = fids[held]
    before = evaluate(model_probs(store, model, hf, flip=True), y[held], labels)
    after = evaluate(model_probs(store, new, hf, flip=True), y[held], labels)
    metrics = {"before": before, "after": after, "base": model.ident, "temperature": temp}
    promoted, why = _promote(store, sidecar, metrics, force)
    # the sidecar records the same figures as the database row
    meta = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    meta["metrics"] = {"heldout_before": before, "heldout_after": after}
    write_card(Path(sidecar), meta)
    metrics.update({"promoted": promoted, "reason": why, "training": training, "data": counts,
                    "seconds": round(time.perf_counter() - t0, 2)})
    st.record_model_version(store, name, version, str(Path(sidecar).resolve()), metrics)
    res = {"sidecar": str(Path(sidecar).resolve()), "onnx": str((out / f"{stem}.onnx").resolve()), "name": name,
           "version": version, "ident": f"{name}@{version}", "promoted": promoted, "reason": why, "metrics": metrics}
    if verbose:
        print("\n".join(report_lines(res)))
    return res


def report_lines(res: dict) -> list[str]:
    m = res["metrics"]
    d = m.get("data", {})
    out = [f"model {res['ident']} (from {m.get('base')})  ->  {res['sidecar']}",
           f"human-labeled faces: {d.get('labeled_faces')} (train {d.get('train_faces')} from {d.get('train_images')} images, "
           f"held out {d.get('heldout_faces')} from {d.get('heldout_images')} images); temperature {m.get('temperature')}"]
    out += format_metrics(m)
    out.append(("promoted to default: " if res["promoted"] else "not promoted: ") + res["reason"])
    return out


# --------------------------------------------------------------------------------------------
# calibrate


def calibrate(store: Store, model: Optional[str] = None, *, holdout: float = 0.2, seed: int = 0, out_dir: Optional[str | Path] = None,
              set_default: Optional[bool] = None, verbose: bool = True) -> dict[str, Any]:
    """Fit a temperature for ``model`` (default: the default model) on held-out human labels.

    For a model trained here (its sidecar has ``training``) the held-out part is that of its own
    split (same seed/holdout); for any other model every human label is held out. Writes a
    calibrated copy of the sidecar (same ONNX file) into the user models folder, registers it, and
    makes it the default when the calibrated model was the default (or ``set_default``)."""
    was_default = model is None or (store.get_setting(DEFAULT_MODEL_KEY) or None) == model
    m = _load(model, store)
    labels = list(m.labels)
    fids, iids, y, skipped = labeled_data(store, labels)
    tr = m.card.meta.get("training")
    if tr:
        held = grouped_split(iids, y, float(tr.get("holdout", holdout)), int(tr.get("seed", seed)))
        where = f"held-out part of its training split (seed {tr.get('seed', seed)})"
    else:
        held = np.ones(len(y), dtype=bool)
        where = "all human labels (the model was not trained on them)"
    if held.sum() < 2:
        raise ValueError(f"not enough held-out human labels to calibrate {m.ident}: {int(held.sum())}")
    hf = fids[held]
    l1, l2 = model_logits(store, m, hf)
    t_old = float((m.card.meta.get("calibration") or {}).get("temperature", 1.0) or 1.0)
    t_new = fit_temperature_pair(l1, l2, y[held])
    before = evaluate(_probs_from_logits(l1, l2, t_old), y[held], labels)
    after = evaluate(_probs_from_logits(l1, l2, t_new), y[held], labels)
    out = Path(out_dir) if out_dir else user_models_dir(store)
    out.mkdir(parents=True, exist_ok=True)
    base_version = str(m.card.meta.get("calibration", {}).get("base_version") or m.card.version)
    version = f"{base_version}+cal{_version()}"
    meta = dict(m.card.meta)
    meta["version"] = version
    meta["file"] = str(Path(m.card.file).resolve())  # the same ONNX file, wherever it is
    if meta.get("licence_file") and not os.path.isabs(meta["licence_file"]):
        meta["licence_file"] = str((Path(m.card.sidecar).parent / meta["licence_file"]).resolve())
    meta["calibration"] = {**(m.card.meta.get("calibration") or {}), "temperature": t_new, "previous_temperature": t_old,
                           "base_version": base_version, "fitted_on": f"{int(held.sum())} human-labeled faces: {where}"}
    meta["calibrated_from"] = str(Path(m.card.sidecar).resolve())
    stem = f"{m.card.name}-{version.replace('+', '-')}"
    sidecar = out / f"{stem}.json"
    write_card(sidecar, meta)
    metrics = {"calibration": True, "before": before, "after": after, "base": m.ident,
               "temperature": t_new, "previous_temperature": t_old}
    st.record_model_version(store, m.card.name, version, str(sidecar.resolve()), metrics)
    make_default = was_default if set_default is None else set_default
    if make_default:
        store.set_setting(DEFAULT_MODEL_KEY, str(sidecar.resolve()))
    res = {"sidecar": str(sidecar.resolve()), "ident": f"{m.card.name}@{version}", "temperature": t_new,
           "previous_temperature": t_old, "default": make_default, "metrics": metrics}
    if verbose:
        print(f"calibrated {m.ident}: temperature {t_old:g} -> {t_new:g} on {int(held.sum())} faces ({where})")
        print(f"ECE {before['ece']:.3f} -> {after['ece']:.3f}, NLL {before['nll']:.3f} -> {after['nll']:.3f}")
        print(f"wrote {sidecar}" + ("; now the default model" if make_default else ""))
    return res


# --------------------------------------------------------------------------------------------
# models


def list_models(store: Store) -> list[dict[str, Any]]:
    """Every FER model known: shipped (models/), in the user models folder, and registered in the
    database; with the default marked and held-out metrics where known."""
    reg = {r["path"]: r for r in st.model_version_rows(store)}
    cards = []
    from labeler.fer.cards import default_models_dir

    for d, where in ((default_models_dir(), "shipped"), (user_models_dir(store), "user")):
        for c in find_cards("fer", [d]):
            cards.append((c, where))
    seen = set()
    out = []
    try:
        dflt_ident = _load(None, store).ident
    except Exception:  # noqa: BLE001 - a broken default is shown, not fatal here
        dflt_ident = None
    for c, where in cards:
        p = str(Path(c.sidecar).resolve())
        seen.add(p)
        r = reg.get(p)
        out.append({"name": c.name, "version": c.version, "ident": c.ident, "path": p, "where": where,
                    "default": c.ident == dflt_ident,
                    "temperature": (c.meta.get("calibration") or {}).get("temperature"),
                    "metrics": (r or {}).get("metrics")})
    for p, r in reg.items():
        if p not in seen:
            out.append({"name": r["name"], "version": r["version"], "ident": f"{r['name']}@{r['version']}", "path": p,
                        "where": "registered (file missing)" if not Path(p).is_file() else "registered",
                        "default": False, "temperature": None, "metrics": r.get("metrics")})
    return out


def set_default(store: Store, name_or_path: Optional[str]) -> str:
    """Make a model the project's default (a sidecar/ONNX path, a name or name@version, or
    ``shipped``/None for the shipped model). Loads it first: a broken model is refused. Returns its ident."""
    if name_or_path in (None, "", "shipped", "none"):
        with store.session() as s:
            row = s.get(st.Setting, DEFAULT_MODEL_KEY)
            if row is not None:
                s.delete(row)
        return shipped_model().ident
    m = _load(str(name_or_path), store)
    store.set_setting(DEFAULT_MODEL_KEY, str(Path(m.card.sidecar).resolve()))
    return m.ident


# --------------------------------------------------------------------------------------------
# finetune (the `train` extra)


def train_finetune(
    store: Store, *, base: Optional[str] = None, out_dir: Optional[str | Path] = None, holdout: float = 0.2, seed: int = 0,
    force: bool = False, head_epochs: int = 5, epochs: int = 10, lr_head: float = 1e-3, lr: float = 1e-4,
    batch_size: int = 64, threads: Optional[int] = None, verbose: bool = True,
) -> dict[str, Any]:
    """Finetune the whole FER network on the human labels (needs torch: ``pip install '.[train]'``)."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise RuntimeError("`labeler train --mode finetune` needs PyTorch: pip install 'labeler[train]' (torch==2.13.0)") from e
    from labeler.training import torchnet

    t0 = time.perf_counter()
    model = _load(base, store)
    labels, fids, iids, y, held, skipped = _prepare(store, model, holdout, seed)
    tr = ~held
    x_all = torchnet.preprocess(_crops(store, fids), model.card.meta.get("input") or {})
    net = torchnet.OnnxNet.from_onnx(model.card.file)
    log = torchnet.finetune(net, x_all[tr], y[tr], len(labels), head_epochs=head_epochs, epochs=epochs, lr_head=lr_head,
                            lr=lr, batch_size=batch_size, seed=seed, threads=threads, verbose=verbose)
    hl = torchnet.logits(net, x_all[held])
    hlf = torchnet.logits(net, x_all[held][..., ::-1].copy())
    # the starting weights kept: keep their calibration too (a temperature fitted on data the base
    # model was trained on would only sharpen it)
    temp = model.temperature if torchnet.kept_start(log) else fit_temperature_pair(hl, hlf, y[held])
    out = Path(out_dir) if out_dir else user_models_dir(store)
    version = _version()
    stem = f"{FINETUNE_NAME}-{version}"
    out.mkdir(parents=True, exist_ok=True)
    torchnet.export_onnx(net, out / f"{stem}.onnx", x_all[:1])
    counts = {"labeled_faces": int(len(y)), "train_faces": int(tr.sum()), "heldout_faces": int(held.sum()),
              "train_images": int(len(np.unique(iids[tr]))), "heldout_images": int(len(np.unique(iids[held]))),
              "per_class_train": {labels[c]: int((y[tr] == c).sum()) for c in range(len(labels))}, "skipped": skipped}
    training = {"mode": "finetune", "holdout": holdout, "seed": seed, "head_epochs": head_epochs, "epochs": epochs,
                "lr_head": lr_head, "lr": lr, "batch_size": batch_size, "class_balanced": True,
                "augment": "flip, rotation +-10 deg, scale 0.9-1.1, brightness/contrast +-20%", "log": log,
                "split": "grouped by source image, stratified by class"}
    sidecar = write_model(out, stem, model.card, {
        "name": FINETUNE_NAME, "version": version,
        "calibration": {"temperature": temp, "fitted_on": f"{int(held.sum())} held-out human-labeled faces (seed {seed})"},
        "training": training, "data": counts})
    return _finish(store, model, FINETUNE_NAME, version, stem, out, Path(sidecar), fids, held, y, labels, temp, training,
                   counts, force, t0, verbose)


def train(store: Store, mode: str = "head", force: bool = False, **kw) -> dict[str, Any]:
    """`labeler train [--mode head|finetune] [--force]`: dispatch to train_head / train_finetune."""
    if mode == "head":
        return train_head(store, force=force, **kw)
    if mode == "finetune":
        return train_finetune(store, force=force, **kw)
    raise ValueError(f"unknown training mode {mode!r}: expected 'head' or 'finetune'")


def models_lines(store: Store) -> list[str]:
    """`labeler models`: one line per model, the default marked with '*'."""
    out = []
    for m in list_models(store):
        after = ((m.get("metrics") or {}).get("after") or {})
        fig = f" held-out macro-F1 {after['macro_f1']:.3f} acc {after['accuracy']:.3f}" if after.get("n") else ""
        t = f" T={m['temperature']:g}" if m.get("temperature") else ""
        out.append(f"{'*' if m['default'] else ' '} {m['ident']:55s} [{m['where']}]{t}{fig}  {m['path']}")
    return out
