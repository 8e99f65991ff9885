"""A simulated annotator following the review flow: how many human seconds per face to finish a folder?

    python scripts/bench/bench_effort.py --set dev --out /tmp/effort            # dev's labeled single faces
    python scripts/bench/bench_effort.py --set fer --out /tmp/effort_fer        # FER2013 PublicTest (FER+ majority)
    python scripts/bench/bench_effort.py --set dev --no-grids --out /tmp/e2     # cards only, side by side

The oracle is a labels file's class for each face (``dev``: the single faces of web_keyword, muxspace
and fer2013_48px with a label, fer2013 rows by their FER+ majority; ``fer``: PublicTest faces with a
FER+ majority). On a fresh database (`labeler autolabel` of a folder of links to those images), the
simulated person follows the tool's flow (``labeler.flow``) step by step:

1. the audits the tool asks for (``labeler.store.pending_audits``), answered blind; then the re-route
   (conformal auto-accept, ``labeler.selection``);
2. the first step of ``labeler.flow.plan``: a grid page (the class with the most faces, most confident
   first, 48 faces; the annotator marks the wrong ones and misses ``--grid-miss`` of them;
   ``labeler.store.settle_grid``), or a batch of cards in the review queue's order (``review_queue``;
   the annotator errs on ``--card-error`` of them);
3. every ``--retrain-every`` human decisions: `labeler train` (the head; the gate decides) and, if a
   new model was promoted, a re-proposal of every unlabeled face and a re-route.

Human time follows ``labeler.flow.TimeModel`` (card 2.5 s, Enter on a right proposal 1.2 s, audit 2.5 s,
grid 0.4 s a face seen + 1.5 s a face marked + 1 s a page; ``--time KEY=SECONDS`` overrides). Machine
time (training, re-proposing) is reported apart. The folder is *finished* when every face has a human
or an auto-accepted label. The headline: human seconds per face to finish, answers per 100 faces, and
the accuracy of the finished labels against the oracle.

Nothing from ../shared is written into the repository (the --out folder holds links and databases).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))  # the oracles of eval_audit / eval_selection

ORACLE = "oracle"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# --------------------------------------------------------------------------------------------
# pure bookkeeping (tested in tests/test_bench_effort.py)


@dataclass
class Ledger:
    """Human seconds and actions, per kind: audit, card, grid (per page: faces seen, marked)."""

    seconds: Counter = field(default_factory=Counter)
    actions: Counter = field(default_factory=Counter)  # audit / card / grid_face / grid_mark / grid_page
    machine_seconds: float = 0.0

    def audit(self, tm) -> None:
        self.seconds["audit"] += tm.audit
        self.actions["audit"] += 1

    def card(self, tm, accepted: bool) -> None:
        self.seconds["card"] += tm.card_accept if accepted else tm.card
        self.actions["card"] += 1

    def grid(self, tm, seen: int, marked: int) -> None:
        self.seconds["grid"] += tm.grid_page + seen * tm.grid_seen + marked * tm.grid_mark
        self.actions["grid_page"] += 1
        self.actions["grid_face"] += seen
        self.actions["grid_mark"] += marked

    @property
    def total(self) -> float:
        return float(sum(self.seconds.values()))

    @property
    def answers(self) -> int:
        """Human decisions: audits, cards, and every face settled on a grid."""
        return self.actions["audit"] + self.actions["card"] + self.actions["grid_face"]


@dataclass
class Annotator:
    """The simulated person: right on cards but for ``card_error`` of them (then a random other
    class), and on grids misses ``grid_miss`` of the wrong faces (they get the page's class)."""

    card_error: float = 0.03
    grid_miss: float = 0.10
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def card(self, truth: Optional[str]) -> tuple[str, Optional[list[str]]]:
        if truth not in CLASSES:
            return "unusable", None
        if self.rng.random() < self.card_error:
            return "label", [self.rng.choice([c for c in CLASSES if c != truth])]
        return "label", [truth]

    def grid_marks(self, label: str, truths: list[Optional[str]]) -> list[bool]:
        """Which faces of a page the person marks wrong."""
        return [t != label and self.rng.random() >= self.grid_miss for t in truths]


def headline(faces: int, ledger: Ledger, accuracy: Optional[float], finished: bool, target: float = 0.95) -> str:
    per = ledger.total / faces if faces else 0.0
    acc = "-" if accuracy is None else f"{accuracy:.1%}"
    state = "finished" if finished else "NOT finished"
    ok = "" if accuracy is None or accuracy >= target else f" (below the {target:.0%} asked)"
    return (f"{state}: {per:.2f} human seconds per face ({ledger.total / 60:.1f} min for {faces} faces), "
            f"{100 * ledger.answers / faces if faces else 0:.0f} answers per 100 faces, accuracy {acc}{ok}; "
            + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(ledger.seconds.items())))


