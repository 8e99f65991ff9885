"""Peak memory and time of `labeler export` on a synthetic database of 50,000 faces.

    .venv/bin/python scripts/bench/bench_export_memory.py [--faces 50000] [--work /tmp/bench_export] [--formats imagefolder,csv]

Builds the database once (bulk inserts: images, paths, faces with one small reused JPEG crop, a
model proposal and a decision per face, human annotations on a third), then runs each export in a
fresh process and reports its peak RSS (VmHWM from /proc/self/status, else resource.getrusage) and wall time.
Target: < 500 MB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

LIMIT_MB = 500


def _crop() -> bytes:
    import numpy as np
    from PIL import Image as PILImage

    arr = (np.random.default_rng(0).integers(0, 255, (112, 112, 3))).astype("uint8")
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def build(db: Path, n_faces: int) -> None:
    from labeler.store import Annotation, DecisionRow, Face, Image, ImagePath, Proposal, Store
    from labeler.types import LABELS

    t0 = time.perf_counter()
    store = Store(f"sqlite:///{db}")
    crop = _crop()
    root = "/bench/photos"
    fid = iid = 0
    batch = 5000
    with store.session() as s:
        conn = s.connection()
        while fid < n_faces:
            imgs, paths, faces, props, decs, anns = [], [], [], [], [], []
            while fid < n_faces and len(faces) < batch:
                iid += 1
                n = 2 if iid % 10 == 0 else 1  # every tenth photo has two faces
                lab = LABELS[iid % 7]
                imgs.append({"id": iid, "sha256": f"{iid:064x}", "size_bytes": 1000, "width": 640, "height": 480, "format": "JPEG",
                             "status": "ingested", "error": "", "rule_state": "none", "rule_words": "[]", "rule_source": "",
                             "detected": True, "detector": "bench"})
                paths.append({"image_id": iid, "path": f"{root}/{lab}/{iid:07d}.jpg", "root": root, "relpath": f"{lab}/{iid:07d}.jpg",
                              "mtime": 0.0, "size_bytes": 1000})
                for k in range(n):
                    if fid >= n_faces:
                        break
                    fid += 1
                    faces.append({"id": fid, "image_id": iid, "idx": k, "x1": 10.0, "y1": 10.0, "x2": 120.0, "y2": 130.0, "det_score": 0.99,
                                  "whole_image": False, "flags": "", "detector": "bench", "crop": crop,
                                  "quality": {"det_score": 0.99, "size": 110, "blur": 200.0, "yaw": 3.0}})
                    props.append({"face_id": fid, "source_kind": "model", "source": "bench@1", "label": lab, "prob": 0.8,
                                  "probs": {x: (0.8 if x == lab else 0.2 / 6) for x in LABELS}, "detail": ""})
                    route = "auto" if fid % 3 == 1 else "review"
                    decs.append({"image_id": iid, "face_id": fid, "route": route, "label": lab if route == "auto" else None,
                                  "reason": "bench", "kind": "model_confident" if route == "auto" else "low_confidence",
                                  "priority": 0.0, "source": "bench"})
                    if fid % 3 == 0:
                        anns.append({"face_id": fid, "annotator": "ann", "action": "label", "labels": [lab], "source": "ui"})
            for table, rows in ((Image, imgs), (ImagePath, paths), (Face, faces), (Proposal, props), (DecisionRow, decs), (Annotation, anns)):
                if rows:
                    conn.execute(table.__table__.insert(), rows)
    store.engine.dispose()
    print(f"built {db}: {fid} faces on {iid} images in {time.perf_counter() - t0:.1f} s", flush=True)


def peak_rss_mb() -> float:
    """Peak RSS of this process: VmHWM from /proc (Linux; getrusage's ru_maxrss would carry the
    parent's peak across exec), else ru_maxrss."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def run_one(db: Path, fmt: str, out: Path) -> None:
    from labeler.datasets.export import export
    from labeler.store import Store

    base = peak_rss_mb()
    t0 = time.perf_counter()
    summ = export(Store(f"sqlite:///{db}"), fmt, out, overwrite=True)
    dt = time.perf_counter() - t0
    print(json.dumps({"format": fmt, "seconds": round(dt, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
                      "rss_before_export_mb": round(base, 1), "records": summ["records"], "written": summ["written"],
                      "class_counts": summ["class_counts"]}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=50_000)
    ap.add_argument("--work", default="/tmp/bench_export")
    ap.add_argument("--formats", default="imagefolder,csv")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--_run", nargs=3, metavar=("DB", "FMT", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._run:
        run_one(Path(a._run[0]), a._run[1], Path(a._run[2]))
        return 0
    work = Path(a.work)
    db = work / f"bench_{a.faces}.db"
    if a.rebuild and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        build(db, a.faces)
    ok = True
    for fmt in a.formats.split(","):
        out = work / f"out_{fmt}"
        r = subprocess.run([sys.executable, __file__, "--_run", str(db), fmt, str(out)], capture_output=True, text=True)
        if r.returncode:
            print(r.stdout, r.stderr, file=sys.stderr)
            return r.returncode
        res = json.loads(r.stdout.strip().splitlines()[-1])
        verdict = "OK" if res["peak_rss_mb"] < LIMIT_MB else f"OVER {LIMIT_MB} MB"
        ok &= res["peak_rss_mb"] < LIMIT_MB
        print(f"{fmt:12s} {res['records']} records, {res['written']} written in {res['seconds']} s; "
              f"peak RSS {res['peak_rss_mb']} MB (after imports {res['rss_before_export_mb']} MB) {verdict}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
