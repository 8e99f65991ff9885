"""Benchmark `autolabel` throughput (images/s) on a folder, next to decode-only time.

    python scripts/bench_autolabel.py ../shared/data/dev/images [--limit N] [--threads 2]
        [--reference-python /path/to/venv-with-facenet-pytorch/bin/python]

Runs on a fresh temporary database. Prints decode-only images/s (read + hash + decode), detector-only
images/s, the full autolabel images/s and the ratio to decode-only. With --reference-python it also
runs scripts/mtcnn_parity.py in that interpreter so facenet-pytorch's MTCNN is timed on the same
images in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference-python", default=None)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import cv2

    cv2.setNumThreads(args.threads)
    from labeler.config import Config
    from labeler.ingest.imageio import DecodeError, decode
    from labeler.ingest.walk import iter_files
    from labeler.pipeline import Autolabeler
    from labeler.ingest.rules import load_rules
    from labeler.store import Store

    files = [p for p in iter_files(Path(args.folder))]
    if args.limit:
        files = files[: args.limit]
    src = Path(tempfile.mkdtemp()) / "imgs"
    src.mkdir()
    for i, p in enumerate(files):  # a flat copy so that the same files are timed everywhere
        (src / f"{i:05d}_{p.name}").write_bytes(p.read_bytes())
    files = sorted(src.iterdir())
    print(f"{len(files)} files from {args.folder}, {args.threads} threads, cpu count {os.cpu_count()}")

    t = time.perf_counter()
    decoded = []
    for p in files:
        data = p.read_bytes()
        hashlib.sha256(data).hexdigest()
        try:
            decoded.append(decode(data).rgb)
        except DecodeError:
            pass
    t_dec = time.perf_counter() - t
    print(f"decode only:  {len(files) / t_dec:7.1f} images/s  ({t_dec:.2f} s)")

    from labeler.faces.detect import get_detector

    det = get_detector("mtcnn")
    det.detect(decoded[0])  # warm-up
    t = time.perf_counter()
    nf = sum(len(det.detect(rgb)) for rgb in decoded)
    t_det = time.perf_counter() - t
    print(f"detect only:  {len(decoded) / t_det:7.1f} images/s  ({t_det:.2f} s, {nf} raw detections)")

    db = Path(tempfile.mkdtemp()) / "bench.db"
    store = Store(f"sqlite:///{db}")
    al = Autolabeler(store, Config(), load_rules())
    t = time.perf_counter()
    rep = al.run(src, progress=False)
    t_all = time.perf_counter() - t
    print(f"autolabel:    {len(files) / t_all:7.1f} images/s  ({t_all:.2f} s, {rep.faces} faces)")
    print(f"autolabel / decode-only time ratio: {t_all / t_dec:.1f}x")
    if args.reference_python:
        print("\n-- facenet-pytorch MTCNN side by side (same images, same threads):")
        sys.stdout.flush()
        subprocess.run(
            [args.reference_python, str(Path(__file__).with_name("mtcnn_parity.py")), str(src), "--threads", str(args.threads)],
            check=False,
        )


if __name__ == "__main__":
    main()
