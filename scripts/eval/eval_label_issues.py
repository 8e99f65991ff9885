"""Does `labeler issues` find the wrong labels, and does the consensus beat the majority? Issue 33's
three figures on FER2013 PublicTest with the FER+ crowd votes.

    .venv/bin/python scripts/eval/eval_label_issues.py [--data ../shared/data/fer2013/public_test]
        [--votes ../shared/data/fer2013/ferplus_votes.csv] [--model fer-ferplus-cnn] [--seeds 5] [--out FILE.json]

Probabilities: the model (default: the shipped default, fer-ferplus-cnn, trained on FER2013 *train*
with FER+ votes, so out of sample here) on the 48x48 crops, flip-averaged, as
``scripts/eval/eval_fer2013.py`` runs it. The truth: the FER+ majority (the unique largest of the ten
votes when it is one of the seven classes; ties, contempt/unknown/not-a-face majorities and images
without votes are not evaluated).

1. FER2013's own labels as the given labels: how well the issue score ranks the labels that
   disagree with the FER+ majority (AUROC; share of true disagreements in the top 10% of the
   evaluated images), side by side with cleanlab's ``find_label_issues`` default (a yes/no verdict:
   its precision, recall and the AUROC of the verdict) and a plain 1 - p(given label) in numpy.
2. Synthetic noise: the FER+ majority labels (the images that have one) with 10% flipped at random
   to another class (one seed per run): the share of the flips in the top 15% of the list.
3. Crowd: three simulated annotators per image, their votes drawn without replacement from the
   image's ten (a contempt/unknown/not-a-face draw is no class rating: ``labeler import`` records
   unknown/NF as unusable and contempt not at all); the Dawid-Skene consensus (the full model, which
   ``auto`` uses from 2,000 faces rated twice, and the one-coin model) and the three-vote majority
   (``labeler.store.vote``'s rule: a tie goes to the newest rating, here annotator C's) against the
   ten-vote majority; Krippendorff's alpha of the three with its 95% bootstrap interval. Then the
   same on random subsets of 30 to 2,000 images: how the models do on a small project.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "eval"))
from eval_fer2013 import folder_files, load_folder  # noqa: E402

from labeler.fer.resolver import load_model  # noqa: E402
from labeler.quality import Rating  # noqa: E402
from labeler.quality import agreement as ag  # noqa: E402
from labeler.quality.consensus import DAWID_SKENE, ONE_COIN, consensus  # noqa: E402
from labeler.quality.issues import scores  # noqa: E402
from labeler.store import vote  # noqa: E402
from labeler.types import LABELS  # noqa: E402

#: FER+ vote columns in LABELS order, then the three answers that are no class
VOTE_COLS = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral", "contempt", "unknown", "NF"]


def read_votes(path: Path, files: list[str]) -> np.ndarray:
    """files x 10 vote counts (zeros where the file has no votes)."""
    rows = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rows[r["file"]] = [float((r.get(c) or "0").strip() or 0) for c in VOTE_COLS]
    return np.array([rows.get(f, [0.0] * 10) for f in files])


def majority(v: np.ndarray) -> np.ndarray:
    """Per row the index of the unique largest count when it is one of the seven classes, else -1."""
    out = np.full(len(v), -1)
    for i, row in enumerate(v):
        if row.max() > 0:
            top = np.flatnonzero(row == row.max())
            if len(top) == 1 and top[0] < 7:
                out[i] = top[0]
    return out


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def top_share(y: np.ndarray, s: np.ndarray, frac: float) -> tuple[float, float]:
    """(share of positives among the top ``frac`` by score, share of all positives found there)."""
    k = int(round(frac * len(s)))
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean()), float(y[top].sum() / max(y.sum(), 1))


def cleanlab_default(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    import warnings

    from cleanlab.filter import find_label_issues

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(find_label_issues(given, probs, n_jobs=1), dtype=bool)


def compare(name: str, given: np.ndarray, probs: np.ndarray, wrong: np.ndarray, frac: float, ev: np.ndarray) -> dict:
    """Our score, the CL-adjusted margin, plain 1 - p and cleanlab's default verdict on one set of labels
    (scored over every row, evaluated on the rows ``ev``)."""
    y = wrong[ev].astype(int)
    ours = scores(given, probs).score
    adjusted = scores(given, probs, "adjusted_margin").score
    plain = 1.0 - probs[np.arange(len(given)), given]
    cl = cleanlab_default(given, probs)
    out = {"set": name, "n": int(ev.sum()), "wrong": int(y.sum()), "top_frac": frac}
    for key, s in (("labeler issues (self_confidence)", ours), ("adjusted_margin (CL thresholds)", adjusted),
                   ("plain 1 - p(given)", plain)):
        prec, found = top_share(y, s[ev], frac)
        out[key] = {"auroc": auroc(y, s[ev]), "precision_top": prec, "found_in_top": found}
    f = cl[ev]
    out["cleanlab find_label_issues default"] = {
        "flagged": int(f.sum()), "precision": float(y[f].mean()) if f.any() else None,
        "recall": float(f[y == 1].mean()), "auroc": auroc(y, f.astype(float))}
    return out


def simulate(v: np.ndarray, rng, rows) -> list[Rating]:
    """Three annotators A, B, C per image (of ``rows``): votes drawn without replacement from its ten."""
    ratings: list[Rating] = []
    order = 0
    for i in rows:
        row = v[i]
        if row.sum() < 3:
            continue
        draws = rng.choice(np.repeat(np.arange(10), row.astype(int)), 3, replace=False)
        for who, k in zip("ABC", draws):
            order += 1
            if k < 7:  # contempt / unknown / not a face: no class rating
                ratings.append(Rating(int(i), who, LABELS[k], order))
    return ratings


def agreeing(ratings: list[Rating], truth: np.ndarray) -> dict[str, float]:
    """Share of the evaluated images (a ten-vote majority, at least one rating) where each consensus
    gives the ten-vote majority: full and one-coin Dawid-Skene, and the three-vote majority by the
    store's rule."""
    by: dict[int, dict] = {}
    for r in ratings:  # the store's majority rule on the same ratings
        by.setdefault(r.face_id, {})[r.annotator] = SimpleNamespace(action="label", labels=[r.label], id=r.order)
    ev = [i for i in by if truth[i] >= 0]
    out = {"evaluated": len(ev)}
    for name, model in (("dawid_skene", DAWID_SKENE), ("one_coin", ONE_COIN)):
        cons, _s = consensus(ratings, LABELS, model)
        out[name] = sum(1 for i in ev if cons[i].label == LABELS[truth[i]]) / len(ev)
    out["majority3"] = sum(1 for i in ev if vote(by[i])[0] == LABELS[truth[i]]) / len(ev)
    return out


