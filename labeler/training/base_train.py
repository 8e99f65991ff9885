"""Train the compact FER CNN (:mod:`labeler.training.base_net`) from scratch on FER2013 with the FER+
crowd votes, export it to ONNX and write its sidecar. Entry point: :func:`main` (``scripts/train/train_base.py``).

Data: ``<data>/{train,public_test}/<class>/*.jpg`` (48x48 gray) and ``<votes>`` (FER+ votes, one row per
file: ``file,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF,note``).

- Targets (label-distribution learning, ``--loss ldl``): the 7 emotion votes normalised to sum 1
  (contempt, unknown and NF votes dropped). ``--loss ce``: the majority of those 7 (first on ties).
- Kept for training: images with at least one of the 7 emotion votes whose largest vote count is not
  held by ``unknown`` or ``NF`` (ties with them count as held); train images whose bytes also occur
  in public_test are dropped (no test leakage through the ~1,500 duplicate groups).
- Validation: ``--val-frac`` of train, drawn by content hash (sha256 of the file bytes), so byte-identical
  duplicates never straddle train and validation.
- Evaluation label ("FER+ majority"): the unique largest count among all 10 vote columns, kept only
  when it is one of the 7 classes (ties, contempt, unknown and NF majorities excluded).
- After training: the temperature is fitted on validation, then FER+'s class prior is divided out of
  the probabilities to the power that gives the best validation macro-F1 (:mod:`labeler.training.prior`,
  folded into the last bias; ``--no-prior-adjust`` keeps it) and the temperature is fitted again.

Everything is preloaded into one uint8 array; augmentation runs per batch with torch ops
(affine_grid/grid_sample for scale/shift/rotation, flip, brightness/contrast/gamma, Gaussian blur,
down-up resampling, cutout) plus a JPEG re-encode of a fraction of each batch with OpenCV.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .base_net import BaseFERNet, count_macs, count_params

from labeler.fer.calibration import class_scores, coverage_at_precision, fit_temperature
from labeler.fer.calibration import expected_calibration_error as ece
from labeler.fer.model import softmax as softmax_np
from labeler.training import prior

from .base_data import (  # noqa: F401 - re-exported for scripts and tests
    ALL_VOTE_COLS, LABELS, MEAN, STD, VOTE_COLS, Augmenter, Split, fer2013_val_split, load_split, read_votes,
    VALIDATION_SET, log, to_input, vote_targets,
)
from .base_export import export


# ----------------------------------------------------------------------------------------------
# metrics (the same definitions as scripts/eval/eval_fer2013.py)


def metrics(probs: np.ndarray, folder: np.ndarray, maj: np.ndarray) -> dict[str, Any]:
    """Accuracy vs FER+ majority (rows with maj >= 0), vs folder labels (all rows), macro-F1 and
    per-class recall vs FER+ majority, ECE vs FER+ majority, coverage at >= 95% precision."""
    pred = probs.argmax(1)
    m = maj >= 0
    y, p = maj[m], pred[m]
    s = class_scores(y, p, len(LABELS))
    cov = coverage_at_precision(probs[m], y, 0.95)
    return {
        "n": int(len(pred)), "n_ferplus_majority": int(m.sum()), "n_excluded": int((~m).sum()),
        "acc_ferplus_majority": round(float((p == y).mean()) if len(y) else 0.0, 4),
        "acc_fer2013_labels": round(float((pred == folder).mean()) if len(pred) else 0.0, 4),
        "macro_f1_ferplus": round(s["macro_f1"], 4),
        "recall_ferplus": {lab: round(float(s["recall"][i]), 4) for i, lab in enumerate(LABELS)},
        "ece_ferplus": round(ece(probs[m], y), 4) if len(y) else 0.0,
        "coverage_at_95_precision": round(cov, 4),
    }


# ----------------------------------------------------------------------------------------------
# training


def soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, 1)).sum(1).mean()


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: np.ndarray, flip: bool = False, bs: int = 512) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(x), bs):
        t = to_input(x[i: i + bs])
        z = model(t)[0]
        if flip:
            z = 0.5 * (z + model(torch.flip(t, dims=[3]))[0])
        out.append(z)
    return torch.cat(out).numpy() if out else np.zeros((0, len(LABELS)), np.float32)


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        import copy

        self.decay = decay
        self.n = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))  # short warm-up: early averages follow the weights
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)
            else:
                e.copy_(m)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    here = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description="Train the compact FER CNN from scratch on FER2013 + FER+ votes.")
    ap.add_argument("--data", default=str(here.parent / "shared" / "data" / "fer2013"),
                    help="folder with train/ and public_test/ (<class>/*.jpg)")
    ap.add_argument("--votes", default=None, help="FER+ votes CSV (default: <data>/ferplus_votes.csv)")
    ap.add_argument("--out-dir", default=str(here / "models"), help="where the .onnx and .json go")
    ap.add_argument("--stem", default="fer_ferplus_cnn")
    ap.add_argument("--name", default="fer-ferplus-cnn")
    ap.add_argument("--version", default=None, help="default: the date, e.g. 2026.11.28")
    ap.add_argument("--loss", choices=["ldl", "ce"], default="ldl", help="ldl: soft vote distribution; ce: majority vote")
    ap.add_argument("--time-budget-min", type=float, default=None,
                    help="wall-clock budget (minutes) for the training loop: after the warm-up epoch the learning rate "
                         "follows a cosine over the remaining time and training stops when it is spent")
    ap.add_argument("--epochs", type=int, default=30, help="maximum epochs (or exact, without a time budget)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--ema", type=float, default=0.998, help="EMA decay of the weights evaluated and kept (0: off)")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the training passes (weights, EMA, evaluation and export stay float32); "
                         "about 1.5x the steps a minute on CPUs with AMX or AVX512-BF16, slower on others")
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--widths", default=None, help="comma-separated 5 widths (default: base_net.DEFAULT_WIDTHS)")
    ap.add_argument("--depths", default=None, help="comma-separated extra convs at 24, 12 and 6 px (default: base_net.DEFAULT_DEPTHS)")
    ap.add_argument("--limit-per-class", type=int, default=None, help="at most N train images per class (smoke runs)")
    ap.add_argument("--no-export", action="store_true", help="train and report only (comparisons)")
    ap.add_argument("--no-test", action="store_true", help="skip the public_test report")
    ap.add_argument("--no-prior-adjust", action="store_true",
                    help="keep FER+'s class prior (default: divide it out to the power chosen on validation, labeler.training.prior)")
    return ap.parse_args(argv)


def set_seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def train_val_split(full: Split, test: Optional[Split], val_frac: float, seed: int) -> tuple[Split, Split, dict[str, int]]:
    """(train, validation, counts): validation = ``val_frac`` of train's content-hash groups; train
    without images whose bytes also occur in ``test`` and without images the vote rules leave out."""
    test_hashes = set(test.hashes) if test is not None else set()
    leak = np.asarray([h in test_hashes for h in full.hashes])
    tr_idx, va_idx = fer2013_val_split(full.hashes, val_frac, seed)
    tr = full.subset(np.asarray([i for i in tr_idx if not leak[i]], np.int64))
    va = full.subset(va_idx)
    n_tr_all = len(tr)
    tr = tr.subset(np.flatnonzero(tr.keep))
    counts = {
        "train_files": len(full), "public_test_files": len(test) if test else 0,
        "train_dropped_as_public_test_duplicates": int(leak[tr_idx].sum()),
        "train_groups_by_sha256": len(set(full.hashes)),
        "train_used": len(tr), "train_dropped_no_votes_or_nf_unknown_majority": n_tr_all - len(tr),
        "val_files": len(va), "val_with_ferplus_majority": int((va.maj >= 0).sum()),
    }
    return tr, va, counts



def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on the weights only (biases and norm scales, 1-d, are not decayed)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.99))


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    t_start = time.time()
    torch.set_num_threads(int(args.threads))
    cv2.setNumThreads(1)
    set_seed(args.seed)
    data = Path(args.data)
    votes_path = Path(args.votes) if args.votes else data / "ferplus_votes.csv"
    if not (data / "train").is_dir() or not votes_path.is_file():
        raise SystemExit(f"error: expected FER2013 as {data}/train/<class>/*.jpg with the FER+ votes in {votes_path}; "
                         f"found {'no train folder' if not (data / 'train').is_dir() else 'no votes file'}. "
                         "Pass --data DIR (and --votes CSV), e.g. --data ../shared/data/fer2013")
    votes = read_votes(votes_path)

    full = load_split(data, "train", votes, limit_per_class=args.limit_per_class)
    test = load_split(data, "public_test", votes) if (data / "public_test").is_dir() else None
    log(f"loaded train {len(full)} images, public_test {len(test) if test else 0} ({time.time() - t_start:.1f}s)")
    tr, va, counts = train_val_split(full, test, args.val_frac, args.seed)
    log("counts " + json.dumps(counts))
    if len(tr) == 0 or len(va) == 0:
        raise SystemExit("error: no training or validation images left; check --data and --votes")

    widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else None
    depths = tuple(int(d) for d in args.depths.split(",")) if args.depths else None
    model = BaseFERNet(len(LABELS), **({"widths": widths} if widths else {}), **({"depths": depths} if depths else {}))
    n_params, macs = count_params(model), count_macs(model)
    log(f"model BaseFERNet widths={model.widths} depths={model.depths} params={n_params} MMACs={macs / 1e6:.1f} (MFLOPs={2 * macs / 1e6:.1f})")
    model = model.to(memory_format=torch.channels_last)
    opt = adamw(model, args.lr, args.weight_decay)
    ema = EMA(model, args.ema) if args.ema > 0 else None
    aug = Augmenter(args.seed)
    target = torch.from_numpy(tr.dist) if args.loss == "ldl" else F.one_hot(
        torch.from_numpy(tr.dist.argmax(1)), len(LABELS)).float()

    bs = int(args.batch_size)
    steps_per_epoch = max(1, len(tr) // bs)
    budget_s = args.time_budget_min * 60.0 if args.time_budget_min else None
    n_epochs = int(args.epochs)
    rng = np.random.default_rng(args.seed)
    best: dict[str, Any] = {"acc": -1.0}
    curve = []
    t_train = time.time()
    t_warm = None  # end of the warm-up epoch
    step = 0
    epoch = 0
    stop = False
    # schedule: linear warm-up over epoch 1, then cosine to 0 -- over the remaining epochs, or, with a time
    # budget, over the remaining wall-clock time (robust to a shared machine: slow epochs just mean fewer
    # of them, the learning rate still reaches 0 when the budget is spent and training stops there)
    while epoch < n_epochs and not stop:
        t_ep = time.time()
        model.train()
        perm = rng.permutation(len(tr))
        tot, nb = 0.0, 0
        for b in range(steps_per_epoch):
            if epoch == 0:
                lr = args.lr * (0.05 + 0.95 * (b + 1) / steps_per_epoch)
            elif budget_s is not None:
                prog = (time.time() - t_warm) / max(1.0, t_train + budget_s - t_warm)
                if prog >= 1.0:
                    stop = True
                    break
                lr = args.lr * 0.5 * (1 + math.cos(math.pi * prog))
            else:
                prog = (step - steps_per_epoch) / max(1, (n_epochs - 1) * steps_per_epoch)
                lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))
            idx = np.sort(perm[b * bs:(b + 1) * bs])
            x = aug(tr.x[idx]).contiguous(memory_format=torch.channels_last)
            yt = target[idx]
            for gr in opt.param_groups:
                gr["lr"] = lr
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.bf16)):
                logits, _ = model(x)
            loss = soft_ce(logits.float(), yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(model)
            tot += float(loss.detach())
            nb += 1
            step += 1
        if nb == 0:
            break
        ev = ema.model if ema is not None else model
        zv = predict_logits(ev, va.x)
        mv = metrics(softmax_np(zv), va.folder, va.maj)
        dt_ep = time.time() - t_ep
        elapsed = time.time() - t_train
        curve.append({"epoch": epoch + 1, "steps": nb, "train_loss": round(tot / max(nb, 1), 4),
                      "val_acc_ferplus": mv["acc_ferplus_majority"], "val_acc_fer2013": mv["acc_fer2013_labels"],
                      "lr_end": round(lr, 6), "epoch_s": round(dt_ep, 1), "elapsed_s": round(elapsed, 1)})
        if mv["acc_ferplus_majority"] > best["acc"]:
            best = {"acc": mv["acc_ferplus_majority"], "epoch": epoch + 1,
                    "state": {k: v.detach().clone() for k, v in ev.state_dict().items()}}
        part = "" if nb == steps_per_epoch else f" ({nb}/{steps_per_epoch} steps: budget spent)"
        of = f"/{n_epochs}" if budget_s is None else ""
        log(f"epoch {epoch + 1}{of}{part} train_loss {tot / max(nb, 1):.4f} val_acc_ferplus {mv['acc_ferplus_majority']:.4f} "
            f"val_acc_fer2013 {mv['acc_fer2013_labels']:.4f} lr {lr:.2e} epoch {dt_ep:.0f}s elapsed {elapsed / 60:.1f} min"
            f"{'  *best' if best['epoch'] == epoch + 1 else ''}")
        epoch += 1
        if budget_s is not None and epoch == 1:
            t_warm = time.time()
            log(f"time budget {args.time_budget_min:.1f} min, warm-up epoch {dt_ep:.0f}s: cosine over the remaining "
                f"{(t_train + budget_s - t_warm) / 60:.1f} min (about {(t_train + budget_s - t_warm) / dt_ep:.0f} epochs at this speed)")
    train_s = time.time() - t_train
    log(f"training done: {epoch} epochs in {train_s / 60:.1f} min; best val_acc_ferplus {best['acc']:.4f} at epoch {best['epoch']}")
    final = BaseFERNet(len(LABELS), widths=model.widths, depths=model.depths)
    final.load_state_dict(best["state"])
    final.eval()

    # calibration on validation (flip-averaged logits, as the labeler's pipeline predicts), FER+ majority labels
    zv_f = predict_logits(final, va.x, flip=True)
    mval = va.maj >= 0
    temp = float(fit_temperature(zv_f[mval], va.maj[mval]))
    log(f"temperature fitted on {int(mval.sum())} validation images (flip-averaged): T = {temp:.3f}")
    adjustment = None
    if not args.no_prior_adjust:  # the FER+ class prior divided out to the power chosen on validation (labeler.training.prior)
        adjustment = prior.choose(zv_f, va.maj, prior.class_prior(tr.dist), temp)
        with torch.no_grad():
            final.fc.bias += torch.from_numpy(adjustment.shift.astype(np.float32))
        zv_f = zv_f + adjustment.shift.astype(zv_f.dtype)
        log(f"prior adjustment: alpha {adjustment.alpha} (validation macro-F1 "
            f"{dict((a, f) for a, f, _ in adjustment.table)[adjustment.alpha]:.4f}, alpha 0: {adjustment.table[0][1]:.4f}); "
            f"T {temp:.3f} -> {adjustment.temperature:.3f}")
        temp = adjustment.temperature
    res: dict[str, Any] = {"counts": counts, "curve": curve, "best_epoch": best["epoch"], "epochs_run": epoch,
                           "train_minutes": round(train_s / 60, 2), "temperature": temp, "params": n_params, "macs": macs,
                           "model": final, "prior_adjustment": adjustment}
    met: dict[str, Any] = {"flip_averaged": True, "calibration_labels": "FER+ majority"}
    met["val"] = metrics(softmax_np(zv_f, temp), va.folder, va.maj)
    met["val"]["ece_ferplus_before_temperature"] = round(ece(softmax_np(zv_f[mval]), va.maj[mval]), 4)
    if test is not None and len(test) and not args.no_test:
        zt = predict_logits(final, test.x, flip=True)
        zt1 = predict_logits(final, test.x, flip=False)
        mt = test.maj >= 0
        met["public_test"] = metrics(softmax_np(zt, temp), test.folder, test.maj)
        met["public_test"]["ece_ferplus_before_temperature"] = round(ece(softmax_np(zt[mt]), test.maj[mt]), 4)
        met["public_test"]["acc_ferplus_majority_no_flip"] = round(float((zt1[mt].argmax(1) == test.maj[mt]).mean()), 4)
        met["public_test"]["acc_fer2013_labels_no_flip"] = round(float((zt1.argmax(1) == test.folder).mean()), 4)
    log("metrics " + json.dumps(met))
    res["metrics"] = met

    if not args.no_export:
        export(final, args, res, votes_path, data, t_start)
    return res
