"""Does retraining on one domain's labels harm the others? (issue 11's experiment)

    python scripts/eval_retrain_domains.py --work /tmp/retrain_domains            # builds the database
    python scripts/eval_retrain_domains.py --work /tmp/rd2 --from-db /tmp/rd/base.db  # reuse the autolabeled one

As a user would, with the CLI (a new process per command; PYTHONPATH is passed on, so it also runs
against an older checkout): ``labeler autolabel`` ../shared/data/dev/images and
../shared/data/web_pool/images into one database (or copy ``--from-db``), measure, ``labeler import
--format csv`` the pool's folder labels, ``labeler train --mode head``, ``labeler autolabel
--repropose``, measure again (the base is measured after a --repropose too: both from the stored crops). The measure: per dev subset, top-1 of the newest model proposal
against labels.csv on single-face images (the image's one face; empty/contempt labels left out).
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SUBSETS = ("web_keyword", "muxspace", "fer2013_48px")
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def labeler(db: Path, *args: str) -> str:
    import os

    import labeler as pkg

    # the same labeler as this process (`python -m` would put the working directory first on sys.path)
    src = str(Path(pkg.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])]))
    r = subprocess.run([sys.executable, "-m", "labeler.cli", *args, "--db", f"sqlite:///{db}"], capture_output=True,
                       text=True, env=env, cwd=str(db.parent))
    if r.returncode != 0:
        raise SystemExit(f"`labeler {' '.join(args)}` failed: {r.stderr.strip()[-800:]}")
    return r.stdout


def truth(csv_path: Path) -> dict[str, tuple[str, str]]:
    out = {}
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["label"] in CLASSES:
                out[str((csv_path.parent / row["file"]).resolve())] = (row["subset"], row["label"])
    return out


def measure(db: Path, t: dict[str, tuple[str, str]]) -> dict[str, tuple[int, int, str]]:
    """subset -> (correct, n, model ident(s)) on single-face images."""
    from labeler.store import Store, iter_face_records

    faces = defaultdict(list)
    for r in iter_face_records(Store(f"sqlite:///{db}")):
        if r.face_id is not None:
            faces[r.image_id].append(r)
    acc: dict[str, list] = {s: [0, 0, set()] for s in SUBSETS}
    for recs in faces.values():
        if len(recs) != 1:
            continue
        hit = next((t[p] for p in recs[0].paths if p in t), None)
        if hit is None or hit[0] not in acc:
            continue
        a = acc[hit[0]]
        a[0] += recs[0].model_label == hit[1]
        a[1] += 1
        a[2].add(recs[0].model_source)
    return {s: (c, n, ",".join(sorted(m))) for s, (c, n, m) in acc.items()}


def _copy_db(src_path: Path, dst_path: Path) -> None:
    src, dst = sqlite3.connect(src_path), sqlite3.connect(dst_path)
    src.backup(dst)
    src.close()
    dst.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="a new folder for the database and models")
    ap.add_argument("--from-db", default=None, help="copy this autolabeled SQLite database instead of autolabeling")
    ap.add_argument("--dev", default=str(SHARED / "dev"))
    ap.add_argument("--pool", default=str(SHARED / "web_pool"))
    ap.add_argument("--train-args", default="", help="extra `labeler train` arguments, e.g. '--base-data DIR'")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "exp.db"
    if db.exists():
        raise SystemExit(f"{db} exists: expected a fresh folder")
    import os

    os.environ["LABELER_USER_MODELS"] = str(work / "models")
    dev, pool = Path(a.dev), Path(a.pool)
    if a.from_db:
        _copy_db(Path(a.from_db), db)
    else:
        labeler(db, "autolabel", str(dev / "images"), "-q")
        labeler(db, "autolabel", str(pool / "images"), "-q")
        _copy_db(db, work / "base.db")  # for later runs: --from-db WORK/base.db
    t = truth(dev / "labels.csv")
    # like with like: `after` is proposed from the stored (JPEG) crops by --repropose, so `before` is too
    # (autolabel proposes on the in-memory crop; a few near-ties differ between the two)
    labeler(db, "autolabel", str(dev / "images"), "-q", "--repropose")
    before = measure(db, t)
    print(labeler(db, "import", "--format", "csv", str(pool / "labels.csv"), "--annotator", "web_pool").strip())
    # the commands run in the work folder: paths given relative to here are made absolute
    targs = [str(Path(x).resolve()) if not x.startswith("-") and Path(x).exists() else x for x in a.train_args.split()]
    print(labeler(db, "train", "--mode", "head", *targs).strip())
    labeler(db, "autolabel", str(dev / "images"), "-q", "--repropose")
    after = measure(db, t)
    import labeler as pkg

    print(f"\nlabeler from {Path(pkg.__file__).parent}")
    print(f"{'subset':14s} {'before':>16s} {'after':>16s}  change")
    for s in SUBSETS:
        (c0, n0, m0), (c1, n1, m1) = before[s], after[s]
        print(f"{s:14s} {c0 / max(n0, 1):6.3f} ({c0:2d}/{n0:2d}) {c1 / max(n1, 1):6.3f} ({c1:2d}/{n1:2d})  "
              f"{(c1 / max(n1, 1) - c0 / max(n0, 1)):+.3f}   [{m0} -> {m1}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