def crowd(v: np.ndarray, truth: np.ndarray, seed: int, reps: int = 1000) -> dict:
    ratings = simulate(v, np.random.default_rng(seed), range(len(v)))
    t0 = time.perf_counter()
    _cons, skills = consensus(ratings, LABELS, DAWID_SKENE)
    ds_s = time.perf_counter() - t0
    got = agreeing(ratings, truth)
    _faces, n = ag.counts(ratings, LABELS)
    return {"seed": seed, "evaluated": got["evaluated"], "ratings": len(ratings), "dawid_skene_agrees": got["dawid_skene"],
            "one_coin_agrees": got["one_coin"], "majority3_agrees": got["majority3"], "ds_seconds": round(ds_s, 2),
            "alpha_nominal": ag.alpha_estimate(n, None, ag.NOMINAL, reps, seed=seed).__dict__,
            "alpha_weighted": ag.alpha_estimate(n, ag.label_distance(LABELS), ag.FERPLUS, reps, seed=seed).__dict__,
            "annotator_accuracy": {s.annotator: s.accuracy for s in skills}}


def sizes(v: np.ndarray, truth: np.ndarray, ns: list[int], reps: int) -> list[dict]:
    """The crowd models on random subsets of ``n`` images (``reps`` each, seeded): mean agreement with
    the ten-vote majority and in how many subsets each model fell below the three-vote majority."""
    have = np.flatnonzero(v.sum(1) >= 3)
    out = []
    for n in ns:
        runs = [agreeing(simulate(v, rng, rng.choice(have, n, replace=False)), truth)
                for rng in (np.random.default_rng(1000 * n + r) for r in range(reps))]
        row = {"images": n, "subsets": reps}
        for k in ("dawid_skene", "one_coin", "majority3"):
            row[k] = float(np.mean([r[k] for r in runs]))
        for k in ("dawid_skene", "one_coin"):
            row[f"{k}_below_majority"] = sum(1 for r in runs if r[k] < r["majority3"])
        out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "public_test"))
    ap.add_argument("--votes", default=None, help="FER+ votes CSV (default: ferplus_votes.csv beside --data)")
    ap.add_argument("--model", default=None, help="FER model (default: the shipped default)")
    ap.add_argument("--seeds", type=int, default=5, help="runs of the synthetic flips and of the simulated annotators")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="30,60,120,250,500,1000,2000", help="subset sizes for the crowd models on small projects")
    ap.add_argument("--size-reps", type=int, default=12, help="random subsets per size")
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    data = Path(args.data)
    votes_csv = Path(args.votes) if args.votes else data.parent / "ferplus_votes.csv"
    if not data.is_dir() or not votes_csv.is_file():
        print(f"error: expected {data}/<class>/*.jpg and {votes_csv}: give --data and --votes", file=sys.stderr)
        return 2
    model = load_model(args.model, intra_op_num_threads=args.threads)
    labels = list(model.labels)
    if tuple(labels) != LABELS:
        print(f"error: the model's classes {labels} are not {list(LABELS)}", file=sys.stderr)
        return 2
    crops, y = load_folder(data, labels)
    files = folder_files(data, labels)
    probs = model.predict(crops, flip=True)
    v = read_votes(votes_csv, files)
    truth = majority(v)
    ev = truth >= 0
    print(f"model {model.ident}, {len(y)} images, {int(ev.sum())} with a FER+ majority; FER2013 labels agree with it on "
          f"{(y[ev] == truth[ev]).mean():.4f}")
    res = {"model": model.ident, "images": len(y), "evaluated": int(ev.sum())}

    res["fer2013_labels"] = compare("FER2013 labels vs FER+ majority", y, probs, y != truth, 0.10, ev)
    flips = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        idx = np.flatnonzero(ev)
        given = truth.copy()
        hit = rng.choice(idx, int(round(0.10 * len(idx))), replace=False)
        given[hit] = (truth[hit] + rng.integers(1, 7, len(hit))) % 7
        # the list: the images with a FER+ majority label, 10% of them flipped
        flips.append({"seed": seed, **compare("FER+ majority, 10% flipped", given[ev], probs[ev], (given != truth)[ev], 0.15,
                                              np.ones(int(ev.sum()), dtype=bool))})
    res["synthetic_flips"] = flips
    res["crowd"] = [crowd(v, truth, seed) for seed in range(args.seeds)]
    res["crowd_sizes"] = sizes(v, truth, [int(x) for x in args.sizes.split(",") if x], args.size_reps)
    _print(res)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1, default=float) + "\n", encoding="utf-8")
    return 0


