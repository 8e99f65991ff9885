"""Finetuning the PyTorch rebuild of a FER network (:mod:`labeler.training.torchnet`): augmentation,
class-balanced epochs, head first then every layer, the best validation epoch kept. Imports torch;
import it only in the finetune path."""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labeler.training.torchnet import OnnxNet, logits


def augment(x: torch.Tensor, gen: torch.Generator, rot_deg: float = 10.0, scale: float = 0.1, bright: float = 0.2) -> torch.Tensor:
    """Random horizontal flip, small rotation and scale, brightness/contrast, on normalised images."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(rot_deg)
    sc = 1 + (torch.rand(n, generator=gen) * 2 - 1) * scale
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # pad with the border (the normalised value of the edge pixels), not black
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    c = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * bright
    b = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * bright
    return torch.clamp(x * c + b, -1.0, 1.0)


def class_weights(y: np.ndarray, k: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=k).astype(np.float64)
    present = counts > 0
    w = np.where(present, len(y) / (present.sum() * np.maximum(counts, 1)), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def _run_epochs(net, params, x, y, k, epochs, lr, batch_size, gen, wd, xval, yval, say, tag, log, keep=None):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    steps = max(1, epochs * math.ceil(len(x) / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    lossf = nn.CrossEntropyLoss(weight=class_weights(y, k))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    best = None
    for ep in range(epochs):
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(xt), generator=gen)
        tot = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            xb = augment(xt[idx], gen)
            loss = lossf(net(xb)["logits"], yt[idx])
            if keep is not None:  # distillation toward the base's probabilities on unlabeled faces
                xu, pu, t0, kd = keep
                j = torch.randint(len(xu), (min(batch_size, len(xu)),), generator=gen)
                lu = net(augment(xu[j], gen))["logits"]
                loss = loss + kd * F.kl_div(F.log_softmax(lu / t0, dim=1), pu[j], reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        entry = {"phase": tag, "epoch": ep + 1, "loss": round(tot / len(xt), 4), "seconds": round(time.perf_counter() - t0, 1)}
        if xval is not None and len(xval):
            pv = logits(net, xval).argmax(1)
            entry["val_accuracy"] = round(float((pv == yval).mean()), 4)
            entry["val_macro_f1"] = round(_macro_f1(pv, yval), 4)
            key = (entry["val_macro_f1"], entry["val_accuracy"])
            if best is None or key > best[0]:
                best = (key, {k_: v.detach().clone() for k_, v in net.state_dict().items()})
        log.append(entry)
        if say:
            say(f"  {tag} epoch {ep + 1}/{epochs}: " + ", ".join(f"{k_}={v}" for k_, v in entry.items() if k_ not in ("phase", "epoch")))
    return best


def _macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    f = []
    for c in np.unique(y):
        tp = float(((pred == c) & (y == c)).sum())
        p = tp / max((pred == c).sum(), 1)
        r = tp / max((y == c).sum(), 1)
        f.append(0.0 if tp == 0 else 2 * p * r / (p + r))
    return float(np.mean(f)) if f else 0.0


def finetune(
    net: OnnxNet, x: np.ndarray, y: np.ndarray, k: int, *, head_epochs: int = 5, epochs: int = 10, lr_head: float = 1e-3,
    lr: float = 1e-4, batch_size: int = 64, seed: int = 0, threads: Optional[int] = None, weight_decay: float = 1e-4,
    xval: Optional[np.ndarray] = None, yval: Optional[np.ndarray] = None, say: Optional[Callable[[str], None]] = None,
    x_unlabeled: Optional[np.ndarray] = None, p_base: Optional[np.ndarray] = None, t0: float = 1.0, kd: float = 1.0,
) -> list[dict]:
    """Train in place: the head with the backbone frozen, then every layer at ``lr``. With a
    validation set, the weights of the best epoch (macro-F1, then accuracy), or the starting
    weights if no epoch beats them, are kept. ``say`` receives one line per epoch. With
    ``x_unlabeled``/``p_base`` every batch adds ``kd`` * KL(base || new) on a batch of unlabeled faces
    (the new model's probabilities at the base's temperature ``t0``). Returns the per-epoch log."""
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    log: list[dict] = []
    start_key = None
    start_state = None
    if xval is not None and len(xval):
        pv = logits(net, xval).argmax(1)
        start_key = (round(_macro_f1(pv, yval), 4), round(float((pv == yval).mean()), 4))
        start_state = {k_: v.detach().clone() for k_, v in net.state_dict().items()}
        log.append({"phase": "start", "val_macro_f1": start_key[0], "val_accuracy": start_key[1]})
        if say:
            say(f"  start: val_macro_f1={start_key[0]}, val_accuracy={start_key[1]}")
    keep = None
    if x_unlabeled is not None and p_base is not None and len(x_unlabeled) and kd > 0:
        keep = (torch.from_numpy(np.ascontiguousarray(x_unlabeled, dtype=np.float32)),
                torch.from_numpy(np.asarray(p_base, dtype=np.float32)), float(t0), float(kd))
    head = set(net.head_parameter_names())
    best_all = None
    if head_epochs > 0 and head:
        for n_, p in net.params.items():
            p.requires_grad_(n_ in head)
        best_all = _run_epochs(net, [p for n_, p in net.params.items() if n_ in head], x, y, k, head_epochs, lr_head, batch_size,
                               gen, weight_decay, xval, yval, say, "head", log, keep)
    for p in net.params.values():
        p.requires_grad_(True)
    if epochs > 0:
        b = _run_epochs(net, list(net.params.values()), x, y, k, epochs, lr, batch_size, gen, weight_decay, xval, yval, say, "all", log, keep)
        if b is not None and (best_all is None or b[0] > best_all[0]):
            best_all = b
    if best_all is not None:
        if start_key is not None and not best_all[0] > start_key:
            net.load_state_dict(start_state)
            log.append({"phase": "kept", "which": "start (no epoch beat it on validation)"})
        else:
            net.load_state_dict(best_all[1])
            log.append({"phase": "kept", "which": "best epoch", "val_macro_f1": best_all[0][0], "val_accuracy": best_all[0][1]})
    net.eval()
    return log


def kept_start(log: list[dict]) -> bool:
    """True when :func:`finetune` kept the starting weights (no epoch beat them on validation)."""
    return any(e.get("phase") == "kept" and str(e.get("which", "")).startswith("start") for e in log)
