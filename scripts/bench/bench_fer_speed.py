"""Inference speed of FER models with onnxruntime: ms per face at a fixed batch size.

    .venv/bin/python scripts/bench/bench_fer_speed.py [--model NAME|PATH ...] [--batch 64] [--threads 2] [--runs 30]

For each model: loads it through labeler's registry (sha256 verified), times ``session.run`` on a
random batch already preprocessed to the model's input (``--what onnx``, the default), or the whole
``model.predict`` on random 112x112 RGB crops (``--what predict``: preprocessing + inference, no flip).
Prints the median and the 10th/90th percentile of ``--runs`` timed runs after warm-up runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _load_model(name, threads):
    try:
        from labeler.fer.resolver import load_model
    except ImportError:  # older layout
        from labeler.models import load_model  # type: ignore[no-redef]
    return load_model(name, intra_op_num_threads=threads)


def bench(name, batch: int, threads: int, runs: int, warmup: int, what: str) -> dict:
    m = _load_model(name, threads)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(batch, 112, 112, 3), dtype=np.uint8)
    x = m.preprocess(list(crops))
    if what == "onnx":
        fn = lambda: m.session.run([m.logits_name], {m.input_name: x})  # noqa: E731
    else:
        fn = lambda: m.predict(list(crops))  # noqa: E731
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ms = np.asarray(ts) * 1000.0 / batch
    size_mb = m.card.file.stat().st_size / 2**20
    return {"model": m.ident, "input": tuple(x.shape[1:]), "mb": size_mb, "median": float(np.median(ms)),
            "p10": float(np.percentile(ms, 10)), "p90": float(np.percentile(ms, 90))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", default=None, help="name, name@version or sidecar path (repeatable)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--what", choices=["onnx", "predict"], default="onnx")
    args = ap.parse_args(argv)
    names = args.model or ["fer-ferplus-cnn", "fer-mini-xception"]
    print(f"batch {args.batch}, {args.threads} threads, {args.runs} runs, timing: {args.what}")
    print(f"{'model':40s} {'input':>12s} {'MB':>6s} {'ms/face median':>15s} {'p10':>6s} {'p90':>6s}")
    for n in names:
        r = bench(n, args.batch, args.threads, args.runs, args.warmup, args.what)
        print(f"{r['model']:40s} {str(r['input']):>12s} {r['mb']:6.2f} {r['median']:15.3f} {r['p10']:6.3f} {r['p90']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
