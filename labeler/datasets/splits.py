"""Train/val/test splits: stratified by class, grouped by source image, repeatable for a seed.

One image row is one content (sha256), so faces of one photo and every copy of it land in the same
split; near-copies (another size, another JPEG encoding: ``dup_group``, labeler.store.cleaning) are
one group too, so they never land in two splits either. :func:`plan` is the export's first pass: it
keeps only per-group label counts.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from labeler.datasets.common import ExportError
from labeler.datasets.select import Selection

SPLITS = ("train", "val", "test")


def assign_splits(groups: dict[Any, Counter], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[Any, str]:
    """Group -> split, stratified by each group's main class and balanced on face counts.

    Groups of one class are shuffled with the seed and each goes to the split furthest below its
    target share of that class, so the result is repeatable and every group is in one split only.
    """
    fr = shares(fractions)
    by_class: dict[str, list[tuple[Any, int]]] = {}
    for gid, cnt in groups.items():
        if not cnt:
            continue
        main = sorted(cnt.items(), key=lambda kv: (-kv[1], str(kv[0])))[0][0]
        by_class.setdefault(main, []).append((gid, sum(cnt.values())))
    out: dict[Any, str] = {}
    for cls in sorted(by_class, key=str):
        items = sorted(by_class[cls], key=lambda x: str(x[0]))
        random.Random(f"{seed}:{cls}").shuffle(items)
        have = [0, 0, 0]
        for gid, n in items:
            total = sum(have) + n
            k = max(range(3), key=lambda i: (fr[i] * total - have[i] if fr[i] > 0 else float("-inf"), -i))
            have[k] += n
            out[gid] = SPLITS[k]
    return out


def shares(fractions: Sequence[float]) -> list[float]:
    """train/val/test fractions normalised to sum 1 (missing ones are 0)."""
    fr = [max(0.0, float(x)) for x in fractions][:3]
    fr += [0.0] * (3 - len(fr))
    tot = sum(fr)
    if tot <= 0:
        raise ExportError(f"split fractions must not all be zero (got {list(fractions)}): give train/val/test shares such as 0.8,0.1,0.1")
    return [x / tot for x in fr]


@dataclass
class SplitPlan:
    """What the first pass learned: the split of each image with a selected face, why the other
    records are left out, and how many faces each model proposed for."""

    splits: dict[int, str] = field(default_factory=dict)
    excluded: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    records: int = 0


def plan(records: Iterable, selection: Selection, fractions: Sequence[float], seed: int) -> SplitPlan:
    """Pass 1 over every record: per-image label counts (the only thing kept for the whole data
    set), then :func:`assign_splits`."""
    out = SplitPlan()
    groups: dict[int, Counter] = {}
    group_of: dict[int, int] = {}  # image id -> its near-duplicate group (an image id; itself if alone)
    for rec in records:
        out.records += 1
        if rec.model_source:
            out.models[rec.model_source] += 1
        lab, why = selection.label(rec)
        if lab is None:
            out.excluded[why] += 1
            continue
        g = group_of[rec.image_id] = rec.dup_group if rec.dup_group is not None else rec.image_id
        groups.setdefault(g, Counter())[lab] += 1
    by_group = assign_splits(groups, fractions, seed)
    out.splits = {i: by_group[g] for i, g in group_of.items()}
    return out
