"""Compare labeler.mtcnn.MTCNNDetector with facenet-pytorch's MTCNN on a folder of images.

Run it from a reference venv that has torch + facenet-pytorch 2.6.0 (see docs/README), e.g.::

    /work/venv-ref/bin/python scripts/eval/mtcnn_parity.py ../shared/data/dev/images/multiface
    /work/venv-ref/bin/python scripts/eval/mtcnn_parity.py ../shared/data/dev/images/web_keyword --sample 40

Both detectors run on the same decoded RGB array (EXIF-transposed), on 2 threads each
(torch.set_num_threads, onnxruntime intra_op_num_threads). Faces are matched one to one by IoU
(greedy, IoU >= 0.5); the script prints the largest |coordinate difference| of matched boxes,
matched and unmatched counts, and images/s of both detectors side by side.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def load_rgb(p: Path) -> np.ndarray | None:
    from PIL import Image, ImageOps

    try:
        with Image.open(p) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception as e:  # noqa: BLE001 - a broken file is reported, not fatal
        print(f"skip {p.name}: {e}", file=sys.stderr)
        return None


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N,4) and b (M,4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (aa[:, None] + ab[None, :] - inter + 1e-9)


def match(a: np.ndarray, b: np.ndarray, thr: float = 0.5) -> list[tuple[int, int]]:
    m = iou(a, b)
    pairs = []
    while m.size and m.max() >= thr:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        pairs.append((int(i), int(j)))
        m[i, :] = -1
        m[:, j] = -1
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sample", type=int, default=0, help="random sample of N images (seed 0); 0 = all")
    ap.add_argument("--min-face-size", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="one line per image")
    args = ap.parse_args(argv)

    import torch
    from facenet_pytorch import MTCNN

    from labeler.faces.mtcnn import MTCNNDetector

    torch.set_num_threads(args.threads)
    ref = MTCNN(keep_all=True, min_face_size=args.min_face_size, device="cpu")
    ours = MTCNNDetector(min_face_size=args.min_face_size, threads=args.threads)

    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in EXTS)
    if args.sample and len(files) > args.sample:
        files = sorted(random.Random(0).sample(files, args.sample))
    images = [(p, im) for p in files if (im := load_rgb(p)) is not None]
    if not images:
        print("no images")
        return 1
    ref.detect(images[0][1])  # warm-up
    ours.detect(images[0][1])

    t_ref = t_ours = 0.0
    n_ref = n_ours = n_match = 0
    max_diff, worst = 0.0, ""
    max_score_diff = 0.0
    for p, im in images:
        t0 = time.perf_counter()
        rb, rp = ref.detect(im)
        t1 = time.perf_counter()
        od = ours.detect(im)
        t2 = time.perf_counter()
        t_ref += t1 - t0
        t_ours += t2 - t1
        rb = np.zeros((0, 4)) if rb is None else np.asarray(rb, dtype=np.float64)
        rp = np.zeros(0) if rb.shape[0] == 0 else np.asarray(rp, dtype=np.float64)
        ob = np.array([d.box for d in od], dtype=np.float64).reshape(-1, 4)
        os_ = np.array([d.score for d in od], dtype=np.float64)
        pairs = match(rb, ob)
        n_ref += len(rb)
        n_ours += len(ob)
        n_match += len(pairs)
        d = max((float(np.abs(rb[i] - ob[j]).max()) for i, j in pairs), default=0.0)
        sd = max((abs(rp[i] - os_[j]) for i, j in pairs), default=0.0)
        max_score_diff = max(max_score_diff, sd)
        if d > max_diff:
            max_diff, worst = d, p.name
        if args.verbose or d > 1.0 or len(pairs) != len(rb) or len(pairs) != len(ob):
            print(f"{p.name}: {im.shape[1]}x{im.shape[0]} facenet {len(rb)} ours {len(ob)} matched {len(pairs)} max|diff| {d:.3f}px")

    n = len(images)
    print()
    print(f"folder: {args.folder}  images: {n}  min_face_size: {args.min_face_size}  threads: {args.threads}")
    print(f"faces: facenet-pytorch {n_ref}, ours {n_ours}, matched (IoU>=0.5) {n_match}")
    print(f"max |box coordinate difference| over matched faces: {max_diff:.4f} px ({worst or '-'}); max |score diff| {max_score_diff:.2e}")
    print(f"{'':18s}{'facenet-pytorch':>16s}{'ours (onnxruntime)':>20s}")
    print(f"{'images/s':18s}{n / t_ref:16.2f}{n / t_ours:20.2f}")
    print(f"{'s/image':18s}{t_ref / n:16.3f}{t_ours / n:20.3f}")
    print(f"speed-up: {t_ref / t_ours:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
