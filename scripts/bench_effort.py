"""A simulated annotator: how many human answers does it take to finish a labeled folder?

    python scripts/bench_effort.py ../shared/data/dev/images --labels ../shared/data/dev/labels.csv \
        --subsets web_keyword,muxspace,fer2013_48px --k 25 --out /tmp/bench_effort

The labels CSV (columns ``file``/``path``, ``label``, optional ``subset``; paths relative to the CSV)
is the oracle. The loop, as a user would run it, on a fresh database:

1. ``labeler autolabel`` the folders that hold the selected files (CLI, subprocess);
2. each round: the oracle answers the next K faces of the review queue (library
   ``review_queue``/``add_annotation``, what the UI calls) and every audit sample the tool asks for
   (:func:`pending_audit_faces`, the hook for the audit issue); then ``labeler train`` and
   ``labeler autolabel --repropose`` (re-propose and re-route with the new default model).

Conventions: an image's CSV label is the truth of each of its faces; a face whose truth is not one of
the model's classes (empty, ``contempt``) is answered ``unusable`` and left out of agreement and
precision; faces of images outside the CSV selection are skipped by the oracle and not counted.
The data set is *finished* when every counted face is labeled by a human or auto-accepted.
After each round one line: human answers so far, auto-accepted share, precision of the auto-accepted
labels against the CSV, the tool's own estimate of it (if it has one), model top-1 on faces not yet
labeled by a human, agreement of the finished-so-far labels. The headline: human answers per 100
faces to finish at >= 95 % agreement, else the best agreement reached.

Works from the CLI and the library only, so it also runs against an older checkout (PYTHONPATH).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

ORACLE = "oracle"
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# --------------------------------------------------------------------------------------------
# pure bookkeeping (tested in tests/test_bench_effort.py)


@dataclass(frozen=True)
class FaceState:
    """What the bench needs to know about one counted face after a round."""

    face_id: int
    truth: Optional[str]  # one of CLASSES, or None (not a class: answered unusable, not scored)
    human: Optional[str]  # the accepted human label (``unusable`` too), None if no human answer
    route: str  # auto | review | ...
    auto_label: Optional[str]  # the decision label when route is auto
    model_label: Optional[str]  # the newest model proposal's top-1


@dataclass(frozen=True)
class RoundFigures:
    round: int
    answers: int  # human answers so far (queue + audits)
    faces: int  # counted faces
    auto: int  # auto-accepted (no human label)
    auto_share: float
    auto_correct: int
    auto_scored: int  # auto-accepted faces with a class truth
    auto_precision: Optional[float]
    estimate: Optional[float]  # the tool's own estimate of the auto-accepted precision
    unlabeled_scored: int  # faces without a human label and with a class truth
    top1_unlabeled: Optional[float]
    finished: int  # faces labeled by a human or auto-accepted
    agreement: Optional[float]  # accepted labels vs CSV over finished faces with a class truth
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.finished == self.faces

    def line(self) -> str:
        def pct(x):
            return "   -  " if x is None else f"{100 * x:5.1f}%"

        est = "   -  " if self.estimate is None else f"{100 * self.estimate:5.1f}%"
        return (f"round {self.round:2d}  answers {self.answers:4d}  auto {self.auto:4d}/{self.faces} ({pct(self.auto_share)})  "
                f"auto precision {pct(self.auto_precision)} (n={self.auto_scored})  tool estimate {est}  "
                f"top-1 on unlabeled {pct(self.top1_unlabeled)} (n={self.unlabeled_scored})  "
                f"finished {self.finished}/{self.faces}  agreement {pct(self.agreement)}  [{self.seconds:.0f}s]")


def figures(rnd: int, faces: Sequence[FaceState], answers: int, estimate: Optional[float] = None,
            seconds: float = 0.0) -> RoundFigures:
    """The round's figures from the faces' states (pure)."""
    n = len(faces)
    auto = [f for f in faces if f.human is None and f.route == "auto"]
    auto_sc = [f for f in auto if f.truth is not None]
    auto_ok = sum(f.auto_label == f.truth for f in auto_sc)
    unl = [f for f in faces if f.human is None and f.truth is not None]
    top1 = sum(f.model_label == f.truth for f in unl)
    fin = [f for f in faces if f.human is not None or f.route == "auto"]
    fin_sc = [f for f in fin if f.truth is not None]
    agree = sum((f.human if f.human is not None else f.auto_label) == f.truth for f in fin_sc)
    return RoundFigures(
        rnd, answers, n, len(auto), len(auto) / n if n else 0.0, auto_ok, len(auto_sc),
        auto_ok / len(auto_sc) if auto_sc else None, estimate, len(unl), top1 / len(unl) if unl else None,
        len(fin), agree / len(fin_sc) if fin_sc else None, seconds)


def oracle_answer(truth: Optional[str]) -> tuple[str, Optional[list[str]]]:
    """(action, labels) the simulated annotator gives for a face whose CSV truth is ``truth``."""
    return ("label", [truth]) if truth in CLASSES else ("unusable", None)


def headline(rounds: Sequence[RoundFigures], target: float = 0.95) -> str:
    """Human answers per 100 faces to finish at >= ``target`` agreement, else the best agreement."""
    for r in rounds:
        if r.done and r.agreement is not None and r.agreement >= target:
            return (f"finished at round {r.round} with {r.answers} human answers for {r.faces} faces = "
                    f"{100 * r.answers / r.faces:.1f} answers per 100 faces, agreement {100 * r.agreement:.1f}% "
                    f"(auto-accepted {r.auto}, precision {_pct(r.auto_precision)})")
    done = [r for r in rounds if r.done]
    if done:
        r = done[0]
        return (f"finished at round {r.round} with {r.answers} answers per {r.faces} faces "
                f"({100 * r.answers / r.faces:.1f} per 100) but agreement {_pct(r.agreement)} < {100 * target:.0f}%")
    best = max((r for r in rounds if r.agreement is not None), key=lambda r: r.agreement, default=None)
    if best is None:
        return "not finished; nothing labeled"
    return (f"not finished after {rounds[-1].round} rounds ({rounds[-1].answers} answers, "
            f"{rounds[-1].finished}/{rounds[-1].faces} faces); best agreement {_pct(best.agreement)} at round {best.round}")


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def read_truth(csv_path: Path, subsets: Optional[set[str]] = None) -> dict[str, Optional[str]]:
    """absolute path -> class label (None where the CSV's label is not a class) of the selected rows."""
    out: dict[str, Optional[str]] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            p = row.get("path") or row.get("file") or ""
            if not p or (subsets and (row.get("subset") or "") not in subsets):
                continue
            ap = p if os.path.isabs(p) else str((csv_path.parent / p).resolve())
            lab = (row.get("label") or "").strip().lower()
            out[ap] = lab if lab in CLASSES else None
    return out


# --------------------------------------------------------------------------------------------
# hooks for the audit issue (12): the tool may ask for blind audit labels and estimate precision


def pending_audit_faces(store) -> list[int]:
    """HOOK (issue 12): face ids the tool asks a human to audit now. Uses
    ``labeler.store.pending_audits(store)`` when the tool has it; none otherwise."""
    try:
        from labeler.store import pending_audits  # type: ignore[attr-defined]
    except ImportError:
        return []
    return [int(f) for f in pending_audits(store)]


def answer_audit(store, face_id: int, action: str, labels) -> None:
    """HOOK (issue 12): record the oracle's blind audit answer (an ordinary annotation until the
    tool has its own audit call, ``labeler.store.add_audit``)."""
    try:
        from labeler.store import add_audit  # type: ignore[attr-defined]
    except ImportError:
        from labeler.store import add_annotation

        add_annotation(store, face_id, ORACLE, action, labels, source="bench-audit")
        return
    add_audit(store, face_id, ORACLE, action, labels)


def tool_estimate(store) -> Optional[float]:
    """HOOK (issue 12): the tool's own estimate of the auto-accepted labels' precision, if it has
    one (``labeler.store.auto_precision_estimate(store)`` returning a float or None)."""
    try:
        from labeler.store import auto_precision_estimate  # type: ignore[attr-defined]
    except ImportError:
        return None
    v = auto_precision_estimate(store)
    return None if v is None else float(v)


# --------------------------------------------------------------------------------------------
# the loop


def labeler(db: str, *args: str, log=None) -> str:
    """Run one `labeler` command as a user would (a new process; PYTHONPATH is passed on)."""
    import labeler as pkg

    # the same labeler as this process (`python -m` would put the working directory first on sys.path)
    src = str(Path(pkg.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "labeler.cli", *args, "--db", db]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(Path(db[len("sqlite:///"):]).parent))
    if log:
        log.write(f"$ labeler {' '.join(args)}\n{r.stdout}{r.stderr}\n")
        log.flush()
    if r.returncode != 0:
        raise SystemExit(f"`labeler {' '.join(args)}` failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return r.stdout


def face_states(store, truth: dict[str, Optional[str]]) -> tuple[list[FaceState], set[int]]:
    """The counted faces' states, and the ids of faces outside the selection (the oracle skips them)."""
    from labeler.store import iter_face_records

    out, other = [], set()
    for r in iter_face_records(store):
        if r.face_id is None:
            continue
        t = next((p for p in r.paths if p in truth), None)
        if t is None:
            other.add(r.face_id)
            continue
        out.append(FaceState(r.face_id, truth[t], r.human_label, r.route,
                             r.decision_label if r.route == "auto" else None, r.model_label))
    return out, other


def run(folders: list[str], truth: dict[str, Optional[str]], db: str, k: int, max_rounds: int, mode: str,
        budget_s: float, log, say=print) -> list[RoundFigures]:
    from labeler.store import Store, add_annotation, review_queue

    t0 = time.perf_counter()
    for d in folders:
        labeler(db, "autolabel", d, "-q", log=log)
    store = Store(db)
    states, other = face_states(store, truth)
    by_id = {f.face_id: f for f in states}
    answers = 0
    rounds = [figures(0, states, answers, tool_estimate(store), time.perf_counter() - t0)]
    say(rounds[-1].line())
    for rnd in range(1, max_rounds + 1):
        tr = time.perf_counter()
        for fid in pending_audit_faces(store):
            if fid in by_id and by_id[fid].human is None:
                answer_audit(store, fid, *oracle_answer(by_id[fid].truth))
                answers += 1
        done = 0
        while done < k:
            q = review_queue(store, ORACLE, limit=k - done)
            if not q:
                break
            for fid in q:
                if fid in other:
                    add_annotation(store, fid, ORACLE, "skip", source="bench")
                    continue
                add_annotation(store, fid, ORACLE, *oracle_answer(by_id[fid].truth), source="bench")
                answers += 1
                done += 1
        try:
            labeler(db, "train", "--mode", mode, log=log)
        except SystemExit as e:  # too few labels yet: the loop goes on without a new model
            log.write(f"train skipped: {e}\n")
        # --repropose re-runs the (new) default model on every face without a human label, whatever the path
        labeler(db, "autolabel", folders[0], "-q", "--repropose", log=log)
        states, other = face_states(store, truth)
        by_id = {f.face_id: f for f in states}
        rounds.append(figures(rnd, states, answers, tool_estimate(store), time.perf_counter() - tr))
        say(rounds[-1].line())
        if rounds[-1].done or (done == 0 and not pending_audit_faces(store)):
            break
        if time.perf_counter() - t0 > budget_s:
            say(f"time budget of {budget_s / 60:.0f} min spent: stopping")
            break
    return rounds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="folder of images (the CSV's files below it are used)")
    ap.add_argument("--labels", required=True, help="labels CSV (file/path, label, optional subset)")
    ap.add_argument("--subsets", default=None, help="comma-separated subsets of the CSV to use (default: all rows)")
    ap.add_argument("--k", type=int, default=25, help="faces the annotator answers per round")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--mode", default="head", choices=["head", "finetune"])
    ap.add_argument("--budget-min", type=float, default=19.0, help="stop starting rounds after this many minutes")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--out", default=None, help="folder for the database, models and log (default: a new temp folder)")
    a = ap.parse_args(argv)
    import tempfile

    out = Path(a.out or tempfile.mkdtemp(prefix="bench_effort_"))
    out.mkdir(parents=True, exist_ok=True)
    dbf = out / "bench.db"
    if dbf.exists():
        raise SystemExit(f"{dbf} exists: expected a fresh folder for a fresh database")
    root = Path(a.folder).resolve()
    truth = read_truth(Path(a.labels), set(a.subsets.split(",")) if a.subsets else None)
    truth = {p: v for p, v in truth.items() if p.startswith(str(root) + os.sep)}
    if not truth:
        raise SystemExit(f"no rows of {a.labels} name files below {root}")
    folders = sorted({str(Path(p).parent) for p in truth})
    os.environ["LABELER_USER_MODELS"] = str(out / "models")
    import labeler

    print(f"labeler from {Path(labeler.__file__).parent}; {len(truth)} images in {len(folders)} folders; K={a.k}; "
          f"mode {a.mode}; database {dbf}")
    t0 = time.perf_counter()
    with open(out / "commands.log", "w", encoding="utf-8") as log:
        rounds = run(folders, truth, f"sqlite:///{dbf}", a.k, a.rounds, a.mode, a.budget_min * 60, log)
    total = time.perf_counter() - t0
    print(f"HEADLINE: {headline(rounds, a.target)}")
    print(f"total {total / 60:.1f} min")
    (out / "rounds.json").write_text(json.dumps({"rounds": [asdict(r) for r in rounds], "seconds": total,
                                                 "headline": headline(rounds, a.target)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
