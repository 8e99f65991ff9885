"""Conformal auto-accept against an oracle, over many seeds of the audit draw (issue 29).

Per data set, once: a folder of links to the labeled images, `labeler autolabel` into a fresh
database, then `labeler clean --text` (text looked for on every image, so that each seed's
re-route reads it instead of measuring it again: the same decisions as text looked for before
auto-accept, once). Per seed: a copy of that database, the routing policy with ``audit_seed`` = the
seed; the oracle answers every audit the tool asks for (blind labels, source ``audit``) until the
sample is complete; `labeler route`'s re-route; then, against the oracle:

- share: auto-accepted faces (no human label) of the scored faces (``fer``: every face with a FER+
  majority; ``dev``: the labeled single faces of web_keyword, muxspace and fer2013_48px, the
  fer2013 rows by their FER+ majority);
- realized precision and false discovery proportion of the auto-accepted scored faces;
- the tool's estimate (point and bounds) beside it;
- the ceiling: the largest share of the scored faces at which the trust score, ordered with
  hindsight, still reaches the target.

    python scripts/eval/eval_selection.py --set fer --set dev --seeds 30 --work /tmp/sel [--method conformal-class]

Nothing from ../shared is written into the repository (the work folder holds the links and databases).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_audit import link_folder, truth_fer  # noqa: E402

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
DEV_SUBSETS = ("web_keyword", "muxspace", "fer2013_48px")


def truth_dev() -> dict[Path, str]:
    """dev's labeled images of the three subsets; fer2013_48px rows by their FER+ majority."""
    out = {}
    with open(SHARED / "dev" / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            lab = r["ferplus_label"] if r["subset"] == "fer2013_48px" else r["label"]
            if r["subset"] in DEV_SUBSETS and lab in LABELS:
                out[SHARED / "dev" / r["file"]] = lab
    return out


def labeler(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "labeler.cli", *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"labeler {' '.join(args)} failed: {r.stderr[-400:]}")
    return r.stdout


def base_db(name: str, truth: dict[Path, str], work: Path) -> tuple[Path, dict[str, str]]:
    folder, db = work / f"{name}_images", work / f"{name}.db"
    if not db.exists():
        if folder.exists():
            shutil.rmtree(folder)
        links = link_folder(truth, folder)
        tmp = work / f"{name}.tmp.db"
        labeler("autolabel", str(folder), "--db", str(tmp), "-q")
        labeler("clean", "--text", "--db", str(tmp), "-q")
        tmp.rename(db)
    else:  # the links made then: link path -> label (targets compared resolved: the checkout may have moved)
        by = {k.resolve(): v for k, v in truth.items()}
        links = {str(p.absolute()): by[p.resolve()] for p in folder.iterdir() if p.resolve() in by}
    return db, links


def one_seed(db: Path, truth: dict[str, str], seed: int, method: str, target: float, audit_size: int,
             single_only: bool, always: bool = False) -> dict:
    from labeler.cleanup import reroute_checked
    from labeler.config import Config
    from labeler.store import Store, add_audit, iter_face_records, members, pending_audits, selection_of

    run = db.with_suffix(f".seed{seed}.db")
    shutil.copyfile(db, run)
    store = Store(f"sqlite:///{run}")
    pol = replace(Config().routing, method=method, target_precision=target, audit_size=audit_size, audit_seed=seed,
                  audit_always=always)
    recs = {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}
    n_img = Counter(r.image_id for r in recs.values())

    def said(r):
        return next((truth[p] for p in r.paths if p in truth), None)

    t0, answers = time.perf_counter(), 0
    for _ in range(50):
        todo = pending_audits(store, pol)
        if not todo:
            break
        for f in todo:
            lab = said(recs[f])
            add_audit(store, f, "oracle", "label" if lab else "unusable", [lab] if lab else None)
            answers += 1
    reroute_checked(store, pol)
    sel = selection_of(store, pol)
    recs = [r for r in iter_face_records(store) if r.face_id is not None]
    scored = [r for r in recs if said(r) and (not single_only or n_img[r.image_id] == 1)]
    auto = [r for r in scored if r.route == "auto" and not r.human_label]
    right = sum(1 for r in auto if said(r) == r.label)
    # the ceiling: the trust score ordered with hindsight over the scored faces
    score = {m.face_id: (m.score, m.label) for m in members(store, pol)}
    truths = {r.face_id: said(r) for r in scored}
    ordered = sorted(((score[f][0], score[f][1] == t) for f, t in truths.items() if f in score), key=lambda x: -x[0])
    ceiling, ok = 0, 0
    for i, (_, good) in enumerate(ordered, 1):
        ok += good
        if ok / i >= target:
            ceiling = i
    store.engine.dispose()
    run.unlink()
    return {"seed": seed, "answers": answers, "scored": len(scored), "auto": len(auto),
            "share": len(auto) / len(scored) if scored else 0.0,
            "precision": right / len(auto) if auto else None, "fdp": 1 - right / len(auto) if auto else 0.0,
            "estimate": sel.estimate.precision, "lower": sel.estimate.lower, "upper": sel.estimate.upper,
            "ceiling": ceiling / len(scored) if scored else 0.0, "candidates_scored": len(ordered),
            "selected_all": sel.accepted, "why": sel.why, "seconds": round(time.perf_counter() - t0, 1)}


def summarize(name: str, rows: list[dict], target: float) -> str:
    sh = [r["share"] for r in rows]
    prec = sorted(r["precision"] if r["precision"] is not None else 1.0 for r in rows)
    fdr = statistics.mean(r["fdp"] for r in rows)
    p10 = prec[max(0, int(0.1 * len(prec)) - 1)] if prec else None
    ceil = statistics.mean(r["ceiling"] for r in rows)
    est = [r["estimate"] for r in rows if r["estimate"] is not None]
    cover = sum(1 for r in rows if r["precision"] is not None and r["lower"] <= r["precision"]) / max(1, sum(1 for r in rows if r["precision"] is not None))
    return (f"{name}: {len(rows)} seeds, {rows[0]['scored']} scored faces; audits answered median "
            f"{statistics.median(r['answers'] for r in rows):.0f} (max {max(r['answers'] for r in rows)}); auto-accepted "
            f"share mean {statistics.mean(sh):.1%}, median {statistics.median(sh):.1%}, min {min(sh):.1%}; realized FDR "
            f"mean {fdr:.2%} (target {1 - target:.0%}); precision 10th percentile {p10:.1%}; ceiling (trust score, "
            f"hindsight) {ceil:.1%}; share / ceiling {statistics.mean(sh) / ceil if ceil else 0:.0%}; tool's estimate mean "
            f"{statistics.mean(est) if est else float('nan'):.1%}, lower bound <= realized in {cover:.0%} of seeds")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", action="append", choices=["fer", "dev"], required=True)
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--method", default="conformal", choices=["conformal", "conformal-class", "bucket"])
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--audit-size", type=int, default=100)
    ap.add_argument("--work", required=True)
    ap.add_argument("--audit-always", action="store_true",
                    help="audit even where the tool would not (audits not expected to pay): measures the selection itself")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name in args.set:
        truth = truth_fer(None, 0) if name == "fer" else truth_dev()
        db, links = base_db(name, truth, work)
        rows = []
        for seed in range(args.seeds):
            r = one_seed(db, links, seed, args.method, args.target, args.audit_size, single_only=name == "dev",
                         always=args.audit_always)
            rows.append(r)
            print(f"  {name} seed {seed}: {r['answers']} audits, share {r['share']:.1%}, precision "
                  f"{r['precision'] if r['precision'] is None else round(r['precision'], 4)}, estimate {r['estimate']}, "
                  f"ceiling {r['ceiling']:.1%}, {r['seconds']} s", flush=True)
        line = summarize(f"{name} ({args.method}, target {args.target:g}, audit size {args.audit_size}"
                         f"{', audits always' if args.audit_always else ''})", rows, args.target)
        print(line, flush=True)
        out.append({"set": name, "method": args.method, "rows": rows, "summary": line})
    (work / f"eval_selection_{args.method}{'_always' if args.audit_always else ''}.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
