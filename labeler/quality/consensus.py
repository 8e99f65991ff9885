"""Consensus labels from several annotators: the Dawid-Skene crowd model (Dawid and Skene 1979,
through ``crowd-kit``), with a posterior per face and an estimated accuracy per annotator.

Dawid-Skene learns, by EM from the majority vote, the class priors and how each annotator answers
given the true class; a face's consensus is its most probable class, its posterior that class's
probability. Two forms (crowd-kit's):

- ``dawid-skene``: a full confusion matrix per annotator (42 free numbers each for 7 classes):
  sees systematic slips (one annotator's "sad" for neutral), but needs many faces;
- ``one-coin``: one accuracy per annotator, errors spread evenly (one number each).

``auto`` (the default) takes the full model from :data:`FULL_FROM` faces rated twice and the
one-coin model below. Measured on PublicTest with three simulated annotators (docs/measurements.md,
issue 33): on random subsets of 30 to 1,000 images the full model agreed with the ten-vote FER+
majority less often than the plain three-vote majority (by 0.2 to 2 points), from 2,000 images more
often; the one-coin model did at least as well as the majority at every size but 60 images (-0.3
points) and as well as the full model on all 3,369. The full model stays for large projects because
it sees what the one-coin model cannot: a slip that several annotators share (tests/test_quality.py).

Without a face rated by two annotators nothing can be learned: the consensus is each face's one
rating (``majority``, no posterior). Only the seven classes are modelled: an ``unusable`` answer is
not a rating (it stays in the human majority, ``labeler.store.vote``).
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

from labeler.quality.records import AnnotatorSkill, FaceConsensus, Rating

DAWID_SKENE = "dawid-skene"
ONE_COIN = "one-coin"
MAJORITY = "majority"
AUTO = "auto"
MODELS = (AUTO, DAWID_SKENE, ONE_COIN)
#: faces rated by two or more annotators from which ``auto`` takes the full Dawid-Skene model
FULL_FROM = 2000


def _frame(ratings: Sequence[Rating]):
    import pandas as pd

    return pd.DataFrame({"task": [r.face_id for r in ratings], "worker": [r.annotator for r in ratings],
                         "label": [r.label for r in ratings]})


def consensus(ratings: Iterable[Rating], classes: Sequence[str], model: str = AUTO, n_iter: int = 100
              ) -> tuple[dict[int, FaceConsensus], list[AnnotatorSkill]]:
    """(face -> consensus, per-annotator skill) from the ratings of ``classes``."""
    if model not in MODELS:
        raise ValueError(f"consensus: the crowd model must be one of {', '.join(MODELS)}, not {model!r}")
    rs = [r for r in ratings if r.label in classes]
    per_face: dict[int, int] = {}
    faces_of: dict[str, set[int]] = {}
    for r in rs:
        per_face[r.face_id] = per_face.get(r.face_id, 0) + 1
        faces_of.setdefault(r.annotator, set()).add(r.face_id)
    twice = sum(1 for n in per_face.values() if n >= 2)
    if not twice:
        # every face has one rating (an annotator has one current answer per face): it is the consensus
        return ({r.face_id: FaceConsensus(r.face_id, r.label, None, 1, MAJORITY) for r in rs},
                [AnnotatorSkill(a, None, len(fs)) for a, fs in sorted(faces_of.items())])
    if model == AUTO:
        model = DAWID_SKENE if twice >= FULL_FROM else ONE_COIN
    from crowdkit.aggregation import DawidSkene, OneCoinDawidSkene

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = (DawidSkene if model == DAWID_SKENE else OneCoinDawidSkene)(n_iter=n_iter).fit(_frame(rs))
    probas = fitted.probas_
    cols = list(probas.columns)
    out = {}
    for f, row in zip(probas.index, probas.to_numpy()):
        k = int(row.argmax())
        out[int(f)] = FaceConsensus(int(f), str(cols[k]), float(row[k]), per_face[int(f)], model)
    return out, _skills(fitted, faces_of)


def _skills(fitted, faces_of: dict[str, set[int]]) -> list[AnnotatorSkill]:
    """Each annotator's probability of giving the true class: the prior-weighted diagonal of their
    confusion matrix (the one-coin model's accuracy is that number)."""
    errors, priors = fitted.errors_, fitted.priors_
    out = []
    for a, fs in sorted(faces_of.items()):
        acc = 0.0
        for c, p in priors.items():
            if (a, c) in errors.index and c in errors.columns:
                acc += float(p) * float(errors.loc[(a, c), c])
        out.append(AnnotatorSkill(a, acc, len(fs)))
    return out
