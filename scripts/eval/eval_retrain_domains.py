"""Does retraining on one domain's labels help it without harming the others? (issues 11 and 32)

    python scripts/eval/eval_retrain_domains.py --work /tmp/retrain_domains            # builds the database
    python scripts/eval/eval_retrain_domains.py --work /tmp/rd2 --from-db /tmp/rd/base.db --seeds 0-9
    python scripts/eval/eval_retrain_domains.py --work /tmp/rd3 --from-db /tmp/rd/base.db --seeds 0-9 \
        --train-args "--base-data ../shared/data/fer2013/public_test" --public-test ../shared/data/fer2013/public_test

As a user would, with the CLI (a new process per command; PYTHONPATH is passed on, so it also runs
against an older checkout): ``labeler autolabel`` ../shared/data/dev/images and
../shared/data/web_pool/images into one database (or copy ``--from-db``), ``labeler autolabel
--repropose`` the dev images and measure (the base, from the stored crops, like the heads after),
``labeler import --format csv`` the pool's folder labels; then per seed, on a copy of that
database: ``labeler train --mode head --seed N``, ``labeler autolabel --repropose``, measure again.
The measure: per dev subset, top-1 of the newest model proposal against labels.csv on single-face
images (the image's one face; empty/contempt labels left out), and the paired comparison with the
base on the same faces (labeler.training.stats: McNemar's exact p that it is worse, the one-sided
95% bounds of the change; "worse" = significantly worse beyond the 2-point margin, the gate's rule).
``--public-test DIR``: each promoted head's FER+ majority accuracy on the whole FER2013 PublicTest
(flip-averaged, like the pipeline) beside the base's.
"""
from __future__ import annotations

import argparse
import csv
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

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


