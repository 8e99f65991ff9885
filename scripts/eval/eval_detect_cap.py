"""How many faces change when detection runs on a copy capped at ``[detect] max_side``?

    python scripts/eval/eval_detect_cap.py ../shared/data/dev/images [--max-side 1600]

For every image whose long side is over the cap (the others are detected exactly as before), the
labeling units of `autolabel` (detections filtered and the whole-image rule applied, as
labeler.work.faces_of does) are computed at full resolution and on the capped copy, and matched by
box IoU. Prints: faces found by each, matched pairs by IoU band, faces found by one side only (with
their size and score), and whether the FER model's label of the matched faces' crops (cut from the
full-resolution image in both cases) is the same. As a yardstick for box IoU it also compares full
resolution with a copy scaled by 0.95 (MTCNN's boxes move with the pyramid's alignment alone).
Nothing is written; the images are only read.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def match(a, b):
    """Greedy best-IoU pairs (i, j, iou) with IoU > 0.3; the rest of each side unmatched."""
    from labeler.faces.tracks import greedy_match

    return greedy_match([x.box for x in a], [y.box for y in b], 0.3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--max-side", type=int, default=None, help="the cap (default: the config's default)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from labeler.config import Config
    from labeler.faces.detect import align_crop, get_detector
    from labeler.fer.resolver import load_model
    from labeler.ingest.imageio import DecodeError, decode
    from labeler.ingest.walk import iter_files
    from labeler.work import faces_of

    cfg = Config()
    cap = args.max_side if args.max_side is not None else cfg.detect.max_side
    d_full = replace(cfg.detect, max_side=0)
    d_cap = replace(cfg.detect, max_side=cap)
    det = get_detector(cfg.detect.detector, min_face_size=cfg.detect.min_face_size, thresholds=tuple(cfg.detect.thresholds))
    model = load_model(None)
    t0 = time.perf_counter()
    n_img = n_big = 0
    tot = {"full": 0, "cap": 0, "ge90": 0, "80_90": 0, "lt80": 0, "only_full": 0, "only_cap": 0, "same_label": 0,
           "matched": 0, "whole_changed": 0, "jit_ge90": 0, "jit_n": 0, "jit_same": 0}
    ious, jious, notes = [], [], []
    t_full = t_cap = 0.0
    for p in iter_files(Path(args.folder)):
        try:
            rgb = decode(p.read_bytes()).rgb
        except (DecodeError, OSError):
            continue
        n_img += 1
        h, w = rgb.shape[:2]
        if max(h, w) <= cap:
            continue
        n_big += 1
        t = time.perf_counter()
        full, wf = faces_of(det, rgb, d_full)
        t_full += time.perf_counter() - t
        t = time.perf_counter()
        capd, wc = faces_of(det, rgb, d_cap)
        t_cap += time.perf_counter() - t
        jit, _ = faces_of(det, rgb, replace(cfg.detect, max_side=int(0.95 * max(h, w))))
        tot["full"] += len(full)
        tot["cap"] += len(capd)
        tot["whole_changed"] += int(wf != wc)
        pairs, only_f, only_c = match(full, capd)
        for i, j, v in pairs:
            ious.append(v)
            tot["ge90" if v >= 0.9 else "80_90" if v >= 0.8 else "lt80"] += 1
            crops = [align_crop(rgb, full[i], cfg.crop.size, cfg.crop.margin), align_crop(rgb, capd[j], cfg.crop.size, cfg.crop.margin)]
            pr = model.predict(crops, flip=cfg.model.flip)
            tot["matched"] += 1
            tot["same_label"] += int(np.argmax(pr[0]) == np.argmax(pr[1]))
        jp, _, _ = match(full, jit)
        tot["jit_n"] += len(jp)
        tot["jit_ge90"] += sum(v >= 0.9 for _, _, v in jp)
        jious += [v for _, _, v in jp]
        for i, j, _v in jp:
            crops = [align_crop(rgb, full[i], cfg.crop.size, cfg.crop.margin), align_crop(rgb, jit[j], cfg.crop.size, cfg.crop.margin)]
            pr = model.predict(crops, flip=cfg.model.flip)
            tot["jit_same"] += int(np.argmax(pr[0]) == np.argmax(pr[1]))
        tot["only_full"] += len(only_f)
        tot["only_cap"] += len(only_c)
        for side, dets, idx in (("full only", full, only_f), ("capped only", capd, only_c)):
            for k in idx:
                b = dets[k].box
                notes.append(f"  {side:12s} {p.name[:60]:60s} {w}x{h} face {min(b[2] - b[0], b[3] - b[1]):.0f} px score {dets[k].score:.3f}")
    print(f"{n_img} images decoded from {args.folder}; {n_big} with a long side over {cap} px (only those can change)")
    print(f"faces (labeling units): full resolution {tot['full']}, capped {tot['cap']}; whole-image decision changed on {tot['whole_changed']} images")
    print(f"matched {tot['matched']}: IoU >= 0.9: {tot['ge90']}, 0.8-0.9: {tot['80_90']}, < 0.8: {tot['lt80']}"
          f"  (median IoU {np.median(ious) if ious else float('nan'):.3f}, min {min(ious) if ious else float('nan'):.3f})")
    print(f"same FER label on the matched faces' crops: {tot['same_label']}/{tot['matched']}")
    print(f"found at full resolution only: {tot['only_full']}; on the capped copy only: {tot['only_cap']}")
    print("\n".join(notes))
    print(f"yardstick, full resolution vs a 0.95x copy: IoU >= 0.9 for {tot['jit_ge90']}/{tot['jit_n']} matched faces"
          f" (median {np.median(jious) if jious else float('nan'):.3f}, min {min(jious) if jious else float('nan'):.3f});"
          f" same FER label {tot['jit_same']}/{tot['jit_n']}")
    print(f"detection time on these {n_big} images: full resolution {t_full:.1f} s, capped {t_cap:.1f} s; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
