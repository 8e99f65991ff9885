"""`labeler eval --labels CSV`: compare the database with a labels file (e.g. ../shared/data/dev/labels.csv).

The CSV needs `file` (or `path`) and `label`; optional `subset` groups the figures and `faces`
("3 (ground truth)", "1 (auto)") is compared with the number of faces found.
Prints detection, model and routing figures, and a precision/coverage table for routing thresholds
(re-routing the stored proposals with the pure routing function; nothing is written).
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Optional

from labeler.config import Config
from labeler.routing import RoutingPolicy, evidence_for, route
from labeler.store import Store, iter_face_records
from labeler.types import LABELS


def read_truth(path: str | Path) -> dict[str, dict]:
    path = Path(path)
    out = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            p = row.get("path") or row.get("file") or ""
            if not p:
                continue
            ap = p if os.path.isabs(p) else str((path.parent / p).resolve())
            m = re.match(r"\s*(\d+)", row.get("faces") or "")
            out[ap] = {
                "label": (row.get("label") or "").strip().lower(),
                "subset": row.get("subset") or "all",
                "faces": int(m.group(1)) if m else None,
            }
    return out


def collect(store: Store, truth: dict[str, dict]) -> dict[int, dict]:
    """image id -> {truth..., records: [face records]} for images named in the truth file."""
    imgs: dict[int, dict] = {}
    for rec in iter_face_records(store):
        t = next((truth[p] for p in rec.paths if p in truth), None)
        if t is None:
            continue
        imgs.setdefault(rec.image_id, {**t, "records": []})["records"].append(rec)
    return imgs


def routing_table(imgs: dict[int, dict], policy: RoutingPolicy, subsets: Optional[set] = None) -> dict:
    """Auto-accepted precision and coverage (share of labeled images with an auto-accepted face
    whose label is right or wrong) under ``policy``."""
    n_labeled = auto = correct = 0
    for it in imgs.values():
        if subsets and it["subset"] not in subsets:
            continue
        if it["label"] not in LABELS:
            continue
        n_labeled += 1
        faces = [r for r in it["records"] if r.face_id is not None]
        if not faces:
            continue
        # judge single-face images only: the image label cannot say which face of a group it means
        if len(faces) != 1:
            continue
        d = route(evidence_for(faces[0], 1), policy)
        if d.route == "auto":
            auto += 1
            correct += int(d.label == it["label"])
    return {"labeled": n_labeled, "auto": auto, "correct": correct,
            "precision": correct / auto if auto else None, "coverage": auto / n_labeled if n_labeled else 0.0}


def report(store: Store, labels_csv: str, policy: Optional[RoutingPolicy] = None) -> str:
    policy = policy or Config().routing
    truth = read_truth(labels_csv)
    imgs = collect(store, truth)
    out: list[str] = [f"images matched with {labels_csv}: {len(imgs)} of {len(truth)}"]
    by_subset: dict[str, list[dict]] = defaultdict(list)
    for it in imgs.values():
        by_subset[it["subset"]].append(it)

    out.append("\n== detection (faces found vs the `faces` column)")
    out.append(f"{'subset':14s} {'images':>6s} {'exact':>6s} {'no face':>7s} {'whole-img':>9s} {'found':>6s} {'expected':>8s}")
    for sub, items in sorted(by_subset.items()):
        exact = nof = whole = found = expected = 0
        for it in items:
            faces = [r for r in it["records"] if r.face_id is not None]
            n = len(faces)
            found += n
            whole += sum(1 for r in faces if r.whole_image)
            nof += int(n == 0)
            if it["faces"] is not None:
                expected += it["faces"]
                exact += int(n == it["faces"])
        out.append(f"{sub:14s} {len(items):6d} {exact:6d} {nof:7d} {whole:9d} {found:6d} {expected:8d}")

    out.append("\n== model top-1 on labeled single-face images (7 classes)")
    for sub, items in sorted(by_subset.items()):
        per = Counter()
        hit = Counter()
        for it in items:
            faces = [r for r in it["records"] if r.face_id is not None]
            if it["label"] not in LABELS or len(faces) != 1 or not faces[0].model_label:
                continue
            per[it["label"]] += 1
            hit[it["label"]] += int(faces[0].model_label == it["label"])
        if not per:
            continue
        tot = sum(per.values())
        acc = sum(hit.values()) / tot
        cls = "  ".join(f"{c} {hit[c]}/{per[c]}" for c in LABELS if per[c])
        out.append(f"{sub:14s} n={tot:4d} acc={100 * acc:5.1f}%  {cls}")

    out.append("\n== routing (current policy), single-face labeled images")
    for sub in sorted(by_subset):
        r = routing_table(imgs, policy, {sub})
        prec = f"{100 * r['precision']:.1f}%" if r["precision"] is not None else "-"
        out.append(f"{sub:14s} labeled={r['labeled']:4d} auto={r['auto']:4d} precision={prec:>6s} coverage={100 * r['coverage']:5.1f}%")

    focus = {"web_keyword", "muxspace"} & set(by_subset) or set(by_subset)
    out.append(f"\n== precision / coverage trade-off on {', '.join(sorted(focus))}")
    out.append(f"{'top-k':>5s} {'agree>=':>8s} {'model>=':>8s} {'auto':>5s} {'precision':>9s} {'coverage':>8s}")
    for k in (1, 2):
        for a in ((0.2, 0.3, 0.4, 0.5, 0.6) if k == 1 else (0.05, 0.1, 0.2)):
            for m in (0.8, 0.9, 0.95, 0.99, 1.01):
                r = routing_table(imgs, replace(policy, agree_threshold=a, model_threshold=m, agree_top_k=k), focus)
                prec = f"{100 * r['precision']:.1f}%" if r["precision"] is not None else "-"
                mtxt = "off" if m > 1 else f"{m:g}"
                out.append(f"{k:5d} {a:8g} {mtxt:>8s} {r['auto']:5d} {prec:>9s} {100 * r['coverage']:7.1f}%")
    return "\n".join(out)
