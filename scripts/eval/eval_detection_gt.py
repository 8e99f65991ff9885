"""Detection recall against hand-made boxes (dlib imglab XML).

    .venv/bin/python scripts/eval/eval_detection_gt.py \
        ../shared/data/dev/ground_truth/training.xml ../shared/data/dev/ground_truth/testing.xml \
        --images ../shared/data/dev/images/multiface --prefix dlib__examples__faces__ \
        --min-face-size 20 12

For every ``<image file=...>`` the file is looked up as ``<images>/<prefix><file>`` (then without the
prefix). Boxes with ``ignore='1'`` are not counted. A ground-truth face is found when one detection
(raw, and after labeler.faces.filter_detections with default settings) overlaps it at IoU >= --iou,
one to one, greedy by IoU. Prints recall, extra detections and timing per min_face_size.
"""

from __future__ import annotations

import argparse
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mtcnn_parity import match  # noqa: E402  (one IoU matcher for both scripts)


def read_imglab(path: Path) -> list[tuple[str, list[tuple[float, float, float, float]]]]:
    out = []
    for im in ET.parse(path).getroot().iter("image"):
        boxes = []
        for b in im.iter("box"):
            if b.get("ignore", "0") == "1":
                continue
            t, l, w, h = (float(b.get(k)) for k in ("top", "left", "width", "height"))
            boxes.append((l, t, l + w, t + h))
        out.append((im.get("file"), boxes))
    return out


def n_matched(gt: np.ndarray, det: np.ndarray, thr: float) -> int:
    """Ground-truth faces matched one to one (greedy by IoU) by a detection with IoU >= thr."""
    return len(match(gt, det, thr))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("xml", nargs="+", type=Path)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--prefix", default="dlib__examples__faces__")
    ap.add_argument("--min-face-size", type=int, nargs="+", default=[20])
    ap.add_argument("--iou", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    from PIL import Image, ImageOps

    from labeler.faces.detect import filter_detections
    from labeler.faces.mtcnn import MTCNNDetector

    items = []
    for x in args.xml:
        for name, boxes in read_imglab(x):
            p = args.images / f"{args.prefix}{name}"
            if not p.is_file():
                p = args.images / name
            if not p.is_file():
                print(f"missing image: {name}", file=sys.stderr)
                continue
            with Image.open(p) as im:
                rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            items.append((name, rgb, np.array(boxes, dtype=np.float64).reshape(-1, 4)))
    total = sum(len(b) for _, _, b in items)
    print(f"{len(items)} images, {total} ground-truth faces, IoU >= {args.iou}")
    for mfs in args.min_face_size:
        det = MTCNNDetector(min_face_size=mfs, threads=args.threads)
        found_raw = found_kept = n_raw = n_kept = 0
        t = 0.0
        for name, rgb, gt in items:
            t0 = time.perf_counter()
            dets = det.detect(rgb)
            t += time.perf_counter() - t0
            kept, _ = filter_detections(dets, rgb.shape[1], rgb.shape[0])
            raw = np.array([d.box for d in dets]).reshape(-1, 4)
            kb = np.array([d.box for d in kept]).reshape(-1, 4)
            fr, fk = n_matched(gt, raw, args.iou), n_matched(gt, kb, args.iou)
            found_raw += fr
            found_kept += fk
            n_raw += len(raw)
            n_kept += len(kb)
            if args.verbose or fr < len(gt):
                print(f"  [{mfs}] {name}: gt {len(gt)}, found raw {fr}/{len(raw)} dets, after filter {fk}/{len(kb)}")
        print(f"min_face_size {mfs:3d}: recall raw {found_raw}/{total}, after filter_detections {found_kept}/{total}; "
              f"detections raw {n_raw} (unmatched {n_raw - found_raw}), kept {n_kept} (unmatched {n_kept - found_kept}); "
              f"{len(items) / t:.2f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
