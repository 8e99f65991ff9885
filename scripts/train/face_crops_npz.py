"""Single-face crops of an autolabeled database, as the FER model sees them, into one .npz (for training
and evaluation scripts; the .npz holds third-party pixels: keep it outside the repository).

    labeler autolabel ../shared/data/web_faces/images --db sqlite:////tmp/wf.db -q
    python scripts/train/face_crops_npz.py --db /tmp/wf.db --labels ../shared/data/web_faces/labels.csv --out /tmp/wf.npz

Only images named in ``--labels`` with exactly one stored face are kept (as ``labeler eval`` judges
single-face images). Arrays: ``gray48`` (N x 48 x 48 uint8: the stored crop, RGB -> gray, INTER_AREA, the
shipped model's preprocessing), ``rgb112`` (N x 112 x 112 x 3 uint8, for looking at them), ``files``
X, ``label``, ``group`` (the CSV's ``source_repo``, else ``subset``, else
the CSV's folder name), ``whole_image`` (the face is the whole image: no detection).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True, help="SQLite file or database URL of a `labeler autolabel` run")
    ap.add_argument("--labels", required=True, help="CSV with file (relative to its folder), label[, subset, source_repo]")
    ap.add_argument("--subset", default=None, help="only rows of this subset")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from labeler.store import Store, iter_face_records
    from labeler.store.records import face_crops

    lab_path = Path(args.labels)
    rows = {}
    with open(lab_path, newline="", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            if args.subset and r.get("subset") != args.subset:
                continue
            rows[str((lab_path.parent / r["file"]).resolve())] = r
    url = args.db if "://" in args.db else f"sqlite:///{Path(args.db).resolve()}"
    store = Store(url)
    by_img: dict[int, list] = {}
    for rec in iter_face_records(store):
        p = next((q for q in rec.paths if q in rows), None)
        if p is None or rec.face_id is None:
            continue
        by_img.setdefault(rec.image_id, []).append((p, rec))
    singles = [v[0] for v in by_img.values() if len(v) == 1]
    singles.sort(key=lambda t: rows[t[0]]["file"])
    crops = face_crops(store, [r.face_id for _, r in singles])
    g48, c112, files, labels, groups, whole = [], [], [], [], [], []
    for p, rec in singles:
        b = crops.get(rec.face_id)
        if not b:
            continue
        img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        g48.append(cv2.resize(g, (48, 48), interpolation=cv2.INTER_AREA))
        c112.append(cv2.resize(rgb, (112, 112), interpolation=cv2.INTER_AREA))
        r = rows[p]
        files.append(r["file"])
        labels.append((r.get("label") or "").strip().lower())
        groups.append(r.get("source_repo") or r.get("subset") or lab_path.parent.name)
        whole.append(bool(rec.whole_image))
    np.savez_compressed(args.out, gray48=np.asarray(g48, np.uint8), rgb112=np.asarray(c112, np.uint8),
                        files=np.asarray(files), label=np.asarray(labels), group=np.asarray(groups),
                        whole_image=np.asarray(whole))
    print(f"{len(files)} single-face crops of {len(rows)} labeled images ({len(by_img)} with faces) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