# --------------------------------------------------------------------------------------------
# the project and the loop


def build(set_name: str, out: Path) -> tuple[Path, dict[str, str]]:
    """A fresh database of the set's images (link folder), and link path -> truth. Single faces only
    for dev: its images are autolabeled once, and the project is the images with exactly one face."""
    from eval_audit import link_folder, truth_fer
    from eval_selection import labeler, truth_dev

    truth = truth_fer(None, 0) if set_name == "fer" else truth_dev()
    if set_name == "dev":  # the labeled single faces: autolabel once to see which images have one face
        from labeler.store import Store, iter_face_records

        probe = out / "probe"
        links = link_folder(truth, probe / "images")
        labeler("autolabel", str(probe / "images"), "--db", str(probe / "probe.db"), "-q")
        faces, paths = Counter(), {}
        for r in iter_face_records(Store(f"sqlite:///{probe / 'probe.db'}")):
            if r.face_id is not None:
                faces[r.image_id] += 1
                paths[r.image_id] = r.paths
        single = {p for iid, c in faces.items() if c == 1 for p in paths[iid]}
        truth = {Path(os.readlink(lk)): lab for lk, lab in links.items() if lk in single}
        shutil.rmtree(probe)
    links = link_folder(truth, out / "images")
    db = out / "bench.db"
    labeler("autolabel", str(out / "images"), "--db", str(db), "-q")
    return db, links


def run(db: Path, truth: dict[str, str], tm, person: Annotator, grids: bool, retrain_every: int, batch: int,
        max_minutes: float, log) -> dict:
    from labeler.cleanup import reroute_checked
    from labeler.config import Config
    from labeler.flow import Waiting, split_waiting
    from labeler.store import (Store, add_annotation, add_audit, iter_face_records, pending_audits, review_queue,
                               waiting_faces)
    from labeler.store.grid import settle_grid

    store = Store(f"sqlite:///{db}")
    pol = Config().routing
    recs = {r.face_id: r for r in iter_face_records(store) if r.face_id is not None}
    said = {f: next((truth[p] for p in r.paths if p in truth), None) for f, r in recs.items()}
    ledger, t0, since_train, steps = Ledger(), time.perf_counter(), 0, Counter()
    model_log = []

    def retrain() -> None:
        nonlocal since_train
        since_train = 0
        tm0 = time.perf_counter()
        from labeler.training import train

        try:
            res = train(store, mode="head")
            model_log.append(f"{res.ident}: {'promoted' if res.promoted else 'kept the old one'} ({res.reason})")
            if res.promoted:
                from labeler.ingest.rules import load_rules
                from labeler.pipeline import Autolabeler

                Autolabeler(store, Config(), load_rules(), workers=1).repropose(only_stale=True, progress=False)
                reroute_checked(store, pol)
        except Exception as e:  # too few labels yet: go on with the old model
            model_log.append(f"train skipped: {str(e)[:120]}")
        ledger.machine_seconds += time.perf_counter() - tm0

    reroute_checked(store, pol)
    while time.perf_counter() - t0 < max_minutes * 60:
        asked = [f for f in pending_audits(store, pol) if f in said]
        if asked:
            for f in asked:
                add_audit(store, f, ORACLE, *person.card(said[f]))
                ledger.audit(tm)
            steps["audit"] += len(asked)
            reroute_checked(store, pol)
            continue
        waiting = [w for w in waiting_faces(store, pol) if w.face_id in said]
        if not waiting:
            break
        gr, cards = split_waiting(waiting, tm) if grids else ({}, waiting)
        if gr:
            label, ws = max(gr.items(), key=lambda kv: len(kv[1]))
            page = [w.face_id for w in ws[:48]]
            marks = person.grid_marks(label, [said[f] for f in page])
            settle_grid(store, ORACLE, label, page, [f for f, m in zip(page, marks) if m])
            ledger.grid(tm, len(page), sum(marks))
            steps["grid_page"] += 1
            since_train += len(page)
        else:
            todo = [f for f in review_queue(store, ORACLE, limit=batch) if f in said] or [w.face_id for w in cards[:batch]]
            prop = {w.face_id: w.label for w in waiting}
            for f in todo:
                action, labels = person.card(said[f])
                add_annotation(store, f, ORACLE, action, labels, source="bench")
                ledger.card(tm, accepted=bool(labels) and labels[0] == prop.get(f))
                since_train += 1
            steps["cards"] += len(todo)
        if retrain_every and since_train >= retrain_every:
            retrain()
    recs = [r for r in iter_face_records(store) if r.face_id is not None and r.face_id in said]
    done = [r for r in recs if r.label]
    scored = [r for r in done if said[r.face_id] in CLASSES]
    acc = sum(1 for r in scored if r.label == said[r.face_id]) / len(scored) if scored else None
    auto = sum(1 for r in recs if r.route == "auto" and not r.human_label)
    auto_right = sum(1 for r in recs if r.route == "auto" and not r.human_label and r.label == said[r.face_id])
    out = {"faces": len(recs), "finished": len(done) == len(recs), "done": len(done), "auto": auto,
           "auto_precision": auto_right / auto if auto else None, "accuracy": acc,
           "human_seconds": ledger.total, "seconds_per_face": ledger.total / len(recs) if recs else 0.0,
           "answers_per_100": 100 * ledger.answers / len(recs) if recs else 0.0,
           "seconds_by_kind": dict(ledger.seconds), "actions": dict(ledger.actions), "steps": dict(steps),
           "machine_seconds": round(ledger.machine_seconds, 1), "wall_seconds": round(time.perf_counter() - t0, 1),
           "models": model_log, "headline": headline(len(recs), ledger, acc, len(done) == len(recs))}
    store.engine.dispose()
    return out


