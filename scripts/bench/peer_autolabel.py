"""The peer pipeline `bench_autolabel.py` compares against: facenet-pytorch 2.6.0's MTCNN, then the
same ONNX FER model on every kept face, one image after another, as a user would script it.

    REFVENV/bin/python scripts/bench/peer_autolabel.py FOLDER OUT.jsonl [--threads 2]

Run it in the reference venv (``bench_autolabel.py --make-reference DIR`` builds one). Each image:
read, decode (PIL, EXIF orientation), MTCNN (min face 20 px, thresholds 0.6/0.7/0.7, full
resolution), the same face filter as labeler (labeler.faces.detect.filter_detections with the
default config), the same aligned crop, the FER model (flip averaging) on the image's faces in one
batch. Writes one JSON line per image: file, faces [{box, score, label}]. No database.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image, ImageOps

    from labeler.config import Config
    from labeler.faces.detect import align_crop, filter_detections
    from labeler.fer.resolver import load_model
    from labeler.types import Detection

    torch.set_num_threads(args.threads)
    cfg = Config()
    d = cfg.detect
    mtcnn = MTCNN(keep_all=True, min_face_size=d.min_face_size, thresholds=list(d.thresholds), device="cpu")
    model = load_model(None, intra_op_num_threads=args.threads)
    n = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for p in sorted(x for x in args.folder.rglob("*") if x.is_file()):
            try:
                with Image.open(io.BytesIO(p.read_bytes())) as im:
                    rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            except Exception:  # noqa: BLE001 - broken or not an image
                continue
            n += 1
            h, w = rgb.shape[:2]
            boxes, probs, points = mtcnn.detect(rgb, landmarks=True)
            dets = [] if boxes is None else [
                Detection(box=tuple(float(v) for v in b), score=float(s), landmarks=tuple((float(x), float(y)) for x, y in pt))
                for b, s, pt in zip(boxes, probs, points)]
            kept, _ = filter_detections(dets, w, h, min_score=d.min_score, min_rel_size=d.min_rel_size, min_size=d.min_size)
            crops = [align_crop(rgb, k, cfg.crop.size, cfg.crop.margin) for k in kept]
            pr = model.predict(crops, flip=cfg.model.flip) if crops else []
            faces = [{"box": list(k.box), "score": k.score, "label": model.labels[int(np.argmax(q))]} for k, q in zip(kept, pr)]
            out.write(json.dumps({"file": p.name, "width": w, "height": h, "faces": faces}) + "\n")
    print(f"peer: {n} images in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