def measure(db: Path, t: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """subset -> {path: (right, model ident)} of the single-face images."""
    from labeler.store import Store, iter_face_records

    faces = defaultdict(list)
    for r in iter_face_records(Store(f"sqlite:///{db}")):
        if r.face_id is not None:
            faces[r.image_id].append(r)
    out: dict[str, dict] = {s: {} for s in SUBSETS}
    for recs in faces.values():
        if len(recs) != 1:
            continue
        p = next((p for p in recs[0].paths if p in t), None)
        if p is None or t[p][0] not in out:
            continue
        out[t[p][0]][p] = (recs[0].model_label == t[p][1], recs[0].model_source)
    return out


def paired(before: dict, after: dict):
    """The paired comparison of two measures of one subset (the same images)."""
    from labeler.training.stats import paired_change

    keys = sorted(set(before) & set(after))
    return paired_change([before[k][0] for k in keys], [after[k][0] for k in keys])


def public_test(folder: Path, sidecars: list[str]) -> dict[str, tuple[float, int]]:
    """sidecar -> (FER+ majority accuracy, images) on the whole PublicTest folder, flip-averaged."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_fer2013 import ferplus_majority, folder_files, load_folder

    from labeler.fer.resolver import load_model

    labels = list(CLASSES)
    crops, _ = load_folder(folder, labels)
    y = ferplus_majority(folder.parent / "ferplus_votes.csv", folder_files(folder, labels), labels)
    m = y >= 0
    out = {}
    for side in sidecars:
        p = load_model(side).predict(crops, flip=True)
        out[side] = (float((p.argmax(1)[m] == y[m]).mean()), int(m.sum()))
    return out


def seeds_arg(text: str) -> list[int]:
    """``0-9`` or ``0,2,5``."""
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def _copy_db(src_path: Path, dst_path: Path) -> None:
    src, dst = sqlite3.connect(src_path), sqlite3.connect(dst_path)
    src.backup(dst)
    src.close()
    dst.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="a new folder for the databases and models")
    ap.add_argument("--from-db", default=None, help="copy this autolabeled SQLite database instead of autolabeling")
    ap.add_argument("--dev", default=str(SHARED / "dev"))
    ap.add_argument("--pool", default=str(SHARED / "web_pool"))
    ap.add_argument("--seeds", default="0", help="training seeds: 0-9 or 0,2,5 (default 0)")
    ap.add_argument("--train-args", default="", help="extra `labeler train` arguments, e.g. '--base-data DIR'")
    ap.add_argument("--public-test", default=None, metavar="DIR", help="FER2013 public_test folder (ferplus_votes.csv beside it)")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "prepared.db"
    if db.exists():
        raise SystemExit(f"{db} exists: expected a fresh folder")
    import os

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
    print(labeler(db, "import", "--format", "csv", str(pool / "labels.csv"), "--annotator", "web_pool").strip().splitlines()[1])
    # the commands run in the work folder: paths given relative to here are made absolute
    targs = [str(Path(x).resolve()) if not x.startswith("-") and Path(x).exists() else x for x in a.train_args.split()]
    rows = []
    for seed in seeds_arg(a.seeds):
        sdb = work / f"seed{seed}.db"
        _copy_db(db, sdb)
        os.environ["LABELER_USER_MODELS"] = str(work / f"models{seed}")
        out = labeler(sdb, "train", "--mode", "head", "--seed", str(seed), *targs).strip().splitlines()
        print(f"--- seed {seed}: " + "\n".join(line for line in out if line.startswith(("model ", "gate: [FAILED]", "promoted", "not promoted"))))
        promoted = out[-1].startswith("promoted")
        labeler(sdb, "autolabel", str(dev / "images"), "-q", "--repropose")
        after = measure(sdb, t)
        sidecar = out[0].split("->")[-1].strip()
        rows.append((seed, promoted, sidecar, {s: paired(before[s], after[s]) for s in SUBSETS}, out[-1]))
    pt = public_test(Path(a.public_test), [str(Path(__file__).resolve().parents[1] / "models" / "fer_ferplus_cnn.json")]
                     + [r[2] for r in rows if r[1]]) if a.public_test else {}
    import labeler as pkg

    print(f"\nlabeler from {Path(pkg.__file__).parent}; train args: {a.train_args or '(none)'}")
    print(f"{'seed':>4s} {'promoted':8s} " + " ".join(f"{s:>34s}" for s in SUBSETS) + ("  PublicTest FER+" if pt else ""))
    base_pt = next(iter(pt.values()))[0] if pt else None
    for seed, promoted, side, ch, _last in rows:
        cells = [f"{c.before:.3f}->{c.after:.3f} +{c.gains}/-{c.losses} [{100 * c.lower:+.1f},{100 * c.upper:+.1f}]"
                 + ("!" if c.worse_beyond(0.02) else " ") for c in (ch[s] for s in SUBSETS)]
        ptc = f"  {base_pt:.4f}->{pt[side][0]:.4f}" if promoted and side in pt else ""
        print(f"{seed:4d} {'yes' if promoted else 'no':8s} " + " ".join(f"{c:>34s}" for c in cells) + ptc)
    prom = [r for r in rows if r[1]]
    print(f"promoted on {len(prom)} of {len(rows)} seeds")
    for s in SUBSETS:
        ch = [r[3][s] for r in prom]
        if ch:
            worse = sum(c.worse_beyond(0.02) for c in ch)
            print(f"  {s:14s} on promoted seeds: mean change {100 * np.mean([c.change for c in ch]):+.1f} points; "
                  f"significantly worse beyond 2 points (one-sided 95%) on {worse} of {len(ch)}")
    if pt:
        print(f"  PublicTest FER+ majority ({next(iter(pt.values()))[1]} images): base {base_pt:.4f}; promoted heads "
              + ", ".join(f"{pt[r[2]][0]:.4f}" for r in prom))
    for seed, promoted, _side, _ch, last in rows:
        if not promoted:
            print(f"  seed {seed}: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
