"""Does coarse-to-fine detection (``[detect] coarse_face``) find the same faces as the whole pyramid?

    python scripts/eval/eval_coarse_to_fine.py ../shared/data/dev/images [--coarse-face 80]

For every image (recursively), the labeling units of `autolabel` (labeler.work.faces_of: capped
copy, detection, filter, whole-image rule) are computed twice with the same detector: with
``coarse_face`` 0 (every pyramid scale at once) and with the value given (default: the config's).
Prints how many images give exactly the same units (boxes, scores, landmarks: then the crops and
FER labels are the same too), the faces matched by IoU where they differ, and the CPU seconds of
each (alternating image by image, one onnxruntime thread). Nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from labeler.config import Config
    from labeler.faces.detect import get_detector
    from labeler.faces.tracks import greedy_match
    from labeler.ingest.imageio import DecodeError, decode
    from labeler.work import faces_of

    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--coarse-face", type=int, default=None, help="the first pass's face size (default: the config's)")
    args = ap.parse_args()
    d = Config().detect
    two = replace(d, coarse_face=d.coarse_face if args.coarse_face is None else args.coarse_face)
    one = replace(d, coarse_face=0)
    det = get_detector(d.detector, min_face_size=d.min_face_size, thresholds=tuple(d.thresholds), threads=1)
    n = same = faces_one = faces_two = matched = ge90 = 0
    t_one = t_two = 0.0
    for p in sorted(x for x in Path(args.folder).rglob("*") if x.is_file()):
        try:
            rgb = decode(p.read_bytes()).rgb
        except DecodeError:
            continue
        n += 1
        t = time.process_time()
        a, wa = faces_of(det, rgb, one)
        t_one += time.process_time() - t
        t = time.process_time()
        b, wb = faces_of(det, rgb, two)
        t_two += time.process_time() - t
        faces_one, faces_two = faces_one + len(a), faces_two + len(b)
        if (a, wa) == (b, wb):
            same += 1
            matched, ge90 = matched + len(a), ge90 + len(a)
            continue
        pairs, _, _ = greedy_match([x.box for x in a], [y.box for y in b], min_iou=0.5)
        matched += len(pairs)
        ge90 += sum(v >= 0.9 for _, _, v in pairs)
        print(f"  differs: {p.name[:60]} {rgb.shape[1]}x{rgb.shape[0]}: whole pyramid {len(a)} faces, coarse to fine "
              f"{len(b)}, matched {len(pairs)}; whole-image {wa} / {wb}")
    print(f"{n} images from {args.folder}; coarse_face {two.coarse_face} against 0 (max_side {d.max_side})")
    print(f"exactly the same labeling units: {same}/{n} images; faces {faces_one} (whole pyramid) vs {faces_two}; "
          f"matched (IoU >= 0.5) {matched}, of which IoU >= 0.9: {ge90}")
    print(f"detection CPU: whole pyramid {t_one:.1f} s, coarse to fine {t_two:.1f} s ({t_one / max(t_two, 1e-9):.2f}x)")


if __name__ == "__main__":
    main()
