"""Finetune the shipped FER model on FER2013 train and compare on PublicTest (needs the `train` extra).

The 48x48 images go through the same path as in the pipeline (a pre-cropped face: the whole image,
resized to the 112 px crop, then the model's own preprocessing). 10% of train (grouped by content
hash, so byte-identical duplicates stay on one side) is held out for picking the best epoch; the
starting weights are kept if no epoch beats them there, so the result cannot be worse on that
split. Before/after figures on public_test are computed with the exported ONNX through
`labeler.models.load_model`, exactly as `labeler autolabel` would use it.

    .venv-convert/bin/python scripts/eval_fer2013_finetune.py [--sample 0] [--epochs 4] \
        [--head-epochs 1] [--out /tmp/fer2013_ft] [--threads 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "fer2013"
sys.path.insert(0, str(ROOT))

from labeler import retrain, torchnet  # noqa: E402
from labeler.types import LABELS  # noqa: E402


def load_split(root: Path, labels, sample: int = 0, seed: int = 0):
    import cv2

    files, ys = [], []
    for i, lab in enumerate(labels):
        fs = sorted((root / lab).glob("*.jpg"))
        files += fs
        ys += [i] * len(fs)
    files, ys = np.array(files), np.array(ys)
    if sample and sample < len(files):
        idx = np.sort(np.random.default_rng(seed).choice(len(files), sample, replace=False))
        files, ys = files[idx], ys[idx]
    crops, hashes = [], []
    for f in files:
        b = Path(f).read_bytes()
        hashes.append(hashlib.sha1(b).hexdigest())
        g = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE)
        rgb = cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
        crops.append(cv2.resize(rgb, (112, 112), interpolation=cv2.INTER_AREA))  # as the pipeline's whole-image face
    return crops, ys, np.array(hashes)


def predict(model, crops, batch=512):
    out = [model.predict(crops[i : i + batch], flip=True) for i in range(0, len(crops), batch)]
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(SHARED))
    ap.add_argument("--model", default=None, help="base model (default: the shipped one)")
    ap.add_argument("--sample", type=int, default=0, help="train on a random sample of this many images (0: all)")
    ap.add_argument("--head-epochs", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr-head", type=float, default=1e-3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/fer2013_ft")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    data, out = Path(a.data), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    base = retrain._load(a.model)
    labels = list(base.labels)
    print(f"base model {base.ident} ({base.card.file})", flush=True)
    net = torchnet.OnnxNet.from_onnx(base.card.file)
    print("torch rebuild vs onnxruntime, max abs diff:", torchnet.check_against_onnxruntime(base.card.file, net=net), flush=True)

    t0 = time.perf_counter()
    test_crops, y_test, _ = load_split(data / "public_test", labels)
    tr_crops, y_tr, h_tr = load_split(data / "train", labels, a.sample)
    print(f"loaded train {len(y_tr)}, public_test {len(y_test)} in {time.perf_counter() - t0:.0f} s", flush=True)
    spec = base.card.meta.get("input") or {}
    x_tr = torchnet.preprocess(tr_crops, spec)
    # check: the torch rebuild on our preprocessing gives the runtime model's logits
    d = np.abs(torchnet.logits(net, x_tr[:64]) - np.asarray(base.logits(tr_crops[:64]))).max()
    print(f"torch(preprocess(crops)) vs model.logits(crops): max abs diff {d:.2e}", flush=True)
    del tr_crops
    # validation split grouped by content hash
    uh = np.unique(h_tr)
    val_h = set(np.random.default_rng(1).choice(uh, int(0.1 * len(uh)), replace=False))
    val = np.array([h in val_h for h in h_tr])

    t0 = time.perf_counter()
    p_before = predict(base, test_crops)
    before = retrain.evaluate(p_before, y_test, labels)
    print(f"before: public_test accuracy {before['accuracy']:.4f} macro-F1 {before['macro_f1']:.4f} ECE {before['ece']:.4f} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)

    t0 = time.perf_counter()
    log = torchnet.finetune(net, x_tr[~val], y_tr[~val], len(labels), head_epochs=a.head_epochs, epochs=a.epochs,
                            lr_head=a.lr_head, lr=a.lr, batch_size=a.batch_size, threads=a.threads,
                            xval=x_tr[val], yval=y_tr[val], verbose=True)
    t_train = time.perf_counter() - t0
    # temperature on the validation split (flip-averaged, as predicted)
    lv = torchnet.logits(net, x_tr[val])
    lvf = torchnet.logits(net, np.ascontiguousarray(x_tr[val][..., ::-1]))
    temp = base.temperature if torchnet.kept_start(log) else retrain.fit_temperature_pair(lv, lvf, y_tr[val])
    stem = f"{retrain.FINETUNE_NAME}-fer2013-{retrain._version()}"
    torchnet.export_onnx(net, out / f"{stem}.onnx", x_tr[:1])
    print("exported ONNX vs torch, max abs diff:", torchnet.check_against_onnxruntime(out / f"{stem}.onnx", x=x_tr[:8], net=net), flush=True)
    sidecar = retrain.write_model(out, stem, base.card, {
        "name": retrain.FINETUNE_NAME, "version": stem.split("-")[-1],
        "calibration": {"temperature": temp, "fitted_on": f"{int(val.sum())} FER2013 train images held out (grouped by hash)"},
        "training": {"mode": "finetune", "data": "FER2013 train", "n_train": int((~val).sum()), "n_val": int(val.sum()),
                     "head_epochs": a.head_epochs, "epochs": a.epochs, "lr_head": a.lr_head, "lr": a.lr,
                     "batch_size": a.batch_size, "log": log, "seconds": round(t_train, 1), "threads": a.threads},
    })
    new = retrain._load(str(sidecar))
    after = retrain.evaluate(predict(new, test_crops), y_test, labels)
    print(f"after:  public_test accuracy {after['accuracy']:.4f} macro-F1 {after['macro_f1']:.4f} ECE {after['ece']:.4f}", flush=True)
    print(f"training time {t_train / 60:.1f} min on {a.threads} threads; total {(time.perf_counter() - t_all) / 60:.1f} min", flush=True)
    res = {"base": base.ident, "new": new.ident, "sidecar": str(sidecar), "before": before, "after": after,
           "train_seconds": round(t_train, 1), "n_train": int((~val).sum()), "log": log, "temperature": temp}
    (out / f"{stem}.result.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
    print(f"wrote {sidecar}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
