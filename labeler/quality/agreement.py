"""How much annotators agree: Krippendorff's alpha (nominal, and weighted by a label distance) with
a bootstrap interval, Cohen's kappa per pair of annotators and per class.

Alpha follows Krippendorff's coincidence-matrix formulation ("Computing Krippendorff's
Alpha-Reliability", 2011): alpha = 1 - D_o / D_e, over the faces rated at least twice, any number
of annotators, missing ratings allowed. It is computed here with numpy rather than with the
``krippendorff`` package because that package is GPL-3.0 (this project is MIT); the tests check it
against NLTK's ``AnnotationTask.alpha`` (Apache-2.0) on many random draws. Its interval is the
percentile bootstrap over faces (Zapf et al. 2016, BMC Med Res Methodol 16:93), which the
vectorised form makes cheap. Kappa is scikit-learn's ``cohen_kappa_score``.

The weighted alpha's distance is ``labeler/data/label_distance.json`` (how often the FER+ crowd
split one image's votes between two classes; ``scripts/make/label_distance.py``): a disagreement between
classes people often confuse (sad/neutral: 0.63) counts less than one between classes they never
confuse (happy/fear: 0.98).
"""

from __future__ import annotations

import json
from functools import lru_cache
from itertools import combinations
from typing import Iterable, Optional, Sequence

import numpy as np

from labeler.quality.records import AlphaEstimate, ClassKappa, PairKappa, Rating

NOMINAL = "nominal"
FERPLUS = "ferplus-covotes"


@lru_cache(maxsize=1)
def _distance_file() -> tuple[tuple[str, ...], np.ndarray]:
    from importlib.resources import files

    doc = json.loads(files("labeler.data").joinpath("label_distance.json").read_text(encoding="utf-8"))
    return tuple(doc["labels"]), np.asarray(doc["distance"], dtype=np.float64)


def label_distance(classes: Sequence[str]) -> np.ndarray:
    """The shipped distance between ``classes`` (0 on the diagonal; 1 for a class it does not know)."""
    known, d = _distance_file()
    idx = {c: i for i, c in enumerate(known)}
    out = np.ones((len(classes), len(classes)))
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            if a == b:
                out[i, j] = 0.0
            elif a in idx and b in idx:
                out[i, j] = d[idx[a], idx[b]]
    return out


