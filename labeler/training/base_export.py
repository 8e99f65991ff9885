"""Export of the trained base model (:mod:`labeler.training.base_train`): ONNX with ``logits`` and
``embedding`` outputs, checked against torch, and its sidecar (how it was trained, the data rules,
the curve, the metrics, the prior adjustment)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labeler.fer.cards import write_card as _write_card

from .base_data import LABELS, MEAN, STD, VALIDATION_SET, log
from .base_net import INPUT_SIZE, BaseFERNet


def export(model: BaseFERNet, args: argparse.Namespace, res: dict[str, Any], votes_path: Path, data: Path, t_start: float) -> Path:
    import onnx
    import onnxruntime as ort

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{args.stem}.onnx"
    model = model.eval().to(memory_format=torch.contiguous_format)
    dummy = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is asked for on purpose
        torch.onnx.export(model, (dummy,), str(onnx_path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits", "embedding"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
                          do_constant_folding=True)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    model.eval()
    # parity with torch
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (37, 1, INPUT_SIZE, INPUT_SIZE)).astype(np.float32))
    with torch.no_grad():
        zt, et = (t.numpy() for t in model(x))
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(args.threads)
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    zo, eo = sess.run(["logits", "embedding"], {"input": x.numpy()})
    diff = float(max(np.abs(zo - zt).max(), np.abs(eo - et).max()))
    log(f"onnx parity with torch: max abs diff {diff:.2e} (logits {zo.shape}, embedding {eo.shape})")
    if diff > 1e-3:
        raise SystemExit(f"error: onnxruntime output differs from torch by {diff}")
    size_mb = onnx_path.stat().st_size / 2**20
    version = args.version or time.strftime("%Y.%m.%d", time.gmtime())
    m = res["metrics"]
    cmd = " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "train_base.py"] + list(sys.argv[1:]))
    meta = {
        "name": args.name,
        "version": version,
        "kind": "fer",
        "file": onnx_path.name,
        "labels": list(LABELS),
        "input": {"name": "input", "size": [INPUT_SIZE, INPUT_SIZE], "channels": 1, "color": "gray", "layout": "NCHW",
                  "dtype": "float32", "mean": MEAN, "std": STD,
                  "notes": f"gray uint8 face crop resized to {INPUT_SIZE}x{INPUT_SIZE} (cv2.INTER_AREA), then (x - 127.5) / 127.5"},
        "outputs": {"logits": "logits", "embedding": "embedding"},
        "embedding_dim": int(model.embedding_dim),
        "calibration": {
            "temperature": round(res["temperature"], 4),
            "fitted_on": f"{m['val']['n_ferplus_majority']} FER2013 train images held out by content hash (validation), "
                         "FER+ majority labels, flip-averaged logits" + (", after the prior adjustment" if res.get("prior_adjustment") else ""),
            "ece_before": m.get("public_test", m["val"]).get("ece_ferplus_before_temperature"),
            "ece_after": m.get("public_test", m["val"]).get("ece_ferplus"),
            "ece_measured_on": "FER2013 PublicTest vs FER+ majority" if "public_test" in m else "validation",
        },
        "source": {
            "package": "labeler (scripts/train/train_base.py)",
            "version": version,
            "file": "labeler/training/base_net.py, labeler/training/base_train.py",
        },
        "licence": "MIT",
        "licence_file": "LICENSES/fer_ferplus_cnn.txt",
        "converted_with": {"torch": torch.__version__, "opset": 17, "exporter": "torch.onnx.export(dynamo=False)"},
        "training": {
            "command": cmd,
            "code": "labeler/training/base_train.py, labeler/training/base_net.py",
            "architecture": {"class": "BaseFERNet", "widths": list(model.widths), "depths": list(model.depths), "params": res["params"],
                             "mmacs": round(res["macs"] / 1e6, 2), "mflops": round(2 * res["macs"] / 1e6, 2),
                             "onnx_mb": round(size_mb, 3)},
            "data": {
                "images": "FER2013 train (48x48 gray), Goodfellow et al. 2013; evaluation on FER2013 PublicTest",
                "votes": f"{votes_path.name}: FER+ crowd votes (Microsoft, MIT), 10 per image",
                "target": ("normalised 7-class vote distribution (contempt, unknown, NF votes dropped), soft cross-entropy"
                           if args.loss == "ldl" else "majority of the 7 emotion votes, cross-entropy"),
                "vote_rule": "train images kept when they have >= 1 of the 7 emotion votes and the largest count is not held "
                             "by unknown or NF; evaluation label = unique largest of all 10 vote columns when it is one of "
                             "the 7 classes (ties, contempt, unknown, NF majorities excluded)",
                "split": f"validation = {args.val_frac:.0%} of train content-hash groups (sha256 of file bytes), seed {args.seed}; "
                         "train images whose bytes also occur in public_test dropped",
                "counts": res["counts"],
                "augmentation": "random scale 0.80-1.30, shift +-10%, rotation +-15 deg, horizontal flip, brightness/contrast/"
                                "gamma, Gaussian blur (20%), down-up resampling (15%), JPEG q25-90 (25%), noise, cutout (25%)",
            },
            "seed": args.seed,
            "optimiser": f"AdamW lr {args.lr} wd {args.weight_decay}, batch {args.batch_size}, warm-up 1 epoch + cosine, "
                         f"EMA {args.ema}" + (", bfloat16 autocast for the training passes" if args.bf16 else ""),
            "epochs": res["epochs_run"],
            "best_epoch": res["best_epoch"],
            "time_budget_min": args.time_budget_min,
            "train_minutes": res["train_minutes"],
            "total_minutes": round((time.time() - t_start) / 60, 2),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
                        f"{os.cpu_count()} CPUs, no GPU; torch {torch.__version__}",
            "curve": res["curve"],
            "prior_adjustment": (res["prior_adjustment"].describe(LABELS, VALIDATION_SET) if res.get("prior_adjustment")
                                 else "none (--no-prior-adjust)"),
            "metrics": m,
        },
    }
    _write_card(out_dir / f"{args.stem}.json", meta)
    log(f"wrote {onnx_path} ({size_mb:.2f} MB) and {out_dir / (args.stem + '.json')}")
    return onnx_path