def _print(res: dict) -> None:
    def rows(r: dict) -> None:
        print(f"  {'ranking':38s} {'AUROC':>6s} {'prec@top':>8s} {'found@top':>9s}")
        for k, x in r.items():
            if isinstance(x, dict) and "precision_top" in x:
                print(f"  {k:38s} {x['auroc']:6.4f} {x['precision_top']:8.4f} {x['found_in_top']:9.4f}")
        c = r["cleanlab find_label_issues default"]
        print(f"  cleanlab find_label_issues default: {c['flagged']} flagged, precision {c['precision']:.4f}, "
              f"recall {c['recall']:.4f}, AUROC of the verdict {c['auroc']:.4f}")

    r = res["fer2013_labels"]
    print(f"\n1. {r['set']}: {r['n']} images, {r['wrong']} disagree; top = {r['top_frac']:.0%}")
    rows(r)
    print("\n2. synthetic flips (10% of the FER+ majority labels; top = 15%)")
    for r in res["synthetic_flips"]:
        print(f" seed {r['seed']}: {r['wrong']} flips")
        rows(r)
    print("\n3. crowd: three simulated annotators per image vs the ten-vote majority")
    for c in res["crowd"]:
        an, aw = c["alpha_nominal"], c["alpha_weighted"]
        print(f" seed {c['seed']}: Dawid-Skene {c['dawid_skene_agrees']:.4f}, one-coin {c['one_coin_agrees']:.4f}, "
              f"three-vote majority {c['majority3_agrees']:.4f} "
              f"({c['evaluated']} images, {c['ratings']} class ratings); alpha nominal {an['alpha']:.4f} "
              f"[{an['lower']:.4f}, {an['upper']:.4f}], weighted {aw['alpha']:.4f} [{aw['lower']:.4f}, {aw['upper']:.4f}]; "
              "annotator accuracy " + ", ".join(f"{k} {x:.3f}" for k, x in c["annotator_accuracy"].items()))
    mean = {k: np.mean([c[k] for c in res["crowd"]]) for k in ("dawid_skene_agrees", "one_coin_agrees", "majority3_agrees")}
    print(f" mean over {len(res['crowd'])} seeds: Dawid-Skene {mean['dawid_skene_agrees']:.4f}, one-coin "
          f"{mean['one_coin_agrees']:.4f}, three-vote majority {mean['majority3_agrees']:.4f}")
    print("\n3b. small projects: random subsets of the images, three simulated annotators each")
    print(f"  {'images':>6s} {'subsets':>7s} {'Dawid-Skene':>11s} {'one-coin':>8s} {'majority':>8s}  below the majority (DS / one-coin)")
    for r in res["crowd_sizes"]:
        print(f"  {r['images']:6d} {r['subsets']:7d} {r['dawid_skene']:11.4f} {r['one_coin']:8.4f} {r['majority3']:8.4f}  "
              f"{r['dawid_skene_below_majority']} / {r['one_coin_below_majority']}")


if __name__ == "__main__":
    raise SystemExit(main())
