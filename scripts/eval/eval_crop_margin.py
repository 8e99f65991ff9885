"""Which crop margin suits each FER model on real photos? (and where FER2013 frames its faces)

    python scripts/eval/eval_crop_margin.py --set ../shared/data/dev          # choose on dev
    python scripts/eval/eval_crop_margin.py --set ../shared/data/web_pool     # confirm on unseen photos
    python scripts/eval/eval_crop_margin.py --fer2013-frame ../shared/data/fer2013/train

With ``--set``: every labeled image of the folder's ``labels.csv`` (``file``, ``label``, optional
``subset``) is detected once, as ``labeler autolabel`` does (labeler.work.faces_of); single-face images
are kept (an image label cannot say which face of a group it means). Each face is then cropped with
every ``--margins`` value (aligned on the eye line, and axis-aligned), and every ``--model`` gives its
flip-averaged top-1; accuracy per subset is printed, with a confusion table for ``--confusion MARGIN``.
Whole-image faces (FER-style crops) are resized whole, as autolabel does, so they do not change.

With ``--fer2013-frame``: MTCNN runs on a sample of the 48 px crops (upscaled 4x) and the script
prints where the face box lies in them, i.e. the margin that reproduces FER2013's framing.
Nothing is written; the images are only read.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def load_faces(root: Path):
    import cv2

    from labeler.config import DetectConfig
    from labeler.faces import detect as fd
    from labeler.work import faces_of

    det = fd.get_detector("mtcnn")
    out = []
    with open(root / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("label")]
    for r in rows:
        bgr = cv2.imread(str(root / r["file"]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        dets, whole = faces_of(det, rgb, DetectConfig())
        if len(dets) == 1:
            out.append((r.get("subset") or root.name, r["label"], rgb, dets[0], whole))
    return out


def crop(rgb, det, whole: bool, margin: float, align: bool, size: int = 112):
    import cv2

    from labeler.faces import detect as fd

    if whole:
        return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    if not align:
        det = fd.Detection(box=det.box, score=det.score, landmarks=None)
    return fd.align_crop(rgb, det, size=size, margin=margin)


def sweep(args) -> None:
    from labeler.fer.resolver import load_model

    faces = load_faces(Path(args.set))
    subsets = sorted({f[0] for f in faces})
    print(f"{len(faces)} single-face images: " + ", ".join(f"{s} {sum(f[0] == s for f in faces)}" for s in subsets))
    models = {n: load_model(n) for n in args.model}
    for margin in args.margins:
        for align in (True, False):
            crops = [crop(f[2], f[3], f[4], margin, align) for f in faces]
            for name, m in models.items():
                p = m.predict(crops, flip=True)
                pred = [m.labels[i] for i in p.argmax(1)]
                accs = []
                for s in subsets:
                    idx = [i for i, f in enumerate(faces) if f[0] == s]
                    accs.append(f"{s} {np.mean([pred[i] == faces[i][1] for i in idx]):.3f} (n={len(idx)})")
                print(f"margin {margin:+.2f} {'aligned' if align else 'axis   '} {name:20s} " + "  ".join(accs), flush=True)
                if args.confusion is not None and abs(margin - args.confusion) < 1e-9 and align:
                    confusion(m.labels, [f[1] for f in faces], pred)


def confusion(labels, truth, pred) -> None:
    c = Counter(zip(truth, pred))
    print("    true \\ predicted " + " ".join(f"{lab[:5]:>6}" for lab in labels))
    for t in labels:
        if any(c[(t, q)] for q in labels):
            print(f"    {t:18s} " + " ".join(f"{c[(t, q)]:6d}" for q in labels))


def fer2013_frame(folder: Path, n: int) -> None:
    import cv2

    from labeler.faces import detect as fd

    det = fd.get_detector("mtcnn")
    files = sorted(folder.glob("*/*.jpg"))
    random.Random(0).shuffle(files)
    sides, cx, cy = [], [], []
    for f in files[:n]:
        g = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        up = cv2.resize(g, (g.shape[1] * 4, g.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
        ds = [d for d in det.detect(np.dstack([up] * 3)) if d.score > 0.9]
        if len(ds) != 1:
            continue
        x1, y1, x2, y2 = (v / 4 for v in ds[0].box)
        sides.append(max(x2 - x1, y2 - y1) / g.shape[0])
        cx.append((x1 + x2) / 2 / g.shape[1])
        cy.append((y1 + y2) / 2 / g.shape[0])
    s = np.asarray(sides)
    print(f"{len(s)} of {min(n, len(files))} crops with exactly one face (score > 0.9)")
    print(f"face box side / crop side: median {np.median(s):.3f} (p10 {np.percentile(s, 10):.3f}, p90 {np.percentile(s, 90):.3f})")
    print(f"box centre in the crop: x {np.median(cx):.3f}, y {np.median(cy):.3f} (0.5 = centred)")
    print(f"margin that gives FER2013's framing, (1 / side - 1) / 2: median {np.median((1 / s - 1) / 2):+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", help="a folder with labels.csv (file, label[, subset])")
    ap.add_argument("--model", action="append", help="FER model name (repeatable; default both shipped)")
    ap.add_argument("--margins", type=lambda s: [float(x) for x in s.split(",")], default=[-0.2, -0.15, -0.1, -0.05, 0.0, 0.05, 0.15])
    ap.add_argument("--confusion", type=float, default=None, help="print the confusion table at this margin")
    ap.add_argument("--fer2013-frame", type=Path, default=None, help="FER2013 split folder (class subfolders)")
    ap.add_argument("--n", type=int, default=600, help="FER2013 crops sampled for --fer2013-frame")
    args = ap.parse_args()
    if args.fer2013_frame:
        fer2013_frame(args.fer2013_frame, args.n)
    if args.set:
        args.model = args.model or ["fer-ferplus-cnn", "fer-mini-xception"]
        sweep(args)
    if not args.set and not args.fer2013_frame:
        ap.error("give --set FOLDER and/or --fer2013-frame FOLDER")


if __name__ == "__main__":
    main()
