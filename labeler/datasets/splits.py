"""Train/val/test splits: stratified by class, grouped by source image, repeatable for a seed and
stable as labels grow (labeler.splitting, the rule of the retraining hold-out too).

One image row is one content (sha256), so faces of one photo and every copy of it land in the same
split; near-copies (another size, another JPEG encoding: ``dup_group``, labeler.store.cleaning) are
one group too, so they never land in two splits either. :func:`plan` is the export's first pass: it
keeps only per-group label counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from labeler.datasets.common import ExportError
from labeler.datasets.select import Selection
from labeler.splitting import grouped_split, main_class

SPLITS = ("train", "val", "test")


def assign_splits(groups: dict[int, Counter], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[int, str]:
    """Group (an image id) -> split: labeler.splitting.grouped_split, stratified by each group's main
    class, each split's share of a class counted in faces, repeatable for a seed and stable as labels
    grow (the retraining hold-out's rule; every class with two groups or more has one in val)."""
    fr = shares(fractions)
    main = {gid: main_class(cnt) for gid, cnt in groups.items() if cnt}
    faces = {gid: sum(groups[gid].values()) for gid in main}
    return {gid: SPLITS[k] for gid, k in grouped_split(main, fr, seed, sizes=faces).items()}


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
