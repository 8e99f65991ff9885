"""Measure auto-accept with a measured precision (issue 12) against an oracle.

For each data set: a fresh database, `autolabel` on a folder of links to the labeled images (file
names kept, so the keyword rules see them), then, per target precision, on a copy of that database:
the audit loop with the oracle answering every audit card the tool asks for (blind labels, source
``audit``) until every bucket is settled, then ``labeler route``. Reported per target: faces, audit
answers, auto-accepted faces (coverage), their true precision against the oracle, the tool's own
estimate (with the face-weighted interval), and the faces finished (audited + auto).

Oracles (see ../shared/README.md): ``dev`` labels.csv of ../shared/data/dev (the 7 classes;
fer2013_48px rows by their FER2013 label), ``web`` the folder labels of ../shared/data/web_pool
(plus dev's web_keyword rows), ``fer`` the FER+ majority of ../shared/data/fer2013 public_test (ties
and contempt/unknown/not-a-face majorities left out). Every face of an image gets the image's label.

    python scripts/eval/eval_audit.py --set devweb --set fer --limit-fer 1000 --model fer-ferplus-cnn --model fer-mini-xception

Library only (no bench_effort); nothing from ../shared is written into the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FERPLUS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad", "anger": "angry",
           "disgust": "disgust", "fear": "fear"}
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def truth_dev(subsets: Optional[set[str]] = None) -> dict[Path, str]:
    out = {}
    with open(SHARED / "dev" / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["label"] in LABELS and (subsets is None or r["subset"] in subsets):
                out[SHARED / "dev" / r["file"]] = r["label"]
    return out


def truth_web() -> dict[Path, str]:
    out = truth_dev({"web_keyword"})
    with open(SHARED / "web_pool" / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["label"] in LABELS:
                out[SHARED / "web_pool" / r["file"]] = r["label"]
    return out


def truth_fer(limit: Optional[int], seed: int) -> dict[Path, str]:
    out = {}
    with open(SHARED / "fer2013" / "ferplus_votes.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if not r["file"].startswith("public_test/"):
                continue
            votes = {k: int(r[k] or 0) for k in ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                                                  "contempt", "unknown", "NF")}
            top = max(votes.values())
            best = [k for k, v in votes.items() if v == top]
            if top > 0 and len(best) == 1 and best[0] in FERPLUS:
                out[SHARED / "fer2013" / r["file"]] = FERPLUS[best[0]]
    if limit and limit < len(out):
        keys = sorted(out)
        random.Random(seed).shuffle(keys)
        out = {k: out[k] for k in sorted(keys[:limit])}
    return out


def link_folder(truth: dict[Path, str], folder: Path) -> dict[str, str]:
    """Links to the labeled files (names kept; a numeric prefix only where two names collide);
    returns absolute link path -> label."""
    folder.mkdir(parents=True)
    out, used = {}, set()
    for i, (src, lab) in enumerate(sorted(truth.items())):
        name = src.name if src.name not in used else f"{i}_{src.name}"
        used.add(name)
        dst = folder / name
        os.symlink(src, dst)
        out[str(dst.absolute())] = lab
    return out


def audit_loop(url: str, truth: dict[str, str], target: float, batch: int, max_rounds: int, seed: int) -> dict:
    from labeler.cleanup import check_text
    from labeler.config import Config
    from labeler.store import (Store, add_audit, audit_plan, auto_precision_estimate, iter_face_records, label_accuracy,
                               reroute)

    store = Store(url)
    pol = replace(Config().routing, target_precision=target)
    answers = rounds = 0
    t0 = time.perf_counter()
    while rounds < max_rounds:
        todo = [f for p in audit_plan(store, pol, seed=seed, batch=batch) for f in p.sample]
        if not todo:
            # as `labeler route` does before auto-accepting: look for text on the faces a certified bucket
            # would take; a face with text leaves its bucket (its audit with it), which may reopen the
            # bucket, so plan again until a text check finds nothing new to look at
            if check_text(store, pol, progress=False).measured == 0:
                break
            continue
        rounds += 1
        recs = {r.face_id: r for r in iter_face_records(store) if r.face_id in set(todo)}
        for fid in todo:
            lab = next((truth[p] for p in recs[fid].paths if p in truth), None)
            add_audit(store, fid, "oracle", "label" if lab else "unusable", [lab] if lab else None)
            answers += 1
    reroute(store, pol)
    recs = [r for r in iter_face_records(store) if r.face_id is not None]
    auto = [r for r in recs if r.route == "auto" and not r.human_label]
    right = sum(1 for r in auto if next((truth[p] for p in r.paths if p in truth), None) == r.label)
    acc = label_accuracy(auto)
    plans = audit_plan(store, pol, seed=seed, batch=batch)
    est = auto_precision_estimate(store, pol)
    store.engine.dispose()
    return {
        "target": target, "faces": len(recs), "answers": answers, "rounds": rounds, "auto": len(auto),
        "coverage": len(auto) / len(recs) if recs else 0.0, "true_precision": right / len(auto) if auto else None,
        "estimate": est, "lower": acc["lower"], "upper": acc["upper"],
        "finished": (len(auto) + sum(1 for r in recs if r.human_label)) / len(recs) if recs else 0.0,
        "certified": [(p.estimate.bucket, p.estimate.faces, p.estimate.audited, p.estimate.agreeing, round(p.estimate.lower, 3))
                      for p in plans if p.state.state == "auto"],
        "open": sum(1 for p in plans if p.state.state == "open"), "seconds": time.perf_counter() - t0,
    }


def _copy(src: Path, dst: Path) -> str:
    for side in (dst.with_name(dst.name + "-wal"), dst.with_name(dst.name + "-shm")):  # a killed run's
        side.unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    return f"sqlite:///{dst}"


def run_set(name: str, truth_paths: dict[Path, str], models: list[Optional[str]], targets: list[float], work: Path,
            batch: int, max_rounds: int, seed: int, say=print, reuse: bool = False) -> list[dict]:
    """Autolabel once with the first model; every further model re-proposes a copy of that database
    (same faces, `autolabel --repropose`); then the audit loop per model and target."""
    from labeler.config import Config
    from labeler.ingest.rules import load_rules
    from labeler.pipeline import Autolabeler
    from labeler.store import Store

    folder = work / f"{name}_images"
    if reuse:
        truth = json.loads((work / f"{name}_truth.json").read_text())
    else:
        truth = link_folder(truth_paths, folder)
        (work / f"{name}_truth.json").write_text(json.dumps(truth))
    out = []
    first = None
    for k, model in enumerate(models):
        cfg = Config()
        if model:
            cfg = replace(cfg, model=replace(cfg.model, name=model))
        base = work / f"{name}_m{k}.db"
        t0 = time.perf_counter()
        if reuse and base.exists():  # the databases of an earlier run in this folder: the audit loop only
            first = base
            from labeler.fer.resolver import load_model
            ident = load_model(model).ident if model else "default"
            say(f"[{name}] reusing {base} ({ident}); {face_shares(base, truth)}")
            for t in targets:
                res = audit_loop(_copy(base, work / f"{name}_m{k}_{t:g}.db"), truth, t, batch, max_rounds, seed)
                res.update(set=name, model=ident)
                out.append(res)
                say(line(res))
            continue
        if first is not None:
            shutil.copyfile(first, base)
        store = Store(f"sqlite:///{base}")
        al = Autolabeler(store, cfg, load_rules())
        if first is None:
            al.run(folder, progress=False)
            first = base
        else:
            al.repropose(only_stale=False, progress=False)
            al.reroute()
        store.engine.dispose()
        say(f"[{name}] {len(truth)} labeled images, model {al.model.ident}: {'autolabel' if k == 0 else 're-propose'} "
            f"{time.perf_counter() - t0:.0f} s; {face_shares(base, truth)}")
        for t in targets:
            res = audit_loop(_copy(base, work / f"{name}_m{k}_{t:g}.db"), truth, t, batch, max_rounds, seed)
            res.update(set=name, model=al.model.ident)
            out.append(res)
            say(line(res))
    return out


def face_shares(db: Path, truth: dict[str, str]) -> str:
    """How the oracle's faces sit in their images: every face of an image gets the image's label, so
    only faces alone in their image are labeled one by one (a bound on what can be auto-accepted at a
    precision near the labels' own)."""
    from collections import Counter

    from labeler.store import Store, iter_face_records

    store = Store(f"sqlite:///{db}")
    per_image = Counter(r.image_id for r in iter_face_records(store) if r.face_id is not None and any(p in truth for p in r.paths))
    store.engine.dispose()
    n = sum(per_image.values())
    alone = sum(c for c in per_image.values() if c == 1)
    crowd = sum(c for c in per_image.values() if c >= 5)
    return (f"{n} faces in {len(per_image)} images: {alone} ({100 * alone / max(n, 1):.1f}%) alone in their image, "
            f"{crowd} ({100 * crowd / max(n, 1):.1f}%) in images of 5 or more faces")


def pct(x) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def line(r: dict) -> str:
    est = "-" if r["estimate"] is None else f"{pct(r['estimate'])} [{pct(r['lower'])}, {pct(r['upper'])}]"
    gap = "" if r["estimate"] is None or r["true_precision"] is None else f" gap {100 * (r['estimate'] - r['true_precision']):+.1f} pt"
    return (f"[{r['set']}] target {r['target']:.2f}: faces {r['faces']}, audit answers {r['answers']} ({r['rounds']} rounds), "
            f"auto {r['auto']} ({pct(r['coverage'])}), true precision {pct(r['true_precision'])}, tool estimate {est}{gap}, "
            f"finished {pct(r['finished'])}, open buckets {r['open']}, {r['seconds']:.0f} s\n    certified: {r['certified']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", choices=["dev", "web", "devweb", "fer"],
                    help="data sets (default: devweb and fer): dev = the 251 labeled images of dev, web = dev's web_keyword "
                         "and web_pool, devweb = dev's 251 and web_pool's 615 in one database")
    ap.add_argument("--limit-fer", type=int, default=None, help="a seeded random subset of PublicTest (default: all)")
    ap.add_argument("--model", action="append", default=None,
                    help="FER model (repeat for several: the first autolabels, the others re-propose; default: the project's default)")
    ap.add_argument("--targets", default="0.90,0.95,0.98")
    ap.add_argument("--batch", type=int, default=10, help="audit faces drawn per open bucket per round")
    ap.add_argument("--max-rounds", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="work folder (default: a new temp folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse the autolabeled databases of an earlier run in --out "
                    "(the audit loop only, e.g. after a routing change)")
    a = ap.parse_args(argv)
    work = Path(a.out or tempfile.mkdtemp(prefix="eval_audit_"))
    work.mkdir(parents=True, exist_ok=True)
    targets = [float(x) for x in a.targets.split(",")]
    sets = a.set or ["devweb", "fer"]
    truths = {"dev": lambda: truth_dev(), "web": truth_web, "devweb": lambda: {**truth_dev(), **truth_web()},
              "fer": lambda: truth_fer(a.limit_fer, a.seed)}
    print(f"eval_audit: sets {sets}, targets {targets}, batch {a.batch}, work folder {work}")
    results = []
    for s in sets:
        results += run_set(s, truths[s](), a.model or [None], targets, work, a.batch, a.max_rounds, a.seed, reuse=a.reuse)
    print("\nset | model | target | faces | audit answers | auto (coverage) | true precision | estimate [interval] | finished")
    for r in results:
        print(f"{r['set']} | {r['model']} | {r['target']:.2f} | {r['faces']} | {r['answers']} | {r['auto']} ({pct(r['coverage'])}) | "
              f"{pct(r['true_precision'])} | {pct(r['estimate'])} [{pct(r['lower'])}, {pct(r['upper'])}] | {pct(r['finished'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
