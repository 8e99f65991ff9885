"""The grouped split: the one rule that puts whole groups (a source image and its near-copies) on one
side of a split, stratified by class, for the retraining hold-out (labeler.training.data) and the
export's train/val/test (labeler.datasets.splits). Pure.

Within each class (a group's class: its most common label) the groups are ranked by a seeded hash of
their id, not by a permutation: as labels grow, a new group takes its place in the ranking without
moving the others, so only groups at a part's boundary change sides (a later model is not judged on
faces an earlier one was trained on; an exported test split keeps its images).

FER2013's validation split of the shipped base model (labeler.training.base_data.fer2013_val_split)
is not this rule: it is frozen as the model was trained, because the shipped base-domain gate set is
drawn from it.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Optional, Sequence, TypeVar

G = TypeVar("G", bound=int)


def group_hash(group: int, seed: int) -> int:
    """A seeded 32-bit hash of an integer group id (splitmix-style mixing): the ranking of groups."""
    x = (int(group) * 0x9E3779B1 + int(seed) * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    return (x * 0x297A2D39) & 0xFFFFFFFF


def main_class(counts: Mapping[Hashable, int]) -> Hashable:
    """A group's class: its most common label (ties: the first label by its text)."""
    return min(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[0]


def grouped_split(group_class: Mapping[G, Hashable], fractions: Sequence[float], seed: int = 0,
                  sizes: Optional[Mapping[G, float]] = None) -> dict[G, int]:
    """Group -> its part (an index into ``fractions``; part 0 is the training part).

    Per class, the groups in the order of :func:`group_hash` fill part 1, then part 2, ...: a part
    takes the next group while its size so far plus half the group's size stays within
    round(fraction * the class's size) (``sizes``: a group's size, e.g. its faces; default 1, so a
    part holds round(fraction * groups)), and at least one group when the class has two or more.
    Part 0 keeps the rest, at least one group when its fraction is above 0 (with no part 0, the
    largest part takes the rest)."""
    size = (lambda g: 1.0) if sizes is None else (lambda g: float(sizes[g]))
    by_class: dict[Hashable, list[G]] = {}
    for g, c in group_class.items():
        by_class.setdefault(c, []).append(g)
    out: dict[G, int] = {}
    for c in sorted(by_class, key=str):
        gs = sorted(by_class[c], key=lambda g: (group_hash(g, seed), g))
        total = sum(size(g) for g in gs)
        limit = len(gs) - 1 if fractions[0] > 0 else len(gs)
        i = 0
        for k in range(1, len(fractions)):
            if fractions[k] <= 0:
                continue
            target, have, took = round(fractions[k] * total), 0.0, 0
            while i < limit and (have + size(gs[i]) / 2 <= target or (took == 0 and len(gs) >= 2)):
                out[gs[i]] = k
                have, took, i = have + size(gs[i]), took + 1, i + 1
        rest = 0 if fractions[0] > 0 else max(range(1, len(fractions)), key=lambda k: (fractions[k], -k))
        for g in gs[i:]:
            out[g] = rest
    return out
