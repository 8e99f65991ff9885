"""`labeler rules report`: how each keyword rule fires, conflicts, and how precise it is."""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from labeler.store import Store, human_labels_by_image, path_images, rule_rows
from labeler.types import LABELS


@dataclass
class RuleRow:
    rule: str
    label: str
    fires: int = 0
    conflicts: int = 0
    judged: int = 0  # single-class firings with a known true label
    correct: int = 0

    @property
    def precision(self) -> Optional[float]:
        return self.correct / self.judged if self.judged else None


def read_labels_csv(path: str | Path) -> dict[str, str]:
    """path -> label from a CSV with columns `path,label` (or `file,label`). Paths are made
    absolute relative to the CSV's folder when they are not absolute already."""
    path = Path(path)
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        pcol = "path" if "path" in cols else ("file" if "file" in cols else None)
        if pcol is None or "label" not in cols:
            raise ValueError(f"{path}: expected columns `path,label` (or `file,label`), found {', '.join(cols) or 'none'}.")
        for row in reader:
            p, lab = (row.get(pcol) or "").strip(), (row.get("label") or "").strip().lower()
            if not p:
                continue
            ap = p if os.path.isabs(p) else str((path.parent / p).resolve())
            out[ap] = lab
    return out


def truth_by_image(store: Store, labels_csv: Optional[str] = None) -> dict[int, str]:
    """image id -> true label, from a labels CSV (matched by absolute path) and from the current
    human labels (undone ones do not count; used when every labeled face of the image agrees)."""
    truth: dict[int, str] = {}
    if labels_csv:
        by_path = read_labels_csv(labels_csv)
        for iid, p in path_images(store):
            lab = by_path.get(p)
            if lab in LABELS:
                truth[iid] = lab
    for iid, labs in human_labels_by_image(store).items():
        if len(set(labs)) == 1 and iid not in truth:
            truth[iid] = labs[0]
    return truth


def rules_report(store: Store, labels_csv: Optional[str] = None) -> tuple[list[RuleRow], dict]:
    truth = truth_by_image(store, labels_csv)
    rows: dict[str, RuleRow] = {}
    summary = Counter()
    for iid, rules in rule_rows(store):
        state, label = rules.state, rules.label
        summary["images"] += 1
        summary[f"state_{state}"] += 1
        t = truth.get(iid)
        if t:
            summary["with_truth"] += 1
        if state == "labeled" and t:
            summary["judged"] += 1
            summary["correct"] += int(label == t)
        for w in rules.words:
            if w.negated:
                continue
            key = f"{w.label}<-{w.word}"
            r = rows.setdefault(key, RuleRow(rule=key, label=w.label))
            r.fires += 1
            if state == "ambiguous":
                r.conflicts += 1
            elif t:
                r.judged += 1
                r.correct += int(w.label == t)
    return sorted(rows.values(), key=lambda r: (-r.fires, r.rule)), dict(summary)


def format_report(rows: list[RuleRow], summary: dict) -> str:
    out = [f"{'rule':32s} {'fires':>5s} {'conflict':>8s} {'judged':>6s} {'precision':>9s}"]
    for r in rows:
        p = f"{100 * r.precision:.1f}%" if r.precision is not None else "-"
        out.append(f"{r.rule:32s} {r.fires:5d} {r.conflicts:8d} {r.judged:6d} {p:>9s}")
    n = summary.get("images", 0)
    lab = summary.get("state_labeled", 0)
    amb = summary.get("state_ambiguous", 0)
    out.append("")
    out.append(f"images: {n}; one class: {lab} ({100 * lab / max(n, 1):.1f}%), ambiguous: {amb}, no keyword: {summary.get('state_none', 0)}")
    if summary.get("with_truth"):
        wt = summary["with_truth"]
        j = summary.get("judged", 0)
        c = summary.get("correct", 0)
        prec = f"{100 * c / j:.1f}%" if j else "-"
        out.append(
            f"with a true label: {wt}; single-class rule fired on {j} of them ({100 * j / wt:.1f}% coverage), "
            f"precision {prec} ({c}/{j})"
        )
    return "\n".join(out)