def counts(ratings: Iterable[Rating], classes: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """(faces, faces x classes counts of their ratings), faces in id order; ratings of other
    classes are left out."""
    col = {c: i for i, c in enumerate(classes)}
    rows: dict[int, np.ndarray] = {}
    for r in ratings:
        if r.label in col:
            rows.setdefault(r.face_id, np.zeros(len(classes)))[col[r.label]] += 1
    faces = sorted(rows)
    return faces, (np.array([rows[f] for f in faces]) if faces else np.zeros((0, len(classes))))


def _pair_parts(n: np.ndarray) -> np.ndarray:
    """Per face, its contribution to the coincidence matrix (faces x classes*classes), faces with
    fewer than two ratings contributing nothing."""
    m = n.sum(1)
    w = np.where(m >= 2, 1.0 / np.maximum(m - 1, 1), 0.0)
    outer = n[:, :, None] * n[:, None, :]
    idx = np.arange(n.shape[1])
    outer[:, idx, idx] -= n
    return (outer * w[:, None, None]).reshape(len(n), n.shape[1] ** 2)


def _alpha(coinc: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """alpha for each row of ``coinc`` (reps x classes*classes coincidence matrices)."""
    k = delta.shape[0]
    o = coinc.reshape(-1, k, k)
    nc = o.sum(2)
    n = nc.sum(1)
    d_o = (o * delta).sum((1, 2))
    d_e = np.einsum("ri,rj,ij->r", nc, nc, delta) / np.maximum(n - 1, 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((d_e > 0) & (n > 1), 1.0 - d_o / d_e, np.nan)


def alpha(n: np.ndarray, delta: Optional[np.ndarray] = None) -> Optional[float]:
    """Krippendorff's alpha of a faces x classes count matrix (``delta``: the squared-distance
    weights, nominal when None). None where undefined (no pairable ratings, or every rating one class)."""
    n = np.asarray(n, dtype=np.float64)
    delta = 1.0 - np.eye(n.shape[1]) if delta is None else np.asarray(delta, dtype=np.float64)
    a = _alpha(_pair_parts(n).sum(0)[None, :], delta)[0]
    return None if np.isnan(a) else float(a)


def alpha_estimate(n: np.ndarray, delta: Optional[np.ndarray] = None, name: str = NOMINAL, reps: int = 1000,
                   level: float = 0.95, seed: int = 0) -> AlphaEstimate:
    """alpha with its percentile-bootstrap interval (faces resampled with replacement, ``reps``
    times, seeded)."""
    n = np.asarray(n, dtype=np.float64)
    delta = 1.0 - np.eye(n.shape[1]) if delta is None else np.asarray(delta, dtype=np.float64)
    keep = n.sum(1) >= 2
    n = n[keep]
    point = alpha(n, delta) if len(n) else None
    lo = hi = None
    if point is not None and len(n) >= 2 and reps > 0:
        parts = _pair_parts(n)
        rng = np.random.default_rng(seed)
        boot = []
        for start in range(0, reps, 200):  # 200 resamples at a time: memory stays small
            w = rng.multinomial(len(n), np.full(len(n), 1.0 / len(n)), size=min(200, reps - start))
            boot.append(_alpha(w @ parts, delta))
        b = np.concatenate(boot)
        b = b[~np.isnan(b)]
        if len(b):
            lo, hi = (float(x) for x in np.quantile(b, [(1 - level) / 2, (1 + level) / 2]))
    return AlphaEstimate(point, lo, hi, int(len(n)), int(n.sum()), name, level)


def _kappa(x: Sequence[str], y: Sequence[str], labels: Sequence[str]) -> Optional[float]:
    from sklearn.metrics import cohen_kappa_score

    if not x or len(set(x) | set(y)) < 2:
        return None  # one class only: chance agreement is 1, kappa undefined
    k = float(cohen_kappa_score(list(x), list(y), labels=list(labels)))
    return None if np.isnan(k) else k


def pair_kappas(ratings: Iterable[Rating], classes: Sequence[str]) -> list[PairKappa]:
    """Cohen's kappa of every pair of annotators over the faces both rated (most shared faces first)."""
    by: dict[str, dict[int, str]] = {}
    for r in ratings:
        if r.label in classes:
            by.setdefault(r.annotator, {})[r.face_id] = r.label
    out = []
    for a, b in combinations(sorted(by), 2):
        common = sorted(set(by[a]) & set(by[b]))
        if common:
            xa, xb = [by[a][f] for f in common], [by[b][f] for f in common]
            out.append(PairKappa(a, b, _kappa(xa, xb, classes), len(common)))
    return sorted(out, key=lambda p: (-p.faces, p.a, p.b))


def class_kappas(ratings: Iterable[Rating], classes: Sequence[str]) -> list[ClassKappa]:
    """Per class, Cohen's kappa of "this class or not" over every pair of ratings of one face
    (each pair entered in both orders, so the two raters play the same part)."""
    by: dict[int, list[str]] = {}
    for r in ratings:
        if r.label in classes:
            by.setdefault(r.face_id, []).append(r.label)
    pairs = [(a, b) for labs in by.values() for a, b in combinations(labs, 2)]
    out = []
    for c in classes:
        x = [int(a == c) for a, b in pairs] + [int(b == c) for a, b in pairs]
        y = [int(b == c) for a, b in pairs] + [int(a == c) for a, b in pairs]
        k = _kappa([str(v) for v in x], [str(v) for v in y], ("0", "1")) if pairs else None
        out.append(ClassKappa(c, k, len(pairs)))
    return out
