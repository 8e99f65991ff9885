"""Convention vs forgetting (issue 32): does a head's per-face weighting tell the project's faces
from the base model's own domain?

    python scripts/eval/eval_separation.py --db /tmp/rd/prepared.db [--dev ../shared/data/dev]
                                      [--public-test ../shared/data/fer2013/public_test]

``--db``: a database of issue 11's experiment with the web_pool labels imported (``prepared.db`` of
``scripts/eval/eval_retrain_domains.py``). From its human-labeled faces (the project's) it builds the two
weightings a head can use, as ``labeler train`` builds them: the kNN reach
(:mod:`labeler.training.reach`; radius from the labeled faces, standardised over the labeled,
unlabeled and replay rows) and the likeness (:mod:`labeler.training.likeness`; the labeled faces
against the shipped replay faces). It prints, per set of faces, the median weight and the share a
head would count as like the project's (reach weight >= 0.5; likeness p >= 0.5), for the labeled
faces, the dev subsets (single-face images), the shipped gate faces and the whole PublicTest, and
the AUC of telling web_keyword from PublicTest by the weight (0.5: not at all, 1: perfectly).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties half (Mann-Whitney)."""
    s = np.concatenate([pos, neg])
    order = s.argsort(kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for v in np.unique(s):  # average ranks of ties
        m = s == v
        ranks[m] = ranks[m].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--dev", default=str(SHARED / "dev"))
    ap.add_argument("--public-test", default=str(SHARED / "fer2013" / "public_test"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import cv2

    from labeler.fer.resolver import shipped_model
    from labeler.store import Store, iter_face_records
    from labeler.training.basedomain import load_base_domain
    from labeler.training.data import cv_set, face_features, unlabeled_sample
    from labeler.training.likeness import ProbeRunner, fit_likeness
    from labeler.training.reach import REACH_Q, make_reach

    store = Store(f"sqlite:///{Path(a.db).resolve()}")
    model = shipped_model()
    runner = ProbeRunner(model)
    dom, why = load_base_domain(model)
    if dom is None:
        raise SystemExit(f"error: {why}")
    data = cv_set(store, model.labels, 5, a.seed)
    uf = unlabeled_sample(store, 3000, a.seed)

    def both(ids):
        x, y = face_features(store, runner, ids), face_features(store, runner, ids, flip=True)
        return x, y

    L, U = both(data.face_ids), both(uf)
    E = np.concatenate([L[0][0], L[1][0]])
    P = np.concatenate([L[0][2], L[1][2]])
    Er, _, Pr = dom.replay.both_views()
    allE = np.concatenate([E, U[0][0], U[1][0], Er])
    mu, sd = allE.mean(0), allE.std(0) + 1e-6
    reach = make_reach((E - mu) / sd, mu, sd, np.concatenate([np.arange(len(data.y))] * 2), q=REACH_Q)
    lk = fit_likeness(np.c_[P, E], np.c_[Pr, Er], runner.tensors, seed=a.seed)

    def weights(a_view, b_view):  # mean over the two views of (reach weight, likeness p)
        r = 0.5 * (reach.weights(a_view[0]) + reach.weights(b_view[0]))
        p = 0.5 * (lk.prob(np.c_[a_view[2], a_view[0]]) + lk.prob(np.c_[b_view[2], b_view[0]]))
        return r, p

    sets = {"labeled (web_pool)": weights(*L)}
    dev = Path(a.dev)
    truth = {}
    with open(dev / "labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            truth[str((dev / row["file"]).resolve())] = row["subset"]
    faces = defaultdict(list)
    for r in iter_face_records(store):
        if r.face_id is not None:
            faces[r.image_id].append(r)
    by_subset = defaultdict(list)
    for recs in faces.values():
        sub = next((truth[p] for p in recs[0].paths if p in truth), None)
        if len(recs) == 1 and sub in ("web_keyword", "muxspace", "fer2013_48px"):
            by_subset[sub].append(recs[0].face_id)
    for sub in ("web_keyword", "muxspace", "fer2013_48px"):
        sets[f"dev {sub}"] = weights(*both(by_subset[sub]))
    g = dom.gate
    sets["shipped gate (FER2013)"] = weights((g.E, g.Z, g.P), (g.Ef, g.Zf, g.Pf))
    files = sorted(p for p in Path(a.public_test).glob("*/*") if p.suffix.lower() in (".jpg", ".png"))
    imgs = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files]
    sets["PublicTest (whole)"] = weights(runner.run(imgs), runner.run([np.ascontiguousarray(i[:, ::-1]) for i in imgs]))
    print(f"{'faces':26s} {'n':>5s}   {'reach: median':>13s} {'>= 0.5':>7s}   {'likeness p: median':>18s} {'>= 0.5':>7s}")
    for name, (r, p) in sets.items():
        print(f"{name:26s} {len(r):5d}   {np.median(r):13.3f} {np.mean(r >= 0.5):7.1%}   {np.median(p):18.3f} {np.mean(p >= 0.5):7.1%}")
    (rw, pw), (rp, pp) = sets["dev web_keyword"], sets["PublicTest (whole)"]
    (rf, pf) = sets["dev fer2013_48px"]
    print(f"AUC web_keyword vs PublicTest: reach {auc(rw, rp):.3f}, likeness {auc(pw, pp):.3f}; "
          f"web_keyword vs dev fer2013_48px: reach {auc(rw, rf):.3f}, likeness {auc(pw, pf):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