def main(argv=None) -> int:
    from labeler.flow import TimeModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", choices=["dev", "fer"], default="dev")
    ap.add_argument("--out", required=True, help="a new folder for the links, database and models")
    ap.add_argument("--no-grids", action="store_true", help="cards only (the flow without grid pages)")
    ap.add_argument("--retrain-every", type=int, default=100, help="human decisions between retrainings (0: never)")
    ap.add_argument("--batch", type=int, default=25, help="cards answered between looks at the flow")
    ap.add_argument("--grid-miss", type=float, default=0.10)
    ap.add_argument("--card-error", type=float, default=0.03)
    ap.add_argument("--time", action="append", default=[], metavar="KEY=SECONDS", help="a time-model constant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--reuse", default=None, metavar="DIR",
                    help="start from the database and links of an eval_selection.py --work DIR (the whole set, text looked for)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: expected a new folder for a fresh database")
    out.mkdir(parents=True, exist_ok=True)
    os.environ["LABELER_USER_MODELS"] = str(out / "models")
    tm = TimeModel.measured({k: float(v) for k, v in (t.split("=", 1) for t in a.time)})
    if a.reuse:  # an eval_selection.py work folder: its database (text already looked for) and links
        src = Path(a.reuse)
        db = out / "bench.db"
        shutil.copyfile(src / f"{a.set}.db", db)
        from eval_audit import truth_fer
        from eval_selection import truth_dev

        t = {k.resolve(): v for k, v in (truth_fer(None, 0) if a.set == "fer" else truth_dev()).items()}
        truth = {str(lk.absolute()): t[lk.resolve()] for lk in (src / f"{a.set}_images").iterdir() if lk.resolve() in t}
    else:
        db, truth = build(a.set, out)
    res = run(db, truth, tm, Annotator(a.card_error, a.grid_miss, a.seed), not a.no_grids, a.retrain_every, a.batch,
              a.max_minutes, None)
    res.update(set=a.set, grids=not a.no_grids, time_model=asdict(tm), card_error=a.card_error, grid_miss=a.grid_miss,
               retrain_every=a.retrain_every)
    print(json.dumps({k: v for k, v in res.items() if k not in ("headline",)}, indent=1))
    print(f"HEADLINE ({a.set}, grids {'on' if not a.no_grids else 'off'}): {res['headline']}")
    (out / "result.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
