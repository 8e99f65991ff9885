"""Accuracy of a FER model on FER2013 PublicTest (checks the conversion end to end).

Run from the repository root with the runtime venv::

    .venv/bin/python scripts/eval_fer2013.py [--data ../shared/data/fer2013/public_test] [--model NAME|PATH]
                                             [--flip] [--threads 2] [--limit N]

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from labeler.fer.model import load_model  # noqa: E402


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


def report(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict:
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(float)
    recall = tp / np.maximum(cm.sum(1), 1)
    precision = tp / np.maximum(cm.sum(0), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    present = cm.sum(1) > 0
    return {"accuracy": float(tp.sum() / max(cm.sum(), 1)), "recall": recall, "precision": precision, "f1": f1,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0, "cm": cm, "support": cm.sum(1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "public_test"))
    ap.add_argument("--model", default=None, help="name, name@version or sidecar path (default: the shipped model)")
    ap.add_argument("--flip", action="store_true", help="average the logits of each image and its mirror")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    ap.add_argument("--limit", type=int, default=None, help="at most N images per class")
    args = ap.parse_args(argv)

    model = load_model(args.model, intra_op_num_threads=args.threads)
    labels = list(model.labels)
    crops, y = load_folder(Path(args.data), labels, args.limit)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
