"""`labeler rules report`: how each keyword rule fires, conflicts, and how precise it is."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sqlalchemy import select

from labeler.store import Annotation, Face, Image, ImagePath, Store
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
    """image id -> true label, from a labels CSV (matched by absolute path) and from human annotations
    (used when every labeled face of the image agrees)."""
    truth: dict[int, str] = {}
    with store.session() as s:
        if labels_csv:
            by_path = read_labels_csv(labels_csv)
            for iid, p in s.execute(select(ImagePath.image_id, ImagePath.path)):
                lab = by_path.get(p)
                if lab in LABELS:
                    truth[iid] = lab
        rows = s.execute(
            select(Face.image_id, Annotation.face_id, Annotation.labels, Annotation.action, Annotation.id)
            .join(Face, Face.id == Annotation.face_id)
            .order_by(Annotation.id)
        ).all()
    per_face: dict[int, tuple[int, Optional[str]]] = {}
    for iid, fid, labs, action, _ in rows:
        if action == "label" and labs:
            labs = labs if isinstance(labs, list) else json.loads(labs)
            per_face[fid] = (iid, labs[0])
    per_img: dict[int, set] = defaultdict(set)
    for iid, lab in per_face.values():
        per_img[iid].add(lab)
    for iid, labs in per_img.items():
        if len(labs) == 1 and iid not in truth:
            truth[iid] = next(iter(labs))
    return truth


def rules_report(store: Store, labels_csv: Optional[str] = None) -> tuple[list[RuleRow], dict]:
    truth = truth_by_image(store, labels_csv)
    rows: dict[str, RuleRow] = {}
    summary = Counter()
    with store.session() as s:
        imgs = s.execute(select(Image.id, Image.rule_state, Image.rule_label, Image.rule_words).where(Image.status == "ingested")).all()
    for iid, state, label, words in imgs:
        summary["images"] += 1
        summary[f"state_{state}"] += 1
        t = truth.get(iid)
        if t:
            summary["with_truth"] += 1
        if state == "labeled" and t:
            summary["judged"] += 1
            summary["correct"] += int(label == t)
        for word, cls in json.loads(words or "[]"):
            if word.startswith("!"):
                continue
            key = f"{cls}<-{word}"
            r = rows.setdefault(key, RuleRow(rule=key, label=cls))
            r.fires += 1
            if state == "ambiguous":
                r.conflicts += 1
            elif t:
                r.judged += 1
                r.correct += int(cls == t)
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
