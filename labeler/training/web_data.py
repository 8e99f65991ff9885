"""Web-photo faces for :mod:`labeler.training.web_train` (issue 38): the shipped ONNX's weights loaded
into BaseFERNet, the web sets (web_faces crops, autolabeled single faces), the split grouped by source
repository, confident-learning pruning of noisy labels, and the web validation figures."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from labeler.fer.calibration import class_scores
from labeler.fer.calibration import expected_calibration_error as ece

from .base_data import LABELS
from .base_net import BaseFERNet

#: web_faces crops are the face box grown by 25% on each side; the labeler crops at margin -0.10
WEB_CENTRE = 0.8 / 1.5


# ----------------------------------------------------------------------------------------------
# weights


def load_onnx_init(model: BaseFERNet, onnx_path: Path) -> None:
    """Copy an exported BaseFERNet's weights (BatchNorm folded into the convs) into ``model``."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv"]
    mods = list(model.features)
    pairs = [(mods[i], mods[i + 1]) for i in range(len(mods) - 1) if isinstance(mods[i], torch.nn.Conv2d)]
    if len(convs) != len(pairs):
        raise SystemExit(f"error: expected {len(pairs)} convs in {onnx_path} (BaseFERNet widths {model.widths}), found {len(convs)}; "
                         "pass --widths/--depths of the model in --init (its sidecar's training.architecture)")
    with torch.no_grad():
        for node, (conv, bn) in zip(convs, pairs):
            w, b = np.array(init[node.input[1]]), np.array(init[node.input[2]])
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise SystemExit(f"error: conv weight {tuple(w.shape)} in {onnx_path} does not fit {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        model.fc.weight.copy_(torch.from_numpy(np.array(init["fc.weight"])))
        model.fc.bias.copy_(torch.from_numpy(np.array(init["fc.bias"])))


def freeze_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


# ----------------------------------------------------------------------------------------------
# web data


class WebSet:
    def __init__(self, x, y, groups, files):
        self.x = np.asarray(x, np.uint8).reshape(-1, 48, 48)
        self.y, self.groups, self.files = np.asarray(y, np.int64), np.asarray(groups), np.asarray(files)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx) -> "WebSet":
        idx = np.asarray(idx, np.int64)
        return WebSet(self.x[idx], self.y[idx], self.groups[idx], self.files[idx])

    @staticmethod
    def concat(a: "WebSet", b: "WebSet") -> "WebSet":
        return WebSet(np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]), np.concatenate([a.groups, b.groups]),
                      np.concatenate([a.files, b.files]))


def load_web_faces(folder: Path) -> WebSet:
    xs, ys, gs, fs = [], [], [], []
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            lab = (r.get("label") or "").strip().lower()
            if lab not in LABELS:
                continue
            img = cv2.imread(str(folder / r["file"]), cv2.IMREAD_COLOR)
            if img is None:
                continue
            g = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), cv2.COLOR_RGB2GRAY)
            h, w = g.shape
            s = int(round(min(h, w) * WEB_CENTRE))
            y0, x0 = (h - s) // 2, (w - s) // 2
            xs.append(cv2.resize(g[y0:y0 + s, x0:x0 + s], (48, 48), interpolation=cv2.INTER_AREA))
            ys.append(LABELS.index(lab))
            gs.append(r.get("source_repo") or "web_faces")
            fs.append("web_faces/" + r["file"])
    return WebSet(xs, ys, gs, fs)


def load_npz(path: Path, group: str) -> WebSet:
    d = np.load(path)
    lab = [str(x) for x in d["label"]]
    keep = [i for i, lab_ in enumerate(lab) if lab_ in LABELS]
    return WebSet(d["gray48"][keep], [LABELS.index(lab[i]) for i in keep], [group] * len(keep),
                  [f"{group}/{d['files'][i]}" for i in keep])


def web_split(ws: WebSet, val_repos: set[str], split_repo: str, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_val = np.isin(ws.groups, sorted(val_repos))
    idx = np.flatnonzero(ws.groups == split_repo)
    for k in range(len(LABELS)):  # stratified by class within the split repository
        ik = idx[ws.y[idx] == k]
        n = int(round(frac * len(ik)))
        is_val[rng.permutation(ik)[:n]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _logreg_probs(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, k: int, l2: float = 1e-2) -> np.ndarray:
    """Multinomial logistic regression (standardised inputs, L2 ``l2``, L-BFGS) fitted on (xtr, ytr);
    class probabilities of ``xte``."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xt, xe = (torch.from_numpy((v - mu) / sd).float() for v in (xtr, xte))
    yt = torch.from_numpy(ytr)
    lin = torch.nn.Linear(xt.shape[1], k)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(xt), yt) + l2 * (lin.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return torch.softmax(lin(xe), 1).double().numpy()


def label_issues(emb: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> np.ndarray:
    """Boolean mask of likely label errors: confident learning (:func:`labeler.quality.issues.scores`,
    cleanlab's ``find_label_issues``, prune by noise rate) on out-of-fold probabilities of a logistic
    regression on the initial model's embeddings (``folds`` seeded folds)."""
    from labeler.quality.issues import scores

    present = np.unique(y)
    yy = np.searchsorted(present, y)
    probs = np.zeros((len(y), len(present)))
    fold = np.random.default_rng(seed + 5).permutation(len(y)) % folds
    torch.manual_seed(seed)
    for f in range(folds):
        te, tr = fold == f, fold != f
        probs[te] = _logreg_probs(emb[tr], yy[tr], emb[te], len(present))
    flagged = scores(yy, probs).flagged
    return np.zeros(len(y), bool) if flagged is None else flagged


# ----------------------------------------------------------------------------------------------
# evaluation


def web_metrics(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    pred = probs.argmax(1)
    present = [k for k in range(len(LABELS)) if (y == k).any()]
    s = class_scores(y, pred, len(LABELS))
    n = LABELS.index("neutral")
    return {
        "n": int(len(y)), "acc": round(float((pred == y).mean()), 4),
        "macro_f1_present_classes": round(float(np.mean([s["f1"][k] for k in present])), 4),
        "recall": {LABELS[k]: round(float(s["recall"][k]), 4) for k in present},
        "counts": {LABELS[k]: int((y == k).sum()) for k in present},
        "neutral_row": {LABELS[k]: int(((y == n) & (pred == k)).sum()) for k in range(len(LABELS))},
        "called_neutral": {LABELS[k]: int(((y == k) & (pred == n)).sum()) for k in present if k != n},
        "ece": round(ece(probs, y), 4),
    }


def macro_f1_present(z: np.ndarray, y: np.ndarray) -> float:
    ok = y >= 0
    z, y = z[ok], y[ok]
    s = class_scores(y, z.argmax(1), len(LABELS))
    return float(np.mean([s["f1"][k] for k in np.unique(y)]))
