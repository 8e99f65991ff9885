"""The FER2013 train figures the data report compares against (labeler/data/fer2013_reference.json).

    .venv/bin/python scripts/make/fer2013_reference.py [--root ../shared/data/fer2013/train] [--yaw-sample 2000]

Reads ``<root>/<class>/*.jpg`` (48x48 grey crops) and writes only aggregate counts, binned by
labeler.reports.datareport.summarise, never an image. Every face is a whole-image crop, as the
pipeline treats pre-cropped faces: size = the short side (48), blur = blur_variance of the whole image,
brightness = its mean grey level. Yaw needs landmarks, so MTCNN runs on a seeded random sample
(``--yaw-sample`` images, upscaled x2 so that the 20 px minimum face fits); yaw is the share of
that sample where a face was found. Flags: the quality flags (small/blurry/profile) and
"whole_image" (every FER2013 image is a pre-cropped face); text and non-photo are not measured.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from labeler.faces.detect import blur_variance, estimate_yaw, get_detector, quality_flags  # noqa: E402
from labeler.reports.datareport import REFERENCE_FILE, FaceStats, summarise  # noqa: E402
from labeler.types import LABELS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013" / "train")
    ap.add_argument("--yaw-sample", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=REFERENCE_FILE)
    a = ap.parse_args(argv)
    files = [(c, p) for c in LABELS for p in sorted((a.root / c).glob("*.jpg"))]
    if not files:
        sys.exit(f"no images under {a.root}/<class>/*.jpg; expected FER2013 train as one folder per class")
    sample = set(random.Random(0).sample(range(len(files)), min(a.yaw_sample, len(files))))
    det = get_detector("mtcnn")
    items = []
    for i, (label, p) in enumerate(files):
        gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        rgb = np.repeat(gray[..., None], 3, axis=2)
        h, w = gray.shape
        q = {"size": float(min(h, w)), "blur": blur_variance(rgb, (0, 0, w, h))}
        yaw = None
        if i in sample:
            big = cv2.resize(rgb, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
            found = det.detect(big)
            if found:
                yaw = q["yaw"] = float(estimate_yaw(found[0]))
        items.append(FaceStats(label=label, size=q["size"], blur=q["blur"], brightness=float(gray.mean()),
                               grayscale=True, yaw=yaw, flags=(*quality_flags(q), "whole_image"),
                               source="train"))
    s = summarise(items, name="FER2013 train",
                  note=f"{len(files)} images of {a.root.name}/; yaw from MTCNN on a seeded sample of "
                       f"{len(sample)} (x2 upscaled), measured where a face was found; so the profile flag "
                       f"counts that sample only")
    a.out.write_text(s.to_json(), encoding="utf-8")
    print(f"wrote {a.out}: {s.n_faces} faces, yaw measured on {s.n_measured['yaw']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
