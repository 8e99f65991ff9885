"""Divide FER+'s class prior out of an already trained base model (what ``train_base.py`` now does
at the end of training), choosing the power on the model's own validation split.

    python scripts/train/adjust_prior.py --model models/fer_ferplus_cnn.json --data ../shared/data/fer2013 \
        --version 2026.12.03.1 [--out-dir models]

Needs the training extras (``pip install -e '.[train]'``). Rebuilds the validation split the model was
trained with (seed and fraction from its sidecar; the split's size is checked against the sidecar's
counts), picks ``alpha`` by validation macro-F1 (:mod:`labeler.training.prior`), folds the shift into
the last layer's bias, fits the temperature again, re-measures validation and PublicTest, and writes
the ONNX and its sidecar (new version and sha256; the figures before the adjustment kept in
``training.prior_adjustment``). The dev figures in the sidecar's ``evaluation`` block must be
measured again (the script drops them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from labeler.fer.calibration import expected_calibration_error as ece  # noqa: E402
from labeler.fer.cards import write_card  # noqa: E402
from labeler.fer.model import softmax  # noqa: E402
from labeler.fer.resolver import load_model  # noqa: E402
from labeler.training import prior  # noqa: E402
from labeler.training.base_data import LABELS, load_split, read_votes  # noqa: E402
from labeler.training.base_train import VALIDATION_SET, metrics, train_val_split  # noqa: E402


def flip_logits(model, x: np.ndarray) -> np.ndarray:
    crops = list(x)
    return (model.logits(crops) + model.logits([g[:, ::-1].copy() for g in crops])) / 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the sidecar (.json) of a model trained by scripts/train/train_base.py")
    ap.add_argument("--data", required=True, help="FER2013 folder with train/, public_test/ and ferplus_votes.csv")
    ap.add_argument("--version", required=True, help="the adjusted model's version (its weights differ)")
    ap.add_argument("--out-dir", default=None, help="default: the model's folder (the files are replaced)")
    ap.add_argument("--val-frac", type=float, default=0.1, help="as the model was trained (train_base.py's default)")
    a = ap.parse_args(argv)
    side = Path(a.model)
    meta = json.loads(side.read_text(encoding="utf-8"))
    tr_meta = meta.get("training", {})
    if isinstance(tr_meta.get("prior_adjustment"), dict):
        raise SystemExit(f"error: {side} is already prior-adjusted (alpha {tr_meta['prior_adjustment'].get('alpha')}); "
                         "expected a model as train_base.py wrote it with --no-prior-adjust or before the adjustment existed")
    if meta.get("labels") != LABELS or "seed" not in tr_meta:
        raise SystemExit(f"error: {side}: expected a sidecar of scripts/train/train_base.py (labels {LABELS}, training.seed); "
                         f"found labels {meta.get('labels')} and training keys {sorted(tr_meta)}")
    data = Path(a.data)
    votes = read_votes(data / "ferplus_votes.csv")
    full = load_split(data, "train", votes)
    test = load_split(data, "public_test", votes)
    tr, va, _ = train_val_split(full, test, a.val_frac, int(tr_meta["seed"]))  # as the model was trained
    want = tr_meta.get("data", {}).get("counts", {})
    if want and (want.get("val_files") != len(va) or want.get("train_used") != len(tr)):
        raise SystemExit(f"error: the rebuilt split differs from the sidecar's (validation {len(va)} vs {want.get('val_files')}, "
                         f"train {len(tr)} vs {want.get('train_used')}); check --data and --val-frac")
    model = load_model(str(side))
    t0 = float(model.temperature)
    zv, zt = flip_logits(model, va.x), flip_logits(model, test.x)
    adj = prior.choose(zv, va.maj, prior.class_prior(tr.dist), t0)
    print("alpha  val macro-F1  val accuracy (FER+ majority)")
    for al, f1, acc in adj.table:
        print(f"{al:4.1f}   {f1:.4f}      {acc:.4f}{'   <- chosen' if al == adj.alpha else ''}")

    def figures(zv_, zt_, t):
        mv, mt = metrics(softmax(zv_, t), va.folder, va.maj), metrics(softmax(zt_, t), test.folder, test.maj)
        mv["ece_ferplus_before_temperature"] = round(ece(softmax(zv_[va.maj >= 0]), va.maj[va.maj >= 0]), 4)
        mt["ece_ferplus_before_temperature"] = round(ece(softmax(zt_[test.maj >= 0]), test.maj[test.maj >= 0]), 4)
        return {"flip_averaged": True, "calibration_labels": "FER+ majority", "val": mv, "public_test": mt}

    before = figures(zv, zt, t0)
    after = figures(zv + adj.shift, zt + adj.shift, adj.temperature)
    for k in ("val", "public_test"):
        b, f = before[k], after[k]
        print(f"{k:12s} FER+ acc {b['acc_ferplus_majority']:.4f} -> {f['acc_ferplus_majority']:.4f}  macro-F1 "
              f"{b['macro_f1_ferplus']:.4f} -> {f['macro_f1_ferplus']:.4f}  FER2013 labels {b['acc_fer2013_labels']:.4f} -> "
              f"{f['acc_fer2013_labels']:.4f}  ECE {b['ece_ferplus']:.4f} -> {f['ece_ferplus']:.4f}  coverage@95 "
              f"{b['coverage_at_95_precision']:.4f} -> {f['coverage_at_95_precision']:.4f}")

    out_dir = Path(a.out_dir) if a.out_dir else side.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_out = out_dir / meta["file"]
    prior.shift_onnx_bias(model.card.file, onnx_out, adj.shift)
    if out_dir.resolve() != side.parent.resolve():
        for extra in ("licence_file",):
            if meta.get(extra) and (side.parent / meta[extra]).is_file():
                (out_dir / meta[extra]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(side.parent / meta[extra], out_dir / meta[extra])
    cmd = " ".join(["adjust_prior.py"] + list(argv if argv is not None else sys.argv[1:]))
    new = dict(meta)
    new["version"] = a.version
    new["source"] = {**meta.get("source", {}), "version": a.version}
    new["calibration"] = {"temperature": round(adj.temperature, 4),
                          "fitted_on": f"{after['val']['n_ferplus_majority']} FER2013 train images held out by content hash "
                                       "(validation), FER+ majority labels, flip-averaged logits, after the prior adjustment",
                          "ece_before": after["public_test"]["ece_ferplus_before_temperature"],
                          "ece_after": after["public_test"]["ece_ferplus"], "ece_measured_on": "FER2013 PublicTest vs FER+ majority"}
    new["training"] = {**tr_meta, "metrics": after,
                       "prior_adjustment": {**adj.describe(LABELS, VALIDATION_SET), "applied": f"after training, by {cmd}",
                                            "adjusted_from": f"{meta['name']}@{meta['version']} (sha256 {meta['sha256']})",
                                            "temperature_before": t0, "metrics_before": before}}
    ev = dict(meta.get("evaluation", {}))
    ev.pop("dev", None)
    pt = after["public_test"]
    ev["public_test"] = {"command": f"python scripts/eval/eval_fer2013.py --model {meta['name']} --flip", "n": pt["n"],
                         "n_ferplus_majority": pt["n_ferplus_majority"], "acc_ferplus_majority": pt["acc_ferplus_majority"],
                         "acc_fer2013_labels": pt["acc_fer2013_labels"], "macro_f1_ferplus": pt["macro_f1_ferplus"],
                         "ece_ferplus": pt["ece_ferplus"], "coverage_at_95_precision": pt["coverage_at_95_precision"]}
    new["evaluation"] = ev
    write_card(out_dir / side.name, new)
    print(f"wrote {onnx_out} and {out_dir / side.name} ({meta['name']}@{a.version}); measure the dev figures again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
