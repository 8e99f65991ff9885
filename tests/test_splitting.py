"""The one grouped split (labeler.splitting): the retraining hold-out and the export's splits use it;
it reproduces the hold-out the project used before it was shared (so retrained models' records stay
comparable), keeps its "stable as labels grow" property with three parts and face counts, and
FER2013's base split (labeler.training.base_data) stays as the shipped model was trained."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from labeler.datasets.splits import assign_splits
from labeler.splitting import group_hash, grouped_split, main_class
from labeler.training.data import grouped_folds, holdout_mask

from .conftest import need_module


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def test_the_holdout_and_the_folds_are_the_assignment_they_were():
    """Digests of the assignments of training/data.py's own implementation before labeler.splitting
    (commit 51cc6ad) on 6000 faces in 3000 images: the same faces are held out, the same folds."""
    rng = np.random.default_rng(2026)
    groups, y = rng.integers(0, 3000, 6000), rng.integers(0, 7, 6000)
    for (h, seed), (n, want) in {(0.2, 0): (1142, "ccb360716467d85f"), (0.25, 1): (1526, "a00ee5067c1da34f"),
                                 (0.1, 7): (609, "97596a7c90c767b6")}.items():
        m = holdout_mask(groups, y, h, seed)
        assert (int(m.sum()), _digest(np.packbits(m))) == (n, want), (h, seed)
    assert _digest(grouped_folds(groups, y, 5, 0).astype(np.int64)) == "3d9266caa02334f9"


def test_the_fer2013_base_split_is_the_one_the_shipped_model_was_trained_with():
    """base_data.fer2013_val_split is frozen (its val part holds the shipped base-domain gate set):
    its assignment on 10000 content hashes (9000 distinct) at the shipped model's seed and fraction."""
    need_module("torch", "torch", "pip install 'labeler[train]'")
    from labeler.training.base_data import fer2013_val_split

    hs = [hashlib.sha256(str(i % 9000).encode()).hexdigest() for i in range(10000)]
    tr, va = fer2013_val_split(hs, 0.1, 20261128)
    assert len(va) == 1006 and _digest(va.astype(np.int64)) == "16afccb552eee3da"
    assert len(tr) + len(va) == len(hs) and not set(hs[i] for i in tr) & set(hs[i] for i in va)


def test_three_parts_by_face_count_stay_put_as_labels_grow():
    rng = np.random.default_rng(5)
    cls = {g: str(rng.integers(0, 4)) for g in range(2000)}
    size = {g: int(rng.integers(1, 6)) for g in range(2000)}
    small = grouped_split({g: cls[g] for g in range(1500)}, (0.8, 0.1, 0.1), seed=3, sizes=size)
    big = grouped_split(cls, (0.8, 0.1, 0.1), seed=3, sizes=size)
    moved = sum(small[g] != big[g] for g in small)
    assert moved <= 4 * 2 * 5  # per class, only groups at the two boundaries (a few, of up to 5 faces)
    for c in "0123":
        faces = Counter()
        for g, k in big.items():
            if cls[g] == c:
                faces[k] += size[g]
        tot = sum(faces.values())
        assert abs(faces[1] / tot - 0.1) < 0.01 and abs(faces[2] / tot - 0.1) < 0.01
    assert grouped_split(cls, (0.8, 0.1, 0.1), seed=4, sizes=size) != big  # the seed matters


def test_small_classes_and_parts_without_a_share():
    one = {1: "a"}
    assert grouped_split(one, (0.8, 0.1, 0.1)) == {1: 0}  # a lone group trains
    two = grouped_split({1: "a", 2: "a"}, (0.8, 0.1, 0.1))
    assert sorted(two.values()) == [0, 1]  # one held out (val first), one to train
    three = grouped_split({1: "a", 2: "a", 3: "a"}, (0.8, 0.1, 0.1))
    assert sorted(three.values()) == [0, 1, 2]
    assert set(grouped_split({g: "a" for g in range(50)}, (1, 0, 0)).values()) == {0}
    no_train = grouped_split({g: "a" for g in range(10)}, (0, 0.5, 0.5))
    assert Counter(no_train.values()) == {1: 5, 2: 5}
    # the export's splits are this rule with face counts, classes from each image's labels
    groups = {1: Counter(happy=2), 2: Counter(happy=1, sad=1), 3: Counter(sad=3), 4: Counter(happy=1)}
    names = assign_splits(groups, (0.5, 0.5, 0), seed=0)
    parts = grouped_split({g: main_class(c) for g, c in groups.items()}, (0.5, 0.5, 0), 0,
                          sizes={g: sum(c.values()) for g, c in groups.items()})
    assert names == {g: ("train", "val", "test")[k] for g, k in parts.items()}
    assert main_class(Counter(happy=1, sad=1)) == "happy" and main_class({2: 1, 0: 3}) == 0


def test_group_hash_is_seeded_and_spreads():
    h = [group_hash(g, 0) for g in range(1000)]
    assert len(set(h)) == 1000 and all(0 <= x < 2**32 for x in h)
    assert [group_hash(g, 1) for g in range(10)] != h[:10]
    assert abs(np.mean(np.array(h) < 2**31) - 0.5) < 0.05
