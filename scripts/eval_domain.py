"""Domain adaptation experiment (issue 6, "done when"): does a head retrained on a team's own web
labels help on other web photos?

1. ingest + autolabel ../shared/data/web_pool/images into a fresh database (the project's default
   model), import its labels.csv as human annotations (single-face images only, as the importer does);
2. `train_head` on those labels (held-out part grouped by image) and `calibrate` the shipped model on
   the same labels (temperature only), for comparison;
3. on ../shared/data/dev (autolabelled into a second fresh database), compare shipped / calibrated /
   retrained-head on the labeled single-face images of the subsets web_keyword and muxspace whose
   label is one of the pool's classes: accuracy, macro-F1, ECE, and the share of faces that could be
   auto-accepted at >= 90% precision (sweeping a threshold on the top probability).

    .venv/bin/python scripts/eval_domain.py [--work /tmp/eval_domain] [--json out.json]

Nothing from ../shared is copied into the repository: databases and models go under --work.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from labeler import retrain  # noqa: E402
from labeler.config import Config  # noqa: E402
from labeler.pipeline import Autolabeler  # noqa: E402
from labeler.ingest.rules import load_rules  # noqa: E402
from labeler.store import Store, human_labeled_faces, iter_face_records  # noqa: E402


def coverage_at_precision(probs: np.ndarray, y: np.ndarray, target: float = 0.9) -> tuple[float, float]:
    """Largest share of faces whose top-1 can be accepted with precision >= target, sweeping a
    threshold on the top probability; returns (coverage, threshold) (0, 1.0 when none)."""
    conf = probs.max(axis=1)
    ok = probs.argmax(axis=1) == y
    order = np.argsort(-conf, kind="stable")
    best_cov, best_thr = 0.0, 1.0
    hits = 0
    for i, j in enumerate(order, start=1):
        hits += ok[j]
        # only cut between distinct confidences
        if i < len(order) and conf[order[i]] == conf[j]:
            continue
        if hits / i >= target:
            best_cov, best_thr = i / len(y), float(conf[j])
    return best_cov, best_thr


def autolabel(db: Path, root: Path, model_path: str | None = None) -> Store:
    store = Store(f"sqlite:///{db}")
    model = retrain._load(model_path) if model_path else None
    t0 = time.perf_counter()
    rep = Autolabeler(store, Config(), load_rules(), model=model).run(root, progress=False)
    print(f"autolabel {root}: {rep.faces} faces in {rep.images_detected} images, {time.perf_counter() - t0:.0f} s", flush=True)
    return store


def dev_faces(store: Store, labels_csv: Path, subsets: set[str], classes: set[str]) -> list[tuple[int, str, str]]:
    """(face_id, subset, label) of labeled dev images with exactly one face found."""
    truth = {}
    with open(labels_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["subset"] in subsets and row["label"] in classes:
                truth[str((labels_csv.parent / row["file"]).resolve())] = (row["subset"], row["label"])
    by_img: dict[int, list] = {}
    for rec in iter_face_records(store):
        t = next((truth[p] for p in rec["paths"] if p in truth), None)
        if t is not None:
            by_img.setdefault(rec["image_id"], []).append((rec["face_id"], t))
    out = []
    for recs in by_img.values():
        if len(recs) == 1 and recs[0][0] is not None:
            out.append((recs[0][0], *recs[0][1]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/eval_domain")
    ap.add_argument("--pool", default=str(SHARED / "web_pool"))
    ap.add_argument("--dev", default=str(SHARED / "dev"))
    ap.add_argument("--fresh", action="store_true", help="delete --work first")
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    work, pool, dev = Path(a.work), Path(a.pool), Path(a.dev)
    if a.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ[retrain.USER_MODELS_ENV] = str(work / "models")

    # 1. the team's own labels
    pstore = autolabel(work / "pool.db", pool / "images")
    from labeler.datasets.importer import import_csv

    rep = import_csv(pstore, pool / "labels.csv", annotator="web_pool")
    print("\n".join(rep.lines()), flush=True)
    classes = sorted({lab for _f, _i, lab in human_labeled_faces(pstore)} - set(retrain.SKIP_LABELS))
    shipped = retrain._load(None, pstore)
    print(f"shipped model {shipped.ident}; pool classes {classes}", flush=True)

    # 2. retrain the head; calibrate the shipped model (not promoted in this DB: only for comparison)
    res = retrain.train_head(pstore, l2=a.l2, epochs=a.epochs, out_dir=work / "models")
    cal = retrain.calibrate(pstore, shipped.card.sidecar.as_posix(), out_dir=work / "models", set_default=False)

    # 3. evaluate on dev
    dstore = autolabel(work / "dev.db", dev / "images")
    faces = dev_faces(dstore, dev / "labels.csv", {"web_keyword", "muxspace"}, set(classes))
    fids = [f for f, _s, _l in faces]
    lab_idx = {lab: i for i, lab in enumerate(shipped.labels)}
    y = np.array([lab_idx[lab] for _f, _s, lab in faces])
    subs = np.array([s for _f, s, _l in faces])
    models = {"shipped": shipped, "shipped+temperature": retrain._load(cal["sidecar"]), "retrained head": retrain._load(res["sidecar"])}
    results: dict = {"pool": {"import": rep.as_dict(), "heldout": res["metrics"], "promoted": res["promoted"],
                              "calibration": cal["metrics"]}, "dev": {}}
    print(f"\ndev faces (single-face images, classes {classes}): {len(fids)} "
          + ", ".join(f"{s} {int((subs == s).sum())}" for s in sorted(set(subs))))
    hdr = f"{'model':22s} {'subset':12s} {'n':>4s} {'acc':>6s} {'mF1':>6s} {'ECE':>6s} {'cov@90%':>8s} {'thr':>5s}"
    print(hdr)
    for name, m in models.items():
        probs = retrain.model_probs(dstore, m, fids, flip=True)
        for sub in ["all", "web_keyword", "muxspace"]:
            mask = np.ones(len(y), bool) if sub == "all" else subs == sub
            if not mask.any():
                continue
            ev = retrain.evaluate(probs[mask], y[mask], m.labels)
            cov, thr = coverage_at_precision(probs[mask], y[mask], 0.9)
            results["dev"].setdefault(name, {})[sub] = {**{k: ev[k] for k in ("n", "accuracy", "macro_f1", "ece", "nll", "confusion")},
                                                        "coverage_at_90_precision": round(cov, 4), "threshold": round(thr, 4)}
            print(f"{name:22s} {sub:12s} {ev['n']:4d} {ev['accuracy']:6.3f} {ev['macro_f1']:6.3f} {ev['ece']:6.3f} {cov:8.3f} {thr:5.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
