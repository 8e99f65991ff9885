"""One assessment of a project's labels from :class:`QualityInputs`: label-issue scores for every
labeled face with out-of-sample probabilities, the consensus of the annotators, their agreement."""

from __future__ import annotations

import numpy as np

from labeler.errors import LabelerError
from labeler.quality import agreement as ag
from labeler.quality.consensus import consensus
from labeler.quality.issues import DEFAULT_METHOD, scores
from labeler.quality.records import Agreement, Assessment, FaceIssue, QualityInputs

#: the packages of the ``quality`` extra, by import name
PACKAGES = ("cleanlab", "crowdkit", "sklearn")
INSTALL = "pip install 'labeler[quality]'"


def missing() -> list[str]:
    """The packages of the ``quality`` extra that cannot be found (nothing is imported)."""
    from importlib.util import find_spec

    return [p for p in PACKAGES if find_spec(p) is None]


def require() -> None:
    """A one-line user error when the ``quality`` extra is not installed."""
    gone = missing()
    if gone:
        raise LabelerError(f"label issues, agreement and consensus need cleanlab, crowd-kit and scikit-learn; "
                           f"{', '.join(gone)} not found: {INSTALL}")


def measure_agreement(inputs: QualityInputs, reps: int = 1000, seed: int = 0) -> Agreement | None:
    """Alpha (nominal and weighted), kappas; None where no face has two ratings."""
    classes = inputs.classes
    faces, n = ag.counts(inputs.ratings, classes)
    if not len(n) or n.sum(1).max() < 2:
        return None
    annotators = {r.annotator for r in inputs.ratings if r.label in classes}
    return Agreement(
        faces=int((n.sum(1) >= 2).sum()), annotators=len(annotators),
        nominal=ag.alpha_estimate(n, None, ag.NOMINAL, reps, seed=seed),
        weighted=ag.alpha_estimate(n, ag.label_distance(classes), ag.FERPLUS, reps, seed=seed),
        pairs=tuple(ag.pair_kappas(inputs.ratings, classes)), per_class=tuple(ag.class_kappas(inputs.ratings, classes)),
    )


def rated_twice(inputs: QualityInputs) -> int:
    """How many faces two or more annotators rated (agreement and consensus need one)."""
    n: dict[int, int] = {}
    for r in inputs.ratings:
        if r.label in inputs.classes:
            n[r.face_id] = n.get(r.face_id, 0) + 1
    return sum(1 for v in n.values() if v >= 2)


def find_issues(inputs: QualityInputs, method: str = DEFAULT_METHOD) -> tuple[dict[int, FaceIssue], int]:
    """(face -> its label issue, labeled faces left unscored: no out-of-sample probabilities)."""
    classes = inputs.classes
    col = {c: i for i, c in enumerate(classes)}
    labeled = [g for g in inputs.given if g.label in col]
    scored = [g for g in labeled if g.probs is not None and len(g.probs) == len(classes)]
    found: dict[int, FaceIssue] = {}
    if scored:
        probs = np.array([g.probs for g in scored], dtype=np.float64)
        probs = probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
        s = scores([col[g.label] for g in scored], probs, method)
        for i, g in enumerate(scored):
            k = int(s.suggested[i])
            found[g.face_id] = FaceIssue(g.face_id, g.label, g.kind, float(s.score[i]),
                                         None if s.flagged is None else bool(s.flagged[i]), classes[k],
                                         float(probs[i, k]), g.prob_source, g.fallback)
    return found, len(labeled) - len(scored)


def assess(inputs: QualityInputs, method: str = DEFAULT_METHOD, reps: int = 1000, seed: int = 0,
           issues: bool = True) -> Assessment:
    """Score (unless not ``issues``: cleanlab is then not imported), agree, reach consensus. Needs
    the ``quality`` extra (:func:`require`)."""
    require()
    found, unscored = find_issues(inputs, method) if issues else ({}, 0)
    cons, skills = consensus(inputs.ratings, inputs.classes)
    changes = sum(1 for g in inputs.given if g.kind in ("human", "import") and g.face_id in cons
                  and cons[g.face_id].label != g.label)
    return Assessment(inputs.classes, found, cons, measure_agreement(inputs, reps, seed), tuple(skills), dict(inputs.votes),
                      method, unscored=unscored, consensus_changes=changes, scored=issues)

def _r(x):
    return None if x is None else round(float(x), 4)


def summary(a: Assessment, pairs: int = 20) -> dict:
    """The assessment's project-level figures as plain JSON values (metadata.json, status)."""
    g = a.agreement
    flagged_by_kind: dict[str, int] = {}
    scored_by_kind: dict[str, int] = {}
    for x in a.issues.values():
        scored_by_kind[x.kind] = scored_by_kind.get(x.kind, 0) + 1
        if x.flagged:
            flagged_by_kind[x.kind] = flagged_by_kind.get(x.kind, 0) + 1
    methods = sorted({c.method for c in a.consensus.values()})

    def alpha(e):
        return {"alpha": _r(e.alpha), "lower": _r(e.lower), "upper": _r(e.upper), "level": e.level, "faces": e.faces,
                "ratings": e.ratings, "distance": e.distance}

    return {
        "label_issues": {"method": a.method, "scored": len(a.issues), "unscored": a.unscored,
                         "flagged_by_confident_learning": a.flagged, "scored_by_kind": scored_by_kind,
                         "flagged_by_kind": flagged_by_kind,
                         "fallback_probabilities": sum(1 for x in a.issues.values() if x.fallback)},
        "consensus": {"faces": len(a.consensus), "method": methods[0] if methods else None,
                      "differs_from_majority": a.consensus_changes},
        "agreement": None if g is None else {
            "faces": g.faces, "annotators": g.annotators, "alpha_nominal": alpha(g.nominal), "alpha_weighted": alpha(g.weighted),
            "kappa_pairs": [{"a": p.a, "b": p.b, "kappa": _r(p.kappa), "faces": p.faces} for p in g.pairs[:pairs]],
            "kappa_per_class": {c.label: _r(c.kappa) for c in g.per_class},
        },
        "annotators": [{"annotator": s.annotator, "accuracy": _r(s.accuracy), "faces": s.faces} for s in a.skills],
        "vote_distributions": len(a.votes),
    }
